//! Acoustic echo cancellation on the 16 kHz capture stream, with the `aec3` crate (a pure-Rust
//! port of WebRTC's AEC3, so it runs natively and in the wasm component alike).
//!
//! The far-end reference is what the pipeline plays (the 48 kHz mix, before the device
//! resampler), brought to 16 kHz by our FFT resampler rather than AEC3's own sinc resampler:
//! cheaper, and its sharper filter leaves less aliasing in the reference, worth 4 dB of ERLE
//! (single talk 28 → 32 dB in the `aec` bench's room, double talk 14.9 → 16.7 dB). AEC3 estimates the playback→capture delay itself (matched filters over the
//! downsampled reference), adapts a linear echo filter and suppresses what is left. Nothing
//! about the room or the sound card is configured.
//!
//! Why 16 kHz: the canceller serves the VAD, barge-in and the utterances, which all run at
//! 16 kHz, and AEC3 at 16 kHz is one band (no band splitting), the cheapest it runs.

use aec3::api::config::EchoCanceller3Config;
use aec3::api::control::EchoControl;
use aec3::audio_processing::aec3::echo_canceller3::EchoCanceller3;
use aec3::audio_processing::audio_buffer::AudioBuffer;
use aec3::audio_processing::high_pass_filter::HighPassFilter;
use aec3::audio_processing::stream_config::StreamConfig;

use super::resample::FrameResampler;
use crate::error::Result;

/// AEC3 works on 10 ms frames, at 16 kHz on both sides here.
const CHUNK_10MS: usize = (super::SPEECH_RATE / 100) as usize;
/// The reference arrives in 20 ms frames of the 48 kHz mix.
const RENDER_20MS: usize = (super::NET_RATE / 50) as usize;

/// Echo canceller: feed every played 48 kHz frame to [`EchoCanceller::render`] and clean every
/// 16 kHz mic frame with [`EchoCanceller::process`]. Playback goes in 20 ms frames; the mic in
/// any multiple of 10 ms (the pipeline passes 20 ms).
pub struct EchoCanceller {
    aec: EchoCanceller3,
    /// The played 48 kHz mix → 16 kHz, 10 ms late. The echo still comes later: it passes the
    /// device's output and input buffers (10 ms or more each with cpal, plus our resamplers)
    /// before it is in a mic frame, and AEC3 cannot cancel an echo that leads its reference.
    to_render_rate: FrameResampler,
    render16: Vec<f32>,
    render: AudioBuffer,
    capture: AudioBuffer,
    /// 16 kHz mono, both directions.
    stream_config: StreamConfig,
    /// WebRTC's capture high-pass (removes DC and rumble the echo filter cannot model).
    high_pass: HighPassFilter,
    /// One 10 ms capture chunk, in the shape the high-pass filter takes.
    chunk: Vec<Vec<f32>>,
    /// The linear filter's output (echo subtracted, nothing suppressed), when that is the output.
    linear: Option<AudioBuffer>,
}

impl EchoCanceller {
    /// A canceller with WebRTC's default AEC3 tuning.
    pub fn new() -> Result<Self> {
        Self::with_output(false)
    }

    /// `linear`: output the linear filter's output (echo subtracted, no suppression) instead
    /// of AEC3's suppressed output.
    pub fn with_output(linear: bool) -> Result<Self> {
        let rate = super::SPEECH_RATE as usize;
        let mut config = EchoCanceller3Config::default();
        config.filter.export_linear_aec_output = linear;
        // Three matched filters still cover ~300 ms of playback→capture delay (the issue's
        // rooms reach 200 ms) for 3/5 of the delay estimator's cost, which dominates AEC3's;
        // pre-echo detection is another ~20 % of it and our echo paths start with the direct sound.
        config.delay.num_filters = 3;
        config.delay.detect_pre_echo = false;
        // The delay search on a 2 kHz copy of the signals (WebRTC's other setting, default 4 kHz):
        // half the cost again; the 4 ms alignment it finds is refined by the linear filter.
        config.delay.down_sampling_factor = 8;
        // An 80 ms linear filter (default 52 ms) so a room's reverb tail is cancelled, not
        // left to the suppressor: the default length alone caps ERLE at ~25 dB in a 120 ms tail.
        config.filter.main.length_blocks = 20;
        config.filter.shadow.length_blocks = 20;
        // Barge-in: a user's first syllable must get through the suppressor at once. Its gain
        // may grow 4× per 4 ms block (default 2×) and starts from 0.01 (default 1e-5), so a
        // word is passed within ~20 ms instead of ~70 ms; the echo gate in the pipeline keeps
        // the residual echo from interrupting (`echo_tests`, `aec` bench: none in 21 min).
        config.suppressor.normal_tuning.max_inc_factor = 4.0;
        config.suppressor.nearend_tuning.max_inc_factor = 4.0;
        config.suppressor.floor_first_increase = 0.01;
        // Headsets and loopbacks have no echo: the HMM classifier finds that within seconds and
        // AEC3 goes transparent. Without it, a headset user's words were suppressed as if echo
        // and barge-in took 0.7–1.2 s.
        config.transparent_mode.use_hmm = true;
        Ok(Self {
            aec: EchoCanceller3::new(config, rate as i32, 1, 1),
            to_render_rate: FrameResampler::with_max_delay(super::NET_RATE, super::SPEECH_RATE, 10)?,
            render16: vec![0.0; 2 * CHUNK_10MS],
            linear: linear.then(|| AudioBuffer::from_sample_rates(rate, 1, rate, 1, rate)),
            render: AudioBuffer::from_sample_rates(rate, 1, rate, 1, rate),
            capture: AudioBuffer::from_sample_rates(rate, 1, rate, 1, rate),
            stream_config: StreamConfig::new(rate, 1, false),
            high_pass: HighPassFilter::new(rate as i32, 1),
            chunk: vec![vec![0.0; CHUNK_10MS]],
        })
    }

    /// What is being played (mono, 48 kHz, a multiple of 20 ms), in play order.
    pub fn render(&mut self, played: &[f32]) -> Result<()> {
        for frame in played.chunks_exact(RENDER_20MS) {
            self.to_render_rate.process(frame, &mut self.render16)?;
            for piece in self.render16.chunks_exact(CHUNK_10MS) {
                self.render.copy_from(&[piece], &self.stream_config);
                self.aec.analyze_render(&mut self.render);
            }
        }
        Ok(())
    }

    /// Removes the echo of what was rendered from `mic` (mono, 16 kHz, a multiple of 10 ms), in place.
    pub fn process(&mut self, mic: &mut [f32]) {
        for piece in mic.chunks_exact_mut(CHUNK_10MS) {
            self.chunk[0].copy_from_slice(piece);
            self.high_pass.process(&mut self.chunk);
            self.capture.copy_from(&[&self.chunk[0]], &self.stream_config);
            self.aec.analyze_capture(&mut self.capture);
            match &mut self.linear {
                Some(linear) => {
                    self.aec.process_capture_with_linear_output(&mut self.capture, linear, false);
                    linear.copy_to_stream(&self.stream_config, &mut [piece]);
                }
                None => {
                    self.aec.process_capture(&mut self.capture, false);
                    self.capture.copy_to_stream(&self.stream_config, &mut [piece]);
                }
            }
        }
    }

    /// AEC3's own view: its delay estimate (ms) and echo return loss enhancement (dB).
    pub fn metrics(&self) -> (i32, f64) {
        let m = self.aec.metrics();
        (m.delay_ms, m.echo_return_loss_enhancement)
    }
}
