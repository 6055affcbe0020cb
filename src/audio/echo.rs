//! Acoustic echo cancellation on the 16 kHz capture stream, with the `aec3` crate (a pure-Rust
//! port of WebRTC's AEC3, so it runs natively and in the wasm component alike).
//!
//! Why `aec3` and not `sonora-aec3` (a port of a newer AEC3, M145): both cancel alike here
//! (`aec` bench: ERLE 30–34 dB single talk, 16.6 dB double talk, the same barge-in figures),
//! but sonora's biquads use `f32::mul_add`, a libm call on baseline x86-64 and in wasm (a
//! quarter of its time): its canceller took 77 µs per 20 ms frame natively against 57 µs, and
//! was no faster in the component.
//!
//! The far-end reference is what the pipeline plays (the 48 kHz mix, before the device
//! resampler), brought to 16 kHz by our FFT resampler. AEC3 estimates the playback→capture
//! delay itself (matched filters over the downsampled reference), adapts a linear echo filter
//! and suppresses what is left. Nothing about the room or the sound card is configured.
//!
//! We drive AEC3's block processor directly: a 20 ms frame at 16 kHz is exactly five of its
//! 4 ms blocks, so the 10 ms framing WebRTC puts around it is not needed, nor the 4 ms of
//! delay that framing adds (the suppressor's overlap-add keeps its own 4 ms:
//! [`EchoCanceller::DELAY`]). Why 16 kHz: the canceller serves the VAD, barge-in and the
//! utterances, which all run at 16 kHz, and AEC3 at 16 kHz is one band, the cheapest it runs.

use super::resample::FrameResampler;
use crate::error::{Error, Result};
use aec3::api::config::EchoCanceller3Config;
use aec3::audio_processing::aec3::block::Block;
use aec3::audio_processing::aec3::block_processor::BlockProcessor;

/// AEC3's block: 64 samples, 4 ms at 16 kHz.
const BLOCK: usize = 64;
/// The reference arrives in 20 ms frames of the 48 kHz mix.
const RENDER_20MS: usize = (super::NET_RATE / 50) as usize;
/// AEC3 works on 16-bit sample values held in floats; the pipeline on ±1.0.
const S16: f32 = 32768.0;

/// Echo canceller: feed every played 48 kHz frame to [`EchoCanceller::render`] and clean every
/// 16 kHz mic frame with [`EchoCanceller::process`], both in 20 ms frames.
pub struct EchoCanceller {
    aec: BlockProcessor,
    /// The played 48 kHz mix → 16 kHz, 10 ms late. The echo still comes later: it passes the
    /// device's output and input buffers (10 ms or more each with cpal, plus our resamplers)
    /// before it is in a mic frame, and AEC3 cannot cancel an echo that leads its reference.
    to_render_rate: FrameResampler,
    render16: Vec<f32>,
    render: Block,
    capture: Block,
    /// Removes DC and rumble the echo filter cannot model (as WebRTC does before AEC3).
    high_pass: HighPass,
    /// The linear filter's output (echo subtracted, nothing suppressed), when that is the output.
    linear: Option<Block>,
}

impl EchoCanceller {
    /// Capture samples (16 kHz) the canceller holds back: one block, 4 ms, for the suppressor's
    /// overlap-add.
    pub const DELAY: usize = BLOCK;

    /// A canceller with the tuning below.
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
        // the residual echo from interrupting (`echo_tests`, `aec` bench).
        config.suppressor.normal_tuning.max_inc_factor = 4.0;
        config.suppressor.nearend_tuning.max_inc_factor = 4.0;
        config.suppressor.floor_first_increase = 0.01;
        // Headsets and loopbacks have no echo: the HMM classifier finds that within seconds and
        // AEC3 goes transparent. Without it, a headset user's words were suppressed as if echo
        // and barge-in took 0.7–1.2 s.
        config.transparent_mode.use_hmm = true;
        Ok(Self {
            aec: BlockProcessor::new(config, rate as i32, 1, 1),
            to_render_rate: FrameResampler::with_max_delay(super::NET_RATE, super::SPEECH_RATE, 10)?,
            render16: vec![0.0; super::SPEECH_FRAME],
            render: Block::new(1, 1),
            capture: Block::new(1, 1),
            high_pass: HighPass::new(40.0, rate as f32),
            linear: linear.then(|| Block::new(1, 1)),
        })
    }

    /// What is being played (mono, 48 kHz, a multiple of 20 ms), in play order.
    pub fn render(&mut self, played: &[f32]) -> Result<()> {
        for frame in played.chunks_exact(RENDER_20MS) {
            self.to_render_rate.process(frame, &mut self.render16)?;
            for piece in self.render16.chunks_exact(BLOCK) {
                for (r, &s) in self.render.view_mut(0, 0).iter_mut().zip(piece) {
                    *r = s * S16;
                }
                self.aec.buffer_render(&self.render);
            }
        }
        Ok(())
    }

    /// Removes the echo of what was rendered from `mic` (mono, 16 kHz, a multiple of 4 ms: the
    /// pipeline passes 20 ms), in place.
    pub fn process(&mut self, mic: &mut [f32]) -> Result<()> {
        if !mic.len().is_multiple_of(BLOCK) {
            return Err(Error::invalid_argument(format!("echo canceller: {} samples is not a multiple of {BLOCK}", mic.len())));
        }
        for piece in mic.chunks_exact_mut(BLOCK) {
            // WebRTC's test: a sample at the 16-bit rails means the echo path clipped.
            let saturated = piece.iter().any(|s| s.abs() * S16 >= 32_700.0);
            self.high_pass.process(piece, S16, self.capture.view_mut(0, 0));
            self.aec.process_capture(false, saturated, self.linear.as_mut(), &mut self.capture);
            let out = self.linear.as_ref().unwrap_or(&self.capture).view(0, 0);
            for (p, &s) in piece.iter_mut().zip(out) {
                *p = s / S16;
            }
        }
        Ok(())
    }

    /// AEC3's own view: its delay estimate (ms) and echo return loss enhancement (dB).
    pub fn metrics(&self) -> (i32, f64) {
        let m = self.aec.get_metrics();
        (m.delay_ms, m.echo_return_loss_enhancement)
    }
}

/// A 2nd-order Butterworth high-pass (bilinear transform, the audio EQ cookbook's form): DC
/// and rumble go, and the voice's fundamental keeps its phase (an 80 Hz 4th-order filter cut
/// the near-end correlation to 0.87; WebRTC's filter ahead of `aec3` kept 0.91, this one 0.97).
struct HighPass {
    /// b0, b1, b2, a1, a2 (a0 = 1).
    c: [f32; 5],
    /// x[n-1], x[n-2], y[n-1], y[n-2].
    z: [f32; 4],
}

impl HighPass {
    fn new(cutoff_hz: f32, rate: f32) -> Self {
        let w0 = 2.0 * std::f32::consts::PI * cutoff_hz / rate;
        // alpha = sin(w0) / 2Q with Q = 1/√2.
        let alpha = w0.sin() * std::f32::consts::FRAC_1_SQRT_2;
        let (cos, a0) = (w0.cos(), 1.0 + alpha);
        let b = (1.0 + cos) / 2.0 / a0;
        Self { c: [b, -2.0 * b, b, -2.0 * cos / a0, (1.0 - alpha) / a0], z: [0.0; 4] }
    }

    /// Filters `x` into `y`, scaled by `gain`.
    fn process(&mut self, x: &[f32], gain: f32, y: &mut [f32]) {
        let [b0, b1, b2, a1, a2] = self.c;
        let [mut x1, mut x2, mut y1, mut y2] = self.z;
        for (&x0, out) in x.iter().zip(y) {
            let y0 = b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
            (x2, x1, y2, y1) = (x1, x0, y1, y0);
            *out = y0 * gain;
        }
        self.z = [x1, x2, y1, y2];
    }
}
