//! The one driving interface every client implements (chats, dm, spaces, the gateway client,
//! the bridge), so hosts, adapters and tests drive any of them with one loop.

use super::{ConnId, Output, RequestId, Ticket};
use crate::error::Result;

/// Inputs go in through `handle_*`, outputs come out of `poll_output` until it answers
/// [`Output::Wait`]. Time is an argument; the client never reads a clock.
pub trait SansIo {
    /// What the client tells the agent; adapters serialise it as JSON (`{"type": …}`).
    type Event: serde::Serialize + std::fmt::Debug;

    /// The next output; [`Output::Wait`] when there is nothing to do.
    fn poll_output(&mut self) -> Output<Self::Event>;
    /// The response to request `id`. For a request marked `stream`, the body may instead
    /// arrive through `handle_body_chunk`, then this call carries an empty body.
    fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()>;
    /// The request could not be performed (connection refused, TLS, timeout…).
    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()>;
    /// Part of the body of a request marked `stream`, as it arrives.
    fn handle_body_chunk(&mut self, id: RequestId, chunk: &[u8], now_ms: u64) -> Result<()>;
    /// The host stored what `Output::Persist { ticket, .. }` asked for.
    fn handle_persisted(&mut self, ticket: Ticket, now_ms: u64) -> Result<()>;
    /// Time passed: call at the `until_ms` of the last [`Output::Wait`].
    fn handle_timeout(&mut self, now_ms: u64);
    /// The WebSocket `conn` opened.
    fn handle_ws_open(&mut self, conn: ConnId, now_ms: u64);
    /// A text frame arrived on `conn`.
    fn handle_ws_frame(&mut self, conn: ConnId, text: &str, now_ms: u64);
    /// `conn` closed or failed to open (1006 when the code is unknown).
    fn handle_ws_closed(&mut self, conn: ConnId, code: u16, reason: &str, now_ms: u64);
}

/// The error a client answers for an input it never asked for (a ticket, a stream, a socket
/// it does not use): the host's mistake, reported, never a panic.
pub fn unknown(what: &str, id: u64, client: &str) -> crate::Error {
    crate::Error::new(crate::ErrorCode::UnknownId, format!("no {what} with id {id}: the {client} client has none"))
}
