# SPDX-License-Identifier: GPL-2.0-or-later
"""A test API server: Services, EndpointSlices and Nodes over HTTPS, listed (with
limit/continue) and watched (chunked, newline-delimited JSON events) the way the
Kubernetes API server serves them, with faults a test can inject.

Certificates are made with openssl in a temporary directory: a CA, a server certificate
for 127.0.0.1, a client certificate signed by the CA, and an unrelated CA. A request is
allowed with a client certificate the CA signed or with the bearer token TOKEN."""
import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = "test-token-0123456789"
SELECTOR = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
RESOURCES = {
    "/api/v1/services": ("services", "ServiceList", "Service", "v1"),
    "/apis/discovery.k8s.io/v1/endpointslices":
        ("endpointslices", "EndpointSliceList", "EndpointSlice", "discovery.k8s.io/v1"),
    "/api/v1/nodes": ("nodes", "NodeList", "Node", "v1"),
}


def make_certs(d):
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        run("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
            "-subj", "/CN=" + ca)
    for name, cn, ext in (("server", "localhost",
                           "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                           "extendedKeyUsage=serverAuth\n"),
                          ("client", "system:kube-proxy", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        run("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")
    return {k: os.path.join(d, k) for k in ("ca.crt", "other-ca.crt", "server.crt",
                                            "server.key", "client.crt", "client.key")}


def kubeconfig(path, server, certs, mode, token_file=None, ca="ca.crt", tls_name=None):
    """Writes a kubeconfig: mode "data" (inline *-data), "files" (relative paths to copies
    next to it), "token" (inline token), "tokenfile"."""
    d = os.path.dirname(path)

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
            user = {"token": TOKEN}
        elif mode == "tokenfile":
            user = {"tokenFile": token_file}
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
           "clusters": [{"name": "c", "cluster": cluster}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}]}
    with open(path, "w") as f:
        json.dump(doc, f)      # JSON is YAML too
    return path


class Server:
    def __init__(self, certs):
        self.lock = threading.Condition()
        self.rv = 100
        self.objs = {r[0]: {} for r in RESOURCES.values()}
        self.history = []          # (rv, resource, type, obj)
        self.stream = []           # (resource or None, kind, payload) for open watches
        self.compacted = 0         # watches from a version below this get 410
        self.requests = []
        self.open_watches = {r[0]: 0 for r in RESOURCES.values()}
        self.forbid = False
        self.outage = False
        self.next_watch_410 = False
        self.trickle = False
        self.token = TOKEN         # the bearer token accepted now (rotation: change it)
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.handle(self)

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass    # TLS refusals and dropped clients are what the test is about

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs["server.crt"], certs["server.key"])
        ctx.load_verify_locations(certs["ca.crt"])
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True,
                                            do_handshake_on_connect=False)
        self.url = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()

    # ---- the test's side ----
    def put(self, resource, obj, etype=None):
        with self.lock:
            self.rv += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(self.rv)
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            etype = etype or ("MODIFIED" if key in self.objs[resource] else "ADDED")
            self.objs[resource][key] = obj
            self._event(resource, etype, obj)

    def delete(self, resource, ns, name):
        with self.lock:
            obj = self.objs[resource].pop((ns, name))
            self.rv += 1
            obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
            self._event(resource, "DELETED", obj)

    def delete_quietly(self, resource, ns, name):
        """Gone without an event reaching anyone (as during an outage, compacted away)."""
        with self.lock:
            self.objs[resource].pop((ns, name))
            self.rv += 1
            self.compacted = self.rv + 1

    def _event(self, resource, etype, obj):
        self.history.append((self.rv, resource, etype, obj))
        self.stream.append((resource, "event", (etype, obj)))
        self.lock.notify_all()

    def inject(self, kind, resource=None):
        """kind: drop (half an event, then the connection closes), err410, bookmark,
        garbage; for every open watch (of @resource, or all)."""
        with self.lock:
            self.stream.append((resource, kind, None))
            self.lock.notify_all()

    def wait_watch(self, resource, deadline=15.0):
        """Waits until a watch of @resource is open (so an injected fault reaches it)."""
        end = time.monotonic() + deadline
        with self.lock:
            while self.open_watches[resource] == 0 and time.monotonic() < end:
                self.lock.wait(0.05)
            return self.open_watches[resource] > 0

    def count(self, pred):
        with self.lock:
            return sum(1 for r in self.requests if pred(r))

    # ---- serving ----
    def handle(self, h):
        u = urlparse(h.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        with self.lock:
            self.requests.append((u.path, q))
            outage, forbid = self.outage, self.forbid
        if outage:
            h.close_connection = True
            h.connection.close()
            return
        cert = h.connection.getpeercert() if hasattr(h.connection, "getpeercert") else None
        authed = bool(cert) or h.headers.get("Authorization") == "Bearer " + self.token
        if not authed:
            return self.status(h, 401, "Unauthorized")
        if forbid:
            return self.status(h, 403, "Forbidden")
        if u.path not in RESOURCES:
            return self.status(h, 404, "NotFound")
        resource = RESOURCES[u.path][0]
        if q.get("watch") in ("1", "true"):
            return self.watch(h, resource, q)
        return self.list(h, u.path, resource, q)

    def status(self, h, code, reason, msg=""):
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "code": code, "reason": reason, "message": msg}).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def selected(self, resource, obj, q):
        labels = obj["metadata"].get("labels") or {}
        if resource != "nodes" and q.get("labelSelector") == SELECTOR:
            return not any(k in labels for k in ("service.kubernetes.io/service-proxy-name",
                                                  "service.kubernetes.io/headless"))
        if resource == "nodes":
            fs = q.get("fieldSelector", "")
            return not fs.startswith("metadata.name=") or fs[14:] == obj["metadata"]["name"]
        return True

    def list(self, h, path, resource, q):
        _, list_kind, _, api_version = RESOURCES[path]
        with self.lock:
            items = [o for _, o in sorted(self.objs[resource].items())
                     if self.selected(resource, o, q)]
            rv = str(self.rv)
        start = int(q.get("continue") or 0)
        limit = int(q.get("limit") or 0) or len(items) or 1
        page = items[start:start + limit]
        meta = {"resourceVersion": rv}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        # items come without kind and apiVersion, as from the real API server
        body = json.dumps({"kind": list_kind, "apiVersion": api_version, "metadata": meta,
                           "items": [{k: v for k, v in o.items()
                                      if k not in ("kind", "apiVersion")} for o in page]})
        body = body.encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def chunk(self, h, data):
        if self.trickle:
            for i in range(len(data)):
                h.wfile.write(b"1\r\n" + data[i:i + 1] + b"\r\n")
                h.wfile.flush()
                time.sleep(0.002)
        else:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

    def watch(self, h, resource, q):
        rv = int(q.get("resourceVersion") or 0)
        with self.lock:
            gone = self.next_watch_410 or rv < self.compacted
            self.next_watch_410 = False
        if gone:
            return self.status(h, 410, "Expired", "too old resource version: %d" % rv)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        end = time.monotonic() + min(int(q.get("timeoutSeconds") or 30), 30)
        kind = {"services": "Service", "endpointslices": "EndpointSlice", "nodes": "Node"}
        try:
            with self.lock:
                backlog = [(e, o) for r_, res, e, o in self.history
                           if r_ > rv and res == resource]
                pos = len(self.stream)
                self.open_watches[resource] += 1
                self.lock.notify_all()
            for etype, obj in backlog:
                if self.selected(resource, obj, q):
                    self.chunk(h, self.line(etype, obj, kind[resource]))
            while time.monotonic() < end:
                with self.lock:
                    if pos == len(self.stream):
                        self.lock.wait(0.2)
                    todo = self.stream[pos:]
                    pos = len(self.stream)
                for res, what, payload in todo:
                    if res not in (None, resource):
                        continue
                    if what == "event":
                        etype, obj = payload
                        if self.selected(resource, obj, q):
                            self.chunk(h, self.line(etype, obj, kind[resource]))
                    elif what == "drop":
                        with self.lock:
                            obj = next(iter(self.objs[resource].values()), None)
                        line = self.line("MODIFIED", obj or {"metadata": {"name": "x"}},
                                         kind[resource])
                        self.chunk(h, line[:len(line) // 2])
                        h.close_connection = True
                        h.connection.shutdown(socket.SHUT_RDWR)
                        return
                    elif what == "err410":
                        self.chunk(h, (json.dumps({"type": "ERROR", "object": {
                            "kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "code": 410, "reason": "Expired",
                            "message": "too old resource version: %d (%d)" % (rv, self.rv)}})
                            + "\n").encode())
                    elif what == "bookmark":
                        with self.lock:
                            brv = str(self.rv)
                        self.chunk(h, (json.dumps({"type": "BOOKMARK", "object": {
                            "kind": kind[resource], "apiVersion": "v1",
                            "metadata": {"resourceVersion": brv}}}) + "\n").encode())
                    elif what == "garbage":
                        self.chunk(h, b"this is not an event\n")
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            h.close_connection = True
        finally:
            with self.lock:
                self.open_watches[resource] -= 1

    @staticmethod
    def line(etype, obj, kind):
        obj = dict(obj, kind=kind, apiVersion="discovery.k8s.io/v1"
                   if kind == "EndpointSlice" else "v1")
        return (json.dumps({"type": etype, "object": obj}) + "\n").encode()
