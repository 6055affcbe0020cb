//! Helpers shared by every emulated platform: JSON responses in the Fastify error shape,
//! body parsing, ids, hex, ISO timestamps.

use http::{Response, StatusCode, header};
use rand_core::Rng;
use serde_json::Value;

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

    /// A 500 as Fastify renders an uncaught exception: no `code`, the raw exception text.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: None, message: message.into() }
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

/// A JSON value that keeps object keys in insertion order. The real MoltChats server's key
/// order is part of the recorded contract, and `serde_json::Value` (without `preserve_order`,
/// which the workspace does not enable) sorts keys.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// Value of `key` if this is an object holding it.
    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Convert to a (key-sorted) `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("J serialises")
    }
}

impl serde::Serialize for J {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            J::Null => s.serialize_unit(),
            J::Bool(b) => s.serialize_bool(*b),
            J::Num(n) => n.serialize(s),
            J::Str(v) => s.serialize_str(v),
            J::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            J::Obj(kv) => {
                let mut map = s.serialize_map(Some(kv.len()))?;
                for (k, v) in kv {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl From<&str> for J {
    fn from(v: &str) -> Self {
        J::Str(v.to_owned())
    }
}
impl From<String> for J {
    fn from(v: String) -> Self {
        J::Str(v)
    }
}
impl From<&String> for J {
    fn from(v: &String) -> Self {
        J::Str(v.clone())
    }
}
impl From<bool> for J {
    fn from(v: bool) -> Self {
        J::Bool(v)
    }
}
macro_rules! j_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for J {
            fn from(v: $t) -> Self {
                J::Num(serde_json::Number::from(v))
            }
        }
    )*};
}
j_from_int!(u64, u32, u16, usize, i64, i32);
impl From<f64> for J {
    fn from(v: f64) -> Self {
        serde_json::Number::from_f64(v).map_or(J::Null, J::Num)
    }
}
impl<T: Into<J>> From<Option<T>> for J {
    fn from(v: Option<T>) -> Self {
        v.map_or(J::Null, Into::into)
    }
}
impl<T: Into<J>> From<Vec<T>> for J {
    fn from(v: Vec<T>) -> Self {
        J::Arr(v.into_iter().map(Into::into).collect())
    }
}
impl From<&Value> for J {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Num(n.clone()),
            Value::String(s) => J::Str(s.clone()),
            Value::Array(a) => J::Arr(a.iter().map(J::from).collect()),
            Value::Object(o) => J::Obj(o.iter().map(|(k, v)| (k.clone(), J::from(v))).collect()),
        }
    }
}

/// An ordered JSON object: `obj! { "a" => 1, "b" => "x" }`.
#[macro_export]
macro_rules! obj {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::common::J::Obj(vec![$((($k).to_string(), $crate::common::J::from($v))),*])
    };
}

/// JSON response with the given status and body (a `Value`, a [`J`], anything serialisable).
pub fn json_response<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Response<Vec<u8>> {
    let bytes = serde_json::to_vec(body).expect("serialize json");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, JSON_CONTENT_TYPE)
        .body(bytes)
        .expect("valid response")
}

/// Error body with a machine `code`.
pub fn json_error(status: u16, code: &str, message: &str) -> Response<Vec<u8>> {
    json_response(status, &crate::obj! { "statusCode" => status, "code" => code, "error" => reason(status), "message" => message })
}

/// Error body without `code` (framework-level: unknown route, 413, 500).
pub fn json_error_no_code(status: u16, message: &str) -> Response<Vec<u8>> {
    json_response(status, &crate::obj! { "statusCode" => status, "error" => reason(status), "message" => message })
}

/// Fastify's default unknown-route 404 (its own key order): `Route GET:/x not found`.
pub fn route_not_found(method: &http::Method, path_and_query: &str) -> Response<Vec<u8>> {
    let message = format!("Route {method}:{path_and_query} not found");
    json_response(404, &crate::obj! { "message" => message, "error" => "Not Found", "statusCode" => 404 })
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

/// A MoltChats request body as the handlers see it. No body (and no JSON content type) and
/// non-JSON content types (Fastify's text parser) give an empty object; a JSON content type with
/// an empty or malformed body is a 500, as on the real server (`030`, `031`).
pub fn moltchats_body<B: AsRef<[u8]>>(req: &http::Request<B>) -> Result<Value, ApiError> {
    let body = req.body().as_ref();
    let is_json = header_str(req, "content-type").is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    if !is_json {
        return Ok(Value::Object(Default::default()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::internal("Cannot destructure property of 'request.body' as it is undefined."));
    }
    serde_json::from_slice(body).map_err(|_| ApiError::internal("Unexpected end of JSON input"))
}

/// Is `s` a UUID (8-4-4-4-12 hex)? Ids that are not fail in Postgres with a 500.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// The 500 a non-UUID id causes (the real server leaks the failed SQL; `081`).
pub fn uuid_or_500(id: &str, table: &str) -> Result<(), ApiError> {
    if is_uuid(id) {
        Ok(())
    } else {
        Err(ApiError::internal(format!("Failed query: select from \"{table}\" where \"{table}\".\"id\" = $1 limit $2\nparams: {id},1")))
    }
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
    use serde_json::json;

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
