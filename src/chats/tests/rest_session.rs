//! Typed commands and the client-side limiter, driven against the sandbox's REST surface with
//! a virtual clock: several agents share one sandbox; every run replays exactly.

use super::{API, T0, open};
use crate::chats::{Bucket, ChatsCommand, ChatsEvent, ChatsResult, Limits};
use crate::auth::AuthEvent;
use crate::io::{CallEvent, Output, SansIo};
use crate::{CallId, ChatsClient};
use moltlink_sandbox::moltchats::social::{SEED_CHANNEL_ID, SEED_SERVER_ID};
use crate::testkit::sandbox::SandboxPeer;
use crate::testkit::Driver;
use moltlink_sandbox::{Sandbox, SandboxConfig};
use std::rc::Rc;
use serde_json::{Value, json};

const MINUTE: u64 = 60_000;

/// One agent: its client, and what it saw.
type Agent = Driver<ChatsClient, SandboxPeer>;

/// Several agents on one sandbox and one virtual clock.
struct World {
    sandbox: Rc<Sandbox>,
    now: u64,
    /// Every request any agent sent: (agent index, method, path).
    sent: Vec<(usize, String, String)>,
}

impl World {
    fn new() -> Self {
        let _ = API;
        Self { sandbox: Rc::new(Sandbox::new(SandboxConfig::default())), now: T0, sent: vec![] }
    }

    fn agent(&mut self, name: &str, seed: u8) -> Agent {
        let mut peer = SandboxPeer::new(self.sandbox.clone());
        peer.rest_only = true;
        let mut a = Driver::new(open(None, seed), peer, self.now);
        a.max_steps = 10_000;
        a.client.register(name, self.now).unwrap();
        self.drain(&mut a, 0);
        assert!(a.client.is_authenticated(self.now));
        a
    }

    /// Serve everything the agent asks until it waits, on the world's clock; returns its deadline.
    fn drain(&mut self, a: &mut Agent, who: usize) -> Option<u64> {
        a.now_ms = self.now;
        let next = a.drive();
        for line in a.peer.sent.drain(..) {
            let (method, uri) = line.split_once(' ').unwrap();
            self.sent.push((who, method.to_owned(), uri.to_owned()));
        }
        next
    }

    /// Let virtual time pass for one agent, firing its deadlines.
    fn run_until(&mut self, a: &mut Agent, who: usize, mut done: impl FnMut(&Agent) -> bool, limit_ms: u64) {
        let end = self.now + limit_ms;
        loop {
            let next = self.drain(a, who);
            if done(a) {
                return;
            }
            match next {
                Some(at) if at <= end => {
                    assert!(at >= self.now, "deadline in the past: {at} < {}", self.now);
                    self.now = at;
                    a.client.handle_timeout(self.now);
                }
                _ => panic!("not done within {limit_ms} ms; last events: {:?}", &a.events[a.events.len().saturating_sub(3)..]),
            }
        }
    }

    /// Run one command to its outcome and return the typed result as JSON.
    fn run(&mut self, a: &mut Agent, who: usize, command: Value) -> Result<Value, crate::io::ApiError> {
        let call = a.client.command_json(&command.to_string(), self.now).unwrap();
        self.run_until(a, who, |a| outcome(a, call).is_some(), 10 * MINUTE);
        match outcome(a, call).unwrap() {
            ChatsEvent::CommandSucceeded { result, op, .. } => {
                assert_eq!(Some(op.as_str()), command["op"].as_str());
                Ok(serde_json::to_value(result).unwrap())
            }
            ChatsEvent::Call(CallEvent::CallFailed { error, .. }) => Err(error.clone()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn outcome(a: &Agent, call: CallId) -> Option<&ChatsEvent> {
    a.events.iter().find(|e| match e {
        ChatsEvent::CommandSucceeded { call_id, .. } | ChatsEvent::Call(CallEvent::CallFailed { call_id, .. }) => *call_id == call,
        _ => false,
    })
}

fn delivered(a: &Agent) -> usize {
    a.events.iter().filter(|e| matches!(e, ChatsEvent::CommandSucceeded { .. })).count()
}

#[test]
fn every_rest_command_round_trips_through_the_sandbox() {
    let mut w = World::new();
    let mut alice = w.agent("alice", 1);
    let mut bob = w.agent("bob", 2);

    // Profile: patch (checked locally first), get, public view.
    assert_eq!(alice.client.command_json(&json!({"op":"profile_patch","bio":"x".repeat(257)}).to_string(), w.now).unwrap_err().code, crate::ErrorCode::InvalidArgument);
    let me = w.run(&mut alice, 0, json!({"op":"profile_patch","display_name":"Alice","bio":"hi"})).unwrap();
    assert_eq!((me["display_name"].as_str(), me["bio"].as_str()), (Some("Alice"), Some("hi")));
    assert_eq!(w.run(&mut alice, 0, json!({"op":"profile_get"})).unwrap()["username"], "alice");
    assert_eq!(w.run(&mut bob, 1, json!({"op":"agent_get","username":"alice"})).unwrap()["display_name"], "Alice");

    // Servers: the seeded public one (memberCount arrives as a string, leaves as a number).
    let browse = w.run(&mut alice, 0, json!({"op":"servers_browse","sort":"popular","search":"sandbox","limit":10})).unwrap();
    assert_eq!(browse["servers"][0]["id"], SEED_SERVER_ID);
    assert_eq!(browse["servers"][0]["member_count"], 1);
    w.run(&mut alice, 0, json!({"op":"server_join","server_id":SEED_SERVER_ID})).unwrap();
    w.run(&mut bob, 1, json!({"op":"server_join","server_id":SEED_SERVER_ID})).unwrap();
    let again = w.run(&mut bob, 1, json!({"op":"server_join","server_id":SEED_SERVER_ID})).unwrap_err();
    assert!(again.code_is("ALREADY_MEMBER"), "{again}");
    assert_eq!(w.run(&mut bob, 1, json!({"op":"my_servers"})).unwrap()["servers"][0]["member_count"], 3);
    let channels = w.run(&mut alice, 0, json!({"op":"channels","server_id":SEED_SERVER_ID})).unwrap();
    assert_eq!(channels["channels"]["uncategorized"][0]["id"], SEED_CHANNEL_ID);
    assert_eq!(channels["channels"]["uncategorized"][0]["category"], Value::Null);

    // A server of one's own, with a categorised channel (creating one takes a trusted tier).
    assert!(w.run(&mut alice, 0, json!({"op":"server_create","name":"Too soon"})).unwrap_err().code_is("INSUFFICIENT_TRUST"));
    w.sandbox.moltchats_set_trust("alice", "trusted", 0.65);
    let created = w.run(&mut alice, 0, json!({"op":"server_create","name":"Alice's place","tags":["cozy"]})).unwrap();
    let sid = created["server"]["id"].as_str().unwrap().to_owned();
    let chan = w.run(&mut alice, 0, json!({"op":"channel_create","server_id":sid,"name":"ideas","category":"Work"})).unwrap();
    assert_eq!(chan["channel"]["category"], "Work");
    let not_owner = w.run(&mut bob, 1, json!({"op":"channel_create","server_id":sid,"name":"mine"})).unwrap_err();
    assert!(not_owner.code_is("NOT_SERVER_ADMIN"), "{not_owner}");
    let listed = w.run(&mut bob, 1, json!({"op":"channels","server_id":sid})).unwrap();
    assert_eq!(listed["channels"]["Work"][0]["category"], "Work");
    assert_eq!(listed["channels"]["uncategorized"][0]["category"], Value::Null);

    // Messages, history pages (newest first, `before` exclusive), reactions.
    for i in 0..3 {
        let m = w.run(&mut alice, 0, json!({"op":"message_send","channel_id":SEED_CHANNEL_ID,"content":format!("hello {i}")})).unwrap();
        assert_eq!(m["content"], format!("hello {i}"));
        w.now += 1_000;
    }
    let page = w.run(&mut bob, 1, json!({"op":"history","channel_id":SEED_CHANNEL_ID,"limit":2})).unwrap();
    let contents: Vec<&str> = page.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["hello 2", "hello 1"]);
    let oldest = page[1]["created_at"].as_str().unwrap().to_owned();
    let page2 = w.run(&mut bob, 1, json!({"op":"history","channel_id":SEED_CHANNEL_ID,"before":oldest})).unwrap();
    assert_eq!(page2.as_array().unwrap().len(), 1);
    assert_eq!(page2[0]["content"], "hello 0");
    assert_eq!(page2[0]["agent"]["username"], "alice");
    assert!(page2[0].get("reactions").is_none() && page2[0].get("trust_tier").is_none(), "nothing the server did not send");
    let mid = page2[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(w.run(&mut bob, 1, json!({"op":"react","message_id":mid,"emoji":"👍"})).unwrap(), json!({"success": true}));
    assert_eq!(w.run(&mut bob, 1, json!({"op":"unreact","message_id":mid,"emoji":"👍"})).unwrap(), json!({"success": true}));
    // Remote text is marked untrusted on the event.
    let untrusted = bob.events.iter().rev().find_map(|e| match e {
        ChatsEvent::CommandSucceeded { op, untrusted, .. } if op == "history" => Some(untrusted.clone()),
        _ => None,
    });
    assert!(untrusted.unwrap().contains(&"[].content"));

    // Friends: request, see it, accept (a DM channel opens), list, DM, pending.
    let req = w.run(&mut alice, 0, json!({"op":"friend_request","target":"bob"})).unwrap();
    let request_id = req["request_id"].as_str().unwrap().to_owned();
    assert!(w.run(&mut alice, 0, json!({"op":"friend_request","target":"bob"})).unwrap_err().code_is("FRIEND_REQUEST_EXISTS"));
    let reqs = w.run(&mut bob, 1, json!({"op":"friend_requests"})).unwrap();
    assert_eq!(reqs["incoming"][0]["id"], request_id.as_str());
    assert_eq!(reqs["incoming"][0]["from_username"], "alice");
    let pending = w.run(&mut bob, 1, json!({"op":"pending"})).unwrap();
    assert_eq!(pending["has_activity"], true);
    assert_eq!(pending["pending_friend_requests"][0]["from_username"], "alice");
    let accepted = w.run(&mut bob, 1, json!({"op":"friend_accept","request_id":request_id})).unwrap();
    assert_eq!(accepted["friend_username"], "alice");
    let dm = accepted["dm_channel_id"].as_str().unwrap().to_owned();
    let friends = w.run(&mut alice, 0, json!({"op":"friends"})).unwrap();
    assert_eq!((friends["friends"][0]["username"].as_str(), friends["friends"][0]["dm_channel_id"].as_str()), (Some("bob"), Some(dm.as_str())));
    let checked = w.run(&mut alice, 0, json!({"op":"pending"})).unwrap()["checked_at"].as_str().unwrap().to_owned();
    w.now += 1_000;
    w.run(&mut bob, 1, json!({"op":"message_send","channel_id":dm,"content":"hi alice"})).unwrap();
    let pending = w.run(&mut alice, 0, json!({"op":"pending","since":checked})).unwrap();
    assert_eq!(pending["unread_dms"][0]["channel_id"], dm.as_str());
    assert_eq!(pending["unread_dms"][0]["unread_count"], 1);

    // Blocks.
    w.run(&mut alice, 0, json!({"op":"block","username":"bob"})).unwrap();
    assert_eq!(w.run(&mut alice, 0, json!({"op":"blocks"})).unwrap()["blocked"][0]["username"], "bob");
    w.run(&mut alice, 0, json!({"op":"unblock","username":"bob"})).unwrap();
    assert_eq!(w.run(&mut alice, 0, json!({"op":"blocks"})).unwrap()["blocked"], json!([]));
    let mut carol = w.agent("carol", 3);
    w.run(&mut carol, 2, json!({"op":"block","username":"alice"})).unwrap();
    assert!(w.run(&mut alice, 0, json!({"op":"friend_request","target":"carol"})).unwrap_err().code_is("BLOCKED"));
    let r = w.run(&mut carol, 2, json!({"op":"friend_request","target":"bob"})).unwrap()["request_id"].as_str().unwrap().to_owned();
    w.run(&mut bob, 1, json!({"op":"friend_reject","request_id":r})).unwrap();
    assert_eq!(w.run(&mut bob, 1, json!({"op":"friend_requests"})).unwrap()["incoming"], json!([]));

    assert_eq!(w.sandbox.with_state(|s| s.moltchats.social.rate_limited), 0, "never rate limited in normal use");
}

#[test]
fn a_429_with_only_an_absolute_reset_header_requeues_without_a_tight_loop() {
    let mut w = World::new();
    let mut a = w.agent("requeued", 1);
    w.sandbox.with_state(|s| {
        s.moltchats.social.faults.fail_next_with_429 = 1;
        s.moltchats.social.faults.reset_in_s = 7;
    });
    let before = w.sent.len();
    let call = a.client.command(ChatsCommand::Friends {}, w.now).unwrap();
    let deadline = w.drain(&mut a, 0);
    let reset_ms = (w.now / 1000 + 7) * 1000;
    let throttled = a.events.iter().find_map(|e| match e {
        ChatsEvent::Throttled { call_id, until_ms, rejected: true, bucket, .. } if *call_id == call => Some((*until_ms, bucket.clone())),
        _ => None,
    });
    assert_eq!(throttled, Some((reset_ms, Bucket::Api)));
    assert!(outcome(&a, call).is_none(), "a 429 is never a failure");
    let q = a.client.queue_state(w.now);
    assert_eq!((q.waiting, q.in_flight, q.next_release_ms), (1, 0, Some(reset_ms)));
    // The closed window is saved first (the save interval may defer it a second), then the
    // host sleeps until the reset.
    let mut deadline = deadline;
    if let Some(save) = deadline.filter(|at| *at != reset_ms) {
        assert!(save <= w.now + 1_000, "only a save comes before the reset: {save}");
        w.now = save;
        a.client.handle_timeout(save);
        deadline = w.drain(&mut a, 0);
    }
    assert_eq!(deadline, Some(reset_ms), "the host is woken at the reset, not before");
    // Nothing goes out early even if the host wakes the core repeatedly.
    for t in [w.now + 1, reset_ms - 1000, reset_ms - 1] {
        a.client.handle_timeout(t);
        assert!(matches!(a.client.poll_output(), Output::Wait { .. }));
    }
    w.run_until(&mut a, 0, |a| outcome(a, call).is_some(), MINUTE);
    assert_eq!(w.now, reset_ms);
    assert!(matches!(outcome(&a, call), Some(ChatsEvent::CommandSucceeded { .. })));
    assert_eq!(w.sent.len() - before, 2, "one refused attempt, one retry at the reset");
    assert_eq!(a.client.queue_state(w.now).waiting, 0);
}

/// A channel limited to 3 messages a minute (a new agent's tier), 100 messages queued at once.
fn tier_run(known_limit: bool) -> (World, Agent, Vec<CallId>) {
    let mut w = World::new();
    let mut a = w.agent("tiered", 1);
    if known_limit {
        a.client.set_limits(Limits { channel_per_minute: 3, ..Limits::default() });
    }
    w.run(&mut a, 0, json!({"op":"server_join","server_id":SEED_SERVER_ID})).unwrap();
    w.sandbox.with_state(|s| s.moltchats.social.faults.channel_messages_per_minute = 3);
    let calls: Vec<CallId> = (0..100)
        .map(|i| a.client.command(ChatsCommand::MessageSend { channel_id: SEED_CHANNEL_ID.into(), content: format!("m{i:03}"), content_type: None }, w.now).unwrap())
        .collect();
    let start = w.now;
    w.run_until(&mut a, 0, |a| delivered(a) >= 101, 60 * MINUTE);
    assert!(w.now - start >= 32 * MINUTE, "3 per minute: 100 messages need 33 windows");
    (w, a, calls)
}

fn assert_all_delivered_in_order(w: &mut World, a: &mut Agent, calls: &[CallId]) {
    for call in calls {
        assert!(matches!(outcome(a, *call), Some(ChatsEvent::CommandSucceeded { .. })), "call {call}");
    }
    assert!(!a.events.iter().any(|e| matches!(e, ChatsEvent::Call(CallEvent::CallFailed { .. }))));
    let mut seen = vec![];
    let mut before: Option<String> = None;
    loop {
        let mut cmd = json!({"op":"history","channel_id":SEED_CHANNEL_ID,"limit":100});
        if let Some(b) = &before {
            cmd["before"] = json!(b);
        }
        let page = w.run(a, 0, cmd).unwrap();
        let msgs = page.as_array().unwrap().clone();
        if msgs.is_empty() {
            break;
        }
        before = msgs.last().unwrap()["created_at"].as_str().map(str::to_owned);
        seen.extend(msgs.iter().map(|m| m["content"].as_str().unwrap().to_owned()));
    }
    seen.reverse();
    let expected: Vec<String> = (0..100).map(|i| format!("m{i:03}")).collect();
    assert_eq!(seen, expected, "each message exactly once, in order");
}

#[test]
fn a_tier_limit_of_3_per_minute_known_in_advance_delivers_100_messages_none_rejected() {
    let (mut w, mut a, calls) = tier_run(true);
    assert_eq!(w.sandbox.with_state(|s| s.moltchats.social.rate_limited), 0);
    assert_all_delivered_in_order(&mut w, &mut a, &calls);
}

#[test]
fn a_tier_limit_of_3_per_minute_learnt_from_the_server_delivers_100_messages() {
    let (mut w, mut a, calls) = tier_run(false);
    // The sends that revealed the limit were refused and requeued (never dropped): one probe,
    // plus one to confirm a guess made in the client's first minute (limiter::rejected).
    assert_eq!(w.sandbox.with_state(|s| s.moltchats.social.rate_limited), 2);
    let requeued = a.events.iter().filter(|e| matches!(e, ChatsEvent::Throttled { rejected: true, .. })).count();
    assert_eq!(requeued, 2);
    assert_all_delivered_in_order(&mut w, &mut a, &calls);
}

#[test]
fn queue_state_shows_waiting_calls_and_the_next_release() {
    let mut w = World::new();
    let mut a = w.agent("queued", 1);
    a.client.set_limits(Limits { api_per_minute: 2, ..Limits::default() });
    let start = w.now;
    let calls: Vec<CallId> = (0..5).map(|_| a.client.command(ChatsCommand::Blocks {}, w.now).unwrap()).collect();
    let q = a.client.queue_state(w.now);
    assert_eq!((q.waiting, q.in_flight, q.next_release_ms), (3, 2, Some(start + MINUTE)));
    w.drain(&mut a, 0);
    let api = q.buckets.iter().find(|b| b.bucket == Bucket::Api).unwrap();
    assert_eq!((api.limit, api.used, api.next_free_ms), (2, 2, Some(start + MINUTE)));
    assert_eq!(serde_json::to_value(&q).unwrap()["buckets"][0]["bucket"], "api");
    // Every held call was reported once.
    let held: Vec<CallId> = a.events.iter().filter_map(|e| match e {
        ChatsEvent::Throttled { call_id, rejected: false, .. } => Some(*call_id),
        _ => None,
    }).collect();
    assert_eq!(held, calls[2..]);
    w.run_until(&mut a, 0, |a| delivered(a) == 5, 5 * MINUTE);
    assert_eq!(w.now, start + 2 * MINUTE, "two per minute: the fifth goes at two minutes");
    assert_eq!(a.client.queue_state(w.now).waiting, 0);
}

#[test]
fn pending_and_server_creation_learn_from_rate_headers() {
    let mut w = World::new();
    let mut a = w.agent("headers", 1);
    w.sandbox.moltchats_set_trust("headers", "trusted", 0.65);
    // 5 servers a day with headers: the sixth waits for the day's reset instead of a 429.
    for i in 0..5 {
        w.run(&mut a, 0, json!({"op":"server_create","name":format!("s{i}")})).unwrap();
    }
    let sixth = a.client.command_json(&json!({"op":"server_create","name":"s5"}).to_string(), w.now).unwrap();
    w.drain(&mut a, 0);
    assert!(outcome(&a, sixth).is_none());
    let q = a.client.queue_state(w.now);
    let reset = q.next_release_ms.unwrap();
    assert!(reset > w.now && reset <= w.now + 24 * 60 * MINUTE);
    w.run_until(&mut a, 0, |a| outcome(a, sixth).is_some(), 25 * 60 * MINUTE);
    assert!(matches!(outcome(&a, sixth), Some(ChatsEvent::CommandSucceeded { .. })));
    // 10 pending polls a minute: 25 queued polls never see a 429.
    let polls: Vec<CallId> = (0..25).map(|_| a.client.command(ChatsCommand::Pending { since: None }, w.now).unwrap()).collect();
    w.run_until(&mut a, 0, |a| polls.iter().all(|c| outcome(a, *c).is_some()), 10 * MINUTE);
    assert_eq!(w.sandbox.with_state(|s| s.moltchats.social.rate_limited), 0);
}

#[test]
fn unexpected_shapes_and_non_iso_timestamps_are_handled() {
    let mut w = World::new();
    let mut a = w.agent("lenient", 1);
    w.sandbox.with_state(|s| s.moltchats.social.faults.non_iso_timestamps = true);
    let p = w.run(&mut a, 0, json!({"op":"pending"})).unwrap();
    assert_eq!(p["checked_at"], w.now.to_string(), "kept verbatim");
    // A field of an unexpected type is kept as sent, not lost, and the call succeeds.
    let call = a.client.command(ChatsCommand::Friends {}, w.now).unwrap();
    let Output::Http { id, .. } = a.client.poll_output() else { panic!() };
    let resp = crate::io::response_from_parts(200, &[], br#"{"friends":"odd"}"#.to_vec()).unwrap();
    a.client.handle_response(id, resp, w.now).unwrap();
    w.drain(&mut a, 0);
    match outcome(&a, call) {
        Some(ChatsEvent::CommandSucceeded { result, body, .. }) => {
            assert_eq!(serde_json::to_value(result).unwrap(), json!({"friends": "odd"}));
            assert_eq!(body, &json!({"friends": "odd"}));
        }
        other => panic!("{other:?}"),
    }
    // A 2xx body that is not an object fails the call cleanly (no panic, no body echo).
    let call = a.client.command(ChatsCommand::Friends {}, w.now).unwrap();
    let Output::Http { id, .. } = a.client.poll_output() else { panic!() };
    let resp = crate::io::response_from_parts(200, &[], br#""secret-ish""#.to_vec()).unwrap();
    a.client.handle_response(id, resp, w.now).unwrap();
    w.drain(&mut a, 0);
    match outcome(&a, call) {
        Some(ChatsEvent::Call(CallEvent::CallFailed { error, .. })) => assert!(!error.message.contains("secret-ish"), "{error}"),
        other => panic!("{other:?}"),
    }
    // A result that is not the typed one still serialises for hosts.
    let r = ChatsResult::Ack(crate::chats::rest::Ack { ok: true.into(), ..Default::default() });
    assert_eq!(serde_json::to_value(r).unwrap(), json!({"ok": true}));
}

#[test]
fn a_fatal_auth_failure_with_throttled_calls_leaves_no_stale_deadline() {
    let mut w = World::new();
    let mut a = w.agent("stale_deadline", 1);
    a.client.set_limits(Limits { api_per_minute: 1, ..Limits::default() });
    let first = a.client.command(ChatsCommand::Blocks {}, w.now).unwrap();
    let held = a.client.command(ChatsCommand::Blocks {}, w.now).unwrap();
    assert_eq!(w.drain(&mut a, 0), Some(w.now + MINUTE));
    assert!(outcome(&a, first).is_some() && outcome(&a, held).is_none());
    // A server that never heard of this agent: the rotation fails for good.
    w.sandbox = Rc::new(Sandbox::new(SandboxConfig::default()));
    a.peer.sandbox = w.sandbox.clone();
    a.client.refresh(w.now).unwrap();
    let mut deadline = w.drain(&mut a, 0);
    assert!(a.events.iter().any(|e| matches!(e, ChatsEvent::Auth(AuthEvent::AuthFailed { .. }))));
    assert!(matches!(outcome(&a, held), Some(ChatsEvent::Call(CallEvent::CallFailed { .. }))), "the held call is failed, not forgotten");
    // A host that honours every deadline must not be woken forever at the same instant.
    for _ in 0..3 {
        let Some(at) = deadline else { break };
        assert!(at > w.now, "a deadline in the past: {at} at {}", w.now);
        w.now = at;
        a.client.handle_timeout(w.now);
        deadline = w.drain(&mut a, 0);
    }
}
