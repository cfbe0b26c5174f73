#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""No secret in any log, dump or metric: kproxyd --v 10 (its most verbose) against the
test API server (tests/api/fakeapi.py) with each kind of credential a kubeconfig carries
(an inline bearer token, a tokenFile, a client certificate and key inline and as files),
made to fail too (the server's token changes: 401s; a kubeconfig whose token or key is
bad). Its log, `kproxyctl status` and `kproxyctl dump` (text and JSON), /metrics,
/configz, /healthz and /proxyMode are searched for the tokens and for the key's material
(the PEM body lines, the base64 of the file as the kubeconfig holds it). Every wait is
bounded. Run: top_builddir=build python3 tests/api/test-secrets.py; prints TAP."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeapi  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "netns"))
import kptest  # noqa: E402

TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
KPROXYD = os.path.join(TOP_BUILD, "proxy", "kproxyd")
KPROXYCTL = os.path.join(TOP_BUILD, "cli", "kproxyctl")
DEADLINE = 15.0
BASE = tempfile.mkdtemp(prefix="kp-test-secrets-")
# distinctive strings, so a hit is a leak and not a coincidence
TOKEN = "kp-secret-token-7d1f0c9e4b2a"
FILE_TOKEN = "kp-secret-filetoken-93a5e8c1"
ROTATED = "kp-secret-rotated-5b0e2f17"
PASSWORD = "kp-secret-urlpassword-4e8a"


TAP = kptest.Tap(30, tail=True)
ok = TAP.ok


def wait_until(fn, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.05)
    return False


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()
    except OSError as e:
        return "(%s: %s)" % (url, e)


class Daemon:
    def __init__(self, kcfg):
        d = tempfile.mkdtemp(dir=BASE)
        self.sock = os.path.join(d, "k.sock")
        self.logname = os.path.join(d, "kproxyd.log")
        with open(self.logname, "w") as log:
            self.proc = subprocess.Popen(
                [KPROXYD, "--dry-run", "--kubeconfig", kcfg, "--control-socket", self.sock,
                 "--hostname-override", "node-a", "--min-sync-period", "50ms", "--v", "10",
                 "--healthz-bind-address", "127.0.0.1:0",
                 "--metrics-bind-address", "127.0.0.1:0"], stdout=log, stderr=log)

    def ctl(self, *args):
        r = subprocess.run([KPROXYCTL, "--socket", self.sock, *args], capture_output=True,
                           text=True, timeout=DEADLINE)
        return r.stdout + r.stderr

    def converged(self):
        try:
            return any(e["service"] == "t/web" for e in
                       json.loads(self.ctl("dump", "-o", "json"))["entries"])
        except (ValueError, KeyError):
            return False

    def log(self):
        with open(self.logname) as f:
            return f.read()

    def everything(self):
        """Every output kproxyd offers, as {name: text}; then it is stopped."""
        out = {"status": self.ctl("status"), "status -o json": self.ctl("status", "-o", "json"),
               "dump": self.ctl("dump"), "dump -o json": self.ctl("dump", "-o", "json")}
        try:
            st = json.loads(out["status -o json"])
        except ValueError:
            st = {}
        for key, paths in (("metrics_address", ("/metrics", "/configz", "/proxyMode",
                                                "/healthz")),
                           ("healthz_address", ("/healthz", "/livez"))):
            for p in paths:
                out[p + " (" + key + ")"] = http_get("http://%s%s" % (st.get(key), p))
        out["alive"] = "yes" if self.proc.poll() is None else ""
        self.proc.terminate()
        try:
            self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out["log"] = self.log()
        return out


def secrets(certs):
    """The strings that must appear nowhere: tokens, the client key's PEM body lines and
    its base64 as a kubeconfig's client-key-data carries it."""
    with open(certs["client.key"], "rb") as f:
        key = f.read()
    lines = [l for l in key.decode().splitlines() if l and not l.startswith("-----")]
    return [TOKEN, FILE_TOKEN, ROTATED, PASSWORD, base64.b64encode(key).decode()[:40]] + lines


def leaks(out, words):
    return ["%s: %r" % (name, w) for name, text in out.items() for w in words if w in text]


def seed(srv):
    srv.put("services", {"metadata": {"name": "web", "namespace": "t"},
                         "spec": {"clusterIP": "10.96.0.10",
                                  "ports": [{"name": "http", "port": 80}]}})
    srv.put("endpointslices", {
        "metadata": {"name": "web-1", "namespace": "t",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.244.1.2"], "conditions": {"ready": True}}]})


def run_case(srv, certs, desc, kc, fail=None):
    """kproxyd on @kc converges, then for a token the server's token changes so that it
    gets 401s (@fail "401"); or, with @fail a regular expression, it never converges and
    its log matches @fail (the error, awaited with a deadline). Then nothing secret in
    any output."""
    mark = len(srv.responses)
    d = Daemon(kc)
    if fail and fail != "401":
        seen = wait_until(lambda: re.search(fail, d.log(), re.M))
        ok(seen and not d.converged(), "%s: kproxyd fails, saying why" % desc,
           d.log()[-1500:])
    else:
        ok(wait_until(d.converged), "%s: kproxyd converges at --v 10" % desc, d.log()[-1500:])
    if fail == "401":
        mark = len(srv.responses)
        good = srv.token
        srv.token = ROTATED
        srv.wait_watch("services")
        srv.inject("drop")
        got = wait_until(lambda: any(c == 401 for _, _, c in srv.responses[mark:]) and
                         "HTTP 401" in d.log())
        ok(got, "%s: the server's token changed: kproxyd gets a 401 and logs it" % desc,
           d.log()[-1500:])
        srv.token = good
    out = d.everything()
    alive = out.pop("alive")
    found = leaks(out, secrets(certs))
    ok(not found, "%s: no token, password or key material in the log, status, dump, "
       "/metrics, /configz, /healthz, /proxyMode (%d outputs, %d bytes of log)"
       % (desc, len(out), len(out["log"])), "\n".join(found))
    got = [name for name, text in out.items() if not text.strip() or text.startswith("(")]
    if alive:
        ok(not got, "%s: every output was read (%s)" % (desc, ", ".join(sorted(out))), got)
    else:
        ok(out["log"].strip(), "%s: kproxyd ended at start; its log was read" % desc, out)
    return out


def main():
    for exe in (KPROXYD, KPROXYCTL):
        if not os.access(exe, os.X_OK):
            print("Bail out! %s is not built" % exe)
            return 1
    if not shutil.which("openssl"):
        print("1..0 # SKIP openssl is missing (the test API server's certificates)")
        return 77
    srv = None
    try:
        certs = fakeapi.make_certs(BASE)
        srv = fakeapi.Server(certs)
        seed(srv)
        kc = lambda name, mode, **kw: fakeapi.kubeconfig(      # noqa: E731
            os.path.join(tempfile.mkdtemp(dir=BASE), name), srv.url, certs, mode, **kw)
        srv.token = TOKEN
        run_case(srv, certs, "an inline token", kc("kc", "token", token=TOKEN), "401")
        tf = os.path.join(BASE, "token")
        with open(tf, "w") as f:
            f.write(FILE_TOKEN + "\n")
        srv.token = FILE_TOKEN
        run_case(srv, certs, "a tokenFile", kc("kc", "tokenfile", token_file=tf), "401")
        run_case(srv, certs, "client certificate and key inline", kc("kc", "data"))
        run_case(srv, certs, "client certificate and key files", kc("kc", "files"))
        # a token the server does not take, from the start
        run_case(srv, certs, "a wrong inline token", kc("kc", "token", token=TOKEN),
                 r"HTTP 401 from the API server")
        # a token with a line break in it would split the header: refused, not echoed
        run_case(srv, certs, "an inline token holding CR LF",
                 kc("kc", "token", token=TOKEN + "\r\nX-Injected: 1"),
                 r"^E.*users\[0\]\.user\.token: user \"u\": byte %d is a space, control "
                 r"character or not ASCII" % len(TOKEN))
        bad_tf = os.path.join(BASE, "bad-token")
        with open(bad_tf, "w") as f:
            f.write(FILE_TOKEN + "\x01" + ROTATED + "\n")
        run_case(srv, certs, "a tokenFile holding a control character",
                 kc("kc", "tokenfile", token_file=bad_tf),
                 r"^W.*the token file %s: byte %d is a space, control" % (bad_tf,
                                                                          len(FILE_TOKEN)))
        # user:password@ in the server URL: refused without showing it
        pw = kc("kc", "data")
        with open(pw) as f:
            doc = json.load(f)
        doc["clusters"][0]["cluster"]["server"] = srv.url.replace(
            "://", "://kp-user:%s@" % PASSWORD)
        with open(pw, "w") as f:
            json.dump(doc, f)
        run_case(srv, certs, "a server URL with user:password@", pw,
                 r"^E.*the server URL holds a user name or password")
        # a kubeconfig that does not parse, the error next to the token
        broken = kc("kc", "token", token=TOKEN)
        with open(broken) as f:
            text = f.read()
        with open(broken, "w") as f:
            f.write(text.replace('"%s"' % TOKEN, '"%s", [' % TOKEN))
        run_case(srv, certs, "a kubeconfig that does not parse", broken,
                 r"^E.*--kubeconfig: .*not YAML or JSON")
        # a client key that is not a key
        bad = kc("kc", "data")
        with open(bad) as f:
            doc = json.load(f)
        raw = base64.b64decode(doc["users"][0]["user"]["client-key-data"])
        doc["users"][0]["user"]["client-key-data"] = base64.b64encode(
            raw.replace(b"-----BEGIN", b"-----BEGIN BROKEN")).decode()
        with open(bad, "w") as f:
            json.dump(doc, f)
        run_case(srv, certs, "a broken client-key-data", bad,
                 r"^W.*api: list services: unable to set private key")
    finally:
        if srv:
            srv.stop()
        shutil.rmtree(BASE, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
