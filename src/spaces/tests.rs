//! Whole-session tests: the core driven against the sandbox's request handler with a virtual
//! clock (no sockets): rooms, join/rejoin/leave, faults, and voice turns.

use super::*;
use crate::io::{CallEvent, Output, SansIo};
use moltlink_sandbox::Sandbox;

const T0: u64 = 1_790_000_000_000;
const ENV: &str = "MOLTSPACES_API_BASE=http://127.0.0.1/moltspaces/v1\nOPENAI_API_BASE=http://127.0.0.1/openai\n\
ELEVENLABS_API_BASE=http://127.0.0.1/elevenlabs\nOPENAI_API_KEY=sk-test-openai\nELEVENLABS_API_KEY=xi-test-eleven\n";

struct Harness {
    sandbox: Sandbox,
    client: SpacesClient,
    now: u64,
    disk: Option<Vec<u8>>,
    events: Vec<SpacesEvent>,
    sent: Vec<String>,
    loggable: Vec<String>,
    /// The next N requests fail in transport (network down).
    fail_transport: u32,
    /// Feed TTS bodies in chunks of this size through `handle_body_chunk`.
    stream_chunk: Option<usize>,
    /// Called after the first streamed TTS chunk (e.g. a barge-in).
    after_first_chunk: Option<Box<dyn FnMut(&mut SpacesClient, u64)>>,
    /// Per-request virtual latency.
    latency_ms: u64,
}

impl Harness {
    fn new() -> Self {
        let sandbox = Sandbox::default();
        sandbox.with_state(|s| s.speech.no_espeak = true);
        let client = SpacesClient::from_env(ENV.as_bytes(), Some(r#"{"backoff_ms":1000,"max_attempts":3}"#)).unwrap();
        Self {
            sandbox,
            client,
            now: T0,
            disk: None,
            events: vec![],
            sent: vec![],
            loggable: vec![],
            fail_transport: 0,
            stream_chunk: None,
            after_first_chunk: None,
            latency_ms: 0,
        }
    }

    /// Registered through the client itself; the key comes back from "disk".
    fn registered() -> Self {
        let mut h = Self::new();
        h.command(SpacesCommand::Register { name: "Echo".into(), description: "a test agent".into() });
        assert!(h.client.is_registered());
        h
    }

    fn command(&mut self, c: SpacesCommand) -> CallId {
        let id = self.client.command(c, self.now).unwrap();
        self.drain();
        id
    }

    fn drain(&mut self) -> Option<u64> {
        for _ in 0..400 {
            let output = self.client.poll_output();
            self.loggable.push(format!("{output:?}"));
            match output {
                Output::Http { id, request, .. } => {
                    self.sent.push(format!("{} {}", request.method(), request.uri()));
                    self.now += self.latency_ms;
                    if self.fail_transport > 0 {
                        self.fail_transport -= 1;
                        self.client.handle_transport_error(id, "connection refused", self.now).unwrap();
                        continue;
                    }
                    let is_tts = request.uri().path().contains("text-to-speech");
                    let response = self.sandbox.handle(request, self.now);
                    match self.stream_chunk.filter(|_| is_tts && response.status().is_success()) {
                        Some(n) => {
                            let (parts, body) = response.into_parts();
                            for (i, chunk) in body.chunks(n).enumerate() {
                                self.client.handle_body_chunk(id, chunk, self.now).unwrap();
                                if i == 0
                                    && let Some(f) = &mut self.after_first_chunk
                                {
                                    f(&mut self.client, self.now);
                                }
                            }
                            self.client.handle_response(id, http::Response::from_parts(parts, Vec::new()), self.now).unwrap();
                        }
                        None => self.client.handle_response(id, response, self.now).unwrap(),
                    }
                }
                Output::Persist { ticket, bytes } => {
                    self.disk = Some(bytes.expose().clone());
                    self.client.handle_persisted(ticket, self.now).unwrap();
                }
                Output::Event(event) => {
                    self.loggable.push(serde_json::to_string(&event).unwrap());
                    self.events.push(event);
                }
                Output::Wait { until_ms } => return until_ms,
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("livelock");
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while let Some(at) = self.drain().filter(|&at| at <= end) {
            self.now = self.now.max(at);
            self.client.handle_timeout(self.now);
        }
        self.now = end;
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
        self.sandbox.with_state(|s| s.moltspaces.add_room(Some(name), topic, count, T0));
    }

    fn no_secrets(&self) {
        for line in &self.loggable {
            for secret in ["sk-test-openai", "xi-test-eleven", "moltspaces_"] {
                assert!(!line.contains(secret), "secret {secret} in {line}");
            }
        }
    }
}

#[test]
fn register_persists_before_reporting() {
    let h = Harness::registered();
    let disk = String::from_utf8(h.disk.clone().unwrap()).unwrap();
    assert!(disk.starts_with("MOLTSPACES_API_KEY=moltspaces_") && disk.contains("MOLT_AGENT_NAME=Echo"), "{disk}");
    assert!(matches!(h.spaces()[..], [SpacesEvent::SpacesRegistered { name, .. }] if name == "Echo"));
    // The saved registration is a `.env`: a new client reads it back.
    let mut env = ENV.as_bytes().to_vec();
    env.extend_from_slice(h.disk.as_ref().unwrap());
    assert!(SpacesClient::from_env(&env, None).unwrap().is_registered());
    h.no_secrets();
}

#[test]
fn search_404_is_an_empty_list_and_topics_are_encoded() {
    let mut h = Harness::registered();
    let call = h.command(SpacesCommand::Search { topic: "web3 builders/ü".into() });
    assert!(h.sent.last().unwrap().ends_with("/rooms/web3%20builders%2F%C3%BC"), "{:?}", h.sent);
    assert!(matches!(h.spaces().last(), Some(SpacesEvent::SpacesRooms { call_id, rooms, .. }) if *call_id == call && rooms.is_empty()));
    assert!(h.failed().is_empty());
    // Without a key, nothing is sent.
    let mut bare = Harness::new();
    let e = bare.client.command(SpacesCommand::Search { topic: "x".into() }, T0).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotRegistered);
}

#[test]
fn join_picks_the_liveliest_room_in_camel_case_too() {
    for camel in [false, true] {
        let mut h = Harness::registered();
        h.sandbox.with_state(|s| s.moltspaces.camel_case = camel);
        h.seed_room("ai-agents-001", "AI agents", 2);
        h.seed_room("ai-agents-002", "AI agents talk", 5);
        h.seed_room("cooking-001", "cooking", 9);
        let call = h.command(SpacesCommand::Join { topic: "ai agents".into() });
        let tickets = h.tickets();
        assert_eq!(tickets.len(), 1, "camel={camel}");
        let (reason, t) = &tickets[0];
        assert_eq!((*reason, t.room_name.as_str(), t.room_url.as_str()), (TicketReason::Join, "ai-agents-002", "https://sandbox.daily.co/ai-agents-002"));
        assert_eq!(t.expires_at_ms, (T0 / 1000 + 3600) * 1000, "JWT exp read");
        assert!(matches!(h.spaces().iter().find(|e| matches!(e, SpacesEvent::SpacesTicket { .. })), Some(SpacesEvent::SpacesTicket { call_id, .. }) if *call_id == call));
        assert!(format!("{t:?}").contains("<redacted>") && !format!("{t:?}").contains(&t.token));
        h.no_secrets();
    }
}

#[test]
fn join_creates_a_room_when_none_and_standalone_create_token() {
    let mut h = Harness::registered();
    h.command(SpacesCommand::Join { topic: "Rust audio".into() });
    let (reason, t) = h.tickets()[0].clone();
    assert_eq!((reason, t.room_name.as_str()), (TicketReason::Join, "rust-audio-001"));
    assert!(h.sent.iter().any(|s| s == "POST http://127.0.0.1/moltspaces/v1/rooms"));
    // Joining again is refused until leaving.
    assert_eq!(h.client.command(SpacesCommand::Join { topic: "x".into() }, h.now).unwrap_err().code, ErrorCode::InvalidState);
    h.command(SpacesCommand::Leave {});
    assert!(matches!(h.spaces().last(), Some(SpacesEvent::SpacesLeft { room_name: Some(r) }) if r == "rust-audio-001"));
    assert_eq!(h.drain(), None, "no rejoin timer after leaving");
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
    let mut h = Harness::registered();
    h.sandbox.with_state(|s| s.moltspaces.token_lifetime_s = 600);
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
    let mut h = Harness::registered();
    let body = serde_json::json!({"roomUrl":"https://x.daily.co/r","token":"opaque","roomName":"r"});
    h.client.member = Some(Membership { call: 9, topic: "t".into(), ticket: None, phase: Phase::InFlight, attempt: 1 });
    let t = h.client.ticket_from(&body).unwrap();
    h.client.joined(t, h.now);
    assert_eq!(h.client.ticket().unwrap().expires_at_ms, T0 + config::DEFAULT_TOKEN_LIFETIME_MS);
    assert_eq!(h.drain(), Some(T0 + config::DEFAULT_TOKEN_LIFETIME_MS - config::DEFAULT_REJOIN_MARGIN_MS));
}

#[test]
fn network_failure_mid_join_is_retried_with_backoff_then_fails_clearly() {
    let mut h = Harness::registered();
    h.seed_room("go-001", "go", 1);
    // Search succeeds, the token request fails twice in transport, then succeeds.
    h.client.command(SpacesCommand::Join { topic: "go".into() }, h.now).unwrap();
    let search = h.client.poll_output();
    let Output::Http { id, request, .. } = search else { panic!() };
    let r = h.sandbox.handle(request, h.now);
    h.client.handle_response(id, r, h.now).unwrap();
    h.fail_transport = 2;
    let retry_at = h.drain().unwrap();
    assert_eq!(retry_at, T0 + 1000);
    h.advance(1000);
    let retrying: Vec<_> = h.spaces().iter().filter_map(|e| if let SpacesEvent::SpacesRetrying { attempt, retry_at_ms, .. } = e { Some((*attempt, *retry_at_ms)) } else { None }).collect();
    assert_eq!(retrying, [(1, T0 + 1000), (2, T0 + 3000)], "doubling backoff");
    h.advance(2000);
    assert_eq!(h.tickets().len(), 1);
    assert!(h.failed().is_empty());

    // Down for good: after max_attempts the join fails with the transport error.
    let mut h = Harness::registered();
    h.fail_transport = 10;
    let call = h.command(SpacesCommand::Join { topic: "go".into() });
    h.advance(60_000);
    let failed: Vec<_> = h.events.iter().filter_map(|e| if let SpacesEvent::Call(CallEvent::CallFailed { call_id, error }) = e { Some((*call_id, error.status, error.message.clone())) } else { None }).collect();
    assert_eq!(failed, [(call, 0, "connection refused".into())]);
    assert!(h.client.ticket().is_none());
    // 5xx from the server is retried the same way.
    let mut h = Harness::registered();
    h.sandbox.with_state(|s| s.moltspaces.fail_next = 1);
    h.command(SpacesCommand::Join { topic: "go".into() });
    h.advance(1000);
    assert_eq!(h.tickets().len(), 1);
}

#[test]
fn a_vanished_room_is_searched_again_on_rejoin() {
    let mut h = Harness::registered();
    h.seed_room("old-001", "old", 1);
    h.command(SpacesCommand::Join { topic: "old".into() });
    h.sandbox.with_state(|s| s.moltspaces.rooms.clear());
    h.command(SpacesCommand::Dropped {});
    let t = h.tickets();
    assert_eq!(t.len(), 2);
    assert_eq!((t[1].0, t[1].1.room_name.as_str()), (TicketReason::Rejoin, "old-001"), "recreated on the topic: {:?}", h.sent);
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
    let mut h = Harness::registered();
    h.latency_ms = 100;
    h.sandbox.with_state(|s| s.speech.transcripts.push_back("What is the weather like?".into()));
    h.stream_chunk = Some(4801);
    let turn = h.client.utterance(&wav(800), h.now).unwrap();
    h.drain();
    let stt = h.sent.last().unwrap().clone();
    assert_eq!(stt, "POST http://127.0.0.1/openai/v1/audio/transcriptions");
    let transcript = h.spaces().iter().find_map(|e| if let SpacesEvent::SpacesTranscript { text, stt_ms, .. } = e { Some((text.untrusted_text.clone(), *stt_ms)) } else { None });
    assert_eq!(transcript, Some(("What is the weather like?".into(), 100)));
    h.now += 250; // the agent thinks
    assert_eq!(h.command(SpacesCommand::Reply { text: "Sunny and warm today.".into() }), turn);
    assert_eq!(h.sent.last().unwrap(), "POST http://127.0.0.1/elevenlabs/v1/text-to-speech/4tRn1lSkEn13EVTuqb0g/stream?output_format=pcm_24000");
    let audio = h.client.take_audio();
    assert!(audio.len() > 24_000, "about a second of speech or more: {}", audio.len());
    assert!(audio.iter().map(|s| s.unsigned_abs() as u64).max().unwrap() > 1000, "not silent");
    let chunks = h.spaces().iter().filter(|e| matches!(e, SpacesEvent::SpacesAudio { .. })).count();
    assert!(chunks > 3, "streamed in chunks: {chunks}");
    // A playback_finished before all audio is played would be starvation; after it, the end.
    h.now += 1500;
    h.command(SpacesCommand::PlaybackFinished {});
    assert_eq!(turn_states(&h), [TurnState::Thinking, TurnState::Speaking, TurnState::Listening]);
    let done = h.spaces().iter().find_map(|e| if let SpacesEvent::SpacesTurnDone { latency, interrupted, error, .. } = e { Some((*latency, *interrupted, error.clone())) } else { None }).unwrap();
    assert_eq!(done.1, false);
    assert_eq!(done.2, None);
    assert_eq!(done.0, Latency { stt_ms: Some(100), agent_ms: Some(250), tts_first_byte_ms: Some(100), tts_total_ms: Some(100), playback_ms: Some(1500) });
    h.no_secrets();
    // The exact request shapes reached the stand-ins.
    let stats = h.sandbox.with_state(|s| s.speech.stats.clone());
    assert_eq!((stats.transcriptions, stats.syntheses, stats.last_model.as_deref()), (1, 1, Some("whisper-1")));
}

#[test]
fn barge_in_interrupts_speaking() {
    let mut h = Harness::registered();
    h.sandbox.with_state(|s| s.speech.transcripts.push_back("Tell me a long story.".into()));
    h.stream_chunk = Some(2000);
    h.after_first_chunk = Some(Box::new(|c: &mut SpacesClient, now| {
        c.command(SpacesCommand::BargeIn {}, now).unwrap();
    }));
    h.client.utterance(&wav(500), h.now).unwrap();
    h.drain();
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
    assert_eq!(h.client.utterance(&wav(300), h.now).unwrap(), 2);
}

#[test]
fn voice_errors_are_clear() {
    let mut h = Harness::registered();
    assert_eq!(h.client.utterance(b"not a wav", h.now).unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(h.client.command(SpacesCommand::Reply { text: " ".into() }, h.now).unwrap_err().code, ErrorCode::InvalidArgument);
    // STT failure ends the turn with the error, back to listening.
    h.fail_transport = 1;
    h.client.utterance(&wav(300), h.now).unwrap();
    h.drain();
    let err = h.spaces().iter().find_map(|e| if let SpacesEvent::SpacesTurnDone { error, .. } = e { error.clone() } else { None }).unwrap();
    assert_eq!(err.status, 0);
    assert_eq!(h.client.turn_state(), TurnState::Listening);
    // No keys configured: refused before sending.
    let mut c = SpacesClient::from_env(b"", None).unwrap();
    assert_eq!(c.utterance(&wav(100), T0).unwrap_err().code, ErrorCode::InvalidState);
    assert!(SpacesClient::from_env(b"MOLTSPACES_API_BASE=http://example.com/v1\n", None).is_err(), "plain http off loopback");
    assert!(SpacesCommand::from_json(r#"{"command":"join","topic":"x","extra":1}"#).is_err());
}
