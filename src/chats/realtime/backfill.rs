//! Per-channel backfill over REST after every (re)subscribe, and exactly-once delivery: pages
//! are walked from the newest back to the last delivered message (ties at page edges
//! included), deduplicated by id, and merged with the live frames held meanwhile.

use super::wire::{iso_of, ms_of, older};
use super::{Channel, Io, Need, Realtime, RealtimeEvent, UNTRUSTED, history};
use crate::chats::rest::{ChatsResult, Message};
use std::collections::HashSet;

/// How far before a first subscription its starting position lies (our clock against the server's).
const SUBSCRIBED_SLACK_MS: u64 = 5_000;

#[derive(Debug, Default)]
pub(super) struct Backfill {
    epoch: u64,
    /// Pages so far, newest first, as the server sent them.
    collected: Vec<Message>,
    ids: HashSet<String>,
    in_flight: bool,
    /// Page size of the next request (raised when a whole page shares one timestamp).
    limit: u32,
    before: Option<String>,
    /// The walk stopped at the backlog bound before reaching the last delivered message.
    truncated: bool,
}

impl Channel {
    /// Remember a delivered id, within `bytes` (the oldest are forgotten first).
    pub(super) fn remember(&mut self, id: &str, bytes: usize) {
        self.seen.insert(id, bytes / 8);
    }
}

/// Ids of the messages delivered last, as 64-bit hashes in a ring: no heap string per
/// message, 8 bytes an id, grown on demand up to its cap (an idle channel holds nothing).
/// Message ids are server-made UUIDs: a false "seen" needs a 64-bit collision.
#[derive(Debug, Default)]
pub(super) struct Seen {
    ring: Vec<u64>,
    /// Where the next id goes once the ring is full (the oldest one).
    next: usize,
}

impl Seen {
    fn hash(id: &str) -> u64 {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        h.write(id.as_bytes());
        h.finish()
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.has(Self::hash(id))
    }

    fn has(&self, h: u64) -> bool {
        // Blocks of 8 compared without branches (vectorised); a miss reads the whole ring.
        let mut blocks = self.ring.chunks_exact(8);
        let hit = blocks.by_ref().any(|b| (b[0] == h) | (b[1] == h) | (b[2] == h) | (b[3] == h) | (b[4] == h) | (b[5] == h) | (b[6] == h) | (b[7] == h));
        hit || blocks.remainder().contains(&h)
    }

    /// Add `id` (false when it was there), keeping at most `cap` ids.
    pub(super) fn insert(&mut self, id: &str, cap: usize) -> bool {
        let h = Self::hash(id);
        if self.has(h) {
            return false;
        }
        let cap = cap.max(1);
        if self.ring.len() < cap {
            // After a raised cap, oldest first again so the ring keeps its order.
            self.ring.rotate_left(std::mem::take(&mut self.next));
            if self.ring.len() == self.ring.capacity() {
                // Grow by doubling, but never past the cap.
                self.ring.reserve_exact(self.ring.len().max(8).min(cap - self.ring.len()));
            }
            self.ring.push(h);
        } else {
            self.ring.truncate(cap);
            self.next %= cap;
            self.ring[self.next] = h;
            self.next = (self.next + 1) % cap;
        }
        true
    }
}

impl Realtime {
    /// The server confirmed a subscription: backfill from the last delivered message (or to
    /// settle a send in limbo). `Err` when the channel is not wanted.
    pub(super) fn on_subscribed(&mut self, c: String, now_ms: u64, io: &mut Io) -> Result<(), &'static str> {
        let epoch = self.epoch;
        let page = self.config.page;
        let ch = self.channels.get_mut(&c).filter(|ch| ch.want).ok_or("not_subscribed")?;
        ch.confirmed = true;
        io.out.event(RealtimeEvent::Subscribed { channel: c.clone() });
        if ch.cursor.is_some() || ch.limbo.is_some() {
            ch.backfill = Some(Box::new(Backfill { epoch, in_flight: true, limit: page, ..Default::default() }));
            io.needs.push(Need::History { channel: c.clone(), epoch, command: history(&c, page, None) });
        } else {
            // Followed from now on: a position at the subscription (a little before, for clock
            // skew), so a socket drop or a restart before the first message still backfills
            // what was posted in the gap. Only the timestamp is known: the id stays empty.
            ch.cursor = Some((String::new(), iso_of(now_ms.saturating_sub(SUBSCRIBED_SLACK_MS))));
            if let Some(acks) = ch.acks.as_mut() {
                acks.start_at(ch.cursor.clone());
            }
            self.moves += 1;
        }
        Ok(())
    }

    /// A live message: delivered now, or held while the channel backfills. `Err` for a channel
    /// the session does not follow (the server fans out to every socket of the agent).
    pub(super) fn on_live_message(&mut self, c: String, message: Box<Message>, io: &mut Io) -> Result<(), &'static str> {
        let ch = self.channels.get_mut(&c).filter(|ch| ch.want).ok_or("not_subscribed")?;
        // Another agent is talking to us: a friend request or DM may follow (see `tick_open`).
        self.poll_soon |= io.agent_id.is_some() && message.author_id() != io.agent_id;
        if ch.backfill.is_some() || !ch.confirmed {
            ch.held.push(message);
        } else {
            let me = io.agent_id;
            deliver(ch, c, message, false, me, self.config.dedupe_bytes, io);
            self.moves += 1;
        }
        Ok(())
    }

    /// The result of a backfill history call: emits the missed messages in order.
    pub fn on_history(&mut self, channel: &str, epoch: u64, result: Result<ChatsResult, String>, now_ms: u64, io: &mut Io) {
        let remember = self.config.dedupe_bytes;
        let Some(ch) = self.channels.get_mut(channel) else { return };
        let Some(bf) = ch.backfill.as_mut() else { return };
        if bf.epoch != epoch || epoch != self.epoch {
            return;
        }
        bf.in_flight = false;
        let messages = match result {
            Ok(ChatsResult::Messages(messages)) => messages,
            // A failed page: drop this connection's attempt; the reconnect backfills again.
            _ => {
                if let Some(conn) = self.current_conn() {
                    io.out.ws_close(conn, 4000, "backfill failed");
                    self.handle_closed(conn, 4000, "backfill failed", now_ms, io);
                }
                return;
            }
        };
        let full = messages.len() >= bf.limit as usize;
        for m in &messages {
            if let Some(id) = m.id()
                && bf.ids.insert(id.to_owned())
            {
                bf.collected.push(m.clone());
            }
        }
        let mut reached = match &ch.cursor {
            Some((cid, cts)) => messages.iter().any(|m| m.id() == Some(cid.as_str()) || m.sent_at().is_some_and(|t| older(t, cts))),
            None => true,
        };
        // A long outage: stop walking back once the backlog bound is covered (the rest is
        // reported as skipped, not fetched).
        let too_many = self.config.backlog_max_messages.is_some_and(|max| bf.collected.len() > max as usize);
        let cutoff = self.config.backlog_max_age_ms.map(|age| iso_of(now_ms.saturating_sub(age)));
        let too_old = cutoff.is_some_and(|cut| messages.last().and_then(Message::sent_at).is_some_and(|t| older(t, &cut)));
        if !reached && (too_many || too_old) {
            (reached, bf.truncated) = (true, true);
        }
        let edge = messages.last().and_then(|m| m.sent_at().map(str::to_owned));
        if !reached && full && let Some(edge) = edge {
            // `before` is exclusive and timestamp-only, so messages sharing the edge's timestamp
            // may continue on the next page: ask again from just after the edge (dedupe by id).
            // That moves the bound down whenever the page spans several timestamps. A page that
            // is one timestamp throughout is retried once at the largest page size; only a tie
            // group larger than that can be stepped over (reported as a gap).
            let uniform = messages.iter().all(|m| m.created_at.as_deref() == Some(edge.as_str()));
            let next = match ms_of(&edge) {
                Some(ms) if !uniform => Some(iso_of(ms + 1)),
                Some(_) if bf.limit < crate::chats::rest::limits::PAGE => {
                    bf.limit = crate::chats::rest::limits::PAGE;
                    bf.before.clone()
                }
                _ => {
                    let event = RealtimeEvent::ServerError {
                        code: "BACKFILL_GAP".into(),
                        message: format!("more than {} messages share the timestamp {edge}: some may be skipped", bf.limit),
                        channel: Some(channel.to_owned()),
                    };
                    io.out.event(event);
                    Some(edge)
                }
            };
            bf.before = next.clone();
            bf.in_flight = true;
            io.needs.push(Need::History { channel: channel.to_owned(), epoch, command: history(channel, bf.limit, next) });
            return;
        }
        // Done: oldest first, from just after the cursor.
        let bf = ch.backfill.take().expect("checked above");
        let mut list = bf.collected;
        list.reverse();
        let start = match &ch.cursor {
            Some((cid, cts)) => match list.iter().position(|m| m.id.as_deref() == Some(cid.as_str())) {
                Some(i) => i + 1,
                None => list.iter().position(|m| m.created_at.as_deref().is_none_or(|t| !older(t, cts))).unwrap_or(list.len()),
            },
            None => 0,
        };
        let me = io.agent_id;
        // A send lost in limbo: stored (adopt its id) or not (resend first).
        super::sends::settle_limbo(ch, channel, &list, me, remember, io);
        let mut late: Vec<Message> = list.into_iter().skip(start).collect();
        if let Some(skipped) = super::resume::bound(&mut late, channel, self.config.backlog_max_messages, self.config.backlog_max_age_ms, bf.truncated, now_ms) {
            io.out.event(skipped);
        }
        for m in late {
            deliver(ch, channel.to_owned(), Box::new(m), true, me, remember, io);
        }
        self.moves += 1;
        for m in std::mem::take(&mut ch.held) {
            deliver(ch, channel.to_owned(), m, false, me, remember, io);
        }
        self.step(now_ms, io);
    }

    /// A pending poll's answer: report activity, and plan the next poll (soon after activity,
    /// twice as far after a quiet one, up to the idle gap).
    pub fn on_pending(&mut self, result: Result<ChatsResult, String>, now_ms: u64, io: &mut Io) {
        self.poll_in_flight = false;
        let mut busy = false;
        if let Ok(ChatsResult::Pending(activity)) = result {
            if let Some(at) = activity.checked_at.get() {
                self.since = Some(at.clone());
            }
            if activity.has_activity.get() == Some(&true) {
                busy = true;
                io.out.event(RealtimeEvent::Activity { activity: Box::new(activity), trust: UNTRUSTED });
            }
        }
        let Some(idle) = self.config.pending_poll_ms else { return };
        let min = self.config.pending_poll_min_ms.min(idle);
        self.poll_every_ms = if busy { min } else { (self.poll_every_ms.max(min) * 2).min(idle) };
        if self.next_poll_ms.is_some() {
            self.next_poll_ms = Some(now_ms + self.poll_every_ms);
        }
    }

    /// Something may soon be pending (the agent sent a friend request, say): poll at the
    /// fastest pace again.
    pub fn expect_activity(&mut self, now_ms: u64) {
        let Some(idle) = self.config.pending_poll_ms else { return };
        self.poll_every_ms = self.config.pending_poll_min_ms.min(idle);
        if let Some(at) = self.next_poll_ms {
            self.next_poll_ms = Some(at.min(now_ms + self.poll_every_ms));
        }
    }
}

/// Deliver a message once: skip ids already seen, advance the cursor (its strings reused).
pub(super) fn deliver(ch: &mut Channel, channel: String, message: Box<Message>, backfilled: bool, me: Option<&str>, remember: usize, io: &mut Io) {
    let Some(id) = message.id() else { return };
    if !ch.seen.insert(id, remember / 8) {
        return;
    }
    let own = me.is_some() && message.author_id() == me;
    if let Some(ts) = message.sent_at() {
        let (cid, cts) = ch.cursor.get_or_insert_default();
        cid.clear();
        cid.push_str(id);
        cts.clear();
        cts.push_str(ts);
        if let Some(acks) = ch.acks.as_mut() {
            acks.delivered(id, ts, own);
        }
    }
    io.out.event(RealtimeEvent::Message { channel, message, own, backfilled, trust: UNTRUSTED });
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn seen_ids_are_bounded_and_the_oldest_go_first() {
        let mut seen = Seen::default();
        assert!(seen.insert("a", 3) && seen.insert("b", 3) && !seen.insert("a", 3));
        assert!(seen.insert("c", 3) && seen.insert("d", 3));
        assert!(!seen.contains("a") && seen.contains("b") && seen.contains("d"));
        for i in 0..100 {
            seen.insert(&format!("m{i}"), 64);
        }
        assert!(seen.ring.capacity() <= 64, "bounded: {}", seen.ring.capacity());
        assert!(seen.contains("m99") && seen.contains("m36") && !seen.contains("m35"));
    }
}
