//! The `spaces` interface's `client` resource: translation onto [`crate::SpacesClient`] only.

use super::exports::moltlink::core::spaces::{Guest, GuestClient};
use super::moltlink::core::types::{HttpResponse, Output as WitOutput};
use super::{Component, Driven, Res, err};
use crate::SpacesClient;

impl Guest for Component {
    type Client = Client;
}

pub struct Client {
    inner: Driven<SpacesClient>,
}

impl GuestClient for Client {
    fn open(env: Vec<u8>, options_json: Option<String>) -> Res<super::exports::moltlink::core::spaces::Client> {
        let client = SpacesClient::from_env(&env, options_json.as_deref()).map_err(err)?;
        Ok(super::exports::moltlink::core::spaces::Client::new(Client { inner: Driven::new(client) }))
    }

    fn command(&self, command_json: String, now_ms: u64) -> Res<u64> {
        self.inner.with(|c| c.command_json(&command_json, now_ms))
    }

    fn utterance(&self, wav: Vec<u8>, now_ms: u64) -> Res<u64> {
        self.inner.with(|c| c.utterance(&wav, now_ms))
    }

    fn handle_body_chunk(&self, id: u64, chunk: Vec<u8>, now_ms: u64) -> Res<()> {
        self.inner.with(|c| c.handle_body_chunk(id, &chunk, now_ms))
    }

    fn take_audio(&self) -> Vec<u8> {
        self.inner.with(|c| Ok(c.take_audio_bytes())).unwrap_or_default()
    }

    fn state(&self) -> String {
        self.inner.read(|c| c.state_json()).unwrap_or_else(|| "{}".into())
    }

    fn handle_response(&self, id: u64, response: HttpResponse, now_ms: u64) -> Res<()> {
        self.inner.handle_response(id, response, now_ms)
    }

    fn handle_transport_error(&self, id: u64, message: String, now_ms: u64) -> Res<()> {
        self.inner.handle_transport_error(id, message, now_ms)
    }

    fn handle_timeout(&self, now_ms: u64) {
        self.inner.handle_timeout(now_ms)
    }

    fn handle_persisted(&self, ticket: u64, now_ms: u64) -> Res<()> {
        self.inner.handle_persisted(ticket, now_ms)
    }

    fn poll_output(&self) -> WitOutput {
        self.inner.poll_output()
    }

    fn pump(&self) -> Option<u64> {
        self.inner.pump()
    }
}
