//! The full duplex 20 ms frame against raw libopus, measured in the same run.
//!
//! `audio`: wall-clock medians, reported as ratios to raw libopus encode and as × real time.
//! `audio count WORKLOAD FRAMES`: run one workload for FRAMES frames (for callgrind:
//! `host-tests/bench/callgrind-audio.sh` runs it at two lengths and divides the difference).
//!
//! Workloads, all on the same espeak-ng speech at 48 kHz mono unless named otherwise:
//! - `encode`: raw libopus encode (the `opus` crate, VOIP, 32 kb/s, default complexity)
//! - `decode`: raw libopus decode of those packets
//! - `duplex`: AudioPipeline capture (resample → VAD → encode) + push_packet + playback
//!   (jitter → decode → TTS queue → mix → device), 48 kHz mono device
//! - `duplex441`: the same with a 44.1 kHz stereo device (resampling both ways)
//! - `dsp`: the duplex frame without the codec (no packet encoded, no remote speaker)
//! - `encode_pure`: the pure-Rust opus-rs encoder (the one the wasm component uses), natively

use moltlink::audio::{AudioConfig, AudioPipeline, DeviceFormat, MAX_PACKET, NET_FRAME};
use std::hint::black_box;
use std::time::Instant;

#[path = "../../../tests/support/speech.rs"]
mod support;

fn speech(rate: u32) -> Vec<i16> {
    support::speech("The quick brown fox jumps over the lazy dog. Please call me back tomorrow morning.", rate)
}

struct Workload {
    step: Box<dyn FnMut(usize)>,
}

fn workload(name: &str) -> Workload {
    let pcm48 = speech(48_000);
    let frames48: Vec<Vec<f32>> = pcm48.chunks_exact(NET_FRAME).map(|f| f.iter().map(|&s| s as f32 / 32768.0).collect()).collect();
    match name {
        "encode" => {
            let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
            enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
            let mut packet = [0u8; MAX_PACKET];
            Workload { step: Box::new(move |i| { black_box(enc.encode_float(&frames48[i % frames48.len()], &mut packet).unwrap()); }) }
        }
        "encode_pure" => {
            use moltlink::audio::codec::{Encoder, OpusSettings, PureOpusEncoder};
            let mut enc = PureOpusEncoder::new(OpusSettings::default()).unwrap();
            let mut packet = [0u8; MAX_PACKET];
            Workload { step: Box::new(move |i| { black_box(enc.encode(&frames48[i % frames48.len()], &mut packet).unwrap()); }) }
        }
        "decode" => {
            let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
            enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
            let packets: Vec<Vec<u8>> = frames48.iter().map(|f| enc.encode_vec_float(f, MAX_PACKET).unwrap()).collect();
            let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
            let mut out = vec![0.0f32; NET_FRAME];
            Workload { step: Box::new(move |i| { black_box(dec.decode_float(&packets[i % packets.len()], &mut out, false).unwrap()); }) }
        }
        "duplex" | "duplex441" | "dsp" => {
            let format = if name == "duplex441" { DeviceFormat { rate: 44_100, channels: 2 } } else { DeviceFormat { rate: 48_000, channels: 1 } };
            let codec = name != "dsp";
            let mut p = AudioPipeline::new(AudioConfig { device: format, barge_in: false, ..Default::default() }).unwrap();
            let mic: Vec<i16> = if format.rate == 48_000 { pcm48 } else { speech(format.rate) }
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, format.channels as usize))
                .collect();
            let tts = speech(24_000);
            let n = p.frame_samples();
            let mut packet = [0u8; MAX_PACKET];
            let mut spk = vec![0i16; n];
            Workload {
                step: Box::new(move |i| {
                    if !p.is_playing() {
                        p.push_tts(&tts);
                    }
                    let at = (i * n) % (mic.len() - n);
                    let len = p.process_capture(&mic[at..at + n], if codec { &mut packet } else { &mut [] }).unwrap();
                    if codec {
                        p.push_packet(1, i as u16, &packet[..len], i as u64 * 20).unwrap();
                    }
                    p.process_playback(&mut spk).unwrap();
                    while let Some(e) = p.poll_event() {
                        black_box(e);
                    }
                }),
            }
        }
        other => panic!("unknown workload {other}: encode, decode, duplex, duplex441, dsp"),
    }
}

/// Mean µs per frame over one round of `frames` frames (`main` warms up, then takes the
/// median of interleaved rounds).
fn time(w: &mut Workload, frames: usize, offset: &mut usize) -> f64 {
    let start = Instant::now();
    for i in 0..frames {
        (w.step)(*offset + i);
    }
    *offset += frames;
    start.elapsed().as_secs_f64() * 1e6 / frames as f64
}

pub fn main(args: &[String]) {
    if args.first().is_some_and(|a| a == "count") {
        let name = args.get(1).map(String::as_str).unwrap_or("duplex");
        let frames: usize = args.get(2).and_then(|f| f.parse().ok()).unwrap_or(500);
        let mut w = workload(name);
        let mut offset = 0;
        time(&mut w, frames, &mut offset);
        return;
    }
    let complexity = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap().get_complexity().unwrap();
    let names = ["encode", "decode", "duplex", "duplex441", "dsp", "encode_pure"];
    let mut ws: Vec<(&str, Workload, usize, Vec<f64>)> = names.iter().map(|n| (*n, workload(n), 0, Vec::new())).collect();
    // Warm up, then interleave rounds so drift hits every workload alike.
    for (_, w, off, _) in ws.iter_mut() {
        time(w, 200, off);
    }
    for _ in 0..15 {
        for (_, w, off, v) in ws.iter_mut() {
            v.push(time(w, 250, off));
        }
    }
    let med = |name: &str| {
        let mut v = ws.iter().find(|w| w.0 == name).unwrap().3.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (enc, dec) = (med("encode"), med("decode"));
    println!("audio bench: libopus {} (complexity {complexity}, VOIP, 32 kb/s, 48 kHz mono), median of 15 × 250 frames", opus::version());
    println!("  raw libopus encode            {enc:8.1} µs/frame   {:7.0}× real time", 20_000.0 / enc);
    println!("  raw libopus decode            {dec:8.1} µs/frame");
    for name in ["duplex", "duplex441"] {
        let t = med(name);
        let overhead = t - enc - dec;
        println!(
            "  full duplex frame ({:9})  {t:8.1} µs/frame   {:7.0}× real time   non-codec part {overhead:6.1} µs = {:.0} % of a raw encode",
            if name == "duplex" { "48k mono" } else { "44.1k st." },
            20_000.0 / t,
            100.0 * overhead / enc
        );
    }
    let dsp = med("dsp");
    println!("  duplex frame without codec    {dsp:8.1} µs/frame   = {:.0} % of a raw encode (measured directly)", 100.0 * dsp / enc);
    println!("  ratio full duplex / raw encode: {:.2}", med("duplex") / enc);
    let pure = med("encode_pure");
    println!("  opus-rs encode (pure Rust, used in wasm) {pure:6.1} µs/frame = {:.2}× libopus", pure / enc);
}
