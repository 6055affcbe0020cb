//! Fixed 20 ms frame resampling with rubato's synchronous FFT resampler: exactly one output
//! frame per input frame, state kept across frames, 10 ms of delay, no allocation per frame.

use crate::error::{Error, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Mono resampler from `from` Hz to `to` Hz on 20 ms frames. Equal rates pass through.
pub struct FrameResampler {
    inner: Option<Fft<f32>>,
    in_len: usize,
    out_len: usize,
}

impl FrameResampler {
    /// A resampler from `from` Hz to `to` Hz, 20 ms at a time; both rates must split into 20 ms frames.
    pub fn new(from: u32, to: u32) -> Result<Self> {
        if !from.is_multiple_of(50) || !to.is_multiple_of(50) || from == 0 || to == 0 {
            return Err(Error::invalid_argument(format!("rates {from} → {to} Hz do not split into 20 ms frames")));
        }
        let (in_len, out_len) = ((from / 50) as usize, (to / 50) as usize);
        let inner = if from == to {
            None
        } else {
            let fft = Fft::new(from as usize, to as usize, in_len, 1, FixedSync::Both)
                .map_err(|e| Error::invalid_argument(format!("resampler {from} → {to} Hz: {e}")))?;
            if fft.input_frames_next() != in_len || fft.output_frames_next() != out_len {
                return Err(Error::invalid_argument(format!("resampler {from} → {to} Hz: no exact 20 ms framing")));
            }
            Some(fft)
        };
        Ok(Self { inner, in_len, out_len })
    }

    /// Samples per input frame.
    pub fn input_len(&self) -> usize {
        self.in_len
    }
    /// Samples per output frame.
    pub fn output_len(&self) -> usize {
        self.out_len
    }
    /// Delay in output samples that resampling adds (0 when rates are equal).
    pub fn delay(&self) -> usize {
        self.inner.as_ref().map_or(0, |f| f.output_delay())
    }

    /// Resample one frame: `input.len() == input_len()`, `output.len() == output_len()`.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<()> {
        if input.len() != self.in_len || output.len() != self.out_len {
            return Err(Error::invalid_argument(format!(
                "frame of {} → {} samples, expected {} → {}",
                input.len(),
                output.len(),
                self.in_len,
                self.out_len
            )));
        }
        let Some(fft) = &mut self.inner else {
            output.copy_from_slice(input);
            return Ok(());
        };
        let inp = InterleavedSlice::new(input, 1, self.in_len).map_err(|e| Error::invalid_argument(e.to_string()))?;
        let mut out =
            InterleavedSlice::new_mut(output, 1, self.out_len).map_err(|e| Error::invalid_argument(e.to_string()))?;
        fft.process_into_buffer(&inp, &mut out, None).map_err(|e| Error::invalid_argument(e.to_string()))?;
        Ok(())
    }

    /// Forget the past (a new stream).
    pub fn reset(&mut self) {
        if let Some(f) = &mut self.inner {
            f.reset();
        }
    }
}
