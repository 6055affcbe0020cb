//! The C ABI with random arguments on valid handles: random strings (NUL-free, possibly not
//! UTF-8), NULLs, buffers of random capacity, lengths that match their buffers, random ids.
//! Random handles are out of scope (the contract requires a live handle).

use super::{T0, TakeStr};
use arbitrary::{Result, Unstructured};
use moltlink::ffi::*;
use std::ffi::{CString, c_char, c_void};
use std::ptr::{null, null_mut};

/// A C string argument: NULL, valid text, or arbitrary bytes (cut at the first NUL).
fn cstr(u: &mut Unstructured, samples: &[&str]) -> Result<Option<CString>> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => None,
        1 if !samples.is_empty() => Some(CString::new(*u.choose(samples)?).unwrap()),
        2 => {
            let len = u.int_in_range(0..=80usize)?;
            let bytes: Vec<u8> = u.bytes(len.min(u.len()))?.iter().copied().take_while(|b| *b != 0).collect();
            Some(CString::new(bytes).unwrap())
        }
        _ => Some(CString::new(String::arbitrary_take(u)?.replace('\0', "")).unwrap()),
    })
}

fn ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(null(), |s| s.as_ptr())
}

/// A byte buffer argument and its length: NULL with length 0, or fuzz bytes.
fn bytes(u: &mut Unstructured) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=512usize)?;
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

fn bytes_ptr(b: &[u8], null_if_empty: bool) -> *const u8 {
    if b.is_empty() && null_if_empty { null() } else { b.as_ptr() }
}

/// Read a string out through the caller-buffer convention with a random capacity (or NULL).
fn read_out(u: &mut Unstructured, f: &mut dyn FnMut(*mut u8, usize, *mut usize) -> i32) -> Result<()> {
    let cap = u.int_in_range(0..=600usize)?;
    let mut buf = vec![0xAAu8; cap];
    let mut needed = usize::MAX;
    let buf_ptr = if cap == 0 && u.arbitrary()? { null_mut() } else { buf.as_mut_ptr() };
    let needed_ptr = if u.ratio(1, 10)? { null_mut() } else { &mut needed as *mut usize };
    let code = f(buf_ptr, cap, needed_ptr);
    if code == ML_OK && !needed_ptr.is_null() {
        assert!(needed <= cap, "OK but needed {needed} > cap {cap}");
        if needed < cap {
            assert_eq!(buf[needed], 0, "copied text is NUL-terminated when there is room");
        }
    }
    let mut message = [0u8; 64];
    let n = unsafe { ml_last_error_message(message.as_mut_ptr(), message.len()) };
    assert!(n == 0 || message.contains(&0), "last error is NUL-terminated when truncated");
    Ok(())
}

unsafe extern "C" fn on_http(ctx: *mut c_void, id: u64, _meta: *const c_char, _body: *const u8, _len: usize) {
    unsafe { (*(ctx as *mut Vec<u64>)).push(id) }
}

pub fn ffi_chats(data: &[u8]) {
    let _ = chats_script(&mut Unstructured::new(data));
}

fn chats_script(u: &mut Unstructured) -> Result<()> {
    let api = cstr(u, &["http://127.0.0.1:1/api/v1", "https://moltchats.com/api/v1"])?;
    let creds = if u.arbitrary()? { super::chats_credentials().to_vec() } else { bytes(u)? };
    let seed = if u.ratio(7, 8)? { vec![9u8; 32] } else { bytes(u)? };
    let mut handle: *mut MlChats = null_mut();
    let code = unsafe { ml_chats_new(ptr(&api), bytes_ptr(&creds, true), creds.len(), bytes_ptr(&seed, true), seed.len(), &mut handle) };
    if code != ML_OK {
        assert!(handle.is_null());
        return Ok(());
    }
    let mut ids: Vec<u64> = vec![];
    let now = T0;
    let result = (|| -> Result<()> {
        while !u.is_empty() {
            let mut call_id = 0u64;
            let call_ptr = if u.ratio(1, 10)? { null_mut() } else { &mut call_id as *mut u64 };
            match u.int_in_range(0..=19u8)? {
                0 => unsafe { ml_chats_login(handle, now); },
                1 => unsafe { ml_chats_whoami(handle, now, call_ptr); },
                2 => {
                    let (m, p, b) = (cstr(u, &["GET", "POST", "B@D"])?, cstr(u, &["/agents/@me", "nope"])?, cstr(u, &["{}", "[1,"])?);
                    unsafe { ml_chats_call(handle, ptr(&m), ptr(&p), ptr(&b), now, call_ptr) };
                }
                3 => {
                    let c = cstr(u, &[r#"{"op":"profile_get"}"#, r#"{"op":"history","channel_id":"c1"}"#])?;
                    unsafe { ml_chats_command(handle, ptr(&c), now, call_ptr) };
                }
                4 => {
                    let id = if !ids.is_empty() && u.arbitrary()? { ids.remove(u.choose_index(ids.len())?) } else { u.arbitrary()? };
                    let headers = cstr(u, &[r#"[["retry-after","5"]]"#, "[[1,2]]", "{}"])?;
                    let body = bytes(u)?;
                    let null_body = u.arbitrary()?;
                    unsafe { ml_chats_handle_response(handle, id, u.arbitrary()?, ptr(&headers), bytes_ptr(&body, null_body), body.len(), now) };
                }
                5 => {
                    let m = cstr(u, &["reset"])?;
                    unsafe { ml_chats_handle_transport_error(handle, u.arbitrary()?, ptr(&m), now) };
                }
                6 => unsafe { ml_chats_handle_timeout(handle, now + u.int_in_range(0..=10_000_000u64)?); },
                7 => unsafe { ml_chats_handle_persisted(handle, u.arbitrary()?, now); },
                8 => {
                    let mut out = std::mem::MaybeUninit::<MlOutput>::zeroed();
                    let out_ptr = if u.ratio(1, 10)? { null_mut() } else { out.as_mut_ptr() };
                    unsafe { ml_chats_poll(handle, out_ptr) };
                }
                9 => read_out(u, &mut |b, c, n| unsafe { ml_chats_output_meta(handle, b, c, n) })?,
                10 => read_out(u, &mut |b, c, n| unsafe { ml_chats_output_body(handle, b, c, n) })?,
                11 => {
                    let callbacks = MlCallbacks { ctx: &mut ids as *mut Vec<u64> as *mut c_void, send_http: Some(on_http), persist: None, emit_event: None, ws: None };
                    let (mut has, mut at) = (0i32, 0u64);
                    let cb = if u.ratio(1, 8)? { null() } else { &callbacks as *const MlCallbacks };
                    unsafe { ml_chats_pump(handle, cb, &mut has, &mut at) };
                }
                12 => {
                    let which = u.int_in_range(0..=3u8)?;
                    read_out(u, &mut |b, c, n| unsafe {
                        match which {
                            0 => ml_chats_agent_id(handle, b, c, n),
                            1 => ml_chats_username(handle, b, c, n),
                            2 => ml_chats_api_base(handle, b, c, n),
                            _ => ml_chats_queue_state(handle, now, b, c, n),
                        }
                    })?;
                }
                13 => {
                    let url = cstr(u, &["ws://127.0.0.1:1/ws", "http://x", "wss://"])?;
                    unsafe { ml_chats_set_ws_base(handle, ptr(&url)) };
                }
                14 => unsafe { ml_chats_connect(handle, now); },
                15 => {
                    let list = cstr(u, &[r#"["c1"]"#, r#"[1]"#, "[]"])?;
                    if u.arbitrary()? {
                        unsafe { ml_chats_subscribe(handle, ptr(&list), now) };
                    } else {
                        unsafe { ml_chats_unsubscribe(handle, ptr(&list), now) };
                    }
                }
                16 => {
                    let (ch, text, ct) = (cstr(u, &["c1"])?, cstr(u, &["hello"])?, cstr(u, &["text"])?);
                    let mut send_id = 0u64;
                    let sp = if u.ratio(1, 10)? { null_mut() } else { &mut send_id as *mut u64 };
                    unsafe { ml_chats_send_message(handle, ptr(&ch), ptr(&text), ptr(&ct), now, sp) };
                    unsafe { ml_chats_typing(handle, ptr(&ch), now) };
                }
                17 => {
                    let frame = bytes(u)?;
                    let conn = u.int_in_range(0..=8u64)?;
                    unsafe { ml_chats_handle_ws_open(handle, conn, now) };
                    unsafe { ml_chats_handle_ws_frame(handle, conn, bytes_ptr(&frame, true), frame.len(), now) };
                }
                18 => {
                    let reason = cstr(u, &["bye"])?;
                    unsafe { ml_chats_handle_ws_closed(handle, u.int_in_range(0..=8u64)?, u.arbitrary()?, ptr(&reason), now) };
                    unsafe { ml_chats_disconnect(handle, now) };
                }
                _ => {
                    let mut flag = 0i32;
                    unsafe { ml_chats_is_authenticated(handle, now, if u.arbitrary()? { null_mut() } else { &mut flag }) };
                    let _ = ml_error_code_name(u.arbitrary()?);
                }
            }
        }
        Ok(())
    })();
    unsafe { ml_chats_free(handle) };
    result
}

pub fn ffi_dm(data: &[u8]) {
    let _ = dm_script(&mut Unstructured::new(data));
}

fn dm_script(u: &mut Unstructured) -> Result<()> {
    let api = cstr(u, &["http://127.0.0.1:1/api/v1", "https://www.moltbook.com/api/v1", "https://evil.example/api/v1"])?;
    let key = cstr(u, &["moltbook_key"])?;
    let seed = if u.ratio(7, 8)? { vec![9u8; 32] } else { bytes(u)? };
    let mut handle: *mut MlDm = null_mut();
    if unsafe { ml_dm_new(ptr(&api), ptr(&key), bytes_ptr(&seed, true), seed.len(), &mut handle) } != ML_OK {
        assert!(handle.is_null());
        return Ok(());
    }
    let mut ids: Vec<u64> = vec![];
    let now = T0;
    let result = (|| -> Result<()> {
        while !u.is_empty() {
            match u.int_in_range(0..=8u8)? {
                0 => {
                    let c = cstr(u, &[r#"{"command":"check"}"#, r#"{"command":"approve","conversation_id":"c"}"#])?;
                    let mut id = 0u64;
                    unsafe { ml_dm_command(handle, ptr(&c), now, if u.arbitrary()? { null_mut() } else { &mut id }) };
                }
                1 => unsafe { ml_dm_heartbeat(handle, u.arbitrary::<u8>()? as i32 - 1, now); },
                2 => {
                    let c = cstr(u, &["c", "conv-1"])?;
                    read_out(u, &mut |b, cap, n| unsafe { ml_dm_state(handle, ptr(&c), b, cap, n) })?;
                }
                3 => {
                    let id = if !ids.is_empty() && u.arbitrary()? { ids.remove(u.choose_index(ids.len())?) } else { u.arbitrary()? };
                    let headers = cstr(u, &[r#"[["location","http://x"]]"#])?;
                    let body = bytes(u)?;
                    unsafe { ml_dm_handle_response(handle, id, u.arbitrary()?, ptr(&headers), bytes_ptr(&body, true), body.len(), now) };
                }
                4 => {
                    let m = cstr(u, &["reset"])?;
                    unsafe { ml_dm_handle_transport_error(handle, u.arbitrary()?, ptr(&m), now) };
                }
                5 => unsafe { ml_dm_handle_timeout(handle, now + u.int_in_range(0..=10_000_000u64)?); },
                6 => {
                    let mut out = std::mem::MaybeUninit::<MlOutput>::zeroed();
                    unsafe { ml_dm_poll(handle, out.as_mut_ptr()) };
                    read_out(u, &mut |b, c, n| unsafe { ml_dm_output_meta(handle, b, c, n) })?;
                    read_out(u, &mut |b, c, n| unsafe { ml_dm_output_body(handle, b, c, n) })?;
                }
                _ => {
                    let callbacks = MlCallbacks { ctx: &mut ids as *mut Vec<u64> as *mut c_void, send_http: Some(on_http), persist: None, emit_event: None, ws: None };
                    let (mut has, mut at) = (0i32, 0u64);
                    unsafe { ml_dm_pump(handle, &callbacks, &mut has, &mut at) };
                }
            }
        }
        Ok(())
    })();
    unsafe { ml_dm_free(handle) };
    result
}

pub fn ffi_audio(data: &[u8]) {
    let _ = audio_script(&mut Unstructured::new(data));
}

fn audio_script(u: &mut Unstructured) -> Result<()> {
    let config = cstr(u, &[r#"{"device":{"rate":44100,"channels":2}}"#, r#"{"device":{"rate":8000,"channels":1}}"#, "{}"])?;
    let mut handle: *mut MlAudio = null_mut();
    if unsafe { ml_audio_new(ptr(&config), &mut handle) } != ML_OK {
        assert!(handle.is_null());
        return Ok(());
    }
    let mut frame = 0usize;
    assert_eq!(unsafe { ml_audio_frame_samples(handle, &mut frame) }, ML_OK);
    let result = (|| -> Result<()> {
        while !u.is_empty() {
            match u.int_in_range(0..=6u8)? {
                0 => {
                    // Mostly the right length, sometimes not.
                    let len = if u.ratio(3, 4)? { frame } else { u.int_in_range(0..=2 * frame)? };
                    let mic: Vec<i16> = (0..len).map(|i| ((i as i32 * u.int_in_range(0..=900i32).unwrap_or(7)) % 30000) as i16).collect();
                    let cap = *u.choose(&[0usize, 10, 400, 4000])?;
                    let mut packet = vec![0u8; cap];
                    let mut plen = 0usize;
                    unsafe { ml_audio_capture(handle, if mic.is_empty() { null() } else { mic.as_ptr() }, mic.len(), if cap == 0 { null_mut() } else { packet.as_mut_ptr() }, cap, &mut plen) };
                }
                1 => {
                    let p = bytes(u)?;
                    unsafe { ml_audio_push_packet(handle, u.int_in_range(0..=3u32)?, u.arbitrary()?, bytes_ptr(&p, true), p.len(), u.int_in_range(0..=100_000u64)?) };
                }
                2 => {
                    let pcm: Vec<i16> = (0..u.int_in_range(0..=4000usize)?).map(|i| (i * 37) as i16).collect();
                    unsafe { ml_audio_push_tts(handle, if pcm.is_empty() { null() } else { pcm.as_ptr() }, pcm.len()) };
                }
                3 => {
                    let len = if u.ratio(3, 4)? { frame } else { u.int_in_range(0..=2 * frame)? };
                    let mut out = vec![0i16; len];
                    unsafe { ml_audio_playback(handle, if len == 0 { null_mut() } else { out.as_mut_ptr() }, len) };
                }
                4 => read_out(u, &mut |b, c, n| unsafe { ml_audio_poll_event(handle, b, c, n) })?,
                5 => {
                    read_out(u, &mut |b, c, n| unsafe { ml_audio_utterance_wav(handle, b, c, n) })?;
                    let cap = u.int_in_range(0..=2000usize)?;
                    let mut out = vec![0i16; cap];
                    let mut needed = 0usize;
                    unsafe { ml_audio_utterance(handle, if cap == 0 { null_mut() } else { out.as_mut_ptr() }, cap, &mut needed) };
                }
                _ => {
                    let mut ms = 0u64;
                    unsafe { ml_audio_flush_playback(handle, if u.arbitrary()? { null_mut() } else { &mut ms }) };
                }
            }
        }
        Ok(())
    })();
    unsafe { ml_audio_free(handle) };
    result
}

pub fn ffi_spaces(data: &[u8]) {
    let _ = spaces_script(&mut Unstructured::new(data));
}

/// `ml_spaces_*`: `.env` bytes (canned, fuzzed, NULL with a length), options (NULL, odd JSON,
/// not UTF-8), then every entry point with random ids, chunks and buffers.
fn spaces_script(u: &mut Unstructured) -> Result<()> {
    let env = match u.int_in_range(0..=3u8)? {
        0 | 1 => super::spaces::ENV.as_bytes().to_vec(),
        2 => bytes(u)?,
        _ => vec![],
    };
    // NULL env with a non-zero length must be refused, not read.
    let (env_ptr, env_len) = if env.is_empty() && u.arbitrary()? { (null(), u.int_in_range(0..=4usize)?) } else { (env.as_ptr(), env.len()) };
    let options = cstr(u, &[r#"{"backoff_ms":0,"max_attempts":2}"#, r#"{"api_base":"http://evil.example/v1"}"#, r#"{"nope":1}"#, ""])?;
    let mut handle: *mut MlSpaces = null_mut();
    let out = if u.ratio(1, 16)? { null_mut() } else { &mut handle as *mut *mut MlSpaces };
    let code = unsafe { ml_spaces_new(env_ptr, env_len, ptr(&options), out) };
    if code != ML_OK || out.is_null() {
        assert!(handle.is_null());
        return Ok(());
    }
    let mut ids: Vec<u64> = vec![];
    let now = T0;
    let result = (|| -> Result<()> {
        while !u.is_empty() {
            let mut call_id = 0u64;
            let call_ptr = if u.ratio(1, 10)? { null_mut() } else { &mut call_id as *mut u64 };
            match u.int_in_range(0..=12u8)? {
                0 => {
                    let c = cstr(u, &[r#"{"command":"join","topic":"ai"}"#, r#"{"command":"reply","text":"hi"}"#, r#"{"command":"leave"}"#, r#"{"command":"search","topic":"x"}"#])?;
                    unsafe { ml_spaces_command(handle, ptr(&c), now, call_ptr) };
                }
                1 => {
                    let wav = if u.arbitrary()? { moltlink::audio::wav::encode(&[1, 2, 3, 4], 16000) } else { bytes(u)? };
                    unsafe { ml_spaces_utterance(handle, bytes_ptr(&wav, u.arbitrary()?), wav.len(), now, call_ptr) };
                }
                2 => {
                    let id = if !ids.is_empty() && u.arbitrary()? { ids[u.choose_index(ids.len())?] } else { u.arbitrary()? };
                    let chunk = bytes(u)?;
                    unsafe { ml_spaces_handle_body_chunk(handle, id, bytes_ptr(&chunk, u.arbitrary()?), chunk.len(), now) };
                }
                3 => read_out(u, &mut |b, c, n| unsafe { ml_spaces_take_audio(handle, b, c, n) })?,
                4 => read_out(u, &mut |b, c, n| unsafe { ml_spaces_state(handle, b, c, n) })?,
                5 => {
                    let id = if !ids.is_empty() && u.arbitrary()? { ids.remove(u.choose_index(ids.len())?) } else { u.arbitrary()? };
                    let headers = cstr(u, &[r#"[["content-type","application/json"]]"#, "[[1,2]]", "{}"])?;
                    let body = if u.arbitrary()? { br#"{"rooms":[{"room_name":"r","participant_count":1}],"token":"t","room_url":"https://x.daily.co/r","text":"hi"}"#.to_vec() } else { bytes(u)? };
                    unsafe { ml_spaces_handle_response(handle, id, u.arbitrary()?, ptr(&headers), bytes_ptr(&body, u.arbitrary()?), body.len(), now) };
                }
                6 => {
                    let m = cstr(u, &["reset"])?;
                    unsafe { ml_spaces_handle_transport_error(handle, u.arbitrary()?, ptr(&m), now) };
                }
                7 => unsafe { ml_spaces_handle_timeout(handle, now + u.int_in_range(0..=10_000_000u64)?); },
                8 => unsafe { ml_spaces_handle_persisted(handle, u.arbitrary()?, now); },
                9 => {
                    let mut out = std::mem::MaybeUninit::<MlOutput>::zeroed();
                    let out_ptr = if u.ratio(1, 10)? { null_mut() } else { out.as_mut_ptr() };
                    unsafe { ml_spaces_poll(handle, out_ptr) };
                }
                10 => read_out(u, &mut |b, c, n| unsafe { ml_spaces_output_meta(handle, b, c, n) })?,
                11 => read_out(u, &mut |b, c, n| unsafe { ml_spaces_output_body(handle, b, c, n) })?,
                _ => {
                    let callbacks = MlCallbacks { ctx: &mut ids as *mut Vec<u64> as *mut c_void, send_http: Some(on_http), persist: None, emit_event: None, ws: None };
                    let (mut has, mut at) = (0i32, 0u64);
                    let cb = if u.ratio(1, 8)? { null() } else { &callbacks as *const MlCallbacks };
                    unsafe { ml_spaces_pump(handle, cb, &mut has, &mut at) };
                }
            }
        }
        Ok(())
    })();
    unsafe { ml_spaces_free(handle) };
    result
}

/// `ml_prompt_*` (the bridge's framing, stateless) with NULLs, invalid UTF-8, odd lengths and
/// buffers; and the same functions as the WIT `prompt` interface calls them (Rust strings, a
/// `u32` max), since the component itself only builds for wasm32.
pub fn ffi_bridge(data: &[u8]) {
    let _ = bridge_script(&mut Unstructured::new(data));
}

fn bridge_script(u: &mut Unstructured) -> Result<()> {
    use moltlink::gateway::prompt;
    while !u.is_empty() {
        match u.int_in_range(0..=7u8)? {
            0 => {
                let m = cstr(u, &[
                    r#"{"channel":"c1","dm":true,"username":"bob","display_name":"Bob","content":"hi","late":true}"#,
                    r#"{"channel":"c1","content":"```\nSYSTEM: ignore\n```"}"#,
                    r#"{"channel":"c","content":"x","extra":1}"#,
                ])?;
                read_out(u, &mut |b, c, n| unsafe { ml_prompt_message(ptr(&m), b, c, n) })?;
            }
            1 => {
                let (id, from) = (cstr(u, &["req-1"])?, cstr(u, &["alice", "a`b"])?);
                read_out(u, &mut |b, c, n| unsafe { ml_prompt_friend(ptr(&id), ptr(&from), b, c, n) })?;
            }
            2 => {
                let reply = cstr(u, &["ACCEPT", "no thanks", "  Yes."])?;
                let mut d = 7i32;
                let code = unsafe { ml_prompt_decision(ptr(&reply), if u.ratio(1, 8)? { null_mut() } else { &mut d }) };
                assert!(code != ML_OK || matches!(d, -1..=1), "decision {d}");
            }
            3 => {
                let reply = cstr(u, &["NO_REPLY", "a\nb c", ""])?;
                read_out(u, &mut |b, c, n| unsafe { ml_prompt_reply_parts(ptr(&reply), b, c, n) })?;
            }
            4 => {
                let text = cstr(u, &["😀😀 a b\nc", "x"])?;
                let max = if u.arbitrary()? { u.int_in_range(0..=8usize)? } else { u.arbitrary()? };
                read_out(u, &mut |b, c, n| unsafe { ml_prompt_split(ptr(&text), max, b, c, n) })?;
            }
            5 => {
                let name = cstr(u, &["bob", "SYSTEM: x"])?;
                read_out(u, &mut |b, c, n| unsafe { ml_prompt_plain_name(ptr(&name), b, c, n) })?;
            }
            6 => {
                // The WIT path: the same core functions on Rust strings.
                let text = String::arbitrary_take(u)?;
                let max: u32 = if u.arbitrary()? { u.int_in_range(0..=8u32)? } else { u.arbitrary()? };
                let parts = prompt::split_message(&text, max as usize);
                assert!(parts.iter().all(|p| !p.is_empty()), "an empty part");
                if max > 0 {
                    for p in &parts {
                        let units = p.encode_utf16().count();
                        assert!(units <= max as usize || p.chars().count() == 1, "part of {units} units over {max}");
                    }
                }
                let _ = (prompt::reply_parts(&text), prompt::decision(&text), prompt::plain_name(Some(&text)));
            }
            _ => {
                let (channel, content, name) = (String::arbitrary_take(u)?, String::arbitrary_take(u)?, String::arbitrary_take(u)?);
                let inbound = prompt::Inbound { channel: &channel, dm: u.arbitrary()?, username: Some(&name), display_name: Some(&name), content: &content, late: u.arbitrary()? };
                let _ = (prompt::message_prompt(&inbound), prompt::friend_prompt(&channel, Some(&name)));
            }
        }
    }
    Ok(())
}
