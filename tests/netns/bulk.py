#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Bulk transfers and many connections for the network-namespace tests.
  bulk.py serve PORT            in a pod: per connection, one request line:
                                  "SEND N SEED" -> N bytes of the SEED stream, then close
                                  "RECV N"      -> reads N bytes, answers "<sha256>\\n"
                                  "DRAIN"       -> reads until the client's end of
                                                   stream, then answers "<bytes> <sha256>\\n"
                                  "HELLO"       -> answers "NAME\\n" and keeps the
                                                   connection open until the client closes
                                prints "ready" once listening (NAME from $POD)
  bulk.py get HOST PORT N SEED  downloads N bytes; prints "ok SHA" if they are the SEED
                                stream, else "bad <bytes received> <sha256>"
  bulk.py put HOST PORT N SEED  uploads N bytes of the SEED stream; prints "ok SHA" when
                                the server's digest matches, else "bad ..."
  bulk.py half HOST PORT N SEED uploads N bytes, half-closes (shutdown SHUT_WR) and reads
                                the server's answer, which it sends only after the end of
                                stream: prints "ok SHA" when bytes and digest match
  bulk.py slow HOST PORT N SEED asks for N bytes, prints "waiting", reads nothing until a
                                line arrives on stdin, then reads it all: "ok SHA" / "bad"
  bulk.py many HOST PORT N      opens N connections at once (all held open), says HELLO on
                                each, prints "opened K answered M names=a:x,b:y" then
                                closes them all
The SEED stream: random.Random(SEED).randbytes in 64 KiB blocks. Every wait is bounded
(60 s for transfers, 20 s for "many")."""
import hashlib
import os
import random
import resource
import selectors
import socket
import sys
import threading
import time

BLOCK = 65536


def stream(n, seed):
    rnd = random.Random(seed)
    while n > 0:
        b = rnd.randbytes(min(BLOCK, n))
        n -= len(b)
        yield b


def serve_one(c, name):
    with c:
        c.settimeout(60)
        f = c.makefile("rb")
        line = f.readline().decode().split()
        if not line:
            return
        if line[0] == "SEND":
            for b in stream(int(line[1]), int(line[2])):
                c.sendall(b)
        elif line[0] == "RECV":
            left, h = int(line[1]), hashlib.sha256()
            while left > 0:
                b = f.read1(min(left, BLOCK))
                if not b:
                    break
                h.update(b)
                left -= len(b)
            c.sendall((h.hexdigest() + "\n").encode())
        elif line[0] == "DRAIN":
            total, h = 0, hashlib.sha256()
            while True:
                b = f.read1(BLOCK)
                if not b:
                    break
                h.update(b)
                total += len(b)
            c.sendall(("%d %s\n" % (total, h.hexdigest())).encode())
        elif line[0] == "HELLO":
            c.sendall((name + "\n").encode())
            while c.recv(4096):
                pass


def serve(port):
    name = os.environ.get("POD", "pod")
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(4096)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_one, args=(c, name), daemon=True).start()


def connect(host, port, timeout):
    return socket.create_connection((host, port), timeout=timeout)


def receive(c, n, seed):
    """Reads @c to its end: "ok SHA" if it carried the SEED stream's N bytes, else "bad"."""
    want, got, count = hashlib.sha256(), hashlib.sha256(), 0
    for b in stream(n, seed):
        want.update(b)
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        got.update(b)
        count += len(b)
    if count == n and got.digest() == want.digest():
        return "ok " + got.hexdigest()
    return "bad %d %s" % (count, got.hexdigest())


def get(host, port, n, seed):
    with connect(host, port, 60) as c:
        c.sendall(b"SEND %d %d\n" % (n, seed))
        return receive(c, n, seed)


def put(host, port, n, seed):
    want = hashlib.sha256()
    with connect(host, port, 60) as c:
        c.sendall(b"RECV %d\n" % n)
        for b in stream(n, seed):
            want.update(b)
            c.sendall(b)
        answer = c.makefile("rb").readline().decode().strip()
    return ("ok " if answer == want.hexdigest() else "bad ") + answer


def half(host, port, n, seed):
    want = hashlib.sha256()
    with connect(host, port, 60) as c:
        c.sendall(b"DRAIN\n")
        for b in stream(n, seed):
            want.update(b)
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)
        answer = c.makefile("rb").readline().decode().strip()
    return ("ok " if answer == "%d %s" % (n, want.hexdigest()) else "bad ") + answer


def slow(host, port, n, seed):
    with connect(host, port, 60) as c:
        c.sendall(b"SEND %d %d\n" % (n, seed))
        print("waiting", flush=True)
        sys.stdin.readline()
        return receive(c, n, seed)


def many(host, port, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 256)), hard))
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sel = selectors.DefaultSelector()
    socks, names, opened = [], {}, 0
    for _ in range(n):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, "connecting")
    deadline = time.monotonic() + 20
    pending = n
    bufs = {}
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            if key.data == "connecting":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sel.unregister(s)
                    pending -= 1
                    continue
                opened += 1
                try:
                    s.send(b"HELLO\n")
                except OSError:
                    sel.unregister(s)
                    pending -= 1
                    continue
                sel.modify(s, selectors.EVENT_READ, "hello")
            else:
                try:
                    b = s.recv(256)
                except OSError:
                    b = b""
                bufs[s] = bufs.get(s, b"") + b
                if not b or b"\n" in bufs[s]:
                    sel.unregister(s)
                    pending -= 1
                    if b"\n" in bufs[s]:
                        nm = bufs[s].split(b"\n")[0].decode()
                        names[nm] = names.get(nm, 0) + 1
    answered = sum(names.values())
    for s in socks:
        s.close()
    return "opened %d answered %d names=%s" % (
        opened, answered, ",".join("%s:%d" % kv for kv in sorted(names.items())))


def main():
    mode = sys.argv[1]
    if mode == "serve":
        serve(int(sys.argv[2]))
    elif mode == "get":
        print(get(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    elif mode == "put":
        print(put(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    elif mode == "half":
        print(half(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    elif mode == "slow":
        print(slow(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    elif mode == "many":
        print(many(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as e:
        print("bad %s" % e)
        sys.exit(1)
