#!/usr/bin/env bash
# heartwire failover benchmark: one command. See bench/README.md.
#
#   bench/failover/run.sh --quick     # smoke test (< 4 min): 20 s soaks, 3 injections per kind and system
#   bench/failover/run.sh --issue7    # the standard run (also the default): af_xdp 100 us x 5, 10-minute soaks
#                                     #   without and with a CPU hog, then kill/stop/link x 200 injections,
#                                     #   heartwire and keepalived alternating
#   bench/failover/run.sh --no-failover --soak-settings 100x5,200x5,100x10 --soak-seconds 120   # find the window
#
# run.sh options: --build-dir DIR (or BUILD_DIR / HW_BUILD; default <repo>/build), --no-build (use the
# binaries as they are), --no-micro (skip the microbenchmarks), -h|--help.
# Everything else goes to failover.py (`python3 failover.py --help` lists them):
#   --quick | --issue7 | --matrix, --window IxM (100x5), --configs pmd:engine:interval[xmiss][,...]|all,
#   --kinds kill,stop,link, --injections N, --ka-injections N, --ka-kinds K, --advert S (0.01),
#   --soak-seconds N, --soak-settings 100x5,200x5, --no-hog, --idle adaptive|busy (adaptive),
#   --set SECTION.KEY=VALUE (extra heartwired TOML, e.g. engine.sched=other; default: daemon defaults),
#   --warmup-ms N, --settle-ms N, --engine-nice N, --no-interleave, --no-heartwire, --no-keepalived,
#   --no-soak, --no-failover.
# Environment: RESULTS (default bench/failover/results/<date>), HWB_KEEP_LOGS=1 (keep the work dir).
#
# Needs root. Creates namespaces hwb<pid>-{br,a,b,ka,kb,client} and removes them on exit (Ctrl-C
# included); addresses only in 169.254.10.0/24; stops only the processes it started, by PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-${HW_BUILD:-$repo/build}}
stamp=$(date +%Y%m%d-%H%M%S)
results=${RESULTS:-$here/results/$stamp}
prefix=hwb$$
pidfile=$(mktemp /tmp/$prefix-pids.XXXXXX)

[[ $(id -u) == 0 ]] || { echo "run.sh: needs root (namespaces, DPDK)" >&2; exit 2; }

micro=1
dobuild=1
quick=0
args=()
while (($#)); do
    case $1 in
        --no-micro) micro=0 ;;
        --no-build) dobuild=0 ;;
        --build-dir) build=$2; shift ;;
        --build-dir=*) build=${1#*=} ;;
        --quick) quick=1; args+=("$1") ;;
        -h|--help) sed -n "2,23p" "$0"; exit 0 ;;
        *) args+=("$1") ;;
    esac
    shift
done
build=$(cd "$build" 2>/dev/null && pwd || echo "$build")

. "$repo/bench/lib.sh"
trap hwb_cleanup EXIT
trap 'exit 130' INT TERM

# ---- build (the same steps scripts/test.sh uses)
hwb_build dpdk_apps/heartwired dpdk_apps/heartwirectl dpdk_apps/heartwire-failover-probe

# ---- packages: keepalived for the side-by-side run, gnuplot for the plot, cc for the link helper
need=()
command -v keepalived >/dev/null || need+=(keepalived)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v cc >/dev/null || need+=(gcc)
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# ---- a bpf filesystem for af_xdp, hugepages for memif (only --configs with memif use them)
hwb_host_setup

mkdir -p "$results"
src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
      "$build/meson-info/meson-info.json" 2>/dev/null || echo unknown)
{
    echo "date: $(date -Iseconds)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "kernel: $(uname -r)"
    echo "sched_rt_runtime_us: $(cat /proc/sys/kernel/sched_rt_runtime_us 2>/dev/null || echo ?)"
    echo "dpdk: $(pkg-config --modversion libdpdk 2>/dev/null || echo unknown)"
    echo "keepalived: $(keepalived --version 2>&1 | head -1)"
    echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)${SOURCE_NOTE:+ ($SOURCE_NOTE)}"
    echo "uncommitted: $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l) file(s)"
    echo "build: $build (source $src)"
    echo "args: ${args[*]:-}"
} > "$results/machine.txt"
cat "$results/machine.txt"

# ---- microbenchmarks first, while no engine busy-polls the cores
if ((micro)); then
    mintime=1
    ((quick)) && mintime=0.2
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
