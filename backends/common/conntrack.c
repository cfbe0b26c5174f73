// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ctnetlink through libmnl: dump the IPv4 and IPv6 conntrack tables, pick the entries whose
 * original destination and reply source match a flush request (or, reconciling, the UDP
 * entries towards a service whose reply source is no endpoint of it), then delete them by
 * their original tuple. Every attribute we read is checked against a policy table.
 * Also the flush requests a sync's delta asks for, shared by the x_tables and IPVS data
 * planes, and the reconciler's figures as kube-proxy names them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "conntrack.h"
#include "internal.h"

struct tuple {
	struct kp_addr src, dst;
	uint16_t sport, dport;		/* network order */
	uint8_t proto;
	bool has_ports;
};

struct entry {
	struct tuple orig, reply;
};

struct dump {
	struct entry *v;
	size_t n, cap;
	bool (*pick)(const struct dump *d, const struct entry *e);
	const struct kp_ct_flush *req;	/* kp_ct_flush()'s requests */
	size_t n_req;
	const struct kp_map *frontends;	/* kp_ct_reconcile(): "addr|port" and "*|port" ->
					 * struct frontend */
};

/* attribute types and payload lengths we accept, per nesting level */
struct attr_policy {
	int type;
	size_t len;
};

static const struct attr_policy policy_ip[] = {
	{ CTA_IP_V4_SRC, 4 }, { CTA_IP_V4_DST, 4 }, { CTA_IP_V6_SRC, 16 }, { CTA_IP_V6_DST, 16 },
};
static const struct attr_policy policy_proto[] = {
	{ CTA_PROTO_NUM, 1 }, { CTA_PROTO_SRC_PORT, 2 }, { CTA_PROTO_DST_PORT, 2 },
};

static bool valid(const struct nlattr *a, int max, const struct attr_policy *p, size_t n_policy)
{
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, max) < 0)
		return false;
	for (size_t i = 0; i < n_policy; i++)
		if (p[i].type == type)
			return !p[i].len || mnl_attr_get_payload_len(a) == p[i].len;
	return true;	/* attributes we do not read */
}

static int ip_cb(const struct nlattr *a, void *data)
{
	struct tuple *t = data;

	if (!valid(a, CTA_IP_MAX, policy_ip, sizeof(policy_ip) / sizeof(policy_ip[0])))
		return MNL_CB_ERROR;
	switch (mnl_attr_get_type(a)) {
	case CTA_IP_V4_SRC:
		t->src.family = AF_INET;
		memcpy(&t->src.v4, mnl_attr_get_payload(a), 4);
		break;
	case CTA_IP_V4_DST:
		t->dst.family = AF_INET;
		memcpy(&t->dst.v4, mnl_attr_get_payload(a), 4);
		break;
	case CTA_IP_V6_SRC:
		t->src.family = AF_INET6;
		memcpy(&t->src.v6, mnl_attr_get_payload(a), 16);
		break;
	case CTA_IP_V6_DST:
		t->dst.family = AF_INET6;
		memcpy(&t->dst.v6, mnl_attr_get_payload(a), 16);
		break;
	}
	return MNL_CB_OK;
}

static int proto_cb(const struct nlattr *a, void *data)
{
	struct tuple *t = data;

	if (!valid(a, CTA_PROTO_MAX, policy_proto, sizeof(policy_proto) / sizeof(policy_proto[0])))
		return MNL_CB_ERROR;
	switch (mnl_attr_get_type(a)) {
	case CTA_PROTO_NUM:
		t->proto = mnl_attr_get_u8(a);
		break;
	case CTA_PROTO_SRC_PORT:
		t->sport = mnl_attr_get_u16(a);
		t->has_ports = true;
		break;
	case CTA_PROTO_DST_PORT:
		t->dport = mnl_attr_get_u16(a);
		break;
	}
	return MNL_CB_OK;
}

static int tuple_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_type_valid(a, CTA_TUPLE_MAX) < 0)
		return MNL_CB_ERROR;
	if (mnl_attr_get_type(a) == CTA_TUPLE_IP) {
		if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
			return MNL_CB_ERROR;
		return mnl_attr_parse_nested(a, ip_cb, data);
	}
	if (mnl_attr_get_type(a) == CTA_TUPLE_PROTO) {
		if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
			return MNL_CB_ERROR;
		return mnl_attr_parse_nested(a, proto_cb, data);
	}
	return MNL_CB_OK;
}

static int ct_attr_cb(const struct nlattr *a, void *data)
{
	struct entry *e = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, CTA_MAX) < 0)
		return MNL_CB_OK;	/* newer kernel attribute: not ours */
	if (type != CTA_TUPLE_ORIG && type != CTA_TUPLE_REPLY)
		return MNL_CB_OK;
	if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
		return MNL_CB_ERROR;
	return mnl_attr_parse_nested(a, tuple_cb, type == CTA_TUPLE_ORIG ? &e->orig : &e->reply);
}

static bool matches(const struct dump *d, const struct entry *e)
{
	for (size_t i = 0; i < d->n_req; i++) {
		const struct kp_ct_flush *r = &d->req[i];

		/* an unspecified address: a NodePort, on whichever node address it came */
		if (e->orig.proto == r->proto && e->orig.dport == htons(r->port) &&
		    (kp_addr_equal(&e->orig.dst, &r->vip) ||
		     (kp_addr_is_unspecified(&r->vip) && e->orig.dst.family == r->vip.family)) &&
		    (r->any_endpoint || kp_addr_equal(&e->reply.src, &r->endpoint)))
			return true;
	}
	return false;
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	struct entry e = { 0 };

	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), ct_attr_cb, &e) < 0)
		return MNL_CB_OK;	/* skip an entry we cannot read */
	if (!e.orig.has_ports || !d->pick(d, &e))
		return MNL_CB_OK;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct entry *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return MNL_CB_ERROR;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = e;
	return MNL_CB_OK;
}

static struct nlmsghdr *ct_msg(char *buf, uint16_t type, uint16_t flags, uint32_t seq,
			       int family)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	return nlh;
}

static void put_tuple(struct nlmsghdr *nlh, const struct tuple *t)
{
	struct nlattr *tuple = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG), *n;

	n = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	if (t->src.family == AF_INET6) {
		mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, &t->src.v6);
		mnl_attr_put(nlh, CTA_IP_V6_DST, 16, &t->dst.v6);
	} else {
		mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, &t->src.v4);
		mnl_attr_put(nlh, CTA_IP_V4_DST, 4, &t->dst.v4);
	}
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, t->proto);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, t->sport);
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, t->dport);
	mnl_attr_nest_end(nlh, n);
	mnl_attr_nest_end(nlh, tuple);
}

/* Sends @nlh and runs @cb over the answers until done. Returns 0 or -errno. */
static int talk(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	unsigned portid = mnl_socket_get_portid(nl);
	uint32_t seq = nlh->nlmsg_seq;
	int r;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (n < 0)
			return -errno;
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (r <= MNL_CB_STOP)
			return r < 0 ? -errno : 0;
	}
}

/* Dumps the tables of @families (AF_INET, AF_INET6; 0 ends the list) and deletes the
 * entries d->pick() picks. Returns the number deleted, or -errno. */
static int ct_run(struct dump *d, const int *families)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	uint32_t seq = (uint32_t)time(NULL);
	int r = 0, deleted = 0;

	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	for (const int *f = families; *f; f++) {
		r = talk(nl, ct_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq++, *f), dump_cb, d);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < d->n; i++) {
		struct nlmsghdr *nlh = ct_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq++,
					      d->v[i].orig.src.family);

		put_tuple(nlh, &d->v[i].orig);
		r = talk(nl, nlh, NULL, NULL);
		if (r == -ENOENT)	/* gone meanwhile */
			r = 0;
		if (r < 0)
			goto out;
		deleted++;
	}
	r = deleted;
out:
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
	mnl_socket_close(nl);
	return r;
}

int kp_ct_flush(const struct kp_ct_flush *req, size_t n_req)
{
	static const int both[] = { AF_INET, AF_INET6, 0 };
	struct dump d = { .pick = matches, .req = req, .n_req = n_req };

	return n_req ? ct_run(&d, both) : 0;
}

/* ---- the flushes a sync's delta calls for ---- */

struct flushes {
	struct kp_ct_flush *v;
	size_t n, cap;
	bool after_start;		/* new service ports count as getting endpoints */
	bool ipv6;			/* IPv6 frontends are programmed */
};

static void flush_add(struct flushes *f, const struct kp_frontend *fe, uint16_t port,
		      const struct kp_addr *ep)
{
	struct kp_addr vip = fe->addr;

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct kp_ct_flush *v = realloc(f->v, cap * sizeof(*v));

		if (!v)
			return;
		f->v = v;
		f->cap = cap;
	}
	/* a NodePort's entries by port, as kube-proxy clears them: the frontend stands for
	 * every node address when NodePorts are on every local one, and a packet reached
	 * the port on whichever address it was sent to */
	if (fe->kind == KP_FE_NODE_PORT)
		memset(&vip.v6, 0, sizeof(vip.v6));	/* family only: any address */
	f->v[f->n++] = (struct kp_ct_flush){
		.vip = vip, .port = port, .proto = IPPROTO_UDP, .any_endpoint = !ep,
		.endpoint = ep ? *ep : fe->addr,
	};
}

static bool has_ep(const struct kp_endpoint *v, size_t n, const struct kp_endpoint *ep)
{
	for (size_t i = 0; i < n; i++)
		if (kp_addr_equal(&v[i].addr, &ep->addr))
			return true;
	return false;
}

/* UDP only: entries to an endpoint that left, or to a service that had none. */
static int collect_flush(const struct kp_svc_port *old, const struct kp_svc_port *new_sp,
			 void *userdata)
{
	struct flushes *f = userdata;
	const struct kp_svc_port *sp = new_sp ? new_sp : old;
	const struct kp_endpoint *o = NULL, *nw = NULL;
	const struct kp_frontend *fes;
	size_t n_o = 0, n_nw = 0, n_fes;

	if (!sp || kp_svc_port_get_protocol(sp) != KP_PROTO_UDP || old == new_sp)
		return 0;
	fes = kp_svc_port_get_frontends(old ? old : sp, &n_fes);
	for (size_t i = 0; i < n_fes; i++) {
		int family = fes[i].addr.family;
		bool first;

		if (family == AF_INET6 && !f->ipv6)
			continue;
		o = old ? kp_svc_port_get_endpoints(old, family, fes[i].external, &n_o) : NULL;
		nw = new_sp ? kp_svc_port_get_endpoints(new_sp, family, fes[i].external, &n_nw) :
			      NULL;
		if (!old)
			n_o = 0;
		if (!new_sp)
			n_nw = 0;
		first = !n_o && n_nw && (old || f->after_start);
		if (first)
			flush_add(f, &fes[i], fes[i].port, NULL);
		for (size_t e = 0; e < n_o; e++)
			if (!has_ep(nw, n_nw, &o[e]))
				flush_add(f, &fes[i], fes[i].port, &o[e].addr);
	}
	return 0;
}

int kp_ct_flush_delta(const struct kp_delta *delta, bool after_start, bool ipv6)
{
	struct flushes f = { .after_start = after_start, .ipv6 = ipv6 };
	int r;

	kp_delta_foreach(delta, collect_flush, &f);
	r = kp_ct_flush(f.v, f.n);
	free(f.v);
	return r;
}

/* ---- reconciling: every UDP entry towards a service checked against its endpoints ---- */

struct frontend {
	const struct kp_endpoint *eps;	/* borrowed from the state */
	size_t n_eps;
};

static void fe_key(char *buf, size_t size, const struct kp_addr *addr, uint16_t port)
{
	char a[KP_ADDR_STRLEN] = "*";

	if (addr)
		kp_addr_to_str(addr, a, sizeof(a));
	snprintf(buf, size, "%s|%u", a, port);
}

static bool is_endpoint(const struct frontend *fe, const struct kp_addr *a)
{
	for (size_t i = 0; i < fe->n_eps; i++)
		if (kp_addr_equal(&fe->eps[i].addr, a))
			return true;
	return false;
}

/* kube-proxy's test: to a service IP:port, or to any address on a NodePort, and the reply
 * comes from no endpoint of it. */
static bool stale(const struct dump *d, const struct entry *e)
{
	char key[KP_ADDR_STRLEN + 16];
	const struct frontend *fe;

	if (e->orig.proto != IPPROTO_UDP)
		return false;
	fe_key(key, sizeof(key), &e->orig.dst, ntohs(e->orig.dport));
	fe = kp_map_get(d->frontends, key);
	if (fe && !is_endpoint(fe, &e->reply.src))
		return true;
	fe_key(key, sizeof(key), NULL, ntohs(e->orig.dport));
	fe = kp_map_get(d->frontends, key);
	return fe && !is_endpoint(fe, &e->reply.src);
}

struct collect {
	struct kp_map *frontends;
	int family;
	int err;
};

static int collect_frontends(const struct kp_svc_port *sp, void *userdata)
{
	struct collect *c = userdata;
	const struct kp_frontend *fes;
	struct frontend *fe;
	size_t n_fes, n_eps;
	const struct kp_endpoint *eps;
	char key[KP_ADDR_STRLEN + 16];

	if (kp_svc_port_get_protocol(sp) != KP_PROTO_UDP)
		return 0;
	eps = kp_svc_port_get_all_endpoints(sp, &n_eps);
	fes = kp_svc_port_get_frontends(sp, &n_fes);
	for (size_t i = 0; i < n_fes; i++) {
		bool node_port = fes[i].kind == KP_FE_NODE_PORT;

		if (fes[i].addr.family != c->family)
			continue;
		fe_key(key, sizeof(key), node_port ? NULL : &fes[i].addr, fes[i].port);
		if (kp_map_get(c->frontends, key))
			continue;
		fe = calloc(1, sizeof(*fe));
		if (!fe || kp_map_put(c->frontends, key, fe, NULL) < 0) {
			free(fe);
			c->err = -ENOMEM;
			return 1;
		}
		fe->eps = eps;
		fe->n_eps = n_eps;
	}
	return 0;
}

static double ct_bound(int i)
{
	return 0.001 * (double)(1u << i);
}

int kp_ct_reconcile(const struct kp_state *want, int family, struct kp_ct_stats *stats)
{
	struct collect c = { .frontends = kp_map_new(), .family = family };
	const int families[] = { family, 0 };
	struct dump d = { .pick = stale };
	struct kp_map_iter it = { 0 };
	struct timespec t0, t1;
	int f = family == AF_INET6, r;
	double seconds;
	void *v;

	if (!c.frontends)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	kp_state_foreach(want, collect_frontends, &c);
	d.frontends = c.frontends;
	r = c.err ? c.err : kp_map_size(c.frontends) ? ct_run(&d, families) : 0;
	while (kp_map_next(c.frontends, &it, NULL, &v))
		free(v);
	kp_map_free(c.frontends);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	for (int i = 0; i < KP_CT_N_BUCKETS; i++)
		if (seconds <= ct_bound(i)) {
			stats->buckets[f][i]++;
			break;
		}
	stats->n_passes[f]++;
	stats->sum[f] += seconds;
	if (r > 0)
		stats->deleted[f] += (uint64_t)r;
	return r;
}

int kp_ct_stats_report(const struct kp_ct_stats *st, kp_stat_fn fn, void *userdata)
{
	static const char *const fam[2] = { "IPv4", "IPv6" };
	static const char *const hist = "kubeproxy_conntrack_reconciler_sync_duration_seconds";
	static const char *const help = "Reconcile conntrack flows latency in seconds";
	char labels[64];
	int r = 0;

	for (int f = 0; f < 2 && !r; f++) {
		uint64_t cumulative = 0;
		struct kp_stat s = { .help = help, .type = "histogram", .labels = labels };
		char name[96];

		if (f && !st->n_passes[f])
			continue;
		snprintf(name, sizeof(name), "%s_bucket", hist);
		s.name = name;
		for (int i = 0; i <= KP_CT_N_BUCKETS && !r; i++) {
			cumulative += i < KP_CT_N_BUCKETS ? st->buckets[f][i] : 0;
			if (i < KP_CT_N_BUCKETS)
				snprintf(labels, sizeof(labels), "ip_family=\"%s\",le=\"%g\"", fam[f],
					 ct_bound(i));
			else
				snprintf(labels, sizeof(labels), "ip_family=\"%s\",le=\"+Inf\"",
					 fam[f]);
			s.value = (double)(i < KP_CT_N_BUCKETS ? cumulative : st->n_passes[f]);
			r = fn(&s, userdata);
		}
		snprintf(labels, sizeof(labels), "ip_family=\"%s\"", fam[f]);
		snprintf(name, sizeof(name), "%s_sum", hist);
		s.value = st->sum[f];
		r = r ? r : fn(&s, userdata);
		snprintf(name, sizeof(name), "%s_count", hist);
		s.value = (double)st->n_passes[f];
		r = r ? r : fn(&s, userdata);
	}
	for (int f = 0; f < 2 && !r; f++) {
		struct kp_stat s = {
			.name = "kubeproxy_conntrack_reconciler_deleted_entries_total",
			.help = "Cumulative conntrack flows deleted by conntrack reconciler",
			.type = "counter", .labels = labels, .value = (double)st->deleted[f],
		};

		if (f && !st->n_passes[f])
			continue;
		snprintf(labels, sizeof(labels), "ip_family=\"%s\"", fam[f]);
		r = fn(&s, userdata);
	}
	return r;
}

void kp_ct_after_sync(struct kp_ctx *ctx, const char *who, const struct kp_state *want,
		      const struct kp_delta *delta, bool started, bool ipv6,
		      struct kp_ct_stats *stats)
{
	int r = kp_ct_flush_delta(delta, started, ipv6);

	if (r < 0)
		kp_log(ctx, KP_LOG_DEBUG, "%s: conntrack: cannot flush stale UDP entries: %s", who,
		       kp_strerror(r));
	else if (r > 0)
		kp_log(ctx, KP_LOG_DEBUG, "%s: conntrack: %d stale UDP entries flushed", who, r);
	if (started)
		return;
	for (int f = 0; f < (ipv6 ? 2 : 1); f++) {
		r = kp_ct_reconcile(want, f ? AF_INET6 : AF_INET, stats);
		if (r < 0)
			kp_log(ctx, KP_LOG_DEBUG, "%s: conntrack: reconcile: %s", who, kp_strerror(r));
		else if (r > 0)
			kp_log(ctx, KP_LOG_DEBUG, "%s: conntrack: reconcile: %d stale UDP entries "
			       "deleted", who, r);
	}
}
