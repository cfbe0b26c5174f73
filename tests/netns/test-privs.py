#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""kproxyd with least privilege, as examples/daemonset.yaml runs it: uid 0 holding only
the capabilities kproxyd(8) lists (CAP_NET_ADMIN and CAP_NET_RAW; bounding, permitted and
effective sets cut with setpriv) and /proc/sys mounted read-only, as in a container that
is not privileged. In iptables and in userspace mode it programs the node and carries
real connections through a ClusterIP and a NodePort; the conntrack sysctls it cannot
write are skipped with a log line; --cleanup works with the same set. Without
CAP_NET_ADMIN, or without CAP_NET_RAW, it exits at once with an error naming the missing
capability; a health port below 1024 names CAP_NET_BIND_SERVICE. Needs root, setpriv and network namespaces; TAP."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import Topology, sh  # noqa: E402
import kptest  # noqa: E402
from kptest import KPROXYD, Tap, names, save, slice_, stop, svc, wait_until  # noqa: E402

DEADLINE = 10.0
TAP = Tap()
ok = TAP.ok
PODS = [("pod-a1", "10.244.1.2"), ("pod-b1", "10.244.2.3")]
A1, B1 = ("10.244.1.2", "node-a", True), ("10.244.2.3", "node-b", True)
# kproxyd(8), "Privileges": what iptables and userspace mode need
CAPS = ("net_admin", "net_raw")
CAP_BITS = {"net_admin": 12, "net_raw": 13}
LOCK = None        # the test's own xtables lock file, made in main()
DAEMONSET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                         "daemonset.yaml")


def wrap(caps):
    """The command prefix: a mount namespace where /proc/sys is read-only (as a container
    runtime mounts it) and /run/xtables.lock is the test's own (the machine's is shared
    by every namespace: another program holding it would only delay the syncs here), then
    uid 0 with exactly @caps (bounding, inheritable, so permitted and effective after
    exec)."""
    sets = "-all" + "".join(",+" + c for c in caps)
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && "
            "mount --bind \"$0\" /run/xtables.lock && exec \"$@\"", LOCK,
            "setpriv", "--bounding-set", sets, "--inh-caps", sets, "--"]


class Kproxyd(kptest.Kproxyd):
    """kptest.Kproxyd with @caps only: the namespace tests' flags, NodePorts on every
    local address (127.0.0.1 too, for which route_localnet is wanted), health and metrics
    on ephemeral ports."""

    def __init__(self, topo, mode, mdir, caps, *extra):
        self.rundir = os.path.join(mdir, "..")
        super().__init__(topo.node, mode, mdir, self.rundir, (
            "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0",
            *extra), wrap=wrap(caps))


def capeff(pid):
    """kproxyd's effective capability set, as a number (None if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return int(re.search(r"^CapEff:\s*([0-9a-f]+)", f.read(), re.M).group(1), 16)
    except (OSError, AttributeError):
        return None


def run_mode(topo, mode, mdir, caps=CAPS):
    TAP.prefix = mode
    n = topo.node
    open(os.path.join(mdir, "..", "kproxyd.log"), "w").close()
    k = Kproxyd(topo, mode, mdir, caps)
    try:
        up = k.ready(lambda: bool(k.dump()))
        ok(up and k.proc.poll() is None, "kproxyd starts with %s only and /proc/sys "
           "read-only, and programs the service" % " and ".join(
               "CAP_" + c.upper() for c in caps), k.text())
        want = sum(1 << CAP_BITS[c] for c in caps)
        eff = capeff(k.proc.pid)
        ok(eff == want, "its effective set is exactly %#x (not root's full set)" % want,
           "CapEff %s" % (hex(eff) if eff is not None else "gone"))
        st = os.stat(k.sock)
        ok(st.st_mode & 0o777 == 0o600 and st.st_uid == 0, "the control socket is 0600, "
           "owned by root", oct(st.st_mode))
        c = names(topo.run(n, "tcp", "10.96.0.10", 80, 20))
        ok(set(c) == {"pod-a1", "pod-b1"}, "ClusterIP from the node reaches both pods", c)
        c = names(topo.run(topo.client, "tcp", "10.96.0.10", 80, 20))
        ok(set(c) == {"pod-a1", "pod-b1"}, "ClusterIP from outside the node", c)
        c = names(topo.run(topo.client, "tcp", "192.168.50.1", 30080, 20))
        ok(set(c) == {"pod-a1", "pod-b1"}, "NodePort from outside the node", c)
        text = k.text()
        ok(re.search(r"cannot set /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_"
                     r"established to 86400 \(Read-only file system\): left at \d+", text),
           "a conntrack sysctl it cannot write is skipped with a log line", text)
        if mode == "iptables":
            ok("cannot set net.ipv4.conf.all.route_localnet to 1 (Read-only file system)"
               in text, "route_localnet that cannot be set is a warning", text)
        ok(k.proc.poll() is None, "kproxyd still runs", text)
    finally:
        rc = k.stop()
    ok(rc == 0, "it stops on SIGTERM with status 0", "status %s" % rc)
    try:
        r = subprocess.run(["ip", "netns", "exec", n, *wrap(caps), KPROXYD, "--proxy-mode",
                            mode, "--cleanup", "--v", "2"], capture_output=True, text=True,
                           timeout=DEADLINE)
        rc, err = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = None, "timed out: %s" % e
    # KUBE-FIREWALL is kubelet's too: a cleanup leaves it, as kube-proxy's does
    left = [l for l in save(topo) if "KUBE-" in l and "KUBE-FIREWALL" not in l]
    left += [l for l in sh("nft", "list", "tables", ns=n).stdout.splitlines()
             if "kube-proxy" in l]
    ok(rc == 0 and not left, "--cleanup with the same set removes the rules",
       err + "\n".join(left[:10]))


def without(topo, mode, mdir, cap):
    """kproxyd lacking @cap: an exit within the deadline, an error that names it."""
    TAP.prefix = "%s without %s" % (mode, cap)
    open(os.path.join(mdir, "..", "kproxyd.log"), "w").close()
    k = Kproxyd(topo, mode, mdir, [c for c in CAPS if c != cap])
    ended = wait_until(lambda: k.proc.poll() is not None)
    rc = k.proc.returncode if ended else stop(k.proc)
    text = k.text()
    ok(ended and rc == 1, "kproxyd exits with status 1 at start", "ended %s, status %s\n%s"
       % (ended, rc, text))
    name = "CAP_" + cap.upper()
    ok(re.search(r"E\S* .*cannot open the nat table: Operation not permitted; needs "
                 r"CAP_NET_ADMIN and CAP_NET_RAW, and this process lacks %s$" % name,
                 text, re.M), "the error names the missing capability (%s)" % name, text)


def nft_without_admin(topo, mdir):
    """nftables mode without CAP_NET_ADMIN: an exit at start that names it."""
    TAP.prefix = "nftables without net_admin"
    open(os.path.join(mdir, "..", "kproxyd.log"), "w").close()
    k = Kproxyd(topo, "nftables", mdir, ["net_raw"])
    ended = wait_until(lambda: k.proc.poll() is not None)
    rc = k.proc.returncode if ended else stop(k.proc)
    text = k.text()
    ok(ended and rc == 1, "kproxyd exits with status 1 at start", "ended %s, status %s\n%s"
       % (ended, rc, text))
    ok(re.search(r"E\S* .*nftables: cannot talk to nf_tables: Operation not permitted; needs "
                 r"CAP_NET_ADMIN, and this process lacks CAP_NET_ADMIN$", text, re.M),
       "the error names the missing capability", text)


def daemonset(topo, mdir):
    """examples/daemonset.yaml's container as it stands: its capabilities and its flags
    (but the source and the node name, which are the test's), /proc/sys read-only."""
    TAP.prefix = "daemonset.yaml"
    import yaml
    with open(DAEMONSET) as f:
        ds = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "DaemonSet"][0]
    c = ds["spec"]["template"]["spec"]["containers"][0]
    sc = c.get("securityContext", {})
    caps = sc.get("capabilities", {})
    ok(not sc.get("privileged") and caps.get("drop") == ["ALL"] and
       sorted(caps.get("add", [])) == sorted(x.upper() for x in CAPS),
       "not privileged; drops ALL and adds exactly the capabilities kproxyd(8) lists", sc)
    flags = [a for a in c["command"][1:] if not a.startswith("--hostname-override")]
    open(os.path.join(mdir, "..", "kproxyd.log"), "w").close()
    k = Kproxyd(topo, "iptables", mdir, [x.lower() for x in caps.get("add", [])], *flags)
    try:
        up = k.ready(lambda: bool(k.dump()))
        ok(up and k.proc.poll() is None, "kproxyd starts with its capabilities and flags "
           "(%s)" % " ".join(flags), k.text())
        c = names(topo.run(topo.client, "tcp", "192.168.50.1", 30080, 20))
        ok(set(c) == {"pod-a1", "pod-b1"}, "NodePort from outside the node", c)
        text = k.text()
        ok("cannot set /proc/sys/net/netfilter" not in text and "set sysctl" not in text,
           "its --conntrack-* flags leave the node's conntrack settings alone: no warning",
           text)
    finally:
        rc = k.stop()
    ok(rc == 0, "it stops on SIGTERM with status 0", "status %s" % rc)


def low_port(topo, mdir):
    """A health port below 1024 without CAP_NET_BIND_SERVICE: named, and kproxyd goes on
    (as kube-proxy, unless --bind-address-hard-fail)."""
    TAP.prefix = "iptables, --healthz-bind-address 127.0.0.1:80"
    open(os.path.join(mdir, "..", "kproxyd.log"), "w").close()
    k = Kproxyd(topo, "iptables", mdir, CAPS, "--healthz-bind-address", "127.0.0.1:80")
    try:
        said = k.ready(lambda: "serving no health checks" in k.text())
        ok(said and "--healthz-bind-address 127.0.0.1:80: Permission denied (a port below "
           "1024 needs CAP_NET_BIND_SERVICE); serving no health checks" in k.text(),
           "the error names CAP_NET_BIND_SERVICE", k.text())
        up = k.ready(lambda: bool(k.dump()))
        ok(up and k.proc.poll() is None, "kproxyd goes on and programs the service", k.text())
    finally:
        rc = k.stop()
    ok(rc == 0, "it stops on SIGTERM with status 0", "status %s" % rc)


def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root for network namespaces and iptables")
        return 0
    for tool in ("iptables-legacy", "setpriv", "unshare"):
        if not shutil.which(tool):
            print("Bail out! %s is missing: run scripts/install-deps" % tool)
            return 1
    global LOCK
    tmp = tempfile.mkdtemp(prefix="kp-privs-")
    LOCK = os.path.join(tmp, "xtables.lock")
    open(LOCK, "w").close()
    mdir = os.path.join(tmp, "manifests")
    os.mkdir(mdir)
    with open(os.path.join(mdir, "web.yaml"), "w") as f:
        f.write(svc("web", "10.96.0.10", 80, ptype="NodePort", node_port=30080)
                + slice_("web", [A1, B1]))
    topo = None
    try:
        topo = Topology(PODS)
        daemonset(topo, mdir)
        low_port(topo, mdir)
        for mode in ("iptables", "userspace"):
            run_mode(topo, mode, mdir)
            for cap in CAPS:
                without(topo, mode, mdir, cap)
        # nf_tables needs CAP_NET_ADMIN alone (netlink, conntrack; no raw socket)
        run_mode(topo, "nftables", mdir, ("net_admin",))
        nft_without_admin(topo, mdir)
    finally:
        if topo:
            topo.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
