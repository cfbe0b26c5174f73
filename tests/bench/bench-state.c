// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * State benchmark: N services with E endpoints each (one EndpointSlice per service),
 * generated as the API server lists them (ServiceList, EndpointSliceList), then timed:
 * load (parse and decode both lists into the store), build (the first full sync: the
 * desired state of every service port, dryrun backend), and one slice update at a time
 * (add or remove a second slice of one service, then sync), repeated. Prints one line of
 * key=value figures; writes the lists to DIR for a peer (jq) to parse the same bytes.
 * Run once per size, each in its own process, so that the peak RSS is that size's.
 * Memory is reported three ways: the heap the context holds after the build (mallinfo2),
 * the resident set gained from just before the load to just after the build, and the
 * process's peak RSS (which also counts the generated input and the transient JSON trees).
 * Usage: bench-state N [E] [DIR]
 */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <kproxy/kproxy.h>

#define UPDATES 1000
#define PAGE 5000

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
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			exit(2);
	}
	b->len += (size_t)n;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void ip(char *out, unsigned base, unsigned i)
{
	sprintf(out, "%u.%u.%u.%u", base, (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

static void gen_services(struct buf *b, unsigned n)
{
	put(b, "{\"kind\":\"ServiceList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":"
	       "\"1000\"},\"items\":[");
	for (unsigned i = 0; i < n; i++) {
		char a[20];

		ip(a, 10, (96u << 16) + i);
		put(b, "%s{\"metadata\":{\"name\":\"svc-%u\",\"namespace\":\"bench\",\"uid\":"
		       "\"5e1f%08u-0c1d-4e2f-9a3b-4c5d6e7f8091\",\"resourceVersion\":\"%u\","
		       "\"creationTimestamp\":\"2026-11-01T10:00:00Z\",\"labels\":{\"app\":\"svc-%u\","
		       "\"tier\":\"backend\"}},\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"%s\","
		       "\"clusterIPs\":[\"%s\"],\"ipFamilies\":[\"IPv4\"],\"ipFamilyPolicy\":"
		       "\"SingleStack\",\"sessionAffinity\":\"None\",\"internalTrafficPolicy\":\"Cluster\","
		       "\"selector\":{\"app\":\"svc-%u\"},\"ports\":[{\"name\":\"http\",\"protocol\":"
		       "\"TCP\",\"port\":80,\"targetPort\":8080}]},\"status\":{\"loadBalancer\":{}}}",
		    i ? "," : "", i, i, 2000 + i, i, a, a, i);
	}
	put(b, "]}");
}

static void gen_slice(struct buf *b, unsigned svc, const char *suffix, unsigned first,
		      unsigned n_eps, bool alone)
{
	put(b, "{%s\"metadata\":{\"name\":\"svc-%u-%s\",\"namespace\":\"bench\",\"generateName\":"
	       "\"svc-%u-\",\"uid\":\"51ce%08u-aaaa-4bbb-8ccc-dddddddddddd\",\"resourceVersion\":"
	       "\"%u\",\"labels\":{\"kubernetes.io/service-name\":\"svc-%u\",\"endpointslice."
	       "kubernetes.io/managed-by\":\"endpointslice-controller.k8s.io\"}},\"addressType\":"
	       "\"IPv4\",\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":8080}],"
	       "\"endpoints\":[", alone ? "\"kind\":\"EndpointSlice\",\"apiVersion\":"
			   "\"discovery.k8s.io/v1\"," : "", svc, suffix, svc, svc, 90000 + svc, svc);
	for (unsigned j = 0; j < n_eps; j++) {
		char a[20];

		ip(a, 10, (128u << 16) + first + j);
		put(b, "%s{\"addresses\":[\"%s\"],\"conditions\":{\"ready\":true,\"serving\":true,"
		       "\"terminating\":false},\"nodeName\":\"node-%u\",\"zone\":\"zone-%u\","
		       "\"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"bench\",\"name\":"
		       "\"svc-%u-pod-%u\"}}", j ? "," : "", a, j % 3, j % 3, svc, j);
	}
	put(b, "]}");
}

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* Resident set now, in bytes (ru_maxrss only gives the peak). */
static size_t rss_now(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");
	int n;

	if (!f)
		return 0;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static size_t n_endpoints(struct kp_ctx *ctx, const char *name)
{
	const struct kp_svc_port *sp = kp_state_lookup(kp_ctx_get_state(ctx), "bench", name,
						       "http", KP_PROTO_TCP);
	size_t n = 0;

	if (sp)
		kp_svc_port_get_endpoints(sp, 0, false, &n);
	return sp ? n : (size_t)-1;
}

static void write_file(const char *dir, const char *name, const struct buf *b)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f)) {
		fprintf(stderr, "bench-state: cannot write %s\n", path);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 0, e = argc > 2 ? (unsigned)atoi(argv[2]) : 10;
	struct buf svcs = { 0 }, *slices, extra = { 0 };
	unsigned n_pages;
	size_t input_size = 0;
	double t0, t_load, t_load_svcs, t_build, upd[UPDATES], upd_load[UPDATES],
	       upd_sync[UPDATES];
	size_t heap0, heap_state, rss0, rss_state;
	struct rusage ru;
	struct kp_ctx *ctx;
	unsigned probe;
	char probe_name[32];
	int loaded;

	if (n < 10 || e < 1) {
		fprintf(stderr, "usage: bench-state N_SERVICES [N_ENDPOINTS] [DIR]\n");
		return 2;
	}
	gen_services(&svcs, n);
	/* slices come in pages of PAGE, as a paginated list (and under the document limit) */
	n_pages = (n + PAGE - 1) / PAGE;
	slices = calloc(n_pages, sizeof(*slices));
	for (unsigned pg = 0; pg < n_pages; pg++) {
		put(&slices[pg], "{\"kind\":\"EndpointSliceList\",\"apiVersion\":"
				 "\"discovery.k8s.io/v1\",\"metadata\":{\"resourceVersion\":\"2000\"},"
				 "\"items\":[");
		for (unsigned i = pg * PAGE; i < n && i < (pg + 1) * PAGE; i++) {
			if (i > pg * PAGE)
				put(&slices[pg], ",");
			gen_slice(&slices[pg], i, "abcde", i * e, e, false);
		}
		put(&slices[pg], "]}");
		input_size += slices[pg].len;
	}
	probe = n / 2;
	snprintf(probe_name, sizeof(probe_name), "svc-%u", probe);
	gen_slice(&extra, probe, "extra", n * e, 1, true);
	input_size += svcs.len;
	if (argc > 3) {
		write_file(argv[3], "services.json", &svcs);
		for (unsigned pg = 0; pg < n_pages; pg++) {
			char name[64];

			snprintf(name, sizeof(name), "endpointslices-%u.json", pg);
			write_file(argv[3], name, &slices[pg]);
		}
	}

	heap0 = heap_in_use();
	rss0 = rss_now();
	ctx = kp_ctx_new();
	if (!ctx)
		return 2;
	t0 = now_ms();
	loaded = kp_ctx_load(ctx, "services", svcs.p, svcs.len, KP_FORMAT_JSON);
	t_load_svcs = now_ms() - t0;
	for (unsigned pg = 0; pg < n_pages; pg++) {
		char src[32];

		snprintf(src, sizeof(src), "slices-%u", pg);
		loaded += kp_ctx_load(ctx, src, slices[pg].p, slices[pg].len, KP_FORMAT_JSON);
	}
	if (loaded != 2 * (int)n) {
		fprintf(stderr, "bench-state: the generated lists did not load whole\n");
		return 1;
	}
	t_load = now_ms() - t0;
	t0 = now_ms();
	if (kp_ctx_sync(ctx, true) < 0)
		return 1;
	t_build = now_ms() - t0;
	heap_state = heap_in_use() - heap0;
	rss_state = rss_now() - rss0;
	if (kp_state_get_size(kp_ctx_get_state(ctx)) != n || n_endpoints(ctx, probe_name) != e) {
		fprintf(stderr, "bench-state: the state is not what was loaded: %zu service ports "
			"(want %u), %s has %zd endpoints (want %u)\n",
			kp_state_get_size(kp_ctx_get_state(ctx)), n, probe_name,
			(ssize_t)n_endpoints(ctx, probe_name), e);
		return 1;
	}
	for (unsigned i = 0; i < UPDATES; i++) {
		double t1;

		int r;

		t0 = now_ms();
		if (i % 2 == 0)
			r = kp_ctx_load(ctx, "update", extra.p, extra.len, KP_FORMAT_JSON);
		else
			r = kp_ctx_unload(ctx, "update");
		t1 = now_ms();
		r = r == 1 ? 0 : -1;	/* one slice added or removed */
		if (r == 0)
			r = kp_ctx_sync(ctx, false);
		upd[i] = (now_ms() - t0) * 1e3;
		upd_load[i] = (t1 - t0) * 1e3;
		upd_sync[i] = upd[i] - upd_load[i];
		if (r < 0) {
			fprintf(stderr, "bench-state: update %u failed\n", i);
			return 1;
		}
		if (n_endpoints(ctx, probe_name) != e + (i % 2 == 0)) {
			fprintf(stderr, "bench-state: update %u not reflected in the state\n", i);
			return 1;
		}
	}
	qsort(upd, UPDATES, sizeof(double), cmp_double);
	qsort(upd_load, UPDATES, sizeof(double), cmp_double);
	qsort(upd_sync, UPDATES, sizeof(double), cmp_double);
	getrusage(RUSAGE_SELF, &ru);
	printf("services=%u endpoints=%u input_mib=%.1f load_ms=%.1f load_services_ms=%.1f "
	       "load_slices_ms=%.1f build_ms=%.1f update_median_us=%.1f update_p99_us=%.1f "
	       "update_decode_median_us=%.1f update_sync_median_us=%.1f state_heap_mib=%.1f "
	       "rss_delta_mib=%.1f peak_rss_delta_mib=%.1f peak_rss_mib=%.1f\n",
	       n, e, input_size / 1048576.0, t_load, t_load_svcs, t_load - t_load_svcs, t_build,
	       upd[UPDATES / 2], upd[UPDATES * 99 / 100], upd_load[UPDATES / 2],
	       upd_sync[UPDATES / 2], heap_state / 1048576.0, rss_state / 1048576.0,
	       (ru.ru_maxrss * 1024.0 - rss0) / 1048576.0, ru.ru_maxrss / 1024.0);
	kp_ctx_free(ctx);
	free(svcs.p);
	for (unsigned pg = 0; pg < n_pages; pg++)
		free(slices[pg].p);
	free(slices);
	free(extra.p);
	return 0;
}
