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
use moltlink::testkit::{Driver, Next, Peer, WsIn};
use moltlink::{ChatsClient, ChatsConfig, DmClient, DmConfig};
use moltlink_sandbox::moltchats::social::{SEED_CHANNEL_ID, SEED_SERVER_ID};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use std::collections::BTreeSet;

const T0: u64 = 1_790_000_000_000;
const API: &str = "http://127.0.0.1/moltchats/api/v1";
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

/// The sandbox as the clients' network: REST, and the one MoltChats socket.
struct Net<'a> {
    sandbox: &'a Sandbox,
    ws: Option<(u64, u64)>,
}

impl Peer for Net<'_> {
    fn http(&mut self, request: http::Request<Vec<u8>>, now: u64) -> Result<http::Response<Vec<u8>>, String> {
        Ok(self.sandbox.handle(request, now))
    }
    fn ws_open(&mut self, conn: u64, url: &str, now: u64) -> Result<bool, (u16, String)> {
        let token = url.split("token=").nth(1).map(str::to_owned);
        self.ws = Some((conn, self.sandbox.ws_open(token.as_deref(), now)));
        Ok(true)
    }
    fn ws_send(&mut self, conn: u64, text: &str, now: u64) {
        if let Some((c, sid)) = self.ws
            && c == conn
        {
            self.sandbox.ws_receive(sid, text, now);
        }
    }
    fn ws_close(&mut self, _: u64, _: u16, _: &str, _: u64) {}
    fn ws_poll(&mut self, _: u64) -> Vec<WsIn> {
        let Some((conn, sid)) = self.ws else { return vec![] };
        let frames = self.sandbox.ws_drain(sid).into_iter();
        frames.filter_map(|f| if let moltlink_sandbox::moltchats::gateway::WsOut::Text(t) = f { Some(WsIn::Frame(conn, t)) } else { None }).collect()
    }
}

/// A client on the sandbox; refused inputs are collected (their messages are scanned too).
fn host<C: SansIo>(client: C, sandbox: &Sandbox, now: u64) -> Driver<C, Net<'_>> {
    let mut d = Driver::new(client, Net { sandbox, ws: None }, now);
    d.strict = false;
    d
}

/// Drive until the client waits, learning every output's secrets before it is performed.
fn drain<C: SansIo + std::fmt::Debug>(d: &mut Driver<C, Net>, scan: &mut Scan, now: u64) {
    d.now_ms = now;
    for _ in 0..10_000 {
        if d.deliver_ws() {
            continue;
        }
        let output = d.client.poll_output();
        scan.output(&output);
        let next = d.perform(output);
        for e in d.refused.drain(..) {
            scan.err(Err::<(), _>(e));
        }
        if let Next::Wait(_) = next {
            scan.loggable.push(format!("{:?}", d.client));
            return;
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
    let mut now = T0;
    let mut client = host(chats(None, 1), &sandbox, now);
    scan.loggable.push(format!("{:?}", ChatsConfig { api_base: Some(API.into()), credentials: None, seed: [1; 32], refresh: Default::default() }));
    client.client.register("secret_keeper", now).unwrap();
    drain(&mut client, &mut scan, now);
    let join = client.client.command_json(&format!(r#"{{"op":"server_join","server_id":"{SEED_SERVER_ID}"}}"#), now);
    scan.err(join);
    let _ = client.client.whoami(now);
    client.client.connect(now).unwrap();
    client.client.subscribe(&[SEED_CHANNEL_ID.to_owned()], now).unwrap();
    drain(&mut client, &mut scan, now);
    // Rotations (forced and scheduled), calls, sends, and errors on the way.
    for i in 0..6 {
        now += 5 * 60_000;
        client.client.handle_timeout(now);
        if i % 2 == 0 {
            client.client.refresh(now).unwrap();
        }
        let send = client.client.send_message(SEED_CHANNEL_ID, &format!("hello {i}"), None, now);
        scan.err(send);
        let bad = client.client.command_json(r#"{"op":"history","channel_id":""}"#, now);
        scan.err(bad);
        let unknown = client.client.handle_response(999_999, http::Response::new(b"{}".to_vec()), now);
        scan.err(unknown);
        let _ = client.client.whoami(now);
        drain(&mut client, &mut scan, now);
    }
    // A token revoked under us, then a restart from the saved file (challenge re-auth).
    sandbox.revoke_all_refresh_tokens_of(client.client.agent_id().unwrap());
    client.client.refresh(now).unwrap();
    drain(&mut client, &mut scan, now);
    assert!(client.client.is_authenticated(now), "still logged in");
    let saved = scan.last_saved.clone().expect("credentials were persisted");
    let mut restarted = host(chats(Some(saved), 2), &sandbox, now);
    restarted.peer.ws = client.peer.ws;
    restarted.client.login(now).unwrap();
    drain(&mut restarted, &mut scan, now);
    let bad_creds = ChatsClient::new(ChatsConfig { api_base: None, credentials: Some(b"{\"privateKey\": 1".to_vec()), seed: [0; 32], refresh: Default::default() });
    scan.err(bad_creds);

    // Moltbook DMs with an API key.
    let key = sandbox.moltbook_add_agent("KeeperBot", "keeper_x").unwrap();
    scan.secret(&key);
    let mut dm = host(DmClient::new(DmConfig { api_base: Some(MOLTBOOK.into()), api_key: moltlink::io::Secret::new(key.clone()), seed: [3; 32], heartbeat: Default::default(), agent_name: None }).unwrap(), &sandbox, now);
    scan.loggable.push(format!("{:?}", DmConfig { api_base: None, api_key: moltlink::io::Secret::new(key.clone()), seed: [3; 32], heartbeat: Default::default(), agent_name: None }));
    for cmd in [r#"{"command":"check"}"#, r#"{"command":"requests"}"#, r#"{"command":"conversations"}"#, r#"{"command":"read","conversation_id":"nope"}"#, r#"{"command":"bogus"}"#] {
        let r = dm.client.command_json(cmd, now);
        scan.err(r);
    }
    dm.client.start_heartbeat(now);
    // The sandbox serves Moltbook under its own prefix whatever the host.
    drain(&mut dm, &mut scan, now);
    now += 5 * 3_600_000;
    dm.client.handle_timeout(now);
    drain(&mut dm, &mut scan, now);

    assert!(scan.loggable.iter().any(|l| l.contains("dm_")), "DM events were produced");
    assert!(scan.loggable.iter().any(|l| l.contains("message_sent")), "realtime sends were confirmed");
    scan.assert_clean("in-process session");
    println!("scanned {} loggable strings for {} secrets", scan.loggable.len(), scan.secrets.len());
}
