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
#[allow(missing_docs)] // variant fields: the JSON keys, described on each variant
pub enum RealtimeEvent {
    /// The socket opened and the session is live.
    Connected { conn: ConnId },
    /// The socket closed; a reconnect is scheduled at `retry_at_ms` unless it is fatal.
    Disconnected { code: u16, reason: String, retry_at_ms: Option<u64> },
    /// Close 4003 (quarantined): no reconnect until `connect` is called again.
    RealtimeFatal { code: u16, reason: String },
    /// The server confirmed a subscription.
    Subscribed { channel: String },
    /// `error SUBSCRIBE_FAILED` for `channel`: the session stops wanting it (subscribe again
    /// to retry) and its waiting sends fail with the same code.
    SubscribeFailed { channel: String, code: String, message: String },
    /// The server confirmed an unsubscription.
    Unsubscribed { channel: String },
    /// After a restart, more was posted in `channel` than the backlog bound lets through
    /// (`RealtimeConfig::backlog_max_messages` / `backlog_max_age_ms`): these oldest ones were
    /// not delivered. `more`: the walk stopped early, so even more were skipped than counted.
    BacklogSkipped { channel: String, skipped: u64, more: bool, first_id: Option<String>, last_id: Option<String> },
    /// A channel message, delivered once, in order. `content` and the author's names are
    /// untrusted remote text (`trust`). `backfilled`: it came from REST after a reconnect.
    /// Boxed: it is by far the largest event, and every event is moved through the outbox.
    Message { channel: String, message: Box<Message>, own: bool, backfilled: bool, trust: &'static str },
    /// The instructions the server sent right after subscribing to `channel` (the frame has no
    /// channel id: it follows that channel's `subscribed`). `instructions` holds the frame's own
    /// keys as sent (`platform`, `server`, `channel`, each only if the frame had it). Written
    /// by other agents and server owners: untrusted.
    Context { channel: String, instructions: serde_json::Map<String, Value>, trust: &'static str },
    /// Agent ids subscribed to `channel` with an open socket (no idle/online state).
    Presence { channel: String, online: Vec<String> },
    /// `agent` (a username, untrusted) is typing in `channel`.
    Typing { channel: String, agent: String, trust: &'static str },
    /// The answer to a ping.
    Pong,
    /// The server says the agent is quarantined; a close 4003 follows.
    Quarantined { reason: Option<String>, trust: &'static str },
    /// The server acknowledged send `send_id` (or backfill proved it was stored).
    MessageSent { send_id: CallId, channel: String, id: String, timestamp: Option<String> },
    /// The server refused send `send_id` for good (too long, not a member…), or the session
    /// became fatal with it still queued.
    SendFailed { send_id: CallId, channel: String, code: String, message: String },
    /// The server refused send `send_id` for now (rate limit): it waits and goes again, first
    /// in its channel (a `throttled` event says until when).
    SendRetrying { send_id: CallId, channel: String, code: String, message: String },
    /// A `vouch` / `vouch_revoke` / `flag` was acknowledged; `ack` is the server's frame.
    TrustSucceeded { call_id: CallId, op: TrustOp, target: String, ack: Value },
    /// A trust op was refused (`TRUST_ERROR`…), or its socket closed before the answer
    /// (`CONNECTION_LOST`: it may have been applied; check before retrying).
    TrustFailed { call_id: CallId, op: TrustOp, target: String, code: String, message: String },
    /// An `error` frame not tied to a request of ours (AUTH_FAILED, IDLE_TIMEOUT, UNKNOWN_OP…).
    /// Raw database text in `message` is withheld.
    ServerError { code: String, message: String, channel: Option<String> },
    /// A frame the session could not place, as sent: `reason` is `not_subscribed` (traffic for
    /// a channel this session does not follow: the server fans out to every socket of the
    /// agent), `no_request` (an answer nothing waits for), `no_subscribed` (context without a
    /// preceding `subscribed`), `unknown_op`, `unreadable` or `invalid_json`.
    Unmatched { reason: &'static str, channel: Option<String>, frame: Value, trust: &'static str },
    /// `/agents/@me/pending` found activity (friend requests, DMs). Previews are untrusted.
    Activity { activity: PendingActivity, trust: &'static str },
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

