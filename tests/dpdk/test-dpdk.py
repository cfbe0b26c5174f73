#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd --proxy-mode dpdk with real packets: the DPDK process runs in a node namespace
with two net_tap ports; one tap is moved into a client namespace (192.168.60.2 and .3,
the gateway 192.168.60.1 is the DPDK port), the other into a pod-network namespace where
it joins a bridge with three pods (10.244.1.2-4, their gateway 10.244.0.1 the other DPDK
port). Every packet between client and pods crosses the DPDK worker: ARP, ICMP echo,
routing with TTL, service NAT (ClusterIP, NodePort, externalIP, LB ingress; TCP and UDP;
Maglev and round robin; affinity; masquerade), table updates during a long transfer,
endpoint draining, flow ageing, /metrics. Needs root, DPDK built (--enable-dpdk) and
network namespaces; prints TAP. The worker sleeps when idle (--dpdk-idle-sleep-us), so
the other tests of make check keep the core it runs on."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NETNS = os.path.join(HERE, "..", "netns")
sys.path.insert(0, NETNS)
from topology import sh  # noqa: E402
import kptest  # noqa: E402
from kptest import Tap, names, popen_client, say, slice_, svc, wait_until  # noqa: E402

TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
DEADLINE = 15.0
TAP = Tap()
ok = TAP.ok

PODS = [("pod-a", "10.244.1.2", "node-a", "fd00:244::2"),
        ("pod-b", "10.244.1.3", "node-b", "fd00:244::3"),
        ("pod-c", "10.244.1.4", "node-b", "fd00:244::4")]
A, B, C = [(ip, node, True) for _, ip, node, _ in PODS]
A6, B6, C6 = [(ip6, node, True) for _, _, node, ip6 in PODS]
DUAL = "  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n"


def dual(name, ip, ip6, port, eps, eps6, extra="", port_=8080, **kw):
    """A dual-stack service, with an EndpointSlice per family."""
    return (svc(name, ip, port, "  clusterIPs: [%s, '%s']\n" % (ip, ip6) + DUAL + extra, **kw)
            + slice_(name, eps, proto=kw.get("proto", "TCP"), port=port_)
            + slice_(name, eps6, proto=kw.get("proto", "TCP"), sname=name + "-6",
                     family="IPv6", port=port_))
MIB = 1 << 20


def manifests(web=(A, B, C), gone=True, dns=(A, B), dns6=(A6, B6)):
    return (svc("web", "10.96.0.10", 80, ptype="NodePort", node_port=30080) + slice_("web", web)
            + svc("dns", "10.96.0.14", 53, proto="UDP") + slice_("dns", dns, proto="UDP")
            + svc("sticky", "10.96.0.11", 80, "  sessionAffinity: ClientIP\n")
            + slice_("sticky", [A, B, C])
            + svc("empty", "10.96.0.12", 80)
            + svc("local", "10.96.0.13", 80, "  externalTrafficPolicy: Local\n",
                  ptype="NodePort", node_port=30083) + slice_("local", [A, B])
            + svc("ext", "10.96.0.15", 80, "  externalIPs: [192.168.200.100]\n")
            + slice_("ext", [C])
            + svc("lb", "10.96.0.16", 80, "status:\n  loadBalancer:\n"
                  "    ingress: [{ip: 192.168.200.200}]\n", ptype="LoadBalancer",
                  node_port=30086) + slice_("lb", [C])
            + svc("fw", "10.96.0.17", 80, "  loadBalancerSourceRanges: [192.168.60.3/32]\n"
                  "status:\n  loadBalancer:\n    ingress: [{ip: 192.168.200.201}]\n",
                  ptype="LoadBalancer", node_port=30087) + slice_("fw", [C])
            + (svc("gone", "10.96.0.18", 80) + slice_("gone", [A, B, C]) if gone else "")
            + dual("d6", "10.96.0.20", "fd00:96::20", 80, [A, B, C], [A6, B6, C6],
                   ptype="NodePort", node_port=30090)
            + dual("d6dns", "10.96.0.21", "fd00:96::21", 53, [A, B], dns6, proto="UDP")
            + dual("d6sticky", "10.96.0.22", "fd00:96::22", 80, [A, B, C], [A6, B6, C6],
                   "  sessionAffinity: ClientIP\n")
            + dual("d6empty", "10.96.0.23", "fd00:96::23", 80, [], [])
            + dual("d6fw", "10.96.0.24", "fd00:96::24", 80, [C], [C6],
                   "  loadBalancerSourceRanges: [192.168.60.3/32, 'fd00:60::3/128']\n"
                   "status:\n  loadBalancer:\n    ingress: [{ip: 192.168.200.202}, "
                   "{ip: 'fd00:200::202'}]\n", ptype="LoadBalancer", node_port=30091)
            + dual("rej", "10.96.0.25", "fd00:96::25", 80, [A], [A6], port_=8081)
            + svc("rejl", "10.96.0.26", 80, "  externalTrafficPolicy: Local\n", ptype="NodePort",
                  node_port=30092) + slice_("rejl", [A], port=8081)
            + svc("bulk", "10.96.0.19", 9000) + slice_("bulk", [A, B, C], port=9000)
            + dual("sctp", "10.96.0.27", "fd00:96::27", 7777, [A], [A6], proto="SCTP",
                   port_=7777))


def write(mdir, text):
    tmp = os.path.join(mdir, ".m.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(mdir, "services.yaml"))


class Topo:
    def __init__(self):
        tag = "kd%d" % (os.getpid() % 10000)
        self.node, self.client, self.podnet = tag + "n", tag + "c", tag + "b"
        self.tap_c, self.tap_p = tag + "tc", tag + "tp"
        self.pods, self.procs, self.namespaces = {}, [], []
        try:
            self._setup(tag)
        except Exception:
            self.teardown()
            raise

    def _ns(self, name):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)

    def _setup(self, tag):
        for ns in (self.node, self.client, self.podnet):
            self._ns(ns)
        sh("ip", "link", "add", "br0", "type", "bridge", ns=self.podnet)
        sh("ip", "link", "set", "br0", "up", ns=self.podnet)
        for i, (name, ip, _, ip6) in enumerate(PODS):
            ns = "%sp%d" % (tag, i)
            self._ns(ns)
            sh("ip", "link", "add", "v%d" % i, "type", "veth", "peer", "name", "eth0", "netns",
               ns, ns=self.podnet)
            sh("ip", "link", "set", "v%d" % i, "master", "br0", "up", ns=self.podnet)
            sh("ip", "addr", "add", ip + "/16", "dev", "eth0", ns=ns)
            sh("ip", "addr", "add", ip6 + "/64", "dev", "eth0", "nodad", ns=ns)
            sh("ip", "link", "set", "eth0", "up", ns=ns)
            sh("ip", "route", "add", "default", "via", "10.244.0.1", ns=ns)
            sh("ip", "-6", "route", "add", "default", "via", "fd00:244::1", ns=ns)
            # port 8081 answers a SYN with ICMP port unreachable (not a RST)
            sh("iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "8081", "-j", "REJECT",
               "--reject-with", "icmp-port-unreachable", ns=ns)
            sh("ip6tables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "8081", "-j",
               "REJECT", "--reject-with", "icmp6-port-unreachable", ns=ns)
            for script, args in (("podserver.py", [name, "8080"]), ("bulk.py", ["serve", "9000"])):
                p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                      os.path.join(NETNS, script), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ, POD=name))
                self.procs.append(p)
                if p.stdout.readline().strip() != "ready":
                    raise RuntimeError("pod %s: %s did not start" % (name, script))
            self.pods[name] = ns

    def attach(self):
        """Moves the DPDK process's taps to their namespaces (they are made anew with each
        kproxyd and vanish with it)."""
        if not wait_until(lambda: all(sh("ip", "link", "show", t, ns=self.node, check=False)
                                      .returncode == 0 for t in (self.tap_c, self.tap_p)),
                          DEADLINE):
            return False
        sh("ip", "link", "set", self.tap_c, "netns", self.client, ns=self.node)
        sh("ip", "link", "set", self.tap_p, "netns", self.podnet, ns=self.node)
        c = self.client
        sh("ip", "addr", "add", "192.168.60.2/24", "dev", self.tap_c, ns=c)
        sh("ip", "addr", "add", "192.168.60.3/24", "dev", self.tap_c, ns=c)
        for a in ("fd00:60::2/64", "fd00:60::3/64"):
            sh("ip", "addr", "add", a, "dev", self.tap_c, "nodad", ns=c)
        sh("ip", "link", "set", self.tap_c, "up", ns=c)
        for net in ("10.96.0.0/12", "10.244.0.0/16", "192.168.200.0/24"):
            sh("ip", "route", "add", net, "via", "192.168.60.1", ns=c)
        for net in ("fd00:96::/112", "fd00:244::/64", "fd00:200::/64"):
            sh("ip", "-6", "route", "add", net, "via", "fd00:60::1", ns=c)
        sh("ip", "link", "set", self.tap_p, "master", "br0", "up", ns=self.podnet)
        return True

    def run(self, ns, *args, src=None):
        env = dict(os.environ, KP_SRC=src) if src else None
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                            os.path.join(NETNS, "client.py"), *map(str, args)],
                           capture_output=True, text=True, timeout=120, env=env)
        return r.stdout.split("\n")[:-1]

    def teardown(self):
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []


# two workers on this two-core machine: the main lcore 0 on CPU 0, workers 1 and 2 on
# CPUs 1 and 0 (they sleep when idle, so they share the CPUs with the rest of the test)
TWO_WORKERS = "--lcores 0@0,1@1,2@0"


def eal_args(lcores):
    return ("%s --no-huge -m 512 --no-pci --no-shconf --no-telemetry --file-prefix kp%d"
            % (lcores, os.getpid()))


def ports(topo):
    return ["dev=net_tap0,iface=%s;ip=192.168.60.1/24;ip=fd00:60::1/64;role=client" % topo.tap_c,
            "dev=net_tap1,iface=%s;ip=10.244.0.1/16;ip=fd00:244::1/64;role=pod" % topo.tap_p]


class Kproxyd(kptest.Kproxyd):
    """kproxyd in dpdk mode with the test's ports, from flags or (@config) a
    KubeProxyConfiguration file that says it all."""
    def __init__(self, topo, tmp, mdir, *extra, lcores="-l 0,1", config=None, wrap=()):
        self.topo = topo
        flags = ("--config", config) if config else (
            "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:10249",
            "--dpdk-eal-args", eal_args(lcores), "--dpdk-port", ports(topo)[0],
            "--dpdk-port", ports(topo)[1], "--dpdk-tcpfin-timeout", "1s",
            "--dpdk-udp-timeout", "2s", "--dpdk-tcp-timeout", "30s",
            "--dpdk-idle-sleep-us", "100", "--cluster-cidr", "10.244.0.0/16,fd00:244::/64")
        super().__init__(topo.node, "dpdk", mdir, tmp, flags + extra, wrap=wrap)
        # the taps appear while EAL probes its devices, and the port setup that follows
        # works on them by name: move them only once kproxyd serves (its init is over)
        self.ready(self.dump, DEADLINE)
        self.attached = topo.attach()

    def metrics(self):
        r = subprocess.run(["ip", "netns", "exec", self.topo.node, sys.executable, "-c",
                            "import urllib.request\nprint(urllib.request.urlopen("
                            "'http://127.0.0.1:10249/metrics', timeout=5).read().decode())"],
                           capture_output=True, text=True, timeout=DEADLINE)
        return r.stdout

    def metric(self, name, labels=""):
        m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), self.metrics(),
                      re.M)
        return float(m.group(1)) if m else None



def big_datagrams(topo, k, vip, desc, n=3):
    """@n UDP datagrams of 4,000 bytes to @vip:53 and their answers as long: three
    fragments each way, so 4 later fragments a datagram that follow their first."""
    frag0 = k.metric("kproxyd_dpdk_fragments_total") or 0
    lines = topo.run(topo.client, "udpbig", vip, 53, 4000, n)
    frag = (k.metric("kproxyd_dpdk_fragments_total") or 0) - frag0
    ok(len(lines) == n and frag == 4 * n and
       all(re.match(r"pod-(a|b) \S+ len=4000 got=4000$", l) for l in lines),
       "%s (%d followed)" % (desc, frag),
       lines + [l for l in k.metrics().splitlines() if l.startswith("kproxyd_dpdk_drops")])


def worker_metric(k, name, n=2):
    """@name of workers 0..n-1 (lcores 1..n), from /metrics."""
    return [k.metric(name, '{worker="%d",lcore="%d"}' % (i, i + 1)) for i in range(n)]


def ipv6_checks(k, topo):
    """The IPv6 halves of the dual-stack services, through the same two workers."""
    cl = topo.client
    lines = topo.run(cl, "ping6", "fd00:60::1", 3)
    ok(lines == ["reply hlim=64"] * 3, "IPv6: the gateway answers neighbour solicitations and "
       "ICMPv6 echo", lines)
    lines = topo.run(cl, "ping6", "fd00:244::2", 3)
    ok(lines == ["reply hlim=63"] * 3, "IPv6: a pod answers through the gateway, which "
       "solicits it, routes and decrements the hop limit", lines)
    lines = topo.run(cl, "tcp", "fd00:244::3", 8080, 3, src="fd00:60::2")
    ok(lines == ["pod-b fd00:60::2"] * 3, "IPv6: traffic not for a service is routed unchanged",
       lines)
    lines = topo.run(cl, "tcp", "fd00:96::20", 80, 40)
    ok(set(names(lines)) == {"pod-a", "pod-b", "pod-c"} and
       all(l.endswith(" fd00:244::1") for l in lines),
       "IPv6 ClusterIP from the client (NAT66): Maglev spreads 40 connections over the "
       "three endpoints, masqueraded (outside the cluster CIDR fd00:244::/64)", lines[:4])
    d6 = k.entries().get(("t/d6", "ClusterIP", "fd00:96::20", 80), {})
    m = re.search(r"flows made per worker (\d+)/(\d+)", d6.get("detail", ""))
    ok(m and int(m.group(1)) > 0 and int(m.group(2)) > 0 and
       sorted(e["ip"] for e in d6.get("endpoints", [])) == ["fd00:244::2", "fd00:244::3",
                                                             "fd00:244::4"],
       "the dump holds the IPv6 frontend with its IPv6 endpoints; its flows were made by "
       "both workers", d6)
    lines = topo.run(cl, "tcp", "fd00:60::1", 30090, 20)
    ok(set(names(lines)) == {"pod-a", "pod-b", "pod-c"} and
       all(l.endswith(" fd00:244::1") for l in lines),
       "IPv6 NodePort on the client port's IPv6 address, masqueraded", lines[:4])
    lines = topo.run(cl, "udpfrom", "fd00:96::21", 53, 4)
    ok(len(lines) == 4 and len({l.split()[0] for l in lines}) == 1 and
       all(re.match(r"pod-(a|b) \S+ from \[?fd00:96::21\]?:53$", l) for l in lines),
       "IPv6 UDP through a ClusterIP: one flow, one endpoint, replies from the VIP", lines)
    pod = popen_client(topo.pods["pod-a"], "sctpanswer", "6")
    ready = pod.stdout.readline().strip()
    init = topo.run(cl, "sctpinit", "fd00:96::27", 7777, 5002)
    seen = pod.stdout.readline().strip()
    pod.wait(DEADLINE)
    ok(ready == "listening" and
       re.match(r"from \[fd00:244::1\]:\d+ to :7777 tag=0x0 crc=ok$", seen) and
       init == ["from [fd00:96::27]:7777 to 5002 tag=0x6b70 crc=ok"],
       "IPv6 SCTP through a ClusterIP: the INIT reaches the endpoint masqueraded with a good "
       "CRC32c, the INIT ACK comes back from the VIP with a good one", (ready, seen, init))
    big_datagrams(topo, k, "fd00:96::21", "IPv6 UDP datagrams of 4,000 bytes through a "
                  "ClusterIP, in fragments both ways (Fragment header): the later ones "
                  "follow their first")
    c = names(topo.run(cl, "tcp", "fd00:96::22", 80, 20))
    c3 = names(topo.run(cl, "tcp", "fd00:96::22", 80, 20, src="fd00:60::3"))
    ok(len(c) == 1 and "ERR" not in c and len(c3) == 1 and "ERR" not in c3,
       "IPv6 ClientIP affinity: 20 connections from each client address, one endpoint each "
       "(the flows spread over both workers, the affinity table shared)", (c, c3))
    lines = topo.run(cl, "tcp", "fd00:96::23", 80, 2)
    ok(lines and all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0 for l in lines),
       "an IPv6 service without endpoints refuses at once (ICMPv6 port unreachable)", lines)
    rel0 = k.metric("kproxyd_dpdk_icmp_related_total") or 0
    lines = topo.run(cl, "tcp", "fd00:96::25", 80, 2)
    rel = k.metric("kproxyd_dpdk_icmp_related_total") or 0
    ok(lines and all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0 for l in lines)
       and rel - rel0 >= 2, "an endpoint's ICMPv6 port unreachable reaches the client "
       "translated (masqueraded IPv6 ClusterIP): refused at once", (lines, rel0, rel))
    inside = topo.run(cl, "tcp", "fd00:200::202", 80, 3, src="fd00:60::3")
    outside = topo.run(cl, "tcp", "fd00:200::202", 80, 1, src="fd00:60::2")
    ok(inside == ["pod-c fd00:244::1"] * 3 and outside and
       all(l.startswith("ERR TimeoutError") for l in outside),
       "IPv6 loadBalancerSourceRanges: the LB IP answers a source inside them, drops one "
       "outside", (inside, outside))
    lines = topo.run(topo.pods["pod-a"], "tcp", "fd00:96::20", 80, 15)
    ok(len(lines) == 15 and set(names(lines)) <= {"pod-a", "pod-b", "pod-c"} and
       all(l.endswith(" fd00:244::1") for l in lines),
       "a pod reaches an IPv6 ClusterIP whose endpoints share its link (masqueraded)",
       lines[:4])


def maglev_run(topo, tmp, mdir):
    k = Kproxyd(topo, tmp, mdir, lcores=TWO_WORKERS)
    e = k.entries()
    web = e.get(("t/web", "ClusterIP", "10.96.0.10", 80))
    ok(k.proc.poll() is None and k.attached and web and len(web["endpoints"]) == 3 and
       "maglev" in web.get("detail", ""),
       "kproxyd runs in dpdk mode with two workers (every EAL worker lcore); its tap ports "
       "are in place; the dump holds the services", k.text()[-3000:])
    cl = topo.client
    lines = topo.run(cl, "ping", "192.168.60.1", 3)
    ok(lines == ["reply ttl=64"] * 3, "the gateway answers ARP and ICMP echo", lines)
    lines = topo.run(cl, "ping", "10.244.1.2", 3)
    ok(lines == ["reply ttl=63"] * 3, "a pod answers through the gateway, which routes and "
       "decrements the TTL", lines)
    lines = topo.run(cl, "tcp", "10.244.1.3", 8080, 3)
    ok(lines == ["pod-b 192.168.60.2"] * 3, "traffic not for a service is routed unchanged "
       "(the pod sees the client)", lines)
    lines = topo.run(cl, "tcp", "10.96.0.10", 80, 40)
    c = names(lines)
    ok(set(c) == {"pod-a", "pod-b", "pod-c"} and all(l.endswith(" 10.244.0.1") for l in lines),
       "ClusterIP from the client: Maglev spreads 40 connections over the three endpoints, "
       "masqueraded (the client is outside the cluster CIDR)", c)
    web = k.entries().get(("t/web", "ClusterIP", "10.96.0.10", 80), {})
    m = re.search(r"flows made per worker (\d+)/(\d+)", web.get("detail", ""))
    ok(m and int(m.group(1)) > 0 and int(m.group(2)) > 0 and
       int(m.group(1)) + int(m.group(2)) == 40,
       "the 40 flows are spread over both workers (per-worker counters in the dump)",
       web.get("detail"))
    lines = topo.run(cl, "udpfrom", "10.96.0.14", 53, 4)
    ok(len(lines) == 4 and len({l.split()[0] for l in lines}) == 1 and
       all(re.match(r"pod-(a|b) \S+ from 10\.96\.0\.14:53$", l) for l in lines),
       "UDP through a ClusterIP: one flow, one endpoint, replies from the VIP", lines)
    big_datagrams(topo, k, "10.96.0.14", "UDP datagrams of 4,000 bytes through a ClusterIP, "
                  "in three fragments each way: the later fragments go their first's way, "
                  "translated as it was")
    pod = popen_client(topo.pods["pod-a"], "sctpanswer")
    ready = pod.stdout.readline().strip()
    init = topo.run(cl, "sctpinit", "10.96.0.27", 7777, 5000)
    seen = pod.stdout.readline().strip()
    pod.wait(DEADLINE)
    ok(ready == "listening" and
       seen == "from 10.244.0.1:%s to 10.244.1.2:7777 tag=0x0 crc=ok" % seen.split(":")[1]
       .split()[0] and init == ["from 10.96.0.27:7777 to 5000 tag=0x6b70 crc=ok"],
       "SCTP through a ClusterIP: the INIT reaches the endpoint masqueraded with a good "
       "CRC32c, the INIT ACK comes back from the VIP with a good one", (ready, seen, init))
    rel0 = k.metric("kproxyd_dpdk_icmp_related_total") or 0
    init = topo.run(cl, "sctpinit", "10.96.0.27", 7777, 5001)
    ok(init == ["ERR TimeoutError"] and wait_until(
        lambda: (k.metric("kproxyd_dpdk_icmp_related_total") or 0) > rel0, 5),
       "with nothing listening, the endpoint's kernel (no SCTP in it) answers protocol "
       "unreachable, and that error about an SCTP flow is translated as related",
       (init, rel0, k.metric("kproxyd_dpdk_icmp_related_total")))
    fdrop = '{reason="fragment"}'
    d0 = k.metric("kproxyd_dpdk_drops_total", fdrop) or 0
    sent = topo.run(cl, "fraglater", "192.168.60.1", 53)
    ok(sent == ["sent"] and
       wait_until(lambda: (k.metric("kproxyd_dpdk_drops_total", fdrop) or 0) - d0 == 1, 5),
       "a later fragment to our address whose first never came: dropped, reason fragment",
       (sent, d0, k.metric("kproxyd_dpdk_drops_total", fdrop)))
    lines = topo.run(cl, "tcp", "192.168.60.1", 30080, 20)
    ok(set(names(lines)) == {"pod-a", "pod-b", "pod-c"} and
       all(l.endswith(" 10.244.0.1") for l in lines),
       "NodePort on the client port's address, masqueraded", names(lines))
    handed0 = worker_metric(k, "kproxyd_dpdk_worker_handed_packets_total")
    lines = topo.run(cl, "tcp", "192.168.60.1", 30083, 10)
    handed = worker_metric(k, "kproxyd_dpdk_worker_handed_packets_total")
    ok(lines == ["pod-a 192.168.60.2"] * 10, "externalTrafficPolicy Local NodePort: the local "
       "endpoint only, the client's address kept", lines[:3])
    made = worker_metric(k, "kproxyd_dpdk_worker_flows_created_total")
    ok(None not in handed and sum(handed) > sum(handed0),
       "and the replies of those 10 flows (not masqueraded: to the client's own tuple) "
       "reached the worker holding the flow, %d packets of theirs handed over between the "
       "workers (flows made per worker: %s)" % (sum(handed) - sum(handed0), made),
       (handed0, handed))
    lines = topo.run(cl, "tcp", "192.168.200.100", 80, 3) + topo.run(cl, "tcp", "192.168.200.200",
                                                                      80, 3)
    ok(set(names(lines)) == {"pod-c"} and len(lines) == 6, "externalIP and load-balancer IP",
       lines)
    inside = topo.run(cl, "tcp", "192.168.200.201", 80, 3, src="192.168.60.3")
    outside = topo.run(cl, "tcp", "192.168.200.201", 80, 1)
    dropped = k.metric("kproxyd_dpdk_drops_total", '{reason="source_range"}')
    ok(inside == ["pod-c 10.244.0.1"] * 3 and outside and
       all(l.startswith("ERR TimeoutError") for l in outside) and dropped and dropped >= 1,
       "loadBalancerSourceRanges: the LB IP answers a source inside them, drops one outside "
       "(%s dropped, reason source_range)" % dropped, (inside, outside, dropped))
    c = names(topo.run(cl, "tcp", "10.96.0.11", 80, 20))
    c3 = names(topo.run(cl, "tcp", "10.96.0.11", 80, 20, src="192.168.60.3"))
    ok(len(c) == 1 and "ERR" not in c and len(c3) == 1 and "ERR" not in c3,
       "ClientIP affinity: 20 connections from each client address, one endpoint each", (c, c3))
    lines = topo.run(cl, "tcp", "10.96.0.12", 80, 2)
    ok(all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0 for l in lines),
       "a service without endpoints refuses at once (ICMP port unreachable)", lines)
    rel0 = k.metric("kproxyd_dpdk_icmp_related_total") or 0
    masq = topo.run(cl, "tcp", "10.96.0.25", 80, 2)
    local = topo.run(cl, "tcp", "192.168.60.1", 30092, 2)
    rel = k.metric("kproxyd_dpdk_icmp_related_total") or 0
    ok(masq and local and all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0
                              for l in masq + local) and rel - rel0 >= 4,
       "an endpoint's ICMP port unreachable reaches the client translated (from the VIP, "
       "about the client's own packet), masqueraded (ClusterIP) or not (ETP Local "
       "NodePort): the connection is refused at once, not timed out (%d translated)"
       % (rel - rel0), (masq, local, rel0, rel))
    lines = topo.run(topo.pods["pod-a"], "tcp", "10.96.0.10", 80, 15)
    ok(set(names(lines)) <= {"pod-a", "pod-b", "pod-c"} and len(lines) == 15 and
       "ERR" not in names(lines), "a pod reaches a ClusterIP whose endpoints share its link "
       "(masqueraded, so the reply comes back through the gateway)", names(lines))
    lines = topo.run(topo.pods["pod-c"], "tcp", "10.96.0.15", 80, 3)
    ok(lines == ["pod-c 10.244.0.1"] * 3, "hairpin: a pod reaches itself through its service",
       lines)
    ipv6_checks(k, topo)

    # a long transfer while the tables are replaced under it
    result = {}

    def transfer():
        r = subprocess.run(["ip", "netns", "exec", cl, sys.executable,
                            os.path.join(NETNS, "bulk.py"), "get", "10.96.0.19", "9000",
                            str(200 * MIB), "5"], capture_output=True, text=True, timeout=120)
        result["r"] = (r.stdout + r.stderr).strip()
    t = threading.Thread(target=transfer)
    t.start()
    updates = 0
    while t.is_alive() and updates < 40:
        write(mdir, manifests(web=(A, B) if updates % 2 else (A, B, C)))
        updates += 1
        time.sleep(0.1)     # a sync every --min-sync-period: this paces the updates
    t.join(120)
    ok(result.get("r", "").startswith("ok ") and updates >= 3,
       "a 200 MiB transfer through a ClusterIP arrives intact while the tables are replaced "
       "%d times under it" % updates, result)
    write(mdir, manifests())
    wait_until(lambda: len(k.entries().get(("t/web", "ClusterIP", "10.96.0.10", 80),
                                           {}).get("endpoints", [])) == 3)

    # an endpoint removed: its open connection drains, new ones go elsewhere
    conns = popen_client(cl, "conns", "10.96.0.10", 80)
    held = {}
    for _ in range(30):
        cid, name = say(conns, "open").split()[:2]
        held.setdefault(name, cid)
        if len(held) == 3:
            break
    write(mdir, manifests(web=(A, B)))
    good = wait_until(lambda: len(k.entries().get(("t/web", "ClusterIP", "10.96.0.10", 80),
                                                  {}).get("endpoints", [])) == 2)
    c = names(topo.run(cl, "tcp", "10.96.0.10", 80, 30))
    ok(good and set(c) == {"pod-a", "pod-b"}, "a removed endpoint gets no new flows", c)
    echo = say(conns, "send %s still-there" % held.get("pod-c", "0"))
    ok("pod-c" in held and echo == "still-there",
       "its established flow keeps working (the flow holds its translation)", (held, echo))
    conns.stdin.close()
    conns.wait(DEADLINE)

    # a UDP flow moves when its endpoint goes (kube-proxy flushes such conntrack entries)
    def ask(p):
        p.stdin.write("q\n")
        p.stdin.flush()
        return p.stdout.readline().split(" ")[0]
    held = [popen_client(cl, "udphold", vip, 53) for vip in ("10.96.0.14", "fd00:96::21")]
    first = [ask(p) for p in held]
    alive = {"pod-a": (A, A6), "pod-b": (B, B6)}
    keep4 = [v[0] for n, v in alive.items() if n != first[0]]
    keep6 = [v[1] for n, v in alive.items() if n != first[1]]
    write(mdir, manifests(dns=keep4, dns6=keep6))
    t0 = time.monotonic()
    moved = wait_until(lambda: [ask(p) for p in held] == [
        {A: "pod-a", B: "pod-b"}[keep4[0]], {A6: "pod-a", B6: "pod-b"}[keep6[0]]], DEADLINE)
    for p in held:
        p.stdin.close()
        p.wait(DEADLINE)
    ok(first[0] in alive and first[1] in alive and moved,
       "a UDP flow (IPv4 and IPv6) whose endpoint is removed goes to the other endpoint on "
       "its next datagram, same socket (the sweep frees the stale flow: %.1f s)"
       % (time.monotonic() - t0), first)
    write(mdir, manifests())

    # a service deleted under open connections: they keep working, as conntrack keeps
    # them in the kernel modes (a tap sends a flow's packets to the queue its replies
    # came from, so here they reach their worker by themselves: tests/dpdk/test-steer
    # hands them over)
    conns = popen_client(cl, "conns", "10.96.0.18", 80)
    opened = [say(conns, "open").split()[:2] for _ in range(8)]
    write(mdir, manifests(gone=False))
    good = wait_until(lambda: ("t/gone", "ClusterIP", "10.96.0.18", 80) not in k.entries())
    echoes = [say(conns, "send %s alive-%s" % (cid, cid)) for cid, _ in opened]
    conns.stdin.close()
    conns.wait(DEADLINE)
    ok(good and len(opened) == 8 and echoes == ["alive-%s" % cid for cid, _ in opened],
       "a deleted service's 8 open connections keep working (their flows hold the "
       "translation)", (opened, echoes))
    write(mdir, manifests())

    flows = k.metric("kproxyd_dpdk_flows")
    rx = k.metric("kproxyd_dpdk_rx_packets_total", '{port="net_tap0"}')
    svc_pkts = k.metric("kproxyd_dpdk_service_packets_total",
                        '{service="t/web:p",frontend="10.96.0.10:80/TCP"}')
    ok(flows is not None and rx and rx > 100 and svc_pkts and svc_pkts > 50 and
       k.metric("kproxyd_dpdk_drops_total", '{reason="no_endpoint"}') >= 2,
       "/metrics: per-port, per-service and per-reason counters (%s flows now)" % flows,
       k.metrics()[-2500:])
    t0 = time.monotonic()
    drained = wait_until(lambda: k.metric("kproxyd_dpdk_flows") == 0, 45)
    ok(drained, "no leaked flows: every flow ages out once its connection closed (%.1f s; "
       "FIN/RST time-out 1 s, UDP 2 s, established 30 s)" % (time.monotonic() - t0),
       k.metrics()[-1500:])
    web = k.entries().get(("t/web", "ClusterIP", "10.96.0.10", 80), {})
    ok(re.search(r"\b0 flows \(\d+ made\)", web.get("detail", "")), "and the dump agrees",
       web.get("detail"))
    ok(k.stop() == 0, "SIGTERM stops kproxyd")
    ok(wait_until(lambda: sh("ip", "link", "show", topo.tap_c, ns=cl, check=False).returncode,
                  5), "its tap ports go with it")
    return k.text()


def rr_run(topo, tmp, mdir):
    write(mdir, manifests())
    k = Kproxyd(topo, tmp, mdir, "--dpdk-lb-policy", "rr", lcores=TWO_WORKERS)
    lines = topo.run(topo.client, "tcp", "10.96.0.10", 80, 12)
    seq = [l.split()[0] for l in lines]
    made = worker_metric(k, "kproxyd_dpdk_worker_flows_created_total")
    ok(len(seq) == 12 and set(seq) == {"pod-a", "pod-b", "pod-c"} and
       all(len(set(seq[i:i + 3])) == 3 for i in range(10)) and None not in made and
       min(made) > 0, "--dpdk-lb-policy rr: each endpoint in turn, though the flows were "
       "made by two workers (%s): the turn is the service's, shared" % made, (seq, made))
    lines = topo.run(topo.client, "udpfrom", "10.96.0.14", 53, 1) + topo.run(
        topo.client, "udpfrom", "10.96.0.14", 53, 1)
    ok(len({l.split()[0] for l in lines}) == 2, "and UDP flows alternate too", lines)
    ok(k.stop() == 0, "SIGTERM stops kproxyd")
    return k.text()


def caps_wrap(caps):
    """uid 0 with exactly @caps (setpriv: bounding and inheritable sets)."""
    sets = "-all" + "".join(",+" + c for c in caps)
    return ["setpriv", "--bounding-set", sets, "--inh-caps", sets, "--"]


def least_privilege_run(topo, tmp, mdir):
    """dpdk mode with CAP_NET_ADMIN alone (tap ports, --no-huge), then without it."""
    write(mdir, manifests())
    k = Kproxyd(topo, tmp, mdir, wrap=caps_wrap(["net_admin"]))
    lines = topo.run(topo.client, "tcp", "10.96.0.10", 80, 10)
    lines6 = topo.run(topo.client, "tcp", "fd00:96::20", 80, 5)
    with open("/proc/%d/status" % k.proc.pid) as f:
        eff = re.search(r"^CapEff:\s*(\S+)", f.read(), re.M).group(1)
    ok(k.attached and int(eff, 16) == 1 << 12 and set(names(lines)) <= {"pod-a", "pod-b", "pod-c"}
       and len(lines) == 10 and "ERR" not in names(lines + lines6) and len(lines6) == 5,
       "with CAP_NET_ADMIN alone (CapEff %s) kproxyd makes its tap ports and carries IPv4 "
       "and IPv6 ClusterIP traffic" % eff, (eff, lines, lines6))
    ok(k.stop() == 0, "SIGTERM stops kproxyd")
    k = Kproxyd(topo, tmp, mdir, wrap=caps_wrap(["net_raw"]))
    exited = wait_until(lambda: k.proc.poll() is not None, DEADLINE)
    ok(exited and k.proc.returncode != 0 and re.search(
        r"dpdk: port net_tap0: no such device \(its driver could not make it; needs "
        r"CAP_NET_ADMIN, and this process lacks CAP_NET_ADMIN\)", k.text()),
       "without CAP_NET_ADMIN it exits at start, naming the capability", k.text()[-800:])
    return k.text()


def one_worker_run(topo, tmp, mdir):
    """One worker of the two worker lcores, no handing over; the dpdk settings from a
    KubeProxyConfiguration's dpdk section."""
    write(mdir, manifests())
    cfg = os.path.join(tmp, "config.yaml")
    with open(cfg, "w") as f:
        f.write("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                "mode: dpdk\nclusterCIDR: 10.244.0.0/16\nminSyncPeriod: 100ms\n"
                "healthzBindAddress: 127.0.0.1:0\nmetricsBindAddress: 127.0.0.1:10249\n"
                "dpdk:\n  workers: 1\n  ealArgs: \"%s\"\n  ports:\n  - \"%s\"\n  - \"%s\"\n"
                "  tcpFinTimeout: 1s\n  udpTimeout: 2s\n  tcpTimeout: 30s\n"
                "  idleSleepMicroseconds: 100\n" % ((eal_args(TWO_WORKERS),) + tuple(ports(topo))))
    out = os.path.join(tmp, "written.yaml")
    r = subprocess.run([os.path.join(TOP_BUILD, "proxy", "kproxyd"), "--config", cfg,
                        "--write-config-to", out], capture_output=True, text=True, timeout=60)
    written = open(out).read() if os.path.exists(out) else ""
    ok(r.returncode == 0 and "\n  workers: 1\n" in written and
       '\n  ports: ["%s", "%s"]\n' % tuple(ports(topo)) in written and
       '\n  tcpFinTimeout: "1s"\n' in written and '\n  maxFlows: 65536\n' in written,
       "the KubeProxyConfiguration's dpdk section is read, and --write-config-to writes it "
       "back with the defaults filled in", r.stderr + written)
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write(open(cfg).read().replace("  workers: 1", "  workers: [1]"))
    r = subprocess.run([os.path.join(TOP_BUILD, "proxy", "kproxyd"), "--config", bad,
                        "--write-config-to", out], capture_output=True, text=True, timeout=60)
    ok(r.returncode != 0 and "dpdk.workers: not a number" in r.stderr,
       "a wrong type in it is refused naming the field", r.stderr)
    k = Kproxyd(topo, tmp, mdir, config=cfg)
    c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 20))
    lines = topo.run(topo.client, "tcp", "192.168.60.1", 30083, 5)
    made = worker_metric(k, "kproxyd_dpdk_worker_flows_created_total")
    handed = k.metric("kproxyd_dpdk_worker_handed_packets_total", '{worker="0",lcore="1"}')
    ok(set(c) == {"pod-a", "pod-b", "pod-c"} and lines == ["pod-a 192.168.60.2"] * 5 and
       made[0] == 25 and made[1] is None and handed == 0,
       "dpdk.workers 1 (from the file): one worker carries ClusterIP and ETP Local NodePort, "
       "hands nothing",
       (c, lines, made, handed))
    big_datagrams(topo, k, "10.96.0.14", "and UDP datagrams in fragments, both ways", n=2)
    r = subprocess.run([os.path.join(TOP_BUILD, "proxy", "kproxyd"), "--proxy-mode", "dpdk",
                        "--manifests", mdir, "--dpdk-workers", "3", "--dpdk-eal-args",
                        "%s --no-huge -m 256 --no-pci --no-shconf --no-telemetry --file-prefix "
                        "kpw%d" % (TWO_WORKERS, os.getpid()), "--dpdk-port",
                        "dev=net_null0;ip=192.168.61.1/24", "--control-socket",
                        os.path.join(tmp, "w3.sock"), "--healthz-bind-address", "",
                        "--metrics-bind-address", ""],
                       capture_output=True, text=True, timeout=60)
    ok(r.returncode != 0 and "option \"workers\": 3 workers asked, EAL has 2 worker lcores"
       in r.stderr, "--dpdk-workers 3 with two worker lcores is refused, naming the option",
       (r.returncode, r.stderr[-800:]))
    ok(k.stop() == 0, "SIGTERM stops kproxyd")
    return k.text()


def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root (network namespaces, taps)")
        return 0
    with open(os.path.join(TOP_BUILD, "config.h")) as f:
        if "#define HAVE_DPDK 1" not in f.read():
            print("1..0 # SKIP DPDK is not built (configure found no libdpdk)")
            return 0
    tmp = tempfile.mkdtemp(prefix="kp-dpdk-")
    mdir = os.path.join(tmp, "manifests")
    os.mkdir(mdir)
    write(mdir, manifests())
    topo = None
    logs = ""
    try:
        topo = Topo()
        logs += maglev_run(topo, tmp, mdir)
        logs += rr_run(topo, tmp, mdir)
        logs += one_worker_run(topo, tmp, mdir)
        logs += least_privilege_run(topo, tmp, mdir)
        ok("Sanitizer" not in logs and "runtime error" not in logs,
           "no sanitizer report from any kproxyd", logs[-3000:])
    except Exception as e:  # report, then clean up
        ok(False, "test run raised %s" % type(e).__name__, str(e))
    finally:
        if topo:
            topo.teardown()
        if TAP.failed and os.path.exists(os.path.join(tmp, "kproxyd.log")):
            print("# kproxyd log:")
            for line in open(os.path.join(tmp, "kproxyd.log")).read().splitlines()[-30:]:
                print("#   " + line)
        shutil.rmtree(tmp, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
