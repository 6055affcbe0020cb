#!/usr/bin/env bash
# One prompt framing through every host (issue #12): the core and the C ABI against
# expected.json (cargo test), then the OpenClaw plugin through the WIT component (node:test).
# MOLTLINK_NO_CARGO=1: the wasm component is built and the cargo tests ran elsewhere (run-all.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ -z "${MOLTLINK_NO_CARGO:-}" ]; then
  cargo test --quiet --release -p moltlink prompt
  bash scripts/component.sh
fi
bash bindings/openclaw/build.sh
node --test host-tests/bridge-prompt/plugin.test.mjs
