// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The IPVS backend: kube-proxy's IPVS mode. One virtual server per frontend (ClusterIP,
 * each node address of a NodePort, externalIP, load-balancer ingress) and protocol/port,
 * one masquerading real server per endpoint, programmed over the "IPVS" generic-netlink
 * family (genl.c); the VIPs bound to the kube-ipvs0 dummy link (link.c); masquerade
 * decided by ipsets and a fixed handful of rules (rules.c).
 *
 * Incremental: a sync with a partial delta touches only the virtual servers of the
 * service ports that changed (plus those with real servers still draining); it reads
 * their real servers back from the kernel, so one deleted behind our back is re-added.
 * A full sync (the first, and the periodic one) reads the whole IPVS table, the addresses
 * of kube-ipvs0 and our sets, and repairs every difference.
 *
 * Graceful termination, as kube-proxy does it: a TCP or SCTP real server that is no
 * longer wanted but still has connections gets weight 0 (no new connections) and is
 * deleted by the first sync that finds it idle, or GRACE_MAX_S after it was drained; UDP
 * real servers are deleted at once (expire_nodest_conn ends their flows).
 *
 * What is ours: a virtual server whose address is bound to kube-ipvs0, one we programmed
 * in this process's life, and one on a node-local address with a port in the NodePort
 * range. Anything else in the IPVS table is left alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ifaddrs.h>
#include <netinet/in.h>
#include <linux/ip_vs.h>

#include "internal.h"
#include "../common/caps.h"
#include "../common/conntrack.h"
#include "../common/ipset.h"
#include "../common/opts.h"
#include "../common/tc.h"
#include "genl.h"
#include "ipvs.h"
#include "link.h"

#define DUMMY_LINK "kube-ipvs0"
#define GRACE_MAX_S (15 * 60)		/* kube-proxy's old rsGracefulDeletePeriod */
#define NODE_PORT_MIN 30000		/* the API server's default service-node-port-range */
#define NODE_PORT_MAX 32767

/* One virtual server as we want it (and, once programmed, as we programmed it). */
struct vs {
	struct ipvs_svc svc;
	enum kp_frontend_kind kind;
	bool ext_masq;		/* NodePort/externalIP/LB with externalTrafficPolicy Cluster */
	char *ns, *name, *port_name;
	enum kp_protocol proto;
	size_t n_dests;
	struct ipvs_dest *dests;	/* sorted by address, port */
	bool *local;			/* per dest: the endpoint runs on this node */
	struct kp_addr *ranges;		/* LB ingress: loadBalancerSourceRanges of its family */
	uint8_t *range_prefixes;
	size_t n_ranges;
};

/* One virtual server to reconcile in this sync. */
struct job {
	char key[80];
	struct vs *want;		/* NULL: delete it */
	bool in_kernel;			/* the service exists (as far as we know) */
	struct ipvs_svc have;		/* its attributes when in_kernel */
	struct ipvs_dest *kdests;	/* read back */
	size_t n_kdests;
};

static const char *const local_modes[] = KP_DETECT_LOCAL_MODES;

/* The options init takes (ipvs_options[]); timeouts in ms, set in whole seconds. */
struct ipvs_opts {
	struct kp_cidr_list cluster_cidr;
	const char *detect_local, *pod_bridge, *pod_prefix;
	struct kp_cidr_list exclude;
	bool masquerade_all;
	uint32_t masquerade_bit;
	const char *scheduler;
	bool strict_arp;
	uint32_t tcp_timeout_ms, tcpfin_timeout_ms, udp_timeout_ms;
};

static const struct kp_option ipvs_options[] = {
	KP_OPTION_CLUSTER_CIDR(struct ipvs_opts, cluster_cidr),
	KP_OPTION_DETECT_LOCAL(struct ipvs_opts, detect_local, pod_bridge, pod_prefix,
			       local_modes),
	KP_OPTION_MASQUERADE_ALL(struct ipvs_opts, masquerade_all),
	KP_OPTION_MASQUERADE_BIT(struct ipvs_opts, masquerade_bit),
	{ .name = "exclude-cidrs", .type = KP_OPT_CIDR_LIST,
	  .offset = offsetof(struct ipvs_opts, exclude),
	  .help = "virtual servers on these addresses are never removed, unless this process "
		  "made them" },
	{ .name = "scheduler", .type = KP_OPT_STRING, .offset = offsetof(struct ipvs_opts, scheduler),
	  .def = "rr", .help = "IPVS scheduler: rr, lc, dh, sh, sed, nq, wrr, wlc, lblc, lblcr, "
			       "mh, ... (what the kernel has)" },
	{ .name = "strict-arp", .type = KP_OPT_BOOL, .offset = offsetof(struct ipvs_opts, strict_arp),
	  .def = "false", .help = "arp_ignore=1, arp_announce=2: no ARP replies for VIPs" },
	{ .name = "tcp-timeout", .type = KP_OPT_DURATION,
	  .offset = offsetof(struct ipvs_opts, tcp_timeout_ms), .def = "0",
	  .help = "IPVS idle timeout of TCP connections (0: leave as is)" },
	{ .name = "tcpfin-timeout", .type = KP_OPT_DURATION,
	  .offset = offsetof(struct ipvs_opts, tcpfin_timeout_ms), .def = "0",
	  .help = "IPVS timeout of TCP connections after a FIN (0: leave as is)" },
	{ .name = "udp-timeout", .type = KP_OPT_DURATION,
	  .offset = offsetof(struct ipvs_opts, udp_timeout_ms), .def = "0",
	  .help = "IPVS timeout of UDP flows (0: leave as is)" },
};

struct ipvs {
	struct kp_ctx *ctx;
	const struct ipvs_opts *o;	/* borrowed from the library, valid until destroy */
	struct ipvs_nl *nl;
	struct rtnl *rt;
	struct kp_ipset_nl *sets;
	int ifindex;
	char sched[16];
	uint32_t svc_flags;		/* scheduler flags (mh: hash the port too) */
	struct kp_local_detect pods;	/* how pod traffic is told apart, from @o */
	bool random_fully;		/* MASQUERADE --random-fully: the kernel has it */
	bool ipv6_rules;		/* ip6tables usable */
	bool prepared;			/* sysctls, link, sets, rules done once */
	bool synced;			/* the last sync succeeded: deltas are enough */

	struct kp_map *vs;		/* key -> struct vs: what we programmed */
	struct kp_map *addrs;		/* bound VIP text -> use count */
	struct kp_map *set_counts[2][_SET_MAX];	/* [v6][set] entry text -> use count */
	struct kp_map *grace;		/* "vskey|dest" -> time it was drained (seconds) */

	/* this sync */
	struct job *jobs;
	size_t n_jobs, cap_jobs;
	struct kp_map *job_keys;	/* key -> job index + 1 */
	int first_err;

	/* stale UDP conntrack entries, and metrics */
	bool ct_started;		/* a sync succeeded since start (and reconciled) */
	struct kp_ct_stats ct_stats;
	uint64_t n_restore_failures[2];	/* failed iptables edits, [IPv4, IPv6] */
};

static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static uint8_t ip_proto(enum kp_protocol p)
{
	return p == KP_PROTO_UDP ? IPPROTO_UDP : p == KP_PROTO_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
}

static char proto_char(uint8_t p)
{
	return p == IPPROTO_UDP ? 'U' : p == IPPROTO_SCTP ? 'S' : 'T';
}

static void svc_key(const struct ipvs_svc *s, char *buf, size_t size)
{
	char a[KP_ADDR_STRLEN];

	snprintf(buf, size, "%c|%s|%u", proto_char(s->protocol),
		 kp_addr_to_str(&s->addr, a, sizeof(a)), s->port);
}

static void vs_free(struct vs *v)
{
	if (!v)
		return;
	free(v->ns);
	free(v->name);
	free(v->port_name);
	free(v->dests);
	free(v->local);
	free(v->ranges);
	free(v->range_prefixes);
	free(v);
}

static int dest_cmp(const void *a, const void *b)
{
	const struct ipvs_dest *x = a, *y = b;
	int c = kp_addr_cmp(&x->addr, &y->addr);

	return c ? c : (int)x->port - (int)y->port;
}

/* ---- the virtual servers a service port wants ---- */

struct vs_list {
	struct vs **v;
	size_t n, cap;
};

static void vs_list_clear(struct vs_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		vs_free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int want_of(struct ipvs *iv, const struct kp_svc_port *sp, struct vs_list *out)
{
	const struct kp_frontend *fes;
	size_t n_fe;

	out->n = 0;
	if (!sp)
		return 0;
	fes = kp_svc_port_get_frontends(sp, &n_fe);
	for (size_t i = 0; i < n_fe; i++) {
		const struct kp_frontend *fe = &fes[i];
		const struct kp_endpoint *eps;
		size_t n_eps;
		struct vs *v;

		/* every local address (kp_ctx_set_nodeport_any_local()): a virtual server
		 * needs each one, which the caller lists instead */
		if (fe->kind == KP_FE_NODE_PORT && kp_addr_is_unspecified(&fe->addr))
			continue;
		if (out->n == out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 8;
			void *p = realloc(out->v, cap * sizeof(*out->v));

			if (!p)
				return -ENOMEM;
			out->v = p;
			out->cap = cap;
		}
		eps = kp_svc_port_get_endpoints(sp, fe->addr.family, fe->external, &n_eps);
		v = calloc(1, sizeof(*v));
		if (!v)
			return -ENOMEM;
		out->v[out->n++] = v;
		v->ns = strdup(kp_svc_port_get_namespace(sp));
		v->name = strdup(kp_svc_port_get_name(sp));
		v->port_name = strdup(kp_svc_port_get_port_name(sp));
		v->dests = n_eps ? calloc(n_eps, sizeof(*v->dests)) : NULL;
		v->local = n_eps ? calloc(n_eps, sizeof(*v->local)) : NULL;
		if (!v->ns || !v->name || !v->port_name || (n_eps && (!v->dests || !v->local)))
			return -ENOMEM;
		v->kind = fe->kind;
		v->proto = kp_svc_port_get_protocol(sp);
		v->ext_masq = fe->kind != KP_FE_CLUSTER_IP && !kp_svc_port_external_local(sp);
		v->svc.family = fe->addr.family;
		v->svc.protocol = ip_proto(v->proto);
		v->svc.addr = fe->addr;
		v->svc.port = fe->port;
		snprintf(v->svc.sched, sizeof(v->svc.sched), "%s", iv->sched);
		v->svc.flags = iv->svc_flags;
		v->svc.netmask = fe->addr.family == AF_INET6 ? 128 : 0xffffffffu;
		if (kp_svc_port_get_affinity(sp) == KP_AFFINITY_CLIENT_IP) {
			v->svc.flags |= IP_VS_SVC_F_PERSISTENT;
			v->svc.timeout = kp_svc_port_get_affinity_timeout(sp);
		}
		if (fe->kind == KP_FE_LOAD_BALANCER) {
			const uint8_t *prefixes;
			size_t n_r;
			const struct kp_addr *r = kp_svc_port_get_source_ranges(sp, &prefixes, &n_r);

			v->ranges = n_r ? calloc(n_r, sizeof(*v->ranges)) : NULL;
			v->range_prefixes = n_r ? calloc(n_r, 1) : NULL;
			if (n_r && (!v->ranges || !v->range_prefixes))
				return -ENOMEM;
			for (size_t k = 0; k < n_r; k++) {
				if (r[k].family != fe->addr.family)
					continue;
				v->ranges[v->n_ranges] = r[k];
				v->range_prefixes[v->n_ranges++] = prefixes[k];
			}
		}
		for (size_t j = 0; j < n_eps; j++) {
			v->dests[j].addr = eps[j].addr;
			v->dests[j].port = eps[j].port;
			v->dests[j].fwd = IP_VS_CONN_F_MASQ;
			v->dests[j].weight = 1;
			v->local[j] = eps[j].local;
		}
		v->n_dests = n_eps;	/* sorted and de-duplicated by the state */
	}
	return 0;
}

/* ---- what sets, addresses a virtual server uses ---- */

typedef void (*use_fn)(struct ipvs *iv, int v6, enum ipvs_set set, const struct kp_ipset_entry *e,
		       int delta);

static void entry_key(enum ipvs_set set, const struct kp_ipset_entry *e, char *buf, size_t size)
{
	char a[KP_ADDR_STRLEN], b[KP_ADDR_STRLEN];

	if (set >= SET_NODE_PORT_TCP)
		snprintf(buf, size, "%u", e->port);
	else if (set == SET_LB_SRC_CIDR)
		snprintf(buf, size, "%s|%u|%u|%s|%u", kp_addr_to_str(&e->addr, a, sizeof(a)),
			 e->proto, e->port, kp_addr_to_str(&e->addr2, b, sizeof(b)),
			 (unsigned)(e->cidr2 ? e->cidr2 : e->addr2.family == AF_INET6 ? 128 : 32));
	else if (set == SET_LOOP_BACK)
		snprintf(buf, size, "%s|%u|%u|%s", kp_addr_to_str(&e->addr, a, sizeof(a)),
			 e->proto, e->port, kp_addr_to_str(&e->addr2, b, sizeof(b)));
	else
		snprintf(buf, size, "%s|%u|%u", kp_addr_to_str(&e->addr, a, sizeof(a)), e->proto,
			 e->port);
}

/* Calls @fn for each set entry @v needs. */
static void vs_entries(struct ipvs *iv, const struct vs *v, int delta, use_fn fn)
{
	int v6 = v->svc.family == AF_INET6;
	struct kp_ipset_entry e = {
		.addr = v->svc.addr, .proto = v->svc.protocol, .port = v->svc.port};

	if (v->kind == KP_FE_CLUSTER_IP)
		fn(iv, v6, SET_CLUSTER_IP, &e, delta);
	else if (v->kind == KP_FE_NODE_PORT && v->ext_masq)
		fn(iv, 0, v->svc.protocol == IPPROTO_UDP ? SET_NODE_PORT_UDP :
		   v->svc.protocol == IPPROTO_SCTP ? SET_NODE_PORT_SCTP : SET_NODE_PORT_TCP, &e, delta);
	else if (v->kind != KP_FE_NODE_PORT && v->ext_masq)
		fn(iv, v6, SET_EXTERNAL_IP, &e, delta);
	if (v->kind == KP_FE_LOAD_BALANCER && v->n_ranges) {
		fn(iv, v6, SET_LB_FW, &e, delta);
		for (size_t i = 0; i < v->n_ranges; i++) {
			struct kp_ipset_entry c = e;

			c.addr2 = v->ranges[i];
			c.cidr2 = v->range_prefixes[i];
			fn(iv, v6, SET_LB_SRC_CIDR, &c, delta);
		}
	}
	/* hairpin: only an endpoint on this node can send to itself through a VIP here
	 * (kube-proxy's KUBE-LOOP-BACK holds the local endpoints only) */
	for (size_t i = 0; i < v->n_dests; i++) {
		struct kp_ipset_entry l = {.addr = v->dests[i].addr,
					   .proto = v->svc.protocol,
					   .port = v->dests[i].port,
					   .addr2 = v->dests[i].addr};

		if (v->local[i])
			fn(iv, v6, SET_LOOP_BACK, &l, delta);
	}
}

/* Adjusts a use count in @map; returns the new count. */
static long count_adjust(struct kp_map *map, const char *key, int delta)
{
	long n = (long)(intptr_t)kp_map_get(map, key) + delta;

	if (n <= 0)
		kp_map_del(map, key);
	else if (kp_map_put(map, key, (void *)(intptr_t)n, NULL) < 0)
		return -1;
	return n;
}

/* incremental use: the kernel set follows each 0 <-> 1 transition */
static void use_entry(struct ipvs *iv, int v6, enum ipvs_set set, const struct kp_ipset_entry *e,
		      int delta)
{
	char key[160];
	long n;
	int r;

	entry_key(set, e, key, sizeof(key));
	n = count_adjust(iv->set_counts[v6][set], key, delta);
	if (n < 0) {
		iv->first_err = iv->first_err ? iv->first_err : -ENOMEM;
		return;
	}
	if ((delta > 0 && n == 1) || (delta < 0 && n == 0)) {
		const char *name = ipvs_set_name(set, v6 ? AF_INET6 : AF_INET);

		r = delta > 0 ? kp_ipset_add(iv->sets, name, e) : kp_ipset_del(iv->sets, name, e);
		if (r < 0 && !iv->first_err)
			iv->first_err = r;
	}
}

/* full sync: only count; the kernel sets are compared afterwards */
static void count_entry(struct ipvs *iv, int v6, enum ipvs_set set, const struct kp_ipset_entry *e,
			int delta)
{
	char key[160];

	entry_key(set, e, key, sizeof(key));
	if (count_adjust(iv->set_counts[v6][set], key, delta) < 0)
		iv->first_err = iv->first_err ? iv->first_err : -ENOMEM;
}

static bool binds(const struct vs *v)
{
	return v->kind != KP_FE_NODE_PORT;
}

/* incremental address use: bind on 0 -> 1, unbind on 1 -> 0 */
static void use_addr(struct ipvs *iv, const struct vs *v, int delta)
{
	char a[KP_ADDR_STRLEN];
	long n;
	int r;

	if (!binds(v))
		return;
	kp_addr_to_str(&v->svc.addr, a, sizeof(a));
	n = count_adjust(iv->addrs, a, delta);
	if (n < 0) {
		iv->first_err = iv->first_err ? iv->first_err : -ENOMEM;
		return;
	}
	if ((delta > 0 && n == 1) || (delta < 0 && n == 0)) {
		r = delta > 0 ? rtnl_addr_add(iv->rt, iv->ifindex, &v->svc.addr) :
				rtnl_addr_del(iv->rt, iv->ifindex, &v->svc.addr);
		if (r < 0 && !iv->first_err)
			iv->first_err = r;
	}
}

/* ---- jobs ---- */

static struct job *job_for(struct ipvs *iv, const char *key)
{
	uintptr_t idx = (uintptr_t)kp_map_get(iv->job_keys, key);
	struct job *j;

	if (idx)
		return &iv->jobs[idx - 1];
	if (iv->n_jobs == iv->cap_jobs) {
		size_t cap = iv->cap_jobs ? iv->cap_jobs * 2 : 64;
		void *p = realloc(iv->jobs, cap * sizeof(*iv->jobs));

		if (!p)
			return NULL;
		iv->jobs = p;
		iv->cap_jobs = cap;
	}
	j = &iv->jobs[iv->n_jobs];
	memset(j, 0, sizeof(*j));
	snprintf(j->key, sizeof(j->key), "%s", key);
	if (kp_map_put(iv->job_keys, key, (void *)(uintptr_t)(iv->n_jobs + 1), NULL) < 0)
		return NULL;
	iv->n_jobs++;
	return j;
}

static void jobs_clear(struct ipvs *iv)
{
	for (size_t i = 0; i < iv->n_jobs; i++)
		free(iv->jobs[i].kdests);
	iv->n_jobs = 0;
	kp_map_free(iv->job_keys);
	iv->job_keys = NULL;
}

static int collect_dest(const struct ipvs_dest *d, void *userdata)
{
	struct job *j = userdata;
	void *p = realloc(j->kdests, (j->n_kdests + 1) * sizeof(*j->kdests));

	if (!p)
		return -ENOMEM;
	j->kdests = p;
	j->kdests[j->n_kdests++] = *d;
	return 0;
}

/* Reads a job's real servers back; a service that vanished is marked missing. */
static int read_dests(struct ipvs *iv, struct job *j)
{
	int r;

	if (!j->in_kernel)
		return 0;
	r = ipvs_nl_list_dests(iv->nl, &j->have, collect_dest, j);
	if (r == -ESRCH || r == -ENOENT) {
		j->in_kernel = false;
		free(j->kdests);
		j->kdests = NULL;
		j->n_kdests = 0;
		return 0;
	}
	if (r < 0)
		return r;
	if (j->n_kdests > 1)
		qsort(j->kdests, j->n_kdests, sizeof(*j->kdests), dest_cmp);
	return 0;
}

static bool svc_differs(const struct ipvs_svc *have, const struct ipvs_svc *want)
{
	uint32_t mask = ~(uint32_t)IP_VS_SVC_F_HASHED;

	return strcmp(have->sched, want->sched) || (have->flags & mask) != (want->flags & mask) ||
	       ((want->flags & IP_VS_SVC_F_PERSISTENT) && (have->timeout != want->timeout ||
							    have->netmask != want->netmask));
}

static void grace_key(const char *vskey, const struct ipvs_dest *d, char *buf, size_t size)
{
	char a[KP_ADDR_STRLEN];

	snprintf(buf, size, "%s|%s|%u", vskey, kp_addr_to_str(&d->addr, a, sizeof(a)), d->port);
}

/* A real server we no longer want: delete, or drain first (TCP, SCTP with connections). */
static void retire_dest(struct ipvs *iv, struct job *j, const struct ipvs_svc *svc,
			const struct ipvs_dest *d)
{
	char gk[200];
	intptr_t since;

	grace_key(j->key, d, gk, sizeof(gk));
	since = (intptr_t)kp_map_get(iv->grace, gk);
	if (svc->protocol == IPPROTO_UDP || d->active_conns + d->inact_conns == 0 ||
	    (since && now_s() - (since - 1) >= GRACE_MAX_S)) {
		ipvs_nl_del_dest(iv->nl, svc, d);
		kp_map_del(iv->grace, gk);
		return;
	}
	if (d->weight) {
		struct ipvs_dest z = *d;

		z.weight = 0;
		ipvs_nl_edit_dest(iv->nl, svc, &z);
	}
	if (!since && kp_map_put(iv->grace, gk, (void *)(intptr_t)(now_s() + 1), NULL) < 0)
		iv->first_err = iv->first_err ? iv->first_err : -ENOMEM;
}

/* Queues the changes that make the kernel's virtual server @j match j->want. */
static void reconcile(struct ipvs *iv, struct job *j, size_t idx)
{
	const struct vs *w = j->want;
	size_t a = 0, b = 0;
	char gk[200];

	ipvs_nl_batch_cookie(iv->nl, idx);
	if (!w) {
		if (j->in_kernel)
			ipvs_nl_del_service(iv->nl, &j->have);
		for (size_t i = 0; i < j->n_kdests; i++) {
			grace_key(j->key, &j->kdests[i], gk, sizeof(gk));
			kp_map_del(iv->grace, gk);
		}
		return;
	}
	if (!j->in_kernel)
		ipvs_nl_add_service(iv->nl, &w->svc);
	else if (svc_differs(&j->have, &w->svc))
		ipvs_nl_edit_service(iv->nl, &w->svc);
	/* merge two sorted lists */
	while (a < w->n_dests || b < j->n_kdests) {
		int c = a == w->n_dests ? 1 : b == j->n_kdests ? -1 :
			dest_cmp(&w->dests[a], &j->kdests[b]);

		if (c < 0) {
			ipvs_nl_add_dest(iv->nl, &w->svc, &w->dests[a++]);
		} else if (c > 0) {
			retire_dest(iv, j, &w->svc, &j->kdests[b++]);
		} else {
			const struct ipvs_dest *k = &j->kdests[b++];

			if (k->weight != w->dests[a].weight || k->fwd != w->dests[a].fwd)
				ipvs_nl_edit_dest(iv->nl, &w->svc, &w->dests[a]);
			grace_key(j->key, k, gk, sizeof(gk));
			kp_map_del(iv->grace, gk);
			a++;
		}
	}
}

static void on_error(uint64_t cookie, const char *op, int err, void *userdata)
{
	struct ipvs *iv = userdata;
	const struct job *j = cookie < iv->n_jobs ? &iv->jobs[cookie] : NULL;
	const struct vs *v = j ? j->want : NULL;

	if (v)
		kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: service %s/%s %s%s%s/%s %s: %s: %s", v->ns,
		       v->name, v->port_name, *v->port_name ? " " : "", j->key,
		       kp_protocol_name(v->proto), kp_frontend_kind_name(v->kind), op,
		       kp_strerror(err));
	else
		kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: virtual server %s: %s: %s", j ? j->key : "?",
		       op, kp_strerror(err));
}

/* Reads back and reconciles every job, in one batch. */
/*
 * kube-proxy's order: the VIP of every virtual server about to be made or changed is bound
 * to kube-ipvs0 first. A virtual server that a kproxyd killed mid-sync leaves behind is
 * then always on a bound address, which is what marks it ours at the next start; on an
 * unbound one it was taken for another program's and leaked (tests/vm/test-ipvs.py's
 * kills found 538 such). An address already bound is no error; a failure is the sync's
 * (first_err), and the jobs run all the same.
 */
static void prebind(struct ipvs *iv)
{
	int r = rtnl_batch_begin(iv->rt);

	for (size_t i = 0; r >= 0 && i < iv->n_jobs; i++) {
		const struct vs *v = iv->jobs[i].want;

		if (v && binds(v))
			rtnl_addr_add(iv->rt, iv->ifindex, &v->svc.addr);
	}
	if (r >= 0)
		r = rtnl_batch_end(iv->rt);
	if (r < 0 && !iv->first_err)
		iv->first_err = r;
}

static int run_jobs(struct ipvs *iv)
{
	int r;

	for (size_t i = 0; i < iv->n_jobs; i++) {
		r = read_dests(iv, &iv->jobs[i]);
		if (r < 0) {
			kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: virtual server %s: list real servers: "
			       "%s", iv->jobs[i].key, kp_strerror(r));
			return r;
		}
	}
	r = ipvs_nl_batch_begin(iv->nl);
	if (r < 0)
		return r;
	for (size_t i = 0; i < iv->n_jobs; i++)
		reconcile(iv, &iv->jobs[i], i);
	return ipvs_nl_batch_end(iv->nl, on_error, iv);
}

/* ---- one-time preparation ---- */

static void write_sysctl(struct ipvs *iv, const char *path, const char *value)
{
	int r = kp_sysctl_set(path, value);

	if (r < 0)
		kp_log(iv->ctx, KP_LOG_WARN, "ipvs: cannot set %s to %s: %s", path, value,
		       kp_strerror(r));
}

static int create_sets(struct ipvs *iv)
{
	for (int v6 = 0; v6 < 2; v6++) {
		for (int s = 0; s < _SET_MAX; s++) {
			int r;

			if (v6 && ipvs_set_familyless(s))
				continue;
			r = kp_ipset_create(iv->sets, ipvs_set_name(s, v6 ? AF_INET6 : AF_INET),
					    ipvs_set_type(s), v6 ? AF_INET6 : AF_INET);
			if (r < 0) {
				kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: create ipset %s (%s): %s",
				       ipvs_set_name(s, v6 ? AF_INET6 : AF_INET), ipvs_set_type(s),
				       kp_strerror(r));
				return r;
			}
		}
	}
	return 0;
}

static int write_rules(struct ipvs *iv)
{
	struct ipvs_rules_cfg cfg = {
		.masquerade_all = iv->o->masquerade_all,
		.pods = &iv->pods,
		.mark = 1u << iv->o->masquerade_bit,
		.random_fully = iv->random_fully,
	};
	int r = ipvs_rules_sync(iv->ctx, AF_INET, &cfg);

	if (r < 0) {
		iv->n_restore_failures[0]++;
		return r;
	}
	r = iv->ipv6_rules ? ipvs_rules_sync(iv->ctx, AF_INET6, &cfg) : 0;
	iv->n_restore_failures[1] += r < 0;
	return r;
}

static int prepare(struct ipvs *iv)
{
	int r;

	/* as kube-proxy's NewProxier: IPVS connections go through conntrack (so masquerade
	 * works), flows to deleted real servers end, persistence templates follow weight 0 */
	write_sysctl(iv, "net/ipv4/vs/conntrack", "1");
	write_sysctl(iv, "net/ipv4/vs/expire_nodest_conn", "1");
	write_sysctl(iv, "net/ipv4/vs/expire_quiescent_template", "1");
	write_sysctl(iv, "net/ipv4/ip_forward", "1");
	if (iv->o->strict_arp) {
		write_sysctl(iv, "net/ipv4/conf/all/arp_ignore", "1");
		write_sysctl(iv, "net/ipv4/conf/all/arp_announce", "2");
	}
	if (iv->o->tcp_timeout_ms || iv->o->tcpfin_timeout_ms || iv->o->udp_timeout_ms) {
		/* in whole seconds, as ipvsadm --set takes them */
		r = ipvs_nl_set_timeouts(iv->nl, iv->o->tcp_timeout_ms / 1000,
					 iv->o->tcpfin_timeout_ms / 1000,
					 iv->o->udp_timeout_ms / 1000);
		if (r < 0)
			kp_log(iv->ctx, KP_LOG_WARN, "ipvs: cannot set the IPVS timeouts: %s",
			       kp_strerror(r));
	}
	r = rtnl_dummy_ensure(iv->rt, DUMMY_LINK, &iv->ifindex);
	if (r < 0) {
		kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: dummy link %s: %s", DUMMY_LINK, kp_strerror(r));
		return r;
	}
	r = create_sets(iv);
	if (r < 0)
		return r;
	r = write_rules(iv);
	if (r < 0)
		return r;
	iv->prepared = true;
	return 0;
}

/* ---- ownership of what is in the kernel ---- */

struct kernel_view {
	struct kp_map *bound;		/* addresses on kube-ipvs0 */
	struct kp_map *local;		/* other local addresses */
};

static int collect_addr(const struct kp_addr *a, void *userdata)
{
	char s[KP_ADDR_STRLEN];

	return kp_map_put(userdata, kp_addr_to_str(a, s, sizeof(s)), (void *)1, NULL);
}

static int kernel_view_read(struct ipvs *iv, struct kernel_view *kv)
{
	struct ifaddrs *ifa = NULL;
	int r;

	kv->bound = kp_map_new();
	kv->local = kp_map_new();
	if (!kv->bound || !kv->local)
		return -ENOMEM;
	if (iv->ifindex > 0) {
		r = rtnl_addr_list(iv->rt, iv->ifindex, collect_addr, kv->bound);
		if (r < 0)
			return r;
	}
	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		struct kp_addr a = { 0 };
		char s[KP_ADDR_STRLEN];

		if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET &&
				     i->ifa_addr->sa_family != AF_INET6))
			continue;
		if (!strcmp(i->ifa_name, DUMMY_LINK))
			continue;
		a.family = i->ifa_addr->sa_family;
		if (a.family == AF_INET)
			a.v4 = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		else
			a.v6 = ((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		kp_map_put(kv->local, kp_addr_to_str(&a, s, sizeof(s)), (void *)1, NULL);
	}
	freeifaddrs(ifa);
	return 0;
}

static void kernel_view_free(struct kernel_view *kv)
{
	kp_map_free(kv->bound);
	kp_map_free(kv->local);
}

static bool binds_addr(const struct kernel_view *kv, const struct kp_addr *a)
{
	char s[KP_ADDR_STRLEN];

	return kp_map_get(kv->bound, kp_addr_to_str(a, s, sizeof(s))) != NULL;
}

static bool owned(struct ipvs *iv, const struct kernel_view *kv, const struct ipvs_svc *s)
{
	char key[80], a[KP_ADDR_STRLEN];

	svc_key(s, key, sizeof(key));
	if (kp_map_get(iv->vs, key))
		return true;
	/* --ipvs-exclude-cidrs: another program's, whatever else it looks like */
	for (size_t i = 0; i < iv->o->exclude.n; i++)
		if (kp_addr_in_prefix(&s->addr, &iv->o->exclude.v[i].addr,
				      iv->o->exclude.v[i].prefix))
			return false;
	kp_addr_to_str(&s->addr, a, sizeof(a));
	if (kp_map_get(kv->bound, a))
		return true;
	return kp_map_get(kv->local, a) && s->port >= NODE_PORT_MIN && s->port <= NODE_PORT_MAX;
}

/* ---- full sync ---- */

struct full_ctx {
	struct ipvs *iv;
	struct kp_map *want;		/* key -> struct vs, being built */
	struct kernel_view kv;
	int err;
};

static int want_port(const struct kp_svc_port *sp, void *userdata)
{
	struct full_ctx *f = userdata;
	struct vs_list l = { 0 };
	int r = want_of(f->iv, sp, &l);

	for (size_t i = 0; i < l.n; i++) {
		char key[80];
		void *old = NULL;

		if (r < 0)
			break;
		svc_key(&l.v[i]->svc, key, sizeof(key));
		old = kp_map_get(f->want, key);
		if (old) {
			kp_log(f->iv->ctx, KP_LOG_WARN, "ipvs: virtual server %s is wanted by %s/%s "
			       "and %s/%s; the first keeps it", key, ((struct vs *)old)->ns,
			       ((struct vs *)old)->name, l.v[i]->ns, l.v[i]->name);
			continue;
		}
		r = kp_map_put(f->want, key, l.v[i], NULL);
		if (r < 0)
			break;
		l.v[i] = NULL;
	}
	vs_list_clear(&l);
	return r;
}

static int kernel_svc(const struct ipvs_svc *s, void *userdata)
{
	struct full_ctx *f = userdata;
	struct ipvs *iv = f->iv;
	char key[80];
	struct job *j;

	if (s->family != AF_INET && s->family != AF_INET6)
		return 0;	/* fwmark services have no address: never ours */
	svc_key(s, key, sizeof(key));
	if (!kp_map_get(f->want, key) && !owned(iv, &f->kv, s))
		return 0;
	j = job_for(iv, key);
	if (!j)
		return -ENOMEM;
	j->in_kernel = true;
	j->have = *s;
	j->want = kp_map_get(f->want, key);
	return 0;
}

struct set_diff {
	enum ipvs_set set;
	struct kp_map *seen;		/* entry text -> 1, what the kernel set holds */
	struct kp_ipset_entry *stale;	/* kernel entries no longer counted */
	size_t n_stale;
	const struct kp_map *counts;
};

static int kernel_entry(const struct kp_ipset_entry *e, void *userdata)
{
	struct set_diff *d = userdata;
	char key[160];

	entry_key(d->set, e, key, sizeof(key));
	if (kp_map_put(d->seen, key, (void *)1, NULL) < 0)
		return -ENOMEM;
	if (!kp_map_get(d->counts, key)) {
		void *p = realloc(d->stale, (d->n_stale + 1) * sizeof(*d->stale));

		if (!p)
			return -ENOMEM;
		d->stale = p;
		d->stale[d->n_stale++] = *e;
	}
	return 0;
}

static int parse_entry(enum ipvs_set set, const char *key, struct kp_ipset_entry *e)
{
	char buf[160], *p, *q;

	memset(e, 0, sizeof(*e));
	if (set >= SET_NODE_PORT_TCP) {
		e->port = (uint16_t)strtoul(key, NULL, 10);
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", key);
	p = strchr(buf, '|');
	if (!p)
		return -EINVAL;
	*p++ = '\0';
	if (kp_addr_from_str(buf, &e->addr) < 0)
		return -EINVAL;
	e->proto = (uint8_t)strtoul(p, &q, 10);
	if (*q != '|')
		return -EINVAL;
	e->port = (uint16_t)strtoul(q + 1, &q, 10);
	if ((set == SET_LOOP_BACK || set == SET_LB_SRC_CIDR) && *q != '|')
		return -EINVAL;
	if (set == SET_LOOP_BACK && kp_addr_from_str(q + 1, &e->addr2) < 0)
		return -EINVAL;
	if (set == SET_LB_SRC_CIDR) {
		char *bar = strchr(q + 1, '|');

		if (!bar)
			return -EINVAL;
		*bar = '\0';
		if (kp_addr_from_str(q + 1, &e->addr2) < 0)
			return -EINVAL;
		e->cidr2 = (uint8_t)strtoul(bar + 1, NULL, 10);
	}
	return 0;
}

/* Makes every kernel set hold exactly the counted entries: each set is read whole, then
 * the differences go in one batch. */
static int sync_sets(struct ipvs *iv)
{
	struct set_diff d[2][_SET_MAX] = { 0 };
	int r = 0;

	for (int v6 = 0; !r && v6 < 2; v6++) {
		for (int s = 0; !r && s < _SET_MAX; s++) {
			const char *name = ipvs_set_name(s, v6 ? AF_INET6 : AF_INET);

			if (v6 && ipvs_set_familyless(s))
				continue;
			d[v6][s].set = s;
			d[v6][s].counts = iv->set_counts[v6][s];
			d[v6][s].seen = kp_map_new();
			if (!d[v6][s].seen) {
				r = -ENOMEM;
				break;
			}
			r = kp_ipset_list(iv->sets, name, kernel_entry, &d[v6][s]);
			if (r < 0)
				kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: list ipset %s: %s", name,
				       kp_strerror(r));
		}
	}
	if (!r)
		r = kp_ipset_batch_begin(iv->sets);
	for (int v6 = 0; !r && v6 < 2; v6++) {
		for (int s = 0; s < _SET_MAX; s++) {
			const char *name = ipvs_set_name(s, v6 ? AF_INET6 : AF_INET);
			struct kp_map_iter it = { 0 };
			const char *key;
			void *val;

			if (!d[v6][s].seen)
				continue;
			for (size_t i = 0; i < d[v6][s].n_stale; i++)
				kp_ipset_del(iv->sets, name, &d[v6][s].stale[i]);
			while (kp_map_next(d[v6][s].counts, &it, &key, &val)) {
				struct kp_ipset_entry e;

				if (!kp_map_get(d[v6][s].seen, key) && parse_entry(s, key, &e) == 0)
					kp_ipset_add(iv->sets, name, &e);
			}
		}
	}
	if (!r)
		r = kp_ipset_batch_end(iv->sets);
	for (int v6 = 0; v6 < 2; v6++)
		for (int s = 0; s < _SET_MAX; s++) {
			kp_map_free(d[v6][s].seen);
			free(d[v6][s].stale);
		}
	return r;
}

/* Makes kube-ipvs0 hold exactly the counted addresses. */
static int sync_addrs(struct ipvs *iv, const struct kp_map *bound)
{
	struct kp_map_iter it = { 0 };
	const char *key;
	void *val;
	int r = rtnl_batch_begin(iv->rt);

	if (r < 0)
		return r;
	while (kp_map_next(bound, &it, &key, &val)) {
		struct kp_addr a;

		if (!kp_map_get(iv->addrs, key) && kp_addr_from_str(key, &a) == 0)
			rtnl_addr_del(iv->rt, iv->ifindex, &a);
	}
	memset(&it, 0, sizeof(it));
	while (kp_map_next(iv->addrs, &it, &key, &val)) {
		struct kp_addr a;

		if (!kp_map_get(bound, key) && kp_addr_from_str(key, &a) == 0)
			rtnl_addr_add(iv->rt, iv->ifindex, &a);
	}
	return rtnl_batch_end(iv->rt);
}

static void free_vs_map(struct kp_map *m)
{
	struct kp_map_iter it = { 0 };
	const char *key;
	void *val;

	while (m && kp_map_next(m, &it, &key, &val))
		vs_free(val);
	kp_map_free(m);
}

static void reset_counts(struct ipvs *iv)
{
	kp_map_free(iv->addrs);
	iv->addrs = kp_map_new();
	for (int v6 = 0; v6 < 2; v6++)
		for (int s = 0; s < _SET_MAX; s++) {
			kp_map_free(iv->set_counts[v6][s]);
			iv->set_counts[v6][s] = kp_map_new();
		}
}

static int full_sync(struct ipvs *iv, const struct kp_state *want)
{
	struct full_ctx f = { .iv = iv, .want = kp_map_new() };
	struct kp_map_iter it = { 0 };
	const char *key;
	void *val;
	int r;

	iv->job_keys = kp_map_new();
	if (!f.want || !iv->job_keys) {
		r = -ENOMEM;
		goto out;
	}
	r = kp_state_foreach(want, want_port, &f);
	if (r < 0)
		goto out;
	r = kernel_view_read(iv, &f.kv);
	if (r < 0)
		goto out;
	r = ipvs_nl_list_services(iv->nl, kernel_svc, &f);
	if (r < 0) {
		kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: list virtual servers: %s", kp_strerror(r));
		goto out;
	}
	while (kp_map_next(f.want, &it, &key, &val)) {
		struct job *j = job_for(iv, key);

		if (!j) {
			r = -ENOMEM;
			goto out;
		}
		j->want = val;
	}
	prebind(iv);
	r = run_jobs(iv);

	/* what we programmed is now the wanted table; recount addresses and set entries */
	free_vs_map(iv->vs);
	iv->vs = f.want;
	f.want = NULL;
	reset_counts(iv);
	memset(&it, 0, sizeof(it));
	while (kp_map_next(iv->vs, &it, &key, &val)) {
		struct vs *v = val;
		char a[KP_ADDR_STRLEN];

		vs_entries(iv, v, 1, count_entry);
		if (binds(v) && count_adjust(iv->addrs, kp_addr_to_str(&v->svc.addr, a, sizeof(a)),
					     1) < 0)
			iv->first_err = -ENOMEM;
	}
	{
		int r2 = sync_addrs(iv, f.kv.bound);

		if (!r)
			r = r2;
		r2 = sync_sets(iv);
		if (!r)
			r = r2;
		r2 = write_rules(iv);		/* repairs rules edited behind our back */
		if (!r)
			r = r2;
	}
out:
	kernel_view_free(&f.kv);
	free_vs_map(f.want);
	return r;
}

/* ---- incremental sync ---- */

struct delta_ctx {
	struct ipvs *iv;
	struct vs_list old, new;
	int err;
};

static bool same_owner(const struct vs *a, const struct vs *b)
{
	return !strcmp(a->ns, b->ns) && !strcmp(a->name, b->name) &&
	       !strcmp(a->port_name, b->port_name) && a->proto == b->proto;
}

static int delta_port(const struct kp_svc_port *old, const struct kp_svc_port *new_sp,
		      void *userdata)
{
	struct delta_ctx *d = userdata;
	struct ipvs *iv = d->iv;
	int r;

	if (old == new_sp)
		return 0;
	r = want_of(iv, old, &d->old);
	if (!r)
		r = want_of(iv, new_sp, &d->new);
	if (r < 0)
		return r;
	for (size_t i = 0; i < d->new.n; i++) {
		struct vs *v = d->new.v[i], *cur;
		char key[80];
		struct job *j;

		svc_key(&v->svc, key, sizeof(key));
		cur = kp_map_get(iv->vs, key);
		if (cur && !same_owner(cur, v)) {
			kp_log(iv->ctx, KP_LOG_WARN, "ipvs: virtual server %s is wanted by %s/%s and "
			       "%s/%s; the first keeps it", key, cur->ns, cur->name, v->ns, v->name);
			continue;
		}
		j = job_for(iv, key);
		if (!j)
			return -ENOMEM;
		j->want = v;
		j->in_kernel = cur != NULL;
		if (cur)
			j->have = cur->svc;
		d->new.v[i] = NULL;	/* the job owns it now */
	}
	for (size_t i = 0; i < d->old.n; i++) {
		struct vs *v = d->old.v[i], *cur;
		char key[80];
		struct job *j;

		svc_key(&v->svc, key, sizeof(key));
		cur = kp_map_get(iv->vs, key);
		if (kp_map_get(iv->job_keys, key) || !cur || !same_owner(cur, v))
			continue;	/* still wanted, or not ours to remove */
		j = job_for(iv, key);
		if (!j)
			return -ENOMEM;
		j->want = NULL;
		j->in_kernel = true;
		j->have = cur->svc;
	}
	vs_list_clear(&d->old);
	vs_list_clear(&d->new);
	return 0;
}

/* Virtual servers with real servers still draining get looked at again. */
static int recheck_grace(struct ipvs *iv)
{
	struct kp_map_iter it = { 0 };
	const char *gk;
	void *val;

	kp_map_compact(iv->grace);	/* after a mass drain, walks stay short */

	while (kp_map_next(iv->grace, &it, &gk, &val)) {
		char key[80];
		const char *bar = strchr(gk, '|');
		struct vs *cur;
		struct job *j;
		size_t len;

		/* "P|addr|port|dest|dport": the virtual server key is the first three fields */
		bar = bar ? strchr(bar + 1, '|') : NULL;
		bar = bar ? strchr(bar + 1, '|') : NULL;
		if (!bar)
			continue;
		len = (size_t)(bar - gk);
		if (len >= sizeof(key))
			continue;
		memcpy(key, gk, len);
		key[len] = '\0';
		cur = kp_map_get(iv->vs, key);
		if (!cur || kp_map_get(iv->job_keys, key))
			continue;
		j = job_for(iv, key);
		if (!j)
			return -ENOMEM;
		j->want = cur;		/* borrowed: unchanged */
		j->in_kernel = true;
		j->have = cur->svc;
		j->key[sizeof(j->key) - 1] = '\0';
	}
	return 0;
}

static int delta_sync(struct ipvs *iv, const struct kp_delta *delta)
{
	struct delta_ctx d = { .iv = iv };
	size_t n_changed;
	int r, r2;

	iv->job_keys = kp_map_new();
	if (!iv->job_keys)
		return -ENOMEM;
	r = kp_delta_foreach(delta, delta_port, &d);
	vs_list_clear(&d.old);
	vs_list_clear(&d.new);
	n_changed = iv->n_jobs;
	if (!r)
		r = recheck_grace(iv);
	if (r < 0)
		goto out;
	prebind(iv);
	r = run_jobs(iv);

	/* account the changed virtual servers: sets and addresses follow */
	r2 = kp_ipset_batch_begin(iv->sets);
	if (r2 < 0 && !r)
		r = r2;
	r2 = rtnl_batch_begin(iv->rt);
	if (r2 < 0 && !r)
		r = r2;
	for (size_t i = 0; i < n_changed; i++) {
		struct job *j = &iv->jobs[i];
		struct vs *cur = kp_map_get(iv->vs, j->key);

		/* the new version's uses first: what both versions use (the VIP, the
		 * cluster-IP entry) never drops to zero, so it is never unbound or
		 * deleted from its set, not even for the length of a batch */
		if (j->want) {
			vs_entries(iv, j->want, 1, use_entry);
			use_addr(iv, j->want, 1);
		}
		if (cur) {
			vs_entries(iv, cur, -1, use_entry);
			use_addr(iv, cur, -1);
		}
		if (j->want) {
			if (kp_map_put(iv->vs, j->key, j->want, NULL) < 0) {
				vs_free(j->want);
				iv->first_err = -ENOMEM;
				kp_map_del(iv->vs, j->key);
			}
			j->want = NULL;
		} else if (cur) {
			kp_map_del(iv->vs, j->key);
		}
		vs_free(cur);
	}
	r2 = kp_ipset_batch_end(iv->sets);
	if (r2 < 0 && !r)
		r = r2;
	r2 = rtnl_batch_end(iv->rt);
	if (r2 < 0 && !r)
		r = r2;
out:
	/* jobs that never ran still own their wanted virtual server */
	for (size_t i = 0; i < n_changed; i++)
		vs_free(iv->jobs[i].want);
	for (size_t i = n_changed; i < iv->n_jobs; i++)
		iv->jobs[i].want = NULL;	/* borrowed from iv->vs */
	return r;
}

static int ipvs_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	struct ipvs *iv = priv;
	struct timespec t0, t1;
	bool full;
	int r;

	iv->first_err = 0;
	if (!iv->prepared) {
		r = prepare(iv);
		if (r < 0)
			return r;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	full = kp_delta_is_full(delta) || !iv->synced;
	if (full)
		r = full_sync(iv, want);
	else
		r = delta_sync(iv, delta);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: %s sync: %zu virtual servers looked at, %zu "
	       "programmed, %.3f ms: %s", full ? "full" : "partial", iv->n_jobs,
	       kp_map_size(iv->vs), (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6, kp_strerror(r ? r : iv->first_err));
	jobs_clear(iv);
	if (!r)
		r = iv->first_err;
	/* after a failure the next sync reads everything back and repairs it */
	iv->synced = r == 0;
	/* stale UDP conntrack entries, as in the iptables mode: IPVS (net.ipv4.vs.conntrack)
	 * gives its connections entries whose reply comes from the real server */
	if (!r) {
		kp_ct_after_sync(iv->ctx, "ipvs", want, delta, iv->ct_started, iv->ipv6_rules,
				 &iv->ct_stats);
		iv->ct_started = true;
	}
	return r;
}

/* ---- reading back ---- */

struct dumper {
	struct ipvs *iv;
	struct kernel_view kv;
	kp_dump_fn fn;
	void *userdata;
	const char *ns, *name;		/* the one service asked for, or NULL: all */
	struct job j;
	int ret;
};

static int dump_svc(const struct ipvs_svc *s, void *userdata)
{
	struct dumper *d = userdata;
	struct ipvs *iv = d->iv;
	struct kp_endpoint *eps = NULL;
	struct kp_dest_stats *stats = NULL;
	struct kp_dump_entry e = { 0 };
	char key[80], detail[96];
	const struct vs *v;
	int r;

	if (s->family != AF_INET && s->family != AF_INET6)
		return 0;
	svc_key(s, key, sizeof(key));
	v = kp_map_get(iv->vs, key);
	/* one service's (d->ns): dump_some() asked for its virtual servers alone, which are
	 * ours (in iv->vs) */
	if (!d->ns && !owned(iv, &d->kv, s))
		return 0;
	memset(&d->j, 0, sizeof(d->j));
	d->j.in_kernel = true;
	d->j.have = *s;
	r = read_dests(iv, &d->j);
	if (r < 0)
		return r;
	if (d->j.n_kdests) {
		eps = calloc(d->j.n_kdests, sizeof(*eps));
		stats = calloc(d->j.n_kdests, sizeof(*stats));
		if (!eps || !stats) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < d->j.n_kdests; i++) {
		const struct ipvs_dest *k = &d->j.kdests[i];

		eps[i].addr = k->addr;
		eps[i].port = k->port;
		eps[i].ready = eps[i].serving = k->weight > 0;
		eps[i].terminating = k->weight == 0;
		stats[i].weight = k->weight;
		stats[i].active_conns = k->active_conns;
		stats[i].inactive_conns = k->inact_conns;
		stats[i].persist_conns = k->persist_conns;
	}
	if (s->flags & IP_VS_SVC_F_PERSISTENT)
		snprintf(detail, sizeof(detail), "ipvs %s persistent %u", s->sched, s->timeout);
	else
		snprintf(detail, sizeof(detail), "ipvs %s", s->sched);
	e.ns = v ? v->ns : "";
	e.name = v ? v->name : "";
	e.port_name = v ? v->port_name : "";
	e.protocol = s->protocol == IPPROTO_UDP ? KP_PROTO_UDP :
		     s->protocol == IPPROTO_SCTP ? KP_PROTO_SCTP : KP_PROTO_TCP;
	e.kind = v ? v->kind : binds_addr(&d->kv, &s->addr) ? KP_FE_CLUSTER_IP : KP_FE_NODE_PORT;
	e.vip = s->addr;
	e.port = s->port;
	e.endpoints = eps;
	e.n_endpoints = d->j.n_kdests;
	e.detail = detail;
	e.dest_stats = stats;
	r = d->fn(&e, d->userdata);
out:
	free(eps);
	free(stats);
	free(d->j.kdests);
	d->j.kdests = NULL;
	return r;
}

/* The entries of service @ns/@name, or of every service when @ns is NULL. */
static int dump_some(struct ipvs *iv, const char *ns, const char *name, kp_dump_fn fn,
		     void *userdata)
{
	struct dumper d = { .iv = iv, .fn = fn, .userdata = userdata, .ns = ns, .name = name };
	int r = 0;

	if (iv->ifindex <= 0)
		rtnl_link_index(iv->rt, DUMMY_LINK, &iv->ifindex);
	if (ns) {
		/* one service: its virtual servers are those of iv->vs, asked for one by one
		 * (one not in the kernel is missing: kproxyctl check says so) */
		struct kp_map_iter it = { 0 };
		const char *key;
		void *val;

		while (!r && kp_map_next(iv->vs, &it, &key, &val)) {
			const struct vs *v = val;
			struct ipvs_svc s;

			if (strcmp(v->ns, ns) || strcmp(v->name, name))
				continue;
			r = ipvs_nl_get_service(iv->nl, &v->svc, &s);
			r = r == -ENOENT ? 0 : r < 0 ? r : dump_svc(&s, &d);
		}
		return r;
	}
	/* the addresses tell whose a virtual server is */
	r = kernel_view_read(iv, &d.kv);
	if (!r)
		r = ipvs_nl_list_services(iv->nl, dump_svc, &d);
	kernel_view_free(&d.kv);
	return r;
}

static int ipvs_dump(void *priv, kp_dump_fn fn, void *userdata)
{
	return dump_some(priv, NULL, NULL, fn, userdata);
}

static int ipvs_dump_service(void *priv, const char *ns, const char *name, kp_dump_fn fn,
			     void *userdata)
{
	return dump_some(priv, ns, name, fn, userdata);
}

/* ---- cleanup ---- */

struct cleaner {
	struct ipvs *iv;
	struct kernel_view kv;
	struct ipvs_svc *svcs;
	size_t n;
};

static int clean_svc(const struct ipvs_svc *s, void *userdata)
{
	struct cleaner *c = userdata;
	void *p;

	if ((s->family != AF_INET && s->family != AF_INET6) || !owned(c->iv, &c->kv, s))
		return 0;
	p = realloc(c->svcs, (c->n + 1) * sizeof(*c->svcs));
	if (!p)
		return -ENOMEM;
	c->svcs = p;
	c->svcs[c->n++] = *s;
	return 0;
}

static int ipvs_cleanup(void *priv)
{
	struct ipvs *iv = priv;
	struct cleaner c = { .iv = iv };
	int r, first = 0;

	if (iv->ifindex <= 0)
		rtnl_link_index(iv->rt, DUMMY_LINK, &iv->ifindex);
	r = kernel_view_read(iv, &c.kv);
	if (!r)
		r = ipvs_nl_list_services(iv->nl, clean_svc, &c);
	if (!r)
		r = ipvs_nl_batch_begin(iv->nl);
	if (!r) {
		for (size_t i = 0; i < c.n; i++)
			ipvs_nl_del_service(iv->nl, &c.svcs[i]);
		r = ipvs_nl_batch_end(iv->nl, on_error, iv);
	}
	free(c.svcs);
	kernel_view_free(&c.kv);
	first = r;
	/* rules before sets: a set referenced by a rule cannot be destroyed */
	r = ipvs_rules_cleanup(iv->ctx, AF_INET);
	first = first ? first : r;
	if (iv->ipv6_rules) {
		r = ipvs_rules_cleanup(iv->ctx, AF_INET6);
		first = first ? first : r;
	}
	for (int v6 = 0; v6 < 2; v6++)
		for (int s = 0; s < _SET_MAX; s++) {
			if (v6 && ipvs_set_familyless(s))
				continue;
			r = kp_ipset_destroy(iv->sets, ipvs_set_name(s, v6 ? AF_INET6 : AF_INET));
			if (r < 0 && r != -ENOENT) {
				kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: destroy ipset %s: %s",
				       ipvs_set_name(s, v6 ? AF_INET6 : AF_INET), kp_strerror(r));
				first = first ? first : r;
			}
		}
	r = rtnl_link_del(iv->rt, DUMMY_LINK);
	if (r < 0 && r != -ENODEV)
		first = first ? first : r;
	iv->ifindex = 0;
	iv->prepared = iv->synced = false;
	free_vs_map(iv->vs);
	iv->vs = kp_map_new();
	reset_counts(iv);
	kp_map_free(iv->grace);
	iv->grace = kp_map_new();
	kp_log(iv->ctx, KP_LOG_DEBUG, "ipvs: cleanup removed %zu virtual servers", c.n);
	return first;
}

/* ---- lifetime ---- */

static void ipvs_destroy(void *priv)
{
	struct ipvs *iv = priv;

	if (!iv)
		return;
	jobs_clear(iv);
	free(iv->jobs);
	free_vs_map(iv->vs);
	kp_map_free(iv->addrs);
	for (int v6 = 0; v6 < 2; v6++)
		for (int s = 0; s < _SET_MAX; s++)
			kp_map_free(iv->set_counts[v6][s]);
	kp_map_free(iv->grace);
	ipvs_nl_close(iv->nl);
	rtnl_close(iv->rt);
	kp_ipset_close(iv->sets);
	free(iv);
}

static int ipvs_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	struct ipvs *iv = calloc(1, sizeof(*iv));
	char why[160];
	int r;

	if (!iv)
		return -ENOMEM;
	iv->ctx = ctx;
	iv->o = opts;
	iv->pods = (struct kp_local_detect){ iv->o->detect_local, &iv->o->cluster_cidr,
					     iv->o->pod_bridge, iv->o->pod_prefix };
	iv->random_fully = kp_ipt_random_fully();
	if (strlen(iv->o->scheduler) >= sizeof(iv->sched) || !*iv->o->scheduler) {
		r = kp_ctx_set_error(ctx, -EINVAL, "ipvs: option \"scheduler\": \"%s\" is not a "
				     "scheduler name", iv->o->scheduler);
		goto fail;
	}
	snprintf(iv->sched, sizeof(iv->sched), "%s", iv->o->scheduler);
	if (!strcmp(iv->sched, "mh"))
		iv->svc_flags = IP_VS_SVC_F_SCHED2;	/* kube-proxy: hash the source port too */
	iv->vs = kp_map_new();
	iv->addrs = kp_map_new();
	iv->grace = kp_map_new();
	r = iv->vs && iv->addrs && iv->grace ? 0 : -ENOMEM;
	for (int v6 = 0; !r && v6 < 2; v6++)
		for (int s = 0; !r && s < _SET_MAX; s++)
			if (!(iv->set_counts[v6][s] = kp_map_new()))
				r = -ENOMEM;
	if (r < 0)
		goto fail;
	/* fail early, with the reason, where the kernel has no IPVS or we are not root */
	r = ipvs_nl_open(&iv->nl);
	if (r < 0) {
		kp_ctx_set_error(ctx, r, "ipvs: the kernel's IPVS generic-netlink family: %s%s",
				 r == -EPROTONOSUPPORT ? "not found (this kernel has no IPVS: the "
				 "ip_vs module is missing)" : kp_strerror(r),
				 kp_caps_explain(r, KP_CAP(CAP_NET_ADMIN), why, sizeof(why)));
		goto fail;
	}
	r = rtnl_open(&iv->rt);
	if (r < 0) {
		kp_ctx_set_error(ctx, r, "ipvs: rtnetlink: %s%s", kp_strerror(r),
				 kp_caps_explain(r, KP_CAP(CAP_NET_ADMIN), why, sizeof(why)));
		goto fail;
	}
	r = kp_ipset_open(&iv->sets);
	if (r < 0) {
		kp_ctx_set_error(ctx, r, "ipvs: ipset: %s%s", r == -EPROTONOSUPPORT ?
				 "the kernel has no ip_set" : kp_strerror(r),
				 kp_caps_explain(r, KP_CAP(CAP_NET_ADMIN), why, sizeof(why)));
		goto fail;
	}
	r = kp_tc_fast_probe(AF_INET, "nat");
	if (r < 0) {
		kp_ctx_set_error(ctx, r, "ipvs: cannot open the nat table: %s%s",
				 kp_tc_ipv4.strerror(-r), kp_caps_explain(r, KP_CAP(CAP_NET_ADMIN) |
				 KP_CAP(CAP_NET_RAW), why, sizeof(why)));
		goto fail;
	}
	iv->ipv6_rules = kp_tc_fast_probe(AF_INET6, "nat") == 0;
	rtnl_link_index(iv->rt, DUMMY_LINK, &iv->ifindex);
	*ret_priv = iv;
	return 0;
fail:
	ipvs_destroy(iv);
	return r;
}

/* kube-proxy's IPVS-mode metrics: iptables restore failures, the conntrack reconciler's */
static int ipvs_stats(void *priv, kp_stat_fn fn, void *userdata)
{
	static const char *const fam[2] = { "IPv4", "IPv6" };
	struct ipvs *iv = priv;
	char labels[32];
	int r = 0;

	for (int f = 0; f < (iv->ipv6_rules ? 2 : 1) && !r; f++) {
		struct kp_stat s = { "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
				     "Cumulative proxy iptables restore failures", "counter", labels,
				     (double)iv->n_restore_failures[f] };

		snprintf(labels, sizeof(labels), "ip_family=\"%s\"", fam[f]);
		r = fn(&s, userdata);
	}
	return r ? r : kp_ct_stats_report(&iv->ct_stats, fn, userdata);
}

const struct kp_backend_ops kp_backend_ipvs = {
	.name = "ipvs",
	.init = ipvs_init,
	.sync = ipvs_sync,
	.dump = ipvs_dump,
	.dump_service = ipvs_dump_service,
	.cleanup = ipvs_cleanup,
	.destroy = ipvs_destroy,
	.stats = ipvs_stats,
	.options = ipvs_options,
	.n_options = KP_ARRAY_SIZE(ipvs_options),
	.options_size = sizeof(struct ipvs_opts),
};
