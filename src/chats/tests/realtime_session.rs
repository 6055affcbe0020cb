//! The realtime session end to end against the sandbox's sans-IO WebSocket gateway and REST
//! surface, with a virtual clock: reconnect storms, 4001 during a refresh, lost acks and
//! dropped sockets, backfill across equal-timestamp page edges, tier limits over the socket.

use super::{T0, open};
use crate::chats::{ChatsCommand, ChatsEvent, RealtimeConfig, RealtimeEvent};
use crate::io::{Output, SansIo};
use crate::{CallId, ChatsClient};
use crate::testkit::sandbox::SandboxPeer;
use crate::testkit::Driver;
use moltlink_sandbox::moltchats::social::{SEED_CHANNEL_ID, SEED_SERVER_ID};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use std::rc::Rc;

const SEC: u64 = 1_000;
const MINUTE: u64 = 60 * SEC;

/// One agent: its client, its host-side sockets and network switches (the sandbox peer).
type Agent = Driver<ChatsClient, SandboxPeer>;

struct World {
    sandbox: Rc<Sandbox>,
    now: u64,
}

fn channel() -> String {
    SEED_CHANNEL_ID.to_owned()
}

/// Every REST path the agent sent.
fn sent(a: &Agent) -> Vec<String> {
    a.peer.paths("/moltchats/api/v1")
}

impl World {
    fn new() -> Self {
        Self { sandbox: Rc::new(Sandbox::new(SandboxConfig::default())), now: T0 }
    }

    fn agent(&mut self, name: &str, seed: u8) -> Agent {
        let mut a = Driver::new(open(None, seed), SandboxPeer::new(self.sandbox.clone()), self.now);
        a.client.register(name, self.now).unwrap();
        self.drain(&mut a);
        // Trusted (10 socket messages a minute per channel); the tier test lowers it.
        self.sandbox.moltchats_set_trust(name, "trusted", 0.65);
        let join = a.client.command(ChatsCommand::ServerJoin { server_id: SEED_SERVER_ID.into() }, self.now).unwrap();
        self.drain(&mut a);
        assert!(a.events.iter().any(|e| matches!(e, ChatsEvent::CommandSucceeded { call_id, .. } if *call_id == join)));
        a
    }

    /// Deliver what the gateway queued for this agent's sockets.
    fn flush(&mut self, a: &mut Agent) -> bool {
        a.now_ms = self.now;
        a.deliver_ws()
    }

    /// Serve everything until the agent waits and no frames are pending.
    fn drain(&mut self, a: &mut Agent) -> Option<u64> {
        a.now_ms = self.now;
        a.drive()
    }

    /// Advance the clock for several agents, firing deadlines (the gateway ticks too).
    fn advance(&mut self, agents: &mut [&mut Agent], ms: u64) {
        let end = self.now + ms;
        loop {
            let mut next = end;
            for a in agents.iter_mut() {
                if let Some(at) = self.drain(a) {
                    next = next.min(at.max(self.now));
                }
            }
            if next >= end {
                break;
            }
            self.now = next.max(self.now);
            self.sandbox.ws_tick(self.now);
            for a in agents.iter_mut() {
                a.client.handle_timeout(self.now);
            }
        }
        self.now = end;
        self.sandbox.ws_tick(self.now);
        for a in agents.iter_mut() {
            a.client.handle_timeout(self.now);
            self.drain(a);
        }
    }

    fn connect(&mut self, a: &mut Agent, channels: &[String]) {
        a.client.connect(self.now).unwrap();
        a.client.subscribe(channels, self.now).unwrap();
        self.drain(a);
        assert!(a.client.is_connected(), "{:?}", a.events.last());
    }

    /// Post over REST as `a` (another agent talking while we are away).
    fn post(&mut self, a: &mut Agent, content: &str) {
        let call = a.client.command(ChatsCommand::MessageSend { channel_id: channel(), content: content.into(), content_type: None }, self.now).unwrap();
        self.drain(a);
        assert!(a.events.iter().any(|e| matches!(e, ChatsEvent::CommandSucceeded { call_id, .. } if *call_id == call)));
    }

    /// Drop the agent's socket from the network side (no close frame reaches the server).
    fn drop_socket(&mut self, a: &mut Agent) {
        for (conn, sid) in std::mem::take(&mut a.peer.conns) {
            self.sandbox.ws_closed(sid);
            a.client.handle_ws_closed(conn, 1006, "connection reset", self.now);
        }
    }

    fn stored_contents(&self) -> Vec<String> {
        self.sandbox.with_state(|s| s.moltchats.social.messages.get(SEED_CHANNEL_ID).map(|v| v.iter().map(|m| m.content.clone()).collect()).unwrap_or_default())
    }
}

fn rt(a: &Agent) -> impl Iterator<Item = &RealtimeEvent> {
    a.events.iter().filter_map(|e| match e {
        ChatsEvent::Realtime(r) => Some(r),
        _ => None,
    })
}

/// Contents of delivered `message` events from others, in order.
fn received(a: &Agent) -> Vec<String> {
    late(a).into_iter().map(|(content, _)| content).collect()
}

fn sent_ids(a: &Agent) -> Vec<(CallId, String)> {
    rt(a).filter_map(|e| match e {
        RealtimeEvent::MessageSent { send_id, id, .. } => Some((*send_id, id.clone())),
        _ => None,
    })
    .collect()
}

fn disconnects(a: &Agent) -> Vec<(u16, Option<u64>)> {
    rt(a).filter_map(|e| match e {
        RealtimeEvent::Disconnected { code, retry_at_ms, .. } => Some((*code, *retry_at_ms)),
        _ => None,
    })
    .collect()
}

#[test]
fn live_messages_arrive_once_in_order_and_every_send_is_acked() {
    let mut w = World::new();
    let mut alice = w.agent("rt_alice", 1);
    let mut bob = w.agent("rt_bob", 2);
    w.connect(&mut alice, &[channel()]);
    w.connect(&mut bob, &[channel()]);
    let sends: Vec<CallId> = (0..5).map(|i| alice.client.send_message(&channel(), &format!("live {i}"), None, w.now).unwrap()).collect();
    w.drain(&mut alice);
    w.drain(&mut bob);
    assert_eq!(sent_ids(&alice).iter().map(|(s, _)| *s).collect::<Vec<_>>(), sends);
    assert_eq!(received(&bob), (0..5).map(|i| format!("live {i}")).collect::<Vec<_>>());
    // Remote text and context are marked untrusted.
    assert!(rt(&bob).any(|e| matches!(e, RealtimeEvent::Message { trust: "untrusted_remote_text", .. })));
    assert!(rt(&bob).any(|e| matches!(e, RealtimeEvent::Context { trust: "untrusted_remote_text", .. })));
    let json = serde_json::to_value(rt(&bob).find(|e| matches!(e, RealtimeEvent::Message { .. })).unwrap()).unwrap();
    assert_eq!((json["type"].as_str(), json["trust"].as_str()), (Some("message"), Some("untrusted_remote_text")));
    assert_eq!(alice.client.queue_state(w.now).ws_sends, 0);
}

#[test]
fn an_idle_session_pings_inside_the_idle_timeout_for_an_hour() {
    let mut w = World::new();
    let mut a = w.agent("rt_idle", 1);
    w.connect(&mut a, &[channel()]);
    let frames_before = w.sandbox.with_state(|s| s.moltchats.gateway.frames_in);
    w.advance(&mut [&mut a], 60 * MINUTE);
    assert!(disconnects(&a).is_empty(), "{:?}", disconnects(&a));
    assert!(a.client.is_connected());
    let pings = w.sandbox.with_state(|s| s.moltchats.gateway.frames_in) - frames_before;
    assert!((55..=70).contains(&pings), "{pings} pings in an hour (one a minute)");
}

#[test]
fn ack_lost_then_socket_dropped_neither_duplicates_nor_loses_the_send() {
    let mut w = World::new();
    let mut a = w.agent("rt_lost", 1);
    w.connect(&mut a, &[channel()]);
    // 1. The server stores the message but its ack is lost; then the socket drops.
    w.sandbox.with_state(|s| s.moltchats.social.faults.ws_lose_next_ack = true);
    let s1 = a.client.send_message(&channel(), "stored, ack lost", None, w.now).unwrap();
    w.drain(&mut a);
    assert!(sent_ids(&a).is_empty());
    w.drop_socket(&mut a);
    w.advance(&mut [&mut a], 10 * SEC);
    // 2. The server drops the socket right after storing (no ack at all).
    w.sandbox.with_state(|s| s.moltchats.social.faults.ws_drop_on_next_send = true);
    let s2 = a.client.send_message(&channel(), "stored, socket dropped", None, w.now).unwrap();
    w.advance(&mut [&mut a], 10 * SEC);
    // 3. The send never reaches the server, then the socket drops.
    a.peer.blackhole_sends = true;
    let s3 = a.client.send_message(&channel(), "never arrived", None, w.now).unwrap();
    w.drain(&mut a);
    a.peer.blackhole_sends = false;
    w.drop_socket(&mut a);
    w.advance(&mut [&mut a], 10 * SEC);
    // 4. No ack and no close: the ack timeout notices.
    a.peer.blackhole_sends = true;
    let s4 = a.client.send_message(&channel(), "silently swallowed", None, w.now).unwrap();
    w.drain(&mut a);
    a.peer.blackhole_sends = false;
    w.advance(&mut [&mut a], 60 * SEC);

    let acked: Vec<CallId> = sent_ids(&a).iter().map(|(s, _)| *s).collect();
    assert_eq!(acked, [s1, s2, s3, s4], "every send confirmed exactly once, in order");
    assert_eq!(w.stored_contents(), ["stored, ack lost", "stored, socket dropped", "never arrived", "silently swallowed"], "no duplicate, no loss");
    let ids: Vec<String> = sent_ids(&a).into_iter().map(|(_, id)| id).collect();
    let stored_ids: Vec<String> = w.sandbox.with_state(|s| s.moltchats.social.messages[SEED_CHANNEL_ID].iter().map(|m| m.id.clone()).collect());
    assert_eq!(ids, stored_ids, "adopted ids are the server's");
    assert!(a.client.is_connected());
    assert_eq!(a.client.queue_state(w.now).ws_sends, 0);
}

#[test]
fn a_reconnect_storm_backs_off_capped_and_jittered_then_recovers_without_gaps() {
    let mut w = World::new();
    let mut a = w.agent("rt_storm", 1);
    let mut b = w.agent("rt_storm_b", 2);
    w.connect(&mut a, &[channel()]);
    w.post(&mut b, "before the storm");
    w.drain(&mut a);
    w.drop_socket(&mut a);
    a.peer.refuse_opens = true;
    let storm_start = w.now;
    // 15 minutes of refused connections while others keep talking.
    for i in 0..15 {
        w.advance(&mut [&mut a], MINUTE);
        w.post(&mut b, &format!("during the storm {i}"));
    }
    let waits: Vec<u64> = disconnects(&a).windows(2).map(|p| p[1].1.unwrap() - p[0].1.unwrap()).collect();
    let attempts = a.peer.opened_with.len() - 1;
    assert!((15..=40).contains(&attempts), "{attempts} attempts in 15 minutes: no tight loop, no giving up");
    assert!(waits.iter().all(|d| *d >= 400 && *d <= 60 * SEC + 1), "capped: {waits:?}");
    let late: Vec<u64> = waits.iter().copied().filter(|d| *d >= 30 * SEC).collect();
    assert!(late.len() >= 5, "reaches the cap: {waits:?}");
    let distinct: std::collections::BTreeSet<u64> = late.iter().copied().collect();
    assert!(distinct.len() >= late.len() - 1, "jittered, not in lockstep: {late:?}");
    assert!(w.now - storm_start >= 15 * MINUTE);
    // The network comes back: one reconnect, resubscribe, backfill — each message once, in order.
    a.peer.refuse_opens = false;
    w.advance(&mut [&mut a], 2 * MINUTE);
    assert!(a.client.is_connected());
    let mut expected = vec!["before the storm".to_owned()];
    expected.extend((0..15).map(|i| format!("during the storm {i}")));
    assert_eq!(received(&a), expected);
    w.post(&mut b, "after");
    w.drain(&mut a);
    assert_eq!(received(&a).last().map(String::as_str), Some("after"));
    assert_eq!(received(&a).len(), 17);
}

#[test]
fn close_4001_during_a_refresh_makes_one_refresh_and_reconnects_with_the_new_token() {
    let mut w = World::new();
    let mut a = w.agent("rt_4001", 1);
    w.connect(&mut a, &[channel()]);
    let first_token = a.peer.opened_with[0].clone();
    // A rotation starts; its request is in flight when the server closes the socket with 4001.
    a.client.refresh(w.now).unwrap();
    let (rid, request) = loop {
        match a.client.poll_output() {
            Output::Persist { ticket, .. } => a.client.handle_persisted(ticket, w.now).unwrap(),
            Output::Http { id, request, .. } => break (id, request),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(request.uri().path().ends_with("/auth/refresh"));
    let sid = *a.peer.conns.values().next().unwrap();
    w.sandbox.ws_close(sid, 4001, "Token revoked");
    w.flush(&mut a);
    // Nothing reconnects with the old token, and no second refresh starts.
    loop {
        match a.client.poll_output() {
            Output::Wait { .. } => break,
            Output::Event(e) => a.events.push(e),
            Output::WsOpen { .. } => panic!("reconnected before the refresh finished"),
            Output::Http { request, .. } => panic!("second auth request {}", request.uri()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let response = w.sandbox.handle(*request, w.now);
    a.client.handle_response(rid, response, w.now).unwrap();
    w.drain(&mut a);
    assert!(a.client.is_connected());
    assert_eq!(a.peer.opened_with.len(), 2);
    assert_ne!(a.peer.opened_with[1], first_token, "reconnected with the new token");
    assert_eq!(sent(&a).iter().filter(|p| p.as_str() == "/auth/refresh").count(), 0, "the held refresh was the only one");
    assert_eq!(w.sandbox.stats().refresh_calls, 1);
    assert_eq!(disconnects(&a)[0].0, 4001);
    // A rotation while connected revokes the socket's token for new connections only: the
    // server checks tokens at the handshake (capture 19a), so the socket stays up.
    a.client.refresh(w.now).unwrap();
    w.advance(&mut [&mut a], 5 * SEC);
    assert!(a.client.is_connected());
    assert_eq!(a.peer.opened_with.len(), 2);
    assert_eq!(w.sandbox.stats().refresh_reuse_rejections, 0);
}

#[test]
fn backfill_crosses_page_edges_with_equal_timestamps_without_skipping() {
    let mut w = World::new();
    // Timestamps in whole seconds: many messages share one.
    w.sandbox.with_state(|s| s.moltchats.social.faults.timestamp_granularity_ms = 1000);
    let mut a = w.agent("rt_edges", 1);
    let mut b = w.agent("rt_edges_b", 2);
    a.client.set_realtime_config(RealtimeConfig { page: 3, ..RealtimeConfig::default() });
    w.connect(&mut a, &[channel()]);
    w.post(&mut b, "seen before");
    w.drain(&mut a);
    w.drop_socket(&mut a);
    a.peer.refuse_opens = true;
    // Seven messages in one second, then three in the next, then two more a second later.
    w.now += 2 * SEC;
    let mut expected = vec!["seen before".to_owned()];
    for (n, group) in [7, 3, 2].into_iter().enumerate() {
        for i in 0..group {
            let text = format!("group {n} #{i}");
            w.post(&mut b, &text);
            expected.push(text);
        }
        w.now += SEC;
    }
    a.peer.refuse_opens = false;
    w.advance(&mut [&mut a], 2 * MINUTE);
    assert_eq!(received(&a), expected);
    assert!(!rt(&a).any(|e| matches!(e, RealtimeEvent::ServerError { .. })));
    let backfilled = rt(&a).filter(|e| matches!(e, RealtimeEvent::Message { backfilled: true, .. })).count();
    assert_eq!(backfilled, 12);
    // Live messages arriving while a backfill runs are merged, not duplicated.
    w.drop_socket(&mut a);
    w.post(&mut b, "while away");
    w.advance(&mut [&mut a], 5 * SEC);
    w.post(&mut b, "live again");
    w.drain(&mut a);
    assert_eq!(received(&a)[13..], ["while away".to_owned(), "live again".to_owned()]);
}

#[test]
fn a_tier_limit_over_the_socket_delivers_everything_in_order() {
    let mut w = World::new();
    let mut a = w.agent("rt_tier", 1);
    // Untrusted: 3 socket messages a minute per channel, the tier's real limit.
    w.sandbox.moltchats_set_trust("rt_tier", "untrusted", 0.0);
    w.connect(&mut a, &[channel()]);
    let sends: Vec<CallId> = (0..20).map(|i| a.client.send_message(&channel(), &format!("t{i:02}"), None, w.now).unwrap()).collect();
    w.advance(&mut [&mut a], 10 * MINUTE);
    assert_eq!(sent_ids(&a).iter().map(|(s, _)| *s).collect::<Vec<_>>(), sends);
    assert_eq!(w.stored_contents(), (0..20).map(|i| format!("t{i:02}")).collect::<Vec<_>>());
    // One probe reveals the limit; learnt within the client's first minute it is provisional
    // (a restart mid-window looks the same), so one more probe confirms it a minute later.
    let probes = rt(&a).filter(|e| matches!(e, RealtimeEvent::SendRetrying { .. })).count();
    assert_eq!(probes, 2, "two probes revealed the limit");
    assert!(disconnects(&a).is_empty(), "the socket stayed up: {:?}", disconnects(&a));
}

#[test]
fn close_codes_4002_reconnects_and_4003_is_fatal() {
    let mut w = World::new();
    let mut a = w.agent("rt_codes", 1);
    w.connect(&mut a, &[channel()]);
    let sid = *a.peer.conns.values().next().unwrap();
    w.sandbox.ws_close(sid, 4002, "Idle timeout");
    w.drain(&mut a);
    assert!(a.client.is_connected(), "4002: reconnected at once");
    assert_eq!(a.peer.opened_with.len(), 2);
    let queued = a.client.send_message(&channel(), "queued before quarantine", None, w.now).unwrap();
    let sid = *a.peer.conns.values().next().unwrap();
    a.peer.blackhole_sends = true;
    w.drain(&mut a);
    w.sandbox.ws_close(sid, 4003, "Quarantined");
    w.advance(&mut [&mut a], 10 * MINUTE);
    assert!(!a.client.is_connected());
    assert_eq!(a.peer.opened_with.len(), 2, "4003: no reconnect");
    assert!(rt(&a).any(|e| matches!(e, RealtimeEvent::RealtimeFatal { code: 4003, .. })));
    assert!(rt(&a).any(|e| matches!(e, RealtimeEvent::SendFailed { send_id, .. } if *send_id == queued)), "reported, not dropped silently");
}

#[test]
fn never_connects_without_a_token() {
    let mut w = World::new();
    let a = w.agent("rt_token", 1);
    // A restart with the saved credentials but the server gone: no token, so no socket.
    let creds = {
        let mut disk = None;
        let mut c = open(None, 9);
        c.register("rt_token_2", w.now).unwrap();
        while let Output::Persist { ticket, bytes } = c.poll_output() {
            disk = Some(bytes.expose().clone());
            c.handle_persisted(ticket, w.now).unwrap();
        }
        disk.unwrap()
    };
    drop(a);
    let mut c = open(Some(creds), 3);
    c.connect(w.now).unwrap();
    for _ in 0..20 {
        match c.poll_output() {
            Output::WsOpen { .. } => panic!("connected without a token"),
            Output::Http { id, .. } => c.handle_transport_error(id, "down", w.now).unwrap(),
            Output::Wait { until_ms: Some(at) } => {
                w.now = at;
                c.handle_timeout(w.now);
            }
            _ => {}
        }
    }
    assert!(!c.is_connected());
}

#[test]
fn pending_is_polled_while_connected() {
    let mut w = World::new();
    let mut a = w.agent("rt_poll", 1);
    let mut b = w.agent("rt_poll_b", 2);
    w.connect(&mut a, &[channel()]);
    w.now += 1;
    let r = b.client.command(ChatsCommand::FriendRequest { target: "rt_poll".into() }, w.now).unwrap();
    w.drain(&mut b);
    assert!(b.events.iter().any(|e| matches!(e, ChatsEvent::CommandSucceeded { call_id, .. } if *call_id == r)));
    // Right after connecting the list is watched closely: seen within 12 s, not a minute.
    w.advance(&mut [&mut a], 12 * SEC);
    let activity = rt(&a).find_map(|e| match e {
        RealtimeEvent::Activity { activity, .. } => Some(activity.clone()),
        _ => None,
    });
    assert_eq!(activity.expect("the friend request within 12 s").pending_friend_requests.items()[0].from_username.as_deref(), Some("rt_poll_b"));
}

/// Quiet polls back off to once a minute; the agent's own friend request (an answer may
/// follow) and a live message from another agent bring the fast pace back. Never above the
/// endpoint's 10 a minute.
#[test]
fn pending_polls_back_off_when_idle_and_speed_up_when_something_may_be_pending() {
    let mut w = World::new();
    let mut a = w.agent("rt_idle", 1);
    let mut b = w.agent("rt_idle_b", 2);
    w.connect(&mut a, &[channel()]);
    let polls = |a: &Agent| sent(a).iter().filter(|p| p.starts_with("/agents/@me/pending")).count();
    w.advance(&mut [&mut a], 10 * MINUTE);
    let idle = polls(&a);
    // 0, 12, 36, 84 s, then every 60 s: 13 polls in ten minutes (a fixed 6 s pace would be 100).
    assert!((11..=15).contains(&idle), "{idle} polls in ten idle minutes");
    // The agent asks for a friendship: the answer is watched for at the fast pace.
    let r = a.client.command(ChatsCommand::FriendRequest { target: "rt_idle_b".into() }, w.now).unwrap();
    w.drain(&mut a);
    assert!(a.events.iter().any(|e| matches!(e, ChatsEvent::CommandSucceeded { call_id, .. } if *call_id == r)));
    let before = polls(&a);
    w.advance(&mut [&mut a], 7 * SEC);
    assert_eq!(polls(&a), before + 1, "a poll within 6 s of the request");
    // Ten fast minutes never exceed the limit: at most 10 polls in any minute.
    w.advance(&mut [&mut a], 2 * MINUTE);
    assert!(polls(&a) - before <= 1 + 10 * 2 + 1, "{} polls", polls(&a) - before);
    // A live message from another agent: fast again after the idle back-off.
    w.advance(&mut [&mut a], 5 * MINUTE);
    w.connect(&mut b, &[channel()]);
    let before = polls(&a);
    w.post(&mut b, "hello there");
    w.advance(&mut [&mut a, &mut b], 7 * SEC);
    assert!(polls(&a) > before, "a poll within 6 s of another agent's message");
}

impl World {
    /// The agent's process dies; a new one starts from the bytes it persisted (nothing else).
    fn restart(&mut self, old: Agent, seed: u8, config: Option<RealtimeConfig>) -> Agent {
        let bytes = old.persisted.clone().expect("the agent persisted its credentials");
        drop(old);
        let mut a = Driver::new(open(Some(bytes), seed), SandboxPeer::new(self.sandbox.clone()), self.now);
        if let Some(config) = config {
            a.client.set_realtime_config(config);
        }
        a.client.login(self.now).unwrap();
        self.drain(&mut a);
        a
    }
}

fn late(a: &Agent) -> Vec<(String, bool)> {
    rt(a).filter_map(|e| match e {
        RealtimeEvent::Message { message, own: false, backfilled, .. } => Some((message.content.get().cloned().unwrap_or_default(), *backfilled)),
        _ => None,
    })
    .collect()
}

/// Restart anything, lose nothing: messages posted while the agent's process was down arrive
/// once each, in order, marked late (`backfilled`); those it had seen do not come again.
#[test]
fn a_restarted_process_gets_what_was_posted_while_it_was_down_once_in_order() {
    let mut w = World::new();
    let mut a = w.agent("rs_reader", 1);
    let mut b = w.agent("rs_writer", 2);
    w.connect(&mut a, &[channel()]);
    w.post(&mut b, "before 1");
    w.post(&mut b, "before 2");
    w.drain(&mut a);
    assert_eq!(received(&a), ["before 1", "before 2"]);
    w.now += 5 * SEC;
    w.advance(&mut [&mut a], SEC);
    // Killed: the server notices the socket is gone.
    w.drop_socket(&mut a);
    for i in 1..=3 {
        w.post(&mut b, &format!("while down {i}"));
    }
    let mut a = w.restart(a, 3, None);
    w.connect(&mut a, &[channel()]);
    w.post(&mut b, "after");
    w.drain(&mut a);
    let got = late(&a);
    assert_eq!(
        got,
        [("while down 1".into(), true), ("while down 2".into(), true), ("while down 3".into(), true), ("after".into(), false)],
        "each message posted while down once, in order, marked late"
    );
    // Limits survive too: the saved windows hold the sends of the previous process.
    let saved: serde_json::Value = serde_json::from_slice(a.persisted.as_ref().unwrap()).unwrap();
    assert!(saved["moltlinkResume"]["readPositions"][channel()]["id"].is_string(), "{saved:#}");
}

/// A long outage is bounded: at most N of the messages posted meanwhile, the skipped ones
/// reported as one event (never silently).
#[test]
fn a_long_outage_delivers_the_newest_within_the_bound_and_reports_the_rest() {
    let mut w = World::new();
    let mut a = w.agent("rs_bound", 1);
    let mut b = w.agent("rs_bound_w", 2);
    w.connect(&mut a, &[channel()]);
    w.post(&mut b, "seen");
    w.drain(&mut a);
    w.advance(&mut [&mut a], 2 * SEC); // the position is saved (at most a second later)
    w.drop_socket(&mut a);
    for i in 1..=8 {
        w.post(&mut b, &format!("down {i}"));
    }
    let config = RealtimeConfig { backlog_max_messages: Some(5), page: 3, ..RealtimeConfig::default() };
    let mut a = w.restart(a, 3, Some(config));
    w.connect(&mut a, &[channel()]);
    w.drain(&mut a);
    let got: Vec<String> = late(&a).into_iter().map(|(c, _)| c).collect();
    assert_eq!(got, ["down 4", "down 5", "down 6", "down 7", "down 8"]);
    let skipped: Vec<_> = rt(&a).filter(|e| matches!(e, RealtimeEvent::BacklogSkipped { .. })).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let RealtimeEvent::BacklogSkipped { skipped, more, .. } = skipped[0] else { unreachable!() };
    // The walk stopped after 6 (two pages of 3): 1 counted, and it says more were skipped.
    assert!(*skipped >= 1 && (*more || *skipped == 3), "skipped {skipped}, more {more}");
}

/// The rate-limit windows are saved with the positions: a restarted process does not send
/// past a limit the previous one used up.
#[test]
fn a_restart_never_sends_past_a_limit() {
    let mut w = World::new();
    let mut a = w.agent("rs_limit", 1);
    a.client.set_limits(crate::chats::Limits { channel_per_minute: 3, ..Default::default() });
    w.connect(&mut a, &[channel()]);
    for i in 0..3 {
        a.client.send_message(&channel(), &format!("burst {i}"), None, w.now).unwrap();
    }
    w.drain(&mut a);
    assert_eq!(sent_ids(&a).len(), 3);
    w.advance(&mut [&mut a], 2 * SEC); // the windows are saved (at most a second later)
    w.drop_socket(&mut a);
    let mut a = w.restart(a, 3, None);
    a.client.set_limits(crate::chats::Limits { channel_per_minute: 3, ..Default::default() });
    w.connect(&mut a, &[channel()]);
    let stored_before = w.stored_contents().len();
    a.client.send_message(&channel(), "after restart", None, w.now).unwrap();
    w.drain(&mut a);
    assert_eq!(w.stored_contents().len(), stored_before, "sent within the minute the previous process used up");
    w.advance(&mut [&mut a], MINUTE + SEC);
    assert_eq!(w.stored_contents().len(), stored_before + 1, "sent once the window moved on");
}
