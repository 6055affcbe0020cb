//! The OpenClaw gateway client: one operator WebSocket, kept alive, carrying agent turns.
//!
//! The link: Off → Opening → AwaitChallenge → AwaitHello → Ready, with Backoff and Fatal
//! (diagram and every transition in `link`).
//! - Turns go one at a time (one agent session is one conversation) in the order they were given.
//! - Each turn has an idempotency key from the seeded RNG, reused on every resend: a resend
//!   after a reconnect joins the run still in flight (`in_flight`) instead of starting a second.
//! - A turn whose connection dies is resent after the reconnect (up to `max_attempts`); one
//!   the gateway reports finished while we were away (`ok`) or whose `final` never comes is
//!   failed with a clear reason (and the partial text): never dropped silently.
//! - `tick` events are keep-alives: 2 × `policy.tickIntervalMs` without any frame ⇒ dead.
//!
//! The link's states change only in `link`; turns are kept in `turns`.

mod link;
mod turns;

use super::wire::{self, ClientInfo};
use crate::io::{ConnId, Outbox, Output, RequestId, SansIo, Secret, Ticket};
use link::Link;
use rand_core::Rng;
use serde::Serialize;
use std::collections::VecDeque;
use turns::{Phase, Turn};

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
    /// First reconnect delay; doubles up to `backoff_cap_ms`.
    pub backoff_base_ms: u64,
    /// Longest reconnect delay.
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
    /// Who we say we are in the handshake.
    pub client: ClientInfo,
    /// From the host's secure random source: idempotency keys and jitter.
    pub seed: [u8; 32],
    /// Timeouts and retries.
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
    /// Connected and handshaken with the gateway.
    GatewayConnected {
        /// Connection id of the open socket.
        conn: ConnId,
        /// Protocol version the gateway answered (within the range we speak).
        protocol: u64,
        /// The gateway's tick interval (ms), or our default when it sent none.
        tick_interval_ms: u64,
        /// The gateway's `server.version`, verbatim, when it sent one.
        server_version: Option<String>,
    },
    /// The connection ended; a reconnect is scheduled at `retry_at_ms`.
    GatewayDisconnected {
        /// WebSocket close code (1000 when we closed after a retryable refusal).
        code: u16,
        /// Close reason from the host, or the gateway's refusal text.
        reason: String,
        /// When the reconnect is due (Unix ms).
        retry_at_ms: u64,
    },
    /// The gateway refused us for a reason a retry cannot fix (bad token, protocol mismatch,
    /// invalid parameters). Nothing more happens until `start` is called again.
    GatewayFatal {
        /// The gateway's error code, or ours (`PROTOCOL_MISMATCH`).
        code: String,
        /// The gateway's error text, or ours.
        message: String,
    },
    /// A frame we could not use (not JSON, over the size limit…): reported, then ignored.
    GatewayProtocolError {
        /// What was wrong with the frame (our text; the frame is not echoed).
        message: String,
    },
    /// The gateway accepted turn `turn` as run `run_id` (`status`: started / in_flight).
    TurnStarted {
        /// Id `send_turn` returned.
        turn: TurnId,
        /// The gateway's run id (our idempotency key when it sent none).
        run_id: String,
        /// The gateway's `status` word, verbatim (`started` when absent).
        status: String,
    },
    /// The agent's final reply to `turn`.
    TurnReply {
        /// Id `send_turn` returned.
        turn: TurnId,
        /// The gateway's run id (our idempotency key when it sent none).
        run_id: String,
        /// The reply text, as the agent wrote it.
        text: String,
    },
    /// The turn is sent again (same idempotency key) after its connection died.
    TurnRetrying {
        /// Id `send_turn` returned.
        turn: TurnId,
        /// Number of the coming send (2 for the first resend).
        attempt: u32,
    },
    /// The turn ended without a reply; `partial` is what streamed before, if anything.
    TurnFailed {
        /// Id `send_turn` returned.
        turn: TurnId,
        /// Why it failed (our text, may quote the gateway's error).
        reason: String,
        /// Reply text streamed before the failure; absent when none.
        partial: Option<String>,
    },
}

/// The OpenClaw gateway client (WebSocket protocol, handshake, agent turns).
pub struct GatewayClient {
    config: GatewayConfig,
    out: Outbox<GatewayEvent>,
    link: Link,
    next_req: u64,
    next_turn: TurnId,
    attempt: u32,
    rng: crate::io::SeededRng,
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
    /// A client for this configuration.
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
        let rng = crate::io::SeededRng::new(config.seed, 11); // independent of the MoltChats streams
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

    /// Whether the handshake is done and turns can be sent.
    pub fn is_ready(&self) -> bool {
        matches!(self.link, Link::Ready { .. })
    }
    /// Whether the gateway refused us for good.
    pub fn is_fatal(&self) -> bool {
        self.link == Link::Fatal
    }
    /// Turns not finished yet (queued or in flight).
    pub fn pending_turns(&self) -> usize {
        self.queue.len() + usize::from(self.current.is_some())
    }
    /// The session key agent turns go to.
    pub fn session_key(&self) -> &str {
        &self.config.session_key
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
            Link::Ready { last_in_ms, tick_ms, .. } => Some(last_in_ms.saturating_add(tick_ms.saturating_mul(2))),
            Link::Off | Link::Fatal => None,
        };
        let turn = self.current.as_ref().filter(|t| t.phase != Phase::Queued).map(|t| t.last_ms + timing.turn_idle_ms);
        [link, turn].into_iter().flatten().min()
    }

    // ---- internals ------------------------------------------------------------------

    fn event(&mut self, event: GatewayEvent) {
        self.out.event(event);
    }

    fn req_id(&mut self) -> String {
        self.next_req += 1;
        format!("ml{}", self.next_req)
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
        self.link_timeout(now_ms);
        self.turn_timeout(now_ms);
        self.step(now_ms);
    }

    fn handle_ws_open(&mut self, conn: ConnId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.link_opened(conn);
    }

    fn handle_ws_frame(&mut self, conn: ConnId, text: &str, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.conn() != Some(conn) {
            return;
        }
        self.link_alive(now_ms);
        let frame = match wire::parse(text, self.config.timing.max_frame_bytes) {
            Ok(frame) => frame,
            Err(message) => return self.event(GatewayEvent::GatewayProtocolError { message }),
        };
        if let Some(frame) = self.handshake(conn, frame, now_ms) {
            self.on_frame(frame, now_ms);
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
