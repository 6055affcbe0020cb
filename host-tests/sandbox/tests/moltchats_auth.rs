//! MoltChats auth through the sans-IO core with a virtual clock, plus one test through the real
//! tiny_http server over a raw TcpStream.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{Request, Response};
use moltlink_sandbox::{Sandbox, SandboxConfig, serve};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};

const API: &str = "/moltchats/api/v1";
/// 2026-01-01T00:00:00Z
const T0: u64 = 1_767_225_600_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

struct Key {
    signing: SigningKey<sha2::Sha256>,
    public_pem: String,
}

/// One RSA-2048 key per test binary (keygen is slow in debug builds).
fn key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let private = rsa::PrivateKey::new(&mut rng, 2048).expect("keygen");
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        Key {
            signing: SigningKey::<sha2::Sha256>::new(private),
            public_pem,
        }
    })
}

fn sign(challenge: &str) -> String {
    STANDARD.encode(key().signing.sign(challenge.as_bytes()).to_vec())
}

fn req(method: &str, path: &str, bearer: Option<&str>, body: Option<Value>) -> Request<Vec<u8>> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("{API}{path}"));
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            serde_json::to_vec(&v).unwrap()
        }
        None => Vec::new(),
    };
    b.body(body).unwrap()
}

fn body(r: &Response<Vec<u8>>) -> Value {
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    serde_json::from_slice(r.body()).expect("json body")
}

/// Assert status and (for errors) code; return the body.
fn expect(r: Response<Vec<u8>>, status: u16, code: Option<&str>) -> Value {
    let v = body(&r);
    assert_eq!(r.status().as_u16(), status, "body: {v}");
    if let Some(code) = code {
        assert_eq!(v["code"], code, "body: {v}");
        assert_eq!(v["statusCode"], status);
        assert_eq!(
            v["error"],
            http::StatusCode::from_u16(status)
                .unwrap()
                .canonical_reason()
                .unwrap()
        );
    }
    v
}

struct Pair {
    agent_id: String,
    token: String,
    refresh: String,
}

fn register(sb: &Sandbox, username: &str, now: u64) -> (String, String) {
    let v = expect(
        sb.handle(
            req(
                "POST",
                "/agents/register",
                None,
                Some(json!({"username": username, "publicKey": key().public_pem, "capabilities": ["chat"]})),
            ),
            now,
        ),
        201,
        None,
    );
    (
        v["agentId"].as_str().unwrap().to_owned(),
        v["challenge"].as_str().unwrap().to_owned(),
    )
}

fn verify(sb: &Sandbox, agent_id: &str, signed: &str, now: u64) -> Response<Vec<u8>> {
    sb.handle(
        req(
            "POST",
            "/agents/verify",
            None,
            Some(json!({"agentId": agent_id, "signedChallenge": signed})),
        ),
        now,
    )
}

fn login(sb: &Sandbox, username: &str, now: u64) -> Pair {
    let (agent_id, challenge) = register(sb, username, now);
    let v = expect(verify(sb, &agent_id, &sign(&challenge), now), 200, None);
    assert_eq!(v["agentId"], agent_id.as_str());
    Pair {
        agent_id,
        token: v["token"].as_str().unwrap().to_owned(),
        refresh: v["refreshToken"].as_str().unwrap().to_owned(),
    }
}

fn me(sb: &Sandbox, token: &str, now: u64) -> Response<Vec<u8>> {
    sb.handle(req("GET", "/agents/@me", Some(token), None), now)
}

fn refresh(sb: &Sandbox, refresh: &str, now: u64) -> Response<Vec<u8>> {
    sb.handle(
        req(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refreshToken": refresh})),
        ),
        now,
    )
}

fn pair_of(v: &Value) -> Pair {
    Pair {
        agent_id: v["agentId"].as_str().unwrap().to_owned(),
        token: v["token"].as_str().unwrap().to_owned(),
        refresh: v["refreshToken"].as_str().unwrap().to_owned(),
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn register_verify_and_profile() {
    let sb = Sandbox::default();
    let (agent_id, challenge) = register(&sb, "Test_Agent", T0);
    assert_eq!(challenge.len(), 64);
    assert!(is_lower_hex(&challenge));
    assert_eq!(agent_id.len(), 36);

    let v = expect(
        verify(&sb, &agent_id, &sign(&challenge), T0 + 1000),
        200,
        None,
    );
    let p = pair_of(&v);
    assert_eq!(p.agent_id, agent_id);
    assert!(p.refresh.starts_with("msr_"));
    assert_eq!(p.refresh.len(), 4 + 96);
    assert!(is_lower_hex(&p.refresh[4..]));

    let claims = jwt_claims(&p.token);
    assert_eq!(claims["sub"], agent_id.as_str());
    assert_eq!(claims["username"], "test_agent");
    assert_eq!(claims["role"], "agent");
    assert_eq!(claims["iat"], (T0 + 1000) / 1000);
    assert_eq!(claims["exp"], (T0 + 1000) / 1000 + 14_400);
    assert!(claims["jti"].is_string());

    let v = expect(me(&sb, &p.token, T0 + 2000), 200, None);
    assert_eq!(v["id"], agent_id.as_str());
    assert_eq!(v["username"], "test_agent");
    assert_eq!(v["capabilities"], json!(["chat"]));
    assert_eq!(v["createdAt"], "2026-01-01T00:00:00.000Z");
    // Only WebSocket presence sets lastSeenAt on the real server (recorded `035`).
    assert!(v["lastSeenAt"].is_null());
    assert_eq!(v["karma"], 0);
    assert!(v["trustTier"].is_null() && v["displayName"].is_null());

    // Public profile, case-insensitive; unknown → 404.
    let v = expect(
        sb.handle(req("GET", "/agents/TEST_agent", None, None), T0),
        200,
        None,
    );
    assert_eq!(v["id"], agent_id.as_str());
    expect(
        sb.handle(req("GET", "/agents/nobody_here", None, None), T0),
        404,
        Some("AGENT_NOT_FOUND"),
    );

    // The challenge is consumed.
    expect(
        verify(&sb, &agent_id, &sign(&challenge), T0 + 3000),
        400,
        Some("CHALLENGE_EXPIRED"),
    );
    let s = sb.stats();
    assert_eq!((s.register_calls, s.verify_calls), (1, 2));
    assert_eq!(sb.moltchats_agent_id("TEST_AGENT"), Some(agent_id));
}

#[test]
fn register_validation_and_errors() {
    let sb = Sandbox::default();
    let reg = |name: &str| {
        sb.handle(
            req(
                "POST",
                "/agents/register",
                None,
                Some(json!({"username": name, "publicKey": "x"})),
            ),
            T0,
        )
    };
    expect(reg("ab"), 400, Some("VALIDATION_ERROR"));
    expect(reg("has-dash"), 400, Some("VALIDATION_ERROR"));
    expect(reg(&"a".repeat(65)), 400, Some("VALIDATION_ERROR"));
    expect(reg("Bob_1"), 201, None);
    expect(reg("BOB_1"), 409, Some("USERNAME_TAKEN"));
    expect(
        sb.handle(
            req(
                "POST",
                "/agents/register",
                None,
                Some(json!({"username": "carol"})),
            ),
            T0,
        ),
        400,
        Some("VALIDATION_ERROR"),
    );
    // Malformed JSON.
    let bad = Request::builder()
        .method("POST")
        .uri(format!("{API}/agents/register"))
        .body(b"{not json".to_vec())
        .unwrap();
    expect(sb.handle(bad, T0), 400, Some("VALIDATION_ERROR"));
    // Unknown routes: 404 with a message only.
    let v = expect(sb.handle(req("GET", "/x", None, None), T0), 404, None);
    assert_eq!(
        v,
        json!({"statusCode":404,"error":"Not Found","message":"Route GET:/moltchats/api/v1/x not found"})
    );
    let v = expect(
        sb.handle(req("DELETE", "/agents/register", None, None), T0),
        404,
        None,
    );
    assert!(v.get("code").is_none());
    let other = Request::builder()
        .uri("/elsewhere/v1/rooms/x")
        .body(Vec::new())
        .unwrap();
    expect(sb.handle(other, T0), 404, None);
}

#[test]
fn bad_signature_keeps_challenge_and_bad_key_or_agent() {
    let sb = Sandbox::default();
    let (agent_id, challenge) = register(&sb, "signer", T0);
    // Signature over the wrong message, truncated signature, non-base64.
    expect(
        verify(&sb, &agent_id, &sign("something else"), T0),
        400,
        Some("INVALID_SIGNATURE"),
    );
    expect(
        verify(&sb, &agent_id, &STANDARD.encode([1u8; 10]), T0),
        400,
        Some("INVALID_SIGNATURE"),
    );
    expect(
        verify(&sb, &agent_id, "!!!not base64", T0),
        400,
        Some("INVALID_SIGNATURE"),
    );
    // Signing the hex-decoded bytes is wrong too.
    let decoded: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&challenge[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let sig = STANDARD.encode(key().signing.sign(&decoded).to_vec());
    expect(
        verify(&sb, &agent_id, &sig, T0),
        400,
        Some("INVALID_SIGNATURE"),
    );
    // The challenge survived.
    expect(verify(&sb, &agent_id, &sign(&challenge), T0), 200, None);

    expect(
        verify(
            &sb,
            "00000000-0000-4000-8000-000000000000",
            &sign(&challenge),
            T0,
        ),
        404,
        Some("AGENT_NOT_FOUND"),
    );

    let v = expect(
        sb.handle(
            req(
                "POST",
                "/agents/register",
                None,
                Some(json!({"username": "badkey", "publicKey": "not a pem"})),
            ),
            T0,
        ),
        201,
        None,
    );
    let id = v["agentId"].as_str().unwrap();
    let ch = v["challenge"].as_str().unwrap();
    // A key that is not PEM fails as a bad signature (recorded `025`).
    expect(
        verify(&sb, id, &sign(ch), T0),
        400,
        Some("INVALID_SIGNATURE"),
    );
}

#[test]
fn challenge_expires_after_lifetime() {
    let sb = Sandbox::default();
    let (agent_id, challenge) = register(&sb, "slowpoke", T0);
    expect(
        verify(&sb, &agent_id, &sign(&challenge), T0 + 300_000),
        400,
        Some("CHALLENGE_EXPIRED"),
    );

    let sb = Sandbox::default();
    let (agent_id, challenge) = register(&sb, "quick", T0);
    expect(
        verify(&sb, &agent_id, &sign(&challenge), T0 + 299_999),
        200,
        None,
    );
}

#[test]
fn reauth_challenge_mints_independent_pair() {
    let sb = Sandbox::default();
    let (unverified, _) = register(&sb, "unverified", T0);
    let ch = |id: &str| {
        sb.handle(
            req(
                "POST",
                "/auth/challenge",
                None,
                Some(json!({"agentId": id})),
            ),
            T0,
        )
    };
    // Never-verified agents are "not found" (recorded `038`); a non-UUID id is a 500 (`028`).
    expect(ch(&unverified), 404, Some("AGENT_NOT_FOUND"));
    expect(ch("00000000-0000-4000-8000-000000000000"), 404, Some("AGENT_NOT_FOUND"));
    assert_eq!(ch("nope").status(), 500);

    let first = login(&sb, "reauth", T0);
    let v = expect(ch(&first.agent_id), 200, None);
    let challenge = v["challenge"].as_str().unwrap();
    assert_eq!(challenge.len(), 64);
    let second = pair_of(&expect(
        verify(&sb, &first.agent_id, &sign(challenge), T0),
        200,
        None,
    ));
    assert_ne!(first.token, second.token);
    assert_ne!(first.refresh, second.refresh);
    // Both pairs live.
    expect(me(&sb, &first.token, T0), 200, None);
    expect(me(&sb, &second.token, T0), 200, None);
    expect(refresh(&sb, &first.refresh, T0), 200, None);
    expect(refresh(&sb, &second.refresh, T0), 200, None);
    assert_eq!(sb.stats().challenge_calls, 4);
}

#[test]
fn refresh_rotation_revokes_old_pair_and_reuse_is_rejected() {
    let sb = Sandbox::default();
    let p0 = login(&sb, "rotator", T0);
    let p1 = pair_of(&expect(refresh(&sb, &p0.refresh, T0 + HOUR), 200, None));
    assert_eq!(p1.agent_id, p0.agent_id);
    assert_ne!(p1.refresh, p0.refresh);

    // The access token minted with the old refresh token is revoked.
    expect(me(&sb, &p0.token, T0 + HOUR), 401, Some("TOKEN_REVOKED"));
    let v = body(&me(&sb, &p0.token, T0 + HOUR));
    assert_eq!(v["message"], "Token has been revoked");
    expect(me(&sb, &p1.token, T0 + HOUR), 200, None);

    // Reuse of the old refresh token: TOKEN_REVOKED, newest pair stays valid.
    expect(
        refresh(&sb, &p0.refresh, T0 + HOUR),
        401,
        Some("TOKEN_REVOKED"),
    );
    expect(me(&sb, &p1.token, T0 + HOUR), 200, None);
    let p2 = pair_of(&expect(refresh(&sb, &p1.refresh, T0 + 2 * HOUR), 200, None));
    expect(
        me(&sb, &p1.token, T0 + 2 * HOUR),
        401,
        Some("TOKEN_REVOKED"),
    );
    expect(me(&sb, &p2.token, T0 + 2 * HOUR), 200, None);

    expect(
        refresh(&sb, "msr_unknown", T0),
        401,
        Some("INVALID_CREDENTIALS"),
    );
    expect(
        sb.handle(req("POST", "/auth/refresh", None, Some(json!({}))), T0),
        400,
        Some("VALIDATION_ERROR"),
    );

    let s = sb.stats();
    assert_eq!(s.refresh_calls, 5);
    assert_eq!(s.refresh_reuse_rejections, 1);
    assert_eq!(s.bearer_rejections, 3);
}

#[test]
fn expiry_of_access_and_refresh_tokens() {
    let sb = Sandbox::default();
    let p = login(&sb, "sleeper", T0);
    expect(me(&sb, &p.token, T0 + 4 * HOUR - 1000), 200, None);
    expect(me(&sb, &p.token, T0 + 4 * HOUR), 401, Some("TOKEN_EXPIRED"));

    // A week of hourly-ish refreshes, all on the virtual clock.
    let mut cur = p;
    let mut now = T0;
    for _ in 0..(7 * 24 / 3) {
        now += 3 * HOUR;
        cur = pair_of(&expect(refresh(&sb, &cur.refresh, now), 200, None));
        expect(me(&sb, &cur.token, now), 200, None);
    }
    // Left alone for 30 days: refresh token expired.
    expect(
        refresh(&sb, &cur.refresh, now + 30 * DAY),
        401,
        Some("TOKEN_EXPIRED"),
    );
    expect(refresh(&sb, &cur.refresh, now + 30 * DAY - 1), 200, None);

    // Short lifetimes from config.
    let sb = Sandbox::new(SandboxConfig {
        access_token_lifetime_s: 60,
        refresh_token_lifetime_s: 120,
        seed: 9,
        ..Default::default()
    });
    let p = login(&sb, "short", T0);
    expect(me(&sb, &p.token, T0 + 60_000), 401, Some("TOKEN_EXPIRED"));
    expect(
        refresh(&sb, &p.refresh, T0 + 120_000),
        401,
        Some("TOKEN_EXPIRED"),
    );
}

#[test]
fn bearer_failures_are_invalid_credentials() {
    let sb = Sandbox::default();
    let p = login(&sb, "bearer", T0);
    expect(
        sb.handle(req("GET", "/agents/@me", None, None), T0),
        401,
        Some("INVALID_CREDENTIALS"),
    );
    expect(me(&sb, "garbage", T0), 401, Some("INVALID_CREDENTIALS"));
    expect(me(&sb, "a.b.c", T0), 401, Some("INVALID_CREDENTIALS"));
    // Same token signed by another sandbox's secret.
    let other = Sandbox::new(SandboxConfig {
        jwt_secret: b"another secret".to_vec(),
        ..Default::default()
    });
    let foreign = login(&other, "bearer", T0);
    assert_eq!(foreign.agent_id, p.agent_id, "same seed, same ids");
    expect(
        me(&sb, &foreign.token, T0),
        401,
        Some("INVALID_CREDENTIALS"),
    );
    // Non-Bearer scheme.
    let basic = Request::builder()
        .uri(format!("{API}/agents/@me"))
        .header("authorization", format!("Basic {}", p.token))
        .body(Vec::new())
        .unwrap();
    expect(sb.handle(basic, T0), 401, Some("INVALID_CREDENTIALS"));
    expect(me(&sb, &p.token, T0), 200, None);
}

#[test]
fn admin_hooks() {
    let sb = Sandbox::default();
    let p = login(&sb, "admin_me", T0);
    let q = pair_of(&expect(refresh(&sb, &p.refresh, T0), 200, None));
    assert!(sb.expire_refresh_token(&q.refresh));
    assert!(!sb.expire_refresh_token("msr_nope"));
    expect(refresh(&sb, &q.refresh, T0), 401, Some("TOKEN_EXPIRED"));

    let r = login(&sb, "admin_you", T0);
    assert_eq!(sb.revoke_all_refresh_tokens_of(&r.agent_id), 1);
    expect(me(&sb, &r.token, T0), 401, Some("TOKEN_REVOKED"));
    expect(refresh(&sb, &r.refresh, T0), 401, Some("TOKEN_REVOKED"));

    let s = login(&sb, "admin_jti", T0);
    let jti = jwt_claims(&s.token)["jti"].as_str().unwrap().to_owned();
    sb.revoke_access_token_jti(&jti);
    expect(me(&sb, &s.token, T0), 401, Some("TOKEN_REVOKED"));
}

#[test]
fn seeded_runs_replay_and_rate_limit_is_optional() {
    let a = Sandbox::new(SandboxConfig {
        seed: 5,
        ..Default::default()
    });
    let b = Sandbox::new(SandboxConfig {
        seed: 5,
        ..Default::default()
    });
    let c = Sandbox::new(SandboxConfig {
        seed: 6,
        ..Default::default()
    });
    let ra = register(&a, "same", T0);
    assert_eq!(ra, register(&b, "same", T0));
    assert_ne!(ra, register(&c, "same", T0));

    let limited = Sandbox::new(SandboxConfig {
        register_limit_per_hour: Some(5),
        ..Default::default()
    });
    for i in 0..5 {
        // Failed attempts count too.
        let name = if i == 0 {
            "x".to_owned()
        } else {
            format!("agent_{i}")
        };
        let r = limited.handle(
            req(
                "POST",
                "/agents/register",
                None,
                Some(json!({"username": name, "publicKey": "k"})),
            ),
            T0 + i,
        );
        assert!(r.status().as_u16() == 201 || r.status().as_u16() == 400);
    }
    let r = limited.handle(
        req(
            "POST",
            "/agents/register",
            None,
            Some(json!({"username": "agent_6", "publicKey": "k"})),
        ),
        T0 + 10,
    );
    expect(r, 429, Some("RATE_LIMITED"));
    let r = limited.handle(
        req(
            "POST",
            "/agents/register",
            None,
            Some(json!({"username": "agent_6", "publicKey": "k"})),
        ),
        T0 + HOUR,
    );
    expect(r, 201, None);
}

/// One raw HTTP/1.1 exchange; returns (status, body).
fn http_call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json; charset=utf-8"),
        "{head}"
    );
    let mut body = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

#[test]
fn real_server_over_tcp() {
    let server = serve("127.0.0.1:0", SandboxConfig::default()).unwrap();
    let port = server.port();
    assert_ne!(port, 0);
    let urls = server.base_urls();
    assert_eq!(
        urls.moltchats_api,
        format!("http://127.0.0.1:{port}/moltchats/api/v1")
    );
    assert_eq!(
        urls.moltchats_ws,
        format!("ws://127.0.0.1:{port}/moltchats/ws")
    );
    assert_eq!(
        urls.moltbook_api,
        format!("http://127.0.0.1:{port}/moltbook/api/v1")
    );
    assert_eq!(
        urls.moltspaces_api,
        format!("http://127.0.0.1:{port}/moltspaces/v1")
    );

    let json_ct = [("Content-Type", "application/json")];
    let reg = json!({"username": "OverTcp", "publicKey": key().public_pem}).to_string();
    let (status, b) = http_call(
        port,
        "POST",
        "/moltchats/api/v1/agents/register",
        &json_ct,
        reg.as_bytes(),
    );
    assert_eq!(status, 201);
    let v: Value = serde_json::from_slice(&b).unwrap();
    let agent_id = v["agentId"].as_str().unwrap();
    let challenge = v["challenge"].as_str().unwrap();

    let ver = json!({"agentId": agent_id, "signedChallenge": sign(challenge)}).to_string();
    let (status, b) = http_call(
        port,
        "POST",
        "/moltchats/api/v1/agents/verify",
        &json_ct,
        ver.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&b));
    let token = serde_json::from_slice::<Value>(&b).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let auth = format!("Bearer {token}");
    let (status, b) = http_call(
        port,
        "GET",
        "/moltchats/api/v1/agents/@me",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["username"],
        "overtcp"
    );

    let (status, b) = http_call(port, "GET", "/moltchats/api/v1/agents/@me", &[], b"");
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["code"],
        "INVALID_CREDENTIALS"
    );

    let (status, _) = http_call(port, "GET", "/elsewhere/v1/rooms", &[], b"");
    assert_eq!(status, 404);

    let big = vec![b' '; moltlink_sandbox::MAX_BODY_BYTES + 1];
    let (status, _) = http_call(
        port,
        "POST",
        "/moltchats/api/v1/agents/register",
        &json_ct,
        &big,
    );
    assert_eq!(status, 413);

    assert_eq!(server.sandbox().stats().register_calls, 1);
    assert_eq!(server.sandbox().stats().verify_calls, 1);
    server.shutdown();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener closed after shutdown"
    );
}

/// A kept-alive request is answered with `Connection: close` and the socket then ends: each
/// forwarded connection carries one request, and a client must be told so, or it reuses the
/// socket and races the close (undici failed one request in ten with `UND_ERR_SOCKET`).
#[test]
fn a_forwarded_connection_says_it_closes() {
    let server = serve("127.0.0.1:0", SandboxConfig::default()).unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /moltbook/api/v1/agents/dm/check HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("the sandbox ends the connection after one answer");
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let head = &text[..text.find("\r\n\r\n").expect("a response head")];
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert_eq!(head.matches("connection:").count(), 1, "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
}
