#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd --proxy-mode userspace in a node namespace (the iptables tests' topology), with
real connections from the node, from a client namespace and from pods: portals and node
ports to the proxy ports, endpoints in turn, a dead endpoint costing no failed request,
ClientIP affinity, UDP flows and their expiry, a 100 MiB transfer each way, 1,000
concurrent connections, endpoint and service removal, the connection limit, the port
range, restart, resync and cleanup. Needs root, iptables-legacy and network namespaces;
prints TAP."""
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from topology import Topology, sh  # noqa: E402
import kptest  # noqa: E402
from kptest import KPROXYD  # noqa: E402
from kptest import Tap, names, popen_client, save, say, slice_, svc, wait_until  # noqa: E402

DEADLINE = 10.0
TAP = Tap()
ok = TAP.ok

PODS = [("pod-a1", "10.244.1.2", "fd00:10:244::2"), ("pod-b1", "10.244.2.3", "fd00:10:244::3"),
        ("pod-b2", "10.244.2.4", "fd00:10:244::4"), ("pod-unready", "10.244.1.9")]
MIB100 = 100 << 20


A1, B1, B2 = [(ip, "node-a" if ip.endswith("1.2") else "node-b", True) for _, ip, *_ in PODS[:3]]
UN = (PODS[3][1], "node-a", False)
V6 = {p[1]: p[2] for p in PODS if len(p) > 2}


def v6(eps):
    return [(V6[ip], node, ready) for ip, node, ready in eps if ip in V6]


def manifests(web_eps=(A1, B1, B2, UN), with_gone=True):
    return (svc("web", "10.96.0.10", 80, ptype="NodePort", node_port=30080)
            + slice_("web", web_eps)
            + svc("sticky", "10.96.0.11", 80, "  sessionAffinity: ClientIP\n")
            + slice_("sticky", [A1, B1, B2])
            + svc("empty", "10.96.0.12", 80, ptype="NodePort", node_port=30082)
            + svc("local", "10.96.0.13", 80, "  externalTrafficPolicy: Local\n",
                  ptype="NodePort", node_port=30083)
            + slice_("local", [A1, B1])
            + svc("dns", "10.96.0.14", 53, "  clusterIPs: [10.96.0.14, 'fd00:96::14']\n"
                  "  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n",
                  proto="UDP")
            + slice_("dns", [A1, B1], proto="UDP")
            + slice_("dns", v6([A1, B1]), proto="UDP", sname="dns-6", family="IPv6")
            + svc("ext", "10.96.0.15", 80, "  externalIPs: [192.168.50.100]\n")
            + slice_("ext", [B2])
            + svc("fw", "10.96.0.17", 80, "  loadBalancerSourceRanges: [192.168.50.2/32]\n"
                  "status:\n  loadBalancer:\n    ingress: [{ip: 192.168.50.200}]\n",
                  ptype="LoadBalancer", node_port=30087)
            + slice_("fw", [B2])
            + svc("dual", "10.96.0.18", 80, "  clusterIPs: [10.96.0.18, 'fd00:96::18']\n"
                  "  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n",
                  ptype="NodePort", node_port=30088)
            + slice_("dual", [A1, B1])
            + slice_("dual", v6([A1, B1]), sname="dual-6", family="IPv6")
            + svc("bulk", "10.96.0.19", 9000)
            + slice_("bulk", [A1, B1, B2], port=9000)
            + svc("sticky1", "10.96.0.22", 80, "  sessionAffinity: ClientIP\n"
                  "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 1}}\n")
            + slice_("sticky1", [A1, B1, B2])
            + svc("blackhole", "10.96.0.21", 80)
            + slice_("blackhole", [A1, ("10.244.3.99", "node-b", True)])
            + (svc("gone", "10.96.0.20", 80) + slice_("gone", [A1]) if with_gone else ""))


def write(mdir, text):
    tmp = os.path.join(mdir, ".services.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(mdir, "services.yaml"))


def low_nofile():
    """kproxyd starts with a soft open-file limit of 1024, as from a default shell."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1]))


class Kproxyd(kptest.Kproxyd):
    def __init__(self, topo, mdir, *extra):
        super().__init__(topo.node, "userspace", mdir, os.path.join(mdir, ".."), (
            "--nodeport-addresses", "192.168.50.0/24,fd00:50::/64",
            "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0",
            "--udp-timeout", "500ms", "--userspace-grace-period", "2s", *extra),
            preexec_fn=low_nofile)
        self.ready(self.entries)


def proxy_port(entry):
    m = re.search(r"proxy port (\d+)", entry.get("detail", "")) if entry else None
    return int(m.group(1)) if m else 0


def open_count(entry):
    m = re.search(r"(\d+) open", entry.get("detail", "")) if entry else None
    return int(m.group(1)) if m else -1


def bulk(topo, ns, *args, timeout=120):
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.join(HERE, "bulk.py"),
                        *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return (r.stdout + r.stderr).strip()


def start_pod_server(topo, pod, script, *args, env=None):
    p = subprocess.Popen(["ip", "netns", "exec", topo.pods[pod][0], sys.executable,
                          os.path.join(HERE, script), *map(str, args)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, **(env or {})))
    topo.procs.append(p)
    return p if p.stdout.readline().strip() == "ready" else None


def traffic_tests(topo, k):
    n, cl = topo.node, topo.client
    e = k.entries()
    web = e.get(("t/web", "ClusterIP", "10.96.0.10", 80))
    ok(web and proxy_port(web) > 0 and
       proxy_port(e.get(("t/web", "NodePort", "192.168.50.1", 30080))) == proxy_port(web),
       "one proxy port per service port, shared by its ClusterIP and NodePort",
       json.dumps(sorted(map(str, e)), indent=1))
    lines = topo.run(n, "tcp", "10.96.0.10", 80, 30)
    seq = [l.split()[0] for l in lines]
    ok(set(seq) == {"pod-a1", "pod-b1", "pod-b2"} and
       all(len(set(seq[i:i + 3])) == 3 for i in range(0, 28)),
       "ClusterIP from the node: the ready endpoints in turn (never the unready one)", seq)
    c = names(topo.run(cl, "tcp", "10.96.0.10", 80, 30))
    ok(c == {"pod-a1": 10, "pod-b1": 10, "pod-b2": 10}, "ClusterIP routed through the node", c)
    c = names(topo.run(cl, "tcp", "192.168.50.1", 30080, 30))
    ok(c == {"pod-a1": 10, "pod-b1": 10, "pod-b2": 10}, "NodePort from the client namespace", c)
    c = names(topo.run(n, "tcp", "192.168.50.1", 30080, 30))
    ok(c == {"pod-a1": 10, "pod-b1": 10, "pod-b2": 10}, "NodePort from the node itself", c)
    lines = topo.run(topo.pods["pod-b2"][0], "tcp", "10.96.0.15", 80, 3)
    ok(set(names(lines)) == {"pod-b2"}, "a pod reaches itself through its service", lines)
    c = names(topo.run(cl, "tcp", "192.168.50.100", 80, 5))
    ok(c == {"pod-b2": 5}, "externalIP from the client namespace", c)
    c = names(topo.run(cl, "tcp", "192.168.50.200", 80, 5))
    ok(c == {"pod-b2": 5}, "LoadBalancer IP from a source inside loadBalancerSourceRanges", c)
    lines = topo.run(cl, "tcp", "192.168.50.200", 80, 1, src="192.168.50.3")
    ok(lines and all(l.startswith("ERR") for l in lines),
       "and no portal for a source outside them", lines)
    lines = topo.run(cl, "tcp", "192.168.50.1", 30083, 20)
    ok(set(names(lines)) == {"pod-a1"},
       "externalTrafficPolicy Local NodePort: its own proxy port, local endpoints only", lines[:4])
    c = names(topo.run(cl, "tcp", "10.96.0.13", 80, 20))
    ok(set(c) == {"pod-a1", "pod-b1"}, "while its ClusterIP reaches every endpoint", c)
    c = names(topo.run(n, "tcp", "fd00:96::18", 80, 20))
    ok(c == {"pod-a1": 10, "pod-b1": 10}, "IPv6 ClusterIP of a dual-stack service, from the node",
       c)
    c = names(topo.run(cl, "tcp", "fd00:96::18", 80, 20))
    ok(c == {"pod-a1": 10, "pod-b1": 10}, "and from the client namespace", c)
    c = names(topo.run(cl, "tcp", "fd00:50::1", 30088, 10))
    ok(set(c) == {"pod-a1", "pod-b1"}, "IPv6 NodePort", c)
    lines = topo.run(n, "tcp", "10.96.0.12", 80, 3)
    ok(all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0 for l in lines),
       "a service with no endpoints refuses at once: from the node", lines)
    lines = topo.run(cl, "tcp", "10.96.0.12", 80, 2)
    ok(all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0 for l in lines),
       "from the client namespace (ClusterIP)", lines)
    lines = topo.run(cl, "tcp", "192.168.50.1", 30082, 2)
    ok(all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0 for l in lines),
       "and on its NodePort", lines)
    c = names(topo.run(n, "tcp", "10.96.0.11", 80, 20))
    ok(len(c) == 1 and "ERR" not in c, "ClientIP affinity: 20 connections from the node, one "
       "endpoint", c)
    c = names(topo.run(cl, "tcp", "10.96.0.11", 80, 20, src="192.168.50.3"))
    ok(len(c) == 1 and "ERR" not in c, "and 20 from 192.168.50.3, one endpoint", c)
    c = names(topo.run(n, "tcp", "10.96.0.22", 80, 5))
    time.sleep(1.3)         # the affinity time-out (1 s) is what is tested: let it pass
    after = names(topo.run(n, "tcp", "10.96.0.22", 80, 1))
    ok(len(c) == 1 and "ERR" not in c and len(after) == 1 and "ERR" not in after and
       set(after) != set(c), "affinity with timeoutSeconds 1: sticky, then after 1.3 s idle "
       "the next endpoint in turn", (c, after))
    t0 = time.monotonic()
    c = names(topo.run(n, "tcp", "10.96.0.21", 80, 10))
    ok(c == {"pod-a1": 10}, "an endpoint that never answers (no pod at its address) costs a "
       "connect time-out, not a failed request (10 connections in %.1f s)"
       % (time.monotonic() - t0), c)

    lines = topo.run(cl, "udpfrom", "10.96.0.14", 53, 6)
    ok(len(lines) == 6 and all(re.match(r"pod-(a1|b1) \S+ from 10\.96\.0\.14:53$", l)
                               for l in lines) and len(set(l.split()[0] for l in lines)) == 1,
       "UDP: one flow per client socket, replies come from the VIP's address and port", lines)
    lines = topo.run(cl, "udpfrom", "10.96.0.14", 53, 1) + topo.run(n, "udpfrom", "10.96.0.14",
                                                                     53, 1)
    ok(all(re.match(r"pod-(a1|b1) \S+ from 10\.96\.0\.14:53$", l) for l in lines),
       "UDP from the node itself as well", lines)
    topo.run(cl, "udp", "fd00:96::14", 53, 2)       # neighbour discovery first
    lines = topo.run(cl, "udpfrom", "fd00:96::14", 53, 3)
    ok(len(lines) == 3 and all(re.match(r"pod-(a1|b1) \S+ from fd00:96::14:53$", l)
                               for l in lines), "UDP over IPv6", lines)
    dns = lambda: k.entries().get(("t/dns", "ClusterIP", "10.96.0.14", 53))  # noqa: E731
    udp = popen_client(cl, "udphold", "10.96.0.14", 53)
    first = say(udp, "q")
    during = open_count(dns())
    t0 = time.monotonic()
    expired = wait_until(lambda: open_count(dns()) == 0, 5)
    took = time.monotonic() - t0
    again = say(udp, "q")
    udp.stdin.close()
    udp.wait(DEADLINE)
    ok(first.startswith("pod-") and during >= 1 and expired and again.startswith("pod-"),
       "an idle UDP flow expires (--udp-timeout 500ms: gone after %.1f s) and the client's next "
       "datagram opens a new one" % took, (first, during, expired, again))

    # a dead endpoint: its server stopped; no client request fails
    dead = topo.procs[2]
    dead.kill()
    dead.wait()
    lines = topo.run(cl, "tcp", "10.96.0.10", 80, 30)
    c = names(lines)
    ok(set(c) == {"pod-a1", "pod-b1"} and sum(c.values()) == 30,
       "an endpoint whose server stopped costs no failed request (refused: next endpoint)", c)
    p = start_pod_server(topo, "pod-b2", "podserver.py", "pod-b2", 8080)
    topo.procs[2] = p
    good = wait_until(lambda: "pod-b2" in names(topo.run(n, "tcp", "10.96.0.10", 80, 3)), 8)
    ok(p and good, "once it serves again it gets connections again")

    r = bulk(topo, cl, "get", "10.96.0.19", 9000, MIB100, 7)
    ok(r.startswith("ok "), "a 100 MiB download through the proxy arrives intact (sha256)", r)
    r = bulk(topo, cl, "put", "10.96.0.19", 9000, MIB100, 8)
    ok(r.startswith("ok "), "a 100 MiB upload arrives intact (sha256 at the pod)", r)
    r = bulk(topo, cl, "half", "10.96.0.19", 9000, 8 << 20, 10)
    ok(r.startswith("ok "), "half-close: after shutdown(SHUT_WR) the pod sees the end of the "
       "upload and its answer still comes back", r)
    slow = subprocess.Popen(["ip", "netns", "exec", cl, sys.executable,
                             os.path.join(HERE, "bulk.py"), "slow", "10.96.0.19", "9000",
                             str(MIB100), "11"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    waiting = slow.stdout.readline().strip()

    def queued():
        out = sh("ss", "-tnH", ns=n).stdout.split("\n")
        return sum(int(f[1]) + int(f[2]) for f in (l.split() for l in out) if len(f) > 3)
    seen = [queued()]
    wait_until(lambda: seen.append(queued()) or (seen[-1] > 0 and seen[-1] == seen[-2]), 8)
    slow.stdin.write("go\n")
    slow.stdin.flush()
    r = slow.stdout.readline().strip()
    slow.wait(60)
    # The node holds the proxy's two sockets of this connection (the pod and the client
    # live in their own namespaces): the one from the pod queues at most its receive
    # buffer, the one to the client at most its send buffer, and the pipe between them
    # 512 KiB. Both buffer limits are the namespace's own (tcp_rmem[2] is 32 MiB on
    # newer kernels, 6 MiB on older ones). Without back-pressure all 100 MiB would pile up.
    rmem = int(sh("cat", "/proc/sys/net/ipv4/tcp_rmem", ns=n).stdout.split()[2])
    wmem = int(sh("cat", "/proc/sys/net/ipv4/tcp_wmem", ns=n).stdout.split()[2])
    bound = rmem + wmem + (512 << 10)
    ok(waiting == "waiting" and 0 < seen[-1] <= bound < MIB100 and r.startswith("ok "),
       "back-pressure: while the client reads nothing the node holds %.1f MiB of the 100 "
       "(socket queues, at most %.1f MiB: tcp_rmem max + tcp_wmem max + the pipe), then the "
       "rest arrives intact" % (seen[-1] / 1048576.0, bound / 1048576.0), (seen, bound, r))
    r = bulk(topo, n, "get", "10.96.0.19", 9000, 16 << 20, 9)
    ok(r.startswith("ok "), "and 16 MiB from the node itself (DNAT portal)", r)
    r = bulk(topo, cl, "many", "10.96.0.19", 9000, 1000)
    m = re.match(r"opened (\d+) answered (\d+) names=(.*)", r)
    ok(m and m.group(1) == "1000" and m.group(2) == "1000" and len(m.group(3).split(",")) == 3,
       "1,000 concurrent connections, all served, over the three endpoints", r)
    bulk_e = lambda: k.entries().get(("t/bulk", "ClusterIP", "10.96.0.19", 9000))  # noqa: E731
    ok(wait_until(lambda: open_count(bulk_e()) == 0, 5),
       "and closed on both sides afterwards (0 open)", bulk_e())


def removal_tests(topo, k, mdir):
    n, cl = topo.node, topo.client
    conns = popen_client(cl, "conns", "10.96.0.10", 80)
    held = {}
    for _ in range(6):
        cid, name = say(conns, "open").split()[:2]
        held.setdefault(name, cid)
    est = sh("ss", "-tnoH", "state", "established", ns=n).stdout.splitlines()
    port = proxy_port(k.entries().get(("t/web", "ClusterIP", "10.96.0.10", 80)))
    ok(len([l for l in est if ":8080 " in l and "timer:(keepalive" in l]) == 6 and
       len([l for l in est if ":%d " % port in l and "timer:(keepalive" in l]) == 6,
       "the proxy's connections have TCP keepalive on, both sides", "\n".join(est))
    victim = "pod-b2"
    vip_of = {"pod-a1": A1, "pod-b1": B1, "pod-b2": B2}
    write(mdir, manifests([vip_of[p] for p in ("pod-a1", "pod-b1") if p != victim]))
    good = wait_until(lambda: victim not in names(topo.run(n, "tcp", "10.96.0.10", 80, 6)))
    c = names(topo.run(cl, "tcp", "10.96.0.10", 80, 30))
    ok(good and set(c) == {"pod-a1", "pod-b1"}, "a removed endpoint gets no new connections", c)
    echo = say(conns, "send %s still-there" % held[victim])
    ok(echo == "still-there", "its established connection keeps working", echo)
    web = k.entries().get(("t/web", "ClusterIP", "10.96.0.10", 80), {})
    drain = [x for x in web.get("endpoints", []) if x["ip"] == "10.244.2.4"]
    ok(drain and drain[0].get("weight") == 0 and drain[0].get("active_conns") == 2,
       "kproxyctl dump shows it draining: weight 0, its 2 open connections", web)
    for cid in range(1, 7):
        say(conns, "close %d" % cid)
    conns.stdin.close()
    conns.wait(DEADLINE)
    ok(wait_until(lambda: not [x for x in k.entries().get(("t/web", "ClusterIP", "10.96.0.10",
                                                            80), {}).get("endpoints", [])
                               if x["ip"] == "10.244.2.4"], 5),
       "and no longer once they closed")

    gone = k.entries().get(("t/gone", "ClusterIP", "10.96.0.20", 80))
    port = proxy_port(gone)
    hold = popen_client(cl, "hold", "10.96.0.20", 80)
    first = hold.stdout.readline().strip()
    write(mdir, manifests([A1, B1], with_gone=False))
    t_removed = time.monotonic()
    closed = wait_until(lambda: topo.run(n, "tcp", "127.0.0.1", port, 1)[0].startswith(
        "ERR refused"), 5)
    within = say(hold, "within-grace")
    ok(port and closed, "removing a service closes its proxy port (%d refuses)" % port)
    ok(first == "pod-a1 10.244.0.1" and within == "within-grace",
       "its open connection lasts through the grace period", (first, within))
    end = time.monotonic() + 6
    answer = ""
    while time.monotonic() < end:
        answer = say(hold, "later")
        if answer != "later":
            break
        time.sleep(0.3)
    took = time.monotonic() - t_removed
    hold.stdin.close()
    hold.wait(DEADLINE)
    ok(answer.startswith("ERR") and 1.5 <= took <= 6,
       "and is closed once the grace period (2 s) is over (%.1f s)" % took, answer)
    lines = topo.run(cl, "tcp", "10.96.0.20", 80, 1)
    ok(lines and lines[0].startswith("ERR"), "and its VIP no longer answers", lines)


def limit_tests(topo, mdir):
    k = Kproxyd(topo, mdir, "--userspace-max-conns", "4", "--proxy-port-range", "41000-41099",
                "--userspace-workers", "3")
    ports = sorted({proxy_port(e) for e in k.dump()})
    ok(ports and all(41000 <= p <= 41099 for p in ports),
       "--proxy-port-range 41000-41099: every proxy port in it", ports)
    conns = popen_client(topo.client, "conns", "10.96.0.10", 80)
    answers = [say(conns, "open") for _ in range(4)]
    fifth = say(conns, "open")
    ok(all(re.match(r"\d+ pod-", a) for a in answers) and " ERR " in " %s " % fifth,
       "--userspace-max-conns 4: four connections served, a fifth waits", (answers, fifth))
    ok("connections open, the limit per proxy" in k.text(),
       "and kproxyd says so in its log")
    say(conns, "close 1")
    sixth = say(conns, "open")
    ok(re.match(r"\d+ pod-", sixth), "once one closes, the next is served", sixth)
    conns.stdin.close()
    conns.wait(DEADLINE)
    ok(k.stop() == 0, "SIGTERM stops kproxyd")


def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root (network namespaces, iptables)")
        return 0
    topo = Topology(PODS, ports=(8080,), external_ips=("192.168.50.100", "192.168.50.200"))
    tmp = tempfile.mkdtemp(prefix="kp-us-")
    mdir = os.path.join(tmp, "manifests")
    os.mkdir(mdir)
    k = None
    try:
        # the node's default route points back at the client, so a forwarded packet makes
        # it send an ICMP redirect, which takes the per-host ICMP token that the REJECT's
        # port-unreachable then lacks: a real node has its gateway elsewhere
        for conf in ("all", "default", "vcl"):
            sh("sysctl", "-qw", "net.ipv4.conf.%s.send_redirects=0" % conf, ns=topo.node)
        for pod in ("pod-a1", "pod-b1", "pod-b2"):
            ok(start_pod_server(topo, pod, "bulk.py", "serve", 9000, env={"POD": pod}),
               "%s serves bulk transfers on 9000" % pod)
        n = topo.node
        if sh("iptables-legacy", "-t", "nat", "-N", "OTHER-CHAIN", ns=n, check=False).returncode == 0:
            sh("iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-d", "203.0.113.9", "-j",
               "OTHER-CHAIN", ns=n)
        for tool in ("iptables-legacy", "ip6tables-legacy"):
            sh(tool, "-t", "filter", "-S", ns=n)
            sh(tool, "-t", "nat", "-S", ns=n)
        before = save(topo)
        write(mdir, manifests())
        k = Kproxyd(topo, mdir)
        ok(k.proc.poll() is None and k.dump(), "kproxyd runs in userspace mode", k.text())
        limits = open("/proc/%d/limits" % k.proc.pid).read()
        m = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        ok(m and int(m.group(1)) >= hard and int(m.group(1)) > 1024,
           "its open-file limit is raised at start (soft 1024 -> %s; hard limit %s)"
           % (m.group(1), m.group(2)) if m else "its open-file limit is raised", limits)
        rules = sh("iptables-legacy-save", ns=n).stdout
        ok(re.search(r"-A KUBE-PORTALS-CONTAINER -d 10\.96\.0\.10/32 -p tcp -m tcp --dport 80 "
                     r"-m comment --comment \"t/web:p\" -j REDIRECT --to-ports \d+", rules) and
           re.search(r"-A KUBE-PORTALS-HOST -d 10\.96\.0\.10/32 .*-j DNAT --to-destination "
                     r"127\.0\.0\.1:\d+", rules) and
           re.search(r"-A KUBE-NODEPORT-CONTAINER -d 192\.168\.50\.1/32 .*--dport 30080 .*"
                     r"-j REDIRECT", rules) and
           re.search(r"-A KUBE-SERVICES -d 10\.96\.0\.12/32 .*has no endpoints.* -j REJECT", rules)
           and "unsupported" not in rules,
           "kube-proxy's portal rules (iptables-save reads them back)", rules)
        r = k.ctl("check")
        ok(r.returncode == 0 and r.stdout.startswith("ok: 0 differences"),
           "kproxyctl check: the portal rules and proxies read back agree with the desired "
           "state", r.stdout + r.stderr)
        traffic_tests(topo, k)
        removal_tests(topo, k, mdir)

        # restart: new proxy ports, the same service
        ok(k.stop() == 0, "SIGTERM stops kproxyd")
        write(mdir, manifests())
        k = Kproxyd(topo, mdir, "--sync-period", "1s")
        c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 9))
        ok(c == {"pod-a1": 3, "pod-b1": 3, "pod-b2": 3}, "after a restart the portals lead to "
           "the new proxy ports", c)
        sh("iptables-legacy", "-t", "nat", "-F", "KUBE-PORTALS-CONTAINER", ns=n)
        good = wait_until(lambda: names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 1)).keys()
                          <= {"pod-a1", "pod-b1", "pod-b2"})
        ok(good, "the periodic resync repairs a flushed KUBE-PORTALS-CONTAINER")
        # an address added in --nodeport-addresses' range after start (rtnetlink)
        sh("ip", "addr", "add", "192.168.50.13/24", "dev", "vcl", ns=n)
        good = wait_until(lambda: names(topo.run(topo.client, "tcp", "192.168.50.13", 30080,
                                                 3)).keys() <= {"pod-a1", "pod-b1", "pod-b2"})
        ok(good, "an address added after start carries NodePort traffic", k.text()[-1500:])
        sh("ip", "addr", "del", "192.168.50.13/24", "dev", "vcl", ns=n)
        ok(wait_until(lambda: "192.168.50.13" not in sh("iptables-legacy-save", "-t", "nat",
                                                        ns=n).stdout),
           "a removed address loses its NodePort portal rules")
        ok(k.stop() == 0, "SIGTERM stops kproxyd")
        k = None
        limit_tests(topo, mdir)

        r = subprocess.run(["ip", "netns", "exec", n, KPROXYD, "--proxy-mode", "userspace",
                            "--proxy-port-range", "5-2", "--manifests", mdir],
                           capture_output=True, text=True, timeout=DEADLINE)
        ok(r.returncode != 0 and "--proxy-port-range" in r.stderr and "5-2" in r.stderr,
           "a bad --proxy-port-range is refused by name", r.stderr)
        r = subprocess.run(["ip", "netns", "exec", n, KPROXYD, "--proxy-mode", "userspace",
                            "--cleanup"], capture_output=True, text=True, timeout=DEADLINE)
        ok(r.returncode == 0, "kproxyd --proxy-mode userspace --cleanup exits 0", r.stderr)
        after = save(topo)
        ok(after == before, "--cleanup leaves iptables as it was before kproxyd started (the "
           "foreign chain kept)", "\n".join(sorted(set(before) ^ set(after))))
        log = open(os.path.join(tmp, "kproxyd.log")).read()
        ok("Sanitizer" not in log and "runtime error" not in log,
           "no sanitizer report from any kproxyd", log[-3000:])
    except Exception as e:  # report, then clean up
        ok(False, "test run raised %s" % type(e).__name__, str(e))
    finally:
        if k:
            k.stop()
        topo.teardown()
        subprocess.run(["rm", "-rf", tmp])
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
