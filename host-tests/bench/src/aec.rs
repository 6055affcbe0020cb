//! `aec`: the echo canceller in simulated rooms (`moltlink::audio::echo_sim`) on espeak-ng
//! speech, its cost per 20 ms frame, and the duplex frame's non-codec share with it on and off.
//! Ends with one summary line:
//! `aec: erle single X dB, erle double Y dB, near-end corr Z, barge-in W ms, frame V us`.

use moltlink::audio::echo_sim::{self, EchoPath};
use moltlink::audio::{AudioConfig, AudioPipeline, EchoCanceller};
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

/// espeak-ng speech in `voice` at `rate` Hz (sox resamples), f32.
fn voice(text: &str, voice: &str, rate: u32) -> Vec<f32> {
    let out = Command::new("sh")
        .args(["-c", "espeak-ng --stdout -s 165 -v \"$3\" \"$1\" | sox -t wav - -r \"$2\" -c 1 -t s16 -", "speech"])
        .args([text, &rate.to_string(), voice])
        .output()
        .expect("sh");
    assert!(out.status.success() && !out.stdout.is_empty(), "espeak-ng and sox are needed");
    out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0 * 0.5).collect()
}

const AGENT: [&str; 4] = [
    "Sure, I can help with that. Your meeting with the design team is moved to Thursday afternoon.",
    "The weather tomorrow looks cloudy in the morning, with some sun after lunch and a light breeze.",
    "I have added three items to your shopping list: apples, bread and a bottle of olive oil.",
    "Let me read the last message from your sister. She says the train arrives at half past six.",
];
const USER: &str = "Wait, stop, I need to change the time of that meeting please.";

pub fn main() {
    let (mut far48, mut far16) = (Vec::new(), Vec::new());
    while far16.len() < 16 * 16_000 {
        for t in AGENT {
            far48.extend(voice(t, "en-us", 48_000));
            far16.extend(voice(t, "en-us", 16_000));
            let n = far16.len().div_ceil(160) * 160;
            far16.resize(n, 0.0);
            far48.resize(n * 3, 0.0);
        }
    }
    // The room: 120 ms late, a 120 ms reverb tail, 0 dB speaker→mic loss (the hardest case).
    let room = |rate| EchoPath::new(rate, 120.0, 120.0, 0.0, 7);
    let r = echo_sim::measure(&far48, &far16, &voice(USER, "en+f3", 16_000), 10 * 16_000, 4 * 16_000, room(16_000), true);
    println!("aec bench: room 120 ms, 120 ms tail, 0 dB loss; agent 16 s, user from 10 s");
    println!("  {r:?}");
    let agent24: Vec<i16> = AGENT.iter().flat_map(|t| voice(t, "en-us", 24_000)).map(|s| (s * 32768.0) as i16).collect();
    let (latency, early) = echo_sim::barge_in(AudioConfig { echo_cancel: true, ..Default::default() }, &agent24, &voice(USER, "en+f3", 48_000), 250, room(48_000));
    println!("  barge-in {latency:?} ms after the user's first word (echo alone barged in first: {early})");

    // Cost of the canceller alone per 20 ms frame (render 48 kHz + capture 16 kHz), median of 15 × 250.
    let mut aec = EchoCanceller::new();
    let mut mic = vec![0.0f32; 320];
    let frames = far16.len() / 320;
    let mut per_frame = Vec::new();
    let mut at = 0;
    for _ in 0..16 {
        let start = Instant::now();
        for _ in 0..250 {
            let i = at % frames;
            at += 1;
            aec.render(&far48[i * 960..i * 960 + 960]);
            mic.copy_from_slice(&far16[i * 320..i * 320 + 320]);
            aec.process(&mut mic);
            black_box(&mic);
        }
        per_frame.push(start.elapsed().as_secs_f64() * 1e6 / 250.0);
    }
    per_frame.remove(0); // warm-up
    per_frame.sort_by(f64::total_cmp);
    let frame_us = per_frame[per_frame.len() / 2];

    // The duplex frame without the codec, canceller on and off, against a raw libopus encode.
    let dsp = |echo_cancel: bool| {
        let mut p = AudioPipeline::new(AudioConfig { barge_in: false, echo_cancel, ..Default::default() }).unwrap();
        let mic: Vec<i16> = far48.iter().map(|&s| (s * 32768.0) as i16).collect();
        let mut spk = vec![0i16; 960];
        let mut v = Vec::new();
        let mut i = 0usize;
        for _ in 0..16 {
            let start = Instant::now();
            for _ in 0..250 {
                if !p.is_playing() {
                    p.push_tts(&agent24);
                }
                let at = (i * 960) % (mic.len() - 960);
                i += 1;
                p.process_capture(&mic[at..at + 960], &mut []).unwrap();
                p.process_playback(&mut spk).unwrap();
                while let Some(e) = p.poll_event() {
                    black_box(e);
                }
            }
            v.push(start.elapsed().as_secs_f64() * 1e6 / 250.0);
        }
        v.remove(0);
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
    let mut packet = [0u8; 1275];
    let mut enc_v = Vec::new();
    for round in 0..16 {
        let start = Instant::now();
        for k in 0..250 {
            let i = (round * 250 + k) % (far48.len() / 960);
            black_box(enc.encode_float(&far48[i * 960..i * 960 + 960], &mut packet).unwrap());
        }
        enc_v.push(start.elapsed().as_secs_f64() * 1e6 / 250.0);
    }
    enc_v.remove(0);
    enc_v.sort_by(f64::total_cmp);
    let enc_us = enc_v[enc_v.len() / 2];
    let (on, off) = (dsp(true), dsp(false));
    println!("  canceller alone {frame_us:.1} µs per 20 ms frame ({:.0}× real time)", 20_000.0 / frame_us);
    println!(
        "  duplex frame without codec: canceller on {on:.1} µs = {:.0} % of a raw encode ({enc_us:.1} µs), off {off:.1} µs = {:.0} %",
        100.0 * on / enc_us,
        100.0 * off / enc_us
    );
    println!(
        "aec: erle single {:.1} dB, erle double {:.1} dB, near-end corr {:.3}, barge-in {} ms, frame {:.1} us",
        r.erle_single_db,
        r.erle_double_db,
        r.near_corr,
        latency.map_or(-1, |ms| ms as i64),
        frame_us
    );
}
