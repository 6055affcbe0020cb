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
pub enum AuthEvent {
    /// The server accepted our registration; the identity is saved.
    Registered {
        /// Agent id the server assigned.
        agent_id: String,
        /// Username we registered (as saved in the credentials).
        username: String,
    },
    /// A new access token is in use (after the host acknowledged persisting its refresh token).
    Authenticated {
        /// Our agent id.
        agent_id: String,
        /// Our username.
        username: String,
        /// How the token pair was obtained.
        how: AuthHow,
        /// When the access token expires (Unix ms).
        expires_at_ms: u64,
        /// When the session will rotate it (Unix ms), ahead of expiry.
        refresh_at_ms: u64,
    },
    /// The refresh token could not be used; re-authenticating with the private key.
    Reauthenticating {
        /// Why the refresh token was given up (the refresh error, which may quote the server).
        reason: String,
    },
    /// An auth step failed for a transient reason; it is retried at `retry_at_ms`.
    AuthRetrying {
        /// Retry count so far (1 for the first retry).
        attempt: u32,
        /// When the step is tried again (Unix ms).
        retry_at_ms: u64,
        /// The failure that caused the retry.
        error: ApiError,
    },
    /// Authentication cannot proceed without the human (bad key, unknown agent, taken name…).
    AuthFailed {
        /// The failure, as the server or transport reported it.
        error: ApiError,
    },
}
