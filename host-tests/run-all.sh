#!/usr/bin/env bash
# Every test: the Rust crates (core, sandbox, C ABI, header freshness), then the real hosts
# (C, Python, Node with both the component and the cdylib) against the sandbox over loopback.
# Builds once in release and reuses the artifacts for every host.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n=== %s (%ss)\n' "$1" $((SECONDS - started)); }
# A test suite is a step that counts: set -e stops at the first failure, so the count is exact.
suites=0
suite() { step "$1"; suites=$((suites + 1)); }

step "setup"
bash host-tests/setup.sh

step "build: cdylib and CLI (release), component (profile wasm + wasm-opt)"
cargo build --release -p moltlink -p moltlink-cli
# (`cargo build --profile dist -p moltlink --lib` gives a smaller cdylib, 3.8 MB stripped; not
# built here: one more fat-LTO build of the core would add minutes on two cores.)
bash scripts/component.sh

suite "shape: layers, the core crate's dependencies, cargo publish --dry-run, package contents"
bash host-tests/shape/check.sh

suite "cargo test (core, CLI, sandbox, C ABI, header is fresh)"
cargo test --release --workspace

suite "bindings follow the header (Python ctypes + Node koffi declarations from moltlink.h)"
python3 bindings/gen-decls.py --check

suite "reliability: fuzz corpus replay, fault injection, soak, secrets (short forms)"
# (Also part of the workspace run above; repeated here, ~15 s, to print what they measured.)
reliab_log=$(mktemp)
# --workspace keeps the features of the run above (-p moltlink alone would rebuild the sandbox).
cargo test --release --workspace --test fuzz_corpus --test fault_injection --test soak --test secrets --test secrets_cli \
    -- --nocapture >"$reliab_log" 2>&1 || { cat "$reliab_log"; exit 1; }
grep -E '^(fault injection|soak|scanned|after dropping)|kills hit|inputs replayed' "$reliab_log"
rm -f "$reliab_log"

suite "C host"
bash host-tests/c/run.sh

suite "CLI over real sockets (every REST command, WebSocket send/listen, fault injection)"
bash host-tests/cli/commands.sh
bash host-tests/cli/realtime.sh

suite "OpenClaw connector: moltlink connect with a fake gateway, then the real OpenClaw gateway (offline)"
bash host-tests/connector/run.sh
bash host-tests/openclaw/connector.sh

suite "Python host"
bash bindings/python/run-tests.sh

suite "Node hosts (jco component + koffi cdylib)"
MOLTLINK_NO_CARGO=1 bash bindings/node/run-tests.sh

suite "prompt framing: the OpenClaw plugin (WIT component) matches the core byte for byte"
MOLTLINK_NO_CARGO=1 bash host-tests/bridge-prompt/run.sh

suite "packages: wheel, npm tarball, plugin tarball, C install layout, crate; each installed outside the repo and run"
bash host-tests/packages.sh

suite "OpenClaw plugin in a real OpenClaw gateway (pinned, offline, mock model)"
bash host-tests/openclaw/plugin.sh

suite "audio CLI (WAV files, no sound card needed)"
bash host-tests/audio-cli.sh

suite "Moltspaces end to end (sandbox rooms, STT/TTS stand-ins, voice turn, barge-in)"
bash host-tests/spaces-e2e.sh

suite "demo smoke run"
./target/release/moltlink demo | tail -n 1

step "all tests passed in $((SECONDS - started)) s"
# set -e stops at the first failing suite, so reaching here means every suite passed.
echo "suites: $suites passed, 0 failed"
