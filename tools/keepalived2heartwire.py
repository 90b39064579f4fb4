#!/usr/bin/env python3
"""Convert one node's keepalived.conf (its VRRP part) into a heartwired configuration.

The common subset maps one to one (docs/keepalived.md has the whole table):

  vrrp_instance            -> [[group]] (virtual_router_id -> id, priority, nopreempt,
                              preempt_delay; interface -> the DPDK port (the first
                              instance's) or the group's kernel interface)
  virtual_ipaddress        -> the group's primary addresses (IPv4 and IPv6)
  vrrp_sync_group          -> its instances become one group: they move together
  track_script/vrrp_script -> [[health]] kind "script" (interval, rise, fall)
  track_interface          -> [[health]] kind "interface"
  track_process            -> [[health]] kind "process"
  notify_master/backup/fault/stop, notify
                           -> hooks, through small wrapper scripts written next to the
                              configuration (keepalived runs them through /bin/sh; notify
                              gets keepalived's own arguments: INSTANCE name state priority)
  garp_master_delay/repeat -> [garp]

keepalived has no monitor address; heartwire's monitor holds one (the node that will take
over). Give it per instance (--monitor VRID=ADDR[/LEN]) or let --monitor-auto pick the
highest host address of the instance's first subnet that no instance uses.

Whatever would change behaviour and has no heartwire equivalent (a script or interface
weight, unicast peers, LVS virtual servers, static routes and rules, include files, ...)
is refused: the converter exits 3 and names each such key with its line. Cosmetic keys
(mail alerts, labels) are dropped with a warning.

usage: keepalived2heartwire.py keepalived.conf -o OUTDIR [--node-name N] [--node-id ID]
           [--monitor VRID=ADDR ...] [--monitor-auto] [--install-dir DIR] [--key-file PATH]
exit: 0 converted, 3 refused (unsupported keys named), 2 unreadable input, 64 usage.
"""
import argparse
import ipaddress
import os
import re
import shlex
import socket
import sys
import zlib

# Dropped with a warning: they change nothing about who holds the address.
COSMETIC = {
    "notification_email", "notification_email_from", "smtp_server", "smtp_connect_timeout", "smtp_alert",
    "lvs_id", "enable_traps", "label", "script_user", "enable_script_security", "vrrp_skip_check_adv_addr",
    "vrrp_strict", "advert_int", "dont_track_primary", "state", "vrrp_garp_interval", "vrrp_gna_interval",
    "timeout", "debug",
}


class Refused(Exception):
    pass


# ---------------------------------------------------------------- parsing

class Node:
    def __init__(self, words, line):
        self.words = words
        self.line = line
        self.children = None

    @property
    def key(self):
        return self.words[0]

    def find(self, key):
        return [c for c in (self.children or []) if c.key == key]

    def one(self, key):
        f = self.find(key)
        return f[0] if f else None


def tokenize(text):
    """Words with their line numbers; comments (# and !) dropped; quoted strings kept whole."""
    toks = []
    for n, raw in enumerate(text.splitlines(), start=1):
        i, line = 0, raw
        while i < len(line):
            c = line[i]
            if c in " \t\r":
                i += 1
            elif c in "#!":
                break
            elif c in "{}":
                toks.append((c, n))
                i += 1
            elif c == '"':
                j = line.find('"', i + 1)
                if j < 0:
                    j = len(line)
                toks.append(('"' + line[i + 1:j], n))
                i = j + 1
            else:
                j = i
                while j < len(line) and line[j] not in " \t\r{}\"":
                    j += 1
                toks.append((line[i:j], n))
                i = j
        toks.append(("\n", n))
    return toks


def parse(text):
    toks = tokenize(text)
    root = Node(["<root>"], 0)
    root.children = []
    stack = [root]
    words, line = [], 0
    for t, n in toks:
        if t == "\n":
            if words:
                stack[-1].children.append(Node(words, line))
                words = []
        elif t == "{":
            node = Node(words or ["<anonymous>"], line or n)
            node.children = []
            stack[-1].children.append(node)
            stack.append(node)
            words = []
        elif t == "}":
            if words:
                stack[-1].children.append(Node(words, line))
                words = []
            if len(stack) == 1:
                raise Refused("line %d: '}' without a block" % n)
            stack.pop()
        else:
            if not words:
                line = n
            words.append(t[1:] if t.startswith('"') else t)
    if len(stack) != 1:
        raise Refused("line %d: block '%s' is not closed" % (stack[-1].line, stack[-1].key))
    return root


# ---------------------------------------------------------------- conversion

class Converter:
    def __init__(self, args):
        self.a = args
        self.refused = []
        self.warnings = []
        self.scripts = {}   # file name -> content
        self.taken = set()  # monitor addresses picked so far
        self.all_addresses = set()
        self.monitors = {}  # vrid -> address string
        for m in args.monitor or []:
            vrid, _, addr = m.partition("=")
            if not vrid.isdigit() or not addr:
                raise SystemExit("keepalived2heartwire: --monitor wants VRID=ADDR, not %r" % m)
            self.monitors[int(vrid)] = addr

    def refuse(self, node, why=""):
        self.refused.append("line %d: %s%s" % (node.line, " ".join(node.words[:3]), (": " + why) if why else ""))

    def warn(self, node, why):
        self.warnings.append("line %d: %s: %s" % (node.line, node.key, why))

    def path(self, *parts):
        return os.path.join(self.a.install_dir, *parts)

    def wrapper(self, name, body):
        self.scripts[name] = "#!/bin/sh\n# Written by keepalived2heartwire from keepalived.conf.\n" + body
        return self.path(name)

    def convert(self, root):
        self.global_defs = root.one("global_defs")
        scripts = {s.words[1]: s for s in root.find("vrrp_script") if len(s.words) > 1}
        instances = [i for i in root.find("vrrp_instance")]
        syncs = root.find("vrrp_sync_group")
        for top in root.children:
            if top.key not in ("global_defs", "vrrp_script", "vrrp_instance", "vrrp_sync_group"):
                self.refuse(top, "not a VRRP setting heartwire has (%s)" % {
                    "virtual_server": "load balancing: keep keepalived's LVS part, or ipvsadm",
                    "virtual_server_group": "load balancing",
                    "static_routes": "routes: the system's network configuration",
                    "static_rules": "policy rules: the system's network configuration",
                    "static_ipaddress": "addresses outside VRRP: the system's network configuration",
                    "include": "split configurations: convert the whole text at once",
                }.get(top.key, "unknown to the converter"))
        if self.global_defs:
            for c in self.global_defs.children or []:
                if c.key == "router_id":
                    continue
                if c.key in COSMETIC:
                    self.warn(c, "dropped (alerts are heartwire's hooks and logs)")
                else:
                    self.refuse(c)
        if not instances:
            raise Refused("no vrrp_instance: nothing to convert")

        # A sync group moves as one: its instances become one heartwire group.
        member_of = {}
        for sg in syncs:
            grp = sg.one("group")
            names = [w for c in (grp.children if grp else []) for w in c.words]
            for c in sg.children or []:
                if c.key not in ("group",) and not c.key.startswith("notify"):
                    self.refuse(c, "in vrrp_sync_group")
            for n in names:
                member_of[n] = sg
        by_name = {i.words[1] if len(i.words) > 1 else "": i for i in instances}
        units, seen = [], set()
        for inst in instances:
            name = inst.words[1] if len(inst.words) > 1 else ""
            if name in seen:
                continue
            sg = member_of.get(name)
            members = [by_name[n] for n in (w for c in (sg.one("group").children or []) for w in c.words)
                       if n in by_name] if sg else [inst]
            seen.update(m.words[1] for m in members)
            units.append((members, sg))

        self.port_if = self.first(instances[0], "interface")
        if not self.port_if:
            self.refuse(instances[0], "no interface")
        groups, health, hooks = [], {}, {}
        for members, sg in units:
            groups.append(self.group(members, sg, scripts, health, hooks))
        for (members, _), g in zip(units, groups):  # once every instance's addresses are known
            if g["v4"] or g["v6"]:
                g["monitor"] = self.monitor_of(members[0], g)
        if self.refused:
            return None
        return self.toml(groups, health, hooks)

    def first(self, inst, key):
        n = inst.one(key)
        return n.words[1] if n and len(n.words) > 1 else None

    def group(self, members, sg, scripts, health, hooks):
        lead = members[0]
        vrid = self.first(lead, "virtual_router_id")
        prio = self.first(lead, "priority") or "100"
        iface = self.first(lead, "interface")
        g = {"id": int(vrid) if vrid and vrid.isdigit() else 0, "name": lead.words[1] if len(lead.words) > 1 else "?",
             "priority": int(prio) if prio.isdigit() else 100, "v4": [], "v6": [], "health": [], "preempt": True,
             "interface": iface}
        if not g["id"]:
            self.refuse(lead, "no virtual_router_id")
        for inst in members:
            if self.first(inst, "interface") != iface:
                self.refuse(inst, "a sync group across interfaces (%s, %s)" % (iface, self.first(inst, "interface")))
            for c in inst.children or []:
                self.instance_key(inst, c, g, scripts, health)
        handlers = [sg] if sg else []
        handlers += members
        for h in handlers:
            for c in h.children or []:
                if c.key in ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify"):
                    hooks.setdefault(c.key, []).append((g, " ".join(c.words[1:])))
        if not g["v4"] and not g["v6"]:
            self.refuse(lead, "no virtual_ipaddress")
        return g

    def instance_key(self, inst, c, g, scripts, health):
        k = c.key
        if k in ("interface", "virtual_router_id", "priority", "notify_master", "notify_backup", "notify_fault",
                 "notify_stop", "notify"):
            return
        if k == "nopreempt":
            g["preempt"] = False
        elif k == "preempt_delay":
            g["preempt_delay_ms"] = int(float(c.words[1]) * 1000) if len(c.words) > 1 else 0
        elif k == "garp_master_delay":
            g["garp_delay"] = c.words[1] if len(c.words) > 1 else None
        elif k == "garp_master_repeat":
            g["garp_repeat"] = int(c.words[1]) if len(c.words) > 1 and c.words[1].isdigit() else None
        elif k == "authentication":
            self.warn(c, "keepalived's cleartext password is replaced by heartwire's signed frames (auth.key_file)")
        elif k in ("virtual_ipaddress",):
            for a in c.children or []:
                self.address(a, g)
        elif k == "track_script":
            for t in c.children or []:
                s = scripts.get(t.words[0])
                if not s:
                    self.refuse(t, "no vrrp_script of that name")
                    continue
                if "weight" in t.words:
                    self.refuse(t, "a weight (heartwire moves the group on a failed check; it does not lower priority)")
                self.script_check(s, health, g)
        elif k == "track_interface":
            for t in c.children or []:
                if "weight" in t.words:
                    self.refuse(t, "a weight")
                self.add_check(health, g, "if-" + t.words[0], "interface", t.words[0], 100, 1, 1)  # keepalived reacts at once
        elif k == "track_process":
            for t in c.children or []:
                if "weight" in t.words:
                    self.refuse(t, "a weight")
                self.add_check(health, g, "proc-" + t.words[0], "process", t.words[0], 1000, 1, 1)
        elif k in COSMETIC:
            self.warn(c, "dropped")
        else:
            self.refuse(c, "in vrrp_instance %s" % g["name"])

    def address(self, a, g):
        spec = a.words[0]
        rest = a.words[1:]
        i = 0
        while i < len(rest):
            if rest[i] == "label" and i + 1 < len(rest):
                self.warn(a, "label %s dropped" % rest[i + 1])
                i += 2
            elif rest[i] == "dev" and i + 1 < len(rest):
                if rest[i + 1] != g["interface"]:
                    self.refuse(a, "an address on another device (%s) than its instance's" % rest[i + 1])
                i += 2
            else:
                self.refuse(a, "address option %s" % rest[i])
                break
        try:
            net = ipaddress.ip_interface(spec if "/" in spec else spec + ("/32" if ":" not in spec else "/128"))
        except ValueError:
            self.refuse(a, "not an address")
            return
        if net.ip in {ipaddress.ip_interface(x).ip for x in g["v4"] + g["v6"]}:
            self.warn(a, "listed twice: kept once")
            return
        (g["v4"] if net.version == 4 else g["v6"]).append(str(net))
        self.all_addresses.add(net.ip)

    def script_check(self, s, health, g):
        sc = s.one("script")
        body = " ".join(sc.words[1:]) if sc and len(sc.words) > 1 else None  # unquoted: every word is the command
        if body is None:
            self.refuse(s, "no script")
            return
        for c in s.children or []:
            if c.key == "weight" and len(c.words) > 1 and c.words[1] not in ("0",):
                self.refuse(c, "vrrp_script %s: a weight" % s.words[1])
            elif c.key not in ("script", "interval", "weight", "fall", "rise", "timeout", "user"):
                self.refuse(c, "in vrrp_script %s" % s.words[1])
            elif c.key == "user":
                self.warn(c, "heartwired runs checks as itself")
        num = lambda k, d: float(self.first(s, k)) if self.first(s, k) and re.match(r"^[0-9.]+$", self.first(s, k)) else d
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", s.words[1])[:32]
        target = self.wrapper("checks/%s.sh" % name, body + "\n")
        self.add_check(health, g, name, "script", target, int(num("interval", 1) * 1000), int(num("rise", 1)),
                       int(num("fall", 1)))

    def add_check(self, health, g, name, kind, target, interval, rise, fall):
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:32]
        health.setdefault(name, {"kind": kind, "target": target, "interval_ms": max(10, interval),
                                 "rise": max(1, rise), "fall": max(1, fall)})
        if name not in g["health"]:
            g["health"].append(name)

    def monitor_of(self, lead, g):
        if g["id"] in self.monitors:
            return self.monitors[g["id"]]
        if not self.a.monitor_auto:
            self.refuse(lead, "no monitor address: give --monitor %d=ADDR (or --monitor-auto)" % g["id"])
            return None
        used = self.all_addresses | self.taken
        first = ipaddress.ip_interface((g["v4"] or g["v6"])[0])
        # A keepalived address without a length is a /32 (/128) on an interface whose own
        # subnet keepalived never names: the segment is taken to be its /24 (/64).
        plen = first.network.prefixlen
        seg = first.network if plen < (31 if first.version == 4 else 127) else \
            ipaddress.ip_interface("%s/%d" % (first.ip, 24 if first.version == 4 else 64)).network
        # The highest host address no instance uses, below the segment's last (.254 on a /24
        # is where routers sit; so is .1, never reached from the top).
        cand = seg.broadcast_address - 2
        while (cand in used) and cand > seg.network_address + 2:
            cand -= 1
        if cand in used or cand <= seg.network_address:
            self.refuse(lead, "--monitor-auto: no spare address in %s; give --monitor %d=ADDR" % (seg, g["id"]))
            return None
        self.taken.add(cand)
        self.warnings.append("group %d: monitor address %s/%d chosen by --monitor-auto in %s: check nothing else uses it" %
                             (g["id"], cand, plen, seg))
        return "%s/%d" % (cand, plen)

    def notify_scripts(self, hooks, groups):
        out = {}
        state = {"notify_master": "on_primary", "notify_backup": "on_standby", "notify_fault": "on_fault"}

        def arms(entries):
            # One case arm per group: every command given for it (a sync group's own and its
            # members') runs, in order.
            by = {}
            for g, cmd in entries:
                by.setdefault(g["id"], []).append(cmd)
            return "".join("    %d) %s ;;\n" % (gid, "; ".join(cmds)) for gid, cmds in by.items())

        # notify_master & co.: on_primary <epoch> <group id> -> the group's commands.
        for k, hook in state.items():
            if k in hooks:
                out[hook] = self.wrapper("hooks/%s.sh" % hook, 'case "$2" in\n%sesac\nexit 0\n' % arms(hooks[k]))
                if k == "notify_backup":  # a keepalived BACKUP is heartwire's monitor or standby
                    out["on_monitor"] = out[hook]
        # notify and notify_stop: notify <role> <epoch> <node> <group id> -> keepalived's
        # "INSTANCE name state priority". Discovery's passing roles (probing) call nothing;
        # draining is still MASTER, fenced a BACKUP; STOP when heartwired stops (its
        # machines go back to init then).
        if "notify" in hooks or "notify_stop" in hooks:
            body = ('case "$1" in\n    primary|draining) st=MASTER ;;\n    monitor|standby|fenced) st=BACKUP ;;\n'
                    '    fault) st=FAULT ;;\n    init) st=STOP ;;\n    *) exit 0 ;;\nesac\ncase "$4" in\n')
            for g in groups:
                line = ""
                for c in [c for gg, c in hooks.get("notify", []) if gg is g]:
                    line += '%s INSTANCE %s "$st" %d; ' % (c, shlex.quote(g["name"]), g["priority"])
                for c in [c for gg, c in hooks.get("notify_stop", []) if gg is g]:
                    line += 'if [ "$st" = STOP ]; then %s; fi; ' % c
                if line:
                    body += "    %d) %s;;\n" % (g["id"], line)
            body += "esac\nexit 0\n"
            out["notify"] = self.wrapper("hooks/notify.sh", body)
        return out

    def toml(self, groups, health, hooks):
        q = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        rid = None
        if self.global_defs:
            rid = self.first(self.global_defs, "router_id")
        # keepalived's own default is the host name; so is ours. Two nodes converted from
        # copies of one file would otherwise share an id (heartwire then lets neither claim).
        name = self.a.node_name or re.sub(r"[^A-Za-z0-9_.-]", "_", rid or socket.gethostname())[:32]
        node_id = self.a.node_id or (zlib.crc32(name.encode()) or 1)
        if not self.a.node_id:
            self.warnings.append("node id %d derived from the name %r: give --node-id, unique in the cluster" % (node_id, name))
        lines = ["# heartwired configuration converted from keepalived.conf by keepalived2heartwire.",
                 "# Review it, then: heartwired --check -c <this file>. docs/keepalived.md explains each choice.",
                 "", "[node]", "name = %s" % q(name), "id = %d" % node_id, "",
                 "[auth]", "key_file = %s" % q(self.a.key_file), "",
                 "[port]",
                 "# The first instance's interface carries the heartbeats (af_xdp, heartwire's steering",
                 "# program) and the kernel keeps serving its addresses (shared mode).",
                 "device = %s" % q("net_af_xdp0,iface=%s" % self.port_if), 'mode = "shared"',
                 "kernel_interface = %s" % q(self.port_if), ""]
        delays = [g.get("garp_delay") for g in groups if g.get("garp_delay")]
        repeats = [g.get("garp_repeat") for g in groups if g.get("garp_repeat")]
        if repeats:
            lines += ["[garp]", "repeat = %d" % max(repeats), ""]
        preempt_delay = max([g.get("preempt_delay_ms", 0) for g in groups] + [0])
        lines += ["[protocol]", "preempt_delay_ms = %d" % preempt_delay, ""]
        if delays:
            self.warnings.append("garp_master_delay: heartwire refreshes its GARPs every garp.refresh_ms instead")
        hk = self.notify_scripts(hooks, groups)
        if hk:
            lines += ["[hooks]"] + ["%s = %s" % (k, q(v)) for k, v in sorted(hk.items())] + [""]
        for g in groups:
            prim = g["v4"] + g["v6"]
            lines += ["# vrrp_instance %s" % g["name"], "[[group]]", "id = %d" % g["id"], "name = %s" % q(g["name"]),
                      "primary = [%s]" % ", ".join(q(a) for a in prim),
                      "monitor = %s" % q(g["monitor"]), "priority = %d" % g["priority"],
                      "preempt = %s" % ("true" if g["preempt"] else "false"),
                      "health = [%s]" % ", ".join(q(h) for h in g["health"])]
            if g["interface"] != self.port_if:
                lines.append("interface = %s" % q(g["interface"]))
            lines.append("")
        for n, h in health.items():
            lines += ["[[health]]", "name = %s" % q(n), "kind = %s" % q(h["kind"]), "target = %s" % q(h["target"]),
                      "interval_ms = %d" % h["interval_ms"], "rise = %d" % h["rise"], "fall = %d" % h["fall"], ""]
        return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("conf")
    ap.add_argument("-o", "--out", required=True, help="directory for heartwired.toml and its scripts")
    ap.add_argument("--node-name")
    ap.add_argument("--node-id", type=int)
    ap.add_argument("--monitor", action="append", help="VRID=ADDR[/LEN]: the instance's monitor address")
    ap.add_argument("--monitor-auto", action="store_true")
    ap.add_argument("--install-dir", help="where the scripts will live (default: OUTDIR)")
    ap.add_argument("--key-file", default="/etc/heartwire/group.key")
    try:
        a = ap.parse_args()
    except SystemExit as e:
        sys.exit(0 if e.code == 0 else 64)
    a.install_dir = os.path.abspath(a.install_dir or a.out)
    try:
        text = open(a.conf, encoding="utf-8", errors="replace").read()
    except OSError as e:
        print("keepalived2heartwire: %s" % e, file=sys.stderr)
        sys.exit(2)
    conv = Converter(a)
    try:
        out = conv.convert(parse(text))
    except Refused as e:
        conv.refused.append(str(e))
        out = None
    for w in conv.warnings:
        print("keepalived2heartwire: warning: %s" % w, file=sys.stderr)
    if out is None:
        print("keepalived2heartwire: %s: not converted; unsupported:" % a.conf, file=sys.stderr)
        for r in conv.refused:
            print("  %s" % r, file=sys.stderr)
        sys.exit(3)
    os.makedirs(a.out, exist_ok=True)
    for rel, body in conv.scripts.items():
        p = os.path.join(a.out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(body)
        os.chmod(p, 0o755)
    with open(os.path.join(a.out, "heartwired.toml"), "w") as f:
        f.write(out)
    print("%s/heartwired.toml: %d group(s), %d script(s)" % (a.out, out.count("[[group]]"), len(conv.scripts)))


if __name__ == "__main__":
    main()
