#!/usr/bin/env bash
# Installs what heartwire needs on Debian 12 and builds it into build/ (release).
# Sourced by demo.sh and test.sh; safe to run again (does only what is missing).
set -euo pipefail

HW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HW_BUILD=${HW_BUILD:-$HW_ROOT/build}

hw_need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "heartwire: run as root (namespaces, hugepages, DPDK ports and apt-get need it)" >&2
        exit 1
    fi
}

hw_install() {
    local pkgs=(build-essential meson ninja-build pkg-config libdpdk-dev dpdk libtbb-dev libgtest-dev
                libbenchmark-dev libtomlplusplus-dev libcli11-dev libmnl-dev libssl-dev libsodium-dev iproute2 iputils-ping procps
                kmod clang libclang-rt-14-dev libbpf-dev debhelper dpkg-dev groff-base systemd libsystemd-dev
                nlohmann-json3-dev)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "heartwire: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # af_xdp's libxdp wants a bpf filesystem; without it it warns and falls back.
    mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
}

hw_build() {
    if [ ! -f "$HW_BUILD/build.ninja" ]; then
        meson setup "$HW_BUILD" "$HW_ROOT" -Dbuildtype=release -Dwerror=true > /tmp/heartwire-meson-setup.log 2>&1 ||
            { cat /tmp/heartwire-meson-setup.log >&2; return 1; }
    fi
    local log="$HW_BUILD/build.log"
    if ! ninja -C "$HW_BUILD" > "$log" 2>&1; then
        grep -E 'error|FAILED' "$log" | head -40 >&2
        echo "heartwire: build failed; full log in $log" >&2
        return 1
    fi
}

# Debian packages whose files the tests read but which must never run here: keepalived's
# sample configurations (the converter's test) and Prometheus's promtool (the metrics
# test). Downloaded and unpacked into $HW_BUILD/fetched, never installed (installing them
# would start their daemons).
hw_fetch() {
    local dir="$HW_BUILD/fetched" p
    mkdir -p "$dir"
    for p in keepalived prometheus; do
        [ -d "$dir/$p" ] && continue
        ( cd "$dir" && rm -f "${p}"_*.deb && apt-get download "$p" >/dev/null 2>&1 ) ||
            { echo "heartwire: apt-get download $p failed" >&2; return 1; }
        dpkg-deb -x "$dir/${p}"_*.deb "$dir/$p.tmp" && mv "$dir/$p.tmp" "$dir/$p" && rm -f "$dir/${p}"_*.deb
    done
}

# The tests' namespaces are named hw<creator pid>n... (tests/e2e make_prefix, tests/docs).
# Prints those whose creating process no longer runs: left by a run that was killed (a
# machine restart, a SIGKILL) or leaked by a test. Namespaces of a run still going are not
# listed.
hw_stale_netns() {
    local ns pid
    { ip netns list 2>/dev/null || true; } | awk '{print $1}' | while read -r ns; do
        [[ "$ns" =~ ^hw([0-9]+)n ]] || continue
        pid=${BASH_REMATCH[1]}
        [ -e "/proc/$pid" ] || echo "$ns"
    done
}

# Hugepages for memif (2 MiB pages); returns non-zero when the machine cannot give them.
hw_hugepages() {
    local want=${1:-256}
    if [ "$(cat /proc/sys/vm/nr_hugepages)" -lt "$want" ]; then
        echo "$want" > /proc/sys/vm/nr_hugepages || true
    fi
    mkdir -p /dev/hugepages
    grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts || mount -t hugetlbfs nodev /dev/hugepages || true
    [ "$(cat /proc/sys/vm/nr_hugepages)" -ge "$want" ]
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    hw_need_root
    hw_install
    hw_build
    echo "heartwire: built in $HW_BUILD"
fi
