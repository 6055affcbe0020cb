//! `moltlink audio`: the voice pipeline on real devices (cpal) or WAV files.
//!
//! The pipeline itself is the sans-IO `moltlink::audio::AudioPipeline`; this file only moves
//! frames between it and a sound card or files. File runs go as fast as the CPU allows (the
//! pipeline counts samples, not wall time), so they work on machines without a sound card.

use clap::{Args, Subcommand};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use moltlink::audio::{AudioConfig, AudioEvent, AudioPipeline, DeviceFormat, MAX_PACKET, RATE_RANGE, wav};
use std::path::{Path, PathBuf};
use super::device_loop::{Ring, mic_callback, speaker_callback};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum AudioCommand {
    /// List the audio hosts and their input and output devices.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the pipeline mic → Opus → jitter buffer → speaker, printing VAD events.
    Loopback(LoopbackArgs),
}

#[derive(Args)]
pub struct LoopbackArgs {
    /// Read the microphone from this WAV file (mono or stereo, any rate from 4 to 384 kHz) instead of a device.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Write the speaker to this WAV file instead of a device.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Agent speech to play (a mono WAV file at any rate, e.g. espeak-ng's 22.05 kHz); the mic can barge in.
    #[arg(long)]
    tts: Option<PathBuf>,
    /// Save each utterance here as utterance-N.wav (16 kHz mono).
    #[arg(long)]
    utterances: Option<PathBuf>,
    /// How long to run with a real microphone.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Pipeline settings as JSON (see `AudioConfig`), e.g. '{"vad":{"confidence":0.8}}'.
    #[arg(long)]
    config: Option<String>,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
}

pub fn run(command: AudioCommand) -> Result<(), String> {
    match command {
        AudioCommand::Devices { json } => devices(json),
        AudioCommand::Loopback(args) => loopback(args),
    }
}

fn devices(json: bool) -> Result<(), String> {
    let mut found = Vec::new();
    for id in cpal::available_hosts() {
        let Ok(host) = cpal::host_from_id(id) else { continue };
        let Ok(devices) = host.devices() else { continue };
        for device in devices {
            let name = device.description().map(|d| d.name().to_owned()).unwrap_or_else(|_| "(unnamed)".into());
            let input = device.default_input_config().ok().map(|c| (c.sample_rate(), c.channels()));
            let output = device.default_output_config().ok().map(|c| (c.sample_rate(), c.channels()));
            found.push(serde_json::json!({
                "host": id.name(),
                "name": name,
                "input": input.map(|(r, c)| serde_json::json!({"rate": r, "channels": c})),
                "output": output.map(|(r, c)| serde_json::json!({"rate": r, "channels": c})),
            }));
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(found));
        return Ok(());
    }
    if found.is_empty() {
        println!("no audio devices found (no sound card?): use --input/--output file.wav");
    }
    for d in &found {
        let fmt = |v: &serde_json::Value| {
            if v.is_null() { "-".to_owned() } else { format!("{} Hz x{}", v["rate"], v["channels"]) }
        };
        println!("{:6} {:40} in {:14} out {}", d["host"].as_str().unwrap_or(""), d["name"].as_str().unwrap_or(""), fmt(&d["input"]), fmt(&d["output"]));
    }
    Ok(())
}

fn read_wav(path: &Path) -> Result<(Vec<i16>, DeviceFormat), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (pcm, rate, channels) = wav::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let format = DeviceFormat { rate, channels };
    format.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((pcm, format))
}

/// Where mic frames come from and speaker frames go.
enum Mic {
    File(Vec<i16>, usize),
    /// Samples from the callback (a lock-free ring), the stream (kept alive), start time.
    Device(Arc<Ring>, #[allow(dead_code)] cpal::Stream, Instant),
}
enum Speaker {
    File(Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>),
    /// Samples for the callback (a lock-free ring) and the stream (kept alive: dropping it
    /// stops playback).
    Device(Arc<Ring>, #[allow(dead_code)] cpal::Stream),
}

fn no_device(what: &str, flag: &str) -> String {
    format!("no {what} found (no sound card?): pass {flag} file.wav to run without one")
}

fn stream_config(format: DeviceFormat) -> cpal::StreamConfig {
    cpal::StreamConfig { channels: format.channels, sample_rate: format.rate, buffer_size: cpal::BufferSize::Default }
}

/// The device's default rate when the pipeline takes it, else 48 kHz.
fn device_format(config: Result<cpal::SupportedStreamConfig, cpal::Error>) -> DeviceFormat {
    let (rate, channels) = config.map(|c| (c.sample_rate(), c.channels().min(2))).unwrap_or((48_000, 1));
    DeviceFormat { rate: if RATE_RANGE.contains(&rate) { rate } else { 48_000 }, channels: channels.max(1) }
}

fn loopback(args: LoopbackArgs) -> Result<(), String> {
    let mut config = match &args.config {
        Some(text) => AudioConfig::from_json(text).map_err(|e| e.to_string())?,
        None => AudioConfig::default(),
    };
    let host = cpal::default_host();
    let (mic_file, format) = match &args.input {
        Some(path) => {
            let (pcm, format) = read_wav(path)?;
            (Some(pcm), format)
        }
        None => {
            let device = host.default_input_device().ok_or_else(|| no_device("microphone", "--input"))?;
            (None, device_format(device.default_input_config()))
        }
    };
    config.device = format;
    let tts = match &args.tts {
        Some(path) => {
            let (pcm, f) = read_wav(path)?;
            if f.channels != 1 {
                return Err(format!("{}: TTS audio must be mono", path.display()));
            }
            config.tts_rate = f.rate;
            Some(pcm)
        }
        None => None,
    };
    let mut pipeline = AudioPipeline::new(config).map_err(|e| e.to_string())?;
    if let Some(pcm) = &tts {
        pipeline.push_tts(pcm);
    }
    let n = pipeline.frame_samples();

    let mut mic = match mic_file {
        Some(pcm) => Mic::File(pcm, 0),
        None => {
            let device = host.default_input_device().ok_or_else(|| no_device("microphone", "--input"))?;
            // The callbacks only copy samples through rings of 200 ms (device_loop.rs).
            let ring = Ring::new(format.rate as usize * format.channels as usize / 5);
            let mut on_mic = mic_callback(Arc::clone(&ring));
            let stream = device
                .build_input_stream::<f32, _, _>(
                    stream_config(format),
                    move |data: &[f32], _: &cpal::InputCallbackInfo| on_mic(data),
                    |e| eprintln!("microphone: {e}"),
                    None,
                )
                .map_err(|e| format!("cannot open the microphone at {} Hz x{}: {e} (no sound card? pass --input file.wav)", format.rate, format.channels))?;
            stream.play().map_err(|e| format!("cannot start the microphone: {e}"))?;
            Mic::Device(ring, stream, Instant::now())
        }
    };
    let mut speaker = match &args.output {
        Some(path) => {
            let spec = hound::WavSpec { channels: format.channels, sample_rate: format.rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
            Speaker::File(Some(hound::WavWriter::create(path, spec).map_err(|e| format!("{}: {e}", path.display()))?))
        }
        None => {
            let device = host.default_output_device().ok_or_else(|| no_device("speaker", "--output"))?;
            let ring = Ring::new(format.rate as usize * format.channels as usize / 5);
            let mut on_speaker = speaker_callback(Arc::clone(&ring));
            let stream = device
                .build_output_stream::<f32, _, _>(
                    stream_config(format),
                    move |data: &mut [f32], _: &cpal::OutputCallbackInfo| on_speaker(data),
                    |e| eprintln!("speaker: {e}"),
                    None,
                )
                .map_err(|e| format!("cannot open the speaker at {} Hz x{}: {e} (no sound card? pass --output file.wav)", format.rate, format.channels))?;
            stream.play().map_err(|e| format!("cannot start the speaker: {e}"))?;
            Speaker::Device(ring, stream)
        }
    };

    let mut packet = [0u8; MAX_PACKET];
    let mut frame = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let (mut mic_f32, mut out_f32) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut seq: u16 = 0;
    let mut tail = 0;
    let mut saved = 0;
    loop {
        // One mic frame, or the end. Frames are 20 ms; at rates where that is not a whole number
        // of samples (11 025 Hz) their length alternates, so ask the pipeline each time.
        let n = pipeline.next_capture_samples();
        frame.resize(n, 0);
        out.resize(pipeline.next_playback_samples(), 0);
        let got = match &mut mic {
            Mic::File(pcm, at) => {
                if *at + n <= pcm.len() {
                    frame.copy_from_slice(&pcm[*at..*at + n]);
                    *at += n;
                    true
                } else {
                    // Let the playback and the last utterance finish: 1 s of silence.
                    frame.fill(0);
                    tail += 1;
                    tail <= 50
                }
            }
            Mic::Device(ring, _, started) => {
                let waiting = Instant::now();
                while ring.len() < n {
                    if waiting.elapsed() > Duration::from_secs(2) {
                        return Err("the microphone stopped delivering audio".into());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                mic_f32.resize(n, 0.0);
                ring.pop_into(&mut mic_f32);
                for (d, s) in frame.iter_mut().zip(&mic_f32) {
                    *d = (s * 32768.0).clamp(-32768.0, 32767.0) as i16;
                }
                started.elapsed() < Duration::from_secs(args.seconds)
            }
        };
        if !got {
            break;
        }
        let len = pipeline.process_capture(&frame, &mut packet).map_err(|e| e.to_string())?;
        // Our own packet comes back as remote speaker 0: through the codec and jitter buffer.
        pipeline.push_packet(0, seq, &packet[..len], seq as u64 * 20).map_err(|e| e.to_string())?;
        seq = seq.wrapping_add(1);
        pipeline.process_playback(&mut out).map_err(|e| e.to_string())?;
        match &mut speaker {
            Speaker::File(w) => {
                if let Some(w) = w {
                    for &s in &out {
                        w.write_sample(s).map_err(|e| format!("writing the output: {e}"))?;
                    }
                }
            }
            Speaker::Device(ring, _) => {
                out_f32.resize(out.len(), 0.0);
                for (d, s) in out_f32.iter_mut().zip(&out) {
                    *d = *s as f32 / 32768.0;
                }
                ring.push(&out_f32);
            }
        }
        while let Some(event) = pipeline.poll_event() {
            if args.json {
                println!("{}", serde_json::to_string(&event).unwrap_or_default());
            } else {
                println!("{}", describe(&event));
            }
            if let (AudioEvent::SpeechStopped { .. }, Some(dir)) = (&event, &args.utterances) {
                saved += 1;
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = dir.join(format!("utterance-{saved}.wav"));
                std::fs::write(&path, pipeline.utterance_wav()).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    if let Speaker::File(w) = &mut speaker {
        if let Some(w) = w.take() {
            w.finalize().map_err(|e| format!("writing the output: {e}"))?;
        }
    }
    if let Some(stats) = pipeline.speaker_stats(0) {
        eprintln!(
            "loopback: {} frames decoded, {} concealed, jitter target {} ms",
            stats.decoded, stats.concealed, stats.target_ms
        );
    }
    Ok(())
}

fn describe(event: &AudioEvent) -> String {
    let t = |ms: &u64| format!("{}.{:03}s", ms / 1000, ms % 1000);
    match event {
        AudioEvent::SpeechStarted { at_ms } => format!("{} speech started", t(at_ms)),
        AudioEvent::SpeechStopped { start_ms, end_ms, samples } => {
            format!("{} speech stopped: utterance {}..{} ({samples} samples at 16 kHz)", t(end_ms), t(start_ms), t(end_ms))
        }
        AudioEvent::BargeIn { at_ms, flushed_ms } => format!("{} barge-in: playback stopped, {flushed_ms} ms flushed", t(at_ms)),
        AudioEvent::PlaybackFinished { at_ms } => format!("{} playback finished", t(at_ms)),
        AudioEvent::PlaybackStarted { at_ms } => format!("{} playback started", t(at_ms)),
    }
}
