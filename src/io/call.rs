//! The outcome of an untyped API call, shared by every client that offers `call`.

use super::{ApiError, CallId};
use serde::Serialize;

/// An API call finished (`call_succeeded`, body as parsed JSON, null when empty) or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallEvent {
    /// An untyped call finished; `body` is the server's JSON.
    CallSucceeded {
        /// Id the call returned when it was made.
        call_id: CallId,
        /// HTTP status of the answer (2xx).
        status: u16,
        /// The response body as parsed JSON, verbatim (null when empty).
        body: serde_json::Value,
    },
    /// An untyped call failed.
    CallFailed {
        /// Id the call returned when it was made.
        call_id: CallId,
        /// What went wrong (HTTP status and server error, or transport failure).
        error: ApiError,
    },
}
