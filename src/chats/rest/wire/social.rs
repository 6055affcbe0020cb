//! Friends, blocks, pending activity, bans and search results, as the server sends them.

use super::super::field::{Count, Field, wire_struct};

wire_struct! {
    /// `POST /friends/request`.
    pub struct FriendRequestSent {
        /// Id of the new friend request.
        request_id: String,
    }
}

wire_struct! {
    /// `POST /friends/accept`: the new friend and the DM channel the friendship opened.
    pub struct FriendAccepted {
        /// Username of the new friend.
        friend_username: String,
        /// Id of the DM channel the friendship opened.
        dm_channel_id: String,
    }
}

wire_struct! {
    /// A friend (`GET /friends`).
    pub struct Friend {
        /// Agent id of the friend.
        friend_id: String,
        /// Id of our DM channel with them.
        dm_channel_id: String,
        /// When the friendship began.
        created_at: String,
        /// The friend's username.
        username: String,
        /// The friend's display name, if set (untrusted).
        display_name: String,
        /// The friend's avatar URL, if set.
        avatar_url: String,
        /// `online`, `idle` or `offline`.
        presence: String,
    }
}

wire_struct! {
    /// `{"friends": […]}`
    pub struct FriendList {
        /// Our friends.
        friends: Vec<Friend>,
    }
}

wire_struct! {
    /// A pending friend request: incoming ones name the sender (`from…`), outgoing ones the
    /// target (`to…`); the heartbeat's `pendingFriendRequests` are incoming ones.
    pub struct FriendRequest {
        /// Friend request id (pass it to `friend_accept` / `friend_reject`).
        id: String,
        /// Sender's username (incoming).
        from_username: String,
        /// Sender's display name, if set (incoming; untrusted).
        from_display_name: String,
        /// Sender's avatar URL, if set (incoming).
        from_avatar_url: String,
        /// Target's username (outgoing).
        to_username: String,
        /// Target's display name, if set (outgoing; untrusted).
        to_display_name: String,
        /// Target's avatar URL, if set (outgoing).
        to_avatar_url: String,
        /// When the request was sent.
        created_at: String,
    }
}

wire_struct! {
    /// `GET /friends/requests`.
    pub struct FriendRequests {
        /// Requests sent to us.
        incoming: Vec<FriendRequest>,
        /// Requests we sent.
        outgoing: Vec<FriendRequest>,
    }
}

wire_struct! {
    /// A blocked agent.
    pub struct BlockedAgent {
        /// Username of the blocked agent.
        username: String,
        /// Their display name, if set (untrusted).
        display_name: String,
        /// Their avatar URL, if set.
        avatar_url: String,
        /// When we blocked them.
        blocked_at: String,
    }
}

wire_struct! {
    /// `{"blocked": […]}`
    pub struct BlockedList {
        /// The agents we block.
        blocked: Vec<BlockedAgent>,
    }
}

wire_struct! {
    /// An unread DM from the heartbeat. `lastMessageContent` (cut to 200 characters) is another
    /// agent's text: untrusted. `lastMessageAt` is Postgres text (`2026-11-30 00:59:44.289634+00`).
    pub struct UnreadDm {
        /// Id of the DM channel.
        channel_id: String,
        /// Username of the friend on the other side.
        friend_username: String,
        /// Their display name, if set (untrusted).
        friend_display_name: String,
        /// Unread messages in the channel.
        unread_count: Count,
        /// Preview of the last message (cut to 200 characters): untrusted.
        last_message_content: String,
        /// When the last message was posted (Postgres text, not ISO 8601).
        last_message_at: String,
    }
}

wire_struct! {
    /// `GET /agents/@me/pending`: pass `checked_at` back as `since` next time.
    pub struct PendingActivity {
        /// Whether anything is pending.
        has_activity: bool,
        /// DM channels with unread messages (JSON `unreadDMs`).
        #[serde(rename(deserialize = "unreadDMs"))] unread_dms: Vec<UnreadDm>,
        /// Friend requests sent to us and still pending.
        pending_friend_requests: Vec<FriendRequest>,
        /// When the server checked (ISO 8601): the next call's `since`.
        checked_at: String,
        /// Hash of the server's current skill file (16 hex digits).
        skill_hash: String,
    }
}

wire_struct! {
    /// A ban (`GET /servers/:id/bans`).
    pub struct Ban {
        /// Agent id of the banned agent.
        agent_id: String,
        /// Their username.
        username: String,
        /// Their display name, if set (untrusted).
        display_name: String,
        /// Why they were banned, if given (untrusted).
        reason: String,
        /// Whether the server banned them automatically (reports).
        auto_ban: bool,
        /// When the ban was made.
        created_at: String,
    }
}

wire_struct! {
    /// One search hit: a server (`name`, `isPublic`…) or an agent (`username`, `agentType`…).
    pub struct SearchHit {
        /// Id of the server or agent.
        id: String,
        /// Server name (servers).
        name: String,
        /// Server description, if set (servers; untrusted).
        description: String,
        /// Server icon URL, if set (servers).
        icon_url: String,
        /// Whether the server is public (servers).
        is_public: bool,
        /// When the server was created (servers).
        created_at: String,
        /// Agent username (agents).
        username: String,
        /// Agent display name, if set (agents; untrusted).
        display_name: String,
        /// Agent avatar URL, if set (agents).
        avatar_url: String,
        /// Agent bio, if set (agents; untrusted).
        bio: String,
        /// Kind of agent (agents).
        agent_type: String,
    }
}

wire_struct! {
    /// `GET /search`.
    pub struct SearchResults {
        /// What was searched: `servers` or `agents` (JSON `type`).
        r#type: String,
        /// Hits (at most 20).
        results: Vec<SearchHit>,
    }
}
