//! The link: opening a socket with the current token, what each close code means, capped
//! jittered reconnect backoff, and the clock of an open link (pings, silence, lost acks, the
//! pending poll). The transitions themselves are chosen in `mod.rs` (`link_input`).

use super::{Io, Need, Realtime, RealtimeEvent, wire};
use crate::chats::limiter::{Bucket, Limiter};
use crate::chats::rest::ChatsCommand;
use crate::io::{ConnId, Secret};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Link {
    Off,
    NeedToken,
    Backoff { until_ms: u64 },
    Opening { conn: ConnId, generation: u64 },
    Open { conn: ConnId, generation: u64, opened_ms: u64, last_out_ms: u64, last_in_ms: u64 },
    Fatal,
}

/// What moves the link.
pub(super) enum LinkInput<'a> {
    /// The host asked to connect (again, after a fatal close).
    Connect,
    /// The host asked to disconnect.
    Disconnect,
    /// The clock ran: a backoff may be over, a token may be there.
    Due,
    /// The host opened connection `conn`.
    Opened(ConnId),
    /// Connection `conn` closed (by the server, the network, or our own watchdogs).
    Closed { conn: ConnId, code: u16, reason: &'a str },
}

impl Realtime {
    /// Open a socket with the usable token, if there is one.
    pub(super) fn open_socket(&mut self, io: &mut Io) -> Option<Link> {
        let (jwt, generation) = io.token?;
        let sep = if self.ws_base.contains('?') { '&' } else { '?' };
        let url = Secret::new(format!("{}{sep}token={}", self.ws_base, jwt.expose()));
        self.epoch += 1;
        let conn = io.out.ws_open(url);
        Some(Link::Opening { conn, generation })
    }

    /// The socket is open: say so, resubscribe, start polling pending activity.
    pub(super) fn opened(&mut self, conn: ConnId, generation: u64, now_ms: u64, io: &mut Io) -> Link {
        io.out.event(RealtimeEvent::Connected { conn });
        let wanted: Vec<String> = self.channels.iter().filter(|(_, c)| c.want).map(|(k, _)| k.clone()).collect();
        if !wanted.is_empty() {
            io.out.ws_send(conn, wire::subscribe(&wanted).to_string());
        }
        self.next_poll_ms = self.config.pending_poll_ms.map(|_| now_ms);
        self.poll_every_ms = self.config.pending_poll_min_ms;
        Link::Open { conn, generation, opened_ms: now_ms, last_out_ms: now_ms, last_in_ms: now_ms }
    }

    /// The socket closed: 4003 is fatal (queued sends fail), 4001 hands the token back to the
    /// auth session and reconnects at once (then with backoff), 4002 reconnects at once,
    /// anything else backs off. `opened_ms` is set when the link was open.
    pub(super) fn closed(&mut self, opened_ms: Option<u64>, generation: u64, code: u16, reason: &str, now_ms: u64, io: &mut Io) -> Link {
        if opened_ms.is_some_and(|at| now_ms.saturating_sub(at) >= self.config.stable_after_ms) {
            self.attempt = 0;
        }
        self.drop_connection(io);
        let retry_at_ms = match code {
            4003 => {
                self.fail_all_sends(io);
                self.fail_trust_queue("AGENT_QUARANTINED", "the session was closed with 4003", io);
                io.out.event(RealtimeEvent::RealtimeFatal { code, reason: reason.to_owned() });
                return Link::Fatal;
            }
            4001 => {
                // The token is revoked or expired: the auth session gets a new one (one
                // refresh, even if one is already running), then we reconnect with it.
                *io.reject_generation = Some(generation);
                self.attempt += 1;
                if self.attempt <= 1 { None } else { Some(self.backoff(now_ms)) }
            }
            4002 => None,
            _ => {
                self.attempt += 1;
                Some(self.backoff(now_ms))
            }
        };
        io.out.event(RealtimeEvent::Disconnected { code, reason: reason.to_owned(), retry_at_ms: retry_at_ms.or(Some(now_ms)) });
        match retry_at_ms {
            Some(until_ms) => Link::Backoff { until_ms },
            None => Link::NeedToken,
        }
    }

    /// The clock of an open link: watchdogs (silence, lost ack), queued sends, ping, poll.
    pub(super) fn tick_open(&mut self, conn: ConnId, last_out_ms: u64, last_in_ms: u64, now_ms: u64, io: &mut Io) {
        if now_ms >= last_in_ms + self.config.silence_ms {
            io.out.ws_close(conn, 4000, "no traffic");
            return self.handle_closed(conn, 1006, "no traffic from the server", now_ms, io);
        }
        let lost_ack = self.inflight_sent_ms().is_some_and(|sent| now_ms >= sent + self.config.ack_timeout_ms);
        if lost_ack {
            io.out.ws_close(conn, 4000, "ack timeout");
            return self.handle_closed(conn, 1006, "no ack from the server", now_ms, io);
        }
        self.release(conn, now_ms, io);
        if let Link::Open { last_out_ms: last, .. } = self.link
            && now_ms >= last.max(last_out_ms) + self.config.ping_interval_ms
        {
            self.send_frame(conn, wire::ping(), now_ms, io);
        }
        if std::mem::take(&mut self.poll_soon) {
            self.expect_activity(now_ms);
        }
        if let Some(at) = self.next_poll_ms
            && now_ms >= at
            && !self.poll_in_flight
        {
            // The next poll is planned when this one's answer arrives (`on_pending`).
            self.poll_in_flight = true;
            self.next_poll_ms = Some(now_ms + self.poll_every_ms);
            io.needs.push(Need::Pending { command: ChatsCommand::Pending { since: self.since.clone() } });
        }
    }

    /// The earliest time `step` has something to do.
    pub fn deadline(&self, limiter: &mut Limiter, now_ms: u64) -> Option<u64> {
        match &self.link {
            Link::Backoff { until_ms } => Some(*until_ms),
            Link::Open { last_out_ms, last_in_ms, .. } => {
                let mut at = (last_out_ms + self.config.ping_interval_ms).min(last_in_ms + self.config.silence_ms);
                match self.inflight_sent_ms() {
                    Some(sent) => at = at.min(sent + self.config.ack_timeout_ms),
                    None => {
                        for (c, ch) in &self.channels {
                            if !ch.queue.is_empty() && ch.confirmed && ch.backfill.is_none() && ch.limbo.is_none() {
                                at = at.min(limiter.ready_at(&[Bucket::Channel(c.clone())], now_ms));
                            }
                        }
                    }
                }
                if let Some(p) = self.next_poll_ms.filter(|_| !self.poll_in_flight) {
                    at = at.min(p);
                }
                Some(at)
            }
            _ => None,
        }
    }

    /// Forget everything tied to the current connection; the unacked send goes to limbo, a
    /// trust op awaiting its answer fails (it may have been applied: never resent blindly).
    pub(super) fn drop_connection(&mut self, io: &mut Io) {
        if let Some(super::Inflight::Trust(call)) = self.inflight.take() {
            let message = "the socket closed before the server answered; the operation may have been applied";
            io.out.event(call.failed("CONNECTION_LOST", message));
        }
        self.last_subscribed = None;
        self.poll_in_flight = false;
        for ch in self.channels.values_mut() {
            ch.confirmed = false;
            if let Some(bf) = ch.backfill.take() {
                // Pages collected so far are refetched after the reconnect.
                drop(bf);
            }
            if let Some(send) = ch.unacked.take() {
                ch.limbo = Some(send);
            }
        }
        self.epoch += 1;
    }

    fn backoff(&mut self, now_ms: u64) -> u64 {
        let backoff = crate::io::Backoff { base_ms: self.config.backoff_base_ms, cap_ms: self.config.backoff_cap_ms };
        now_ms + backoff.delay_ms(self.attempt, &mut self.rng)
    }
}

/// The WebSocket base for an API base: `/api/v1` → `/ws`, http → ws, https → wss.
pub fn default_ws_base(api_base: &str) -> String {
    let swapped = match api_base.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some(("http", rest)) => format!("ws://{rest}"),
        _ => api_base.to_owned(),
    };
    match swapped.strip_suffix("/api/v1") {
        Some(prefix) => format!("{prefix}/ws"),
        None => format!("{}/ws", swapped.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_base_from_api_base() {
        assert_eq!(default_ws_base("https://moltchats.com/api/v1"), "wss://moltchats.com/ws");
        assert_eq!(default_ws_base("http://127.0.0.1:8787/moltchats/api/v1"), "ws://127.0.0.1:8787/moltchats/ws");
        assert_eq!(default_ws_base("http://h/x/"), "ws://h/x/ws");
    }

}
