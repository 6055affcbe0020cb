//! `cargo run --release -p moltlink-bench --bin gateway [TURNS]`: the OpenClaw gateway client's
//! throughput on the frames recorded from a real gateway (`src/gateway/fixtures/chat.jsonl`:
//! every frame of one turn, from `started` to `final`, incl. the `agent` stream events it
//! ignores), fed turn after turn through `handle_ws_frame` and drained. Reference in the same
//! run: `serde_json::from_str::<Value>` of the same frames. Not a test: figures vary by machine.

use moltlink::gateway::{ClientInfo, GatewayClient, GatewayConfig, GatewayEvent, GatewayTiming};
use moltlink::io::{Output, Secret};
use moltlink::SansIo;
use std::time::Instant;

const RECORDED: &str = include_str!("../../../../src/gateway/fixtures/chat.jsonl");

/// The same seed gives the same idempotency keys, so frames prepared for one client fit another.
fn client() -> GatewayClient {
    GatewayClient::new(GatewayConfig {
        url: "ws://127.0.0.1:18789".into(),
        token: Secret::new("bench-token".into()),
        session_key: "main".into(),
        client: ClientInfo { version: "bench".into(), platform: "linux".into(), display_name: None },
        seed: [7; 32],
        timing: GatewayTiming::default(),
    })
    .unwrap()
}

fn main() {
    let turns: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(4_000);
    let lines: Vec<&str> = RECORDED.lines().filter(|l| !l.starts_with('#')).collect();
    let (challenge, hello) = (lines[0], lines[1]);
    let mut gw = client();
    let mut now = 1_790_000_000_000u64;
    gw.start(now);
    let mut conn = 0;
    let mut last_send = String::new();
    let mut drain = |gw: &mut GatewayClient, replies: &mut usize| loop {
        match gw.poll_output() {
            Output::WsOpen { conn: c, .. } => conn = c,
            Output::WsSend { text, .. } => last_send = text,
            Output::Event(GatewayEvent::TurnReply { .. }) => *replies += 1,
            Output::Wait { .. } => return (conn, last_send.clone()),
            _ => {}
        }
    };
    let mut replies = 0;
    let (c, _) = drain(&mut gw, &mut replies);
    gw.handle_ws_open(c, now);
    gw.handle_ws_frame(c, challenge, now);
    let (_, connect) = drain(&mut gw, &mut replies);
    let id = serde_json::from_str::<serde_json::Value>(&connect).unwrap()["id"].as_str().unwrap().to_owned();
    gw.handle_ws_frame(c, &hello.replace("\"id\":\"c1\"", &format!("\"id\":\"{id}\"")), now);
    drain(&mut gw, &mut replies);

    // One turn's frames with this turn's request id and idempotency key in place.
    let turn_frames = |req: &str, key: &str| -> Vec<String> {
        lines[2..].iter().map(|f| f.replace("\"id\":\"s1\"", &format!("\"id\":\"{req}\"")).replace("idem-1", key)).collect()
    };
    // Prepare every turn's frames up front so only the client's work is timed.
    let mut batches = Vec::with_capacity(turns);
    for i in 0..turns {
        gw.send_turn(format!("turn {i}"), now);
        let (_, send) = drain(&mut gw, &mut replies);
        let v: serde_json::Value = serde_json::from_str(&send).unwrap();
        let frames = turn_frames(v["id"].as_str().unwrap(), v["params"]["idempotencyKey"].as_str().unwrap());
        batches.push(frames);
        // Finish it untimed so the next send_turn goes out (turns are sequential).
        for f in batches.last().unwrap() {
            gw.handle_ws_frame(c, f, now);
        }
        drain(&mut gw, &mut replies);
    }
    assert_eq!(replies, turns);
    // Timed: a fresh client and the same prepared frames, one turn after another.
    // (The idempotency keys repeat by seed, so the prepared frames match the fresh client's.)
    let mut gw2 = client();
    gw2.start(now);
    let mut replies2 = 0;
    let (c2, _) = drain(&mut gw2, &mut replies2);
    gw2.handle_ws_open(c2, now);
    gw2.handle_ws_frame(c2, challenge, now);
    drain(&mut gw2, &mut replies2);
    gw2.handle_ws_frame(c2, &hello.replace("\"id\":\"c1\"", &format!("\"id\":\"{id}\"")), now);
    drain(&mut gw2, &mut replies2);
    let frames_total: usize = batches.iter().map(Vec::len).sum();
    let bytes_total: usize = batches.iter().flatten().map(String::len).sum();
    let t = Instant::now();
    for (i, batch) in batches.iter().enumerate() {
        gw2.send_turn(format!("turn {i}"), now);
        drain(&mut gw2, &mut replies2);
        for f in batch {
            now += 1;
            gw2.handle_ws_frame(c2, f, now);
        }
        drain(&mut gw2, &mut replies2);
    }
    let client_s = t.elapsed().as_secs_f64();
    assert_eq!(replies2, turns, "every timed turn produced its reply");

    let t = Instant::now();
    let mut sink = 0usize;
    for batch in &batches {
        for f in batch {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            sink += v.as_object().map_or(0, |o| o.len());
        }
    }
    let parse_s = t.elapsed().as_secs_f64();
    std::hint::black_box(sink);

    let client_fps = frames_total as f64 / client_s;
    let parse_fps = frames_total as f64 / parse_s;
    println!("gateway client: {turns} recorded turns, {frames_total} frames, {:.1} MB", bytes_total as f64 / 1e6);
    println!("  client (frame -> parse -> turn state -> events drained): {client_fps:>10.0} frames/s  {:>8.0} turns/s", turns as f64 / client_s);
    println!("  reference serde_json::from_str::<Value> of the same frames: {parse_fps:>10.0} frames/s");
    println!("  client / reference: {:.2}x", client_fps / parse_fps);
}
