#!/usr/bin/env bash
# The moltlink OpenClaw plugin in a real OpenClaw gateway (pinned, offline, mock model):
#  (a) another agent posts into a MoltChats channel (sandbox) → our `moltchats` channel hands it
#      to the agent → the (mock) model's reply appears in that channel;
#      and `openclaw message send --channel moltchats` reaches the channel through our sendText;
#  (b) a scripted tool call from the model reaches our `moltbook_dm_request` tool → a DM request
#      is created in the sandbox's Moltbook (checked from the target agent's side);
#  (c) scripted calls of `moltspaces_join` (creates a room, ticket token withheld from the model)
#      and `moltspaces_search` (finds it) against the sandbox's Moltspaces.
#  (d) the gateway restarted: a message posted while it was down reaches the agent once, marked
#      late; nothing handed to the agent before the stop is handed again (issue #14).
# Needs target/release/moltlink and the component (run-all.sh builds both).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${OPENCLAW_ISOLATED:-}" ]; then
  # Network needed: the plugin's one npm dependency and bindings/node's jco. Builds the plugin and
  # packs it: target/packages/moltlink-openclaw-<version>.tgz, the package users install.
  PKG_PACK_ONLY=1 bash "$root/host-tests/packages/openclaw.sh"
fi
source "$root/host-tests/openclaw/lib.sh"
openclaw_isolate "$@"
started=$SECONDS
openclaw_offline_check
openclaw_sandbox_up
openclaw_mock_up
B=$MOLTLINK_BIN
W=$OPENCLAW_WORK
S=00000000-0000-4000-8000-000000000001
C=00000000-0000-4000-8000-000000000002
run_id=$RANDOM$RANDOM

# The other agent (posts into the channel) and two Moltbook agents (ours + the DM target).
"$B" chats register --username oc_peer_$run_id --credentials "$W/peer.json" >/dev/null 2>&1 || openclaw_fail "register peer"
"$B" chats join "$S" --credentials "$W/peer.json" >/dev/null 2>&1 || openclaw_fail "peer joins"
admin() { "$OPENCLAW_NODE" -e 'fetch(process.argv[1], {method: "POST", headers: {"content-type": "application/json"}, body: process.argv[2]}).then(async (r) => { const t = await r.text(); if (!r.ok) { console.error(t); process.exit(1); } console.log(t); })' "${MOLTBOOK_API_BASE%/api/v1}/_sandbox$1" "$2"; }
our_key=$(admin /agents "{\"name\":\"ocagent$run_id\",\"owner\":\"ocowner$run_id\"}" | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
target_key=$(admin /agents "{\"name\":\"octarget$run_id\",\"owner\":\"octargetowner$run_id\"}" | sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p')
[ -n "$our_key" ] && [ -n "$target_key" ] || openclaw_fail "moltbook agents"
spaces_reg=$("$OPENCLAW_NODE" -e 'fetch(process.argv[1], {method: "POST", headers: {"content-type": "application/json"}, body: process.argv[2]}).then((r) => r.text()).then(console.log)' \
  "$MOLTSPACES_API_BASE/agents/register" "{\"name\":\"ocspaces$run_id\",\"description\":\"OpenClaw plugin test\"}")
spaces_key=$(sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p' <<<"$spaces_reg")
spaces_id=$(sed -n 's/.*"agent_id":"\([^"]*\)".*/\1/p' <<<"$spaces_reg")
[ -n "$spaces_key" ] || openclaw_fail "moltspaces agent: $spaces_reg"

# The plugin, installed from its npm tarball (offline: its dependency is vendored) into the
# throw-away OpenClaw, and its config.
plugin_version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$root/bindings/openclaw/package.json")
openclaw_install_plugin "$root/target/packages/moltlink-openclaw-$plugin_version.tgz"
openclaw_config_plugin moltlink "{\"moltbook\":{\"apiKey\":\"$our_key\",\"apiBase\":\"$MOLTBOOK_API_BASE\"},\"moltspaces\":{\"apiKey\":\"$spaces_key\",\"agentId\":\"$spaces_id\",\"agentName\":\"ocspaces$run_id\",\"apiBase\":\"$MOLTSPACES_API_BASE\"}}"
openclaw_config_merge "{\"channels\":{\"moltchats\":{\"enabled\":true,\"apiBase\":\"$MOLTCHATS_API_BASE\",\"credentialsPath\":\"$W/agent-credentials.json\",\"username\":\"oc_agent_$run_id\",\"serverIds\":[\"$S\"],\"channels\":[\"$C\"]}}}"
openclaw_gateway_up
openclaw_cli plugins list >"$W/plugins-list.log" 2>&1 || true
grep -q moltlink "$W/plugins-list.log" || openclaw_fail "plugins list shows moltlink"

log=$(openclaw_gateway_log)
for _ in $(seq 240); do grep -q 'moltchats: account default started' "$log" && break; sleep 0.25; done
grep -q 'moltchats: account default started' "$log" || openclaw_fail "the moltchats channel started"
instantiate_ms=$(sed -n 's/.*moltchats: component instantiated in \([0-9]*\) ms.*/\1/p' "$log" | head -1)

# (a) channel round trip.
t0=$SECONDS
"$B" chats send "$C" "hi agent, please answer [[reply:pong-$run_id from the agent]]" --credentials "$W/peer.json" >/dev/null 2>&1 \
  || openclaw_fail "peer sends"
# A message whose whole content is the scripted reply (the peer's own message only contains it).
has_reply_text() {
  "$B" chats history "$C" --limit 50 --json --credentials "$W/peer.json" 2>/dev/null | "$OPENCLAW_NODE" -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const hit = (v) => v && typeof v === "object" && (v.content === process.argv[1] || Object.values(v).some(hit));
      process.exit(hit(JSON.parse(s || "null")) ? 0 : 1);
    });' "$1"
}
has_reply() { has_reply_text "pong-$run_id from the agent"; }
found=""
for _ in $(seq 120); do
  if has_reply; then found=1; break; fi
  sleep 0.5
done
[ -n "$found" ] || openclaw_fail "the agent's reply appears in the MoltChats channel"
roundtrip_s=$((SECONDS - t0))
grep -q "mock-model: stream text" "$W/mock-model.log" || openclaw_fail "the turn went through the mock model"

# (a') outbound: `openclaw message send` → the gateway → our sendText → the channel.
OPENCLAW_GATEWAY_TOKEN=$OPENCLAW_AUTH_TOKEN openclaw_cli message send --channel moltchats --target "$C" \
  --message "outbound-$run_id via openclaw message send" >"$W/message-send.log" 2>&1 || openclaw_fail "openclaw message send"
found=""
for _ in $(seq 60); do
  if has_reply_text "outbound-$run_id via openclaw message send"; then found=1; break; fi
  sleep 0.5
done
[ -n "$found" ] || openclaw_fail "sendText posted to the MoltChats channel"

# (b) a tool call from the model reaches our Moltbook tool.
reply=$(openclaw_chat "[[tool:moltbook_dm_request {\"to\":\"octarget$run_id\",\"message\":\"Hello from the OpenClaw plugin test $run_id\"}]]") \
  || openclaw_fail "tool turn"
[[ "$reply" == "mock: tool moltbook_dm_request returned: "*'"type":"call_succeeded"'* ]] || openclaw_fail "tool result, got: $reply"
check=$("$OPENCLAW_NODE" -e 'fetch(process.argv[1], {headers: {authorization: `Bearer ${process.argv[2]}`}}).then((r) => r.text()).then(console.log)' \
  "$MOLTBOOK_API_BASE/agents/dm/check" "$target_key")
grep -q "ocagent$run_id" <<<"$check" || openclaw_fail "the DM request reached the target: $check"
grep -q "Hello from the OpenClaw plugin test $run_id" <<<"$check" || openclaw_fail "DM request preview: $check"

# (c) Moltspaces tools: join (no room yet: creates one; the ticket's token stays in the plugin),
#     then search finds that room.
topic="openclaw test $run_id"
reply=$(openclaw_chat "[[tool:moltspaces_join {\"topic\":\"$topic\"}]]") || openclaw_fail "spaces join turn"
[[ "$reply" == *'"type":"spaces_ticket"'* && "$reply" == *'"token":"(held by the plugin)"'* ]] || openclaw_fail "join ticket, got: $reply"
room=$(sed -n 's/.*"room_name":"\([^"]*\)".*/\1/p' <<<"$reply")
[ -n "$room" ] || openclaw_fail "room name in: $reply"
reply=$(openclaw_chat "[[tool:moltspaces_search {\"topic\":\"$topic\"}]]") || openclaw_fail "spaces search turn"
[[ "$reply" == *'"type":"spaces_rooms"'*"$room"* ]] || openclaw_fail "search finds $room, got: $reply"

# (d) Restart, lose nothing: the gateway stops right after the agent answered a message, another
#     agent posts while it is down, it starts again: the message posted meanwhile reaches the agent
#     once, marked late, and nothing handed before the stop comes again (the model's turns say
#     what the agent got; a later live message closes the backlog).
turns_with() { # how many model turns were handed text containing $1 ("late": only those marked late)
  "$OPENCLAW_NODE" -e 'fetch(process.argv[1]).then((r) => r.json()).then((turns) => console.log(turns.filter((t) =>
    t.includes(process.argv[2]) && (process.argv[3] !== "late" || t.includes("delivered late"))).length))' \
    "${MOCK_MODEL_URL%/v1}/_mock/turns" "$1" "${2:-}"
}
wait_reply() { # until a message whose whole content is $1 is in the channel (60 s)
  for _ in $(seq 120); do has_reply_text "$1" && return 0; sleep 0.5; done
  openclaw_fail "the agent's reply $1 appears in the channel"
}
t0=$SECONDS
first_ready_s=$OPENCLAW_GATEWAY_READY_S
posted_replies() { grep -c 'moltchats: reply .* posted' "$log" || true; }
replies=$(posted_replies)
"$B" chats send "$C" "just before the stop $run_id [[reply:stop-pong-$run_id]]" --rest --credentials "$W/peer.json" >/dev/null 2>&1 \
  || openclaw_fail "peer posts before the stop"
# The gateway stops as soon as the agent's reply is acknowledged (its read position is then the reply).
for _ in $(seq 240); do [ "$(posted_replies)" -gt "$replies" ] && break; sleep 0.25; done
[ "$(posted_replies)" -gt "$replies" ] || openclaw_fail "the agent replied before the stop"
openclaw_gateway_down
grep -q 'moltchats: account default stopped, read positions saved' "$W/gateway.1.log" || openclaw_fail "the channel saved its read positions on stop"
"$B" chats history "$C" --limit 5 --json --credentials "$W/peer.json" 2>/dev/null | "$OPENCLAW_NODE" -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const [newest] = JSON.parse(s), saved = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const at = saved.moltlinkResume?.readPositions?.[process.argv[2]]?.id;
    if (newest?.content !== process.argv[3] || at !== newest.id) { console.error(`saved ${at}, newest ${JSON.stringify(newest)}`); process.exit(1); }
  });' "$W/agent-credentials.json" "$C" "stop-pong-$run_id" || openclaw_fail "the read position on disk is the agent's last reply, the newest message"
"$B" chats send "$C" "while the gateway was down $run_id [[reply:restart-pong-$run_id]]" --rest --credentials "$W/peer.json" >/dev/null 2>&1 \
  || openclaw_fail "peer posts while the gateway is down"
openclaw_gateway_up
wait_reply "restart-pong-$run_id"
restart_s=$((SECONDS - t0))
"$B" chats send "$C" "after the restart $run_id [[reply:after-pong-$run_id]]" --credentials "$W/peer.json" >/dev/null 2>&1 || openclaw_fail "peer posts after the restart"
wait_reply "after-pong-$run_id"
[ "$(turns_with "while the gateway was down $run_id")" = 1 ] || openclaw_fail "the message posted while down reached the agent once ($(turns_with "while the gateway was down $run_id"))"
[ "$(turns_with "while the gateway was down $run_id" late)" = 1 ] || openclaw_fail "the message posted while down was marked late"
[ "$(turns_with "after the restart $run_id" late)" = 0 ] || openclaw_fail "a live message after the restart is not marked late"
for older in "just before the stop $run_id" "hi agent, please answer [[reply:pong-$run_id"; do
  [ "$(turns_with "$older")" = 1 ] || openclaw_fail "handed once, not again after the restart: $older ($(turns_with "$older"))"
done

# Secrets stay out of OpenClaw's logs: the agent's refresh token and the API keys.
refresh=$("$OPENCLAW_NODE" -e 'console.log(JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")).refreshToken ?? "")' "$W/agent-credentials.json")
[ -n "$refresh" ] || openclaw_fail "the channel persisted its credentials (skill format)"
for secret in "$refresh" "$our_key" "$spaces_key"; do
  ! grep -qF "$secret" "$W"/gateway*.log "$W/openclaw-file.jsonl" || openclaw_fail "a secret appears in OpenClaw's logs"
done

echo "openclaw plugin: install ${OPENCLAW_PLUGIN_INSTALL_S}s, gateway ready ${first_ready_s}s (after the restart ${OPENCLAW_GATEWAY_READY_S}s), component instantiate ${instantiate_ms:-?} ms, channel round trip ${roundtrip_s}s, message send ok, Moltbook + Moltspaces tool calls ok, gateway restart (reply, stop, post, start, reply) ${restart_s}s lost nothing and repeated nothing, offline; total $((SECONDS - started))s"
