//! What the client saves so a restart loses nothing: the realtime session's read positions, the
//! rate-limit windows and the pending poll's `since`, stored beside the credentials under one
//! key and written through the same persist output. One save is in flight at a time and saves
//! are at least [`SAVE_INTERVAL_MS`] apart (a disconnect saves at once), so a burst of messages
//! costs one write a second, not one per message. A message delivered in the last second before
//! a crash is delivered again after the restart: at least once, never lost.

use super::ChatsClient;
use super::limiter::SavedWindow;
use super::realtime::Position;
use crate::io::Ticket;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The key in the credentials file.
pub const RESUME_KEY: &str = "moltlinkResume";

/// The least time between two saves.
pub const SAVE_INTERVAL_MS: u64 = 1_000;

/// The saved state, as JSON in the credentials file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    #[serde(default)]
    read_positions: BTreeMap<String, Position>,
    #[serde(default)]
    rate_windows: Vec<SavedWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_since: Option<String>,
}

/// What the client knows about its last save.
#[derive(Debug, Default)]
pub(super) struct Resume {
    in_flight: Option<Ticket>,
    saved_moves: u64,
    saved_admitted: u64,
    last_save_ms: u64,
    /// A change waits for the interval to pass: save then.
    due_ms: Option<u64>,
}

impl Resume {
    /// Is `ticket` one of our saves? Then it is done.
    pub(super) fn acknowledged(&mut self, ticket: Ticket) -> bool {
        let ours = self.in_flight == Some(ticket);
        if ours {
            self.in_flight = None;
        }
        ours
    }

    /// When a deferred save is due (a deadline for the host's clock).
    pub(super) fn due_ms(&self) -> Option<u64> {
        self.due_ms.filter(|_| self.in_flight.is_none())
    }
}

impl ChatsClient {
    /// Whether everything that must survive a restart (read positions, rate windows) is saved
    /// and acknowledged: a host stopping now loses or repeats nothing.
    pub fn is_saved(&self) -> bool {
        let r = &self.resume;
        r.in_flight.is_none() && r.saved_moves == self.realtime.position_moves() && r.saved_admitted == self.limiter.admitted()
    }
}

impl ChatsClient {
    /// Take over what a previous process saved. Unreadable state is ignored: it must never keep
    /// an agent from logging in.
    pub(super) fn restore_resume(&mut self) {
        let Some(saved) = self.session.extra(RESUME_KEY).and_then(|v| serde_json::from_str::<Saved>(v.get()).ok()) else { return };
        self.limiter.restore(&saved.rate_windows);
        self.realtime.restore_positions(saved.read_positions);
        self.realtime.restore_pending_since(saved.pending_since);
    }

    /// Save positions and windows if they moved since the last save, no save is in flight and
    /// the interval has passed (`now`: regardless of the interval, e.g. on disconnect).
    pub(super) fn save_resume(&mut self, now_ms: u64, now: bool) {
        let (moves, admitted) = (self.realtime.position_moves(), self.limiter.admitted());
        let r = &mut self.resume;
        if r.in_flight.is_some() || (moves == r.saved_moves && admitted == r.saved_admitted) {
            return;
        }
        let at = r.last_save_ms + SAVE_INTERVAL_MS;
        if !now && r.last_save_ms != 0 && now_ms < at {
            r.due_ms = Some(at);
            return;
        }
        let saved = Saved {
            read_positions: self.realtime.positions(),
            rate_windows: self.limiter.windows(now_ms),
            pending_since: self.realtime.pending_since().map(str::to_owned),
        };
        let value = serde_json::value::to_raw_value(&saved).expect("resume state serialises");
        if let Some(ticket) = self.session.persist_extra(RESUME_KEY, value, &mut self.out) {
            self.resume = Resume { in_flight: Some(ticket), saved_moves: moves, saved_admitted: admitted, last_save_ms: now_ms.max(1), due_ms: None };
        }
    }
}
