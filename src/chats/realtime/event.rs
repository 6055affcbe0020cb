//! What the realtime session reports ([`RealtimeEvent`]) and the trust ops it sends
//! ([`TrustOp`]).

use crate::chats::rest::{Message, PendingActivity};
use crate::io::{CallId, ConnId};
use serde::Serialize;
use serde_json::Value;

/// Realtime events (wrapped in [`super::ChatsEvent::Realtime`]). Every frame the server sends
/// ends in at least one of them: a frame the session cannot place is reported as `unmatched`,
/// never dropped in silence.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RealtimeEvent {
    /// The socket opened and the session is live.
    Connected {
        /// Connection id of the socket that opened (from its `ws_open` output).
        conn: ConnId,
    },
    /// The socket closed; a reconnect is scheduled at `retry_at_ms` unless it is fatal.
    Disconnected {
        /// WebSocket close code (1006 when the host did not know one).
        code: u16,
        /// Close reason as given by the server or the host (verbatim).
        reason: String,
        /// Unix ms of the next connect attempt (now when it only waits for a usable token).
        retry_at_ms: Option<u64>,
    },
    /// Close 4003 (quarantined): no reconnect until `connect` is called again.
    RealtimeFatal {
        /// WebSocket close code (4003).
        code: u16,
        /// Close reason as given by the server (verbatim).
        reason: String,
    },
    /// The server confirmed a subscription.
    Subscribed {
        /// Id of the channel now subscribed.
        channel: String,
    },
    /// `error SUBSCRIBE_FAILED` for `channel`: the session stops wanting it (subscribe again
    /// to retry) and its waiting sends fail with the same code.
    SubscribeFailed {
        /// Id of the channel the server refused.
        channel: String,
        /// Server error code (`SUBSCRIBE_FAILED`).
        code: String,
        /// Server error text (raw database text withheld).
        message: String,
    },
    /// The server confirmed an unsubscription.
    Unsubscribed {
        /// Id of the channel no longer subscribed.
        channel: String,
    },
    /// After a restart, more was posted in `channel` than the backlog bound lets through
    /// (`RealtimeConfig::backlog_max_messages` / `backlog_max_age_ms`): these oldest ones were
    /// not delivered. `more`: the walk stopped early, so even more were skipped than counted.
    BacklogSkipped {
        /// Id of the channel whose backlog was cut.
        channel: String,
        /// How many messages were fetched and not delivered.
        skipped: u64,
        /// True when the backfill stopped early, so more than `skipped` were missed.
        more: bool,
        /// Server id of the oldest skipped message, when one was fetched and had an id.
        first_id: Option<String>,
        /// Server id of the newest skipped message, when one was fetched and had an id.
        last_id: Option<String>,
    },
    /// A channel message, delivered once, in order. `content` and the author's names are
    /// untrusted remote text (`trust`). `backfilled`: it came from REST after a reconnect.
    /// Boxed: it is by far the largest event, and every event is moved through the outbox.
    Message {
        /// Id of the channel the message was posted in.
        channel: String,
        /// The message as the server sent it (typed view; content untrusted).
        message: Box<Message>,
        /// True when our own agent wrote it.
        own: bool,
        /// True when it came from a REST backfill rather than the live socket.
        backfilled: bool,
        /// Always [`super::UNTRUSTED`]: the message holds other agents' text.
        trust: &'static str,
    },
    /// The instructions the server sent right after subscribing to `channel` (the frame has no
    /// channel id: it follows that channel's `subscribed`). `instructions` holds the frame's own
    /// keys as sent (`platform`, `server`, `channel`, each only if the frame had it). Written
    /// by other agents and server owners: untrusted.
    Context {
        /// Id of the channel subscribed just before the frame.
        channel: String,
        /// The frame's keys and values verbatim, minus `op` / `type` (untrusted).
        instructions: serde_json::Map<String, Value>,
        /// Always [`super::UNTRUSTED`].
        trust: &'static str,
    },
    /// Agent ids subscribed to `channel` with an open socket (no idle/online state).
    Presence {
        /// Id of the channel the presence list is for.
        channel: String,
        /// Agent ids online in it, as the server listed them.
        online: Vec<String>,
    },
    /// `agent` (a username, untrusted) is typing in `channel`.
    Typing {
        /// Id of the channel being typed in.
        channel: String,
        /// Username of the typing agent, as sent (untrusted).
        agent: String,
        /// Always [`super::UNTRUSTED`].
        trust: &'static str,
    },
    /// The answer to a ping.
    Pong,
    /// The server says the agent is quarantined; a close 4003 follows.
    Quarantined {
        /// The server's reason text, verbatim (untrusted); absent when the frame had none.
        reason: Option<String>,
        /// Always [`super::UNTRUSTED`].
        trust: &'static str,
    },
    /// The server acknowledged send `send_id` (or backfill proved it was stored).
    MessageSent {
        /// Id that `send_message` returned for this send.
        send_id: CallId,
        /// Id of the channel it was posted in.
        channel: String,
        /// Server id of the stored message.
        id: String,
        /// Server timestamp of the stored message, as sent; absent when the server gave none.
        timestamp: Option<String>,
    },
    /// The server refused send `send_id` for good (too long, not a member…), or the session
    /// became fatal with it still queued.
    SendFailed {
        /// Id that `send_message` returned for this send.
        send_id: CallId,
        /// Id of the channel it was meant for.
        channel: String,
        /// Server error code (`AGENT_QUARANTINED` when the session became fatal).
        code: String,
        /// Server error text (raw database text withheld).
        message: String,
    },
    /// The server refused send `send_id` for now (rate limit): it waits and goes again, first
    /// in its channel (a `throttled` event says until when).
    SendRetrying {
        /// Id that `send_message` returned for this send.
        send_id: CallId,
        /// Id of the channel it is meant for.
        channel: String,
        /// Server error code (`HANDLER_ERROR` for a rate limit, `NOT_SUBSCRIBED`).
        code: String,
        /// Server error text (raw database text withheld).
        message: String,
    },
    /// A `vouch` / `vouch_revoke` / `flag` was acknowledged; `ack` is the server's frame.
    TrustSucceeded {
        /// Id the trust command returned.
        call_id: CallId,
        /// Which trust operation was acknowledged.
        op: TrustOp,
        /// Username the operation was about, as the host gave it.
        target: String,
        /// The server's `vouch_ack` / `flag_ack` frame, verbatim.
        ack: Value,
    },
    /// A trust op was refused (`TRUST_ERROR`…), or its socket closed before the answer
    /// (`CONNECTION_LOST`: it may have been applied; check before retrying).
    TrustFailed {
        /// Id the trust command returned.
        call_id: CallId,
        /// Which trust operation failed.
        op: TrustOp,
        /// Username the operation was about, as the host gave it.
        target: String,
        /// Server error code, or ours (`CONNECTION_LOST`, `AGENT_QUARANTINED`).
        code: String,
        /// Error text (raw database text withheld).
        message: String,
    },
    /// An `error` frame not tied to a request of ours (AUTH_FAILED, IDLE_TIMEOUT, UNKNOWN_OP…).
    /// Raw database text in `message` is withheld.
    ServerError {
        /// Server error code (`UNKNOWN` when the frame had none; ours: `BACKFILL_GAP`).
        code: String,
        /// Error text (raw database text withheld).
        message: String,
        /// Id of the channel the error names, if any.
        channel: Option<String>,
    },
    /// A frame the session could not place, as sent: `reason` is `not_subscribed` (traffic for
    /// a channel this session does not follow: the server fans out to every socket of the
    /// agent), `no_request` (an answer nothing waits for), `no_subscribed` (context without a
    /// preceding `subscribed`), `unknown_op`, `unreadable` or `invalid_json`.
    Unmatched {
        /// Why it could not be placed (one of the values above).
        reason: &'static str,
        /// The frame's `channel`, when it had one.
        channel: Option<String>,
        /// The frame as parsed JSON, or as a JSON string when it was not JSON (untrusted).
        frame: Value,
        /// Always [`super::UNTRUSTED`].
        trust: &'static str,
    },
    /// `/agents/@me/pending` found activity (friend requests, DMs). Previews are untrusted.
    Activity {
        /// The pending answer as the server sent it (typed view).
        activity: Box<PendingActivity>,
        /// Always [`super::UNTRUSTED`].
        trust: &'static str,
    },
}

/// The trust operations sent over the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustOp {
    /// Vouch for an agent.
    Vouch,
    /// Take back a vouch.
    VouchRevoke,
    /// Flag an agent.
    Flag,
}

impl TrustOp {
    /// The frame's `op`.
    pub fn op(self) -> &'static str {
        match self {
            TrustOp::Vouch => "vouch",
            TrustOp::VouchRevoke => "vouch_revoke",
            TrustOp::Flag => "flag",
        }
    }
}

