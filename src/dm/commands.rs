//! What the host asks of the DM client: the commands, their validation against the
//! conversation's state before anything is sent, and the requests they become. A command on
//! a conversation this process does not know yet is parked until the server's lists are in.

use super::state::{self, ConvState, Input};
use super::{DmClient, Purpose, local_error};
use crate::error::{Error, Result};
use crate::io::{CallEvent, CallId, json_request};
use serde::Deserialize;
use serde_json::{Value, json};

/// A command, as hosts and adapters send it: `{"command":"send","conversation_id":"…","message":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum DmCommand {
    /// `GET /agents/dm/check` once.
    Check {},
    /// Ask for a conversation: exactly one of `to` (bot name) or `to_owner` (X handle).
    Request {
        /// Name of the bot to ask.
        #[serde(default)]
        to: Option<String>,
        /// X handle of the owner whose bot to ask (a leading `@` is dropped).
        #[serde(default)]
        to_owner: Option<String>,
        /// Opening message sent with the request (the other agent reads it).
        message: String,
    },
    /// `GET /agents/dm/requests`, passed through. Retired by the server in May 2026 (it answers
    /// 404): pending requests come from `check`, which the client relies on instead.
    Requests {},
    /// Approve their request (only on your human's word).
    Approve {
        /// Server id of the requested conversation.
        conversation_id: String,
    },
    /// Reject their request; `block` also prevents future requests.
    Reject {
        /// Server id of the requested conversation.
        conversation_id: String,
        /// Also block the requester from asking again (default false).
        #[serde(default)]
        block: bool,
    },
    /// `GET /agents/dm/conversations` (does not mark anything read).
    Conversations {},
    /// Read a conversation: returns its messages and marks them read.
    Read {
        /// Server id of the conversation to read.
        conversation_id: String,
    },
    /// Send a message in an approved conversation.
    Send {
        /// Server id of the approved conversation.
        conversation_id: String,
        /// Text to send.
        message: String,
        /// Flag the message as needing the other side's human (default false).
        #[serde(default)]
        needs_human_input: bool,
    },
}

impl DmCommand {
    /// Parse a JSON command; a clear error for unknown commands or fields.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::invalid_argument(format!("invalid DM command: {e}")))
    }

    pub(super) fn conversation(&self) -> Option<(&str, Input)> {
        match self {
            DmCommand::Approve { conversation_id } => Some((conversation_id, Input::Approve)),
            DmCommand::Reject { conversation_id, block } => {
                Some((conversation_id, if *block { Input::Block } else { Input::Reject }))
            }
            DmCommand::Read { conversation_id } => Some((conversation_id, Input::Read)),
            DmCommand::Send { conversation_id, .. } => Some((conversation_id, Input::Send)),
            _ => None,
        }
    }
}

/// A conversation id goes into the URL path: refuse anything that could change the path.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(Error::invalid_argument(format!("invalid conversation id {id:?}: letters, digits, '-' and '_' only"))) }
}

impl DmClient {
    // ---- commands -------------------------------------------------------------------

    /// Run a command. Invalid input and illegal transitions on a known conversation fail
    /// here, before anything is sent; the outcome arrives as `call_succeeded`/`call_failed`.
    pub fn command(&mut self, command: DmCommand, now_ms: u64) -> Result<CallId> {
        let command = self.validate(command)?;
        self.next_call += 1;
        let call_id = self.next_call;
        match command.conversation() {
            Some((id, input)) if self.needs_sync(id, input) => {
                self.parked.push((call_id, command));
                self.sync();
            }
            _ => self.dispatch(call_id, command, now_ms),
        }
        Ok(call_id)
    }

    /// Judge a command on a conversation only after asking the server when we know nothing
    /// of it, or when an owner may have approved it since (in the dashboard, unseen by us).
    fn needs_sync(&self, id: &str, input: Input) -> bool {
        match self.state_of(id) {
            ConvState::None => true,
            ConvState::Requested | ConvState::AwaitingOwner => matches!(input, Input::Send | Input::Read),
            _ => false,
        }
    }

    /// Parse and run a JSON command (the adapters' single entry point).
    pub fn command_json(&mut self, json: &str, now_ms: u64) -> Result<CallId> {
        self.command(DmCommand::from_json(json)?, now_ms)
    }

    // ---- internals: sending ---------------------------------------------------------

    fn validate(&self, command: DmCommand) -> Result<DmCommand> {
        match command {
            DmCommand::Request { to, to_owner, message } => {
                let to = to.map(|s| s.trim().trim_start_matches('@').to_owned()).filter(|s| !s.is_empty());
                let to_owner = to_owner.map(|s| s.trim().trim_start_matches('@').to_owned()).filter(|s| !s.is_empty());
                if to.is_some() == to_owner.is_some() {
                    return Err(Error::invalid_argument("give exactly one of `to` (bot name) or `to_owner` (owner's X handle)"));
                }
                let chars = message.chars().count();
                if !(10..=1000).contains(&chars) {
                    return Err(Error::invalid_argument(format!("the request message must be 10-1000 characters, got {chars}")));
                }
                if let Some(i) = self.conv_by_peer(to.as_deref(), to_owner.as_deref()) {
                    let conv = &self.convs[i];
                    state::next(conv.state, Input::Request).map_err(|why| {
                        let id = conv.id.as_deref().map(|id| format!(" (conversation {id})")).unwrap_or_default();
                        Error::invalid_state(format!("{why}{id}"))
                    })?;
                }
                Ok(DmCommand::Request { to, to_owner, message })
            }
            command => {
                if let Some((id, input)) = command.conversation() {
                    check_id(id)?;
                    if let DmCommand::Send { message, .. } = &command
                        && message.trim().is_empty()
                    {
                        return Err(Error::invalid_argument("the message is empty"));
                    }
                    if let Some(i) = self.conv_by_id(id).filter(|_| !self.needs_sync(id, input)) {
                        state::next(self.convs[i].state, input)
                            .map_err(|why| Error::invalid_state(format!("conversation {id}: {why}")))?;
                    }
                }
                Ok(command)
            }
        }
    }

    pub(super) fn send(&mut self, method: http::Method, path: &str, body: Option<Value>, purpose: Purpose) -> std::result::Result<(), Error> {
        let url = format!("{}{path}", self.base);
        let request = json_request(method, &url, Some(self.key.expose()), body.as_ref())?;
        let id = self.out.http(request);
        self.in_flight.insert(id, purpose);
        Ok(())
    }

    pub(super) fn dispatch(&mut self, call_id: CallId, command: DmCommand, _now_ms: u64) {
        use http::Method;
        let call = Some(call_id);
        let (method, path, body) = match &command {
            DmCommand::Check {} => (Method::GET, "/agents/dm/check".to_owned(), None),
            DmCommand::Requests {} => (Method::GET, "/agents/dm/requests".to_owned(), None),
            DmCommand::Conversations {} => (Method::GET, "/agents/dm/conversations".to_owned(), None),
            DmCommand::Request { to, to_owner, message } => {
                let body = match (to, to_owner) {
                    (Some(to), _) => json!({"to": to, "message": message}),
                    (None, owner) => json!({"to_owner": owner, "message": message}),
                };
                (Method::POST, "/agents/dm/request".to_owned(), Some(body))
            }
            DmCommand::Approve { conversation_id } => (Method::POST, format!("/agents/dm/requests/{conversation_id}/approve"), None),
            DmCommand::Reject { conversation_id, block } => (
                Method::POST,
                format!("/agents/dm/requests/{conversation_id}/reject"),
                block.then(|| json!({"block": true})),
            ),
            DmCommand::Read { conversation_id } => (Method::GET, format!("/agents/dm/conversations/{conversation_id}"), None),
            DmCommand::Send { conversation_id, message, needs_human_input } => {
                let mut body = json!({"message": message});
                if *needs_human_input {
                    body["needs_human_input"] = json!(true);
                }
                (Method::POST, format!("/agents/dm/conversations/{conversation_id}/send"), Some(body))
            }
        };
        let purpose = match command {
            DmCommand::Check {} => Purpose::Check { call, sync: false },
            DmCommand::Requests {} => Purpose::Requests { call, sync: false },
            DmCommand::Conversations {} => Purpose::List { call, sync: false },
            command => Purpose::Command(call_id, command),
        };
        if let Err(e) = self.send(method, &path, body, purpose) {
            self.out.event(CallEvent::CallFailed { call_id, error: local_error("INVALID_ARGUMENT", e.message) });
        }
    }

    /// Fetch the check (pending requests) and the inbox once, then settle the parked commands.
    fn sync(&mut self) {
        if self.syncs_in_flight > 0 {
            return;
        }
        let lists = [
            ("/agents/dm/check", Purpose::Check { call: None, sync: true }),
            ("/agents/dm/conversations", Purpose::List { call: None, sync: true }),
        ];
        for (path, purpose) in lists {
            if self.send(http::Method::GET, path, None, purpose).is_ok() {
                self.syncs_in_flight += 1;
            }
        }
        if self.syncs_in_flight == 0 {
            self.settle_parked(0);
        }
    }

    pub(super) fn settle_parked(&mut self, now_ms: u64) {
        for (call_id, command) in std::mem::take(&mut self.parked) {
            let Some((id, input)) = command.conversation() else { continue };
            let state = self.state_of(id);
            match state::next(state, input) {
                Ok(_) => self.dispatch(call_id, command, now_ms),
                Err(why) => {
                    let code = if state == ConvState::None { "UNKNOWN_CONVERSATION" } else { "INVALID_STATE" };
                    // A listed status this client cannot read is said, not guessed at.
                    let status = self.conv_by_id(id).and_then(|i| self.convs[i].status.clone());
                    let unread = status.filter(|_| state == ConvState::None).map_or_else(String::new, |s| {
                        format!(" (the inbox lists it with status {s:?}, which this client does not understand)")
                    });
                    let error = local_error(code, format!("conversation {id}: {why}{unread}"));
                    self.out.event(CallEvent::CallFailed { call_id, error });
                }
            }
        }
    }
}
