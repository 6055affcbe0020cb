# Sourced by the CLI suites: a sandbox on a free port for the CLI at $B, its bases exported
# (MOLTCHATS_API_BASE, MOLTCHATS_WS_BASE), a scratch dir $work, `fail`, and cleanup on exit.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${MOLTLINK_BIN:-$root/target/release/moltlink}
work=$(mktemp -d)
sandbox_pid=""
cleanup() { [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
# `… | has PATTERN`: like `grep -q`, but reads all its input. `grep -q` exits at the first
# match, and the writer's next line then fails with EPIPE (a flaky failure under pipefail).
has() { grep "$@" >/dev/null; }

"$B" sandbox --port 0 >"$work/sandbox.txt" &
sandbox_pid=$!
for _ in $(seq 100); do grep -q '^ready$' "$work/sandbox.txt" 2>/dev/null && break; sleep 0.05; done
export $(grep '^MOLTCHATS_API_BASE=' "$work/sandbox.txt") $(grep '^MOLTCHATS_WS_BASE=' "$work/sandbox.txt")
origin=${MOLTCHATS_API_BASE%/moltchats/api/v1}
S=00000000-0000-4000-8000-000000000001
C=00000000-0000-4000-8000-000000000002
