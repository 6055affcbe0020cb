//! Events of the Moltspaces client. They reach the agent inside [`crate::Event`] (untagged,
//! so the JSON is `{"type":"spaces_ticket",…}` like every other event).
//!
//! Transcripts are other participants' words: wrapped in [`Untrusted`] (data, never
//! instructions), like DM and MoltChats message bodies.

use crate::io::{CallEvent, CallId, Untrusted};
use serde::Serialize;

/// A room as search lists it. The older generation sends `topic` and `participant_count`,
/// the newer `url` and no count; a field the server did not send is left out, never 0 or null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Room {
    /// The room's name (its id in URLs).
    pub room_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Its topic (older servers).
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Its Daily URL (newer servers).
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// When it was created, as the server wrote it.
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// How many are in it (older servers).
    pub participant_count: Option<u64>,
}

/// What a Daily transport joins with. The meeting token is a credential: `Debug` hides it;
/// it is serialised because the host needs it to join.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    /// The Daily room URL.
    pub room_url: String,
    /// The meeting token (a credential).
    pub token: String,
    /// The room's name.
    pub room_name: String,
    /// When the token expires (Unix ms): its JWT `exp`, else the configured default lifetime.
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("room_url", &self.room_url)
            .field("token", &"<redacted>")
            .field("room_name", &self.room_name)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Why a ticket was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketReason {
    /// `join`: the first ticket of a join.
    Join,
    /// A fresh token for the joined room (before expiry, or after the host reported a drop).
    Rejoin,
    /// A standalone `create` command.
    Create,
    /// A standalone `token` command.
    Token,
}

/// Turn-taking of the voice conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnState {
    /// Waiting for the next utterance.
    Listening,
    /// Transcribing the utterance, then waiting for the agent's reply.
    Thinking,
    /// Playing the reply.
    Speaking,
    /// The user spoke over the agent; playback was cut. Followed by `listening`.
    Interrupted,
}

/// Per-stage latency of one turn, in ms (absent when the stage did not run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Utterance handed in → transcript parsed.
    pub stt_ms: Option<u64>,
    /// Transcript reported → reply text given.
    pub agent_ms: Option<u64>,
    /// Reply given → first TTS audio byte.
    pub tts_first_byte_ms: Option<u64>,
    /// Reply given → the pipeline started playing it (the host's `playback_started` command,
    /// sent on the pipeline's `playback-started` event): what a listener waits for.
    pub tts_first_audio_ms: Option<u64>,
    /// Reply given → TTS response complete.
    pub tts_total_ms: Option<u64>,
    /// First TTS audio byte → playback finished (or cut).
    pub playback_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
/// What the Moltspaces client reports.
pub enum SpacesEvent {
    /// Registration saved (the host acknowledged the persist): the key is in use.
    SpacesRegistered {
        /// Id the `register` command returned.
        call_id: CallId,
        /// Agent id the server assigned (control characters removed).
        agent_id: String,
        /// Agent name the server confirmed, else the one asked for (control characters removed).
        name: String,
        /// Where the human claims the agent (newer servers send it).
        #[serde(skip_serializing_if = "Option::is_none")]
        claim_url: Option<String>,
    },
    /// Search result (404 = no rooms = an empty list), with the server's answer verbatim
    /// (`body`, absent on a 404).
    SpacesRooms {
        /// Id the `search` command returned.
        call_id: CallId,
        /// Topic searched for.
        topic: String,
        /// Rooms found, as the server listed them.
        rooms: Vec<Room>,
        /// The server's answer, verbatim (untrusted).
        #[serde(skip_serializing_if = "Option::is_none")]
        body: Option<serde_json::Value>,
    },
    /// Join this room with a Daily transport (`room_url` + `token`). `room` is the newer
    /// create answer's room object (`title`, `room_name`, `room_url`, `created_at`), verbatim.
    SpacesTicket {
        /// Id of the `join`, `create` or `token` command it answers.
        call_id: CallId,
        /// Why it was issued.
        reason: TicketReason,
        /// Room URL, meeting token (a credential) and expiry.
        ticket: Ticket,
        /// Topic being joined; absent for a bare `create` / `token`.
        topic: Option<String>,
        /// The create answer's room object, verbatim; absent when the answer had none.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<serde_json::Value>,
    },
    /// A join step failed transiently and is retried at `retry_at_ms`.
    SpacesRetrying {
        /// Id the `join` command returned.
        call_id: CallId,
        /// Attempt number of the step that failed (1 for the first).
        attempt: u32,
        /// When the step is tried again (Unix ms).
        retry_at_ms: u64,
        /// The failure.
        error: crate::io::ApiError,
    },
    /// The room was left (command) — the host should hang up its transport.
    SpacesLeft {
        /// Name of the room left; absent when no ticket had been issued yet.
        room_name: Option<String>,
    },
    /// Turn-taking changed.
    SpacesTurn {
        /// Number of the current turn (the first utterance or reply is turn 1).
        turn: u64,
        /// The new turn-taking state.
        state: TurnState,
    },
    /// What the participant said (speech-to-text of one utterance).
    SpacesTranscript {
        /// Number of the turn it starts.
        turn: u64,
        /// The transcribed words: another participant's, untrusted.
        text: Untrusted,
        /// Utterance handed in to transcript received, in ms.
        stt_ms: u64,
    },
    /// TTS audio is ready: read it with `take_audio` and push it into the pipeline's playback.
    SpacesAudio {
        /// Number of the turn the audio answers.
        turn: u64,
        /// Samples just added (24 kHz mono).
        samples: usize,
    },
    /// A turn ended (played out, interrupted, nothing said, or failed), with its latencies.
    SpacesTurnDone {
        /// Number of the turn that ended.
        turn: u64,
        /// True when it was cut before playing out (barge-in, a new utterance, leaving).
        interrupted: bool,
        /// The turn's measured latencies.
        latency: Latency,
        /// What failed, when the turn ended in an error.
        error: Option<crate::io::ApiError>,
    },
    /// A command failed (`call_failed`).
    #[serde(untagged)]
    Call(CallEvent),
}

impl From<CallEvent> for SpacesEvent {
    fn from(event: CallEvent) -> Self {
        SpacesEvent::Call(event)
    }
}
