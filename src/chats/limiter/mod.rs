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

//!
//! Files: `log` (a bucket's sliding log), `learn` (what the server's headers and rejections
//! teach), this file (the buckets and the admit/refund/snapshot API).

mod learn;
mod log;
mod saved;
#[cfg(test)]
mod tests;

pub use learn::RateHeaders;

use log::State;
pub use saved::SavedWindow;
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

pub(super) const MINUTE: u64 = 60_000;
pub(super) const HOUR: u64 = 60 * MINUTE;
pub(super) const DAY: u64 = 24 * HOUR;

/// The documented limits; a host may lower them (e.g. a known low trust tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// General API calls per minute.
    pub api_per_minute: u32,
    /// Messages per channel per minute.
    pub channel_per_minute: u32,
    /// Friend requests per hour.
    pub friend_requests_per_hour: u32,
    /// Servers created per day.
    pub servers_per_day: u32,
    /// Pending-activity polls per minute.
    pub pending_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { api_per_minute: 100, channel_per_minute: 30, friend_requests_per_hour: 20, servers_per_day: 5, pending_per_minute: 10 }
    }
}

impl Limits {
    pub(super) fn of(&self, bucket: &Bucket) -> (u32, u64) {
        match bucket {
            Bucket::Api => (self.api_per_minute, MINUTE),
            Bucket::Channel(_) => (self.channel_per_minute, MINUTE),
            Bucket::FriendRequest => (self.friend_requests_per_hour, HOUR),
            Bucket::ServerCreate => (self.servers_per_day, DAY),
            Bucket::Pending => (self.pending_per_minute, MINUTE),
        }
    }
}

/// The state of one bucket, for hosts (`queue_state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketState {
    /// Which bucket.
    pub bucket: Bucket,
    /// Sends allowed per period.
    pub limit: u32,
    /// The period, ms.
    pub period_ms: u64,
    /// Sends in the current window.
    pub used: usize,
    /// When it can next admit a send (Unix ms); absent when it can now.
    pub next_free_ms: Option<u64>,
}

#[derive(Debug, Clone, Default)]
/// Keeps calls within the rate-limit buckets: queues them and releases them when allowed.
pub struct Limiter {
    limits: Limits,
    /// Boxed: a B-tree leaf holds room for 11 entries (1.2 KB unboxed for one bucket).
    buckets: BTreeMap<Bucket, Box<State>>,
    /// First admitted send of this process: before a full period has passed, the server may
    /// count sends of a previous process of the same agent that our log never saw.
    since_ms: Option<u64>,
    /// Sends admitted and rejections seen by this process (see `saved`).
    admitted: u64,
}

impl Limiter {
    /// A limiter with these limits.
    pub fn new(limits: Limits) -> Self {
        Self { limits, buckets: BTreeMap::new(), since_ms: None, admitted: 0 }
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
            self.buckets.insert(bucket.clone(), Box::new(state));
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
        self.admitted += 1;
        for b in buckets {
            self.state(b).log.push_back(now_ms);
        }
        Ok(())
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
