//! Reading `exp`/`iat` from an access token without verifying it: a client cannot verify an
//! HS256 token (no secret) and only needs the times to schedule refreshes (MoltChats tokens,
//! Moltspaces room tokens).

use base64::Engine as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// When a token was issued and expires (read from the JWT, not verified).
pub struct TokenTimes {
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued-at, Unix seconds, when present.
    pub iat: Option<u64>,
}

/// `None` when the token is not a JWT with a numeric `exp`.
pub fn read_times(token: &str) -> Option<TokenTimes> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 8192 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let number = |key: &str| claims.get(key).and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)));
    Some(TokenTimes { exp: number("exp")?, iat: number("iat") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b64(r#"{"alg":"HS256"}"#), b64(claims))
    }

    #[test]
    fn reads_exp_and_iat() {
        assert_eq!(read_times(&token(r#"{"exp":200,"iat":100}"#)), Some(TokenTimes { exp: 200, iat: Some(100) }));
        assert_eq!(read_times(&token(r#"{"exp":200}"#)), Some(TokenTimes { exp: 200, iat: None }));
    }

    #[test]
    fn rejects_non_jwts() {
        assert_eq!(read_times("garbage"), None);
        assert_eq!(read_times(&token(r#"{"iat":1}"#)), None);
        assert_eq!(read_times("a.%%%.c"), None);
        assert_eq!(read_times("a.b.c.d"), None);
    }
}
