# SPDX-License-Identifier: GPL-2.0-or-later
"""What the data-plane tests share: TAP lines and their count, the Service and
EndpointSlice manifests they write (namespace t, one port named p), counting which pod
answered, polling with a deadline, iptables-save output without counters, stopping a
daemon, kproxyd in a node namespace, and a client.py held open in a namespace."""
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from topology import sh

DEADLINE = 10.0
TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
KPROXYD = os.path.join(TOP_BUILD, "proxy", "kproxyd")
KPROXYCTL = os.path.join(TOP_BUILD, "cli", "kproxyctl")


class Tap:
    """ok() prints one TAP line; prefix (if set) goes before each description. A failed
    check prints @lines lines of its detail: the first ones, or the last with @tail (for
    logs, whose end says most)."""

    def __init__(self, lines=30, tail=False):
        self.count = self.failed = 0
        self.prefix = ""
        self.lines, self.tail = lines, tail

    def ok(self, cond, desc, detail=""):
        self.count += 1
        desc = "%s: %s" % (self.prefix, desc) if self.prefix else desc
        print(("ok %d - %s" if cond else "not ok %d - %s") % (self.count, desc), flush=True)
        if not cond:
            self.failed += 1
            text = str(detail).splitlines() if detail is not None else []
            for line in text[-self.lines:] if self.tail else text[:self.lines]:
                print("#   " + line)
            sys.stdout.flush()
        return cond

    def plan(self):
        """Prints the plan; returns the exit status."""
        print("1..%d" % self.count)
        return 1 if self.failed else 0

    def done(self):
        """The closing counts and the plan; returns the exit status."""
        print("# %d passed, %d failed" % (self.count - self.failed, self.failed))
        return self.plan()


def sanitized():
    """Whether this build is one with --enable-sanitizers."""
    try:
        with open(os.path.join(TOP_BUILD, "config.status")) as f:
            return "-fsanitize=" in f.read()
    except OSError:
        return False


def free_port():
    """A TCP port on 127.0.0.1 free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def svc(name, ip, port, extra="", ptype="ClusterIP", node_port=None, proto="TCP"):
    np = ", nodePort: %d" % node_port if node_port else ""
    return ("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: t}\n"
            "spec:\n  type: %s\n  clusterIP: %s\n  ports: [{name: p, port: %d, protocol: %s%s}]\n"
            "%s---\n" % (name, ptype, ip, port, proto, np, extra))


def slice_(svcname, eps, proto="TCP", sname=None, family="IPv4", port=8080):
    """eps: [(ip, node, ready)], ready True, False (not serving) or "terminating"."""
    lines = []
    for ip, node, ready in eps:
        cond = "{ready: true}" if ready is True else "{ready: false, serving: false}" \
            if ready is False else "{ready: false, serving: true, terminating: true}"
        lines.append("- {addresses: ['%s'], nodeName: %s, conditions: %s}" % (ip, node, cond))
    return ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            "metadata: {name: %s, namespace: t, labels: {kubernetes.io/service-name: %s}}\n"
            "addressType: %s\nports: [{name: p, port: %d, protocol: %s}]\nendpoints:\n%s\n---\n"
            % (sname or svcname + "-1", svcname, family, port, proto, "\n".join(lines)))


def names(lines):
    """Which pod answered each of client.py's lines (ERR for a failure), counted."""
    return collections.Counter(l.split()[0] if not l.startswith("ERR") else "ERR" for l in lines)


def wait_until(fn, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.1)
    return False


def save(topo):
    """Both families' iptables-save of the node, without counters and comments."""
    out = (sh("iptables-legacy-save", ns=topo.node).stdout
           + sh("ip6tables-legacy-save", ns=topo.node).stdout)
    return [re.sub(r" \[\d+:\d+\]$", "", l) for l in out.splitlines() if not l.startswith("#")]


def stop(proc, deadline=DEADLINE):
    """SIGTERM, then SIGKILL after @deadline; returns the exit status."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(deadline)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def popen_client(ns, *args):
    """client.py in namespace @ns, driven line by line (say())."""
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                             os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "client.py"), *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def say(p, line):
    """Sends one command line to a popen_client(), returns its answer line."""
    p.stdin.write(line + "\n")
    p.stdin.flush()
    return p.stdout.readline().strip()


class Kproxyd:
    """kproxyd --proxy-mode @mode in namespace @ns on the manifest directory @mdir, with
    the flags the namespace tests share (node node-a, the cluster CIDR 10.244.0.0/16,
    syncs 100 ms apart, --v 2) and @args; its control socket and its log (appended to)
    in @rundir; @wrap (a command and its arguments, such as setpriv's) runs it inside the
    namespace. It is not waited for: see ready()."""

    def __init__(self, ns, mode, mdir, rundir, args=(), wrap=(), **popen):
        self.sock = os.path.join(rundir, "kproxyd.sock")
        self.logname = os.path.join(rundir, "kproxyd.log")
        self.log = open(self.logname, "a")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *wrap, KPROXYD, "--proxy-mode", mode,
             "--manifests", mdir, "--control-socket", self.sock, "--hostname-override", "node-a",
             "--cluster-cidr", "10.244.0.0/16", "--min-sync-period", "100ms", "--v", "2",
             *args], stdout=self.log, stderr=self.log, **popen)

    def ready(self, fn, deadline=DEADLINE):
        """Polls @fn until it holds or kproxyd exits (or @deadline)."""
        return wait_until(lambda: self.proc.poll() is not None or fn(), deadline)

    def ctl(self, *args):
        return subprocess.run([KPROXYCTL, "-s", self.sock, *args], capture_output=True,
                              text=True, timeout=DEADLINE)

    def dump(self):
        r = self.ctl("dump", "-o", "json")
        return json.loads(r.stdout)["entries"] if r.returncode == 0 else []

    def entries(self):
        """The dump by (service, kind, vip, port)."""
        return {(e["service"], e["kind"], e["vip"], e["port"]): e for e in self.dump()}

    def text(self):
        return open(self.logname).read()

    def stop(self):
        return stop(self.proc)


def run_main(tap, what, tool, prefix, make_topo, tests, finally_fn=None):
    """The namespace tests' main(): skips without root, bails out without @tool; makes a
    scratch directory with manifests/ in it and the topology (@make_topo()), runs
    @tests(topo, tmp, mdir) with any exception a failed check, then @finally_fn() (if
    given), tears the topology down, prints the tail of kproxyd's log when a check failed,
    and the closing counts. Returns the exit status."""
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root for network namespaces and %s" % what)
        return 0
    if not shutil.which(tool):
        print("Bail out! %s is missing: run scripts/install-deps" % tool)
        return 1
    tmp = tempfile.mkdtemp(prefix=prefix)
    mdir = os.path.join(tmp, "manifests")
    os.mkdir(mdir)
    topo = None
    try:
        topo = make_topo()
        tests(topo, tmp, mdir)
    except Exception as e:  # report, then clean up
        tap.ok(False, "test run raised %s" % type(e).__name__, str(e))
    finally:
        if finally_fn:
            finally_fn()
        if topo:
            topo.teardown()
        log = os.path.join(tmp, "kproxyd.log")
        if tap.failed and os.path.exists(log):
            print("# kproxyd log:")
            for line in open(log).read().splitlines()[-30:]:
                print("#   " + line)
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.done()
