//! WIT component adapter (`wit/`, world `moltlink:core/moltlink`): translation only.
//!
//! Every export maps its arguments onto [`crate::ChatsClient`] and its results back; no
//! logic lives here. A component cannot catch a panic (wasm32-wasip2 aborts, which traps and
//! kills the instance), so every path here is written not to panic on any input: malformed
//! arguments become `error { code: invalid-argument }`, and `pump` never holds the client
//! borrowed while it calls into the host, so a (forbidden) re-entrant call cannot trip the
//! `RefCell`.

/// The inputs and outputs every driven resource shares, forwarded to its [`Driven`] (`inner`).
/// `persisted` adds `handle-persisted` for resources whose WIT has it.
macro_rules! driven_resource_io {
    () => {
        fn handle_response(&self, id: u64, response: HttpResponse, now_ms: u64) -> Res<()> {
            self.inner.handle_response(id, response, now_ms)
        }
        fn handle_transport_error(&self, id: u64, message: String, now_ms: u64) -> Res<()> {
            self.inner.handle_transport_error(id, message, now_ms)
        }
        fn handle_timeout(&self, now_ms: u64) {
            self.inner.handle_timeout(now_ms)
        }
        fn poll_output(&self) -> WitOutput {
            self.inner.poll_output()
        }
        fn pump(&self) -> Option<u64> {
            self.inner.pump()
        }
    };
    (persisted) => {
        driven_resource_io!();
        fn handle_persisted(&self, ticket: u64, now_ms: u64) -> Res<()> {
            self.inner.handle_persisted(ticket, now_ms)
        }
    };
}

mod dm;
mod audio;
mod spaces;
mod prompt;

use std::cell::RefCell;

use crate::io::{Output, SansIo};
use crate::{ChatsClient, ChatsConfig};

wit_bindgen::generate!({
    path: "wit",
    world: "moltlink",
});

use exports::moltlink::core::chats::{Guest, GuestClient};
use moltlink::core::host;
use moltlink::core::types::{
    Error as WitError, ErrorCode as WitCode, HttpRequest, HttpResponse, Output as WitOutput, PersistRequest,
    WsCloseRequest, WsOpenRequest, WsSendRequest,
};

struct Component;

export!(Component);

impl Guest for Component {
    type Client = Client;
}

/// The resource `client`: one core client, borrowed per call (components are single-threaded).
pub struct Client {
    inner: Driven<ChatsClient>,
}

/// One core client behind a `RefCell`, with the inputs and outputs every resource shares.
/// A re-entrant call from a host callback finds it borrowed and gets an error, never a trap.
pub(crate) struct Driven<C>(RefCell<C>);

impl<C: SansIo> Driven<C> {
    pub(crate) fn new(client: C) -> Self {
        Self(RefCell::new(client))
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut C) -> crate::error::Result<T>) -> Res<T> {
        match self.0.try_borrow_mut() {
            Ok(mut client) => f(&mut client).map_err(err),
            Err(_) => Err(err(crate::Error::invalid_state("client is busy (re-entrant call from a host callback)"))),
        }
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&C) -> T) -> Option<T> {
        self.0.try_borrow().ok().map(|c| f(&c))
    }

    pub(crate) fn handle_response(&self, id: u64, response: HttpResponse, now_ms: u64) -> Res<()> {
        let response =
            crate::io::response_from_parts(response.status, &response.headers, response.body).map_err(err)?;
        self.with(|c| c.handle_response(id, response, now_ms))
    }

    pub(crate) fn handle_transport_error(&self, id: u64, message: String, now_ms: u64) -> Res<()> {
        self.with(|c| c.handle_transport_error(id, &message, now_ms))
    }

    pub(crate) fn handle_timeout(&self, now_ms: u64) {
        // Only fails when re-entered from a host callback; nothing to report then.
        let _ = self.with(|c| {
            c.handle_timeout(now_ms);
            Ok(())
        });
    }

    pub(crate) fn handle_persisted(&self, ticket: u64, now_ms: u64) -> Res<()> {
        self.with(|c| c.handle_persisted(ticket, now_ms))
    }

    pub(crate) fn poll_output(&self) -> WitOutput {
        match self.0.try_borrow_mut() {
            Ok(mut client) => output(client.poll_output()),
            Err(_) => WitOutput::Wait(None),
        }
    }

    pub(crate) fn pump(&self) -> Option<u64> {
        loop {
            // The borrow ends before the host is called.
            match self.poll_output() {
                WitOutput::Wait(until_ms) => return until_ms,
                WitOutput::Http(request) => host::send_http(&request),
                WitOutput::Persist(p) => host::persist(p.ticket, &p.bytes),
                WitOutput::Event(json) => host::emit_event(&json),
                WitOutput::WsOpen(r) => host::ws_open(&r),
                WitOutput::WsSend(r) => host::ws_send(&r),
                WitOutput::WsClose(r) => host::ws_close(&r),
            }
        }
    }
}

pub(crate) type Res<T> = Result<T, WitError>;

fn code(code: crate::ErrorCode) -> WitCode {
    use crate::ErrorCode as C;
    match code {
        C::Ok => WitCode::Ok,
        C::InvalidArgument => WitCode::InvalidArgument,
        C::NullPointer => WitCode::NullPointer,
        C::InvalidUtf8 => WitCode::InvalidUtf8,
        C::BufferTooSmall => WitCode::BufferTooSmall,
        C::InvalidCredentials => WitCode::InvalidCredentials,
        C::UnknownId => WitCode::UnknownId,
        C::AlreadyRegistered => WitCode::AlreadyRegistered,
        C::NotRegistered => WitCode::NotRegistered,
        C::InvalidState => WitCode::InvalidState,
        C::Panic => WitCode::Panic,
        C::NoOutput => WitCode::NoOutput,
        C::Crypto => WitCode::Crypto,
    }
}

pub(crate) fn err(e: crate::Error) -> WitError {
    WitError { code: code(e.code), message: e.message }
}

pub(crate) fn invalid(message: impl Into<String>) -> WitError {
    err(crate::Error::invalid_argument(message))
}

/// Translate one core output; bodies and persisted bytes are moved, not re-encoded.
fn output<E: serde::Serialize>(out: Output<E>) -> WitOutput {
    match out {
        Output::Wait { until_ms } => WitOutput::Wait(until_ms),
        Output::Http { id, request, stream } => {
            let (parts, body) = request.into_parts();
            WitOutput::Http(HttpRequest {
                id,
                method: parts.method.as_str().to_owned(),
                url: parts.uri.to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect(),
                body,
                stream,
            })
        }
        Output::Persist { ticket, bytes } => {
            WitOutput::Persist(PersistRequest { ticket, bytes: bytes.expose().clone() })
        }
        // Serialising an `Event` (strings, numbers, a JSON value) cannot fail; an empty
        // object is a non-panicking fallback all the same.
        Output::Event(event) => WitOutput::Event(serde_json::to_string(&event).unwrap_or_else(|_| "{}".into())),
        Output::WsOpen { conn, url } => WitOutput::WsOpen(WsOpenRequest { conn, url: url.expose().clone() }),
        Output::WsSend { conn, text } => WitOutput::WsSend(WsSendRequest { conn, text }),
        Output::WsClose { conn, code, reason } => WitOutput::WsClose(WsCloseRequest { conn, code, reason }),
    }
}

impl GuestClient for Client {
    fn open(
        api_base: Option<String>,
        credentials: Option<Vec<u8>>,
        seed: Vec<u8>,
    ) -> Res<exports::moltlink::core::chats::Client> {
        let seed: [u8; 32] =
            seed.as_slice().try_into().map_err(|_| invalid(format!("seed must be 32 bytes, got {}", seed.len())))?;
        let config = ChatsConfig { api_base, credentials, seed, refresh: Default::default() };
        let client = ChatsClient::new(config).map_err(err)?;
        Ok(exports::moltlink::core::chats::Client::new(Client { inner: Driven::new(client) }))
    }

    fn register(&self, username: String, now_ms: u64) -> Res<()> {
        self.inner.with(|c| c.register(&username, now_ms))
    }

    fn login(&self, now_ms: u64) -> Res<()> {
        self.inner.with(|c| c.login(now_ms))
    }

    fn refresh(&self, now_ms: u64) -> Res<()> {
        self.inner.with(|c| c.refresh(now_ms))
    }

    fn whoami(&self, now_ms: u64) -> Res<u64> {
        self.inner.with(|c| c.whoami(now_ms))
    }

    fn call(&self, method: String, path: String, body_json: Option<String>, now_ms: u64) -> Res<u64> {
        let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| invalid("invalid HTTP method"))?;
        let body = match body_json {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| invalid(format!("body is not JSON: {e}")))?),
            None => None,
        };
        self.inner.with(|c| c.call(method, &path, body, now_ms))
    }

    fn command(&self, json: String, now_ms: u64) -> Res<u64> {
        self.inner.with(|c| c.command_json(&json, now_ms))
    }

    fn queue_state(&self, now_ms: u64) -> String {
        // Serialising plain numbers and strings cannot fail; "{}" is a non-trapping fallback.
        self.inner.with(|c| Ok(serde_json::to_string(&c.queue_state(now_ms)).unwrap_or_else(|_| "{}".into())))
            .unwrap_or_else(|_| "{}".into())
    }

    fn set_ws_base(&self, url: String) -> Res<()> {
        self.inner.with(|c| c.set_ws_base(&url))
    }
    fn connect(&self, now_ms: u64) -> Res<()> {
        self.inner.with(|c| c.connect(now_ms))
    }
    fn disconnect(&self, now_ms: u64) {
        let _ = self.inner.with(|c| Ok(c.disconnect(now_ms)));
    }
    fn subscribe(&self, channels: Vec<String>, now_ms: u64) -> Res<()> {
        self.inner.with(|c| c.subscribe(&channels, now_ms))
    }
    fn unsubscribe(&self, channels: Vec<String>, now_ms: u64) {
        let _ = self.inner.with(|c| Ok(c.unsubscribe(&channels, now_ms)));
    }
    fn send_message(&self, channel: String, content: String, content_type: Option<String>, now_ms: u64) -> Res<u64> {
        self.inner.with(|c| c.send_message(&channel, &content, content_type.as_deref(), now_ms))
    }
    fn typing(&self, channel: String, now_ms: u64) {
        let _ = self.inner.with(|c| Ok(c.typing(&channel, now_ms)));
    }
    fn handle_ws_open(&self, conn: u64, now_ms: u64) {
        let _ = self.inner.with(|c| Ok(c.handle_ws_open(conn, now_ms)));
    }
    fn handle_ws_frame(&self, conn: u64, text: String, now_ms: u64) {
        let _ = self.inner.with(|c| Ok(c.handle_ws_frame(conn, &text, now_ms)));
    }
    fn handle_ws_closed(&self, conn: u64, code: u16, reason: String, now_ms: u64) {
        let _ = self.inner.with(|c| Ok(c.handle_ws_closed(conn, code, &reason, now_ms)));
    }

    driven_resource_io!(persisted);

    fn agent_id(&self) -> Option<String> {
        self.inner.read(|c| c.agent_id().map(str::to_owned)).flatten()
    }

    fn is_authenticated(&self, now_ms: u64) -> bool {
        self.inner.read(|c| c.is_authenticated(now_ms)).unwrap_or(false)
    }
}
