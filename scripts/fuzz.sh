#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang-14 (ASan + UBSan) and runs each for a
# bounded time on a copy of its committed corpus. Fails on a crash, a leak, a timeout or a
# broken invariant; the input that did it is kept under $HW_BUILD/fuzz/artifacts/.
#
#   scripts/fuzz.sh                    build, then run decode, config, fsm and replica for 20 s each
#   scripts/fuzz.sh fsm                one target only (decode | config | fsm | replica)
#   scripts/fuzz.sh --update-corpus    merge what the run found into fuzz/corpus/ (-merge=1)
#   scripts/fuzz.sh --build-only       build the targets, run nothing
#   scripts/fuzz.sh --seed-corpus      rewrite the seed-* inputs from fuzz/gen_corpus.cpp (after a
#                                      wire format, script language or config key change), then run
#   HW_FUZZ_SECONDS=300 HW_FUZZ_JOBS=1 scripts/fuzz.sh fsm   (0 seconds: skip; jobs: 4 by default)
#
# Reproduce a kept input: $HW_BUILD/fuzz/fuzz_<target> <file> (prints what broke).
# The core is pure C++ (no DPDK), so the targets compile its sources directly; toml++ is
# built header-only so its parser is instrumented too, with its internal assertions off as
# in the distribution's gcc build (toml++ 3.3 asserts on "[\x01]", where it then reports a
# parse error; fuzz/findings/README.md). No clang-14 or no libFuzzer runtime: a message
# and exit 0 (the meson build uses gcc and does not need either).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${HW_BUILD:-$root/build}
case $build in /*) ;; *) build=$PWD/$build ;; esac # as meson takes it: from here
out=$build/fuzz
seconds=${HW_FUZZ_SECONDS:-20}
jobs=${HW_FUZZ_JOBS:-4} # targets run side by side, this many at once (wall time: seconds x 4 / jobs)
cxx=${HW_FUZZ_CXX:-clang++-14}
all_targets=(decode config fsm replica)

update=0
build_only=0
seed=0
targets=()
for a in "$@"; do
    case $a in
    --update-corpus) update=1 ;;
    --build-only) build_only=1 ;;
    --seed-corpus) seed=1 ;;
    decode | config | fsm | replica) targets+=("$a") ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown argument '$a' (targets: ${all_targets[*]}; --update-corpus, --build-only, --seed-corpus)" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

if [ "$seconds" = 0 ] && [ $build_only -eq 0 ] && [ $seed -eq 0 ]; then
    echo "heartwire: fuzz: HW_FUZZ_SECONDS=0, fuzzing skipped"
    exit 0
fi
if ! command -v "$cxx" >/dev/null 2>&1; then
    echo "heartwire: fuzz: $cxx not found, fuzzing skipped (apt-get install clang-14 libclang-rt-14-dev)"
    exit 0
fi
mkdir -p "$out/obj"
probe=$out/obj/probe.cpp
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
    'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }' > "$probe"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/obj/probe" >/dev/null 2>&1; then
    echo "heartwire: fuzz: $cxx cannot link a libFuzzer target, fuzzing skipped (apt-get install libclang-rt-14-dev)"
    exit 0
fi

# ---------------------------------------------------------------- build
flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
       -Wall -Wextra -D_GNU_SOURCE -DTOML_HEADER_ONLY=1 -DTOML_SHARED_LIB=0 '-DTOML_ASSERT(expr)=((void)0)'
       -I"$root/include" -I"$root/src" -I"$root/tests/unit")
stamp=$out/obj/flags
echo "$cxx ${flags[*]}" | cmp -s - "$stamp" 2>/dev/null || { rm -f "$out"/obj/*.o; echo "$cxx ${flags[*]}" > "$stamp"; }

# Rebuilds an object when its source or any header it includes is newer (clang's -MMD list).
stale() { # obj src
    [ -f "$1" ] && [ -f "$1.d" ] || return 0
    [ "$2" -nt "$1" ] && return 0
    local dep
    for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$1.d"); do
        [ "$dep" -nt "$1" ] && return 0
    done
    return 1
}
compile() { # src obj extra-flags...
    local src=$1 obj=$2
    shift 2
    "$cxx" "${flags[@]}" "$@" -MMD -MF "$obj.d" -c "$src" -o "$obj"
}

t0=$(date +%s)
pids=()
objs=()
for src in "$root"/src/core/*.cpp; do
    obj=$out/obj/core_$(basename "$src" .cpp).o
    objs+=("$obj")
    if stale "$obj" "$src"; then compile "$src" "$obj" -fsanitize=fuzzer-no-link & pids+=($!); fi
done
for t in "${all_targets[@]}" gen_corpus; do
    src=$root/fuzz/fuzz_$t.cpp
    [ "$t" = gen_corpus ] && src=$root/fuzz/gen_corpus.cpp
    obj=$out/obj/fuzz_$t.o
    if stale "$obj" "$src"; then compile "$src" "$obj" -fsanitize=fuzzer-no-link & pids+=($!); fi
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
if [ $failed -ne 0 ]; then
    echo "heartwire: fuzz: build failed (errors above)" >&2
    exit 1
fi
for t in "${all_targets[@]}"; do
    "$cxx" "${flags[@]}" -fsanitize=fuzzer "$out/obj/fuzz_$t.o" "${objs[@]}" -o "$out/fuzz_$t"
done
"$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link "$out/obj/fuzz_gen_corpus.o" "${objs[@]}" -o "$out/gen_corpus"
echo "heartwire: fuzz: targets built in $out ($(( $(date +%s) - t0 )) s)"
if [ $seed -eq 1 ]; then
    "$out/gen_corpus" "$root" || { echo "heartwire: fuzz: seed corpus has problems (above)" >&2; exit 1; }
    echo "heartwire: fuzz: seed corpus written to $root/fuzz/corpus"
fi
[ $build_only -eq 0 ] || exit 0

# ---------------------------------------------------------------- run
work=$(mktemp -d "${TMPDIR:-/tmp}/heartwire-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/artifacts"

run() { # target -> log in $work/$t.log, rc in $work/$t.rc
    local t=$1
    local -a opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                   -artifact_prefix="$out/artifacts/$t-" -max_len=4096)
    [ -f "$root/fuzz/$t.dict" ] && opts+=(-dict="$root/fuzz/$t.dict")
    # A script needs room to tell a story; libFuzzer would otherwise grow inputs from 4 bytes.
    [ "$t" = fsm ] && opts+=(-len_control=10)
    mkdir -p "$work/$t"
    [ -d "$root/fuzz/corpus/$t" ] && cp -r "$root/fuzz/corpus/$t/." "$work/$t/"
    local rc=0
    "$out/fuzz_$t" "${opts[@]}" "$work/$t" > "$work/$t.log" 2>&1 || rc=$?
    echo $rc > "$work/$t.rc"
}

echo "heartwire: fuzz: running ${targets[*]} for $seconds s each, $jobs at once"
t0=$(date +%s)
running=0
for t in "${targets[@]}"; do
    run "$t" &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

rc=0
for t in "${targets[@]}"; do
    log=$work/$t.log
    trc=$(cat "$work/$t.rc" 2>/dev/null || echo 1)
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    cov=$(grep -oE '(INITED|DONE|REDUCE|NEW|pulse) +cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || echo "?")
    if [ "$trc" -eq 0 ]; then
        echo "heartwire: fuzz $t: ok, $execs runs in ${seconds} s ($speed/s), coverage $cov edges"
    else
        rc=1
        echo "heartwire: fuzz $t: FAILED (exit $trc) after $execs runs; log follows" >&2
        grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)|^\s+NEW_FUNC' "$log" | tail -60 >&2
        for a in $(grep -oE "Test unit written to \S+" "$log" | awk '{print $NF}'); do
            echo "heartwire: fuzz $t: reproduce with: $out/fuzz_$t $a" >&2
        done
    fi
    if [ $update -eq 1 ] && [ "$trc" -eq 0 ]; then
        mkdir -p "$root/fuzz/corpus/$t"
        before=$(ls "$root/fuzz/corpus/$t" | wc -l)
        "$out/fuzz_$t" -merge=1 "$root/fuzz/corpus/$t" "$work/$t" > "$work/$t.merge.log" 2>&1 ||
            { echo "heartwire: fuzz $t: corpus merge failed" >&2; tail -5 "$work/$t.merge.log" >&2; rc=1; }
        echo "heartwire: fuzz $t: corpus $before -> $(ls "$root/fuzz/corpus/$t" | wc -l) inputs"
    fi
done
echo "heartwire: fuzz: ran ${targets[*]} in $(( $(date +%s) - t0 )) s"
exit $rc
