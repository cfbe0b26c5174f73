#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Client side of the network-namespace tests, run inside a namespace.
  client.py tcp HOST PORT COUNT   one connection each; prints the pod's answer, or
                                  "ERR <reason> <seconds>"
  client.py udp HOST PORT COUNT   one datagram each from one socket; same output
  client.py hold HOST PORT        connects, prints the answer, then for each line on
                                  stdin sends it and prints the echo
  client.py ping HOST COUNT       ICMP echo (raw socket): "reply ttl=N" per answer, or
                                  "ERR timeout"
  client.py ping6 HOST COUNT      ICMPv6 echo: "reply hlim=N" per answer, or "ERR timeout"
  client.py udpfrom HOST PORT COUNT  as udp, and each answer ends with " from ADDR:PORT",
                                  where the reply came from
  client.py udpbig HOST PORT SIZE COUNT  one datagram of SIZE bytes each (fragments, past
                                  the MTU); prints the answer's first two words, its
                                  "len=N" and "got=BYTES", or "ERR <reason> <seconds>"
  client.py fraglater HOST PORT   one later fragment of a UDP datagram whose first is
                                  never sent (raw socket); prints "sent"
  client.py sctpinit HOST PORT SPORT  an SCTP INIT from port SPORT (raw socket: no SCTP in
                                  the kernel needed); prints the answer as
                                  "from ADDR:PORT to PORT tag=T crc=ok|bad", or "ERR timeout"
  client.py sctpanswer [6]        prints "listening", waits for one SCTP packet, prints it as
                                  "from ADDR:PORT to ADDR:PORT tag=T crc=ok|bad" and answers
                                  it from its destination port with an INIT ACK
  client.py udphold HOST PORT     for each line on stdin, one datagram from one socket
                                  (one conntrack entry); prints each answer
  client.py conns HOST PORT       many held TCP connections, one command per stdin line,
                                  one answer line each:
                                    open       -> "ID ANSWER" (the pod's first line) or
                                                  "ID ERR <reason> <seconds>"
                                    send ID X  -> the echo of X, or "ERR <reason>"
                                    close ID   -> "closed ID" (orderly close, FIN)
                                    reset ID   -> "reset ID" (close with RST: SO_LINGER 0)
Every operation has a 2 s time-out; KP_SRC=ADDR binds TCP clients to ADDR."""
import os
import socket
import struct
import sys
import time

TIMEOUT = 2.0


SOURCE = (os.environ["KP_SRC"], 0) if os.environ.get("KP_SRC") else None


def tcp_once(host, port):
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT,
                                      source_address=SOURCE) as s:
            return s.makefile().readline().strip() or "ERR empty 0"
    except OSError as e:
        reason = type(e).__name__ if not e.errno else {111: "refused", 113: "unreachable"}.get(
            e.errno, "errno%d" % e.errno)
        return "ERR %s %.3f" % (reason, time.monotonic() - start)


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ping(host, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xffff
    for seq in range(count):
        payload = b"kproxyd-ping-%d" % seq
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + payload), ident, seq) + payload
        s.sendto(pkt, (host, 0))
        end = time.monotonic() + TIMEOUT
        answer = "ERR timeout"
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, peer = s.recvfrom(2048)
            except OSError:
                break
            ihl = (data[0] & 0xf) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if peer[0] == host and typ == 0 and rid == ident and rseq == seq:
                answer = "reply ttl=%d" % data[8]
                break
        print(answer, flush=True)


def ping6(host, count):
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    ident = os.getpid() & 0xffff
    for seq in range(count):
        # the kernel fills in an ICMPv6 raw socket's checksum
        s.sendto(struct.pack("!BBHHH", 128, 0, 0, ident, seq) + b"kproxyd-ping-%d" % seq,
                 (host, 0))
        end = time.monotonic() + TIMEOUT
        answer = "ERR timeout"
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, anc, _, peer = s.recvmsg(2048, 64)
            except OSError:
                break
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
            if peer[0] == host and typ == 129 and rid == ident and rseq == seq:
                hlim = [struct.unpack("i", d)[0] for lvl, t, d in anc
                        if lvl == socket.IPPROTO_IPV6 and t == socket.IPV6_HOPLIMIT]
                answer = "reply hlim=%d" % (hlim[0] if hlim else -1)
                break
        print(answer, flush=True)


def crc32c(b):
    """SCTP's checksum (RFC 4960 appendix B), the field's bytes as the packet holds them."""
    crc = 0xffffffff
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return struct.pack("<I", crc ^ 0xffffffff)


def sctp(sport, dport, tag, chunk):
    """An SCTP packet: common header with its checksum, then @chunk."""
    head = struct.pack("!HHI", sport, dport, tag)
    return head + crc32c(head + b"\0\0\0\0" + chunk) + chunk


def sctp_read(s):
    """(src, sport, dst, dport, tag, crc ok) of the next SCTP packet on raw socket @s. An
    IPv6 raw socket hands the packet without its header: dst is then "" (the packet was
    delivered here, so it was to one of this namespace's addresses)."""
    data, peer = s.recvfrom(65536)
    if s.family == socket.AF_INET6:
        p, src, dst = data, "[%s]" % peer[0], ""
    else:
        p = data[(data[0] & 15) * 4:]
        src, dst = socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20])
    sport, dport, tag = struct.unpack("!HHI", p[:8])
    good = crc32c(p[:8] + b"\0\0\0\0" + p[12:]) == p[8:12]
    return src, sport, dst, dport, tag, "ok" if good else "bad"


def sctp_mode(mode):
    v6 = ":" in sys.argv[2] if mode == "sctpinit" else sys.argv[2:3] == ["6"]
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                      socket.IPPROTO_SCTP)
    s.settimeout(TIMEOUT)
    try:
        if mode == "sctpinit":
            host, port, sport = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
            # INIT: type 1, length 20, initiate tag, a_rwnd, streams out/in, initial TSN
            s.sendto(sctp(sport, port, 0, struct.pack("!BBHIIHHI", 1, 0, 20, 0x6b70, 65536,
                                                      1, 1, 1)), (host, 0))
            src, sp, _, dp, tag, good = sctp_read(s)
            print("from %s:%d to %d tag=%#x crc=%s" % (src, sp, dp, tag, good), flush=True)
        else:
            print("listening", flush=True)
            s.settimeout(3 * TIMEOUT)
            src, sp, dst, dp, tag, good = sctp_read(s)
            print("from %s:%d to %s:%d tag=%#x crc=%s" % (src, sp, dst, dp, tag, good),
                  flush=True)
            # INIT ACK: type 2, to the INIT's initiate tag
            s.sendto(sctp(dp, sp, 0x6b70, struct.pack("!BBHIIHHI", 2, 0, 20, 0x7070, 65536,
                                                      1, 1, 1)), (src.strip("[]"), 0))
    except OSError as e:
        print("ERR %s" % type(e).__name__, flush=True)


def main():
    if sys.argv[1] in ("sctpinit", "sctpanswer"):
        sctp_mode(sys.argv[1])
        return 0
    if sys.argv[1] in ("ping", "ping6"):
        (ping if sys.argv[1] == "ping" else ping6)(sys.argv[2], int(sys.argv[3]))
        return 0
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "tcp":
        for _ in range(int(sys.argv[4])):
            print(tcp_once(host, port), flush=True)
    elif mode in ("udp", "udpfrom"):
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(TIMEOUT)
        for i in range(int(sys.argv[4])):
            start = time.monotonic()
            try:
                s.sendto(b"q%d" % i, (host, port))
                data, peer = s.recvfrom(2048)
                print(data.decode().strip() + (" from %s:%d" % peer[:2] if mode == "udpfrom"
                                               else ""), flush=True)
            except OSError as e:
                print("ERR %s %.3f" % (type(e).__name__, time.monotonic() - start), flush=True)
    elif mode == "udpbig":
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(TIMEOUT)
        size = int(sys.argv[4])
        for i in range(int(sys.argv[5])):
            start = time.monotonic()
            try:
                q = b"q%d " % i
                s.sendto(q + b"y" * (size - len(q)), (host, port))
                data = s.recv(65536)
                print("%s got=%d" % (" ".join(data.decode().split()[:3]), len(data)),
                      flush=True)
            except OSError as e:
                print("ERR %s %.3f" % (type(e).__name__, time.monotonic() - start), flush=True)
    elif mode == "fraglater":
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s.connect((host, port))
        src = socket.inet_aton(s.getsockname()[0])
        body = b"z" * 64
        # offset 1480 bytes (185 units), no more fragments, protocol UDP, id 0x4b50
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0x4b50, 185, 64, 17, 0,
                          src, socket.inet_aton(host))
        s.send(hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + body)
        print("sent", flush=True)
    elif mode == "conns":
        conns = {}
        for line in sys.stdin:
            cmd = line.split(" ", 2)
            op = cmd[0].strip()
            if op == "open":
                cid = len(conns) + 1
                start = time.monotonic()
                try:
                    c = socket.create_connection((host, port), timeout=TIMEOUT,
                                                 source_address=SOURCE)
                    conns[cid] = (c, c.makefile("rw"))
                    print("%d %s" % (cid, conns[cid][1].readline().strip() or "ERR empty 0"),
                          flush=True)
                except OSError as e:
                    conns[cid] = None
                    print("%d ERR %s %.3f" % (cid, type(e).__name__,
                                              time.monotonic() - start), flush=True)
            elif op == "send":
                c = conns.get(int(cmd[1]))
                try:
                    c[1].write(cmd[2].strip() + "\n")
                    c[1].flush()
                    print(c[1].readline().strip() or "ERR closed", flush=True)
                except (OSError, TypeError) as e:
                    print("ERR %s" % type(e).__name__, flush=True)
            elif op in ("close", "reset"):
                c = conns.get(int(cmd[1]))
                if c:
                    if op == "reset":
                        c[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                    c[1].close()
                    c[0].close()
                    conns[int(cmd[1])] = None
                print("%s %s" % ("closed" if op == "close" else "reset", cmd[1].strip()),
                      flush=True)
    elif mode == "hold":
        with socket.create_connection((host, port), timeout=TIMEOUT,
                                      source_address=SOURCE) as s:
            f = s.makefile("rw")
            print(f.readline().strip(), flush=True)
            for line in sys.stdin:
                try:
                    f.write(line)
                    f.flush()
                    print(f.readline().strip() or "ERR closed", flush=True)
                except OSError as e:
                    print("ERR %s" % type(e).__name__, flush=True)
    elif mode == "udphold":
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(TIMEOUT)
        for line in sys.stdin:
            try:
                s.sendto(line.encode(), (host, port))
                print(s.recv(2048).decode().strip(), flush=True)
            except OSError as e:
                print("ERR %s" % type(e).__name__, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
