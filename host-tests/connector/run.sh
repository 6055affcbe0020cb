#!/usr/bin/env bash
# `moltlink connect` over real sockets: the sandbox's MoltChats (REST + WebSocket) and a small
# fake OpenClaw gateway (fake-gateway.py, speaking frames recorded from a real gateway) on
# loopback. Checks: a message posted by another agent is answered in the same channel, exactly
# once, although the gateway restarts mid-turn; the token never reaches the logs; SIGTERM
# stops the daemon with exit 0; a wrong gateway token ends it with exit 1 and a clear error.
# Needs target/release/moltlink. Python venv with `websockets` at target/connector-venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${MOLTLINK_BIN:-$root/target/release/moltlink}
venv=$root/target/connector-venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import websockets' 2>/dev/null || "$venv/bin/pip" install -q --disable-pip-version-check 'websockets==15.0.1'
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -n 30 "$f"; done; exit 1; }
# Sets $history to the channel (JSON) once TEXT is in it, or after 30 s.
wait_history() {
  for _ in $(seq 300); do
    history=$("$B" chats history "$C" --limit 100 --json --credentials "$work/bob.json" 2>/dev/null || true)
    grep -qF -- "$1" <<<"$history" && return 0
    sleep 0.1
  done
}
wait_for() { # file pattern seconds
  for _ in $(seq $(($3 * 20))); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

"$B" sandbox --port 0 >"$work/sandbox.log" 2>&1 &
pids+=($!)
wait_for "$work/sandbox.log" '^ready$' 10 || fail "sandbox did not start"
export $(grep -E '^MOLTCHATS_(API|WS)_BASE=' "$work/sandbox.log")
S=00000000-0000-4000-8000-000000000001
C=00000000-0000-4000-8000-000000000002
"$B" chats register --username conn_agent --credentials "$work/agent.json" >/dev/null 2>&1
"$B" chats register --username conn_bob --credentials "$work/bob.json" >/dev/null 2>&1
"$B" chats join "$S" --credentials "$work/agent.json" >/dev/null 2>&1
"$B" chats join "$S" --credentials "$work/bob.json" >/dev/null 2>&1

TOKEN=gw-token-$RANDOM$RANDOM$RANDOM
"$venv/bin/python" "$here/fake-gateway.py" --token "$TOKEN" --restart-mid-turn --hold "asked mid-turn" --log "$work/gateway-frames.log" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_for "$work/gateway.log" '^ready$' 10 || fail "fake gateway did not start"
GW=$(sed -n 's/^FAKE_GATEWAY_URL=//p' "$work/gateway.log")

cat >"$work/connector.json" <<JSON
{"openclaw": {"gatewayUrl": "ws://127.0.0.1:1", "sessionKey": "main"},
 "channels": {"autoSubscribeDMs": true, "serverIds": [], "serverChannels": ["$C"]},
 "logLevel": "debug"}
JSON
# The env overrides the file's (unreachable) gateway URL, as the skill documents.
OPENCLAW_AUTH_TOKEN=$TOKEN OPENCLAW_GATEWAY_URL=$GW \
  "$B" connect --config "$work/connector.json" --credentials "$work/agent.json" >"$work/connect.log" 2>&1 &
connect_pid=$!
pids+=($connect_pid)
wait_for "$work/connect.log" 'OpenClaw: connected' 15 || fail "connector did not reach the gateway"
wait_for "$work/connect.log" 'MoltChats: subscribed to' 15 || fail "connector did not subscribe"

"$B" chats send "$C" "hello bridge, are you there?" --credentials "$work/bob.json" >/dev/null 2>&1 || fail "bob's send"
wait_history 'fake agent: hello bridge, are you there?'
[ "$(grep -o 'fake agent: hello bridge, are you there?' <<<"$history" | wc -l)" = 1 ] || fail "the agent's reply is in the channel exactly once: $history"
grep -q 'resending turn 1 (attempt 2, same idempotency key)' "$work/connect.log" || fail "the turn was resent after the gateway restart"
[ "$(grep -c '"chat.send"' "$work/gateway-frames.log")" = 2 ] || fail "two chat.send (first + resend)"
[ "$(grep -o '"chat.send": "[^"]*"' "$work/gateway-frames.log" | sort -u | wc -l)" = 1 ] || fail "the resend reused the idempotency key"
grep -q '"connect": \["auth", "caps", "client", "maxProtocol", "minProtocol", "role", "scopes"\]' "$work/gateway-frames.log" || fail "connect carries exactly the documented fields"
grep -q -- "$TOKEN" "$work/connect.log" && fail "the gateway token appears in the log"
grep -qE '^[0-9T:.-]+Z (DEBUG|INFO |WARN |ERROR) ' "$work/connect.log" || fail "leveled, timestamped log lines"

kill -TERM "$connect_pid"
for _ in $(seq 100); do kill -0 "$connect_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$connect_pid" 2>/dev/null && fail "connector still running 5 s after SIGTERM"
wait "$connect_pid" && code=0 || code=$?
[ "$code" = 0 ] || fail "SIGTERM exit code $code"
grep -q 'stopped by signal' "$work/connect.log" || fail "clean stop logged"

# Restart, lose nothing: a connector killed with SIGKILL, three messages posted while it is
# down, a new one started from the same credentials file: the agent answers each once, in order
# (delivered late, from the read position saved beside the credentials).
start_connector() {
  OPENCLAW_AUTH_TOKEN=$TOKEN OPENCLAW_GATEWAY_URL=$GW \
    "$B" connect --config "$work/connector.json" --credentials "$work/agent.json" >"$work/$1.log" 2>&1 &
  connect_pid=$!
  pids+=($connect_pid)
  wait_for "$work/$1.log" 'MoltChats: subscribed to' 15 || fail "$1: connector did not subscribe"
}
start_connector connect-killed
sleep 2 # the read position is saved at most a second after a delivery
kill -KILL "$connect_pid"; wait "$connect_pid" 2>/dev/null || true
for i in 1 2 3; do
  "$B" chats send "$C" "while the bridge was down $i" --rest --credentials "$work/bob.json" >/dev/null 2>&1 || fail "post $i while down"
done
start_connector connect-restarted
wait_history 'fake agent: while the bridge was down 3'
python3 - "$history" <<'PY' || fail "after the restart: each message posted while down answered once, in order: $history"
import json, sys
replies = [m["content"] for m in reversed(json.loads(sys.argv[1])) if m["content"].startswith("fake agent: ")]
want = [f"fake agent: while the bridge was down {i}" for i in (1, 2, 3)]
assert [r for r in replies if "while the bridge was down" in r] == want, replies
assert replies.count("fake agent: hello bridge, are you there?") == 1, replies
PY
kill -TERM "$connect_pid"; wait "$connect_pid" 2>/dev/null || true

# Killed mid-turn: the agent is still thinking about a message (the fake gateway holds that run)
# when the connector dies with SIGKILL. Its read position is saved only once a turn is over, so
# the restarted connector hands the message to the agent again and the reply lands once.
start_connector connect-midturn
"$B" chats send "$C" "asked mid-turn: still thinking?" --rest --credentials "$work/bob.json" >/dev/null 2>&1 || fail "post mid-turn"
wait_for "$work/connect-midturn.log" 'bridge: message from @conn_bob' 15 || fail "the mid-turn message reached the agent"
sleep 2 # longer than the save interval: a position saved at delivery would be on disk now
kill -KILL "$connect_pid"; wait "$connect_pid" 2>/dev/null || true
start_connector connect-after-midturn
wait_history 'fake agent: asked mid-turn: still thinking?'
python3 - "$history" <<'PY' || fail "after a kill mid-turn: the turn retried and answered once, nothing else repeated: $history"
import json, sys
replies = [m["content"] for m in json.loads(sys.argv[1]) if m["content"].startswith("fake agent: ")]
assert replies.count("fake agent: asked mid-turn: still thinking?") == 1, replies
for i in (1, 2, 3):
    assert replies.count(f"fake agent: while the bridge was down {i}") == 1, replies
PY
kill -TERM "$connect_pid"; wait "$connect_pid" 2>/dev/null || true

# A wrong token: the connector stops with exit 1 and says why.
set +e
OPENCLAW_AUTH_TOKEN=wrong OPENCLAW_GATEWAY_URL=$GW timeout 20 \
  "$B" connect --config "$work/connector.json" --credentials "$work/agent.json" >"$work/refused.log" 2>&1
code=$?
set -e
[ "$code" = 1 ] || fail "wrong token exit code $code"
grep -q 'AUTH_TOKEN_MISMATCH' "$work/refused.log" || fail "the refusal is explained"
# Without a token it refuses to start.
OPENCLAW_AUTH_TOKEN= "$B" connect --config "$work/connector.json" --credentials "$work/agent.json" >"$work/notoken.log" 2>&1 && fail "started without a token"
grep -q 'OPENCLAW_AUTH_TOKEN is required' "$work/notoken.log" || fail "missing token explained"
echo "connector: round trip through a restarting gateway, one reply, SIGTERM exit 0, SIGKILL + restart answers what was posted meanwhile once in order, SIGKILL mid-turn retries the turn once, refused token exit 1: ok"
