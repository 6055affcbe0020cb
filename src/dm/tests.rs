//! Whole-conversation tests: two agents' cores driven against the sandbox's Moltbook handler
//! on a virtual clock (no sockets), so hours of heartbeats take milliseconds and replay exactly.

use super::*;
use crate::io::{CallEvent, Output, SansIo};
use moltlink_sandbox::moltbook::Shape;
use crate::testkit::{Driver, Peer};
use moltlink_sandbox::Sandbox;
use std::rc::Rc;

const T0: u64 = 1_790_000_000_000;
const API: &str = "http://127.0.0.1/moltbook/api/v1";
const BARE: &str = "http://127.0.0.1/moltbook-bare/api/v1";
const MIN: u64 = 60_000;

/// An agent: its driven client and its API key.
struct Agent {
    d: Driver<DmClient, Moltbook>,
    key: String,
}

impl std::ops::Deref for Agent {
    type Target = Driver<DmClient, Moltbook>;
    fn deref(&self) -> &Self::Target {
        &self.d
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.d
    }
}

/// The sandbox's Moltbook handler as an agent's peer (redirects are never followed), with
/// optional seeded faults.
struct Moltbook {
    sandbox: Rc<Sandbox>,
    /// "METHOD path" of every request, in order.
    sent: Vec<String>,
    /// When set: each request may be dropped before the server, lose its response after the
    /// server acted, reach the server twice, or get a 503.
    faults: Option<rand_chacha::ChaCha8Rng>,
    injected: u32,
}

impl Peer for Moltbook {
    fn http(&mut self, request: http::Request<Vec<u8>>, now: u64) -> Result<http::Response<Vec<u8>>, String> {
        self.sent.push(format!("{} {}", request.method(), request.uri().path().trim_start_matches("/moltbook/api/v1")));
        let Some(rng) = &mut self.faults else { return Ok(self.sandbox.handle(request, now)) };
        let roll = rand_core::Rng::next_u64(rng) % 10;
        self.injected += u32::from(roll < 4);
        match roll {
            0 => Err("connection reset".into()),
            1 => {
                let _ = self.sandbox.handle(request, now);
                Err("response lost".into())
            }
            2 => {
                let _ = self.sandbox.handle(request.clone(), now);
                Ok(self.sandbox.handle(request, now))
            }
            3 => Ok(http::Response::builder().status(503).body(b"{}".to_vec()).unwrap()),
            _ => Ok(self.sandbox.handle(request, now)),
        }
    }
}

struct World {
    sandbox: Rc<Sandbox>,
    now: u64,
    a: Agent,
    b: Agent,
}

fn agent(sandbox: &Rc<Sandbox>, name: &str, owner: &str, seed: u8) -> Agent {
    let key = sandbox.moltbook_add_agent(name, owner).unwrap();
    client_agent(sandbox, open(API, &key, seed), &key)
}

/// An agent around `client`, recording what a host could log (outputs' Debug, events' JSON).
fn client_agent(sandbox: &Rc<Sandbox>, client: DmClient, key: &str) -> Agent {
    let peer = Moltbook { sandbox: sandbox.clone(), sent: vec![], faults: None, injected: 0 };
    let mut d = Driver::new(client, peer, T0);
    d.record = true;
    d.allow_persists = false;
    // A livelock fails the test quickly.
    d.max_steps = 200;
    Agent { d, key: key.to_owned() }
}

fn open(base: &str, key: &str, seed: u8) -> DmClient {
    DmClient::new(DmConfig { api_base: Some(base.into()), api_key: Secret::new(key.to_owned()), seed: [seed; 32], heartbeat: HeartbeatPolicy::default(), agent_name: None })
        .unwrap()
}

impl Agent {
    /// Serve outputs from the sandbox until the core waits, at `now`.
    fn drain(&mut self, now: u64) -> Option<u64> {
        self.now_ms = now;
        self.drive()
    }

    fn sent(&self) -> &Vec<String> {
        &self.peer.sent
    }

    fn take_events(&mut self) -> Vec<DmEvent> {
        std::mem::take(&mut self.events)
    }

    fn dm_events(&self) -> Vec<&DmEvent> {
        self.events.iter().collect()
    }

    fn escalations(&self) -> Vec<(EscalationReason, String)> {
        self.dm_events()
            .into_iter()
            .filter_map(|e| match e {
                DmEvent::DmEscalation { reason, text, .. } => Some((*reason, text.untrusted_text.clone())),
                _ => None,
            })
            .collect()
    }

    fn outcome(&self, call: CallId) -> &DmEvent {
        self.events
            .iter()
            .find(|e| matches!(e, DmEvent::Call(CallEvent::CallSucceeded { call_id, .. }) | DmEvent::Call(CallEvent::CallFailed { call_id, .. }) if *call_id == call))
            .unwrap_or_else(|| panic!("no outcome for call {call}: {:?}", self.events))
    }

    fn body(&self, call: CallId) -> serde_json::Value {
        match self.outcome(call) {
            DmEvent::Call(CallEvent::CallSucceeded { body, .. }) => body.clone(),
            other => panic!("call {call} failed: {other:?}"),
        }
    }

    fn count(&self, path: &str) -> usize {
        self.sent().iter().filter(|p| p.as_str() == path).count()
    }
}

impl World {
    fn new() -> Self {
        let sandbox = Rc::new(Sandbox::default());
        let a = agent(&sandbox, "AliceBot", "alice_x", 1);
        let b = agent(&sandbox, "BensBot", "bensmith", 2);
        Self { sandbox, now: T0, a, b }
    }

    fn run(&mut self, which: char, command: DmCommand) -> CallId {
        let (agent, now) = self.pick(which);
        let call = agent.client.command(command, now).unwrap();
        agent.drain(now);
        call
    }

    fn pick(&mut self, which: char) -> (&mut Agent, u64) {
        let agent = if which == 'a' { &mut self.a } else { &mut self.b };
        (agent, self.now)
    }

    /// Let virtual time pass for both agents, firing every deadline on the way.
    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        loop {
            let next = [self.a.drain(self.now), self.b.drain(self.now)].into_iter().flatten().min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.a.client.handle_timeout(self.now);
                    self.b.client.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// A asks B for a conversation; returns its id.
    fn a_requests_b(&mut self) -> String {
        let c = self.run('a', request_to("BensBot", "Hello from Alice, may we chat?"));
        conversation_id(&self.a.body(c))
    }

    /// Run `command` on one side and return the successful body.
    fn ok(&mut self, which: char, command: DmCommand) -> serde_json::Value {
        let c = self.run(which, command);
        if which == 'a' { self.a.body(c) } else { self.b.body(c) }
    }

    fn start_heartbeats(&mut self) {
        self.a.client.start_heartbeat(self.now);
        self.b.client.start_heartbeat(self.now);
        self.a.drain(self.now);
        self.b.drain(self.now);
    }
}

fn request_to(name: &str, message: &str) -> DmCommand {
    DmCommand::Request { to: Some(name.into()), to_owner: None, message: message.into() }
}

fn send(id: &str, message: &str, needs_human_input: bool) -> DmCommand {
    DmCommand::Send { conversation_id: id.into(), message: message.into(), needs_human_input }
}

fn conversation_id(body: &serde_json::Value) -> String {
    parse::conversation_id(body).expect("response names the conversation")
}

/// The issue's scenario, in the core: request, heartbeats on both sides, owner approval in
/// the sandbox, an exchange with one `needs_human_input` message, then a block.
#[test]
fn request_approve_talk_escalate_block() {
    let mut w = World::new();
    w.start_heartbeats();
    let call = w.run('a', request_to("BensBot", "Hi! My human wants to ask your human about the project."));
    let cid = conversation_id(&w.a.body(call));
    assert_eq!(w.a.client.state_of(&cid), ConvState::Requested);
    w.a.take_events();
    w.b.take_events();

    // A's heartbeat sees nothing; B's sees the request and asks its human (once).
    w.advance(2 * MIN);
    assert!(w.a.escalations().is_empty(), "{:?}", w.a.events);
    let b_esc = w.b.escalations();
    assert_eq!(b_esc, vec![(EscalationReason::NewRequest, "Hi! My human wants to ask your human about the project.".into())]);
    assert_eq!(w.b.client.state_of(&cid), ConvState::AwaitingOwner);
    // Nothing approves on the owner's behalf.
    assert_eq!(w.b.count(&format!("POST /agents/dm/requests/{cid}/approve")), 0);
    w.advance(10 * MIN);
    assert_eq!(w.b.escalations().len(), 1, "a pending request escalates once");

    // B cannot send yet (judged after asking the server: the owner might have approved in the
    // dashboard meanwhile); B's owner approves in the sandbox's dashboard.
    let c = w.run('b', send(&cid, "hello there", false));
    match w.b.outcome(c) {
        DmEvent::Call(CallEvent::CallFailed { error, .. }) => {
            assert_eq!(error.code.as_deref(), Some("INVALID_STATE"));
            assert!(error.message.contains("ask your human to approve"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    w.sandbox.moltbook_owner_decide(&cid, true, false).unwrap();
    w.a.take_events();
    w.advance(40 * MIN);
    assert_eq!(w.a.client.state_of(&cid), ConvState::Approved, "A learns the approval from its inbox listing");
    assert_eq!(w.b.client.state_of(&cid), ConvState::Approved);
    assert!(w.a.dm_events().iter().any(|e| matches!(e, DmEvent::DmStateChanged { to: ConvState::Approved, .. })));

    // Exchange: A's routine message, B's question for A's human.
    w.ok('a', send(&cid, "What time is the meeting?", false));
    w.ok('b', send(&cid, "Question for your human: is 3pm OK?", true));
    w.a.take_events();
    w.b.take_events();
    // Both heartbeats have backed off while idle: within 35 min each checks at least once.
    w.advance(35 * MIN);
    assert_eq!(w.a.escalations(), vec![(EscalationReason::NeedsHumanInput, "Question for your human: is 3pm OK?".into())]);
    assert!(w.b.escalations().is_empty(), "a routine message is not escalated: {:?}", w.b.events);
    let unread_b = w.b.dm_events().into_iter().any(|e| matches!(e, DmEvent::DmUnread { conversations } if conversations[0].conversation_id == cid));
    assert!(unread_b, "B is told about the unread message: {:?}", w.b.events);
    assert_eq!(w.sandbox.moltbook_stats().read_calls, 0, "the heartbeat never reads a conversation");

    // The host reads when it wants to: messages arrive as untrusted text; the flag escalates once.
    w.ok('a', DmCommand::Read { conversation_id: cid.clone() });
    let messages: Vec<_> = w.a.dm_events().into_iter().filter(|e| matches!(e, DmEvent::DmMessage { .. })).cloned().collect();
    assert_eq!(messages.len(), 1, "only the other agent's message: {messages:?}");
    assert!(matches!(&messages[0], DmEvent::DmMessage { needs_human_input: true, from: Some(f), .. } if f == "BensBot"));
    assert_eq!(w.a.escalations().len(), 1, "already escalated from the heartbeat preview");
    let json = serde_json::to_value(&messages[0]).unwrap();
    assert_eq!(json["type"], "dm_message");
    assert_eq!(json["text"]["untrusted_text"], "Question for your human: is 3pm OK?");

    // B's owner blocks A: A's next send is refused by the server, then A's next request locally.
    w.sandbox.moltbook_owner_block("BensBot", "AliceBot").unwrap();
    let c = w.run('a', send(&cid, "Are you there?", false));
    assert!(matches!(w.a.outcome(c), DmEvent::Call(CallEvent::CallFailed { error, .. }) if error.status == 403));
    assert_eq!(w.a.client.state_of(&cid), ConvState::Blocked);
    let err = w.a.client.command(request_to("bensbot", "Can we talk again please?"), w.now).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidState);
    assert!(err.message.contains("blocked"), "{err}");

    // A fresh client (a new process) asks the server, which refuses with Moltbook's error shape.
    let mut fresh = client_agent(&w.sandbox, open(API, &w.a.key, 9), &w.a.key.clone());
    let c = fresh.client.command(request_to("BensBot", "Can we talk again please?"), w.now).unwrap();
    fresh.drain(w.now);
    match fresh.outcome(c) {
        DmEvent::Call(CallEvent::CallFailed { error, .. }) => {
            assert_eq!(error.status, 403);
            assert!(error.message.contains("blocked you (hint: "), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let err = fresh.client.command(request_to("BensBot", "Can we talk again please?"), w.now).unwrap_err();
    assert!(err.message.contains("blocked"), "the refusal is remembered: {err}");

    for agent in [&w.a, &w.b, &fresh] {
        for line in &agent.transcript {
            assert!(!line.contains(&agent.key), "API key leaked into {line}");
        }
        assert!(!format!("{:?}", agent.client).contains(&agent.key));
    }
}

#[test]
fn illegal_transitions_are_clear_errors_before_sending() {
    let mut w = World::new();
    let call = w.run('a', request_to("BensBot", "Hello from Alice, may we chat?"));
    let cid = conversation_id(&w.a.body(call));

    // Send/read before approval: refused after a look at the server's lists (an owner may
    // approve unseen), without sending the message.
    for command in [send(&cid, "too early", false), DmCommand::Read { conversation_id: cid.clone() }] {
        w.a.peer.sent.clear();
        let c = w.run('a', command);
        match w.a.outcome(c) {
            DmEvent::Call(CallEvent::CallFailed { error, .. }) => {
                assert_eq!(error.code.as_deref(), Some("INVALID_STATE"));
                assert!(error.message.contains("not approved yet"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*w.a.sent(), vec!["GET /agents/dm/check", "GET /agents/dm/conversations"]);
    }
    let sent_before = w.a.sent().len();
    // Approving our own request, a second request to the same agent: refused at once.
    let err = w.a.client.command(DmCommand::Approve { conversation_id: cid.clone() }, w.now).unwrap_err();
    assert!(err.message.contains("only the other agent's owner"), "{err}");
    let err = w.a.client.command(request_to("@bensbot", "Hello again, may we chat?"), w.now).unwrap_err();
    assert!(err.message.contains("already waiting") && err.message.contains(&cid), "{err}");
    assert_eq!(w.a.sent().len(), sent_before, "nothing was sent");

    // B approves on its owner's word; approving twice is refused.
    w.ok('b', DmCommand::Check {});
    assert_eq!(w.b.client.state_of(&cid), ConvState::AwaitingOwner);
    w.ok('b', DmCommand::Approve { conversation_id: cid.clone() });
    assert_eq!(w.b.client.state_of(&cid), ConvState::Approved);
    let err = w.b.client.command(DmCommand::Approve { conversation_id: cid.clone() }, w.now).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidState);
    assert!(err.message.contains("already approved"), "{err}");
    let err = w.b.client.command(DmCommand::Reject { conversation_id: cid.clone(), block: true }, w.now).unwrap_err();
    assert!(err.message.contains("already approved"), "{err}");
    let err = w.b.client.command(request_to("AliceBot", "Let us open another one"), w.now).unwrap_err();
    assert!(err.message.contains("already exists"), "one conversation per pair: {err}");
}

#[test]
fn reject_and_block_then_requests_are_refused() {
    let mut w = World::new();
    let cid = w.a_requests_b();
    w.ok('b', DmCommand::Check {});
    assert_eq!(w.b.escalations().len(), 1);
    w.ok('b', DmCommand::Reject { conversation_id: cid.clone(), block: true });
    assert_eq!(w.b.client.state_of(&cid), ConvState::Blocked);
    let err = w.b.client.command(DmCommand::Approve { conversation_id: cid.clone() }, w.now).unwrap_err();
    assert!(err.message.contains("blocked"), "{err}");

    // A asks again: the server refuses (403, Moltbook's shape) and A remembers.
    w.a.take_events();
    let c = w.run('a', DmCommand::Request { to: None, to_owner: Some("@bensmith".into()), message: "Please reconsider, it matters".into() });
    assert!(matches!(w.a.outcome(c), DmEvent::Call(CallEvent::CallFailed { error, .. }) if error.status == 403 && error.message.contains("blocked")));
    assert!(w.a.dm_events().iter().any(|e| matches!(e, DmEvent::DmStateChanged { to: ConvState::Blocked, .. })));
    let err = w.a.client.command(DmCommand::Request { to: None, to_owner: Some("bensmith".into()), message: "Please reconsider, it matters".into() }, w.now).unwrap_err();
    assert!(err.message.contains("blocked: no new requests"), "{err}");
}

#[test]
fn a_plain_reject_lets_them_ask_again() {
    let mut w = World::new();
    let cid = w.a_requests_b();
    w.ok('b', DmCommand::Check {});
    w.ok('b', DmCommand::Reject { conversation_id: cid.clone(), block: false });
    assert_eq!(w.b.client.state_of(&cid), ConvState::Rejected);
    w.a.client = open(API, &w.a.key, 5);
    w.a.take_events();
    let c = w.run('a', request_to("BensBot", "Hello again, may we chat now?"));
    assert_eq!(conversation_id(&w.a.body(c)), cid, "one conversation per pair: the same one reopens");
    w.b.take_events();
    w.ok('b', DmCommand::Check {});
    assert_eq!(w.b.client.state_of(&cid), ConvState::AwaitingOwner);
    assert_eq!(w.b.escalations(), vec![(EscalationReason::NewRequest, "Hello again, may we chat now?".into())]);
}

#[test]
fn validation_happens_before_sending() {
    let mut c = open(API, "moltbook_sk_test", 1);
    let bad = [
        (DmCommand::Request { to: Some("x".into()), to_owner: Some("y".into()), message: "long enough text".into() }, "exactly one"),
        (DmCommand::Request { to: None, to_owner: Some("  @ ".into()), message: "long enough text".into() }, "exactly one"),
        (request_to("BensBot", "too short"), "10-1000"),
        (request_to("BensBot", &"é".repeat(1001)), "10-1000"),
        (send("../agents/me", "hi", false), "invalid conversation id"),
        (send("abc", "   ", false), "empty"),
        (DmCommand::Approve { conversation_id: String::new() }, "invalid conversation id"),
    ];
    for (command, words) in bad {
        let err = c.command(command.clone(), T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{command:?}");
        assert!(err.message.contains(words), "{command:?}: {err}");
    }
    // 10 and 1000 characters (not bytes) are accepted; the '@' of a handle is stripped.
    c.command(request_to("BensBot", &"é".repeat(10)), T0).unwrap();
    c.command(DmCommand::Request { to: None, to_owner: Some("@bensmith".into()), message: "x".repeat(1000) }, T0).unwrap();
    let mut bodies = vec![];
    while let Output::Http { request, .. } = c.poll_output() {
        bodies.push(serde_json::from_slice::<serde_json::Value>(request.body()).unwrap());
    }
    assert_eq!(bodies[0]["to"], "BensBot");
    assert_eq!(bodies[1]["to_owner"], "bensmith");
    assert!(bodies[1].get("to").is_none());
}

#[test]
fn json_commands_parse_strictly() {
    let cmd = DmCommand::from_json(r#"{"command":"send","conversation_id":"c1","message":"hi","needs_human_input":true}"#).unwrap();
    assert_eq!(cmd, send("c1", "hi", true));
    assert_eq!(DmCommand::from_json(r#"{"command":"reject","conversation_id":"c1"}"#).unwrap(), DmCommand::Reject { conversation_id: "c1".into(), block: false });
    for bad in [r#"{"command":"approve_all"}"#, r#"{"command":"send","conversation_id":"c"}"#, "nope", r#"{"command":"check","extra":1}"#] {
        let err = DmCommand::from_json(bad).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{bad}");
        assert!(err.message.starts_with("invalid DM command"), "{err}");
    }
}

#[test]
fn a_new_process_syncs_before_judging_an_unknown_conversation() {
    let mut w = World::new();
    let cid = w.a_requests_b();
    // A restarted A knows nothing: sending asks the server's lists first, then refuses.
    w.a.client = open(API, &w.a.key, 3);
    w.a.peer.sent.clear();
    w.a.take_events();
    let c = w.run('a', send(&cid, "too early", false));
    match w.a.outcome(c) {
        DmEvent::Call(CallEvent::CallFailed { error, .. }) => assert_eq!(error.code.as_deref(), Some("UNKNOWN_CONVERSATION"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(*w.a.sent(), vec!["GET /agents/dm/check", "GET /agents/dm/conversations"]);

    // A restarted B approves by id (found among pending requests), and a restarted A can then send.
    w.b.client = open(API, &w.b.key, 4);
    w.b.take_events();
    w.ok('b', DmCommand::Approve { conversation_id: cid.clone() });
    w.a.client = open(API, &w.a.key, 5);
    w.a.take_events();
    w.ok('a', send(&cid, "Thanks for approving!", false));
    w.b.take_events();
    let c = w.run('b', DmCommand::Approve { conversation_id: "no-such-id".into() });
    assert!(matches!(w.b.outcome(c), DmEvent::Call(CallEvent::CallFailed { error, .. }) if error.code.as_deref() == Some("UNKNOWN_CONVERSATION")));
}

#[test]
fn idle_heartbeat_backs_off_and_activity_resets_it() {
    let mut w = World::new();
    w.a.client.start_heartbeat(w.now);
    w.a.drain(w.now);
    // A whole idle day costs a handful of checks: 1, 2, 4, 8, 16, then every 30 min (±10%).
    w.advance(24 * 60 * MIN);
    let checks = w.a.count("GET /agents/dm/check");
    eprintln!("idle day: {checks} checks, {} requests in all", w.a.sent().len());
    assert!((45..=60).contains(&checks), "{checks} checks in an idle day");
    assert_eq!(w.a.sent().len(), checks, "idle heartbeats only check");
    let waits: Vec<u64> = w.a.dm_events().iter().filter_map(|e| match e {
        DmEvent::DmChecked { next_check_at_ms, .. } => *next_check_at_ms,
        _ => None,
    }).collect();
    let gaps: Vec<u64> = waits.windows(2).map(|p| p[1] - p[0]).collect();
    // Waits double while idle (2, 4, 8 min… each ±10%), capped at 30 min (±10%).
    let near = |gap: u64, minutes: f64| (gap as f64) >= minutes * 0.9 * MIN as f64 - 1.0 && (gap as f64) <= minutes * 1.1 * MIN as f64 + 1.0;
    assert!(near(gaps[0], 4.0) && near(gaps[1], 8.0) && near(gaps[2], 16.0), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 33 * MIN), "{gaps:?}");

    // Activity brings the interval back to one minute.
    w.ok('b', request_to("AliceBot", "Hello from Ben, may we chat?"));
    w.a.take_events();
    w.advance(35 * MIN);
    let after: Vec<u64> = w.a.dm_events().iter().filter_map(|e| match e {
        DmEvent::DmChecked { has_activity: true, next_check_at_ms, .. } => *next_check_at_ms,
        _ => None,
    }).collect();
    assert!(after.len() >= 2, "checks about every minute while a request waits: {:?}", w.a.events);
}

#[test]
fn rate_limits_are_respected_with_every_hint() {
    for (shape, wait) in [(Shape::Documented, 30_000), (Shape::Captured, 120_000)] {
        let mut w = World::new();
        w.sandbox.moltbook_set_shape(shape);
        w.sandbox.moltbook_rate_limit_next("AliceBot", 1);
        let start = w.now;
        w.a.client.start_heartbeat(w.now);
        let next = w.a.drain(w.now).unwrap();
        assert!(w.a.dm_events().iter().any(|e| matches!(e, DmEvent::DmRateLimited { retry_after_ms, .. } if *retry_after_ms == wait)), "{:?}", w.a.events);
        assert!(next >= start + wait, "{shape:?}: next check {} ms later, hint {wait}", next - start);
        w.a.client.handle_timeout(start + wait - 1);
        w.a.drain(start + wait - 1);
        assert_eq!(w.a.count("GET /agents/dm/check"), 1, "no check during the cool-down");
        w.advance(wait + 2 * MIN);
        assert!(w.a.count("GET /agents/dm/check") >= 2);
        assert_eq!(w.sandbox.moltbook_stats().rate_limited, 1);
    }
}

/// The whole consent story against each generation of the server (PROTOCOL.md §2): the
/// documented one and the captured one (string counts, no requests route, statuses in the
/// main inbox, `sender`/`content` messages without `is_from_me`).
#[test]
fn both_generations_request_approve_and_talk() {
    for shape in [Shape::Documented, Shape::Captured] {
        let mut w = World::new();
        w.sandbox.moltbook_set_shape(shape);
        let cid = w.a_requests_b();
        assert_eq!(w.a.client.state_of(&cid), ConvState::Requested);
        w.ok('b', DmCommand::Check {});
        assert_eq!(w.b.client.state_of(&cid), ConvState::AwaitingOwner, "{shape:?}");
        assert_eq!(w.b.escalations().len(), 1, "{shape:?}");
        w.sandbox.moltbook_owner_decide(&cid, true, false).unwrap();
        w.ok('a', DmCommand::Conversations {});
        assert_eq!(w.a.client.state_of(&cid), ConvState::Approved, "{shape:?}");
        w.ok('a', send(&cid, "My own words, not news to me", false));
        w.ok('b', send(&cid, "Needs your human", true));
        w.ok('a', DmCommand::Read { conversation_id: cid.clone() });
        let messages: Vec<_> = w.a.dm_events().into_iter().filter_map(|e| match e {
            DmEvent::DmMessage { text, from, needs_human_input, .. } => Some((text.untrusted_text.clone(), from.clone(), *needs_human_input)),
            _ => None,
        }).collect();
        assert_eq!(messages, [("Needs your human".to_owned(), Some("BensBot".to_owned()), true)], "{shape:?}: only B's message");
        // The requests route: answered by the documented server, gone (404) from the captured one.
        let c = w.run('b', DmCommand::Requests {});
        match (shape, w.b.outcome(c)) {
            (Shape::Documented, DmEvent::Call(CallEvent::CallSucceeded { body, .. })) => assert_eq!(body["inbox"], "other"),
            (Shape::Captured, DmEvent::Call(CallEvent::CallFailed { error, .. })) => {
                assert_eq!(error.status, 404);
                assert_eq!(error.message, "Cannot GET /api/v1/agents/dm/requests");
            }
            (_, other) => panic!("{shape:?}: {other:?}"),
        }
    }
}

#[test]
fn the_key_goes_only_to_the_www_host() {
    for (base, words) in [
        ("https://moltbook.com/api/v1", "bare host"),
        ("http://moltbook.com/api/v1", "bare host"),
        ("http://www.moltbook.com/api/v1", "refusing"),
        ("https://evil.example/api/v1", "refusing"),
        ("https://www.moltbook.com.evil.example/api/v1", "refusing"),
        ("ftp://127.0.0.1/x", "http(s)"),
        ("not a url", "not a URL"),
    ] {
        let err = DmClient::new(DmConfig { api_base: Some(base.into()), api_key: Secret::new("k".into()), seed: [0; 32], heartbeat: HeartbeatPolicy::default(), agent_name: None }).unwrap_err();
        assert!(err.message.contains(words), "{base}: {err}");
    }
    for base in ["https://www.moltbook.com/api/v1/", "http://127.0.0.1:8787/moltbook/api/v1", "http://localhost/x", "http://[::1]:9/x"] {
        assert!(validate_api_base(base).is_ok(), "{base}");
    }
    let default = DmClient::new(DmConfig { api_base: None, api_key: Secret::new("k".into()), seed: [0; 32], heartbeat: HeartbeatPolicy::default(), agent_name: None }).unwrap();
    assert_eq!(default.api_base(), DEFAULT_API_BASE);
    assert!(DmClient::new(DmConfig { api_base: None, api_key: Secret::new("a b".into()), seed: [0; 32], heartbeat: HeartbeatPolicy::default(), agent_name: None }).is_err());
}

/// The sandbox's bare-host route answers 301 like the real bare host: the core reports it and
/// never follows, so the key never reaches the redirect target.
#[test]
fn a_redirect_is_refused_not_followed() {
    let w = World::new();
    let mut a = client_agent(&w.sandbox, open(BARE, &w.a.key, 1), &w.a.key.clone());
    let before = w.sandbox.moltbook_stats();
    let c = a.client.command(DmCommand::Check {}, w.now).unwrap();
    a.drain(w.now);
    match a.outcome(c) {
        DmEvent::Call(CallEvent::CallFailed { error, .. }) => {
            assert_eq!((error.status, error.code.as_deref()), (301, Some("REDIRECT_REFUSED")));
            assert!(error.message.contains("not followed") && error.message.contains("www.moltbook.com"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let after = w.sandbox.moltbook_stats();
    assert_eq!(after.bare_requests, before.bare_requests + 1);
    assert_eq!(after.requests_with_key, before.requests_with_key, "nothing reached the www. API");
    assert!(a.transcript.iter().all(|l| !l.contains(&a.key)));
}

/// A request the human has not answered yet (or unread messages the host leaves unread) is
/// not news at every check: the heartbeat backs off as if idle, and escalates only once.
#[test]
fn an_unanswered_request_does_not_keep_the_heartbeat_busy() {
    let mut w = World::new();
    w.ok('b', request_to("AliceBot", "Hello from Ben, may we chat?"));
    w.a.client.start_heartbeat(w.now);
    w.a.drain(w.now);
    w.advance(24 * 60 * MIN);
    let checks = w.a.count("GET /agents/dm/check");
    eprintln!("day with an unanswered request: {checks} checks, {} requests in all", w.a.sent().len());
    assert!((45..=60).contains(&checks), "{checks} checks in a day with one unanswered request");
    assert!(w.a.count("GET /agents/dm/conversations") <= checks, "at most one inbox listing per check");
    assert_eq!(w.a.escalations().len(), 1);
    assert_eq!(w.sandbox.moltbook_stats().read_calls, 0);
}

/// A failing heartbeat says so and backs off; a refused key stops it (the human must act).
#[test]
fn heartbeat_failures_are_reported() {
    let mut w = World::new();
    w.a.client.start_heartbeat(w.now);
    let Output::Http { id, .. } = w.a.client.poll_output() else { panic!("a check is due") };
    w.a.client.handle_transport_error(id, "connection refused", w.now).unwrap();
    let next = w.a.drain(w.now).expect("retried later");
    assert!(next > w.now + MIN, "backs off: {}", next - w.now);
    assert!(w.a.dm_events().iter().any(|e| matches!(e, DmEvent::DmHeartbeatFailed { next_check_at_ms: Some(_), .. })));

    let mut bad = client_agent(&w.sandbox, open(API, "moltbook_sk_wrong", 7), "moltbook_sk_wrong");
    bad.client.start_heartbeat(w.now);
    assert_eq!(bad.drain(w.now), None, "no further checks");
    let failed = bad.dm_events().into_iter().find_map(|e| match e {
        DmEvent::DmHeartbeatFailed { error, next_check_at_ms: None } => Some(error.clone()),
        _ => None,
    });
    assert_eq!(failed.map(|e| e.status), Some(401));
    assert!(bad.transcript.iter().all(|l| !l.contains("moltbook_sk_wrong")));
}

/// Faults lose no consent: many seeded runs where B's heartbeat and commands meet dropped
/// requests, lost responses (the server acted, the client never heard), duplicated requests and
/// 5xx answers while other agents keep asking B for conversations. Whatever happens, B's core
/// never sends an approve it was not told to send, and the one approve it is told to send
/// reaches the server.
#[test]
fn faults_never_approve_without_a_command() {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    let (mut faults, mut runs, mut commanded, mut reached) = (0u32, 0u32, 0u32, 0u32);
    for seed in 0..40u64 {
        let mut w = World::new();
        let others: Vec<Agent> = (0..3).map(|i| agent(&w.sandbox, &format!("Asker{i}"), &format!("owner{i}"), 10 + i as u8)).collect();
        let mut others = others;
        w.start_heartbeats();
        // B's peer injects the faults; the test's own choices draw from the same seeded stream.
        w.b.peer.faults = Some(ChaCha8Rng::seed_from_u64(seed));
        let mut approved_on_command = None;
        let mut ids: Vec<String> = Vec::new();
        for step in 0..60 {
            // Someone asks B (the others' own requests are served without faults).
            let asker = &mut others[step % 3];
            if let Ok(call) = asker.client.command(request_to("BensBot", &format!("Hello from {step}, may we chat?")), w.now) {
                asker.drain(w.now);
                if let DmEvent::Call(CallEvent::CallSucceeded { body, .. }) = asker.outcome(call) {
                    ids.push(conversation_id(body));
                }
            }
            // B does something on its own (never approve) or, once, approves on its human's word.
            let command = match w.b.peer.faults.as_mut().unwrap().next_u64() % 5 {
                _ if step == 45 && !ids.is_empty() => {
                    let id = ids[ids.len() - 1].clone();
                    approved_on_command = Some(id.clone());
                    DmCommand::Approve { conversation_id: id }
                }
                0 => DmCommand::Check {},
                1 => DmCommand::Requests {},
                2 => DmCommand::Conversations {},
                3 if !ids.is_empty() => DmCommand::Reject { conversation_id: ids[0].clone(), block: false },
                _ => DmCommand::Check {},
            };
            let _ = w.b.client.command(command, w.now);
            faults += w.b.drain_with_faults(w.now);
            w.now += w.b.peer.faults.as_mut().unwrap().next_u64() % (3 * MIN);
            w.b.client.handle_timeout(w.now);
            faults += w.b.drain_with_faults(w.now);
        }
        let approves: Vec<&String> = w.b.sent().iter().filter(|p| p.ends_with("/approve")).collect();
        match &approved_on_command {
            None => assert!(approves.is_empty(), "seed {seed}: approved without a command: {approves:?}"),
            Some(id) => assert!(
                approves.iter().all(|p| p.contains(id.as_str())),
                "seed {seed}: approved something other than {id}: {approves:?}"
            ),
        }
        runs += 1;
        commanded += u32::from(approved_on_command.is_some());
        reached += u32::from(!approves.is_empty());
    }
    println!("DM consent under faults: {runs} runs, {faults} faults injected, 0 approvals without a command; {commanded} approve commands, {reached} sent");
    assert!(faults > 500, "the faults were injected ({faults})");
    assert!(commanded > 20 && reached > 0, "the approve path was exercised ({commanded} commanded, {reached} sent)");
}

impl Agent {
    /// As `drain`, with the peer's faults on; returns the faults injected.
    fn drain_with_faults(&mut self, now: u64) -> u32 {
        let before = self.peer.injected;
        self.drain(now);
        self.peer.injected - before
    }
}
