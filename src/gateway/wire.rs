//! OpenClaw gateway frames (PROTOCOL §4): parsing what the gateway sends, building what we send.
//!
//! Schemas on the gateway are closed, so outgoing frames carry exactly the documented fields.
//! Incoming frames are read leniently: unknown fields and unknown events are ignored.

use crate::io::Secret;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::borrow::Cow;

/// The protocol range this client speaks.
pub const MIN_PROTOCOL: u64 = 3;
/// The highest gateway protocol version we speak.
pub const MAX_PROTOCOL: u64 = 4;
/// The client id and mode the gateway accepts for a backend operator client.
pub const CLIENT_ID: &str = "gateway-client";
/// The client mode we announce in the handshake.
pub const CLIENT_MODE: &str = "backend";

/// One frame from the gateway. The payload stays raw until we know we need it: most events
/// (agent streams, health, cron…) are skipped without building a tree.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    /// `type`: `req`, `res` or `event`.
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    /// The request id a response answers.
    pub id: Option<Cow<'a, str>>,
    #[serde(default)]
    /// Whether a response succeeded.
    pub ok: Option<bool>,
    #[serde(default, borrow)]
    /// The event name.
    pub event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    /// The payload, unparsed.
    pub payload: Option<&'a RawValue>,
    #[serde(default)]
    /// A failed response's error.
    pub error: Option<WireError>,
}

impl Frame<'_> {
    /// The payload as a JSON tree (`Null` when absent).
    pub fn payload_value(&self) -> Result<Value, String> {
        self.payload.map_or(Ok(Value::Null), |raw| serde_json::from_str(raw.get()).map_err(|e| format!("malformed payload: {}", classify(&e))))
    }
    /// A `chat` event's payload (also read for an `agent` event's `runId`).
    pub fn chat_payload(&self) -> Result<ChatPayload<'_>, String> {
        let raw = self.payload.ok_or("chat event without payload")?;
        serde_json::from_str(raw.get()).map_err(|e| format!("malformed chat payload: {}", classify(&e)))
    }
}

/// The fields of a `chat` event we use.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatPayload<'a> {
    #[serde(default, borrow)]
    /// The agent run the event belongs to.
    pub run_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    /// The session the run belongs to.
    pub session_key: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    /// `delta`, `final`, `error` or `aborted`.
    pub state: Option<Cow<'a, str>>,
    #[serde(default)]
    /// New text of a delta.
    pub delta_text: Option<String>,
    /// `{role, content:[{type, text}]}` (cumulative on deltas, complete on finals).
    #[serde(default)]
    pub message: Option<Value>,
    #[serde(default)]
    /// Why the run failed.
    pub error_message: Option<String>,
}

/// `res.error`: `retryable` and `retryAfterMs` decide between retrying and giving up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireError {
    #[serde(default)]
    /// The generic error code.
    pub code: Option<String>,
    #[serde(default)]
    /// What happened.
    pub message: Option<String>,
    #[serde(default)]
    /// More details (`details.code` is the specific code).
    pub details: Option<Value>,
    #[serde(default)]
    /// Whether the request may be retried.
    pub retryable: Option<bool>,
    #[serde(default)]
    /// When to retry, ms from now.
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    /// The most specific code: `details.code` (e.g. `AUTH_TOKEN_MISMATCH`, `PROTOCOL_MISMATCH`)
    /// over the generic `code` (`INVALID_REQUEST`).
    pub fn specific_code(&self) -> String {
        self.details
            .as_ref()
            .and_then(|d| d.get("code"))
            .and_then(Value::as_str)
            .or(self.code.as_deref())
            .unwrap_or("UNKNOWN")
            .to_owned()
    }
    /// The message, or a placeholder.
    pub fn text(&self) -> String {
        self.message.clone().unwrap_or_else(|| "no message".into())
    }
}

/// Parse one text frame; the error says what was wrong without echoing the frame.
pub fn parse(text: &str, max_bytes: usize) -> Result<Frame<'_>, String> {
    if text.len() > max_bytes {
        return Err(format!("frame of {} bytes is over the {max_bytes} byte limit", text.len()));
    }
    serde_json::from_str::<Frame<'_>>(text).map_err(|e| format!("malformed frame: {} at line {} column {}", classify(&e), e.line(), e.column()))
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "i/o",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

/// Who we say we are in `connect`.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Our version.
    pub version: String,
    /// Our platform (e.g. `linux`).
    pub platform: String,
    /// The name shown in OpenClaw.
    pub display_name: Option<String>,
}

/// The `connect` request: exactly the documented fields (the schema is closed).
pub fn connect_request(id: &str, client: &ClientInfo, token: &Secret<String>) -> String {
    let mut info = json!({ "id": CLIENT_ID, "version": client.version, "platform": client.platform, "mode": CLIENT_MODE });
    if let Some(name) = &client.display_name {
        info["displayName"] = json!(name);
    }
    json!({
        "type": "req",
        "id": id,
        "method": "connect",
        "params": {
            "minProtocol": MIN_PROTOCOL,
            "maxProtocol": MAX_PROTOCOL,
            "client": info,
            "role": "operator",
            "scopes": ["operator.read", "operator.write"],
            "caps": [],
            "auth": { "token": token.expose() },
        }
    })
    .to_string()
}

/// `chat.send {sessionKey, message, idempotencyKey}`.
pub fn chat_send_request(id: &str, session_key: &str, message: &str, idempotency_key: &str) -> String {
    json!({
        "type": "req",
        "id": id,
        "method": "chat.send",
        "params": { "sessionKey": session_key, "message": message, "idempotencyKey": idempotency_key },
    })
    .to_string()
}

/// Does an event's `sessionKey` name our session? The gateway echoes `main` as `agent:main:main`.
pub fn same_session(ours: &str, theirs: &str) -> bool {
    theirs == ours || theirs.strip_suffix(ours).is_some_and(|head| head.starts_with("agent:") && head.ends_with(':'))
}

/// The text of a `message` object: its `content[].text` parts joined (or a plain string content).
pub fn message_text(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_key_echo() {
        assert!(same_session("main", "main"));
        assert!(same_session("main", "agent:main:main"));
        assert!(same_session("work", "agent:ops:work"));
        assert!(!same_session("main", "agent:main:other"));
        assert!(!same_session("main", "xmain"));
    }

    #[test]
    fn connect_has_exactly_the_documented_fields() {
        let info = ClientInfo { version: "1".into(), platform: "linux".into(), display_name: None };
        let v: Value = serde_json::from_str(&connect_request("c1", &info, &Secret::new("t".into()))).unwrap();
        let mut keys: Vec<_> = v["params"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["auth", "caps", "client", "maxProtocol", "minProtocol", "role", "scopes"]);
        assert_eq!(v["params"]["client"]["id"], CLIENT_ID);
        assert_eq!(v["params"]["client"]["mode"], CLIENT_MODE);
        assert_eq!(v["params"]["client"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn bad_frames_are_errors() {
        assert!(parse("not json", 100).unwrap_err().contains("not JSON"));
        assert!(parse("{\"type\":", 100).unwrap_err().contains("truncated"));
        assert!(parse("[1,2]", 100).unwrap_err().contains("unexpected shape"));
        assert!(parse(&"x".repeat(101), 100).unwrap_err().contains("over the 100 byte limit"));
        assert!(parse("{\"type\":\"event\",\"event\":5}", 100).is_err());
    }
}
