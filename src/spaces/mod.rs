//! Moltspaces (PROTOCOL.md §3): find or open a voice room on a topic, hand the host a Daily
//! join ticket, keep its meeting token fresh, and hold the spoken conversation's turns.
//!
//! [`SpacesClient`] is sans-IO like the other clients: commands in, `poll_output` out.
//! - Rooms: `join {topic}` = search → the liveliest room's token, or create one when there
//!   is none (404 = none). The ticket's token is renewed before it expires (JWT `exp`, else
//!   [`config::DEFAULT_TOKEN_LIFETIME_MS`]) or at once when the host reports a drop.
//!   Transient failures (transport, 429, 5xx) are retried with doubling backoff.
//! - Voice: the host hands in each utterance WAV from the audio pipeline; the core builds
//!   the OpenAI transcription request, reports the transcript, takes the agent's reply text,
//!   builds the ElevenLabs streaming TTS request and hands the PCM back (`take_audio`) for
//!   the pipeline's playback. Barge-in cuts the turn. Turn states and per-stage latencies
//!   are events.

pub mod config;
pub mod event;
pub mod parse;
pub mod voice;
#[cfg(test)]
mod tests;

pub use config::{SpacesConfig, SpacesOptions};
pub use event::{Latency, Room, SpacesEvent, Ticket as JoinTicket, TicketReason, TurnState};

use crate::error::{Error, ErrorCode, Result};
use crate::io::{ApiError, CallEvent, CallId, ConnId, Outbox, Output, RequestId, SansIo, Secret, Ticket, Untrusted, parse_json_body};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Characters kept as-is in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// OpenAI's upload limit.
const MAX_WAV_BYTES: usize = 25 << 20;
/// TTS audio kept for one turn (24 kHz × 2 bytes × 10 min).
const MAX_TTS_SAMPLES: usize = 24_000 * 600;

/// A command, as hosts and adapters send it: `{"command":"join","topic":"web3 builders"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum SpacesCommand {
    /// `POST /agents/register`; the key is persisted, then used.
    Register { name: String, description: String },
    /// `GET /rooms/:topic` → `spaces_rooms` (404 = an empty list).
    Search { topic: String },
    /// `POST /rooms {topic}` → `spaces_ticket` (reason `create`).
    Create { topic: String },
    /// `POST /rooms/:room/token` → `spaces_ticket` (reason `token`).
    Token { room: String },
    /// Search → liveliest → token, or create; then keep the token fresh.
    Join { topic: String },
    /// Leave the room (the host hangs up its transport on `spaces_left`).
    Leave {},
    /// The host's transport dropped: fetch a fresh token now (`spaces_ticket`, reason `rejoin`).
    Dropped {},
    /// The agent's answer to the last transcript (or unprompted speech): synthesise it.
    Reply { text: String },
    /// The agent does not answer the last transcript: the turn ends, back to listening.
    Skip {},
    /// The pipeline reported barge-in: the user spoke over the agent.
    BargeIn {},
    /// The pipeline's playback queue played out.
    PlaybackFinished {},
}

impl SpacesCommand {
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::invalid_argument(format!("invalid spaces command: {e}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Search,
    Token(String),
    Create,
}

#[derive(Debug)]
enum Phase {
    InFlight,
    Retry { at: u64, step: Step },
    Joined { rejoin_at: u64 },
}

/// The room this client is in or joining.
#[derive(Debug)]
struct Membership {
    call: CallId,
    topic: String,
    ticket: Option<event::Ticket>,
    phase: Phase,
    attempt: u32,
}

#[derive(Debug)]
enum Purpose {
    Register { call: CallId, name: String },
    Search { call: CallId, topic: String },
    Create { call: CallId },
    Token { call: CallId },
    /// A step of the current join; `generation` tells a stale answer (after leave) apart.
    Join { generation: u64, step: Step },
    Stt,
    Tts { turn: u64 },
}

#[derive(Debug, Default)]
struct Voice {
    turn: u64,
    state: Option<TurnState>,
    stt: Option<RequestId>,
    tts: Option<RequestId>,
    tts_done: bool,
    awaiting_reply: bool,
    pcm: voice::PcmAssembler,
    taken_any: bool,
    utterance_at: u64,
    transcript_at: Option<u64>,
    reply_at: u64,
    first_byte_at: Option<u64>,
    latency: Latency,
}

pub struct SpacesClient {
    cfg: SpacesConfig,
    out: Outbox<SpacesEvent>,
    next_call: CallId,
    in_flight: BTreeMap<RequestId, Purpose>,
    /// Registration waiting for the host to acknowledge its persist: (ticket, call, key, id, name).
    saving: Option<(Ticket, CallId, Secret<String>, String, String)>,
    member: Option<Membership>,
    generation: u64,
    voice: Voice,
}

impl std::fmt::Debug for SpacesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpacesClient").field("config", &self.cfg).field("member", &self.member).finish_non_exhaustive()
    }
}

fn local(code: &str, message: impl Into<String>) -> ApiError {
    ApiError { status: 0, code: Some(code.to_owned()), message: message.into() }
}

fn retryable(e: &ApiError) -> bool {
    e.status == 0 || e.status == 429 || e.status >= 500
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

impl SpacesClient {
    pub fn new(mut config: SpacesConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            cfg: config,
            out: Outbox::default(),
            next_call: 0,
            in_flight: BTreeMap::new(),
            saving: None,
            member: None,
            generation: 0,
            voice: Voice::default(),
        })
    }

    /// `.env` bytes + options JSON (the adapters' constructor).
    pub fn from_env(env: &[u8], options_json: Option<&str>) -> Result<Self> {
        Self::new(SpacesConfig::from_env_and_options(env, options_json)?)
    }

    pub fn config(&self) -> &SpacesConfig {
        &self.cfg
    }

    pub fn is_registered(&self) -> bool {
        self.cfg.api_key.is_some()
    }

    /// The current ticket, if joined.
    pub fn ticket(&self) -> Option<&event::Ticket> {
        self.member.as_ref().and_then(|m| m.ticket.as_ref())
    }

    pub fn turn_state(&self) -> TurnState {
        self.voice.state.unwrap_or(TurnState::Listening)
    }

    /// A JSON snapshot for hosts: room, turn and turn state (no secrets, no token).
    pub fn state_json(&self) -> String {
        let room = self.member.as_ref().map(|m| {
            json!({
                "topic": m.topic,
                "room_name": m.ticket.as_ref().map(|t| t.room_name.clone()),
                "room_url": m.ticket.as_ref().map(|t| t.room_url.clone()),
                "expires_at_ms": m.ticket.as_ref().map(|t| t.expires_at_ms),
                "joined": matches!(m.phase, Phase::Joined { .. }),
            })
        });
        json!({ "registered": self.is_registered(), "room": room, "turn": self.voice.turn, "turn_state": self.turn_state() }).to_string()
    }

    // ---- commands ------------------------------------------------------------------

    /// Run a command. Returns the call id of the API commands' later events, the turn number
    /// for `reply`, 0 otherwise. Invalid input fails here, before anything is sent.
    pub fn command(&mut self, command: SpacesCommand, now_ms: u64) -> Result<CallId> {
        match command {
            SpacesCommand::Register { name, description } => {
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
                    return Err(Error::invalid_argument("name must be 1-64 characters without control characters"));
                }
                if description.chars().count() > 1000 {
                    return Err(Error::invalid_argument("description is over 1000 characters"));
                }
                let call = self.call_id();
                let body = json!({ "name": name, "description": description });
                self.send_api(http::Method::POST, "/agents/register", Some(&body), false, Purpose::Register { call, name })?;
                Ok(call)
            }
            SpacesCommand::Search { topic } => {
                let topic = check_topic(&topic)?;
                let call = self.call_id();
                let path = format!("/rooms/{}", utf8_percent_encode(&topic, SEGMENT));
                self.send_api(http::Method::GET, &path, None, true, Purpose::Search { call, topic })?;
                Ok(call)
            }
            SpacesCommand::Create { topic } => {
                let topic = check_topic(&topic)?;
                let call = self.call_id();
                self.send_api(http::Method::POST, "/rooms", Some(&json!({ "topic": topic })), true, Purpose::Create { call })?;
                Ok(call)
            }
            SpacesCommand::Token { room } => {
                let room = check_topic(&room)?;
                let call = self.call_id();
                let path = format!("/rooms/{}/token", utf8_percent_encode(&room, SEGMENT));
                self.send_api(http::Method::POST, &path, None, true, Purpose::Token { call })?;
                Ok(call)
            }
            SpacesCommand::Join { topic } => {
                let topic = check_topic(&topic)?;
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
            SpacesCommand::Leave {} => {
                self.generation += 1;
                let room_name = self.member.take().and_then(|m| m.ticket).map(|t| t.room_name);
                self.cut_turn(now_ms, true);
                self.out.event(SpacesEvent::SpacesLeft { room_name });
                Ok(0)
            }
            SpacesCommand::Dropped {} => {
                let Some(m) = &mut self.member else { return Err(Error::invalid_state("not in a room")) };
                if let (Phase::Joined { .. }, Some(t)) = (&m.phase, &m.ticket) {
                    let step = Step::Token(t.room_name.clone());
                    m.attempt = 1;
                    self.send_step(step, now_ms)?;
                }
                Ok(0)
            }
            SpacesCommand::Reply { text } => self.reply(&text, now_ms),
            SpacesCommand::Skip {} => {
                if self.voice.awaiting_reply {
                    self.finish_turn(now_ms, false, None);
                }
                Ok(0)
            }
            SpacesCommand::BargeIn {} => {
                if self.voice.state == Some(TurnState::Speaking) {
                    self.cut_turn(now_ms, true);
                }
                Ok(0)
            }
            SpacesCommand::PlaybackFinished {} => {
                let v = &self.voice;
                if v.state == Some(TurnState::Speaking) && v.tts_done && v.pcm.samples.is_empty() {
                    self.finish_turn(now_ms, false, None);
                }
                Ok(0)
            }
        }
    }

    pub fn command_json(&mut self, json: &str, now_ms: u64) -> Result<CallId> {
        self.command(SpacesCommand::from_json(json)?, now_ms)
    }

    /// One utterance from the audio pipeline (`utterance_wav`): starts a turn (transcription).
    /// An utterance while the agent speaks cuts the agent off first. Returns the turn number.
    pub fn utterance(&mut self, wav: &[u8], now_ms: u64) -> Result<u64> {
        let key = self.cfg.openai_key.clone().ok_or_else(|| Error::invalid_state("OPENAI_API_KEY is not configured"))?;
        if wav.len() < 44 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
            return Err(Error::invalid_argument("the utterance must be a WAV file (RIFF/WAVE)"));
        }
        if wav.len() > MAX_WAV_BYTES {
            return Err(Error::invalid_argument("the utterance is over OpenAI's 25 MB upload limit"));
        }
        if self.voice.state.is_some_and(|s| s != TurnState::Listening) {
            self.cut_turn(now_ms, true);
        }
        let turn = self.voice.turn + 1;
        let request = voice::transcription_request(&self.cfg.openai_base, key.expose(), &self.cfg.stt_model, wav, turn)?;
        self.voice = Voice { turn, utterance_at: now_ms, ..Voice::default() };
        let id = self.out.http(request);
        self.in_flight.insert(id, Purpose::Stt);
        self.voice.stt = Some(id);
        self.set_turn(TurnState::Thinking);
        Ok(turn)
    }

    /// The TTS audio received so far (24 kHz mono), drained: push it into the pipeline.
    pub fn take_audio(&mut self) -> Vec<i16> {
        let samples = std::mem::take(&mut self.voice.pcm.samples);
        self.voice.taken_any |= !samples.is_empty();
        samples
    }

    /// `take_audio` as little-endian bytes (what the adapters hand out).
    pub fn take_audio_bytes(&mut self) -> Vec<u8> {
        self.take_audio().iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Bytes waiting in `take_audio_bytes`.
    pub fn audio_bytes_ready(&self) -> usize {
        self.voice.pcm.samples.len() * 2
    }


    // ---- inputs ----------------------------------------------------------------------






    // ---- internals -------------------------------------------------------------------

    fn call_id(&mut self) -> CallId {
        self.next_call += 1;
        self.next_call
    }

    fn need_key(&self) -> Result<&Secret<String>> {
        self.cfg.api_key.as_ref().ok_or_else(|| {
            Error::new(ErrorCode::NotRegistered, "no Moltspaces API key: set MOLTSPACES_API_KEY or register first")
        })
    }

    fn take(&mut self, id: RequestId) -> Result<Purpose> {
        self.in_flight.remove(&id).ok_or_else(|| Error::new(ErrorCode::UnknownId, format!("no request in flight with id {id}")))
    }

    /// A transport message could quote a header; keys never appear in what we report.
    fn scrub(&self, message: &str) -> String {
        let mut m = message.chars().take(512).collect::<String>();
        for key in [&self.cfg.api_key, &self.cfg.openai_key, &self.cfg.elevenlabs_key].into_iter().flatten() {
            if !key.expose().is_empty() {
                m = m.replace(key.expose().as_str(), "<redacted>");
            }
        }
        m
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
            Step::Create => self.send_api(http::Method::POST, "/rooms", Some(&json!({ "topic": topic })), true, purpose),
        }
        .map(|_| ())
    }

    fn ticket_from(&self, body: &Value) -> Option<event::Ticket> {
        let (room_url, token, room_name) = parse::ticket_parts(body)?;
        let expires_at_ms = crate::auth::jwt::read_times(&token).map(|t| t.exp.saturating_mul(1000));
        Some(event::Ticket { room_url, token, room_name, expires_at_ms: expires_at_ms.unwrap_or(0) })
    }

    fn finish_api(&mut self, purpose: Purpose, outcome: std::result::Result<Value, ApiError>, now_ms: u64) {
        let ev = |e: SpacesEvent| e;
        match (purpose, outcome) {
            (Purpose::Join { generation, step }, outcome) => {
                if generation == self.generation {
                    self.join_step_done(step, outcome, now_ms);
                }
            }
            (Purpose::Register { call, name }, Ok(body)) => match parse::registration(&body) {
                Some((key, agent_id, server_name)) if !key.bytes().any(|b| !(0x21..0x7f).contains(&b)) => {
                    let (agent_id, name) = (clean(&agent_id), clean(&server_name.unwrap_or(name)));
                    let key = Secret::new(key);
                    let bytes = config::registration_env(key.expose(), &agent_id, &name);
                    let ticket = self.out.persist(Secret::new(bytes));
                    self.saving = Some((ticket, call, key, agent_id, name));
                }
                _ => self.out.event(CallEvent::CallFailed {
                    call_id: call,
                    error: local("BAD_RESPONSE", "the registration answer carried no usable agent.api_key and agent.agent_id"),
                }),
            },
            (Purpose::Search { call, topic }, Ok(body)) => {
                self.out.event(ev(SpacesEvent::SpacesRooms { call_id: call, topic, rooms: parse::rooms(&body) }))
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
                    ticket.expires_at_ms = now_ms + self.cfg.token_lifetime_ms;
                }
                self.out.event(SpacesEvent::SpacesTicket { call_id: call, reason, ticket, topic: None })
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
                Some(ticket) => self.joined(ticket, now_ms),
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
                let hinted = e.code.as_deref().and_then(|c| c.strip_prefix("RETRY_AFTER_")?.parse::<u64>().ok()).map(|s| s * 1000);
                let delay = hinted.unwrap_or(backoff.saturating_mul(1 << (m.attempt - 1).min(16)));
                let at = now_ms + delay;
                let call = m.call;
                let attempt = m.attempt;
                m.attempt += 1;
                m.phase = Phase::Retry { at, step };
                self.out.event(SpacesEvent::SpacesRetrying { call_id: call, attempt, retry_at_ms: at, error: e });
            }
            (_, Err(e)) => self.fail_join(e, now_ms),
        }
    }

    fn joined(&mut self, mut ticket: event::Ticket, now_ms: u64) {
        if ticket.expires_at_ms == 0 {
            ticket.expires_at_ms = now_ms + self.cfg.token_lifetime_ms;
        }
        let exp = ticket.expires_at_ms;
        let rejoin_at = exp.saturating_sub(self.cfg.rejoin_margin_ms).max(now_ms + exp.saturating_sub(now_ms) / 2);
        let Some(m) = &mut self.member else { return };
        let reason = if m.ticket.is_some() { TicketReason::Rejoin } else { TicketReason::Join };
        m.ticket = Some(ticket.clone());
        m.phase = Phase::Joined { rejoin_at };
        m.attempt = 1;
        let (call, topic) = (m.call, m.topic.clone());
        self.out.event(SpacesEvent::SpacesTicket { call_id: call, reason, ticket, topic: Some(topic) });
        if self.voice.state.is_none() {
            self.set_turn(TurnState::Listening);
        }
    }

    /// The join (or rejoin) cannot go on: report it, and leave.
    fn fail_join(&mut self, error: ApiError, now_ms: u64) {
        let Some(m) = self.member.take() else { return };
        self.generation += 1;
        self.out.event(CallEvent::CallFailed { call_id: m.call, error });
        if let Some(t) = m.ticket {
            self.cut_turn(now_ms, true);
            self.out.event(SpacesEvent::SpacesLeft { room_name: Some(t.room_name) });
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        match &self.member {
            Some(Membership { phase: Phase::Retry { at, .. }, .. }) => Some(*at),
            Some(Membership { phase: Phase::Joined { rejoin_at }, .. }) => Some(*rejoin_at),
            _ => None,
        }
    }

    // ---- voice -----------------------------------------------------------------------

    fn set_turn(&mut self, state: TurnState) {
        if self.voice.state != Some(state) {
            self.voice.state = Some(state);
            self.out.event(SpacesEvent::SpacesTurn { turn: self.voice.turn, state });
        }
    }

    fn on_transcript(&mut self, outcome: std::result::Result<Value, ApiError>, now_ms: u64) {
        self.voice.stt = None;
        let stt_ms = now_ms.saturating_sub(self.voice.utterance_at);
        self.voice.latency.stt_ms = Some(stt_ms);
        match outcome.map(|body| voice::transcript(&body)) {
            Ok(Some(text)) if !text.is_empty() => {
                self.voice.transcript_at = Some(now_ms);
                self.voice.awaiting_reply = true;
                let turn = self.voice.turn;
                self.out.event(SpacesEvent::SpacesTranscript { turn, text: Untrusted::new(text), stt_ms });
            }
            Ok(Some(_)) => self.finish_turn(now_ms, false, None),
            Ok(None) => self.finish_turn(now_ms, false, Some(local("BAD_RESPONSE", "the transcription answer has no `text`"))),
            Err(e) => self.finish_turn(now_ms, false, Some(e)),
        }
    }

    fn reply(&mut self, text: &str, now_ms: u64) -> Result<u64> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 5000 {
            return Err(Error::invalid_argument("reply text must be 1-5000 characters"));
        }
        let key = self.cfg.elevenlabs_key.clone().ok_or_else(|| Error::invalid_state("ELEVENLABS_API_KEY is not configured"))?;
        match self.voice.state {
            Some(TurnState::Speaking) => return Err(Error::invalid_state("already speaking: wait for playback_finished or barge_in")),
            Some(TurnState::Thinking) if !self.voice.awaiting_reply => {
                return Err(Error::invalid_state("still transcribing: reply after the transcript"));
            }
            _ => {}
        }
        let request = voice::tts_request(&self.cfg.elevenlabs_base, key.expose(), &self.cfg.voice_id, &self.cfg.tts_model, text)?;
        if !self.voice.awaiting_reply {
            // Unprompted speech: a turn of its own.
            self.voice = Voice { turn: self.voice.turn + 1, state: self.voice.state, ..Voice::default() };
        }
        if let Some(at) = self.voice.transcript_at {
            self.voice.latency.agent_ms = Some(now_ms.saturating_sub(at));
        }
        self.voice.awaiting_reply = false;
        self.voice.reply_at = now_ms;
        // The audio streams: the host passes it to `handle_body_chunk` as it arrives.
        let id = self.out.http_streamed(request);
        self.in_flight.insert(id, Purpose::Tts { turn: self.voice.turn });
        self.voice.tts = Some(id);
        self.set_turn(TurnState::Speaking);
        Ok(self.voice.turn)
    }

    fn tts_audio(&mut self, turn: u64, bytes: &[u8], now_ms: u64) {
        if bytes.is_empty() {
            return;
        }
        if self.voice.first_byte_at.is_none() {
            self.voice.first_byte_at = Some(now_ms);
            self.voice.latency.tts_first_byte_ms = Some(now_ms.saturating_sub(self.voice.reply_at));
        }
        if self.voice.pcm.samples.len() + bytes.len() / 2 > MAX_TTS_SAMPLES {
            return;
        }
        let samples = self.voice.pcm.push(bytes);
        if samples > 0 {
            self.out.event(SpacesEvent::SpacesAudio { turn, samples });
        }
    }

    /// End the current turn: played out, failed, or cut (`interrupted`).
    fn finish_turn(&mut self, now_ms: u64, interrupted: bool, error: Option<ApiError>) {
        let v = &mut self.voice;
        if let Some(first) = v.first_byte_at {
            v.latency.playback_ms = Some(now_ms.saturating_sub(first));
        }
        let (turn, latency) = (v.turn, v.latency);
        v.stt = None;
        v.tts = None;
        v.awaiting_reply = false;
        v.pcm = Default::default();
        if interrupted {
            self.set_turn(TurnState::Interrupted);
        }
        self.out.event(SpacesEvent::SpacesTurnDone { turn, interrupted, latency, error });
        self.set_turn(TurnState::Listening);
    }

    /// Cut whatever turn is under way (barge-in, a new utterance, leaving).
    fn cut_turn(&mut self, now_ms: u64, interrupted: bool) {
        if self.voice.state.is_some_and(|s| s != TurnState::Listening) {
            self.finish_turn(now_ms, interrupted, None);
        }
    }
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

/// Moltspaces is HTTP only (the room's audio goes through the host's Daily transport), so
/// WebSocket inputs are ignored.
impl SansIo for SpacesClient {
    type Event = SpacesEvent;

    fn handle_ws_open(&mut self, _conn: ConnId, _now_ms: u64) {}
    fn handle_ws_frame(&mut self, _conn: ConnId, _text: &str, _now_ms: u64) {}
    fn handle_ws_closed(&mut self, _conn: ConnId, _code: u16, _reason: &str, _now_ms: u64) {}

    fn poll_output(&mut self) -> Output<SpacesEvent> {
        match self.out.pop() {
            Some(o) => o,
            None => {
                self.out.compact();
                Output::Wait { until_ms: self.next_deadline() }
            }
        }
    }

    fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()> {
        let purpose = self.take(id)?;
        let status = response.status().as_u16();
        match purpose {
            Purpose::Tts { turn } => {
                if self.voice.tts != Some(id) {
                    return Ok(());
                }
                if !response.status().is_success() {
                    self.finish_turn(now_ms, false, Some(voice::speech_error(status, response.body())));
                    return Ok(());
                }
                self.tts_audio(turn, response.body(), now_ms);
                self.voice.tts_done = true;
                self.voice.latency.tts_total_ms = Some(now_ms.saturating_sub(self.voice.reply_at));
                if self.voice.first_byte_at.is_none() {
                    self.finish_turn(now_ms, false, Some(local("NO_AUDIO", "the text-to-speech answer carried no audio")));
                }
                Ok(())
            }
            Purpose::Stt => {
                if self.voice.stt != Some(id) {
                    return Ok(());
                }
                let outcome = if response.status().is_success() {
                    parse_json_body(&response)
                } else {
                    Err(voice::speech_error(status, response.body()))
                };
                self.on_transcript(outcome, now_ms);
                Ok(())
            }
            purpose => {
                let outcome = if status == 404 && matches!(purpose, Purpose::Search { .. } | Purpose::Join { step: Step::Search, .. }) {
                    Ok(Value::Null)
                } else if response.status().is_success() {
                    parse_json_body(&response)
                } else {
                    let mut e = ApiError::from_moltbook(status, response.body());
                    if status == 429
                        && let Some(s) = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    {
                        e.code.get_or_insert_with(|| format!("RETRY_AFTER_{s}"));
                    }
                    Err(e)
                };
                self.finish_api(purpose, outcome, now_ms);
                Ok(())
            }
        }
    }

    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()> {
        let purpose = self.take(id)?;
        let error = ApiError::transport(self.scrub(message));
        match purpose {
            Purpose::Stt if self.voice.stt == Some(id) => self.on_transcript(Err(error), now_ms),
            Purpose::Tts { .. } if self.voice.tts == Some(id) => self.finish_turn(now_ms, false, Some(error)),
            Purpose::Stt | Purpose::Tts { .. } => {}
            purpose => self.finish_api(purpose, Err(error), now_ms),
        }
        Ok(())
    }

    /// A chunk of the body of HTTP request `id` as it streams in (TTS audio). Finish with
    /// `handle_response(id, response_with_empty_body)`. A host that does not stream passes the
    /// whole body to `handle_response` instead.
    fn handle_body_chunk(&mut self, id: RequestId, chunk: &[u8], now_ms: u64) -> Result<()> {
        match self.in_flight.get(&id) {
            Some(Purpose::Tts { turn }) => {
                let turn = *turn;
                if self.voice.tts == Some(id) {
                    self.tts_audio(turn, chunk, now_ms);
                }
                Ok(())
            }
            Some(_) => Err(Error::invalid_argument(format!("request {id} does not stream: pass its body to handle_response"))),
            None => Err(Error::new(ErrorCode::UnknownId, format!("no request in flight with id {id}"))),
        }
    }

    fn handle_persisted(&mut self, ticket: Ticket, _now_ms: u64) -> Result<()> {
        match self.saving.take() {
            Some((t, call, key, agent_id, name)) if t == ticket => {
                self.cfg.api_key = Some(key);
                self.cfg.agent_id = Some(agent_id.clone());
                self.cfg.agent_name = Some(name.clone());
                self.out.event(SpacesEvent::SpacesRegistered { call_id: call, agent_id, name });
                Ok(())
            }
            other => {
                self.saving = other;
                Err(Error::new(ErrorCode::UnknownId, format!("no persist request with ticket {ticket}")))
            }
        }
    }

    fn handle_timeout(&mut self, now_ms: u64) {
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
