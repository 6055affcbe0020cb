//! Moltspaces (PROTOCOL.md §3), mounted at [`crate::MOLTSPACES_API_PREFIX`].
//!
//! `x-api-key` authenticates every route but registration. Rooms carry a topic and a
//! participant count (set through the admin routes, so "the liveliest room" is testable);
//! meeting tokens are JWT-shaped with an `exp` (lifetime switchable). No Moltspaces response
//! was ever captured: the two generations of the skill document are served, switched by
//! [`Generation`] (default: the newer). Admin routes at [`ADMIN_PREFIX`]:
//! `POST /rooms {room_name, topic, participant_count}` seeds a room,
//! `POST /config {generation: "older"|"newer", fail_next, fail_status, token_lifetime_s}`
//! picks the generation and makes the next N API calls fail, `GET /stats` reads the counters.

use base64::Engine as _;
use http::{Request, Response};
use serde_json::{Value, json};

use crate::Ctx;
use crate::common::{header_str, iso8601, json_response, random_hex, segments};

pub const ADMIN_PREFIX: &str = "/moltspaces/_sandbox";

/// Which generation of the skill document the server follows (PROTOCOL.md §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Generation {
    /// Before Feb 2026: register `{name, description}`; search `{rooms:[{room_name, topic,
    /// created_at, participant_count}]}`; create `{topic}`; create and token answer
    /// `{room_url, token, room_name}`.
    Older,
    /// From Feb 2026: register `{name, bio (<160), metadata}` answering a `claim_url` too;
    /// search `{search_term, count, rooms:[{room_name, url, created_at}]}` (no participant
    /// count); token `{token, roomName, roomUrl}`; create `{room_name}` (<100) answering
    /// `{room{title, room_name, room_url, created_at}, token, room_url}`.
    #[default]
    Newer,
}

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
    pub generation: Generation,
    pub fail_next: u32,
    pub fail_status: u16,
    pub token_lifetime_s: u64,
    pub stats: Stats,
}

impl Default for State {
    fn default() -> Self {
        Self { agents: Vec::new(), rooms: Vec::new(), generation: Generation::Newer, fail_next: 0, fail_status: 503, token_lifetime_s: 3600, stats: Stats::default() }
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

    /// A meeting token for `room`, in this generation's answer (create adds the room object).
    fn ticket(&self, ctx: &mut Ctx, room: &Room, create: bool) -> Value {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let exp = ctx.now_ms / 1000 + self.token_lifetime_s;
        let payload = b64.encode(json!({ "r": room.name, "iat": ctx.now_ms / 1000, "exp": exp }).to_string());
        let token = format!("{header}.{payload}.{}", random_hex(&mut ctx.rng, 16));
        let url = format!("https://sandbox.daily.co/{}", room.name);
        match (self.generation, create) {
            (Generation::Older, _) => json!({ "room_url": url, "token": token, "room_name": room.name }),
            (Generation::Newer, false) => json!({ "token": token, "roomName": room.name, "roomUrl": url }),
            (Generation::Newer, true) => json!({
                "room": { "title": room.topic, "room_name": room.name, "room_url": url, "created_at": iso8601(room.created_at_ms) },
                "token": token,
                "room_url": url,
            }),
        }
    }

    fn register(&mut self, ctx: &mut Ctx, body: &Value) -> Response<Vec<u8>> {
        self.stats.register += 1;
        let name = body.get("name").and_then(Value::as_str).unwrap_or("").trim().to_owned();
        let text = |k: &str| body.get(k).and_then(Value::as_str);
        match self.generation {
            Generation::Older if name.is_empty() || text("description").is_none() => {
                return error(400, "name and description are required");
            }
            Generation::Newer if name.is_empty() => return error(400, "name is required"),
            Generation::Newer if text("bio").is_some_and(|b| b.chars().count() >= 160) => {
                return error(400, "bio must be under 160 characters");
            }
            _ => {}
        }
        if self.agents.iter().any(|a| a.2.eq_ignore_ascii_case(&name)) {
            return error(409, "Agent name already taken");
        }
        let key = format!("moltspaces_{}", random_hex(&mut ctx.rng, 16));
        let id = format!("molt-agent-{}-{}", random_hex(&mut ctx.rng, 3), random_hex(&mut ctx.rng, 3));
        self.agents.push((key.clone(), id.clone(), name.clone()));
        let mut agent = json!({ "api_key": key, "agent_id": id, "name": name });
        if self.generation == Generation::Newer {
            agent["claim_url"] = json!(format!("https://moltspaces.com/claim/{}", random_hex(&mut ctx.rng, 8)));
        }
        json_response(201, &json!({ "success": true, "agent": agent, "important": "⚠️ SAVE YOUR API KEY! You won't see it again." }))
    }

    fn search(&mut self, topic: &str) -> Response<Vec<u8>> {
        self.stats.search += 1;
        let term = decode(topic);
        let topic = term.to_ascii_lowercase();
        let rooms: Vec<Value> = self
            .rooms
            .iter()
            .filter(|r| r.topic.to_ascii_lowercase().contains(&topic) || r.name.contains(&topic))
            .map(|r| match self.generation {
                Generation::Older => json!({
                    "room_name": r.name,
                    "topic": r.topic,
                    "created_at": iso8601(r.created_at_ms),
                    "participant_count": r.participants,
                }),
                Generation::Newer => json!({
                    "room_name": r.name,
                    "url": format!("https://sandbox.daily.co/{}", r.name),
                    "created_at": iso8601(r.created_at_ms),
                }),
            })
            .collect();
        if rooms.is_empty() {
            return error(404, "No rooms found for this topic");
        }
        match self.generation {
            Generation::Older => json_response(200, &json!({ "rooms": rooms })),
            Generation::Newer => json_response(200, &json!({ "search_term": term, "count": rooms.len(), "rooms": rooms })),
        }
    }

    fn create(&mut self, ctx: &mut Ctx, body: &Value) -> Response<Vec<u8>> {
        self.stats.create += 1;
        let field = match self.generation {
            Generation::Older => "topic",
            Generation::Newer => "room_name",
        };
        let Some(topic) = body.get(field).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty()) else {
            return error(400, &format!("{field} is required"));
        };
        if self.generation == Generation::Newer && topic.chars().count() >= 100 {
            return error(400, "room_name must be under 100 characters");
        }
        let name = self.add_room(None, topic, 1, ctx.now_ms);
        let room = self.rooms.iter().find(|r| r.name == name).cloned().expect("just added");
        json_response(201, &self.ticket(ctx, &room, true))
    }
}

pub fn handle(ctx: &mut Ctx, st: &mut State, req: &Request<Vec<u8>>, sub: &str) -> Response<Vec<u8>> {
    let segs = segments(sub);
    let method = req.method().as_str();
    if (method, segs.as_slice()) == ("POST", ["agents", "register"].as_slice()) {
        let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
        return st.register(ctx, &body);
    }
    let authorised = header_str(req, "x-api-key").is_some_and(|k| st.agents.iter().any(|a| a.0 == k));
    if !authorised {
        return error(401, "Invalid or missing API key");
    }
    if st.fail_next > 0 {
        st.fail_next -= 1;
        st.stats.failed_on_purpose += 1;
        // Like a real server error, the text leaks internals (a client must not forward it).
        return error(st.fail_status, "sandbox fault: error: relation \"rooms\" does not exist at INSERT INTO rooms (name, topic) VALUES ($1, $2) params=[\"x\",\"y\"]");
    }
    match (method, segs.as_slice()) {
        ("GET", ["rooms", topic]) => st.search(topic),
        ("POST", ["rooms"]) => {
            let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
            st.create(ctx, &body)
        }
        ("POST", ["rooms", room, "token"]) => {
            st.stats.token += 1;
            let room = decode(room);
            match st.rooms.iter_mut().find(|r| r.name == room) {
                Some(r) => {
                    r.participants += 1;
                    let r = r.clone();
                    json_response(200, &st.ticket(ctx, &r, false))
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
            match body.get("generation").and_then(Value::as_str) {
                Some("older") => st.generation = Generation::Older,
                Some("newer") => st.generation = Generation::Newer,
                Some(other) => return error(400, &format!("unknown generation {other:?}: older or newer")),
                None => {}
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
            let generation = if st.generation == Generation::Older { "older" } else { "newer" };
            json_response(200, &json!({ "generation": generation, "fail_next": st.fail_next, "token_lifetime_s": st.token_lifetime_s }))
        }
        ("GET", ["stats"]) => json_response(200, &serde_json::to_value(&st.stats).unwrap_or_default()),
        _ => error(404, "Not found"),
    }
}

#[cfg(test)]
mod tests {
    use crate::Sandbox;
    use serde_json::{Value, json};

    fn call(sb: &Sandbox, method: &str, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(k) = key {
            b = b.header("x-api-key", k);
        }
        let r = sb.handle(b.body(body.to_string().into_bytes()).unwrap(), 1_000);
        (r.status().as_u16(), serde_json::from_slice(r.body()).unwrap_or(Value::Null))
    }

    fn generation(sb: &Sandbox, g: &str) {
        let (status, v) = call(sb, "POST", "/moltspaces/_sandbox/config", None, json!({"generation": g}));
        assert_eq!((status, v["generation"].as_str()), (200, Some(g)));
    }

    /// Both generations of every answer (PROTOCOL.md §3); the newer by default.
    #[test]
    fn both_generations_answer_as_documented() {
        let sb = Sandbox::default();
        // Newer (default): bio, claim_url, search_term/count/url, camelCase token, room object.
        let (status, reg) = call(&sb, "POST", "/moltspaces/v1/agents/register", None, json!({"name": "New", "bio": "short", "metadata": {"initial_voice_id": "v"}}));
        assert_eq!(status, 201);
        assert!(reg["agent"]["claim_url"].is_string());
        let key = reg["agent"]["api_key"].as_str().unwrap().to_owned();
        let (status, _) = call(&sb, "POST", "/moltspaces/v1/agents/register", None, json!({"name": "Long", "bio": "b".repeat(160)}));
        assert_eq!(status, 400);
        let (status, _) = call(&sb, "POST", "/moltspaces/v1/rooms", Some(&key), json!({"topic": "jazz"}));
        assert_eq!(status, 400, "newer servers read room_name");
        let (status, created) = call(&sb, "POST", "/moltspaces/v1/rooms", Some(&key), json!({"room_name": "Jazz"}));
        assert_eq!(status, 201);
        assert_eq!((created["room"]["title"].as_str(), created["room"]["room_name"].as_str()), (Some("Jazz"), Some("jazz-001")));
        assert!(created["token"].is_string() && created["room_url"] == created["room"]["room_url"]);
        let (_, found) = call(&sb, "GET", "/moltspaces/v1/rooms/jazz", Some(&key), Value::Null);
        assert_eq!((found["search_term"].as_str(), found["count"].as_u64()), (Some("jazz"), Some(1)));
        assert!(found["rooms"][0]["url"].is_string() && found["rooms"][0].get("participant_count").is_none());
        let (_, token) = call(&sb, "POST", "/moltspaces/v1/rooms/jazz-001/token", Some(&key), Value::Null);
        let mut keys: Vec<&str> = token.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["roomName", "roomUrl", "token"]);

        // Older: description required, flat snake_case answers with participant counts.
        generation(&sb, "older");
        let (status, _) = call(&sb, "POST", "/moltspaces/v1/agents/register", None, json!({"name": "Old", "bio": "x"}));
        assert_eq!(status, 400, "older servers need a description");
        let (_, reg) = call(&sb, "POST", "/moltspaces/v1/agents/register", None, json!({"name": "Old", "description": "d"}));
        assert!(reg["agent"].get("claim_url").is_none());
        let (_, created) = call(&sb, "POST", "/moltspaces/v1/rooms", Some(&key), json!({"topic": "blues"}));
        let mut keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["room_name", "room_url", "token"]);
        let (_, found) = call(&sb, "GET", "/moltspaces/v1/rooms/blues", Some(&key), Value::Null);
        assert!(found.get("search_term").is_none() && found["rooms"][0]["participant_count"].is_number() && found["rooms"][0]["topic"].is_string());
        let (status, _) = call(&sb, "POST", "/moltspaces/_sandbox/config", None, json!({"generation": "newest"}));
        assert_eq!(status, 400);
    }
}
