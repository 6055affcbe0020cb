//! The `dm` interface's `client` resource: translation onto [`crate::DmClient`] only.

use super::exports::moltlink::core::dm::{Guest, GuestClient};
use super::moltlink::core::types::{HttpResponse, Output as WitOutput};
use super::{Component, Driven, Res, err, invalid};
use crate::io::Secret;
use crate::{DmClient, DmConfig};

impl Guest for Component {
    type Client = Client;
}

pub struct Client {
    inner: Driven<DmClient>,
}

impl GuestClient for Client {
    fn open(api_base: Option<String>, api_key: String, seed: Vec<u8>) -> Res<super::exports::moltlink::core::dm::Client> {
        let seed: [u8; 32] =
            seed.as_slice().try_into().map_err(|_| invalid(format!("seed must be 32 bytes, got {}", seed.len())))?;
        let config = DmConfig { api_base, api_key: Secret::new(api_key), seed, heartbeat: Default::default(), agent_name: None };
        let client = DmClient::new(config).map_err(err)?;
        Ok(super::exports::moltlink::core::dm::Client::new(Client { inner: Driven::new(client) }))
    }

    fn command(&self, command_json: String, now_ms: u64) -> Res<u64> {
        self.inner.with(|c| c.command_json(&command_json, now_ms))
    }

    fn heartbeat(&self, running: bool, now_ms: u64) {
        let _ = self.inner.with(|c| {
            if running { c.start_heartbeat(now_ms) } else { c.stop_heartbeat() }
            Ok(())
        });
    }

    fn state(&self, conversation_id: String) -> String {
        self.inner
            .read(|c| serde_json::to_value(c.state_of(&conversation_id)).ok().and_then(|v| v.as_str().map(str::to_owned)))
            .flatten()
            .unwrap_or_default()
    }

    driven_resource_io!();
}
