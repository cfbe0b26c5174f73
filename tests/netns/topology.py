# SPDX-License-Identifier: GPL-2.0-or-later
"""A node, its pods and a client in network namespaces, for kproxyd tests.

node namespace: bridge kbr0 10.244.0.1/16 and fd00:10:244::1/64 (the pods' gateway),
vcl 192.168.50.1/24 and fd00:50::1/64 toward the client, forwarding on. Each pod: eth0 on the bridge, default route via
the node, running podserver.py on the given ports. client: 192.168.50.2/24 (and .3) with
routes to the service range and external IPs through the node. Everything is
removed by teardown(), also after a failure."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(*cmd, ns=None, check=True, **kw):
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    r = subprocess.run(full, capture_output=True, text=True, timeout=60, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(full), r.stderr.strip()))
    return r


class Topology:
    def __init__(self, pods, ports=(8080,), external_ips=()):
        """pods: [(name, ip)] or [(name, ip, ipv6)]"""
        tag = "kp%d" % (os.getpid() % 100000)
        self.node, self.client = tag + "n", tag + "c"
        self.pods = {}
        self.procs = []
        self.namespaces = []
        try:
            self._setup(tag, pods, ports, external_ips)
        except Exception:
            self.teardown()
            raise

    def _ns(self, name):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)

    def _setup(self, tag, pods, ports, external_ips):
        self._ns(self.node)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.node)
        sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=self.node)
        sh("ip", "link", "add", "kbr0", "type", "bridge", ns=self.node)
        sh("ip", "addr", "add", "10.244.0.1/16", "dev", "kbr0", ns=self.node)
        sh("ip", "addr", "add", "fd00:10:244::1/64", "dev", "kbr0", "nodad", ns=self.node)
        sh("ip", "link", "set", "kbr0", "up", ns=self.node)
        for i, (name, ip, *ip6) in enumerate(pods):
            ns = "%sp%d" % (tag, i)
            self._ns(ns)
            sh("ip", "link", "add", "vp%d" % i, "type", "veth", "peer", "name", "eth0",
               "netns", ns, ns=self.node)
            sh("ip", "link", "set", "vp%d" % i, "master", "kbr0", "up", ns=self.node)
            # as kubelet's hairpin-veth mode: a pod may reach itself through a VIP
            sh("ip", "link", "set", "vp%d" % i, "type", "bridge_slave", "hairpin", "on",
               ns=self.node)
            sh("ip", "addr", "add", ip + "/16", "dev", "eth0", ns=ns)
            sh("ip", "link", "set", "eth0", "up", ns=ns)
            sh("ip", "route", "add", "default", "via", "10.244.0.1", ns=ns)
            if ip6:
                sh("ip", "addr", "add", ip6[0] + "/64", "dev", "eth0", "nodad", ns=ns)
                sh("ip", "-6", "route", "add", "default", "via", "fd00:10:244::1", ns=ns)
            p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                  os.path.join(HERE, "podserver.py"), name,
                                  *map(str, ports)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.procs.append(p)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("pod %s did not start" % name)
            self.pods[name] = (ns, ip)
        self._ns(self.client)
        sh("ip", "link", "add", "vcl", "type", "veth", "peer", "name", "eth0", "netns",
           self.client, ns=self.node)
        sh("ip", "addr", "add", "192.168.50.1/24", "dev", "vcl", ns=self.node)
        sh("ip", "addr", "add", "fd00:50::1/64", "dev", "vcl", "nodad", ns=self.node)
        sh("ip", "link", "set", "vcl", "up", ns=self.node)
        sh("ip", "addr", "add", "192.168.50.2/24", "dev", "eth0", ns=self.client)
        sh("ip", "addr", "add", "192.168.50.3/24", "dev", "eth0", ns=self.client)
        sh("ip", "addr", "add", "fd00:50::2/64", "dev", "eth0", "nodad", ns=self.client)
        sh("ip", "link", "set", "eth0", "up", ns=self.client)
        sh("ip", "route", "add", "default", "via", "192.168.50.2", ns=self.node)
        sh("ip", "route", "add", "10.96.0.0/12", "via", "192.168.50.1", ns=self.client)
        sh("ip", "-6", "route", "add", "fd00:96::/64", "via", "fd00:50::1", ns=self.client)
        sh("ip", "-6", "route", "add", "default", "via", "fd00:50::2", ns=self.node)
        for ip in external_ips:
            sh("ip", "route", "add", ip + "/32", "via", "192.168.50.1", ns=self.client)

    def run(self, ns, *args, src=None, **kw):
        env = dict(os.environ, KP_SRC=src) if src else None
        return sh(sys.executable, os.path.join(HERE, "client.py"), *map(str, args), ns=ns,
                  check=False, env=env, **kw).stdout.split("\n")[:-1]

    def teardown(self):
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []
