// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Health-check node ports, as kube-proxy serves them for services with
 * externalTrafficPolicy Local: on each spec.healthCheckNodePort, any path answers 200
 * while this node has a local endpoint for the service and the proxy is healthy
 * (kpd_health_ok()), and 503 otherwise, with kube-proxy's JSON body
 * ({"service":{"namespace","name"},"localEndpoints":N,"serviceProxyHealthy":bool}).
 * Load balancers use it to send traffic only to nodes that can serve it. The listeners
 * follow the desired state after every sync: opened for new ports, closed for ports no
 * service asks for any more. As kube-proxy, they are bound to the NodePort addresses
 * only (every address of a family that has no --nodeport-addresses range). When those
 * addresses change, listeners are opened on the new ones and closed on the gone ones; a
 * listener that stays is left alone, so a client queued on it is not refused. Clients
 * are served from the event loop (conn.c): at most MAX_CLIENTS at once over all the
 * ports, a request head of at most MAX_REQUEST bytes (431 beyond), TIMEOUT_MS to send
 * it and again to read the answer.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kproxy/state.h>

#include "kpd.h"

#define TIMEOUT_MS 2000
#define MAX_REQUEST 4096	/* the request line and headers */
#define MAX_CLIENTS 64
#define BACKLOG 128
#define MAX_FDS 16

/* Where a listener is bound: one address, a family's every address, or both families'. */
struct hc_bind {
	struct kp_addr a;		/* the address (its family alone when @any) */
	bool any;			/* the family's wildcard */
	bool dual;			/* one socket for both families (IPv4 alone where IPv6 is off) */
};

struct hc_port {
	uint16_t port;
	int fds[MAX_FDS];		/* one per binding */
	struct hc_bind binds[MAX_FDS];	/* where fds[i] is bound */
	size_t n_fds;
	bool seen;			/* in the state of this update */
	char ns[256], name[256];
	size_t local;			/* local endpoints (the most of any of its ports) */
};

struct kpd_hc {
	struct kpd_loop *loop;
	struct kpd_conns *conns;	/* the clients of every port */
	struct kp_ctx *ctx;		/* with @health: whether the proxy is healthy */
	const struct kpd_health *health;
	struct hc_port *v;
	size_t n, cap;
	struct hc_bind binds[MAX_FDS];	/* where every port listens: the NodePort addresses */
	size_t n_binds;
};

static void serve(int fd, void *userdata);
static const struct kpd_conn_ops hc_ops;

/* A listener on @a:@port (v6only for IPv6 unless @dual), or -errno. */
static int listen_on(const struct kp_addr *a, uint16_t port, bool dual)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, v6only = !dual, fd, r;

	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->family == AF_INET6) {
		a6.sin6_addr = a->v6;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
		r = bind(fd, (struct sockaddr *)&a6, sizeof(a6));
	} else {
		a4.sin_addr = a->v4;
		r = bind(fd, (struct sockaddr *)&a4, sizeof(a4));
	}
	if (r < 0 || listen(fd, BACKLOG) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static bool bind_eq(const struct hc_bind *x, const struct hc_bind *y)
{
	if (x->any != y->any || x->dual != y->dual)
		return false;
	return x->any ? x->a.family == y->a.family : kp_addr_equal(&x->a, &y->a);
}

static bool has_bind(const struct hc_bind *v, size_t n, const struct hc_bind *b)
{
	for (size_t i = 0; i < n; i++)
		if (bind_eq(&v[i], b))
			return true;
	return false;
}

/* A listener on @b's address(es) and @port, or -errno. */
static int listen_bind(const struct hc_bind *b, uint16_t port)
{
	static const struct kp_addr any4 = { .family = AF_INET }, any6 = { .family = AF_INET6 };
	int fd;

	if (b->dual) {
		fd = listen_on(&any6, port, true);
		return fd < 0 ? listen_on(&any4, port, false) : fd;
	}
	return listen_on(b->any ? (b->a.family == AF_INET6 ? &any6 : &any4) : &b->a, port,
			 false);
}

/*
 * @p's listeners where the NodePort addresses are now: the ones bound elsewhere closed
 * first (a wildcard cannot be bound beside a listening address of its own), then the
 * missing ones opened. A listener that stays is not touched, so a client queued on it
 * is not refused. The first failure as -errno, or 0.
 */
static int listen_port(struct kpd_hc *hc, struct hc_port *p)
{
	size_t k = 0;
	int fd, r = 0;

	for (size_t i = 0; i < p->n_fds; i++) {
		if (has_bind(hc->binds, hc->n_binds, &p->binds[i])) {
			p->fds[k] = p->fds[i];
			p->binds[k++] = p->binds[i];
			continue;
		}
		kpd_loop_unwatch(hc->loop, p->fds[i]);
		close(p->fds[i]);
	}
	p->n_fds = k;
	for (size_t i = 0; i < hc->n_binds; i++) {
		if (has_bind(p->binds, p->n_fds, &hc->binds[i]))
			continue;
		fd = listen_bind(&hc->binds[i], p->port);
		if (fd >= 0 && (p->n_fds == MAX_FDS ||
				kpd_loop_watch(hc->loop, fd, serve, hc) < 0)) {
			close(fd);
			fd = -ENOMEM;
		}
		if (fd < 0) {
			r = r ? r : fd;
			continue;
		}
		p->fds[p->n_fds] = fd;
		p->binds[p->n_fds++] = hc->binds[i];
	}
	return r;
}

static void close_port(struct kpd_hc *hc, struct hc_port *p)
{
	for (size_t i = 0; i < p->n_fds; i++) {
		kpd_loop_unwatch(hc->loop, p->fds[i]);
		close(p->fds[i]);
	}
	p->n_fds = 0;
}

static void open_port(struct kpd_hc *hc, struct hc_port *p, const char *ns, const char *name)
{
	int r = listen_port(hc, p);

	if (r < 0)
		kpd_err("health check node port %u of service %s/%s: %s", p->port, ns, name,
			kp_strerror(r));
	else
		kpd_dbg(2, "health check node port %u: service %s/%s, %zu listeners", p->port, ns,
			name, p->n_fds);
}

/* Where every port listens: each family's wildcard, or its @addrs. */
static void set_binds(struct kpd_hc *hc, const bool all[2], const struct kp_addr *addrs,
		      size_t n)
{
	hc->n_binds = 0;
	if (all[0] && all[1]) {
		hc->binds[hc->n_binds++] = (struct hc_bind){ .a.family = AF_INET6, .any = true,
							     .dual = true };
	} else {
		for (int f = 0; f < 2; f++)
			if (all[f])
				hc->binds[hc->n_binds++] = (struct hc_bind){
					.a.family = f ? AF_INET6 : AF_INET, .any = true };
	}
	for (size_t i = 0; i < n && hc->n_binds < MAX_FDS; i++)
		if (!all[addrs[i].family == AF_INET6])
			hc->binds[hc->n_binds++] = (struct hc_bind){ .a = addrs[i] };
}

void kpd_hc_set_addrs(struct kpd_hc *hc, const bool all[2], const struct kp_addr *addrs,
		      size_t n)
{
	if (!hc)
		return;
	set_binds(hc, all, addrs, n);
	for (size_t i = 0; i < hc->n; i++)
		open_port(hc, &hc->v[i], hc->v[i].ns, hc->v[i].name);
}

int kpd_hc_new(struct kpd_loop *loop, struct kpd_hc **ret)
{
	struct kpd_hc *hc = calloc(1, sizeof(*hc));
	int r;

	if (!hc)
		return -ENOMEM;
	r = kpd_conns_new(loop, &hc_ops, hc, &hc->conns);
	if (r < 0) {
		free(hc);
		return r;
	}
	hc->loop = loop;
	set_binds(hc, (const bool[2]){ true, true }, NULL, 0);
	*ret = hc;
	return 0;
}

static struct hc_port *find(struct kpd_hc *hc, uint16_t port)
{
	for (size_t i = 0; i < hc->n; i++)
		if (hc->v[i].port == port)
			return &hc->v[i];
	return NULL;
}

static int visit(const struct kp_svc_port *sp, void *userdata)
{
	struct kpd_hc *hc = userdata;
	uint16_t port = kp_svc_port_get_health_check_node_port(sp);
	const struct kp_endpoint *eps;
	size_t n, local = 0;
	struct hc_port *p;

	if (!port || !kp_svc_port_external_local(sp))
		return 0;
	for (int fam = 0; fam < 2; fam++) {
		eps = kp_svc_port_get_endpoints(sp, fam ? AF_INET6 : AF_INET, true, &n);
		for (size_t i = 0; i < n; i++)
			local += eps[i].local && eps[i].ready;
	}
	p = find(hc, port);
	if (!p) {
		if (hc->n == hc->cap) {
			size_t cap = hc->cap ? hc->cap * 2 : 8;
			struct hc_port *v = realloc(hc->v, cap * sizeof(*v));

			if (!v)
				return 0;
			hc->v = v;
			hc->cap = cap;
		}
		p = &hc->v[hc->n++];
		memset(p, 0, sizeof(*p));
		p->port = port;
		open_port(hc, p, kp_svc_port_get_namespace(sp), kp_svc_port_get_name(sp));
	}
	if (!p->seen) {
		p->seen = true;
		p->local = 0;
		snprintf(p->ns, sizeof(p->ns), "%s", kp_svc_port_get_namespace(sp));
		snprintf(p->name, sizeof(p->name), "%s", kp_svc_port_get_name(sp));
	}
	if (local > p->local)
		p->local = local;
	return 0;
}

void kpd_hc_update(struct kpd_hc *hc, struct kp_ctx *ctx)
{
	const struct kp_state *st = kp_ctx_get_state(ctx);
	size_t k = 0;

	if (!hc || !st)
		return;
	for (size_t i = 0; i < hc->n; i++)
		hc->v[i].seen = false;
	kp_state_foreach(st, visit, hc);
	for (size_t i = 0; i < hc->n; i++) {
		if (hc->v[i].seen) {
			hc->v[k++] = hc->v[i];
			continue;
		}
		kpd_dbg(2, "health check node port %u closed", hc->v[i].port);
		close_port(hc, &hc->v[i]);
	}
	hc->n = k;
}

void kpd_hc_set_health(struct kpd_hc *hc, struct kp_ctx *ctx, const struct kpd_health *health)
{
	if (!hc)
		return;
	hc->ctx = ctx;
	hc->health = health;
}

static bool head_complete(const char *req, size_t size)
{
	return memmem(req, size, "\r\n\r\n", 4) || memmem(req, size, "\n\n", 2);
}

/* Any request gets the state of the port @tag (closed meanwhile: nothing). */
static char *hc_answer(int fd, const char *req, size_t size, void *userdata, uintptr_t tag,
		       size_t *ret_size)
{
	struct kpd_hc *hc = userdata;
	const struct hc_port *p = find(hc, (uint16_t)tag);
	bool healthy = !hc->health || kpd_health_ok(hc->ctx, hc->health);
	char body[700], *resp;
	int len;

	(void)fd;
	(void)req;
	(void)size;
	if (!p)
		return NULL;
	snprintf(body, sizeof(body), "{\"service\":{\"namespace\":\"%s\",\"name\":\"%s\"},"
		 "\"localEndpoints\":%zu,\"serviceProxyHealthy\":%s}\n", p->ns, p->name,
		 p->local, healthy ? "true" : "false");
	len = asprintf(&resp, "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
		       "X-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: %zu\r\n"
		       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		       p->local && healthy ? "200 OK" : "503 Service Unavailable", p->local,
		       strlen(body), body);
	if (len < 0)
		return NULL;
	*ret_size = (size_t)len;
	return resp;
}

static const struct kpd_conn_ops hc_ops = {
	.name = "health check node ports",
	.max_request = MAX_REQUEST,
	.max_conns = MAX_CLIENTS,
	.timeout_ms = TIMEOUT_MS,
	.too_long = "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
	.complete = head_complete,
	.answer = hc_answer,
};

/* Accepts the clients waiting on the listener @fd. */
static void serve(int fd, void *userdata)
{
	struct kpd_hc *hc = userdata;

	for (size_t i = 0; i < hc->n; i++)
		for (size_t k = 0; k < hc->v[i].n_fds; k++)
			if (hc->v[i].fds[k] == fd) {
				kpd_conns_accept(hc->conns, fd, hc->v[i].port);
				return;
			}
}

void kpd_hc_free(struct kpd_hc *hc)
{
	if (!hc)
		return;
	for (size_t i = 0; i < hc->n; i++)
		close_port(hc, &hc->v[i]);
	kpd_conns_free(hc->conns);
	free(hc->v);
	free(hc);
}
