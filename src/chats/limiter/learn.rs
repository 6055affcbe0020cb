//! Learning from the server: its `X-RateLimit-*` headers only ever tighten a bucket, and a
//! rejection closes it (until the reset, or with backoff) and may reveal a lower limit.

use super::{Bucket, DAY, HOUR, Limiter};

/// The server's `X-RateLimit-*` headers, as far as they were present and numeric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// `X-RateLimit-Limit`.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u32>,
    /// Absolute Unix seconds.
    pub reset_s: Option<u64>,
}

impl RateHeaders {
    /// Reads `X-RateLimit-Limit` / `X-RateLimit-Remaining` from response headers.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let num = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok());
        Self {
            limit: num("x-ratelimit-limit").map(|n| n.min(u32::MAX as u64) as u32),
            remaining: num("x-ratelimit-remaining").map(|n| n.min(u32::MAX as u64) as u32),
            reset_s: num("x-ratelimit-reset"),
        }
    }
    /// Whether the response carried no rate-limit headers.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset_s.is_none()
    }
}

/// Longest a server may close a bucket for (a day limit plus slack): a garbage reset header
/// must not stall us for years.
pub(super) const MAX_CLOSE_MS: u64 = DAY + HOUR;
/// Backoff after a rejection without a reset header: 1 s doubling up to a window.
const BACKOFF_BASE_MS: u64 = 1_000;

impl Limiter {
    /// A response arrived for a send from `bucket`: learn from its headers.
    pub fn observe(&mut self, bucket: &Bucket, headers: RateHeaders, now_ms: u64) {
        if headers.is_empty() {
            return;
        }
        let state = self.state(bucket);
        if let Some(limit) = headers.limit.filter(|l| *l >= 1) {
            state.limit = state.limit.min(limit);
        }
        if headers.remaining == Some(0) {
            state.closed_until_ms = state.closed_until_ms.max(reset_ms(headers.reset_s, state.period_ms, now_ms));
        }
    }

    /// The server refused a send from `bucket` as rate limited (429 or a WS frame). Closes the
    /// bucket until the reset (or backs off), and learns a lower limit when our log admitted it.
    /// Returns when the bucket opens again.
    pub fn rejected(&mut self, bucket: &Bucket, headers: RateHeaders, now_ms: u64) -> u64 {
        let since_ms = self.since_ms;
        self.admitted += 1; // the windows changed: save them
        let state = self.state(bucket);
        state.prune(now_ms);
        // Our log counted the rejected send; the server accepted the others of the window.
        let accepted = state.log.len().saturating_sub(1) as u32;
        if let Some(limit) = headers.limit.filter(|l| *l >= 1) {
            state.limit = state.limit.min(limit);
        } else if accepted >= 1 {
            // Strictly lower each time, so a misjudged window costs a bounded number of probes.
            state.limit = accepted.min(state.limit - 1).max(1);
            // Within our first period the server may have counted sends of a previous process
            // (a restart mid-window): then the guess is kept for one period only, else a
            // restart would pin the bucket to a fraction of its real limit for good.
            let observed_full_period = since_ms.is_some_and(|s| now_ms >= s + state.period_ms);
            state.provisional_until_ms = (!observed_full_period).then_some(now_ms + state.period_ms);
        }
        // The rejected send did not count on the server.
        state.log.pop_back();
        let until = if headers.reset_s.is_some() {
            state.strikes = 0;
            reset_ms(headers.reset_s, state.period_ms, now_ms)
        } else {
            state.strikes = state.strikes.saturating_add(1);
            let backoff = BACKOFF_BASE_MS.saturating_mul(1 << state.strikes.min(16).saturating_sub(1)).min(state.period_ms);
            // Without a reset time the window's end is unknown: back off; the (lowered) limit
            // then holds further sends until the oldest accepted one leaves the window.
            now_ms + backoff
        };
        state.closed_until_ms = state.closed_until_ms.max(until);
        state.next_free(now_ms)
    }
}

/// The absolute reset time in Unix ms, clamped to `(now, now + MAX_CLOSE_MS]`. A reset in the
/// past or absent means "the rest of a window": one period from now.
fn reset_ms(reset_s: Option<u64>, period_ms: u64, now_ms: u64) -> u64 {
    match reset_s.map(|s| s.saturating_mul(1000)) {
        Some(at) if at > now_ms => at.min(now_ms + MAX_CLOSE_MS),
        Some(_) => now_ms + BACKOFF_BASE_MS,
        None => now_ms + period_ms,
    }
}
