//! Per-channel backfill over REST after every (re)subscribe, and exactly-once delivery: pages
//! are walked from the newest back to the last delivered message (ties at page edges
//! included), deduplicated by id, and merged with the live frames held meanwhile.

use super::wire::{iso_of, ms_of, older};
use super::{Channel, Io, Need, Realtime, RealtimeEvent, UNTRUSTED, history};
use crate::chats::rest::{ChatsResult, Message};
use std::collections::HashSet;

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
    /// Remember a delivered id, forgetting the oldest beyond `cap`.
    pub(super) fn remember(&mut self, id: &str, cap: usize) {
        if self.seen_set.insert(id.to_owned()) {
            self.seen.push_back(id.to_owned());
            while self.seen.len() > cap {
                if let Some(old) = self.seen.pop_front() {
                    self.seen_set.remove(&old);
                }
            }
        }
    }
}

impl Realtime {
    /// The server confirmed a subscription: backfill from the last delivered message (or to
    /// settle a send in limbo). `Err` when the channel is not wanted.
    pub(super) fn on_subscribed(&mut self, c: String, io: &mut Io) -> Result<(), &'static str> {
        let epoch = self.epoch;
        let page = self.config.page;
        let ch = self.channels.get_mut(&c).filter(|ch| ch.want).ok_or("not_subscribed")?;
        ch.confirmed = true;
        io.out.event(RealtimeEvent::Subscribed { channel: c.clone() });
        if ch.cursor.is_some() || ch.limbo.is_some() {
            ch.backfill = Some(Box::new(Backfill { epoch, in_flight: true, limit: page, ..Default::default() }));
            io.needs.push(Need::History { channel: c.clone(), epoch, command: history(&c, page, None) });
        }
        Ok(())
    }

    /// A live message: delivered now, or held while the channel backfills. `Err` for a channel
    /// the session does not follow (the server fans out to every socket of the agent).
    pub(super) fn on_live_message(&mut self, c: String, message: Message, io: &mut Io) -> Result<(), &'static str> {
        let ch = self.channels.get_mut(&c).filter(|ch| ch.want).ok_or("not_subscribed")?;
        // Another agent is talking to us: a friend request or DM may follow (see `tick_open`).
        self.poll_soon |= io.agent_id.is_some() && message.author_id() != io.agent_id;
        if ch.backfill.is_some() || !ch.confirmed {
            ch.held.push(message);
        } else {
            let me = io.agent_id.map(str::to_owned);
            deliver(ch, &c, message, false, me.as_deref(), self.config.remember, io);
            self.moves += 1;
        }
        Ok(())
    }

    /// The result of a backfill history call: emits the missed messages in order.
    pub fn on_history(&mut self, channel: &str, epoch: u64, result: Result<ChatsResult, String>, now_ms: u64, io: &mut Io) {
        let remember = self.config.remember;
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
        let me = io.agent_id.map(str::to_owned);
        // A send lost in limbo: stored (adopt its id) or not (resend first).
        super::sends::settle_limbo(ch, channel, &list, me.as_deref(), remember, io);
        let mut late: Vec<Message> = list.into_iter().skip(start).collect();
        if let Some(skipped) = super::resume::bound(&mut late, channel, self.config.backlog_max_messages, self.config.backlog_max_age_ms, bf.truncated, now_ms) {
            io.out.event(skipped);
        }
        for m in late {
            deliver(ch, channel, m, true, me.as_deref(), remember, io);
        }
        self.moves += 1;
        for m in std::mem::take(&mut ch.held) {
            deliver(ch, channel, m, false, me.as_deref(), remember, io);
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
                io.out.event(RealtimeEvent::Activity { activity, trust: UNTRUSTED });
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

/// Deliver a message once: skip ids already seen, advance the cursor.
pub(super) fn deliver(ch: &mut Channel, channel: &str, message: Message, backfilled: bool, me: Option<&str>, remember: usize, io: &mut Io) {
    let Some(id) = message.id().map(str::to_owned) else { return };
    if ch.seen_set.contains(&id) {
        return;
    }
    ch.remember(&id, remember);
    if let Some(ts) = message.sent_at() {
        ch.cursor = Some((id, ts.to_owned()));
    }
    let own = me.is_some() && message.author_id() == me;
    io.out.event(RealtimeEvent::Message { channel: channel.to_owned(), message, own, backfilled, trust: UNTRUSTED });
}
