#!/usr/bin/env bash
# Miri (nightly) on the C ABI's pure-Rust boundary: NULL/UTF-8/length checks, caller-owned
# buffer copies, the panic boundary and last-error text, exercised by the ffi unit tests that
# need no RSA work or C library (Opus/ALSA are never called by them).
#   bash host-tests/miri.sh            (first run: rustup component add miri rust-src --toolchain nightly)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/miri}
export MIRIFLAGS=${MIRIFLAGS:--Zmiri-disable-isolation}
cargo +nightly miri test -p moltlink --lib -- \
    ffi::tests::null_pointers_are_refused ffi::tests::bad_utf8_and_bad_arguments \
    ffi::tests::last_error_message_truncates_and_reports_size ffi::tests::constants_match_the_core_codes \
    ffi::tests::garbage_credentials_do_not_leak ffi::tests::a_panic_poisons_the_handle
