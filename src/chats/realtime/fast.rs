//! The hot path for inbound `message` frames: a typed, borrowing read of the frame (strings
//! point into the frame unless they hold escapes), straight into the [`Message`] the event
//! carries, with no `serde_json::Value` in between.
//!
//! It only takes frames it can read exactly as the general path does (`wire::live_message`):
//! known keys only, each a string or `null` (`metadata` anything), `agent` an object with
//! known keys, one of `op` / `type` saying `message`. Anything else (unknown keys, a value of
//! another type, duplicate keys) returns `None` and goes the general way, so the event is the
//! same either way (`fast_and_general_paths_agree` checks it on the recorded frames).

use crate::chats::rest::{AgentRef, Field, Message};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::borrow::Cow;

/// A key that was absent, `null`, or held a `T`.
enum Slot<T> {
    Absent,
    Null,
    Some(T),
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot::Absent
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Slot::Null, Slot::Some))
    }
}

/// A string borrowed from the frame when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Author<'a> {
    #[serde(default, borrow)]
    id: Slot<Text<'a>>,
    #[serde(default, borrow)]
    username: Slot<Text<'a>>,
    #[serde(default, borrow)]
    display_name: Slot<Text<'a>>,
    #[serde(default, borrow)]
    avatar_url: Slot<Text<'a>>,
}

/// Every key a live `message` frame (or a `Message`) may hold.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Frame<'a> {
    #[serde(default, borrow)]
    op: Slot<Text<'a>>,
    #[serde(default, borrow, rename = "type")]
    kind: Slot<Text<'a>>,
    #[serde(default, borrow)]
    id: Slot<Text<'a>>,
    #[serde(default, borrow)]
    channel_id: Slot<Text<'a>>,
    #[serde(default, borrow)]
    channel: Slot<Text<'a>>,
    #[serde(default, borrow)]
    content: Slot<Text<'a>>,
    #[serde(default, borrow)]
    content_type: Slot<Text<'a>>,
    #[serde(default)]
    metadata: Slot<Value>,
    #[serde(default, borrow)]
    created_at: Slot<Text<'a>>,
    #[serde(default, borrow)]
    edited_at: Slot<Text<'a>>,
    #[serde(default, borrow)]
    timestamp: Slot<Text<'a>>,
    #[serde(default, borrow)]
    trust_tier: Slot<Text<'a>>,
    #[serde(default, borrow)]
    channel_name: Slot<Text<'a>>,
    #[serde(default, borrow)]
    server_name: Slot<Text<'a>>,
    #[serde(default, borrow)]
    server_id: Slot<Text<'a>>,
    #[serde(default, borrow)]
    agent: Slot<Author<'a>>,
}

fn owned<T>(slot: Slot<T>, f: impl FnOnce(T) -> Field<String>) -> Field<String> {
    match slot {
        Slot::Absent => Field::Absent,
        Slot::Null => Field::Null,
        Slot::Some(t) => f(t),
    }
}

fn text(slot: Slot<Text>) -> Field<String> {
    owned(slot, |t| Field::Value(t.0.into_owned()))
}

/// A `message` frame as its channel and [`Message`], or `None` when the general path must
/// read it (not a message, or anything the general path would read differently).
pub(in crate::chats::realtime) fn message(frame: &str) -> Option<(String, Box<Message>)> {
    let f: Frame = serde_json::from_str(frame).ok()?;
    // The kind key is not part of the message (the event's kind stands for it). With both
    // keys, the general path keeps the other one in `extra`.
    let kind = match (f.op, f.kind) {
        (Slot::Some(k), Slot::Absent) | (Slot::Absent, Slot::Some(k)) => k,
        _ => return None,
    };
    if kind.0 != "message" {
        return None;
    }
    let channel = match (&f.channel, &f.channel_id) {
        (Slot::Some(c), _) => c.0.as_ref(),
        (_, Slot::Some(c)) => c.0.as_ref(),
        _ => return None,
    }
    .to_owned();
    let agent = match f.agent {
        Slot::Absent => Field::Absent,
        Slot::Null => Field::Null,
        Slot::Some(a) => Field::Value(AgentRef {
            id: text(a.id),
            username: text(a.username),
            display_name: text(a.display_name),
            avatar_url: text(a.avatar_url),
            extra: Default::default(),
        }),
    };
    // Built in place: a `Message` is large, and moving it into a box would copy it.
    let mut m = Box::<Message>::default();
    m.id = text(f.id);
    m.channel_id = text(f.channel_id);
    m.channel = text(f.channel);
    m.content = text(f.content);
    m.content_type = text(f.content_type);
    m.metadata = match f.metadata {
        Slot::Absent => Field::Absent,
        Slot::Null => Field::Null,
        Slot::Some(v) => Field::Value(v),
    };
    m.created_at = text(f.created_at);
    m.edited_at = text(f.edited_at);
    m.timestamp = text(f.timestamp);
    m.trust_tier = text(f.trust_tier);
    m.channel_name = text(f.channel_name);
    m.server_name = text(f.server_name);
    m.server_id = text(f.server_id);
    m.agent = agent;
    Some((channel, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general(frame: &str) -> Option<(String, Box<Message>)> {
        super::super::wire::live_message(&serde_json::from_str(frame).ok()?).map(|(c, m)| (c, Box::new(m)))
    }

    /// Every recorded inbound `message` frame, and edge cases, read alike by both paths.
    #[test]
    fn fast_and_general_paths_agree() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/host-tests/wire/moltchats/ws");
        let mut frames = vec![];
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if v["dir"] == "in" && v["frame"]["op"] == "message" {
                    frames.push(v["frame"].to_string());
                }
            }
        }
        let recorded = frames.len();
        assert!(recorded > 0, "the corpus has inbound message frames");
        let a = r#""agent":{"id":"a","username":"u","displayName":null,"avatarUrl":"x"}"#;
        frames.extend([
            format!(r#"{{"type":"message","channel":"c","id":"m","content":"esc \"q\" \u00e9\n",{a}}}"#),
            r#"{"op":"message","channelId":"c","id":"m","metadata":{"k":[1,2]},"createdAt":"t","editedAt":null}"#.to_owned(),
            r#"{"op":"message","channel":"c","id":"m","agent":null,"content":null}"#.to_owned(),
        ]);
        for f in &frames {
            let fast = message(f);
            assert!(fast.is_some(), "the fast path takes {f}");
            assert_eq!(fast, general(f), "{f}");
        }
        // Declined (the general path reads them): unknown keys, other types, both kinds, other ops.
        for f in [
            r#"{"op":"message","channel":"c","id":"m","extra":1}"#,
            r#"{"op":"message","channel":"c","id":5}"#,
            r#"{"op":"message","channel":"c","agent":{"id":"a","karma":1}}"#,
            r#"{"op":"message","channel":"c","agent":"a"}"#,
            r#"{"op":"message","type":"message","channel":"c"}"#,
            r#"{"op":"message_ack","id":"m"}"#,
            r#"{"op":"message","id":"m"}"#,
            r#"{"op":"message","channel":"c","channel":"d"}"#,
            "not json",
        ] {
            assert_eq!(message(f), None, "{f}");
        }
        println!("{recorded} recorded message frames read alike");
    }
}
