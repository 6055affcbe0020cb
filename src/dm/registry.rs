//! The conversations this client knows (by id, or by peer before an id is known), what the
//! server's lists and reads tell about them, and the escalations to the human. Every state
//! change goes through [`super::state::next`] in [`DmClient::apply`].

use super::event::{DmEvent, EscalationReason, Unread, Untrusted};
use super::state::{self, ConvState, Input};
use super::{DmClient, parse};
use crate::io::ApiError;
use serde_json::Value;

const ASK_APPROVAL: &str = "Another agent asks to open a private conversation. Ask your human whether to approve, reject or block it; never decide for them.";
const ASK_INPUT: &str = "The other agent flagged this message as needing your human's input: relay it to your human and answer with their words.";

/// What this client knows of one conversation (or of one peer, before an id is known).
#[derive(Debug, Clone)]
pub(super) struct Conv {
    pub(super) id: Option<String>,
    /// The other agent's name as the server spells it, and folded for lookups.
    with: Option<String>,
    with_key: Option<String>,
    owner_key: Option<String>,
    pub(super) state: ConvState,
    /// The `status` the main inbox last gave (verbatim), for errors about unknown statuses.
    pub(super) status: Option<String>,
}

pub(super) fn fold(name: &str) -> String {
    name.trim().trim_start_matches('@').to_ascii_lowercase()
}

impl DmClient {
    pub(super) fn on_requests(&mut self, items: &[Value]) {
        for item in items {
            let Some(cid) = parse::conversation_id(item) else { continue };
            let (from, owner) = parse::agent(item.get("from").or(item.get("agent")).or(item.get("from_agent")));
            let i = self.conv_for_peer(from.as_deref(), None, Some(&cid));
            if self.convs[i].owner_key.is_none() {
                self.convs[i].owner_key = owner.as_deref().map(fold);
            }
            let before = self.convs[i].state;
            self.apply(i, Input::SeenRequest);
            if before != ConvState::AwaitingOwner && self.convs[i].state == ConvState::AwaitingOwner {
                // Escalated on entering the state, so a request asked again after a rejection
                // is escalated again.
                let text = parse::text(item, &["message_preview", "message", "preview"]).unwrap_or_default();
                self.escalated.remove(&format!("request:{cid}"));
                self.escalate(format!("request:{cid}"), EscalationReason::NewRequest, cid, from, owner, text);
            }
        }
    }

    /// `GET /agents/dm/requests` while it existed: `{incoming{requests[]}, outgoing{requests[]}}`
    /// (captured), or a plain list of incoming requests (`requests`, `items`, a bare array).
    pub(super) fn on_request_lists(&mut self, body: &Value) {
        let incoming = body.get("incoming").map(|i| i.get("requests").unwrap_or(i));
        self.on_requests(parse::items(incoming.or(body.get("requests")).or(body.get("items")).or(Some(body))));
        let outgoing = body.get("outgoing").map(|o| o.get("requests").unwrap_or(o));
        for item in parse::items(outgoing) {
            let Some(cid) = parse::conversation_id(item) else { continue };
            let (to, owner) = parse::agent(item.get("to").or(item.get("to_agent")).or(item.get("agent")));
            let i = self.conv_for_peer(to.as_deref(), owner.as_deref(), Some(&cid));
            self.apply(i, Input::RequestAccepted);
        }
    }

    /// The main inbox. Each item's `status` decides its state: the captured server lists
    /// rejected conversations here too, so a listing is not an approval. Only the documented
    /// shape, which has no `status` and lists active conversations only, means approved.
    pub(super) fn on_listing(&mut self, body: &Value) {
        let mut unread = Vec::new();
        for item in parse::items(body.get("conversations").or(body.get("items"))) {
            let Some(cid) = parse::conversation_id(item) else { continue };
            let (with, owner) = parse::agent(item.get("with_agent").or(item.get("with")).or(item.get("agent")));
            let i = self.conv_for_peer(with.as_deref(), None, Some(&cid));
            if self.convs[i].owner_key.is_none() {
                self.convs[i].owner_key = owner.as_deref().map(fold);
            }
            let status = item.get("status");
            self.convs[i].status = status.map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned));
            if let Some(input) = listed_as(status, parse::flag(item.get("you_initiated"))) {
                self.apply_seen(i, input, self.convs[i].status.clone());
            }
            let sent = item.get("unread_count").or(item.get("unread"));
            // No count in the item (the captured shape): the last check's previews tell.
            let count = if sent.is_some() { parse::count(sent) } else { self.latest_unread.get(&cid).copied().unwrap_or(0) };
            if count > 0 {
                unread.push(Unread { conversation_id: cid, with, unread_count: count, unread_count_as_sent: sent.cloned() });
            }
        }
        if !unread.is_empty() {
            self.out.event(DmEvent::DmUnread { conversations: unread });
        }
    }

    pub(super) fn on_requested(&mut self, to: Option<&str>, to_owner: Option<&str>, body: &Value) {
        let Some(cid) = parse::conversation_id(body) else { return };
        // A request by owner handle learns the bot's name from the answer, when it says.
        let named = parse::text(body, &["to"]).or_else(|| body.get("conversation").and_then(|c| parse::text(c, &["to"])));
        let i = self.conv_for_peer(to.or(named.as_deref()), to_owner, Some(&cid));
        let status = parse::text(body, &["status"]).or_else(|| body.get("conversation").and_then(|c| parse::text(c, &["status"])));
        let input = if status.as_deref() == Some("approved") { Input::SeenActive } else { Input::RequestAccepted };
        self.apply(i, input);
    }

    /// A conversation read (the host asked). A message is ours when its sender is our own
    /// agent name; the server has no `is_from_me`. Without our name, a sender other than the
    /// peer is us (and teaches us our name).
    pub(super) fn on_read(&mut self, cid: &str, body: &Value) {
        let i = self.conv_for_peer(None, None, Some(cid));
        self.apply(i, Input::SeenActive);
        let (with, _) = parse::agent(body.get("with_agent").or(body.get("with")));
        let with = with.or_else(|| self.convs[i].with.clone());
        for m in parse::items(body.get("messages").or(body.get("items"))) {
            let (from, _) = parse::agent(m.get("sender").or(m.get("from")).or(m.get("author")));
            let mine = match (&from, &self.me, &with) {
                (Some(f), Some(me), _) => fold(f) == fold(me),
                (Some(f), None, Some(w)) if fold(f) != fold(w) => {
                    self.me = Some(f.clone());
                    true
                }
                _ => false,
            };
            if mine {
                continue;
            }
            let key = message_key(cid, m);
            if !self.delivered.insert(key.clone()) {
                continue;
            }
            let text = parse::text(m, &["content", "message", "text", "body"]).unwrap_or_default();
            let needs_human_input = parse::flag(m.get("needs_human_input")).unwrap_or(false);
            self.out.event(DmEvent::DmMessage {
                conversation_id: cid.to_owned(),
                message_id: parse::text(m, &["id", "message_id"]),
                from: from.clone(),
                text: Untrusted::new(text.clone()),
                needs_human_input,
                created_at: parse::text(m, &["created_at", "createdAt"]),
            });
            if needs_human_input {
                self.escalate(key, EscalationReason::NeedsHumanInput, cid.to_owned(), from, None, text);
            }
        }
    }

    pub(super) fn escalate(&mut self, key: String, reason: EscalationReason, conversation_id: String, from: Option<String>, from_owner: Option<String>, text: String) {
        if !self.escalated.insert(key) {
            return;
        }
        let ask_human = match reason {
            EscalationReason::NewRequest => ASK_APPROVAL,
            EscalationReason::NeedsHumanInput => ASK_INPUT,
        };
        self.out.event(DmEvent::DmEscalation { reason, conversation_id, from, from_owner, text: Untrusted::new(text), ask_human });
    }

    // ---- internals: conversations ---------------------------------------------------

    pub(super) fn conv_by_id(&self, id: &str) -> Option<usize> {
        self.convs.iter().position(|c| c.id.as_deref() == Some(id))
    }

    pub(super) fn conv_by_peer(&self, name: Option<&str>, owner: Option<&str>) -> Option<usize> {
        let (name, owner) = (name.map(fold), owner.map(fold));
        self.convs.iter().position(|c| {
            (name.is_some() && c.with_key == name) || (owner.is_some() && c.owner_key == owner)
        })
    }

    /// The record for this conversation/peer, created when unknown. An id-less record of the
    /// same peer (e.g. "they blocked us") takes the id once it is known.
    pub(super) fn conv_for_peer(&mut self, name: Option<&str>, owner: Option<&str>, id: Option<&str>) -> usize {
        let found = match id {
            Some(id) => self.conv_by_id(id).or_else(|| self.conv_by_peer(name, owner).filter(|&i| self.convs[i].id.is_none())),
            None => self.conv_by_peer(name, owner),
        };
        let i = found.unwrap_or_else(|| {
            self.convs.push(Conv { id: None, with: None, with_key: None, owner_key: None, state: ConvState::None, status: None });
            self.convs.len() - 1
        });
        let conv = &mut self.convs[i];
        if conv.id.is_none() {
            conv.id = id.map(str::to_owned);
        }
        if let Some(name) = name.filter(|_| conv.with.is_none()) {
            conv.with = Some(name.to_owned());
            conv.with_key = Some(fold(name));
        }
        if let Some(owner) = owner.filter(|_| conv.owner_key.is_none()) {
            conv.owner_key = Some(fold(owner));
        }
        i
    }

    pub(super) fn apply_id(&mut self, id: &str, input: Input) {
        let i = self.conv_for_peer(None, None, Some(id));
        self.apply(i, input);
    }

    /// Apply a transition; an event when the state changes. Commands were checked before
    /// sending, and the server's word wins, so a refusal here is ignored.
    pub(super) fn apply(&mut self, i: usize, input: Input) {
        self.apply_seen(i, input, None);
    }

    /// As [`Self::apply`], naming the server's `status` word that caused the change.
    pub(super) fn apply_seen(&mut self, i: usize, input: Input, status: Option<String>) {
        let conv = &mut self.convs[i];
        let Ok(to) = state::next(conv.state, input) else { return };
        let from = std::mem::replace(&mut conv.state, to);
        if from != to {
            let event = DmEvent::DmStateChanged {
                conversation_id: conv.id.clone().unwrap_or_default(),
                with: conv.with.clone(),
                from,
                to,
                status,
            };
            self.out.event(event);
        }
    }
}

/// What a main-inbox item's `status` says happened. Absent: the documented shape, which lists
/// active conversations only. `pending` needs `you_initiated` to tell whose request it is.
/// Anything else (an unknown word, `null`, a number) changes nothing: a status this client does
/// not understand is never read as an approval.
pub(super) fn listed_as(status: Option<&Value>, you_initiated: Option<bool>) -> Option<Input> {
    let Some(status) = status else { return Some(Input::SeenActive) };
    match status.as_str()?.trim().to_ascii_lowercase().as_str() {
        "approved" | "active" | "accepted" => Some(Input::SeenActive),
        "rejected" | "declined" => Some(Input::SeenRejected),
        "blocked" => Some(Input::RefusedBlocked),
        "pending" | "requested" => match you_initiated? {
            true => Some(Input::RequestAccepted),
            false => Some(Input::SeenRequest),
        },
        _ => None,
    }
}

/// A 403 that says the pair is blocked (Moltbook words it as a sentence, so match leniently).
pub(super) fn is_blocked(e: &ApiError) -> bool {
    e.status == 403 && (e.message.to_ascii_lowercase().contains("block") || e.code.as_deref().is_some_and(|c| c.contains("BLOCK")))
}

pub(super) fn message_key(cid: &str, m: &Value) -> String {
    match parse::text(m, &["id", "message_id"]) {
        Some(id) => format!("message:{id}"),
        None => format!(
            "message:{cid}:{}:{}",
            parse::text(m, &["created_at", "createdAt"]).unwrap_or_default(),
            parse::text(m, &["message", "content", "text", "message_preview"]).unwrap_or_default()
        ),
    }
}
