//! The whole bridge with a virtual clock: MoltChats is the sandbox's sans-IO REST + WebSocket
//! handler, the OpenClaw gateway is a scripted fake speaking the recorded frames
//! (`fixtures/chat.jsonl`: challenge, hello-ok, `started`, chat deltas and final).

use super::bridge::{Bridge, BridgeConfig, BridgeEvent};
use super::client::{GatewayConfig, GatewayEvent};
use super::tests::config as gateway_config;
use crate::chats::{ChatsCommand, ChatsEvent, ChatsResult};
use super::bridge::ConnectorEvent;
use crate::auth::{AuthEvent, AuthHow};
use crate::io::{CallEvent, Output, SansIo};
use crate::{ChatsClient, ChatsConfig};
use moltlink_sandbox::moltchats::gateway::{SessionId, WsOut};
use moltlink_sandbox::moltchats::social::{SEED_CHANNEL_ID, SEED_SERVER_ID};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};

const T0: u64 = 1_790_000_000_000;
const API: &str = "http://127.0.0.1/moltchats/api/v1";

fn recorded(i: usize) -> String {
    include_str!("fixtures/chat.jsonl").lines().nth(i).unwrap().to_owned()
}

/// A scripted OpenClaw gateway: recorded handshake; each new idempotency key is a run that
/// answers `started`, one delta and a final; a known key answers `in_flight` (still running)
/// or `ok` (done) like the real gateway.
#[derive(Default)]
struct FakeGateway {
    conn: Option<u64>,
    to_client: VecDeque<(u64, String)>,
    runs: HashMap<String, bool>,
    /// Runs whose reply waits for `release` (key, reply).
    held: Vec<(String, String)>,
    hold: bool,
    /// Close the socket right after the next `started` (a gateway restart mid-turn).
    crash_after_start: bool,
    /// Every user message the agent got, in order (resends included).
    prompts: Vec<String>,
    closes: Vec<u64>,
}

impl FakeGateway {
    fn answer(prompt: &str) -> String {
        if prompt.contains("Friend request") {
            return "ACCEPT — happy to connect".into();
        }
        let text = prompt.split("<<<MOLTCHATS_UNTRUSTED_TEXT\n").last().unwrap_or_default();
        let text = text.split("\nMOLTCHATS_UNTRUSTED_TEXT>>>").next().unwrap_or_default();
        if text.contains("stay quiet") { "NO_REPLY".into() } else { format!("agent says: {text}") }
    }
    fn receive(&mut self, conn: u64, text: &str) {
        let frame: Value = serde_json::from_str(text).unwrap();
        let id = frame["id"].as_str().unwrap().to_owned();
        match frame["method"].as_str().unwrap() {
            "connect" => {
                assert_eq!(frame["params"]["auth"]["token"], "fixture-token");
                self.to_client.push_back((conn, recorded(1).replace("\"id\":\"c1\"", &format!("\"id\":\"{id}\""))));
            }
            "chat.send" => {
                let key = frame["params"]["idempotencyKey"].as_str().unwrap().to_owned();
                let prompt = frame["params"]["message"].as_str().unwrap().to_owned();
                self.prompts.push(prompt.clone());
                let status = match self.runs.get(&key) {
                    Some(true) => "ok",
                    Some(false) => "in_flight",
                    None => "started",
                };
                self.to_client.push_back((conn, json!({"type":"res","id":id,"ok":true,"payload":{"runId":key,"status":status}}).to_string()));
                if status == "ok" {
                    return;
                }
                if self.crash_after_start {
                    self.crash_after_start = false;
                    self.runs.insert(key, false);
                    self.to_client.push_back((conn, "#close".into()));
                    return;
                }
                let reply = Self::answer(&prompt);
                if self.hold {
                    self.runs.insert(key.clone(), false);
                    self.held.push((key, reply));
                } else {
                    self.finish(conn, &key, &reply);
                }
            }
            other => panic!("unexpected method {other}"),
        }
    }
    fn finish(&mut self, conn: u64, key: &str, reply: &str) {
        self.runs.insert(key.to_owned(), true);
        let half = reply.len() / 2;
        let half = (0..=half).rev().find(|i| reply.is_char_boundary(*i)).unwrap();
        let delta = json!({"type":"event","event":"chat","payload":{"runId":key,"sessionKey":"agent:main:main","state":"delta","deltaText":&reply[..half]}});
        let fin = json!({"type":"event","event":"chat","payload":{"runId":key,"sessionKey":"agent:main:main","state":"final","message":{"role":"assistant","content":[{"type":"text","text":reply}]}}});
        self.to_client.push_back((conn, delta.to_string()));
        self.to_client.push_back((conn, fin.to_string()));
    }
    fn release(&mut self) {
        let conn = self.conn.unwrap();
        for (key, reply) in std::mem::take(&mut self.held) {
            self.finish(conn, &key, &reply);
        }
    }
}

struct World {
    sandbox: Sandbox,
    now: u64,
    bridge: Bridge,
    gateway: FakeGateway,
    /// MoltChats sockets: conn → sandbox session.
    chats_conns: BTreeMap<u64, SessionId>,
    events: Vec<ConnectorEvent>,
    /// The credentials file: what the bridge persisted last.
    disk: Vec<u8>,
}

fn bridge_config(credentials: Vec<u8>, seed: u8) -> BridgeConfig {
    BridgeConfig {
        chats: ChatsConfig { api_base: Some(API.into()), credentials: Some(credentials), seed: [seed; 32], refresh: Default::default() },
        ws_base: None,
        // Each process has its own random seed (so its own idempotency keys).
        gateway: GatewayConfig { seed: [seed.wrapping_add(100); 32], ..gateway_config() },
        auto_subscribe_dms: true,
        server_ids: vec![],
        server_channels: vec![SEED_CHANNEL_ID.into()],
        friends_refresh_ms: 300_000,
    }
}

fn register(sandbox: &Sandbox, name: &str, seed: u8, now: u64) -> (ChatsClient, Vec<u8>) {
    let mut c = ChatsClient::new(ChatsConfig { api_base: Some(API.into()), credentials: None, seed: [seed; 32], refresh: Default::default() }).unwrap();
    c.register(name, now).unwrap();
    let mut disk = vec![];
    serve_rest(sandbox, &mut c, now, &mut disk);
    (c, disk)
}

/// Drive a plain REST client until it waits (no sockets).
fn serve_rest(sandbox: &Sandbox, c: &mut ChatsClient, now: u64, disk: &mut Vec<u8>) -> Vec<ChatsEvent> {
    let mut events = vec![];
    loop {
        match c.poll_output() {
            Output::Http { id, request, .. } => c.handle_response(id, sandbox.handle(*request, now), now).unwrap(),
            Output::Persist { ticket, bytes } => {
                *disk = bytes.expose().clone();
                c.handle_persisted(ticket, now).unwrap()
            }
            Output::Event(e) => events.push(e),
            Output::Wait { .. } => return events,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn rest(sandbox: &Sandbox, c: &mut ChatsClient, command: ChatsCommand, now: u64) -> ChatsResult {
    let id = c.command(command, now).unwrap();
    let events = serve_rest(sandbox, c, now, &mut vec![]);
    *events
        .into_iter()
        .find_map(|e| match e {
            ChatsEvent::CommandSucceeded { call_id, result, .. } if call_id == id => Some(result),
            ChatsEvent::Call(CallEvent::CallFailed { call_id, error }) if call_id == id => panic!("{error}"),
            _ => None,
        })
        .expect("a result")
}

impl World {
    fn new() -> (Self, ChatsClient) {
        let sandbox = Sandbox::new(SandboxConfig::default());
        let (mut alice, credentials) = register(&sandbox, "alice_bridge", 1, T0);
        rest(&sandbox, &mut alice, ChatsCommand::ServerJoin { server_id: SEED_SERVER_ID.into() }, T0);
        let (mut bob, _) = register(&sandbox, "bob_remote", 2, T0);
        rest(&sandbox, &mut bob, ChatsCommand::ServerJoin { server_id: SEED_SERVER_ID.into() }, T0);
        let bridge = Bridge::new(bridge_config(credentials.clone(), 3)).unwrap();
        let mut w = World { sandbox, now: T0, bridge, gateway: FakeGateway::default(), chats_conns: BTreeMap::new(), events: vec![], disk: credentials };
        w.bridge.start(w.now).unwrap();
        w.drain();
        (w, bob)
    }

    fn flush(&mut self) -> bool {
        self.sandbox.ws_tick(self.now);
        let mut any = false;
        for (conn, sid) in self.chats_conns.clone() {
            for out in self.sandbox.ws_drain(sid) {
                any = true;
                match out {
                    WsOut::Text(text) => self.bridge.handle_ws_frame(conn, &text, self.now),
                    WsOut::Close(code, reason) => {
                        self.sandbox.ws_closed(sid);
                        self.chats_conns.remove(&conn);
                        self.bridge.handle_ws_closed(conn, code, &reason, self.now);
                        break;
                    }
                }
            }
        }
        while let Some((conn, text)) = self.gateway.to_client.pop_front() {
            any = true;
            if self.gateway.conn != Some(conn) {
                continue;
            }
            if text == "#close" {
                self.gateway.conn = None;
                self.bridge.handle_ws_closed(conn, 1012, "service restart", self.now);
            } else {
                self.bridge.handle_ws_frame(conn, &text, self.now);
            }
        }
        any
    }

    fn drain(&mut self) -> Option<u64> {
        for _ in 0..100_000 {
            if self.flush() {
                continue;
            }
            match self.bridge.poll_output() {
                Output::Http { id, request, .. } => {
                    let response = self.sandbox.handle(*request, self.now);
                    self.bridge.handle_response(id, response, self.now).unwrap();
                }
                Output::Persist { ticket, bytes } => {
                    self.disk = bytes.expose().clone();
                    self.bridge.handle_persisted(ticket, self.now).unwrap()
                }
                Output::Event(e) => {
                    assert!(!format!("{e:?}").contains("fixture-token"));
                    self.events.push(e)
                }
                Output::WsOpen { conn, url } => {
                    if self.bridge.is_gateway_conn(conn) {
                        assert_eq!(url.expose(), "ws://127.0.0.1:18789");
                        self.gateway.conn = Some(conn);
                        self.bridge.handle_ws_open(conn, self.now);
                        self.gateway.to_client.push_back((conn, recorded(0)));
                    } else {
                        let token = url.expose().split("token=").nth(1).map(str::to_owned);
                        let sid = self.sandbox.ws_open(token.as_deref(), self.now);
                        self.chats_conns.insert(conn, sid);
                        self.bridge.handle_ws_open(conn, self.now);
                    }
                }
                Output::WsSend { conn, text } => {
                    if let Some(sid) = self.chats_conns.get(&conn) {
                        self.sandbox.ws_receive(*sid, &text, self.now);
                    } else if self.gateway.conn == Some(conn) {
                        self.gateway.receive(conn, &text);
                    }
                }
                Output::WsClose { conn, .. } => {
                    if let Some(sid) = self.chats_conns.remove(&conn) {
                        self.sandbox.ws_closed(sid);
                    } else if self.gateway.conn == Some(conn) {
                        self.gateway.conn = None;
                        self.gateway.closes.push(conn);
                    }
                }
                Output::Wait { until_ms } => return until_ms,
            }
        }
        panic!("livelock");
    }

    /// The host dies (SIGKILL: no goodbye on any socket) and starts again from its file.
    fn kill_and_restart(&mut self, seed: u8) {
        for sid in std::mem::take(&mut self.chats_conns).into_values() {
            self.sandbox.ws_closed(sid);
        }
        self.gateway.conn = None;
        self.gateway.held.clear();
        self.bridge = Bridge::new(bridge_config(self.disk.clone(), seed)).unwrap();
        self.bridge.start(self.now).unwrap();
        self.drain();
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while let Some(at) = self.drain().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.bridge.handle_timeout(self.now);
        }
        self.now = end;
        self.bridge.handle_timeout(self.now);
        self.drain();
    }

    fn bridge_events(&self) -> Vec<BridgeEvent> {
        self.events.iter().filter_map(|e| match e {
            ConnectorEvent::Bridge(b) => Some(b.clone()),
            _ => None,
        }).collect()
    }

    /// The channel's messages by alice (the bridged agent), oldest first.
    fn replies_in(&mut self, bob: &mut ChatsClient, channel: &str) -> Vec<String> {
        let ChatsResult::Messages(messages) = rest(&self.sandbox, bob, ChatsCommand::History { channel_id: channel.into(), limit: Some(100), before: None }, self.now) else {
            panic!("messages")
        };
        messages.into_iter().rev().filter(|m| m.agent.get().and_then(|a| a.username.as_deref()) == Some("alice_bridge")).filter_map(|m| m.content.into_option()).collect()
    }

    fn post(&mut self, bob: &mut ChatsClient, channel: &str, text: &str) {
        rest(&self.sandbox, bob, ChatsCommand::MessageSend { channel_id: channel.into(), content: text.into(), content_type: None }, self.now);
    }
}

#[test]
fn bridged_round_trip_with_restart_mid_turn_and_4001() {
    let (mut w, mut bob) = World::new();
    w.advance(1_000);
    assert!(w.bridge.gateway().is_ready(), "{:?}", w.events);
    assert!(w.bridge_events().contains(&BridgeEvent::ChannelsSubscribed { channels: vec![SEED_CHANNEL_ID.into()], server_id: None }));

    // 1. A plain round trip: bob's message reaches the agent with context; the reply lands.
    w.post(&mut bob, SEED_CHANNEL_ID, "hello agent, how are you?");
    w.advance(1_000);
    let prompt = w.gateway.prompts.last().unwrap().clone();
    assert!(prompt.contains("@bob_remote in channel"), "{prompt}");
    assert!(prompt.contains("untrusted data"));
    assert_eq!(w.replies_in(&mut bob, SEED_CHANNEL_ID), ["agent says: hello agent, how are you?"]);

    // 2. The gateway restarts right after accepting a turn: the resend reuses the key, the
    //    gateway answers `in_flight`, and the reply is posted once.
    w.gateway.crash_after_start = true;
    w.post(&mut bob, SEED_CHANNEL_ID, "second question");
    w.advance(60_000);
    let keys: Vec<_> = w.gateway.prompts.iter().filter(|p| p.contains("second question")).collect();
    assert_eq!(keys.len(), 2, "sent, then resent after the restart");
    assert!(w.events.iter().any(|e| matches!(e, ConnectorEvent::Gateway(GatewayEvent::TurnStarted { status, .. }) if status == "in_flight")));
    assert_eq!(w.replies_in(&mut bob, SEED_CHANNEL_ID), ["agent says: hello agent, how are you?", "agent says: second question"]);

    // 3. MoltChats closes the socket with 4001 while the agent is thinking: the bridge refreshes,
    //    reconnects, and the reply still lands once, in order after a quiet message.
    w.gateway.hold = true;
    w.post(&mut bob, SEED_CHANNEL_ID, "third one");
    w.post(&mut bob, SEED_CHANNEL_ID, "please stay quiet");
    w.advance(1_000);
    let sid = *w.chats_conns.values().next().unwrap();
    w.sandbox.ws_close(sid, 4001, "Token revoked");
    w.advance(5_000);
    assert!(w.events.iter().any(|e| matches!(e, ConnectorEvent::Chats(ChatsEvent::Auth(AuthEvent::Authenticated { how: AuthHow::Refresh, .. })))));
    w.gateway.hold = false;
    w.gateway.release();
    w.advance(60_000);
    let replies = w.replies_in(&mut bob, SEED_CHANNEL_ID);
    assert_eq!(replies, ["agent says: hello agent, how are you?", "agent says: second question", "agent says: third one"]);
    assert!(w.bridge_events().iter().any(|e| matches!(e, BridgeEvent::ReplySkipped { .. })));
    // Our own replies came back over the socket but were never forwarded to the agent.
    let forwarded = w.bridge_events().iter().filter(|e| matches!(e, BridgeEvent::MessageForwarded { .. })).count();
    assert_eq!(forwarded, 4);
    assert!(w.gateway.prompts.iter().all(|p| !p.contains("@alice_bridge")));
    assert!(w.bridge.fatal().is_none());
}

#[test]
fn friend_request_is_decided_by_the_agent_and_its_dm_is_bridged() {
    let (mut w, mut bob) = World::new();
    w.advance(1_000);
    rest(&w.sandbox, &mut bob, ChatsCommand::FriendRequest { target: "alice_bridge".into() }, w.now);
    // The pending poll (every 60 s) finds the request; the agent answers ACCEPT.
    w.advance(65_000);
    let events = w.bridge_events();
    assert!(events.iter().any(|e| matches!(e, BridgeEvent::FriendRequestForwarded { from: Some(f), .. } if f == "bob_remote")), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, BridgeEvent::FriendRequestDecided { accept: true, .. })));
    let dm = events
        .iter()
        .find_map(|e| match e {
            BridgeEvent::DmSubscribed { channel, .. } => Some(channel.clone()),
            _ => None,
        })
        .expect("the new friend's DM channel is subscribed");
    w.advance(1_000);
    w.post(&mut bob, &dm, "hi friend");
    w.advance(2_000);
    assert!(w.gateway.prompts.last().unwrap().contains("in a direct message"));
    assert_eq!(w.replies_in(&mut bob, &dm), ["agent says: hi friend"]);
    // The next poll does not ask again.
    w.advance(120_000);
    assert_eq!(w.bridge_events().iter().filter(|e| matches!(e, BridgeEvent::FriendRequestForwarded { .. })).count(), 1);
}

#[test]
fn a_refused_gateway_is_fatal_for_the_bridge() {
    let (mut w, _bob) = World::new();
    // Swap the fake's hello for the recorded token refusal on the next connect.
    let conn = w.gateway.conn.unwrap();
    w.bridge.handle_ws_closed(conn, 1006, "", w.now);
    w.gateway.conn = None;
    let refusal = include_str!("fixtures/bad_token.jsonl").lines().nth(1).unwrap().to_owned();
    // Next open: answer the connect with the refusal instead of hello-ok.
    let at = w.drain().unwrap();
    w.now = at;
    w.bridge.handle_timeout(at);
    loop {
        match w.bridge.poll_output() {
            Output::WsOpen { conn, .. } if w.bridge.is_gateway_conn(conn) => {
                w.bridge.handle_ws_open(conn, w.now);
                w.bridge.handle_ws_frame(conn, &recorded(0), w.now);
            }
            Output::WsSend { conn, text } if w.bridge.is_gateway_conn(conn) => {
                let id = serde_json::from_str::<Value>(&text).unwrap()["id"].as_str().unwrap().to_owned();
                w.bridge.handle_ws_frame(conn, &refusal.replace("\"id\":\"c1\"", &format!("\"id\":\"{id}\"")), w.now);
            }
            Output::Wait { .. } => break,
            _ => {}
        }
    }
    assert!(w.bridge.fatal().is_some_and(|f| f.contains("AUTH_TOKEN_MISMATCH")), "{:?}", w.bridge.fatal());
}

/// Killed while the agent is thinking about a message: the read position was saved only up to
/// the last turn that ended, so the restarted bridge hands that message to the agent again and
/// its reply lands once; what was answered before the kill is not handed again.
#[test]
fn a_host_killed_mid_turn_retries_the_turn_after_the_restart() {
    let (mut w, mut bob) = World::new();
    w.advance(1_000);
    w.post(&mut bob, SEED_CHANNEL_ID, "answered before the crash");
    w.advance(5_000);
    w.gateway.hold = true;
    w.post(&mut bob, SEED_CHANNEL_ID, "asked just before the crash");
    w.advance(5_000); // delivered, turn running; any saves have happened
    let asked = |w: &World, text: &str| w.gateway.prompts.iter().filter(|p| p.contains(text)).count();
    assert_eq!(asked(&w, "asked just before the crash"), 1);
    w.gateway.hold = false;
    w.kill_and_restart(4);
    w.advance(60_000);
    assert_eq!(asked(&w, "asked just before the crash"), 2, "the unfinished turn is retried");
    assert_eq!(asked(&w, "answered before the crash"), 1, "a finished turn is not");
    assert_eq!(w.replies_in(&mut bob, SEED_CHANNEL_ID), ["agent says: answered before the crash", "agent says: asked just before the crash"]);
    let late = w.events.iter().any(|e| matches!(e, ConnectorEvent::Chats(ChatsEvent::Realtime(crate::chats::RealtimeEvent::Message { backfilled: true, .. }))));
    assert!(late, "the retried message came from the backfill");
}
