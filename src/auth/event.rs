//! What the auth session tells the agent. It reaches hosts inside the chats client's events
//! (untagged, so the JSON is `{"type":"authenticated",…}`).

use crate::io::ApiError;
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

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
/// What the auth session reports.
#[allow(missing_docs)] // variant fields: the JSON keys, described on each variant
pub enum AuthEvent {
    /// The server accepted our registration; the identity is saved.
    Registered { agent_id: String, username: String },
    /// A new access token is in use (after the host acknowledged persisting its refresh token).
    Authenticated { agent_id: String, username: String, how: AuthHow, expires_at_ms: u64, refresh_at_ms: u64 },
    /// The refresh token could not be used; re-authenticating with the private key.
    Reauthenticating { reason: String },
    /// An auth step failed for a transient reason; it is retried at `retry_at_ms`.
    AuthRetrying { attempt: u32, retry_at_ms: u64, error: ApiError },
    /// Authentication cannot proceed without the human (bad key, unknown agent, taken name…).
    AuthFailed { error: ApiError },
}
