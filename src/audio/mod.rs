//! Sans-IO voice pipeline on fixed 20 ms frames with caller-owned buffers.
//!
//! Nothing here touches a sound card or a clock: the host hands in one 20 ms device frame at a
//! time and gets Opus packets, playback frames and [`AudioEvent`]s back. Time is counted in
//! samples, so results are the same at any speed (tests, files, real devices).
//!
//! - capture: device rate → [`resample`] → 16 kHz → [`vad`] state machine → utterances (PCM, WAV)
//! - network: [`codec`] (libopus natively, pure-Rust opus-rs on wasm32) → [`jitter`] buffer per speaker
//! - playback: jitter buffers + [`playback`] (TTS queue) → [`mixer`] → device rate
//! - [`pipeline`] ties them into one duplex object with barge-in.

pub mod codec;
pub mod echo;
#[cfg(any(test, feature = "testkit"))]
pub mod echo_sim;
pub mod jitter;
pub mod mixer;
pub mod pipeline;
pub mod playback;
pub mod resample;
pub mod vad;
pub mod wav;

#[cfg(test)]
mod rate_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod echo_tests;

pub use codec::{Decoder, Encoder};
pub use echo::EchoCanceller;
#[cfg(any(target_arch = "wasm32", feature = "pure-opus", test))]
pub use codec::{PureOpusDecoder, PureOpusEncoder};
#[cfg(not(target_arch = "wasm32"))]
pub use codec::{LibOpusDecoder, LibOpusEncoder};
pub use jitter::{FrameKind, JitterBuffer};
pub use pipeline::{AudioConfig, AudioPipeline};
pub use playback::PlaybackQueue;
pub use resample::FrameResampler;
pub use vad::{VadConfig, VoiceDetector};

/// Every frame is 20 ms.
pub const FRAME_MS: u32 = 20;
/// Opus and mixing rate.
pub const NET_RATE: u32 = 48_000;
/// Samples per 20 ms frame at [`NET_RATE`].
pub const NET_FRAME: usize = (NET_RATE / 50) as usize;
/// Rate of utterances (what speech-to-text services want).
pub const SPEECH_RATE: u32 = 16_000;
/// Samples per 20 ms frame at [`SPEECH_RATE`].
pub const SPEECH_FRAME: usize = (SPEECH_RATE / 50) as usize;
/// Rate of the text-to-speech chunks the playback queue takes.
pub const TTS_RATE: u32 = 24_000;
/// Device and text-to-speech rates the pipeline accepts: any rate in this range (Hz).
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = 4_000..=384_000;
/// Common device rates (every rate in [`RATE_RANGE`] works; these are the ones tested).
pub const DEVICE_RATES: [u32; 12] =
    [8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400, 192_000];
/// Largest Opus packet for one frame (RFC 6716, 3.2.1).
pub const MAX_PACKET: usize = 1275;

/// What the pipeline reports. Produced synchronously by the frame calls and read with
/// [`AudioPipeline::poll_event`]. Times are milliseconds of device audio since the pipeline
/// started, already corrected for the resampler's delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AudioEvent {
    /// The user started speaking at `at_ms` (reported once the start time has been confirmed).
    SpeechStarted {
        /// When speech began (ms of device audio).
        at_ms: u64,
    },
    /// The utterance `start_ms..end_ms` is complete; read it with `utterance` / `utterance_wav`.
    SpeechStopped {
        /// When speech began (ms of device audio).
        start_ms: u64,
        /// End of the last voiced block (ms of device audio).
        end_ms: u64,
        /// Length of the stored utterance in 16 kHz mono samples (with pre-roll and tail).
        samples: usize,
    },
    /// The user spoke over the agent: playback stopped in this frame and `flushed_ms` of queued
    /// speech was dropped.
    BargeIn {
        /// Time of the capture frame that detected it (ms of device audio).
        at_ms: u64,
        /// Queued text-to-speech audio dropped, in ms.
        flushed_ms: u64,
    },
    /// The text-to-speech queue played out to its end.
    PlaybackFinished {
        /// Time of the speaker frame in which the queue ran out (ms of device audio).
        at_ms: u64,
    },
    /// Text-to-speech audio started playing in this frame (its first samples are in the
    /// speaker frame just produced): the moment a listener starts hearing the agent.
    PlaybackStarted {
        /// Time of the speaker frame holding its first samples (ms of device audio).
        at_ms: u64,
    },
}

/// Device frame format: rate and interleaved channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceFormat {
    /// Sample rate, Hz.
    pub rate: u32,
    /// Interleaved channels per frame.
    pub channels: u16,
}

impl DeviceFormat {
    /// Checks the rate and channel count are ones the pipeline supports.
    pub fn validate(&self) -> crate::error::Result<()> {
        if !RATE_RANGE.contains(&self.rate) {
            return Err(crate::Error::invalid_argument(format!(
                "device rate {} Hz is outside {}..{} Hz",
                self.rate,
                RATE_RANGE.start(),
                RATE_RANGE.end()
            )));
        }
        if !(1..=2).contains(&self.channels) {
            return Err(crate::Error::invalid_argument(format!("{} channels: only mono or stereo", self.channels)));
        }
        Ok(())
    }
    /// Frames (per channel) in the longest 20 ms frame: `rate / 50`, rounded up when 20 ms is
    /// not a whole number of samples (11 025 Hz: 221). Size buffers with it.
    pub fn frame_len(&self) -> usize {
        self.rate.div_ceil(50) as usize
    }
    /// Interleaved samples in the longest 20 ms frame.
    pub fn frame_samples(&self) -> usize {
        self.frame_len() * self.channels as usize
    }
    /// Frames (per channel) in the `k`-th 20 ms frame of a stream, see [`frame_len_at`].
    pub fn frame_len_at(&self, k: u64) -> usize {
        frame_len_at(self.rate, k)
    }
}

/// Samples in the `k`-th (from 0) 20 ms frame of a stream at `rate`: `rate / 50` when that is
/// whole; otherwise frames alternate between the two nearest lengths so that frames `0..k`
/// always hold exactly ⌊k × rate / 50⌋ samples (11 025 Hz: 220, 221, 220, 221…). Keeping every
/// frame exactly 20 ms long is what lets the pipeline add no buffering delay at such rates.
pub fn frame_len_at(rate: u32, k: u64) -> usize {
    let end = |k: u64| k * rate as u64 / 50;
    (end(k + 1) - end(k)) as usize
}

/// Root-mean-square of a frame of samples in [-1, 1].
pub(crate) fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt()
}

/// i16 → f32 in [-1, 1).
#[inline]
pub(crate) fn to_f32(s: i16) -> f32 {
    s as f32 / 32768.0
}

/// f32 → i16, saturating.
#[inline]
pub(crate) fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A bounded event queue: allocated once, so pushing in the frame path never allocates.
/// When a host never drains it, the oldest events are dropped.
#[derive(Debug)]
pub struct Events {
    queue: std::collections::VecDeque<AudioEvent>,
}

impl Events {
    /// An empty queue that keeps at most `n` events (the oldest are dropped first).
    pub fn with_capacity(n: usize) -> Self {
        Self { queue: std::collections::VecDeque::with_capacity(n.max(1)) }
    }
    /// Queues an event, dropping the oldest when full.
    pub fn push(&mut self, e: AudioEvent) {
        if self.queue.len() == self.queue.capacity() {
            self.queue.pop_front();
        }
        self.queue.push_back(e);
    }
    /// The oldest queued event, if any.
    pub fn pop(&mut self) -> Option<AudioEvent> {
        self.queue.pop_front()
    }
}
