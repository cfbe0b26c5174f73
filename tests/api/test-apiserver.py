#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd --kubeconfig against the test API server (tests/api/fakeapi.py, HTTPS with
certificates made by openssl): convergence through paginated lists, changes, each injected
fault (dropped connections, 410 as an event and as an answer, bookmarks, garbage, a
trickled event, expired continue tokens, compaction, watch time-outs, 403s, an outage, a
stalled watch, 429 with Retry-After, a list cut half-way, a token rotated in place, a
partition of the API server's network namespace), a 50,000-object list within a memory
bound, re-lists, nothing programmed before the first lists, kubeconfig variants, a wrong CA, and /healthz and /metrics. Every wait polls `kproxyctl dump -o json` (or the server's record
of requests) with a deadline; a negative check waits for evidence that kproxyd tried.
Run: top_builddir=/work/main/build python3 tests/api/test-apiserver.py
Prints TAP."""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeapi  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "netns"))
import kptest  # noqa: E402
from kptest import sanitized  # noqa: E402

TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
KPROXYD = os.path.join(TOP_BUILD, "proxy", "kproxyd")
KPROXYCTL = os.path.join(TOP_BUILD, "cli", "kproxyctl")
DEADLINE = 15.0
BASE = tempfile.mkdtemp(prefix="kp-test-api-")
exits = []     # (exit status, sanitizer report or None) of every kproxyd stopped


TAP = kptest.Tap(40, tail=True)
ok = TAP.ok


def rss_env():
    """The environment of a kproxyd whose RSS is measured. In a sanitizer build, ASan's
    quarantine of freed blocks (256 MiB by default), its per-allocation stack traces and its
    large redzones are turned off for it, so that its RSS is kproxyd's own memory plus the
    shadow (187 MiB against 138 MiB in a plain build); the bound stays the same. Leak,
    overflow and UBSan checks still run in it."""
    env = dict(os.environ)
    if sanitized():
        env["ASAN_OPTIONS"] = ":".join(filter(None, (
            env.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0", "malloc_context_size=0",
            "max_redzone=16")))
    return env



def service(name, ip, ports=(("http", 80),), labels=None):
    return {"metadata": {"name": name, "namespace": "t", "labels": labels or {}},
            "spec": {"clusterIP": ip, "ports": [{"name": n, "port": p, "targetPort": 8000 + p}
                                                for n, p in ports]}}


def slice_(name, svc, eps, ports=(("http", 80),)):
    return {"metadata": {"name": name, "namespace": "t",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": n, "port": 8000 + p} for n, p in ports],
            "endpoints": [{"addresses": [a], "conditions": {"ready": r}} for a, r in eps]}


def node(zone):
    return {"metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": zone}}}


class Daemon:
    def __init__(self, kcfg, extra=(), netns=None, env=None):
        self.sock = os.path.join(tempfile.mkdtemp(dir=BASE), "k.sock")
        self.log = open(os.path.join(BASE, "kproxyd-%d.log" % time.monotonic_ns()), "w+")
        self.proc = subprocess.Popen(
            (["ip", "netns", "exec", netns] if netns else []) +
            [KPROXYD, "--dry-run", "--kubeconfig", kcfg, "--control-socket", self.sock,
             "--hostname-override", "node-a", "--min-sync-period", "50ms", "--v", "4",
             "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0",
             *extra],
            stdout=self.log, stderr=self.log, env=env)
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)

    def ctl(self, *args):
        return subprocess.run([KPROXYCTL, "--socket", self.sock, *args], capture_output=True,
                              text=True, timeout=DEADLINE)

    def entries(self):
        r = self.ctl("dump", "-o", "json")
        if r.returncode:
            return None
        return {(e["service"], e["port_name"], e["vip"], e["port"]):
                sorted(x["ip"] for x in e["endpoints"]) for e in json.loads(r.stdout)["entries"]}

    def status(self):
        r = self.ctl("status", "-o", "json")
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def wait(self, pred, watch_nonempty=False, deadline=DEADLINE):
        """Polls the dump until pred(entries) holds; with watch_nonempty, also records
        whether the dump was ever empty (or unreadable) on the way: it must not be during
        faults."""
        end = time.monotonic() + deadline
        last, emptied = None, False
        while time.monotonic() < end:
            last = self.entries()
            if watch_nonempty and not last:
                emptied = True
            if last is not None and pred(last):
                return True, last, emptied
            time.sleep(0.05)
        return False, last, emptied

    def wait_log(self, text):
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if text in self.logtext():
                return True
            time.sleep(0.05)
        return False

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = self.logtext()
        report = next((line for line in log.splitlines() if "Sanitizer" in line or
                       "runtime error:" in line), None)
        exits.append((self.proc.returncode, report))


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


WEB = ("t/web", "http", "10.96.0.10", 80)
API = ("t/api", "http", "10.96.0.11", 80)
DNS = ("t/dns", "dns", "10.96.0.12", 53)
DNS_M = ("t/dns", "metrics", "10.96.0.12", 9153)
LBL = ("t/lbl", "http", "10.96.0.14", 80)
BIG = ("t/big", "http", "10.96.0.20", 80)
TOPO = ("t/topo", "http", "10.96.0.40", 80)
STALLED = ("t/stall", "http", "10.96.0.31", 80)
THR = ("t/thr", "http", "10.96.0.32", 80)
HALF = ("t/half", "http", "10.96.0.33", 80)
PART = ("t/part", "http", "10.96.0.34", 80)
STALL = 3      # seconds: the stall bound the fault tests give kproxyd
BIG_N = 25000  # Services, and as many EndpointSlices: a 50,000-object list
BIG_RSS_MIB = 200   # kproxyd's peak RSS bound for it (measured: about 140 MiB)


def topo_slice():
    """Two ready endpoints with topology hints: one for zone-a, one for zone-b. Which one
    is programmed tells which zone kproxyd believes its node is in (both: none known)."""
    s = slice_("topo-1", "topo", [("10.244.7.1", True), ("10.244.7.2", True)])
    for ep, z in zip(s["endpoints"], ("zone-a", "zone-b")):
        ep["zone"] = z
        ep["hints"] = {"forZones": [{"name": z}]}
    return s


def zone_log(d):
    return "\n".join(l for l in d.logtext().splitlines() if "zone" in l or "listed nodes" in l)


def seed(srv):
    srv.put("services", service("web", "10.96.0.10"))
    old = slice_("web-1", "web", [("10.244.1.2", True), ("10.244.1.3", False)])
    # changed a day before kproxyd starts: no programming latency of a day
    old["metadata"]["annotations"] = {
        "endpoints.kubernetes.io/last-change-trigger-time":
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))}
    srv.put("endpointslices", old)
    srv.put("endpointslices", slice_("web-2", "web", [("10.244.2.2", True)]))
    srv.put("services", service("dns", "10.96.0.12", ports=(("dns", 53), ("metrics", 9153))))
    srv.put("endpointslices", slice_("dns-1", "dns", [("10.244.1.9", True)],
                                     ports=(("dns", 53), ("metrics", 9153))))
    srv.put("services", service("mesh", "10.96.0.13",
                                labels={"service.kubernetes.io/service-proxy-name": "other"}))
    srv.put("nodes", node("zone-a"))


def list_starts(srv, resource):
    """Lists of @resource begun (first pages: requests without a continue token)."""
    return srv.count(lambda r: fakeapi.Server.is_list(r, resource) and "continue" not in r[1])


def svc_lists(srv):
    return list_starts(srv, "services")


def wait_count(srv, fn, above, deadline=DEADLINE):
    """Waits until fn(srv) > above; returns whether it did."""
    return srv.wait_until(lambda: fn(srv) > above, deadline)


def watch_times(srv, resource, mark=(0, 0, 0)):
    """(monotonic time, query) of each watch request of @resource after @mark."""
    with srv.lock:
        return [(srv.request_times[i], r[1]) for i, r in enumerate(srv.requests)
                if i >= mark[0] and fakeapi.Server.is_watch(r, resource)]


def test_service_cidrs(srv, certs):
    """In nftables mode kproxyd also lists and watches ServiceCIDRs (kp_ctx_get_service_cidrs,
    shown by kproxyctl status); other modes do not ask; a server without them (404) is
    asked once, logged, and the rest goes on."""
    srv.put("servicecidrs", {"metadata": {"name": "kubernetes"},
                             "spec": {"cidrs": ["10.96.0.0/16", "fd00:96::/112"]}})
    kc = os.path.join(BASE, "kc-data")
    try:
        mark = srv.mark()
        d = Daemon(kc, extra=("--proxy-mode", "nftables"))
        good, e, _ = d.wait(lambda e: WEB in e)
        got = lambda: sorted(d.status().get("service_cidrs") or [])
        listed = srv.wait_until(lambda: got() == ["10.96.0.0/16", "fd00:96::/112"], DEADLINE)
        ok(good and listed, "nftables mode lists ServiceCIDRs: kproxyctl status shows their "
           "ranges (%s)" % got(), d.logtext()[-1500:])
        srv.put("servicecidrs", {"metadata": {"name": "extra"},
                                 "spec": {"cidrs": ["10.97.0.0/16"]}})
        ok(srv.wait_until(lambda: "10.97.0.0/16" in got(), DEADLINE),
           "a ServiceCIDR added is watched in (%s)" % got())
        srv.delete("servicecidrs", "", "extra")
        ok(srv.wait_until(lambda: "10.97.0.0/16" not in got(), DEADLINE),
           "and one deleted is watched out (%s)" % got())
        asked = [r for r in srv.since(mark)[0] if r[0].endswith("/servicecidrs")]
        ok(any(r[1].get("watch") in ("1", "true") for r in asked) and
           not any("labelSelector" in r[1] for r in asked),
           "they are listed and watched without a selector", asked[:4])
        d.stop()
        mark = srv.mark()
        d = Daemon(kc)
        good, e, _ = d.wait(lambda e: WEB in e)
        ok(good and not [r for r in srv.since(mark)[0] if r[0].endswith("/servicecidrs")]
           and d.status().get("service_cidrs") == [],
           "the iptables mode does not ask for them")
        d.stop()
        srv.unserved.add("servicecidrs")
        mark = srv.mark()
        d = Daemon(kc, extra=("--proxy-mode", "nftables"))
        good, e, _ = d.wait(lambda e: WEB in e)
        time.sleep(1.5)
        asked = [r for r in srv.since(mark)[0] if r[0].endswith("/servicecidrs")]
        ok(good and len(asked) == 1 and d.logtext().count("servicecidrs: not served") == 1
           and d.proc.poll() is None,
           "an API server without ServiceCIDRs (404) is asked once, logged once, and the "
           "services converge (%d requests)" % len(asked), d.logtext()[-1500:])
        d.stop()
    finally:
        srv.unserved.discard("servicecidrs")
        for name in ("kubernetes", "extra"):
            if ("", name) in srv.objs["servicecidrs"]:
                srv.delete("servicecidrs", "", name)


def test_stall(srv, certs):
    """A watch that goes silent (connection open, nothing sent, not even the events that
    follow) is abandoned after the stall bound (--api-watch-stall-timeout, STALL here),
    logged, and resumed from its version: no re-list; the change made meanwhile arrives."""
    d = Daemon(os.path.join(BASE, "kc-data"),
               extra=("--api-watch-stall-timeout", "%ds" % STALL))
    try:
        good, e, _ = d.wait(lambda e: WEB in e and API in e)
        # a fresh watch (quiet ones are replaced every STALL seconds here): the fault
        # reaches it well before its own bound runs out
        # (counted when its stream is reached: an injected fault is sure to reach it then)
        n = srv.watches_started["services"]
        srv.wait_until(lambda: srv.watches_started["services"] > n)
        mark = srv.mark()
        stalled = watch_times(srv, "services")[-1]
        srv.inject("stall", "services")
        srv.put("services", service("stall", "10.96.0.31"))
        srv.put("endpointslices", slice_("stall-1", "stall", [("10.244.8.1", True)]))
        good, e, emptied = d.wait(lambda e: e.get(STALLED) == ["10.244.8.1"],
                                  watch_nonempty=True)
        after = watch_times(srv, "services", mark)
        gap = after[0][0] - stalled[0] if after else None
        ok(good and not emptied and gap is not None and STALL - 0.1 <= gap <= STALL + 2,
           "a stalled watch is replaced after the %d s stall bound (%s s after it started), "
           "and the change made after the stall is programmed" % (STALL, gap and
                                                                 round(gap, 2)),
           (gap, e, d.logtext()[-1500:]))
        ok(after and after[0][1].get("resourceVersion") == stalled[1].get("resourceVersion")
           and not any(fakeapi.Server.is_list(r, "services") for r in srv.since(mark)[0]),
           "the replacement watch resumes from the stalled one's version: no re-list",
           (stalled, after[:1]))
        ok("api: watch services: silent for %d s" % STALL in d.logtext(),
           "the stall is logged, naming the resource and how long it was silent",
           [l for l in d.logtext().splitlines() if "silent" in l][-3:])
        srv.delete("services", "t", "stall")
        srv.delete("endpointslices", "t", "stall-1")
    finally:
        d.stop()


def test_api_faults(srv, certs):
    """429 with Retry-After, a list cut half-way, on one kproxyd."""
    d = Daemon(os.path.join(BASE, "kc-data"))
    try:
        good, e, _ = d.wait(lambda e: WEB in e and API in e)
        srv.wait_watch("services")
        mark = srv.mark()
        srv.throttle_next("services", 1, 3)
        srv.inject("drop", "services")
        srv.put("services", service("thr", "10.96.0.32"))
        srv.put("endpointslices", slice_("thr-1", "thr", [("10.244.8.2", True)]))
        good, e, emptied = d.wait(lambda e: e.get(THR) == ["10.244.8.2"], watch_nonempty=True)
        resp = srv.since(mark)[1]
        w = watch_times(srv, "services", mark)
        gap = w[1][0] - w[0][0] if len(w) > 1 else None
        ok(good and not emptied and any(r[2] == 429 for r in resp) and gap is not None and
           2.9 <= gap <= 3 + 2, "429 with Retry-After: 3: the retry waits 3 s, not the "
           "back-off (%s s), then converges" % (gap and round(gap, 2)),
           (gap, [r[2] for r in resp], e, d.logtext()[-1500:]))
        ok("api: watch services: the API server asks to retry after 3 s" in d.logtext(),
           "the Retry-After is logged", d.logtext()[-1500:])

        # a re-list whose second page always dies half-way: nothing changes meanwhile
        srv.max_page = 1
        good, before, _ = d.wait(lambda e: THR in e)
        srv.wait_watch("services")
        mark = srv.mark()
        srv.cut_lists = {"services"}
        srv.next_watch_410 = "services"
        srv.inject("drop", "services")
        srv.put("services", service("half", "10.96.0.33"))
        srv.put("endpointslices", slice_("half-1", "half", [("10.244.8.3", True)]))
        end, changed, cuts = time.monotonic() + DEADLINE, None, []
        while time.monotonic() < end and len(cuts) < 3:
            cuts = [r for r in srv.since(mark)[1] if r[2] == 0 and "continue" in r[1] and
                    fakeapi.Server.is_list(r, "services")]
            e = d.entries()
            if e != before and changed is None:
                changed = e
            time.sleep(0.05)
        ok(good and len(cuts) >= 3 and changed is None,
           "a re-list cut half-way three times: the old state is kept, nothing removed",
           (len(cuts), before, changed))
        srv.cut_lists = set()
        good, e, emptied = d.wait(lambda e: e.get(HALF) == ["10.244.8.3"] and WEB in e and
                                  THR in e, watch_nonempty=True)
        ok(good and not emptied, "the list whole again: converges, with what came meanwhile",
           (e, d.logtext()[-1500:]))
        for name in ("thr", "half"):
            srv.delete("services", "t", name)
            srv.delete("endpointslices", "t", name + "-1")
    finally:
        srv.cut_lists = set()
        srv.max_page = 0
        d.stop()


def fill_big(srv, n):
    """@n Services and @n EndpointSlices of 10 ready endpoints, shaped as
    tests/bench/run-api-bench makes them, straight into the server's store."""
    def ip(base, i):
        return "%d.%d.%d.%d" % (base, (i >> 16) & 255, (i >> 8) & 255, i & 255)
    with srv.lock:
        for i in range(n):
            name, a = "svc-%d" % i, ip(10, (97 << 16) + i)
            srv.rv += 1
            srv.objs["services"][("big", name)] = {
                "metadata": {"name": name, "namespace": "big", "resourceVersion": str(srv.rv),
                             "uid": "uid-svc-%d" % i, "labels": {"app": name}},
                "spec": {"type": "ClusterIP", "clusterIP": a, "clusterIPs": [a],
                         "selector": {"app": name},
                         "ports": [{"name": "http", "protocol": "TCP", "port": 80,
                                    "targetPort": 8080}]}}
            srv.rv += 1
            srv.objs["endpointslices"][("big", name + "-1")] = {
                "metadata": {"name": name + "-1", "namespace": "big",
                             "resourceVersion": str(srv.rv), "uid": "uid-eps-%d" % i,
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
                "endpoints": [{"addresses": [ip(10, (160 << 16) + i * 10 + j)],
                               "conditions": {"ready": True}, "nodeName": "node-a",
                               "targetRef": {"kind": "Pod", "namespace": "big",
                                             "name": "%s-%d" % (name, j)}}
                              for j in range(10)]}


def vm_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        return next((int(l.split()[1]) for l in f if l.startswith(key + ":")), None)


def test_big_list(certs):
    """A 50,000-object list (pages of 500, items parsed one at a time) converges within
    BIG_RSS_MIB of peak RSS; a re-list whose pages after the first die half-way keeps all
    of it, and the next whole list brings what changed meanwhile."""
    srv = fakeapi.Server(certs)
    d = None
    try:
        fill_big(srv, BIG_N)
        d = Daemon(fakeapi.kubeconfig(os.path.join(BASE, "kc-big"), srv.url, certs, "data"),
                   env=rss_env())

        def loaded(n):
            end = time.monotonic() + 60
            while time.monotonic() < end:
                st = d.status()
                if (st.get("objects", {}).get("service_ports") == n and
                        not st.get("sync", {}).get("pending", True) and
                        st.get("sync", {}).get("count")):
                    return True
                time.sleep(0.2)
            return False
        t0 = time.monotonic()
        good = loaded(BIG_N)
        took = time.monotonic() - t0
        peak = vm_kib(d.proc.pid, "VmHWM") or 0     # before a dump's JSON adds its own
        e = d.entries() or {}
        ok(good and len(e) == BIG_N, "a list of %d objects converges (%.1f s)" % (
            2 * BIG_N, took), (good, len(e), d.status().get("objects")))
        ok(0 < peak < BIG_RSS_MIB * 1024, "its peak RSS: %.0f MiB (bound %d MiB)%s" % (
            peak / 1024.0, BIG_RSS_MIB, " (ASan: no quarantine)" if sanitized() else ""), peak)
        srv.wait_watch("services")
        mark = srv.mark()
        srv.cut_lists = {"services"}
        srv.next_watch_410 = "services"
        srv.inject("drop", "services")
        srv.put("services", service("late", "10.96.0.35"))
        srv.put("endpointslices", slice_("late-1", "late", [("10.244.8.5", True)]))
        end, kept, cuts = time.monotonic() + 30, True, []
        while time.monotonic() < end and len(cuts) < 2:
            cuts = [r for r in srv.since(mark)[1] if r[2] == 0 and "continue" in r[1]]
            kept = kept and d.status().get("objects", {}).get("service_ports") == BIG_N
            time.sleep(0.1)
        e = d.entries() or {}
        ok(len(cuts) >= 2 and kept and len(e) == BIG_N,
           "the 50,000-object re-list dies half-way twice: all of the old state is kept",
           (len(cuts), kept, len(e)))
        srv.cut_lists = set()
        good = loaded(BIG_N + 1)
        e = d.entries() or {}
        ok(good and len(e) == BIG_N + 1 and ("t/late", "http", "10.96.0.35", 80) in e,
           "then the whole list: converges, with the service added meanwhile", len(e))
    finally:
        srv.cut_lists = set()
        if d:
            d.stop()
        srv.stop()


class InNetns:
    """Runs the block with the calling thread in network namespace @name (what sockets
    it makes stay there)."""
    CLONE_NEWNET = 0x40000000

    def __init__(self, name):
        self.name = name
        self.libc = ctypes.CDLL(None, use_errno=True)

    def __enter__(self):
        self.back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if self.libc.setns(fd, self.CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), "setns " + self.name)
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        try:
            if self.libc.setns(self.back, self.CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(self.back)


def test_partition(certs):
    """The API server in its own network namespace, kproxyd in another, a veth between:
    a netfilter rule drops every packet of the API server's namespace for longer than the
    stall bound, then goes. Nothing is flushed meanwhile, and it converges after."""
    api_ns, node_ns = "kp-api-%d" % os.getpid(), "kp-node-%d" % os.getpid()
    setup = [["ip", "netns", "add", api_ns], ["ip", "netns", "add", node_ns],
             ["ip", "-n", node_ns, "link", "add", "kpn", "type", "veth", "peer", "name",
              "kpa", "netns", api_ns],
             ["ip", "-n", node_ns, "addr", "add", "10.200.0.1/30", "dev", "kpn"],
             ["ip", "-n", api_ns, "addr", "add", "10.200.0.2/30", "dev", "kpa"]] + [
             ["ip", "-n", ns, "link", "set", dev, "up"]
             for ns, dev in ((node_ns, "lo"), (node_ns, "kpn"), (api_ns, "lo"),
                             (api_ns, "kpa"))]
    drop = os.path.join(BASE, "partition.nft")
    with open(drop, "w") as f:
        f.write("table inet kp_partition {\n"
                "  chain in { type filter hook input priority 0; policy drop; }\n"
                "  chain out { type filter hook output priority 0; policy drop; }\n}\n")
    srv = d = None
    try:
        for cmd in setup:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE)
            if r.returncode:
                ok(False, "partition test: namespaces and veth set up", (cmd, r.stderr))
                return
        with InNetns(api_ns):
            srv = fakeapi.Server(certs, host="10.200.0.2")
        seed(srv)
        srv.put("services", service("api", "10.96.0.11"))
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.3", True)]))
        kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-part"), srv.url, certs, "data",
                                tls_name="localhost")
        d = Daemon(kc, extra=("--api-watch-stall-timeout", "%ds" % STALL), netns=node_ns)
        good, before, _ = d.wait(lambda e: WEB in e and API in e)
        ok(good, "kproxyd in its namespace converges on the API server in another", before)
        for res in ("services", "endpointslices", "nodes"):
            srv.wait_watch(res)
        mark = srv.mark()
        r = subprocess.run(["ip", "netns", "exec", api_ns, "nft", "-f", drop],
                           capture_output=True, text=True, timeout=DEADLINE)
        srv.put("services", service("part", "10.96.0.34"))
        srv.put("endpointslices", slice_("part-1", "part", [("10.244.8.4", True)]))
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.4", True)]))
        log0 = len(d.logtext())
        end, changed = time.monotonic() + STALL + 5, None
        while time.monotonic() < end:
            e = d.entries()
            if e != before and changed is None:
                changed = e
            time.sleep(0.1)
        stalls = [l for l in d.logtext()[log0:].splitlines() if "silent for" in l]
        ok(r.returncode == 0 and changed is None and stalls,
           "partitioned for %d s (every packet of the API server's namespace dropped), "
           "longer than the %d s stall bound: the silent watches are abandoned (logged), "
           "nothing is flushed or changed" % (STALL + 5, STALL),
           (r.stderr, changed, d.logtext()[-1500:]))
        healed = time.monotonic()
        r = subprocess.run(["ip", "netns", "exec", api_ns, "nft", "delete", "table", "inet",
                            "kp_partition"], capture_output=True, text=True, timeout=DEADLINE)
        good, e, emptied = d.wait(lambda e: e.get(PART) == ["10.244.8.4"] and WEB in e and
                                  e.get(API) == ["10.244.3.4"], watch_nonempty=True,
                                  deadline=30)
        ok(r.returncode == 0 and good and not emptied,
           "healed: what changed during the partition is programmed within 30 s "
           "(connect time-out 10 s and the back-off; took %.1f s)" %
           (time.monotonic() - healed), (e, d.logtext()[-2000:]))
        reqs = srv.since(mark)[0]
        ok(any(fakeapi.Server.is_watch(q, "services") for q in reqs) and
           not any(fakeapi.Server.is_list(q, "services") for q in reqs),
           "and the watches resumed from their versions: no re-list", reqs[:6])
    finally:
        if d:
            d.stop()
        if srv:
            srv.stop()
        for ns in (api_ns, node_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=DEADLINE)


def main_tests(srv, certs):
    rv0 = srv.rv
    srv.max_page = 1       # every list comes one item a page: continue tokens throughout
    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-data"), srv.url, certs, "data")
    d = Daemon(kc)
    try:
        good, e, _ = d.wait(lambda e: e.get(WEB) == ["10.244.1.2", "10.244.2.2"] and
                            e.get(DNS) == ["10.244.1.9"] and e.get(DNS_M) == ["10.244.1.9"])
        ok(good, "converges on the listed services, multi-port too (unready endpoint left "
           "out)", (e, d.logtext()[-3000:]))
        ok(e is not None and not any(k[0] == "t/mesh" for k in e),
           "the service-proxy-name label selector is applied", e)
        code, metrics = http_get("http://%s/metrics" % d.status().get("metrics_address"))
        ok("kubeproxy_network_programming_duration_seconds_count 0" in metrics.splitlines(),
           "network programming latency: an object changed before the start is not timed",
           [l for l in metrics.splitlines() if "programming_duration_seconds_count" in l])
        reqs = list(srv.requests)
        lists = [q for p, q in reqs if p.endswith("/services") and "watch" not in q]
        ok(lists and lists[0].get("labelSelector") == fakeapi.SELECTOR and
           lists[0].get("limit") == "500" and "continue" not in lists[0],
           "services are listed in pages with kube-proxy's label selector", lists[:1])
        ok(any("continue" in q for p, q in reqs if p.endswith("/endpointslices")) and
           any("continue" in q for p, q in reqs if p.endswith("/services")),
           "pages after the first are asked for with the continue token",
           [(p, q) for p, q in reqs if "watch" not in q])
        ok(any(q.get("fieldSelector") == "metadata.name=node-a" for p, q in reqs
               if p.endswith("/nodes")), "this node's Node is listed by name", reqs)
        srv.wait_watch("services")
        watches = [q for p, q in srv.requests if p.endswith("/services") and "watch" in q]
        ok(watches and watches[0].get("watch") in ("1", "true") and
           watches[0].get("resourceVersion") == str(rv0) and
           watches[0].get("allowWatchBookmarks") == "true" and
           int(watches[0].get("timeoutSeconds") or 0) > 0 and
           watches[0].get("labelSelector") == fakeapi.SELECTOR,
           "the watch starts from the list's resourceVersion, with bookmarks, a timeout "
           "and the selector", (rv0, watches[:1]))

        srv.put("services", service("api", "10.96.0.11"))
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.3", True)]))
        good, e, _ = d.wait(lambda e: e.get(API) == ["10.244.3.3"])
        ok(good, "a watched ADDED service and slice appear", e)
        srv.put("services", service("topo", "10.96.0.40"))
        srv.put("endpointslices", topo_slice())
        good, e, _ = d.wait(lambda e: e.get(TOPO) == ["10.244.7.1"])
        ok(good, "the listed Node's zone (zone-a) is kept after the node list: topology "
           "hints select the zone-a endpoint", (e and e.get(TOPO), zone_log(d)))
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.4", True)]))
        good, e, _ = d.wait(lambda e: e.get(API) == ["10.244.3.4"])
        ok(good, "a MODIFIED slice replaces its endpoints", e)
        srv.put("services", service("api", "10.96.0.11", ports=(("http", 80), ("https", 443))))
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.4", True)],
                                         ports=(("http", 80), ("https", 443))))
        good, e, _ = d.wait(lambda e: e.get(("t/api", "https", "10.96.0.11", 443)) ==
                            ["10.244.3.4"])
        ok(good, "a MODIFIED service gains a port", e)
        srv.delete("services", "t", "api")
        good, e, _ = d.wait(lambda e: not any(k[0] == "t/api" for k in e) and WEB in e)
        ok(good, "a DELETED service disappears", e)
        srv.put("services", service("lbl", "10.96.0.14"))
        srv.put("endpointslices", slice_("lbl-1", "lbl", [("10.244.4.4", True)]))
        d.wait(lambda e: LBL in e)
        srv.put("services", service("lbl", "10.96.0.14",
                                    labels={"service.kubernetes.io/service-proxy-name": "x"}))
        good, e, _ = d.wait(lambda e: LBL not in e and WEB in e)
        ok(good, "a service labelled for another proxy leaves the selection: it goes", e)

        # faults: after each, a change must still arrive and the dump never empties
        faults = [("drop", "a connection dropped in the middle of an event"),
                  ("drop-midchunk", "a connection dropped in the middle of a chunk"),
                  ("err410", "an ERROR event with code 410"),
                  ("bookmark", "a bookmark"),
                  ("garbage", "a line that is not an event")]
        for i, (kind, desc) in enumerate(faults):
            watching = srv.wait_watch("services")     # and so any earlier list is done
            lists_before = svc_lists(srv)
            srv.inject(kind, "services")
            ip = "10.244.5.%d" % (10 + i)
            srv.put("endpointslices", slice_("web-2", "web", [(ip, True)]))
            srv.put("services", service("f%d" % i, "10.96.1.%d" % i))
            good, e, emptied = d.wait(lambda e: e.get(WEB) == sorted(["10.244.1.2", ip]) and
                                      ("t/f%d" % i, "http", "10.96.1.%d" % i, 80) in e,
                                      watch_nonempty=True)
            ok(watching and good and not emptied, "after %s: converges, never empty" % desc,
               (watching, e, d.logtext()[-3000:]))
            if kind == "err410":
                ok(wait_count(srv, svc_lists, lists_before),
                   "the 410 ERROR event made kproxyd list services again")
            elif kind in ("drop", "bookmark"):
                ok(svc_lists(srv) == lists_before, "after %s: no re-list (the watch resumes "
                   "from the last version)" % desc, (lists_before, svc_lists(srv)))

        # a bookmark's resourceVersion is where the next watch starts
        srv.wait_watch("services")
        srv.wait_watch("endpointslices")
        srv.put("endpointslices", slice_("web-2", "web", [("10.244.5.20", True)]))
        d.wait(lambda e: e.get(WEB) == ["10.244.1.2", "10.244.5.20"])
        bm_rv = srv.rv
        mark = srv.mark()
        srv.inject("bookmark", "services")
        srv.inject("drop", "services")
        srv.wait_until(lambda: any(fakeapi.Server.is_watch(r, "services")
                                   for r in srv.requests[mark[0]:]))
        reqs = srv.since(mark)[0]
        rewatch = [q for p, q in reqs if fakeapi.Server.is_watch((p, q), "services")]
        ok(rewatch and rewatch[0].get("resourceVersion") == str(bm_rv) and
           not any(fakeapi.Server.is_list(r, "services") for r in reqs),
           "after a bookmark and a drop, the watch resumes from the bookmark's version",
           (bm_rv, rewatch[:1]))

        lists_before = list_starts(srv, "endpointslices")
        srv.next_watch_410 = "endpointslices"
        srv.wait_watch("endpointslices")
        srv.inject("drop", "endpointslices")
        srv.put("services", service("api", "10.96.0.11"))
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.5", True)]))
        good, e, emptied = d.wait(lambda e: e.get(API) == ["10.244.3.5"], watch_nonempty=True)
        ok(good and not emptied and list_starts(srv, "endpointslices") > lists_before,
           "a watch answered with HTTP 410: re-listed, converges, never empty",
           (e, lists_before, list_starts(srv, "endpointslices")))

        # compaction: every watcher's version is too old when it comes back
        mark = srv.mark()
        lists_before = (list_starts(srv, "services"), list_starts(srv, "endpointslices"))
        srv.compact(srv.rv + 1)
        srv.inject("drop")
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.6", True)]))
        good, e, emptied = d.wait(lambda e: e.get(API) == ["10.244.3.6"], watch_nonempty=True)
        relisted = srv.wait_until(lambda: list_starts(srv, "services") > lists_before[0] and
                                  list_starts(srv, "endpointslices") > lists_before[1])
        gone = [r for r in srv.since(mark)[1] if r[2] == 410]
        good2, e, emptied2 = d.wait(lambda e: e.get(API) == ["10.244.3.6"],
                                    watch_nonempty=True)
        ok(good and good2 and not (emptied or emptied2) and gone and relisted,
           "compacted history: the resumed watches get 410, both are re-listed, converges",
           (e, gone, lists_before, list_starts(srv, "services"),
            list_starts(srv, "endpointslices")))

        # a continue token that expired in the middle of a paginated list
        mark = srv.mark()
        srv.wait_watch("endpointslices")
        srv.expire_next_continue = True
        srv.inject("err410", "endpointslices")
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.7", True)]))
        good, e, emptied = d.wait(lambda e: e.get(API) == ["10.244.3.7"], watch_nonempty=True)

        def restarted_list():
            resp = srv.since(mark)[1]
            i410 = next((i for i, r in enumerate(resp)
                         if r[2] == 410 and "continue" in r[1]), None)
            return i410 is not None and any(
                fakeapi.Server.is_list(r, "endpointslices") and "continue" not in r[1]
                for r in resp[i410 + 1:])
        # the change may converge through the watch before the paged list meets the
        # expired token: wait (bounded) for the list's restart itself
        restarted = srv.wait_until(restarted_list)
        resp = srv.since(mark)[1]
        ok(good and not emptied and restarted,
           "an expired continue token (410 on a list page): the list starts again from "
           "page one, converges", (e, [(r[0].rsplit("/", 1)[-1], r[1].get("continue", "")[:8],
                                       r[2]) for r in resp]))

        big = service("big", "10.96.0.20")
        big["metadata"]["annotations"] = {"example.com/blob": "x" * (5 << 20)}
        srv.put("services", big)
        srv.put("endpointslices", slice_("big-1", "big", [("10.244.6.6", True)]))
        good, e, _ = d.wait(lambda e: e.get(BIG) == ["10.244.6.6"])
        ok(good, "a 5 MiB object in one watch event is applied", e)
        srv.delete("services", "t", "big")
        good, e, _ = d.wait(lambda e: BIG not in e)
        ok(good, "and its deletion too", e)
        srv.trickle = True
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.8", True)]))
        good, e, _ = d.wait(lambda e: e.get(API) == ["10.244.3.8"])
        srv.trickle = False
        ok(good, "an event trickled one byte per chunk is applied", e)

        # watches that end cleanly (timeoutSeconds) are resumed, not re-listed
        lists_before = svc_lists(srv)
        watches_before = srv.watches("services")
        srv.watch_cap = 0.3
        ended = srv.wait_until(lambda: srv.watches("services") >= watches_before + 3)
        srv.watch_cap = 30.0
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.9", True)]))
        good, e, emptied = d.wait(lambda e: e.get(API) == ["10.244.3.9"], watch_nonempty=True)
        ok(ended and good and not emptied and svc_lists(srv) == lists_before,
           "watches that end at their timeout: watched again without a re-list",
           (ended, e, lists_before, svc_lists(srv)))

        srv.put("nodes", node("zone-b"))
        good, e, _ = d.wait(lambda e: e.get(TOPO) == ["10.244.7.2"])
        ok(d.wait_log("zone zone-b") and good, "a MODIFIED Node's zone label is followed: "
           "the hints now select the zone-b endpoint", (e and e.get(TOPO), zone_log(d)))

        trig = slice_("web-2", "web", [("10.244.5.99", True)])
        trig["metadata"]["annotations"] = {
            "endpoints.kubernetes.io/last-change-trigger-time":
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))}
        srv.put("endpointslices", trig)
        d.wait(lambda e: e.get(WEB) == ["10.244.1.2", "10.244.5.99"])
        st = d.status()
        ok(st.get("api", {}).get("synced") is True and st["api"]["relists"] >= 2 and
           st["api"]["watch_restarts"] >= 3, "status shows the API client's counters",
           st.get("api"))
        code, metrics = http_get("http://%s/metrics" % st.get("metrics_address"))
        prog = [l for l in metrics.splitlines()
                if l.startswith("kubeproxy_network_programming_duration_seconds_count")]
        le2 = [l for l in metrics.splitlines() if l.startswith(
            'kubeproxy_network_programming_duration_seconds_bucket{le="1"}')]
        ok(prog == ["kubeproxy_network_programming_duration_seconds_count 1"] and
           le2 == ['kubeproxy_network_programming_duration_seconds_bucket{le="1"} 0'],
           "network programming latency: one change, timed from its trigger time (2 s ago)",
           (prog, le2))
        ok(code == 200 and "kproxyd_api_relists_total" in metrics and
           "kproxyd_api_synced 1" in metrics and
           "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in metrics,
           "/metrics (bound on port 0, found through status) has the API counters",
           (code, metrics[-1500:]))
        code, body = http_get("http://%s/healthz" % st.get("healthz_address"))
        ok(code == 200 and "lastUpdated" in body, "/healthz is 200 once synced", (code, body))
        hz = "http://%s" % st.get("healthz_address")

        def node_health(n, expect):
            srv.put("nodes", n)
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end:
                code, body = http_get(hz + "/healthz")
                if code == expect:
                    break
                time.sleep(0.05)
            return code, body, http_get(hz + "/livez")[0]

        deleting = node("zone-b")
        deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        code, body, live = node_health(deleting, 503)
        ok(code == 503 and '"nodeEligible": false' in body and live == 200,
           "a Node with a deletionTimestamp: /healthz 503, nodeEligible false; /livez 200",
           (code, body, live))
        code, body, live = node_health(node("zone-b"), 200)
        ok(code == 200 and '"nodeEligible": true' in body, "the Node without it: 200 again",
           (code, body))
        tainted = node("zone-b")
        tainted["spec"] = {"taints": [{"key": "ToBeDeletedByClusterAutoscaler",
                                       "value": "1700000000", "effect": "NoSchedule"}]}
        code, body, live = node_health(tainted, 503)
        ok(code == 503 and '"nodeEligible": false' in body and live == 200,
           "a Node tainted ToBeDeletedByClusterAutoscaler: /healthz 503, nodeEligible false",
           (code, body, live))
        code, body, live = node_health(node("zone-b"), 200)
        ok(code == 200 and "node node-a: eligible for traffic" in d.logtext(),
           "the taint removed: 200 again, and the log says so", (code, body))
        log = d.logtext()
        ok(fakeapi.TOKEN not in log, "no token in the log")
        ok("zone zone-a" in log, "the node's zone label is read", log[-2000:])
    finally:
        srv.max_page = 0
        d.stop()


def test_forbidden(srv, certs):
    """403s: the state is kept while they last, and kproxyd recovers. Each case on a fresh
    kproxyd: the back-off grows with every failure (800 ms doubling to 30 s), and earlier
    faults would make the recovery slower than the deadline."""
    kc = os.path.join(BASE, "kc-data")
    d = Daemon(kc)
    try:
        good, e, _ = d.wait(lambda e: WEB in e and API in e)
        srv.wait_watch("services")
        srv.forbid_next(1)
        srv.inject("drop", "services")
        srv.put("services", service("once", "10.96.0.30"))
        good, e, emptied = d.wait(lambda e: ("t/once", "http", "10.96.0.30", 80) in e,
                                  watch_nonempty=True)
        ok(good and not emptied, "a single 403 answer: retried, converges, never empty",
           (e, d.logtext()[-1500:]))
    finally:
        d.stop()
    d = Daemon(kc)
    try:
        good, e, _ = d.wait(lambda e: WEB in e and API in e)
        for r in ("services", "endpointslices", "nodes"):
            srv.wait_watch(r)
        mark = srv.mark()
        srv.forbid = True
        srv.inject("drop")
        tried = srv.wait_until(lambda: sum(1 for r in srv.responses[mark[1]:]
                                           if r[2] == 403) >= 3)
        e = d.entries()
        ok(good and tried and e and WEB in e and API in e,
           "403 on every request: the state is kept", (tried, e))
        srv.forbid = False
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.10", True)]))
        good, e, emptied = d.wait(lambda e: e.get(API) == ["10.244.3.10"], watch_nonempty=True)
        ok(good and not emptied and "HTTP 403" in d.logtext(),
           "after the 403s end: converges, never empty, the 403 logged",
           (e, d.logtext()[-2000:]))
    finally:
        srv.forbid = False
        d.stop()


def test_outage(srv, certs):
    """An outage (every connection refused) during which a service is deleted."""
    d = Daemon(os.path.join(BASE, "kc-data"))
    try:
        good, e, _ = d.wait(lambda e: WEB in e and API in e)
        for r in ("services", "endpointslices", "nodes"):
            srv.wait_watch(r)
        mark = srv.mark()
        srv.outage = True
        srv.inject("drop")
        srv.delete_quietly("services", "t", "api")
        tried = srv.wait_until(lambda: srv.refused - mark[2] >= 3)
        e = d.entries()
        ok(good and tried and e and API in e and WEB in e,
           "during an outage (connections refused) nothing is flushed", (tried, e))
        srv.outage = False
        good, e, emptied = d.wait(lambda e: API not in e and WEB in e, watch_nonempty=True)
        ok(good and not emptied,
           "after the outage: re-listed; a service deleted meanwhile is gone, never empty",
           (e, d.logtext()[-2000:]))
        srv.put("services", service("api", "10.96.0.11"))
        good, e, _ = d.wait(lambda e: API in e)
        ok(good, "and watching again: a new service arrives", e)
    finally:
        srv.outage = False
        d.stop()


def test_not_before_lists(srv, certs):
    """Started while the API server is out: nothing is programmed, status says so."""
    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-out"), srv.url, certs, "data")
    mark = srv.mark()
    srv.outage = True
    d = Daemon(kc)
    try:
        tried = srv.wait_until(lambda: srv.refused - mark[2] >= 3)
        e = d.entries()
        st = d.status()
        ok(tried and e == {} and st.get("sync", {}).get("count") == 0 and
           st.get("api", {}).get("synced") is False,
           "API server unreachable at start: no sync, nothing programmed", (tried, e, st))
        table = d.ctl("status").stdout
        ok("API server:" in table and "listing (nothing programmed yet)" in table,
           "kproxyctl status says it is still listing", table)
        # the services list arrives, the slices' does not: still nothing
        srv.forbid = {"endpointslices"}
        srv.outage = False
        seen = srv.wait_until(lambda: any(
            fakeapi.Server.is_list(r, "services") and r[2] == 200 for r in
            srv.responses[mark[1]:]) and any(fakeapi.Server.is_list(r, "endpointslices") and
                                             r[2] == 403 for r in srv.responses[mark[1]:]))
        end = time.monotonic() + DEADLINE       # the services are loaded, not programmed
        st = d.status()
        while time.monotonic() < end and not st.get("objects", {}).get("services"):
            time.sleep(0.05)
            st = d.status()
        e = d.entries()
        ok(seen and e == {} and st.get("api", {}).get("synced") is False and
           st.get("objects", {}).get("services", 0) > 0,
           "services listed but the slices' list refused (403): still nothing programmed",
           (seen, e, st))
        srv.forbid = False
        good, e, _ = d.wait(lambda e: WEB in e)
        ok(good, "once the lists arrive, it programs", e)
    finally:
        srv.outage = srv.forbid = False
        d.stop()


def test_kubeconfigs(srv, certs):
    tf = os.path.join(BASE, "token")
    with open(tf, "w") as f:
        f.write(fakeapi.TOKEN + "\n")
    for mode in ("files", "token", "tokenfile"):
        sub = tempfile.mkdtemp(dir=BASE)
        kc = fakeapi.kubeconfig(os.path.join(sub, "kc"), srv.url, certs, mode, token_file=tf)
        d = Daemon(kc)
        good, e, _ = d.wait(lambda e: WEB in e)
        ok(good, "kubeconfig with %s converges" % {
            "files": "certificate files at relative paths", "token": "an inline token",
            "tokenfile": "a tokenFile"}[mode], (e, d.logtext()[-1500:]))
        if mode == "tokenfile":
            # the token rotates: the server takes only the new one, the file gets it, and
            # the next request (the watches are cut) must carry it
            srv.token = fakeapi.TOKEN + "-rotated"
            with open(tf + ".new", "w") as f:
                f.write(srv.token + "\n")
            os.rename(tf + ".new", tf)
            srv.wait_watch("services")
            srv.inject("drop")
            srv.put("services", service("rot", "10.96.0.21"))
            good, e, _ = d.wait(lambda e: any(k[0] == "t/rot" for k in e))
            ok(good, "a rotated token file is read again: converges with the new token",
               (e, d.logtext()[-1500:]))
            srv.delete("services", "t", "rot")
            # rewritten in place, its mtime put back: only the server's 401 tells
            st = os.stat(tf)
            mark = srv.mark()
            srv.token = fakeapi.TOKEN + "-again"
            with open(tf, "w") as f:
                f.write(srv.token + "\n")
            os.utime(tf, ns=(st.st_atime_ns, st.st_mtime_ns))
            srv.wait_watch("services")
            srv.inject("drop")
            srv.put("services", service("rot2", "10.96.0.22"))
            good, e, _ = d.wait(lambda e: any(k[0] == "t/rot2" for k in e))
            ok(good and any(r[2] == 401 for r in srv.since(mark)[1]),
               "a token rewritten in place (same mtime): the 401 makes kproxyd read the "
               "file again; converges", (e, d.logtext()[-1500:]))
            srv.delete("services", "t", "rot2")
            srv.token = fakeapi.TOKEN
        d.stop()

    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-master"), "https://127.0.0.1:1", certs,
                            "data")
    d = Daemon(kc, extra=("--master", srv.url))
    good, e, _ = d.wait(lambda e: WEB in e)
    ok(good, "--master overrides the kubeconfig's server", (e, d.logtext()[-1500:]))
    d.stop()

    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-name"), srv.url, certs, "data",
                            tls_name="localhost")
    d = Daemon(kc)
    good, e, _ = d.wait(lambda e: WEB in e)
    ok(good, "tls-server-name: the certificate is checked against that name (localhost)",
       (e, d.logtext()[-1500:]))
    d.stop()

    def warned(d, text):
        """A warning (or error) from the API client naming @text."""
        return any(l[:1] in "WE" and "api:" in l and text in l
                   for l in d.logtext().splitlines())

    def never(kc, desc, evidence):
        """kproxyd on @kc must never program; @evidence(daemon, mark) says it tried."""
        mark = srv.mark()
        d = Daemon(kc)
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not evidence(d, mark):
            time.sleep(0.05)
        e = d.entries()
        ok(evidence(d, mark) and e == {} and d.status().get("sync", {}).get("count") == 0,
           desc, (e, d.logtext()[-1500:]))
        d.stop()
        return mark

    mark = never(fakeapi.kubeconfig(os.path.join(BASE, "kc-badname"), srv.url, certs, "data",
                                    tls_name="not-the-server.example"),
                 "tls-server-name that the certificate does not carry: refused, logged",
                 lambda d, m: warned(d, "not-the-server.example"))
    ok(not srv.since(mark)[0], "no request got through with the wrong name",
       srv.since(mark)[0][:3])
    mark = never(fakeapi.kubeconfig(os.path.join(BASE, "kc-wrong"), srv.url, certs, "data",
                                    ca="other-ca.crt"),
                 "a kubeconfig with the wrong CA never programs and logs the TLS error",
                 lambda d, m: warned(d, "SSL") or warned(d, "certificate"))
    ok(not srv.since(mark)[0], "no request got through with the wrong CA",
       srv.since(mark)[0][:3])
    never(fakeapi.kubeconfig(os.path.join(BASE, "kc-nocreds"), srv.url, certs, "none"),
          "a kubeconfig with no credentials: 401, logged, nothing programmed",
          lambda d, m: warned(d, "HTTP 401") and
          any(r[2] == 401 for r in srv.since(m)[1]))

    bad = os.path.join(BASE, "kc-bad")
    with open(bad, "w") as f:
        f.write('{"current-context": "x", "contexts": [{"name": "x", "context": '
                '{"cluster": "c"}}], "clusters": [{"name": "c", "cluster": {"server": 5}}]}')
    r = subprocess.run([KPROXYD, "--dry-run", "--kubeconfig", bad, "--control-socket",
                        os.path.join(BASE, "bad.sock")], capture_output=True, text=True,
                       timeout=DEADLINE)
    ok(r.returncode != 0 and "clusters[0].cluster.server" in r.stderr,
       "a kubeconfig field of the wrong type is refused by name", r.stderr)
    kc = os.path.join(BASE, "kc-data")
    r = subprocess.run([KPROXYD, "--dry-run", "--kubeconfig", kc, "--context", "nope",
                        "--control-socket", os.path.join(BASE, "bad2.sock")],
                       capture_output=True, text=True, timeout=DEADLINE)
    ok(r.returncode != 0 and "\"nope\"" in r.stderr,
       "an unknown --context is refused by name", r.stderr)


def main():
    for exe in (KPROXYD, KPROXYCTL):
        if not os.access(exe, os.X_OK):
            print("Bail out! %s is not built" % exe)
            return 1
    r = subprocess.run([KPROXYD, "--help"], capture_output=True, text=True, timeout=DEADLINE)
    if "--kubeconfig" not in r.stdout:
        print("1..0 # SKIP kproxyd has no --kubeconfig")
        return 77
    srv = None
    try:
        certs = fakeapi.make_certs(BASE)
        srv = fakeapi.Server(certs)
        seed(srv)
        main_tests(srv, certs)
        test_forbidden(srv, certs)
        test_outage(srv, certs)
        test_stall(srv, certs)
        test_service_cidrs(srv, certs)
        test_api_faults(srv, certs)
        test_not_before_lists(srv, certs)
        test_kubeconfigs(srv, certs)
        test_partition(certs)
        test_big_list(certs)
        ok(exits and all(rc == 0 and not rep for rc, rep in exits),
           "every kproxyd stopped cleanly on SIGTERM, with no sanitizer report", exits)
    finally:
        if srv:
            srv.stop()
        if os.environ.get("KP_TEST_KEEP"):
            print("# logs and certificates kept in " + BASE)
        else:
            shutil.rmtree(BASE, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
