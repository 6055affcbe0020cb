//! The MoltChats login and token-rotation state machine.
//!
//! One auth operation runs at a time (`Op`), so two triggers (timer, 401, reconnect) can never
//! produce two `/auth/refresh` calls. Every new credential is persisted — and acknowledged by
//! the host — before it is used:
//!
//! ```text
//! refresh:  persist{refreshInFlight} ─ack→ POST /auth/refresh ─200→ persist{new pair} ─ack→ use token
//!                                                            └401/5xx/transport→ re-auth
//! re-auth:  POST /auth/challenge → sign → POST /agents/verify ─200→ persist{new pair} ─ack→ use token
//! register: persist{key} ─ack→ POST /agents/register ─201→ persist{agentId} ─ack→ sign → verify …
//! ```
//! A process restarting with `refreshInFlight` set never sends that refresh token (it may be
//! spent) and re-authenticates with the private key instead.
//!
//! Files: this one (the session, its commands and inputs), `machine` (the operations and the
//! one transition table), `steps` (performing a transition: requests, persists, timers).

mod machine;
mod steps;

use super::{Credentials, Identity};
use super::event::AuthEvent;
use crate::error::{Error, ErrorCode, Result};
use crate::io::{json_outcome, ApiError, Outbox, RequestId, Secret, Ticket};
use machine::{Input, Op};

/// The default MoltChats API base.
pub const DEFAULT_API_BASE: &str = "https://moltchats.com/api/v1";

/// When to refresh and how to back off. Times in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Refresh after this fraction of the token's lifetime has passed.
    pub at_fraction: f64,
    /// Random spread around that point, as a fraction of the lifetime (±).
    pub jitter_fraction: f64,
    /// First retry delay after a transient failure; doubles up to `backoff_cap_ms`.
    pub backoff_base_ms: u64,
    /// Longest retry delay.
    pub backoff_cap_ms: u64,
    /// A token is not used when it expires within this margin (at most a tenth of its lifetime).
    pub expiry_margin_ms: u64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self { at_fraction: 0.8, jitter_fraction: 0.05, backoff_base_ms: 1_000, backoff_cap_ms: 300_000, expiry_margin_ms: 10_000 }
    }
}

/// A usable access token. `generation` tells apart tokens so a 401 for an old one does not
/// throw away a newer one.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The token itself (a JWT).
    pub jwt: Secret<String>,
    /// When it expires (Unix ms).
    pub expires_at_ms: u64,
    /// Not used after this: a request must not arrive with a token about to expire.
    pub usable_until_ms: u64,
    /// Counts the tokens of this session, oldest first.
    pub generation: u64,
}

/// Registration, login and token rotation for one agent (sans-IO).
pub struct AuthSession {
    api_base: String,
    creds: Option<Credentials>,
    /// The parsed key, kept only while an auth step may need it (register, sign): the saved
    /// PEM in `creds` is the source of truth. Dropping it after login keeps an idle session
    /// small (a parsed RSA-2048 key is several KB); it is re-parsed for a re-auth.
    identity: Option<Identity>,
    token: Option<AccessToken>,
    generation: u64,
    op: Op,
    refresh_at_ms: Option<u64>,
    attempt: u32,
    last_ticket: Ticket,
    policy: RefreshPolicy,
    rng: crate::io::SeededRng,
}

impl std::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSession")
            .field("api_base", &self.api_base)
            .field("creds", &self.creds)
            .field("authenticated", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// Usernames the server accepts, after it folds them to lowercase.
pub fn validate_username(name: &str) -> Result<String> {
    let folded = name.to_ascii_lowercase();
    let ok = (3..=64).contains(&folded.len())
        && folded.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(folded)
    } else {
        Err(Error::invalid_argument("username must be 3-64 characters of a-z, 0-9 and _"))
    }
}

/// Signatures, refresh and access tokens travel only over https (plain http only to loopback).
fn validate_api_base(base: &str) -> Result<String> {
    crate::io::base_url::credential_base(base, "the MoltChats API base", ("https", "http"))
}

/// Is this error body one that says "this credential is no good" rather than "try later"?
pub fn is_credential_rejection(e: &ApiError) -> bool {
    e.status == 401 && ["TOKEN_REVOKED", "INVALID_CREDENTIALS", "TOKEN_EXPIRED"].iter().any(|c| e.code_is(c))
}

impl AuthSession {
    /// Load saved credentials (the skill's file) if any. `api_base` overrides the file's `apiBase`.
    pub fn new(api_base: Option<&str>, credentials: Option<&[u8]>, seed: [u8; 32], policy: RefreshPolicy) -> Result<Self> {
        let creds = credentials.map(Credentials::parse).transpose()?;
        let identity = creds.as_ref().map(|c| Identity::from_pem(c.private_key.expose())).transpose()?;
        let base = api_base
            .or(creds.as_ref().and_then(|c| c.api_base.as_deref()))
            .unwrap_or(DEFAULT_API_BASE);
        Ok(Self {
            api_base: validate_api_base(base)?,
            creds,
            identity,
            token: None,
            generation: 0,
            op: Op::Idle,
            refresh_at_ms: None,
            attempt: 0,
            last_ticket: 0,
            policy,
            rng: crate::io::SeededRng::new(seed, 0),
        })
    }

    /// The API base requests go to.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }
    /// The agent's id, once registered.
    pub fn agent_id(&self) -> Option<&str> {
        self.creds.as_ref().and_then(|c| c.agent_id.as_deref())
    }
    /// The agent's username, once known.
    pub fn username(&self) -> Option<&str> {
        self.creds.as_ref().map(|c| c.username.as_str())
    }
    /// Whether the agent is registered (has an id).
    pub fn is_registered(&self) -> bool {
        self.identity.is_some() || self.creds.is_some()
    }
    /// Whether authentication failed for good (new credentials are needed).
    pub fn is_failed(&self) -> bool {
        matches!(self.op, Op::Failed)
    }
    /// True while an auth operation (refresh, re-auth, register) is under way.
    pub fn is_busy(&self) -> bool {
        !matches!(self.op, Op::Idle | Op::Failed)
    }

    /// The token to use now, if one is valid for longer than the expiry margin.
    pub fn token(&self, now_ms: u64) -> Option<&AccessToken> {
        self.token.as_ref().filter(|t| t.usable_until_ms > now_ms)
    }

    /// The earliest time `handle_timeout` has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.op {
            Op::Waiting { until_ms } => Some(until_ms),
            Op::Idle => self.refresh_at_ms,
            _ => None,
        }
    }

    // ---- commands -------------------------------------------------------------------

    /// Create an identity (unless one was generated but never registered) and register it.
    pub fn register<E: From<AuthEvent>>(&mut self, username: &str, now_ms: u64, out: &mut Outbox<E>) -> Result<()> {
        let username = validate_username(username)?;
        if self.agent_id().is_some() {
            return Err(Error::new(ErrorCode::AlreadyRegistered, "an agent is already registered with these credentials"));
        }
        if self.is_busy() {
            return Err(Error::invalid_state("an authentication step is already in progress"));
        }
        if self.identity.is_none() {
            // Reuse a key that was saved but never registered; otherwise make one.
            self.identity = Some(match self.creds.as_ref() {
                Some(c) => Identity::from_pem(c.private_key.expose())?,
                None => self.rng.with(|rng| Identity::generate(rng))?,
            });
        }
        let identity = self.identity.as_ref().expect("identity set above");
        self.creds = Some(Credentials {
            agent_id: None,
            username,
            private_key: identity.private_pem()?,
            refresh_token: None,
            api_base: Some(self.api_base.clone()),
            refresh_in_flight: false,
            extra: Default::default(),
        });
        // The key is saved before the server ever sees it, so it can never be lost.
        self.feed(Input::Register, now_ms, out);
        Ok(())
    }

    /// Make sure a usable token is, or will be, available; restart after a fatal failure.
    pub fn login<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) -> Result<()> {
        if !self.is_registered() {
            return Err(Error::new(ErrorCode::NotRegistered, "no agent identity: register first or load credentials"));
        }
        self.feed(Input::Restart { forget_attempts: true }, now_ms, out);
        self.ensure(now_ms, out);
        Ok(())
    }

    /// Rotate now, whatever the schedule says (no-op while another auth step runs).
    pub fn force_refresh<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) -> Result<()> {
        if !self.is_registered() {
            return Err(Error::new(ErrorCode::NotRegistered, "no agent identity: register first or load credentials"));
        }
        self.feed(Input::Restart { forget_attempts: false }, now_ms, out);
        self.feed(Input::Obtain, now_ms, out);
        Ok(())
    }

    /// Start obtaining a token if none is usable and nothing is under way.
    pub fn ensure<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) {
        if self.token(now_ms).is_none() && self.is_registered() {
            self.feed(Input::Obtain, now_ms, out);
        }
    }

    /// A request made with token `generation` was answered 401 (revoked/expired/invalid).
    /// Drops that token if it is still the current one and starts getting a new one.
    pub fn reject_token<E: From<AuthEvent>>(&mut self, generation: u64, now_ms: u64, out: &mut Outbox<E>) {
        if self.token.as_ref().is_some_and(|t| t.generation == generation) {
            self.token = None;
        }
        self.ensure(now_ms, out);
    }

    // ---- inputs ---------------------------------------------------------------------

    /// Whether request `id` is one of the session's own (register, login, refresh).
    pub fn owns_request(&self, id: RequestId) -> bool {
        matches!(self.op, Op::Register { req } | Op::Challenge { req } | Op::Verify { req, .. } | Op::Refresh { req } if req == id)
    }

    /// Starts a refresh or a retry that is due at `now_ms`.
    pub fn handle_timeout<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) {
        self.feed(Input::Timeout, now_ms, out);
    }

    /// What the client saved under `key` beside the credentials (e.g. read positions).
    pub fn extra(&self, key: &str) -> Option<&serde_json::value::RawValue> {
        self.creds.as_ref()?.extra.get(key)
    }

    /// Save `value` under `key` beside the credentials, through the same persist output (the
    /// file then holds the credentials as they are now, plus this). `None` without credentials.
    /// The ticket is the caller's to match: the session waits on none of it.
    pub fn persist_extra<E>(&mut self, key: &str, value: Box<serde_json::value::RawValue>, out: &mut Outbox<E>) -> Option<Ticket> {
        let creds = self.creds.as_mut()?;
        creds.extra.insert(key.to_owned(), value);
        Some(out.persist(creds.to_json()))
    }

    /// The host stored what we asked. Stale tickets (already superseded) are accepted silently.
    pub fn handle_persisted<E: From<AuthEvent>>(&mut self, ticket: Ticket, now_ms: u64, out: &mut Outbox<E>) -> Result<()> {
        if matches!(self.op, Op::Persisting { ticket: t, .. } if t == ticket) {
            self.feed(Input::Persisted(ticket), now_ms, out);
            Ok(())
        } else if ticket != 0 && ticket <= self.last_ticket {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::UnknownId, format!("no persist request with ticket {ticket}")))
        }
    }

    /// A response (or a transport failure, as `Err`) for one of our requests.
    pub fn handle_result<E: From<AuthEvent>>(&mut self, id: RequestId, result: std::result::Result<http::Response<Vec<u8>>, ApiError>, now_ms: u64, out: &mut Outbox<E>) {
        let answer = json_outcome(result, ApiError::from_moltchats);
        self.feed(Input::Answer(id, answer), now_ms, out);
    }

    /// The one place the operation changes: look the transition up, perform its effect.
    fn feed<E: From<AuthEvent>>(&mut self, input: Input, now_ms: u64, out: &mut Outbox<E>) {
        let op = std::mem::replace(&mut self.op, Op::Idle);
        let effect = self.next(op, input, now_ms);
        self.op = self.apply(effect, now_ms, out);
    }
}
