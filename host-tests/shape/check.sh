#!/usr/bin/env bash
# Shape checks that keep the core crate a library others can depend on (issue #12):
#   1. `moltlink`'s normal dependencies, on every target, contain no host-side crate (CLI, HTTP,
#      WebSocket, sound card, signals, the sandbox): those belong to bindings/cli.
#   2. `cargo publish --dry-run -p moltlink` packages and builds the crate as crates.io would
#      (needs the crates.io index; SHAPE_OFFLINE=1 skips it when there is no network).
#   3. The package ships only the core: src/, wit/, the C header, README, Cargo.toml.
#   4. The layers inside it (layers.sh): io imports no client, clients import only what they
#      drive, no library file past ~400 lines.
# Exits non-zero with the reason on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
fail() { echo "shape check FAILED: $*" >&2; exit 1; }

# 4. Layers first: a grep, the cheapest check.
bash host-tests/shape/layers.sh || fail "the core's layering (see above)"

# 1. Dependencies of the core (normal edges only, all targets, features as built).
forbidden='clap cpal ureq tungstenite tiny_http signal-hook moltlink-sandbox'
deps=$(cargo tree -q -p moltlink -e normal --target all --prefix none --format '{p}' | awk '{print $1}' | sort -u)
[ -n "$deps" ] || fail "cargo tree -p moltlink printed nothing"
for name in $forbidden; do
    if grep -qx -- "$name" <<<"$deps"; then
        echo "$name is reached from moltlink by:" >&2
        cargo tree -q -p moltlink -e normal --target all -i "$name" >&2 || true
        fail "the core crate depends on $name (move it to bindings/cli or a dev-dependency)"
    fi
done
echo "core dependencies: $(wc -l <<<"$deps") crates, none of: $forbidden"

# 3. Package contents (before publish: cheap, and its failure is easier to read).
files=$(cargo package -q --list -p moltlink --allow-dirty)
while read -r f; do
    case $f in
        src/*|wit/*|bindings/c/moltlink.h|bindings/c/cbindgen.toml|README.md|Cargo.toml|Cargo.toml.orig|Cargo.lock|.cargo_vcs_info.json|LICENSE*) ;;
        *) fail "the package would ship $f (adjust include in the root Cargo.toml)" ;;
    esac
done <<<"$files"
for f in src/lib.rs wit/world.wit bindings/c/moltlink.h README.md; do
    grep -qx -- "$f" <<<"$files" || fail "the package lacks $f"
done
echo "package: $(wc -l <<<"$files") files (src/, wit/, the C header, README, manifest)"

# 2. Publishable: resolves against crates.io only (no unversioned path dependency) and builds.
if [ -n "${SHAPE_OFFLINE:-}" ]; then
    echo "SKIPPED cargo publish --dry-run -p moltlink (SHAPE_OFFLINE set)"
else
    log=$(mktemp)
    if ! cargo publish --dry-run -p moltlink --allow-dirty >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        fail "cargo publish --dry-run -p moltlink"
    fi
    rm -f "$log"
    echo "cargo publish --dry-run -p moltlink: ok"
fi
