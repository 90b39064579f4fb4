#!/usr/bin/env python3
"""heartwire with many address groups on one engine (issue 9): 1, 100 and 1,000 groups.

Two heartwired nodes (net_af_xdp over veth, one core each) serve N [[group]]s; each group
is IPv6 only (fd00:6877::1:<g> primary, fd00:6877::2:<g> monitor: 1,000 groups do not fit
169.254.10.0/24), exclusive mode, at the same detection window for every N. For each N:

  probe rate     probes the monitor node sent per second, all groups together;
  CPU per probe  both daemons' CPU time (utime + stime) over the probes sent and answered;
  failover       rounds of SIGKILL of the node that is primary in every group: a raw socket
                 in the client namespace takes the kernel receive time of each group's
                 first unsolicited neighbour advertisement from the survivor. Per group:
                 kill -> its NA (detection + claim + announce); per round: kill -> the
                 last group's NA (all N groups moved).

--notice off turns the engine-down guard off (port.notice_interface = "none"), so every
group waits out the window; on (the default) is the node-wide notice.

Needs root. Makes namespaces hwg<pid>-{br,a,b,client}, removes them on exit; stops only
what it started, by PID.
"""
import argparse
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
P = "hwg%d" % os.getpid()
started = []  # pids we started


def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (cmd, r.stderr.strip()))
    return r.stdout


def ns(n):
    return "%s-%s" % (P, n)


def setup():
    sh("ip netns add %s" % ns("br"))
    sh("ip -n %s link add br0 type bridge stp_state 0 forward_delay 0 && ip -n %s link set br0 up" % (ns("br"), ns("br")))
    for i, h in enumerate(["a", "b", "client"]):
        sh("ip netns add %s" % ns(h))
        if h != "client":
            sh("ip netns exec %s sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
               "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'" % ns(h))
        sh("ip -n %s link add v%d type veth peer name eth0 netns %s" % (ns("br"), i, ns(h)))
        sh("ip -n %s link set v%d master br0 up" % (ns("br"), i))
        sh("ip -n %s link set lo up && ip -n %s link set eth0 up" % (ns(h), ns(h)))


def cleanup():
    for pid in started:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 5
    for pid in started:
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for h in ["client", "a", "b", "br"]:
        sh("ip netns del %s" % ns(h), check=False)


def mac_of(h):
    out = sh("ip -n %s -o link show eth0" % ns(h))
    return out.split("link/ether ")[1].split()[0]


def addr6(role, g):
    return "fd00:6877::%d:%x" % (1 if role == "primary" else 2, g)


def write_config(work, name, node_id, core, groups, args):
    lines = ["[node]", 'name = "%s"' % name, "id = %d" % node_id, "",
             "[auth]", 'key_file = "%s/group.key"' % work, "",
             "[port]",
             'eal = ["-l", "%d", "--no-huge", "-m", "512", "--no-pci", "--file-prefix", "%s%s", "--log-level", "lib.eal:error", '
             '"--log-level", "pmd.net.af_xdp:error"]' % (core, P, name),
             'device = "net_af_xdp0,iface=eth0"', 'mode = "exclusive"',
             'notice_interface = "%s"' % ("" if args.notice == "on" else "none"),
             "mbufs = 16383", "tx_desc = 4096", ""]
    for g in range(1, groups + 1):
        lines += ["[[group]]", "id = %d" % g, 'primary = ["%s/64"]' % addr6("primary", g),
                  'monitor = ["%s/64"]' % addr6("monitor", g), ""]
    lines += ["[detect]", "interval_us = %d" % args.interval_us, "miss = %d" % args.miss, "",
              "[garp]", "repeat = 2", "interval_us = 1000", "refresh_ms = 10000", "",
              "[protocol]", "announce_interval_ms = %d" % args.announce_ms, "peer_timeout_ms = %d" % (args.announce_ms * 10),
              "flap_hold_ms = 0", "discovery_interval_ms = 5", "discovery_wait_ms = 20", "",
              "[engine]", 'idle = "adaptive"', "idle_max_sleep_us = 50", "idle_filler = false", "",
              "[control]", 'socket = "%s/%s.sock"' % (work, name), 'log_level = "warn"', ""]
    path = "%s/%s.toml" % (work, name)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def start(work, name, cfg, core, build):
    log = open("%s/%s.log" % (work, name), "a")
    p = subprocess.Popen(["ip", "netns", "exec", ns(name), "taskset", "-c", str(core),
                          "%s/dpdk_apps/heartwired" % build, "--config", cfg], stdout=log, stderr=log,
                         start_new_session=True)
    started.append(p.pid)
    return p


def status(work, name, build):
    r = subprocess.run(["%s/dpdk_apps/heartwirectl" % build, "--socket", "%s/%s.sock" % (work, name), "status", "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return None


def roles(st):
    return [g["role"] for g in st.get("groups", [])] if st else []


def wait_all(work, name, build, want, groups, timeout=120.0, armed=False):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = status(work, name, build)
        rs = roles(st)
        if len(rs) == groups and all(r == want for r in rs):
            if not armed or all(g.get("detector_armed") for g in st["groups"]):
                return st
        time.sleep(0.5)
    raise RuntimeError("%s: not %s in all %d groups (roles %s)" % (name, want, groups, {r: roles(st).count(r) for r in set(roles(st))} if st else None))


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def daemon_pid(wrapper):
    """The heartwired process under `ip netns exec ... taskset ...` (exec'd: same pid)."""
    return wrapper.pid


class timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def na_capture_in_client(victim_pid, survivor_mac, groups, timeout_s):
    """Runs in the client namespace (forked child after setns): kill the victim, then read
    unsolicited NAs from the survivor until every group's primary address was announced."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open("/var/run/netns/%s" % ns("client"), os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
    s.bind(("eth0", 0))
    s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    want_mac = bytes.fromhex(survivor_mac.replace(":", ""))
    targets = {socket.inet_pton(socket.AF_INET6, addr6("primary", g)): g for g in range(1, groups + 1)}
    time.sleep(0.05)
    t_kill = time.time_ns()
    os.kill(victim_pid, signal.SIGKILL)
    seen = {}
    s.settimeout(0.2)
    deadline = time.time() + timeout_s
    while len(seen) < groups and time.time() < deadline:
        try:
            data, anc, _, _ = s.recvmsg(2048, 64)
        except socket.timeout:
            continue
        if len(data) < 14 + 40 + 24 or data[6:12] != want_mac or data[20] != 58 or data[54] != 136:
            continue
        target = data[62:78]
        g = targets.get(target)
        if g is None or g in seen:
            continue
        ts = None
        for lvl, typ, val in anc:
            if lvl == socket.SOL_SOCKET and typ == 35:
                sec, nsec = struct.unpack("qq", val[:16])
                ts = sec * 1_000_000_000 + nsec
        seen[g] = (ts or time.time_ns()) - t_kill
    return t_kill, seen


def run_capture(victim_pid, survivor_mac, groups, timeout_s):
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        try:
            t_kill, seen = na_capture_in_client(victim_pid, survivor_mac, groups, timeout_s)
            os.write(w, json.dumps({"t_kill": t_kill, "seen": seen}).encode())
        finally:
            os._exit(0)
    os.close(w)
    buf = b""
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        buf += chunk
    os.waitpid(child, 0)
    res = json.loads(buf)
    return res["t_kill"], {int(k): v for k, v in res["seen"].items()}


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def measure(groups, args, build, out):
    work = tempfile.mkdtemp(prefix="hwg-%d-" % groups)
    with open("%s/group.key" % work, "w") as f:
        f.write("1 %s send\n" % os.urandom(32).hex())
    os.chmod("%s/group.key" % work, 0o600)
    cfg = {"a": write_config(work, "a", 1, 0, groups, args), "b": write_config(work, "b", 2, 1, groups, args)}
    core = {"a": 0, "b": 1}
    procs = {"a": start(work, "a", cfg["a"], 0, build)}
    wait_all(work, "a", build, "primary", groups)
    procs["b"] = start(work, "b", cfg["b"], 1, build)
    wait_all(work, "b", build, "monitor", groups, armed=True)
    # Probe rate and CPU: a quiet stretch, both daemons.
    time.sleep(2)
    def probes(n):
        st = status(work, n, build)
        return st["counters"]["probes_sent"] if st else 0
    p0 = probes("b")
    c0 = cpu_ticks(procs["a"].pid) + cpu_ticks(procs["b"].pid)
    t0 = time.time()
    time.sleep(args.rate_seconds)
    p1 = probes("b")
    c1 = cpu_ticks(procs["a"].pid) + cpu_ticks(procs["b"].pid)
    t1 = time.time()
    hz = os.sysconf("SC_CLK_TCK")
    rate = (p1 - p0) / (t1 - t0)
    cpu_s = (c1 - c0) / hz
    cpu_per_probe_ns = cpu_s / max(1, p1 - p0) * 1e9
    per_group, alls, firsts, complete = [], [], [], 0
    primary, monitor = "a", "b"
    for rnd in range(args.rounds):
        t_kill, seen = run_capture(procs[primary].pid, mac_of(monitor), groups, args.capture_s)
        procs[primary].wait()
        lat = [v / 1000.0 for v in seen.values()]
        per_group += lat
        if len(seen) == groups:
            complete += 1
            alls.append(max(lat))
        if lat:
            firsts.append(min(lat))
        print("  %4d groups round %d: %d/%d groups announced by the survivor, first %.1f us, last %.1f us" %
              (groups, rnd + 1, len(seen), groups, min(lat) if lat else float("nan"), max(lat) if lat else float("nan")),
              flush=True)
        wait_all(work, monitor, build, "primary", groups)
        procs[primary] = start(work, primary, cfg[primary], core[primary], build)
        wait_all(work, primary, build, "monitor", groups, armed=True)
        primary, monitor = monitor, primary
    for n in procs:
        procs[n].send_signal(signal.SIGTERM)
    for n in procs:
        try:
            procs[n].wait(10)
        except subprocess.TimeoutExpired:
            procs[n].kill()
    row = {"groups": groups, "interval_us": args.interval_us, "miss": args.miss, "notice": args.notice,
           "probe_rate_per_s": round(rate), "cpu_s": round(cpu_s, 3), "cpu_per_probe_ns": round(cpu_per_probe_ns),
           "rounds": args.rounds, "rounds_all_groups_moved": complete,
           "group_p50_us": round(pct(per_group, 50), 1), "group_p99_us": round(pct(per_group, 99), 1),
           "group_max_us": round(max(per_group), 1) if per_group else float("nan"),
           "first_p50_us": round(pct(firsts, 50), 1),
           "all_groups_p50_us": round(pct(alls, 50), 1), "all_groups_max_us": round(max(alls), 1) if alls else float("nan")}
    with open(os.path.join(out, "samples-%d.csv" % groups), "w") as f:
        f.write("latency_us\n" + "".join("%.1f\n" % v for v in per_group))
    if not args.keep:
        sh("rm -rf %s" % work, check=False)
    else:
        print("  logs in %s" % work)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", default="1,100,1000")
    ap.add_argument("--interval-us", type=int, default=10000)
    ap.add_argument("--miss", type=int, default=5)
    ap.add_argument("--announce-ms", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rate-seconds", type=float, default=5.0)
    ap.add_argument("--capture-s", type=float, default=5.0)
    ap.add_argument("--notice", choices=["on", "off"], default="off")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--results", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("groups.py: needs root")
    out = args.results or os.path.join(HERE, "results", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    commit = sh("git -C %s rev-parse --short HEAD" % REPO, check=False).strip()
    print("heartwire groups benchmark, %s, commit %s: interval %d us x %d, notice %s" %
          (time.strftime("%Y-%m-%d %H:%M"), commit, args.interval_us, args.miss, args.notice), flush=True)
    rows = []
    try:
        setup()
        for n in [int(x) for x in args.groups.split(",")]:
            rows.append(measure(n, args, args.build_dir, out))
            print("  %s" % rows[-1], flush=True)
    finally:
        cleanup()
    keys = list(rows[0].keys()) if rows else []
    with open(os.path.join(out, "summary.csv"), "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(str(r[k]) for k in keys) + "\n")
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write("date %s commit %s\n" % (time.strftime("%Y-%m-%d %H:%M"), commit))
        for r in rows:
            f.write("%s\n" % r)
    if len(rows) > 1 and rows[0]["group_p99_us"] > 0:
        print("  1000-group p99 / 1-group p99: %.3f" % (rows[-1]["group_p99_us"] / rows[0]["group_p99_us"]))
    print("results in %s" % out)


if __name__ == "__main__":
    main()
