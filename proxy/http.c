// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyd's HTTP endpoints, as kube-proxy serves them: on --healthz-bind-address
 * /healthz (200 while syncs keep up and the node is eligible for traffic, 503 when a
 * change has waited longer than twice the sync period without a successful sync, or the
 * Node is being deleted; JSON with lastUpdated, currentTime and nodeEligible) and /livez
 * (the same without the node); on --metrics-bind-address /metrics in the Prometheus text
 * format with kube-proxy's metric names and labels, the ones kube-proxy registers for the
 * proxy mode, /healthz, /proxyMode and /configz. One request per connection, served
 * from the event loop (conn.c) as the socket is ready: at most MAX_CLIENTS per port at
 * once, a request head of at most MAX_REQUEST bytes (431 beyond), TIMEOUT_MS to send it
 * and again to read the answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kpd.h"

#define TIMEOUT_MS 2000
#define MAX_REQUEST 8192	/* the request line and headers */
#define MAX_CLIENTS 64
#define BACKLOG 128
#define N_BUCKETS 15		/* kube-proxy's exponential buckets: 1 ms × 2^k */

struct kpd_http {
	int fd;
	char addr[64];		/* as bound, "host:port" */
	struct kpd_loop *loop;
	struct kpd_conns *conns;
	struct kp_ctx *ctx;
	const struct kpd_health *hc;
	bool metrics_server;
};

static const struct kpd_conn_ops http_ops[2];

struct histogram {
	uint64_t buckets[N_BUCKETS];	/* per bucket; cumulative counts come out at print time */
	uint64_t count;
	double sum;
};

enum { ALL, FULL, PARTIAL, _KIND_MAX };

static struct kpd_stats {
	struct histogram sync[_KIND_MAX][2];	/* every sync, full, partial; [IPv4, IPv6] */
	uint64_t healthz[2], livez[2];	/* [0] 200, [1] 503 */
	uint64_t prog_buckets[80];	/* network programming latency, kube-proxy's buckets */
	uint64_t prog_count;
	double prog_sum;
} http_stats;

static const char *const family_label[2] = { "IPv4", "IPv6" };

/* kube-proxy's exponential buckets: 1 ms x 2^i */
static double sync_bound(int i)
{
	return 0.001 * (double)(1u << i);
}

/* kube-proxy's: 0.25 s, 0.5 s, then 1..59 s, 60..115 s by 5, 120..300 s by 30 */
static double prog_bound(int i)
{
	if (i < 2)
		return 0.25 * (i + 1);
	if (i < 61)
		return i - 1;
	if (i < 73)
		return 60 + 5 * (i - 61);
	return 120 + 30 * (i - 73);
}

void kpd_http_observe_programming(double seconds, void *userdata)
{
	(void)userdata;
	for (int i = 0; i < 80; i++)
		if (seconds <= prog_bound(i)) {
			http_stats.prog_buckets[i]++;
			break;
		}
	http_stats.prog_count++;
	http_stats.prog_sum += seconds;
}

static void observe(struct histogram *h, double seconds)
{
	for (int i = 0; i < N_BUCKETS; i++)
		if (seconds <= sync_bound(i)) {
			h->buckets[i]++;
			break;
		}
	h->count++;
	h->sum += seconds;
}

/* The IP families a sync programmed: IPv4, and IPv6 when a service has an IPv6 frontend.
 * kproxyd syncs both in one pass, where kube-proxy runs a proxier per family. */
static int n_families(struct kp_ctx *ctx)
{
	return kp_state_count_family(kp_ctx_get_state(ctx), AF_INET6) ? 2 : 1;
}

void kpd_http_observe_sync(struct kp_ctx *ctx, double seconds, bool full)
{
	int n = n_families(ctx);

	for (int f = 0; f < n; f++) {
		observe(&http_stats.sync[ALL][f], seconds);
		observe(&http_stats.sync[full ? FULL : PARTIAL][f], seconds);
	}
}

static void on_listener(int fd, void *userdata)
{
	struct kpd_http *h = userdata;

	kpd_conns_accept(h->conns, fd, 0);
}

int kpd_http_open(const char *spec, struct kpd_loop *loop, struct kp_ctx *ctx,
		  const struct kpd_health *hc, bool metrics_server, struct kpd_http **ret)
{
	struct sockaddr_storage ss = { 0 };
	char host[64];
	const char *colon = strrchr(spec, ':');
	socklen_t len;
	long port;
	int fd, one = 1, r;
	struct kpd_http *h;

	if (!colon || colon - spec >= (long)sizeof(host))
		return -EINVAL;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	port = strtol(colon + 1, NULL, 10);
	if (port < 0 || port > 65535)
		return -EINVAL;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (!*host)
		snprintf(host, sizeof(host), "0.0.0.0");
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	h->loop = loop;
	h->ctx = ctx;
	h->hc = hc;
	h->metrics_server = metrics_server;
	r = kpd_conns_new(loop, &http_ops[metrics_server], h, &h->conns);
	if (r < 0 || (r = kpd_loop_watch(loop, fd, on_listener, h)) < 0) {
		kpd_conns_free(h->conns);
		free(h);
		close(fd);
		return r;
	}
	if (ss.ss_family == AF_INET)
		snprintf(h->addr, sizeof(h->addr), "%s:%u", host,
			 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	else
		snprintf(h->addr, sizeof(h->addr), "[%s]:%u", host,
			 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	*ret = h;
	return 0;
}

const char *kpd_http_address(const struct kpd_http *h)
{
	return h ? h->addr : "";
}

void kpd_http_close(struct kpd_http *h)
{
	if (!h)
		return;
	kpd_loop_unwatch(h->loop, h->fd);
	kpd_conns_free(h->conns);
	close(h->fd);
	free(h);
}

struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) KPD_PRINTF(2, 3);
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < o->cap - o->len)
			break;
		o->cap = o->cap * 2 + (size_t)n + 1024;
		o->p = realloc(o->p, o->cap);
		if (!o->p) {
			o->len = o->cap = 0;
			return;
		}
	}
	o->len += (size_t)n;
}

static void rfc3339(char *buf, size_t size, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * kube-proxy's rule: unhealthy once a change (here also a failed sync) has waited longer
 * than the health time-out without a successful sync; healthy while starting (the API
 * server's lists not in yet) and while nothing waits.
 */
bool kpd_health_ok(struct kp_ctx *ctx, const struct kpd_health *hc)
{
	struct kp_sync_info si;

	if (hc->api && !kp_api_synced(hc->api))
		return true;
	kp_ctx_get_sync_info(ctx, &si, sizeof(si));
	return !si.oldest_pending_ms || now_ms() - si.oldest_pending_ms < hc->timeout_ms;
}

static void healthz(struct out *o, struct kp_ctx *ctx, const struct kpd_health *hc, bool live)
{
	int64_t now = now_ms();
	bool eligible = kp_api_node_eligible(hc->api);
	bool ok = kpd_health_ok(ctx, hc) && (live || eligible);
	struct kp_counts c;
	char last[40], cur[40];

	kp_ctx_get_counts(ctx, &c);
	/* as kube-proxy: a healthy answer says it was updated now */
	rfc3339(last, sizeof(last), ok ? now : c.last_success_ms ? c.last_success_ms :
		hc->start_ms);
	rfc3339(cur, sizeof(cur), now);
	if (live)
		http_stats.livez[!ok]++;
	else
		http_stats.healthz[!ok]++;
	put(o, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff"
	       "\r\nConnection: close\r\n\r\n{\"lastUpdated\": \"%s\",\"currentTime\": \"%s\"",
	    ok ? "200 OK" : "503 Service Unavailable", last, cur);
	if (live)
		put(o, "}\n");
	else
		put(o, ", \"nodeEligible\": %s}\n", eligible ? "true" : "false");
}

struct stat_out {
	struct out *o;
	char last[128];			/* the name whose HELP and TYPE were printed */
};

static int put_stat(const struct kp_stat *st, void *userdata)
{
	struct stat_out *so = userdata;

	size_t len = strlen(st->name);

	/* a histogram's samples are NAME_bucket, NAME_sum and NAME_count, under one NAME */
	if (!strcmp(st->type, "histogram"))
		for (const char *const *sfx = (const char *const[]){ "_bucket", "_sum", "_count",
								     NULL }; *sfx; sfx++)
			if (len > strlen(*sfx) && !strcmp(st->name + len - strlen(*sfx), *sfx)) {
				len -= strlen(*sfx);
				break;
			}
	if (strncmp(so->last, st->name, len) || so->last[len]) {
		put(so->o, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, st->name, st->help,
		    (int)len, st->name, st->type);
		snprintf(so->last, sizeof(so->last), "%.*s", (int)len, st->name);
	}
	if (*st->labels)
		put(so->o, "%s{%s} %.17g\n", st->name, st->labels, st->value);
	else
		put(so->o, "%s %.17g\n", st->name, st->value);
	return 0;
}

/* One series of a Prometheus histogram from per-bucket counts (made cumulative here),
 * with @labels ("" or 'ip_family="IPv4"'). */
static void put_series(struct out *o, const char *name, const char *labels,
		       const uint64_t *buckets, int n, double (*bound)(int i), uint64_t count,
		       double sum)
{
	const char *sep = *labels ? "," : "";
	uint64_t cumulative = 0;

	for (int i = 0; i < n; i++) {
		cumulative += buckets[i];
		put(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bound(i),
		    (unsigned long long)cumulative);
	}
	put(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)count);
	if (*labels)
		put(o, "%s_sum{%s} %g\n%s_count{%s} %llu\n", name, labels, sum, name, labels,
		    (unsigned long long)count);
	else
		put(o, "%s_sum %g\n%s_count %llu\n", name, sum, name, (unsigned long long)count);
}

static void put_head(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sync-latency histogram, one series per IP family synced. */
static void put_sync_histogram(struct out *o, const char *name, const char *help, int kind)
{
	char labels[32];

	put_head(o, name, "histogram", help);
	for (int f = 0; f < 2; f++) {
		const struct histogram *h = &http_stats.sync[kind][f];

		if (f && !h->count)
			continue;
		snprintf(labels, sizeof(labels), "ip_family=\"%s\"", family_label[f]);
		put_series(o, name, labels, h->buckets, N_BUCKETS, sync_bound, h->count, h->sum);
	}
}

struct no_local {
	size_t n[2][2];			/* [internal, external][IPv4, IPv6] */
};

/* kube-proxy's count: a service port with a Local policy and no local endpoint for it. */
static int count_no_local(const struct kp_svc_port *sp, void *userdata)
{
	struct no_local *nl = userdata;
	const struct kp_frontend *fes;
	bool seen[2][2] = { { false } };
	size_t n_fes;

	fes = kp_svc_port_get_frontends(sp, &n_fes);
	for (size_t i = 0; i < n_fes; i++) {
		int ext = fes[i].external, f = fes[i].addr.family == AF_INET6;
		size_t n;

		if (seen[ext][f] || !(ext ? kp_svc_port_external_local(sp) :
				      kp_svc_port_internal_local(sp)))
			continue;
		seen[ext][f] = true;
		kp_svc_port_get_endpoints(sp, fes[i].addr.family, ext, &n);
		nl->n[ext][f] += !n;
	}
	return 0;
}

/* The metrics kube-proxy registers in every mode. */
static void put_common(struct out *o, struct kp_ctx *ctx, int n_fam)
{
	const struct kp_state *st = kp_ctx_get_state(ctx);
	struct no_local nl = { { { 0 } } };
	struct kp_sync_info si;
	struct kp_counts c;

	kp_ctx_get_counts(ctx, &c);
	kp_ctx_get_sync_info(ctx, &si, sizeof(si));
	put_sync_histogram(o, "kubeproxy_sync_proxy_rules_duration_seconds",
			   "SyncProxyRules latency in seconds", ALL);
	put_head(o, "kubeproxy_network_programming_duration_seconds", "histogram",
		 "In Cluster Network Programming Latency in seconds");
	put_series(o, "kubeproxy_network_programming_duration_seconds", "",
		   http_stats.prog_buckets, 80, prog_bound, http_stats.prog_count,
		   http_stats.prog_sum);
	put_head(o, "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge",
		 "The last time proxy rules were successfully synced");
	for (int f = 0; f < n_fam; f++)
		put(o, "kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"%s\"} %.3f\n",
		    family_label[f], c.last_success_ms / 1000.0);
	put_head(o, "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "gauge",
		 "The last time a sync of proxy rules was queued");
	for (int f = 0; f < n_fam; f++)
		put(o, "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family=\"%s\"} "
		       "%.3f\n", family_label[f], si.last_queued_ms / 1000.0);
	put_head(o, "kubeproxy_sync_proxy_rules_service_changes_total", "counter",
		 "Cumulative proxy rules Service changes");
	put(o, "kubeproxy_sync_proxy_rules_service_changes_total %llu\n",
	    (unsigned long long)c.n_service_changes);
	put_head(o, "kubeproxy_sync_proxy_rules_service_changes_pending", "gauge",
		 "Pending proxy rules Service changes");
	put(o, "kubeproxy_sync_proxy_rules_service_changes_pending %zu\n", si.n_services_pending);
	put_head(o, "kubeproxy_sync_proxy_rules_endpoint_changes_total", "counter",
		 "Cumulative proxy rules Endpoint changes");
	put(o, "kubeproxy_sync_proxy_rules_endpoint_changes_total %llu\n",
	    (unsigned long long)c.n_endpoint_changes);
	put_head(o, "kubeproxy_sync_proxy_rules_endpoint_changes_pending", "gauge",
		 "Pending proxy rules Endpoint changes");
	put(o, "kubeproxy_sync_proxy_rules_endpoint_changes_pending %zu\n", si.n_endpoints_pending);
	if (st)
		kp_state_foreach(st, count_no_local, &nl);
	put_head(o, "kubeproxy_sync_proxy_rules_no_local_endpoints_total", "gauge",
		 "Number of services with a Local traffic policy and no endpoints");
	for (int f = 0; f < n_fam; f++)
		for (int ext = 0; ext < 2; ext++)
			put(o, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family=\"%s\","
			       "traffic_policy=\"%s\"} %zu\n", family_label[f],
			    ext ? "external" : "internal", nl.n[ext][f]);
	put_head(o, "kubeproxy_proxy_healthz_total", "counter",
		 "Cumulative proxy healthz HTTP status");
	put(o, "kubeproxy_proxy_healthz_total{code=\"200\"} %llu\n"
	       "kubeproxy_proxy_healthz_total{code=\"503\"} %llu\n",
	    (unsigned long long)http_stats.healthz[0], (unsigned long long)http_stats.healthz[1]);
	put_head(o, "kubeproxy_proxy_livez_total", "counter", "Cumulative proxy livez HTTP status");
	put(o, "kubeproxy_proxy_livez_total{code=\"200\"} %llu\n"
	       "kubeproxy_proxy_livez_total{code=\"503\"} %llu\n",
	    (unsigned long long)http_stats.livez[0], (unsigned long long)http_stats.livez[1]);
}

static void put_api(struct out *o, struct kp_api *api)
{
	struct kp_api_stats a;

	kp_api_get_stats(api, &a);
	put(o, "# HELP kproxyd_api_lists_total Full lists of a resource from the API server\n"
	       "# TYPE kproxyd_api_lists_total counter\nkproxyd_api_lists_total %llu\n"
	       "# HELP kproxyd_api_relists_total Lists after 410 Gone (too old resource "
	       "version)\n# TYPE kproxyd_api_relists_total counter\n"
	       "kproxyd_api_relists_total %llu\n"
	       "# HELP kproxyd_api_watch_restarts_total Watches that failed and were "
	       "restarted\n# TYPE kproxyd_api_watch_restarts_total counter\n"
	       "kproxyd_api_watch_restarts_total %llu\n"
	       "# HELP kproxyd_api_events_total Watch events applied\n"
	       "# TYPE kproxyd_api_events_total counter\nkproxyd_api_events_total %llu\n"
	       "# HELP kproxyd_api_errors_total Failed API server requests\n"
	       "# TYPE kproxyd_api_errors_total counter\nkproxyd_api_errors_total %llu\n"
	       "# HELP kproxyd_api_synced Whether the first lists have arrived\n"
	       "# TYPE kproxyd_api_synced gauge\nkproxyd_api_synced %d\n",
	    (unsigned long long)a.n_lists, (unsigned long long)a.n_relists,
	    (unsigned long long)a.n_watch_restarts, (unsigned long long)a.n_events,
	    (unsigned long long)a.n_errors, kp_api_synced(api));
}

/*
 * kube-proxy registers some metrics only in some modes: the full and partial sync
 * latencies in iptables mode (and nftables), the iptables ones (restore failures, rules
 * per table) and the conntrack reconciler's in iptables and IPVS mode. kproxyd prints
 * its own here by the same rule; the data plane's come from its stats op.
 */
static void metrics(struct out *o, struct kp_ctx *ctx, const struct kpd_health *hc)
{
	struct stat_out so = { .o = o };
	struct kp_counts c;

	kp_ctx_get_counts(ctx, &c);
	put(o, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
	       "Connection: close\r\n\r\n");
	put_common(o, ctx, n_families(ctx));
	if (!strcmp(hc->mode, "iptables")) {
		put_sync_histogram(o, "kubeproxy_sync_full_proxy_rules_duration_seconds",
				   "SyncProxyRules latency in seconds for full resyncs", FULL);
		put_sync_histogram(o, "kubeproxy_sync_partial_proxy_rules_duration_seconds",
				   "SyncProxyRules latency in seconds for partial resyncs", PARTIAL);
	}
	put(o, "# HELP kproxyd_objects_rejected_total Objects rejected by validation\n"
	       "# TYPE kproxyd_objects_rejected_total counter\nkproxyd_objects_rejected_total %llu\n",
	    (unsigned long long)c.n_rejected);
	put(o, "# HELP kproxyd_sync_errors_total Data plane syncs that failed\n"
	       "# TYPE kproxyd_sync_errors_total counter\nkproxyd_sync_errors_total %llu\n",
	    (unsigned long long)c.n_sync_errors);
	put(o, "# HELP kproxyd_service_ports Service ports in the desired state\n"
	       "# TYPE kproxyd_service_ports gauge\nkproxyd_service_ports %zu\n", c.n_svc_ports);
	put(o, "# HELP kproxyd_dataplane_drift Differences between the data plane and the "
	       "desired state the last kproxyctl check found (-1: no check yet)\n"
	       "# TYPE kproxyd_dataplane_drift gauge\nkproxyd_dataplane_drift %ld\n",
	    hc->run ? hc->run->last_check : -1L);
	kp_ctx_backend_stats(ctx, put_stat, &so);	/* the data plane's own counters */
	if (hc->api)
		put_api(o, hc->api);
	if (hc->nodefw)
		put(o, "# HELP kproxyd_node_netfilter_nftables Whether the node's other rules are "
		       "in nf_tables (iptables-nft), seen at start: 1 when --proxy-mode nftables "
		       "is the mode for this node\n# TYPE kproxyd_node_netfilter_nftables gauge\n"
		       "kproxyd_node_netfilter_nftables %d\n", !!hc->nodefw->node_uses_nft);
}

/* the request line and headers are in (a body, if any, is not read) */
static bool head_complete(const char *req, size_t size)
{
	return memmem(req, size, "\r\n\r\n", 4) || memmem(req, size, "\n\n", 2);
}

/* kube-proxy's /proxyMode: the mode's name, as plain text */
static void proxy_mode(struct out *o, const struct kpd_health *hc)
{
	put(o, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
	       "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n%s", hc->mode);
}

/* kube-proxy's /configz: the configuration in force, as JSON */
static void configz(struct out *o, struct kp_ctx *ctx, const struct kpd_health *hc)
{
	char *json = kpd_config_json(ctx, hc->mode);

	if (!json) {
		put(o, "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n");
		return;
	}
	put(o, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	       "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n%s", json);
	free(json);
}

static char *http_answer(int fd, const char *req, size_t size, void *userdata, uintptr_t tag,
			 size_t *ret_size)
{
	struct kpd_http *h = userdata;
	const struct kpd_health *hc = h->hc;
	bool metrics_server = h->metrics_server;
	struct kp_ctx *ctx = h->ctx;
	char method[8], path[256];
	struct out o = { 0 };

	(void)fd;
	(void)size;
	(void)tag;
	if (sscanf(req, "%7s %255s", method, path) != 2) {
		put(&o, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
		goto out;
	}
	path[strcspn(path, "?")] = '\0';
	if (strcmp(method, "GET") != 0)
		put(&o, "HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\n\r\n");
	else if (metrics_server && strcmp(path, "/healthz") == 0)	/* the server's own */
		put(&o, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
			"X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\nok");
	else if (strcmp(path, "/healthz") == 0)
		healthz(&o, ctx, hc, false);
	else if (!metrics_server && strcmp(path, "/livez") == 0)
		healthz(&o, ctx, hc, true);
	else if (metrics_server && strcmp(path, "/metrics") == 0)
		metrics(&o, ctx, hc);
	else if (metrics_server && strcmp(path, "/proxyMode") == 0)
		proxy_mode(&o, hc);
	else if (metrics_server && strcmp(path, "/configz") == 0)
		configz(&o, ctx, hc);
	else
		put(&o, "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n404 page not found\n");
out:
	*ret_size = o.len;
	return o.p;
}

#define HTTP_OPS(server_name) {							\
	.name = server_name,								\
	.max_request = MAX_REQUEST,							\
	.max_conns = MAX_CLIENTS,							\
	.timeout_ms = TIMEOUT_MS,							\
	.too_long = "HTTP/1.1 431 Request Header Fields Too Large\r\n"			\
		    "Connection: close\r\n\r\n",						\
	.complete = head_complete,							\
	.answer = http_answer,								\
}
static const struct kpd_conn_ops http_ops[2] = { HTTP_OPS("healthz server"),
						 HTTP_OPS("metrics server") };
