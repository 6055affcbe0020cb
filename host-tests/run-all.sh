#!/usr/bin/env bash
# Every test: the Rust crates (core, sandbox, C ABI, header freshness), then the real hosts
# (C, Python, Node with both the component and the cdylib) against the sandbox over loopback.
# Builds once in release and reuses the artifacts for every host.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n=== %s (%ss)\n' "$1" $((SECONDS - started)); }

step "setup"
bash host-tests/setup.sh

step "build: cdylib, CLI, wasm32-wasip2 component"
cargo build --release -p moltlink --lib --bins
cargo build --release -p moltlink --lib --target wasm32-wasip2
wasm=target/wasm32-wasip2/release/moltlink.wasm
magic=$(head -c 8 "$wasm" | od -An -tx1 | tr -d ' \n')
[ "$magic" = "0061736d0d000100" ] || { echo "$wasm is not a component (magic $magic)"; exit 1; }
echo "component: $wasm ($(stat -c %s "$wasm") bytes), cdylib: $(stat -c %s target/release/libmoltlink.so) bytes"

step "cargo test (core, sandbox, C ABI, header is fresh)"
cargo test --release --workspace

step "reliability: fuzz corpus replay, fault injection, soak, secrets (short forms)"
# (Also part of the workspace run above; repeated here, ~15 s, to print what they measured.)
reliab_log=$(mktemp)
cargo test --release -p moltlink --test fuzz_corpus --test fault_injection --test soak --test secrets -- --nocapture \
    >"$reliab_log" 2>&1 || { cat "$reliab_log"; exit 1; }
grep -E '^(fault injection|soak|scanned|after dropping)|kills hit|inputs replayed' "$reliab_log"
rm -f "$reliab_log"

step "C host"
bash host-tests/c/run.sh

step "CLI over real sockets (REST, WebSocket send/listen, fault injection)"
bash host-tests/cli/realtime.sh

step "Python host"
bash bindings/python/run-tests.sh

step "Node hosts (jco component + koffi cdylib)"
MOLTLINK_NO_CARGO=1 bash bindings/node/run-tests.sh

step "audio CLI (WAV files, no sound card needed)"
bash host-tests/audio-cli.sh

step "demo smoke run"
./target/release/moltlink demo | tail -n 1

step "all tests passed in $((SECONDS - started)) s"
# set -e stops at the first failing suite, so reaching here means every suite passed.
echo "suites: 8 passed, 0 failed"
