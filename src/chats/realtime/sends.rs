//! Requests over the socket: sends queued per channel and trust ops, one awaiting its answer
//! at a time per socket (answers carry no correlation id and the server may reorder answers to
//! different frames), refusals reported or (rate limits) requeued, and sends whose socket died
//! before the ack kept in limbo until the channel's backfill shows whether the server stored them.

use super::wire::{self, older};
use super::{Channel, Io, Realtime, RealtimeEvent, TrustOp};
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
    /// Already resubscribed once after a `NOT_SUBSCRIBED` (a second one fails the send).
    pub(super) resubscribed: bool,
}

/// A trust op, queued or awaiting its answer.
#[derive(Debug, Clone)]
pub(super) struct TrustCall {
    pub(super) id: CallId,
    pub(super) op: TrustOp,
    pub(super) target: String,
    pub(super) reason: Option<String>,
    pub(super) sent_ms: u64,
}

impl TrustCall {
    pub(super) fn failed(self, code: &str, message: &str) -> RealtimeEvent {
        RealtimeEvent::TrustFailed { call_id: self.id, op: self.op, target: self.target, code: code.to_owned(), message: message.to_owned() }
    }
}

/// The request awaiting its answer on the open socket.
#[derive(Debug, Clone)]
pub(super) enum Inflight {
    /// The channel's `unacked` send.
    Send(String),
    Trust(TrustCall),
}

/// Error codes about the connection itself, never the answer to a request.
const CONNECTION_CODES: [&str; 5] = ["AUTH_FAILED", "AUTH_REQUIRED", "TOKEN_INVALID", "IDLE_TIMEOUT", "INVALID_JSON"];

impl Realtime {
    /// Queue a message for `channel` (subscribing to it if needed). Its outcome is a
    /// `message_sent` or `send_failed` event with the returned id.
    pub fn send(&mut self, channel: &str, content: String, content_type: Option<String>, now_ms: u64, io: &mut Io) -> CallId {
        // From the client's one counter: distinct from REST call ids and request ids.
        let id = io.out.next_id();
        let ch = self.channels.entry(channel.to_owned()).or_default();
        ch.queue.push_back(Send { id, content, content_type, sent_ms: 0, resubscribed: false });
        if !ch.want {
            self.subscribe(&[channel.to_owned()], now_ms, io);
        }
        self.step(now_ms, io);
        id
    }

    /// When the request awaiting its answer went out.
    pub(super) fn inflight_sent_ms(&self) -> Option<u64> {
        match self.inflight.as_ref()? {
            Inflight::Send(c) => self.channels.get(c).and_then(|ch| ch.unacked.as_ref()).map(|s| s.sent_ms),
            Inflight::Trust(call) => Some(call.sent_ms),
        }
    }

    /// Send the next request if none awaits its answer: a trust op first (they are rare and
    /// the caller waits on them), else the oldest send of a ready channel the limiter admits.
    pub(super) fn release(&mut self, conn: ConnId, now_ms: u64, io: &mut Io) {
        if self.inflight.is_some() {
            return;
        }
        if let Some(mut call) = self.trust_queue.pop_front() {
            call.sent_ms = now_ms;
            let frame = wire::trust(call.op, &call.target, call.reason.as_deref());
            self.inflight = Some(Inflight::Trust(call));
            return self.send_frame(conn, frame, now_ms, io);
        }
        let mut ready: Vec<(CallId, String)> = self
            .channels
            .iter()
            .filter(|(_, c)| c.confirmed && c.backfill.is_none() && c.limbo.is_none() && c.unacked.is_none())
            .filter_map(|(k, c)| c.queue.front().map(|s| (s.id, k.clone())))
            .collect();
        ready.sort();
        for (_, c) in ready {
            if io.limiter.admit(&[Bucket::Channel(c.clone())], now_ms).is_err() {
                continue;
            }
            let ch = self.channels.get_mut(&c).expect("listed above");
            let mut send = ch.queue.pop_front().expect("non-empty");
            send.sent_ms = now_ms;
            let frame = wire::message(&c, &send.content, send.content_type.as_deref());
            ch.unacked = Some(send);
            self.inflight = Some(Inflight::Send(c));
            return self.send_frame(conn, frame, now_ms, io);
        }
    }

    /// `message_ack`: the send awaiting its answer was stored. `Err` when none waits.
    pub(super) fn on_ack(&mut self, id: String, timestamp: Option<String>, io: &mut Io) -> Result<(), &'static str> {
        let Some(Inflight::Send(c)) = self.inflight.take_if(|i| matches!(i, Inflight::Send(_))) else { return Err("no_request") };
        let remember = self.config.dedupe_bytes;
        let ch = self.channels.get_mut(&c).ok_or("no_request")?;
        let send = ch.unacked.take().ok_or("no_request")?;
        ch.remember(&id, remember);
        if let Some(ts) = &timestamp
            && ch.cursor.as_ref().is_none_or(|(_, cur)| !older(ts, cur))
        {
            ch.cursor = Some((id.clone(), ts.clone()));
            if let Some(acks) = ch.acks.as_mut() {
                acks.delivered(&id, ts, true);
            }
        }
        io.limiter.accepted(&Bucket::Channel(c.clone()));
        self.moves += 1;
        io.out.event(RealtimeEvent::MessageSent { send_id: send.id, channel: c, id, timestamp });
        Ok(())
    }

    /// `vouch_ack` (answers `vouch` and `vouch_revoke`) or `flag_ack`. `Err` when no such op waits.
    pub(super) fn on_trust_ack(&mut self, kind: &str, frame: &Value, io: &mut Io) -> Result<(), &'static str> {
        let answers = |op: TrustOp| match kind {
            "vouch_ack" => matches!(op, TrustOp::Vouch | TrustOp::VouchRevoke),
            _ => op == TrustOp::Flag,
        };
        let Some(Inflight::Trust(call)) = self.inflight.take_if(|i| matches!(i, Inflight::Trust(t) if answers(t.op))) else { return Err("no_request") };
        io.out.event(RealtimeEvent::TrustSucceeded { call_id: call.id, op: call.op, target: call.target, ack: frame.clone() });
        Ok(())
    }

    /// An `error` frame: a subscription's failure (it names the channel), the failure of the
    /// request awaiting its answer, or a server error. A rate-limit refusal requeues the send;
    /// it is never dropped.
    pub(super) fn on_error(&mut self, frame: &Value, channel: Option<String>, now_ms: u64, io: &mut Io) {
        let code = frame.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN").to_owned();
        let message = wire::public_text(frame.get("message").and_then(Value::as_str).unwrap_or_default());
        if let Some(c) = channel.as_ref().filter(|_| code == "SUBSCRIBE_FAILED") {
            return self.on_subscribe_failed(c.clone(), code, message, io);
        }
        // Only codes that can answer the kind of request waiting are matched to it (and an
        // error naming a channel, which the recorded server does not send, only to a send there).
        let fits = |i: &Inflight| match (i, &channel) {
            (Inflight::Send(c), Some(named)) => c == named,
            (Inflight::Send(_), None) => code != "TRUST_ERROR",
            (Inflight::Trust(_), named) => named.is_none() && code != "NOT_SUBSCRIBED",
        };
        let inflight = if CONNECTION_CODES.contains(&code.as_str()) { None } else { self.inflight.take_if(|i| fits(i)) };
        match inflight {
            None => io.out.event(RealtimeEvent::ServerError { code, message, channel }),
            Some(Inflight::Trust(call)) => io.out.event(call.failed(&code, &message)),
            Some(Inflight::Send(c)) => self.send_refused(c, code, message, now_ms, io),
        }
    }

    /// The send in `c` was refused: requeued (rate limit; not subscribed, once) or failed.
    fn send_refused(&mut self, c: String, code: String, message: String, now_ms: u64, io: &mut Io) {
        let Some(ch) = self.channels.get_mut(&c) else { return };
        let Some(mut send) = ch.unacked.take() else { return };
        let id = send.id;
        if code == "HANDLER_ERROR" && message.to_ascii_lowercase().contains("rate limit") {
            // Requeue at the front, never drop; the channel learns its (tier) limit.
            let bucket = Bucket::Channel(c.clone());
            let until_ms = io.limiter.rejected(&bucket, RateHeaders::default(), now_ms);
            ch.queue.push_front(send);
            let waiting = ch.queue.len();
            io.out.event(RealtimeEvent::SendRetrying { send_id: id, channel: c, code, message });
            io.out.event(crate::chats::ChatsEvent::Throttled { call_id: id, bucket, until_ms, waiting, rejected: true });
        } else if code == "NOT_SUBSCRIBED" && !send.resubscribed && ch.want {
            // The server dropped the subscription (an `unsubscribe` on another socket of the
            // agent does that): subscribe again, then resend.
            send.resubscribed = true;
            ch.queue.push_front(send);
            ch.confirmed = false;
            io.out.event(RealtimeEvent::SendRetrying { send_id: id, channel: c.clone(), code, message });
            if let Some(conn) = self.current_conn() {
                self.send_frame(conn, wire::subscribe(std::slice::from_ref(&c)), now_ms, io);
            }
        } else {
            io.out.event(RealtimeEvent::SendFailed { send_id: id, channel: c, code, message });
        }
    }

    /// `SUBSCRIBE_FAILED`: the channel is no longer wanted and its waiting sends fail.
    fn on_subscribe_failed(&mut self, c: String, code: String, message: String, io: &mut Io) {
        if let Some(ch) = self.channels.get_mut(&c) {
            ch.want = false;
            ch.confirmed = false;
            ch.backfill = None;
            ch.held.clear();
            for send in ch.limbo.take().into_iter().chain(ch.queue.drain(..)) {
                io.out.event(RealtimeEvent::SendFailed { send_id: send.id, channel: c.clone(), code: code.clone(), message: message.clone() });
            }
        }
        self.channels.retain(|_, ch| !ch.idle());
        io.out.event(RealtimeEvent::SubscribeFailed { channel: c, code, message });
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

    /// Trust ops not yet sent fail (the session stopped).
    pub(super) fn fail_trust_queue(&mut self, code: &str, message: &str, io: &mut Io) {
        for call in self.trust_queue.drain(..) {
            io.out.event(call.failed(code, message));
        }
    }
}

/// After a reconnect's backfill (`list`, oldest first): a send in limbo that the server
/// stored is adopted (its id, no resend); otherwise it goes first in the queue.
pub(super) fn settle_limbo(ch: &mut Channel, channel: &str, list: &[Message], me: Option<&str>, remember: usize, io: &mut Io) {
    let Some(send) = ch.limbo.take() else { return };
    let stored = list.iter().find(|m| {
        me.is_some() && m.author_id() == me && m.content() == Some(send.content.as_str()) && !m.id().is_some_and(|id| ch.seen.contains(id))
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
