#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kube-proxy's TestOverallNFTablesRules as a golden test of --proxy-mode nftables.

nft-golden/ holds the test's inputs (kubernetes/kubernetes pkg/proxy/nftables/
proxier_test.go at 5e7a140d97a8414f94252c2ed4fd3bae3731dccf) as manifests, its expected
ruleset (expected.nft, verbatim) and the kproxyd flags equivalent to its NewFakeProxier
(flags, one per line). First the normaliser of nftcompare.py is checked against nft
itself: expected.nft loaded into a scratch namespace and listed back must read the same.
Then kproxyd runs on the manifests in a node namespace holding NewFakeProxier's
addresses, and once it has synced, `nft list table ip kube-proxy` there must mean what
expected.nft means: one TAP line for the table, the chain names, each chain (hook,
priority, rules in order), the set and map names, each set or map (properties,
elements), and other objects. No difference is papered over beyond nft's listing
forms (see nftcompare.py). Needs root, ip and nft; prints TAP."""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import kptest  # noqa: E402
import nftcompare  # noqa: E402
from kptest import Tap, stop  # noqa: E402
from topology import sh  # noqa: E402

TAP = Tap()
ok = TAP.ok
GOLDEN = os.path.join(HERE, "nft-golden")
# NewFakeProxier's eth0 (its lo, 127.0.0.1/8 and ::1, every namespace has)
NODE_ADDRS = ["192.168.0.2/24", "192.168.1.2/24", "192.168.99.11/24"]
NODE_ADDRS6 = ["2001:db8::1/64", "2001:db8:1::2/64"]
SYNC_DEADLINE = 30.0


def binary(subdir, name):
    """kptest's path ($top_builddir, else the working directory), else the checkout's
    build/ directory."""
    path = os.path.join(kptest.TOP_BUILD, subdir, name)
    if os.path.exists(path):
        return path
    return os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", subdir, name)


KPROXYD = binary("proxy", "kproxyd")
KPROXYCTL = binary("cli", "kproxyctl")


def read_flags():
    """nft-golden/flags: one flag (and its value) a line; # starts a comment."""
    out = []
    for line in open(os.path.join(GOLDEN, "flags")):
        line = line.split("#", 1)[0].strip()
        if line:
            out += line.split(None, 1)
    return out


def node_ns(name):
    """A namespace with NewFakeProxier's addresses on eth0: a dummy device, or a veth
    pair kept inside the namespace where the kernel has no dummy driver."""
    sh("ip", "netns", "add", name)
    sh("ip", "link", "set", "lo", "up", ns=name)
    if sh("ip", "link", "add", "eth0", "type", "dummy", ns=name, check=False).returncode:
        sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p", ns=name)
        sh("ip", "link", "set", "eth0p", "up", ns=name)
    for a in NODE_ADDRS:
        sh("ip", "addr", "add", a, "dev", "eth0", ns=name)
    for a in NODE_ADDRS6:
        sh("ip", "addr", "add", a, "dev", "eth0", "nodad", ns=name)
    sh("ip", "link", "set", "eth0", "up", ns=name)


def status(sock):
    r = subprocess.run([KPROXYCTL, "-s", sock, "status", "-o", "json"], capture_output=True,
                       text=True, timeout=10)
    try:
        return json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        return None


def wait_synced(proc, sock):
    """Polls kproxyctl status (at most SYNC_DEADLINE) until a sync succeeded with
    nothing pending, kproxyd exited, or three syncs failed. Returns the last status."""
    end = time.monotonic() + SYNC_DEADLINE
    st = None
    while time.monotonic() < end and proc.poll() is None:
        st = status(sock) or st
        sy = (st or {}).get("sync", {})
        if sy.get("count", 0) >= 1 and not sy.get("pending") and sy.get("last_result") == 0:
            break
        if sy.get("errors", 0) >= 3:
            break
        time.sleep(0.2)
    return st


def selfcheck_test(expected):
    try:
        diffs = nftcompare.selfcheck(expected)
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
        diffs = ["%s: %s" % (type(e).__name__, e)]
    ok(not diffs, "normaliser self-check: expected.nft loaded with nft -f and listed back "
       "means the same", "\n".join(diffs))


def golden_test(expected, tmp, mdir, ns):
    for f in glob.glob(os.path.join(GOLDEN, "*.yaml")):
        shutil.copy(f, mdir)
    sock = os.path.join(tmp, "kproxyd.sock")
    log = open(os.path.join(tmp, "kproxyd.log"), "w")
    node_ns(ns)
    cmd = [KPROXYD, "--proxy-mode", "nftables", "--manifests", mdir, "--control-socket", sock,
           "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0",
           "--v", "2", *read_flags()]
    print("# " + " ".join(cmd))
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=log, stderr=log)
    try:
        st = wait_synced(proc, sock)
        sy = (st or {}).get("sync", {})
        ok(proc.poll() is None and sy.get("count", 0) >= 1 and sy.get("last_result") == 0,
           "kproxyd --proxy-mode nftables syncs the manifests within %d s" % SYNC_DEADLINE,
           "exit status %s; sync %s\n%s" % (proc.poll(), sy,
                                            open(log.name).read()[-1500:]))
        r = sh("nft", "list", "table", "ip", "kube-proxy", ns=ns, check=False)
        ok(r.returncode == 0, "nft list table ip kube-proxy in the node namespace",
           r.stderr)
        actual = nftcompare.parse(r.stdout if r.returncode == 0 else "")
        for title, diffs in nftcompare.sections(expected, actual):
            ok(not diffs, "%s: as kube-proxy's" % title, "\n".join(diffs))
    finally:
        if proc.poll() is None:
            stop(proc)
        log.close()


class NodeNs:
    """The node namespace golden_test() makes, as run_main's topology: gone at the end."""

    def __init__(self):
        self.name = "kpgold%dn" % (os.getpid() % 100000)

    def teardown(self):
        sh("ip", "netns", "del", self.name, check=False)


def main():
    def tests(topo, tmp, mdir):
        text = open(os.path.join(GOLDEN, "expected.nft")).read()
        selfcheck_test(text)
        golden_test(nftcompare.parse(text), tmp, mdir, topo.name)

    return kptest.run_main(TAP, "nft", "nft", "kp-nftgold-", NodeNs, tests)


if __name__ == "__main__":
    sys.exit(main())
