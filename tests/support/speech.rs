//! Real speech for audio tests and benchmarks: a sentence spoken by espeak-ng, converted by sox
//! to raw 16-bit mono at `rate` (raw, because a WAV header cannot be finished on a pipe).
//! Shared by `src/audio/tests.rs`, `tests/audio_alloc.rs` and the bench via `#[path]`.

pub fn speech(text: &str, rate: u32) -> Vec<i16> {
    let out = std::process::Command::new("sh")
        .args(["-c", "espeak-ng --stdout -s 160 \"$1\" | sox -t wav - -r \"$2\" -c 1 -t s16 -", "speech"])
        .args([text, &rate.to_string()])
        .output()
        .expect("sh is available");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "espeak-ng and sox are needed for the audio tests (run host-tests/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}
