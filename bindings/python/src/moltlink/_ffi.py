"""Loading libmoltlink with ctypes and declaring the C ABI of bindings/c/moltlink.h."""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int32,
    c_size_t,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

if sys.platform == "darwin":
    LIBRARY_NAME = "libmoltlink.dylib"
elif sys.platform == "win32":
    LIBRARY_NAME = "moltlink.dll"
else:
    LIBRARY_NAME = "libmoltlink.so"

# Return codes (ML_* in moltlink.h).
OK = 0
BUFFER_TOO_SMALL = 4


class MlOutput(Structure):
    _fields_ = [
        ("kind", c_uint32),
        ("id", c_uint64),
        ("has_deadline", c_int32),
        ("deadline_ms", c_uint64),
        ("meta_len", c_size_t),
        ("body_len", c_size_t),
    ]


SEND_HTTP = CFUNCTYPE(None, c_void_p, c_uint64, c_char_p, c_void_p, c_size_t)
PERSIST = CFUNCTYPE(None, c_void_p, c_uint64, c_void_p, c_size_t)
EMIT_EVENT = CFUNCTYPE(None, c_void_p, c_char_p)
WS = CFUNCTYPE(None, c_void_p, c_uint32, c_uint64, c_char_p, c_void_p, c_size_t)


class MlCallbacks(Structure):
    _fields_ = [
        ("ctx", c_void_p),
        ("send_http", SEND_HTTP),
        ("persist", PERSIST),
        ("emit_event", EMIT_EVENT),
        # Realtime outputs; NULL unless the realtime session is used.
        ("ws", WS),
    ]


def find_library() -> Path:
    """`$MOLTLINK_LIBRARY`, else a library shipped in this package, else
    `<repo>/target/release/<lib>` found by walking up from this file (and from the cwd)."""
    env = os.environ.get("MOLTLINK_LIBRARY")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    shipped = here / LIBRARY_NAME
    if shipped.is_file():
        return shipped
    for start in (here, Path.cwd().resolve()):
        for directory in (start, *start.parents):
            candidate = directory / "target" / "release" / LIBRARY_NAME
            if candidate.is_file():
                return candidate
    raise OSError(
        f"cannot find {LIBRARY_NAME}: set MOLTLINK_LIBRARY, or run `cargo build --release` in the moltlink repository"
    )


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    handle = c_void_p
    out_buf = (c_char_p, c_size_t, POINTER(c_size_t))
    signatures = {
        "ml_chats_new": (c_int32, [c_char_p, c_char_p, c_size_t, c_char_p, c_size_t, POINTER(c_void_p)]),
        "ml_chats_free": (None, [handle]),
        "ml_chats_register": (c_int32, [handle, c_char_p, c_uint64]),
        "ml_chats_login": (c_int32, [handle, c_uint64]),
        "ml_chats_refresh": (c_int32, [handle, c_uint64]),
        "ml_chats_whoami": (c_int32, [handle, c_uint64, POINTER(c_uint64)]),
        "ml_chats_call": (c_int32, [handle, c_char_p, c_char_p, c_char_p, c_uint64, POINTER(c_uint64)]),
        "ml_chats_command": (c_int32, [handle, c_char_p, c_uint64, POINTER(c_uint64)]),
        "ml_chats_queue_state": (c_int32, [handle, c_uint64, *out_buf]),
        "ml_chats_set_ws_base": (c_int32, [handle, c_char_p]),
        "ml_chats_connect": (c_int32, [handle, c_uint64]),
        "ml_chats_disconnect": (c_int32, [handle, c_uint64]),
        "ml_chats_subscribe": (c_int32, [handle, c_char_p, c_uint64]),
        "ml_chats_unsubscribe": (c_int32, [handle, c_char_p, c_uint64]),
        "ml_chats_send_message": (c_int32, [handle, c_char_p, c_char_p, c_char_p, c_uint64, POINTER(c_uint64)]),
        "ml_chats_typing": (c_int32, [handle, c_char_p, c_uint64]),
        "ml_chats_handle_ws_open": (c_int32, [handle, c_uint64, c_uint64]),
        "ml_chats_handle_ws_frame": (c_int32, [handle, c_uint64, c_char_p, c_size_t, c_uint64]),
        "ml_chats_handle_ws_closed": (c_int32, [handle, c_uint64, c_uint16, c_char_p, c_uint64]),
        "ml_chats_handle_response": (c_int32, [handle, c_uint64, c_uint16, c_char_p, c_char_p, c_size_t, c_uint64]),
        "ml_chats_handle_transport_error": (c_int32, [handle, c_uint64, c_char_p, c_uint64]),
        "ml_chats_handle_timeout": (c_int32, [handle, c_uint64]),
        "ml_chats_handle_persisted": (c_int32, [handle, c_uint64, c_uint64]),
        "ml_chats_poll": (c_int32, [handle, POINTER(MlOutput)]),
        "ml_chats_output_meta": (c_int32, [handle, *out_buf]),
        "ml_chats_output_body": (c_int32, [handle, *out_buf]),
        "ml_chats_pump": (c_int32, [handle, POINTER(MlCallbacks), POINTER(c_int32), POINTER(c_uint64)]),
        "ml_chats_agent_id": (c_int32, [handle, *out_buf]),
        "ml_chats_username": (c_int32, [handle, *out_buf]),
        "ml_chats_api_base": (c_int32, [handle, *out_buf]),
        "ml_chats_is_authenticated": (c_int32, [handle, c_uint64, POINTER(c_int32)]),
        "ml_dm_new": (c_int32, [c_char_p, c_char_p, c_char_p, c_size_t, POINTER(c_void_p)]),
        "ml_dm_free": (None, [handle]),
        "ml_dm_command": (c_int32, [handle, c_char_p, c_uint64, POINTER(c_uint64)]),
        "ml_dm_heartbeat": (c_int32, [handle, c_int32, c_uint64]),
        "ml_dm_state": (c_int32, [handle, c_char_p, *out_buf]),
        "ml_dm_handle_response": (c_int32, [handle, c_uint64, c_uint16, c_char_p, c_char_p, c_size_t, c_uint64]),
        "ml_dm_handle_transport_error": (c_int32, [handle, c_uint64, c_char_p, c_uint64]),
        "ml_dm_handle_timeout": (c_int32, [handle, c_uint64]),
        "ml_dm_poll": (c_int32, [handle, POINTER(MlOutput)]),
        "ml_dm_output_meta": (c_int32, [handle, *out_buf]),
        "ml_dm_output_body": (c_int32, [handle, *out_buf]),
        "ml_dm_pump": (c_int32, [handle, POINTER(MlCallbacks), POINTER(c_int32), POINTER(c_uint64)]),
        "ml_last_error_message": (c_size_t, [c_char_p, c_size_t]),
        "ml_error_code_name": (c_char_p, [c_int32]),
        "ml_version": (c_char_p, []),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first use)."""
    global _lib
    if _lib is None:
        _lib = _declare(ctypes.CDLL(str(find_library())))
    return _lib


def last_error_message() -> str:
    """The message of the last failing call on this thread."""
    needed = lib().ml_last_error_message(None, 0)
    if needed == 0:
        return ""
    buf = ctypes.create_string_buffer(needed)
    lib().ml_last_error_message(buf, needed)
    return buf.value.decode("utf-8", "replace")


def code_name(code: int) -> str:
    return lib().ml_error_code_name(code).decode("ascii")
