//! A command's typed result: [`ChatsResult`], read from a 2xx body by [`parse_result`], and
//! which of its fields other agents wrote ([`untrusted_fields`]).

use super::commands::ChatsCommand;
use super::wire::{BlockedAgent, Channel, Friend, FriendRequestInfo, Message, PendingActivity, Profile, Server};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
