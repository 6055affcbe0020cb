//! The bodies of the exports every client shares (`handle_*`, `poll`, `output_*`, `pump`),
//! written once over [`SansIo`]. `chats.rs` and `dm.rs` export thin `ml_<client>_*` wrappers
//! that name themselves and call these.

use super::boundary::{Poisonable, bytes_arg, copy_out, enter_handle, opt_str_arg, str_arg, write_out};
use super::{CurrentOutput, Handle, MlCallbacks, MlOutput};
use crate::error::{Error, ErrorCode, Result};
use crate::io::{Output, SansIo};
use std::ffi::{CString, c_char};
use std::ops::Deref;

/// # Safety
/// As every export: see the module docs of `chats.rs`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn handle_response<H: Deref<Target = Handle<C>> + Poisonable, C: SansIo>(
    name: &str,
    handle: *const H,
    id: u64,
    status: u16,
    headers_json: *const c_char,
    body: *const u8,
    body_len: usize,
    now_ms: u64,
) -> i32 {
    enter_handle(name, handle, |h| {
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

/// # Safety
/// As every export.
pub(crate) unsafe fn handle_transport_error<H: Deref<Target = Handle<C>> + Poisonable, C: SansIo>(
    name: &str,
    handle: *const H,
    id: u64,
    message: *const c_char,
    now_ms: u64,
) -> i32 {
    enter_handle(name, handle, |h| {
        let message = unsafe { str_arg(message, "message")? };
        h.client.borrow_mut().handle_transport_error(id, message, now_ms)
    })
}

pub(crate) fn handle_timeout<H: Deref<Target = Handle<C>> + Poisonable, C: SansIo>(name: &str, handle: *const H, now_ms: u64) -> i32 {
    enter_handle(name, handle, |h| {
        h.client.borrow_mut().handle_timeout(now_ms);
        Ok(())
    })
}

pub(crate) fn handle_persisted<H: Deref<Target = Handle<C>> + Poisonable, C: SansIo>(name: &str, handle: *const H, ticket: u64, now_ms: u64) -> i32 {
    enter_handle(name, handle, |h| h.client.borrow_mut().handle_persisted(ticket, now_ms))
}

fn describe<E>(output: &Output<E>, meta_len: usize) -> MlOutput {
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

/// # Safety
/// As every export.
pub(crate) unsafe fn poll<H: Deref<Target = Handle<C>> + Poisonable, C: SansIo>(name: &str, handle: *const H, out: *mut MlOutput) -> i32 {
    enter_handle(name, handle, |h| {
        if out.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "out: NULL pointer"));
        }
        let output = h.client.borrow_mut().poll_output();
        let meta_json = output.meta_json();
        let described = describe(&output, meta_json.len());
        *h.current.borrow_mut() = Some(CurrentOutput { meta_json, body: output.body().to_vec() });
        unsafe { write_out(out, described, "out") }
    })
}

/// Which part of the current output to copy.
pub(crate) enum Part {
    Meta,
    Body,
}

/// # Safety
/// As every export.
pub(crate) unsafe fn copy_current<H: Deref<Target = Handle<C>> + Poisonable, C>(
    name: &str,
    handle: *const H,
    part: Part,
    buf: *mut u8,
    cap: usize,
    needed: *mut usize,
) -> i32 {
    enter_handle(name, handle, |h| {
        let current = h.current.borrow();
        let current = current.as_ref().ok_or_else(|| Error::new(ErrorCode::NoOutput, "no current output: poll first"))?;
        let bytes = match part {
            Part::Meta => current.meta_json.as_bytes(),
            Part::Body => &current.body,
        };
        unsafe { copy_out(bytes, buf, cap, needed) }
    })
}

/// # Safety
/// As every export; the callbacks follow `MlCallbacks`' contract.
pub(crate) unsafe fn pump<H: Deref<Target = Handle<C>> + Poisonable, C: SansIo>(
    name: &str,
    handle: *const H,
    callbacks: *const MlCallbacks,
    has_deadline: *mut i32,
    deadline_ms: *mut u64,
) -> i32 {
    enter_handle(name, handle, |h| {
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

/// A JSON-described command (`ml_*_command`): parsed and checked by the core's `command_json`.
///
/// # Safety
/// As every export.
pub(crate) unsafe fn command<H: Deref<Target = Handle<C>> + Poisonable, C>(
    name: &str,
    handle: *const H,
    command_json: *const c_char,
    now_ms: u64,
    call_id: *mut u64,
    run: fn(&mut C, &str, u64) -> Result<u64>,
) -> i32 {
    enter_handle(name, handle, |h| {
        let json = unsafe { str_arg(command_json, "command_json")? };
        if call_id.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "call_id: NULL pointer"));
        }
        let id = run(&mut h.client.borrow_mut(), json, now_ms)?;
        unsafe { write_out(call_id, id, "call_id") }
    })
}
