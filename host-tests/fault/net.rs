//! The faulty network and the killable host around one client.

use moltlink::chats::{ChatsCommand, ChatsEvent, RealtimeEvent};
use moltlink::io::{Output, SansIo};
use moltlink::{ChatsClient, ChatsConfig};
use moltlink_sandbox::moltchats::gateway::{SessionId, WsOut};
use moltlink_sandbox::moltchats::social::SEED_SERVER_ID;
use moltlink_sandbox::Sandbox;
use std::collections::BTreeMap;

pub const T0: u64 = 1_790_000_000_000;

thread_local! {
    /// Set while the sandbox (the "server") runs, so the soak's allocator can tell the
    /// server's memory from the clients'.
    pub static IN_SERVER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` as server work.
pub fn server<R>(f: impl FnOnce() -> R) -> R {
    IN_SERVER.with(|s| s.set(true));
    let r = f();
    IN_SERVER.with(|s| s.set(false));
    r
}
const API: &str = "http://127.0.0.1/moltchats/api/v1";

/// SplitMix64: a reproducible stream per seed (the runs must replay exactly from their seed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// Per-event fault probabilities.
#[derive(Clone, Copy)]
pub struct Faults {
    /// The request never reaches the server (transport error later).
    pub drop_request: f64,
    /// The server handled it but the response is lost (transport error later).
    pub drop_response: f64,
    /// The response arrives twice.
    pub duplicate: f64,
    /// Responses and frames are delayed by up to this (a long tail: 1 in 20 up to 40×).
    pub max_delay_ms: u64,
    /// Responses/acks due at the same step are delivered in random order.
    pub reorder: bool,
    /// A server frame arrives twice.
    pub duplicate_frame: f64,
    /// Per step: the socket dies (either side).
    pub ws_kill: f64,
    /// A socket open is refused.
    pub ws_refuse: f64,
    /// Per step: the host process dies and restarts from disk.
    pub kill_host: f64,
}

impl Faults {
    pub fn none() -> Self {
        Self { drop_request: 0.0, drop_response: 0.0, duplicate: 0.0, max_delay_ms: 0, reorder: false, duplicate_frame: 0.0, ws_kill: 0.0, ws_refuse: 0.0, kill_host: 0.0 }
    }
    pub fn chaos() -> Self {
        Self {
            drop_request: 0.05,
            drop_response: 0.05,
            duplicate: 0.05,
            max_delay_ms: 800,
            reorder: true,
            duplicate_frame: 0.05,
            ws_kill: 0.004,
            ws_refuse: 0.1,
            kill_host: 0.0015,
        }
    }
}

/// Faults injected (the run survived all of them when its invariants hold).
#[derive(Default, Debug, Clone)]
pub struct FaultStats {
    pub runs: u64,
    pub requests: u64,
    pub dropped_requests: u64,
    pub dropped_responses: u64,
    pub duplicated_responses: u64,
    pub delayed: u64,
    pub duplicated_frames: u64,
    pub ws_kills: u64,
    pub ws_refused: u64,
    pub host_kills: u64,
    pub unacked_persists_at_kill: u64,
}

impl FaultStats {
    pub fn add(&mut self, o: &FaultStats) {
        self.runs += 1;
        self.requests += o.requests;
        self.dropped_requests += o.dropped_requests;
        self.dropped_responses += o.dropped_responses;
        self.duplicated_responses += o.duplicated_responses;
        self.delayed += o.delayed;
        self.duplicated_frames += o.duplicated_frames;
        self.ws_kills += o.ws_kills;
        self.ws_refused += o.ws_refused;
        self.host_kills += o.host_kills;
        self.unacked_persists_at_kill += o.unacked_persists_at_kill;
    }
}

impl std::fmt::Display for FaultStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} HTTP requests; survived {} dropped requests, {} dropped responses, {} duplicated responses, {} delayed deliveries, \
             {} duplicated WS frames, {} socket kills, {} refused opens, {} host kills ({} with a persist written but unacknowledged)",
            self.requests, self.dropped_requests, self.dropped_responses, self.duplicated_responses, self.delayed,
            self.duplicated_frames, self.ws_kills, self.ws_refused, self.host_kills, self.unacked_persists_at_kill
        )
    }
}

enum Delivery {
    Http { id: u64, result: Result<http::Response<Vec<u8>>, String> },
    Persisted { ticket: u64 },
    WsOpened { conn: u64 },
    WsFrame { conn: u64, text: String },
    WsClosed { conn: u64, code: u16 },
}

fn copy(r: &http::Response<Vec<u8>>) -> http::Response<Vec<u8>> {
    let mut c = http::Response::new(r.body().clone());
    *c.status_mut() = r.status();
    *c.headers_mut() = r.headers().clone();
    c
}

/// A host process: one client, its disk, its sockets and the deliveries in flight to it.
pub struct Host {
    pub client: ChatsClient,
    pub incarnation: u32,
    pub disk: Option<Vec<u8>>,
    pub subscribe: Vec<String>,
    realtime: bool,
    seed: u8,
    queue: Vec<(u64, u64, Delivery)>,
    seq: u64,
    conns: BTreeMap<u64, SessionId>,
    /// Per socket: the time of its last scheduled frame (a socket delivers in order).
    ws_clock: BTreeMap<u64, u64>,
    wake: Option<u64>,
    /// MessageSent: (incarnation, send id) → server message id.
    pub confirmed: Vec<((u32, u64), String)>,
    pub failed: Vec<String>,
    /// Message ids delivered per incarnation, in delivery order.
    pub delivered: BTreeMap<u32, Vec<String>>,
    /// Record sends/deliveries (off in the soak, where only the client's memory is measured).
    pub record: bool,
}

impl Host {
    /// A registered MoltChats agent that joined the sandbox's seed server.
    pub fn chats(sandbox: &Sandbox, name: &str, seed: u8, now: u64) -> Self {
        let client = ChatsClient::new(ChatsConfig { api_base: Some(API.into()), credentials: None, seed: [seed; 32], refresh: Default::default() }).unwrap();
        let mut h = Host {
            client,
            incarnation: 0,
            disk: None,
            subscribe: vec![],
            realtime: false,
            seed,
            queue: vec![],
            seq: 0,
            conns: BTreeMap::new(),
            ws_clock: BTreeMap::new(),
            wake: None,
            confirmed: vec![],
            failed: vec![],
            delivered: BTreeMap::new(),
            record: true,
        };
        h.client.register(name, now).unwrap();
        let (mut rng, mut stats) = (Rng::new(0), FaultStats::default());
        h.step(sandbox, &mut rng, &Faults::none(), &mut stats, now);
        h.client.command(ChatsCommand::ServerJoin { server_id: SEED_SERVER_ID.into() }, now).unwrap();
        h.step(sandbox, &mut rng, &Faults::none(), &mut stats, now);
        assert!(h.client.is_authenticated(now));
        h
    }

    pub fn start_realtime(&mut self, now: u64) {
        self.realtime = true;
        self.client.connect(now).unwrap();
        if !self.subscribe.is_empty() {
            self.client.subscribe(&self.subscribe, now).unwrap();
        }
    }

    /// A persist is written to disk but not yet acknowledged to the client (a kill now is the
    /// classic crash-during-rotation case).
    pub fn has_unacked_persist(&self) -> bool {
        self.queue.iter().any(|(_, _, d)| matches!(d, Delivery::Persisted { .. }))
    }

    /// The process dies: sockets drop, deliveries in flight are lost, unacknowledged persists
    /// stay written. A new process starts from the disk alone.
    pub fn kill_and_restart(&mut self, sandbox: &Sandbox, now: u64) {
        for sid in std::mem::take(&mut self.conns).into_values() {
            server(|| sandbox.ws_closed(sid));
        }
        self.queue.clear();
        self.ws_clock.clear();
        self.incarnation += 1;
        self.client = ChatsClient::new(ChatsConfig {
            api_base: Some(API.into()),
            credentials: self.disk.clone(),
            seed: [self.seed.wrapping_add(self.incarnation as u8); 32],
            refresh: Default::default(),
        })
        .expect("the persisted credentials load");
        self.client.login(now).unwrap();
        self.wake = None;
        if self.realtime {
            self.start_realtime(now);
        }
    }

    fn schedule(&mut self, rng: &mut Rng, faults: &Faults, stats: &mut FaultStats, now: u64, d: Delivery) {
        let mut delay = rng.below(faults.max_delay_ms + 1);
        if faults.max_delay_ms > 0 && rng.chance(0.05) {
            delay *= 40;
        }
        if delay > 0 {
            stats.delayed += 1;
        }
        let at = match &d {
            // A socket is ordered: its frames and its close never overtake each other.
            Delivery::WsFrame { conn, .. } | Delivery::WsClosed { conn, .. } => {
                let at = (now + delay).max(self.ws_clock.get(conn).copied().unwrap_or(0));
                self.ws_clock.insert(*conn, at);
                at
            }
            _ => now + delay,
        };
        self.seq += 1;
        // Sockets are ordered lanes (insertion order); HTTP responses may overtake each other.
        let lane = matches!(d, Delivery::WsOpened { .. } | Delivery::WsFrame { .. } | Delivery::WsClosed { .. });
        let seq = if faults.reorder && !lane { rng.next() >> 1 } else { self.seq };
        self.queue.push((at, seq, d));
    }

    /// Run everything due at `now` to quiescence.
    pub fn step(&mut self, sandbox: &Sandbox, rng: &mut Rng, faults: &Faults, stats: &mut FaultStats, now: u64) {
        if self.wake.is_some_and(|w| w <= now) {
            self.wake = None;
            self.client.handle_timeout(now);
        }
        if !self.conns.is_empty() && rng.chance(faults.ws_kill) {
            stats.ws_kills += 1;
            let (&conn, &sid) = self.conns.iter().next().unwrap();
            if rng.chance(0.5) {
                // The server drops it (it sends a close frame after what it queued).
                server(|| sandbox.ws_close(sid, 1011, "fault: server restart"));
            } else {
                // The connection dies under the host: frames in flight are lost.
                server(|| sandbox.ws_closed(sid));
                self.conns.remove(&conn);
                self.queue.retain(|(_, _, d)| !matches!(d, Delivery::WsFrame { conn: c, .. } if *c == conn));
                self.schedule(rng, faults, stats, now, Delivery::WsClosed { conn, code: 1006 });
            }
        }
        for _ in 0..100_000 {
            let mut progressed = self.deliver_due(now);
            progressed |= self.pull_frames(sandbox, rng, faults, stats, now);
            progressed |= self.drain(sandbox, rng, faults, stats, now);
            if !progressed {
                return;
            }
        }
        panic!("no quiescence after 100 000 rounds: livelock");
    }

    fn deliver_due(&mut self, now: u64) -> bool {
        let mut due: Vec<(u64, u64, Delivery)> = vec![];
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i].0 <= now { due.push(self.queue.swap_remove(i)) } else { i += 1 }
        }
        due.sort_by_key(|(at, seq, _)| (*at, *seq));
        let any = !due.is_empty();
        for (_, _, d) in due {
            match d {
                // Errors for late/duplicate/unknown ids are expected here: the client refuses them.
                Delivery::Http { id, result: Ok(r) } => drop(self.client.handle_response(id, r, now)),
                Delivery::Http { id, result: Err(e) } => drop(self.client.handle_transport_error(id, &e, now)),
                Delivery::Persisted { ticket } => drop(SansIo::handle_persisted(&mut self.client, ticket, now)),
                Delivery::WsOpened { conn } => self.client.handle_ws_open(conn, now),
                Delivery::WsFrame { conn, text } => self.client.handle_ws_frame(conn, &text, now),
                Delivery::WsClosed { conn, code } => {
                    self.ws_clock.remove(&conn);
                    self.client.handle_ws_closed(conn, code, "fault", now)
                }
            }
        }
        any
    }

    fn pull_frames(&mut self, sandbox: &Sandbox, rng: &mut Rng, faults: &Faults, stats: &mut FaultStats, now: u64) -> bool {
        server(|| sandbox.ws_tick(now));
        let mut any = false;
        for (conn, sid) in self.conns.clone() {
            for out in server(|| sandbox.ws_drain(sid)) {
                any = true;
                match out {
                    WsOut::Text(text) => {
                        let dup = text.contains("\"message\"") && rng.chance(faults.duplicate_frame);
                        if dup {
                            stats.duplicated_frames += 1;
                            self.schedule(rng, faults, stats, now, Delivery::WsFrame { conn, text: text.clone() });
                        }
                        self.schedule(rng, faults, stats, now, Delivery::WsFrame { conn, text });
                    }
                    WsOut::Close(code, _) => {
                        server(|| sandbox.ws_closed(sid));
                        self.conns.remove(&conn);
                        self.schedule(rng, faults, stats, now, Delivery::WsClosed { conn, code });
                        break;
                    }
                }
            }
        }
        any
    }

    fn drain(&mut self, sandbox: &Sandbox, rng: &mut Rng, faults: &Faults, stats: &mut FaultStats, now: u64) -> bool {
        let mut any = false;
        loop {
            let output = self.client.poll_output();
            if !matches!(output, Output::Wait { .. }) {
                any = true;
            }
            match output {
                Output::Http { id, request, .. } => {
                    stats.requests += 1;
                    if rng.chance(faults.drop_request) {
                        stats.dropped_requests += 1;
                        self.schedule(rng, faults, stats, now, Delivery::Http { id, result: Err("fault: connection refused".into()) });
                        continue;
                    }
                    let path = request.uri().path().to_owned();
                    let response = server(|| sandbox.handle(request, now));
                    if response.status() == 429 && std::env::var_os("FAULT_TRACE").is_some() {
                        eprintln!("[{}#{}] 429 on {path} at {now}", self.seed, self.incarnation);
                    }
                    if rng.chance(faults.drop_response) {
                        stats.dropped_responses += 1;
                        self.schedule(rng, faults, stats, now, Delivery::Http { id, result: Err("fault: timed out".into()) });
                        continue;
                    }
                    if rng.chance(faults.duplicate) {
                        stats.duplicated_responses += 1;
                        self.schedule(rng, faults, stats, now, Delivery::Http { id, result: Ok(copy(&response)) });
                    }
                    self.schedule(rng, faults, stats, now, Delivery::Http { id, result: Ok(response) });
                }
                Output::Persist { ticket, bytes } => {
                    self.disk = Some(bytes.expose().clone());
                    self.schedule(rng, faults, stats, now, Delivery::Persisted { ticket });
                }
                Output::Event(e) => self.record(e),
                Output::WsOpen { conn, url } => {
                    let token = url.expose().split("token=").nth(1).map(|t| t.split('&').next().unwrap_or("").to_owned());
                    assert!(token.as_deref().is_some_and(|t| !t.is_empty()), "never connect without a token");
                    if rng.chance(faults.ws_refuse) {
                        stats.ws_refused += 1;
                        self.schedule(rng, faults, stats, now, Delivery::WsClosed { conn, code: 1006 });
                        continue;
                    }
                    let sid = server(|| sandbox.ws_open(token.as_deref(), now));
                    self.conns.insert(conn, sid);
                    // Opened before any frame of this socket (same ordered lane).
                    self.schedule(rng, faults, stats, now, Delivery::WsOpened { conn });
                    self.ws_clock.insert(conn, self.queue.last().unwrap().0);
                }
                Output::WsSend { conn, text } => {
                    if std::env::var_os("FAULT_TRACE").is_some() && text.contains("\"message\"") {
                        eprintln!("[{}#{}] ws send at {now}", self.seed, self.incarnation);
                    }
                    if let Some(sid) = self.conns.get(&conn) {
                        server(|| sandbox.ws_receive(*sid, &text, now));
                    }
                }
                Output::WsClose { conn, .. } => {
                    if let Some(sid) = self.conns.remove(&conn) {
                        server(|| sandbox.ws_closed(sid));
                    }
                    self.ws_clock.remove(&conn);
                    self.queue.retain(|(_, _, d)| !matches!(d, Delivery::WsFrame { conn: c, .. } | Delivery::WsOpened { conn: c } | Delivery::WsClosed { conn: c, .. } if *c == conn));
                }
                Output::Wait { until_ms } => {
                    self.wake = until_ms;
                    return any;
                }
            }
        }
    }

    fn record(&mut self, e: ChatsEvent) {
        if !self.record {
            return;
        }
        if std::env::var_os("FAULT_TRACE").is_some() {
            eprintln!("[{}#{}] {e:?}", self.seed, self.incarnation);
        }
        if let ChatsEvent::Realtime(r) = e {
            match r {
                RealtimeEvent::MessageSent { send_id, id, .. } => self.confirmed.push(((self.incarnation, send_id), id)),
                RealtimeEvent::SendFailed { send_id, code, message, .. } => self.failed.push(format!("#{send_id}: {code} {message}")),
                RealtimeEvent::Message { message, .. } => {
                    if let Some(id) = message.id.into_option() {
                        self.delivered.entry(self.incarnation).or_default().push(id);
                    }
                }
                _ => {}
            }
        }
    }
}
