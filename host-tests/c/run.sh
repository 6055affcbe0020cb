#!/usr/bin/env bash
# C host test: install the library like cargo-c (bindings/c/install.sh into a temp prefix, or use
# MOLTLINK_PREFIX if set), build host-tests/c/login.c against that layout through
# `pkg-config --cflags --libs moltlink` (and once more statically, `pkg-config --static`), start
# the sandbox, register an agent (run 1), then reload its credentials and log in again (run 2,
# under valgrind when available and MOLTLINK_VALGRIND != 0), then the audio host (audio.c) on
# espeak-ng speech, also under valgrind.
# Needs `cargo build --release` first (libmoltlink.so/.a and the moltlink binary).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
lib=target/release/libmoltlink.so
bin=target/release/moltlink
if [[ ! -f $lib || ! -x $bin ]]; then
    echo "missing $lib or $bin: run cargo build --release first" >&2
    exit 1
fi

work=$(mktemp -d)
sandbox_pid=
cleanup() {
    if [[ -n $sandbox_pid ]]; then
        kill "$sandbox_pid" 2>/dev/null || true
        wait "$sandbox_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== install + build (pkg-config)"
prefix=${MOLTLINK_PREFIX:-$work/prefix}
[[ -n ${MOLTLINK_PREFIX:-} ]] || bash bindings/c/install.sh "$prefix" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
read -ra cflags <<<"$(pkg-config --cflags moltlink)"
read -ra libs <<<"$(pkg-config --libs moltlink)"
libdir=$(pkg-config --variable=libdir moltlink)
cc -Wall -Wextra -Werror "${cflags[@]}" host-tests/c/login.c "${libs[@]}" -Wl,-rpath,"$libdir" -o "$work/login"
cc -Wall -Wextra -Werror "${cflags[@]}" host-tests/c/audio.c "${libs[@]}" -Wl,-rpath,"$libdir" -o "$work/audio"
# Static: the archive plus Libs.private (the runtime libraries rustc lists for a staticlib).
read -ra static_libs <<<"$(pkg-config --static --libs moltlink)"
cc -Wall -Wextra -Werror "${cflags[@]}" host-tests/c/login.c "${static_libs[@]/#-lmoltlink/-l:libmoltlink.a}" -o "$work/login-static"
ldd "$work/login-static" | grep -q libmoltlink && { echo "login-static links libmoltlink dynamically" >&2; exit 1; }
echo "built against $prefix: $(pkg-config --modversion moltlink), $(readelf -d "$work/login" | sed -n 's/.*(NEEDED).*\[\(libmoltlink[^]]*\)\]/\1/p')"

echo "== sandbox"
"$bin" sandbox --port 0 >"$work/sandbox.out" 2>"$work/sandbox.err" &
sandbox_pid=$!
for _ in $(seq 100); do
    grep -qx ready "$work/sandbox.out" 2>/dev/null && break
    kill -0 "$sandbox_pid" 2>/dev/null || { cat "$work/sandbox.err" >&2; echo "sandbox exited" >&2; exit 1; }
    sleep 0.1
done
grep -qx ready "$work/sandbox.out" || { echo "sandbox not ready after 10 s" >&2; exit 1; }
api=$(sed -n 's/^MOLTCHATS_API_BASE=//p' "$work/sandbox.out")
echo "MoltChats API at $api"

user="c_host_$$_$RANDOM"
creds="$work/credentials.json"
passed=0
failed=0
failures=()
run() {
    local name=$1
    shift
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

run "register run" "$work/login" "$api" "$user" "$creds"
run "register run (static link)" "$work/login-static" "$api" "${user}_s" "$work/credentials-static.json"
# Recorded server frames for the reload run's realtime session: every "in" frame of every
# WebSocket capture (each channel's `subscribed` once), the channels on the first line.
python3 - host-tests/wire/moltchats/ws "$work/frames.txt" <<'PY'
import json, pathlib, sys
frames, channels = [], []
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.jsonl")):
    for line in f.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("dir") == "in":
            frame = rec["frame"]
            if frame.get("op") == "subscribed":
                # Once per channel: a second `subscribed` backfills over REST, and the sandbox
                # does not know the recorded server's channels.
                if frame.get("channel") in channels:
                    continue
                channels.append(frame["channel"])
            frames.append(json.dumps(frame, separators=(",", ":")))
pathlib.Path(sys.argv[2]).write_text(json.dumps(channels) + "\n" + "\n".join(frames) + "\n")
PY
if [[ -f $creds ]]; then
    if command -v valgrind >/dev/null && [[ ${MOLTLINK_VALGRIND:-1} != 0 ]]; then
        run "reload run + realtime session on recorded frames (valgrind)" valgrind -q --error-exitcode=1 --leak-check=full \
            "$work/login" "$api" "$user" "$creds" "$work/frames.txt"
    else
        run "reload run + realtime session on recorded frames" "$work/login" "$api" "$user" "$creds" "$work/frames.txt"
    fi
else
    failed=$((failed + 1))
    failures+=("reload run (no credentials file after the register run)")
fi

espeak-ng --stdout "Hello from C, this is the voice pipeline." | sox -t wav - -r 48000 -c 1 -t s16 "$work/speech.s16"
if command -v valgrind >/dev/null && [[ ${MOLTLINK_VALGRIND:-1} != 0 ]]; then
    run "audio run (valgrind)" valgrind -q --error-exitcode=1 --leak-check=full "$work/audio" "$work/speech.s16"
else
    run "audio run" "$work/audio" "$work/speech.s16"
fi

echo "C host: $passed passed, $failed failed"
for f in "${failures[@]}"; do echo "  failed: $f"; done
[[ $failed -eq 0 ]]
