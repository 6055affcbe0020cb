//! The `spaces` interface's `client` resource: translation onto [`crate::SpacesClient`] only.

use super::exports::moltlink::core::spaces::{Guest, GuestClient};
use super::moltlink::core::types::{HttpResponse, Output as WitOutput};
use super::{Component, Driven, Res, err};
use crate::{SansIo, SpacesClient};

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

    driven_resource_io!(persisted);
}
