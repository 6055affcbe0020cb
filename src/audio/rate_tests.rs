//! Every rate in, a few ms of delay: a click (a 1 kHz burst, 1 ms wide, so it survives 8 kHz
//! and Opus) goes through capture and through playback at each device rate, and the delay is
//! measured by cross-correlation against where it should be.

use super::*;

/// Odd rates on top of the common ones: 20 ms not a whole number of samples (44 056), tiny and huge.
const ODD_RATES: [u32; 3] = [7_350, 44_056, 384_000];

fn all_rates() -> impl Iterator<Item = u32> {
    DEVICE_RATES.into_iter().chain(ODD_RATES)
}

/// The click at `at_ms`, sampled at `rate`, over `len_ms`.
fn click(rate: u32, at_ms: f64, len_ms: u32) -> Vec<f32> {
    let n = (rate as u64 * len_ms as u64 / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64 - at_ms / 1000.0;
            ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * (-(t / 0.001).powi(2)).exp() * 0.5) as f32
        })
        .collect()
}

/// Lag of `got` behind `want` in samples, where their correlation peaks (0..max_lag); only the
/// stretch where `want` is not silent counts.
fn lag_of(want: &[f32], got: &[f32], max_lag: usize) -> usize {
    let from = want.iter().position(|s| s.abs() > 1e-4).unwrap_or(0);
    let to = want.iter().rposition(|s| s.abs() > 1e-4).unwrap_or(0) + 1;
    let c = |lag: usize| -> f32 {
        want[from..to].iter().zip(got.get(from + lag..).unwrap_or(&[])).map(|(x, y)| x * y).sum()
    };
    (0..max_lag).max_by(|&a, &b| c(a).total_cmp(&c(b))).unwrap_or(0)
}

/// The click through the capture path at `rate`, Opus-encoded and decoded to 48 kHz.
fn captured(rate: u32, channels: u16) -> Vec<f32> {
    let device = DeviceFormat { rate, channels };
    let mut p = AudioPipeline::new(AudioConfig { device, ..Default::default() }).unwrap();
    let mic = click(rate, 200.0, 400);
    let mut dec = codec::default_decoder().unwrap();
    let (mut at, mut out, mut frame, mut packet) = (0, Vec::new(), vec![0.0; NET_FRAME], [0u8; MAX_PACKET]);
    loop {
        let n = p.next_capture_samples() / channels as usize;
        if at + n > mic.len() {
            break;
        }
        let pcm: Vec<i16> =
            mic[at..at + n].iter().flat_map(|&s| std::iter::repeat_n(to_i16(s), channels as usize)).collect();
        at += n;
        let len = p.process_capture(&pcm, &mut packet).unwrap();
        dec.decode(Some(&packet[..len]), &mut frame).unwrap();
        out.extend_from_slice(&frame);
    }
    out
}

/// The click as text-to-speech at `tts_rate`, played at device `rate`.
fn played(rate: u32, tts_rate: u32, channels: u16) -> Vec<f32> {
    let device = DeviceFormat { rate, channels };
    let mut p = AudioPipeline::new(AudioConfig { device, tts_rate, ..Default::default() }).unwrap();
    let tts: Vec<i16> = click(tts_rate, 200.0, 400).into_iter().map(to_i16).collect();
    p.push_tts(&tts);
    let mut out = Vec::new();
    while out.len() < (rate as usize * 2 / 5) {
        let mut frame = vec![0i16; p.next_playback_samples()];
        p.process_playback(&mut frame).unwrap();
        // Stereo: both channels carry the same signal; keep the left one.
        out.extend(frame.chunks_exact(channels as usize).map(|s| to_f32(s[0])));
    }
    out
}

/// The click through the mic → 16 kHz resampler the pipeline uses for speech (and the echo
/// canceller, when on, with nothing played): its lag in ms.
fn speech_path_lag_ms(rate: u32, echo_cancel: bool) -> f64 {
    let mut r = FrameResampler::with_max_delay(rate, SPEECH_RATE, if echo_cancel { 5 } else { 10 }).unwrap();
    let mut aec = echo_cancel.then(|| EchoCanceller::new().unwrap());
    let mic = click(rate, 200.0, 400);
    let (mut at, mut out, mut frame) = (0, Vec::new(), vec![0.0; SPEECH_FRAME]);
    for k in 0.. {
        let n = frame_len_at(rate, k);
        if at + n > mic.len() {
            break;
        }
        r.process(&mic[at..at + n], &mut frame).unwrap();
        if let Some(aec) = &mut aec {
            aec.render(&[0.0; 960]).unwrap();
            aec.process(&mut frame).unwrap();
        }
        at += n;
        out.extend_from_slice(&frame);
    }
    lag_of(&click(SPEECH_RATE, 200.0, 400), &out, 16 * 30) as f64 / 16.0
}

#[test]
fn any_device_rate_captures_a_click_within_10_ms() {
    let reference = captured(48_000, 1); // no resampling: only the codec's own delay
    let mut report = Vec::new();
    for rate in all_rates() {
        for channels in [1, 2] {
            let got = captured(rate, channels);
            let lag = lag_of(&reference, &got, 48 * 30);
            let ms = lag as f64 / 48.0;
            let p = AudioPipeline::new(AudioConfig { device: DeviceFormat { rate, channels }, ..Default::default() })
                .unwrap();
            let [to_speech, said, _] = p.added_delay_ms();
            let speech_ms = speech_path_lag_ms(rate, false);
            assert!(speech_ms <= 10.0, "capture to 16 kHz at {rate} Hz adds {speech_ms} ms");
            assert!((speech_ms - to_speech).abs() <= 0.5, "16 kHz path at {rate} Hz: measured {speech_ms}, reported {to_speech:.2}");
            assert!(ms <= 10.0, "capture at {rate} Hz x{channels} adds {ms} ms");
            // The VAD corrects its times with the reported delay: it must be the real one.
            assert!((ms - said).abs() <= 0.5, "capture at {rate} Hz: measured {ms} ms, reported {said:.2} ms");
            if channels == 1 {
                report.push(format!("{rate}: {ms:.2} (16 kHz: {speech_ms:.2})"));
            }
        }
    }
    eprintln!("capture delay, Hz: ms → {}", report.join(", "));
}

#[test]
fn with_the_echo_canceller_on_speech_still_arrives_within_10_ms() {
    let mut report = Vec::new();
    for rate in all_rates() {
        let p = AudioPipeline::new(AudioConfig { device: DeviceFormat { rate, channels: 1 }, echo_cancel: true, ..Default::default() }).unwrap();
        let [to_speech, ..] = p.added_delay_ms();
        let ms = speech_path_lag_ms(rate, true);
        assert!(ms <= 10.0, "capture to 16 kHz with the canceller at {rate} Hz adds {ms} ms");
        assert!((ms - to_speech).abs() <= 0.5, "at {rate} Hz: measured {ms}, reported {to_speech:.2}");
        report.push(format!("{rate}: {ms:.2}"));
    }
    eprintln!("speech path with the canceller, Hz: ms → {}", report.join(", "));
}

#[test]
fn any_device_and_tts_rate_plays_a_click_within_10_ms() {
    let mut report = Vec::new();
    for rate in all_rates() {
        for tts_rate in [24_000, 22_050, 16_000, 11_025, 44_100] {
            let got = played(rate, tts_rate, if rate == 44_100 { 2 } else { 1 });
            let want = click(rate, 200.0, 400);
            let lag = lag_of(&want, &got, rate as usize / 30);
            let ms = lag as f64 * 1000.0 / rate as f64;
            let p = AudioPipeline::new(AudioConfig {
                device: DeviceFormat { rate, channels: 1 },
                tts_rate,
                ..Default::default()
            })
            .unwrap();
            let [.., said] = p.added_delay_ms();
            assert!(ms <= 10.0, "playback of {tts_rate} Hz speech at {rate} Hz adds {ms} ms");
            assert!((ms - said).abs() <= 0.5, "playback {tts_rate} → {rate} Hz: measured {ms} ms, reported {said:.2} ms");
            // The click keeps its shape (no drop-outs or doubled samples at frame seams).
            let peak = got.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            assert!((0.4..0.6).contains(&peak), "playback {tts_rate} → {rate} Hz: click peak {peak}");
            if tts_rate == 24_000 || tts_rate == 22_050 {
                report.push(format!("{tts_rate}→{rate}: {ms:.2}"));
            }
        }
    }
    eprintln!("playback delay, Hz: ms → {}", report.join(", "));
}

#[test]
fn frames_at_odd_rates_add_up_to_exactly_20_ms_each() {
    for rate in all_rates() {
        let total: usize = (0..50).map(|k| frame_len_at(rate, k)).sum();
        assert_eq!(total, rate as usize, "{rate} Hz: 50 frames are one second");
        let f = DeviceFormat { rate, channels: 1 };
        assert!((0..50).all(|k| f.frame_len_at(k) <= f.frame_len()), "{rate}: frame_len is the longest");
    }
    assert_eq!((0..4).map(|k| frame_len_at(11_025, k)).collect::<Vec<_>>(), [220, 221, 220, 221]);
    // A frame of the wrong length at an odd rate is an error, not a silent drift.
    let mut p =
        AudioPipeline::new(AudioConfig { device: DeviceFormat { rate: 11_025, channels: 1 }, ..Default::default() })
            .unwrap();
    assert!(p.process_capture(&[0; 221], &mut []).is_err());
    p.process_capture(&[0; 220], &mut []).unwrap();
    assert_eq!(p.next_capture_samples(), 221);
}

#[test]
fn a_long_stream_at_11025_hz_never_runs_dry() {
    // 10 minutes of a steady tone in and out: any FIFO under- or overflow would show up as a
    // level dip or an error.
    let device = DeviceFormat { rate: 11_025, channels: 1 };
    let mut p = AudioPipeline::new(AudioConfig { device, tts_rate: 22_050, ..Default::default() }).unwrap();
    let tone: Vec<i16> =
        (0..22_050 * 600).map(|i| to_i16((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 22_050.0).sin() * 0.3)).collect();
    p.push_tts(&tone);
    let mut min_rms = f32::MAX;
    for i in 0..30_000 {
        let mut frame = vec![0i16; p.next_playback_samples()];
        p.process_playback(&mut frame).unwrap();
        let mic = vec![0i16; p.next_capture_samples()];
        p.process_capture(&mic, &mut []).unwrap();
        if i > 2 && i < 29_990 {
            min_rms = min_rms.min(rms(&frame.iter().map(|&s| to_f32(s)).collect::<Vec<_>>()));
        }
    }
    assert!(min_rms > 0.2, "a frame dipped to RMS {min_rms}");
}
