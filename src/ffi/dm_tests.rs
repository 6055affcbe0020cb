//! The DM exports called the way a C host calls them, against the sandbox's handler.

use super::boundary::PANIC_NEXT;
use super::*;
use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

const SEED: [u8; 32] = [3; 32];
const NOW: u64 = 1_790_000_000_000;

fn last_error() -> String {
    let n = unsafe { ml_last_error_message(null_mut(), 0) };
    let mut buf = vec![0u8; n.max(1)];
    unsafe { ml_last_error_message(buf.as_mut_ptr(), buf.len()) };
    CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap().to_owned()
}

fn read(f: impl Fn(*mut u8, usize, *mut usize) -> i32) -> Vec<u8> {
    let mut needed = 0;
    let rc = f(null_mut(), 0, &mut needed);
    assert!(rc == ML_OK || rc == ML_BUFFER_TOO_SMALL, "{rc}");
    let mut buf = vec![0u8; needed];
    assert_eq!(f(buf.as_mut_ptr(), buf.len(), &mut needed), ML_OK);
    buf
}

fn new(base: &CStr, key: &CStr) -> (i32, *mut MlDm) {
    let mut h = null_mut();
    let rc = unsafe { ml_dm_new(base.as_ptr(), key.as_ptr(), SEED.as_ptr(), 32, &mut h) };
    (rc, h)
}

#[test]
fn arguments_are_checked() {
    let mut h = null_mut();
    let mut id = 0u64;
    unsafe {
        assert_eq!(ml_dm_new(null(), null(), SEED.as_ptr(), 32, &mut h), ML_NULL_POINTER);
        assert!(last_error().contains("api_key"));
        assert_eq!(ml_dm_new(null(), c"k".as_ptr(), SEED.as_ptr(), 31, &mut h), ML_INVALID_ARGUMENT);
        let (rc, h) = new(c"https://moltbook.com/api/v1", c"moltbook_sk_x");
        assert_eq!(rc, ML_INVALID_ARGUMENT);
        assert!(h.is_null());
        assert!(last_error().contains("bare host"), "{}", last_error());
        assert_eq!(ml_dm_command(null_mut(), c"{}".as_ptr(), NOW, &mut id), ML_NULL_POINTER);
        ml_dm_free(null_mut());

        let (rc, h) = new(c"http://127.0.0.1/moltbook/api/v1", c"moltbook_sk_x");
        assert_eq!(rc, ML_OK);
        assert_eq!(ml_dm_command(h, c"{\"command\":\"dance\"}".as_ptr(), NOW, &mut id), ML_INVALID_ARGUMENT);
        assert_eq!(ml_dm_command(h, c"{\"command\":\"check\"}".as_ptr(), NOW, null_mut()), ML_NULL_POINTER);
        let short = c"{\"command\":\"request\",\"to\":\"b\",\"message\":\"short\"}";
        assert_eq!(ml_dm_command(h, short.as_ptr(), NOW, &mut id), ML_INVALID_ARGUMENT);
        assert!(last_error().contains("10-1000"));
        assert_eq!(ml_dm_state(h, null(), null_mut(), 0, &mut 0), ML_NULL_POINTER);
        PANIC_NEXT.with(|p| p.set(true));
        assert_eq!(ml_dm_handle_timeout(h, NOW), ML_PANIC);
        assert_eq!(ml_dm_command(h, c"{\"command\":\"check\"}".as_ptr(), NOW, &mut id), ML_PANIC, "poisoned");
        ml_dm_free(h);
    }
}

/// Request → approve (by B's owner in the sandbox) → state, through poll/meta/body only.
#[test]
fn a_request_round_trip_through_the_c_abi() {
    let sandbox = moltlink_sandbox::Sandbox::default();
    let key_a = CString::new(sandbox.moltbook_add_agent("AliceBot", "alice_x").unwrap()).unwrap();
    sandbox.moltbook_add_agent("BensBot", "bensmith").unwrap();
    let (rc, h) = new(c"http://127.0.0.1/moltbook/api/v1", &key_a);
    assert_eq!(rc, ML_OK);
    let mut call = 0u64;
    let cmd = c"{\"command\":\"request\",\"to_owner\":\"@bensmith\",\"message\":\"Hello from the C ABI\"}";
    assert_eq!(unsafe { ml_dm_command(h, cmd.as_ptr(), NOW, &mut call) }, ML_OK);
    let mut events = vec![];
    loop {
        let mut out = MlOutput::default();
        assert_eq!(unsafe { ml_dm_poll(h, &mut out) }, ML_OK);
        let meta: serde_json::Value = serde_json::from_slice(&read(|b, c, n| unsafe { ml_dm_output_meta(h, b, c, n) })).unwrap();
        match out.kind {
            ML_OUTPUT_WAIT => break,
            ML_OUTPUT_HTTP => {
                let body = read(|b, c, n| unsafe { ml_dm_output_body(h, b, c, n) });
                let mut req = http::Request::builder().method(meta["method"].as_str().unwrap()).uri(meta["url"].as_str().unwrap());
                for pair in meta["headers"].as_array().unwrap() {
                    req = req.header(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
                }
                let response = sandbox.handle(req.body(body).unwrap(), NOW);
                let headers = CString::new("[]").unwrap();
                let rc = unsafe {
                    ml_dm_handle_response(h, out.id, response.status().as_u16(), headers.as_ptr(), response.body().as_ptr(), response.body().len(), NOW)
                };
                assert_eq!(rc, ML_OK, "{}", last_error());
            }
            ML_OUTPUT_EVENT => events.push(meta["event"].clone()),
            other => panic!("unexpected output kind {other}"),
        }
    }
    let done = events.iter().find(|e| e["type"] == "call_succeeded" && e["call_id"] == call).expect("the request succeeded");
    let cid = CString::new(done["body"]["conversation_id"].as_str().unwrap()).unwrap();
    let state = read(|b, c, n| unsafe { ml_dm_state(h, cid.as_ptr(), b, c, n) });
    assert_eq!(state, b"requested");
    // Sending before approval on a known conversation is refused after a sync; approving our own request at once.
    let approve = CString::new(format!("{{\"command\":\"approve\",\"conversation_id\":{}}}", serde_json::json!(cid.to_str().unwrap()))).unwrap();
    assert_eq!(unsafe { ml_dm_command(h, approve.as_ptr(), NOW, &mut call) }, ML_INVALID_STATE);
    assert!(last_error().contains("only the other agent's owner"), "{}", last_error());
    assert!(!events.iter().any(|e| e.to_string().contains(key_a.to_str().unwrap())));
    unsafe { ml_dm_free(h) };
}
