//! `cargo run --release -p moltlink-bench --bin realtime [IDLE_SESSIONS]`: inbound `message`
//! frames through the realtime core (frame → typed read → dedupe → event → drained), against
//! two references on the same frames in the same run: serde_json parsing them into a `Value`,
//! and Node doing `JSON.parse` + dispatch to a listener (what the JavaScript SDK's handler
//! does); then the same end to end over loopback WebSocket (a one-thread Rust host vs a Node
//! `ws` client, same local server), then the live heap of idle connected sessions.
//!
//! Honest by construction: a warm-up round first, the median of interleaved rounds, the
//! counting allocator off while anything is timed (allocations and memory are counted in a
//! separate pass). Node is found on PATH and `ws` under `bindings/node/node_modules`
//! (`npm ci` there); without them their figures print as `n/a`.
//! Ends with one summary line:
//! `realtime: core X µs/msg, node Y µs/msg, ratio node/core Z, value-parse ratio core/value W, idle session B bytes`
//! Not a test: figures vary by machine; only same-run ratios mean something.

use moltlink::io::{Output, SansIo};
use moltlink::testkit::{Driver, Peer};
use moltlink::{ChatsClient, ChatsConfig};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

const T0: u64 = 1_790_000_000_000;
const CHANNEL: &str = "00000000-0000-4000-8000-000000000002";
/// Frames per timed round, and rounds (after one warm-up round).
const ROUND: usize = 20_000;
const ROUNDS: usize = 11;
/// Frames per end-to-end run, and runs per client.
const E2E_FRAMES: usize = 100_000;
const E2E_RUNS: usize = 3;

/// Counts live heap bytes and allocations, only while `COUNTING` is on (never while timing:
/// then it is a plain pass-through to the system allocator).
struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(layout.size(), Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
        }
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Relaxed)
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
    d.client.handle_ws_frame(conn, &format!(r#"{{"op":"subscribed","channel":"{CHANNEL}"}}"#), now);
    d.drive();
    assert!(d.client.is_connected());
    (d.client, conn)
}

/// One frame in, every event out (what a host does per frame). Returns the events seen.
fn feed(c: &mut ChatsClient, conn: u64, frame: &str) -> usize {
    c.handle_ws_frame(conn, frame, T0 + 1);
    let mut n = 0;
    while let Output::Event(e) = c.poll_output() {
        std::hint::black_box(&e);
        n += 1;
    }
    n
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `count` distinct `message` frames shaped like the first recorded inbound one (its keys,
/// order and author), each with its own id, in the bench's channel.
fn frames(from: usize, count: usize) -> Vec<String> {
    let dir = root().join("host-tests/wire/moltchats/ws");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).expect("the recorded frames").map(|e| e.unwrap().path()).collect();
    paths.sort();
    let template = paths
        .iter()
        .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|v| v["dir"] == "in" && v["frame"]["op"] == "message" && v["frame"]["agent"].is_object())
        .expect("a recorded inbound message frame")["frame"]
        .clone();
    (from..from + count)
        .map(|i| {
            let mut f = template.clone();
            f["channel"] = CHANNEL.into();
            f["id"] = format!("8b3d6e71-1283-4d62-b5e5-{i:012x}").into();
            f.to_string()
        })
        .collect()
}

/// `JSON.parse` + dispatch to the listeners of the frame's kind, like the SDK's handler.
const NODE_PARSE: &str = r#"
// With `-e`, argv is node then the arguments.
const [file, round, rounds] = process.argv.slice(-3).map((a, i) => (i ? Number(a) : a));
const frames = require('fs').readFileSync(file, 'utf8').split('\n').filter(Boolean);
const listeners = new Map([['message', [m => { sink += m.content.length + m.id.length; }]]]);
let sink = 0;
function dispatch(text) {
  const m = JSON.parse(text);
  const ls = listeners.get(m.op ?? m.type);
  if (ls) for (const l of ls) l(m);
}
const times = [];
for (let r = 0, at = 0; r <= rounds; r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < round; i++) dispatch(frames[at++ % frames.length]);
  if (r > 0) times.push(Number(process.hrtime.bigint() - t0) / round / 1000);
}
times.sort((a, b) => a - b);
console.log(times[times.length >> 1], sink > 0);
"#;

/// The same handler behind a `ws` client: frames per second from open to the last frame.
const NODE_WS: &str = r#"
const WebSocket = require('ws');
const [url, n] = [process.argv.at(-2), Number(process.argv.at(-1))];
const listeners = new Map([['message', [m => { sink += m.content.length + m.id.length; }]]]);
let sink = 0, got = 0, t0;
const ws = new WebSocket(url);
ws.on('open', () => { t0 = process.hrtime.bigint(); });
ws.on('message', data => {
  const m = JSON.parse(data.toString());
  const ls = listeners.get(m.op ?? m.type);
  if (ls) for (const l of ls) l(m);
  if (++got === n) {
    console.log(n / (Number(process.hrtime.bigint() - t0) / 1e9));
    ws.terminate();
  }
});
ws.on('error', e => { console.error(String(e)); process.exit(1); });
"#;

fn node_available() -> bool {
    Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn node(script: &str, args: &[&str], node_path: Option<&Path>) -> Option<f64> {
    let mut cmd = Command::new("node");
    cmd.arg("-e").arg(script).arg("--").args(args);
    if let Some(p) = node_path {
        cmd.env("NODE_PATH", p);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("node failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    String::from_utf8_lossy(&out.stdout).split_whitespace().next()?.parse().ok()
}

/// Server-to-client WebSocket text frames (unmasked), back to back, then a close frame.
fn wire_bytes(frames: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.push(0x81);
        match f.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65_536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(f.as_bytes());
    }
    out.extend_from_slice(&[0x88, 0x02, 0x03, 0xe8]);
    out
}

/// A local WebSocket server: each connection gets the handshake, then every frame as fast as
/// the socket takes them (pre-encoded, so the server is never the bottleneck).
fn serve(listener: std::net::TcpListener, wire: Vec<u8>) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            stream.set_nodelay(true).ok();
            let Ok(mut ws) = tungstenite::accept(stream) else { continue };
            let s = ws.get_mut();
            if s.write_all(&wire).and_then(|_| s.flush()).is_err() {
                continue;
            }
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
}

/// The Rust host: one thread, a tungstenite client feeding the core. Frames per second.
fn rust_client(port: u16, c: &mut ChatsClient, conn: u64) -> f64 {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).ok();
    let (mut ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/"), stream).unwrap();
    let start = Instant::now();
    let mut got = 0;
    while got < E2E_FRAMES {
        match ws.read().expect("frames until the last") {
            tungstenite::Message::Text(t) => {
                let events = feed(c, conn, t.as_str());
                assert_eq!(events, 1, "one event per frame");
                got += 1;
            }
            tungstenite::Message::Close(_) => panic!("closed after {got} frames"),
            _ => {}
        }
    }
    let rate = got as f64 / start.elapsed().as_secs_f64();
    drop(ws);
    rate
}

fn main() {
    let idle: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let sandbox = Sandbox::new(SandboxConfig::default());
    let creds = register(&sandbox, "bench_agent", 1);
    let all = frames(0, (ROUNDS + 1) * ROUND + E2E_FRAMES);
    let (timed, e2e) = all.split_at((ROUNDS + 1) * ROUND);
    println!("frames: {} distinct `message` frames shaped like the recorded ones, {} bytes each", all.len(), all[0].len());

    // ---- core vs serde_json::Value, interleaved rounds -------------------------------------
    let (mut c, conn) = connected(&creds, 2, &sandbox, T0);
    let (mut core, mut value) = (vec![], vec![]);
    for (r, round) in timed.chunks(ROUND).enumerate() {
        let start = Instant::now();
        let mut events = 0;
        for f in round {
            events += feed(&mut c, conn, f);
        }
        let core_us = start.elapsed().as_secs_f64() * 1e6 / ROUND as f64;
        assert_eq!(events, ROUND, "one event per message");
        let start = Instant::now();
        for f in round {
            std::hint::black_box(serde_json::from_str::<serde_json::Value>(f).unwrap());
        }
        let value_us = start.elapsed().as_secs_f64() * 1e6 / ROUND as f64;
        if r > 0 {
            core.push(core_us);
            value.push(value_us);
        }
    }
    if std::env::var_os("REALTIME_CORE_ONLY").is_some() {
        // For a profiler: the core alone, on and on.
        for _ in 0..20 {
            for f in timed.iter().skip(ROUND) {
                feed(&mut c, conn, f);
            }
        }
        return;
    }
    let (core, value) = (median(core), median(value));
    println!("core:  {core:.3} µs/msg (median of {ROUNDS} rounds × {ROUND} frames, after a warm-up round)");
    println!("serde_json::Value parse of the same frames: {value:.3} µs/msg; ratio core/value {:.2}", core / value);

    // ---- Node: JSON.parse + dispatch on the same frames -------------------------------------
    let has_node = node_available();
    let node_us = if has_node {
        let file = std::env::temp_dir().join(format!("moltlink-bench-frames-{}.jsonl", std::process::id()));
        std::fs::write(&file, timed[..ROUND].join("\n")).unwrap();
        let us = node(NODE_PARSE, &[file.to_str().unwrap(), &ROUND.to_string(), &ROUNDS.to_string()], None);
        std::fs::remove_file(&file).ok();
        us
    } else {
        println!("node: not found on PATH, its reference is skipped");
        None
    };
    if let Some(n) = node_us {
        println!("node {}: JSON.parse + dispatch {n:.3} µs/msg (median of {ROUNDS} rounds, after a warm-up round); ratio node/core {:.2}", node_version(), n / core);
    }

    // ---- allocations per frame, counted apart from the timing --------------------------------
    let extra = frames(all.len(), 1000);
    COUNTING.store(true, Relaxed);
    let (a0, l0) = (ALLOCS.load(Relaxed), live());
    for f in &extra {
        feed(&mut c, conn, f);
    }
    let per_frame = (ALLOCS.load(Relaxed) - a0) as f64 / extra.len() as f64;
    let kept = live() as isize - l0 as isize;
    COUNTING.store(false, Relaxed);
    println!("allocations per message frame (counted in a separate pass): {per_frame:.1}; live heap change over 1000 frames: {kept} bytes");

    // ---- end to end over loopback ------------------------------------------------------------
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener, wire_bytes(e2e));
    let ws_path = root().join("bindings/node/node_modules");
    let node_ws = has_node && ws_path.join("ws").is_dir();
    if has_node && !node_ws {
        println!("end to end: `ws` not found under bindings/node/node_modules (run `npm ci` there): the Node client is skipped");
    }
    let (mut rust_rates, mut node_rates) = (vec![], vec![]);
    for _ in 0..E2E_RUNS {
        // A fresh session per run: the frames repeat, and a session would drop them as seen.
        let (mut c, conn) = connected(&creds, 4, &sandbox, T0);
        rust_rates.push(rust_client(port, &mut c, conn));
        if node_ws {
            let url = format!("ws://127.0.0.1:{port}/");
            if let Some(r) = node(NODE_WS, &[&url, &E2E_FRAMES.to_string()], Some(&ws_path)) {
                node_rates.push(r);
            }
        }
    }
    let rust_rate = median(rust_rates);
    println!("end to end over loopback ({E2E_FRAMES} frames from a local WebSocket server, median of {E2E_RUNS} runs):");
    println!("  Rust host, one thread (tungstenite + core): {:>9.0} frames/s", rust_rate);
    if !node_rates.is_empty() {
        let node_rate = median(node_rates);
        println!("  Node `ws` client (JSON.parse + dispatch):   {:>9.0} frames/s", node_rate);
        println!("  ratio rust/node: {:.2}", rust_rate / node_rate);
    }
    drop(c);

    // ---- live heap of idle connected sessions (counting on, nothing timed) -------------------
    // The sandbox's own growth (token rows it keeps per login) is measured the same way with
    // the clients dropped, and subtracted: the figure is the client's alone, its struct included.
    COUNTING.store(true, Relaxed);
    let heap0 = live();
    let mut sessions = Vec::with_capacity(idle);
    for i in 0..idle {
        sessions.push(connected(&creds, (i % 250) as u8, &sandbox, T0 + 2 + i as u64));
    }
    let total = live() - heap0;
    let sandbox_growth = {
        let probe = Sandbox::new(SandboxConfig::default());
        let saved = register(&probe, "probe_agent", 3);
        let k = 200;
        let after_reg = live();
        for i in 0..k {
            drop(connected(&saved, (i % 250) as u8, &probe, T0 + 10 + i as u64));
        }
        (live() - after_reg) / k
    };
    // The part a client holds before any traffic: saved credentials, the parsed key.
    let at_rest = {
        let before = live();
        let client = ChatsClient::new(config(Some(creds.clone()), 5)).unwrap();
        let heap = live() - before;
        drop(client);
        heap
    };
    COUNTING.store(false, Relaxed);
    let per = (total as f64 / idle as f64 - sandbox_growth as f64).round() as u64;
    println!(
        "idle connected sessions: {idle}; live heap +{:.1} MiB, of which the in-process sandbox ~{sandbox_growth} bytes/login",
        total as f64 / 1048576.0
    );
    println!(
        "client memory per idle connected session: {per} bytes of live heap (the ChatsClient struct itself is {} bytes); 100 000 sessions: {:.0} MB",
        std::mem::size_of::<ChatsClient>(),
        per as f64 * 100_000.0 / 1e6
    );
    std::hint::black_box(&sessions);
    println!("a client just built from saved credentials (key parsed, nothing sent): {at_rest} bytes of heap");
    println!(
        "sizes: ChatsClient {} bytes, an output (Output<ChatsEvent>) {} bytes, RealtimeEvent {} bytes",
        std::mem::size_of::<ChatsClient>(),
        std::mem::size_of::<Output<moltlink::chats::ChatsEvent>>(),
        std::mem::size_of::<moltlink::chats::RealtimeEvent>()
    );

    let na = |v: Option<f64>, p: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.p$}"));
    println!(
        "realtime: core {core:.3} µs/msg, node {} µs/msg, ratio node/core {}, value-parse ratio core/value {:.2}, idle session {per} bytes",
        na(node_us, 3),
        na(node_us.map(|n| n / core), 2),
        core / value
    );
}

fn node_version() -> String {
    Command::new("node").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}
