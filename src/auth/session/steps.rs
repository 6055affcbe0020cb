//! Performing a transition's effect: building the auth requests, saving credentials, reading
//! a token's lifetime, backing off. Each step returns the operation the session enters.

use super::machine::{Effect, Op, Then, str_field};
use super::AuthSession;
use crate::auth::{AccessToken, AuthEvent, AuthHow, Identity};
use crate::io::jwt;
use crate::io::{json_request, unit_random, ApiError, Backoff, Outbox, Secret};
use serde_json::json;

impl AuthSession {
    /// Perform `effect` and return the operation it leads to.
    pub(super) fn apply<E: From<AuthEvent>>(&mut self, effect: Effect, now_ms: u64, out: &mut Outbox<E>) -> Op {
        match effect {
            Effect::Stay(op) => op,
            Effect::Reset { forget_attempts } => {
                if forget_attempts {
                    self.attempt = 0;
                }
                Op::Idle
            }
            Effect::RefreshDue => {
                self.refresh_at_ms = None;
                self.begin(out)
            }
            Effect::Begin => self.begin(out),
            Effect::Persist(then) => self.persist(then, out),
            Effect::Continue(then) => match then {
                Then::Register => self.send_register(out),
                Then::Verify { challenge, how } => self.send_verify(&challenge, how, out),
                Then::Refresh => match self.creds.as_ref().and_then(|c| c.refresh_token.clone()) {
                    Some(token) => self.send(Post::Refresh, json!({ "refreshToken": token.expose() }), out),
                    None => self.send_challenge(out),
                },
                Then::Adopt { jwt, how } => self.adopt(jwt, how, now_ms, out),
            },
            Effect::SendVerify { challenge, how } => self.send_verify(&challenge, how, out),
            Effect::Registered { agent_id, challenge } => {
                let creds = self.creds.as_mut().expect("registering needs credentials");
                creds.agent_id = Some(agent_id.clone());
                out.event(AuthEvent::Registered { agent_id, username: creds.username.clone() });
                self.persist(Then::Verify { challenge, how: AuthHow::Register }, out)
            }
            Effect::StorePair { body, how } => self.store_pair(&body, how, now_ms, out),
            Effect::Reauthenticate { reason } => {
                if let Some(creds) = self.creds.as_mut() {
                    creds.refresh_token = None;
                }
                out.event(AuthEvent::Reauthenticating { reason });
                self.send_challenge(out)
            }
            Effect::ChallengeAgain(e) => {
                // Backoff after three, so a server that keeps saying so cannot make us loop.
                self.attempt += 1;
                if self.attempt > 3 { self.retry_later(e, now_ms, out) } else { self.send_challenge(out) }
            }
            Effect::Retry(e) => self.retry_later(e, now_ms, out),
            Effect::Fail(e) => self.fail(e, out),
        }
    }

    /// Register a saved key that never was, refresh with a usable refresh token (marking it
    /// in flight first), else re-authenticate with the key.
    fn begin<E: From<AuthEvent>>(&mut self, out: &mut Outbox<E>) -> Op {
        let Some(creds) = self.creds.as_mut() else { return Op::Idle };
        if creds.agent_id.is_none() {
            self.send_register(out)
        } else if creds.refresh_token.is_some() && !creds.refresh_in_flight {
            creds.refresh_in_flight = true;
            self.persist(Then::Refresh, out)
        } else {
            self.send_challenge(out)
        }
    }

    fn send_register<E: From<AuthEvent>>(&mut self, out: &mut Outbox<E>) -> Op {
        self.load_identity();
        let (Some(creds), Some(identity)) = (self.creds.as_ref(), self.identity.as_ref()) else { return Op::Idle };
        let public_key = match identity.public_pem() {
            Ok(pem) => pem,
            Err(e) => return self.fail(ApiError::transport(e.message), out),
        };
        let body = json!({ "username": creds.username, "publicKey": public_key, "capabilities": ["chat"] });
        self.send(Post::Register, body, out)
    }

    fn send_challenge<E: From<AuthEvent>>(&mut self, out: &mut Outbox<E>) -> Op {
        let Some(agent_id) = self.agent_id().map(str::to_owned) else { return Op::Idle };
        self.send(Post::Challenge, json!({ "agentId": agent_id }), out)
    }

    fn send_verify<E: From<AuthEvent>>(&mut self, challenge: &str, how: AuthHow, out: &mut Outbox<E>) -> Op {
        self.load_identity();
        let (Some(agent_id), Some(identity)) = (self.agent_id(), self.identity.as_ref()) else { return Op::Idle };
        let body = json!({ "agentId": agent_id, "signedChallenge": identity.sign_challenge(challenge) });
        self.send(Post::Verify(how), body, out)
    }

    /// Queue the POST and return the operation waiting for its answer.
    fn send<E: From<AuthEvent>>(&mut self, post: Post, body: serde_json::Value, out: &mut Outbox<E>) -> Op {
        let path = match post {
            Post::Register => "/agents/register",
            Post::Challenge => "/auth/challenge",
            Post::Verify(_) => "/agents/verify",
            Post::Refresh => "/auth/refresh",
        };
        let url = format!("{}{path}", self.api_base);
        let request = match json_request(http::Method::POST, &url, None, Some(&body)) {
            Ok(r) => r,
            Err(e) => return self.fail(ApiError::transport(e.message), out),
        };
        let req = out.http(request);
        match post {
            Post::Register => Op::Register { req },
            Post::Challenge => Op::Challenge { req },
            Post::Verify(how) => Op::Verify { req, how },
            Post::Refresh => Op::Refresh { req },
        }
    }

    fn persist<E: From<AuthEvent>>(&mut self, then: Then, out: &mut Outbox<E>) -> Op {
        let bytes = self.creds.as_ref().expect("persist needs credentials").to_json();
        let ticket = out.persist(bytes);
        self.last_ticket = ticket;
        Op::Persisting { ticket, then }
    }

    /// Save a new `{token, refreshToken}` pair; the token is used once the host acknowledges.
    fn store_pair<E: From<AuthEvent>>(&mut self, body: &serde_json::Value, how: AuthHow, now_ms: u64, out: &mut Outbox<E>) -> Op {
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
        self.persist(Then::Adopt { jwt: Secret::new(jwt), how }, out)
    }

    fn adopt<E: From<AuthEvent>>(&mut self, jwt: Secret<String>, how: AuthHow, now_ms: u64, out: &mut Outbox<E>) -> Op {
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
        self.identity = None;
        out.event(AuthEvent::Authenticated {
            agent_id: self.agent_id().unwrap_or_default().to_owned(),
            username: self.username().unwrap_or_default().to_owned(),
            how,
            expires_at_ms,
            refresh_at_ms,
        });
        Op::Idle
    }

    /// Parse the saved key again if it was dropped after the last login.
    fn load_identity(&mut self) {
        if self.identity.is_none() {
            self.identity = self.creds.as_ref().and_then(|c| Identity::from_pem(c.private_key.expose()).ok());
        }
    }

    fn retry_later<E: From<AuthEvent>>(&mut self, error: ApiError, now_ms: u64, out: &mut Outbox<E>) -> Op {
        self.attempt = self.attempt.saturating_add(1);
        let backoff = Backoff { base_ms: self.policy.backoff_base_ms, cap_ms: self.policy.backoff_cap_ms };
        let until_ms = now_ms + backoff.delay_ms(self.attempt, &mut self.rng);
        out.event(AuthEvent::AuthRetrying { attempt: self.attempt, retry_at_ms: until_ms, error });
        Op::Waiting { until_ms }
    }

    fn fail<E: From<AuthEvent>>(&mut self, error: ApiError, out: &mut Outbox<E>) -> Op {
        out.event(AuthEvent::AuthFailed { error });
        Op::Failed
    }
}

/// The four requests of the auth flow.
enum Post {
    Register,
    Challenge,
    Verify(AuthHow),
    Refresh,
}
