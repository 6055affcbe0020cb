//! The sandbox's public port: one listener that serves the MoltChats WebSocket gateway
//! (`GET /moltchats/ws` with `Upgrade: websocket`, via tungstenite) and forwards every other
//! connection byte for byte to the tiny_http server behind it. So REST and WebSocket share one
//! port, like the real service, and each WebSocket owns its TcpStream (read timeouts let one
//! thread both read frames and push broadcasts).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use crate::moltchats::gateway::WsOut;
use crate::{MOLTCHATS_WS_PATH, Sandbox};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Accept on `listener` until `stop`; WebSocket upgrades to the gateway, the rest to `backend`.
pub fn spawn(listener: TcpListener, backend: SocketAddr, sandbox: Arc<Sandbox>, stop: Arc<AtomicBool>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("moltlink-sandbox-front".into()).spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let sandbox = sandbox.clone();
            let _ = std::thread::Builder::new().name("moltlink-sandbox-conn".into()).spawn(move || {
                let _ = route(stream, backend, &sandbox);
            });
        }
    })
}

/// Look at the request head without consuming it, then serve or forward the connection.
fn route(stream: TcpStream, backend: SocketAddr, sandbox: &Sandbox) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = [0u8; 2048];
    let mut n = 0;
    for _ in 0..100 {
        n = stream.peek(&mut head)?;
        if n == 0 || head[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == head.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let raw = String::from_utf8_lossy(&head[..n]).into_owned();
    let text = raw.to_ascii_lowercase();
    let is_ws = text.starts_with(&format!("get {MOLTCHATS_WS_PATH}")) && text.contains("upgrade: websocket");
    if is_ws {
        // `GET /moltchats/ws?token=… HTTP/1.1`: the token is the query's `token`.
        let target = raw.split_whitespace().nth(1).unwrap_or_default();
        let token = target.split_once('?').and_then(|(_, q)| {
            q.split('&').find_map(|kv| kv.strip_prefix("token=")).filter(|t| !t.is_empty()).map(str::to_owned)
        });
        serve_ws(stream, token, sandbox)
    } else {
        forward(stream, &head[..n], backend)
    }
}

/// A request or response head with `Connection: close`: a connection is routed once, by its
/// first request, so it must carry only one. A client that keeps a connection alive and later
/// sends a WebSocket upgrade on it (undici's `WebSocket`, aiohttp) would otherwise reach
/// tiny_http, which never answers an upgrade. The response says so too: tiny_http omits the
/// header, and a client that is not told reuses the socket and races our close
/// (undici: `UND_ERR_SOCKET`).
fn with_connection_close(head: &[u8]) -> Option<(usize, Vec<u8>)> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&head[..end]).ok()?;
    let mut out = String::with_capacity(end + 24);
    for line in text.split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    Some((end + 4, out.into_bytes()))
}

fn forward(client: TcpStream, head: &[u8], backend: SocketAddr) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut server = TcpStream::connect(backend)?;
    if let Some((len, rewritten)) = with_connection_close(head) {
        // Consume the peeked head and send the rewritten one; the body follows as is.
        let mut consumed = vec![0u8; len];
        (&client).read_exact(&mut consumed)?;
        server.write_all(&rewritten)?;
    }
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        // Keep reading the client even after the backend stopped listening (e.g. an early 413):
        // closing a socket with unread data would reset the client before it reads the answer.
        let mut buf = [0u8; 16 * 1024];
        let mut backend_open = true;
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 {
                break;
            }
            if backend_open && s_write.write_all(&buf[..n]).is_err() {
                backend_open = false;
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let _ = forward_response_head(&mut s_read, &mut c_write).and_then(|()| io::copy(&mut s_read, &mut c_write));
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// Copy the backend's response head with `Connection: close` (the body follows as is).
fn forward_response_head(server: &mut TcpStream, client: &mut TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    while buf.len() < 64 * 1024 {
        let n = server.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((len, head)) = with_connection_close(&buf) {
            client.write_all(&head)?;
            return client.write_all(&buf[len..]);
        }
    }
    client.write_all(&buf)
}

fn serve_ws(stream: TcpStream, token: Option<String>, sandbox: &Sandbox) -> io::Result<()> {
    let mut ws: WebSocket<TcpStream> = tungstenite::accept(stream).map_err(io::Error::other)?;
    ws.get_ref().set_read_timeout(Some(Duration::from_millis(20)))?;
    let sid = sandbox.ws_open(token.as_deref(), now_ms());
    'session: loop {
        sandbox.ws_tick(now_ms());
        for out in sandbox.ws_drain(sid) {
            match out {
                WsOut::Text(text) => {
                    if ws.send(Message::text(text)).is_err() {
                        break 'session;
                    }
                }
                // 1006 cannot be sent: it means "the connection just died".
                WsOut::Close(1006, _) => {
                    let _ = ws.get_ref().shutdown(Shutdown::Both);
                    break 'session;
                }
                WsOut::Close(code, reason) => {
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() }));
                    // Finish the close handshake briefly, then go.
                    for _ in 0..25 {
                        if ws.read().is_err() {
                            break;
                        }
                    }
                    break 'session;
                }
            }
        }
        match ws.read() {
            Ok(Message::Text(text)) => sandbox.ws_receive(sid, text.as_str(), now_ms()),
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    sandbox.ws_closed(sid);
    Ok(())
}

/// Wake the accept loop so it sees the stop flag.
pub fn unblock(addr: SocketAddr) {
    let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map(|mut s| s.write_all(b""));
}

