//! Moltspaces (PROTOCOL.md §3), mounted at [`crate::MOLTSPACES_API_PREFIX`].
//!
//! `x-api-key` authenticates every route but registration. Rooms carry a topic and a
//! participant count (set through the admin routes, so "the liveliest room" is testable);
//! meeting tokens are JWT-shaped with an `exp` (lifetime switchable). Admin routes at
//! [`ADMIN_PREFIX`]: `POST /rooms {room_name, topic, participant_count}` seeds a room,
//! `POST /config {camel_case, fail_next, fail_status, token_lifetime_s}` switches
//! camelCase answers and makes the next N API calls fail, `GET /stats` reads the counters.

use base64::Engine as _;
use http::{Request, Response};
use serde_json::{Value, json};

use crate::Ctx;
use crate::common::{header_str, iso8601, json_response, random_hex, segments};

pub const ADMIN_PREFIX: &str = "/moltspaces/_sandbox";

#[derive(Debug, Clone)]
pub struct Room {
    pub name: String,
    pub topic: String,
    pub created_at_ms: u64,
    pub participants: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub register: u64,
    pub search: u64,
    pub create: u64,
    pub token: u64,
    pub failed_on_purpose: u64,
}

#[derive(Debug)]
pub struct State {
    /// (api key, agent id, name)
    pub agents: Vec<(String, String, String)>,
    pub rooms: Vec<Room>,
    pub camel_case: bool,
    pub fail_next: u32,
    pub fail_status: u16,
    pub token_lifetime_s: u64,
    pub stats: Stats,
}

impl Default for State {
    fn default() -> Self {
        Self { agents: Vec::new(), rooms: Vec::new(), camel_case: false, fail_next: 0, fail_status: 503, token_lifetime_s: 3600, stats: Stats::default() }
    }
}

fn error(status: u16, message: &str) -> Response<Vec<u8>> {
    json_response(status, &json!({ "success": false, "error": message }))
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

impl State {
    fn slug(&self, topic: &str) -> String {
        let base: String = topic
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let base = if base.is_empty() { "room".to_owned() } else { base.chars().take(40).collect() };
        let n = self.rooms.iter().filter(|r| r.name.starts_with(&base)).count() + 1;
        format!("{base}-{n:03}")
    }

    /// Add a room (admin), returning its name.
    pub fn add_room(&mut self, name: Option<&str>, topic: &str, participants: u64, now_ms: u64) -> String {
        let name = name.map(str::to_owned).unwrap_or_else(|| self.slug(topic));
        self.rooms.retain(|r| r.name != name);
        self.rooms.push(Room { name: name.clone(), topic: topic.to_owned(), created_at_ms: now_ms, participants });
        name
    }

    fn key(&self, k: &str) -> String {
        if !self.camel_case {
            return k.to_owned();
        }
        let mut out = String::new();
        let mut up = false;
        for c in k.chars() {
            if c == '_' {
                up = true;
            } else if up {
                out.push(c.to_ascii_uppercase());
                up = false;
            } else {
                out.push(c);
            }
        }
        out
    }

    fn obj(&self, pairs: Vec<(&str, Value)>) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (self.key(k), v)).collect())
    }

    fn ticket(&self, ctx: &mut Ctx, room: &str) -> Value {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let exp = ctx.now_ms / 1000 + self.token_lifetime_s;
        let payload = b64.encode(json!({ "r": room, "iat": ctx.now_ms / 1000, "exp": exp }).to_string());
        let token = format!("{header}.{payload}.{}", random_hex(&mut ctx.rng, 16));
        self.obj(vec![
            ("room_url", json!(format!("https://sandbox.daily.co/{room}"))),
            ("token", json!(token)),
            ("room_name", json!(room)),
        ])
    }
}

pub fn handle(ctx: &mut Ctx, st: &mut State, req: &Request<Vec<u8>>, sub: &str) -> Response<Vec<u8>> {
    let segs = segments(sub);
    let method = req.method().as_str();
    if (method, segs.as_slice()) == ("POST", ["agents", "register"].as_slice()) {
        st.stats.register += 1;
        let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
        let name = body.get("name").and_then(Value::as_str).unwrap_or("").trim().to_owned();
        if name.is_empty() || body.get("description").and_then(Value::as_str).is_none() {
            return error(400, "name and description are required");
        }
        if st.agents.iter().any(|a| a.2.eq_ignore_ascii_case(&name)) {
            return error(409, "Agent name already taken");
        }
        let key = format!("moltspaces_{}", random_hex(&mut ctx.rng, 16));
        let id = format!("molt-agent-{}-{}", random_hex(&mut ctx.rng, 3), random_hex(&mut ctx.rng, 3));
        st.agents.push((key.clone(), id.clone(), name.clone()));
        let agent = st.obj(vec![("api_key", json!(key)), ("agent_id", json!(id)), ("name", json!(name))]);
        return json_response(201, &json!({ "success": true, "agent": agent, "important": "⚠️ SAVE YOUR API KEY! You won't see it again." }));
    }
    let authorised = header_str(req, "x-api-key").is_some_and(|k| st.agents.iter().any(|a| a.0 == k));
    if !authorised {
        return error(401, "Invalid or missing API key");
    }
    if st.fail_next > 0 {
        st.fail_next -= 1;
        st.stats.failed_on_purpose += 1;
        return error(st.fail_status, "Service temporarily unavailable (sandbox fault)");
    }
    match (method, segs.as_slice()) {
        ("GET", ["rooms", topic]) => {
            st.stats.search += 1;
            let topic = decode(topic).to_ascii_lowercase();
            let rooms: Vec<Value> = st
                .rooms
                .iter()
                .filter(|r| r.topic.to_ascii_lowercase().contains(&topic) || r.name.contains(&topic))
                .map(|r| {
                    st.obj(vec![
                        ("room_name", json!(r.name)),
                        ("topic", json!(r.topic)),
                        ("created_at", json!(iso8601(r.created_at_ms))),
                        ("participant_count", json!(r.participants)),
                    ])
                })
                .collect();
            if rooms.is_empty() {
                return error(404, "No rooms found for this topic");
            }
            json_response(200, &json!({ "rooms": rooms }))
        }
        ("POST", ["rooms"]) => {
            st.stats.create += 1;
            let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
            let Some(topic) = body.get("topic").and_then(Value::as_str).filter(|t| !t.trim().is_empty()) else {
                return error(400, "topic is required");
            };
            let name = st.add_room(None, topic.trim(), 1, ctx.now_ms);
            json_response(201, &st.ticket(ctx, &name))
        }
        ("POST", ["rooms", room, "token"]) => {
            st.stats.token += 1;
            let room = decode(room);
            match st.rooms.iter_mut().find(|r| r.name == room) {
                Some(r) => {
                    r.participants += 1;
                    json_response(200, &st.ticket(ctx, &room))
                }
                None => error(404, "Room not found"),
            }
        }
        _ => error(404, "Not found"),
    }
}

pub fn handle_admin(ctx: &mut Ctx, st: &mut State, req: &Request<Vec<u8>>, sub: &str) -> Response<Vec<u8>> {
    let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
    match (req.method().as_str(), segments(sub).as_slice()) {
        ("POST", ["rooms"]) => {
            let topic = body.get("topic").and_then(Value::as_str).unwrap_or("sandbox");
            let count = body.get("participant_count").and_then(Value::as_u64).unwrap_or(0);
            let name = st.add_room(body.get("room_name").and_then(Value::as_str), topic, count, ctx.now_ms);
            json_response(201, &json!({ "room_name": name }))
        }
        ("DELETE", ["rooms", room]) => {
            let room = decode(room);
            st.rooms.retain(|r| r.name != room);
            json_response(200, &json!({ "deleted": room }))
        }
        ("POST", ["config"]) => {
            if let Some(b) = body.get("camel_case").and_then(Value::as_bool) {
                st.camel_case = b;
            }
            if let Some(n) = body.get("fail_next").and_then(Value::as_u64) {
                st.fail_next = n as u32;
            }
            if let Some(s) = body.get("fail_status").and_then(Value::as_u64) {
                st.fail_status = s as u16;
            }
            if let Some(s) = body.get("token_lifetime_s").and_then(Value::as_u64) {
                st.token_lifetime_s = s;
            }
            json_response(200, &json!({ "camel_case": st.camel_case, "fail_next": st.fail_next, "token_lifetime_s": st.token_lifetime_s }))
        }
        ("GET", ["stats"]) => json_response(200, &serde_json::to_value(&st.stats).unwrap_or_default()),
        _ => error(404, "Not found"),
    }
}
