//! The recorded MoltChats traffic (`host-tests/wire/moltchats/rest`, 312 exchanges with a real
//! server) is the contract: every exchange on an agent route is turned back into the typed
//! command that would make it, the request the core builds is compared with the recorded one,
//! and the recorded response is fed to a real `ChatsClient` as the answer. Then:
//! - success or failure as recorded, the error `code` kept, a 5xx's raw text withheld, a 429
//!   requeued (never failed);
//! - every leaf value of a success body is in the typed view (none lost), and the typed view
//!   has no value the body did not have (none invented); the verbatim body rides beside it.
//!
//! `cargo test --release -p moltlink --test wire_contract -- --nocapture` prints the report.

use moltlink::chats::{ChatsClient, ChatsCommand, ChatsConfig, ChatsEvent};
use moltlink::SansIo;
use moltlink::io::{ApiError, CallEvent, Output};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

const API: &str = "http://127.0.0.1/moltchats/api/v1";
const T0: u64 = 1_796_000_000_000;

/// Route → command op and the command fields its path parameters fill, in order.
const ROUTES: &[(&str, &str, &[&str])] = &[
    ("GET /agents/@me", "profile_get", &[]),
    ("PATCH /agents/@me", "profile_patch", &[]),
    ("GET /agents/:username", "agent_get", &["username"]),
    ("GET /agents/@me/servers", "my_servers", &[]),
    ("GET /agents/@me/config", "agent_config_get", &[]),
    ("PATCH /agents/@me/config", "agent_config_patch", &[]),
    ("GET /agents/@me/pending", "pending", &[]),
    ("POST /servers", "server_create", &[]),
    ("GET /servers", "servers_browse", &[]),
    ("GET /servers/:id", "server_get", &["server_id"]),
    ("PATCH /servers/:id", "server_patch", &["server_id"]),
    ("DELETE /servers/:id", "server_delete", &["server_id"]),
    ("POST /servers/:id/join", "server_join", &["server_id"]),
    ("DELETE /servers/:id/leave", "server_leave", &["server_id"]),
    ("PUT /servers/:id/instructions", "server_instructions", &["server_id"]),
    ("GET /servers/:id/bans", "bans", &["server_id"]),
    ("POST /servers/:id/ban", "ban", &["server_id"]),
    ("DELETE /servers/:id/ban/:username", "unban", &["server_id", "username"]),
    ("POST /servers/:serverId/channels", "channel_create", &["server_id"]),
    ("GET /servers/:serverId/channels", "channels", &["server_id"]),
    ("PATCH /channels/:id", "channel_patch", &["channel_id"]),
    ("DELETE /channels/:id", "channel_delete", &["channel_id"]),
    ("PUT /channels/:id/instructions", "channel_instructions", &["channel_id"]),
    ("POST /channels/:channelId/report", "channel_report", &["channel_id"]),
    ("POST /channels/:channelId/messages", "message_send", &["channel_id"]),
    ("GET /channels/:channelId/messages", "history", &["channel_id"]),
    ("POST /messages/:id/react", "react", &["message_id"]),
    ("DELETE /messages/:id/react/:emoji", "unreact", &["message_id", "emoji"]),
    ("GET /feed", "feed", &[]),
    ("GET /search", "search", &[]),
    ("POST /friends/request", "friend_request", &[]),
    ("POST /friends/accept", "friend_accept", &[]),
    ("POST /friends/reject", "friend_reject", &[]),
    ("DELETE /friends/:username", "friend_remove", &["username"]),
    ("GET /friends", "friends", &[]),
    ("GET /friends/requests", "friend_requests", &[]),
    ("POST /blocks/:username", "block", &["username"]),
    ("DELETE /blocks/:username", "unblock", &["username"]),
    ("GET /blocks", "blocks", &[]),
    ("GET /trust/@me", "trust_me", &[]),
    ("GET /trust/:username", "trust_get", &["username"]),
    ("GET /trust/challenge/:id", "trust_challenge", &["challenge_id"]),
    ("GET /webhooks/config", "webhooks_config_get", &[]),
    ("PUT /webhooks/config", "webhooks_config_put", &[]),
    ("POST /webhooks/test", "webhooks_test", &[]),
];

/// Routes that are not agent commands: auth (driven by the auth session, classified here only),
/// and the human observer dashboard, health and skill files (out of scope).
fn not_a_command(route: &str) -> bool {
    route.starts_with("POST /agents/register") || route.starts_with("POST /agents/verify") || route.starts_with("POST /auth/")
        || route.contains("/observers/") || route.starts_with("GET /health") || route.ends_with(".md") || route.contains("<unknown>")
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("host-tests/wire/moltchats/rest")
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

fn snake(key: &str) -> String {
    if key == "targetUsername" {
        return "username".into();
    }
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The JSON command that would make this recorded request, if the route is a command's.
fn command_for(route: &str, path: &str, body: &Value) -> Option<Value> {
    let (_, op, params) = ROUTES.iter().find(|(r, _, _)| *r == route)?;
    let mut cmd = Map::new();
    cmd.insert("op".into(), json!(op));
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let template: Vec<&str> = route.split_once(' ').unwrap().1.split('/').collect();
    let actual: Vec<&str> = path.trim_start_matches("/api/v1").split('/').collect();
    let mut names = params.iter();
    for (t, a) in template.iter().zip(&actual) {
        if t.starts_with(':') {
            cmd.insert((*names.next()?).to_string(), json!(decode(a)));
        }
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        let value = if ["limit", "offset"].contains(&k) { v.parse::<u64>().map(Value::from).unwrap_or(json!(v)) } else { json!(v) };
        cmd.insert(snake(k), value);
    }
    if let Value::Object(fields) = body {
        for (k, v) in fields {
            let key = match (*op, k.as_str()) {
                ("react", "emoji") => "emoji".to_owned(),
                _ => snake(k),
            };
            cmd.insert(key, v.clone());
        }
    }
    Some(Value::Object(cmd))
}

/// A JWT the client can schedule from (unverified: `exp`/`iat` only).
fn fake_jwt() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = json!({ "sub": "agent-contract", "iat": T0 / 1000, "exp": T0 / 1000 + 4 * 3600 });
    format!("{}.{}.sig", b64.encode(br#"{"alg":"HS256"}"#), b64.encode(payload.to_string()))
}

/// Credentials of a real identity, generated once (key generation is slow).
fn credentials() -> Vec<u8> {
    static CREDS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    CREDS
        .get_or_init(|| {
            let mut client = ChatsClient::new(ChatsConfig { api_base: Some(API.into()), credentials: None, seed: [7; 32], refresh: Default::default() }).unwrap();
            client.register("contract", T0).unwrap();
            loop {
                if let Output::Persist { bytes, .. } = client.poll_output() {
                    let mut saved: Value = serde_json::from_slice(bytes.expose()).unwrap();
                    saved["agentId"] = "agent-contract".into();
                    saved["refreshToken"] = "msr_initial".into();
                    return serde_json::to_vec(&saved).unwrap();
                }
            }
        })
        .clone()
}

fn response(status: u16, headers: &Map<String, Value>, body: &Value) -> http::Response<Vec<u8>> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str().unwrap_or_default());
    }
    let bytes = match body {
        Value::String(s) => s.clone().into_bytes(),
        Value::Null => Vec::new(),
        v => v.to_string().into_bytes(),
    };
    b.body(bytes).unwrap()
}

/// What the client made of one recorded exchange.
enum Outcome {
    Succeeded { result: Value, body: Value },
    Failed(ApiError),
    Requeued,
}

/// Run `command` on a fresh client; its request is answered with the recorded response
/// (auth requests with a fresh token). Returns the request the client sent and the outcome.
fn replay(command: ChatsCommand, status: u16, headers: &Map<String, Value>, body: &Value) -> (http::Request<Vec<u8>>, Outcome) {
    let mut client = ChatsClient::new(ChatsConfig { api_base: Some(API.into()), credentials: Some(credentials()), seed: [3; 32], refresh: Default::default() }).unwrap();
    client.login(T0).unwrap();
    let call = client.command(command, T0).unwrap();
    let mut sent = None;
    for _ in 0..200 {
        match client.poll_output() {
            Output::Http { id, request, .. } => {
                let resp = if request.uri().path().ends_with("/auth/refresh") {
                    response(200, &Map::new(), &json!({"agentId": "agent-contract", "token": fake_jwt(), "refreshToken": "msr_next"}))
                } else {
                    sent.get_or_insert(request.clone());
                    response(status, headers, body)
                };
                client.handle_response(id, resp, T0).unwrap();
            }
            Output::Persist { ticket, .. } => client.handle_persisted(ticket, T0).unwrap(),
            Output::Event(ChatsEvent::CommandSucceeded { call_id, result, body, .. }) if call_id == call => {
                return (*sent.unwrap(), Outcome::Succeeded { result: serde_json::to_value(result).unwrap(), body });
            }
            Output::Event(ChatsEvent::Call(CallEvent::CallFailed { call_id, error })) if call_id == call => return (*sent.unwrap(), Outcome::Failed(error)),
            Output::Event(ChatsEvent::Throttled { call_id, rejected: true, .. }) if call_id == call => return (*sent.unwrap(), Outcome::Requeued),
            Output::Wait { .. } => panic!("call {call} never finished"),
            _ => {}
        }
    }
    panic!("call {call} looped")
}

/// A path with its query pairs decoded and sorted (their order carries no meaning).
fn normal_path(p: &str) -> (String, Vec<String>) {
    let (path, query) = p.split_once('?').unwrap_or((p, ""));
    let mut pairs: Vec<String> = query.split('&').filter(|q| !q.is_empty()).map(decode).collect();
    pairs.sort();
    (decode(path), pairs)
}

/// Every leaf of `v` (scalars, and empty arrays/objects) with its path.
fn leaves(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => m.iter().for_each(|(k, x)| leaves(x, format!("{path}/{}", norm(k)), out)),
        Value::Array(a) if !a.is_empty() => a.iter().enumerate().for_each(|(i, x)| leaves(x, format!("{path}/{i}"), out)),
        _ => out.push((path, v.clone())),
    }
}

/// Keys compared without case and underscores: `unreadDMs` ~ `unread_dms`.
fn norm(key: &str) -> String {
    key.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// The same value, allowing the typed view's normalisations: `"2"` read as `2`, `0` as `0.0`.
fn same(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    a == b || (matches!((a, b), (Value::Number(_), _) | (_, Value::Number(_))) && num(a).is_some() && num(a) == num(b))
}

/// Leaves of `from` missing (or different) in `to`.
fn missing(from: &Value, to: &Value) -> (usize, Vec<String>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    leaves(from, String::new(), &mut a);
    leaves(to, String::new(), &mut b);
    let b: std::collections::HashMap<String, Value> = b.into_iter().collect();
    let lost = a.iter().filter(|(p, v)| !b.get(p).is_some_and(|w| same(v, w))).map(|(p, v)| format!("{p} = {v}")).collect();
    (a.len(), lost)
}

#[test]
fn every_recorded_exchange_is_understood_and_nothing_is_lost() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 312, "corpus missing: {}", corpus_dir().display());
    let (mut replayed, mut classified_only, mut refused_locally, mut leaf_values, mut routes) = (0, 0, 0, 0, std::collections::BTreeSet::new());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let x: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let route = x["route"].as_str().unwrap();
        let (req, resp) = (&x["request"], &x["response"]);
        let status = resp["status"].as_u64().unwrap() as u16;
        let rbody = &resp["body"];
        let headers = resp["headers"].as_object().cloned().unwrap_or_default();
        let raw = match rbody {
            Value::String(s) => s.clone().into_bytes(),
            v => v.to_string().into_bytes(),
        };
        // What the failure classification must say of this response.
        let expect_error = |e: &ApiError, failures: &mut Vec<String>| {
            if e.status != status || e.code.as_deref() != rbody["code"].as_str() {
                failures.push(format!("{name}: failed as {} {:?}, recorded {status} {:?}", e.status, e.code, rbody["code"]));
            }
            if status >= 500 && rbody["message"].as_str().is_some_and(|m| e.message.contains(m)) {
                failures.push(format!("{name}: a 5xx's raw text reached the event"));
            }
        };
        let command = if not_a_command(route) { None } else { command_for(route, req["path"].as_str().unwrap(), &req["body"]) };
        if !not_a_command(route) && command.is_none() {
            failures.push(format!("{name}: route {route} has no command"));
            continue;
        }
        let parsed = command.as_ref().map(|c| ChatsCommand::from_json(&c.to_string()));
        let built = parsed.as_ref().and_then(|c| c.as_ref().ok()).map(|c| (c.clone(), c.request()));
        let Some((command, Ok(prepared))) = built else {
            // Auth routes, or a request our typed API refuses to make (bad field types, a bio
            // over the limit…): the response is still classified the way calls classify it.
            if command.is_some() {
                refused_locally += 1;
                if status < 300 {
                    failures.push(format!("{name}: the server accepted a request our checks refuse: {}", req["path"]));
                }
            } else {
                classified_only += 1;
            }
            if status >= 300 {
                expect_error(&ApiError::from_moltchats(status, &raw), &mut failures);
            }
            continue;
        };
        routes.insert(route.to_owned());
        replayed += 1;
        let (sent, outcome) = replay(command, status, &headers, rbody);
        // The request the core builds is the recorded one.
        let recorded_path = req["path"].as_str().unwrap().trim_start_matches("/api/v1");
        let sent_path = sent.uri().path_and_query().unwrap().as_str().trim_start_matches("/moltchats/api/v1");
        if sent.method().as_str() != req["method"] || normal_path(sent_path) != normal_path(recorded_path) {
            failures.push(format!("{name}: sent {} {sent_path}, recorded {} {recorded_path}", sent.method(), req["method"]));
        }
        let sent_body: Value = if sent.body().is_empty() { Value::Null } else { serde_json::from_slice(sent.body()).unwrap() };
        let recorded_body = if req["body"] == json!({}) && prepared.body.is_none() { Value::Null } else { req["body"].clone() };
        if sent_body != recorded_body && !(sent_body.is_null() && recorded_body == json!({})) {
            failures.push(format!("{name}: sent body {sent_body}, recorded {recorded_body}"));
        }
        match (status, outcome) {
            (200..=299, Outcome::Succeeded { result, body }) => {
                if &body != rbody {
                    failures.push(format!("{name}: the event's body is not the verbatim body"));
                }
                let (n, lost) = missing(rbody, &result);
                leaf_values += n;
                let (_, invented) = missing(&result, rbody);
                failures.extend(lost.into_iter().map(|l| format!("{name}: lost {l}")));
                failures.extend(invented.into_iter().map(|l| format!("{name}: invented {l}")));
            }
            (429, Outcome::Requeued) => {}
            (300.., Outcome::Failed(e)) => expect_error(&e, &mut failures),
            (_, Outcome::Succeeded { .. }) => failures.push(format!("{name}: {status} reported as success")),
            (_, Outcome::Failed(e)) => failures.push(format!("{name}: {status} reported as failure: {e}")),
            (_, Outcome::Requeued) => failures.push(format!("{name}: {status} requeued")),
        }
    }
    println!(
        "wire contract (REST): {} files, {replayed} exchanges replayed on {} routes, {refused_locally} refused before sending, {classified_only} auth/observer/meta classified only, {leaf_values} leaf values checked, {} values lost or invented",
        files.len(),
        routes.len(),
        failures.iter().filter(|f| f.contains(": lost ") || f.contains(": invented ")).count()
    );
    assert!(failures.is_empty(), "{} contract failures:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(routes.len(), ROUTES.len(), "every agent route replayed");
}
