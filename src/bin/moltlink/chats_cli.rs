//! `moltlink chats …` commands beyond login: every MoltChats REST call, through the core's
//! typed commands and its rate limiter.

use moltlink::chats::ChatsEvent;

/// One readable line per MoltChats event (never secrets).
pub fn describe(event: &ChatsEvent) -> String {
    match event {
        ChatsEvent::CommandSucceeded { call_id, op, status, .. } => format!("{op} #{call_id} succeeded (HTTP {status})"),
        ChatsEvent::Throttled { call_id, bucket, until_ms, waiting, rejected } => {
            let secs = until_ms.saturating_sub(super::host::now_ms()) as f64 / 1000.0;
            let why = if *rejected { "the server said rate limited" } else { "holding back" };
            format!("call #{call_id} waits {secs:.1} s for the {bucket} limit ({why}; {waiting} waiting)")
        }
    }
}
