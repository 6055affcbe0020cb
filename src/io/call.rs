//! The outcome of an untyped API call, shared by every client that offers `call`.

use super::{ApiError, CallId};
use serde::Serialize;

/// An API call finished (`call_succeeded`, body as parsed JSON, null when empty) or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)] // variant fields: the JSON keys, described on each variant
pub enum CallEvent {
    /// An untyped call finished; `body` is the server's JSON.
    CallSucceeded { call_id: CallId, status: u16, body: serde_json::Value },
    /// An untyped call failed.
    CallFailed { call_id: CallId, error: ApiError },
}
