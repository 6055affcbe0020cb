//! One bucket's sliding log of admitted sends, and when it can admit the next one.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub(super) struct State {
    pub(super) limit: u32,
    pub(super) period_ms: u64,
    /// Times of admitted sends within the last period, oldest first.
    pub(super) log: VecDeque<u64>,
    /// Closed until then (a 429, `Remaining: 0`).
    pub(super) closed_until_ms: u64,
    /// Consecutive rejections without a reset time: backs off exponentially.
    pub(super) strikes: u32,
    /// The configured limit, restored when a provisional guess expires.
    pub(super) default_limit: u32,
    /// A provisional learnt limit is dropped at this time (one period after it was learnt).
    pub(super) provisional_until_ms: Option<u64>,
}

impl State {
    pub(super) fn prune(&mut self, now_ms: u64) {
        if self.provisional_until_ms.is_some_and(|t| t <= now_ms) {
            self.provisional_until_ms = None;
            self.limit = self.limit.max(self.default_limit);
        }
        while self.log.front().is_some_and(|t| t + self.period_ms <= now_ms) {
            self.log.pop_front();
        }
    }
    /// When this bucket can next admit a send (`now_ms` if it can now).
    pub(super) fn next_free(&mut self, now_ms: u64) -> u64 {
        self.prune(now_ms);
        let mut at = now_ms.max(self.closed_until_ms);
        if self.log.len() >= self.limit as usize {
            // The send that frees a slot is the (len - limit + 1)-th oldest.
            let idx = self.log.len() - self.limit as usize;
            at = at.max(self.log[idx] + self.period_ms);
        }
        at
    }
}
