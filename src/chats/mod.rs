//! The MoltChats client: authenticated REST calls on top of the auth session.
//!
//! Every call carries the current access token. A call answered 401 because its token was
//! revoked/expired (typically racing a rotation) is retried once with the next token.

pub mod limiter;
pub mod realtime;
pub mod rest;

pub use limiter::{Bucket, BucketState, Limits, RateHeaders};
pub use realtime::{RealtimeConfig, RealtimeEvent};
pub use rest::{ChatsCommand, ChatsResult};

use crate::auth::session::is_credential_rejection;
use crate::auth::{AuthSession, RefreshPolicy};
use crate::error::{Error, ErrorCode, Result};
use crate::auth::AuthEvent;
use crate::io::{json_outcome, json_request, ApiError, CallEvent, CallId, ConnId, Outbox, Output, RequestId, SansIo, Ticket};
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;

/// How to start a client. `credentials` are the bytes the host persisted last time (if any).
#[derive(Clone)]
pub struct ChatsConfig {
    /// Overrides the credentials' `apiBase`; default `https://moltchats.com/api/v1`.
    pub api_base: Option<String>,
    pub credentials: Option<Vec<u8>>,
    /// Seed for key generation and jitter: from the host's secure random source.
    pub seed: [u8; 32],
    pub refresh: RefreshPolicy,
}

impl std::fmt::Debug for ChatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatsConfig").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

struct Call {
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
    retried: bool,
    /// The request in flight and the token generation it carries.
    in_flight: Option<(RequestId, u64)>,
    /// The typed command behind the call, if any: its result is parsed into `command_succeeded`.
    command: Option<ChatsCommand>,
    /// Rate-limit buckets the call draws from; the last one is the most specific.
    buckets: Vec<Bucket>,
    /// When the limiter admitted the attempt in flight (to refund it if it never arrives).
    admitted_at: Option<u64>,
    /// A `throttled` event was reported for the current wait.
    reported: bool,
    /// Made by the realtime session (backfill, pending poll): its result goes back there.
    purpose: Option<Purpose>,
}

#[derive(Debug, Clone)]
enum Purpose {
    Backfill { channel: String, epoch: u64 },
    Pending,
}

/// Everything the MoltChats client reports, as JSON `{"type": …}`: auth, untyped calls, typed
/// command results, rate-limit queueing and the realtime session.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatsEvent {
    /// A typed command finished: `result` is its typed result (see [`ChatsResult`]).
    /// `untrusted` lists the fields of `result` written by other agents (`messages[].content`):
    /// untrusted remote text, to keep out of a system prompt.
    CommandSucceeded { call_id: CallId, op: String, status: u16, result: ChatsResult, untrusted: Vec<&'static str> },
    /// A call waits for a rate-limit bucket (pre-emptively, or requeued after the server
    /// refused it: `rejected`). It is never dropped; it goes out at `until_ms` or later.
    Throttled { call_id: CallId, bucket: Bucket, until_ms: u64, waiting: usize, rejected: bool },
    /// The realtime session (tagged by its own `type`).
    #[serde(untagged)]
    Realtime(RealtimeEvent),
    /// Login, rotation and re-authentication (tagged by their own `type`).
    #[serde(untagged)]
    Auth(AuthEvent),
    /// An untyped call (`call`, `whoami`) finished.
    #[serde(untagged)]
    Call(CallEvent),
}

impl From<AuthEvent> for ChatsEvent {
    fn from(event: AuthEvent) -> Self {
        ChatsEvent::Auth(event)
    }
}
impl From<CallEvent> for ChatsEvent {
    fn from(event: CallEvent) -> Self {
        ChatsEvent::Call(event)
    }
}
impl From<RealtimeEvent> for ChatsEvent {
    fn from(event: RealtimeEvent) -> Self {
        ChatsEvent::Realtime(event)
    }
}

/// What is waiting for the rate limiter, for hosts (`queue_state`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueState {
    /// Calls not yet sent (throttled, or waiting for a token).
    pub waiting: usize,
    pub in_flight: usize,
    /// When the limiter next lets a waiting call go (Unix ms); absent when none is held.
    pub next_release_ms: Option<u64>,
    pub buckets: Vec<BucketState>,
    /// Realtime sends not yet acknowledged (queued, awaiting an ack, or being verified).
    pub ws_sends: usize,
}

#[derive(Debug)]
pub struct ChatsClient {
    session: AuthSession,
    out: Outbox<ChatsEvent>,
    calls: BTreeMap<CallId, Call>,
    limiter: limiter::Limiter,
    /// The earliest time a throttled call can go (recomputed by every dispatch).
    next_release: Option<u64>,
    realtime: realtime::Realtime,
    /// The latest time the host gave us (for deadlines computed in `poll_output`).
    now_ms: u64,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({} {})", self.method, self.path)
    }
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
        Ok(Self {
            session,
            out: Outbox::default(),
            calls: BTreeMap::new(),
            limiter: limiter::Limiter::new(Limits::default()),
            next_release: None,
            realtime: realtime::Realtime::new(realtime::default_ws_base(&session_base), config.seed, RealtimeConfig::default()),
            now_ms: 0,
        })
    }

    // ---- getters --------------------------------------------------------------------

    pub fn agent_id(&self) -> Option<&str> {
        self.session.agent_id()
    }
    pub fn username(&self) -> Option<&str> {
        self.session.username()
    }
    pub fn api_base(&self) -> &str {
        self.session.api_base()
    }
    pub fn is_authenticated(&self, now_ms: u64) -> bool {
        self.session.token(now_ms).is_some()
    }

    /// Lower the client-side limits (e.g. a known low trust tier). Takes effect for buckets
    /// first used afterwards; call it right after `new`.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limiter = limiter::Limiter::new(limits);
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
        let prepared = command.request()?;
        let mut buckets = vec![Bucket::Api];
        buckets.extend(prepared.buckets);
        self.enqueue(prepared.method, prepared.path, prepared.body, Some(command), buckets, now_ms)
    }

    /// [`Self::command`] from its JSON form (`{"op":"history","channel_id":"…"}`).
    pub fn command_json(&mut self, json: &str, now_ms: u64) -> Result<CallId> {
        self.command(ChatsCommand::from_json(json)?, now_ms)
    }

    fn enqueue(
        &mut self,
        method: http::Method,
        path: String,
        body: Option<serde_json::Value>,
        command: Option<ChatsCommand>,
        buckets: Vec<Bucket>,
        now_ms: u64,
    ) -> Result<CallId> {
        if !self.session.is_registered() {
            return Err(Error::new(ErrorCode::NotRegistered, "no agent identity: register first or load credentials"));
        }
        let id = self.out.next_id();
        let call = Call { method, path, body, retried: false, in_flight: None, command, buckets, admitted_at: None, reported: false, purpose: None };
        self.calls.insert(id, call);
        self.session.ensure(now_ms, &mut self.out);
        self.dispatch(now_ms);
        Ok(id)
    }

    // ---- realtime -------------------------------------------------------------------

    /// The WebSocket base in use (default: the API base with `/api/v1` → `/ws`, http → ws).
    pub fn ws_base(&self) -> &str {
        self.realtime.ws_base()
    }

    /// Use this WebSocket base (`ws://` or `wss://`) instead of the default.
    pub fn set_ws_base(&mut self, ws_base: &str) -> Result<()> {
        let trimmed = ws_base.trim();
        let uri: http::Uri = trimmed.parse().map_err(|_| Error::invalid_argument(format!("invalid WebSocket URL: {trimmed}")))?;
        if !matches!(uri.scheme_str(), Some("ws") | Some("wss")) || uri.host().is_none() {
            return Err(Error::invalid_argument(format!("WebSocket base must be a ws(s) URL: {trimmed}")));
        }
        let config = RealtimeConfig::default();
        self.realtime = realtime::Realtime::new(trimmed.to_owned(), [0; 32], config);
        Ok(())
    }

    /// Tune the realtime session's timers (tests, hosts with special needs).
    pub fn set_realtime_config(&mut self, config: RealtimeConfig) {
        self.realtime.set_config(config);
    }

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

    pub fn disconnect(&mut self, now_ms: u64) {
        self.with_realtime(now_ms, |rt, io| rt.disconnect(io));
        self.dispatch(now_ms);
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

    pub fn typing(&mut self, channel: &str, now_ms: u64) {
        self.with_realtime(now_ms, |rt, io| rt.typing(channel, now_ms, io));
        self.dispatch(now_ms);
    }




    // ---- inputs ---------------------------------------------------------------------






    // ---- internals ------------------------------------------------------------------

    fn handle_result(&mut self, id: RequestId, result: std::result::Result<http::Response<Vec<u8>>, ApiError>, now_ms: u64) -> Result<()> {
        if self.session.owns_request(id) {
            self.session.handle_result(id, result, now_ms, &mut self.out);
        } else {
            let call_id = self
                .calls
                .iter()
                .find(|(_, c)| c.in_flight.is_some_and(|(req, _)| req == id))
                .map(|(k, _)| *k)
                .ok_or_else(|| Error::new(ErrorCode::UnknownId, format!("no request with id {id} is in flight")))?;
            self.on_call_result(call_id, result, now_ms);
        }
        self.dispatch(now_ms);
        Ok(())
    }

    fn on_call_result(&mut self, call_id: CallId, result: std::result::Result<http::Response<Vec<u8>>, ApiError>, now_ms: u64) {
        let call = self.calls.get_mut(&call_id).expect("call exists");
        let (_, generation) = call.in_flight.take().expect("call was in flight");
        let admitted_at = call.admitted_at.take();
        let primary = call.buckets.last().cloned().unwrap_or(Bucket::Api);
        match &result {
            Ok(response) => {
                let headers = RateHeaders::from_headers(response.headers());
                if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                    // Requeue, never drop: the bucket stays closed until the server's reset.
                    let until_ms = self.limiter.rejected(&primary, headers, now_ms);
                    call.reported = true;
                    self.next_release = Some(self.next_release.map_or(until_ms, |t| t.min(until_ms)));
                    let waiting = self.calls.values().filter(|c| c.in_flight.is_none()).count();
                    self.out.event(ChatsEvent::Throttled { call_id, bucket: primary, until_ms, waiting, rejected: true });
                    return;
                }
                self.limiter.observe(&primary, headers, now_ms);
                if response.status().is_success() {
                    self.limiter.accepted(&primary);
                }
            }
            // It never reached the server: give the slots back.
            Err(_) => {
                if let Some(at) = admitted_at {
                    self.limiter.refund(&call.buckets, at);
                }
            }
        }
        let outcome = json_outcome(result, ApiError::from_moltchats);
        match outcome {
            Err(e) if is_credential_rejection(&e) && !call.retried => {
                // Raced a rotation (or the token expired): retry once with the next token.
                call.retried = true;
                self.session.reject_token(generation, now_ms, &mut self.out);
            }
            outcome => {
                let call = self.calls.remove(&call_id).expect("call exists");
                self.finish(call_id, call, outcome, now_ms);
            }
        }
    }

    /// Report a finished call: an event for the host, or back to the realtime session.
    fn finish(&mut self, call_id: CallId, call: Call, outcome: std::result::Result<(u16, serde_json::Value), ApiError>, now_ms: u64) {
        let typed = match (&call.command, outcome) {
            (None, Ok((status, body))) => return self.out.event(CallEvent::CallSucceeded { call_id, status, body }),
            (_, Err(error)) => Err(error),
            (Some(command), Ok((status, body))) => rest::parse_result(command, &body)
                .map(|result| (status, result))
                .map_err(|message| ApiError { status, code: None, message }),
        };
        match call.purpose {
            Some(Purpose::Backfill { channel, epoch }) => {
                let result = typed.map(|(_, r)| r).map_err(|e| e.to_string());
                self.with_realtime(now_ms, |rt, io| rt.on_history(&channel, epoch, result, now_ms, io));
            }
            Some(Purpose::Pending) => {
                let result = typed.map(|(_, r)| r).map_err(|e| e.to_string());
                self.with_realtime(now_ms, |rt, io| rt.on_pending(result, io));
            }
            None => self.out.event(match typed {
                Ok((status, result)) => {
                    let command = call.command.expect("typed results come from commands");
                    ChatsEvent::CommandSucceeded {
                        call_id,
                        op: command.op().to_owned(),
                        status,
                        untrusted: rest::untrusted_fields(&command),
                        result,
                    }
                }
                Err(error) => ChatsEvent::Call(CallEvent::CallFailed { call_id, error }),
            }),
        }
    }

    /// Run the realtime session with what it needs, then queue the REST calls it asked for
    /// and pass a rejected token on to the auth session.
    fn with_realtime<R>(&mut self, now_ms: u64, f: impl FnOnce(&mut realtime::Realtime, &mut realtime::Io) -> R) -> R {
        let mut needs = Vec::new();
        let mut reject = None;
        let token = self.session.token(now_ms).map(|t| (&t.jwt, t.generation));
        let mut io = realtime::Io {
            out: &mut self.out,
            limiter: &mut self.limiter,
            token,
            agent_id: self.session.agent_id(),
            needs: &mut needs,
            reject_generation: &mut reject,
        };
        let r = f(&mut self.realtime, &mut io);
        if let Some(generation) = reject {
            self.session.reject_token(generation, now_ms, &mut self.out);
        }
        if self.realtime.needs_token() && self.session.token(now_ms).is_none() {
            self.session.ensure(now_ms, &mut self.out);
        }
        for need in needs {
            let (command, purpose) = match need {
                realtime::Need::History { channel, epoch, command } => (command, Purpose::Backfill { channel, epoch }),
                realtime::Need::Pending { command } => (command, Purpose::Pending),
            };
            let Ok(prepared) = command.request() else { continue };
            let mut buckets = vec![Bucket::Api];
            buckets.extend(prepared.buckets);
            let call_id = self.out.next_id();
            let call = Call {
                method: prepared.method,
                path: prepared.path,
                body: prepared.body,
                retried: false,
                in_flight: None,
                command: Some(command),
                buckets,
                admitted_at: None,
                reported: false,
                purpose: Some(purpose),
            };
            self.calls.insert(call_id, call);
        }
        r
    }

    /// Let the realtime session act, then send every waiting call if a token is usable (or
    /// fail them if auth needs the human).
    fn dispatch(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        // Recomputed below; never left stale (a stale past deadline would make hosts spin).
        self.next_release = None;
        self.with_realtime(now_ms, |rt, io| rt.step(now_ms, io));
        if self.session.is_failed() {
            let waiting: Vec<CallId> = self.calls.iter().filter(|(_, c)| c.in_flight.is_none()).map(|(k, _)| *k).collect();
            for call_id in waiting {
                let call = self.calls.remove(&call_id).expect("listed above");
                let error = ApiError::transport("not authenticated: authentication failed (see auth_failed)");
                self.finish(call_id, call, Err(error), now_ms);
            }
            return;
        }
        let Some(token) = self.session.token(now_ms).cloned() else { return };
        let base = self.session.api_base().to_owned();
        let mut failed = Vec::new();
        // FIFO per bucket: once a bucket holds a call back, later calls on it wait too. Sends to
        // one channel go one at a time, so they arrive in order and a rejection is learnt from
        // before the next one leaves.
        let mut held: Vec<Bucket> = self
            .calls
            .values()
            .filter(|c| c.in_flight.is_some())
            .flat_map(|c| c.buckets.iter().filter(|b| matches!(b, Bucket::Channel(_))).cloned())
            .collect();
        let mut throttled = Vec::new();
        for (call_id, call) in self.calls.iter_mut().filter(|(_, c)| c.in_flight.is_none()) {
            if let Some(bucket) = call.buckets.iter().find(|b| held.contains(b)).cloned() {
                if !call.reported {
                    call.reported = true;
                    let until_ms = self.limiter.ready_at(&call.buckets, now_ms);
                    throttled.push((*call_id, bucket, until_ms));
                }
                continue;
            }
            if let Err(until_ms) = self.limiter.admit(&call.buckets, now_ms) {
                let bucket = call
                    .buckets
                    .iter()
                    .find(|b| self.limiter.ready_at(std::slice::from_ref(*b), now_ms) == until_ms)
                    .cloned()
                    .unwrap_or(Bucket::Api);
                for b in &call.buckets {
                    if self.limiter.ready_at(std::slice::from_ref(b), now_ms) > now_ms {
                        held.push(b.clone());
                    }
                }
                self.next_release = Some(self.next_release.map_or(until_ms, |t| t.min(until_ms)));
                if !call.reported {
                    call.reported = true;
                    throttled.push((*call_id, bucket, until_ms));
                }
                continue;
            }
            call.reported = false;
            call.admitted_at = Some(now_ms);
            held.extend(call.buckets.iter().filter(|b| matches!(b, Bucket::Channel(_))).cloned());
            let url = format!("{base}{}", call.path);
            match json_request(call.method.clone(), &url, Some(token.jwt.expose()), call.body.as_ref()) {
                Ok(request) => call.in_flight = Some((self.out.http(request), token.generation)),
                Err(e) => failed.push((*call_id, e)),
            }
        }
        let waiting = self.calls.values().filter(|c| c.in_flight.is_none()).count();
        for (call_id, bucket, until_ms) in throttled {
            self.out.event(ChatsEvent::Throttled { call_id, bucket, until_ms, waiting, rejected: false });
        }
        for (call_id, e) in failed {
            let call = self.calls.remove(&call_id).expect("listed above");
            self.finish(call_id, call, Err(ApiError::transport(e.message)), now_ms);
        }
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
            let until_ms = [self.session.next_deadline(), self.next_release, realtime].into_iter().flatten().min();
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
        self.session.handle_persisted(ticket, now_ms, &mut self.out)?;
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
