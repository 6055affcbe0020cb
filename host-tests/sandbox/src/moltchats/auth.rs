//! MoltChats identity: registration, challenge/verify, HS256 access tokens, rotating refresh
//! tokens, and the Bearer check.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use http::Request;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::Value;

use crate::Ctx;
use crate::common::{
    ApiError, ApiResult, J, header_str, iso8601, json_response, moltchats_body, random_hex,
    random_uuid, uuid_or_500,
};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A registered agent.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    /// Lowercase.
    pub username: String,
    /// As sent at register (SPKI PEM expected; parsed only at verify).
    pub public_key_pem: String,
    pub capabilities: Vec<String>,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub verified: bool,
    pub created_at_ms: u64,
    /// Changes only through WebSocket presence on the real server (`null` until then).
    pub last_seen_at_ms: Option<u64>,
    /// +1 per reaction received (repeats count too).
    pub karma: i64,
    /// The `agent_trust_scores` row; `None` = no row (tier `untrusted`, REST shows nulls).
    pub trust: Option<Trust>,
    pub config: AgentConfig,
    /// The one outstanding challenge; `None` once used.
    pub challenge: Option<Challenge>,
}

/// A trust row (set by tests with `Sandbox::moltchats_set_trust`, as the recording did in SQL).
#[derive(Debug, Clone)]
pub struct Trust {
    pub tier: String,
    pub score: f64,
    pub computed_at_ms: u64,
}

/// `GET/PATCH /agents/@me/config` (webhook fields shared with `/webhooks/config`).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub webhook_url: Option<String>,
    pub webhook_events: Vec<String>,
    pub idle_timeout_s: u64,
    pub max_outbound_per_hour: u64,
    pub max_inbound_wakes_per_hour: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            webhook_url: None,
            webhook_events: vec!["dm.received".into(), "mention.received".into(), "reply.received".into()],
            idle_timeout_s: 360,
            max_outbound_per_hour: 100,
            max_inbound_wakes_per_hour: 10,
        }
    }
}

/// A human observer (`POST /observers/register`).
#[derive(Debug, Clone)]
pub struct Observer {
    pub id: String,
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Challenge {
    /// 64 lowercase hex characters.
    pub value: String,
    pub expires_at_ms: u64,
}

/// One refresh token row, tied to the access token minted with it.
#[derive(Debug, Clone)]
pub struct RefreshRow {
    pub agent_id: String,
    /// `jti` of the access token minted together with this refresh token.
    pub jti: String,
    pub expires_at_ms: u64,
    pub revoked: bool,
}

/// Claims of a MoltChats access token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub sub: String,
    pub username: String,
    pub role: String,
    /// Absent on observer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub iat: u64,
    pub exp: u64,
}

/// The identity of an authenticated request.
#[derive(Debug, Clone)]
pub struct Authed {
    pub agent_id: String,
    pub username: String,
    pub jti: String,
}

#[derive(Default)]
pub struct AuthState {
    /// By agent id.
    pub agents: HashMap<String, Agent>,
    /// Lowercase username → agent id.
    pub by_username: HashMap<String, String>,
    /// Refresh token → row.
    pub refresh: HashMap<String, RefreshRow>,
    /// Revoked access-token ids.
    pub revoked_jtis: HashSet<String>,
    /// Every access-token id ever minted (a token whose `jti` has no row is rejected).
    pub issued_jtis: HashSet<String>,
    pub observers: Vec<Observer>,
    /// Fixed-window registration limiter: (window start ms, attempts in window).
    register_window: (u64, u32),
}

const MSG_INVALID_CREDENTIALS: &str = "Invalid credentials";
const MSG_TOKEN_EXPIRED: &str = "Token has expired";
const MSG_TOKEN_REVOKED: &str = "Token has been revoked";

fn invalid_credentials() -> ApiError {
    ApiError::new(401, "INVALID_CREDENTIALS", MSG_INVALID_CREDENTIALS)
}

fn agent_not_found() -> ApiError {
    ApiError::new(404, "AGENT_NOT_FOUND", "Agent not found")
}

fn valid_username(name: &str) -> bool {
    name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl AuthState {
    pub fn agent_id_by_username(&self, username: &str) -> Option<String> {
        self.by_username.get(&username.to_lowercase()).cloned()
    }

    /// Exact (case-sensitive) username match, as friend requests do (`131`).
    pub fn agent_id_exact(&self, username: &str) -> Option<String> {
        self.by_username.get(username).cloned()
    }

    /// Verified agent by username, ignoring case (profiles, trust lookups).
    pub fn verified_by_username(&self, username: &str) -> Option<&Agent> {
        self.agent_id_by_username(username).and_then(|id| self.agents.get(&id)).filter(|a| a.verified)
    }

    /// Trust tier (`untrusted` without a row).
    pub fn tier(&self, agent_id: &str) -> &str {
        self.agents.get(agent_id).and_then(|a| a.trust.as_ref()).map_or("untrusted", |t| t.tier.as_str())
    }

    /// `POST /agents/register {username, publicKey, capabilities?}` → 201 `{agentId, challenge}`.
    pub fn register(&mut self, ctx: &mut Ctx, req: &Request<Vec<u8>>) -> ApiResult {
        ctx.stats.register_calls += 1;
        if let Some(limit) = ctx.config.register_limit_per_hour {
            let (start, count) = &mut self.register_window;
            if ctx.now_ms >= *start + 3_600_000 {
                *start = ctx.now_ms - ctx.now_ms % 3_600_000;
                *count = 0;
            }
            *count += 1;
            if *count > limit {
                return Err(ApiError::new(
                    429,
                    "RATE_LIMITED",
                    "Too many requests",
                ));
            }
        }
        let body = moltchats_body(req)?;
        let username = match body.get("username").and_then(Value::as_str) {
            Some(u) if !u.is_empty() => u.to_lowercase(),
            _ => return Err(ApiError::validation("Username is required")),
        };
        if !(3..=64).contains(&username.chars().count()) {
            return Err(ApiError::validation("Username must be between 3 and 64 characters"));
        }
        if !valid_username(&username) {
            return Err(ApiError::validation("Username must contain only lowercase letters, numbers, and underscores"));
        }
        let public_key = match body.get("publicKey").and_then(Value::as_str) {
            Some(k) if !k.is_empty() => k,
            _ => return Err(ApiError::validation("Public key is required")),
        };
        let capabilities: Vec<String> = body
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if self.by_username.contains_key(&username) {
            return Err(ApiError::new(
                409,
                "USERNAME_TAKEN",
                "Username is already taken",
            ));
        }
        let id = random_uuid(&mut ctx.rng);
        let challenge = self.new_challenge(ctx);
        let agent = Agent {
            id: id.clone(),
            username: username.clone(),
            public_key_pem: public_key.to_owned(),
            capabilities,
            display_name: None,
            bio: None,
            avatar_url: None,
            verified: false,
            created_at_ms: ctx.now_ms,
            last_seen_at_ms: None,
            karma: 0,
            trust: None,
            config: AgentConfig::default(),
            challenge: Some(challenge.clone()),
        };
        self.agents.insert(id.clone(), agent);
        self.by_username.insert(username, id.clone());
        Ok(json_response(
            201,
            &crate::obj! {"agentId" => id, "challenge" => challenge.value},
        ))
    }

    fn new_challenge(&self, ctx: &mut Ctx) -> Challenge {
        Challenge {
            value: random_hex(&mut ctx.rng, 32),
            expires_at_ms: ctx.now_ms + ctx.config.challenge_lifetime_s * 1000,
        }
    }

    /// `POST /agents/verify {agentId, signedChallenge}` → 200 `{agentId, token, refreshToken}`.
    pub fn verify(&mut self, ctx: &mut Ctx, req: &Request<Vec<u8>>) -> ApiResult {
        ctx.stats.verify_calls += 1;
        let body = moltchats_body(req)?;
        let (Some(agent_id), Some(signed)) = (
            body.get("agentId").and_then(Value::as_str).filter(|s| !s.is_empty()),
            body.get("signedChallenge").and_then(Value::as_str).filter(|s| !s.is_empty()),
        ) else {
            return Err(ApiError::validation("agentId and signedChallenge are required"));
        };
        uuid_or_500(agent_id, "agents")?;
        let agent = self.agents.get_mut(agent_id).ok_or_else(agent_not_found)?;
        let challenge = match &agent.challenge {
            Some(c) if ctx.now_ms < c.expires_at_ms => c.value.clone(),
            _ => return Err(ApiError::new(400, "CHALLENGE_EXPIRED", "Challenge has expired")),
        };
        let bad_sig = || ApiError::new(400, "INVALID_SIGNATURE", "Invalid signature");
        let public_key = rsa::PublicKey::from_public_key_pem(agent.public_key_pem.trim()).map_err(|_| bad_sig())?;
        let sig_bytes = STANDARD.decode(signed.trim()).map_err(|_| bad_sig())?;
        let signature = Signature::try_from(&sig_bytes[..]).map_err(|_| bad_sig())?;
        VerifyingKey::<sha2::Sha256>::new(public_key)
            .verify(challenge.as_bytes(), &signature)
            .map_err(|_| bad_sig())?;
        agent.challenge = None;
        agent.verified = true;
        let (id, username) = (agent.id.clone(), agent.username.clone());
        let (token, refresh) = self.mint_pair(ctx, &id, &username);
        Ok(json_response(
            200,
            &crate::obj! {"agentId" => id, "token" => token, "refreshToken" => refresh},
        ))
    }

    /// `POST /auth/challenge {agentId}` → 200 `{challenge}` (verified agents only).
    pub fn challenge(&mut self, ctx: &mut Ctx, req: &Request<Vec<u8>>) -> ApiResult {
        ctx.stats.challenge_calls += 1;
        let body = moltchats_body(req)?;
        let agent_id = body
            .get("agentId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::validation("agentId is required"))?;
        uuid_or_500(agent_id, "agents")?;
        // An agent that never verified is reported as not found (`038`).
        if !self.agents.get(agent_id).is_some_and(|a| a.verified) {
            return Err(agent_not_found());
        }
        let challenge = self.new_challenge(ctx);
        let agent = self.agents.get_mut(agent_id).expect("checked above");
        agent.challenge = Some(challenge.clone());
        Ok(json_response(200, &crate::obj! {"challenge" => challenge.value}))
    }

    /// `POST /auth/refresh {refreshToken}` → 200 `{agentId, token, refreshToken}` with rotation.
    pub fn refresh(&mut self, ctx: &mut Ctx, req: &Request<Vec<u8>>) -> ApiResult {
        ctx.stats.refresh_calls += 1;
        let body = moltchats_body(req)?;
        let presented = body
            .get("refreshToken")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::validation("refreshToken is required"))?;
        let row = self
            .refresh
            .get_mut(presented)
            .ok_or_else(invalid_credentials)?;
        if row.revoked {
            ctx.stats.refresh_reuse_rejections += 1;
            return Err(ApiError::new(401, "TOKEN_REVOKED", MSG_TOKEN_REVOKED));
        }
        if ctx.now_ms >= row.expires_at_ms {
            return Err(ApiError::new(401, "TOKEN_EXPIRED", MSG_TOKEN_EXPIRED));
        }
        row.revoked = true;
        let (agent_id, old_jti) = (row.agent_id.clone(), row.jti.clone());
        if !self.agents.contains_key(&agent_id) {
            return Err(agent_not_found());
        }
        self.revoked_jtis.insert(old_jti);
        let username = self
            .agents
            .get(&agent_id)
            .map(|a| a.username.clone())
            .ok_or_else(invalid_credentials)?;
        let (token, refresh) = self.mint_pair(ctx, &agent_id, &username);
        Ok(json_response(
            200,
            &crate::obj! {"agentId" => agent_id, "token" => token, "refreshToken" => refresh},
        ))
    }

    /// `GET /agents/@me` (Bearer) → 200 profile.
    pub fn get_me(&mut self, ctx: &mut Ctx, req: &Request<Vec<u8>>) -> ApiResult {
        let who = self.authenticate(ctx, req)?;
        // An observer token authenticates but has no agent row (`259`).
        let agent = self.agents.get(&who.agent_id).ok_or_else(agent_not_found)?;
        Ok(json_response(200, &profile(agent, true)))
    }

    /// `GET /agents/:username` (no auth) → 200 profile.
    pub fn get_profile(&mut self, _ctx: &mut Ctx, username: &str) -> ApiResult {
        let agent = self.verified_by_username(username).ok_or_else(agent_not_found)?;
        Ok(json_response(200, &profile(agent, true)))
    }

    /// Mint an access token + refresh token pair for an agent.
    pub fn mint_pair(&mut self, ctx: &mut Ctx, agent_id: &str, username: &str) -> (String, String) {
        let now_s = ctx.now_ms / 1000;
        let claims = Claims {
            sub: agent_id.to_owned(),
            username: username.to_owned(),
            role: "agent".to_owned(),
            jti: Some(random_uuid(&mut ctx.rng)),
            iat: now_s,
            exp: now_s + ctx.config.access_token_lifetime_s,
        };
        let token = encode_jwt(&ctx.config.jwt_secret, &claims);
        let jti = claims.jti.unwrap_or_default();
        self.issued_jtis.insert(jti.clone());
        let refresh = format!("msr_{}", random_hex(&mut ctx.rng, 48));
        self.refresh.insert(
            refresh.clone(),
            RefreshRow {
                agent_id: agent_id.to_owned(),
                jti,
                expires_at_ms: ctx.now_ms + ctx.config.refresh_token_lifetime_s * 1000,
                revoked: false,
            },
        );
        (token, refresh)
    }

    /// Bearer check for protected routes. Missing/garbage/wrong signature → 401
    /// INVALID_CREDENTIALS; expired → 401 TOKEN_EXPIRED; revoked jti → 401 TOKEN_REVOKED.
    /// Updates the agent's `lastSeenAt`.
    pub fn authenticate(
        &mut self,
        ctx: &mut Ctx,
        req: &Request<Vec<u8>>,
    ) -> Result<Authed, ApiError> {
        let r = self.check_bearer(ctx, header_str(req, "authorization"));
        if r.is_err() {
            ctx.stats.bearer_rejections += 1;
        }
        r
    }

    /// Same as [`Self::authenticate`] for a raw token (e.g. WebSocket `?token=`). `header` is the
    /// full `Authorization` header value (`Bearer <jwt>`).
    pub fn check_bearer(&mut self, ctx: &Ctx, header: Option<&str>) -> Result<Authed, ApiError> {
        let token = header
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(invalid_credentials)?;
        self.check_token(ctx, token)
    }

    /// Validate a raw JWT.
    pub fn check_token(&mut self, ctx: &Ctx, token: &str) -> Result<Authed, ApiError> {
        let claims = decode_jwt(&ctx.config.jwt_secret, token).ok_or_else(invalid_credentials)?;
        if ctx.now_ms / 1000 >= claims.exp {
            return Err(ApiError::new(401, "TOKEN_EXPIRED", MSG_TOKEN_EXPIRED));
        }
        // Observer tokens carry no `jti`; no role check is applied (`258`).
        if let Some(jti) = &claims.jti {
            if self.revoked_jtis.contains(jti) {
                return Err(ApiError::new(401, "TOKEN_REVOKED", MSG_TOKEN_REVOKED));
            }
            if !self.issued_jtis.contains(jti) {
                return Err(invalid_credentials());
            }
        }
        Ok(Authed {
            agent_id: claims.sub,
            username: claims.username,
            jti: claims.jti.unwrap_or_default(),
        })
    }

    /// Admin: revoke all live refresh tokens of an agent and their access tokens.
    pub fn revoke_all_of(&mut self, agent_id: &str) -> usize {
        let mut n = 0;
        for row in self.refresh.values_mut() {
            if row.agent_id == agent_id && !row.revoked {
                row.revoked = true;
                self.revoked_jtis.insert(row.jti.clone());
                n += 1;
            }
        }
        n
    }

    /// Admin: forget the registration limiter's window.
    pub fn reset_register_window(&mut self) {
        self.register_window = (0, 0);
    }

    /// Admin: make a refresh token expired.
    pub fn expire_refresh(&mut self, token: &str) -> bool {
        match self.refresh.get_mut(token) {
            Some(row) => {
                row.expires_at_ms = 0;
                true
            }
            None => false,
        }
    }

    /// Admin: revoke one access token.
    pub fn revoke_jti(&mut self, jti: &str) {
        self.revoked_jtis.insert(jti.to_owned());
    }
}

/// The profile object; `with_trust` adds `karma`, `trustTier`, `eigentrustScore` (not in the
/// `PATCH /agents/@me` answer).
pub fn profile(agent: &Agent, with_trust: bool) -> J {
    let mut o = crate::obj! {
        "id" => &agent.id,
        "username" => &agent.username,
        "displayName" => agent.display_name.clone(),
        "avatarUrl" => agent.avatar_url.clone(),
        "bio" => agent.bio.clone(),
        "agentType" => "openclaw",
        "status" => if agent.verified { "verified" } else { "pending" },
        "presence" => "offline",
        "capabilities" => agent.capabilities.clone(),
        "createdAt" => iso8601(agent.created_at_ms),
        "lastSeenAt" => agent.last_seen_at_ms.map(iso8601),
    };
    if with_trust && let J::Obj(kv) = &mut o {
        kv.push(("karma".into(), J::from(agent.karma)));
        kv.push(("trustTier".into(), J::from(agent.trust.as_ref().map(|t| t.tier.clone()))));
        kv.push(("eigentrustScore".into(), J::from(agent.trust.as_ref().map(|t| t.score))));
    }
    o
}

fn hmac_sha256(secret: &[u8], data: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(data);
    mac
}

/// Encode an HS256 JWT.
pub fn encode_jwt(secret: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("serialize claims"));
    let signing_input = format!("{header}.{payload}");
    let sig = hmac_sha256(secret, signing_input.as_bytes())
        .finalize()
        .into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Decode an HS256 JWT, checking the signature and the `alg` header (not `exp`).
pub fn decode_jwt(secret: &[u8], token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    hmac_sha256(secret, signing_input.as_bytes())
        .verify_slice(&sig)
        .ok()?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_roundtrip_and_tamper() {
        let c = Claims {
            sub: "a".into(),
            username: "u".into(),
            role: "agent".into(),
            jti: Some("j".into()),
            iat: 1,
            exp: 2,
        };
        let t = encode_jwt(b"k", &c);
        assert_eq!(decode_jwt(b"k", &t), Some(c));
        assert_eq!(decode_jwt(b"other", &t), None);
        assert_eq!(decode_jwt(b"k", "garbage"), None);
        assert_eq!(decode_jwt(b"k", &format!("{t}x")), None);
    }

    #[test]
    fn usernames() {
        assert!(valid_username("abc"));
        assert!(valid_username("a_b_9"));
        assert!(!valid_username("a-b-c"));
    }
}
