//! OpenClaw: the gateway client after a canned handshake, and the MoltChats ↔ OpenClaw bridge
//! fed from both sides (MoltChats REST answers and socket frames, gateway frames, interleaved).
//! Gateway frames are templated from what the client just sent (request ids, idempotency
//! keys), so fuzzed answers reach the turn logic and not only the parser.

use super::{API, Ctx, Hooks, T0, TakeStr, chats_canned, chats_command, chats_credentials, drive, drive_ctx, ws_frame};
use arbitrary::{Result, Unstructured};
use moltlink::ChatsConfig;
use moltlink::gateway::{Bridge, BridgeConfig, ClientInfo, GatewayClient, GatewayConfig, GatewayTiming};
use moltlink::io::{Output, SansIo, Secret};
use serde_json::{Value, json};

const TOKEN: &str = "gateway-fuzz-token";

fn gateway_config() -> GatewayConfig {
    GatewayConfig {
        url: "ws://127.0.0.1:18789".into(),
        token: Secret::new(TOKEN.into()),
        session_key: "main".into(),
        client: ClientInfo { version: "fuzz".into(), platform: "linux".into(), display_name: None },
        seed: [9; 32],
        timing: GatewayTiming { max_frame_bytes: 4096, ..GatewayTiming::default() },
    }
}

/// The ids (`id`) and idempotency keys the client sent lately, to answer them.
fn sent_ids(ctx: &Ctx) -> (Vec<String>, Vec<String>) {
    let (mut ids, mut keys) = (vec![], vec![]);
    for text in &ctx.sent {
        let Ok(v) = serde_json::from_str::<Value>(text) else { continue };
        if let Some(id) = v["id"].as_str() {
            ids.push(id.to_owned());
        }
        if let Some(key) = v["params"]["idempotencyKey"].as_str() {
            keys.push(key.to_owned());
        }
    }
    (ids, keys)
}

/// One of `known` (what the client sent) or a made-up value.
fn pick(u: &mut Unstructured, known: &[String], made_up: &[&str]) -> Result<String> {
    if !known.is_empty() && u.ratio(3, 4)? {
        return Ok(known[u.choose_index(known.len())?].clone());
    }
    Ok((*u.choose(made_up)?).to_owned())
}

fn text(u: &mut Unstructured) -> Result<Value> {
    Ok(if u.ratio(1, 4)? { Value::from(*u.choose(&["", "NO_REPLY", "ACCEPT", "REJECT please", "hello"])?) } else { Value::from(String::arbitrary_take(u)?) })
}

/// A gateway frame: raw text, or a `res`/`event` shaped like the gateway's with fuzzed fields.
pub fn gateway_frame(u: &mut Unstructured, ctx: &Ctx) -> Result<String> {
    if u.ratio(1, 8)? {
        return String::arbitrary_take(u);
    }
    let (ids, keys) = sent_ids(ctx);
    let frame = match u.int_in_range(0..=6u8)? {
        0 => json!({"type":"event","event":"connect.challenge","payload":{"nonce":"n-1","ts":T0}}),
        1 => {
            // hello-ok, or a refusal of the connect.
            let id = pick(u, &ids, &["ml1", "c1"])?;
            if u.ratio(3, 4)? {
                let protocol = *u.choose(&[4u64, 3, 2, 5, 0])?;
                let mut payload = json!({"type":"hello-ok","protocol":protocol,"server":{"version":"2026.9.6"}});
                if u.arbitrary()? {
                    payload["policy"] = json!({"tickIntervalMs": ms(u, 120_000)?});
                }
                json!({"type":"res","id":id,"ok":true,"payload":payload})
            } else {
                json!({"type":"res","id":id,"ok":false,"error":error(u)?})
            }
        }
        2 => {
            // The answer to chat.send: accepted (started / in_flight / ok) or refused.
            let id = pick(u, &ids, &["ml2", "ml3"])?;
            if u.ratio(3, 4)? {
                let mut payload = json!({"status": *u.choose(&["started", "in_flight", "ok", "queued"])?});
                if u.arbitrary()? {
                    payload["runId"] = pick(u, &keys, &["run-other"])?.into();
                }
                json!({"type":"res","id":id,"ok":true,"payload":payload})
            } else {
                json!({"type":"res","id":id,"ok":false,"error":error(u)?})
            }
        }
        3 | 4 => {
            // A chat event of a run: delta (both forms), final, aborted, error, status.
            let mut payload = json!({"state": *u.choose(&["delta", "final", "aborted", "error", "status", "weird"])?});
            if u.ratio(7, 8)? {
                payload["runId"] = pick(u, &keys, &["run-other"])?.into();
            }
            if u.ratio(3, 4)? {
                payload["sessionKey"] = (*u.choose(&["agent:main:main", "main", "agent:main:other", "agent:x:main"])?).into();
            }
            if u.arbitrary()? {
                payload["deltaText"] = text(u)?;
            }
            match u.int_in_range(0..=3u8)? {
                0 => payload["message"] = json!({"role":"assistant","content":[{"type":"text","text":text(u)?},{"type":"text","text":text(u)?}]}),
                1 => payload["message"] = json!({"role":"assistant","content":text(u)?}),
                2 => payload["message"] = json!({"content": u.arbitrary::<i64>()?}),
                _ => {}
            }
            if u.arbitrary()? {
                payload["errorMessage"] = text(u)?;
            }
            json!({"type":"event","event":"chat","payload":payload,"seq":u.arbitrary::<u32>()?})
        }
        5 => json!({"type":"event","event":"agent","payload":{"runId":pick(u, &keys, &["run-other"])?,"stream":"assistant"}}),
        _ => json!({"type":"event","event": *u.choose(&["tick", "health", "presence", "shutdown"])?,"payload":{"ts":T0}}),
    };
    Ok(frame.to_string())
}

/// A duration from the gateway: usually plausible, sometimes any `u64`.
fn ms(u: &mut Unstructured, plausible: u64) -> Result<u64> {
    if u.ratio(1, 8)? { u.arbitrary() } else { u.int_in_range(0..=plausible) }
}

fn error(u: &mut Unstructured) -> Result<Value> {
    let mut e = json!({"code": *u.choose(&["INVALID_REQUEST", "UNAVAILABLE", "RATE_LIMITED"])?, "message": text(u)?});
    if u.arbitrary()? {
        e["details"] = json!({"code": *u.choose(&["AUTH_TOKEN_MISMATCH", "PROTOCOL_MISMATCH", "BUSY"])?});
    }
    if u.arbitrary()? {
        e["retryable"] = u.arbitrary::<bool>()?.into();
    }
    if u.arbitrary()? {
        e["retryAfterMs"] = ms(u, 600_000)?.into();
    }
    Ok(e)
}

// ---- the gateway client -----------------------------------------------------------------

/// Start, open and complete the handshake with canned frames: the fuzzed frames then meet a
/// ready link (the handshake itself is fuzzed too: `start`/closes/timeouts restart it).
fn ready_gateway() -> (GatewayClient, u64) {
    let mut g = GatewayClient::new(gateway_config()).expect("canned config");
    g.start(T0);
    // The open request, then (after the challenge) the connect request: its id and socket.
    let drain = |g: &mut GatewayClient| {
        let (mut conn, mut id) = (0, String::new());
        loop {
            match g.poll_output() {
                Output::WsOpen { conn: c, .. } => conn = c,
                Output::WsSend { conn: c, text } => (conn, id) = (c, serde_json::from_str::<Value>(&text).unwrap()["id"].as_str().unwrap().to_owned()),
                Output::Wait { .. } => return (conn, id),
                _ => {}
            }
        }
    };
    let (conn, _) = drain(&mut g);
    g.handle_ws_open(conn, T0);
    g.handle_ws_frame(conn, r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n"}}"#, T0);
    let (_, connect_id) = drain(&mut g);
    let hello = json!({"type":"res","id":connect_id,"ok":true,"payload":{"type":"hello-ok","protocol":4,"policy":{"tickIntervalMs":30000}}});
    g.handle_ws_frame(conn, &hello.to_string(), T0);
    assert!(g.is_ready(), "the canned handshake did not complete");
    (g, conn)
}

fn gateway_command(g: &mut GatewayClient, u: &mut Unstructured, ctx: &mut Ctx) -> Result<()> {
    match u.int_in_range(0..=4u8)? {
        0 | 1 => drop(g.send_turn(String::arbitrary_take(u)?, ctx.now)),
        2 => g.start(ctx.now),
        3 => g.stop(),
        _ => {
            // The deadline is never in the past of a timer it just handled.
            let _ = (g.deadline(), g.pending_turns(), g.is_fatal());
        }
    }
    Ok(())
}

fn gateway_frame_hook(_: &GatewayClient, u: &mut Unstructured, ctx: &Ctx) -> Result<(u64, String)> {
    let text = gateway_frame(u, ctx)?;
    Ok((ctx.conn(u)?, text))
}

/// The OpenClaw gateway client: fuzzed frames, closes, timeouts and turns on a ready link.
pub fn gateway_frames(data: &[u8]) {
    let (mut g, conn) = ready_gateway();
    let _ = g.send_turn("first turn".into(), T0);
    let hooks = Hooks { canned: |_, _| None, command: gateway_command, frame: gateway_frame_hook };
    // The canned handshake's socket is the live one.
    let _ = drive_ctx(&mut g, &mut Unstructured::new(data), &hooks, Ctx { now: T0, live: vec![conn], ..Ctx::default() });
}

// ---- the bridge -------------------------------------------------------------------------

fn bridge_command(b: &mut Bridge, u: &mut Unstructured, ctx: &mut Ctx) -> Result<()> {
    match u.int_in_range(0..=3u8)? {
        0 => drop(b.start(ctx.now)),
        1 => b.stop(ctx.now),
        2 => {
            let _ = (b.fatal(), b.gateway().pending_turns());
        }
        // The MoltChats side's own commands (subscribe, send, refresh…) through the bridge.
        _ => chats_command(b.chats(), u, ctx)?,
    }
    Ok(())
}

/// A frame for a live socket: gateway frames to the gateway's, MoltChats frames to the other.
fn bridge_frame(b: &Bridge, u: &mut Unstructured, ctx: &Ctx) -> Result<(u64, String)> {
    let conn = ctx.conn(u)?;
    let text = if b.is_gateway_conn(conn) { gateway_frame(u, ctx)? } else { ws_frame(u)? };
    Ok((conn, text))
}

/// The bridge: logged in to MoltChats, connecting to the gateway; then both sides fuzzed.
pub fn bridge(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut b = Bridge::new(BridgeConfig {
        chats: ChatsConfig { api_base: Some(API.into()), credentials: Some(chats_credentials().to_vec()), seed: [3; 32], refresh: Default::default() },
        ws_base: (flags & 1 == 1).then(|| "ws://127.0.0.1/ws".into()),
        gateway: gateway_config(),
        auto_subscribe_dms: flags & 2 == 2,
        server_ids: if flags & 4 == 4 { vec!["s1".into()] } else { vec![] },
        server_channels: vec!["c1".into()],
        friends_refresh_ms: 60_000,
    })
    .expect("canned bridge config");
    if b.start(T0).is_err() {
        return;
    }
    let hooks = Hooks { canned: chats_canned, command: bridge_command, frame: bridge_frame };
    let _ = drive(&mut b, &mut Unstructured::new(rest), &hooks);
}
