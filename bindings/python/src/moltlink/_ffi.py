"""Loading libmoltlink with ctypes. The C ABI (structs, callback types, function signatures)
is declared in `_decls`, generated from bindings/c/moltlink.h by bindings/gen-decls.py."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from . import _decls

if sys.platform == "darwin":
    LIBRARY_NAME = "libmoltlink.dylib"
elif sys.platform == "win32":
    LIBRARY_NAME = "moltlink.dll"
else:
    LIBRARY_NAME = "libmoltlink.so"

# Return codes the wrappers test for (ML_* in moltlink.h).
OK = _decls.ML_OK
BUFFER_TOO_SMALL = _decls.ML_BUFFER_TOO_SMALL


#: Where the wheel (maturin, bindings/python/build-wheel.sh) puts the library in the package.
BUNDLED_NAME = {"darwin": "lib_native.dylib", "win32": "_native.dll"}.get(sys.platform, "lib_native.so")


def find_library() -> Path:
    """`$MOLTLINK_LIBRARY` (an explicit override), else the library bundled in the wheel
    (`moltlink/_native/`), else a `libmoltlink.so` copied into the package, else
    `<repo>/target/release/<lib>` found by walking up from this file and from the cwd (a checkout)."""
    env = os.environ.get("MOLTLINK_LIBRARY")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for shipped in (here / "_native" / BUNDLED_NAME, here / LIBRARY_NAME):
        if shipped.is_file():
            return shipped
    for start in (here, Path.cwd().resolve()):
        for directory in (start, *start.parents):
            candidate = directory / "target" / "release" / LIBRARY_NAME
            if candidate.is_file():
                return candidate
    raise OSError(
        f"cannot find {LIBRARY_NAME}: install the moltlink wheel, set MOLTLINK_LIBRARY, "
        "or run `cargo build --release` in the moltlink repository"
    )


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first use)."""
    global _lib
    if _lib is None:
        _lib = _decls.declare(ctypes.CDLL(str(find_library())))
    return _lib


def last_error_message() -> str:
    """The message of the last failing call on this thread."""
    needed = lib().ml_last_error_message(None, 0)
    if needed == 0:
        return ""
    buf = ctypes.create_string_buffer(needed)
    lib().ml_last_error_message(buf, needed)
    return buf.value.decode("utf-8", "replace")


def static_string(ptr: int | None) -> str:
    """A static string returned by the library (declared `c_void_p`; never freed)."""
    return ctypes.string_at(ptr).decode("utf-8") if ptr else ""


def code_name(code: int) -> str:
    return static_string(lib().ml_error_code_name(code))
