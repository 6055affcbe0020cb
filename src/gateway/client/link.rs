//! The link to the gateway: every change of [`Link`] happens in this file.
//!
//! ```text
//! Off ─start→ Opening ─open→ AwaitChallenge ─connect.challenge→ AwaitHello ─hello-ok→ Ready
//!   ↑                         (handshake timeout, close, tick silence) → Backoff ─timer→ Opening
//!   rejected connect: retryable → Backoff (≥ retryAfterMs) · otherwise → Fatal (needs the human)
//!   stop → Off (from any state)
//! ```

use super::{GatewayClient, GatewayEvent};
use crate::gateway::wire::{self, Frame};
use crate::io::{ConnId, Secret};
use serde_json::Value;

/// Where the connection to the gateway stands.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Link {
    Off,
    Backoff { until_ms: u64 },
    Opening { conn: ConnId, since_ms: u64 },
    AwaitChallenge { conn: ConnId, since_ms: u64 },
    AwaitHello { conn: ConnId, since_ms: u64, req: String },
    Ready { conn: ConnId, since_ms: u64, last_in_ms: u64, tick_ms: u64 },
    Fatal,
}

impl GatewayClient {
    /// Connect (again, after a fatal error) and stay connected until `stop`.
    pub fn start(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if matches!(self.link, Link::Off | Link::Fatal) {
            self.attempt = 0;
            self.open(now_ms);
        }
    }

    /// Close the connection; queued turns stay queued for a later `start`.
    pub fn stop(&mut self) {
        if let Some(conn) = self.conn() {
            self.out.ws_close(conn, 1000, "client stopping");
        }
        self.requeue_current(false);
        self.link = Link::Off;
    }

    /// Queue a user turn for the session. Its outcome is `turn_reply` or `turn_failed`.
    pub(super) fn conn(&self) -> Option<ConnId> {
        match &self.link {
            Link::Opening { conn, .. } | Link::AwaitChallenge { conn, .. } | Link::AwaitHello { conn, .. } | Link::Ready { conn, .. } => Some(*conn),
            _ => None,
        }
    }

    fn since(&self) -> u64 {
        match &self.link {
            Link::Opening { since_ms, .. } | Link::AwaitChallenge { since_ms, .. } | Link::AwaitHello { since_ms, .. } => *since_ms,
            _ => self.now_ms,
        }
    }

    fn open(&mut self, now_ms: u64) {
        let conn = self.out.ws_open(Secret::new(self.config.url.clone()));
        self.link = Link::Opening { conn, since_ms: now_ms };
    }

    fn on_hello(&mut self, conn: ConnId, frame: Frame<'_>, now_ms: u64) {
        if frame.ok != Some(true) {
            let error = frame.error.unwrap_or_default();
            let code = error.specific_code();
            if error.retryable == Some(true) {
                // The server closes the socket after a refusal: we close first and back off.
                self.out.ws_close(conn, 1000, "connect refused");
                let retry_at = self.backoff(now_ms).max(now_ms.saturating_add(error.retry_after_ms.unwrap_or(0)));
                self.link = Link::Backoff { until_ms: retry_at };
                self.event(GatewayEvent::GatewayDisconnected { code: 1000, reason: format!("connect refused ({code}): {}", error.text()), retry_at_ms: retry_at });
            } else {
                self.out.ws_close(conn, 1000, "connect refused");
                self.fatal(code, error.text());
            }
            return;
        }
        let payload = frame.payload_value().unwrap_or(Value::Null);
        let protocol = payload.get("protocol").and_then(Value::as_u64).unwrap_or(0);
        if payload.get("type").and_then(Value::as_str) != Some("hello-ok") || !(wire::MIN_PROTOCOL..=wire::MAX_PROTOCOL).contains(&protocol) {
            self.out.ws_close(conn, 1002, "protocol mismatch");
            let message = format!("the gateway answered protocol {protocol}; this client speaks {}-{}", wire::MIN_PROTOCOL, wire::MAX_PROTOCOL);
            return self.fatal("PROTOCOL_MISMATCH".into(), message);
        }
        let tick_ms = payload.pointer("/policy/tickIntervalMs").and_then(Value::as_u64).filter(|t| *t > 0).unwrap_or(self.config.timing.default_tick_ms);
        let server_version = payload.pointer("/server/version").and_then(Value::as_str).map(str::to_owned);
        self.link = Link::Ready { conn, since_ms: now_ms, last_in_ms: now_ms, tick_ms };
        self.event(GatewayEvent::GatewayConnected { conn, protocol, tick_interval_ms: tick_ms, server_version });
    }

    pub(super) fn lost(&mut self, code: u16, reason: &str, now_ms: u64) {
        if let Link::Ready { since_ms, .. } = self.link
            && now_ms >= since_ms + self.config.timing.stable_after_ms
        {
            self.attempt = 0;
        }
        self.requeue_current(true);
        let retry_at = self.backoff(now_ms);
        self.link = Link::Backoff { until_ms: retry_at };
        self.event(GatewayEvent::GatewayDisconnected { code, reason: reason.to_owned(), retry_at_ms: retry_at });
    }

    fn fatal(&mut self, code: String, message: String) {
        self.link = Link::Fatal;
        self.event(GatewayEvent::GatewayFatal { code, message });
        self.fail_all("the gateway refused this client (see gateway_fatal)");
    }

    fn backoff(&mut self, now_ms: u64) -> u64 {
        self.attempt = self.attempt.saturating_add(1);
        let timing = self.config.timing;
        let backoff = crate::io::Backoff { base_ms: timing.backoff_base_ms, cap_ms: timing.backoff_cap_ms };
        now_ms + backoff.delay_ms(self.attempt, &mut self.rng)
    }

    /// Any frame on the current connection is a sign of life (ticks included).
    pub(super) fn link_alive(&mut self, now_ms: u64) {
        if let Link::Ready { last_in_ms, .. } = &mut self.link {
            *last_in_ms = now_ms;
        }
    }

    /// The handshake's frames (challenge, hello); once ready, a frame is the turns' (returned).
    pub(super) fn handshake<'a>(&mut self, conn: ConnId, frame: Frame<'a>, now_ms: u64) -> Option<Frame<'a>> {
        match (frame.kind.as_ref(), &self.link) {
            ("event", Link::AwaitChallenge { .. }) if frame.event.as_deref() == Some("connect.challenge") => {
                let req = self.req_id();
                let text = wire::connect_request(&req, &self.config.client, &self.config.token);
                self.out.ws_send(conn, text);
                self.link = Link::AwaitHello { conn, since_ms: self.since(), req };
            }
            ("res", Link::AwaitHello { req, .. }) if frame.id.as_deref() == Some(req.as_str()) => self.on_hello(conn, frame, now_ms),
            (_, Link::Ready { .. }) => return Some(frame),
            _ => {}
        }
        None
    }

    pub(super) fn link_opened(&mut self, conn: ConnId) {
        if let Link::Opening { conn: c, since_ms } = self.link
            && c == conn
        {
            // The handshake deadline runs from the open request, through the challenge.
            self.link = Link::AwaitChallenge { conn, since_ms };
        }
    }

    /// Reconnect after the backoff; give up on a stalled handshake or a silent connection.
    pub(super) fn link_timeout(&mut self, now_ms: u64) {
        let timing = self.config.timing;
        match self.link.clone() {
            Link::Backoff { until_ms } if now_ms >= until_ms => self.open(now_ms),
            Link::Opening { conn, since_ms } | Link::AwaitChallenge { conn, since_ms } | Link::AwaitHello { conn, since_ms, .. }
                if now_ms >= since_ms + timing.handshake_ms =>
            {
                self.out.ws_close(conn, 4000, "handshake timeout");
                self.lost(4000, "no hello-ok within the handshake timeout", now_ms);
            }
            Link::Ready { conn, last_in_ms, tick_ms, .. } if now_ms >= last_in_ms.saturating_add(tick_ms.saturating_mul(2)) => {
                self.out.ws_close(conn, 4000, "tick timeout");
                self.lost(4000, "no tick for two tick intervals", now_ms);
            }
            _ => {}
        }
    }
}
