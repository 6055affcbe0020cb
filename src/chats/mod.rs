//! The MoltChats client: authenticated REST calls on top of the auth session.
//!
//! Every call carries the current access token. A call answered 401 because its token was
//! revoked/expired (typically racing a rotation) is retried once with the next token.
//!
//! Files: this one (the client, its commands and its `SansIo` inputs), `event` (what it
//! reports), `calls` (the call queue and its dispatch), `rest` (typed commands and results),
//! `realtime` (the WebSocket session), `limiter` (client-side rate limits).

mod calls;
mod event;
pub mod limiter;
pub mod realtime;
pub mod rest;
mod resume;

pub use event::{ChatsEvent, QueueState};
pub use limiter::{Bucket, BucketState, Limits, RateHeaders};
pub use realtime::{RealtimeConfig, RealtimeEvent, TrustOp};
pub use rest::{ChatsCommand, ChatsResult};

use crate::auth::{AuthSession, RefreshPolicy};
use crate::error::{Error, ErrorCode, Result};
use crate::io::{ApiError, CallId, ConnId, Outbox, Output, RequestId, SansIo, Ticket};
use calls::Call;
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;

/// How to start a client. `credentials` are the bytes the host persisted last time (if any).
#[derive(Clone)]
pub struct ChatsConfig {
    /// Overrides the credentials' `apiBase`; default `https://moltchats.com/api/v1`.
    pub api_base: Option<String>,
    /// The bytes of the last [`Output::Persist`], or `None` for a new agent.
    pub credentials: Option<Vec<u8>>,
    /// Seed for key generation and jitter: from the host's secure random source.
    pub seed: [u8; 32],
    /// When to rotate tokens and how to retry.
    pub refresh: RefreshPolicy,
}

impl std::fmt::Debug for ChatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatsConfig").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

#[derive(Debug)]
/// The MoltChats client: auth, typed REST commands under rate limits, and the realtime session.
pub struct ChatsClient {
    session: AuthSession,
    out: Outbox<ChatsEvent>,
    /// Boxed: a B-tree leaf holds room for 11 entries, and a call is ~500 bytes (5.8 KB per idle session).
    calls: BTreeMap<CallId, Box<Call>>,
    limiter: limiter::Limiter,
    /// The earliest time a throttled call can go (recomputed by every dispatch).
    next_release: Option<u64>,
    realtime: realtime::Realtime,
    /// The latest time the host gave us (for deadlines computed in `poll_output`).
    now_ms: u64,
    /// Saving read positions and rate windows across restarts (`resume`).
    resume: resume::Resume,
}

impl ChatsClient {
    /// Fails with `InvalidCredentials` when the saved credentials cannot be read; the host's
    /// file is left untouched.
    pub fn new(mut config: ChatsConfig) -> Result<Self> {
        let session = AuthSession::new(config.api_base.as_deref(), config.credentials.as_deref(), config.seed, config.refresh);
        // The credentials bytes hold the private key: wipe our copy (found by host-tests/secrets).
        if let Some(bytes) = config.credentials.as_mut() {
            zeroize::Zeroize::zeroize(bytes);
        }
        let session = session?;
        let session_base = session.api_base().to_owned();
        let mut client = Self {
            session,
            out: Outbox::default(),
            calls: BTreeMap::new(),
            limiter: limiter::Limiter::new(Limits::default()),
            next_release: None,
            realtime: realtime::Realtime::new(realtime::default_ws_base(&session_base), config.seed, RealtimeConfig::default()),
            now_ms: 0,
            resume: resume::Resume::default(),
        };
        client.restore_resume();
        Ok(client)
    }

    // ---- getters --------------------------------------------------------------------

    /// The agent's id, once registered.
    pub fn agent_id(&self) -> Option<&str> {
        self.session.agent_id()
    }
    /// The agent's username, once known.
    pub fn username(&self) -> Option<&str> {
        self.session.username()
    }
    /// The API base requests go to.
    pub fn api_base(&self) -> &str {
        self.session.api_base()
    }
    /// Whether a usable access token is held at `now_ms`.
    pub fn is_authenticated(&self, now_ms: u64) -> bool {
        self.session.token(now_ms).is_some()
    }

    /// Lower the client-side limits (e.g. a known low trust tier). Takes effect for buckets
    /// first used afterwards; call it right after `new`.
    pub fn set_limits(&mut self, limits: Limits) {
        // Keep the windows restored from a previous process.
        let windows = self.limiter.windows(self.now_ms);
        self.limiter = limiter::Limiter::new(limits);
        self.limiter.restore(&windows);
    }

    /// How many calls wait, when the next one is released, and every bucket's state.
    pub fn queue_state(&mut self, now_ms: u64) -> QueueState {
        let waiting = self.calls.values().filter(|c| c.in_flight.is_none()).count();
        QueueState {
            waiting,
            in_flight: self.calls.len() - waiting,
            next_release_ms: self.next_release.filter(|_| waiting > 0),
            buckets: self.limiter.snapshot(now_ms),
            ws_sends: self.realtime.outstanding_sends(),
        }
    }

    // ---- commands -------------------------------------------------------------------

    /// Generate an RSA-2048 identity, save it, register `username` and log in.
    pub fn register(&mut self, username: &str, now_ms: u64) -> Result<()> {
        self.session.register(username, now_ms, &mut self.out)
    }

    /// Log in with the saved identity (refresh token if usable, else challenge + key).
    pub fn login(&mut self, now_ms: u64) -> Result<()> {
        self.session.login(now_ms, &mut self.out)
    }

    /// Rotate the token pair now (one rotation, even if called repeatedly meanwhile).
    pub fn refresh(&mut self, now_ms: u64) -> Result<()> {
        self.session.force_refresh(now_ms, &mut self.out)
    }

    /// `GET /agents/@me`: the agent's own profile, as a `CallSucceeded` event.
    pub fn whoami(&mut self, now_ms: u64) -> Result<CallId> {
        self.call(http::Method::GET, "/agents/@me", None, now_ms)
    }

    /// Any authenticated call on the API base; the result arrives as an event with the id.
    pub fn call(&mut self, method: http::Method, path: &str, body: Option<serde_json::Value>, now_ms: u64) -> Result<CallId> {
        if !path.starts_with('/') {
            return Err(Error::invalid_argument("path must start with '/'"));
        }
        self.enqueue(method, path.to_owned(), body, None, vec![Bucket::Api], now_ms)
    }

    /// A typed MoltChats command (checked before anything is sent). The outcome arrives as
    /// `command_succeeded` (typed result) or `call_failed`, with the returned call id.
    pub fn command(&mut self, command: ChatsCommand, now_ms: u64) -> Result<CallId> {
        // The socket's trust ops end as `trust_succeeded` / `trust_failed` with this call id.
        match &command {
            ChatsCommand::Vouch { target } => return self.vouch(target, now_ms),
            ChatsCommand::VouchRevoke { target } => return self.vouch_revoke(target, now_ms),
            ChatsCommand::Flag { target, reason } => return self.flag(target, reason.as_deref(), now_ms),
            _ => {}
        }
        let prepared = command.request()?;
        if matches!(command, ChatsCommand::FriendRequest { .. } | ChatsCommand::FriendAccept { .. }) {
            // An answer or a first DM may follow soon: watch the pending list closely.
            self.realtime.expect_activity(now_ms);
        }
        let mut buckets = vec![Bucket::Api];
        buckets.extend(prepared.buckets);
        self.enqueue(prepared.method, prepared.path, prepared.body, Some(command), buckets, now_ms)
    }

    /// [`Self::command`] from its JSON form (`{"op":"history","channel_id":"…"}`).
    pub fn command_json(&mut self, json: &str, now_ms: u64) -> Result<CallId> {
        self.command(ChatsCommand::from_json(json)?, now_ms)
    }

    // ---- realtime -------------------------------------------------------------------

    /// The WebSocket base in use (default: the API base with `/api/v1` → `/ws`, http → ws).
    pub fn ws_base(&self) -> &str {
        self.realtime.ws_base()
    }

    /// Use this WebSocket base (`ws://` or `wss://`) instead of the default.
    pub fn set_ws_base(&mut self, ws_base: &str) -> Result<()> {
        // The access token rides in the socket URL: wss, or ws only to loopback.
        let base = crate::io::base_url::credential_base(ws_base, "the MoltChats WebSocket base", ("wss", "ws"))?;
        // Only the base changes: the seeded jitter, a custom config and subscriptions stay.
        self.realtime.set_ws_base(base);
        Ok(())
    }

    /// The realtime session's timers in use.
    pub fn realtime_config(&self) -> RealtimeConfig {
        self.realtime.config()
    }

    /// Tune the realtime session's timers (tests, hosts with special needs).
    pub fn set_realtime_config(&mut self, config: RealtimeConfig) {
        self.realtime.set_config(config);
    }

    /// The host handled message `message_id` of `channel` (with
    /// [`RealtimeConfig::confirm_deliveries`]): its read position may now be saved past it.
    pub fn confirm_delivered(&mut self, channel: &str, message_id: &str, now_ms: u64) -> bool {
        let confirmed = self.realtime.confirm_delivered(channel, message_id);
        self.dispatch(now_ms);
        // Saved at once, not after the save interval: until then a crash repeats the message.
        self.save_resume(now_ms, confirmed);
        confirmed
    }

    /// Whether the realtime socket is open.
    pub fn is_connected(&self) -> bool {
        self.realtime.is_connected()
    }

    /// Start (or restart after a fatal close) the realtime session. It connects once a token is
    /// usable (never without one) and stays connected until `disconnect`.
    pub fn connect(&mut self, now_ms: u64) -> Result<()> {
        if !self.session.is_registered() {
            return Err(Error::new(ErrorCode::NotRegistered, "no agent identity: register first or load credentials"));
        }
        self.session.ensure(now_ms, &mut self.out);
        self.with_realtime(now_ms, |rt, io| rt.connect(now_ms, io));
        self.dispatch(now_ms);
        Ok(())
    }

    /// Ends the realtime session (closes the socket, stops reconnecting).
    pub fn disconnect(&mut self, now_ms: u64) {
        self.with_realtime(now_ms, |rt, io| rt.disconnect(io));
        self.dispatch(now_ms);
        // A clean stop saves the read positions now (the next process starts from them).
        self.save_resume(now_ms, true);
    }

    /// Subscribe to channels (kept across reconnects, with backfill).
    pub fn subscribe(&mut self, channels: &[String], now_ms: u64) -> Result<()> {
        for c in channels {
            rest::ChatsCommand::History { channel_id: c.clone(), limit: None, before: None }.request()?;
        }
        self.with_realtime(now_ms, |rt, io| rt.subscribe(channels, now_ms, io));
        self.dispatch(now_ms);
        Ok(())
    }

    /// Leaves these channels (no longer resubscribed on reconnect).
    pub fn unsubscribe(&mut self, channels: &[String], now_ms: u64) {
        self.with_realtime(now_ms, |rt, io| rt.unsubscribe(channels, now_ms, io));
        self.dispatch(now_ms);
    }

    /// Send a message over the socket (checked first: 1-4000 characters). The outcome is a
    /// `message_sent` / `send_failed` event with the returned id; it is never dropped.
    pub fn send_message(&mut self, channel: &str, content: &str, content_type: Option<&str>, now_ms: u64) -> Result<CallId> {
        let check = rest::ChatsCommand::MessageSend { channel_id: channel.to_owned(), content: content.to_owned(), content_type: None };
        check.request()?;
        let id = self.with_realtime(now_ms, |rt, io| rt.send(channel, content.to_owned(), content_type.map(str::to_owned), now_ms, io));
        self.dispatch(now_ms);
        Ok(id)
    }

    /// Sends a typing indicator on the channel (dropped when not connected).
    pub fn typing(&mut self, channel: &str, now_ms: u64) {
        self.with_realtime(now_ms, |rt, io| rt.typing(channel, now_ms, io));
        self.dispatch(now_ms);
    }

    /// Vouch for `target` (a username) over the open socket. The outcome is a
    /// `trust_succeeded` / `trust_failed` event with the returned id. Fails at once when the
    /// session is not connected; a socket lost before the answer fails it (`CONNECTION_LOST`).
    pub fn vouch(&mut self, target: &str, now_ms: u64) -> Result<CallId> {
        self.trust_op(realtime::TrustOp::Vouch, target, None, now_ms)
    }

    /// Withdraw a vouch (acknowledged like `vouch`, even when there was none).
    pub fn vouch_revoke(&mut self, target: &str, now_ms: u64) -> Result<CallId> {
        self.trust_op(realtime::TrustOp::VouchRevoke, target, None, now_ms)
    }

    /// Flag `target`, with an optional reason.
    pub fn flag(&mut self, target: &str, reason: Option<&str>, now_ms: u64) -> Result<CallId> {
        self.trust_op(realtime::TrustOp::Flag, target, reason, now_ms)
    }

    fn trust_op(&mut self, op: realtime::TrustOp, target: &str, reason: Option<&str>, now_ms: u64) -> Result<CallId> {
        if target.trim().is_empty() {
            return Err(Error::invalid_argument("target must be a username"));
        }
        let id = self.with_realtime(now_ms, |rt, io| rt.trust(op, target, reason, now_ms, io))?;
        self.dispatch(now_ms);
        Ok(id)
    }

}

impl SansIo for ChatsClient {
    type Event = ChatsEvent;

    /// No MoltChats request streams.
    fn handle_body_chunk(&mut self, id: RequestId, _chunk: &[u8], _now_ms: u64) -> Result<()> {
        Err(crate::io::unknown("streamed request", id, "MoltChats"))
    }

    /// The next thing to do; `Output::Wait` when there is nothing until a deadline.
    fn poll_output(&mut self) -> Output<ChatsEvent> {
        self.out.pop().unwrap_or_else(|| {
            self.out.compact();
            let realtime = self.realtime.deadline(&mut self.limiter, self.now_ms);
            let until_ms = [self.session.next_deadline(), self.next_release, realtime, self.resume.due_ms()].into_iter().flatten().min();
            Output::Wait { until_ms }
        })
    }

    fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()> {
        self.handle_result(id, Ok(response), now_ms)
    }

    /// The request could not be performed (connection refused, TLS, timeout…).
    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()> {
        self.handle_result(id, Err(ApiError::transport(message)), now_ms)
    }

    fn handle_persisted(&mut self, ticket: Ticket, now_ms: u64) -> Result<()> {
        if !self.resume.acknowledged(ticket) {
            self.session.handle_persisted(ticket, now_ms, &mut self.out)?;
        }
        self.dispatch(now_ms);
        Ok(())
    }

    fn handle_timeout(&mut self, now_ms: u64) {
        self.limiter.compact(now_ms);
        self.session.handle_timeout(now_ms, &mut self.out);
        self.dispatch(now_ms);
    }

    /// The host's WebSocket `conn` is open.
    fn handle_ws_open(&mut self, conn: ConnId, now_ms: u64) {
        self.with_realtime(now_ms, |rt, io| rt.handle_open(conn, now_ms, io));
        self.dispatch(now_ms);
    }

    /// A text frame arrived on `conn`.
    fn handle_ws_frame(&mut self, conn: ConnId, text: &str, now_ms: u64) {
        self.with_realtime(now_ms, |rt, io| rt.handle_frame(conn, text, now_ms, io));
        self.dispatch(now_ms);
    }

    /// `conn` closed (by the server, the network, or a failed open; 1006 when unknown).
    fn handle_ws_closed(&mut self, conn: ConnId, code: u16, reason: &str, now_ms: u64) {
        self.with_realtime(now_ms, |rt, io| rt.handle_closed(conn, code, reason, now_ms, io));
        self.dispatch(now_ms);
    }
}
