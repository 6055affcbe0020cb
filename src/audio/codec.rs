//! Opus at 48 kHz mono, 20 ms frames, behind one pair of traits: libopus (the `opus` crate)
//! natively, opus-rs (pure Rust) on wasm32, where libopus does not build. Each target ships one
//! implementation; opus-rs comes natively only with the `pure-opus` feature (tests, fuzzing,
//! benches). Both produce standard Opus packets; the tests check they interoperate both ways.

use super::{MAX_PACKET, NET_FRAME, NET_RATE};
use crate::error::{Error, Result};

/// Encodes one 20 ms frame of 48 kHz mono samples in [-1, 1].
pub trait Encoder {
    /// Write one packet into `out` (at least [`MAX_PACKET`] bytes is always enough) and return
    /// its length.
    fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize>;
}

/// Decodes packets into 20 ms frames of 48 kHz mono samples.
pub trait Decoder {
    /// Decode `packet`, or conceal a lost one when it is `None`, into `out` (one frame).
    fn decode(&mut self, packet: Option<&[u8]>, out: &mut [f32]) -> Result<()>;
}

/// Settings both encoders understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpusSettings {
    /// Bits per second.
    pub bitrate: i32,
    /// 0..=10; `None` keeps the codec's default.
    pub complexity: Option<i32>,
}

impl Default for OpusSettings {
    fn default() -> Self {
        Self { bitrate: 32_000, complexity: None }
    }
}

impl OpusSettings {
    /// Checks the bitrate (6–510 kbit/s) and complexity (0–10) are in Opus's ranges.
    pub fn validate(&self) -> Result<()> {
        if !(6_000..=510_000).contains(&self.bitrate) || self.complexity.is_some_and(|c| !(0..=10).contains(&c)) {
            return Err(Error::invalid_argument(format!("opus settings out of range: {self:?}")));
        }
        Ok(())
    }
}

fn check_frame(pcm: usize, out: usize) -> Result<()> {
    if pcm != NET_FRAME {
        return Err(Error::invalid_argument(format!("opus frame must be {NET_FRAME} samples, got {pcm}")));
    }
    if out < 2 {
        return Err(Error::invalid_argument("opus output buffer too small"));
    }
    Ok(())
}

/// A decoder must produce exactly one 20 ms frame per packet.
fn one_frame(decoded: usize) -> Result<()> {
    if decoded != NET_FRAME {
        return Err(Error::invalid_argument(format!("opus packet holds {decoded} samples, not one 20 ms frame")));
    }
    Ok(())
}

fn codec_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid_argument(format!("opus {what}: {e}"))
}

/// The default encoder for this target: libopus natively, opus-rs on wasm32.
pub fn default_encoder(settings: OpusSettings) -> Result<Box<dyn Encoder + Send>> {
    settings.validate()?;
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(Box::new(LibOpusEncoder::new(settings)?));
    #[cfg(target_arch = "wasm32")]
    return Ok(Box::new(PureOpusEncoder::new(settings)?));
}

/// The default decoder for this target.
pub fn default_decoder() -> Result<Box<dyn Decoder + Send>> {
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(Box::new(LibOpusDecoder::new()?));
    #[cfg(target_arch = "wasm32")]
    return Ok(Box::new(PureOpusDecoder::new()?));
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{LibOpusDecoder, LibOpusEncoder};

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::*;

    /// libopus 1.6 (bundled by the `opus` crate), VOIP application.
    pub struct LibOpusEncoder(opus::Encoder);

    impl LibOpusEncoder {
        /// An encoder with these settings (mono, 20 ms frames).
        pub fn new(settings: OpusSettings) -> Result<Self> {
            settings.validate()?;
            let mut enc = opus::Encoder::new(NET_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(|e| codec_err("encoder", e))?;
            enc.set_bitrate(opus::Bitrate::Bits(settings.bitrate)).map_err(|e| codec_err("bitrate", e))?;
            if let Some(c) = settings.complexity {
                enc.set_complexity(c).map_err(|e| codec_err("complexity", e))?;
            }
            Ok(Self(enc))
        }
        /// The complexity in effect (libopus's default when none was set).
        pub fn complexity(&mut self) -> Result<i32> {
            self.0.get_complexity().map_err(|e| codec_err("complexity", e))
        }
        /// Samples of look-ahead the encoder adds.
        pub fn lookahead(&mut self) -> Result<usize> {
            self.0.get_lookahead().map(|l| l as usize).map_err(|e| codec_err("lookahead", e))
        }
    }

    impl Encoder for LibOpusEncoder {
        fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize> {
            check_frame(pcm.len(), out.len())?;
            let cap = out.len().min(MAX_PACKET);
            self.0.encode_float(pcm, &mut out[..cap]).map_err(|e| codec_err("encode", e))
        }
    }

    /// The libopus decoder, used natively.
    pub struct LibOpusDecoder(opus::Decoder);

    impl LibOpusDecoder {
        /// A mono decoder.
        pub fn new() -> Result<Self> {
            opus::Decoder::new(NET_RATE, opus::Channels::Mono).map(Self).map_err(|e| codec_err("decoder", e))
        }
    }

    impl Decoder for LibOpusDecoder {
        fn decode(&mut self, packet: Option<&[u8]>, out: &mut [f32]) -> Result<()> {
            check_frame(out.len(), 2)?;
            // An empty packet asks libopus for packet-loss concealment.
            one_frame(self.0.decode_float(packet.unwrap_or(&[]), out, false).map_err(|e| codec_err("decode", e))?)
        }
    }
}

#[cfg(any(target_arch = "wasm32", feature = "pure-opus", test))]
pub use pure::{PureOpusDecoder, PureOpusEncoder};

#[cfg(any(target_arch = "wasm32", feature = "pure-opus", test))]
mod pure {
    use super::*;

    /// opus-rs: pure Rust, builds for wasm32-wasip2.
    pub struct PureOpusEncoder(Box<opus_rs::OpusEncoder>);

    impl PureOpusEncoder {
        /// An encoder with these settings (mono, 20 ms frames).
        pub fn new(settings: OpusSettings) -> Result<Self> {
            settings.validate()?;
            let mut enc = opus_rs::OpusEncoder::new(NET_RATE as i32, 1, opus_rs::Application::Voip)
                .map_err(|e| codec_err("encoder", e))?;
            enc.bitrate_bps = settings.bitrate;
            enc.complexity = settings.complexity.unwrap_or(9);
            Ok(Self(Box::new(enc)))
        }
    }

    impl Encoder for PureOpusEncoder {
        fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize> {
            check_frame(pcm.len(), out.len())?;
            let cap = out.len().min(MAX_PACKET);
            self.0.encode(pcm, NET_FRAME, &mut out[..cap]).map_err(|e| codec_err("encode", e))
        }
    }

    /// The pure-Rust Opus decoder (opus-rs), used on wasm.
    pub struct PureOpusDecoder(Box<opus_rs::OpusDecoder>);

    impl PureOpusDecoder {
        /// A mono decoder.
        pub fn new() -> Result<Self> {
            opus_rs::OpusDecoder::new(NET_RATE as i32, 1).map(|d| Self(Box::new(d))).map_err(|e| codec_err("decoder", e))
        }
    }

    impl Decoder for PureOpusDecoder {
        fn decode(&mut self, packet: Option<&[u8]>, out: &mut [f32]) -> Result<()> {
            check_frame(out.len(), 2)?;
            one_frame(self.0.decode(packet.unwrap_or(&[]), NET_FRAME, out).map_err(|e| codec_err("decode", e))?)
        }
    }
}
