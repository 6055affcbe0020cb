//! The input/output vocabulary shared by every state machine in the core.
//!
//! Outputs are pulled with `poll_output()`: an HTTP request to perform, bytes to persist,
//! an event for the agent, or `Wait` ("nothing now, wake me at `until_ms`").

mod api_error;
mod backoff;
pub mod base_url;
mod call;
pub mod jwt;
mod relabel;
mod rng;
mod sans_io;
mod secret;
mod untrusted;

pub use api_error::ApiError;
pub use backoff::{Backoff, unit_random};
pub use call::CallEvent;
pub use relabel::Relabel;
pub use rng::SeededRng;
pub use sans_io::{SansIo, unknown};
pub use secret::Secret;
pub use untrusted::Untrusted;

use serde::Serialize;

/// Identifies one HTTP request the host must perform and answer with `handle_response`.
pub type RequestId = u64;
/// Identifies one persist request the host must store durably and acknowledge.
pub type Ticket = u64;
/// Identifies one command whose result arrives later as an event.
pub type CallId = u64;
/// Identifies one WebSocket connection the host opened for the core.
pub type ConnId = u64;

/// Largest response body the core accepts; bigger bodies are treated as a failed response.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// What the core asks the host to do next. `E` is the client's own event type.
pub enum Output<E> {
    /// Perform this HTTP request, then call `handle_response(id, …)` or `handle_transport_error(id, …)`.
    /// With `stream`, pass the body as it arrives to `handle_body_chunk(id, …)` and finish with
    /// `handle_response` carrying an empty body (a host that cannot stream may pass it whole).
    Http {
        /// Id to answer with; unique among this client's requests.
        id: RequestId,
        /// The request to send as is (its `authorization` header is a secret). Boxed: a request
        /// is 248 bytes, and every queued output (events included) would be that large.
        request: Box<http::Request<Vec<u8>>>,
        /// True when the body should be fed to `handle_body_chunk` as it arrives.
        stream: bool,
    },
    /// Store `bytes` durably (atomically, owner-only), then call `handle_persisted(ticket)`.
    /// The core does not rely on what it asked to persist until the host acknowledges.
    Persist {
        /// Id to acknowledge with `handle_persisted`.
        ticket: Ticket,
        /// The bytes to store, replacing what was stored before (hold keys and tokens: never log them).
        bytes: Secret<Vec<u8>>,
    },
    /// Something the agent should know.
    Event(E),
    /// Nothing to do now; call `handle_timeout` at `until_ms` (Unix ms) if it is set.
    Wait {
        /// Next deadline (Unix ms); absent: wait for an input or a command.
        until_ms: Option<u64>,
    },
    /// Open a WebSocket to `url` (its query carries the access token: never log it), then call
    /// `handle_ws_open(conn)`, `handle_ws_frame(conn, text)` per text frame, and
    /// `handle_ws_closed(conn, code, reason)` when it closes or fails (code 1006 if unknown).
    WsOpen {
        /// Id the core gave this connection; every later call about it uses it.
        conn: ConnId,
        /// The `ws://` / `wss://` URL to open (carries the access token).
        url: Secret<String>,
    },
    /// Send this text frame on connection `conn`.
    WsSend {
        /// Connection to send on.
        conn: ConnId,
        /// The frame's text (JSON built by the core).
        text: String,
    },
    /// Close connection `conn` with this code; no `handle_ws_closed` is needed afterwards.
    WsClose {
        /// Connection to close.
        conn: ConnId,
        /// WebSocket close code to send.
        code: u16,
        /// Close reason to send (short text written by the core).
        reason: String,
    },
}

/// Bodies are left out: they carry tokens and keys.
impl<E: std::fmt::Debug> std::fmt::Debug for Output<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Http { id, request, stream } => {
                write!(f, "Http #{id} {} {}{}", request.method(), request.uri(), if *stream { " (stream)" } else { "" })
            }
            Output::Persist { ticket, bytes } => write!(f, "Persist #{ticket} ({} bytes)", bytes.expose().len()),
            Output::Event(event) => write!(f, "Event {event:?}"),
            Output::Wait { until_ms } => write!(f, "Wait {until_ms:?}"),
            Output::WsOpen { conn, .. } => write!(f, "WsOpen #{conn}"),
            Output::WsSend { conn, text } => write!(f, "WsSend #{conn} ({} bytes)", text.len()),
            Output::WsClose { conn, code, reason } => write!(f, "WsClose #{conn} {code} {reason}"),
        }
    }
}

/// The queue of outputs and the one id counter of a client: every request, ticket and
/// connection id of the client and of its sub-machines comes from here, so ids never collide.
pub struct Outbox<E> {
    queue: std::collections::VecDeque<Output<E>>,
    next_id: u64,
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Self { queue: Default::default(), next_id: 0 }
    }
}

impl<E> std::fmt::Debug for Outbox<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outbox({} queued)", self.queue.len())
    }
}

impl<E> Outbox<E> {
    /// A fresh id from the client's one counter (requests, tickets, connections, calls).
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
    /// Queue an HTTP request and return the id its response must carry.
    pub fn http(&mut self, request: http::Request<Vec<u8>>) -> RequestId {
        let id = self.next_id();
        self.queue.push_back(Output::Http { id, request: Box::new(request), stream: false });
        id
    }
    /// Queue an HTTP request whose body the client wants as it streams in.
    pub fn http_streamed(&mut self, request: http::Request<Vec<u8>>) -> RequestId {
        let id = self.next_id();
        self.queue.push_back(Output::Http { id, request: Box::new(request), stream: true });
        id
    }
    /// Queue bytes to persist and return the ticket the host acknowledges.
    pub fn persist(&mut self, bytes: Secret<Vec<u8>>) -> Ticket {
        let ticket = self.next_id();
        self.queue.push_back(Output::Persist { ticket, bytes });
        ticket
    }
    /// Queue an event; a sub-machine's own event type converts into the client's.
    pub fn event(&mut self, event: impl Into<E>) {
        self.queue.push_back(Output::Event(event.into()));
    }
    /// Queue a WebSocket open and return the connection id its inputs must carry.
    pub fn ws_open(&mut self, url: Secret<String>) -> ConnId {
        let conn = self.next_id();
        self.queue.push_back(Output::WsOpen { conn, url });
        conn
    }
    /// Queues a text frame for connection `conn`.
    pub fn ws_send(&mut self, conn: ConnId, text: String) {
        self.queue.push_back(Output::WsSend { conn, text });
    }
    /// Queues a close of connection `conn`.
    pub fn ws_close(&mut self, conn: ConnId, code: u16, reason: &str) {
        self.queue.push_back(Output::WsClose { conn, code, reason: reason.to_owned() });
    }
    /// Queue an output as it is (a composed client forwarding its child's, relabelled).
    pub fn push(&mut self, output: Output<E>) {
        self.queue.push_back(output);
    }
    /// The oldest queued output.
    pub fn pop(&mut self) -> Option<Output<E>> {
        self.queue.pop_front()
    }
    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
    /// Give back the queue's memory once drained (an output is ~360 bytes; a login burst
    /// leaves room for several), so an idle client stays small.
    pub fn compact(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = Default::default();
        }
    }
}

/// Build a JSON request. `bearer` is marked sensitive so `Debug` of the headers hides it.
pub fn json_request(
    method: http::Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<http::Request<Vec<u8>>, crate::Error> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| crate::Error::invalid_argument("token contains characters not allowed in a header"))?;
        value.set_sensitive(true);
        builder = builder.header(http::header::AUTHORIZATION, value);
    }
    let bytes = match body {
        Some(value) => {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            serde_json::to_vec(value).expect("JSON value serialises")
        }
        None => Vec::new(),
    };
    builder.body(bytes).map_err(|_| crate::Error::invalid_argument(format!("invalid request URL: {url}")))
}

/// Parse a response body as JSON: `Null` for an empty body, an error (without echoing the
/// body) for anything that is not JSON or is too large.
pub fn parse_json_body(response: &http::Response<Vec<u8>>) -> Result<serde_json::Value, ApiError> {
    let status = response.status().as_u16();
    let body = response.body();
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(ApiError { status, code: None, message: format!("response body of {} bytes is over the {} byte limit", body.len(), MAX_RESPONSE_BYTES) });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(body).map_err(|_| {
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        ApiError {
            status,
            code: None,
            message: format!("{} (content-type {content_type})", api_error::describe_unparsed(status, body)),
        }
    })
}

/// A response's outcome: `(status, JSON body)` on 2xx, else the service's error parsed by
/// `parse_error` (each platform has its own error shape). Transport failures pass through.
pub fn json_outcome(
    result: Result<http::Response<Vec<u8>>, ApiError>,
    parse_error: fn(u16, &[u8]) -> ApiError,
) -> Result<(u16, serde_json::Value), ApiError> {
    let response = result?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        parse_json_body(&response).map(|body| (status, body))
    } else {
        Err(parse_error(status, response.body()))
    }
}

/// A flat, serialisable description of an output's metadata for adapters (C ABI, bindings).
/// Bodies and persisted bytes travel separately as raw bytes.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputMeta<'a, E> {
    /// `stream`: the host should pass the body to `handle_body_chunk` as it arrives.
    Http {
        /// Id to answer with.
        id: RequestId,
        /// HTTP method (`GET`, `POST`…).
        method: &'a str,
        /// Full request URL.
        url: String,
        /// Header names and values in order (non-text values as ""; may include `authorization`).
        headers: Vec<(&'a str, &'a str)>,
        /// True when the body should be fed to `handle_body_chunk` as it arrives.
        stream: bool,
    },
    /// See [`Output::Persist`]; the bytes are the output's body.
    Persist {
        /// Id to acknowledge with `handle_persisted`.
        ticket: Ticket,
    },
    /// See [`Output::Event`].
    Event {
        /// The client's event.
        event: &'a E,
    },
    /// See [`Output::Wait`].
    Wait {
        /// Next deadline (Unix ms); absent: wait for an input or a command.
        until_ms: Option<u64>,
    },
    /// `url` carries the access token: treat it like the HTTP `authorization` header.
    WsOpen {
        /// Id the core gave this connection.
        conn: ConnId,
        /// The `ws://` / `wss://` URL to open (secret).
        url: &'a str,
    },
    /// The frame's text is the output's body.
    WsSend {
        /// Connection to send on.
        conn: ConnId,
    },
    /// See [`Output::WsClose`].
    WsClose {
        /// Connection to close.
        conn: ConnId,
        /// WebSocket close code to send.
        code: u16,
        /// Close reason to send.
        reason: &'a str,
    },
}

impl<E> Output<E> {
    /// Numeric kind shared with the C ABI and WIT: 0 wait, 1 http, 2 persist, 3 event,
    /// 4 ws-open, 5 ws-send, 6 ws-close.
    pub fn kind_code(&self) -> u32 {
        match self {
            Output::Wait { .. } => 0,
            Output::Http { .. } => 1,
            Output::Persist { .. } => 2,
            Output::Event(_) => 3,
            Output::WsOpen { .. } => 4,
            Output::WsSend { .. } => 5,
            Output::WsClose { .. } => 6,
        }
    }

    /// The output without its body, for adapters that pass the body separately.
    pub fn meta(&self) -> OutputMeta<'_, E> {
        match self {
            Output::Http { id, request, stream } => OutputMeta::Http {
                id: *id,
                method: request.method().as_str(),
                url: request.uri().to_string(),
                headers: request
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
                    .collect(),
                stream: *stream,
            },
            Output::Persist { ticket, .. } => OutputMeta::Persist { ticket: *ticket },
            Output::Event(event) => OutputMeta::Event { event },
            Output::Wait { until_ms } => OutputMeta::Wait { until_ms: *until_ms },
            Output::WsOpen { conn, url } => OutputMeta::WsOpen { conn: *conn, url: url.expose() },
            Output::WsSend { conn, .. } => OutputMeta::WsSend { conn: *conn },
            Output::WsClose { conn, code, reason } => OutputMeta::WsClose { conn: *conn, code: *code, reason },
        }
    }

    /// The metadata as JSON. For HTTP it includes the `authorization` header the host must
    /// send: treat it like the body (never log it).
    pub fn meta_json(&self) -> String
    where
        E: Serialize,
    {
        serde_json::to_string(&self.meta()).expect("output metadata serialises")
    }

    /// The same output with another event type (a parent wrapping its child's events).
    pub fn map_event<F>(self, f: impl FnOnce(E) -> F) -> Output<F> {
        match self {
            Output::Http { id, request, stream } => Output::Http { id, request, stream },
            Output::Persist { ticket, bytes } => Output::Persist { ticket, bytes },
            Output::Event(event) => Output::Event(f(event)),
            Output::Wait { until_ms } => Output::Wait { until_ms },
            Output::WsOpen { conn, url } => Output::WsOpen { conn, url },
            Output::WsSend { conn, text } => Output::WsSend { conn, text },
            Output::WsClose { conn, code, reason } => Output::WsClose { conn, code, reason },
        }
    }

    /// The raw bytes that go with the output: request body or bytes to persist.
    pub fn body(&self) -> &[u8] {
        match self {
            Output::Http { request, .. } => request.body(),
            Output::Persist { bytes, .. } => bytes.expose(),
            Output::WsSend { text, .. } => text.as_bytes(),
            Output::Event(_) | Output::Wait { .. } | Output::WsOpen { .. } | Output::WsClose { .. } => &[],
        }
    }
}

/// Build an `http::Response` from the parts an adapter receives from its host.
pub fn response_from_parts(
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<http::Response<Vec<u8>>, crate::Error> {
    let mut builder = http::Response::builder().status(
        http::StatusCode::from_u16(status)
            .map_err(|_| crate::Error::invalid_argument(format!("invalid HTTP status {status}")))?,
    );
    for (name, value) in headers {
        // A header the http crate rejects is dropped rather than failing the whole response.
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            builder = builder.header(n, v);
        }
    }
    builder
        .body(body)
        .map_err(|e| crate::Error::invalid_argument(format!("invalid response: {e}")))
}
