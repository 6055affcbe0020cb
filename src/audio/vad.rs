//! Voice activity detection on the 16 kHz stream: earshot scores 16 ms blocks, a start/stop
//! state machine turns scores into utterances, and the utterance audio is collected with a
//! pre-roll so the first syllable is not cut.

use super::{AudioEvent, Events, SPEECH_RATE, to_i16};
use crate::error::{Error, Result};

/// earshot's block: 256 samples (16 ms) at 16 kHz.
const BLOCK: usize = 256;

/// The usual knobs of a VAD front end.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// A block is voiced when earshot's score reaches this (0..1).
    pub confidence: f32,
    /// Voiced time needed (gaps shorter than `stop_secs` allowed) before speech starts.
    pub start_secs: f32,
    /// Unvoiced time that ends an utterance.
    pub stop_secs: f32,
    /// Minimum block loudness (RMS, full scale = 1.0) to count as voiced.
    pub min_volume: f32,
    /// Audio kept before the detected start, so the utterance's first syllable is complete.
    pub pre_roll_secs: f32,
    /// Longest utterance; a longer one is cut here and a new one starts.
    pub max_utterance_secs: f32,
    /// Voiced time that interrupts our playback (barge-in): shorter than `start_secs`, so the
    /// agent stops within ~100 ms of the user's first word. One earshot block (16 ms) by
    /// default: earshot already needs most of a syllable to score it as speech.
    pub barge_in_secs: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self { confidence: 0.7, start_secs: 0.2, stop_secs: 0.2, min_volume: 0.003, pre_roll_secs: 0.2, max_utterance_secs: 30.0, barge_in_secs: 0.016 }
    }
}

impl VadConfig {
    /// Checks the thresholds and durations are in range.
    pub fn validate(&self) -> Result<()> {
        let ok = (0.0..=1.0).contains(&self.confidence)
            && (0.0..=5.0).contains(&self.start_secs)
            && (0.0..=5.0).contains(&self.stop_secs)
            && (0.0..=1.0).contains(&self.min_volume)
            && (0.0..=2.0).contains(&self.pre_roll_secs)
            && (1.0..=300.0).contains(&self.max_utterance_secs)
            && (0.0..=5.0).contains(&self.barge_in_secs);
        if ok { Ok(()) } else { Err(Error::invalid_argument(format!("VAD settings out of range: {self:?}"))) }
    }
}

fn secs(s: f32) -> u64 {
    (s * SPEECH_RATE as f32).round() as u64
}

/// The VAD and utterance collector. Feed 16 kHz mono frames with [`VoiceDetector::process`].
pub struct VoiceDetector {
    config: VadConfig,
    detector: Box<earshot::Detector>,
    block: [f32; BLOCK],
    block_fill: usize,
    /// Samples seen so far (16 kHz).
    pos: u64,
    /// Samples to subtract from positions when reporting (upstream resampler delay).
    delay: u64,
    /// Extra loudness a block needs while our own playback may echo (set by the pipeline).
    echo_floor: f32,
    /// Last score, for hosts that want to show it.
    last_score: f32,
    speaking: bool,
    /// The current candidate already reported an interrupt (`take_interrupt`).
    interrupted: bool,
    /// Start of the current candidate or utterance.
    start: Option<u64>,
    voiced: u64,
    silence: u64,
    last_voiced_end: u64,
    /// The last `pre_roll + BLOCK` samples, a ring.
    pre_roll: Vec<i16>,
    pre_roll_at: usize,
    /// Audio of the current candidate/utterance and the absolute position of its first sample.
    collecting: Vec<i16>,
    origin: u64,
    /// The last finished utterance.
    ready: Vec<i16>,
}

impl VoiceDetector {
    /// `delay` is the number of 16 kHz samples the stream lags behind the device (resampling).
    pub fn new(config: VadConfig, delay: usize) -> Result<Self> {
        config.validate()?;
        let max = secs(config.max_utterance_secs) as usize;
        let pre = secs(config.pre_roll_secs) as usize + BLOCK;
        Ok(Self {
            detector: earshot::Detector::default_boxed(),
            block: [0.0; BLOCK],
            block_fill: 0,
            pos: 0,
            delay: delay as u64,
            echo_floor: 0.0,
            last_score: 0.0,
            speaking: false,
            interrupted: false,
            start: None,
            voiced: 0,
            silence: 0,
            last_voiced_end: 0,
            pre_roll: vec![0; pre],
            pre_roll_at: 0,
            collecting: Vec::with_capacity(max + pre + BLOCK),
            origin: 0,
            ready: Vec::with_capacity(max + pre + BLOCK),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }
    /// Whether an utterance is in progress (after `SpeechStarted`, before `SpeechStopped`).
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }
    /// True once per candidate utterance, when it has `barge_in_secs` of voiced audio (or has
    /// become speech): the moment to stop our playback.
    pub fn take_interrupt(&mut self) -> bool {
        let due = self.start.is_some() && (self.speaking || self.voiced >= secs(self.config.barge_in_secs).max(1));
        let fire = due && !self.interrupted;
        self.interrupted |= due;
        fire
    }
    /// earshot's score for the last block.
    pub fn last_score(&self) -> f32 {
        self.last_score
    }
    /// While our own audio plays, a block must also be at least this loud (RMS) to count.
    pub fn set_echo_floor(&mut self, rms: f32) {
        self.echo_floor = rms;
    }
    /// The last complete utterance, 16 kHz mono.
    pub fn utterance(&self) -> &[i16] {
        &self.ready
    }

    fn ms(&self, pos: u64) -> u64 {
        pos.saturating_sub(self.delay) * 1000 / SPEECH_RATE as u64
    }

    /// Process 16 kHz mono samples (any count; the pipeline passes 20 ms frames).
    pub fn process(&mut self, samples: &[f32], events: &mut Events) {
        let mut rest = samples;
        while !rest.is_empty() {
            let n = (BLOCK - self.block_fill).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            rest = tail;
            // The resampler can overshoot full-scale input slightly; the detector's model wants
            // [-1, 1] (earshot debug-asserts it; found by the ffi_audio fuzz target).
            for (dst, &s) in self.block[self.block_fill..self.block_fill + n].iter_mut().zip(piece) {
                *dst = s.clamp(-1.0, 1.0);
            }
            self.block_fill += n;
            for &s in piece {
                let s = to_i16(s);
                let at = self.pre_roll_at;
                self.pre_roll[at] = s;
                self.pre_roll_at = (at + 1) % self.pre_roll.len();
                if self.start.is_some() {
                    self.collecting.push(s);
                }
            }
            self.pos += n as u64;
            if self.block_fill == BLOCK {
                self.block_fill = 0;
                self.classify_block(events);
            }
        }
    }

    fn classify_block(&mut self, events: &mut Events) {
        let score = self.detector.predict_f32(&self.block);
        self.last_score = score;
        let rms = super::rms(&self.block);
        let speechlike = score >= self.config.confidence && rms >= self.config.min_volume;
        // Under the echo floor a speech-like block may be our own playback: it cannot start or
        // extend speech, and before speech is confirmed it does not count as silence either
        // (a user's quiet syllables between loud ones must not reset the start).
        let voiced = speechlike && rms >= self.echo_floor;
        let silent = !voiced && (self.speaking || !speechlike);
        let (block_start, block_end) = (self.pos - BLOCK as u64, self.pos);
        if voiced {
            if self.start.is_none() {
                self.begin_candidate(block_start);
            }
            self.voiced += BLOCK as u64;
            self.silence = 0;
            self.last_voiced_end = block_end;
            if !self.speaking && self.voiced >= secs(self.config.start_secs).max(1) {
                self.speaking = true;
                let at_ms = self.ms(self.start.unwrap_or(block_start));
                events.push(AudioEvent::SpeechStarted { at_ms });
            }
        } else if silent && self.start.is_some() {
            self.silence += BLOCK as u64;
            if self.silence >= secs(self.config.stop_secs).max(1) {
                self.finish(events);
            }
        }
        if self.collecting.len() as u64 >= secs(self.config.max_utterance_secs) {
            self.finish(events);
        }
    }

    fn begin_candidate(&mut self, block_start: u64) {
        self.start = Some(block_start);
        self.interrupted = false;
        self.voiced = 0;
        self.silence = 0;
        // The pre-roll ring (oldest first) becomes the head of the utterance.
        self.collecting.clear();
        let (newer, older) = self.pre_roll.split_at(self.pre_roll_at);
        let filled = (self.pos as usize).min(self.pre_roll.len());
        let all = older.iter().chain(newer.iter());
        self.collecting.extend(all.skip(self.pre_roll.len() - filled));
        self.origin = self.pos - filled as u64;
    }

    /// End the candidate or utterance; a real utterance becomes `ready` with an event.
    fn finish(&mut self, events: &mut Events) {
        let start = self.start.take().unwrap_or(self.pos);
        if self.speaking {
            self.speaking = false;
            // Keep the pre-roll before the start and a short tail after the last voiced block.
            let head = secs(self.config.pre_roll_secs);
            let from = start.saturating_sub(head).max(self.origin) - self.origin;
            let to = (self.last_voiced_end + head / 2).min(self.pos) - self.origin;
            std::mem::swap(&mut self.ready, &mut self.collecting);
            self.ready.truncate(to as usize);
            self.ready.drain(..from as usize);
            events.push(AudioEvent::SpeechStopped {
                start_ms: self.ms(start),
                end_ms: self.ms(self.last_voiced_end),
                samples: self.ready.len(),
            });
        }
        self.collecting.clear();
        self.voiced = 0;
        self.silence = 0;
    }

    /// Forget everything (a new stream), keeping the allocated buffers.
    pub fn reset(&mut self) {
        self.detector.reset();
        self.block_fill = 0;
        self.pos = 0;
        self.speaking = false;
        self.interrupted = false;
        self.start = None;
        self.voiced = 0;
        self.silence = 0;
        self.pre_roll.fill(0);
        self.pre_roll_at = 0;
        self.collecting.clear();
    }
}

#[cfg(test)]
mod clamp_tests {
    use super::*;

    /// Regression (fuzz: ffi_audio): out-of-range samples reach the detector clamped.
    #[test]
    fn samples_beyond_full_scale_reach_the_detector_clamped() {
        let mut vad = VoiceDetector::new(VadConfig::default(), 0).unwrap();
        let mut events = Events::with_capacity(4);
        let loud: Vec<f32> = (0..BLOCK * 2).map(|i| if i % 2 == 0 { 1.7 } else { -f32::INFINITY }).collect();
        vad.process(&loud, &mut events);
        assert!(vad.block.iter().all(|s| (-1.0..=1.0).contains(s)), "block holds out-of-range samples");
        assert!((0.0..=1.0).contains(&vad.last_score()));
    }
}
