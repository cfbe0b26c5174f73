// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The userspace backend: kube-proxy's original mode. Each service port gets a proxy per
 * address family (and a second one for its external frontends when the internal and
 * external traffic policies pick different endpoints): a proxy port opened on the node,
 * chosen by the kernel or from --proxy-port-range, with a listener every worker thread
 * watches (worker.c; UDP: one SO_REUSEPORT socket per worker), and portal rules (portal.c) that send the service's
 * frontends to it. A service port without endpoints keeps its proxy port but gets a
 * REJECT rule in place of its portals.
 *
 * Syncs are incremental: a changed service port updates its proxies' endpoint sets in
 * place (the proxy port, listeners and open connections stay), and the rules are written
 * again only when a portal, a proxy port or the with/without-endpoints state changed; a
 * full sync rewrites them (and so repairs them). A proxy that is no longer wanted is
 * retired: its listeners close at once, its UDP flows too, its TCP connections after the
 * grace period.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <kproxy/config.h>

#include "internal.h"
#include "../common/caps.h"
#include "../common/conntrack.h"
#include "../common/tc.h"
#include "us.h"

/* The options init takes (us_options[]). */
struct us_opts {
	struct kp_port_range port_range;	/* 0-0: the kernel picks */
	uint32_t udp_timeout_ms;
	const char *bind;			/* listen address, or NULL: every address */
	uint32_t workers;			/* 0: one per CPU */
	uint32_t max_conns;
	uint32_t grace_ms;
};

static const struct kp_option us_options[] = {
	{ .name = "port-range", .type = KP_OPT_PORT_RANGE,
	  .offset = offsetof(struct us_opts, port_range),
	  .help = "proxy ports from LO-HI, LO+N or one port (default: chosen by the kernel)" },
	{ .name = "udp-timeout", .type = KP_OPT_DURATION,
	  .offset = offsetof(struct us_opts, udp_timeout_ms), .min = 1, .def = "250ms",
	  .help = "an idle UDP flow is closed after this long (kube-proxy's --udp-timeout)" },
	{ .name = "bind", .type = KP_OPT_STRING, .offset = offsetof(struct us_opts, bind),
	  .help = "proxy ports listen on this IP (default 0.0.0.0 and ::); portals then DNAT to "
		  "it instead of REDIRECT" },
	{ .name = "workers", .type = KP_OPT_UINT, .offset = offsetof(struct us_opts, workers),
	  .min = 1, .max = US_MAX_WORKERS, .help = "proxy threads (default: one per CPU)" },
	{ .name = "max-conns", .type = KP_OPT_UINT, .offset = offsetof(struct us_opts, max_conns),
	  .min = 1, .max = 10000000, .def = "32768",
	  .help = "open connections and flows per proxy port; beyond it new ones wait in the "
		  "backlog" },
	{ .name = "grace-period", .type = KP_OPT_DURATION,
	  .offset = offsetof(struct us_opts, grace_ms), .def = "30s",
	  .help = "a removed service's connections are closed after this long (0: at once)" },
};

struct usb {
	struct us us;			/* what the workers see */
	struct kp_map *proxies;		/* key -> struct us_proxy (the control reference) */
	uint16_t range_lo, range_hi;	/* port-range; 0: the kernel picks */
	uint32_t next_port;		/* where the range scan starts */
	struct kp_addr bind[2];		/* listen address per family ([0] IPv4) */
	bool wildcard[2];
	bool ipv6;			/* ip6tables' nat table exists */
	bool started;			/* workers running */
	bool rules_dirty;
};

static int sock_type(enum kp_protocol p)
{
	return p == KP_PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
}

/* Whether @port of @px's family and protocol can be bound by a socket of our own alone:
 * a probe without SO_REUSEPORT conflicts with anything bound there. */
static bool port_free(const struct us_proxy *px, uint16_t port, uint16_t *ret_port)
{
	struct sockaddr_storage ss;
	socklen_t len = us_sockaddr(&px->bind, port, &ss);
	int fd = socket(px->family, sock_type(px->proto) | SOCK_CLOEXEC, 0), one = 1;
	bool ok;

	if (fd < 0)
		return false;
	if (px->family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&ss, len) == 0;
	if (ok) {
		len = sizeof(ss);
		ok = getsockname(fd, (struct sockaddr *)&ss, &len) == 0;
		*ret_port = ntohs(px->family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
						      ((struct sockaddr_in *)&ss)->sin_port);
	}
	close(fd);
	return ok;
}

/* One listener of @px on @port (UDP: SO_REUSEPORT), non-blocking. Returns the fd or
 * -errno. */
static int listener_open(const struct us_proxy *px, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = us_sockaddr(&px->bind, port, &ss);
	int fd = socket(px->family, sock_type(px->proto) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, r;

	if (fd < 0)
		return -errno;
	if (px->family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (px->proto == KP_PROTO_UDP) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (px->family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
		else
			setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	} else {
		int idle = US_KEEPALIVE_S;

		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* accepted connections inherit these: no system calls per connection */
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    (px->proto != KP_PROTO_UDP && listen(fd, SOMAXCONN) < 0)) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Opens the listeners of @px on a free port (@prefer first, if set), one per worker. */
static int open_port(struct usb *b, struct us_proxy *px, uint16_t prefer, int *fds)
{
	uint32_t span = b->range_lo ? (uint32_t)(b->range_hi - b->range_lo) + 1 : 16;
	int r = -EADDRINUSE;

	for (uint32_t k = 0; k <= span; k++) {
		uint16_t want, port;
		unsigned n = 0;

		if (k == 0)
			want = prefer;
		else if (b->range_lo)
			want = (uint16_t)(b->range_lo + (b->next_port++ % span));
		else
			want = 0;
		if (k == 0 && !prefer)
			continue;
		if (!port_free(px, want, &port))
			continue;
		for (; n < b->us.n_workers; n++) {
			/* TCP: one listener that every worker watches (a dup each, so each
			 * closes its own); UDP: one SO_REUSEPORT socket per worker, so that a
			 * client's datagrams all reach the worker holding its flow */
			if (n && px->proto != KP_PROTO_UDP) {
				fds[n] = fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
				if (fds[n] < 0)
					fds[n] = -errno;
			} else {
				fds[n] = listener_open(px, port);
			}
			if (fds[n] < 0)
				break;
		}
		if (n == b->us.n_workers) {
			px->port = port;
			return 0;
		}
		r = fds[n];
		while (n--)
			close(fds[n]);
	}
	return r == -EADDRINUSE && b->range_lo ? -ENOSPC : r;
}

/* What one proxy should be, from a service port. */
struct want {
	char key[320];
	int family;
	enum us_scope scope;
	struct kp_frontend *fes;	/* borrowed from the service port's array (copied) */
	size_t n_fes;
	const struct kp_endpoint *eps;
	size_t n_eps;
};

static const char *scope_suffix[2][2] = { { "4c", "4e" }, { "6c", "6e" } };

static void sp_key(const struct kp_svc_port *sp, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s:%s/%s", kp_svc_port_get_namespace(sp),
		 kp_svc_port_get_name(sp), kp_svc_port_get_port_name(sp),
		 kp_protocol_name(kp_svc_port_get_protocol(sp)));
}

/* Fills up to 4 wants for @sp; their fes arrays are malloc'd (freed by want_free). */
static int wants_of(struct usb *b, const struct kp_svc_port *sp, struct want *w, size_t *ret_n)
{
	size_t n_fes, n = 0;
	const struct kp_frontend *fes = kp_svc_port_get_frontends(sp, &n_fes);
	bool split = kp_svc_port_internal_local(sp) != kp_svc_port_external_local(sp);
	char base[256];

	*ret_n = 0;
	if (kp_svc_port_get_protocol(sp) == KP_PROTO_SCTP)
		return 0;		/* not proxied in userspace, as in kube-proxy's mode */
	sp_key(sp, base, sizeof(base));
	for (int fi = 0; fi < 2; fi++) {
		int family = fi ? AF_INET6 : AF_INET;

		if (fi && !b->ipv6)
			continue;
		for (int sc = 0; sc < (split ? 2 : 1); sc++) {
			struct want *x = &w[n];

			memset(x, 0, sizeof(*x));
			x->fes = malloc((n_fes ? n_fes : 1) * sizeof(*x->fes));
			if (!x->fes)
				goto out_nomem;
			for (size_t i = 0; i < n_fes; i++)
				if (fes[i].addr.family == family &&
				    (!split || (sc == US_SCOPE_EXTERNAL) == fes[i].external))
					x->fes[x->n_fes++] = fes[i];
			if (!x->n_fes) {
				free(x->fes);
				continue;
			}
			snprintf(x->key, sizeof(x->key), "%s/%s", base, scope_suffix[fi][sc]);
			x->family = family;
			x->scope = (enum us_scope)sc;
			x->eps = kp_svc_port_get_endpoints(sp, family, split && sc == US_SCOPE_EXTERNAL,
							   &x->n_eps);
			n++;
		}
	}
	*ret_n = n;
	return 0;
out_nomem:
	while (n--)
		free(w[n].fes);
	return -ENOMEM;
}

/* Sets @px's source ranges from @sp (its family's); the caller frees the previous ones. */
static void set_ranges(struct us_proxy *px, const struct kp_svc_port *sp)
{
	size_t n;
	const uint8_t *pfx;
	const struct kp_addr *r = kp_svc_port_get_source_ranges(sp, &pfx, &n);

	px->ranges = NULL;
	px->range_prefixes = NULL;
	px->n_ranges = 0;
	if (!n)
		return;
	px->ranges = malloc(n * sizeof(*px->ranges));
	px->range_prefixes = malloc(n);
	if (!px->ranges || !px->range_prefixes)
		return;			/* no ranges: the LB IP is open, as without them */
	for (size_t i = 0; i < n; i++) {
		if (r[i].family != px->family)
			continue;
		px->ranges[px->n_ranges] = r[i];
		px->range_prefixes[px->n_ranges++] = pfx[i];
	}
}

static bool same_ranges(const struct us_proxy *px, const struct kp_addr *old, const uint8_t *op,
			size_t n)
{
	if (n != px->n_ranges)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!kp_addr_equal(&old[i], &px->ranges[i]) || op[i] != px->range_prefixes[i])
			return false;
	return true;
}

static bool same_fes(const struct kp_frontend *a, size_t na, const struct kp_frontend *b,
		     size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].kind != b[i].kind || a[i].port != b[i].port ||
		    !kp_addr_equal(&a[i].addr, &b[i].addr))
			return false;
	return true;
}

/* Flushes the conntrack entries of a UDP proxy's frontends (REDIRECTed to a proxy port
 * that no longer serves them). */
static void flush_udp(struct usb *b, const struct us_proxy *px)
{
	struct kp_ct_flush req[64];
	size_t n = 0;

	if (px->proto != KP_PROTO_UDP)
		return;
	for (size_t i = 0; i < px->n_fes && n < KP_ARRAY_SIZE(req); i++)
		req[n++] = (struct kp_ct_flush){ .vip = px->fes[i].addr, .port = px->fes[i].port,
						  .proto = IPPROTO_UDP, .any_endpoint = true };
	if (n && kp_ct_flush(req, n) < 0)
		kp_log(b->us.ctx, KP_LOG_DEBUG, "userspace: %s: conntrack flush failed", px->key);
}

static void proxy_retire(struct usb *b, struct us_proxy *px)
{
	kp_map_del(b->proxies, px->key);
	atomic_store(&px->retired, true);
	for (unsigned i = 0; i < b->us.n_workers; i++)
		us_worker_retire(b->us.workers[i], px);
	flush_udp(b, px);
	kp_log(b->us.ctx, KP_LOG_DEBUG, "userspace: %s: proxy port %u closed", px->key, px->port);
	b->rules_dirty = true;
	us_proxy_unref(px);
}

/* Updates @px to @w (endpoints, frontends, ranges, affinity). */
static int proxy_update(struct usb *b, struct us_proxy *px, struct want *w,
			const struct kp_svc_port *sp)
{
	struct kp_addr *old_ranges = px->ranges;
	uint8_t *old_pfx = px->range_prefixes;
	size_t old_n_ranges = px->n_ranges;
	bool had_eps = px->n_set > 0;
	int r;

	r = lb_set_endpoints(px, w->eps, w->n_eps);
	if (r < 0)
		return r;
	pthread_mutex_lock(&px->lock);
	px->affinity = kp_svc_port_get_affinity(sp);
	px->affinity_ms = kp_svc_port_get_affinity_timeout(sp) * 1000u;
	pthread_mutex_unlock(&px->lock);
	if (!same_fes(px->fes, px->n_fes, w->fes, w->n_fes) || had_eps != (w->n_eps > 0))
		b->rules_dirty = true;
	if (had_eps && !w->n_eps)
		flush_udp(b, px);
	free(px->fes);
	px->fes = w->fes;
	px->n_fes = w->n_fes;
	w->fes = NULL;
	set_ranges(px, sp);
	if (!same_ranges(px, old_ranges, old_pfx, old_n_ranges))
		b->rules_dirty = true;
	free(old_ranges);
	free(old_pfx);
	return 0;
}

static int proxy_create(struct usb *b, struct want *w, const struct kp_svc_port *sp,
			uint16_t prefer)
{
	struct us_proxy *px = calloc(1, sizeof(*px));
	int fds[US_MAX_WORKERS], r = -ENOMEM;
	int fi = w->family == AF_INET6;

	if (!px)
		return -ENOMEM;
	atomic_init(&px->refs, 1);
	pthread_mutex_init(&px->lock, NULL);
	px->key = kp_strdup(w->key);
	px->label = kp_asprintf("%s/%s:%s", kp_svc_port_get_namespace(sp), kp_svc_port_get_name(sp),
				kp_svc_port_get_port_name(sp));
	px->ns = kp_strdup(kp_svc_port_get_namespace(sp));
	px->name = kp_strdup(kp_svc_port_get_name(sp));
	px->port_name = kp_strdup(kp_svc_port_get_port_name(sp));
	px->lst = calloc(b->us.n_workers, sizeof(*px->lst));
	px->proto = kp_svc_port_get_protocol(sp);
	px->family = w->family;
	px->scope = w->scope;
	px->bind = b->bind[fi];
	if (!px->key || !px->label || !px->ns || !px->name || !px->port_name || !px->lst)
		goto fail;
	r = proxy_update(b, px, w, sp);
	if (r < 0)
		goto fail;
	r = open_port(b, px, prefer, fds);
	if (r < 0) {
		kp_log(b->us.ctx, KP_LOG_WARN, "userspace: service %s/%s: cannot open a proxy "
		       "port: %s%s", px->label, kp_protocol_name(px->proto), kp_strerror(r),
		       r == -ENOSPC ? " (--proxy-port-range is exhausted)" : "");
		goto fail;
	}
	r = kp_map_put(b->proxies, px->key, px, NULL);
	if (r < 0) {
		for (unsigned i = 0; i < b->us.n_workers; i++)
			close(fds[i]);
		goto fail;
	}
	for (unsigned i = 0; i < b->us.n_workers; i++) {
		if (us_worker_add_listener(b->us.workers[i], px, fds[i]) < 0) {
			close(fds[i]);
			r = -ENOMEM;
		}
	}
	b->rules_dirty = true;
	kp_log(b->us.ctx, KP_LOG_DEBUG, "userspace: %s: proxy port %u", px->key, px->port);
	return r;
fail:
	us_proxy_unref(px);
	return r;
}

/* Makes the proxies of one service port match it (@sp NULL: it is gone); @base_key is
 * the service port's key. Returns the first error. */
static int apply_port(struct usb *b, const char *base_key, const struct kp_svc_port *sp,
		      struct kp_map *seen)
{
	struct want w[4];
	size_t n = 0;
	int first = 0, r;

	if (sp) {
		r = wants_of(b, sp, w, &n);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n; i++) {
		struct us_proxy *px = kp_map_get(b->proxies, w[i].key);
		uint16_t prefer = 0;

		if (px) {
			r = proxy_update(b, px, &w[i], sp);
		} else {
			/* the other family's proxy of the same scope: the same port number */
			char sib[320];
			struct us_proxy *s;

			snprintf(sib, sizeof(sib), "%s/%s", base_key,
				 scope_suffix[w[i].family == AF_INET][w[i].scope]);
			s = kp_map_get(b->proxies, sib);
			if (s)
				prefer = s->port;
			r = proxy_create(b, &w[i], sp, prefer);
		}
		if (r < 0 && !first)
			first = r;
		if (seen && kp_map_get(b->proxies, w[i].key))
			kp_map_put(seen, w[i].key, (void *)1, NULL);
	}
	for (int fi = 0; fi < 2; fi++) {
		for (int sc = 0; sc < 2; sc++) {
			char key[320];
			bool wanted = false;
			struct us_proxy *px;

			snprintf(key, sizeof(key), "%s/%s", base_key, scope_suffix[fi][sc]);
			for (size_t i = 0; i < n && !wanted; i++)
				wanted = !strcmp(w[i].key, key);
			if (!wanted && (px = kp_map_get(b->proxies, key)))
				proxy_retire(b, px);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(w[i].fes);
	return first;
}

struct full_walk {
	struct usb *b;
	struct kp_map *seen;		/* full syncs: the proxies still wanted */
	int first;
};

/* Applies the service port @sp (NULL: gone) named by @named; keeps the first error and
 * stops the walk only when out of memory. */
static int walk_port(struct full_walk *fw, const struct kp_svc_port *named,
		     const struct kp_svc_port *sp)
{
	char key[256];
	int r;

	sp_key(named, key, sizeof(key));
	r = apply_port(fw->b, key, sp, fw->seen);
	if (r < 0 && !fw->first)
		fw->first = r;
	return r == -ENOMEM ? r : 0;
}

static int full_port(const struct kp_svc_port *sp, void *userdata)
{
	return walk_port(userdata, sp, sp);
}

static int delta_port(const struct kp_svc_port *old, const struct kp_svc_port *new_sp,
		      void *userdata)
{
	return walk_port(userdata, new_sp ? new_sp : old, new_sp);
}

static int start_workers(struct usb *b)
{
	int r;

	if (b->started)
		return 0;
	b->us.workers = calloc(b->us.n_workers, sizeof(*b->us.workers));
	if (!b->us.workers)
		return -ENOMEM;
	for (unsigned i = 0; i < b->us.n_workers; i++) {
		r = us_worker_start(&b->us, i, &b->us.workers[i]);
		if (r < 0) {
			while (i--)
				us_worker_stop(b->us.workers[i]);
			free(b->us.workers);
			b->us.workers = NULL;
			return r;
		}
	}
	b->started = true;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp((*(struct us_proxy *const *)a)->key, (*(struct us_proxy *const *)b)->key);
}

static int write_rules(struct usb *b)
{
	struct us_rules rules = { 0 };
	struct kp_map_iter it = { 0 };
	const char *key;
	void *v;
	int r = 0;

	rules.proxies = malloc((kp_map_size(b->proxies) + 1) * sizeof(*rules.proxies));
	if (!rules.proxies)
		return -ENOMEM;
	while (kp_map_next(b->proxies, &it, &key, &v))
		rules.proxies[rules.n++] = v;
	qsort(rules.proxies, rules.n, sizeof(*rules.proxies), key_cmp);
	for (int fi = 0; fi < 2; fi++) {
		rules.wildcard[fi] = b->wildcard[fi];
		rules.host[fi] = b->bind[fi];
		if (b->wildcard[fi]) {
			rules.host[fi].family = fi ? AF_INET6 : AF_INET;
			if (fi)
				rules.host[fi].v6 = in6addr_loopback;
			else
				rules.host[fi].v4.s_addr = htonl(INADDR_LOOPBACK);
		}
	}
	r = us_rules_sync(b->us.ctx, AF_INET, &rules);
	if (!r && b->ipv6)
		r = us_rules_sync(b->us.ctx, AF_INET6, &rules);
	free(rules.proxies);
	return r;
}

static void prune_all(struct usb *b)
{
	struct kp_map_iter it = { 0 };
	const char *key;
	void *v;
	int64_t now = us_now_ms();

	while (kp_map_next(b->proxies, &it, &key, &v))
		lb_prune(v, now);
}

static int us_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	struct usb *b = priv;
	struct full_walk fw = { .b = b };
	int r = start_workers(b);

	if (r < 0)
		return r;
	if (kp_delta_is_full(delta)) {
		struct kp_map_iter it = { 0 };
		const char *key;
		void *v;

		fw.seen = kp_map_new();
		if (!fw.seen)
			return -ENOMEM;
		r = kp_state_foreach(want, full_port, &fw);
		/* proxies no service port wants any more (only when the walk completed) */
		while (!r && kp_map_next(b->proxies, &it, &key, &v))
			if (!kp_map_get(fw.seen, key))
				proxy_retire(b, v);	/* deletes the current key: allowed */
		kp_map_free(fw.seen);
		kp_map_compact(b->proxies);
		b->rules_dirty = true;
	} else {
		r = kp_delta_foreach(delta, delta_port, &fw);
	}
	prune_all(b);
	if (b->rules_dirty) {
		int rr = write_rules(b);

		if (rr < 0) {
			if (!r)
				r = kp_ctx_set_error(b->us.ctx, rr, "userspace: writing the portal "
						     "rules: %s", kp_strerror(rr));
		} else {
			b->rules_dirty = false;
		}
	}
	if (!r && fw.first)
		r = fw.first;
	return r;
}

/* ---- dump: the rules read back, joined with the proxies they send to ---- */

struct dump_walk {
	struct usb *b;
	int family;
	kp_dump_fn fn;
	void *userdata;
	struct kp_map *by_port;		/* "PROTO/port" -> proxy, this family */
	const struct kp_frontend *last_fe;	/* an LB frontend has one rule per range */
};

static uint8_t ip_proto(enum kp_protocol p)
{
	return p == KP_PROTO_UDP ? IPPROTO_UDP : p == KP_PROTO_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
}

static struct us_proxy *reject_owner(struct dump_walk *d, const struct us_rule_seen *s)
{
	struct kp_map_iter it = { 0 };
	const char *key;
	void *v;
	size_t len;

	if (!s->comment)
		return NULL;
	len = strlen(s->comment);
	while (kp_map_next(d->b->proxies, &it, &key, &v)) {
		struct us_proxy *px = v;
		size_t ll = strlen(px->label);

		if (px->family == d->family && ip_proto(px->proto) == s->proto && len > ll &&
		    !strncmp(s->comment, px->label, ll) && s->comment[ll] == ' ')
			return px;
	}
	return NULL;
}

static int dump_rule(const struct us_rule_seen *s, void *userdata)
{
	struct dump_walk *d = userdata;
	struct us_proxy *px;
	const struct kp_frontend *fe = NULL;
	struct kp_endpoint *eps;
	struct kp_dest_stats *st;
	size_t n = 0, cap = 0;
	char key[32], detail[256];
	int r;

	if (s->proxy_port) {
		snprintf(key, sizeof(key), "%u/%u", s->proto, s->proxy_port);
		px = kp_map_get(d->by_port, key);
	} else {
		px = reject_owner(d, s);
	}
	if (!px)
		return 0;		/* not one of ours (or a rule left from an earlier run) */
	for (size_t i = 0; i < px->n_fes && !fe; i++)
		if (px->fes[i].port == s->dport &&
		    (kp_addr_equal(&px->fes[i].addr, &s->dst) ||
		     /* a NodePort on every local address: its rules name no destination */
		     (px->fes[i].kind == KP_FE_NODE_PORT &&
		      kp_addr_is_unspecified(&px->fes[i].addr) &&
		      (!s->dst.family || kp_addr_is_unspecified(&s->dst)))))
			fe = &px->fes[i];
	if (!fe)
		return 0;
	if (fe == d->last_fe)
		return 0;		/* the next source range's rule of the same frontend */
	d->last_fe = fe;
	pthread_mutex_lock(&px->lock);
	for (struct us_ep *e = px->all; e; e = e->next)
		cap++;
	eps = calloc(cap ? cap : 1, sizeof(*eps));
	st = calloc(cap ? cap : 1, sizeof(*st));
	if (eps && st) {
		for (size_t i = 0; i < px->n_set; i++, n++) {	/* the set first, in its order */
			eps[n] = px->set[i]->ep;
			st[n] = (struct kp_dest_stats){ .weight = 1,
							.active_conns = atomic_load(&px->set[i]->conns) };
		}
		for (struct us_ep *e = px->all; e; e = e->next) {	/* then the draining ones */
			if (atomic_load(&e->live) || !atomic_load(&e->conns))
				continue;
			eps[n] = e->ep;
			st[n++] = (struct kp_dest_stats){ .weight = 0,
							  .active_conns = atomic_load(&e->conns) };
		}
	}
	pthread_mutex_unlock(&px->lock);
	if (!eps || !st) {
		free(eps);
		free(st);
		return -ENOMEM;
	}
	snprintf(detail, sizeof(detail), "proxy port %u, %u open, %llu accepted, %llu failed "
		 "connects, %llu dropped%s%s", px->port, atomic_load(&px->n_conns),
		 (unsigned long long)atomic_load(&px->accepted),
		 (unsigned long long)atomic_load(&px->failed_connects),
		 (unsigned long long)atomic_load(&px->dropped),
		 s->proxy_port ? "" : ", no endpoints: REJECT",
		 px->scope == US_SCOPE_EXTERNAL ? ", external endpoints" : "");
	r = d->fn(&(struct kp_dump_entry){
			  .ns = px->ns, .name = px->name, .port_name = px->port_name,
			  .protocol = px->proto, .kind = fe->kind, .vip = fe->addr, .port = fe->port,
			  .endpoints = eps, .n_endpoints = n, .detail = detail, .dest_stats = st,
		  }, d->userdata);
	free(eps);
	free(st);
	return r;
}

static int us_dump(void *priv, kp_dump_fn fn, void *userdata)
{
	struct usb *b = priv;
	int r = 0;

	for (int fi = 0; fi < 2 && !r; fi++) {
		struct dump_walk d = { .b = b, .family = fi ? AF_INET6 : AF_INET, .fn = fn,
				       .userdata = userdata };
		struct kp_map_iter it = { 0 };
		const char *key;
		void *v;

		if (fi && !b->ipv6)
			break;
		d.by_port = kp_map_new();
		if (!d.by_port)
			return -ENOMEM;
		while (kp_map_next(b->proxies, &it, &key, &v)) {
			struct us_proxy *px = v;
			char pk[32];

			if (px->family != d.family)
				continue;
			snprintf(pk, sizeof(pk), "%u/%u", ip_proto(px->proto), px->port);
			if (kp_map_put(d.by_port, pk, px, NULL) < 0)
				r = -ENOMEM;
		}
		if (!r)
			r = us_rules_read(b->us.ctx, d.family, dump_rule, &d);
		kp_map_free(d.by_port);
	}
	return r;
}

/* ---- cleanup and lifetime ---- */

static int us_cleanup(void *priv)
{
	struct usb *b = priv;
	struct kp_map_iter it = { 0 };
	const char *key;
	void *v;
	int r, r6 = 0;

	while (kp_map_next(b->proxies, &it, &key, &v))
		proxy_retire(b, v);
	r = us_rules_cleanup(b->us.ctx, AF_INET);
	if (b->ipv6)
		r6 = us_rules_cleanup(b->us.ctx, AF_INET6);
	b->rules_dirty = true;
	return r < 0 ? r : r6;
}

static void us_destroy(void *priv)
{
	struct usb *b = priv;
	struct kp_map_iter it = { 0 };
	const char *key;
	void *v;

	if (!b)
		return;
	if (b->started) {
		for (unsigned i = 0; i < b->us.n_workers; i++)
			us_worker_stop(b->us.workers[i]);
		free(b->us.workers);
	}
	while (kp_map_next(b->proxies, &it, &key, &v))
		us_proxy_unref(v);
	kp_map_free(b->proxies);
	free(b);
}

/* The listen address of the proxies, from the "bind" option. */
static int set_bind(struct usb *b, const char *value)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
	struct kp_addr a;
	int fi;

	b->bind[0].family = AF_INET;
	b->bind[1].family = AF_INET6;
	b->wildcard[0] = b->wildcard[1] = true;
	if (!value)
		return 0;
	if (kp_addr_from_str(value, &a) < 0)
		return kp_ctx_set_error(b->us.ctx, -EINVAL, "userspace: option \"bind\": \"%s\" "
					"is not an IP address", value);
	fi = a.family == AF_INET6;
	b->bind[fi] = a;
	b->wildcard[fi] = fi ? !memcmp(&a.v6, &any6, sizeof(any6)) :
			       a.v4.s_addr == htonl(INADDR_ANY);
	return 0;
}

static int us_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	const struct us_opts *o = opts;
	struct usb *b = calloc(1, sizeof(*b));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int r;

	if (!b)
		return -ENOMEM;
	b->us.ctx = ctx;
	b->us.n_workers = o->workers ? o->workers : cpus < 1 ? 1 :
			  cpus > US_MAX_WORKERS ? US_MAX_WORKERS : (unsigned)cpus;
	b->us.max_conns = o->max_conns;
	b->us.udp_timeout_ms = o->udp_timeout_ms;
	b->us.grace_ms = o->grace_ms;
	b->range_lo = o->port_range.lo;
	b->range_hi = o->port_range.hi;
	b->proxies = kp_map_new();
	if (!b->proxies) {
		r = -ENOMEM;
		goto fail;
	}
	r = set_bind(b, o->bind);
	if (r < 0)
		goto fail;
	/* fail early, with the reason, where there is no nat table or we are not root */
	r = kp_tc_fast_probe(AF_INET, "nat");
	if (r < 0) {
		char why[160];

		kp_ctx_set_error(ctx, r, "userspace: cannot open the nat table: %s%s",
				 kp_tc_ipv4.strerror(-r), kp_caps_explain(r, KP_CAP(CAP_NET_ADMIN) |
				 KP_CAP(CAP_NET_RAW), why, sizeof(why)));
		goto fail;
	}
	b->ipv6 = kp_tc_fast_probe(AF_INET6, "nat") == 0;
	b->next_port = (uint32_t)(us_now_ms() & 0xffff);
	*ret_priv = b;
	return 0;
fail:
	us_destroy(b);
	return r;
}

const struct kp_backend_ops kp_backend_userspace = {
	.name = "userspace",
	.init = us_init,
	.sync = us_sync,
	.dump = us_dump,
	.cleanup = us_cleanup,
	.destroy = us_destroy,
	.options = us_options,
	.n_options = KP_ARRAY_SIZE(us_options),
	.options_size = sizeof(struct us_opts),
};
