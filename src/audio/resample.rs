//! Stream resampling on 20 ms frames between any two rates, with at most a few ms of delay and
//! no allocation per frame.
//!
//! Each resampler gets a delay budget (10 ms for capture, 5 ms for each of the two playback
//! stages) and spends it on filter length: a longer filter is a sharper one. Two engines:
//! - **blocks**: rubato's synchronous FFT resampler on blocks of 20 ms (10 ms of delay) or
//!   10 ms (5 ms), when 20 ms splits into such blocks at both rates (48 k ↔ 16 k, 24 k → 48 k,
//!   44.1 k → 16 k…): every frame maps to exactly one frame.
//! - **sinc**: rubato's windowed-sinc resampler on ~1 ms chunks, for every other pair
//!   (11.025 k ↔ anything, odd rates). Input and output go through two small FIFOs, so frames
//!   of any length work; the output FIFO starts with one chunk's worth of silence so it never
//!   runs dry. Delay: half the filter plus that silence.
//!
//! The delay is constant for the life of the stream and reported by [`FrameResampler::delay`].

use crate::error::{Error, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Indexing, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Longest frame `process` takes at once, in ms (frames are 20 ms; this leaves room).
const MAX_CALL_MS: usize = 60;

/// Mono resampler from `from` Hz to `to` Hz for a continuous stream cut into frames.
pub struct FrameResampler {
    engine: Engine,
    from: u32,
    to: u32,
}

enum Engine {
    /// Equal rates: a copy.
    Pass,
    /// FFT blocks: `blocks` per 20 ms frame of `in_len` → `out_len` samples.
    Blocks { fft: Box<Fft<f32>>, blocks: usize, in_len: usize, out_len: usize },
    /// Windowed sinc through FIFOs.
    Sinc(Box<SincStream>),
}

struct SincStream {
    sinc: Async<f32>,
    chunk: usize,
    /// Silence the output FIFO starts with.
    prime: usize,
    input: Vec<f32>,
    in_len: usize,
    output: Vec<f32>,
    out_len: usize,
}

impl FrameResampler {
    /// A resampler from `from` Hz to `to` Hz (any rates from 1 kHz to 384 kHz) adding at most 10 ms.
    pub fn new(from: u32, to: u32) -> Result<Self> {
        Self::with_max_delay(from, to, 10)
    }

    /// A resampler adding at most `max_delay_ms` (5 or more): the sharpest filter that fits.
    pub fn with_max_delay(from: u32, to: u32, max_delay_ms: u32) -> Result<Self> {
        let max_delay_ms = max_delay_ms.max(5);
        for rate in [from, to] {
            if !(1_000..=384_000).contains(&rate) {
                return Err(Error::invalid_argument(format!("rate {rate} Hz is outside 1000..384000")));
            }
        }
        let engine = if from == to {
            Engine::Pass
        } else if let Some(blocks) = fft_blocks(from, to, max_delay_ms) {
            let (in_len, out_len) = ((from / 50) as usize, (to / 50) as usize);
            let fft = Fft::new(from as usize, to as usize, in_len / blocks, 1, FixedSync::Both)
                .map_err(|e| Error::invalid_argument(format!("resampler {from} → {to} Hz: {e}")))?;
            if fft.input_frames_next() * blocks != in_len || fft.output_frames_next() * blocks != out_len {
                return Err(Error::invalid_argument(format!("resampler {from} → {to} Hz: no exact block framing")));
            }
            Engine::Blocks { fft: Box::new(fft), blocks, in_len, out_len }
        } else {
            Engine::Sinc(Box::new(SincStream::new(from, to, max_delay_ms)?))
        };
        Ok(Self { engine, from, to })
    }

    /// Delay in output samples that resampling adds (0 when rates are equal). Constant.
    pub fn delay(&self) -> usize {
        match &self.engine {
            Engine::Pass => 0,
            Engine::Blocks { fft, .. } => fft.output_delay(),
            Engine::Sinc(s) => s.sinc.output_delay() + s.prime,
        }
    }

    /// The delay in ms (rounded up), for reports.
    pub fn delay_ms(&self) -> f64 {
        self.delay() as f64 * 1000.0 / self.to as f64
    }

    /// Resample the next stretch of the stream. Lengths follow the stream: over many calls
    /// `output` lengths must add up to `input` lengths × to / from (20 ms frames on both sides,
    /// [`super::frame_len_at`], do). With FFT blocks both must be exactly 20 ms.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<()> {
        match &mut self.engine {
            Engine::Pass => {
                if input.len() != output.len() {
                    return Err(Error::invalid_argument(format!(
                        "{} samples in, {} out at equal rates",
                        input.len(),
                        output.len()
                    )));
                }
                output.copy_from_slice(input);
                Ok(())
            }
            Engine::Blocks { fft, blocks, in_len, out_len } => {
                if input.len() != *in_len || output.len() != *out_len {
                    return Err(Error::invalid_argument(format!(
                        "frame of {} → {} samples, expected {} → {}",
                        input.len(),
                        output.len(),
                        in_len,
                        out_len
                    )));
                }
                let (bi, bo) = (*in_len / *blocks, *out_len / *blocks);
                for (i, o) in input.chunks_exact(bi).zip(output.chunks_exact_mut(bo)) {
                    let inp = InterleavedSlice::new(i, 1, bi).map_err(|e| Error::invalid_argument(e.to_string()))?;
                    let mut out =
                        InterleavedSlice::new_mut(o, 1, bo).map_err(|e| Error::invalid_argument(e.to_string()))?;
                    fft.process_into_buffer(&inp, &mut out, None)
                        .map_err(|e| Error::invalid_argument(e.to_string()))?;
                }
                Ok(())
            }
            Engine::Sinc(s) => s.process(input, output, self.from, self.to),
        }
    }

    /// Forget the past (a new stream).
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::Pass => {}
            Engine::Blocks { fft, .. } => fft.reset(),
            Engine::Sinc(s) => s.reset(),
        }
    }
}

/// FFT blocks per 20 ms frame: the fewest (longest blocks, sharpest filter) whose delay, half a
/// block, fits `max_delay_ms`, when 20 ms splits into that many blocks the FFT resampler can
/// work on (a multiple of `rate / gcd` samples at both rates). `None`: the sinc engine takes over.
fn fft_blocks(from: u32, to: u32, max_delay_ms: u32) -> Option<usize> {
    if !from.is_multiple_of(50) || !to.is_multiple_of(50) {
        return None;
    }
    // Whole minimum FFT units in 20 ms: gcd / 50.
    let units = (gcd(from, to) / 50) as usize;
    let fewest = 10usize.div_ceil(max_delay_ms as usize);
    (fewest..=units.min(fewest * 2)).find(|b| units.is_multiple_of(*b))
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl SincStream {
    fn new(from: u32, to: u32, max_delay_ms: u32) -> Result<Self> {
        let ratio = to as f64 / from as f64;
        // About 1 ms of input per chunk: small enough that waiting for a whole chunk costs
        // little delay, large enough that per-call overhead stays small.
        let chunk = (from as usize / 1000).max(8);
        // The filter gets what the budget leaves after the chunk: its delay is half its length.
        let sinc_len = (from as usize * (max_delay_ms as usize - 1) / 1000 * 2).saturating_sub(2 * chunk).clamp(16, 256) / 8 * 8;
        let params = SincInterpolationParameters {
            sinc_len,
            f_cutoff: None,
            oversampling_factor: 128,
            interpolation: SincInterpolationType::Linear,
            window: WindowFunction::BlackmanHarris2,
        };
        let sinc = Async::new_sinc(ratio, 1.0, &params, chunk, 1, FixedAsync::Input)
            .map_err(|e| Error::invalid_argument(format!("resampler {from} → {to} Hz: {e}")))?;
        // One chunk's output plus rounding: what may still sit unprocessed in the input FIFO.
        let prime = (chunk as f64 * ratio).ceil() as usize + 2;
        let max_in = from as usize * MAX_CALL_MS / 1000 + chunk;
        let max_out = to as usize * MAX_CALL_MS / 1000 + prime + sinc.output_frames_max();
        let mut s = Self { sinc, chunk, prime, input: vec![0.0; max_in], in_len: 0, output: vec![0.0; max_out], out_len: 0 };
        s.reset();
        Ok(s)
    }

    fn reset(&mut self) {
        self.sinc.reset();
        self.in_len = 0;
        self.output[..self.prime].fill(0.0);
        self.out_len = self.prime;
    }

    fn process(&mut self, input: &[f32], output: &mut [f32], from: u32, to: u32) -> Result<()> {
        let max_in = self.input.len() - self.chunk;
        if input.len() > max_in || output.len() > to as usize * MAX_CALL_MS / 1000 {
            return Err(Error::invalid_argument(format!(
                "{} → {} samples at once: frames of up to {MAX_CALL_MS} ms at {from} → {to} Hz",
                input.len(),
                output.len()
            )));
        }
        self.input[self.in_len..self.in_len + input.len()].copy_from_slice(input);
        self.in_len += input.len();
        let mut read = 0;
        while self.in_len - read >= self.chunk {
            let need_out = self.sinc.output_frames_next();
            if self.out_len + need_out > self.output.len() {
                break; // the caller takes less than it gives; keep the rest for later
            }
            let inp = InterleavedSlice::new(&self.input[..self.in_len], 1, self.in_len)
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
            let len = self.output.len();
            let mut out =
                InterleavedSlice::new_mut(&mut self.output, 1, len).map_err(|e| Error::invalid_argument(e.to_string()))?;
            let at = Indexing { input_offset: read, output_offset: self.out_len, partial_len: None, active_channels_mask: None };
            let (used, made) = self
                .sinc
                .process_into_buffer(&inp, &mut out, Some(&at))
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
            read += used;
            self.out_len += made;
        }
        self.input.copy_within(read..self.in_len, 0);
        self.in_len -= read;

        // Hand out what is ready; a stream that asks for more than it gave gets silence.
        let n = output.len().min(self.out_len);
        output[..n].copy_from_slice(&self.output[..n]);
        output[n..].fill(0.0);
        self.output.copy_within(n..self.out_len, 0);
        self.out_len -= n;
        Ok(())
    }
}
