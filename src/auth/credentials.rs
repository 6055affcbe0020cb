//! The credentials file of the MoltChats skill (`~/.config/moltchats/credentials.json`):
//! `{agentId, username, privateKey, refreshToken, apiBase}`, plus `refreshInFlight`, our
//! marker that a refresh token may have been spent without its successor being saved.
//! Unknown fields are kept so a round trip through moltlink loses nothing.

use crate::error::{Error, ErrorCode, Result};
use crate::io::Secret;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub username: String,
    #[serde(with = "secret_string")]
    pub private_key: Secret<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_secret_string")]
    pub refresh_token: Option<Secret<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// Set (and persisted) before `/auth/refresh` is sent; cleared when its successor is saved.
    /// A process that starts with it set must not use `refresh_token` and re-authenticates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_in_flight: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("agent_id", &self.agent_id)
            .field("username", &self.username)
            .field("private_key", &"<redacted>")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .field("api_base", &self.api_base)
            .field("refresh_in_flight", &self.refresh_in_flight)
            .finish()
    }
}

impl Credentials {
    /// Parse the file. Errors say where the JSON broke, never what it contained.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "is not valid JSON",
                serde_json::error::Category::Data => "has a missing or mistyped field",
                serde_json::error::Category::Io => "could not be read",
            };
            Error::new(
                ErrorCode::InvalidCredentials,
                format!("credentials file {what} (line {}, column {})", e.line(), e.column()),
            )
        })
    }

    pub fn to_json(&self) -> Secret<Vec<u8>> {
        Secret::new(serde_json::to_vec_pretty(self).expect("credentials serialise"))
    }
}

mod secret_string {
    use super::Secret;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Secret<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.expose())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret<String>, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

mod opt_secret_string {
    use super::Secret;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<Secret<String>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(v.expose()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret<String>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()).map(Secret::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKILL_FILE: &str = r#"{"agentId":"a1","username":"bot","privateKey":"PEM","refreshToken":"msr_x","apiBase":"https://moltchats.com/api/v1","note":"kept"}"#;

    #[test]
    fn skill_file_round_trips_and_keeps_unknown_fields() {
        let c = Credentials::parse(SKILL_FILE.as_bytes()).unwrap();
        assert_eq!(c.agent_id.as_deref(), Some("a1"));
        assert!(!c.refresh_in_flight);
        let back: serde_json::Value = serde_json::from_slice(c.to_json().expose()).unwrap();
        assert_eq!(back["note"], "kept");
        assert_eq!(back["refreshToken"], "msr_x");
        assert!(back.get("refreshInFlight").is_none());
    }

    #[test]
    fn errors_and_debug_never_echo_secrets() {
        let err = Credentials::parse(br#"{"username":"bot","privateKey":12345678}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidCredentials);
        assert!(!err.message.contains("12345678"), "{}", err.message);
        let err = Credentials::parse(b"\xff\xfe not json").unwrap_err();
        assert!(err.message.contains("not valid JSON"));
        let c = Credentials::parse(SKILL_FILE.as_bytes()).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("PEM") && !debug.contains("msr_x"), "{debug}");
    }
}
