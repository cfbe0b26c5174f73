// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyd's HTTP endpoints, as kube-proxy serves them: on --healthz-bind-address
 * /healthz (200 while syncs keep up, 503 when changes have waited longer than twice the
 * sync period without a successful sync; JSON with lastUpdated and currentTime) and
 * /livez; on --metrics-bind-address /metrics in the Prometheus text format with
 * kube-proxy's metric names where the meaning is the same. One request per connection,
 * answered from the main loop; a slow client gets a short time-out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kpd.h"

#define TIMEOUT_MS 2000
#define N_BUCKETS 15		/* kube-proxy's exponential buckets: 1 ms × 2^k */

struct kpd_http {
	int fd;
	char addr[64];		/* as bound, "host:port" */
};

static struct kpd_stats {
	uint64_t buckets[N_BUCKETS];	/* cumulative counts come out at print time */
	uint64_t count;
	double sum;
	uint64_t healthz[2], livez[2];	/* [0] 200, [1] 503 */
	uint64_t prog_buckets[80];	/* network programming latency, kube-proxy's buckets */
	uint64_t prog_count;
	double prog_sum;
} http_stats;

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

void kpd_http_observe_sync(double seconds)
{
	for (int i = 0; i < N_BUCKETS; i++)
		if (seconds <= sync_bound(i)) {
			http_stats.buckets[i]++;
			break;
		}
	http_stats.count++;
	http_stats.sum += seconds;
}

int kpd_http_open(const char *spec, struct kpd_http **ret)
{
	struct sockaddr_storage ss = { 0 };
	char host[64];
	const char *colon = strrchr(spec, ':');
	socklen_t len;
	long port;
	int fd, one = 1;
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
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	if (ss.ss_family == AF_INET)
		snprintf(h->addr, sizeof(h->addr), "%s:%u", host,
			 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	else
		snprintf(h->addr, sizeof(h->addr), "[%s]:%u", host,
			 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	*ret = h;
	return 0;
}

int kpd_http_fd(const struct kpd_http *h)
{
	return h->fd;
}

const char *kpd_http_address(const struct kpd_http *h)
{
	return h ? h->addr : "";
}

void kpd_http_close(struct kpd_http *h)
{
	if (!h)
		return;
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

/* kube-proxy's rule: unhealthy once changes have waited 2 x sync period unsynced. */
static bool healthy(struct kp_ctx *ctx, const struct kpd_health *hc, int64_t now)
{
	struct kp_counts c;

	kp_ctx_get_counts(ctx, &c);
	if (!kp_ctx_has_pending(ctx) && c.last_sync_result == 0)
		return true;
	return now - (c.last_success_ms ? c.last_success_ms : hc->start_ms) <= 2 * hc->timeout_ms;
}

static void healthz(struct out *o, struct kp_ctx *ctx, const struct kpd_health *hc, bool live)
{
	int64_t now = now_ms();
	bool ok = live || healthy(ctx, hc, now);
	struct kp_counts c;
	char last[40], cur[40];

	kp_ctx_get_counts(ctx, &c);
	rfc3339(last, sizeof(last), c.last_success_ms ? c.last_success_ms : hc->start_ms);
	rfc3339(cur, sizeof(cur), now);
	if (live)
		http_stats.livez[!ok]++;
	else
		http_stats.healthz[!ok]++;
	put(o, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff"
	       "\r\nConnection: close\r\n\r\n{\"lastUpdated\": \"%s\",\"currentTime\": \"%s\","
	       "\"nodeEligible\": true}\n", ok ? "200 OK" : "503 Service Unavailable", last, cur);
}

static struct kp_api *api_source;

struct stat_out {
	struct out *o;
	char last[128];			/* the name whose HELP and TYPE were printed */
};

static int put_stat(const struct kp_stat *st, void *userdata)
{
	struct stat_out *so = userdata;

	if (strcmp(so->last, st->name)) {
		put(so->o, "# HELP %s %s\n# TYPE %s %s\n", st->name, st->help, st->name, st->type);
		snprintf(so->last, sizeof(so->last), "%s", st->name);
	}
	if (*st->labels)
		put(so->o, "%s{%s} %.17g\n", st->name, st->labels, st->value);
	else
		put(so->o, "%s %.17g\n", st->name, st->value);
	return 0;
}

/* A Prometheus histogram from per-bucket counts (made cumulative here). */
static void put_histogram(struct out *o, const char *name, const char *help,
			  const uint64_t *buckets, int n, double (*bound)(int i), uint64_t count,
			  double sum)
{
	uint64_t cumulative = 0;

	put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < n; i++) {
		cumulative += buckets[i];
		put(o, "%s_bucket{le=\"%g\"} %llu\n", name, bound(i),
		    (unsigned long long)cumulative);
	}
	put(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", name,
	    (unsigned long long)count, name, sum, name, (unsigned long long)count);
}

static void metrics(struct out *o, struct kp_ctx *ctx)
{
	struct kp_counts c;

	kp_ctx_get_counts(ctx, &c);
	put(o, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
	       "Connection: close\r\n\r\n");
	put_histogram(o, "kubeproxy_sync_proxy_rules_duration_seconds",
		      "SyncProxyRules latency in seconds", http_stats.buckets, N_BUCKETS,
		      sync_bound, http_stats.count, http_stats.sum);
	put_histogram(o, "kubeproxy_network_programming_duration_seconds",
		      "In Cluster Network Programming Latency in seconds", http_stats.prog_buckets,
		      80, prog_bound, http_stats.prog_count, http_stats.prog_sum);
	put(o, "# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds The last time proxy "
	       "rules were successfully synced\n# TYPE kubeproxy_sync_proxy_rules_last_timestamp_"
	       "seconds gauge\nkubeproxy_sync_proxy_rules_last_timestamp_seconds %.3f\n",
	    c.last_success_ms / 1000.0);
	put(o, "# HELP kubeproxy_sync_proxy_rules_service_changes_total Cumulative proxy rules "
	       "Service changes\n# TYPE kubeproxy_sync_proxy_rules_service_changes_total counter\n"
	       "kubeproxy_sync_proxy_rules_service_changes_total %llu\n",
	    (unsigned long long)c.n_service_changes);
	put(o, "# HELP kubeproxy_sync_proxy_rules_endpoint_changes_total Cumulative proxy rules "
	       "Endpoint changes\n# TYPE kubeproxy_sync_proxy_rules_endpoint_changes_total counter\n"
	       "kubeproxy_sync_proxy_rules_endpoint_changes_total %llu\n",
	    (unsigned long long)c.n_endpoint_changes);
	put(o, "# HELP kubeproxy_proxy_healthz_total Cumulative proxy healthz HTTP status\n"
	       "# TYPE kubeproxy_proxy_healthz_total counter\n"
	       "kubeproxy_proxy_healthz_total{code=\"200\"} %llu\n"
	       "kubeproxy_proxy_healthz_total{code=\"503\"} %llu\n",
	    (unsigned long long)http_stats.healthz[0], (unsigned long long)http_stats.healthz[1]);
	put(o, "# HELP kubeproxy_proxy_livez_total Cumulative proxy livez HTTP status\n"
	       "# TYPE kubeproxy_proxy_livez_total counter\n"
	       "kubeproxy_proxy_livez_total{code=\"200\"} %llu\n",
	    (unsigned long long)http_stats.livez[0]);
	put(o, "# HELP kproxyd_objects_rejected_total Objects rejected by validation\n"
	       "# TYPE kproxyd_objects_rejected_total counter\nkproxyd_objects_rejected_total %llu\n",
	    (unsigned long long)c.n_rejected);
	put(o, "# HELP kproxyd_sync_errors_total Data plane syncs that failed\n"
	       "# TYPE kproxyd_sync_errors_total counter\nkproxyd_sync_errors_total %llu\n",
	    (unsigned long long)c.n_sync_errors);
	put(o, "# HELP kproxyd_service_ports Service ports in the desired state\n"
	       "# TYPE kproxyd_service_ports gauge\nkproxyd_service_ports %zu\n", c.n_svc_ports);
	{
		struct stat_out so = { .o = o };

		kp_ctx_backend_stats(ctx, put_stat, &so);	/* the data plane's own counters */
	}
	if (api_source) {
		struct kp_api_stats a;

		kp_api_get_stats(api_source, &a);
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
		    (unsigned long long)a.n_errors, kp_api_synced(api_source));
	}
}

void kpd_http_set_api(struct kp_api *api)
{
	api_source = api;
}

static int read_request(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size - 1 && !strstr(buf, "\r\n\r\n") && !strstr(buf, "\n\n")) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
	}
	return got ? 0 : -EIO;
}

void kpd_http_serve(struct kpd_http *h, struct kp_ctx *ctx, const struct kpd_health *hc)
{
	char req[2048] = "", method[8], path[256];
	struct out o = { 0 };
	int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (read_request(fd, req, sizeof(req)) < 0 ||
	    sscanf(req, "%7s %255s", method, path) != 2) {
		close(fd);
		return;
	}
	path[strcspn(path, "?")] = '\0';
	if (strcmp(method, "GET") != 0)
		put(&o, "HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\n\r\n");
	else if (hc && strcmp(path, "/healthz") == 0)
		healthz(&o, ctx, hc, false);
	else if (hc && strcmp(path, "/livez") == 0)
		healthz(&o, ctx, hc, true);
	else if (!hc && strcmp(path, "/metrics") == 0)
		metrics(&o, ctx);
	else
		put(&o, "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n404 page not found\n");
	for (size_t off = 0; o.p && off < o.len;) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n;

		if (poll(&p, 1, TIMEOUT_MS) <= 0)
			break;
		n = write(fd, o.p + off, o.len - off);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	free(o.p);
	close(fd);
}
