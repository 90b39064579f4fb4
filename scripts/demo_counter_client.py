#!/usr/bin/env python3
"""The demo's counter client (scripts/demo.sh): increments one counter of
heartwire-state-counter behind the primary address, one request in flight, every few
milliseconds, for as long as it runs (SIGTERM ends it). The counter lives in heartwire's
replicated store, so it must survive every failover: each acknowledged increment's value
must be above the one before it (an acknowledged increment lost would hand the same value
out again). At the end it reads the counter back and prints one JSON line.

usage: demo_counter_client.py TARGET PORT [INTERVAL_MS]
"""
import json
import signal
import socket
import sys
import time

target, port = sys.argv[1], int(sys.argv[2])
interval = (float(sys.argv[3]) if len(sys.argv) > 3 else 4.0) / 1000.0
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((target, port))
s.settimeout(0.2)
key = "demo-counter"
rid = 0
acked = unanswered = errors = backwards = 0
last = None
first = None
longest_gap = 0.0
last_ok_t = None


def ask(req):
    """One request, its reply or None (lost, or a reply to an older request)."""
    s.send(req.encode())
    want = req.split()[1]
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        try:
            r = s.recv(256).decode(errors="replace").split()
        except (socket.timeout, ConnectionRefusedError):
            return None
        if len(r) >= 2 and r[1] == want:
            return r
    return None


while not stop:
    rid += 1
    r = ask(f"INC {rid} {key}")
    now = time.monotonic()
    if r is None:
        unanswered += 1
    elif r[0] == "OK" and len(r) >= 3:
        v = int(r[2])
        if first is None:
            first = v
        if last is not None and v <= last:
            backwards += 1
        last = v
        acked += 1
        if last_ok_t is not None:
            longest_gap = max(longest_gap, now - last_ok_t)
        last_ok_t = now
    else:
        errors += 1
    time.sleep(interval)

final = None
for i in range(50):  # the read-back: whoever is primary now
    r = ask(f"GET r{i} {key}")
    if r and r[0] == "OK" and len(r) >= 3:
        final = int(r[2])
        break
    time.sleep(0.1)
print(json.dumps({"acked": acked, "unanswered": unanswered, "errors": errors, "backwards": backwards,
                  "first": first, "last": last, "final": final, "longest_gap_ms": round(longest_gap * 1000, 1)}))
