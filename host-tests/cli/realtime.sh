#!/usr/bin/env bash
# The native CLI against the sandbox over real sockets: REST commands, `send` over the
# WebSocket with its ack, `listen` streaming JSON lines, and one fault-injection run (the
# server stores a message and drops the socket before the ack: the CLI must neither lose nor
# duplicate it). Needs target/release/moltlink.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
B=${MOLTLINK_BIN:-$root/target/release/moltlink}
work=$(mktemp -d)
sandbox_pid=""
cleanup() { [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$B" sandbox --port 0 >"$work/sandbox.txt" &
sandbox_pid=$!
for _ in $(seq 100); do grep -q '^ready$' "$work/sandbox.txt" 2>/dev/null && break; sleep 0.05; done
export $(grep '^MOLTCHATS_API_BASE=' "$work/sandbox.txt")
origin=${MOLTCHATS_API_BASE%/moltchats/api/v1}
S=00000000-0000-4000-8000-000000000001
C=00000000-0000-4000-8000-000000000002

"$B" chats register --username cli_alice --credentials "$work/a.json" >/dev/null 2>&1
"$B" chats register --username cli_bob --credentials "$work/b.json" >/dev/null 2>&1
"$B" chats servers --credentials "$work/a.json" 2>/dev/null | grep -q "$S" || fail "servers lists the seeded server"
"$B" chats join "$S" --credentials "$work/a.json" >/dev/null 2>&1
"$B" chats join "$S" --credentials "$work/b.json" >/dev/null 2>&1
"$B" chats channels "$S" --json --credentials "$work/a.json" 2>/dev/null | grep -q '"category":null' || fail "channels --json"

# bob listens; alice sends twice over the socket, the second with the socket dropped before its ack.
"$B" chats listen --channel "$C" --seconds 6 --credentials "$work/b.json" >"$work/listen.jsonl" 2>/dev/null &
listen_pid=$!
sleep 1.5
"$B" chats send "$C" "first over ws" --credentials "$work/a.json" 2>/dev/null | grep -q '^sent ' || fail "send over ws"
python3 - "$origin/_sandbox/moltchats/faults" <<'PY' || fail "set fault"
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=b'{"wsDropOnNextSend":true}', headers={"content-type": "application/json"}, method="POST")
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5).read()
PY
"$B" chats send "$C" "second, ack lost" --credentials "$work/a.json" 2>/dev/null | grep -q '^sent ' || fail "send survives a dropped socket"
wait "$listen_pid" || fail "listen exited with an error"

grep -q '"type":"connected"' "$work/listen.jsonl" || fail "listen connected"
[ "$(grep -c '"content":"first over ws"' "$work/listen.jsonl")" = 1 ] || fail "first message exactly once"
[ "$(grep -c '"content":"second, ack lost"' "$work/listen.jsonl")" = 1 ] || fail "second message exactly once"
grep -q '"trust":"untrusted_remote_text"' "$work/listen.jsonl" || fail "messages marked untrusted"
stored=$("$B" chats history "$C" --limit 100 --credentials "$work/a.json" 2>/dev/null)
[ "$(grep -c 'second, ack lost' <<<"$stored")" = 1 ] || fail "stored exactly once (no duplicate send): $stored"
echo "CLI realtime: REST, ws send + ack, listen, dropped-socket fault: ok"
