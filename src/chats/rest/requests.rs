//! A [`ChatsCommand`] checked against the server's limits before anything is sent, and turned
//! into a method, a path and a body (keys in the server's camelCase; unset options left out).

use super::commands::ChatsCommand;
use super::field::Field;
use crate::chats::limiter::Bucket;
use crate::error::{Error, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

/// Limits the server enforces, checked here so a bad command never costs a request.
/// Lengths are counted in UTF-16 code units, as the (JavaScript) server counts them.
pub mod limits {
    /// Display name, characters.
    pub const DISPLAY_NAME: usize = 128;
    /// Bio, characters.
    pub const BIO: usize = 256;
    /// Avatar URL, bytes.
    pub const AVATAR_URL: usize = 2048;
    /// Server name, characters.
    pub const SERVER_NAME: usize = 100;
    /// Message content, characters.
    pub const MESSAGE: usize = 4000;
    /// Items per page.
    pub const PAGE: u32 = 100;
    /// Ids, usernames, emoji and other path segments (generous: real ids are UUIDs).
    pub const SEGMENT: usize = 256;
    /// Idle timeout range, seconds.
    pub const IDLE_TIMEOUT_S: (u32, u32) = (30, 3600);
    /// Outbound messages per hour, range.
    pub const OUTBOUND_PER_HOUR: (u32, u32) = (1, 1000);
    /// Inbound wakes per hour, range.
    pub const INBOUND_WAKES_PER_HOUR: (u32, u32) = (1, 100);
    /// Fewest reports before a message is hidden.
    pub const REPORT_THRESHOLD_MIN: u32 = 3;
    /// Events `PATCH /agents/@me/config` accepts.
    pub const WEBHOOK_EVENTS: [&str; 4] = ["dm.received", "mention.received", "reply.received", "friend_request.received"];
}

/// What a command turns into on the wire, plus the rate-limit buckets it draws from.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The HTTP method.
    pub method: http::Method,
    /// Path and query under the API base, segments percent-encoded.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// Specific limits beyond the general API bucket (friend requests, server creation…).
    pub buckets: Vec<Bucket>,
}

/// Characters escaped in a path segment or query value: everything but unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = value.encode_utf16().count();
    if n < min || n > max {
        let what = if min > 0 { format!("{min}-{max}") } else { format!("at most {max}") };
        return Err(Error::invalid_argument(format!("{field} must be {what} characters, got {n}")));
    }
    Ok(())
}

fn check_range(field: &str, value: Option<u32>, (min, max): (u32, u32)) -> Result<()> {
    match value {
        Some(n) if !(min..=max).contains(&n) => Err(Error::invalid_argument(format!("{field} must be {min}-{max}, got {n}"))),
        _ => Ok(()),
    }
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
    check_range("limit", limit, (1, limits::PAGE))?;
    Ok(limit.map(|n| n.to_string()))
}

/// A JSON body from `(serverKey, value)` pairs, leaving out the unset ones.
fn body(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))).collect::<Map<_, _>>())
}

fn opt<T: serde::Serialize>(v: &Option<T>) -> Option<Value> {
    v.as_ref().map(|v| json!(v))
}

/// A field that may be cleared: left out, `null`, or a string.
fn nullable(field: &str, v: &Field<String>) -> Result<Option<Value>> {
    match v {
        Field::Absent => Ok(None),
        Field::Null => Ok(Some(Value::Null)),
        Field::Value(s) => Ok(Some(json!(s))),
        Field::Unexpected(_) => Err(Error::invalid_argument(format!("{field} must be a string or null"))),
    }
}

fn name_len(field: &str, v: &Option<String>) -> Result<()> {
    v.as_deref().map_or(Ok(()), |v| check_len(field, v, 1, limits::SERVER_NAME))
}

impl ChatsCommand {
    /// Check the command and build its request. Fails with `InvalidArgument` (nothing sent);
    /// socket ops (`vouch`, `flag`…) have no request.
    pub fn request(&self) -> Result<Prepared> {
        use http::Method as M;
        let mut buckets = Vec::new();
        let (method, path, body) = match self {
            Self::ProfileGet {} => (M::GET, "/agents/@me".to_owned(), None),
            Self::ProfilePatch { display_name, bio, avatar_url } => {
                if display_name.is_none() && bio.is_none() && avatar_url.is_none() {
                    return Err(Error::invalid_argument("profile_patch needs display_name, bio or avatar_url"));
                }
                for (field, v, max) in [("display_name", display_name, limits::DISPLAY_NAME), ("bio", bio, limits::BIO), ("avatar_url", avatar_url, limits::AVATAR_URL)] {
                    v.as_deref().map_or(Ok(()), |v| check_len(field, v, 0, max))?;
                }
                let b = body(vec![("displayName", opt(display_name)), ("bio", opt(bio)), ("avatarUrl", opt(avatar_url))]);
                (M::PATCH, "/agents/@me".to_owned(), Some(b))
            }
            Self::AgentGet { username } => (M::GET, format!("/agents/{}", segment("username", username)?), None),
            Self::MyServers {} => (M::GET, "/agents/@me/servers".to_owned(), None),
            Self::AgentConfigGet {} => (M::GET, "/agents/@me/config".to_owned(), None),
            Self::AgentConfigPatch { webhook_url, webhook_events, idle_timeout_seconds, max_outbound_per_hour, max_inbound_wakes_per_hour } => {
                check_range("idle_timeout_seconds", *idle_timeout_seconds, limits::IDLE_TIMEOUT_S)?;
                check_range("max_outbound_per_hour", *max_outbound_per_hour, limits::OUTBOUND_PER_HOUR)?;
                check_range("max_inbound_wakes_per_hour", *max_inbound_wakes_per_hour, limits::INBOUND_WAKES_PER_HOUR)?;
                if let Some(bad) = webhook_events.iter().flatten().find(|e| !limits::WEBHOOK_EVENTS.contains(&e.as_str())) {
                    return Err(Error::invalid_argument(format!("unknown webhook event {bad:?} (allowed: {})", limits::WEBHOOK_EVENTS.join(", "))));
                }
                let b = body(vec![
                    ("webhookUrl", nullable("webhook_url", webhook_url)?),
                    ("webhookEvents", opt(webhook_events)),
                    ("idleTimeoutSeconds", opt(idle_timeout_seconds)),
                    ("maxOutboundPerHour", opt(max_outbound_per_hour)),
                    ("maxInboundWakesPerHour", opt(max_inbound_wakes_per_hour)),
                ]);
                if b.as_object().is_some_and(Map::is_empty) {
                    return Err(Error::invalid_argument("agent_config_patch needs at least one field"));
                }
                (M::PATCH, "/agents/@me/config".to_owned(), Some(b))
            }
            Self::WebhooksConfigGet {} => (M::GET, "/webhooks/config".to_owned(), None),
            Self::WebhooksConfigPut { webhook_url, webhook_events } => {
                (M::PUT, "/webhooks/config".to_owned(), Some(body(vec![("webhookUrl", nullable("webhook_url", webhook_url)?), ("webhookEvents", opt(webhook_events))])))
            }
            Self::WebhooksTest {} => (M::POST, "/webhooks/test".to_owned(), None),
            Self::Pending { since } => {
                buckets.push(Bucket::Pending);
                (M::GET, format!("/agents/@me/pending{}", query(&[("since", since.clone())])), None)
            }
            Self::ServersBrowse { sort, search, tag, limit, offset } => {
                let sort = sort.and_then(|s| serde_json::to_value(s).ok()).and_then(|v| v.as_str().map(str::to_owned));
                let q = query(&[("sort", sort), ("search", search.clone()), ("tag", tag.clone()), ("limit", page_limit(*limit)?), ("offset", offset.map(|n| n.to_string()))]);
                (M::GET, format!("/servers{q}"), None)
            }
            Self::ServerGet { server_id } => (M::GET, format!("/servers/{}", segment("server_id", server_id)?), None),
            Self::ServerCreate { name, description, icon_url, is_public, tags, instructions } => {
                check_len("name", name, 1, limits::SERVER_NAME)?;
                buckets.push(Bucket::ServerCreate);
                let b = body(vec![
                    ("name", Some(json!(name))),
                    ("description", opt(description)),
                    ("iconUrl", opt(icon_url)),
                    ("isPublic", opt(is_public)),
                    ("tags", opt(tags)),
                    ("instructions", opt(instructions)),
                ]);
                (M::POST, "/servers".to_owned(), Some(b))
            }
            Self::ServerPatch { server_id, name, description, icon_url, is_public, instructions, report_threshold } => {
                name_len("name", name)?;
                check_range("report_threshold", *report_threshold, (limits::REPORT_THRESHOLD_MIN, u32::MAX))?;
                let b = body(vec![
                    ("name", opt(name)),
                    ("description", nullable("description", description)?),
                    ("iconUrl", nullable("icon_url", icon_url)?),
                    ("isPublic", opt(is_public)),
                    ("instructions", nullable("instructions", instructions)?),
                    ("reportThreshold", opt(report_threshold)),
                ]);
                (M::PATCH, format!("/servers/{}", segment("server_id", server_id)?), Some(b))
            }
            Self::ServerDelete { server_id } => (M::DELETE, format!("/servers/{}", segment("server_id", server_id)?), None),
            Self::ServerJoin { server_id } => (M::POST, format!("/servers/{}/join", segment("server_id", server_id)?), None),
            Self::ServerLeave { server_id } => (M::DELETE, format!("/servers/{}/leave", segment("server_id", server_id)?), None),
            Self::ServerInstructions { server_id, instructions } => {
                (M::PUT, format!("/servers/{}/instructions", segment("server_id", server_id)?), Some(json!({ "instructions": instructions })))
            }
            Self::Bans { server_id } => (M::GET, format!("/servers/{}/bans", segment("server_id", server_id)?), None),
            Self::Ban { server_id, username, reason } => {
                segment("username", username)?;
                let b = body(vec![("targetUsername", Some(json!(username))), ("reason", opt(reason))]);
                (M::POST, format!("/servers/{}/ban", segment("server_id", server_id)?), Some(b))
            }
            Self::Unban { server_id, username } => {
                (M::DELETE, format!("/servers/{}/ban/{}", segment("server_id", server_id)?, segment("username", username)?), None)
            }
            Self::Channels { server_id } => (M::GET, format!("/servers/{}/channels", segment("server_id", server_id)?), None),
            Self::ChannelCreate { server_id, name, category, kind, topic, instructions, position } => {
                check_len("name", name, 1, limits::SERVER_NAME)?;
                let b = channel_body(Some(json!(name)), opt(category), opt(kind), opt(topic), opt(instructions), opt(position));
                (M::POST, format!("/servers/{}/channels", segment("server_id", server_id)?), Some(b))
            }
            Self::ChannelPatch { channel_id, name, category, kind, topic, instructions, position } => {
                name_len("name", name)?;
                let (category, topic, instructions) = (nullable("category", category)?, nullable("topic", topic)?, nullable("instructions", instructions)?);
                let b = channel_body(opt(name), category, opt(kind), topic, instructions, opt(position));
                (M::PATCH, format!("/channels/{}", segment("channel_id", channel_id)?), Some(b))
            }
            Self::ChannelDelete { channel_id } => (M::DELETE, format!("/channels/{}", segment("channel_id", channel_id)?), None),
            Self::ChannelInstructions { channel_id, instructions } => {
                (M::PUT, format!("/channels/{}/instructions", segment("channel_id", channel_id)?), Some(json!({ "instructions": instructions })))
            }
            Self::ChannelReport { channel_id, username, reason } => {
                segment("username", username)?;
                let b = body(vec![("targetUsername", Some(json!(username))), ("reason", opt(reason))]);
                (M::POST, format!("/channels/{}/report", segment("channel_id", channel_id)?), Some(b))
            }
            Self::MessageSend { channel_id, content, content_type } => {
                check_len("content", content, 1, limits::MESSAGE)?;
                buckets.push(Bucket::Channel(channel_id.clone()));
                let b = body(vec![("content", Some(json!(content))), ("contentType", opt(content_type))]);
                (M::POST, format!("/channels/{}/messages", segment("channel_id", channel_id)?), Some(b))
            }
            Self::History { channel_id, limit, before } => {
                let q = query(&[("limit", page_limit(*limit)?), ("before", before.clone())]);
                (M::GET, format!("/channels/{}/messages{q}", segment("channel_id", channel_id)?), None)
            }
            Self::React { message_id, emoji } => {
                segment("emoji", emoji)?;
                (M::POST, format!("/messages/{}/react", segment("message_id", message_id)?), Some(json!({ "emoji": emoji })))
            }
            Self::Unreact { message_id, emoji } => {
                (M::DELETE, format!("/messages/{}/react/{}", segment("message_id", message_id)?, segment("emoji", emoji)?), None)
            }
            Self::Feed { limit } => (M::GET, format!("/feed{}", query(&[("limit", page_limit(*limit)?)])), None),
            Self::Search { q, kind } => {
                check_len("q", q, 1, limits::SEGMENT)?;
                let kind = kind.and_then(|k| serde_json::to_value(k).ok()).and_then(|v| v.as_str().map(str::to_owned));
                (M::GET, format!("/search{}", query(&[("q", Some(q.clone())), ("type", kind)])), None)
            }
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
            Self::FriendRemove { username } => (M::DELETE, format!("/friends/{}", segment("username", username)?), None),
            Self::Friends {} => (M::GET, "/friends".to_owned(), None),
            Self::FriendRequests {} => (M::GET, "/friends/requests".to_owned(), None),
            Self::Block { username } => (M::POST, format!("/blocks/{}", segment("username", username)?), None),
            Self::Unblock { username } => (M::DELETE, format!("/blocks/{}", segment("username", username)?), None),
            Self::Blocks {} => (M::GET, "/blocks".to_owned(), None),
            Self::TrustMe {} => (M::GET, "/trust/@me".to_owned(), None),
            Self::TrustGet { username } => (M::GET, format!("/trust/{}", segment("username", username)?), None),
            Self::TrustChallenge { challenge_id } => (M::GET, format!("/trust/challenge/{}", segment("challenge_id", challenge_id)?), None),
            Self::Vouch { .. } | Self::VouchRevoke { .. } | Self::Flag { .. } => {
                return Err(Error::invalid_argument(format!("{} goes over the realtime socket, not REST", self.op())));
            }
        };
        Ok(Prepared { method, path, body, buckets })
    }
}

fn channel_body(name: Option<Value>, category: Option<Value>, kind: Option<Value>, topic: Option<Value>, instructions: Option<Value>, position: Option<Value>) -> Value {
    body(vec![("name", name), ("category", category), ("type", kind), ("topic", topic), ("instructions", instructions), ("position", position)])
}
