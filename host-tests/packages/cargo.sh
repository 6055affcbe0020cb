#!/usr/bin/env bash
# The Rust side as crates.io users get it:
#   1. `cargo publish --dry-run -p moltlink` (packages the crate and builds it alone, as crates.io
#      would). Reused when host-tests/shape/check.sh already made target/package/moltlink-<v>.crate
#      from the current sources (run-all.sh runs the shape check first); the .crate is copied to
#      target/packages/. Doc tests (the crate docs' example) run in `cargo test --release --workspace`.
#   2. `cargo install --path bindings/cli --root <fresh dir>` installs the `moltlink` CLI (reusing
#      the release build), which then registers an agent with the sandbox.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$pkg_root"
version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
crate=${CARGO_TARGET_DIR:-$pkg_root/target}/package/moltlink-$version.crate
fresh=""
if [ -f "$crate" ]; then
    fresh=1
    while read -r f; do
        [ -f "$f" ] && [ "$f" -nt "$crate" ] && { fresh=""; break; }
    done < <(cargo package -q --list -p moltlink --allow-dirty)
fi
if [ -n "$fresh" ]; then
    echo "cargo publish --dry-run -p moltlink: reusing $crate (newer than every packaged file)"
else
    log=$(pkg_tmp publish)/log
    cargo publish --dry-run -p moltlink --allow-dirty >"$log" 2>&1 || { cat "$log" >&2; echo "cargo publish --dry-run failed" >&2; exit 1; }
    echo "cargo publish --dry-run -p moltlink: ok"
fi
cp "$crate" "$pkg_out/"
echo "crate: $pkg_out/moltlink-$version.crate ($(pkg_size "$crate"))"

pkg_sandbox_up
root=$(pkg_tmp cargo-install)
cargo install -q --path bindings/cli --root "$root" --locked 2>"$root/install.log" \
    || { cat "$root/install.log" >&2; echo "cargo install --path bindings/cli failed" >&2; exit 1; }
"$root/bin/moltlink" chats register --username "cargo_pkg_$$_$RANDOM" --credentials "$root/credentials.json" >"$root/run.log" 2>&1 \
    || { cat "$root/run.log" >&2; echo "the installed moltlink CLI failed against the sandbox" >&2; exit 1; }
echo "cargo install --path bindings/cli: $root/bin/moltlink ($(pkg_size "$root/bin/moltlink")) registered an agent"
