//! MoltChats beyond identity, shaped after the recorded traffic of a real server
//! (`/work/shared/wire/moltchats/`, README "REST routes"): profiles and agent config, servers,
//! channels and instructions, messages, reactions, feed, search, friends with DM channels, blocks,
//! pending activity, moderation, trust, webhooks and the observer routes — plus the fixed-window
//! rate limits the real service applies and switchable faults for tests.
//!
//! Every answer keeps the recorded key order (see [`J`]) and JSON types, including the quirks
//! (`memberCount` a string in lists, a Postgres text timestamp in `unreadDMs`, bare arrays).
//!
//! Seeded with one public server ([`SEED_SERVER_ID`]) holding `#general`
//! ([`SEED_CHANNEL_ID`]) so a new agent can join and talk at once.

use std::collections::{BTreeMap, HashMap};

use http::{Request, Response};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::auth::{AuthState, Authed};
use crate::common::{ApiError, ApiResult, J, iso8601, json_response, moltchats_body, random_uuid, uuid_or_500};
use crate::{Ctx, obj};

pub const SEED_SERVER_ID: &str = "00000000-0000-4000-8000-000000000001";
pub const SEED_CHANNEL_ID: &str = "00000000-0000-4000-8000-000000000002";
const SEED_OWNER_ID: &str = "00000000-0000-4000-8000-0000000000ff";

const MINUTE: u64 = 60_000;
const DAY: u64 = 24 * 60 * MINUTE;
const MAX_CHANNELS: usize = 100;
/// `skillHash` of `/agents/@me/pending` (16 hex; the real one hashes skill.md).
const SKILL_HASH: &str = "5a4d0b1e7c3f9a21";
const WEBHOOK_EVENTS: [&str; 4] = ["dm.received", "mention.received", "reply.received", "friend_request.received"];

/// Switches tests flip (in-process with `Sandbox::with_state`, or over HTTP with
/// `POST /_sandbox/moltchats/faults`). Defaults behave like the real service.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// REST messages per minute per agent per channel (real: 30 for every tier). WS uses the
    /// per-tier limit, capped by this value.
    pub channel_messages_per_minute: u32,
    /// The next N Bearer requests (any route but auth) answer 429 with only
    /// `X-RateLimit-Reset` (absolute Unix seconds), `reset_in_s` from now.
    pub fail_next_with_429: u32,
    pub reset_in_s: u64,
    /// Message timestamps are truncated to this many ms (1000 → many messages share one
    /// timestamp, so `before=` page edges cut through ties).
    pub timestamp_granularity_ms: u64,
    /// `/agents/@me/pending` reports `checkedAt` as epoch-millisecond digits, not ISO 8601.
    pub non_iso_timestamps: bool,
    /// `POST /servers` answers 403 INSUFFICIENT_TRUST for tiers below provisional (real: on).
    pub require_trust_for_servers: bool,
    /// WS: drop the socket when the next message is sent (after storing it, before the ack).
    pub ws_drop_on_next_send: bool,
    /// WS: store the next message but never send its ack.
    pub ws_lose_next_ack: bool,
    /// WS messages per minute per channel for every agent. `None` (default): by trust tier as
    /// recorded (untrusted 3, provisional 5, trusted 10, seed 15), or
    /// `channel_messages_per_minute` when a test changed that from 30.
    pub ws_messages_per_minute: Option<u32>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            channel_messages_per_minute: 30,
            fail_next_with_429: 0,
            reset_in_s: 5,
            timestamp_granularity_ms: 1,
            non_iso_timestamps: false,
            require_trust_for_servers: true,
            ws_drop_on_next_send: false,
            ws_lose_next_ack: false,
            ws_messages_per_minute: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Member {
    /// `owner`, `admin` or `member`.
    pub role: String,
    pub joined_at_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Ban {
    pub agent_id: String,
    pub reason: Option<String>,
    pub auto: bool,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone)]
pub struct ServerRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub icon_url: Option<String>,
    pub is_public: bool,
    pub tags: Vec<String>,
    pub instructions: Option<String>,
    pub owner_id: String,
    pub report_threshold: u64,
    pub created_at_ms: u64,
    /// Agent id → membership, in join order.
    pub members: BTreeMap<String, Member>,
    pub bans: Vec<Ban>,
    /// Creation order (ties of `created_at_ms`).
    pub seq: u64,
}

impl ServerRow {
    fn is_admin(&self, agent_id: &str) -> bool {
        self.members.get(agent_id).is_some_and(|m| m.role == "owner" || m.role == "admin")
    }
}

#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub id: String,
    /// `None` for a DM channel.
    pub server_id: Option<String>,
    /// `None` for a DM channel.
    pub name: Option<String>,
    pub category: Option<String>,
    pub kind: String,
    pub topic: Option<String>,
    pub instructions: Option<String>,
    pub position: i64,
    pub created_at_ms: u64,
    /// DM channels: the two agents.
    pub participants: Vec<String>,
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: String,
    pub channel_id: String,
    pub author_id: String,
    pub content: String,
    pub content_type: String,
    pub created_at_ms: u64,
    pub reactions: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct FriendRequestRow {
    pub id: String,
    pub from: String,
    pub to: String,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Friendship {
    pub a: String,
    pub b: String,
    pub dm_channel_id: String,
    pub since_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Vouch {
    pub voucher: String,
    pub vouchee: String,
    pub created_at_ms: u64,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct TrustChallenge {
    pub id: String,
    pub suspect: String,
    pub channel_id: String,
    pub created_at_ms: u64,
    /// (voter id, verdict, when).
    pub votes: Vec<(String, String, u64)>,
}

pub struct SocialState {
    pub faults: Faults,
    pub servers: BTreeMap<String, ServerRow>,
    pub channels: BTreeMap<String, ChannelRow>,
    /// Channel id → messages in the order stored (oldest first).
    pub messages: HashMap<String, Vec<MessageRow>>,
    /// Message id → channel id.
    pub message_channel: HashMap<String, String>,
    pub friend_requests: Vec<FriendRequestRow>,
    pub friendships: Vec<Friendship>,
    /// Blocker → blocked agent ids (with when).
    pub blocks: HashMap<String, BTreeMap<String, u64>>,
    /// (channel id, reporter, target).
    pub reports: Vec<(String, String, String)>,
    pub vouches: Vec<Vouch>,
    /// (flagger, target, when).
    pub flags: Vec<(String, String, u64)>,
    pub challenges: Vec<TrustChallenge>,
    /// Fixed-window counters: key → (window start ms, count).
    windows: HashMap<String, (u64, u32)>,
    /// Every 429 this sandbox answered (any reason), for assertions.
    pub rate_limited: u64,
    /// Messages stored, across REST and WS.
    pub messages_stored: u64,
    /// Messages stored since the gateway last broadcast them.
    pub fresh: Vec<MessageRow>,
    seq: u64,
    last_message_ms: u64,
}

impl Default for SocialState {
    fn default() -> Self {
        let mut s = SocialState {
            faults: Faults::default(),
            servers: BTreeMap::new(),
            channels: BTreeMap::new(),
            messages: HashMap::new(),
            message_channel: HashMap::new(),
            friend_requests: Vec::new(),
            friendships: Vec::new(),
            blocks: HashMap::new(),
            reports: Vec::new(),
            vouches: Vec::new(),
            flags: Vec::new(),
            challenges: Vec::new(),
            windows: HashMap::new(),
            rate_limited: 0,
            messages_stored: 0,
            fresh: Vec::new(),
            seq: 0,
            last_message_ms: 0,
        };
        s.servers.insert(
            SEED_SERVER_ID.into(),
            ServerRow {
                id: SEED_SERVER_ID.into(),
                name: "MoltLink Sandbox".into(),
                description: Some("A public server every new agent can join".into()),
                icon_url: None,
                is_public: true,
                tags: vec!["sandbox".into(), "general".into()],
                instructions: Some("Be kind. Say hello in #general.".into()),
                owner_id: SEED_OWNER_ID.into(),
                report_threshold: 10,
                created_at_ms: 0,
                members: BTreeMap::from([(SEED_OWNER_ID.to_owned(), Member { role: "owner".into(), joined_at_ms: 0 })]),
                bans: Vec::new(),
                seq: 0,
            },
        );
        let general = s.channel_row(SEED_CHANNEL_ID, Some(SEED_SERVER_ID), Some("general"), 0);
        s.channels.insert(SEED_CHANNEL_ID.into(), general);
        s
    }
}

/// The outcome of a fixed-window check: headers to attach either way.
struct Window {
    allowed: bool,
    limit: u32,
    remaining: u32,
    reset_s: u64,
}

fn with_headers(mut resp: Response<Vec<u8>>, w: &Window) -> Response<Vec<u8>> {
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", w.limit.into());
    h.insert("x-ratelimit-remaining", w.remaining.into());
    h.insert("x-ratelimit-reset", w.reset_s.into());
    resp
}

fn rate_limited() -> ApiError {
    ApiError::new(429, "RATE_LIMITED", "Too many requests")
}

fn err(status: u16, code: &'static str, message: &str) -> ApiError {
    ApiError::new(status, code, message)
}

fn server_not_found() -> ApiError {
    err(404, "SERVER_NOT_FOUND", "Server not found")
}
fn channel_not_found() -> ApiError {
    err(404, "CHANNEL_NOT_FOUND", "Channel not found")
}
fn agent_not_found() -> ApiError {
    err(404, "AGENT_NOT_FOUND", "Agent not found")
}
fn not_admin() -> ApiError {
    err(403, "NOT_SERVER_ADMIN", "Insufficient server permissions")
}
fn not_owner() -> ApiError {
    err(403, "NOT_SERVER_OWNER", "Not the server owner")
}
fn not_member() -> ApiError {
    err(403, "NOT_SERVER_MEMBER", "Not a member of this server")
}
fn not_dm_participant() -> ApiError {
    err(403, "NOT_DM_PARTICIPANT", "Not a participant in this DM")
}
fn ok_true() -> J {
    obj! { "ok" => true }
}
fn success_true() -> J {
    obj! { "success" => true }
}

/// Percent-decoded path segment.
fn decode(seg: &str) -> String {
    percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// A query parameter, percent-decoded (`+` is not a space here, as in Fastify's parser).
pub fn query_param(req: &Request<Vec<u8>>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// Non-empty string field of a body.
fn text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// ISO 8601 (`2026-01-01T00:00:00.000Z`, fractional seconds optional) or epoch-ms digits → ms.
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    let rest = &s[19..];
    let (frac, tz) = match rest.strip_prefix('.') {
        Some(r) => {
            let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
            let ms = format!("{digits:0<3}")[..3].parse::<i64>().ok()?;
            (ms, &r[digits.len()..])
        }
        None => (0, rest),
    };
    if tz != "Z" && tz != "+00:00" {
        return None;
    }
    // days_from_civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + h * 3600 + mi * 60 + se) * 1000 + frac).max(0);
    Some(ms as u64)
}

/// Postgres' text form of a timestamptz (`2026-11-30 00:59:44.289634+00`), which the real
/// server leaks in `unreadDMs[].lastMessageAt`.
pub fn pg_timestamp(ms: u64) -> String {
    let iso = iso8601(ms);
    format!("{} {}000+00", &iso[..10], &iso[11..23])
}

/// WS messages per minute per channel by trust tier (`RATE_LIMITS_BY_TIER.wsPerMinPerChannel`).
pub fn ws_limit_for_tier(tier: &str) -> u32 {
    match tier {
        "seed" => 15,
        "trusted" => 10,
        "provisional" => 5,
        "quarantined" => 0,
        _ => 3,
    }
}

/// Tiers whose `serversPerDay` / `friendReqPerHour` gate is 0.
fn tier_blocks_servers(tier: &str) -> bool {
    matches!(tier, "untrusted" | "quarantined")
}

/// The route table: `Some(needs_auth)` for every agent route this module serves.
fn route_auth(method: &str, segs: &[&str]) -> Option<bool> {
    let auth = matches!(
        (method, segs),
        ("PATCH", ["agents", "@me"])
            | ("GET" | "PATCH", ["agents", "@me", "config"])
            | ("GET", ["agents", "@me", "servers" | "pending"])
            | ("GET" | "POST", ["servers"])
            | ("GET" | "PATCH" | "DELETE", ["servers", _])
            | ("POST", ["servers", _, "join" | "ban"])
            | ("DELETE", ["servers", _, "leave"])
            | ("DELETE", ["servers", _, "ban", _])
            | ("GET", ["servers", _, "bans"])
            | ("PUT", ["servers", _, "instructions"])
            | ("GET" | "POST", ["servers", _, "channels"])
            | ("PATCH" | "DELETE", ["channels", _])
            | ("PUT", ["channels", _, "instructions"])
            | ("GET" | "POST", ["channels", _, "messages"])
            | ("POST", ["channels", _, "report"])
            | ("POST", ["messages", _, "react"])
            | ("DELETE", ["messages", _, "react", _])
            | ("GET", ["feed"] | ["search"])
            | ("POST", ["friends", "request" | "accept" | "reject"])
            | ("GET", ["friends"] | ["friends", "requests"] | ["blocks"])
            | ("DELETE", ["friends", _])
            | ("POST" | "DELETE", ["blocks", _])
            | ("GET", ["trust", "@me"])
            | ("GET", ["trust", "challenge", _])
            | ("GET" | "PUT", ["webhooks", "config"])
            | ("POST", ["webhooks", "test"])
    );
    if auth {
        return Some(true);
    }
    let open = matches!(
        (method, segs),
        ("GET", ["trust", _])
            | ("POST", ["observers", "register" | "login"])
            | ("GET", ["observers", "servers"])
            | ("GET", ["observers", "servers", _])
            | ("GET", ["observers", "servers", _, "channels" | "members"])
            | ("GET", ["observers", "channels", _, "messages"])
    );
    open.then_some(false)
}

impl SocialState {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Test fixture: a text channel `name` in the seed server (what an owner's create would
    /// make), for harnesses that spread many agents over many channels. Returns its id.
    pub fn add_seed_channel(&mut self, ctx: &mut Ctx, name: &str) -> String {
        let id = random_uuid(&mut ctx.rng);
        let row = self.channel_row(&id, Some(SEED_SERVER_ID), Some(name), ctx.now_ms);
        self.channels.insert(id.clone(), row);
        id
    }

    fn channel_row(&mut self, id: &str, server: Option<&str>, name: Option<&str>, now: u64) -> ChannelRow {
        ChannelRow {
            id: id.into(),
            server_id: server.map(str::to_owned),
            name: name.map(str::to_owned),
            category: None,
            kind: "text".into(),
            topic: None,
            instructions: None,
            position: 0,
            created_at_ms: now,
            participants: vec![],
            seq: self.next_seq(),
        }
    }

    /// Fixed window as the real server keeps it in Redis: `INCR`, and on the first hit
    /// `EXPIRE` for `period`. Rejected attempts count too.
    fn window(&mut self, key: String, limit: u32, period: u64, now: u64) -> Window {
        let entry = self.windows.entry(key).or_insert((now, 0));
        if now >= entry.0 + period {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        Window { allowed: entry.1 <= limit, limit, remaining: limit.saturating_sub(entry.1), reset_s: (entry.0 + period).div_ceil(1000) }
    }

    /// Route one request; `None` when no route here matches.
    pub fn handle(&mut self, ctx: &mut Ctx, auth: &mut AuthState, req: &Request<Vec<u8>>, segs: &[&str]) -> Option<ApiResult> {
        let method = req.method().as_str();
        let needs_auth = route_auth(method, segs)?;
        let segs: Vec<String> = segs.iter().map(|s| decode(s)).collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        if !needs_auth {
            return Some(self.handle_open(ctx, auth, req, &segs));
        }
        let who = match auth.authenticate(ctx, req) {
            Ok(who) => who,
            Err(e) => return Some(Err(e)),
        };
        if self.faults.fail_next_with_429 > 0 {
            self.faults.fail_next_with_429 -= 1;
            self.rate_limited += 1;
            let mut resp = rate_limited().into_response();
            let reset = (ctx.now_ms / 1000) + self.faults.reset_in_s.max(1);
            resp.headers_mut().insert("x-ratelimit-reset", reset.into());
            return Some(Ok(resp));
        }
        let result = self.handle_authed(ctx, auth, &who, req, &segs);
        if matches!(&result, Ok(r) if r.status() == 429) || matches!(&result, Err(e) if e.status == 429) {
            self.rate_limited += 1;
        }
        Some(result)
    }

    fn handle_authed(&mut self, ctx: &mut Ctx, auth: &mut AuthState, who: &Authed, req: &Request<Vec<u8>>, segs: &[&str]) -> ApiResult {
        let now = ctx.now_ms;
        let ok = |v: J| Ok(json_response(200, &v));
        match (req.method().as_str(), segs) {
            ("PATCH", ["agents", "@me"]) => self.patch_me(auth, who, req),
            ("GET", ["agents", "@me", "config"]) => ok(config_json(auth, who)?),
            ("PATCH", ["agents", "@me", "config"]) => self.patch_config(auth, who, req),
            ("GET", ["agents", "@me", "servers"]) => ok(self.my_servers(who)),
            ("GET", ["agents", "@me", "pending"]) => self.pending(auth, who, req, now),
            ("GET", ["servers"]) => ok(self.browse(req)),
            ("POST", ["servers"]) => self.create_server(ctx, auth, who, req),
            ("GET", ["servers", id]) => ok(self.server_details(id)?),
            ("PATCH", ["servers", id]) => self.patch_server(who, id, req),
            ("DELETE", ["servers", id]) => self.delete_server(who, id),
            ("POST", ["servers", id, "join"]) => self.join(auth, who, id, now),
            ("DELETE", ["servers", id, "leave"]) => self.leave(who, id),
            ("PUT", ["servers", id, "instructions"]) => self.server_instructions(who, id, req),
            ("GET", ["servers", id, "channels"]) => ok(obj! { "channels" => self.grouped_channels(self.server(id)?) }),
            ("POST", ["servers", id, "channels"]) => self.create_channel(ctx, who, id, req),
            ("PATCH", ["channels", id]) => self.patch_channel(who, id, req),
            ("DELETE", ["channels", id]) => self.delete_channel(who, id),
            ("PUT", ["channels", id, "instructions"]) => self.channel_instructions(who, id, req),
            ("POST", ["channels", id, "messages"]) => {
                let body = moltchats_body(req)?;
                let content = body.get("content").and_then(Value::as_str).unwrap_or_default().to_owned();
                let content_type = body.get("contentType").and_then(Value::as_str).unwrap_or("text").to_owned();
                let limit = self.faults.channel_messages_per_minute;
                let m = self.post_message(ctx, auth, who, id, &content, &content_type, limit)?;
                Ok(json_response(201, &posted_json(auth, &m)))
            }
            ("GET", ["channels", id, "messages"]) => self.history(auth, who, id, req),
            ("POST", ["channels", id, "report"]) => self.report(auth, who, id, req, now),
            ("POST", ["messages", id, "react"]) => self.react(auth, who, id, req),
            ("DELETE", ["messages", id, "react", emoji]) => self.unreact(who, id, emoji),
            ("GET", ["feed"]) => Ok(json_response(200, &self.feed(auth, who, req))),
            ("GET", ["search"]) => ok(self.search(auth, req)?),
            ("POST", ["friends", "request"]) => self.friend_request(auth, who, req, now, &mut ctx.rng),
            ("POST", ["friends", "accept"]) => self.friend_answer(auth, who, req, true, now, &mut ctx.rng),
            ("POST", ["friends", "reject"]) => self.friend_answer(auth, who, req, false, now, &mut ctx.rng),
            ("DELETE", ["friends", name]) => self.unfriend(auth, who, name),
            ("GET", ["friends"]) => ok(self.friends(auth, who)),
            ("GET", ["friends", "requests"]) => ok(self.requests(auth, who)),
            ("GET", ["blocks"]) => ok(self.list_blocks(auth, who)),
            ("POST", ["blocks", name]) => self.block(auth, who, name, now),
            ("DELETE", ["blocks", name]) => {
                let target = auth.agent_id_by_username(name).ok_or_else(agent_not_found)?;
                if let Some(s) = self.blocks.get_mut(&who.agent_id) {
                    s.remove(&target);
                }
                ok(ok_true())
            }
            ("POST", ["servers", id, "ban"]) => self.ban(auth, who, id, req, now),
            ("DELETE", ["servers", id, "ban", name]) => self.unban(auth, who, id, name),
            ("GET", ["servers", id, "bans"]) => Ok(json_response(200, &self.bans(auth, who, id)?)),
            ("GET", ["trust", "@me"]) => ok(self.trust_me(auth, who)),
            ("GET", ["trust", "challenge", id]) => ok(self.trust_challenge(who, id)?),
            ("GET", ["webhooks", "config"]) => {
                let a = auth.agents.get(&who.agent_id).ok_or_else(|| err(404, "NOT_FOUND", "Not found"))?;
                ok(obj! { "webhookUrl" => a.config.webhook_url.clone(), "webhookEvents" => a.config.webhook_events.clone() })
            }
            ("PUT", ["webhooks", "config"]) => {
                let body = moltchats_body(req)?;
                let a = auth.agents.get_mut(&who.agent_id).ok_or_else(|| err(404, "NOT_FOUND", "Not found"))?;
                if let Some(v) = body.get("webhookUrl") {
                    a.config.webhook_url = v.as_str().map(str::to_owned);
                }
                if let Some(events) = body.get("webhookEvents").and_then(Value::as_array) {
                    a.config.webhook_events = events.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect();
                }
                ok(obj! { "webhookUrl" => a.config.webhook_url.clone(), "webhookEvents" => a.config.webhook_events.clone() })
            }
            ("POST", ["webhooks", "test"]) => {
                let url = auth.agents.get(&who.agent_id).and_then(|a| a.config.webhook_url.clone());
                let url = url.ok_or_else(|| ApiError::validation("No webhook URL configured"))?;
                ok(webhook_test(&url, &who.agent_id, now))
            }
            _ => Err(err(404, "NOT_FOUND", "Not found")),
        }
    }

    /// Routes without auth: public trust lookups and the observer (human, read-only) API.
    fn handle_open(&mut self, ctx: &mut Ctx, auth: &mut AuthState, req: &Request<Vec<u8>>, segs: &[&str]) -> ApiResult {
        let ok = |v: J| Ok(json_response(200, &v));
        match segs {
            ["trust", name] => {
                let a = auth.verified_by_username(name).ok_or_else(agent_not_found)?;
                let received = self.vouches.iter().filter(|v| v.vouchee == a.id && !v.revoked).count();
                let t = a.trust.as_ref();
                ok(obj! {
                    "username" => *name,
                    "tier" => auth.tier(&a.id),
                    "eigentrustScore" => t.map_or(J::from(0), |t| J::from(t.score)),
                    "isSeed" => t.is_some_and(|t| t.tier == "seed"),
                    "vouchesReceived" => received,
                    "computedAt" => t.map(|t| iso8601(t.computed_at_ms)),
                })
            }
            ["observers", "register"] => {
                let body = moltchats_body(req)?;
                let (Some(email), Some(password)) = (text(&body, "email"), text(&body, "password")) else {
                    return Err(ApiError::validation("Email and password are required"));
                };
                if auth.observers.iter().any(|o| o.email.eq_ignore_ascii_case(&email)) {
                    return Err(ApiError::validation("Email is already registered"));
                }
                let id = random_uuid(&mut ctx.rng);
                auth.observers.push(super::auth::Observer { id: id.clone(), email: email.clone(), password, display_name: text(&body, "displayName") });
                Ok(json_response(201, &obj! { "id" => id, "email" => email }))
            }
            ["observers", "login"] => {
                let body = moltchats_body(req)?;
                let (Some(email), Some(password)) = (text(&body, "email"), text(&body, "password")) else {
                    return Err(ApiError::validation("Email and password are required"));
                };
                let o = auth.observers.iter().find(|o| o.email.eq_ignore_ascii_case(&email) && o.password == password);
                let o = o.ok_or_else(|| err(401, "INVALID_CREDENTIALS", "Invalid credentials"))?;
                let now_s = ctx.now_ms / 1000;
                let claims = super::auth::Claims {
                    sub: o.id.clone(),
                    username: o.email.clone(),
                    role: "observer".into(),
                    jti: None,
                    iat: now_s,
                    exp: now_s + ctx.config.access_token_lifetime_s,
                };
                ok(obj! { "token" => super::auth::encode_jwt(&ctx.config.jwt_secret, &claims) })
            }
            ["observers", "servers"] => {
                let list: Vec<J> = self
                    .sorted_servers()
                    .into_iter()
                    .filter(|s| s.is_public)
                    .map(|s| {
                        obj! {
                            "id" => &s.id, "name" => &s.name, "description" => s.description.clone(),
                            "iconUrl" => s.icon_url.clone(), "isPublic" => s.is_public, "maxMembers" => 500,
                            "createdAt" => iso8601(s.created_at_ms), "tags" => s.tags.clone(), "memberCount" => s.members.len(),
                        }
                    })
                    .collect();
                ok(obj! { "servers" => list })
            }
            ["observers", "servers", id, rest @ ..] => {
                uuid_or_500(id, "servers")?;
                let s = self.servers.get(*id).filter(|s| s.is_public).ok_or_else(server_not_found)?;
                match rest {
                    [] => {
                        let mut v = server_columns(s);
                        if let J::Obj(kv) = &mut v {
                            kv.push(("tags".into(), J::from(s.tags.clone())));
                        }
                        ok(v)
                    }
                    ["channels"] => ok(obj! { "channels" => self.grouped_channels(s) }),
                    _ => {
                        // Newest member first, as recorded (`253`).
                        let mut members: Vec<(&String, &Member)> = s.members.iter().collect();
                        members.sort_by(|a, b| b.1.joined_at_ms.cmp(&a.1.joined_at_ms));
                        let members: Vec<J> = members
                            .into_iter()
                            .filter_map(|(id, m)| {
                                let a = auth.agents.get(id)?;
                                Some(obj! {
                                    "agentId" => id, "role" => &m.role, "joinedAt" => iso8601(m.joined_at_ms),
                                    "username" => &a.username, "displayName" => a.display_name.clone(),
                                    "avatarUrl" => a.avatar_url.clone(), "presence" => "offline",
                                })
                            })
                            .collect();
                        ok(obj! { "members" => members })
                    }
                }
            }
            ["observers", "channels", id, "messages"] => {
                uuid_or_500(id, "channels")?;
                let visible = self
                    .channels
                    .get(*id)
                    .and_then(|c| c.server_id.as_ref())
                    .and_then(|sid| self.servers.get(sid))
                    .is_some_and(|s| s.is_public);
                if !visible {
                    return Err(channel_not_found());
                }
                Ok(json_response(200, &J::Arr(self.page(auth, id, req)?)))
            }
            _ => Err(err(404, "NOT_FOUND", "Not found")),
        }
    }

    fn patch_me(&mut self, auth: &mut AuthState, who: &Authed, req: &Request<Vec<u8>>) -> ApiResult {
        let body = moltchats_body(req)?;
        let fields = [("displayName", 128usize, "Display name"), ("avatarUrl", 2048, "Avatar URL"), ("bio", 256, "Bio")];
        if !fields.iter().any(|(k, _, _)| body.get(*k).is_some()) {
            return Err(ApiError::validation("No valid fields to update"));
        }
        let mut values = Vec::new();
        for (key, max, label) in fields {
            match body.get(key) {
                None => values.push(None),
                Some(Value::String(s)) if s.chars().count() <= max => values.push(Some((!s.is_empty()).then(|| s.clone()))),
                Some(_) => return Err(ApiError::validation(format!("{label} must be at most {max} characters"))),
            }
        }
        let agent = auth.agents.get_mut(&who.agent_id).ok_or_else(agent_not_found)?;
        let mut it = values.into_iter();
        if let Some(v) = it.next().flatten() {
            agent.display_name = v;
        }
        if let Some(v) = it.next().flatten() {
            agent.avatar_url = v;
        }
        if let Some(v) = it.next().flatten() {
            agent.bio = v;
        }
        Ok(json_response(200, &super::auth::profile(agent, false)))
    }

    fn patch_config(&mut self, auth: &mut AuthState, who: &Authed, req: &Request<Vec<u8>>) -> ApiResult {
        let body = moltchats_body(req)?;
        let agent = auth.agents.get_mut(&who.agent_id).ok_or_else(|| err(404, "NOT_FOUND", "Not found"))?;
        let mut c = agent.config.clone();
        let mut any = false;
        if let Some(v) = body.get("webhookUrl") {
            c.webhook_url = v.as_str().map(str::to_owned);
            any = true;
        }
        if let Some(v) = body.get("webhookEvents") {
            let events = v.as_array().ok_or_else(|| ApiError::validation("webhookEvents must be an array"))?;
            let mut list = Vec::new();
            for e in events {
                let e = e.as_str().unwrap_or_default();
                if !WEBHOOK_EVENTS.contains(&e) {
                    return Err(ApiError::validation(format!("Invalid webhook event: {e}")));
                }
                list.push(e.to_owned());
            }
            c.webhook_events = list;
            any = true;
        }
        for (key, lo, hi) in [("idleTimeoutSeconds", 30, 3600), ("maxOutboundPerHour", 1, 1000), ("maxInboundWakesPerHour", 1, 100)] {
            if let Some(v) = body.get(key) {
                let n = v.as_u64().filter(|n| (lo..=hi).contains(n)).ok_or_else(|| ApiError::validation(format!("{key} must be between {lo} and {hi}")))?;
                match key {
                    "idleTimeoutSeconds" => c.idle_timeout_s = n,
                    "maxOutboundPerHour" => c.max_outbound_per_hour = n,
                    _ => c.max_inbound_wakes_per_hour = n,
                }
                any = true;
            }
        }
        if !any {
            return Err(ApiError::validation("No valid fields to update"));
        }
        agent.config = c;
        Ok(json_response(200, &config_json(auth, who)?))
    }

    fn sorted_servers(&self) -> Vec<&ServerRow> {
        let mut list: Vec<&ServerRow> = self.servers.values().collect();
        list.sort_by_key(|s| (s.created_at_ms, s.seq));
        list
    }

    fn my_servers(&self, who: &Authed) -> J {
        let list: Vec<J> = self
            .sorted_servers()
            .into_iter()
            .filter_map(|s| {
                let m = s.members.get(&who.agent_id)?;
                Some(obj! {
                    "id" => &s.id, "name" => &s.name, "description" => s.description.clone(), "iconUrl" => s.icon_url.clone(),
                    "isPublic" => s.is_public, "createdAt" => iso8601(s.created_at_ms), "role" => &m.role,
                    "joinedAt" => iso8601(m.joined_at_ms),
                    // A string here: Postgres count(*) through the driver (`093`).
                    "memberCount" => s.members.len().to_string(),
                    "tags" => s.tags.clone(),
                })
            })
            .collect();
        obj! { "servers" => list }
    }

    fn browse(&self, req: &Request<Vec<u8>>) -> J {
        let limit = query_param(req, "limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20).clamp(1, 100);
        let offset = query_param(req, "offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
        let search = query_param(req, "search").map(|s| s.to_lowercase());
        let tag = query_param(req, "tag");
        let mut list: Vec<&ServerRow> = self
            .sorted_servers()
            .into_iter()
            .filter(|s| s.is_public)
            .filter(|s| search.as_ref().is_none_or(|q| s.name.to_lowercase().contains(q) || s.description.as_ref().is_some_and(|d| d.to_lowercase().contains(q))))
            .collect();
        match query_param(req, "sort").as_deref() {
            Some("new") => list.reverse(),
            _ => list.sort_by(|a, b| b.members.len().cmp(&a.members.len())),
        }
        // The tag filter runs after limit/offset (`077`).
        let servers: Vec<J> = list
            .into_iter()
            .skip(offset)
            .take(limit)
            .filter(|s| tag.as_ref().is_none_or(|t| s.tags.contains(t)))
            .map(|s| {
                obj! {
                    "id" => &s.id, "name" => &s.name, "description" => s.description.clone(), "iconUrl" => s.icon_url.clone(),
                    "ownerAgentId" => &s.owner_id, "isPublic" => s.is_public, "createdAt" => iso8601(s.created_at_ms),
                    "memberCount" => s.members.len().to_string(), "tags" => s.tags.clone(),
                }
            })
            .collect();
        obj! { "servers" => servers }
    }

    fn create_server(&mut self, ctx: &mut Ctx, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>) -> ApiResult {
        // Counted before the trust and validation checks (`068`, `070`).
        let w = self.window(format!("servers:{}", who.agent_id), 5, DAY, ctx.now_ms);
        let result = self.create_server_checked(ctx, auth, who, req, w.allowed);
        Ok(with_headers(result.unwrap_or_else(ApiError::into_response), &w))
    }

    fn create_server_checked(&mut self, ctx: &mut Ctx, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>, allowed: bool) -> ApiResult {
        if !allowed {
            return Err(rate_limited());
        }
        if self.faults.require_trust_for_servers && tier_blocks_servers(auth.tier(&who.agent_id)) {
            return Err(err(403, "INSUFFICIENT_TRUST", "Insufficient trust level for this action"));
        }
        let body = moltchats_body(req)?;
        let name = text(&body, "name").filter(|n| n.chars().count() <= 100);
        let name = name.ok_or_else(|| ApiError::validation("Server name is required and must be at most 100 characters"))?;
        let tags: Vec<String> = body.get("tags").and_then(Value::as_array).map(|a| a.iter().filter_map(|t| t.as_str().map(|t| t.chars().take(32).collect())).collect()).unwrap_or_default();
        if tags.len() > 10 {
            return Err(ApiError::validation("Maximum 10 tags allowed"));
        }
        let id = random_uuid(&mut ctx.rng);
        let now = ctx.now_ms;
        let row = ServerRow {
            id: id.clone(),
            name,
            description: text(&body, "description"),
            icon_url: text(&body, "iconUrl"),
            is_public: body.get("isPublic").and_then(Value::as_bool).unwrap_or(true),
            tags,
            instructions: text(&body, "instructions"),
            owner_id: who.agent_id.clone(),
            report_threshold: 10,
            created_at_ms: now,
            members: BTreeMap::from([(who.agent_id.clone(), Member { role: "owner".into(), joined_at_ms: now })]),
            bans: Vec::new(),
            seq: self.next_seq(),
        };
        let general = random_uuid(&mut ctx.rng);
        let ch = self.channel_row(&general, Some(&id), Some("general"), now);
        self.channels.insert(general, ch);
        let resp = json_response(201, &obj! { "server" => server_columns(&row) });
        self.servers.insert(id, row);
        Ok(resp)
    }

    fn server(&self, id: &str) -> Result<&ServerRow, ApiError> {
        uuid_or_500(id, "servers")?;
        self.servers.get(id).ok_or_else(server_not_found)
    }

    fn server_mut(&mut self, id: &str) -> Result<&mut ServerRow, ApiError> {
        uuid_or_500(id, "servers")?;
        self.servers.get_mut(id).ok_or_else(server_not_found)
    }

    fn server_channels(&self, server_id: &str) -> Vec<&ChannelRow> {
        let mut list: Vec<&ChannelRow> = self.channels.values().filter(|c| c.server_id.as_deref() == Some(server_id)).collect();
        list.sort_by_key(|c| (c.position, c.seq));
        list
    }

    fn server_details(&self, id: &str) -> Result<J, ApiError> {
        let s = self.server(id)?;
        let mut v = server_columns(s);
        if let J::Obj(kv) = &mut v {
            kv.push(("memberCount".into(), J::from(s.members.len())));
            kv.push(("channels".into(), J::Arr(self.server_channels(id).into_iter().map(channel_json).collect())));
            kv.push(("tags".into(), J::from(s.tags.clone())));
        }
        Ok(v)
    }

    /// `{<category or "uncategorized">: [channel…]}` in position order.
    fn grouped_channels(&self, s: &ServerRow) -> J {
        let mut groups: Vec<(String, J)> = Vec::new();
        for c in self.server_channels(&s.id) {
            let key = c.category.clone().unwrap_or_else(|| "uncategorized".into());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, J::Arr(items))) => items.push(channel_json(c)),
                _ => groups.push((key, J::Arr(vec![channel_json(c)]))),
            }
        }
        J::Obj(groups)
    }

    fn patch_server(&mut self, who: &Authed, id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        let body = moltchats_body(req)?;
        let s = self.server_mut(id)?;
        if s.owner_id != who.agent_id {
            return Err(not_owner());
        }
        if let Some(t) = body.get("reportThreshold") {
            let t = t.as_u64().filter(|t| *t >= 3).ok_or_else(|| ApiError::validation("Report threshold must be at least 3"))?;
            s.report_threshold = t;
        }
        if let Some(n) = body.get("name") {
            s.name = n.as_str().filter(|n| !n.is_empty() && n.chars().count() <= 100).ok_or_else(|| ApiError::validation("Server name must be between 1 and 100 characters"))?.to_owned();
        }
        for (key, field) in [("description", &mut s.description), ("iconUrl", &mut s.icon_url), ("instructions", &mut s.instructions)] {
            if let Some(v) = body.get(key) {
                *field = v.as_str().filter(|v| !v.is_empty()).map(str::to_owned);
            }
        }
        if let Some(p) = body.get("isPublic").and_then(Value::as_bool) {
            s.is_public = p;
        }
        Ok(json_response(200, &obj! { "server" => server_columns(s) }))
    }

    fn delete_server(&mut self, who: &Authed, id: &str) -> ApiResult {
        if self.server(id)?.owner_id != who.agent_id {
            return Err(not_owner());
        }
        self.servers.remove(id);
        self.channels.retain(|_, c| c.server_id.as_deref() != Some(id));
        Ok(json_response(200, &ok_true()))
    }

    fn join(&mut self, auth: &AuthState, who: &Authed, id: &str, now: u64) -> ApiResult {
        if auth.tier(&who.agent_id) == "quarantined" {
            return Err(err(403, "AGENT_QUARANTINED", "Agent is quarantined"));
        }
        let s = self.server_mut(id)?;
        if s.bans.iter().any(|b| b.agent_id == who.agent_id) {
            return Err(err(403, "BANNED_FROM_SERVER", "Banned from this server"));
        }
        if s.members.contains_key(&who.agent_id) {
            return Err(err(409, "ALREADY_MEMBER", "Already a member of this server"));
        }
        s.members.insert(who.agent_id.clone(), Member { role: "member".into(), joined_at_ms: now });
        Ok(json_response(201, &ok_true()))
    }

    fn leave(&mut self, who: &Authed, id: &str) -> ApiResult {
        let s = self.server_mut(id)?;
        if s.owner_id == who.agent_id {
            return Err(ApiError::validation("Server owner cannot leave. Transfer ownership or delete the server."));
        }
        if s.members.remove(&who.agent_id).is_none() {
            return Err(not_member());
        }
        Ok(json_response(200, &ok_true()))
    }

    fn server_instructions(&mut self, who: &Authed, id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        let body = moltchats_body(req)?;
        let s = self.server_mut(id)?;
        if s.owner_id != who.agent_id {
            return Err(not_owner());
        }
        s.instructions = text(&body, "instructions");
        Ok(json_response(200, &success_true()))
    }

    fn create_channel(&mut self, ctx: &mut Ctx, who: &Authed, id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        let body = moltchats_body(req)?;
        let s = self.server(id)?;
        if !s.is_admin(&who.agent_id) {
            return Err(not_admin());
        }
        let name = text(&body, "name").filter(|n| n.chars().count() <= 100);
        let name = name.ok_or_else(|| ApiError::validation("Channel name is required and must be at most 100 characters"))?;
        if self.server_channels(id).len() >= MAX_CHANNELS {
            return Err(err(400, "MAX_CHANNELS_REACHED", "Maximum number of channels reached"));
        }
        let cid = random_uuid(&mut ctx.rng);
        let mut row = self.channel_row(&cid, Some(id), Some(&name), ctx.now_ms);
        row.category = text(&body, "category");
        row.kind = text(&body, "type").unwrap_or_else(|| "text".into());
        row.topic = text(&body, "topic");
        row.instructions = text(&body, "instructions");
        row.position = body.get("position").and_then(Value::as_i64).unwrap_or(0);
        let resp = json_response(201, &obj! { "channel" => channel_json(&row) });
        self.channels.insert(cid, row);
        Ok(resp)
    }

    /// A server channel `who` administers. DM channels give `dm_error`.
    fn admin_channel(&mut self, who: &Authed, id: &str, dm_error: ApiError) -> Result<&mut ChannelRow, ApiError> {
        uuid_or_500(id, "channels")?;
        let ch = self.channels.get(id).ok_or_else(channel_not_found)?;
        let Some(sid) = ch.server_id.clone() else { return Err(dm_error) };
        if !self.servers.get(&sid).is_some_and(|s| s.is_admin(&who.agent_id)) {
            return Err(not_admin());
        }
        Ok(self.channels.get_mut(id).expect("checked above"))
    }

    fn patch_channel(&mut self, who: &Authed, id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        let body = moltchats_body(req)?;
        let ch = self.admin_channel(who, id, ApiError::validation("Cannot update DM channels"))?;
        if let Some(n) = body.get("name") {
            let n = n.as_str().filter(|n| !n.is_empty() && n.chars().count() <= 100);
            ch.name = Some(n.ok_or_else(|| ApiError::validation("Channel name must be between 1 and 100 characters"))?.to_owned());
        }
        for (key, field) in [("category", &mut ch.category), ("topic", &mut ch.topic), ("instructions", &mut ch.instructions)] {
            if let Some(v) = body.get(key) {
                *field = v.as_str().filter(|v| !v.is_empty()).map(str::to_owned);
            }
        }
        if let Some(t) = text(&body, "type") {
            ch.kind = t;
        }
        if let Some(p) = body.get("position").and_then(Value::as_i64) {
            ch.position = p;
        }
        Ok(json_response(200, &obj! { "channel" => channel_json(ch) }))
    }

    fn delete_channel(&mut self, who: &Authed, id: &str) -> ApiResult {
        self.admin_channel(who, id, ApiError::validation("Cannot delete DM channels"))?;
        self.channels.remove(id);
        Ok(json_response(200, &ok_true()))
    }

    fn channel_instructions(&mut self, who: &Authed, id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        let body = moltchats_body(req)?;
        let ch = self.admin_channel(who, id, channel_not_found())?;
        ch.instructions = text(&body, "instructions");
        Ok(json_response(200, &success_true()))
    }

    /// May `who` read and write `channel_id`? (server member / DM participant).
    fn check_channel(&self, who: &str, channel_id: &str) -> Result<&ChannelRow, ApiError> {
        uuid_or_500(channel_id, "channels")?;
        let ch = self.channels.get(channel_id).ok_or_else(channel_not_found)?;
        match &ch.server_id {
            None if !ch.participants.iter().any(|p| p == who) => Err(not_dm_participant()),
            Some(sid) if !self.servers.get(sid).is_some_and(|s| s.members.contains_key(who)) => Err(not_member()),
            _ => Ok(ch),
        }
    }

    /// Store a message (REST and WS share this). `limit` is the per-minute cap for this agent
    /// in this channel (REST: 30; WS: by trust tier).
    #[allow(clippy::too_many_arguments)]
    pub fn post_message(&mut self, ctx: &mut Ctx, _auth: &AuthState, who: &Authed, channel_id: &str, content: &str, content_type: &str, limit: u32) -> Result<MessageRow, ApiError> {
        self.check_channel(&who.agent_id, channel_id)?;
        self.store_message(ctx, who, channel_id, content, content_type, limit, "rest_msg")
    }

    /// Store a message after the permission checks (the WS path checks only its subscription).
    /// `bucket` names the limiter (`rest_msg` or `ws_msg`: REST and WS count separately).
    #[allow(clippy::too_many_arguments)]
    pub fn store_message(&mut self, ctx: &mut Ctx, who: &Authed, channel_id: &str, content: &str, content_type: &str, limit: u32, bucket: &str) -> Result<MessageRow, ApiError> {
        if content.trim().is_empty() {
            return Err(ApiError::validation("Message content cannot be empty"));
        }
        if content.chars().count() > 4000 {
            return Err(ApiError::validation("Message exceeds maximum length of 4000 characters"));
        }
        let w = self.window(format!("{bucket}:{channel_id}:{}", who.agent_id), limit, MINUTE, ctx.now_ms);
        if !w.allowed {
            // Counted here for the WS path; REST 429s are counted in `handle`.
            if bucket == "ws_msg" {
                self.rate_limited += 1;
            }
            return Err(rate_limited());
        }
        let g = self.faults.timestamp_granularity_ms.max(1);
        // Distinct, increasing timestamps (the real server stores microseconds), so `before=`
        // a message's `createdAt` never hides messages posted in the same millisecond.
        let at = if g == 1 { ctx.now_ms.max(self.last_message_ms + 1) } else { ctx.now_ms - ctx.now_ms % g };
        self.last_message_ms = at;
        let row = MessageRow {
            id: random_uuid(&mut ctx.rng),
            channel_id: channel_id.to_owned(),
            author_id: who.agent_id.clone(),
            content: content.to_owned(),
            content_type: content_type.to_owned(),
            created_at_ms: at,
            reactions: BTreeMap::new(),
        };
        self.message_channel.insert(row.id.clone(), channel_id.to_owned());
        self.messages.entry(channel_id.to_owned()).or_default().push(row.clone());
        self.messages_stored += 1;
        self.fresh.push(row.clone());
        Ok(row)
    }

    /// One history page, newest first (`before=`, `limit=`).
    fn page(&self, auth: &AuthState, channel_id: &str, req: &Request<Vec<u8>>) -> Result<Vec<J>, ApiError> {
        let limit = query_param(req, "limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50).clamp(1, 100);
        let before = match query_param(req, "before") {
            Some(b) => Some(parse_time(&b).ok_or_else(|| ApiError::internal("Invalid time value"))?),
            None => None,
        };
        Ok(self
            .messages
            .get(channel_id)
            .into_iter()
            .flatten()
            .rev()
            .filter(|m| before.is_none_or(|b| m.created_at_ms < b))
            .take(limit)
            .map(|m| message_json(auth, m))
            .collect())
    }

    fn history(&self, auth: &AuthState, who: &Authed, channel_id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        self.check_channel(&who.agent_id, channel_id)?;
        Ok(json_response(200, &J::Arr(self.page(auth, channel_id, req)?)))
    }

    fn react(&mut self, auth: &mut AuthState, who: &Authed, message_id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        let body = moltchats_body(req)?;
        let emoji = text(&body, "emoji").ok_or_else(|| ApiError::validation("Emoji is required"))?;
        uuid_or_500(message_id, "messages")?;
        let not_found = || err(404, "MESSAGE_NOT_FOUND", "Message not found");
        let channel_id = self.message_channel.get(message_id).cloned().ok_or_else(not_found)?;
        self.check_channel(&who.agent_id, &channel_id)?;
        let msg = self.messages.get_mut(&channel_id).and_then(|ms| ms.iter_mut().find(|m| m.id == message_id)).ok_or_else(not_found)?;
        if msg.author_id == who.agent_id {
            return Err(ApiError::validation("Cannot react to your own messages"));
        }
        let voters = msg.reactions.entry(emoji).or_default();
        if !voters.contains(&who.agent_id) {
            voters.push(who.agent_id.clone());
        }
        // Karma goes up on every reaction, repeats included (`176`, `182`).
        if let Some(a) = auth.agents.get_mut(&msg.author_id) {
            a.karma += 1;
        }
        Ok(json_response(201, &success_true()))
    }

    fn unreact(&mut self, who: &Authed, message_id: &str, emoji: &str) -> ApiResult {
        uuid_or_500(message_id, "messages")?;
        let not_found = || err(404, "MESSAGE_NOT_FOUND", "Message not found");
        let channel_id = self.message_channel.get(message_id).cloned().ok_or_else(not_found)?;
        let msg = self.messages.get_mut(&channel_id).and_then(|ms| ms.iter_mut().find(|m| m.id == message_id)).ok_or_else(not_found)?;
        if let Some(set) = msg.reactions.get_mut(emoji) {
            set.retain(|a| *a != who.agent_id);
            if set.is_empty() {
                msg.reactions.remove(emoji);
            }
        }
        Ok(json_response(200, &success_true()))
    }

    fn feed(&self, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>) -> J {
        let limit = query_param(req, "limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50).clamp(1, 100);
        let mut all: Vec<(&MessageRow, &ChannelRow, &ServerRow)> = Vec::new();
        for s in self.servers.values().filter(|s| s.members.contains_key(&who.agent_id)) {
            for c in self.server_channels(&s.id) {
                for m in self.messages.get(&c.id).into_iter().flatten() {
                    all.push((m, c, s));
                }
            }
        }
        all.sort_by(|a, b| b.0.created_at_ms.cmp(&a.0.created_at_ms));
        J::Arr(
            all.into_iter()
                .take(limit)
                .map(|(m, c, s)| {
                    obj! {
                        "id" => &m.id, "channelId" => &m.channel_id, "content" => &m.content, "contentType" => &m.content_type,
                        "metadata" => J::Null, "createdAt" => iso8601(m.created_at_ms), "editedAt" => J::Null,
                        "channelName" => c.name.clone(), "serverName" => &s.name, "serverId" => &s.id,
                        "agent" => author_json(auth, &m.author_id),
                    }
                })
                .collect(),
        )
    }

    fn search(&self, auth: &AuthState, req: &Request<Vec<u8>>) -> Result<J, ApiError> {
        let q = query_param(req, "q").filter(|q| !q.is_empty()).ok_or_else(|| ApiError::validation("Query parameter q is required"))?;
        let q = q.to_lowercase();
        if query_param(req, "type").as_deref() == Some("agents") {
            let mut agents: Vec<&super::auth::Agent> = auth.agents.values().filter(|a| a.username.contains(&q) || a.display_name.as_ref().is_some_and(|d| d.to_lowercase().contains(&q))).collect();
            agents.sort_by_key(|a| a.created_at_ms);
            let results: Vec<J> = agents
                .into_iter()
                .take(20)
                .map(|a| {
                    obj! {
                        "id" => &a.id, "username" => &a.username, "displayName" => a.display_name.clone(),
                        "avatarUrl" => a.avatar_url.clone(), "bio" => a.bio.clone(), "agentType" => "openclaw",
                    }
                })
                .collect();
            return Ok(obj! { "type" => "agents", "results" => results });
        }
        let results: Vec<J> = self
            .sorted_servers()
            .into_iter()
            .filter(|s| s.is_public && (s.name.to_lowercase().contains(&q) || s.description.as_ref().is_some_and(|d| d.to_lowercase().contains(&q))))
            .take(20)
            .map(|s| {
                obj! {
                    "id" => &s.id, "name" => &s.name, "description" => s.description.clone(), "iconUrl" => s.icon_url.clone(),
                    "isPublic" => s.is_public, "createdAt" => iso8601(s.created_at_ms),
                }
            })
            .collect();
        Ok(obj! { "type" => "servers", "results" => results })
    }

    fn is_blocked_between(&self, a: &str, b: &str) -> bool {
        self.blocks.get(a).is_some_and(|s| s.contains_key(b)) || self.blocks.get(b).is_some_and(|s| s.contains_key(a))
    }

    fn friend_request(&mut self, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>, now: u64, rng: &mut rand_chacha::ChaCha20Rng) -> ApiResult {
        if auth.tier(&who.agent_id) == "quarantined" {
            return Err(err(403, "INSUFFICIENT_TRUST", "Insufficient trust level for this action"));
        }
        let body = moltchats_body(req)?;
        let target = text(&body, "target").ok_or_else(|| ApiError::validation("target username is required"))?;
        // Exact, case-sensitive match (`131`).
        let target_id = auth.agent_id_exact(&target).ok_or_else(agent_not_found)?;
        if target_id == who.agent_id {
            return Err(err(400, "CANNOT_FRIEND_SELF", "Cannot send friend request to yourself"));
        }
        if self.is_blocked_between(&who.agent_id, &target_id) {
            return Err(err(403, "BLOCKED", "This agent is blocked"));
        }
        if self.friendship(&who.agent_id, &target_id).is_some() {
            return Err(err(409, "ALREADY_FRIENDS", "Already friends with this agent"));
        }
        if self.friend_requests.iter().any(|r| (r.from == who.agent_id && r.to == target_id) || (r.to == who.agent_id && r.from == target_id)) {
            return Err(err(409, "FRIEND_REQUEST_EXISTS", "Friend request already sent"));
        }
        let id = random_uuid(rng);
        self.friend_requests.push(FriendRequestRow { id: id.clone(), from: who.agent_id.clone(), to: target_id, created_at_ms: now });
        Ok(json_response(201, &obj! { "requestId" => id }))
    }

    fn friendship(&self, a: &str, b: &str) -> Option<&Friendship> {
        self.friendships.iter().find(|f| (f.a == a && f.b == b) || (f.a == b && f.b == a))
    }

    fn friend_answer(&mut self, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>, accept: bool, now: u64, rng: &mut rand_chacha::ChaCha20Rng) -> ApiResult {
        let body = moltchats_body(req)?;
        let id = text(&body, "requestId").ok_or_else(|| ApiError::validation("requestId is required"))?;
        uuid_or_500(&id, "friend_requests")?;
        let pos = self
            .friend_requests
            .iter()
            .position(|r| r.id == id && r.to == who.agent_id)
            .ok_or_else(|| err(404, "FRIEND_REQUEST_NOT_FOUND", "Friend request not found"))?;
        let row = self.friend_requests.remove(pos);
        if !accept {
            return Ok(json_response(200, &ok_true()));
        }
        let dm = random_uuid(rng);
        let mut ch = self.channel_row(&dm, None, None, now);
        ch.kind = "dm".into();
        ch.participants = vec![row.from.clone(), row.to.clone()];
        self.channels.insert(dm.clone(), ch);
        self.friendships.push(Friendship { a: row.from.clone(), b: row.to, dm_channel_id: dm.clone(), since_ms: now });
        let friend = auth.agents.get(&row.from).map(|a| a.username.clone()).unwrap_or_default();
        Ok(json_response(200, &obj! { "friendUsername" => friend, "dmChannelId" => dm }))
    }

    /// End a friendship and drop its DM channel and messages.
    fn drop_friendship(&mut self, a: &str, b: &str) -> bool {
        let Some(pos) = self.friendships.iter().position(|f| (f.a == a && f.b == b) || (f.a == b && f.b == a)) else { return false };
        let f = self.friendships.remove(pos);
        self.channels.remove(&f.dm_channel_id);
        if let Some(ms) = self.messages.remove(&f.dm_channel_id) {
            for m in ms {
                self.message_channel.remove(&m.id);
            }
        }
        true
    }

    fn unfriend(&mut self, auth: &AuthState, who: &Authed, name: &str) -> ApiResult {
        let target = auth.agent_id_by_username(name).ok_or_else(agent_not_found)?;
        if !self.drop_friendship(&who.agent_id, &target) {
            return Err(err(400, "NOT_FRIENDS", "Not friends with this agent"));
        }
        Ok(json_response(200, &ok_true()))
    }

    fn friends(&self, auth: &AuthState, who: &Authed) -> J {
        let list: Vec<J> = self
            .friendships
            .iter()
            .filter_map(|f| {
                let other = if f.a == who.agent_id { &f.b } else if f.b == who.agent_id { &f.a } else { return None };
                let a = auth.agents.get(other)?;
                Some(obj! {
                    "friendId" => &a.id, "dmChannelId" => &f.dm_channel_id, "createdAt" => iso8601(f.since_ms),
                    "username" => &a.username, "displayName" => a.display_name.clone(), "avatarUrl" => a.avatar_url.clone(),
                    "presence" => "offline",
                })
            })
            .collect();
        obj! { "friends" => list }
    }

    fn requests(&self, auth: &AuthState, who: &Authed) -> J {
        let person = |id: &str| auth.agents.get(id).map(|a| (a.username.clone(), a.display_name.clone(), a.avatar_url.clone())).unwrap_or_default();
        let incoming: Vec<J> = self
            .friend_requests
            .iter()
            .filter(|r| r.to == who.agent_id)
            .map(|r| {
                let (u, d, a) = person(&r.from);
                obj! { "id" => &r.id, "fromUsername" => u, "fromDisplayName" => d, "fromAvatarUrl" => a, "createdAt" => iso8601(r.created_at_ms) }
            })
            .collect();
        let outgoing: Vec<J> = self
            .friend_requests
            .iter()
            .filter(|r| r.from == who.agent_id)
            .map(|r| {
                let (u, d, a) = person(&r.to);
                obj! { "id" => &r.id, "toUsername" => u, "toDisplayName" => d, "toAvatarUrl" => a, "createdAt" => iso8601(r.created_at_ms) }
            })
            .collect();
        obj! { "incoming" => incoming, "outgoing" => outgoing }
    }

    fn list_blocks(&self, auth: &AuthState, who: &Authed) -> J {
        let list: Vec<J> = self
            .blocks
            .get(&who.agent_id)
            .into_iter()
            .flatten()
            .filter_map(|(id, at)| {
                let a = auth.agents.get(id)?;
                Some(obj! { "username" => &a.username, "displayName" => a.display_name.clone(), "avatarUrl" => a.avatar_url.clone(), "blockedAt" => iso8601(*at) })
            })
            .collect();
        obj! { "blocked" => list }
    }

    fn block(&mut self, auth: &AuthState, who: &Authed, username: &str, now: u64) -> ApiResult {
        let target = auth.agent_id_by_username(username).ok_or_else(agent_not_found)?;
        if target == who.agent_id {
            return Err(ApiError::validation("Cannot block yourself"));
        }
        let set = self.blocks.entry(who.agent_id.clone()).or_default();
        if set.contains_key(&target) {
            return Ok(json_response(200, &ok_true()));
        }
        set.insert(target.clone(), now);
        self.friend_requests.retain(|r| !((r.from == who.agent_id && r.to == target) || (r.to == who.agent_id && r.from == target)));
        self.drop_friendship(&who.agent_id, &target);
        Ok(json_response(201, &ok_true()))
    }

    fn pending(&mut self, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>, now: u64) -> ApiResult {
        let w = self.window(format!("pending:{}", who.agent_id), 10, MINUTE, now);
        if !w.allowed {
            return Ok(with_headers(rate_limited().into_response(), &w));
        }
        let since = match query_param(req, "since") {
            Some(s) => match parse_time(&s) {
                Some(t) => t,
                None => return Ok(with_headers(ApiError::validation("Invalid \"since\" timestamp").into_response(), &w)),
            },
            None => auth.agents.get(&who.agent_id).map_or(0, |a| a.last_seen_at_ms.unwrap_or(a.created_at_ms)),
        };
        let mut unread = Vec::new();
        for f in self.friendships.iter().filter(|f| f.a == who.agent_id || f.b == who.agent_id) {
            let msgs: Vec<&MessageRow> = self
                .messages
                .get(&f.dm_channel_id)
                .into_iter()
                .flatten()
                .filter(|m| m.author_id != who.agent_id && m.created_at_ms > since)
                .collect();
            if let Some(last) = msgs.last() {
                let friend = if f.a == who.agent_id { &f.b } else { &f.a };
                let a = auth.agents.get(friend);
                let mut content: String = last.content.chars().take(200).collect();
                if last.content.chars().count() > 200 {
                    content.push_str("...");
                }
                unread.push(obj! {
                    "channelId" => &f.dm_channel_id,
                    "friendUsername" => a.map(|a| a.username.clone()),
                    "friendDisplayName" => a.and_then(|a| a.display_name.clone()),
                    "unreadCount" => msgs.len(),
                    "lastMessageContent" => content,
                    "lastMessageAt" => pg_timestamp(last.created_at_ms),
                });
            }
        }
        let requests: Vec<J> = self
            .friend_requests
            .iter()
            .filter(|r| r.to == who.agent_id && r.created_at_ms > since)
            .map(|r| {
                let a = auth.agents.get(&r.from);
                obj! {
                    "id" => &r.id, "fromUsername" => a.map(|a| a.username.clone()),
                    "fromDisplayName" => a.and_then(|a| a.display_name.clone()), "createdAt" => iso8601(r.created_at_ms),
                }
            })
            .collect();
        let checked = if self.faults.non_iso_timestamps { now.to_string() } else { iso8601(now) };
        let body = obj! {
            "hasActivity" => !unread.is_empty() || !requests.is_empty(),
            "unreadDMs" => unread,
            "pendingFriendRequests" => requests,
            "checkedAt" => checked,
            "skillHash" => SKILL_HASH,
        };
        Ok(with_headers(json_response(200, &body), &w))
    }

    fn report(&mut self, auth: &AuthState, who: &Authed, channel_id: &str, req: &Request<Vec<u8>>, now: u64) -> ApiResult {
        let body = moltchats_body(req)?;
        let target = text(&body, "targetUsername").ok_or_else(|| ApiError::validation("targetUsername is required"))?;
        let target_id = auth.agent_id_by_username(&target).ok_or_else(agent_not_found)?;
        uuid_or_500(channel_id, "channels")?;
        let sid = self.channels.get(channel_id).and_then(|c| c.server_id.clone()).ok_or_else(channel_not_found)?;
        let s = self.servers.get(&sid).ok_or_else(channel_not_found)?;
        if !s.members.contains_key(&who.agent_id) {
            return Err(not_member());
        }
        let (channel, reporter) = (channel_id.to_owned(), who.agent_id.clone());
        if self.reports.iter().any(|r| r.0 == channel && r.1 == reporter && r.2 == target_id) {
            // The unique violation surfaces as a 500 with the failed SQL (`198`).
            return Err(ApiError::internal(format!("Failed query: insert into \"channel_reports\" (\"id\", \"channel_id\", \"reporter_agent_id\", \"target_agent_id\", \"reason\", \"created_at\") values (default, $1, $2, $3, $4, default)\nparams: {channel},{reporter},{target_id},")));
        }
        self.reports.push((channel, reporter, target_id.clone()));
        let server_channels: Vec<String> = self.server_channels(&sid).iter().map(|c| c.id.clone()).collect();
        let count = self.reports.iter().filter(|r| r.2 == target_id && server_channels.contains(&r.0)).count() as u64;
        let s = self.servers.get_mut(&sid).expect("checked above");
        if count >= s.report_threshold && !s.bans.iter().any(|b| b.agent_id == target_id) {
            s.members.remove(&target_id);
            s.bans.push(Ban { agent_id: target_id, reason: Some("Auto-ban: report threshold exceeded".into()), auto: true, created_at_ms: now });
        }
        Ok(json_response(201, &success_true()))
    }

    fn admin_server(&mut self, who: &Authed, id: &str) -> Result<&mut ServerRow, ApiError> {
        uuid_or_500(id, "servers")?;
        // Unknown servers fail the membership check first: 403, not 404 (`211`).
        self.servers.get_mut(id).filter(|s| s.is_admin(&who.agent_id)).ok_or_else(not_admin)
    }

    fn ban(&mut self, auth: &AuthState, who: &Authed, id: &str, req: &Request<Vec<u8>>, now: u64) -> ApiResult {
        let body = moltchats_body(req)?;
        let s = self.admin_server(who, id)?;
        let target = text(&body, "targetUsername").ok_or_else(|| ApiError::validation("targetUsername is required"))?;
        let target_id = auth.agent_id_by_username(&target).ok_or_else(agent_not_found)?;
        s.members.remove(&target_id);
        if !s.bans.iter().any(|b| b.agent_id == target_id) {
            s.bans.push(Ban { agent_id: target_id, reason: text(&body, "reason"), auto: false, created_at_ms: now });
        }
        Ok(json_response(201, &success_true()))
    }

    fn unban(&mut self, auth: &AuthState, who: &Authed, id: &str, name: &str) -> ApiResult {
        let s = self.admin_server(who, id)?;
        let target_id = auth.agent_id_by_username(name).ok_or_else(agent_not_found)?;
        s.bans.retain(|b| b.agent_id != target_id);
        Ok(json_response(200, &success_true()))
    }

    fn bans(&mut self, auth: &AuthState, who: &Authed, id: &str) -> Result<J, ApiError> {
        let s = self.admin_server(who, id)?;
        Ok(J::Arr(
            s.bans
                .iter()
                .map(|b| {
                    let a = auth.agents.get(&b.agent_id);
                    obj! {
                        "agentId" => &b.agent_id, "username" => a.map(|a| a.username.clone()),
                        "displayName" => a.and_then(|a| a.display_name.clone()), "reason" => b.reason.clone(),
                        "autoBan" => b.auto, "createdAt" => iso8601(b.created_at_ms),
                    }
                })
                .collect(),
        ))
    }

    fn trust_me(&self, auth: &AuthState, who: &Authed) -> J {
        let agent = auth.agents.get(&who.agent_id);
        let t = agent.and_then(|a| a.trust.as_ref());
        let name = |id: &str| auth.agents.get(id).map(|a| a.username.clone());
        let given: Vec<J> = self
            .vouches
            .iter()
            .filter(|v| v.voucher == who.agent_id && !v.revoked)
            .map(|v| obj! { "voucheeId" => &v.vouchee, "username" => name(&v.vouchee), "weight" => 1, "createdAt" => iso8601(v.created_at_ms) })
            .collect();
        let received: Vec<J> = self
            .vouches
            .iter()
            .filter(|v| v.vouchee == who.agent_id && !v.revoked)
            .map(|v| obj! { "voucherId" => &v.voucher, "username" => name(&v.voucher), "weight" => 1, "createdAt" => iso8601(v.created_at_ms) })
            .collect();
        let challenges: Vec<J> = self
            .challenges
            .iter()
            .filter(|c| c.suspect == who.agent_id)
            .take(10)
            .map(|c| obj! { "id" => &c.id, "status" => "active", "triggeredBy" => "flags", "createdAt" => iso8601(c.created_at_ms), "completedAt" => J::Null })
            .collect();
        let karma = agent.map_or(0, |a| a.karma);
        obj! {
            "tier" => auth.tier(&who.agent_id),
            "eigentrustScore" => t.map_or(J::from(0), |t| J::from(t.score)),
            "normalizedKarma" => if t.is_some() { J::from((karma as f64 / 10.0).clamp(0.0, 1.0)) } else { J::from(0) },
            "isSeed" => t.is_some_and(|t| t.tier == "seed"),
            "computedAt" => t.map(|t| iso8601(t.computed_at_ms)),
            "vouchesGiven" => given,
            "vouchesReceived" => received,
            "flagsReceived" => self.flags.iter().filter(|f| f.1 == who.agent_id).count(),
            "challenges" => challenges,
        }
    }

    fn trust_challenge(&self, who: &Authed, id: &str) -> Result<J, ApiError> {
        uuid_or_500(id, "trust_challenges")?;
        let c = self.challenges.iter().find(|c| c.id == id).ok_or_else(|| err(404, "NOT_FOUND", "Not found"))?;
        if c.suspect != who.agent_id && !c.votes.iter().any(|v| v.0 == who.agent_id) {
            return Err(err(403, "FORBIDDEN", "Forbidden"));
        }
        let votes: Vec<J> = c.votes.iter().map(|(v, verdict, at)| obj! { "voterId" => v, "verdict" => verdict, "createdAt" => iso8601(*at) }).collect();
        Ok(obj! {
            "id" => &c.id, "suspectId" => &c.suspect, "channelId" => &c.channel_id, "status" => "active",
            "triggeredBy" => "flags", "createdAt" => iso8601(c.created_at_ms), "completedAt" => J::Null, "votes" => votes,
        })
    }

    /// WS `vouch`: `Ok(())` → `vouch_ack`; `Err(message)` → `TRUST_ERROR`.
    pub fn vouch(&mut self, auth: &AuthState, voucher: &str, target: &str, now: u64) -> Result<(), &'static str> {
        if !matches!(auth.tier(voucher), "seed" | "trusted" | "provisional") {
            return Err("Insufficient trust level for this action");
        }
        let target_id = auth.agent_id_by_username(target).ok_or("Agent not found")?;
        if target_id == voucher {
            return Err("Cannot vouch for yourself");
        }
        match self.vouches.iter().find(|v| v.voucher == voucher && v.vouchee == target_id) {
            // Re-vouching after a revoke answers vouch_ack but the vouch stays revoked (`18`).
            Some(v) if !v.revoked => Err("Already vouching for this agent"),
            Some(_) => Ok(()),
            None => {
                self.vouches.push(Vouch { voucher: voucher.into(), vouchee: target_id, created_at_ms: now, revoked: false });
                Ok(())
            }
        }
    }

    /// WS `vouch_revoke`: always acknowledged.
    pub fn vouch_revoke(&mut self, auth: &AuthState, voucher: &str, target: &str) {
        if let Some(target_id) = auth.agent_id_by_username(target) {
            for v in self.vouches.iter_mut().filter(|v| v.voucher == voucher && v.vouchee == target_id) {
                v.revoked = true;
            }
        }
    }

    /// WS `flag`: `Ok(())` → `flag_ack`; `Err(message)` → `TRUST_ERROR`.
    pub fn flag(&mut self, auth: &AuthState, flagger: &str, target: &str, now: u64) -> Result<(), &'static str> {
        let target_id = auth.agent_id_by_username(target).ok_or("Agent not found")?;
        if target_id == flagger {
            return Err("Cannot flag yourself");
        }
        if self.flags.iter().any(|f| f.0 == flagger && f.1 == target_id && now < f.2 + DAY) {
            return Err("Already flagged this agent recently");
        }
        self.flags.push((flagger.into(), target_id, now));
        Ok(())
    }
}

/// `GET /agents/@me/config` body (404 NOT_FOUND without an agent row, e.g. an observer).
fn config_json(auth: &AuthState, who: &Authed) -> Result<J, ApiError> {
    let a = auth.agents.get(&who.agent_id).ok_or_else(|| err(404, "NOT_FOUND", "Not found"))?;
    let c = &a.config;
    Ok(obj! {
        "agentId" => &a.id, "webhookUrl" => c.webhook_url.clone(), "webhookEvents" => c.webhook_events.clone(),
        "idleTimeoutSeconds" => c.idle_timeout_s, "maxOutboundPerHour" => c.max_outbound_per_hour,
        "maxInboundWakesPerHour" => c.max_inbound_wakes_per_hour, "heartbeatHintSeconds" => 14_400,
    })
}

/// Every server column, in table order (create/patch answers, server details).
fn server_columns(s: &ServerRow) -> J {
    obj! {
        "id" => &s.id, "name" => &s.name, "description" => s.description.clone(), "iconUrl" => s.icon_url.clone(),
        "ownerAgentId" => &s.owner_id, "isPublic" => s.is_public, "maxMembers" => 500,
        "instructions" => s.instructions.clone(), "reportThreshold" => s.report_threshold,
        "createdAt" => iso8601(s.created_at_ms),
    }
}

fn channel_json(c: &ChannelRow) -> J {
    obj! {
        "id" => &c.id, "serverId" => c.server_id.clone(), "category" => c.category.clone(), "name" => c.name.clone(),
        "type" => &c.kind, "topic" => c.topic.clone(), "instructions" => c.instructions.clone(), "position" => c.position,
    }
}

/// A message's author as both REST and WS frames show it.
pub fn author_json(auth: &AuthState, agent_id: &str) -> J {
    let agent = auth.agents.get(agent_id);
    obj! {
        "id" => agent_id,
        "username" => agent.map(|a| a.username.clone()),
        "displayName" => agent.and_then(|a| a.display_name.clone()),
        "avatarUrl" => agent.and_then(|a| a.avatar_url.clone()),
    }
}

/// The answer to `POST /channels/:id/messages`.
pub fn posted_json(auth: &AuthState, m: &MessageRow) -> J {
    obj! {
        "id" => &m.id, "channelId" => &m.channel_id, "content" => &m.content, "contentType" => &m.content_type,
        "createdAt" => iso8601(m.created_at_ms), "agent" => author_json(auth, &m.author_id),
    }
}

/// A message as channel history returns it.
pub fn message_json(auth: &AuthState, m: &MessageRow) -> J {
    obj! {
        "id" => &m.id, "channelId" => &m.channel_id, "content" => &m.content, "contentType" => &m.content_type,
        "metadata" => J::Null, "createdAt" => iso8601(m.created_at_ms), "editedAt" => J::Null,
        "agent" => author_json(auth, &m.author_id),
    }
}

/// `POST /webhooks/test`: deliver `{"event":"test",…}` to `url` (plain `http://` only) and
/// report the receiver's status, or `{success:false, error}` like Node's fetch would.
fn webhook_test(url: &str, agent_id: &str, now: u64) -> J {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return obj! { "success" => false, "error" => format!("Failed to parse URL from {url}") };
    };
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let body = serde_json::to_string(&obj! {
        "event" => "test", "agentId" => agent_id, "message" => "This is a test webhook from MoltChats", "timestamp" => iso8601(now),
    })
    .expect("serialise");
    let attempt = || -> std::io::Result<(u16, String)> {
        use std::net::ToSocketAddrs;
        let addr = host.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        let request = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\nuser-agent: node\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        s.write_all(request.as_bytes())?;
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf)?;
        let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned();
        let mut parts = line.splitn(3, ' ');
        let code = parts.nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other("bad status line"))?;
        Ok((code, parts.next().unwrap_or_default().to_owned()))
    };
    match attempt() {
        Ok((code, text)) => obj! { "success" => true, "statusCode" => code, "statusText" => text },
        Err(_) => obj! { "success" => false, "error" => "fetch failed" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_both_ways() {
        for ms in [0u64, 1_767_225_600_123, 1_790_000_000_000, 951_782_400_000] {
            assert_eq!(parse_time(&iso8601(ms)), Some(ms));
        }
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(parse_time("1767225600000"), Some(1_767_225_600_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn postgres_text_timestamp() {
        assert_eq!(pg_timestamp(1_767_225_600_123), "2026-01-01 00:00:00.123000+00");
    }
}
