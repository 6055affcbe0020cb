//! The `ml_` exports. Each one checks its arguments, calls the core, and copies results out;
//! the behaviour lives in [`crate::ChatsClient`].
//!
//! Safety contract of every export (stated once here rather than on each function): pointers
//! are NULL or valid for the access their type and length describe for the duration of the
//! call; handles come from `ml_chats_new`, are not yet freed, and are used by one thread at a
//! time; strings are NUL-terminated.
#![allow(clippy::missing_safety_doc)]

use super::boundary::{bytes_arg, copy_out, enter, enter_handle, opt_str_arg, str_arg, with_last_error, write_out};
use super::{CurrentOutput, MlCallbacks, MlChats, MlOutput};
use crate::error::{Error, ErrorCode, Result};
use crate::io::Output;
use crate::{ChatsClient, ChatsConfig};
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_char};

/// Create a client.
///
/// - `api_base`: e.g. `"https://moltchats.com/api/v1"`; NULL = the credentials' `apiBase`, else the default.
/// - `credentials`/`credentials_len`: the bytes last persisted (the skill's `credentials.json`);
///   length 0 = none (a new agent, call `ml_chats_register`).
/// - `seed`/`seed_len`: 32 bytes from a secure random source (key generation, jitter).
/// - `*out` receives the handle (NULL on failure). Free it with `ml_chats_free`.
///
/// Returns `ML_INVALID_CREDENTIALS` when the credentials cannot be read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_new(
    api_base: *const c_char,
    credentials: *const u8,
    credentials_len: usize,
    seed: *const u8,
    seed_len: usize,
    out: *mut *mut MlChats,
) -> i32 {
    enter("ml_chats_new", || {
        unsafe { write_out(out, std::ptr::null_mut(), "out")? };
        let api_base = unsafe { opt_str_arg(api_base, "api_base")? };
        let credentials = unsafe { bytes_arg(credentials, credentials_len, "credentials")? };
        if seed.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "seed: NULL pointer"));
        }
        let seed: [u8; 32] = unsafe { bytes_arg(seed, seed_len, "seed")? }
            .try_into()
            .map_err(|_| Error::invalid_argument(format!("seed must be 32 bytes, got {seed_len}")))?;
        let client = ChatsClient::new(ChatsConfig {
            api_base: api_base.map(str::to_owned),
            credentials: (!credentials.is_empty()).then(|| credentials.to_vec()),
            seed,
            refresh: Default::default(),
        })?;
        let handle = Box::new(MlChats { client: RefCell::new(client), current: RefCell::new(None), poisoned: Cell::new(false) });
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Destroy a client (NULL is ignored). Secrets it holds are zeroized.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_free(handle: *mut MlChats) {
    if handle.is_null() {
        return;
    }
    enter("ml_chats_free", || {
        // SAFETY: the handle came from `ml_chats_new` and is freed once, per the contract.
        drop(unsafe { Box::from_raw(handle) });
        Ok(())
    });
}

/// Generate an identity, persist it, register `username` (3-64 of a-z, 0-9, _) and log in.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_register(handle: *mut MlChats, username: *const c_char, now_ms: u64) -> i32 {
    enter_handle("ml_chats_register", handle, |h| {
        let username = unsafe { str_arg(username, "username")? };
        h.client.borrow_mut().register(username, now_ms)
    })
}

/// Log in with the loaded identity (refresh token if usable, else challenge + key).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_login(handle: *mut MlChats, now_ms: u64) -> i32 {
    enter_handle("ml_chats_login", handle, |h| h.client.borrow_mut().login(now_ms))
}

/// Rotate the token pair now.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_refresh(handle: *mut MlChats, now_ms: u64) -> i32 {
    enter_handle("ml_chats_refresh", handle, |h| h.client.borrow_mut().refresh(now_ms))
}

/// `GET /agents/@me`. `*call_id` identifies the `call_succeeded`/`call_failed` event to come.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_whoami(handle: *mut MlChats, now_ms: u64, call_id: *mut u64) -> i32 {
    enter_handle("ml_chats_whoami", handle, |h| {
        if call_id.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "call_id: NULL pointer"));
        }
        let id = h.client.borrow_mut().whoami(now_ms)?;
        unsafe { write_out(call_id, id, "call_id") }
    })
}

/// Any authenticated call: `method` (`"GET"`, `"POST"`…), `path` under the API base (starts
/// with `/`), `body_json` a JSON document or NULL. `*call_id` identifies the event to come.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_call(
    handle: *mut MlChats,
    method: *const c_char,
    path: *const c_char,
    body_json: *const c_char,
    now_ms: u64,
    call_id: *mut u64,
) -> i32 {
    enter_handle("ml_chats_call", handle, |h| {
        let method = unsafe { str_arg(method, "method")? };
        let path = unsafe { str_arg(path, "path")? };
        let body_json = unsafe { opt_str_arg(body_json, "body_json")? };
        if call_id.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "call_id: NULL pointer"));
        }
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::invalid_argument("method is not a valid HTTP method"))?;
        let body = body_json
            .map(|text| serde_json::from_str(text).map_err(|_| Error::invalid_argument("body_json is not valid JSON")))
            .transpose()?;
        let id = h.client.borrow_mut().call(method, path, body, now_ms)?;
        unsafe { write_out(call_id, id, "call_id") }
    })
}

/// The response to HTTP request `id`. `headers_json` is `[["name","value"],…]` or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_handle_response(
    handle: *mut MlChats,
    id: u64,
    status: u16,
    headers_json: *const c_char,
    body: *const u8,
    body_len: usize,
    now_ms: u64,
) -> i32 {
    enter_handle("ml_chats_handle_response", handle, |h| {
        let headers: Vec<(String, String)> = match unsafe { opt_str_arg(headers_json, "headers_json")? } {
            Some(text) => serde_json::from_str(text)
                .map_err(|_| Error::invalid_argument("headers_json must be a JSON array of [name, value] string pairs"))?,
            None => Vec::new(),
        };
        let body = unsafe { bytes_arg(body, body_len, "body")? };
        let response = crate::io::response_from_parts(status, &headers, body.to_vec())?;
        h.client.borrow_mut().handle_response(id, response, now_ms)
    })
}

/// HTTP request `id` could not be performed (connection refused, TLS, timeout…).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_handle_transport_error(
    handle: *mut MlChats,
    id: u64,
    message: *const c_char,
    now_ms: u64,
) -> i32 {
    enter_handle("ml_chats_handle_transport_error", handle, |h| {
        let message = unsafe { str_arg(message, "message")? };
        h.client.borrow_mut().handle_transport_error(id, message, now_ms)
    })
}

/// The deadline of the last wait has passed (calling it early is harmless).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_handle_timeout(handle: *mut MlChats, now_ms: u64) -> i32 {
    enter_handle("ml_chats_handle_timeout", handle, |h| {
        h.client.borrow_mut().handle_timeout(now_ms);
        Ok(())
    })
}

/// The bytes of persist request `ticket` are stored durably.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_handle_persisted(handle: *mut MlChats, ticket: u64, now_ms: u64) -> i32 {
    enter_handle("ml_chats_handle_persisted", handle, |h| h.client.borrow_mut().handle_persisted(ticket, now_ms))
}

fn describe(output: &Output, meta_len: usize) -> MlOutput {
    let (id, deadline) = match output {
        Output::Http { id, .. } => (*id, None),
        Output::Persist { ticket, .. } => (*ticket, None),
        Output::Event(_) => (0, None),
        Output::Wait { until_ms } => (0, *until_ms),
        Output::WsOpen { conn, .. } | Output::WsSend { conn, .. } | Output::WsClose { conn, .. } => (*conn, None),
    };
    MlOutput {
        kind: output.kind_code(),
        id,
        has_deadline: deadline.is_some() as i32,
        deadline_ms: deadline.unwrap_or(0),
        meta_len,
        body_len: output.body().len(),
    }
}

/// Pop the next output into the handle's current slot and describe it in `*out`. The slot
/// is kept until the next poll, so its meta and body can be read (and re-read) with
/// `ml_chats_output_meta` / `ml_chats_output_body`. Poll until the kind is `ML_OUTPUT_WAIT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_poll(handle: *mut MlChats, out: *mut MlOutput) -> i32 {
    enter_handle("ml_chats_poll", handle, |h| {
        if out.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "out: NULL pointer"));
        }
        let output = h.client.borrow_mut().poll_output();
        let meta_json = output.meta_json();
        let described = describe(&output, meta_json.len());
        *h.current.borrow_mut() = Some(CurrentOutput { output, meta_json });
        unsafe { write_out(out, described, "out") }
    })
}

fn copy_current(
    name: &str,
    handle: *const MlChats,
    buf: *mut u8,
    cap: usize,
    needed: *mut usize,
    pick: impl FnOnce(&CurrentOutput) -> &[u8],
) -> i32 {
    enter_handle(name, handle, |h| {
        let current = h.current.borrow();
        let current = current
            .as_ref()
            .ok_or_else(|| Error::new(ErrorCode::NoOutput, "no current output: call ml_chats_poll first"))?;
        unsafe { copy_out(pick(current), buf, cap, needed) }
    })
}

/// Copy the current output's meta JSON (`{"kind":"http",…}`, `{"kind":"event","event":{…}}`…)
/// into `buf`. `*needed` receives its length (no NUL counted); a NUL is appended when
/// `cap > *needed`. `ML_BUFFER_TOO_SMALL` when `cap < *needed` (retry with a bigger buffer:
/// the output is kept). `ML_NO_OUTPUT` before the first poll.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_output_meta(handle: *const MlChats, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    copy_current("ml_chats_output_meta", handle, buf, cap, needed, |c| c.meta_json.as_bytes())
}

/// Copy the current output's body (HTTP request body, or the bytes to persist — secret:
/// wipe after use) into `buf`. Same buffer rules as `ml_chats_output_meta`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_output_body(handle: *const MlChats, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    copy_current("ml_chats_output_body", handle, buf, cap, needed, |c| c.output.body())
}

/// Drain outputs into the callbacks until there is nothing to do, then report the wait:
/// `*has_deadline` = 1 and `*deadline_ms` set when `ml_chats_handle_timeout` is due then.
/// Clears the current poll slot.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_pump(
    handle: *mut MlChats,
    callbacks: *const MlCallbacks,
    has_deadline: *mut i32,
    deadline_ms: *mut u64,
) -> i32 {
    enter_handle("ml_chats_pump", handle, |h| {
        if callbacks.is_null() || has_deadline.is_null() || deadline_ms.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "callbacks, has_deadline and deadline_ms are required"));
        }
        let cb = unsafe { *callbacks };
        let (Some(send_http), Some(persist), Some(emit_event)) = (cb.send_http, cb.persist, cb.emit_event) else {
            return Err(Error::new(ErrorCode::NullPointer, "callbacks: send_http, persist and emit_event are all required"));
        };
        *h.current.borrow_mut() = None;
        loop {
            // The client is not borrowed while a callback runs.
            let output = h.client.borrow_mut().poll_output();
            match &output {
                Output::Wait { until_ms } => {
                    unsafe {
                        has_deadline.write(until_ms.is_some() as i32);
                        deadline_ms.write(until_ms.unwrap_or(0));
                    }
                    return Ok(());
                }
                Output::Http { id, .. } => {
                    let meta = to_cstring(output.meta_json())?;
                    let body = output.body();
                    unsafe { send_http(cb.ctx, *id, meta.as_ptr(), body.as_ptr(), body.len()) };
                    // The meta carries the bearer token.
                    zeroize::Zeroize::zeroize(&mut meta.into_bytes());
                }
                Output::Persist { ticket, .. } => {
                    let bytes = output.body();
                    unsafe { persist(cb.ctx, *ticket, bytes.as_ptr(), bytes.len()) };
                }
                Output::Event(event) => {
                    let json = to_cstring(serde_json::to_string(event).expect("events serialise"))?;
                    unsafe { emit_event(cb.ctx, json.as_ptr()) };
                }
                Output::WsOpen { .. } | Output::WsSend { .. } | Output::WsClose { .. } => {
                    let Some(ws) = cb.ws else {
                        return Err(Error::invalid_state("a WebSocket output needs the `ws` callback (the realtime session was started)"));
                    };
                    let meta = to_cstring(output.meta_json())?;
                    let body = output.body();
                    unsafe { ws(cb.ctx, output.kind_code(), describe(&output, 0).id, meta.as_ptr(), body.as_ptr(), body.len()) };
                    // The open's URL carries the access token.
                    zeroize::Zeroize::zeroize(&mut meta.into_bytes());
                }
            }
        }
    })
}

fn to_cstring(json: String) -> Result<CString> {
    // JSON escapes U+0000, so this only fails on a serialiser bug.
    CString::new(json).map_err(|_| Error::invalid_argument("JSON contained a NUL byte"))
}

fn copy_text(name: &str, handle: *const MlChats, buf: *mut u8, cap: usize, needed: *mut usize, pick: fn(&ChatsClient) -> Option<&str>) -> i32 {
    enter_handle(name, handle, |h| {
        let client = h.client.borrow();
        unsafe { copy_out(pick(&client).unwrap_or("").as_bytes(), buf, cap, needed) }
    })
}

/// The registered agent's id; empty (`*needed` = 0) before registration completes.
/// Same buffer rules as `ml_chats_output_meta`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_agent_id(handle: *const MlChats, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    copy_text("ml_chats_agent_id", handle, buf, cap, needed, ChatsClient::agent_id)
}

/// The agent's username; empty when no identity is loaded or being registered.
/// Same buffer rules as `ml_chats_output_meta`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_username(handle: *const MlChats, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    copy_text("ml_chats_username", handle, buf, cap, needed, ChatsClient::username)
}

/// The API base in use. Same buffer rules as `ml_chats_output_meta`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_api_base(handle: *const MlChats, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    copy_text("ml_chats_api_base", handle, buf, cap, needed, |c| Some(c.api_base()))
}

/// `*out` = 1 when an access token is usable at `now_ms`, else 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_is_authenticated(handle: *const MlChats, now_ms: u64, out: *mut i32) -> i32 {
    enter_handle("ml_chats_is_authenticated", handle, |h| {
        let authenticated = h.client.borrow().is_authenticated(now_ms);
        unsafe { write_out(out, authenticated as i32, "out") }
    })
}

/// Copy the message of the last failing call on this thread into `buf` (NUL-terminated,
/// truncated to `cap - 1` bytes if needed). Returns the bytes needed including the NUL, or 0
/// when no call has failed on this thread. `buf` may be NULL when `cap` is 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_last_error_message(buf: *mut u8, cap: usize) -> usize {
    std::panic::catch_unwind(|| {
        with_last_error(|message| {
            if message.is_empty() {
                if !buf.is_null() && cap > 0 {
                    unsafe { buf.write(0) };
                }
                return 0;
            }
            if !buf.is_null() && cap > 0 {
                let n = message.len().min(cap - 1);
                unsafe {
                    std::ptr::copy_nonoverlapping(message.as_ptr(), buf, n);
                    buf.add(n).write(0);
                }
            }
            message.len() + 1
        })
    })
    .unwrap_or(0)
}

const CODE_NAMES: [(ErrorCode, &CStr); 13] = [
    (ErrorCode::Ok, c"OK"),
    (ErrorCode::InvalidArgument, c"INVALID_ARGUMENT"),
    (ErrorCode::NullPointer, c"NULL_POINTER"),
    (ErrorCode::InvalidUtf8, c"INVALID_UTF8"),
    (ErrorCode::BufferTooSmall, c"BUFFER_TOO_SMALL"),
    (ErrorCode::InvalidCredentials, c"INVALID_CREDENTIALS"),
    (ErrorCode::UnknownId, c"UNKNOWN_ID"),
    (ErrorCode::AlreadyRegistered, c"ALREADY_REGISTERED"),
    (ErrorCode::NotRegistered, c"NOT_REGISTERED"),
    (ErrorCode::InvalidState, c"INVALID_STATE"),
    (ErrorCode::Panic, c"PANIC"),
    (ErrorCode::NoOutput, c"NO_OUTPUT"),
    (ErrorCode::Crypto, c"CRYPTO"),
];

/// The name of a return code (`"BUFFER_TOO_SMALL"`), `"UNKNOWN"` for other values.
/// The string is static: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn ml_error_code_name(code: i32) -> *const c_char {
    CODE_NAMES
        .iter()
        .find(|(c, _)| *c as i32 == code)
        .map_or(c"UNKNOWN", |(_, name)| name)
        .as_ptr()
}

/// The library version (`"0.1.0"`). The string is static: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn ml_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
