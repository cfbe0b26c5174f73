#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd --proxy-mode ipvs in a node namespace, with real connections from the node
itself and from a client namespace to pods behind a bridge (tests/netns/topology.py).
Runs INSIDE the qemu guest of tests/vm/run-in-guest (the host kernel has no IPVS):
tests/vm/test-ipvs.sh is the host-side entry. Needs root, ip_vs, ip_set, xt_set, dummy,
ipvsadm, ipset and iptables-legacy; prints TAP and exits 1 on any failure. There is no
skip: a kproxyd without the IPVS data plane, or a kernel without IPVS, fails.

top_builddir (environment, default: the current directory) names the build tree."""
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NETNS = os.path.join(os.path.dirname(HERE), "netns")
sys.path.insert(0, NETNS)
from topology import Topology, sh  # noqa: E402

CLIENT = os.path.join(NETNS, "client.py")
TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
KPROXYD = os.path.join(TOP_BUILD, "proxy", "kproxyd")
KPROXYCTL = os.path.join(TOP_BUILD, "cli", "kproxyctl")
DEADLINE = 20.0          # generous: the guest runs under TCG, 5-20x slower than the host
SYNC_PERIOD = "2s"       # --sync-period: how often kproxyd resyncs (graceful deletion, repair)
GRACE_BOUND = 40.0       # a closed (RST) connection's IPVS entry lives 10 s (CLOSE state)
count = failed = 0

PODS = [("pod-a1", "10.244.1.2", "fd00:10:244::2"), ("pod-b1", "10.244.2.3", "fd00:10:244::3"),
        ("pod-b2", "10.244.2.4", "fd00:10:244::4")]
A1, B1, B2 = [(ip, "node-a" if ip.startswith("10.244.1.") else "node-b", True)
              for _, ip, _ in PODS]
A16, B16 = ("'fd00:10:244::2'", "node-a", True), ("'fd00:10:244::3'", "node-b", True)
UN = ("10.244.1.9", "node-a", False)     # not ready: never a real server
POD_OF = {ip: name for name, ip, _ in PODS}
NODE_IP = "192.168.50.1"
MASQ_SRC = "10.244.0.1"                   # what MASQUERADE toward the bridge picks
EXT_IP, LB_IP = "192.168.50.100", "192.168.50.200"
AFFINITY_TIMEOUT = 600
SCHED = ""


def ok(cond, desc, detail=""):
    global count, failed
    count += 1
    desc = "%s: %s" % (SCHED, desc) if SCHED else desc
    print(("ok %d - %s" if cond else "not ok %d - %s") % (count, desc), flush=True)
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:40]:
            print("#   " + line)
    return bool(cond)


def diag(text):
    for line in str(text).splitlines():
        print("# " + line, flush=True)


def svc(name, ip, port, extra="", ptype="ClusterIP", node_port=None, proto="TCP"):
    np = ", nodePort: %d" % node_port if node_port else ""
    return ("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: t}\n"
            "spec:\n  type: %s\n  clusterIP: %s\n  ports: [{name: p, port: %d, protocol: %s%s}]\n"
            "%s---\n" % (name, ptype, ip, port, proto, np, extra))


def slice_(svcname, eps, proto="TCP", family="IPv4", sname=None):
    lines = ["- {addresses: [%s], nodeName: %s, conditions: %s}"
             % (ip, node, "{ready: true}" if ready else "{ready: false, serving: false}")
             for ip, node, ready in eps]
    return ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            "metadata: {name: %s, namespace: t, labels: {kubernetes.io/service-name: %s}}\n"
            "addressType: %s\nports: [{name: p, port: 8080, protocol: %s}]\nendpoints:%s\n"
            "---\n" % (sname or svcname + "-1", svcname, family, proto,
                        ("\n" + "\n".join(lines)) if lines else " []"))


def services():
    return (svc("web", "10.96.0.10", 80, ptype="NodePort", node_port=30080)
            + slice_("web", [A1, B1, B2, UN])
            + svc("sticky", "10.96.0.11", 80, "  sessionAffinity: ClientIP\n"
                  "  sessionAffinityConfig: {clientIP: {timeoutSeconds: %d}}\n"
                  % AFFINITY_TIMEOUT)
            + slice_("sticky", [A1, B1, B2])
            + svc("empty", "10.96.0.12", 80, ptype="NodePort", node_port=30082)
            + svc("local", "10.96.0.13", 80, "  externalTrafficPolicy: Local\n",
                  ptype="NodePort", node_port=30083)
            + slice_("local", [A1, B1])
            + svc("dns", "10.96.0.14", 53, proto="UDP")
            + svc("ext", "10.96.0.15", 80, "  externalIPs: [%s]\n" % EXT_IP)
            + slice_("ext", [B2])
            + svc("grace", "10.96.0.16", 80)
            + svc("lb", "10.96.0.17", 80, "  loadBalancerSourceRanges: [192.168.50.2/32]\n"
                  "status:\n  loadBalancer:\n    ingress: [{ip: %s}]\n"
                  % LB_IP, ptype="LoadBalancer", node_port=30087)
            + slice_("lb", [B2])
            + svc("dual", "10.96.0.18", 80, "  clusterIPs: [10.96.0.18, 'fd00:96::18']\n"
                  "  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n")
            + slice_("dual", [A1, B1])
            + slice_("dual", [A16, B16], family="IPv6", sname="dual-6")
            + svc("hair", "10.96.0.19", 80)
            + slice_("hair", [A1]))


def expected(grace_eps, dns_eps):
    """(proto, vip, port) -> set of (endpoint ip, port) kube-proxy's IPVS mode programs."""
    def eps(*e):
        return {(ip, 8080) for ip, _, ready in e if ready}
    return {("TCP", "10.96.0.10", 80): eps(A1, B1, B2),
            ("TCP", NODE_IP, 30080): eps(A1, B1, B2),
            ("TCP", "10.96.0.11", 80): eps(A1, B1, B2),
            ("TCP", "10.96.0.12", 80): set(),
            ("TCP", NODE_IP, 30082): set(),
            ("TCP", "10.96.0.13", 80): eps(A1, B1),
            ("TCP", NODE_IP, 30083): eps(A1),            # externalTrafficPolicy: Local
            ("UDP", "10.96.0.14", 53): eps(*dns_eps),
            ("TCP", "10.96.0.15", 80): eps(B2),
            ("TCP", EXT_IP, 80): eps(B2),
            ("TCP", "10.96.0.16", 80): eps(*grace_eps),
            ("TCP", "10.96.0.17", 80): eps(B2),
            ("TCP", LB_IP, 80): eps(B2),
            ("TCP", NODE_IP, 30087): eps(B2),
            ("TCP", "10.96.0.18", 80): eps(A1, B1),
            ("TCP", "fd00:96::18", 80): {(ip.strip("'"), 8080) for ip, _, _ in (A16, B16)},
            ("TCP", "10.96.0.19", 80): eps(A1)}


BOUND = {"10.96.0.%d" % i for i in range(10, 20)} | {EXT_IP, LB_IP, "fd00:96::18"}
FOREIGN = ("TCP", "10.1.2.3", 99)


def write(mdir, name, text):
    """Replaces a manifest file atomically (kproxyd sees one IN_MOVED_TO)."""
    tmp = os.path.join(mdir, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(mdir, name))


def hostport(s):
    m = re.match(r"^\[(.*)\]:(\d+)$", s) or re.match(r"^(.*):(\d+)$", s)
    return m.group(1), int(m.group(2))


def ipvs(ns):
    """ipvsadm -Ln as {(proto, vip, port): {"sched", "flags", "persistent", "rs":
    {(ip, port): {"fwd", "weight", "active", "inact"}}}}."""
    table, cur = {}, None
    for line in sh("ipvsadm", "-Ln", ns=ns).stdout.splitlines():
        m = re.match(r"^(TCP|UDP|SCTP)\s+(\S+)\s+(\S+)(.*)$", line)
        if m:
            vip, port = hostport(m.group(2))
            pm = re.search(r"persistent (\d+)", m.group(4))
            cur = table[(m.group(1), vip, port)] = {
                "sched": m.group(3), "flags": m.group(4).strip(), "rs": {},
                "persistent": int(pm.group(1)) if pm else None}
            continue
        m = re.match(r"^\s+->\s+(\S+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
        if m and cur is not None:
            cur["rs"][hostport(m.group(1))] = {
                "fwd": m.group(2), "weight": int(m.group(3)), "active": int(m.group(4)),
                "inact": int(m.group(5))}
    return table


def fmt_table(t):
    return "\n".join("%s %s:%d %s %s -> %s" % (k[0], k[1], k[2], v["sched"], v["flags"],
                                              sorted("%s:%d/%s/w%d/a%d/i%d" % (
                                                  r[0], r[1], x["fwd"], x["weight"],
                                                  x["active"], x["inact"])
                                                  for r, x in v["rs"].items()))
                     for k, v in sorted(t.items()))


def ours(t):
    return {k: v for k, v in t.items() if k != FOREIGN}


def names(lines):
    return collections.Counter(l.split()[0] if not l.startswith("ERR") else "ERR"
                               for l in lines)


def wait_until(fn, bound=DEADLINE, step=0.2):
    end = time.monotonic() + bound
    while True:
        if fn():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(step)


class Kproxyd:
    def __init__(self, topo, mdir, sched, *extra, wait=True, wrap=()):
        self.sock = os.path.join(mdir, "..", "kproxyd.sock")
        self.logname = os.path.join(mdir, "..", "kproxyd.log")
        self.log = open(self.logname, "a")
        self.log.write("==== kproxyd --ipvs-scheduler %s %s\n" % (sched, " ".join(extra)))
        self.log.flush()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", topo.node, *wrap, KPROXYD, "--proxy-mode", "ipvs",
             "--ipvs-scheduler", sched, "--manifests", mdir, "--control-socket", self.sock,
             "--hostname-override", "node-a", "--cluster-cidr", "10.244.0.0/16",
             "--min-sync-period", "100ms", "--nodeport-addresses", "192.168.50.0/24",
             "--v", "2", "--healthz-bind-address", "127.0.0.1:0",
             "--metrics-bind-address", "127.0.0.1:0", "--sync-period", SYNC_PERIOD, *extra],
            stdout=self.log, stderr=self.log)
        self.synced = wait and wait_until(lambda: self.proc.poll() is not None or
                                          self.in_sync(), step=0.1) and self.proc.poll() is None

    def status(self):
        r = subprocess.run([KPROXYCTL, "-s", self.sock, "status", "-o", "json"],
                           capture_output=True, text=True, timeout=DEADLINE)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def check(self):
        """kproxyctl check: (exit status, its output)."""
        r = subprocess.run([KPROXYCTL, "-s", self.sock, "check"], capture_output=True,
                           text=True, timeout=DEADLINE)
        return r.returncode, r.stdout + r.stderr

    def in_sync(self):
        st = self.status()
        return bool(st) and st["sync"]["count"] > 0 and not st["sync"]["pending"] \
            and st["sync"]["last_result"] == 0

    def why(self):
        """Why kproxyd is not answering: exit status, or where it waits."""
        rc = self.proc.poll()
        if rc is not None:
            return "kproxyd exited with status %d" % rc
        out = []
        for f in ("wchan", "stack"):
            try:
                with open("/proc/%d/%s" % (self.proc.pid, f)) as fh:
                    out.append("%s: %s" % (f, fh.read().strip()))
            except OSError as e:
                out.append("%s: %s" % (f, e))
        try:    # which netlink families its sockets speak (kproxyd's namespace)
            inodes = {os.readlink("/proc/%d/fd/%s" % (self.proc.pid, fd))[8:-1]
                      for fd in os.listdir("/proc/%d/fd" % self.proc.pid)}
            fams = {"0": "rtnetlink", "12": "nfnetlink", "16": "genetlink"}
            with open("/proc/%d/net/netlink" % self.proc.pid) as fh:
                socks = ["%s (Rmem %s, Drops %s)" % (fams.get(f[1], "proto " + f[1]), f[4], f[8])
                         for f in (l.split() for l in fh.read().splitlines()[1:])
                         if f[-1] in inodes]
            out.append("netlink sockets: " + ", ".join(socks))
        except OSError as e:
            out.append("netlink sockets: %s" % e)
        r = subprocess.run([KPROXYCTL, "-s", self.sock, "status"], capture_output=True,
                           text=True, timeout=DEADLINE)
        return "kproxyd (pid %d) runs but kproxyctl status says: %s\n%s" % (
            self.proc.pid, (r.stdout + r.stderr).strip()[:500], "\n".join(out))

    def logtail(self, n=40):
        with open(self.logname) as f:
            return "\n".join(f.read().splitlines()[-n:])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Conns:
    """Many TCP connections held open from one namespace (client.py conns)."""
    def __init__(self, ns, host, port, src=None):
        env = dict(os.environ, KP_SRC=src) if src else None
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, CLIENT, "conns",
                                   host, str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def open(self):
        """(id, pod name or "ERR...")"""
        cid, answer = (self.cmd("open").split(" ", 1) + [""])[:2]
        return int(cid or 0), answer.split(" ")[0] if not answer.startswith("ERR") else answer

    def send(self, cid, text):
        return self.cmd("send %d %s" % (cid, text))

    def close(self, cid, reset=False):
        return self.cmd("%s %d" % ("reset" if reset else "close", cid))

    def end(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def udp_ct(ns, vip, port, reply_src):
    """The conntrack entries of namespace ns (read from /proc/net/nf_conntrack) for UDP to
    vip:port whose reply comes from reply_src."""
    r = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/nf_conntrack"],
                       capture_output=True, text=True)
    found = []
    for line in r.stdout.splitlines():
        f = line.split()
        if "udp" not in f:
            continue
        kv = [x.split("=", 1) for x in f if "=" in x]
        src = [v for k, v in kv if k == "src"]
        dst = [v for k, v in kv if k == "dst"]
        dport = [v for k, v in kv if k == "dport"]
        if len(src) >= 2 and dst and dport and dst[0] == vip and dport[0] == str(port) \
                and src[1] == reply_src:
            found.append(line)
    return found


def udp_client(ns, vip, port):
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, CLIENT, "udphold",
                             vip, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def ask(p):
    p.stdin.write("q\n")
    p.stdin.flush()
    return p.stdout.readline().split(" ")[0].strip()


def dump(k):
    r = subprocess.run([KPROXYCTL, "-s", k.sock, "dump", "-o", "json"], capture_output=True,
                       text=True, timeout=DEADLINE)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr}


def kube_ipvs0(ns):
    r = sh("ip", "-o", "addr", "show", "dev", "kube-ipvs0", ns=ns, check=False)
    if r.returncode != 0:
        return None, set()
    link = sh("ip", "-d", "-o", "link", "show", "dev", "kube-ipvs0", ns=ns).stdout
    return link, {l.split()[3].split("/")[0] for l in r.stdout.splitlines()
                  if " inet " in l or " inet6 " in l}


def save(ns):
    out = ""
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        out += sh(tool, ns=ns).stdout
    return [re.sub(r" \[\d+:\d+\]$", "", l) for l in out.splitlines() if not l.startswith("#")]


def ipsets(ns):
    return sorted(sh("ipset", "list", "-n", ns=ns).stdout.split())


def sysctl(ns, name):
    r = sh("sysctl", "-n", name, ns=ns, check=False)
    return r.stdout.strip() if r.returncode == 0 else "?"


# ---------------------------------------------------------------------------------------
def test_programmed(topo, k, sched):
    """What kproxyd programmed: virtual servers, real servers, kube-ipvs0, sysctls."""
    n = topo.node
    t = ipvs(n)
    want = expected([A1, B1, B2], [A1, B1])
    got = {key: set(v["rs"]) for key, v in ours(t).items()}
    ok(got == want, "one virtual server per ClusterIP, externalIP, LB ingress IP and "
       "node address x NodePort, real servers = ready endpoints",
       "missing: %s\nunexpected: %s\nwrong real servers: %s\n%s" % (
           sorted(set(want) - set(got)), sorted(set(got) - set(want)),
           sorted(k_ for k_ in want if k_ in got and got[k_] != want[k_]), fmt_table(t)))
    rs = [x for v in ours(t).values() for x in v["rs"].values()]
    ok(rs and all(x["fwd"] == "Masq" and x["weight"] == 1 for x in rs),
       "every real server is masqueraded (Masq) with weight 1", fmt_table(t))
    ok(ours(t) and all(v["sched"] == sched for v in ours(t).values()),
       "every virtual server uses --ipvs-scheduler %s" % sched, fmt_table(t))
    return t


def test_rr(topo, k):
    n = topo.node
    t = test_programmed(topo, k, "rr")
    ok(t.get(FOREIGN, {}).get("rs", {}).keys() == {("10.244.9.9", 1)},
       "a virtual server kproxyd does not own is left alone", fmt_table(t))
    link, addrs = kube_ipvs0(n)
    ok(link is not None and " dummy " in link and addrs == BOUND,
       "kube-ipvs0 is a dummy link holding exactly the ClusterIPs, externalIPs and LB IPs",
       "%s\nbound: %s\nmissing: %s\nextra: %s" % (link, sorted(addrs),
                                                 sorted(BOUND - addrs), sorted(addrs - BOUND)))
    st = t.get(("TCP", "10.96.0.11", 80), {})
    ok(st.get("persistent") == AFFINITY_TIMEOUT,
       "sessionAffinity ClientIP: a persistent virtual server with timeoutSeconds (%d)"
       % AFFINITY_TIMEOUT, st)
    ok(sysctl(n, "net.ipv4.vs.conntrack") == "1", "net.ipv4.vs.conntrack=1 in the node "
       "namespace (needed to masquerade IPVS traffic)", sysctl(n, "net.ipv4.vs.conntrack"))
    diag("vs sysctls after start: " + ", ".join(
        "%s=%s" % (s, sysctl(n, "net.ipv4.vs." + s)) for s in
        ("conntrack", "expire_nodest_conn", "expire_quiescent_template", "conn_reuse_mode")))

    check_rr(topo)
    check_sources(topo)
    check_dump(topo, k)


def check_rr(topo):
    """rr: strict rotation over 3 endpoints."""
    n = topo.node
    lines = topo.run(n, "tcp", "10.96.0.10", 80, 30)
    seq = [l.split()[0] for l in lines]
    c = collections.Counter(seq)
    ok(set(c) == {"pod-a1", "pod-b1", "pod-b2"} and all(9 <= v <= 11 for v in c.values()),
       "30 connections from the node, 10 to each endpoint", (c, lines[:6]))
    ok(len(seq) == 30 and all(seq[i] != seq[i + 1] for i in range(29))
       and all(seq[i] == seq[i + 3] for i in range(27)),
       "consecutive connections go to different endpoints, in a fixed rotation", seq)
    diag("the node's connections to a ClusterIP are seen from %s"
         % sorted(set(l.split()[1] for l in lines if not l.startswith("ERR"))))


def check_sources(topo):
    """ClusterIP, NodePort, externalIP, LB IP, hairpin, no endpoints, affinity, UDP."""
    n = topo.node

    # from the client namespace
    lines = topo.run(topo.client, "tcp", "10.96.0.10", 80, 30)
    ok(set(names(lines)) == {"pod-a1", "pod-b1", "pod-b2"},
       "ClusterIP routed through the node reaches every ready endpoint", lines[:6])
    ok(lines and all(l.endswith(" " + MASQ_SRC) for l in lines),
       "ClusterIP from outside the cluster CIDR is masqueraded (KUBE-CLUSTER-IP)", lines[:6])
    lines = topo.run(topo.client, "tcp", NODE_IP, 30080, 30)
    ok(set(names(lines)) == {"pod-a1", "pod-b1", "pod-b2"},
       "NodePort from the client namespace reaches every ready endpoint", lines[:6])
    ok(lines and all(l.endswith(" " + MASQ_SRC) for l in lines),
       "NodePort traffic is masqueraded: the pod sees the node (%s)" % MASQ_SRC, lines[:6])
    lines = topo.run(topo.client, "tcp", NODE_IP, 30083, 20)
    ok(names(lines) == {"pod-a1": 20}, "externalTrafficPolicy Local NodePort: only the "
       "local endpoint", lines[:6])
    ok(lines and all(l.endswith(" 192.168.50.2") for l in lines),
       "externalTrafficPolicy Local keeps the client source address", lines[:6])
    lines = topo.run(topo.client, "tcp", EXT_IP, 80, 5)
    ok(names(lines) == {"pod-b2": 5}, "externalIP from the client namespace", lines)
    lines = topo.run(topo.client, "tcp", LB_IP, 80, 5)
    ok(names(lines) == {"pod-b2": 5}, "LoadBalancer ingress IP from the client namespace",
       lines)
    lines = topo.run(topo.client, "tcp", LB_IP, 80, 2, src="192.168.50.3")
    ok(lines and all(l.startswith("ERR") and "refused" not in l for l in lines),
       "loadBalancerSourceRanges: a source outside the ranges gets nothing from the LB IP "
       "(dropped)", lines)
    lines = topo.run(topo.client, "tcp", NODE_IP, 30087, 3, src="192.168.50.3")
    ok(names(lines) == {"pod-b2": 3}, "and still reaches the same service's NodePort", lines)
    # hairpin happens only for an endpoint on this node (node-a): kube-proxy's
    # KUBE-LOOP-BACK holds the local endpoints only
    lines = topo.run(topo.pods["pod-a1"][0], "tcp", "10.96.0.19", 80, 5)
    ok(names(lines) == {"pod-a1": 5} and all(l.endswith(" " + MASQ_SRC) for l in lines),
       "hairpin: a local pod reaches itself through its ClusterIP and sees %s "
       "(KUBE-LOOP-BACK)" % MASQ_SRC, lines)
    loop = sh("ipset", "list", "KUBE-LOOP-BACK", ns=n).stdout
    members = [l for l in loop.splitlines() if l.startswith("10.")]
    ok(members and all(l.startswith(A1[0] + ",") for l in members),
       "KUBE-LOOP-BACK holds local endpoints only (%d entries, all %s)"
       % (len(members), A1[0]), loop)

    # no endpoints: the virtual server stays, without real servers, and refuses
    lines = topo.run(n, "tcp", "10.96.0.12", 80, 3)
    ok(lines and all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0
                     for l in lines),
       "a service without endpoints refuses at once (< 1 s) from the node", lines)
    lines = topo.run(topo.client, "tcp", "10.96.0.12", 80, 3)
    ok(lines and all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0
                     for l in lines),
       "and from the client namespace (ClusterIP)", lines)
    lines = topo.run(topo.client, "tcp", NODE_IP, 30082, 3)
    ok(lines and all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0
                     for l in lines),
       "and on its NodePort", lines)

    # session affinity
    c = names(topo.run(n, "tcp", "10.96.0.11", 80, 20))
    ok(len(c) == 1 and "ERR" not in c, "ClientIP affinity: 20 connections from the node "
       "land on one endpoint", c)
    c2 = names(topo.run(topo.client, "tcp", "10.96.0.11", 80, 20, src="192.168.50.3"))
    ok(len(c2) == 1 and "ERR" not in c2, "and 20 from 192.168.50.3 on one endpoint", c2)

    # UDP: one socket is one IPVS connection (one real server); each run is a new flow
    flows = [names(topo.run(topo.client, "udp", "10.96.0.14", 53, 3)) for _ in range(4)]
    ok(all(len(c) == 1 and "ERR" not in c and sum(c.values()) == 3 for c in flows)
       and set().union(*flows) == {"pod-a1", "pod-b1"},
       "UDP through a ClusterIP: each flow sticks to one endpoint, 4 flows reach both",
       flows)

    # IPv6: a dual-stack service's IPv6 ClusterIP (bound /128, ip6tables, AF_INET6 IPVS)
    lines = topo.run(topo.client, "tcp", "fd00:96::18", 80, 12)
    ok(set(names(lines)) == {"pod-a1", "pod-b1"}, "IPv6 ClusterIP of a dual-stack service "
       "from the client namespace", lines[:4])
    lines = topo.run(n, "tcp", "fd00:96::18", 80, 12)
    ok(set(names(lines)) == {"pod-a1", "pod-b1"}, "and from the node", lines[:4])
    c = names(topo.run(topo.client, "tcp", "10.96.0.18", 80, 12))
    ok(set(c) == {"pod-a1", "pod-b1"}, "and its IPv4 ClusterIP", c)



def check_dump(topo, k):
    """kproxyctl dump agrees with the kernel."""
    n = topo.node
    d = dump(k)
    t = ipvs(n)
    kern = {key: set(v["rs"]) for key, v in ours(t).items()}
    js = {}
    for e in d.get("entries", []):
        js.setdefault((e["protocol"].upper(), e["vip"], e["port"]), set()).update(
            (x["ip"], x["port"]) for x in e["endpoints"])
    ok(js and js == kern, "kproxyctl dump -o json agrees with ipvsadm -Ln",
       "only in dump: %s\nonly in ipvsadm: %s\ndiffering: %s\n%s" % (
           sorted(set(js) - set(kern)), sorted(set(kern) - set(js)),
           sorted((key, sorted(js[key]), sorted(kern[key])) for key in js
                  if key in kern and js[key] != kern[key]), str(d)[:1500]))
    # one service (kproxyd reads back its virtual servers' real servers only); compared
    # by frontend and real servers (connection counts may move between the two dumps)
    def frontends(entries, svc):
        return sorted((e["protocol"], e["vip"], e["port"], e["kind"],
                       sorted((x["ip"], x["port"]) for x in e["endpoints"]))
                      for e in entries if e["service"] == svc)
    svc = "t/web"
    r = subprocess.run([KPROXYCTL, "-s", k.sock, "dump", svc, "-o", "json"],
                       capture_output=True, text=True, timeout=DEADLINE)
    one = json.loads(r.stdout).get("entries", []) if r.returncode == 0 else []
    want = frontends(d.get("entries", []), svc)
    ok(want and frontends(one, svc) == want and len(one) == len(want),
       "kproxyctl dump %s lists what the whole dump lists for it" % svc,
       "%s\n%s" % (one, want))
    jw = {(e["protocol"].upper(), e["vip"], e["port"], x["ip"], x["port"]): x["weight"]
          for e in d.get("entries", []) for x in e["endpoints"] if "weight" in x}
    kw = {key + r: x["weight"] for key, v in ours(t).items() for r, x in v["rs"].items()}
    if jw:
        ok(jw == kw, "and its real servers' weights are ipvsadm's",
           sorted(set(jw.items()) ^ set(kw.items()))[:10])
    else:
        ok(True, "and its real servers' weights are ipvsadm's # SKIP the dump has no weights")
    details = [(e["protocol"].upper(), e["vip"], e["port"], e.get("detail"))
               for e in d.get("entries", []) if e.get("detail")]
    if details:
        bad = [x for x in details if (x[0], x[1], x[2]) in t
               and not re.search(r"\b%s\b" % t[(x[0], x[1], x[2])]["sched"], x[3])]
        ok(not bad, "the dump's detail names each virtual server's scheduler", bad[:10])
        bad = [x for x in details if (x[0], x[1], x[2]) in t and
               bool(re.search(r"persistent %s\b" % t[(x[0], x[1], x[2])]["persistent"], x[3]))
               != (t[(x[0], x[1], x[2])]["persistent"] is not None)]
        ok(not bad, "and says 'persistent TIMEOUT' exactly where ipvsadm does", bad[:10])
        diag("dump detail, e.g.: %s" % details[0][3])
    else:
        ok(True, "the dump's detail names each virtual server's scheduler # SKIP the dump "
           "has no detail")


def test_graceful(topo, k, mdir):
    n = topo.node
    # TCP: a removed endpoint with a connection keeps weight 0 until the connection is gone
    conns = Conns(topo.client, "10.96.0.16", 80)
    cid, pod = conns.open()
    x = {"pod-a1": A1, "pod-b1": B1, "pod-b2": B2}.get(pod)
    if not ok(x is not None, "a connection held open through the ClusterIP", pod):
        conns.end()
        return
    rest = [e for e in (A1, B1, B2) if e is not x]
    write(mdir, "grace.yaml", slice_("grace", rest))
    key, rs, x_ip = ("TCP", "10.96.0.16", 80), (x[0], 8080), x[0]

    def rs_of():
        return ipvs(n).get(key, {}).get("rs", {})
    ok(wait_until(lambda: rs_of().get(rs, {}).get("weight") == 0),
       "the removed endpoint %s stays as a real server with weight 0" % pod,
       fmt_table(ipvs(n)))
    time.sleep(2.5)     # more than one --sync-period: the next syncs keep it
    ok(conns.send(cid, "still-there") == "still-there",
       "the held connection to the removed endpoint still exchanges data")
    lines = topo.run(n, "tcp", "10.96.0.16", 80, 20)
    c = names(lines)
    ok(set(c) == {POD_OF[e[0]] for e in rest}, "new connections never go to the removed "
       "endpoint", c)
    cur = rs_of().get(rs)
    ok(cur and cur["weight"] == 0 and cur["active"] >= 1,
       "while its connection is open ipvsadm shows it with weight 0 and an active "
       "connection", fmt_table(ipvs(n)))
    eps = [x for e in dump(k).get("entries", []) if (e["protocol"], e["vip"], e["port"]) == key
           for x in e["endpoints"] if x["ip"] == x_ip]
    ok(len(eps) == 1 and eps[0].get("weight", 0) == 0 and eps[0].get("active_conns", 1) >= 1,
       "and kproxyctl dump lists it too (weight 0, its active connection)", eps)
    conns.close(cid, reset=True)     # RST: the IPVS entry goes to CLOSE (10 s), not TIME_WAIT
    conns.end()
    t0 = time.monotonic()
    gone = wait_until(lambda: rs not in rs_of(), bound=GRACE_BOUND, step=0.5)
    dt = time.monotonic() - t0
    ok(gone, "after the connection is closed (RST) the real server is deleted within %.0f s "
       "(took %.1f s)" % (GRACE_BOUND, dt), fmt_table(ipvs(n)))
    ok(set(rs_of()) == {(e[0], 8080) for e in rest}, "the other real servers stay",
       fmt_table(ipvs(n)))

    # UDP: no graceful termination, deleted at once even with a flow on it
    u = udp_client(topo.client, "10.96.0.14", 53)
    first = [ask(u) for _ in range(3)]
    ukey = ("UDP", "10.96.0.14", 53)
    gone_ep = A1 if first[0] == "pod-a1" else B1
    kept = B1 if gone_ep is A1 else A1
    stale_before = udp_ct(n, "10.96.0.14", 53, gone_ep[0])
    write(mdir, "dns.yaml", slice_("dns", [kept], proto="UDP"))
    t0 = time.monotonic()
    # "at once": not after the flow's IPVS entry expires (300 s for UDP); 10 s of slack
    # for a loaded TCG guest (observed 0.1-1.2 s)
    deleted = wait_until(lambda: set(ipvs(n).get(ukey, {}).get("rs", {})) == {(kept[0], 8080)},
                         bound=10.0, step=0.1)
    dt = time.monotonic() - t0
    ok(len(set(first)) == 1 and first[0].startswith("pod-") and deleted,
       "UDP: a removed endpoint's real server is deleted at once, with a flow on it "
       "(%.1f s)" % dt, (first, fmt_table(ipvs(n))))
    stale_after = udp_ct(n, "10.96.0.14", 53, gone_ep[0])
    after = [ask(u) for _ in range(4)]
    u.stdin.close()
    u.wait(DEADLINE)
    ok(after[-1] == POD_OF[kept[0]] and after[-2] == POD_OF[kept[0]],
       "the UDP flow moves to the remaining endpoint (answers after the change: %s)" % after,
       after)
    ok(stale_before and not stale_after,
       "the UDP conntrack entry towards the removed endpoint is deleted by kproxyd",
       (stale_before, stale_after))
    write(mdir, "dns.yaml", slice_("dns", [A1, B1], proto="UDP"))
    write(mdir, "grace.yaml", slice_("grace", [A1, B1, B2]))
    ok(wait_until(lambda: set(ours(ipvs(n)).get(ukey, {}).get("rs", {})) ==
                  {(A1[0], 8080), (B1[0], 8080)}
                  and len(ipvs(n).get(key, {}).get("rs", {})) == 3),
       "endpoints added back become real servers again", fmt_table(ipvs(n)))


EXCLUDED = "10.97.0.5"	# a virtual server --ipvs-exclude-cidrs keeps


def test_resync(topo, k):
    n = topo.node
    key = ("TCP", "10.96.0.10", 80)
    r = sh("ipvsadm", "-D", "-t", "10.96.0.10:80", ns=n, check=False)
    ok(r.returncode == 0, "(virtual server 10.96.0.10:80 deleted behind kproxyd's back)",
       r.stderr)
    t0 = time.monotonic()
    back = wait_until(lambda: set(ipvs(n).get(key, {}).get("rs", {})) ==
                      {(A1[0], 8080), (B1[0], 8080), (B2[0], 8080)}, bound=4 * 2.0 + 5)
    ok(back, "the periodic resync (--sync-period %s) restores it with its real servers "
       "(%.1f s)" % (SYNC_PERIOD, time.monotonic() - t0), fmt_table(ipvs(n)))
    sh("ip", "addr", "del", "10.96.0.13/32", "dev", "kube-ipvs0", ns=n, check=False)
    back = wait_until(lambda: "10.96.0.13" in kube_ipvs0(n)[1], bound=4 * 2.0 + 5)
    ok(back, "and rebinds a VIP removed from kube-ipvs0", kube_ipvs0(n))
    c = names(topo.run(topo.client, "tcp", "10.96.0.13", 80, 6))
    ok(set(c) == {"pod-a1", "pod-b1"}, "the repaired ClusterIP works", c)
    ok(ipvs(n).get(FOREIGN, {}).get("rs", {}).keys() == {("10.244.9.9", 1)},
       "the foreign virtual server survives the resyncs", fmt_table(ipvs(n)))
    rc, out = k.check()
    ok(rc == 0 and out.startswith("ok: 0 differences"), "kproxyctl check: the IPVS table "
       "read back agrees with the desired state after the repair", out)


FILLERS = 300


def fillers(port):
    """FILLERS ClusterIP services on 10.98.0.0/16, all on @port (each attempt its own, so
    that its virtual servers are new), one endpoint each."""
    return "".join(svc("f%d" % i, "10.98.%d.%d" % (i // 250, i % 250 + 1), port) +
                   slice_("f%d" % i, [A1]) for i in range(FILLERS))


def filler_vs(pid, port):
    """Filler virtual servers on @port: /proc/PID/net/ip_vs is the table of PID's network
    namespace, read without a process per look."""
    try:
        with open("/proc/%d/net/ip_vs" % pid) as f:
            return sum(1 for l in f if re.match(r"^TCP\s+0A62[0-9A-F]{4}:%04X " % port, l))
    except OSError:
        return -1


def test_crash(topo, k, mdir):
    """kproxyd SIGKILLed in the middle of a sync (issue 16 item 2): each round writes
    FILLERS services (new ports, so every one is a new virtual server) and kills kproxyd as
    soon as some but not all of them are programmed (it is run in 2 ms slices for that). After each kill an established
    connection and new ones through a ClusterIP work; the next start converges without
    deleting what stays wanted."""
    n = topo.node
    held = Conns(topo.client, "10.96.0.10", 80)
    hid, hpod = held.open()
    k.stop()
    caught, echoes, fresh = 0, [], []
    port, slice_s = 1000, 0.002
    for rnd in range(1, 4):
        # kproxyd runs in slices of @slice_s between SIGSTOP and SIGCONT, its table looked
        # at while it is stopped, and is killed at the first look that finds some but not
        # all of this attempt's virtual servers (polling it while it ran missed the
        # window). A fast machine can program all of them in one slice: then the slice
        # is halved and the round tried again with new virtual servers (3 attempts).
        for attempt in range(3):
            port += 1
            write(mdir, "fillers.yaml", fillers(port))
            kk = Kproxyd(topo, mdir, "rr", wait=False)
            end = time.monotonic() + 120
            while time.monotonic() < end and kk.proc.poll() is None:
                if filler_vs(kk.proc.pid, port) > 0:
                    break
                kk.proc.send_signal(signal.SIGCONT)
                time.sleep(slice_s)
                kk.proc.send_signal(signal.SIGSTOP)
            kk.proc.kill()
            kk.proc.wait()
            at_kill = len([1 for key in ipvs(n) if key[1].startswith("10.98.") and
                           key[2] == port])
            diag("round %d, attempt %d (slices of %.2f ms): killed with %d filler virtual "
                 "servers programmed" % (rnd, attempt + 1, slice_s * 1000, at_kill))
            if at_kill < FILLERS:
                break
            slice_s /= 2
        caught += 0 < at_kill < FILLERS
        echoes.append(held.send(hid, "crash%d" % rnd) == "crash%d" % rnd)
        c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 4))
        fresh.append(set(c) <= {"pod-a1", "pod-b1", "pod-b2"} and sum(c.values()) == 4)
    ok(caught >= 2, "kproxyd was killed while programming virtual servers (%d of 3 rounds)"
       % caught)
    ok(hpod.startswith("pod-") and all(echoes), "an established connection through the "
       "ClusterIP answers after every kill", (hpod, echoes))
    ok(all(fresh), "new connections through the ClusterIP succeed after every kill", fresh)
    steady = subprocess.Popen(["ip", "netns", "exec", topo.client, sys.executable, CLIENT,
                               "tcp", "10.96.0.10", "80", "30"], stdout=subprocess.PIPE,
                              text=True)
    k = Kproxyd(topo, mdir, "rr")
    out, _ = steady.communicate(timeout=120)
    want = {("TCP", "10.98.%d.%d" % (i // 250, i % 250 + 1), port) for i in range(FILLERS)}
    got = {key for key in ipvs(n) if key[1].startswith("10.98.")}
    ok(k.synced and got == want, "the next start converges: exactly this round's filler "
       "virtual servers", (len(got), len(want), k.logtail(10)))
    errs = [l for l in out.splitlines() if not l.startswith("pod-")]
    ok(len(out.splitlines()) == 30 and not errs, "a client looping on the ClusterIP through "
       "that start sees no failure", errs[:5])
    held.end()
    os.unlink(os.path.join(mdir, "fillers.yaml"))
    ok(wait_until(lambda: not any(key[1].startswith("10.98.") for key in ipvs(n)),
                  bound=60), "and removing them removes their virtual servers")
    return k


def test_nodeaddr(topo, k):
    """A node address added in --nodeport-addresses' range after start gets its NodePort
    virtual servers (rtnetlink), and loses them when it goes."""
    n, new = topo.node, "192.168.50.21"
    key = ("TCP", new, 30080)
    ok(key not in ipvs(n), "(no virtual server on %s before it is the node's)" % new)
    sh("ip", "addr", "add", new + "/24", "dev", "vcl", ns=n)
    ok(wait_until(lambda: set(ipvs(n).get(key, {}).get("rs", {})) ==
                  {(A1[0], 8080), (B1[0], 8080), (B2[0], 8080)}),
       "an address added after start gets its NodePort virtual servers",
       fmt_table(ipvs(n)) + "\n" + k.logtail(10))
    c = names(topo.run(topo.client, "tcp", new, 30080, 12))
    ok(set(c) <= {"pod-a1", "pod-b1", "pod-b2"} and "ERR" not in c,
       "NodePort traffic to the new address reaches the endpoints", c)
    sh("ip", "addr", "del", new + "/24", "dev", "vcl", ns=n)
    ok(wait_until(lambda: not any(k_[1] == new for k_ in ipvs(n))),
       "and a removed address loses them", fmt_table(ipvs(n)))


def test_sh(topo, k):
    test_programmed(topo, k, "sh")
    check_sh(topo)


def check_sh(topo):
    per_src = {}
    for src in ("192.168.50.2", "192.168.50.3"):
        per_src[src] = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 15, src=src))
    ok(all(len(c) == 1 and "ERR" not in c for c in per_src.values()),
       "each source address always lands on the same endpoint", per_src)


def test_dh(topo, k):
    test_programmed(topo, k, "dh")
    check_dh(topo)


def check_dh(topo):
    c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 15, src="192.168.50.2")
              + topo.run(topo.client, "tcp", "10.96.0.10", 80, 15, src="192.168.50.3")
              + topo.run(topo.node, "tcp", "10.96.0.10", 80, 15))
    ok(len(c) == 1 and "ERR" not in c,
       "every connection to one VIP, from any source, lands on one endpoint", c)


def test_least(topo, k, sched):
    """lc, sed, nq: with connections held open, a new one goes to a real server with the
    fewest active connections (ipvsadm's ActiveConn, read just before)."""
    test_programmed(topo, k, sched)
    check_least(topo, sched)


def check_least(topo, sched):
    n = topo.node
    key = ("TCP", "10.96.0.10", 80)
    conns = Conns(topo.client, "10.96.0.10", 80)
    try:
        held = [conns.open() for _ in range(9)]
        pods = collections.Counter(p for _, p in held)
        heavy = pods.most_common(1)[0][0]
        for cid, p in held:
            if p != heavy:
                conns.close(cid)
        heavy_ip = [ip for ip, nm in POD_OF.items() if nm == heavy][0]

        def settled():
            rs = ipvs(n).get(key, {}).get("rs", {})
            return all(x["active"] == (pods[heavy] if ip == heavy_ip else 0)
                       for (ip, _), x in rs.items())
        ok(all(p.startswith("pod-") for _, p in held) and wait_until(settled, bound=5.0),
           "%d held connections, %d left open on %s: ipvsadm counts them as active"
           % (len(held), pods[heavy], heavy), (held, fmt_table(ipvs(n))))
        rounds = []
        for _ in range(5):
            rs = ipvs(n).get(key, {}).get("rs", {})
            active = {POD_OF.get(ip, ip): x["active"] for (ip, _), x in rs.items()}
            least = {p for p, a in active.items() if a == min(active.values())}
            _, p = conns.open()
            rounds.append((dict(active), p, p in least))
        ok(all(r[2] for r in rounds) and not any(r[1] == heavy for r in rounds),
           "each of 5 new connections goes to an endpoint with the fewest active "
           "connections, never to the loaded one",
           "\n".join("active %s -> %s%s" % (a, p, "" if good else "  <-- not least")
                     for a, p, good in rounds))
    finally:
        conns.end()

    def idle():
        return all(x["active"] == 0 for x in ipvs(n).get(key, {}).get("rs", {}).values())
    if not wait_until(idle, bound=5.0):
        diag("5 s after closing every held connection ActiveConn is still: %s"
             % fmt_table({key: ipvs(n).get(key, {"sched": "?", "flags": "", "rs": {}})}))


def caps_wrap(caps):
    """uid 0 with exactly @caps (setpriv: bounding and inheritable sets)."""
    sets = "-all" + "".join(",+" + c for c in caps)
    return ("setpriv", "--bounding-set", sets, "--inh-caps", sets, "--")


def test_privs(topo, mdir):
    """ipvs mode with CAP_NET_ADMIN and CAP_NET_RAW alone (kproxyd(8), Privileges; the
    modules are loaded already), then without CAP_NET_ADMIN."""
    k = Kproxyd(topo, mdir, "rr", wrap=caps_wrap(["net_admin", "net_raw"]))
    eff = ""
    if k.proc.poll() is None:
        with open("/proc/%d/status" % k.proc.pid) as f:
            eff = re.search(r"^CapEff:\s*(\S+)", f.read(), re.M).group(1)
    c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 12) +
              topo.run(topo.client, "tcp", NODE_IP, 30080, 12))
    ok(k.synced and eff and int(eff, 16) == (1 << 12 | 1 << 13) and
       set(c) == {"pod-a1", "pod-b1", "pod-b2"} and sum(c.values()) == 24,
       "with only CAP_NET_ADMIN and CAP_NET_RAW (CapEff %s) ipvs mode syncs and carries a "
       "ClusterIP and a NodePort" % eff, (c, k.logtail(10), k.why()))
    ok(k.stop() == 0, "SIGTERM stops it")
    k = Kproxyd(topo, mdir, "rr", wrap=caps_wrap(["net_raw"]), wait=False)
    exited = wait_until(lambda: k.proc.poll() is not None)
    ok(exited and k.proc.returncode != 0 and "needs CAP_NET_ADMIN" in k.logtail(10) and
       "lacks CAP_NET_ADMIN" in k.logtail(10),
       "without CAP_NET_ADMIN it exits at start naming it", k.logtail(10))
    if k.proc.poll() is None:
        k.stop()


def test_cleanup(topo, before):
    n = topo.node
    r = subprocess.run(["ip", "netns", "exec", n, KPROXYD, "--proxy-mode", "ipvs",
                        "--cleanup"], capture_output=True, text=True, timeout=60)
    ok(r.returncode == 0, "kproxyd --proxy-mode ipvs --cleanup exits 0", r.stderr)
    t = ipvs(n)
    ok(set(t) == {FOREIGN} and t[FOREIGN]["rs"].keys() == {("10.244.9.9", 1)},
       "--cleanup removes every virtual server of kproxyd's and only those", fmt_table(t))
    link, addrs = kube_ipvs0(n)
    ok(link is None, "--cleanup deletes kube-ipvs0", (link, addrs))
    after = save(n)
    ok(after == before["rules"], "--cleanup leaves iptables as it was before kproxyd "
       "started (its KUBE-* chains gone, the foreign chain kept)",
       "added: %s\nremoved: %s" % ([l for l in after if l not in before["rules"]],
                                   [l for l in before["rules"] if l not in after]))
    sets = ipsets(n)
    ok(sets == before["sets"], "--cleanup destroys its KUBE-* ipsets, keeps the foreign one",
       sets)


def main():
    global SCHED
    if os.geteuid() != 0:
        print("Bail out! needs root (run it in the guest: tests/vm/test-ipvs.sh)")
        return 1
    for tool in ("ipvsadm", "ipset", "iptables-legacy"):
        if not shutil.which(tool):
            print("Bail out! %s is missing in the guest" % tool)
            return 1
    # The vs sysctls exist only once ip_vs is loaded. iptables-legacy loads ip_tables
    # itself through /proc/sys/kernel/modprobe, which in the guest names a wrapper outside
    # the chroot, so it is loaded here; the kernel loads tables and matches on demand.
    r = subprocess.run(["modprobe", "-a", "ip_vs", "ip_vs_rr", "ip_vs_sh", "ip_vs_dh",
                        "ip_vs_lc", "ip_vs_sed", "ip_vs_nq", "ip_set", "xt_set", "dummy",
                        "ip_tables", "ip6_tables", "iptable_nat", "iptable_filter",
                        "ip6table_nat", "ip6table_filter", "iptable_mangle", "iptable_raw",
                        "ip6table_mangle", "ip6table_raw"], capture_output=True, text=True)
    if r.returncode != 0:
        print("Bail out! modprobe failed: %s" % r.stderr.strip())
        return 1
    tmp = tempfile.mkdtemp(prefix="kp-ipvs-")
    mdir = os.path.join(tmp, "manifests")
    os.mkdir(mdir)
    topo = k = None
    try:
        t0 = time.monotonic()
        topo = Topology(PODS, external_ips=[EXT_IP, LB_IP])
        diag("topology up in %.1f s" % (time.monotonic() - t0))
        n = topo.node
        # foreign state that kproxyd must leave alone, also in --cleanup
        sh("ipvsadm", "-A", "-t", "10.1.2.3:99", "-s", "wlc", ns=n)
        sh("ipvsadm", "-a", "-t", "10.1.2.3:99", "-r", "10.244.9.9:1", "-m", ns=n)
        sh("iptables-legacy", "-t", "nat", "-N", "OTHER-CHAIN", ns=n)
        sh("iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-d", "203.0.113.9", "-j",
           "OTHER-CHAIN", ns=n)
        sh("ipset", "create", "OTHER-SET", "hash:ip", ns=n)
        for tool in ("iptables-legacy", "ip6tables-legacy"):
            for table in ("filter", "nat", "mangle", "raw"):   # loaded before the snapshot
                sh(tool, "-t", table, "-S", ns=n, check=False)
        before = {"rules": save(n), "sets": ipsets(n)}
        write(mdir, "services.yaml", services())
        write(mdir, "grace.yaml", slice_("grace", [A1, B1, B2]))
        write(mdir, "dns.yaml", slice_("dns", [A1, B1], proto="UDP"))

        SCHED = "rr"
        k = Kproxyd(topo, mdir, "rr")
        if not ok(k.synced, "kproxyd runs in ipvs mode and completes a sync",
                  k.logtail() + "\n" + k.why()):
            print("Bail out! kproxyd --proxy-mode ipvs did not start or sync (log above)")
            return 1
        test_rr(topo, k)
        test_graceful(topo, k, mdir)
        test_resync(topo, k)
        test_nodeaddr(topo, k)
        k = test_crash(topo, k, mdir)
        held = Conns(topo.client, "10.96.0.10", 80)
        hid, hpod = held.open()
        ok(k.stop() == 0, "SIGTERM stops kproxyd")
        for sched, fn in (("sh", test_sh), ("dh", test_dh), ("lc", test_least),
                          ("sed", test_least), ("nq", test_least)):
            SCHED = sched
            t0 = time.monotonic()
            extra = ("--ipvs-strict-arp", "--ipvs-tcp-timeout", "901s",
                     "--ipvs-tcpfin-timeout", "61s", "--ipvs-udp-timeout", "301s",
                     "--ipvs-exclude-cidrs", EXCLUDED + "/24") if sched == "dh" else ()
            if sched in ("sh", "dh"):
                # a virtual server on a kube-ipvs0 address, as kproxyd's own look
                sh("ip", "addr", "replace", EXCLUDED + "/32", "dev", "kube-ipvs0",
                   ns=topo.node, check=False)
                sh("ipvsadm", "-A", "-t", EXCLUDED + ":80", "-s", "rr", ns=topo.node,
                   check=False)
            k = Kproxyd(topo, mdir, sched, *extra)
            if not ok(k.synced, "kproxyd restarts with --ipvs-scheduler %s (%.1f s)"
                      % (sched, time.monotonic() - t0), k.logtail() + "\n" + k.why()):
                k.stop()
                continue
            if sched in ("sh", "dh"):
                kept = ("TCP", EXCLUDED, 80) in ipvs(topo.node)
                ok(kept == (sched == "dh"), "a virtual server on a kube-ipvs0 address is "
                   "removed as kproxyd's (--ipvs-scheduler sh) unless --ipvs-exclude-cidrs "
                   "covers it (dh)", fmt_table(ipvs(topo.node)))
                sh("ipvsadm", "-D", "-t", EXCLUDED + ":80", ns=topo.node, check=False)
                sh("ip", "addr", "del", EXCLUDED + "/32", "dev", "kube-ipvs0", ns=topo.node,
                   check=False)
            if extra:
                tmo = sh("ipvsadm", "-L", "--timeout", ns=topo.node).stdout
                ok("Timeout (tcp tcpfin udp): 901 61 301" in tmo,
                   "--ipvs-tcp/tcpfin/udp-timeout set IPVS's timeouts (ipvsadm -L --timeout)",
                   tmo)
                arp = [sh("sysctl", "-n", "net.ipv4.conf.all." + k_, ns=topo.node)
                       .stdout.strip() for k_ in ("arp_ignore", "arp_announce")]
                ok(arp == ["1", "2"], "--ipvs-strict-arp sets arp_ignore=1 and "
                   "arp_announce=2", arp)
            if held:
                echo = held.send(hid, "after-restart")
                held.end()
                held = None
                ok(hpod.startswith("pod-") and echo == "after-restart",
                   "an established connection through the VIP survives a kproxyd restart "
                   "that changes the scheduler", (hpod, echo))
            if fn is test_least:
                fn(topo, k, sched)
            else:
                fn(topo, k)
            k.stop()
        SCHED = "least privilege"
        k = None
        test_privs(topo, mdir)
        SCHED = ""
        test_cleanup(topo, before)
    except Exception as e:  # report, then clean up
        import traceback
        ok(False, "test run raised %s" % type(e).__name__, traceback.format_exc())
    finally:
        if k and k.proc.poll() is None:
            k.stop()
        if topo:
            topo.teardown()
        log = os.path.join(tmp, "kproxyd.log")
        if failed and os.path.exists(log):
            print("# kproxyd log (tail):")
            for line in open(log).read().splitlines()[-40:]:
                print("#   " + line)
        shutil.rmtree(tmp, ignore_errors=True)
    print("# %d passed, %d failed" % (count - failed, failed))
    print("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
