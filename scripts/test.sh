#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, runs every test.
#   unit tests (core, codec, config, state machine on a fake clock, control layer on a real
#   kernel) and end-to-end tests (real DPDK vdevs in namespaces this script's tests create).
set -euo pipefail
. "$(dirname "$0")/setup.sh"
hw_need_root
hw_install
hw_build
hw_hugepages 256 || echo "heartwire: no hugepages here; the memif tests will be skipped"

rc=0
meson test -C "$HW_BUILD" --print-errorlogs --num-processes 1 "$@" || rc=$?

# One plain summary line over every GoogleTest case that ran.
log="$HW_BUILD/meson-logs/testlog.txt"
passed=$(grep -hoE '^\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -hoE '^\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
skipped=$(grep -hoE '^\[  SKIPPED \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
left=$(ip netns list 2>/dev/null | grep -cE '^hw[0-9]+n' || true)
if [ "$left" -gt 0 ]; then
    echo "heartwire: $left test namespace(s) left behind" >&2
    rc=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit $rc
