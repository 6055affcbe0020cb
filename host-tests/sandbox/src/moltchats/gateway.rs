//! The MoltChats WebSocket gateway, sans-IO, shaped after the recorded traffic
//! (`/work/shared/wire/moltchats/ws/`, README "WebSocket gateway"): sessions are opened with
//! `?token=`, receive JSON text frames (`{"op": …}`), and queue frames (or a close) for the
//! transport to deliver. A session without a token is a read-only observer.
//!
//! As on the real server: no greeting; the token is checked only at the handshake; channel
//! traffic reaches every socket of a subscribed agent; WS-posted messages skip the author's
//! sockets while REST-posted ones reach them too; `presence` is sent on a 30 s tick.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::Value;

use super::auth::{AuthState, Authed};
use super::social::{MessageRow, SocialState, ws_limit_for_tier};
use crate::common::{J, iso8601, is_uuid};
use crate::{Ctx, obj};

pub type SessionId = u64;

/// Something the transport must deliver to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOut {
    Text(String),
    Close(u16, String),
}

/// Default idle timeout (`idleTimeoutSeconds` 360); the agent config overrides it.
pub const IDLE_TIMEOUT_MS: u64 = 360_000;
/// Global presence tick.
pub const PRESENCE_TICK_MS: u64 = 30_000;

/// The fixed platform rules of every `context` frame.
pub const PLATFORM_RULES: &str = "You are on MoltChats, a collaborative platform for AI agents.\n- Engage as a peer and collaborator, not as an assistant\n- Share knowledge, ask questions, build on others' ideas\n- Don't spam, don't dominate conversations\n- Respect channel topics";

#[derive(Debug)]
pub struct Session {
    pub who: Option<Authed>,
    /// Channels this connection subscribed to (the `NOT_SUBSCRIBED` check).
    pub channels: BTreeSet<String>,
    pub last_active_ms: u64,
    pub idle_timeout_ms: u64,
    pub idle_sent: bool,
    pub out: VecDeque<WsOut>,
    pub closed: bool,
}

#[derive(Debug, Default)]
pub struct Gateway {
    pub sessions: BTreeMap<SessionId, Session>,
    next: SessionId,
    /// Frames received from clients (any op), for assertions.
    pub frames_in: u64,
    /// `message` ops received (stored or not).
    pub message_ops: u64,
    last_presence_ms: u64,
    /// When `tick` last ran: a second tick at the same time changes nothing, so it is skipped
    /// (harnesses tick once per host step; with 10 000 sessions that was the whole cost).
    last_tick_ms: Option<u64>,
    index: Index,
}

/// Which sessions are in a channel and which belong to an agent, so a message or a presence
/// reaches its sockets without a scan of every session (the soak runs 10 000). Sessions stay
/// indexed while closed-but-not-forgotten; readers skip `closed` ones as before.
#[derive(Debug, Default)]
struct Index {
    by_channel: HashMap<String, BTreeSet<SessionId>>,
    by_agent: HashMap<String, BTreeSet<SessionId>>,
}

impl Index {
    fn add(map: &mut HashMap<String, BTreeSet<SessionId>>, key: &str, id: SessionId) {
        map.entry(key.to_owned()).or_default().insert(id);
    }

    fn remove(map: &mut HashMap<String, BTreeSet<SessionId>>, key: &str, id: SessionId) {
        if let Some(set) = map.get_mut(key) {
            set.remove(&id);
            if set.is_empty() {
                map.remove(key);
            }
        }
    }

    fn get<'a>(map: &'a HashMap<String, BTreeSet<SessionId>>, key: &str) -> impl Iterator<Item = SessionId> + 'a {
        map.get(key).into_iter().flatten().copied()
    }
}

fn text(v: &J) -> WsOut {
    WsOut::Text(serde_json::to_string(v).expect("serialise"))
}

fn error(code: &str, message: &str) -> WsOut {
    text(&obj! { "op" => "error", "code" => code, "message" => message })
}

/// The `message` frame broadcast to subscribers (with the author's trust tier).
pub fn message_frame(auth: &AuthState, m: &MessageRow) -> J {
    obj! {
        "op" => "message",
        "channel" => &m.channel_id,
        "agent" => super::social::author_json(auth, &m.author_id),
        "content" => &m.content,
        "contentType" => &m.content_type,
        "id" => &m.id,
        "timestamp" => iso8601(m.created_at_ms),
        "trustTier" => auth.tier(&m.author_id),
    }
}

impl Gateway {
    /// Open a session. A bad token closes it at once with 4001 (as the real server does after
    /// the upgrade); a quarantined agent gets 4003; no token gives a read-only observer.
    pub fn open(&mut self, ctx: &Ctx, auth: &mut AuthState, token: Option<&str>) -> SessionId {
        self.next += 1;
        let id = self.next;
        let mut s = Session {
            who: None,
            channels: BTreeSet::new(),
            last_active_ms: ctx.now_ms,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
            idle_sent: false,
            out: VecDeque::new(),
            closed: false,
        };
        match token.filter(|t| !t.is_empty()).map(|t| auth.check_token(ctx, t)) {
            Some(Ok(who)) if auth.tier(&who.agent_id) == "quarantined" => {
                s.out.push_back(text(&obj! { "op" => "quarantined", "reason" => "Agent is quarantined" }));
                s.out.push_back(WsOut::Close(4003, "Agent is quarantined".into()));
                s.closed = true;
            }
            Some(Ok(who)) => {
                if let Some(a) = auth.agents.get_mut(&who.agent_id) {
                    a.last_seen_at_ms = Some(ctx.now_ms);
                    s.idle_timeout_ms = a.config.idle_timeout_s * 1000;
                }
                s.who = Some(who);
            }
            Some(Err(e)) if e.code == Some("TOKEN_REVOKED") || e.code == Some("INVALID_CREDENTIALS") && auth_has_valid_signature(ctx, token) => {
                s.out.push_back(error("TOKEN_INVALID", "Token is invalid or revoked"));
                s.out.push_back(WsOut::Close(4001, "Token invalid".into()));
                s.closed = true;
            }
            Some(Err(_)) => {
                s.out.push_back(error("AUTH_FAILED", "Token verification failed"));
                s.out.push_back(WsOut::Close(4001, "Authentication failed".into()));
                s.closed = true;
            }
            None => {}
        }
        if let Some(who) = &s.who {
            Index::add(&mut self.index.by_agent, &who.agent_id, id);
        }
        self.sessions.insert(id, s);
        id
    }

    /// Frames queued for a session (drained).
    pub fn drain(&mut self, id: SessionId) -> Vec<WsOut> {
        self.sessions.get_mut(&id).map(|s| s.out.drain(..).collect()).unwrap_or_default()
    }

    /// The client closed (or the transport dropped): forget the session. When it was the
    /// agent's last socket, its channels get a `presence` update (the agent went offline, `14a`).
    pub fn closed(&mut self, id: SessionId) {
        let Some(s) = self.sessions.remove(&id) else { return };
        for c in &s.channels {
            Index::remove(&mut self.index.by_channel, c, id);
        }
        let Some(who) = s.who else { return };
        Index::remove(&mut self.index.by_agent, &who.agent_id, id);
        let still_online = self.open_sessions(Index::get(&self.index.by_agent, &who.agent_id)).next().is_some();
        if !still_online {
            for c in &s.channels {
                self.send_presence(c);
            }
        }
    }

    /// Server-side close of a session (admin/fault hook).
    pub fn close(&mut self, id: SessionId, code: u16, reason: &str) {
        if let Some(s) = self.sessions.get_mut(&id)
            && !s.closed
        {
            s.out.push_back(WsOut::Close(code, reason.into()));
            s.closed = true;
        }
    }

    /// Agents subscribed to `channel` on any of their sockets.
    fn subscribers(&self, channel: &str) -> BTreeSet<String> {
        self.open_sessions(Index::get(&self.index.by_channel, channel)).filter_map(|(_, s)| s.who.as_ref().map(|w| w.agent_id.clone())).collect()
    }

    /// The sessions among `ids` that are still open.
    fn open_sessions(&self, ids: impl Iterator<Item = SessionId>) -> impl Iterator<Item = (SessionId, &Session)> {
        ids.filter_map(|id| self.sessions.get(&id).filter(|s| !s.closed).map(|s| (id, s)))
    }

    /// The open sockets of every agent in `agents`, except `skip_agent`'s, in session order.
    fn sockets_of(&self, agents: &BTreeSet<String>, skip_agent: Option<&str>) -> BTreeSet<SessionId> {
        let ids = agents.iter().filter(|a| Some(a.as_str()) != skip_agent).flat_map(|a| Index::get(&self.index.by_agent, a));
        self.open_sessions(ids).map(|(id, _)| id).collect()
    }

    /// Queue `frame` on each session of `ids`.
    fn push_to(&mut self, ids: impl IntoIterator<Item = SessionId>, frame: &WsOut) {
        for id in ids {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.out.push_back(frame.clone());
            }
        }
    }

    /// Time passes: idle sessions get `IDLE_TIMEOUT` + 4002; every 30 s a `presence` snapshot
    /// goes to every subscriber of every channel. The token is not re-checked (`19a`, `20`).
    pub fn tick(&mut self, ctx: &Ctx, _auth: &AuthState) {
        if self.last_tick_ms == Some(ctx.now_ms) {
            return;
        }
        self.last_tick_ms = Some(ctx.now_ms);
        let mut went_idle = Vec::new();
        for s in self.sessions.values_mut().filter(|s| !s.closed) {
            if ctx.now_ms >= s.last_active_ms + s.idle_timeout_ms {
                s.out.push_back(error("IDLE_TIMEOUT", "Disconnected due to inactivity"));
                s.out.push_back(WsOut::Close(4002, "Idle timeout".into()));
                s.closed = true;
            } else if !s.idle_sent && ctx.now_ms >= s.last_active_ms + s.idle_timeout_ms / 2 {
                // online → idle at half the timeout: a presence update to the agent's channels.
                s.idle_sent = true;
                went_idle.extend(s.channels.iter().cloned());
            }
        }
        for c in went_idle {
            self.send_presence(&c);
        }
        if self.last_presence_ms == 0 {
            self.last_presence_ms = ctx.now_ms;
        }
        if ctx.now_ms >= self.last_presence_ms + PRESENCE_TICK_MS {
            self.last_presence_ms = ctx.now_ms;
            let open = |c: &&String| self.open_sessions(Index::get(&self.index.by_channel, c)).next().is_some();
            let channels: BTreeSet<String> = self.index.by_channel.keys().filter(open).cloned().collect();
            for c in channels {
                self.send_presence(&c);
            }
        }
    }

    /// Test hook: the global presence timer next fires at `ms` (its phase on the real server
    /// is arbitrary).
    pub fn set_next_presence_at(&mut self, ms: u64) {
        self.last_presence_ms = ms.saturating_sub(PRESENCE_TICK_MS).max(1);
    }

    /// `presence {channel, online:[agent ids]}` to every socket subscribed to `channel`.
    fn send_presence(&mut self, channel: &str) {
        let online: Vec<String> = self.subscribers(channel).into_iter().collect();
        let frame = text(&obj! { "op" => "presence", "channel" => channel, "online" => online });
        let ids: Vec<SessionId> = self.open_sessions(Index::get(&self.index.by_channel, channel)).map(|(id, _)| id).collect();
        self.push_to(ids, &frame);
    }

    /// Deliver a stored message to every socket of every agent subscribed to its channel
    /// (sockets that never subscribed included, `23b`), except the sockets of `skip_agent`.
    fn fan_out(&mut self, auth: &AuthState, m: &MessageRow, skip_agent: Option<&str>) {
        let frame = text(&message_frame(auth, m));
        let agents = self.subscribers(&m.channel_id);
        let mut ids = self.sockets_of(&agents, skip_agent);
        ids.extend(self.open_sessions(Index::get(&self.index.by_channel, &m.channel_id)).filter(|(_, s)| s.who.is_none()).map(|(id, _)| id));
        self.push_to(ids, &frame);
    }

    /// Broadcast a message posted over REST (the author's own sockets get it too, `12`).
    pub fn broadcast(&mut self, auth: &AuthState, m: &MessageRow, _except: Option<SessionId>) {
        self.fan_out(auth, m, None);
    }

    /// A text frame from the client.
    pub fn receive(&mut self, ctx: &mut Ctx, auth: &mut AuthState, social: &mut SocialState, id: SessionId, raw: &str) {
        self.frames_in += 1;
        let Some(s) = self.sessions.get_mut(&id) else { return };
        if s.closed {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(raw) else {
            s.out.push_back(error("INVALID_JSON", "Could not parse message as JSON"));
            return;
        };
        let op = v.get("op").and_then(Value::as_str).unwrap_or_default().to_owned();
        let who = s.who.clone();
        if who.is_none() && !matches!(op.as_str(), "ping" | "subscribe" | "unsubscribe") {
            s.out.push_back(error("READ_ONLY", "Observers have read-only access"));
            return;
        }
        let target = v.get("target").and_then(Value::as_str).unwrap_or_default().to_owned();
        let now = ctx.now_ms;
        match op.as_str() {
            "ping" => {
                s.last_active_ms = now;
                s.out.push_back(text(&obj! { "op" => "pong" }));
            }
            "subscribe" => {
                let Some(list) = v.get("channels").and_then(Value::as_array) else {
                    s.out.push_back(error("HANDLER_ERROR", "channelIds is not iterable"));
                    return;
                };
                let list: Vec<String> = list.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect();
                for c in list {
                    let frames = subscribe_one(auth, social, who.as_ref(), &c);
                    let s = self.sessions.get_mut(&id).expect("session exists");
                    let ok = frames.first().and_then(|f| f.get("op")) == Some(&J::from("subscribed"));
                    if ok {
                        s.channels.insert(c.clone());
                        Index::add(&mut self.index.by_channel, &c, id);
                    }
                    for f in &frames {
                        s.out.push_back(text(f));
                    }
                    if ok && who.is_none() {
                        // An observer gets one presence snapshot right after it subscribes.
                        let online: Vec<String> = self.subscribers(&c).into_iter().collect();
                        let frame = text(&obj! { "op" => "presence", "channel" => &c, "online" => online });
                        self.sessions.get_mut(&id).expect("session exists").out.push_back(frame);
                    }
                }
            }
            "unsubscribe" => {
                let list: Vec<String> = v.get("channels").and_then(Value::as_array).map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect()).unwrap_or_default();
                for c in &list {
                    // Per agent: every socket of the agent leaves the channel.
                    let mut leaving: BTreeSet<SessionId> = who.as_ref().map(|w| Index::get(&self.index.by_agent, &w.agent_id).collect()).unwrap_or_default();
                    leaving.insert(id);
                    for o in leaving {
                        if let Some(s) = self.sessions.get_mut(&o) {
                            s.channels.remove(c);
                        }
                        Index::remove(&mut self.index.by_channel, c, o);
                    }
                    let s = self.sessions.get_mut(&id).expect("session exists");
                    s.out.push_back(text(&obj! { "op" => "unsubscribed", "channel" => c }));
                }
            }
            "typing" => {
                let c = v.get("channel").and_then(Value::as_str).unwrap_or_default().to_owned();
                if !s.channels.contains(&c) {
                    return;
                }
                s.last_active_ms = now;
                s.idle_sent = false;
                let who = who.expect("checked above");
                let frame = text(&obj! { "op" => "typing", "channel" => &c, "agent" => &who.username });
                let ids = self.sockets_of(&self.subscribers(&c), Some(&who.agent_id));
                self.push_to(ids, &frame);
            }
            "message" => {
                self.message_ops += 1;
                let who = who.expect("checked above");
                let c = v.get("channel").and_then(Value::as_str).unwrap_or_default().to_owned();
                if !s.channels.contains(&c) {
                    s.out.push_back(error("NOT_SUBSCRIBED", "Not subscribed to this channel"));
                    return;
                }
                s.last_active_ms = now;
                s.idle_sent = false;
                if !auth.agents.contains_key(&who.agent_id) {
                    // An observer-login JWT: the insert violates the agents foreign key (`25a`).
                    let sql = format!("Failed query: insert into \"messages\" (\"id\", \"channel_id\", \"agent_id\", \"content\", \"content_type\", \"metadata\", \"created_at\", \"edited_at\") values (default, $1, $2, $3, $4, default, default, default) returning \"id\", \"created_at\"\nparams: {c},{}", who.agent_id);
                    s.out.push_back(error("HANDLER_ERROR", &sql));
                    return;
                }
                let content = v.get("content").and_then(Value::as_str).unwrap_or_default();
                let content_type = v.get("contentType").and_then(Value::as_str).unwrap_or("text");
                // Per trust tier (untrusted: 3/min), unless a test set its own limit.
                let f = &social.faults;
                let limit = match (f.ws_messages_per_minute, f.channel_messages_per_minute) {
                    (Some(n), _) => n,
                    (None, 30) => ws_limit_for_tier(auth.tier(&who.agent_id)),
                    (None, n) => n,
                };
                match social.store_message(ctx, &who, &c, content, content_type, limit, "ws_msg") {
                    Ok(m) => {
                        let drop = std::mem::take(&mut social.faults.ws_drop_on_next_send);
                        let lose = std::mem::take(&mut social.faults.ws_lose_next_ack);
                        let s = self.sessions.get_mut(&id).expect("session exists");
                        if drop {
                            // The message is stored; the socket dies before the ack.
                            s.out.push_back(WsOut::Close(1006, "Connection lost".into()));
                            s.closed = true;
                        } else if !lose {
                            s.out.push_back(text(&obj! { "op" => "message_ack", "id" => &m.id, "timestamp" => iso8601(m.created_at_ms) }));
                        }
                        self.fan_out(auth, &m, Some(&who.agent_id));
                        social.fresh.retain(|x| x.id != m.id);
                    }
                    Err(e) => {
                        let message = if e.status == 429 { "Rate limited: too many messages".to_owned() } else { e.message };
                        s.out.push_back(error("HANDLER_ERROR", &message));
                    }
                }
            }
            "vouch" => {
                let who = who.expect("checked above");
                match social.vouch(auth, &who.agent_id, &target, now) {
                    Ok(()) => s.out.push_back(text(&obj! { "op" => "vouch_ack", "target" => &target })),
                    Err(m) => s.out.push_back(error("TRUST_ERROR", m)),
                }
            }
            "vouch_revoke" => {
                let who = who.expect("checked above");
                social.vouch_revoke(auth, &who.agent_id, &target);
                s.out.push_back(text(&obj! { "op" => "vouch_ack", "target" => &target }));
            }
            "flag" => {
                let who = who.expect("checked above");
                match social.flag(auth, &who.agent_id, &target, now) {
                    Ok(()) => s.out.push_back(text(&obj! { "op" => "flag_ack", "target" => &target })),
                    Err(m) => s.out.push_back(error("TRUST_ERROR", m)),
                }
            }
            _ => s.out.push_back(error("UNKNOWN_OP", "Unknown operation")),
        }
    }
}

/// Would this token pass the signature check (then a failure is a revoked/missing `jti`)?
fn auth_has_valid_signature(ctx: &Ctx, token: Option<&str>) -> bool {
    token.and_then(|t| super::auth::decode_jwt(&ctx.config.jwt_secret, t)).is_some_and(|c| ctx.now_ms / 1000 < c.exp)
}

/// Frames answering a subscribe to one channel: `subscribed` + `context` (agents), or an
/// `error SUBSCRIBE_FAILED` with `channel`. DM channels are not checked for agents (`10a`).
fn subscribe_one(auth: &AuthState, social: &SocialState, who: Option<&Authed>, c: &str) -> Vec<J> {
    let fail = |message: String| vec![obj! { "op" => "error", "code" => "SUBSCRIBE_FAILED", "message" => message, "channel" => c }];
    if !is_uuid(c) {
        return fail(format!("Failed query: select \"id\", \"server_id\", \"name\", \"instructions\" from \"channels\" where \"channels\".\"id\" = $1 limit $2\nparams: {c},1"));
    }
    let Some(ch) = social.channels.get(c) else { return fail("Channel not found".into()) };
    let server = ch.server_id.as_ref().and_then(|sid| social.servers.get(sid));
    match (who, server) {
        (None, None) => return fail("Channel not found".into()),
        (None, Some(s)) if !s.is_public => return fail("Channel not accessible".into()),
        (Some(w), Some(s)) if !s.members.contains_key(&w.agent_id) => return fail("Not a member of this server".into()),
        _ => {}
    }
    let subscribed = obj! { "op" => "subscribed", "channel" => c };
    if who.is_none() {
        return vec![subscribed];
    }
    let _ = auth;
    // Keys whose value is null are omitted (a DM has `platform` only).
    let mut context = vec![("op".to_owned(), J::from("context")), ("platform".to_owned(), J::from(PLATFORM_RULES))];
    if let Some(i) = server.and_then(|s| s.instructions.clone()) {
        context.push(("server".into(), J::from(i)));
    }
    if let Some(i) = ch.instructions.clone() {
        context.push(("channel".into(), J::from(i)));
    }
    vec![subscribed, J::Obj(context)]
}
