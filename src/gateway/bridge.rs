//! The MoltChats ↔ OpenClaw bridge behind `moltlink connect`: one sans-IO machine over the
//! MoltChats client (login, token rotation, realtime socket) and the gateway client.
//!
//! - A DM or channel message from another agent becomes one agent turn (`chat.send`) that says
//!   who wrote it and where; the remote text is fenced and marked untrusted. The agent's reply
//!   is posted back to the same channel (split at 4000 characters). `NO_REPLY` or an empty
//!   reply posts nothing. Our own messages are never forwarded.
//! - Turns run one at a time in arrival order, so replies keep each channel's order.
//! - A friend request becomes a turn asking for a decision. The reply's first word decides:
//!   `ACCEPT` (or `ACCEPTED`, `YES`) accepts, `REJECT` (or `REJECTED`, `DECLINE`, `NO`) rejects;
//!   anything else leaves the request pending (reported as `friend_request_undecided`).
//! - DM channels of friends are subscribed at start, after an accept, when a DM arrives on an
//!   unknown channel, and on a periodic friends refresh; configured servers' channels and
//!   channel ids are subscribed at start.
//! - Presence: the realtime socket stays open (pings, reconnects); both sides re-authenticate
//!   and reconnect on their own.
//!
//! This file holds the composition (ids relabelled per child, inputs routed back); what the
//! bridge does with its clients' events is in `react`; its events are in `event`.

mod event;
mod react;

use super::client::{GatewayClient, GatewayConfig, TurnId};
use crate::chats::ChatsCommand;
use crate::error::{Error, ErrorCode, Result};
use crate::io::{CallId, ConnId, Outbox, Output, Relabel, RequestId, SansIo, Ticket};
use crate::{ChatsClient, ChatsConfig};
use std::collections::{BTreeMap, HashSet};

pub use super::prompt::NO_REPLY;
pub use event::{BridgeEvent, ConnectorEvent};

/// How to start a bridge.
pub struct BridgeConfig {
    /// The MoltChats client's configuration.
    pub chats: ChatsConfig,
    /// `MOLTCHATS_WS_BASE`.
    pub ws_base: Option<String>,
    /// The OpenClaw gateway client's configuration.
    pub gateway: GatewayConfig,
    /// Subscribe to the DM channels of every friend.
    pub auto_subscribe_dms: bool,
    /// Subscribe to every channel of these servers.
    pub server_ids: Vec<String>,
    /// Subscribe to these channels.
    pub server_channels: Vec<String>,
    /// Re-list friends this often to pick up DM channels of newly accepted friends.
    pub friends_refresh_ms: u64,
}

/// The two clients the bridge drives (for routing its ids back to them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Chats,
    Gateway,
}

/// Where a turn came from, so its reply goes back there.
#[derive(Debug, Clone)]
enum Origin {
    Message { channel: String, message_id: Option<String> },
    FriendRequest { request_id: String, from: Option<String> },
}

/// Why a MoltChats command was sent.
#[derive(Debug, Clone)]
enum Pending {
    Friends,
    ServerChannels { server_id: String },
    Decision { request_id: String, from: Option<String>, accept: bool },
}

/// The bridge: MoltChats messages to an OpenClaw agent and its replies back.
pub struct Bridge {
    chats: ChatsClient,
    gateway: GatewayClient,
    auto_subscribe_dms: bool,
    server_ids: Vec<String>,
    server_channels: Vec<String>,
    friends_refresh_ms: u64,
    out: Outbox<ConnectorEvent>,
    /// The bridge's ids for its children's requests, tickets and connections.
    ids: Relabel<Child>,
    set_up: bool,
    calls: BTreeMap<CallId, Pending>,
    turns: BTreeMap<TurnId, Origin>,
    /// The last part of a reply still being sent → the message it answers (channel, id): its
    /// read position is confirmed once the reply is out, so a crash before that retries it.
    replies: BTreeMap<CallId, (String, String)>,
    dm_channels: HashSet<String>,
    subscribed: HashSet<String>,
    requests_seen: HashSet<String>,
    next_friends_refresh: Option<u64>,
    fatal: Option<String>,
    now_ms: u64,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("gateway", &self.gateway).field("turns", &self.turns.len()).finish_non_exhaustive()
    }
}

impl Bridge {
    /// A bridge for this configuration.
    pub fn new(config: BridgeConfig) -> Result<Self> {
        let mut chats = ChatsClient::new(config.chats)?;
        // A message's read position is saved only once its turn is over (see `react`).
        chats.set_realtime_config(crate::chats::RealtimeConfig { confirm_deliveries: true, ..chats.realtime_config() });
        if let Some(ws) = &config.ws_base {
            chats.set_ws_base(ws)?;
        }
        Ok(Self {
            chats,
            gateway: GatewayClient::new(config.gateway)?,
            auto_subscribe_dms: config.auto_subscribe_dms,
            server_ids: config.server_ids,
            server_channels: config.server_channels,
            friends_refresh_ms: config.friends_refresh_ms.max(10_000),
            out: Outbox::default(),
            ids: Relabel::default(),
            set_up: false,
            calls: BTreeMap::new(),
            turns: BTreeMap::new(),
            replies: BTreeMap::new(),
            dm_channels: HashSet::new(),
            subscribed: HashSet::new(),
            requests_seen: HashSet::new(),
            next_friends_refresh: None,
            fatal: None,
            now_ms: 0,
        })
    }

    /// The MoltChats client inside.
    pub fn chats(&mut self) -> &mut ChatsClient {
        &mut self.chats
    }
    /// The gateway client inside.
    pub fn gateway(&self) -> &GatewayClient {
        &self.gateway
    }
    /// Whether connection `conn` (a bridge id) is the gateway's, not MoltChats'.
    pub fn is_gateway_conn(&self, conn: ConnId) -> bool {
        matches!(self.ids.route(conn), Some((Child::Gateway, _)))
    }
    /// No turn under way, no reply being posted, every read position saved: a host that
    /// stops now neither repeats nor drops a turn (a graceful shutdown can wait for this).
    pub fn is_settled(&self) -> bool {
        self.turns.is_empty() && self.replies.is_empty() && self.chats.is_saved()
    }
    /// Why the bridge cannot go on without the human (auth failed, quarantined, gateway refused us).
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Log in to MoltChats, open its socket, and connect to the gateway.
    pub fn start(&mut self, now_ms: u64) -> Result<()> {
        self.now_ms = now_ms;
        self.chats.login(now_ms)?;
        self.chats.connect(now_ms)?;
        self.gateway.start(now_ms);
        Ok(())
    }

    /// Stops both sides (closes the sockets).
    pub fn stop(&mut self, now_ms: u64) {
        self.chats.disconnect(now_ms);
        self.gateway.stop();
    }

    fn event(&mut self, event: BridgeEvent) {
        self.out.event(ConnectorEvent::Bridge(event));
    }

    fn command(&mut self, command: ChatsCommand, pending: Pending) {
        match self.chats.command(command, self.now_ms) {
            Ok(id) => {
                self.calls.insert(id, pending);
            }
            Err(e) => self.event(BridgeEvent::BridgeWarning { message: format!("cannot send a MoltChats command: {e}") }),
        }
    }

    fn subscribe(&mut self, channels: Vec<String>) -> Vec<String> {
        let fresh: Vec<String> = channels.into_iter().filter(|c| !c.is_empty() && !self.subscribed.contains(c)).collect();
        if fresh.is_empty() {
            return fresh;
        }
        match self.chats.subscribe(&fresh, self.now_ms) {
            Ok(()) => {
                self.subscribed.extend(fresh.iter().cloned());
                fresh
            }
            Err(e) => {
                self.event(BridgeEvent::BridgeWarning { message: format!("cannot subscribe: {e}") });
                vec![]
            }
        }
    }
}

impl Bridge {
    /// A child's output with the bridge's ids; events are reacted to on the way out.
    fn adopt<E>(&mut self, child: Child, output: Output<E>, wrap: fn(E) -> ConnectorEvent) -> Option<Output<ConnectorEvent>> {
        match output {
            Output::Wait { .. } => None,
            Output::Event(event) => {
                let event = wrap(event);
                match &event {
                    ConnectorEvent::Chats(e) => self.on_chats_event(e),
                    ConnectorEvent::Gateway(e) => self.on_gateway_event(e),
                    ConnectorEvent::Bridge(_) => {}
                }
                Some(Output::Event(event))
            }
            other => {
                let out = &mut self.out;
                Some(self.ids.outgoing(child, other.map_event(wrap), || out.next_id()))
            }
        }
    }

    /// The child and its id for an input that may come again (a body chunk).
    fn route(&self, id: u64) -> Result<(Child, u64)> {
        self.ids.route(id).ok_or_else(|| unknown_id(id))
    }

    /// The child and its id for the last input an id sees (a response, an ack).
    fn take(&mut self, id: u64) -> Result<(Child, u64)> {
        self.ids.finish(id).ok_or_else(|| unknown_id(id))
    }
}

fn unknown_id(id: u64) -> Error {
    Error::new(ErrorCode::UnknownId, format!("no request or ticket with id {id} is outstanding"))
}

/// The parent of two clients: it feeds each the inputs for the ids it handed out and drains
/// their outputs into its own (relabelled), so hosts drive it like any client.
impl SansIo for Bridge {
    type Event = ConnectorEvent;

    fn poll_output(&mut self) -> Output<ConnectorEvent> {
        loop {
            if let Some(output) = self.out.pop() {
                return output;
            }
            let chats = self.chats.poll_output();
            let chats_wait = if let Output::Wait { until_ms } = chats { until_ms } else { None };
            if let Some(output) = self.adopt(Child::Chats, chats, ConnectorEvent::Chats) {
                return output;
            }
            let gateway = self.gateway.poll_output();
            let gateway_wait = if let Output::Wait { until_ms } = gateway { until_ms } else { None };
            if let Some(output) = self.adopt(Child::Gateway, gateway, ConnectorEvent::Gateway) {
                return output;
            }
            if !self.out.is_empty() {
                continue;
            }
            self.out.compact();
            let until_ms = [chats_wait, gateway_wait, self.next_friends_refresh].into_iter().flatten().min();
            return Output::Wait { until_ms };
        }
    }
    fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()> {
        self.now_ms = self.now_ms.max(now_ms);
        match self.take(id)? {
            (Child::Chats, id) => self.chats.handle_response(id, response, now_ms),
            (Child::Gateway, id) => self.gateway.handle_response(id, response, now_ms),
        }
    }
    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()> {
        self.now_ms = self.now_ms.max(now_ms);
        match self.take(id)? {
            (Child::Chats, id) => self.chats.handle_transport_error(id, message, now_ms),
            (Child::Gateway, id) => self.gateway.handle_transport_error(id, message, now_ms),
        }
    }
    fn handle_body_chunk(&mut self, id: RequestId, chunk: &[u8], now_ms: u64) -> Result<()> {
        self.now_ms = self.now_ms.max(now_ms);
        match self.route(id)? {
            (Child::Chats, id) => self.chats.handle_body_chunk(id, chunk, now_ms),
            (Child::Gateway, id) => self.gateway.handle_body_chunk(id, chunk, now_ms),
        }
    }
    fn handle_persisted(&mut self, ticket: Ticket, now_ms: u64) -> Result<()> {
        self.now_ms = self.now_ms.max(now_ms);
        match self.take(ticket)? {
            (Child::Chats, ticket) => self.chats.handle_persisted(ticket, now_ms),
            (Child::Gateway, ticket) => self.gateway.handle_persisted(ticket, now_ms),
        }
    }
    fn handle_timeout(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.chats.handle_timeout(now_ms);
        self.gateway.handle_timeout(now_ms);
        if let Some(at) = self.next_friends_refresh
            && now_ms >= at
        {
            self.next_friends_refresh = Some(now_ms + self.friends_refresh_ms);
            if !self.calls.values().any(|p| matches!(p, Pending::Friends)) {
                self.command(ChatsCommand::Friends {}, Pending::Friends);
            }
        }
    }
    fn handle_ws_open(&mut self, conn: ConnId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        match self.ids.route(conn) {
            Some((Child::Chats, conn)) => self.chats.handle_ws_open(conn, now_ms),
            Some((Child::Gateway, conn)) => self.gateway.handle_ws_open(conn, now_ms),
            None => {}
        }
    }
    fn handle_ws_frame(&mut self, conn: ConnId, text: &str, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        match self.ids.route(conn) {
            Some((Child::Chats, conn)) => self.chats.handle_ws_frame(conn, text, now_ms),
            Some((Child::Gateway, conn)) => self.gateway.handle_ws_frame(conn, text, now_ms),
            None => {}
        }
    }
    fn handle_ws_closed(&mut self, conn: ConnId, code: u16, reason: &str, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        match self.ids.finish(conn) {
            Some((Child::Chats, conn)) => self.chats.handle_ws_closed(conn, code, reason, now_ms),
            Some((Child::Gateway, conn)) => self.gateway.handle_ws_closed(conn, code, reason, now_ms),
            None => {}
        }
    }
}
