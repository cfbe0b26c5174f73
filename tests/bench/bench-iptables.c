// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * iptables backend benchmark, run inside a fresh network namespace: N ClusterIP services
 * with E endpoints each are loaded and programmed with one full sync, then one endpoint
 * of one service is removed and synced. Prints key=value figures. The last service's
 * endpoints are 10.244.0.2.. so that a connection test can reach them.
 * Usage: bench-iptables N [E] [DISPATCH_THRESHOLD]
 * BENCH_BACKEND=nftables runs the same against the nftables data plane (the dispatch
 * threshold and libiptc are iptables options: not given to it).
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <kproxy/kproxy.h>

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n + 4096;
		if (!(b->p = realloc(b->p, b->cap)))
			exit(2);
	}
	b->len += (size_t)n;
}

/* A "Vm...:" line of /proc/self/status, in MiB, or -1. */
static double status_mib(const char *field)
{
	char line[256];
	double v = -1;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, strlen(field)))
			v = atof(line + strlen(field)) / 1024.0;
	if (f)
		fclose(f);
	return v;
}

/*
 * Forgets the process's peak RSS so far (the generated objects and the JSON parse), so
 * that VmHWM afterwards is the peak during the syncs, as kproxyd would see it.
 */
static void reset_peak(void)
{
	FILE *f;

	malloc_trim(0);
	f = fopen("/proc/self/clear_refs", "we");
	if (f) {
		fputs("5", f);
		fclose(f);
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Endpoint j of service i; the last service's are 10.244.0.2.. */
static void ep_addr(char *out, unsigned i, unsigned j, unsigned n, unsigned e)
{
	unsigned k = i * e + j;

	if (i == n - 1)
		sprintf(out, "10.244.0.%u", 2 + j);
	else
		sprintf(out, "10.%u.%u.%u", 128 + (k >> 16), (k >> 8) & 255, k & 255);
}

static void gen_slice(struct buf *b, unsigned i, unsigned n, unsigned e, unsigned skip)
{
	put(b, "{\"kind\":\"EndpointSlice\",\"apiVersion\":\"discovery.k8s.io/v1\",\"metadata\":"
	       "{\"name\":\"svc-%u-1\",\"namespace\":\"bench\",\"labels\":{\"kubernetes.io/"
	       "service-name\":\"svc-%u\"}},\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"http\","
	       "\"port\":8080}],\"endpoints\":[", i, i);
	for (unsigned j = 0, first = 1; j < e; j++) {
		char a[20];

		if (j == skip)
			continue;
		ep_addr(a, i, j, n, e);
		put(b, "%s{\"addresses\":[\"%s\"],\"nodeName\":\"node-%u\"}", first ? "" : ",", a,
		    j % 3);
		first = 0;
	}
	put(b, "]}");
}

static int count_entry(const struct kp_dump_entry *entry, void *userdata)
{
	(void)entry;
	++*(size_t *)userdata;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 0, e = argc > 2 ? (unsigned)atoi(argv[2]) : 10;
	/* KPROXYD_LIBIPTC=1: through libiptc, for the comparison in README.md */
	struct kp_setting set[] = {
		{ "cluster-cidr", "10.0.0.0/8" },
		{ "dispatch-threshold", argc > 3 ? argv[3] : "100" },
		{ "libiptc", getenv("KPROXYD_LIBIPTC") ? "true" : "false" },
	};
	const char *backend = getenv("BENCH_BACKEND") ? getenv("BENCH_BACKEND") : "iptables";
	size_t n_set = strcmp(backend, "iptables") ? 1 : sizeof(set) / sizeof(set[0]);
	struct buf objs = { 0 }, whole = { 0 }, change = { 0 };
	double t0, t_full, t_change, t_resync, t_dump, t_one, base_rss;
	size_t n_dumped = 0, n_one = 0;
	char one[32];
	struct rusage ru;
	struct kp_ctx *ctx;
	int r;

	if (n < 2 || e < 2) {
		fprintf(stderr, "usage: bench-iptables N_SERVICES [N_ENDPOINTS] [DISPATCH_THRESHOLD]\n");
		return 2;
	}
	put(&objs, "{\"kind\":\"List\",\"items\":[");
	for (unsigned i = 0; i < n; i++) {
		put(&objs, "%s{\"kind\":\"Service\",\"metadata\":{\"name\":\"svc-%u\",\"namespace\":"
			   "\"bench\"},\"spec\":{\"clusterIP\":\"10.%u.%u.%u\",\"ports\":[{\"name\":"
			   "\"http\",\"port\":80}]}}", i ? "," : "", i, 96 + (i >> 16), (i >> 8) & 255,
		    i & 255);
		if (i != n / 2) {	/* that one's slice is a source of its own, changed below */
			put(&objs, ",");
			gen_slice(&objs, i, n, e, e);
		}
	}
	put(&objs, "]}");
	gen_slice(&whole, n / 2, n, e, e);
	gen_slice(&change, n / 2, n, e, 0);

	ctx = kp_ctx_new();
	r = kp_ctx_set_backend(ctx, backend, set, n_set);
	if (r < 0) {
		fprintf(stderr, "bench-iptables: %s\n", kp_ctx_get_error(ctx));
		return 1;
	}
	if (kp_ctx_load(ctx, "objects", objs.p, objs.len, KP_FORMAT_JSON) != (int)(2 * n - 1) ||
	    kp_ctx_load(ctx, "slice", whole.p, whole.len, KP_FORMAT_JSON) != 1) {
		fprintf(stderr, "bench-iptables: the generated objects did not load whole\n");
		return 1;
	}
	free(objs.p);
	objs.p = NULL;
	reset_peak();
	base_rss = status_mib("VmRSS:");
	t0 = now_ms();
	r = kp_ctx_sync(ctx, true);
	t_full = now_ms() - t0;
	if (r < 0) {
		fprintf(stderr, "bench-iptables: full sync: %s\n", kp_strerror(r));
		return 1;
	}
	/* one endpoint of one service goes away */
	kp_ctx_load(ctx, "slice", change.p, change.len, KP_FORMAT_JSON);
	t0 = now_ms();
	r = kp_ctx_sync(ctx, false);
	t_change = now_ms() - t0;
	if (r < 0) {
		fprintf(stderr, "bench-iptables: change sync: %s\n", kp_strerror(r));
		return 1;
	}
	t0 = now_ms();
	r = kp_ctx_sync(ctx, true);
	t_resync = now_ms() - t0;
	if (r < 0) {
		fprintf(stderr, "bench-iptables: resync: %s\n", kp_strerror(r));
		return 1;
	}
	/* what kproxyctl dump costs kproxyd: the programmed table read back */
	t0 = now_ms();
	r = kp_ctx_dump(ctx, count_entry, &n_dumped);
	t_dump = now_ms() - t0;
	if (r < 0) {
		fprintf(stderr, "bench-iptables: dump: %s\n", kp_ctx_get_error(ctx));
		return 1;
	}
	/* kproxyctl dump NS/NAME and trace: one service read back (the one after the
	 * changed one, whose chain run-nft-bench lists with nft as the peer) */
	snprintf(one, sizeof(one), "svc-%u", n / 2 + 1);
	t0 = now_ms();
	r = kp_ctx_dump_service(ctx, "bench", one, count_entry, &n_one);
	t_one = now_ms() - t0;
	if (r < 0 || n_one != 1) {
		fprintf(stderr, "bench-iptables: dump of bench/%s: %zu entries, %s\n", one, n_one,
			kp_ctx_get_error(ctx));
		return 1;
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("services=%u endpoints=%u full_sync_ms=%.1f change_sync_ms=%.1f resync_ms=%.1f "
	       "dump_ms=%.1f dump_entries=%zu dump_service_ms=%.2f peak_rss_mib=%.1f "
	       "sync_peak_rss_mib=%.1f base_rss_mib=%.1f changed_service=svc-%u\n", n, e, t_full,
	       t_change, t_resync, t_dump, n_dumped, t_one, ru.ru_maxrss / 1024.0,
	       status_mib("VmHWM:"), base_rss, n / 2);
	kp_ctx_free(ctx);
	free(objs.p);
	free(whole.p);
	free(change.p);
	return r < 0;
}
