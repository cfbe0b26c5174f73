#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd as a drop-in for kube-proxy, in a node namespace with real connections: a
kubeadm-style KubeProxyConfiguration (every v1alpha1 field present, as `kubeadm config
print` writes it) with --hostname-override in upper case, and a flags-only command line
carrying every kube-proxy flag (the list is checked against kproxyd's own flag table);
each starts kproxyd in iptables mode and carries traffic. Also: the conntrack sysctls
read back, --write-config-to read back, --init-only, kproxyd ending when its config file
changes, --detect-local-mode BridgeInterface and --iptables-masquerade-bit in the rules
and in the traffic, MASQUERADE --random-fully. Needs root and network namespaces; TAP."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import Topology, sh  # noqa: E402
from kptest import KPROXYCTL, KPROXYD  # noqa: E402
from kptest import Tap, names, slice_, stop, svc, wait_until  # noqa: E402

DEADLINE = 10.0
TAP = Tap()
ok = TAP.ok
PODS = [("pod-a1", "10.244.1.2"), ("pod-b1", "10.244.2.3")]
A1, B1 = ("10.244.1.2", "node-a", True), ("10.244.2.3", "node-b", True)

# as `kubeadm config print init-defaults --component-configs KubeProxyConfiguration`
# writes it (null and zero fields are kube-proxy's defaults), with our cluster CIDR and
# ports, and no kubeconfig (the source here is --manifests, kproxyd's own flag)
KUBEADM = """apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: ""
  qps: 0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: "127.0.0.1:0"
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 2
metricsBindAddress: "127.0.0.1:0"
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
"""

# every kube-proxy flag but those that end kproxyd (--cleanup, --init-only,
# --write-config-to, --help, --version), choose another config (--config) or another
# source (--kubeconfig, --master: tests/api), each with a value a node might carry
FLAGS = {
    "feature-gates": "AllAlpha=false", "kube-api-content-type": "application/json",
    "kube-api-qps": "5", "kube-api-burst": "10", "config-sync-period": "15m",
    "hostname-override": "NODE-A", "nodeport-addresses": "192.168.50.0/24",
    "cluster-cidr": "10.244.0.0/16", "detect-local-mode": "BridgeInterface",
    "pod-bridge-interface": "kbr0", "pod-interface-name-prefix": "vp",
    "oom-score-adj": "-999", "conntrack-max-per-core": "32768", "conntrack-min": "131072",
    "conntrack-tcp-timeout-established": "23h", "conntrack-tcp-timeout-close-wait": "50m",
    "conntrack-tcp-be-liberal": "false", "conntrack-udp-timeout": "0s",
    "conntrack-udp-timeout-stream": "0s", "proxy-mode": "iptables", "masquerade-all": "false",
    "iptables-min-sync-period": "100ms", "iptables-sync-period": "30s",
    "ipvs-min-sync-period": "0s", "ipvs-sync-period": "30s", "ipvs-scheduler": "rr",
    "ipvs-strict-arp": "false", "ipvs-tcp-timeout": "0s", "ipvs-tcpfin-timeout": "0s",
    "ipvs-udp-timeout": "0s", "ipvs-exclude-cidrs": "10.9.0.0/16",
    "iptables-masquerade-bit": "12", "iptables-localhost-nodeports": "true",
    "bind-address": "0.0.0.0", "healthz-bind-address": "127.0.0.1:0",
    "metrics-bind-address": "127.0.0.1:0", "healthz-port": "10256", "metrics-port": "10249",
    "bind-address-hard-fail": "false", "profiling": "false",
    "show-hidden-metrics-for-version": "", "v": "2", "vmodule": "", "logging-format": "text",
    "log-flush-frequency": "5s", "log-json-info-buffer-size": "0",
    "log-json-split-stream": "false", "log-text-info-buffer-size": "0",
    "log-text-split-stream": "false", "add-dir-header": "false", "alsologtostderr": "false",
    "log-backtrace-at": ":0", "log-dir": "", "log-file": "", "log-file-max-size": "1800",
    "logtostderr": "true", "one-output": "false", "skip-headers": "false",
    "skip-log-headers": "false", "stderrthreshold": "2",
}
FAKEAPI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api", "fakeapi.py")
NOT_RUN = {"cleanup", "init-only", "write-config-to", "config", "kubeconfig", "master"}


def manifests():
    return (svc("web", "10.96.0.10", 80, ptype="NodePort", node_port=30080)
            + slice_("web", [A1, B1])
            + svc("local", "10.96.0.13", 80, "  externalTrafficPolicy: Local\n",
                  ptype="NodePort", node_port=30083)
            + slice_("local", [A1, B1]))


class Run:
    """kproxyd in the node namespace with exactly @args (no shared flags), log in @rundir."""

    def __init__(self, topo, rundir, *args):
        self.sock = os.path.join(rundir, "kproxyd.sock")
        self.logname = os.path.join(rundir, "kproxyd.log")
        self.log = open(self.logname, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", topo.node, KPROXYD,
                                      "--control-socket", self.sock, *args],
                                     stdout=self.log, stderr=self.log)
        wait_until(lambda: self.proc.poll() is not None or self.ctl("status").returncode == 0)

    def ctl(self, *args):
        return subprocess.run([KPROXYCTL, "-s", self.sock, *args], capture_output=True,
                              text=True, timeout=DEADLINE)

    def text(self):
        return open(self.logname).read()

    def stop(self):
        return stop(self.proc)


def sysctl(topo, name):
    return sh("cat", "/proc/sys/net/netfilter/" + name, ns=topo.node).stdout.strip()


def carries(topo, what):
    """ClusterIP through the node and NodePort from the client reach both endpoints;
    externalTrafficPolicy Local reaches node-a's only (the node's name as configured)."""
    c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 40))
    ok(set(c) == {"pod-a1", "pod-b1"}, "%s: ClusterIP through the node" % what, c)
    c = names(topo.run(topo.client, "tcp", "192.168.50.1", 30080, 40))
    ok(set(c) == {"pod-a1", "pod-b1"}, "%s: NodePort from the client" % what, c)
    c = names(topo.run(topo.client, "tcp", "192.168.50.1", 30083, 20))
    ok(set(c) == {"pod-a1"}, "%s: externalTrafficPolicy Local picks node-a's endpoint "
       "(the node name lower-cased)" % what, c)


def cleanup(topo):
    r = sh(KPROXYD, "--cleanup", "--healthz-bind-address", "", "--metrics-bind-address", "",
           ns=topo.node, check=False)
    ok(r.returncode == 0, "--cleanup after", r.stderr)


def test_kubeadm(topo, base, mdir):
    cfg = os.path.join(base, "kube-proxy.yaml")
    with open(cfg, "w") as f:
        f.write(KUBEADM)
    k = Run(topo, base, "--config", cfg, "--manifests", mdir, "--hostname-override", "NODE-A",
            "--proxy-mode", "ipvs", "--cluster-cidr", "10.1.0.0/16")
    ok(k.proc.poll() is None, "kproxyd starts on a kubeadm KubeProxyConfiguration", k.text())
    st = k.ctl("status", "-o", "json").stdout
    ok('"node": "node-a"' in st and '"proxy_mode": "iptables"' in st,
       "--hostname-override wins over the file, lower-cased; the file's mode (\"\": "
       "iptables) wins over --proxy-mode", st[:400])
    log = k.text()
    ok("--proxy-mode: ignored: --config" in log and "--cluster-cidr: ignored: --config" in log,
       "kube-proxy's other flags are named as ignored beside --config", log[-2000:])
    ok("not supported by kproxyd" not in log,
       "every field of the kubeadm file is one kproxyd knows", log[-2000:])
    carries(topo, "kubeadm config")
    r = sh(KPROXYD, "--manifests", mdir, "--control-socket", os.path.join(base, "two.sock"),
           "--healthz-bind-address", "", "--metrics-bind-address", "", ns=topo.node,
           check=False)
    ok(r.returncode == 1 and "another kproxyd (pid %d) already programs this node"
       % k.proc.pid in r.stderr, "a second kproxyd on the node refuses to start, naming the "
       "first", r.stderr)
    ok(sysctl(topo, "nf_conntrack_tcp_timeout_established") == "86400" and
       sysctl(topo, "nf_conntrack_tcp_timeout_close_wait") == "3600",
       "conntrack timeouts set to kube-proxy's defaults (24h, 1h)",
       (sysctl(topo, "nf_conntrack_tcp_timeout_established"),
        sysctl(topo, "nf_conntrack_tcp_timeout_close_wait")))
    with open(cfg, "a") as f:
        f.write("# edited\n")
    ok(wait_until(lambda: k.proc.poll() is not None, DEADLINE) and k.proc.returncode == 1 and
       "configuration file was updated" in k.text(),
       "a change to the config file ends kproxyd (exit 1), as kube-proxy", k.text()[-500:])
    k.stop()
    out = os.path.join(base, "written.yaml")
    r = sh(KPROXYD, "--config", cfg, "--write-config-to", out, ns=topo.node, check=False)
    written = open(out).read() if os.path.exists(out) else ""
    ok(r.returncode == 0 and "syncPeriod: \"30s\"" in written and
       "tcpEstablishedTimeout: \"24h\"" in written and "clusterCIDR: \"10.244.0.0/16\"" in
       written, "--write-config-to writes the configuration in force, defaults filled in",
       r.stderr + written[:600])
    r = sh(KPROXYD, "--config", out, "--write-config-to", out + ".2", ns=topo.node, check=False)
    ok(r.returncode == 0 and open(out + ".2").read() == written,
       "and kproxyd reads it back to the same configuration", r.stderr)
    sh("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_established=432000",
       ns=topo.node)
    r = sh(KPROXYD, "--config", cfg, "--init-only", "--manifests", mdir, ns=topo.node,
           check=False)
    ok(r.returncode == 0 and sysctl(topo, "nf_conntrack_tcp_timeout_established") == "86400",
       "--init-only sets the node up (conntrack) and exits 0", r.stderr)
    cleanup(topo)


def test_flags(topo, base, mdir):
    table = subprocess.run([KPROXYD, "--flag-table", "markdown"], capture_output=True,
                           text=True, timeout=DEADLINE).stdout
    kube = {m.group(1) for m in re.finditer(r"^\| `--([a-z0-9-]+)` \| [^|]* \| (?!applied by "
                                            r"kproxyd \(kproxyd's own\))(?!.* mode: its "
                                            r"option (?:dispatch|libiptc|workers|max-conns|"
                                            r"grace|eal|port|route|lb-policy|max-flows|mbufs|"
                                            r"idle|syn))", table, re.M)}
    missing = sorted(kube - set(FLAGS) - NOT_RUN - {"help", "version", "flag-table",
                                                    "proxy-port-range", "udp-timeout",
                                                    "dpdk-tcp-timeout", "dpdk-tcpfin-timeout",
                                                    "dpdk-udp-timeout"})
    ok(len(kube) > 50 and not missing,
       "the flags-only run carries every kube-proxy flag of kproxyd's table (%d)" % len(kube),
       missing)
    args = ["--manifests", mdir]
    for name, value in FLAGS.items():
        args.append("--%s=%s" % (name, value))
    k = Run(topo, base, *args)
    ok(k.proc.poll() is None and "unknown flag" not in k.text(),
       "kproxyd starts with every kube-proxy flag on its command line", k.text()[-1500:])
    log = k.text()
    ok("--feature-gates (featureGates) = AllAlpha=false: not applied" in log and
       "--ipvs-sync-period: no effect in --proxy-mode iptables" in log,
       "flags without effect are named once in the start-up log", log[-2500:])
    carries(topo, "every flag")
    ok(sysctl(topo, "nf_conntrack_tcp_timeout_established") == str(23 * 3600) and
       sysctl(topo, "nf_conntrack_tcp_timeout_close_wait") == str(50 * 60),
       "--conntrack-tcp-timeout-established/-close-wait set", sysctl(topo,
       "nf_conntrack_tcp_timeout_established"))
    rules = sh("iptables-legacy-save", "-t", "nat", ns=topo.node).stdout
    ok(re.search(r'-A KUBE-SVC-\S+ -d 10\.96\.0\.10/32 ! -i kbr0 .*"t/web:p cluster IP"',
                 rules) is not None and
       "-i kbr0 -m comment --comment \"pod traffic for t/local:p external destinations\""
       in rules, "--detect-local-mode BridgeInterface: pod traffic is what arrives on kbr0",
       "\n".join(l for l in rules.splitlines() if "kbr0" in l or "cluster IP" in l)[:1500])
    ok("--set-xmark 0x1000/0x1000" in rules and "! --mark 0x1000/0x1000" in rules,
       "--iptables-masquerade-bit 12: the mark is 0x1000",
       "\n".join(l for l in rules.splitlines() if "MARK" in l or "mark" in l))
    ok(re.search(r"-A KUBE-POSTROUTING .*-j MASQUERADE --random-fully", rules) is not None,
       "MASQUERADE --random-fully (this kernel has it)",
       "\n".join(l for l in rules.splitlines() if "MASQUERADE" in l))
    lines = topo.run(topo.pods["pod-a1"][0], "tcp", "10.96.0.10", 80, 20)
    src = {l.split()[-1] for l in lines if l.startswith("pod-b1 ")}
    ok(src == {"10.244.1.2"}, "a pod's traffic to a ClusterIP arrives on kbr0: not "
       "masqueraded (to the other pod; to itself the hairpin rule masquerades)", lines[:6])
    lines = topo.run(topo.client, "tcp", "10.96.0.10", 80, 10)
    src = {l.split()[-1] for l in lines if not l.startswith("ERR")}
    ok(lines and src == {"10.244.0.1"},
       "the client's is not a pod's: masqueraded through mark 0x1000", lines[:5])
    k.stop()
    cleanup(topo)


def test_nft_node(topo, base, mdir):
    """The node's other rules in nf_tables (kubelet's hint chain, as iptables-nft leaves
    it): said at start and in kproxyctl status, naming --proxy-mode nftables."""
    if not shutil.which("nft"):
        ok(False, "nft is installed (scripts/install-deps installs nftables)")
        return
    sh("nft", "add", "table", "ip", "mangle", ns=topo.node)
    sh("nft", "add", "chain", "ip", "mangle", "KUBE-IPTABLES-HINT", ns=topo.node)
    k = Run(topo, base, "--manifests", mdir, "--healthz-bind-address", "",
            "--metrics-bind-address", "127.0.0.1:0")
    st = k.ctl("status", "-o", "json").stdout
    mx = json.loads(st).get("metrics_address", "") if st else ""
    metrics = sh(sys.executable, "-c", "import sys, urllib.request\n"
                 "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
                 "http://%s/metrics" % mx, ns=topo.node, check=False).stdout
    ok("kproxyd_node_netfilter_nftables 1" in metrics, "and as a metric", metrics[-600:])
    ok('"backend": "nft"' in st and '"kubelet_hint_in_nft": true' in st,
       "kproxyctl status: the node's netfilter interface is nf_tables", st[-400:])
    ok("this node's other rules are in nf_tables" in k.text() and
       "--proxy-mode nftables" in k.text(), "said at start, naming the way out",
       k.text()[-1500:])
    ok("--proxy-mode nftables is the way out" in k.ctl("status").stdout,
       "and in kproxyctl status's table", k.ctl("status").stdout)
    k.stop()
    sh("nft", "delete", "table", "ip", "mangle", ns=topo.node)
    cleanup(topo)


def api_objects():
    """The test's services as the API server holds them (namespace t, port p)."""
    def svc_(name, ip, np, extra=None):
        spec = {"type": "NodePort", "clusterIP": ip, "clusterIPs": [ip],
                "ports": [{"name": "p", "port": 80, "targetPort": 8080, "nodePort": np}]}
        spec.update(extra or {})
        return {"metadata": {"name": name, "namespace": "t"}, "spec": spec}

    def slice__(name):
        return {"metadata": {"name": name + "-1", "namespace": "t",
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "ports": [{"name": "p", "port": 8080}],
                "endpoints": [{"addresses": [ip], "nodeName": node,
                               "conditions": {"ready": True}} for ip, node, _ in (A1, B1)]}
    return [("services", svc_("web", "10.96.0.10", 30080)), ("endpointslices", slice__("web")),
            ("services", svc_("local", "10.96.0.13", 30083,
                              {"externalTrafficPolicy": "Local"})),
            ("endpointslices", slice__("local"))]


def test_node_cidr(topo, base):
    """--detect-local-mode NodeCIDR: nothing is programmed before the Node has
    spec.podCIDRs; then pod traffic is what comes from them, not --cluster-cidr."""
    d = os.path.join(base, "api")
    os.mkdir(d)
    api = subprocess.Popen(["ip", "netns", "exec", topo.node, sys.executable, FAKEAPI, "--dir",
                            d], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def put(resource, obj):
        api.stdin.write("put %s %s\n" % (resource, json.dumps(obj)))
        api.stdin.flush()
        return api.stdout.readline()

    banner = [api.stdout.readline() for _ in range(5)]
    if not ok(banner[0].startswith("serving https://"), "the test API server runs in the "
              "node namespace", banner):
        api.kill()
        return
    put("nodes", {"metadata": {"name": "node-a"}, "spec": {}})
    for resource, obj in api_objects():
        put(resource, obj)
    k = Run(topo, base, "--kubeconfig", os.path.join(d, "kubeconfig-data"),
            "--hostname-override", "node-a", "--detect-local-mode", "NodeCIDR",
            "--cluster-cidr", "10.9.0.0/16", "--min-sync-period", "100ms", "--v", "2",
            "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0")
    waited = wait_until(lambda: "waiting for node node-a's spec.podCIDRs" in k.text(), DEADLINE)
    rules = sh("iptables-legacy-save", "-t", "nat", ns=topo.node).stdout
    ok(waited and k.proc.poll() is None and "KUBE-SVC" not in rules,
       "NodeCIDR: kproxyd waits for the Node's podCIDRs, programming nothing",
       k.text()[-800:] + rules[-800:])
    put("nodes", {"metadata": {"name": "node-a"}, "spec": {"podCIDRs": ["10.244.0.0/16"]}})
    got = wait_until(lambda: "! -s 10.244.0.0/16" in
                     sh("iptables-legacy-save", "-t", "nat", ns=topo.node).stdout, DEADLINE)
    rules = sh("iptables-legacy-save", "-t", "nat", ns=topo.node).stdout
    ok(got and "10.9.0.0/16" not in rules, "then pod traffic is what comes from the Node's "
       "10.244.0.0/16, not --cluster-cidr's 10.9.0.0/16",
       "\n".join(l for l in rules.splitlines() if "-s 10." in l)[:1200] + k.text()[-600:])
    c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 20))
    ok(set(c) == {"pod-a1", "pod-b1"}, "NodeCIDR: the ClusterIP carries traffic", c)
    k.stop()
    api.stdin.write("quit\n")
    api.stdin.flush()
    stop(api)
    cleanup(topo)


def main():
    if os.geteuid() != 0 or not shutil.which("iptables-legacy"):
        print("1..0 # SKIP needs root and iptables-legacy")
        return 0
    # the conntrack sysctls exist in a namespace once the module is loaded
    subprocess.run(["modprobe", "-q", "nf_conntrack"], check=False)
    base = tempfile.mkdtemp(prefix="kp-test-dropin-")
    mdir = os.path.join(base, "manifests")
    os.mkdir(mdir)
    with open(os.path.join(mdir, "services.yaml"), "w") as f:
        f.write(manifests())
    topo = Topology(PODS)
    try:
        test_kubeadm(topo, base, mdir)
        test_flags(topo, base, mdir)
        test_nft_node(topo, base, mdir)
        test_node_cidr(topo, base)
    finally:
        topo.teardown()
        shutil.rmtree(base, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
