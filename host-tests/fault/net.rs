//! The faulty network and the killable host around one client, generic over the driving
//! interface ([`SansIo`]): a client plugs in through [`Client`] (how a process of it starts
//! from its disk, what its events tell the invariants), the far side through [`Remote`]
//! (HTTP and WebSocket servers). MoltChats (the sandbox, [`Host::chats`]) is defined here; the
//! other surfaces' clients and servers live next to their runs.

use moltlink::chats::{ChatsCommand, ChatsEvent, RealtimeEvent};
use moltlink::io::{Output, SansIo};
use moltlink::{ChatsClient, ChatsConfig};
pub use moltlink_sandbox::moltchats::gateway::WsOut;
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

/// The virtual clock of a run: random steps of up to 1.5 s; after `end` the network heals
/// (`faults` becomes none) and the run settles for `settle_steps` more steps.
pub struct Schedule {
    end: u64,
    settled: u32,
    settle_steps: u32,
}

impl Schedule {
    pub fn new(now: u64, minutes: u64, settle_steps: u32) -> Self {
        Self { end: now + minutes * 60_000, settled: 0, settle_steps }
    }

    /// Advance `now`; `None` when the run is over, else whether the network has healed.
    pub fn step(&mut self, now: &mut u64, rng: &mut Rng, faults: &mut Faults) -> Option<bool> {
        *now += rng.below(1_500);
        let healed = *now >= self.end;
        if healed {
            *faults = Faults::none();
            self.settled += 1;
            if self.settled > self.settle_steps {
                return None;
            }
        }
        Some(healed)
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
    /// The answer is a 502/503 instead: half the time from a proxy before the server saw the
    /// request, half the time after the server handled it.
    pub server_error: f64,
}

impl Faults {
    pub fn none() -> Self {
        Self { drop_request: 0.0, drop_response: 0.0, duplicate: 0.0, max_delay_ms: 0, reorder: false, duplicate_frame: 0.0, ws_kill: 0.0, ws_refuse: 0.0, kill_host: 0.0, server_error: 0.0 }
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
            server_error: 0.0,
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
    pub server_errors: u64,
    /// Restarts of a server (the OpenClaw gateway), injected by a run.
    pub server_restarts: u64,
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
        self.server_errors += o.server_errors;
        self.server_restarts += o.server_restarts;
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
        )?;
        if self.server_errors > 0 {
            write!(f, ", {} 5xx answers", self.server_errors)?;
        }
        if self.server_restarts > 0 {
            write!(f, ", {} server restarts", self.server_restarts)?;
        }
        Ok(())
    }
}


/// The far side of the network: the HTTP servers and the WebSocket servers a client talks to.
/// `&self`, like the sandbox: servers keep their state behind a lock or a cell.
pub trait Remote {
    /// Handle one request that reached the server.
    fn http(&self, request: http::Request<Vec<u8>>, now: u64) -> http::Response<Vec<u8>>;
    /// Every request the network carried (dropped ones too), before any fault: for checks on
    /// what left the host.
    fn saw(&self, _request: &http::Request<Vec<u8>>) {}
    /// A socket to `url` opens: the server's session id, or None when the server refuses it.
    fn ws_open(&self, url: &str, now: u64) -> Option<u64>;
    /// A text frame from the client.
    fn ws_receive(&self, sid: u64, text: &str, now: u64);
    /// Time passes on the servers.
    fn ws_tick(&self, now: u64);
    /// What the server queued for the client on `sid` (a close ends it).
    fn ws_drain(&self, sid: u64) -> Vec<WsOut>;
    /// The client side of `sid` is gone.
    fn ws_closed(&self, sid: u64);
    /// The server drops `sid` (fault): it closes after what it queued.
    fn ws_close(&self, sid: u64, code: u16, reason: &str);
    /// Whether a socket fault on `sid` may also kill it under the host, losing the frames in
    /// flight (else only the server closes it, after what it sent).
    fn lossy(&self, _sid: u64) -> bool {
        true
    }
}

/// The sandbox as MoltChats (and Moltspaces, HTTP only) server.
impl Remote for Sandbox {
    fn http(&self, request: http::Request<Vec<u8>>, now: u64) -> http::Response<Vec<u8>> {
        self.handle(request, now)
    }
    fn ws_open(&self, url: &str, now: u64) -> Option<u64> {
        let token = url.split("token=").nth(1).map(|t| t.split('&').next().unwrap_or("").to_owned());
        assert!(token.as_deref().is_some_and(|t| !t.is_empty()), "never connect without a token");
        Some(Sandbox::ws_open(self, token.as_deref(), now))
    }
    fn ws_receive(&self, sid: u64, text: &str, now: u64) {
        Sandbox::ws_receive(self, sid, text, now)
    }
    fn ws_tick(&self, now: u64) {
        Sandbox::ws_tick(self, now)
    }
    fn ws_drain(&self, sid: u64) -> Vec<WsOut> {
        Sandbox::ws_drain(self, sid)
    }
    fn ws_closed(&self, sid: u64) {
        Sandbox::ws_closed(self, sid)
    }
    fn ws_close(&self, sid: u64, code: u16, reason: &str) {
        Sandbox::ws_close(self, sid, code, reason)
    }
}

/// A client the harness can run as a killable process.
pub trait Client: SansIo + Sized {
    /// What a process of it is started with (kept for restarts).
    type Setup;
    /// What the invariants need from its events.
    type Log: Default;
    /// A new process at `now` from what is on disk (the last persist written, acknowledged
    /// or not), doing what the host does at start.
    fn boot(setup: &Self::Setup, disk: Option<&[u8]>, incarnation: u32, now: u64) -> Self;
    /// One event of incarnation `incarnation`.
    fn record(log: &mut Self::Log, incarnation: u32, event: Self::Event);
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

fn server_error(status: u16) -> http::Response<Vec<u8>> {
    let mut r = http::Response::new(format!("<html><body>{status} fault: bad gateway</body></html>").into_bytes());
    *r.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
    r
}

pub fn trace() -> bool {
    std::env::var_os("FAULT_TRACE").is_some()
}

/// A host process: one client, its disk, its sockets and the deliveries in flight to it.
pub struct Host<C: Client = ChatsClient> {
    pub client: C,
    pub setup: C::Setup,
    pub incarnation: u32,
    pub disk: Option<Vec<u8>>,
    pub log: C::Log,
    queue: Vec<(u64, u64, Delivery)>,
    seq: u64,
    /// conn → the server's session id.
    conns: BTreeMap<u64, u64>,
    /// Per socket: the time of its last scheduled frame (a socket delivers in order).
    ws_clock: BTreeMap<u64, u64>,
    wake: Option<u64>,
    /// Record events (off in the soak, where only the client's memory is measured).
    pub record: bool,
}

impl<C: Client> Host<C> {
    /// A host around a client already set up (registered, logged in…).
    pub fn new(client: C, setup: C::Setup, disk: Option<Vec<u8>>) -> Self {
        Host {
            client,
            setup,
            incarnation: 0,
            disk,
            log: C::Log::default(),
            queue: vec![],
            seq: 0,
            conns: BTreeMap::new(),
            ws_clock: BTreeMap::new(),
            wake: None,
            record: true,
        }
    }

    /// A persist is written to disk but not yet acknowledged to the client (a kill now is the
    /// classic crash-during-rotation case).
    pub fn has_unacked_persist(&self) -> bool {
        self.queue.iter().any(|(_, _, d)| matches!(d, Delivery::Persisted { .. }))
    }

    /// The process dies: sockets drop, deliveries in flight are lost, unacknowledged persists
    /// stay written. A new process starts from the disk alone.
    pub fn kill_and_restart(&mut self, remote: &impl Remote, now: u64) {
        for sid in std::mem::take(&mut self.conns).into_values() {
            server(|| remote.ws_closed(sid));
        }
        self.queue.clear();
        self.ws_clock.clear();
        self.incarnation += 1;
        self.wake = None;
        self.client = C::boot(&self.setup, self.disk.as_deref(), self.incarnation, now);
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
    pub fn step(&mut self, remote: &impl Remote, rng: &mut Rng, faults: &Faults, stats: &mut FaultStats, now: u64) {
        if self.wake.is_some_and(|w| w <= now) {
            self.wake = None;
            self.client.handle_timeout(now);
        }
        if !self.conns.is_empty() && rng.chance(faults.ws_kill) {
            stats.ws_kills += 1;
            // One socket draws no number, so single-socket runs replay as before.
            let pick = if self.conns.len() > 1 { rng.below(self.conns.len() as u64) as usize } else { 0 };
            let (&conn, &sid) = self.conns.iter().nth(pick).unwrap();
            if rng.chance(0.5) || !remote.lossy(sid) {
                // The server drops it (it sends a close frame after what it queued).
                server(|| remote.ws_close(sid, 1011, "fault: server restart"));
            } else {
                // The connection dies under the host: frames in flight are lost.
                server(|| remote.ws_closed(sid));
                self.conns.remove(&conn);
                self.queue.retain(|(_, _, d)| !matches!(d, Delivery::WsFrame { conn: c, .. } if *c == conn));
                self.schedule(rng, faults, stats, now, Delivery::WsClosed { conn, code: 1006 });
            }
        }
        for _ in 0..100_000 {
            let mut progressed = self.deliver_due(now);
            progressed |= self.pull_frames(remote, rng, faults, stats, now);
            progressed |= self.drain(remote, rng, faults, stats, now);
            if !progressed {
                // The soak measures memory: a burst's capacity is given back, not kept forever.
                if self.queue.is_empty() {
                    self.queue.shrink_to(8);
                }
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
                Delivery::Persisted { ticket } => drop(self.client.handle_persisted(ticket, now)),
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

    fn pull_frames(&mut self, remote: &impl Remote, rng: &mut Rng, faults: &Faults, stats: &mut FaultStats, now: u64) -> bool {
        server(|| remote.ws_tick(now));
        let mut any = false;
        for (conn, sid) in self.conns.clone() {
            for out in server(|| remote.ws_drain(sid)) {
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
                        server(|| remote.ws_closed(sid));
                        self.conns.remove(&conn);
                        self.schedule(rng, faults, stats, now, Delivery::WsClosed { conn, code });
                        break;
                    }
                }
            }
        }
        any
    }

    fn drain(&mut self, remote: &impl Remote, rng: &mut Rng, faults: &Faults, stats: &mut FaultStats, now: u64) -> bool {
        let mut any = false;
        loop {
            let output = self.client.poll_output();
            if !matches!(output, Output::Wait { .. }) {
                any = true;
            }
            match output {
                Output::Http { id, request, .. } => {
                    stats.requests += 1;
                    remote.saw(&request);
                    if rng.chance(faults.drop_request) {
                        stats.dropped_requests += 1;
                        self.schedule(rng, faults, stats, now, Delivery::Http { id, result: Err("fault: connection refused".into()) });
                        continue;
                    }
                    // Drawn only when enabled, so runs without it replay as before.
                    let error = faults.server_error > 0.0 && rng.chance(faults.server_error);
                    if error && rng.chance(0.5) {
                        stats.server_errors += 1;
                        self.schedule(rng, faults, stats, now, Delivery::Http { id, result: Ok(server_error(502)) });
                        continue;
                    }
                    let path = request.uri().path().to_owned();
                    let mut response = server(|| remote.http(*request, now));
                    if error {
                        stats.server_errors += 1;
                        response = server_error(503);
                    }
                    if response.status() == 429 && trace() {
                        eprintln!("[#{}] 429 on {path} at {now}", self.incarnation);
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
                    if trace() {
                        eprintln!("[#{}] persist #{ticket} at {now} ({} bytes)", self.incarnation, bytes.expose().len());
                    }
                    self.disk = Some(bytes.expose().clone());
                    self.schedule(rng, faults, stats, now, Delivery::Persisted { ticket });
                }
                Output::Event(e) => {
                    if self.record {
                        if trace() {
                            eprintln!("[#{}] {e:?}", self.incarnation);
                        }
                        C::record(&mut self.log, self.incarnation, e);
                    }
                }
                Output::WsOpen { conn, url } => {
                    if rng.chance(faults.ws_refuse) {
                        stats.ws_refused += 1;
                        self.schedule(rng, faults, stats, now, Delivery::WsClosed { conn, code: 1006 });
                        continue;
                    }
                    let Some(sid) = server(|| remote.ws_open(url.expose(), now)) else {
                        self.schedule(rng, faults, stats, now, Delivery::WsClosed { conn, code: 1006 });
                        continue;
                    };
                    self.conns.insert(conn, sid);
                    // Opened before any frame of this socket (same ordered lane).
                    self.schedule(rng, faults, stats, now, Delivery::WsOpened { conn });
                    self.ws_clock.insert(conn, self.queue.last().unwrap().0);
                }
                Output::WsSend { conn, text } => {
                    if let Some(sid) = self.conns.get(&conn) {
                        server(|| remote.ws_receive(*sid, &text, now));
                    }
                }
                Output::WsClose { conn, .. } => {
                    if let Some(sid) = self.conns.remove(&conn) {
                        server(|| remote.ws_closed(sid));
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
}

// ---- MoltChats ----------------------------------------------------------------------------

pub const API: &str = "http://127.0.0.1/moltchats/api/v1";

/// How a MoltChats host process starts.
pub struct ChatsSetup {
    pub seed: u8,
    /// Open the realtime socket at start.
    pub realtime: bool,
    pub subscribe: Vec<String>,
}

/// What a MoltChats run checks.
#[derive(Default)]
pub struct ChatsLog {
    /// MessageSent: (incarnation, send id) → server message id.
    pub confirmed: Vec<((u32, u64), String)>,
    pub failed: Vec<String>,
    /// Message ids delivered per incarnation, in delivery order.
    pub delivered: BTreeMap<u32, Vec<String>>,
}

impl Client for ChatsClient {
    type Setup = ChatsSetup;
    type Log = ChatsLog;

    fn boot(setup: &ChatsSetup, disk: Option<&[u8]>, incarnation: u32, now: u64) -> Self {
        let mut client = ChatsClient::new(ChatsConfig {
            api_base: Some(API.into()),
            credentials: disk.map(<[u8]>::to_vec),
            seed: [setup.seed.wrapping_add(incarnation as u8); 32],
            refresh: Default::default(),
        })
        .expect("the persisted credentials load");
        client.login(now).unwrap();
        if setup.realtime {
            client.connect(now).unwrap();
            if !setup.subscribe.is_empty() {
                client.subscribe(&setup.subscribe, now).unwrap();
            }
        }
        client
    }

    fn record(log: &mut ChatsLog, incarnation: u32, e: ChatsEvent) {
        if let ChatsEvent::Realtime(r) = e {
            match r {
                RealtimeEvent::MessageSent { send_id, id, .. } => log.confirmed.push(((incarnation, send_id), id)),
                RealtimeEvent::SendFailed { send_id, code, message, .. } => log.failed.push(format!("#{send_id}: {code} {message}")),
                RealtimeEvent::Message { message, .. } => {
                    if let Some(id) = message.id.into_option() {
                        log.delivered.entry(incarnation).or_default().push(id);
                    }
                }
                _ => {}
            }
        }
    }
}

impl Host<ChatsClient> {
    /// A registered MoltChats agent that joined the sandbox's seed server.
    pub fn chats(sandbox: &Sandbox, name: &str, seed: u8, now: u64) -> Self {
        let client = ChatsClient::new(ChatsConfig { api_base: Some(API.into()), credentials: None, seed: [seed; 32], refresh: Default::default() }).unwrap();
        let mut h = Host::new(client, ChatsSetup { seed, realtime: false, subscribe: vec![] }, None);
        h.client.register(name, now).unwrap();
        let (mut rng, mut stats) = (Rng::new(0), FaultStats::default());
        h.step(sandbox, &mut rng, &Faults::none(), &mut stats, now);
        h.client.command(ChatsCommand::ServerJoin { server_id: SEED_SERVER_ID.into() }, now).unwrap();
        h.step(sandbox, &mut rng, &Faults::none(), &mut stats, now);
        assert!(h.client.is_authenticated(now));
        h
    }

    /// Open the realtime socket (and subscribe to `setup.subscribe`), now and after restarts.
    pub fn start_realtime(&mut self, now: u64) {
        self.setup.realtime = true;
        self.client.connect(now).unwrap();
        if !self.setup.subscribe.is_empty() {
            self.client.subscribe(&self.setup.subscribe, now).unwrap();
        }
    }
}
