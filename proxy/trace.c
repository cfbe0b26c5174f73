// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyctl trace SRC DST:PORT[/PROTO]: what this node does with such a connection. The
 * frontend it matches and why it is refused when it is (no endpoints, a source outside
 * loadBalancerSourceRanges, a traffic policy Local without local endpoints, a ClusterIP
 * on a port it has not) come from the desired state; the endpoints and the path (the
 * chain or virtual server a VIP leads to) come from the data plane's dump, read back
 * from the kernel, so that a difference between the two shows; masquerading follows
 * kube-proxy's rules with the data plane's options (cluster-cidr, masquerade-all).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "kpd.h"

struct query {
	struct kp_addr src, dst;
	uint16_t port;
	enum kp_protocol proto;
};

struct match {
	const struct query *q;
	const struct kp_svc_port *sp;
	struct kp_frontend fe;
	const struct kp_svc_port *vip_only;	/* a ClusterIP at DST, on other ports */
	int n;
};

static int find(const struct kp_svc_port *sp, void *userdata)
{
	struct match *m = userdata;
	const struct kp_frontend *fes;
	size_t n;

	fes = kp_svc_port_get_frontends(sp, &n);
	for (size_t i = 0; i < n; i++) {
		const struct kp_frontend *f = &fes[i];
		bool addr = kp_addr_equal(&f->addr, &m->q->dst) ||
			    (f->kind == KP_FE_NODE_PORT && kp_addr_is_unspecified(&f->addr) &&
			     f->addr.family == m->q->dst.family);

		if (!addr)
			continue;
		if (f->port == m->q->port && kp_svc_port_get_protocol(sp) == m->q->proto) {
			/* a NodePort on every address loses to an exact address */
			if (m->sp && m->fe.kind != KP_FE_NODE_PORT && f->kind == KP_FE_NODE_PORT)
				continue;
			m->sp = sp;
			m->fe = *f;
			m->n++;
		} else if (f->kind == KP_FE_CLUSTER_IP && !m->vip_only) {
			m->vip_only = sp;
		}
	}
	return 0;
}

json_t *kpd_endpoints_json(const struct kp_endpoint *eps, size_t n)
{
	json_t *a = json_array();
	char ip[KP_ADDR_STRLEN], t[KP_ADDR_STRLEN + 10];

	for (size_t i = 0; a && i < n; i++) {
		kp_addr_to_str(&eps[i].addr, ip, sizeof(ip));
		snprintf(t, sizeof(t), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, eps[i].port);
		json_array_append_new(a, json_string(t));
	}
	return a;
}

struct programmed {
	const struct query *q;
	const struct kp_svc_port *sp;
	const struct kp_frontend *fe;
	json_t *eps;			/* as the data plane has them */
	char detail[300];
	bool found;
};

static int pick(const struct kp_dump_entry *e, void *userdata)
{
	struct programmed *p = userdata;

	if (p->found || strcmp(e->ns, kp_svc_port_get_namespace(p->sp)) ||
	    strcmp(e->name, kp_svc_port_get_name(p->sp)) ||
	    strcmp(e->port_name ? e->port_name : "", kp_svc_port_get_port_name(p->sp)) ||
	    e->protocol != p->q->proto || e->port != p->q->port ||
	    !(kp_addr_equal(&e->vip, &p->q->dst) ||
	      (p->fe->kind == KP_FE_NODE_PORT && e->kind == KP_FE_NODE_PORT &&
	       (kp_addr_is_unspecified(&e->vip) || kp_addr_is_unspecified(&p->fe->addr)))))
		return 0;
	p->found = true;
	snprintf(p->detail, sizeof(p->detail), "%s", e->detail ? e->detail : "");
	json_decref(p->eps);
	p->eps = kpd_endpoints_json(e->endpoints, e->n_endpoints);
	return 1;
}

struct opt_values {
	char cluster_cidr[512];
	bool masquerade_all;
	bool masquerades;		/* the data plane has the masquerade-all option */
	char scheduler[32];
};

static int read_opt(const struct kp_option *opt, const char *value, void *userdata)
{
	struct opt_values *o = userdata;
	size_t len = strlen(o->cluster_cidr);

	if (!value)
		return 0;
	if (!strcmp(opt->name, "cluster-cidr"))
		snprintf(o->cluster_cidr + len, sizeof(o->cluster_cidr) - len, "%s%s",
			 len ? "," : "", value);
	else if (!strcmp(opt->name, "masquerade-all"))
		o->masquerade_all = !strcmp(value, "true"), o->masquerades = true;
	else if (!strcmp(opt->name, "scheduler"))
		snprintf(o->scheduler, sizeof(o->scheduler), "%s", value);
	return 0;
}

/* @a in one of the CIDRs of @list ("a/p,b/q"); -1 when the list has none of its family */
static int in_cidrs(const char *list, const struct kp_addr *a)
{
	char buf[512], *save = NULL;
	int seen = -1;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(t, '/');
		struct kp_addr net;

		if (!slash)
			continue;
		*slash = 0;
		if (kp_addr_from_str(t, &net) < 0 || net.family != a->family)
			continue;
		seen = 0;
		if (kp_addr_in_prefix(a, &net, (unsigned)atoi(slash + 1)))
			return 1;
	}
	return seen;
}

static json_t *add_step(json_t *steps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *add_step(json_t *steps, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	json_array_append_new(steps, json_string(line));
	return steps;
}

static int parse_query(const char *src, const char *dst, struct query *q, char *err,
		       size_t size)
{
	char d[128], *colon, *slash;

	if (kp_addr_from_str(src, &q->src) < 0) {
		snprintf(err, size, "SRC %s: not an IP address", src);
		return -EINVAL;
	}
	snprintf(d, sizeof(d), "%s", dst);
	q->proto = KP_PROTO_TCP;
	slash = strrchr(d, '/');
	if (slash) {
		*slash++ = 0;
		if (!strcasecmp(slash, "udp"))
			q->proto = KP_PROTO_UDP;
		else if (!strcasecmp(slash, "sctp"))
			q->proto = KP_PROTO_SCTP;
		else if (strcasecmp(slash, "tcp")) {
			snprintf(err, size, "DST %s: protocol %s: tcp, udp or sctp", dst, slash);
			return -EINVAL;
		}
	}
	colon = strrchr(d, ':');
	if (!colon || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535) {
		snprintf(err, size, "DST %s: IP:PORT[/PROTO] ([IPv6]:PORT)", dst);
		return -EINVAL;
	}
	q->port = (uint16_t)atoi(colon + 1);
	*colon = 0;
	if (d[0] == '[' && d[strlen(d) - 1] == ']') {
		memmove(d, d + 1, strlen(d));
		d[strlen(d) - 1] = 0;
	}
	if (kp_addr_from_str(d, &q->dst) < 0 || q->dst.family != q->src.family) {
		snprintf(err, size, "DST %s: not an IP address of SRC's family", dst);
		return -EINVAL;
	}
	return 0;
}

json_t *kpd_trace(struct kp_ctx *ctx, const char *src, const char *dst)
{
	const struct kp_state *st = kp_ctx_get_state(ctx);
	struct query q = { 0 };
	struct match m = { .q = &q };
	struct opt_values o = { "", false, false, "" };
	json_t *steps = json_array(), *res;
	const char *verdict = "no frontend";
	char err[200], ip[KP_ADDR_STRLEN];

	if (parse_query(src, dst, &q, err, sizeof(err)) < 0) {
		json_decref(steps);
		return json_pack("{s:s}", "error", err);
	}
	kp_ctx_foreach_option(ctx, read_opt, &o);
	if (st)
		kp_state_foreach(st, find, &m);
	res = json_pack("{s:s, s:s, s:s}", "source", src, "destination", dst,
			"backend", kp_ctx_get_backend_name(ctx));
	if (!m.sp) {
		if (m.vip_only) {
			add_step(steps, "%s is the ClusterIP of %s/%s, which has no %s port %u: "
				 "refused", kp_addr_to_str(&q.dst, ip, sizeof(ip)),
				 kp_svc_port_get_namespace(m.vip_only),
				 kp_svc_port_get_name(m.vip_only), kp_protocol_name(q.proto), q.port);
			verdict = "rejected";
		} else {
			add_step(steps, "no service frontend is %s:%u/%s on this node: the "
				 "connection is not proxied", kp_addr_to_str(&q.dst, ip, sizeof(ip)),
				 q.port, kp_protocol_name(q.proto));
		}
		json_object_set_new(res, "verdict", json_string(verdict));
		json_object_set_new(res, "steps", steps);
		return res;
	}

	const struct kp_svc_port *sp = m.sp;
	bool ext = m.fe.external;
	size_t n_eps, n_all;
	const struct kp_endpoint *eps = kp_svc_port_get_endpoints(sp, q.dst.family, ext, &n_eps);
	const struct kp_endpoint *all = kp_svc_port_get_all_endpoints(sp, &n_all);
	bool local = ext ? kp_svc_port_external_local(sp) : kp_svc_port_internal_local(sp);
	struct programmed p = { &q, sp, &m.fe, json_array(), "", false };
	const uint8_t *prefixes;
	size_t n_ranges;
	const struct kp_addr *ranges = kp_svc_port_get_source_ranges(sp, &prefixes, &n_ranges);

	json_object_set_new(res, "service", json_pack("s++", kp_svc_port_get_namespace(sp), "/",
						      kp_svc_port_get_name(sp)));
	json_object_set_new(res, "port_name", json_string(kp_svc_port_get_port_name(sp)));
	json_object_set_new(res, "kind", json_string(kp_frontend_kind_name(m.fe.kind)));
	add_step(steps, "frontend: %s %s/%s%s%s (%s %s)", kp_frontend_kind_name(m.fe.kind),
		 kp_svc_port_get_namespace(sp), kp_svc_port_get_name(sp),
		 *kp_svc_port_get_port_name(sp) ? ":" : "", kp_svc_port_get_port_name(sp),
		 ext ? "externalTrafficPolicy" : "internalTrafficPolicy",
		 local ? "Local" : "Cluster");
	if (m.fe.kind == KP_FE_LOAD_BALANCER && n_ranges) {
		bool in = false, fam = false;

		for (size_t i = 0; i < n_ranges; i++)
			if (ranges[i].family == q.src.family) {
				fam = true;
				in |= kp_addr_in_prefix(&q.src, &ranges[i], prefixes[i]);
			}
		if (fam && !in) {
			add_step(steps, "source %s is outside loadBalancerSourceRanges: dropped "
				 "(firewall)", src);
			json_object_set_new(res, "verdict", json_string("dropped"));
			json_object_set_new(res, "steps", steps);
			json_decref(p.eps);
			return res;
		}
		add_step(steps, "source %s is inside loadBalancerSourceRanges", src);
	}
	kp_ctx_dump_service(ctx, kp_svc_port_get_namespace(sp), kp_svc_port_get_name(sp), pick,
			    &p);
	if (p.found && *p.detail)
		add_step(steps, "data plane: %s", p.detail);
	else if (!p.found)
		add_step(steps, "data plane: has no entry for this frontend (kproxyctl check)");
	if (!n_eps) {
		bool elsewhere = false;

		for (size_t i = 0; i < n_all; i++)
			elsewhere |= all[i].addr.family == q.dst.family;
		verdict = local && elsewhere ? "dropped" : "rejected";
		add_step(steps, "%s", local && elsewhere ?
			 "no local endpoint (traffic policy Local), endpoints only on other "
			 "nodes: dropped" : "no endpoints: rejected");
		json_object_set_new(res, "verdict", json_string(verdict));
		json_object_set_new(res, "steps", steps);
		json_object_set_new(res, "programmed_endpoints", p.eps);
		return res;
	}
	verdict = "forwarded";
	if (*o.scheduler)
		add_step(steps, "%zu endpoint%s, scheduler %s", n_eps, n_eps == 1 ? "" : "s",
			 o.scheduler);
	else if (n_eps == 1)
		add_step(steps, "1 endpoint");
	else
		add_step(steps, "%zu endpoints, each with probability 1/%zu", n_eps, n_eps);
	if (kp_svc_port_get_affinity(sp) == KP_AFFINITY_CLIENT_IP)
		add_step(steps, "ClientIP affinity: %s sticks to its first endpoint for %u s",
			 src, kp_svc_port_get_affinity_timeout(sp));
	{
		json_t *want = kpd_endpoints_json(eps, n_eps);
		bool hairpin = false;

		for (size_t i = 0; i < n_eps; i++)
			hairpin |= kp_addr_equal(&eps[i].addr, &q.src);
		json_object_set_new(res, "endpoints", want);
		if (p.found && !json_equal(want, p.eps))
			add_step(steps, "the data plane's endpoints differ from the wanted ones "
				 "(kproxyctl check)");
		/* masquerading, as kube-proxy decides it */
		if (!o.masquerades)
			add_step(steps, "masquerading: the %s data plane does not decide it",
				 kp_ctx_get_backend_name(ctx));
		else if (o.masquerade_all)
			add_step(steps, "masqueraded (masquerade-all)");
		else if (ext && !local)
			add_step(steps, "masqueraded (externalTrafficPolicy Cluster)");
		else if (ext)
			add_step(steps, "not masqueraded: the client address is kept "
				 "(externalTrafficPolicy Local; host-sourced traffic is)");
		else if (in_cidrs(o.cluster_cidr, &q.src) == 0)
			add_step(steps, "masqueraded: %s is outside the cluster CIDR (%s)", src,
				 o.cluster_cidr);
		else if (hairpin)
			add_step(steps, "masqueraded if it reaches %s itself (hairpin)", src);
		else
			add_step(steps, "not masqueraded");
	}
	json_object_set_new(res, "programmed_endpoints", p.eps);
	json_object_set_new(res, "verdict", json_string(verdict));
	json_object_set_new(res, "steps", steps);
	return res;
}
