#!/usr/bin/env python3
"""heartwire replicated state store benchmark (issue 10): started by run.sh; see bench/README.md.

A primary + monitor pair (the failover benchmark's topology and helpers: bench/failover/
failover.py's Net, Procs, HwNode, hw_inject) with one [[state]] store, and an application
(build/bench/state_bench) on the primary's host writing through the shared-memory client.
Node a runs on core 0, node b on core 1 (taskset, EAL -l 0 / -l 1); the application is pinned
where --app-core says. Phases:

  sync      synchronous write latency, one write outstanding, N writes, per configuration
            (pmd:idle:sched), measured in the application (put -> wait() returns); beside it
            the monitor's probe round trip during the same run: its status JSON's rtt_ns.last
            sampled every 10 ms, and its own rtt_ns p50/p99 (log2 buckets, since start)
  async     writes per second from one application thread, completion = applied on the
            primary; how fast the monitor's acknowledgements follow (the region header's
            replicated_seq)
  snapshot  a monitor joins a primary holding --snapshot-records records: sync_after_us from
            its status, records/s and MB/s
  detect    SIGKILL of the primary (failover.py's hw_inject: client GARP, engine detection and
            decision) at one window, alternating without and with a paced async write load
            (state_bench load) on the primary

Everything in namespaces <prefix>-{br,a,b,client}; only 169.254.10.0/24; every process by PID.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "failover"))
import failover as fo  # noqa: E402  (the failover benchmark's helpers)

CORE = fo.CORE  # a -> 0, b -> 1


def ctl(sock, line, timeout=2.0):
    """One request on a control socket; the answer text, or None."""
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall(line.encode() + b"\n")
        out = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            out.append(b)
        s.close()
        return b"".join(out).decode()
    except OSError:
        return None


def status(node):
    t = ctl(node.sock, "status json") if node.alive() else None
    try:
        return json.loads(t) if t else None
    except ValueError:
        return None


def store(st):
    return (st or {}).get("state", [{}])[0] if (st or {}).get("state") else {}


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    import math
    return sorted_vals[min(len(sorted_vals), max(1, math.ceil(q / 100 * len(sorted_vals)))) - 1]


def us(ns):
    return None if ns is None else round(ns / 1000, 1)


class StorePair(fo.HwPair):
    """A heartwire pair whose nodes both serve one [[state]] store named "app"."""

    def __init__(self, ctx, store_cfg, idle_b=None):
        super().__init__(ctx)
        self.store_cfg = store_cfg
        self.idle_b = idle_b  # node b's [engine] idle when it differs from a's

    def region(self, name):
        return f"/dev/shm/{self.ctx.prefix}-{name}-app"

    def start(self, cell, only=None):
        self.cell = cell
        for name, n in self.nodes.items():
            n.configure(cell)
            if name == "b" and self.idle_b:
                text = open(n.conf).read().replace(f'idle = "{self.ctx.idle}"', f'idle = "{self.idle_b}"', 1)
                open(n.conf, "w").write(text)
            s = dict(self.store_cfg, name="app", path=self.region(name))
            with open(n.conf, "a") as f:
                f.write("\n[[state]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in s.items()))
        # a first, so it becomes primary without a race on the discovery window.
        self.nodes["a"].start()
        if only != "a":
            time.sleep(0.3)
            self.nodes["b"].start()

    def stop(self):
        super().stop()
        for name in self.nodes:
            try:
                os.unlink(self.region(name))
            except FileNotFoundError:
                pass

    def wait_in_sync(self, timeout=20.0):
        """Both sides of the store say in_sync (and one is leader): (primary, monitor) or (None, None)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = {k: status(n) for k, n in self.nodes.items()}
            lead = [k for k, s in st.items() if store(s).get("side") == "leader" and store(s).get("in_sync")]
            fol = [k for k, s in st.items() if store(s).get("side") == "follower" and store(s).get("in_sync")]
            if len(lead) == 1 and len(fol) == 1:
                return lead[0], fol[0]
            time.sleep(0.05)
        return None, None


class RttSampler:
    """The monitor's newest probe round trip (status rtt_ns.last), every `period` s, stamped."""

    def __init__(self, node, period=0.01):
        self.node, self.period = node, period
        self.samples = []  # (wall_ns, last_rtt_ns, samples counter)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        last_n = None
        while not self.stop_ev.is_set():
            st = status(self.node)
            if st and "rtt_ns" in st:
                r = st["rtt_ns"]
                # Only a new probe's round trip counts (the same `last` twice is one sample).
                if r.get("samples") != last_n and r.get("last"):
                    self.samples.append((time.time_ns(), int(r["last"]), r.get("samples")))
                    last_n = r.get("samples")
            self.stop_ev.wait(self.period)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop_ev.set()
        self.t.join()

    def between(self, t0, t1):
        return sorted(v for t, v, _ in self.samples if t0 <= t <= t1)


def bench_cmd(ctx, core, *args):
    pin = ["taskset", "-c", str(core)] if core is not None else []
    return pin + [ctx.state_bench] + [str(a) for a in args]


def run_bench(ctx, core, *args, timeout=300):
    argv = bench_cmd(ctx, core, *args)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    ctx.timing.add(f"state_bench {args[0]}", time.monotonic() - t0)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line), r.stderr.strip()
    return None, (r.stderr or r.stdout).strip()[-400:]


def cell_of(pmd, window):
    iv, m = window
    return {"pmd": pmd, "engine": "run-to-completion", "interval_us": iv, "miss": m}


def with_engine(ctx, idle, sets):
    """Per-run engine knobs on top of the command line's --set list."""
    ctx.idle = idle
    ctx.toml_sets = list(ctx.base_sets) + list(sets)


# ------------------------------------------------------------------ phases

def epochs(*sts):
    return [(st or {}).get("epoch") for st in sts]


def took_over(before, leader, *others):
    """Whether a takeover came between `before` (the epochs of the leader and the others)
    and these statuses of theirs: an epoch moved, or the leader leads no more."""
    return epochs(leader, *others) != before or (leader or {}).get("role") != "primary"


def run_again(a, row, pair, changed, attempt, what):
    """A row with a takeover in it (a false one: the host stalled an engine past the window,
    and the roles swapped under the row) is logged and run again, up to --redo times; the
    last run is kept, marked if it had one too. True: run it again (the pair is stopped)."""
    if changed and attempt < a.redo:
        fo.log(what + ": running it again")
        row["redone"] += 1
        pair.stop()
        return True
    row["takeover_in_row"] = bool(changed)
    return False


def fill_sync_row(row, res, rtt, stp, stm, before):
    """A sync row's figures: the application's (res), the probe RTT sampled meanwhile (rtt),
    and the primary's and monitor's statuses after it against their counters before."""
    row.update({k: res[k] for k in ("writes", "timeouts", "refused", "degraded")})
    row.update({f"write_{k}_us": us(res[k]) for k in ("p50", "p90", "p99", "p99_9", "max", "mean")})
    row["writes_per_s"] = round(res["writes"] / (res["elapsed_ns"] / 1e9))
    if res.get("split"):
        row.update({f"{k}_us": us(res[k]) for k in ("taken_p50", "taken_p99", "replicated_p50", "replicated_p99")})
    row["rtt_sampled_n"] = len(rtt)
    row["rtt_sampled_p50_us"] = us(pct(rtt, 50))
    row["rtt_sampled_p99_us"] = us(pct(rtt, 99))
    r = (stm or {}).get("rtt_ns", {})
    row["rtt_engine_p50_us"] = us(r.get("p50"))
    row["rtt_engine_p99_us"] = us(r.get("p99"))
    sp = store(stp)
    al = sp.get("ack_latency_ns", {})
    for k in ("p50", "p99", "p99_9", "max", "mean"):
        row[f"engine_ack_{k}_us"] = us(al.get(k))
    row["engine_ack_samples"] = al.get("samples")
    row["repl_srtt_us"] = us(sp.get("rtt_ns"))
    row["retransmits"] = sp.get("sender", {}).get("retransmits")
    row["frames"] = sp.get("sender", {}).get("frames")
    if row["rtt_sampled_p99_us"] is not None:
        row["target_us"] = round(2 * row["rtt_sampled_p99_us"] + 10, 1)
        row["target_met"] = row["write_p99_us"] <= row["target_us"]
        if row.get("engine_ack_p99_us") is not None:
            row["engine_target_met"] = row["engine_ack_p99_us"] <= row["target_us"]
        row["target_p50_us"] = round(2 * row["rtt_sampled_p50_us"] + 10, 1)
    for k, s in (("primary", stp), ("monitor", stm)):
        g = (s or {}).get("loop_gaps", {})
        row[f"{k}_gaps_over_100us"] = g.get("over_100us")
        # During the row: the duty cycle's yields, the other sleeps (idle, or the
        # courtesy sleep after completions) and those a write's doorbell cut short.
        for c in ("yields", "idle_sleeps", "doorbell_wakes"):
            now_c, was_c = (s or {}).get("counters", {}).get("io_" + c), before[k].get("io_" + c)
            row[f"{k}_{c}"] = now_c - was_c if now_c is not None and was_c is not None else None


def sync_phase(ctx, a, configs, rows):
    for spec in configs:
        # pmd:idle:sched:app[:knob=v+knob=v]; idle "busy/adaptive" = node a busy, node b adaptive;
        # the knobs are [engine] keys for both nodes (e.g. yield_us=5+yield_period_us=50).
        pmd, idle, sched, app, *more = spec.split(":")
        sets = [("engine", "sched", f'"{sched}"')] if sched != "default" else []
        split, writes = 0, a.sync_writes
        for kv in (more[0].split("+") if more else []):
            k, _, v = kv.partition("=")
            if k == "split":  # not an engine knob: the application stamps when the engine took each write
                split = int(v)
                continue
            if k == "writes":  # not an engine knob: this row's write count
                writes = int(v)
                continue
            sets.append(("engine", k, fo.toml_raw(v)))
        idle_a, _, idle_b = idle.partition("/")
        with_engine(ctx, idle_a, sets)
        pair = StorePair(ctx, {"records": a.sync_records, "key_max": 16, "value_max": 16, "mode": "sync", "queue": 1024},
                         idle_b=idle_b or None)
        row = {"config": spec, "pmd": pmd, "idle": idle, "sched": sched, "app_core": app, "window": a.window, "redone": 0}
        t_row = time.monotonic()
        try:
            for attempt in range(1 + a.redo):
                # Node a (core 0) must be the primary: the idle policies and the application's core
                # are given per node. A false takeover at start-up can swap the roles: start again.
                # With the same idle policy on both nodes either may lead (memif's pair often
                # elects b): the application follows the primary's core.
                for _ in range(3):
                    pair.start(cell_of(pmd, ctx.window))
                    p, m = pair.wait_in_sync()
                    if p == "a" or (p and not idle_b):
                        break
                    fo.log(f"sync {spec}: primary is {p}, not a: starting the pair again")
                    pair.stop()
                if p != "a" and not (p and not idle_b):
                    row["error"] = "the store never reached sync with node a primary"
                    fo.log(f"sync {spec}: {row['error']}")
                    break
                P, M = pair.nodes[p], pair.nodes[m]
                core = CORE[p] if app == "primary" else CORE[m] if app == "monitor" else None
                row.update(primary=p, app_cpu=core if core is not None else "any")
                at_start = {"primary": status(P), "monitor": status(M)}
                before = {k: (st or {}).get("counters", {}) for k, st in at_start.items()}
                epochs_before = epochs(at_start["primary"], at_start["monitor"])
                with RttSampler(M) as rs:
                    res, err = run_bench(ctx, core, "sync", "--path", pair.region(p), "--writes", writes,
                                         "--warmup", 2000, "--keys", 4096, "--value-bytes", 16, "--max-seconds", a.sync_max_seconds, "--split", split,
                                         "--ladder", os.path.join(a.results, f"sync-ladder-{spec.replace(':', '-')}.csv"))
                stm, stp = status(M), status(P)
                # A takeover during the row (the host stalled the primary past the window: a
                # false one) swaps the roles, and the application is no longer beside the
                # primary's engine: the row measured something else. It is logged and run again.
                changed = took_over(epochs_before, stp, stm)
                if res is None:
                    row["error"] = f"state_bench: {err}"
                    break
                fill_sync_row(row, res, rs.between(res["wall_start_ns"], res["wall_end_ns"]), stp, stm, before)
                fo.log(f"sync {spec}: write p50 {row['write_p50_us']} p99 {row['write_p99_us']} p99.9 {row['write_p99_9_us']} "
                       f"max {row['write_max_us']} us; probe rtt p50 {row['rtt_sampled_p50_us']} p99 {row['rtt_sampled_p99_us']} us "
                       f"(n {row['rtt_sampled_n']}; engine {row['rtt_engine_p50_us']}/{row['rtt_engine_p99_us']}); "
                       f"timeouts {row['timeouts']} degraded {row['degraded']}")
                if run_again(a, row, pair, changed, attempt, f"sync {spec}: a takeover during the row (epochs {epochs_before} -> "
                             f"{epochs(stp, stm)}, degraded {row['degraded']})"):
                    continue
                break
        finally:
            pair.stop()
            ctx.timing.add("sync rows", time.monotonic() - t_row)
        rows.append(row)


def async_phase(ctx, a, rows):
    with_engine(ctx, a.async_idle, [])
    for app in a.async_app.split(","):
        pair = StorePair(ctx, {"records": 131072, "key_max": 16, "value_max": 16, "mode": "async", "queue": a.async_queue})
        row = {"pmd": "af_xdp", "idle": a.async_idle, "queue": a.async_queue, "app_core": app, "redone": 0}
        try:
            for attempt in range(1 + a.redo):
                pair.start(cell_of("af_xdp", ctx.window))
                p, m = pair.wait_in_sync()
                if not p:
                    row["error"] = "the store never reached sync"
                    break
                core = CORE[p] if app == "primary" else CORE[m] if app == "monitor" else None
                row["app_cpu"] = core if core is not None else "any"
                epochs_before = epochs(status(pair.nodes[p]), status(pair.nodes[m]))
                res, err = run_bench(ctx, core, "async", "--path", pair.region(p), "--writes", a.async_writes,
                                     "--keys", 65536, "--value-bytes", 16)
                stp, stm = status(pair.nodes[p]), status(pair.nodes[m])
                # A takeover during the run (a false one: the host stalled the primary past
                # the window) leaves the application writing to a node that no longer leads:
                # its last writes never complete there. Logged and run again.
                if run_again(a, row, pair, took_over(epochs_before, stp, stm), attempt,
                             f"async app {app}: a takeover during the run (epochs {epochs_before} -> {epochs(stp, stm)}; "
                             f"{'state_bench: ' + err if res is None else 'the run completed'})"):
                    continue
                if res is None:
                    row["error"] = f"state_bench: {err}"
                    break
                row.pop("error", None)
                row.update(res)
                sp = store(stp)
                row["retransmits"] = sp.get("sender", {}).get("retransmits")
                row["window_full"] = sp.get("sender", {}).get("window_full")
                row["frames"] = sp.get("sender", {}).get("frames")
                row["entries_sent"] = sp.get("sender", {}).get("entries")
                fo.log(f"async app {app}: {res['applied_per_s']:.0f} writes/s applied, {res['replicated_per_s']:.0f}/s "
                       f"replicated; acks follow by p50 {us(res['follow_p50_ns'])} us, max {us(res['follow_max_ns'])} us; "
                       f"last ack {us(res['replicated_after_applied_ns'])} us after the last write applied")
                break
        finally:
            pair.stop()
        rows.append(row)


def snapshot_phase(ctx, a, rows):
    with_engine(ctx, a.snapshot_idle, [])
    for vb in [int(v) for v in a.snapshot_values.split(",") if v]:
        n = a.snapshot_records
        pair = StorePair(ctx, {"records": n, "key_max": 16, "value_max": max(16, vb), "mode": "sync", "queue": 4096,
                               "log_mb": 8})
        row = {"records": n, "key_bytes": 9, "value_bytes": vb, "redone": 0}
        try:
            for attempt in range(1 + a.redo):
                pair.start(cell_of("af_xdp", ctx.window), only="a")  # b joins once a holds every record
                A, B = pair.nodes["a"], pair.nodes["b"]
                end = time.monotonic() + 15
                while time.monotonic() < end and (status(A) or {}).get("role") != "primary":
                    time.sleep(0.05)
                t = time.monotonic()
                res, err = run_bench(ctx, CORE["b"], "fill", "--path", pair.region("a"), "--records", n, "--value-bytes", vb)
                if res is None or not res.get("ok"):
                    row["error"] = f"fill: {err or res}"
                    break
                row["fill_s"] = round(res["elapsed_ns"] / 1e9, 2)
                end = time.monotonic() + 20
                while time.monotonic() < end and store(status(A)).get("records") != n:
                    time.sleep(0.05)
                fo.log(f"snapshot {vb} B values: {n} records written in {time.monotonic() - t:.1f} s; monitor joins")
                sta0 = status(A)
                B.start()
                end = time.monotonic() + 120
                sb, stb = {}, None
                while time.monotonic() < end:
                    stb = status(B)
                    sb = store(stb)
                    if sb.get("side") == "follower" and sb.get("in_sync") and sb.get("sync_after_us", -1) >= 0:
                        break
                    time.sleep(0.02)
                sta = status(A)
                sa = store(sta)
                cb = (stb or {}).get("counters", {})
                row["takeovers_held"], row["takeover_holds_answered"] = cb.get("takeovers_held"), cb.get("takeover_holds_answered")
                # A takeover during the join (a false one: the host stalled a's engine past the
                # window) hands the lead to the half-filled copy and restarts the walk the other
                # way: the row would time another transfer. It is logged and run again.
                changed = took_over(epochs(sta0), sta)
                if not sb.get("in_sync"):
                    row["error"] = "the monitor never reached sync"
                    break
                after = sb["sync_after_us"]
                recs = sb["receiver"]["snapshot_records"]
                payload = recs * (9 + vb)
                wire = recs * (12 + 9 + vb)  # entry header 12 B (replication.hpp) + key + value
                row.update(sync_after_ms=round(after / 1000, 1), snapshot_records=recs,
                           records_per_s=round(recs / (after / 1e6)), payload_mb_per_s=round(payload / after, 1),
                           entry_mb_per_s=round(wire / after, 1), frames=sa.get("sender", {}).get("frames"),
                           snapshots=sb["receiver"]["snapshots"], gaps=sb["receiver"]["gaps"],
                           rewinds=sa.get("sender", {}).get("chunk_rewinds"), records_on_monitor=sb.get("records"),
                           digest_equal=sa.get("digest") == sb.get("digest"))
                fo.log(f"snapshot {vb} B values: sync after {row['sync_after_ms']} ms, {recs} snapshot records, "
                       f"{row['records_per_s']} records/s, {row['payload_mb_per_s']} MB/s of keys+values, "
                       f"{row['snapshots']} snapshot(s), digests equal {row['digest_equal']}")
                if run_again(a, row, pair, changed, attempt, f"snapshot {vb} B values: a takeover during the join (a's epoch "
                             f"{epochs(sta0)} -> {epochs(sta)}, role {(sta or {}).get('role')}; records on a "
                             f"{sa.get('records')}, on b {sb.get('records')})"):
                    continue
                break
        finally:
            pair.stop()
        rows.append(row)


def detect_phase(ctx, a, rows, samples):
    with_engine(ctx, a.detect_idle, [])
    pair = StorePair(ctx, {"records": 131072, "key_max": 16, "value_max": 16, "mode": "async", "queue": 4096})
    cell = cell_of("af_xdp", ctx.window)
    pair.start(cell)
    paths = ",".join(pair.region(n) for n in ("a", "b"))
    load = None
    try:
        for i in range(2 * a.kills):
            arm = "load" if i % 2 else "idle"
            pair.join()
            if not pair.wait_in_sync(timeout=20)[0]:
                fo.log(f"  detect #{i}: the store did not reach sync in 20 s; injecting anyway")
            if arm == "load":
                load = ctx.procs.start(bench_cmd(ctx, None, "load", "--path", paths, "--rate", a.load_rate,
                                                 "--keys", 65536), os.path.join(ctx.dir, f"load-{i}.json"))
                time.sleep(0.3)  # the load reaches its rate, the monitor its steady acks
            st_before = {k: store(status(n)) for k, n in pair.nodes.items()}
            s = fo.hw_inject(ctx, pair, cell, "kill")
            s["arm"] = arm
            w = sum(x.get("sender", {}).get("writes", 0) for x in st_before.values())
            s["store_writes_before"] = w
            if load is not None:
                os.kill(load.pid, signal.SIGTERM)
                load.wait(timeout=5)
                ctx.procs.stop(load)
                try:
                    lj = json.loads(open(os.path.join(ctx.dir, f"load-{i}.json")).read().strip().splitlines()[-1])
                    s["load_per_s"] = lj.get("achieved_per_s")
                    s["load_queue_full"] = lj.get("queue_full")
                except (OSError, ValueError, IndexError):
                    s["load_per_s"] = ""
                load = None
            samples.append(s)
            fo.log(f"  kill #{i} ({arm}): valid {s['valid']} {s['reason']} garp {s['garp_us']} us, "
                   f"decision {s['decision_us']} us, detect {s['detect_us']} us"
                   + (f", load {s.get('load_per_s')}/s" if arm == "load" else ""))
    finally:
        if load is not None:
            ctx.procs.stop(load)
        pair.stop()
    for arm in ("idle", "load"):
        ss = [x for x in samples if x["arm"] == arm]
        v = [x for x in ss if x["valid"]]
        row = {"arm": arm, "injections": len(ss), "valid": len(v)}
        for m in ("garp_us", "decision_us", "detect_us", "reply_us"):
            vals = sorted(float(x[m]) for x in v if x[m] not in ("", None))
            for q in (50, 90, 99):
                row[f"{m[:-3]}_p{q}_us"] = round(pct(vals, q), 1) if vals else None
            row[f"{m[:-3]}_max_us"] = round(vals[-1], 1) if vals else None
        if arm == "load":
            lr = [float(x["load_per_s"]) for x in ss if x.get("load_per_s") not in ("", None)]
            row["load_per_s_mean"] = round(sum(lr) / len(lr)) if lr else None
        rows.append(row)


# ------------------------------------------------------------------ report

def report(a, ctx, out, head, dirty, t_start):
    L = []
    L.append(f"heartwire replicated state store benchmark (issue 10), {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    L.append(f"commit {head} ({dirty} uncommitted tracked file(s)); window {a.window}; nodes: a on core 0, b on core 1; "
             f"args {' '.join(sys.argv[1:])}")
    src, built = fo.build_info(a.build_dir)  # the binaries' own source (a --build-dir of another tree)
    L.append(f"binaries: {a.build_dir} (source {src or '?'}, heartwired built {built})")
    L.append(f"load average before: {out['load_before']}; run took {time.monotonic() - t_start:.0f} s")
    if out["sync"]:
        L.append("\n1. Synchronous write latency (one outstanding, measured in the application; us)")
        L.append(f"  {'config pmd:idle:sched:app':34} {'n':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'p99.9':>7} {'max':>8}"
                 f" | {'rtt p50':>7} {'rtt p99':>7} {'(n)':>5} {'eng p50/p99':>13} | {'2rtt99+10':>9} met  tmo dgr redo")
        for r in out["sync"]:
            if "error" in r:
                L.append(f"  {r['config']:34} {r['error']}")
                continue
            L.append(f"  {r['config']:34} {r['writes']:>6} {r['write_p50_us']:>7} {r['write_p90_us']:>7} {r['write_p99_us']:>7}"
                     f" {r['write_p99_9_us']:>7} {r['write_max_us']:>8} | {r['rtt_sampled_p50_us']!s:>7} "
                     f"{r['rtt_sampled_p99_us']!s:>7} {r['rtt_sampled_n']:>5} {str(r['rtt_engine_p50_us']) + '/' + str(r['rtt_engine_p99_us']):>13}"
                     f" | {r.get('target_us')!s:>9} {'yes' if r.get('target_met') else 'NO ':3} {r['timeouts']:>4} {r['degraded']:>3}"
                     f" {r.get('redone', 0):>4}{' takeover in the row' if r.get('takeover_in_row') else ''}")
        L.append("  the engine's side (status ack_latency_ns: the write taken from the queue -> the monitor's ACK of it, "
                 "1 us buckets), the same runs:")
        for r in out["sync"]:
            if "error" in r or r.get("engine_ack_p50_us") is None:
                continue
            L.append(f"  {r['config']:34} {r['engine_ack_samples']:>6} p50 {r['engine_ack_p50_us']} p99 {r['engine_ack_p99_us']} "
                     f"p99.9 {r['engine_ack_p99_9_us']} max {r['engine_ack_max_us']} mean {r['engine_ack_mean_us']} | "
                     f"2rtt99+10 {r.get('target_us')} {'met' if r.get('engine_target_met') else 'NOT met'}")
        for r in out["sync"]:
            if "taken_p50_us" in r:
                L.append(f"  {r['config']}: put -> taken by the engine p50 {r['taken_p50_us']} / p99 {r['taken_p99_us']} us; "
                         f"taken -> complete p50 {r['replicated_p50_us']} / p99 {r['replicated_p99_us']} us")
        L.append("  rtt = the monitor's probe round trip during the run (status rtt_ns.last every 10 ms); eng = the "
                 "monitor's own rtt_ns p50/p99 since start (log2 buckets: upper bounds); tmo = timeouts; dgr = writes "
                 "that completed with the store degraded; redo = runs of the row thrown away for a takeover in them "
                 "(logged above: the roles swapped under the application; --redo)")
    if out["async"]:
        L.append("\n2. Asynchronous throughput (one application thread; af_xdp)")
        for r in out["async"]:
            if "error" in r:
                L.append(f"  app {r['app_core']}: {r['error']} (runs redone for a takeover {r.get('redone', 0)})")
                continue
            L.append(f"  app on {r['app_core']} (cpu {r['app_cpu']}), queue {r['queue']}, idle {r['idle']}: "
                     f"{r['writes']} writes, {r['applied_per_s']:.0f} writes/s applied (enqueue {r['enqueue_per_s']:.0f}/s), "
                     f"replicated {r['replicated_per_s']:.0f}/s; acknowledgements follow application by p50 "
                     f"{us(r['follow_p50_ns'])} us / p99 {us(r['follow_p99_ns'])} us / max {us(r['follow_max_ns'])} us "
                     f"(lag p50 {r['lag_entries_p50']}, max {r['lag_entries_max']} entries); last ack "
                     f"{us(r['replicated_after_applied_ns'])} us after the last apply; queue full {r['queue_full']}, "
                     f"retransmits {r.get('retransmits')}, window full {r.get('window_full')}; "
                     f"runs redone for a takeover {r.get('redone', 0)}")
    if out["snapshot"]:
        L.append("\n3. Snapshot transfer (a monitor joins a primary that holds N records; af_xdp)")
        for r in out["snapshot"]:
            if "error" in r:
                L.append(f"  {r['records']} x {r['value_bytes']} B: {r['error']}")
                continue
            L.append(f"  {r['records']} records, key 9 B, value {r['value_bytes']} B: sync after {r['sync_after_ms']} ms, "
                     f"{r['records_per_s']} records/s, {r['payload_mb_per_s']} MB/s keys+values ({r['entry_mb_per_s']} MB/s "
                     f"as entries), {r['snapshot_records']} snapshot records, {r['snapshots']} snapshot(s), "
                     f"gaps {r['gaps']}, rewinds {r['rewinds']}, digests equal {r['digest_equal']}, "
                     f"{r['records_on_monitor']} on the monitor; takeovers held for the join {r.get('takeovers_held')} "
                     f"(the primary answered in {r.get('takeover_holds_answered')}); runs redone for a takeover {r['redone']}"
                     f"{' (the last had one too)' if r.get('takeover_in_row') else ''}")
    if out["detect"]:
        L.append(f"\n4. SIGKILL detection at {a.window} without / with a {a.load_rate}/s async write load (af_xdp, us)")
        L.append(f"  {'arm':6} {'valid':>7} {'GARP p50':>9} {'p90':>7} {'p99':>7} {'max':>7} | {'decision p50':>12} "
                 f"{'p90':>7} {'p99':>7} {'max':>7} | {'engine detect p50':>17} {'p99':>7}")
        for r in out["detect"]:
            L.append(f"  {r['arm']:6} {str(r['valid']) + '/' + str(r['injections']):>7} {r['garp_p50_us']!s:>9} "
                     f"{r['garp_p90_us']!s:>7} {r['garp_p99_us']!s:>7} {r['garp_max_us']!s:>7} | {r['decision_p50_us']!s:>12} "
                     f"{r['decision_p90_us']!s:>7} {r['decision_p99_us']!s:>7} {r['decision_max_us']!s:>7} | "
                     f"{r['detect_p50_us']!s:>17} {r['detect_p99_us']!s:>7}"
                     + (f"   load achieved {r.get('load_per_s_mean')}/s" if r["arm"] == "load" else ""))
        d = {r["arm"]: r for r in out["detect"]}
        if d.get("idle", {}).get("garp_p99_us") and d.get("load", {}).get("garp_p99_us"):
            ratio = d["load"]["garp_p99_us"] / d["idle"]["garp_p99_us"]
            L.append(f"  with load / without at p99 (GARP): {ratio:.2f}x (target <= 1.10x: "
                     f"{'met' if ratio <= 1.10 else 'NOT met'})")
    L.append("\nwhere the time went:")
    for k in sorted(ctx.timing.t):
        L.append(f"  {k:34} {ctx.timing.t[k]:7.1f} s over {ctx.timing.n[k]:4}")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--phases", default="sync,async,snapshot,detect")
    ap.add_argument("--window", default="100x5", help="detect INTERVALxMISS for every pair (the failover bench's)")
    ap.add_argument("--sync-configs", default="af_xdp:busy:default:primary,af_xdp:adaptive:default:primary,"
                                              "memif:busy:default:primary,memif:adaptive:default:primary",
                    help="pmd:idle:sched:app, app = primary|monitor|any (the core the application is pinned to)")
    ap.add_argument("--sync-writes", type=int, default=50000)
    ap.add_argument("--sync-records", type=int, default=8192,
                    help="store capacity for the sync rows (small: see README on the snapshot walk of a sparse table)")
    ap.add_argument("--sync-max-seconds", type=int, default=30, help="a sync row stops there (a wedged pair)")
    ap.add_argument("--redo", type=int, default=3,
                    help="a sync or snapshot row with a takeover in it (a false one: the host stalled an engine past "
                         "the window; the roles swapped under the row) is run again up to N times")
    ap.add_argument("--async-writes", type=int, default=2000000)
    ap.add_argument("--async-queue", type=int, default=16384)
    ap.add_argument("--async-idle", default="busy")
    ap.add_argument("--async-app", default="primary")
    ap.add_argument("--snapshot-records", type=int, default=1000000)
    ap.add_argument("--snapshot-values", default="16,200", help="value sizes, one run each")
    ap.add_argument("--snapshot-idle", default="busy")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs per arm (without, with load)")
    ap.add_argument("--load-rate", type=int, default=50000)
    ap.add_argument("--detect-idle", default="adaptive", help="as the failover benchmark's default")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    a = ap.parse_args()

    ctx = fo.Ctx()
    ctx.prefix = a.prefix
    ctx.heartwired = os.path.join(a.build_dir, "dpdk_apps", "heartwired")
    ctx.heartwirectl = os.path.join(a.build_dir, "dpdk_apps", "heartwirectl")
    ctx.probe = os.path.join(a.build_dir, "dpdk_apps", "heartwire-failover-probe")
    ctx.state_bench = os.path.join(a.build_dir, "bench", "state_bench")
    ctx.procs = fo.Procs(a.pidfile)
    ctx.settle_timeout = 15.0
    ctx.settle_s = 0.2
    ctx.engine_nice = 0
    ctx.idle = "busy"
    ctx.base_sets = []
    for item in a.set:
        key, _, val = item.partition("=")
        sec, _, k = key.partition(".")
        ctx.base_sets.append((sec, k, fo.toml_raw(val)))
    ctx.toml_sets = list(ctx.base_sets)
    ctx.warmup_ms = 100
    ctx.timing = fo.Timing()
    ctx.sched_seen = set()
    ctx.linkset = None
    ctx.window = fo.parse_window(a.window)
    ctx.dir = tempfile.mkdtemp(prefix=f"{a.prefix}-")
    ctx.key_file = os.path.join(ctx.dir, "group.key")
    fd = os.open(ctx.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as kf:
        kf.write(f"1 {os.urandom(32).hex()} send\n")
    phases = [p for p in a.phases.split(",") if p]
    ctx.net = fo.Net(a.prefix, ["a", "b", "client"])
    os.makedirs(a.results, exist_ok=True)
    head, dirty = fo.git_info()
    out = {"sync": [], "async": [], "snapshot": [], "detect": [], "load_before": open("/proc/loadavg").read().split()[:3]}
    samples = []
    t_start = time.monotonic()

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        ctx.net.create()
        fo.log(f"namespaces {', '.join(ctx.net.made)}; work dir {ctx.dir}")
        for ph in phases:
            t = time.monotonic()
            if ph == "sync":
                sync_phase(ctx, a, [c for c in a.sync_configs.split(",") if c], out["sync"])
            elif ph == "async":
                async_phase(ctx, a, out["async"])
            elif ph == "snapshot":
                snapshot_phase(ctx, a, out["snapshot"])
            elif ph == "detect":
                detect_phase(ctx, a, out["detect"], samples)
            else:
                raise SystemExit(f"unknown phase {ph}")
            ctx.timing.add(f"phase {ph}", time.monotonic() - t)
    except KeyboardInterrupt:
        fo.log("interrupted: cleaning up, writing what was measured")
    finally:
        ctx.procs.stop_all()
        ctx.net.destroy()
        subprocess.run(f"rm -rf /var/run/dpdk/{a.prefix}* /dev/hugepages/{a.prefix}* /dev/shm/{a.prefix}-*", shell=True)
        for f in os.listdir(ctx.dir):
            if f.endswith(".log") or f.endswith(".toml"):
                shutil.copy(os.path.join(ctx.dir, f), a.results)
        if not os.environ.get("HWB_KEEP_LOGS"):
            shutil.rmtree(ctx.dir, ignore_errors=True)
    text = report(a, ctx, out, head, dirty, t_start)
    print("\n" + text)
    with open(os.path.join(a.results, "summary.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(a.results, "summary.json"), "w") as f:
        json.dump(out, f, indent=1)
    if samples:
        fo.write_csv(os.path.join(a.results, "detect_samples.csv"), samples)


if __name__ == "__main__":
    main()
