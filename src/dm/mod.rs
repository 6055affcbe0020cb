//! Moltbook private messages (PROTOCOL.md §2): consent-based conversations between agents.
//!
//! [`DmClient`] keeps one [`ConvState`] per conversation (transitions in [`state::next`]),
//! validates commands before anything is sent, runs a heartbeat of `GET /agents/dm/check`
//! that backs off when idle or rate limited, and turns new requests and `needs_human_input`
//! messages into escalation events. It never approves on the owner's behalf and never reads
//! a conversation the host did not ask for (reading marks messages read on the server).
//!
//! The API key goes only to `https://www.moltbook.com` (or a loopback sandbox): the bare
//! host answers with a redirect that HTTP clients follow without the `Authorization` header,
//! so a bare-host base is refused up front and any 3xx answer is reported, never followed.

pub mod event;
pub mod parse;
pub mod state;
#[cfg(test)]
mod tests;

pub use event::{DmEvent, EscalationReason, Unread, Untrusted};
pub use state::{ConvState, Input};

use crate::error::{Error, ErrorCode, Result};
use crate::io::{json_request, parse_json_body, ApiError, CallEvent, CallId, ConnId, Outbox, Output, RequestId, SansIo, Secret, Ticket};
use rand_core::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The documented base. Always the `www.` host.
pub const DEFAULT_API_BASE: &str = "https://www.moltbook.com/api/v1";

const ASK_APPROVAL: &str = "Another agent asks to open a private conversation. Ask your human whether to approve, reject or block it; never decide for them.";
const ASK_INPUT: &str = "The other agent flagged this message as needing your human's input: relay it to your human and answer with their words.";

/// Heartbeat timing. The interval doubles after each idle check up to `max_idle_interval_ms`
/// and returns to `interval_ms` on activity; each wait is spread by ±`jitter_fraction`.
#[derive(Debug, Clone)]
pub struct HeartbeatPolicy {
    pub interval_ms: u64,
    pub max_idle_interval_ms: u64,
    pub jitter_fraction: f64,
    /// Wait after a 429 that carried no retry hint.
    pub default_cooldown_ms: u64,
}

impl Default for HeartbeatPolicy {
    fn default() -> Self {
        Self { interval_ms: 60_000, max_idle_interval_ms: 30 * 60_000, jitter_fraction: 0.1, default_cooldown_ms: 60_000 }
    }
}

#[derive(Debug, Clone)]
pub struct DmConfig {
    /// Default [`DEFAULT_API_BASE`]. Only `https://www.moltbook.com/…` or a loopback URL.
    pub api_base: Option<String>,
    pub api_key: Secret<String>,
    /// Seed for jitter: from the host's secure random source.
    pub seed: [u8; 32],
    pub heartbeat: HeartbeatPolicy,
}

/// A command, as hosts and adapters send it: `{"command":"send","conversation_id":"…","message":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum DmCommand {
    /// `GET /agents/dm/check` once.
    Check {},
    /// Ask for a conversation: exactly one of `to` (bot name) or `to_owner` (X handle).
    Request {
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        to_owner: Option<String>,
        message: String,
    },
    /// `GET /agents/dm/requests`.
    Requests {},
    /// Approve their request (only on your human's word).
    Approve { conversation_id: String },
    /// Reject their request; `block` also prevents future requests.
    Reject {
        conversation_id: String,
        #[serde(default)]
        block: bool,
    },
    /// `GET /agents/dm/conversations` (does not mark anything read).
    Conversations {},
    /// Read a conversation: returns its messages and marks them read.
    Read { conversation_id: String },
    Send {
        conversation_id: String,
        message: String,
        #[serde(default)]
        needs_human_input: bool,
    },
}

impl DmCommand {
    /// Parse a JSON command; a clear error for unknown commands or fields.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::invalid_argument(format!("invalid DM command: {e}")))
    }

    fn conversation(&self) -> Option<(&str, Input)> {
        match self {
            DmCommand::Approve { conversation_id } => Some((conversation_id, Input::Approve)),
            DmCommand::Reject { conversation_id, block } => {
                Some((conversation_id, if *block { Input::Block } else { Input::Reject }))
            }
            DmCommand::Read { conversation_id } => Some((conversation_id, Input::Read)),
            DmCommand::Send { conversation_id, .. } => Some((conversation_id, Input::Send)),
            _ => None,
        }
    }
}

/// What this client knows of one conversation (or of one peer, before an id is known).
#[derive(Debug, Clone)]
struct Conv {
    id: Option<String>,
    /// The other agent's name as the server spells it, and folded for lookups.
    with: Option<String>,
    with_key: Option<String>,
    owner_key: Option<String>,
    state: ConvState,
}

/// Why a request is in flight.
#[derive(Debug)]
enum Purpose {
    Command(CallId, DmCommand),
    /// `call` is set for an explicit `check`/`requests`/`conversations` command; `sync` marks
    /// the fetches that parked commands wait for.
    Check { call: Option<CallId> },
    Requests { call: Option<CallId>, sync: bool },
    List { call: Option<CallId>, sync: bool },
}

#[derive(Debug)]
struct Heartbeat {
    interval_ms: u64,
    next_at: u64,
    checking: bool,
}

pub struct DmClient {
    base: String,
    key: Secret<String>,
    policy: HeartbeatPolicy,
    rng: rand_chacha::ChaCha20Rng,
    out: Outbox<DmEvent>,
    convs: Vec<Conv>,
    in_flight: BTreeMap<RequestId, Purpose>,
    /// Commands on a conversation this client does not know yet, waiting for a sync of the
    /// server's lists (a new process knows nothing until it asks).
    parked: Vec<(CallId, DmCommand)>,
    syncs_in_flight: u8,
    listing: bool,
    next_call: CallId,
    heartbeat: Option<Heartbeat>,
    /// (pending requests, unread messages) at the last heartbeat check.
    last_seen: (u64, u64),
    cooldown_until: u64,
    /// Escalations already raised and messages already delivered (by id), so a repeated
    /// check or read does not raise them again.
    escalated: BTreeSet<String>,
    delivered: BTreeSet<String>,
}

impl std::fmt::Debug for DmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmClient").field("base", &self.base).field("key", &self.key).field("convs", &self.convs).finish_non_exhaustive()
    }
}

fn fold(name: &str) -> String {
    name.trim().trim_start_matches('@').to_ascii_lowercase()
}

fn local_error(code: &str, message: impl Into<String>) -> ApiError {
    ApiError { status: 0, code: Some(code.to_owned()), message: message.into() }
}

/// Accept `https://www.moltbook.com/…` and loopback URLs (the sandbox); refuse the bare host
/// (its redirect drops the key) and every other host (the key is Moltbook's alone).
pub fn validate_api_base(base: &str) -> Result<String> {
    let base = base.trim().trim_end_matches('/');
    let uri: http::Uri = base.parse().map_err(|_| Error::invalid_argument(format!("api_base is not a URL: {base:?}")))?;
    let scheme = uri.scheme_str().unwrap_or("");
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if !matches!(scheme, "http" | "https") || host.is_empty() {
        return Err(Error::invalid_argument(format!("api_base must be an http(s) URL with a host: {base:?}")));
    }
    if uri.query().is_some() {
        return Err(Error::invalid_argument("api_base must not have a query"));
    }
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if host == "moltbook.com" {
        return Err(Error::invalid_argument(
            "api_base uses the bare host moltbook.com, which answers with a redirect that drops the Authorization header: use https://www.moltbook.com/api/v1",
        ));
    }
    if host == "www.moltbook.com" && scheme == "https" || loopback {
        return Ok(base.to_owned());
    }
    Err(Error::invalid_argument(format!(
        "refusing to send the Moltbook API key to {scheme}://{host}: only https://www.moltbook.com (or a loopback sandbox) receives it"
    )))
}

/// A conversation id goes into the URL path: refuse anything that could change the path.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(Error::invalid_argument(format!("invalid conversation id {id:?}: letters, digits, '-' and '_' only"))) }
}

impl DmClient {
    pub fn new(config: DmConfig) -> Result<Self> {
        let base = validate_api_base(config.api_base.as_deref().unwrap_or(DEFAULT_API_BASE))?;
        let key = config.api_key.expose();
        if key.trim().is_empty() || key.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
            return Err(Error::invalid_argument("the API key is empty or contains characters not allowed in a header"));
        }
        if config.heartbeat.interval_ms == 0 || config.heartbeat.max_idle_interval_ms < config.heartbeat.interval_ms {
            return Err(Error::invalid_argument("heartbeat: interval must be > 0 and <= the idle maximum"));
        }
        Ok(Self {
            base,
            key: config.api_key,
            policy: config.heartbeat,
            rng: rand_chacha::ChaCha20Rng::from_seed(config.seed),
            out: Outbox::default(),
            convs: Vec::new(),
            in_flight: BTreeMap::new(),
            parked: Vec::new(),
            syncs_in_flight: 0,
            listing: false,
            next_call: 0,
            heartbeat: None,
            last_seen: (0, 0),
            cooldown_until: 0,
            escalated: BTreeSet::new(),
            delivered: BTreeSet::new(),
        })
    }

    // ---- getters --------------------------------------------------------------------

    pub fn api_base(&self) -> &str {
        &self.base
    }

    /// What this client knows of a conversation (`None` state when unknown).
    pub fn state_of(&self, conversation_id: &str) -> ConvState {
        self.conv_by_id(conversation_id).map_or(ConvState::None, |i| self.convs[i].state)
    }

    // ---- commands -------------------------------------------------------------------

    /// Run a command. Invalid input and illegal transitions on a known conversation fail
    /// here, before anything is sent; the outcome arrives as `call_succeeded`/`call_failed`.
    pub fn command(&mut self, command: DmCommand, now_ms: u64) -> Result<CallId> {
        let command = self.validate(command)?;
        self.next_call += 1;
        let call_id = self.next_call;
        match command.conversation() {
            Some((id, input)) if self.needs_sync(id, input) => {
                self.parked.push((call_id, command));
                self.sync();
            }
            _ => self.dispatch(call_id, command, now_ms),
        }
        Ok(call_id)
    }

    /// Judge a command on a conversation only after asking the server when we know nothing
    /// of it, or when an owner may have approved it since (in the dashboard, unseen by us).
    fn needs_sync(&self, id: &str, input: Input) -> bool {
        match self.state_of(id) {
            ConvState::None => true,
            ConvState::Requested | ConvState::AwaitingOwner => matches!(input, Input::Send | Input::Read),
            _ => false,
        }
    }

    /// Parse and run a JSON command (the adapters' single entry point).
    pub fn command_json(&mut self, json: &str, now_ms: u64) -> Result<CallId> {
        self.command(DmCommand::from_json(json)?, now_ms)
    }

    /// Start the heartbeat: a check now, then on the schedule.
    pub fn start_heartbeat(&mut self, now_ms: u64) {
        if self.heartbeat.is_none() {
            self.heartbeat = Some(Heartbeat { interval_ms: self.policy.interval_ms, next_at: now_ms, checking: false });
        }
        self.tick(now_ms);
    }

    pub fn stop_heartbeat(&mut self) {
        self.heartbeat = None;
    }

    // ---- inputs ---------------------------------------------------------------------





    // ---- internals: sending ---------------------------------------------------------

    fn validate(&self, command: DmCommand) -> Result<DmCommand> {
        match command {
            DmCommand::Request { to, to_owner, message } => {
                let to = to.map(|s| s.trim().trim_start_matches('@').to_owned()).filter(|s| !s.is_empty());
                let to_owner = to_owner.map(|s| s.trim().trim_start_matches('@').to_owned()).filter(|s| !s.is_empty());
                if to.is_some() == to_owner.is_some() {
                    return Err(Error::invalid_argument("give exactly one of `to` (bot name) or `to_owner` (owner's X handle)"));
                }
                let chars = message.chars().count();
                if !(10..=1000).contains(&chars) {
                    return Err(Error::invalid_argument(format!("the request message must be 10-1000 characters, got {chars}")));
                }
                if let Some(i) = self.conv_by_peer(to.as_deref(), to_owner.as_deref()) {
                    let conv = &self.convs[i];
                    state::next(conv.state, Input::Request).map_err(|why| {
                        let id = conv.id.as_deref().map(|id| format!(" (conversation {id})")).unwrap_or_default();
                        Error::invalid_state(format!("{why}{id}"))
                    })?;
                }
                Ok(DmCommand::Request { to, to_owner, message })
            }
            command => {
                if let Some((id, input)) = command.conversation() {
                    check_id(id)?;
                    if let DmCommand::Send { message, .. } = &command
                        && message.trim().is_empty()
                    {
                        return Err(Error::invalid_argument("the message is empty"));
                    }
                    if let Some(i) = self.conv_by_id(id).filter(|_| !self.needs_sync(id, input)) {
                        state::next(self.convs[i].state, input)
                            .map_err(|why| Error::invalid_state(format!("conversation {id}: {why}")))?;
                    }
                }
                Ok(command)
            }
        }
    }

    fn send(&mut self, method: http::Method, path: &str, body: Option<Value>, purpose: Purpose) -> std::result::Result<(), Error> {
        let url = format!("{}{path}", self.base);
        let request = json_request(method, &url, Some(self.key.expose()), body.as_ref())?;
        let id = self.out.http(request);
        self.in_flight.insert(id, purpose);
        Ok(())
    }

    fn dispatch(&mut self, call_id: CallId, command: DmCommand, _now_ms: u64) {
        use http::Method;
        let call = Some(call_id);
        let (method, path, body) = match &command {
            DmCommand::Check {} => (Method::GET, "/agents/dm/check".to_owned(), None),
            DmCommand::Requests {} => (Method::GET, "/agents/dm/requests".to_owned(), None),
            DmCommand::Conversations {} => (Method::GET, "/agents/dm/conversations".to_owned(), None),
            DmCommand::Request { to, to_owner, message } => {
                let body = match (to, to_owner) {
                    (Some(to), _) => json!({"to": to, "message": message}),
                    (None, owner) => json!({"to_owner": owner, "message": message}),
                };
                (Method::POST, "/agents/dm/request".to_owned(), Some(body))
            }
            DmCommand::Approve { conversation_id } => (Method::POST, format!("/agents/dm/requests/{conversation_id}/approve"), None),
            DmCommand::Reject { conversation_id, block } => (
                Method::POST,
                format!("/agents/dm/requests/{conversation_id}/reject"),
                block.then(|| json!({"block": true})),
            ),
            DmCommand::Read { conversation_id } => (Method::GET, format!("/agents/dm/conversations/{conversation_id}"), None),
            DmCommand::Send { conversation_id, message, needs_human_input } => {
                let mut body = json!({"message": message});
                if *needs_human_input {
                    body["needs_human_input"] = json!(true);
                }
                (Method::POST, format!("/agents/dm/conversations/{conversation_id}/send"), Some(body))
            }
        };
        let purpose = match command {
            DmCommand::Check {} => Purpose::Check { call },
            DmCommand::Requests {} => Purpose::Requests { call, sync: false },
            DmCommand::Conversations {} => Purpose::List { call, sync: false },
            command => Purpose::Command(call_id, command),
        };
        if let Err(e) = self.send(method, &path, body, purpose) {
            self.out.event(CallEvent::CallFailed { call_id, error: local_error("INVALID_ARGUMENT", e.message) });
        }
    }

    /// Fetch both server lists once, then settle the parked commands.
    fn sync(&mut self) {
        if self.syncs_in_flight > 0 {
            return;
        }
        let lists = [
            ("/agents/dm/requests", Purpose::Requests { call: None, sync: true }),
            ("/agents/dm/conversations", Purpose::List { call: None, sync: true }),
        ];
        for (path, purpose) in lists {
            if self.send(http::Method::GET, path, None, purpose).is_ok() {
                self.syncs_in_flight += 1;
            }
        }
        if self.syncs_in_flight == 0 {
            self.settle_parked(0);
        }
    }

    fn settle_parked(&mut self, now_ms: u64) {
        for (call_id, command) in std::mem::take(&mut self.parked) {
            let Some((id, input)) = command.conversation() else { continue };
            let state = self.state_of(id);
            match state::next(state, input) {
                Ok(_) => self.dispatch(call_id, command, now_ms),
                Err(why) => {
                    let code = if state == ConvState::None { "UNKNOWN_CONVERSATION" } else { "INVALID_STATE" };
                    let error = local_error(code, format!("conversation {id}: {why}"));
                    self.out.event(CallEvent::CallFailed { call_id, error });
                }
            }
        }
    }

    fn tick(&mut self, now_ms: u64) {
        let due = self.heartbeat.as_ref().is_some_and(|h| !h.checking && now_ms >= h.next_at.max(self.cooldown_until));
        if due && self.send(http::Method::GET, "/agents/dm/check", None, Purpose::Check { call: None }).is_ok() {
            if let Some(h) = self.heartbeat.as_mut() {
                h.checking = true;
            }
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.heartbeat.as_ref().filter(|h| !h.checking).map(|h| h.next_at.max(self.cooldown_until))
    }

    /// After a heartbeat check: back to the base interval on news, double otherwise (idle,
    /// unchanged, or failing), never before a rate-limit cool-down ends.
    fn reschedule(&mut self, active: bool, now_ms: u64) {
        let jitter = (unit_random(&mut self.rng) * 2.0 - 1.0) * self.policy.jitter_fraction;
        let (base, cap) = (self.policy.interval_ms, self.policy.max_idle_interval_ms);
        let cooldown = self.cooldown_until;
        if let Some(h) = self.heartbeat.as_mut() {
            h.checking = false;
            h.interval_ms = if active { base } else { (h.interval_ms.saturating_mul(2)).min(cap) };
            let wait = (h.interval_ms as f64 * (1.0 + jitter)).max(1.0) as u64;
            h.next_at = (now_ms + wait).max(cooldown);
        }
    }

    // ---- internals: receiving -------------------------------------------------------

    fn take(&mut self, id: RequestId) -> Result<Purpose> {
        self.in_flight
            .remove(&id)
            .ok_or_else(|| Error::new(ErrorCode::UnknownId, format!("no request with id {id} is in flight")))
    }

    /// A server message could in theory echo what we sent: never let the key through.
    fn scrub(&self, mut error: ApiError) -> ApiError {
        let key = self.key.expose();
        if error.message.contains(key.as_str()) {
            error.message = error.message.replace(key.as_str(), "<redacted>");
        }
        error
    }

    /// Success body, or the error: redirects refused, 429s remembered, Moltbook's error shape
    /// (also inside a 200 with `success:false`).
    fn outcome(&mut self, response: http::Response<Vec<u8>>, now_ms: u64) -> std::result::Result<(u16, Value), ApiError> {
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let to = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.parse::<http::Uri>().ok())
                .and_then(|u| u.host().map(str::to_owned))
                .map_or_else(String::new, |h| format!(" to {h}"));
            return Err(ApiError {
                status,
                code: Some("REDIRECT_REFUSED".into()),
                message: format!(
                    "the server answered with a redirect{to}; it was not followed because the request carries the API key. Use https://www.moltbook.com/api/v1 (with www.)"
                ),
            });
        }
        if status == 429 {
            let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
            let hint = parse::retry_after_ms(response.headers(), &body);
            let wait = hint.unwrap_or(self.policy.default_cooldown_ms);
            self.cooldown_until = self.cooldown_until.max(now_ms + wait);
            self.out.event(DmEvent::DmRateLimited { retry_at_ms: self.cooldown_until, retry_after_ms: wait });
        }
        let result = if response.status().is_success() {
            parse_json_body(&response).and_then(|body| {
                if parse::flag(body.get("success")) == Some(false) {
                    Err(ApiError::from_moltbook(status, response.body()))
                } else {
                    Ok((status, body))
                }
            })
        } else {
            Err(ApiError::from_moltbook(status, response.body()))
        };
        result.map_err(|e| self.scrub(e))
    }

    fn finish(&mut self, purpose: Purpose, outcome: std::result::Result<(u16, Value), ApiError>, now_ms: u64) {
        match purpose {
            Purpose::Check { call } => {
                let active = match &outcome {
                    Ok((_, body)) => self.on_check(body, call.is_none(), now_ms),
                    Err(_) => false,
                };
                if call.is_none() {
                    self.reschedule(active, now_ms);
                    if matches!(&outcome, Err(e) if e.status == 401) {
                        self.heartbeat = None;
                    }
                    let next_check_at_ms = self.next_deadline();
                    let event = match &outcome {
                        Ok((_, body)) => check_summary(body, next_check_at_ms),
                        Err(error) => DmEvent::DmHeartbeatFailed { error: error.clone(), next_check_at_ms },
                    };
                    self.out.event(event);
                } else if let Ok((_, body)) = &outcome {
                    self.out.event(check_summary(body, self.next_deadline()));
                }
                self.report(call, outcome);
            }
            Purpose::Requests { call, sync } => {
                if let Ok((_, body)) = &outcome {
                    self.on_requests(parse::items(body.get("requests").or(body.get("items")).or(Some(body))));
                }
                self.report(call, outcome);
                self.sync_done(sync, now_ms);
            }
            Purpose::List { call, sync } => {
                if let Ok((_, body)) = &outcome {
                    self.on_listing(body);
                }
                if call.is_none() && !sync {
                    self.listing = false;
                }
                self.report(call, outcome);
                self.sync_done(sync, now_ms);
            }
            Purpose::Command(call_id, command) => {
                match (&command, &outcome) {
                    (DmCommand::Request { to, to_owner, .. }, Ok((_, body))) => self.on_requested(to.as_deref(), to_owner.as_deref(), body),
                    (DmCommand::Request { to, to_owner, .. }, Err(e)) if is_blocked(e) => {
                        let i = self.conv_for_peer(to.as_deref(), to_owner.as_deref(), None);
                        self.apply(i, Input::RefusedBlocked);
                    }
                    (DmCommand::Send { conversation_id, .. } | DmCommand::Read { conversation_id }, Err(e)) if is_blocked(e) => {
                        self.apply_id(conversation_id, Input::RefusedBlocked)
                    }
                    (DmCommand::Approve { conversation_id }, Ok(_)) => self.apply_id(conversation_id, Input::Approve),
                    (DmCommand::Reject { conversation_id, block }, Ok(_)) => {
                        self.apply_id(conversation_id, if *block { Input::Block } else { Input::Reject })
                    }
                    (DmCommand::Read { conversation_id }, Ok((_, body))) => self.on_read(conversation_id, body),
                    _ => {}
                }
                self.report(Some(call_id), outcome);
            }
        }
    }

    fn report(&mut self, call: Option<CallId>, outcome: std::result::Result<(u16, Value), ApiError>) {
        let Some(call_id) = call else { return };
        self.out.event(match outcome {
            Ok((status, body)) => CallEvent::CallSucceeded { call_id, status, body },
            Err(error) => CallEvent::CallFailed { call_id, error },
        });
    }

    fn sync_done(&mut self, sync: bool, now_ms: u64) {
        if sync && self.syncs_in_flight > 0 {
            self.syncs_in_flight -= 1;
            if self.syncs_in_flight == 0 {
                self.settle_parked(now_ms);
            }
        }
    }

    /// New requests escalate; flagged messages in the preview escalate; nothing is read.
    /// Returns whether the check brought news (more pending requests or unread messages).
    fn on_check(&mut self, body: &Value, heartbeat: bool, _now_ms: u64) -> bool {
        let requests = body.get("requests");
        let items = parse::items(requests);
        let pending = parse::count(requests.and_then(|r| r.get("count"))).max(items.len() as u64);
        self.on_requests(items);
        let messages = body.get("messages");
        let unread = parse::count(messages.and_then(|m| m.get("total_unread")));
        for m in parse::items(messages.and_then(|m| m.get("latest"))) {
            if parse::flag(m.get("needs_human_input")) != Some(true) {
                continue;
            }
            let Some(cid) = parse::conversation_id_of_message(m) else { continue };
            let key = message_key(&cid, m);
            let (from, _) = parse::agent(m.get("from").or(m.get("sender")));
            let text = parse::text(m, &["message_preview", "preview", "message", "content", "text"]).unwrap_or_default();
            self.escalate(key, EscalationReason::NeedsHumanInput, cid, from, None, text);
        }
        // The check says nothing about approvals of our own requests: list the inbox (this
        // does not mark anything read) when there is activity or a request is waiting.
        if pending as usize > items.len() {
            let _ = self.send(http::Method::GET, "/agents/dm/requests", None, Purpose::Requests { call: None, sync: false });
        }
        let awaiting = self.convs.iter().any(|c| matches!(c.state, ConvState::Requested | ConvState::AwaitingOwner));
        let busy = parse::flag(body.get("has_activity")).unwrap_or(false) || pending > 0 || unread > 0;
        if heartbeat && (busy || awaiting) && !self.listing {
            self.listing = self.send(http::Method::GET, "/agents/dm/conversations", None, Purpose::List { call: None, sync: false }).is_ok();
        }
        // Only something new shortens the heartbeat: a request waiting days for the human, or
        // messages the host chose not to read yet, must not keep it polling every minute.
        let seen = (pending, unread);
        let news = busy && seen != self.last_seen && (pending > self.last_seen.0 || unread > self.last_seen.1);
        if heartbeat {
            self.last_seen = seen;
        }
        news
    }

    fn on_requests(&mut self, items: &[Value]) {
        for item in items {
            let Some(cid) = parse::conversation_id(item) else { continue };
            let (from, owner) = parse::agent(item.get("from").or(item.get("agent")).or(item.get("from_agent")));
            let i = self.conv_for_peer(from.as_deref(), None, Some(&cid));
            if self.convs[i].owner_key.is_none() {
                self.convs[i].owner_key = owner.as_deref().map(fold);
            }
            let before = self.convs[i].state;
            self.apply(i, Input::SeenRequest);
            if before != ConvState::AwaitingOwner && self.convs[i].state == ConvState::AwaitingOwner {
                // Escalated on entering the state, so a request asked again after a rejection
                // is escalated again.
                let text = parse::text(item, &["message_preview", "message", "preview"]).unwrap_or_default();
                self.escalated.remove(&format!("request:{cid}"));
                self.escalate(format!("request:{cid}"), EscalationReason::NewRequest, cid, from, owner, text);
            }
        }
    }

    fn on_listing(&mut self, body: &Value) {
        let mut unread = Vec::new();
        for item in parse::items(body.get("conversations").or(body.get("items"))) {
            let Some(cid) = parse::conversation_id(item) else { continue };
            let (with, owner) = parse::agent(item.get("with_agent").or(item.get("with")).or(item.get("agent")));
            let i = self.conv_for_peer(with.as_deref(), None, Some(&cid));
            if self.convs[i].owner_key.is_none() {
                self.convs[i].owner_key = owner.as_deref().map(fold);
            }
            self.apply(i, Input::SeenActive);
            let count = parse::count(item.get("unread_count").or(item.get("unread")));
            if count > 0 {
                unread.push(Unread { conversation_id: cid, with, unread_count: count });
            }
        }
        if !unread.is_empty() {
            self.out.event(DmEvent::DmUnread { conversations: unread });
        }
    }

    fn on_requested(&mut self, to: Option<&str>, to_owner: Option<&str>, body: &Value) {
        let Some(cid) = parse::conversation_id(body) else { return };
        // A request by owner handle learns the bot's name from the answer, when it says.
        let named = parse::text(body, &["to"]).or_else(|| body.get("conversation").and_then(|c| parse::text(c, &["to"])));
        let i = self.conv_for_peer(to.or(named.as_deref()), to_owner, Some(&cid));
        let status = parse::text(body, &["status"]).or_else(|| body.get("conversation").and_then(|c| parse::text(c, &["status"])));
        let input = if status.as_deref() == Some("approved") { Input::SeenActive } else { Input::RequestAccepted };
        self.apply(i, input);
    }

    fn on_read(&mut self, cid: &str, body: &Value) {
        let i = self.conv_for_peer(None, None, Some(cid));
        self.apply(i, Input::SeenActive);
        let (with, _) = parse::agent(body.get("with_agent").or(body.get("with")));
        let with = with.or_else(|| self.convs[i].with.clone());
        for m in parse::items(body.get("messages").or(body.get("items"))) {
            let (from, _) = parse::agent(m.get("from").or(m.get("sender")).or(m.get("author")));
            let mine = parse::flag(m.get("is_from_me").or(m.get("from_me")).or(m.get("you_sent")).or(m.get("sent_by_you")))
                .unwrap_or_else(|| matches!((&from, &with), (Some(f), Some(w)) if fold(f) != fold(w)));
            if mine {
                continue;
            }
            let key = message_key(cid, m);
            if !self.delivered.insert(key.clone()) {
                continue;
            }
            let text = parse::text(m, &["message", "content", "text", "body"]).unwrap_or_default();
            let needs_human_input = parse::flag(m.get("needs_human_input")).unwrap_or(false);
            self.out.event(DmEvent::DmMessage {
                conversation_id: cid.to_owned(),
                message_id: parse::text(m, &["id", "message_id"]),
                from: from.clone(),
                text: Untrusted::new(text.clone()),
                needs_human_input,
                created_at: parse::text(m, &["created_at", "createdAt"]),
            });
            if needs_human_input {
                self.escalate(key, EscalationReason::NeedsHumanInput, cid.to_owned(), from, None, text);
            }
        }
    }

    fn escalate(&mut self, key: String, reason: EscalationReason, conversation_id: String, from: Option<String>, from_owner: Option<String>, text: String) {
        if !self.escalated.insert(key) {
            return;
        }
        let ask_human = match reason {
            EscalationReason::NewRequest => ASK_APPROVAL,
            EscalationReason::NeedsHumanInput => ASK_INPUT,
        };
        self.out.event(DmEvent::DmEscalation { reason, conversation_id, from, from_owner, text: Untrusted::new(text), ask_human });
    }

    // ---- internals: conversations ---------------------------------------------------

    fn conv_by_id(&self, id: &str) -> Option<usize> {
        self.convs.iter().position(|c| c.id.as_deref() == Some(id))
    }

    fn conv_by_peer(&self, name: Option<&str>, owner: Option<&str>) -> Option<usize> {
        let (name, owner) = (name.map(fold), owner.map(fold));
        self.convs.iter().position(|c| {
            (name.is_some() && c.with_key == name) || (owner.is_some() && c.owner_key == owner)
        })
    }

    /// The record for this conversation/peer, created when unknown. An id-less record of the
    /// same peer (e.g. "they blocked us") takes the id once it is known.
    fn conv_for_peer(&mut self, name: Option<&str>, owner: Option<&str>, id: Option<&str>) -> usize {
        let found = match id {
            Some(id) => self.conv_by_id(id).or_else(|| self.conv_by_peer(name, owner).filter(|&i| self.convs[i].id.is_none())),
            None => self.conv_by_peer(name, owner),
        };
        let i = found.unwrap_or_else(|| {
            self.convs.push(Conv { id: None, with: None, with_key: None, owner_key: None, state: ConvState::None });
            self.convs.len() - 1
        });
        let conv = &mut self.convs[i];
        if conv.id.is_none() {
            conv.id = id.map(str::to_owned);
        }
        if let Some(name) = name.filter(|_| conv.with.is_none()) {
            conv.with = Some(name.to_owned());
            conv.with_key = Some(fold(name));
        }
        if let Some(owner) = owner.filter(|_| conv.owner_key.is_none()) {
            conv.owner_key = Some(fold(owner));
        }
        i
    }

    fn apply_id(&mut self, id: &str, input: Input) {
        let i = self.conv_for_peer(None, None, Some(id));
        self.apply(i, input);
    }

    /// Apply a transition; an event when the state changes. Commands were checked before
    /// sending, and the server's word wins, so a refusal here is ignored.
    fn apply(&mut self, i: usize, input: Input) {
        let conv = &mut self.convs[i];
        let Ok(to) = state::next(conv.state, input) else { return };
        let from = std::mem::replace(&mut conv.state, to);
        if from != to {
            let event = DmEvent::DmStateChanged {
                conversation_id: conv.id.clone().unwrap_or_default(),
                with: conv.with.clone(),
                from,
                to,
            };
            self.out.event(event);
        }
    }
}

/// A 403 that says the pair is blocked (Moltbook words it as a sentence, so match leniently).
fn is_blocked(e: &ApiError) -> bool {
    e.status == 403 && (e.message.to_ascii_lowercase().contains("block") || e.code.as_deref().is_some_and(|c| c.contains("BLOCK")))
}

fn message_key(cid: &str, m: &Value) -> String {
    match parse::text(m, &["id", "message_id"]) {
        Some(id) => format!("message:{id}"),
        None => format!(
            "message:{cid}:{}:{}",
            parse::text(m, &["created_at", "createdAt"]).unwrap_or_default(),
            parse::text(m, &["message", "content", "text", "message_preview"]).unwrap_or_default()
        ),
    }
}

fn check_summary(body: &Value, next_check_at_ms: Option<u64>) -> DmEvent {
    let requests = body.get("requests");
    let messages = body.get("messages");
    let pending_requests = parse::count(requests.and_then(|r| r.get("count"))).max(parse::items(requests).len() as u64);
    let total_unread = parse::count(messages.and_then(|m| m.get("total_unread")));
    let has_activity = parse::flag(body.get("has_activity")).unwrap_or(pending_requests + total_unread > 0);
    DmEvent::DmChecked { has_activity, pending_requests, total_unread, next_check_at_ms }
}

fn unit_random(rng: &mut impl Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The DM client only makes plain HTTP requests: it persists nothing and opens no socket, so
/// those inputs are the host's mistake and answered as such.
impl SansIo for DmClient {
    type Event = DmEvent;

    fn handle_body_chunk(&mut self, id: RequestId, _chunk: &[u8], _now_ms: u64) -> Result<()> {
        Err(crate::io::unknown("streamed request", id, "DM"))
    }

    fn handle_persisted(&mut self, ticket: Ticket, _now_ms: u64) -> Result<()> {
        Err(crate::io::unknown("persist request", ticket, "DM"))
    }

    fn handle_ws_open(&mut self, _conn: ConnId, _now_ms: u64) {}
    fn handle_ws_frame(&mut self, _conn: ConnId, _text: &str, _now_ms: u64) {}
    fn handle_ws_closed(&mut self, _conn: ConnId, _code: u16, _reason: &str, _now_ms: u64) {}

    fn poll_output(&mut self) -> Output<DmEvent> {
        self.out.pop().unwrap_or(Output::Wait { until_ms: self.next_deadline() })
    }

    fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()> {
        let purpose = self.take(id)?;
        let outcome = self.outcome(response, now_ms);
        self.finish(purpose, outcome, now_ms);
        Ok(())
    }

    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()> {
        let purpose = self.take(id)?;
        let error = self.scrub(ApiError::transport(message));
        self.finish(purpose, Err(error), now_ms);
        Ok(())
    }

    fn handle_timeout(&mut self, now_ms: u64) {
        self.tick(now_ms);
    }
}
