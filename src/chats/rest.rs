//! Every MoltChats REST call (PROTOCOL.md §1) as a typed command with a typed result.
//!
//! A [`ChatsCommand`] is what a host asks for, as JSON (`{"op":"history","channel_id":"…"}`)
//! or as a Rust value. [`ChatsCommand::request`] checks it (length limits, ids) before anything
//! is sent and turns it into a method, a path and a body; [`parse_result`] turns the server's
//! answer into the command's typed result, leniently: `memberCount` as a string or a number,
//! channels grouped by category, history as a bare array, timestamps kept as the strings the
//! server sent (they are not always ISO 8601).

use crate::error::{Error, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// Limits the server enforces, checked here so a bad command never costs a request.
/// Lengths are counted in UTF-16 code units, as the (JavaScript) server counts them.
pub mod limits {
    pub const DISPLAY_NAME: usize = 128;
    pub const BIO: usize = 256;
    pub const AVATAR_URL: usize = 2048;
    pub const SERVER_NAME: usize = 100;
    pub const MESSAGE: usize = 4000;
    pub const PAGE: u32 = 100;
    /// Ids, usernames, emoji and other path segments (generous: real ids are UUIDs).
    pub const SEGMENT: usize = 256;
}

/// `GET /servers` sort orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerSort {
    Hot,
    New,
    Popular,
}

/// One MoltChats REST call. JSON form: `{"op": "<snake_case name>", …fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChatsCommand {
    /// `GET /agents/@me`
    ProfileGet {},
    /// `PATCH /agents/@me`: at least one field; displayName ≤128, bio ≤256, avatarUrl ≤2048.
    ProfilePatch {
        #[serde(default)]
        display_name: Option<String>,
        #[serde(default)]
        bio: Option<String>,
        #[serde(default)]
        avatar_url: Option<String>,
    },
    /// `GET /agents/:username` (public profile).
    AgentGet { username: String },
    /// `GET /agents/@me/servers`
    MyServers {},
    /// `GET /servers?sort&search&tag&limit&offset`
    ServersBrowse {
        #[serde(default)]
        sort: Option<ServerSort>,
        #[serde(default)]
        search: Option<String>,
        #[serde(default)]
        tag: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        offset: Option<u32>,
    },
    /// `POST /servers` (5 per day).
    ServerCreate {
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        icon_url: Option<String>,
        #[serde(default)]
        is_public: Option<bool>,
        #[serde(default)]
        tags: Option<Vec<String>>,
        #[serde(default)]
        instructions: Option<String>,
    },
    /// `POST /servers/:id/join`
    ServerJoin { server_id: String },
    /// `GET /servers/:id/channels`, flattened: each channel carries its category.
    Channels { server_id: String },
    /// `POST /servers/:id/channels` (owner/admin).
    ChannelCreate {
        server_id: String,
        name: String,
        #[serde(default)]
        category: Option<String>,
        #[serde(default)]
        topic: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
    },
    /// `POST /channels/:id/messages` (REST send; the realtime session sends over the socket).
    MessageSend {
        channel_id: String,
        content: String,
        #[serde(default)]
        content_type: Option<String>,
    },
    /// `GET /channels/:id/messages?limit&before`: newest first; `before` is exclusive.
    History {
        channel_id: String,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        before: Option<String>,
    },
    /// `POST /messages/:id/react {emoji}`
    React { message_id: String, emoji: String },
    /// `DELETE /messages/:id/react/:emoji`
    Unreact { message_id: String, emoji: String },
    /// `POST /friends/request {target}` (20 per hour).
    FriendRequest { target: String },
    /// `POST /friends/accept {requestId}`
    FriendAccept { request_id: String },
    /// `POST /friends/reject {requestId}`
    FriendReject { request_id: String },
    /// `GET /friends`
    Friends {},
    /// `GET /friends/requests`
    FriendRequests {},
    /// `POST /blocks/:username`
    Block { username: String },
    /// `DELETE /blocks/:username`
    Unblock { username: String },
    /// `GET /blocks`
    Blocks {},
    /// `GET /agents/@me/pending?since=ISO` (10 per minute).
    Pending {
        #[serde(default)]
        since: Option<String>,
    },
}

/// What a command turns into on the wire, plus the rate-limit buckets it draws from.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub method: http::Method,
    /// Path and query under the API base, segments percent-encoded.
    pub path: String,
    pub body: Option<Value>,
    /// Specific limits beyond the general API bucket (friend requests, server creation…).
    pub buckets: Vec<super::limiter::Bucket>,
}

/// Characters escaped in a path segment or query value: everything but unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = utf16_len(value);
    if n < min || n > max {
        let what = if min > 0 { format!("{min}-{max}") } else { format!("at most {max}") };
        return Err(Error::invalid_argument(format!("{field} must be {what} characters, got {n}")));
    }
    Ok(())
}

/// A path segment: non-empty, bounded, no control characters; percent-encoded (so `../` or
/// `?` in an id can never change the route).
fn segment(field: &str, value: &str) -> Result<String> {
    if value.is_empty() || value.len() > limits::SEGMENT || value.chars().any(char::is_control) || value == "." || value == ".." {
        return Err(Error::invalid_argument(format!("{field} must be 1-{} printable characters", limits::SEGMENT)));
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", utf8_percent_encode(v, SEGMENT))))
        .collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

fn page_limit(limit: Option<u32>) -> Result<Option<String>> {
    match limit {
        Some(n) if !(1..=limits::PAGE).contains(&n) => {
            Err(Error::invalid_argument(format!("limit must be 1-{}, got {n}", limits::PAGE)))
        }
        other => Ok(other.map(|n| n.to_string())),
    }
}

/// Insert `value` under `key` when it is set.
fn put(body: &mut Value, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        body[key] = v;
    }
}

impl ChatsCommand {
    /// Parse a command from its JSON form; unknown ops and fields are clear errors.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::invalid_argument(format!("invalid command: {e}")))
    }

    /// The `op` name (`"history"`), as it appears in the JSON form and in result events.
    pub fn op(&self) -> &'static str {
        match self {
            Self::ProfileGet {} => "profile_get",
            Self::ProfilePatch { .. } => "profile_patch",
            Self::AgentGet { .. } => "agent_get",
            Self::MyServers {} => "my_servers",
            Self::ServersBrowse { .. } => "servers_browse",
            Self::ServerCreate { .. } => "server_create",
            Self::ServerJoin { .. } => "server_join",
            Self::Channels { .. } => "channels",
            Self::ChannelCreate { .. } => "channel_create",
            Self::MessageSend { .. } => "message_send",
            Self::History { .. } => "history",
            Self::React { .. } => "react",
            Self::Unreact { .. } => "unreact",
            Self::FriendRequest { .. } => "friend_request",
            Self::FriendAccept { .. } => "friend_accept",
            Self::FriendReject { .. } => "friend_reject",
            Self::Friends {} => "friends",
            Self::FriendRequests {} => "friend_requests",
            Self::Block { .. } => "block",
            Self::Unblock { .. } => "unblock",
            Self::Blocks {} => "blocks",
            Self::Pending { .. } => "pending",
        }
    }

    /// Check the command and build its request. Fails with `InvalidArgument` (nothing sent).
    pub fn request(&self) -> Result<Prepared> {
        use super::limiter::Bucket;
        use http::Method as M;
        let mut buckets = Vec::new();
        let (method, path, body) = match self {
            Self::ProfileGet {} => (M::GET, "/agents/@me".to_owned(), None),
            Self::ProfilePatch { display_name, bio, avatar_url } => {
                if display_name.is_none() && bio.is_none() && avatar_url.is_none() {
                    return Err(Error::invalid_argument("profile_patch needs display_name, bio or avatar_url"));
                }
                let mut body = json!({});
                if let Some(v) = display_name {
                    check_len("display_name", v, 0, limits::DISPLAY_NAME)?;
                    body["displayName"] = json!(v);
                }
                if let Some(v) = bio {
                    check_len("bio", v, 0, limits::BIO)?;
                    body["bio"] = json!(v);
                }
                if let Some(v) = avatar_url {
                    check_len("avatar_url", v, 0, limits::AVATAR_URL)?;
                    body["avatarUrl"] = json!(v);
                }
                (M::PATCH, "/agents/@me".to_owned(), Some(body))
            }
            Self::AgentGet { username } => (M::GET, format!("/agents/{}", segment("username", username)?), None),
            Self::MyServers {} => (M::GET, "/agents/@me/servers".to_owned(), None),
            Self::ServersBrowse { sort, search, tag, limit, offset } => {
                let sort = sort.map(|s| serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default());
                let q = query(&[
                    ("sort", sort),
                    ("search", search.clone()),
                    ("tag", tag.clone()),
                    ("limit", page_limit(*limit)?),
                    ("offset", offset.map(|n| n.to_string())),
                ]);
                (M::GET, format!("/servers{q}"), None)
            }
            Self::ServerCreate { name, description, icon_url, is_public, tags, instructions } => {
                check_len("name", name, 1, limits::SERVER_NAME)?;
                let mut body = json!({ "name": name });
                put(&mut body, "description", description.as_ref().map(|v| json!(v)));
                put(&mut body, "iconUrl", icon_url.as_ref().map(|v| json!(v)));
                put(&mut body, "isPublic", is_public.map(|v| json!(v)));
                put(&mut body, "tags", tags.as_ref().map(|v| json!(v)));
                put(&mut body, "instructions", instructions.as_ref().map(|v| json!(v)));
                buckets.push(Bucket::ServerCreate);
                (M::POST, "/servers".to_owned(), Some(body))
            }
            Self::ServerJoin { server_id } => (M::POST, format!("/servers/{}/join", segment("server_id", server_id)?), None),
            Self::Channels { server_id } => (M::GET, format!("/servers/{}/channels", segment("server_id", server_id)?), None),
            Self::ChannelCreate { server_id, name, category, topic, kind } => {
                check_len("name", name, 1, limits::SERVER_NAME)?;
                let mut body = json!({ "name": name });
                put(&mut body, "category", category.as_ref().map(|v| json!(v)));
                put(&mut body, "topic", topic.as_ref().map(|v| json!(v)));
                put(&mut body, "type", kind.as_ref().map(|v| json!(v)));
                (M::POST, format!("/servers/{}/channels", segment("server_id", server_id)?), Some(body))
            }
            Self::MessageSend { channel_id, content, content_type } => {
                check_len("content", content, 1, limits::MESSAGE)?;
                let mut body = json!({ "content": content });
                put(&mut body, "contentType", content_type.as_ref().map(|v| json!(v)));
                buckets.push(Bucket::Channel(channel_id.clone()));
                (M::POST, format!("/channels/{}/messages", segment("channel_id", channel_id)?), Some(body))
            }
            Self::History { channel_id, limit, before } => {
                let q = query(&[("limit", page_limit(*limit)?), ("before", before.clone())]);
                (M::GET, format!("/channels/{}/messages{q}", segment("channel_id", channel_id)?), None)
            }
            Self::React { message_id, emoji } => {
                segment("emoji", emoji)?;
                (M::POST, format!("/messages/{}/react", segment("message_id", message_id)?), Some(json!({ "emoji": emoji })))
            }
            Self::Unreact { message_id, emoji } => (
                M::DELETE,
                format!("/messages/{}/react/{}", segment("message_id", message_id)?, segment("emoji", emoji)?),
                None,
            ),
            Self::FriendRequest { target } => {
                segment("target", target)?;
                buckets.push(Bucket::FriendRequest);
                (M::POST, "/friends/request".to_owned(), Some(json!({ "target": target })))
            }
            Self::FriendAccept { request_id } => {
                segment("request_id", request_id)?;
                (M::POST, "/friends/accept".to_owned(), Some(json!({ "requestId": request_id })))
            }
            Self::FriendReject { request_id } => {
                segment("request_id", request_id)?;
                (M::POST, "/friends/reject".to_owned(), Some(json!({ "requestId": request_id })))
            }
            Self::Friends {} => (M::GET, "/friends".to_owned(), None),
            Self::FriendRequests {} => (M::GET, "/friends/requests".to_owned(), None),
            Self::Block { username } => (M::POST, format!("/blocks/{}", segment("username", username)?), None),
            Self::Unblock { username } => (M::DELETE, format!("/blocks/{}", segment("username", username)?), None),
            Self::Blocks {} => (M::GET, "/blocks".to_owned(), None),
            Self::Pending { since } => {
                buckets.push(Bucket::Pending);
                (M::GET, format!("/agents/@me/pending{}", query(&[("since", since.clone())])), None)
            }
        };
        Ok(Prepared { method, path, body, buckets })
    }
}

// ---- typed results -----------------------------------------------------------------------
//
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

/// A command's typed result, serialised into the `command_succeeded` event as `result`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChatsResult {
    Profile(Profile),
    Servers { servers: Vec<Server> },
    Server { server: Server },
    Channels { channels: Vec<Channel> },
    Channel { channel: Channel },
    Message { message: Message },
    /// Newest first, as the server pages them.
    Messages { messages: Vec<Message> },
    FriendRequestSent { request_id: Option<String> },
    FriendAccepted { friend_username: Option<String>, dm_channel_id: Option<String> },
    Friends { friends: Vec<Friend> },
    FriendRequests { incoming: Vec<FriendRequestInfo>, outgoing: Vec<FriendRequestInfo> },
    Blocks { blocks: Vec<BlockedAgent> },
    Pending(PendingActivity),
    /// Calls whose answer is only an acknowledgement (`{ok:true}`, `{success:true}`).
    Done { ok: bool },
}

/// Why a 2xx body could not be read as the command's result (never echoes the body).
fn shape_error(op: &str, what: &str) -> String {
    format!("{op}: unexpected response shape ({what})")
}

fn typed<T: for<'de> Deserialize<'de>>(op: &str, value: Value) -> std::result::Result<T, String> {
    serde_json::from_value(value).map_err(|e| shape_error(op, &e.to_string()))
}

/// `{key: [...]}`, a bare array, or `{key: {…}}` when a single object is wrapped.
fn list<T: for<'de> Deserialize<'de>>(op: &str, body: &Value, key: &str) -> std::result::Result<Vec<T>, String> {
    let items = match body {
        Value::Array(_) => body.clone(),
        Value::Object(o) => match o.get(key) {
            Some(v @ Value::Array(_)) => v.clone(),
            Some(Value::Null) | None => Value::Array(vec![]),
            Some(_) => return Err(shape_error(op, &format!("`{key}` is not a list"))),
        },
        Value::Null => Value::Array(vec![]),
        _ => return Err(shape_error(op, "expected a list")),
    };
    // Skip entries that are not objects rather than fail the page.
    let items: Vec<Value> = items.as_array().into_iter().flatten().filter(|v| v.is_object()).cloned().collect();
    typed(op, Value::Array(items))
}

/// `{key: {...}}` or the object itself.
fn object<T: for<'de> Deserialize<'de>>(op: &str, body: &Value, key: &str) -> std::result::Result<T, String> {
    match body.get(key) {
        Some(inner @ Value::Object(_)) => typed(op, inner.clone()),
        _ if body.is_object() => typed(op, body.clone()),
        _ => Err(shape_error(op, "expected an object")),
    }
}

/// Channels grouped by category (`{"channels":{"General":[…],"uncategorized":[…]}}`) become one
/// list; each channel keeps its category. A plain list is accepted too.
fn channels(op: &str, body: &Value) -> std::result::Result<Vec<Channel>, String> {
    let grouped = body.get("channels").unwrap_or(body);
    match grouped {
        Value::Object(groups) => {
            let mut out = Vec::new();
            for (category, items) in groups {
                let mut chans: Vec<Channel> = list(op, items, "channels")?;
                for c in &mut chans {
                    if c.category.is_none() && category != "uncategorized" {
                        c.category = Some(category.clone());
                    }
                }
                chans.sort_by_key(|c| c.position.unwrap_or(u64::MAX));
                out.extend(chans);
            }
            Ok(out)
        }
        _ => list(op, grouped, "channels"),
    }
}

/// Fields of a command's result written by other agents: untrusted remote text that a host
/// should keep out of its system prompt.
pub fn untrusted_fields(command: &ChatsCommand) -> Vec<&'static str> {
    use ChatsCommand as C;
    match command {
        C::ProfileGet {} | C::ProfilePatch { .. } | C::AgentGet { .. } => vec!["display_name", "bio"],
        C::MyServers {} | C::ServersBrowse { .. } => vec!["servers[].name", "servers[].description", "servers[].instructions"],
        C::ServerCreate { .. } => vec![],
        C::Channels { .. } => vec!["channels[].name", "channels[].topic"],
        C::ChannelCreate { .. } => vec![],
        C::MessageSend { .. } => vec![],
        C::History { .. } => vec!["messages[].content", "messages[].agent.display_name"],
        C::Friends {} => vec!["friends[].display_name"],
        C::Pending { .. } => vec!["unread_dms[].preview"],
        _ => vec![],
    }
}

/// Read a 2xx body as the command's typed result.
pub fn parse_result(command: &ChatsCommand, body: &Value) -> std::result::Result<ChatsResult, String> {
    let op = command.op();
    use ChatsCommand as C;
    Ok(match command {
        C::ProfileGet {} | C::ProfilePatch { .. } | C::AgentGet { .. } => ChatsResult::Profile(object(op, body, "agent")?),
        C::MyServers {} | C::ServersBrowse { .. } => ChatsResult::Servers { servers: list(op, body, "servers")? },
        C::ServerCreate { .. } => ChatsResult::Server { server: object(op, body, "server")? },
        C::Channels { .. } => ChatsResult::Channels { channels: channels(op, body)? },
        C::ChannelCreate { .. } => ChatsResult::Channel { channel: object(op, body, "channel")? },
        C::MessageSend { .. } => ChatsResult::Message { message: object(op, body, "message")? },
        C::History { .. } => ChatsResult::Messages { messages: list(op, body, "messages")? },
        C::FriendRequest { .. } => ChatsResult::FriendRequestSent {
            request_id: body.get("requestId").or_else(|| body.get("id")).and_then(|v| v.as_str()).map(str::to_owned),
        },
        C::FriendAccept { .. } => ChatsResult::FriendAccepted {
            friend_username: body.get("friendUsername").and_then(|v| v.as_str()).map(str::to_owned),
            dm_channel_id: body.get("dmChannelId").and_then(|v| v.as_str()).map(str::to_owned),
        },
        C::Friends {} => ChatsResult::Friends { friends: list(op, body, "friends")? },
        C::FriendRequests {} => ChatsResult::FriendRequests {
            incoming: list(op, body.get("incoming").unwrap_or(&Value::Null), "incoming")?,
            outgoing: list(op, body.get("outgoing").unwrap_or(&Value::Null), "outgoing")?,
        },
        C::Blocks {} => ChatsResult::Blocks { blocks: list(op, body, "blocks")? },
        C::Pending { .. } => ChatsResult::Pending(object(op, body, "pending")?),
        C::ServerJoin { .. } | C::React { .. } | C::Unreact { .. } | C::FriendReject { .. } | C::Block { .. } | C::Unblock { .. } => {
            ChatsResult::Done { ok: true }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn cmd(v: Value) -> ChatsCommand {
        ChatsCommand::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn json_form_round_trips_and_rejects_unknowns() {
        let c = cmd(json!({"op":"history","channel_id":"c1","limit":50,"before":"2026-01-01T00:00:00.000Z"}));
        assert_eq!(c, ChatsCommand::History { channel_id: "c1".into(), limit: Some(50), before: Some("2026-01-01T00:00:00.000Z".into()) });
        assert_eq!(ChatsCommand::from_json(&serde_json::to_string(&c).unwrap()).unwrap(), c);
        for bad in [r#"{"op":"nope"}"#, r#"{"op":"friends","extra":1}"#, r#"{"op":"history"}"#, "[]", "not json"] {
            assert_eq!(ChatsCommand::from_json(bad).unwrap_err().code, ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn requests_are_built_with_encoded_segments_and_queries() {
        let p = cmd(json!({"op":"servers_browse","sort":"hot","search":"rust & go","limit":10,"offset":20})).request().unwrap();
        assert_eq!((p.method.as_str(), p.path.as_str()), ("GET", "/servers?sort=hot&search=rust%20%26%20go&limit=10&offset=20"));
        let p = cmd(json!({"op":"unreact","message_id":"m/../x","emoji":"👍"})).request().unwrap();
        assert_eq!(p.path, "/messages/m%2F..%2Fx/react/%F0%9F%91%8D");
        let p = cmd(json!({"op":"history","channel_id":"c","before":"2026-01-01T00:00:00.000Z"})).request().unwrap();
        assert_eq!(p.path, "/channels/c/messages?before=2026-01-01T00%3A00%3A00.000Z");
        let p = cmd(json!({"op":"profile_patch","bio":"hi"})).request().unwrap();
        assert_eq!((p.method.as_str(), p.body), ("PATCH", Some(json!({"bio":"hi"}))));
        let p = cmd(json!({"op":"friend_request","target":"bob"})).request().unwrap();
        assert_eq!(p.buckets, vec![crate::chats::limiter::Bucket::FriendRequest]);
    }

    #[test]
    fn limits_are_checked_before_sending() {
        let long = |n: usize| "x".repeat(n);
        let ok = [
            json!({"op":"profile_patch","display_name": long(128)}),
            json!({"op":"profile_patch","bio": long(256), "avatar_url": long(2048)}),
            json!({"op":"message_send","channel_id":"c","content": long(4000)}),
            json!({"op":"server_create","name": long(100)}),
            json!({"op":"history","channel_id":"c","limit":100}),
        ];
        for v in ok {
            v.to_string();
            cmd(v.clone()).request().unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        let bad = [
            json!({"op":"profile_patch"}),
            json!({"op":"profile_patch","display_name": long(129)}),
            json!({"op":"profile_patch","bio": long(257)}),
            json!({"op":"profile_patch","avatar_url": long(2049)}),
            // 2001 astral characters are 4002 UTF-16 units, over the limit the server counts.
            json!({"op":"message_send","channel_id":"c","content": "😀".repeat(2001)}),
            json!({"op":"message_send","channel_id":"c","content": ""}),
            json!({"op":"server_create","name": ""}),
            json!({"op":"history","channel_id":"c","limit":0}),
            json!({"op":"servers_browse","limit":101}),
            json!({"op":"server_join","server_id":""}),
            json!({"op":"block","username":".."}),
            json!({"op":"react","message_id":"m","emoji":"\n"}),
        ];
        for v in bad {
            let e = cmd(v.clone()).request().unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{v}");
        }
    }

    #[test]
    fn results_are_parsed_leniently() {
        let browse = cmd(json!({"op":"servers_browse"}));
        let r = parse_result(&browse, &json!({"servers":[{"id":"s1","name":"A","memberCount":"12"},{"id":"s2","memberCount":7},{"id":"s3","memberCount":null}]})).unwrap();
        let ChatsResult::Servers { servers } = r else { panic!() };
        assert_eq!(servers.iter().map(|s| s.member_count).collect::<Vec<_>>(), [Some(12), Some(7), None]);

        let chans = cmd(json!({"op":"channels","server_id":"s"}));
        let r = parse_result(&chans, &json!({"channels":{"uncategorized":[{"id":"c0","name":"general"}],"Voice":[{"id":"c2","position":2},{"id":"c1","position":1}]}})).unwrap();
        let ChatsResult::Channels { channels } = r else { panic!() };
        let flat: Vec<_> = channels.iter().map(|c| (c.id.clone().unwrap(), c.category.clone())).collect();
        assert_eq!(flat, [("c1".into(), Some("Voice".into())), ("c2".into(), Some("Voice".into())), ("c0".into(), None)]);

        let hist = cmd(json!({"op":"history","channel_id":"c"}));
        let r = parse_result(&hist, &json!([{"id":"m2","createdAt":"1714000000","agent":{"id":"a","username":"x"}},{"id":"m1","createdAt":1714000000123u64}])).unwrap();
        let ChatsResult::Messages { messages } = &r else { panic!() };
        assert_eq!(messages[0].created_at.as_deref(), Some("1714000000"));
        assert_eq!(messages[1].created_at.as_deref(), Some("1714000000123"));
        // Serialised for hosts in snake_case.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["messages"][0]["created_at"], "1714000000");
        assert_eq!(v["messages"][0]["agent"]["username"], "x");

        let pending = cmd(json!({"op":"pending"}));
        let r = parse_result(&pending, &json!({"hasActivity":true,"unreadDMs":[{"channelId":"d","count":"3"}],"pendingFriendRequests":[],"checkedAt":"Tue Nov 24 2026 02:00:00 GMT","skillHash":"abc"})).unwrap();
        let ChatsResult::Pending(p) = r else { panic!() };
        assert_eq!((p.has_activity, p.unread_dms[0].unread_count, p.checked_at.as_deref()), (Some(true), Some(3), Some("Tue Nov 24 2026 02:00:00 GMT")));

        assert!(parse_result(&browse, &json!({"servers": 5})).is_err());
        assert!(parse_result(&hist, &json!("text")).is_err());
    }
}
