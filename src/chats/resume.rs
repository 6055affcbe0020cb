//! What the client saves so a restart loses nothing: the realtime session's read positions, the
//! rate-limit windows and the pending poll's `since`, stored beside the credentials under one
//! key and written through the same persist output. One save is in flight at a time; its
//! acknowledgement lets the next one go, so a burst of messages costs one write per ack, not
//! one per message.

use super::ChatsClient;
use super::limiter::SavedWindow;
use super::realtime::Position;
use crate::io::Ticket;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The key in the credentials file.
pub const RESUME_KEY: &str = "moltlinkResume";

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
}

impl ChatsClient {
    /// Take over what a previous process saved. Unreadable state is ignored: it must never keep
    /// an agent from logging in.
    pub(super) fn restore_resume(&mut self) {
        let Some(saved) = self.session.extra(RESUME_KEY).and_then(|v| serde_json::from_value::<Saved>(v.clone()).ok()) else { return };
        self.limiter.restore(&saved.rate_windows);
        self.realtime.restore_positions(saved.read_positions);
        self.realtime.restore_pending_since(saved.pending_since);
    }

    /// Save positions and windows if they moved since the last save and no save is in flight.
    pub(super) fn save_resume(&mut self, now_ms: u64) {
        let (moves, admitted) = (self.realtime.position_moves(), self.limiter.admitted());
        let r = &self.resume;
        if r.in_flight.is_some() || (moves == r.saved_moves && admitted == r.saved_admitted) {
            return;
        }
        let saved = Saved {
            read_positions: self.realtime.positions(),
            rate_windows: self.limiter.windows(now_ms),
            pending_since: self.realtime.pending_since().map(str::to_owned),
        };
        let value = serde_json::to_value(saved).expect("resume state serialises");
        if let Some(ticket) = self.session.persist_extra(RESUME_KEY, value, &mut self.out) {
            self.resume = Resume { in_flight: Some(ticket), saved_moves: moves, saved_admitted: admitted };
        }
    }
}
