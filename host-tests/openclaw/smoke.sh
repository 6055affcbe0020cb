#!/usr/bin/env bash
# The harness alone: a real OpenClaw gateway (pinned) with the mock model, offline, one chat turn
# per scripted reply kind. ~25 s warm. Usage: bash host-tests/openclaw/smoke.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
openclaw_isolate "$@"
openclaw_offline_check
openclaw_mock_up
openclaw_gateway_up
reply=$(openclaw_chat "hello [[reply:pong from mock]]") || openclaw_fail "chat turn"
[ "$reply" = "pong from mock" ] || openclaw_fail "scripted reply, got: $reply"
reply=$(openclaw_chat "second turn") || openclaw_fail "chat turn"
[[ "$reply" == "mock reply: "*"second turn" ]] || openclaw_fail "default reply, got: $reply"
echo "openclaw harness smoke: gateway ready in ${OPENCLAW_GATEWAY_READY_S}s, two turns through the mock model, offline: ok"
