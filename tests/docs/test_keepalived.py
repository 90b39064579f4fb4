#!/usr/bin/env python3
"""keepalived2heartwire on keepalived's own sample configurations, as Debian ships them
(the keepalived package's /usr/share/doc/keepalived/samples, unpacked by the test
command's setup, never installed: nothing of keepalived runs), and on small configurations
of the test's own for each mapping.

- every sample in the supported subset converts, and `heartwired --check` accepts it;
- every other sample is refused (exit 3) with its unsupported keys named by line;
- the mappings: addresses, priority, nopreempt, preempt_delay, a sync group as one group,
  track_script/interface/process as health checks, the notify wrappers run by sh and
  called with heartwire's arguments give the keepalived scripts keepalived's arguments.

usage: test_keepalived.py BUILD_ROOT SOURCE_ROOT
"""
import atexit
import glob
import os
import subprocess
import sys
import tempfile
import tomllib

build, src = sys.argv[1], sys.argv[2]
conv = os.path.join(src, "tools", "keepalived2heartwire.py")
heartwired = os.path.join(build, "dpdk_apps", "heartwired")
failures = []

# The samples that use only what heartwire has; the rest use LVS, routes, rules, weights,
# per-address devices, conditional configuration or a sync group across interfaces.
SUPPORTED = {"keepalived.conf.vrrp", "keepalived.conf.vrrp.scripts"}


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, **kw)


def convert(conf_path, out, *extra):
    return run(sys.executable, conv, conf_path, "-o", out, "--node-name", "n1", "--node-id", "1", *extra)


# --check looks for the interfaces the file names: the samples' eth0 and eth1 exist in a
# namespace of the test's own (a veth pair), created and removed here.
NS = "hw%dnkeepalived" % os.getpid()


def check(out):
    return run("ip", "netns", "exec", NS, heartwired, "--check", "-c", os.path.join(out, "heartwired.toml"))


def make_ns():
    for cmd in (["ip", "netns", "add", NS], ["ip", "-n", NS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"],
                ["ip", "-n", NS, "link", "set", "eth0", "up"], ["ip", "-n", NS, "link", "set", "eth1", "up"]):
        r = run(*cmd)
        if r.returncode != 0:
            fail("%s: %s" % (" ".join(cmd), r.stderr.strip()))


def samples(work):
    # Debian's keepalived package, unpacked by scripts/setup.sh (hw_fetch), never installed.
    x = os.path.join(build, "fetched", "keepalived")
    if not os.path.isdir(x):
        fail("%s missing: scripts/test.sh fetches it (hw_fetch)" % x)
        return []
    found = sorted(glob.glob(os.path.join(x, "usr/share/doc/keepalived/samples/keepalived.conf.*")))
    found += glob.glob(os.path.join(x, "etc/keepalived/keepalived.conf.sample"))
    return found


atexit.register(lambda: run("ip", "netns", "del", NS))
make_ns()
with tempfile.TemporaryDirectory() as work:
    got = samples(work)
    if len(got) < 20:
        fail("only %d keepalived samples found" % len(got))
    converted = set()
    for i, path in enumerate(got):
        name = os.path.basename(path)
        out = os.path.join(work, "out%d" % i)
        r = convert(path, out, "--monitor-auto")
        if r.returncode == 0:
            converted.add(name)
            c = check(out)
            if c.returncode != 0:
                fail("%s: converted, but heartwired --check says: %s" % (name, (c.stdout + c.stderr).strip()[:500]))
            else:
                print("converted %-40s %s" % (name, r.stdout.strip()))
        elif r.returncode == 3:
            named = [ln for ln in r.stderr.splitlines() if ln.startswith("  line ")]
            if not named:
                fail("%s: refused without naming a key: %s" % (name, r.stderr[-300:]))
            else:
                print("refused   %-40s %d key(s), e.g. %s" % (name, len(named), named[0].strip()[:80]))
        else:
            fail("%s: exit %d: %s" % (name, r.returncode, r.stderr[-300:]))
    if converted != SUPPORTED & {os.path.basename(p) for p in got}:
        fail("converted %s, expected %s" % (sorted(converted), sorted(SUPPORTED)))

    # ---- the mappings, one small configuration each
    conf = os.path.join(work, "k.conf")
    rec = os.path.join(work, "rec.sh")
    log = os.path.join(work, "calls")
    with open(rec, "w") as f:
        f.write('#!/bin/sh\necho "$*" >> %s\n' % log)
    os.chmod(rec, 0o755)
    with open(conf, "w") as f:
        f.write("""
global_defs {
    router_id edge1
}
vrrp_script chk_app {
    script "%(rec)s check"
    interval 2
    rise 3
    fall 4
}
vrrp_sync_group G {
    group {
        VI_A
        VI_B
    }
    notify_master "%(rec)s sync-master"
}
vrrp_instance VI_A {
    interface eth0
    virtual_router_id 10
    priority 150
    nopreempt
    preempt_delay 5
    virtual_ipaddress {
        169.254.10.100/24
        fd00:6877::100/64
    }
    track_script {
        chk_app
    }
    track_interface {
        eth0
    }
    track_process {
        haproxy
    }
    notify "%(rec)s"
}
vrrp_instance VI_B {
    interface eth0
    virtual_router_id 11
    priority 150
    virtual_ipaddress {
        169.254.10.110/24
    }
}
vrrp_instance VI_C {
    interface eth0
    virtual_router_id 12
    priority 90
    virtual_ipaddress {
        169.254.10.120/24
    }
    notify_backup "%(rec)s c-backup"
}
""" % {"rec": rec})
    out = os.path.join(work, "m")
    r = convert(conf, out, "--monitor", "10=169.254.10.101/24", "--monitor", "12=169.254.10.121/24")
    if r.returncode != 0:
        fail("mapping config not converted: %s" % r.stderr)
    else:
        t = open(os.path.join(out, "heartwired.toml")).read()
        c = check(out)
        if c.returncode != 0:
            fail("mapping config: --check: %s" % (c.stdout + c.stderr))
        want = ['id = 10', 'primary = ["169.254.10.100/24", "169.254.10.110/24", "fd00:6877::100/64"]',
                'monitor = "169.254.10.101/24"', 'priority = 150', 'preempt = false', 'preempt_delay_ms = 5000',
                'health = ["chk_app", "if-eth0", "proc-haproxy"]', 'id = 12', 'priority = 90', 'preempt = true',
                'kind = "interface"', 'target = "eth0"', 'kind = "process"', 'target = "haproxy"',
                'interval_ms = 2000', 'rise = 3', 'fall = 4', 'kernel_interface = "eth0"']
        for w in want:
            if w not in t:
                fail("mapping config: %r not in the output:\n%s" % (w, t))
        if t.count("[[group]]") != 2:
            fail("the sync group's two instances are one group: %d groups" % t.count("[[group]]"))
        # The wrappers, called as heartwired calls them.
        env = dict(os.environ)
        calls = []

        cfg = tomllib.loads(t)
        paths = dict(cfg.get("hooks", {}))
        paths.update({h["name"]: h["target"] for h in cfg.get("health", []) if h["kind"] == "script"})

        def call(hook, *args):
            if os.path.exists(log):
                os.remove(log)
            if hook not in paths:
                return ""
            run(paths[hook], *args, env=env)
            return open(log).read().strip() if os.path.exists(log) else ""

        if call("notify", "primary", "7", "n1", "10") != "INSTANCE VI_A MASTER 150":
            fail("notify primary in group 10: %r" % call("notify", "primary", "7", "n1", "10"))
        if call("notify", "standby", "7", "n1", "10") != "INSTANCE VI_A BACKUP 150":
            fail("notify standby: %r" % call("notify", "standby", "7", "n1", "10"))
        if call("notify", "fault", "7", "n1", "10") != "INSTANCE VI_A FAULT 150":
            fail("notify fault")
        if call("notify", "probe_primary", "0", "n1", "10") != "":
            fail("discovery's passing roles call nothing")
        if call("notify", "init", "7", "n1", "10") != "INSTANCE VI_A STOP 150":
            fail("heartwired's stop is keepalived's STOP: %r" % call("notify", "init", "7", "n1", "10"))
        if call("on_primary", "7", "10") != "sync-master":
            fail("the sync group's notify_master on entering primary: %r" % call("on_primary", "7", "10"))
        if call("on_standby", "7", "12") != "c-backup" or call("on_monitor", "7", "12") != "c-backup":
            fail("notify_backup on entering standby and monitor")
        if call("on_standby", "7", "10") != "":
            fail("group 10 has no notify_backup")
        if call("chk_app") != "check":
            fail("the script check runs keepalived's script line")

    # ---- refused: each unsupported key named
    for text, key in [("vrrp_instance V { interface eth0\n virtual_router_id 1\n virtual_ipaddress { 169.254.10.1/24 }\n"
                       " track_script { s weight 5 }\n}\nvrrp_script s { script \"/bin/true\" }\n", "weight"),
                      ("vrrp_instance V { interface eth0\n virtual_router_id 1\n virtual_ipaddress { 169.254.10.1/24 }\n"
                       " unicast_peer { 169.254.10.2 }\n}\n", "unicast_peer"),
                      ("include /etc/keepalived/other.conf\n", "include"),
                      ("vrrp_instance V { interface eth0\n virtual_router_id 1\n virtual_ipaddress { 169.254.10.1/24 }\n}\n",
                       "no monitor address")]:
        with open(conf, "w") as f:
            f.write(text)
        r = convert(conf, os.path.join(work, "r"))
        if r.returncode != 3 or key not in r.stderr:
            fail("refusal of %s: exit %d, %s" % (key, r.returncode, r.stderr.strip()))

print("keepalived: %d problem(s)" % len(failures))
sys.exit(1 if failures else 0)
