#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd --proxy-mode nftables in a node namespace: test-iptables.py's services and
topology, real connections from the node, a client namespace and a pod, checked against
`nft list table ip kube-proxy`; incremental updates, repair of a hand-edited table by the
periodic sync (--sync-period 2s), a restart without a flush, --cleanup beside a foreign
table, and a bad object. Needs root, nft and network namespaces; prints TAP."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from topology import Topology, sh  # noqa: E402
import kptest  # noqa: E402
from kptest import KPROXYD, Tap, names, popen_client, say, slice_, svc, wait_until  # noqa: E402

_spec = importlib.util.spec_from_file_location("test_iptables",
                                               os.path.join(HERE, "test-iptables.py"))
ipt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ipt)
PODS, A1, B1, B2, manifests = ipt.PODS, ipt.A1, ipt.B1, ipt.B2, ipt.manifests

TAP = Tap()
ok = TAP.ok
DEADLINE = 10.0
STARTED = []                            # every kproxyd started, stopped in main()'s finally


class Kproxyd(kptest.Kproxyd):
    def __init__(self, topo, mdir, *extra):
        STARTED.append(self)
        super().__init__(topo.node, "nftables", mdir, os.path.join(mdir, ".."), (
            "--nodeport-addresses", "192.168.50.0/24,fd00:50::/64",
            "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0",
            "--sync-period", "2s", *extra))
        self.ready(lambda: self.ctl("status").returncode == 0)


def extra_manifests(moved_eps, gone=True):
    """Two services of this test: "moved" (its endpoints change), "gone" (removed)."""
    return (svc("moved", "10.96.0.20", 80) + slice_("moved", moved_eps)
            + (svc("gone", "10.96.0.21", 80) + slice_("gone", [B1]) if gone else ""))


def nft_state(text):
    """A table listing as {chain: rules} and the sorted verdict-map elements."""
    chains = {name: [l.strip() for l in body.strip().splitlines()]
              for name, body in re.findall(r"\n\tchain (\S+) \{\n(.*?)\n\t\}", text, re.S)}
    return chains, sorted(x.strip() for x in re.findall(r"[^{},\n]+ : goto [^,}\n]+", text))


def write(mdir, name, text):
    tmp = os.path.join(mdir, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(mdir, name))


def run_tests(topo, mdir):
    n, cl = topo.node, topo.client

    def nft(*args, check=False):
        return sh("nft", *args, ns=n, check=check)

    def table(fam="ip"):
        return nft("list", "table", fam, "kube-proxy").stdout

    def elems(m, fam="ip"):
        return nft("list", "map", fam, "kube-proxy", m).stdout

    def serves(ip, port, want, count=6, ns=n, proto="tcp"):
        c = names(topo.run(ns, proto, ip, port, count))
        return set(c) <= set(want) and sum(c.values()) == count

    # a foreign table, there before kproxyd and during every sync
    nft("add", "table", "inet", "foreign", check=True)
    nft("add", "chain", "inet", "foreign", "c", check=True)
    nft("add", "rule", "inet", "foreign", "c", "ip", "daddr", "203.0.113.9", "counter",
        check=True)
    foreign = nft("list", "table", "inet", "foreign").stdout

    write(mdir, "services.yaml", manifests([A1, B1, B2, ipt.UN]))
    write(mdir, "extra.yaml", extra_manifests([A1]))
    k = Kproxyd(topo, mdir)
    ok(k.proc.poll() is None and "10.96.0.10 . tcp . 80 : goto service-" in table()
       and "fd00:96::18 . tcp . 80 : goto service-" in table("ip6"),
       "kproxyd runs in nftables mode: tables ip and ip6 kube-proxy, ClusterIPs in "
       "service-ips", k.text()[-2000:] + table()[:2000])

    # --- the scenarios of test-iptables.py ---
    c = names(topo.run(n, "tcp", "10.96.0.10", 80, 60))
    ok(set(c) == {"pod-a1", "pod-b1", "pod-b2"},
       "ClusterIP from the node reaches every ready endpoint, never the unready one", c)
    c = names(topo.run(cl, "tcp", "10.96.0.10", 80, 40))
    ok(set(c) == {"pod-a1", "pod-b1", "pod-b2"}, "ClusterIP routed through the node", c)
    # the node's first IPv6 connection times out in iptables mode too (neighbour
    # discovery in this topology, not the proxy): one connection first, not counted
    topo.run(n, "tcp", "fd00:96::18", 80, 1)
    lines = topo.run(n, "tcp", "fd00:96::18", 80, 30)
    ok(set(names(lines)) == {"pod-a1", "pod-b1"}, "IPv6 ClusterIP of a dual-stack service",
       (names(lines), [l for l in lines if l.startswith("ERR")]))
    c = names(topo.run(cl, "tcp", "fd00:50::1", 30088, 20))
    ok(set(c) == {"pod-a1", "pod-b1"}, "IPv6 NodePort from outside the node", c)
    c = names(topo.run(cl, "tcp", "192.168.50.1", 30080, 40))
    ok(set(c) == {"pod-a1", "pod-b1", "pod-b2"}, "NodePort on the node's address", c)
    c = names(topo.run(cl, "tcp", "192.168.50.100", 80, 5))
    ok(set(c) == {"pod-b2"}, "externalIP", c)
    c = names(topo.run(cl, "tcp", "192.168.50.200", 80, 5))
    ok(set(c) == {"pod-b2"}, "LoadBalancer IP from a source inside loadBalancerSourceRanges",
       c)
    lines = topo.run(cl, "tcp", "192.168.50.200", 80, 1, src="192.168.50.3")
    ok(lines and all(l.startswith("ERR TimeoutError") for l in lines),
       "and dropped from a source outside them (firewall-check)",
       lines + [l for l in table().splitlines() if "firewall" in l or "192.168.50.2/" in l
                or "192.168.50.2 " in l])
    lines = topo.run(n, "tcp", "10.96.0.12", 80, 3)
    ok(lines and all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0
                     for l in lines),
       "a service with no endpoints refuses at once (from the node)", lines)
    lines = topo.run(cl, "tcp", "192.168.50.1", 30082, 2)
    ok(lines and all(l.startswith("ERR refused") for l in lines),
       "and on its NodePort from outside", lines)
    c = names(topo.run(n, "tcp", "10.96.0.11", 80, 20))
    ok(len(c) == 1 and "ERR" not in c and "affinity-" in table(),
       "ClientIP affinity sticks to one endpoint", c)
    lines = topo.run(cl, "tcp", "192.168.50.1", 30083, 20)
    ok(set(names(lines)) == {"pod-a1"}, "externalTrafficPolicy Local: only local endpoints",
       lines[:5])
    ok(lines and all(l.endswith(" 192.168.50.2") for l in lines),
       "externalTrafficPolicy Local keeps the client source address", lines[:5])
    lines = topo.run(cl, "tcp", "192.168.50.1", 30080, 5)
    ok(lines and all(not l.endswith(" 192.168.50.2") and not l.startswith("ERR")
                     for l in lines),
       "externalTrafficPolicy Cluster masquerades NodePort traffic", lines)
    # kube-proxy's nftables mode masquerades hairpin traffic of local endpoints only
    # (hairpin-connections): pod-a1 is node-a's, "moved" has it as its only endpoint
    lines = topo.run(topo.pods["pod-a1"][0], "tcp", "10.96.0.20", 80, 5)
    ok(set(names(lines)) == {"pod-a1"} and all(l.endswith(" 10.244.0.1") for l in lines)
       and "10.244.1.2 . 10.244.1.2 . tcp . 8080" in table(),
       "hairpin: a local pod reaches itself through its service, masqueraded", lines)
    c = names(topo.run(n, "tcp", "10.96.0.16", 80, 10))
    ok(set(c) == {"pod-b1"}, "only a terminating endpoint left: it is used", c)
    c = names(topo.run(cl, "udp", "10.96.0.14", 53, 10))
    ok(c and set(c) <= {"pod-a1", "pod-b1"}, "UDP through a ClusterIP", c)

    # --- incremental updates ---
    udp = popen_client(cl, "udphold", "10.96.0.14", 53)
    first = [say(udp, "q").split(" ")[0] for _ in range(3)]
    kept = B1 if first[0] == "pod-a1" else A1
    kept_name = "pod-b1" if kept is B1 else "pod-a1"
    gone_chains = re.findall(r"chain (\S+-t/gone/\S+) \{", table())
    write(mdir, "services.yaml", manifests([A1, B1], dns_eps=[kept]))
    write(mdir, "extra.yaml", extra_manifests([B2], gone=False))
    moved = wait_until(lambda: serves("10.96.0.20", 80, {"pod-b2"}))
    svc_ips = elems("service-ips") + nft("list", "set", "ip", "kube-proxy",
                                         "cluster-ips").stdout
    chains = nft_state(table())[0]
    ok(moved and [r for c, rules in chains.items() if "t/moved/" in c for r in rules]
       == ["meta l4proto tcp dnat ip to numgen random mod 1 map { 0 : 10.244.2.4 . 8080 }"],
       "an endpoint change: the new endpoint answers, its service chain has it",
       {c: r for c, r in chains.items() if "t/moved/" in c})
    c = names(topo.run(n, "tcp", "10.96.0.10", 80, 30))
    ok(set(c) == {"pod-a1", "pod-b1"}, "a removed endpoint gets no new connections", c)
    after = [say(udp, "q").split(" ")[0] for _ in range(3)]
    udp.stdin.close()
    udp.wait(DEADLINE)
    ok(len(set(first)) == 1 and first[0].startswith("pod-") and set(after) == {kept_name},
       "a UDP flow moves to the remaining endpoint (its conntrack entry was flushed)",
       (first, after))
    ok(gone_chains and "10.96.0.21" not in svc_ips and "10.96.0.21" not in table(),
       "a removed service: its map elements are gone with the same sync",
       (gone_chains, svc_ips))
    ok(wait_until(lambda: "t/gone/" not in table(), 6.0),
       "and its chains are deleted within a few seconds (stale chains)",
       [l for l in table().splitlines() if "t/gone/" in l])

    # --- repair of a hand-edited table by the periodic sync ---
    m = re.search(r"chain (service-\S+-t/web/tcp/p) \{", table())
    chain = m.group(1) if m else "service-none"
    nft("flush", "chain", "ip", "kube-proxy", chain)
    broken = not serves("10.96.0.10", 80, {"pod-a1", "pod-b1"}, 2)
    t0 = time.monotonic()
    fixed = wait_until(lambda: serves("10.96.0.10", 80, {"pod-a1", "pod-b1"}), 8.0)
    ok(m and broken and fixed and "table differs" in k.text(),
       "a flushed service chain (%s) is repaired by the periodic sync in %.1f s, "
       "the log says the table differed" % (chain, time.monotonic() - t0),
       k.text()[-1500:])
    differs = k.text().count("table differs")
    nft("delete", "element", "ip", "kube-proxy", "service-ips", "{ 10.96.0.15 . tcp . 80 }")
    broken = "10.96.0.15 . tcp . 80" not in elems("service-ips")
    t0 = time.monotonic()
    fixed = wait_until(lambda: serves("10.96.0.15", 80, {"pod-b2"}, 2), 8.0)
    ok(broken and fixed and k.text().count("table differs") > differs,
       "a map element deleted by hand is back after the periodic sync (%.1f s), "
       "the log says the table differed" % (time.monotonic() - t0), k.text()[-1000:])

    # a rule replaced in place (same count): only its content tells
    differs = k.text().count("a rule was changed")
    listing = nft("-a", "list", "chain", "ip", "kube-proxy", chain).stdout
    h = re.search(r"numgen .* # handle (\d+)", listing)
    nft("replace", "rule", "ip", "kube-proxy", chain, "handle", h.group(1) if h else "0",
        "meta", "l4proto", "tcp", "dnat", "to", "10.244.2.3:8080")
    broken = wait_until(lambda: serves("10.96.0.10", 80, {"pod-b1"}, 4), 2.0)
    t0 = time.monotonic()
    fixed = wait_until(lambda: len(names(topo.run(n, "tcp", "10.96.0.10", 80, 12))) == 2, 8.0)
    ok(h and broken and fixed and k.text().count("a rule was changed") > differs,
       "a service rule replaced in place by hand (same rule count) is seen by the read-back "
       "(its fingerprint) and repaired (%.1f s)" % (time.monotonic() - t0),
       (listing, k.text()[-800:]))

    # --- a bad object programs nothing and removes nothing ---
    before = sorted(re.findall(r"\S+ \. \S+ \. \d+ : goto \S+", elems("service-ips")))
    write(mdir, "bad.yaml", svc("bad", "10.96.0.999", 80) + slice_("bad", [A1]))
    time.sleep(2.5)                     # a change sync and a periodic one
    after = sorted(re.findall(r"\S+ \. \S+ \. \d+ : goto \S+", elems("service-ips")))
    ok(k.proc.poll() is None and before and before == after and "t/bad" not in table(),
       "a Service with an invalid clusterIP programs nothing and removes nothing",
       (set(before) ^ set(after), k.text()[-800:]))
    ok(serves("10.96.0.10", 80, {"pod-a1", "pod-b1"}) and serves("10.96.0.20", 80, {"pod-b2"}),
       "the other services keep working")

    # --- restart without a flush ---
    hold = popen_client(cl, "hold", "10.96.0.10", 80)
    first = hold.stdout.readline().strip()
    state = nft_state(table() + table("ip6"))
    rc = k.stop()
    ok(rc == 0 and "10.96.0.10 . tcp . 80" in table() and "kube-proxy" in
       nft("list", "tables").stdout, "SIGTERM stops kproxyd; its tables stay")
    k = Kproxyd(topo, mdir)
    echo = say(hold, "ping")
    hold.stdin.close()
    hold.wait(DEADLINE)
    ok(first.startswith("pod-") and echo == "ping",
       "an established connection through the VIP survives a restart", (first, echo))
    ok(wait_until(lambda: "synced" in k.text().split("kproxyd 0.1.0: node")[-1])
       and nft_state(table() + table("ip6")) == state
       and serves("10.96.0.10", 80, {"pod-a1", "pod-b1"}) and k.proc.poll() is None,
       "the restarted kproxyd converges to the same tables", k.text()[-1500:])

    # --- kproxyctl dump: the endpoint sets read back from the kernel (last: if kproxyd
    # stops answering, nothing after this depends on it) ---
    r = k.ctl("dump", "-o", "json")
    ent = {(e["service"], e["kind"], e["vip"], e["port"]):
           sorted(x["ip"] for x in e["endpoints"])
           for e in json.loads(r.stdout)["entries"]} if r.returncode == 0 else {}
    ok(ent.get(("t/moved", "ClusterIP", "10.96.0.20", 80)) == ["10.244.2.4"]
       and ent.get(("t/web", "ClusterIP", "10.96.0.10", 80)) == ["10.244.1.2", "10.244.2.3"]
       and ent.get(("t/web", "NodePort", "192.168.50.1", 30080))
       == ["10.244.1.2", "10.244.2.3"]
       and ent.get(("t/dual", "ClusterIP", "fd00:96::18", 80))
       == ["fd00:10:244::2", "fd00:10:244::3"]
       and not any(key[0] == "t/gone" for key in ent),
       "kproxyctl dump -o json reads the new endpoint sets back from the kernel",
       r.stderr + "\n".join("%s -> %s" % kv for kv in sorted(ent.items())))
    one = k.ctl("dump", "t/web", "-o", "json")
    web = [e for e in json.loads(r.stdout)["entries"] if e["service"] == "t/web"] \
        if r.returncode == 0 else None
    ok(one.returncode == 0 and web and json.loads(one.stdout)["entries"] == web,
       "kproxyctl dump t/web (kproxyd reads that service's chains alone) lists what the "
       "whole dump lists for it", one.stdout[-1500:] + one.stderr)
    bad = k.ctl("dump", "t/web/x")
    ok(bad.returncode != 0 and "a service is NAMESPACE/NAME, not t/web/x" in
       bad.stdout + bad.stderr, "dump t/web/x is refused, naming it",
       bad.stdout + bad.stderr)
    ok(k.ctl("status").returncode == 0, "kproxyd still answers after the dump")

    # --- foreign table, --cleanup ---
    ok(nft("list", "table", "inet", "foreign").stdout == foreign,
       "a foreign table is untouched by the syncs")
    kptest.stop(k.proc, 3.0)
    r = sh(KPROXYD, "--proxy-mode", "nftables", "--cleanup", ns=n, check=False)
    tables = nft("list", "tables").stdout
    ok(r.returncode == 0 and "kube-proxy" not in tables and
       nft("list", "table", "inet", "foreign").stdout == foreign,
       "--cleanup deletes both kube-proxy tables and nothing else", tables + r.stderr)

    # --- switching modes, as kube-proxy: the other mode's rules go at start ---
    def xt_nat():
        return sh("iptables-legacy", "-t", "nat", "-S", ns=n, check=False).stdout

    sh("iptables-legacy", "-t", "nat", "-N", "KUBE-SERVICES", ns=n, check=False)
    sh("iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-j", "KUBE-SERVICES", ns=n,
       check=False)
    sh("iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.1", "-j", "ACCEPT",
       ns=n, check=False)
    before = xt_nat()
    k = Kproxyd(topo, mdir)
    served = wait_until(lambda: serves("10.96.0.10", 80, {"pod-a1", "pod-b1"}))
    after = xt_nat()
    ok("KUBE-SERVICES" in before and "KUBE-" not in after and "192.0.2.1" in after and
       served,
       "a start in nftables mode removes an iptables mode's chains (only those), and serves",
       before + "\n--\n" + after)
    kptest.stop(k.proc, 3.0)
    ik = kptest.Kproxyd(n, "iptables", mdir, os.path.join(mdir, ".."), (
        "--nodeport-addresses", "192.168.50.0/24,fd00:50::/64",
        "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0"))
    STARTED.append(ik)
    ik.ready(lambda: ik.ctl("status").returncode == 0)
    synced = wait_until(lambda: "KUBE-SERVICES" in xt_nat())
    tables = nft("list", "tables").stdout
    ok("kube-proxy" not in tables and synced and
       nft("list", "table", "inet", "foreign").stdout == foreign,
       "a start in iptables mode removes the nftables mode's tables (only those)", tables)
    kptest.stop(ik.proc, 3.0)
    k = Kproxyd(topo, mdir)
    kptest.stop(k.proc, 3.0)
    r = sh(KPROXYD, "--proxy-mode", "iptables", "--cleanup", ns=n, check=False)
    ok(r.returncode == 0 and "kube-proxy" not in nft("list", "tables").stdout and
       "KUBE-" not in xt_nat(),
       "--cleanup in any mode removes every mode's rules, as kube-proxy's", r.stderr)

    # --- kproxyctl check: the table read back against the desired state ---
    a1, b1 = ipt.A1, ipt.B1
    write(mdir, "sticky-local.yaml", svc(
        "stickylocal", "10.96.0.21", 80, "  sessionAffinity: ClientIP\n"
        "  externalTrafficPolicy: Local\n  healthCheckNodePort: 32091\n",
        ptype="NodePort", node_port=30091) + slice_("stickylocal", [a1, b1]))
    k = Kproxyd(topo, mdir, "--sync-period", "0")     # no periodic resync: nothing repairs

    def check():
        r = k.ctl("check", "-o", "json")
        return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else {}), r.stderr

    ok(wait_until(lambda: "t/stickylocal/" in table()) and check()[0] == 0,
       "kproxyctl check after a sync: the table agrees with the desired state (exit 0)",
       check())
    body = nft("list", "chain", "ip", "kube-proxy", next(
        c for c in re.findall(r"chain (endpoint-\S+)", table())
        if "t/stickylocal/" in c and "10.244.1.2" in c)).stdout
    ok(body.count("dnat to") == 1 and body.count("update @") == 1,
       "an affinity endpoint behind both the service- and the local- chain gets one "
       "endpoint chain, written once", body)
    web = next(c for c in re.findall(r"chain (service-\S+-t/web/tcp/p) ", table()))
    nft("flush", "chain", "ip", "kube-proxy", web, check=True)
    rc, res, err = check()
    diffs = res.get("differences", [])
    ok(rc == 1 and not res.get("agree") and any(
        d["what"] == "endpoints" and d["service"] == "t/web" and d["vip"] == "10.96.0.10"
        and d["have"] == [] and sorted(d["want"]) == ["10.244.1.2:8080", "10.244.2.3:8080"]
        for d in diffs), "after a service chain is flushed by hand, check says so: exit 1, "
       "t/web 10.96.0.10 has no endpoints where two are wanted", (rc, diffs[:4], err))
    m = sh("curl", "-s", "http://%s/metrics" % json.loads(k.ctl(
        "status", "-o", "json").stdout)["metrics_address"], ns=n, check=False).stdout
    ok(re.search(r"^kproxyd_dataplane_drift [1-9]", m, re.M),
       "and /metrics shows the drift it found", m[-300:])
    write(mdir, "sticky-local.yaml", svc(
        "stickylocal", "10.96.0.21", 80, "  sessionAffinity: ClientIP\n",
        ptype="NodePort", node_port=30091) + slice_("stickylocal", [a1, b1]))
    ok(wait_until(lambda: check()[0] == 0),
       "the next sync (a change elsewhere) sees the generation moved, repairs, and check "
       "agrees again", check())
    # --- a node address added and removed while kproxyd runs: nodeport-ips follows ---
    def np_ips():
        return nft("list", "set", "ip", "kube-proxy", "nodeport-ips").stdout

    sh("ip", "addr", "add", "192.168.50.77/24", "dev", "vcl", ns=n)
    added = wait_until(lambda: "192.168.50.77" in np_ips())
    c = names(topo.run(cl, "tcp", "192.168.50.77", 30080, 4))
    sh("ip", "addr", "del", "192.168.50.77/24", "dev", "vcl", ns=n)
    gone = wait_until(lambda: "192.168.50.77" not in np_ips())
    ok(added and set(c) <= {"pod-a1", "pod-b1"} and sum(c.values()) == 4 and gone,
       "a node address added in --nodeport-addresses joins nodeport-ips and takes "
       "NodePort traffic; removed, it leaves", (np_ips(), c))

    # --- kproxyctl trace, against the same tables ---
    def trace(src, dst):
        r = k.ctl("trace", src, dst, "-o", "json")
        return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr}

    t = trace("192.168.50.2", "10.96.0.10:80")
    ok(t.get("verdict") == "forwarded" and t.get("service") == "t/web" and
       sorted(t.get("endpoints", [])) == ["10.244.1.2:8080", "10.244.2.3:8080"] and
       any(re.match(r"data plane: service-\w+-t/web/tcp/p$", x) for x in t.get("steps", []))
       and any("probability 1/2" in x for x in t["steps"]) and
       any(x.startswith("masqueraded: 192.168.50.2 is outside the cluster CIDR")
           for x in t["steps"]),
       "trace to a ClusterIP: its service, its chain in the table, 1/2 odds, masqueraded "
       "from outside the cluster CIDR", t)
    t = trace("192.168.50.9", "192.168.50.200:80")
    ok(t.get("verdict") == "dropped" and any("outside loadBalancerSourceRanges" in x
                                             for x in t.get("steps", [])),
       "trace to a LoadBalancer IP from outside its source ranges: dropped", t)
    t = trace("192.168.50.2", "192.168.50.200:80")
    ok(t.get("verdict") == "forwarded" and t.get("endpoints") == ["10.244.2.4:8080"],
       "and from inside them: forwarded", t)
    t = trace("192.168.50.2", "192.168.50.1:30083")
    ok(t.get("verdict") == "forwarded" and t.get("endpoints") == ["10.244.1.2:8080"] and
       any("client address is kept" in x for x in t.get("steps", [])),
       "trace to an externalTrafficPolicy Local NodePort: the local endpoint only, the "
       "client address kept", t)
    t = trace("192.168.50.2", "10.96.0.12:80")
    ok(t.get("verdict") == "rejected" and any("no endpoints" in x for x in t.get("steps", [])),
       "trace to a service without endpoints: rejected", t)
    t = trace("192.168.50.2", "10.96.0.10:81")
    ok(t.get("verdict") == "rejected" and "has no TCP port 81" in " ".join(t.get("steps", [])),
       "trace to a ClusterIP on a port it has not: rejected", t)
    t = trace("192.168.50.2", "10.99.9.9:80")
    ok(t.get("verdict") == "no frontend", "trace to an unknown address: no frontend", t)
    t = trace("192.168.50.2", "[fd00:96::18]:80/tcp")
    ok(t.get("error") and "SRC's family" in t["error"],
       "trace across families is refused, naming the argument", t)
    kptest.stop(k.proc, 3.0)
    r = subprocess.run([kptest.KPROXYCTL, "-s", "/nonexistent.sock", "check"],
                       capture_output=True, text=True, timeout=10)
    ok(r.returncode == 2, "check without a kproxyd to ask: exit 2 (%d)" % r.returncode,
       r.stderr)


def stop_all():
    for k in STARTED:
        if k.proc.poll() is None:
            kptest.stop(k.proc, 3.0)


def main():
    return kptest.run_main(
        TAP, "nftables", "nft", "kp-nft-",
        lambda: Topology(PODS, external_ips=["192.168.50.100", "192.168.50.200"]),
        lambda topo, tmp, mdir: run_tests(topo, mdir), stop_all)

if __name__ == "__main__":
    sys.exit(main())
