//! Agent configuration: the skill's `.env` keys, read from bytes the host loaded (a `.env`
//! file, the saved registration, or the process environment rendered as `KEY=value` lines).

use crate::error::{Error, Result};
use crate::io::Secret;
use serde::Deserialize;

/// The Moltspaces API.
pub const DEFAULT_API_BASE: &str = "https://api.moltspaces.com/v1";
/// The OpenAI API (speech to text).
pub const DEFAULT_OPENAI_BASE: &str = "https://api.openai.com";
/// The ElevenLabs API (text to speech).
pub const DEFAULT_ELEVENLABS_BASE: &str = "https://api.elevenlabs.io";
/// The skill's default voice.
pub const DEFAULT_VOICE_ID: &str = "4tRn1lSkEn13EVTuqb0g";
/// The default speech-to-text model.
pub const DEFAULT_STT_MODEL: &str = "whisper-1";
/// The default text-to-speech model.
pub const DEFAULT_TTS_MODEL: &str = "eleven_flash_v2_5";
/// Lifetime assumed for a meeting token that is not a JWT with `exp` (Daily's tokens are
/// JWTs; Moltspaces documents no lifetime, so one hour is a conservative guess).
pub const DEFAULT_TOKEN_LIFETIME_MS: u64 = 3_600_000;
/// A fresh token is fetched this long before the current one expires.
pub const DEFAULT_REJOIN_MARGIN_MS: u64 = 60_000;

/// The `.env` keys the skill documents.
pub const ENV_KEYS: [&str; 6] =
    ["MOLTSPACES_API_KEY", "MOLT_AGENT_ID", "MOLT_AGENT_NAME", "OPENAI_API_KEY", "ELEVENLABS_API_KEY", "ELEVENLABS_VOICE_ID"];

#[derive(Debug, Clone)]
/// How the Moltspaces client runs: APIs, keys, voices and timings.
pub struct SpacesConfig {
    /// The Moltspaces API.
    pub api_base: String,
    /// The OpenAI API (speech to text).
    pub openai_base: String,
    /// The ElevenLabs API (text to speech).
    pub elevenlabs_base: String,
    /// `MOLTSPACES_API_KEY`, once registered.
    pub api_key: Option<Secret<String>>,
    /// `MOLT_AGENT_ID`.
    pub agent_id: Option<String>,
    /// `MOLT_AGENT_NAME`.
    pub agent_name: Option<String>,
    /// `OPENAI_API_KEY`.
    pub openai_key: Option<Secret<String>>,
    /// `ELEVENLABS_API_KEY`.
    pub elevenlabs_key: Option<Secret<String>>,
    /// `ELEVENLABS_VOICE_ID`.
    pub voice_id: String,
    /// The speech-to-text model.
    pub stt_model: String,
    /// The text-to-speech model.
    pub tts_model: String,
    /// A meeting token's lifetime when its JWT has no `exp`, ms.
    pub token_lifetime_ms: u64,
    /// Get a new token this long before the current one expires, ms.
    pub rejoin_margin_ms: u64,
    /// Attempts of one join step before the join fails (transport errors, 5xx, 429).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub backoff_ms: u64,
}

impl Default for SpacesConfig {
    fn default() -> Self {
        Self {
            api_base: DEFAULT_API_BASE.into(),
            openai_base: DEFAULT_OPENAI_BASE.into(),
            elevenlabs_base: DEFAULT_ELEVENLABS_BASE.into(),
            api_key: None,
            agent_id: None,
            agent_name: None,
            openai_key: None,
            elevenlabs_key: None,
            voice_id: DEFAULT_VOICE_ID.into(),
            stt_model: DEFAULT_STT_MODEL.into(),
            tts_model: DEFAULT_TTS_MODEL.into(),
            token_lifetime_ms: DEFAULT_TOKEN_LIFETIME_MS,
            rejoin_margin_ms: DEFAULT_REJOIN_MARGIN_MS,
            max_attempts: 4,
            backoff_ms: 1_000,
        }
    }
}

/// Options an adapter passes as JSON next to the `.env` bytes; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpacesOptions {
    /// See [`SpacesConfig::api_base`].
    pub api_base: Option<String>,
    /// See [`SpacesConfig::openai_base`].
    pub openai_base: Option<String>,
    /// See [`SpacesConfig::elevenlabs_base`].
    pub elevenlabs_base: Option<String>,
    /// See [`SpacesConfig::voice_id`].
    pub voice_id: Option<String>,
    /// See [`SpacesConfig::stt_model`].
    pub stt_model: Option<String>,
    /// See [`SpacesConfig::tts_model`].
    pub tts_model: Option<String>,
    /// See [`SpacesConfig::token_lifetime_ms`].
    pub token_lifetime_ms: Option<u64>,
    /// See [`SpacesConfig::rejoin_margin_ms`].
    pub rejoin_margin_ms: Option<u64>,
    /// See [`SpacesConfig::max_attempts`].
    pub max_attempts: Option<u32>,
    /// See [`SpacesConfig::backoff_ms`].
    pub backoff_ms: Option<u64>,
}

/// `KEY=value` lines: `#` comments, optional `export `, optional matching quotes.
/// Unknown keys are ignored (a `.env` often holds more); later lines win.
pub fn parse_env(bytes: &[u8]) -> Result<Vec<(String, Secret<String>)>> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::invalid_argument(".env is not UTF-8"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::invalid_argument(format!(".env line {}: expected KEY=value", n + 1)));
        };
        let value = value.trim();
        let value = match value.as_bytes() {
            [q @ (b'"' | b'\''), .., last] if last == q => &value[1..value.len() - 1],
            _ => value.split(" #").next().unwrap_or("").trim(),
        };
        out.push((key.trim().to_owned(), Secret::new(value.to_owned())));
    }
    Ok(out)
}

fn non_empty(v: &Secret<String>) -> Option<Secret<String>> {
    (!v.expose().is_empty()).then(|| v.clone())
}

impl SpacesConfig {
    /// Apply `.env` bytes (several sources may be applied in turn; later values win).
    pub fn apply_env(&mut self, bytes: &[u8]) -> Result<()> {
        for (key, value) in parse_env(bytes)? {
            match key.as_str() {
                "MOLTSPACES_API_KEY" => self.api_key = non_empty(&value),
                "MOLT_AGENT_ID" => self.agent_id = non_empty(&value).map(|v| v.expose().clone()),
                "MOLT_AGENT_NAME" => self.agent_name = non_empty(&value).map(|v| v.expose().clone()),
                "OPENAI_API_KEY" => self.openai_key = non_empty(&value),
                "ELEVENLABS_API_KEY" => self.elevenlabs_key = non_empty(&value),
                "ELEVENLABS_VOICE_ID" => {
                    if let Some(v) = non_empty(&value) {
                        self.voice_id = v.expose().clone();
                    }
                }
                "MOLTSPACES_API_BASE" => self.api_base = value.expose().clone(),
                "OPENAI_API_BASE" => self.openai_base = value.expose().clone(),
                "ELEVENLABS_API_BASE" => self.elevenlabs_base = value.expose().clone(),
                _ => {}
            }
        }
        Ok(())
    }

    /// Apply adapter options (JSON object; empty text = none).
    pub fn apply_options_json(&mut self, text: &str) -> Result<()> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let o: SpacesOptions =
            serde_json::from_str(text).map_err(|e| Error::invalid_argument(format!("spaces options: {e}")))?;
        let set = |dst: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut self.api_base, o.api_base);
        set(&mut self.openai_base, o.openai_base);
        set(&mut self.elevenlabs_base, o.elevenlabs_base);
        set(&mut self.voice_id, o.voice_id);
        set(&mut self.stt_model, o.stt_model);
        set(&mut self.tts_model, o.tts_model);
        self.token_lifetime_ms = o.token_lifetime_ms.unwrap_or(self.token_lifetime_ms);
        self.rejoin_margin_ms = o.rejoin_margin_ms.unwrap_or(self.rejoin_margin_ms);
        self.max_attempts = o.max_attempts.unwrap_or(self.max_attempts);
        self.backoff_ms = o.backoff_ms.unwrap_or(self.backoff_ms);
        Ok(())
    }

    /// `.env` bytes + options JSON, the adapters' single constructor.
    pub fn from_env_and_options(env: &[u8], options_json: Option<&str>) -> Result<Self> {
        let mut config = Self::default();
        config.apply_env(env)?;
        config.apply_options_json(options_json.unwrap_or(""))?;
        Ok(config)
    }

    pub(crate) fn validate(&mut self) -> Result<()> {
        self.api_base = validate_base(&self.api_base, "api_base")?;
        self.openai_base = validate_base(&self.openai_base, "openai_base")?;
        self.elevenlabs_base = validate_base(&self.elevenlabs_base, "elevenlabs_base")?;
        for (name, key) in [("MOLTSPACES_API_KEY", &self.api_key), ("OPENAI_API_KEY", &self.openai_key), ("ELEVENLABS_API_KEY", &self.elevenlabs_key)] {
            if let Some(k) = key
                && k.expose().bytes().any(|b| !(0x21..0x7f).contains(&b))
            {
                return Err(Error::invalid_argument(format!("{name} contains characters not allowed in a header")));
            }
        }
        if !is_path_safe(&self.voice_id) {
            return Err(Error::invalid_argument("ELEVENLABS_VOICE_ID: letters, digits, '-' and '_' only"));
        }
        if self.max_attempts == 0 || self.token_lifetime_ms == 0 {
            return Err(Error::invalid_argument("max_attempts and token_lifetime_ms must be > 0"));
        }
        Ok(())
    }
}

pub(crate) fn is_path_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s != "." && s != ".."
}

/// Keys only travel over https, or plain http to a loopback stand-in (the sandbox).
pub fn validate_base(base: &str, what: &str) -> Result<String> {
    crate::io::base_url::credential_base(base, what, ("https", "http"))
}

/// The saved registration, in `.env` form so it can be applied like any other `.env`.
pub(crate) fn registration_env(api_key: &str, agent_id: &str, name: &str) -> Vec<u8> {
    format!("MOLTSPACES_API_KEY={api_key}\nMOLT_AGENT_ID={agent_id}\nMOLT_AGENT_NAME={name}\n").into_bytes()
}
