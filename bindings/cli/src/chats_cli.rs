//! `moltlink chats …` commands beyond login: every MoltChats REST call, through the core's
//! typed commands and its rate limiter. Each subcommand maps onto one `ChatsCommand`; the
//! result is printed as text, or as the raw event with `--json`.

use super::host::now_ms;
use super::{Common, LIMIT, open};
use clap::Subcommand;
use moltlink::auth::AuthEvent;
use moltlink::io::CallEvent;
use moltlink::chats::{ChatsCommand, ChatsEvent, RealtimeEvent, rest::ServerSort};
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
    /// Send a message to a channel over the WebSocket and wait for its ack (`--rest`: over REST).
    Send {
        channel_id: String,
        text: String,
        #[arg(long)]
        rest: bool,
        /// WebSocket base (default: the API base with /api/v1 → /ws, http → ws, https → wss).
        #[arg(long, env = "MOLTCHATS_WS_BASE")]
        ws_base: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Stay connected and print every event as a JSON line (messages are untrusted text).
    Listen {
        /// A channel to subscribe to (repeat for more).
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// Stop after this many seconds (default: run until killed).
        #[arg(long)]
        seconds: Option<u64>,
        #[arg(long, env = "MOLTCHATS_WS_BASE")]
        ws_base: Option<String>,
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
                (C::ChannelCreate { server_id, name, category, topic: None, kind: None, instructions: None, position: None }, common)
            }
            S::Send { channel_id, text, common, .. } => (C::MessageSend { channel_id, content: text, content_type: None }, common),
            S::Listen { .. } => unreachable!("listen is not a REST command"),
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
    match command {
        SocialCommand::Send { channel_id, text, rest: false, ws_base, common } => return send_ws(&channel_id, &text, ws_base, &common),
        SocialCommand::Listen { channels, seconds, ws_base, common } => return listen(&channels, seconds, ws_base, &common),
        _ => {}
    }
    let (command, common) = command.into_parts();
    let (mut client, mut host) = open(&common)?;
    let call = client.command(command, now_ms()).map_err(|e| e.to_string())?;
    let event = host.run_until(&mut client, LIMIT, |e| match e {
        ChatsEvent::CommandSucceeded { call_id, .. } | ChatsEvent::Call(CallEvent::CallFailed { call_id, .. }) => *call_id == call,
        ChatsEvent::Auth(AuthEvent::AuthFailed { .. }) => true,
        _ => false,
    })?;
    if common.json {
        println!("{}", serde_json::to_string(&event).expect("events serialise"));
    }
    match event {
        ChatsEvent::CommandSucceeded { op, result, .. } => {
            if !common.json {
                let result = serde_json::to_value(&result).expect("results serialise");
                for line in render(&op, &result) {
                    println!("{line}");
                }
            }
            Ok(())
        }
        ChatsEvent::Call(CallEvent::CallFailed { error, .. }) => Err(error.to_string()),
        ChatsEvent::Auth(AuthEvent::AuthFailed { error }) => Err(format!("authentication failed: {error}")),
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
        // Auth and untyped calls: described by the CLI's general `describe`.
        other => serde_json::to_string(other).expect("events serialise"),
    }
}

fn realtime_client(ws_base: Option<String>, common: &Common) -> Result<(moltlink::ChatsClient, super::host::NativeHost<ChatsEvent>), String> {
    let (mut client, host) = open(common)?;
    if let Some(base) = ws_base {
        client.set_ws_base(&base).map_err(|e| e.to_string())?;
    }
    Ok((client, host))
}

/// `send` over the socket: connect, send, wait for the ack (or a definite failure).
fn send_ws(channel: &str, text: &str, ws_base: Option<String>, common: &Common) -> Result<(), String> {
    let (mut client, mut host) = realtime_client(ws_base, common)?;
    let now = now_ms();
    client.connect(now).map_err(|e| e.to_string())?;
    let send = client.send_message(channel, text, None, now).map_err(|e| e.to_string())?;
    let event = host.run_until(&mut client, LIMIT, |e| match e {
        ChatsEvent::Realtime(RealtimeEvent::MessageSent { send_id, .. } | RealtimeEvent::SendFailed { send_id, .. }) => *send_id == send,
        ChatsEvent::Realtime(RealtimeEvent::RealtimeFatal { .. }) | ChatsEvent::Auth(AuthEvent::AuthFailed { .. }) => true,
        _ => false,
    })?;
    client.disconnect(now_ms());
    let _ = host.run_until(&mut client, std::time::Duration::from_millis(200), |_| false);
    if common.json {
        println!("{}", serde_json::to_string(&event).expect("events serialise"));
    }
    match event {
        ChatsEvent::Realtime(RealtimeEvent::MessageSent { id, timestamp, .. }) => {
            if !common.json {
                println!("sent {id} at {}", timestamp.unwrap_or_default());
            }
            Ok(())
        }
        ChatsEvent::Realtime(RealtimeEvent::SendFailed { code, message, .. }) => Err(format!("{code}: {message}")),
        other => Err(describe_any(&other)),
    }
}

/// `listen`: connect, subscribe, print every event as one JSON line until the time is up.
fn listen(channels: &[String], seconds: Option<u64>, ws_base: Option<String>, common: &Common) -> Result<(), String> {
    let (mut client, mut host) = realtime_client(ws_base, common)?;
    host.on_event = Box::new(|e| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", serde_json::to_string(e).expect("events serialise"));
        let _ = out.flush();
    });
    let now = now_ms();
    client.connect(now).map_err(|e| e.to_string())?;
    client.subscribe(channels, now).map_err(|e| e.to_string())?;
    let limit = std::time::Duration::from_secs(seconds.unwrap_or(u64::MAX / 4));
    let fatal = host.run_until(&mut client, limit, |e| {
        matches!(e, ChatsEvent::Realtime(RealtimeEvent::RealtimeFatal { .. }) | ChatsEvent::Auth(AuthEvent::AuthFailed { .. }))
    });
    match fatal {
        Ok(event) => Err(describe_any(&event)),
        // The time limit is the normal end of `listen --seconds`.
        Err(_) => {
            client.disconnect(now_ms());
            let _ = host.run_until(&mut client, std::time::Duration::from_millis(200), |_| false);
            Ok(())
        }
    }
}

fn describe_any(event: &ChatsEvent) -> String {
    super::describe(event)
}
