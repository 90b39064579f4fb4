#!/usr/bin/env bash
# heartwire replicated state store benchmark (issue 10): one command. See bench/README.md.
#
#   sudo flock /tmp/hw-heavy.lock bench/state/run.sh        # every phase, ~5 min
#   bench/state/run.sh --phases sync --sync-configs af_xdp:busy:default:primary --sync-writes 100000
#
# Phases (--phases sync,async,snapshot,detect):
#   sync      synchronous write latency (one outstanding) per --sync-configs pmd:idle:sched:app
#             beside the monitor's probe round trip at the same time
#   async     writes/s from one application thread, and how fast the acknowledgements follow
#   snapshot  a monitor joining a primary that holds --snapshot-records records (--snapshot-values 16,200)
#   detect    SIGKILL detection at --window, --kills per arm, without / with a --load-rate async load
# run.sh options: --build-dir DIR (or BUILD_DIR / HW_BUILD; default <repo>/build), --no-build
# (use the binaries as they are), -h|--help. Everything else goes to state.py
# (`python3 bench/state/state.py --help`), e.g. --set engine.yield_us=10 for every pair.
# Environment: RESULTS (default bench/state/results/<date>), HWB_KEEP_LOGS=1 (keep the work dir).
#
# Needs root. Creates namespaces hws<pid>-{br,a,b,client} and removes them on exit (Ctrl-C
# included), regions /dev/shm/hws<pid>-*; addresses only in 169.254.10.0/24; stops only the
# processes it started, by PID. Sets vm.nr_hugepages to at least 256 for memif (not restored,
# as bench/failover/run.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-${HW_BUILD:-$repo/build}}
stamp=$(date +%Y%m%d-%H%M%S)
results=${RESULTS:-$here/results/$stamp}
prefix=hws$$
pidfile=$(mktemp /tmp/$prefix-pids.XXXXXX)

[[ $(id -u) == 0 ]] || { echo "run.sh: needs root (namespaces, DPDK)" >&2; exit 2; }

dobuild=1
args=()
while (($#)); do
    case $1 in
        --no-build) dobuild=0 ;;
        --build-dir) build=$2; shift ;;
        --build-dir=*) build=${1#*=} ;;
        -h|--help) sed -n "2,22p" "$0"; exit 0 ;;
        *) args+=("$1") ;;
    esac
    shift
done
build=$(cd "$build" 2>/dev/null && pwd || echo "$build")

. "$repo/bench/lib.sh"
HWB_CLEAN_EXTRA="/dev/shm/$prefix-*"
trap hwb_cleanup EXIT
trap 'exit 130' INT TERM

hwb_build dpdk_apps/heartwired dpdk_apps/heartwirectl dpdk_apps/heartwire-failover-probe bench/state_bench
hwb_host_setup

mkdir -p "$results"
{
    echo "date: $(date -u -Iseconds)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "kernel: $(uname -r)"
    echo "dpdk: $(pkg-config --modversion libdpdk 2>/dev/null || echo unknown)"
    echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "uncommitted: $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l) file(s)"
    echo "hugepages: $(cat /proc/sys/vm/nr_hugepages)"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "build: $build"
    echo "args: ${args[*]:-}"
} > "$results/machine.txt"
cat "$results/machine.txt"

python3 "$here/state.py" --build-dir "$build" --prefix "$prefix" --pidfile "$pidfile" --results "$results" "${args[@]}"
[[ -n ${RESULTS:-} ]] || ln -sfn "$stamp" "$here/results/latest"
