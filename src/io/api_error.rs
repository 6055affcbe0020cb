//! Error bodies from the services, parsed leniently and kept as data.

use serde::Serialize;

/// A failed API call as the service described it. Unknown codes are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// HTTP status, or 0 when the request never got a response (transport failure).
    pub status: u16,
    /// The machine code (`TOKEN_REVOKED`…), when the body carried one.
    pub code: Option<String>,
    /// A human-readable message: the service's, or ours when the body was unusable.
    pub message: String,
}

impl ApiError {
    /// A transport failure (no HTTP response).
    pub fn transport(message: impl Into<String>) -> Self {
        Self { status: 0, code: None, message: message.into() }
    }

    /// Parse a MoltChats-style error body. Accepts both shapes:
    /// `{statusCode, code, error: "Unauthorized", message}` (preferred: `code`) and
    /// `{error: "CODE", message}`. Anything else becomes a message-only error.
    pub fn from_moltchats(status: u16, body: &[u8]) -> Self {
        let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let obj = value.as_ref().and_then(|v| v.as_object());
        let text = |key: &str| obj.and_then(|o| o.get(key)).and_then(|v| v.as_str());
        let code = text("code").map(str::to_owned).or_else(|| {
            // Older shape: `error` holds the machine code when it looks like one.
            text("error").filter(|e| looks_like_code(e)).map(str::to_owned)
        });
        // A 5xx message is the raw exception text (with SQL and its parameters): not forwarded.
        let message = if status >= 500 {
            server_fault(status)
        } else {
            text("message").or_else(|| text("error")).map(|m| truncate(m, 512)).unwrap_or_else(|| describe_unparsed(status, body))
        };
        Self { status, code, message }
    }

    /// Parse a Moltbook error body `{success:false, error, hint}`. `error` is usually a
    /// sentence (kept as the message, with the hint appended); when it looks like a machine
    /// code, or a `code` field is present, that becomes the code. Anything else becomes a
    /// message-only error that does not echo the body.
    pub fn from_moltbook(status: u16, body: &[u8]) -> Self {
        let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let obj = value.as_ref().and_then(|v| v.as_object());
        // `error` may itself be an object `{code, message}` in drifted shapes.
        let nested = obj.and_then(|o| o.get("error")).and_then(|e| e.as_object());
        let text = |key: &str| {
            obj.and_then(|o| o.get(key)).and_then(|v| v.as_str()).or_else(|| nested.and_then(|n| n.get(key)).and_then(|v| v.as_str()))
        };
        let error = text("error");
        let code = text("code").or(error.filter(|e| looks_like_code(e))).map(str::to_owned);
        let message = error
            .filter(|e| !looks_like_code(e))
            .or_else(|| text("message"))
            .or(error)
            .map(|m| match text("hint").filter(|h| !h.is_empty()) {
                Some(hint) => format!("{} (hint: {})", truncate(m, 512), truncate(hint, 256)),
                None => truncate(m, 512),
            })
            .unwrap_or_else(|| describe_unparsed(status, body));
        Self { status, code, message }
    }

    /// Whether the server's error code is `code`.
    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, self.status) {
            (Some(code), 0) => write!(f, "{code}: {}", self.message),
            (Some(code), s) => write!(f, "{code} (HTTP {s}): {}", self.message),
            (None, 0) => write!(f, "transport failure: {}", self.message),
            (None, s) => write!(f, "HTTP {s}: {}", self.message),
        }
    }
}

fn looks_like_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// What a host learns of a server fault: the status, never the server's own text.
fn server_fault(status: u16) -> String {
    let _ = status;
    "server error; its message is withheld (it can carry internal details)".to_owned()
}

/// Describe a body we could not use without echoing it (it might contain secrets).
pub(crate) fn describe_unparsed(status: u16, body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Err(_) => format!("HTTP {status} with a non-UTF-8 body of {} bytes", body.len()),
        Ok(_) if body.is_empty() => format!("HTTP {status} with an empty body"),
        Ok(_) => format!("HTTP {status} with an unexpected body of {} bytes", body.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_framework_shape_preferring_code() {
        let e = ApiError::from_moltchats(
            401,
            br#"{"statusCode":401,"code":"TOKEN_REVOKED","error":"Unauthorized","message":"Token has been revoked"}"#,
        );
        assert_eq!(e.code.as_deref(), Some("TOKEN_REVOKED"));
        assert_eq!(e.message, "Token has been revoked");
    }

    #[test]
    fn parses_legacy_shape() {
        let e = ApiError::from_moltchats(409, br#"{"error":"USERNAME_TAKEN","message":"taken"}"#);
        assert_eq!(e.code.as_deref(), Some("USERNAME_TAKEN"));
    }

    #[test]
    fn server_fault_text_is_not_forwarded() {
        let body = br#"{"statusCode":500,"error":"Internal Server Error","message":"invalid input syntax for type uuid: \"x\" select * from agents where id = $1 params: x"}"#;
        let e = ApiError::from_moltchats(500, body);
        assert_eq!((e.status, e.code.as_deref()), (500, None));
        assert!(!e.message.contains("select") && !e.message.contains("uuid"), "{}", e.message);
    }

    #[test]
    fn reason_phrase_is_not_a_code_and_unknown_codes_are_kept() {
        let e = ApiError::from_moltchats(500, br#"{"statusCode":500,"error":"Internal Server Error","message":"boom"}"#);
        assert_eq!(e.code, None);
        let e = ApiError::from_moltchats(418, br#"{"code":"BRAND_NEW_CODE"}"#);
        assert_eq!(e.code.as_deref(), Some("BRAND_NEW_CODE"));
    }

    #[test]
    fn moltbook_shapes() {
        let e = ApiError::from_moltbook(403, br#"{"success":false,"error":"This agent has blocked you","hint":"Blocked agents cannot send new requests"}"#);
        assert_eq!(e.code, None);
        assert_eq!(e.message, "This agent has blocked you (hint: Blocked agents cannot send new requests)");
        let e = ApiError::from_moltbook(429, br#"{"success":false,"error":"RATE_LIMITED"}"#);
        assert_eq!(e.code.as_deref(), Some("RATE_LIMITED"));
        assert_eq!(e.message, "RATE_LIMITED");
        let e = ApiError::from_moltbook(400, br#"{"success":false,"error":{"code":"BAD","message":"nope"}}"#);
        assert_eq!((e.code.as_deref(), e.message.as_str()), (Some("BAD"), "nope"));
        let e = ApiError::from_moltbook(502, b"<html>key</html>");
        assert!(!e.message.contains("key"));
    }

    #[test]
    fn garbage_bodies_do_not_echo() {
        let e = ApiError::from_moltchats(400, &[0xff, 0xfe, b'x']);
        assert!(e.message.contains("non-UTF-8"));
        let e = ApiError::from_moltchats(502, b"<html>secret</html>");
        assert!(!e.message.contains("secret"));
    }
}
