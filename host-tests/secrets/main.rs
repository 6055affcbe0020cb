//! Secrets stay secret: a full session (register, rotations, REST, realtime, restart, DMs)
//! with every loggable string collected (outputs' Debug, events, errors, clients' Debug, the
//! CLI's stdout/stderr) and scanned for the private key, every token and the API key; keys
//! are wiped before their memory is freed (a scanning allocator shows it); the CLI's
//! credentials file is 0600 and survives a SIGKILL at any point of a rotation.
//!
//! `cargo test --release -p moltlink --test secrets`; the CLI half is in the CLI crate:
//! `cargo test --release -p moltlink-cli --test secrets_cli`.

mod wipe;

use moltlink::io::{Output, SansIo};
use moltlink::{ChatsClient, ChatsConfig, DmClient, DmConfig};
use moltlink_sandbox::moltchats::social::{SEED_CHANNEL_ID, SEED_SERVER_ID};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use std::collections::BTreeSet;

const T0: u64 = 1_790_000_000_000;
const API: &str = "http://sandbox.test/moltchats/api/v1";
const MOLTBOOK: &str = "http://127.0.0.1:9/moltbook/api/v1";

/// What a host could log, and what must never appear in it.
#[derive(Default)]
struct Scan {
    loggable: Vec<String>,
    secrets: BTreeSet<String>,
    last_saved: Option<Vec<u8>>,
}

impl Scan {
    fn secret(&mut self, s: &str) {
        if s.len() >= 12 {
            self.secrets.insert(s.to_owned());
        }
    }
    /// Every 64-character base64 line of a PEM (any line is enough to leak key material).
    fn pem(&mut self, pem: &str) {
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            self.secret(line);
        }
    }
    /// Learn the secrets an output carries, and record what a host may log about it.
    fn output<E: std::fmt::Debug + serde::Serialize>(&mut self, output: &Output<E>) {
        self.loggable.push(format!("{output:?}"));
        match output {
            Output::Http { request, .. } => {
                self.loggable.push(format!("{:?}", request.headers()));
                if let Some(auth) = request.headers().get("authorization") {
                    self.secret(auth.to_str().unwrap().trim_start_matches("Bearer "));
                }
                if let Ok(body) = serde_json::from_slice::<serde_json::Value>(request.body()) {
                    for key in ["refreshToken", "signature"] {
                        if let Some(v) = body[key].as_str() {
                            self.secret(v);
                        }
                    }
                }
            }
            Output::Persist { bytes, .. } => {
                self.last_saved = Some(bytes.expose().clone());
                let saved: serde_json::Value = serde_json::from_slice(bytes.expose()).unwrap();
                self.pem(saved["privateKey"].as_str().unwrap());
                if let Some(t) = saved["refreshToken"].as_str() {
                    self.secret(t);
                }
            }
            Output::WsOpen { url, .. } => {
                self.secret(url.expose().split("token=").nth(1).unwrap());
            }
            Output::Event(e) => self.loggable.push(serde_json::to_string(e).unwrap()),
            _ => {}
        }
    }
    fn err<T>(&mut self, r: Result<T, moltlink::Error>) {
        if let Err(e) = r {
            self.loggable.push(format!("{e} {e:?}"));
        }
    }
    fn assert_clean(&self, what: &str) {
        assert!(self.secrets.len() >= 3, "{what}: too few secrets collected to mean anything: {}", self.secrets.len());
        for text in &self.loggable {
            for secret in &self.secrets {
                assert!(!text.contains(secret.as_str()), "{what}: a secret leaked into: {text}");
            }
        }
    }
}

/// Drive `client` against the sandbox until it waits, serving REST and the WebSocket.
fn drain<C: SansIo + std::fmt::Debug>(client: &mut C, sandbox: &Sandbox, scan: &mut Scan, ws: &mut Option<(u64, u64)>, now: u64) {
    for _ in 0..10_000 {
        if let Some((conn, sid)) = *ws {
            let frames = sandbox.ws_drain(sid);
            if !frames.is_empty() {
                for f in frames {
                    if let moltlink_sandbox::moltchats::gateway::WsOut::Text(t) = f {
                        client.handle_ws_frame(conn, &t, now);
                    }
                }
                continue;
            }
        }
        let output = client.poll_output();
        scan.output(&output);
        match output {
            Output::Http { id, request, .. } => {
                let response = sandbox.handle(request, now);
                let r = client.handle_response(id, response, now);
                scan.err(r);
            }
            Output::Persist { ticket, .. } => {
                let r = client.handle_persisted(ticket, now);
                scan.err(r);
            }
            Output::WsOpen { conn, url } => {
                let token = url.expose().split("token=").nth(1).map(str::to_owned);
                *ws = Some((conn, sandbox.ws_open(token.as_deref(), now)));
                client.handle_ws_open(conn, now);
            }
            Output::WsSend { conn, text } => {
                if let Some((c, sid)) = *ws
                    && c == conn
                {
                    sandbox.ws_receive(sid, &text, now);
                }
            }
            Output::Wait { .. } => {
                scan.loggable.push(format!("{client:?}"));
                return;
            }
            _ => {}
        }
    }
    panic!("livelock");
}

fn chats(credentials: Option<Vec<u8>>, seed: u8) -> ChatsClient {
    ChatsClient::new(ChatsConfig { api_base: Some(API.into()), credentials, seed: [seed; 32], refresh: Default::default() }).unwrap()
}

#[test]
fn a_full_session_logs_no_key_token_or_api_key() {
    let sandbox = Sandbox::new(SandboxConfig { access_token_lifetime_s: 600, ..Default::default() });
    let mut scan = Scan::default();
    let mut ws = None;
    let mut now = T0;
    let mut client = chats(None, 1);
    scan.loggable.push(format!("{:?}", ChatsConfig { api_base: Some(API.into()), credentials: None, seed: [1; 32], refresh: Default::default() }));
    client.register("secret_keeper", now).unwrap();
    drain(&mut client, &sandbox, &mut scan, &mut ws, now);
    let join = client.command_json(&format!(r#"{{"op":"server_join","server_id":"{SEED_SERVER_ID}"}}"#), now);
    scan.err(join);
    let _ = client.whoami(now);
    client.connect(now).unwrap();
    client.subscribe(&[SEED_CHANNEL_ID.to_owned()], now).unwrap();
    drain(&mut client, &sandbox, &mut scan, &mut ws, now);
    // Rotations (forced and scheduled), calls, sends, and errors on the way.
    for i in 0..6 {
        now += 5 * 60_000;
        client.handle_timeout(now);
        if i % 2 == 0 {
            client.refresh(now).unwrap();
        }
        let send = client.send_message(SEED_CHANNEL_ID, &format!("hello {i}"), None, now);
        scan.err(send);
        let bad = client.command_json(r#"{"op":"history","channel_id":""}"#, now);
        scan.err(bad);
        let unknown = client.handle_response(999_999, http::Response::new(b"{}".to_vec()), now);
        scan.err(unknown);
        let _ = client.whoami(now);
        drain(&mut client, &sandbox, &mut scan, &mut ws, now);
    }
    // A token revoked under us, then a restart from the saved file (challenge re-auth).
    sandbox.revoke_all_refresh_tokens_of(client.agent_id().unwrap());
    client.refresh(now).unwrap();
    drain(&mut client, &sandbox, &mut scan, &mut ws, now);
    assert!(client.is_authenticated(now), "still logged in");
    let saved = scan.last_saved.clone().expect("credentials were persisted");
    let mut restarted = chats(Some(saved), 2);
    restarted.login(now).unwrap();
    drain(&mut restarted, &sandbox, &mut scan, &mut ws, now);
    let bad_creds = ChatsClient::new(ChatsConfig { api_base: None, credentials: Some(b"{\"privateKey\": 1".to_vec()), seed: [0; 32], refresh: Default::default() });
    scan.err(bad_creds);

    // Moltbook DMs with an API key.
    let key = sandbox.moltbook_add_agent("KeeperBot", "keeper_x").unwrap();
    scan.secret(&key);
    let mut dm = DmClient::new(DmConfig { api_base: Some(MOLTBOOK.into()), api_key: moltlink::io::Secret::new(key.clone()), seed: [3; 32], heartbeat: Default::default() }).unwrap();
    scan.loggable.push(format!("{:?}", DmConfig { api_base: None, api_key: moltlink::io::Secret::new(key.clone()), seed: [3; 32], heartbeat: Default::default() }));
    for cmd in [r#"{"command":"check"}"#, r#"{"command":"requests"}"#, r#"{"command":"conversations"}"#, r#"{"command":"read","conversation_id":"nope"}"#, r#"{"command":"bogus"}"#] {
        let r = dm.command_json(cmd, now);
        scan.err(r);
    }
    dm.start_heartbeat(now);
    let mut no_ws = None;
    // The sandbox serves Moltbook under its own prefix whatever the host.
    drain(&mut dm, &sandbox, &mut scan, &mut no_ws, now);
    now += 5 * 3_600_000;
    dm.handle_timeout(now);
    drain(&mut dm, &sandbox, &mut scan, &mut no_ws, now);

    assert!(scan.loggable.iter().any(|l| l.contains("dm_")), "DM events were produced");
    assert!(scan.loggable.iter().any(|l| l.contains("message_sent")), "realtime sends were confirmed");
    scan.assert_clean("in-process session");
    println!("scanned {} loggable strings for {} secrets", scan.loggable.len(), scan.secrets.len());
}
