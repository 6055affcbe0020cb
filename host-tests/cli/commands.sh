#!/usr/bin/env bash
# Every MoltChats REST command through the CLI against the sandbox over real HTTP: `--json`
# prints the server's body as sent (camelCase), `--typed` the core's typed result (snake_case),
# plain output is readable lines, and failures exit nonzero with the server's code on stderr.
# Needs target/release/moltlink.
set -euo pipefail
source "$(dirname "$0")/sandbox.sh"

# The agents here are untrusted (no trust row); let them create servers, as a trusted one could.
python3 - "$origin/_sandbox/moltchats/faults" <<'PY' || fail "set fault"
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=b'{"requireTrustForServers":false}', headers={"content-type": "application/json"}, method="POST")
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5).read()
PY

# as NAME ARGS…: run `moltlink chats ARGS` as that agent; stdout only.
as() { local who=$1; shift; "$B" chats "$@" --credentials "$work/$who.json" 2>"$work/stderr"; }
# check 'PYTHON EXPR' MESSAGE: the expression over `d` (stdin parsed as JSON) must be true.
check() { python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" || fail "$2"; }
# get 'PYTHON EXPR': print the expression over `d` (stdin parsed as JSON).
get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# fails CODE ARGS…: the command must exit nonzero, print nothing on stdout and name CODE on stderr.
fails() {
  local code=$1; shift
  local out; if out=$(as "$@"); then fail "$* should fail"; fi
  [ -z "$out" ] || fail "$* printed on stdout: $out"
  grep -q "^error: .*$code" "$work/stderr" || fail "$* names $code: $(cat "$work/stderr")"
}

"$B" chats register --username cli_owner --credentials "$work/owner.json" >/dev/null 2>&1
"$B" chats register --username cli_member --credentials "$work/member.json" >/dev/null 2>&1

# ── servers ──
sid=$(as owner server-create "CLI Lab" --description "a lab" --tag test --json | get 'd["server"]["id"]')
as owner server-get "$sid" --json | check 'd["name"] == "CLI Lab" and d["memberCount"] == 1 and d["channels"][0]["name"] == "general" and list(d)[:2] == ["id", "name"]' "server-get --json is the body"
as owner server-get "$sid" --json --typed | check 'd["member_count"] == 1 and "memberCount" not in d and d["owner_agent_id"]' "server-get --typed is the typed result"
as owner server-get "$sid" | has "^$sid  CLI Lab  (1 members)$" || fail "server-get readable line"
as owner server-patch "$sid" --name "CLI Lab 2" --clear description --private --report-threshold 5 --json \
  | check 'd["server"]["name"] == "CLI Lab 2" and d["server"]["description"] is None and d["server"]["isPublic"] is False and d["server"]["reportThreshold"] == 5' "server-patch"
as owner server-instructions "$sid" "be precise" --json | check 'd == {"success": True}' "server-instructions"
as owner server-instructions "$sid" "be precise" | has -x "server_instructions: ok" || fail "ack line"
as owner server-get "$sid" --json | check 'd["instructions"] == "be precise"' "instructions stored"
as owner servers --mine --json | check '[s["role"] for s in d["servers"] if s["id"] == "'"$sid"'"] == ["owner"]' "servers --mine"
fails NOT_SERVER_OWNER member server-patch "$sid" --name nope --json

# ── channels ──
cid=$(as owner channel-create "$sid" lab --category Wire --type announcement --topic "the lab" --position 2 --json | get 'd["channel"]["id"]')
as owner channels "$sid" --json | check '[c["name"] for c in d["channels"]["Wire"]] == ["lab"] and d["channels"]["Wire"][0]["type"] == "announcement"' "channels grouped by category"
as owner channels "$sid" | has "^$cid  #lab  \[Wire\]  — the lab$" || fail "channels readable line"
as owner channel-patch "$cid" --topic "new topic" --clear category --position 1 --json \
  | check 'd["channel"]["topic"] == "new topic" and d["channel"]["category"] is None and d["channel"]["position"] == 1' "channel-patch"
as owner channel-patch "$cid" --topic x --clear topic >/dev/null 2>&1 && fail "--topic with --clear topic is refused"
as owner channel-instructions "$cid" "stay on topic" --json | check 'd == {"success": True}' "channel-instructions"
as owner server-get "$sid" --json | check '[c["instructions"] for c in d["channels"] if c["id"] == "'"$cid"'"] == ["stay on topic"]' "channel instructions stored"

# ── bans, membership ──
as member join "$sid" --json | check 'd == {"ok": True}' "join"
as owner ban "$sid" cli_member --reason spam --json | check 'd == {"success": True}' "ban"
as owner bans "$sid" --json | check 'isinstance(d, list) and d[0]["username"] == "cli_member" and d[0]["reason"] == "spam" and d[0]["autoBan"] is False' "bans is a bare array"
as owner bans "$sid" | has -x "@cli_member  spam" || fail "bans readable line"
fails BANNED_FROM_SERVER member join "$sid" --json
as owner unban "$sid" cli_member --json | check 'd == {"success": True}' "unban"
as owner bans "$sid" --json | check 'd == []' "no bans left"
as member join "$sid" >/dev/null
as member server-leave "$sid" --json | check 'd == {"ok": True}' "server-leave"
fails VALIDATION_ERROR owner server-leave "$sid"

# ── messages: feed, search, report ──
as owner join "$S" >/dev/null
as member join "$S" >/dev/null
as owner send "$C" "hello from the CLI" --rest --json | check 'd["content"] == "hello from the CLI" and "channelId" in d' "send --rest --json"
as member feed --limit 5 --json | check 'isinstance(d, list) and d[0]["content"] == "hello from the CLI" and d[0]["serverName"]' "feed is a bare array"
as member feed --limit 5 | has '#general in .*  cli_owner: hello from the CLI$' || fail "feed readable line"
as member history "$C" --limit 5 --json --typed | check 'd[0]["agent"]["username"] == "cli_owner" and "created_at" in d[0]' "history --typed"
as member search cli_ --type agents --json | check 'd["type"] == "agents" and {r["username"] for r in d["results"]} >= {"cli_owner", "cli_member"}' "search agents"
as member search Sandbox --json | check 'd["type"] == "servers" and any(r["id"] == "'"$S"'" for r in d["results"])' "search servers (default type)"
as member channel-report "$C" cli_owner --reason test --json | check 'd == {"success": True}' "channel-report"

# ── agents, config, webhooks ──
as member agent-get cli_owner --json | check 'd["username"] == "cli_owner" and "trustTier" in d' "agent-get"
as member agent-get cli_owner | has -x "username: cli_owner" || fail "agent-get readable"
as owner agent-config-get --json | check 'd["idleTimeoutSeconds"] == 360' "agent-config-get"
as owner agent-config-patch --idle-timeout-seconds 120 --webhook-event dm.received --json | check 'd["idleTimeoutSeconds"] == 120 and d["webhookEvents"] == ["dm.received"]' "agent-config-patch"
if as owner agent-config-patch --idle-timeout-seconds 10; then fail "idle timeout 10 is refused"; fi
grep -q "30-3600" "$work/stderr" || fail "the limit is named: $(cat "$work/stderr")"
as owner webhooks-config-put --webhook-url "$origin/nowhere" --webhook-event dm.received --json | check 'd["webhookUrl"].endswith("/nowhere")' "webhooks-config-put"
as owner webhooks-config-get --json | check 'd["webhookEvents"] == ["dm.received"]' "webhooks-config-get"
as owner webhooks-test --json | check '"success" in d' "webhooks-test"
as owner webhooks-config-put --clear webhook-url --json | check 'd["webhookUrl"] is None' "webhook url cleared"

# ── trust ──
as owner trust-me --json | check 'd["tier"] == "untrusted" and d["vouchesGiven"] == []' "trust-me"
as owner trust-me | has -x "tier: untrusted" || fail "trust-me readable"
as owner trust-get cli_member --json | check 'd["username"] == "cli_member" and "vouchesReceived" in d' "trust-get"
fails NOT_FOUND owner trust-challenge 00000000-0000-4000-8000-0000000000cc
# The socket's trust ops: the ack frame as sent, or the server's TRUST_ERROR.
as owner flag cli_member --reason "testing" --json | check 'd == {"op": "flag_ack", "target": "cli_member"}' "flag"
fails TRUST_ERROR owner flag cli_member
fails TRUST_ERROR owner vouch cli_member

# ── friends, blocks, pending ──
as owner friend-request cli_member --json | check '"requestId" in d' "friend-request"
rid=$(as member friend-requests --json | get 'd["incoming"][0]["id"]')
as member pending --json | check '[q["fromUsername"] for q in d["pendingFriendRequests"]] == ["cli_owner"]' "pending"
as member friend-accept "$rid" --json | check 'd["friendUsername"] == "cli_owner"' "friend-accept"
as owner friends --json | check 'd["friends"][0]["presence"] and d["friends"][0]["username"] == "cli_member"' "friends --json (.friends[0].presence)"
as owner friend-remove cli_member --json | check 'd == {"ok": True}' "friend-remove"
as owner friends --json | check 'd == {"friends": []}' "no friends left"
fails NOT_FRIENDS owner friend-remove cli_member --json
as owner block cli_member >/dev/null
as owner blocks --json | check '[b["username"] for b in d["blocked"]] == ["cli_member"]' "blocks"
as owner unblock cli_member >/dev/null

# ── deletes ──
as owner channel-delete "$cid" --json | check 'd == {"ok": True}' "channel-delete"
as owner server-delete "$sid" --json | check 'd == {"ok": True}' "server-delete"
fails SERVER_NOT_FOUND owner server-get "$sid"

# ── usage ──
help=$("$B" chats --help)
for c in server-get server-patch channel-patch bans feed search friend-remove trust-me agent-config-patch webhooks-config-put vouch flag; do
  grep -q "^  $c " <<<"$help" || fail "chats --help lists $c"
done
"$B" chats trust-me --typed >/dev/null 2>&1 && fail "--typed needs --json"

# ── one-shot commands end ──
# An unreachable API base: a bounded retry, then the last error and a non-zero exit.
started=$SECONDS
out=$(MOLTCHATS_API_BASE=http://127.0.0.1:9/api/v1 "$B" chats whoami --credentials "$work/owner.json" --timeout 3 2>&1) && fail "whoami against an unreachable base succeeded"
grep -q "gave up after 3 s.*last: .*refused" <<<"$out" || fail "unreachable base: no clear error: $out"
[ $((SECONDS - started)) -le 15 ] || fail "whoami --timeout 3 took $((SECONDS - started)) s"
# A missing identity names the file looked for.
out=$("$B" chats whoami --credentials "$work/nobody.json" 2>&1) && fail "whoami without an identity succeeded"
grep -q "$work/nobody.json does not exist" <<<"$out" || fail "missing identity: $out"
echo "CLI commands: every REST command and the socket trust ops over real HTTP/WebSocket (body, typed result, readable lines, errors): ok"
