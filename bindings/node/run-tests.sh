#!/usr/bin/env bash
# Node host tests: both backends (WIT component via jco, cdylib via koffi) against the sandbox.
# Builds (incrementally) the artifacts it tests so they are never stale:
#   cargo build --release -p moltlink -p moltlink-cli      (libmoltlink.so + the sandbox CLI)
#   bash scripts/component.sh  (target/component/moltlink.wasm: the size-optimised component)
# MOLTLINK_NO_CARGO=1 skips that (artifacts built elsewhere); MOLTLINK_LIBRARY / MOLTLINK_BIN
# override the paths of the cdylib and of the sandbox binary.
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${MOLTLINK_NO_CARGO:-}" ]; then
  (cd ../.. && cargo build --quiet --release -p moltlink -p moltlink-cli \
            && bash scripts/component.sh)
fi
# `npm ci` needs every optional platform package of the lock to be resolvable; the registry
# reachable here lacks a few (other OSes' rolldown/jco bindings), so fall back to
# `npm install`, which still installs the versions pinned by package-lock.json.
if [ ! -f package-lock.json ] || ! npm ci --no-audit --no-fund --loglevel=silent; then
  npm install --no-audit --no-fund --loglevel=error
fi
npm run --silent build
npm test
