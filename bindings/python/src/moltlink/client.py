"""A Pythonic wrapper over the C ABI's MoltChats client. No logic lives here: every decision
is the core's; this module converts arguments and results."""

from __future__ import annotations

import ctypes
import enum
import json
import os
import time
from ctypes import byref, c_int32, c_size_t, c_uint64, c_void_p
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Tuple, Union

from . import _decls, _ffi


class MoltlinkError(Exception):
    """A failed call: `code` is the stable numeric code (see `ErrorCode`), `name` its name
    (`"INVALID_CREDENTIALS"`), `message` the library's text (never contains secrets)."""

    def __init__(self, code: int, name: str, message: str):
        super().__init__(f"{name} ({code}): {message}")
        self.code = code
        self.name = name
        self.message = message


class ErrorCode(enum.IntEnum):
    OK = 0
    INVALID_ARGUMENT = 1
    NULL_POINTER = 2
    INVALID_UTF8 = 3
    BUFFER_TOO_SMALL = 4
    INVALID_CREDENTIALS = 5
    UNKNOWN_ID = 6
    ALREADY_REGISTERED = 7
    NOT_REGISTERED = 8
    INVALID_STATE = 9
    PANIC = 10
    NO_OUTPUT = 11
    CRYPTO = 12


class Kind(enum.IntEnum):
    """What an output asks of the host."""

    WAIT = 0
    HTTP = 1
    PERSIST = 2
    EVENT = 3
    #: Open a WebSocket to `meta["url"]` (carries the token: never log it); report with
    #: `handle_ws_open(id)` / `handle_ws_frame(id, text)` / `handle_ws_closed(id, code)`.
    WS_OPEN = 4
    #: Send `body` (UTF-8) as a text frame on connection `id`.
    WS_SEND = 5
    #: Close connection `id` with `meta["code"]`.
    WS_CLOSE = 6


@dataclass(frozen=True)
class Output:
    """One output of the core.

    - `HTTP`: perform `meta["method"]` on `meta["url"]` with `meta["headers"]` and `body`, then
      `handle_response(id, …)` or `handle_transport_error(id, …)`.
    - `PERSIST`: store `body` durably (atomically, owner-only), then `handle_persisted(id)`.
    - `EVENT`: `meta["event"]` is for the agent.
    - `WAIT`: nothing to do; call `handle_timeout` at `deadline_ms` (Unix ms) if it is set.
    """

    kind: Kind
    id: int
    deadline_ms: Optional[int]
    meta: dict
    body: bytes = field(repr=False)

    def __repr__(self) -> str:
        # The HTTP meta carries the bearer token and bodies carry keys: neither is shown.
        detail = {
            Kind.HTTP: lambda: f" {self.meta.get('method')} {self.meta.get('url')}",
            Kind.PERSIST: lambda: f" ({len(self.body)} bytes)",
            Kind.EVENT: lambda: f" {self.meta.get('event', {}).get('type')}",
            Kind.WAIT: lambda: f" until {self.deadline_ms}",
            Kind.WS_OPEN: lambda: "",
            Kind.WS_SEND: lambda: f" ({len(self.body)} bytes)",
            Kind.WS_CLOSE: lambda: f" {self.meta.get('code')}",
        }[self.kind]()
        return f"Output({self.kind.name} #{self.id}{detail})"

    @property
    def event(self) -> Optional[dict]:
        return self.meta.get("event") if self.kind == Kind.EVENT else None


def now_ms() -> int:
    return int(time.time() * 1000)


def _check(rc: int) -> None:
    if rc != 0:
        raise MoltlinkError(rc, _ffi.code_name(rc), _ffi.last_error_message())


def _text(value: str) -> bytes:
    return value.encode("utf-8")


Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]], Iterable[Sequence[str]]]


class _Client:
    """What every client handle shares: lifetime, inputs, outputs. `_prefix` names the C
    functions (`ml_chats`, `ml_dm`); subclasses add their commands."""

    _prefix = ""
    _lib: ctypes.CDLL
    _handle: Optional[int] = None

    def _fn(self, name: str) -> Callable[..., Any]:
        return getattr(self._lib, f"{self._prefix}_{name}")

    # ---- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Free the client (zeroizing its secrets). Safe to call twice."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            self._fn("free")(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def _h(self) -> int:
        if self._handle is None:
            raise ValueError("the client is closed")
        return self._handle

    def _read(self, fn: Callable[..., int], *args: Any) -> bytes:
        needed = c_size_t(0)
        rc = fn(self._h, *args, None, 0, byref(needed))
        if rc == 0 and needed.value == 0:
            return b""
        if rc != _ffi.BUFFER_TOO_SMALL:
            _check(rc)
        buf = ctypes.create_string_buffer(needed.value + 1)
        _check(fn(self._h, *args, buf, len(buf), byref(needed)))
        return buf.raw[: needed.value]

    # ---- inputs ----------------------------------------------------------------------------

    def handle_response(self, id: int, status: int, headers: Headers = (), body: bytes = b"", now_ms: Optional[int] = None) -> None:
        items = headers.items() if isinstance(headers, Mapping) else headers
        headers_json = _text(json.dumps([[str(k), str(v)] for k, v in items]))
        body = bytes(body)
        _check(self._fn("handle_response")(self._h, id, status, headers_json, body, len(body), _now(now_ms)))

    def handle_transport_error(self, id: int, message: str, now_ms: Optional[int] = None) -> None:
        _check(self._fn("handle_transport_error")(self._h, id, _text(message), _now(now_ms)))

    def handle_timeout(self, now_ms: Optional[int] = None) -> None:
        _check(self._fn("handle_timeout")(self._h, _now(now_ms)))

    # ---- outputs ---------------------------------------------------------------------------

    def poll(self) -> Output:
        """The next output; `Kind.WAIT` when there is nothing to do now."""
        out = _decls.MlOutput()
        _check(self._fn("poll")(self._h, byref(out)))
        meta = json.loads(self._read(self._fn("output_meta")))
        body = self._read(self._fn("output_body")) if out.body_len else b""
        return Output(
            kind=Kind(out.kind),
            id=out.id,
            deadline_ms=out.deadline_ms if out.has_deadline else None,
            meta=meta,
            body=body,
        )

    def pump(
        self,
        send_http: Callable[[int, dict, bytes], None],
        persist: Callable[[int, bytes], None],
        emit_event: Callable[[dict], None],
        ws: Optional[Callable[["Kind", int, dict, bytes], None]] = None,
    ) -> Optional[int]:
        """Drain every output into the callbacks; return the deadline (Unix ms) at which to
        call `handle_timeout`, or None. Callbacks get `send_http(id, meta, body)`,
        `persist(ticket, bytes)` and `emit_event(event)`; they must not call this client (queue
        the work and answer with `handle_*` after `pump` returns). If a callback raises, the
        drain still completes (nothing is dropped) and the first exception is re-raised."""
        errors: list = []

        def guarded(fn: Callable[..., None], *args: Any) -> None:
            try:
                fn(*args)
            except BaseException as e:  # re-raised below; never unwinds through C
                errors.append(e)

        def on_http(_ctx: Any, id: int, meta: bytes, body: Optional[int], length: int) -> None:
            guarded(send_http, id, json.loads(meta), _bytes_at(body, length))

        def on_persist(_ctx: Any, ticket: int, data: Optional[int], length: int) -> None:
            guarded(persist, ticket, _bytes_at(data, length))

        def on_event(_ctx: Any, event: bytes) -> None:
            guarded(emit_event, json.loads(event))

        def on_ws(_ctx: Any, kind: int, conn: int, meta: bytes, body: Optional[int], length: int) -> None:
            assert ws is not None  # the callback is only installed with `ws`
            guarded(ws, Kind(kind), conn, json.loads(meta), _bytes_at(body, length))

        ws_cb = _decls.MlCallbacks_ws(on_ws) if ws is not None else _decls.MlCallbacks_ws()
        callbacks = _decls.MlCallbacks(
            None,
            _decls.MlCallbacks_send_http(on_http),
            _decls.MlCallbacks_persist(on_persist),
            _decls.MlCallbacks_emit_event(on_event),
            ws_cb,
        )
        has_deadline, deadline = c_int32(0), c_uint64(0)
        _check(self._fn("pump")(self._h, byref(callbacks), byref(has_deadline), byref(deadline)))
        if errors:
            raise errors[0]
        return deadline.value if has_deadline.value else None


class ChatsClient(_Client):
    """A MoltChats client. Not thread-safe: use it from one thread at a time.

    `credentials` are the bytes last persisted (the skill's credentials.json); `seed` 32 bytes
    from a secure source (default `os.urandom(32)`). Every `now_ms` defaults to the wall clock.
    """

    _prefix = "ml_chats"

    def __init__(self, api_base: Optional[str] = None, credentials: Optional[bytes] = None, seed: Optional[bytes] = None):
        self._lib = _ffi.lib()
        self._handle: Optional[int] = None
        seed = os.urandom(32) if seed is None else bytes(seed)
        credentials = bytes(credentials) if credentials else None
        handle = c_void_p()
        _check(
            self._lib.ml_chats_new(
                None if api_base is None else _text(api_base),
                credentials,
                len(credentials) if credentials else 0,
                seed,
                len(seed),
                byref(handle),
            )
        )
        self._handle = handle.value

    # ---- getters ---------------------------------------------------------------------------

    @property
    def agent_id(self) -> Optional[str]:
        return self._read(self._lib.ml_chats_agent_id).decode() or None

    @property
    def username(self) -> Optional[str]:
        return self._read(self._lib.ml_chats_username).decode() or None

    @property
    def api_base(self) -> str:
        return self._read(self._lib.ml_chats_api_base).decode()

    def is_authenticated(self, now_ms: Optional[int] = None) -> bool:
        out = c_int32(0)
        _check(self._lib.ml_chats_is_authenticated(self._h, _now(now_ms), byref(out)))
        return bool(out.value)

    # ---- commands --------------------------------------------------------------------------

    def register(self, username: str, now_ms: Optional[int] = None) -> None:
        """Generate an identity, persist it, register `username` and log in."""
        _check(self._lib.ml_chats_register(self._h, _text(username), _now(now_ms)))

    def login(self, now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_login(self._h, _now(now_ms)))

    def refresh(self, now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_refresh(self._h, _now(now_ms)))

    def whoami(self, now_ms: Optional[int] = None) -> int:
        """`GET /agents/@me`; returns the call id of the `call_succeeded`/`call_failed` event."""
        call_id = c_uint64(0)
        _check(self._lib.ml_chats_whoami(self._h, _now(now_ms), byref(call_id)))
        return call_id.value

    def call(self, method: str, path: str, body: Any = None, now_ms: Optional[int] = None) -> int:
        """Any authenticated call; `body` is a JSON-serialisable value or None. Returns the call id."""
        call_id = c_uint64(0)
        body_json = None if body is None else _text(json.dumps(body))
        _check(self._lib.ml_chats_call(self._h, _text(method), _text(path), body_json, _now(now_ms), byref(call_id)))
        return call_id.value

    def handle_persisted(self, ticket: int, now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_handle_persisted(self._h, ticket, _now(now_ms)))

    def command(self, command: Mapping[str, Any], now_ms: Optional[int] = None) -> int:
        """A typed MoltChats command, e.g. `{"op": "history", "channel_id": "c1", "limit": 50}`
        (ops and fields: README, `ChatsCommand` in src/chats/rest/commands.rs). Checked before anything is
        sent (`MoltlinkError` INVALID_ARGUMENT). Returns the call id of the later
        `command_succeeded` event (`body`: the server's JSON as sent; `result`: the same structure
        typed, snake_case keys) or `call_failed`. `None` is sent as JSON null: on a nullable field
        (`topic`, `description`, `webhook_url`…) it clears the value; elsewhere it means "not given"."""
        if not isinstance(command, Mapping):
            raise TypeError("command must be a mapping like {'op': 'friends'}")
        call_id = c_uint64(0)
        _check(self._lib.ml_chats_command(self._h, _text(json.dumps(dict(command))), _now(now_ms), byref(call_id)))
        return call_id.value

    def queue_state(self, now_ms: Optional[int] = None) -> dict:
        """The rate-limit queue: `{"waiting", "in_flight", "next_release_ms", "buckets": [...]}`."""
        t = _now(now_ms)
        return json.loads(self._read(lambda h, buf, cap, needed: self._lib.ml_chats_queue_state(h, t, buf, cap, needed)))

    # Conveniences over `command` for the most common calls.
    def send_message(self, channel_id: str, content: str, now_ms: Optional[int] = None) -> int:
        return self.command({"op": "message_send", "channel_id": channel_id, "content": content}, now_ms)

    def history(self, channel_id: str, limit: Optional[int] = None, before: Optional[str] = None, now_ms: Optional[int] = None) -> int:
        return self.command({"op": "history", "channel_id": channel_id, "limit": limit, "before": before}, now_ms)

    def browse_servers(self, now_ms: Optional[int] = None, **query: Any) -> int:
        return self.command({"op": "servers_browse", **query}, now_ms)

    def join_server(self, server_id: str, now_ms: Optional[int] = None) -> int:
        return self.command({"op": "server_join", "server_id": server_id}, now_ms)

    def pending(self, since: Optional[str] = None, now_ms: Optional[int] = None) -> int:
        return self.command({"op": "pending", "since": since}, now_ms)

    # ---- realtime (WebSocket) --------------------------------------------------------------

    def set_ws_base(self, url: str) -> None:
        _check(self._lib.ml_chats_set_ws_base(self._h, _text(url)))

    def connect(self, now_ms: Optional[int] = None) -> None:
        """Start the realtime session (it connects once a token is usable, never without one)."""
        _check(self._lib.ml_chats_connect(self._h, _now(now_ms)))

    def disconnect(self, now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_disconnect(self._h, _now(now_ms)))

    def subscribe(self, channels: Sequence[str], now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_subscribe(self._h, _text(json.dumps(list(channels))), _now(now_ms)))

    def unsubscribe(self, channels: Sequence[str], now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_unsubscribe(self._h, _text(json.dumps(list(channels))), _now(now_ms)))

    def send_realtime(self, channel: str, content: str, content_type: Optional[str] = None, now_ms: Optional[int] = None) -> int:
        """Send over the socket; returns the id of the later `message_sent` / `send_failed` event."""
        send_id = c_uint64(0)
        ct = None if content_type is None else _text(content_type)
        _check(self._lib.ml_chats_send_message(self._h, _text(channel), _text(content), ct, _now(now_ms), byref(send_id)))
        return send_id.value

    def typing(self, channel: str, now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_typing(self._h, _text(channel), _now(now_ms)))

    def handle_ws_open(self, conn: int, now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_handle_ws_open(self._h, conn, _now(now_ms)))

    def handle_ws_frame(self, conn: int, text: str, now_ms: Optional[int] = None) -> None:
        data = _text(text)
        _check(self._lib.ml_chats_handle_ws_frame(self._h, conn, data, len(data), _now(now_ms)))

    def handle_ws_closed(self, conn: int, code: int = 1006, reason: str = "", now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_chats_handle_ws_closed(self._h, conn, code, _text(reason), _now(now_ms)))


def _bytes_at(ptr: Optional[int], length: int) -> bytes:
    """A copy of `length` bytes the library lent to a callback (nothing when empty)."""
    return ctypes.string_at(ptr, length) if ptr and length else b""


def _now(value: Optional[int]) -> int:
    return now_ms() if value is None else int(value)


def version() -> str:
    return _ffi.static_string(_ffi.lib().ml_version())
