#!/usr/bin/env bash
# Instructions per 20 ms frame under callgrind (repeatable, unlike wall time): each workload
# runs for N and 2N frames; (I(2N) - I(N)) / N cancels the setup (espeak, codec creation).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p moltlink-bench
bin=target/release/moltlink-bench
n=${FRAMES:-200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
instructions() {
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" audio count "$1" "$2" >/dev/null 2>&1
  awk '/^(summary|totals):/ {print $2; exit}' "$tmp/out"
}
declare -A per
for w in encode decode duplex duplex441 dsp; do
  a=$(instructions "$w" "$n"); b=$(instructions "$w" $((2 * n)))
  per[$w]=$(( (b - a) / n ))
  printf '  %-10s %10d instructions/frame\n' "$w" "${per[$w]}"
done
awk -v d="${per[duplex]}" -v e="${per[encode]}" -v c="${per[decode]}" -v s="${per[dsp]}" 'BEGIN {
  printf "  duplex / raw encode: %.2f; non-codec part (duplex - encode - decode) = %.0f %% of a raw encode; dsp alone = %.0f %%\n", d / e, 100 * (d - e - c) / e, 100 * s / e }'
