#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A pod for the network-namespace tests: answers on TCP and UDP with its own name
and the address it saw the client come from ("NAME PEERIP\\n"), then (TCP) echoes
lines until the client closes. A datagram longer than BIG bytes is answered with
"NAME PEERIP len=N xxx...\\n", as long as it was. Usage: podserver.py NAME PORT [PORT...]"""
import selectors
import socket
import sys

BIG = 1400

def plain(addr):
    """The client address as the client wrote it (no IPv4-mapped form)."""
    return (addr[7:] if addr.startswith("::ffff:") else addr).encode()


def main():
    name = sys.argv[1].encode()
    sel = selectors.DefaultSelector()
    for port in map(int, sys.argv[2:]):
        # one dual-stack socket per protocol: IPv4 clients appear as ::ffff:a.b.c.d
        t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        t.bind(("::", port))
        t.listen(512)
        t.setblocking(False)
        sel.register(t, selectors.EVENT_READ, "tcp")
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        u.bind(("::", port))
        sel.register(u, selectors.EVENT_READ, "udp")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if key.data == "tcp":
                try:
                    c, peer = s.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                try:
                    c.send(name + b" " + plain(peer[0]) + b"\n")
                except OSError:
                    c.close()
                    continue
                sel.register(c, selectors.EVENT_READ, "conn")
            elif key.data == "udp":
                data, peer = s.recvfrom(65536)
                answer = name + b" " + plain(peer[0])
                if len(data) > BIG:
                    # as long as the question, so that it comes back in fragments too
                    answer += b" len=%d " % len(data)
                    answer += b"x" * max(0, len(data) - len(answer) - 1)
                s.sendto(answer + b"\n", peer)
            else:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    s.close()
                else:
                    try:
                        s.send(data)
                    except OSError:
                        pass


if __name__ == "__main__":
    main()
