//! The `ml_dm_` exports: Moltbook private messages. One generic command entry point
//! (`ml_dm_command`, a JSON-described [`crate::DmCommand`]) plus the inputs and outputs every
//! client shares (bodies in `driven.rs`). The behaviour lives in [`crate::DmClient`].
//!
//! Safety contract: as in `chats.rs` (pointers valid for the call, handles from `ml_dm_new`
//! not yet freed, one thread at a time, NUL-terminated strings).
#![allow(clippy::missing_safety_doc)]

use super::boundary::{copy_out, enter, enter_handle, free_handle, opt_str_arg, seed_arg, str_arg, write_out};
use super::driven::{self, Part};
use super::{Handle, MlCallbacks, MlDm, MlOutput};
use crate::io::Secret;
use crate::{DmClient, DmConfig};
use std::ffi::c_char;

/// Create a DM client.
///
/// - `api_base`: NULL = `https://www.moltbook.com/api/v1`. Only that `www.` host or a loopback
///   URL (a sandbox) is accepted: the bare `moltbook.com` is refused (`ML_INVALID_ARGUMENT`)
///   because its redirect drops the `Authorization` header.
/// - `api_key`: the agent's Moltbook API key (copied and wiped on free; never in events).
/// - `seed`/`seed_len`: 32 bytes from a secure random source (heartbeat jitter).
/// - `*out` receives the handle (NULL on failure). Free it with `ml_dm_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_new(
    api_base: *const c_char,
    api_key: *const c_char,
    seed: *const u8,
    seed_len: usize,
    out: *mut *mut MlDm,
) -> i32 {
    enter("ml_dm_new", || {
        unsafe { write_out(out, std::ptr::null_mut(), "out")? };
        let api_base = unsafe { opt_str_arg(api_base, "api_base")? };
        let api_key = unsafe { str_arg(api_key, "api_key")? };
        let seed = unsafe { seed_arg(seed, seed_len)? };
        let client = DmClient::new(DmConfig {
            api_base: api_base.map(str::to_owned),
            api_key: Secret::new(api_key.to_owned()),
            seed,
            heartbeat: Default::default(),
            agent_name: None,
        })?;
        unsafe { out.write(Box::into_raw(Box::new(MlDm(Handle::new(client))))) };
        Ok(())
    })
}

/// Destroy a DM client (NULL is ignored). The API key is zeroized.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_free(handle: *mut MlDm) {
    unsafe { free_handle("ml_dm_free", handle) }
}

/// Run a command described as JSON, e.g. `{"command":"check"}`,
/// `{"command":"request","to":"BensBot","message":"…"}` (or `"to_owner":"@handle"`),
/// `{"command":"requests"}`, `{"command":"approve","conversation_id":"…"}`,
/// `{"command":"reject","conversation_id":"…","block":true}`, `{"command":"conversations"}`,
/// `{"command":"read","conversation_id":"…"}`,
/// `{"command":"send","conversation_id":"…","message":"…","needs_human_input":true}`.
/// Invalid input is `ML_INVALID_ARGUMENT`; a command the conversation's state forbids is
/// `ML_INVALID_STATE` (nothing is sent). `*call_id` identifies the
/// `call_succeeded`/`call_failed` event to come.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_command(handle: *mut MlDm, command_json: *const c_char, now_ms: u64, call_id: *mut u64) -> i32 {
    unsafe { driven::command("ml_dm_command", handle, command_json, now_ms, call_id, crate::DmClient::command_json) }
}

/// Start the heartbeat (`GET /agents/dm/check` now, then on a backing-off schedule: follow
/// the wait deadlines with `ml_dm_handle_timeout`). `running` = 0 stops it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_heartbeat(handle: *mut MlDm, running: i32, now_ms: u64) -> i32 {
    enter_handle("ml_dm_heartbeat", handle, |h| {
        let mut client = h.client.borrow_mut();
        if running != 0 { client.start_heartbeat(now_ms) } else { client.stop_heartbeat() }
        Ok(())
    })
}

/// The state of a conversation as this client knows it (`"none"`, `"requested"`,
/// `"awaiting_owner"`, `"approved"`, `"rejected"`, `"blocked"`). Same buffer rules as
/// `ml_chats_output_meta`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_state(
    handle: *const MlDm,
    conversation_id: *const c_char,
    buf: *mut u8,
    cap: usize,
    needed: *mut usize,
) -> i32 {
    enter_handle("ml_dm_state", handle, |h| {
        let id = unsafe { str_arg(conversation_id, "conversation_id")? };
        let state = serde_json::to_value(h.client.borrow().state_of(id)).expect("states serialise");
        unsafe { copy_out(state.as_str().unwrap_or("").as_bytes(), buf, cap, needed) }
    })
}

/// The response to HTTP request `id`. `headers_json` is `[["name","value"],…]` or NULL.
/// Pass 3xx responses as they are: the core refuses them (never follow a redirect).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_handle_response(
    handle: *mut MlDm,
    id: u64,
    status: u16,
    headers_json: *const c_char,
    body: *const u8,
    body_len: usize,
    now_ms: u64,
) -> i32 {
    unsafe { driven::handle_response("ml_dm_handle_response", handle, id, status, headers_json, body, body_len, now_ms) }
}

/// HTTP request `id` could not be performed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_handle_transport_error(handle: *mut MlDm, id: u64, message: *const c_char, now_ms: u64) -> i32 {
    unsafe { driven::handle_transport_error("ml_dm_handle_transport_error", handle, id, message, now_ms) }
}

/// The deadline of the last wait has passed (calling it early is harmless).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_handle_timeout(handle: *mut MlDm, now_ms: u64) -> i32 {
    driven::handle_timeout("ml_dm_handle_timeout", handle, now_ms)
}

/// As `ml_chats_poll`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_poll(handle: *mut MlDm, out: *mut MlOutput) -> i32 {
    unsafe { driven::poll("ml_dm_poll", handle, out) }
}

/// As `ml_chats_output_meta`. HTTP metadata carries the `Authorization` header: never log it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_output_meta(handle: *const MlDm, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    unsafe { driven::copy_current("ml_dm_output_meta", handle, Part::Meta, buf, cap, needed) }
}

/// As `ml_chats_output_body`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_output_body(handle: *const MlDm, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    unsafe { driven::copy_current("ml_dm_output_body", handle, Part::Body, buf, cap, needed) }
}

/// As `ml_chats_pump` (the `persist` callback is required but never called: DMs persist nothing).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_dm_pump(
    handle: *mut MlDm,
    callbacks: *const MlCallbacks,
    has_deadline: *mut i32,
    deadline_ms: *mut u64,
) -> i32 {
    unsafe { driven::pump("ml_dm_pump", handle, callbacks, has_deadline, deadline_ms) }
}
