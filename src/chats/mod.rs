//! The MoltChats client: authenticated REST calls on top of the auth session.
//!
//! Every call carries the current access token. A call answered 401 because its token was
//! revoked/expired (typically racing a rotation) is retried once with the next token.

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
}

#[derive(Debug)]
pub struct ChatsClient {
    session: AuthSession,
    out: Outbox,
    calls: BTreeMap<CallId, Call>,
    next_call: CallId,
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
        Ok(Self { session, out: Outbox::default(), calls: BTreeMap::new(), next_call: 0 })
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
        if !self.session.is_registered() {
            return Err(Error::new(ErrorCode::NotRegistered, "no agent identity: register first or load credentials"));
        }
        self.next_call += 1;
        let id = self.next_call;
        self.calls.insert(id, Call { method, path: path.to_owned(), body, retried: false, in_flight: None });
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
        self.out.pop().unwrap_or(Output::Wait { until_ms: self.session.next_deadline() })
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
                self.calls.remove(&call_id);
                self.out.event(Event::CallSucceeded { call_id, status, body });
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
        let Some(token) = self.session.token(now_ms).cloned() else { return };
        let base = self.session.api_base().to_owned();
        let mut failed = Vec::new();
        for (call_id, call) in self.calls.iter_mut().filter(|(_, c)| c.in_flight.is_none()) {
            let url = format!("{base}{}", call.path);
            match json_request(call.method.clone(), &url, Some(token.jwt.expose()), call.body.as_ref()) {
                Ok(request) => call.in_flight = Some((self.out.http(request), token.generation)),
                Err(e) => failed.push((*call_id, e)),
            }
        }
        for (call_id, e) in failed {
            self.calls.remove(&call_id);
            self.out.event(Event::CallFailed { call_id, error: ApiError::transport(e.message) });
        }
    }
}
