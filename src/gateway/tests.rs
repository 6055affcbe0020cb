//! The gateway client against frames recorded from a real `openclaw gateway run` (2026.9.6, see
//! `fixtures/`; tokens replaced), with a virtual clock.

use super::*;
use crate::io::{SansIo, Secret};
use crate::testkit::{Driver, Peer};

const TOKEN: &str = "fixture-token";

fn fixture(name: &str) -> Vec<String> {
    let text = match name {
        "chat" => include_str!("fixtures/chat.jsonl"),
        "chat_resend_same_key" => include_str!("fixtures/chat_resend_same_key.jsonl"),
        "bad_token" => include_str!("fixtures/bad_token.jsonl"),
        "protocol_mismatch" => include_str!("fixtures/protocol_mismatch.jsonl"),
        "extra_field" => include_str!("fixtures/extra_field.jsonl"),
        "resend_after_drop" => include_str!("fixtures/resend_after_drop.jsonl"),
        _ => unreachable!(),
    };
    text.lines().map(str::to_owned).collect()
}

pub(crate) fn config() -> GatewayConfig {
    GatewayConfig {
        url: "ws://127.0.0.1:18789".into(),
        token: Secret::new(TOKEN.into()),
        session_key: "main".into(),
        client: ClientInfo { version: "test".into(), platform: "linux".into(), display_name: None },
        seed: [9; 32],
        timing: GatewayTiming::default(),
    }
}

/// The gateway's side, recorded: the test plays the server's frames itself.
#[derive(Default)]
struct Recorder {
    conn: u64,
    sent: Vec<serde_json::Value>,
    closes: Vec<(u64, u16)>,
    opens: usize,
}

impl Peer for Recorder {
    fn http(&mut self, request: http::Request<Vec<u8>>, _: u64) -> Result<http::Response<Vec<u8>>, String> {
        panic!("unexpected HTTP {}", request.uri())
    }
    /// Opened later, when the test says so (`Harness::open`).
    fn ws_open(&mut self, conn: u64, url: &str, _: u64) -> Result<bool, (u16, String)> {
        assert_eq!(url, "ws://127.0.0.1:18789");
        self.conn = conn;
        self.opens += 1;
        Ok(false)
    }
    fn ws_send(&mut self, _: u64, text: &str, _: u64) {
        self.sent.push(serde_json::from_str(text).unwrap());
    }
    fn ws_close(&mut self, conn: u64, code: u16, _: &str, _: u64) {
        self.closes.push((conn, code));
    }
}

type Harness = Driver<GatewayClient, Recorder>;

fn harness() -> Harness {
    let mut h = Driver::new(GatewayClient::new(config()).unwrap(), Recorder::default(), 1_000_000);
    h.client.start(h.now_ms);
    h.drain();
    h
}

/// What the gateway tests add to the driver: the server's side played from the fixtures.
trait Session {
    fn drain(&mut self) -> Option<u64>;
    fn frame(&mut self, text: &str);
    fn open(&mut self);
    /// Open, answer the challenge and the hello with the recorded frames.
    fn handshake(&mut self);
    /// Jump the clock to `t` and fire one timeout.
    fn jump_to(&mut self, t: u64);
    fn last_send_key(&self) -> (String, String);
}

impl Session for Harness {
    fn drain(&mut self) -> Option<u64> {
        let seen = self.events.len();
        let next = self.drive();
        for e in &self.events[seen..] {
            assert!(!format!("{e:?}").contains(TOKEN), "an event leaks the token: {e:?}");
        }
        next
    }
    fn frame(&mut self, text: &str) {
        self.now_ms += 5;
        if let Some(close) = text.strip_prefix("#close ") {
            let v: serde_json::Value = serde_json::from_str(close).unwrap();
            self.client.handle_ws_closed(self.peer.conn, v["code"].as_u64().unwrap() as u16, v["reason"].as_str().unwrap(), self.now_ms);
        } else {
            self.client.handle_ws_frame(self.peer.conn, text, self.now_ms);
        }
        self.drain();
    }
    fn open(&mut self) {
        self.now_ms += 5;
        self.client.handle_ws_open(self.peer.conn, self.now_ms);
        self.drain();
    }
    /// Open, answer the challenge and the hello with the recorded frames.
    fn handshake(&mut self) {
        self.open();
        let chat = fixture("chat");
        self.frame(&chat[0]);
        let connect = self.peer.sent.last().unwrap().clone();
        assert_eq!(connect["method"], "connect");
        let hello = chat[1].replace("\"id\":\"c1\"", &format!("\"id\":{}", connect["id"]));
        self.frame(&hello);
    }
    fn jump_to(&mut self, t: u64) {
        self.now_ms = t;
        self.client.handle_timeout(t);
        self.drain();
    }
    fn last_send_key(&self) -> (String, String) {
        let s = self.peer.sent.iter().rev().find(|f| f["method"] == "chat.send").expect("a chat.send");
        (s["id"].as_str().unwrap().to_owned(), s["params"]["idempotencyKey"].as_str().unwrap().to_owned())
    }
}

/// The recorded turn frames (after hello-ok) with our request id and key in place of the recording's.
fn turn_frames(name: &str, skip: usize, req: &str, key: &str) -> Vec<String> {
    fixture(name)[skip..].iter().filter(|f| !f.starts_with('#')).map(|f| f.replace("\"id\":\"s1\"", &format!("\"id\":\"{req}\"")).replace("idem-1", key).replace("idem-3", key)).collect()
}

fn final_text() -> String {
    let chat = fixture("chat");
    let last = chat.iter().rev().find(|f| f.contains("\"state\":\"final\"")).unwrap();
    let last: serde_json::Value = serde_json::from_str(last).unwrap();
    wire::message_text(&last["payload"]["message"]).unwrap()
}

#[test]
fn recorded_handshake_and_turn() {
    let mut h = harness();
    assert_eq!(h.peer.opens, 1);
    h.handshake();
    let connect = &h.peer.sent[0];
    assert_eq!(connect["params"]["minProtocol"], 3);
    assert_eq!(connect["params"]["maxProtocol"], 4);
    assert_eq!(connect["params"]["client"]["id"], "gateway-client");
    assert_eq!(connect["params"]["auth"]["token"], TOKEN);
    assert!(matches!(h.take_events()[..], [GatewayEvent::GatewayConnected { protocol: 4, tick_interval_ms: 30_000, .. }]));
    let turn = h.client.send_turn("hi there".into(), h.now_ms);
    h.drain();
    let (req, key) = h.last_send_key();
    assert_eq!(h.peer.sent.last().unwrap()["params"]["sessionKey"], "main");
    for f in turn_frames("chat", 2, &req, &key) {
        h.frame(&f);
    }
    let events = h.take_events();
    assert!(matches!(&events[0], GatewayEvent::TurnStarted { turn: t, status, .. } if *t == turn && status == "started"));
    assert_eq!(events[1], GatewayEvent::TurnReply { turn, run_id: key, text: final_text() });
    assert_eq!(events.len(), 2);
    assert_eq!(h.client.pending_turns(), 0);
}

/// Strip one delta form from the recorded frames (and the final's message): the text must
/// still be the agent's whole reply.
#[test]
fn both_delta_forms_accumulate() {
    for keep in ["deltaText", "message"] {
        let mut h = harness();
        h.handshake();
        let turn = h.client.send_turn("hi".into(), h.now_ms);
        h.drain();
        let (req, key) = h.last_send_key();
        for f in turn_frames("chat", 2, &req, &key) {
            let mut v: serde_json::Value = serde_json::from_str(&f).unwrap();
            if v["event"] == "chat" {
                let p = v["payload"].as_object_mut().unwrap();
                if p["state"] == "final" {
                    p.remove("message");
                } else if p["state"] == "delta" {
                    p.remove(if keep == "deltaText" { "message" } else { "deltaText" });
                }
            }
            h.frame(&v.to_string());
        }
        let reply = h.take_events().into_iter().find(|e| matches!(e, GatewayEvent::TurnReply { .. }));
        assert_eq!(reply, Some(GatewayEvent::TurnReply { turn, run_id: key, text: final_text() }), "form {keep}");
    }
}

#[test]
fn protocol_mismatch_is_fatal() {
    let mut h = harness();
    h.open();
    let rec = fixture("protocol_mismatch");
    h.frame(&rec[0]);
    let turn = h.client.send_turn("queued before the refusal".into(), h.now_ms);
    let id = h.peer.sent[0]["id"].as_str().unwrap().to_owned();
    h.frame(&rec[1].replace("\"id\":\"c1\"", &format!("\"id\":\"{id}\"")));
    h.frame(&rec[2]);
    let events = h.take_events();
    assert!(matches!(&events[0], GatewayEvent::GatewayFatal { code, message } if code == "PROTOCOL_MISMATCH" && message == "protocol mismatch"));
    assert!(matches!(&events[1], GatewayEvent::TurnFailed { turn: t, .. } if *t == turn));
    assert!(h.client.is_fatal());
    assert_eq!(h.drain(), None, "no reconnect after a fatal refusal");
    // A hello-ok with a protocol outside 3-4 is refused by us.
    let mut h = harness();
    h.open();
    h.frame(&fixture("chat")[0]);
    let id = h.peer.sent[0]["id"].as_str().unwrap().to_owned();
    h.frame(&fixture("chat")[1].replace("\"id\":\"c1\"", &format!("\"id\":\"{id}\"")).replace("\"protocol\":4", "\"protocol\":7"));
    assert!(matches!(&h.take_events()[..], [GatewayEvent::GatewayFatal { code, .. }] if code == "PROTOCOL_MISMATCH"));
    assert_eq!(h.peer.closes.last().unwrap().1, 1002);
}

#[test]
fn rejected_connect_fatal_or_retryable() {
    for name in ["bad_token", "extra_field"] {
        let mut h = harness();
        h.open();
        let rec = fixture(name);
        h.frame(&rec[0]);
        let id = h.peer.sent[0]["id"].as_str().unwrap().to_owned();
        h.frame(&rec[1].replace("\"id\":\"c1\"", &format!("\"id\":\"{id}\"")));
        h.frame(&rec[2]);
        let expected = if name == "bad_token" { "AUTH_TOKEN_MISMATCH" } else { "INVALID_REQUEST" };
        assert!(matches!(&h.take_events()[..], [GatewayEvent::GatewayFatal { code, .. }] if code == expected), "{name}");
        assert_eq!(h.drain(), None);
    }
    // The same refusal marked retryable: back off at least retryAfterMs, then reconnect.
    let mut h = harness();
    h.open();
    h.frame(&fixture("bad_token")[0]);
    let id = h.peer.sent[0]["id"].as_str().unwrap().to_owned();
    let retryable = format!(r#"{{"type":"res","id":"{id}","ok":false,"error":{{"code":"UNAVAILABLE","message":"starting","retryable":true,"retryAfterMs":9000}}}}"#);
    h.frame(&retryable);
    let at = match &h.take_events()[..] {
        [GatewayEvent::GatewayDisconnected { retry_at_ms, .. }] => *retry_at_ms,
        other => panic!("{other:?}"),
    };
    assert!(at >= h.now_ms + 9000);
    assert_eq!(h.drain(), Some(at));
    h.jump_to(at);
    assert_eq!(h.peer.opens, 2);
}

#[test]
fn lost_final_fails_the_turn_with_its_partial_text() {
    let mut h = harness();
    h.handshake();
    let turn = h.client.send_turn("hi".into(), h.now_ms);
    h.drain();
    let (req, key) = h.last_send_key();
    let frames = turn_frames("chat", 2, &req, &key);
    for f in &frames[..frames.len() - 1] {
        h.frame(f);
    }
    h.take_events();
    // Ticks keep the link alive, but the turn itself hears nothing more.
    let idle = GatewayTiming::default().turn_idle_ms;
    let end = h.now_ms + idle;
    while h.now_ms + 25_000 < end {
        let t = h.now_ms + 25_000;
        h.now_ms = t;
        h.frame(&format!(r#"{{"type":"event","event":"tick","payload":{{"ts":{t}}}}}"#));
    }
    let deadline = h.drain().unwrap();
    assert!(deadline <= end);
    h.jump_to(end);
    let events = h.take_events();
    assert!(
        matches!(&events[..], [GatewayEvent::TurnFailed { turn: t, reason, partial: Some(p) }] if *t == turn && reason.contains("lost final") && *p == final_text()),
        "{events:?}"
    );
    assert!(h.client.is_ready(), "the connection itself is fine");

    // `agent` stream events of our run (tool calls, thinking) keep a long turn alive.
    let turn = h.client.send_turn("a long one".into(), h.now_ms);
    h.drain();
    let (_, key) = h.last_send_key();
    let agent = fixture("chat").into_iter().find(|f| f.contains("\"event\":\"agent\"")).unwrap().replace("idem-1", &key);
    let start = h.now_ms;
    while h.now_ms < start + 2 * idle {
        h.now_ms += 20_000;
        h.frame(&agent);
        h.jump_to(h.now_ms);
    }
    assert!(!h.take_events().iter().any(|e| matches!(e, GatewayEvent::TurnFailed { turn: t, .. } if *t == turn)));
}

#[test]
fn gateway_restart_mid_turn_resends_with_the_same_key() {
    let mut h = harness();
    h.handshake();
    h.take_events();
    let turn = h.client.send_turn("second message".into(), h.now_ms);
    h.drain();
    let (req, key) = h.last_send_key();
    h.frame(&format!(r#"{{"type":"res","id":"{req}","ok":true,"payload":{{"runId":"{key}","status":"started"}}}}"#));
    h.frame("#close {\"code\":1012,\"reason\":\"service restart\"}");
    let events = h.take_events();
    assert!(matches!(events[1], GatewayEvent::TurnRetrying { turn: t, attempt: 2 } if t == turn), "{events:?}");
    let retry_at = match events[2] {
        GatewayEvent::GatewayDisconnected { code: 1012, retry_at_ms, .. } => retry_at_ms,
        ref other => panic!("{other:?}"),
    };
    h.jump_to(retry_at);
    assert_eq!(h.peer.opens, 2);
    h.handshake();
    let (req2, key2) = h.last_send_key();
    assert_ne!(req, req2);
    assert_eq!(key, key2, "the resend reuses the idempotency key");
    // The recorded answer to that resend: `in_flight`, then the run's events on the new socket.
    for f in turn_frames("resend_after_drop", 1, &req2, &key) {
        h.frame(&f);
    }
    for f in turn_frames("chat", 2, "unused", &key).iter().filter(|f| f.contains("\"event\":\"chat\"")) {
        h.frame(f);
    }
    let events = h.take_events();
    assert!(matches!(&events[1], GatewayEvent::TurnStarted { status, .. } if status == "in_flight"), "{events:?}");
    let replies: Vec<_> = events.iter().filter(|e| matches!(e, GatewayEvent::TurnReply { .. })).collect();
    assert_eq!(replies, [&GatewayEvent::TurnReply { turn, run_id: key, text: final_text() }]);
}

#[test]
fn a_turn_finished_while_away_fails_clearly_and_restarts_are_capped() {
    let mut h = harness();
    h.handshake();
    let turn = h.client.send_turn("hi".into(), h.now_ms);
    h.drain();
    h.frame("#close {\"code\":1006,\"reason\":\"\"}");
    let at = h.client.deadline().unwrap();
    h.jump_to(at);
    h.handshake();
    let (req, _) = h.last_send_key();
    // Recorded: a resend of a finished run answers `ok` and streams nothing.
    let ok = &fixture("chat_resend_same_key")[2];
    h.frame(&ok.replace("\"id\":\"s1\"", &format!("\"id\":\"{req}\"")));
    assert!(matches!(h.take_events().last(), Some(GatewayEvent::TurnFailed { turn: t, reason, .. }) if *t == turn && reason.contains("while the connection was down")));

    let turn = h.client.send_turn("again".into(), h.now_ms);
    h.drain();
    for _ in 0..3 {
        h.frame("#close {\"code\":1006,\"reason\":\"\"}");
        let at = h.client.deadline().unwrap();
        h.jump_to(at);
        h.handshake();
    }
    let failed: Vec<_> = h.take_events().into_iter().filter(|e| matches!(e, GatewayEvent::TurnFailed { .. })).collect();
    assert!(matches!(&failed[..], [GatewayEvent::TurnFailed { turn: t, reason, .. }] if *t == turn && reason.contains("lost 3 times")));
}

#[test]
fn tick_silence_reconnects() {
    let mut h = harness();
    h.handshake();
    h.take_events();
    let deadline = h.drain().unwrap();
    assert_eq!(deadline, h.now_ms + 60_000);
    h.jump_to(deadline);
    assert_eq!(h.peer.closes.last().map(|c| c.1), Some(4000));
    let events = h.take_events();
    assert!(matches!(&events[..], [GatewayEvent::GatewayDisconnected { code: 4000, .. }]));
    let at = h.client.deadline().unwrap();
    h.jump_to(at);
    assert_eq!(h.peer.opens, 2);
    // Handshake timeout: the new socket never gets a challenge.
    h.open();
    let at = h.client.deadline().unwrap();
    h.jump_to(at);
    assert!(matches!(h.take_events()[..], [GatewayEvent::GatewayDisconnected { code: 4000, .. }]));
}

#[test]
fn bad_frames_are_reported_not_fatal() {
    let mut h = harness();
    h.handshake();
    h.take_events();
    let big = format!("{{\"type\":\"event\",\"event\":\"x\",\"payload\":\"{}\"}}", "a".repeat(GatewayTiming::default().max_frame_bytes));
    for bad in ["", "nope", "{", "[]", "{\"type\":5}", "null", "{\"type\":\"res\",\"id\":[1]}", big.as_str()] {
        h.frame(bad);
    }
    let events = h.take_events();
    assert_eq!(events.len(), 8);
    assert!(events.iter().all(|e| matches!(e, GatewayEvent::GatewayProtocolError { .. })));
    assert!(matches!(&events[7], GatewayEvent::GatewayProtocolError { message } if message.contains("byte limit")));
    // Well-formed but odd frames are ignored; the link stays up.
    for odd in [r#"{"type":"event","event":"chat","payload":{"state":"final"}}"#, r#"{"type":"res","id":"zz","ok":true}"#, r#"{"type":"weird"}"#] {
        h.frame(odd);
    }
    assert!(h.take_events().is_empty());
    assert!(h.client.is_ready());
}

#[test]
fn config_is_checked() {
    let mut c = config();
    c.url = "http://x".into();
    assert!(GatewayClient::new(c).is_err());
    let mut c = config();
    c.token = Secret::new(String::new());
    assert!(GatewayClient::new(c).is_err());
    assert!(!format!("{:?}", config()).contains(TOKEN));
}

proptest::proptest! {
    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(".{0,200}", 1..20)) {
        let mut h = harness();
        h.handshake();
        h.client.send_turn("x".into(), h.now_ms);
        for f in frames {
            h.frame(&f);
        }
    }
}
