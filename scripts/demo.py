#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The demo, with real traffic: a node namespace running kproxyd on examples/manifests,
the pods of two example services behind a bridge, and a client outside the node.
Connects through a ClusterIP and a NodePort, printing which pod answered, prints
`kproxyctl dump`, and tears everything down. Usage: demo.py BUILD_DIR [--proxy-mode M]"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "netns"))
from topology import Topology  # noqa: E402

# endpoints of demo/web and demo/api in examples/manifests, by pod name
PODS = [("web-a", "10.244.1.2"), ("web-b", "10.244.2.3"), ("web-c", "10.244.2.4"),
        ("api-a", "10.244.1.7"), ("api-b", "10.244.2.8")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--proxy-mode", default="iptables")
    args = ap.parse_args()
    kproxyd = os.path.join(args.build, "proxy", "kproxyd")
    kproxyctl = os.path.join(args.build, "cli", "kproxyctl")
    tmp = tempfile.mkdtemp(prefix="kproxyd-demo-")
    sock, log = os.path.join(tmp, "kproxyd.sock"), os.path.join(tmp, "kproxyd.log")
    topo = Topology(PODS)
    proc = None
    try:
        cmd = [kproxyd, "--proxy-mode", args.proxy_mode, "--manifests",
               os.path.join(TOP, "examples", "manifests"), "--hostname-override", "node-a",
               "--cluster-cidr", "10.244.0.0/16", "--nodeport-addresses", "192.168.50.0/24",
               "--control-socket", sock]
        print("$ ip netns exec NODE " + " ".join(os.path.relpath(c, TOP) if c.startswith(TOP)
                                                 else c for c in cmd), flush=True)
        proc = subprocess.Popen(["ip", "netns", "exec", topo.node, *cmd],
                                stderr=open(log, "w"))
        for _ in range(100):
            if subprocess.run([kproxyctl, "-s", sock, "status"],
                              capture_output=True).returncode == 0 or proc.poll() is not None:
                break
            time.sleep(0.05)
        print(open(log).read(), end="")
        if proc.poll() is not None:
            return 1
        for what, ns, host, port in (
                ("ClusterIP demo/web from the node", topo.node, "10.96.10.10", 80),
                ("ClusterIP demo/web from a client outside the node", topo.client,
                 "10.96.10.10", 80),
                ("NodePort demo/api (externalTrafficPolicy Local) from the client",
                 topo.client, "192.168.50.1", 30080)):
            lines = topo.run(ns, "tcp", host, port, 12)
            seen = collections.Counter(l.split()[0] for l in lines)
            print("\n%s, %s:%d, 12 connections:" % (what, host, port))
            for name, n in sorted(seen.items()):
                print("  %-8s answered %2d (it saw the client as %s)" % (
                    name, n, next(l.split()[1] for l in lines if l.startswith(name))
                    if not name.startswith("ERR") else "-"))
        print("\n$ kproxyctl dump", flush=True)
        subprocess.run([kproxyctl, "-s", sock, "dump"])
        return 0
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        if args.proxy_mode != "dryrun":
            subprocess.run(["ip", "netns", "exec", topo.node, kproxyd, "--proxy-mode",
                            args.proxy_mode, "--cleanup"], capture_output=True)
        topo.teardown()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
