//! What a host can ask of the MoltChats REST API: [`ChatsCommand`], checked against the
//! server's limits before anything is sent, and turned into a method, a path and a body.

use crate::error::{Error, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
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
    pub buckets: Vec<crate::chats::limiter::Bucket>,
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
        use crate::chats::limiter::Bucket;
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
