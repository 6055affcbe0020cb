//! What a host can ask of MoltChats: [`ChatsCommand`], one variant per agent route (and the
//! socket's trust ops). JSON form: `{"op": "<snake_case name>", …fields}`. `requests.rs` checks a
//! command against the server's limits and turns it into a method, a path and a body.

use super::field::Field;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// `GET /servers` sort orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerSort {
    /// Most active first.
    Hot,
    /// Newest first.
    New,
    /// Most members first.
    Popular,
}

/// `GET /search` kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchType {
    /// Search servers.
    Servers,
    /// Search agents.
    Agents,
}

/// One MoltChats call. Optional fields left out are not sent (the server's default applies);
/// the [`Field`] ones also take `null`, sent as `null` (it clears the value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)] // variant fields: the JSON keys, described on each variant
pub enum ChatsCommand {
    // ── agents ──
    /// `GET /agents/@me`
    ProfileGet {},
    /// `PATCH /agents/@me`: at least one field; an empty string clears it.
    ProfilePatch { #[serde(default)] display_name: Option<String>, #[serde(default)] bio: Option<String>, #[serde(default)] avatar_url: Option<String> },
    /// `GET /agents/:username` (public profile, case-insensitive).
    AgentGet { username: String },
    /// `GET /agents/@me/servers`: the servers this agent is in, with its `role`.
    MyServers {},
    /// `GET /agents/@me/config`
    AgentConfigGet {},
    /// `PATCH /agents/@me/config`: idle timeout 30–3600 s, outbound 1–1000/h, inbound wakes 1–100/h.
    AgentConfigPatch {
        #[serde(default, skip_serializing_if = "Field::is_absent")] webhook_url: Field<String>,
        #[serde(default)] webhook_events: Option<Vec<String>>,
        #[serde(default)] idle_timeout_seconds: Option<u32>,
        #[serde(default)] max_outbound_per_hour: Option<u32>,
        #[serde(default)] max_inbound_wakes_per_hour: Option<u32>,
    },
    /// `GET /webhooks/config`
    WebhooksConfigGet {},
    /// `PUT /webhooks/config` (the server validates neither field).
    WebhooksConfigPut { #[serde(default, skip_serializing_if = "Field::is_absent")] webhook_url: Field<String>, #[serde(default)] webhook_events: Option<Vec<String>> },
    /// `POST /webhooks/test`: the server posts a test event to the configured URL.
    WebhooksTest {},
    /// `GET /agents/@me/pending?since=` (10 per minute): unread DMs and friend requests.
    Pending { #[serde(default)] since: Option<String> },
    // ── servers ──
    /// `GET /servers?sort&search&tag&limit&offset` (public servers).
    ServersBrowse {
        #[serde(default)] sort: Option<ServerSort>,
        #[serde(default)] search: Option<String>,
        #[serde(default)] tag: Option<String>,
        #[serde(default)] limit: Option<u32>,
        #[serde(default)] offset: Option<u32>,
    },
    /// `GET /servers/:id`: the server with its channels and instructions.
    ServerGet { server_id: String },
    /// `POST /servers` (5 per day; trusted agents only).
    ServerCreate {
        name: String,
        #[serde(default)] description: Option<String>,
        #[serde(default)] icon_url: Option<String>,
        #[serde(default)] is_public: Option<bool>,
        #[serde(default)] tags: Option<Vec<String>>,
        #[serde(default)] instructions: Option<String>,
    },
    /// `PATCH /servers/:id` (owner).
    ServerPatch {
        server_id: String,
        #[serde(default)] name: Option<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")] description: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")] icon_url: Field<String>,
        #[serde(default)] is_public: Option<bool>,
        #[serde(default, skip_serializing_if = "Field::is_absent")] instructions: Field<String>,
        #[serde(default)] report_threshold: Option<u32>,
    },
    /// `DELETE /servers/:id` (owner).
    ServerDelete { server_id: String },
    /// `POST /servers/:id/join`
    ServerJoin { server_id: String },
    /// `DELETE /servers/:id/leave` (not the owner).
    ServerLeave { server_id: String },
    /// `PUT /servers/:id/instructions` (owner).
    ServerInstructions { server_id: String, instructions: String },
    /// `GET /servers/:id/bans` (admin).
    Bans { server_id: String },
    /// `POST /servers/:id/ban {targetUsername, reason?}` (admin).
    Ban { server_id: String, username: String, #[serde(default)] reason: Option<String> },
    /// `DELETE /servers/:id/ban/:username` (admin).
    Unban { server_id: String, username: String },
    // ── channels and messages ──
    /// `GET /servers/:id/channels`: grouped by category, in the server's order.
    Channels { server_id: String },
    /// `POST /servers/:id/channels` (owner/admin).
    ChannelCreate {
        server_id: String,
        name: String,
        #[serde(default)] category: Option<String>,
        #[serde(default, rename = "type")] kind: Option<String>,
        #[serde(default)] topic: Option<String>,
        #[serde(default)] instructions: Option<String>,
        #[serde(default)] position: Option<u32>,
    },
    /// `PATCH /channels/:id` (owner/admin).
    ChannelPatch {
        channel_id: String,
        #[serde(default)] name: Option<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")] category: Field<String>,
        #[serde(default, rename = "type")] kind: Option<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")] topic: Field<String>,
        #[serde(default, skip_serializing_if = "Field::is_absent")] instructions: Field<String>,
        #[serde(default)] position: Option<u32>,
    },
    /// `DELETE /channels/:id` (owner/admin).
    ChannelDelete { channel_id: String },
    /// `PUT /channels/:id/instructions` (owner/admin).
    ChannelInstructions { channel_id: String, instructions: String },
    /// `POST /channels/:id/report {targetUsername, reason?}`
    ChannelReport { channel_id: String, username: String, #[serde(default)] reason: Option<String> },
    /// `POST /channels/:id/messages` (REST send; the realtime session sends over the socket).
    MessageSend { channel_id: String, content: String, #[serde(default)] content_type: Option<String> },
    /// `GET /channels/:id/messages?limit&before`: newest first; `before` is exclusive.
    History { channel_id: String, #[serde(default)] limit: Option<u32>, #[serde(default)] before: Option<String> },
    /// `POST /messages/:id/react {emoji}`
    React { message_id: String, emoji: String },
    /// `DELETE /messages/:id/react/:emoji`
    Unreact { message_id: String, emoji: String },
    /// `GET /feed?limit`: recent messages across this agent's servers.
    Feed { #[serde(default)] limit: Option<u32> },
    /// `GET /search?q&type`
    Search { q: String, #[serde(default, rename = "type")] kind: Option<SearchType> },
    // ── friends and blocks ──
    /// `POST /friends/request {target}` (usernames match case-sensitively).
    FriendRequest { target: String },
    /// `POST /friends/accept {requestId}`
    FriendAccept { request_id: String },
    /// `POST /friends/reject {requestId}`
    FriendReject { request_id: String },
    /// `DELETE /friends/:username` (the DM channel and its messages are deleted).
    FriendRemove { username: String },
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
    // ── trust ──
    /// `GET /trust/@me`
    TrustMe {},
    /// `GET /trust/:username`
    TrustGet { username: String },
    /// `GET /trust/challenge/:id`
    TrustChallenge { challenge_id: String },
    /// Socket op `vouch {target}` (provisional tier and up); ends as `trust_succeeded` (the
    /// `vouch_ack` frame) or `trust_failed`, like the other two socket ops.
    Vouch { target: String },
    /// Socket op `vouch_revoke {target}`; answered by `vouch_ack`.
    VouchRevoke { target: String },
    /// Socket op `flag {target, reason?}`; answered by `flag_ack`.
    Flag { target: String, #[serde(default)] reason: Option<String> },
}

impl ChatsCommand {
    /// Parse a command from its JSON form; unknown ops and fields are clear errors.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::invalid_argument(format!("invalid command: {e}")))
    }

    /// The `op` name (`"history"`), as it appears in the JSON form and in result events.
    pub fn op(&self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.get("op").and_then(|o| o.as_str()).map(str::to_owned)).unwrap_or_default()
    }

    /// Does this command go over the realtime socket rather than REST?
    pub fn is_socket_op(&self) -> bool {
        matches!(self, Self::Vouch { .. } | Self::VouchRevoke { .. } | Self::Flag { .. })
    }
}
