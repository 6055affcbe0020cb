//! Surviving a restart. The session keeps, per channel, the last message it delivered to the
//! host; the client persists those positions with the credentials. A new process restores them:
//! subscribing to such a channel backfills from there, so what was posted while it was down is
//! delivered once, in order, marked `backfilled` (late). A bound keeps a long outage from
//! flooding the agent; what it skips is reported as one `backlog_skipped` event.

use super::wire::{iso_of, older};
use super::{Realtime, RealtimeEvent};
use crate::chats::rest::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Most deliveries a channel keeps waiting for confirmation: beyond this the oldest count as
/// confirmed (a host that never confirms must not grow the session without bound).
const MAX_UNCONFIRMED: usize = 1024;

/// A channel's deliveries the host has not confirmed yet, with `confirm_deliveries`: its saved
/// position stays at the last confirmed one.
#[derive(Debug, Default)]
pub(super) struct Acks {
    confirmed: Option<(String, String)>,
    /// Delivered, unconfirmed, oldest first: (id, timestamp, needs no confirmation: our own).
    waiting: VecDeque<(String, String, bool)>,
}

impl Acks {
    /// Nothing delivered yet; the position so far (a previous process's) counts as confirmed.
    pub(super) fn from(position: Option<(String, String)>) -> Self {
        Self { confirmed: position, waiting: VecDeque::new() }
    }

    /// The channel's first position (nothing delivered or confirmed yet).
    pub(super) fn start_at(&mut self, position: Option<(String, String)>) {
        if self.confirmed.is_none() && self.waiting.is_empty() {
            self.confirmed = position;
        }
    }

    /// A message reached the host (`own`: ours, which needs no confirmation).
    pub(super) fn delivered(&mut self, id: &str, at: &str, own: bool) {
        self.waiting.push_back((id.to_owned(), at.to_owned(), own));
        if self.waiting.len() > MAX_UNCONFIRMED {
            self.confirm_front(1);
        }
        self.confirm_front(0);
    }

    /// The host handled `id`: it and everything delivered before it are confirmed.
    fn confirm(&mut self, id: &str) -> bool {
        let Some(i) = self.waiting.iter().position(|(w, ..)| w == id) else { return false };
        self.confirm_front(i + 1);
        true
    }

    /// Confirm the first `n` waiting, then any of ours that follow.
    fn confirm_front(&mut self, n: usize) {
        let mut taken = 0;
        while let Some((_, _, own)) = self.waiting.front() {
            if taken >= n && !own {
                break;
            }
            let (id, at, _) = self.waiting.pop_front().expect("front exists");
            self.confirmed = Some((id, at));
            taken += 1;
        }
    }
}

/// The last message delivered in a channel: its id and its timestamp as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The message id.
    pub id: String,
    /// Its timestamp, as the server sent it.
    pub at: String,
}

impl Realtime {
    /// Every channel's read position: the restored ones, overlaid by what this session delivered.
    pub fn positions(&self) -> BTreeMap<String, Position> {
        let mut all = self.restored.clone();
        for (c, ch) in &self.channels {
            let position = match &ch.acks {
                Some(acks) => &acks.confirmed,
                None => &ch.cursor,
            };
            if let Some((id, at)) = position {
                all.insert(c.clone(), Position { id: id.clone(), at: at.clone() });
            }
        }
        all
    }

    /// Positions a previous process saved: a channel subscribed later backfills from its own.
    pub fn restore_positions(&mut self, positions: BTreeMap<String, Position>) {
        for (c, ch) in self.channels.iter_mut() {
            if ch.cursor.is_none()
                && let Some(p) = positions.get(c)
            {
                ch.cursor = Some((p.id.clone(), p.at.clone()));
                if let Some(acks) = ch.acks.as_mut() {
                    acks.start_at(ch.cursor.clone());
                }
            }
        }
        self.restored = positions;
    }

    /// The host handled message `id` of `channel` (with `confirm_deliveries`): the saved
    /// position may advance to it. False when it is not waiting for confirmation.
    pub fn confirm_delivered(&mut self, channel: &str, id: &str) -> bool {
        let confirmed = self.channels.get_mut(channel).and_then(|ch| ch.acks.as_mut()).is_some_and(|a| a.confirm(id));
        self.moves += u64::from(confirmed);
        confirmed
    }

    /// The restored position of `channel`, for a channel the session starts following.
    pub(super) fn restored_cursor(&self, channel: &str) -> Option<(String, String)> {
        self.restored.get(channel).map(|p| (p.id.clone(), p.at.clone()))
    }

    /// Bumped whenever a position may have moved (the client then saves them).
    pub fn position_moves(&self) -> u64 {
        self.moves
    }

    /// The `since` of the pending poll, saved so a restart asks from where it left off.
    pub fn pending_since(&self) -> Option<&str> {
        self.since.as_deref()
    }

    /// Take over a saved `since` (unless this session already polled).
    pub fn restore_pending_since(&mut self, since: Option<String>) {
        if self.since.is_none() {
            self.since = since;
        }
    }
}

/// Apply the backlog bound to a channel's backfill (oldest first, all after the position):
/// keep at most `max_messages`, none older than `max_age_ms`; report what was skipped. `more`:
/// the walk stopped early, so more messages than counted were skipped.
pub(super) fn bound(list: &mut Vec<Message>, channel: &str, max_messages: Option<u32>, max_age_ms: Option<u64>, more: bool, now_ms: u64) -> Option<RealtimeEvent> {
    let mut skip = 0usize;
    if let Some(age) = max_age_ms {
        let cutoff = iso_of(now_ms.saturating_sub(age));
        skip = list.iter().take_while(|m| m.sent_at().is_some_and(|t| older(t, &cutoff))).count();
    }
    if let Some(max) = max_messages {
        skip = skip.max(list.len().saturating_sub(max as usize));
    }
    if skip == 0 && !more {
        return None;
    }
    let skipped: Vec<Message> = list.drain(..skip).collect();
    Some(RealtimeEvent::BacklogSkipped {
        channel: channel.to_owned(),
        skipped: skipped.len() as u64,
        more,
        first_id: skipped.first().and_then(|m| m.id().map(str::to_owned)),
        last_id: skipped.last().and_then(|m| m.id().map(str::to_owned)),
    })
}
