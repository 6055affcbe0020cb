//! The `prompt` interface: translation onto [`crate::gateway::prompt`] only.

use super::Component;
use super::exports::moltlink::core::prompt::{Guest, Inbound};
use crate::gateway::prompt;

impl Guest for Component {
    fn message_prompt(message: Inbound) -> String {
        prompt::message_prompt(&prompt::Inbound {
            channel: &message.channel,
            dm: message.dm,
            username: message.username.as_deref(),
            display_name: message.display_name.as_deref(),
            content: &message.content,
            late: message.late,
        })
    }

    fn friend_prompt(request_id: String, from: Option<String>) -> String {
        prompt::friend_prompt(&request_id, from.as_deref())
    }

    fn decision(reply: String) -> Option<bool> {
        prompt::decision(&reply)
    }

    fn reply_parts(reply: String) -> Vec<String> {
        prompt::reply_parts(&reply)
    }

    fn split_message(text: String, max: u32) -> Vec<String> {
        prompt::split_message(&text, max as usize)
    }

    fn plain_name(name: Option<String>) -> String {
        prompt::plain_name(name.as_deref())
    }
}
