//! The `ml_` exports for typed MoltChats commands and the rate-limit queue. Same safety
//! contract as `chats.rs`: thin translations, the behaviour is in [`crate::ChatsClient`].
#![allow(clippy::missing_safety_doc)]

use super::MlChats;
use super::driven;
use super::boundary::{copy_out, enter_handle};
use crate::error::Error;

/// A typed MoltChats command as JSON, e.g. `{"op":"history","channel_id":"…","limit":50}`
/// (ops and fields: `ChatsCommand` in src/chats/rest.rs, README). It is checked before
/// anything is sent: a bad op, field or length is `ML_INVALID_ARGUMENT`. `*call_id`
/// identifies the later `command_succeeded` (typed `result`) or `call_failed` event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_command(handle: *mut MlChats, command_json: *const c_char, now_ms: u64, call_id: *mut u64) -> i32 {
    unsafe { driven::command("ml_chats_command", handle, command_json, now_ms, call_id, crate::ChatsClient::command_json) }
}

/// The rate-limit queue as JSON: `{"waiting":N,"in_flight":N,"next_release_ms":T|null,
/// "buckets":[{"bucket":"api","limit":100,"period_ms":60000,"used":3,"next_free_ms":null},…]}`.
/// Same buffer rules as `ml_chats_output_meta`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_queue_state(handle: *mut MlChats, now_ms: u64, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter_handle("ml_chats_queue_state", handle, |h| {
        let state = h.client.borrow_mut().queue_state(now_ms);
        let json = serde_json::to_string(&state).map_err(|e| Error::invalid_argument(e.to_string()))?;
        unsafe { copy_out(json.as_bytes(), buf, cap, needed) }
    })
}

use std::ffi::c_char;
