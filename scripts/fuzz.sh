#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each (default 60),
# starting from the committed seed corpus. New inputs go to a scratch corpus;
# a crash fails the run and leaves its input in fuzz/artifacts/<target>/.
#
#   FUZZ_SECONDS=600 scripts/fuzz.sh [target ...]
#
# cargo-fuzz runs on the stable toolchain with `-s none` (no sanitizer:
# AddressSanitizer needs nightly, and the code under test has no `unsafe`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build -s none
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "fuzzing $target for ${seconds}s" >&2
    status=0
    cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::new_units_added)" "$scratch/$target.log" >&2 || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$scratch/$target.log" >&2
        echo "fuzz target $target failed (exit $status)" >&2
        exit 1
    fi
done
