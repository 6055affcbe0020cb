//! WIT `audio` interface over [`crate::audio::AudioPipeline`]: translation only. Nothing here
//! can panic on any input (a component cannot catch panics): sizes and configs are checked
//! by the core, which returns errors.

use super::{Component, Res, err, invalid};
use crate::audio::{AudioConfig, AudioPipeline, MAX_PACKET};
use std::cell::RefCell;

use super::exports::moltlink::core::audio::{Guest, GuestPipeline, Pipeline as WitPipeline};

impl Guest for Component {
    type Pipeline = Pipeline;
}

pub struct Pipeline {
    inner: RefCell<AudioPipeline>,
}

impl Pipeline {
    fn with<T>(&self, f: impl FnOnce(&mut AudioPipeline) -> crate::error::Result<T>) -> Res<T> {
        let mut p = self.inner.try_borrow_mut().map_err(|_| invalid("pipeline is busy (re-entrant call)"))?;
        f(&mut p).map_err(err)
    }
}

impl GuestPipeline for Pipeline {
    fn create(config_json: String) -> Res<WitPipeline> {
        let config = AudioConfig::from_json(&config_json).map_err(err)?;
        let pipeline = AudioPipeline::new(config).map_err(err)?;
        Ok(WitPipeline::new(Pipeline { inner: RefCell::new(pipeline) }))
    }

    fn frame_samples(&self) -> u32 {
        self.inner.try_borrow().map(|p| p.frame_samples() as u32).unwrap_or(0)
    }

    fn next_capture_samples(&self) -> u32 {
        self.inner.try_borrow().map(|p| p.next_capture_samples() as u32).unwrap_or(0)
    }

    fn next_playback_samples(&self) -> u32 {
        self.inner.try_borrow().map(|p| p.next_playback_samples() as u32).unwrap_or(0)
    }

    fn capture(&self, mic: Vec<i16>, encode: bool) -> Res<Vec<u8>> {
        self.with(|p| {
            let mut packet = if encode { vec![0u8; MAX_PACKET] } else { Vec::new() };
            let n = p.process_capture(&mic, &mut packet)?;
            packet.truncate(n);
            Ok(packet)
        })
    }

    fn push_packet(&self, speaker: u32, seq: u16, payload: Vec<u8>, arrival_ms: u64) -> Res<()> {
        self.with(|p| p.push_packet(speaker, seq, &payload, arrival_ms))
    }

    fn push_tts(&self, pcm: Vec<i16>) {
        let _ = self.with(|p| {
            p.push_tts(&pcm);
            Ok(())
        });
    }

    fn playback(&self) -> Res<Vec<i16>> {
        self.with(|p| {
            let mut out = vec![0i16; p.next_playback_samples()];
            p.process_playback(&mut out)?;
            Ok(out)
        })
    }

    fn poll_event(&self) -> Option<String> {
        let event = self.with(|p| Ok(p.poll_event())).ok().flatten()?;
        serde_json::to_string(&event).ok()
    }

    fn utterance(&self) -> Vec<i16> {
        self.with(|p| Ok(p.utterance().to_vec())).unwrap_or_default()
    }

    fn utterance_wav(&self) -> Vec<u8> {
        self.with(|p| Ok(p.utterance_wav())).unwrap_or_default()
    }

    fn flush_playback(&self) -> u64 {
        self.with(|p| Ok(p.flush_playback())).unwrap_or(0)
    }
}
