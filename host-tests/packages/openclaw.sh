#!/usr/bin/env bash
# The OpenClaw plugin as a package, built and then tried as a user would:
#   1. bindings/openclaw/build.sh vendors bindings/node's adapter and the transpiled component,
#      then `npm pack` → target/packages/moltlink-openclaw-<version>.tgz (its one runtime
#      dependency vendored, none declared, so installing runs no npm install and needs no registry);
#   2. `openclaw plugins install <tgz>` (the pinned OpenClaw, host-tests/openclaw/install.sh) into
#      a clean OpenClaw home outside the repository, `openclaw plugins list` shows it, and a short
#      program loads the INSTALLED plugin's entry with a stand-in plugin API and runs its
#      `moltspaces_join` (creates a room) and `moltspaces_search` tools against the sandbox.
# The full gateway run (channel round trip, tool calls through the model, offline) is
# host-tests/openclaw/plugin.sh, which installs this same tarball.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
plugin=$pkg_root/bindings/openclaw

# 1. Build and pack.
bash "$plugin/build.sh" >/dev/null
( cd "$plugin" && npm_quiet pack --pack-destination "$pkg_out" >/dev/null )
version=$(node -p 'require(process.argv[1]).version' "$plugin/package.json")
tgz=$pkg_out/moltlink-openclaw-$version.tgz
[ -f "$tgz" ] || { echo "npm pack made no $tgz" >&2; exit 1; }
listing=$(tar -tzf "$tgz")
for f in package/index.js package/openclaw.plugin.json package/vendor/moltlink/component/moltlink.js \
         package/vendor/moltlink/src/host-runner.js package/vendor/moltlink/node_modules/@bytecodealliance/preview2-shim/package.json; do
    grep -qx "$f" <<<"$listing" || { echo "$tgz lacks $f" >&2; exit 1; }
done
# No declared runtime dependency: OpenClaw would run `npm install` for one (needs a registry).
tar -xzOf "$tgz" package/package.json | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const p = JSON.parse(s); if (Object.keys(p.dependencies ?? {}).length) { console.error("the plugin package declares dependencies"); process.exit(1); } })'
echo "openclaw plugin package: $tgz ($(pkg_size "$tgz"), $(wc -l <<<"$listing") files)"
[ -n "${PKG_PACK_ONLY:-}" ] && exit 0

# 2. Install into a clean OpenClaw home and use it.
bash "$pkg_root/host-tests/openclaw/install.sh" >/dev/null
# shellcheck disable=SC1091
source "${OPENCLAW_CACHE:-$pkg_root/target/openclaw}/env.sh"
home=$(pkg_tmp openclaw-home)
oc() {
    env HOME="$home" OPENCLAW_HOME="$home" OPENCLAW_STATE_DIR="$home/.openclaw" \
        OPENCLAW_CONFIG_PATH="$home/.openclaw/openclaw.json" OPENCLAW_NO_AUTO_UPDATE=1 DO_NOT_TRACK=1 \
        CLAWHUB_DISABLE_TELEMETRY=1 OPENCLAW_DISABLE_BONJOUR=1 NO_COLOR=1 \
        PATH="$OPENCLAW_NODE_BIN_DIR:$PATH" "$OPENCLAW_BIN" "$@"
}
# --force: a local archive is not a ClawHub source; --accept-capabilities: the consent a human
# gives interactively (a channel and tools).
oc plugins install --force --accept-capabilities "$tgz" >"$home/install.log" 2>&1 \
    || { cat "$home/install.log" >&2; echo "openclaw plugins install $tgz failed" >&2; exit 1; }
oc plugins list >"$home/list.log" 2>&1 || true
grep -q moltlink "$home/list.log" || { cat "$home/install.log" "$home/list.log" >&2; echo "plugins list lacks moltlink" >&2; exit 1; }
entry=$(find "$home/.openclaw" -path '*/node_modules' -prune -o -name openclaw.plugin.json -print | head -1)
[ -n "$entry" ] || { echo "no installed plugin under $home/.openclaw" >&2; exit 1; }
installed=$(dirname "$entry")

pkg_sandbox_up
"$OPENCLAW_NODE" --input-type=module - "$installed" "$MOLTSPACES_API_BASE" <<'JS'
const [dir, apiBase] = process.argv.slice(2);
const reg = await (await fetch(`${apiBase}/agents/register`, { method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ name: `pkgtest${process.pid}`, description: 'package test' }) })).json();
const agent = reg.agent ?? reg;
const config = { moltspaces: { apiKey: agent.api_key, agentId: agent.agent_id, agentName: `pkgtest${process.pid}`, apiBase } };
const tools = new Map();
const { default: plugin } = await import(`${dir}/index.js`);
plugin.register({ pluginConfig: config, registerChannel() {}, registerTool: (t) => tools.set(t.name, t), logger: console, runtime: {} });
const topic = `package test ${process.pid}`;
const created = (await tools.get('moltspaces_join').execute('1', { topic })).content[0].text;
if (!created.includes('"type":"spaces_ticket"') || !created.includes('(held by the plugin)')) throw new Error(`create: ${created}`);
const found = (await tools.get('moltspaces_search').execute('2', { topic })).content[0].text;
if (!found.includes('"type":"spaces_rooms"') || !found.includes(JSON.parse(created).room_name)) throw new Error(`search: ${found}`);
console.log(`openclaw plugin: installed from the tarball into ${dir.replace(/.*\/\.openclaw\//, '~/.openclaw/')}; moltspaces_join + moltspaces_search ok against the sandbox`);
process.exit(0);
JS
