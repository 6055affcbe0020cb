//! `moltlink-sandbox`: a local emulator of the services moltlink talks to.
//!
//! The core is sans-IO: [`Sandbox::handle`] takes an [`http::Request`] plus the current time in
//! Unix epoch milliseconds and returns an [`http::Response`]. Time is injected so tests can
//! simulate days in microseconds; randomness comes from a seeded ChaCha20 so runs replay.
//! [`serve`] wraps the same core in a small tiny_http server on a real clock.
//!
//! Routing is by platform prefix on the request path:
//!
//! | prefix | module | state |
//! |---|---|---|
//! | `/moltchats/api/v1` | [`moltchats`] | every route of the recorded corpus (`tests/wire/moltchats`, checked by `tests/conformance.rs`) |
//! | `/moltchats/ws` | [`moltchats::gateway`] | WebSocket gateway (served by `ws_front.rs`), ops as recorded |
//! | `/moltchats/health`, `/moltchats/*.md` | [`moltchats::meta`] | health check and skill-file stand-ins |
//! | `/moltbook/api/v1` | [`moltbook`] | DMs (PROTOCOL.md §2); admin routes at `/moltbook/_sandbox`, bare-host 301 at `/moltbook-bare/api/v1` |
//! | `/moltspaces/v1` | [`moltspaces`] | rooms, tokens, registration (PROTOCOL.md §3); admin at `/moltspaces/_sandbox` |
//! | `/openai`, `/elevenlabs` | [`speech`] | STT/TTS stand-ins; admin at `/speech/_sandbox` |
//!
//! To add a platform: write `src/<platform>.rs` with a `State` and a
//! `fn handle(ctx: &mut Ctx, state: &mut State, req: &Request<Vec<u8>>, sub_path: &str) -> Response<Vec<u8>>`,
//! add its `State` to [`SandboxState`] and a branch in [`Sandbox::handle`].

pub mod common;
pub mod moltbook;
pub mod moltchats;
pub mod moltspaces;
pub mod speech;
mod server;
mod ws_front;

use std::sync::{Mutex, MutexGuard};

use http::{Request, Response};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub use server::{BaseUrls, MAX_BODY_BYTES, Server, serve, serve_sandbox};

/// Path prefix of the MoltChats REST API (stands for `https://moltchats.com/api/v1`).
pub const MOLTCHATS_API_PREFIX: &str = "/moltchats/api/v1";
/// Path of the MoltChats WebSocket (stands for `wss://moltchats.com/ws`).
pub const MOLTCHATS_WS_PATH: &str = "/moltchats/ws";
/// Sandbox-only admin route: `POST` a JSON object of [`moltchats::social::Faults`] fields
/// (camelCase) to flip fault switches over HTTP; answers with the full fault set.
pub const MOLTCHATS_FAULTS_PATH: &str = "/_sandbox/moltchats/faults";
/// `GET` here: the counters tests assert on (`{"rateLimited": n, "messagesStored": n}`).
pub const MOLTCHATS_STATS_PATH: &str = "/_sandbox/moltchats/stats";
/// Path prefix of the Moltbook API (stands for `https://www.moltbook.com/api/v1`).
pub const MOLTBOOK_API_PREFIX: &str = "/moltbook/api/v1";
/// Path prefix of the Moltspaces API (stands for `https://api.moltspaces.com/v1`).
pub const MOLTSPACES_API_PREFIX: &str = "/moltspaces/v1";

/// Sandbox configuration. Construct with `SandboxConfig { seed: 7, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// MoltChats access-token (JWT) lifetime in seconds. Default 14 400 (4 h).
    pub access_token_lifetime_s: u64,
    /// MoltChats refresh-token lifetime in seconds. Default 30 days.
    pub refresh_token_lifetime_s: u64,
    /// MoltChats challenge lifetime in seconds. Default 300.
    pub challenge_lifetime_s: u64,
    /// Seed of the ChaCha20 generator behind every id, challenge and token.
    pub seed: u64,
    /// HS256 secret of MoltChats access tokens.
    pub jwt_secret: Vec<u8>,
    /// Registrations allowed per fixed hour window (all callers share one bucket, like one IP;
    /// failed attempts count). `None` (default) = unlimited. The real server uses `Some(5)`.
    pub register_limit_per_hour: Option<u32>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            access_token_lifetime_s: 14_400,
            refresh_token_lifetime_s: 30 * 24 * 3600,
            challenge_lifetime_s: 300,
            seed: 0,
            jwt_secret: b"moltlink-sandbox-jwt-secret".to_vec(),
            register_limit_per_hour: None,
        }
    }
}

/// Counters for test assertions. Read with [`Sandbox::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every request handled (any platform, any outcome).
    pub requests: u64,
    /// `POST /agents/register` calls (any outcome).
    pub register_calls: u64,
    /// `POST /agents/verify` calls (any outcome).
    pub verify_calls: u64,
    /// `POST /auth/challenge` calls (any outcome).
    pub challenge_calls: u64,
    /// `POST /auth/refresh` calls (any outcome).
    pub refresh_calls: u64,
    /// `POST /auth/refresh` rejected because the refresh token was already rotated/revoked.
    pub refresh_reuse_rejections: u64,
    /// Bearer-protected requests rejected with 401 (any code).
    pub bearer_rejections: u64,
}

/// Cross-platform context handed to every platform handler.
pub struct Ctx {
    pub config: SandboxConfig,
    pub rng: ChaCha20Rng,
    pub stats: Stats,
    /// Time of the request being handled, Unix epoch milliseconds.
    pub now_ms: u64,
}

/// Entire mutable state of the sandbox.
pub struct SandboxState {
    pub ctx: Ctx,
    pub moltchats: moltchats::State,
    pub moltbook: moltbook::State,
    pub moltspaces: moltspaces::State,
    pub speech: speech::State,
}

/// The emulator. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Sandbox {
    state: Mutex<SandboxState>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new(SandboxConfig::default())
    }
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let rng = ChaCha20Rng::seed_from_u64(config.seed);
        Sandbox {
            state: Mutex::new(SandboxState {
                ctx: Ctx {
                    config,
                    rng,
                    stats: Stats::default(),
                    now_ms: 0,
                },
                moltchats: moltchats::State::default(),
                moltbook: moltbook::State::default(),
                moltspaces: moltspaces::State::default(),
                speech: speech::State::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SandboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handle one request at time `now_ms` (Unix epoch milliseconds).
    pub fn handle(&self, req: Request<Vec<u8>>, now_ms: u64) -> Response<Vec<u8>> {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.ctx.now_ms = now_ms;
        st.ctx.stats.requests += 1;
        let path = req.uri().path().to_owned();
        if let Some(sub) = strip_prefix(&path, MOLTCHATS_API_PREFIX) {
            return moltchats::handle(&mut st.ctx, &mut st.moltchats, &req, sub);
        }
        if let Some(resp) = moltchats::meta(&st.ctx, &req) {
            return resp;
        }
        if let Some(sub) = strip_prefix(&path, MOLTBOOK_API_PREFIX) {
            return moltbook::handle(&mut st.ctx, &mut st.moltbook, &req, sub);
        }
        if let Some(sub) = strip_prefix(&path, moltbook::ADMIN_PREFIX) {
            return moltbook::handle_admin(&mut st.ctx, &mut st.moltbook, &req, sub);
        }
        if let Some(sub) = strip_prefix(&path, moltbook::BARE_PREFIX) {
            return moltbook::handle_bare(&mut st.moltbook, &req, sub);
        }
        if path == MOLTCHATS_FAULTS_PATH && req.method() == http::Method::POST {
            return moltchats_set_faults(st, req.body());
        }
        if path == MOLTCHATS_STATS_PATH && req.method() == http::Method::GET {
            let social = &st.moltchats.social;
            return common::json_response(200, &serde_json::json!({"rateLimited": social.rate_limited, "messagesStored": social.messages_stored}));
        }
        if let Some(sub) = strip_prefix(&path, MOLTSPACES_API_PREFIX) {
            return moltspaces::handle(&mut st.ctx, &mut st.moltspaces, &req, sub);
        }
        if let Some(sub) = strip_prefix(&path, moltspaces::ADMIN_PREFIX) {
            return moltspaces::handle_admin(&mut st.ctx, &mut st.moltspaces, &req, sub);
        }
        if let Some(sub) = strip_prefix(&path, speech::OPENAI_PREFIX) {
            return speech::handle_openai(&mut st.speech, &req, sub);
        }
        if let Some(sub) = strip_prefix(&path, speech::ELEVENLABS_PREFIX) {
            return speech::handle_elevenlabs(&mut st.speech, &req, sub);
        }
        if let Some(sub) = strip_prefix(&path, speech::ADMIN_PREFIX) {
            return speech::handle_admin(&mut st.speech, &req, sub);
        }
        common::route_not_found(req.method(), &common::path_and_query(&req))
    }

    /// Run `f` with exclusive access to the whole state (for tests and admin hooks).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SandboxState) -> R) -> R {
        f(&mut self.lock())
    }

    /// Snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.lock().ctx.stats.clone()
    }

    /// Zero the counters.
    pub fn reset_stats(&self) {
        self.lock().ctx.stats = Stats::default();
    }

    /// Moltbook: create an agent owned by the human with X handle `owner`; returns its API key.
    pub fn moltbook_add_agent(&self, name: &str, owner: &str) -> Result<String, String> {
        let st = &mut *self.lock();
        st.moltbook.add_agent(&mut st.ctx, name, owner, &format!("{name}, a sandbox agent"))
    }

    /// Moltbook: the target's owner approves (or rejects, optionally blocking) a pending request.
    pub fn moltbook_owner_decide(&self, conversation_id: &str, approve: bool, block: bool) -> Result<(), String> {
        self.lock().moltbook.owner_decide(conversation_id, approve, block)
    }

    /// Moltbook: `blocker`'s owner blocks `blocked` (closes their conversation, no new requests).
    pub fn moltbook_owner_block(&self, blocker: &str, blocked: &str) -> Result<(), String> {
        self.lock().moltbook.owner_block(blocker, blocked)
    }

    /// Moltbook: the next `count` API calls of agent `name` are answered 429.
    pub fn moltbook_rate_limit_next(&self, name: &str, count: u32) {
        self.lock().moltbook.throttle.insert(name.to_ascii_lowercase(), count);
    }

    /// Moltbook: switch the response shapes (documented or drifted).
    pub fn moltbook_set_shape(&self, shape: moltbook::Shape) {
        self.lock().moltbook.shape = shape;
    }

    /// Moltbook: snapshot of the DM counters.
    pub fn moltbook_stats(&self) -> moltbook::Stats {
        self.lock().moltbook.stats.clone()
    }

    /// MoltChats: agent id of a username (case-insensitive), if registered.
    pub fn moltchats_agent_id(&self, username: &str) -> Option<String> {
        self.lock().moltchats.auth.agent_id_by_username(username)
    }

    /// MoltChats: revoke every live refresh token of an agent (and the access tokens minted with
    /// them). Returns how many refresh tokens were revoked.
    pub fn revoke_all_refresh_tokens_of(&self, agent_id: &str) -> usize {
        self.lock().moltchats.auth.revoke_all_of(agent_id)
    }

    /// MoltChats: make a refresh token expired now (it then answers 401 TOKEN_EXPIRED).
    /// Returns false if the token is unknown.
    pub fn expire_refresh_token(&self, refresh_token: &str) -> bool {
        self.lock().moltchats.auth.expire_refresh(refresh_token)
    }

    /// MoltChats WS: open a session (`?token=` value, if any) at `now_ms`.
    pub fn ws_open(&self, token: Option<&str>, now_ms: u64) -> moltchats::gateway::SessionId {
        let mut g = self.lock();
        let st = &mut *g;
        st.ctx.now_ms = now_ms;
        st.moltchats.gateway.open(&st.ctx, &mut st.moltchats.auth, token)
    }

    /// MoltChats WS: a text frame from the client of session `id`.
    pub fn ws_receive(&self, id: moltchats::gateway::SessionId, text: &str, now_ms: u64) {
        let mut g = self.lock();
        let st = &mut *g;
        st.ctx.now_ms = now_ms;
        let m = &mut st.moltchats;
        m.gateway.receive(&mut st.ctx, &mut m.auth, &mut m.social, id, text);
    }

    /// MoltChats WS: time passes (idle timeouts, revoked tokens) at `now_ms`.
    pub fn ws_tick(&self, now_ms: u64) {
        let mut g = self.lock();
        let st = &mut *g;
        st.ctx.now_ms = now_ms;
        st.moltchats.gateway.tick(&st.ctx, &st.moltchats.auth);
    }

    /// MoltChats WS: frames (and a close) queued for session `id`.
    pub fn ws_drain(&self, id: moltchats::gateway::SessionId) -> Vec<moltchats::gateway::WsOut> {
        self.lock().moltchats.gateway.drain(id)
    }

    /// MoltChats WS: the client side of session `id` is gone.
    pub fn ws_closed(&self, id: moltchats::gateway::SessionId) {
        self.lock().moltchats.gateway.closed(id)
    }

    /// MoltChats WS: the server closes session `id` with `code` (fault hook).
    pub fn ws_close(&self, id: moltchats::gateway::SessionId, code: u16, reason: &str) {
        self.lock().moltchats.gateway.close(id, code, reason)
    }

    /// MoltChats test fixture: give an agent a trust row (`tier` like `trusted`, `quarantined`),
    /// as the recording did directly in Postgres. In-process only, not an HTTP route.
    pub fn moltchats_set_trust(&self, username: &str, tier: &str, score: f64) -> bool {
        let st = &mut *self.lock();
        let now = st.ctx.now_ms;
        let Some(id) = st.moltchats.auth.agent_id_by_username(username) else { return false };
        let agent = st.moltchats.auth.agents.get_mut(&id).expect("indexed agent");
        agent.trust = Some(moltchats::auth::Trust { tier: tier.to_owned(), score, computed_at_ms: now });
        true
    }

    /// MoltChats test fixture: a trust challenge against `suspect` in `channel_id` with one
    /// `ai` vote by `voter` (the recording inserted one in Postgres). Returns its id.
    pub fn moltchats_add_trust_challenge(&self, suspect: &str, channel_id: &str, voter: &str) -> Option<String> {
        let st = &mut *self.lock();
        let auth = &st.moltchats.auth;
        let (suspect, voter) = (auth.agent_id_by_username(suspect)?, auth.agent_id_by_username(voter)?);
        let id = common::random_uuid(&mut st.ctx.rng);
        let now = st.ctx.now_ms;
        st.moltchats.social.challenges.push(moltchats::social::TrustChallenge {
            id: id.clone(),
            suspect,
            channel_id: channel_id.to_owned(),
            created_at_ms: now,
            votes: vec![(voter, "ai".to_owned(), now)],
        });
        Some(id)
    }

    /// MoltChats test fixture: a new text channel in the seed server; returns its id.
    pub fn moltchats_add_seed_channel(&self, name: &str) -> String {
        let st = &mut *self.lock();
        st.moltchats.social.add_seed_channel(&mut st.ctx, name)
    }

    /// MoltChats test fixture: forget the registration rate-limit window (the recording
    /// deleted the Redis key between registration batches).
    pub fn moltchats_reset_register_limit(&self) {
        self.lock().moltchats.auth.reset_register_window();
    }

    /// MoltChats: revoke one access token by its `jti` (requests with it get 401 TOKEN_REVOKED).
    pub fn revoke_access_token_jti(&self, jti: &str) {
        self.lock().moltchats.auth.revoke_jti(jti)
    }
}

fn moltchats_set_faults(st: &mut SandboxState, body: &[u8]) -> Response<Vec<u8>> {
    let current = serde_json::to_value(&st.moltchats.social.faults).expect("faults serialise");
    let patch: serde_json::Value = match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(p)) => serde_json::Value::Object(p),
        _ => return common::ApiError::validation("body must be a JSON object of fault fields").into_response(),
    };
    let mut merged = current;
    for (k, v) in patch.as_object().expect("checked above") {
        merged[k] = v.clone();
    }
    match serde_json::from_value::<moltchats::social::Faults>(merged) {
        Ok(f) => {
            st.moltchats.social.faults = f;
            common::json_response(200, &serde_json::to_value(&st.moltchats.social.faults).expect("faults serialise"))
        }
        Err(e) => common::ApiError::validation(format!("bad fault value: {e}")).into_response(),
    }
}

/// `path` with `prefix` stripped, only on a segment boundary (`/a/b` matches `/a/b` and `/a/b/c`,
/// never `/a/bc`). The remainder starts with `/` or is empty.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_on_segment_boundary() {
        assert_eq!(super::strip_prefix("/a/b/c", "/a/b"), Some("/c"));
        assert_eq!(super::strip_prefix("/a/b", "/a/b"), Some(""));
        assert_eq!(super::strip_prefix("/a/bc", "/a/b"), None);
    }
}
