//! The bridge (`moltlink connect`) under fire: another agent posts in a bridged channel; the
//! bridge (MoltChats realtime + the OpenClaw gateway socket) hands each message to the agent
//! and posts its reply, over a network that drops, delays, duplicates and reorders answers
//! and frames, kills either socket, restarts the gateway (its sockets close with 1012, opens
//! are refused while it is down) and kills the connector (restarted from its disk).
//! Invariant (issue 14): after the network heals, every message the other agent posted has
//! exactly one reply in the channel: no turn lost, none answered twice.
//!
//! The gateway is an in-process fake speaking the recorded frames (src/gateway/fixtures,
//! behaviour of host-tests/connector/fake-gateway.py): challenge → hello-ok; `chat.send` →
//! `started` then, after the agent's thinking time, a delta and a final; a resend of a running
//! key → `in_flight` (the run then finishes for whoever resent it), of a finished one → `ok`.

use crate::net::{self, Client, FaultStats, Faults, Host, Remote, Rng, T0, WsOut};
use moltlink::chats::{ChatsEvent, RealtimeEvent};
use moltlink::gateway::{Bridge, BridgeConfig, BridgeEvent, ClientInfo, ConnectorEvent, GatewayConfig, GatewayEvent};
use moltlink::io::Secret;
use moltlink::ChatsConfig;
use moltlink_sandbox::moltchats::social::SEED_CHANNEL_ID;
use moltlink_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const SEC: u64 = 1_000;
const GATEWAY_URL: &str = "ws://127.0.0.1:18789";
const TOKEN: &str = "fault-gateway-token";
/// Gateway session ids live above the sandbox's.
const GATEWAY_SID: u64 = 1 << 48;

fn recorded(i: usize) -> String {
    include_str!("../../src/gateway/fixtures/chat.jsonl").lines().nth(i).unwrap().to_owned()
}

enum Run {
    Running { due: u64, sid: u64, reply: String },
    Done,
}

struct Session {
    out: VecDeque<WsOut>,
    /// A close is queued: nothing more is sent.
    closing: bool,
    last_tick: u64,
}

/// The fake OpenClaw gateway.
struct Gateway {
    rng: Rng,
    sessions: BTreeMap<u64, Session>,
    next_sid: u64,
    runs: BTreeMap<String, Run>,
    down_until: u64,
    chat_sends: u64,
    resends: u64,
}

impl Gateway {
    fn send(&mut self, sid: u64, text: String) {
        if let Some(s) = self.sessions.get_mut(&sid).filter(|s| !s.closing) {
            s.out.push_back(WsOut::Text(text));
        }
    }

    fn receive(&mut self, sid: u64, text: &str, now: u64) {
        let frame: Value = serde_json::from_str(text).expect("the connector sends JSON");
        let id = frame["id"].as_str().unwrap_or_default().to_owned();
        match frame["method"].as_str() {
            Some("connect") => {
                assert_eq!(frame["params"]["auth"]["token"], TOKEN);
                self.send(sid, recorded(1).replace("\"id\":\"c1\"", &format!("\"id\":{}", json!(id))));
            }
            Some("chat.send") => {
                self.chat_sends += 1;
                let key = frame["params"]["idempotencyKey"].as_str().unwrap().to_owned();
                let prompt = frame["params"]["message"].as_str().unwrap_or_default();
                let status = match self.runs.get_mut(&key) {
                    Some(Run::Done) => "ok",
                    Some(Run::Running { sid: s, .. }) => {
                        *s = sid;
                        "in_flight"
                    }
                    None => {
                        let due = now + self.rng.below(20 * SEC);
                        self.runs.insert(key.clone(), Run::Running { due, sid, reply: reply_for(prompt) });
                        "started"
                    }
                };
                if status != "started" {
                    self.resends += 1;
                }
                self.send(sid, json!({"type":"res","id":id,"ok":true,"payload":{"runId":key,"status":status}}).to_string());
            }
            other => panic!("unexpected gateway method {other:?}"),
        }
    }

    fn tick(&mut self, now: u64) {
        let due: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| matches!(r, Run::Running { due, sid, .. } if *due <= now && self.sessions.get(sid).is_some_and(|s| !s.closing)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(Run::Running { sid, reply, .. }) = self.runs.insert(key.clone(), Run::Done) else { continue };
            let half = (0..=reply.len() / 2).rev().find(|i| reply.is_char_boundary(*i)).unwrap();
            let payload = |p: Value| json!({"type":"event","event":"chat","payload":p}).to_string();
            self.send(sid, payload(json!({"runId":key,"sessionKey":"agent:main:main","state":"delta","deltaText":&reply[..half]})));
            self.send(sid, payload(json!({"runId":key,"sessionKey":"agent:main:main","state":"delta","deltaText":&reply[half..]})));
            self.send(sid, payload(json!({"runId":key,"sessionKey":"agent:main:main","state":"final"})));
        }
        for s in self.sessions.values_mut().filter(|s| !s.closing && now >= s.last_tick + 30 * SEC) {
            s.last_tick = now;
            s.out.push_back(WsOut::Text(json!({"type":"event","event":"tick","payload":{"ts":now}}).to_string()));
        }
    }

    /// The gateway process restarts: every socket closes (1012), opens fail while it is down.
    /// Runs survive (the python fake's behaviour: a resend finishes them).
    fn restart(&mut self, now: u64, down_ms: u64) {
        for s in self.sessions.values_mut().filter(|s| !s.closing) {
            s.out.push_back(WsOut::Close(1012, "service restart".into()));
            s.closing = true;
        }
        self.down_until = now + down_ms;
    }
}

/// The agent's answer: a function of the message, so replies can be matched to messages.
fn reply_for(prompt: &str) -> String {
    let text = prompt.split("<<<MOLTCHATS_UNTRUSTED_TEXT\n").last().unwrap_or_default();
    let text = text.split("\nMOLTCHATS_UNTRUSTED_TEXT>>>").next().unwrap_or_default();
    format!("re: {text}")
}

/// The sandbox (MoltChats REST + socket) and the fake gateway, routed by URL / session id.
pub struct BridgeRemote<'a> {
    sandbox: &'a Sandbox,
    gateway: RefCell<Gateway>,
    /// The gateway socket may die under the connector with frames in flight (a final lost).
    lossy_gateway: bool,
}

impl Remote for BridgeRemote<'_> {
    fn http(&self, request: http::Request<Vec<u8>>, now: u64) -> http::Response<Vec<u8>> {
        self.sandbox.handle(request, now)
    }
    fn ws_open(&self, url: &str, now: u64) -> Option<u64> {
        if !url.starts_with(GATEWAY_URL) {
            return Remote::ws_open(self.sandbox, url, now);
        }
        let mut g = self.gateway.borrow_mut();
        if now < g.down_until {
            return None;
        }
        g.next_sid += 1;
        let sid = GATEWAY_SID + g.next_sid;
        g.sessions.insert(sid, Session { out: VecDeque::new(), closing: false, last_tick: now });
        g.send(sid, recorded(0));
        Some(sid)
    }
    fn ws_receive(&self, sid: u64, text: &str, now: u64) {
        if sid < GATEWAY_SID {
            return Remote::ws_receive(self.sandbox, sid, text, now);
        }
        self.gateway.borrow_mut().receive(sid, text, now)
    }
    fn ws_tick(&self, now: u64) {
        Remote::ws_tick(self.sandbox, now);
        self.gateway.borrow_mut().tick(now);
    }
    fn ws_drain(&self, sid: u64) -> Vec<WsOut> {
        if sid < GATEWAY_SID {
            return Remote::ws_drain(self.sandbox, sid);
        }
        self.gateway.borrow_mut().sessions.get_mut(&sid).map(|s| s.out.drain(..).collect()).unwrap_or_default()
    }
    fn ws_closed(&self, sid: u64) {
        if sid < GATEWAY_SID {
            return Remote::ws_closed(self.sandbox, sid);
        }
        self.gateway.borrow_mut().sessions.remove(&sid);
    }
    fn lossy(&self, sid: u64) -> bool {
        sid < GATEWAY_SID || self.lossy_gateway
    }
    fn ws_close(&self, sid: u64, code: u16, reason: &str) {
        if sid < GATEWAY_SID {
            return Remote::ws_close(self.sandbox, sid, code, reason);
        }
        if let Some(s) = self.gateway.borrow_mut().sessions.get_mut(&sid).filter(|s| !s.closing) {
            s.out.push_back(WsOut::Close(code, reason.into()));
            s.closing = true;
        }
    }
}

pub struct BridgeSetup {
    seed: u8,
}

/// What the bridge did, per incarnation.
#[derive(Default)]
pub struct BridgeLog {
    /// (incarnation, turn) → the message it answers.
    pub forwarded: BTreeMap<(u32, u64), String>,
    /// (incarnation, turn) → how it ended ("posted", or why not).
    pub ended: BTreeMap<(u32, u64), String>,
    /// (incarnation, send id) of reply parts, and which were confirmed.
    pub sends: BTreeMap<(u32, u64), bool>,
    pub failures: Vec<String>,
    /// Incarnations whose realtime session subscribed the channel.
    pub subscribed: Vec<u32>,
    /// Backlogs skipped (reported, not silent): (incarnation, first id, last id, count).
    pub skipped: Vec<String>,
}

impl BridgeLog {
    /// A turn of this incarnation is under way: forwarded but not ended, or its reply unconfirmed.
    fn busy(&self, incarnation: u32) -> bool {
        self.forwarded.keys().any(|k| k.0 == incarnation && !self.ended.contains_key(k))
            || self.sends.iter().any(|(k, confirmed)| k.0 == incarnation && !confirmed)
    }
}

impl Client for Bridge {
    type Setup = BridgeSetup;
    type Log = BridgeLog;

    fn boot(setup: &BridgeSetup, disk: Option<&[u8]>, incarnation: u32, now: u64) -> Self {
        let seed = setup.seed.wrapping_add(incarnation as u8);
        let mut bridge = Bridge::new(BridgeConfig {
            chats: ChatsConfig { api_base: Some(net::API.into()), credentials: disk.map(<[u8]>::to_vec), seed: [seed; 32], refresh: Default::default() },
            ws_base: None,
            gateway: GatewayConfig {
                url: GATEWAY_URL.into(),
                token: Secret::new(TOKEN.into()),
                session_key: "main".into(),
                client: ClientInfo { version: "fault".into(), platform: "linux".into(), display_name: None },
                seed: [seed ^ 0x5a; 32],
                timing: Default::default(),
            },
            auto_subscribe_dms: false,
            server_ids: vec![],
            server_channels: vec![SEED_CHANNEL_ID.into()],
            friends_refresh_ms: 300_000,
        })
        .expect("the persisted credentials load");
        bridge.start(now).unwrap();
        bridge
    }

    fn record(log: &mut BridgeLog, incarnation: u32, event: ConnectorEvent) {
        let text = format!("{event:?}");
        assert!(!text.contains(TOKEN), "the gateway token in an event");
        match event {
            ConnectorEvent::Bridge(BridgeEvent::MessageForwarded { turn, message_id, .. }) => {
                log.forwarded.insert((incarnation, turn), message_id.unwrap_or_default());
            }
            ConnectorEvent::Bridge(BridgeEvent::ReplyPosted { turn, send_ids, .. }) => {
                log.ended.insert((incarnation, turn), "posted".into());
                for id in send_ids {
                    log.sends.insert((incarnation, id), false);
                }
            }
            ConnectorEvent::Bridge(BridgeEvent::ReplySkipped { turn, .. }) => {
                log.ended.insert((incarnation, turn), "skipped".into());
            }
            ConnectorEvent::Bridge(BridgeEvent::ReplyFailed { turn, reason, .. }) => {
                log.failures.push(format!("#{incarnation} turn {turn}: {reason}"));
                log.ended.insert((incarnation, turn), format!("failed: {reason}"));
            }
            ConnectorEvent::Chats(ChatsEvent::Realtime(RealtimeEvent::MessageSent { send_id, .. })) => {
                log.sends.insert((incarnation, send_id), true);
            }
            ConnectorEvent::Chats(ChatsEvent::Realtime(RealtimeEvent::SendFailed { send_id, code, message, .. })) => {
                log.failures.push(format!("#{incarnation} send {send_id}: {code} {message}"));
                log.sends.insert((incarnation, send_id), true);
            }
            ConnectorEvent::Chats(ChatsEvent::Realtime(RealtimeEvent::Subscribed { .. })) => log.subscribed.push(incarnation),
            ConnectorEvent::Chats(ChatsEvent::Realtime(RealtimeEvent::BacklogSkipped { skipped, first_id, last_id, more, .. })) => {
                log.skipped.push(format!("#{incarnation}: {skipped} skipped ({first_id:?}..{last_id:?}, more: {more})"))
            }
            ConnectorEvent::Gateway(GatewayEvent::TurnFailed { turn, reason, .. }) => {
                log.failures.push(format!("#{incarnation} gateway turn {turn}: {reason}"));
            }
            _ => {}
        }
    }
}

/// Totals over runs, for the summary line.
#[derive(Default)]
pub struct BridgeTotals {
    pub messages: u64,
    pub replies: u64,
    pub gateway_resends: u64,
    pub kills_mid_turn: u64,
    /// Messages whose turn failed and was reported (`reply_failed`), not answered.
    pub reported: u64,
    /// Answers repeated after a kill mid-turn (allowed only then).
    pub repeated: u64,
}

/// Faults the bridge does not survive yet (each its own switch, so a failing seed names its cause).
#[derive(Clone, Copy, Default)]
pub struct Strict {
    /// Connector kills may land while a turn is under way (else only between turns).
    pub kill_mid_turn: bool,
    /// The gateway socket may die under the connector with frames in flight (else the
    /// gateway closes it after what it sent, as on a restart).
    pub lossy_gateway: bool,
}

/// One seeded run, ~`minutes` of virtual time.
pub fn run(seed: u64, minutes: u64, strict: Strict, totals: &mut BridgeTotals) -> (FaultStats, Result<(), String>) {
    let kill_mid_turn = strict.kill_mid_turn;
    let sandbox = Sandbox::new(SandboxConfig { access_token_lifetime_s: 600, seed, ..Default::default() });
    sandbox.with_state(|s| s.moltchats.social.faults.ws_messages_per_minute = Some(30));
    let remote = BridgeRemote {
        sandbox: &sandbox,
        gateway: RefCell::new(Gateway { rng: Rng::new(seed ^ 0xfeed), sessions: BTreeMap::new(), next_sid: 0, runs: BTreeMap::new(), down_until: 0, chat_sends: 0, resends: 0 }),
        lossy_gateway: strict.lossy_gateway,
    };
    let (mut rng, mut now, mut stats) = (Rng::new(seed), T0, FaultStats::default());
    let mut faults = Faults::chaos();
    // The poster (another agent) is not under test: its network is clean.
    let mut bob = Host::chats(&sandbox, "bob_poster", 200, now);
    bob.start_realtime(now);
    // The connector's agent: registered and in the seed server, credentials on its disk.
    let alice = Host::chats(&sandbox, "alice_bridged", 1 + (seed as u8 % 100), now);
    let setup = BridgeSetup { seed: 1 + (seed as u8 % 100) };
    let disk = alice.disk.clone();
    let bridge = Bridge::boot(&setup, disk.as_deref(), 0, now);
    let mut host = Host::new(bridge, setup, disk);
    let mut posted = 0u64;
    let mut kill_due = false;
    let mut schedule = net::Schedule::new(now, minutes, 800);
    while let Some(healed) = schedule.step(&mut now, &mut rng, &mut faults) {
        if !healed && !host.log.subscribed.is_empty() && rng.chance(0.05) {
            let content = format!("b-{seed}-{posted}");
            posted += 1;
            bob.client.send_message(SEED_CHANNEL_ID, &content, None, now).expect("bob sends");
        }
        bob.step(&sandbox, &mut rng, &Faults::none(), &mut FaultStats::default(), now);
        if !healed && rng.chance(0.002) {
            stats.server_restarts += 1;
            let down = rng.below(60 * SEC);
            remote.gateway.borrow_mut().restart(now, down);
            if net::trace() {
                eprintln!("gateway restart at {now}, down {down} ms");
            }
        }
        host.step(&remote, &mut rng, &faults, &mut stats, now);
        // A kill drawn while a turn is under way waits for the next moment between turns,
        // unless kills mid-turn are on: both modes kill as often.
        kill_due |= !healed && rng.chance(faults.kill_host);
        if kill_due {
            let busy = host.log.busy(host.incarnation) || !host.client.is_settled();
            if kill_mid_turn || !busy {
                kill_due = false;
                if busy {
                    totals.kills_mid_turn += 1;
                }
                if host.has_unacked_persist() {
                    stats.unacked_persists_at_kill += 1;
                }
                if net::trace() {
                    eprintln!("connector killed at {now} (busy: {busy}, unacked persist: {}, next message b-{seed}-{posted})", host.has_unacked_persist());
                }
                host.kill_and_restart(&remote, now);
                stats.host_kills += 1;
            }
        }
    }
    let g = remote.gateway.borrow();
    totals.gateway_resends += g.resends;
    (stats, check(seed, &sandbox, &host, posted, kill_mid_turn, totals))
}

/// `repeats_allowed`: kills mid-turn may repeat an answer (at least once), never lose one.
fn check(seed: u64, sandbox: &Sandbox, host: &Host<Bridge>, posted: u64, repeats_allowed: bool, totals: &mut BridgeTotals) -> Result<(), String> {
    let ctx = format!("bridge seed {seed}");
    let rows = sandbox.with_state(|s| s.moltchats.social.messages.get(SEED_CHANNEL_ID).cloned().unwrap_or_default());
    let mut replies: BTreeMap<String, usize> = BTreeMap::new();
    for m in &rows {
        if let Some(original) = m.content.strip_prefix("re: ") {
            *replies.entry(original.to_owned()).or_default() += 1;
        }
    }
    totals.messages += posted;
    totals.replies += replies.values().sum::<usize>() as u64;
    // A turn the bridge reported as failed (`reply_failed`: the gateway kept dropping it) is
    // not lost silently: the operator was told.
    let failed_ids: BTreeSet<&String> = host.log.ended.iter().filter(|(_, how)| how.starts_with("failed")).filter_map(|(k, _)| host.log.forwarded.get(k)).collect();
    let reported: BTreeSet<&String> = rows.iter().filter(|m| failed_ids.contains(&m.id)).map(|m| &m.content).collect();
    let mut lost = vec![];
    let mut twice = vec![];
    for n in 0..posted {
        let content = format!("b-{seed}-{n}");
        match replies.get(&content).copied().unwrap_or(0) {
            0 if reported.contains(&content) => totals.reported += 1,
            0 => lost.push(content),
            1 => {}
            k if repeats_allowed => totals.repeated += k as u64 - 1,
            k => twice.push(format!("{content} ×{k}")),
        }
    }
    if let Some(fatal) = host.client.fatal() {
        return Err(format!("{ctx}: the bridge gave up: {fatal}"));
    }
    if !lost.is_empty() || !twice.is_empty() {
        return Err(format!(
            "{ctx}: {} of {posted} messages never answered {lost:?}, answered twice {twice:?}; bridge failures: {:?}; backlogs skipped: {:?}",
            lost.len(),
            host.log.failures,
            host.log.skipped
        ));
    }
    Ok(())
}
