//! Helpers shared by every emulated platform: JSON responses in the Fastify error shape,
//! body parsing, ids, hex, ISO timestamps.

use http::{Response, StatusCode, header};
use rand_core::Rng;
use serde_json::{Value, json};

/// Content type of every sandbox response.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// An application error as the real servers emit it:
/// `{"statusCode":401,"code":"TOKEN_REVOKED","error":"Unauthorized","message":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code:?}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Machine code; `None` for framework errors (unknown route, 500) that carry no `code`.
    pub code: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).expect("valid status"),
            code: Some(code),
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "VALIDATION_ERROR", message)
    }

    pub fn into_response(self) -> Response<Vec<u8>> {
        match self.code {
            Some(code) => json_error(self.status.as_u16(), code, &self.message),
            None => json_error_no_code(self.status.as_u16(), &self.message),
        }
    }
}

/// Result type of route handlers: `Err` is rendered with [`ApiError::into_response`].
pub type ApiResult = Result<Response<Vec<u8>>, ApiError>;

/// HTTP reason phrase (`error` field of error bodies).
pub fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// JSON response with the given status and body.
pub fn json_response(status: u16, body: &Value) -> Response<Vec<u8>> {
    let bytes = serde_json::to_vec(body).expect("serialize json");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, JSON_CONTENT_TYPE)
        .body(bytes)
        .expect("valid response")
}

/// Error body with a machine `code`.
pub fn json_error(status: u16, code: &str, message: &str) -> Response<Vec<u8>> {
    json_response(
        status,
        &json!({
            "statusCode": status,
            "code": code,
            "error": reason(status),
            "message": message,
        }),
    )
}

/// Error body without `code` (framework-level: unknown route, 413, 500).
pub fn json_error_no_code(status: u16, message: &str) -> Response<Vec<u8>> {
    json_response(
        status,
        &json!({
            "statusCode": status,
            "error": reason(status),
            "message": message,
        }),
    )
}

/// Fastify-style unknown-route 404: `Route GET:/x not found`.
pub fn route_not_found(method: &http::Method, path_and_query: &str) -> Response<Vec<u8>> {
    json_error_no_code(404, &format!("Route {method}:{path_and_query} not found"))
}

/// Parse a JSON object body. Empty body or malformed JSON → 400 VALIDATION_ERROR.
pub fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation("body must be object"));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("Body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::validation("body must be object"));
    }
    Ok(v)
}

/// Required string field of a JSON object body.
pub fn req_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::validation(format!("body/{field} must be string"))),
        None => Err(ApiError::validation(format!(
            "body must have required property '{field}'"
        ))),
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// `n` random bytes as lowercase hex (2n characters).
pub fn random_hex(rng: &mut impl Rng, n: usize) -> String {
    let mut buf = vec![0u8; n];
    rng.fill_bytes(&mut buf);
    hex(&buf)
}

/// Random version-4 UUID string.
pub fn random_uuid(rng: &mut impl Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Unix epoch milliseconds → `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// Path split into non-empty segments (`/a//b/` → `["a","b"]`).
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Value of a request header as a string, if present and valid UTF-8.
pub fn header_str<'a, B>(req: &'a http::Request<B>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The request path and query as it appeared on the wire (for 404 messages).
pub fn path_and_query<B>(req: &http::Request<B>) -> String {
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn error_shape() {
        let r = json_error(401, "TOKEN_REVOKED", "Token has been revoked");
        let v: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            v,
            json!({"statusCode":401,"code":"TOKEN_REVOKED","error":"Unauthorized","message":"Token has been revoked"})
        );
        assert_eq!(r.headers()[header::CONTENT_TYPE], JSON_CONTENT_TYPE);
    }
}
