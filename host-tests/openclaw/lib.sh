# The real-OpenClaw harness: source it from a bash test script (set -euo pipefail).
#
#   source host-tests/openclaw/lib.sh
#   openclaw_isolate "$@"        # 1st line: installs (network needed), then re-runs this script in
#                                # a network namespace that has only loopback (root or userns)
#   openclaw_offline_check       # proves that nothing but loopback is reachable (fails the test if not)
#   openclaw_sandbox_up          # moltlink sandbox: exports MOLTCHATS_API_BASE, MOLTCHATS_WS_BASE,
#                                #   MOLTBOOK_API_BASE, MOLTSPACES_API_BASE, SANDBOX_ORIGIN
#   openclaw_mock_up             # the mock model: exports MOCK_MODEL_URL (…/v1)
#   openclaw_config_plugin ID '{json config}'   # optional, before gateway_up: plugins.entries.ID.config
#   openclaw_config_merge '{json}'  # optional, before gateway_up: deep-merged into openclaw.json
#                                #   (e.g. '{"channels":{"moltchats":{…}}}'); may be repeated
#   openclaw_install_plugin PATH [ARGS…]  # optional, before gateway_up: `openclaw plugins install
#                                #   --force --accept-capabilities PATH ARGS…` (log: $OPENCLAW_WORK/plugin-install.log)
#   openclaw_gateway_up          # writes the config, runs `openclaw gateway run`, waits for /readyz;
#                                #   exports OPENCLAW_GATEWAY_URL (ws://127.0.0.1:PORT),
#                                #   OPENCLAW_AUTH_TOKEN (= OPENCLAW_GATEWAY_TOKEN), OPENCLAW_STATE_DIR
#   openclaw_gateway_down        # stops it as a service manager would (SIGTERM), waits for the exit;
#                                #   its log moves to gateway.N.log, so gateway_up can start it again
#   openclaw_cli ARGS…           # the pinned `openclaw` CLI against that state dir
#   openclaw_gateway_log         # path of the gateway's stdout+stderr
#   openclaw_fail MSG            # prints MSG and the log tails, exits 1
# Everything lives in $OPENCLAW_WORK (a mktemp dir) and is stopped and removed on EXIT.
# Variables: OPENCLAW_KEEP=1 keeps $OPENCLAW_WORK; MOLTLINK_BIN overrides target/release/moltlink.

oc_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
oc_repo=$(cd "$oc_here/../.." && pwd)
MOLTLINK_BIN=${MOLTLINK_BIN:-$oc_repo/target/release/moltlink}
oc_pids=()

openclaw_isolate() {
  if [ -z "${OPENCLAW_ISOLATED:-}" ]; then
    bash "$oc_here/install.sh"
    # -n: a fresh network namespace (only `lo`, down until we raise it). -p -f --mount-proc: a PID
    # namespace whose init is this script, so the kernel kills every process the test started
    # (OpenClaw forks helpers) when it ends, even on SIGKILL. As non-root, -r maps us to root in a
    # user namespace so that `ip link` and the mounts are allowed.
    local userns=(); [ "$(id -u)" -ne 0 ] && userns=(-r)
    exec unshare "${userns[@]}" -n -p -f --mount-proc env OPENCLAW_ISOLATED=1 \
      bash -c 'ip link set lo up && exec bash "$@"' bash "$0" "$@"
  fi
  # shellcheck disable=SC1091
  source "${OPENCLAW_CACHE:-$oc_repo/target/openclaw}/env.sh"
  OPENCLAW_WORK=$(mktemp -d /tmp/openclaw-test.XXXXXX)
  export OPENCLAW_WORK
  trap openclaw_down EXIT
}

openclaw_down() {
  # Each spawned process leads its own process group (setsid): stop the groups gracefully, then
  # hard. Whatever survives dies with the PID namespace when this script exits.
  local pid
  for pid in "${oc_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${oc_pids[@]}"; do
    for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  # Helpers that left their group (OpenClaw's brokers/workers): we are init of this PID namespace,
  # so -1 reaches exactly the test's processes.
  [ "$$" = 1 ] && { kill -KILL -1 2>/dev/null || true; wait 2>/dev/null || true; sleep 0.2; }
  if [ -n "${OPENCLAW_KEEP:-}" ]; then echo "kept $OPENCLAW_WORK"; else rm -rf "$OPENCLAW_WORK"; fi
}

openclaw_fail() {
  echo "FAIL: $*"
  local f
  for f in "$OPENCLAW_WORK"/*.log; do [ -f "$f" ] && { echo "--- tail $f"; tail -n 40 "$f"; }; done
  exit 1
}

# Start a background process whose stdout goes to $1.log and wait for a `ready` line.
oc_spawn_ready() {
  local name=$1; shift
  setsid "$@" >"$OPENCLAW_WORK/$name.log" 2>&1 &
  oc_pids+=($!)
  disown
  for _ in $(seq 200); do grep -q '^ready$' "$OPENCLAW_WORK/$name.log" && return 0; sleep 0.05; done
  openclaw_fail "$name did not start"
}

openclaw_offline_check() {
  # DNS and a raw TCP connect to a public address must both fail inside the namespace.
  "$OPENCLAW_NODE" -e '
    const net = require("node:net"), dns = require("node:dns");
    dns.lookup("registry.npmjs.org", (e) => {
      if (!e) { console.log("reachable: DNS resolved"); process.exit(1); }
      const s = net.connect({ host: "1.1.1.1", port: 443, timeout: 3000 });
      s.on("connect", () => { console.log("reachable: TCP 1.1.1.1:443"); process.exit(1); });
      s.on("timeout", () => { console.log("offline (timeout)"); process.exit(0); });
      s.on("error", (e) => { console.log("offline:", e.code); process.exit(0); });
    });' || openclaw_fail "the test network reaches beyond loopback"
  [ "$(ip -o link show | grep -vc ': lo:')" = 0 ] || openclaw_fail "network interfaces besides lo exist"
}

openclaw_sandbox_up() {
  oc_spawn_ready sandbox "$MOLTLINK_BIN" sandbox --port 0
  eval "$(grep -E '^(MOLTCHATS|MOLTBOOK|MOLTSPACES)_[A-Z_]+=' "$OPENCLAW_WORK/sandbox.log" | sed 's/^/export /')"
  SANDBOX_ORIGIN=${MOLTCHATS_API_BASE%/moltchats/api/v1}
  export SANDBOX_ORIGIN
}

openclaw_mock_up() {
  oc_spawn_ready mock-model "$OPENCLAW_NODE" "$oc_here/mock-model.mjs" --port 0
  MOCK_MODEL_URL=$(sed -n 's/^MOCK_MODEL_URL=//p' "$OPENCLAW_WORK/mock-model.log")
  export MOCK_MODEL_URL
}

# The environment of every OpenClaw process: a throw-away home (OpenClaw writes nothing outside
# $OPENCLAW_WORK/home), no update checks or feature statistics, the pinned Node first on PATH.
oc_env() {
  ${OC_SETSID:+setsid} env HOME="$OPENCLAW_WORK/home" OPENCLAW_HOME="$OPENCLAW_WORK/home" \
    OPENCLAW_STATE_DIR="$OPENCLAW_WORK/home/.openclaw" \
    OPENCLAW_CONFIG_PATH="$OPENCLAW_WORK/home/.openclaw/openclaw.json" \
    OPENCLAW_NO_AUTO_UPDATE=1 DO_NOT_TRACK=1 CLAWHUB_DISABLE_TELEMETRY=1 OPENCLAW_DISABLE_BONJOUR=1 \
    NO_COLOR=1 PATH="$OPENCLAW_NODE_BIN_DIR:$PATH" "$@"
}

openclaw_cli() { oc_env "$OPENCLAW_BIN" "$@"; }
openclaw_gateway_log() { echo "$OPENCLAW_WORK/gateway.log"; }
# One chat turn through the gateway (a test probe in Node, not the product): prints the reply.
openclaw_chat() { "$OPENCLAW_NODE" "$oc_here/gateway-chat.mjs" "$@"; }

oc_plugin_entries='{}'
openclaw_config_plugin() {
  oc_plugin_entries=$("$OPENCLAW_NODE" -e 'const e = JSON.parse(process.argv[1]); e[process.argv[2]] = { enabled: true, config: JSON.parse(process.argv[3]) }; console.log(JSON.stringify(e))' "$oc_plugin_entries" "$1" "$2")
}

oc_free_port() { "$OPENCLAW_NODE" -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }

oc_write_config() {
  mkdir -p "$OPENCLAW_WORK/home/.openclaw" "$OPENCLAW_WORK/home/workspace"
  OPENCLAW_PORT=$(oc_free_port)
  OPENCLAW_AUTH_TOKEN=$("$OPENCLAW_NODE" -e 'console.log(require("node:crypto").randomBytes(24).toString("hex"))')
  "$OPENCLAW_NODE" "$oc_here/write-config.mjs" "$OPENCLAW_WORK/home/.openclaw/openclaw.json" \
    "$OPENCLAW_PORT" "$OPENCLAW_AUTH_TOKEN" "$MOCK_MODEL_URL" "$OPENCLAW_WORK/home/workspace" "$oc_plugin_entries" \
    "$OPENCLAW_WORK/openclaw-file.jsonl"
  export OPENCLAW_PORT OPENCLAW_AUTH_TOKEN
}

oc_config_merges=()
openclaw_config_merge() { oc_config_merges+=("$1"); }

openclaw_install_plugin() {
  [ -f "$OPENCLAW_WORK/home/.openclaw/openclaw.json" ] || oc_write_config
  local t0=$SECONDS
  # --force: a local path is not a ClawHub source, non-interactive installs must confirm it;
  # --accept-capabilities: the consent a human gives interactively (channels, tools).
  openclaw_cli plugins install --force --accept-capabilities "$@" >"$OPENCLAW_WORK/plugin-install.log" 2>&1 \
    || openclaw_fail "openclaw plugins install $*"
  OPENCLAW_PLUGIN_INSTALL_S=$((SECONDS - t0))
  export OPENCLAW_PLUGIN_INSTALL_S
}

openclaw_gateway_up() {
  [ -f "$OPENCLAW_WORK/home/.openclaw/openclaw.json" ] || oc_write_config
  # Re-merge plugin entries (plugins install may have rewritten the file).
  "$OPENCLAW_NODE" "$oc_here/write-config.mjs" --merge-plugins "$OPENCLAW_WORK/home/.openclaw/openclaw.json" "$oc_plugin_entries"
  local m
  for m in "${oc_config_merges[@]}"; do
    "$OPENCLAW_NODE" "$oc_here/write-config.mjs" --merge "$OPENCLAW_WORK/home/.openclaw/openclaw.json" "$m"
  done
  local t0=$SECONDS
  OC_SETSID=1 oc_env OPENCLAW_GATEWAY_TOKEN="$OPENCLAW_AUTH_TOKEN" "$OPENCLAW_BIN" gateway run --port "$OPENCLAW_PORT" --bind loopback \
    >"$OPENCLAW_WORK/gateway.log" 2>&1 &
  oc_pids+=($!)
  local gw=$!
  OC_GATEWAY_PID=$gw
  disown
  for _ in $(seq 1200); do
    kill -0 "$gw" 2>/dev/null || openclaw_fail "openclaw gateway exited"
    if "$OPENCLAW_NODE" -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
      "http://127.0.0.1:$OPENCLAW_PORT/readyz" 2>/dev/null; then
      OPENCLAW_GATEWAY_URL=ws://127.0.0.1:$OPENCLAW_PORT
      OPENCLAW_GATEWAY_TOKEN=$OPENCLAW_AUTH_TOKEN
      OPENCLAW_STATE_DIR=$OPENCLAW_WORK/home/.openclaw
      OPENCLAW_GATEWAY_READY_S=$((SECONDS - t0))
      export OPENCLAW_GATEWAY_URL OPENCLAW_GATEWAY_TOKEN OPENCLAW_STATE_DIR OPENCLAW_GATEWAY_READY_S
      echo "openclaw gateway ready at $OPENCLAW_GATEWAY_URL after ${OPENCLAW_GATEWAY_READY_S}s"
      return 0
    fi
    sleep 0.25
  done
  openclaw_fail "openclaw gateway not ready after 300 s"
}

openclaw_gateway_down() {
  # $OC_GATEWAY_PID is the background subshell; the gateway is its setsid child, which leads its
  # own process group.
  local gw=${OC_GATEWAY_PID:?no gateway started} leader
  leader=$(pgrep -P "$gw" | head -1)
  [ -n "$leader" ] || openclaw_fail "no gateway process under $gw"
  kill -TERM -- "-$leader" 2>/dev/null || true
  for _ in $(seq 600); do
    kill -0 "$leader" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$leader" 2>/dev/null && openclaw_fail "the gateway did not stop within 60 s of SIGTERM"
  # Its helpers, if any, go with its group.
  kill -KILL -- "-$leader" 2>/dev/null || true
  local n=1
  while [ -e "$OPENCLAW_WORK/gateway.$n.log" ]; do n=$((n + 1)); done
  mv "$OPENCLAW_WORK/gateway.log" "$OPENCLAW_WORK/gateway.$n.log"
  OC_GATEWAY_PID=
}
