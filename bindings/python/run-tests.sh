#!/usr/bin/env bash
# Python binding tests: a venv at bindings/python/.venv, pytest + this package, then pytest.
# Needs `cargo build --release` first (target/release/libmoltlink.so and target/release/moltlink).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$here/.venv"
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
# Non-editable install: the tests run against the installed package, which finds the library
# by walking up from site-packages (the venv lives inside the repository) or $MOLTLINK_LIBRARY.
"$venv/bin/pip" install -q --disable-pip-version-check pytest websocket-client "$here"
cd "$here"
exec "$venv/bin/python" -m pytest -q "$@"
