//! The `ml_` exports of the realtime (WebSocket) session. Same safety contract as `chats.rs`.
//! The host opens/sends/closes sockets when it pumps `ML_OUTPUT_WS_*` outputs and reports
//! back with the `ml_chats_handle_ws_*` calls.
#![allow(clippy::missing_safety_doc)]

use super::MlChats;
use super::boundary::{bytes_arg, enter_handle, opt_str_arg, str_arg, write_out};
use crate::SansIo;
use crate::error::{Error, ErrorCode};
use std::ffi::c_char;

fn channels(json: &str) -> crate::error::Result<Vec<String>> {
    serde_json::from_str(json).map_err(|_| Error::invalid_argument("channels_json must be a JSON array of channel id strings"))
}

/// Use this WebSocket base (`ws://…`/`wss://…`) instead of the default (the API base with
/// `/api/v1` replaced by `/ws`, http→ws, https→wss).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_set_ws_base(handle: *mut MlChats, url: *const c_char) -> i32 {
    enter_handle("ml_chats_set_ws_base", handle, |h| {
        let url = unsafe { str_arg(url, "url")? };
        h.client.borrow_mut().set_ws_base(url)
    })
}

/// Start the realtime session: it connects once a token is usable (never without one),
/// reconnects by itself, and stays up until `ml_chats_disconnect`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_connect(handle: *mut MlChats, now_ms: u64) -> i32 {
    enter_handle("ml_chats_connect", handle, |h| h.client.borrow_mut().connect(now_ms))
}

/// Stop the realtime session (closes the socket).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_disconnect(handle: *mut MlChats, now_ms: u64) -> i32 {
    enter_handle("ml_chats_disconnect", handle, |h| {
        h.client.borrow_mut().disconnect(now_ms);
        Ok(())
    })
}

/// Subscribe to channels: `channels_json` is `["id", …]`. Kept across reconnects.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_subscribe(handle: *mut MlChats, channels_json: *const c_char, now_ms: u64) -> i32 {
    enter_handle("ml_chats_subscribe", handle, |h| {
        let list = channels(unsafe { str_arg(channels_json, "channels_json")? })?;
        h.client.borrow_mut().subscribe(&list, now_ms)
    })
}

/// Unsubscribe from channels: `channels_json` is `["id", …]`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_unsubscribe(handle: *mut MlChats, channels_json: *const c_char, now_ms: u64) -> i32 {
    enter_handle("ml_chats_unsubscribe", handle, |h| {
        let list = channels(unsafe { str_arg(channels_json, "channels_json")? })?;
        h.client.borrow_mut().unsubscribe(&list, now_ms);
        Ok(())
    })
}

/// Send a message over the socket (1-4000 characters, checked here). `content_type` may be
/// NULL (`"text"`). `*send_id` identifies the later `message_sent`/`send_failed` event.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_send_message(
    handle: *mut MlChats,
    channel: *const c_char,
    content: *const c_char,
    content_type: *const c_char,
    now_ms: u64,
    send_id: *mut u64,
) -> i32 {
    enter_handle("ml_chats_send_message", handle, |h| {
        let channel = unsafe { str_arg(channel, "channel")? };
        let content = unsafe { str_arg(content, "content")? };
        let content_type = unsafe { opt_str_arg(content_type, "content_type")? };
        if send_id.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "send_id: NULL pointer"));
        }
        let id = h.client.borrow_mut().send_message(channel, content, content_type, now_ms)?;
        unsafe { write_out(send_id, id, "send_id") }
    })
}

/// Tell a channel the agent is typing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_typing(handle: *mut MlChats, channel: *const c_char, now_ms: u64) -> i32 {
    enter_handle("ml_chats_typing", handle, |h| {
        let channel = unsafe { str_arg(channel, "channel")? };
        h.client.borrow_mut().typing(channel, now_ms);
        Ok(())
    })
}

/// WebSocket `conn` (from an `ML_OUTPUT_WS_OPEN`) is open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_handle_ws_open(handle: *mut MlChats, conn: u64, now_ms: u64) -> i32 {
    enter_handle("ml_chats_handle_ws_open", handle, |h| {
        h.client.borrow_mut().handle_ws_open(conn, now_ms);
        Ok(())
    })
}

/// A text frame (`text`/`len`, UTF-8) arrived on `conn`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_handle_ws_frame(handle: *mut MlChats, conn: u64, text: *const u8, len: usize, now_ms: u64) -> i32 {
    enter_handle("ml_chats_handle_ws_frame", handle, |h| {
        let bytes = unsafe { bytes_arg(text, len, "text")? };
        let text = std::str::from_utf8(bytes).map_err(|_| Error::new(ErrorCode::InvalidUtf8, "text: not valid UTF-8"))?;
        h.client.borrow_mut().handle_ws_frame(conn, text, now_ms);
        Ok(())
    })
}

/// `conn` closed or failed to open (`code` 1006 when unknown; `reason` may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_chats_handle_ws_closed(handle: *mut MlChats, conn: u64, code: u16, reason: *const c_char, now_ms: u64) -> i32 {
    enter_handle("ml_chats_handle_ws_closed", handle, |h| {
        let reason = unsafe { opt_str_arg(reason, "reason")? }.unwrap_or("");
        h.client.borrow_mut().handle_ws_closed(conn, code, reason, now_ms);
        Ok(())
    })
}
