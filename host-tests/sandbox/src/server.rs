//! Thin tiny_http front end over the sans-IO [`Sandbox`], on the real clock.
//!
//! WebSocket (`/moltchats/ws`) is not served yet: when added, detect `Upgrade: websocket` in
//! `serve_one` before the body is read and hand the request to `tiny_http::Request::upgrade`.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::json_error_no_code;
use crate::{
    MOLTBOOK_API_PREFIX, MOLTCHATS_API_PREFIX, MOLTCHATS_WS_PATH, MOLTSPACES_API_PREFIX, Sandbox,
    SandboxConfig,
};

/// Largest request body accepted; larger → 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const WORKERS: usize = 4;

/// Base URLs of every emulated service on a running [`Server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrls {
    /// `http://127.0.0.1:PORT/moltchats/api/v1`
    pub moltchats_api: String,
    /// `ws://127.0.0.1:PORT/moltchats/ws`
    pub moltchats_ws: String,
    /// `http://127.0.0.1:PORT/moltbook/api/v1`
    pub moltbook_api: String,
    /// `http://127.0.0.1:PORT/moltspaces/v1`
    pub moltspaces_api: String,
    /// `http://127.0.0.1:PORT/openai` (speech-to-text stand-in; stands for `https://api.openai.com`)
    pub openai_api: String,
    /// `http://127.0.0.1:PORT/elevenlabs` (text-to-speech stand-in; stands for `https://api.elevenlabs.io`)
    pub elevenlabs_api: String,
}

/// A running sandbox HTTP server. Stops on [`Server::shutdown`] or drop.
pub struct Server {
    http: Arc<tiny_http::Server>,
    sandbox: Arc<Sandbox>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    front: Option<JoinHandle<()>>,
}

/// Start a sandbox with `config` on `addr` (e.g. `"127.0.0.1:0"` for an ephemeral port).
pub fn serve(addr: &str, config: SandboxConfig) -> io::Result<Server> {
    serve_sandbox(addr, Arc::new(Sandbox::new(config)))
}

/// Serve an existing sandbox on `addr`.
pub fn serve_sandbox(addr: &str, sandbox: Arc<Sandbox>) -> io::Result<Server> {
    // The public port: WebSocket upgrades are served there, everything else is forwarded to
    // tiny_http on an internal loopback port (see ws_front.rs).
    let front = std::net::TcpListener::bind(addr)?;
    let bound = front.local_addr()?;
    let http = tiny_http::Server::http("127.0.0.1:0").map_err(io::Error::other)?;
    let backend = http
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("not an IP listener"))?;
    let http = Arc::new(http);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = (0..WORKERS)
        .map(|i| {
            let (http, sandbox, stop) = (http.clone(), sandbox.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("moltlink-sandbox-{i}"))
                .spawn(move || worker(&http, &sandbox, &stop))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let front = crate::ws_front::spawn(front, backend, sandbox.clone(), stop.clone())?;
    Ok(Server {
        http,
        sandbox,
        addr: bound,
        stop,
        workers,
        front: Some(front),
    })
}

impl Server {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_urls(&self) -> BaseUrls {
        let ip = match self.addr.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        let host = SocketAddr::new(ip, self.addr.port());
        BaseUrls {
            moltchats_api: format!("http://{host}{MOLTCHATS_API_PREFIX}"),
            moltchats_ws: format!("ws://{host}{MOLTCHATS_WS_PATH}"),
            moltbook_api: format!("http://{host}{MOLTBOOK_API_PREFIX}"),
            moltspaces_api: format!("http://{host}{MOLTSPACES_API_PREFIX}"),
            openai_api: format!("http://{host}{}", crate::speech::OPENAI_PREFIX),
            elevenlabs_api: format!("http://{host}{}", crate::speech::ELEVENLABS_PREFIX),
        }
    }

    /// The sandbox behind this server, for inspection and admin hooks.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Stop accepting, finish in-flight requests, join the workers.
    pub fn shutdown(self) {
        // Drop does the work.
    }

    fn stop_workers(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in 0..self.workers.len() {
            self.http.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(front) = self.front.take() {
            let ip = match self.addr.ip() {
                ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                ip => ip,
            };
            crate::ws_front::unblock(SocketAddr::new(ip, self.addr.port()));
            let _ = front.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

fn worker(http: &tiny_http::Server, sandbox: &Sandbox, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        if let Ok(Some(rq)) = http.recv_timeout(Duration::from_millis(50)) {
            serve_one(sandbox, rq);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn serve_one(sandbox: &Sandbox, mut rq: tiny_http::Request) {
    let resp = match to_http_request(&mut rq) {
        Ok(req) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sandbox.handle(req, now_ms())
        }))
        .unwrap_or_else(|_| json_error_no_code(500, "sandbox handler panicked")),
        Err(resp) => resp,
    };
    if let Some(pace) = resp.extensions().get::<crate::speech::Paced>().copied() {
        // Streamed on a thread of its own so the worker stays free while it "synthesises".
        let writer = rq.into_writer();
        std::thread::spawn(move || stream_paced(writer, resp, pace));
        return;
    }
    let _ = rq.respond(to_tiny_response(resp));
}

/// Send `resp` with chunked transfer encoding, a chunk at a time with a pause before each,
/// flushing every chunk (tiny_http's own encoder would hold 8 KiB back).
fn stream_paced(mut w: Box<dyn io::Write + Send>, resp: http::Response<Vec<u8>>, pace: crate::speech::Paced) {
    let (parts, body) = resp.into_parts();
    let mut head = format!("HTTP/1.1 {} {}\r\n", parts.status.as_u16(), parts.status.canonical_reason().unwrap_or(""));
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    let result = (|| -> io::Result<()> {
        w.write_all(head.as_bytes())?;
        w.flush()?;
        for chunk in body.chunks(pace.chunk_bytes.max(1)) {
            std::thread::sleep(Duration::from_millis(pace.gap_ms));
            w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            w.write_all(chunk)?;
            w.write_all(b"\r\n")?;
            w.flush()?;
        }
        w.write_all(b"0\r\n\r\n")?;
        w.flush()
    })();
    let _ = result; // the client hung up: nothing to tell
}

#[allow(clippy::result_large_err)] // the error is the response to send; built once per request
fn to_http_request(
    rq: &mut tiny_http::Request,
) -> Result<http::Request<Vec<u8>>, http::Response<Vec<u8>>> {
    let too_large = || json_error_no_code(413, "Request body is too large");
    if rq.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|_| json_error_no_code(400, "Could not read request body"))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let mut b = http::Request::builder()
        .method(rq.method().as_str())
        .uri(rq.url());
    for h in rq.headers() {
        b = b.header(h.field.as_str().as_str(), h.value.as_str());
    }
    b.body(body)
        .map_err(|_| json_error_no_code(400, "Malformed request"))
}

fn to_tiny_response(resp: http::Response<Vec<u8>>) -> tiny_http::Response<io::Cursor<Vec<u8>>> {
    let (parts, body) = resp.into_parts();
    let mut out = tiny_http::Response::from_data(body).with_status_code(parts.status.as_u16());
    for (name, value) in &parts.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_str().as_bytes(), value.as_bytes()) {
            out.add_header(h);
        }
    }
    out
}
