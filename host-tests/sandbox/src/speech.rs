//! Stand-ins for the speech APIs the Moltspaces bot uses, so a spoken turn runs offline:
//! - `POST /openai/v1/audio/transcriptions` (OpenAI STT: Bearer key, multipart `file` WAV +
//!   `model`) → `{"text": …}`: the next scripted transcript (admin `POST
//!   /speech/_sandbox/transcripts {"transcripts":[…]}`), else a text derived from the audio.
//! - `POST /elevenlabs/v1/text-to-speech/{voice}/stream?output_format=pcm_24000` (ElevenLabs:
//!   `xi-api-key`, JSON `{text, model_id}`) → raw 24 kHz 16-bit mono PCM of the text, spoken by
//!   espeak-ng when it is installed (a subprocess), else by a small formant synthesiser. Like
//!   the real service it streams: chunked transfer, one [`Paced`] chunk of audio after another
//!   with a real pause before each ("synthesis"), so first byte ≠ whole answer.

use http::{Request, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;

use crate::common::{header_str, json_response, segments};

pub const OPENAI_PREFIX: &str = "/openai";
pub const ELEVENLABS_PREFIX: &str = "/elevenlabs";
pub const ADMIN_PREFIX: &str = "/speech/_sandbox";

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub transcriptions: u64,
    pub syntheses: u64,
    /// Syntheses spoken by espeak-ng (the rest by the built-in synthesiser).
    pub espeak: u64,
    pub last_model: Option<String>,
    pub last_voice: Option<String>,
}

#[derive(Debug, Default)]
pub struct State {
    pub transcripts: VecDeque<String>,
    /// Force the built-in synthesiser even when espeak-ng is present.
    pub no_espeak: bool,
    /// How speech streams (admin `tts_chunk_ms` / `tts_gap_ms`); `None`: [`Paced::default`].
    pub pacing: Option<Paced>,
    pub stats: Stats,
}

/// How a response body streams, attached to it as an `http` extension: the server sends it
/// with chunked transfer encoding, `chunk_bytes` at a time, sleeping `gap_ms` before each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paced {
    pub chunk_bytes: usize,
    pub gap_ms: u64,
}

impl Default for Paced {
    /// 100 ms of 24 kHz audio every 25 ms: synthesis 4× faster than real time, ElevenLabs-like.
    fn default() -> Self {
        Self { chunk_bytes: 4_800, gap_ms: 25 }
    }
}

fn openai_error(status: u16, message: &str) -> Response<Vec<u8>> {
    json_response(status, &json!({ "error": { "message": message, "type": "invalid_request_error", "code": null } }))
}

fn eleven_error(status: u16, message: &str) -> Response<Vec<u8>> {
    json_response(status, &json!({ "detail": { "status": "invalid_request", "message": message } }))
}

/// The parts of a multipart/form-data body: (name, bytes).
fn multipart<'a>(content_type: &str, body: &'a [u8]) -> Option<Vec<(String, &'a [u8])>> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(rest, delim.as_bytes())?;
    rest = &rest[start + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let name = head.split("name=\"").nth(1)?.split('"').next()?.to_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delim}").as_bytes())?;
        parts.push((name, &content[..end]));
        rest = &content[end + 2 + delim.len()..];
    }
}

/// Samples of a WAV (16-bit PCM), and its rate. Tolerates espeak-ng's streaming header
/// (sizes 0x7fffffff) by reading the `data` chunk to the end.
pub fn wav_samples(wav: &[u8]) -> Option<(Vec<i16>, u32)> {
    if wav.len() < 44 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut rate = 0;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let size = u32::from_le_bytes(wav[at + 4..at + 8].try_into().ok()?) as usize;
        let data = &wav[at + 8..];
        if id == b"fmt " && data.len() >= 16 {
            rate = u32::from_le_bytes(data[4..8].try_into().ok()?);
        } else if id == b"data" {
            let data = &data[..size.min(data.len())];
            return Some((data.chunks_exact(2).map(|p| i16::from_le_bytes([p[0], p[1]])).collect(), rate));
        }
        at += 8 + size + (size & 1);
    }
    None
}

fn transcribe(st: &mut State, req: &Request<Vec<u8>>) -> Response<Vec<u8>> {
    if !header_str(req, "authorization").is_some_and(|a| a.starts_with("Bearer ") && a.len() > 7) {
        return openai_error(401, "You didn't provide an API key.");
    }
    let ct = header_str(req, "content-type").unwrap_or("");
    if !ct.starts_with("multipart/form-data") {
        return openai_error(400, "Expected multipart/form-data");
    }
    let Some(parts) = multipart(ct, req.body()) else { return openai_error(400, "Malformed multipart body") };
    let part = |n: &str| parts.iter().find(|(name, _)| name == n).map(|(_, b)| *b);
    let Some(model) = part("model").and_then(|m| std::str::from_utf8(m).ok()) else {
        return openai_error(400, "you must provide a model parameter");
    };
    let Some((samples, rate)) = part("file").and_then(wav_samples) else {
        return openai_error(400, "Invalid file format: expected a WAV file");
    };
    st.stats.transcriptions += 1;
    st.stats.last_model = Some(model.to_owned());
    let text = st.transcripts.pop_front().unwrap_or_else(|| {
        let ms = samples.len() as u64 * 1000 / rate.max(1) as u64;
        let energy: u64 = samples.iter().map(|s| s.unsigned_abs() as u64).sum::<u64>() / samples.len().max(1) as u64;
        format!("I heard {ms} milliseconds of audio at level {energy}.")
    });
    json_response(200, &json!({ "text": text }))
}

/// Linear resampling to 24 kHz (a test stand-in; quality is not the point).
fn to_24k(samples: &[i16], rate: u32) -> Vec<i16> {
    if rate == 24_000 || samples.is_empty() {
        return samples.to_vec();
    }
    let n = samples.len() as u64 * 24_000 / rate as u64;
    (0..n)
        .map(|i| {
            let pos = i as f64 * rate as f64 / 24_000.0;
            let j = pos as usize;
            let f = pos - j as f64;
            let a = samples[j.min(samples.len() - 1)] as f64;
            let b = samples[(j + 1).min(samples.len() - 1)] as f64;
            (a + (b - a) * f) as i16
        })
        .collect()
}

fn espeak(text: &str) -> Option<Vec<i16>> {
    let out = std::process::Command::new("espeak-ng")
        .args(["--stdout", "-s", "170", "--", text])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let (samples, rate) = wav_samples(&out.stdout).filter(|_| out.status.success())?;
    Some(to_24k(&samples, rate))
}

/// A voiced "word" per word of text: harmonics of a falling pitch shaped by two vowel
/// formants, with attack/decay envelopes and short pauses, at 24 kHz.
pub fn synth_voice(text: &str) -> Vec<i16> {
    const FORMANTS: [(f64, f64); 5] = [(730.0, 1090.0), (530.0, 1840.0), (270.0, 2290.0), (570.0, 840.0), (300.0, 870.0)];
    let mut out = Vec::new();
    for (w, word) in text.split_whitespace().enumerate() {
        let syllables = word.chars().filter(|c| "aeiouyAEIOUY".contains(*c)).count().max(1);
        for s in 0..syllables {
            let (f1, f2) = FORMANTS[(w * 3 + s + word.len()) % FORMANTS.len()];
            let n = 24_000 * 160 / 1000;
            for i in 0..n {
                let t = i as f64 / 24_000.0;
                let f0 = 130.0 - 20.0 * i as f64 / n as f64;
                let mut v = 0.0;
                for h in 1..=30 {
                    let f = f0 * h as f64;
                    let g = 1.0 / (1.0 + ((f - f1) / 90.0).powi(2)) + 0.6 / (1.0 + ((f - f2) / 120.0).powi(2));
                    v += g * (2.0 * std::f64::consts::PI * f * t).sin() / h as f64;
                }
                let env = (i as f64 / 480.0).min(1.0) * ((n - i) as f64 / 960.0).min(1.0);
                out.push((v * env * 6000.0).clamp(-32000.0, 32000.0) as i16);
            }
        }
        out.extend(std::iter::repeat_n(0, 24_000 * 70 / 1000));
    }
    out
}

fn synthesize(st: &mut State, req: &Request<Vec<u8>>, voice: &str) -> Response<Vec<u8>> {
    if header_str(req, "xi-api-key").is_none_or(|k| k.is_empty()) {
        return eleven_error(401, "Missing xi-api-key");
    }
    let format = req.uri().query().unwrap_or("").split('&').find_map(|kv| kv.strip_prefix("output_format="));
    if format != Some("pcm_24000") {
        return eleven_error(422, "this stand-in serves output_format=pcm_24000 only");
    }
    let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
    let Some(text) = body.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty()) else {
        return eleven_error(422, "text is required");
    };
    st.stats.syntheses += 1;
    st.stats.last_voice = Some(voice.to_owned());
    let pcm = match (!st.no_espeak).then(|| espeak(text)).flatten() {
        Some(pcm) => {
            st.stats.espeak += 1;
            pcm
        }
        None => synth_voice(text),
    };
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut resp = Response::builder().status(200).header("content-type", "audio/pcm").body(bytes).unwrap_or_default();
    resp.extensions_mut().insert(st.pacing.unwrap_or_default());
    resp
}

pub fn handle_openai(st: &mut State, req: &Request<Vec<u8>>, sub: &str) -> Response<Vec<u8>> {
    match (req.method().as_str(), segments(sub).as_slice()) {
        ("POST", ["v1", "audio", "transcriptions"]) => transcribe(st, req),
        _ => openai_error(404, "Not found"),
    }
}

pub fn handle_elevenlabs(st: &mut State, req: &Request<Vec<u8>>, sub: &str) -> Response<Vec<u8>> {
    match (req.method().as_str(), segments(sub).as_slice()) {
        ("POST", ["v1", "text-to-speech", voice, "stream"]) => synthesize(st, req, voice),
        _ => eleven_error(404, "Not found"),
    }
}

pub fn handle_admin(st: &mut State, req: &Request<Vec<u8>>, sub: &str) -> Response<Vec<u8>> {
    let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
    match (req.method().as_str(), segments(sub).as_slice()) {
        ("POST", ["transcripts"]) => {
            let list = body.get("transcripts").and_then(Value::as_array).cloned().unwrap_or_default();
            st.transcripts.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            if let Some(b) = body.get("no_espeak").and_then(Value::as_bool) {
                st.no_espeak = b;
            }
            // Speech pacing: audio per chunk and the pause before each, in ms.
            let ms = |k: &str| body.get(k).and_then(Value::as_u64);
            if ms("tts_chunk_ms").is_some() || ms("tts_gap_ms").is_some() {
                let d = st.pacing.unwrap_or_default();
                st.pacing = Some(Paced {
                    chunk_bytes: ms("tts_chunk_ms").map_or(d.chunk_bytes, |ms| (ms as usize * 48).max(2)),
                    gap_ms: ms("tts_gap_ms").unwrap_or(d.gap_ms).min(10_000),
                });
            }
            json_response(200, &json!({ "queued": st.transcripts.len() }))
        }
        ("GET", ["stats"]) => json_response(200, &serde_json::to_value(&st.stats).unwrap_or_default()),
        _ => json_response(404, &json!({ "error": "Not found" })),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn multipart_parts() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm1\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\nAB\r\n--b--\r\n";
        let parts = super::multipart("multipart/form-data; boundary=b", body).unwrap();
        assert_eq!(parts, vec![("model".to_owned(), &b"m1"[..]), ("file".to_owned(), &b"AB"[..])]);
    }
}
