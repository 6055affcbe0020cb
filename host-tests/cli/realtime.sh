#!/usr/bin/env bash
# The native CLI against the sandbox over real sockets: REST commands, `send` over the
# WebSocket with its ack, `listen` streaming JSON lines, and one fault-injection run (the
# server stores a message and drops the socket before the ack: the CLI must neither lose nor
# duplicate it). Needs target/release/moltlink.
set -euo pipefail
source "$(dirname "$0")/sandbox.sh"

"$B" chats register --username cli_alice --credentials "$work/a.json" >/dev/null 2>&1
"$B" chats register --username cli_bob --credentials "$work/b.json" >/dev/null 2>&1
"$B" chats servers --credentials "$work/a.json" 2>/dev/null | has "$S" || fail "servers lists the seeded server"
"$B" chats join "$S" --credentials "$work/a.json" >/dev/null 2>&1
"$B" chats join "$S" --credentials "$work/b.json" >/dev/null 2>&1
"$B" chats channels "$S" --json --credentials "$work/a.json" 2>/dev/null | has '"category":null' || fail "channels --json"

# bob listens; alice sends twice over the socket, the second with the socket dropped before its ack.
"$B" chats listen --channel "$C" --seconds 6 --credentials "$work/b.json" >"$work/listen.jsonl" 2>/dev/null &
listen_pid=$!
sleep 1.5
"$B" chats send "$C" "first over ws" --credentials "$work/a.json" 2>/dev/null | has '^sent ' || fail "send over ws"
python3 - "$origin/_sandbox/moltchats/faults" <<'PY' || fail "set fault"
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=b'{"wsDropOnNextSend":true}', headers={"content-type": "application/json"}, method="POST")
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5).read()
PY
"$B" chats send "$C" "second, ack lost" --credentials "$work/a.json" 2>/dev/null | has '^sent ' || fail "send survives a dropped socket"
wait "$listen_pid" || fail "listen exited with an error"

grep -q '"type":"connected"' "$work/listen.jsonl" || fail "listen connected"
[ "$(grep -c '"content":"first over ws"' "$work/listen.jsonl")" = 1 ] || fail "first message exactly once"
[ "$(grep -c '"content":"second, ack lost"' "$work/listen.jsonl")" = 1 ] || fail "second message exactly once"
grep -q '"trust":"untrusted_remote_text"' "$work/listen.jsonl" || fail "messages marked untrusted"
stored=$("$B" chats history "$C" --limit 100 --credentials "$work/a.json" 2>/dev/null)
[ "$(grep -c 'second, ack lost' <<<"$stored")" = 1 ] || fail "stored exactly once (no duplicate send): $stored"

# Restart lose nothing: bob's listen stopped above; alice posts three messages while he is
# away (one killed with SIGKILL mid-listen first); the next listen delivers each once, in order,
# marked late (`backfilled`), from the position saved in bob's credentials file.
grep -q '"moltlinkResume"' "$work/b.json" || fail "listen saved its read position beside the credentials"
"$B" chats listen --channel "$C" --seconds 30 --credentials "$work/b.json" >/dev/null 2>&1 &
kill_pid=$!
sleep 2
kill -KILL "$kill_pid"; wait "$kill_pid" 2>/dev/null || true
for i in 1 2 3; do
  "$B" chats send "$C" "while away $i" --rest --credentials "$work/a.json" >/dev/null 2>&1 || fail "post while away $i"
done
"$B" chats listen --channel "$C" --seconds 4 --credentials "$work/b.json" >"$work/listen2.jsonl" 2>/dev/null || fail "listen after restart"
python3 - "$work/listen2.jsonl" <<'PY' || fail "restarted listen: each message posted while away once, in order, late"
import json, sys
msgs = [e for e in map(json.loads, open(sys.argv[1])) if e.get("type") == "message"]
got = [(m["message"]["content"], m["backfilled"]) for m in msgs]
want = [(f"while away {i}", True) for i in (1, 2, 3)]
assert got == want, got
PY

# Limits survive restarts: every `chats send` is a new process; 30 of them (the channel's
# limit a minute over REST) use up the window, so the 31st waits for it
# (and gives up after --timeout, saying why) instead of sending into a 429. The sandbox counts
# every 429 and rate-limit frame it answered: none.
"$B" chats register --username cli_carol --credentials "$work/c.json" >/dev/null 2>&1
"$B" chats join "$S" --credentials "$work/c.json" >/dev/null 2>&1
for i in $(seq 1 30); do
  "$B" chats send "$C" "burst $i" --rest --credentials "$work/c.json" >/dev/null 2>"$work/burst.err" || fail "burst send $i: $(cat "$work/burst.err")"
done
out=$("$B" chats send "$C" "one too many" --rest --timeout 2 --credentials "$work/c.json" 2>&1) && fail "the 31st send in a minute went out"
grep -q 'waiting for the rate limit of `channel:'"$C"'`' <<<"$out" || fail "the wait is explained: $out"
stats=$(curl -sf --noproxy '*' "$origin/_sandbox/moltchats/stats") || fail "sandbox stats"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["rateLimited"] == 0, d' "$stats" || fail "a restarted sender hit the server's limit: $stats"

echo "CLI realtime: REST, ws send + ack, listen, dropped-socket fault, restart without loss, limits kept across 31 processes: ok"
