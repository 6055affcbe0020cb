//! Agent turns: one at a time, in order, each with an idempotency key reused on every resend,
//! so a resend after a reconnect joins the run still in flight. A turn ends with its reply
//! or a clear failure (with the partial text), never silently.

use super::link::Link;
use super::{GatewayClient, GatewayEvent, TurnId};
use crate::gateway::wire::{self, ChatPayload, Frame, WireError};
use serde_json::Value;

/// Where one turn stands.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Phase {
    Queued,
    /// `chat.send` is out as request `req`.
    Sent { req: String },
    Running { run_id: String },
}

/// One agent turn, queued or in flight.
#[derive(Debug, Clone)]
pub(super) struct Turn {
    pub(super) id: TurnId,
    pub(super) message: String,
    pub(super) key: String,
    pub(super) attempts: u32,
    pub(super) phase: Phase,
    pub(super) text: String,
    pub(super) last_ms: u64,
}

impl Turn {
    pub(super) fn partial(&self) -> Option<String> {
        (!self.text.is_empty()).then(|| self.text.clone())
    }
    fn owns_run(&self, run_id: &str) -> bool {
        run_id == self.key || matches!(&self.phase, Phase::Running { run_id: r } if r == run_id)
    }
}

impl GatewayClient {
    fn on_response(&mut self, frame: Frame<'_>, now_ms: u64) {
        let Some(turn) = self.current.as_mut() else { return };
        if !matches!(&turn.phase, Phase::Sent { req } if Some(req.as_str()) == frame.id.as_deref()) {
            return;
        }
        turn.last_ms = now_ms;
        if frame.ok == Some(true) {
            let payload = frame.payload_value().unwrap_or(Value::Null);
            let run_id = payload.get("runId").and_then(Value::as_str).unwrap_or(&turn.key).to_owned();
            let status = payload.get("status").and_then(Value::as_str).unwrap_or("started").to_owned();
            let (id, resent) = (turn.id, turn.attempts > 1);
            if status == "ok" && resent {
                // The run finished while we were disconnected: its reply went to the old socket.
                let turn = self.current.take().expect("current turn");
                let reason = "the gateway finished this turn while the connection was down; its reply was not received".to_owned();
                return self.event(GatewayEvent::TurnFailed { turn: id, reason, partial: turn.partial() });
            }
            turn.phase = Phase::Running { run_id: run_id.clone() };
            self.event(GatewayEvent::TurnStarted { turn: id, run_id, status });
        } else {
            let error = frame.error.unwrap_or_default();
            self.turn_refused(error, now_ms);
        }
    }

    fn turn_refused(&mut self, error: WireError, now_ms: u64) {
        let mut turn = self.current.take().expect("current turn");
        if error.retryable == Some(true) && turn.attempts < self.config.timing.max_attempts {
            turn.phase = Phase::Queued;
            turn.last_ms = now_ms.saturating_add(error.retry_after_ms.unwrap_or(0));
            self.event(GatewayEvent::TurnRetrying { turn: turn.id, attempt: turn.attempts + 1 });
            self.queue.push_front(turn);
        } else {
            let reason = format!("chat.send refused ({}): {}", error.specific_code(), error.text());
            self.event(GatewayEvent::TurnFailed { turn: turn.id, reason, partial: turn.partial() });
        }
    }

    fn on_chat(&mut self, payload: ChatPayload<'_>, now_ms: u64) {
        let Some(turn) = self.current.as_mut() else { return };
        if let Some(key) = payload.session_key.as_deref()
            && !wire::same_session(&self.config.session_key, key)
        {
            return;
        }
        match payload.run_id.as_deref() {
            Some(run_id) if !turn.owns_run(run_id) => return,
            // Without a run id, only a turn the gateway already accepted can claim the event.
            None if !matches!(turn.phase, Phase::Running { .. }) => return,
            _ => {}
        }
        turn.last_ms = now_ms;
        let run_id = payload.run_id.as_deref().unwrap_or(&turn.key).to_owned();
        let state = payload.state.as_deref().unwrap_or_default();
        let cumulative = payload.message.as_ref().and_then(wire::message_text);
        match state {
            "delta" => match (cumulative, payload.delta_text) {
                (Some(full), _) => turn.text = full,
                (None, Some(delta)) => turn.text.push_str(&delta),
                (None, None) => {}
            },
            "final" => {
                let turn = self.current.take().expect("current turn");
                let text = cumulative.filter(|t| !t.is_empty()).unwrap_or(turn.text);
                self.event(GatewayEvent::TurnReply { turn: turn.id, run_id, text });
            }
            "aborted" | "error" => {
                let turn = self.current.take().expect("current turn");
                let detail = payload.error_message.as_deref().unwrap_or("no detail");
                let reason = format!("the run ended with {state}: {detail}");
                self.event(GatewayEvent::TurnFailed { turn: turn.id, reason, partial: turn.partial() });
            }
            _ => {} // status phases: signs of life only
        }
    }

    /// Send the next turn when the link is ready and nothing is in flight.
    pub(super) fn step(&mut self, now_ms: u64) {
        let Link::Ready { conn, .. } = self.link else { return };
        if self.current.is_some() {
            return;
        }
        let Some(front) = self.queue.front() else { return };
        if front.last_ms > now_ms && front.attempts > 0 {
            return; // a refused send waits for its retryAfterMs
        }
        let mut turn = self.queue.pop_front().expect("front exists");
        turn.attempts += 1;
        turn.last_ms = now_ms;
        let req = self.req_id();
        let text = wire::chat_send_request(&req, &self.config.session_key, &turn.message, &turn.key);
        self.out.ws_send(conn, text);
        turn.phase = Phase::Sent { req };
        self.current = Some(turn);
    }

    /// The connection is gone: put the turn in flight back for a resend, back off, reconnect.
    pub(super) fn requeue_current(&mut self, report: bool) {
        let Some(mut turn) = self.current.take() else { return };
        if turn.attempts >= self.config.timing.max_attempts {
            let reason = format!("the connection to the gateway was lost {} times during this turn", turn.attempts);
            return self.event(GatewayEvent::TurnFailed { turn: turn.id, reason, partial: turn.partial() });
        }
        turn.phase = Phase::Queued;
        turn.last_ms = 0;
        if report {
            self.event(GatewayEvent::TurnRetrying { turn: turn.id, attempt: turn.attempts + 1 });
        }
        self.queue.push_front(turn);
    }

    pub(super) fn fail_all(&mut self, reason: &str) {
        let turns: Vec<Turn> = self.current.take().into_iter().chain(self.queue.drain(..)).collect();
        for turn in turns {
            self.event(GatewayEvent::TurnFailed { turn: turn.id, reason: reason.to_owned(), partial: turn.partial() });
        }
    }

    /// A frame on a ready link: a response to `chat.send`, or a run's events.
    pub(super) fn on_frame(&mut self, frame: Frame<'_>, now_ms: u64) {
        match frame.kind.as_ref() {
            "res" => self.on_response(frame, now_ms),
            "event" if frame.event.as_deref() == Some("chat") => match frame.chat_payload() {
                Ok(payload) => self.on_chat(payload, now_ms),
                Err(message) => self.event(GatewayEvent::GatewayProtocolError { message }),
            },
            // Tool calls and thinking stream as `agent` events: signs of life for a long turn.
            "event" if frame.event.as_deref() == Some("agent") => {
                if let (Ok(payload), Some(turn)) = (frame.chat_payload(), self.current.as_mut())
                    && payload.run_id.as_deref().is_some_and(|r| turn.owns_run(r))
                {
                    turn.last_ms = now_ms;
                }
            }
            _ => {} // ticks (already counted as life) and events we do not use
        }
    }

    /// A turn whose `final` never came (no sign of life for `turn_idle_ms`) fails.
    pub(super) fn turn_timeout(&mut self, now_ms: u64) {
        let idle_ms = self.config.timing.turn_idle_ms;
        if let Some(turn) = &self.current
            && matches!(turn.phase, Phase::Sent { .. } | Phase::Running { .. })
            && now_ms >= turn.last_ms + idle_ms
        {
            let turn = self.current.take().expect("checked above");
            let reason = format!("no final reply within {} s (lost final)", idle_ms / 1000);
            self.event(GatewayEvent::TurnFailed { turn: turn.id, reason, partial: turn.partial() });
        }
    }
}
