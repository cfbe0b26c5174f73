#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# ipvs-smoke.sh: IPVS programmed BY HAND (ipvsadm, ipset, iptables-legacy; no kproxyd) in
# the network-namespace topology of tests/netns/topology.py, inside the qemu guest. It
# proves the topology, the kernel, and the mechanics test-ipvs.py relies on (rr rotation,
# sh/dh stickiness, lc/sed/nq under held connections, weight 0 + RST expiry, UDP real
# server deletion, persistence, refusal without real servers, hairpin masquerade), with
# test-ipvs.py's own check functions, so a failure of test-ipvs.py against kproxyd is
# about kproxyd, not about the test.
#   tests/vm/ipvs-smoke.sh        (host: reruns itself in the guest via run-in-guest)
# Prints TAP; exits 1 on a failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${KPROXY_VM:-}" ]; then
	exec "$here/run-in-guest" --timeout 600 -- bash "$here/ipvs-smoke.sh"
fi
exec python3 - "$here" <<'EOF'
import collections, importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location("tipvs", os.path.join(sys.argv[1], "test-ipvs.py"))
T = importlib.util.module_from_spec(spec)
spec.loader.exec_module(T)
sh, ok, diag, names, ipvs = T.sh, T.ok, T.diag, T.names, T.ipvs
sh("modprobe", "-a", "ip_vs", "ip_tables", "ip6_tables", "iptable_nat", "iptable_filter")
t0 = time.monotonic()
topo = T.Topology(T.PODS)
diag("topology (3 pods) up in %.1f s" % (time.monotonic() - t0))
N = topo.node
A1, B1, B2 = (x[0] for x in (T.A1, T.B1, T.B2))
try:
    # the vs sysctls appear only once ip_vs is loaded (for every namespace, old or new)
    for s in ("net.ipv4.vs.conntrack=1", "net.ipv4.vs.expire_nodest_conn=1"):
        sh("sysctl", "-qw", s, ns=N)
    sh("ip", "link", "add", "kube-ipvs0", "type", "dummy", ns=N)
    for v in ("10.96.0.10", "10.96.0.11", "10.96.0.12", "10.96.0.14", "10.96.0.16"):
        sh("ip", "addr", "add", v + "/32", "dev", "kube-ipvs0", ns=N)
    sh("ipvsadm", "-A", "-t", "10.96.0.10:80", "-s", "rr", ns=N)
    sh("ipvsadm", "-A", "-t", "10.96.0.11:80", "-s", "rr", "-p", "600", ns=N)
    sh("ipvsadm", "-A", "-t", "10.96.0.12:80", "-s", "rr", ns=N)
    sh("ipvsadm", "-A", "-t", "10.96.0.16:80", "-s", "rr", ns=N)
    sh("ipvsadm", "-A", "-u", "10.96.0.14:53", "-s", "rr", ns=N)
    for ip in (A1, B1, B2):
        for v in ("10.96.0.10:80", "10.96.0.11:80", "10.96.0.16:80"):
            sh("ipvsadm", "-a", "-t", v, "-r", ip + ":8080", "-m", ns=N)
    for ip in (A1, B1):
        sh("ipvsadm", "-a", "-u", "10.96.0.14:53", "-r", ip + ":8080", "-m", ns=N)

    T.SCHED = "rr"
    t0 = time.monotonic()
    T.check_rr(topo)
    diag("30 connections from the node: %.1f s" % (time.monotonic() - t0))
    lines = topo.run(topo.client, "tcp", "10.96.0.10", 80, 30)
    ok(set(names(lines)) == {"pod-a1", "pod-b1", "pod-b2"}, "client -> VIP through the node",
       lines[:4])
    ok(all(l.endswith(" 192.168.50.2") for l in lines),
       "without iptables rules the pod sees the client's own address", lines[:4])
    for where in (N, topo.client):
        lines = topo.run(where, "tcp", "10.96.0.12", 80, 3)
        ok(lines and all(l.startswith("ERR refused") and float(l.split()[2]) < 1.0
                         for l in lines),
           "a virtual server without real servers refuses at once (from %s)"
           % ("the node" if where == N else "the client"), lines)
    ok(ipvs(N)[("TCP", "10.96.0.11", 80)]["persistent"] == 600,
       "ipvsadm -Ln shows a persistent service's timeout", ipvs(N))
    c = names(topo.run(topo.client, "tcp", "10.96.0.11", 80, 20))
    ok(len(c) == 1 and "ERR" not in c, "persistence: 20 connections on one pod", c)

    for sched, fn in (("sh", T.check_sh), ("dh", T.check_dh), ("lc", T.check_least),
                      ("sed", T.check_least), ("nq", T.check_least), ("rr", None)):
        T.SCHED = sched
        sh("ipvsadm", "-E", "-t", "10.96.0.10:80", "-s", sched, ns=N)
        if fn is T.check_least:
            fn(topo, sched)
        elif fn:
            fn(topo)
    # rr under check_least's procedure must FAIL it (the check can tell schedulers apart);
    # run it silently and count on the failure counter
    before = T.failed
    sys.stdout = open(os.devnull, "w")
    for _ in range(3):
        T.check_least(topo, "rr")
    sys.stdout = sys.__stdout__
    T.count -= 6
    caught = T.failed - before
    T.failed = before
    ok(caught >= 1, "the least-connection check fails for rr (%d of 3 runs)" % caught)
    T.SCHED = ""

    # weight 0 and expiry after RST: the mechanics of graceful termination
    conns = T.Conns(topo.client, "10.96.0.16", 80)
    cid, pod = conns.open()
    x = {"pod-a1": A1, "pod-b1": B1, "pod-b2": B2}[pod]
    sh("ipvsadm", "-e", "-t", "10.96.0.16:80", "-r", x + ":8080", "-m", "-w", "0", ns=N)
    c = names(topo.run(N, "tcp", "10.96.0.16", 80, 20))
    ok(pod not in c and "ERR" not in c, "weight 0: no new connections to %s" % pod, c)
    ok(conns.send(cid, "hello") == "hello", "weight 0: the held connection still works")
    conns.close(cid, reset=True)
    conns.end()
    key, rs = ("TCP", "10.96.0.16", 80), (x, 8080)
    t0 = time.monotonic()
    diag("after RST: %s" % ipvs(N)[key]["rs"][rs])
    idle = T.wait_until(lambda: ipvs(N)[key]["rs"][rs]["active"] +
                        ipvs(N)[key]["rs"][rs]["inact"] == 0, bound=60, step=0.5)
    ok(idle, "after RST the real server has no connections left within %.1f s"
       % (time.monotonic() - t0), ipvs(N)[key])

    # UDP: deleting a real server with a flow on it
    u = T.udp_client(topo.client, "10.96.0.14", 53)
    first = [T.ask(u) for _ in range(3)]
    gone = A1 if first[0] == "pod-a1" else B1
    sh("ipvsadm", "-d", "-u", "10.96.0.14:53", "-r", gone + ":8080", ns=N)
    t0 = time.monotonic()
    after = [T.ask(u) for _ in range(4)]
    u.stdin.close()
    u.wait(10)
    diag("UDP answers before %s, after deleting %s (expire_nodest_conn=1): %s (%.1f s)"
         % (first, gone, after, time.monotonic() - t0))
    ok(after[-1] and after[-1] != T.POD_OF[gone], "the UDP flow moves once its real server "
       "is deleted", after)

    # hairpin: masquerade through the KUBE-LOOP-BACK set
    lines = topo.run(topo.pods["pod-a1"][0], "tcp", "10.96.0.10", 80, 3)
    diag("pod -> VIP -> pods without masquerade: %s" % lines)
    sh("ipset", "create", "KUBE-LOOP-BACK", "hash:ip,port,ip", ns=N)
    for ip in (A1, B1, B2):
        sh("ipset", "add", "KUBE-LOOP-BACK", "%s,tcp:8080,%s" % (ip, ip), ns=N)
    sh("iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-m", "set", "--match-set",
       "KUBE-LOOP-BACK", "dst,dst,src", "-j", "MASQUERADE", ns=N)
    lines = topo.run(topo.pods["pod-a1"][0], "tcp", "10.96.0.10", 80, 6)
    diag("pod -> VIP with KUBE-LOOP-BACK masquerade: %s" % lines)
    ok([l for l in lines if l.startswith("pod-a1")]
       and all(l == "pod-a1 10.244.0.1" for l in lines if l.startswith("pod-a1")),
       "hairpin with KUBE-LOOP-BACK masquerade: a pod reaches itself, sees 10.244.0.1", lines)
    diag(sh("ipvsadm", "-Ln", ns=N).stdout)
finally:
    topo.teardown()
print("# %d passed, %d failed" % (T.count - T.failed, T.failed))
print("1..%d" % T.count)
sys.exit(1 if T.failed else 0)
EOF
