#!/usr/bin/env bash
# Makes the plugin package self-contained (so `openclaw plugins install <path>` needs no network):
# transpiles the component with bindings/node's pinned jco, vendors bindings/node's adapter code
# and the transpiled component into vendor/moltlink/, and installs the runtime dependency.
# Needs target/component/moltlink.wasm (bash scripts/component.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node_pkg=$here/../node
npm_quiet() { npm --no-audit --no-fund --loglevel=error "$@"; }
( cd "$node_pkg"
  if [ ! -d node_modules ]; then npm_quiet ci || npm_quiet install; fi
  npm run --silent build )
rm -rf "$here/vendor"
mkdir -p "$here/vendor/moltlink/src"
# The adapter (one copy of the logic: bindings/node) and the transpiled component.
cp "$node_pkg"/src/{client,component,host,host-runner,wasi}.js "$here/vendor/moltlink/src/"
cp -r "$node_pkg/component" "$here/vendor/moltlink/component"
echo '{"type":"module","private":true}' > "$here/vendor/moltlink/package.json"
cd "$here"
if [ ! -d node_modules/@bytecodealliance/preview2-shim ]; then npm_quiet install; fi
echo "bindings/openclaw: vendored $(du -sh vendor | cut -f1) (component $(stat -c %s vendor/moltlink/component/*.core.wasm | head -1) bytes)"
