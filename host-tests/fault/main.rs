//! Fault injection: whole sessions of the sans-IO clients against in-process servers on a
//! virtual clock, with a seeded "network" that drops, delays, duplicates and reorders HTTP
//! responses (and answers 5xx), delays/duplicates WebSocket frames, kills sockets, and kills the
//! host at random points (restarting from the persisted bytes only, including persists written
//! but never acknowledged). Three surfaces, one summary line each:
//! - MoltChats (this file): auth + rotation, REST, realtime send/receive, exactly once.
//! - Moltspaces (`spaces.rs`): join, token renewal, drops, restarts: one room and one join
//!   ticket per join, the key only in its header over TLS/loopback, everyone back in a room.
//! - The bridge (`bridge.rs`) with a fake OpenClaw gateway: gateway restarts, socket drops,
//!   connector kills: every message another agent posted answered exactly once.
//!
//! `cargo test --release -p moltlink --test fault_injection` runs a few seeds of each (CI);
//! `FAULT_RUNS=500 FAULT_SEED=1 cargo test --release -p moltlink --test fault_injection -- --nocapture`
//! runs many and prints the faults survived (`FAULT_MINUTES` sets the virtual time,
//! `FAULT_TRACE=1` prints every event). Switches `FAULT_KILL_MID_TURN=1` and
//! `FAULT_LOSSY_GATEWAY=1` add those faults to the default bridge run.
//!
//! The harness (`net.rs`) is generic over [`moltlink::io::SansIo`]: a client plugs in by
//! implementing `net::Client` (how a process boots from its disk, what its events log), its
//! servers by implementing `net::Remote`, and the run states its own invariants.

mod bridge;
mod net;
mod spaces;

use moltlink_sandbox::moltchats::social::SEED_CHANNEL_ID;
use moltlink_sandbox::{Sandbox, SandboxConfig};
use net::{FaultStats, Faults, Host, Rng, T0};
use std::collections::{BTreeMap, BTreeSet};

const SEC: u64 = 1_000;
const MINUTE: u64 = 60 * SEC;

/// What one run observed, for the invariants.
struct Run {
    sandbox: Sandbox,
    rng: Rng,
    now: u64,
    faults: Faults,
    stats: FaultStats,
}

/// One seeded run: sender A and receiver B, both faulted, ~`minutes` of virtual time.
fn run(seed: u64, minutes: u64) -> FaultStats {
    let config = SandboxConfig { access_token_lifetime_s: 600, seed, ..Default::default() };
    let mut r = Run { sandbox: Sandbox::new(config), rng: Rng::new(seed), now: T0, faults: Faults::chaos(), stats: FaultStats::default() };
    // The sender posts about 12 messages a minute over the socket: the limit of a seed-tier
    // agent's socket (an untrusted one may send 3, capture 16), so faults, not the tier, are tested.
    r.sandbox.with_state(|s| s.moltchats.social.faults.ws_messages_per_minute = Some(30));
    let channel = SEED_CHANNEL_ID.to_owned();
    let mut a = Host::chats(&r.sandbox, "sender", 1 + (seed as u8 % 100), r.now);
    let mut b = Host::chats(&r.sandbox, "receiver", 101 + (seed as u8 % 100), r.now);
    b.setup.subscribe = vec![channel.clone()];
    b.start_realtime(r.now);
    a.start_realtime(r.now);
    let mut next_message = 0u64;
    // (incarnation, send_id) → content, for every send A made.
    let mut sends: BTreeMap<(u32, u64), String> = BTreeMap::new();
    let end = r.now + minutes * MINUTE;
    while r.now < end {
        r.now += r.rng.below(1_500);
        // Workload: A sends about 12 messages a minute (under the 30/min channel limit), and
        // makes a REST call now and then; both exercise auth under rotation.
        if r.rng.chance(0.3) {
            let content = format!("m-{seed}-{next_message}");
            next_message += 1;
            if let Ok(id) = a.client.send_message(&channel, &content, None, r.now) {
                if std::env::var_os("FAULT_TRACE").is_some() {
                    eprintln!("[A#{}] send #{id} {content} at {}", a.incarnation, r.now);
                }
                sends.insert((a.incarnation, id), content);
            }
        }
        if r.rng.chance(0.02) {
            let _ = a.client.whoami(r.now);
        }
        for host in [&mut a, &mut b] {
            host.step(&r.sandbox, &mut r.rng, &r.faults, &mut r.stats, r.now);
            let unacked = host.has_unacked_persist();
            if r.rng.chance(r.faults.kill_host) || (unacked && r.rng.chance(r.faults.kill_host * 100.0)) {
                if unacked {
                    r.stats.unacked_persists_at_kill += 1;
                }
                host.kill_and_restart(&r.sandbox, r.now);
                r.stats.host_kills += 1;
            }
        }
    }
    // Settle: the network heals; everything outstanding must complete.
    r.faults = Faults::none();
    for _ in 0..600 {
        r.now += SEC;
        for host in [&mut a, &mut b] {
            host.step(&r.sandbox, &mut r.rng, &r.faults, &mut r.stats, r.now);
        }
    }
    check(&r, &a, &b, &sends, &channel, seed);
    r.stats
}

fn check(r: &Run, a: &Host, b: &Host, sends: &BTreeMap<(u32, u64), String>, channel: &str, seed: u64) {
    let ctx = format!("seed {seed}");
    assert!(a.client.is_authenticated(r.now) && b.client.is_authenticated(r.now), "{ctx}: not logged in after settling");
    let stats = r.sandbox.stats();
    assert_eq!(stats.refresh_reuse_rejections, 0, "{ctx}: a spent refresh token was replayed");
    let (rows, rate_limited) = r.sandbox.with_state(|s| (s.moltchats.social.messages.get(channel).cloned().unwrap_or_default(), s.moltchats.social.rate_limited));
    // The limiter's memory dies with the process: a restart inside a fixed window may send
    // what the previous process already used, costing one server rejection (requeued, never
    // lost). Without a restart of the sender, the server never refuses for rate.
    assert!(rate_limited <= a.incarnation as u64, "{ctx}: the server answered 429 {rate_limited} times ({} sender restarts)", a.incarnation);
    let rows: Vec<_> = rows.into_iter().filter(|m| m.content.starts_with(&format!("m-{seed}-"))).collect();

    // Sent exactly once: never duplicated; confirmed ones stored; the last incarnation's all confirmed.
    let mut stored: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &rows {
        *stored.entry(m.content.as_str()).or_default() += 1;
    }
    for (content, n) in &stored {
        assert_eq!(*n, 1, "{ctx}: {content} stored {n} times");
    }
    let confirmed: BTreeMap<(u32, u64), String> = a.log.confirmed.iter().map(|(k, v)| (*k, v.clone())).collect();
    for (key, content) in sends {
        let on_server = rows.iter().find(|m| &m.content == content);
        if let Some(id) = confirmed.get(key) {
            assert_eq!(on_server.map(|m| m.id.as_str()), Some(id.as_str()), "{ctx}: confirmed {content} not stored under its id");
        } else if key.0 == a.incarnation {
            panic!("{ctx}: send {content} of the live client never confirmed (failed: {:?})", a.log.failed);
        }
    }
    assert!(a.log.failed.is_empty(), "{ctx}: sends failed: {:?}", a.log.failed);

    // Received exactly once and in order: each incarnation of B delivered a contiguous run
    // of the server's order with no duplicate; the live one is caught up.
    let position: BTreeMap<&str, usize> = rows.iter().enumerate().map(|(i, m)| (m.id.as_str(), i)).collect();
    for (incarnation, ids) in &b.log.delivered {
        let mut seen = BTreeSet::new();
        let mut last: Option<usize> = None;
        for id in ids {
            assert!(seen.insert(id), "{ctx}: B#{incarnation} delivered {id} twice");
            let Some(&p) = position.get(id.as_str()) else { continue };
            if let Some(l) = last {
                assert_eq!(p, l + 1, "{ctx}: B#{incarnation} delivered out of order or with a gap ({l} then {p})");
            }
            last = Some(p);
        }
        if *incarnation == b.incarnation
            && let Some(l) = last
        {
            assert_eq!(l + 1, rows.len(), "{ctx}: the live receiver is not caught up");
        }
    }
}

#[test]
fn seeded_fault_runs_lose_nothing() {
    let runs: u64 = std::env::var("FAULT_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let first: u64 = std::env::var("FAULT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let minutes: u64 = std::env::var("FAULT_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let mut total = FaultStats::default();
    for seed in first..first + runs {
        let s = run(seed, minutes);
        total.add(&s);
    }
    println!("fault injection: {runs} runs x {minutes} virtual min, seeds {first}..{}: {total}", first + runs - 1);
    assert!(total.host_kills > 0 && total.dropped_responses > 0 && total.ws_kills > 0, "faults were injected: {total}");
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Moltspaces: joins, renewals, drops and restarts under dropped/duplicated/delayed/5xx answers
/// (see spaces.rs for the invariants).
#[test]
fn seeded_spaces_runs_keep_one_room_per_join() {
    let (runs, first, minutes) = (env("FAULT_RUNS", 4), env("FAULT_SEED", 1), env("FAULT_MINUTES", 30));
    let mut total = FaultStats::default();
    let mut t = spaces::SpacesTotals::default();
    for seed in first..first + runs {
        total.add(&spaces::run(seed, minutes, &mut t));
    }
    println!(
        "fault injection (moltspaces): {runs} runs x {minutes} virtual min, seeds {first}..{}: {} joins, {} host re-joins after a failed join, \
         {} token renewals, {} retried steps, {} requests checked for the key; {total}",
        first + runs - 1, t.joins, t.host_rejoins, t.renewals, t.retries, t.requests_checked
    );
    assert!(total.host_kills > 0 && total.dropped_responses > 0 && total.server_errors > 0 && t.renewals > 0, "faults were injected: {total}");
}

/// The bridge over runs; failing seeds are collected so one run names them all.
fn bridge_runs(strict: bridge::Strict) {
    let (runs, first, minutes) = (env("FAULT_RUNS", 3), env("FAULT_SEED", 1), env("FAULT_MINUTES", 20));
    let mut total = FaultStats::default();
    let mut t = bridge::BridgeTotals::default();
    let mut failed = vec![];
    for seed in first..first + runs {
        let (s, outcome) = bridge::run(seed, minutes, strict, &mut t);
        total.add(&s);
        if let Err(e) = outcome {
            failed.push(e);
        }
    }
    let what = match (strict.kill_mid_turn, strict.lossy_gateway) {
        (false, false) => "bridge",
        (true, false) => "bridge, kills mid-turn",
        (false, true) => "bridge, gateway frames lost",
        (true, true) => "bridge, kills mid-turn, gateway frames lost",
    };
    println!(
        "fault injection ({what}): {runs} runs x {minutes} virtual min, seeds {first}..{}: {} messages, {} replies, {} turns failed and reported, \
         {} gateway resends, {} kills mid-turn, {} answers repeated after one, {} runs failed; {total}",
        first + runs - 1, t.messages, t.replies, t.reported, t.gateway_resends, t.kills_mid_turn, t.repeated, failed.len()
    );
    assert!(failed.is_empty(), "{} of {runs} runs lost or doubled turns:\n{}", failed.len(), failed.join("\n"));
    assert!(total.host_kills > 0 && total.server_restarts > 0 && total.ws_kills > 0, "faults were injected: {total}");
}

/// The bridge under gateway restarts, MoltChats socket drops, gateway sockets closed by the
/// gateway, and connector kills between turns: every message answered once.
/// `FAULT_KILL_MID_TURN=1` / `FAULT_LOSSY_GATEWAY=1` turn on the cases below.
#[test]
fn seeded_bridge_runs_answer_every_message_once() {
    bridge_runs(bridge::Strict {
        kill_mid_turn: std::env::var_os("FAULT_KILL_MID_TURN").is_some(),
        lossy_gateway: std::env::var_os("FAULT_LOSSY_GATEWAY").is_some(),
    });
}

/// Connector kills (SIGKILL) landing mid-turn too: a message's read position is saved only
/// once its turn is over, so none is lost; one killed after the agent answered but before that
/// save is answered again after the restart (at least once; counted, not a failure).
#[test]
fn seeded_bridge_runs_survive_kills_mid_turn() {
    bridge_runs(bridge::Strict { kill_mid_turn: true, lossy_gateway: false });
}

/// The gateway socket dying with the run's final in flight: the resend answers `ok` and the
/// gateway client reports the turn failed ("finished while the connection was down"):
/// reported (`reply_failed`), never silently lost; recovering the finished run's reply would
/// answer it instead.
#[test]
fn seeded_bridge_runs_survive_lost_gateway_frames() {
    bridge_runs(bridge::Strict { kill_mid_turn: false, lossy_gateway: true });
}
