//! Frames in and out: reading a server frame and routing it, the frames we send, and the
//! server's timestamps (compared as instants when they are ISO 8601).

use super::link::Link;
use super::{Io, Realtime, RealtimeEvent, UNTRUSTED};
use crate::chats::rest::Message;
use crate::io::ConnId;
use serde_json::{Value, json};

impl Realtime {
    pub fn handle_frame(&mut self, conn: ConnId, text: &str, now_ms: u64, io: &mut Io) {
        if self.current_conn() != Some(conn) {
            return;
        }
        if let Link::Open { last_in_ms, .. } = &mut self.link {
            *last_in_ms = now_ms;
        }
        let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
        let kind = frame.get("type").or_else(|| frame.get("op")).and_then(Value::as_str).unwrap_or_default().to_owned();
        let channel = frame.get("channel").and_then(Value::as_str).map(str::to_owned);
        // `None`: the frame was ignored (unknown channel, nothing to ack…), so no clock step.
        let handled = match kind.as_str() {
            "subscribed" => channel.and_then(|c| self.on_subscribed(c, io)),
            "unsubscribed" => {
                if let Some(c) = channel {
                    io.out.event(RealtimeEvent::Unsubscribed { channel: c });
                }
                Some(())
            }
            "message" => {
                let Ok(message) = serde_json::from_value::<Message>(frame.clone()) else { return };
                channel.or_else(|| message.channel_id().map(str::to_owned)).and_then(|c| self.on_live_message(c, message, io))
            }
            "message_ack" => {
                let id = frame.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                let timestamp = frame.get("timestamp").and_then(Value::as_str).map(str::to_owned);
                self.on_ack(id, timestamp, io)
            }
            "error" => {
                self.on_error(&frame, channel, now_ms, io);
                Some(())
            }
            "context" => {
                io.out.event(RealtimeEvent::Context { channel, context: frame, trust: UNTRUSTED });
                Some(())
            }
            "presence" => {
                let online = frame.get("online").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default();
                io.out.event(RealtimeEvent::Presence { channel: channel.unwrap_or_default(), online });
                Some(())
            }
            "typing" => {
                let agent = frame.get("agent").cloned().unwrap_or(Value::Null);
                io.out.event(RealtimeEvent::Typing { channel: channel.unwrap_or_default(), agent, trust: UNTRUSTED });
                Some(())
            }
            _ => Some(()),
        };
        if handled.is_some() {
            self.step(now_ms, io);
        }
    }

    /// Send a frame on `conn`; an open link remembers when it last sent (for pings).
    pub(super) fn send_frame(&mut self, conn: ConnId, frame: Value, now_ms: u64, io: &mut Io) {
        io.out.ws_send(conn, frame.to_string());
        if let Link::Open { last_out_ms, .. } = &mut self.link {
            *last_out_ms = now_ms;
        }
    }
}

pub(super) fn subscribe(channels: &[String]) -> Value {
    json!({ "op": "subscribe", "channels": channels })
}

pub(super) fn unsubscribe(channels: &[String]) -> Value {
    json!({ "op": "unsubscribe", "channels": channels })
}

pub(super) fn message(channel: &str, content: &str, content_type: Option<&str>) -> Value {
    json!({ "op": "message", "channel": channel, "content": content, "contentType": content_type.unwrap_or("text") })
}

pub(super) fn typing(channel: &str) -> Value {
    json!({ "op": "typing", "channel": channel })
}

pub(super) fn ping() -> Value {
    json!({ "op": "ping" })
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
