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
//!
//! Files by concern: `commands` (what the host asks, validated, sent), `heartbeat` (the check
//! schedule and rate-limit cool-down), `registry` (the conversations known and escalations),
//! `response` (answers turned into outcomes); conversation states change only in `state`.

mod commands;
pub mod event;
mod heartbeat;
pub mod parse;
mod registry;
mod response;
pub mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;

pub use commands::DmCommand;
pub use event::{CountsAsSent, DmEvent, EscalationReason, Unread, Untrusted};
pub use heartbeat::HeartbeatPolicy;
pub use state::{ConvState, Input};

use crate::error::{Error, Result};
use crate::io::{ApiError, CallId, ConnId, Outbox, Output, RequestId, SansIo, Secret, Ticket};
use heartbeat::Heartbeat;
use registry::Conv;
use std::collections::{BTreeMap, BTreeSet};
/// The tests (`use super::*`) name error codes.
#[cfg(test)]
use crate::error::ErrorCode;

/// The documented base. Always the `www.` host.
pub const DEFAULT_API_BASE: &str = "https://www.moltbook.com/api/v1";

#[derive(Debug, Clone)]
/// How to start a DM client.
pub struct DmConfig {
    /// Default [`DEFAULT_API_BASE`]. Only `https://www.moltbook.com/…` or a loopback URL.
    pub api_base: Option<String>,
    /// The Moltbook API key.
    pub api_key: Secret<String>,
    /// Seed for jitter: from the host's secure random source.
    pub seed: [u8; 32],
    /// The heartbeat's timing.
    pub heartbeat: HeartbeatPolicy,
    /// This agent's Moltbook name: a read message whose `sender.name` is this name is ours
    /// (the server sends no `is_from_me`). `None`: learnt from the first read that shows it.
    pub agent_name: Option<String>,
}

/// Why a request is in flight.
#[derive(Debug)]
enum Purpose {
    Command(CallId, DmCommand),
    /// `call` is set for an explicit `check`/`requests`/`conversations` command; `sync` marks
    /// the fetches that parked commands wait for (pending requests come from the check: the
    /// `GET /agents/dm/requests` route answers 404 since May 2026).
    Check { call: Option<CallId>, sync: bool },
    Requests { call: Option<CallId>, sync: bool },
    List { call: Option<CallId>, sync: bool },
}

/// The Moltbook DM client: requests, consent, conversations and the heartbeat.
pub struct DmClient {
    base: String,
    key: Secret<String>,
    policy: HeartbeatPolicy,
    rng: crate::io::SeededRng,
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
    /// Unread messages per conversation in the last check's `latest` previews: the captured
    /// inbox listing has no `unread_count`, so this is what tells which conversations wait.
    latest_unread: BTreeMap<String, u64>,
    /// Our own agent name (configured, or learnt from a read).
    me: Option<String>,
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

fn local_error(code: &str, message: impl Into<String>) -> ApiError {
    ApiError { status: 0, code: Some(code.to_owned()), message: message.into() }
}

/// Accept `https://www.moltbook.com/…` and loopback URLs (the sandbox); refuse the bare host
/// (its redirect drops the key) and every other host (the key is Moltbook's alone).
pub fn validate_api_base(base: &str) -> Result<String> {
    let base = base.trim().trim_end_matches('/');
    let uri: http::Uri = base.parse().map_err(|_| Error::invalid_argument(format!("api_base is not a URL: {base:?}")))?;
    let scheme = uri.scheme_str().unwrap_or("");
    let host = crate::io::base_url::host_of(&uri);
    let host = host.as_str();
    if !matches!(scheme, "http" | "https") || host.is_empty() {
        return Err(Error::invalid_argument(format!("api_base must be an http(s) URL with a host: {base:?}")));
    }
    if uri.query().is_some() {
        return Err(Error::invalid_argument("api_base must not have a query"));
    }
    let loopback = crate::io::base_url::is_loopback(host);
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

impl DmClient {
    /// A client for this configuration; fails for an invalid API key or base.
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
            rng: crate::io::SeededRng::new(config.seed, 0),
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
            latest_unread: BTreeMap::new(),
            me: config.agent_name.map(|n| n.trim().trim_start_matches('@').to_owned()).filter(|n| !n.is_empty()),
        })
    }

    // ---- getters --------------------------------------------------------------------

    /// The API base requests go to.
    pub fn api_base(&self) -> &str {
        &self.base
    }

    /// What this client knows of a conversation (`None` state when unknown).
    pub fn state_of(&self, conversation_id: &str) -> ConvState {
        self.conv_by_id(conversation_id).map_or(ConvState::None, |i| self.convs[i].state)
    }
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
