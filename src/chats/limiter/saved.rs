//! The windows that must survive a restart: the recent sends of each bucket and how long it is
//! closed. A restarted process restores them so it never sends past a limit that a previous
//! process already used up (the server counts both).

use super::{Bucket, Limiter};
use serde::{Deserialize, Serialize};

/// One bucket's window, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedWindow {
    /// The bucket's short name (`"api"`, `"channel:<id>"`, …).
    pub bucket: String,
    /// Admitted sends within the last period (Unix ms, oldest first).
    pub sent_ms: Vec<u64>,
    /// Closed until then (Unix ms; 0 when open).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub closed_until_ms: u64,
    /// A limit learned from the server, lower than the documented one (a trust tier's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The learned limit is a guess until then (Unix ms; see `Limiter::rejected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisional_until_ms: Option<u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Bucket {
    /// The inverse of `Display`.
    pub fn parse(name: &str) -> Option<Bucket> {
        Some(match name {
            "api" => Bucket::Api,
            "friend_request" => Bucket::FriendRequest,
            "server_create" => Bucket::ServerCreate,
            "pending" => Bucket::Pending,
            _ => Bucket::Channel(name.strip_prefix("channel:").filter(|id| !id.is_empty())?.to_owned()),
        })
    }
}

impl Limiter {
    /// Every bucket with a send in its window or closed now, for persisting.
    pub fn windows(&mut self, now_ms: u64) -> Vec<SavedWindow> {
        self.compact(now_ms);
        self.buckets
            .iter()
            .filter(|(_, s)| !s.log.is_empty() || s.closed_until_ms > now_ms || s.limit < s.default_limit)
            .map(|(b, s)| SavedWindow {
                bucket: b.to_string(),
                sent_ms: s.log.iter().copied().collect(),
                closed_until_ms: s.closed_until_ms,
                limit: (s.limit < s.default_limit).then_some(s.limit),
                provisional_until_ms: s.provisional_until_ms.filter(|_| s.limit < s.default_limit),
            })
            .collect()
    }

    /// Take over the windows a previous process saved (unknown bucket names are skipped; sends
    /// older than a period fall out at the next use).
    pub fn restore(&mut self, windows: &[SavedWindow]) {
        for w in windows {
            let Some(bucket) = Bucket::parse(&w.bucket) else { continue };
            let state = self.state(&bucket);
            let mut sent: Vec<u64> = state.log.iter().copied().chain(w.sent_ms.iter().copied()).collect();
            sent.sort_unstable();
            state.log = sent.into();
            state.closed_until_ms = state.closed_until_ms.max(w.closed_until_ms);
            if let Some(limit) = w.limit.filter(|l| *l >= 1 && *l < state.limit) {
                state.limit = limit;
                state.provisional_until_ms = w.provisional_until_ms;
            }
        }
    }

    /// Changes to the windows so far: sends admitted, rejections (a change means the windows
    /// need saving).
    pub fn admitted(&self) -> u64 {
        self.admitted
    }
}
