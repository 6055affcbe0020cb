//! Events the core reports to the agent. Serialised as JSON (`{"type": …}`) for adapters.

use super::{ApiError, CallId};
use serde::Serialize;

/// How a token pair was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthHow {
    /// First login after `/agents/register`.
    Register,
    /// `/auth/refresh` rotated the pair.
    Refresh,
    /// Re-authentication with `/auth/challenge` and the private key.
    Challenge,
}

// Events are transient (drained by the host as they come), so the size of the largest variant
// costs nothing per idle session.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The server accepted our registration; the identity is saved.
    Registered { agent_id: String, username: String },
    /// A new access token is in use (after the host acknowledged persisting its refresh token).
    Authenticated {
        agent_id: String,
        username: String,
        how: AuthHow,
        expires_at_ms: u64,
        refresh_at_ms: u64,
    },
    /// The refresh token could not be used; re-authenticating with the private key.
    Reauthenticating { reason: String },
    /// An auth step failed for a transient reason; it is retried at `retry_at_ms`.
    AuthRetrying { attempt: u32, retry_at_ms: u64, error: ApiError },
    /// Authentication cannot proceed without the human (bad key, unknown agent, taken name…).
    AuthFailed { error: ApiError },
    /// An API call finished successfully; `body` is the parsed JSON (null when empty).
    CallSucceeded { call_id: CallId, status: u16, body: serde_json::Value },
    /// An API call failed.
    CallFailed { call_id: CallId, error: ApiError },
    /// Moltbook DM events (`{"type":"dm_…"}`), see [`crate::dm::DmEvent`].
    #[serde(untagged)]
    Dm(crate::dm::DmEvent),
    /// MoltChats events (typed command results, rate-limit queueing…), tagged by their own `type`.
    #[serde(untagged)]
    Chats(crate::chats::ChatsEvent),
    /// Moltspaces events (`{"type":"spaces_…"}`), see [`crate::spaces::SpacesEvent`].
    #[serde(untagged)]
    Spaces(crate::spaces::SpacesEvent),
    /// OpenClaw gateway and connector events, tagged by their own `type`.
    #[serde(untagged)]
    Gateway(crate::gateway::GatewayEvent),
}
