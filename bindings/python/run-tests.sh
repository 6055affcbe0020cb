#!/usr/bin/env bash
# Python binding tests: build the wheel (maturin, build-wheel.sh), install it with its test and
# aio dependencies into a venv at bindings/python/.venv, then pytest (sync and asyncio hosts)
# against the sandbox. The tests run against the installed wheel, whose bundled library is used.
# Needs target/release/moltlink (the sandbox): `cargo build --release`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv="$here/.venv"
wheel=$(bash "$here/build-wheel.sh")
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "pytest>=8" "websocket-client==1.9.0" "aiohttp==3.13.2" "mypy==2.4.1"
# daily-python (the Daily host's tests, tests/test_daily.py): from PyPI, pinned like the wheel's
# `daily` extra. It ships binary wheels for a few platforms only; elsewhere its tests skip.
"$venv/bin/pip" install -q --disable-pip-version-check "daily-python==0.36.0" \
    || echo "daily-python cannot be installed on this platform: the Daily host's tests skip" >&2
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
cd "$here"
"$venv/bin/python" -c 'import moltlink._ffi as f, sys; p = f.find_library(); print("library:", p); sys.exit("not the bundled library" if p.parent.name != "_native" else 0)'
# Type hints: the package type-checks (the asyncio host under stricter flags, see pyproject.toml).
"$venv/bin/python" -m mypy --no-error-summary
exec "$venv/bin/python" -m pytest -q "$@"
