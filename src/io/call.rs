//! The outcome of an untyped API call, shared by every client that offers `call`.

use super::{ApiError, CallId};
use serde::Serialize;

/// An API call finished (`call_succeeded`, body as parsed JSON, null when empty) or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallEvent {
    CallSucceeded { call_id: CallId, status: u16, body: serde_json::Value },
    CallFailed { call_id: CallId, error: ApiError },
}
