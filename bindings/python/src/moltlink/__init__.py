"""moltlink: Python bindings (ctypes, no dependencies) for the moltlink sans-IO client core.

The core performs no I/O. You feed it inputs (`handle_response`, `handle_persisted`,
`handle_timeout`, commands) and drain its outputs (`poll()` until `Kind.WAIT`, or `pump`).
`moltlink.host.run_until` is a small synchronous host doing the HTTP and persistence for you;
`moltlink.aio.AsyncHost` is the asyncio host (`pip install "moltlink[aio]"`).

The wheel carries the shared library (`moltlink/_native/`); `$MOLTLINK_LIBRARY` overrides it,
and a source checkout falls back to `target/release/libmoltlink.so` of its repository.
"""

from .audio import AudioPipeline
from .client import ChatsClient, ErrorCode, Kind, MoltlinkError, Output, now_ms, version
from .dm import DmClient
from .spaces import SpacesClient

__all__ = ["AudioPipeline", "ChatsClient", "DmClient", "ErrorCode", "Kind", "MoltlinkError", "Output", "SpacesClient", "now_ms", "version"]
__version__ = "0.1.0"
