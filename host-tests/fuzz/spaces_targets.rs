//! Moltspaces: the `.env`/options parsing and a registered client driven by [`drive`] with
//! fuzzed room answers, transcriptions and TTS audio streamed in body chunks.

use super::{Ctx, Hooks, TakeStr, chats_frame, drive, fake_jwt, json_ok};
use arbitrary::{Result, Unstructured};
use moltlink::SpacesClient;
use moltlink::io::SansIo;
use moltlink::spaces::{SpacesConfig, config::parse_env};

/// A registered agent with speech keys, every base on loopback (allowed over plain http).
pub const ENV: &str = "MOLTSPACES_API_BASE=http://127.0.0.1/moltspaces/v1\nOPENAI_API_BASE=http://127.0.0.1/openai\n\
ELEVENLABS_API_BASE=http://127.0.0.1/elevenlabs\nOPENAI_API_KEY=sk-fuzz-openai\nELEVENLABS_API_KEY=xi-fuzz-eleven\n\
MOLTSPACES_API_KEY=moltspaces_fuzz_key\nMOLT_AGENT_ID=molt-agent-fuzz\nMOLT_AGENT_NAME=Fuzz\n";

const OPTIONS: &[&str] = &[
    "",
    r#"{"backoff_ms":1000,"max_attempts":3}"#,
    r#"{"token_lifetime_ms":1,"rejoin_margin_ms":0,"max_attempts":1,"backoff_ms":0}"#,
    r#"{"token_lifetime_ms":18446744073709551615,"rejoin_margin_ms":18446744073709551615,"backoff_ms":18446744073709551615,"max_attempts":4294967295}"#,
];

/// Moltspaces: `.env` + options parsing (first byte even), or a session (odd).
pub fn spaces_session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        return env_and_options(rest);
    }
    let mut u = Unstructured::new(rest);
    let Ok(options) = u.choose(OPTIONS) else { return };
    // Sometimes unregistered (no API key): register first, then the persisted key is used.
    let env = if u.ratio(1, 8).unwrap_or(false) { ENV.replace("MOLTSPACES_API_KEY=moltspaces_fuzz_key\n", "") } else { ENV.to_owned() };
    let mut client = SpacesClient::from_env(env.as_bytes(), Some(options)).expect("the canned .env is valid");
    let hooks = Hooks { canned: spaces_canned, command: spaces_command, frame: chats_frame };
    let _ = drive(&mut client, &mut u, &hooks);
    let _ = client.state_json();
}

/// Everything a host may hand in as `.env` bytes and options JSON, checked like a constructor.
fn env_and_options(data: &[u8]) {
    // `.env` bytes, a 0xFF separator, then the options text (possibly not UTF-8).
    let (env, options) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], Some(String::from_utf8_lossy(&data[i + 1..]).into_owned())),
        None => (data, None),
    };
    let _ = parse_env(env).map(|pairs| {
        // Keys and values come back verbatim; a value never contains a line break.
        for (k, v) in pairs {
            assert!(!k.contains('\n') && !v.expose().contains('\n'), "a .env value spans lines");
        }
    });
    // Layered as hosts do: the canned registration first, the fuzzed bytes over it.
    let mut config = SpacesConfig::default();
    let _ = config.apply_env(ENV.as_bytes());
    let _ = config.apply_env(env);
    let _ = config.apply_options_json(options.as_deref().unwrap_or(""));
    if let Ok(client) = SpacesClient::new(config) {
        let state = client.state_json();
        assert!(!state.contains("moltspaces_fuzz_key"), "state leaks the key: {state}");
    }
    let _ = SpacesClient::from_env(env, options.as_deref());
}

/// Good answers for every Moltspaces, OpenAI and ElevenLabs request, so turns get deep.
fn spaces_canned(request: &http::Request<Vec<u8>>, now: u64) -> Option<http::Response<Vec<u8>>> {
    let path = request.uri().path();
    let room = serde_json::json!({ "room_name": "r-1", "room_url": "https://x.daily.co/r-1", "token": fake_jwt(now) });
    if path.ends_with("/agents/register") {
        json_ok(serde_json::json!({ "success": true, "agent": { "api_key": "moltspaces_new", "agent_id": "molt-agent-2", "name": "Fuzz" } }))
    } else if path.ends_with("/token") || path.ends_with("/rooms") {
        json_ok(room)
    } else if path.contains("/rooms/") {
        json_ok(serde_json::json!({ "rooms": [{ "room_name": "r-1", "topic": "t", "participant_count": 2 }, { "roomName": "r-2", "participantCount": "5" }] }))
    } else if path.ends_with("/audio/transcriptions") {
        json_ok(serde_json::json!({ "text": "hello there" }))
    } else if path.contains("/text-to-speech/") {
        http::Response::builder().status(200).header("content-type", "audio/pcm").body(vec![1, 0, 2, 0, 3]).ok()
    } else {
        None
    }
}

const SPACES_COMMANDS: &[&str] = &[
    r#"{"command":"join","topic":"web3 builders"}"#,
    r#"{"command":"search","topic":"ai"}"#,
    r#"{"command":"create","topic":"new room"}"#,
    r#"{"command":"token","room":"r-1"}"#,
    r#"{"command":"leave"}"#,
    r#"{"command":"dropped"}"#,
    r#"{"command":"reply","text":"hi, I am the agent"}"#,
    r#"{"command":"skip"}"#,
    r#"{"command":"barge_in"}"#,
    r#"{"command":"playback_finished"}"#,
    r#"{"command":"register","name":"Fuzz","description":"a fuzzing agent","bio":null}"#,
];

fn spaces_command(c: &mut SpacesClient, u: &mut Unstructured, ctx: &mut Ctx) -> Result<()> {
    let now = ctx.now;
    match u.int_in_range(0..=7u8)? {
        0 | 1 => drop(c.command_json(u.choose(SPACES_COMMANDS)?, now)),
        2 => drop(c.command_json(&String::arbitrary_take(u)?, now)),
        3 => {
            // A streamed body chunk for any outstanding request (only TTS streams).
            let id = if ctx.http.is_empty() { u.arbitrary()? } else { ctx.http[u.choose_index(ctx.http.len())?].0 };
            let len = u.int_in_range(0..=2048usize)?;
            let _ = c.handle_body_chunk(id, u.bytes(len.min(u.len()))?, now);
        }
        4 => {
            // An utterance: a real WAV of fuzzed samples, or fuzzed bytes behind a RIFF header.
            let wav = if u.arbitrary()? {
                let samples: Vec<i16> = (0..u.int_in_range(0..=800usize)?).map(|i| (i as i16).wrapping_mul(97)).collect();
                moltlink::audio::wav::encode(&samples, *u.choose(&[8000u32, 16000, 24000, 48000])?)
            } else {
                let mut wav = b"RIFF\0\0\0\0WAVE".to_vec();
                let len = u.int_in_range(0..=128usize)?;
                wav.extend_from_slice(u.bytes(len.min(u.len()))?);
                wav
            };
            let _ = c.utterance(&wav, now);
        }
        5 => {
            let ready = c.audio_bytes_ready();
            assert_eq!(c.take_audio_bytes().len(), ready, "take_audio_bytes drains what audio_bytes_ready said");
        }
        6 => {
            let state = c.state_json();
            assert!(!state.contains("moltspaces_fuzz_key") && !state.contains("sk-fuzz") && !state.contains("xi-fuzz"), "state leaks a key: {state}");
            let _ = c.turn_state();
        }
        _ => {
            let _ = c.command_json(&format!(r#"{{"command":"reply","text":{}}}"#, serde_json::Value::from(String::arbitrary_take(u)?)), now);
        }
    }
    Ok(())
}

