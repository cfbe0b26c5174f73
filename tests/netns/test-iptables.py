#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd --proxy-mode iptables in a node namespace, with real connections from the
node itself and from a client namespace to pods behind a bridge. Needs root,
iptables-legacy and network namespaces; prints TAP."""
import fcntl
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import Topology, sh  # noqa: E402
import kptest  # noqa: E402
from kptest import KPROXYCTL, KPROXYD  # noqa: E402
from kptest import Tap, names, save, slice_, svc, wait_until  # noqa: E402

DEADLINE = 10.0
TAP = Tap()
ok = TAP.ok

PODS = [("pod-a1", "10.244.1.2", "fd00:10:244::2"), ("pod-b1", "10.244.2.3", "fd00:10:244::3"),
        ("pod-b2", "10.244.2.4", "fd00:10:244::4"), ("pod-unready", "10.244.1.9")]


FLAGS = ()


A1, B1, B2, UN = [(ip, "node-a" if "1.2" in ip or "1.9" in ip else "node-b", True)
                  for _, ip, *_ in PODS]
UN = (UN[0], "node-a", False)
V6 = {p[1]: p[2] for p in PODS if len(p) > 2}


def manifests(web_eps, dns_eps=None):
    return (svc("web", "10.96.0.10", 80, ptype="NodePort", node_port=30080)
            + slice_("web", web_eps)
            + svc("sticky", "10.96.0.11", 80, "  sessionAffinity: ClientIP\n")
            + slice_("sticky", [A1, B1, B2])
            + svc("empty", "10.96.0.12", 80, ptype="NodePort", node_port=30082)
            + svc("local", "10.96.0.13", 80, "  externalTrafficPolicy: Local\n"
                  "  healthCheckNodePort: 32083\n",
                  ptype="NodePort", node_port=30083)
            + slice_("local", [A1, B1])
            + svc("dns", "10.96.0.14", 53, "  clusterIPs: [10.96.0.14, 'fd00:96::14']\n"
                  "  ipFamilies: [IPv4, IPv6]\n", proto="UDP")
            + slice_("dns", dns_eps or [A1, B1], proto="UDP")
            + slice_("dns", [(V6[ep[0]], ep[1], True) for ep in dns_eps or [A1, B1]],
                     proto="UDP", sname="dns-6", family="IPv6")
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
            + slice_("dual", [("fd00:10:244::2", "node-a", True),
                              ("fd00:10:244::3", "node-b", True)], sname="dual-6",
                     family="IPv6")
            + svc("term", "10.96.0.16", 80)
            + slice_("term", [(B1[0], "node-b", "terminating"), (UN[0], "node-a", False)]))


class Kproxyd(kptest.Kproxyd):
    def __init__(self, topo, mdir, *extra):
        super().__init__(topo.node, "iptables", mdir, os.path.join(mdir, ".."), (
            "--nodeport-addresses", "192.168.50.0/24,fd00:50::/64",
            "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0",
            *FLAGS, *extra))
        self.ready(lambda: self.ctl("status").returncode == 0)


def healthz(ns, url):
    """The status code of GET url from inside namespace ns."""
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c",
                        "import sys, urllib.request, urllib.error\n"
                        "try:\n print(urllib.request.urlopen(sys.argv[1], timeout=5).status)\n"
                        "except urllib.error.HTTPError as e:\n print(e.code)\n", url],
                       capture_output=True, text=True, timeout=DEADLINE)
    return int(r.stdout.strip() or 0)


def listeners(ns, port):
    """The socket inodes of the TCP listeners on @port in namespace @ns."""
    out = sh("ss", "-ltnHe", f"sport = :{port}", ns=ns).stdout
    return sorted(re.findall(r"ino:(\d+)", out))


def timed_repair(fn, deadline=DEADLINE):
    """Seconds until fn() holds (None if it never does within @deadline)."""
    t0 = time.monotonic()
    return time.monotonic() - t0 if wait_until(fn, deadline) else None


def tamper_tests(topo, k):
    """Another program changes the nat table behind kproxyd's back (issue 16 item 4): each
    change is repaired by the next periodic sync (kproxyd runs with --sync-period 1s here);
    rules in chains kproxyd does not own are left alone. The repair times are reported."""
    n = topo.node

    def nat():
        return sh("iptables-legacy", "-t", "nat", "-S", ns=n).stdout

    def web_works():
        c = names(topo.run(n, "tcp", "10.96.0.10", 80, 6))
        return set(c) <= {"pod-a1", "pod-b1"} and sum(c.values()) == 6

    def nodeport_works():
        c = names(topo.run(topo.client, "tcp", "192.168.50.1", 30080, 4))
        return set(c) <= {"pod-a1", "pod-b1"} and sum(c.values()) == 4

    # the whole nat table flushed and kube-proxy's chains deleted (a firewall reload)
    wait_until(web_works)
    r = k.ctl("check")
    ok(r.returncode == 0 and r.stdout.startswith("ok: 0 differences"),
       "kproxyctl check: the nat table read back agrees with the desired state",
       r.stdout + r.stderr)
    sh("iptables-legacy", "-w", "-t", "nat", "-F", ns=n)
    for ch in re.findall(r"^-N (KUBE-\S+)$", nat(), re.M):
        sh("iptables-legacy", "-w", "-t", "nat", "-X", ch, ns=n, check=False)
    sh("iptables-legacy", "-w", "-t", "nat", "-A", "OUTPUT", "-d", "203.0.113.9", "-j",
       "OTHER-CHAIN", ns=n)
    gone = "-N KUBE-SERVICES" not in nat()
    t = timed_repair(lambda: "-j KUBE-SERVICES" in nat() and web_works() and nodeport_works())
    ok(gone and t is not None, "a flushed nat table, kube-proxy's chains deleted: the next "
       "sync rebuilds them and the ClusterIP and NodePort carry traffic again", nat()[:2000])
    print("# nat table flushed: repaired in %s s (sync period 1 s)" % (
        "%.2f" % t if t is not None else "never"))

    # one service chain deleted by a whole-table restore (its jumps with it)
    saved = sh("iptables-legacy-save", "-t", "nat", ns=n).stdout
    m = re.search(r'^-A KUBE-SERVICES .*t/web:p cluster IP".* -j (KUBE-SVC-\S+)', saved,
                  re.M) or re.search(r"^-A KUBE-SVCT-\S+ .*-j (KUBE-SVC-\S+)", saved, re.M)
    svc_chain = m.group(1) if m else "KUBE-SVC-none"
    cut = "\n".join(l for l in saved.splitlines()
                    if not re.search(r"(:|-A |-j )%s\b" % re.escape(svc_chain), l)) + "\n"
    r = subprocess.run(["ip", "netns", "exec", n, "iptables-legacy-restore", "-w"], input=cut,
                       text=True, capture_output=True)
    deleted = r.returncode == 0 and ("-N %s\n" % svc_chain) not in nat()
    t = timed_repair(lambda: ("-N %s\n" % svc_chain) in nat() and web_works())
    ok(m is not None and deleted and t is not None, "one service chain deleted (%s): the next "
       "sync recreates it and its ClusterIP carries traffic" % svc_chain, r.stderr)
    print("# one service chain deleted: repaired in %s s" % (
        "%.2f" % t if t is not None else "never"))

    # a foreign rule in the middle of KUBE-SERVICES is gone at the next sync (kproxyd owns
    # that chain and rewrites it whole, as kube-proxy's iptables-restore does); one in a
    # built-in chain, before kproxyd's own jump, stays
    sh("iptables-legacy", "-w", "-t", "nat", "-I", "KUBE-SERVICES", "2", "-d", "203.0.113.7/32",
       "-m", "comment", "--comment", "foreign-in-ours", "-j", "RETURN", ns=n)
    sh("iptables-legacy", "-w", "-t", "nat", "-I", "PREROUTING", "1", "-d", "203.0.113.8/32",
       "-m", "comment", "--comment", "foreign-in-builtin", "-j", "RETURN", ns=n)
    t = timed_repair(lambda: "foreign-in-ours" not in nat())
    time.sleep(2.5)                     # two more syncs
    rules = nat()
    ok(t is not None and "foreign-in-builtin" in rules and "-A PREROUTING -j KUBE-SERVICES" in
       rules.replace(' -m comment --comment "kubernetes service portals"', ""),
       "a rule inserted in KUBE-SERVICES is removed by the next sync; one in PREROUTING is "
       "left alone, beside kproxyd's jump", rules[:1500])
    sh("iptables-legacy", "-w", "-t", "nat", "-D", "PREROUTING", "-d", "203.0.113.8/32", "-m",
       "comment", "--comment", "foreign-in-builtin", "-j", "RETURN", ns=n)
    r = k.ctl("check")
    ok(r.returncode == 0, "and agrees again after the repairs", r.stdout + r.stderr)


def run_tests(topo, mdir, mode, flags):
    global FLAGS
    TAP.prefix, FLAGS = mode, flags
    n = topo.node
    if sh("iptables-legacy", "-t", "nat", "-N", "OTHER-CHAIN", ns=n, check=False).returncode == 0:
        sh("iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-d", "203.0.113.9", "-j",
           "OTHER-CHAIN", ns=n)
    for tool in ("iptables-legacy", "ip6tables-legacy"):  # load the tables before the snapshot
        sh(tool, "-t", "filter", "-S", ns=n)
        sh(tool, "-t", "nat", "-S", ns=n)
    before = save(topo)
    with open(os.path.join(mdir, "services.yaml"), "w") as f:
        f.write(manifests([A1, B1, B2, UN]))
    k = Kproxyd(topo, mdir)
    ok(k.proc.poll() is None, "kproxyd runs in iptables mode", open(k.log.name).read())
    saved = sh("iptables-legacy-save", ns=n).stdout
    ok("unsupported" not in saved and "-j DNAT --to-destination 10.244.1.2:8080" in saved,
       "iptables-save prints every rule back (revisions iptables itself uses)",
       "\n".join(l for l in saved.splitlines() if "unsupported" in l)[:2000])
    rules = sh("iptables-legacy", "-t", "nat", "-S", ns=n).stdout
    ok(("-j KUBE-SVCT-" in rules) == (mode == "tree"),
       "KUBE-SERVICES dispatches through a tree of chains" if mode == "tree"
       else "KUBE-SERVICES is kube-proxy's flat list", rules[:3000])

    lines = topo.run(n, "tcp", "10.96.0.10", 80, 300)
    c = names(lines)
    ok(set(c) == {"pod-a1", "pod-b1", "pod-b2"},
       "ClusterIP from the node reaches every ready endpoint, never the unready one",
       (c, [l for l in lines if l.startswith("ERR")][:5]))
    ok("ERR" not in c and min(c.values()) >= 50, "spread roughly evenly over 300 connections",
       c)
    c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 60))
    ok(set(c) == {"pod-a1", "pod-b1", "pod-b2"}, "ClusterIP routed through the node", c)
    c = names(topo.run(topo.client, "tcp", "192.168.50.1", 30080, 60))
    ok(set(c) == {"pod-a1", "pod-b1", "pod-b2"}, "NodePort from outside the node", c)
    c = names(topo.run(topo.client, "tcp", "192.168.50.100", 80, 10))
    ok(set(c) == {"pod-b2"}, "externalIP", c)
    lines = topo.run(topo.pods["pod-b2"][0], "tcp", "10.96.0.15", 80, 5)
    ok(set(names(lines)) == {"pod-b2"} and all(l.endswith(" 10.244.0.1") for l in lines),
       "hairpin: a pod reaches itself through its service, masqueraded", lines)
    lines = topo.run(topo.client, "tcp", "192.168.50.1", 30083, 40)
    ok(set(names(lines)) == {"pod-a1"}, "externalTrafficPolicy Local: only local endpoints",
       lines[:5])
    ok(all(l.endswith(" 192.168.50.2") for l in lines),
       "externalTrafficPolicy Local keeps the client source address", lines[:5])
    lines = topo.run(topo.client, "tcp", "192.168.50.1", 30080, 5)
    ok(all(not l.endswith(" 192.168.50.2") for l in lines),
       "externalTrafficPolicy Cluster masquerades NodePort traffic", lines)
    c = names(topo.run(topo.client, "tcp", "192.168.50.200", 80, 5))
    ok(set(c) == {"pod-b2"}, "LoadBalancer IP from a source inside loadBalancerSourceRanges", c)
    lines = topo.run(topo.client, "tcp", "192.168.50.200", 80, 2, src="192.168.50.3")
    ok(lines and all(l.startswith("ERR TimeoutError") for l in lines),
       "and dropped from a source outside them (KUBE-FW, KUBE-PROXY-FIREWALL)", lines)
    c = names(topo.run(n, "tcp", "fd00:96::18", 80, 40))
    ok(set(c) == {"pod-a1", "pod-b1"}, "IPv6 ClusterIP of a dual-stack service (ip6tables)", c)
    lines = topo.run(topo.client, "tcp", "fd00:50::1", 30088, 20)
    ok(set(names(lines)) == {"pod-a1", "pod-b1"}, "IPv6 NodePort from outside the node",
       lines[:4])
    c = names(topo.run(topo.client, "tcp", "10.96.0.18", 80, 20))
    ok(set(c) == {"pod-a1", "pod-b1"}, "and its IPv4 ClusterIP", c)
    c = names(topo.run(n, "tcp", "10.96.0.11", 80, 30))
    ok(len(c) == 1 and "ERR" not in c, "ClientIP affinity sticks to one endpoint", c)
    c = names(topo.run(n, "tcp", "10.96.0.16", 80, 20))
    ok(set(c) == {"pod-b1"}, "only a terminating endpoint left: it is used", c)
    lines = topo.run(n, "tcp", "10.96.0.12", 80, 3)
    ok(all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0 for l in lines),
       "a service with no endpoints refuses at once (from the node)", lines)
    lines = topo.run(topo.client, "tcp", "192.168.50.1", 30082, 2)
    ok(all(l.startswith("ERR refused") for l in lines),
       "and on its NodePort from outside", lines)
    c = names(topo.run(topo.client, "udp", "10.96.0.14", 53, 20))
    ok(set(c) <= {"pod-a1", "pod-b1"} and "ERR" not in c and c, "UDP through a ClusterIP", c)

    dump = subprocess.run([KPROXYCTL, "-s", k.sock, "dump", "-o", "json"], capture_output=True,
                          text=True)
    entries = {(e["service"], e["kind"], e["vip"], e["port"]):
               sorted(x["ip"] for x in e["endpoints"])
               for e in json.loads(dump.stdout)["entries"]} if dump.returncode == 0 else {}
    ok(entries.get(("t/web", "ClusterIP", "10.96.0.10", 80))
       == ["10.244.1.2", "10.244.2.3", "10.244.2.4"]
       and entries.get(("t/web", "NodePort", "192.168.50.1", 30080))
       == ["10.244.1.2", "10.244.2.3", "10.244.2.4"]
       and entries.get(("t/local", "NodePort", "192.168.50.1", 30083)) == ["10.244.1.2"]
       and entries.get(("t/empty", "ClusterIP", "10.96.0.12", 80)) == []
       and entries.get(("t/fw", "LoadBalancer", "192.168.50.200", 80)) == ["10.244.2.4"]
       and entries.get(("t/dual", "ClusterIP", "fd00:96::18", 80))
       == ["fd00:10:244::2", "fd00:10:244::3"]
       and entries.get(("t/dual", "NodePort", "fd00:50::1", 30088))
       == ["fd00:10:244::2", "fd00:10:244::3"],
       "kproxyctl dump reads the kernel's rules back",
       "\n".join("%s -> %s" % kv for kv in sorted(entries.items())) + dump.stderr)

    # an established connection survives a restart
    hold = subprocess.Popen(["ip", "netns", "exec", topo.client, sys.executable,
                             os.path.join(os.path.dirname(__file__), "client.py"), "hold",
                             "10.96.0.10", "80"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    first = hold.stdout.readline().strip()
    rc = k.stop()
    ok(rc == 0, "SIGTERM stops kproxyd")
    k = Kproxyd(topo, mdir)
    hold.stdin.write("ping\n")
    hold.stdin.flush()
    echo = hold.stdout.readline().strip()
    hold.stdin.close()
    hold.wait(DEADLINE)
    ok(first.startswith("pod-") and echo == "ping",
       "an established connection through the VIP survives a restart", (first, echo))

    # a UDP flow moves when its endpoint goes: the stale conntrack entry is flushed
    def udp_client(vip):
        return subprocess.Popen(["ip", "netns", "exec", topo.client, sys.executable,
                                 os.path.join(os.path.dirname(__file__), "client.py"),
                                 "udphold", vip, "53"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)

    def ask(p):
        p.stdin.write("q\n")
        p.stdin.flush()
        return p.stdout.readline().split(" ")[0]
    # warm the IPv6 neighbour caches: a lost first datagram is NDP, not the proxy
    topo.run(topo.client, "udp", "fd00:96::14", 53, 3)
    udp = udp_client("10.96.0.14")
    first = [ask(udp) for _ in range(3)]
    gone = A1 if first[0] == "pod-a1" else B1
    kept = B1 if gone is A1 else A1
    # an IPv6 flow on the pod that goes too (new flows pick at random: bounded retries)
    for _ in range(12):
        udp6 = udp_client("fd00:96::14")
        first6 = [ask(udp6) for _ in range(3)]
        if first6[0] == first[0]:
            break
        udp6.stdin.close()
        udp6.wait(DEADLINE)

    # an endpoint removed from the manifests stops getting connections
    with open(os.path.join(mdir, "services.yaml.tmp"), "w") as f:
        f.write(manifests([A1, B1], dns_eps=[kept]))
    os.rename(os.path.join(mdir, "services.yaml.tmp"), os.path.join(mdir, "services.yaml"))
    good = wait_until(lambda: "pod-b2" not in names(topo.run(n, "tcp", "10.96.0.10", 80, 20)))
    c = names(topo.run(n, "tcp", "10.96.0.10", 80, 60))
    ok(good and set(c) == {"pod-a1", "pod-b1"}, "a removed endpoint gets no new connections", c)
    after = [ask(udp) for _ in range(3)]
    after6 = [ask(udp6) for _ in range(3)]
    for p in (udp, udp6):
        p.stdin.close()
        p.wait(DEADLINE)
    kept_name = "pod-a1" if kept is A1 else "pod-b1"
    ok(len(set(first)) == 1 and first[0].startswith("pod-") and set(after) == {kept_name},
       "a UDP client moves to the remaining endpoint (its conntrack entry was flushed)",
       (first, after))
    ok(len(set(first6)) == 1 and first6[0].startswith("pod-") and set(after6) == {kept_name},
       "the same over IPv6 (ctnetlink, AF_INET6)", (first6, after6))

    # a restart reconciles conntrack: an entry towards an endpoint that left the service
    # while no kproxyd ran is deleted by the first sync (the delta knows nothing of it)
    with open(os.path.join(mdir, "services.yaml.tmp"), "w") as f:
        f.write(manifests([A1, B1]))
    os.rename(os.path.join(mdir, "services.yaml.tmp"), os.path.join(mdir, "services.yaml"))
    wait_until(lambda: len(names(topo.run(topo.client, "udp", "10.96.0.14", 53, 12))) == 2)
    udp = udp_client("10.96.0.14")
    first = [ask(udp) for _ in range(3)]
    k.stop()
    kept = B1 if first[0] == "pod-a1" else A1
    with open(os.path.join(mdir, "services.yaml.tmp"), "w") as f:
        f.write(manifests([A1, B1], dns_eps=[kept]))
    os.rename(os.path.join(mdir, "services.yaml.tmp"), os.path.join(mdir, "services.yaml"))
    still = [ask(udp) for _ in range(2)]
    k = Kproxyd(topo, mdir, "--v", "4")
    wait_until(lambda: "conntrack: reconcile" in open(k.log.name).read())
    after = [ask(udp) for _ in range(3)]
    udp.stdin.close()
    udp.wait(DEADLINE)
    kept_name = "pod-a1" if kept is A1 else "pod-b1"
    ok(len(set(first + still)) == 1 and first[0].startswith("pod-") and
       set(after) == {kept_name} and
       re.search(r"conntrack: reconcile: [1-9][0-9]* stale UDP entries deleted",
                 open(k.log.name).read()),
       "after a restart the reconcile pass deletes the UDP entry towards the endpoint that "
       "left while kproxyd was down", (first, still, after))

    # a resync repairs rules deleted behind kproxyd's back
    k.stop()
    k = Kproxyd(topo, mdir, "--sync-period", "1s")
    sh("iptables-legacy", "-t", "nat", "-F", "KUBE-SERVICES", ns=n)
    good = wait_until(lambda: names(topo.run(n, "tcp", "10.96.0.10", 80, 1)).keys()
                      <= {"pod-a1", "pod-b1"})
    ok(good, "the periodic resync repairs a flushed KUBE-SERVICES")

    # kproxyd takes iptables' lock (/run/xtables.lock, shared by every namespace): while
    # another program holds it, kproxyd writes nothing; then it catches up
    def nat_services():
        return [l for l in sh("iptables-legacy-save", "-t", "nat", ns=n).stdout.splitlines()
                if l.startswith("-A KUBE-SERVICES")]

    held = None
    with open("/run/xtables.lock", "a") as lk:
        for _ in range(5):      # a resync may land between the flush and the lock
            sh("iptables-legacy", "-t", "nat", "-F", "KUBE-SERVICES", ns=n)
            fcntl.flock(lk, fcntl.LOCK_EX)
            if not nat_services():
                time.sleep(2.5)         # more than two sync periods
                held = nat_services()
                fcntl.flock(lk, fcntl.LOCK_UN)
                break
            fcntl.flock(lk, fcntl.LOCK_UN)
    ok(held == [], "while another program holds /run/xtables.lock, kproxyd writes nothing",
       held)
    ok(wait_until(lambda: nat_services()), "once the lock is free, the resync repairs the "
       "rules")
    tamper_tests(topo, k)

    # failing syncs: the rules stay, /healthz turns 503 after twice the sync period
    st = json.loads(subprocess.run([KPROXYCTL, "-s", k.sock, "status", "-o", "json"],
                                   capture_output=True, text=True).stdout)
    hz = "http://%s/healthz" % st["healthz_address"]
    ok(healthz(n, hz) == 200, "/healthz 200 while syncs succeed")
    # a foreign rule pointing at a chain of ours that is not wanted blocks its deletion
    sh("iptables-legacy", "-t", "nat", "-N", "KUBE-SEP-AAAAAAAAAAAAAAAA", ns=n)
    sh("iptables-legacy", "-t", "nat", "-A", "OTHER-CHAIN", "-j", "KUBE-SEP-AAAAAAAAAAAAAAAA",
       ns=n)
    hcp = "http://192.168.50.1:32083/"  # bound on the NodePort addresses only
    ok(healthz(n, hcp) == 200, "the health check node port: 200 while healthy, with a local "
       "endpoint")
    ok(wait_until(lambda: healthz(n, hz) == 503), "/healthz 503 once syncs keep failing",
       open(k.log.name).read()[-1500:])
    livez = hz.replace("/healthz", "/livez")
    ok(healthz(n, livez) == 503, "/livez 503 too (the node aside, syncs are stale)")
    ok(healthz(n, hcp) == 503, "the health check node port answers 503 while kproxyd is "
       "unhealthy, though the service has a local endpoint")
    mx = "http://%s/metrics" % st["metrics_address"]
    m = subprocess.run(["ip", "netns", "exec", n, "curl", "-s", mx], capture_output=True,
                       text=True).stdout
    ok(all(name in m for name in (
        'kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="nat"}',
        'kubeproxy_sync_proxy_rules_iptables_last{ip_family="IPv4",table="filter"}',
        'kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"}',
        'kubeproxy_conntrack_reconciler_sync_duration_seconds_count{ip_family="IPv4"}',
        'kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="IPv4"}',
        'kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"}')) and
       "# TYPE kubeproxy_conntrack_reconciler_sync_duration_seconds histogram" in m,
       "/metrics: the iptables mode's metrics, kube-proxy's names and labels",
       "\n".join(l for l in m.splitlines() if "iptables" in l or "conntrack" in l))
    c = names(topo.run(n, "tcp", "10.96.0.10", 80, 10))
    ok(set(c) <= {"pod-a1", "pod-b1"} and "ERR" not in c,
       "a failed sync leaves the programmed rules working", c)
    sh("iptables-legacy", "-t", "nat", "-F", "OTHER-CHAIN", ns=n)
    ok(wait_until(lambda: healthz(n, hz) == 200), "/healthz 200 again after a good sync")
    ok(healthz(n, livez) == 200 and healthz(n, hcp) == 200, "/livez and the health check "
       "node port 200 again")
    k.stop()

    r = subprocess.run(["ip", "netns", "exec", n, KPROXYD, "--proxy-mode", "iptables",
                        "--cleanup"], capture_output=True, text=True, timeout=30)
    after = save(topo)
    ok(r.returncode == 0 and after == before,
       "--cleanup leaves the tables as they were before kproxyd started",
       "\n".join(l for l in after if l not in before) + r.stderr)


def nodeaddr_manifests():
    return (svc("web", "10.96.0.10", 80, ptype="NodePort", node_port=30080)
            + slice_("web", [A1, B1, B2])
            + svc("local", "10.96.0.13", 80, "  externalTrafficPolicy: Local\n"
                  "  healthCheckNodePort: 32100\n", ptype="NodePort", node_port=30083)
            + slice_("local", [A1, B1]))


def run_nodeaddr_tests(topo, mdir):
    """NodePorts on the node's addresses as they come and go (--nodeport-addresses unset:
    every local address, localhost included; a range: its addresses only), and the
    health-check node port bound to the same addresses."""
    n, cl = topo.node, topo.client
    for f in os.listdir(mdir):
        os.unlink(os.path.join(mdir, f))
    with open(os.path.join(mdir, "services.yaml"), "w") as f:
        f.write(nodeaddr_manifests())
    common = ("--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0")

    def reaches(ip, port=30080, ns=cl):
        return set(names(topo.run(ns, "tcp", ip, port, 6))) <= {"pod-a1", "pod-b1", "pod-b2"}

    TAP.prefix = "nodePortAddresses unset"
    k = kptest.Kproxyd(n, "iptables", mdir, os.path.join(mdir, ".."), common)
    ok(k.ready(lambda: "--dst-type LOCAL -j KUBE-NODEPORTS" in
               sh("iptables-legacy-save", "-t", "nat", ns=n).stdout) and k.proc.poll() is None,
       "kube-proxy's '-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS' closes KUBE-SERVICES",
       k.text()[-1500:])
    ok(reaches("192.168.50.1"), "NodePort on the node's address")
    ok(reaches("127.0.0.1", ns=n), "localhost NodePort from the node itself (127.0.0.1)")
    ok(sh("sysctl", "-n", "net.ipv4.conf.all.route_localnet", ns=n).stdout.strip() == "1" and
       "block incoming localnet connections" in sh("iptables-legacy", "-S", "KUBE-FIREWALL",
                                                   ns=n).stdout,
       "route_localnet=1, with kube-proxy's martian-source drop in KUBE-FIREWALL")
    ok(not reaches("192.168.50.11"), "no NodePort on an address the node has not got yet")
    ino = listeners(n, 32100)
    sh("ip", "addr", "add", "192.168.50.11/24", "dev", "vcl", ns=n)
    ok(wait_until(lambda: reaches("192.168.50.11")),
       "an address added after start carries NodePort traffic")
    ok(wait_until(lambda: "192.168.50.11" in k.text().split("NodePort addresses")[-1]),
       "kproxyd learns of the new address", k.text()[-1500:])
    ok(healthz(cl, "http://192.168.50.11:32100/") == 200,
       "the health-check node port answers on it (every address)")
    ok(len(ino) == 1 and listeners(n, 32100) == ino,
       "and on the listener it had: an address change does not close and reopen it (a "
       "client queued on it would be refused)", f"{ino} -> {listeners(n, 32100)}")
    sh("ip", "addr", "del", "192.168.50.11/24", "dev", "vcl", ns=n)
    k.stop()

    TAP.prefix = "nodePortAddresses 192.168.60.0/24"
    sh("ip", "route", "add", "192.168.60.0/24", "via", "192.168.50.1", ns=cl)
    k = kptest.Kproxyd(n, "iptables", mdir, os.path.join(mdir, ".."),
                       common + ("--nodeport-addresses", "192.168.60.0/24"))
    ok(k.ready(lambda: k.ctl("status").returncode == 0) and k.proc.poll() is None,
       "kproxyd runs", k.text()[-1500:])
    ok(not reaches("192.168.50.1"), "no NodePort on an address outside the range")
    ok(not reaches("127.0.0.1", ns=n), "no localhost NodePort: loopback is not in the range")
    sh("ip", "addr", "add", "192.168.60.1/24", "dev", "vcl", ns=n)
    ok(wait_until(lambda: reaches("192.168.60.1")),
       "an address added in the range after start carries NodePort traffic",
       k.text()[-1500:])
    ok(wait_until(lambda: healthz(cl, "http://192.168.60.1:32100/") == 200),
       "the health-check node port answers on the address in the range")
    ok(healthz(cl, "http://192.168.50.1:32100/") == 0,
       "and is not bound to the node's other addresses")
    sh("ip", "addr", "del", "192.168.60.1/24", "dev", "vcl", ns=n)
    ok(wait_until(lambda: "192.168.60.1" not in
                  sh("iptables-legacy-save", "-t", "nat", ns=n).stdout),
       "a removed address loses its NodePort jump")
    sh("ip", "route", "del", "192.168.60.0/24", ns=cl)
    k.stop()
    TAP.prefix = ""


def all_tests(topo, tmp, mdir):
    # kube-proxy's linear KUBE-SERVICES, then the dispatch tree (forced with 2 rules)
    run_tests(topo, mdir, "linear", ("--iptables-dispatch-threshold", "0"))
    for f in os.listdir(mdir):
        os.unlink(os.path.join(mdir, f))
    run_tests(topo, mdir, "tree", ("--iptables-dispatch-threshold", "2"))
    chains = sh("iptables-legacy", "-t", "nat", "-S", ns=topo.node).stdout
    ok("KUBE-SVCT-" not in chains, "no dispatch chain is left after --cleanup")
    run_nodeaddr_tests(topo, mdir)


def main():
    return kptest.run_main(
        TAP, "iptables", "iptables-legacy", "kp-netns-",
        lambda: Topology(PODS, external_ips=["192.168.50.100", "192.168.50.200"]),
        all_tests)

if __name__ == "__main__":
    sys.exit(main())
