// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Exercises backends/ipvs/genl.c against a real kernel: services and destinations added,
 * edited and deleted one by one and read back field by field, the kernel's errno values
 * for duplicates and missing objects, timeouts, agreement with "ipvsadm -Ln", a
 * 1000 x 3 batch with deliberate duplicates, and a timing of a large batch against
 * "ipvsadm -R" (printed, not asserted). Needs root and IPVS, so it runs in the VM:
 *
 *	tests/vm/run-in-guest --timeout 400 -- /path/to/ipvs-genl-test
 *
 * IPVS_BENCH_N (default 10000) sets the number of services of the timing run (10
 * destinations each); 0 skips it. IPVS_BENCH_IPVSADM=0 leaves out the ipvsadm -R part
 * (under TCG it takes minutes for 10000). Output is TAP; the exit status is 1 on any failure.
 * It flushes the IPVS table (ipvsadm -C) and leaves it empty; the timing runs in
 * namespaces of its own.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <linux/ip_vs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "../../backends/ipvs/genl.h"

static int n_tests;
static int n_failed;

static bool __attribute__((format(printf, 2, 3))) check(bool cond, const char *fmt, ...)
{
	va_list ap;

	n_tests++;
	if (!cond)
		n_failed++;
	printf("%sok %d - ", cond ? "" : "not ", n_tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

/* Checks that @got is the errno @want (both negative). */
static void check_err(int got, int want, const char *what)
{
	check(got == want, "%s: %d (%s), want %d (%s)", what, got, strerror(-got), want,
	      strerror(-want));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static struct kp_addr addr(const char *s)
{
	struct kp_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, s, &a.v4) == 1) {
		a.family = AF_INET;
	} else if (inet_pton(AF_INET6, s, &a.v6) == 1) {
		a.family = AF_INET6;
	} else {
		printf("Bail out! bad address %s\n", s);
		exit(1);
	}
	return a;
}

static struct ipvs_svc svc_new(int proto, const char *a, uint16_t port, const char *sched,
			       uint32_t persist)
{
	struct ipvs_svc s;

	memset(&s, 0, sizeof(s));
	s.addr = addr(a);
	s.family = s.addr.family;
	s.protocol = (uint8_t)proto;
	s.port = port;
	snprintf(s.sched, sizeof(s.sched), "%s", sched);
	if (persist) {
		s.flags = IP_VS_SVC_F_PERSISTENT;
		s.timeout = persist;
	}
	s.netmask = s.family == AF_INET ? 0xffffffff : 128;
	return s;
}

static struct ipvs_dest dest_new(const char *a, uint16_t port, uint32_t weight)
{
	struct ipvs_dest d;

	memset(&d, 0, sizeof(d));
	d.addr = addr(a);
	d.port = port;
	d.fwd = IP_VS_CONN_F_MASQ;
	d.weight = weight;
	return d;
}

static bool addr_eq(const struct kp_addr *a, const struct kp_addr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == AF_INET)
		return a->v4.s_addr == b->v4.s_addr;
	return memcmp(&a->v6, &b->v6, sizeof(a->v6)) == 0;
}

/* "10.0.0.1:80" or "[fd00::1]:80", as ipvsadm -n prints it. */
static const char *addr_port(const struct kp_addr *a, uint16_t port, char *buf, size_t size)
{
	char s[INET6_ADDRSTRLEN];

	inet_ntop(a->family, a->family == AF_INET ? (const void *)&a->v4 : (const void *)&a->v6,
		  s, sizeof(s));
	if (a->family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", s, port);
	else
		snprintf(buf, size, "%s:%u", s, port);
	return buf;
}

static const char *proto_name(int p)
{
	return p == IPPROTO_TCP ? "TCP" : p == IPPROTO_UDP ? "UDP" : "SCTP";
}

/* ---- the model: what we wrote ---- */

#define MAX_DESTS 4

struct model_svc {
	struct ipvs_svc svc;
	struct ipvs_dest dests[MAX_DESTS];
	int n_dests;
	bool present;
};

#define N_MODEL 5
static const char *const model_names[N_MODEL] = { "S0", "S1", "S2", "S3", "S4" };

static bool svc_same_key(const struct ipvs_svc *a, const struct ipvs_svc *b)
{
	return a->protocol == b->protocol && a->port == b->port && addr_eq(&a->addr, &b->addr);
}

struct collect {
	struct ipvs_svc svcs[16];
	struct ipvs_dest dests[16];
	int n;
	int stop_after;		/* return 7 from the callback after this many, if > 0 */
};

static int collect_svc(const struct ipvs_svc *s, void *userdata)
{
	struct collect *c = userdata;

	if (c->n < 16)
		c->svcs[c->n] = *s;
	c->n++;
	return c->stop_after && c->n >= c->stop_after ? 7 : 0;
}

static int collect_dest(const struct ipvs_dest *d, void *userdata)
{
	struct collect *c = userdata;

	if (c->n < 16)
		c->dests[c->n] = *d;
	c->n++;
	return 0;
}

static int count_svc(const struct ipvs_svc *s, void *userdata)
{
	(*(size_t *)userdata)++;
	return 0;
}

static int count_dest(const struct ipvs_dest *d, void *userdata)
{
	(*(size_t *)userdata)++;
	return 0;
}

/* Lists services and destinations and compares them with the model, field by field. */
static void compare_listing(struct ipvs_nl *nl, struct model_svc *m, const char *when)
{
	struct collect c = { .n = 0 };
	int i, j, k, n_present = 0, err;
	bool all = true;

	err = ipvs_nl_list_services(nl, collect_svc, &c);
	for (i = 0; i < N_MODEL; i++)
		n_present += m[i].present;
	check(err == 0 && c.n == n_present, "%s: list services: err %d, %d services, want %d",
	      when, err, c.n, n_present);
	for (i = 0; i < N_MODEL; i++) {
		const struct ipvs_svc *w = &m[i].svc, *g = NULL;
		struct collect cd = { .n = 0 };

		if (!m[i].present)
			continue;
		for (j = 0; j < c.n && j < 16; j++)
			if (svc_same_key(&c.svcs[j], w))
				g = &c.svcs[j];
		if (!g) {
			check(false, "%s: %s listed", when, model_names[i]);
			all = false;
			continue;
		}
		if (!check(g->family == w->family && g->addr.family == w->family &&
			   strcmp(g->sched, w->sched) == 0 && g->flags == w->flags &&
			   g->timeout == w->timeout && g->netmask == w->netmask,
			   "%s: %s fields: family %d sched %s flags %#x timeout %u netmask %#x",
			   when, model_names[i], g->family, g->sched, g->flags, g->timeout,
			   g->netmask))
			all = false;
		err = ipvs_nl_list_dests(nl, w, collect_dest, &cd);
		if (!check(err == 0 && cd.n == m[i].n_dests, "%s: %s dests: err %d, %d, want %d",
			   when, model_names[i], err, cd.n, m[i].n_dests)) {
			all = false;
			continue;
		}
		for (k = 0; k < m[i].n_dests; k++) {
			const struct ipvs_dest *wd = &m[i].dests[k], *gd = NULL;

			for (j = 0; j < cd.n; j++)
				if (addr_eq(&cd.dests[j].addr, &wd->addr) &&
				    cd.dests[j].port == wd->port)
					gd = &cd.dests[j];
			if (!gd || gd->weight != wd->weight || gd->fwd != wd->fwd ||
			    gd->addr.family != w->family || gd->active_conns ||
			    gd->inact_conns || gd->persist_conns) {
				check(false, "%s: %s dest %d fields", when, model_names[i], k);
				all = false;
			}
		}
	}
	check(all, "%s: listing matches what was written", when);
}

/* ---- comparison with ipvsadm -Ln ---- */

struct lines {
	char **v;
	size_t n, cap;
};

static void lines_add(struct lines *l, const char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v)
			abort();
	}
	l->v[l->n++] = strdup(s);
}

static void lines_free(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct ours_arg {
	struct ipvs_nl *nl;
	struct lines *l;
};

static int ours_dest(const struct ipvs_dest *d, void *userdata)
{
	const char *key = ((void **)userdata)[0];
	struct lines *l = ((void **)userdata)[1];
	char ap[64], line[256];

	snprintf(line, sizeof(line), "%s -> %s Masq %u %u %u", key,
		 addr_port(&d->addr, d->port, ap, sizeof(ap)), d->weight, d->active_conns,
		 d->inact_conns);
	lines_add(l, line);
	return 0;
}

static int ours_svc(const struct ipvs_svc *s, void *userdata)
{
	struct ours_arg *oa = userdata;
	char ap[64], key[96], line[256];
	void *pair[2] = { key, oa->l };
	size_t n;

	snprintf(key, sizeof(key), "%s %s", proto_name(s->protocol),
		 addr_port(&s->addr, s->port, ap, sizeof(ap)));
	n = (size_t)snprintf(line, sizeof(line), "%s %s", key, s->sched);
	if (s->flags & IP_VS_SVC_F_PERSISTENT)
		snprintf(line + n, sizeof(line) - n, " persistent %u", s->timeout);
	lines_add(oa->l, line);
	return ipvs_nl_list_dests(oa->nl, s, ours_dest, pair);
}

/* ipvsadm -Ln in the same normalised form: one line per service, one per dest. */
static int ipvsadm_lines(struct lines *l)
{
	FILE *f = popen("ipvsadm -Ln", "r");
	char buf[512], key[256] = "";
	int lineno = 0;

	if (!f)
		return -errno;
	while (fgets(buf, sizeof(buf), f)) {
		char *tok[12], *save = NULL, *t, line[512];
		int n = 0, i;
		size_t len = 0;

		if (++lineno <= 3)	/* version, two column headers */
			continue;
		for (t = strtok_r(buf, " \t\n", &save); t && n < 12;
		     t = strtok_r(NULL, " \t\n", &save))
			tok[n++] = t;
		if (n == 0)
			continue;
		line[0] = '\0';
		if (strcmp(tok[0], "->") == 0)
			len = (size_t)snprintf(line, sizeof(line), "%s", key);
		else
			snprintf(key, sizeof(key), "%s %s", tok[0], n > 1 ? tok[1] : "");
		for (i = 0; i < n; i++)
			len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s",
						len ? " " : "", tok[i]);
		lines_add(l, line);
	}
	return pclose(f) == 0 ? 0 : -EIO;
}

static void compare_ipvsadm(struct ipvs_nl *nl)
{
	struct lines ours = { 0 }, theirs = { 0 };
	struct ours_arg oa = { nl, &ours };
	int err1, err2;
	bool same;
	size_t i;

	err1 = ipvs_nl_list_services(nl, ours_svc, &oa);
	err2 = ipvsadm_lines(&theirs);
	qsort(ours.v, ours.n, sizeof(*ours.v), cmp_str);
	qsort(theirs.v, theirs.n, sizeof(*theirs.v), cmp_str);
	same = err1 == 0 && err2 == 0 && ours.n == theirs.n && ours.n > 0;
	for (i = 0; same && i < ours.n; i++)
		same = strcmp(ours.v[i], theirs.v[i]) == 0;
	if (!check(same, "listing equals ipvsadm -Ln (%zu lines)", ours.n)) {
		for (i = 0; i < ours.n; i++)
			printf("#   ours:    %s\n", ours.v[i]);
		for (i = 0; i < theirs.n; i++)
			printf("#   ipvsadm: %s\n", theirs.v[i]);
	}
	lines_free(&ours);
	lines_free(&theirs);
}

/* ---- batches ---- */

struct err_rec {
	uint64_t cookie;
	char op[32];
	int err;
};

struct errs {
	struct err_rec v[8];
	int n;
};

static void on_error(uint64_t cookie, const char *op, int err, void *userdata)
{
	struct errs *e = userdata;

	if (e->n < 8) {
		e->v[e->n].cookie = cookie;
		snprintf(e->v[e->n].op, sizeof(e->v[e->n].op), "%s", op);
		e->v[e->n].err = err;
	}
	e->n++;
}

static struct ipvs_svc bench_svc(size_t i)
{
	char a[32];

	snprintf(a, sizeof(a), "10.0.%zu.%zu", i / 250, i % 250 + 1);
	return svc_new(IPPROTO_TCP, a, 80, "rr", 0);
}

static struct ipvs_dest bench_dest(size_t i, size_t k)
{
	char a[32];

	snprintf(a, sizeof(a), "10.1.%zu.%zu", k, i % 250 + 1);
	return dest_new(a, 8080, 1);
}

static size_t count_services(struct ipvs_nl *nl, int *ret_err)
{
	size_t n = 0;

	*ret_err = ipvs_nl_list_services(nl, count_svc, &n);
	return n;
}

static void test_batch(struct ipvs_nl *nl)
{
	const size_t n_svc = 1000, n_dest = 3;
	struct ipvs_svc s;
	struct ipvs_dest d;
	struct errs e = { .n = 0 };
	size_t i, k, n, n_dests = 0;
	bool dests_ok = true;
	int err, qerr = 0;
	uint32_t version;

	run("ipvsadm -C");
	err = ipvs_nl_batch_begin(nl);
	check(err == 0, "batch begin");
	for (i = 0; i < n_svc; i++) {
		s = bench_svc(i);
		ipvs_nl_batch_cookie(nl, i);
		qerr = qerr ?: ipvs_nl_add_service(nl, &s);
		for (k = 0; k < n_dest; k++) {
			d = bench_dest(i, k);
			qerr = qerr ?: ipvs_nl_add_dest(nl, &s, &d);
		}
		if (i == 500) {
			/* the deliberate duplicates, mid-batch */
			ipvs_nl_batch_cookie(nl, 1000500);
			qerr = qerr ?: ipvs_nl_add_service(nl, &s);
			ipvs_nl_batch_cookie(nl, 2000500);
			d = bench_dest(i, 1);
			qerr = qerr ?: ipvs_nl_add_dest(nl, &s, &d);
		}
	}
	check(qerr == 0, "queued %zu services x %zu dests + 2 duplicates", n_svc, n_dest);
	/* Reading while a batch is open does not disturb it. */
	err = ipvs_nl_get_info(nl, &version, NULL);
	check(err == 0, "get info while a batch is open: %d", err);
	err = ipvs_nl_batch_end(nl, on_error, &e);
	check_err(err, -EEXIST, "batch end returns the first failure");
	check(e.n == 2, "on_error called %d times, want 2", e.n);
	check(e.n >= 1 && e.v[0].cookie == 1000500 && strcmp(e.v[0].op, "add service") == 0 &&
	      e.v[0].err == -EEXIST, "1st error: cookie %llu op '%s' err %d",
	      (unsigned long long)e.v[0].cookie, e.v[0].op, e.v[0].err);
	check(e.n >= 2 && e.v[1].cookie == 2000500 && strcmp(e.v[1].op, "add dest") == 0 &&
	      e.v[1].err == -EEXIST, "2nd error: cookie %llu op '%s' err %d",
	      (unsigned long long)e.v[1].cookie, e.v[1].op, e.v[1].err);
	n = count_services(nl, &err);
	check(err == 0 && n == n_svc, "batch: %zu services programmed, want %zu", n, n_svc);
	for (i = 0; i < n_svc; i++) {
		size_t nd = 0;

		s = bench_svc(i);
		err = ipvs_nl_list_dests(nl, &s, count_dest, &nd);
		if (err || nd != n_dest)
			dests_ok = false;
		n_dests += nd;
	}
	check(dests_ok && n_dests == n_svc * n_dest, "batch: %zu dests programmed, want %zu",
	      n_dests, n_svc * n_dest);

	/* A batch of deletions, with one missing service at the end. */
	e.n = 0;
	err = ipvs_nl_batch_begin(nl);
	for (i = 0; i < n_svc; i++) {
		s = bench_svc(i);
		ipvs_nl_batch_cookie(nl, i);
		if (i % 2 == 0) {
			d = bench_dest(i, 0);
			err = err ?: ipvs_nl_del_dest(nl, &s, &d);
		}
		err = err ?: ipvs_nl_del_service(nl, &s);
	}
	ipvs_nl_batch_cookie(nl, 99);
	s = svc_new(IPPROTO_TCP, "10.9.9.9", 1, "rr", 0);
	err = err ?: ipvs_nl_del_service(nl, &s);
	err = err ?: ipvs_nl_batch_end(nl, on_error, &e);
	check(err == -ESRCH && e.n == 1 && e.v[0].cookie == 99 &&
	      strcmp(e.v[0].op, "del service") == 0,
	      "batch delete: err %d, %d errors, cookie %llu op '%s'", err, e.n,
	      (unsigned long long)e.v[0].cookie, e.n ? e.v[0].op : "");
	n = count_services(nl, &err);
	check(err == 0 && n == 0, "batch delete: %zu services left", n);
}

/* Programs n x 10 with one change per call (no batch); returns the time taken. */
/*
 * The timing phases each run in a fresh network namespace (IPVS state is per namespace).
 * Deleting destinations, as "ipvsadm -C" does, moves them to the namespace's dest trash
 * for a minute or two, and every later add-dest walks that whole list
 * (ip_vs_trash_get_dest()): after a 10000 x 10 table is flushed, adding dests in the same
 * namespace is many times slower, which would bias whichever phase runs second. Each
 * phase's namespace is kept alive (by its socket) until the end so that no namespace
 * teardown runs in the background of a later phase.
 */
#define N_PHASES 3

static struct ipvs_nl *phase_nl[N_PHASES];

static struct ipvs_nl *phase_open(int phase)
{
	int err;

	if (unshare(CLONE_NEWNET) < 0) {
		check(false, "bench: unshare(CLONE_NEWNET): %s", strerror(errno));
		return NULL;
	}
	/*
	 * With lo down, inet_addr_type() of the dests is not unicast and ip_vs_add_dest()
	 * refuses them with -EINVAL ("address not unicast"); the guest's first namespace has
	 * lo up.
	 */
	if (run("ip link set lo up") != 0)
		check(false, "bench: ip link set lo up");
	err = ipvs_nl_open(&phase_nl[phase]);
	if (!check(err == 0, "bench: open IPVS in a fresh netns: %d", err))
		return NULL;
	return phase_nl[phase];
}

/* Checks that @n_svc services of @n_dest dests are programmed, then flushes. */
static void phase_check(struct ipvs_nl *nl, size_t n_svc, size_t n_dest, const char *what)
{
	size_t i, n, nd = 0;
	int err, err2 = 0;

	n = count_services(nl, &err);
	for (i = 0; !err && !err2 && i < n_svc; i += 97) {
		struct ipvs_svc s = bench_svc(i);

		nd = 0;
		err2 = ipvs_nl_list_dests(nl, &s, count_dest, &nd);
		if (nd != n_dest)
			err2 = -ENOENT;
	}
	check(err == 0 && err2 == 0 && n == n_svc,
	      "bench: %s programmed %zu services (dests of every 97th: %d)", what, n, err2);
	run("ipvsadm -C");
}

/* Programs n x 10 with one change per call; returns the time taken. */
static double bench_unbatched(struct ipvs_nl *nl, size_t n_svc, size_t n_dest)
{
	struct ipvs_svc s;
	struct ipvs_dest d;
	size_t i, k;
	double t0, t;
	int err = 0;

	t0 = now();
	for (i = 0; i < n_svc; i++) {
		s = bench_svc(i);
		err = err ?: ipvs_nl_add_service(nl, &s);
		for (k = 0; k < n_dest; k++) {
			d = bench_dest(i, k);
			err = err ?: ipvs_nl_add_dest(nl, &s, &d);
		}
	}
	t = now() - t0;
	check(err == 0, "bench: one call per change: %d", err);
	return t;
}

static double bench_batch(struct ipvs_nl *nl, size_t n_svc, size_t n_dest)
{
	struct ipvs_svc s;
	struct ipvs_dest d;
	size_t i, k;
	double t0, t;
	int err;

	t0 = now();
	err = ipvs_nl_batch_begin(nl);
	for (i = 0; i < n_svc; i++) {
		s = bench_svc(i);
		err = err ?: ipvs_nl_add_service(nl, &s);
		for (k = 0; k < n_dest; k++) {
			d = bench_dest(i, k);
			err = err ?: ipvs_nl_add_dest(nl, &s, &d);
		}
	}
	err = err ?: ipvs_nl_batch_end(nl, NULL, NULL);
	t = now() - t0;
	check(err == 0, "bench: batch: %d", err);
	return t;
}

static double bench_ipvsadm(size_t n_svc, size_t n_dest)
{
	char *text, ap[64], dap[64];
	size_t i, k, len = 0, cap = n_svc * (n_dest + 1) * 64 + 1;
	struct ipvs_svc s;
	struct ipvs_dest d;
	double t0, t;
	FILE *f;
	int st = -1;

	text = malloc(cap);
	if (!text)
		abort();
	for (i = 0; i < n_svc; i++) {
		s = bench_svc(i);
		addr_port(&s.addr, s.port, ap, sizeof(ap));
		len += (size_t)snprintf(text + len, cap - len, "-A -t %s -s rr\n", ap);
		for (k = 0; k < n_dest; k++) {
			d = bench_dest(i, k);
			len += (size_t)snprintf(text + len, cap - len, "-a -t %s -r %s -m -w 1\n",
						ap, addr_port(&d.addr, d.port, dap, sizeof(dap)));
		}
	}
	t0 = now();
	f = popen("ipvsadm -R", "w");
	if (f) {
		fwrite(text, 1, len, f);
		st = pclose(f);
	}
	t = now() - t0;
	check(st == 0, "bench: ipvsadm -R exit status %d", st);
	free(text);
	return t;
}

/*
 * Programs n x 10 with one batch, with one call per change, and with ipvsadm -R (unless
 * @with_ipvsadm is false), each into an empty namespace; prints the times.
 */
static void bench(size_t n_svc, bool with_ipvsadm)
{
	const size_t n_dest = 10;
	double t_batch = 0, t_single = 0, t_ipvsadm = 0;
	struct ipvs_nl *nl;
	int i;

	nl = phase_open(0);
	if (nl) {
		t_batch = bench_batch(nl, n_svc, n_dest);
		phase_check(nl, n_svc, n_dest, "batch");
	}
	nl = phase_open(1);
	if (nl) {
		t_single = bench_unbatched(nl, n_svc, n_dest);
		phase_check(nl, n_svc, n_dest, "one call per change");
	}
	if (with_ipvsadm) {
		nl = phase_open(2);
		if (nl) {
			t_ipvsadm = bench_ipvsadm(n_svc, n_dest);
			phase_check(nl, n_svc, n_dest, "ipvsadm -R");
		}
	}
	printf("# bench: %zu services x %zu dests (%zu changes), each into an empty netns\n",
	       n_svc, n_dest, n_svc * (n_dest + 1));
	printf("# bench: ipvs_nl batch               %8.3f s\n", t_batch);
	printf("# bench: ipvs_nl one call per change %8.3f s\n", t_single);
	if (with_ipvsadm)
		printf("# bench: ipvsadm -R                  %8.3f s (%.1fx the batch)\n",
		       t_ipvsadm, t_batch > 0 ? t_ipvsadm / t_batch : 0.0);
	for (i = 0; i < N_PHASES; i++)
		ipvs_nl_close(phase_nl[i]);
}

/* ---- single changes ---- */

static void test_timeouts(struct ipvs_nl *nl)
{
	uint32_t tcp, fin, udp, t1, f1, u1;
	int err;

	err = ipvs_nl_get_timeouts(nl, &tcp, &fin, &udp);
	check(err == 0, "get timeouts: %d: tcp %u tcp_fin %u udp %u", err, tcp, fin, udp);
	err = ipvs_nl_set_timeouts(nl, 901, 121, 301);
	err = err ?: ipvs_nl_get_timeouts(nl, &t1, &f1, &u1);
	check(err == 0 && t1 == 901 && f1 == 121 && u1 == 301,
	      "set timeouts 901/121/301, read %u/%u/%u", t1, f1, u1);
	err = ipvs_nl_set_timeouts(nl, 0, 0, 302);
	err = err ?: ipvs_nl_get_timeouts(nl, &t1, &f1, &u1);
	check(err == 0 && t1 == 901 && f1 == 121 && u1 == 302,
	      "set only udp (0 leaves the others), read %u/%u/%u", t1, f1, u1);
	err = ipvs_nl_set_timeouts(nl, tcp, fin, udp);
	err = err ?: ipvs_nl_get_timeouts(nl, &t1, &f1, &u1);
	check(err == 0 && t1 == tcp && f1 == fin && u1 == udp, "timeouts restored");
}

static void test_singles(struct ipvs_nl *nl)
{
	struct model_svc m[N_MODEL];
	struct ipvs_svc s;
	struct ipvs_dest d;
	struct collect c = { .n = 0 };
	int i, k, err;

	memset(m, 0, sizeof(m));
	m[0].svc = svc_new(IPPROTO_TCP, "10.0.0.1", 80, "rr", 0);
	m[1].svc = svc_new(IPPROTO_UDP, "10.0.0.2", 53, "sh", 0);
	m[2].svc = svc_new(IPPROTO_TCP, "10.0.0.3", 443, "rr", 180);
	m[3].svc = svc_new(IPPROTO_TCP, "fd00::1", 80, "sh", 0);
	m[4].svc = svc_new(IPPROTO_UDP, "fd00::2", 53, "rr", 0);
	m[0].dests[m[0].n_dests++] = dest_new("10.1.0.1", 8080, 1);
	m[0].dests[m[0].n_dests++] = dest_new("10.1.0.2", 8080, 2);
	m[1].dests[m[1].n_dests++] = dest_new("10.1.0.3", 5353, 1);
	m[2].dests[m[2].n_dests++] = dest_new("10.1.0.4", 8443, 1);
	m[2].dests[m[2].n_dests++] = dest_new("10.1.0.5", 8443, 1);
	m[3].dests[m[3].n_dests++] = dest_new("fd00:1::1", 8080, 1);
	m[3].dests[m[3].n_dests++] = dest_new("fd00:1::2", 8080, 3);
	m[4].dests[m[4].n_dests++] = dest_new("fd00:1::3", 5353, 1);

	for (i = 0; i < N_MODEL; i++) {
		err = ipvs_nl_add_service(nl, &m[i].svc);
		m[i].present = err == 0;
		check(err == 0, "add service %s (%s %s): %d", model_names[i],
		      proto_name(m[i].svc.protocol), m[i].svc.sched, err);
		for (k = 0; k < m[i].n_dests; k++) {
			err = ipvs_nl_add_dest(nl, &m[i].svc, &m[i].dests[k]);
			check(err == 0, "add dest %d of %s: %d", k, model_names[i], err);
		}
	}
	check_err(ipvs_nl_add_service(nl, &m[0].svc), -EEXIST, "duplicate add service");
	check_err(ipvs_nl_add_dest(nl, &m[0].svc, &m[0].dests[1]), -EEXIST,
		  "duplicate add dest");
	compare_listing(nl, m, "after adds");

	/* edits */
	m[0].dests[1].weight = 7;
	check_err(ipvs_nl_edit_dest(nl, &m[0].svc, &m[0].dests[1]), 0, "edit dest weight");
	snprintf(m[0].svc.sched, sizeof(m[0].svc.sched), "wrr");
	check_err(ipvs_nl_edit_service(nl, &m[0].svc), 0, "edit service scheduler to wrr");
	m[1].svc.flags = IP_VS_SVC_F_PERSISTENT;
	m[1].svc.timeout = 600;
	check_err(ipvs_nl_edit_service(nl, &m[1].svc), 0, "edit service to persistent 600");
	compare_listing(nl, m, "after edits");
	{
		struct ipvs_svc got;

		err = ipvs_nl_get_service(nl, &m[1].svc, &got);
		check(err == 0 && got.flags == m[1].svc.flags && got.timeout == 600 &&
		      !strcmp(got.sched, m[1].svc.sched) && got.port == m[1].svc.port,
		      "get one service (GET_SERVICE, no dump): %d, %s, timeout %u", err, got.sched,
		      err ? 0 : got.timeout);
	}

	/* deletions and missing objects */
	check_err(ipvs_nl_del_dest(nl, &m[0].svc, &m[0].dests[0]), 0, "del dest");
	m[0].dests[0] = m[0].dests[1];
	m[0].n_dests = 1;
	d = dest_new("10.1.0.1", 8080, 1);
	/* ip_vs_del_dest() finds no such destination: -ENOENT */
	check_err(ipvs_nl_del_dest(nl, &m[0].svc, &d), -ENOENT, "del missing dest");
	/* the same for editing one */
	check_err(ipvs_nl_edit_dest(nl, &m[0].svc, &d), -ENOENT, "edit missing dest");
	s = svc_new(IPPROTO_TCP, "10.9.9.9", 1, "rr", 0);
	/* ip_vs_genl_set_cmd(): no such service for any command but NEW_SERVICE: -ESRCH */
	check_err(ipvs_nl_del_service(nl, &s), -ESRCH, "del missing service");
	check_err(ipvs_nl_edit_service(nl, &s), -ESRCH, "edit missing service");
	{
		struct ipvs_svc got;

		check_err(ipvs_nl_get_service(nl, &s, &got), -ENOENT, "get missing service");
	}
	check_err(ipvs_nl_add_dest(nl, &s, &d), -ESRCH, "add dest to missing service");
	check_err(ipvs_nl_del_dest(nl, &s, &d), -ESRCH, "del dest of missing service");
	/* a dump of the dests of a missing service is simply empty */
	err = ipvs_nl_list_dests(nl, &s, collect_dest, &c);
	check(err == 0 && c.n == 0, "list dests of missing service: %d, %d dests", err, c.n);
	/* the scheduler module ip_vs_nosuch cannot be loaded: -ENOENT */
	s = svc_new(IPPROTO_TCP, "10.9.9.9", 2, "nosuch", 0);
	check_err(ipvs_nl_add_service(nl, &s), -ENOENT, "add service, unknown scheduler");
	/* an IPv6 persistence netmask must be 1..128 even without persistence */
	s = svc_new(IPPROTO_TCP, "fd00::9", 2, "rr", 0);
	s.netmask = 0;
	check_err(ipvs_nl_add_service(nl, &s), -EINVAL, "add IPv6 service, netmask 0");
	/* a destination of the other family */
	d = dest_new("fd00:1::9", 8080, 1);
	check_err(ipvs_nl_add_dest(nl, &m[0].svc, &d), -EINVAL,
		  "add IPv6 dest to IPv4 service (refused locally)");
	check_err(ipvs_nl_del_service(nl, &m[4].svc), 0, "del service S4");
	m[4].present = false;
	compare_listing(nl, m, "after deletes");
	check_err(ipvs_nl_add_service(nl, &m[4].svc), 0, "re-add S4");
	m[4].present = true;
	check_err(ipvs_nl_add_dest(nl, &m[4].svc, &m[4].dests[0]), 0, "re-add S4 dest");
	compare_listing(nl, m, "after re-add");

	compare_ipvsadm(nl);

	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	err = ipvs_nl_list_services(nl, collect_svc, &c);
	check(err == 7 && c.n == 2, "a callback's non-zero return stops the walk: %d after %d",
	      err, c.n);
	err = ipvs_nl_get_info(nl, NULL, NULL);
	check(err == 0, "socket usable after a stopped walk: %d", err);
}

int main(void)
{
	struct ipvs_nl *nl = NULL;
	uint32_t version = 0, tab = 0;
	const char *env = getenv("IPVS_BENCH_N");
	size_t bench_n = env ? strtoul(env, NULL, 10) : 10000;
	const char *with_ipvsadm = getenv("IPVS_BENCH_IPVSADM");
	int err;

	err = ipvs_nl_open(&nl);
	if (err == -EPROTONOSUPPORT) {
		/* The library never loads modules; the test may. */
		printf("# IPVS family missing after the kernel's autoload; modprobe ip_vs\n");
		run("modprobe ip_vs");
		err = ipvs_nl_open(&nl);
	}
	if (!check(err == 0, "open IPVS family: %d", err)) {
		printf("Bail out! no IPVS\n1..%d\n", n_tests);
		return 1;
	}
	run("ipvsadm -C");
	err = ipvs_nl_get_info(nl, &version, &tab);
	check(err == 0 && version >= 0x010200 && tab > 0,
	      "get info: version %u.%u.%u, conn table size %u", version >> 16,
	      (version >> 8) & 0xff, version & 0xff, tab);
	check_err(ipvs_nl_batch_end(nl, NULL, NULL), -EINVAL, "batch end without begin");

	test_singles(nl);
	test_timeouts(nl);
	test_batch(nl);
	run("ipvsadm -C");
	if (bench_n)
		bench(bench_n, !with_ipvsadm || strcmp(with_ipvsadm, "0") != 0);
	ipvs_nl_close(nl);
	printf("# %d passed, %d failed\n", n_tests - n_failed, n_failed);
	printf("1..%d\n", n_tests);
	return n_failed ? 1 : 0;
}
