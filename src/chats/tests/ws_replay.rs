//! The recorded WebSocket traffic (`host-tests/wire/moltchats/ws`, the recorded corpus)
//! replayed into a realtime session: each capture's outgoing frames are produced through the
//! public API where the session would send them and compared with the recording, its incoming
//! frames and close are fed in order, and every resulting event is checked: no frame without
//! an event, every leaf value of every frame present in its events, answers matched to the
//! request that asked, context attributed to its channel, close codes acted on.

use super::{T0, open};
use crate::chats::{ChatsEvent, RealtimeConfig, RealtimeEvent};
use crate::io::{ConnId, SansIo};
use crate::testkit::{Driver, Peer};
use crate::{CallId, ChatsClient};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::rc::Rc;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/host-tests/wire/moltchats/ws");

/// REST (login, refresh) from the sandbox; the socket is the recording.
struct ReplayPeer {
    sandbox: Rc<Sandbox>,
    paths: Vec<String>,
    /// Every socket the client opened: (conn, token).
    opens: Vec<(ConnId, String)>,
    /// Every frame the client sent.
    sent: Vec<String>,
}

impl Peer for ReplayPeer {
    fn http(&mut self, request: http::Request<Vec<u8>>, now_ms: u64) -> Result<http::Response<Vec<u8>>, String> {
        self.paths.push(request.uri().path().to_owned());
        Ok(self.sandbox.handle(request, now_ms))
    }
    fn ws_open(&mut self, conn: ConnId, url: &str, _now_ms: u64) -> Result<bool, (u16, String)> {
        let token = url.split("token=").nth(1).unwrap_or_default().to_owned();
        assert!(!token.is_empty(), "never connect without a token");
        self.opens.push((conn, token));
        Ok(true)
    }
    fn ws_send(&mut self, _conn: ConnId, text: &str, _now_ms: u64) {
        self.sent.push(text.to_owned());
    }
    fn ws_close(&mut self, _conn: ConnId, _code: u16, _reason: &str, _now_ms: u64) {}
}

type Replayer = Driver<ChatsClient, ReplayPeer>;

/// A registered agent with an open socket and no subscriptions, its events cleared.
fn connected(seed: u8) -> Replayer {
    let peer = ReplayPeer { sandbox: Rc::new(Sandbox::new(SandboxConfig::default())), paths: vec![], opens: vec![], sent: vec![] };
    let mut d = Driver::new(open(None, seed), peer, T0);
    d.client.register("replay_agent", d.now_ms).unwrap();
    d.drive();
    d.client.set_realtime_config(RealtimeConfig { pending_poll_ms: None, ..RealtimeConfig::default() });
    d.client.connect(d.now_ms).unwrap();
    d.drive();
    assert!(d.client.is_connected(), "{:?}", d.events);
    d.events.clear();
    d.peer.sent.clear();
    d
}

fn conn(d: &Replayer) -> ConnId {
    d.peer.opens.last().expect("a socket").0
}

fn rt(events: &[ChatsEvent]) -> impl Iterator<Item = &RealtimeEvent> {
    events.iter().filter_map(|e| match e {
        ChatsEvent::Realtime(r) => Some(r),
        _ => None,
    })
}

fn kind(event: &ChatsEvent) -> String {
    serde_json::to_value(event).unwrap()["type"].as_str().unwrap_or_default().to_owned()
}

/// Every leaf of `v` with the key it sits under (array elements under their array's key);
/// empty arrays and objects count as leaves.
fn leaves(v: &Value, key: Option<&str>, out: &mut Vec<(Option<String>, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => m.iter().for_each(|(k, x)| leaves(x, Some(k), out)),
        Value::Array(a) if !a.is_empty() => a.iter().for_each(|x| leaves(x, key, out)),
        _ => out.push((key.map(str::to_owned), v.clone())),
    }
}

fn snake(key: &str) -> String {
    key.chars().flat_map(|c| if c.is_ascii_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] }).collect()
}

/// Is the recorded leaf in the events? Values match by value; `null` and empty containers also
/// need the same key (camelCase or snake_case), so an absent field does not pass for a null.
fn present(leaf: &(Option<String>, Value), found: &[(Option<String>, Value)]) -> bool {
    let (key, value) = leaf;
    let keyed = matches!(value, Value::Null) || value.as_array().is_some_and(Vec::is_empty) || value.as_object().is_some_and(|m| m.is_empty());
    found.iter().any(|(k, v)| {
        v == value && (!keyed || k.as_deref().zip(key.as_deref()).is_some_and(|(k, key)| k == key || *k == snake(key)))
    })
}

/// Event kinds an incoming frame may end in.
fn allowed(op: &str) -> &'static [&'static str] {
    match op {
        "subscribed" => &["subscribed", "unmatched"],
        "unsubscribed" => &["unsubscribed"],
        "context" => &["context"],
        "message" => &["message", "unmatched"],
        "message_ack" => &["message_sent"],
        "vouch_ack" | "flag_ack" => &["trust_succeeded"],
        "error" => &["server_error", "send_failed", "send_retrying", "subscribe_failed", "trust_failed"],
        "presence" => &["presence"],
        "typing" => &["typing"],
        "pong" => &["pong"],
        "quarantined" => &["quarantined"],
        _ => &["unmatched"],
    }
}

#[derive(Default)]
struct Report {
    captures: usize,
    frames_in: usize,
    closes: usize,
    frames_out: usize,
    out_identical: usize,
    /// Outgoing frames the session does not send at that point, with why.
    out_not_sent: Vec<String>,
    out_differs: Vec<String>,
    leaves: usize,
    lost: Vec<String>,
    withheld: usize,
    failures: Vec<String>,
}

/// The answer events of a request (they carry its id).
fn answer_id(event: &RealtimeEvent) -> Option<CallId> {
    match event {
        RealtimeEvent::MessageSent { send_id, .. } | RealtimeEvent::SendFailed { send_id, .. } | RealtimeEvent::SendRetrying { send_id, .. } => Some(*send_id),
        RealtimeEvent::TrustSucceeded { call_id, .. } | RealtimeEvent::TrustFailed { call_id, .. } => Some(*call_id),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn replay(name: &str, text: &str, r: &mut Report) {
    let mut d = connected(r.captures as u8 + 1);
    let ping_ms = d.client.realtime_config().ping_interval_ms;
    // Channels the server confirmed (traffic for others must not be delivered as subscribed).
    let mut subscribed: BTreeSet<String> = BTreeSet::new();
    // The request whose answer comes next, and the channel of the previous `subscribed`.
    let mut asked: Option<CallId> = None;
    let mut last_subscribed: Option<String> = None;
    let fail = |r: &mut Report, line: usize, what: String| r.failures.push(format!("{name}:{line}: {what}"));
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let rec: Value = serde_json::from_str(line).unwrap();
        d.now_ms += 1;
        let events_before = d.events.len();
        let sent_before = d.peer.sent.len();
        match rec["dir"].as_str().unwrap() {
            "out" => {
                r.frames_out += 1;
                let frame = &rec["frame"];
                let op = frame["op"].as_str().unwrap_or_default();
                let channel = frame["channel"].as_str().unwrap_or_default();
                let now = d.now_ms;
                // What the session does for this frame: Ok(Some(id)) a request, Ok(None) a frame
                // without answer id, Err(why) it does not send this frame here.
                let done: Result<Option<CallId>, String> = match op {
                    "subscribe" if frame["channels"].is_array() => d.client.subscribe(&strings(&frame["channels"]), now).map(|_| None).map_err(|e| e.to_string()),
                    "unsubscribe" => {
                        let channels = strings(&frame["channels"]);
                        channels.iter().for_each(|c| {
                            subscribed.remove(c);
                        });
                        d.client.unsubscribe(&channels, now);
                        Ok(None)
                    }
                    "message" if !subscribed.contains(channel) => Err("the session sends only into channels it subscribed (it subscribes first)".into()),
                    "message" => {
                        let content = frame["content"].as_str().unwrap_or_default();
                        d.client.send_message(channel, content, frame["contentType"].as_str(), now).map(Some).map_err(|e| format!("refused before sending: {e}"))
                    }
                    "typing" => {
                        d.client.typing(channel, now);
                        Ok(None)
                    }
                    "ping" => {
                        // The session pings on its own clock: let it come due.
                        d.now_ms += ping_ms;
                        d.client.handle_timeout(d.now_ms);
                        Ok(None)
                    }
                    "vouch" => d.client.vouch(frame["target"].as_str().unwrap_or_default(), now).map(Some).map_err(|e| e.to_string()),
                    "vouch_revoke" => d.client.vouch_revoke(frame["target"].as_str().unwrap_or_default(), now).map(Some).map_err(|e| e.to_string()),
                    "flag" => d.client.flag(frame["target"].as_str().unwrap_or_default(), frame["reason"].as_str(), now).map(Some).map_err(|e| e.to_string()),
                    _ => Err("no API sends this frame (malformed or unknown op)".into()),
                };
                d.drive();
                let sent: Vec<Value> = d.peer.sent[sent_before..].iter().map(|t| serde_json::from_str(t).unwrap()).collect();
                match done {
                    Err(why) => {
                        r.out_not_sent.push(format!("{name}:{n} {op}: {why}"));
                        if !sent.is_empty() {
                            r.out_differs.push(format!("{name}:{n} {op}: sent {sent:?} instead"));
                        }
                    }
                    Ok(id) => {
                        asked = id.or(asked);
                        match sent.as_slice() {
                            [one] if one == frame => r.out_identical += 1,
                            [] => r.out_not_sent.push(format!("{name}:{n} {op}: held by the session (queued behind the rate limit or a pending answer)")),
                            other => r.out_differs.push(format!("{name}:{n} {op}: recorded {frame}, sent {other:?}")),
                        }
                    }
                }
            }
            "in" => {
                r.frames_in += 1;
                let frame = &rec["frame"];
                let op = frame["op"].as_str().unwrap_or_default().to_owned();
                let channel = frame["channel"].as_str().map(str::to_owned);
                let c = conn(&d);
                let now = d.now_ms;
                d.client.handle_ws_frame(c, &frame.to_string(), now);
                d.drive();
                let events = &d.events[events_before..];
                let kinds: Vec<String> = events.iter().map(kind).collect();
                if !kinds.iter().any(|k| allowed(&op).contains(&k.as_str())) {
                    fail(r, n, format!("{op} ended in {kinds:?}, expected one of {:?}", allowed(&op)));
                }
                // Every leaf of the frame (except its `op`, which the event's kind stands for).
                let mut found = vec![];
                events.iter().for_each(|e| leaves(&serde_json::to_value(e).unwrap(), None, &mut found));
                let mut mine = vec![];
                leaves(frame, None, &mut mine);
                for leaf in mine.iter().filter(|(k, _)| k.as_deref() != Some("op")) {
                    r.leaves += 1;
                    let sql = leaf.1.as_str().is_some_and(|s| s.starts_with("Failed query:"));
                    if sql && found.iter().any(|(_, v)| v.as_str().is_some_and(|s| s.contains("withheld"))) {
                        r.withheld += 1;
                    } else if !present(leaf, &found) {
                        r.lost.push(format!("{name}:{n} {op}: {}={}", leaf.0.as_deref().unwrap_or("-"), leaf.1));
                    }
                }
                // Answers go to the request that asked.
                for e in rt(events) {
                    if let Some(id) = answer_id(e)
                        && Some(id) != asked
                    {
                        fail(r, n, format!("{op} answered request #{id}, but #{asked:?} asked"));
                    }
                }
                if rt(events).any(|e| answer_id(e).is_some() && !matches!(e, RealtimeEvent::SendRetrying { .. })) {
                    asked = None;
                }
                match op.as_str() {
                    "subscribed" => {
                        subscribed.insert(channel.clone().unwrap());
                    }
                    "context" => match rt(events).next() {
                        Some(RealtimeEvent::Context { channel: got, instructions, .. }) => {
                            if Some(got) != last_subscribed.as_ref() {
                                fail(r, n, format!("context attributed to {got}, not {last_subscribed:?}"));
                            }
                            let keys: BTreeSet<&String> = frame.as_object().unwrap().keys().filter(|k| *k != "op").collect();
                            if keys != instructions.keys().collect() {
                                fail(r, n, format!("context keys {:?} != {keys:?}", instructions.keys().collect::<Vec<_>>()));
                            }
                        }
                        other => fail(r, n, format!("context ended in {other:?}")),
                    },
                    "message" | "typing" | "presence" if !subscribed.contains(channel.as_deref().unwrap_or_default()) => {
                        if !rt(events).any(|e| matches!(e, RealtimeEvent::Unmatched { reason: "not_subscribed", .. })) {
                            fail(r, n, format!("{op} for a channel never subscribed was not reported as such: {kinds:?}"));
                        }
                    }
                    "error" if frame["code"] == "SUBSCRIBE_FAILED" => {
                        subscribed.remove(channel.as_deref().unwrap_or_default());
                    }
                    _ => {}
                }
                last_subscribed = if op == "subscribed" { channel } else { None };
            }
            "close" => {
                r.closes += 1;
                let code = rec["code"].as_u64().unwrap() as u16;
                let reason = rec["reason"].as_str().unwrap();
                let opens = d.peer.opens.len();
                let refreshes = d.peer.paths.iter().filter(|p| p.ends_with("/auth/refresh")).count();
                let (c, now) = (conn(&d), d.now_ms);
                d.client.handle_ws_closed(c, code, reason, now);
                d.drive();
                let events: Vec<RealtimeEvent> = rt(&d.events[events_before..]).cloned().collect();
                let mut found = vec![];
                events.iter().for_each(|e| leaves(&serde_json::to_value(e).unwrap(), None, &mut found));
                for leaf in [(Some("code".to_owned()), json!(code)), (Some("reason".to_owned()), json!(reason))] {
                    r.leaves += 1;
                    if !present(&leaf, &found) {
                        r.lost.push(format!("{name}:{n} close: {leaf:?}"));
                    }
                }
                let fine = match code {
                    // Fatal: reported, and no reconnect however long we wait.
                    4003 => {
                        d.advance(10 * 60_000);
                        events.iter().any(|e| matches!(e, RealtimeEvent::RealtimeFatal { code: 4003, .. })) && d.peer.opens.len() == opens
                    }
                    // The token is dropped: one refresh, then a reconnect with the new token.
                    4001 => {
                        let refreshed = d.peer.paths.iter().filter(|p| p.ends_with("/auth/refresh")).count() == refreshes + 1;
                        let new_token = d.peer.opens.len() == opens + 1 && d.peer.opens[opens].1 != d.peer.opens[opens - 1].1;
                        refreshed && new_token
                    }
                    // Idle timeout: reconnect at once.
                    4002 => events.iter().any(|e| matches!(e, RealtimeEvent::Disconnected { code: 4002, retry_at_ms: Some(at), .. } if *at == now)) && d.peer.opens.len() == opens + 1,
                    // Anything else: a reconnect after a backoff.
                    _ => events.iter().any(|e| matches!(e, RealtimeEvent::Disconnected { retry_at_ms: Some(at), .. } if *at > now)) && d.peer.opens.len() == opens,
                };
                if !fine {
                    fail(r, n, format!("close {code} not handled: {events:?}, opens {} → {}", opens, d.peer.opens.len()));
                }
            }
            other => panic!("{name}:{n}: unknown dir {other}"),
        }
        // Frames sent while handling an incoming frame or a close (a queued send released,
        // a resubscribe after reconnecting) are listed, not compared.
        if rec["dir"] != "out" && d.peer.sent.len() > sent_before {
            r.out_differs.push(format!("{name}:{n}: the session also sent {:?}", &d.peer.sent[sent_before..]));
        }
    }
    r.captures += 1;
}

#[test]
fn every_recorded_websocket_capture_replays_without_losing_a_value() {
    let mut files: Vec<_> = std::fs::read_dir(CORPUS).expect("the WS corpus").map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect();
    files.sort();
    let mut r = Report::default();
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        replay(&name, &std::fs::read_to_string(path).unwrap(), &mut r);
    }
    for line in r.out_not_sent.iter().chain(&r.out_differs) {
        println!("  {line}");
    }
    println!(
        "ws replay: {} captures, {} inbound frames, {} closes, {} outbound frames ({} sent identically, {} not sent by the session, {} other differences); {} leaf values checked, {} lost, {} withheld (raw SQL)",
        r.captures,
        r.frames_in,
        r.closes,
        r.frames_out,
        r.out_identical,
        r.out_not_sent.len(),
        r.out_differs.len(),
        r.leaves,
        r.lost.len(),
        r.withheld
    );
    assert_eq!(r.captures, 33, "the whole corpus");
    assert!(r.lost.is_empty(), "values lost: {:#?}", r.lost);
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
}

/// Feed one server frame; the realtime events it produced.
fn feed(d: &mut Replayer, frame: &str) -> Vec<RealtimeEvent> {
    let before = d.events.len();
    let (c, now) = (conn(d), d.now_ms);
    d.client.handle_ws_frame(c, frame, now);
    d.drive();
    rt(&d.events[before..]).cloned().collect()
}

fn frames_since(d: &Replayer, from: usize) -> Vec<Value> {
    d.peer.sent[from..].iter().map(|t| serde_json::from_str(t).unwrap()).collect()
}

#[test]
fn the_leaf_walker_notices_a_lost_value_and_an_absent_null() {
    let mut recorded = vec![];
    leaves(&json!({"agent": {"displayName": null, "id": "a1"}, "online": []}), None, &mut recorded);
    let mut full = vec![];
    leaves(&json!({"agent": {"display_name": null, "id": "a1"}, "online": []}), None, &mut full);
    assert!(recorded.iter().all(|l| present(l, &full)));
    let mut partial = vec![];
    leaves(&json!({"agent": {"id": "a1", "other": null}}), None, &mut partial);
    assert_eq!(recorded.iter().filter(|l| !present(l, &partial)).count(), 2, "an absent null and an absent empty list are losses");
}

#[test]
fn one_request_awaits_its_answer_at_a_time_and_answers_go_to_it() {
    let mut d = connected(40);
    let (a, b) = ("chan-a".to_owned(), "chan-b".to_owned());
    d.client.subscribe(&[a.clone(), b.clone()], d.now_ms).unwrap();
    d.drive();
    for c in [&a, &b] {
        feed(&mut d, &json!({"op": "subscribed", "channel": c}).to_string());
        let context = feed(&mut d, r#"{"op":"context","platform":"p","server":"s"}"#);
        assert!(matches!(&context[..], [RealtimeEvent::Context { channel, instructions, .. }] if channel == c && instructions.len() == 2 && !instructions.contains_key("channel")));
    }
    let from = d.peer.sent.len();
    let now = d.now_ms;
    let a1 = d.client.send_message(&a, "a1", None, now).unwrap();
    let b1 = d.client.send_message(&b, "b1", Some("code"), now).unwrap();
    let vouch = d.client.vouch("Bob", now).unwrap();
    let flag = d.client.flag("eve", Some("spam"), now).unwrap();
    d.drive();
    assert_eq!(frames_since(&d, from), [json!({"op": "message", "channel": a, "content": "a1"})], "one request at a time");
    // An unrelated answer (a pong can overtake an ack) changes nothing.
    assert_eq!(feed(&mut d, r#"{"op":"pong"}"#), [RealtimeEvent::Pong]);
    assert_eq!(d.peer.sent.len(), from + 1);
    let ack = feed(&mut d, r#"{"op":"message_ack","id":"m1","timestamp":"2026-11-30T01:01:30.006Z"}"#);
    assert!(matches!(&ack[..], [RealtimeEvent::MessageSent { send_id, id, .. }] if *send_id == a1 && id == "m1"));
    // Trust ops go before the next send; each answer goes to the op that asked.
    assert_eq!(frames_since(&d, from + 1), [json!({"op": "vouch", "target": "Bob"})]);
    let ok = feed(&mut d, r#"{"op":"vouch_ack","target":"Bob"}"#);
    assert!(matches!(&ok[..], [RealtimeEvent::TrustSucceeded { call_id, ack, .. }] if *call_id == vouch && ack["target"] == "Bob"));
    assert_eq!(frames_since(&d, from + 2), [json!({"op": "flag", "target": "eve", "reason": "spam"})]);
    let refused = feed(&mut d, r#"{"op":"error","code":"TRUST_ERROR","message":"Already flagged this agent recently"}"#);
    assert!(matches!(&refused[..], [RealtimeEvent::TrustFailed { call_id, code, .. }] if *call_id == flag && code == "TRUST_ERROR"));
    assert_eq!(frames_since(&d, from + 3), [json!({"op": "message", "channel": b, "content": "b1", "contentType": "code"})]);
    let limited = feed(&mut d, r#"{"op":"error","code":"HANDLER_ERROR","message":"Rate limited: too many messages"}"#);
    assert!(matches!(&limited[..], [RealtimeEvent::SendRetrying { send_id, .. }] if *send_id == b1), "{limited:?}");
    assert_eq!(d.client.queue_state(d.now_ms).ws_sends, 1, "requeued, not dropped");
}

#[test]
fn trust_ops_need_an_open_socket_and_a_lost_socket_fails_them_without_resending() {
    let mut d = connected(41);
    d.client.disconnect(d.now_ms);
    d.drive();
    let refused = d.client.vouch("bob", d.now_ms).unwrap_err();
    assert_eq!(refused.code, crate::error::ErrorCode::InvalidState, "{refused}");
    d.client.connect(d.now_ms).unwrap();
    d.drive();
    assert!(d.client.is_connected());
    let from = d.peer.sent.len();
    let revoke = d.client.vouch_revoke("bob", d.now_ms).unwrap();
    d.drive();
    assert_eq!(frames_since(&d, from), [json!({"op": "vouch_revoke", "target": "bob"})]);
    let before = d.events.len();
    let (c, now) = (conn(&d), d.now_ms);
    d.client.handle_ws_closed(c, 1006, "connection reset", now);
    d.advance(2 * 60_000);
    assert!(d.client.is_connected(), "reconnected");
    let lost: Vec<_> = rt(&d.events[before..]).filter(|e| matches!(e, RealtimeEvent::TrustFailed { call_id, code, .. } if *call_id == revoke && code == "CONNECTION_LOST")).collect();
    assert_eq!(lost.len(), 1);
    assert!(frames_since(&d, from + 1).iter().all(|f| f["op"] != "vouch_revoke"), "never resent blindly");
}

#[test]
fn frames_the_session_cannot_place_are_reported_not_delivered() {
    let mut d = connected(42);
    let reasons = |events: Vec<RealtimeEvent>| -> Vec<&'static str> {
        events.iter().filter_map(|e| match e {
            RealtimeEvent::Unmatched { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
    };
    assert_eq!(reasons(feed(&mut d, r#"{"op":"context","platform":"p"}"#)), ["no_subscribed"]);
    assert_eq!(reasons(feed(&mut d, r#"{"op":"message","channel":"elsewhere","content":"hi","id":"x","timestamp":"2026-11-30T01:01:30.006Z","agent":{"id":"o","username":"o"}}"#)), ["not_subscribed"]);
    assert_eq!(reasons(feed(&mut d, r#"{"op":"typing","channel":"elsewhere","agent":"o"}"#)), ["not_subscribed"]);
    assert_eq!(reasons(feed(&mut d, r#"{"op":"message_ack","id":"m","timestamp":"t"}"#)), ["no_request"]);
    assert_eq!(reasons(feed(&mut d, r#"{"op":"flag_ack","target":"t"}"#)), ["no_request"]);
    assert_eq!(reasons(feed(&mut d, r#"{"op":"friend_request","from":"x"}"#)), ["unknown_op"]);
    assert_eq!(reasons(feed(&mut d, "not json")), ["invalid_json"]);
    // Raw database text never reaches an event.
    let sql = feed(&mut d, r#"{"op":"error","code":"SUBSCRIBE_FAILED","message":"Failed query: select 1\nparams: x","channel":"x"}"#);
    assert!(matches!(&sql[..], [RealtimeEvent::SubscribeFailed { message, .. }] if !message.contains("select")), "{sql:?}");
}
