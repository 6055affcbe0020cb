"""Fixtures: the sandbox binary (`$MOLTLINK_BIN`, default <repo>/target/release/moltlink)."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def start_sandbox(*args: str):
    """Start `moltlink sandbox --port 0 ARGS…`; yield its base URLs ({"MOLTCHATS_API_BASE": …})."""
    binary = os.environ.get("MOLTLINK_BIN", str(REPO / "target" / "release" / "moltlink"))
    if not Path(binary).is_file():
        pytest.fail(f"{binary} not found: run `cargo build --release` or set MOLTLINK_BIN")
    proc = subprocess.Popen([binary, "sandbox", "--port", "0", *args], stdout=subprocess.PIPE, text=True)
    urls = {}
    try:
        for line in proc.stdout:
            line = line.strip()
            if line == "ready":
                break
            key, sep, value = line.partition("=")
            if sep:
                urls[key] = value
        else:
            pytest.fail(f"sandbox exited before `ready` (exit code {proc.wait()})")
        yield urls
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def sandbox():
    yield from start_sandbox()


@pytest.fixture(scope="session")
def short_token_sandbox():
    """A sandbox whose access tokens live 3 s: the core rotates them every ~2.4 s."""
    yield from start_sandbox("--token-lifetime", "3")


@pytest.fixture
def api(sandbox):
    return sandbox["MOLTCHATS_API_BASE"]


@pytest.fixture
def username():
    return "py_" + uuid.uuid4().hex[:16]
