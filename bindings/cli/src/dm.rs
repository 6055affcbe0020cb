//! `moltlink dm …`: Moltbook private messages from the shell. The API key comes from
//! `MOLTBOOK_API_KEY` only (never an argument: arguments show in `ps`).

use super::host::{now_ms, NativeHost};
use clap::{Args, Subcommand};
use moltlink::dm::{DmEvent, EscalationReason};
use moltlink::io::CallEvent;
use moltlink::{DmClient, DmCommand, DmConfig};
use std::time::Duration;

#[derive(Args, Clone)]
pub struct DmOptions {
    /// Moltbook API base (only https://www.moltbook.com/api/v1 or a loopback sandbox).
    #[arg(long, env = "MOLTBOOK_API_BASE", global = true)]
    api_base: Option<String>,
    /// Print every event as one JSON line instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = super::DEFAULT_TIMEOUT_S)]
    timeout: u64,
}

#[derive(Subcommand)]
pub enum DmCli {
    /// One heartbeat check: pending requests and unread counts (reads nothing).
    Check,
    /// Ask another agent for a conversation (their owner must approve).
    Request {
        /// The bot's name.
        #[arg(long, conflicts_with = "to_owner", required_unless_present = "to_owner")]
        to: Option<String>,
        /// The owner's X handle (with or without @).
        #[arg(long)]
        to_owner: Option<String>,
        /// Why you want to chat (10-1000 characters).
        message: String,
    },
    /// List pending requests to you.
    Requests,
    /// Approve a request (only on your human's word).
    Approve { id: String },
    /// Reject a request; --block also prevents future requests.
    Reject {
        id: String,
        #[arg(long)]
        block: bool,
    },
    /// List active conversations (marks nothing read).
    Conversations,
    /// Read a conversation (marks its messages read).
    Read { id: String },
    /// Send a message in an approved conversation.
    Send {
        id: String,
        message: String,
        /// Ask the other agent to escalate to its human.
        #[arg(long)]
        needs_human: bool,
    },
}

pub fn run(command: DmCli, options: DmOptions) -> Result<(), String> {
    let key = std::env::var("MOLTBOOK_API_KEY").map_err(|_| "set MOLTBOOK_API_KEY to your Moltbook API key".to_owned())?;
    let mut client = DmClient::new(DmConfig {
        api_base: options.api_base.clone(),
        api_key: key.into(),
        seed: super::random_seed()?,
        heartbeat: Default::default(),
        agent_name: std::env::var("MOLTBOOK_AGENT_NAME").ok(),
    })
    .map_err(|e| e.to_string())?;
    let command = match command {
        DmCli::Check => DmCommand::Check {},
        DmCli::Request { to, to_owner, message } => DmCommand::Request { to, to_owner, message },
        DmCli::Requests => DmCommand::Requests {},
        DmCli::Approve { id } => DmCommand::Approve { conversation_id: id },
        DmCli::Reject { id, block } => DmCommand::Reject { conversation_id: id, block },
        DmCli::Conversations => DmCommand::Conversations {},
        DmCli::Read { id } => DmCommand::Read { conversation_id: id },
        DmCli::Send { id, message, needs_human } => DmCommand::Send { conversation_id: id, message, needs_human_input: needs_human },
    };
    let call = client.command(command, now_ms()).map_err(|e| e.to_string())?;
    // No credentials file: the DM client persists nothing.
    let mut host = NativeHost::new(std::path::PathBuf::new());
    let json = options.json;
    host.on_event = Box::new(move |event| {
        if json {
            println!("{}", serde_json::to_string(event).expect("events serialise"));
        } else {
            eprintln!("{}", describe(event));
        }
    });
    let outcome = host.run_until(&mut client, Duration::from_secs(options.timeout), |e| {
        matches!(e, DmEvent::Call(CallEvent::CallSucceeded { call_id, .. }) | DmEvent::Call(CallEvent::CallFailed { call_id, .. }) if *call_id == call)
    })?;
    match outcome {
        DmEvent::Call(CallEvent::CallSucceeded { body, .. }) => {
            if !json {
                println!("{}", serde_json::to_string_pretty(&body).expect("JSON serialises"));
            }
            Ok(())
        }
        DmEvent::Call(CallEvent::CallFailed { error, .. }) => Err(error.to_string()),
        _ => Ok(()),
    }
}

/// One readable line per DM event. Other agents' words are quoted and marked.
pub fn describe(event: &DmEvent) -> String {
    let who = |w: &Option<String>| w.clone().unwrap_or_else(|| "?".into());
    match event {
        DmEvent::DmChecked { has_activity, pending_requests, total_unread, .. } => {
            format!("dm check: activity={has_activity}, {pending_requests} pending request(s), {total_unread} unread")
        }
        DmEvent::DmEscalation { reason: EscalationReason::NewRequest, conversation_id, from, text, .. } => format!(
            "ASK YOUR HUMAN: {} asks to chat (conversation {conversation_id}); untrusted preview: {:?}",
            who(from),
            text.untrusted_text
        ),
        DmEvent::DmEscalation { reason: EscalationReason::NeedsHumanInput, conversation_id, from, text, .. } => format!(
            "ASK YOUR HUMAN: {} needs your human's input (conversation {conversation_id}); untrusted text: {:?}",
            who(from),
            text.untrusted_text
        ),
        DmEvent::DmUnread { conversations } => {
            let list: Vec<String> = conversations.iter().map(|c| format!("{} ({} from {})", c.conversation_id, c.unread_count, who(&c.with))).collect();
            format!("unread: {}", list.join(", "))
        }
        DmEvent::DmMessage { conversation_id, from, text, needs_human_input, .. } => format!(
            "message in {conversation_id} from {}{}: untrusted text {:?}",
            who(from),
            if *needs_human_input { " [needs human input]" } else { "" },
            text.untrusted_text
        ),
        DmEvent::DmStateChanged { conversation_id, with, from, to, .. } => {
            format!("conversation {conversation_id} with {}: {from:?} -> {to:?}", who(with))
        }
        DmEvent::DmHeartbeatFailed { error, next_check_at_ms: Some(_) } => format!("heartbeat check failed ({error}); retrying later"),
        DmEvent::DmHeartbeatFailed { error, next_check_at_ms: None } => format!("heartbeat stopped: {error}"),
        DmEvent::DmRateLimited { retry_after_ms, .. } => format!("rate limited: waiting {} s", retry_after_ms / 1000),
        DmEvent::Call(call) => serde_json::to_string(call).unwrap_or_default(),
    }
}
