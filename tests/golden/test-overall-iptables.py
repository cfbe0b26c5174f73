#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kube-proxy's TestOverallIPTablesRules, run against kproxyd: its inputs
(kube-proxy-overall/manifests.yaml) rendered by kproxyd --proxy-mode iptables in a fresh
network namespace (node test-node, 192.168.0.2, pod CIDR 10.0.0.0/8, nodePortAddresses
unset, localhost NodePorts on), and iptables-legacy-save compared, chain by chain and rule
by rule in order, with kube-proxy's expected rules (kube-proxy-overall/expected.rules).
The expected rules go through iptables-legacy-restore and -save in a second namespace
first, so both sides are in the kernel's canonical form (kube-proxy's test sorts the
chains; the order of rules inside a chain matters in both).

Where kproxyd differs from kube-proxy for a reason, DIFFERENCES below changes the
expected side, says why, and each is printed: nothing is hidden. Like kube-proxy's test,
only the KUBE- chains are compared (not the jumps from the built-in chains), and at 10
frontends kproxyd's dispatch tree (above --iptables-dispatch-threshold, 100) is not in
play. TAP; exit 77 without root or iptables-legacy."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "netns"))
from topology import sh  # noqa: E402
from kptest import KPROXYD, DEADLINE, Tap, wait_until  # noqa: E402

CASE = os.path.join(HERE, "kube-proxy-overall")
TAP = Tap()
ok = TAP.ok

# (what, why, function on the expected rule lines)
DIFFERENCES = [
    ("no nfacct counters",
     "kproxyd keeps no nfacct objects (kube-proxy's fixture has both counters): the "
     "INVALID drop has no '-m nfacct', and the per-NodePort '-d 127.0.0.0/8 ... -m nfacct' "
     "rules, which only count localhost NodePort packets before the rule that carries "
     "them anyway, are not written",
     lambda lines: [re.sub(r" -m nfacct --nfacct-name \S+", "", l) for l in lines
                    if "localhost_nps_accepted_pkts" not in l]),
    ("--random-fully",
     "kube-proxy's fixture reports an iptables without --random-fully; on a real node "
     "kube-proxy adds it to the KUBE-POSTROUTING MASQUERADE wherever iptables has it, and "
     "kproxyd wherever the kernel has it (Linux 3.13 on)",
     lambda lines: [l + " --random-fully" if l.startswith("-A KUBE-POSTROUTING") and
                    l.endswith("-j MASQUERADE") else l for l in lines]),
]

def parse(text):
    """iptables-save output as {table: {chain: [rule, ...]}} (KUBE- chains only; the
    counters and the built-in chains' jumps left out: kube-proxy's test has neither)."""
    tables, cur = {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = tables.setdefault(line[1:], {})
        elif line.startswith(":KUBE-"):
            cur.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A KUBE-"):
            chain = line.split()[1]
            cur.setdefault(chain, []).append(line)
    return tables


def main():
    if os.geteuid() != 0 or not shutil.which("iptables-legacy-save"):
        print("1..0 # SKIP needs root and iptables-legacy")
        return 77
    tag = "kpg%d" % (os.getpid() % 100000)
    node, want = tag + "n", tag + "e"
    tmp = tempfile.mkdtemp(prefix="kp-golden-")
    proc = None
    try:
        for ns in (node, want):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", ns=node)
        sh("ip", "addr", "add", "192.168.0.2/24", "dev", "eth0", ns=node)
        sh("ip", "link", "set", "eth0", "up", ns=node)
        sh("ip", "link", "set", "eth1", "up", ns=node)
        mdir = os.path.join(tmp, "manifests")
        os.mkdir(mdir)
        shutil.copy(os.path.join(CASE, "manifests.yaml"), mdir)
        log = open(os.path.join(tmp, "kproxyd.log"), "w")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", node, KPROXYD, "--proxy-mode", "iptables",
             "--manifests", mdir, "--control-socket", os.path.join(tmp, "kproxyd.sock"),
             "--hostname-override", "test-node", "--cluster-cidr", "10.0.0.0/8", "--v", "2"],
            stdout=log, stderr=log)

        def synced():
            out = sh("iptables-legacy-save", "-t", "nat", ns=node, check=False).stdout
            return "KUBE-SVC-XPGD46QRK7WJZT7O" in out and "-j KUBE-NODEPORTS" in out
        ok(wait_until(lambda: proc.poll() is not None or synced()) and proc.poll() is None,
           "kproxyd programs kube-proxy's TestOverallIPTablesRules inputs",
           open(os.path.join(tmp, "kproxyd.log")).read())
        got = parse(sh("iptables-legacy-save", ns=node).stdout)

        lines = open(os.path.join(CASE, "expected.rules")).read().splitlines()
        lines = [l for l in lines if not l.startswith("#")]
        for what, why, fn in DIFFERENCES:
            print("# kproxyd differs from kube-proxy on purpose: %s: %s" % (what, why))
            lines = fn(lines)
        r = subprocess.run(["ip", "netns", "exec", want, "iptables-legacy-restore"],
                           input="\n".join(lines) + "\n", capture_output=True, text=True,
                           timeout=60)
        ok(r.returncode == 0, "kube-proxy's expected rules load into iptables", r.stderr)
        exp = parse(sh("iptables-legacy-save", ns=want).stdout)

        for table in ("filter", "nat"):
            e, g = exp.get(table, {}), got.get(table, {})
            ok(sorted(e) == sorted(g), "%s: the same KUBE- chains as kube-proxy" % table,
               "only kube-proxy: %s\nonly kproxyd: %s" % (sorted(set(e) - set(g)),
                                                         sorted(set(g) - set(e))))
            for chain in sorted(e):
                gl = g.get(chain, [])
                detail = "\n".join(["kube-proxy:"] + ["  " + l for l in e[chain]] +
                                   ["kproxyd:"] + ["  " + l for l in gl])
                ok(e[chain] == gl, "%s %s: kube-proxy's %d rules, in order" %
                   (table, chain, len(e[chain])), detail)
        ok(proc.poll() is None, "kproxyd still runs")
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns in (node, want):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
