#!/usr/bin/env python3
"""The manual pages and the shell completion against the programs they describe.

- every page renders with man's own formatter without a warning (groff -man -ww);
- every option and command that `--help` lists is in its page, and in the completion;
- the completion completes commands, options and a command's options in a real bash.

usage: test_docs.py BUILD_ROOT SOURCE_ROOT
"""
import os
import re
import subprocess
import sys

build, src = sys.argv[1], sys.argv[2]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def help_of(prog, *args):
    return subprocess.run([prog, *args, "--help"], capture_output=True, text=True).stdout


def options(help_text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])(?=[ ,=]|$)", help_text, re.M))


def commands(help_text):
    part = help_text.split("Subcommands:", 1)
    return set(re.findall(r"^  ([a-z][a-z-]*) ", part[1], re.M)) if len(part) == 2 else set()


pages = {"heartwired.8": "dpdk_apps/heartwired", "heartwirectl.8": "dpdk_apps/heartwirectl", "heartwired.toml.5": None}
for page, prog in pages.items():
    path = os.path.join(build, "docs", "man", page)
    if not os.path.exists(path):
        fail("%s was not built" % page)
        continue
    r = subprocess.run(["groff", "-man", "-ww", "-Wbreak", "-z", path], capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        fail("%s: groff warns: %s" % (page, r.stderr.strip()[:400]))
    text = subprocess.run(["man", "-l", path], capture_output=True, text=True,
                          env=dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="")).stdout
    if prog is None:
        # The configuration page: every table and key of the reference is there.
        for key in ("node.name", "port.device", "detect.interval_us", "auth.key_file", "control.socket"):
            if key not in text:
                fail("%s lacks %s" % (page, key))
        continue
    h = help_of(os.path.join(build, prog))
    for o in sorted(options(h)):
        if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", text):
            fail("%s: option %s of --help is not in the page" % (page, o))
    for c in sorted(commands(h)):
        if not re.search(r"(?<![\w-])" + c + r"(?![\w-])", text):
            fail("%s: command %s of --help is not in the page" % (page, c))

# The completion: what --help lists, completed in a real bash.
comp = os.path.join(src, "completion", "heartwirectl.bash")
ctl_help = help_of(os.path.join(build, "dpdk_apps/heartwirectl"))


def complete(*words):
    script = 'source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _heartwirectl; echo "${COMPREPLY[*]}"' % (
        comp, " ".join("'%s'" % w for w in words), len(words) - 1)
    return set(subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout.split())


got = complete("heartwirectl", "")
if got != commands(ctl_help):
    fail("completion of commands: %s, --help lists %s" % (sorted(got), sorted(commands(ctl_help))))
got = complete("heartwirectl", "-")
missing = options(ctl_help) - got
if missing:
    fail("completion lacks options %s" % sorted(missing))
if complete("heartwirectl", "--node", "n1", "statu") != {"status"}:
    fail("completion after --node NAME does not complete the command")
if "--json" not in complete("heartwirectl", "status", "--"):
    fail("completion of status's --json")

# state: its commands in the page and the completion, each command's options in the page.
state_help = help_of(os.path.join(build, "dpdk_apps/heartwirectl"), "state")
ctl_page = subprocess.run(["man", "-l", os.path.join(build, "docs", "man", "heartwirectl.8")], capture_output=True,
                          text=True, env=dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="")).stdout
if complete("heartwirectl", "state", "") != commands(state_help) or not commands(state_help):
    fail("completion of state's commands: %s, --help lists %s" % (sorted(complete("heartwirectl", "state", "")),
                                                                   sorted(commands(state_help))))
for c in sorted(commands(state_help)):
    if not re.search(r"state " + c + r"(?![\w-])", ctl_page):
        fail("heartwirectl.8: state %s is not in the page" % c)
    o = options(help_of(os.path.join(build, "dpdk_apps/heartwirectl"), "state", c)) - {"-h", "--help"}
    for opt in sorted(o):
        if not re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", ctl_page):
            fail("heartwirectl.8: option %s of state %s is not in the page" % (opt, c))
    missing = o - complete("heartwirectl", "state", c, "--")
    if missing:
        fail("completion of state %s lacks %s" % (c, sorted(missing)))
if complete("heartwirectl", "state", "--store", "app", "du") != {"dump"}:
    fail("completion of state's commands after --store NAME")

print("docs: %d problem(s)" % len(failures))
sys.exit(1 if failures else 0)
