//! `moltlink spaces …`: Moltspaces from the shell. Configuration comes from the saved
//! registration (`~/.config/moltspaces/registration.env`, written by `register`), an optional
//! `--env-file` (the skill's `.env`), then the environment (MOLTSPACES_API_KEY, MOLT_AGENT_ID,
//! MOLT_AGENT_NAME, OPENAI_API_KEY, ELEVENLABS_API_KEY, ELEVENLABS_VOICE_ID and the bases
//! MOLTSPACES_API_BASE, OPENAI_API_BASE, ELEVENLABS_API_BASE); later sources win. Keys are
//! never arguments (arguments show in `ps`).
//!
//! `join` prints the join ticket (for an external Daily transport) and runs the voice loop:
//! the audio pipeline on cpal devices or `--input/--output` WAV files; each utterance goes to
//! speech-to-text, the transcript to the agent (`--agent-cmd CMD` gets it on stdin and
//! answers on stdout, or `--reply TEXT` scripted replies in order), the reply to streamed
//! text-to-speech and the pipeline's playback. With files, network calls block the loop (file
//! runs are paced by the audio, so that costs nothing). On devices they never block the audio:
//! the device callbacks and the pipeline run on their own threads (device_loop.rs), the
//! network and the agent on this one.

use super::device_loop::{AudioWorker, mic_callback, speaker_callback};
use super::host::{NativeHost, now_ms};
use clap::{Args, Subcommand};
use moltlink::audio::{AudioConfig, AudioEvent, AudioPipeline, DeviceFormat, wav};
use moltlink::spaces::{SpacesEvent, TurnState};
use moltlink::io::CallEvent;
use moltlink::{Output, SansIo, SpacesClient, SpacesCommand, SpacesConfig};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct SpacesOptions {
    /// Moltspaces API base (https, or http to a loopback sandbox).
    #[arg(long, global = true)]
    api_base: Option<String>,
    /// The skill's `.env` file.
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    /// Where `register` saves the API key and agent id (read back by every command).
    #[arg(long, global = true)]
    registration: Option<PathBuf>,
    /// Print every event as one JSON line instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Give up a one-shot command (or getting a join ticket) after this many seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = super::DEFAULT_TIMEOUT_S)]
    timeout: u64,
}

#[derive(Subcommand)]
pub enum SpacesCli {
    /// Register an agent (POST /agents/register); the key is saved to the registration file.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: String,
    },
    /// Search rooms on a topic (an empty list when there are none).
    Search { topic: String },
    /// Create a room on a topic; prints its join ticket.
    Create { topic: String },
    /// Get a join ticket for a room.
    Token { room: String },
    /// Join the liveliest room on a topic (or create one) and hold the conversation.
    Join(JoinArgs),
}

#[derive(Args)]
pub struct JoinArgs {
    #[arg(long)]
    topic: String,
    /// Microphone from this WAV file instead of a device.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Speaker to this WAV file instead of a device.
    #[arg(long)]
    output: Option<PathBuf>,
    /// The agent: a shell command that reads the transcript on stdin and prints the reply.
    #[arg(long, conflicts_with = "reply")]
    agent_cmd: Option<String>,
    /// Scripted replies, one per turn in order (repeat the flag).
    #[arg(long)]
    reply: Vec<String>,
    /// Only print the ticket; no voice loop.
    #[arg(long)]
    ticket_only: bool,
    /// How long to run on real devices.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Pipeline settings as JSON (see `AudioConfig`).
    #[arg(long)]
    audio_config: Option<String>,
}

fn default_registration() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".config/moltspaces/registration.env")
}

fn registration_path(options: &SpacesOptions) -> PathBuf {
    options.registration.clone().unwrap_or_else(default_registration)
}

fn config(options: &SpacesOptions) -> Result<SpacesConfig, String> {
    let mut config = SpacesConfig::default();
    let registration = registration_path(options);
    for path in [Some(registration), options.env_file.clone()].into_iter().flatten() {
        if let Some(bytes) = super::store::read(&path)? {
            config.apply_env(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let mut env = String::new();
    for key in moltlink::spaces::config::ENV_KEYS.iter().chain(&["MOLTSPACES_API_BASE", "OPENAI_API_BASE", "ELEVENLABS_API_BASE"]) {
        if let Ok(value) = std::env::var(key) {
            env.push_str(&format!("{key}={value}\n"));
        }
    }
    config.apply_env(env.as_bytes()).map_err(|e| e.to_string())?;
    zeroize::Zeroize::zeroize(&mut env);
    if let Some(base) = &options.api_base {
        config.api_base = base.clone();
    }
    Ok(config)
}

pub fn run(command: SpacesCli, options: SpacesOptions) -> Result<(), String> {
    let mut client = SpacesClient::new(config(&options)?).map_err(|e| e.to_string())?;
    let mut host = NativeHost::new(registration_path(&options));
    let json = options.json;
    host.on_event = Box::new(move |e| print_event(e, json));
    let (command, join) = match command {
        SpacesCli::Register { name, description } => (SpacesCommand::Register { name, description, bio: None }, None),
        SpacesCli::Search { topic } => (SpacesCommand::Search { topic }, None),
        SpacesCli::Create { topic } => (SpacesCommand::Create { topic }, None),
        SpacesCli::Token { room } => (SpacesCommand::Token { room }, None),
        SpacesCli::Join(args) => (SpacesCommand::Join { topic: args.topic.clone() }, Some(args)),
    };
    let call = client.command(command, now_ms()).map_err(|e| match e.code {
        // Say where the key was looked for.
        moltlink::ErrorCode::NotRegistered => {
            let looked: Vec<String> = [Some(registration_path(&options)), options.env_file.clone()].into_iter().flatten().map(|p| p.display().to_string()).collect();
            format!("{e} (looked in {} and the environment)", looked.join(", "))
        }
        _ => e.to_string(),
    })?;
    let outcome = host.run_until(&mut client, Duration::from_secs(options.timeout), |e| match e {
        SpacesEvent::Call(CallEvent::CallFailed { call_id, .. })
        | SpacesEvent::SpacesRegistered { call_id, .. }
        | SpacesEvent::SpacesRooms { call_id, .. }
        | SpacesEvent::SpacesTicket { call_id, .. } => *call_id == call,
        _ => false,
    })?;
    if let SpacesEvent::Call(CallEvent::CallFailed { error, .. }) = outcome {
        return Err(format!("Moltspaces: {error}"));
    }
    match join {
        Some(args) if !args.ticket_only => voice_loop(&mut client, &args, json),
        _ => Ok(()),
    }
}

fn print_event(event: &SpacesEvent, json: bool) {
    if json {
        println!("{}", serde_json::to_string(event).unwrap_or_default());
        return;
    }
    let line = match event {
        SpacesEvent::SpacesRegistered { agent_id, name, .. } => format!("registered {name} ({agent_id}); key saved"),
        SpacesEvent::SpacesRooms { topic, rooms, .. } => {
            let mut s = format!("{} room(s) on {topic:?}", rooms.len());
            for r in rooms {
                s.push_str(&format!("\n  {} ({} participants) {}", r.room_name, r.participant_count.map_or("?".into(), |n| n.to_string()), r.topic.as_deref().or(r.url.as_deref()).unwrap_or("")));
            }
            s
        }
        SpacesEvent::SpacesTicket { ticket, reason, .. } => format!(
            "ticket ({reason:?}): room_url={} room_name={} token={} expires_at_ms={}",
            ticket.room_url, ticket.room_name, ticket.token, ticket.expires_at_ms
        ),
        SpacesEvent::SpacesTranscript { turn, text, stt_ms } => {
            format!("turn {turn}: heard {:?} (stt {stt_ms} ms)", text.untrusted_text)
        }
        SpacesEvent::SpacesTurn { turn, state } => format!("turn {turn}: {state:?}"),
        SpacesEvent::SpacesAudio { .. } => return,
        SpacesEvent::SpacesTurnDone { turn, interrupted, latency, error } => format!(
            "turn {turn} done{}{}: stt {:?} ms, agent {:?} ms, tts first byte {:?} ms, first audio {:?} ms, tts total {:?} ms, playback {:?} ms",
            if *interrupted { " (interrupted)" } else { "" },
            error.as_ref().map(|e| format!(" with error {e}")).unwrap_or_default(),
            latency.stt_ms, latency.agent_ms, latency.tts_first_byte_ms, latency.tts_first_audio_ms, latency.tts_total_ms, latency.playback_ms
        ),
        other => format!("{}", serde_json::to_string(other).unwrap_or_default()),
    };
    println!("{line}");
}

/// Perform one request, passing its body to `handle_body_chunk` as it arrives when the core
/// marked it `streaming` (text-to-speech), else collecting it.
fn perform(
    agent: &ureq::Agent,
    client: &mut SpacesClient,
    id: u64,
    request: http::Request<Vec<u8>>,
    streaming: bool,
    now_ms: &dyn Fn() -> u64,
) -> Result<(), String> {
    match agent.run(request) {
        Err(e) => client.handle_transport_error(id, &e.to_string(), now_ms()),
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let mut reader = body.into_with_config().limit(64 << 20).reader();
            let mut collected = Vec::new();
            let mut buf = [0u8; 8192];
            let ok = parts.status.is_success();
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) if streaming && ok => client.handle_body_chunk(id, &buf[..n], now_ms()).map_err(|e| e.to_string())?,
                    Ok(n) => collected.extend_from_slice(&buf[..n]),
                    Err(e) => return client.handle_transport_error(id, &e.to_string(), now_ms()).map_err(|e| e.to_string()),
                }
            }
            client.handle_response(id, http::Response::from_parts(parts, collected), now_ms())
        }
    }
    .map_err(|e| e.to_string())
}

struct Agent<'a> {
    cmd: Option<&'a str>,
    replies: std::vec::IntoIter<String>,
}

impl Agent<'_> {
    fn answer(&mut self, transcript: &str) -> Result<Option<String>, String> {
        let Some(cmd) = self.cmd else { return Ok(self.replies.next()) };
        let mut child = std::process::Command::new("sh")
            .args(["-c", cmd])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("--agent-cmd: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(transcript.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| format!("--agent-cmd: {e}"))?;
        let reply = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((!reply.is_empty()).then_some(reply))
    }
}

fn read_wav(path: &Path) -> Result<(Vec<i16>, DeviceFormat), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (pcm, rate, channels) = wav::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let format = DeviceFormat { rate, channels };
    format.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((pcm, format))
}

/// Drain the client: perform requests, answer transcripts, hand TTS audio to `tts` (the
/// pipeline, or the audio worker's queue).
fn pump(
    client: &mut SpacesClient,
    http: &ureq::Agent,
    tts: &mut dyn FnMut(Vec<i16>),
    agent: &mut Agent,
    json: bool,
    now_ms: &dyn Fn() -> u64,
) -> Result<(), String> {
    loop {
        match client.poll_output() {
            Output::Wait { .. } => return Ok(()),
            Output::Http { id, request, stream } => perform(http, client, id, *request, stream, now_ms)?,
            Output::Persist { ticket, .. } => client.handle_persisted(ticket, now_ms()).map_err(|e| e.to_string())?,
            Output::Event(event) => {
                print_event(&event, json);
                match &event {
                    SpacesEvent::SpacesAudio { .. } => tts(client.take_audio()),
                    SpacesEvent::SpacesTranscript { text, .. } => {
                        let started = Instant::now();
                        let reply = agent.answer(&text.untrusted_text)?;
                        if !json {
                            println!("agent answered in {} ms", started.elapsed().as_millis());
                        }
                        let command = match reply {
                            Some(text) => SpacesCommand::Reply { text },
                            None => SpacesCommand::Skip {},
                        };
                        client.command(command, now_ms()).map_err(|e| e.to_string())?;
                    }
                    _ => {}
                }
            }
            other => return Err(format!("unexpected output {other:?}")),
        }
    }
}

fn voice_loop(client: &mut SpacesClient, args: &JoinArgs, json: bool) -> Result<(), String> {
    let (Some(input), Some(output)) = (&args.input, &args.output) else {
        return devices_loop(client, args, json);
    };
    let (mic, format) = read_wav(input)?;
    let mut audio = match &args.audio_config {
        Some(text) => AudioConfig::from_json(text).map_err(|e| e.to_string())?,
        None => AudioConfig::default(),
    };
    audio.device = format;
    let mut pipeline = AudioPipeline::new(audio).map_err(|e| e.to_string())?;
    let http = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).timeout_global(Some(Duration::from_secs(60))).build().new_agent();
    let mut agent = Agent { cmd: args.agent_cmd.as_deref(), replies: args.reply.clone().into_iter() };
    let spec = hound::WavSpec { channels: format.channels, sample_rate: format.rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(output, spec).map_err(|e| format!("{}: {e}", output.display()))?;
    let n = pipeline.frame_samples();
    let (mut frame, mut out) = (vec![0i16; n], vec![0i16; n]);
    let mut at = 0;
    let mut extra = 0u32;
    let mut played_frames = 0u64;
    // The file's timeline: audio time, plus the wall time the loop spends blocked on the
    // network and the agent (the audio pauses meanwhile), so latencies read as on a device.
    let base = super::host::now_ms();
    let audio_ms = std::cell::Cell::new(0u64);
    let blocked = std::cell::Cell::new(Duration::ZERO);
    let since = std::cell::Cell::new(Instant::now());
    let clock = || base + audio_ms.get() + (blocked.get() + since.get().elapsed()).as_millis() as u64;
    loop {
        since.set(Instant::now());
        // 20 ms frames; their length alternates at rates like 11 025 Hz: ask each time.
        let n = pipeline.next_capture_samples();
        frame.resize(n, 0);
        out.resize(pipeline.next_playback_samples(), 0);
        if at + n <= mic.len() {
            frame.copy_from_slice(&mic[at..at + n]);
            at += n;
        } else {
            // After the input: silence until the turn is over (at most 60 s).
            frame.fill(0);
            extra += 1;
            let busy = client.turn_state() != TurnState::Listening || pipeline.is_playing() || pipeline.is_speaking();
            if (extra > 50 && !busy) || extra > 3000 {
                break;
            }
        }
        pipeline.process_capture(&frame, &mut []).map_err(|e| e.to_string())?;
        pipeline.process_playback(&mut out).map_err(|e| e.to_string())?;
        if pipeline.is_playing() {
            played_frames += 1;
        }
        for &s in &out {
            writer.write_sample(s).map_err(|e| format!("writing the output: {e}"))?;
        }
        audio_ms.set(audio_ms.get() + 20);
        audio_events(client, &mut pipeline, json, &clock)?;
        pump(client, &http, &mut |pcm| pipeline.push_tts(&pcm), &mut agent, json, &clock)?;
        blocked.set(blocked.get() + since.get().elapsed());
    }
    writer.finalize().map_err(|e| format!("writing the output: {e}"))?;
    if !json {
        println!("played {} ms of agent speech", played_frames * 20);
    }
    client.command(SpacesCommand::Leave {}, clock()).map_err(|e| e.to_string())?;
    pump(client, &http, &mut |pcm| pipeline.push_tts(&pcm), &mut agent, json, &clock)
}

/// Pipeline events → the client (utterances, barge-in, playback end).
fn audio_events(client: &mut SpacesClient, pipeline: &mut AudioPipeline, json: bool, now_ms: &dyn Fn() -> u64) -> Result<(), String> {
    while let Some(event) = pipeline.poll_event() {
        let wav = matches!(event, AudioEvent::SpeechStopped { .. }).then(|| pipeline.utterance_wav());
        audio_event(client, event, wav.as_deref(), json, now_ms())?;
    }
    Ok(())
}

/// One pipeline event → the client; `utterance` is the WAV that came with speech-stopped.
fn audio_event(client: &mut SpacesClient, event: AudioEvent, utterance: Option<&[u8]>, json: bool, now: u64) -> Result<(), String> {
    if json {
        println!("{}", serde_json::to_string(&event).unwrap_or_default());
    }
    match event {
        AudioEvent::SpeechStopped { .. } => {
            if let Some(wav) = utterance {
                client.utterance(wav, now).map_err(|e| e.to_string())?;
            }
        }
        AudioEvent::BargeIn { at_ms, flushed_ms } => {
            if !json {
                println!("{}.{:03}s barge-in: playback cut, {flushed_ms} ms dropped", at_ms / 1000, at_ms % 1000);
            }
            client.command(SpacesCommand::BargeIn {}, now).map_err(|e| e.to_string())?;
        }
        AudioEvent::PlaybackFinished { .. } => {
            client.command(SpacesCommand::PlaybackFinished {}, now).map_err(|e| e.to_string())?;
        }
        AudioEvent::PlaybackStarted { .. } => {
            client.command(SpacesCommand::PlaybackStarted {}, now).map_err(|e| e.to_string())?;
        }
        AudioEvent::SpeechStarted { .. } => {}
    }
    Ok(())
}

/// The device loop's control thread until `until`: pipeline events from the worker to the
/// client, the client's HTTP and the agent (blocking here, never on the audio: the worker and
/// the device callbacks keep running), timeouts (token renewal).
fn control_loop(client: &mut SpacesClient, http: &ureq::Agent, agent: &mut Agent, worker: &AudioWorker, json: bool, until: Instant) -> Result<(), String> {
    while Instant::now() < until {
        if let Some(message) = worker.next_event(Duration::from_millis(20))? {
            audio_event(client, message.event, message.utterance.as_deref(), json, now_ms())?;
        }
        pump(client, http, &mut |pcm| worker.push_tts(pcm), agent, json, &now_ms)?;
        client.handle_timeout(now_ms());
    }
    Ok(())
}

fn devices_loop(client: &mut SpacesClient, args: &JoinArgs, json: bool) -> Result<(), String> {
    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    if args.input.is_some() != args.output.is_some() {
        return Err("give both --input and --output, or neither (devices)".into());
    }
    let host = cpal::default_host();
    let mic = host.default_input_device().ok_or("no microphone found (no sound card?): pass --input q.wav --output out.wav")?;
    let speaker = host.default_output_device().ok_or("no speaker found (no sound card?): pass --input q.wav --output out.wav")?;
    let mut audio = match &args.audio_config {
        Some(text) => AudioConfig::from_json(text).map_err(|e| e.to_string())?,
        None => AudioConfig::default(),
    };
    audio.device = DeviceFormat { rate: 48_000, channels: 1 };
    let cfg = cpal::StreamConfig { channels: 1, sample_rate: 48_000, buffer_size: cpal::BufferSize::Default };
    let worker = AudioWorker::spawn(audio, 48_000, 1)?;
    // The callbacks only move samples through the worker's rings (device_loop.rs).
    let mut on_mic = mic_callback(std::sync::Arc::clone(&worker.mic));
    let mut on_speaker = speaker_callback(std::sync::Arc::clone(&worker.speaker));
    let input = mic
        .build_input_stream::<f32, _, _>(cfg, move |d: &[f32], _: &cpal::InputCallbackInfo| on_mic(d), |e| eprintln!("microphone: {e}"), None)
        .map_err(|e| format!("cannot open the microphone at 48 kHz mono: {e}"))?;
    let output = speaker
        .build_output_stream::<f32, _, _>(cfg, move |d: &mut [f32], _: &cpal::OutputCallbackInfo| on_speaker(d), |e| eprintln!("speaker: {e}"), None)
        .map_err(|e| format!("cannot open the speaker at 48 kHz mono: {e}"))?;
    input.play().map_err(|e| e.to_string())?;
    output.play().map_err(|e| e.to_string())?;
    let http = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).timeout_global(Some(Duration::from_secs(60))).build().new_agent();
    let mut agent = Agent { cmd: args.agent_cmd.as_deref(), replies: args.reply.clone().into_iter() };
    control_loop(client, &http, &mut agent, &worker, json, Instant::now() + Duration::from_secs(args.seconds))?;
    let dropped = |ring: &super::device_loop::Ring| ring.dropped.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "devices: {} frames, {} mic and {} speaker samples dropped",
        worker.frames.load(std::sync::atomic::Ordering::Relaxed),
        dropped(&worker.mic),
        dropped(&worker.speaker)
    );
    client.command(SpacesCommand::Leave {}, now_ms()).map_err(|e| e.to_string())?;
    pump(client, &http, &mut |pcm| worker.push_tts(pcm), &mut agent, json, &now_ms)
}

#[cfg(test)]
mod device_tests {
    //! The device loop under a slow network: the real control loop blocks 1.5 s in an HTTP
    //! request while a simulated sound card calls the real device callbacks every 10 ms.
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// A Moltspaces API answering each request after `delay`; returns its base and the
    /// (arrived, answered) instants of the requests.
    fn slow_api(delay: Duration) -> (String, Arc<Mutex<Vec<(Instant, Instant)>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}/v1", listener.local_addr().unwrap().port());
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
                    line.clear();
                }
                let arrived = Instant::now();
                std::thread::sleep(delay);
                let body = r#"{"rooms":[]}"#;
                let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                seen.lock().unwrap().push((arrived, Instant::now()));
            }
        });
        (base, log)
    }

    #[test]
    fn device_audio_keeps_flowing_while_the_control_thread_blocks_on_http() {
        let (base, requests) = slow_api(Duration::from_millis(1500));
        let mut config = SpacesConfig::default();
        config.apply_env(format!("MOLTSPACES_API_KEY=moltspaces_test\nMOLTSPACES_API_BASE={base}\n").as_bytes()).unwrap();
        let mut client = SpacesClient::new(config).unwrap();
        client.command(SpacesCommand::Search { topic: "slow".into() }, now_ms()).unwrap();

        let audio = AudioConfig { device: DeviceFormat { rate: 48_000, channels: 1 }, ..AudioConfig::default() };
        let tts_rate = audio.tts_rate as usize;
        let worker = AudioWorker::spawn(audio, 48_000, 1).unwrap();
        // 3 s of agent speech (a tone) queued before the loop starts.
        worker.push_tts((0..3 * tts_rate).map(|i| (8000.0 * (i as f32 * 0.06).sin()) as i16).collect());

        // The sound card: 10 ms callbacks both ways, each timed; which speaker periods had sound.
        let stop = Arc::new(AtomicBool::new(false));
        let device = {
            let (mut on_mic, mut on_speaker) = (mic_callback(Arc::clone(&worker.mic)), speaker_callback(Arc::clone(&worker.speaker)));
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mic, mut out) = (vec![0f32; 480], vec![0f32; 480]);
                let (mut took, mut sound) = (Vec::new(), Vec::new());
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    on_mic(&mic);
                    on_speaker(&mut out);
                    took.push(t.elapsed());
                    sound.push((t, out.iter().any(|s| s.abs() > 0.01)));
                    next += Duration::from_millis(10);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                (took, sound)
            })
        };
        let http = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(10))).build().new_agent();
        let mut agent = Agent { cmd: None, replies: Vec::new().into_iter() };
        let frames_before = worker.frames.load(Ordering::Relaxed);
        control_loop(&mut client, &http, &mut agent, &worker, true, Instant::now() + Duration::from_millis(2500)).unwrap();
        stop.store(true, Ordering::Relaxed);
        let (mut took, sound) = device.join().unwrap();

        let &[(arrived, answered)] = &requests.lock().unwrap()[..] else { panic!("expected one request") };
        assert!(answered - arrived >= Duration::from_millis(1500));
        // While the control thread waited for the response, the speaker played the agent.
        let during: Vec<bool> = sound.iter().filter(|(t, _)| *t > arrived + Duration::from_millis(200) && *t < answered).map(|&(_, s)| s).collect();
        let with_sound = during.iter().filter(|&&s| s).count();
        assert!(during.len() > 100 && with_sound * 100 >= during.len() * 95, "{with_sound} of {} speaker periods had sound while HTTP blocked", during.len());
        let frames = worker.frames.load(Ordering::Relaxed) - frames_before;
        assert!(frames >= 100, "the pipeline ran {frames} frames in 2.5 s");
        // Every callback within its budget: far below the 10 ms period (the callbacks only
        // copy through rings; one that waited on the network would take 1.5 s).
        took.sort();
        let (median, max) = (took[took.len() / 2], took[took.len() - 1]);
        eprintln!("device callbacks: {} calls, median {median:?}, max {max:?}; {with_sound}/{} periods with sound during HTTP; {frames} frames", took.len(), during.len());
        assert!(median < Duration::from_micros(200), "median callback {median:?}");
        assert!(max < Duration::from_millis(10), "slowest callback {max:?}");
    }
}
