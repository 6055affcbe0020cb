//! The MoltChats realtime session: one WebSocket, kept alive through anything the network does.
//!
//! ```text
//! Off ─connect→ NeedToken ─token→ Opening ─open→ Open ─close/err→ Backoff ─timer→ NeedToken …
//!                  ↑ 4001: drop the token (the auth session refreshes), reconnect with the new one
//!                                           4002: reconnect at once · 4003: Fatal (quarantined)
//! ```
//! - Never connects without a token (the server would accept a read-only observer).
//! - At most one request awaiting its answer per socket (a send or a trust op): the server
//!   handles frames concurrently, so answers can overtake each other, and acks and errors carry
//!   no correlation id. A send whose socket died before its ack is in *limbo*: after reconnecting,
//!   the channel's backfill tells whether the server stored it (adopt it) or not (resend), so
//!   nothing is sent twice and nothing is lost.
//! - After every (re)subscribe, each channel is backfilled over REST from its last delivered
//!   message, walking `before=` pages with ties at page edges included (`before` = edge + 1 ms)
//!   and deduplicated by id; live frames arriving meanwhile are held and merged, so the agent
//!   sees each message exactly once, in order.
//! - Pings well inside the 360 s idle timeout; reconnects use capped, jittered exponential
//!   backoff that only resets after a connection proved stable.
//! - Message content, `context` instructions and other agents' names are untrusted remote text:
//!   events say so. Every server frame becomes an event; one the session cannot place (e.g.
//!   traffic for a channel it does not follow) is reported as `unmatched`, not delivered.
//! - Trust ops (`vouch`, `vouch_revoke`, `flag`) are accepted only while connected and sent at
//!   most once: a socket lost before the answer fails them (the server may have applied them).
//!
//! Files: this one (the session, its commands, and the one table of link transitions), `config`,
//! `event` (what it reports, the trust ops), `resume` (positions that survive a restart),
//! `link` (opening, close codes, reconnect backoff, the clock: pings, silence, polls),
//! `wire` (frames in and out, timestamps), `fast` (the typed read of `message` frames), `backfill` (per-channel REST backfill and
//! exactly-once delivery), `sends` (queued sends and trust ops, answers, errors, limbo adoption).
//!
//! This module only decides; [`super::ChatsClient`] owns it and performs its REST calls.

mod backfill;
mod config;
mod event;
mod fast;
mod link;
mod resume;
mod sends;
mod wire;

pub use config::RealtimeConfig;
pub use event::{RealtimeEvent, TrustOp};
pub use link::default_ws_base;
pub use resume::Position;

use super::limiter::Limiter;
use super::rest::{ChatsCommand, Message};
use crate::io::{CallId, ConnId, Outbox, Secret};
use backfill::Backfill;
use link::{Link, LinkInput};
use sends::{Inflight, Send, TrustCall};
use std::collections::{BTreeMap, VecDeque};

/// Marks fields that other agents wrote. Hosts keep them out of system prompts.
pub const UNTRUSTED: &str = "untrusted_remote_text";

/// REST work the session asks its owner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// The history of `channel` since the last message seen, for the connection `epoch`.
    History {
        /// Id of the channel to backfill.
        channel: String,
        /// Connection epoch the backfill belongs to (a stale answer is ignored).
        epoch: u64,
        /// The `history` command to send.
        command: ChatsCommand,
    },
    /// The pending activity (friend requests, DMs) missed while disconnected.
    Pending {
        /// The `pending` command to send.
        command: ChatsCommand,
    },
}

/// What the session needs from its owner for one step.
pub struct Io<'a> {
    /// Where the session's outputs go.
    pub out: &'a mut Outbox<super::ChatsEvent>,
    /// The client's rate limiter (sends draw from it).
    pub limiter: &'a mut Limiter,
    /// The usable access token and its generation, if any.
    pub token: Option<(&'a Secret<String>, u64)>,
    /// Our agent id (to tell our own messages apart).
    pub agent_id: Option<&'a str>,
    /// REST calls to make (results come back through `on_history` / `on_pending`).
    pub needs: &'a mut Vec<Need>,
    /// Set when a close 4001 says the token with this generation is no good.
    pub reject_generation: &'a mut Option<u64>,
}

#[derive(Debug, Default)]
struct Channel {
    want: bool,
    confirmed: bool,
    /// Last delivered message: (id, timestamp as sent).
    cursor: Option<(String, String)>,
    seen: backfill::Seen,
    backfill: Option<Box<Backfill>>,
    held: Vec<Box<Message>>,
    /// Deliveries awaiting the host's confirmation (with `confirm_deliveries`).
    acks: Option<Box<resume::Acks>>,
    queue: VecDeque<Send>,
    unacked: Option<Send>,
    limbo: Option<Send>,
}

impl Channel {
    fn idle(&self) -> bool {
        !self.want && self.queue.is_empty() && self.unacked.is_none() && self.limbo.is_none()
    }
}

/// The realtime (WebSocket) session: connects, subscribes, reconnects and backfills.
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
    /// The one request on this socket waiting for its answer. The server runs each frame's
    /// handler as its own async task, so answers to frames that touch the database can
    /// overtake each other; `message_ack`, trust acks and request errors carry no correlation
    /// id. With one at a time, every answer belongs to it.
    inflight: Option<Inflight>,
    /// Read positions a previous process saved (see `resume`).
    restored: BTreeMap<String, resume::Position>,
    /// Bumped when a position may have moved.
    moves: u64,
    /// Trust ops accepted while connected, not yet sent.
    trust_queue: VecDeque<TrustCall>,
    /// The channel of the previous frame if it was `subscribed` (its `context` comes next).
    last_subscribed: Option<String>,
    next_poll_ms: Option<u64>,
    /// The current gap between pending polls (see `RealtimeConfig::pending_poll_min_ms`).
    poll_every_ms: u64,
    /// A live message from another agent arrived: poll pending at the fastest pace again.
    poll_soon: bool,
    poll_in_flight: bool,
    since: Option<String>,
    rng: crate::io::SeededRng,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").field("link", &self.link).field("channels", &self.channels.len()).finish_non_exhaustive()
    }
}

impl Realtime {
    /// A session for `ws_base`, not yet connected.
    pub fn new(ws_base: String, seed: [u8; 32], config: RealtimeConfig) -> Self {
        let rng = crate::io::SeededRng::new(seed, 7); // independent of the auth session's stream
        Self {
            config,
            ws_base,
            link: Link::Off,
            attempt: 0,
            epoch: 0,
            channels: BTreeMap::new(),
            inflight: None,
            restored: BTreeMap::new(),
            moves: 0,
            trust_queue: VecDeque::new(),
            last_subscribed: None,
            next_poll_ms: None,
            poll_every_ms: 0,
            poll_soon: false,
            poll_in_flight: false,
            since: None,
            rng,
        }
    }

    /// The WebSocket base URL.
    pub fn ws_base(&self) -> &str {
        &self.ws_base
    }
    /// Used from the next connection on; the session's seed, timers and channels stay.
    pub fn set_ws_base(&mut self, ws_base: String) {
        self.ws_base = ws_base;
    }
    /// Replaces the timing configuration.
    pub fn set_config(&mut self, config: RealtimeConfig) {
        self.config = config;
    }
    /// The timing configuration.
    pub fn config(&self) -> RealtimeConfig {
        self.config
    }
    /// Whether the socket is open.
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Open { .. })
    }
    /// Whether the session is on (not off and not failed for good).
    pub fn is_active(&self) -> bool {
        !matches!(self.link, Link::Off | Link::Fatal)
    }
    /// Whether the session waits for an access token to connect.
    pub fn needs_token(&self) -> bool {
        matches!(self.link, Link::NeedToken)
    }
    /// The connection id of the socket being opened or open.
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

    /// Starts the session; it connects once a token is usable.
    pub fn connect(&mut self, now_ms: u64, io: &mut Io) {
        self.link_input(LinkInput::Connect, now_ms, io);
    }

    /// Ends the session and closes the socket.
    pub fn disconnect(&mut self, io: &mut Io) {
        self.link_input(LinkInput::Disconnect, 0, io);
    }

    /// Subscribes to channels (kept across reconnects).
    pub fn subscribe(&mut self, channels: &[String], now_ms: u64, io: &mut Io) {
        let mut fresh = vec![];
        for c in channels {
            let restored = self.restored_cursor(c);
            let ch = self.channels.entry(c.clone()).or_default();
            if !ch.want {
                ch.want = true;
                fresh.push(c.clone());
            }
            if ch.cursor.is_none() {
                // Followed by a previous process: backfill from where it stopped.
                ch.cursor = restored;
            }
            if self.config.confirm_deliveries && ch.acks.is_none() {
                ch.acks = Some(Box::new(resume::Acks::from(ch.cursor.clone())));
            }
        }
        if let Link::Open { conn, .. } = self.link
            && !fresh.is_empty()
        {
            self.send_frame(conn, wire::subscribe(&fresh), now_ms, io);
        }
        self.step(now_ms, io);
    }

    /// Stop following `channels`. Every channel given goes to the server, followed or not: the
    /// server drops the agent from a channel for all of its sockets, and answers each one.
    pub fn unsubscribe(&mut self, channels: &[String], now_ms: u64, io: &mut Io) {
        let mut gone: Vec<String> = vec![];
        for c in channels {
            if let Some(ch) = self.channels.get_mut(c) {
                ch.want = false;
                ch.confirmed = false;
                ch.backfill = None;
                ch.held.clear();
            }
            if !gone.contains(c) {
                gone.push(c.clone());
            }
        }
        if let Link::Open { conn, .. } = self.link
            && !gone.is_empty()
        {
            self.send_frame(conn, wire::unsubscribe(&gone), now_ms, io);
        }
        self.channels.retain(|_, c| !c.idle());
    }

    /// Queue a trust op for the open socket; its outcome is a `trust_succeeded` or
    /// `trust_failed` event with the returned id. Refused when not connected: a trust op is
    /// not replayed after a reconnect the caller did not see.
    pub fn trust(&mut self, op: TrustOp, target: &str, reason: Option<&str>, now_ms: u64, io: &mut Io) -> crate::error::Result<CallId> {
        if !self.is_connected() {
            let message = format!("{}: the realtime session is not connected (connect, then wait for `connected`)", op.op());
            return Err(crate::error::Error::new(crate::error::ErrorCode::InvalidState, message));
        }
        let id = io.out.next_id();
        self.trust_queue.push_back(TrustCall { id, op, target: target.to_owned(), reason: reason.map(str::to_owned), sent_ms: 0 });
        self.step(now_ms, io);
        Ok(id)
    }

    /// Sends a typing indicator on the channel.
    pub fn typing(&mut self, channel: &str, now_ms: u64, io: &mut Io) {
        if let Link::Open { conn, .. } = self.link {
            self.send_frame(conn, wire::typing(channel), now_ms, io);
        }
    }

    // ---- inputs ---------------------------------------------------------------------

    /// The host opened connection `conn`.
    pub fn handle_open(&mut self, conn: ConnId, now_ms: u64, io: &mut Io) {
        self.link_input(LinkInput::Opened(conn), now_ms, io);
    }

    /// Connection `conn` closed or failed; schedules a reconnect unless the close is final.
    pub fn handle_closed(&mut self, conn: ConnId, code: u16, reason: &str, now_ms: u64, io: &mut Io) {
        self.link_input(LinkInput::Closed { conn, code, reason }, now_ms, io);
    }

    /// Do whatever is due at `now_ms`: open when a token is there, ping, detect dead
    /// sockets and lost acks, release queued sends, poll pending.
    pub fn step(&mut self, now_ms: u64, io: &mut Io) {
        // Nothing to do while stopped; also keeps optimised code from comparing fields of an
        // inactive variant before the discriminant (valgrind reports that as uninitialised).
        if matches!(self.link, Link::Off | Link::Fatal) {
            return;
        }
        match self.link {
            Link::Backoff { .. } | Link::NeedToken => self.link_input(LinkInput::Due, now_ms, io),
            Link::Open { conn, last_out_ms, last_in_ms, .. } => self.tick_open(conn, last_out_ms, last_in_ms, now_ms, io),
            _ => {}
        }
    }

    // ---- the link -------------------------------------------------------------------

    /// Every change of the link, in one match over (link, input). Each arm performs the
    /// transition's effects and names the next link, and whether the clock should run
    /// right after (`step`); the link is assigned here and nowhere else.
    fn link_input(&mut self, input: LinkInput, now_ms: u64, io: &mut Io) {
        use LinkInput as I;
        let (next, then_step) = match (self.link.clone(), input) {
            (Link::Off | Link::Fatal, I::Connect) => {
                self.attempt = 0;
                (Link::NeedToken, true)
            }
            (link, I::Connect) => (link, true),
            (link, I::Disconnect) => {
                if let Link::Opening { conn, .. } | Link::Open { conn, .. } = link {
                    io.out.ws_close(conn, 1000, "client closing");
                }
                self.drop_connection(io);
                self.fail_trust_queue("NOT_CONNECTED", "the session was disconnected before the operation was sent", io);
                (Link::Off, false)
            }
            (Link::Backoff { until_ms }, I::Due) if now_ms >= until_ms => (Link::NeedToken, true),
            // Never connect without a token: that would be a read-only observer.
            (Link::NeedToken, I::Due) => match self.open_socket(io) {
                Some(opening) => (opening, false),
                None => (Link::NeedToken, false),
            },
            (Link::Opening { conn: c, generation }, I::Opened(conn)) if c == conn => (self.opened(conn, generation, now_ms, io), true),
            (Link::Opening { conn: c, generation } | Link::Open { conn: c, generation, .. }, I::Closed { conn, code, reason }) if c == conn => {
                let opened_ms = match self.link {
                    Link::Open { opened_ms, .. } => Some(opened_ms),
                    _ => None,
                };
                let next = self.closed(opened_ms, generation, code, reason, now_ms, io);
                // After a 4001 the token in `io` is the rejected one: wait for the owner's next step.
                let then_step = !matches!(next, Link::Fatal) && code != 4001;
                (next, then_step)
            }
            // A stale connection's open or close, a timer not yet due: nothing changes.
            (link, I::Due | I::Opened(_) | I::Closed { .. }) => (link, false),
        };
        self.link = next;
        if then_step {
            self.step(now_ms, io);
        }
    }
}

/// The backfill page of `channel` before `before` (newest first).
fn history(channel: &str, page: u32, before: Option<String>) -> ChatsCommand {
    ChatsCommand::History { channel_id: channel.to_owned(), limit: Some(page), before }
}
