#!/usr/bin/env bash
# Run every libFuzzer target (cargo-fuzz, nightly, AddressSanitizer) for a fixed budget.
#   bash host-tests/fuzz/run.sh [seconds-per-target] [target…]
# Each target starts from the committed corpus (corpus/<target>) plus its working corpus
# (target/corpus/<target>); with MERGE=1 new coverage is merged (minimised) back into the
# committed corpus. Crashes land in artifacts/<target>/: fix them, then copy the input to
# regressions/<target>/ (replayed on stable by `cargo test --test fuzz_corpus`).
# Prints, per target, libFuzzer's executions and final coverage (cov: edges, ft: features).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
secs=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' "$here/Cargo.toml" | grep -v '^moltlink-fuzz$')
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build --fuzz-dir "$here" || exit 1
summary="$here/target/summary.txt"
mkdir -p "$here/target"
printf '%-16s %10s %8s %8s %8s %s\n' target execs exec/s cov ft result | tee "$summary"
failed=0
for t in "${targets[@]}"; do
    work="$here/target/corpus/$t"
    mkdir -p "$work" "$here/corpus/$t" "$here/artifacts/$t"
    log="$here/target/$t.log"
    cargo +nightly fuzz run --fuzz-dir "$here" "$t" "$work" "$here/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    result=ok
    if [[ $rc -ne 0 ]]; then
        result="CRASH (see $log, artifacts/$t)"
        failed=$((failed + 1))
    fi
    printf '%-16s %10s %8s %8s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result" | tee -a "$summary"
    if [[ ${MERGE:-0} == 1 && $rc -eq 0 ]]; then
        # Keep the committed corpus small: only inputs that add coverage.
        tmp=$(mktemp -d)
        cargo +nightly fuzz run --fuzz-dir "$here" "$t" "$tmp" "$here/corpus/$t" "$work" -- -set_cover_merge=1 >/dev/null 2>&1 \
            && rm -f "$here/corpus/$t"/* && cp "$tmp"/* "$here/corpus/$t"/
        rm -rf "$tmp"
        # Commit at most CORPUS_CAP inputs (the smallest): the full corpus stays in target/.
        n=$(ls "$here/corpus/$t" | wc -l)
        cap=${CORPUS_CAP:-100}
        if (( n > cap )); then
            ls -S "$here/corpus/$t" | head -n $((n - cap)) | while read -r f; do rm "$here/corpus/$t/$f"; done
        fi
    fi
done
echo "fuzz: ${#targets[@]} targets, $failed crashed (summary: $summary)"
[[ $failed -eq 0 ]]
