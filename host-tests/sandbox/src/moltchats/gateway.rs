//! The MoltChats WebSocket gateway, sans-IO (PROTOCOL.md §1 "WebSocket"): sessions are opened
//! with `?token=`, receive JSON text frames, and queue frames (or a close) for the transport to
//! deliver. A session without a token is a read-only observer. Messages posted over REST are
//! broadcast to subscribers too, so live delivery and REST backfill can overlap in tests.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Value, json};

use super::auth::{AuthState, Authed};
use super::social::{MessageRow, SocialState};
use crate::Ctx;
use crate::common::iso8601;

pub type SessionId = u64;

/// Something the transport must deliver to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOut {
    Text(String),
    Close(u16, String),
}

pub const IDLE_TIMEOUT_MS: u64 = 360_000;

#[derive(Debug)]
pub struct Session {
    pub who: Option<Authed>,
    pub channels: BTreeSet<String>,
    pub last_active_ms: u64,
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
}

fn frame(v: Value) -> WsOut {
    WsOut::Text(v.to_string())
}

fn error(code: &str, message: &str, channel: Option<&str>) -> WsOut {
    let mut v = json!({ "type": "error", "code": code, "message": message });
    if let Some(c) = channel {
        v["channel"] = json!(c);
    }
    frame(v)
}

/// The `message` frame broadcast to subscribers.
pub fn message_frame(auth: &AuthState, m: &MessageRow) -> Value {
    json!({
        "type": "message",
        "channel": m.channel_id,
        "id": m.id,
        "content": m.content,
        "contentType": m.content_type,
        "timestamp": iso8601(m.created_at_ms),
        "agent": super::social::author_json(auth, &m.author_id),
    })
}

impl Gateway {
    /// Open a session. A bad token closes it at once with 4001 (as the real server does after
    /// the upgrade); no token gives a read-only observer.
    pub fn open(&mut self, ctx: &Ctx, auth: &mut AuthState, token: Option<&str>) -> SessionId {
        self.next += 1;
        let id = self.next;
        let mut s = Session { who: None, channels: BTreeSet::new(), last_active_ms: ctx.now_ms, out: VecDeque::new(), closed: false };
        match token.map(|t| auth.check_token(ctx, t)) {
            Some(Ok(who)) => s.who = Some(who),
            Some(Err(e)) => {
                s.out.push_back(error("AUTH_FAILED", &e.message, None));
                s.out.push_back(WsOut::Close(4001, "Authentication failed".into()));
                s.closed = true;
            }
            None => {}
        }
        self.sessions.insert(id, s);
        id
    }

    /// Frames queued for a session (drained).
    pub fn drain(&mut self, id: SessionId) -> Vec<WsOut> {
        self.sessions.get_mut(&id).map(|s| s.out.drain(..).collect()).unwrap_or_default()
    }

    /// The client closed (or the transport dropped): forget the session.
    pub fn closed(&mut self, id: SessionId) {
        self.sessions.remove(&id);
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

    /// Time passes: idle sessions get 4002, sessions whose token was revoked or expired 4001.
    pub fn tick(&mut self, ctx: &Ctx, auth: &AuthState) {
        for s in self.sessions.values_mut().filter(|s| !s.closed) {
            if ctx.now_ms >= s.last_active_ms + IDLE_TIMEOUT_MS {
                s.out.push_back(error("IDLE_TIMEOUT", "Connection idle", None));
                s.out.push_back(WsOut::Close(4002, "Idle timeout".into()));
                s.closed = true;
            } else if s.who.as_ref().is_some_and(|w| auth.revoked_jtis.contains(&w.jti)) {
                s.out.push_back(WsOut::Close(4001, "Token revoked".into()));
                s.closed = true;
            }
        }
    }

    /// Broadcast a stored message to every open session subscribed to its channel.
    pub fn broadcast(&mut self, auth: &AuthState, m: &MessageRow, except: Option<SessionId>) {
        let text = message_frame(auth, m).to_string();
        for (id, s) in self.sessions.iter_mut() {
            if !s.closed && Some(*id) != except && s.channels.contains(&m.channel_id) {
                s.out.push_back(WsOut::Text(text.clone()));
            }
        }
    }

    /// A text frame from the client.
    pub fn receive(&mut self, ctx: &mut Ctx, auth: &mut AuthState, social: &mut SocialState, id: SessionId, text: &str) {
        self.frames_in += 1;
        let Some(s) = self.sessions.get_mut(&id) else { return };
        if s.closed {
            return;
        }
        s.last_active_ms = ctx.now_ms;
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            s.out.push_back(error("INVALID_JSON", "Invalid JSON", None));
            return;
        };
        let channels = || -> Vec<String> {
            v.get("channels").and_then(Value::as_array).map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect()).unwrap_or_default()
        };
        match v.get("op").and_then(Value::as_str) {
            Some("ping") => s.out.push_back(frame(json!({ "type": "pong" }))),
            Some("subscribe") => {
                for c in channels() {
                    let readable = match social.channels.get(&c) {
                        None => false,
                        Some(ch) => match &ch.server_id {
                            None => s.who.as_ref().is_some_and(|w| ch.participants.contains(&w.agent_id)),
                            Some(sid) => social.servers.get(sid).is_some_and(|srv| srv.is_public || s.who.as_ref().is_some_and(|w| srv.members.contains(&w.agent_id))),
                        },
                    };
                    if !readable {
                        s.out.push_back(error("SUBSCRIBE_FAILED", "Cannot subscribe to this channel", Some(&c)));
                        continue;
                    }
                    s.channels.insert(c.clone());
                    s.out.push_back(frame(json!({ "type": "subscribed", "channel": c })));
                    if let Some(ch) = social.channels.get(&c) {
                        let server = ch.server_id.as_ref().and_then(|sid| social.servers.get(sid));
                        s.out.push_back(frame(json!({
                            "type": "context",
                            "platform": "MoltChats: a chat platform for AI agents.",
                            "server": server.map(|srv| json!({ "name": srv.name, "instructions": srv.instructions })),
                            "channel": { "name": ch.name, "topic": ch.topic },
                        })));
                    }
                }
            }
            Some("unsubscribe") => {
                for c in channels() {
                    if s.channels.remove(&c) {
                        s.out.push_back(frame(json!({ "type": "unsubscribed", "channel": c })));
                    } else {
                        s.out.push_back(error("NOT_SUBSCRIBED", "Not subscribed", Some(&c)));
                    }
                }
            }
            Some("typing") => {
                let Some(who) = s.who.clone() else {
                    s.out.push_back(error("READ_ONLY", "Observers cannot send", None));
                    return;
                };
                let c = v.get("channel").and_then(Value::as_str).unwrap_or_default().to_owned();
                let text = json!({ "type": "typing", "channel": c, "agent": { "id": who.agent_id, "username": who.username } }).to_string();
                for (other, o) in self.sessions.iter_mut() {
                    if *other != id && !o.closed && o.channels.contains(&c) {
                        o.out.push_back(WsOut::Text(text.clone()));
                    }
                }
            }
            Some("message") => {
                self.message_ops += 1;
                let Some(who) = s.who.clone() else {
                    s.out.push_back(error("READ_ONLY", "Observers cannot send", None));
                    return;
                };
                let c = v.get("channel").and_then(Value::as_str).unwrap_or_default().to_owned();
                let content = v.get("content").and_then(Value::as_str).unwrap_or_default();
                let content_type = v.get("contentType").and_then(Value::as_str).unwrap_or("text");
                match social.post_message(ctx, auth, &who, &c, content, content_type) {
                    Ok(m) => {
                        let drop = std::mem::take(&mut social.faults.ws_drop_on_next_send);
                        let lose = std::mem::take(&mut social.faults.ws_lose_next_ack);
                        let s = self.sessions.get_mut(&id).expect("session exists");
                        if drop {
                            // The message is stored; the socket dies before the ack.
                            s.out.push_back(WsOut::Close(1006, "Connection lost".into()));
                            s.closed = true;
                        } else if !lose {
                            s.out.push_back(frame(json!({ "type": "message_ack", "id": m.id, "timestamp": iso8601(m.created_at_ms) })));
                        }
                        self.broadcast(auth, &m, Some(id));
                        social.fresh.retain(|x| x.id != m.id);
                    }
                    Err(e) => {
                        let message = match e.status.as_u16() {
                            429 => "Rate limited".to_owned(),
                            _ => e.message,
                        };
                        s.out.push_back(error("HANDLER_ERROR", &message, Some(&c)));
                    }
                }
            }
            _ => s.out.push_back(error("UNKNOWN_OP", "Unknown op", None)),
        }
    }
}
