#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad clients of kproxyd's control socket and HTTP ports (issue 16 items 6 and 7).

Starts kproxyd --dry-run on a manifest directory with one externalTrafficPolicy Local
service (so a health-check node port is open too), then sends each listener garbage, a
10 MiB request, a client that sends half a request and stalls, and 1,000 clients at
once, and checks that kproxyd keeps answering `kproxyctl status` and GET /healthz within
PROMPT seconds while the slow clients are still connected, that its RSS grew by less than
RSS_BOUND and its open descriptors come back to where they were, and that the control
socket is 0600 and refuses a peer that is not root (SO_PEERCRED). Loopback only; every
loop is bounded in count and time. Prints TAP.
"""
import json
import os
import resource
import select
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "netns"))
import kptest  # noqa: E402
from kptest import free_port, sanitized  # noqa: E402

TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
KPROXYD = os.path.join(TOP_BUILD, "proxy", "kproxyd")
KPROXYCTL = os.path.join(TOP_BUILD, "cli", "kproxyctl")
DEADLINE = 10.0		# for anything that should happen at all
PROMPT = 2.0		# for an answer while bad clients are connected (a shared, noisy machine)
SERVER_TIMEOUT = 2.0	# kproxyd's per-client time-out (REQUEST_TIMEOUT_MS, TIMEOUT_MS)
RSS_BOUND = 20 * 1024	# KiB
N_CLIENTS = 1000
BIG = 10 * 1024 * 1024
NOBODY = 65534
BASE = tempfile.mkdtemp(prefix="kp-test-badclients-")



TAP = kptest.Tap(40)
ok = TAP.ok


def daemon_env():
    """In a sanitizer build ASan keeps up to 256 MiB of freed blocks in quarantine, which
    the RSS bounds below would count as kproxyd's; its kproxyd keeps 4 MiB of them (recent
    frees are still caught when used) and the bounds stay the same."""
    env = dict(os.environ)
    if sanitized():
        env["ASAN_OPTIONS"] = ":".join(filter(None, (env.get("ASAN_OPTIONS", ""),
                                                     "quarantine_size_mb=4")))
    return env



HC_PORT = free_port()
MANIFEST = """apiVersion: v1
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
  nodeName: node-a
""" % HC_PORT


class Daemon:
    def __init__(self, mdir, name="kproxyd", nofile=None):
        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.sockdir = tempfile.mkdtemp(prefix="sock-", dir=BASE)
        self.sock = os.path.join(self.sockdir, "kproxyd.sock")
        self.log = open(os.path.join(BASE, name + ".log"), "w")
        self.proc = subprocess.Popen(
            [KPROXYD, "--dry-run", "--manifests", mdir, "--control-socket", self.sock,
             "--hostname-override", "node-a", "--min-sync-period", "50ms",
             "--nodeport-addresses", "127.0.0.0/8", "--v", "2",
             "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0"],
            stdout=self.log, stderr=self.log, preexec_fn=limit, env=daemon_env())
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)

    def status(self):
        """(seconds, parsed status or None, stderr)"""
        t = time.monotonic()
        try:
            r = subprocess.run([KPROXYCTL, "--socket", self.sock, "status", "-o", "json"],
                               capture_output=True, text=True, timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            return DEADLINE, None, "timed out"
        dt = time.monotonic() - t
        try:
            return dt, (json.loads(r.stdout) if r.returncode == 0 else None), r.stderr
        except ValueError:
            return dt, None, r.stdout

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


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def n_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def http(addr, path, timeout=DEADLINE):
    """(seconds, status code or 0, body) of GET path from "host:port"."""
    host, port = addr.rsplit(":", 1)
    t = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            data = recv_all(s, timeout)
    except OSError as e:
        return time.monotonic() - t, 0, str(e)
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return time.monotonic() - t, code, body.decode(errors="replace")


def recv_all(s, timeout, limit=1 << 20):
    """What the peer sends until it closes, the time-out or @limit bytes."""
    s.settimeout(timeout)
    end = time.monotonic() + timeout
    data = b""
    while len(data) < limit and time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def connect(target):
    """A blocking client of target: a unix path or a "host:port"."""
    if target.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(DEADLINE)
        s.connect(target)
        return s
    host, port = target.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=DEADLINE)


def one_shot(target, payload, half_close=True):
    """Sends payload (closing our side) and returns what comes back."""
    try:
        s = connect(target)
    except OSError as e:
        return ("connect: %s" % e).encode()
    with s:
        try:
            s.sendall(payload)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return recv_all(s, DEADLINE)


def big_request(target, first):
    """Sends first and then 10 MiB without a line end from a thread while reading the
    answer: (answer, seconds)."""
    s = connect(target)
    stop = threading.Event()

    def sender():
        chunk = b"x" * 65536
        try:
            s.sendall(first)
            for _ in range(BIG // len(chunk)):
                if stop.is_set():
                    break
                s.sendall(chunk)
        except OSError:
            pass

    t0 = time.monotonic()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    data = recv_all(s, DEADLINE)
    dt = time.monotonic() - t0
    stop.set()
    s.close()
    th.join(DEADLINE)
    return data, dt


def many(target, n, payload):
    """Opens n non-blocking clients of target at once, each sending payload (maybe half a
    request) and stalling. Returns (sockets, connected, refused)."""
    socks, connected, refused = [], 0, 0
    for _ in range(n):
        if target.startswith("/"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = target
        else:
            host, port = target.rsplit(":", 1)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            addr = (host, int(port))
        s.setblocking(False)
        try:
            s.connect(addr)
            connected += 1
        except (BlockingIOError, InterruptedError):
            connected += 1		# TCP: in progress
        except OSError:
            refused += 1
            s.close()
            continue
        socks.append(s)
    # TCP connects finish in the kernel's backlog; send the payload where they did
    _, writable, _ = select.select([], socks, [], 1.0) if socks else ([], [], [])
    for s in writable:
        try:
            s.send(payload)
        except OSError:
            pass
    return socks, connected, refused


def close_all(socks):
    for s in socks:
        s.close()


def wait_fds(pid, want):
    end = time.monotonic() + SERVER_TIMEOUT + DEADLINE
    n = n_fds(pid)
    while time.monotonic() < end:
        n = n_fds(pid)
        if n <= want:
            break
        time.sleep(0.05)
    return n


def prompt_checks(d, st, what):
    """kproxyctl status and GET /healthz (both ports) answer within PROMPT."""
    dt, s, err = d.status()
    ok(s is not None and dt < PROMPT, "%s: kproxyctl status answers in %.2f s (< %.1f)"
       % (what, dt, PROMPT), err)
    dt, code, body = http(st["healthz_address"], "/healthz")
    ok(code == 200 and dt < PROMPT, "%s: GET /healthz answers 200 in %.2f s" % (what, dt),
       (code, body))
    dt, code, body = http(st["metrics_address"], "/metrics")
    ok(code == 200 and "kubeproxy_sync_proxy_rules_duration_seconds" in body and dt < PROMPT,
       "%s: GET /metrics answers in %.2f s" % (what, dt), (code, body[:200]))
    dt, code, body = http("127.0.0.1:%d" % HC_PORT, "/healthz")
    ok(code == 200 and dt < PROMPT, "%s: the health check node port answers in %.2f s"
       % (what, dt), (code, body))


def test_garbage(d, st):
    ans = one_shot(d.sock, b"\x00\xff\xfe garbage \x01\n")
    ok(b'"error"' in ans, "control socket: garbage gets an error line", ans)
    ans = one_shot(d.sock, b"no newline and then EOF")
    ok(b"unknown request" in ans, "control socket: a request cut by EOF gets an error", ans)
    ans, dt = big_request(d.sock, b"status")
    ok(b"request longer than 4096 bytes" in ans and dt < DEADLINE,
       "control socket: a 10 MiB line is refused with an error in %.2f s" % dt, ans[:200])
    for name, addr in (("healthz", st["healthz_address"]), ("metrics", st["metrics_address"]),
                       ("health check node port", "127.0.0.1:%d" % HC_PORT)):
        ans = one_shot(addr, b"\x00\x01\x02\xff\r\n\r\n")
        ok(ans.startswith(b"HTTP/1.1 400") or
           (name == "health check node port" and ans.startswith(b"HTTP/1.1 200")),
           "%s: garbage gets an HTTP answer, not a hang" % name, ans[:200])
        ans, dt = big_request(addr, b"GET /healthz HTTP/1.1\r\nX-Big: ")
        ok(ans.startswith(b"HTTP/1.1 431"), "%s: a 10 MiB header gets 431 in %.2f s"
           % (name, dt), ans[:200])


def test_slow(d, st):
    targets = (("control socket", d.sock, b"sta"),
               ("healthz", st["healthz_address"], b"GET /hea"),
               ("metrics", st["metrics_address"], b"GET /met"),
               ("health check node port", "127.0.0.1:%d" % HC_PORT, b"GET /"))
    slow = []
    for name, target, half in targets:
        s = connect(target)
        s.sendall(half)
        slow.append((name, s))
    t0 = time.monotonic()
    prompt_checks(d, st, "4 slow clients connected")
    ok(time.monotonic() - t0 < SERVER_TIMEOUT,
       "the slow clients were still connected during those checks (%.2f s)"
       % (time.monotonic() - t0))
    for name, s in slow:
        data = recv_all(s, SERVER_TIMEOUT + DEADLINE)
        dt = time.monotonic() - t0
        ok(data == b"" and dt < SERVER_TIMEOUT + PROMPT,
           "%s: kproxyd closes a stalled client after its %.0f s (%.2f s)"
           % (name, SERVER_TIMEOUT, dt), data[:200])
        s.close()


def test_many(d, st, rss0):
    for name, target, payload in (("control socket", d.sock, b"st"),
                                  ("healthz", st["healthz_address"], b"GET /"),
                                  ("metrics", st["metrics_address"], b"GET /"),
                                  ("health check node port", "127.0.0.1:%d" % HC_PORT, b"GE")):
        t0 = time.monotonic()
        socks, connected, refused = many(target, N_CLIENTS, payload)
        ok(connected + refused == N_CLIENTS and time.monotonic() - t0 < DEADLINE,
           "%s: %d clients at once (%d connected, %d refused by the backlog)"
           % (name, N_CLIENTS, connected, refused))
        prompt_checks(d, st, "%s with %d stalled clients" % (name, len(socks)))
        rss = vm_rss(d.proc.pid)
        ok(rss - rss0 < RSS_BOUND, "%s: RSS %d KiB, %+d KiB from the start (bound %d)" % (
            name, rss, rss - rss0, RSS_BOUND))
        close_all(socks)


def test_peer(d):
    mode = stat.S_IMODE(os.stat(d.sock).st_mode)
    ok(mode == 0o600, "the control socket is 0600 (%o)" % mode)
    if os.geteuid() != 0:
        ok(True, "# SKIP not root: cannot run a client as another user")
        return

    def as_nobody(loosen):
        """Connects as uid NOBODY in a child: what it got back, or the error."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                out = one_shot(d.sock, b"status\n")
            except BaseException as e:		# noqa: B036: the child must report and exit
                out = ("error: %s" % e).encode()
            os.write(w, out[:4096])
            os._exit(0)
        os.close(w)
        out = b""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            rl, _, _ = select.select([r], [], [], 0.2)
            if rl:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                out += chunk
        os.close(r)
        os.waitpid(pid, 0)
        return out

    out = as_nobody(False)
    ok(b"Permission denied" in out or b"connect:" in out,
       "uid %d cannot connect through the 0600 socket" % NOBODY, out)
    old_dir, old_base = os.stat(d.sockdir).st_mode, os.stat(BASE).st_mode
    os.chmod(BASE, 0o755)
    os.chmod(d.sockdir, 0o755)
    os.chmod(d.sock, 0o666)
    try:
        out = as_nobody(True)
    finally:
        os.chmod(d.sock, 0o600)
        os.chmod(d.sockdir, stat.S_IMODE(old_dir))
        os.chmod(BASE, stat.S_IMODE(old_base))
    try:
        ans = json.loads(out)
    except ValueError:
        ans = {}
    ok("permission denied" in ans.get("error", "") and "services" not in out.decode(errors="replace"),
       "uid %d on a loosened socket is refused by SO_PEERCRED with an error line" % NOBODY, out)


def test_starved():
    """kproxyd out of descriptors (RLIMIT_NOFILE 48) with 100 clients waiting: it refuses
    them without spinning, says so once, and serves again when they go."""
    mdir = tempfile.mkdtemp(prefix="empty-", dir=BASE)
    d = Daemon(mdir, name="kproxyd-starved", nofile=48)
    try:
        st = None
        end = time.monotonic() + DEADLINE
        while st is None and time.monotonic() < end and d.proc.poll() is None:
            _, st, _ = d.status()
        if not ok(st is not None, "a kproxyd limited to 48 descriptors starts", d.logtext()):
            return
        socks, connected, _ = many(d.sock, 100, b"st")
        c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
        time.sleep(1.0)		# a window to measure CPU time in, not a synchronisation
        used = cpu_seconds(d.proc.pid) - c0
        wall = time.monotonic() - t0
        ok(used < 0.5 * wall, "out of descriptors with %d clients waiting: %.2f s of CPU in "
           "%.2f s (no busy loop)" % (connected, used, wall))
        close_all(socks)
        st = None
        end = time.monotonic() + DEADLINE + SERVER_TIMEOUT
        while st is None and time.monotonic() < end:
            _, st, _ = d.status()
            if st is None:
                time.sleep(0.1)
        ok(st is not None, "it serves kproxyctl status again when the clients are gone")
        log = d.logtext()
        n = log.count("control socket: out of file descriptors")
        ok(n == 1, "running out of descriptors is logged once (%d times)" % n, log[-2000:])
    finally:
        d.stop()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < N_CLIENTS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < N_CLIENTS + 200:
        print("1..0 # SKIP cannot open %d descriptors" % N_CLIENTS)
        return 77
    mdir = tempfile.mkdtemp(prefix="m-", dir=BASE)
    with open(os.path.join(mdir, "lb.yaml"), "w") as f:
        f.write(MANIFEST)
    d = Daemon(mdir)
    try:
        st = None
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            _, st, _ = d.status()
            code = http("127.0.0.1:%d" % HC_PORT, "/")[1] if st else 0
            if st and code == 200:
                break
            time.sleep(0.05)
        if not ok(st is not None and code == 200, "kproxyd serves status and its node port",
                  d.logtext()):
            return 1
        with open("/proc/%d/comm" % d.proc.pid) as f:
            comm = f.read().strip()
        if not ok("kproxyd" in comm, "the measured process is kproxyd (%s)" % comm):
            return 1
        rss0, fds0 = vm_rss(d.proc.pid), n_fds(d.proc.pid)
        test_peer(d)
        test_garbage(d, st)
        test_slow(d, st)
        test_many(d, st, rss0)
        n = wait_fds(d.proc.pid, fds0)
        ok(n <= fds0, "open descriptors back to %d after the clients went (%d)" % (fds0, n),
           os.listdir("/proc/%d/fd" % d.proc.pid))
        log = d.logtext()
        for name in ("control socket", "healthz server", "metrics server",
                     "health check node ports"):
            n = log.count("%s: 64 clients at once" % name)
            ok(n == 1, "%s: the burst is logged once (%d times)" % (name, n),
               [line for line in log.splitlines() if name in line][:10])
            ok("%s: burst over" % name in log, "%s: the burst's end is logged" % name)
        ok(d.proc.poll() is None, "kproxyd is still running", log[-2000:])
    finally:
        d.stop()
    test_starved()
    return 0


if __name__ == "__main__":
    rc = main()
    sys.exit(TAP.done() or rc)
