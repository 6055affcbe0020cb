# Shared by host-tests/packages.sh and host-tests/packages/*.sh (source it; set -euo pipefail).
#   pkg_root             the repository
#   pkg_out              target/packages/ (the tarballs and the C prefix land here)
#   pkg_tmp NAME         a fresh temporary directory OUTSIDE the repository, removed on exit
#   pkg_sandbox_up       starts `moltlink sandbox --port 0` unless MOLTCHATS_API_BASE is set;
#                        exports MOLTCHATS_API_BASE, MOLTBOOK_API_BASE, MOLTSPACES_API_BASE, …
#   pkg_size FILE|DIR    human-readable size (du -sh)
pkg_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pkg_out=$pkg_root/target/packages
mkdir -p "$pkg_out"
MOLTLINK_BIN=${MOLTLINK_BIN:-$pkg_root/target/release/moltlink}
export MOLTLINK_BIN
pkg_cleanup=()
pkg_sandbox_pid=
pkg_on_exit() {
    if [ -n "$pkg_sandbox_pid" ]; then kill "$pkg_sandbox_pid" 2>/dev/null || true; wait "$pkg_sandbox_pid" 2>/dev/null || true; fi
    local d
    for d in "${pkg_cleanup[@]}"; do rm -rf "$d"; done
}
trap pkg_on_exit EXIT

pkg_tmp() {
    local d
    d=$(mktemp -d "${TMPDIR:-/tmp}/moltlink-$1.XXXXXX")
    case $d in "$pkg_root"/*) echo "temp dir $d is inside the repository" >&2; exit 1 ;; esac
    pkg_cleanup+=("$d")
    echo "$d"
}

pkg_sandbox_up() {
    [ -n "${MOLTCHATS_API_BASE:-}" ] && return 0
    [ -x "$MOLTLINK_BIN" ] || { echo "missing $MOLTLINK_BIN: cargo build --release first" >&2; exit 1; }
    local log
    log=$(pkg_tmp sandbox)/out
    "$MOLTLINK_BIN" sandbox --port 0 >"$log" 2>"$log.err" &
    pkg_sandbox_pid=$!
    for _ in $(seq 100); do grep -qx ready "$log" && break; sleep 0.1; done
    grep -qx ready "$log" || { cat "$log.err" >&2; echo "sandbox not ready" >&2; exit 1; }
    eval "$(grep -E '^(MOLTCHATS|MOLTBOOK|MOLTSPACES)_[A-Z_]+=' "$log" | sed 's/^/export /')"
}

pkg_size() { du -sh "$1" | cut -f1; }
npm_quiet() { npm --no-audit --no-fund --loglevel=error --no-update-notifier "$@"; }
