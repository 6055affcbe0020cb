//! Moltspaces under fire: agents join rooms (an existing room's topic → search + token, a new
//! topic → search 404 + create), renew their meeting token before it expires and at once
//! after a reported drop, leave and join elsewhere, and are killed and restarted (a restarted
//! voice loop joins its topic again), over a network that drops, delays, duplicates, reorders
//! and answers 502/503. Invariants: one room per topic and one `join` ticket per join call
//! (no duplicate create from a retry), the API key only ever in its one header, over TLS or
//! loopback, never in an event; after the network heals every agent holds a live ticket for
//! the room of its topic.

use crate::net::{Client, FaultStats, Faults, Host, Remote, Rng, T0, WsOut};
use moltlink::io::CallEvent;
use moltlink::spaces::{SpacesEvent, TicketReason};
use moltlink::{SpacesClient, SpacesCommand};
use moltlink_sandbox::{Sandbox, SandboxConfig};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

const SEC: u64 = 1_000;
const OPTIONS: &str = r#"{"api_base":"http://127.0.0.1/moltspaces/v1"}"#;
/// Other providers' keys in the same `.env`: they must never reach Moltspaces.
const OTHER_KEYS: &str = "OPENAI_API_KEY=sk-fault-openai-0123456789\nELEVENLABS_API_KEY=el-fault-0123456789\n";

/// The sandbox as the Moltspaces server, checking every request the network carried.
pub struct SpacesRemote<'a> {
    pub sandbox: &'a Sandbox,
    /// Every agent's API key, and the other providers' keys.
    pub secrets: RefCell<Vec<String>>,
    pub violations: RefCell<Vec<String>>,
    pub requests: RefCell<u64>,
}

impl Remote for SpacesRemote<'_> {
    fn http(&self, request: http::Request<Vec<u8>>, now: u64) -> http::Response<Vec<u8>> {
        self.sandbox.handle(request, now)
    }

    fn saw(&self, request: &http::Request<Vec<u8>>) {
        *self.requests.borrow_mut() += 1;
        let uri = request.uri();
        let what = format!("{} {}", request.method(), uri.path());
        let mut bad = vec![];
        let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if uri.scheme_str() != Some("https") && !loopback {
            bad.push("sent in clear (http to a non-loopback host)".to_owned());
        }
        let keys: Vec<_> = request.headers().get_all("x-api-key").iter().collect();
        if keys.len() > 1 {
            bad.push(format!("{} x-api-key headers", keys.len()));
        }
        if let Some(k) = keys.first() {
            if !k.is_sensitive() {
                bad.push("x-api-key not marked sensitive".into());
            }
            if uri.path().ends_with("/agents/register") {
                bad.push("a key sent with a registration".into());
            }
        } else if !uri.path().ends_with("/agents/register") {
            bad.push("no x-api-key".into());
        }
        // Anywhere else (URL, body, other headers) no secret may appear, the key included.
        let mut elsewhere = uri.to_string();
        elsewhere.push_str(&String::from_utf8_lossy(request.body()));
        for (name, value) in request.headers() {
            if name != "x-api-key" {
                elsewhere.push_str(&String::from_utf8_lossy(value.as_bytes()));
            }
        }
        for secret in self.secrets.borrow().iter() {
            if elsewhere.contains(secret.as_str()) {
                bad.push("a secret outside its header".into());
            }
            if keys.first().is_some_and(|k| k.as_bytes() == secret.as_bytes()) && secret.starts_with("sk-") | secret.starts_with("el-") {
                bad.push("another provider's key sent to Moltspaces".into());
            }
        }
        for b in bad {
            self.violations.borrow_mut().push(format!("{what}: {b}"));
        }
    }

    fn ws_open(&self, _url: &str, _now: u64) -> Option<u64> {
        panic!("Moltspaces opens no socket")
    }
    fn ws_receive(&self, _sid: u64, _text: &str, _now: u64) {}
    fn ws_tick(&self, _now: u64) {}
    fn ws_drain(&self, _sid: u64) -> Vec<WsOut> {
        vec![]
    }
    fn ws_closed(&self, _sid: u64) {}
    fn ws_close(&self, _sid: u64, _code: u16, _reason: &str) {}
}

/// How a voice loop starts: its `.env` comes from disk; it joins the topic it was given.
#[derive(Default)]
pub struct SpacesSetup {
    pub topic: Option<String>,
}

/// What a Moltspaces run checks.
#[derive(Default)]
pub struct SpacesLog {
    /// The secrets no event may carry.
    pub secrets: Vec<String>,
    /// (incarnation, call id) → ticket reasons in order, with the room.
    pub tickets: BTreeMap<(u32, u64), Vec<(TicketReason, String)>>,
    /// (incarnation, call id) of joins that failed (the host joins again).
    pub failed: Vec<(u32, u64, String)>,
    pub retries: u64,
    pub leaks: Vec<String>,
}

impl Client for SpacesClient {
    type Setup = SpacesSetup;
    type Log = SpacesLog;

    fn boot(setup: &SpacesSetup, disk: Option<&[u8]>, _incarnation: u32, now: u64) -> Self {
        let mut env = OTHER_KEYS.as_bytes().to_vec();
        env.extend_from_slice(disk.expect("registered before the run"));
        let mut client = SpacesClient::from_env(&env, Some(OPTIONS)).expect("the saved .env loads");
        if let Some(topic) = &setup.topic {
            client.command(SpacesCommand::Join { topic: topic.clone() }, now).unwrap();
        }
        client
    }

    fn record(log: &mut SpacesLog, incarnation: u32, event: SpacesEvent) {
        let text = format!("{event:?} {}", serde_json::to_string(&event).unwrap_or_default());
        if let Some(s) = log.secrets.iter().find(|s| text.contains(s.as_str())) {
            log.leaks.push(format!("{}…", &text[..text.find(s.as_str()).unwrap().min(80)]));
        }
        match event {
            SpacesEvent::SpacesTicket { call_id, reason, ticket, .. } => {
                log.tickets.entry((incarnation, call_id)).or_default().push((reason, ticket.room_name))
            }
            SpacesEvent::Call(CallEvent::CallFailed { call_id, error }) => log.failed.push((incarnation, call_id, error.to_string())),
            SpacesEvent::SpacesRetrying { .. } => log.retries += 1,
            _ => {}
        }
    }
}

/// Whether the client is in a room or on its way (joining, retrying, renewing).
fn in_or_joining(client: &SpacesClient) -> bool {
    serde_json::from_str::<serde_json::Value>(&client.state_json()).is_ok_and(|v| !v["room"].is_null())
}

/// A registered voice agent (registration itself runs without faults).
fn agent(remote: &SpacesRemote, name: &str, now: u64) -> Host<SpacesClient> {
    let client = SpacesClient::from_env(OTHER_KEYS.as_bytes(), Some(OPTIONS)).unwrap();
    let mut h = Host::new(client, SpacesSetup::default(), None);
    h.client.command(SpacesCommand::Register { name: name.into(), description: "a fault-injection agent".into(), bio: None }, now).unwrap();
    h.step(remote, &mut Rng::new(0), &Faults::none(), &mut FaultStats::default(), now);
    assert!(h.client.is_registered(), "{name} registered");
    let key = h.client.config().api_key.as_ref().unwrap().expose().clone();
    remote.secrets.borrow_mut().push(key.clone());
    h.log.secrets = vec![key, "sk-fault-openai-0123456789".into(), "el-fault-0123456789".into()];
    h
}

/// Totals over runs, for the summary line.
#[derive(Default)]
pub struct SpacesTotals {
    pub joins: u64,
    pub renewals: u64,
    pub host_rejoins: u64,
    pub retries: u64,
    pub requests_checked: u64,
}

/// One seeded run: three agents, ~`minutes` of virtual time.
pub fn run(seed: u64, minutes: u64, totals: &mut SpacesTotals) -> FaultStats {
    let sandbox = Sandbox::new(SandboxConfig { seed, ..Default::default() });
    // Tokens live 4 minutes: renewals (at expiry − 60 s) come every ~3 minutes.
    let lobbies: Vec<String> = (0..3).map(|i| format!("lobby {seed} {i}")).collect();
    sandbox.with_state(|s| {
        s.moltspaces.token_lifetime_s = 240;
        for (i, topic) in lobbies.iter().enumerate() {
            s.moltspaces.add_room(None, topic, i as u64, T0);
        }
    });
    let remote = SpacesRemote { sandbox: &sandbox, secrets: RefCell::new(vec![]), violations: RefCell::new(vec![]), requests: RefCell::new(0) };
    let (mut rng, mut now, mut stats) = (Rng::new(seed), T0, FaultStats::default());
    let mut faults = Faults::chaos();
    faults.server_error = 0.05;
    let mut hosts: Vec<Host<SpacesClient>> = (0..3).map(|i| agent(&remote, &format!("voice_{seed}_{i}"), now)).collect();
    let mut fresh = 0u64;
    // (host, topic) of every join the hosts asked for.
    let mut topics: BTreeSet<String> = BTreeSet::new();
    let mut retry_join_at: Vec<Option<u64>> = vec![None; hosts.len()];
    for (i, h) in hosts.iter_mut().enumerate() {
        let topic = if i == 0 { lobbies[0].clone() } else { format!("fresh {seed} h{i} n0000") };
        topics.insert(topic.clone());
        h.setup.topic = Some(topic.clone());
        h.client.command(SpacesCommand::Join { topic }, now).unwrap();
        totals.joins += 1;
    }
    let mut schedule = crate::net::Schedule::new(now, minutes, 600);
    while let Some(healed) = schedule.step(&mut now, &mut rng, &mut faults) {
        for (i, h) in hosts.iter_mut().enumerate() {
            // The host's loop: join when told to, join again after a failed join (5 s later),
            // now and then report a transport drop, or leave for another topic.
            if !healed && rng.chance(0.002) {
                let topic = if rng.chance(0.5) {
                    lobbies[rng.below(3) as usize].clone()
                } else {
                    fresh += 1;
                    format!("fresh {seed} h{i} n{fresh:04}")
                };
                if h.setup.topic.is_some() {
                    h.client.command(SpacesCommand::Leave {}, now).unwrap();
                }
                h.setup.topic = Some(topic.clone());
                topics.insert(topic.clone());
                h.client.command(SpacesCommand::Join { topic }, now).unwrap();
                totals.joins += 1;
            } else if let Some(topic) = h.setup.topic.clone() {
                if !in_or_joining(&h.client) {
                    match retry_join_at[i] {
                        None => retry_join_at[i] = Some(now + 5 * SEC),
                        Some(at) if at <= now => {
                            retry_join_at[i] = None;
                            totals.host_rejoins += 1;
                            h.client.command(SpacesCommand::Join { topic }, now).unwrap();
                        }
                        Some(_) => {}
                    }
                } else if !healed && h.client.ticket().is_some() && rng.chance(0.003) {
                    h.client.command(SpacesCommand::Dropped {}, now).unwrap();
                }
            }
            h.step(&remote, &mut rng, &faults, &mut stats, now);
            let unacked = h.has_unacked_persist();
            if !healed && rng.chance(faults.kill_host) {
                if unacked {
                    stats.unacked_persists_at_kill += 1;
                }
                h.kill_and_restart(&remote, now);
                stats.host_kills += 1;
            }
        }
    }
    check(seed, now, &sandbox, &remote, &hosts, &topics, totals);
    stats
}

fn check(seed: u64, now: u64, sandbox: &Sandbox, remote: &SpacesRemote, hosts: &[Host<SpacesClient>], topics: &BTreeSet<String>, totals: &mut SpacesTotals) {
    let ctx = format!("spaces seed {seed}");
    let violations = remote.violations.borrow();
    assert!(violations.is_empty(), "{ctx}: requests broke the key rules: {:?}", &violations[..violations.len().min(5)]);
    totals.requests_checked += *remote.requests.borrow();
    let rooms = sandbox.with_state(|s| s.moltspaces.rooms.iter().map(|r| (r.name.clone(), r.topic.clone())).collect::<Vec<_>>());
    for topic in topics {
        let n = rooms.iter().filter(|(_, t)| t == topic).count();
        assert!(n <= 1, "{ctx}: {n} rooms for topic {topic:?} (a create was repeated): {rooms:?}");
    }
    for (i, h) in hosts.iter().enumerate() {
        let who = format!("{ctx}: host {i}");
        assert!(h.log.leaks.is_empty(), "{who}: a secret in an event: {:?}", h.log.leaks);
        for ((incarnation, call), tickets) in &h.log.tickets {
            let joins = tickets.iter().filter(|(r, _)| *r == TicketReason::Join).count();
            assert_eq!(joins, 1, "{who}: join #{call} of incarnation {incarnation} got {joins} join tickets: {tickets:?}");
            assert_eq!(tickets[0].0, TicketReason::Join, "{who}: join #{call}: a renewal before the join ticket");
            totals.renewals += tickets.len() as u64 - 1;
        }
        totals.retries += h.log.retries;
        let Some(topic) = &h.setup.topic else { continue };
        let ticket = h.client.ticket().unwrap_or_else(|| panic!("{who}: not in a room after healing (failed joins: {:?})", h.log.failed));
        assert!(ticket.expires_at_ms > now, "{who}: its ticket expired");
        let room_topic = rooms.iter().find(|(n, _)| *n == ticket.room_name).map(|(_, t)| t.as_str());
        assert_eq!(room_topic, Some(topic.as_str()), "{who}: in room {} for topic {topic:?}", ticket.room_name);
    }
}

/// The request checks can fail: a key in the URL, sent in clear, twice, or unmarked.
#[test]
fn request_checks_catch_a_leaking_key() {
    let sandbox = Sandbox::default();
    let remote = SpacesRemote { sandbox: &sandbox, secrets: RefCell::new(vec!["moltspaces_k".into()]), violations: RefCell::new(vec![]), requests: RefCell::new(0) };
    let clean = http::Request::get("https://api.moltspaces.com/v1/rooms/x").header("x-api-key", {
        let mut v = http::HeaderValue::from_static("moltspaces_k");
        v.set_sensitive(true);
        v
    });
    remote.saw(&clean.body(vec![]).unwrap());
    assert!(remote.violations.borrow().is_empty(), "{:?}", remote.violations.borrow());
    let bad = http::Request::get("http://api.moltspaces.com/v1/rooms/x?key=moltspaces_k")
        .header("x-api-key", "moltspaces_k")
        .header("x-api-key", "moltspaces_k")
        .body(vec![])
        .unwrap();
    remote.saw(&bad);
    let v = remote.violations.borrow().join("; ");
    for what in ["in clear", "2 x-api-key", "not marked sensitive", "outside its header"] {
        assert!(v.contains(what), "{what} not caught: {v}");
    }
}
