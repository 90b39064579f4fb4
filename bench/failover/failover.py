#!/usr/bin/env python3
"""heartwire failover benchmark: failure injections, false-takeover soak, keepalived beside it.

Started by run.sh (which builds, installs packages and cleans up after a crash); see
bench/README.md. Everything happens in namespaces this process creates, named
<prefix>-{br,a,b,client}, and only 169.254.10.0/24 is ever addressed. Every process it
starts is recorded (pid file for run.sh's trap) and stopped by PID.

Measured per injection, from the client namespace with heartwire-failover-probe (kernel
receive timestamps, CLOCK_REALTIME):
  garp_us   failure -> first gratuitous ARP for the primary address from a new MAC
  reply_us  failure -> first echo reply after that GARP (the client's outage)
and from the surviving heartwired's `status --json`:
  detect_us    its own figure: last answer -> takeover decision (engine TSC)
  decision_us  failure -> takeover decision (engine wall clock minus injection time)
memif has no kernel path to a client: only detect_us/decision_us exist there.
"""

import argparse
import csv
import datetime
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PRIMARY_IP = "169.254.10.100"
MONITOR_IP = "169.254.10.101"
CLIENT_CIDR = "169.254.10.10/24"
KA_NODE_CIDR = {"a": "169.254.10.1/24", "b": "169.254.10.2/24"}  # keepalived needs a source address
NODES = ("a", "b")
CORE = {"a": 0, "b": 1}
KINDS = ("kill", "stop", "link")
KIND_LABEL = {"kill": "SIGKILL", "stop": "SIGSTOP", "link": "link down"}
PMDS = ("af_xdp", "af_packet", "memif")
ENGINES = ("run-to-completion", "pipelined")
INTERVALS = (5, 10, 50, 100)
SOAK_SETTINGS = ((10, 3), (50, 3), (100, 3), (100, 10), (500, 3), (1000, 3))
ECHO_INTERVAL_US = 100


def log(msg):
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def is_test_address(s):
    addr, _, plen = s.partition("/")
    if plen and not (plen.isdigit() and 24 <= int(plen) <= 32):
        return False
    parts = addr.split(".")
    return (len(parts) == 4 and parts[:3] == ["169", "254", "10"] and parts[3].isdigit()
            and 0 <= int(parts[3]) <= 255)


def run(argv, check=True, timeout=30):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {r.returncode}: {(r.stderr or r.stdout).strip()}")
    return r


# ------------------------------------------------------------------ processes we start

class Procs:
    """Every process this run starts, by PID; the pid file lets run.sh's trap finish the job."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.live = {}  # pid -> Popen

    def _sync(self):
        with open(self.pidfile, "w") as f:
            for pid in self.live:
                f.write(f"{pid}\n")

    def start(self, argv, logpath):
        logf = open(logpath, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True)
        logf.close()
        self.live[p.pid] = p
        self._sync()
        return p

    def add_pid(self, pid):
        """A process started by one of ours (keepalived's VRRP child), for the trap."""
        with open(self.pidfile, "a") as f:
            f.write(f"{pid}\n")

    def stop(self, p, sig=signal.SIGTERM, wait=5.0):
        if p is None:
            return
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
                p.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                    os.kill(p.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        self.live.pop(p.pid, None)
        self._sync()

    def stop_all(self):
        for p in list(self.live.values()):
            self.stop(p, signal.SIGKILL, 2)


# ------------------------------------------------------------------ namespaces

class Net:
    """<prefix>-br holds br0; <prefix>-a, -b and -client each hang off it by a veth."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.br = f"{prefix}-br"
        self.ns = {"a": f"{prefix}-a", "b": f"{prefix}-b", "client": f"{prefix}-client"}
        self.port = {"a": "va", "b": "vb", "client": "vc"}
        self.made = []

    def create(self):
        for ns in [self.br] + list(self.ns.values()):
            run(["ip", "netns", "add", ns])
            self.made.append(ns)
            # No IPv6 on any interface: the wire carries only what the benchmark sends.
            self.sh(ns, "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; ip link set lo up")
        run(["ip", "-n", self.br, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        run(["ip", "-n", self.br, "link", "set", "br0", "up"])
        for host, ns in self.ns.items():
            port = self.port[host]
            run(["ip", "-n", self.br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])
            run(["ip", "-n", self.br, "link", "set", port, "master", "br0", "up"])
            if host == "client":
                self.add_addr("client", CLIENT_CIDR)
            else:
                run(["ip", "-n", ns, "link", "set", "eth0", "promisc", "on"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def destroy(self):
        for ns in reversed(self.made):
            run(["ip", "netns", "del", ns], check=False)
        self.made = []

    def sh(self, ns, cmd, check=True):
        return run(["ip", "netns", "exec", ns, "sh", "-c", cmd], check=check)

    def add_addr(self, host, cidr):
        assert is_test_address(cidr), cidr
        run(["ip", "-n", self.ns[host], "addr", "add", cidr, "dev", "eth0"])

    def del_addr(self, host, cidr):
        run(["ip", "-n", self.ns[host], "addr", "del", cidr, "dev", "eth0"], check=False)

    def has_addr(self, host, ip):
        r = run(["ip", "-n", self.ns[host], "-o", "-4", "addr", "show", "dev", "eth0"], check=False)
        return f" {ip}/" in r.stdout

    def mac(self, host):
        r = run(["ip", "-n", self.ns[host], "-o", "link", "show", "eth0"])
        return r.stdout.split("link/ether ")[1].split()[0].lower()

    def link_cmd(self, host, state):
        return f"ip -n {self.br} link set {self.port[host]} {state}"

    def link(self, host, state):
        run(self.link_cmd(host, state).split())


def netem_available(prefix):
    ns = f"{prefix}-netemcheck"
    if run(["ip", "netns", "add", ns], check=False).returncode != 0:
        return False
    try:
        run(["ip", "-n", ns, "link", "set", "lo", "up"], check=False)
        return run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                   check=False).returncode == 0
    finally:
        run(["ip", "netns", "del", ns], check=False)


# ------------------------------------------------------------------ heartwired nodes

class HwNode:
    def __init__(self, ctx, name, node_id):
        self.ctx, self.name, self.id = ctx, name, node_id
        self.ns = ctx.net.ns[name]
        self.sock = os.path.join(ctx.dir, f"hw-{name}.sock")
        self.conf = os.path.join(ctx.dir, f"hw-{name}.toml")
        self.logpath = os.path.join(ctx.dir, f"hw-{name}.log")
        self.proc = None

    def configure(self, pmd, engine, interval_us, miss, idle="busy"):
        c = self.ctx
        core = CORE[self.name]
        # Pipelined needs two lcores; both are mapped onto this node's own CPU so the two
        # engines never share a core (two busy threads then share one CPU: see README).
        lc = ["--lcores", f"0@{core},1@{core}"] if engine == "pipelined" else ["-l", str(core)]
        eal = lc + ["--no-pci", "--file-prefix", f"{c.prefix}{self.name}", "--log-level", "lib.eal:error"]
        self.memif_server_sock = None
        if pmd == "memif":
            eal += ["-m", "128", "--huge-unlink"]
            if self.name == "a":
                self.memif_server_sock = f"{c.dir}/memif.sock"
            role = "server" if self.name == "a" else "client"
            device = f"net_memif0,role={role},socket={c.dir}/memif.sock,socket-abstract=no,id=0"
        else:
            eal += ["--no-huge", "-m", "256"]
            device = f"net_{pmd}0,iface=eth0"
        toml = f"""[node]
name = "bench-{self.name}"
id = {self.id}
priority = 100

[port]
eal = [{", ".join(json.dumps(a) for a in eal)}]
device = "{device}"
mode = "exclusive"

[addresses]
primary = "{PRIMARY_IP}/24"
monitor = "{MONITOR_IP}/24"

[detect]
interval_us = {interval_us}
miss = {miss}
probe = "heartbeat"

[engine]
mode = "{engine}"
idle = "{idle}"
idle_max_sleep_us = 20

[control]
socket = "{self.sock}"
log_level = "info"
"""
        with open(self.conf, "w") as f:
            f.write(toml)

    def start(self):
        # A memif server killed by SIGKILL leaves its socket file; the next one would fail
        # with "Address already in use" (see README: reported upstream).
        if getattr(self, "memif_server_sock", None) and os.path.exists(self.memif_server_sock):
            os.unlink(self.memif_server_sock)
        with open(self.logpath, "ab") as f:
            f.write(f"---- start {datetime.datetime.now().isoformat()}\n".encode())
        # `nice` execs heartwired, so the PID stays the daemon's own.
        nice = ["nice", "-n", str(self.ctx.engine_nice)] if self.ctx.engine_nice else []
        self.proc = self.ctx.procs.start(["ip", "netns", "exec", self.ns] + nice +
                                         [self.ctx.heartwired, "--config", self.conf], self.logpath)

    def stop(self, sig=signal.SIGTERM):
        self.ctx.procs.stop(self.proc, sig, 5.0)
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self):
        if not self.alive():
            return None
        try:
            r = subprocess.run([self.ctx.heartwirectl, "--socket", self.sock, "-t", "500", "status", "--json"],
                               capture_output=True, text=True, timeout=3)
            return json.loads(r.stdout) if r.returncode == 0 else None
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            return None


class HwPair:
    def __init__(self, ctx):
        self.ctx = ctx
        self.nodes = {"a": HwNode(ctx, "a", 1), "b": HwNode(ctx, "b", 2)}

    def start(self, pmd, engine, interval_us, miss, idle="busy"):
        for n in self.nodes.values():
            n.configure(pmd, engine, interval_us, miss, idle)
        # a first, so it becomes primary without a race on the discovery window.
        self.nodes["a"].start()
        time.sleep(0.3)
        self.nodes["b"].start()

    def stop(self):
        for n in self.nodes.values():
            n.stop()

    def roles(self):
        """(primary, monitor, statuses) asked of both daemons now; primary/monitor None unless clear."""
        st = {k: n.status() for k, n in self.nodes.items()}
        prim = [k for k, s in st.items() if s and s["role"] == "primary" and s["holds_primary"]]
        mon = [k for k, s in st.items() if s and s["role"] == "monitor" and s["holds_monitor"]]
        if len(prim) == 1 and len(mon) == 1 and prim != mon:
            return prim[0], mon[0], st
        return None, None, st

    def wait_ready(self, timeout=15.0, settle=0.2):
        """Both up, one primary and one monitor that has had answers (the detector is armed)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            p, m, st = self.roles()
            if p and st[m]["counters"]["answers"] > 0:
                time.sleep(settle)
                p2, m2, _ = self.roles()  # still the same after settling?
                if (p2, m2) == (p, m):
                    return p, m
            time.sleep(0.05)
        return None, None


# ------------------------------------------------------------------ keepalived nodes

class KaNode:
    def __init__(self, ctx, name):
        self.ctx, self.name = ctx, name
        self.ns = ctx.net.ns[name]
        d = ctx.dir
        self.conf = os.path.join(d, f"ka-{name}.conf")
        self.pidfile = os.path.join(d, f"ka-{name}.pid")
        self.vrrp_pidfile = os.path.join(d, f"ka-{name}-vrrp.pid")
        self.logpath = os.path.join(d, f"ka-{name}.log")
        self.proc = None
        self.vrrp_pid = None
        self.started = 0.0

    def write_conf(self, advert):
        # Equal priorities and nopreempt: a restarted node comes back as BACKUP, like
        # heartwire's restarted node comes back as monitor.
        with open(self.conf, "w") as f:
            f.write(f"""global_defs {{
    router_id hwb_{self.name}
    vrrp_version 3
    vrrp_garp_master_delay 0
    script_user root
}}
vrrp_instance hwb {{
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int {advert}
    virtual_ipaddress {{
        {PRIMARY_IP}/24
    }}
}}
""")

    def start(self):
        for f in (self.pidfile, self.vrrp_pidfile):
            if os.path.exists(f):
                os.unlink(f)
        self.proc = self.ctx.procs.start(["ip", "netns", "exec", self.ns, "keepalived", "-n", "-l", "-D", "-P",
                                          "-f", self.conf, "-p", self.pidfile, "-r", self.vrrp_pidfile], self.logpath)
        self.started = time.monotonic()
        self.vrrp_pid = None
        end = time.monotonic() + 10
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                pid = int(open(self.vrrp_pidfile).read().strip())
                if pid > 0 and self._is_keepalived(pid):
                    self.vrrp_pid = pid
                    self.ctx.procs.add_pid(pid)
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"keepalived in {self.ns} did not start its VRRP child; see {self.logpath}")

    @staticmethod
    def _is_keepalived(pid):
        try:
            return b"keepalived" in open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            return False

    def stop(self):
        """SIGKILL both of our processes (a stopped child too), and drop the VIP it left."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGSTOP)  # no respawn of the child meanwhile
            except ProcessLookupError:
                pass
        if self.vrrp_pid and self._is_keepalived(self.vrrp_pid):
            try:
                os.kill(self.vrrp_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.ctx.procs.stop(self.proc, signal.SIGKILL, 5)
        self.proc = None
        self.vrrp_pid = None
        self.ctx.net.del_addr(self.name, f"{PRIMARY_IP}/24")

    def holds_vip(self):
        return self.ctx.net.has_addr(self.name, PRIMARY_IP)

    def alive(self):
        return (self.proc is not None and self.proc.poll() is None and self.vrrp_pid is not None
                and self._is_keepalived(self.vrrp_pid))


class KaPair:
    def __init__(self, ctx, advert):
        self.ctx = ctx
        self.nodes = {k: KaNode(ctx, k) for k in NODES}
        self.advert = advert

    def start(self):
        for k, n in self.nodes.items():
            self.ctx.net.add_addr(k, KA_NODE_CIDR[k])
            n.write_conf(self.advert)
        self.nodes["a"].start()
        time.sleep(0.5)
        self.nodes["b"].start()

    def stop(self):
        for k, n in self.nodes.items():
            n.stop()
            self.ctx.net.del_addr(k, KA_NODE_CIDR[k])

    def wait_ready(self, timeout=15.0, settle=1.0):
        """One MASTER holding the VIP, the other alive as BACKUP for at least `settle`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            holders = [k for k, n in self.nodes.items() if n.holds_vip()]
            if len(holders) == 1 and all(n.alive() for n in self.nodes.values()):
                other = "b" if holders[0] == "a" else "a"
                if time.monotonic() - self.nodes[other].started >= settle:
                    time.sleep(0.1)
                    if [k for k, n in self.nodes.items() if n.holds_vip()] == holders:
                        return holders[0], other
            time.sleep(0.05)
        return None, None


# ------------------------------------------------------------------ one injection

def run_probe(ctx, old_mac, kill_pid=None, sig="KILL", inject=None, timeout_ms=3000):
    argv = ["ip", "netns", "exec", ctx.net.ns["client"], ctx.probe, "--iface", "eth0", "--target", PRIMARY_IP,
            "--interval-us", str(ECHO_INTERVAL_US), "--warmup-ms", "300", "--timeout-ms", str(timeout_ms),
            "--tail-ms", "10", "--old-mac", old_mac, "--json"]
    argv += ["--kill", str(kill_pid), "--signal", sig] if kill_pid else ["--inject", inject]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_ms / 1000 + 15)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line), r.stderr.strip()
    return None, (r.stderr or r.stdout).strip()


def realtime_ns(s):
    sec, _, frac = s.partition(".")
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])


def takeover_after(status, t_inject_ns):
    """The survivor's first takeover decided after the injection. No slack: a takeover stamped
    before the injection was a false one that happened to land just before it."""
    cands = [t for t in status.get("takeovers", []) if t["wall_ns"] >= t_inject_ns]
    return min(cands, key=lambda t: t["wall_ns"]) if cands else None


def hw_inject(ctx, pair, cell, kind):
    """One injection on a heartwire pair. Returns a sample dict (valid or with a reason)."""
    s = dict(cell, kind=kind, valid=False, reason="", garp_us="", reply_us="", gap_us="", detect_us="",
             decision_us="", resumed_role="")
    p, m = pair.wait_ready(timeout=ctx.settle_timeout)
    if not p:
        s["reason"] = "pair not ready (no single primary + armed monitor)"
        return s
    P, M = pair.nodes[p], pair.nodes[m]
    st_m = M.status()
    if st_m is None:
        s["reason"] = "monitor status unreadable"
        return s
    to_before = st_m["counters"]["takeovers"]
    st_p = P.status()
    old_mac = st_p["mac"] if st_p else ctx.net.mac(p)
    new_mac_expect = st_m["mac"]
    s["primary"] = p

    if cell["pmd"] == "memif":
        if kind == "link":
            s["reason"] = "n/a: memif has no kernel link"
            return s
        t0 = time.time_ns()
        os.kill(P.proc.pid, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
        entry, end = None, time.monotonic() + 5
        while time.monotonic() < end and entry is None:
            st = M.status()
            if st and st["counters"]["takeovers"] > to_before:
                entry = takeover_after(st, t0)
                st_m_after = st
            else:
                time.sleep(0.002)
        if entry is None:
            s["reason"] = "no takeover within 5 s"
        else:
            s["detect_us"] = entry["detection_ns"] / 1000
            s["decision_us"] = (entry["wall_ns"] - t0) / 1000
            s["valid"] = st_m_after["counters"]["takeovers"] == to_before + 1
            if not s["valid"]:
                s["reason"] = "more than one takeover"
    else:
        if kind == "link":
            res, err = run_probe(ctx, old_mac, inject=ctx.net.link_cmd(p, "down"))
        else:
            res, err = run_probe(ctx, old_mac, kill_pid=P.proc.pid, sig="KILL" if kind == "kill" else "STOP")
        if res is None:
            s["reason"] = f"probe failed: {err[:200]}"
        else:
            t0 = realtime_ns(res["t_inject"])
            s["garp_us"] = res["garp_us"] if res["garp_us"] is not None else ""
            s["reply_us"] = res["first_reply_us"] if res["first_reply_us"] is not None else ""
            s["gap_us"] = res["gap_us"]
            st = M.status()
            entry = takeover_after(st, t0) if st else None
            if entry:
                s["detect_us"] = entry["detection_ns"] / 1000
                s["decision_us"] = (entry["wall_ns"] - t0) / 1000
            if res["result"] != "ok":
                s["reason"] = "probe timeout (no GARP from a new MAC and reply after it)"
            elif res["new_mac"] != new_mac_expect:
                s["reason"] = f"GARP came from {res['new_mac']}, not the monitor {new_mac_expect}"
            elif entry is None or st["counters"]["takeovers"] != to_before + 1:
                s["reason"] = "takeover record missing or more than one takeover"
            else:
                s["valid"] = True

    # Restore: the failed node comes back through a fresh start and must rejoin as monitor.
    if kind == "stop" and P.alive():
        os.kill(P.proc.pid, signal.SIGCONT)
        time.sleep(0.3)
        st = P.status()
        s["resumed_role"] = st["role"] if st else "unreachable"
    if kind == "link":
        ctx.net.link(p, "up")
    P.stop(signal.SIGTERM if kind != "kill" else signal.SIGKILL)
    if cell["pmd"] == "memif":
        # The surviving memif client does not reconnect to a restarted server (README,
        # "Known issues"): restart the pair, server first, as at the start of the cell.
        pair.stop()
        pair.start(cell["pmd"], cell["engine"], cell["interval_us"], cell["miss"])
    else:
        P.start()
    return s


def ka_inject(ctx, pair, cell, kind):
    s = dict(cell, kind=kind, valid=False, reason="", garp_us="", reply_us="", gap_us="", detect_us="",
             decision_us="", resumed_role="")
    p, b = pair.wait_ready()
    if not p:
        s["reason"] = "pair not ready (no single MASTER)"
        return s
    P = pair.nodes[p]
    old_mac, new_mac_expect = ctx.net.mac(p), ctx.net.mac(b)
    s["primary"] = p
    if kind == "kill":
        # A crash of the VRRP process: the parent is held still first, or it would respawn
        # the child (and a SIGKILLed parent makes the child exit cleanly with priority 0).
        os.kill(P.proc.pid, signal.SIGSTOP)
        res, err = run_probe(ctx, old_mac, kill_pid=P.vrrp_pid, sig="KILL")
    elif kind == "stop":
        res, err = run_probe(ctx, old_mac, kill_pid=P.vrrp_pid, sig="STOP")
    else:
        res, err = run_probe(ctx, old_mac, inject=ctx.net.link_cmd(p, "down"))
    if res is None:
        s["reason"] = f"probe failed: {err[:200]}"
    else:
        s["garp_us"] = res["garp_us"] if res["garp_us"] is not None else ""
        s["reply_us"] = res["first_reply_us"] if res["first_reply_us"] is not None else ""
        s["gap_us"] = res["gap_us"]
        if res["result"] != "ok":
            s["reason"] = "probe timeout"
        elif res["new_mac"] != new_mac_expect:
            s["reason"] = f"GARP came from {res['new_mac']}, not the backup {new_mac_expect}"
        else:
            s["valid"] = True
    if kind == "link":
        ctx.net.link(p, "up")
    P.stop()
    P.start()
    return s


# ------------------------------------------------------------------ statistics

METRICS = ("garp_us", "reply_us", "detect_us", "decision_us")
METRIC_LABEL = {"garp_us": "failure->GARP", "reply_us": "failure->reply", "detect_us": "engine detect",
                "decision_us": "failure->decision"}
QUANTILES = (50, 90, 99, 99.9)


class LogHistogram:
    """HDR-style: log-spaced buckets, 1% relative width, from 0.1 us up; quantile = bucket top."""
    RATIO = 1.01

    def __init__(self):
        self.counts = {}
        self.n = 0
        self.max = 0.0

    def add(self, v):
        b = 0 if v <= 0.1 else int(math.ceil(math.log(v / 0.1, self.RATIO)))
        self.counts[b] = self.counts.get(b, 0) + 1
        self.n += 1
        self.max = max(self.max, v)

    def quantile(self, q):
        rank = max(1, math.ceil(q / 100 * self.n))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(0.1 * self.RATIO ** b, self.max)
        return self.max


def summarize(samples):
    """Rows: one per (system, pmd, engine, interval, miss, kind, metric) with n and percentiles."""
    groups = {}
    for s in samples:
        if not s["valid"]:
            continue
        key = (s["system"], s["pmd"], s["engine"], s["interval_us"], s["miss"], s["kind"])
        for m in METRICS:
            if s[m] != "" and s[m] is not None:
                groups.setdefault(key + (m,), LogHistogram()).add(float(s[m]))
    attempts = {}
    for s in samples:
        key = (s["system"], s["pmd"], s["engine"], s["interval_us"], s["miss"], s["kind"])
        a = attempts.setdefault(key, [0, 0])
        a[0] += 1
        a[1] += 0 if s["valid"] else 1
    rows = []
    for key, h in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        system, pmd, engine, interval, miss, kind, metric = key
        rows.append({"system": system, "pmd": pmd, "engine": engine, "interval_us": interval, "miss": miss,
                     "kind": kind, "metric": metric, "n": h.n,
                     "attempts": attempts[key[:6]][0], "invalid": attempts[key[:6]][1],
                     **{f"p{q:g}": round(h.quantile(q), 1) for q in QUANTILES}, "max": round(h.max, 1)})
    return rows


def fmt_ms(v):
    if v == "" or v is None:
        return "-"
    v = float(v)
    return f"{v / 1000:.2f}ms" if v >= 10000 else f"{v:.0f}us"


def print_table(rows, title):
    print(f"\n{title}")
    hdr = f"{'system':10} {'pmd':9} {'engine':6} {'int':>5} {'kind':9} {'metric':17} {'n':>4} " \
          f"{'p50':>9} {'p90':>9} {'p99':>9} {'p99.9':>9} {'max':>9}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        eng = "rtc" if r["engine"] == "run-to-completion" else ("pipe" if r["engine"] == "pipelined" else r["engine"])
        print(f"{r['system']:10} {r['pmd']:9} {eng:6} {str(r['interval_us']):>5} {KIND_LABEL[r['kind']]:9} "
              f"{METRIC_LABEL[r['metric']]:17} {r['n']:>4} " +
              " ".join(f"{fmt_ms(r[f'p{q:g}']):>9}" for q in QUANTILES) + f" {fmt_ms(r['max']):>9}")


def comparison(rows):
    """heartwire's best cell per failure kind beside keepalived's, on the client-side figures."""
    out = []
    for kind in KINDS:
        ka = {r["metric"]: r for r in rows if r["system"] == "keepalived" and r["kind"] == kind}
        hw = [r for r in rows if r["system"] == "heartwire" and r["kind"] == kind and r["metric"] == "reply_us"]
        if not hw or "reply_us" not in ka:
            continue
        best = max(hw, key=lambda r: (r["n"], -r["p50"]))  # most samples, then fastest
        hwm = {r["metric"]: r for r in rows if r["system"] == "heartwire" and r["kind"] == kind and
               (r["pmd"], r["engine"], r["interval_us"], r["miss"]) ==
               (best["pmd"], best["engine"], best["interval_us"], best["miss"])}
        for metric in ("garp_us", "reply_us"):
            if metric in hwm and metric in ka:
                h, k = hwm[metric], ka[metric]
                out.append({"kind": kind, "metric": metric,
                            "heartwire_cell": f"{h['pmd']}/{h['engine']}/{h['interval_us']}x{h['miss']}",
                            "hw_n": h["n"], "hw_p50": h["p50"], "hw_p99": h["p99"], "hw_max": h["max"],
                            "ka_n": k["n"], "ka_p50": k["p50"], "ka_p99": k["p99"], "ka_max": k["max"],
                            "ratio_p50": round(k["p50"] / h["p50"], 1) if h["p50"] else "",
                            "ratio_p99": round(k["p99"] / h["p99"], 1) if h["p99"] else ""})
    return out


def print_comparison(comp, advert):
    print(f"\nheartwire vs keepalived (VRRPv3 advert_int {advert}), client-side kernel timestamps")
    hdr = f"{'failure':9} {'metric':15} {'heartwire cell':28} {'hw n':>4} {'hw p50':>8} {'hw p99':>8} " \
          f"{'ka n':>4} {'ka p50':>8} {'ka p99':>8} {'p50 x':>6} {'p99 x':>6}"
    print(hdr)
    print("-" * len(hdr))
    for c in comp:
        print(f"{KIND_LABEL[c['kind']]:9} {METRIC_LABEL[c['metric']]:15} {c['heartwire_cell']:28} {c['hw_n']:>4} "
              f"{fmt_ms(c['hw_p50']):>8} {fmt_ms(c['hw_p99']):>8} {c['ka_n']:>4} {fmt_ms(c['ka_p50']):>8} "
              f"{fmt_ms(c['ka_p99']):>8} {c['ratio_p50']:>6} {c['ratio_p99']:>6}")
    print("keepalived's figures scale with advert_int: its backup declares the master dead after\n"
          "3 x advert_int + skew ((256 - priority) / 256 x advert_int), 36 ms at 10 ms / priority 100;\n"
          "its GARP follows the transition at once, so both columns move with the advert period.")


def write_csv(path, rows, fields=None):
    if not rows:
        return
    fields = fields or list(rows[0].keys())
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


# ------------------------------------------------------------------ plot

def plot(samples, outdir, png, stamp):
    """CDFs of failure->GARP and failure->reply per cell (cells with the most samples)."""
    cells = {}
    for s in samples:
        if s["valid"] and s["system"] != "" and s["pmd"] != "memif":
            key = (s["system"], s["pmd"], s["engine"], s["interval_us"], s["miss"], s["kind"])
            cells.setdefault(key, []).append(s)
    if not cells:
        return False
    ranked = sorted(cells.items(), key=lambda kv: -len(kv[1]))
    # Every keepalived cell, then the heartwire cells with the most samples; at most 8 curves.
    chosen = [kv for kv in ranked if kv[0][0] == "keepalived"][:3]
    chosen += [kv for kv in ranked if kv[0][0] == "heartwire"][:8 - len(chosen)]
    files = []
    for i, (key, ss) in enumerate(chosen):
        system, pmd, engine, interval, miss, kind = key
        eng = "rtc" if engine == "run-to-completion" else "pipelined"
        label = (f"keepalived VRRPv3 10ms, {KIND_LABEL[kind]}" if system == "keepalived"
                 else f"heartwire {pmd} {eng} {interval}us x{miss}, {KIND_LABEL[kind]}")
        label += f" (n={len(ss)})"
        for metric in ("garp_us", "reply_us"):
            vals = sorted(float(s[metric]) for s in ss if s[metric] != "")
            path = os.path.join(outdir, f"cdf_{i}_{metric}.dat")
            with open(path, "w") as f:
                for j, v in enumerate(vals):
                    f.write(f"{v} {(j + 1) / len(vals)}\n")
            files.append((i, metric, path, label))
    allv = [float(s[m]) for _, ss in chosen for s in ss for m in ("garp_us", "reply_us") if s[m] != ""]
    lo = 10 ** math.floor(math.log10(max(1.0, min(allv) / 2))) if allv else 10
    hi = 10 ** math.ceil(math.log10(max(allv) * 1.5)) if allv else 200000
    gp = os.path.join(outdir, "plot.gp")
    with open(gp, "w") as f:
        f.write(f"""set terminal pngcairo size 1400,620 font "DejaVu Sans,11" noenhanced
set output "{png}"
set multiplot layout 1,2 title "heartwire vs keepalived failover on a 2-core VM (namespaces, client-side kernel timestamps, run {stamp})"
set logscale x
set xrange [{lo}:{hi}]
set yrange [0:1.02]
set grid xtics ytics mxtics
set xlabel "microseconds after the failure (log scale)"
set ylabel "fraction of injections"
set key bottom right font ",9"
set format x "%.0s%c"
""")
        for metric, title in (("garp_us", "failure -> first GARP from the new primary"),
                              ("reply_us", "failure -> first answered echo after the move")):
            curves = [(i, p, l) for (i, m, p, l) in files if m == metric]
            f.write(f'set title "{title}"\n')
            f.write("plot " + ", \\\n     ".join(
                f'"{p}" using 1:2 with steps lw 2 lc {i + 1} dt {1 if "keepalived" not in l else 2} title "{l}"'
                for (i, p, l) in curves) + "\n")
        f.write("unset multiplot\n")
    r = run(["gnuplot", gp], check=False)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()[:300]}")
        return False
    return True


# ------------------------------------------------------------------ phases

def heartwire_phase(ctx, cells, kinds, injections, samples):
    pair = HwPair(ctx)
    for cell in cells:
        pmd, engine, interval, miss = cell["pmd"], cell["engine"], cell["interval_us"], cell["miss"]
        log(f"heartwire {pmd} {engine} {interval}us x{miss}: starting the pair")
        pair.start(pmd, engine, interval, miss)
        if not pair.wait_ready(timeout=ctx.settle_timeout)[0]:
            log("  pair never became stable (primary + armed monitor); restarting once")
            pair.stop()
            pair.start(pmd, engine, interval, miss)
            if not pair.wait_ready(timeout=ctx.settle_timeout)[0]:
                log("  still unstable: cell skipped")
                for kind in kinds:
                    samples.append(dict(cell, system="heartwire", kind=kind, valid=False,
                                        reason="pair unstable: no primary + armed monitor for "
                                               f"{ctx.settle_timeout:.0f} s, twice",
                                        garp_us="", reply_us="", gap_us="", detect_us="", decision_us="",
                                        resumed_role="", primary=""))
                pair.stop()
                continue
        for kind in kinds:
            if pmd == "memif" and kind == "link":
                continue
            ok, failures_in_row = 0, 0
            for i in range(injections):
                s = hw_inject(ctx, pair, dict(cell, system="heartwire"), kind)
                s["i"] = i
                samples.append(s)
                ok += s["valid"]
                failures_in_row = 0 if s["valid"] else failures_in_row + 1
                if not s["valid"]:
                    log(f"  {KIND_LABEL[kind]} #{i}: invalid: {s['reason']}")
                if failures_in_row >= 5:
                    log("  5 invalid injections in a row: restarting the pair")
                    pair.stop()
                    pair.start(pmd, engine, interval, miss)
                    failures_in_row = 0
            vals = sorted(float(s["reply_us"] or s["decision_us"] or 0) for s in samples[-injections:] if s["valid"])
            med = vals[len(vals) // 2] if vals else float("nan")
            log(f"  {KIND_LABEL[kind]}: {ok}/{injections} valid, median "
                f"{'failure->reply' if pmd != 'memif' else 'failure->decision'} {med:.0f} us")
        pair.stop()


def keepalived_phase(ctx, kinds, injections, advert, samples):
    pair = KaPair(ctx, advert)
    cell = {"system": "keepalived", "pmd": "kernel", "engine": "vrrpv3", "interval_us": int(float(advert) * 1e6),
            "miss": 3}
    log(f"keepalived VRRPv3 advert_int {advert}: starting the pair")
    try:
        pair.start()
        for kind in kinds:
            ok = 0
            for i in range(injections):
                s = ka_inject(ctx, pair, cell, kind)
                s["i"] = i
                samples.append(s)
                ok += s["valid"]
                if not s["valid"]:
                    log(f"  {KIND_LABEL[kind]} #{i}: invalid: {s['reason']}")
            vals = sorted(float(s["reply_us"]) for s in samples[-injections:] if s["valid"])
            med = vals[len(vals) // 2] if vals else float("nan")
            log(f"  {KIND_LABEL[kind]}: {ok}/{injections} valid, median failure->reply {med:.0f} us")
    finally:
        pair.stop()


def soak_phase(ctx, settings, seconds, hog_modes, pmd="af_xdp", engine="run-to-completion"):
    pair = HwPair(ctx)
    rows = []
    for interval, miss in settings:
        for hog in hog_modes:
            pair.start(pmd, engine, interval, miss)
            p, m = pair.wait_ready(timeout=10)
            row = {"pmd": pmd, "engine": engine, "interval_us": interval, "miss": miss, "hog": hog,
                   "seconds": seconds, "false_takeovers": "", "stalls": "", "probes": "", "answers": "",
                   "mon_loop_gaps": "", "mon_loop_gap_max_ms": "", "pri_loop_gaps": "", "pri_loop_gap_max_ms": "",
                   "note": ""}
            if not p:
                # Still counted: a pair that flaps before the soak starts flaps during it too.
                row["note"] = "never settled into primary + armed monitor before the soak"
            base = {k: (pair.nodes[k].status() or {}).get("counters") for k in NODES}
            if not all(base.values()):
                row["note"] = "a daemon did not answer status before the soak"
                row["false_takeovers"] = "n/a"
                rows.append(row)
                pair.stop()
                continue
            hog_proc = None
            if hog:
                # One busy loop, started and stopped by PID, free to run on either core.
                hog_proc = ctx.procs.start(["sh", "-c", "while :; do :; done"], os.path.join(ctx.dir, "hog.log"))
            died = False
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                if not all(n.alive() for n in pair.nodes.values()):
                    died = True
                    break
            if hog_proc:
                ctx.procs.stop(hog_proc, signal.SIGKILL)
            after = {k: (pair.nodes[k].status() or {}).get("counters") for k in NODES}
            if died or not all(after.values()):
                row["note"] = "a daemon died during the soak"
            else:
                d = {f: sum(after[k][f] - base[k][f] for k in NODES) for f in
                     ("takeovers", "stalls", "probes_sent", "answers")}
                row.update(false_takeovers=d["takeovers"], stalls=d["stalls"], probes=d["probes_sent"],
                           answers=d["answers"])
                # Engine poll-loop turns longer than 100 us (the core was taken from the engine), per role
                # as the pair stood before the soak: count during the soak, and the longest turn (the
                # counter is a maximum since the daemon started, so it can include start-up).
                for tag, k in (("mon", m or "b"), ("pri", p or "a")):
                    if "io_loop_gaps" in after[k]:
                        row[f"{tag}_loop_gaps"] = after[k]["io_loop_gaps"] - base[k]["io_loop_gaps"]
                        row[f"{tag}_loop_gap_max_ms"] = round(after[k]["io_loop_gap_max_ns"] / 1e6, 2)
            rows.append(row)
            log(f"soak {interval}us x{miss} {'with' if hog else 'without'} CPU hog, {seconds}s: "
                f"false takeovers {row['false_takeovers']} (stalls compensated {row['stalls']}) {row['note']}")
            pair.stop()
    return rows


# ------------------------------------------------------------------ main

class Ctx:
    pass


def parse_cells(spec, miss):
    """'af_xdp:rtc:10,memif:pipelined:5' -> cell dicts; 'all' -> the full matrix."""
    if spec == "all":
        return [{"pmd": p, "engine": e, "interval_us": i, "miss": miss} for p in PMDS for e in ENGINES
                for i in INTERVALS]
    cells = []
    for item in spec.split(","):
        pmd, eng, iv = item.split(":")
        eng = {"rtc": "run-to-completion", "pipe": "pipelined"}.get(eng, eng)
        if pmd not in PMDS or eng not in ENGINES:
            raise SystemExit(f"bad config '{item}': pmd one of {PMDS}, engine rtc|pipelined")
        iv, _, m = iv.partition("x")  # "1000x10": interval 1000 us, miss 10
        cells.append({"pmd": pmd, "engine": eng, "interval_us": int(iv), "miss": int(m) if m else miss})
    return cells


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--prefix", required=True, help="namespace prefix (hwb<pid>)")
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--results", required=True, help="results directory")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--injections", type=int)
    ap.add_argument("--configs", help="pmd:engine:interval_us list, or 'all'")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--miss", type=int, default=3)
    ap.add_argument("--ka-injections", type=int)
    ap.add_argument("--ka-kinds")
    ap.add_argument("--advert", default="0.01")
    ap.add_argument("--soak-seconds", type=int)
    ap.add_argument("--soak-settings", help="e.g. 10x3,50x3,100x3")
    ap.add_argument("--engine-nice", type=int, default=0,
                    help="run heartwired under `nice -n N` (e.g. -20: other tasks on its core get ~1%%)")
    ap.add_argument("--no-heartwire", action="store_true")
    ap.add_argument("--no-keepalived", action="store_true")
    ap.add_argument("--no-soak", action="store_true")
    ap.add_argument("--plot-only", action="store_true", help="redraw failover.png from RESULTS/samples.csv")
    a = ap.parse_args()
    if a.plot_only:
        with open(os.path.join(a.results, "samples.csv")) as f:
            samples = [dict(r, valid=r["valid"] == "True") for r in csv.DictReader(f)]
        stamp = open(os.path.join(a.results, "run.txt")).readline().split(" ", 1)[1].strip()
        plot(samples, a.results, os.path.join(a.results, "failover.png"), stamp)
        return

    q = a.quick
    injections = a.injections or (3 if q else 200)
    ka_injections = a.ka_injections or (3 if q else 200)
    # Quick: a few of the matrix's microsecond cells, and the 1000 us x 10 cells that stay
    # stable on a shared 2-core VM so every failure kind gets numbers.
    cells = parse_cells(a.configs or ("af_xdp:rtc:10,af_xdp:rtc:100,af_packet:rtc:100,memif:rtc:10,"
                                      "af_xdp:pipelined:100,af_xdp:rtc:1000x10,af_packet:rtc:1000x10,"
                                      "memif:rtc:1000x10" if q else "all"), a.miss)
    kinds = [k for k in a.kinds.split(",") if k]
    ka_kinds = [k for k in (a.ka_kinds or a.kinds).split(",") if k]
    soak_seconds = a.soak_seconds if a.soak_seconds is not None else (8 if q else 600)
    soak_settings = ([tuple(int(x) for x in s.split("x")) for s in a.soak_settings.split(",")] if a.soak_settings
                     else ([(10, 3), (1000, 3)] if q else list(SOAK_SETTINGS)))
    for k in kinds + ka_kinds:
        if k not in KINDS:
            raise SystemExit(f"bad failure kind '{k}': one of {KINDS}")

    ctx = Ctx()
    ctx.prefix = a.prefix
    ctx.heartwired = os.path.join(a.build_dir, "dpdk_apps", "heartwired")
    ctx.heartwirectl = os.path.join(a.build_dir, "dpdk_apps", "heartwirectl")
    ctx.probe = os.path.join(a.build_dir, "dpdk_apps", "heartwire-failover-probe")
    ctx.procs = Procs(a.pidfile)
    ctx.settle_timeout = 6.0 if q else 15.0
    ctx.engine_nice = a.engine_nice
    ctx.dir = tempfile.mkdtemp(prefix=f"{a.prefix}-")
    ctx.net = Net(a.prefix)
    os.makedirs(a.results, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    samples, soak_rows = [], []
    load_before = open("/proc/loadavg").read().split()[:3]
    netem = netem_available(a.prefix)
    started = time.monotonic()
    try:
        ctx.net.create()
        log(f"namespaces {', '.join(ctx.net.made)}; work dir {ctx.dir}")
        if not netem:
            log("netem: NOT available on this kernel (CONFIG_NET_SCH_NETEM not set): the soak runs without "
                "link jitter; only the CPU hog disturbs it")
        if not a.no_heartwire:
            heartwire_phase(ctx, cells, kinds, injections, samples)
        if not a.no_keepalived:
            keepalived_phase(ctx, ka_kinds, ka_injections, a.advert, samples)
        if not a.no_soak:
            soak_rows = soak_phase(ctx, soak_settings, soak_seconds, (False, True))
    except KeyboardInterrupt:
        log("interrupted: cleaning up, writing what was measured")
    finally:
        ctx.procs.stop_all()
        ctx.net.destroy()
        subprocess.run(f"rm -rf /var/run/dpdk/{a.prefix}* /dev/hugepages/{a.prefix}*", shell=True)
        if os.environ.get("HWB_KEEP_LOGS"):
            log(f"logs kept in {ctx.dir}")
        else:
            for f in os.listdir(ctx.dir):
                if f.endswith(".log"):
                    shutil.copy(os.path.join(ctx.dir, f), a.results)
            shutil.rmtree(ctx.dir, ignore_errors=True)

    # ---- report
    fields = ["system", "pmd", "engine", "interval_us", "miss", "kind", "i", "primary", "valid", "reason",
              "garp_us", "reply_us", "gap_us", "detect_us", "decision_us", "resumed_role"]
    write_csv(os.path.join(a.results, "samples.csv"), samples, fields)
    rows = summarize(samples)
    write_csv(os.path.join(a.results, "summary.csv"), rows)
    comp = comparison(rows)
    write_csv(os.path.join(a.results, "comparison.csv"), comp)
    write_csv(os.path.join(a.results, "soak.csv"), soak_rows)
    load_after = open("/proc/loadavg").read().split()[:3]
    print(f"\n==== heartwire failover benchmark, run {stamp}, {'quick' if q else 'full'} mode, "
          f"{(time.monotonic() - started) / 60:.1f} min ====")
    print(f"load average before {' '.join(load_before)}, after {' '.join(load_after)} "
          f"(two busy-polling engines alone make 2.0 on this 2-core VM; more is other work on the host)"
          + (f"; heartwired ran at nice {a.engine_nice}" if a.engine_nice else ""))
    with open(os.path.join(a.results, "run.txt"), "w") as f:
        f.write(f"run {stamp}\nargs {' '.join(sys.argv[1:])}\nloadavg_before {' '.join(load_before)}\n"
                f"loadavg_after {' '.join(load_after)}\nnetem {'yes' if netem else 'no'}\n")
    print_table(rows, "failover latency (us unless marked ms); detect/decision are heartwire's own engine figures")
    if comp:
        print_comparison(comp, a.advert)
    stopped = [s for s in samples if s["kind"] == "stop" and s["resumed_role"] and s["valid"]]
    if stopped:
        ok = sum(1 for s in stopped if s["resumed_role"] != "primary")
        print(f"\nSIGSTOPped primaries, 300 ms after SIGCONT (valid injections): {ok}/{len(stopped)} had "
              f"stepped down (role not primary)")
    if soak_rows:
        print(f"\nfalse-takeover soak (af_xdp run-to-completion, busy poll, {soak_seconds}s per row; "
              f"netem {'available but not used' if netem else 'NOT available on this kernel: no link jitter injected'})")
        print(f"{'interval x miss':>16} {'CPU hog':>8} {'false takeovers':>16} {'stalls':>8} {'probes':>10} "
              f"{'mon gaps':>9} {'mon max ms':>10} {'pri gaps':>9} {'pri max ms':>10}")
        for r in soak_rows:
            print(f"{str(r['interval_us']) + 'us x ' + str(r['miss']):>16} {'yes' if r['hog'] else 'no':>8} "
                  f"{str(r['false_takeovers']):>16} {str(r['stalls']):>8} {str(r['probes']):>10} "
                  f"{str(r['mon_loop_gaps']):>9} {str(r['mon_loop_gap_max_ms']):>10} "
                  f"{str(r['pri_loop_gaps']):>9} {str(r['pri_loop_gap_max_ms']):>10} {r['note']}")
        print("(gaps: engine poll-loop turns > 100 us during the soak, per role; max: longest turn since "
              "the daemon started)")
        clean = {}
        for r in soak_rows:
            key = (r["interval_us"], r["miss"])
            clean[key] = clean.get(key, True) and r["false_takeovers"] == 0
        good = sorted((iv * m, iv, m) for (iv, m), ok in clean.items() if ok)
        if good:
            print(f"smallest interval x miss with 0 false takeovers (with and without the hog): "
                  f"{good[0][1]}us x {good[0][2]} = {good[0][0]} us")
        else:
            print("no setting ran without false takeovers")
    invalid = [s for s in samples if not s["valid"]]
    print(f"\n{len(samples)} injections, {len(invalid)} invalid (reasons in samples.csv); results in {a.results}")
    png = os.path.join(a.results, "failover.png")
    if plot(samples, a.results, png, stamp):
        print(f"plot: {png}")


if __name__ == "__main__":
    main()
