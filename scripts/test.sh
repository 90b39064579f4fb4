#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, runs every test.
#   unit tests (core, codec, config, state machine on a fake clock, control layer on a real
#   kernel) and end-to-end tests (real DPDK vdevs in namespaces this script's tests create).
set -euo pipefail
. "$(dirname "$0")/setup.sh"
hw_need_root
hw_install
hw_build
hw_fetch
hw_hugepages 256 || echo "heartwire: no hugepages here; the memif tests will be skipped"

# A run killed earlier (a restart mid-run) leaves its namespaces: removed here, so that the
# check at the end counts only what this run leaves.
stale=$(hw_stale_netns)
if [ -n "$stale" ]; then
    echo "heartwire: removing $(echo "$stale" | wc -l) namespace(s) left by an earlier run whose process is gone"
    for ns in $stale; do ip netns del "$ns" || true; done
fi

rc=0
meson test -C "$HW_BUILD" --print-errorlogs --num-processes 1 "$@" || rc=$?

# The libFuzzer targets (fuzz/, clang-14), HW_FUZZ_SECONDS (20) each, side by side: a crash
# or a broken invariant fails the run. HW_FUZZ_SECONDS=0 leaves them out.
if command -v clang++-14 >/dev/null 2>&1; then
    HW_BUILD="$HW_BUILD" "$HW_ROOT/scripts/fuzz.sh" || rc=1
else
    echo "heartwire: clang++-14 not found, fuzz targets skipped"
fi

# One plain summary line over every GoogleTest case that ran.
log="$HW_BUILD/meson-logs/testlog.txt"
count() { { grep -hoE "^\\[  $1 *\\] [0-9]+ test" "$log" || true; } | awk '{s+=$(NF-1)} END {print s+0}'; }
passed=$(count PASSED)
failed=$(count FAILED)
skipped=$(count SKIPPED)
left=$(hw_stale_netns | wc -l)
if [ "$left" -gt 0 ]; then
    echo "heartwire: $left test namespace(s) left behind" >&2
    rc=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit $rc
