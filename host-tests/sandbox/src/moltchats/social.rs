//! MoltChats beyond identity (PROTOCOL.md §1 REST surface): profiles, servers, channels,
//! messages, reactions, friends with DM channels, blocks, pending activity — plus the rate
//! limits the real service applies (fixed windows) and switchable faults for tests.
//!
//! Seeded with one public server ([`SEED_SERVER_ID`]) holding `#general`
//! ([`SEED_CHANNEL_ID`]) so a new agent can join and talk at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use http::{Request, Response};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::auth::{AuthState, Authed};
use crate::Ctx;
use crate::common::{ApiError, ApiResult, iso8601, json_response, parse_json_body, random_uuid, req_str};

pub const SEED_SERVER_ID: &str = "00000000-0000-4000-8000-000000000001";
pub const SEED_CHANNEL_ID: &str = "00000000-0000-4000-8000-000000000002";
const SEED_OWNER_ID: &str = "00000000-0000-4000-8000-0000000000ff";

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const MAX_CHANNELS: usize = 50;

/// Switches tests flip (in-process with `Sandbox::with_state`, or over HTTP with
/// `POST /_sandbox/moltchats/faults`). Defaults behave like the real service.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Messages per minute per agent per channel (REST and WS). Real: 30, as low as 3 by tier.
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
    /// `POST /servers` answers 403 INSUFFICIENT_TRUST (new agents on the real service).
    pub require_trust_for_servers: bool,
    /// WS: drop the socket when the next message is sent (after storing it, before the ack).
    pub ws_drop_on_next_send: bool,
    /// WS: store the next message but never send its ack.
    pub ws_lose_next_ack: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            channel_messages_per_minute: 30,
            fail_next_with_429: 0,
            reset_in_s: 5,
            timestamp_granularity_ms: 1,
            non_iso_timestamps: false,
            require_trust_for_servers: false,
            ws_drop_on_next_send: false,
            ws_lose_next_ack: false,
        }
    }
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
    pub created_at_ms: u64,
    pub members: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub id: String,
    /// `None` for a DM channel.
    pub server_id: Option<String>,
    pub name: String,
    pub category: Option<String>,
    pub kind: String,
    pub topic: Option<String>,
    pub position: u64,
    pub created_at_ms: u64,
    /// DM channels: the two agents.
    pub participants: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: String,
    pub channel_id: String,
    pub author_id: String,
    pub content: String,
    pub content_type: String,
    pub created_at_ms: u64,
    pub reactions: BTreeMap<String, BTreeSet<String>>,
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
    /// Fixed-window counters: key → (window start ms, count).
    windows: HashMap<String, (u64, u32)>,
    /// Every 429 this sandbox answered (any reason), for assertions.
    pub rate_limited: u64,
    /// Messages stored, across REST and WS.
    pub messages_stored: u64,
    /// Messages stored since the gateway last broadcast them.
    pub fresh: Vec<MessageRow>,
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
            windows: HashMap::new(),
            rate_limited: 0,
            messages_stored: 0,
            fresh: Vec::new(),
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
                created_at_ms: 0,
                members: BTreeSet::from([SEED_OWNER_ID.to_owned()]),
            },
        );
        s.channels.insert(SEED_CHANNEL_ID.into(), channel_row(SEED_CHANNEL_ID, Some(SEED_SERVER_ID), "general", None, None, 0, 0));
        s
    }
}

fn channel_row(id: &str, server: Option<&str>, name: &str, category: Option<String>, topic: Option<String>, position: u64, now: u64) -> ChannelRow {
    ChannelRow {
        id: id.into(),
        server_id: server.map(str::to_owned),
        name: name.into(),
        category,
        kind: "text".into(),
        topic,
        position,
        created_at_ms: now,
        participants: vec![],
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
    ApiError::new(429, "RATE_LIMITED", "Rate limit exceeded, retry later")
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

impl SocialState {
    /// Fixed window of `period` aligned to the epoch, like the real service.
    fn window(&mut self, key: String, limit: u32, period: u64, now: u64) -> Window {
        let start = now - now % period;
        let entry = self.windows.entry(key).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        let allowed = entry.1 < limit;
        if allowed {
            entry.1 += 1;
        }
        Window { allowed, limit, remaining: limit - entry.1.min(limit), reset_s: (start + period).div_ceil(1000) }
    }

    /// Route one Bearer-protected request; `None` when no route here matches.
    pub fn handle(&mut self, ctx: &mut Ctx, auth: &mut AuthState, req: &Request<Vec<u8>>, segs: &[&str]) -> Option<ApiResult> {
        let method = req.method().as_str();
        let known = matches!(
            (method, segs),
            ("PATCH", ["agents", "@me"])
                | ("GET", ["agents", "@me", "servers" | "pending"])
                | ("GET" | "POST", ["servers"])
                | ("POST", ["servers", _, "join"])
                | ("GET" | "POST", ["servers", _, "channels"])
                | ("GET" | "POST", ["channels", _, "messages"])
                | ("POST", ["messages", _, "react"])
                | ("DELETE", ["messages", _, "react", _])
                | ("POST", ["friends", "request" | "accept" | "reject"])
                | ("GET", ["friends"] | ["friends", "requests"] | ["blocks"])
                | ("POST" | "DELETE", ["blocks", _])
        );
        if !known {
            return None;
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
        let segs: Vec<String> = segs.iter().map(|s| decode(s)).collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let now = ctx.now_ms;
        let result = match (method, segs.as_slice()) {
            ("PATCH", ["agents", "@me"]) => self.patch_me(auth, &who, req),
            ("GET", ["agents", "@me", "servers"]) => {
                let servers: Vec<Value> = self.servers.values().filter(|s| s.members.contains(&who.agent_id)).map(server_json).collect();
                Ok(json_response(200, &json!({ "servers": servers })))
            }
            ("GET", ["agents", "@me", "pending"]) => self.pending(auth, &who, req, now),
            ("GET", ["servers"]) => self.browse(req),
            ("POST", ["servers"]) => self.create_server(ctx, &who, req),
            ("POST", ["servers", id, "join"]) => self.join(&who, id),
            ("GET", ["servers", id, "channels"]) => self.list_channels(&who, id),
            ("POST", ["servers", id, "channels"]) => self.create_channel(ctx, &who, id, req),
            ("POST", ["channels", id, "messages"]) => {
                let body = match parse_json_body(req.body()) {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e)),
                };
                let content = body.get("content").and_then(Value::as_str).unwrap_or_default().to_owned();
                let content_type = body.get("contentType").and_then(Value::as_str).unwrap_or("text").to_owned();
                self.post_message(ctx, auth, &who, id, &content, &content_type)
                    .map(|m| json_response(201, &message_json(auth, &m)))
            }
            ("GET", ["channels", id, "messages"]) => self.history(auth, &who, id, req),
            ("POST", ["messages", id, "react"]) => self.react(&who, id, req, true, None),
            ("DELETE", ["messages", id, "react", emoji]) => self.react(&who, id, req, false, Some(emoji)),
            ("POST", ["friends", "request"]) => self.friend_request(auth, &who, req, now, &mut ctx.rng),
            ("POST", ["friends", "accept"]) => self.friend_answer(auth, &who, req, true, now, &mut ctx.rng),
            ("POST", ["friends", "reject"]) => self.friend_answer(auth, &who, req, false, now, &mut ctx.rng),
            ("GET", ["friends"]) => Ok(self.friends(auth, &who)),
            ("GET", ["friends", "requests"]) => Ok(self.requests(auth, &who)),
            ("GET", ["blocks"]) => Ok(self.list_blocks(auth, &who)),
            ("POST", ["blocks", name]) => self.block(auth, &who, name, true, now),
            ("DELETE", ["blocks", name]) => self.block(auth, &who, name, false, now),
            _ => return None,
        };
        if let Ok(resp) = &result
            && resp.status() == 429
        {
            self.rate_limited += 1;
        }
        Some(result)
    }

    fn patch_me(&mut self, auth: &mut AuthState, who: &Authed, req: &Request<Vec<u8>>) -> ApiResult {
        let body = parse_json_body(req.body())?;
        let fields = [("displayName", 128usize), ("bio", 256), ("avatarUrl", 2048)];
        if !fields.iter().any(|(k, _)| body.get(*k).is_some()) {
            return Err(ApiError::validation("body must have at least one of displayName, bio, avatarUrl"));
        }
        let mut values = Vec::new();
        for (key, max) in fields {
            match body.get(key) {
                None => values.push(None),
                Some(Value::String(s)) if s.encode_utf16().count() <= max => values.push(Some(s.clone())),
                Some(_) => return Err(ApiError::validation(format!("body/{key} must be a string of at most {max} characters"))),
            }
        }
        let agent = auth.agents.get_mut(&who.agent_id).ok_or_else(|| ApiError::new(404, "AGENT_NOT_FOUND", "Agent not found"))?;
        let mut it = values.into_iter();
        let (d, b, a) = (it.next().flatten(), it.next().flatten(), it.next().flatten());
        if d.is_some() {
            agent.display_name = d;
        }
        if b.is_some() {
            agent.bio = b;
        }
        if a.is_some() {
            agent.avatar_url = a;
        }
        Ok(json_response(200, &super::auth::profile(agent)))
    }

    fn browse(&self, req: &Request<Vec<u8>>) -> ApiResult {
        let limit = match query_param(req, "limit") {
            Some(l) => l.parse::<usize>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| ApiError::validation("querystring/limit must be 1-100"))?,
            None => 50,
        };
        let offset = query_param(req, "offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
        let search = query_param(req, "search").map(|s| s.to_lowercase());
        let tag = query_param(req, "tag");
        let mut list: Vec<&ServerRow> = self
            .servers
            .values()
            .filter(|s| s.is_public)
            .filter(|s| search.as_ref().is_none_or(|q| s.name.to_lowercase().contains(q) || s.description.as_ref().is_some_and(|d| d.to_lowercase().contains(q))))
            .filter(|s| tag.as_ref().is_none_or(|t| s.tags.contains(t)))
            .collect();
        match query_param(req, "sort").as_deref() {
            Some("new") => list.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(a.id.cmp(&b.id))),
            None | Some("hot") | Some("popular") => list.sort_by(|a, b| b.members.len().cmp(&a.members.len()).then(a.id.cmp(&b.id))),
            Some(_) => return Err(ApiError::validation("querystring/sort must be one of hot, new, popular")),
        }
        let servers: Vec<Value> = list.into_iter().skip(offset).take(limit).map(server_json).collect();
        Ok(json_response(200, &json!({ "servers": servers })))
    }

    fn create_server(&mut self, ctx: &mut Ctx, who: &Authed, req: &Request<Vec<u8>>) -> ApiResult {
        if self.faults.require_trust_for_servers {
            return Err(ApiError::new(403, "INSUFFICIENT_TRUST", "Your trust tier does not allow creating servers yet"));
        }
        let body = parse_json_body(req.body())?;
        let name = req_str(&body, "name")?;
        if name.is_empty() || name.encode_utf16().count() > 100 {
            return Err(ApiError::validation("body/name must be 1-100 characters"));
        }
        let w = self.window(format!("servers:{}", who.agent_id), 5, DAY, ctx.now_ms);
        if !w.allowed {
            return Ok(with_headers(rate_limited().into_response(), &w));
        }
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let id = random_uuid(&mut ctx.rng);
        let row = ServerRow {
            id: id.clone(),
            name: name.to_owned(),
            description: text("description"),
            icon_url: text("iconUrl"),
            is_public: body.get("isPublic").and_then(Value::as_bool).unwrap_or(true),
            tags: body.get("tags").and_then(Value::as_array).map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()).unwrap_or_default(),
            instructions: text("instructions"),
            owner_id: who.agent_id.clone(),
            created_at_ms: ctx.now_ms,
            members: BTreeSet::from([who.agent_id.clone()]),
        };
        let general = random_uuid(&mut ctx.rng);
        self.channels.insert(general.clone(), channel_row(&general, Some(&id), "general", None, None, 0, ctx.now_ms));
        let resp = json_response(201, &json!({ "server": server_json(&row) }));
        self.servers.insert(id, row);
        Ok(with_headers(resp, &w))
    }

    fn server(&self, id: &str) -> Result<&ServerRow, ApiError> {
        self.servers.get(id).ok_or_else(|| ApiError::new(404, "SERVER_NOT_FOUND", "Server not found"))
    }

    fn join(&mut self, who: &Authed, id: &str) -> ApiResult {
        let server = self.servers.get_mut(id).ok_or_else(|| ApiError::new(404, "SERVER_NOT_FOUND", "Server not found"))?;
        if !server.members.insert(who.agent_id.clone()) {
            return Err(ApiError::new(409, "ALREADY_MEMBER", "Already a member of this server"));
        }
        Ok(json_response(201, &json!({ "ok": true })))
    }

    fn list_channels(&self, who: &Authed, id: &str) -> ApiResult {
        let server = self.server(id)?;
        if !server.is_public && !server.members.contains(&who.agent_id) {
            return Err(ApiError::new(403, "NOT_SERVER_MEMBER", "Not a member of this server"));
        }
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut chans: Vec<&ChannelRow> = self.channels.values().filter(|c| c.server_id.as_deref() == Some(id)).collect();
        chans.sort_by_key(|c| (c.position, c.created_at_ms));
        for c in chans {
            groups.entry(c.category.clone().unwrap_or_else(|| "uncategorized".into())).or_default().push(channel_json(c));
        }
        Ok(json_response(200, &json!({ "channels": groups })))
    }

    fn create_channel(&mut self, ctx: &mut Ctx, who: &Authed, id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        let server = self.server(id)?;
        if server.owner_id != who.agent_id {
            return Err(ApiError::new(403, "NOT_SERVER_OWNER", "Only the server owner can do this"));
        }
        let body = parse_json_body(req.body())?;
        let name = req_str(&body, "name")?;
        if name.is_empty() || name.len() > 100 {
            return Err(ApiError::validation("body/name must be 1-100 characters"));
        }
        let count = self.channels.values().filter(|c| c.server_id.as_deref() == Some(id)).count();
        if count >= MAX_CHANNELS {
            return Err(ApiError::new(400, "MAX_CHANNELS_REACHED", "This server has the maximum number of channels"));
        }
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let cid = random_uuid(&mut ctx.rng);
        let row = channel_row(&cid, Some(id), name, text("category"), text("topic"), count as u64, ctx.now_ms);
        let resp = json_response(201, &json!({ "channel": channel_json(&row) }));
        self.channels.insert(cid, row);
        Ok(resp)
    }

    /// May `who` read/write `channel_id`? (server member / DM participant; public servers
    /// are readable by anyone).
    fn check_channel(&self, who: &str, channel_id: &str, write: bool) -> Result<&ChannelRow, ApiError> {
        let ch = self.channels.get(channel_id).ok_or_else(|| ApiError::new(404, "CHANNEL_NOT_FOUND", "Channel not found"))?;
        match &ch.server_id {
            None if !ch.participants.iter().any(|p| p == who) => Err(ApiError::new(403, "NOT_DM_PARTICIPANT", "Not a participant of this DM")),
            Some(sid) => {
                let s = self.server(sid)?;
                if s.members.contains(who) || (!write && s.is_public) {
                    Ok(ch)
                } else {
                    Err(ApiError::new(403, "NOT_SERVER_MEMBER", "Not a member of this server"))
                }
            }
            None => Ok(ch),
        }
    }

    /// Store a message (REST and WS share this, and the per-channel limit).
    pub fn post_message(&mut self, ctx: &mut Ctx, _auth: &AuthState, who: &Authed, channel_id: &str, content: &str, content_type: &str) -> Result<MessageRow, ApiError> {
        self.check_channel(&who.agent_id, channel_id, true)?;
        if content.is_empty() {
            return Err(ApiError::validation("body/content must NOT have fewer than 1 characters"));
        }
        if content.encode_utf16().count() > 4000 {
            return Err(ApiError::new(400, "MESSAGE_TOO_LONG", "Message exceeds 4000 characters"));
        }
        let limit = self.faults.channel_messages_per_minute;
        let w = self.window(format!("msg:{}:{channel_id}", who.agent_id), limit, MINUTE, ctx.now_ms);
        if !w.allowed {
            self.rate_limited += 1;
            return Err(rate_limited());
        }
        let g = self.faults.timestamp_granularity_ms.max(1);
        let row = MessageRow {
            id: random_uuid(&mut ctx.rng),
            channel_id: channel_id.to_owned(),
            author_id: who.agent_id.clone(),
            content: content.to_owned(),
            content_type: content_type.to_owned(),
            created_at_ms: ctx.now_ms - ctx.now_ms % g,
            reactions: BTreeMap::new(),
        };
        self.message_channel.insert(row.id.clone(), channel_id.to_owned());
        self.messages.entry(channel_id.to_owned()).or_default().push(row.clone());
        self.messages_stored += 1;
        self.fresh.push(row.clone());
        Ok(row)
    }

    fn history(&self, auth: &AuthState, who: &Authed, channel_id: &str, req: &Request<Vec<u8>>) -> ApiResult {
        self.check_channel(&who.agent_id, channel_id, false)?;
        let limit = match query_param(req, "limit") {
            Some(l) => l.parse::<usize>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| ApiError::validation("querystring/limit must be 1-100"))?,
            None => 50,
        };
        let before = match query_param(req, "before") {
            Some(b) => Some(parse_time(&b).ok_or_else(|| ApiError::validation("querystring/before must be an ISO date"))?),
            None => None,
        };
        let page: Vec<Value> = self
            .messages
            .get(channel_id)
            .into_iter()
            .flatten()
            .rev()
            .filter(|m| before.is_none_or(|b| m.created_at_ms < b))
            .take(limit)
            .map(|m| message_json(auth, m))
            .collect();
        Ok(json_response(200, &Value::Array(page)))
    }

    fn react(&mut self, who: &Authed, message_id: &str, req: &Request<Vec<u8>>, add: bool, emoji: Option<&str>) -> ApiResult {
        let emoji = match emoji {
            Some(e) => e.to_owned(),
            None => req_str(&parse_json_body(req.body())?, "emoji")?.to_owned(),
        };
        if emoji.is_empty() || emoji.len() > 64 {
            return Err(ApiError::validation("emoji must be 1-64 bytes"));
        }
        let not_found = || ApiError::new(404, "MESSAGE_NOT_FOUND", "Message not found");
        let channel_id = self.message_channel.get(message_id).cloned().ok_or_else(not_found)?;
        self.check_channel(&who.agent_id, &channel_id, true)?;
        let msg = self.messages.get_mut(&channel_id).and_then(|ms| ms.iter_mut().find(|m| m.id == message_id)).ok_or_else(not_found)?;
        if add {
            msg.reactions.entry(emoji).or_default().insert(who.agent_id.clone());
            Ok(json_response(201, &json!({ "success": true })))
        } else {
            if let Some(set) = msg.reactions.get_mut(&emoji) {
                set.remove(&who.agent_id);
                if set.is_empty() {
                    msg.reactions.remove(&emoji);
                }
            }
            Ok(json_response(200, &json!({ "success": true })))
        }
    }

    fn is_blocked_between(&self, a: &str, b: &str) -> bool {
        self.blocks.get(a).is_some_and(|s| s.contains_key(b)) || self.blocks.get(b).is_some_and(|s| s.contains_key(a))
    }

    fn friend_request(&mut self, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>, now: u64, rng: &mut rand_chacha::ChaCha20Rng) -> ApiResult {
        let body = parse_json_body(req.body())?;
        let target = req_str(&body, "target")?;
        let target_id = auth.agent_id_by_username(target).ok_or_else(|| ApiError::new(404, "AGENT_NOT_FOUND", "Agent not found"))?;
        if target_id == who.agent_id {
            return Err(ApiError::new(400, "CANNOT_FRIEND_SELF", "You cannot friend yourself"));
        }
        if self.is_blocked_between(&who.agent_id, &target_id) {
            return Err(ApiError::new(403, "BLOCKED", "You cannot interact with this agent"));
        }
        if self.friendship(&who.agent_id, &target_id).is_some() {
            return Err(ApiError::new(409, "ALREADY_FRIENDS", "Already friends"));
        }
        if self.friend_requests.iter().any(|r| (r.from == who.agent_id && r.to == target_id) || (r.to == who.agent_id && r.from == target_id)) {
            return Err(ApiError::new(409, "FRIEND_REQUEST_EXISTS", "A friend request already exists"));
        }
        let w = self.window(format!("friend:{}", who.agent_id), 20, HOUR, now);
        if !w.allowed {
            self.rate_limited += 1;
            return Err(rate_limited());
        }
        let id = random_uuid(rng);
        self.friend_requests.push(FriendRequestRow { id: id.clone(), from: who.agent_id.clone(), to: target_id, created_at_ms: now });
        Ok(json_response(201, &json!({ "requestId": id })))
    }

    fn friendship(&self, a: &str, b: &str) -> Option<&Friendship> {
        self.friendships.iter().find(|f| (f.a == a && f.b == b) || (f.a == b && f.b == a))
    }

    fn friend_answer(&mut self, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>, accept: bool, now: u64, rng: &mut rand_chacha::ChaCha20Rng) -> ApiResult {
        let body = parse_json_body(req.body())?;
        let id = req_str(&body, "requestId")?;
        let pos = self
            .friend_requests
            .iter()
            .position(|r| r.id == id && r.to == who.agent_id)
            .ok_or_else(|| ApiError::new(404, "FRIEND_REQUEST_NOT_FOUND", "Friend request not found"))?;
        let row = self.friend_requests.remove(pos);
        if !accept {
            return Ok(json_response(200, &json!({ "success": true })));
        }
        let dm = random_uuid(rng);
        let mut ch = channel_row(&dm, None, "dm", None, None, 0, now);
        ch.kind = "dm".into();
        ch.participants = vec![row.from.clone(), row.to.clone()];
        self.channels.insert(dm.clone(), ch);
        self.friendships.push(Friendship { a: row.from.clone(), b: row.to, dm_channel_id: dm.clone(), since_ms: now });
        let friend = auth.agents.get(&row.from).map(|a| a.username.clone()).unwrap_or_default();
        Ok(json_response(200, &json!({ "friendUsername": friend, "dmChannelId": dm })))
    }

    fn friends(&self, auth: &AuthState, who: &Authed) -> Response<Vec<u8>> {
        let list: Vec<Value> = self
            .friendships
            .iter()
            .filter_map(|f| {
                let other = if f.a == who.agent_id { &f.b } else if f.b == who.agent_id { &f.a } else { return None };
                let a = auth.agents.get(other)?;
                Some(json!({ "id": a.id, "username": a.username, "displayName": a.display_name, "dmChannelId": f.dm_channel_id, "since": iso8601(f.since_ms) }))
            })
            .collect();
        json_response(200, &json!({ "friends": list }))
    }

    fn request_json(auth: &AuthState, r: &FriendRequestRow) -> Value {
        let name = |id: &str| auth.agents.get(id).map(|a| a.username.clone());
        json!({ "id": r.id, "fromUsername": name(&r.from), "toUsername": name(&r.to), "createdAt": iso8601(r.created_at_ms) })
    }

    fn requests(&self, auth: &AuthState, who: &Authed) -> Response<Vec<u8>> {
        let pick = |incoming: bool| -> Vec<Value> {
            self.friend_requests
                .iter()
                .filter(|r| if incoming { r.to == who.agent_id } else { r.from == who.agent_id })
                .map(|r| Self::request_json(auth, r))
                .collect()
        };
        json_response(200, &json!({ "incoming": pick(true), "outgoing": pick(false) }))
    }

    fn list_blocks(&self, auth: &AuthState, who: &Authed) -> Response<Vec<u8>> {
        let list: Vec<Value> = self
            .blocks
            .get(&who.agent_id)
            .into_iter()
            .flatten()
            .map(|(id, at)| json!({ "id": id, "username": auth.agents.get(id).map(|a| a.username.clone()), "createdAt": iso8601(*at) }))
            .collect();
        json_response(200, &json!({ "blocks": list }))
    }

    fn block(&mut self, auth: &AuthState, who: &Authed, username: &str, add: bool, now: u64) -> ApiResult {
        let target = auth.agent_id_by_username(username).ok_or_else(|| ApiError::new(404, "AGENT_NOT_FOUND", "Agent not found"))?;
        if add {
            if target == who.agent_id {
                return Err(ApiError::validation("You cannot block yourself"));
            }
            self.blocks.entry(who.agent_id.clone()).or_default().insert(target.clone(), now);
            self.friend_requests.retain(|r| !((r.from == who.agent_id && r.to == target) || (r.to == who.agent_id && r.from == target)));
            Ok(json_response(201, &json!({ "success": true })))
        } else {
            if let Some(s) = self.blocks.get_mut(&who.agent_id) {
                s.remove(&target);
            }
            Ok(json_response(200, &json!({ "success": true })))
        }
    }

    fn pending(&mut self, auth: &AuthState, who: &Authed, req: &Request<Vec<u8>>, now: u64) -> ApiResult {
        let w = self.window(format!("pending:{}", who.agent_id), 10, MINUTE, now);
        if !w.allowed {
            return Ok(with_headers(rate_limited().into_response(), &w));
        }
        let since = query_param(req, "since").and_then(|s| parse_time(&s)).unwrap_or(0);
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
                let from = auth.agents.get(&last.author_id).map(|a| a.username.clone());
                unread.push(json!({ "channelId": f.dm_channel_id, "from": from, "count": msgs.len(), "lastMessageAt": iso8601(last.created_at_ms), "preview": last.content.chars().take(100).collect::<String>() }));
            }
        }
        let requests: Vec<Value> = self.friend_requests.iter().filter(|r| r.to == who.agent_id && r.created_at_ms > since).map(|r| Self::request_json(auth, r)).collect();
        let checked = if self.faults.non_iso_timestamps { now.to_string() } else { iso8601(now) };
        let body = json!({
            "hasActivity": !unread.is_empty() || !requests.is_empty(),
            "unreadDMs": unread,
            "pendingFriendRequests": requests,
            "checkedAt": checked,
            "skillHash": "sandbox-0.3.3",
        });
        Ok(with_headers(json_response(200, &body), &w))
    }
}

fn server_json(s: &ServerRow) -> Value {
    json!({
        "id": s.id, "name": s.name, "description": s.description, "iconUrl": s.icon_url,
        "isPublic": s.is_public, "tags": s.tags, "instructions": s.instructions, "ownerId": s.owner_id,
        // The real service sends this count as a string.
        "memberCount": s.members.len().to_string(),
        "createdAt": iso8601(s.created_at_ms),
    })
}

fn channel_json(c: &ChannelRow) -> Value {
    json!({
        "id": c.id, "serverId": c.server_id, "name": c.name, "category": c.category, "type": c.kind,
        "topic": c.topic, "position": c.position, "createdAt": iso8601(c.created_at_ms),
    })
}

/// A message's author as both REST and WS frames show it.
pub fn author_json(auth: &AuthState, agent_id: &str) -> Value {
    let agent = auth.agents.get(agent_id);
    json!({
        "id": agent_id,
        "username": agent.map(|a| a.username.clone()),
        "displayName": agent.and_then(|a| a.display_name.clone()),
        "avatarUrl": agent.and_then(|a| a.avatar_url.clone()),
    })
}

/// A message as REST returns it (the WS `message` frame uses `channel` and `timestamp`).
pub fn message_json(auth: &AuthState, m: &MessageRow) -> Value {
    let reactions: Vec<Value> = m.reactions.iter().map(|(e, who)| json!({ "emoji": e, "count": who.len() })).collect();
    json!({
        "id": m.id, "channelId": m.channel_id, "content": m.content, "contentType": m.content_type,
        "createdAt": iso8601(m.created_at_ms),
        "agent": author_json(auth, &m.author_id),
        "reactions": reactions,
    })
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
}
