//! One test driver for every client: a virtual clock, a "disk" and a peer that answers the
//! client's HTTP requests and sockets, so tests, benches and fuzzers share one loop "serve
//! outputs until the client waits" instead of writing it again each time.
//!
//! Compiled for the core's own tests and, with the `testkit` feature, for the integration
//! tests, benches and fuzzers. The peer is a trait the test implements (the core never
//! depends on the sandbox emulator).

use crate::io::{ConnId, Output, RequestId, SansIo, Ticket};

#[cfg(test)]
pub mod sandbox;

/// What the client talks to. Only `http` is required; a socket output on a peer that does not
/// override the socket methods fails the test ("unexpected").
pub trait Peer {
    /// Answer a request; `Err` is a transport error (`handle_transport_error`).
    fn http(&mut self, request: http::Request<Vec<u8>>, now_ms: u64) -> Result<http::Response<Vec<u8>>, String>;

    /// Open socket `conn` to `url`: `Ok(true)` delivers `handle_ws_open` now, `Ok(false)` later
    /// (a `WsIn::Opened` from `ws_poll`, or the test itself), `Err((code, reason))` delivers
    /// `handle_ws_closed` (a refused connection).
    fn ws_open(&mut self, conn: ConnId, url: &str, now_ms: u64) -> Result<bool, (u16, String)> {
        let _ = (url, now_ms);
        panic!("unexpected WsOpen #{conn}: this peer has no sockets")
    }
    /// The client sent a text frame on `conn`.
    fn ws_send(&mut self, conn: ConnId, text: &str, now_ms: u64) {
        let _ = (text, now_ms);
        panic!("unexpected WsSend #{conn}: this peer has no sockets")
    }
    /// The client closed `conn`.
    fn ws_close(&mut self, conn: ConnId, code: u16, reason: &str, now_ms: u64) {
        let _ = (reason, now_ms);
        panic!("unexpected WsClose #{conn} {code}: this peer has no sockets")
    }
    /// What the server sent since the last call; delivered before the next output is polled.
    fn ws_poll(&mut self, now_ms: u64) -> Vec<WsIn> {
        let _ = now_ms;
        Vec::new()
    }
}

/// A server-side happening on a socket, for the client.
#[derive(Debug, Clone, PartialEq)]
pub enum WsIn {
    /// The socket opened.
    Opened(ConnId),
    /// A text frame arrived.
    Frame(ConnId, String),
    /// The socket closed (the peer forgets it; the client gets `handle_ws_closed`).
    Closed(ConnId, u16, String),
}

/// A peer that answers HTTP with a closure and has no sockets.
pub struct HttpFn<F>(pub F);

impl<F> Peer for HttpFn<F>
where
    F: FnMut(http::Request<Vec<u8>>, u64) -> Result<http::Response<Vec<u8>>, String>,
{
    fn http(&mut self, request: http::Request<Vec<u8>>, now_ms: u64) -> Result<http::Response<Vec<u8>>, String> {
        (self.0)(request, now_ms)
    }
}

/// What one output asked of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Performed; poll again.
    Continue,
    /// The client waits, until this deadline if set.
    Wait(Option<u64>),
}

/// Called after each chunk of a streamed body (index, client, now): a test reacts mid-stream.
pub type ChunkHook<C> = Box<dyn FnMut(usize, &mut C, u64)>;

/// A client, its peer and a virtual host around it. Every field is public: tests reach in
/// (swap the client for a restart, inspect the peer, move the clock).
pub struct Driver<C: SansIo, P> {
    /// The client under test.
    pub client: C,
    /// The server side it talks to (e.g. the sandbox).
    pub peer: P,
    /// The virtual clock (Unix ms) passed with every input.
    pub now_ms: u64,
    /// The last bytes the client asked to persist (written before the ack, like a real host).
    pub persisted: Option<Vec<u8>>,
    /// Off for a client that stores nothing: a persist then fails the test.
    pub allow_persists: bool,
    /// Acknowledge persists at once (off: they stay written but unacknowledged, a crash window).
    pub ack_persists: bool,
    /// Tickets written but not acknowledged (when `ack_persists` is off).
    pub unacked: Vec<Ticket>,
    /// Every event the client reported, in order (see `take_events`).
    pub events: Vec<C::Event>,
    /// Feed successful streamed bodies (`stream: true`) through `handle_body_chunk` in chunks
    /// of this size; `None` passes them whole to `handle_response`.
    pub chunk_size: Option<usize>,
    /// Called after each chunk of a streamed body (to inject faults mid-stream).
    pub after_chunk: Option<ChunkHook<C>>,
    /// Virtual time each HTTP request takes (the clock moves before its answer is delivered).
    pub latency_ms: u64,
    /// Record `Debug` of every output and the JSON of every event in `transcript` (secret scans).
    pub record: bool,
    /// What `record` captured.
    pub transcript: Vec<String>,
    /// Panic when the client refuses an input (the default); off, refusals go to `refused`
    /// (fuzzing, fault injection).
    pub strict: bool,
    /// The client's refusals when `strict` is off.
    pub refused: Vec<crate::Error>,
    /// Outputs (and socket deliveries) one `drive` may take before it is called a livelock.
    pub max_steps: usize,
}

impl<C: SansIo, P: Peer> Driver<C, P> {
    /// A driver at virtual time `now_ms`, strict, acknowledging persists.
    pub fn new(client: C, peer: P, now_ms: u64) -> Self {
        Self {
            client,
            peer,
            now_ms,
            persisted: None,
            allow_persists: true,
            ack_persists: true,
            unacked: Vec::new(),
            events: Vec::new(),
            chunk_size: None,
            after_chunk: None,
            latency_ms: 0,
            record: false,
            transcript: Vec::new(),
            strict: true,
            refused: Vec::new(),
            max_steps: 100_000,
        }
    }

    /// Serve outputs (and the peer's socket traffic) until the client waits; returns its
    /// deadline. Panics after `max_steps` without a wait: requests without time passing are a
    /// livelock.
    pub fn drive(&mut self) -> Option<u64> {
        for _ in 0..self.max_steps {
            if self.deliver_ws() {
                continue;
            }
            let output = self.client.poll_output();
            if let Next::Wait(until) = self.perform(output) {
                return until;
            }
        }
        panic!("livelock: the client did not wait within {} steps (at {} ms)", self.max_steps, self.now_ms);
    }

    /// Drive, firing deadlines up to `limit_ms`, until `done` holds; returns whether it did.
    pub fn drive_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            match self.drive() {
                _ if done(self) => return true,
                Some(at) if at <= limit_ms => {
                    self.now_ms = self.now_ms.max(at);
                    self.client.handle_timeout(self.now_ms);
                }
                _ => return false,
            }
        }
    }

    /// Let virtual time pass to `end_ms`, firing every deadline on the way, then a last
    /// timeout at `end_ms`; returns the deadline the client then waits for.
    pub fn advance_to(&mut self, end_ms: u64) -> Option<u64> {
        while let Some(at) = self.drive().filter(|&at| at <= end_ms) {
            self.now_ms = self.now_ms.max(at);
            self.client.handle_timeout(self.now_ms);
        }
        self.now_ms = self.now_ms.max(end_ms);
        self.client.handle_timeout(self.now_ms);
        self.drive()
    }

    /// Moves the clock `ms` forward, firing deadlines on the way (see `advance_to`).
    pub fn advance(&mut self, ms: u64) -> Option<u64> {
        self.advance_to(self.now_ms + ms)
    }

    /// Drive, then jump to the client's next deadline and fire it; `None` if it waits for
    /// nothing. The deadline is returned.
    pub fn wake(&mut self) -> Option<u64> {
        let at = self.drive()?;
        self.now_ms = self.now_ms.max(at);
        self.client.handle_timeout(self.now_ms);
        Some(at)
    }

    /// The events so far, emptying the list.
    pub fn take_events(&mut self) -> Vec<C::Event> {
        std::mem::take(&mut self.events)
    }

    /// Perform one output against the peer (for loops that handle some outputs themselves).
    pub fn perform(&mut self, output: Output<C::Event>) -> Next {
        if self.record {
            self.transcript.push(format!("{output:?}"));
        }
        let now = self.now_ms;
        match output {
            Output::Http { id, request, stream } => {
                self.now_ms += self.latency_ms;
                match self.peer.http(*request, self.now_ms) {
                    Ok(response) => self.respond(id, response, stream),
                    Err(message) => {
                        let result = self.client.handle_transport_error(id, &message, self.now_ms);
                        self.check("handle_transport_error", id, result);
                    }
                }
            }
            Output::Persist { ticket, bytes } => {
                assert!(self.allow_persists, "unexpected Persist #{ticket}: this client persists nothing");
                self.persisted = Some(bytes.expose().clone());
                if self.ack_persists {
                    let result = self.client.handle_persisted(ticket, now);
                    self.check("handle_persisted", ticket, result);
                } else {
                    self.unacked.push(ticket);
                }
            }
            Output::Event(event) => {
                if self.record {
                    self.transcript.push(serde_json::to_string(&event).expect("events serialise"));
                }
                self.events.push(event);
            }
            Output::Wait { until_ms } => return Next::Wait(until_ms),
            Output::WsOpen { conn, url } => match self.peer.ws_open(conn, url.expose(), now) {
                Ok(true) => self.client.handle_ws_open(conn, now),
                Ok(false) => {}
                Err((code, reason)) => self.client.handle_ws_closed(conn, code, &reason, now),
            },
            Output::WsSend { conn, text } => self.peer.ws_send(conn, &text, now),
            Output::WsClose { conn, code, reason } => self.peer.ws_close(conn, code, &reason, now),
        }
        Next::Continue
    }

    /// Acknowledge the persists held back while `ack_persists` was off.
    pub fn ack_persisted(&mut self) {
        for ticket in std::mem::take(&mut self.unacked) {
            let result = self.client.handle_persisted(ticket, self.now_ms);
            self.check("handle_persisted", ticket, result);
        }
    }

    /// Deliver what the peer's sockets received; whether there was anything.
    pub fn deliver_ws(&mut self) -> bool {
        let incoming = self.peer.ws_poll(self.now_ms);
        let any = !incoming.is_empty();
        for input in incoming {
            match input {
                WsIn::Opened(conn) => self.client.handle_ws_open(conn, self.now_ms),
                WsIn::Frame(conn, text) => self.client.handle_ws_frame(conn, &text, self.now_ms),
                WsIn::Closed(conn, code, reason) => self.client.handle_ws_closed(conn, code, &reason, self.now_ms),
            }
        }
        any
    }

    fn respond(&mut self, id: RequestId, response: http::Response<Vec<u8>>, stream: bool) {
        let now = self.now_ms;
        let result = match self.chunk_size.filter(|_| stream && response.status().is_success()) {
            Some(size) => {
                let (parts, body) = response.into_parts();
                for (i, chunk) in body.chunks(size.max(1)).enumerate() {
                    let result = self.client.handle_body_chunk(id, chunk, now);
                    self.check("handle_body_chunk", id, result);
                    if let Some(hook) = &mut self.after_chunk {
                        hook(i, &mut self.client, now);
                    }
                }
                self.client.handle_response(id, http::Response::from_parts(parts, Vec::new()), now)
            }
            None => self.client.handle_response(id, response, now),
        };
        self.check("handle_response", id, result);
    }

    fn check(&mut self, input: &str, id: u64, result: crate::error::Result<()>) {
        if let Err(error) = result {
            if self.strict {
                panic!("{input} #{id} refused: {error}");
            }
            self.refused.push(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Outbox, Secret};

    /// A client that asks for one streamed request per `handle_timeout` and otherwise waits
    /// `period` ms, or (with `spin`) never waits.
    #[derive(Default)]
    struct Ticker {
        out: Outbox<String>,
        spin: bool,
        period: u64,
        timeouts: Vec<u64>,
        chunks: Vec<usize>,
    }

    impl SansIo for Ticker {
        type Event = String;
        fn poll_output(&mut self) -> Output<String> {
            if self.spin {
                return Output::Event("again".into());
            }
            self.out.pop().unwrap_or(Output::Wait { until_ms: self.timeouts.last().map(|t| t + self.period) })
        }
        fn handle_response(&mut self, _: RequestId, response: http::Response<Vec<u8>>, _: u64) -> crate::error::Result<()> {
            self.out.event(format!("{} {}", response.status().as_u16(), response.body().len()));
            Ok(())
        }
        fn handle_transport_error(&mut self, id: RequestId, _: &str, _: u64) -> crate::error::Result<()> {
            Err(crate::io::unknown("request", id, "ticker"))
        }
        fn handle_body_chunk(&mut self, _: RequestId, chunk: &[u8], _: u64) -> crate::error::Result<()> {
            self.chunks.push(chunk.len());
            Ok(())
        }
        fn handle_persisted(&mut self, _: Ticket, _: u64) -> crate::error::Result<()> {
            Ok(())
        }
        fn handle_timeout(&mut self, now_ms: u64) {
            self.timeouts.push(now_ms);
            self.out.http_streamed(http::Request::new(Vec::new()));
            self.out.persist(Secret::new(now_ms.to_string().into_bytes()));
        }
        fn handle_ws_open(&mut self, _: ConnId, _: u64) {}
        fn handle_ws_frame(&mut self, _: ConnId, _: &str, _: u64) {}
        fn handle_ws_closed(&mut self, _: ConnId, _: u16, _: &str, _: u64) {}
    }

    fn ok_body(n: usize) -> impl Peer {
        HttpFn(move |_: http::Request<Vec<u8>>, _: u64| -> Result<http::Response<Vec<u8>>, String> { Ok(http::Response::new(vec![7u8; n])) })
    }

    #[test]
    fn advance_fires_every_deadline_on_the_way() {
        let mut d = Driver::new(Ticker { period: 300, ..Default::default() }, ok_body(3), 1_000);
        d.client.handle_timeout(1_000);
        assert_eq!(d.advance(1_000), Some(2_300));
        assert_eq!(d.client.timeouts, [1_000, 1_300, 1_600, 1_900, 2_000]);
        assert_eq!(d.now_ms, 2_000);
        assert_eq!(d.persisted.as_deref(), Some(&b"2000"[..]));
        assert_eq!(d.take_events(), vec!["200 3"; 5]);
    }

    #[test]
    fn streamed_bodies_arrive_in_chunks_and_hooks_see_each() {
        let mut d = Driver::new(Ticker::default(), ok_body(10), 0);
        d.chunk_size = Some(4);
        d.after_chunk = Some(Box::new(|i, c: &mut Ticker, _| c.out.event(format!("after {i}"))));
        d.client.handle_timeout(0);
        d.drive();
        assert_eq!(d.client.chunks, [4, 4, 2]);
        assert_eq!(d.events, ["after 0", "after 1", "after 2", "200 0"]);
    }

    #[test]
    #[should_panic(expected = "livelock")]
    fn a_client_that_never_waits_is_a_livelock() {
        let mut d = Driver::new(Ticker { spin: true, ..Default::default() }, ok_body(0), 0);
        d.max_steps = 50;
        d.drive();
    }

    #[test]
    fn refused_inputs_panic_unless_lenient() {
        let failing = || HttpFn(|_: http::Request<Vec<u8>>, _: u64| -> Result<http::Response<Vec<u8>>, String> { Err("down".to_owned()) });
        let mut d = Driver::new(Ticker::default(), failing(), 0);
        d.strict = false;
        d.client.handle_timeout(0);
        d.drive();
        assert_eq!(d.refused.len(), 1);
        let strict = std::panic::catch_unwind(|| {
            let mut d = Driver::new(Ticker::default(), failing(), 0);
            d.client.handle_timeout(0);
            d.drive();
        });
        assert!(strict.is_err());
    }
}
