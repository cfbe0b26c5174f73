#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd killed with SIGKILL in the middle of a sync, in nftables mode (issue 16's kills,
for the fifth data plane).

A node namespace with two pods and 2,000 services. Every sync is one nf_tables transaction
(the kernel applies all of it or nothing; a rebuild over existing tables is one too), and
a first build (no kube-proxy table yet) is several, the dispatch maps filled by the last.
So: kproxyd is killed at random moments of its start again and again; after each kill an
established connection through a ClusterIP still answers, new ones succeed, and the
service-ips map holds every service; a client looping on the ClusterIP sees no failure.
Then a first build is killed part-way: nothing half-built is reachable (no service-ips
element), and the next start finishes it. Then --cleanup killed between its two tables is
finished by the next one. Needs root, nft and network namespaces; prints TAP."""
import importlib.util
import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from topology import Topology, sh  # noqa: E402
import kptest  # noqa: E402
from kptest import KPROXYD, Tap, names, slice_, svc  # noqa: E402

_spec = importlib.util.spec_from_file_location("test_crash", os.path.join(HERE, "test-crash.py"))
crash = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crash)

TAP = Tap()
ok = TAP.ok
ROUNDS = 12
WANT = crash.FILLERS + 2        # service ports: the fillers, web and churn


def service_ips(n):
    """ClusterIP elements of service-ips (TCP port 80), or -1 without the table."""
    r = sh("nft", "list", "map", "ip", "kube-proxy", "service-ips", ns=n, check=False)
    return len(re.findall(r"\. tcp \. 80 : goto", r.stdout)) if r.returncode == 0 else -1


def chains(n):
    r = sh("nft", "list", "chains", "ip", ns=n, check=False)
    return len(re.findall(r"chain service-", r.stdout))


def start(n, mdir, tmp, *extra):
    return kptest.Kproxyd(n, "nftables", mdir, tmp, extra)


def log_size(tmp):
    try:
        return os.path.getsize(os.path.join(tmp, "kproxyd.log"))
    except OSError:
        return 0


def synced_since(k, offset):
    """Whether this start logged its first sync (the log is shared by every start)."""
    return "] synced " in k.text()[offset:]


def crash_tests(topo, tmp, mdir):
    n = topo.node
    with open(os.path.join(mdir, "fillers.yaml"), "w") as f:
        f.write(crash.fillers())
    with open(os.path.join(mdir, "web.yaml"), "w") as f:
        f.write(svc("web", "10.96.0.10", 80) + slice_("web", [crash.A1, crash.B1])
                + crash.churn(0))

    # a first build killed part-way: nothing reachable yet, the next start finishes it
    partial, t_full = None, None
    rnd = random.Random(11)
    k = start(n, mdir, tmp)
    t0 = time.monotonic()
    k.ready(lambda: service_ips(n) >= WANT, deadline=60)
    t_full = time.monotonic() - t0
    k.stop()
    sh(KPROXYD, "--proxy-mode", "nftables", "--cleanup", ns=n)
    for _ in range(8):
        k = start(n, mdir, tmp)
        # kill once chains appear, before the maps are filled
        end = time.monotonic() + 10
        while time.monotonic() < end and k.proc.poll() is None and chains(n) == 0:
            time.sleep(0.002)
        time.sleep(rnd.uniform(0, 0.02))
        k.proc.kill()
        k.proc.wait()
        c, s = chains(n), service_ips(n)
        if 0 < c < WANT and s <= 0:
            partial = (c, s)
            break
        sh(KPROXYD, "--proxy-mode", "nftables", "--cleanup", ns=n)
    print("# first build: %.2f s; killed part-way with %s" % (t_full, partial))
    ok(partial is not None, "a first build killed part-way leaves service chains but no "
       "dispatch element: nothing half-built is reachable (%s)" % (partial,))
    k = start(n, mdir, tmp)
    ok(k.ready(lambda: service_ips(n) >= WANT, deadline=60) and k.proc.poll() is None,
       "the next start finishes it (%d of %d)" % (service_ips(n), WANT), k.text()[-1500:])
    c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 6))
    ok(set(c) <= {"pod-a1", "pod-b1"} and sum(c.values()) == 6,
       "and the ClusterIP answers", c)
    k.stop()

    # kills at random moments of a start over existing tables
    hold = subprocess.Popen(["ip", "netns", "exec", topo.client, sys.executable, crash.CLIENT,
                             "hold", "10.96.0.10", "80"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    first = hold.stdout.readline().strip()
    mid, echoes, fresh, counts, steady = 0, [], [], [], []
    for gen in range(1, ROUNDS + 1):
        with open(os.path.join(mdir, "web.yaml"), "w") as f:
            f.write(svc("web", "10.96.0.10", 80) + slice_("web", [crash.A1, crash.B1])
                    + crash.churn(gen))
        client = crash.steady_client(topo, 40)
        offset = log_size(tmp)
        k = start(n, mdir, tmp, "--sync-period", "200ms")
        time.sleep(rnd.uniform(0, 1.5 * t_full))
        mid += not synced_since(k, offset) and k.proc.poll() is None
        k.proc.kill()
        k.proc.wait()
        echo, new = crash.after_kill(topo, hold, gen)
        echoes.append(echo)
        fresh.append(new)
        counts.append(service_ips(n))
        out, _ = client.communicate(timeout=120)
        steady += out.splitlines()
    hold.stdin.close()
    hold.wait(10)
    print("# %d of %d kills landed before kproxyd's first sync ended" % (mid, ROUNDS))
    ok(mid >= ROUNDS // 3, "kproxyd was killed before its first sync ended in many rounds",
       mid)
    ok(first.startswith("pod-") and all(echoes), "an established connection through the "
       "ClusterIP answers after every kill", (first, echoes))
    ok(all(fresh), "new connections through the ClusterIP succeed after every kill", fresh)
    ok(all(c == WANT for c in counts), "service-ips holds every service after every kill "
       "(the old table or the new, never a mix)", counts)
    errs = [line for line in steady if not line.startswith("pod-")]
    print("# steady client: %d connections, %d failed" % (len(steady), len(errs)))
    ok(len(steady) == 40 * ROUNDS and not errs, "a client looping on the ClusterIP through "
       "every kill sees no failed connection", errs[:5])
    k = start(n, mdir, tmp)
    want = 1 if ROUNDS % 2 else 2

    def converged():
        r = sh("nft", "list", "table", "ip", "kube-proxy", ns=n, check=False).stdout
        m = re.search(r"chain service-\w+-t/churn/tcp/p \{\n\s*(.*)\n", r)
        return bool(m) and (("mod %d map" % want) in m.group(1) or
                            (want == 1 and "dnat to" in m.group(1)))
    ok(k.ready(converged, deadline=60) and k.proc.poll() is None,
       "after the kills a start converges to the manifests", k.text()[-1500:])
    k.stop()

    # --cleanup killed between its tables (or not at all), then run again
    for _ in range(3):
        p = subprocess.Popen(["ip", "netns", "exec", n, KPROXYD, "--proxy-mode", "nftables",
                              "--cleanup"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0, 0.03))
        p.kill()
        p.wait()
    r = subprocess.run(["ip", "netns", "exec", n, KPROXYD, "--proxy-mode", "nftables",
                        "--cleanup"], capture_output=True, text=True, timeout=60)
    tables = sh("nft", "list", "tables", ns=n).stdout
    ok(r.returncode == 0 and "kube-proxy" not in tables,
       "killed --cleanups are finished by the next one", (tables, r.stderr))


def main():
    return kptest.run_main(TAP, "nftables", "nft", "kp-nftcrash-",
                           lambda: Topology(crash.PODS), crash_tests)

if __name__ == "__main__":
    sys.exit(main())
