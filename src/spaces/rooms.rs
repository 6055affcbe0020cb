//! Rooms: registration, search, create, token, and `join` (search → the liveliest room's
//! token, or create one), then keeping the meeting token fresh before it expires or at once
//! after a drop. Transient failures (transport, 429, 5xx) are retried on a fixed doubling
//! schedule (`backoff_ms` × 2^attempt, or the server's Retry-After): deterministic, so hosts
//! and tests can tell when the next try comes.

use super::event::{self, SpacesEvent, TicketReason};
use super::turns::TurnInput;
use super::{Purpose, SpacesClient, config, local, parse};
use crate::error::{Error, ErrorCode, Result};
use crate::io::{ApiError, CallEvent, CallId, RequestId, Secret, Ticket, parse_json_body};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// Characters kept as-is in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The step of a join in flight or waiting for its retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Search,
    Token(String),
    Create,
}

#[derive(Debug)]
pub(super) enum Phase {
    InFlight,
    Retry { at: u64, step: Step },
    Joined { rejoin_at: u64 },
}

/// The room this client is in or joining.
#[derive(Debug)]
pub(super) struct Membership {
    pub(super) call: CallId,
    pub(super) topic: String,
    pub(super) ticket: Option<event::Ticket>,
    pub(super) phase: Phase,
    pub(super) attempt: u32,
}

fn retryable(e: &ApiError) -> bool {
    e.status == 0 || e.status == 429 || e.status >= 500
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

impl SpacesClient {
    /// Both generations' bodies in one: `description` for older servers, `bio` and
    /// `metadata.initial_voice_id` for newer ones (each reads its own fields).
    pub(super) fn register(&mut self, name: String, description: &str, bio: Option<String>) -> Result<CallId> {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid_argument("name must be 1-64 characters without control characters"));
        }
        if description.chars().count() > 1000 {
            return Err(Error::invalid_argument("description is over 1000 characters"));
        }
        let bio = match bio {
            Some(bio) if bio.chars().count() >= 160 => return Err(Error::invalid_argument("bio must be under 160 characters")),
            Some(bio) => Some(bio),
            None => Some(description.to_owned()).filter(|d| !d.is_empty() && d.chars().count() < 160),
        };
        let call = self.call_id();
        let mut body = json!({ "name": name, "description": description, "metadata": { "initial_voice_id": self.cfg.voice_id } });
        if let Some(bio) = bio {
            body["bio"] = json!(bio);
        }
        self.send_api(http::Method::POST, "/agents/register", Some(&body), false, Purpose::Register { call, name })?;
        Ok(call)
    }

    pub(super) fn search(&mut self, topic: &str) -> Result<CallId> {
        let topic = check_topic(topic)?;
        let call = self.call_id();
        let path = format!("/rooms/{}", utf8_percent_encode(&topic, SEGMENT));
        self.send_api(http::Method::GET, &path, None, true, Purpose::Search { call, topic })?;
        Ok(call)
    }

    pub(super) fn create(&mut self, topic: &str) -> Result<CallId> {
        let topic = check_topic(topic)?;
        let call = self.call_id();
        self.send_api(http::Method::POST, "/rooms", Some(&create_body(&topic)?), true, Purpose::Create { call })?;
        Ok(call)
    }

    pub(super) fn token(&mut self, room: &str) -> Result<CallId> {
        let room = check_topic(room)?;
        let call = self.call_id();
        let path = format!("/rooms/{}/token", utf8_percent_encode(&room, SEGMENT));
        self.send_api(http::Method::POST, &path, None, true, Purpose::Token { call })?;
        Ok(call)
    }

    pub(super) fn join(&mut self, topic: &str, now_ms: u64) -> Result<CallId> {
        let topic = check_topic(topic)?;
        self.need_key()?;
        if let Some(m) = &self.member {
            let room = m.ticket.as_ref().map_or("a room".to_owned(), |t| t.room_name.clone());
            return Err(Error::invalid_state(format!("already joining or in {room}: leave first")));
        }
        let call = self.call_id();
        self.generation += 1;
        self.member = Some(Membership { call, topic, ticket: None, phase: Phase::InFlight, attempt: 1 });
        self.send_step(Step::Search, now_ms)?;
        Ok(call)
    }

    pub(super) fn leave(&mut self, now_ms: u64) -> Result<CallId> {
        self.generation += 1;
        let room_name = self.member.take().and_then(|m| m.ticket).map(|t| t.room_name);
        self.interrupt(TurnInput::Cut, now_ms);
        self.out.event(SpacesEvent::SpacesLeft { room_name });
        Ok(0)
    }

    /// The host's transport dropped: a fresh token now.
    pub(super) fn dropped(&mut self, now_ms: u64) -> Result<CallId> {
        let Some(m) = &mut self.member else { return Err(Error::invalid_state("not in a room")) };
        if let (Phase::Joined { .. }, Some(t)) = (&m.phase, &m.ticket) {
            let step = Step::Token(t.room_name.clone());
            m.attempt = 1;
            self.send_step(step, now_ms)?;
        }
        Ok(0)
    }

    pub(super) fn need_key(&self) -> Result<&Secret<String>> {
        self.cfg.api_key.as_ref().ok_or_else(|| {
            Error::new(ErrorCode::NotRegistered, "no Moltspaces API key: set MOLTSPACES_API_KEY or register first")
        })
    }

    fn send_api(&mut self, method: http::Method, path: &str, body: Option<&Value>, keyed: bool, purpose: Purpose) -> Result<RequestId> {
        let mut request = crate::io::json_request(method, &format!("{}{path}", self.cfg.api_base), None, body)?;
        if keyed {
            let mut value = http::HeaderValue::from_str(self.need_key()?.expose())
                .map_err(|_| Error::invalid_argument("MOLTSPACES_API_KEY contains characters not allowed in a header"))?;
            value.set_sensitive(true);
            request.headers_mut().insert("x-api-key", value);
        }
        let id = self.out.http(request);
        self.in_flight.insert(id, purpose);
        Ok(id)
    }

    fn send_step(&mut self, step: Step, _now_ms: u64) -> Result<()> {
        let generation = self.generation;
        let Some(m) = &mut self.member else { return Ok(()) };
        m.phase = Phase::InFlight;
        let topic = m.topic.clone();
        let purpose = Purpose::Join { generation, step: step.clone() };
        match step {
            Step::Search => self.send_api(http::Method::GET, &format!("/rooms/{}", utf8_percent_encode(&topic, SEGMENT)), None, true, purpose),
            Step::Token(room) => self.send_api(http::Method::POST, &format!("/rooms/{}/token", utf8_percent_encode(&room, SEGMENT)), None, true, purpose),
            Step::Create => self.send_api(http::Method::POST, "/rooms", Some(&create_body(&topic)?), true, purpose),
        }
        .map(|_| ())
    }

    pub(super) fn ticket_from(&self, body: &Value) -> Option<event::Ticket> {
        let (room_url, token, room_name) = parse::ticket_parts(body)?;
        let expires_at_ms = crate::io::jwt::read_times(&token).map(|t| t.exp.saturating_mul(1000));
        Some(event::Ticket { room_url, token, room_name, expires_at_ms: expires_at_ms.unwrap_or(0) })
    }

    /// The answer to a Moltspaces API request (404 on a search is an empty list).
    pub(super) fn on_api_response(&mut self, purpose: Purpose, response: http::Response<Vec<u8>>, now_ms: u64) {
        let status = response.status().as_u16();
        let outcome = if status == 404 && matches!(purpose, Purpose::Search { .. } | Purpose::Join { step: Step::Search, .. }) {
            Ok(Value::Null)
        } else if response.status().is_success() {
            parse_json_body(&response)
        } else {
            let mut e = ApiError::from_moltbook(status, response.body());
            if status >= 500 {
                // A server error's text can carry raw SQL and parameters: status and code only.
                e.message = format!("the server failed (HTTP {status}); its error text is withheld");
            }
            if status == 429
                && let Some(s) = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            {
                e.code.get_or_insert_with(|| format!("RETRY_AFTER_{s}"));
            }
            Err(e)
        };
        self.finish_api(purpose, outcome, now_ms);
    }

    pub(super) fn finish_api(&mut self, purpose: Purpose, outcome: std::result::Result<Value, ApiError>, now_ms: u64) {
        let ev = |e: SpacesEvent| e;
        match (purpose, outcome) {
            (Purpose::Join { generation, step }, outcome) => {
                if generation == self.generation {
                    self.join_step_done(step, outcome, now_ms);
                }
            }
            (Purpose::Register { call, name }, Ok(body)) => match parse::registration(&body) {
                Some(r) if !r.api_key.bytes().any(|b| !(0x21..0x7f).contains(&b)) => {
                    let (agent_id, name) = (clean(&r.agent_id), clean(&r.name.unwrap_or(name)));
                    let key = Secret::new(r.api_key);
                    let bytes = config::registration_env(key.expose(), &agent_id, &name);
                    let ticket = self.out.persist(Secret::new(bytes));
                    self.saving = Some(super::Saving { ticket, call, key, agent_id, name, claim_url: r.claim_url });
                }
                _ => self.out.event(CallEvent::CallFailed {
                    call_id: call,
                    error: local("BAD_RESPONSE", "the registration answer carried no usable agent.api_key and agent.agent_id"),
                }),
            },
            (Purpose::Search { call, topic }, Ok(body)) => {
                let rooms = parse::rooms(&body);
                let body = Some(body).filter(|b| !b.is_null());
                self.out.event(ev(SpacesEvent::SpacesRooms { call_id: call, topic, rooms, body }))
            }
            (Purpose::Create { call }, Ok(body)) => self.emit_ticket(call, TicketReason::Create, &body, now_ms),
            (Purpose::Token { call }, Ok(body)) => self.emit_ticket(call, TicketReason::Token, &body, now_ms),
            (Purpose::Register { call, .. } | Purpose::Search { call, .. } | Purpose::Create { call } | Purpose::Token { call }, Err(error)) => {
                self.out.event(CallEvent::CallFailed { call_id: call, error })
            }
            (Purpose::Stt | Purpose::Tts { .. }, _) => {}
        }
    }

    fn emit_ticket(&mut self, call: CallId, reason: TicketReason, body: &Value, now_ms: u64) {
        match self.ticket_from(body) {
            Some(mut ticket) => {
                if ticket.expires_at_ms == 0 {
                    ticket.expires_at_ms = now_ms.saturating_add(self.cfg.token_lifetime_ms);
                }
                let room = room_object(body);
                self.out.event(SpacesEvent::SpacesTicket { call_id: call, reason, ticket, topic: None, room })
            }
            None => self.out.event(CallEvent::CallFailed { call_id: call, error: bad_ticket() }),
        }
    }

    fn join_step_done(&mut self, step: Step, outcome: std::result::Result<Value, ApiError>, now_ms: u64) {
        match (step.clone(), outcome) {
            (Step::Search, Ok(body)) => {
                let rooms = parse::rooms(&body);
                let next = match parse::liveliest(&rooms) {
                    Some(room) => Step::Token(room.room_name.clone()),
                    None => Step::Create,
                };
                if let Some(m) = &mut self.member {
                    m.attempt = 1;
                }
                if let Err(e) = self.send_step(next, now_ms) {
                    self.fail_join(local("INVALID", e.message), now_ms);
                }
            }
            (Step::Token(_) | Step::Create, Ok(body)) => match self.ticket_from(&body) {
                Some(ticket) => self.joined(ticket, room_object(&body), now_ms),
                None => self.fail_join(bad_ticket(), now_ms),
            },
            // The room is gone (rejoin) or vanished between search and token: search again.
            (Step::Token(_), Err(e)) if e.status == 404 => {
                let restart = self.member.as_ref().is_some_and(|m| m.attempt < self.cfg.max_attempts);
                if restart {
                    if let Some(m) = &mut self.member {
                        m.attempt += 1;
                    }
                    if let Err(e) = self.send_step(Step::Search, now_ms) {
                        self.fail_join(local("INVALID", e.message), now_ms);
                    }
                } else {
                    self.fail_join(e, now_ms);
                }
            }
            (_, Err(e)) if retryable(&e) => {
                let (max, backoff) = (self.cfg.max_attempts, self.cfg.backoff_ms);
                let Some(m) = &mut self.member else { return };
                if m.attempt >= max {
                    self.fail_join(e, now_ms);
                    return;
                }
                let hinted = e.code.as_deref().and_then(|c| c.strip_prefix("RETRY_AFTER_")?.parse::<u64>().ok()).map(|s| s.saturating_mul(1000));
                let delay = hinted.unwrap_or(backoff.saturating_mul(1 << (m.attempt - 1).min(16)));
                let at = now_ms.saturating_add(delay);
                let call = m.call;
                let attempt = m.attempt;
                m.attempt += 1;
                // A create whose answer was lost may have made the room: look for it again
                // rather than create a second one.
                let step = if step == Step::Create { Step::Search } else { step };
                m.phase = Phase::Retry { at, step };
                self.out.event(SpacesEvent::SpacesRetrying { call_id: call, attempt, retry_at_ms: at, error: e });
            }
            (_, Err(e)) => self.fail_join(e, now_ms),
        }
    }

    pub(super) fn joined(&mut self, mut ticket: event::Ticket, room: Option<Value>, now_ms: u64) {
        if ticket.expires_at_ms == 0 {
            ticket.expires_at_ms = now_ms.saturating_add(self.cfg.token_lifetime_ms);
        }
        let exp = ticket.expires_at_ms;
        let rejoin_at = exp.saturating_sub(self.cfg.rejoin_margin_ms).max(now_ms + exp.saturating_sub(now_ms) / 2);
        let Some(m) = &mut self.member else { return };
        let reason = if m.ticket.is_some() { TicketReason::Rejoin } else { TicketReason::Join };
        m.ticket = Some(ticket.clone());
        m.phase = Phase::Joined { rejoin_at };
        m.attempt = 1;
        let (call, topic) = (m.call, m.topic.clone());
        self.out.event(SpacesEvent::SpacesTicket { call_id: call, reason, ticket, topic: Some(topic), room });
        self.turn(TurnInput::Joined);
    }

    /// The join (or rejoin) cannot go on: report it, and leave.
    fn fail_join(&mut self, error: ApiError, now_ms: u64) {
        let Some(m) = self.member.take() else { return };
        self.generation += 1;
        self.out.event(CallEvent::CallFailed { call_id: m.call, error });
        if let Some(t) = m.ticket {
            self.interrupt(TurnInput::Cut, now_ms);
            self.out.event(SpacesEvent::SpacesLeft { room_name: Some(t.room_name) });
        }
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        match &self.member {
            Some(Membership { phase: Phase::Retry { at, .. }, .. }) => Some(*at),
            Some(Membership { phase: Phase::Joined { rejoin_at }, .. }) => Some(*rejoin_at),
            _ => None,
        }
    }

    /// The host stored the registered key: from now on it is used.
    pub(super) fn on_persisted(&mut self, ticket: Ticket) -> Result<()> {
        match self.saving.take() {
            Some(s) if s.ticket == ticket => {
                self.cfg.api_key = Some(s.key);
                self.cfg.agent_id = Some(s.agent_id.clone());
                self.cfg.agent_name = Some(s.name.clone());
                self.out.event(SpacesEvent::SpacesRegistered { call_id: s.call, agent_id: s.agent_id, name: s.name, claim_url: s.claim_url });
                Ok(())
            }
            other => {
                self.saving = other;
                Err(Error::new(ErrorCode::UnknownId, format!("no persist request with ticket {ticket}")))
            }
        }
    }

    /// A retry is due, or the token is about to expire.
    pub(super) fn on_timeout(&mut self, now_ms: u64) {
        let due = match &self.member {
            Some(Membership { phase: Phase::Retry { at, step }, .. }) if *at <= now_ms => Some(step.clone()),
            Some(Membership { phase: Phase::Joined { rejoin_at }, ticket: Some(t), .. }) if *rejoin_at <= now_ms => {
                Some(Step::Token(t.room_name.clone()))
            }
            _ => None,
        };
        if let Some(step) = due {
            if let Some(m) = &mut self.member
                && matches!(m.phase, Phase::Joined { .. })
            {
                m.attempt = 1;
            }
            if let Err(e) = self.send_step(step, now_ms) {
                self.fail_join(local("INVALID", e.message), now_ms);
            }
        }
    }
}

/// The newer create answer's `room{title, room_name, room_url, created_at}`, verbatim.
fn room_object(body: &Value) -> Option<Value> {
    body.get("room").filter(|r| r.is_object()).cloned()
}

/// `POST /rooms`: older servers read `topic`, newer ones `room_name` (under 100 characters).
fn create_body(topic: &str) -> Result<Value> {
    if topic.chars().count() >= 100 {
        return Err(Error::invalid_argument("a new room's name (its topic) must be under 100 characters"));
    }
    Ok(json!({ "topic": topic, "room_name": topic }))
}

fn bad_ticket() -> ApiError {
    local("BAD_RESPONSE", "the answer carried no room_url/token")
}

fn check_topic(topic: &str) -> Result<String> {
    let topic = topic.trim();
    if topic.is_empty() || topic.chars().count() > 200 || topic.chars().any(char::is_control) {
        return Err(Error::invalid_argument("topic/room must be 1-200 characters without control characters"));
    }
    Ok(topic.to_owned())
}

