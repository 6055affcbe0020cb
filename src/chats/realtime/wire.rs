//! Frames in and out: reading a server frame and routing it, the frames we send, and the
//! server's timestamps (compared as instants when they are ISO 8601).

use super::link::Link;
use super::{Io, Realtime, RealtimeEvent, TrustOp, UNTRUSTED};
use crate::chats::rest::Message;
use crate::io::ConnId;
use serde_json::{Value, json};

impl Realtime {
    /// One server frame. Every frame ends in an event: one the session cannot place is
    /// reported as `unmatched` with the frame as sent.
    pub fn handle_frame(&mut self, conn: ConnId, text: &str, now_ms: u64, io: &mut Io) {
        if self.current_conn() != Some(conn) {
            return;
        }
        if let Link::Open { last_in_ms, .. } = &mut self.link {
            *last_in_ms = now_ms;
        }
        // A `context` belongs to the `subscribed` right before it: the server sends the two
        // back to back for each channel, and nothing else can come in between.
        let after_subscribed = self.last_subscribed.take();
        // The hot path: a plain `message` frame read straight into its event, no `Value`.
        if let Some((c, message)) = super::fast::message(text) {
            return match self.on_live_message(c, message, io) {
                Ok(()) => self.step(now_ms, io),
                // Rare (traffic for a channel we do not follow): report the frame as sent.
                Err(reason) => {
                    let frame = serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()));
                    let channel = frame.get("channel").and_then(Value::as_str).map(str::to_owned);
                    self.unmatched(reason, channel, frame, now_ms, io)
                }
            };
        }
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return self.unmatched("invalid_json", None, Value::String(text.to_owned()), now_ms, io);
        };
        // The server names the kind `op`; `type` is accepted too (older emulators).
        let kind = frame.get("op").or_else(|| frame.get("type")).and_then(Value::as_str).unwrap_or_default().to_owned();
        let channel = frame.get("channel").and_then(Value::as_str).map(str::to_owned);
        let routed = match kind.as_str() {
            "subscribed" => match channel.clone() {
                Some(c) => {
                    self.last_subscribed = Some(c.clone());
                    self.on_subscribed(c, now_ms, io)
                }
                None => Err("unreadable"),
            },
            "unsubscribed" => match channel.clone() {
                Some(c) => {
                    io.out.event(RealtimeEvent::Unsubscribed { channel: c });
                    Ok(())
                }
                None => Err("unreadable"),
            },
            "message" => match live_message(&frame) {
                Some((c, message)) => self.on_live_message(c, Box::new(message), io),
                None => Err("unreadable"),
            },
            "message_ack" => match frame.get("id").and_then(Value::as_str) {
                Some(id) => self.on_ack(id.to_owned(), frame.get("timestamp").and_then(Value::as_str).map(str::to_owned), io),
                None => Err("unreadable"),
            },
            "vouch_ack" | "flag_ack" => self.on_trust_ack(&kind, &frame, io),
            "error" => {
                self.on_error(&frame, channel.clone(), now_ms, io);
                Ok(())
            }
            "context" => match after_subscribed {
                Some(c) if self.wants(&c) => {
                    let mut instructions = frame.as_object().cloned().unwrap_or_default();
                    instructions.remove("op");
                    instructions.remove("type");
                    io.out.event(RealtimeEvent::Context { channel: c, instructions, trust: UNTRUSTED });
                    Ok(())
                }
                Some(_) => Err("not_subscribed"),
                None => Err("no_subscribed"),
            },
            "presence" => match (channel.clone(), frame.get("online").and_then(Value::as_array)) {
                (Some(c), _) if !self.wants(&c) => Err("not_subscribed"),
                (Some(c), Some(ids)) if ids.iter().all(Value::is_string) => {
                    let online = ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
                    io.out.event(RealtimeEvent::Presence { channel: c, online });
                    Ok(())
                }
                _ => Err("unreadable"),
            },
            "typing" => match (channel.clone(), frame.get("agent").and_then(Value::as_str)) {
                (Some(c), _) if !self.wants(&c) => Err("not_subscribed"),
                (Some(c), Some(agent)) => {
                    io.out.event(RealtimeEvent::Typing { channel: c, agent: agent.to_owned(), trust: UNTRUSTED });
                    Ok(())
                }
                _ => Err("unreadable"),
            },
            "pong" => {
                io.out.event(RealtimeEvent::Pong);
                Ok(())
            }
            "quarantined" => {
                let reason = frame.get("reason").and_then(Value::as_str).map(str::to_owned);
                io.out.event(RealtimeEvent::Quarantined { reason, trust: UNTRUSTED });
                Ok(())
            }
            _ => Err("unknown_op"),
        };
        match routed {
            Ok(()) => self.step(now_ms, io),
            Err(reason) => self.unmatched(reason, channel, frame, now_ms, io),
        }
    }

    fn unmatched(&mut self, reason: &'static str, channel: Option<String>, frame: Value, now_ms: u64, io: &mut Io) {
        io.out.event(RealtimeEvent::Unmatched { reason, channel, frame, trust: UNTRUSTED });
        self.step(now_ms, io);
    }

    /// Does the session follow `channel`?
    pub(super) fn wants(&self, channel: &str) -> bool {
        self.channels.get(channel).is_some_and(|c| c.want)
    }

    /// Send a frame on `conn`; an open link remembers when it last sent (for pings).
    pub(super) fn send_frame(&mut self, conn: ConnId, frame: Value, now_ms: u64, io: &mut Io) {
        io.out.ws_send(conn, frame.to_string());
        if let Link::Open { last_out_ms, .. } = &mut self.link {
            *last_out_ms = now_ms;
        }
    }
}

/// A `message` frame as a [`Message`] and its channel (the general path, for frames the fast
/// path in `fast.rs` declines). The key that named the frame's kind (`op`, or `type` from
/// older emulators) is not part of the message: the event's kind stands for it.
pub(super) fn live_message(frame: &Value) -> Option<(String, Message)> {
    let mut fields = frame.as_object()?.clone();
    let kind_key = if fields.contains_key("op") { "op" } else { "type" };
    fields.shift_remove(kind_key);
    let message = serde_json::from_value::<Message>(Value::Object(fields)).ok()?;
    let channel = frame.get("channel").and_then(Value::as_str).map(str::to_owned).or_else(|| message.channel_id().map(str::to_owned))?;
    Some((channel, message))
}

/// An error frame's message for events: a database error's raw text (SQL and its parameters,
/// `08`, `25a`) is withheld.
pub(super) fn public_text(message: &str) -> String {
    if message.starts_with("Failed query:") {
        "the server failed on a database query (its raw text is withheld)".to_owned()
    } else {
        message.to_owned()
    }
}

pub(super) fn subscribe(channels: &[String]) -> Value {
    json!({ "op": "subscribe", "channels": channels })
}

pub(super) fn unsubscribe(channels: &[String]) -> Value {
    json!({ "op": "unsubscribe", "channels": channels })
}

/// `contentType` only when given (the server defaults to `"text"`).
pub(super) fn message(channel: &str, content: &str, content_type: Option<&str>) -> Value {
    let mut frame = json!({ "op": "message", "channel": channel, "content": content });
    if let Some(t) = content_type {
        frame["contentType"] = json!(t);
    }
    frame
}

pub(super) fn typing(channel: &str) -> Value {
    json!({ "op": "typing", "channel": channel })
}

pub(super) fn ping() -> Value {
    json!({ "op": "ping" })
}

/// `reason` only for `flag`, and only when given.
pub(super) fn trust(op: TrustOp, target: &str, reason: Option<&str>) -> Value {
    let mut frame = json!({ "op": op.op(), "target": target });
    if let (TrustOp::Flag, Some(r)) = (op, reason) {
        frame["reason"] = json!(r);
    }
    frame
}

/// Unix ms of an ISO 8601 timestamp, if it is one.
pub(super) fn ms_of(ts: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(ts.trim()).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

pub(super) fn iso_of(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// Is `a` strictly older than `b`? Unknown formats compare as "not older".
pub(super) fn older(a: &str, b: &str) -> bool {
    match (ms_of(a), ms_of(b)) {
        (Some(x), Some(y)) => x < y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip_and_order() {
        let ms = 1_790_000_000_123;
        assert_eq!(ms_of(&iso_of(ms)), Some(ms));
        assert!(older("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.001Z"));
        assert!(!older("not a date", "2026-01-01T00:00:00.001Z"));
    }
}
