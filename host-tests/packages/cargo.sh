#!/usr/bin/env bash
# The Rust side as crates.io users get it:
#   1. `cargo publish --dry-run -p moltlink` (packages the crate and builds it alone, as crates.io
#      would). Reused when host-tests/shape/check.sh already made the .crate (target/package/)
#      from the current sources (run-all.sh runs the shape check first); the .crate is copied to
#      target/packages/. Doc tests (the crate docs' example) run in `cargo test --release --workspace`.
#   2. The README's `cargo add --path <repo>` in a fresh `cargo new` project outside the repository,
#      whose main is the crate docs' first example; it builds and runs.
#   3. `cargo install --path bindings/cli --root <fresh dir>` installs the `moltlink` CLI, which
#      then registers an agent with the sandbox.
#   2 and 3 each compile the core once more as an rlib-only unit (the workspace build makes
#   cdylib+staticlib+rlib, which neither shares): ~1-1.5 min each on 2 cores after a source
#   change, seconds when warm. They share the workspace's target dir and release profile, so the
#   dependencies are not rebuilt. PKG_NO_CARGO_INSTALL=1 skips both.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$pkg_root"
version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# `cargo publish --dry-run` leaves the .crate in package/tmp-crate/ (`cargo package`: package/).
pkgdir=${CARGO_TARGET_DIR:-$pkg_root/target}/package
crate_of() { { ls -t "$pkgdir/tmp-crate/moltlink-$version.crate" "$pkgdir/moltlink-$version.crate" 2>/dev/null || true; } | head -1; }
crate=$(crate_of)
fresh=""
if [ -n "$crate" ]; then
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
    crate=$(crate_of)
    [ -n "$crate" ] || { echo "no moltlink-$version.crate under $pkgdir" >&2; exit 1; }
fi
cp "$crate" "$pkg_out/"
echo "crate: $pkg_out/moltlink-$version.crate ($(pkg_size "$crate"))"

if [ -n "${PKG_NO_CARGO_INSTALL:-}" ]; then
    echo "SKIPPED cargo add / cargo install (PKG_NO_CARGO_INSTALL set)"
    exit 0
fi
target_dir=${CARGO_TARGET_DIR:-$pkg_root/target}

# 2. cargo add, as a new user's project would.
app=$(pkg_tmp cargo-add)/my_agent
cargo new -q "$app"
( cd "$app"
  cargo add -q --path "$pkg_root"
  # The workspace's release profile, so the dependencies built for it are reused.
  sed -n '/^\[profile.release\]/,/^$/p' "$pkg_root/Cargo.toml" >> Cargo.toml
  # The crate docs' first example as main: the code a reader of docs.rs would paste.
  sed -n '/^\/\/! ```$/,/^\/\/! ```$/p' "$pkg_root/src/lib.rs" | sed '1d;$d' | sed 's|^//! \{0,1\}||; s|^# ||' > src/main.rs
  CARGO_TARGET_DIR=$target_dir cargo run -q --release >run.log 2>&1 \
      || { cat run.log >&2; echo "a project made with cargo add --path failed to build or run" >&2; exit 1; } )
echo "cargo add --path: a new project built and ran the crate docs' example"

# 3. cargo install of the CLI.
pkg_sandbox_up
root=$(pkg_tmp cargo-install)
cargo install -q --path bindings/cli --root "$root" --locked --target-dir "$target_dir" 2>"$root/install.log" \
    || { cat "$root/install.log" >&2; echo "cargo install --path bindings/cli failed" >&2; exit 1; }
"$root/bin/moltlink" chats register --username "cargo_pkg_$$_$RANDOM" --credentials "$root/credentials.json" >"$root/run.log" 2>&1 \
    || { cat "$root/run.log" >&2; echo "the installed moltlink CLI failed against the sandbox" >&2; exit 1; }
echo "cargo install --path bindings/cli: $root/bin/moltlink ($(pkg_size "$root/bin/moltlink")) registered an agent"
