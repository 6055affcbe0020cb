//! The sound-card side of the voice loop, kept off the network. Three parts:
//! - the cpal callbacks (the audio thread) only copy samples into and out of [`Ring`]s:
//!   lock-free, allocation-free, bounded (a full ring drops, an empty one plays silence);
//! - the [`AudioWorker`] thread owns the pipeline and turns mic samples into 20 ms frames,
//!   playback into speaker samples, pipeline events into messages;
//! - the control thread (the caller: HTTP, the agent) exchanges messages with the worker over
//!   channels and may block as long as a request takes: the audio keeps flowing.

use moltlink::audio::{AudioConfig, AudioEvent, AudioPipeline};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A single-producer single-consumer ring of f32 samples on atomics (no locks, no unsafe,
/// no allocation after creation), so that a device callback never waits on another thread.
pub struct Ring {
    slots: Box<[AtomicU32]>,
    /// Samples ever written / read; the difference is the fill.
    written: AtomicUsize,
    read: AtomicUsize,
    /// Samples dropped because the ring was full (the consumer fell behind).
    pub dropped: AtomicU64,
}

impl Ring {
    pub fn new(capacity: usize) -> Arc<Ring> {
        Arc::new(Ring {
            slots: (0..capacity.max(1)).map(|_| AtomicU32::new(0)).collect(),
            written: AtomicUsize::new(0),
            read: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.written.load(Ordering::Acquire) - self.read.load(Ordering::Acquire)
    }

    /// Producer: append what fits, drop the rest (counted). Returns how many were taken.
    pub fn push(&self, samples: &[f32]) -> usize {
        let w = self.written.load(Ordering::Relaxed);
        let free = self.slots.len() - (w - self.read.load(Ordering::Acquire));
        let n = samples.len().min(free);
        for (i, s) in samples[..n].iter().enumerate() {
            self.slots[(w + i) % self.slots.len()].store(s.to_bits(), Ordering::Relaxed);
        }
        self.written.store(w + n, Ordering::Release);
        self.dropped.fetch_add((samples.len() - n) as u64, Ordering::Relaxed);
        n
    }

    /// Consumer: fill `out` from the front; returns how many samples were there.
    pub fn pop_into(&self, out: &mut [f32]) -> usize {
        let r = self.read.load(Ordering::Relaxed);
        let n = out.len().min(self.written.load(Ordering::Acquire) - r);
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = f32::from_bits(self.slots[(r + i) % self.slots.len()].load(Ordering::Relaxed));
        }
        self.read.store(r + n, Ordering::Release);
        n
    }
}

/// The input callback's body: hand the samples on, never wait.
pub fn mic_callback(ring: Arc<Ring>) -> impl FnMut(&[f32]) + Send + 'static {
    move |data| {
        ring.push(data);
    }
}

/// The output callback's body: what the worker has played, silence for the rest.
pub fn speaker_callback(ring: Arc<Ring>) -> impl FnMut(&mut [f32]) + Send + 'static {
    move |out| {
        let n = ring.pop_into(out);
        out[n..].fill(0.0);
    }
}

/// A pipeline event for the control thread; `speech-stopped` carries the utterance WAV.
pub struct FromAudio {
    pub event: AudioEvent,
    pub utterance: Option<Vec<u8>>,
}

/// The worker thread owning the pipeline, and its channels.
pub struct AudioWorker {
    pub mic: Arc<Ring>,
    pub speaker: Arc<Ring>,
    tts: mpsc::Sender<Vec<i16>>,
    events: mpsc::Receiver<Result<FromAudio, String>>,
    stop: Arc<AtomicBool>,
    /// Frames processed so far (the control thread and tests read it).
    pub frames: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

/// Rings hold 200 ms: the worker keeps them near one frame, the rest absorbs scheduling jitter.
const RING_MS: usize = 200;

impl AudioWorker {
    /// Start the worker with a pipeline for `config`, for a device of `rate` × `channels`. The
    /// pipeline is made on the audio thread and stays there (the echo canceller is not `Send`).
    pub fn spawn(config: AudioConfig, rate: u32, channels: u16) -> Result<AudioWorker, String> {
        let capacity = rate as usize * channels as usize * RING_MS / 1000;
        let (mic, speaker) = (Ring::new(capacity), Ring::new(capacity));
        let (tts, tts_rx) = mpsc::channel::<Vec<i16>>();
        let (events_tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let (m, s, st, fr) = (Arc::clone(&mic), Arc::clone(&speaker), Arc::clone(&stop), Arc::clone(&frames));
        let (ready_tx, ready) = mpsc::channel::<Result<(), String>>();
        let handle = std::thread::Builder::new()
            .name("moltlink-audio".into())
            .spawn(move || {
                let mut pipeline = match AudioPipeline::new(config) {
                    Ok(p) => p,
                    Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                };
                let _ = ready_tx.send(Ok(()));
                // Frames are 20 ms; at rates where that is no whole number of samples (11 025 Hz)
                // their length alternates: ask each time (within the longest, so no allocation).
                let max = pipeline.frame_samples();
                let (mut f32s, mut frame, mut out, mut outf) = (vec![0f32; max], vec![0i16; max], vec![0i16; max], vec![0f32; max]);
                while !st.load(Ordering::Relaxed) {
                    while let Ok(pcm) = tts_rx.try_recv() {
                        pipeline.push_tts(&pcm);
                    }
                    let (n, played) = (pipeline.next_capture_samples(), pipeline.next_playback_samples());
                    f32s.resize(n, 0.0);
                    frame.resize(n, 0);
                    out.resize(played, 0);
                    outf.resize(played, 0.0);
                    if m.len() < n {
                        // About a quarter of a 20 ms frame: the mic's clock paces us.
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    m.pop_into(&mut f32s);
                    for (d, s) in frame.iter_mut().zip(&f32s) {
                        *d = (s * 32768.0).clamp(-32768.0, 32767.0) as i16;
                    }
                    let step = pipeline.process_capture(&frame, &mut []).and_then(|_| pipeline.process_playback(&mut out));
                    if let Err(e) = step {
                        let _ = events_tx.send(Err(e.to_string()));
                        return;
                    }
                    for (d, s) in outf.iter_mut().zip(&out) {
                        *d = *s as f32 / 32768.0;
                    }
                    s.push(&outf);
                    fr.fetch_add(1, Ordering::Relaxed);
                    while let Some(event) = pipeline.poll_event() {
                        let utterance = matches!(event, AudioEvent::SpeechStopped { .. }).then(|| pipeline.utterance_wav());
                        let _ = events_tx.send(Ok(FromAudio { event, utterance }));
                    }
                }
            })
            .map_err(|e| format!("cannot start the audio thread: {e}"))?;
        ready.recv().map_err(|_| "the audio thread ended at start".to_owned())??;
        Ok(AudioWorker { mic, speaker, tts, events, stop, frames, handle: Some(handle) })
    }

    /// TTS audio for playback (at the pipeline's TTS rate).
    pub fn push_tts(&self, pcm: Vec<i16>) {
        let _ = self.tts.send(pcm);
    }

    /// The next pipeline event, waiting at most `timeout`; Err if the worker failed.
    pub fn next_event(&self, timeout: Duration) -> Result<Option<FromAudio>, String> {
        match self.events.recv_timeout(timeout) {
            Ok(Ok(e)) => Ok(Some(e)),
            Ok(Err(e)) => Err(format!("audio pipeline: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("the audio thread stopped".into()),
        }
    }
}

impl Drop for AudioWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
