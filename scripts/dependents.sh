#!/usr/bin/env bash
# Runs the test suites of published crates built on commonware-runtime 0.0.16
# against this crate, to show it is a drop-in replacement.
#
# The crates (exact versions) are obtained through cargo from crates.io, copied
# into a scratch workspace outside the repository's sources (default
# target/dependents/, override with DEPENDENTS_DIR), and `commonware-runtime`
# is patched to a scratch copy of this crate whose version reads 0.0.16 (the
# repository's Cargo.toml is never touched). With --reference the same crates
# run unpatched, on the registry's commonware-runtime 0.0.16, for comparison.
#
# For each crate the tests are compiled first (`cargo test --no-run`), then the
# test run alone is timed. Output: one line per crate, then `N passed, M failed`.
# A crate that does not build, or whose test run crashes or exceeds the time
# limit, counts as one failure; the exit status is non-zero on any failure.
#
# Needs only the Rust toolchain and network access to crates.io: the crates'
# build scripts need `protoc`; if neither PROTOC nor a `protoc` on PATH is
# found, the one shipped in the `protoc-bin-vendored` crate is used.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/dependents.sh [--reference] [--crate NAME]... [--timeout SECS]

  --reference     run the crates unpatched, on the registry's commonware-runtime 0.0.16
  --crate NAME    run only this crate (storage, stream, p2p, or the full crate name);
                  may be repeated
  --timeout SECS  limit on each crate's test run (default 1800)

Environment: DEPENDENTS_DIR (scratch directory, default <repo>/target/dependents).
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=${DEPENDENTS_DIR:-$ROOT/target/dependents}
DEPENDENTS=(commonware-storage@0.0.11 commonware-stream@0.0.8 commonware-p2p@0.0.30)
RUNTIME_VERSION=0.0.16

mode=ours
timeout_secs=1800
selected=()
while (($#)); do
    case $1 in
    --reference) mode=reference ;;
    --crate)
        [[ $# -ge 2 ]] || { usage >&2; exit 2; }
        selected+=("$2")
        shift
        ;;
    --timeout)
        [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { usage >&2; exit 2; }
        timeout_secs=$2
        shift
        ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'dependents.sh: %s\n' "$*" >&2; exit 2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Resolve --crate names against the list.
crates=()
for entry in "${DEPENDENTS[@]}"; do
    name=${entry%@*}
    if ((${#selected[@]} == 0)); then
        crates+=("$entry")
        continue
    fi
    for want in "${selected[@]}"; do
        if [[ $want == "$name" || "commonware-$want" == "$name" ]]; then
            crates+=("$entry")
        fi
    done
done
((${#crates[@]})) || die "no such crate: ${selected[*]} (known: ${DEPENDENTS[*]%@*})"

mkdir -p "$SCRATCH"
SCRATCH=$(cd "$SCRATCH" && pwd)
export CARGO_TARGET_DIR=$SCRATCH/target
logs=$SCRATCH/logs
mkdir -p "$logs"

# --- 1. Obtain the published sources through cargo. -------------------------
# A throwaway package depends on the exact versions; `cargo metadata` tells
# where cargo unpacked them.
fetch=$SCRATCH/fetch
mkdir -p "$fetch/src"
: >"$fetch/src/lib.rs"
{
    printf '[package]\nname = "dependents-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
    printf '[workspace]\n\n[dependencies]\n'
    for entry in "${DEPENDENTS[@]}"; do
        printf '%s = "=%s"\n' "${entry%@*}" "${entry#*@}"
    done
} >"$fetch/Cargo.toml"
say "fetching ${DEPENDENTS[*]}"
cargo fetch --quiet --manifest-path "$fetch/Cargo.toml"
metadata=$(cargo metadata --quiet --format-version 1 --manifest-path "$fetch/Cargo.toml")

source_dir() { # name version -> directory holding the crate's published sources
    local manifest
    manifest=$(grep -o "\"manifest_path\":\"[^\"]*/$1-$2/Cargo.toml\"" <<<"$metadata" | head -n 1 | cut -d'"' -f4)
    [[ -n $manifest ]] || die "cargo did not fetch $1 $2"
    dirname "$manifest"
}

# --- 2. The scratch workspace. -----------------------------------------------
# Keeps only the sections of a manifest a dependency build needs (no dev
# dependencies, targets, profiles or workspace tables), optionally rewriting
# the package version.
filter_manifest() { # manifest [version]
    awk -v version="${2:-}" '
        /^\[/ {
            section = $0
            keep = section ~ /^\[(package|lib|features|lints|dependencies|build-dependencies)([.\]])/ ||
                   section ~ /^\[target\..*\.(dependencies|build-dependencies)([.\]])/
        }
        keep && version != "" && section == "[package]" && /^version(\.workspace)? *=/ {
            print "version = \"" version "\""
            next
        }
        keep { print }
    ' "$1"
}

# Copies a package of this repository (manifest, build script, sources) and,
# recursively, its path dependencies, keeping their relative layout.
copy_package() { # relative-dir destination-root [version]
    local rel=$1 dest=$2/$1 dep
    [[ -d $dest ]] && return 0
    mkdir -p "$dest"
    filter_manifest "$ROOT/$rel/Cargo.toml" "${3:-}" >"$dest/Cargo.toml"
    cp -R "$ROOT/$rel/src" "$dest/src"
    [[ -f $ROOT/$rel/build.rs ]] && cp "$ROOT/$rel/build.rs" "$dest/build.rs"
    for dep in $(grep -o 'path *= *"[^"]*"' "$dest/Cargo.toml" | cut -d'"' -f2); do
        dep=$(cd "$ROOT/$rel/$dep" && pwd)
        [[ $dep == "$ROOT" ]] && dep=. || dep=${dep#"$ROOT"/}
        copy_package "$dep" "$2"
    done
}

ws=$SCRATCH/$mode
mkdir -p "$ws"
members=()
for entry in "${DEPENDENTS[@]}"; do
    name=${entry%@*}
    rm -rf "${ws:?}/$name"
    cp -R "$(source_dir "$name" "${entry#*@}")" "$ws/$name"
    rm -f "$ws/$name/Cargo.lock"
    members+=("$name")
done
patches=()
for name in "${members[@]}"; do
    patches+=("$name = { path = \"$name\" }")
done
if [[ $mode == ours ]]; then
    rm -rf "${ws:?}/ours"
    copy_package . "$ws/ours" "$RUNTIME_VERSION"
    # The copied packages inherit workspace fields from this workspace root.
    while IFS= read -r manifest; do
        members+=("${manifest%/Cargo.toml}")
    done < <(cd "$ws" && find ours -name Cargo.toml | sort)
    patches+=("commonware-runtime = { path = \"ours\" }")
fi
{
    printf '# Generated by scripts/dependents.sh (%s); do not edit.\n' "$mode"
    printf '[workspace]\nresolver = "2"\nmembers = [\n'
    printf '    "%s",\n' "${members[@]}"
    printf ']\n\n'
    if [[ $mode == ours ]]; then
        awk '/^\[/ { keep = $0 ~ /^\[workspace\.(package|dependencies|lints)/ } keep { print }' "$ROOT/Cargo.toml"
        printf '\n'
    fi
    # The dependents depend on each other through crates.io; patching them to
    # the members keeps one copy of each (and `cargo test -p NAME` unambiguous).
    printf '[patch.crates-io]\n'
    printf '%s\n' "${patches[@]}"
} >"$ws/Cargo.toml"

if [[ $mode == ours ]]; then
    patched=$(cargo tree --quiet --manifest-path "$ws/Cargo.toml" -p commonware-p2p -i commonware-runtime --depth 0 2>&1 || true)
    [[ $patched == *"($ws/ours)"* ]] ||
        die "the commonware-runtime patch did not apply (is the scratch copy at version $RUNTIME_VERSION?): $patched"
fi

# --- 3. protoc for the crates' build scripts. --------------------------------
if [[ -z ${PROTOC:-} ]] && ! command -v protoc >/dev/null 2>&1; then
    helper=$SCRATCH/protoc
    mkdir -p "$helper/src"
    printf '[package]\nname = "protoc-path"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[workspace]\n\n[dependencies]\nprotoc-bin-vendored = "3"\n' >"$helper/Cargo.toml"
    printf 'fn main() {\n    println!("{}", protoc_bin_vendored::protoc_bin_path().expect("no vendored protoc for this platform").display());\n}\n' >"$helper/src/main.rs"
    say "using the protoc shipped in the protoc-bin-vendored crate"
    PROTOC=$(cargo run --quiet --manifest-path "$helper/Cargo.toml")
    export PROTOC
fi

# --- 4. Build, then time the test runs. --------------------------------------
total_passed=0
total_failed=0
summary=()
cd "$ws"
for entry in "${crates[@]}"; do
    name=${entry%@*}
    log=$logs/$mode-$name
    say "$name ${entry#*@} [$mode]: compiling tests"
    start=$(now)
    if ! cargo test --manifest-path "$ws/Cargo.toml" -p "$name" --no-run >"$log.build.log" 2>&1; then
        tail -n 30 "$log.build.log" >&2
        summary+=("$name ${entry#*@} [$mode]: BUILD FAILED, counted as one failure (see $log.build.log)")
        total_failed=$((total_failed + 1))
        continue
    fi
    compile=$(elapsed "$start" "$(now)")
    say "$name ${entry#*@} [$mode]: running tests (compiled in ${compile}s)"
    # Wall time, and CPU time (user + system, test threads included), which
    # other load on the machine disturbs less.
    status=0
    TIMEFORMAT='%R %U %S'
    { time timeout "$timeout_secs" cargo test --manifest-path "$ws/Cargo.toml" -p "$name" --no-fail-fast \
        >"$log.test.log" 2>&1; } 2>"$log.time" || status=$?
    read -r run user sys <"$log.time"
    run=$(awk -v r="$run" 'BEGIN { printf "%.1f", r }')
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
    read -r passed failed < <(awk '/^test result:/ {
            for (i = 1; i <= NF; i++) {
                if ($(i + 1) ~ /^passed;?$/) p += $i
                if ($(i + 1) ~ /^failed;?$/) f += $i
            }
        } END { print p + 0, f + 0 }' "$log.test.log")
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    line="$name ${entry#*@} [$mode]: $passed passed, $failed failed (compile ${compile}s, test run ${run}s wall, ${cpu}s cpu)"
    # A run that did not finish counts as (at least) one failure.
    if ((status == 124)); then
        line+=" TIMED OUT after ${timeout_secs}s"
        total_failed=$((total_failed + 1))
    elif ((status != 0 && failed == 0)); then
        line+=" EXITED WITH STATUS $status (see $log.test.log)"
        total_failed=$((total_failed + 1))
    fi
    summary+=("$line")
    grep -E '^test .* \.\.\. FAILED$' "$log.test.log" | sed 's/^/    /' >&2 || true
    if ((status != 0)); then
        say "log: $log.test.log"
    fi
done

printf '\n'
printf '%s\n' "${summary[@]}"
printf '%d passed, %d failed\n' "$total_passed" "$total_failed"
((total_failed == 0))
