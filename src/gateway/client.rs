//! The OpenClaw gateway client: one operator WebSocket, kept alive, carrying agent turns.
//!
//! ```text
//! Off ─start→ Opening ─open→ AwaitChallenge ─connect.challenge→ AwaitHello ─hello-ok→ Ready
//!   ↑                         (handshake timeout, close, tick silence) → Backoff ─timer→ Opening
//!   rejected connect: retryable → Backoff (≥ retryAfterMs) · otherwise → Fatal (needs the human)
//! ```
//! - Turns go one at a time (one agent session is one conversation) in the order they were given.
//! - Each turn has an idempotency key from the seeded RNG, reused on every resend: a resend
//!   after a reconnect joins the run still in flight (`in_flight`) instead of starting a second.
//! - A turn whose connection dies is resent after the reconnect (up to `max_attempts`); one
//!   the gateway reports finished while we were away (`ok`) or whose `final` never comes is
//!   failed with a clear reason (and the partial text): never dropped silently.
//! - `tick` events are keep-alives: 2 × `policy.tickIntervalMs` without any frame ⇒ dead.

use super::wire::{self, ChatPayload, ClientInfo, Frame, WireError};
use crate::io::{ConnId, Outbox, Output, RequestId, SansIo, Secret, Ticket};
use rand_core::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;

/// Identifies one agent turn given to [`GatewayClient::send_turn`].
pub type TurnId = u64;

/// Timing and limits (milliseconds, bytes).
#[derive(Debug, Clone, Copy)]
pub struct GatewayTiming {
    /// From socket open to hello-ok.
    pub handshake_ms: u64,
    /// Used until hello-ok gives `policy.tickIntervalMs`.
    pub default_tick_ms: u64,
    /// A turn with no sign of life (response, chat event) for this long lost its `final`.
    pub turn_idle_ms: u64,
    /// How often one turn is sent (first send + resends after reconnects).
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// A connection ready this long resets the backoff.
    pub stable_after_ms: u64,
    /// Larger frames are reported and ignored.
    pub max_frame_bytes: usize,
}

impl Default for GatewayTiming {
    fn default() -> Self {
        Self {
            handshake_ms: 15_000,
            default_tick_ms: 30_000,
            turn_idle_ms: 180_000,
            max_attempts: 3,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 30_000,
            stable_after_ms: 30_000,
            max_frame_bytes: 32 << 20,
        }
    }
}

/// How to reach the gateway.
#[derive(Clone)]
pub struct GatewayConfig {
    /// `ws://127.0.0.1:18789` by default.
    pub url: String,
    /// `OPENCLAW_AUTH_TOKEN`.
    pub token: Secret<String>,
    /// `main` by default.
    pub session_key: String,
    pub client: ClientInfo,
    /// From the host's secure random source: idempotency keys and jitter.
    pub seed: [u8; 32],
    pub timing: GatewayTiming,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig").field("url", &self.url).field("session_key", &self.session_key).finish_non_exhaustive()
    }
}

/// What the gateway client reports, as JSON `{"type": …}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayEvent {
    GatewayConnected { conn: ConnId, protocol: u64, tick_interval_ms: u64, server_version: Option<String> },
    /// The connection ended; a reconnect is scheduled at `retry_at_ms`.
    GatewayDisconnected { code: u16, reason: String, retry_at_ms: u64 },
    /// The gateway refused us for a reason a retry cannot fix (bad token, protocol mismatch,
    /// invalid parameters). Nothing more happens until `start` is called again.
    GatewayFatal { code: String, message: String },
    /// A frame we could not use (not JSON, over the size limit…): reported, then ignored.
    GatewayProtocolError { message: String },
    /// The gateway accepted turn `turn` as run `run_id` (`status`: started / in_flight).
    TurnStarted { turn: TurnId, run_id: String, status: String },
    /// The agent's final reply to `turn`.
    TurnReply { turn: TurnId, run_id: String, text: String },
    /// The turn is sent again (same idempotency key) after its connection died.
    TurnRetrying { turn: TurnId, attempt: u32 },
    /// The turn ended without a reply; `partial` is what streamed before, if anything.
    TurnFailed { turn: TurnId, reason: String, partial: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
enum Link {
    Off,
    Backoff { until_ms: u64 },
    Opening { conn: ConnId, since_ms: u64 },
    AwaitChallenge { conn: ConnId, since_ms: u64 },
    AwaitHello { conn: ConnId, since_ms: u64, req: String },
    Ready { conn: ConnId, since_ms: u64, last_in_ms: u64, tick_ms: u64 },
    Fatal,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Queued,
    /// `chat.send` is out as request `req`.
    Sent { req: String },
    Running { run_id: String },
}

#[derive(Debug, Clone)]
struct Turn {
    id: TurnId,
    message: String,
    key: String,
    attempts: u32,
    phase: Phase,
    text: String,
    last_ms: u64,
}

impl Turn {
    fn partial(&self) -> Option<String> {
        (!self.text.is_empty()).then(|| self.text.clone())
    }
    fn owns_run(&self, run_id: &str) -> bool {
        run_id == self.key || matches!(&self.phase, Phase::Running { run_id: r } if r == run_id)
    }
}

pub struct GatewayClient {
    config: GatewayConfig,
    out: Outbox<GatewayEvent>,
    link: Link,
    next_req: u64,
    next_turn: TurnId,
    attempt: u32,
    rng: rand_chacha::ChaCha20Rng,
    current: Option<Turn>,
    queue: VecDeque<Turn>,
    now_ms: u64,
}

impl std::fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayClient").field("link", &self.link).field("queued", &self.queue.len()).finish_non_exhaustive()
    }
}

impl GatewayClient {
    pub fn new(config: GatewayConfig) -> crate::error::Result<Self> {
        let uri: http::Uri = config.url.trim().parse().map_err(|_| crate::Error::invalid_argument(format!("invalid gateway URL: {}", config.url)))?;
        if !matches!(uri.scheme_str(), Some("ws") | Some("wss")) || uri.host().is_none() {
            return Err(crate::Error::invalid_argument(format!("the gateway URL must be a ws(s) URL: {}", config.url)));
        }
        if config.session_key.trim().is_empty() {
            return Err(crate::Error::invalid_argument("the session key is empty"));
        }
        if config.token.expose().is_empty() {
            return Err(crate::Error::invalid_argument("the gateway token is empty (set OPENCLAW_AUTH_TOKEN)"));
        }
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(config.seed);
        rng.set_stream(11); // independent of the MoltChats streams
        Ok(Self {
            config,
            out: Outbox::default(),
            link: Link::Off,
            next_req: 0,
            next_turn: 0,
            attempt: 0,
            rng,
            current: None,
            queue: VecDeque::new(),
            now_ms: 0,
        })
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.link, Link::Ready { .. })
    }
    pub fn is_fatal(&self) -> bool {
        self.link == Link::Fatal
    }
    /// Turns not finished yet (queued or in flight).
    pub fn pending_turns(&self) -> usize {
        self.queue.len() + usize::from(self.current.is_some())
    }
    pub fn session_key(&self) -> &str {
        &self.config.session_key
    }

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
    pub fn send_turn(&mut self, message: String, now_ms: u64) -> TurnId {
        self.next_turn += 1;
        let key = format!("moltlink-{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        let turn = Turn { id: self.next_turn, message, key, attempts: 0, phase: Phase::Queued, text: String::new(), last_ms: now_ms };
        self.queue.push_back(turn);
        if self.link == Link::Fatal {
            self.fail_all("the gateway refused this client (see gateway_fatal)");
        }
        self.step(now_ms);
        self.next_turn
    }






    /// The earliest timer: reconnect, handshake, tick watchdog, or a turn's idle limit.
    pub fn deadline(&self) -> Option<u64> {
        let timing = self.config.timing;
        let link = match &self.link {
            Link::Backoff { until_ms } => Some(*until_ms),
            Link::Opening { since_ms, .. } | Link::AwaitChallenge { since_ms, .. } | Link::AwaitHello { since_ms, .. } => Some(since_ms + timing.handshake_ms),
            Link::Ready { last_in_ms, tick_ms, .. } => Some(last_in_ms + 2 * tick_ms),
            Link::Off | Link::Fatal => None,
        };
        let turn = self.current.as_ref().filter(|t| t.phase != Phase::Queued).map(|t| t.last_ms + timing.turn_idle_ms);
        [link, turn].into_iter().flatten().min()
    }

    // ---- internals ------------------------------------------------------------------

    fn event(&mut self, event: GatewayEvent) {
        self.out.event(event);
    }

    fn conn(&self) -> Option<ConnId> {
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

    fn req_id(&mut self) -> String {
        self.next_req += 1;
        format!("ml{}", self.next_req)
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
                let retry_at = self.backoff(now_ms).max(now_ms + error.retry_after_ms.unwrap_or(0));
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

    fn on_response(&mut self, frame: Frame<'_>, now_ms: u64) {
        let Some(turn) = self.current.as_mut() else { return };
        if !matches!(&turn.phase, Phase::Sent { req } if Some(req.as_str()) == frame.id.as_deref()) {
            return;
        }
        turn.last_ms = now_ms;
        if frame.ok == Some(true) {
            let payload = frame.payload_value().unwrap_or(Value::Null);
            let run_id = payload.get("runId").and_then(Value::as_str).unwrap_or(&turn.key).to_owned();
            let status = payload.get("status").and_then(Value::as_str).unwrap_or("started").to_owned();
            let (id, resent) = (turn.id, turn.attempts > 1);
            if status == "ok" && resent {
                // The run finished while we were disconnected: its reply went to the old socket.
                let turn = self.current.take().expect("current turn");
                let reason = "the gateway finished this turn while the connection was down; its reply was not received".to_owned();
                return self.event(GatewayEvent::TurnFailed { turn: id, reason, partial: turn.partial() });
            }
            turn.phase = Phase::Running { run_id: run_id.clone() };
            self.event(GatewayEvent::TurnStarted { turn: id, run_id, status });
        } else {
            let error = frame.error.unwrap_or_default();
            self.turn_refused(error, now_ms);
        }
    }

    fn turn_refused(&mut self, error: WireError, now_ms: u64) {
        let mut turn = self.current.take().expect("current turn");
        if error.retryable == Some(true) && turn.attempts < self.config.timing.max_attempts {
            turn.phase = Phase::Queued;
            turn.last_ms = now_ms + error.retry_after_ms.unwrap_or(0);
            self.event(GatewayEvent::TurnRetrying { turn: turn.id, attempt: turn.attempts + 1 });
            self.queue.push_front(turn);
        } else {
            let reason = format!("chat.send refused ({}): {}", error.specific_code(), error.text());
            self.event(GatewayEvent::TurnFailed { turn: turn.id, reason, partial: turn.partial() });
        }
    }

    fn on_chat(&mut self, payload: ChatPayload<'_>, now_ms: u64) {
        let Some(turn) = self.current.as_mut() else { return };
        if let Some(key) = payload.session_key.as_deref()
            && !wire::same_session(&self.config.session_key, key)
        {
            return;
        }
        match payload.run_id.as_deref() {
            Some(run_id) if !turn.owns_run(run_id) => return,
            // Without a run id, only a turn the gateway already accepted can claim the event.
            None if !matches!(turn.phase, Phase::Running { .. }) => return,
            _ => {}
        }
        turn.last_ms = now_ms;
        let run_id = payload.run_id.as_deref().unwrap_or(&turn.key).to_owned();
        let state = payload.state.as_deref().unwrap_or_default();
        let cumulative = payload.message.as_ref().and_then(wire::message_text);
        match state {
            "delta" => match (cumulative, payload.delta_text) {
                (Some(full), _) => turn.text = full,
                (None, Some(delta)) => turn.text.push_str(&delta),
                (None, None) => {}
            },
            "final" => {
                let turn = self.current.take().expect("current turn");
                let text = cumulative.filter(|t| !t.is_empty()).unwrap_or(turn.text);
                self.event(GatewayEvent::TurnReply { turn: turn.id, run_id, text });
            }
            "aborted" | "error" => {
                let turn = self.current.take().expect("current turn");
                let detail = payload.error_message.as_deref().unwrap_or("no detail");
                let reason = format!("the run ended with {state}: {detail}");
                self.event(GatewayEvent::TurnFailed { turn: turn.id, reason, partial: turn.partial() });
            }
            _ => {} // status phases: signs of life only
        }
    }

    /// Send the next turn when the link is ready and nothing is in flight.
    fn step(&mut self, now_ms: u64) {
        let Link::Ready { conn, .. } = self.link else { return };
        if self.current.is_some() {
            return;
        }
        let Some(front) = self.queue.front() else { return };
        if front.last_ms > now_ms && front.attempts > 0 {
            return; // a refused send waits for its retryAfterMs
        }
        let mut turn = self.queue.pop_front().expect("front exists");
        turn.attempts += 1;
        turn.last_ms = now_ms;
        let req = self.req_id();
        let text = wire::chat_send_request(&req, &self.config.session_key, &turn.message, &turn.key);
        self.out.ws_send(conn, text);
        turn.phase = Phase::Sent { req };
        self.current = Some(turn);
    }

    /// The connection is gone: put the turn in flight back for a resend, back off, reconnect.
    fn lost(&mut self, code: u16, reason: &str, now_ms: u64) {
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

    fn requeue_current(&mut self, report: bool) {
        let Some(mut turn) = self.current.take() else { return };
        if turn.attempts >= self.config.timing.max_attempts {
            let reason = format!("the connection to the gateway was lost {} times during this turn", turn.attempts);
            return self.event(GatewayEvent::TurnFailed { turn: turn.id, reason, partial: turn.partial() });
        }
        turn.phase = Phase::Queued;
        turn.last_ms = 0;
        if report {
            self.event(GatewayEvent::TurnRetrying { turn: turn.id, attempt: turn.attempts + 1 });
        }
        self.queue.push_front(turn);
    }

    fn fatal(&mut self, code: String, message: String) {
        self.link = Link::Fatal;
        self.event(GatewayEvent::GatewayFatal { code, message });
        self.fail_all("the gateway refused this client (see gateway_fatal)");
    }

    fn fail_all(&mut self, reason: &str) {
        let turns: Vec<Turn> = self.current.take().into_iter().chain(self.queue.drain(..)).collect();
        for turn in turns {
            self.event(GatewayEvent::TurnFailed { turn: turn.id, reason: reason.to_owned(), partial: turn.partial() });
        }
    }

    fn backoff(&mut self, now_ms: u64) -> u64 {
        self.attempt = self.attempt.saturating_add(1);
        let timing = self.config.timing;
        let backoff = crate::io::Backoff { base_ms: timing.backoff_base_ms, cap_ms: timing.backoff_cap_ms };
        now_ms + backoff.delay_ms(self.attempt, &mut self.rng)
    }
}

/// The gateway client speaks only WebSocket: HTTP and persist inputs are the host's mistake.
impl SansIo for GatewayClient {
    type Event = GatewayEvent;

    fn handle_response(&mut self, id: RequestId, _response: http::Response<Vec<u8>>, _now_ms: u64) -> crate::error::Result<()> {
        Err(crate::io::unknown("request", id, "OpenClaw gateway"))
    }
    fn handle_transport_error(&mut self, id: RequestId, _message: &str, _now_ms: u64) -> crate::error::Result<()> {
        Err(crate::io::unknown("request", id, "OpenClaw gateway"))
    }
    fn handle_body_chunk(&mut self, id: RequestId, _chunk: &[u8], _now_ms: u64) -> crate::error::Result<()> {
        Err(crate::io::unknown("request", id, "OpenClaw gateway"))
    }
    fn handle_persisted(&mut self, ticket: Ticket, _now_ms: u64) -> crate::error::Result<()> {
        Err(crate::io::unknown("persist request", ticket, "OpenClaw gateway"))
    }

    fn poll_output(&mut self) -> Output<GatewayEvent> {
        self.out.pop().unwrap_or(Output::Wait { until_ms: self.deadline() })
    }

    fn handle_timeout(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let timing = self.config.timing;
        match self.link.clone() {
            Link::Backoff { until_ms } if now_ms >= until_ms => self.open(now_ms),
            Link::Opening { conn, since_ms } | Link::AwaitChallenge { conn, since_ms } | Link::AwaitHello { conn, since_ms, .. }
                if now_ms >= since_ms + timing.handshake_ms =>
            {
                self.out.ws_close(conn, 4000, "handshake timeout");
                self.lost(4000, "no hello-ok within the handshake timeout", now_ms);
            }
            Link::Ready { conn, last_in_ms, tick_ms, .. } if now_ms >= last_in_ms + 2 * tick_ms => {
                self.out.ws_close(conn, 4000, "tick timeout");
                self.lost(4000, "no tick for two tick intervals", now_ms);
            }
            _ => {}
        }
        if let Some(turn) = &self.current
            && matches!(turn.phase, Phase::Sent { .. } | Phase::Running { .. })
            && now_ms >= turn.last_ms + timing.turn_idle_ms
        {
            let turn = self.current.take().expect("checked above");
            let reason = format!("no final reply within {} s (lost final)", timing.turn_idle_ms / 1000);
            self.event(GatewayEvent::TurnFailed { turn: turn.id, reason, partial: turn.partial() });
        }
        self.step(now_ms);
    }

    fn handle_ws_open(&mut self, conn: ConnId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if let Link::Opening { conn: c, since_ms } = self.link
            && c == conn
        {
            // The handshake deadline runs from the open request, through the challenge.
            self.link = Link::AwaitChallenge { conn, since_ms };
        }
    }

    fn handle_ws_frame(&mut self, conn: ConnId, text: &str, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.conn() != Some(conn) {
            return;
        }
        if let Link::Ready { last_in_ms, .. } = &mut self.link {
            *last_in_ms = now_ms;
        }
        let frame = match wire::parse(text, self.config.timing.max_frame_bytes) {
            Ok(frame) => frame,
            Err(message) => return self.event(GatewayEvent::GatewayProtocolError { message }),
        };
        match (frame.kind.as_ref(), &self.link) {
            ("event", Link::AwaitChallenge { .. }) if frame.event.as_deref() == Some("connect.challenge") => {
                let req = self.req_id();
                let text = wire::connect_request(&req, &self.config.client, &self.config.token);
                self.out.ws_send(conn, text);
                self.link = Link::AwaitHello { conn, since_ms: self.since(), req };
            }
            ("res", Link::AwaitHello { req, .. }) if frame.id.as_deref() == Some(req.as_str()) => self.on_hello(conn, frame, now_ms),
            ("res", Link::Ready { .. }) => self.on_response(frame, now_ms),
            ("event", Link::Ready { .. }) if frame.event.as_deref() == Some("chat") => match frame.chat_payload() {
                Ok(payload) => self.on_chat(payload, now_ms),
                Err(message) => self.event(GatewayEvent::GatewayProtocolError { message }),
            },
            // Tool calls and thinking stream as `agent` events: signs of life for a long turn.
            ("event", Link::Ready { .. }) if frame.event.as_deref() == Some("agent") => {
                if let (Ok(payload), Some(turn)) = (frame.chat_payload(), self.current.as_mut())
                    && payload.run_id.as_deref().is_some_and(|r| turn.owns_run(r))
                {
                    turn.last_ms = now_ms;
                }
            }
            _ => {} // ticks (already counted as life) and events we do not use
        }
        self.step(now_ms);
    }

    fn handle_ws_closed(&mut self, conn: ConnId, code: u16, reason: &str, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.conn() != Some(conn) {
            return;
        }
        self.lost(code, reason, now_ms);
    }
}
