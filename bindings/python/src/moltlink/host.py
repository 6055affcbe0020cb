"""A small synchronous host: performs the core's HTTP requests with urllib, stores its
credentials atomically (0600), feeds timeouts. Good for scripts and tests; a long-running
agent would use its own event loop with the same calls.

    client = ChatsClient(credentials=path.read_bytes() if path.exists() else None)
    client.login()
    run_until(client, lambda e: e["type"] == "authenticated", path)
"""

from __future__ import annotations

import ipaddress
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple, Union, cast

from .client import ChatsClient, Kind, _Client, now_ms

#: Open WebSockets (websocket-client), by the core's connection id, per client.
_SOCKETS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _ws_output(client: ChatsClient, sockets: dict, kind: Kind, conn: int, meta: dict, body: bytes, say: Callable[[str], None]) -> None:
    """Perform one WebSocket output (websocket-client is imported only when one appears)."""
    import websocket  # websocket-client

    if kind == Kind.WS_OPEN:
        say(f"ws #{conn} -> open")
        try:
            ws = websocket.create_connection(meta["url"], timeout=10, http_no_proxy=["127.0.0.1", "localhost"])
            ws.settimeout(0.02)
        except Exception as e:  # the message may quote the URL (token): report the type only
            client.handle_ws_closed(conn, 1006, type(e).__name__)
            return
        sockets[conn] = ws
        client.handle_ws_open(conn)
    elif kind == Kind.WS_SEND:
        ws = sockets.get(conn)
        try:
            if ws is not None:
                ws.send(body.decode("utf-8"))
        except Exception as e:
            sockets.pop(conn, None)
            client.handle_ws_closed(conn, 1006, type(e).__name__)
    elif kind == Kind.WS_CLOSE:
        ws = sockets.pop(conn, None)
        if ws is not None:
            try:
                ws.close(status=int(meta.get("code", 1000)))
            except Exception:
                pass


def _read_sockets(client: ChatsClient, sockets: dict, until: float) -> None:
    """Read frames until one arrives (fed to the core) or `until` (monotonic) passes."""
    import websocket

    while True:
        for conn, ws in list(sockets.items()):
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as e:
                sockets.pop(conn, None)
                client.handle_ws_closed(conn, 1006, type(e).__name__)
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                client.handle_ws_frame(conn, data.decode("utf-8"))
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                sockets.pop(conn, None)
                client.handle_ws_closed(conn, code, data[2:].decode("utf-8", "replace"))
                return
        if not sockets or time.monotonic() >= until:
            return

__all__ = ["HostError", "run_until", "write_atomic", "perform_http"]


class HostError(Exception):
    """The host gave up: authentication needs the human, the core is stuck, or time ran out."""

    def __init__(self, message: str, events: Optional[List[dict]] = None):
        super().__init__(message)
        self.events = events or []


def write_atomic(path: Union[str, Path], data: bytes) -> None:
    """Write `data` to `path` atomically with mode 0600: temp file, fsync, rename, fsync dir."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: requests carry credentials; a 3xx goes back to the core as is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def perform_http(meta: dict, body: bytes, timeout_s: float = 30.0) -> Tuple[int, List[Tuple[str, str]], bytes]:
    """Perform one request described by an HTTP output's meta. Returns (status, headers, body);
    raises OSError (URLError, timeouts…) when no response was received."""
    url = meta["url"]
    headers: dict = {}
    for name, value in meta["headers"]:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    request = urllib.request.Request(url, data=body or None, method=meta["method"], headers=headers)
    # Loopback (the sandbox) never goes through an environment proxy.
    proxies = urllib.request.ProxyHandler({} if _is_loopback(url) else None)
    opener = urllib.request.build_opener(proxies, _NoRedirect)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status, list(response.headers.items()), response.read()
    except urllib.error.HTTPError as e:  # a response all the same (4xx, 5xx, unfollowed 3xx)
        with e:
            return e.code, list(e.headers.items()) if e.headers else [], e.read()


def run_until(
    client: _Client,
    predicate: Callable[[dict], bool],
    credentials_path: Optional[Union[str, Path]] = None,
    *,
    timeout_s: float = 30.0,
    http_timeout_s: float = 10.0,
    on_event: Optional[Callable[[dict], None]] = None,
    log: Optional[Callable[[str], None]] = None,
) -> dict:
    """Drive `client` (performing its HTTP, persisting to `credentials_path`, feeding timeouts)
    until an event satisfies `predicate`; return that event. Work the core asked for in the
    same round is finished first, so nothing is left half-done.

    Raises HostError on `auth_failed`, when the core has nothing to do and no deadline, or
    after `timeout_s`."""
    say = log or (lambda _line: None)
    sockets = _SOCKETS.setdefault(client, {})
    deadline_at = time.monotonic() + timeout_s
    seen: List[dict] = []
    requests: List[Tuple[int, dict, bytes]] = []
    tickets: List[Tuple[int, bytes]] = []
    events: List[dict] = []

    ws_work: List[Tuple[Kind, int, dict, bytes]] = []

    while True:
        wake_ms = client.pump(
            lambda id, meta, body: requests.append((id, meta, body)),
            lambda ticket, data: tickets.append((ticket, data)),
            events.append,
            lambda kind, conn, meta, body: ws_work.append((kind, conn, meta, body)),
        )
        for kind, conn, meta, body in ws_work:
            _ws_output(cast(ChatsClient, client), sockets, kind, conn, meta, body, say)
        for ticket, data in tickets:
            if credentials_path is None:
                raise HostError("the core asked to persist but no credentials_path was given", seen)
            write_atomic(credentials_path, data)
            say(f"persist #{ticket}: {len(data)} bytes -> {credentials_path}")
            cast(Any, client).handle_persisted(ticket)  # Chats and Spaces persist; DMs never do
        for id, meta, body in requests:
            say(f"http #{id} -> {meta['method']} {meta['url']}")
            try:
                status, headers, response_body = perform_http(meta, body, http_timeout_s)
            except OSError as e:
                say(f"http #{id} <- transport error: {e}")
                client.handle_transport_error(id, str(e))
                continue
            say(f"http #{id} <- {status} ({len(response_body)} bytes)")
            client.handle_response(id, status, headers, response_body)
        worked = bool(tickets or requests or ws_work)
        tickets.clear()
        requests.clear()
        ws_work.clear()

        match = None
        for event in events:
            say(f"event {event.get('type')}")
            seen.append(event)
            if on_event:
                on_event(event)
            if match is None and predicate(event):
                match = event
        failed = any(e.get("type") == "auth_failed" for e in events)
        events.clear()
        if match is not None:
            return match
        if failed:
            raise HostError("authentication failed and needs the human (see events)", seen)
        if time.monotonic() > deadline_at:
            raise HostError(f"no matching event within {timeout_s} s", seen)
        if worked:
            continue
        if wake_ms is None and not sockets:
            raise HostError("the core has nothing to do and no deadline: the awaited event cannot come", seen)
        wait_s = max(0.0, (wake_ms - now_ms()) / 1000) if wake_ms is not None else timeout_s
        wait_s = min(wait_s, max(0.0, deadline_at - time.monotonic()))
        if sockets:
            _read_sockets(cast(ChatsClient, client), sockets, time.monotonic() + wait_s)
        else:
            time.sleep(wait_s)
        client.handle_timeout()

