// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The iptables backend: kube-proxy's iptables-mode layout (KUBE-SERVICES, KUBE-SVC-,
 * KUBE-SVL-, KUBE-EXT-, KUBE-SEP-, KUBE-NODEPORTS, KUBE-MARK-MASQ, KUBE-POSTROUTING in
 * nat; KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS, KUBE-FORWARD in filter),
 * with kube-proxy's chain names, programmed through libiptc. A sync rebuilds every chain
 * we own in memory and commits each table in one atomic replace: rules and chains we do
 * not own are never touched, and there is no moment without rules. The dump reads the
 * nat and filter tables back from the kernel. IPv4 through libiptc, IPv6 through
 * libip6tc, with the same code (tc.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <netinet/in.h>
#include <linux/netfilter/xt_conntrack.h>

#include "internal.h"
#include "../common/caps.h"
#include "../common/conntrack.h"
#include "../common/xtlock.h"
#include "dispatch.h"
#include "names.h"
#include "../common/opts.h"
#include "../common/rule.h"
#include "../common/tbl.h"
#include "../common/tc.h"


/* chains we create in each table, besides the per-service ones */
static const char *const nat_fixed[] = {
	"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ",
};
static const char *const filter_fixed[] = {
	"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-FORWARD",
	"KUBE-PROXY-FIREWALL",
};
static const char *const svc_prefixes[] = {
	"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-", KP_DISPATCH_PREFIX,
};
/* what a sync rebuilds and a cleanup removes in each table */
static const struct kp_tbl_owned nat_owned = {
	nat_fixed,
	KP_ARRAY_SIZE(nat_fixed),
	svc_prefixes,
	KP_ARRAY_SIZE(svc_prefixes),
};
static const struct kp_tbl_owned filter_owned = {
	filter_fixed,
	KP_ARRAY_SIZE(filter_fixed),
	svc_prefixes,
	KP_ARRAY_SIZE(svc_prefixes),
};

static const char *const local_modes[] = KP_DETECT_LOCAL_MODES;

/* The options init takes (ipt_options[]). */
struct ipt_opts {
	struct kp_cidr_list cluster_cidr;	/* both families */
	const char *detect_local, *pod_bridge, *pod_prefix;
	bool masquerade_all;
	uint32_t masquerade_bit;
	uint32_t dispatch_threshold;	/* frontends above which KUBE-SERVICES is a tree; 0: never */
	bool libiptc;
	bool localhost_nodeports;	/* IPv4 NodePorts answer on 127.0.0.0/8 too */
};

static const struct kp_option ipt_options[] = {
	KP_OPTION_CLUSTER_CIDR(struct ipt_opts, cluster_cidr),
	KP_OPTION_DETECT_LOCAL(struct ipt_opts, detect_local, pod_bridge, pod_prefix,
			       local_modes),
	KP_OPTION_MASQUERADE_ALL(struct ipt_opts, masquerade_all),
	KP_OPTION_MASQUERADE_BIT(struct ipt_opts, masquerade_bit),
	{ .name = "dispatch-threshold", .type = KP_OPT_UINT,
	  .offset = offsetof(struct ipt_opts, dispatch_threshold), .max = 1000000, .def = "100",
	  .help = "above N frontends, split KUBE-SERVICES into a tree of chains by destination "
		  "prefix (0: never)" },
	{ .name = "libiptc", .type = KP_OPT_BOOL, .offset = offsetof(struct ipt_opts, libiptc),
	  .def = "false", .help = "write the tables through libiptc instead of our own writer "
				  "(slower; for comparisons)" },
	{ .name = "localhost-nodeports", .type = KP_OPT_BOOL,
	  .offset = offsetof(struct ipt_opts, localhost_nodeports), .def = "true",
	  .help = "IPv4 NodePorts on every local address include 127.0.0.0/8 (route_localnet=1, "
		  "with kube-proxy's rule against martian sources); false: they exclude it" },
};

struct ipt {
	struct kp_ctx *ctx;
	const struct ipt_opts *o;	/* borrowed from the library, valid until destroy */
	struct kp_local_detect pods;	/* how pod traffic is told apart, from @o */
	uint32_t mark;			/* 1 << masquerade-bit */
	bool random_fully;		/* MASQUERADE --random-fully: the kernel has it */
	bool synced;			/* a sync succeeded since start */
	uint8_t dnat_rev[2];		/* DNAT target revision per family, as iptables picks it */
	bool ipv6;			/* ip6tables usable: IPv6 frontends are programmed */
	bool terse;			/* this sync: no per-endpoint comments (large cluster) */
	bool localnet_warned;		/* route_localnet could not be set: said once */
	struct kp_ipt_rule scratch;	/* jump rules of the dispatch tree */
	/* for metrics, per family [IPv4, IPv6]: rules written by the last good sync of nat
	 * and filter (every sync rewrites all it owns), failed commits; the reconciler's */
	size_t n_rules[2][2];
	uint64_t n_restore_failures[2];
	struct kp_ct_stats ct_stats;
};

/* The table operations syncs, dumps and cleanups go through. */
static const struct kp_tc_ops *ops_for(const struct ipt *ipt, int family)
{
	if (ipt->o->libiptc)
		return family == AF_INET6 ? &kp_tc_ipv6 : &kp_tc_ipv4;
	return family == AF_INET6 ? &kp_tc_fast_ipv6 : &kp_tc_fast_ipv4;
}

static unsigned host_bits(int family)
{
	return family == AF_INET6 ? 128 : 32;
}

/* ---- rendering one service port ---- */

struct svc_names {
	char svc[KP_CHAIN_NAME_SIZE], svl[KP_CHAIN_NAME_SIZE], ext[KP_CHAIN_NAME_SIZE];
	char fw[KP_CHAIN_NAME_SIZE];
	char label[256];		/* "ns/name:port", kube-proxy's ServicePortName */
	char hash_in[300];		/* label + lower-case protocol */
	uint8_t proto;
	const char *proto_lc;
};

static void names_of(const struct kp_svc_port *sp, struct svc_names *n)
{
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP };
	static const char *const lc[] = { "tcp", "udp", "sctp" };
	enum kp_protocol p = kp_svc_port_get_protocol(sp);

	/* kube-proxy's ServicePortName: "ns/name", then ":port" only for a named port */
	snprintf(n->label, sizeof(n->label), "%s/%s%s%s", kp_svc_port_get_namespace(sp),
		 kp_svc_port_get_name(sp), *kp_svc_port_get_port_name(sp) ? ":" : "",
		 kp_svc_port_get_port_name(sp));
	snprintf(n->hash_in, sizeof(n->hash_in), "%s%s", n->label, lc[p]);
	n->proto = protos[p];
	n->proto_lc = lc[p];
	/* the four chains share one hash (kube-proxy's portProtoHash) */
	kp_chain_name(n->svc, "KUBE-SVC-", n->hash_in);
	snprintf(n->svl, sizeof(n->svl), "KUBE-SVL-%s", n->svc + strlen("KUBE-SVC-"));
	snprintf(n->ext, sizeof(n->ext), "KUBE-EXT-%s", n->svc + strlen("KUBE-SVC-"));
	snprintf(n->fw, sizeof(n->fw), "KUBE-FW-%s", n->svc + strlen("KUBE-SVC-"));
}

static void sep_name(const struct svc_names *n, const struct kp_endpoint *ep, char *out)
{
	char in[400], a[KP_ADDR_STRLEN];

	/* Go's net.JoinHostPort, as kube-proxy's endpoint string: [v6]:port */
	snprintf(in, sizeof(in), ep->addr.family == AF_INET6 ? "%s[%s]:%u" : "%s%s:%u",
		 n->hash_in, kp_addr_to_str(&ep->addr, a, sizeof(a)), ep->port);
	kp_chain_name(out, "KUBE-SEP-", in);
}

struct render_ctx {
	struct ipt *ipt;
	struct kp_tbl *nat, *filter;
	int family;			/* of the tables being rendered */
	struct kp_map *nodeports_done;	/* "proto/port" already in KUBE-NODEPORTS */
	const struct kp_addr *node_addrs;	/* this node's addresses (the listed NodePort
						 * ones, kp_ctx_get_nodeport_addrs()) */
	size_t n_node_addrs;
	size_t n_endpoints;		/* over every service port */
	unsigned char *fe_blob;		/* the frontend rules of nat KUBE-SERVICES, for dispatch */
	size_t fe_size, fe_cap;
	struct kp_dispatch_rule *fe;	/* .e offsets into fe_blob until dispatch */
	size_t n_fe, cap_fe;
	char (*seps)[KP_CHAIN_NAME_SIZE];	/* one service port's KUBE-SEP-* names */
	const char **sub_seps;		/* those of an endpoint subset */
	size_t cap_seps;
};

/* A KUBE-SVC-* rule towards one endpoint, started with kube-proxy's "svc -> ep"
 * comment (none in terse mode). */
static struct kp_ipt_rule *endpoint_rule(struct render_ctx *rd, const struct svc_names *n,
					 const struct kp_endpoint *ep)
{
	struct kp_ipt_rule *r;
	char a[KP_ADDR_STRLEN];

	r = kp_tbl_rule(rd->nat);
	if (!rd->ipt->terse)
		kp_ipt_rule_comment(r,
				    ep->addr.family == AF_INET6 ? "%s -> [%s]:%u" : "%s -> %s:%u",
				    n->label, kp_addr_to_str(&ep->addr, a, sizeof(a)), ep->port);
	return r;
}

/* KUBE-SEP-*: hairpin masquerade, then DNAT (recording the client for affinity). */
static void render_sep(struct render_ctx *rd, const struct kp_svc_port *sp,
		       const struct svc_names *n, const struct kp_endpoint *ep, const char *sep)
{
	struct kp_tbl *nat = rd->nat;
	struct kp_ipt_rule *r;

	if (kp_tbl_chain_used(nat, sep))
		return;
	kp_tbl_use_chain(nat, sep);
	r = kp_tbl_rule(nat);
	kp_ipt_rule_src(r, &ep->addr, host_bits(ep->addr.family), false);
	if (!rd->ipt->terse)
		kp_ipt_rule_comment(r, "%s", n->label);
	kp_ipt_rule_jump(r, "KUBE-MARK-MASQ");
	kp_tbl_append(nat, sep);
	r = kp_tbl_rule(nat);
	if (!rd->ipt->terse)
		kp_ipt_rule_comment(r, "%s", n->label);
	if (kp_svc_port_get_affinity(sp) == KP_AFFINITY_CLIENT_IP)
		kp_ipt_rule_recent(r, sep, true, 0);
	kp_ipt_rule_proto_dport(r, n->proto, 0);
	kp_ipt_rule_dnat(r, &ep->addr, ep->port, rd->ipt->dnat_rev[ep->addr.family == AF_INET6]);
	kp_tbl_append(nat, sep);
}

/*
 * The KUBE-SEP-* names of eps[], a subset of all[] in the same order (the state keeps
 * every endpoint set sorted), taken from all_seps[] (all[]'s names).
 */
static bool subset_seps(const struct kp_endpoint *all, const char (*all_seps)[KP_CHAIN_NAME_SIZE],
			size_t n_all, const struct kp_endpoint *eps, size_t n_eps,
			const char **out)
{
	size_t j = 0;

	for (size_t i = 0; i < n_eps; i++, j++) {
		while (j < n_all && (all[j].port != eps[i].port ||
				     !kp_addr_equal(&all[j].addr, &eps[i].addr)))
			j++;
		if (j == n_all)
			return false;
		out[i] = all_seps[j];
	}
	return true;
}

/* KUBE-SVC-* / KUBE-SVL-*: affinity checks, then a random spread over the endpoints,
 * whose KUBE-SEP-* chains are seps[]. */
static void render_spread(struct render_ctx *rd, const struct kp_svc_port *sp,
			  const struct svc_names *n, const char *chain, bool local,
			  const struct kp_endpoint *eps, const char *const *seps, size_t n_eps)
{
	const struct ipt *ipt = rd->ipt;
	struct kp_tbl *nat = rd->nat;
	const struct kp_frontend *fes;
	size_t n_fes;
	struct kp_ipt_rule *r;

	kp_tbl_use_chain(nat, chain);
	/* off-cluster traffic to the cluster IP is masqueraded (kube-proxy's first rule) */
	fes = kp_svc_port_get_frontends(sp, &n_fes);
	for (size_t i = 0; i < n_fes && !local; i++) {
		if (fes[i].kind != KP_FE_CLUSTER_IP || fes[i].addr.family != nat->ops->family)
			continue;
		/* all traffic (masquerade-all), or what is not a pod's; none when pod traffic
		 * cannot be told apart in this family, as kube-proxy */
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "%s cluster IP", n->label);
		if (ipt->o->masquerade_all || kp_ipt_rule_pod_traffic(r, &ipt->pods, false)) {
			kp_ipt_rule_dst(r, &fes[i].addr, host_bits(fes[i].addr.family), false);
			kp_ipt_rule_proto_dport(r, n->proto, fes[i].port);
			kp_ipt_rule_jump(r, "KUBE-MARK-MASQ");
			kp_tbl_append(nat, chain);
		}
	}
	if (kp_svc_port_get_affinity(sp) == KP_AFFINITY_CLIENT_IP) {
		for (size_t i = 0; i < n_eps; i++) {
			r = endpoint_rule(rd, n, &eps[i]);
			kp_ipt_rule_recent(r, seps[i], false, kp_svc_port_get_affinity_timeout(sp));
			kp_ipt_rule_jump(r, seps[i]);
			kp_tbl_append(nat, chain);
		}
	}
	for (size_t i = 0; i < n_eps; i++) {
		r = endpoint_rule(rd, n, &eps[i]);
		if (i < n_eps - 1)
			kp_ipt_rule_statistic(r, (unsigned)(n_eps - i));
		kp_ipt_rule_jump(r, seps[i]);
		kp_tbl_append(nat, chain);
	}
}

/* KUBE-EXT-*: what external traffic goes through before the endpoints. */
static void render_ext(struct render_ctx *rd, const struct kp_svc_port *sp,
		       const struct svc_names *n, bool have_svc, bool have_svl)
{
	const struct ipt *ipt = rd->ipt;
	struct kp_tbl *nat = rd->nat;
	struct kp_ipt_rule *r;

	kp_tbl_use_chain(nat, n->ext);
	if (!kp_svc_port_external_local(sp)) {
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "masquerade traffic for %s external destinations", n->label);
		kp_ipt_rule_jump(r, "KUBE-MARK-MASQ");
		kp_tbl_append(nat, n->ext);
		r = kp_tbl_rule(nat);
		kp_ipt_rule_jump(r, n->svc);
		kp_tbl_append(nat, n->ext);
		return;
	}
	/* Local policy: pods and the node itself still reach every endpoint */
	if (have_svc) {
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "pod traffic for %s external destinations", n->label);
		if (kp_ipt_rule_pod_traffic(r, &ipt->pods, true)) {
			kp_ipt_rule_jump(r, n->svc);
			kp_tbl_append(nat, n->ext);
		}
	}
	r = kp_tbl_rule(nat);
	kp_ipt_rule_comment(r, "masquerade LOCAL traffic for %s external destinations", n->label);
	kp_ipt_rule_addrtype_local(r, true, false);
	kp_ipt_rule_jump(r, "KUBE-MARK-MASQ");
	kp_tbl_append(nat, n->ext);
	if (have_svc) {
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "route LOCAL traffic for %s external destinations",
				    n->label);
		kp_ipt_rule_addrtype_local(r, true, false);
		kp_ipt_rule_jump(r, n->svc);
		kp_tbl_append(nat, n->ext);
	}
	if (have_svl) {
		r = kp_tbl_rule(nat);
		kp_ipt_rule_jump(r, n->svl);
		kp_tbl_append(nat, n->ext);
	}
}

/* Room for @n endpoint names in rd->seps and rd->sub_seps. */
static int seps_room(struct render_ctx *rd, size_t n)
{
	void *a, *b;

	if (n <= rd->cap_seps)
		return 0;
	a = realloc(rd->seps, n * sizeof(*rd->seps));
	if (a)
		rd->seps = a;
	b = realloc(rd->sub_seps, n * sizeof(*rd->sub_seps));
	if (b)
		rd->sub_seps = b;
	if (!a || !b)
		return -ENOMEM;
	rd->cap_seps = n;
	return 0;
}

/* Keeps the rule just built for nat KUBE-SERVICES; dispatch places it at the end. */
static void collect_frontend(struct render_ctx *rd, const struct kp_addr *dst)
{
	const void *e = kp_ipt_rule_entry(&rd->nat->r);
	size_t size;

	if (!e || rd->nat->err) {
		errno = ENOMEM;
		return kp_tbl_fail(rd->nat, "build rule");
	}
	size = kp_ipt_entry_size(rd->family, e);
	if (rd->fe_size + size > rd->fe_cap) {
		size_t cap = (rd->fe_size + size) * 2;
		unsigned char *b = realloc(rd->fe_blob, cap);

		if (!b) {
			errno = ENOMEM;
			return kp_tbl_fail(rd->nat, "frontend rules");
		}
		rd->fe_blob = b;
		rd->fe_cap = cap;
	}
	if (rd->n_fe == rd->cap_fe) {
		size_t cap = rd->cap_fe ? rd->cap_fe * 2 : 256;
		struct kp_dispatch_rule *v = realloc(rd->fe, cap * sizeof(*v));

		if (!v) {
			errno = ENOMEM;
			return kp_tbl_fail(rd->nat, "frontend rules");
		}
		rd->fe = v;
		rd->cap_fe = cap;
	}
	memcpy(rd->fe_blob + rd->fe_size, e, size);
	rd->fe[rd->n_fe].dst = *dst;
	rd->fe[rd->n_fe++].e = (const void *)(uintptr_t)rd->fe_size;	/* an offset for now */
	rd->fe_size += size;
}

/* A rule of the dispatch tree, or (@e NULL) one of its chains. */
static void dispatch_append(void *userdata, const char *chain, const void *e)
{
	struct kp_tbl *nat = userdata;

	if (e)
		kp_tbl_append_entry(nat, chain, e);
	else
		kp_tbl_use_chain(nat, chain);
}

static void dispatch_frontends(struct render_ctx *rd)
{
	struct ipt *ipt = rd->ipt;

	for (size_t i = 0; i < rd->n_fe; i++)
		rd->fe[i].e = (const void *)(rd->fe_blob + (uintptr_t)rd->fe[i].e);
	ipt->scratch.family = rd->family;
	kp_dispatch_build(rd->fe, rd->n_fe, ipt->o->dispatch_threshold, "KUBE-SERVICES",
			  &ipt->scratch, dispatch_append, rd->nat);
}

/*
 * loadBalancerSourceRanges: KUBE-FW-* lets the allowed sources on to KUBE-EXT-*; what it
 * does not DNAT is dropped by filter KUBE-PROXY-FIREWALL. Returns false if the service
 * has no range of the frontend's family (then it jumps straight to KUBE-EXT-*).
 */
static bool render_fw(struct render_ctx *rc, const struct kp_svc_port *sp,
		      const struct svc_names *n, const struct kp_frontend *fe)
{
	struct kp_tbl *nat = rc->nat, *filter = rc->filter;
	const struct kp_addr *ranges;
	const uint8_t *prefixes;
	size_t n_ranges, n_family = 0;
	struct kp_ipt_rule *r;

	ranges = kp_svc_port_get_source_ranges(sp, &prefixes, &n_ranges);
	for (size_t i = 0; i < n_ranges; i++)
		n_family += ranges[i].family == fe->addr.family;
	if (!n_family)
		return false;
	if (!kp_tbl_chain_used(nat, n->fw)) {
		bool node_inside = false;

		kp_tbl_use_chain(nat, n->fw);
		for (size_t i = 0; i < n_ranges; i++) {
			if (ranges[i].family != fe->addr.family)
				continue;
			r = kp_tbl_rule(nat);
			kp_ipt_rule_comment(r, "%s loadbalancer IP", n->label);
			kp_ipt_rule_src(r, &ranges[i], prefixes[i], false);
			kp_ipt_rule_jump(r, n->ext);
			kp_tbl_append(nat, n->fw);
			for (size_t a = 0; a < rc->n_node_addrs; a++)
				node_inside |= kp_addr_in_prefix(&rc->node_addrs[a], &ranges[i],
								 prefixes[i]);
		}
		/* the node's own traffic to its LB IP comes from the LB IP (kube-proxy) */
		if (node_inside) {
			r = kp_tbl_rule(nat);
			kp_ipt_rule_comment(r, "%s loadbalancer IP", n->label);
			kp_ipt_rule_src(r, &fe->addr, host_bits(fe->addr.family), false);
			kp_ipt_rule_jump(r, n->ext);
			kp_tbl_append(nat, n->fw);
		}
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "other traffic to %s will be dropped by KUBE-PROXY-FIREWALL",
				    n->label);
		kp_ipt_rule_no_target(r);
		kp_tbl_append(nat, n->fw);
	}
	r = kp_tbl_rule(filter);
	kp_ipt_rule_comment(r, "%s traffic not accepted by %s", n->label, n->fw);
	kp_ipt_rule_dst(r, &fe->addr, host_bits(fe->addr.family), false);
	kp_ipt_rule_proto_dport(r, n->proto, fe->port);
	kp_ipt_rule_jump(r, "DROP");
	kp_tbl_append(filter, "KUBE-PROXY-FIREWALL");
	return true;
}

static void reject_rule(struct kp_tbl *filter, const char *chain, const struct svc_names *n,
			const struct kp_frontend *fe, bool drop, const char *why)
{
	struct kp_ipt_rule *r = kp_tbl_rule(filter);

	kp_ipt_rule_comment(r, "%s %s", n->label, why);
	if (fe->kind == KP_FE_NODE_PORT)
		kp_ipt_rule_addrtype_local(r, false, false);
	else
		kp_ipt_rule_dst(r, &fe->addr, host_bits(fe->addr.family), false);
	kp_ipt_rule_proto_dport(r, n->proto, fe->port);
	if (drop)
		kp_ipt_rule_jump(r, "DROP");
	else
		kp_ipt_rule_reject(r);
	kp_tbl_append(filter, chain);
}

/* Where one frontend of a service port jumps: its SVC/SVL, EXT or FW chain, or a reject.
 * @n_cl, @n_ex: the cluster and external endpoints of this family; @n_fam: any of them. */
static void render_frontend(struct render_ctx *rd, const struct kp_svc_port *sp,
			    const struct svc_names *n, const struct kp_frontend *fe, size_t n_cl,
			    size_t n_ex, size_t n_fam)
{
	static const char *const what[_KP_FE_MAX] = {
		"cluster IP", "node port", "external IP", "loadbalancer IP"
	};
	bool itp_local = kp_svc_port_internal_local(sp), fw;
	struct kp_tbl *nat = rd->nat, *filter = rd->filter;
	char key[32];
	struct kp_ipt_rule *r;

	if (fe->kind == KP_FE_CLUSTER_IP) {
		if (!n_cl) {
			reject_rule(filter, "KUBE-SERVICES", n, fe, n_fam && itp_local,
				    n_fam ? "has no local endpoints" : "has no endpoints");
			return;
		}
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "%s cluster IP", n->label);
		kp_ipt_rule_dst(r, &fe->addr, host_bits(rd->family), false);
		kp_ipt_rule_proto_dport(r, n->proto, fe->port);
		kp_ipt_rule_jump(r, itp_local ? n->svl : n->svc);
		collect_frontend(rd, &fe->addr);
		return;
	}
	if (!n_ex) {
		/* REJECT when there is no endpoint at all, DROP for Local without one */
		if (fe->kind == KP_FE_NODE_PORT) {
			snprintf(key, sizeof(key), "f/%u/%u", n->proto, fe->port);
			if (kp_map_get(rd->nodeports_done, key))
				return;
			kp_map_put(rd->nodeports_done, key, rd, NULL);
		}
		reject_rule(filter, "KUBE-EXTERNAL-SERVICES", n, fe, n_fam > 0,
			    n_fam ? "has no local endpoints" : "has no endpoints");
	}
	if (!n_fam)
		return;
	if (fe->kind == KP_FE_NODE_PORT) {
		snprintf(key, sizeof(key), "%u/%u", n->proto, fe->port);
		if (kp_map_get(rd->nodeports_done, key))
			return;
		kp_map_put(rd->nodeports_done, key, rd, NULL);
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "%s", n->label);
		kp_ipt_rule_proto_dport(r, n->proto, fe->port);
		kp_ipt_rule_jump(r, n->ext);
		kp_tbl_append(nat, "KUBE-NODEPORTS");
		return;
	}
	fw = fe->kind == KP_FE_LOAD_BALANCER && render_fw(rd, sp, n, fe);
	r = kp_tbl_rule(nat);
	kp_ipt_rule_comment(r, "%s %s", n->label, what[fe->kind]);
	kp_ipt_rule_dst(r, &fe->addr, host_bits(rd->family), false);
	kp_ipt_rule_proto_dport(r, n->proto, fe->port);
	kp_ipt_rule_jump(r, fw ? n->fw : n->ext);
	collect_frontend(rd, &fe->addr);
}

/* filter KUBE-NODEPORTS: the health-check node port is let in, once per port. */
static void render_hc_port(struct render_ctx *rd, const struct kp_svc_port *sp,
			   const struct svc_names *n)
{
	uint16_t port = kp_svc_port_get_health_check_node_port(sp);
	struct kp_ipt_rule *r;
	char key[32];

	if (!port)
		return;
	snprintf(key, sizeof(key), "hc/%u", port);
	if (kp_map_get(rd->nodeports_done, key))
		return;
	kp_map_put(rd->nodeports_done, key, rd, NULL);
	r = kp_tbl_rule(rd->filter);
	kp_ipt_rule_comment(r, "%s health check node port", n->label);
	kp_ipt_rule_proto_dport(r, IPPROTO_TCP, port);
	kp_ipt_rule_jump(r, "ACCEPT");
	kp_tbl_append(rd->filter, "KUBE-NODEPORTS");
}

/* One spread chain (SVC over @v cluster-wide, SVL over this node's) when @v has
 * endpoints; returns whether it was written. */
static bool render_one_spread(struct render_ctx *rd, const struct kp_svc_port *sp,
			      const struct svc_names *n, bool local, const struct kp_endpoint *all,
			      size_t n_all, const struct kp_endpoint *v, size_t nv)
{
	if (!nv)
		return false;
	if (!subset_seps(all, rd->seps, n_all, v, nv, rd->sub_seps)) {
		errno = EINVAL;		/* not a subset: the state broke its order */
		kp_tbl_fail(rd->nat, "endpoint order");
		return false;
	}
	render_spread(rd, sp, n, local ? n->svl : n->svc, local, v, rd->sub_seps, nv);
	return true;
}

static int render_port(const struct kp_svc_port *sp, void *userdata)
{
	struct render_ctx *rd = userdata;
	struct kp_tbl *nat = rd->nat, *filter = rd->filter;
	const struct kp_endpoint *cl, *ex, *all;
	size_t n_cl, n_ex, n_all, n_fes, n_fam = 0;
	const struct kp_frontend *fes;
	bool itp_local = kp_svc_port_internal_local(sp), etp_local = kp_svc_port_external_local(sp);
	bool have_svc = false, have_svl = false, has_external = false;
	struct svc_names n = { 0 };
	bool in_family = false;

	cl = kp_svc_port_get_endpoints(sp, rd->family, false, &n_cl);
	ex = kp_svc_port_get_endpoints(sp, rd->family, true, &n_ex);
	all = kp_svc_port_get_all_endpoints(sp, &n_all);
	fes = kp_svc_port_get_frontends(sp, &n_fes);
	for (size_t i = 0; i < n_fes; i++) {
		has_external |= fes[i].external && fes[i].addr.family == rd->family;
		in_family |= fes[i].addr.family == rd->family;
	}
	for (size_t i = 0; i < n_all && !in_family; i++)
		in_family = all[i].addr.family == rd->family;
	if (!in_family)
		return 0;	/* nothing of it in this family's tables */
	if (seps_room(rd, n_all) < 0) {
		errno = ENOMEM;
		kp_tbl_fail(nat, "endpoint names");
		return 1;
	}
	names_of(sp, &n);
	for (size_t i = 0; i < n_all; i++) {
		if (all[i].addr.family != rd->family)
			continue;
		n_fam++;
		sep_name(&n, &all[i], rd->seps[i]);
		render_sep(rd, sp, &n, &all[i], rd->seps[i]);
	}
	/* SVC spreads over the cluster-wide set, SVL over this node's */
	if (!itp_local || (has_external && !etp_local))
		have_svc = render_one_spread(rd, sp, &n, false, all, n_all, itp_local ? ex : cl,
					     itp_local ? n_ex : n_cl);
	if (itp_local || (has_external && etp_local))
		have_svl = render_one_spread(rd, sp, &n, true, all, n_all, itp_local ? cl : ex,
					     itp_local ? n_cl : n_ex);
	if (has_external && n_fam)
		render_ext(rd, sp, &n, have_svc, have_svl);
	/* kube-proxy's order: cluster IPs, external IPs, LB IPs, then the NodePort (the
	 * state lists NodePorts second) */
	for (int np = 0; np < 2; np++)
		for (size_t i = 0; i < n_fes; i++)
			if (fes[i].addr.family == rd->family &&	/* else the other family's */
			    (fes[i].kind == KP_FE_NODE_PORT) == np)
				render_frontend(rd, sp, &n, &fes[i], n_cl, n_ex, n_fam);
	render_hc_port(rd, sp, &n);
	return nat->err || filter->err;
}

static const struct kp_addr loopback4 = { .family = AF_INET, .v4 = { 0x0000007f } };
static const struct kp_addr loopback6 = { .family = AF_INET6, .v6 = IN6ADDR_LOOPBACK_INIT };

static bool is_loopback(const struct kp_addr *a)
{
	return a->family == AF_INET ? kp_addr_in_prefix(a, &loopback4, 8) :
				      kp_addr_equal(a, &loopback6);
}

/*
 * As kube-proxy: IPv4 NodePorts answer on 127.0.0.0/8 when the option is on and the
 * NodePort addresses take loopback in (every local address, or a listed 127.x one).
 */
static bool localhost_nodeports(const struct ipt *ipt)
{
	const struct kp_addr *v;
	size_t n;

	if (!ipt->o->localhost_nodeports)
		return false;
	if (kp_ctx_get_nodeport_any_local(ipt->ctx, AF_INET))
		return true;
	v = kp_ctx_get_nodeport_addrs(ipt->ctx, &n);
	for (size_t i = 0; i < n; i++)
		if (v[i].family == AF_INET && is_loopback(&v[i]))
			return true;
	return false;
}

/*
 * The last rules of nat KUBE-SERVICES, as kube-proxy writes them: NodePorts on every
 * local address go on with "-m addrtype --dst-type LOCAL" (minus ::1, which never works,
 * and 127.0.0.0/8 without localhost NodePorts); else one "-d IP" jump per listed address
 * of the family (loopback ones as those two rules allow).
 */
static void render_nodeport_jumps(struct render_ctx *rd)
{
	static const char comment[] = "kubernetes service nodeports; NOTE: this must be the "
				      "last rule in this chain";
	struct kp_tbl *nat = rd->nat;
	bool v6 = rd->family == AF_INET6, localhost = !v6 && localhost_nodeports(rd->ipt);
	const struct kp_addr *v;
	struct kp_ipt_rule *r;
	size_t n;

	if (kp_ctx_get_nodeport_any_local(rd->ipt->ctx, rd->family)) {
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "%s", comment);
		kp_ipt_rule_addrtype_local(r, false, false);
		if (v6 || !localhost)
			kp_ipt_rule_dst(r, v6 ? &loopback6 : &loopback4, v6 ? 128 : 8, true);
		kp_ipt_rule_jump(r, "KUBE-NODEPORTS");
		kp_tbl_append(nat, "KUBE-SERVICES");
		return;
	}
	v = kp_ctx_get_nodeport_addrs(rd->ipt->ctx, &n);
	for (size_t i = 0; i < n; i++) {
		if (v[i].family != rd->family || (is_loopback(&v[i]) && (v6 || !localhost)))
			continue;
		r = kp_tbl_rule(nat);
		kp_ipt_rule_comment(r, "%s", comment);
		kp_ipt_rule_dst(r, &v[i], host_bits(v[i].family), false);
		kp_ipt_rule_jump(r, "KUBE-NODEPORTS");
		kp_tbl_append(nat, "KUBE-SERVICES");
	}
}

/*
 * route_localnet lets anyone who can reach the node send to 127.0.0.0/8: kube-proxy's
 * (and kubelet's) KUBE-FIREWALL drops such packets unless they come from loopback or
 * were DNATed there. The chain is kubelet's too: rewritten, jumped to from INPUT and
 * OUTPUT, and left in place by a cleanup, as kube-proxy does.
 */
static void render_martian_drop(struct kp_tbl *filter)
{
	struct kp_ipt_rule *r;

	kp_tbl_fresh_chain(filter, "KUBE-FIREWALL");
	r = kp_tbl_rule(filter);
	kp_ipt_rule_comment(r, "block incoming localnet connections");
	kp_ipt_rule_dst(r, &loopback4, 8, false);
	kp_ipt_rule_src(r, &loopback4, 8, true);
	kp_ipt_rule_ctstate_not(r, XT_CONNTRACK_STATE_BIT(IP_CT_RELATED) |
				   XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED) |
				   XT_CONNTRACK_STATE_DNAT);
	kp_ipt_rule_jump(r, "DROP");
	kp_tbl_append(filter, "KUBE-FIREWALL");
	for (int i = 0; i < 2; i++) {
		r = kp_tbl_rule(filter);
		kp_ipt_rule_jump(r, "KUBE-FIREWALL");
		kp_tbl_ensure_rule(filter, i ? "OUTPUT" : "INPUT", "KUBE-FIREWALL", true);
	}
}

static void render_fixed(struct render_ctx *rd)
{
	struct kp_tbl *nat = rd->nat, *filter = rd->filter;
	struct kp_ipt_rule *r;

	for (size_t i = 0; i < KP_ARRAY_SIZE(nat_fixed); i++)
		kp_tbl_use_chain(nat, nat_fixed[i]);
	for (size_t i = 0; i < KP_ARRAY_SIZE(filter_fixed); i++)
		kp_tbl_use_chain(filter, filter_fixed[i]);

	kp_tbl_masq_rules(nat, rd->ipt->mark, rd->ipt->random_fully);

	render_nodeport_jumps(rd);
	if (rd->family == AF_INET && localhost_nodeports(rd->ipt))
		render_martian_drop(filter);

	r = kp_tbl_rule(filter);
	kp_ipt_rule_ctstate(r, XT_CONNTRACK_STATE_INVALID);
	kp_ipt_rule_jump(r, "DROP");
	kp_tbl_append(filter, "KUBE-FORWARD");
	kp_tbl_forward_rules(filter, rd->ipt->mark);

	kp_tbl_ensure_jump(nat, "PREROUTING", "KUBE-SERVICES", "kubernetes service portals", false);
	kp_tbl_ensure_jump(nat, "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", false);
	kp_tbl_ensure_jump(nat, "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules",
			   false);
	kp_tbl_ensure_jump(filter, "INPUT", "KUBE-NODEPORTS",
			   "kubernetes health check service ports", false);
	kp_tbl_ensure_jump(filter, "INPUT", "KUBE-EXTERNAL-SERVICES",
			   "kubernetes externally-visible service portals", true);
	kp_tbl_ensure_jump(filter, "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules", false);
	kp_tbl_ensure_jump(filter, "FORWARD", "KUBE-SERVICES", "kubernetes service portals", true);
	kp_tbl_ensure_jump(filter, "FORWARD", "KUBE-EXTERNAL-SERVICES",
			   "kubernetes externally-visible service portals", true);
	kp_tbl_ensure_jump(filter, "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", true);
	kp_tbl_ensure_jump(filter, "INPUT", "KUBE-PROXY-FIREWALL",
			   "kubernetes load balancer firewall", true);
	kp_tbl_ensure_jump(filter, "OUTPUT", "KUBE-PROXY-FIREWALL",
			   "kubernetes load balancer firewall", true);
	kp_tbl_ensure_jump(filter, "FORWARD", "KUBE-PROXY-FIREWALL",
			   "kubernetes load balancer firewall", true);
}

/* Where /proc/sys is read-only (a container that is not privileged) the write fails: said
 * once, as a warning, since 127.0.0.1:NodePort then goes unanswered. */
static void allow_localnet(struct ipt *ipt)
{
	int r = kp_sysctl_set("net/ipv4/conf/all/route_localnet", "1");

	if (r < 0 && !ipt->localnet_warned)
		kp_log(ipt->ctx, KP_LOG_WARN, "iptables: cannot set net.ipv4.conf.all.route_localnet "
		       "to 1 (%s): NodePorts on 127.0.0.1 do not answer unless the node sets it "
		       "(or --iptables-localhost-nodeports=false)", kp_strerror(r));
	ipt->localnet_warned |= r < 0;
}

static int count_endpoints(const struct kp_svc_port *sp, void *userdata)
{
	struct render_ctx *rd = userdata;
	size_t n;

	kp_svc_port_get_all_endpoints(sp, &n);
	rd->n_endpoints += n;
	return 0;
}

/* Rebuilds and commits the nat and filter tables of one family. */
static int sync_family(struct ipt *ipt, const struct kp_tc_ops *ops, const struct kp_state *want)
{
	struct kp_tbl nat, filter;
	struct render_ctx rd = {
		.ipt = ipt, .nat = &nat, .filter = &filter, .family = ops->family,
		.nodeports_done = kp_map_new(),
	};
	int r, r_filter;

	kp_state_foreach(want, count_endpoints, &rd);
	rd.node_addrs = kp_ctx_get_nodeport_addrs(ipt->ctx, &rd.n_node_addrs);
	/* as kube-proxy: above 1000 endpoints, no comments on per-endpoint rules */
	ipt->terse = rd.n_endpoints > 1000;
	if (!rd.nodeports_done) {
		r = -ENOMEM;
		goto out_maps;
	}
	r = kp_tbl_open_ops(&nat, ipt->ctx, "iptables", ops, "nat", KP_TBL_TRACK_USED);
	if (r < 0)
		goto out_maps;
	r = kp_tbl_open_ops(&filter, ipt->ctx, "iptables", ops, "filter", KP_TBL_TRACK_USED);
	if (r < 0) {
		kp_tbl_close(&nat, false);
		goto out_maps;
	}
	kp_tbl_flush_owned(&nat, &nat_owned);
	kp_tbl_flush_owned(&filter, &filter_owned);
	/* the fixed chains first, so KUBE-SERVICES exists before service rules land */
	for (size_t i = 0; i < KP_ARRAY_SIZE(nat_fixed); i++)
		kp_tbl_use_chain(&nat, nat_fixed[i]);
	for (size_t i = 0; i < KP_ARRAY_SIZE(filter_fixed); i++)
		kp_tbl_use_chain(&filter, filter_fixed[i]);
	kp_state_foreach(want, render_port, &rd);
	dispatch_frontends(&rd);
	/* the fixed rules; the node-port ones close KUBE-SERVICES */
	render_fixed(&rd);
	kp_tbl_delete_unused(&nat, &nat_owned);
	kp_tbl_delete_unused(&filter, &filter_owned);
	/* filter is committed only after nat was */
	r = kp_tbl_close(&nat, true);
	r_filter = kp_tbl_close(&filter, !r);
	if (!r)
		r = r_filter;
	if (r < 0) {
		ipt->n_restore_failures[ops->family == AF_INET6]++;
		kp_log(ipt->ctx, KP_LOG_DEBUG, "%s sync failed: %s: %s", ops->tool,
		       nat.err ? nat.err_what : filter.err_what, kp_strerror(r));
	} else {
		ipt->n_rules[ops->family == AF_INET6][0] = nat.n_appended;
		ipt->n_rules[ops->family == AF_INET6][1] = filter.n_appended;
	}
out_maps:
	kp_map_free(rd.nodeports_done);
	free(rd.fe_blob);
	free(rd.fe);
	free(rd.seps);
	free(rd.sub_seps);
	return r;
}

static int ipt_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	struct ipt *ipt = priv;
	int r, lock = kp_xt_lock(ipt->ctx, "iptables");

	if (lock < 0)
		return lock;
	/* before the rules that need it, as kube-proxy sets it at start */
	if (localhost_nodeports(ipt))
		allow_localnet(ipt);
	r = sync_family(ipt, ops_for(ipt, AF_INET), want);
	if (!r && ipt->ipv6)
		r = sync_family(ipt, ops_for(ipt, AF_INET6), want);
	kp_xt_unlock(lock);
	if (r < 0)
		return r;
	kp_ct_after_sync(ipt->ctx, "iptables", want, delta, ipt->synced, ipt->ipv6, &ipt->ct_stats);
	ipt->synced = true;
	return 0;
}

/* ---- reading back ---- */

struct dumper {
	const struct kp_tc_ops *ops;
	int family;
	struct xtc_handle *nat, *filter;
	kp_dump_fn fn;
	void *userdata;
	struct kp_endpoint eps[1024];
	size_t n_eps;
	struct kp_addr node_addrs[64];
	size_t n_node_addrs;
};

/*
 * A chain's rules as an array: libiptc has one rule iterator per handle, so walks that
 * look into other chains on the way must not nest iterations. The entries stay valid
 * until the handle is freed. Caller frees the array; NULL with *ret_n 0 for none.
 */
static const void **rules_of(const struct kp_tc_ops *ops, struct xtc_handle *h, const char *chain,
			     size_t *ret_n)
{
	const void **v = NULL;
	size_t n = 0, cap = 0;

	*ret_n = 0;
	if (!ops->is_chain(chain, h))
		return NULL;
	for (const void *e = ops->first_rule(chain, h); e; e = ops->next_rule(e, h)) {
		if (n == cap) {
			const void **nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv)
				break;
			v = nv;
		}
		v[n++] = e;
	}
	*ret_n = n;
	return v;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void add_ep(struct dumper *d, const char *sep)
{
	for (const void *e = d->ops->first_rule(sep, d->nat); e; e = d->ops->next_rule(e, d->nat)) {
		struct kp_addr a;
		uint16_t port;

		if (!kp_ipt_entry_dnat(d->family, e, &a, &port))
			continue;
		for (size_t i = 0; i < d->n_eps; i++)
			if (kp_addr_equal(&d->eps[i].addr, &a) && d->eps[i].port == port)
				return;
		if (d->n_eps < KP_ARRAY_SIZE(d->eps))
			d->eps[d->n_eps++] = (struct kp_endpoint){
				.addr = a, .port = port, .ready = true, .serving = true,
			};
		return;
	}
}

/* Collects the endpoints a KUBE-SVC/SVL/EXT chain leads to. */
static void resolve(struct dumper *d, const char *chain)
{
	const void **v, *last = NULL;
	size_t n;

	if (!has_prefix(chain, "KUBE-EXT-") && !has_prefix(chain, "KUBE-SVC-") &&
	    !has_prefix(chain, "KUBE-SVL-") && !has_prefix(chain, "KUBE-FW-"))
		return;
	v = rules_of(d->ops, d->nat, chain, &n);
	for (size_t i = 0; i < n; i++) {
		const char *t = d->ops->get_target(v[i], d->nat);

		/* KUBE-FW: the allowed sources go on to KUBE-EXT */
		if (has_prefix(chain, "KUBE-FW-")) {
			if (has_prefix(t, "KUBE-EXT-"))
				last = v[i];
		/* in KUBE-EXT, the catch-all jump (no match at all) carries external traffic */
		} else if (has_prefix(chain, "KUBE-EXT-")) {
			if (!kp_ipt_entry_has_src(d->family, v[i]) &&
			    !kp_ipt_entry_has_matches(d->family, v[i]))
				last = v[i];
		} else if (has_prefix(t, "KUBE-SEP-")) {
			add_ep(d, t);
		}
	}
	if (last) {
		char target[KP_CHAIN_NAME_SIZE];

		snprintf(target, sizeof(target), "%s", d->ops->get_target(last, d->nat));
		resolve(d, target);
	}
	free(v);
}

/* Splits kube-proxy's "ns/name[:port] rest" comment. */
static bool parse_label(const char *comment, char *ns, char *name, char *port, size_t size)
{
	const char *slash = comment ? strchr(comment, '/') : NULL, *end, *colon;

	if (!slash)
		return false;
	end = slash + strcspn(slash, " ");
	colon = memchr(slash, ':', (size_t)(end - slash));
	snprintf(ns, size, "%.*s", (int)(slash - comment), comment);
	snprintf(name, size, "%.*s", (int)((colon ? colon : end) - slash - 1), slash + 1);
	snprintf(port, size, "%.*s", colon ? (int)(end - colon - 1) : 0, colon ? colon + 1 : "");
	return true;
}

static enum kp_protocol proto_of(uint8_t p)
{
	return p == IPPROTO_UDP ? KP_PROTO_UDP : p == IPPROTO_SCTP ? KP_PROTO_SCTP : KP_PROTO_TCP;
}

static int emit(struct dumper *d, const void *e, enum kp_frontend_kind kind,
		const struct kp_addr *vip, const char *detail)
{
	char ns[128], name[128], port[128];
	struct kp_dump_entry de = { .kind = kind, .detail = detail };
	uint8_t proto;
	uint16_t dport;

	if (!parse_label(kp_ipt_entry_comment(d->family, e), ns, name, port, sizeof(ns)) ||
	    !kp_ipt_entry_dport(d->family, e, &proto, &dport))
		return 0;
	de.ns = ns;
	de.name = name;
	de.port_name = port;
	de.protocol = proto_of(proto);
	de.vip = *vip;
	de.port = dport;
	de.endpoints = d->eps;
	de.n_endpoints = d->n_eps;
	return d->fn(&de, d->userdata);
}

static enum kp_frontend_kind kind_of(const char *comment)
{
	if (strstr(comment, " external IP"))
		return KP_FE_EXTERNAL_IP;
	if (strstr(comment, " loadbalancer IP"))
		return KP_FE_LOAD_BALANCER;
	return KP_FE_CLUSTER_IP;
}

/* The frontend rules of nat KUBE-SERVICES, descending into the dispatch tree. */
static int dump_frontends(struct dumper *d, const char *chain, int depth)
{
	const void **v;
	size_t n;
	int r = 0;

	v = rules_of(d->ops, d->nat, chain, &n);
	for (size_t i = 0; i < n && !r; i++) {
		char t[KP_CHAIN_NAME_SIZE];
		const char *comment = kp_ipt_entry_comment(d->family, v[i]);
		struct kp_addr vip;

		snprintf(t, sizeof(t), "%s", d->ops->get_target(v[i], d->nat));
		if (has_prefix(t, KP_DISPATCH_PREFIX)) {
			if (depth < 40)
				r = dump_frontends(d, t, depth + 1);
			continue;
		}
		/* the addrtype LOCAL jump: NodePorts on every local address */
		if (!kp_ipt_entry_dst(d->family, v[i], &vip))
			vip = (struct kp_addr){ .family = d->family };
		else if (!comment)
			continue;
		if (strcmp(t, "KUBE-NODEPORTS") == 0) {
			if (d->n_node_addrs < KP_ARRAY_SIZE(d->node_addrs))
				d->node_addrs[d->n_node_addrs++] = vip;
			continue;
		}
		if (kp_addr_is_unspecified(&vip) || !comment)
			continue;
		d->n_eps = 0;
		resolve(d, t);
		r = emit(d, v[i], kind_of(comment), &vip, t);
	}
	free(v);
	return r;
}

static int dump_services(struct dumper *d)
{
	const void **v;
	size_t n;
	int r = dump_frontends(d, "KUBE-SERVICES", 0);

	v = rules_of(d->ops, d->nat, "KUBE-NODEPORTS", &n);
	for (size_t i = 0; i < n && !r; i++) {
		char t[KP_CHAIN_NAME_SIZE];

		snprintf(t, sizeof(t), "%s", d->ops->get_target(v[i], d->nat));
		d->n_eps = 0;
		resolve(d, t);
		for (size_t a = 0; a < d->n_node_addrs && !r; a++)
			r = emit(d, v[i], KP_FE_NODE_PORT, &d->node_addrs[a], t);
	}
	free(v);
	return r;
}

/*
 * Frontends that only the filter table knows: services without endpoints (REJECT), and
 * cluster IPs of internalTrafficPolicy Local services without a local endpoint (DROP).
 */
static int dump_refused(struct dumper *d)
{
	static const char *const chains[] = { "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES" };
	int r = 0;

	d->n_eps = 0;
	for (size_t c = 0; c < KP_ARRAY_SIZE(chains) && !r; c++) {
		const void **v;
		size_t n;

		v = rules_of(d->ops, d->filter, chains[c], &n);
		for (size_t i = 0; i < n && !r; i++) {
			const char *t = d->ops->get_target(v[i], d->filter);
			const char *comment = kp_ipt_entry_comment(d->family, v[i]);
			struct kp_addr vip;

			/* an external DROP (Local policy, no local endpoint) has its nat rule,
			 * already reported with no endpoints */
			if (!comment || (c && strcmp(t, "DROP") == 0))
				continue;
			if (kp_ipt_entry_dst(d->family, v[i], &vip))
				r = emit(d, v[i], c ? kind_of(comment) : KP_FE_CLUSTER_IP, &vip, t);
			else
				for (size_t a = 0; a < d->n_node_addrs && !r; a++)
					r = emit(d, v[i], KP_FE_NODE_PORT, &d->node_addrs[a], t);
		}
		free(v);
	}
	return r;
}

static int dump_family(const struct kp_tc_ops *ops, kp_dump_fn fn, void *userdata)
{
	struct dumper *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	d->ops = ops;
	d->family = ops->family;
	d->fn = fn;
	d->userdata = userdata;
	d->nat = ops->init("nat");
	d->filter = d->nat ? ops->init("filter") : NULL;
	if (!d->nat || !d->filter) {
		r = errno ? -errno : -EIO;
		goto out;
	}
	r = ops->is_chain("KUBE-SERVICES", d->nat) ? dump_services(d) : 0;
	if (!r)
		r = dump_refused(d);
out:
	if (d->nat)
		ops->free(d->nat);
	if (d->filter)
		ops->free(d->filter);
	free(d);
	return r;
}

static int ipt_dump(void *priv, kp_dump_fn fn, void *userdata)
{
	struct ipt *ipt = priv;
	int r = dump_family(ops_for(ipt, AF_INET), fn, userdata);

	if (!r && ipt->ipv6)
		r = dump_family(ops_for(ipt, AF_INET6), fn, userdata);
	return r;
}

/* ---- cleanup ---- */

static int cleanup_family(struct ipt *ipt, const struct kp_tc_ops *ops)
{
	static const char *const nat_builtin[] = { "PREROUTING", "OUTPUT", "POSTROUTING" };
	static const char *const filter_builtin[] = { "INPUT", "FORWARD", "OUTPUT" };
	struct kp_tbl nat, filter;
	int r, r_filter;

	r = kp_tbl_open_ops(&nat, ipt->ctx, "iptables", ops, "nat", KP_TBL_TRACK_USED);
	if (r < 0)
		return r;
	r = kp_tbl_open_ops(&filter, ipt->ctx, "iptables", ops, "filter", KP_TBL_TRACK_USED);
	if (r < 0) {
		kp_tbl_close(&nat, false);
		return r;
	}
	for (size_t i = 0; i < KP_ARRAY_SIZE(nat_builtin); i++)
		kp_tbl_remove_owned_jumps(&nat, nat_builtin[i], &nat_owned);
	for (size_t i = 0; i < KP_ARRAY_SIZE(filter_builtin); i++)
		kp_tbl_remove_owned_jumps(&filter, filter_builtin[i], &filter_owned);
	/* nothing is used: every chain we own goes */
	kp_tbl_flush_owned(&nat, &nat_owned);
	kp_tbl_flush_owned(&filter, &filter_owned);
	kp_tbl_delete_unused(&nat, &nat_owned);
	kp_tbl_delete_unused(&filter, &filter_owned);
	r = kp_tbl_close(&nat, true);
	r_filter = kp_tbl_close(&filter, !r);
	return r ? r : r_filter;
}

static int ipt_cleanup(void *priv)
{
	struct ipt *ipt = priv;
	int lock = kp_xt_lock(ipt->ctx, "iptables"), r;

	if (lock < 0)
		return lock;
	r = cleanup_family(ipt, ops_for(ipt, AF_INET));
	if (!r && ipt->ipv6)
		r = cleanup_family(ipt, ops_for(ipt, AF_INET6));
	kp_xt_unlock(lock);
	return r;
}

/* ---- lifetime ---- */

static int ipt_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	struct ipt *ipt = calloc(1, sizeof(*ipt));
	int r;

	if (!ipt)
		return -ENOMEM;
	ipt->ctx = ctx;
	ipt->o = opts;
	ipt->pods = (struct kp_local_detect){ ipt->o->detect_local, &ipt->o->cluster_cidr,
					      ipt->o->pod_bridge, ipt->o->pod_prefix };
	ipt->mark = 1u << ipt->o->masquerade_bit;
	ipt->random_fully = kp_ipt_random_fully();
	ipt->dnat_rev[0] = kp_ipt_dnat_revision(AF_INET);
	ipt->dnat_rev[1] = kp_ipt_dnat_revision(AF_INET6);
	kp_ipt_rule_init(&ipt->scratch, AF_INET);
	/* fail early, with the reason, where the kernel or privileges are missing (a probe
	 * that does not read the tables: libiptc's parse of a large table takes minutes) */
	r = kp_tc_fast_probe(AF_INET, "nat");
	if (r < 0) {
		char why[160];

		kp_ctx_set_error(ctx, r, "iptables: cannot open the nat table: %s%s",
				 kp_tc_ipv4.strerror(-r), kp_caps_explain(r, KP_CAP(CAP_NET_ADMIN) |
				 KP_CAP(CAP_NET_RAW), why, sizeof(why)));
		kp_ipt_rule_fini(&ipt->scratch);
		free(ipt);
		return r;
	}
	/* IPv6 is programmed where ip6tables works; else IPv6 frontends are left out */
	r = kp_tc_fast_probe(AF_INET6, "nat");
	ipt->ipv6 = r == 0;
	if (r < 0)
		kp_log(ctx, KP_LOG_DEBUG, "ip6tables: cannot open the nat table (%s): IPv6 "
		       "frontends are not programmed", kp_tc_ipv6.strerror(-r));
	*ret_priv = ipt;
	return 0;
}

static void ipt_destroy(void *priv)
{
	struct ipt *ipt = priv;

	kp_ipt_rule_fini(&ipt->scratch);
	free(ipt);
}

/* kube-proxy's iptables-mode metrics (kube-proxy registers them in this mode only) */
static int ipt_stats(void *priv, kp_stat_fn fn, void *userdata)
{
	static const char *const fam[2] = { "IPv4", "IPv6" }, *const table[2] = { "nat", "filter" };
	static const struct {
		const char *name, *help;
	} rules[2] = {
		{ "kubeproxy_sync_proxy_rules_iptables_total",
		  "Total number of iptables rules owned by kube-proxy" },
		{ "kubeproxy_sync_proxy_rules_iptables_last",
		  "Number of iptables rules written by kube-proxy in last sync" },
	};
	struct ipt *ipt = priv;
	char labels[64];
	int n_fam = ipt->ipv6 ? 2 : 1, r = 0;

	for (int m = 0; m < 2; m++)
		for (int f = 0; f < n_fam && !r; f++)
			for (int t = 0; t < 2 && !r; t++) {
				struct kp_stat s = { rules[m].name, rules[m].help, "gauge", labels,
						     (double)ipt->n_rules[f][t] };

				snprintf(labels, sizeof(labels), "ip_family=\"%s\",table=\"%s\"",
					 fam[f], table[t]);
				r = fn(&s, userdata);
			}
	for (int f = 0; f < n_fam && !r; f++) {
		struct kp_stat s = { "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
				     "Cumulative proxy iptables restore failures", "counter", labels,
				     (double)ipt->n_restore_failures[f] };

		snprintf(labels, sizeof(labels), "ip_family=\"%s\"", fam[f]);
		r = fn(&s, userdata);
	}
	/* every sync writes whole tables: there is no partial restore to fail */
	for (int f = 0; f < n_fam && !r; f++) {
		struct kp_stat s = {
			"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
			"Cumulative proxy iptables partial restore failures", "counter", labels, 0 };

		snprintf(labels, sizeof(labels), "ip_family=\"%s\"", fam[f]);
		r = fn(&s, userdata);
	}
	return r ? r : kp_ct_stats_report(&ipt->ct_stats, fn, userdata);
}

const struct kp_backend_ops kp_backend_iptables = {
	.name = "iptables",
	.init = ipt_init,
	.sync = ipt_sync,
	.dump = ipt_dump,
	.cleanup = ipt_cleanup,
	.destroy = ipt_destroy,
	.stats = ipt_stats,
	.options = ipt_options,
	.n_options = KP_ARRAY_SIZE(ipt_options),
	.options_size = sizeof(struct ipt_opts),
};
