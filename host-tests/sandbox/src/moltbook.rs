//! Moltbook private messages (PROTOCOL.md §2), mounted at [`crate::MOLTBOOK_API_PREFIX`].
//!
//! Agents authenticate with `Authorization: Bearer <api key>`. Every conversation starts as a
//! request that the target's human owner approves (here: [`State::owner_decide`], exposed as
//! the admin routes under [`ADMIN_PREFIX`] so Python/Node tests can drive it) or that the
//! target agent approves on its owner's instruction. Errors use Moltbook's shape
//! `{success:false, error, hint}`; 429s carry `Retry-After` and `retry_after_seconds`
//! (or `retry_after_minutes`). [`Shape::Alternate`] renames fields and nests lists
//! differently, the way the real responses have drifted, so clients must parse leniently.
//! [`BARE_PREFIX`] answers every request with a 301 to the `www.` path, like the bare host.

use std::collections::{BTreeMap, BTreeSet};

use http::{Request, Response};
use serde_json::{Value, json};

use crate::Ctx;
use crate::common::{header_str, iso8601, json_response, random_uuid, segments};

/// Admin routes (the owners' dashboard and test hooks), beside the API.
pub const ADMIN_PREFIX: &str = "/moltbook/_sandbox";
/// Stands for the bare host `https://moltbook.com/api/v1`: always answers 301 to the `www.` path.
pub const BARE_PREFIX: &str = "/moltbook-bare/api/v1";

/// How responses are shaped. The client must accept both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shape {
    /// The shapes of the skill file.
    #[default]
    Documented,
    /// Drifted shapes: `id` for `conversation_id`, bare arrays instead of `{count, items}`,
    /// `content` for `message`, numbers as strings, `retry_after_minutes` on 429s.
    Alternate,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub api_key: String,
    pub description: String,
    pub owner_handle: String,
    pub owner_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    /// An owner blocked the other agent after the conversation was open.
    Blocked,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    /// Lowercased sender name.
    pub from: String,
    pub text: String,
    pub needs_human_input: bool,
    pub created_ms: u64,
    pub read: bool,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: String,
    /// Lowercased names.
    pub initiator: String,
    pub target: String,
    pub status: Status,
    pub request_message: String,
    pub created_ms: u64,
    pub messages: Vec<Message>,
}

/// Counters for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub check_calls: u64,
    /// Conversation reads (each marks the reader's unread messages read).
    pub read_calls: u64,
    /// API requests (under the www prefix) that carried any `Authorization` header.
    pub requests_with_key: u64,
    /// Requests to the bare-host prefix (answered 301).
    pub bare_requests: u64,
    pub rate_limited: u64,
}

#[derive(Default)]
pub struct State {
    /// Keyed by lowercased name.
    pub agents: BTreeMap<String, Agent>,
    pub conversations: Vec<Conversation>,
    /// (blocker, blocked), lowercased names.
    pub blocks: BTreeSet<(String, String)>,
    /// Forced 429s still to answer, per lowercased agent name.
    pub throttle: BTreeMap<String, u32>,
    pub shape: Shape,
    pub stats: Stats,
}

struct Fail {
    status: u16,
    error: String,
    hint: String,
}

fn fail(status: u16, error: impl Into<String>, hint: impl Into<String>) -> Fail {
    Fail { status, error: error.into(), hint: hint.into() }
}

type Res = Result<Response<Vec<u8>>, Fail>;

fn ok(body: Value) -> Res {
    Ok(json_response(200, &body))
}

fn render(f: Fail) -> Response<Vec<u8>> {
    json_response(f.status, &json!({"success": false, "error": f.error, "hint": f.hint}))
}

fn fold(name: &str) -> String {
    name.trim().trim_start_matches('@').to_ascii_lowercase()
}

impl State {
    /// Create an agent owned by the human with X handle `owner_handle`; returns its API key.
    pub fn add_agent(&mut self, ctx: &mut Ctx, name: &str, owner_handle: &str, description: &str) -> Result<String, String> {
        let key = fold(name);
        if key.len() < 2 || self.agents.contains_key(&key) {
            return Err(format!("agent name {name:?} is too short or taken"));
        }
        let api_key = format!("moltbook_sk_{}", crate::common::random_hex(&mut ctx.rng, 24));
        let handle = fold(owner_handle);
        self.agents.insert(
            key,
            Agent {
                name: name.to_owned(),
                api_key: api_key.clone(),
                description: description.to_owned(),
                owner_name: format!("Owner of {name}"),
                owner_handle: handle,
            },
        );
        Ok(api_key)
    }

    /// The owner's decision on a pending request, as in the dashboard: approve, reject, or
    /// reject and block the requester.
    pub fn owner_decide(&mut self, conversation_id: &str, approve: bool, block: bool) -> Result<(), String> {
        let conv = self
            .conversations
            .iter_mut()
            .find(|c| c.id == conversation_id)
            .ok_or_else(|| format!("no conversation {conversation_id}"))?;
        if conv.status != Status::Pending {
            return Err(format!("conversation {conversation_id} is not pending"));
        }
        conv.status = if approve { Status::Approved } else { Status::Rejected };
        if block {
            self.blocks.insert((conv.target.clone(), conv.initiator.clone()));
        }
        Ok(())
    }

    /// The owner of `blocker` blocks `blocked` in the dashboard: their conversation closes and
    /// `blocked` cannot ask again.
    pub fn owner_block(&mut self, blocker: &str, blocked: &str) -> Result<(), String> {
        let (a, b) = (fold(blocker), fold(blocked));
        if !self.agents.contains_key(&a) || !self.agents.contains_key(&b) {
            return Err("unknown agent".into());
        }
        for c in &mut self.conversations {
            if (c.initiator == a && c.target == b) || (c.initiator == b && c.target == a) {
                c.status = Status::Blocked;
            }
        }
        self.blocks.insert((a, b));
        Ok(())
    }

    fn agent_by_key(&self, req: &Request<Vec<u8>>) -> Result<String, Fail> {
        let key = header_str(req, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| fail(401, "Missing API key", "Send Authorization: Bearer YOUR_API_KEY"))?;
        self.agents
            .iter()
            .find(|(_, a)| a.api_key == key)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| fail(401, "Invalid API key", "Check your API key, and always use https://www.moltbook.com"))
    }

    fn conv_index(&self, me: &str, id: &str) -> Result<usize, Fail> {
        self.conversations
            .iter()
            .position(|c| c.id == id && (c.initiator == me || c.target == me))
            .ok_or_else(|| fail(404, "Conversation not found", "Check the conversation_id"))
    }

    fn agent_json(&self, name: &str) -> Value {
        let a = &self.agents[name];
        let karma = if self.shape == Shape::Alternate { json!("42") } else { json!(42) };
        json!({
            "name": a.name,
            "description": a.description,
            "karma": karma,
            "owner": {"x_handle": a.owner_handle, "x_name": a.owner_name},
        })
    }

    fn list(&self, items: Vec<Value>) -> Value {
        match self.shape {
            Shape::Documented => json!({"count": items.len(), "items": items}),
            Shape::Alternate => Value::Array(items),
        }
    }

    fn id_field(&self) -> &'static str {
        match self.shape {
            Shape::Documented => "conversation_id",
            Shape::Alternate => "id",
        }
    }

    fn pending_for(&self, me: &str) -> Vec<Value> {
        self.conversations
            .iter()
            .filter(|c| c.target == me && c.status == Status::Pending)
            .map(|c| {
                let mut item = json!({
                    "from": {"name": self.agents[&c.initiator].name, "owner": {"x_handle": self.agents[&c.initiator].owner_handle, "x_name": self.agents[&c.initiator].owner_name}},
                    "message_preview": c.request_message,
                    "created_at": iso8601(c.created_ms),
                });
                item[self.id_field()] = json!(c.id);
                item
            })
            .collect()
    }

    fn unread_for<'a>(&'a self, me: &'a str) -> impl Iterator<Item = (&'a Conversation, &'a Message)> + 'a {
        self.conversations
            .iter()
            .filter(move |c| c.status == Status::Approved && (c.initiator == me || c.target == me))
            .flat_map(move |c| c.messages.iter().filter(move |m| m.from != me && !m.read).map(move |m| (c, m)))
    }

    fn check(&mut self, me: &str) -> Res {
        self.stats.check_calls += 1;
        let requests = self.pending_for(me);
        let unread: Vec<_> = self.unread_for(me).collect();
        let with_unread: BTreeSet<&str> = unread.iter().map(|(c, _)| c.id.as_str()).collect();
        let latest: Vec<Value> = unread
            .iter()
            .rev()
            .take(5)
            .map(|(c, m)| {
                json!({
                    "conversation_id": c.id,
                    "message_id": m.id,
                    "from": {"name": self.agents[&m.from].name},
                    "message_preview": preview(&m.text),
                    "needs_human_input": m.needs_human_input,
                    "created_at": iso8601(m.created_ms),
                })
            })
            .collect();
        let has_activity = !requests.is_empty() || !unread.is_empty();
        let summary = format!("{} pending request(s), {} unread message(s)", requests.len(), unread.len());
        let requests = match self.shape {
            Shape::Documented => json!({"count": requests.len(), "items": requests}),
            Shape::Alternate => json!({"count": requests.len().to_string(), "items": requests}),
        };
        ok(json!({
            "success": true,
            "has_activity": has_activity,
            "summary": summary,
            "requests": requests,
            "messages": {"total_unread": unread.len(), "conversations_with_unread": with_unread.len(), "latest": latest},
        }))
    }

    fn request(&mut self, ctx: &mut Ctx, me: &str, body: &Value) -> Res {
        let to = body.get("to").and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        let to_owner = body.get("to_owner").and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        let target = match (to, to_owner) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(fail(400, "Provide exactly one of 'to' or 'to_owner'", "to: bot name; to_owner: the owner's X handle"));
            }
            (Some(name), None) => {
                let key = fold(name);
                self.agents.contains_key(&key).then_some(key).ok_or_else(|| fail(404, "Agent not found", "Check the bot name"))?
            }
            (None, Some(handle)) => {
                let handle = fold(handle);
                self.agents
                    .iter()
                    .find(|(_, a)| a.owner_handle == handle)
                    .map(|(k, _)| k.clone())
                    .ok_or_else(|| fail(404, "No agent found for that X handle", "Check the owner's X handle"))?
            }
        };
        let message = body.get("message").and_then(Value::as_str).unwrap_or("");
        let chars = message.chars().count();
        if !(10..=1000).contains(&chars) {
            return Err(fail(400, "Message must be 10-1000 characters", "Explain why you want to chat"));
        }
        if target == me {
            return Err(fail(400, "You cannot message yourself", "Pick another agent"));
        }
        if self.blocks.contains(&(target.clone(), me.to_owned())) {
            return Err(fail(403, "This agent has blocked you", "Blocked agents cannot send new requests"));
        }
        let existing = self
            .conversations
            .iter_mut()
            .find(|c| (c.initiator == me && c.target == target) || (c.initiator == target && c.target == me));
        let (id, status, existed) = match existing {
            Some(c) => {
                if c.status == Status::Rejected {
                    // A rejected (not blocked) pair may ask again: the same conversation reopens.
                    c.status = Status::Pending;
                    c.initiator = me.to_owned();
                    c.target = target.clone();
                    c.request_message = message.to_owned();
                    c.created_ms = ctx.now_ms;
                }
                (c.id.clone(), c.status, true)
            }
            None => {
                let id = random_uuid(&mut ctx.rng);
                self.conversations.push(Conversation {
                    id: id.clone(),
                    initiator: me.to_owned(),
                    target: target.clone(),
                    status: Status::Pending,
                    request_message: message.to_owned(),
                    created_ms: ctx.now_ms,
                    messages: vec![],
                });
                (id, Status::Pending, false)
            }
        };
        let status = if status == Status::Approved { "approved" } else { "pending" };
        let mut out = json!({
            "success": true,
            "status": status,
            "already_exists": existed,
            "to": self.agents[&target].name,
            "message": if existed { "A conversation with this agent already exists" } else { "Chat request sent! Their owner will review it." },
        });
        match self.shape {
            Shape::Documented => out["conversation_id"] = json!(id),
            Shape::Alternate => out["conversation"] = json!({"id": id, "status": status}),
        }
        ok(out)
    }

    fn decide(&mut self, me: &str, id: &str, approve: bool, body: &Value) -> Res {
        let i = self.conv_index(me, id)?;
        let c = &self.conversations[i];
        if c.target != me {
            return Err(fail(403, "Only the recipient can answer a request", "Wait for their owner to approve"));
        }
        if c.status != Status::Pending {
            return Err(fail(409, "This request was already handled", "See /agents/dm/conversations"));
        }
        let block = !approve && body.get("block").and_then(Value::as_bool).unwrap_or(false);
        let id = c.id.clone();
        self.owner_decide(&id, approve, block).map_err(|e| fail(409, e, ""))?;
        ok(json!({"success": true, "conversation_id": id, "status": if approve { "approved" } else if block { "blocked" } else { "rejected" }}))
    }

    fn conversations(&self, me: &str) -> Res {
        let items: Vec<Value> = self
            .conversations
            .iter()
            .filter(|c| c.status == Status::Approved && (c.initiator == me || c.target == me))
            .map(|c| {
                let other = if c.initiator == me { &c.target } else { &c.initiator };
                let unread = c.messages.iter().filter(|m| m.from != me && !m.read).count();
                let last = c.messages.last().map_or(c.created_ms, |m| m.created_ms);
                let mut item = json!({
                    "with_agent": self.agent_json(other),
                    "unread_count": unread,
                    "last_message_at": iso8601(last),
                    "you_initiated": c.initiator == me,
                });
                item[self.id_field()] = json!(c.id);
                item
            })
            .collect();
        let total: usize = self.unread_for(me).count();
        ok(json!({"success": true, "inbox": "main", "total_unread": total, "conversations": self.list(items)}))
    }

    fn read(&mut self, me: &str, id: &str) -> Res {
        let i = self.conv_index(me, id)?;
        if self.conversations[i].status == Status::Blocked {
            return Err(fail(403, "This conversation is blocked", "Blocked agents cannot message each other"));
        }
        if self.conversations[i].status != Status::Approved {
            return Err(fail(403, "Conversation not approved yet", "Wait for the owner to approve the request"));
        }
        self.stats.read_calls += 1;
        let shape = self.shape;
        let c = &self.conversations[i];
        let other = if c.initiator == me { c.target.clone() } else { c.initiator.clone() };
        let messages: Vec<Value> = c
            .messages
            .iter()
            .map(|m| {
                let text_key = if shape == Shape::Alternate { "content" } else { "message" };
                let mut v = json!({
                    "id": m.id,
                    "from": {"name": self.agents[&m.from].name},
                    "needs_human_input": m.needs_human_input,
                    "created_at": iso8601(m.created_ms),
                    "is_from_me": m.from == me,
                });
                v[text_key] = json!(m.text);
                v
            })
            .collect();
        let out = json!({
            "success": true,
            "conversation_id": c.id,
            "with_agent": self.agent_json(&other),
            "messages": messages,
        });
        for m in &mut self.conversations[i].messages {
            if m.from != me {
                m.read = true;
            }
        }
        ok(out)
    }

    fn send(&mut self, ctx: &mut Ctx, me: &str, id: &str, body: &Value) -> Res {
        let i = self.conv_index(me, id)?;
        if self.conversations[i].status == Status::Blocked {
            return Err(fail(403, "This conversation is blocked", "Blocked agents cannot message each other"));
        }
        if self.conversations[i].status != Status::Approved {
            return Err(fail(403, "Conversation not approved yet", "Wait for the owner to approve the request"));
        }
        let text = body.get("message").and_then(Value::as_str).unwrap_or("");
        if text.trim().is_empty() || text.chars().count() > 5000 {
            return Err(fail(400, "Message must be 1-5000 characters", ""));
        }
        let needs_human_input = body.get("needs_human_input").and_then(Value::as_bool).unwrap_or(false);
        let message_id = random_uuid(&mut ctx.rng);
        self.conversations[i].messages.push(Message {
            id: message_id.clone(),
            from: me.to_owned(),
            text: text.to_owned(),
            needs_human_input,
            created_ms: ctx.now_ms,
            read: false,
        });
        ok(json!({"success": true, "message_id": message_id, "conversation_id": id}))
    }

    fn throttled(&mut self, me: &str) -> Option<Response<Vec<u8>>> {
        let left = self.throttle.get_mut(me)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        self.stats.rate_limited += 1;
        let (secs, body) = match self.shape {
            Shape::Documented => (30, json!({"success": false, "error": "Rate limit exceeded", "hint": "Slow down", "retry_after_seconds": 30})),
            Shape::Alternate => (120, json!({"success": false, "error": "Cooling down", "hint": "Try later", "retry_after_minutes": 2})),
        };
        let mut response = json_response(429, &body);
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        Some(response)
    }
}

fn preview(text: &str) -> String {
    text.chars().take(80).collect()
}

fn body_json(req: &Request<Vec<u8>>) -> Value {
    serde_json::from_slice(req.body()).unwrap_or(Value::Null)
}

/// Route an API request whose path had `/moltbook/api/v1` stripped.
pub fn handle(ctx: &mut Ctx, st: &mut State, req: &Request<Vec<u8>>, sub_path: &str) -> Response<Vec<u8>> {
    if req.headers().contains_key(http::header::AUTHORIZATION) {
        st.stats.requests_with_key += 1;
    }
    let me = match st.agent_by_key(req) {
        Ok(me) => me,
        Err(f) => return render(f),
    };
    if let Some(limited) = st.throttled(&me) {
        return limited;
    }
    let body = body_json(req);
    let segs = segments(sub_path);
    let result = match (req.method().as_str(), segs.as_slice()) {
        ("GET", ["agents", "dm", "check"]) => st.check(&me),
        ("POST", ["agents", "dm", "request"]) => st.request(ctx, &me, &body),
        ("GET", ["agents", "dm", "requests"]) => {
            let items = st.pending_for(&me);
            ok(json!({"success": true, "requests": st.list(items)}))
        }
        ("POST", ["agents", "dm", "requests", id, "approve"]) => st.decide(&me, id, true, &body),
        ("POST", ["agents", "dm", "requests", id, "reject"]) => st.decide(&me, id, false, &body),
        ("GET", ["agents", "dm", "conversations"]) => st.conversations(&me),
        ("GET", ["agents", "dm", "conversations", id]) => st.read(&me, id),
        ("POST", ["agents", "dm", "conversations", id, "send"]) => st.send(ctx, &me, id, &body),
        _ => Err(fail(404, "Not found", "See https://www.moltbook.com/skill.md")),
    };
    result.unwrap_or_else(render)
}

/// The bare host: a 301 to the same path under the `www.` prefix, as the real one answers.
pub fn handle_bare(st: &mut State, req: &Request<Vec<u8>>, sub_path: &str) -> Response<Vec<u8>> {
    st.stats.bare_requests += 1;
    let host = header_str(req, "host").unwrap_or("127.0.0.1");
    let location = format!("http://{host}{}{sub_path}", crate::MOLTBOOK_API_PREFIX);
    Response::builder()
        .status(301)
        .header(http::header::LOCATION, location)
        .header(http::header::CONTENT_TYPE, "text/html")
        .body(b"<html>Moved Permanently</html>".to_vec())
        .expect("valid response")
}

/// Admin routes (no auth: the sandbox only listens on loopback):
/// `POST /agents {name, owner, description?}` → `{api_key}`;
/// `POST /approve {conversation_id}`, `POST /reject {conversation_id, block?}` (the owner's dashboard);
/// `POST /block {blocker, blocked}` (blocker's owner blocks an open conversation);
/// `POST /rate_limit {name, count}` (the next `count` API calls of that agent get 429);
/// `POST /shape {shape: "documented"|"alternate"}`; `GET /stats`.
pub fn handle_admin(ctx: &mut Ctx, st: &mut State, req: &Request<Vec<u8>>, sub_path: &str) -> Response<Vec<u8>> {
    let body = body_json(req);
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let done = |r: Result<Value, String>| match r {
        Ok(v) => json_response(200, &v),
        Err(e) => render(fail(400, e, "sandbox admin route")),
    };
    match (req.method().as_str(), segments(sub_path).as_slice()) {
        ("POST", ["agents"]) => {
            done(st.add_agent(ctx, &text("name"), &text("owner"), &text("description")).map(|k| json!({"success": true, "api_key": k})))
        }
        ("POST", ["approve"]) => done(st.owner_decide(&text("conversation_id"), true, false).map(|_| json!({"success": true}))),
        ("POST", ["reject"]) => {
            let block = body.get("block").and_then(Value::as_bool).unwrap_or(false);
            done(st.owner_decide(&text("conversation_id"), false, block).map(|_| json!({"success": true})))
        }
        ("POST", ["block"]) => done(st.owner_block(&text("blocker"), &text("blocked")).map(|_| json!({"success": true}))),
        ("POST", ["rate_limit"]) => {
            let count = body.get("count").and_then(Value::as_u64).unwrap_or(1) as u32;
            st.throttle.insert(fold(&text("name")), count);
            done(Ok(json!({"success": true})))
        }
        ("POST", ["shape"]) => {
            st.shape = if text("shape") == "alternate" { Shape::Alternate } else { Shape::Documented };
            done(Ok(json!({"success": true})))
        }
        ("GET", ["stats"]) => {
            let s = &st.stats;
            done(Ok(json!({
                "check_calls": s.check_calls,
                "read_calls": s.read_calls,
                "requests_with_key": s.requests_with_key,
                "bare_requests": s.bare_requests,
                "rate_limited": s.rate_limited,
            })))
        }
        _ => render(fail(404, "Not found", "unknown sandbox admin route")),
    }
}

#[cfg(test)]
mod tests {
    use crate::Sandbox;
    use serde_json::Value;

    fn get(sb: &Sandbox, path: &str, key: Option<&str>) -> http::Response<Vec<u8>> {
        let mut b = http::Request::builder().uri(path).header("host", "127.0.0.1:9");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        sb.handle(b.body(Vec::new()).unwrap(), 1_000)
    }

    #[test]
    fn errors_use_moltbooks_shape_and_the_bare_host_redirects() {
        let sb = Sandbox::default();
        let r = get(&sb, "/moltbook/api/v1/agents/dm/check", None);
        assert_eq!(r.status(), 401);
        let v: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["success"], false);
        assert!(v["error"].is_string() && v["hint"].is_string());

        let key = sb.moltbook_add_agent("Solo", "solo_owner").unwrap();
        assert!(sb.moltbook_add_agent("solo", "x").is_err(), "names are case-insensitive");
        let r = get(&sb, "/moltbook/api/v1/agents/dm/check", Some(&key));
        assert_eq!(r.status(), 200);
        let v: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["has_activity"], false);

        let r = get(&sb, "/moltbook-bare/api/v1/agents/dm/check", Some(&key));
        assert_eq!(r.status(), 301);
        assert_eq!(r.headers()["location"], "http://127.0.0.1:9/moltbook/api/v1/agents/dm/check");
        let stats = sb.moltbook_stats();
        assert_eq!((stats.bare_requests, stats.requests_with_key, stats.check_calls), (1, 1, 1));
    }
}
