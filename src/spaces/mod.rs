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
//!
//! Files by concern: `rooms` (register, search, create, join, token renewal and retries),
//! `turns` (the voice turn; its state changes only in [`turns::next`]).

pub mod config;
pub mod event;
pub mod parse;
mod rooms;
mod turns;
pub mod voice;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod stream_tests;

pub use config::{SpacesConfig, SpacesOptions};
pub use event::{Latency, Room, SpacesEvent, Ticket as JoinTicket, TicketReason, TurnState};

use crate::error::{Error, ErrorCode, Result};
use crate::io::{ApiError, CallId, ConnId, Outbox, Output, RequestId, SansIo, Secret, Ticket};
use rooms::{Membership, Phase, Step};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use turns::Voice;

/// A command, as hosts and adapters send it: `{"command":"join","topic":"web3 builders"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum SpacesCommand {
    /// `POST /agents/register`; the key is persisted, then used. Older servers read
    /// `description`, newer ones `bio` (under 160 characters; the description when it fits).
    Register {
        /// Agent name to register.
        name: String,
        /// Description of the agent (sent as `description`).
        description: String,
        /// Short bio for newer servers; absent: the description when it fits.
        #[serde(default)]
        bio: Option<String>,
    },
    /// `GET /rooms/:topic` → `spaces_rooms` (404 = an empty list).
    Search {
        /// Topic to look up rooms for.
        topic: String,
    },
    /// `POST /rooms {topic, room_name}` (older servers read `topic`, newer `room_name`)
    /// → `spaces_ticket` (reason `create`).
    Create {
        /// Topic of the new room (also sent as its `room_name`).
        topic: String,
    },
    /// `POST /rooms/:room/token` → `spaces_ticket` (reason `token`).
    Token {
        /// Name of the room to get a meeting token for.
        room: String,
    },
    /// Search → liveliest → token, or create; then keep the token fresh.
    Join {
        /// Topic of the room to join or create.
        topic: String,
    },
    /// Leave the room (the host hangs up its transport on `spaces_left`).
    Leave {},
    /// The host's transport dropped: fetch a fresh token now (`spaces_ticket`, reason `rejoin`).
    Dropped {},
    /// The agent's answer to the last transcript (or unprompted speech): synthesise it.
    Reply {
        /// What the agent says, to be synthesised.
        text: String,
    },
    /// The agent does not answer the last transcript: the turn ends, back to listening.
    Skip {},
    /// The pipeline reported barge-in: the user spoke over the agent.
    BargeIn {},
    /// The pipeline's playback queue played out.
    PlaybackFinished {},
    /// The pipeline started playing the agent's speech (its `playback-started` event).
    PlaybackStarted {},
}

impl SpacesCommand {
    /// Parses the options JSON (see wit/spaces.wit).
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::invalid_argument(format!("invalid spaces command: {e}")))
    }
}

/// Why a request is in flight.
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

/// The Moltspaces client: rooms, join tickets and voice turns.
pub struct SpacesClient {
    cfg: SpacesConfig,
    out: Outbox<SpacesEvent>,
    next_call: CallId,
    in_flight: BTreeMap<RequestId, Purpose>,
    /// Registration waiting for the host to acknowledge its persist.
    saving: Option<Saving>,
    member: Option<Membership>,
    generation: u64,
    voice: Voice,
}

impl std::fmt::Debug for SpacesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpacesClient").field("config", &self.cfg).field("member", &self.member).finish_non_exhaustive()
    }
}

/// A registration whose key the host is persisting.
#[derive(Debug)]
struct Saving {
    ticket: Ticket,
    call: CallId,
    key: Secret<String>,
    agent_id: String,
    name: String,
    claim_url: Option<String>,
}

fn local(code: &str, message: impl Into<String>) -> ApiError {
    ApiError { status: 0, code: Some(code.to_owned()), message: message.into() }
}

impl SpacesClient {
    /// A client for this configuration.
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

    /// The configuration in use.
    pub fn config(&self) -> &SpacesConfig {
        &self.cfg
    }

    /// Whether an agent is registered (an API key is set).
    pub fn is_registered(&self) -> bool {
        self.cfg.api_key.is_some()
    }

    /// The current ticket, if joined.
    pub fn ticket(&self) -> Option<&event::Ticket> {
        self.member.as_ref().and_then(|m| m.ticket.as_ref())
    }

    /// Where the current voice turn is.
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
            SpacesCommand::Register { name, description, bio } => self.register(name, &description, bio),
            SpacesCommand::Search { topic } => self.search(&topic),
            SpacesCommand::Create { topic } => self.create(&topic),
            SpacesCommand::Token { room } => self.token(&room),
            SpacesCommand::Join { topic } => self.join(&topic, now_ms),
            SpacesCommand::Leave {} => self.leave(now_ms),
            SpacesCommand::Dropped {} => self.dropped(now_ms),
            SpacesCommand::Reply { text } => self.reply(&text, now_ms),
            SpacesCommand::Skip {} => self.skip(now_ms),
            SpacesCommand::BargeIn {} => self.barge_in(now_ms),
            SpacesCommand::PlaybackFinished {} => self.playback_finished(now_ms),
            SpacesCommand::PlaybackStarted {} => self.playback_started(now_ms),
        }
    }

    /// A command as JSON (`{"command": "join", "topic": …}`); returns its call id.
    pub fn command_json(&mut self, json: &str, now_ms: u64) -> Result<CallId> {
        self.command(SpacesCommand::from_json(json)?, now_ms)
    }

    // ---- internals -------------------------------------------------------------------

    fn call_id(&mut self) -> CallId {
        self.next_call += 1;
        self.next_call
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
        match self.take(id)? {
            Purpose::Tts { turn } => self.on_speech(id, turn, response, now_ms),
            Purpose::Stt => self.on_transcription(id, response, now_ms),
            purpose => self.on_api_response(purpose, response, now_ms),
        }
        Ok(())
    }

    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()> {
        let purpose = self.take(id)?;
        let error = ApiError::transport(self.scrub(message));
        match purpose {
            Purpose::Stt | Purpose::Tts { .. } => self.on_speech_failed(id, &purpose, error, now_ms),
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
                self.on_speech_chunk(id, turn, chunk, now_ms);
                Ok(())
            }
            Some(_) => Err(Error::invalid_argument(format!("request {id} does not stream: pass its body to handle_response"))),
            None => Err(Error::new(ErrorCode::UnknownId, format!("no request in flight with id {id}"))),
        }
    }

    fn handle_persisted(&mut self, ticket: Ticket, _now_ms: u64) -> Result<()> {
        self.on_persisted(ticket)
    }

    fn handle_timeout(&mut self, now_ms: u64) {
        self.on_timeout(now_ms);
    }
}
