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

use super::{jwt, Credentials, Identity};
use crate::error::{Error, ErrorCode, Result};
use super::event::{AuthEvent, AuthHow};
use crate::io::{json_outcome, json_request, unit_random, ApiError, Backoff, Outbox, RequestId, Secret, Ticket};
use rand_core::SeedableRng;

/// A uniform number in [0, 1) from the injected generator.
use serde_json::json;

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
    pub jwt: Secret<String>,
    pub expires_at_ms: u64,
    /// Not used after this: a request must not arrive with a token about to expire.
    pub usable_until_ms: u64,
    pub generation: u64,
}

/// What to do once the host acknowledges a persist.
enum Then {
    Register,
    Verify { challenge: String, how: AuthHow },
    Refresh,
    Adopt { jwt: Secret<String>, how: AuthHow },
}

enum Op {
    Idle,
    Persisting { ticket: Ticket, then: Then },
    Register { req: RequestId },
    Challenge { req: RequestId },
    Verify { req: RequestId, how: AuthHow },
    Refresh { req: RequestId },
    /// Backing off after a transient failure.
    Waiting { until_ms: u64 },
    /// Needs the human (bad key, unknown agent…): nothing more happens until `login`.
    Failed,
}

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
    rng: rand_chacha::ChaCha20Rng,
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

fn validate_api_base(base: &str) -> Result<String> {
    let trimmed = base.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed.parse().map_err(|_| Error::invalid_argument(format!("invalid API base URL: {trimmed}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.host().is_some() => Ok(trimmed.to_owned()),
        _ => Err(Error::invalid_argument(format!("API base must be an http(s) URL: {trimmed}"))),
    }
}

/// Is this error body one that says "this credential is no good" rather than "try later"?
pub fn is_credential_rejection(e: &ApiError) -> bool {
    e.status == 401 && ["TOKEN_REVOKED", "INVALID_CREDENTIALS", "TOKEN_EXPIRED"].iter().any(|c| e.code_is(c))
}

fn is_transient(e: &ApiError) -> bool {
    e.status == 0 || e.status == 429 || e.status >= 500
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
            rng: rand_chacha::ChaCha20Rng::from_seed(seed),
        })
    }

    pub fn api_base(&self) -> &str {
        &self.api_base
    }
    pub fn agent_id(&self) -> Option<&str> {
        self.creds.as_ref().and_then(|c| c.agent_id.as_deref())
    }
    pub fn username(&self) -> Option<&str> {
        self.creds.as_ref().map(|c| c.username.as_str())
    }
    pub fn is_registered(&self) -> bool {
        self.identity.is_some() || self.creds.is_some()
    }
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
                None => Identity::generate(&mut self.rng)?,
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
        self.persist(Then::Register, out);
        let _ = now_ms;
        Ok(())
    }

    /// Make sure a usable token is, or will be, available; restart after a fatal failure.
    pub fn login<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) -> Result<()> {
        if !self.is_registered() {
            return Err(Error::new(ErrorCode::NotRegistered, "no agent identity: register first or load credentials"));
        }
        if self.is_failed() {
            self.op = Op::Idle;
            self.attempt = 0;
        }
        self.ensure(now_ms, out);
        Ok(())
    }

    /// Rotate now, whatever the schedule says (no-op while another auth step runs).
    pub fn force_refresh<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) -> Result<()> {
        if !self.is_registered() {
            return Err(Error::new(ErrorCode::NotRegistered, "no agent identity: register first or load credentials"));
        }
        if self.is_failed() {
            self.op = Op::Idle;
        }
        if matches!(self.op, Op::Idle) {
            self.start_auth(now_ms, out);
        }
        Ok(())
    }

    /// Start obtaining a token if none is usable and nothing is under way.
    pub fn ensure<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) {
        if self.token(now_ms).is_none() && matches!(self.op, Op::Idle) && self.is_registered() {
            self.start_auth(now_ms, out);
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

    pub fn owns_request(&self, id: RequestId) -> bool {
        matches!(self.op, Op::Register { req } | Op::Challenge { req } | Op::Verify { req, .. } | Op::Refresh { req } if req == id)
    }

    pub fn handle_timeout<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) {
        match self.op {
            Op::Waiting { until_ms } if now_ms >= until_ms => {
                self.op = Op::Idle;
                self.start_auth(now_ms, out);
            }
            Op::Idle if self.refresh_at_ms.is_some_and(|at| now_ms >= at) => {
                self.refresh_at_ms = None;
                self.start_auth(now_ms, out);
            }
            _ => {}
        }
    }

    /// The host stored what we asked. Stale tickets (already superseded) are accepted silently.
    pub fn handle_persisted<E: From<AuthEvent>>(&mut self, ticket: Ticket, now_ms: u64, out: &mut Outbox<E>) -> Result<()> {
        match std::mem::replace(&mut self.op, Op::Idle) {
            Op::Persisting { ticket: t, then } if t == ticket => {
                self.after_persist(then, now_ms, out);
                Ok(())
            }
            other => {
                self.op = other;
                if ticket != 0 && ticket <= self.last_ticket {
                    Ok(())
                } else {
                    Err(Error::new(ErrorCode::UnknownId, format!("no persist request with ticket {ticket}")))
                }
            }
        }
    }

    /// A response (or a transport failure, as `Err`) for one of our requests.
    pub fn handle_result<E: From<AuthEvent>>(&mut self, id: RequestId, result: std::result::Result<http::Response<Vec<u8>>, ApiError>, now_ms: u64, out: &mut Outbox<E>) {
        let op = std::mem::replace(&mut self.op, Op::Idle);
        let parsed = json_outcome(result, ApiError::from_moltchats);
        match op {
            Op::Register { req } if req == id => self.on_register(parsed, now_ms, out),
            Op::Challenge { req } if req == id => self.on_challenge(parsed, now_ms, out),
            Op::Verify { req, how } if req == id => self.on_verify(parsed, how, now_ms, out),
            Op::Refresh { req } if req == id => self.on_refresh(parsed, now_ms, out),
            other => self.op = other,
        }
    }

    // ---- transitions ----------------------------------------------------------------

    fn start_auth<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) {
        let Some(creds) = self.creds.as_mut() else { return };
        if creds.agent_id.is_none() {
            // A key was saved but registration never completed: register it again.
            self.send_register(now_ms, out);
        } else if creds.refresh_token.is_some() && !creds.refresh_in_flight {
            creds.refresh_in_flight = true;
            self.persist(Then::Refresh, out);
        } else {
            self.send_challenge(now_ms, out);
        }
    }

    fn after_persist<E: From<AuthEvent>>(&mut self, then: Then, now_ms: u64, out: &mut Outbox<E>) {
        match then {
            Then::Register => self.send_register(now_ms, out),
            Then::Verify { challenge, how } => self.send_verify(&challenge, how, now_ms, out),
            Then::Refresh => {
                let token = self.creds.as_ref().and_then(|c| c.refresh_token.clone());
                match token {
                    Some(token) => {
                        let body = json!({ "refreshToken": token.expose() });
                        self.send(Op::Refresh { req: 0 }, "/auth/refresh", body, now_ms, out);
                    }
                    None => self.send_challenge(now_ms, out),
                }
            }
            Then::Adopt { jwt, how } => self.adopt(jwt, how, now_ms, out),
        }
    }

    fn send_register<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) {
        self.load_identity();
        let (Some(creds), Some(identity)) = (self.creds.as_ref(), self.identity.as_ref()) else { return };
        let public_key = match identity.public_pem() {
            Ok(pem) => pem,
            Err(e) => return self.fail(ApiError::transport(e.message), out),
        };
        let body = json!({ "username": creds.username, "publicKey": public_key, "capabilities": ["chat"] });
        self.send(Op::Register { req: 0 }, "/agents/register", body, now_ms, out);
    }

    fn send_challenge<E: From<AuthEvent>>(&mut self, now_ms: u64, out: &mut Outbox<E>) {
        let Some(agent_id) = self.agent_id().map(str::to_owned) else { return };
        self.send(Op::Challenge { req: 0 }, "/auth/challenge", json!({ "agentId": agent_id }), now_ms, out);
    }

    fn send_verify<E: From<AuthEvent>>(&mut self, challenge: &str, how: AuthHow, now_ms: u64, out: &mut Outbox<E>) {
        self.load_identity();
        let (Some(agent_id), Some(identity)) = (self.agent_id(), self.identity.as_ref()) else { return };
        let body = json!({ "agentId": agent_id, "signedChallenge": identity.sign_challenge(challenge) });
        self.send(Op::Verify { req: 0, how }, "/agents/verify", body, now_ms, out);
    }

    /// Queue a POST and enter `op` with the request id filled in.
    fn send<E: From<AuthEvent>>(&mut self, op: Op, path: &str, body: serde_json::Value, now_ms: u64, out: &mut Outbox<E>) {
        let url = format!("{}{path}", self.api_base);
        let request = match json_request(http::Method::POST, &url, None, Some(&body)) {
            Ok(r) => r,
            Err(e) => return self.fail(ApiError::transport(e.message), out),
        };
        let req = out.http(request);
        self.op = match op {
            Op::Register { .. } => Op::Register { req },
            Op::Challenge { .. } => Op::Challenge { req },
            Op::Verify { how, .. } => Op::Verify { req, how },
            Op::Refresh { .. } => Op::Refresh { req },
            other => other,
        };
        let _ = now_ms;
    }

    fn persist<E: From<AuthEvent>>(&mut self, then: Then, out: &mut Outbox<E>) {
        let bytes = self.creds.as_ref().expect("persist needs credentials").to_json();
        let ticket = out.persist(bytes);
        self.last_ticket = ticket;
        self.op = Op::Persisting { ticket, then };
    }

    fn on_register<E: From<AuthEvent>>(&mut self, parsed: std::result::Result<(u16, serde_json::Value), ApiError>, now_ms: u64, out: &mut Outbox<E>) {
        match parsed {
            Ok((_, body)) => {
                let (Some(agent_id), Some(challenge)) = (str_field(&body, "agentId"), str_field(&body, "challenge")) else {
                    return self.retry_later(ApiError::transport("register response lacks agentId or challenge"), now_ms, out);
                };
                let creds = self.creds.as_mut().expect("registering needs credentials");
                creds.agent_id = Some(agent_id.clone());
                out.event(AuthEvent::Registered { agent_id, username: creds.username.clone() });
                self.persist(Then::Verify { challenge, how: AuthHow::Register }, out);
            }
            Err(e) if is_transient(&e) => self.retry_later(e, now_ms, out),
            Err(e) => self.fail(e, out),
        }
    }

    fn on_challenge<E: From<AuthEvent>>(&mut self, parsed: std::result::Result<(u16, serde_json::Value), ApiError>, now_ms: u64, out: &mut Outbox<E>) {
        match parsed {
            Ok((_, body)) => match str_field(&body, "challenge") {
                Some(challenge) => self.send_verify(&challenge, AuthHow::Challenge, now_ms, out),
                None => self.retry_later(ApiError::transport("challenge response lacks challenge"), now_ms, out),
            },
            Err(e) if is_transient(&e) => self.retry_later(e, now_ms, out),
            Err(e) => self.fail(e, out),
        }
    }

    fn on_verify<E: From<AuthEvent>>(&mut self, parsed: std::result::Result<(u16, serde_json::Value), ApiError>, how: AuthHow, now_ms: u64, out: &mut Outbox<E>) {
        match parsed {
            Ok((_, body)) => self.store_pair(&body, how, now_ms, out),
            // The challenge died (used or expired): ask for a fresh one, with backoff so a
            // server that keeps saying so cannot make us loop.
            Err(e) if e.code_is("CHALLENGE_EXPIRED") => {
                self.attempt += 1;
                if self.attempt > 3 { self.retry_later(e, now_ms, out) } else { self.send_challenge(now_ms, out) }
            }
            Err(e) if is_transient(&e) => self.retry_later(e, now_ms, out),
            Err(e) => self.fail(e, out),
        }
    }

    fn on_refresh<E: From<AuthEvent>>(&mut self, parsed: std::result::Result<(u16, serde_json::Value), ApiError>, now_ms: u64, out: &mut Outbox<E>) {
        match parsed {
            Ok((_, body)) if str_field(&body, "token").is_some() && str_field(&body, "refreshToken").is_some() => {
                self.store_pair(&body, AuthHow::Refresh, now_ms, out)
            }
            result => {
                // Spent, revoked, expired, or unknown outcome: the refresh token may be gone.
                // Never send it again; the private key always works.
                let reason = match result {
                    Err(e) => e.to_string(),
                    Ok(_) => "refresh response lacks token or refreshToken".to_owned(),
                };
                if let Some(creds) = self.creds.as_mut() {
                    creds.refresh_token = None;
                }
                out.event(AuthEvent::Reauthenticating { reason });
                self.send_challenge(now_ms, out);
            }
        }
    }

    /// Save a new `{token, refreshToken}` pair; the token is used once the host acknowledges.
    fn store_pair<E: From<AuthEvent>>(&mut self, body: &serde_json::Value, how: AuthHow, now_ms: u64, out: &mut Outbox<E>) {
        let (Some(jwt), Some(refresh)) = (str_field(body, "token"), str_field(body, "refreshToken")) else {
            return self.retry_later(ApiError::transport("token response lacks token or refreshToken"), now_ms, out);
        };
        if how == AuthHow::Refresh {
            // The server revoked the access token minted with the spent refresh token.
            self.token = None;
        }
        let creds = self.creds.as_mut().expect("a token pair needs credentials");
        creds.refresh_token = Some(Secret::new(refresh));
        creds.refresh_in_flight = false;
        self.persist(Then::Adopt { jwt: Secret::new(jwt), how }, out);
    }

    fn adopt<E: From<AuthEvent>>(&mut self, jwt: Secret<String>, how: AuthHow, now_ms: u64, out: &mut Outbox<E>) {
        // Lifetime from the token's own iat/exp, measured from our clock (immune to skew).
        let lifetime_ms = match jwt::read_times(jwt.expose()) {
            Some(t) => t.exp.saturating_sub(t.iat.unwrap_or(now_ms / 1000)).saturating_mul(1000),
            None => 3_600_000,
        }
        .max(1_000);
        let jitter = (unit_random(&mut self.rng) * 2.0 - 1.0) * self.policy.jitter_fraction;
        let refresh_after = (lifetime_ms as f64 * (self.policy.at_fraction + jitter)) as u64;
        self.generation += 1;
        let expires_at_ms = now_ms + lifetime_ms;
        let usable_for = lifetime_ms - self.policy.expiry_margin_ms.min(lifetime_ms / 10);
        let refresh_at_ms = now_ms + refresh_after.clamp(usable_for / 2, usable_for);
        self.token = Some(AccessToken { jwt, expires_at_ms, usable_until_ms: now_ms + usable_for, generation: self.generation });
        self.refresh_at_ms = Some(refresh_at_ms);
        self.attempt = 0;
        self.op = Op::Idle;
        self.identity = None;
        out.event(AuthEvent::Authenticated {
            agent_id: self.agent_id().unwrap_or_default().to_owned(),
            username: self.username().unwrap_or_default().to_owned(),
            how,
            expires_at_ms,
            refresh_at_ms,
        });
    }

    /// Parse the saved key again if it was dropped after the last login.
    fn load_identity(&mut self) {
        if self.identity.is_none() {
            self.identity = self.creds.as_ref().and_then(|c| Identity::from_pem(c.private_key.expose()).ok());
        }
    }

    fn retry_later<E: From<AuthEvent>>(&mut self, error: ApiError, now_ms: u64, out: &mut Outbox<E>) {
        self.attempt = self.attempt.saturating_add(1);
        let backoff = Backoff { base_ms: self.policy.backoff_base_ms, cap_ms: self.policy.backoff_cap_ms };
        let until_ms = now_ms + backoff.delay_ms(self.attempt, &mut self.rng);
        self.op = Op::Waiting { until_ms };
        out.event(AuthEvent::AuthRetrying { attempt: self.attempt, retry_at_ms: until_ms, error });
    }

    fn fail<E: From<AuthEvent>>(&mut self, error: ApiError, out: &mut Outbox<E>) {
        self.op = Op::Failed;
        out.event(AuthEvent::AuthFailed { error });
    }
}

fn str_field(body: &serde_json::Value, key: &str) -> Option<String> {
    body.get(key).and_then(|v| v.as_str()).filter(|s| !s.is_empty() && s.len() <= 16 * 1024).map(str::to_owned)
}
