#!/usr/bin/env python3
"""The replicated store's client library as an application on the host sees it (issue 10):
with nothing but `pkg-config --cflags --libs heartwire-state`, a C program (heartwire/state.h)
and a C++ program (heartwire/state.hpp) build against the installed headers and library,
warning-free, and run: the C++ one creates a region as heartwired would, plays the engine
on a thread and writes and reads through a client; the C one writes and reads the same
region. The example service (examples/state_counter) builds the same way.

test_package.py runs it against the installed libheartwire-dev; by hand, against a staged
install:  meson install -C build --destdir /tmp/stage
          state_pkg.py SOURCE_ROOT /tmp/stage/usr/local/lib/x86_64-linux-gnu/pkgconfig

usage: state_pkg.py SOURCE_ROOT [PKG_CONFIG_DIR]
"""
import os
import subprocess
import sys
import tempfile


def check(src, pc_dir=None):
    """Returns the failures, one string each."""
    failures = []
    env = dict(os.environ)
    if pc_dir:
        env["PKG_CONFIG_PATH"] = pc_dir
    here = os.path.join(src, "tests", "docs", "state_pkg")
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "heartwire-state"], capture_output=True, text=True, env=env)
    if pc.returncode != 0:
        return ["pkg-config --cflags --libs heartwire-state: %s" % pc.stderr.strip()]
    flags = pc.stdout.split()
    with tempfile.TemporaryDirectory() as out:
        builds = [
            ("hello_state_c", ["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
                               os.path.join(here, "hello_state.c")]),
            ("hello_state_cpp", ["c++", "-std=c++20", "-O2", "-Wall", "-Wextra", "-Werror",
                                 os.path.join(here, "hello_state.cpp")]),
            ("state_counter", ["c++", "-std=c++20", "-O2", "-Wall", "-Wextra", "-Werror",
                               os.path.join(src, "examples", "state_counter", "main.cpp")]),
        ]
        for name, cmd in builds:
            r = subprocess.run(cmd + ["-o", os.path.join(out, name)] + flags, capture_output=True, text=True)
            if r.returncode != 0:
                failures.append("%s does not build with pkg-config heartwire-state: %s" % (name, (r.stdout + r.stderr)[-1500:]))
        if failures:
            return failures
        r = subprocess.run([os.path.join(out, "hello_state_cpp"), os.path.join(out, "hello_state_c")],
                           capture_output=True, text=True, timeout=60)
        print(r.stdout.strip())
        if r.returncode != 0 or "c: ok" not in r.stdout or "c++: ok" not in r.stdout:
            failures.append("put/get through the installed library: exit %d: %s" % (r.returncode, (r.stdout + r.stderr)[-1500:]))
    return failures


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    problems = check(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
    for p in problems:
        print("FAIL: " + p)
    print("state_pkg: %d problem(s)" % len(problems))
    sys.exit(1 if problems else 0)
