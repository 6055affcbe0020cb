//! A simulated room for the echo canceller's tests and the `aec` bench: a speaker→mic echo path
//! (delay, a reverb tail, a loss) and the measures (echo return loss enhancement, near-end
//! correlation, convergence time). Only built for tests and the `testkit` feature.

use super::echo::EchoCanceller;

/// A speaker→mic path: a direct sound after `delay_ms`, then a sparse exponentially decaying
/// tail (one reflection per ms, random sign, −60 dB after `tail_ms`), scaled so the whole path
/// loses `loss_db` (0 dB: the echo is as loud as what was played).
pub struct EchoPath {
    taps: Vec<(usize, f32)>,
    ring: Vec<f32>,
    at: usize,
}

impl EchoPath {
    /// A path at `rate` Hz; `seed` picks the reflections (deterministic).
    pub fn new(rate: u32, delay_ms: f32, tail_ms: f32, loss_db: f32, seed: u64) -> Self {
        let ms = rate as f32 / 1000.0;
        let delay = (delay_ms * ms) as usize;
        let mut taps = vec![(delay, 1.0f32)];
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut step = 1.0f32;
        while step < tail_ms {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let sign = if state >> 63 == 0 { 1.0 } else { -1.0 };
            let jitter = ((state >> 33) % (ms as u64).max(1)) as usize;
            // −60 dB at tail_ms, starting 6 dB under the direct sound.
            let amp = 0.5 * 10f32.powf(-3.0 * step / tail_ms);
            taps.push((delay + (step * ms) as usize + jitter, sign * amp));
            step += 1.0;
        }
        // Energy gain of the path = −loss_db.
        let energy: f32 = taps.iter().map(|t| t.1 * t.1).sum();
        let scale = 10f32.powf(-loss_db / 20.0) / energy.sqrt();
        for t in &mut taps {
            t.1 *= scale;
        }
        let len = taps.iter().map(|t| t.0).max().unwrap_or(0) + 1;
        Self { taps, ring: vec![0.0; len], at: 0 }
    }

    /// The echo at the mic for the next played sample.
    pub fn step(&mut self, played: f32) -> f32 {
        let n = self.ring.len();
        self.ring[self.at] = played;
        let out = self.taps.iter().map(|&(d, g)| g * self.ring[(self.at + n - d) % n]).sum();
        self.at = (self.at + 1) % n;
        out
    }

    /// The whole echo of `played`.
    pub fn run(&mut self, played: &[f32]) -> Vec<f32> {
        played.iter().map(|&x| self.step(x)).collect()
    }
}

/// Energy ratio in dB (`num` over `den`).
pub fn db(num: f64, den: f64) -> f64 {
    10.0 * (num.max(1e-12) / den.max(1e-12)).log10()
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&s| s as f64 * s as f64).sum()
}

/// Largest normalised cross-correlation of `a` and `b` for lags of `b` up to `max_lag` samples.
pub fn correlation(a: &[f32], b: &[f32], max_lag: usize) -> f64 {
    let mut best = 0.0f64;
    for lag in 0..=max_lag.min(a.len()) {
        let x = &a[lag..];
        let n = x.len().min(b.len());
        let dot: f64 = x[..n].iter().zip(&b[..n]).map(|(&p, &q)| p as f64 * q as f64).sum();
        best = best.max(dot / (energy(&x[..n]) * energy(&b[..n])).sqrt().max(1e-12));
    }
    best
}

/// Runs the canceller over a call: `far48`/`far16` are the same played audio at 48 and 16 kHz,
/// `mic16` what the mic picked up. Returns the cleaned 16 kHz capture.
pub fn cancel(far48: &[f32], mic16: &[f32], linear: bool) -> Vec<f32> {
    let mut aec = EchoCanceller::with_output(linear).expect("a canceller");
    let mut out = mic16.to_vec();
    for (far, mic) in far48.chunks_exact(960).zip(out.chunks_exact_mut(320)) {
        aec.render(far).expect("20 ms of playback");
        aec.process(mic).expect("20 ms of capture");
    }
    out.truncate(far48.len() / 960 * 320);
    out
}

/// What one simulated call measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoReport {
    /// Echo return loss enhancement while only the agent talks (after convergence), dB.
    pub erle_single_db: f64,
    /// The same while the user talks too: echo over (output − near-end alone through the
    /// canceller), so near-end damage counts against it, dB.
    pub erle_double_db: f64,
    /// Correlation of the output with the clean near-end during double talk.
    pub near_corr: f64,
    /// First time (ms from the agent's first word) a 1 s window's ERLE reached 20 dB.
    pub converge_ms: Option<u64>,
}

/// One call at 16 kHz: the agent (`far16`, also given at 48 kHz as `far48`) talks throughout
/// through `path`; the user (`near16`, silent outside its speech) talks from `near_at` (16 kHz
/// samples). Single talk is measured from `settle` samples until the user starts.
pub fn measure(far48: &[f32], far16: &[f32], near16: &[f32], near_at: usize, settle: usize, mut path: EchoPath, linear: bool) -> EchoReport {
    let len = far16.len().min(far48.len() / 3) / 320 * 320;
    let echo = path.run(&far16[..len]);
    let mut near = vec![0.0f32; len];
    let near_end = (near_at + near16.len()).min(len);
    near[near_at..near_end].copy_from_slice(&near16[..near_end - near_at]);
    let mic: Vec<f32> = echo.iter().zip(&near).map(|(e, n)| e + n).collect();
    let out = cancel(&far48[..len * 3], &mic, linear);
    // The near-end alone through a canceller with nothing played: what a perfect canceller gives.
    let reference = cancel(&vec![0.0; len * 3], &near, linear);

    let single = settle..near_at.min(len);
    let erle_single_db = db(energy(&echo[single.clone()]), energy(&out[single.clone()]));
    let double = near_at..near_end;
    let residual: Vec<f32> = out[double.clone()].iter().zip(&reference[double.clone()]).map(|(o, r)| o - r).collect();
    let erle_double_db = db(energy(&echo[double.clone()]), energy(&residual));
    let near_corr = correlation(&out[double.clone()], &near[double.clone()], 160);

    // Convergence: sliding 1 s windows, hop 100 ms, over the single-talk part.
    let first_word = far16.iter().position(|s| s.abs() > 0.01).unwrap_or(0);
    let converge_ms = (first_word..near_at.saturating_sub(16_000))
        .step_by(1600)
        .find(|&i| db(energy(&echo[i..i + 16_000]), energy(&out[i..i + 16_000])) >= 20.0)
        .map(|i| ((i + 16_000 - first_word) / 16) as u64);
    EchoReport { erle_single_db, erle_double_db, near_corr, converge_ms }
}

/// The whole pipeline in a room (48 kHz mono device): the agent's `agent24` (24 kHz TTS) plays
/// through `path`; from frame `user_from` the user's `user48` joins at the mic. Returns the
/// barge-in time after the user's first word (ms; `None` if none) and whether a barge-in came
/// before the user spoke at all.
pub fn barge_in(config: super::AudioConfig, agent24: &[i16], user48: &[f32], user_from: usize, mut path: EchoPath) -> (Option<u64>, bool) {
    let mut p = super::AudioPipeline::new(config).expect("valid config");
    p.push_tts(agent24);
    let onset = user48.chunks(480).position(|w| super::rms(w) > 0.01).unwrap_or(0) as u64 * 10;
    let n = p.frame_samples();
    let mut spk = vec![0i16; n];
    let mut mic = vec![0i16; n];
    for i in 0..user_from + 100 {
        p.process_playback(&mut spk).expect("frame");
        for (k, (m, &s)) in mic.iter_mut().zip(&spk).enumerate() {
            let user = if i >= user_from { user48.get((i - user_from) * n + k).copied().unwrap_or(0.0) } else { 0.0 };
            *m = super::to_i16(path.step(super::to_f32(s)) + user);
        }
        p.process_capture(&mic, &mut []).expect("frame");
        while let Some(e) = p.poll_event() {
            if let super::AudioEvent::BargeIn { at_ms, .. } = e {
                let user_ms = user_from as u64 * 20 + onset;
                return if at_ms < user_ms { (None, true) } else { (Some(at_ms - user_ms), false) };
            }
        }
    }
    (None, false)
}

/// Rooms the barge-in figures sweep (delay ms, speaker→mic loss dB, 120 ms tail): the issue's
/// 40–200 ms down to 0 dB, and a headset (80 dB: no echo at all).
pub const ROOMS: [(f32, f32); 7] = [(40.0, 0.0), (80.0, 3.0), (120.0, 6.0), (160.0, 0.0), (200.0, 0.0), (200.0, 12.0), (120.0, 80.0)];

/// Barge-in over many calls: in each room and path `seed`, the user starts at five points of
/// the agent's speech (5–6.7 s in). Returns the latencies (ms after the user's first word) and
/// how many calls had none, or one before the user spoke.
pub fn barge_in_sweep(config: &super::AudioConfig, agent24: &[i16], user48: &[f32], rooms: &[(f32, f32)], seeds: &[u64]) -> (Vec<u64>, usize) {
    let (mut latencies, mut failed) = (vec![], 0);
    for &(delay, loss) in rooms {
        for &seed in seeds {
            for from in [250, 263, 277, 301, 333] {
                match barge_in(config.clone(), agent24, user48, from, EchoPath::new(48_000, delay, 120.0, loss, seed)) {
                    (Some(ms), false) => latencies.push(ms),
                    _ => failed += 1,
                }
            }
        }
    }
    latencies.sort_unstable();
    (latencies, failed)
}

/// The `p`-th percentile (0..1) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// `frames` of the agent talking (`agent24` again and again) through `path`, nobody else in
/// the room: how many barge-ins the echo caused.
pub fn false_barge_ins(config: super::AudioConfig, agent24: &[i16], frames: usize, mut path: EchoPath) -> usize {
    let mut p = super::AudioPipeline::new(config).expect("valid config");
    let n = p.frame_samples();
    let mut spk = vec![0i16; n];
    let mut mic = vec![0i16; n];
    let mut count = 0;
    for _ in 0..frames {
        if !p.is_playing() {
            p.push_tts(agent24);
        }
        p.process_playback(&mut spk).expect("frame");
        for (m, &s) in mic.iter_mut().zip(&spk) {
            *m = super::to_i16(path.step(super::to_f32(s)));
        }
        p.process_capture(&mic, &mut []).expect("frame");
        while let Some(e) = p.poll_event() {
            count += matches!(e, super::AudioEvent::BargeIn { .. }) as usize;
        }
    }
    count
}

/// espeak-ng speech in `voice` at `rate` Hz, f32 in [-1, 1), resampled by sox (both needed:
/// `host-tests/setup.sh` installs them). `sox -D`: no dither, so every run hears the same
/// samples (sox's random dither made the simulations differ from run to run).
pub fn voice(text: &str, voice: &str, rate: u32) -> Vec<f32> {
    let out = std::process::Command::new("sh")
        .args(["-c", "espeak-ng --stdout -s 165 -v \"$3\" \"$1\" | sox -D -t wav - -r \"$2\" -c 1 -t s16 -", "speech"])
        .args([text, &rate.to_string(), voice])
        .output()
        .expect("sh is available");
    assert!(out.status.success() && !out.stdout.is_empty(), "espeak-ng and sox are needed (host-tests/setup.sh)");
    out.stdout.chunks_exact(2).map(|b| super::to_f32(i16::from_le_bytes([b[0], b[1]]))).collect()
}

/// What the agent says in the simulations.
pub const AGENT: [&str; 4] = [
    "Sure, I can help with that. Your meeting with the design team is moved to Thursday afternoon.",
    "The weather tomorrow looks cloudy in the morning, with some sun after lunch and a light breeze.",
    "I have added three items to your shopping list: apples, bread and a bottle of olive oil.",
    "Let me read the last message from your sister. She says the train arrives at half past six.",
];
/// What the user says over it.
pub const USER: &str = "Wait, stop, I need to change the time of that meeting please.";

/// The agent's speech (one voice) at 48 and 16 kHz, `secs` long, 0.5 of full scale.
pub fn agent(secs: usize) -> (Vec<f32>, Vec<f32>) {
    let mut far48 = Vec::new();
    let mut far16 = Vec::new();
    while far16.len() < secs * 16_000 {
        for text in AGENT {
            far48.extend(voice(text, "en-us", 48_000).iter().map(|s| s * 0.5));
            far16.extend(voice(text, "en-us", 16_000).iter().map(|s| s * 0.5));
            // Both clips must stay aligned: pad to whole 10 ms at both rates.
            let n = far16.len().div_ceil(160) * 160;
            far16.resize(n, 0.0);
            far48.resize(n * 3, 0.0);
        }
    }
    (far48, far16)
}

/// The user's words (another voice) at `rate` Hz, 0.5 of full scale.
pub fn user(rate: u32) -> Vec<f32> {
    voice(USER, "en+f3", rate).iter().map(|s| s * 0.5).collect()
}

/// The agent's sentences as 24 kHz TTS audio, 0.5 of full scale.
pub fn agent_tts() -> Vec<i16> {
    AGENT.iter().flat_map(|t| voice(t, "en-us", 24_000)).map(|s| super::to_i16(s * 0.5)).collect()
}
