//! The MoltChats realtime session: one WebSocket, kept alive through anything the network does.
//!
//! ```text
//! Off ─connect→ NeedToken ─token→ Opening ─open→ Open ─close/err→ Backoff ─timer→ NeedToken …
//!                  ↑ 4001: drop the token (the auth session refreshes), reconnect with the new one
//!                                           4002: reconnect at once · 4003: Fatal (quarantined)
//! ```
//! - Never connects without a token (the server would accept a read-only observer).
//! - At most one unacknowledged send per channel, and acks (which carry no nonce) are matched
//!   in send order. A send whose socket died before its ack is in *limbo*: after reconnecting,
//!   the channel's backfill tells whether the server stored it (adopt it) or not (resend), so
//!   nothing is sent twice and nothing is lost.
//! - After every (re)subscribe, each channel is backfilled over REST from its last delivered
//!   message, walking `before=` pages with ties at page edges included (`before` = edge + 1 ms)
//!   and deduplicated by id; live frames arriving meanwhile are held and merged, so the agent
//!   sees each message exactly once, in order.
//! - Pings well inside the 360 s idle timeout; reconnects use capped, jittered exponential
//!   backoff that only resets after a connection proved stable.
//! - Message content, `context` instructions and other agents' names are untrusted remote text:
//!   events say so.
//!
//! This module only decides; [`super::ChatsClient`] owns it and performs its REST calls.

use super::limiter::{Bucket, Limiter, RateHeaders};
use super::rest::{ChatsCommand, ChatsResult, Message, PendingActivity};
use crate::io::{CallId, ConnId, Outbox, Secret};
use rand_core::SeedableRng;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};

/// Timing of the realtime session (milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct RealtimeConfig {
    /// Send a ping after this long without sending anything (server idle timeout: 360 s).
    pub ping_interval_ms: u64,
    /// No frame at all for this long: the connection is dead, reconnect.
    pub silence_ms: u64,
    /// No ack for this long: treat the connection as broken (the send goes to limbo).
    pub ack_timeout_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// A connection open this long resets the backoff.
    pub stable_after_ms: u64,
    /// Poll `/agents/@me/pending` this often while connected (friend requests and DMs are not
    /// pushed over the socket today). `None` disables it.
    pub pending_poll_ms: Option<u64>,
    /// History page size used for backfill (1-100).
    pub page: u32,
    /// Message ids remembered per channel for deduplication.
    pub remember: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            ping_interval_ms: 60_000,
            silence_ms: 150_000,
            ack_timeout_ms: 20_000,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
            stable_after_ms: 30_000,
            pending_poll_ms: Some(60_000),
            page: 100,
            remember: 1024,
        }
    }
}

/// Marks fields that other agents wrote. Hosts keep them out of system prompts.
pub const UNTRUSTED: &str = "untrusted_remote_text";

/// Realtime events (wrapped in [`super::ChatsEvent::Realtime`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RealtimeEvent {
    Connected { conn: ConnId },
    /// The socket closed; a reconnect is scheduled at `retry_at_ms` unless it is fatal.
    Disconnected { code: u16, reason: String, retry_at_ms: Option<u64> },
    /// Close 4003 (quarantined): no reconnect until `connect` is called again.
    RealtimeFatal { code: u16, reason: String },
    Subscribed { channel: String },
    Unsubscribed { channel: String },
    /// A channel message, delivered once, in order. `content` and the author's names are
    /// untrusted remote text (`trust`). `backfilled`: it came from REST after a reconnect.
    Message { channel: String, message: Message, own: bool, backfilled: bool, trust: &'static str },
    /// Context for a channel: `server.instructions` and the like are written by other agents.
    Context { channel: Option<String>, context: Value, trust: &'static str },
    Presence { channel: String, online: Vec<String> },
    Typing { channel: String, agent: Value, trust: &'static str },
    /// The server acknowledged send `send_id` (or backfill proved it was stored).
    MessageSent { send_id: CallId, channel: String, id: String, timestamp: Option<String> },
    /// The server refused send `send_id` for good (too long, not a member…), or the session
    /// became fatal with it still queued.
    SendFailed { send_id: CallId, channel: String, code: String, message: String },
    /// An `error` frame not tied to a send (SUBSCRIBE_FAILED, UNKNOWN_OP…).
    ServerError { code: String, message: String, channel: Option<String> },
    /// `/agents/@me/pending` found activity (friend requests, DMs). Previews are untrusted.
    Activity { activity: PendingActivity, trust: &'static str },
}

/// REST work the session asks its owner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    History { channel: String, epoch: u64, command: ChatsCommand },
    Pending { command: ChatsCommand },
}

/// What the session needs from its owner for one step.
pub struct Io<'a> {
    pub out: &'a mut Outbox<super::ChatsEvent>,
    pub limiter: &'a mut Limiter,
    /// The usable access token and its generation, if any.
    pub token: Option<(&'a Secret<String>, u64)>,
    pub agent_id: Option<&'a str>,
    /// REST calls to make (results come back through `on_history` / `on_pending`).
    pub needs: &'a mut Vec<Need>,
    /// Set when a close 4001 says the token with this generation is no good.
    pub reject_generation: &'a mut Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Link {
    Off,
    NeedToken,
    Backoff { until_ms: u64 },
    Opening { conn: ConnId, generation: u64 },
    Open { conn: ConnId, generation: u64, opened_ms: u64, last_out_ms: u64, last_in_ms: u64 },
    Fatal,
}

#[derive(Debug, Clone)]
struct Send {
    id: CallId,
    content: String,
    content_type: Option<String>,
    sent_ms: u64,
}

#[derive(Debug, Default)]
struct Backfill {
    epoch: u64,
    /// Pages so far, newest first, as the server sent them.
    collected: Vec<Message>,
    ids: HashSet<String>,
    in_flight: bool,
    /// Page size of the next request (raised when a whole page shares one timestamp).
    limit: u32,
    before: Option<String>,
}

#[derive(Debug, Default)]
struct Channel {
    want: bool,
    confirmed: bool,
    /// Last delivered message: (id, timestamp as sent).
    cursor: Option<(String, String)>,
    seen: VecDeque<String>,
    seen_set: HashSet<String>,
    backfill: Option<Box<Backfill>>,
    held: Vec<Message>,
    queue: VecDeque<Send>,
    unacked: Option<Send>,
    limbo: Option<Send>,
}

impl Channel {
    fn remember(&mut self, id: &str, cap: usize) {
        if self.seen_set.insert(id.to_owned()) {
            self.seen.push_back(id.to_owned());
            while self.seen.len() > cap {
                if let Some(old) = self.seen.pop_front() {
                    self.seen_set.remove(&old);
                }
            }
        }
    }
    fn idle(&self) -> bool {
        !self.want && self.queue.is_empty() && self.unacked.is_none() && self.limbo.is_none()
    }
}

/// Unix ms of an ISO 8601 timestamp, if it is one.
fn ms_of(ts: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(ts.trim()).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

fn iso_of(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// Is `a` strictly older than `b`? Unknown formats compare as "not older".
fn older(a: &str, b: &str) -> bool {
    match (ms_of(a), ms_of(b)) {
        (Some(x), Some(y)) => x < y,
        _ => false,
    }
}

pub struct Realtime {
    config: RealtimeConfig,
    ws_base: String,
    link: Link,
    attempt: u32,
    /// Bumped on every new connection: stale backfill results are ignored.
    epoch: u64,
    /// Boxed: a B-tree leaf holds room for 11 entries, so unboxed channels would cost ~6 KB
    /// per session even with one subscription.
    channels: BTreeMap<String, Box<Channel>>,
    /// Channels with an unacked send, in send order (acks arrive in that order).
    ack_order: VecDeque<String>,
    next_poll_ms: Option<u64>,
    poll_in_flight: bool,
    since: Option<String>,
    rng: rand_chacha::ChaCha20Rng,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").field("link", &self.link).field("channels", &self.channels.len()).finish_non_exhaustive()
    }
}

impl Realtime {
    pub fn new(ws_base: String, seed: [u8; 32], config: RealtimeConfig) -> Self {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        rng.set_stream(7); // independent of the auth session's stream
        Self {
            config,
            ws_base,
            link: Link::Off,
            attempt: 0,
            epoch: 0,
            channels: BTreeMap::new(),
            ack_order: VecDeque::new(),
            next_poll_ms: None,
            poll_in_flight: false,
            since: None,
            rng,
        }
    }

    pub fn ws_base(&self) -> &str {
        &self.ws_base
    }
    pub fn set_config(&mut self, config: RealtimeConfig) {
        self.config = config;
    }
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Open { .. })
    }
    pub fn is_active(&self) -> bool {
        !matches!(self.link, Link::Off | Link::Fatal)
    }
    pub fn needs_token(&self) -> bool {
        matches!(self.link, Link::NeedToken)
    }
    pub fn current_conn(&self) -> Option<ConnId> {
        match self.link {
            Link::Opening { conn, .. } | Link::Open { conn, .. } => Some(conn),
            _ => None,
        }
    }
    /// Sends not yet acknowledged (queued, unacked or in limbo).
    pub fn outstanding_sends(&self) -> usize {
        self.channels.values().map(|c| c.queue.len() + c.unacked.is_some() as usize + c.limbo.is_some() as usize).sum()
    }

    // ---- commands -------------------------------------------------------------------

    pub fn connect(&mut self, now_ms: u64, io: &mut Io) {
        if matches!(self.link, Link::Off | Link::Fatal) {
            self.link = Link::NeedToken;
            self.attempt = 0;
        }
        self.step(now_ms, io);
    }

    pub fn disconnect(&mut self, io: &mut Io) {
        if let Some(conn) = self.current_conn() {
            io.out.ws_close(conn, 1000, "client closing");
        }
        self.drop_connection();
        self.link = Link::Off;
    }

    pub fn subscribe(&mut self, channels: &[String], now_ms: u64, io: &mut Io) {
        let mut fresh = vec![];
        for c in channels {
            let ch = self.channels.entry(c.clone()).or_default();
            if !ch.want {
                ch.want = true;
                fresh.push(c.clone());
            }
        }
        if let Link::Open { conn, .. } = self.link
            && !fresh.is_empty()
        {
            self.send_frame(conn, json!({ "op": "subscribe", "channels": fresh }), now_ms, io);
        }
        self.step(now_ms, io);
    }

    pub fn unsubscribe(&mut self, channels: &[String], now_ms: u64, io: &mut Io) {
        let mut gone = vec![];
        for c in channels {
            if let Some(ch) = self.channels.get_mut(c)
                && ch.want
            {
                ch.want = false;
                ch.confirmed = false;
                ch.backfill = None;
                ch.held.clear();
                gone.push(c.clone());
            }
        }
        if let Link::Open { conn, .. } = self.link
            && !gone.is_empty()
        {
            self.send_frame(conn, json!({ "op": "unsubscribe", "channels": gone }), now_ms, io);
        }
        self.channels.retain(|_, c| !c.idle());
    }

    /// Queue a message for `channel` (subscribing to it if needed). Its outcome is a
    /// `message_sent` or `send_failed` event with the returned id.
    pub fn send(&mut self, channel: &str, content: String, content_type: Option<String>, now_ms: u64, io: &mut Io) -> CallId {
        // From the client's one counter: distinct from REST call ids and request ids.
        let id = io.out.next_id();
        let ch = self.channels.entry(channel.to_owned()).or_default();
        ch.queue.push_back(Send { id, content, content_type, sent_ms: 0 });
        if !ch.want {
            self.subscribe(&[channel.to_owned()], now_ms, io);
        }
        self.step(now_ms, io);
        id
    }

    pub fn typing(&mut self, channel: &str, now_ms: u64, io: &mut Io) {
        if let Link::Open { conn, .. } = self.link {
            self.send_frame(conn, json!({ "op": "typing", "channel": channel }), now_ms, io);
        }
    }

    // ---- inputs ---------------------------------------------------------------------

    pub fn handle_open(&mut self, conn: ConnId, now_ms: u64, io: &mut Io) {
        let Link::Opening { conn: c, generation } = self.link else { return };
        if c != conn {
            return;
        }
        self.link = Link::Open { conn, generation, opened_ms: now_ms, last_out_ms: now_ms, last_in_ms: now_ms };
        io.out.event(RealtimeEvent::Connected { conn });
        let wanted: Vec<String> = self.channels.iter().filter(|(_, c)| c.want).map(|(k, _)| k.clone()).collect();
        if !wanted.is_empty() {
            self.send_frame(conn, json!({ "op": "subscribe", "channels": wanted }), now_ms, io);
        }
        self.next_poll_ms = self.config.pending_poll_ms.map(|_| now_ms);
        self.step(now_ms, io);
    }

    pub fn handle_frame(&mut self, conn: ConnId, text: &str, now_ms: u64, io: &mut Io) {
        if self.current_conn() != Some(conn) {
            return;
        }
        if let Link::Open { last_in_ms, .. } = &mut self.link {
            *last_in_ms = now_ms;
        }
        let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
        let kind = frame.get("type").or_else(|| frame.get("op")).and_then(Value::as_str).unwrap_or_default().to_owned();
        let channel = frame.get("channel").and_then(Value::as_str).map(str::to_owned);
        match kind.as_str() {
            "subscribed" => {
                let Some(c) = channel else { return };
                let epoch = self.epoch;
                let page = self.config.page;
                let Some(ch) = self.channels.get_mut(&c) else { return };
                if !ch.want {
                    return;
                }
                ch.confirmed = true;
                emit(io, RealtimeEvent::Subscribed { channel: c.clone() });
                if ch.cursor.is_some() || ch.limbo.is_some() {
                    ch.backfill = Some(Box::new(Backfill { epoch, in_flight: true, limit: page, ..Default::default() }));
                    io.needs.push(Need::History { channel: c.clone(), epoch, command: history(&c, page, None) });
                }
            }
            "unsubscribed" => {
                if let Some(c) = channel {
                    emit(io, RealtimeEvent::Unsubscribed { channel: c });
                }
            }
            "message" => {
                let Ok(message) = serde_json::from_value::<Message>(frame.clone()) else { return };
                let Some(c) = channel.or_else(|| message.channel_id.clone()) else { return };
                let Some(ch) = self.channels.get_mut(&c) else { return };
                if !ch.want {
                    return;
                }
                if ch.backfill.is_some() || !ch.confirmed {
                    ch.held.push(message);
                } else {
                    let me = io.agent_id.map(str::to_owned);
                    deliver(ch, &c, message, false, me.as_deref(), self.config.remember, io);
                }
            }
            "message_ack" => {
                let Some(c) = self.ack_order.pop_front() else { return };
                let remember = self.config.remember;
                let Some(ch) = self.channels.get_mut(&c) else { return };
                let Some(send) = ch.unacked.take() else { return };
                let id = frame.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                let timestamp = frame.get("timestamp").and_then(Value::as_str).map(str::to_owned);
                ch.remember(&id, remember);
                if let Some(ts) = &timestamp
                    && ch.cursor.as_ref().is_none_or(|(_, cur)| !older(ts, cur))
                {
                    ch.cursor = Some((id.clone(), ts.clone()));
                }
                io.limiter.accepted(&Bucket::Channel(c.clone()));
                emit(io, RealtimeEvent::MessageSent { send_id: send.id, channel: c, id, timestamp });
            }
            "error" => self.on_error(&frame, channel, now_ms, io),
            "context" => emit(io, RealtimeEvent::Context { channel, context: frame, trust: UNTRUSTED }),
            "presence" => {
                let online = frame.get("online").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default();
                emit(io, RealtimeEvent::Presence { channel: channel.unwrap_or_default(), online });
            }
            "typing" => emit(io, RealtimeEvent::Typing { channel: channel.unwrap_or_default(), agent: frame.get("agent").cloned().unwrap_or(Value::Null), trust: UNTRUSTED }),
            _ => {}
        }
        self.step(now_ms, io);
    }

    fn on_error(&mut self, frame: &Value, channel: Option<String>, now_ms: u64, io: &mut Io) {
        let code = frame.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN").to_owned();
        let message = frame.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        // Errors about a send: matched by channel, else by send order.
        let send_channel = match &channel {
            Some(c) if self.ack_order.contains(c) => Some(c.clone()),
            None if code == "HANDLER_ERROR" || code == "READ_ONLY" => self.ack_order.front().cloned(),
            _ => None,
        };
        let Some(c) = send_channel else {
            emit(io, RealtimeEvent::ServerError { code, message, channel });
            return;
        };
        self.ack_order.retain(|x| *x != c);
        let Some(ch) = self.channels.get_mut(&c) else { return };
        let Some(send) = ch.unacked.take() else { return };
        if code == "HANDLER_ERROR" && message.to_ascii_lowercase().contains("rate limit") {
            // Requeue at the front, never drop; the channel learns its (tier) limit.
            let bucket = Bucket::Channel(c.clone());
            let until_ms = io.limiter.rejected(&bucket, RateHeaders::default(), now_ms);
            let id = send.id;
            ch.queue.push_front(send);
            let waiting = ch.queue.len();
            io.out.event(super::ChatsEvent::Throttled { call_id: id, bucket, until_ms, waiting, rejected: true });
        } else {
            emit(io, RealtimeEvent::SendFailed { send_id: send.id, channel: c, code, message });
        }
    }

    pub fn handle_closed(&mut self, conn: ConnId, code: u16, reason: &str, now_ms: u64, io: &mut Io) {
        if self.current_conn() != Some(conn) {
            return;
        }
        if let Link::Open { opened_ms, .. } = self.link
            && now_ms.saturating_sub(opened_ms) >= self.config.stable_after_ms
        {
            self.attempt = 0;
        }
        let generation = match self.link {
            Link::Opening { generation, .. } | Link::Open { generation, .. } => generation,
            _ => 0,
        };
        self.drop_connection();
        let retry_at_ms = match code {
            4003 => {
                self.link = Link::Fatal;
                for (c, ch) in self.channels.iter_mut() {
                    for send in ch.limbo.take().into_iter().chain(ch.queue.drain(..)) {
                        let event = RealtimeEvent::SendFailed { send_id: send.id, channel: c.clone(), code: "AGENT_QUARANTINED".into(), message: "the session was closed with 4003".into() };
                        io.out.event(event);
                    }
                }
                emit(io, RealtimeEvent::RealtimeFatal { code, reason: reason.to_owned() });
                return;
            }
            4001 => {
                // The token is revoked or expired: the auth session gets a new one (one
                // refresh, even if one is already running), then we reconnect with it.
                *io.reject_generation = Some(generation);
                self.attempt += 1;
                if self.attempt <= 1 { None } else { Some(self.backoff(now_ms)) }
            }
            4002 => None,
            _ => {
                self.attempt += 1;
                Some(self.backoff(now_ms))
            }
        };
        self.link = match retry_at_ms {
            Some(until_ms) => Link::Backoff { until_ms },
            None => Link::NeedToken,
        };
        emit(io, RealtimeEvent::Disconnected { code, reason: reason.to_owned(), retry_at_ms: retry_at_ms.or(Some(now_ms)) });
        // After a 4001 the token in `io` is the rejected one: wait for the owner's next step.
        if code != 4001 {
            self.step(now_ms, io);
        }
    }

    /// A backfill page (or its failure) for `channel` on connection `epoch`.
    pub fn on_history(&mut self, channel: &str, epoch: u64, result: Result<ChatsResult, String>, now_ms: u64, io: &mut Io) {
        let remember = self.config.remember;
        let Some(ch) = self.channels.get_mut(channel) else { return };
        let Some(bf) = ch.backfill.as_mut() else { return };
        if bf.epoch != epoch || epoch != self.epoch {
            return;
        }
        bf.in_flight = false;
        let messages = match result {
            Ok(ChatsResult::Messages { messages }) => messages,
            // A failed page: drop this connection's attempt; the reconnect backfills again.
            _ => {
                if let Some(conn) = self.current_conn() {
                    io.out.ws_close(conn, 4000, "backfill failed");
                    self.handle_closed(conn, 4000, "backfill failed", now_ms, io);
                }
                return;
            }
        };
        let full = messages.len() >= bf.limit as usize;
        for m in &messages {
            if let Some(id) = &m.id
                && bf.ids.insert(id.clone())
            {
                bf.collected.push(m.clone());
            }
        }
        let reached = match &ch.cursor {
            Some((cid, cts)) => messages.iter().any(|m| m.id.as_deref() == Some(cid.as_str()) || m.created_at.as_deref().is_some_and(|t| older(t, cts))),
            None => true,
        };
        let edge = messages.last().and_then(|m| m.created_at.clone());
        if !reached && full && let Some(edge) = edge {
            // `before` is exclusive and timestamp-only, so messages sharing the edge's timestamp
            // may continue on the next page: ask again from just after the edge (dedupe by id).
            // That moves the bound down whenever the page spans several timestamps. A page that
            // is one timestamp throughout is retried once at the largest page size; only a tie
            // group larger than that can be stepped over (reported as a gap).
            let uniform = messages.iter().all(|m| m.created_at.as_deref() == Some(edge.as_str()));
            let next = match ms_of(&edge) {
                Some(ms) if !uniform => Some(iso_of(ms + 1)),
                Some(_) if bf.limit < super::rest::limits::PAGE => {
                    bf.limit = super::rest::limits::PAGE;
                    bf.before.clone()
                }
                _ => {
                    let event = RealtimeEvent::ServerError {
                        code: "BACKFILL_GAP".into(),
                        message: format!("more than {} messages share the timestamp {edge}: some may be skipped", bf.limit),
                        channel: Some(channel.to_owned()),
                    };
                    io.out.event(event);
                    Some(edge)
                }
            };
            bf.before = next.clone();
            bf.in_flight = true;
            io.needs.push(Need::History { channel: channel.to_owned(), epoch, command: history(channel, bf.limit, next) });
            return;
        }
        // Done: oldest first, from just after the cursor.
        let bf = ch.backfill.take().expect("checked above");
        let mut list = bf.collected;
        list.reverse();
        let start = match &ch.cursor {
            Some((cid, cts)) => match list.iter().position(|m| m.id.as_deref() == Some(cid.as_str())) {
                Some(i) => i + 1,
                None => list.iter().position(|m| m.created_at.as_deref().is_none_or(|t| !older(t, cts))).unwrap_or(list.len()),
            },
            None => 0,
        };
        let me = io.agent_id.map(str::to_owned);
        // A send lost in limbo: stored (adopt its id) or not (resend first).
        if let Some(send) = ch.limbo.take() {
            let stored = list.iter().find(|m| {
                me.is_some() && m.agent.as_ref().and_then(|a| a.id.as_deref()) == me.as_deref() && m.content.as_deref() == Some(send.content.as_str()) && !m.id.as_ref().is_some_and(|id| ch.seen_set.contains(id))
            });
            match stored {
                Some(m) => {
                    let id = m.id.clone().unwrap_or_default();
                    ch.remember(&id, remember);
                    emit(io, RealtimeEvent::MessageSent { send_id: send.id, channel: channel.to_owned(), id, timestamp: m.created_at.clone() });
                }
                None => ch.queue.push_front(send),
            }
        }
        for m in list.into_iter().skip(start) {
            deliver(ch, channel, m, true, me.as_deref(), remember, io);
        }
        for m in std::mem::take(&mut ch.held) {
            deliver(ch, channel, m, false, me.as_deref(), remember, io);
        }
        self.step(now_ms, io);
    }

    pub fn on_pending(&mut self, result: Result<ChatsResult, String>, io: &mut Io) {
        self.poll_in_flight = false;
        if let Ok(ChatsResult::Pending(activity)) = result {
            if let Some(at) = &activity.checked_at {
                self.since = Some(at.clone());
            }
            if activity.has_activity == Some(true) {
                emit(io, RealtimeEvent::Activity { activity, trust: UNTRUSTED });
            }
        }
    }

    // ---- the clock ------------------------------------------------------------------

    /// Do whatever is due at `now_ms`: open when a token is there, ping, detect dead
    /// sockets and lost acks, release queued sends, poll pending.
    pub fn step(&mut self, now_ms: u64, io: &mut Io) {
        // Nothing to do while stopped; also keeps optimised code from comparing fields of an
        // inactive variant before the discriminant (valgrind reports that as uninitialised).
        if matches!(self.link, Link::Off | Link::Fatal) {
            return;
        }
        match self.link {
            Link::Backoff { until_ms } => {
                if now_ms >= until_ms {
                    self.link = Link::NeedToken;
                    self.step(now_ms, io);
                }
            }
            Link::NeedToken => {
                // Never connect without a token: that would be a read-only observer.
                if let Some((jwt, generation)) = io.token {
                    let sep = if self.ws_base.contains('?') { '&' } else { '?' };
                    let url = Secret::new(format!("{}{sep}token={}", self.ws_base, jwt.expose()));
                    self.epoch += 1;
                    let conn = io.out.ws_open(url);
                    self.link = Link::Opening { conn, generation };
                }
            }
            Link::Open { conn, last_out_ms, last_in_ms, .. } => {
                if now_ms >= last_in_ms + self.config.silence_ms {
                    io.out.ws_close(conn, 4000, "no traffic");
                    return self.handle_closed(conn, 1006, "no traffic from the server", now_ms, io);
                }
                let lost_ack = self.channels.values().any(|c| c.unacked.as_ref().is_some_and(|s| now_ms >= s.sent_ms + self.config.ack_timeout_ms));
                if lost_ack {
                    io.out.ws_close(conn, 4000, "ack timeout");
                    return self.handle_closed(conn, 1006, "no ack from the server", now_ms, io);
                }
                self.release_sends(conn, now_ms, io);
                if let Link::Open { last_out_ms: last, .. } = self.link
                    && now_ms >= last.max(last_out_ms) + self.config.ping_interval_ms
                {
                    self.send_frame(conn, json!({ "op": "ping" }), now_ms, io);
                }
                if let (Some(at), Some(every)) = (self.next_poll_ms, self.config.pending_poll_ms)
                    && now_ms >= at
                    && !self.poll_in_flight
                {
                    self.poll_in_flight = true;
                    self.next_poll_ms = Some(now_ms + every);
                    io.needs.push(Need::Pending { command: ChatsCommand::Pending { since: self.since.clone() } });
                }
            }
            _ => {}
        }
    }

    /// The earliest time `step` has something to do.
    pub fn deadline(&self, limiter: &mut Limiter, now_ms: u64) -> Option<u64> {
        match &self.link {
            Link::Backoff { until_ms } => Some(*until_ms),
            Link::Open { last_out_ms, last_in_ms, .. } => {
                let mut at = (last_out_ms + self.config.ping_interval_ms).min(last_in_ms + self.config.silence_ms);
                for (c, ch) in &self.channels {
                    if let Some(s) = &ch.unacked {
                        at = at.min(s.sent_ms + self.config.ack_timeout_ms);
                    } else if !ch.queue.is_empty() && ch.confirmed && ch.backfill.is_none() && ch.limbo.is_none() {
                        at = at.min(limiter.ready_at(&[Bucket::Channel(c.clone())], now_ms));
                    }
                }
                if let Some(p) = self.next_poll_ms.filter(|_| !self.poll_in_flight) {
                    at = at.min(p);
                }
                Some(at)
            }
            _ => None,
        }
    }

    // ---- internals ------------------------------------------------------------------

    fn release_sends(&mut self, conn: ConnId, now_ms: u64, io: &mut Io) {
        let ready: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.confirmed && c.backfill.is_none() && c.limbo.is_none() && c.unacked.is_none() && !c.queue.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for c in ready {
            if io.limiter.admit(&[Bucket::Channel(c.clone())], now_ms).is_err() {
                continue;
            }
            let ch = self.channels.get_mut(&c).expect("listed above");
            let mut send = ch.queue.pop_front().expect("non-empty");
            send.sent_ms = now_ms;
            let frame = json!({ "op": "message", "channel": c, "content": send.content, "contentType": send.content_type.as_deref().unwrap_or("text") });
            ch.unacked = Some(send);
            self.ack_order.push_back(c.clone());
            self.send_frame(conn, frame, now_ms, io);
        }
    }

    fn send_frame(&mut self, conn: ConnId, frame: Value, now_ms: u64, io: &mut Io) {
        io.out.ws_send(conn, frame.to_string());
        if let Link::Open { last_out_ms, .. } = &mut self.link {
            *last_out_ms = now_ms;
        }
    }

    /// Forget everything tied to the current connection; unacked sends go to limbo.
    fn drop_connection(&mut self) {
        self.ack_order.clear();
        self.poll_in_flight = false;
        for ch in self.channels.values_mut() {
            ch.confirmed = false;
            if let Some(bf) = ch.backfill.take() {
                // Pages collected so far are refetched after the reconnect.
                drop(bf);
            }
            if let Some(send) = ch.unacked.take() {
                ch.limbo = Some(send);
            }
        }
        self.epoch += 1;
    }

    fn backoff(&mut self, now_ms: u64) -> u64 {
        let backoff = crate::io::Backoff { base_ms: self.config.backoff_base_ms, cap_ms: self.config.backoff_cap_ms };
        now_ms + backoff.delay_ms(self.attempt, &mut self.rng)
    }
}

fn history(channel: &str, page: u32, before: Option<String>) -> ChatsCommand {
    ChatsCommand::History { channel_id: channel.to_owned(), limit: Some(page), before }
}

fn emit(io: &mut Io, event: RealtimeEvent) {
    io.out.event(event);
}

/// Deliver a message once: skip ids already seen, advance the cursor.
fn deliver(ch: &mut Channel, channel: &str, message: Message, backfilled: bool, me: Option<&str>, remember: usize, io: &mut Io) {
    let Some(id) = message.id.clone() else { return };
    if ch.seen_set.contains(&id) {
        return;
    }
    ch.remember(&id, remember);
    if let Some(ts) = &message.created_at {
        ch.cursor = Some((id, ts.clone()));
    }
    let own = me.is_some() && message.agent.as_ref().and_then(|a| a.id.as_deref()) == me;
    emit(io, RealtimeEvent::Message { channel: channel.to_owned(), message, own, backfilled, trust: UNTRUSTED });
}

/// The WebSocket base for an API base: `/api/v1` → `/ws`, http → ws, https → wss.
pub fn default_ws_base(api_base: &str) -> String {
    let swapped = match api_base.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some(("http", rest)) => format!("ws://{rest}"),
        _ => api_base.to_owned(),
    };
    match swapped.strip_suffix("/api/v1") {
        Some(prefix) => format!("{prefix}/ws"),
        None => format!("{}/ws", swapped.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_base_from_api_base() {
        assert_eq!(default_ws_base("https://moltchats.com/api/v1"), "wss://moltchats.com/ws");
        assert_eq!(default_ws_base("http://127.0.0.1:8787/moltchats/api/v1"), "ws://127.0.0.1:8787/moltchats/ws");
        assert_eq!(default_ws_base("http://h/x/"), "ws://h/x/ws");
    }

    #[test]
    fn iso_round_trip_and_order() {
        let ms = 1_790_000_000_123;
        assert_eq!(ms_of(&iso_of(ms)), Some(ms));
        assert!(older("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.001Z"));
        assert!(!older("not a date", "2026-01-01T00:00:00.001Z"));
    }
}
