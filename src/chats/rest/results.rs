//! A command's typed result: [`ChatsResult`], read from a 2xx body by [`parse_result`], and
//! which of its fields other agents wrote ([`untrusted_fields`]). The typed view mirrors the
//! body (same structure, snake_case keys, integers read from strings); the verbatim body travels
//! beside it in the `command_succeeded` event.

use super::commands::ChatsCommand;
use super::wire::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A command's typed result, serialised into the `command_succeeded` event as `result`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChatsResult {
    /// An agent profile.
    Agent(Agent),
    /// The agent's configuration.
    AgentConfig(AgentConfig),
    /// The webhook configuration.
    WebhookConfig(WebhookConfig),
    /// The result of a webhook test.
    WebhookTest(WebhookTest),
    /// `{"servers": […]}`
    Servers(ServerList),
    /// A bare server (`GET /servers/:id`).
    Server(Server),
    /// `{"server": {…}}`
    ServerEnvelope(ServerEnvelope),
    /// A server's channels, by category.
    Channels(ChannelGroups),
    /// `{"channel": {…}}`
    Channel(ChannelEnvelope),
    /// One message.
    Message(Message),
    /// History and feed: a bare array, newest first.
    Messages(Vec<Message>),
    /// A friend request was sent.
    FriendRequestSent(FriendRequestSent),
    /// A friend request was accepted.
    FriendAccepted(FriendAccepted),
    /// The friend list.
    Friends(FriendList),
    /// Incoming and outgoing friend requests.
    FriendRequests(FriendRequests),
    /// The blocked agents.
    Blocked(BlockedList),
    /// Activity since a point in time (friend requests, DMs, mentions).
    Pending(PendingActivity),
    /// A bare array of bans.
    Bans(Vec<Ban>),
    /// Search results.
    Search(SearchResults),
    /// Our own trust standing.
    TrustMe(TrustMe),
    /// Another agent's trust standing.
    TrustAgent(TrustAgent),
    /// A trust challenge to answer.
    TrustChallenge(TrustChallenge),
    /// A plain acknowledgement.
    Ack(Ack),
}

/// Why a 2xx body could not be read as the command's result (never echoes the body).
fn shape_error(op: &str, what: &str) -> String {
    format!("{op}: unexpected response shape ({what})")
}

/// An object read as `T`; every field is lenient, so only a non-object fails.
fn object<T: for<'de> Deserialize<'de>>(op: &str, body: &Value) -> std::result::Result<T, String> {
    if !body.is_object() {
        return Err(shape_error(op, "expected an object"));
    }
    T::deserialize(body).map_err(|e| shape_error(op, &e.to_string()))
}

/// A bare array of objects read as `T`s.
fn array<T: for<'de> Deserialize<'de>>(op: &str, body: &Value) -> std::result::Result<Vec<T>, String> {
    let Value::Array(items) = body else { return Err(shape_error(op, "expected a list")) };
    items.iter().map(|item| object(op, item)).collect()
}

/// Fields of a command's result written by other agents (paths in the typed view): untrusted
/// remote text that a host should keep out of its system prompt.
pub fn untrusted_fields(command: &ChatsCommand) -> Vec<&'static str> {
    use ChatsCommand as C;
    match command {
        C::ProfileGet {} | C::ProfilePatch { .. } | C::AgentGet { .. } => vec!["display_name", "bio"],
        C::MyServers {} | C::ServersBrowse { .. } => vec!["servers[].name", "servers[].description"],
        C::ServerGet { .. } => vec!["name", "description", "instructions", "channels[].name", "channels[].topic", "channels[].instructions"],
        C::Channels { .. } => vec!["channels{}[].name", "channels{}[].topic", "channels{}[].instructions"],
        C::History { .. } | C::Feed { .. } => vec!["[].content", "[].agent.display_name", "[].channel_name", "[].server_name"],
        C::Friends {} => vec!["friends[].display_name"],
        C::FriendRequests {} => vec!["incoming[].from_display_name", "outgoing[].to_display_name"],
        C::Blocks {} => vec!["blocked[].display_name"],
        C::Pending { .. } => vec!["unread_dms[].last_message_content", "unread_dms[].friend_display_name", "pending_friend_requests[].from_display_name"],
        C::Search { .. } => vec!["results[].name", "results[].description", "results[].display_name", "results[].bio"],
        C::Bans { .. } => vec!["[].display_name", "[].reason"],
        _ => vec![],
    }
}

/// Read a 2xx body as the command's typed result.
pub fn parse_result(command: &ChatsCommand, body: &Value) -> std::result::Result<ChatsResult, String> {
    let op = &command.op();
    use ChatsCommand as C;
    use ChatsResult as R;
    Ok(match command {
        C::ProfileGet {} | C::ProfilePatch { .. } | C::AgentGet { .. } => R::Agent(object(op, body)?),
        C::AgentConfigGet {} | C::AgentConfigPatch { .. } => R::AgentConfig(object(op, body)?),
        C::WebhooksConfigGet {} | C::WebhooksConfigPut { .. } => R::WebhookConfig(object(op, body)?),
        C::WebhooksTest {} => R::WebhookTest(object(op, body)?),
        C::MyServers {} | C::ServersBrowse { .. } => R::Servers(object(op, body)?),
        C::ServerGet { .. } => R::Server(object(op, body)?),
        C::ServerCreate { .. } | C::ServerPatch { .. } => R::ServerEnvelope(object(op, body)?),
        C::Channels { .. } => R::Channels(object(op, body)?),
        C::ChannelCreate { .. } | C::ChannelPatch { .. } => R::Channel(object(op, body)?),
        C::MessageSend { .. } => R::Message(object(op, body)?),
        C::History { .. } | C::Feed { .. } => R::Messages(array(op, body)?),
        C::FriendRequest { .. } => R::FriendRequestSent(object(op, body)?),
        C::FriendAccept { .. } => R::FriendAccepted(object(op, body)?),
        C::Friends {} => R::Friends(object(op, body)?),
        C::FriendRequests {} => R::FriendRequests(object(op, body)?),
        C::Blocks {} => R::Blocked(object(op, body)?),
        C::Pending { .. } => R::Pending(object(op, body)?),
        C::Bans { .. } => R::Bans(array(op, body)?),
        C::Search { .. } => R::Search(object(op, body)?),
        C::TrustMe {} => R::TrustMe(object(op, body)?),
        C::TrustGet { .. } => R::TrustAgent(object(op, body)?),
        C::TrustChallenge { .. } => R::TrustChallenge(object(op, body)?),
        C::Vouch { .. } | C::VouchRevoke { .. } | C::Flag { .. } => return Err(shape_error(op, "a socket op has no REST result")),
        C::ServerJoin { .. }
        | C::ServerDelete { .. }
        | C::ServerLeave { .. }
        | C::ServerInstructions { .. }
        | C::ChannelDelete { .. }
        | C::ChannelInstructions { .. }
        | C::ChannelReport { .. }
        | C::Ban { .. }
        | C::Unban { .. }
        | C::React { .. }
        | C::Unreact { .. }
        | C::FriendReject { .. }
        | C::FriendRemove { .. }
        | C::Block { .. }
        | C::Unblock { .. } => R::Ack(object(op, body)?),
    })
}
