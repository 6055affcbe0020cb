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
use serde_json::{Value, json};

use crate::Ctx;
use crate::common::{
    ApiError, ApiResult, header_str, iso8601, json_response, parse_json_body, random_hex,
    random_uuid, req_str,
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
    pub last_seen_at_ms: u64,
    /// The one outstanding challenge; `None` once used.
    pub challenge: Option<Challenge>,
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
    pub jti: String,
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
    /// Fixed-window registration limiter: (window start ms, attempts in window).
    register_window: (u64, u32),
}

const MSG_INVALID_CREDENTIALS: &str = "Invalid or missing credentials";
const MSG_TOKEN_EXPIRED: &str = "Token has expired";
const MSG_TOKEN_REVOKED: &str = "Token has been revoked";

fn invalid_credentials() -> ApiError {
    ApiError::new(401, "INVALID_CREDENTIALS", MSG_INVALID_CREDENTIALS)
}

fn agent_not_found() -> ApiError {
    ApiError::new(404, "AGENT_NOT_FOUND", "Agent not found")
}

fn valid_username(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl AuthState {
    pub fn agent_id_by_username(&self, username: &str) -> Option<String> {
        self.by_username.get(&username.to_lowercase()).cloned()
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
                    "Too many registrations, try again later",
                ));
            }
        }
        let body = parse_json_body(req.body())?;
        let username = req_str(&body, "username")?.to_lowercase();
        let public_key = req_str(&body, "publicKey")?;
        if !valid_username(&username) {
            return Err(ApiError::validation(
                "Username must be 3-64 characters of lowercase letters, digits and underscores",
            ));
        }
        if public_key.is_empty() {
            return Err(ApiError::validation("publicKey is required"));
        }
        let capabilities = match body.get("capabilities") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::validation("capabilities must be an array of strings"))?,
            Some(_) => return Err(ApiError::validation("capabilities must be an array")),
        };
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
            last_seen_at_ms: ctx.now_ms,
            challenge: Some(challenge.clone()),
        };
        self.agents.insert(id.clone(), agent);
        self.by_username.insert(username, id.clone());
        Ok(json_response(
            201,
            &json!({"agentId": id, "challenge": challenge.value}),
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
        let body = parse_json_body(req.body())?;
        let agent_id = req_str(&body, "agentId")?;
        let signed = req_str(&body, "signedChallenge")?;
        let agent = self.agents.get_mut(agent_id).ok_or_else(agent_not_found)?;
        let challenge = match &agent.challenge {
            Some(c) if ctx.now_ms < c.expires_at_ms => c.value.clone(),
            _ => {
                return Err(ApiError::new(
                    400,
                    "CHALLENGE_EXPIRED",
                    "Challenge has expired or was already used",
                ));
            }
        };
        let public_key = rsa::PublicKey::from_public_key_pem(agent.public_key_pem.trim())
            .map_err(|_| ApiError::new(400, "INVALID_PUBLIC_KEY", "Public key is invalid"))?;
        let bad_sig = || ApiError::new(400, "INVALID_SIGNATURE", "Signature verification failed");
        let sig_bytes = STANDARD.decode(signed.trim()).map_err(|_| bad_sig())?;
        let signature = Signature::try_from(&sig_bytes[..]).map_err(|_| bad_sig())?;
        VerifyingKey::<sha2::Sha256>::new(public_key)
            .verify(challenge.as_bytes(), &signature)
            .map_err(|_| bad_sig())?;
        agent.challenge = None;
        agent.verified = true;
        agent.last_seen_at_ms = ctx.now_ms;
        let (id, username) = (agent.id.clone(), agent.username.clone());
        let (token, refresh) = self.mint_pair(ctx, &id, &username);
        Ok(json_response(
            200,
            &json!({"agentId": id, "token": token, "refreshToken": refresh}),
        ))
    }

    /// `POST /auth/challenge {agentId}` → 200 `{challenge}` (verified agents only).
    pub fn challenge(&mut self, ctx: &mut Ctx, req: &Request<Vec<u8>>) -> ApiResult {
        ctx.stats.challenge_calls += 1;
        let body = parse_json_body(req.body())?;
        let agent_id = req_str(&body, "agentId")?;
        match self.agents.get(agent_id) {
            None => return Err(agent_not_found()),
            Some(a) if !a.verified => {
                return Err(ApiError::new(
                    403,
                    "AGENT_NOT_VERIFIED",
                    "Agent is not verified",
                ));
            }
            Some(_) => {}
        }
        let challenge = self.new_challenge(ctx);
        let agent = self.agents.get_mut(agent_id).expect("checked above");
        agent.challenge = Some(challenge.clone());
        Ok(json_response(200, &json!({"challenge": challenge.value})))
    }

    /// `POST /auth/refresh {refreshToken}` → 200 `{agentId, token, refreshToken}` with rotation.
    pub fn refresh(&mut self, ctx: &mut Ctx, req: &Request<Vec<u8>>) -> ApiResult {
        ctx.stats.refresh_calls += 1;
        let body = parse_json_body(req.body())?;
        let presented = req_str(&body, "refreshToken")?;
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
        self.revoked_jtis.insert(old_jti);
        let username = self
            .agents
            .get(&agent_id)
            .map(|a| a.username.clone())
            .ok_or_else(invalid_credentials)?;
        let (token, refresh) = self.mint_pair(ctx, &agent_id, &username);
        Ok(json_response(
            200,
            &json!({"agentId": agent_id, "token": token, "refreshToken": refresh}),
        ))
    }

    /// `GET /agents/@me` (Bearer) → 200 profile.
    pub fn get_me(&mut self, ctx: &mut Ctx, req: &Request<Vec<u8>>) -> ApiResult {
        let who = self.authenticate(ctx, req)?;
        let agent = self
            .agents
            .get(&who.agent_id)
            .ok_or_else(invalid_credentials)?;
        Ok(json_response(200, &profile(agent)))
    }

    /// `GET /agents/:username` (no auth) → 200 profile.
    pub fn get_profile(&mut self, _ctx: &mut Ctx, username: &str) -> ApiResult {
        let id = self
            .agent_id_by_username(username)
            .ok_or_else(agent_not_found)?;
        Ok(json_response(200, &profile(&self.agents[&id])))
    }

    /// Mint an access token + refresh token pair for an agent.
    pub fn mint_pair(&mut self, ctx: &mut Ctx, agent_id: &str, username: &str) -> (String, String) {
        let now_s = ctx.now_ms / 1000;
        let claims = Claims {
            sub: agent_id.to_owned(),
            username: username.to_owned(),
            role: "agent".to_owned(),
            jti: random_uuid(&mut ctx.rng),
            iat: now_s,
            exp: now_s + ctx.config.access_token_lifetime_s,
        };
        let token = encode_jwt(&ctx.config.jwt_secret, &claims);
        let refresh = format!("msr_{}", random_hex(&mut ctx.rng, 48));
        self.refresh.insert(
            refresh.clone(),
            RefreshRow {
                agent_id: agent_id.to_owned(),
                jti: claims.jti,
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
        if self.revoked_jtis.contains(&claims.jti) {
            return Err(ApiError::new(401, "TOKEN_REVOKED", MSG_TOKEN_REVOKED));
        }
        let agent = self
            .agents
            .get_mut(&claims.sub)
            .ok_or_else(invalid_credentials)?;
        agent.last_seen_at_ms = ctx.now_ms;
        Ok(Authed {
            agent_id: claims.sub,
            username: claims.username,
            jti: claims.jti,
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

/// The public profile object.
pub fn profile(agent: &Agent) -> Value {
    json!({
        "id": agent.id,
        "username": agent.username,
        "displayName": agent.display_name,
        "avatarUrl": agent.avatar_url,
        "bio": agent.bio,
        "status": "active",
        "presence": "online",
        "capabilities": agent.capabilities,
        "createdAt": iso8601(agent.created_at_ms),
        "lastSeenAt": iso8601(agent.last_seen_at_ms),
        "karma": 0,
        "trustTier": null,
        "eigentrustScore": null,
    })
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
            jti: "j".into(),
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
        assert!(!valid_username("ab"));
        assert!(!valid_username("a-b-c"));
        assert!(!valid_username(&"a".repeat(65)));
    }
}
