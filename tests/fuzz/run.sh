#!/usr/bin/env bash
# Runs each fuzz target for SECONDS, one after another (libFuzzer uses one core per run), and
# fails on the first crash, leak, timeout or out-of-memory. The input that failed is kept in
# tests/fuzz/artifacts/<target>/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz <target> tests/fuzz/artifacts/<target>/<file>
# (from the repository root), or run tests/fuzz/target/<host triple>/release/<target> <file>.
#
#   tests/fuzz/run.sh SECONDS [TARGET...]     # default: every target
#
# Works on the stable toolchain: cargo-fuzz passes `-Zsanitizer=address`, which stable rustc
# accepts with RUSTC_BOOTSTRAP=1. SANITIZER=none builds without ASan (about 2-3x more
# executions per second, fewer bugs caught). PROFILE=dev builds unoptimized (a few minutes less
# to build on two cores, far fewer executions per second): what the CI's short run uses, since
# there the build dominates.
set -euo pipefail

secs="${1:?usage: run.sh SECONDS [TARGET...]}"
shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(parse sdp policy framing guard)
fi
sanitizer="${SANITIZER:-address}"
profile_flag=() profile_dir=release
if [ "${PROFILE:-release}" = dev ]; then profile_flag=(--dev) profile_dir=debug; fi
export RUSTC_BOOTSTRAP=1

"$here/seed.sh"
mkdir -p "$here/logs"
cd "$root"
# Built once, then the binaries run directly: `cargo fuzz run` would rebuild whenever a source
# file changed in between, and the runs would not all test the same code.
cargo fuzz build --fuzz-dir tests/fuzz --sanitizer "$sanitizer" "${profile_flag[@]}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin="$here/target/$triple/$profile_dir"

summary=()
for t in "${targets[@]}"; do
    mkdir -p "$here/artifacts/$t"
    log="$here/logs/$t.log"
    echo "== $t: ${secs}s"
    # -timeout: an input taking 10 s is a denial of service, reported like a crash.
    # -rss_limit_mb: memory must stay bounded whatever the input.
    if ! "$bin/$t" "$here/corpus/$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$here/artifacts/$t/" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "FAIL: $t (log: $log, input: $here/artifacts/$t/)" >&2
        exit 1
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)"
    corpus="$(find "$here/corpus/$t" -type f | wc -l)"
    summary+=("$(printf '%-8s %12s execs %8s/s  %-10s corpus %5s  crashes 0' "$t" "$execs" "$rate" "$cov" "$corpus")")
done
echo
printf '%s\n' "${summary[@]}"
