//! Whole-session tests: the core driven against the sandbox's request handler with a virtual
//! clock (no sockets): rooms, join/rejoin/leave, faults, and voice turns.

use super::*;
use crate::io::{CallEvent, Output, SansIo};
use crate::testkit::sandbox::SandboxPeer;
use crate::testkit::Driver;
use moltlink_sandbox::Sandbox;
use moltlink_sandbox::moltspaces::Generation;
use std::rc::Rc;

const T0: u64 = 1_790_000_000_000;
const ENV: &str = "MOLTSPACES_API_BASE=http://127.0.0.1/moltspaces/v1\nOPENAI_API_BASE=http://127.0.0.1/openai\n\
ELEVENLABS_API_BASE=http://127.0.0.1/elevenlabs\nOPENAI_API_KEY=sk-test-openai\nELEVENLABS_API_KEY=xi-test-eleven\n";

/// A host with a virtual clock, a "disk", and the sandbox as the network (its switches: transport
/// failures; the driver's: streamed chunk size, a hook after each chunk, per-request latency).
type Harness = Driver<SpacesClient, SandboxPeer>;

fn harness() -> Harness {
    let sandbox = Sandbox::default();
    sandbox.with_state(|s| s.speech.no_espeak = true);
    let client = SpacesClient::from_env(ENV.as_bytes(), Some(r#"{"backoff_ms":1000,"max_attempts":3}"#)).unwrap();
    let mut peer = SandboxPeer::new(Rc::new(sandbox));
    peer.rest_only = true;
    let mut h = Driver::new(client, peer, T0);
    h.record = true;
    h.max_steps = 400;
    h
}

/// Registered through the client itself; the key comes back from "disk".
fn registered() -> Harness {
    let mut h = harness();
    h.command(SpacesCommand::Register { name: "Echo".into(), description: "a test agent".into(), bio: None });
    assert!(h.client.is_registered());
    h
}

/// What the spaces tests add to the driver.
trait Session {
    fn command(&mut self, c: SpacesCommand) -> CallId;
    fn spaces(&self) -> Vec<&SpacesEvent>;
    fn tickets(&self) -> Vec<(TicketReason, event::Ticket)>;
    fn failed(&self) -> Vec<&ApiError>;
    fn seed_room(&self, name: &str, topic: &str, count: u64);
    fn no_secrets(&self);
}

impl Session for Harness {
    fn command(&mut self, c: SpacesCommand) -> CallId {
        let id = self.client.command(c, self.now_ms).unwrap();
        self.drive();
        id
    }

    fn spaces(&self) -> Vec<&SpacesEvent> {
        self.events.iter().collect()
    }

    fn tickets(&self) -> Vec<(TicketReason, event::Ticket)> {
        self.spaces()
            .into_iter()
            .filter_map(|e| if let SpacesEvent::SpacesTicket { reason, ticket, .. } = e { Some((*reason, ticket.clone())) } else { None })
            .collect()
    }

    fn failed(&self) -> Vec<&ApiError> {
        self.events.iter().filter_map(|e| if let SpacesEvent::Call(CallEvent::CallFailed { error, .. }) = e { Some(error) } else { None }).collect()
    }

    fn seed_room(&self, name: &str, topic: &str, count: u64) {
        self.peer.sandbox.with_state(|s| s.moltspaces.add_room(Some(name), topic, count, T0));
    }

    fn no_secrets(&self) {
        for line in &self.transcript {
            for secret in ["sk-test-openai", "xi-test-eleven", "moltspaces_"] {
                assert!(!line.contains(secret), "secret {secret} in {line}");
            }
        }
    }
}

#[test]
fn register_persists_before_reporting() {
    let h = registered();
    let disk = String::from_utf8(h.persisted.clone().unwrap()).unwrap();
    assert!(disk.starts_with("MOLTSPACES_API_KEY=moltspaces_") && disk.contains("MOLT_AGENT_NAME=Echo"), "{disk}");
    assert!(matches!(h.spaces()[..], [SpacesEvent::SpacesRegistered { name, .. }] if name == "Echo"));
    // The saved registration is a `.env`: a new client reads it back.
    let mut env = ENV.as_bytes().to_vec();
    env.extend_from_slice(h.persisted.as_ref().unwrap());
    assert!(SpacesClient::from_env(&env, None).unwrap().is_registered());
    h.no_secrets();
}

#[test]
fn search_404_is_an_empty_list_and_topics_are_encoded() {
    let mut h = registered();
    let call = h.command(SpacesCommand::Search { topic: "web3 builders/ü".into() });
    assert!(h.peer.sent.last().unwrap().ends_with("/rooms/web3%20builders%2F%C3%BC"), "{:?}", h.peer.sent);
    assert!(matches!(h.spaces().last(), Some(SpacesEvent::SpacesRooms { call_id, rooms, .. }) if *call_id == call && rooms.is_empty()));
    assert!(h.failed().is_empty());
    // Without a key, nothing is sent.
    let mut bare = harness();
    let e = bare.client.command(SpacesCommand::Search { topic: "x".into() }, T0).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotRegistered);
}

fn set_generation(h: &Harness, generation: Generation) {
    h.peer.sandbox.with_state(|s| s.moltspaces.generation = generation);
}

/// Registered against a server of `generation`.
fn registered_on(generation: Generation) -> Harness {
    let mut h = harness();
    set_generation(&h, generation);
    h.command(SpacesCommand::Register { name: "Echo".into(), description: "a test agent".into(), bio: None });
    assert!(h.client.is_registered(), "{generation:?}: {:?}", h.events);
    h
}

/// The older generation lists participant counts (the liveliest room is joined); the newer
/// lists none (the first listed is joined). Tokens come snake_case or camelCase.
#[test]
fn join_picks_the_liveliest_room_in_both_generations() {
    for (generation, expected) in [(Generation::Older, "ai-agents-002"), (Generation::Newer, "ai-agents-001")] {
        let mut h = registered_on(generation);
        h.seed_room("ai-agents-001", "AI agents", 2);
        h.seed_room("ai-agents-002", "AI agents talk", 5);
        h.seed_room("cooking-001", "cooking", 9);
        let call = h.command(SpacesCommand::Join { topic: "ai agents".into() });
        let tickets = h.tickets();
        assert_eq!(tickets.len(), 1, "{generation:?}");
        let (reason, t) = &tickets[0];
        assert_eq!((*reason, t.room_name.as_str(), t.room_url.as_str()), (TicketReason::Join, expected, format!("https://sandbox.daily.co/{expected}").as_str()));
        assert_eq!(t.expires_at_ms, (T0 / 1000 + 3600) * 1000, "JWT exp read");
        assert!(matches!(h.spaces().iter().find(|e| matches!(e, SpacesEvent::SpacesTicket { .. })), Some(SpacesEvent::SpacesTicket { call_id, .. }) if *call_id == call));
        assert!(format!("{t:?}").contains("<redacted>") && !format!("{t:?}").contains(&t.token));
        h.no_secrets();
    }
}

#[test]
fn join_creates_a_room_when_none_and_standalone_create_token() {
    let mut h = registered();
    h.command(SpacesCommand::Join { topic: "Rust audio".into() });
    let (reason, t) = h.tickets()[0].clone();
    assert_eq!((reason, t.room_name.as_str()), (TicketReason::Join, "rust-audio-001"));
    assert!(h.peer.sent.iter().any(|s| s == "POST http://127.0.0.1/moltspaces/v1/rooms"));
    // Joining again is refused until leaving.
    assert_eq!(h.client.command(SpacesCommand::Join { topic: "x".into() }, h.now_ms).unwrap_err().code, ErrorCode::InvalidState);
    h.command(SpacesCommand::Leave {});
    assert!(matches!(h.spaces().last(), Some(SpacesEvent::SpacesLeft { room_name: Some(r) }) if r == "rust-audio-001"));
    assert_eq!(h.drive(), None, "no rejoin timer after leaving");
    // Standalone create and token.
    h.command(SpacesCommand::Create { topic: "pets".into() });
    h.command(SpacesCommand::Token { room: "pets-001".into() });
    let reasons: Vec<_> = h.tickets().iter().skip(1).map(|(r, t)| (*r, t.room_name.clone())).collect();
    assert_eq!(reasons, [(TicketReason::Create, "pets-001".into()), (TicketReason::Token, "pets-001".into())]);
    h.command(SpacesCommand::Token { room: "nope".into() });
    assert_eq!(h.failed().last().unwrap().status, 404);
}

#[test]
fn token_is_renewed_before_expiry_and_after_a_drop() {
    let mut h = registered();
    h.peer.sandbox.with_state(|s| s.moltspaces.token_lifetime_s = 600);
    h.seed_room("jazz-001", "jazz", 1);
    h.command(SpacesCommand::Join { topic: "jazz".into() });
    let first = h.tickets()[0].1.clone();
    assert_eq!(first.expires_at_ms, T0 + 600_000);
    // Margin 60 s: renewed at exp - 60 s, not before.
    h.advance(539_000);
    assert_eq!(h.tickets().len(), 1);
    h.advance(1_000);
    let tickets = h.tickets();
    assert_eq!(tickets.len(), 2);
    assert_eq!(tickets[1].0, TicketReason::Rejoin);
    assert_ne!(tickets[1].1.token, first.token);
    assert_eq!(tickets[1].1.expires_at_ms, T0 + 540_000 + 600_000);
    // The host's transport dropped: a fresh token now.
    h.advance(10_000);
    h.command(SpacesCommand::Dropped {});
    assert_eq!(h.tickets().len(), 3);
    assert_eq!(h.tickets()[2].0, TicketReason::Rejoin);
}

#[test]
fn a_token_without_exp_uses_the_default_lifetime() {
    let mut h = registered();
    let body = serde_json::json!({"roomUrl":"https://x.daily.co/r","token":"opaque","roomName":"r"});
    h.client.member = Some(Membership { call: 9, topic: "t".into(), ticket: None, phase: Phase::InFlight, attempt: 1 });
    let t = h.client.ticket_from(&body).unwrap();
    h.client.joined(t, None, h.now_ms);
    assert_eq!(h.client.ticket().unwrap().expires_at_ms, T0 + config::DEFAULT_TOKEN_LIFETIME_MS);
    assert_eq!(h.drive(), Some(T0 + config::DEFAULT_TOKEN_LIFETIME_MS - config::DEFAULT_REJOIN_MARGIN_MS));
}

#[test]
fn network_failure_mid_join_is_retried_with_backoff_then_fails_clearly() {
    let mut h = registered();
    h.seed_room("go-001", "go", 1);
    // Search succeeds, the token request fails twice in transport, then succeeds.
    h.client.command(SpacesCommand::Join { topic: "go".into() }, h.now_ms).unwrap();
    let search = h.client.poll_output();
    let Output::Http { id, request, .. } = search else { panic!() };
    let r = h.peer.sandbox.handle(*request, h.now_ms);
    h.client.handle_response(id, r, h.now_ms).unwrap();
    h.peer.fail_transport = 2;
    let retry_at = h.drive().unwrap();
    assert_eq!(retry_at, T0 + 1000);
    h.advance(1000);
    let retrying: Vec<_> = h.spaces().iter().filter_map(|e| if let SpacesEvent::SpacesRetrying { attempt, retry_at_ms, .. } = e { Some((*attempt, *retry_at_ms)) } else { None }).collect();
    assert_eq!(retrying, [(1, T0 + 1000), (2, T0 + 3000)], "doubling backoff");
    h.advance(2000);
    assert_eq!(h.tickets().len(), 1);
    assert!(h.failed().is_empty());

    // Down for good: after max_attempts the join fails with the transport error.
    let mut h = registered();
    h.peer.fail_transport = 10;
    let call = h.command(SpacesCommand::Join { topic: "go".into() });
    h.advance(60_000);
    let failed: Vec<_> = h.events.iter().filter_map(|e| if let SpacesEvent::Call(CallEvent::CallFailed { call_id, error }) = e { Some((*call_id, error.status, error.message.clone())) } else { None }).collect();
    assert_eq!(failed, [(call, 0, "connection refused".into())]);
    assert!(h.client.ticket().is_none());
    // 5xx from the server is retried the same way.
    let mut h = registered();
    h.peer.sandbox.with_state(|s| s.moltspaces.fail_next = 1);
    h.command(SpacesCommand::Join { topic: "go".into() });
    h.advance(1000);
    assert_eq!(h.tickets().len(), 1);
}

#[test]
fn a_vanished_room_is_searched_again_on_rejoin() {
    let mut h = registered();
    h.seed_room("old-001", "old", 1);
    h.command(SpacesCommand::Join { topic: "old".into() });
    h.peer.sandbox.with_state(|s| s.moltspaces.rooms.clear());
    h.command(SpacesCommand::Dropped {});
    let t = h.tickets();
    assert_eq!(t.len(), 2);
    assert_eq!((t[1].0, t[1].1.room_name.as_str()), (TicketReason::Rejoin, "old-001"), "recreated on the topic: {:?}", h.peer.sent);
}

fn wav(ms: u32) -> Vec<u8> {
    let samples: Vec<i16> = (0..16 * ms).map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16).collect();
    crate::audio::wav::encode(&samples, 16_000)
}

fn turn_states(h: &Harness) -> Vec<TurnState> {
    h.spaces().iter().filter_map(|e| if let SpacesEvent::SpacesTurn { state, .. } = e { Some(*state) } else { None }).collect()
}

#[test]
fn a_voice_turn_with_latencies() {
    let mut h = registered();
    h.latency_ms = 100;
    h.peer.sandbox.with_state(|s| s.speech.transcripts.push_back("What is the weather like?".into()));
    h.chunk_size = Some(4801);
    let turn = h.client.utterance(&wav(800), h.now_ms).unwrap();
    h.drive();
    let stt = h.peer.sent.last().unwrap().clone();
    assert_eq!(stt, "POST http://127.0.0.1/openai/v1/audio/transcriptions");
    let transcript = h.spaces().iter().find_map(|e| if let SpacesEvent::SpacesTranscript { text, stt_ms, .. } = e { Some((text.untrusted_text.clone(), *stt_ms)) } else { None });
    assert_eq!(transcript, Some(("What is the weather like?".into(), 100)));
    h.now_ms += 250; // the agent thinks
    assert_eq!(h.command(SpacesCommand::Reply { text: "Sunny and warm today.".into() }), turn);
    assert_eq!(h.peer.sent.last().unwrap(), "POST http://127.0.0.1/elevenlabs/v1/text-to-speech/4tRn1lSkEn13EVTuqb0g/stream?output_format=pcm_24000");
    let audio = h.client.take_audio();
    assert!(audio.len() > 24_000, "about a second of speech or more: {}", audio.len());
    assert!(audio.iter().map(|s| s.unsigned_abs() as u64).max().unwrap() > 1000, "not silent");
    let chunks = h.spaces().iter().filter(|e| matches!(e, SpacesEvent::SpacesAudio { .. })).count();
    assert!(chunks > 3, "streamed in chunks: {chunks}");
    // The pipeline starts playing 30 ms after the reply's first byte: the first-audio latency.
    h.now_ms += 30;
    h.command(SpacesCommand::PlaybackStarted {});
    // A playback_finished before all audio is played would be starvation; after it, the end.
    h.now_ms += 1470;
    h.command(SpacesCommand::PlaybackFinished {});
    assert_eq!(turn_states(&h), [TurnState::Thinking, TurnState::Speaking, TurnState::Listening]);
    let done = h.spaces().iter().find_map(|e| if let SpacesEvent::SpacesTurnDone { latency, interrupted, error, .. } = e { Some((*latency, *interrupted, error.clone())) } else { None }).unwrap();
    assert_eq!(done.1, false);
    assert_eq!(done.2, None);
    assert_eq!(done.0, Latency { stt_ms: Some(100), agent_ms: Some(250), tts_first_byte_ms: Some(100), tts_first_audio_ms: Some(130), tts_total_ms: Some(100), playback_ms: Some(1500) });
    h.no_secrets();
    // The exact request shapes reached the stand-ins.
    let stats = h.peer.sandbox.with_state(|s| s.speech.stats.clone());
    assert_eq!((stats.transcriptions, stats.syntheses, stats.last_model.as_deref()), (1, 1, Some("whisper-1")));
}

#[test]
fn barge_in_interrupts_speaking() {
    let mut h = registered();
    h.peer.sandbox.with_state(|s| s.speech.transcripts.push_back("Tell me a long story.".into()));
    h.chunk_size = Some(2000);
    h.after_chunk = Some(Box::new(|i, c: &mut SpacesClient, now| {
        if i == 0 {
            c.command(SpacesCommand::BargeIn {}, now).unwrap();
        }
    }));
    h.client.utterance(&wav(500), h.now_ms).unwrap();
    h.drive();
    h.command(SpacesCommand::Reply { text: "Once upon a time there was a very long story.".into() });
    assert_eq!(
        turn_states(&h),
        [TurnState::Thinking, TurnState::Speaking, TurnState::Interrupted, TurnState::Listening]
    );
    assert!(h.client.take_audio().is_empty(), "audio after the barge-in is dropped");
    let done = h.spaces().iter().find_map(|e| if let SpacesEvent::SpacesTurnDone { interrupted, .. } = e { Some(*interrupted) } else { None });
    assert_eq!(done, Some(true));
    // Barge-in with nothing playing is a no-op; a new utterance starts turn 2.
    h.command(SpacesCommand::BargeIn {});
    assert_eq!(h.client.utterance(&wav(300), h.now_ms).unwrap(), 2);
}

#[test]
fn voice_errors_are_clear() {
    let mut h = registered();
    assert_eq!(h.client.utterance(b"not a wav", h.now_ms).unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(h.client.command(SpacesCommand::Reply { text: " ".into() }, h.now_ms).unwrap_err().code, ErrorCode::InvalidArgument);
    // STT failure ends the turn with the error, back to listening.
    h.peer.fail_transport = 1;
    h.client.utterance(&wav(300), h.now_ms).unwrap();
    h.drive();
    let err = h.spaces().iter().find_map(|e| if let SpacesEvent::SpacesTurnDone { error, .. } = e { error.clone() } else { None }).unwrap();
    assert_eq!(err.status, 0);
    assert_eq!(h.client.turn_state(), TurnState::Listening);
    // No keys configured: refused before sending.
    let mut c = SpacesClient::from_env(b"", None).unwrap();
    assert_eq!(c.utterance(&wav(100), T0).unwrap_err().code, ErrorCode::InvalidState);
    assert!(SpacesClient::from_env(b"MOLTSPACES_API_BASE=http://example.com/v1\n", None).is_err(), "plain http off loopback");
    assert!(SpacesCommand::from_json(r#"{"command":"join","topic":"x","extra":1}"#).is_err());
}

/// Register, search and create against each generation: the bodies carry both generations'
/// fields, and every answer's fields reach the events (none invented).
#[test]
fn register_search_create_in_both_generations() {
    for generation in [Generation::Older, Generation::Newer] {
        let mut h = registered_on(generation);
        let registered = h.spaces().iter().find_map(|e| match e {
            SpacesEvent::SpacesRegistered { claim_url, .. } => Some(claim_url.clone()),
            _ => None,
        });
        assert_eq!(registered.unwrap().is_some(), generation == Generation::Newer, "{generation:?}: claim_url only from newer servers");
        h.seed_room("jazz-001", "jazz", 4);
        let call = h.command(SpacesCommand::Search { topic: "jazz".into() });
        let (rooms, body) = h.spaces().iter().find_map(|e| match e {
            SpacesEvent::SpacesRooms { call_id, rooms, body, .. } if *call_id == call => Some((rooms.clone(), body.clone())),
            _ => None,
        }).unwrap();
        let body = body.expect("the answer verbatim");
        match generation {
            Generation::Older => {
                assert_eq!((rooms[0].participant_count, rooms[0].topic.as_deref(), rooms[0].url.as_deref()), (Some(4), Some("jazz"), None));
                assert!(body.get("search_term").is_none());
            }
            Generation::Newer => {
                assert_eq!((rooms[0].participant_count, rooms[0].topic.as_deref()), (None, None));
                assert_eq!(rooms[0].url.as_deref(), Some("https://sandbox.daily.co/jazz-001"));
                assert_eq!((body["search_term"].as_str(), body["count"].as_u64()), (Some("jazz"), Some(1)));
            }
        }
        let call = h.command(SpacesCommand::Create { topic: "Blues night".into() });
        let (ticket, room) = h.spaces().iter().find_map(|e| match e {
            SpacesEvent::SpacesTicket { call_id, ticket, room, .. } if *call_id == call => Some((ticket.clone(), room.clone())),
            _ => None,
        }).unwrap_or_else(|| panic!("{generation:?}: {:?}", h.events));
        assert_eq!(ticket.room_name, "blues-night-001");
        match generation {
            Generation::Older => assert_eq!(room, None),
            Generation::Newer => {
                let room = room.expect("the room object");
                assert_eq!((room["title"].as_str(), room["room_name"].as_str()), (Some("Blues night"), Some("blues-night-001")));
            }
        }
        h.no_secrets();
    }
    // What was sent: both generations' fields in one body.
    let mut h = harness();
    h.client.command(SpacesCommand::Register { name: "Echo".into(), description: "short".into(), bio: None }, T0).unwrap();
    let Output::Http { request, .. } = h.client.poll_output() else { panic!() };
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!((body["description"].as_str(), body["bio"].as_str()), (Some("short"), Some("short")));
    assert_eq!(body["metadata"]["initial_voice_id"], config::DEFAULT_VOICE_ID);
    let e = h.client.command(SpacesCommand::Register { name: "E".into(), description: String::new(), bio: Some("b".repeat(160)) }, T0).unwrap_err();
    assert!(e.message.contains("bio"), "{e}");
    let json = SpacesCommand::from_json(r#"{"command":"register","name":"E","description":"d","bio":"b"}"#).unwrap();
    assert_eq!(json, SpacesCommand::Register { name: "E".into(), description: "d".into(), bio: Some("b".into()) });
}

/// A 5xx body's text (here raw SQL) never reaches an event: status and code only.
#[test]
fn server_error_text_is_withheld() {
    let mut h = registered();
    h.peer.sandbox.with_state(|s| {
        s.moltspaces.fail_next = 1;
        s.moltspaces.fail_status = 500;
    });
    h.command(SpacesCommand::Search { topic: "x".into() });
    let e = h.failed()[0].clone();
    assert_eq!(e.status, 500);
    assert!(e.message.contains("withheld") && !e.message.contains("INSERT"), "{e}");
    assert!(h.transcript.iter().all(|l| !l.contains("INSERT INTO")), "{:?}", h.transcript);
    // The join's retry events too.
    h.peer.sandbox.with_state(|s| s.moltspaces.fail_next = 1);
    h.command(SpacesCommand::Join { topic: "x".into() });
    assert!(h.spaces().iter().any(|e| matches!(e, SpacesEvent::SpacesRetrying { error, .. } if error.status == 500 && !error.message.contains("INSERT"))));
    let e = voice::speech_error(503, br#"{"error":{"message":"SELECT * FROM keys","code":"x"}}"#);
    assert_eq!((e.status, e.code.as_deref()), (503, Some("x")));
    assert!(!e.message.contains("SELECT"));
}
