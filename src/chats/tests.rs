//! Whole-session tests: the core driven against the sandbox's request handler with a virtual
//! clock (no sockets), so a week of rotations takes milliseconds and every run replays exactly.

use super::*;
use crate::auth::AuthEvent;
use crate::io::{CallEvent, Output, SansIo};
use crate::testkit::sandbox::SandboxPeer;
use crate::testkit::{Driver, Next, Peer};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use std::rc::Rc;

const T0: u64 = 1_790_000_000_000;
const API: &str = "http://127.0.0.1/moltchats/api/v1";
const HOUR: u64 = 3_600_000;

/// A host with a virtual clock and a "disk" holding the last persisted bytes, recording every
/// secret-free string it could log (outputs' Debug, events) in `transcript`.
type Harness = Driver<ChatsClient, SandboxPeer>;

fn harness(config: SandboxConfig) -> Harness {
    let mut peer = SandboxPeer::new(Rc::new(Sandbox::new(config)));
    peer.rest_only = true;
    let mut h = Driver::new(open(None, 1), peer, T0);
    h.record = true;
    // A livelock (endless requests without time passing) fails the test quickly.
    h.max_steps = 200;
    h
}

/// What the chats tests add to the driver.
trait Session {
    /// Simulate a process restart: a new client from what is on disk.
    fn restart(&mut self, seed: u8);
    /// Answer a request from the sandbox without giving the answer to the client.
    fn serve(&mut self, request: http::Request<Vec<u8>>) -> http::Response<Vec<u8>>;
    fn register(&mut self, name: &str);
    /// Every request path the client sent, in order.
    fn sent(&self) -> Vec<String>;
    fn count(&self, path: &str) -> usize;
    fn last_auth(&self) -> Option<AuthHow>;
    fn call_outcome(&self, call: CallId) -> Option<&ChatsEvent>;
}

impl Session for Harness {
    fn restart(&mut self, seed: u8) {
        self.client = open(self.persisted.clone(), seed);
    }

    fn serve(&mut self, request: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        self.peer.http(request, self.now_ms).unwrap()
    }

    fn register(&mut self, name: &str) {
        self.client.register(name, self.now_ms).unwrap();
        self.drive();
        assert!(self.client.is_authenticated(self.now_ms), "events: {:?}", self.events);
    }

    fn sent(&self) -> Vec<String> {
        self.peer.paths("/moltchats/api/v1")
    }

    fn count(&self, path: &str) -> usize {
        self.sent().iter().filter(|p| *p == path).count()
    }

    fn last_auth(&self) -> Option<AuthHow> {
        self.events.iter().rev().find_map(|e| match e {
            ChatsEvent::Auth(AuthEvent::Authenticated { how, .. }) => Some(*how),
            _ => None,
        })
    }

    fn call_outcome(&self, call: CallId) -> Option<&ChatsEvent> {
        self.events.iter().find(|e| matches!(e, ChatsEvent::Call(CallEvent::CallSucceeded { call_id, .. }) | ChatsEvent::Call(CallEvent::CallFailed { call_id, .. }) if *call_id == call))
    }
}

fn open(credentials: Option<Vec<u8>>, seed: u8) -> ChatsClient {
    ChatsClient::new(ChatsConfig { api_base: Some(API.into()), credentials, seed: [seed; 32], refresh: Default::default() }).unwrap()
}

#[test]
fn a_new_ws_base_keeps_the_realtime_config() {
    let mut client = open(None, 3);
    let custom = RealtimeConfig { ping_interval_ms: 1_234, backoff_base_ms: 77, ..RealtimeConfig::default() };
    client.set_realtime_config(custom);
    client.set_ws_base("ws://127.0.0.1:9/moltchats/ws").unwrap();
    assert_eq!(client.ws_base(), "ws://127.0.0.1:9/moltchats/ws");
    assert_eq!(client.realtime_config(), custom, "a new WebSocket base must not reset the session's config");
    assert!(client.set_ws_base("http://127.0.0.1/ws").is_err());
    assert!(client.set_ws_base("ws://moltchats.com/ws").is_err(), "the token would travel in clear");
}

#[test]
fn credentials_never_go_in_clear_to_a_remote_host() {
    let refused = |base: &str| ChatsClient::new(ChatsConfig { api_base: Some(base.into()), credentials: None, seed: [1; 32], refresh: Default::default() });
    let error = refused("http://moltchats.com/api/v1").unwrap_err();
    assert!(error.message.contains("in clear"), "{}", error.message);
    assert!(refused("https://moltchats.com/api/v1").is_ok());
    assert!(refused("http://127.0.0.1:8787/moltchats/api/v1").is_ok());
}

fn fast_config() -> SandboxConfig {
    SandboxConfig::default()
}

use crate::auth::AuthHow;

/// Every REST command and the rate limiter, whole-session against the sandbox.
mod rest_session;

/// The realtime session against the sandbox's WebSocket gateway, on a virtual clock.
mod realtime_session;

/// The recorded WebSocket corpus replayed into a realtime session.
mod ws_replay;

#[test]
fn register_login_and_whoami() {
    let mut h = harness(fast_config());
    h.register("Agent_One");
    let call = h.client.whoami(h.now_ms).unwrap();
    h.drive();
    match h.call_outcome(call) {
        Some(ChatsEvent::Call(CallEvent::CallSucceeded { body, .. })) => assert_eq!(body["username"], "agent_one"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(h.sent(), ["/agents/register", "/agents/verify", "/agents/@me"]);
    // The saved file is the skill's format.
    let saved: serde_json::Value = serde_json::from_slice(h.persisted.as_ref().unwrap()).unwrap();
    for key in ["agentId", "username", "privateKey", "refreshToken", "apiBase"] {
        assert!(saved.get(key).is_some(), "missing {key}");
    }
    assert!(saved.get("refreshInFlight").is_none());
}

#[test]
fn a_week_of_rotations_never_loses_access() {
    let mut h = harness(fast_config());
    h.register("weekly");
    let mut calls = vec![];
    for step in 0..(7 * 24 * 4) {
        h.advance(15 * 60 * 1000);
        assert!(h.client.is_authenticated(h.now_ms), "lost access at step {step}");
        if step % 7 == 0 {
            calls.push(h.client.whoami(h.now_ms).unwrap());
            h.drive();
        }
    }
    let refreshes = h.count("/auth/refresh");
    // 4 h tokens refreshed at 80 % ± 5 %: 3.0–3.4 h apart, ~50 in a week.
    assert!((48..=57).contains(&refreshes), "{refreshes} refreshes");
    assert_eq!(h.count("/auth/challenge"), 0);
    let stats = h.peer.sandbox.stats();
    assert_eq!(stats.refresh_reuse_rejections, 0);
    assert_eq!(stats.bearer_rejections, 0);
    for call in calls {
        assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallSucceeded { .. }))));
    }
}

/// Run until the client has sent `/auth/refresh`, returning that request undelivered.
fn refresh_request(h: &mut Harness) -> (RequestId, http::Request<Vec<u8>>) {
    h.client.refresh(h.now_ms).unwrap();
    let mut marker = serde_json::Value::Null;
    loop {
        match h.client.poll_output() {
            Output::Persist { ticket, bytes } => {
                // A read-position save may come first; the last write before the refresh is
                // what counts.
                let saved: serde_json::Value = serde_json::from_slice(bytes.expose()).unwrap();
                marker = saved["refreshInFlight"].clone();
                h.perform(Output::Persist { ticket, bytes });
            }
            Output::Http { id, request, .. } => {
                assert!(request.uri().path().ends_with("/auth/refresh"));
                assert_eq!(marker, true, "marker is saved before the refresh is sent");
                return (id, *request);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn assert_recovers_without_replay(h: &mut Harness, expected: AuthHow) {
    h.restart(9);
    h.client.login(h.now_ms).unwrap();
    h.drive();
    assert!(h.client.is_authenticated(h.now_ms));
    assert_eq!(h.last_auth(), Some(expected));
    assert_eq!(h.peer.sandbox.stats().refresh_reuse_rejections, 0, "a spent refresh token was replayed");
    let call = h.client.whoami(h.now_ms).unwrap();
    h.drive();
    assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallSucceeded { .. }))));
    // The identity survived: same agent, key still on disk.
    let saved: serde_json::Value = serde_json::from_slice(h.persisted.as_ref().unwrap()).unwrap();
    assert!(saved["privateKey"].as_str().unwrap().contains("PRIVATE KEY"));
}

#[test]
fn crash_after_sending_refresh_before_response() {
    let mut h = harness(fast_config());
    h.register("crash_a");
    let (_, request) = refresh_request(&mut h);
    let _lost = h.serve(request); // the server rotated; the host died before reading
    assert_recovers_without_replay(&mut h, AuthHow::Challenge);
}

#[test]
fn crash_after_response_before_persisting() {
    let mut h = harness(fast_config());
    h.register("crash_b");
    let (id, request) = refresh_request(&mut h);
    let response = h.serve(request);
    h.client.handle_response(id, response, h.now_ms).unwrap();
    assert!(matches!(h.client.poll_output(), Output::Persist { .. })); // never written
    assert_recovers_without_replay(&mut h, AuthHow::Challenge);
}

#[test]
fn crash_after_persisting_before_acknowledging() {
    let mut h = harness(fast_config());
    h.register("crash_c");
    let (id, request) = refresh_request(&mut h);
    let response = h.serve(request);
    h.client.handle_response(id, response, h.now_ms).unwrap();
    match h.client.poll_output() {
        Output::Persist { bytes, .. } => h.persisted = Some(bytes.expose().clone()), // written, never acked
        other => panic!("unexpected {other:?}"),
    }
    // The new refresh token was saved, so the restart can simply refresh with it.
    assert_recovers_without_replay(&mut h, AuthHow::Refresh);
}

#[test]
fn the_new_token_is_not_used_before_the_host_acknowledges() {
    let mut h = harness(fast_config());
    h.register("acked");
    let (id, request) = refresh_request(&mut h);
    let response = h.serve(request);
    h.client.handle_response(id, response, h.now_ms).unwrap();
    let Output::Persist { ticket, .. } = h.client.poll_output() else { panic!("expected persist") };
    // A call made now waits (the old token is revoked, the new one is not saved yet)...
    let call = h.client.whoami(h.now_ms).unwrap();
    match h.client.poll_output() {
        Output::Http { request, .. } => panic!("sent {} before the ack", request.uri()),
        Output::Wait { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
    // ...and goes out with the new token once the host acknowledges.
    h.client.handle_persisted(ticket, h.now_ms).unwrap();
    h.drive();
    assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallSucceeded { .. }))));
}

#[test]
fn three_triggers_produce_one_refresh() {
    let mut h = harness(fast_config());
    h.register("single_flight");
    // Trigger 1: the timer is due.
    h.now_ms += 4 * HOUR - 5 * 60 * 1000;
    h.client.handle_timeout(h.now_ms);
    // Trigger 2: an explicit refresh (e.g. a WebSocket 4001 reconnect).
    h.client.refresh(h.now_ms).unwrap();
    // Trigger 3: a call that will be answered 401 because the token expires meanwhile.
    let call = h.client.whoami(h.now_ms).unwrap();
    h.client.refresh(h.now_ms).unwrap();
    h.drive();
    assert_eq!(h.count("/auth/refresh"), 1);
    assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallSucceeded { .. }))));
}

#[test]
fn a_call_racing_a_rotation_is_retried_once_with_the_new_token() {
    let mut h = harness(fast_config());
    h.register("racer");
    // The call leaves with the old token...
    let call = h.client.whoami(h.now_ms).unwrap();
    let Output::Http { id: call_req, request: call_request, .. } = h.client.poll_output() else { panic!() };
    // ...the rotation completes first (revoking it)...
    let (id, request) = refresh_request(&mut h);
    let response = h.serve(request);
    h.client.handle_response(id, response, h.now_ms).unwrap();
    h.drive();
    // ...so the server answers TOKEN_REVOKED, and the core resends with the new token.
    let response = h.serve(*call_request);
    assert_eq!(response.status(), 401);
    h.client.handle_response(call_req, response, h.now_ms).unwrap();
    h.drive();
    assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallSucceeded { .. }))), "{:?}", h.events);
    assert_eq!(h.count("/agents/@me"), 2);
}

#[test]
fn a_call_rejected_twice_fails_instead_of_looping() {
    let mut h = harness(fast_config());
    h.register("twice");
    let call = h.client.whoami(h.now_ms).unwrap();
    // Answer every @me with TOKEN_REVOKED: one retry, then a clean failure.
    for _ in 0..10 {
        match h.client.poll_output() {
            Output::Http { id, request, .. } if request.uri().path().ends_with("/agents/@me") => {
                let revoked = crate::io::response_from_parts(401, &[], br#"{"statusCode":401,"code":"TOKEN_REVOKED","error":"Unauthorized","message":"Token has been revoked"}"#.to_vec()).unwrap();
                h.peer.sent.push(format!("GET {API}/agents/@me"));
                h.client.handle_response(id, revoked, h.now_ms).unwrap();
            }
            other => {
                if let Next::Wait(_) = h.perform(other) {
                    break;
                }
            }
        }
    }
    assert_eq!(h.count("/agents/@me"), 2);
    assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallFailed { error, .. })) if error.code_is("TOKEN_REVOKED")));
}

#[test]
fn refresh_rejections_lead_to_reauth_never_a_loop() {
    for code in ["revoked", "expired"] {
        let mut h = harness(fast_config());
        h.register(&format!("rejected_{code}"));
        let saved: serde_json::Value = serde_json::from_slice(h.persisted.as_ref().unwrap()).unwrap();
        let token = saved["refreshToken"].as_str().unwrap().to_owned();
        match code {
            "revoked" => assert!(h.peer.sandbox.revoke_all_refresh_tokens_of(h.client.agent_id().unwrap()) > 0),
            _ => assert!(h.peer.sandbox.expire_refresh_token(&token)),
        }
        h.client.refresh(h.now_ms).unwrap();
        h.drive();
        assert_eq!(h.count("/auth/refresh"), 1);
        assert_eq!(h.count("/auth/challenge"), 1);
        assert_eq!(h.last_auth(), Some(AuthHow::Challenge));
        assert!(h.events.iter().any(|e| matches!(e, ChatsEvent::Auth(AuthEvent::Reauthenticating { .. }))));
    }
}

#[test]
fn fatal_auth_errors_stop_and_fail_waiting_calls() {
    let mut h = harness(fast_config());
    h.register("doomed");
    let creds = h.persisted.clone().unwrap();
    // A different server that never heard of this agent.
    h.peer.sandbox = Rc::new(Sandbox::new(fast_config()));
    h.client = open(Some(creds), 3);
    let call = h.client.whoami(h.now_ms).unwrap();
    h.advance(HOUR);
    assert!(h.events.iter().any(|e| matches!(e, ChatsEvent::Auth(AuthEvent::AuthFailed { error }) if error.code_is("AGENT_NOT_FOUND"))));
    assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallFailed { .. }))));
    assert_eq!(h.sent().len(), 2 + 1 + 1, "register, verify, then one refresh and one challenge: no loop");
}

#[test]
fn transient_failures_back_off_and_recover() {
    let mut h = harness(fast_config());
    h.register("flaky");
    h.client.refresh(h.now_ms).unwrap();
    // The network is down for every auth request for a while.
    let mut failures = 0;
    let mut deadlines = vec![];
    while failures < 5 {
        match h.client.poll_output() {
            Output::Http { id, .. } => {
                failures += 1;
                h.client.handle_transport_error(id, "connection refused", h.now_ms).unwrap();
            }
            Output::Wait { until_ms } => {
                let at = until_ms.expect("a retry is scheduled");
                deadlines.push(at - h.now_ms);
                h.now_ms = at;
                h.client.handle_timeout(h.now_ms);
            }
            other => drop(h.perform(other)),
        }
    }
    assert!(deadlines.windows(2).all(|w| w[1] >= w[0] / 2), "backoff grows: {deadlines:?}");
    h.drive();
    assert!(h.client.is_authenticated(h.now_ms));
    assert_eq!(h.peer.sandbox.stats().refresh_reuse_rejections, 0);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let garbage_pem = br#"{"agentId":"a","username":"x_y_z","privateKey":"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----","refreshToken":"msr_1"}"#;
    let err = ChatsClient::new(ChatsConfig { api_base: None, credentials: Some(garbage_pem.to_vec()), seed: [0; 32], refresh: Default::default() }).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials);
    let err = ChatsClient::new(ChatsConfig { api_base: None, credentials: Some(b"\xff\x00".to_vec()), seed: [0; 32], refresh: Default::default() }).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials);
    let err = ChatsClient::new(ChatsConfig { api_base: Some("ftp://x".into()), credentials: None, seed: [0; 32], refresh: Default::default() }).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument);

    let mut h = harness(fast_config());
    assert_eq!(h.client.whoami(h.now_ms).unwrap_err().code, ErrorCode::NotRegistered);
    assert_eq!(h.client.register("no", h.now_ms).unwrap_err().code, ErrorCode::InvalidArgument);
    h.register("valid_name");
    assert_eq!(h.client.register("other", h.now_ms).unwrap_err().code, ErrorCode::AlreadyRegistered);
    let ok = crate::io::response_from_parts(200, &[], b"{}".to_vec()).unwrap();
    assert_eq!(h.client.handle_response(999, ok, h.now_ms).unwrap_err().code, ErrorCode::UnknownId);
    assert_eq!(h.client.handle_persisted(999, h.now_ms).unwrap_err().code, ErrorCode::UnknownId);
}

#[test]
fn wrong_content_types_and_oversized_bodies_fail_the_call_cleanly() {
    let mut h = harness(fast_config());
    h.register("bodies");
    let bodies: Vec<(u16, Vec<(String, String)>, Vec<u8>)> = vec![
        (200, vec![("content-type".into(), "text/html".into())], b"<html>hi</html>".to_vec()),
        (200, vec![], vec![b' '; crate::io::MAX_RESPONSE_BYTES + 1]),
        (200, vec![], vec![0xff, 0xfe, 0xfd]),
        (503, vec![], b"upstream down".to_vec()),
    ];
    for (status, headers, body) in bodies {
        let call = h.client.whoami(h.now_ms).unwrap();
        let Output::Http { id, .. } = h.client.poll_output() else { panic!() };
        let response = crate::io::response_from_parts(status, &headers, body).unwrap();
        h.client.handle_response(id, response, h.now_ms).unwrap();
        h.drive();
        assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallFailed { .. }))), "{status}");
    }
}

#[test]
fn no_secret_appears_in_events_errors_or_debug_output() {
    let mut h = harness(fast_config());
    h.register("secretive");
    h.advance(9 * HOUR);
    h.client.refresh(h.now_ms).unwrap();
    let call = h.client.whoami(h.now_ms).unwrap();
    h.drive();
    assert!(h.call_outcome(call).is_some());
    h.transcript.push(format!("{:?}", h.client));
    h.transcript.push(h.client.handle_persisted(12345, h.now_ms).unwrap_err().to_string());
    let saved: serde_json::Value = serde_json::from_slice(h.persisted.as_ref().unwrap()).unwrap();
    let pem = saved["privateKey"].as_str().unwrap();
    let key_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut secrets = vec![saved["refreshToken"].as_str().unwrap().to_owned()];
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        secrets.push(line.to_owned());
    }
    assert!(key_body.len() > 1000);
    // Access tokens: every JWT the sandbox minted for us (the header prefix is shared).
    secrets.push("eyJ".to_owned());
    let log = h.transcript.join("\n");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "secret leaked: {}…", &secret[..secret.len().min(8)]);
    }
}

mod random_input {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any status and body for any pending request: no panic, and afterwards the client
        /// still reaches an authenticated state against a well-behaved server.
        #[test]
        fn random_responses_never_panic_or_lose_the_identity(
            answers in proptest::collection::vec((100u16..600, proptest::collection::vec(any::<u8>(), 0..300), any::<bool>()), 1..8),
        ) {
            let mut h = harness(fast_config());
            h.register("fuzzed");
            h.client.refresh(h.now_ms).unwrap();
            let _ = h.client.whoami(h.now_ms).unwrap();
            for (status, mut body, jsonish) in answers {
                if jsonish {
                    body = format!(r#"{{"code":"{}","token":"{}","refreshToken":"x","challenge":"{}"}}"#, status, String::from_utf8_lossy(&body), "0".repeat(64)).into_bytes();
                }
                loop {
                    match h.client.poll_output() {
                        Output::Http { id, .. } => {
                            let response = crate::io::response_from_parts(status, &[], body.clone()).unwrap();
                            h.client.handle_response(id, response, h.now_ms).unwrap();
                            break;
                        }
                        Output::Wait { until_ms } => match until_ms {
                            Some(at) => { h.now_ms = at.max(h.now_ms); h.client.handle_timeout(h.now_ms); }
                            None => break,
                        },
                        other => drop(h.perform(other)),
                    }
                }
            }
            // Recover against the real handler.
            h.client.login(h.now_ms).unwrap();
            h.advance(HOUR);
            let call = h.client.whoami(h.now_ms).unwrap();
            h.drive();
            prop_assert!(matches!(h.call_outcome(call), Some(ChatsEvent::Call(CallEvent::CallSucceeded { .. }))), "events: {:?}", h.events);
            let saved: serde_json::Value = serde_json::from_slice(h.persisted.as_ref().unwrap()).unwrap();
            prop_assert!(saved["privateKey"].as_str().unwrap().contains("PRIVATE KEY"));
        }
    }
}
