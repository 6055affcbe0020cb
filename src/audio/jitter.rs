//! Adaptive jitter buffer for one speaker's Opus packets: reorders by sequence number,
//! conceals losses with the decoder's PLC, and keeps a target delay between 20 and 200 ms
//! that follows the measured arrival jitter (RFC 3550's estimator). A packet arriving too late
//! stretches the delay by one concealed frame; a queue that stays deeper than the target for a
//! second drops one frame. Fixed slots: no allocation after creation.

use super::{Decoder, FRAME_MS, MAX_PACKET};
use crate::error::Result;

/// Slots: 640 ms of packets, well above the 200 ms maximum target.
const SLOTS: usize = 32;
const MIN_TARGET_MS: u32 = 20;
const MAX_TARGET_MS: u32 = 200;
/// Consecutive concealed frames with nothing buffered before we stop and re-buffer.
const MAX_CONCEAL: u32 = 5;

/// What [`JitterBuffer::pop`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Waiting for the target delay to fill (output is silence).
    Buffering,
    /// A received packet.
    Decoded,
    /// A lost or late packet, concealed by the decoder.
    Concealed,
}

#[derive(Clone, Copy)]
struct Slot {
    seq: u64,
    len: u16,
    full: bool,
    data: [u8; MAX_PACKET],
}

/// Counters for hosts and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JitterStats {
    /// Packets decoded into frames.
    pub decoded: u64,
    /// Frames concealed for lost packets.
    pub concealed: u64,
    /// Packets that arrived after their frame was played.
    pub late: u64,
    /// Packets dropped to keep the delay down.
    pub dropped_for_delay: u64,
    /// Concealed frames inserted to grow the delay after late packets.
    pub stretched: u64,
    /// The delay the buffer aims for, ms.
    pub target_ms: u32,
}

/// Orders incoming Opus packets by sequence number and releases one 20 ms frame per tick, concealing losses.
pub struct JitterBuffer {
    slots: Box<[Slot; SLOTS]>,
    /// Next extended (unwrapped) sequence number to play; `None` before the first packet.
    next: Option<u64>,
    /// Highest extended sequence number received.
    highest: u64,
    playing: bool,
    concealed_run: u32,
    /// Late packets seen since the last stretch: each asks for one more frame of delay.
    stretch: u32,
    /// Consecutive frames with more queued than the target needs.
    deep_run: u32,
    /// RFC 3550 interarrival jitter in ms (smoothed), and the previous transit time.
    jitter_ms: f32,
    last_transit: Option<i64>,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    /// An empty buffer with the default target delay.
    pub fn new() -> Self {
        let empty = Slot { seq: 0, len: 0, full: false, data: [0; MAX_PACKET] };
        Self {
            slots: Box::new([empty; SLOTS]),
            next: None,
            highest: 0,
            playing: false,
            concealed_run: 0,
            stretch: 0,
            deep_run: 0,
            jitter_ms: 0.0,
            last_transit: None,
            stats: JitterStats { target_ms: MIN_TARGET_MS, ..Default::default() },
        }
    }

    /// Counters since creation (decoded, concealed, late, dropped).
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current target delay in ms.
    pub fn target_ms(&self) -> u32 {
        self.stats.target_ms
    }

    /// Extend a 16-bit sequence number to 64 bits, near the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let Some(_) = self.next else { return seq as u64 + (1 << 16) };
        let base = self.highest;
        let cand = (base & !0xffff) | seq as u64;
        // Pick the candidate closest to `base` among cand - 2^16, cand, cand + 2^16.
        [cand.wrapping_sub(1 << 16), cand, cand + (1 << 16)]
            .into_iter()
            .min_by_key(|c| c.abs_diff(base))
            .unwrap_or(cand)
    }

    /// A packet arrived at `arrival_ms` (the host's clock). Oversized packets are refused.
    pub fn push(&mut self, seq: u16, payload: &[u8], arrival_ms: u64) -> Result<()> {
        if payload.is_empty() || payload.len() > MAX_PACKET {
            return Err(crate::Error::invalid_argument(format!("packet of {} bytes (1..={MAX_PACKET})", payload.len())));
        }
        let ext = self.extend(seq);
        let next = match self.next {
            None => {
                self.next = Some(ext);
                self.highest = ext;
                ext
            }
            Some(n) => n,
        };
        if ext < next {
            self.stats.late += 1;
            if self.buffered_ms() < MAX_TARGET_MS {
                self.stretch = 1;
            }
            return Ok(());
        }
        if ext >= next + SLOTS as u64 {
            // Far ahead (a long gap or a restarted sender): start over from this packet.
            self.clear_slots();
            self.next = Some(ext);
            self.playing = false;
        }
        self.highest = self.highest.max(ext);
        self.update_jitter(ext, arrival_ms);
        let slot = &mut self.slots[(ext % SLOTS as u64) as usize];
        slot.seq = ext;
        slot.len = payload.len() as u16;
        slot.full = true;
        slot.data[..payload.len()].copy_from_slice(payload);
        Ok(())
    }

    fn update_jitter(&mut self, ext: u64, arrival_ms: u64) {
        let transit = arrival_ms as i64 - (ext as i64) * FRAME_MS as i64;
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).unsigned_abs() as f32;
            self.jitter_ms += (d - self.jitter_ms) / 16.0;
        }
        self.last_transit = Some(transit);
        // Cover about three standard jitters, rounded up to whole frames.
        let want = (self.jitter_ms * 3.0).ceil() as u32 + FRAME_MS;
        let frames = want.div_ceil(FRAME_MS);
        self.stats.target_ms = (frames * FRAME_MS).clamp(MIN_TARGET_MS, MAX_TARGET_MS);
    }

    fn clear_slots(&mut self) {
        for s in self.slots.iter_mut() {
            s.full = false;
        }
    }

    /// Packets buffered from `next` on, in ms of audio (up to the highest received).
    fn buffered_ms(&self) -> u32 {
        match self.next {
            Some(n) if self.highest >= n => ((self.highest - n + 1) as u32).min(SLOTS as u32) * FRAME_MS,
            _ => 0,
        }
    }

    fn take(&mut self, ext: u64) -> Option<(usize, usize)> {
        let i = (ext % SLOTS as u64) as usize;
        let slot = &mut self.slots[i];
        if slot.full && slot.seq == ext {
            slot.full = false;
            Some((i, slot.len as usize))
        } else {
            None
        }
    }

    /// Produce the next 20 ms frame into `out` (48 kHz mono), decoding with `decoder`.
    pub fn pop(&mut self, decoder: &mut dyn Decoder, out: &mut [f32]) -> Result<FrameKind> {
        let Some(mut next) = self.next else {
            out.fill(0.0);
            return Ok(FrameKind::Buffering);
        };
        if !self.playing {
            if self.buffered_ms() < self.stats.target_ms {
                out.fill(0.0);
                return Ok(FrameKind::Buffering);
            }
            self.playing = true;
        }
        if self.stretch > 0 {
            // A packet came too late: play one concealed frame without advancing, adding 20 ms.
            self.stretch -= 1;
            self.stats.stretched += 1;
            self.stats.concealed += 1;
            decoder.decode(None, out)?;
            return Ok(FrameKind::Concealed);
        }
        // Queued deeper than the target for a whole second: drop one frame to cut the delay.
        self.deep_run = if self.buffered_ms() > self.stats.target_ms + 2 * FRAME_MS { self.deep_run + 1 } else { 0 };
        if self.deep_run >= 50 {
            self.deep_run = 0;
            if self.take(next).is_some() {
                self.stats.dropped_for_delay += 1;
            }
            next += 1;
        }
        self.next = Some(next + 1);
        match self.take(next) {
            Some((i, len)) => {
                self.concealed_run = 0;
                self.stats.decoded += 1;
                let slot = &self.slots[i];
                decoder.decode(Some(&slot.data[..len]), out)?;
                Ok(FrameKind::Decoded)
            }
            None => {
                self.concealed_run += 1;
                self.stats.concealed += 1;
                decoder.decode(None, out)?;
                if self.concealed_run >= MAX_CONCEAL && self.highest < next + 1 {
                    // The sender went quiet: re-buffer before playing again.
                    self.playing = false;
                    self.concealed_run = 0;
                }
                Ok(FrameKind::Concealed)
            }
        }
    }
}
