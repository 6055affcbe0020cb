//! Client-side rate limiting: never be rate limited in normal use, never drop a send.
//!
//! Each bucket keeps a sliding log of its recent sends. A sliding window of `limit` per
//! `period` admits at most `limit` sends in *any* span of `period`, so it can never exceed a
//! server's fixed window, wherever that window's boundaries fall. Buckets start at the
//! documented limits and only ever tighten from what the server says:
//! - `X-RateLimit-Limit` lowers the limit, `X-RateLimit-Remaining: 0` closes the bucket until
//!   `X-RateLimit-Reset` (absolute Unix seconds);
//! - a 429 (or a WebSocket `HANDLER_ERROR "Rate limited"`) closes the bucket until the reset
//!   if one was given, else for the rest of a window; when the server rejects a send that our
//!   log allowed, the limit is learnt as what it did accept within the window.
//!
//! The limiter only decides; the caller keeps its own FIFO of waiting work and asks
//! [`Limiter::admit`] in order, so per-bucket FIFO order holds and nothing is ever dropped.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// What a request draws from. Every REST call takes [`Bucket::Api`] plus its specific ones.
/// Serialised as a short name: `"api"`, `"channel:<id>"`, `"friend_request"`, `"server_create"`,
/// `"pending"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// 100 API calls per minute per agent.
    Api,
    /// 30 messages per minute per channel (WebSocket and REST sends share it).
    Channel(String),
    /// 20 friend requests per hour.
    FriendRequest,
    /// 5 servers per day.
    ServerCreate,
    /// `/agents/@me/pending`: 10 per minute.
    Pending,
}

impl std::fmt::Display for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bucket::Api => f.write_str("api"),
            Bucket::Channel(id) => write!(f, "channel:{id}"),
            Bucket::FriendRequest => f.write_str("friend_request"),
            Bucket::ServerCreate => f.write_str("server_create"),
            Bucket::Pending => f.write_str("pending"),
        }
    }
}

impl Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The documented limits; a host may lower them (e.g. a known low trust tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub api_per_minute: u32,
    pub channel_per_minute: u32,
    pub friend_requests_per_hour: u32,
    pub servers_per_day: u32,
    pub pending_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { api_per_minute: 100, channel_per_minute: 30, friend_requests_per_hour: 20, servers_per_day: 5, pending_per_minute: 10 }
    }
}

impl Limits {
    fn of(&self, bucket: &Bucket) -> (u32, u64) {
        match bucket {
            Bucket::Api => (self.api_per_minute, MINUTE),
            Bucket::Channel(_) => (self.channel_per_minute, MINUTE),
            Bucket::FriendRequest => (self.friend_requests_per_hour, HOUR),
            Bucket::ServerCreate => (self.servers_per_day, DAY),
            Bucket::Pending => (self.pending_per_minute, MINUTE),
        }
    }
}

/// The server's `X-RateLimit-*` headers, as far as they were present and numeric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// Absolute Unix seconds.
    pub reset_s: Option<u64>,
}

impl RateHeaders {
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let num = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok());
        Self {
            limit: num("x-ratelimit-limit").map(|n| n.min(u32::MAX as u64) as u32),
            remaining: num("x-ratelimit-remaining").map(|n| n.min(u32::MAX as u64) as u32),
            reset_s: num("x-ratelimit-reset"),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset_s.is_none()
    }
}

#[derive(Debug, Clone)]
struct State {
    limit: u32,
    period_ms: u64,
    /// Times of admitted sends within the last period, oldest first.
    log: VecDeque<u64>,
    /// Closed until then (a 429, `Remaining: 0`).
    closed_until_ms: u64,
    /// Consecutive rejections without a reset time: backs off exponentially.
    strikes: u32,
    /// The configured limit, restored when a provisional guess expires.
    default_limit: u32,
    /// A provisional learnt limit is dropped at this time (one period after it was learnt).
    provisional_until_ms: Option<u64>,
}

impl State {
    fn prune(&mut self, now_ms: u64) {
        if self.provisional_until_ms.is_some_and(|t| t <= now_ms) {
            self.provisional_until_ms = None;
            self.limit = self.limit.max(self.default_limit);
        }
        while self.log.front().is_some_and(|t| t + self.period_ms <= now_ms) {
            self.log.pop_front();
        }
    }
    /// When this bucket can next admit a send (`now_ms` if it can now).
    fn next_free(&mut self, now_ms: u64) -> u64 {
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

/// The state of one bucket, for hosts (`queue_state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketState {
    pub bucket: Bucket,
    pub limit: u32,
    pub period_ms: u64,
    pub used: usize,
    /// When it can next admit a send (Unix ms); absent when it can now.
    pub next_free_ms: Option<u64>,
}

/// Longest a server may close a bucket for (a day limit plus slack): a garbage reset header
/// must not stall us for years.
const MAX_CLOSE_MS: u64 = DAY + HOUR;
/// Backoff after a rejection without a reset header: 1 s doubling up to a window.
const BACKOFF_BASE_MS: u64 = 1_000;

#[derive(Debug, Clone, Default)]
pub struct Limiter {
    limits: Limits,
    buckets: BTreeMap<Bucket, State>,
    /// First admitted send of this process: before a full period has passed, the server may
    /// count sends of a previous process of the same agent that our log never saw.
    since_ms: Option<u64>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Self { limits, buckets: BTreeMap::new(), since_ms: None }
    }

    fn state(&mut self, bucket: &Bucket) -> &mut State {
        if !self.buckets.contains_key(bucket) {
            let (limit, period_ms) = self.limits.of(bucket);
            let state = State {
                limit: limit.max(1),
                period_ms,
                log: VecDeque::new(),
                closed_until_ms: 0,
                strikes: 0,
                default_limit: limit.max(1),
                provisional_until_ms: None,
            };
            self.buckets.insert(bucket.clone(), state);
        }
        self.buckets.get_mut(bucket).expect("inserted above")
    }

    /// When all of `buckets` can admit a send (`now_ms` if they can now).
    pub fn ready_at(&mut self, buckets: &[Bucket], now_ms: u64) -> u64 {
        buckets.iter().map(|b| self.state(b).next_free(now_ms)).max().unwrap_or(now_ms)
    }

    /// Take one send from every bucket if all can admit it now; else `Err(when)`.
    pub fn admit(&mut self, buckets: &[Bucket], now_ms: u64) -> Result<(), u64> {
        let at = self.ready_at(buckets, now_ms);
        if at > now_ms {
            return Err(at);
        }
        self.since_ms.get_or_insert(now_ms);
        for b in buckets {
            self.state(b).log.push_back(now_ms);
        }
        Ok(())
    }

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

    /// A send from `bucket` went through: reset its backoff.
    pub fn accepted(&mut self, bucket: &Bucket) {
        if let Some(s) = self.buckets.get_mut(bucket) {
            s.strikes = 0;
        }
    }

    /// A send was admitted but never reached the server (transport failure, cancelled): give
    /// its slot back so a retry is not delayed by a send that did not happen.
    pub fn refund(&mut self, buckets: &[Bucket], admitted_at_ms: u64) {
        for b in buckets {
            if let Some(s) = self.buckets.get_mut(b)
                && let Some(pos) = s.log.iter().rposition(|t| *t == admitted_at_ms)
            {
                s.log.remove(pos);
            }
        }
    }

    /// Every bucket in use, for hosts.
    pub fn snapshot(&mut self, now_ms: u64) -> Vec<BucketState> {
        let keys: Vec<Bucket> = self.buckets.keys().cloned().collect();
        keys.into_iter()
            .map(|bucket| {
                let s = self.state(&bucket);
                let next = s.next_free(now_ms);
                BucketState { limit: s.limit, period_ms: s.period_ms, used: s.log.len(), next_free_ms: (next > now_ms).then_some(next), bucket }
            })
            .collect()
    }

    /// Forget buckets with nothing in their log and nothing closed (keeps idle sessions small).
    pub fn compact(&mut self, now_ms: u64) {
        let limits = self.limits;
        self.buckets.retain(|b, s| {
            s.prune(now_ms);
            let learnt = s.limit < limits.of(b).0.max(1);
            !s.log.is_empty() || s.closed_until_ms > now_ms || learnt
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_790_000_000_000;

    /// A server with fixed windows aligned to its own clock, as observed on MoltChats.
    struct FixedWindow {
        limit: u32,
        period_ms: u64,
        start: u64,
        used: u32,
        rejected: u32,
    }
    impl FixedWindow {
        fn hit(&mut self, now: u64) -> bool {
            if now >= self.start + self.period_ms {
                self.start = now - now % self.period_ms;
                self.used = 0;
            }
            self.used += 1;
            if self.used > self.limit {
                self.rejected += 1;
                false
            } else {
                true
            }
        }
    }

    #[test]
    fn sliding_log_never_exceeds_any_fixed_window() {
        let mut l = Limiter::new(Limits::default());
        let mut server = FixedWindow { limit: 100, period_ms: MINUTE, start: T0 - T0 % MINUTE + 17_000, used: 0, rejected: 0 };
        let mut now = T0 + 59_000; // just before a server window boundary
        let mut sent = 0;
        while sent < 1000 {
            match l.admit(&[Bucket::Api], now) {
                Ok(()) => {
                    assert!(server.hit(now), "server rejected send {sent}");
                    sent += 1;
                }
                Err(at) => {
                    assert!(at > now, "no tight loop");
                    now = at;
                }
            }
        }
        assert_eq!(server.rejected, 0);
        // 1000 sends at 100/min take at least 9 minutes.
        assert!(now - (T0 + 59_000) >= 9 * MINUTE);
    }

    #[test]
    fn a_429_with_only_an_absolute_reset_header_closes_until_then() {
        let mut l = Limiter::new(Limits::default());
        let now = T0 + 5_000;
        l.admit(&[Bucket::Pending], now).unwrap();
        let reset_s = (T0 + 42_000) / 1000;
        let open_at = l.rejected(&Bucket::Pending, RateHeaders { limit: None, remaining: None, reset_s: Some(reset_s) }, now);
        assert_eq!(open_at, reset_s * 1000);
        assert_eq!(l.admit(&[Bucket::Pending], now + 1), Err(reset_s * 1000));
        assert_eq!(l.admit(&[Bucket::Pending], reset_s * 1000 - 1), Err(reset_s * 1000));
        assert_eq!(l.admit(&[Bucket::Pending], reset_s * 1000), Ok(()));
        // The rejected send gave its slot back and no limit was invented from one send.
        let snap = l.snapshot(reset_s * 1000);
        assert_eq!((snap[0].limit, snap[0].used), (10, 1));
    }

    #[test]
    fn garbage_and_past_resets_neither_stall_nor_spin() {
        let mut l = Limiter::new(Limits::default());
        let now = T0;
        l.admit(&[Bucket::Api], now).unwrap();
        let far = l.rejected(&Bucket::Api, RateHeaders { reset_s: Some(u64::MAX), ..Default::default() }, now);
        assert!(far <= now + MAX_CLOSE_MS);
        let mut l = Limiter::new(Limits::default());
        l.admit(&[Bucket::Api], now).unwrap();
        let soon = l.rejected(&Bucket::Api, RateHeaders { reset_s: Some(now / 1000 - 10), ..Default::default() }, now);
        assert!(soon > now, "a reset in the past still waits a little");
    }

    #[test]
    fn rejections_without_headers_back_off_exponentially() {
        let mut l = Limiter::new(Limits::default());
        let mut now = T0;
        let mut waits = vec![];
        for _ in 0..8 {
            l.admit(&[Bucket::Api], now).unwrap();
            let at = l.rejected(&Bucket::Api, RateHeaders::default(), now);
            waits.push(at - now);
            now = at;
        }
        assert_eq!(waits[..4], [1_000, 2_000, 4_000, 8_000]);
        assert!(waits.iter().all(|w| *w <= MINUTE));
        l.accepted(&Bucket::Api);
        l.admit(&[Bucket::Api], now).unwrap();
        assert_eq!(l.rejected(&Bucket::Api, RateHeaders::default(), now) - now, 1_000);
    }

    #[test]
    fn headers_tighten_and_remaining_zero_closes() {
        let mut l = Limiter::new(Limits::default());
        let now = T0;
        l.admit(&[Bucket::ServerCreate], now).unwrap();
        l.observe(&Bucket::ServerCreate, RateHeaders { limit: Some(2), remaining: Some(1), reset_s: Some((now + DAY) / 1000) }, now);
        l.admit(&[Bucket::ServerCreate], now + 1).unwrap();
        assert!(l.admit(&[Bucket::ServerCreate], now + 2).is_err(), "limit learnt as 2");
        l.observe(&Bucket::Pending, RateHeaders { limit: Some(10), remaining: Some(0), reset_s: Some(now / 1000 + 30) }, now);
        assert_eq!(l.admit(&[Bucket::Pending], now), Err((now / 1000 + 30) * 1000));
        // Headers never loosen a limit.
        l.observe(&Bucket::Api, RateHeaders { limit: Some(1000), ..Default::default() }, now);
        assert_eq!(l.snapshot(now).iter().find(|b| b.bucket == Bucket::Api).map(|b| b.limit), Some(100));
    }

    /// The tier case on its own: a channel allowing 3 per minute (fixed windows), 100 sends
    /// queued. One send reveals the limit; every send is delivered, in order, none lost.
    #[test]
    fn a_tier_limit_of_three_per_minute_is_learnt_from_one_rejection() {
        let mut l = Limiter::new(Limits::default());
        let ch = Bucket::Channel("c".into());
        let mut server = FixedWindow { limit: 3, period_ms: MINUTE, start: T0 - T0 % MINUTE, used: 0, rejected: 0 };
        let mut queue: VecDeque<u32> = (0..100).collect();
        let mut delivered = vec![];
        let mut now = T0;
        let mut steps = 0;
        while !queue.is_empty() {
            steps += 1;
            assert!(steps < 10_000, "livelock");
            match l.admit(std::slice::from_ref(&ch), now) {
                Ok(()) => {
                    if server.hit(now) {
                        l.accepted(&ch);
                        delivered.push(queue.pop_front().unwrap());
                    } else {
                        let at = l.rejected(&ch, RateHeaders::default(), now);
                        assert!(at > now);
                    }
                    now += 50; // an ack round trip
                }
                Err(at) => now = at,
            }
        }
        assert_eq!(delivered, (0..100).collect::<Vec<_>>());
        // The first guess falls in the first period (provisional, see `rejected`), so the limit
        // is confirmed by one more probe a period later.
        assert_eq!(server.rejected, 2, "only the probes that revealed the limit were refused");
        assert_eq!(l.snapshot(now).iter().find(|b| b.bucket == ch).unwrap().limit, 3);
        // 100 messages at 3 per minute: about 33 minutes.
        assert!(now - T0 >= 32 * MINUTE);
    }

    /// Found by fault injection (host-tests/fault): a process restarted mid-window inherits
    /// the server's count of its predecessor's sends. The one rejection must not pin the
    /// channel to a fraction of its limit for the life of the process.
    #[test]
    fn a_rejection_caused_by_a_previous_process_does_not_lower_the_limit_for_good() {
        let mut l = Limiter::new(Limits::default());
        let ch = Bucket::Channel("c".into());
        let start = T0 - T0 % MINUTE;
        // The previous process used 27 of the 30 in this window.
        let mut server = FixedWindow { limit: 30, period_ms: MINUTE, start, used: 27, rejected: 0 };
        let mut now = start + 10_000;
        let mut sent_at = vec![];
        while now < start + 10 * MINUTE {
            match l.admit(std::slice::from_ref(&ch), now) {
                Ok(()) => {
                    if server.hit(now) {
                        sent_at.push(now);
                    } else {
                        l.rejected(&ch, RateHeaders::default(), now);
                    }
                    now += 50;
                }
                Err(at) => now = at,
            }
        }
        assert_eq!(server.rejected, 1);
        // From the third minute on the channel runs at its real limit again.
        let late = sent_at.iter().filter(|t| **t >= start + 3 * MINUTE).count();
        assert!(late >= 7 * 30 - 30, "only {late} sends in the last 7 minutes");
    }

    #[test]
    fn refund_returns_a_slot_and_compact_forgets_idle_buckets() {
        let mut l = Limiter::new(Limits { api_per_minute: 1, ..Default::default() });
        l.admit(&[Bucket::Api], T0).unwrap();
        assert!(l.admit(&[Bucket::Api], T0 + 1).is_err());
        l.refund(&[Bucket::Api], T0);
        assert!(l.admit(&[Bucket::Api], T0 + 1).is_ok());
        l.compact(T0 + 2 * MINUTE);
        assert!(l.snapshot(T0 + 2 * MINUTE).is_empty());
    }
}
