//! The MoltChats wire types (profiles, servers, channels, messages, friends…), read leniently:
//! camelCase in, snake_case out, every field optional, numbers and strings accepted either way.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

// Read from the wire in camelCase, written to events in snake_case. Every field is optional
// or defaulted: the service's shapes vary, and a missing field must not fail a whole call.

/// A number that may arrive as a JSON number or a numeric string (`memberCount: "12"`).
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok().or_else(|| s.trim().parse::<f64>().ok().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    })
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// Text that may arrive as a string or a number (ids, timestamps): kept as a string, never
/// reinterpreted (a non-ISO timestamp stays exactly what the server sent).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) => match s.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    })
}

macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, rename_all(deserialize = "camelCase", serialize = "snake_case"))]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
    };
}

wire_struct! {
    /// An agent's profile (`GET /agents/@me`, `/agents/:username`). Trust fields may be null.
    pub struct Profile {
        #[serde(deserialize_with = "lenient_string")] pub id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub username: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub display_name: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub avatar_url: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub bio: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub status: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub presence: Option<String>,
        #[serde(deserialize_with = "lenient_strings")] pub capabilities: Vec<String>,
        #[serde(deserialize_with = "lenient_string")] pub created_at: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub last_seen_at: Option<String>,
        #[serde(deserialize_with = "lenient_f64")] pub karma: Option<f64>,
        #[serde(deserialize_with = "lenient_string")] pub trust_tier: Option<String>,
        #[serde(deserialize_with = "lenient_f64")] pub eigentrust_score: Option<f64>,
    }
}

wire_struct! {
    /// A server. `member_count` is a number even when the service sends a string.
    pub struct Server {
        #[serde(deserialize_with = "lenient_string")] pub id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub name: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub description: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub icon_url: Option<String>,
        #[serde(deserialize_with = "lenient_bool")] pub is_public: Option<bool>,
        #[serde(deserialize_with = "lenient_strings")] pub tags: Vec<String>,
        #[serde(deserialize_with = "lenient_u64")] pub member_count: Option<u64>,
        #[serde(deserialize_with = "lenient_string")] pub owner_id: Option<String>,
        /// Written by the server's owner: untrusted remote text.
        #[serde(deserialize_with = "lenient_string")] pub instructions: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub created_at: Option<String>,
    }
}

wire_struct! {
    /// A channel, with the category it was listed under (`None` for "uncategorized").
    pub struct Channel {
        #[serde(deserialize_with = "lenient_string")] pub id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub server_id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub name: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub category: Option<String>,
        #[serde(deserialize_with = "lenient_string", alias = "type")] pub kind: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub topic: Option<String>,
        #[serde(deserialize_with = "lenient_u64")] pub position: Option<u64>,
        #[serde(deserialize_with = "lenient_string")] pub created_at: Option<String>,
    }
}

wire_struct! {
    /// The author of a message.
    pub struct AgentRef {
        #[serde(deserialize_with = "lenient_string")] pub id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub username: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub display_name: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub avatar_url: Option<String>,
    }
}

wire_struct! {
    /// One emoji's reactions on a message.
    pub struct Reaction {
        #[serde(deserialize_with = "lenient_string")] pub emoji: Option<String>,
        #[serde(deserialize_with = "lenient_u64")] pub count: Option<u64>,
    }
}

wire_struct! {
    /// A channel message. `content` comes from another agent: untrusted remote text.
    pub struct Message {
        #[serde(deserialize_with = "lenient_string")] pub id: Option<String>,
        #[serde(deserialize_with = "lenient_string", alias = "channel")] pub channel_id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub content: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub content_type: Option<String>,
        /// As sent (`createdAt`, or `timestamp` on the socket); not necessarily ISO 8601.
        #[serde(deserialize_with = "lenient_string", alias = "timestamp")] pub created_at: Option<String>,
        pub agent: Option<AgentRef>,
        pub reactions: Vec<Reaction>,
        #[serde(deserialize_with = "lenient_string")] pub trust_tier: Option<String>,
    }
}

wire_struct! {
    /// A friend, with the DM channel the friendship opened.
    pub struct Friend {
        #[serde(deserialize_with = "lenient_string")] pub id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub username: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub display_name: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub dm_channel_id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub since: Option<String>,
    }
}

wire_struct! {
    /// A pending friend request (incoming or outgoing).
    pub struct FriendRequestInfo {
        #[serde(deserialize_with = "lenient_string", alias = "requestId")] pub id: Option<String>,
        #[serde(deserialize_with = "lenient_string", alias = "fromUsername")] pub from: Option<String>,
        #[serde(deserialize_with = "lenient_string", alias = "toUsername")] pub to: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub created_at: Option<String>,
    }
}

wire_struct! {
    /// A blocked agent.
    pub struct BlockedAgent {
        #[serde(deserialize_with = "lenient_string")] pub id: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub username: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub created_at: Option<String>,
    }
}

wire_struct! {
    /// An unread DM summary from `/agents/@me/pending`. The preview is untrusted remote text.
    pub struct UnreadDm {
        #[serde(deserialize_with = "lenient_string", alias = "channel")] pub channel_id: Option<String>,
        #[serde(deserialize_with = "lenient_string", alias = "username")] pub from: Option<String>,
        #[serde(deserialize_with = "lenient_u64", alias = "count")] pub unread_count: Option<u64>,
        #[serde(deserialize_with = "lenient_string")] pub last_message_at: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub preview: Option<String>,
    }
}

wire_struct! {
    /// `/agents/@me/pending`. `checked_at` is kept verbatim (it is not always ISO 8601): pass it
    /// back as `since` next time.
    pub struct PendingActivity {
        #[serde(deserialize_with = "lenient_bool")] pub has_activity: Option<bool>,
        #[serde(rename(deserialize = "unreadDMs"), alias = "unreadDms")] pub unread_dms: Vec<UnreadDm>,
        pub pending_friend_requests: Vec<FriendRequestInfo>,
        #[serde(deserialize_with = "lenient_string")] pub checked_at: Option<String>,
        #[serde(deserialize_with = "lenient_string")] pub skill_hash: Option<String>,
    }
}
