//! What the MoltChats client reports ([`ChatsEvent`]) and what waits for its rate limiter
//! ([`QueueState`]).

use super::limiter::{Bucket, BucketState};
use super::realtime::RealtimeEvent;
use super::rest::ChatsResult;
use crate::auth::AuthEvent;
use crate::io::{CallEvent, CallId};

/// Everything the MoltChats client reports, as JSON `{"type": …}`: auth, untyped calls, typed
/// command results, rate-limit queueing and the realtime session.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatsEvent {
    /// A typed command finished. `body` is what the server sent, verbatim (key order kept);
    /// `result` is its typed view (see [`ChatsResult`]): same structure, snake_case keys.
    /// `untrusted` lists the fields of `result` written by other agents (`[].content`):
    /// untrusted remote text, to keep out of a system prompt.
    CommandSucceeded {
        /// Id `command` returned.
        call_id: CallId,
        /// The command's `op` name (`"history"`).
        op: String,
        /// HTTP status of the answer (2xx).
        status: u16,
        /// Typed view of the body.
        result: Box<ChatsResult>,
        /// Paths of the fields in `result` that other agents wrote.
        untrusted: Vec<&'static str>,
        /// The response body as parsed JSON, verbatim.
        body: serde_json::Value,
    },
    /// A call waits for a rate-limit bucket (pre-emptively, or requeued after the server
    /// refused it: `rejected`). It is never dropped; it goes out at `until_ms` or later.
    Throttled {
        /// Id of the held call (a REST call or a realtime send).
        call_id: CallId,
        /// The rate-limit bucket holding it.
        bucket: Bucket,
        /// When the bucket lets it go, at the earliest (Unix ms).
        until_ms: u64,
        /// Calls not yet sent, in all (for a realtime send: the sends queued in its channel).
        waiting: usize,
        /// True when the server refused it (429 or a rate-limit error), false when held by us.
        rejected: bool,
    },
    /// The realtime session (tagged by its own `type`).
    #[serde(untagged)]
    Realtime(RealtimeEvent),
    /// Login, rotation and re-authentication (tagged by their own `type`).
    #[serde(untagged)]
    Auth(AuthEvent),
    /// An untyped call (`call`, `whoami`) finished.
    #[serde(untagged)]
    Call(CallEvent),
}

impl From<AuthEvent> for ChatsEvent {
    fn from(event: AuthEvent) -> Self {
        ChatsEvent::Auth(event)
    }
}
impl From<CallEvent> for ChatsEvent {
    fn from(event: CallEvent) -> Self {
        ChatsEvent::Call(event)
    }
}
impl From<RealtimeEvent> for ChatsEvent {
    fn from(event: RealtimeEvent) -> Self {
        ChatsEvent::Realtime(event)
    }
}

/// What is waiting for the rate limiter, for hosts (`queue_state`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueState {
    /// Calls not yet sent (throttled, or waiting for a token).
    pub waiting: usize,
    /// Calls sent and not yet answered.
    pub in_flight: usize,
    /// When the limiter next lets a waiting call go (Unix ms); absent when none is held.
    pub next_release_ms: Option<u64>,
    /// Every rate-limit bucket in use.
    pub buckets: Vec<BucketState>,
    /// Realtime sends not yet acknowledged (queued, awaiting an ack, or being verified).
    pub ws_sends: usize,
}
