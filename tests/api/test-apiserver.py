#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd --kubeconfig against the test API server (tests/api/fakeapi.py, HTTPS with
certificates made by openssl): convergence, changes, each injected fault, re-lists,
nothing programmed before the first lists, kubeconfig variants, a wrong CA, and the
counters in /metrics. Every wait polls `kproxyctl dump -o json` with a deadline.
Prints TAP."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeapi  # noqa: E402

TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
KPROXYD = os.path.join(TOP_BUILD, "proxy", "kproxyd")
KPROXYCTL = os.path.join(TOP_BUILD, "cli", "kproxyctl")
DEADLINE = 15.0
BASE = tempfile.mkdtemp(prefix="kp-test-api-")
count = failed = 0
exits = []     # (exit status, sanitizer report or None) of every kproxyd stopped


def ok(cond, desc, detail=None):
    global count, failed
    count += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (count, desc))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[-40:]:
            print("#   " + line)
    sys.stdout.flush()
    return cond


def service(name, ip, ports=(("http", 80),), labels=None):
    return {"metadata": {"name": name, "namespace": "t", "labels": labels or {}},
            "spec": {"clusterIP": ip, "ports": [{"name": n, "port": p, "targetPort": 8000 + p}
                                                for n, p in ports]}}


def slice_(name, svc, eps, ports=(("http", 80),)):
    return {"metadata": {"name": name, "namespace": "t",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": n, "port": 8000 + p} for n, p in ports],
            "endpoints": [{"addresses": [a], "conditions": {"ready": r}} for a, r in eps]}


class Daemon:
    def __init__(self, kcfg):
        self.sock = os.path.join(tempfile.mkdtemp(dir=BASE), "k.sock")
        self.log = open(os.path.join(BASE, "kproxyd-%d.log" % time.monotonic_ns()), "w+")
        self.proc = subprocess.Popen(
            [KPROXYD, "--dry-run", "--kubeconfig", kcfg, "--control-socket", self.sock,
             "--hostname-override", "node-a", "--min-sync-period", "50ms", "--v", "4",
             "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0"],
            stdout=self.log, stderr=self.log)
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

    def wait(self, pred, watch_nonempty=False):
        """Polls the dump until pred holds; with watch_nonempty, also records whether the
        dump was ever empty on the way (it must not be during faults)."""
        end = time.monotonic() + DEADLINE
        last, emptied = None, False
        while time.monotonic() < end:
            last = self.entries()
            if watch_nonempty and last is not None and not last:
                emptied = True
            if last is not None and pred(last):
                return True, last, emptied
            time.sleep(0.05)
        return False, last, emptied

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


WEB = ("t/web", "http", "10.96.0.10", 80)
API = ("t/api", "http", "10.96.0.11", 80)
DNS = ("t/dns", "dns", "10.96.0.12", 53)


def seed(srv):
    srv.put("services", service("web", "10.96.0.10"))
    srv.put("endpointslices", slice_("web-1", "web", [("10.244.1.2", True),
                                                      ("10.244.1.3", False)]))
    srv.put("endpointslices", slice_("web-2", "web", [("10.244.2.2", True)]))
    srv.put("services", service("dns", "10.96.0.12", ports=(("dns", 53), ("metrics", 9153))))
    srv.put("endpointslices", slice_("dns-1", "dns", [("10.244.1.9", True)],
                                     ports=(("dns", 53), ("metrics", 9153))))
    srv.put("services", service("mesh", "10.96.0.13",
                                labels={"service.kubernetes.io/service-proxy-name": "other"}))
    srv.put("nodes", {"metadata": {"name": "node-a",
                                   "labels": {"topology.kubernetes.io/zone": "zone-a"}}})


def main_tests(srv, certs):
    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-data"), srv.url, certs, "data")
    d = Daemon(kc)
    try:
        good, e, _ = d.wait(lambda e: e.get(WEB) == ["10.244.1.2", "10.244.2.2"] and
                            e.get(DNS) == ["10.244.1.9"])
        ok(good, "converges on the listed services (unready endpoint left out)",
           (e, d.logtext()))
        ok(e is not None and not any(k[0] == "t/mesh" for k in e),
           "the service-proxy-name label selector is applied", e)
        lists = [q for p, q in srv.requests if p.endswith("/services") and "watch" not in q]
        ok(lists and lists[0].get("labelSelector") == fakeapi.SELECTOR and
           lists[0].get("limit") == "500",
           "services are listed in pages with kube-proxy's label selector", lists[:1])
        ok(any(q.get("fieldSelector") == "metadata.name=node-a" for p, q in srv.requests
               if p.endswith("/nodes")), "this node's Node is listed by name", srv.requests)

        srv.put("services", service("api", "10.96.0.11"))
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.3", True)]))
        good, e, _ = d.wait(lambda e: e.get(API) == ["10.244.3.3"])
        ok(good, "a watched ADDED service and slice appear", e)
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.4", True)]))
        good, e, _ = d.wait(lambda e: e.get(API) == ["10.244.3.4"])
        ok(good, "a MODIFIED slice replaces its endpoints", e)
        srv.delete("services", "t", "api")
        good, e, _ = d.wait(lambda e: API not in e and WEB in e)
        ok(good, "a DELETED service disappears", e)

        # faults: after each, a change must still arrive and the dump never empties
        faults = [("drop", "a connection dropped in the middle of an event"),
                  ("err410", "an ERROR event with code 410"),
                  ("bookmark", "a bookmark"),
                  ("garbage", "a line that is not an event")]
        for i, (kind, desc) in enumerate(faults):
            lists_before = srv.count(lambda r: r[0].endswith("/services") and
                                     "watch" not in r[1])
            watching = srv.wait_watch("services")
            srv.inject(kind, "services")
            ip = "10.244.5.%d" % (10 + i)
            srv.put("endpointslices", slice_("web-2", "web", [(ip, True)]))
            good, e, emptied = d.wait(lambda e: e.get(WEB) == sorted(["10.244.1.2", ip]),
                                      watch_nonempty=True)
            ok(watching and good and not emptied, "after %s: converges, never empty" % desc,
               (watching, e, d.logtext()[-3000:]))
            if kind == "err410":
                end = time.monotonic() + DEADLINE
                while time.monotonic() < end and srv.count(
                        lambda r: r[0].endswith("/services") and "watch" not in r[1]) \
                        <= lists_before:
                    time.sleep(0.05)
                ok(srv.count(lambda r: r[0].endswith("/services") and "watch" not in r[1]) >
                   lists_before, "the 410 ERROR event made kproxyd list services again")
        srv.next_watch_410 = True
        srv.wait_watch("endpointslices")
        srv.inject("drop", "endpointslices")
        srv.put("services", service("api", "10.96.0.11"))
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.5", True)]))
        good, e, emptied = d.wait(lambda e: e.get(API) == ["10.244.3.5"], watch_nonempty=True)
        ok(good and not emptied, "a watch answered with HTTP 410: re-listed, converges", e)
        big = service("big", "10.96.0.20")
        big["metadata"]["annotations"] = {"example.com/blob": "x" * (5 << 20)}
        srv.put("services", big)
        srv.put("endpointslices", slice_("big-1", "big", [("10.244.6.6", True)]))
        good, e, _ = d.wait(lambda e: e.get(("t/big", "http", "10.96.0.20", 80)) ==
                            ["10.244.6.6"])
        ok(good, "a 5 MiB object in one watch event is applied", e)
        srv.delete("services", "t", "big")
        good, e, _ = d.wait(lambda e: ("t/big", "http", "10.96.0.20", 80) not in e)
        ok(good, "and its deletion too", e)
        srv.trickle = True
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.6", True)]))
        good, e, _ = d.wait(lambda e: e.get(API) == ["10.244.3.6"])
        srv.trickle = False
        ok(good, "an event trickled one byte per chunk is applied", e)

        srv.forbid = True
        srv.inject("drop")
        time.sleep(1.0)
        ok(d.entries() and WEB in d.entries(), "403 on every request: the state is kept",
           d.entries())
        srv.forbid = False
        srv.put("endpointslices", slice_("api-1", "api", [("10.244.3.7", True)]))
        good, e, _ = d.wait(lambda e: e.get(API) == ["10.244.3.7"])
        ok(good and "HTTP 403" in d.logtext(), "after the 403s end: converges, 403 logged",
           (e, d.logtext()[-2000:]))

        srv.outage = True
        srv.inject("drop")
        srv.delete_quietly("services", "t", "api")
        time.sleep(1.0)
        ok(d.entries() and API in d.entries(),
           "during an outage nothing is flushed", d.entries())
        srv.outage = False
        good, e, emptied = d.wait(lambda e: API not in e and WEB in e, watch_nonempty=True)
        ok(good and not emptied,
           "after the outage: re-listed; a service deleted meanwhile is gone", e)

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
        try:
            with urllib.request.urlopen("http://%s/metrics" % st["metrics_address"],
                                        timeout=DEADLINE) as r:
                metrics = r.read().decode()
        except OSError as ex:
            metrics = str(ex)
        prog = [l for l in metrics.splitlines()
                if l.startswith("kubeproxy_network_programming_duration_seconds_count")]
        le2 = [l for l in metrics.splitlines() if l.startswith(
            'kubeproxy_network_programming_duration_seconds_bucket{le="1"}')]
        ok(prog == ["kubeproxy_network_programming_duration_seconds_count 1"] and
           le2 == ['kubeproxy_network_programming_duration_seconds_bucket{le="1"} 0'],
           "network programming latency: one change, timed from its trigger time (2 s ago)",
           (prog, le2))
        ok("kproxyd_api_relists_total" in metrics and "kproxyd_api_synced 1" in metrics and
           "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in metrics,
           "/metrics has the API counters", metrics[-1500:])
        try:
            with urllib.request.urlopen("http://%s/healthz" % st["healthz_address"],
                                        timeout=DEADLINE) as r:
                hz = r.status, json.loads(r.read())
        except OSError as ex:
            hz = (0, str(ex))
        ok(hz[0] == 200 and "lastUpdated" in hz[1], "/healthz is 200 once synced", hz)
        log = d.logtext()
        ok(fakeapi.TOKEN not in log, "no token in the log")
        ok("zone zone-a" in log, "the node's zone label is read", log[-2000:])
    finally:
        d.stop()


def test_not_before_lists(srv, certs):
    """Started while the API server is out: nothing is programmed, healthz says so."""
    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-out"), srv.url, certs, "data")
    srv.outage = True
    d = Daemon(kc)
    try:
        time.sleep(1.0)
        e = d.entries()
        st = d.status()
        ok(e == {} and st.get("sync", {}).get("count") == 0 and
           st.get("api", {}).get("synced") is False,
           "API server unreachable at start: no sync, nothing programmed", (e, st))
        table = d.ctl("status").stdout
        ok("API server:" in table and "listing (nothing programmed yet)" in table,
           "kproxyctl status says it is still listing", table)
        srv.outage = False
        good, e, _ = d.wait(lambda e: WEB in e)
        ok(good, "once the lists arrive, it programs", e)
    finally:
        srv.outage = False
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
            srv.token = fakeapi.TOKEN
        d.stop()
    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-name"), srv.url, certs, "data",
                            tls_name="localhost")
    d = Daemon(kc)
    good, e, _ = d.wait(lambda e: WEB in e)
    ok(good, "tls-server-name: the certificate is checked against that name (localhost)",
       (e, d.logtext()[-1500:]))
    d.stop()
    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-badname"), srv.url, certs, "data",
                            tls_name="not-the-server.example")
    d = Daemon(kc)
    time.sleep(1.5)
    e = d.entries()
    ok(e == {} and "not-the-server.example" in d.logtext(),
       "tls-server-name that the certificate does not carry: refused", (e, d.logtext()[-1500:]))
    d.stop()
    kc = fakeapi.kubeconfig(os.path.join(BASE, "kc-wrong"), srv.url, certs, "data",
                            ca="other-ca.crt")
    d = Daemon(kc)
    time.sleep(1.5)
    e = d.entries()
    log = d.logtext()
    ok(e == {} and ("certificate" in log.lower() or "SSL" in log),
       "a kubeconfig with the wrong CA never programs and logs the TLS error",
       (e, log[-1500:]))
    d.stop()
    bad = os.path.join(BASE, "kc-bad")
    with open(bad, "w") as f:
        f.write('{"current-context": "x", "contexts": [{"name": "x", "context": '
                '{"cluster": "c"}}], "clusters": [{"name": "c", "cluster": {"server": 5}}]}')
    r = subprocess.run([KPROXYD, "--dry-run", "--kubeconfig", bad, "--control-socket",
                        os.path.join(BASE, "bad.sock")], capture_output=True, text=True,
                       timeout=DEADLINE)
    ok(r.returncode != 0 and "clusters[0].cluster.server" in r.stderr,
       "a kubeconfig field of the wrong type is refused by name", r.stderr)
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
    srv = None
    try:
        certs = fakeapi.make_certs(BASE)
        srv = fakeapi.Server(certs)
        seed(srv)
        main_tests(srv, certs)
        test_not_before_lists(srv, certs)
        test_kubeconfigs(srv, certs)
        ok(exits and all(rc == 0 and not rep for rc, rep in exits),
           "every kproxyd stopped cleanly on SIGTERM, with no sanitizer report", exits)
    finally:
        if srv:
            srv.stop()
        shutil.rmtree(BASE, ignore_errors=True)
    print("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
