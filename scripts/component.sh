#!/usr/bin/env bash
# Builds the shipped WIT component once, for every consumer (bindings/node, bindings/openclaw,
# host-tests): `cargo build --profile wasm --target wasm32-wasip2` (size-optimised), then
# `jco opt`, which runs binaryen's wasm-opt (the npm package `binaryen`, a dependency of
# bindings/node's pinned jco) on each core module inside the component — wasm-opt alone does not
# read components. Result: target/component/moltlink.wasm. Incremental: wasm-opt runs only when
# cargo produced a new module. MOLTLINK_NO_CARGO=1 skips cargo (the raw module is built already).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
raw=${CARGO_TARGET_DIR:-$root/target}/wasm32-wasip2/wasm/moltlink.wasm
out=$root/target/component/moltlink.wasm

if [ -z "${MOLTLINK_NO_CARGO:-}" ]; then
  cargo build --quiet --profile wasm -p moltlink --lib --target wasm32-wasip2
fi
[ -f "$raw" ] || { echo "scripts/component.sh: $raw is missing (cargo build --profile wasm --target wasm32-wasip2)" >&2; exit 1; }

if [ ! -f "$out" ] || [ "$raw" -nt "$out" ]; then
  jco=bindings/node/node_modules/.bin/jco
  if [ ! -x "$jco" ]; then
    # Same fallback as bindings/node/run-tests.sh: `npm ci`, else the lock's versions via install.
    (cd bindings/node && { npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error; })
  fi
  mkdir -p "$(dirname "$out")"
  # -Oz: smallest; the name, producers and features sections are of no use to a shipped component.
  log=$(mktemp)
  if ! "$jco" opt "$raw" -o "$out.tmp" --quiet -- -Oz --strip-debug --strip-producers --strip-target-features >"$log" 2>&1; then
    head -c 4000 "$log" >&2; rm -f "$log" "$out.tmp"; exit 1
  fi
  rm -f "$log"
  mv "$out.tmp" "$out"
fi

# A component, not a core module (layer 1 in the preamble's version field).
magic=$(head -c 8 "$out" | od -An -tx1 | tr -d ' \n')
[ "$magic" = "0061736d0d000100" ] || { echo "scripts/component.sh: $out is not a component (magic $magic)" >&2; exit 1; }
echo "component: target/component/moltlink.wasm ($(stat -c %s "$out") bytes, $(gzip -9c "$out" | wc -c) gzipped; before wasm-opt $(stat -c %s "$raw"))"
