//! `cargo run --release -p moltlink-bench --bin realtime [IDLE_SESSIONS]`: the realtime core's
//! throughput for inbound `message` frames (frame → dedupe → typed event → drained), against
//! a reference measured in the same run (serde_json parsing the same frames into a `Value`),
//! and the resident memory of idle connected sessions. Not a test: figures vary by machine.

use moltlink::io::{Output, SansIo};
use moltlink::testkit::{Driver, Peer};
use moltlink::{ChatsClient, ChatsConfig};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use std::time::Instant;

const T0: u64 = 1_790_000_000_000;
const CHANNEL: &str = "00000000-0000-4000-8000-000000000002";

/// Counts live heap bytes, so per-session memory is measured exactly (RSS hides reuse of freed
/// pages and allocator slack; it is reported too).
struct Counting;
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The in-process sandbox for REST; sockets are only noted (the bench plays the gateway's
/// frames itself: the gateway's side is not part of the client's cost).
struct Rest<'a> {
    sandbox: &'a Sandbox,
    opened: Option<u64>,
}

impl Peer for Rest<'_> {
    fn http(&mut self, request: http::Request<Vec<u8>>, now: u64) -> Result<http::Response<Vec<u8>>, String> {
        Ok(self.sandbox.handle(request, now))
    }
    fn ws_open(&mut self, conn: u64, _: &str, _: u64) -> Result<bool, (u16, String)> {
        self.opened = Some(conn);
        Ok(false)
    }
    fn ws_send(&mut self, _: u64, _: &str, _: u64) {}
    fn ws_close(&mut self, _: u64, _: u16, _: &str, _: u64) {}
}

fn config(credentials: Option<Vec<u8>>, seed: u8) -> ChatsConfig {
    ChatsConfig { api_base: Some("http://127.0.0.1/moltchats/api/v1".into()), credentials, seed: [seed; 32], refresh: Default::default() }
}

/// Register a new agent on `sandbox`; returns its saved credentials.
fn register(sandbox: &Sandbox, name: &str, seed: u8) -> Vec<u8> {
    let mut d = Driver::new(ChatsClient::new(config(None, seed)).unwrap(), Rest { sandbox, opened: None }, T0);
    d.client.register(name, T0).unwrap();
    d.drive();
    d.persisted.expect("credentials were persisted")
}

/// A logged-in client from saved credentials, connected and subscribed (frames synthesised).
fn connected(creds: &[u8], seed: u8, sandbox: &Sandbox, now: u64) -> (ChatsClient, u64) {
    let mut d = Driver::new(ChatsClient::new(config(Some(creds.to_vec()), seed)).unwrap(), Rest { sandbox, opened: None }, now);
    d.client.connect(now).unwrap();
    d.client.subscribe(&[CHANNEL.to_owned()], now).unwrap();
    d.drive();
    let conn = d.peer.opened.expect("a socket was requested once authenticated");
    d.client.handle_ws_open(conn, now);
    d.client.handle_ws_frame(conn, &format!(r#"{{"type":"subscribed","channel":"{CHANNEL}"}}"#), now);
    d.drive();
    assert!(d.client.is_connected());
    (d.client, conn)
}

fn main() {
    let idle: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let sandbox = Sandbox::new(SandboxConfig::default());
    let creds = register(&sandbox, "bench_agent", 1);

    // ---- throughput of inbound message frames --------------------------------------------
    let (mut c, conn) = connected(&creds, 2, &sandbox, T0);
    let n = 200_000;
    let frames: Vec<String> = (0..n)
        .map(|i| format!(
            r#"{{"type":"message","channel":"{CHANNEL}","id":"m-{i:08}","content":"hello number {i}, how are you today?","contentType":"text","timestamp":"2026-11-24T02:00:{:02}.{:03}Z","agent":{{"id":"a-1","username":"other_agent","displayName":"Other","avatarUrl":null}}}}"#,
            (i / 1000) % 60, i % 1000
        ))
        .collect();
    let start = Instant::now();
    let mut events = 0u64;
    for f in &frames {
        c.handle_ws_frame(conn, f, T0 + 1);
        while let Output::Event(e) = c.poll_output() {
            std::hint::black_box(&e);
            events += 1;
        }
    }
    let core_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for f in &frames {
        std::hint::black_box(serde_json::from_str::<serde_json::Value>(f).unwrap());
    }
    let parse_s = start.elapsed().as_secs_f64();
    assert_eq!(events, n as u64, "one event per message");
    println!("inbound message frames: {:>10.0} events/s through the core ({n} frames, {:.1} µs each)", n as f64 / core_s, core_s * 1e6 / n as f64);
    println!("reference serde_json::Value parse of the same frames: {:>10.0} frames/s", n as f64 / parse_s);
    println!("ratio core/parse time: {:.2}x", core_s / parse_s);
    drop(c);

    // ---- memory of idle sessions ---------------------------------------------------------
    // Sessions are built in batches; the sandbox's own growth (token rows it keeps per login)
    // is measured separately and subtracted, so the figure is the client's alone.
    let (heap0, rss0) = (live(), rss_bytes());
    let mut sessions = Vec::with_capacity(idle);
    let sandbox_growth;
    let start = Instant::now();
    for i in 0..idle {
        sessions.push(connected(&creds, (i % 250) as u8, &sandbox, T0 + 2 + i as u64));
    }
    let setup_s = start.elapsed().as_secs_f64();
    let total = live() - heap0;
    // The sandbox's share: a second sandbox doing the same logins, its clients dropped.
    {
        let probe = Sandbox::new(SandboxConfig::default());
        let saved = register(&probe, "probe_agent", 3);
        let k = 200;
        let after_reg = live();
        for i in 0..k {
            drop(connected(&saved, (i % 250) as u8, &probe, T0 + 10 + i as u64));
        }
        sandbox_growth = (live() - after_reg) / k;
    }
    let per = total as f64 / idle as f64 - sandbox_growth as f64;
    println!(
        "idle connected sessions: {idle} in {setup_s:.1} s; live heap +{:.1} MiB (RSS +{:.1} MiB), of which the in-process sandbox ~{sandbox_growth} bytes/login",
        total as f64 / 1048576.0,
        rss_bytes().saturating_sub(rss0) as f64 / 1048576.0
    );
    println!("client memory per idle connected session: {per:.0} bytes (live heap; the ChatsClient struct itself is {} bytes)", std::mem::size_of::<ChatsClient>());
    println!("extrapolated 100 000 idle sessions: {:.0} MiB (target: within 1024 MiB)", per * 100_000.0 / 1048576.0);
    std::hint::black_box(&sessions);
}

