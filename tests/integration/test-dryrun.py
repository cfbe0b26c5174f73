#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd --dry-run on a manifest directory, followed through kproxyctl.

Starts kproxyd on a temporary directory, then adds, edits, breaks, renames and
removes manifest files and checks that `kproxyctl dump -o json` follows each
change (polling with a deadline, never sleeping blindly). Also runs kproxyd on
examples/manifests and checks what the README promises the demo shows.
Prints TAP.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "netns"))
import kptest  # noqa: E402
from kptest import free_port  # noqa: E402

TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
TOP_SRC = os.environ.get("top_srcdir", os.getcwd())
KPROXYD = os.path.join(TOP_BUILD, "proxy", "kproxyd")
KPROXYCTL = os.path.join(TOP_BUILD, "cli", "kproxyctl")
DEADLINE = 10.0
BASE = tempfile.mkdtemp(prefix="kp-test-dryrun-")



TAP = kptest.Tap(40)
ok = TAP.ok


class Daemon:
    def __init__(self, mdir, extra=()):
        self.sock = os.path.join(tempfile.mkdtemp(prefix="sock-", dir=BASE), "kproxyd.sock")
        self.log = tempfile.NamedTemporaryFile(prefix="kproxyd-", suffix=".log", delete=False,
                                               dir=BASE)
        self.proc = subprocess.Popen(
            [KPROXYD, "--dry-run", "--manifests", mdir, "--control-socket", self.sock,
             "--hostname-override", "node-a", "--min-sync-period", "50ms",
             "--nodeport-addresses", "127.0.0.0/8", "--v", "2",
             "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0",
             *extra],
            stdout=self.log, stderr=self.log)
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)

    def ctl(self, *args):
        return subprocess.run([KPROXYCTL, "--socket", self.sock, *args], capture_output=True,
                              text=True, timeout=DEADLINE)

    def dump(self):
        r = self.ctl("dump", "-o", "json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def logtext(self):
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
        return self.proc.returncode


def http_get(url):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def entries(d):
    """{(service, port_name, kind, vip, port): [ip:port, ...]}"""
    out = {}
    for e in (d or {}).get("entries", []):
        key = (e["service"], e["port_name"], e["kind"], e["vip"], e["port"])
        out[key] = sorted("%s:%d" % (x["ip"], x["port"]) for x in e["endpoints"])
    return out


def wait_for(daemon, pred):
    """Polls the dump until pred(entries) holds or the deadline passes."""
    end = time.monotonic() + DEADLINE
    last = None
    while time.monotonic() < end:
        d = daemon.dump()
        last = entries(d)
        if d is not None and pred(last):
            return True, last
        time.sleep(0.05)
    return False, last


def write(path, text):
    tmp = path + ".tmp~"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


SVC_A = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: t}
spec:
  clusterIP: 10.96.0.10
  type: NodePort
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: t
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.0.1]
  nodeName: node-a
%s
"""
EXTRA_EP = """- addresses: [10.244.0.2]
  nodeName: node-b"""


def svc_b(port):
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "db", "namespace": "t"},
         "spec": {"clusterIP": "10.96.0.20",
                  "ports": [{"name": "pg", "port": port, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "db-1", "namespace": "t",
                      "labels": {"kubernetes.io/service-name": "db"}},
         "addressType": "IPv4",
         "ports": [{"name": "pg", "port": 5432}],
         "endpoints": [{"addresses": ["10.244.0.3"]}]}]})


WEB = ("t/web", "http", "ClusterIP", "10.96.0.10", 80)
WEB_NP = ("t/web", "http", "NodePort", "127.0.0.1", 30080)
DB = ("t/db", "pg", "ClusterIP", "10.96.0.20", 5432)


def test_follow():
    mdir = tempfile.mkdtemp(prefix="manifests-", dir=BASE)
    write(os.path.join(mdir, "a.yaml"), SVC_A % EXTRA_EP)
    d = Daemon(mdir)
    ok(d.proc.poll() is None and os.path.exists(d.sock), "kproxyd starts and opens its socket",
       d.logtext())
    ok(oct(os.stat(d.sock).st_mode & 0o777) == "0o600", "control socket is mode 0600")
    good, e = wait_for(d, lambda e: e.get(WEB) == ["10.244.0.1:8080", "10.244.0.2:8080"])
    ok(good, "initial file: ClusterIP with both endpoints", e)
    ok(e.get(WEB_NP) == ["10.244.0.1:8080", "10.244.0.2:8080"],
       "NodePort on the --nodeport-addresses address", e)

    write(os.path.join(mdir, "b.json"), svc_b(5432))
    good, e = wait_for(d, lambda e: e.get(DB) == ["10.244.0.3:5432"])
    ok(good, "a file added: its service appears", e)

    write(os.path.join(mdir, "a.yaml"), SVC_A % "")
    good, e = wait_for(d, lambda e: e.get(WEB) == ["10.244.0.1:8080"])
    ok(good, "a file edited: the endpoint removed from it disappears", e)
    ok(e.get(DB) == ["10.244.0.3:5432"], "other files' objects are untouched", e)

    write(os.path.join(mdir, "c.yaml"), "kind: Service\nmetadata: {name: x\n  spec: [\n")
    write(os.path.join(mdir, "b.json"), svc_b(70000))
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end and "spec.ports[0].port" not in d.logtext():
        time.sleep(0.05)
    log = d.logtext()
    ok("c.yaml: document rejected" in log, "a malformed file is reported by name", log)
    ok("Service t/db rejected: spec.ports[0].port: 70000 is out of range" in log,
       "a bad object is reported with kind, namespace/name and field", log)
    e = entries(d.dump())
    ok(e.get(DB) == ["10.244.0.3:5432"] and e.get(WEB) == ["10.244.0.1:8080"],
       "nothing already programmed is lost", e)
    st = json.loads(d.ctl("status", "-o", "json").stdout)
    ok(st["objects"]["rejected"] >= 2 and st["backend"] == "dryrun" and st["dry_run"],
       "status counts the rejections and names the backend", st)
    ok(st["objects"]["services"] == 2 and st["objects"]["endpointslices"] == 2,
       "status object counts", st)
    code, body = http_get("http://%s/healthz" % st["healthz_address"])
    ok(code == 200 and '"lastUpdated"' in body and '"currentTime"' in body,
       "/healthz: 200 with lastUpdated and currentTime while syncs keep up", (code, body))
    code, body = http_get("http://%s/livez" % st["healthz_address"])
    ok(code == 200, "/livez: 200", (code, body))
    code, _ = http_get("http://%s/nothing" % st["healthz_address"])
    ok(code == 404, "unknown paths: 404", code)
    code, body = http_get("http://%s/metrics" % st["metrics_address"])
    m = dict(l.rsplit(" ", 1) for l in body.splitlines() if l and not l.startswith("#"))
    v4 = '{ip_family="IPv4"}'
    ok(code == 200
       and float(m.get("kubeproxy_sync_proxy_rules_last_timestamp_seconds" + v4, 0)) > 0
       and int(m.get("kubeproxy_sync_proxy_rules_duration_seconds_count" + v4, 0)) >= 2
       and int(m.get("kubeproxy_sync_proxy_rules_service_changes_total", 0)) >= 2
       and int(m.get("kproxyd_objects_rejected_total", 0)) >= 2
       and int(m.get('kubeproxy_proxy_healthz_total{code="200"}', 0)) >= 1,
       "/metrics: kube-proxy's sync metrics and kproxyd's own", body[:3000])
    ok(not any('ip_family="IPv6"' in k for k in m),
       "IPv4 services alone: no IPv6 series (kube-proxy runs no IPv6 proxier then)",
       [k for k in m if "IPv6" in k][:5])
    names = {k.split("{")[0] for k in m}
    want = ["kubeproxy_sync_proxy_rules_duration_seconds_count",
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count",
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_count",
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "kubeproxy_sync_proxy_rules_endpoint_changes_total",
            "kubeproxy_network_programming_duration_seconds_count",
            "kubeproxy_proxy_livez_total"]
    ok(all(w in names for w in want)
       and float(m.get("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds" + v4, 0)) > 0
       and 'kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",'
           'traffic_policy="internal"}' in m
       and 'kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",'
           'traffic_policy="external"}' in m
       and m.get("kubeproxy_sync_proxy_rules_service_changes_pending") == "0",
       "/metrics: kube-proxy's names, with ip_family and traffic_policy labels "
       "(iptables mode: the full and partial sync latencies too)",
       [w for w in want if w not in names])
    code, body = http_get("http://%s/proxyMode" % st["metrics_address"])
    ok(code == 200 and body == "iptables", "/proxyMode: the mode's name", (code, body))
    code, body = http_get("http://%s/configz" % st["metrics_address"])
    try:
        cz = json.loads(body)["kubeproxy.config.k8s.io"]
    except (ValueError, KeyError):
        cz = {}
    ok(code == 200 and cz.get("kind") == "KubeProxyConfiguration"
       and cz.get("iptables", {}).get("syncPeriod") is not None,
       "/configz: the configuration in force as JSON", (code, body[:500]))
    code, body = http_get("http://%s/healthz" % st["metrics_address"])
    ok(code == 200 and body == "ok", "the metrics server's own /healthz", (code, body))

    os.unlink(os.path.join(mdir, "b.json"))
    good, e = wait_for(d, lambda e: DB not in e and WEB in e)
    ok(good, "a file removed: its objects go", e)

    src = tempfile.mkdtemp(prefix="outside-", dir=BASE)
    write(os.path.join(src, "moved.json"), svc_b(5433))
    os.rename(os.path.join(src, "moved.json"), os.path.join(mdir, "moved.json"))
    good, e = wait_for(d, lambda e: ("t/db", "pg", "ClusterIP", "10.96.0.20", 5433) in e)
    ok(good, "a file moved into the directory is loaded", e)
    write(os.path.join(mdir, ".hidden.yaml"), SVC_A.replace("10.96.0.10", "10.96.0.11") % "")
    write(os.path.join(mdir, "notes.txt"), "not a manifest")
    time.sleep(0.3)  # negative check: give a wrong reload the chance to happen
    e = entries(d.dump())
    ok(not any(k[3] == "10.96.0.11" for k in e), "hidden and non-manifest files are ignored", e)

    table = d.ctl("dump")
    ok(table.returncode == 0 and "Prot LocalAddress:Port" in table.stdout
       and "10.96.0.10:80" in table.stdout and "-> 10.244.0.1:8080" in table.stdout,
       "table output, ipvsadm style", table.stdout + table.stderr)
    bad = d.ctl("frobnicate")
    ok(bad.returncode == 2 and "unknown command" in bad.stderr, "unknown command refused",
       bad.stderr)
    rc = d.stop()
    ok(rc == 0, "SIGTERM stops kproxyd cleanly", d.logtext())
    ok(not os.path.exists(d.sock), "the socket is removed on exit")
    gone = subprocess.run([KPROXYCTL, "--socket", d.sock, "status"], capture_output=True,
                          text=True, timeout=DEADLINE)
    ok(gone.returncode == 1 and "cannot reach kproxyd" in gone.stderr,
       "kproxyctl says clearly when kproxyd is not running", gone.stderr)


def test_flags():
    r = subprocess.run([KPROXYD, "--help"], capture_output=True, text=True, timeout=DEADLINE)
    ok(r.returncode == 0 and "--manifests DIR" in r.stdout and "--dry-run" in r.stdout,
       "kproxyd --help", r.stdout)
    ok(r.returncode == 0 and "--kubeconfig FILE" in r.stdout and "--master URL" in r.stdout,
       "kproxyd --help names the API-server flags", r.stdout)
    r = subprocess.run([KPROXYD, "--dry-run", "--control-socket",
                        tempfile.mktemp(prefix="sock-", dir=BASE)], capture_output=True,
                       text=True, timeout=DEADLINE,
                       env={k: v for k, v in os.environ.items()
                            if not k.startswith("KUBERNETES_SERVICE")})
    ok(r.returncode == 1 and "no source" in r.stderr and "in-cluster" in r.stderr,
       "no source and no in-cluster config: an error naming the choices", r.stderr)
    r = subprocess.run([KPROXYD, "--min-sync-period", "soon"], capture_output=True, text=True,
                       timeout=DEADLINE)
    ok(r.returncode == 2 and "--min-sync-period" in r.stderr, "a bad duration is refused",
       r.stderr)
    r = subprocess.run([KPROXYD, "--manifests", "/nonexistent", "--dry-run", "--control-socket",
                        tempfile.mktemp(prefix="sock-", dir=BASE)], capture_output=True, text=True,
                       timeout=DEADLINE)
    ok(r.returncode == 1 and "/nonexistent" in r.stderr, "a missing directory is an error",
       r.stderr)
    r = subprocess.run([KPROXYD, "--dry-run", "--manifests", "/tmp", "--cluster-cidr",
                        "10.244.0.0/16,bogus", "--control-socket",
                        tempfile.mktemp(prefix="sock-", dir=BASE)],
                       capture_output=True, text=True, timeout=DEADLINE)
    ok(r.returncode == 2 and "--cluster-cidr" in r.stderr and "bogus" in r.stderr,
       "a bad --cluster-cidr is refused by name", r.stderr)
    r = subprocess.run([KPROXYD, "--manifests", "/tmp", "--proxy-mode", "dpdk",
                        "--control-socket", tempfile.mktemp(prefix="sock-", dir=BASE)],
                       capture_output=True, text=True, timeout=DEADLINE)
    with open(os.path.join(TOP_BUILD, "config.h")) as f:
        dpdk_built = "#define HAVE_DPDK 1" in f.read()
    if dpdk_built:
        ok(r.returncode == 1 and "--dpdk-port" in r.stderr,
           "dpdk without ports is refused, naming --dpdk-port", r.stderr)
    else:
        ok(r.returncode == 1 and "--dry-run" in r.stderr,
           "a data plane not built is refused with a hint", r.stderr)
    if os.geteuid() == 0 and not os.path.exists("/proc/net/ip_vs"):
        # this machine's kernel has no IPVS (the IPVS tests run in a qemu guest)
        ns = "kpdry%d" % os.getpid()
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            r = subprocess.run(["ip", "netns", "exec", ns, KPROXYD, "--manifests", "/tmp",
                                "--proxy-mode", "ipvs", "--control-socket",
                                tempfile.mktemp(prefix="sock-", dir=BASE)],
                               capture_output=True, text=True, timeout=DEADLINE)
        finally:
            subprocess.run(["ip", "netns", "del", ns])
        ok(r.returncode == 1 and "this kernel has no IPVS" in r.stderr,
           "--proxy-mode ipvs on a kernel without IPVS fails at start, saying why", r.stderr)


def test_examples():
    mdir = os.path.join(TOP_SRC, "examples", "manifests")
    d = Daemon(mdir)
    want = {
        ("demo/web", "http", "ClusterIP", "10.96.10.10", 80):
            ["10.244.1.2:8080", "10.244.2.3:8080", "10.244.2.4:8080"],
        ("kube-system/dns", "dns", "ClusterIP", "10.96.0.10", 53):
            ["10.244.1.5:53", "10.244.2.6:53"],
        ("demo/api", "http", "NodePort", "127.0.0.1", 30080): ["10.244.1.7:8080"],
        ("demo/rolling", "", "ClusterIP", "10.96.50.50", 80): ["10.244.1.15:8080"],
        ("demo/legacy", "pg", "ClusterIP", "10.96.60.60", 5432): ["10.244.1.17:5432"],
        ("demo/metrics", "metrics", "ClusterIP", "10.96.40.40", 9100): ["10.244.1.13:9100"],
        ("demo/noeps", "", "ClusterIP", "10.96.80.80", 80): [],
    }
    good, e = wait_for(d, lambda e: all(e.get(k) == v for k, v in want.items()))
    ok(good, "examples/manifests: the demo's services and endpoints",
       "\n".join("%s -> %s (want %s)" % (k, e.get(k), v) for k, v in want.items()
                 if e.get(k) != v) if e else d.logtext())
    ok(e is not None and e and not any(k[0] in ("demo/headless", "demo/ext", "demo/mesh")
                                       for k in e),
       "headless, ExternalName and other-proxy services are not programmed", e)
    ok(e and not any(line.startswith("E") for line in d.logtext().splitlines()),
       "the examples load without errors", d.logtext())
    st = json.loads(d.ctl("status", "-o", "json").stdout)
    code, body = http_get("http://%s/metrics" % st["metrics_address"])
    ok(code == 200 and
       'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"}' in body and
       'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}' in body,
       "/metrics: with a dual-stack service among them, the sync series of both families",
       [l for l in body.splitlines() if "last_timestamp" in l])
    d.stop()


def test_ctl_forms():
    """kproxyctl's filters, YAML, --watch, check, status figures, and bash completion."""
    mdir = tempfile.mkdtemp(prefix="manifests-", dir=BASE)
    for f in os.listdir(os.path.join(TOP_SRC, "examples", "manifests")):
        if f.endswith((".yaml", ".yml", ".json")):
            shutil.copy(os.path.join(TOP_SRC, "examples", "manifests", f), mdir)
    d = Daemon(mdir)
    good, _ = wait_for(d, lambda e: ("demo/web", "http", "ClusterIP", "10.96.10.10", 80) in e)
    ok(good, "the examples are loaded", d.logtext()[-1000:])

    def dump(*args):
        r = d.ctl("dump", *args, "-o", "json")
        return r.returncode, entries(json.loads(r.stdout) if r.returncode == 0 else None)

    rc, e = dump("demo/api")
    ok(rc == 0 and e and {k[0] for k in e} == {"demo/api"},
       "dump NS/NAME: that service's frontends only", e)
    rc, e = dump("--vip", "10.96.10.10")
    ok(rc == 0 and e and {k[3] for k in e} == {"10.96.10.10"},
       "dump --vip: that address's frontends only", e)
    rc, e = dump("--kind", "NodePort")
    ok(rc == 0 and e and {k[2] for k in e} == {"NodePort"}, "dump --kind NodePort", e)
    r = d.ctl("dump", "--kind", "Bogus")
    ok(r.returncode == 2 and "--kind Bogus" in r.stderr, "a bad --kind is refused by name",
       r.stderr)
    r = d.ctl("dump", "demo/web", "-o", "yaml")
    ok(r.returncode == 0 and "entries:" in r.stdout and '- service: "demo/web"' in r.stdout
       and re.search(r'^ +vip: "10\.96\.10\.10"$', r.stdout, re.M),
       "-o yaml prints the dump as YAML", r.stdout[:600])
    r = d.ctl("check")
    ok(r.returncode == 0 and r.stdout.startswith("ok: 0 differences"),
       "check in a dry run: the state agrees with itself (exit 0)", r.stdout + r.stderr)
    r = d.ctl("trace", "10.244.1.2", "10.96.10.10:80")
    ok(r.returncode == 0 and r.stdout.startswith("10.244.1.2 -> 10.96.10.10:80: forwarded, "
                                                "demo/web") and "probability 1/3" in r.stdout,
       "trace in a dry run: the frontend and its endpoints' odds", r.stdout + r.stderr)
    r = d.ctl("trace", "10.244.1.2")
    ok(r.returncode == 2 and "trace SRC DST" in r.stderr, "trace needs SRC and DST (exit 2)",
       r.stderr)
    r = d.ctl("trace", "10.244.1.2", "10.96.10.10:99999")
    ok(r.returncode == 1 and "IP:PORT" in r.stderr, "a bad DST is refused, named (exit 1)",
       r.stderr)
    st = json.loads(d.ctl("status", "-o", "json").stdout)
    ok(isinstance(st["sync"].get("last_duration_s"), float) and "last_full" in st["sync"]
       and isinstance(st.get("dataplane"), list),
       "status: the last sync's duration, full or partial, the data plane's figures",
       st.get("sync"))
    r = d.ctl("status")
    ok(r.returncode == 0 and "Last sync took:" in r.stdout, "and its table shows them",
       r.stdout)
    w = subprocess.Popen([KPROXYCTL, "--socket", d.sock, "dump", "demo/web", "--watch",
                          "--interval", "100", "--count", "40"], stdout=subprocess.PIPE,
                         text=True)
    first = w.stdout.readline()
    with open(os.path.join(mdir, "endpointslices.yml")) as f:
        text = f.read()
    write(os.path.join(mdir, "endpointslices.yml"), re.sub(r"\b10\.244\.2\.4\b", "10.244.2.44",
                                                           text))
    out, _ = w.communicate(timeout=DEADLINE)
    ok(first.split()[1:2] == ["+"] and re.search(
        r"^\S+ ~ TCP 10\.96\.10\.10:80 ClusterIP demo/web:http ->.*10\.244\.2\.44:8080",
        out, re.M), "dump --watch prints the frontends, then what a change did to them",
       first + out)
    d.stop()
    comp = os.path.join(TOP_SRC, "completion")
    script = ("source %s/kproxyctl; source %s/kproxyd\n"
              "COMP_WORDS=(kproxyctl ch); COMP_CWORD=1; _kproxyctl; echo \"${COMPREPLY[*]}\"\n"
              "COMP_WORDS=(kproxyctl dump --k); COMP_CWORD=2; _kproxyctl; echo \"${COMPREPLY[*]}\"\n"
              "COMP_WORDS=(%s --proxy-m); COMP_CWORD=1; _kproxyd; echo \"${COMPREPLY[*]}\"\n"
              "COMP_WORDS=(%s --proxy-mode nf); COMP_CWORD=2; _kproxyd; echo \"${COMPREPLY[*]}\"\n"
              % (comp, comp, KPROXYD, KPROXYD))
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=DEADLINE)
    ok(r.stdout.splitlines() == ["check", "--kind", "--proxy-mode", "nftables"],
       "bash completion: commands, options per command, kproxyd's flags from its --help, "
       "and values", r.stdout + r.stderr)



def hc_service(hc, node):
    return """apiVersion: v1
kind: Service
metadata: {name: lb, namespace: t}
spec:
  clusterIP: 10.96.0.30
  type: LoadBalancer
  externalTrafficPolicy: Local
  healthCheckNodePort: %d
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30090}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: lb-1
  namespace: t
  labels: {kubernetes.io/service-name: lb}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.1.40]
  conditions: {ready: true}
  nodeName: %s
- addresses: [10.244.2.41]
  conditions: {ready: true}
  nodeName: node-b
""" % (hc, node)


def test_hcports():
    """healthCheckNodePort of an externalTrafficPolicy Local service: 200 with the local
    endpoint count while this node has one, 503 when it has none, closed when the service
    goes."""
    mdir = tempfile.mkdtemp(prefix="hc-", dir=BASE)
    hc = free_port()
    url = "http://127.0.0.1:%d/healthz" % hc
    write(os.path.join(mdir, "lb.yaml"), hc_service(hc, "node-a"))
    d = Daemon(mdir)

    def poll_hc(pred):
        end = time.monotonic() + DEADLINE
        got = None
        while time.monotonic() < end:
            got = http_get(url)
            if pred(got):
                return True, got
            time.sleep(0.05)
        return False, got

    good, got = poll_hc(lambda g: g[0] == 200)
    body = json.loads(got[1]) if good else {}
    ok(good and body.get("localEndpoints") == 1 and body.get("service") ==
       {"namespace": "t", "name": "lb"} and body.get("serviceProxyHealthy") is True,
       "health check node port: 200 and one local endpoint", (got, d.logtext()))
    write(os.path.join(mdir, "lb.yaml"), hc_service(hc, "node-c"))
    good, got = poll_hc(lambda g: g[0] == 503)
    ok(good and json.loads(got[1]).get("localEndpoints") == 0,
       "health check node port: 503 when no endpoint is on this node", got)
    os.unlink(os.path.join(mdir, "lb.yaml"))
    good, got = poll_hc(lambda g: g[0] == 0)
    ok(good, "health check node port closed when the service is gone", got)
    d.stop()


def test_config():
    """--config: a KubeProxyConfiguration sets what the flags would, flags override it,
    unknown fields are warned about, wrong types are refused naming the field."""
    cfg = os.path.join(BASE, "kube-proxy.yaml")
    write(cfg, "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
               "kind: KubeProxyConfiguration\n"
               "hostnameOverride: node-from-config\n"
               "clusterCIDR: 10.244.0.0/16\n"
               "notAKubeProxyField: -999\n"
               "iptables: {masqueradeAll: true, syncPeriod: 1m0s, minSyncPeriod: 500ms}\n")
    d = Daemon(os.path.join(TOP_SRC, "examples", "manifests"), extra=("--config", cfg))
    r = d.ctl("status", "-o", "json")
    st = json.loads(r.stdout) if r.returncode == 0 else {}
    # Daemon passes --hostname-override node-a: the flag wins over the file
    ok(st.get("node") == "node-a", "a flag overrides the config file", r.stdout)
    log = d.logtext()
    ok("notAKubeProxyField: not supported by kproxyd" in log,
       "a field kproxyd does not use is warned about, by name", log)
    d.stop()
    d = subprocess.run([KPROXYD, "--config", cfg, "--dry-run", "--manifests",
                        os.path.join(TOP_SRC, "examples", "manifests"), "--control-socket",
                        tempfile.mktemp(prefix="sock-", dir=BASE), "--healthz-bind-address",
                        "", "--metrics-bind-address", "", "--cleanup"],
                       capture_output=True, text=True, timeout=DEADLINE)
    ok(d.returncode == 0, "a valid config file with --cleanup (dry run) exits 0", d.stderr)
    write(cfg, "kind: KubeProxyConfiguration\niptables: {masqueradeAll: yes-please}\n")
    r = subprocess.run([KPROXYD, "--config", cfg, "--dry-run"], capture_output=True,
                       text=True, timeout=DEADLINE)
    ok(r.returncode == 2 and "iptables.masqueradeAll: not a boolean" in r.stderr,
       "a wrong type is refused with the field's path", r.stderr)
    write(cfg, "kind: KubeProxyConfiguration\nminSyncPeriod: soon\n")
    r = subprocess.run([KPROXYD, "--config", cfg, "--dry-run"], capture_output=True,
                       text=True, timeout=DEADLINE)
    ok(r.returncode == 2 and "minSyncPeriod: not a duration" in r.stderr,
       "a bad duration in the file is refused with the field's name", r.stderr)
    write(cfg, "kind: KubeProxyConfiguration\nmode: userspace\nbindAddress: 127.0.0.1\n"
               "portRange: 40000-40100\nudpIdleTimeout: 1s\n")
    r = subprocess.run([KPROXYD, "--config", cfg, "--dry-run", "--manifests", "/tmp",
                        "--control-socket", tempfile.mktemp(prefix="sock-", dir=BASE),
                        "--healthz-bind-address", "", "--metrics-bind-address", "", "--cleanup"],
                       capture_output=True, text=True, timeout=DEADLINE)
    ok(r.returncode == 0 and "not supported" not in r.stderr,
       "the userspace fields bindAddress, portRange and udpIdleTimeout are read", r.stderr)
    write(cfg, "kind: KubeProxyConfiguration\nmode: userspace\nportRange: 40100-40000\n")
    r = subprocess.run([KPROXYD, "--config", cfg, "--dry-run", "--manifests", "/tmp"],
                       capture_output=True, text=True, timeout=DEADLINE)
    ok(r.returncode != 0 and "--proxy-port-range" in r.stderr and "40100-40000" in r.stderr,
       "a backwards portRange is refused, naming it", r.stderr)
    write(cfg, "kind: KubeProxyConfiguration\nudpIdleTimeout: 250\n")
    r = subprocess.run([KPROXYD, "--config", cfg, "--dry-run"], capture_output=True,
                       text=True, timeout=DEADLINE)
    ok(r.returncode == 2 and "udpIdleTimeout: not a duration" in r.stderr,
       "a udpIdleTimeout without a unit is refused by name", r.stderr)
    write(cfg, "kind: KubeletConfiguration\n")
    r = subprocess.run([KPROXYD, "--config", cfg, "--dry-run"], capture_output=True,
                       text=True, timeout=DEADLINE)
    ok(r.returncode == 2 and "kind: not KubeProxyConfiguration" in r.stderr,
       "another kind of file is refused", r.stderr)


def test_manpage():
    """kproxyd(8) documents every flag --help lists: both come from one table, the
    help from the flag table and the data planes' option declarations."""
    h = subprocess.run([KPROXYD, "--help"], capture_output=True, text=True,
                       timeout=DEADLINE).stdout
    flags = re.findall(r"^      --([a-z0-9-]+)", h, re.M)
    with open(os.path.join(TOP_SRC, "man", "kproxyd.8")) as f:
        man = f.read().replace("\\-", "-")
    opts = man[man.find(".SH OPTIONS"):man.find(".SH SIGNALS")]
    missing = [f for f in flags if not re.search(r"--%s\b" % re.escape(f), opts)]
    ok(len(flags) > 40 and not missing,
       "kproxyd(8) documents each of the %d flags of --help" % len(flags),
       "missing from OPTIONS: %s" % missing)
    table = subprocess.run([KPROXYD, "--flag-table", "man"], capture_output=True, text=True,
                           timeout=DEADLINE).stdout
    with open(os.path.join(TOP_SRC, "man", "kproxyd.8")) as f:
        ok(table.startswith(".TS") and table in f.read(),
           "kproxyd(8)'s flag table is the one kproxyd --flag-table man prints", table[:300])
    table = subprocess.run([KPROXYD, "--flag-table", "markdown"], capture_output=True,
                           text=True, timeout=DEADLINE).stdout
    with open(os.path.join(TOP_SRC, "README.md")) as f:
        ok(table.startswith("| flag") and table in f.read(),
           "README's flag table is the one kproxyd --flag-table markdown prints", table[:300])
    r = subprocess.run([KPROXYD, "--proxy-mode", "userspace", "--help"], capture_output=True,
                       text=True, timeout=DEADLINE)
    ok("--userspace-workers" in r.stdout and "--ipvs-scheduler" not in r.stdout,
       "--proxy-mode MODE --help shows that data plane's flags only", r.stdout)
    r = subprocess.run([KPROXYD, "--no-such-flag"], capture_output=True, text=True,
                       timeout=DEADLINE)
    ok(r.returncode == 2 and "--no-such-flag" in r.stderr, "an unknown flag is refused by name",
       r.stderr)
    r = subprocess.run([KPROXYD, "-v=3", "--masquerade-all=false", "--dry-run=true",
                        "--sync-period=1m30s", "--manifests", "/nonexistent"],
                       capture_output=True, text=True, timeout=DEADLINE)
    ok(r.returncode == 1 and "/nonexistent" in r.stderr and "unknown" not in r.stderr,
       "kube-proxy's flag syntax: -v=3, --bool=false, --flag=value", r.stderr)


def main():
    for exe in (KPROXYD, KPROXYCTL):
        if not os.access(exe, os.X_OK):
            print("Bail out! %s is not built" % exe)
            return 1
    try:
        test_flags()
        test_follow()
        test_examples()
        test_ctl_forms()
        test_hcports()
        test_config()
        test_manpage()
    finally:
        shutil.rmtree(BASE, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
