"""An asyncio host for the moltlink core, on aiohttp (`pip install "moltlink[aio]"`).

The core decides everything (login, token rotation, reconnects, the DM heartbeat, Moltspaces
rejoins); this host only performs its outputs and feeds the results back, from one driver task:

- HTTP requests and WebSockets run as tasks on aiohttp; a frame, a response or a closed socket
  is fed to the core the moment it arrives and wakes the driver;
- credentials are written (atomically, 0600) in a worker thread, so fsync never blocks the loop;
- between outputs the driver awaits an `asyncio.Event` with the core's next deadline as the
  timeout: no fixed tick, no socket polling. Nothing happens while nothing is due.

    async with AsyncHost(ChatsClient(api_base=api), "credentials.json") as host:
        host.client.register("my_agent")
        await host.run_until(lambda e: e["type"] == "authenticated")
        host.client.connect()                      # the realtime session; rotations go on by themselves
        host.client.subscribe([channel_id])
        message = await host.run_until(lambda e: e["type"] == "message", timeout_s=None)

The client is used from the event loop's thread only (the core is not thread-safe). After a
command (`client.send_realtime(...)`, `dm.heartbeat()`, ...) call `host.wake()`, or just await
`run_until`, which wakes the driver itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Coroutine, Dict, List, Optional, Set, Tuple, Union

import aiohttp

from .client import Kind, _Client, now_ms
from .host import HostError, write_atomic

__all__ = ["AsyncHost", "HostError", "run_until"]

Event = Dict[str, Any]
Predicate = Callable[[Event], bool]


class _Socket:
    """One WebSocket the core asked for: its aiohttp connection and an ordered outbox."""

    def __init__(self) -> None:
        self.ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self.outbox: "asyncio.Queue[Optional[str]]" = asyncio.Queue()
        # Set once the core has been told the socket is gone, or asked to close it itself:
        # either way, nothing more about this connection goes to the core.
        self.finished = False


class _Waiter:
    def __init__(self, predicate: Predicate, future: "asyncio.Future[Event]") -> None:
        self.predicate = predicate
        self.future = future
        self.seen: List[Event] = []


class AsyncHost:
    """Drives one client (`ChatsClient`, `DmClient` or `SpacesClient`) on the running loop.

    `credentials_path`: where `persist` outputs go (the Chats credentials, the Spaces
    registration); `session`: an aiohttp session to use (default: one of its own that ignores
    proxy variables, as the core's requests carry credentials; pass yours for proxies);
    `on_event(event)` sees every event; `log(line)` gets one line per action (never a token)."""

    def __init__(
        self,
        client: _Client,
        credentials_path: Optional[Union[str, Path]] = None,
        *,
        session: Optional[aiohttp.ClientSession] = None,
        http_timeout_s: float = 30.0,
        on_event: Optional[Callable[[Event], None]] = None,
        log: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.client = client
        self.credentials_path = None if credentials_path is None else Path(credentials_path)
        self._session = session
        self._own_session = session is None
        self._ws_http: Optional[aiohttp.ClientSession] = None
        self._http_timeout = aiohttp.ClientTimeout(total=http_timeout_s)
        self._on_event = on_event
        self._say = log or (lambda _line: None)
        self._wakeup: Optional["asyncio.Future[None]"] = None  # resolved by wake()
        self._driver: Optional["asyncio.Task[None]"] = None
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._sockets: Dict[int, _Socket] = {}  # by the core's connection id, until it is told of the end
        self._live: Set[_Socket] = set()  # every socket whose task still runs
        self._waiters: List[_Waiter] = []
        self._subscribers: List["asyncio.Queue[Event]"] = []
        self._failure: Optional[BaseException] = None
        self._closed = False

    # ---- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> "AsyncHost":
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the driver task on the running loop (idempotent; `run_until` calls it)."""
        if self._closed:
            raise HostError("the host is closed")
        if self._driver is not None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        # WebSockets get fresh connections of their own: an upgrade sent on a pooled keep-alive
        # connection can reach a front that already routed that connection elsewhere (the
        # sandbox routes per connection), and it would hang there.
        self._ws_http = aiohttp.ClientSession(trust_env=self._session.trust_env, connector=aiohttp.TCPConnector(force_close=True))
        self._wakeup = asyncio.get_running_loop().create_future()
        self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def aclose(self) -> None:
        """Stop driving: close sockets, cancel requests (the client itself stays open)."""
        if self._closed:
            return
        self._closed = True
        if self._driver is not None:
            self._driver.cancel()
            await asyncio.gather(self._driver, return_exceptions=True)
        # Sockets first, each reader then ends by itself; whatever is left is cancelled.
        for sock in list(self._live):
            sock.finished = True
            sock.outbox.put_nowait(None)
            if sock.ws is not None:
                await _close_quietly(sock.ws)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._sockets.clear()
        self._fail_waiters(HostError("the host was closed"))
        if self._own_session and self._session is not None:
            await self._session.close()
        if self._ws_http is not None:
            await self._ws_http.close()

    def wake(self) -> None:
        """Tell the driver the client has new work (call after a command)."""
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # ---- waiting for events ------------------------------------------------------------------

    async def run_until(self, predicate: Predicate, *, timeout_s: Optional[float] = 30.0) -> Event:
        """Wait for the first event (from now on) that satisfies `predicate` and return it, while
        the driver keeps going. Raises HostError on `auth_failed`, when the core has nothing
        left to do (the event cannot come), after `timeout_s`, or if the host failed."""
        self.start()
        if self._failure is not None:
            raise HostError(f"the host failed: {self._failure!r}") from self._failure
        waiter = _Waiter(predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self.wake()
        try:
            return await asyncio.wait_for(waiter.future, timeout_s)
        except asyncio.TimeoutError:
            raise HostError(f"no matching event within {timeout_s} s", waiter.seen) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def events(self) -> AsyncIterator[Event]:
        """Every event from now on, as they come (an async iterator that runs until the host
        closes or fails)."""
        self.start()
        queue: "asyncio.Queue[Event]" = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                event = await queue.get()
                if event.get("type") == "_host_stopped":
                    return
                yield event
        finally:
            self._subscribers.remove(queue)

    # ---- the driver --------------------------------------------------------------------------

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                deadline_ms = self._pump()
                # A fresh wake-up future: anything that happens from here on (a response, a
                # frame, a command) resolves it; so does a timer at the core's deadline.
                self._wakeup = loop.create_future()
                if deadline_ms is None and not self._tasks and not self._sockets:
                    self._fail_waiters(HostError("the core has nothing to do and no deadline: the awaited event cannot come"))
                timer = None
                if deadline_ms is not None:
                    timer = loop.call_later(max(0.0, (deadline_ms - now_ms()) / 1000), self.wake)
                try:
                    await self._wakeup
                finally:
                    if timer is not None:
                        timer.cancel()
                if deadline_ms is not None and now_ms() >= deadline_ms:
                    self.client.handle_timeout()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # a bug or a refused input: every waiter learns of it
            self._stop(e)

    def _pump(self) -> Optional[int]:
        """Drain the core's outputs; start a task for each piece of I/O; deliver events."""
        requests: List[Tuple[int, Dict[str, Any], bytes]] = []
        tickets: List[Tuple[int, bytes]] = []
        events: List[Event] = []
        ws_work: List[Tuple[Kind, int, Dict[str, Any], bytes]] = []
        deadline = self.client.pump(
            lambda id, meta, body: requests.append((id, meta, body)),
            lambda ticket, data: tickets.append((ticket, data)),
            events.append,
            lambda kind, conn, meta, body: ws_work.append((kind, conn, meta, body)),
        )
        for kind, conn, meta, body in ws_work:
            self._ws_output(kind, conn, meta, body)
        if tickets:
            self._spawn(self._persist(tickets))
        for id, meta, body in requests:
            self._spawn(self._http(id, meta, body))
        for event in events:
            self._deliver(event)
        return deadline

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._stop(task.exception())  # type: ignore[arg-type]
        self.wake()

    def _stop(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        self._fail_waiters(HostError(f"the host failed: {error!r}"))
        for queue in self._subscribers:
            queue.put_nowait({"type": "_host_stopped"})

    def _fail_waiters(self, error: HostError) -> None:
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(HostError(str(error), list(waiter.seen)))

    def _deliver(self, event: Event) -> None:
        self._say(f"event {event.get('type')}")
        if self._on_event is not None:
            self._on_event(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        failed = event.get("type") == "auth_failed"
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            waiter.seen.append(event)
            if waiter.predicate(event):
                waiter.future.set_result(event)
            elif failed:
                waiter.future.set_exception(HostError("authentication failed and needs the human (see events)", list(waiter.seen)))

    # ---- outputs -----------------------------------------------------------------------------

    async def _persist(self, tickets: List[Tuple[int, bytes]]) -> None:
        if self.credentials_path is None:
            raise HostError("the core asked to persist but no credentials_path was given")
        for ticket, data in tickets:
            await asyncio.to_thread(write_atomic, self.credentials_path, data)
            self._say(f"persist #{ticket}: {len(data)} bytes -> {self.credentials_path}")
            self.client.handle_persisted(ticket)  # type: ignore[attr-defined]

    async def _http(self, id: int, meta: Dict[str, Any], body: bytes) -> None:
        assert self._session is not None
        self._say(f"http #{id} -> {meta['method']} {meta['url']}")
        try:
            async with self._session.request(
                meta["method"],
                meta["url"],
                headers=[(str(k), str(v)) for k, v in meta["headers"]],
                data=body or None,
                allow_redirects=False,  # requests carry credentials: a 3xx goes back to the core
                timeout=self._http_timeout,
                skip_auto_headers=("Accept-Encoding", "Content-Type"),
            ) as response:
                data = await response.read()
                status, headers = response.status, list(response.headers.items())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            self._say(f"http #{id} <- transport error: {type(e).__name__}")
            self.client.handle_transport_error(id, type(e).__name__)
            return
        self._say(f"http #{id} <- {status} ({len(data)} bytes)")
        self.client.handle_response(id, status, headers, data)

    def _ws_output(self, kind: Kind, conn: int, meta: Dict[str, Any], body: bytes) -> None:
        if kind == Kind.WS_OPEN:
            sock = self._sockets[conn] = _Socket()
            self._say(f"ws #{conn} -> open")  # the URL carries the token: not logged
            self._spawn(self._ws_session(conn, sock, meta["url"]))
        elif kind == Kind.WS_SEND:
            sock_or_none = self._sockets.get(conn)
            if sock_or_none is not None:
                sock_or_none.outbox.put_nowait(body.decode("utf-8"))
        elif kind == Kind.WS_CLOSE:
            closing = self._sockets.pop(conn, None)
            if closing is not None:
                self._say(f"ws #{conn} -> close {meta.get('code')}")
                closing.finished = True
                closing.outbox.put_nowait(None)
                if closing.ws is not None:
                    self._spawn(self._ws_close(closing.ws, int(meta.get("code", 1000))))

    async def _ws_close(self, ws: aiohttp.ClientWebSocketResponse, code: int) -> None:
        await _close_quietly(ws, code)

    async def _ws_session(self, conn: int, sock: _Socket, url: str) -> None:
        """Connect, then read frames into the core until the socket ends; a writer task sends
        the outbox in order."""
        assert self._ws_http is not None
        self._live.add(sock)
        try:
            await self._ws_read(conn, sock, url)
        finally:
            self._live.discard(sock)

    async def _ws_read(self, conn: int, sock: _Socket, url: str) -> None:
        assert self._ws_http is not None
        try:
            ws = await asyncio.wait_for(self._ws_http.ws_connect(url, autoping=True), self._http_timeout.total)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            self._ws_closed(conn, sock, 1006, type(e).__name__)
            return
        sock.ws = ws
        if sock.finished:  # the core closed it while it was connecting
            await _close_quietly(ws)
            return
        self.client.handle_ws_open(conn)  # type: ignore[attr-defined]
        self.wake()
        self._spawn(self._ws_writer(conn, sock, ws))
        code, reason = 1006, ""
        try:
            while True:
                msg = await ws.receive()
                if sock.finished:
                    return
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.client.handle_ws_frame(conn, msg.data)  # type: ignore[attr-defined]
                    self.wake()
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    code, reason = int(msg.data or 1005), str(msg.extra or "")
                    break
                elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    # No close frame came (the connection dropped): 1006, whatever aiohttp
                    # recorded, so the core treats it as the failure it is.
                    error = ws.exception()
                    reason = type(error).__name__ if error is not None else "connection lost"
                    break
        finally:
            await _close_quietly(ws)
        self._ws_closed(conn, sock, code, reason)

    async def _ws_writer(self, conn: int, sock: _Socket, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            text = await sock.outbox.get()
            if text is None or sock.finished:
                return
            try:
                await ws.send_str(text)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as e:
                await _close_quietly(ws)
                self._ws_closed(conn, sock, 1006, type(e).__name__)
                return

    def _ws_closed(self, conn: int, sock: _Socket, code: int, reason: str) -> None:
        """Tell the core, once, that the socket is gone (unless it closed it itself)."""
        if sock.finished:
            return
        sock.finished = True
        sock.outbox.put_nowait(None)
        if self._sockets.get(conn) is sock:
            del self._sockets[conn]
        self._say(f"ws #{conn} <- closed {code}")
        self.client.handle_ws_closed(conn, code, reason)  # type: ignore[attr-defined]
        self.wake()


async def _close_quietly(ws: aiohttp.ClientWebSocketResponse, code: int = 1000) -> None:
    """Close a socket, waiting at most 2 s for the peer's half of the handshake."""
    if ws.closed:
        return
    try:
        await asyncio.wait_for(ws.close(code=code), 2)
    except (asyncio.TimeoutError, aiohttp.ClientError, ConnectionError, RuntimeError):
        pass


async def run_until(
    client: _Client,
    predicate: Predicate,
    credentials_path: Optional[Union[str, Path]] = None,
    *,
    timeout_s: Optional[float] = 30.0,
    on_event: Optional[Callable[[Event], None]] = None,
) -> Event:
    """One-shot: drive `client` until an event satisfies `predicate`, then stop (sockets are
    closed). For anything long-lived keep an `AsyncHost` open instead."""
    async with AsyncHost(client, credentials_path, on_event=on_event) as host:
        return await host.run_until(predicate, timeout_s=timeout_s)
