//! The MoltChats client: authenticated REST calls on top of the auth session.
//!
//! Every call carries the current access token. A call answered 401 because its token was
//! revoked/expired (typically racing a rotation) is retried once with the next token.

pub mod limiter;
pub mod rest;

pub use limiter::{Bucket, BucketState, Limits, RateHeaders};
pub use rest::{ChatsCommand, ChatsResult};

use crate::auth::session::is_credential_rejection;
use crate::auth::{AuthSession, RefreshPolicy};
use crate::error::{Error, ErrorCode, Result};
use crate::io::{json_outcome, json_request, ApiError, CallId, Event, Outbox, Output, RequestId, Ticket};
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
}

/// Events of the MoltChats client beyond the shared auth/call ones (wrapped in [`Event::Chats`]).
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
}

#[derive(Debug)]
pub struct ChatsClient {
    session: AuthSession,
    out: Outbox,
    calls: BTreeMap<CallId, Call>,
    next_call: CallId,
    limiter: limiter::Limiter,
    /// The earliest time a throttled call can go (recomputed by every dispatch).
    next_release: Option<u64>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}
impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({} {})", self.method, self.path)
    }
}

impl ChatsClient {
    /// Fails with `InvalidCredentials` when the saved credentials cannot be read; the host's
    /// file is left untouched.
    pub fn new(config: ChatsConfig) -> Result<Self> {
        let session = AuthSession::new(config.api_base.as_deref(), config.credentials.as_deref(), config.seed, config.refresh)?;
        Ok(Self {
            session,
            out: Outbox::default(),
            calls: BTreeMap::new(),
            next_call: 0,
            limiter: limiter::Limiter::new(Limits::default()),
            next_release: None,
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
        self.next_call += 1;
        let id = self.next_call;
        let call = Call { method, path, body, retried: false, in_flight: None, command, buckets, admitted_at: None, reported: false };
        self.calls.insert(id, call);
        self.session.ensure(now_ms, &mut self.out);
        self.dispatch(now_ms);
        Ok(id)
    }

    // ---- inputs ---------------------------------------------------------------------

    pub fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()> {
        self.handle_result(id, Ok(response), now_ms)
    }

    /// The request could not be performed (connection refused, TLS, timeout…).
    pub fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()> {
        self.handle_result(id, Err(ApiError::transport(message)), now_ms)
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.limiter.compact(now_ms);
        self.session.handle_timeout(now_ms, &mut self.out);
        self.dispatch(now_ms);
    }

    pub fn handle_persisted(&mut self, ticket: Ticket, now_ms: u64) -> Result<()> {
        self.session.handle_persisted(ticket, now_ms, &mut self.out)?;
        self.dispatch(now_ms);
        Ok(())
    }

    /// The next thing to do; `Output::Wait` when there is nothing until a deadline.
    pub fn poll_output(&mut self) -> Output {
        self.out.pop().unwrap_or_else(|| {
            let until_ms = match (self.session.next_deadline(), self.next_release) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Output::Wait { until_ms }
        })
    }

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
                    self.out.event(Event::Chats(ChatsEvent::Throttled { call_id, bucket: primary, until_ms, waiting, rejected: true }));
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
            Err(error) => {
                self.calls.remove(&call_id);
                self.out.event(Event::CallFailed { call_id, error });
            }
            Ok((status, body)) => {
                let call = self.calls.remove(&call_id).expect("call exists");
                let event = match call.command {
                    None => Event::CallSucceeded { call_id, status, body },
                    Some(command) => match rest::parse_result(&command, &body) {
                        Ok(result) => Event::Chats(ChatsEvent::CommandSucceeded {
                            call_id,
                            op: command.op().to_owned(),
                            status,
                            result,
                            untrusted: rest::untrusted_fields(&command),
                        }),
                        Err(message) => Event::CallFailed { call_id, error: ApiError { status, code: None, message } },
                    },
                };
                self.out.event(event);
            }
        }
    }

    /// Send every waiting call if a token is usable; fail them if auth needs the human.
    fn dispatch(&mut self, now_ms: u64) {
        if self.session.is_failed() {
            let waiting: Vec<CallId> = self.calls.iter().filter(|(_, c)| c.in_flight.is_none()).map(|(k, _)| *k).collect();
            for call_id in waiting {
                self.calls.remove(&call_id);
                self.out.event(Event::CallFailed {
                    call_id,
                    error: ApiError::transport("not authenticated: authentication failed (see auth_failed)"),
                });
            }
            return;
        }
        self.next_release = None;
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
            self.out.event(Event::Chats(ChatsEvent::Throttled { call_id, bucket, until_ms, waiting, rejected: false }));
        }
        for (call_id, e) in failed {
            self.calls.remove(&call_id);
            self.out.event(Event::CallFailed { call_id, error: ApiError::transport(e.message) });
        }
    }
}
