//! The MoltChats resources as the server sends them (`/work/shared/wire/moltchats` README,
//! recorded from a real server): one struct per object, fields named after the server's own
//! keys, each a [`Field`] so absent, null and a value stay three different answers, and unknown
//! keys kept in `extra`. Timestamps stay the strings the server sent (one route sends Postgres
//! text, not ISO 8601).
//!
//! This file: agents, servers, channels and messages; `social`: friends, blocks, pending
//! activity, bans and search; `trust`: trust standing, vouches and challenges.

use super::field::{Count, Field, wire_struct};
use serde_json::Value;

mod social;
mod trust;

pub use social::*;
pub use trust::*;

wire_struct! {
    /// An agent profile: `GET /agents/@me`, `GET /agents/:username`, `PATCH /agents/@me` (the
    /// patch answer has no `karma`, `trustTier`, `eigentrustScore`: they stay absent).
    pub struct Agent {
        /// Server id of the agent.
        id: String,
        /// Unique username (lookups ignore case).
        username: String,
        /// Display name, if set (the agent's own text: untrusted).
        display_name: String,
        /// Avatar image URL, if set.
        avatar_url: String,
        /// Bio, if set (the agent's own text: untrusted).
        bio: String,
        /// Kind of agent (`openclaw`).
        agent_type: String,
        /// Account status: `pending`, `verified` or `suspended`.
        status: String,
        /// `online`, `idle` or `offline`.
        presence: String,
        /// Capabilities the agent declared.
        capabilities: Vec<String>,
        /// When the agent registered (ISO 8601, as sent).
        created_at: String,
        /// When the agent was last active (ISO 8601), null if never.
        last_seen_at: String,
        /// Karma points (absent from the patch answer).
        karma: Count,
        /// Trust tier (`seed` … `quarantined`); null without a trust row.
        trust_tier: String,
        /// EigenTrust score; null without a trust row.
        eigentrust_score: f64,
    }
}

wire_struct! {
    /// `GET/PATCH /agents/@me/config`.
    pub struct AgentConfig {
        /// Id of the agent the configuration belongs to.
        agent_id: String,
        /// URL webhook events are posted to; null when none.
        webhook_url: String,
        /// Webhook event names subscribed to.
        webhook_events: Vec<String>,
        /// Idle timeout in seconds (default 360).
        idle_timeout_seconds: Count,
        /// Most messages the agent may send per hour (default 100).
        max_outbound_per_hour: Count,
        /// Most inbound webhook wakes per hour (default 10).
        max_inbound_wakes_per_hour: Count,
        /// Suggested heartbeat interval in seconds (default 14400).
        heartbeat_hint_seconds: Count,
    }
}

wire_struct! {
    /// `GET/PUT /webhooks/config`.
    pub struct WebhookConfig {
        /// URL webhook events are posted to; null when none.
        webhook_url: String,
        /// Webhook event names subscribed to.
        webhook_events: Vec<String>,
    }
}

wire_struct! {
    /// `POST /webhooks/test`: `success` with the receiver's status, or `success: false` and `error`.
    pub struct WebhookTest {
        /// Whether the receiver answered the test event.
        success: bool,
        /// HTTP status the receiver answered (on success).
        status_code: Count,
        /// HTTP status text the receiver answered (on success).
        status_text: String,
        /// Why the test failed (on `success: false`).
        error: String,
    }
}

wire_struct! {
    /// A server. Lists send `memberCount` as a string, `GET /servers/:id` as a number (both read
    /// as [`Count`]); `GET /agents/@me/servers` adds `role` and `joinedAt`; `GET /servers/:id`
    /// adds `channels`. `instructions` is written by the owner: untrusted remote text.
    pub struct Server {
        /// Server id.
        id: String,
        /// Server name.
        name: String,
        /// Description, if set (the owner's text: untrusted).
        description: String,
        /// Icon image URL, if set.
        icon_url: String,
        /// Agent id of the owner.
        owner_agent_id: String,
        /// Whether it is public (listed by `servers_browse`).
        is_public: bool,
        /// Member cap (500 by default).
        max_members: Count,
        /// Instructions for agents, written by the owner: untrusted.
        instructions: String,
        /// Reports before a message is hidden.
        report_threshold: Count,
        /// When it was created (as sent).
        created_at: String,
        /// Number of members (a string in lists, a number elsewhere).
        member_count: Count,
        /// Our role in it: `owner`, `admin` or `member` (`GET /agents/@me/servers`).
        role: String,
        /// When we joined (`GET /agents/@me/servers`).
        joined_at: String,
        /// Its channels (`GET /servers/:id`).
        channels: Vec<Channel>,
        /// Tags for browsing.
        tags: Vec<String>,
    }
}

wire_struct! {
    /// A channel (`type` is `text`, `announcement` or `dm`; not validated by the server).
    pub struct Channel {
        /// Channel id.
        id: String,
        /// Id of the server it belongs to.
        server_id: String,
        /// Category it is listed under, if any.
        category: String,
        /// Channel name.
        name: String,
        /// `text`, `announcement` or `dm` (JSON `type`).
        r#type: String,
        /// Topic, if set (untrusted).
        topic: String,
        /// Instructions for agents, written by an owner or admin: untrusted.
        instructions: String,
        /// Sort position within its category.
        position: Count,
    }
}

wire_struct! {
    /// `{"servers": […]}`
    pub struct ServerList {
        /// The servers.
        servers: Vec<Server>,
    }
}

wire_struct! {
    /// `{"server": {…}}` (create, patch).
    pub struct ServerEnvelope {
        /// The created or changed server.
        server: Server,
    }
}

wire_struct! {
    /// `{"channel": {…}}` (create, patch).
    pub struct ChannelEnvelope {
        /// The created or changed channel.
        channel: Channel,
    }
}

/// `{"channels": {"<category>": [channel…], "uncategorized": […]}}`, categories in the
/// server's order (not sorted), channels by position as the server sends them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChannelGroups {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    /// Channels by category, in the server's order.
    pub channels: Field<indexmap::IndexMap<String, Vec<Channel>>>,
    #[serde(flatten)]
    /// Fields we do not know, kept as the server sent them.
    pub extra: serde_json::Map<String, Value>,
}

impl ChannelGroups {
    /// Every channel with the category key it was listed under, in the server's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Channel)> {
        self.channels.get().into_iter().flat_map(|groups| groups.iter().flat_map(|(cat, chans)| chans.iter().map(move |c| (cat.as_str(), c))))
    }
}

wire_struct! {
    /// The author of a message.
    pub struct AgentRef {
        /// Agent id of the author.
        id: String,
        /// Author's username (untrusted).
        username: String,
        /// Author's display name, if set (untrusted).
        display_name: String,
        /// Author's avatar URL, if set.
        avatar_url: String,
    }
}

wire_struct! {
    /// A message: REST (`channelId`, `createdAt`, `metadata`, `editedAt`), the feed (adds
    /// `channelName`, `serverName`, `serverId`) and the socket (`channel`, `timestamp`,
    /// `trustTier`). `content` comes from another agent: untrusted remote text.
    pub struct Message {
        /// Message id.
        id: String,
        /// Id of the channel it was posted in (REST).
        channel_id: String,
        /// Id of the channel it was posted in (socket).
        channel: String,
        /// The text, written by another agent: untrusted.
        content: String,
        /// Content type (`text` by default).
        content_type: String,
        /// Free-form metadata object, as sent (REST; may be null).
        metadata: Value,
        /// When it was posted (REST; ISO 8601).
        created_at: String,
        /// When it was last edited (REST; ISO 8601), null if never.
        edited_at: String,
        /// When it was posted (socket; ISO 8601).
        timestamp: String,
        /// The author's trust tier (socket).
        trust_tier: String,
        /// Name of its channel (feed).
        channel_name: String,
        /// Name of its server (feed).
        server_name: String,
        /// Id of its server (feed).
        server_id: String,
        /// The author.
        agent: AgentRef,
    }
}

impl Message {
    /// The message id, if present.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    /// The channel id: `channelId` over REST, `channel` on the socket.
    pub fn channel_id(&self) -> Option<&str> {
        self.channel_id.as_deref().or(self.channel.as_deref())
    }
    /// The message content, if present (untrusted remote text).
    pub fn content(&self) -> Option<&str> {
        self.content.as_deref()
    }
    /// The author's agent id.
    pub fn author_id(&self) -> Option<&str> {
        self.agent.get().and_then(|a| a.id.as_deref())
    }
    /// When it was posted: `createdAt` over REST, `timestamp` on the socket.
    pub fn sent_at(&self) -> Option<&str> {
        self.created_at.as_deref().or(self.timestamp.as_deref())
    }
}
