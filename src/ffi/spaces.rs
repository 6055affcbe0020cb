//! The `ml_spaces_` exports: Moltspaces rooms and voice turns. One generic command entry
//! point (`ml_spaces_command`, a JSON-described [`crate::SpacesCommand`]), the utterance and
//! TTS-audio byte paths, plus the inputs and outputs every client shares (bodies in
//! `driven.rs`). The behaviour lives in [`crate::SpacesClient`].
//!
//! Safety contract: as in `chats.rs` (pointers valid for the call, handles from
//! `ml_spaces_new` not yet freed, one thread at a time, NUL-terminated strings).
#![allow(clippy::missing_safety_doc)]

use super::boundary::{Poisonable, bytes_arg, copy_out, enter, enter_handle, free_handle, opt_str_arg, write_out};
use super::driven::{self, Part};
use super::{Handle, MlCallbacks, MlOutput};
use crate::{SansIo, SpacesClient};
use crate::error::{Error, ErrorCode};
use std::ffi::c_char;

/// An opaque Moltspaces client. Create with `ml_spaces_new`, destroy with `ml_spaces_free`.
pub struct MlSpaces(Handle<SpacesClient>);

impl std::ops::Deref for MlSpaces {
    type Target = Handle<SpacesClient>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Poisonable for MlSpaces {
    fn poison_flag(&self) -> &std::cell::Cell<bool> {
        &self.0.poisoned
    }
}

/// Create a Moltspaces client.
///
/// - `env`/`env_len`: the skill's `.env` bytes (MOLTSPACES_API_KEY, MOLT_AGENT_ID,
///   MOLT_AGENT_NAME, OPENAI_API_KEY, ELEVENLABS_API_KEY, ELEVENLABS_VOICE_ID; the saved
///   registration has the same form; concatenate several). May be NULL when `env_len` is 0.
/// - `options_json`: NULL or `{"api_base","openai_base","elevenlabs_base","voice_id",
///   "stt_model","tts_model","token_lifetime_ms","rejoin_margin_ms","max_attempts","backoff_ms"}`.
/// - `*out` receives the handle (NULL on failure). Free it with `ml_spaces_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_new(env: *const u8, env_len: usize, options_json: *const c_char, out: *mut *mut MlSpaces) -> i32 {
    enter("ml_spaces_new", || {
        unsafe { write_out(out, std::ptr::null_mut(), "out")? };
        let env = unsafe { bytes_arg(env, env_len, "env")? };
        let options = unsafe { opt_str_arg(options_json, "options_json")? };
        let client = SpacesClient::from_env(env, options)?;
        unsafe { out.write(Box::into_raw(Box::new(MlSpaces(Handle::new(client))))) };
        Ok(())
    })
}

/// Destroy a client (NULL is ignored). Keys are zeroized.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_free(handle: *mut MlSpaces) {
    unsafe { free_handle("ml_spaces_free", handle) }
}

/// Run a command described as JSON: `{"command":"register","name":…,"description":…}`,
/// `{"command":"search"|"create"|"join","topic":…}`, `{"command":"token","room":…}`,
/// `{"command":"leave"|"dropped"|"skip"|"barge_in"|"playback_started"|"playback_finished"}`,
/// `{"command":"reply","text":…}`. `*call_id` receives the call id of the API commands'
/// events, the turn number for `reply`, 0 otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_command(handle: *mut MlSpaces, command_json: *const c_char, now_ms: u64, call_id: *mut u64) -> i32 {
    unsafe { driven::command("ml_spaces_command", handle, command_json, now_ms, call_id, SpacesClient::command_json) }
}

/// One utterance (WAV bytes, e.g. from `ml_audio_utterance_wav`): starts a turn; `*turn`
/// receives its number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_utterance(handle: *mut MlSpaces, wav: *const u8, wav_len: usize, now_ms: u64, turn: *mut u64) -> i32 {
    enter_handle("ml_spaces_utterance", handle, |h| {
        let wav = unsafe { bytes_arg(wav, wav_len, "wav")? };
        if turn.is_null() {
            return Err(Error::new(ErrorCode::NullPointer, "turn: NULL pointer"));
        }
        let n = h.client.borrow_mut().utterance(wav, now_ms)?;
        unsafe { write_out(turn, n, "turn") }
    })
}

/// A chunk of request `id`'s body as it streams in (TTS audio). Finish with
/// `ml_spaces_handle_response` carrying an empty body.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_handle_body_chunk(handle: *mut MlSpaces, id: u64, chunk: *const u8, len: usize, now_ms: u64) -> i32 {
    enter_handle("ml_spaces_handle_body_chunk", handle, |h| {
        let chunk = unsafe { bytes_arg(chunk, len, "chunk")? };
        h.client.borrow_mut().handle_body_chunk(id, chunk, now_ms)
    })
}

/// The TTS audio received so far (16-bit little-endian mono PCM at 24 kHz), drained into
/// `buf`. `*needed` receives the byte count; when `cap` is smaller nothing is drained
/// (`ML_BUFFER_TOO_SMALL`), so a size query with `cap` 0 is safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_take_audio(handle: *mut MlSpaces, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter_handle("ml_spaces_take_audio", handle, |h| {
        let mut client = h.client.borrow_mut();
        let ready = client.audio_bytes_ready();
        unsafe { write_out(needed, ready, "needed")? };
        if cap < ready {
            return Err(Error::new(ErrorCode::BufferTooSmall, format!("buffer of {cap} bytes is too small: {ready} needed")));
        }
        let bytes = client.take_audio_bytes();
        unsafe { copy_out(&bytes, buf, cap, needed) }
    })
}

/// A JSON snapshot `{"registered","room":{…}|null,"turn","turn_state"}` (no secrets). Same
/// buffer rules as `ml_chats_output_meta`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_state(handle: *const MlSpaces, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter_handle("ml_spaces_state", handle, |h| {
        let state = h.client.borrow().state_json();
        unsafe { copy_out(state.as_bytes(), buf, cap, needed) }
    })
}

/// The response to HTTP request `id`. `headers_json` is `[["name","value"],…]` or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_handle_response(
    handle: *mut MlSpaces,
    id: u64,
    status: u16,
    headers_json: *const c_char,
    body: *const u8,
    body_len: usize,
    now_ms: u64,
) -> i32 {
    unsafe { driven::handle_response("ml_spaces_handle_response", handle, id, status, headers_json, body, body_len, now_ms) }
}

/// HTTP request `id` could not be performed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_handle_transport_error(handle: *mut MlSpaces, id: u64, message: *const c_char, now_ms: u64) -> i32 {
    unsafe { driven::handle_transport_error("ml_spaces_handle_transport_error", handle, id, message, now_ms) }
}

/// The deadline of the last wait has passed (retries, token renewal).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_handle_timeout(handle: *mut MlSpaces, now_ms: u64) -> i32 {
    driven::handle_timeout("ml_spaces_handle_timeout", handle, now_ms)
}

/// The registration (a persist output) is stored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_handle_persisted(handle: *mut MlSpaces, ticket: u64, now_ms: u64) -> i32 {
    driven::handle_persisted("ml_spaces_handle_persisted", handle, ticket, now_ms)
}

/// As `ml_chats_poll`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_poll(handle: *mut MlSpaces, out: *mut MlOutput) -> i32 {
    unsafe { driven::poll("ml_spaces_poll", handle, out) }
}

/// As `ml_chats_output_meta`. HTTP metadata carries `x-api-key`/`authorization`: never log it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_output_meta(handle: *const MlSpaces, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    unsafe { driven::copy_current("ml_spaces_output_meta", handle, Part::Meta, buf, cap, needed) }
}

/// As `ml_chats_output_body`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_output_body(handle: *const MlSpaces, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    unsafe { driven::copy_current("ml_spaces_output_body", handle, Part::Body, buf, cap, needed) }
}

/// As `ml_chats_pump`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_spaces_pump(handle: *mut MlSpaces, callbacks: *const MlCallbacks, has_deadline: *mut i32, deadline_ms: *mut u64) -> i32 {
    unsafe { driven::pump("ml_spaces_pump", handle, callbacks, has_deadline, deadline_ms) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::ML_BUFFER_TOO_SMALL;

    #[test]
    fn bad_input_is_an_error_code_never_a_panic() {
        let mut h: *mut MlSpaces = std::ptr::null_mut();
        let env = b"OPENAI_API_KEY=sk-1\nELEVENLABS_API_KEY=xi-1\n";
        assert_eq!(unsafe { ml_spaces_new(env.as_ptr(), env.len(), std::ptr::null(), &mut h) }, 0);
        let mut turn = 0;
        assert_eq!(unsafe { ml_spaces_utterance(h, b"nope".as_ptr(), 4, 1, &mut turn) }, crate::ffi::ML_INVALID_ARGUMENT);
        assert_eq!(unsafe { ml_spaces_utterance(h, std::ptr::null(), 4, 1, &mut turn) }, crate::ffi::ML_NULL_POINTER);
        let mut id = 0;
        let cmd = c"{\"command\":\"search\",\"topic\":\"x\"}";
        assert_eq!(unsafe { ml_spaces_command(h, cmd.as_ptr(), 1, &mut id) }, crate::ffi::ML_NOT_REGISTERED);
        let mut needed = 0;
        assert_eq!(unsafe { ml_spaces_take_audio(h, std::ptr::null_mut(), 0, &mut needed) }, 0);
        assert_eq!(needed, 0);
        let mut buf = [0u8; 4];
        assert_eq!(unsafe { ml_spaces_state(h, buf.as_mut_ptr(), 4, &mut needed) }, ML_BUFFER_TOO_SMALL);
        let bad = [0xffu8, 0xfe];
        let mut h2: *mut MlSpaces = std::ptr::null_mut();
        assert_eq!(unsafe { ml_spaces_new(bad.as_ptr(), 2, std::ptr::null(), &mut h2) }, crate::ffi::ML_INVALID_ARGUMENT);
        assert!(h2.is_null());
        unsafe { ml_spaces_free(h) };
    }
}
