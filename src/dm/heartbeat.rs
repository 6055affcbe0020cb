//! The heartbeat: `GET /agents/dm/check` on a schedule that doubles while idle and returns
//! to the base interval on news, never before a rate-limit cool-down ends. A check escalates
//! new requests and flagged messages from its preview, and never reads a conversation.

use super::event::{CountsAsSent, DmEvent, EscalationReason};
use super::state::ConvState;
use super::{DmClient, Purpose, parse, registry::message_key};
use crate::io::unit_random;
use serde_json::Value;

/// Heartbeat timing. The interval doubles after each idle check up to `max_idle_interval_ms`
/// and returns to `interval_ms` on activity; each wait is spread by ±`jitter_fraction`.
#[derive(Debug, Clone)]
pub struct HeartbeatPolicy {
    /// Wait between checks while active, ms.
    pub interval_ms: u64,
    /// Longest wait after idle checks, ms.
    pub max_idle_interval_ms: u64,
    /// Random spread of each wait (±, a fraction of it).
    pub jitter_fraction: f64,
    /// Wait after a 429 that carried no retry hint.
    pub default_cooldown_ms: u64,
}

impl Default for HeartbeatPolicy {
    fn default() -> Self {
        Self { interval_ms: 60_000, max_idle_interval_ms: 30 * 60_000, jitter_fraction: 0.1, default_cooldown_ms: 60_000 }
    }
}

#[derive(Debug)]
pub(super) struct Heartbeat {
    interval_ms: u64,
    next_at: u64,
    checking: bool,
}

impl DmClient {
    /// Start the heartbeat: a check now, then on the schedule.
    pub fn start_heartbeat(&mut self, now_ms: u64) {
        if self.heartbeat.is_none() {
            self.heartbeat = Some(Heartbeat { interval_ms: self.policy.interval_ms, next_at: now_ms, checking: false });
        }
        self.tick(now_ms);
    }

    /// Stops the heartbeat (no more scheduled checks).
    pub fn stop_heartbeat(&mut self) {
        self.heartbeat = None;
    }

    pub(super) fn tick(&mut self, now_ms: u64) {
        let due = self.heartbeat.as_ref().is_some_and(|h| !h.checking && now_ms >= h.next_at.max(self.cooldown_until));
        if due && self.send(http::Method::GET, "/agents/dm/check", None, Purpose::Check { call: None, sync: false }).is_ok() {
            if let Some(h) = self.heartbeat.as_mut() {
                h.checking = true;
            }
        }
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.heartbeat.as_ref().filter(|h| !h.checking).map(|h| h.next_at.max(self.cooldown_until))
    }

    /// After a heartbeat check: back to the base interval on news, double otherwise (idle,
    /// unchanged, or failing), never before a rate-limit cool-down ends.
    pub(super) fn reschedule(&mut self, active: bool, now_ms: u64) {
        let jitter = (unit_random(&mut self.rng) * 2.0 - 1.0) * self.policy.jitter_fraction;
        let (base, cap) = (self.policy.interval_ms, self.policy.max_idle_interval_ms);
        let cooldown = self.cooldown_until;
        if let Some(h) = self.heartbeat.as_mut() {
            h.checking = false;
            h.interval_ms = if active { base } else { (h.interval_ms.saturating_mul(2)).min(cap) };
            let wait = (h.interval_ms as f64 * (1.0 + jitter)).max(1.0) as u64;
            h.next_at = (now_ms + wait).max(cooldown);
        }
    }

    /// New requests escalate; flagged messages in the preview escalate; nothing is read.
    /// Returns whether the check brought news (more pending requests or unread messages).
    pub(super) fn on_check(&mut self, body: &Value, heartbeat: bool, _now_ms: u64) -> bool {
        let requests = body.get("requests");
        let items = parse::items(requests);
        let pending = parse::count(requests.and_then(|r| r.get("count"))).max(items.len() as u64);
        self.on_requests(items);
        let messages = body.get("messages");
        let unread = parse::count(messages.and_then(|m| m.get("total_unread")));
        self.latest_unread.clear();
        for m in parse::items(messages.and_then(|m| m.get("latest"))) {
            let Some(cid) = parse::conversation_id_of_message(m) else { continue };
            *self.latest_unread.entry(cid.clone()).or_default() += 1;
            if parse::flag(m.get("needs_human_input")) != Some(true) {
                continue;
            }
            let key = message_key(&cid, m);
            let (from, _) = parse::agent(m.get("from").or(m.get("sender")));
            let text = parse::text(m, &["message_preview", "preview", "message", "content", "text"]).unwrap_or_default();
            self.escalate(key, EscalationReason::NeedsHumanInput, cid, from, None, text);
        }
        // The check says nothing about approvals of our own requests: list the inbox (this
        // does not mark anything read) when there is activity or a request is waiting.
        let awaiting = self.convs.iter().any(|c| matches!(c.state, ConvState::Requested | ConvState::AwaitingOwner));
        let busy = parse::flag(body.get("has_activity")).unwrap_or(false) || pending > 0 || unread > 0;
        if heartbeat && (busy || awaiting) && !self.listing {
            self.listing = self.send(http::Method::GET, "/agents/dm/conversations", None, Purpose::List { call: None, sync: false }).is_ok();
        }
        // Only something new shortens the heartbeat: a request waiting days for the human, or
        // messages the host chose not to read yet, must not keep it polling every minute.
        let seen = (pending, unread);
        let news = busy && seen != self.last_seen && (pending > self.last_seen.0 || unread > self.last_seen.1);
        if heartbeat {
            self.last_seen = seen;
        }
        news
    }
}

pub(super) fn check_summary(body: &Value, next_check_at_ms: Option<u64>) -> DmEvent {
    let requests = body.get("requests");
    let messages = body.get("messages");
    let sent = |v: Option<&Value>, key: &str| v.and_then(|v| v.get(key)).cloned();
    let counts_as_sent = CountsAsSent {
        requests_count: sent(requests, "count"),
        total_unread: sent(messages, "total_unread"),
        conversations_with_unread: sent(messages, "conversations_with_unread"),
    };
    let pending_requests = parse::count(counts_as_sent.requests_count.as_ref()).max(parse::items(requests).len() as u64);
    let total_unread = parse::count(counts_as_sent.total_unread.as_ref());
    let conversations_with_unread = counts_as_sent.conversations_with_unread.as_ref().map(|v| parse::count(Some(v)));
    let has_activity = parse::flag(body.get("has_activity")).unwrap_or(pending_requests + total_unread > 0);
    let summary = body.get("summary").and_then(Value::as_str).map(str::to_owned);
    DmEvent::DmChecked { has_activity, pending_requests, total_unread, conversations_with_unread, summary, counts_as_sent, next_check_at_ms }
}
