#!/usr/bin/env bash
# heartwire failover benchmark: one command. See bench/README.md.
#
#   bench/failover/run.sh --quick          # < 5 minutes: a few cells, 3 injections each, short soak
#   bench/failover/run.sh                  # the full matrix, 200 injections per cell, 10-minute soaks (hours)
#   bench/failover/run.sh --configs af_xdp:rtc:1000x10 --kinds kill --injections 200 --no-soak
#
# Options (all passed to failover.py): --quick, --injections N, --configs pmd:engine:interval[xmiss][,...]|all,
# --kinds kill,stop,link, --miss N, --ka-injections N, --ka-kinds K, --advert S, --soak-seconds N,
# --soak-settings 10x3,100x3, --engine-nice N, --no-heartwire, --no-keepalived, --no-soak, --no-micro.
# Environment: BUILD_DIR (default <repo>/build), RESULTS (default bench/failover/results/<date>).
#
# Needs root. Creates namespaces hwb<pid>-{br,a,b,client} and removes them on exit (Ctrl-C
# included); addresses only in 169.254.10.0/24; stops only the processes it started, by PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$repo/build}
stamp=$(date +%Y%m%d-%H%M%S)
results=${RESULTS:-$here/results/$stamp}
prefix=hwb$$
pidfile=$(mktemp /tmp/$prefix-pids.XXXXXX)

[[ $(id -u) == 0 ]] || { echo "run.sh: needs root (namespaces, DPDK)" >&2; exit 2; }

micro=1
args=()
for a in "$@"; do
    case $a in
        --no-micro) micro=0 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) args+=("$a") ;;
    esac
done

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Processes this run started (failover.py records every PID), then our namespaces only.
    if [[ -s $pidfile ]]; then
        while read -r pid; do
            [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null || true; }
        done < "$pidfile"
    fi
    rm -f "$pidfile"
    for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-" || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf /var/run/dpdk/$prefix* /dev/hugepages/$prefix* 2>/dev/null || true
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build (the same steps scripts/test.sh uses)
if [[ ! -f $build/build.ninja ]]; then
    meson setup "$build" -Dbuildtype=release
fi
ninja -C "$build"
for bin in dpdk_apps/heartwired dpdk_apps/heartwirectl dpdk_apps/heartwire-failover-probe; do
    [[ -x $build/$bin ]] || { echo "run.sh: $build/$bin missing after the build" >&2; exit 2; }
done

# ---- packages: keepalived for the side-by-side run, gnuplot for the plot
need=()
command -v keepalived >/dev/null || need+=(keepalived)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# ---- hugepages for memif
if (( $(cat /proc/sys/vm/nr_hugepages) < 256 )); then echo 256 > /proc/sys/vm/nr_hugepages; fi
mkdir -p /dev/hugepages
grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts || mount -t hugetlbfs nodev /dev/hugepages

mkdir -p "$results"
{
    echo "date: $(date -Iseconds)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "kernel: $(uname -r)"
    echo "dpdk: $(pkg-config --modversion libdpdk 2>/dev/null || echo unknown)"
    echo "keepalived: $(keepalived --version 2>&1 | head -1)"
    echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)${SOURCE_NOTE:+ ($SOURCE_NOTE)}"
    echo "args: $*"
} > "$results/machine.txt"
cat "$results/machine.txt"

# ---- microbenchmarks first, while no engine busy-polls the cores
if ((micro)); then
    mintime=1
    for a in "${args[@]}"; do [[ $a == --quick ]] && mintime=0.2; done
    if [[ -x $build/bench/micro_bench ]]; then
        "$build/bench/micro_bench" --benchmark_min_time=$mintime --benchmark_out="$results/micro_bench.json" \
            --benchmark_out_format=json
    fi
    if [[ -x $build/bench/dpdk_bench ]]; then
        "$build/bench/dpdk_bench" --benchmark_min_time=$mintime --benchmark_out="$results/dpdk_bench.json" \
            --benchmark_out_format=json -- --file-prefix "${prefix}m"
    fi
fi

python3 "$here/failover.py" --build-dir "$build" --prefix "$prefix" --pidfile "$pidfile" --results "$results" \
    "${args[@]}"
[[ -n ${RESULTS:-} ]] || ln -sfn "$stamp" "$here/results/latest"
