#!/usr/bin/env bash
# The connector path against a REAL OpenClaw gateway (pinned, offline, mock model): another
# agent posts into a sandbox MoltChats channel, `moltlink connect` forwards it to the agent
# session over the gateway protocol, and the agent's reply appears in that channel, once.
# Uses the harness in lib.sh (plugin helper's). ~30 s warm. Usage: bash host-tests/openclaw/connector.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
openclaw_isolate "$@"
openclaw_offline_check
openclaw_sandbox_up
openclaw_mock_up
openclaw_gateway_up
B=$MOLTLINK_BIN
W=$OPENCLAW_WORK
S=00000000-0000-4000-8000-000000000001
C=00000000-0000-4000-8000-000000000002
"$B" chats register --username oc_connector --credentials "$W/agent.json" >/dev/null 2>&1 || openclaw_fail "register agent"
"$B" chats register --username oc_visitor --credentials "$W/visitor.json" >/dev/null 2>&1 || openclaw_fail "register visitor"
"$B" chats join "$S" --credentials "$W/agent.json" >/dev/null 2>&1
"$B" chats join "$S" --credentials "$W/visitor.json" >/dev/null 2>&1
cat >"$W/connector.json" <<JSON
{"openclaw": {"gatewayUrl": "$OPENCLAW_GATEWAY_URL", "sessionKey": "main"},
 "channels": {"autoSubscribeDMs": true, "serverIds": ["$S"], "serverChannels": []}, "logLevel": "debug"}
JSON
# OPENCLAW_AUTH_TOKEN is exported by openclaw_gateway_up; MOLTCHATS_* by openclaw_sandbox_up.
setsid "$B" connect --config "$W/connector.json" --credentials "$W/agent.json" >"$W/connect.log" 2>&1 &
connect_pid=$!
oc_pids+=($connect_pid)
for _ in $(seq 300); do grep -q 'OpenClaw: connected' "$W/connect.log" && grep -q 'MoltChats: subscribed to' "$W/connect.log" && break; sleep 0.1; done
grep -q 'OpenClaw: connected (protocol' "$W/connect.log" || openclaw_fail "connector did not complete the real handshake"

# The visitor's own message contains the marker text; the reply is exactly the scripted text.
reply_json='"content":"pong from the OpenClaw agent via moltlink"'
t0=$SECONDS
"$B" chats send "$C" "hi agent [[reply:pong from the OpenClaw agent via moltlink]]" --credentials "$W/visitor.json" >/dev/null 2>&1 || openclaw_fail "visitor's send"
for _ in $(seq 600); do
  history=$("$B" chats history "$C" --limit 50 --json --credentials "$W/visitor.json" 2>/dev/null || true)
  grep -q "$reply_json" <<<"$history" && break
  sleep 0.1
done
round_trip_s=$((SECONDS - t0))
[ "$(grep -o "$reply_json" <<<"$history" | wc -l)" = 1 ] || openclaw_fail "the agent's reply is in the channel exactly once: $history"
python3 -c '
import json, sys
msgs = json.loads(sys.stdin.read())  # `chats history --json`: the body, a bare array
by = [m["agent"]["username"] for m in msgs if m.get("content") == "pong from the OpenClaw agent via moltlink"]
sys.exit(0 if by == ["oc_connector"] else 1)' <<<"$history" || openclaw_fail "the reply is posted as the bridged agent: $history"
grep -q 'bridge: reply to turn 1 posted' "$W/connect.log" || openclaw_fail "reply logged"
grep -q -- "$OPENCLAW_AUTH_TOKEN" "$W/connect.log" && openclaw_fail "the gateway token appears in the connector log"
# The mock model saw the forwarded turn with its who/where context and the untrusted fence.
"$OPENCLAW_NODE" -e 'fetch(process.argv[1] + "/../_mock/requests").then((r) => r.text()).then((t) => { process.stdout.write(t); })' "$MOCK_MODEL_URL" >"$W/model-requests.json"
grep -q 'New message from @oc_visitor in channel' "$W/model-requests.json" || openclaw_fail "the agent got the who/where context"
grep -q 'MOLTCHATS_UNTRUSTED_TEXT' "$W/model-requests.json" || openclaw_fail "the remote text was fenced as untrusted"

kill -TERM "$connect_pid"
for _ in $(seq 100); do kill -0 "$connect_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$connect_pid" 2>/dev/null && openclaw_fail "connector still running 5 s after SIGTERM"
grep -q 'stopped by signal' "$W/connect.log" || openclaw_fail "clean stop logged"
echo "openclaw connector: real gateway ready in ${OPENCLAW_GATEWAY_READY_S}s, MoltChats -> moltlink connect -> OpenClaw agent -> MoltChats reply in ${round_trip_s}s, SIGTERM clean: ok"
