#!/usr/bin/env bash
# The npm package of bindings/node, built and then tried as a user would:
#   1. `npm run build` (jco transpiles target/component/moltlink.wasm into component/),
#      the prebuilt library target/release/libmoltlink.so copied (stripped) into native/linux-x64/,
#      `npm pack` → target/packages/moltlink-<version>.tgz (no tests: package.json `files`);
#   2. in an empty npm project outside the repository: `npm install <tgz>`, then the example
#      examples/chat.mjs against the sandbox on both backends, and `tsc --noEmit` over a
#      TypeScript module (.mts: top-level await in a CommonJS project) using the declarations (skipped with PKG_NO_TSC=1).
# Needs the release build and the component (run-all.sh builds both).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
node_pkg=$pkg_root/bindings/node

# 1. Build and pack. native/ exists only while packing, so the checkout's tests keep using
#    target/release/libmoltlink.so (the bundled library wins when present).
( cd "$node_pkg"
  if [ ! -d node_modules ]; then npm_quiet ci || npm_quiet install; fi
  npm run --silent build
  trap 'rm -rf "$node_pkg/native"' EXIT
  rm -rf native && mkdir -p native/linux-x64
  strip --strip-unneeded -o native/linux-x64/libmoltlink.so "$pkg_root/target/release/libmoltlink.so" 2>/dev/null \
    || cp "$pkg_root/target/release/libmoltlink.so" native/linux-x64/
  npm_quiet pack --pack-destination "$pkg_out" >/dev/null )
version=$(node -p 'require(process.argv[1]).version' "$node_pkg/package.json")
tgz=$pkg_out/moltlink-$version.tgz
[ -f "$tgz" ] || { echo "npm pack made no $tgz" >&2; exit 1; }
listing=$(tar -tzf "$tgz")
for f in package/src/index.js package/types/index.d.ts package/component/moltlink.js package/component/moltlink.d.ts \
         package/component/moltlink.core.wasm package/native/linux-x64/libmoltlink.so package/examples/chat.mjs; do
    grep -qx "$f" <<<"$listing" || { echo "$tgz lacks $f" >&2; exit 1; }
done
if grep -E '^package/(test|bench)/|\.test\.js$' <<<"$listing"; then echo "$tgz ships tests" >&2; exit 1; fi
echo "npm package: $tgz ($(pkg_size "$tgz"), $(wc -l <<<"$listing") files)"

# 2. Install into an empty project and run the example on both backends.
pkg_sandbox_up
app=$(pkg_tmp npm-app)
cd "$app"
# Exactly the README's commands, in a directory with nothing in it (npm writes package.json).
npm_quiet install "$tgz"
cp node_modules/moltlink/examples/chat.mjs .
# No MOLTLINK_LIBRARY and no checkout around: the native backend must use the bundled library.
for backend in component native; do
    env -u MOLTLINK_LIBRARY node chat.mjs "$backend"
done
node -e 'import("moltlink/native").then((m) => { const p = m.defaultLibraryPath(); if (!p.includes("/node_modules/moltlink/native/")) { console.error("native backend not bundled: " + p); process.exit(1); } })'

if [ -z "${PKG_NO_TSC:-}" ]; then
    npm_quiet install --no-save typescript@5 >/dev/null
    cat > check.mts <<'TS'
import { loadComponent, loadNative, HostRunner, MoltlinkError, type Factory, type MoltlinkEvent } from 'moltlink';
import { defaultLibraryPath } from 'moltlink/native';
const factory: Factory = Math.random() > 2 ? await loadNative() : await loadComponent();
const client = factory.open({ apiBase: 'http://127.0.0.1:1/moltchats/api/v1' });
const runner = new HostRunner(client, { onEvent: (e: MoltlinkEvent) => void e.type });
const id: number = client.command({ op: 'friends' });
const lib: string = defaultLibraryPath();
const prompt: string = (await loadComponent()).prompt.messagePrompt({ channel: 'c', content: 'hi' });
const dm = factory.openDm({ apiKey: 'k' });
dm.request('hello', { to: 'bot' });
try { client.whoami(); } catch (e) { if (e instanceof MoltlinkError) console.log(e.code); }
console.log(id, lib, prompt, runner.inFlight);
TS
    echo '{"compilerOptions":{"module":"nodenext","moduleResolution":"nodenext","target":"es2022","lib":["es2022","dom","esnext.disposable"],"strict":true,"noEmit":true,"skipLibCheck":false,"types":[]},"files":["check.mts"]}' > tsconfig.json
    npx --no-install tsc -p . && echo "npm package: tsc --noEmit ok over the declarations (incl. jco's)"
fi
