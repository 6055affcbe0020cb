#!/usr/bin/env bash
# The Python package as a user gets it: build the wheel (maturin, into target/wheels/), install
# it with its `aio` and `sync` extras into a fresh venv in a temporary directory outside the
# repository, and from there run a short program against the sandbox through the installed
# package: the synchronous host (register, whoami, reload), the asyncio host (login, realtime
# round trip) and the aio_chat example. No MOLTLINK_LIBRARY, no PYTHONPATH, no checkout paths.
# Needs target/release/moltlink (the sandbox); builds it if missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
sandbox_bin=${MOLTLINK_BIN:-$CARGO_TARGET_DIR/release/moltlink}
[[ -x $sandbox_bin ]] || (cd "$root" && cargo build --release -p moltlink-cli)

wheel=$(bash "$root/bindings/python/build-wheel.sh")
echo "wheel: $(basename "$wheel") ($(stat -c %s "$wheel") bytes)"
case $(basename "$wheel") in *-none-any.whl) echo "the wheel is not platform-tagged" >&2; exit 1 ;; esac

tmp=$(mktemp -d)
sandbox_pid=
cleanup() {
    # `wait` returns the sandbox's 143 (SIGTERM): not this script's failure.
    if [[ -n $sandbox_pid ]]; then kill "$sandbox_pid" 2>/dev/null || true; wait "$sandbox_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "$wheel[aio,sync]"
unset MOLTLINK_LIBRARY PYTHONPATH
cd "$tmp"

"$sandbox_bin" sandbox --port 0 >"$tmp/sandbox.out" &
sandbox_pid=$!
for _ in $(seq 100); do grep -qx ready "$tmp/sandbox.out" && break; sleep 0.1; done
grep -qx ready "$tmp/sandbox.out" || { echo "the sandbox did not start" >&2; exit 1; }
api=$(sed -n 's/^MOLTCHATS_API_BASE=//p' "$tmp/sandbox.out")

cat >"$tmp/check.py" <<'PY'
"""Sync and asyncio hosts through the installed package only."""
import asyncio
import sys
import uuid
from pathlib import Path

import moltlink
from moltlink import ChatsClient, _ffi
from moltlink.aio import AsyncHost
from moltlink.host import run_until

api, here = sys.argv[1], Path.cwd()
lib = _ffi.find_library()
assert "site-packages" in moltlink.__file__ and lib.parent.name == "_native", (moltlink.__file__, lib)
print(f"moltlink {moltlink.version()} from {Path(moltlink.__file__).parent}, library {lib.name} ({lib.stat().st_size} bytes)")

# The synchronous host, as in the README.
path = here / "sync.json"
with ChatsClient(api_base=api) as client:
    client.register("pkg_" + uuid.uuid4().hex[:10])
    run_until(client, lambda e: e["type"] == "authenticated", path)
    call = client.whoami()
    me = run_until(client, lambda e: e.get("call_id") == call, path)["body"]
with ChatsClient(credentials=path.read_bytes()) as again:
    again.login()
    run_until(again, lambda e: e["type"] == "authenticated", path)
    assert again.username == me["username"]
print(f"sync: registered, whoami {me['username']}, logged in again from {path.name}")

# The asyncio host: login, then a realtime session.
async def main() -> None:
    client = ChatsClient(api_base=api)
    async with AsyncHost(client, here / "aio.json") as host:
        client.register("pkg_aio_" + uuid.uuid4().hex[:8])
        event = await host.run_until(lambda e: e["type"] == "authenticated")
        call = client.join_server("00000000-0000-4000-8000-000000000001")
        await host.run_until(lambda e: e.get("call_id") == call)
        client.connect()
        channel = "00000000-0000-4000-8000-000000000002"
        client.subscribe([channel])
        await host.run_until(lambda e: e["type"] == "subscribed")
        sid = client.send_realtime(channel, "hello from the installed wheel")
        sent = await host.run_until(lambda e: e.get("send_id") == sid)
        assert sent["type"] == "message_sent", sent
        client.disconnect()
    client.close()
    print(f"aio: {event['username']} authenticated, realtime send {sent['type']}")

asyncio.run(main())
PY
"$tmp/venv/bin/python" "$tmp/check.py" "$api"
MOLTCHATS_API_BASE=$api "$tmp/venv/bin/python" "$root/bindings/python/examples/aio_chat.py" --state-dir "$tmp" | tee "$tmp/example.out"
grep -q "bob received: hello from alice" "$tmp/example.out"
echo "python package: OK"
