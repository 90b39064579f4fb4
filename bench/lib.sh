# Shared by the benchmarks' run.sh scripts (bench/failover, bench/state): sourced, not run.
# Each script sets repo, build, prefix and pidfile before it calls these.

# The EXIT trap: what the run started (its Python harness records every PID; each leads its
# own session, so what it started is found by session id), then its namespaces and files
# (the `$prefix` ones only, and any extra globs given).
hwb_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -s $pidfile ]]; then
        while read -r pid; do
            [[ -n $pid ]] || continue
            for p in $pid $(ps -o pid= -s "$pid" 2>/dev/null || true); do
                kill -0 "$p" 2>/dev/null && { kill -KILL "$p" 2>/dev/null || true; }
            done
        done < "$pidfile"
    fi
    rm -f "$pidfile"
    for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-" || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    # shellcheck disable=SC2086
    rm -rf /var/run/dpdk/$prefix* /dev/hugepages/$prefix* ${HWB_CLEAN_EXTRA:-} 2>/dev/null || true
    exit $rc
}

# Builds unless --no-build (dobuild=0), then checks the binaries named exist.
hwb_build() {
    if ((dobuild)); then
        [[ -f $build/build.ninja ]] || meson setup "$build" "$repo" -Dbuildtype=release
        ninja -C "$build"
    fi
    local bin
    for bin in "$@"; do
        [[ -x $build/$bin ]] || { echo "run.sh: $build/$bin missing (build it, or --build-dir DIR)" >&2; exit 2; }
    done
}

# A bpf filesystem for af_xdp's libxdp (as scripts/setup.sh does) and 256 hugepages for
# memif (EAL -m 128 a node; raised, never restored).
hwb_host_setup() {
    mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
    if (( $(cat /proc/sys/vm/nr_hugepages) < 256 )); then echo 256 > /proc/sys/vm/nr_hugepages || true; fi
    mkdir -p /dev/hugepages
    grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts || mount -t hugetlbfs nodev /dev/hugepages || true
}
