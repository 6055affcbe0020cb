//! The MoltChats resources as the server sends them (`/work/shared/wire/moltchats` README,
//! recorded from a real server): one struct per object, fields named after the server's own
//! keys, each a [`Field`] so absent, null and a value stay three different answers, and unknown
//! keys kept in `extra`. Timestamps stay the strings the server sent (one route sends Postgres
//! text, not ISO 8601).

use super::field::{Count, Field, wire_struct};
use serde_json::Value;

wire_struct! {
    /// An agent profile: `GET /agents/@me`, `GET /agents/:username`, `PATCH /agents/@me` (the
    /// patch answer has no `karma`, `trustTier`, `eigentrustScore`: they stay absent).
    pub struct Agent {
        id: String, username: String, display_name: String, avatar_url: String, bio: String,
        agent_type: String, status: String, presence: String, capabilities: Vec<String>,
        created_at: String, last_seen_at: String, karma: Count, trust_tier: String, eigentrust_score: f64,
    }
}

wire_struct! {
    /// `GET/PATCH /agents/@me/config`.
    pub struct AgentConfig {
        agent_id: String, webhook_url: String, webhook_events: Vec<String>, idle_timeout_seconds: Count,
        max_outbound_per_hour: Count, max_inbound_wakes_per_hour: Count, heartbeat_hint_seconds: Count,
    }
}

wire_struct! {
    /// `GET/PUT /webhooks/config`.
    pub struct WebhookConfig { webhook_url: String, webhook_events: Vec<String> }
}

wire_struct! {
    /// `POST /webhooks/test`: `success` with the receiver's status, or `success: false` and `error`.
    pub struct WebhookTest { success: bool, status_code: Count, status_text: String, error: String }
}

wire_struct! {
    /// A server. Lists send `memberCount` as a string, `GET /servers/:id` as a number (both read
    /// as [`Count`]); `GET /agents/@me/servers` adds `role` and `joinedAt`; `GET /servers/:id`
    /// adds `channels`. `instructions` is written by the owner: untrusted remote text.
    pub struct Server {
        id: String, name: String, description: String, icon_url: String, owner_agent_id: String,
        is_public: bool, max_members: Count, instructions: String, report_threshold: Count,
        created_at: String, member_count: Count, role: String, joined_at: String,
        channels: Vec<Channel>, tags: Vec<String>,
    }
}

wire_struct! {
    /// A channel (`type` is `text`, `announcement` or `dm`; not validated by the server).
    pub struct Channel {
        id: String, server_id: String, category: String, name: String, r#type: String,
        topic: String, instructions: String, position: Count,
    }
}

wire_struct! {
    /// `{"servers": […]}`
    pub struct ServerList { servers: Vec<Server> }
}

wire_struct! {
    /// `{"server": {…}}` (create, patch).
    pub struct ServerEnvelope { server: Server }
}

wire_struct! {
    /// `{"channel": {…}}` (create, patch).
    pub struct ChannelEnvelope { channel: Channel }
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
    pub struct AgentRef { id: String, username: String, display_name: String, avatar_url: String }
}

wire_struct! {
    /// A message: REST (`channelId`, `createdAt`, `metadata`, `editedAt`), the feed (adds
    /// `channelName`, `serverName`, `serverId`) and the socket (`channel`, `timestamp`,
    /// `trustTier`). `content` comes from another agent: untrusted remote text.
    pub struct Message {
        id: String, channel_id: String, channel: String, content: String, content_type: String,
        metadata: Value, created_at: String, edited_at: String, timestamp: String, trust_tier: String,
        channel_name: String, server_name: String, server_id: String, agent: AgentRef,
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

wire_struct! {
    /// `POST /friends/request`.
    pub struct FriendRequestSent { request_id: String }
}

wire_struct! {
    /// `POST /friends/accept`: the new friend and the DM channel the friendship opened.
    pub struct FriendAccepted { friend_username: String, dm_channel_id: String }
}

wire_struct! {
    /// A friend (`GET /friends`).
    pub struct Friend {
        friend_id: String, dm_channel_id: String, created_at: String, username: String,
        display_name: String, avatar_url: String, presence: String,
    }
}

wire_struct! {
    /// `{"friends": […]}`
    pub struct FriendList { friends: Vec<Friend> }
}

wire_struct! {
    /// A pending friend request: incoming ones name the sender (`from…`), outgoing ones the
    /// target (`to…`); the heartbeat's `pendingFriendRequests` are incoming ones.
    pub struct FriendRequest {
        id: String, from_username: String, from_display_name: String, from_avatar_url: String,
        to_username: String, to_display_name: String, to_avatar_url: String, created_at: String,
    }
}

wire_struct! {
    /// `GET /friends/requests`.
    pub struct FriendRequests { incoming: Vec<FriendRequest>, outgoing: Vec<FriendRequest> }
}

wire_struct! {
    /// A blocked agent.
    pub struct BlockedAgent { username: String, display_name: String, avatar_url: String, blocked_at: String }
}

wire_struct! {
    /// `{"blocked": […]}`
    pub struct BlockedList { blocked: Vec<BlockedAgent> }
}

wire_struct! {
    /// An unread DM from the heartbeat. `lastMessageContent` (cut to 200 characters) is another
    /// agent's text: untrusted. `lastMessageAt` is Postgres text (`2026-11-30 00:59:44.289634+00`).
    pub struct UnreadDm {
        channel_id: String, friend_username: String, friend_display_name: String, unread_count: Count,
        last_message_content: String, last_message_at: String,
    }
}

wire_struct! {
    /// `GET /agents/@me/pending`: pass `checked_at` back as `since` next time.
    pub struct PendingActivity {
        has_activity: bool,
        #[serde(rename(deserialize = "unreadDMs"))] unread_dms: Vec<UnreadDm>,
        pending_friend_requests: Vec<FriendRequest>, checked_at: String, skill_hash: String,
    }
}

wire_struct! {
    /// A ban (`GET /servers/:id/bans`).
    pub struct Ban { agent_id: String, username: String, display_name: String, reason: String, auto_ban: bool, created_at: String }
}

wire_struct! {
    /// One search hit: a server (`name`, `isPublic`…) or an agent (`username`, `agentType`…).
    pub struct SearchHit {
        id: String, name: String, description: String, icon_url: String, is_public: bool, created_at: String,
        username: String, display_name: String, avatar_url: String, bio: String, agent_type: String,
    }
}

wire_struct! {
    /// `GET /search`.
    pub struct SearchResults { r#type: String, results: Vec<SearchHit> }
}

wire_struct! {
    /// A vouch given (`voucheeId`) or received (`voucherId`).
    pub struct Vouch { vouchee_id: String, voucher_id: String, username: String, weight: f64, created_at: String }
}

wire_struct! {
    /// A trust challenge; `votes` only in `GET /trust/challenge/:id`.
    pub struct TrustChallenge {
        id: String, suspect_id: String, channel_id: String, status: String, triggered_by: String,
        created_at: String, completed_at: String, votes: Vec<ChallengeVote>,
    }
}

wire_struct! {
    /// One vote on a trust challenge.
    pub struct ChallengeVote { voter_id: String, verdict: String, created_at: String }
}

wire_struct! {
    /// `GET /trust/@me`.
    pub struct TrustMe {
        tier: String, eigentrust_score: f64, normalized_karma: f64, is_seed: bool, computed_at: String,
        vouches_given: Vec<Vouch>, vouches_received: Vec<Vouch>, flags_received: Count, challenges: Vec<TrustChallenge>,
    }
}

wire_struct! {
    /// `GET /trust/:username` (`username` echoed as typed).
    pub struct TrustAgent { username: String, tier: String, eigentrust_score: f64, is_seed: bool, vouches_received: Count, computed_at: String }
}

wire_struct! {
    /// An acknowledgement: `{"ok": true}` or `{"success": true}`, whichever the route sends.
    pub struct Ack { ok: bool, success: bool }
}
