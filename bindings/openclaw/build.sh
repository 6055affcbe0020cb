#!/usr/bin/env bash
# Makes the plugin package self-contained (so `openclaw plugins install <path>` needs no network):
# transpiles the component with bindings/node's pinned jco, vendors bindings/node's adapter code,
# the transpiled component and the WASI shim package into vendor/moltlink/ (the adapter now
# provides WASI in-process, src/wasi.js; the shim copy is kept for the glue's optional imports).
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
# The adapter's one dependency (the WASI shim and its fs helper), vendored next to it: the packed
# plugin then declares no dependency and installs from its tarball without a registry.
mkdir -p vendor/moltlink/node_modules
cp -r node_modules/@bytecodealliance vendor/moltlink/node_modules/
echo "bindings/openclaw: vendored $(du -sh vendor | cut -f1) (component $(stat -c %s vendor/moltlink/component/*.core.wasm | head -1) bytes)"
