//! `ml_audio_*`: the C ABI of [`crate::audio::AudioPipeline`], a thin translation. Frames are
//! interleaved `int16_t` at the device format; sizes come from `ml_audio_frame_samples`.
//! The conventions of `ffi/mod.rs` apply (codes, NULL checks, panic boundary, one thread).
#![allow(clippy::missing_safety_doc)]

use super::boundary::{Poisonable, copy_out, enter, enter_handle, opt_str_arg, slice_arg, slice_mut_arg, write_out};
use crate::audio::{AudioConfig, AudioPipeline};
use crate::error::{Error, ErrorCode};
use std::cell::{Cell, RefCell};
use std::ffi::c_char;

/// An opaque audio pipeline. Create with `ml_audio_new`, destroy with `ml_audio_free`.
pub struct MlAudio {
    pipeline: RefCell<AudioPipeline>,
    /// An event polled but not yet copied out (the caller's buffer was too small).
    pending: RefCell<Option<String>>,
    poisoned: Cell<bool>,
}

impl Poisonable for MlAudio {
    fn poison_flag(&self) -> &Cell<bool> {
        &self.poisoned
    }
}

/// Create a pipeline. `config_json` is an `AudioConfig` as JSON (every field optional, e.g.
/// `{"device":{"rate":44100,"channels":2}}`), or NULL for the defaults (48 kHz mono).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_new(config_json: *const c_char, out: *mut *mut MlAudio) -> i32 {
    enter("ml_audio_new", || {
        unsafe { write_out(out, std::ptr::null_mut(), "out")? };
        let config = match unsafe { opt_str_arg(config_json, "config_json")? } {
            Some(text) => AudioConfig::from_json(text)?,
            None => AudioConfig::default(),
        };
        let pipeline = AudioPipeline::new(config)?;
        let handle = MlAudio { pipeline: RefCell::new(pipeline), pending: RefCell::new(None), poisoned: Cell::new(false) };
        unsafe { out.write(Box::into_raw(Box::new(handle))) };
        Ok(())
    })
}

/// Destroy a pipeline (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_free(handle: *mut MlAudio) {
    if handle.is_null() {
        return;
    }
    enter("ml_audio_free", || {
        // SAFETY: from `ml_audio_new`, freed once, per the contract.
        drop(unsafe { Box::from_raw(handle) });
        Ok(())
    });
}

/// `*samples` = interleaved samples in one 20 ms device frame (mic and speaker alike).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_frame_samples(handle: *const MlAudio, samples: *mut usize) -> i32 {
    enter_handle("ml_audio_frame_samples", handle, |h| unsafe {
        write_out(samples, h.pipeline.borrow().frame_samples(), "samples")
    })
}

/// `*capture` / `*playback` = interleaved samples the next `ml_audio_capture` takes and the
/// next `ml_audio_playback` fills. Both are `ml_audio_frame_samples` unless 20 ms is not a
/// whole number of samples at the device rate (at 11 025 Hz frames alternate 220 and 221).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_next_frame_samples(handle: *const MlAudio, capture: *mut usize, playback: *mut usize) -> i32 {
    enter_handle("ml_audio_next_frame_samples", handle, |h| unsafe {
        let p = h.pipeline.borrow();
        write_out(capture, p.next_capture_samples(), "capture")?;
        write_out(playback, p.next_playback_samples(), "playback")
    })
}

/// One 20 ms mic frame (`ml_audio_next_frame_samples` samples). With `packet_cap > 0` the frame is also Opus-encoded into `packet`
/// (1275 bytes always suffice) and `*packet_len` receives its length; with `packet_cap == 0`
/// nothing is encoded and `*packet_len` is 0. `packet_len` may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_capture(
    handle: *const MlAudio,
    mic: *const i16,
    mic_len: usize,
    packet: *mut u8,
    packet_cap: usize,
    packet_len: *mut usize,
) -> i32 {
    enter_handle("ml_audio_capture", handle, |h| {
        let mic = unsafe { slice_arg(mic, mic_len, "mic")? };
        let packet = unsafe { slice_mut_arg(packet, packet_cap, "packet")? };
        let n = h.pipeline.borrow_mut().process_capture(mic, packet)?;
        if !packet_len.is_null() {
            unsafe { packet_len.write(n) };
        }
        Ok(())
    })
}

/// An Opus packet from remote `speaker` with its 16-bit sequence number and arrival time (ms).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_push_packet(
    handle: *const MlAudio,
    speaker: u32,
    seq: u16,
    payload: *const u8,
    payload_len: usize,
    arrival_ms: u64,
) -> i32 {
    enter_handle("ml_audio_push_packet", handle, |h| {
        let payload = unsafe { slice_arg(payload, payload_len, "payload")? };
        h.pipeline.borrow_mut().push_packet(speaker, seq, payload, arrival_ms)
    })
}

/// Text-to-speech samples (mono, at the configured `tts_rate`, 24 kHz by default), any count.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_push_tts(handle: *const MlAudio, pcm: *const i16, len: usize) -> i32 {
    enter_handle("ml_audio_push_tts", handle, |h| {
        let pcm = unsafe { slice_arg(pcm, len, "pcm")? };
        h.pipeline.borrow_mut().push_tts(pcm);
        Ok(())
    })
}

/// One 20 ms speaker frame into `out` (exactly the `playback` count of `ml_audio_next_frame_samples`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_playback(handle: *const MlAudio, out: *mut i16, out_len: usize) -> i32 {
    enter_handle("ml_audio_playback", handle, |h| {
        let out = unsafe { slice_mut_arg(out, out_len, "out")? };
        h.pipeline.borrow_mut().process_playback(out)
    })
}

/// The next event as JSON (`{"type":"speech-started","at_ms":…}`, `speech-stopped`,
/// `barge-in`, `playback-started`, `playback-finished`) copied like every string; `*needed` is 0 when there is no
/// event. An event that did not fit stays for the next call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_poll_event(handle: *const MlAudio, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter_handle("ml_audio_poll_event", handle, |h| {
        let mut pending = h.pending.borrow_mut();
        if pending.is_none() {
            *pending = h.pipeline.borrow_mut().poll_event().map(|e| serde_json::to_string(&e).unwrap_or_default());
        }
        let text = pending.as_deref().unwrap_or("");
        unsafe { copy_out(text.as_bytes(), buf, cap, needed)? };
        *pending = None;
        Ok(())
    })
}

/// The last utterance (16 kHz mono samples) into `out`; `*needed` receives its sample count.
/// A size query: `cap == 0`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_utterance(handle: *const MlAudio, out: *mut i16, cap: usize, needed: *mut usize) -> i32 {
    enter_handle("ml_audio_utterance", handle, |h| {
        let pipeline = h.pipeline.borrow();
        let samples = pipeline.utterance();
        unsafe { write_out(needed, samples.len(), "needed")? };
        if cap < samples.len() {
            return Err(Error::new(ErrorCode::BufferTooSmall, format!("{cap} samples is too small: {} needed", samples.len())));
        }
        let out = unsafe { slice_mut_arg(out, cap, "out")? };
        out[..samples.len()].copy_from_slice(samples);
        Ok(())
    })
}

/// The last utterance as WAV bytes (16 kHz mono 16-bit), copied like every buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_utterance_wav(handle: *const MlAudio, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter_handle("ml_audio_utterance_wav", handle, |h| {
        let wav = h.pipeline.borrow().utterance_wav();
        unsafe { copy_out(&wav, buf, cap, needed) }
    })
}

/// Stop the agent's speech now; `*flushed_ms` (may be NULL) receives the ms dropped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_audio_flush_playback(handle: *const MlAudio, flushed_ms: *mut u64) -> i32 {
    enter_handle("ml_audio_flush_playback", handle, |h| {
        let ms = h.pipeline.borrow_mut().flush_playback();
        if !flushed_ms.is_null() {
            unsafe { flushed_ms.write(ms) };
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::{null, null_mut};

    fn new(config: &std::ffi::CStr) -> *mut MlAudio {
        let mut h = null_mut();
        assert_eq!(unsafe { ml_audio_new(config.as_ptr(), &mut h) }, 0);
        h
    }

    #[test]
    fn a_c_host_runs_frames_and_reads_events() {
        let h = new(c"{\"device\":{\"rate\":16000,\"channels\":1}}");
        let mut n = 0;
        assert_eq!(unsafe { ml_audio_frame_samples(h, &mut n) }, 0);
        assert_eq!(n, 320);
        let speech = crate::audio::tests::speech("Hello from the C interface, testing one two three.", 16_000);
        let mut mic: Vec<i16> = vec![0; 16_000];
        mic.extend(&speech);
        mic.extend(vec![0; 16_000]);
        let mut packet = [0u8; 1275];
        let mut out = vec![0i16; n];
        let mut events = Vec::new();
        for (i, frame) in mic.chunks_exact(n).enumerate() {
            let mut len = 0;
            assert_eq!(unsafe { ml_audio_capture(h, frame.as_ptr(), n, packet.as_mut_ptr(), packet.len(), &mut len) }, 0);
            assert!(len > 0);
            assert_eq!(unsafe { ml_audio_push_packet(h, 3, i as u16, packet.as_ptr(), len, i as u64 * 20) }, 0);
            assert_eq!(unsafe { ml_audio_playback(h, out.as_mut_ptr(), n) }, 0);
            loop {
                let mut needed = 0;
                let mut small = [0u8; 4];
                let rc = unsafe { ml_audio_poll_event(h, small.as_mut_ptr(), small.len(), &mut needed) };
                if needed == 0 {
                    assert_eq!(rc, 0);
                    break;
                }
                assert_eq!(rc, super::super::ML_BUFFER_TOO_SMALL, "the event waits for a bigger buffer");
                let mut buf = vec![0u8; needed + 1];
                assert_eq!(unsafe { ml_audio_poll_event(h, buf.as_mut_ptr(), buf.len(), &mut needed) }, 0);
                events.push(String::from_utf8(buf[..needed].to_vec()).unwrap());
            }
        }
        assert!(events[0].starts_with("{\"type\":\"speech-started\""), "{events:?}");
        assert!(events.iter().any(|e| e.contains("speech-stopped")), "{events:?}");
        let mut needed = 0;
        assert_eq!(unsafe { ml_audio_utterance(h, null_mut(), 0, &mut needed) }, super::super::ML_BUFFER_TOO_SMALL);
        let mut utt = vec![0i16; needed];
        assert_eq!(unsafe { ml_audio_utterance(h, utt.as_mut_ptr(), utt.len(), &mut needed) }, 0);
        assert!(needed > 16_000);
        assert_eq!(unsafe { ml_audio_utterance_wav(h, null_mut(), 0, &mut needed) }, super::super::ML_BUFFER_TOO_SMALL);
        assert_eq!(needed, 44 + utt.len() * 2);
        unsafe { ml_audio_free(h) };
    }

    #[test]
    fn bad_arguments_are_codes() {
        let mut h = null_mut();
        assert_eq!(unsafe { ml_audio_new(c"{\"device\":{\"rate\":11025}}".as_ptr(), &mut h) }, super::super::ML_INVALID_ARGUMENT);
        assert!(h.is_null());
        assert_eq!(unsafe { ml_audio_new(null(), null_mut()) }, super::super::ML_NULL_POINTER);
        let h = new(c"");
        assert_eq!(unsafe { ml_audio_capture(h, null(), 960, null_mut(), 0, null_mut()) }, super::super::ML_NULL_POINTER);
        let short = [0i16; 10];
        assert_eq!(unsafe { ml_audio_capture(h, short.as_ptr(), 10, null_mut(), 0, null_mut()) }, super::super::ML_INVALID_ARGUMENT);
        assert_eq!(unsafe { ml_audio_playback(null(), null_mut(), 0) }, super::super::ML_NULL_POINTER);
        unsafe { ml_audio_free(h) };
    }
}
