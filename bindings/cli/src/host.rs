//! The native host: performs the core's HTTP requests with ureq, persists credentials to a
//! file, sleeps until the core's deadlines, and reports events. No protocol logic lives here.

use super::store;
use moltlink::io::SansIo;
use moltlink::Output;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// How long one socket read waits before the host looks at its other work.
const READ_SLICE: Duration = Duration::from_millis(20);

fn set_read_timeout(ws: &Socket, timeout: Duration) {
    let _ = match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s.set_read_timeout(Some(timeout)),
        MaybeTlsStream::Rustls(s) => s.get_ref().set_read_timeout(Some(timeout)),
        _ => Ok(()),
    };
}
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub struct NativeHost<E> {
    agent: ureq::Agent,
    credentials_path: PathBuf,
    /// Open WebSockets of the realtime session, by the core's connection id.
    sockets: BTreeMap<u64, Socket>,
    /// Called for each event, e.g. to print a transcript.
    pub on_event: Box<dyn FnMut(&E)>,
    /// Set (e.g. by a signal handler) to make `run_until` return [`STOPPED`] at its next wait.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// What an event says about why the outcome is late (a rate-limit wait), quoted on giving up.
    pub trouble: fn(&E) -> Option<String>,
}

/// The error `run_until` returns when `stop` was set.
pub const STOPPED: &str = "stopped";
/// How often a stoppable host looks at its stop flag while waiting.
const STOP_POLL: Duration = Duration::from_millis(200);

impl<E> NativeHost<E> {
    pub fn new(credentials_path: PathBuf) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Never follow a redirect: it could carry our bearer token to another host.
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Self { agent, credentials_path, sockets: BTreeMap::new(), on_event: Box::new(|_| {}), stop: None, trouble: |_| None }
    }

    pub fn load_credentials(&self) -> Result<Option<Vec<u8>>, String> {
        store::read(&self.credentials_path)
    }

    /// Drive the client until `done` accepts an event (returns it) or `limit` passes.
    pub fn run_until<C: SansIo<Event = E>>(
        &mut self,
        client: &mut C,
        limit: Duration,
        mut done: impl FnMut(&E) -> bool,
    ) -> Result<E, String> {
        let give_up = Instant::now() + limit;
        // The last failure to reach the server, quoted when we give up.
        let mut last_trouble: Option<String> = None;
        loop {
            match client.poll_output() {
                Output::Http { id, request, .. } => {
                    let result = self.perform(*request);
                    let now = now_ms();
                    last_trouble = result.as_ref().err().cloned();
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
                    if let Some(t) = (self.trouble)(&event) {
                        last_trouble = Some(t);
                    }
                    if done(&event) {
                        return Ok(event);
                    }
                }
                Output::WsOpen { conn, url } => match tungstenite::connect(url.expose().as_str()) {
                    Ok((ws, _)) => {
                        set_read_timeout(&ws, READ_SLICE);
                        self.sockets.insert(conn, ws);
                        client.handle_ws_open(conn, now_ms());
                    }
                    // The message may quote the URL (and its token): keep only the kind.
                    Err(e) => {
                        last_trouble = Some(format!("WebSocket: {}", ws_error_kind(&e)));
                        client.handle_ws_closed(conn, 1006, &ws_error_kind(&e), now_ms())
                    }
                },
                Output::WsSend { conn, text } => {
                    let failed = self.sockets.get_mut(&conn).map(|ws| ws.send(Message::text(text)).is_err());
                    if failed == Some(true) {
                        self.sockets.remove(&conn);
                        client.handle_ws_closed(conn, 1006, "send failed", now_ms());
                    }
                }
                Output::WsClose { conn, code, reason } => {
                    if let Some(mut ws) = self.sockets.remove(&conn) {
                        let frame = tungstenite::protocol::CloseFrame { code: code.into(), reason: reason.into() };
                        let _ = ws.close(Some(frame));
                        let _ = ws.flush();
                    }
                }
                Output::Wait { until_ms } => {
                    let now = Instant::now();
                    if self.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
                        return Err(STOPPED.into());
                    }
                    if now >= give_up {
                        let last = last_trouble.map(|t| format!("; last: {t}")).unwrap_or_default();
                        return Err(format!("gave up after {} s without the expected outcome (--timeout SECS to wait longer){last}", limit.as_secs()));
                    }
                    let wait = until_ms.map(|t| Duration::from_millis(t.saturating_sub(now_ms())));
                    let mut wait = wait.unwrap_or(give_up - now).min(give_up - now);
                    if self.stop.is_some() {
                        wait = wait.min(STOP_POLL);
                    }
                    if self.sockets.is_empty() {
                        std::thread::sleep(wait);
                    } else {
                        self.read_sockets(client, now + wait);
                    }
                    client.handle_timeout(now_ms());
                }
            }
        }
    }

    /// Read frames until one arrives (fed to the core) or `until` passes.
    fn read_sockets(&mut self, client: &mut impl SansIo, until: Instant) {
        loop {
            let mut fed = false;
            for conn in self.sockets.keys().copied().collect::<Vec<_>>() {
                let Some(ws) = self.sockets.get_mut(&conn) else { continue };
                match ws.read() {
                    Ok(Message::Text(text)) => {
                        client.handle_ws_frame(conn, text.as_str(), now_ms());
                        fed = true;
                    }
                    Ok(Message::Close(frame)) => {
                        let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                        self.sockets.remove(&conn);
                        client.handle_ws_closed(conn, code, &reason, now_ms());
                        fed = true;
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(e) => {
                        self.sockets.remove(&conn);
                        client.handle_ws_closed(conn, 1006, &ws_error_kind(&e), now_ms());
                        fed = true;
                    }
                }
            }
            if fed || self.sockets.is_empty() || Instant::now() >= until {
                return;
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

/// A WebSocket failure described without its details (they can quote the URL and its token).
fn ws_error_kind(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => format!("i/o error: {:?}", io.kind()),
        tungstenite::Error::Http(resp) => format!("HTTP {} on upgrade", resp.status()),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => "connection closed".into(),
        tungstenite::Error::Tls(_) => "TLS error".into(),
        tungstenite::Error::Url(_) => "invalid WebSocket URL".into(),
        _ => "WebSocket protocol error".into(),
    }
}
