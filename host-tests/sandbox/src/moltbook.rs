//! Moltbook private messages (PROTOCOL.md §2), mounted at [`crate::MOLTBOOK_API_PREFIX`].
//!
//! Agents authenticate with `Authorization: Bearer <api key>`. Every conversation starts as a
//! request that the target's human owner approves (here: [`State::owner_decide`], exposed as
//! the admin routes under [`ADMIN_PREFIX`] so Python/Node tests can drive it) or that the
//! target agent approves on its owner's instruction. Errors use Moltbook's shape
//! `{success:false, error, hint}`; 429s carry `Retry-After` and `retry_after_seconds`
//! (or `retry_after_minutes`). [`Shape`] picks the generation of the responses, each as
//! PROTOCOL.md §2 evidences it: [`Shape::Captured`] (live responses of May 2026, the default)
//! or [`Shape::Documented`] (the messaging skill file). Switch with
//! [`crate::Sandbox::moltbook_set_shape`] or `POST /moltbook/_sandbox/shape`.
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

/// Which generation of the server answers. The client must accept both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shape {
    /// The live server as captured in May 2026 (the newest evidence): counts as strings
    /// (`"count":"0"`, `"total_unread":"00"`; the sandbox writes unread totals with two digits,
    /// why the server pads is unknown), `GET /agents/dm/requests` gone (the framework's 404
    /// envelope, also for every unknown route), the main inbox listing rejected (and blocked)
    /// conversations with a `status`, `with_agent` as the full profile without `owner`, no
    /// `unread_count`/`last_message_at`; 429s with `retry_after_minutes`.
    #[default]
    Captured,
    /// The messaging skill file: numbers, `GET /agents/dm/requests` answering
    /// `{inbox:"other", incoming, outgoing}` (its only recorded shape), a main inbox of approved
    /// conversations with `unread_count`, `last_message_at` and `with_agent.owner`, no
    /// `status`; 429s with `retry_after_seconds`.
    Documented,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub created_ms: u64,
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
                id: random_uuid(&mut ctx.rng),
                created_ms: ctx.now_ms,
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
        match self.shape {
            Shape::Documented => json!({
                "name": a.name,
                "description": a.description,
                "karma": 42,
                "owner": {"x_handle": a.owner_handle, "x_name": a.owner_name},
            }),
            Shape::Captured => json!({
                "id": a.id,
                "name": a.name,
                "description": a.description,
                "avatarUrl": null,
                "karma": 42,
                "followerCount": 3,
                "followingCount": 1,
                "isClaimed": true,
                "isActive": true,
                "createdAt": iso8601(a.created_ms),
                "lastActive": iso8601(a.created_ms),
                "deletedAt": null,
            }),
        }
    }

    /// A count as this generation writes it: a number, or (captured) a string.
    fn count(&self, n: usize) -> Value {
        match self.shape {
            Shape::Documented => json!(n),
            Shape::Captured => json!(n.to_string()),
        }
    }

    /// An unread total: a number, or (captured) two-digit text such as `"00"`.
    fn unread_total(&self, n: usize) -> Value {
        match self.shape {
            Shape::Documented => json!(n),
            Shape::Captured => json!(format!("{n:02}")),
        }
    }

    /// Pending requests to `me` (`incoming`) or from `me` (outgoing), as request items.
    fn pending_for(&self, me: &str, incoming: bool) -> Vec<Value> {
        self.conversations
            .iter()
            .filter(|c| c.status == Status::Pending && if incoming { c.target == me } else { c.initiator == me })
            .map(|c| {
                let (side, other) = if incoming { ("from", &c.initiator) } else { ("to", &c.target) };
                let a = &self.agents[other];
                json!({
                    "conversation_id": c.id,
                    side: {"name": a.name, "owner": {"x_handle": a.owner_handle, "x_name": a.owner_name}},
                    "message_preview": c.request_message,
                    "created_at": iso8601(c.created_ms),
                })
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
        let requests = self.pending_for(me, true);
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
        let mut out = json!({
            "success": true,
            "has_activity": has_activity,
            "summary": summary,
            "requests": {"count": self.count(requests.len()), "items": requests},
            "messages": {"total_unread": self.unread_total(unread.len()), "conversations_with_unread": with_unread.len(), "latest": latest},
        });
        if self.shape == Shape::Captured {
            out["tip"] = json!("Reply to unread messages; ask your human about new requests.");
        }
        ok(out)
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
        // The response's shape is not documented: this one is the sandbox's own.
        ok(json!({
            "success": true,
            "conversation_id": id,
            "status": status,
            "already_exists": existed,
            "to": self.agents[&target].name,
            "message": if existed { "A conversation with this agent already exists" } else { "Chat request sent! Their owner will review it." },
        }))
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

    /// `GET /agents/dm/requests`: the documented generation's `{inbox:"other", incoming,
    /// outgoing}`; the captured server no longer has the route (the framework's 404).
    fn requests(&self, me: &str, req: &Request<Vec<u8>>) -> Res {
        if self.shape == Shape::Captured {
            return Ok(framework_404(req));
        }
        let (incoming, outgoing) = (self.pending_for(me, true), self.pending_for(me, false));
        ok(json!({
            "success": true,
            "inbox": "other",
            "incoming": {"count": incoming.len(), "description": "Requests waiting for your owner's approval", "requests": incoming},
            "outgoing": {"count": outgoing.len(), "description": "Your requests waiting for their owner's approval", "requests": outgoing},
        }))
    }

    fn conversations(&self, me: &str) -> Res {
        let captured = self.shape == Shape::Captured;
        let items: Vec<Value> = self
            .conversations
            .iter()
            .filter(|c| c.initiator == me || c.target == me)
            // The documented inbox lists active conversations; the captured one also rejected ones.
            .filter(|c| c.status == Status::Approved || (captured && c.status != Status::Pending))
            .map(|c| {
                let other = if c.initiator == me { &c.target } else { &c.initiator };
                let mut item = json!({"conversation_id": c.id, "with_agent": self.agent_json(other)});
                if captured {
                    item["you_initiated"] = json!(c.initiator == me);
                    item["status"] = json!(match c.status {
                        Status::Pending => "pending",
                        Status::Approved => "approved",
                        Status::Rejected => "rejected",
                        Status::Blocked => "blocked",
                    });
                } else {
                    let unread = c.messages.iter().filter(|m| m.from != me && !m.read).count();
                    let last = c.messages.last().map_or(c.created_ms, |m| m.created_ms);
                    item["unread_count"] = json!(unread);
                    item["last_message_at"] = json!(iso8601(last));
                    item["you_initiated"] = json!(c.initiator == me);
                }
                item
            })
            .collect();
        let total: usize = self.unread_for(me).count();
        ok(json!({
            "success": true,
            "inbox": "main",
            "total_unread": self.unread_total(total),
            "conversations": {"count": self.count(items.len()), "items": items},
        }))
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
        let c = &self.conversations[i];
        // Both generations: top-level `messages` with `sender` and `content`, and no
        // `is_from_me` (a public client's reading of the live API).
        let messages: Vec<Value> = c
            .messages
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "sender": {"name": self.agents[&m.from].name},
                    "content": m.text,
                    "needs_human_input": m.needs_human_input,
                    "created_at": iso8601(m.created_ms),
                })
            })
            .collect();
        let out = json!({"success": true, "messages": messages});
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
            Shape::Captured => (120, json!({"success": false, "error": "Cooling down", "hint": "Try later", "retry_after_minutes": 2})),
        };
        let mut response = json_response(429, &body);
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        Some(response)
    }
}

fn preview(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The web framework's own 404 (captured for the retired requests route):
/// `{statusCode, message:"Cannot GET /api/v1/…", timestamp, path, error:"Not Found"}`.
fn framework_404(req: &Request<Vec<u8>>) -> Response<Vec<u8>> {
    let path = req.uri().path().replacen("/moltbook", "", 1);
    json_response(404, &json!({
        "statusCode": 404,
        "message": format!("Cannot {} {path}", req.method()),
        "timestamp": "2026-05-28T12:00:00.000Z",
        "path": path,
        "error": "Not Found",
    }))
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
        ("GET", ["agents", "dm", "requests"]) => st.requests(&me, req),
        ("POST", ["agents", "dm", "requests", id, "approve"]) => st.decide(&me, id, true, &body),
        ("POST", ["agents", "dm", "requests", id, "reject"]) => st.decide(&me, id, false, &body),
        ("GET", ["agents", "dm", "conversations"]) => st.conversations(&me),
        ("GET", ["agents", "dm", "conversations", id]) => st.read(&me, id),
        ("POST", ["agents", "dm", "conversations", id, "send"]) => st.send(ctx, &me, id, &body),
        _ if st.shape == Shape::Captured => Ok(framework_404(req)),
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
/// `POST /shape {shape: "captured"|"documented"}` (the generation); `GET /stats`.
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
        ("POST", ["shape"]) => match text("shape").as_str() {
            "captured" => {
                st.shape = Shape::Captured;
                done(Ok(json!({"success": true, "shape": "captured"})))
            }
            "documented" => {
                st.shape = Shape::Documented;
                done(Ok(json!({"success": true, "shape": "documented"})))
            }
            other => done(Err(format!("unknown shape {other:?}: captured or documented"))),
        },
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

    fn send_json(sb: &Sandbox, method: &str, path: &str, key: &str, body: serde_json::Value) -> Value {
        let req = http::Request::builder().method(method).uri(path).header("authorization", format!("Bearer {key}")).body(body.to_string().into_bytes()).unwrap();
        serde_json::from_slice(sb.handle(req, 2_000).body()).unwrap()
    }

    /// Each generation's shapes as PROTOCOL.md §2 records them; the captured one by default.
    #[test]
    fn both_generations_answer_as_recorded() {
        let sb = Sandbox::default();
        let a = sb.moltbook_add_agent("AliceBot", "alice_x").unwrap();
        let b = sb.moltbook_add_agent("BensBot", "bensmith").unwrap();
        let r = send_json(&sb, "POST", "/moltbook/api/v1/agents/dm/request", &a, serde_json::json!({"to": "BensBot", "message": "Hello, may we chat?"}));
        let cid = r["conversation_id"].as_str().unwrap().to_owned();
        sb.moltbook_owner_decide(&cid, false, false).unwrap();

        // Captured (default): string counts, requests route gone, rejected listed with a status.
        let check: Value = serde_json::from_slice(get(&sb, "/moltbook/api/v1/agents/dm/check", Some(&b)).body()).unwrap();
        assert_eq!((check["requests"]["count"].as_str(), check["messages"]["total_unread"].as_str()), (Some("0"), Some("00")));
        assert!(check["messages"]["conversations_with_unread"].is_number() && check["tip"].is_string());
        let r = get(&sb, "/moltbook/api/v1/agents/dm/requests", Some(&b));
        assert_eq!(r.status(), 404);
        let v: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!((v["statusCode"].as_u64(), v["message"].as_str(), v["error"].as_str()), (Some(404), Some("Cannot GET /api/v1/agents/dm/requests"), Some("Not Found")));
        assert!(v["timestamp"].is_string() && v["path"].is_string() && v.get("success").is_none());
        let list: Value = serde_json::from_slice(get(&sb, "/moltbook/api/v1/agents/dm/conversations", Some(&a)).body()).unwrap();
        assert_eq!((list["inbox"].as_str(), list["total_unread"].as_str(), list["conversations"]["count"].as_str()), (Some("main"), Some("00"), Some("1")));
        let item = &list["conversations"]["items"][0];
        assert_eq!((item["status"].as_str(), item["you_initiated"].as_bool()), (Some("rejected"), Some(true)));
        let keys: Vec<&str> = item["with_agent"].as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["id", "name", "description", "avatarUrl", "karma", "followerCount", "followingCount", "isClaimed", "isActive", "createdAt", "lastActive", "deletedAt"] {
            assert!(keys.contains(&k), "with_agent.{k}: {keys:?}");
        }
        assert!(item.get("unread_count").is_none() && item.get("last_message_at").is_none());

        // Documented: numbers, the requests route, approved conversations only, no status.
        sb.moltbook_set_shape(super::Shape::Documented);
        let check: Value = serde_json::from_slice(get(&sb, "/moltbook/api/v1/agents/dm/check", Some(&b)).body()).unwrap();
        assert!(check["requests"]["count"].is_number() && check.get("tip").is_none());
        let reqs: Value = serde_json::from_slice(get(&sb, "/moltbook/api/v1/agents/dm/requests", Some(&b)).body()).unwrap();
        assert_eq!((reqs["inbox"].as_str(), reqs["incoming"]["count"].as_u64()), (Some("other"), Some(0)));
        let list: Value = serde_json::from_slice(get(&sb, "/moltbook/api/v1/agents/dm/conversations", Some(&a)).body()).unwrap();
        assert_eq!(list["conversations"]["count"], 0, "a rejected conversation is not active");
        let r = send_json(&sb, "POST", "/moltbook/api/v1/agents/dm/request", &a, serde_json::json!({"to": "BensBot", "message": "Hello again, may we chat?"}));
        assert_eq!(r["conversation_id"].as_str(), Some(cid.as_str()));
        sb.moltbook_owner_decide(&cid, true, false).unwrap();
        send_json(&sb, "POST", &format!("/moltbook/api/v1/agents/dm/conversations/{cid}/send"), &b, serde_json::json!({"message": "hi Alice"}));
        let list: Value = serde_json::from_slice(get(&sb, "/moltbook/api/v1/agents/dm/conversations", Some(&a)).body()).unwrap();
        let item = &list["conversations"]["items"][0];
        assert_eq!((item["unread_count"].as_u64(), item.get("status")), (Some(1), None));
        assert!(item["with_agent"]["owner"]["x_handle"].is_string());
        // Reads: top-level messages with sender and content, never is_from_me.
        let read: Value = serde_json::from_slice(get(&sb, &format!("/moltbook/api/v1/agents/dm/conversations/{cid}"), Some(&a)).body()).unwrap();
        let m = &read["messages"][0];
        assert_eq!((m["sender"]["name"].as_str(), m["content"].as_str()), (Some("BensBot"), Some("hi Alice")));
        assert!(m.get("is_from_me").is_none());
    }
}
