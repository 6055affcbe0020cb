//! WAV bytes for utterances (ready for a speech-to-text upload) and WAV reading for hosts.

use crate::error::{Error, Result};
use std::io::Cursor;

/// 16-bit PCM WAV bytes of mono `samples` at `rate`.
pub fn encode(samples: &[i16], rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut cursor = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        // Writing to memory cannot fail except on size overflow (> 4 GiB), which 16-bit mono
        // utterances cannot reach; fall back to an empty result rather than panic.
        let Ok(mut w) = hound::WavWriter::new(&mut cursor, spec) else { return Vec::new() };
        let mut w16 = w.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w16.write_sample(s);
        }
        if w16.flush().is_err() || w.finalize().is_err() {
            return Vec::new();
        }
    }
    cursor.into_inner()
}

/// Interleaved 16-bit samples, rate and channels of a WAV file's bytes (16-bit integer or
/// 32-bit float PCM).
pub fn decode(bytes: &[u8]) -> Result<(Vec<i16>, u32, u16)> {
    let bad = |e: hound::Error| Error::invalid_argument(format!("not a readable WAV file: {e}"));
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(bad)?;
    let spec = reader.spec();
    let samples = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => reader.into_samples::<i16>().collect::<std::result::Result<Vec<_>, _>>().map_err(bad)?,
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .map(|s| s.map(super::to_i16))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(bad)?,
        (f, b) => return Err(Error::invalid_argument(format!("WAV format {f:?} {b}-bit is not supported: use 16-bit PCM"))),
    };
    Ok((samples, spec.sample_rate, spec.channels))
}
