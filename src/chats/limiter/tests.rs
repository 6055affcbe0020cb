//! The limiter against a fixed-window server, rejections, headers, refunds.

use super::learn::MAX_CLOSE_MS;
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

/// A trust tier's lower limit, learnt from a rejection, survives a restart: the next process
/// never probes the server again while the learnt limit holds (the window is saved with it).
#[test]
fn a_learnt_limit_survives_a_restart() {
    let ch = Bucket::Channel("c1".into());
    let s0 = T0 - T0 % MINUTE;
    let mut server = FixedWindow { limit: 3, period_ms: MINUTE, start: s0, used: 0, rejected: 0 };
    let mut first = Limiter::new(Limits::default());
    // Running for more than a period, so the limit it learns is no provisional guess.
    first.admit(std::slice::from_ref(&ch), s0 - 50_000).unwrap();
    let mut now = s0 + 15_000;
    while server.rejected == 0 {
        first.admit(std::slice::from_ref(&ch), now).unwrap();
        if !server.hit(now) {
            first.rejected(&ch, RateHeaders::default(), now);
        }
        now += 100;
    }
    let changes = first.admitted();
    let saved: Vec<SavedWindow> = serde_json::from_value(serde_json::to_value(first.windows(now)).unwrap()).unwrap();
    assert!(saved.iter().any(|w| w.limit == Some(3)), "{saved:?}");
    assert_eq!(changes, 6, "5 sends and a rejection: each asks for a save");

    // The restarted process, in the next server window: 3 sends, then it waits.
    let mut second = Limiter::new(Limits::default());
    second.restore(&saved);
    now = s0 + MINUTE + 500;
    let mut sent = 0;
    while now < s0 + 2 * MINUTE {
        match second.admit(std::slice::from_ref(&ch), now) {
            Ok(()) => {
                assert!(server.hit(now), "the restarted process sent past the learnt limit");
                sent += 1;
            }
            Err(at) => now = at,
        }
        now += 100;
    }
    assert_eq!((sent, server.rejected), (3, 1));
}
