//! `aec`: the echo canceller in simulated rooms (`moltlink::audio::echo_sim`) on espeak-ng
//! speech, its cost per 20 ms frame, and the duplex frame's non-codec share with it on and off.
//! Ends with one summary line:
//! `aec: erle single X dB, erle double Y dB, near-end corr Z, barge-in W ms, frame V us`
//! (W: the 90th percentile of the barge-in sweep; median and max are printed above it).

use moltlink::audio::echo_sim::{self, EchoPath};
use moltlink::audio::{AudioConfig, AudioPipeline, EchoCanceller};
use std::hint::black_box;
use std::time::Instant;

pub fn main() {
    let (far48, far16) = echo_sim::agent(16);
    // The room: 120 ms late, a 120 ms reverb tail, 0 dB speaker→mic loss (the hardest case).
    let room = |rate| EchoPath::new(rate, 120.0, 120.0, 0.0, 7);
    let r = echo_sim::measure(&far48, &far16, &echo_sim::user(16_000), 10 * 16_000, 4 * 16_000, room(16_000), true);
    println!("aec bench: room 120 ms, 120 ms tail, 0 dB loss; agent 16 s, user from 10 s");
    println!("  {r:?}");
    // Barge-in over 7 rooms × 3 reflection patterns × 5 onsets (headset included), and the
    // agent's speech alone (1 min per room and pattern).
    let agent24 = echo_sim::agent_tts();
    let aec_on = AudioConfig { echo_cancel: true, ..Default::default() };
    let seeds = [3, 4, 5];
    let (latencies, failed) = echo_sim::barge_in_sweep(&aec_on, &agent24, &echo_sim::user(48_000), &echo_sim::ROOMS, &seeds);
    let p90 = echo_sim::percentile(&latencies, 0.9);
    let false_barge_ins: usize = echo_sim::ROOMS
        .iter()
        .flat_map(|&(delay, loss)| seeds.map(|seed| echo_sim::false_barge_ins(aec_on.clone(), &agent24, 3000, EchoPath::new(48_000, delay, 120.0, loss, seed + 8))))
        .sum();
    println!(
        "  barge-in after the user's first word over {} calls: median {} ms, p90 {p90} ms, max {} ms, {failed} calls without one or with one before the user; {false_barge_ins} false barge-ins in {} min of agent speech alone",
        latencies.len() + failed,
        echo_sim::percentile(&latencies, 0.5),
        latencies.last().copied().unwrap_or(0),
        echo_sim::ROOMS.len() * seeds.len()
    );

    // Cost of the canceller alone per 20 ms frame (render 48 kHz + capture 16 kHz), median of 15 × 250.
    let mut aec = EchoCanceller::new().expect("a canceller");
    let mut mic = vec![0.0f32; 320];
    let frames = far16.len() / 320;
    let mut per_frame = Vec::new();
    let mut at = 0;
    for _ in 0..16 {
        let start = Instant::now();
        for _ in 0..250 {
            let i = at % frames;
            at += 1;
            aec.render(&far48[i * 960..i * 960 + 960]).expect("20 ms of playback");
            mic.copy_from_slice(&far16[i * 320..i * 320 + 320]);
            aec.process(&mut mic).expect("20 ms of capture");
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
        p90,
        frame_us
    );
}
