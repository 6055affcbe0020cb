//! The text-to-speech playback queue: chunks of any size at the TTS rate go in, 20 ms frames at
//! 48 kHz come out, with short gain ramps so starting, starving and flushing never click.

use super::{FrameResampler, NET_FRAME, NET_RATE, frame_len_at, to_f32};
use crate::error::Result;
use std::collections::VecDeque;

/// Length of a gain ramp: 5 ms at 48 kHz.
const RAMP: usize = 240;

/// Speaker audio waiting to be played (TTS and decoded frames), drained one frame at a time.
pub struct PlaybackQueue {
    rate: u32,
    queue: VecDeque<i16>,
    resampler: FrameResampler,
    input: Vec<f32>,
    /// Frames resampled since the stream (re)started: sets the next input length.
    frames: u64,
    /// Current gain, ramped sample by sample towards 0 or 1.
    gain: f32,
    /// Frames left to flush the resampler's delay after the queue ran dry.
    tail: u32,
    active: bool,
}

impl PlaybackQueue {
    /// `rate`: the TTS sample rate (24 kHz usually). Room for `capacity_secs` is allocated now.
    pub fn new(rate: u32, capacity_secs: u32) -> Result<Self> {
        // Half of playback's 10 ms budget; the device stage takes the other half.
        let resampler = FrameResampler::with_max_delay(rate, NET_RATE, 5)?;
        Ok(Self {
            rate,
            queue: VecDeque::with_capacity((rate * capacity_secs) as usize),
            input: vec![0.0; rate.div_ceil(50) as usize],
            frames: 0,
            resampler,
            gain: 0.0,
            tail: 0,
            active: false,
        })
    }

    /// Queue TTS samples (mono, at the queue's rate). Any chunk size.
    pub fn push(&mut self, pcm: &[i16]) {
        self.queue.extend(pcm);
        if !pcm.is_empty() && !self.active {
            self.active = true;
            self.gain = 0.0;
        }
    }

    /// Whether audio is playing (queued audio or the resampler's last samples).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Delay the resampling to 48 kHz adds, in ms.
    pub fn delay_ms(&self) -> f64 {
        self.resampler.delay_ms()
    }

    /// Queued audio not yet played, in ms.
    pub fn queued_ms(&self) -> u64 {
        self.queue.len() as u64 * 1000 / self.rate as u64
    }

    /// Drop everything queued and fade the current frame out. Returns the ms dropped.
    pub fn flush(&mut self) -> u64 {
        let dropped = self.queued_ms();
        self.queue.clear();
        dropped
    }

    /// Next 20 ms at 48 kHz into `out` ([`NET_FRAME`] samples). Returns `true` when the queue
    /// just ran out (the playback finished in this frame).
    pub fn next_frame(&mut self, out: &mut [f32]) -> Result<bool> {
        if out.len() != NET_FRAME {
            return Err(crate::Error::invalid_argument(format!("playback frame must be {NET_FRAME} samples")));
        }
        if !self.active {
            out.fill(0.0);
            return Ok(false);
        }
        let want = frame_len_at(self.rate, self.frames);
        self.frames += 1;
        let input = &mut self.input[..want];
        let n = want.min(self.queue.len());
        for (dst, src) in input.iter_mut().zip(self.queue.drain(..n)) {
            *dst = to_f32(src);
        }
        input[n..].fill(0.0);
        self.resampler.process(input, out)?;
        let starving = self.queue.is_empty();
        // Full frames ramp the gain up; when the queue ran short, fade out from where its audio
        // ends (plus the resampler's delay), finishing inside this frame.
        let fade_from = if n == want {
            usize::MAX
        } else {
            (n * NET_FRAME / want + self.resampler.delay()).min(NET_FRAME - RAMP)
        };
        let step = 1.0 / RAMP as f32;
        for (i, s) in out.iter_mut().enumerate() {
            self.gain = if i < fade_from { (self.gain + step).min(1.0) } else { (self.gain - step).max(0.0) };
            *s *= self.gain;
        }
        if starving {
            // Let the resampler's delay line play out for one more frame, then stop.
            self.tail += 1;
            if self.tail > 1 {
                self.tail = 0;
                self.active = false;
                self.resampler.reset();
                self.frames = 0;
                self.gain = 0.0;
                return Ok(true);
            }
        } else {
            self.tail = 0;
        }
        Ok(false)
    }

    /// Stop now: this call fades `out` (the frame about to be played) to silence within 5 ms and
    /// clears the queue and the resampler. Returns the ms of audio dropped.
    pub fn stop_in(&mut self, out: &mut [f32]) -> u64 {
        let dropped = self.flush();
        let step = 1.0 / RAMP as f32;
        for s in out.iter_mut() {
            self.gain = (self.gain - step).max(0.0);
            *s *= self.gain;
        }
        self.gain = 0.0;
        self.active = false;
        self.tail = 0;
        self.resampler.reset();
        self.frames = 0;
        dropped
    }
}
