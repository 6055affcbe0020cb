//! The audio pipeline on real speech: espeak-ng sentences resampled by sox, mixed with silence
//! and noise. espeak-ng and sox come from `host-tests/setup.sh`; without them these tests fail
//! with a message saying so (they are not skipped).

use super::codec::{Decoder, Encoder, OpusSettings, PureOpusDecoder, PureOpusEncoder};
use super::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::process::{Command, Stdio};


#[path = "../../tests/support/speech.rs"]
mod support;
pub(crate) use support::speech;

/// Raw little-endian 16-bit samples.
fn raw_s16(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// sox's resampling of a whole clip (the independent reference).
fn sox_resample(pcm: &[i16], from: u32, to: u32) -> Vec<i16> {
    use std::io::Write;
    let mut child = Command::new("sox")
        .args(["-t", "wav", "-", "-r", &to.to_string(), "-t", "s16", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sox");
    let input = wav::encode(pcm, from);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    raw_s16(&out.stdout)
}

/// First and last 10 ms windows louder than -40 dBFS: where the speech really is, in ms.
fn speech_bounds_ms(pcm: &[i16], rate: u32) -> (u64, u64) {
    let win = (rate / 100) as usize;
    let loud: Vec<usize> = pcm
        .chunks(win)
        .enumerate()
        .filter(|(_, w)| rms(&w.iter().map(|&s| to_f32(s)).collect::<Vec<_>>()) > 0.01)
        .map(|(i, _)| i)
        .collect();
    (*loud.first().unwrap() as u64 * 10, (*loud.last().unwrap() as u64 + 1) * 10)
}

fn noise(rng: &mut ChaCha8Rng, n: usize, level: f32) -> Vec<f32> {
    // Uniform noise scaled to RMS `level`.
    (0..n).map(|_| ((rng.next_u32() as f32 / u32::MAX as f32) * 2.0 - 1.0) * level * 3f32.sqrt()).collect()
}

const SENTENCES: [&str; 3] = [
    "Hello this is a test of the voice pipeline.",
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning.",
];

/// Noise, sentence, noise, sentence… at `rate`; returns mono f32 audio and each sentence's
/// true (start, end) in ms.
fn scene(rate: u32, noise_rms: f32) -> (Vec<f32>, Vec<(u64, u64)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut audio = noise(&mut rng, rate as usize, noise_rms);
    let mut truth = Vec::new();
    for text in SENTENCES {
        let pcm = speech(text, rate);
        let (s, e) = speech_bounds_ms(&pcm, rate);
        let at_ms = audio.len() as u64 * 1000 / rate as u64;
        truth.push((at_ms + s, at_ms + e));
        let n = noise(&mut rng, pcm.len(), noise_rms);
        audio.extend(pcm.iter().zip(n).map(|(&p, n)| to_f32(p) * 0.7 + n));
        audio.extend(noise(&mut rng, rate as usize * 3 / 2, noise_rms));
    }
    (audio, truth)
}

fn frames_of(audio: &[f32], format: DeviceFormat) -> Vec<Vec<i16>> {
    audio
        .chunks_exact(format.frame_len())
        .map(|f| f.iter().flat_map(|&s| std::iter::repeat_n(to_i16(s), format.channels as usize)).collect())
        .collect()
}

fn drain(p: &mut AudioPipeline) -> Vec<AudioEvent> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

#[test]
fn vad_finds_each_utterance_within_100_ms() {
    for (rate, channels) in [(48_000, 1), (44_100, 2), (16_000, 1), (8_000, 1)] {
        let format = DeviceFormat { rate, channels };
        let (audio, truth) = scene(rate, 0.003);
        let mut p = AudioPipeline::new(AudioConfig { device: format, ..Default::default() }).unwrap();
        let mut events = Vec::new();
        let mut utterances = Vec::new();
        for frame in frames_of(&audio, format) {
            p.process_capture(&frame, &mut []).unwrap();
            for e in drain(&mut p) {
                if let AudioEvent::SpeechStopped { samples, .. } = e {
                    assert_eq!(samples, p.utterance().len());
                    utterances.push(p.utterance_wav());
                }
                events.push(e);
            }
        }
        let starts: Vec<u64> =
            events.iter().filter_map(|e| if let AudioEvent::SpeechStarted { at_ms } = e { Some(*at_ms) } else { None }).collect();
        let stops: Vec<(u64, u64)> = events
            .iter()
            .filter_map(|e| if let AudioEvent::SpeechStopped { start_ms, end_ms, .. } = e { Some((*start_ms, *end_ms)) } else { None })
            .collect();
        assert_eq!(stops.len(), truth.len(), "{rate} Hz x{channels}: one utterance per sentence: {events:?} truth {truth:?}");
        for ((&(ts, te), &(s, e)), &started) in truth.iter().zip(&stops).zip(&starts) {
            assert_eq!(s, started, "speech-started and speech-stopped agree on the start");
            assert!(s.abs_diff(ts) <= 100 && e.abs_diff(te) <= 100, "{rate} Hz: found {s}..{e} ms, spoken {ts}..{te} ms");
        }
        for (bytes, (s, e)) in utterances.iter().zip(&stops) {
            let (pcm, r, ch) = wav::decode(bytes).unwrap();
            assert_eq!((r, ch), (16_000, 1));
            let ms = pcm.len() as u64 * 1000 / 16_000;
            assert!(ms >= e - s && ms <= e - s + 400, "utterance of {ms} ms for {s}..{e}");
        }
    }
}

#[test]
fn noise_alone_is_not_speech() {
    let format = DeviceFormat { rate: 48_000, channels: 1 };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let audio = noise(&mut rng, 48_000 * 5, 0.05);
    let mut p = AudioPipeline::new(AudioConfig { device: format, ..Default::default() }).unwrap();
    for frame in frames_of(&audio, format) {
        p.process_capture(&frame, &mut []).unwrap();
    }
    assert_eq!(drain(&mut p), vec![]);
}

/// Signal-to-noise ratio of `got` against `want` in dB, at the best lag in `0..max_lag`
/// (`got` lags `want`), with the correlation at that lag.
fn snr_db(want: &[f32], got: &[f32], max_lag: usize) -> (f64, f64, usize) {
    let mut best = (f64::MIN, 0.0, 0);
    for lag in 0..max_lag {
        let n = want.len().min(got.len().saturating_sub(lag));
        let (w, g) = (&want[..n], &got[lag..lag + n]);
        let dot: f64 = w.iter().zip(g).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
        let ww: f64 = w.iter().map(|a| (*a as f64).powi(2)).sum();
        let gg: f64 = g.iter().map(|a| (*a as f64).powi(2)).sum();
        let corr = dot / (ww.sqrt() * gg.sqrt()).max(1e-12);
        if corr > best.1 {
            let err: f64 = w.iter().zip(g).map(|(a, b)| ((*a - *b) as f64).powi(2)).sum();
            best = (10.0 * (ww / err.max(1e-12)).log10(), corr, lag);
        }
    }
    (best.0, best.1, best.2)
}

#[test]
fn chunked_resampling_equals_whole() {
    let tts = speech(SENTENCES[1], 24_000);
    let play = |chunks: &mut dyn Iterator<Item = usize>| -> Vec<f32> {
        let mut q = PlaybackQueue::new(24_000, 30).unwrap();
        let mut at = 0;
        let mut out = Vec::new();
        let mut frame = vec![0.0; NET_FRAME];
        // Chunks arrive faster than they play, as a TTS stream does.
        while at < tts.len() || q.is_active() {
            for _ in 0..3 {
                let n = chunks.next().unwrap().min(tts.len() - at);
                q.push(&tts[at..at + n]);
                at += n;
            }
            q.next_frame(&mut frame).unwrap();
            out.extend_from_slice(&frame);
        }
        out
    };
    let whole = play(&mut std::iter::once(tts.len()).chain(std::iter::repeat(0)));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let chunked = play(&mut std::iter::from_fn(|| Some(1 + (rng.next_u32() % 2000) as usize)));
    assert_eq!(whole.len(), chunked.len());
    let max_diff = whole.iter().zip(&chunked).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(max_diff < 1e-6, "chunk boundaries change the output by {max_diff}");

    // Against sox resampling the whole clip at once: same signal, 5 ms later (half of
    // playback's 10 ms budget).
    let reference: Vec<f32> = sox_resample(&tts, 24_000, 48_000).iter().map(|&s| to_f32(s)).collect();
    let (snr, corr, lag) = snr_db(&reference, &chunked, 1200);
    assert_eq!(lag, 240, "the resampler adds exactly 5 ms");
    assert!(snr > 30.0 && corr > 0.999, "frame resampling vs sox: SNR {snr:.1} dB, correlation {corr:.5}");

    // Capture direction: 44.1 kHz frames to 16 kHz.
    let mic = speech(SENTENCES[2], 44_100);
    let mut r = FrameResampler::new(44_100, 16_000).unwrap();
    let delay = r.delay();
    let mut out16 = Vec::new();
    let mut frame = vec![0.0; 320];
    for f in mic.chunks_exact(882) {
        let f: Vec<f32> = f.iter().map(|&s| to_f32(s)).collect();
        r.process(&f, &mut frame).unwrap();
        out16.extend_from_slice(&frame);
    }
    let reference: Vec<f32> = sox_resample(&mic, 44_100, 16_000).iter().map(|&s| to_f32(s)).collect();
    let (snr, corr, lag) = snr_db(&reference, &out16, 400);
    assert_eq!(lag, delay);
    assert!(snr > 30.0 && corr > 0.999, "44.1 → 16 kHz vs sox: SNR {snr:.1} dB, correlation {corr:.5}");
}

fn round_trip(enc: &mut dyn Encoder, dec: &mut dyn Decoder, pcm: &[f32]) -> Vec<f32> {
    let mut packet = [0u8; MAX_PACKET];
    let mut frame = vec![0.0; NET_FRAME];
    let mut out = Vec::new();
    for f in pcm.chunks_exact(NET_FRAME) {
        let n = enc.encode(f, &mut packet).unwrap();
        assert!(n > 0 && n <= MAX_PACKET);
        dec.decode(Some(&packet[..n]), &mut frame).unwrap();
        out.extend_from_slice(&frame);
    }
    out
}

#[test]
fn opus_round_trip_keeps_the_signal_and_codecs_interoperate() {
    let pcm: Vec<f32> = speech(SENTENCES[0], 48_000).iter().map(|&s| to_f32(s)).collect();
    let settings = OpusSettings::default();
    type Make<T> = fn() -> Box<T>;
    let encoders: [(&str, Make<dyn Encoder>); 2] = [
        ("libopus", || Box::new(LibOpusEncoder::new(OpusSettings::default()).unwrap())),
        ("opus-rs", || Box::new(PureOpusEncoder::new(OpusSettings::default()).unwrap())),
    ];
    let decoders: [(&str, Make<dyn Decoder>); 2] =
        [("libopus", || Box::new(LibOpusDecoder::new().unwrap())), ("opus-rs", || Box::new(PureOpusDecoder::new().unwrap()))];
    let _ = settings;
    for (en, make_enc) in &encoders {
        for (dn, make_dec) in &decoders {
            let out = round_trip(make_enc().as_mut(), make_dec().as_mut(), &pcm);
            let (snr, corr, lag) = snr_db(&pcm, &out, 800);
            eprintln!("opus {en} → {dn}: correlation {corr:.3}, SNR {snr:.1} dB at lag {lag}");
            assert!(corr > 0.9, "{en} → {dn}: correlation {corr:.3} (SNR {snr:.1} dB)");
        }
    }
}

#[test]
fn jitter_buffer_reorders_and_conceals_loss_continuously() {
    let pcm: Vec<f32> = [SENTENCES[0], SENTENCES[1]].iter().flat_map(|t| speech(t, 48_000)).map(to_f32).collect();
    let mut enc = LibOpusEncoder::new(OpusSettings::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Send every 20 ms; 10 % lost; network delay 20..100 ms, so packets overtake each other.
    let mut arrivals = Vec::new();
    let mut packet = [0u8; MAX_PACKET];
    let frames = pcm.len() / NET_FRAME;
    let mut lost = 0;
    for (i, f) in pcm.chunks_exact(NET_FRAME).enumerate() {
        let n = enc.encode(f, &mut packet).unwrap();
        if rng.next_u32() % 10 == 0 {
            lost += 1;
            continue;
        }
        let arrival = i as u64 * 20 + 20 + (rng.next_u32() % 80) as u64;
        arrivals.push((arrival, (i as u16).wrapping_add(65_500), packet[..n].to_vec()));
    }
    arrivals.sort_by_key(|a| a.0);
    let reordered = arrivals.windows(2).filter(|w| w[1].1.wrapping_sub(w[0].1) > 0x8000).count();
    assert!(reordered > 20, "the network reorders ({reordered} overtakes)");

    let mut jb = JitterBuffer::new();
    let mut dec = LibOpusDecoder::new().unwrap();
    let mut frame = vec![0.0; NET_FRAME];
    let mut kinds = Vec::new();
    let mut out = Vec::new();
    let mut next = arrivals.iter().peekable();
    let mut now = 0;
    let end_ms = frames as u64 * 20 + 400;
    while now < end_ms {
        while let Some(a) = next.next_if(|a| a.0 <= now) {
            jb.push(a.1, &a.2, a.0).unwrap();
        }
        let kind = jb.pop(&mut dec, &mut frame).unwrap();
        if kind != FrameKind::Buffering {
            out.extend_from_slice(&frame);
        }
        kinds.push(kind);
        now += 20;
    }
    let first = kinds.iter().position(|k| *k != FrameKind::Buffering).unwrap();
    let played = first + kinds[first..].iter().position(|k| *k == FrameKind::Buffering).unwrap_or(kinds.len() - first);
    assert!(played - first >= frames, "playback never stalls before the stream ends: {kinds:?}");
    out.truncate((played - first) * NET_FRAME);
    let stats = jb.stats();
    eprintln!("jitter: {stats:?}, lost {lost} of {frames}");
    assert!(stats.target_ms > 20 && stats.target_ms <= 200, "target delay adapted to the jitter: {stats:?}");
    assert!(stats.late * 20 < frames as u64, "fewer than 5 % of packets arrive after their turn: {stats:?}");
    assert!(stats.decoded + lost + stats.late + stats.dropped_for_delay >= frames as u64, "{stats:?}");
    // Continuous: concealment and stretching never click (no jump bigger than the speech has).
    let steepest = |x: &[f32]| x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
    assert!(steepest(&out) <= steepest(&pcm) * 1.5, "a click: {} vs {}", steepest(&out), steepest(&pcm));
    let (snr, corr, _) = snr_db(&pcm[..48_000], &out[..48_000 + 9_600], 9_600);
    assert!(corr > 0.8, "the first second survives: correlation {corr:.3}, SNR {snr:.1} dB");

    // When the network calms down, the delay shrinks back.
    let mut calm = JitterBuffer::new();
    for i in 0..200u16 {
        calm.push(i, &[0xf8, 0xff, 0xfe], i as u64 * 20 + 40).unwrap();
    }
    assert_eq!(calm.target_ms(), 20);
}

#[test]
fn mixer_soft_clips_without_wrapping() {
    let loud = vec![0.9f32; 960];
    let mut out = vec![0.0; 960];
    mixer::mix_into(&[&loud, &loud, &loud], &mut out);
    assert!(out.iter().all(|&s| s > 0.8 && s <= 1.0));
    assert_eq!(mixer::soft_clip(0.5), 0.5);
    // Continuous at the knee and monotonic.
    let xs: Vec<f32> = (0..4000).map(|i| i as f32 / 1000.0).collect();
    assert!(xs.windows(2).all(|w| mixer::soft_clip(w[1]) >= mixer::soft_clip(w[0])));
    assert!((mixer::soft_clip(0.8001) - 0.8001).abs() < 1e-3);
}

/// Agent speech playing, with an echo at the mic; then the user talks over it.
#[test]
fn barge_in_stops_playback_within_one_frame_and_echo_does_not() {
    let format = DeviceFormat { rate: 48_000, channels: 1 };
    let mut p = AudioPipeline::new(AudioConfig { device: format, ..Default::default() }).unwrap();
    let agent = speech(&SENTENCES.join(" "), 24_000);
    p.push_tts(&agent);
    let user: Vec<f32> = speech(SENTENCES[1], 48_000).iter().map(|&s| to_f32(s) * 0.8).collect();
    let n = format.frame_samples();
    let mut spk = vec![0i16; n];
    // Echo path: speaker → mic, 40 ms late, 12 dB down.
    let mut echo = std::collections::VecDeque::from(vec![0.0f32; 48 * 40]);
    let user_from = 150; // frames (3 s) of echo only, then the user speaks
    let mut barge_frame = None;
    let mut levels_after = Vec::new();
    for i in 0..400 {
        p.process_playback(&mut spk).unwrap();
        if barge_frame.is_some() {
            levels_after.push(rms(&spk.iter().map(|&s| to_f32(s)).collect::<Vec<_>>()));
        }
        echo.extend(spk.iter().map(|&s| to_f32(s) * 0.25));
        let mic: Vec<i16> = (0..n)
            .map(|k| {
                let u = if i >= user_from { user.get((i - user_from) * n + k).copied().unwrap_or(0.0) } else { 0.0 };
                to_i16(echo.pop_front().unwrap() + u)
            })
            .collect();
        p.process_capture(&mic, &mut []).unwrap();
        for e in drain(&mut p) {
            match e {
                AudioEvent::BargeIn { flushed_ms, .. } => {
                    assert!(i >= user_from, "echo alone must not barge in (frame {i})");
                    assert!(flushed_ms > 1000, "the rest of the agent's speech was flushed");
                    barge_frame = Some(i);
                }
                AudioEvent::SpeechStarted { .. } => assert!(i >= user_from, "echo alone is not speech (frame {i})"),
                _ => {}
            }
        }
    }
    let at = barge_frame.expect("the user's speech interrupted playback");
    // Detection needs `start_secs` of voiced blocks above the echo gate.
    eprintln!("barge-in {} ms after the user started talking over the agent", (at - user_from) * 20);
    assert!(at < user_from + 50, "barge-in {} ms after the user started", (at - user_from) * 20);
    // The frame right after the detection fades out; every frame after it is silent… except the
    // user's own voice is not played back (no remote speakers), so silence means exactly zero.
    assert!(levels_after[1..].iter().all(|&l| l == 0.0), "playback stopped within one frame: {:?}", &levels_after[..3]);
    assert!(!p.is_playing());
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(AudioPipeline::new(AudioConfig { device: DeviceFormat { rate: 1_000, channels: 1 }, ..Default::default() }).is_err());
    assert!(AudioPipeline::new(AudioConfig { device: DeviceFormat { rate: 1_000_000, channels: 1 }, ..Default::default() }).is_err());
    assert!(AudioPipeline::new(AudioConfig { device: DeviceFormat { rate: 48_000, channels: 3 }, ..Default::default() }).is_err());
    assert!(AudioConfig::from_json(r#"{"vad":{"confidence":2}}"#).unwrap().validate().is_err());
    assert!(AudioConfig::from_json(r#"{"nope":1}"#).is_err());
    let mut p = AudioPipeline::new(AudioConfig::default()).unwrap();
    assert!(p.process_capture(&[0; 10], &mut []).is_err());
    assert!(p.process_playback(&mut [0; 10]).is_err());
    assert!(p.push_packet(1, 0, &[], 0).is_err());
    assert!(p.push_packet(1, 0, &[0u8; 2000], 0).is_err());
    // Garbage packets decode to an error or to noise, never a panic.
    p.push_packet(1, 0, &[0xff; 40], 0).unwrap();
    let mut out = vec![0; p.frame_samples()];
    for _ in 0..5 {
        let _ = p.process_playback(&mut out);
    }
}
