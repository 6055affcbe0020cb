//! The connector's configuration, exactly as the MoltChats skill describes it:
//! `~/.config/moltchats/connector.json` plus environment overrides. Parsed here from bytes and
//! an environment lookup so every host reads it the same way.

use crate::error::{Error, Result};
use crate::io::Secret;
use serde::Deserialize;

/// The local gateway's default address.
pub const DEFAULT_GATEWAY_URL: &str = "ws://127.0.0.1:18789";
/// The default session key.
pub const DEFAULT_SESSION_KEY: &str = "main";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct File {
    openclaw: OpenClawSection,
    channels: ChannelsSection,
    log_level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OpenClawSection {
    gateway_url: Option<String>,
    session_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ChannelsSection {
    #[serde(rename = "autoSubscribeDMs", alias = "autoSubscribeDms")]
    auto_subscribe_dms: bool,
    server_ids: Vec<String>,
    server_channels: Vec<String>,
}

impl Default for ChannelsSection {
    fn default() -> Self {
        Self { auto_subscribe_dms: true, server_ids: vec![], server_channels: vec![] }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
/// How much the connector logs.
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    Info,
    /// Problems only.
    Warn,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// Parses `debug`, `info`, `warn` or `error`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" | "warning" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            other => Err(Error::invalid_argument(format!("log level must be debug, info, warn or error, not {other:?}"))),
        }
    }
    /// The level's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// The resolved settings of one connector run.
#[derive(Clone)]
pub struct ConnectorSettings {
    /// `OPENCLAW_GATEWAY_URL` (default [`DEFAULT_GATEWAY_URL`]).
    pub gateway_url: String,
    /// The agent session turns go to (default [`DEFAULT_SESSION_KEY`]).
    pub session_key: String,
    /// `OPENCLAW_AUTH_TOKEN` (required).
    pub token: Secret<String>,
    /// `MOLTCHATS_API_BASE` / `MOLTCHATS_WS_BASE` overrides.
    pub api_base: Option<String>,
    /// WebSocket base override.
    pub ws_base: Option<String>,
    /// Subscribe to the DM channels of every friend.
    pub auto_subscribe_dms: bool,
    /// Subscribe to every channel of these servers.
    pub server_ids: Vec<String>,
    /// Subscribe to these channels.
    pub server_channels: Vec<String>,
    /// How much to log.
    pub log_level: LogLevel,
}

impl std::fmt::Debug for ConnectorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorSettings")
            .field("gateway_url", &self.gateway_url)
            .field("session_key", &self.session_key)
            .field("api_base", &self.api_base)
            .field("ws_base", &self.ws_base)
            .field("auto_subscribe_dms", &self.auto_subscribe_dms)
            .field("server_ids", &self.server_ids)
            .field("server_channels", &self.server_channels)
            .field("log_level", &self.log_level)
            .finish_non_exhaustive()
    }
}

impl ConnectorSettings {
    /// `file`: the bytes of `connector.json` if it exists (absent ⇒ defaults). `env`: looks up an
    /// environment variable; empty values count as unset.
    pub fn resolve(file: Option<&[u8]>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let parsed: File = match file {
            Some(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => serde_json::from_slice(bytes)
                .map_err(|e| Error::invalid_argument(format!("connector.json is not valid: {e}")))?,
            _ => File::default(),
        };
        let env = |key: &str| env(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let token = env("OPENCLAW_AUTH_TOKEN").ok_or_else(|| Error::invalid_argument("OPENCLAW_AUTH_TOKEN is required (the OpenClaw gateway token)"))?;
        let log_level = match env("CONNECTOR_LOG_LEVEL").or(parsed.log_level) {
            Some(level) => LogLevel::parse(&level)?,
            None => LogLevel::Info,
        };
        let nonempty = |v: Vec<String>| v.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        Ok(Self {
            gateway_url: env("OPENCLAW_GATEWAY_URL").or(parsed.openclaw.gateway_url).unwrap_or_else(|| DEFAULT_GATEWAY_URL.into()),
            session_key: env("OPENCLAW_SESSION_KEY").or(parsed.openclaw.session_key).unwrap_or_else(|| DEFAULT_SESSION_KEY.into()),
            token: Secret::new(token),
            api_base: env("MOLTCHATS_API_BASE"),
            ws_base: env("MOLTCHATS_WS_BASE"),
            auto_subscribe_dms: parsed.channels.auto_subscribe_dms,
            server_ids: nonempty(parsed.channels.server_ids),
            server_channels: nonempty(parsed.channels.server_channels),
            log_level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn skill_example_and_defaults() {
        let file = br#"{"openclaw":{"gatewayUrl":"ws://127.0.0.1:18789","sessionKey":"main"},
            "channels":{"autoSubscribeDMs":true,"serverIds":["s1"],"serverChannels":["c1"," "]},"logLevel":"info"}"#;
        let s = ConnectorSettings::resolve(Some(file), env(&[("OPENCLAW_AUTH_TOKEN", "tok")])).unwrap();
        assert_eq!((s.gateway_url.as_str(), s.session_key.as_str()), ("ws://127.0.0.1:18789", "main"));
        assert_eq!((s.server_ids, s.server_channels), (vec!["s1".to_owned()], vec!["c1".to_owned()]));
        assert!(s.auto_subscribe_dms);
        assert_eq!(s.log_level, LogLevel::Info);
        let d = ConnectorSettings::resolve(None, env(&[("OPENCLAW_AUTH_TOKEN", "tok")])).unwrap();
        assert_eq!((d.gateway_url.as_str(), d.session_key.as_str(), d.auto_subscribe_dms), (DEFAULT_GATEWAY_URL, "main", true));
        assert!(!format!("{d:?}").contains("tok"));
    }

    #[test]
    fn env_overrides_and_errors() {
        let e = env(&[
            ("OPENCLAW_AUTH_TOKEN", "tok"),
            ("OPENCLAW_GATEWAY_URL", "ws://10.0.0.1:1"),
            ("OPENCLAW_SESSION_KEY", "work"),
            ("MOLTCHATS_API_BASE", "http://a/api/v1"),
            ("MOLTCHATS_WS_BASE", "ws://a/ws"),
            ("CONNECTOR_LOG_LEVEL", "DEBUG"),
        ]);
        let s = ConnectorSettings::resolve(Some(br#"{"openclaw":{"sessionKey":"x"},"logLevel":"error","channels":{"autoSubscribeDMs":false}}"#), e).unwrap();
        assert_eq!((s.gateway_url.as_str(), s.session_key.as_str()), ("ws://10.0.0.1:1", "work"));
        assert_eq!((s.api_base.as_deref(), s.ws_base.as_deref()), (Some("http://a/api/v1"), Some("ws://a/ws")));
        assert_eq!(s.log_level, LogLevel::Debug);
        assert!(!s.auto_subscribe_dms);
        assert!(ConnectorSettings::resolve(None, env(&[])).unwrap_err().message.contains("OPENCLAW_AUTH_TOKEN"));
        assert!(ConnectorSettings::resolve(Some(b"{"), env(&[("OPENCLAW_AUTH_TOKEN", "t")])).is_err());
        assert!(ConnectorSettings::resolve(Some(br#"{"channels":{"serverIds":"x"}}"#), env(&[("OPENCLAW_AUTH_TOKEN", "t")])).is_err());
        assert!(ConnectorSettings::resolve(None, env(&[("OPENCLAW_AUTH_TOKEN", "t"), ("CONNECTOR_LOG_LEVEL", "loud")])).is_err());
    }
}
