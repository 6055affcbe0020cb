//! The credentials file of the MoltChats skill (`~/.config/moltchats/credentials.json`):
//! `{agentId, username, privateKey, refreshToken, apiBase}`, plus `refreshInFlight`, our
//! marker that a refresh token may have been spent without its successor being saved.
//! Unknown fields are kept so a round trip through moltlink loses nothing.
//!
//! The secrets never pass through a buffer we cannot wipe: parsing borrows each value as raw
//! JSON and unescapes the key and token into buffers sized up front (serde_json's own unescape
//! goes through a growing scratch buffer that is freed unwiped), and `to_json` writes into a
//! buffer that never reallocates.

use crate::error::{Error, ErrorCode, Result};
use crate::io::Secret;
use serde::Serialize;
use serde_json::value::RawValue;
use zeroize::Zeroizing;

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
/// What the host persists for an agent: its identity, key and refresh token (the skill's JSON format).
pub struct Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The agent's id, once registered.
    pub agent_id: Option<String>,
    /// The agent's username.
    pub username: String,
    #[serde(serialize_with = "secret_string::serialize")]
    /// The agent's RSA private key (PEM).
    pub private_key: Secret<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_secret_string::serialize")]
    /// The refresh token, once logged in.
    pub refresh_token: Option<Secret<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The API base these credentials belong to.
    pub api_base: Option<String>,
    /// Set (and persisted) before `/auth/refresh` is sent; cleared when its successor is saved.
    /// A process that starts with it set must not use `refresh_token` and re-authenticates.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refresh_in_flight: bool,
    #[serde(flatten)]
    /// Fields of the file we do not know (and what other parts of moltlink save beside the
    /// credentials), kept as they were.
    pub extra: RawFields,
}

/// Named JSON values kept as their text, in file order: compact (an idle session holds them
/// for its whole life) and written back byte for byte.
#[derive(Clone, Default)]
pub struct RawFields(Vec<(String, Box<RawValue>)>);

impl RawFields {
    /// The value saved under `name`.
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| &**v)
    }

    /// Save `value` under `name`, in place of what was there.
    pub fn insert(&mut self, name: String, value: Box<RawValue>) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }
}

/// Names only: an unknown field of a credentials file may hold anything.
impl std::fmt::Debug for RawFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(n, _)| n)).finish()
    }
}

impl Serialize for RawFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
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
    /// Parse the file. Errors say where the JSON broke or which field is wrong, never what it
    /// contained.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let fields: Vec<(String, &RawValue)> = serde_json::from_slice::<RawObject>(bytes)
            .map_err(|e| {
                let what = match e.classify() {
                    serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "is not valid JSON",
                    serde_json::error::Category::Data => "is not a JSON object",
                    serde_json::error::Category::Io => "could not be read",
                };
                invalid(format!("credentials file {what} (line {}, column {})", e.line(), e.column()))
            })?
            .0;
        let mut c = Credentials {
            agent_id: None,
            username: String::new(),
            private_key: Secret::new(String::new()),
            refresh_token: None,
            api_base: None,
            refresh_in_flight: false,
            extra: RawFields::default(),
        };
        let (mut has_username, mut has_key) = (false, false);
        for (name, raw) in fields {
            match name.as_str() {
                "agentId" => c.agent_id = plain(raw, "agentId")?,
                "username" => (c.username, has_username) = (plain::<String>(raw, "username")?, true),
                "privateKey" => (c.private_key, has_key) = (unescape_secret(raw, "privateKey")?, true),
                "refreshToken" if raw.get() == "null" => c.refresh_token = None,
                "refreshToken" => {
                    c.refresh_token = Some(unescape_secret(raw, "refreshToken")?).filter(|t| !t.expose().is_empty())
                }
                "apiBase" => c.api_base = plain(raw, "apiBase")?,
                "refreshInFlight" => c.refresh_in_flight = plain::<Option<bool>>(raw, "refreshInFlight")?.unwrap_or(false),
                _ => {
                    c.extra.insert(name, raw.to_owned());
                }
            }
        }
        match (has_username, has_key) {
            (true, true) => Ok(c),
            (false, _) => Err(invalid("credentials file has no `username`".into())),
            (_, false) => Err(invalid("credentials file has no `privateKey`".into())),
        }
    }

    /// The JSON the host stores (owner-only: it holds the private key).
    pub fn to_json(&self) -> Secret<Vec<u8>> {
        // Measure first so the buffer holding the key is allocated once and never moved.
        let mut counter = ByteCounter(0);
        serde_json::to_writer_pretty(&mut counter, self).expect("credentials serialise");
        let mut out = Vec::with_capacity(counter.0);
        serde_json::to_writer_pretty(&mut out, self).expect("credentials serialise");
        Secret::new(out)
    }
}

/// The top-level object with every value borrowed as raw JSON text (nothing unescaped).
struct RawObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

fn invalid(message: String) -> Error {
    Error::new(ErrorCode::InvalidCredentials, message)
}

/// A non-secret field, parsed by serde_json.
fn plain<T: serde::de::DeserializeOwned>(raw: &RawValue, field: &str) -> Result<T> {
    serde_json::from_str(raw.get()).map_err(|_| invalid(format!("credentials file: {field} has the wrong type")))
}

/// A JSON string literal unescaped into a buffer sized up front (an escape is never shorter
/// than what it stands for), so the secret is written once and wiped on drop.
fn unescape_secret(raw: &RawValue, field: &str) -> Result<Secret<String>> {
    let bad = || invalid(format!("credentials file: {field} must be a string"));
    let inner = raw.get().strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or_else(bad)?;
    let mut out = Zeroizing::new(String::with_capacity(inner.len()));
    let hex4 = |chars: &mut std::str::Chars| -> Result<u32> {
        let digits = chars.as_str().get(..4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit())).ok_or_else(bad)?;
        let value = u32::from_str_radix(digits, 16).map_err(|_| bad())?;
        chars.nth(3);
        Ok(value)
    };
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let unescaped = match chars.next().ok_or_else(bad)? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let high = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&high) {
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err(bad());
                    }
                    let low = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(bad());
                    }
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                char::from_u32(code).ok_or_else(bad)?
            }
            _ => return Err(bad()),
        };
        out.push(unescaped);
    }
    Ok(Secret::new(std::mem::take(&mut *out)))
}

/// Counts what serde_json would write.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

mod secret_string {
    use super::Secret;
    use serde::Serializer;
    pub fn serialize<S: Serializer>(v: &Secret<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.expose())
    }
}

mod opt_secret_string {
    use super::Secret;
    use serde::Serializer;
    pub fn serialize<S: Serializer>(v: &Option<Secret<String>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(v.expose()),
            None => s.serialize_none(),
        }
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
    fn escapes_in_secrets_unescape_like_serde_json() {
        for raw in [r#""a\nb\"c\\d\/e\t\u00e9\ud83d\ude00""#, r#""plain""#, r#""""#] {
            let expected: String = serde_json::from_str(raw).unwrap();
            let file = format!(r#"{{"username":"bot","privateKey":{raw},"refreshToken":{raw}}}"#);
            let c = Credentials::parse(file.as_bytes()).unwrap();
            assert_eq!(c.private_key.expose(), &expected);
            assert_eq!(c.refresh_token.as_ref().map(|t| t.expose().clone()), Some(expected.clone()).filter(|e| !e.is_empty()));
            let back: serde_json::Value = serde_json::from_slice(c.to_json().expose()).unwrap();
            assert_eq!(back["privateKey"], expected.as_str());
        }
        for bad in [r#""\x""#, r#""\u12""#, r#""\u12g4""#, r#""\ud83d""#, r#""\ud83d\u0041""#, "12", "null"] {
            let file = format!(r#"{{"username":"bot","privateKey":{bad}}}"#);
            // serde_json rejects some of these while scanning, the unescape the rest: both are errors.
            let err = Credentials::parse(file.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidCredentials);
            assert!(err.message.contains("privateKey must be a string") || err.message.contains("not valid JSON"), "{bad}: {}", err.message);
        }
        assert!(Credentials::parse(br#"{"privateKey":"k"}"#).unwrap_err().message.contains("username"));
        assert!(Credentials::parse(br#"{"username":"bot"}"#).unwrap_err().message.contains("privateKey"));
        assert!(Credentials::parse(br#"[1]"#).unwrap_err().message.contains("not a JSON object"));
        assert!(Credentials::parse(br#"{"username":"bot","privateKey":"k","refreshInFlight":"yes"}"#).is_err());
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
