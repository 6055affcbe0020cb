//! The fuzz target bodies: one function per kind of outside input. Shared by the libFuzzer
//! binaries (`fuzz_targets/*.rs`, nightly, `run.sh`) and the stable corpus replay
//! (`replay.rs`, an ordinary `cargo test`), so a committed corpus file is a regression test.
//!
//! Clients are driven through the shared `SansIo` trait by [`drive`]: the fuzzer picks which
//! pending request to answer (reordering), with what status/headers/body, when to fail a
//! transport, acknowledge a persist, let time pass, open/feed/close a WebSocket, or issue a
//! command. A new client plugs in with a constructor, a `canned` responder for the requests
//! that must succeed to get deep (auth), a `command` hook, and one line in [`TARGETS`].

use arbitrary::{Result, Unstructured};
use moltlink::io::{Output, SansIo};
use moltlink::{ChatsClient, ChatsConfig, DmClient, DmConfig};
use std::sync::OnceLock;

/// `(name, body)` of every target; `fuzz_targets/<name>.rs` calls the body.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("json_inputs", json_inputs),
    ("credentials", credentials),
    ("chats_session", chats_session),
    ("chats_realtime", chats_realtime),
    ("dm_session", dm_session),
    ("spaces_session", spaces_session),
    ("gateway_frames", gateway_frames),
    ("bridge", bridge),
    ("ffi_chats", ffi_chats),
    ("ffi_dm", ffi_dm),
    ("ffi_audio", ffi_audio),
    ("ffi_spaces", ffi_spaces),
    ("ffi_bridge", ffi_bridge),
    ("opus_packets", opus_packets),
    ("wav", wav),
];

const T0: u64 = 1_790_000_000_000;
const API: &str = "http://127.0.0.1/moltchats/api/v1";
const MOLTBOOK: &str = "http://127.0.0.1:9/api/v1";

// ---- parsers --------------------------------------------------------------------------

/// The JSON texts hosts hand in: chats/DM commands, audio config, credentials.
pub fn json_inputs(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => drop(moltlink::chats::ChatsCommand::from_json(&text).map(|c| c.request())),
        1 => drop(moltlink::DmCommand::from_json(&text)),
        2 => drop(moltlink::audio::AudioConfig::from_json(&text).map(moltlink::audio::AudioPipeline::new)),
        _ => drop(moltlink::auth::Credentials::parse(rest).map(|c| c.to_json())),
    }
}

/// A credentials file as the clients load it (key PEM parsing included).
pub fn credentials(data: &[u8]) {
    let _ = ChatsClient::new(ChatsConfig { api_base: None, credentials: Some(data.to_vec()), seed: [1; 32], refresh: Default::default() })
        .map(|mut c| {
            let _ = c.login(T0);
            while !matches!(c.poll_output(), Output::Wait { .. }) {}
        });
}

/// A WAV file from a host.
pub fn wav(data: &[u8]) {
    let _ = moltlink::audio::wav::decode(data);
}

/// Opus packets into the decoder directly and through the pipeline's jitter buffer.
pub fn opus_packets(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = opus_script(&mut u);
}

fn opus_script(u: &mut Unstructured) -> Result<()> {
    let mut decoder = moltlink::audio::codec::default_decoder().expect("decoder");
    let mut pure = moltlink::audio::PureOpusDecoder::new().expect("pure decoder");
    let mut pipeline = moltlink::audio::AudioPipeline::new(Default::default()).expect("pipeline");
    let mut frame = vec![0f32; moltlink::audio::NET_FRAME];
    let mut out = vec![0i16; pipeline.frame_samples()];
    let mut at = 0u64;
    while !u.is_empty() {
        let len = u.int_in_range(0..=1400usize)?;
        let packet = u.bytes(len.min(u.len()))?;
        let _ = decoder.decode(Some(packet), &mut frame);
        let _ = moltlink::audio::Decoder::decode(&mut pure, Some(packet), &mut frame);
        at += u.int_in_range(0..=60u64)?;
        let _ = pipeline.push_packet(u.int_in_range(0..=2u32)?, u.arbitrary()?, packet, at);
        if u.arbitrary()? {
            let _ = pipeline.process_playback(&mut out);
        }
    }
    Ok(())
}

// ---- clients through SansIo -------------------------------------------------------------

/// What a client needs beyond `SansIo` to be fuzzed by [`drive`].
pub struct Hooks<C> {
    /// A good response for requests that must succeed to get deeper (auth), if any.
    pub canned: fn(&http::Request<Vec<u8>>, u64) -> Option<http::Response<Vec<u8>>>,
    /// Issue one command chosen from `u` (typed, from JSON, or realtime). `ctx` holds what is
    /// outstanding (e.g. a request to stream body chunks into).
    pub command: fn(&mut C, &mut Unstructured, &mut Ctx) -> Result<()>,
    /// A server frame for one of the open sockets: `(conn, text)`. [`chats_frame`] by default.
    pub frame: fn(&C, &mut Unstructured, &Ctx) -> Result<(u64, String)>,
}

/// What [`drive`] knows about the client's outstanding outputs.
#[derive(Default)]
pub struct Ctx {
    pub now: u64,
    pub http: Vec<(u64, http::Request<Vec<u8>>)>,
    pub persists: Vec<u64>,
    /// Sockets asked for and not yet opened by us.
    pub opening: Vec<u64>,
    /// Sockets asked for and not known closed (the newest last).
    pub live: Vec<u64>,
    /// The last texts the client sent on its sockets (to answer by id).
    pub sent: Vec<String>,
}

impl Ctx {
    /// A socket to deliver to: one of the live ones, else any id.
    pub fn conn(&self, u: &mut Unstructured) -> Result<u64> {
        if self.live.is_empty() { u.arbitrary() } else { Ok(self.live[u.choose_index(self.live.len())?]) }
    }
}

/// Drive `client` with fuzzer-chosen inputs until the data runs out. Bounded by the input.
pub fn drive<C: SansIo>(client: &mut C, u: &mut Unstructured, hooks: &Hooks<C>) -> Result<()> {
    drive_ctx(client, u, hooks, Ctx { now: T0, ..Ctx::default() })
}

/// [`drive`] from a known state (e.g. a socket a canned handshake opened).
pub fn drive_ctx<C: SansIo>(client: &mut C, u: &mut Unstructured, hooks: &Hooks<C>, mut ctx: Ctx) -> Result<()> {
    loop {
        // Drain: a bounded number of outputs per step (a livelock is a finding too).
        for i in 0.. {
            assert!(i < 10_000, "no Wait after 10 000 outputs: livelock");
            match client.poll_output() {
                Output::Http { id, request, .. } => ctx.http.push((id, *request)),
                Output::Persist { ticket, .. } => ctx.persists.push(ticket),
                Output::WsOpen { conn, .. } => {
                    ctx.opening.push(conn);
                    ctx.live.push(conn);
                }
                Output::Wait { .. } => break,
                Output::Event(e) => drop(serde_json::to_string(&e).expect("events serialise")),
                Output::WsSend { text, .. } => {
                    if ctx.sent.len() == 8 {
                        ctx.sent.remove(0);
                    }
                    ctx.sent.push(text);
                }
                Output::WsClose { conn, .. } => ctx.live.retain(|c| *c != conn),
            }
        }
        if u.is_empty() {
            return Ok(());
        }
        let now = ctx.now;
        match u.int_in_range(0..=9u8)? {
            0 | 1 if !ctx.http.is_empty() => {
                // Answer one pending request (any of them: reordering), canned if possible.
                let (id, request) = ctx.http.remove(u.choose_index(ctx.http.len())?);
                let response = match (hooks.canned)(&request, now) {
                    Some(r) if u.arbitrary()? => r,
                    _ => response(u)?,
                };
                let _ = client.handle_response(id, response, now);
            }
            2 if !ctx.http.is_empty() => {
                let (id, _) = ctx.http.remove(u.choose_index(ctx.http.len())?);
                let _ = client.handle_transport_error(id, "fuzz: connection reset", now);
            }
            3 if !ctx.persists.is_empty() => {
                let ticket = ctx.persists.remove(u.choose_index(ctx.persists.len())?);
                let _ = client.handle_persisted(ticket, now);
            }
            4 => {
                ctx.now += u.int_in_range(0..=4 * 3_600_000u64)?;
                client.handle_timeout(ctx.now);
            }
            5 => {
                let conn = if ctx.opening.is_empty() { ctx.conn(u)? } else { ctx.opening.remove(u.choose_index(ctx.opening.len())?) };
                client.handle_ws_open(conn, now);
            }
            6 | 7 => {
                let (conn, text) = (hooks.frame)(client, u, &ctx)?;
                client.handle_ws_frame(conn, &text, now);
            }
            8 => {
                let conn = ctx.conn(u)?;
                ctx.live.retain(|c| *c != conn);
                client.handle_ws_closed(conn, u.arbitrary()?, &String::arbitrary_take(u)?, now);
            }
            _ => (hooks.command)(client, u, &mut ctx)?,
        }
    }
}

/// A MoltChats frame on one of the open sockets (the default [`Hooks::frame`]).
pub fn chats_frame<C>(_: &C, u: &mut Unstructured, ctx: &Ctx) -> Result<(u64, String)> {
    let text = ws_frame(u)?;
    Ok((ctx.conn(u)?, text))
}

trait TakeStr {
    fn arbitrary_take(u: &mut Unstructured) -> Result<String>;
}
impl TakeStr for String {
    fn arbitrary_take(u: &mut Unstructured) -> Result<String> {
        let len = u.int_in_range(0..=64usize)?;
        Ok(String::from_utf8_lossy(u.bytes(len.min(u.len()))?).into_owned())
    }
}

/// A response with a fuzzed status, headers (incl. rate-limit ones) and body: either raw
/// bytes or a JSON template with fuzzed values.
fn response(u: &mut Unstructured) -> Result<http::Response<Vec<u8>>> {
    let status = *u.choose(&[200u16, 201, 204, 400, 401, 403, 404, 409, 429, 500, 502, 503])?;
    let status = if u.ratio(1, 8)? { u.int_in_range(100..=999)? } else { status };
    let mut headers = vec![];
    for _ in 0..u.int_in_range(0..=3u8)? {
        let name = *u.choose(&["retry-after", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-limit", "content-type"])?;
        headers.push((name.to_owned(), String::arbitrary_take(u)?));
    }
    let body = match u.int_in_range(0..=2u8)? {
        0 => {
            let len = u.int_in_range(0..=4096usize)?;
            u.bytes(len.min(u.len()))?.to_vec()
        }
        _ => json_value(u, 0)?.to_string().into_bytes(),
    };
    Ok(moltlink::io::response_from_parts(status, &headers, body).unwrap_or_else(|_| http::Response::new(Vec::new())))
}

/// A JSON value biased to the field names the platforms use, so parsers get past `from_str`.
fn json_value(u: &mut Unstructured, depth: u32) -> Result<serde_json::Value> {
    use serde_json::Value;
    const KEYS: &[&str] = &[
        "type", "op", "channel", "channelId", "id", "content", "timestamp", "createdAt", "token", "refreshToken",
        "challenge", "agentId", "username", "messages", "error", "code", "message", "hint", "retryAfter",
        "conversation_id", "conversations", "requests", "success", "has_activity", "items", "online", "agent",
        "servers", "channels", "data", "count", "hasMore", "nextCursor", "status", "limit",
    ];
    const WORDS: &[&str] = &[
        "message", "message_ack", "subscribed", "unsubscribed", "error", "context", "presence", "typing",
        "c1", "c2", "HANDLER_ERROR", "READ_ONLY", "rate limit exceeded", "2026-11-24T05:00:00.000Z", "approved", "pending",
    ];
    Ok(match u.int_in_range(0..=if depth > 3 { 4u8 } else { 6 })? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(*u.choose(WORDS)?),
        4 => Value::from(String::arbitrary_take(u)?),
        5 => Value::Array((0..u.int_in_range(0..=4u8)?).map(|_| json_value(u, depth + 1)).collect::<Result<_>>()?),
        _ => {
            let mut map = serde_json::Map::new();
            for _ in 0..u.int_in_range(0..=6u8)? {
                map.insert((*u.choose(KEYS)?).to_owned(), json_value(u, depth + 1)?);
            }
            Value::Object(map)
        }
    })
}

/// A WebSocket text frame: raw text, or a templated server frame with fuzzed fields.
fn ws_frame(u: &mut Unstructured) -> Result<String> {
    if u.ratio(1, 4)? {
        return String::arbitrary_take(u);
    }
    let mut frame = match json_value(u, 2)? {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let kind = *u.choose(&["message", "message_ack", "subscribed", "unsubscribed", "error", "context", "presence", "typing"])?;
    frame.insert("type".into(), kind.into());
    frame.insert("channel".into(), (*u.choose(&["c1", "c2", "c3"])?).into());
    if u.arbitrary()? {
        frame.insert("id".into(), format!("m{}", u.int_in_range(0..=20u8)?).into());
        frame.insert("createdAt".into(), format!("2026-11-24T05:00:{:02}.000Z", u.int_in_range(0..=59u8)?).into());
    }
    Ok(serde_json::Value::Object(frame).to_string())
}

/// A JWT the client can schedule from (unverified: `exp`/`iat` only).
pub fn fake_jwt(now_ms: u64) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = serde_json::json!({ "sub": "agent-fuzz", "iat": now_ms / 1000, "exp": now_ms / 1000 + 4 * 3600 });
    format!("{}.{}.sig", b64.encode(br#"{"alg":"RS256"}"#), b64.encode(payload.to_string()))
}

fn json_ok(body: serde_json::Value) -> Option<http::Response<Vec<u8>>> {
    http::Response::builder().status(200).header("content-type", "application/json").body(body.to_string().into_bytes()).ok()
}

/// MoltChats auth answers, so fuzzed calls and frames reach an authenticated client.
fn chats_canned(request: &http::Request<Vec<u8>>, now: u64) -> Option<http::Response<Vec<u8>>> {
    let path = request.uri().path();
    if path.ends_with("/auth/refresh") || path.ends_with("/agents/verify") {
        json_ok(serde_json::json!({ "token": fake_jwt(now), "refreshToken": format!("rt-{now}"), "agentId": "agent-fuzz", "username": "fuzzer" }))
    } else if path.ends_with("/auth/challenge") {
        json_ok(serde_json::json!({ "challenge": "fuzz-challenge" }))
    } else {
        None
    }
}

/// Credentials of a real identity (generated once per process: key generation is slow). The
/// key is RSA-1024, the smallest the rsa crate accepts: parsing and signing it run the same
/// code as the 2048-bit keys agents use, several times faster, so the session targets spend
/// their time in the response handling they exist for (`credentials` fuzzes the parsing).
pub fn chats_credentials() -> &'static [u8] {
    static CREDS: OnceLock<Vec<u8>> = OnceLock::new();
    CREDS.get_or_init(|| {
        use rand_chacha::rand_core::SeedableRng;
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key = rsa::PrivateKey::new(&mut rand_chacha::ChaCha20Rng::from_seed([7; 32]), 1024).expect("key generation");
        let pem = key.to_pkcs8_pem(LineEnding::LF).expect("PEM encoding");
        let creds = serde_json::json!({
            "agentId": "agent-fuzz", "username": "fuzzer", "privateKey": pem.as_str(), "refreshToken": "rt-initial", "apiBase": API,
        });
        serde_json::to_vec(&creds).expect("JSON")
    })
}

/// A client logged in with the canned answers (the refresh token rotated, the new one
/// persisted), so every input starts where a long-running host is: authenticated, with no
/// signature to compute unless the input makes the client re-authenticate.
fn chats_client() -> ChatsClient {
    let mut client = ChatsClient::new(ChatsConfig {
        api_base: Some(API.into()),
        credentials: Some(chats_credentials().to_vec()),
        seed: [3; 32],
        refresh: Default::default(),
    })
    .unwrap();
    client.login(T0).unwrap();
    loop {
        match client.poll_output() {
            Output::Http { id, request, .. } => {
                let response = chats_canned(&request, T0).expect("login only asks for auth");
                client.handle_response(id, response, T0).unwrap();
            }
            Output::Persist { ticket, .. } => client.handle_persisted(ticket, T0).unwrap(),
            Output::Wait { .. } => break,
            _ => {}
        }
    }
    assert!(client.is_authenticated(T0), "the canned login did not authenticate");
    client
}

const CHATS_COMMANDS: &[&str] = &[
    r#"{"op":"profile_get"}"#,
    r#"{"op":"history","channel_id":"c1","limit":5}"#,
    r#"{"op":"my_servers"}"#,
    r#"{"op":"servers_browse","sort":"popular","limit":3}"#,
    r#"{"op":"friends_list"}"#,
    r#"{"op":"agent_get","username":"someone"}"#,
];

fn chats_command(c: &mut ChatsClient, u: &mut Unstructured, ctx: &mut Ctx) -> Result<()> {
    let now = ctx.now;
    let channels = ["c1".to_owned(), "c2".to_owned()];
    match u.int_in_range(0..=7u8)? {
        0 => drop(c.command_json(u.choose(CHATS_COMMANDS)?, now)),
        1 => drop(c.command_json(&String::arbitrary_take(u)?, now)),
        2 => drop(c.whoami(now)),
        3 => drop(c.connect(now)),
        4 => drop(c.subscribe(&channels[..u.int_in_range(1..=2usize)?], now)),
        5 => drop(c.send_message(u.choose(&channels)?, &String::arbitrary_take(u)?, None, now)),
        6 => c.unsubscribe(&channels[..1], now),
        _ => drop(c.refresh(now)),
    }
    Ok(())
}

const CHATS_HOOKS: Hooks<ChatsClient> = Hooks { canned: chats_canned, command: chats_command, frame: chats_frame };

/// MoltChats REST: auth responses and every command's response handling.
pub fn chats_session(data: &[u8]) {
    let mut client = chats_client();
    let _ = client.whoami(T0);
    let _ = drive(&mut client, &mut Unstructured::new(data), &CHATS_HOOKS);
}

/// MoltChats realtime: connected and subscribed first, then fuzzed frames/closes/sends.
pub fn chats_realtime(data: &[u8]) {
    let mut client = chats_client();
    let _ = client.connect(T0);
    let _ = client.subscribe(&["c1".to_owned(), "c2".to_owned()], T0);
    let _ = drive(&mut client, &mut Unstructured::new(data), &CHATS_HOOKS);
}

const DM_COMMANDS: &[&str] = &[
    r#"{"command":"check"}"#,
    r#"{"command":"requests"}"#,
    r#"{"command":"conversations"}"#,
    r#"{"command":"read","conversation_id":"conv-1"}"#,
    r#"{"command":"approve","conversation_id":"conv-1"}"#,
    r#"{"command":"reject","conversation_id":"conv-2","block":true}"#,
    r#"{"command":"send","conversation_id":"conv-1","message":"hi"}"#,
    r#"{"command":"request","to":"bot","message":"hello"}"#,
];

fn dm_command(c: &mut DmClient, u: &mut Unstructured, ctx: &mut Ctx) -> Result<()> {
    let now = ctx.now;
    match u.int_in_range(0..=3u8)? {
        0 | 1 => drop(c.command_json(u.choose(DM_COMMANDS)?, now)),
        2 => drop(c.command_json(&String::arbitrary_take(u)?, now)),
        _ => c.start_heartbeat(now),
    }
    Ok(())
}

/// Moltbook DMs: every response shape of every command and the heartbeat.
pub fn dm_session(data: &[u8]) {
    let mut client = DmClient::new(DmConfig {
        api_base: Some(MOLTBOOK.into()),
        api_key: moltlink::io::Secret::new("moltbook_fuzz_key".to_owned()),
        seed: [5; 32],
        heartbeat: Default::default(),
        agent_name: None,
    })
    .unwrap();
    let hooks = Hooks { canned: |_, _| None, command: dm_command, frame: chats_frame };
    let _ = drive(&mut client, &mut Unstructured::new(data), &hooks);
}

// ---- the C ABI with random arguments on valid handles ------------------------------------

#[path = "ffi_targets.rs"]
mod ffi;
pub use ffi::{ffi_audio, ffi_bridge, ffi_chats, ffi_dm, ffi_spaces};

#[path = "spaces_targets.rs"]
mod spaces;
pub use spaces::spaces_session;

#[path = "gateway_targets.rs"]
mod gateway;
pub use gateway::{bridge, gateway_frames};
