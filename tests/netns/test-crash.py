#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd killed with SIGKILL in the middle of a sync, in iptables mode (issue 16 item 2).

A node namespace with two pods and 2,000 services; kproxyd is killed again and again at
the worst moment there is: while it holds iptables' lock (/run/xtables.lock, seen in
/proc/locks), that is while it is writing the nat and filter tables. After each kill:
an established connection through a ClusterIP still answers, new connections through it
succeed (the tables hold the old or the new rules, never a mix that drops traffic), and
the nat table still has every service. A client loops on the ClusterIP through all of it
and must see no failure. The last start converges without a flush. Then --cleanup is
killed half-way, and the next --cleanup finishes the job. Needs root, iptables-legacy
and network namespaces; prints TAP."""
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import Topology, sh  # noqa: E402
import kptest  # noqa: E402
from kptest import KPROXYD, Tap, names, save, slice_, svc, wait_until  # noqa: E402

TAP = Tap()
ok = TAP.ok
PODS = [("pod-a1", "10.244.1.2"), ("pod-b1", "10.244.2.3")]
A1, B1 = ("10.244.1.2", "node-a", True), ("10.244.2.3", "node-b", True)
FILLERS = 2000
ROUNDS = 12
LOCK = "/run/xtables.lock"
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "client.py")


def fillers():
    out = []
    for i in range(FILLERS):
        ip = "10.97.%d.%d" % (i // 250, i % 250 + 1)
        out.append(svc("f%d" % i, ip, 80) + slice_("f%d" % i, [A1]))
    return "".join(out)


def churn(gen):
    """One service whose endpoints change with @gen, so that each start has work to do."""
    return svc("churn", "10.96.0.20", 80) + slice_("churn", [A1] if gen % 2 else [A1, B1])


def lock_holders():
    """PIDs holding a lock on iptables' lock file."""
    try:
        ino = os.stat(LOCK).st_ino
    except FileNotFoundError:
        return set()
    pids = set()
    with open("/proc/locks") as f:
        for line in f:
            p = line.split()
            if len(p) > 5 and p[5].split(":")[-1] == str(ino):
                pids.add(int(p[4]))
    return pids


def kill_while_locked(proc, deadline=5.0):
    """SIGKILLs @proc as soon as it holds the xtables lock; True if it was caught holding
    it, False if it was killed when @deadline ran out without that."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and proc.poll() is None:
        if proc.pid in lock_holders():
            proc.kill()
            proc.wait()
            return True
    proc.kill()
    proc.wait()
    return False


def nat_services(topo):
    """Service ports with a ClusterIP jump (in KUBE-SERVICES or its dispatch tree)."""
    return len(re.findall(r'^-A KUBE-\S+ .*cluster IP" .*-j KUBE-SVC-\S+$',
                          sh("iptables-legacy-save", "-t", "nat", ns=topo.node).stdout, re.M))


def after_kill(topo, hold, gen):
    """After round @gen's kill: whether the held connection @hold still echoes, and
    whether 4 new connections through the ClusterIP reach the pods."""
    hold.stdin.write("ping%d\n" % gen)
    hold.stdin.flush()
    echo = hold.stdout.readline().strip() == "ping%d" % gen
    c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 4))
    return echo, set(c) <= {"pod-a1", "pod-b1"} and sum(c.values()) == 4


def steady_client(topo, count):
    return subprocess.Popen(["ip", "netns", "exec", topo.client, sys.executable, CLIENT,
                             "tcp", "10.96.0.10", "80", str(count)], stdout=subprocess.PIPE,
                            text=True)


def crash_tests(topo, tmp, mdir):
    n = topo.node
    with open(os.path.join(mdir, "fillers.yaml"), "w") as f:
        f.write(fillers())
    with open(os.path.join(mdir, "web.yaml"), "w") as f:
        f.write(svc("web", "10.96.0.10", 80) + slice_("web", [A1, B1]) + churn(0))
    for tool in ("iptables-legacy", "ip6tables-legacy"):
        sh(tool, "-t", "filter", "-S", ns=n)
        sh(tool, "-t", "nat", "-S", ns=n)
    before = save(topo)

    k = kptest.Kproxyd(n, "iptables", mdir, tmp)
    up = k.ready(lambda: nat_services(topo) >= FILLERS + 2, deadline=60)
    ok(up and k.proc.poll() is None, "kproxyd programs 2,002 services", k.text()[-1500:])
    k.stop()
    hold = subprocess.Popen(["ip", "netns", "exec", topo.client, sys.executable, CLIENT,
                             "hold", "10.96.0.10", "80"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    first = hold.stdout.readline().strip()

    caught, echoes, fresh, counts, steady = 0, [], [], [], []
    rnd = random.Random(7)
    for gen in range(1, ROUNDS + 1):
        with open(os.path.join(mdir, "web.yaml"), "w") as f:
            f.write(svc("web", "10.96.0.10", 80) + slice_("web", [A1, B1]) + churn(gen))
        client = steady_client(topo, 40)
        time.sleep(rnd.uniform(0, 0.05))
        k = kptest.Kproxyd(n, "iptables", mdir, tmp, ("--sync-period", "200ms"))
        caught += kill_while_locked(k.proc)
        echo, new = after_kill(topo, hold, gen)
        echoes.append(echo)
        fresh.append(new)
        counts.append(nat_services(topo))
        out, _ = client.communicate(timeout=120)
        steady += out.splitlines()
    hold.stdin.close()
    hold.wait(10)
    print("# %d of %d kills landed while kproxyd held the xtables lock" % (caught, ROUNDS))
    ok(caught >= ROUNDS // 2, "kproxyd was killed while writing the tables (holding the "
       "xtables lock) in most rounds", caught)
    ok(first.startswith("pod-") and all(echoes), "an established connection through the "
       "ClusterIP answers after every kill", (first, echoes))
    ok(all(fresh), "new connections through the ClusterIP succeed after every kill", fresh)
    ok(all(c == FILLERS + 2 for c in counts), "the nat table holds every service after every "
       "kill (the old rules or the new, never a half-written table)", counts)
    errs = [l for l in steady if not l.startswith("pod-")]
    print("# steady client: %d connections, %d failed" % (len(steady), len(errs)))
    ok(len(steady) == 40 * ROUNDS and not errs, "a client looping on the ClusterIP through "
       "every kill sees no failed connection", errs[:5])

    # the next start converges without a flush: the steady client sees no failure and
    # the churned service ends as the manifests say
    client = steady_client(topo, 60)
    k = kptest.Kproxyd(n, "iptables", mdir, tmp)
    want_eps = 1 if ROUNDS % 2 else 2

    def converged():
        rules = sh("iptables-legacy-save", "-t", "nat", ns=n).stdout
        m = re.search(r'^-A KUBE-\S+ .*"t/churn:p cluster IP".* -j (KUBE-SVC-\S+)',
                      rules, re.M)
        return m and len(re.findall(r"^-A %s .*-j KUBE-SEP-" % m.group(1), rules,
                                    re.M)) == want_eps
    ok(k.ready(converged, deadline=60) and k.proc.poll() is None,
       "after the kills a start converges to the manifests", k.text()[-1500:])
    out, _ = client.communicate(timeout=120)
    errs = [l for l in out.splitlines() if not l.startswith("pod-")]
    ok(len(out.splitlines()) == 60 and not errs, "and its first sync flushes nothing a "
       "client would notice", errs[:5])
    k.stop()

    # --cleanup killed half-way, then run again
    killed = 0
    for _ in range(3):
        p = subprocess.Popen(["ip", "netns", "exec", n, KPROXYD, "--proxy-mode", "iptables",
                              "--cleanup"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        killed += kill_while_locked(p)
    print("# --cleanup killed while holding the lock: %d of 3" % killed)
    r = subprocess.run(["ip", "netns", "exec", n, KPROXYD, "--proxy-mode", "iptables",
                        "--cleanup"], capture_output=True, text=True, timeout=60)
    # kube-proxy leaves KUBE-FIREWALL (kubelet's chain too, localhost NodePorts) in place
    after = [l for l in save(topo) if "KUBE-FIREWALL" not in l]
    ok(killed >= 1 and r.returncode == 0 and after == before,
       "a --cleanup killed while writing the tables is finished by the next --cleanup",
       (killed, "\n".join(l for l in after if l not in before)[:1500], r.stderr))


def main():
    return kptest.run_main(TAP, "iptables", "iptables-legacy", "kp-crash-",
                           lambda: Topology(PODS), crash_tests)

if __name__ == "__main__":
    sys.exit(main())
