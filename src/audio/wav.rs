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
/// Streamed WAVs (espeak-ng `--stdout`, sox to a pipe) are readable too: their header
/// cannot know the length, so it claims more than there is; the data runs to the end.
pub fn decode(bytes: &[u8]) -> Result<(Vec<i16>, u32, u16)> {
    let bad = |e: hound::Error| Error::invalid_argument(format!("not a readable WAV file: {e}"));
    let fixed = with_true_sizes(bytes);
    let reader = hound::WavReader::new(Cursor::new(fixed.as_deref().unwrap_or(bytes))).map_err(bad)?;
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

/// A copy of `bytes` whose RIFF and `data` sizes say what is really there, when the `data`
/// chunk claims more bytes than follow it (a header written before the length was known).
fn with_true_sizes(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let rest = bytes.len() - at - 8;
        if &bytes[at..at + 4] == b"data" {
            if size <= rest {
                return None;
            }
            let mut out = bytes[..at + 8 + (rest & !1)].to_vec();
            out[at + 4..at + 8].copy_from_slice(&((rest & !1) as u32).to_le_bytes());
            let riff = (out.len() - 8) as u32;
            out[4..8].copy_from_slice(&riff.to_le_bytes());
            return Some(out);
        }
        at += 8 + size + (size & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_streamed_header_reads_to_the_end() {
        let mut wav = super::encode(&[1, -2, 3, -4], 22_050);
        // What espeak-ng --stdout writes: sizes it cannot know yet.
        wav[4..8].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        wav[40..44].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert_eq!(super::decode(&wav).unwrap(), (vec![1, -2, 3, -4], 22_050, 1));
    }
}
