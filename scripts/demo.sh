#!/usr/bin/env bash
# The README's first command: a failover demo on this machine.
#
# Builds heartwire, makes three hosts (primary, monitor, client) as network namespaces on a
# bridge in 169.254.10.0/24, starts a heartwired pair on DPDK af_xdp ports in shared mode
# (heartwire's XDP program steers only its own frames to DPDK; the kernel serves the
# address) and a real TCP and UDP service (heartwire-echo) in each node. The client streams
# UDP requests and connection-per-request TCP requests at the service on the primary
# address for the whole demo. Round after round: the primary is killed (SIGKILL), and the
# client measures, from kernel receive timestamps, the time from the kill to the first
# gratuitous ARP of the new primary and to its first answered ping, then checks that the
# service answers there. The killed node is restarted and rejoins as monitor. At the end:
# the client's ARP entry for the primary address, the median failover, and the requests the
# stream lost and its longest gap. In shared mode a counter service (heartwire-state-counter)
# keeps its count in heartwire's replicated store ([[state]], sync): the client increments
# it all through the demo and checks that no acknowledged increment is lost and no value
# goes backwards across the failovers. Everything it made is removed on exit.
#
# Options: --rounds N (5)  --interval-us N (100)  --miss N (5)  --pmd net_af_xdp|net_af_packet
#          --idle busy|adaptive (adaptive: leaves the 2-core VM's kernel room)  --keep-logs
#          --mode shared|exclusive (shared: kernel services behind the address; exclusive:
#          heartwire answers only ARP and ping, no service)
set -euo pipefail
. "$(dirname "$0")/setup.sh"

ROUNDS=5
INTERVAL_US=100
MISS=5
PMD=net_af_xdp
IDLE=adaptive
KEEP=0
MODE=shared
SERVICE_PORT=7000
COUNTER_PORT=7400
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --interval-us) INTERVAL_US=$2; shift 2 ;;
    --miss) MISS=$2; shift 2 ;;
    --pmd) PMD=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --keep-logs) KEEP=1; shift ;;
    --mode) MODE=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

hw_need_root
hw_install
hw_build

P=hwdemo$$
PRIMARY_IP=169.254.10.100
MONITOR_IP=169.254.10.101
CLIENT_IP=169.254.10.10
WORK=$(mktemp -d /tmp/heartwire-demo.XXXXXX)
declare -A PID=()
declare -A SVC=()
LOAD_PID=
COUNTER_PID=

cleanup() {
    set +e
    [ -n "$LOAD_PID" ] && kill -TERM "$LOAD_PID" 2>/dev/null
    [ -n "$COUNTER_PID" ] && kill -TERM "$COUNTER_PID" 2>/dev/null
    for n in "${!SVC[@]}"; do kill -TERM "${SVC[$n]}" 2>/dev/null; done
    for n in "${!PID[@]}"; do
        kill -TERM "${PID[$n]}" 2>/dev/null
    done
    for n in "${!PID[@]}"; do
        for _ in $(seq 50); do kill -0 "${PID[$n]}" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "${PID[$n]}" 2>/dev/null
    done
    for ns in client nodea nodeb br; do ip netns del "$P-$ns" 2>/dev/null; done
    rm -rf /var/run/dpdk/"$P"* 2>/dev/null
    rm -f /dev/shm/heartwire-"$P"-* 2>/dev/null
    if [ "$KEEP" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ the network
ip netns add "$P-br"
ip -n "$P-br" link add br0 type bridge stp_state 0 forward_delay 0
ip -n "$P-br" link set br0 up
i=0
for h in nodea nodeb client; do
    ip netns add "$P-$h"
    ip netns exec "$P-$h" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'
    ip -n "$P-br" link add "v$i" type veth peer name eth0 netns "$P-$h"
    ip -n "$P-br" link set "v$i" master br0 up
    ip -n "$P-$h" link set lo up
    ip -n "$P-$h" link set eth0 up
    i=$((i + 1))
done
ip -n "$P-client" addr add "$CLIENT_IP/24" dev eth0
mac_of() { ip -n "$P-$1" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; }

# ------------------------------------------------------------------ the pair
# Frames are authenticated: one group key, mode 0600, shared by both nodes.
( umask 077; printf '1 %s send\n' "$(head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n')" > "$WORK/group.key" )
write_config() { # name id core
    cat > "$WORK/$1.toml" <<EOC
[node]
name = "$1"
id = $2

[auth]
key_file = "$WORK/group.key"

[port]
eal = ["-l", "$3", "--no-huge", "-m", "256", "--no-pci", "--file-prefix", "$P$1", "--log-level", "lib.eal:error", "--log-level", "pmd.net.af_xdp:error"]
device = "${PMD}0,iface=eth0"
mode = "$MODE"
kernel_interface = "eth0"

[addresses]
primary = "$PRIMARY_IP/24"
monitor = "$MONITOR_IP/24"

[detect]
interval_us = $INTERVAL_US
miss = $MISS

[garp]
repeat = 3
interval_us = 100

[protocol]
# The demo measures the configured window itself: no flap damping (see README, Detection),
# and a node that stepped down rejoins quickly, so rounds fit between the VM's stalls.
flap_hold_ms = 0
peer_timeout_ms = 30
discovery_interval_ms = 2
discovery_wait_ms = 5

[engine]
mode = "run-to-completion"
idle = "$IDLE"
idle_max_sleep_us = 20

[control]
socket = "$WORK/$1.sock"
EOC
    if [ "$MODE" = shared ]; then
        # The counter service's state, replicated to the monitor (README: the replicated store).
        cat >> "$WORK/$1.toml" <<EOC

[[state]]
name = "counters"
records = 1024
key_max = 32
value_max = 32
mode = "sync"
path = "/dev/shm/heartwire-$P-$1-counters"
EOC
    fi
}
write_config nodea 1 0
write_config nodeb 2 1

# Each daemon is confined to its own core, all its threads included: a killed node's
# teardown (unmapping its memory, closing its sockets) then runs on its own core instead of
# preempting the survivor's poll loop for milliseconds.
core_of() { [ "$1" = nodea ] && echo 0 || echo 1; }
start() { # name
    ip netns exec "$P-$1" taskset -c "$(core_of "$1")" "$HW_BUILD/dpdk_apps/heartwired" --config "$WORK/$1.toml" >> "$WORK/$1.log" 2>&1 &
    PID[$1]=$!
}
# The node's own role: the first "role" in the status (the peers' roles follow it).
role() { { "$HW_BUILD/dpdk_apps/heartwirectl" --socket "$WORK/$1.sock" status --json 2>/dev/null || true; } |
         grep -o '"role":"[a-z_]*"' | head -1 | cut -d'"' -f4 || true; }
# Every look starts a process, and on a 2-core machine whose cores both busy-poll, that CPU
# is taken from an engine: look rarely.
wait_role() { # name role
    for _ in $(seq 60); do [ "$(role "$1")" = "$2" ] && return 0; sleep 0.25; done
    echo "demo: $1 did not become $2; its log:" >&2; cat "$WORK/$1.log" >&2; return 1
}
other() { [ "$1" = nodea ] && echo nodeb || echo nodea; }

echo "heartwire demo: ${PMD} ports ($MODE mode), probe every ${INTERVAL_US} us, failover after ${MISS} misses"
if [ "$MODE" = shared ]; then
    # The service: the same TCP and UDP echo on each node, on every address; whichever
    # node's kernel holds the primary address serves it.
    for n in nodea nodeb; do
        ip netns exec "$P-$n" taskset -c "$(core_of "$n")" "$HW_BUILD/tools/heartwire-echo" --port "$SERVICE_PORT" \
            >> "$WORK/$n-service.log" 2>&1 &
        SVC[$n]=$!
        ip netns exec "$P-$n" taskset -c "$(core_of "$n")" "$HW_BUILD/examples/heartwire-state-counter" --port "$COUNTER_PORT" \
            --path "/dev/shm/heartwire-$P-$n-counters" >> "$WORK/$n-counter.log" 2>&1 &
        SVC[$n-counter]=$!
    done
fi
start nodea
wait_role nodea primary
start nodeb
wait_role nodeb monitor
echo "  nodea $(mac_of nodea) is primary ($PRIMARY_IP), nodeb $(mac_of nodeb) is monitor ($MONITOR_IP)"
ip netns exec "$P-client" ping -c 3 -i 0.2 -q "$PRIMARY_IP" >/dev/null
echo "  client $CLIENT_IP reaches $PRIMARY_IP at $(ip -n "$P-client" neigh show "$PRIMARY_IP" | awk '{print $5}')"
load() { ip netns exec "$P-client" "$HW_BUILD/tools/heartwire-load" --target "$PRIMARY_IP" --port "$SERVICE_PORT" "$@"; }
if [ "$MODE" = shared ]; then
    load --requests 20 --tcp-interval-ms 2 >/dev/null || { echo "demo: the service does not answer on $PRIMARY_IP" >&2; exit 1; }
    # The stream the client keeps up through every failover: a UDP request every 2 ms and a
    # new TCP connection (connect, request, answer, close) every 20 ms.
    # (ip netns exec execs the client: $! is its pid, for the SIGTERM that ends it.)
    ip netns exec "$P-client" "$HW_BUILD/tools/heartwire-load" --target "$PRIMARY_IP" --port "$SERVICE_PORT" \
        --udp-interval-us 2000 --tcp-interval-ms 20 --json > "$WORK/stream.json" 2> "$WORK/stream.err" &
    LOAD_PID=$!
    echo "  service: TCP and UDP echo on $PRIMARY_IP:$SERVICE_PORT answers; the client streams requests at it"
    ip netns exec "$P-client" python3 "$HW_ROOT/scripts/demo_counter_client.py" "$PRIMARY_IP" "$COUNTER_PORT" 4 \
        > "$WORK/counter.json" 2> "$WORK/counter.err" &
    COUNTER_PID=$!
    echo "  counter: heartwire-state-counter on $PRIMARY_IP:$COUNTER_PORT keeps its count in the replicated store; the client increments it"
fi
echo

# Both up, one primary and one monitor (restarting whichever died or got killed).
settled_pair() {
    for _ in $(seq 600); do
        for n in nodea nodeb; do kill -0 "${PID[$n]}" 2>/dev/null || start "$n"; done
        local ra rb
        ra=$(role nodea); rb=$(role nodeb)
        if { [ "$ra" = primary ] && [ "$rb" = monitor ]; } || { [ "$ra" = monitor ] && [ "$rb" = primary ]; }; then
            local mon=nodea
            [ "$rb" = monitor ] && mon=nodeb
            # The monitor must have heard the primary answer: until then it judges on a grace period.
            # Shared mode: its replica of the counter's store in sync too (a takeover before
            # that would be one the engine counts as out of sync: README, the replicated store).
            local st
            st=$("$HW_BUILD/dpdk_apps/heartwirectl" --socket "$WORK/$mon.sock" status --json 2>/dev/null || true)
            if echo "$st" | grep -q '"detector_armed":true' &&
                { [ "$MODE" != shared ] || echo "$st" | grep -q '"in_sync":true'; }; then
                return 0
            fi
        fi
        sleep 0.05
    done
    echo "demo: the pair did not settle; logs:" >&2; tail -n 20 "$WORK"/node*.log >&2; return 1
}

garps=()
dets=()
retries=0
kills=0
printf '  %-5s %-8s %-28s %12s %14s %12s %12s\n' round killed "new primary" "kill->GARP" "kill->reply" "ping gap" "detection"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    settled_pair
    # Whoever is primary now is the one to kill (a jittery VM can swap them between rounds).
    if [ "$(role nodea)" = primary ]; then victim=nodea; else victim=nodeb; fi
    survivor=$(other "$victim")
    if ! out=$(ip netns exec "$P-client" "$HW_BUILD/dpdk_apps/heartwire-failover-probe" --iface eth0 \
          --target "$PRIMARY_IP" --kill "${PID[$victim]}" --signal KILL --interval-us 500 \
          --old-mac "$(mac_of "$victim")" \
          --warmup-ms 30 --timeout-ms 1500 --json); then
        kills=$((kills + 1))
        # A false takeover swapped the roles between the look and the kill: do the round again.
        retries=$((retries + 1))
        [ "$retries" -le 30 ] || { echo "demo: round $r: no failover seen: $out" >&2; exit 1; }
        echo "  round $r: roles changed under the kill (a false takeover on this VM); again"
        wait "${PID[$victim]}" 2>/dev/null || true
        start "$victim"
        continue
    fi
    kills=$((kills + 1))
    wait "${PID[$victim]}" 2>/dev/null || true
    num() { echo "$out" | grep -o "\"$1\":[0-9.]*" | cut -d: -f2; }
    garp=$(num garp_us); reply=$(num first_reply_us); gap=$(num gap_us)
    new_mac=$(echo "$out" | grep -o '"new_mac":"[0-9a-f:]*"' | cut -d'"' -f4)
    st=$("$HW_BUILD/dpdk_apps/heartwirectl" --socket "$WORK/$survivor.sock" status --json || true)
    det=$(echo "$st" | grep -o '"detection_ns":[0-9]*' | tail -1 | cut -d: -f2)
    decided=$(echo "$st" | sed 's/.*"takeovers":\[//; s/\].*//' | grep -o '"wall_ns":[0-9]*' | tail -1 | cut -d: -f2)
    injected=$(echo "$out" | grep -o '"t_inject":"[0-9.]*"' | cut -d'"' -f4 | awk -F. '{printf "%s%s", $1, substr($2"000000000", 1, 9)}')
    # Valid only if the survivor decided after the kill: a false takeover just before it
    # leaves nothing to measure (its GARPs predate the kill), so the round is redone.
    if [ -z "$decided" ] || [ -z "$injected" ] || [ "$decided" -lt "$injected" ]; then
        retries=$((retries + 1))
        [ "$retries" -le 30 ] || { echo "demo: round $r: no takeover after the kill" >&2; exit 1; }
        echo "  round $r: a false takeover came just before the kill; again"
        start "$victim"
        continue
    fi
    printf '  %-5s %-8s %-28s %9.1f us %11.1f us %9.1f us %9.1f us\n' "$r" "$victim" "$survivor $new_mac" \
        "$garp" "$reply" "$gap" "$(echo "${det:-0}" | awk '{print $1/1000}')"
    garps+=("$garp")
    dets+=("$(echo "${det:-0}" | awk '{print $1/1000}')")
    [ "$new_mac" = "$(mac_of "$survivor")" ] || { echo "demo: GARP came from $new_mac, not $survivor" >&2; exit 1; }
    if [ "$MODE" = shared ] && ! load --requests 10 --tcp-interval-ms 2 --timeout-ms 2000 >/dev/null; then
        echo "demo: round $r: the service on $PRIMARY_IP does not answer after the failover" >&2; exit 1
    fi
    # The killed node comes back and rejoins as monitor (no preemption).
    start "$victim"
    r=$((r + 1))
done

# The client's ARP entry must name whoever is primary (a late false takeover can move it
# between two looks: look again).
for _ in $(seq 20); do
    settled_pair
    ip netns exec "$P-client" ping -c 2 -i 0.2 -q "$PRIMARY_IP" >/dev/null || true
    entry=$(ip -n "$P-client" neigh show "$PRIMARY_IP")
    final=$( [ "$(role nodea)" = primary ] && echo nodea || echo nodeb )
    [ "$(echo "$entry" | awk '{print $5}')" = "$(mac_of "$final")" ] && break
done
echo
echo "  client ARP entry: $entry"
echo "  $final is primary; its MAC is $(mac_of "$final")"
[ "$(echo "$entry" | awk '{print $5}')" = "$(mac_of "$final")" ] || { echo "demo: ARP entry does not point at the primary" >&2; exit 1; }
median=$(printf '%s\n' "${garps[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
median_det=$(printf '%s\n' "${dets[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
echo "  failover (kill -> first GARP at the client), median of $ROUNDS: $median us  (interval ${INTERVAL_US} us x ${MISS})"
echo "  detection in the engine (last answer -> takeover decision), median: $median_det us"
# Every takeover the kills did not cause replaced a live primary.
takeovers=$(cat "$WORK"/node*.log | grep -c "taking over" || true)
false_takeovers=$((takeovers - kills))
[ "$false_takeovers" -ge 0 ] || false_takeovers=0
notices=$(cat "$WORK"/node*.log | grep -c "engine-down notice sent" || true)
echo "  takeovers on the engine-down notice: $notices of $kills kills (the rest waited out the window)"
echo "  false takeovers (a live primary replaced) during the demo: $false_takeovers; rounds redone: $retries"
if [ "$MODE" = shared ]; then
    kill -TERM "$LOAD_PID"; wait "$LOAD_PID" || true; LOAD_PID=
    st=$(cat "$WORK/stream.json")
    field() { echo "$st" | grep -o "\"$1\":{[^}]*}" | grep -o "\"$2\":[0-9.]*" | cut -d: -f2; }
    echo "  service after every failover: answered (UDP and TCP, checked after each round)"
    ms() { echo "$1" | awk '{printf "%.1f", $1/1000}'; }
    printf '  client stream through %s failovers:\n' "$ROUNDS"
    printf '    UDP %s requests, %s lost, longest outage %s ms (longest gap between answers %s ms)\n' \
        "$(field udp sent)" "$(field udp lost)" "$(ms "$(field udp longest_outage_us)")" "$(ms "$(field udp longest_gap_us)")"
    printf '    TCP %s connections, %s lost, longest outage %s ms (longest gap between answers %s ms)\n' \
        "$(field tcp sent)" "$(field tcp lost)" "$(ms "$(field tcp longest_outage_us)")" "$(ms "$(field tcp longest_gap_us)")"
    echo "    (a gap includes the client's own CPU starvation on this 2-core VM: both cores busy-poll)"
    kill -TERM "$COUNTER_PID"; wait "$COUNTER_PID" || true; COUNTER_PID=
    ct=$(cat "$WORK/counter.json")
    cf() { echo "$ct" | grep -o "\"$1\": *[-0-9.a-z]*" | sed 's/.*: *//'; }
    printf '  counter in the replicated store through %s failovers: %s increments acknowledged, %s unanswered in the takeovers,\n' \
        "$ROUNDS" "$(cf acked)" "$(cf unanswered)"
    printf '    values %s -> %s, read back %s; went backwards %s times (an acknowledged increment lost); longest gap %s ms\n' \
        "$(cf first)" "$(cf last)" "$(cf final)" "$(cf backwards)" "$(cf longest_gap_ms)"
    if [ "$(cf backwards)" != 0 ] || [ "$(cf final)" = null ] || [ "$(cf acked)" = 0 ] || [ "$(cf final)" -lt "$(cf last)" ]; then
        echo "demo: the counter lost an acknowledged increment or went backwards: $ct" >&2
        cat "$WORK"/node*-counter.log >&2
        exit 1
    fi
fi
