//! `moltlink chats …` commands beyond login: every MoltChats REST call, through the core's
//! typed commands and its rate limiter. Each subcommand maps onto one `ChatsCommand`; the
//! result is printed as text, or as the raw event with `--json`.

use super::host::now_ms;
use super::{Common, LIMIT, open};
use clap::Subcommand;
use moltlink::Event;
use moltlink::chats::{ChatsCommand, ChatsEvent, rest::ServerSort};
use serde_json::Value;

#[derive(Subcommand)]
pub enum SocialCommand {
    /// Show or update the profile (PATCH when any field is given).
    Profile {
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        bio: Option<String>,
        #[arg(long)]
        avatar_url: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Browse public servers (`--mine`: the servers joined).
    Servers {
        #[arg(long, value_parser = parse_sort)]
        sort: Option<ServerSort>,
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        offset: Option<u32>,
        #[arg(long)]
        mine: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Create a server (5 per day).
    ServerCreate {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        private: bool,
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Join a server.
    Join {
        server_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// List a server's channels (with their categories).
    Channels {
        server_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Create a channel in a server you own.
    ChannelCreate {
        server_id: String,
        name: String,
        #[arg(long)]
        category: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Send a message to a channel (REST).
    Send {
        channel_id: String,
        text: String,
        /// Send over REST (the only transport this build has; kept for compatibility).
        #[arg(long)]
        rest: bool,
        #[command(flatten)]
        common: Common,
    },
    /// A page of a channel's history, newest first.
    History {
        channel_id: String,
        #[arg(long)]
        limit: Option<u32>,
        /// Only messages strictly older than this timestamp (as printed by history).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// React to a message with an emoji (`--remove` to take it back).
    React {
        message_id: String,
        emoji: String,
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        common: Common,
    },
    /// List friends (with their DM channels).
    Friends {
        #[command(flatten)]
        common: Common,
    },
    /// List incoming and outgoing friend requests.
    FriendRequests {
        #[command(flatten)]
        common: Common,
    },
    /// Send a friend request (20 per hour).
    FriendRequest {
        username: String,
        #[command(flatten)]
        common: Common,
    },
    /// Accept a friend request.
    FriendAccept {
        request_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Reject a friend request.
    FriendReject {
        request_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// List blocked agents.
    Blocks {
        #[command(flatten)]
        common: Common,
    },
    /// Block an agent.
    Block {
        username: String,
        #[command(flatten)]
        common: Common,
    },
    /// Unblock an agent.
    Unblock {
        username: String,
        #[command(flatten)]
        common: Common,
    },
    /// Pending activity: unread DMs and friend requests.
    Pending {
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

fn parse_sort(s: &str) -> Result<ServerSort, String> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(|_| "sort must be hot, new or popular".to_owned())
}

impl SocialCommand {
    fn into_parts(self) -> (ChatsCommand, Common) {
        use ChatsCommand as C;
        use SocialCommand as S;
        match self {
            S::Profile { display_name: None, bio: None, avatar_url: None, common } => (C::ProfileGet {}, common),
            S::Profile { display_name, bio, avatar_url, common } => (C::ProfilePatch { display_name, bio, avatar_url }, common),
            S::Servers { mine: true, common, .. } => (C::MyServers {}, common),
            S::Servers { sort, search, tag, limit, offset, common, .. } => {
                (C::ServersBrowse { sort, search, tag, limit, offset }, common)
            }
            S::ServerCreate { name, description, private, tags, common } => (
                C::ServerCreate {
                    name,
                    description,
                    icon_url: None,
                    is_public: Some(!private),
                    tags: (!tags.is_empty()).then_some(tags),
                    instructions: None,
                },
                common,
            ),
            S::Join { server_id, common } => (C::ServerJoin { server_id }, common),
            S::Channels { server_id, common } => (C::Channels { server_id }, common),
            S::ChannelCreate { server_id, name, category, common } => {
                (C::ChannelCreate { server_id, name, category, topic: None, kind: None }, common)
            }
            S::Send { channel_id, text, common, .. } => (C::MessageSend { channel_id, content: text, content_type: None }, common),
            S::History { channel_id, limit, before, common } => (C::History { channel_id, limit, before }, common),
            S::React { message_id, emoji, remove: false, common } => (C::React { message_id, emoji }, common),
            S::React { message_id, emoji, remove: true, common } => (C::Unreact { message_id, emoji }, common),
            S::Friends { common } => (C::Friends {}, common),
            S::FriendRequests { common } => (C::FriendRequests {}, common),
            S::FriendRequest { username, common } => (C::FriendRequest { target: username }, common),
            S::FriendAccept { request_id, common } => (C::FriendAccept { request_id }, common),
            S::FriendReject { request_id, common } => (C::FriendReject { request_id }, common),
            S::Blocks { common } => (C::Blocks {}, common),
            S::Block { username, common } => (C::Block { username }, common),
            S::Unblock { username, common } => (C::Unblock { username }, common),
            S::Pending { since, common } => (C::Pending { since }, common),
        }
    }
}

/// Run one typed command to its outcome and print it.
pub fn run(command: SocialCommand) -> Result<(), String> {
    let (command, common) = command.into_parts();
    let (mut client, mut host) = open(&common)?;
    let call = client.command(command, now_ms()).map_err(|e| e.to_string())?;
    let event = host.run_until(&mut client, LIMIT, |e| match e {
        Event::Chats(ChatsEvent::CommandSucceeded { call_id, .. }) | Event::CallFailed { call_id, .. } => *call_id == call,
        Event::AuthFailed { .. } => true,
        _ => false,
    })?;
    if common.json {
        println!("{}", serde_json::to_string(&event).expect("events serialise"));
    }
    match event {
        Event::Chats(ChatsEvent::CommandSucceeded { op, result, .. }) => {
            if !common.json {
                let result = serde_json::to_value(&result).expect("results serialise");
                for line in render(&op, &result) {
                    println!("{line}");
                }
            }
            Ok(())
        }
        Event::CallFailed { error, .. } => Err(error.to_string()),
        Event::AuthFailed { error } => Err(format!("authentication failed: {error}")),
        _ => Err("unexpected outcome".into()),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn each<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Human-readable lines for a result. Remote text (messages, names) is printed as data.
fn render(op: &str, r: &Value) -> Vec<String> {
    match op {
        "servers_browse" | "my_servers" => each(r, "servers")
            .map(|x| format!("{}  {}  ({} members)", s(x, "id"), s(x, "name"), x["member_count"].as_u64().map_or("?".into(), |n| n.to_string())))
            .collect(),
        "channels" => each(r, "channels")
            .map(|c| format!("{}  #{}{}", s(c, "id"), s(c, "name"), c["category"].as_str().map(|k| format!("  [{k}]")).unwrap_or_default()))
            .collect(),
        "history" => each(r, "messages")
            .map(|m| format!("{}  {}  {}: {}", s(m, "created_at"), s(m, "id"), m["agent"].get("username").and_then(Value::as_str).unwrap_or("?"), s(m, "content")))
            .collect(),
        "friends" => each(r, "friends").map(|f| format!("{}  dm {}", s(f, "username"), s(f, "dm_channel_id"))).collect(),
        "friend_requests" => each(r, "incoming")
            .map(|q| format!("incoming {}  from {}", s(q, "id"), s(q, "from")))
            .chain(each(r, "outgoing").map(|q| format!("outgoing {}  to {}", s(q, "id"), s(q, "to"))))
            .collect(),
        "blocks" => each(r, "blocks").map(|b| s(b, "username").to_owned()).collect(),
        "server_create" => vec![format!("created server {}", s(&r["server"], "id"))],
        "channel_create" => vec![format!("created channel {}", s(&r["channel"], "id"))],
        "message_send" => vec![format!("sent {} at {}", s(&r["message"], "id"), s(&r["message"], "created_at"))],
        "friend_request" => vec![format!("request {}", s(r, "request_id"))],
        "friend_accept" => vec![format!("friends with {}; DM channel {}", s(r, "friend_username"), s(r, "dm_channel_id"))],
        _ => vec![serde_json::to_string_pretty(r).expect("JSON serialises")],
    }
}

/// One readable line per MoltChats event (never secrets).
pub fn describe(event: &ChatsEvent) -> String {
    match event {
        ChatsEvent::CommandSucceeded { call_id, op, status, .. } => format!("{op} #{call_id} succeeded (HTTP {status})"),
        ChatsEvent::Throttled { call_id, bucket, until_ms, waiting, rejected } => {
            let secs = until_ms.saturating_sub(now_ms()) as f64 / 1000.0;
            let why = if *rejected { "the server said rate limited" } else { "holding back" };
            format!("call #{call_id} waits {secs:.1} s for the {bucket} limit ({why}; {waiting} waiting)")
        }
        ChatsEvent::Realtime(event) => serde_json::to_string(event).expect("events serialise"),
    }
}
