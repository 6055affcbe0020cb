//! Sends over the socket: queued per channel, one unacknowledged at a time, acks matched in
//! send order, refusals reported or (rate limits) requeued, and sends whose socket died before
//! the ack kept in limbo until the channel's backfill shows whether the server stored them.

use super::wire::{self, older};
use super::{Channel, Io, Realtime, RealtimeEvent};
use crate::chats::limiter::{Bucket, RateHeaders};
use crate::chats::rest::Message;
use crate::io::{CallId, ConnId};
use serde_json::Value;

#[derive(Debug, Clone)]
pub(super) struct Send {
    pub(super) id: CallId,
    pub(super) content: String,
    pub(super) content_type: Option<String>,
    pub(super) sent_ms: u64,
}

impl Realtime {
    /// Queue a message for `channel` (subscribing to it if needed). Its outcome is a
    /// `message_sent` or `send_failed` event with the returned id.
    pub fn send(&mut self, channel: &str, content: String, content_type: Option<String>, now_ms: u64, io: &mut Io) -> CallId {
        // From the client's one counter: distinct from REST call ids and request ids.
        let id = io.out.next_id();
        let ch = self.channels.entry(channel.to_owned()).or_default();
        ch.queue.push_back(Send { id, content, content_type, sent_ms: 0 });
        if !ch.want {
            self.subscribe(&[channel.to_owned()], now_ms, io);
        }
        self.step(now_ms, io);
        id
    }

    pub(super) fn release_sends(&mut self, conn: ConnId, now_ms: u64, io: &mut Io) {
        let ready: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.confirmed && c.backfill.is_none() && c.limbo.is_none() && c.unacked.is_none() && !c.queue.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for c in ready {
            if io.limiter.admit(&[Bucket::Channel(c.clone())], now_ms).is_err() {
                continue;
            }
            let ch = self.channels.get_mut(&c).expect("listed above");
            let mut send = ch.queue.pop_front().expect("non-empty");
            send.sent_ms = now_ms;
            let frame = wire::message(&c, &send.content, send.content_type.as_deref());
            ch.unacked = Some(send);
            self.ack_order.push_back(c.clone());
            self.send_frame(conn, frame, now_ms, io);
        }
    }

    /// `message_ack`: the oldest unacked send was stored. `None` when nothing waited for it.
    pub(super) fn on_ack(&mut self, id: String, timestamp: Option<String>, io: &mut Io) -> Option<()> {
        let c = self.ack_order.pop_front()?;
        let remember = self.config.remember;
        let ch = self.channels.get_mut(&c)?;
        let send = ch.unacked.take()?;
        ch.remember(&id, remember);
        if let Some(ts) = &timestamp
            && ch.cursor.as_ref().is_none_or(|(_, cur)| !older(ts, cur))
        {
            ch.cursor = Some((id.clone(), ts.clone()));
        }
        io.limiter.accepted(&Bucket::Channel(c.clone()));
        io.out.event(RealtimeEvent::MessageSent { send_id: send.id, channel: c, id, timestamp });
        Some(())
    }

    /// An `error` frame: a send's failure (matched by channel, else by send order) or a
    /// server error. A rate-limit refusal requeues the send; it is never dropped.
    pub(super) fn on_error(&mut self, frame: &Value, channel: Option<String>, now_ms: u64, io: &mut Io) {
        let code = frame.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN").to_owned();
        let message = frame.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        // Errors about a send: matched by channel, else by send order.
        let send_channel = match &channel {
            Some(c) if self.ack_order.contains(c) => Some(c.clone()),
            None if code == "HANDLER_ERROR" || code == "READ_ONLY" => self.ack_order.front().cloned(),
            _ => None,
        };
        let Some(c) = send_channel else {
            io.out.event(RealtimeEvent::ServerError { code, message, channel });
            return;
        };
        self.ack_order.retain(|x| *x != c);
        let Some(ch) = self.channels.get_mut(&c) else { return };
        let Some(send) = ch.unacked.take() else { return };
        if code == "HANDLER_ERROR" && message.to_ascii_lowercase().contains("rate limit") {
            // Requeue at the front, never drop; the channel learns its (tier) limit.
            let bucket = Bucket::Channel(c.clone());
            let until_ms = io.limiter.rejected(&bucket, RateHeaders::default(), now_ms);
            let id = send.id;
            ch.queue.push_front(send);
            let waiting = ch.queue.len();
            io.out.event(crate::chats::ChatsEvent::Throttled { call_id: id, bucket, until_ms, waiting, rejected: true });
        } else {
            io.out.event(RealtimeEvent::SendFailed { send_id: send.id, channel: c, code, message });
        }
    }

    /// The session became fatal: every send still waiting fails.
    pub(super) fn fail_all_sends(&mut self, io: &mut Io) {
        for (c, ch) in self.channels.iter_mut() {
            for send in ch.limbo.take().into_iter().chain(ch.queue.drain(..)) {
                let event = RealtimeEvent::SendFailed { send_id: send.id, channel: c.clone(), code: "AGENT_QUARANTINED".into(), message: "the session was closed with 4003".into() };
                io.out.event(event);
            }
        }
    }
}

/// After a reconnect's backfill (`list`, oldest first): a send in limbo that the server
/// stored is adopted (its id, no resend); otherwise it goes first in the queue.
pub(super) fn settle_limbo(ch: &mut Channel, channel: &str, list: &[Message], me: Option<&str>, remember: usize, io: &mut Io) {
    let Some(send) = ch.limbo.take() else { return };
    let stored = list.iter().find(|m| {
        me.is_some() && m.author_id() == me && m.content() == Some(send.content.as_str()) && !m.id().is_some_and(|id| ch.seen_set.contains(id))
    });
    match stored {
        Some(m) => {
            let id = m.id().unwrap_or_default().to_owned();
            ch.remember(&id, remember);
            io.out.event(RealtimeEvent::MessageSent { send_id: send.id, channel: channel.to_owned(), id, timestamp: m.sent_at().map(str::to_owned) });
        }
        None => ch.queue.push_front(send),
    }
}
