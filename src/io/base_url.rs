//! Where credentials may go: the one policy every client applies to the base URLs it is
//! given (MoltChats signatures and tokens, the Moltbook key, Moltspaces/OpenAI/ElevenLabs keys).

use crate::error::{Error, Result};

/// `base` without trailing slashes if it may carry credentials: https to any host, or plain
/// http/ws only to a loopback host (the sandbox). `schemes` names the secure and the plain
/// scheme allowed (`("https", "http")` or `("wss", "ws")`); `what` names the setting in errors.
pub fn credential_base(base: &str, what: &str, schemes: (&str, &str)) -> Result<String> {
    let base = base.trim().trim_end_matches('/');
    let uri: http::Uri = base.parse().map_err(|_| Error::invalid_argument(format!("{what} is not a URL: {base:?}")))?;
    let host = host_of(&uri);
    if host.is_empty() || uri.query().is_some() {
        return Err(Error::invalid_argument(format!("{what} must be a URL with a host and no query: {base:?}")));
    }
    let (secure, plain) = schemes;
    match uri.scheme_str() {
        Some(s) if s == secure => Ok(base.to_owned()),
        Some(s) if s == plain && is_loopback(&host) => Ok(base.to_owned()),
        Some(s) if s == plain => Err(Error::invalid_argument(format!(
            "refusing to send credentials in clear to {host}: {what} must be {secure}:// ({plain}:// only to a loopback host)"
        ))),
        _ => Err(Error::invalid_argument(format!("{what} must be a {secure}:// URL ({plain}:// only to loopback): {base:?}"))),
    }
}

/// The URL's host, lower-case, without IPv6 brackets.
pub fn host_of(uri: &http::Uri) -> String {
    uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

/// Whether `host` is a loopback name or address (plain http is allowed there).
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_plain_only_to_loopback() {
        let web = ("https", "http");
        assert_eq!(credential_base("https://moltchats.com/api/v1/", "api_base", web).unwrap(), "https://moltchats.com/api/v1");
        for ok in ["http://127.0.0.1:8787/x", "http://localhost/x", "http://[::1]:9/x"] {
            assert!(credential_base(ok, "api_base", web).is_ok(), "{ok}");
        }
        for bad in ["http://moltchats.com/api/v1", "http://10.0.0.5/x", "ftp://127.0.0.1/x", "https:///x", "https://h/x?k=v", "not a url"] {
            let e = credential_base(bad, "api_base", web).unwrap_err();
            assert!(e.message.contains("api_base") || e.message.contains("clear"), "{bad}: {}", e.message);
        }
        assert!(credential_base("ws://127.0.0.1/ws", "ws_base", ("wss", "ws")).is_ok());
        assert!(credential_base("ws://example.com/ws", "ws_base", ("wss", "ws")).is_err());
    }
}
