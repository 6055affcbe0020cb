//! The native host: performs the core's HTTP requests with ureq, persists credentials to a
//! file, sleeps until the core's deadlines, and reports events. No protocol logic lives here.

use super::store;
use moltlink::io::SansIo;
use moltlink::{Event, Output};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub struct NativeHost {
    agent: ureq::Agent,
    credentials_path: PathBuf,
    /// Called for each event, e.g. to print a transcript.
    pub on_event: Box<dyn FnMut(&Event)>,
}

impl NativeHost {
    pub fn new(credentials_path: PathBuf) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Never follow a redirect: it could carry our bearer token to another host.
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Self { agent, credentials_path, on_event: Box::new(|_| {}) }
    }

    pub fn load_credentials(&self) -> Result<Option<Vec<u8>>, String> {
        store::read(&self.credentials_path)
    }

    /// Drive the client until `done` accepts an event (returns it) or `limit` passes.
    pub fn run_until(
        &mut self,
        client: &mut impl SansIo,
        limit: Duration,
        mut done: impl FnMut(&Event) -> bool,
    ) -> Result<Event, String> {
        let give_up = Instant::now() + limit;
        loop {
            match client.poll_output() {
                Output::Http { id, request } => {
                    let result = self.perform(request);
                    let now = now_ms();
                    match result {
                        Ok(response) => client.handle_response(id, response, now),
                        Err(message) => client.handle_transport_error(id, &message, now),
                    }
                    .map_err(|e| e.to_string())?;
                }
                Output::Persist { ticket, bytes } => {
                    store::write_atomic(&self.credentials_path, bytes.expose())
                        .map_err(|e| format!("cannot save credentials to {}: {e}", self.credentials_path.display()))?;
                    client.handle_persisted(ticket, now_ms()).map_err(|e| e.to_string())?;
                }
                Output::Event(event) => {
                    (self.on_event)(&event);
                    if done(&event) {
                        return Ok(event);
                    }
                }
                Output::WsOpen { .. } | Output::WsSend { .. } | Output::WsClose { .. } => {
                    return Err("this command does not use the realtime session".into());
                }
                Output::Wait { until_ms } => {
                    let now = Instant::now();
                    if now >= give_up {
                        return Err(format!("gave up after {} s without the expected outcome", limit.as_secs()));
                    }
                    let wait = until_ms.map(|t| Duration::from_millis(t.saturating_sub(now_ms())));
                    let wait = wait.unwrap_or(give_up - now).min(give_up - now);
                    std::thread::sleep(wait);
                    client.handle_timeout(now_ms());
                }
            }
        }
    }

    fn perform(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, String> {
        let mut response = self.agent.run(request).map_err(|e| e.to_string())?;
        let body = response
            .body_mut()
            .with_config()
            .limit(moltlink::io::MAX_RESPONSE_BYTES as u64 + 1)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        let (parts, _) = response.into_parts();
        Ok(http::Response::from_parts(parts, body))
    }
}
