#!/usr/bin/env bash
# Every package, built and then installed into a fresh directory outside the repository and used
# against the sandbox, as a new user would (issue #16):
#   Python  host-tests/packages/python.sh    wheel under target/wheels/, fresh venv (if present)
#   Node    host-tests/packages/node.sh      target/packages/moltlink-<v>.tgz, empty npm project,
#                                            examples/chat.mjs on both backends, tsc over the types
#   OpenClaw host-tests/packages/openclaw.sh target/packages/moltlink-openclaw-<v>.tgz, clean
#                                            OpenClaw home, the installed plugin's tools
#   C       host-tests/packages/c.sh         install prefix (cargo-c layout) + tarball, pkg-config
#   Rust    host-tests/packages/cargo.sh     cargo publish --dry-run (.crate), cargo install the CLI
# Needs the release build and the component (host-tests/run-all.sh builds both; nothing is rebuilt
# here except `cargo publish --dry-run` when its .crate is older than the sources).
set -euo pipefail
cd "$(dirname "$0")/.."
source host-tests/packages/lib.sh
started=$SECONDS
pkg_sandbox_up
step() { printf '\n--- packages: %s (%ss)\n' "$1" $((SECONDS - started)); }
if [ -f host-tests/packages/python.sh ]; then
    step python
    bash host-tests/packages/python.sh
fi
step node;     bash host-tests/packages/node.sh
step openclaw; bash host-tests/packages/openclaw.sh
step C;        bash host-tests/packages/c.sh
step rust;     bash host-tests/packages/cargo.sh
step "done in $((SECONDS - started)) s"
ls -l target/packages/ target/wheels/ 2>/dev/null | grep -E '\.(tgz|tar\.gz|crate|whl)$' || true
