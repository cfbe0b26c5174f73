#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A test API server: Services, EndpointSlices and Nodes over HTTPS, listed (with
limit/continue) and watched (chunked, newline-delimited JSON events) the way the
Kubernetes API server serves them, with faults a test can inject.

Certificates are made with openssl in a temporary directory: a CA, a server certificate
for 127.0.0.1 and localhost, a client certificate the CA signed (CN=system:kube-proxy),
and an unrelated CA. A request is allowed with a client certificate the CA signed or with
the bearer token Server.token; without either it gets 401.

Importable (Server, make_certs, kubeconfig) and runnable on its own for debugging:
    python3 tests/api/fakeapi.py [--dir DIR] [--port N] [--seed] [--self-test]
prints the URL, kubeconfig files and curl commands, then reads fault commands from stdin
("help" lists them)."""
import base64
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = "test-token-0123456789"
SELECTOR = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
RESOURCES = {   # path: (resource, list kind, kind, apiVersion)
    "/api/v1/services": ("services", "ServiceList", "Service", "v1"),
    "/apis/discovery.k8s.io/v1/endpointslices":
        ("endpointslices", "EndpointSliceList", "EndpointSlice", "discovery.k8s.io/v1"),
    "/api/v1/nodes": ("nodes", "NodeList", "Node", "v1"),
    "/apis/networking.k8s.io/v1/servicecidrs":
        ("servicecidrs", "ServiceCIDRList", "ServiceCIDR", "networking.k8s.io/v1"),
}
BY_RESOURCE = {v[0]: (path,) + v[1:] for path, v in RESOURCES.items()}
FAULTS = ("drop", "drop-midchunk", "err410", "bookmark", "garbage", "stall")


# ---- certificates and kubeconfigs ----

def make_certs(d):
    """Makes the CA, server, client and unrelated CA certificates in @d with openssl;
    returns {"ca.crt": path, ...}."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        run("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
            "-subj", "/CN=fakeapi " + ca)
    leaves = (("server", "/CN=localhost",
               "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
               "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"),
              ("client", "/O=system:node-proxier/CN=system:kube-proxy",
               "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"))
    for name, subj, ext in leaves:
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        run("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")
    return {k: os.path.join(d, k) for k in ("ca.crt", "ca.key", "other-ca.crt",
                                            "server.crt", "server.key", "client.crt",
                                            "client.key")}


def kubeconfig(path, server, certs, mode, token_file=None, ca="ca.crt", tls_name=None,
               token=TOKEN):
    """Writes a kubeconfig to @path and returns @path. @mode: "data" (inline *-data),
    "files" (copies next to it, named by relative paths), "token" (an inline token),
    "tokenfile" (@token_file), "none" (CA only). @ca: "ca.crt" or "other-ca.crt" (the
    wrong CA); @tls_name: the cluster's tls-server-name."""
    d = os.path.dirname(os.path.abspath(path))

    def b64(name):
        with open(certs[name], "rb") as f:
            return base64.b64encode(f.read()).decode()

    cluster = {"server": server}
    if tls_name:
        cluster["tls-server-name"] = tls_name
    user = {}
    if mode == "files":
        for name in (ca, "client.crt", "client.key"):
            with open(certs[name], "rb") as src, open(os.path.join(d, "f-" + name), "wb") as dst:
                dst.write(src.read())
        cluster["certificate-authority"] = "f-" + ca
        user = {"client-certificate": "f-client.crt", "client-key": "f-client.key"}
    else:
        cluster["certificate-authority-data"] = b64(ca)
        if mode == "data":
            user = {"client-certificate-data": b64("client.crt"),
                    "client-key-data": b64("client.key")}
        elif mode == "token":
            user = {"token": token}
        elif mode == "tokenfile":
            user = {"tokenFile": token_file}
        elif mode != "none":
            raise ValueError("kubeconfig mode " + mode)
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "current-context": "test",
           "clusters": [{"name": "c", "cluster": cluster}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)      # JSON is YAML too
    return path


# ---- selectors ----

def _split_terms(sel):
    terms, depth, cur = [], 0, ""
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur.strip())
    return terms


def parse_label_selector(sel):
    """A label selector as a list of (op, key, values); ValueError when malformed."""
    out = []
    for t in _split_terms(sel or ""):
        if " notin " in t or " in " in t:
            neg = " notin " in t
            key, rest = t.split(" notin " if neg else " in ", 1)
            rest = rest.strip()
            if not (rest.startswith("(") and rest.endswith(")")):
                raise ValueError("bad set term " + t)
            out.append(("notin" if neg else "in", key.strip(),
                        {v.strip() for v in rest[1:-1].split(",")}))
        elif "!=" in t:
            k, v = t.split("!=", 1)
            out.append(("!=", k.strip(), {v.strip()}))
        elif "==" in t or "=" in t:
            k, v = t.split("==" if "==" in t else "=", 1)
            out.append(("=", k.strip(), {v.strip()}))
        elif t.startswith("!"):
            out.append(("!", t[1:].strip(), None))
        else:
            out.append(("exists", t, None))
        if not out[-1][1] or any(c in out[-1][1] for c in " ()=!"):
            raise ValueError("bad label selector term %r" % t)
    return out


def label_match(terms, labels):
    for op, k, vals in terms:
        v = labels.get(k)
        if op == "exists" and k not in labels:
            return False
        if op == "!" and k in labels:
            return False
        if op in ("=", "in") and v not in vals:
            return False
        if op in ("!=", "notin") and v in vals:
            return False
    return True


def parse_field_selector(sel):
    out = []
    for t in _split_terms(sel or ""):
        neg = "!=" in t
        k, v = t.split("!=" if neg else ("==" if "==" in t else "="), 1)
        if k not in ("metadata.name", "metadata.namespace"):
            raise ValueError("field label not supported: " + k)
        out.append((neg, k.split(".")[1], v))
    return out


def field_match(terms, obj):
    md = obj.get("metadata", {})
    return all((md.get(k, "") != v) if neg else (md.get(k, "") == v) for neg, k, v in terms)


# ---- the server ----

class Server:
    """The API server. The test's knobs (plain attributes, set them at any time):
    forbid       403 to every authenticated request (True), or to those for the resources
                 named in a set ({"endpointslices"})
    outage       every connection closed before the TLS handshake (and live requests dropped)
    next_watch_410  the next watch request (True, or of that resource) is answered 410
    expire_next_continue  the next list request with a continue token gets 410 Expired
    gone_as_event  a too-old watch gets 200 and an ERROR 410 event instead of HTTP 410
    trickle      events are written one byte per chunk, trickle_delay seconds apart
    max_page     >0: no list page is longer than this, whatever limit says
    watch_cap    the longest a watch stays open, in seconds (timeoutSeconds is honoured below)
    token        the bearer token accepted (change it to rotate)
    cut_lists    a set of resources whose list pages after the first (asked for with a
                 continue token) are cut half-way: the headers promise the whole body, half
                 of it comes, then the connection closes
    throttle_next(resource, n, retry_after): 429 with Retry-After to the next n requests
    Records: requests [(path, query)] and request_times (monotonic, one per request),
    responses [(path, query, code)] (0: dropped without an answer, or cut half-way),
    refused (connections closed by the outage). @host: the address to listen on (one in
    another network namespace when the socket is made there)."""

    def __init__(self, certs, port=0, token=TOKEN, host="127.0.0.1"):
        self.lock = threading.Condition()
        self.rv = 100
        self.objs = {r: {} for r in BY_RESOURCE}
        self.history = []          # (rv, resource, type, obj, previous obj or None)
        self.stream = []           # (resource or None, what, payload), for open watches
        self.compacted = 0         # a resourceVersion below this is too old
        self.snapshots = {}        # list rv -> {resource: items}, for continue tokens
        self.requests = []
        self.request_times = []
        self.responses = []
        self.cut_lists = set()
        self.throttle = {}         # resource -> [requests left, Retry-After seconds]
        self.refused = 0
        self.open_watches = {r: 0 for r in BY_RESOURCE}
        self.unserved = set()   # resources answered 404, as an older API server would
        # watches that reached their stream (a fault injected after that reaches them)
        self.watches_started = {r: 0 for r in BY_RESOURCE}
        self.forbid = False
        self.forbid_left = 0
        self.outage = False
        self.next_watch_410 = False
        self.expire_next_continue = False
        self.gone_as_event = False
        self.trickle = False
        self.trickle_delay = 0.002
        self.max_page = 0
        self.watch_cap = 30.0
        self.token = token
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "fakeapi/1"

            def log_message(self, *a):
                pass

            def handle(self):
                if srv.outage:           # before the handshake: the client sees a reset
                    srv._refuse(self.connection)
                    return
                super().handle()

            def do_GET(self):
                srv._handle(self)

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass    # TLS refusals and dropped clients are what the tests are about

        self.httpd = Quiet((host, port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs["server.crt"], certs["server.key"])
        ctx.load_verify_locations(certs["ca.crt"])
        ctx.verify_mode = ssl.CERT_OPTIONAL
        # the handshake happens in the request's thread, not in accept()
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True,
                                            do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.url = "https://%s:%d" % (host, self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- the test's side: objects ----

    def put(self, resource, obj, etype=None):
        """Adds or replaces an object (kind and apiVersion are optional); bumps the
        resourceVersion; open watches get ADDED or MODIFIED. Returns the new version."""
        with self.lock:
            self.rv += 1
            obj = json.loads(json.dumps(obj))
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
            md = obj.setdefault("metadata", {})
            md["resourceVersion"] = str(self.rv)
            md.setdefault("uid", "uid-%s-%s-%s" % (resource, md.get("namespace", ""),
                                                   md["name"]))
            key = (md.get("namespace", ""), md["name"])
            old = self.objs[resource].get(key)
            etype = etype or ("MODIFIED" if old else "ADDED")
            self.objs[resource][key] = obj
            self._event(resource, etype, obj, old)
            return self.rv

    def delete(self, resource, ns, name):
        """Removes an object; open watches get DELETED. Returns the new version."""
        with self.lock:
            obj = self.objs[resource].pop((ns, name))
            self.rv += 1
            obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
            self._event(resource, "DELETED", obj, obj)
            return self.rv

    def delete_quietly(self, resource, ns, name):
        """Gone without an event reaching anyone, and compacted away: whoever watched
        before learns of it only by listing again."""
        with self.lock:
            self.objs[resource].pop((ns, name))
            self.rv += 1
            self.compact(self.rv + 1)

    def compact(self, rv=None):
        """Versions below @rv (default: the current one) become too old: a watch from one
        gets 410; continue tokens of older lists expire."""
        with self.lock:
            self.compacted = self.rv if rv is None else rv
            self.history = [h for h in self.history if h[0] > self.compacted]
            self.snapshots = {k: v for k, v in self.snapshots.items() if k >= self.compacted}

    def get(self, resource, ns, name):
        with self.lock:
            o = self.objs[resource].get((ns, name))
            return json.loads(json.dumps(o)) if o else None

    def _event(self, resource, etype, obj, old):
        self.history.append((self.rv, resource, etype, obj, old))
        self.stream.append((resource, "event", (etype, obj, old)))
        self.lock.notify_all()

    # ---- the test's side: faults ----

    def inject(self, kind, resource=None):
        """A fault for every watch open now (of @resource, or all): "drop" (half an event,
        then the connection closes), "drop-midchunk" (a chunk header promising a whole
        event, half of it, then the close), "err410" (an ERROR event with a 410 Status,
        then the watch ends as the API server ends it), "bookmark" (to watches that allowed
        bookmarks), "garbage" (a line that is not JSON), "stall" (the connection stays
        open and silent, events included, until the client closes it)."""
        if kind not in FAULTS:
            raise ValueError(kind)
        with self.lock:
            self.stream.append((resource, kind, None))
            self.lock.notify_all()

    def throttle_next(self, resource, n=1, retry_after=1):
        """The next @n requests for @resource get 429 Too Many Requests with
        Retry-After: @retry_after (seconds)."""
        with self.lock:
            self.throttle[resource] = [n, retry_after]

    def forbid_next(self, n=1):
        """The next @n authenticated requests get 403."""
        with self.lock:
            self.forbid_left = n

    def wait_watch(self, resource, deadline=15.0):
        """Waits until a watch of @resource is open (so an injected fault reaches it)."""
        return self.wait_until(lambda: self.open_watches[resource] > 0, deadline)

    def wait_until(self, cond, deadline=15.0):
        """Waits (bounded) until cond() holds; it is evaluated under the lock on every
        request and event."""
        end = time.monotonic() + deadline
        with self.lock:
            while not cond():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.1))
            return True

    # ---- the test's side: what happened ----

    def count(self, pred):
        with self.lock:
            return sum(1 for r in self.requests if pred(r))

    def mark(self):
        """A position in the request record, for since()."""
        with self.lock:
            return len(self.requests), len(self.responses), self.refused

    def since(self, mark):
        """(requests, responses, refused connections) after @mark."""
        with self.lock:
            return (list(self.requests[mark[0]:]), list(self.responses[mark[1]:]),
                    self.refused - mark[2])

    @staticmethod
    def is_list(r, resource):
        return r[0] == BY_RESOURCE[resource][0] and r[1].get("watch") not in ("1", "true")

    @staticmethod
    def is_watch(r, resource):
        return r[0] == BY_RESOURCE[resource][0] and r[1].get("watch") in ("1", "true")

    def lists(self, resource):
        return self.count(lambda r: self.is_list(r, resource))

    def watches(self, resource):
        return self.count(lambda r: self.is_watch(r, resource))

    # ---- serving ----

    def _refuse(self, conn):
        with self.lock:
            self.refused += 1
            self.lock.notify_all()
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()

    def _answered(self, path, q, code):
        with self.lock:
            self.responses.append((path, q, code))
            self.lock.notify_all()

    def _handle(self, h):
        u = urlparse(h.path)
        q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append((u.path, q))
            self.request_times.append(time.monotonic())
            self.lock.notify_all()
            outage = self.outage
        if outage:
            self._answered(u.path, q, 0)
            h.close_connection = True
            self._refuse(h.connection)
            return
        cert = h.connection.getpeercert() if hasattr(h.connection, "getpeercert") else None
        authz = h.headers.get("Authorization")
        authed = bool(cert) or (authz is not None and authz == "Bearer " + self.token)
        if not authed:
            return self.status(h, u.path, q, 401, "Unauthorized", "Unauthorized")
        with self.lock:
            forbid = self.forbid_left > 0 or (
                self.forbid is True or (self.forbid and RESOURCES.get(u.path, ("",))[0]
                                        in self.forbid))
            self.forbid_left = max(0, self.forbid_left - 1)
        with self.lock:
            thr = self.throttle.get(RESOURCES.get(u.path, ("",))[0])
            throttled = thr and thr[0] > 0
            if throttled:
                thr[0] -= 1
        if throttled:
            return self.status(h, u.path, q, 429, "TooManyRequests",
                               "Too many requests, please try again later.",
                               headers={"Retry-After": str(thr[1])})
        if forbid:
            res = u.path.rsplit("/", 1)[-1]
            return self.status(h, u.path, q, 403, "Forbidden",
                               '%s is forbidden: User "system:kube-proxy" cannot %s resource '
                               '"%s" at the cluster scope' % (
                                   res, "watch" if q.get("watch") else "list", res))
        if u.path not in RESOURCES or RESOURCES[u.path][0] in self.unserved:
            return self.status(h, u.path, q, 404, "NotFound", "the server could not find "
                               "the requested resource")
        resource = RESOURCES[u.path][0]
        try:
            lsel = parse_label_selector(q.get("labelSelector"))
            fsel = parse_field_selector(q.get("fieldSelector"))
        except ValueError as e:
            return self.status(h, u.path, q, 400, "BadRequest", str(e))
        sel = (lambda o: o is not None and
               label_match(lsel, o["metadata"].get("labels") or {}) and field_match(fsel, o))
        if q.get("watch") in ("1", "true"):
            return self.watch(h, u.path, resource, q, sel)
        return self.list(h, u.path, resource, q, sel)

    def status(self, h, path, q, code, reason, msg="", headers=None):
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "message": msg, "reason": reason,
                           "code": code}).encode()
        h.send_response(code)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        self._answered(path, q, code)

    def list(self, h, path, resource, q, sel):
        _, list_kind, _, api_version = RESOURCES[path]
        cont = q.get("continue")
        with self.lock:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    list_rv, start = int(tok["rv"]), int(tok["start"])
                    items = self.snapshots.get(list_rv, {}).get(resource)
                except (ValueError, KeyError, TypeError):
                    list_rv, items = None, None
                expired = list_rv is not None and (self.expire_next_continue or
                                                   list_rv < self.compacted or items is None)
                if expired:
                    self.expire_next_continue = False
            else:
                list_rv, start = self.rv, 0
                items = [o for _, o in sorted(self.objs[resource].items()) if sel(o)]
                self.snapshots.setdefault(list_rv, {})[resource] = items
                while len(self.snapshots) > 64:
                    del self.snapshots[min(self.snapshots)]
        if cont and list_rv is None:
            return self.status(h, path, q, 400, "BadRequest", "invalid continue token")
        if cont and expired:
            return self.status(h, path, q, 410, "Expired",
                               "The provided continue parameter is too old to display a "
                               "consistent list result. You can start a new list without "
                               "the continue parameter.")
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            return self.status(h, path, q, 400, "BadRequest", "bad limit")
        if self.max_page > 0:
            limit = min(limit, self.max_page) if limit > 0 else self.max_page
        end = start + limit if limit > 0 else len(items)
        meta = {"resourceVersion": str(list_rv)}
        if end < len(items):
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"rv": list_rv, "start": end}).encode()).decode()
            meta["remainingItemCount"] = len(items) - end
        # items come without kind and apiVersion, as from the real API server
        body = json.dumps({"kind": list_kind, "apiVersion": api_version, "metadata": meta,
                           "items": items[start:end]}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if cont and resource in self.cut_lists:     # the list dies half-way
            h.wfile.write(body[:len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            self._answered(path, q, 0)
            return
        h.wfile.write(body)
        self._answered(path, q, 200)

    def chunk(self, h, data):
        if self.trickle:
            for i in range(len(data)):
                h.wfile.write(b"1\r\n" + data[i:i + 1] + b"\r\n")
                time.sleep(self.trickle_delay)
        else:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    @staticmethod
    def client_gone(conn):
        """Whether the client closed a watch's connection (it sends nothing else on it)."""
        try:
            if not select.select([conn], [], [], 0)[0]:
                return False
            conn.settimeout(0.05)
            try:
                return conn.recv(1) == b""
            finally:
                conn.settimeout(None)
        except (ssl.SSLWantReadError, socket.timeout):
            return False
        except (OSError, ValueError):
            return True

    @staticmethod
    def line(etype, obj, kind, api_version):
        obj = dict(obj, kind=kind, apiVersion=api_version)
        return (json.dumps({"type": etype, "object": obj}) + "\n").encode()

    @staticmethod
    def seen_as(etype, obj, old, sel):
        """What a watch with selector @sel sees of an event: (type, object) or None. An
        object that stops matching is DELETED for it, one that starts matching ADDED."""
        now, before = sel(obj), old is not None and sel(old)
        if etype == "DELETED":
            return ("DELETED", obj) if now else None
        if etype == "ADDED" or not before:
            return ("ADDED", obj) if now else None
        if not now:
            gone = dict(old, metadata=dict(old["metadata"],
                                           resourceVersion=obj["metadata"]["resourceVersion"]))
            return ("DELETED", gone)
        return (etype, obj)

    def gone_status(self, rv):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version: %d (%d)" % (rv, self.compacted),
                "reason": "Expired", "code": 410}

    def watch(self, h, path, resource, q, sel):
        _, _, kind, api_version = RESOURCES[path]
        try:
            rv = int(q.get("resourceVersion") or 0)
            timeout = float(q.get("timeoutSeconds") or self.watch_cap)
        except ValueError:
            return self.status(h, path, q, 400, "BadRequest", "bad resourceVersion")
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        with self.lock:
            gone = rv and rv < self.compacted
            if self.next_watch_410 in (True, resource):
                gone, self.next_watch_410 = True, False
            as_event = self.gone_as_event
        if gone and not as_event:
            return self.status(h, path, q, 410, "Expired", self.gone_status(rv)["message"])
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        self._answered(path, q, 200)
        started = time.monotonic()
        counted = False
        try:
            if gone:
                self.chunk(h, (json.dumps({"type": "ERROR", "object": self.gone_status(rv)})
                               + "\n").encode())
                h.wfile.write(b"0\r\n\r\n")
                return
            with self.lock:
                if rv:      # the events after rv
                    backlog = [(e, o, p) for r_, res, e, o, p in self.history
                               if r_ > rv and res == resource]
                else:       # no version: the current state as ADDED, then what follows
                    backlog = [("ADDED", o, None) for _, o in sorted(self.objs[resource].items())]
                pos = len(self.stream)
                self.open_watches[resource] += 1
                self.watches_started[resource] += 1
                counted = True
                self.lock.notify_all()
            for etype, obj, old in backlog:
                ev = self.seen_as(etype, obj, old, sel)
                if ev:
                    self.chunk(h, self.line(ev[0], ev[1], kind, api_version))
            while True:
                with self.lock:
                    # watch_cap is read each time round: lowering it ends open watches too
                    left = started + min(timeout, self.watch_cap) - time.monotonic()
                    if left <= 0:
                        break
                    if pos == len(self.stream):
                        self.lock.wait(min(left, 0.2))
                    todo = self.stream[pos:]
                    pos = len(self.stream)
                    cur_rv = self.rv
                if not todo and self.client_gone(h.connection):
                    h.close_connection = True
                    return      # not counted as open any more: faults go to live watches
                for res, what, payload in todo:
                    if res not in (None, resource):
                        continue
                    if what == "event":
                        ev = self.seen_as(*payload, sel)
                        if ev:
                            self.chunk(h, self.line(ev[0], ev[1], kind, api_version))
                    elif what in ("drop", "drop-midchunk"):
                        with self.lock:
                            obj = next(iter(self.objs[resource].values()),
                                       {"metadata": {"name": "x", "resourceVersion": "1"}})
                        data = self.line("MODIFIED", obj, kind, api_version)
                        if what == "drop":
                            self.chunk(h, data[:len(data) // 2])
                        else:
                            h.wfile.write(b"%x\r\n%s" % (len(data), data[:len(data) // 2]))
                        h.close_connection = True
                        h.connection.shutdown(socket.SHUT_RDWR)
                        return
                    elif what == "err410":
                        self.chunk(h, (json.dumps({"type": "ERROR",
                                                   "object": self.gone_status(rv)})
                                       + "\n").encode())
                        h.wfile.write(b"0\r\n\r\n")
                        return
                    elif what == "bookmark" and bookmarks:
                        self.chunk(h, (json.dumps({"type": "BOOKMARK", "object": {
                            "kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": str(cur_rv), "annotations": {
                                "k8s.io/initial-events-end": "false"}}}}) + "\n").encode())
                    elif what == "garbage":
                        self.chunk(h, b"this is not an event {\n")
                    elif what == "stall":
                        # the connection stays open and nothing more is sent, events
                        # included, until the client gives up (or watch_cap runs out)
                        while (time.monotonic() < started + self.watch_cap + 60 and
                               not self.client_gone(h.connection)):
                            time.sleep(0.05)
                        h.close_connection = True
                        return
            h.wfile.write(b"0\r\n\r\n")      # timeoutSeconds: a clean end
        except (OSError, ssl.SSLError):
            h.close_connection = True
        finally:
            if counted:
                with self.lock:
                    self.open_watches[resource] -= 1
                    self.lock.notify_all()


# ---- stand-alone: debugging and a self-test ----

def sample_objects(srv):
    srv.put("services", {"metadata": {"name": "web", "namespace": "demo"},
                         "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                                  "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                             "targetPort": 8080}]}})
    srv.put("endpointslices", {"metadata": {"name": "web-1", "namespace": "demo", "labels": {
        "kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.2"], "conditions": {"ready": True}}]})
    srv.put("services", {"metadata": {"name": "mesh", "namespace": "demo", "labels": {
        "service.kubernetes.io/service-proxy-name": "other"}},
        "spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 80}]}})
    srv.put("nodes", {"metadata": {"name": "node-a", "labels": {
        "topology.kubernetes.io/zone": "zone-a"}}})


def self_test(srv, certs):
    """A small client: auth, lists with pagination and the selector, a watch with
    events and faults. Returns the failures."""
    import http.client
    bad = []

    def conn(cert=True, ca="ca.crt"):
        ctx = ssl.create_default_context(cafile=certs[ca])
        if cert:
            ctx.load_cert_chain(certs["client.crt"], certs["client.key"])
        return http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)

    def get(path, cert=True, token=None):
        c = conn(cert)
        c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def check(cond, what):
        print(("ok    " if cond else "FAIL  ") + what)
        if not cond:
            bad.append(what)

    sel = "labelSelector=%21service.kubernetes.io%2Fservice-proxy-name%2C" \
          "%21service.kubernetes.io%2Fheadless"
    check(get("/api/v1/services", cert=False)[0] == 401, "no credentials: 401")
    check(get("/api/v1/services", cert=False, token="nope")[0] == 401, "a bad token: 401")
    check(get("/api/v1/services", cert=False, token=srv.token)[0] == 200, "the token: 200")
    code, body = get("/api/v1/services?" + sel + "&limit=500")
    names = [o["metadata"]["name"] for o in json.loads(body)["items"]]
    check(code == 200 and "web" in names and "mesh" not in names,
          "client certificate, label selector: %s" % names)
    check(all("kind" not in o for o in json.loads(body)["items"]), "items have no kind")
    try:
        conn(ca="other-ca.crt").request("GET", "/api/v1/services")
        check(False, "the wrong CA is refused")
    except ssl.SSLError:
        check(True, "the wrong CA is refused")
    srv.max_page = 1
    path, pages, items = "/api/v1/services?limit=500", 0, []
    while path and pages < 10:
        code, body = get(path)
        doc = json.loads(body)
        items += doc["items"]
        pages += 1
        cont = doc["metadata"].get("continue")
        path = "/api/v1/services?limit=500&continue=" + cont if cont else None
    srv.max_page = 0
    check(pages == 2 and len(items) == 2, "pagination: %d pages, %d items" % (pages, len(items)))
    srv.forbid_next(1)
    check(get("/api/v1/nodes")[0] == 403 and get("/api/v1/nodes")[0] == 200,
          "forbid_next: one 403, then 200")
    code, body = get("/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a")
    check([o["metadata"]["name"] for o in json.loads(body)["items"]] == ["node-a"],
          "field selector")
    rv = int(json.loads(get("/api/v1/services")[1])["metadata"]["resourceVersion"])

    # a watch read by hand: chunked, one event per line
    c = conn()
    c.request("GET", "/api/v1/services?watch=1&allowWatchBookmarks=true&timeoutSeconds=5"
              "&resourceVersion=%d&%s" % (rv, sel))
    r = c.getresponse()
    check(r.status == 200 and r.getheader("Transfer-Encoding") == "chunked", "watch: chunked")
    srv.wait_watch("services")
    srv.put("services", {"metadata": {"name": "api", "namespace": "demo"},
                         "spec": {"clusterIP": "10.96.0.12", "ports": [{"port": 80}]}})
    srv.inject("bookmark")
    srv.put("services", {"metadata": {"name": "web", "namespace": "demo", "labels": {
        "service.kubernetes.io/headless": ""}}, "spec": {"clusterIP": "None"}})
    srv.inject("err410")
    got = [json.loads(line) for line in r.read().splitlines()]
    c.close()
    check([(e["type"], e["object"]["metadata"].get("name")) for e in got] ==
          [("ADDED", "api"), ("BOOKMARK", None), ("DELETED", "web"), ("ERROR", None)],
          "watch: ADDED, BOOKMARK, DELETED when the selector stops matching, ERROR: %s" %
          [(e["type"], e["object"]["metadata"].get("name")) for e in got])
    c = conn()
    c.request("GET", "/api/v1/nodes?watch=1&resourceVersion=%d" % srv.rv)
    c.getresponse()
    opened = srv.wait_watch("nodes", 5)
    c.close()
    check(opened and srv.wait_until(lambda: srv.open_watches["nodes"] == 0, 5),
          "a watch whose client went away is no longer counted as open")
    srv.compact()
    code, _ = get("/api/v1/services?watch=1&resourceVersion=%d" % rv)
    check(code == 410, "compacted: a watch from an old version gets 410")
    return bad


def main(argv):
    import argparse
    import shutil
    import tempfile
    ap = argparse.ArgumentParser(description="a test Kubernetes API server over HTTPS")
    ap.add_argument("--dir", help="where certificates and kubeconfigs go (default: a "
                    "temporary directory, removed at exit)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", action="store_true", help="add a few sample objects")
    ap.add_argument("--self-test", action="store_true",
                    help="run a small client against the server and exit")
    a = ap.parse_args(argv)
    d = a.dir or tempfile.mkdtemp(prefix="fakeapi-")
    os.makedirs(d, exist_ok=True)
    certs = make_certs(d)
    srv = Server(certs, port=a.port)
    try:
        if a.seed or a.self_test:
            sample_objects(srv)
        if a.self_test:
            bad = self_test(srv, certs)
            print("%d failure(s)" % len(bad))
            return 1 if bad else 0
        with open(os.path.join(d, "token"), "w") as f:
            f.write(srv.token + "\n")
        for mode in ("data", "files", "token", "tokenfile"):
            kubeconfig(os.path.join(d, "kubeconfig-" + mode), srv.url, certs, mode,
                       token_file=os.path.join(d, "token"))
        kubeconfig(os.path.join(d, "kubeconfig-wrong-ca"), srv.url, certs, "data",
                   ca="other-ca.crt")
        print("serving %s\nkubeconfigs: %s/kubeconfig-{data,files,token,tokenfile,wrong-ca}"
              % (srv.url, d))
        print("curl --cacert %(d)s/ca.crt --cert %(d)s/client.crt --key %(d)s/client.key "
              "'%(u)s/api/v1/services?limit=500'" % {"d": d, "u": srv.url})
        print("curl -N --cacert %(d)s/ca.crt -H 'Authorization: Bearer %(t)s' "
              "'%(u)s/api/v1/services?watch=1&resourceVersion=1&allowWatchBookmarks=true'"
              % {"d": d, "u": srv.url, "t": srv.token})
        print("commands: help, " + ", ".join(FAULTS) + " [RESOURCE], outage on|off, "
              "forbid on|off, forbid-next N, 410-next, expire-continue, compact [RV], "
              "trickle on|off, max-page N, watch-cap S, throttle RESOURCE N SECONDS, "
              "cut-lists RESOURCE|off, put RESOURCE JSON, "
              "delete RESOURCE NS NAME, requests, quit")
        sys.stdout.flush()
        for line in sys.stdin:
            w = line.split(None, 2)
            if not w:
                continue
            try:
                cmd, on = w[0], len(w) > 1 and w[1] == "on"
                if cmd in FAULTS:
                    srv.inject(cmd, w[1] if len(w) > 1 else None)
                elif cmd == "outage":
                    srv.outage = on
                elif cmd == "forbid":
                    srv.forbid = on
                elif cmd == "forbid-next":
                    srv.forbid_next(int(w[1]))
                elif cmd == "410-next":
                    srv.next_watch_410 = True
                elif cmd == "expire-continue":
                    srv.expire_next_continue = True
                elif cmd == "compact":
                    srv.compact(int(w[1]) if len(w) > 1 else None)
                elif cmd == "trickle":
                    srv.trickle = on
                elif cmd == "max-page":
                    srv.max_page = int(w[1])
                elif cmd == "watch-cap":
                    srv.watch_cap = float(w[1])
                elif cmd == "throttle":
                    n, secs = w[2].split()
                    srv.throttle_next(w[1], int(n), int(secs))
                elif cmd == "cut-lists":
                    srv.cut_lists = set() if w[1] == "off" else {w[1]}
                elif cmd == "put":
                    print("rv", srv.put(w[1], json.loads(w[2])))
                elif cmd == "delete":
                    ns, name = w[2].split()
                    print("rv", srv.delete(w[1], ns, name))
                elif cmd == "requests":
                    for p, q, code in srv.responses[-30:]:
                        print(code, p, q)
                elif cmd == "quit":
                    break
                else:
                    print("commands: see above")
            except (ValueError, KeyError, IndexError) as e:
                print("error:", e)
            sys.stdout.flush()
        else:
            if not sys.stdin.isatty():     # stdin closed: serve until interrupted
                while True:
                    time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        if not a.dir:
            shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
