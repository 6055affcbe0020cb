//! The sandbox emulator as a [`Peer`] for the core's own tests: its REST handler and its
//! sans-IO MoltChats gateway, with switches a test flips to misbehave the network.

use super::{Peer, WsIn};
use crate::io::ConnId;
use moltlink_sandbox::Sandbox;
use moltlink_sandbox::moltchats::gateway::{SessionId, WsOut};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Shared (`Rc`) so several clients talk to one server.
pub struct SandboxPeer {
    /// The emulated server.
    pub sandbox: Rc<Sandbox>,
    /// Every request, in order: "METHOD uri".
    pub sent: Vec<String>,
    /// Host-side sockets: conn → sandbox session.
    pub conns: BTreeMap<ConnId, SessionId>,
    /// Every WsOpen's URL token, in order.
    pub opened_with: Vec<String>,
    /// Network switches: the next N requests fail in transport; refuse every open; swallow
    /// sends (they never reach the server).
    pub fail_transport: u32,
    /// A REST-only test: any socket output fails it.
    pub rest_only: bool,
    /// Every socket open fails.
    pub refuse_opens: bool,
    /// Socket sends are swallowed (they never reach the server).
    pub blackhole_sends: bool,
}

impl SandboxPeer {
    /// A peer with no switches set.
    pub fn new(sandbox: Rc<Sandbox>) -> Self {
        Self { sandbox, sent: vec![], conns: BTreeMap::new(), opened_with: vec![], fail_transport: 0, rest_only: false, refuse_opens: false, blackhole_sends: false }
    }

    /// The paths sent, with `prefix` stripped (e.g. the API base's path).
    pub fn paths(&self, prefix: &str) -> Vec<String> {
        self.sent
            .iter()
            .map(|line| {
                let uri: http::Uri = line.split_once(' ').map_or(line.as_str(), |(_, uri)| uri).parse().expect("a sent URI");
                uri.path().trim_start_matches(prefix).to_owned()
            })
            .collect()
    }

    /// Drop every socket from the network side (no close frame reaches the server); the
    /// connections to report closed to the client.
    pub fn drop_sockets(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.conns)
            .into_iter()
            .map(|(conn, sid)| {
                self.sandbox.ws_closed(sid);
                conn
            })
            .collect()
    }
}

impl Peer for SandboxPeer {
    fn http(&mut self, request: http::Request<Vec<u8>>, now_ms: u64) -> Result<http::Response<Vec<u8>>, String> {
        self.sent.push(format!("{} {}", request.method(), request.uri()));
        if self.fail_transport > 0 {
            self.fail_transport -= 1;
            return Err("connection refused".into());
        }
        Ok(self.sandbox.handle(request, now_ms))
    }

    fn ws_open(&mut self, conn: ConnId, url: &str, now_ms: u64) -> Result<bool, (u16, String)> {
        assert!(!self.rest_only, "unexpected WsOpen #{conn} in a REST-only test");
        let token = url.split("token=").nth(1).map(str::to_owned);
        assert!(token.as_deref().is_some_and(|t| !t.is_empty()), "never connect without a token");
        self.opened_with.push(token.clone().unwrap());
        if self.refuse_opens {
            return Err((1006, "connection refused".into()));
        }
        let sid = self.sandbox.ws_open(token.as_deref(), now_ms);
        self.conns.insert(conn, sid);
        Ok(true)
    }

    fn ws_send(&mut self, conn: ConnId, text: &str, now_ms: u64) {
        if let Some(sid) = self.conns.get(&conn)
            && !self.blackhole_sends
        {
            self.sandbox.ws_receive(*sid, text, now_ms);
        }
    }

    fn ws_close(&mut self, conn: ConnId, _code: u16, _reason: &str, _now_ms: u64) {
        if let Some(sid) = self.conns.remove(&conn) {
            self.sandbox.ws_closed(sid);
        }
    }

    /// The gateway reacts at once (revoked tokens, idle timeouts), like the real server.
    fn ws_poll(&mut self, now_ms: u64) -> Vec<WsIn> {
        self.sandbox.ws_tick(now_ms);
        let mut incoming = vec![];
        for (conn, sid) in self.conns.clone() {
            for out in self.sandbox.ws_drain(sid) {
                match out {
                    WsOut::Text(text) => incoming.push(WsIn::Frame(conn, text)),
                    WsOut::Close(code, reason) => {
                        self.sandbox.ws_closed(sid);
                        self.conns.remove(&conn);
                        incoming.push(WsIn::Closed(conn, code, reason));
                        break;
                    }
                }
            }
        }
        incoming
    }
}
