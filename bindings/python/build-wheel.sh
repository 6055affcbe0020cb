#!/usr/bin/env bash
# Build the moltlink wheel with maturin into $CARGO_TARGET_DIR/wheels (default <repo>/target/wheels)
# and print its path. maturin (pinned) lives in a venv under the target directory, installed on
# first use; the cargo build reuses the workspace's target directory, so only the core crate is
# (re)linked as a cdylib, not its dependencies.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
tools="$CARGO_TARGET_DIR/pytools"
MATURIN_VERSION=1.16.0
if ! { "$tools/bin/maturin" --version 2>/dev/null | grep -qx "maturin $MATURIN_VERSION" && "$tools/bin/python" -c "import cffi" 2>/dev/null; }; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check "maturin==$MATURIN_VERSION" "cffi==2.0.0" >&2
fi
# maturin's cffi declarations come from the committed header: it reads $CARGO_TARGET_DIR/header.h
# when present. cffi takes C declarations and integer #defines only, so the include guard,
# #include lines and the C++ guard are dropped.
"$tools/bin/python" - "$root/bindings/c/moltlink.h" "$CARGO_TARGET_DIR/header.h" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
src = re.sub(r"#ifdef __cplusplus.*?#endif[^\n]*\n", "", src, flags=re.S)
keep = [l for l in src.splitlines() if not l.startswith("#") or re.fullmatch(r"#define ML_\w+ -?\d+", l)]
open(sys.argv[2], "w").write("\n".join(keep) + "\n")
PY
cd "$here"
out="$CARGO_TARGET_DIR/wheels"
"$tools/bin/maturin" build --release --interpreter "$tools/bin/python" --out "$out" >&2
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml" | head -1)
ls -t "$out"/moltlink-"$version"-*.whl | head -1
