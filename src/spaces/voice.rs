//! The exact requests of the public speech APIs the reference bot uses:
//! OpenAI transcription (multipart WAV upload) and ElevenLabs streaming text-to-speech
//! (raw 24 kHz 16-bit mono PCM). Building and parsing only; the host performs them.

use crate::error::{Error, Result};
use crate::io::ApiError;

/// `POST {openai_base}/v1/audio/transcriptions`, multipart/form-data (RFC 7578) with `file`
/// (the WAV) and `model`; the answer is `{"text": …}`.
pub fn transcription_request(base: &str, key: &str, model: &str, wav: &[u8], turn: u64) -> Result<http::Request<Vec<u8>>> {
    // A boundary that does not occur in the payload.
    let mut boundary = format!("moltlink-{turn:08x}-{:08x}", wav.len());
    while contains(wav, boundary.as_bytes()) || model.contains(&boundary) {
        boundary.push('x');
    }
    let mut body = Vec::with_capacity(wav.len() + 512);
    let part = |body: &mut Vec<u8>, headers: &str| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
    };
    part(&mut body, "Content-Disposition: form-data; name=\"model\"");
    body.extend_from_slice(model.as_bytes());
    body.extend_from_slice(b"\r\n");
    part(&mut body, "Content-Disposition: form-data; name=\"response_format\"");
    body.extend_from_slice(b"json\r\n");
    part(&mut body, "Content-Disposition: form-data; name=\"file\"; filename=\"utterance.wav\"\r\nContent-Type: audio/wav");
    body.extend_from_slice(wav);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut auth = http::HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| Error::invalid_argument("OPENAI_API_KEY contains characters not allowed in a header"))?;
    auth.set_sensitive(true);
    http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("{base}/v1/audio/transcriptions"))
        .header(http::header::AUTHORIZATION, auth)
        .header(http::header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .map_err(|_| Error::invalid_argument(format!("invalid openai_base: {base}")))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `{"text": …}` of a transcription.
pub fn transcript(body: &serde_json::Value) -> Option<String> {
    body.get("text").and_then(|t| t.as_str()).map(|t| t.trim().to_owned())
}

/// `POST {elevenlabs_base}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_24000`,
/// header `xi-api-key`, JSON `{text, model_id}`; the answer streams raw PCM.
pub fn tts_request(base: &str, key: &str, voice_id: &str, model_id: &str, text: &str) -> Result<http::Request<Vec<u8>>> {
    let mut auth = http::HeaderValue::from_str(key)
        .map_err(|_| Error::invalid_argument("ELEVENLABS_API_KEY contains characters not allowed in a header"))?;
    auth.set_sensitive(true);
    let body = serde_json::to_vec(&serde_json::json!({ "text": text, "model_id": model_id })).expect("JSON serialises");
    http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("{base}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_24000"))
        .header("xi-api-key", auth)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "audio/pcm")
        .body(body)
        .map_err(|_| Error::invalid_argument(format!("invalid elevenlabs_base: {base}")))
}

/// Error bodies of both speech APIs: OpenAI `{error:{message, code}}`, ElevenLabs
/// `{detail:{status, message}}` or `{detail: "…"}`.
pub fn speech_error(status: u16, body: &[u8]) -> ApiError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let e = v.get("error").or(v.get("detail"));
    let message = e
        .and_then(|e| e.get("message").and_then(|m| m.as_str()).or(e.as_str()))
        .map(|m| m.chars().take(512).collect())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let code = e.and_then(|e| e.get("code").or(e.get("status"))).and_then(|c| c.as_str()).map(str::to_owned);
    // A server error's text can carry internals: status and code only.
    let message = if status >= 500 { format!("the server failed (HTTP {status}); its error text is withheld") } else { message };
    ApiError { status, code, message }
}

/// Raw little-endian PCM bytes arriving in chunks of any size → samples, carrying an odd byte.
#[derive(Debug, Default)]
pub struct PcmAssembler {
    carry: Option<u8>,
    /// The samples assembled so far.
    pub samples: Vec<i16>,
}

impl PcmAssembler {
    /// Adds bytes; returns how many whole samples were added.
    pub fn push(&mut self, mut bytes: &[u8]) -> usize {
        let before = self.samples.len();
        if let (Some(lo), Some((&hi, rest))) = (self.carry, bytes.split_first()) {
            self.samples.push(i16::from_le_bytes([lo, hi]));
            self.carry = None;
            bytes = rest;
        }
        let pairs = bytes.chunks_exact(2);
        if let [odd] = pairs.remainder() {
            self.carry = Some(*odd);
        }
        self.samples.extend(pairs.map(|p| i16::from_le_bytes([p[0], p[1]])));
        self.samples.len() - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_has_model_and_file() {
        let req = transcription_request("https://api.openai.com", "sk-x", "whisper-1", b"RIFFdata", 3).unwrap();
        assert_eq!(req.uri(), "https://api.openai.com/v1/audio/transcriptions");
        let ct = req.headers()["content-type"].to_str().unwrap().to_owned();
        let boundary = ct.split("boundary=").nth(1).unwrap();
        let body = String::from_utf8(req.body().clone()).unwrap();
        assert!(body.starts_with(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n")));
        assert!(body.contains("filename=\"utterance.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFFdata\r\n"));
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));
        assert!(req.headers()["authorization"].is_sensitive());
    }

    #[test]
    fn pcm_chunks_of_odd_sizes() {
        let mut a = PcmAssembler::default();
        let bytes: Vec<u8> = [1i16, -2, 300].iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(a.push(&bytes[..1]), 0);
        assert_eq!(a.push(&bytes[1..5]), 2);
        assert_eq!(a.push(&bytes[5..]), 1);
        assert_eq!(a.samples, [1, -2, 300]);
    }
}
