//! Zero allocations per 20 ms frame in the steady state: a counting global allocator around
//! the full duplex pipeline (capture + VAD + utterances + Opus encode, jitter buffer + decode +
//! TTS queue + mix), with real espeak-ng speech so the VAD goes through starts and stops.

use moltlink::audio::{AudioConfig, AudioEvent, AudioPipeline, DeviceFormat, MAX_PACKET};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[path = "support/speech.rs"]
mod support;
use support::speech;

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_frames_do_not_allocate() {
    for format in [DeviceFormat { rate: 48_000, channels: 1 }, DeviceFormat { rate: 44_100, channels: 2 }] {
        let mut p = AudioPipeline::new(AudioConfig { device: format, barge_in: false, ..Default::default() }).unwrap();
        let n = p.frame_samples();
        // Mic: speech, then a second of silence, looped.
        let mut mic = speech("Testing one two three, can you hear me?", format.rate);
        mic.resize(mic.len() + format.rate as usize, 0);
        let mic: Vec<i16> = mic.iter().flat_map(|&s| std::iter::repeat_n(s, format.channels as usize)).collect();
        // A remote speaker sends our own encoded mic back; the agent talks the whole time.
        p.push_tts(&speech("I am the agent and I keep talking while you listen to me.", 24_000).repeat(3));
        let mut packet = [0u8; MAX_PACKET];
        let mut spk = vec![0i16; n];
        let mut events = [0u32; 4];
        let mut run = |p: &mut AudioPipeline, frames: usize, from: usize| {
            for i in from..from + frames {
                let at = (i * n) % (mic.len() - n);
                let len = p.process_capture(&mic[at..at + n], &mut packet).unwrap();
                p.push_packet(7, i as u16, &packet[..len], i as u64 * 20).unwrap();
                p.process_playback(&mut spk).unwrap();
                while let Some(e) = p.poll_event() {
                    let k = match e {
                        AudioEvent::SpeechStarted { .. } => 0,
                        AudioEvent::SpeechStopped { .. } => 1,
                        AudioEvent::BargeIn { .. } => 2,
                        AudioEvent::PlaybackFinished { .. } => 3,
                    };
                    events[k] += 1;
                }
            }
        };
        run(&mut p, 100, 0);
        COUNTING.with(|c| c.set(true));
        run(&mut p, 1000, 100);
        COUNTING.with(|c| c.set(false));
        let count = ALLOCATIONS.swap(0, Ordering::Relaxed);
        assert!(events[0] >= 3 && events[1] >= 3, "the VAD started and stopped several times: {events:?}");
        assert_eq!(count, 0, "{format:?}: {count} allocations in 1000 steady-state frames (events {events:?})");
    }
}
