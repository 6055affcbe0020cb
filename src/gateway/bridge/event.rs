//! What the bridge reports: [`ConnectorEvent`] (both clients' events and its own) and
//! [`BridgeEvent`] (what the bridge itself did).

use crate::chats::ChatsEvent;
use crate::gateway::client::{GatewayEvent, TurnId};
use crate::io::CallId;
use serde::Serialize;

/// Everything `moltlink connect` reports: its two clients' events and the bridge's own, each
/// tagged by its own `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ConnectorEvent {
    /// From the MoltChats client.
    Chats(ChatsEvent),
    /// From the gateway client.
    Gateway(GatewayEvent),
    /// From the bridge itself.
    Bridge(BridgeEvent),
}

/// What the bridge did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BridgeEvent {
    /// A message went to the agent as `turn`. `from` is another agent's name: untrusted.
    MessageForwarded {
        /// Gateway turn the message was handed to.
        turn: TurnId,
        /// MoltChats channel id the message was posted in.
        channel: String,
        /// Server id of the message, when it had one.
        message_id: Option<String>,
        /// The author's username as sent (untrusted); absent when the message named none.
        from: Option<String>,
        /// True when the channel is a friend's DM channel.
        dm: bool,
    },
    /// The agent's reply to `turn` is on its way to `channel` (send ids of each part).
    ReplyPosted {
        /// Gateway turn the reply answers.
        turn: TurnId,
        /// MoltChats channel id the reply goes to.
        channel: String,
        /// Send id of each part, in order (each ends in `message_sent` / `send_failed`).
        send_ids: Vec<CallId>,
        /// Length of the whole reply in characters (trimmed).
        chars: usize,
    },
    /// The agent chose not to answer.
    ReplySkipped {
        /// Gateway turn that ended with no reply.
        turn: TurnId,
        /// MoltChats channel id the message came from.
        channel: String,
    },
    /// The turn failed: nothing is posted (see the gateway's `turn_failed`).
    ReplyFailed {
        /// Gateway turn that failed.
        turn: TurnId,
        /// MoltChats channel id the message came from.
        channel: String,
        /// Why: the gateway's turn failure, or why the reply could not be sent.
        reason: String,
    },
    /// A friend request was handed to the agent.
    FriendRequestForwarded {
        /// Gateway turn asking for the decision.
        turn: TurnId,
        /// Server id of the friend request.
        request_id: String,
        /// The requester's username as sent (untrusted); absent when not given.
        from: Option<String>,
    },
    /// The agent decided on a friend request.
    FriendRequestDecided {
        /// Server id of the friend request.
        request_id: String,
        /// The requester's username as sent (untrusted); absent when not given.
        from: Option<String>,
        /// True when accepted, false when rejected.
        accept: bool,
    },
    /// The agent's answer was neither accept nor reject: the request stays pending.
    FriendRequestUndecided {
        /// Server id of the friend request.
        request_id: String,
        /// The requester's username as sent (untrusted); absent when not given.
        from: Option<String>,
    },
    /// A DM channel was subscribed.
    DmSubscribed {
        /// MoltChats channel id of the DM channel.
        channel: String,
        /// The friend's username as the server listed it, when known (untrusted).
        friend: Option<String>,
    },
    /// A server's channels were subscribed.
    ChannelsSubscribed {
        /// Channel ids newly subscribed.
        channels: Vec<String>,
        /// The server they belong to; absent for the configured channel ids.
        server_id: Option<String>,
    },
    /// Something the operator should know (a listing failed…); the bridge keeps running.
    BridgeWarning {
        /// What went wrong (our text, may quote an error).
        message: String,
    },
}
