#!/usr/bin/env python3
"""heartwire failover benchmark: false-takeover soak, failure injections, keepalived beside it.

Started by run.sh (which builds, installs packages and cleans up after a crash); see
bench/README.md. Everything happens in namespaces this process creates, named
<prefix>-{br,a,b,ka,kb,client}, and only 169.254.10.0/24 is ever addressed. Every process
it starts is recorded (pid file for run.sh's trap) and stopped by PID.

Topology: one bridge; heartwired nodes in <prefix>-a and -b (primary address .100, monitor
.101), keepalived nodes in <prefix>-ka and -kb (VIP .200, node addresses .1 and .2), the
client in <prefix>-client (.10). Both pairs run at the same time, so heartwire and
keepalived injections can alternate (one of each, again and again) and see the same
machine. Node a (heartwired and keepalived alike) is confined to core 0, node b to core 1
(taskset, EAL -l 0 / -l 1).

Phases (each optional):
  soak      an af_xdp pair per --soak-settings window, --soak-seconds idle and the same
            again with a busy loop pinned on each core: false takeovers and both engines'
            loop-gap histograms
  failover  per failure kind (kill, stop, link): a heartwire injection, a keepalived
            injection, a heartwire injection, ...; the failed node restarts in the
            background while the other system's injection runs

Measured per injection, from the client namespace with heartwire-failover-probe (kernel
receive timestamps, CLOCK_REALTIME):
  garp_us   failure -> first gratuitous ARP for the address from a new MAC
  reply_us  failure -> first echo reply after that GARP (the client's outage)
and from the surviving heartwired's `status --json`:
  detect_us    its own figure: last answer -> takeover decision (engine TSC)
  decision_us  failure -> takeover decision (engine wall clock minus failure time)
The failure time is the kill() for kill/stop, and for link the moment the bridge-side veth
went down (helpers/linkset.c stamps its ioctl; the probe's own figure, from before it
spawned the command, is kept as probe_garp_us / probe_reply_us).
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
import threading
import time

PRIMARY_IP = "169.254.10.100"
MONITOR_IP = "169.254.10.101"
KA_VIP = "169.254.10.200"
CLIENT_CIDR = "169.254.10.10/24"
KA_NODE_CIDR = {"a": "169.254.10.1/24", "b": "169.254.10.2/24"}  # keepalived needs a source address
NODES = ("a", "b")
CORE = {"a": 0, "b": 1}
KINDS = ("kill", "stop", "link")
KIND_LABEL = {"kill": "SIGKILL", "stop": "SIGSTOP", "link": "link down"}
PMDS = ("af_xdp", "af_packet", "memif")
ENGINES = ("run-to-completion", "pipelined")
INTERVALS = (5, 10, 50, 100)
MATRIX_SOAK_SETTINGS = ((10, 3), (50, 3), (100, 3), (100, 5), (100, 10), (500, 3), (1000, 3))
DEFAULT_WINDOW = "100x5"
ECHO_INTERVAL_US = 100
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


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


class Timing:
    """Wall time per activity (where the run's minutes go), thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.t = {}
        self.n = {}

    def add(self, what, seconds):
        with self.lock:
            self.t[what] = self.t.get(what, 0.0) + seconds
            self.n[what] = self.n.get(what, 0) + 1


# ------------------------------------------------------------------ processes we start

def session_members(sid):
    """PIDs whose session id is `sid` (processes our daemon started: its guard, hooks)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        # fields: state ppid pgrp session; a zombie has exited already (its reaper is not us)
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] not in ("Z", "X") and int(d) != os.getpid():
            out.append(int(d))
    return out


class Procs:
    """Every process this run starts, by PID; the pid file lets run.sh's trap finish the job.
    Each is started in a new session, so whatever it starts (heartwired's guard) is found by
    its session id and stopped by PID too."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.lock = threading.Lock()
        self.live = {}  # pid -> Popen
        self.extra = set()

    def _sync(self):
        with open(self.pidfile, "w") as f:
            for pid in list(self.live) + sorted(self.extra):
                f.write(f"{pid}\n")

    def start(self, argv, logpath):
        logf = open(logpath, "ab")
        with self.lock:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            self.live[p.pid] = p
            self._sync()
        logf.close()
        return p

    def add_pid(self, pid):
        """A process started by one of ours (keepalived's VRRP child), for the trap."""
        with self.lock:
            self.extra.add(pid)
            self._sync()

    def reap_session(self, sid, wait=2.0):
        """Wait for the rest of a session we created to exit; SIGKILL what lingers, by PID."""
        end = time.monotonic() + wait
        left = session_members(sid)
        while left and time.monotonic() < end:
            time.sleep(0.02)
            left = session_members(sid)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        return len(left)

    def stop(self, p, sig=signal.SIGTERM, wait=5.0):
        if p is None:
            return
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
                if sig != signal.SIGKILL:
                    os.kill(p.pid, signal.SIGCONT)  # a stopped process must run to see SIGTERM
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
        lingered = self.reap_session(p.pid)
        if lingered:
            log(f"  {lingered} process(es) of session {p.pid} outlived it by 2 s: killed")
        with self.lock:
            self.live.pop(p.pid, None)
            self._sync()

    def stop_all(self):
        for p in list(self.live.values()):
            self.stop(p, signal.SIGKILL, 2)
        with self.lock:
            for pid in self.extra:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.extra.clear()
            self._sync()


# ------------------------------------------------------------------ namespaces

class Net:
    """<prefix>-br holds br0; every host namespace hangs off it by a veth (v<host> on the bridge
    side, eth0 inside)."""

    def __init__(self, prefix, hosts):
        self.prefix = prefix
        self.br = f"{prefix}-br"
        self.hosts = hosts
        self.ns = {h: f"{prefix}-{h}" for h in hosts}
        self.port = {h: f"v{h}" for h in hosts}
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
            elif host in NODES:
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

    def link(self, host, state):
        run(["ip", "-n", self.br, "link", "set", self.port[host], state])


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


# ------------------------------------------------------------------ TOML for heartwired

def toml_raw(v):
    """A --set value as TOML: numbers, booleans, quoted strings and arrays as given, bare words quoted."""
    if re.fullmatch(r"-?\d+(\.\d+)?|true|false|\".*\"|\[.*\]", v):
        return v
    return json.dumps(v)


def render_toml(sections):
    out = []
    for sec, kv in sections.items():
        out.append(f"[{sec}]")
        for k, v in kv.items():
            out.append(f"{k} = {v}")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ heartwired nodes

class HwNode:
    def __init__(self, ctx, name, node_id):
        self.ctx, self.name, self.id = ctx, name, node_id
        self.ns = ctx.net.ns[name]
        self.sock = os.path.join(ctx.dir, f"hw-{name}.sock")
        self.conf = os.path.join(ctx.dir, f"hw-{name}.toml")
        self.logpath = os.path.join(ctx.dir, f"hw-{name}.log")
        self.proc = None
        self.memif_server_sock = None
        self.started = 0.0

    def configure(self, cell):
        c = self.ctx
        core = CORE[self.name]
        # Pipelined needs two lcores; both are mapped onto this node's own CPU so the two
        # engines never share a core (two busy threads then share one CPU: see README).
        lc = ["--lcores", f"0@{core},1@{core}"] if cell["engine"] == "pipelined" else ["-l", str(core)]
        eal = lc + ["--no-pci", "--file-prefix", f"{c.prefix}{self.name}", "--log-level", "lib.eal:error",
                    "--log-level", "pmd.net.af_xdp:error"]
        self.memif_server_sock = None
        if cell["pmd"] == "memif":
            eal += ["-m", "128", "--huge-unlink"]
            if self.name == "a":
                self.memif_server_sock = f"{c.dir}/memif.sock"
            role = "server" if self.name == "a" else "client"
            device = f"net_memif0,role={role},socket={c.dir}/memif.sock,socket-abstract=no,id=0"
        else:
            eal += ["--no-huge", "-m", "256"]
            device = f"net_{cell['pmd']}0,iface=eth0"
        # Only what the benchmark must set; everything else (scheduling policy, RT priority,
        # duty cycle, protocol timers) stays at the daemon's defaults unless --set says otherwise.
        sections = {
            "node": {"name": json.dumps(f"bench-{self.name}"), "id": str(self.id), "priority": "100"},
            "port": {"eal": "[" + ", ".join(json.dumps(a) for a in eal) + "]", "device": json.dumps(device),
                     "mode": '"exclusive"'},
            "addresses": {"primary": json.dumps(f"{PRIMARY_IP}/24"), "monitor": json.dumps(f"{MONITOR_IP}/24")},
            "detect": {"interval_us": str(cell["interval_us"]), "miss": str(cell["miss"]), "probe": '"heartbeat"'},
            "engine": {"mode": json.dumps(cell["engine"]), "idle": json.dumps(c.idle)},
            "control": {"socket": json.dumps(self.sock), "log_level": '"info"'},
            # Keyed, as in production: the figures include signing and verifying every frame.
            "auth": {"key_file": json.dumps(c.key_file)},
        }
        for sec, key, val in c.toml_sets:
            sections.setdefault(sec, {})[key] = val
        if sections["auth"].get("mode") == '"none"':
            sections["auth"].pop("key_file", None)  # --set auth.mode="none": unauthenticated
        with open(self.conf, "w") as f:
            f.write(render_toml(sections))

    def start(self):
        # A memif server killed by SIGKILL leaves its socket file; the next one would fail
        # with "Address already in use" (see README: reported upstream).
        if self.memif_server_sock and os.path.exists(self.memif_server_sock):
            os.unlink(self.memif_server_sock)
        with open(self.logpath, "ab") as f:
            f.write(f"---- start {datetime.datetime.now().isoformat()}\n".encode())
        # Confined to its own core, all its threads included (as scripts/demo.sh does): a
        # killed node's teardown then runs on its own core, not on the survivor's.
        # `ip netns exec`, `taskset` and `nice` all exec, so the PID stays the daemon's own.
        nice = ["nice", "-n", str(self.ctx.engine_nice)] if self.ctx.engine_nice else []
        self.proc = self.ctx.procs.start(["ip", "netns", "exec", self.ns, "taskset", "-c", str(CORE[self.name])] +
                                         nice + [self.ctx.heartwired, "--config", self.conf], self.logpath)
        self.started = time.monotonic()

    def stop(self, sig=signal.SIGTERM):
        self.ctx.procs.stop(self.proc, sig, 5.0)
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self, tries=1):
        """`heartwirectl status --json`, or None. The control thread shares its core with a
        real-time poll thread, so an answer can take a while on a loaded machine."""
        for t in range(tries):
            st = self._status()
            if st is not None or not self.alive():
                return st
            time.sleep(0.2)
        return None

    def _status(self):
        if not self.alive():
            return None
        try:
            r = subprocess.run([self.ctx.heartwirectl, "--socket", self.sock, "-t", "2000", "status", "--json"],
                               capture_output=True, text=True, timeout=5)
            st = json.loads(r.stdout) if r.returncode == 0 else None
            if st and "sched" in st:
                self.ctx.sched_seen.add(str(st["sched"]))
            return st
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            return None


def armed(st):
    """The monitor has heard the primary answer (its detector judges on the window, not the grace)."""
    if st is None:
        return False
    if "detector_armed" in st:
        return bool(st["detector_armed"])
    return st.get("counters", {}).get("answers", 0) > 0


class HwPair:
    def __init__(self, ctx):
        self.ctx = ctx
        self.nodes = {"a": HwNode(ctx, "a", 1), "b": HwNode(ctx, "b", 2)}
        self.cell = None
        self.bg = None
        self.unexpected_exits = 0

    def start(self, cell):
        self.cell = cell
        for n in self.nodes.values():
            n.configure(cell)
        # a first, so it becomes primary without a race on the discovery window.
        self.nodes["a"].start()
        time.sleep(0.3)
        self.nodes["b"].start()

    def stop(self):
        self.join()
        for n in self.nodes.values():
            n.stop()

    def restart_bg(self, name, sig):
        """Stop node `name` (reaping what it leaves) and start it again, in the background."""
        self.join()
        t0 = time.monotonic()

        def work():
            n = self.nodes[name]
            n.stop(sig)
            if self.cell["pmd"] == "memif":
                # The surviving memif client does not reconnect to a restarted server (README,
                # "Known issues"): restart the pair, server first, as at the start of the cell.
                for o in self.nodes.values():
                    o.stop()
                self.nodes["a"].start()
                time.sleep(0.3)
                self.nodes["b"].start()
            else:
                n.start()
            self.ctx.timing.add("heartwire restart (background)", time.monotonic() - t0)

        self.bg = threading.Thread(target=work, daemon=True)
        self.bg.start()

    def join(self):
        if self.bg is not None:
            self.bg.join()
            self.bg = None

    def roles(self):
        """(primary, monitor, statuses) asked of both daemons now; primary/monitor None unless clear."""
        st = {k: n.status() for k, n in self.nodes.items()}
        prim = [k for k, s in st.items() if s and s.get("role") == "primary" and s.get("holds_primary")]
        mon = [k for k, s in st.items() if s and s.get("role") == "monitor" and s.get("holds_monitor")]
        if len(prim) == 1 and len(mon) == 1 and prim != mon:
            return prim[0], mon[0], st
        return None, None, st

    def wait_ready(self, timeout=15.0, settle=None):
        """Both up, one primary and one armed monitor, the same twice `settle` apart. A daemon
        that exited on its own is started again (and counted)."""
        settle = self.ctx.settle_s if settle is None else settle
        self.join()
        end = time.monotonic() + timeout
        st = {}
        while time.monotonic() < end:
            for k, n in self.nodes.items():
                if n.proc is not None and n.proc.poll() is not None:
                    self.unexpected_exits += 1
                    log(f"  heartwired {k} exited by itself (rc {n.proc.returncode}); starting it again")
                    self.ctx.procs.stop(n.proc)
                    n.start()
            p, m, st = self.roles()
            if p and armed(st[m]):
                time.sleep(settle)
                p2, m2, st2 = self.roles()
                if (p2, m2) == (p, m) and armed(st2[m2]):
                    return p, m, st2
            time.sleep(0.05)
        return None, None, st


# ------------------------------------------------------------------ keepalived nodes

class KaNode:
    def __init__(self, ctx, name):
        self.ctx, self.name = ctx, name
        self.host = "k" + name
        self.ns = ctx.net.ns[self.host]
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
        {KA_VIP}/24
    }}
}}
""")

    def start(self):
        for f in (self.pidfile, self.vrrp_pidfile):
            if os.path.exists(f):
                os.unlink(f)
        # Confined like heartwired: node a on core 0, node b on core 1 (the VRRP child inherits it).
        self.proc = self.ctx.procs.start(["ip", "netns", "exec", self.ns, "taskset", "-c", str(CORE[self.name]),
                                          "keepalived", "-n", "-l", "-D", "-P", "-f", self.conf, "-p", self.pidfile,
                                          "-r", self.vrrp_pidfile], self.logpath)
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
        self.ctx.net.del_addr(self.host, f"{KA_VIP}/24")

    def holds_vip(self):
        return self.ctx.net.has_addr(self.host, KA_VIP)

    def alive(self):
        return (self.proc is not None and self.proc.poll() is None and self.vrrp_pid is not None
                and self._is_keepalived(self.vrrp_pid))


class KaPair:
    def __init__(self, ctx, advert):
        self.ctx = ctx
        self.nodes = {k: KaNode(ctx, k) for k in NODES}
        self.advert = advert
        self.bg = None

    def start(self):
        for k, n in self.nodes.items():
            self.ctx.net.add_addr(n.host, KA_NODE_CIDR[k])
            n.write_conf(self.advert)
        self.nodes["a"].start()
        time.sleep(0.5)
        self.nodes["b"].start()

    def stop(self):
        self.join()
        for k, n in self.nodes.items():
            n.stop()
            self.ctx.net.del_addr(n.host, KA_NODE_CIDR[k])

    def restart_bg(self, name):
        self.join()
        t0 = time.monotonic()

        def work():
            n = self.nodes[name]
            n.stop()
            n.start()
            self.ctx.timing.add("keepalived restart (background)", time.monotonic() - t0)

        self.bg = threading.Thread(target=work, daemon=True)
        self.bg.start()

    def join(self):
        if self.bg is not None:
            self.bg.join()
            self.bg = None

    def wait_ready(self, timeout=15.0, settle=0.4):
        """One MASTER holding the VIP, the other alive as BACKUP for at least `settle` (10x its
        master-down interval at advert 10 ms: a backup that did not hear the master would have
        claimed the VIP by then)."""
        self.join()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            holders = [k for k, n in self.nodes.items() if n.holds_vip()]
            if len(holders) == 1 and all(n.alive() for n in self.nodes.values()):
                other = "b" if holders[0] == "a" else "a"
                if time.monotonic() - self.nodes[other].started >= settle:
                    time.sleep(0.05)
                    if [k for k, n in self.nodes.items() if n.holds_vip()] == holders:
                        return holders[0], other
            time.sleep(0.05)
        return None, None


# ------------------------------------------------------------------ one injection

def run_probe(ctx, target, old_mac, kill_pid=None, sig="KILL", inject=None, timeout_ms=3000):
    argv = ["ip", "netns", "exec", ctx.net.ns["client"], ctx.probe, "--iface", "eth0", "--target", target,
            "--interval-us", str(ECHO_INTERVAL_US), "--warmup-ms", str(ctx.warmup_ms), "--timeout-ms",
            str(timeout_ms), "--tail-ms", "10", "--old-mac", old_mac, "--json"]
    argv += ["--kill", str(kill_pid), "--signal", sig] if kill_pid else ["--inject", inject]
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_ms / 1000 + 15)
    ctx.timing.add("client probe", time.monotonic() - t0)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line), r.stderr.strip()
    return None, (r.stderr or r.stdout).strip()


def link_down_cmd(ctx, host, stampfile):
    if ctx.linkset:
        return f"exec {ctx.linkset} {ctx.net.br} {ctx.net.port[host]} down {stampfile}"
    return f"exec ip -n {ctx.net.br} link set {ctx.net.port[host]} down"


def read_stamp(path):
    """t_before_ns of linkset's ioctl, or None."""
    try:
        t0, t1, err = open(path).read().split()
        return int(t0) if err == "0" else None
    except (OSError, ValueError):
        return None
    finally:
        if os.path.exists(path):
            os.unlink(path)


def realtime_ns(s):
    sec, _, frac = s.partition(".")
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])


def takeover_after(status, t_inject_ns):
    """The survivor's first takeover decided after the injection. No slack: a takeover stamped
    before the injection was a false one that happened to land just before it."""
    cands = [t for t in status.get("takeovers", []) if t.get("wall_ns", 0) >= t_inject_ns]
    return min(cands, key=lambda t: t["wall_ns"]) if cands else None


def notices_after(status, t_ns, limit=3):
    out = [n.get("text", "") for n in status.get("notices", []) if int(n.get("wall_ns", 0)) >= t_ns]
    return "; ".join(out[:limit])[:200]


SAMPLE_FIELDS = ["seq", "system", "pmd", "engine", "interval_us", "miss", "kind", "i", "t_inject", "primary",
                 "valid", "reason", "garp_us", "reply_us", "gap_us", "detect_us", "decision_us", "inject_us",
                 "probe_garp_us", "probe_reply_us", "resumed_role", "stepdown_ms", "mon_flaps", "mon_damped", "notices"]


def new_sample(cell, system, kind):
    s = {f: "" for f in SAMPLE_FIELDS}
    s.update(cell, system=system, kind=kind, valid=False)
    return s


def fill_probe(s, res, t_fail_ns):
    """Client figures relative to the failure (for link: when the veth really went down)."""
    t_inj = realtime_ns(res["t_inject"])
    shift_us = (t_fail_ns - t_inj) / 1000 if t_fail_ns else 0.0
    s["t_inject"] = res["t_inject"]
    s["inject_us"] = round(shift_us, 1) if t_fail_ns else ""
    for key, out in (("garp_us", "garp_us"), ("first_reply_us", "reply_us")):
        v = res.get(key)
        s["probe_" + out] = v if v is not None else ""
        s[out] = round(v - shift_us, 1) if v is not None else ""
    s["gap_us"] = res.get("gap_us", "")


def hw_inject(ctx, pair, cell, kind):
    """One injection on a heartwire pair; the failed node restarts in the background. Returns a sample."""
    s = new_sample(cell, "heartwire", kind)
    t_w = time.monotonic()
    p, m, st0 = pair.wait_ready(timeout=ctx.settle_timeout)
    ctx.timing.add("heartwire wait for a settled pair", time.monotonic() - t_w)
    if not p:
        s["reason"] = "pair not ready (no single primary + armed monitor)"
        return s
    P, M = pair.nodes[p], pair.nodes[m]
    to_before = st0[m]["counters"]["takeovers"]
    old_mac = st0[p]["mac"]
    new_mac_expect = st0[m]["mac"]
    s["primary"] = p
    # Flap damping (protocol.flap_hold_ms): a monitor that was itself replaced while alive
    # watches with a widened window for a while; recorded, not hidden.
    s["mon_flaps"] = st0[m]["counters"].get("flaps", "")
    s["mon_damped"] = st0[m]["counters"].get("damped_watches", "")
    sig = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}.get(kind)

    if cell["pmd"] == "memif":
        if kind == "link":
            s["reason"] = "n/a: memif has no kernel link"
            return s
        t0 = time.time_ns()
        os.kill(P.proc.pid, sig)
        entry, st_m_after, end = None, None, time.monotonic() + 5
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
        stamp = os.path.join(ctx.dir, "linkdown.stamp")
        if kind == "link":
            res, err = run_probe(ctx, PRIMARY_IP, old_mac, inject=link_down_cmd(ctx, p, stamp))
            t_down = read_stamp(stamp)
        else:
            res, err = run_probe(ctx, PRIMARY_IP, old_mac, kill_pid=P.proc.pid, sig="KILL" if kind == "kill" else "STOP")
            t_down = None
        if res is None:
            s["reason"] = f"probe failed: {err[:200]}"
        else:
            t_fail = t_down or realtime_ns(res["t_inject"])
            fill_probe(s, res, t_down)
            st = M.status()
            entry = takeover_after(st, realtime_ns(res["t_inject"])) if st else None
            if entry:
                s["detect_us"] = entry["detection_ns"] / 1000
                s["decision_us"] = round((entry["wall_ns"] - t_fail) / 1000, 1)
            if st:
                s["notices"] = notices_after(st, realtime_ns(res["t_inject"]))
            if kind == "link" and ctx.linkset and t_down is None:
                s["reason"] = "link helper left no timestamp"
            elif res["result"] != "ok":
                s["reason"] = "probe timeout (no GARP from a new MAC and reply after it)"
            elif res["new_mac"] != new_mac_expect:
                s["reason"] = f"GARP came from {res['new_mac']}, not the monitor {new_mac_expect}"
            elif entry is None:
                before = [t for t in (st or {}).get("takeovers", []) if t.get("wall_ns", 0) < realtime_ns(res["t_inject"])]
                s["reason"] = ("a false takeover came just before the injection" if st and
                               st["counters"]["takeovers"] > to_before and before else "no takeover record after the injection")
            elif st["counters"]["takeovers"] != to_before + 1:
                s["reason"] = "more than one takeover after the injection"
            else:
                s["valid"] = True

    # Restore. A stopped primary is resumed first: did it step down on its own?
    if kind == "stop" and P.alive():
        os.kill(P.proc.pid, signal.SIGCONT)
        t_c = time.monotonic()
        role = "unreachable"
        while time.monotonic() - t_c < 0.5:
            st = P.status()
            if st:
                role = st.get("role", "?")
                if role != "primary" or not st.get("holds_primary"):
                    break
            time.sleep(0.02)
        s["resumed_role"] = role
        s["stepdown_ms"] = round((time.monotonic() - t_c) * 1000, 1) if role != "primary" else ""
        ctx.timing.add("heartwire SIGCONT step-down check", time.monotonic() - t_c)
    if kind == "link":
        ctx.net.link(p, "up")
    # The failed node comes back through a fresh start (no flap-damping state) and rejoins as
    # monitor, in the background: the next keepalived injection runs meanwhile.
    pair.restart_bg(p, signal.SIGKILL if kind == "kill" else signal.SIGTERM)
    return s


def ka_inject(ctx, pair, cell, kind):
    s = new_sample(cell, "keepalived", kind)
    t_w = time.monotonic()
    p, b = pair.wait_ready()
    ctx.timing.add("keepalived wait for a settled pair", time.monotonic() - t_w)
    if not p:
        s["reason"] = "pair not ready (no single MASTER)"
        return s
    P = pair.nodes[p]
    old_mac, new_mac_expect = ctx.net.mac(P.host), ctx.net.mac(pair.nodes[b].host)
    s["primary"] = p
    stamp = os.path.join(ctx.dir, "linkdown.stamp")
    t_down = None
    if kind == "kill":
        # A crash of the VRRP process: the parent is held still first, or it would respawn
        # the child (and a SIGKILLed parent makes the child exit cleanly with priority 0).
        os.kill(P.proc.pid, signal.SIGSTOP)
        res, err = run_probe(ctx, KA_VIP, old_mac, kill_pid=P.vrrp_pid, sig="KILL")
    elif kind == "stop":
        res, err = run_probe(ctx, KA_VIP, old_mac, kill_pid=P.vrrp_pid, sig="STOP")
    else:
        res, err = run_probe(ctx, KA_VIP, old_mac, inject=link_down_cmd(ctx, P.host, stamp))
        t_down = read_stamp(stamp)
    if res is None:
        s["reason"] = f"probe failed: {err[:200]}"
    else:
        fill_probe(s, res, t_down)
        if kind == "link" and ctx.linkset and t_down is None:
            s["reason"] = "link helper left no timestamp"
        elif res["result"] != "ok":
            s["reason"] = "probe timeout (no GARP from a new MAC after the injection: a takeover just before it?)"
        elif res["new_mac"] != new_mac_expect:
            s["reason"] = f"GARP came from {res['new_mac']}, not the backup {new_mac_expect}"
        else:
            s["valid"] = True
    if kind == "link":
        ctx.net.link(P.host, "up")
    pair.restart_bg(p)
    return s


# ------------------------------------------------------------------ statistics

METRICS = ("garp_us", "reply_us", "detect_us", "decision_us")
METRIC_LABEL = {"garp_us": "failure->GARP", "reply_us": "failure->reply", "detect_us": "detect (engine)",
                "decision_us": "failure->decision (eng)"}
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


def cell_key(s):
    return (s["system"], s["pmd"], s["engine"], int(s["interval_us"]), int(s["miss"]), s["kind"])


def summarize(samples):
    """Rows: one per (system, pmd, engine, interval, miss, kind, metric) with n and percentiles."""
    groups, attempts = {}, {}
    for s in samples:
        key = cell_key(s)
        a = attempts.setdefault(key, [0, 0])
        a[0] += 1
        a[1] += 0 if s["valid"] else 1
        if not s["valid"]:
            continue
        for m in METRICS:
            if s[m] != "" and s[m] is not None:
                groups.setdefault(key + (m,), LogHistogram()).add(float(s[m]))
    rows = []
    for key, h in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        system, pmd, engine, interval, miss, kind, metric = key
        rows.append({"system": system, "pmd": pmd, "engine": engine, "interval_us": interval, "miss": miss,
                     "kind": kind, "metric": metric, "n": h.n,
                     "attempts": attempts[key[:6]][0], "invalid": attempts[key[:6]][1],
                     **{f"p{q:g}": round(h.quantile(q), 1) for q in QUANTILES}, "max": round(h.max, 1)})
    return rows, attempts


def fmt_us(v):
    if v == "" or v is None:
        return "-"
    v = float(v)
    if v >= 10000:
        return f"{v / 1000:.1f} ms"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    return f"{v:.0f} us"


def cell_name(r):
    if r["system"] == "keepalived":
        return f"keepalived VRRPv3 advert {int(r['interval_us']) / 1000:g} ms"
    eng = "rtc" if r["engine"] == "run-to-completion" else "pipelined"
    return f"heartwire {r['pmd']} {eng} {r['interval_us']}us x {r['miss']}"


def comparison(rows):
    """Per failure kind and client metric: every heartwire cell beside keepalived, ratio at p99."""
    out = []
    for kind in KINDS:
        ka = {r["metric"]: r for r in rows if r["system"] == "keepalived" and r["kind"] == kind}
        for h in (r for r in rows if r["system"] == "heartwire" and r["kind"] == kind):
            k = ka.get(h["metric"])
            if h["metric"] not in ("garp_us", "reply_us") or not k:
                continue
            out.append({"kind": kind, "metric": h["metric"],
                        "heartwire_cell": f"{h['pmd']}/{h['engine']}/{h['interval_us']}x{h['miss']}",
                        "hw_n": h["n"], "hw_attempts": h["attempts"], "hw_p50": h["p50"], "hw_p90": h["p90"],
                        "hw_p99": h["p99"], "hw_max": h["max"],
                        "ka_n": k["n"], "ka_attempts": k["attempts"], "ka_p50": k["p50"], "ka_p90": k["p90"],
                        "ka_p99": k["p99"], "ka_max": k["max"],
                        "ratio_p50": round(k["p50"] / h["p50"], 1) if h["p50"] else "",
                        "ratio_p99": round(k["p99"] / h["p99"], 1) if h["p99"] else ""})
    return out


def target_us(kind, cell):
    """The acceptance targets: kill -> GARP p99 <= 300 us (engine-down notice); stop and link
    -> GARP p99 <= window + 1 ms."""
    if kind == "kill":
        return 300.0, "300 us (engine-down notice)"
    w = int(cell[3]) * int(cell[4])
    return w + 1000.0, f"window {w} us + 1 ms"


def print_failover(rep, rows, attempts, kinds_run):
    by = {}
    for r in rows:
        by.setdefault((r["kind"], r["system"], r["pmd"], r["engine"], r["interval_us"], r["miss"]), {})[r["metric"]] = r
    for kind in KINDS:
        cells = sorted({k[:5] for k in attempts if k[5] == kind}, key=lambda c: (c[0] != "heartwire", str(c)))
        if not cells:
            continue
        rep.line(f"\n{KIND_LABEL[kind]}")
        hdr = f"  {'metric':24} {'system':38} {'valid':>9} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}"
        rep.line(hdr)
        rep.line("  " + "-" * (len(hdr) - 2))
        ka_cell = next((c for c in cells if c[0] == "keepalived"), None)
        for metric in METRICS:
            for c in cells:
                key = (kind,) + c[:5]
                r = by.get(key, {}).get(metric)
                if r is None and metric in ("detect_us", "decision_us"):
                    continue
                if r is None and c[0] == "heartwire" and c[1] == "memif":
                    continue
                a = attempts[c[:5] + (kind,)]
                name = cell_name({"system": c[0], "pmd": c[1], "engine": c[2], "interval_us": c[3], "miss": c[4]})
                label = METRIC_LABEL[metric]
                if r is None:
                    rep.line(f"  {label:24} {name:38} {0:>4}/{a[0]:<4}")
                    continue
                rep.line(f"  {label:24} {name:38} {r['n']:>4}/{a[0]:<4} " +
                         " ".join(f"{fmt_us(r[k]):>9}" for k in ("p50", "p90", "p99", "max")))
            if metric in ("garp_us", "reply_us") and ka_cell:
                kr = by.get((kind,) + ka_cell[:5], {}).get(metric)
                for c in cells:
                    hr = by.get((kind,) + c[:5], {}).get(metric)
                    if c[0] == "heartwire" and hr and kr and hr["p99"]:
                        rep.line(f"  {'':24} keepalived / heartwire at p99: {kr['p99'] / hr['p99']:.1f}x"
                                 + (f"  ({c[1]} {c[3]}x{c[4]})" if sum(1 for x in cells if x[0] == 'heartwire') > 1
                                    else ""))
        for c in cells:
            if c[0] != "heartwire" or c[1] == "memif":
                continue
            hr = by.get((kind,) + c[:5], {}).get("garp_us")
            lim, what = target_us(kind, c)
            got = fmt_us(hr["p99"]) if hr else "no valid sample"
            ok = hr is not None and hr["p99"] <= lim
            rep.line(f"  target {KIND_LABEL[kind]} -> GARP p99 <= {what}: {got} "
                     f"({'met' if ok else 'NOT met'}; n={hr['n'] if hr else 0})")


# ------------------------------------------------------------------ loop-gap histograms

def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.inf


def gap_delta(before, after):
    """The loop-gap figures of one engine over a soak: `after - before` of its status.
    Uses the "loop_gaps" histogram when the daemon has it, the io_loop_gaps counters anyway."""
    out = {"io_loop_gaps": "", "io_loop_gap_max_ms": "", "samples": "", "over_100us": "", "over_500us": "",
           "over_1ms": "", "p99_us": "", "p9999_us": "", "max_us": "", "max_since_start_us": "", "buckets": []}
    ca, cb = after.get("counters", {}), before.get("counters", {})
    if "io_loop_gaps" in ca:
        out["io_loop_gaps"] = ca["io_loop_gaps"] - cb.get("io_loop_gaps", 0)
        out["io_loop_gap_max_ms"] = round(ca.get("io_loop_gap_max_ns", 0) / 1e6, 2)
    la, lb = after.get("loop_gaps"), before.get("loop_gaps") or {}
    if not isinstance(la, dict):
        return out
    if not isinstance(lb, dict):
        lb = {}
    for k in ("samples", "over_100us", "over_500us", "over_1ms"):
        if k in la:
            out[k] = int(la[k]) - int(lb.get(k, 0))
    if "max_ns" in la:
        out["max_since_start_us"] = round(int(la["max_ns"]) / 1000, 1)
    prev = {}
    for b in lb.get("buckets", []) or []:
        if isinstance(b, (list, tuple)) and len(b) == 2:
            prev[_num(b[0])] = int(b[1])
    buckets = []
    for b in la.get("buckets", []) or []:
        if isinstance(b, (list, tuple)) and len(b) == 2:
            u = _num(b[0])
            buckets.append((u, int(b[1]) - prev.get(u, 0)))
    buckets.sort()
    out["buckets"] = buckets
    total = sum(c for _, c in buckets)
    if total > 0:
        def q(frac):
            rank, seen = max(1, math.ceil(frac * total)), 0
            for u, c in buckets:
                seen += c
                if seen >= rank:
                    return u
            return buckets[-1][0]

        out["p99_us"] = round(q(0.99) / 1000, 1) if q(0.99) != math.inf else "inf"
        out["p9999_us"] = round(q(0.9999) / 1000, 1) if q(0.9999) != math.inf else "inf"
        top = max(u for u, c in buckets if c > 0)
        out["max_us"] = round(top / 1000, 1) if top != math.inf else "inf"
    elif "p99_ns" in la:  # no buckets: the daemon's own figures since it started
        out["p99_us"] = round(int(la["p99_ns"]) / 1000, 1)
        out["p9999_us"] = round(int(la.get("p9999_ns", 0)) / 1000, 1)
    return out


def fmt_bucket(u):
    if u == math.inf:
        return "inf"
    if u >= 1e6:
        return f"{u / 1e6:g}ms"
    if u >= 1e3:
        return f"{u / 1e3:g}us"
    return f"{u:g}ns"


# ------------------------------------------------------------------ phases

def failover_phase(ctx, cells, kinds, injections, ka_kinds, ka_injections, advert, samples):
    """Per failure kind: heartwire and keepalived injections alternate (one of each, ...), so
    both run under the same machine conditions; each system's failed node restarts in the
    background while the other system's injection runs."""
    kapair = KaPair(ctx, advert) if ka_kinds and ka_injections else None
    ka_done = {k: 0 for k in KINDS}
    seq = [0]
    planned = (sum(injections for c in cells for k in kinds if not (c["pmd"] == "memif" and k == "link"))
               + len(ka_kinds) * ka_injections) if kapair else \
        sum(injections for c in cells for k in kinds if not (c["pmd"] == "memif" and k == "link"))
    t_start = time.monotonic()
    ka_cell = {"pmd": "kernel", "engine": "vrrpv3", "interval_us": int(round(float(advert) * 1e6)), "miss": 3}

    def record(s, i):
        s["i"] = i
        s["seq"] = seq[0]
        seq[0] += 1
        samples.append(s)
        if not s["valid"]:
            log(f"  {s['system']} {KIND_LABEL[s['kind']]} #{i}: invalid: {s['reason']}")
        if seq[0] % 20 == 0 and planned:
            el = time.monotonic() - t_start
            log(f"  progress {seq[0]}/{planned} injections, {el / 60:.1f} min, "
                f"~{el / seq[0] * (planned - seq[0]) / 60:.1f} min to go")

    def ka_one(kind):
        s = ka_inject(ctx, kapair, ka_cell, kind)
        record(s, ka_done[kind])
        ka_done[kind] += 1

    def med(ss, m="reply_us"):
        vals = sorted(float(s[m]) for s in ss if s["valid"] and s[m] != "")
        return f"{vals[len(vals) // 2]:.0f} us" if vals else "n/a"

    if kapair:
        log(f"keepalived VRRPv3 advert_int {advert}: starting the pair (VIP {KA_VIP})")
        kapair.start()
    try:
        pair = HwPair(ctx)
        for cell in cells:
            unsettled = [0]
            pmd, engine, interval, miss = cell["pmd"], cell["engine"], cell["interval_us"], cell["miss"]
            log(f"heartwire {pmd} {engine} {interval}us x{miss}: starting the pair")
            pair.start(cell)
            if not pair.wait_ready(timeout=ctx.settle_timeout)[0]:
                log("  pair never became stable (primary + armed monitor); restarting once")
                pair.stop()
                pair.start(cell)
                if not pair.wait_ready(timeout=ctx.settle_timeout)[0]:
                    log("  still unstable: cell skipped")
                    for kind in kinds:
                        s = new_sample(cell, "heartwire", kind)
                        s["reason"] = f"pair unstable: no primary + armed monitor for {ctx.settle_timeout:.0f} s, twice"
                        record(s, 0)
                    pair.stop()
                    continue
            for kind in KINDS:
                hw_n = injections if kind in kinds and not (pmd == "memif" and kind == "link") else 0
                ka_n = ka_injections - ka_done[kind] if kapair and ctx.interleave and kind in ka_kinds else 0
                if not hw_n and not ka_n:
                    continue
                log(f"  {KIND_LABEL[kind]}: {hw_n} heartwire" + (f" alternating with {ka_n} keepalived" if ka_n else "")
                    + " injections")
                first = len(samples)
                bad_in_row = 0
                for i in range(max(hw_n, ka_n)):
                    if i < hw_n and unsettled[0] >= 10:
                        # A pair that cannot hold still at this window would cost settle_timeout per
                        # injection; the rest of the cell is recorded as skipped instead.
                        s = new_sample(cell, "heartwire", kind)
                        s["reason"] = "skipped: the pair did not settle 10 times in a row at this window"
                        record(s, i)
                    elif i < hw_n:
                        s = hw_inject(ctx, pair, dict(cell), kind)
                        record(s, i)
                        bad_in_row = 0 if s["valid"] else bad_in_row + 1
                        unsettled[0] = unsettled[0] + 1 if s["reason"].startswith("pair not ready") else 0
                        if bad_in_row >= 5:
                            log("  5 invalid heartwire injections in a row: restarting the pair")
                            pair.stop()
                            pair.start(cell)
                            bad_in_row = 0
                    if i < ka_n:
                        ka_one(kind)
                mine = samples[first:]
                hw = [s for s in mine if s["system"] == "heartwire"]
                ka = [s for s in mine if s["system"] == "keepalived"]
                log(f"  {KIND_LABEL[kind]}: heartwire {sum(s['valid'] for s in hw)}/{len(hw)} valid, median "
                    f"{'failure->reply ' + med(hw) if pmd != 'memif' else 'failure->decision ' + med(hw, 'decision_us')}"
                    + (f"; keepalived {sum(s['valid'] for s in ka)}/{len(ka)} valid, median failure->reply {med(ka)}"
                       if ka else ""))
            pair.stop()
        # keepalived kinds that no heartwire cell ran with (e.g. --no-heartwire)
        if kapair:
            for kind in ka_kinds:
                if ka_done[kind] < ka_injections:
                    log(f"  keepalived {KIND_LABEL[kind]}: {ka_injections - ka_done[kind]} injections")
                    while ka_done[kind] < ka_injections:
                        ka_one(kind)
    finally:
        if kapair:
            kapair.stop()


def soak_phase(ctx, settings, seconds, hog_modes, rep_rows, hist_rows, pmd="af_xdp", engine="run-to-completion"):
    pair = HwPair(ctx)
    for interval, miss in settings:
        for hog in hog_modes:
            t_row = time.monotonic()
            cell = {"pmd": pmd, "engine": engine, "interval_us": interval, "miss": miss}
            pair.start(cell)
            p, m, _ = pair.wait_ready(timeout=15)
            row = {"pmd": pmd, "engine": engine, "idle": ctx.idle, "interval_us": interval, "miss": miss,
                   "window_us": interval * miss, "hog": "yes" if hog else "no", "seconds": seconds,
                   "primary": p or "", "takeovers": "", "false_takeovers": "", "flaps": "", "stalls": "",
                   "damped_watches": "", "probes": "", "answers": "", "note": ""}
            if not p:
                # Still counted: a pair that flaps before the soak starts flaps during it too.
                row["note"] = "never settled into primary + armed monitor before the soak"
            base = {k: pair.nodes[k].status(tries=5) for k in NODES}
            if not all(base.values()):
                row["note"] = "a daemon did not answer status before the soak"
                row["false_takeovers"] = "n/a"
                rep_rows.append(row)
                pair.stop()
                continue
            roles = {k: ("primary" if k == p else "monitor" if k == m else base[k].get("role", "?")) for k in NODES}
            hogs = []
            if hog:
                # A normal-priority (SCHED_OTHER, nice 0) busy loop pinned on each core, started
                # and stopped by PID.
                for core in sorted(set(CORE.values())):
                    hogs.append(ctx.procs.start(["taskset", "-c", str(core), "nice", "-n", "0", "sh", "-c",
                                                 "while :; do :; done"], os.path.join(ctx.dir, "hog.log")))
            died = False
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                if not all(n.alive() for n in pair.nodes.values()):
                    died = True
                    break
            for h in hogs:
                ctx.procs.stop(h, signal.SIGKILL)
            after = {k: pair.nodes[k].status(tries=5) for k in NODES}
            if died:
                row["note"] = "a daemon died during the soak: " + ", ".join(
                    f"{k} rc {n.proc.returncode}" for k, n in pair.nodes.items() if n.proc and n.proc.poll() is not None)
            elif not all(after.values()):
                row["note"] = "a daemon did not answer status after the soak (5 tries)"
            else:
                def d(field):
                    if not all(field in after[k]["counters"] for k in NODES):
                        return "n/a"
                    return sum(after[k]["counters"][field] - base[k]["counters"].get(field, 0) for k in NODES)

                row.update(takeovers=d("takeovers"), false_takeovers=d("false_takeovers"), flaps=d("flaps"),
                           stalls=d("stalls"), damped_watches=d("damped_watches"), probes=d("probes_sent"),
                           answers=d("answers"))
                for k in NODES:
                    g = gap_delta(base[k], after[k])
                    row[f"{k}_role"] = roles[k]
                    for f in ("io_loop_gaps", "io_loop_gap_max_ms", "samples", "over_100us", "over_500us",
                              "over_1ms", "p99_us", "p9999_us", "max_us", "max_since_start_us"):
                        row[f"{k}_{f}"] = g[f]
                    row[f"{k}_buckets"] = g["buckets"]
                    for u, c in g["buckets"]:
                        hist_rows.append({"interval_us": interval, "miss": miss, "hog": row["hog"], "node": k,
                                          "role": roles[k], "upper_ns": "inf" if u == math.inf else int(u),
                                          "count": c})
            rep_rows.append(row)
            ctx.timing.add("soak rows (incl. start/settle)", time.monotonic() - t_row)
            log(f"soak {interval}us x{miss} {'with' if hog else 'without'} CPU hog, {seconds}s: takeovers "
                f"{row['takeovers']} (daemons' false_takeovers {row['false_takeovers']}), stalls {row['stalls']}"
                f" {row['note']}")
            pair.stop()


def print_soak(rep, rows, seconds, netem):
    rep.line(f"\nfalse-takeover soak ({seconds}s per row; idle = {rows[0]['idle'] if rows else '?'}; each engine on "
             f"its own core; hog = a SCHED_OTHER nice-0 busy loop pinned on each core; netem "
             f"{'available, not used' if netem else 'not available: no link jitter'})")
    rep.line("without injections every takeover is false; 'false' is the daemons' own false_takeovers count")
    hdr = (f"  {'window':>16} {'hog':>4} {'takeovers':>9} {'false':>6} {'flaps':>6} {'stalls':>7} {'probes':>9} "
           f"{'answers':>9}  note")
    rep.line(hdr)
    rep.line("  " + "-" * (len(hdr) - 2))
    for r in rows:
        w = f"{r['interval_us']}us x {r['miss']}"
        rep.line(f"  {w:>16} {r['hog']:>4} {str(r['takeovers']):>9} {str(r['false_takeovers']):>6} "
                 f"{str(r['flaps']):>6} {str(r['stalls']):>7} {str(r['probes']):>9} {str(r['answers']):>9}  {r['note']}")
    rep.line("\nloop gaps per engine during each soak (poll-loop turns; histogram = daemon's loop_gaps, diffed over "
             "the soak; 'since start' maxima include start-up)")
    for r in rows:
        for k in NODES:
            if f"{k}_role" not in r:
                continue
            head = (f"  {r['interval_us']}us x {r['miss']}, hog {r['hog']}, node {k} ({r[f'{k}_role']}, core {CORE[k]}): "
                    f"io_loop_gaps {r[f'{k}_io_loop_gaps']} (longest since start {r[f'{k}_io_loop_gap_max_ms']} ms)")
            rep.line(head)
            if r[f"{k}_samples"] == "" and not r[f"{k}_buckets"]:
                rep.line("      loop_gaps histogram: not in this daemon's status")
                continue
            rep.line(f"      samples {r[f'{k}_samples']}  p99 {r[f'{k}_p99_us']} us  p99.99 {r[f'{k}_p9999_us']} us  "
                     f"max {r[f'{k}_max_us']} us (bucket top; since start {r[f'{k}_max_since_start_us']} us)  "
                     f">100us {r[f'{k}_over_100us']}  >500us {r[f'{k}_over_500us']}  >1ms {r[f'{k}_over_1ms']}")
            nz = [(u, c) for u, c in r[f"{k}_buckets"] if c]
            if nz:
                # Turns up to 64 us are the loop doing its work; the gaps above are listed bucket by bucket
                # (log2 buckets, upper bounds; all of them are in soak_loop_gaps.csv).
                small = sum(c for u, c in nz if u < 65536)
                line = f"      turns <= 64us: {small}   longer, by bucket top: " + "  ".join(
                    f"{fmt_bucket(u)}:{c}" for u, c in nz if u >= 65536)
                rep.line(line)
    clean = {}
    for r in rows:
        key = (r["interval_us"], r["miss"])
        clean[key] = clean.get(key, True) and r["takeovers"] == 0 and r["false_takeovers"] in (0, "n/a")
    good = sorted((iv * m, iv, m) for (iv, m), ok in clean.items() if ok)
    if good:
        rep.line(f"\nsmallest window with 0 takeovers both without and with the hog: {good[0][1]}us x {good[0][2]} "
                 f"= {good[0][0]} us")
    else:
        rep.line("\nno window ran without takeovers both without and with the hog")


# ------------------------------------------------------------------ plot

def plot(samples, outdir, png, stamp):
    """CDFs of failure->GARP and failure->reply per cell (cells with the most samples)."""
    if not shutil.which("gnuplot"):
        return False
    cells = {}
    for s in samples:
        if s["valid"] and s["system"] != "" and s["pmd"] != "memif":
            cells.setdefault(cell_key(s), []).append(s)
    if not cells:
        return False
    ranked = sorted(cells.items(), key=lambda kv: -len(kv[1]))
    chosen = [kv for kv in ranked if kv[0][0] == "keepalived"][:3]
    chosen += [kv for kv in ranked if kv[0][0] == "heartwire"][:8 - len(chosen)]
    files = []
    for i, (key, ss) in enumerate(chosen):
        system, pmd, engine, interval, miss, kind = key
        label = cell_name({"system": system, "pmd": pmd, "engine": engine, "interval_us": interval, "miss": miss})
        label += f", {KIND_LABEL[kind]} (n={len(ss)})"
        for metric in ("garp_us", "reply_us"):
            vals = sorted(float(s[metric]) for s in ss if s[metric] != "")
            path = os.path.join(outdir, f"cdf_{i}_{metric}.dat")
            with open(path, "w") as f:
                for j, v in enumerate(vals):
                    f.write(f"{v} {(j + 1) / len(vals)}\n")
            files.append((i, metric, path, label))
    allv = [float(s[m]) for _, ss in chosen for s in ss for m in ("garp_us", "reply_us") if s[m] != ""]
    allv = [v for v in allv if v > 0] or [10.0]
    lo = 10 ** math.floor(math.log10(max(1.0, min(allv) / 2)))
    hi = 10 ** math.ceil(math.log10(max(allv) * 1.5))
    gp = os.path.join(outdir, "plot.gp")
    with open(gp, "w") as f:
        f.write(f"""set terminal pngcairo size 1400,620 font "DejaVu Sans,11" noenhanced
set output "{png}"
set multiplot layout 1,2 title "heartwire vs keepalived failover (namespaces, client-side kernel timestamps, run {stamp})"
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


# ------------------------------------------------------------------ report

class Report:
    """The final report: printed and kept as summary.txt."""

    def __init__(self):
        self.lines = []

    def line(self, s=""):
        self.lines.append(s)
        print(s, flush=True)

    def write(self, path):
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def write_csv(path, rows, fields=None):
    if not rows:
        return
    if fields is None:
        fields = []
        for r in rows:
            for k in r:
                if k not in fields and not k.endswith("_buckets"):
                    fields.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def git_info():
    def g(*a):
        r = subprocess.run(["git", "-C", REPO] + list(a), capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    head = g("rev-parse", "--short", "HEAD") or "unknown"
    dirty = g("status", "--porcelain", "--untracked-files=no")
    return head, len(dirty.splitlines()) if dirty else 0


def build_info(build_dir):
    src = ""
    try:
        info = json.load(open(os.path.join(build_dir, "meson-info", "meson-info.json")))
        src = info.get("directories", {}).get("source", "")
    except (OSError, ValueError):
        pass
    if src:
        # The source's own commit: a git checkout, or a snapshot that recorded it in .bench-commit
        # (`git archive HEAD | tar -x -C DIR && git rev-parse --short HEAD > DIR/.bench-commit`).
        r = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        if r.returncode == 0 and os.path.realpath(src) != REPO:
            src += f" at {r.stdout.strip()}"
        elif os.path.exists(os.path.join(src, ".bench-commit")):
            src += f" = snapshot of {open(os.path.join(src, '.bench-commit')).read().strip()}"
    hwd = os.path.join(build_dir, "dpdk_apps", "heartwired")
    built = datetime.datetime.fromtimestamp(os.path.getmtime(hwd)).strftime("%Y-%m-%d %H:%M:%S") \
        if os.path.exists(hwd) else "?"
    return src, built


# ------------------------------------------------------------------ main

class Ctx:
    pass


def parse_window(s):
    iv, _, m = s.partition("x")
    if not iv.isdigit() or not m.isdigit():
        raise SystemExit(f"bad window '{s}': INTERVALxMISS, e.g. 100x5")
    return int(iv), int(m)


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


def build_linkset(workdir):
    src = os.path.join(HERE, "helpers", "linkset.c")
    out = os.path.join(workdir, "hwb-linkset")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not os.path.exists(src):
        return None
    r = run([cc, "-O2", "-Wall", "-o", out, src], check=False)
    if r.returncode != 0:
        log(f"helpers/linkset.c did not build ({r.stderr.strip()[:200]}); link down via `ip link`, "
            "figures then include its start-up")
        return None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--prefix", required=True, help="namespace prefix (hwb<pid>)")
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--results", required=True, help="results directory")
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 injections per kind and system, 20 s soaks")
    ap.add_argument("--issue7", action="store_true",
                    help="the standard run (also the default): window 100x5, kill/stop/link x 200 injections, "
                         "keepalived interleaved, 10-minute soaks without and with the hog")
    ap.add_argument("--matrix", action="store_true",
                    help="the old full matrix: --configs all, soak settings " +
                         ",".join(f"{i}x{m}" for i, m in MATRIX_SOAK_SETTINGS) + " (many hours)")
    ap.add_argument("--window", default=DEFAULT_WINDOW, help="heartwire INTERVALxMISS for the failover run (af_xdp rtc)")
    ap.add_argument("--configs", help="pmd:engine:interval_us[xmiss] list, or 'all' (overrides --window)")
    ap.add_argument("--injections", type=int, help="heartwire injections per kind and cell")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--miss", type=int, default=3, help="miss for --configs items without xMISS")
    ap.add_argument("--ka-injections", type=int, help="keepalived injections per kind (default: as --injections)")
    ap.add_argument("--ka-kinds")
    ap.add_argument("--advert", default="0.01", help="keepalived advert_int (s)")
    ap.add_argument("--soak-seconds", type=int)
    ap.add_argument("--soak-settings", help="windows to soak, e.g. 100x5,200x5,100x10 (default: the --window)")
    ap.add_argument("--idle", choices=("adaptive", "busy"), default="adaptive", help="[engine] idle")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="extra heartwired TOML, e.g. --set engine.sched=other --set protocol.flap_hold_ms=0 "
                         "(repeatable; default: the daemon's own defaults)")
    ap.add_argument("--engine-nice", type=int, default=0,
                    help="run heartwired under `nice -n N`")
    ap.add_argument("--warmup-ms", type=int, default=100, help="client echo flow before each injection")
    ap.add_argument("--settle-ms", type=int, default=200,
                    help="a heartwire pair counts as settled when its roles are the same twice this far apart")
    ap.add_argument("--no-heartwire", action="store_true")
    ap.add_argument("--no-keepalived", action="store_true")
    ap.add_argument("--no-soak", action="store_true")
    ap.add_argument("--no-failover", action="store_true")
    ap.add_argument("--no-hog", action="store_true", help="soak without the hog rows")
    ap.add_argument("--no-interleave", action="store_true",
                    help="keepalived after heartwire, with the heartwire pair stopped (default: alternate)")
    ap.add_argument("--plot-only", action="store_true", help="redraw failover.png from RESULTS/samples.csv")
    a = ap.parse_args()
    if a.plot_only:
        with open(os.path.join(a.results, "samples.csv")) as f:
            samples = [dict(r, valid=r["valid"] == "True") for r in csv.DictReader(f)]
        stamp = open(os.path.join(a.results, "run.txt")).readline().split(" ", 1)[1].strip()
        plot(samples, a.results, os.path.join(a.results, "failover.png"), stamp)
        return

    q = a.quick
    custom = a.configs or a.window != DEFAULT_WINDOW or a.injections is not None or a.soak_settings or \
        a.soak_seconds is not None or a.kinds != ",".join(KINDS) or a.ka_kinds or a.no_soak or a.no_failover
    mode = "quick" if q else ("matrix" if a.matrix else "custom" if custom else "standard (--issue7)")
    injections = a.injections if a.injections is not None else (3 if q else 200)
    ka_injections = a.ka_injections if a.ka_injections is not None else injections
    if a.configs or a.matrix:
        cells = parse_cells(a.configs or "all", a.miss)
    else:
        iv, m = parse_window(a.window)
        cells = [{"pmd": "af_xdp", "engine": "run-to-completion", "interval_us": iv, "miss": m}]
    kinds = [k for k in a.kinds.split(",") if k]
    ka_kinds = [k for k in (a.ka_kinds or a.kinds).split(",") if k]
    soak_seconds = a.soak_seconds if a.soak_seconds is not None else (20 if q else 600)
    if a.soak_settings:
        soak_settings = [parse_window(s) for s in a.soak_settings.split(",")]
    elif a.matrix:
        soak_settings = list(MATRIX_SOAK_SETTINGS)
    else:
        soak_settings = [parse_window(a.window)]
    for k in kinds + ka_kinds:
        if k not in KINDS:
            raise SystemExit(f"bad failure kind '{k}': one of {KINDS}")
    toml_sets = []
    for item in a.set:
        key, eq, val = item.partition("=")
        sec, dot, k = key.partition(".")
        if not eq or not dot or not sec or not k:
            raise SystemExit(f"bad --set '{item}': SECTION.KEY=VALUE")
        toml_sets.append((sec, k, toml_raw(val)))
    do_hw = not a.no_heartwire and not a.no_failover
    do_ka = not a.no_keepalived and not a.no_failover

    ctx = Ctx()
    ctx.prefix = a.prefix
    ctx.heartwired = os.path.join(a.build_dir, "dpdk_apps", "heartwired")
    ctx.heartwirectl = os.path.join(a.build_dir, "dpdk_apps", "heartwirectl")
    ctx.probe = os.path.join(a.build_dir, "dpdk_apps", "heartwire-failover-probe")
    ctx.procs = Procs(a.pidfile)
    ctx.settle_timeout = 6.0 if q else 15.0
    ctx.settle_s = a.settle_ms / 1000
    ctx.engine_nice = a.engine_nice
    ctx.idle = a.idle
    ctx.toml_sets = toml_sets
    ctx.warmup_ms = a.warmup_ms
    ctx.timing = Timing()
    ctx.sched_seen = set()
    ctx.interleave = not a.no_interleave
    ctx.dir = tempfile.mkdtemp(prefix=f"{a.prefix}-")
    # One group key for the pair (mode 0600, as heartwired demands).
    ctx.key_file = os.path.join(ctx.dir, "group.key")
    fd = os.open(ctx.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as kf:
        kf.write(f"1 {os.urandom(32).hex()} send\n")
    hosts = ["a", "b", "client"] + (["ka", "kb"] if do_ka else [])
    ctx.net = Net(a.prefix, hosts)
    os.makedirs(a.results, exist_ok=True)
    now = datetime.datetime.now().astimezone()
    stamp = now.strftime("%Y-%m-%d %H:%M %Z")
    head, dirty = git_info()
    src, built = build_info(a.build_dir)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    samples, soak_rows, hist_rows = [], [], []
    load_before = open("/proc/loadavg").read().split()[:3]
    netem = netem_available(a.prefix)
    started = time.monotonic()
    interrupted = False
    phases = {}
    try:
        ctx.linkset = build_linkset(ctx.dir)
        ctx.net.create()
        log(f"namespaces {', '.join(ctx.net.made)}; work dir {ctx.dir}")
        if not netem:
            log("netem: not available on this kernel (CONFIG_NET_SCH_NETEM not set): the soak has no link jitter")
        if not a.no_soak:
            t = time.monotonic()
            soak_phase(ctx, soak_settings, soak_seconds, (False,) if a.no_hog else (False, True), soak_rows,
                       hist_rows)
            phases["soak"] = time.monotonic() - t
        if do_hw or do_ka:
            t = time.monotonic()
            failover_phase(ctx, cells if do_hw else [], kinds if do_hw else [], injections,
                           ka_kinds if do_ka else [], ka_injections, a.advert, samples)
            phases["failover"] = time.monotonic() - t
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up, writing what was measured")
    finally:
        ctx.procs.stop_all()
        ctx.net.destroy()
        subprocess.run(f"rm -rf /var/run/dpdk/{a.prefix}* /dev/hugepages/{a.prefix}*", shell=True)
        if os.environ.get("HWB_KEEP_LOGS"):
            log(f"logs kept in {ctx.dir}")
        else:
            for f in os.listdir(ctx.dir):
                if f.endswith(".log") or f.endswith(".toml") or f.endswith(".conf"):
                    shutil.copy(os.path.join(ctx.dir, f), a.results)
            shutil.rmtree(ctx.dir, ignore_errors=True)

    # ---- CSVs
    write_csv(os.path.join(a.results, "samples.csv"), samples, SAMPLE_FIELDS)
    rows, attempts = summarize(samples)
    write_csv(os.path.join(a.results, "summary.csv"), rows)
    comp = comparison(rows)
    write_csv(os.path.join(a.results, "comparison.csv"), comp)
    write_csv(os.path.join(a.results, "soak.csv"), soak_rows)
    write_csv(os.path.join(a.results, "soak_loop_gaps.csv"), hist_rows)
    load_after = open("/proc/loadavg").read().split()[:3]
    elapsed = time.monotonic() - started
    with open(os.path.join(a.results, "run.txt"), "w") as f:
        f.write(f"run {stamp}\nargs {' '.join(sys.argv[1:])}\nloadavg_before {' '.join(load_before)}\n"
                f"loadavg_after {' '.join(load_after)}\nnetem {'yes' if netem else 'no'}\n")

    # ---- report
    rep = Report()
    rep.line(f"==== heartwire failover benchmark, {now.isoformat(timespec='seconds')}, commit {head}"
             f"{f' + {dirty} uncommitted file(s)' if dirty else ''}, {mode} mode"
             f"{' (INTERRUPTED)' if interrupted else ''}, {elapsed / 60:.1f} min ====")
    same = src and os.path.realpath(src.split(" ")[0]) == REPO
    rep.line(f"binaries: {a.build_dir} (source {src or '?'}{'' if not src or same else ', not this checkout'}"
             f", heartwired built {built})")
    try:
        rt = open("/proc/sys/kernel/sched_rt_runtime_us").read().strip()
    except OSError:
        rt = "?"
    rep.line(f"machine: {os.cpu_count()} CPUs, kernel {os.uname().release}, load average before "
             f"{' '.join(load_before)}, after {' '.join(load_after)}; sched_rt_runtime_us {rt}")
    rep.line(f"heartwired: idle = {ctx.idle}; "
             + (f"--set {' '.join(a.set)}" if a.set else "scheduling and protocol at the daemon's defaults")
             + (f"; nice {a.engine_nice}" if a.engine_nice else "")
             + f"; poll lcore sched as reported: {', '.join(sorted(ctx.sched_seen)) or 'not reported'}"
             + "; node a on core 0, node b on core 1 (taskset; EAL -l 0 / -l 1); keepalived the same")
    if samples:
        rep.line(f"failover: {', '.join(cell_name(dict(c, system='heartwire')) for c in cells) if do_hw else 'no heartwire'}"
                 + ((f"; keepalived VRRPv3 advert_int {a.advert} s, VIP {KA_VIP}, "
                     + ("alternating with heartwire (both pairs up throughout)" if ctx.interleave
                        else "after heartwire, its pair stopped"))
                    if do_ka else "; no keepalived"))
        rep.line("client: heartwire-failover-probe, ICMP echo every 100 us, kernel receive timestamps; "
                 "failure = kill() for SIGKILL/SIGSTOP, the veth's ioctl for link down"
                 + ("" if ctx.linkset else " (no helper: from before `ip link` was spawned)"))
        print_failover(rep, rows, attempts, kinds)
        stopped = [s for s in samples if s["kind"] == "stop" and s["system"] == "heartwire" and s["valid"]]
        if stopped:
            ok = [s for s in stopped if s["resumed_role"] not in ("primary", "unreachable", "")]
            rep.line(f"\nSIGSTOPped heartwire primaries after SIGCONT (valid injections): {len(ok)}/{len(stopped)} "
                     f"stepped down within 500 ms"
                     + (f" (median {sorted(float(s['stepdown_ms']) for s in ok)[len(ok) // 2]:.0f} ms)" if ok else ""))
        hwv = [s for s in samples if s["system"] == "heartwire" and s["valid"]]
        flapped = [s for s in hwv if str(s.get("mon_flaps", "")) not in ("", "0")]
        wide = [s for s in hwv if s["detect_us"] != "" and
                float(s["detect_us"]) > 1.5 * int(s["interval_us"]) * int(s["miss"])]
        if flapped or wide:
            rep.line(f"heartwire valid injections whose monitor had itself been replaced while alive earlier (flap "
                     f"damping, protocol.flap_hold_ms, widens its window): {len(flapped)}/{len(hwv)}; whose engine "
                     f"detection exceeded 1.5x the window (damping or stall compensation): {len(wide)}/{len(hwv)}")
        reasons = {}
        for s in samples:
            if not s["valid"]:
                reasons[(s["system"], s["reason"][:80])] = reasons.get((s["system"], s["reason"][:80]), 0) + 1
        if reasons:
            rep.line("\ninvalid injections (kept in samples.csv, left out of the percentiles):")
            for (system, why), n in sorted(reasons.items(), key=lambda kv: -kv[1]):
                rep.line(f"  {n:4} {system}: {why}")
    if soak_rows:
        print_soak(rep, soak_rows, soak_seconds, netem)
    # Where the time went, and what the standard run would take at this rate.
    rep.line(f"\ntime: {elapsed / 60:.1f} min in all; " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in phases.items()))
    for k in sorted(ctx.timing.t):
        rep.line(f"  {k:40} {ctx.timing.t[k]:8.1f} s over {ctx.timing.n[k]:5} = {ctx.timing.t[k] / ctx.timing.n[k]:6.2f} s each")
    n_inj = len(samples)
    if n_inj and "failover" in phases:
        per = phases["failover"] / n_inj
        rep.line(f"  failover: {per:.2f} s per injection (both systems, interleaved); at that rate 3 kinds x 200 x 2 "
                 f"systems = {per * 1200 / 60:.0f} min, plus 2 x 10-min soaks (~{2 * 10.3:.0f} min)")
    rep.line(f"\n{n_inj} injections, {sum(1 for s in samples if not s['valid'])} invalid; results in {a.results}: "
             "summary.txt, samples.csv, summary.csv, comparison.csv, soak.csv, soak_loop_gaps.csv, logs")
    png = os.path.join(a.results, "failover.png")
    if samples and plot(samples, a.results, png, stamp):
        rep.line(f"plot: {png}")
    rep.write(os.path.join(a.results, "summary.txt"))


if __name__ == "__main__":
    main()
