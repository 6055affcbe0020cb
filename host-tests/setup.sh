#!/usr/bin/env bash
# Install what the tests need on a fresh machine of this kind. Idempotent: checks first.
# Rust toolchain and gcc come with the machine; the rest comes from rustup, Debian, npm, PyPI.
set -euo pipefail

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

# Debian packages: a C compiler for the C host test, valgrind for its memory check,
# openssl for the benchmark's reference numbers.
missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs npm)
# Audio: ALSA headers for cpal, cmake for the bundled libopus, espeak-ng + sox for real
# speech test audio.
dpkg -s libasound2-dev >/dev/null 2>&1 || missing+=(libasound2-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
# patchelf: the soname of the installed C library (bindings/c/install.sh).
command -v patchelf >/dev/null || missing+=(patchelf)
command -v cmake >/dev/null || missing+=(cmake)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# npm and pip packages are installed by bindings/node/run-tests.sh and
# bindings/python/run-tests.sh (into node_modules/ and a venv), from their lock/pyproject.
