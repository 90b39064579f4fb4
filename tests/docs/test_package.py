#!/usr/bin/env python3
"""The Debian package (issue 11 item 5): dpkg-buildpackage builds the .debs from a copy of
this source tree, they install on this machine (apt-get resolves their dependencies from
what the test command's setup installed), the installed files are where Debian keeps them,
`systemd-analyze verify` accepts the installed unit, `--version` runs from the installed
binaries and the man pages are found by man, and a C and a C++ program build against the
installed replicated-store library with pkg-config and run (state_pkg.py); then the
packages are purged again.

usage: test_package.py SOURCE_ROOT
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import state_pkg

src = sys.argv[1]
failures = []
PKGS = ["heartwire", "heartwire-tools", "libheartwire-dev"]


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, **kw)


def installed(p):
    r = run("dpkg-query", "-W", "-f=${Status}", p)
    return r.returncode == 0 and "install ok installed" in r.stdout


pre = [p for p in PKGS if installed(p)]
if pre:
    print("FAIL: %s already installed on this machine: not touching an operator's install" % pre)
    sys.exit(1)

with tempfile.TemporaryDirectory() as work:
    tree = os.path.join(work, "heartwire")
    shutil.copytree(src, tree, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "build*", "__pycache__", "results"))
    # No -g: the binaries are stripped and no dbgsym package is built (noddebs), so debug
    # information would only cost compile time (a third of the test's on two cores).
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck noddebs parallel=%d" % (os.cpu_count() or 1),
               DEB_CFLAGS_MAINT_STRIP="-g", DEB_CXXFLAGS_MAINT_STRIP="-g")
    r = run("dpkg-buildpackage", "-us", "-uc", "-b", cwd=tree, env=env)
    debs = sorted(glob.glob(os.path.join(work, "*.deb")))
    if r.returncode != 0 or len(debs) != len(PKGS):
        print((r.stdout + r.stderr)[-4000:])
        fail("dpkg-buildpackage: exit %d, %d .deb(s)" % (r.returncode, len(debs)))
        sys.exit(1)
    print("built: %s" % ", ".join(os.path.basename(d) for d in debs))
    contents = {os.path.basename(d).split("_")[0]: run("dpkg-deb", "-c", d).stdout for d in debs}
    for pkg, path in [("heartwire", "./usr/sbin/heartwired"), ("heartwire", "./usr/bin/heartwirectl"),
                      ("heartwire", "./lib/systemd/system/heartwired@.service"), ("heartwire", "./etc/heartwire/example.toml"),
                      ("heartwire", "heartwire/heartwire_steer.bpf.o"), ("heartwire", "./usr/share/man/man5/heartwired.toml.5"),
                      ("heartwire", "./usr/share/bash-completion/completions/heartwirectl"),
                      ("heartwire-tools", "heartwire/heartwire-failover-probe"), ("heartwire-tools", "heartwire/keepalived2heartwire"),
                      ("heartwire-tools", "heartwire/heartwire-state-counter"),
                      ("libheartwire-dev", "./usr/include/heartwire/embed.hpp"), ("libheartwire-dev", "pkgconfig/heartwire.pc"),
                      ("libheartwire-dev", "./usr/include/heartwire/state.h"), ("libheartwire-dev", "./usr/include/heartwire/state.hpp"),
                      ("libheartwire-dev", "./usr/include/heartwire/replica.hpp"), ("libheartwire-dev", "/libheartwire-state.a"),
                      ("libheartwire-dev", "pkgconfig/heartwire-state.pc")]:
        if path not in contents.get(pkg, ""):
            fail("%s lacks %s" % (pkg, path))
    if "/usr/local" in "".join(contents.values()) or "./usr/bin/heartwire-failover-probe" in contents.get("heartwire-tools", ""):
        fail("files outside Debian's places (a lab tool on PATH, or /usr/local)")
    r = run("apt-get", "install", "-y", "--no-install-recommends", *debs, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if r.returncode != 0:
        fail("apt-get install: %s" % (r.stdout + r.stderr)[-1500:])
    else:
        try:
            v = run("/usr/sbin/heartwired", "--version")
            if v.returncode != 0 or not v.stdout.startswith("heartwired "):
                fail("installed heartwired --version: %r" % (v.stdout + v.stderr))
            print(v.stdout.strip())
            v = run("/usr/bin/heartwirectl", "--version")
            if v.returncode != 0 or not v.stdout.startswith("heartwirectl "):
                fail("installed heartwirectl --version: %r" % v.stdout)
            a = run("systemd-analyze", "verify", "/lib/systemd/system/heartwired@.service")
            if a.returncode != 0 or a.stderr.strip():
                fail("systemd-analyze verify: %s" % a.stderr.strip())
            for page in ("heartwired", "heartwirectl", "heartwired.toml"):
                if run("man", "-w", page).returncode != 0:
                    fail("man -w %s" % page)
            k = run(glob.glob("/usr/lib/*/heartwire/keepalived2heartwire")[0], "--help")
            if k.returncode != 0:
                fail("keepalived2heartwire --help from the package")
            for p in state_pkg.check(src): # against /usr: no PKG_CONFIG_PATH
                fail(p)
        finally:
            r = run("dpkg", "--purge", *PKGS)
            if r.returncode != 0 or any(installed(p) for p in PKGS):
                fail("dpkg --purge: %s" % r.stderr)

print("package: %d problem(s)" % len(failures))
sys.exit(1 if failures else 0)
