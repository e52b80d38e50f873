#!/usr/bin/env bash
# Runs cargo-fuzz targets of commonware-runtime for a bounded time each, then
# checks that the fuzzer finds the bug planted in the `interleavings` target.
#
#   bash fuzz/run.sh                      # every target for $FUZZ_SECONDS (default 20)
#   FUZZ_SECONDS=300 bash fuzz/run.sh     # longer
#   bash fuzz/run.sh --long               # every target for 20 minutes (FUZZ_SECONDS
#                                         # still overrides); the mode to run before a
#                                         # release or after touching a fuzzed path
#   bash fuzz/run.sh --long storage       # named targets only
#
# CI runs the short mode. Builds with AddressSanitizer (cargo fuzz's
# default), on the stable toolchain through RUSTC_BOOTSTRAP=1 when it is not
# nightly. Installs cargo-fuzz if it is missing; if it cannot be installed,
# says so and exits 0. The `differential` target also uses real files (under
# the system temp dir) and loopback TCP, as the tokio runtime does. Corpora
# persist in fuzz/corpus/<target> (so a long run's corpus speeds up the next
# short one); crashes land in fuzz/artifacts/<target>. Exits non-zero if a
# target crashes, or if the planted bug is not found.
set -uo pipefail

cd "$(dirname "$0")"
DEFAULT_SECONDS=20
if [ "${1:-}" = "--long" ]; then
    DEFAULT_SECONDS=1200
    shift
fi
SECONDS_PER_TARGET="${FUZZ_SECONDS:-$DEFAULT_SECONDS}"
PLANTED_SECONDS="${FUZZ_PLANTED_SECONDS:-120}"
TARGETS=(interleavings storage network differential)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz not found; installing it (cargo install cargo-fuzz --locked)"
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz: SKIPPED: cargo-fuzz could not be installed, so no fuzz target ran"
        exit 0
    fi
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT

echo "fuzz: building ${TARGETS[*]} with $(cargo fuzz --version) and AddressSanitizer"
if ! cargo fuzz build >"$log_dir/build.log" 2>&1; then
    tail -n 40 "$log_dir/build.log"
    echo "fuzz: FAILED: the fuzz targets did not build"
    exit 1
fi

# The closing statistics libFuzzer printed: runs, coverage, corpus.
summary() {
    grep -E '^Done [0-9]+ runs' "$1" | tail -n 1
    grep -E '^#[0-9]+' "$1" | tail -n 1
}

# Extra libFuzzer flags per target. A differential sequence spends its
# first bytes on setup (open, bind, dial), so its inputs are long from the
# start instead of growing from a few bytes.
extra_flags() {
    case "$1" in
        differential) echo "-len_control=0 -max_len=512" ;;
    esac
}

failed=0
for target in "${TARGETS[@]}"; do
    mkdir -p "corpus/$target"
    log="$log_dir/$target.log"
    echo "fuzz: $target for ${SECONDS_PER_TARGET}s (corpus: $(ls "corpus/$target" | wc -l) inputs)"
    # shellcheck disable=SC2046 # the flags are words
    if cargo fuzz run "$target" "corpus/$target" -- $(extra_flags "$target") \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1; then
        echo "fuzz: $target passed: $(summary "$log" | tr '\n' ' ')"
    else
        grep -E 'panicked at|ERROR: AddressSanitizer|SUMMARY' -A 4 "$log" | head -n 30
        grep -E '^(Reproduce with|Minimize test case with):' -A 2 "$log"
        echo "fuzz: $target FAILED (full log above was cut; crash input in fuzz/artifacts/$target)"
        failed=1
    fi
done

# The planted bug: a lost update that only a schedule holding one teller back
# reveals. Found from an empty corpus, so it measures the search, not luck.
planted="$log_dir/planted"
mkdir -p "$planted/corpus" "$planted/artifacts"
echo "fuzz: interleavings --features planted-bug from an empty corpus (up to ${PLANTED_SECONDS}s)"
if ! cargo fuzz build --features planted-bug interleavings >"$planted/build.log" 2>&1; then
    tail -n 40 "$planted/build.log"
    echo "fuzz: FAILED: the planted-bug variant did not build"
    exit 1
fi
start=$(date +%s)
cargo fuzz run --features planted-bug interleavings "$planted/corpus" -- \
    -max_total_time="$PLANTED_SECONDS" -seed=1 -print_final_stats=1 \
    -artifact_prefix="$planted/artifacts/" >"$planted/log" 2>&1
elapsed=$(( $(date +%s) - start ))
crash="$(ls "$planted/artifacts" 2>/dev/null | head -n 1)"
if [ -n "$crash" ] && grep -q 'money was created or destroyed' "$planted/log"; then
    execs="$(grep -E '^stat::number_of_executed_units' "$planted/log" | grep -oE '[0-9]+$')"
    bytes="$(od -An -tu1 -v "$planted/artifacts/$crash" | tr -s ' \n' ' ')"
    echo "fuzz: planted lost update found after ${execs:-?} executions in about ${elapsed}s; input bytes:${bytes}"
else
    tail -n 20 "$planted/log"
    echo "fuzz: FAILED: the planted lost update was not found in ${PLANTED_SECONDS}s"
    failed=1
fi

if [ "$failed" -ne 0 ]; then
    exit 1
fi
echo "fuzz: all targets passed and the planted bug was found"
