//! The input/output surface every client shares, so hosts and adapters drive any of them
//! with one loop (the CLI host, the C ABI's poll/pump, the component's resources).

use super::{Output, RequestId, Ticket};
use crate::error::Result;

pub trait SansIo {
    fn poll_output(&mut self) -> Output;
    fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()>;
    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()>;
    fn handle_timeout(&mut self, now_ms: u64);
    /// Clients that never ask to persist answer `UnknownId`.
    fn handle_persisted(&mut self, ticket: Ticket, now_ms: u64) -> Result<()>;
    /// WebSocket inputs; clients that never open a socket ignore them.
    fn handle_ws_open(&mut self, _conn: crate::io::ConnId, _now_ms: u64) {}
    fn handle_ws_frame(&mut self, _conn: crate::io::ConnId, _text: &str, _now_ms: u64) {}
    fn handle_ws_closed(&mut self, _conn: crate::io::ConnId, _code: u16, _reason: &str, _now_ms: u64) {}
}

impl SansIo for crate::ChatsClient {
    fn poll_output(&mut self) -> Output {
        crate::ChatsClient::poll_output(self)
    }
    fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()> {
        crate::ChatsClient::handle_response(self, id, response, now_ms)
    }
    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()> {
        crate::ChatsClient::handle_transport_error(self, id, message, now_ms)
    }
    fn handle_timeout(&mut self, now_ms: u64) {
        crate::ChatsClient::handle_timeout(self, now_ms)
    }
    fn handle_persisted(&mut self, ticket: Ticket, now_ms: u64) -> Result<()> {
        crate::ChatsClient::handle_persisted(self, ticket, now_ms)
    }
    fn handle_ws_open(&mut self, conn: crate::io::ConnId, now_ms: u64) {
        crate::ChatsClient::handle_ws_open(self, conn, now_ms)
    }
    fn handle_ws_frame(&mut self, conn: crate::io::ConnId, text: &str, now_ms: u64) {
        crate::ChatsClient::handle_ws_frame(self, conn, text, now_ms)
    }
    fn handle_ws_closed(&mut self, conn: crate::io::ConnId, code: u16, reason: &str, now_ms: u64) {
        crate::ChatsClient::handle_ws_closed(self, conn, code, reason, now_ms)
    }
}

impl SansIo for crate::DmClient {
    fn poll_output(&mut self) -> Output {
        crate::DmClient::poll_output(self)
    }
    fn handle_response(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) -> Result<()> {
        crate::DmClient::handle_response(self, id, response, now_ms)
    }
    fn handle_transport_error(&mut self, id: RequestId, message: &str, now_ms: u64) -> Result<()> {
        crate::DmClient::handle_transport_error(self, id, message, now_ms)
    }
    fn handle_timeout(&mut self, now_ms: u64) {
        crate::DmClient::handle_timeout(self, now_ms)
    }
    fn handle_persisted(&mut self, ticket: Ticket, _now_ms: u64) -> Result<()> {
        Err(crate::Error::new(crate::ErrorCode::UnknownId, format!("no persist request with ticket {ticket}: the DM client persists nothing")))
    }
}
