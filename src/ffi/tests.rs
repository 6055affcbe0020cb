//! The C ABI called the way a C host calls it: raw pointers, NULLs, bad bytes, small buffers.

use super::boundary::PANIC_NEXT;
use super::*;
use crate::ErrorCode;
use std::ffi::{CStr, CString, c_void};
use std::ptr::{null, null_mut};

const SEED: [u8; 32] = [7; 32];
const BASE: &CStr = c"http://127.0.0.1/moltchats/api/v1";
const NOW: u64 = 1_750_000_000_000;

fn new_client() -> *mut MlChats {
    let mut h = null_mut();
    let rc = unsafe { ml_chats_new(BASE.as_ptr(), null(), 0, SEED.as_ptr(), 32, &mut h) };
    assert_eq!(rc, ML_OK, "{}", last_error());
    assert!(!h.is_null());
    h
}

fn last_error() -> String {
    let n = unsafe { ml_last_error_message(null_mut(), 0) };
    let mut buf = vec![0u8; n.max(1)];
    let m = unsafe { ml_last_error_message(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(m, n);
    CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap().to_owned()
}

fn meta(h: *mut MlChats) -> serde_json::Value {
    let mut needed = 0;
    assert_eq!(unsafe { ml_chats_output_meta(h, null_mut(), 0, &mut needed) }, ML_BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; needed];
    assert_eq!(unsafe { ml_chats_output_meta(h, buf.as_mut_ptr(), buf.len(), &mut needed) }, ML_OK);
    serde_json::from_slice(&buf).unwrap()
}

fn body(h: *mut MlChats) -> Vec<u8> {
    let mut needed = 0;
    let rc = unsafe { ml_chats_output_body(h, null_mut(), 0, &mut needed) };
    assert!(rc == ML_OK || rc == ML_BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; needed];
    assert_eq!(unsafe { ml_chats_output_body(h, buf.as_mut_ptr(), buf.len(), &mut needed) }, ML_OK);
    buf
}

#[test]
fn constants_match_the_core_codes() {
    let pairs = [
        (ML_OK, ErrorCode::Ok),
        (ML_INVALID_ARGUMENT, ErrorCode::InvalidArgument),
        (ML_NULL_POINTER, ErrorCode::NullPointer),
        (ML_INVALID_UTF8, ErrorCode::InvalidUtf8),
        (ML_BUFFER_TOO_SMALL, ErrorCode::BufferTooSmall),
        (ML_INVALID_CREDENTIALS, ErrorCode::InvalidCredentials),
        (ML_UNKNOWN_ID, ErrorCode::UnknownId),
        (ML_ALREADY_REGISTERED, ErrorCode::AlreadyRegistered),
        (ML_NOT_REGISTERED, ErrorCode::NotRegistered),
        (ML_INVALID_STATE, ErrorCode::InvalidState),
        (ML_PANIC, ErrorCode::Panic),
        (ML_NO_OUTPUT, ErrorCode::NoOutput),
        (ML_CRYPTO, ErrorCode::Crypto),
    ];
    for (c, code) in pairs {
        assert_eq!(c, code as i32);
        let name = unsafe { CStr::from_ptr(ml_error_code_name(c)) }.to_str().unwrap();
        let serde_name = serde_json::to_value(code).unwrap().as_str().unwrap().to_ascii_uppercase();
        assert_eq!(name, serde_name);
    }
    assert_eq!(unsafe { CStr::from_ptr(ml_error_code_name(99)) }, c"UNKNOWN");
    assert_eq!(unsafe { CStr::from_ptr(ml_version()) }.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn null_pointers_are_refused() {
    let mut h = null_mut();
    let mut n = 0usize;
    let mut id = 0u64;
    let mut flag = 0i32;
    let mut out = MlOutput::default();
    unsafe {
        assert_eq!(ml_chats_new(null(), null(), 0, SEED.as_ptr(), 32, null_mut()), ML_NULL_POINTER);
        assert_eq!(ml_chats_new(null(), null(), 0, null(), 32, &mut h), ML_NULL_POINTER);
        assert!(last_error().contains("seed"), "{}", last_error());
        assert_eq!(ml_chats_new(null(), null(), 5, SEED.as_ptr(), 32, &mut h), ML_NULL_POINTER);
        assert!(h.is_null());

        let nh: *mut MlChats = null_mut();
        assert_eq!(ml_chats_register(nh, c"abc".as_ptr(), NOW), ML_NULL_POINTER);
        assert!(last_error().contains("ml_chats_register: handle: NULL pointer"), "{}", last_error());
        assert_eq!(ml_chats_login(nh, NOW), ML_NULL_POINTER);
        assert_eq!(ml_chats_refresh(nh, NOW), ML_NULL_POINTER);
        assert_eq!(ml_chats_whoami(nh, NOW, &mut id), ML_NULL_POINTER);
        assert_eq!(ml_chats_call(nh, c"GET".as_ptr(), c"/x".as_ptr(), null(), NOW, &mut id), ML_NULL_POINTER);
        assert_eq!(ml_chats_handle_response(nh, 1, 200, null(), null(), 0, NOW), ML_NULL_POINTER);
        assert_eq!(ml_chats_handle_transport_error(nh, 1, c"x".as_ptr(), NOW), ML_NULL_POINTER);
        assert_eq!(ml_chats_handle_timeout(nh, NOW), ML_NULL_POINTER);
        assert_eq!(ml_chats_handle_persisted(nh, 1, NOW), ML_NULL_POINTER);
        assert_eq!(ml_chats_poll(nh, &mut out), ML_NULL_POINTER);
        assert_eq!(ml_chats_output_meta(nh, null_mut(), 0, &mut n), ML_NULL_POINTER);
        assert_eq!(ml_chats_output_body(nh, null_mut(), 0, &mut n), ML_NULL_POINTER);
        assert_eq!(ml_chats_agent_id(nh, null_mut(), 0, &mut n), ML_NULL_POINTER);
        assert_eq!(ml_chats_is_authenticated(nh, NOW, &mut flag), ML_NULL_POINTER);
        assert_eq!(ml_chats_pump(nh, null(), &mut flag, &mut id), ML_NULL_POINTER);
        ml_chats_free(null_mut());

        let h = new_client();
        assert_eq!(ml_chats_register(h, null(), NOW), ML_NULL_POINTER);
        assert!(last_error().contains("username"));
        assert_eq!(ml_chats_whoami(h, NOW, null_mut()), ML_NULL_POINTER);
        assert_eq!(ml_chats_poll(h, null_mut()), ML_NULL_POINTER);
        assert_eq!(ml_chats_is_authenticated(h, NOW, null_mut()), ML_NULL_POINTER);
        assert_eq!(ml_chats_agent_id(h, null_mut(), 0, null_mut()), ML_NULL_POINTER);
        assert_eq!(ml_chats_handle_response(h, 1, 200, null(), null(), 3, NOW), ML_NULL_POINTER);
        let empty = MlCallbacks { ctx: null_mut(), send_http: None, persist: None, emit_event: None, ws: None };
        assert_eq!(ml_chats_pump(h, &empty, &mut flag, &mut id), ML_NULL_POINTER);
        ml_chats_free(h);
    }
}

#[test]
fn bad_utf8_and_bad_arguments() {
    let bad = CString::new(vec![b'a', 0xff, b'b']).unwrap();
    let mut h = null_mut();
    let mut id = 0u64;
    unsafe {
        assert_eq!(ml_chats_new(bad.as_ptr(), null(), 0, SEED.as_ptr(), 32, &mut h), ML_INVALID_UTF8);
        assert!(last_error().contains("api_base"));
        assert_eq!(ml_chats_new(null(), null(), 0, SEED.as_ptr(), 31, &mut h), ML_INVALID_ARGUMENT);
        assert!(last_error().contains("32 bytes"));
        assert_eq!(ml_chats_new(c"ftp://x".as_ptr(), null(), 0, SEED.as_ptr(), 32, &mut h), ML_INVALID_ARGUMENT);
        assert!(h.is_null());

        let h = new_client();
        assert_eq!(ml_chats_register(h, bad.as_ptr(), NOW), ML_INVALID_UTF8);
        assert_eq!(ml_chats_register(h, c"no spaces allowed".as_ptr(), NOW), ML_INVALID_ARGUMENT);
        assert_eq!(ml_chats_login(h, NOW), ML_NOT_REGISTERED);
        assert_eq!(ml_chats_call(h, bad.as_ptr(), c"/x".as_ptr(), null(), NOW, &mut id), ML_INVALID_UTF8);
        assert_eq!(ml_chats_call(h, c"G T".as_ptr(), c"/x".as_ptr(), null(), NOW, &mut id), ML_INVALID_ARGUMENT);
        assert_eq!(ml_chats_call(h, c"GET".as_ptr(), c"/x".as_ptr(), c"{not json".as_ptr(), NOW, &mut id), ML_INVALID_ARGUMENT);
        assert!(!last_error().contains("not json"), "the body must not be echoed");
        assert_eq!(ml_chats_handle_transport_error(h, 1, bad.as_ptr(), NOW), ML_INVALID_UTF8);
        assert_eq!(ml_chats_handle_response(h, 1, 200, c"{\"a\":1}".as_ptr(), null(), 0, NOW), ML_INVALID_ARGUMENT);
        assert!(last_error().contains("headers_json"));
        assert_eq!(ml_chats_handle_response(h, 1, 99, null(), null(), 0, NOW), ML_INVALID_ARGUMENT);
        assert_eq!(ml_chats_handle_response(h, 12345, 200, c"[[\"a\",\"b\"]]".as_ptr(), null(), 0, NOW), ML_UNKNOWN_ID);
        assert_eq!(ml_chats_handle_persisted(h, 12345, NOW), ML_UNKNOWN_ID);
        ml_chats_free(h);
    }
}

#[test]
fn garbage_credentials_do_not_leak() {
    let secret = b"{\"privateKey\": \"TOPSECRET-KEY\", \"refreshToken\": ";
    let mut h = null_mut();
    let rc = unsafe { ml_chats_new(null(), secret.as_ptr(), secret.len(), SEED.as_ptr(), 32, &mut h) };
    assert_eq!(rc, ML_INVALID_CREDENTIALS);
    assert!(h.is_null());
    let message = last_error();
    assert!(message.starts_with("ml_chats_new: credentials file"), "{message}");
    assert!(!message.contains("TOPSECRET"), "{message}");
}

#[test]
fn small_buffers_then_retry_lose_nothing() {
    let h = new_client();
    let mut out = MlOutput::default();
    let mut needed = 0usize;
    unsafe {
        assert_eq!(ml_chats_output_meta(h, null_mut(), 0, &mut needed), ML_NO_OUTPUT);
        assert_eq!(ml_chats_register(h, c"ffi_agent".as_ptr(), NOW), ML_OK);
        assert_eq!(ml_chats_poll(h, &mut out), ML_OK);
        assert_eq!(out.kind, ML_OUTPUT_PERSIST);
        assert!(out.id > 0 && out.body_len > 0 && out.meta_len > 0);

        let mut tiny = [0u8; 4];
        assert_eq!(ml_chats_output_body(h, tiny.as_mut_ptr(), tiny.len(), &mut needed), ML_BUFFER_TOO_SMALL);
        assert_eq!(needed, out.body_len);
        assert!(last_error().contains("too small"));
        assert!(!last_error().contains("PRIVATE"), "the body must not be echoed");
        let bytes = body(h);
        assert_eq!(bytes.len(), out.body_len);
        assert!(std::str::from_utf8(&bytes).unwrap().contains("privateKey"));

        // Exactly-sized buffer: no NUL; one more byte: NUL appended.
        let m = meta(h);
        assert_eq!(m["kind"], "persist");
        assert_eq!(m["ticket"], out.id);
        let mut buf = vec![0xAAu8; out.meta_len + 1];
        assert_eq!(ml_chats_output_meta(h, buf.as_mut_ptr(), buf.len(), &mut needed), ML_OK);
        assert_eq!(buf[out.meta_len], 0);

        let mut name = [0u8; 3];
        assert_eq!(ml_chats_username(h, name.as_mut_ptr(), name.len(), &mut needed), ML_BUFFER_TOO_SMALL);
        assert_eq!(needed, "ffi_agent".len());
        let mut name = vec![0u8; needed + 1];
        assert_eq!(ml_chats_username(h, name.as_mut_ptr(), name.len(), &mut needed), ML_OK);
        assert_eq!(CStr::from_bytes_until_nul(&name).unwrap(), c"ffi_agent");
        assert_eq!(ml_chats_agent_id(h, null_mut(), 0, &mut needed), ML_OK);
        assert_eq!(needed, 0, "no agent id before registration completes");

        assert_eq!(ml_chats_poll(h, &mut out), ML_OK);
        assert_eq!(out.kind, ML_OUTPUT_WAIT);
        assert_eq!(meta(h)["kind"], "wait");
        ml_chats_free(h);
    }
}

#[test]
fn last_error_message_truncates_and_reports_size() {
    std::thread::spawn(|| unsafe {
        assert_eq!(ml_last_error_message(null_mut(), 0), 0, "fresh thread: no error");
        assert_eq!(ml_chats_login(null_mut(), NOW), ML_NULL_POINTER);
        let full = "ml_chats_login: handle: NULL pointer";
        assert_eq!(ml_last_error_message(null_mut(), 0), full.len() + 1);
        let mut buf = [0xAAu8; 9];
        assert_eq!(ml_last_error_message(buf.as_mut_ptr(), buf.len()), full.len() + 1);
        assert_eq!(&buf, b"ml_chats\0");
        // A success does not clear it.
        let h = new_client();
        assert_eq!(ml_chats_handle_timeout(h, NOW), ML_OK);
        assert_eq!(last_error(), full);
        ml_chats_free(h);
    })
    .join()
    .unwrap();
}

#[test]
fn a_panic_poisons_the_handle() {
    let h = new_client();
    let mut out = MlOutput::default();
    unsafe {
        PANIC_NEXT.with(|p| p.set(true));
        assert_eq!(ml_chats_login(h, NOW), ML_PANIC);
        assert!(last_error().contains("test hook"), "{}", last_error());
        assert_eq!(ml_chats_poll(h, &mut out), ML_PANIC);
        assert!(last_error().contains("poisoned"));
        assert_eq!(ml_chats_output_meta(h, null_mut(), 0, &mut 0), ML_PANIC);
        ml_chats_free(h);

        // Without a handle there is nothing to poison, but the code is still PANIC.
        PANIC_NEXT.with(|p| p.set(true));
        let mut h2 = null_mut();
        assert_eq!(ml_chats_new(null(), null(), 0, SEED.as_ptr(), 32, &mut h2), ML_PANIC);
    }
}

/// A host in Rust: pump into callbacks, perform requests against the in-process sandbox.
struct Host {
    persisted: Vec<(u64, Vec<u8>)>,
    requests: Vec<(u64, serde_json::Value, Vec<u8>)>,
    events: Vec<serde_json::Value>,
}

unsafe extern "C" fn send_http(ctx: *mut c_void, id: u64, meta: *const std::ffi::c_char, body: *const u8, len: usize) {
    let host = unsafe { &mut *ctx.cast::<Host>() };
    let meta = serde_json::from_slice(unsafe { CStr::from_ptr(meta) }.to_bytes()).unwrap();
    let body = if len == 0 { Vec::new() } else { unsafe { std::slice::from_raw_parts(body, len) }.to_vec() };
    host.requests.push((id, meta, body));
}
unsafe extern "C" fn persist(ctx: *mut c_void, ticket: u64, bytes: *const u8, len: usize) {
    let host = unsafe { &mut *ctx.cast::<Host>() };
    host.persisted.push((ticket, unsafe { std::slice::from_raw_parts(bytes, len) }.to_vec()));
}
unsafe extern "C" fn emit_event(ctx: *mut c_void, json: *const std::ffi::c_char) {
    let host = unsafe { &mut *ctx.cast::<Host>() };
    host.events.push(serde_json::from_slice(unsafe { CStr::from_ptr(json) }.to_bytes()).unwrap());
}

/// Pump and answer everything until the predicate holds on the events seen so far.
fn drive(h: *mut MlChats, host: &mut Host, sandbox: &moltlink_sandbox::Sandbox, until: impl Fn(&[serde_json::Value]) -> bool) {
    let callbacks = MlCallbacks {
        ctx: (host as *mut Host).cast(),
        send_http: Some(send_http),
        persist: Some(persist),
        emit_event: Some(emit_event),
        ws: None,
    };
    for _ in 0..50 {
        let (mut has_deadline, mut deadline) = (0, 0);
        assert_eq!(unsafe { ml_chats_pump(h, &callbacks, &mut has_deadline, &mut deadline) }, ML_OK, "{}", last_error());
        if until(&host.events) {
            return;
        }
        let host = unsafe { &mut *callbacks.ctx.cast::<Host>() };
        for (ticket, _) in std::mem::take(&mut host.persisted) {
            assert_eq!(unsafe { ml_chats_handle_persisted(h, ticket, NOW) }, ML_OK, "{}", last_error());
        }
        for (id, meta, body) in std::mem::take(&mut host.requests) {
            let mut req = http::Request::builder()
                .method(meta["method"].as_str().unwrap())
                .uri(meta["url"].as_str().unwrap());
            for pair in meta["headers"].as_array().unwrap() {
                req = req.header(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            }
            let resp = sandbox.handle(req.body(body).unwrap(), NOW);
            let headers: Vec<(String, String)> =
                resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned())).collect();
            let headers = CString::new(serde_json::to_string(&headers).unwrap()).unwrap();
            let rc = unsafe {
                ml_chats_handle_response(h, id, resp.status().as_u16(), headers.as_ptr(), resp.body().as_ptr(), resp.body().len(), NOW)
            };
            assert_eq!(rc, ML_OK, "{}", last_error());
        }
    }
    panic!("did not converge; events: {:?}", host.events);
}

#[test]
fn pump_drives_register_login_refresh_whoami_against_the_sandbox() {
    let sandbox = moltlink_sandbox::Sandbox::new(Default::default());
    let h = new_client();
    let mut host = Host { persisted: Vec::new(), requests: Vec::new(), events: Vec::new() };
    let authenticated = |n: usize| move |ev: &[serde_json::Value]| ev.iter().filter(|e| e["type"] == "authenticated").count() >= n;
    unsafe {
        assert_eq!(ml_chats_register(h, c"pump_agent".as_ptr(), NOW), ML_OK);
        drive(h, &mut host, &sandbox, authenticated(1));
        let mut flag = 0;
        assert_eq!(ml_chats_is_authenticated(h, NOW, &mut flag), ML_OK);
        assert_eq!(flag, 1);
        assert_eq!(ml_chats_refresh(h, NOW), ML_OK);
        drive(h, &mut host, &sandbox, authenticated(2));
        assert_eq!(host.events.last().unwrap()["how"], "refresh");
        let mut call = 0;
        assert_eq!(ml_chats_whoami(h, NOW, &mut call), ML_OK);
        drive(h, &mut host, &sandbox, |ev| ev.iter().any(|e| e["type"] == "call_succeeded"));
        let done = host.events.last().unwrap();
        assert_eq!(done["call_id"], call);
        assert!(done["body"].to_string().contains("pump_agent"), "{done}");
        let mut needed = 0;
        assert_eq!(ml_chats_agent_id(h, null_mut(), 0, &mut needed), ML_BUFFER_TOO_SMALL);
        assert!(needed > 0);
        ml_chats_free(h);
    }
}

#[test]
fn typed_commands_and_queue_state_through_the_c_abi() {
    let h = new_client();
    let mut call = 0u64;
    // No identity yet: the command is understood but refused.
    let rc = unsafe { ml_chats_command(h, c"{\"op\":\"friends\"}".as_ptr(), NOW, &mut call) };
    assert_eq!(rc, ML_NOT_REGISTERED, "{}", last_error());
    for bad in [c"{\"op\":\"nope\"}", c"not json", c"{\"op\":\"profile_patch\"}"] {
        let rc = unsafe { ml_chats_command(h, bad.as_ptr(), NOW, &mut call) };
        assert_eq!(rc, ML_INVALID_ARGUMENT, "{bad:?}");
    }
    assert!(last_error().contains("ml_chats_command"));
    assert_eq!(unsafe { ml_chats_command(h, null(), NOW, &mut call) }, ML_NULL_POINTER);
    assert_eq!(unsafe { ml_chats_command(h, c"{\"op\":\"friends\"}".as_ptr(), NOW, null_mut()) }, ML_NULL_POINTER);
    assert_eq!(unsafe { ml_chats_command(h, c"\xff".as_ptr(), NOW, &mut call) }, ML_INVALID_UTF8);

    let mut needed = 0;
    assert_eq!(unsafe { ml_chats_queue_state(h, NOW, null_mut(), 0, &mut needed) }, ML_BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; needed + 1];
    assert_eq!(unsafe { ml_chats_queue_state(h, NOW, buf.as_mut_ptr(), buf.len(), &mut needed) }, ML_OK);
    let state: serde_json::Value = serde_json::from_slice(&buf[..needed]).unwrap();
    assert_eq!(state, serde_json::json!({"waiting":0,"in_flight":0,"next_release_ms":null,"buckets":[],"ws_sends":0}));
    unsafe { ml_chats_free(h) };
}
