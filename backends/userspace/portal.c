// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The userspace proxy's portal rules, laid out as kube-proxy's userspace mode laid them
 * out (pkg/proxy/userspace/proxier.go, release 1.25), written through libiptc under the
 * xtables lock, our chains only:
 *
 *   nat PREROUTING -> KUBE-PORTALS-CONTAINER (first)   OUTPUT -> KUBE-PORTALS-HOST (first)
 *       PREROUTING -> KUBE-NODEPORT-CONTAINER, OUTPUT -> KUBE-NODEPORT-HOST
 *                     (last, -m addrtype --dst-type LOCAL)
 *   KUBE-PORTALS-CONTAINER  -d VIP -p P --dport PORT -j REDIRECT --to-ports PROXYPORT
 *                           (DNAT to --bind-address when the proxy listens on one address)
 *   KUBE-PORTALS-HOST       -d VIP -p P --dport PORT -j DNAT --to-destination HOST:PROXYPORT
 *   KUBE-NODEPORT-*         the same for each node address and the node port
 *   (cluster IPs, external IPs and load-balancer IPs go to the portal chains; an LB IP with
 *   loadBalancerSourceRanges gets one rule per range, -s RANGE)
 *
 *   filter INPUT -> KUBE-NODEPORT-NON-LOCAL: -p P --dport PROXYPORT -j ACCEPT, so an INPUT
 *          policy of DROP does not stop redirected traffic
 *   filter OUTPUT, FORWARD -> KUBE-SERVICES; INPUT, FORWARD -> KUBE-EXTERNAL-SERVICES
 *          (-m conntrack --ctstate NEW): a service port without endpoints gets no portal,
 *          and a REJECT here instead, as the iptables mode does, so clients are refused at
 *          once rather than accepted and closed.
 *
 * Host traffic is DNATed to the loopback address (or the bind address): the listeners
 * take any local address, and a locally generated packet sent to a local address is
 * delivered over lo whatever its source.
 */
#include <errno.h>
#include <string.h>

#include <netinet/in.h>
#include <linux/netfilter/xt_conntrack.h>

#include "internal.h"
#include "../common/tbl.h"
#include "us.h"

#define WHO "userspace"

static const char *const nat_chains[] = {
	"KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST", "KUBE-NODEPORT-CONTAINER",
	"KUBE-NODEPORT-HOST",
};
static const char *const filter_chains[] = {
	"KUBE-NODEPORT-NON-LOCAL", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES",
};

static uint8_t ip_proto(enum kp_protocol p)
{
	return p == KP_PROTO_UDP ? IPPROTO_UDP : p == KP_PROTO_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
}

/* -d ADDR; none for a NodePort on every local address (0.0.0.0, ::): the NodePort
 * chains are entered for local destinations only, as kube-proxy's userspace mode had it */
static void match_dst(struct kp_ipt_rule *r, const struct kp_addr *a)
{
	if (!kp_addr_is_unspecified(a))
		kp_ipt_rule_dst(r, a, a->family == AF_INET6 ? 128 : 32, false);
}

struct render {
	const struct us_rules *rules;
	int fi;				/* 0 IPv4, 1 IPv6 */
	uint8_t dnat_rev;
};

/* -d DST [-s SRC/PREFIX] -p P --dport PORT -m comment LABEL */
static struct kp_ipt_rule *portal_match(struct kp_tbl *t, const struct us_proxy *px,
					const struct kp_addr *dst, uint16_t port,
					const struct kp_addr *src, unsigned src_prefix)
{
	struct kp_ipt_rule *r = kp_tbl_rule(t);

	match_dst(r, dst);
	if (src)
		kp_ipt_rule_src(r, src, src_prefix, false);
	kp_ipt_rule_proto_dport(r, ip_proto(px->proto), port);
	kp_ipt_rule_comment(r, "%s", px->label);
	return r;
}

static void portal_pair(struct kp_tbl *t, const struct render *rd, const struct us_proxy *px,
			const struct kp_frontend *fe, const char *container, const char *host,
			const struct kp_addr *src, unsigned src_prefix)
{
	struct kp_ipt_rule *r = portal_match(t, px, &fe->addr, fe->port, src, src_prefix);

	if (rd->rules->wildcard[rd->fi])
		kp_ipt_rule_redirect(r, px->port);
	else
		kp_ipt_rule_dnat(r, &px->bind, px->port, rd->dnat_rev);
	kp_tbl_append(t, container);
	r = portal_match(t, px, &fe->addr, fe->port, src, src_prefix);
	kp_ipt_rule_dnat(r, &rd->rules->host[rd->fi], px->port, rd->dnat_rev);
	kp_tbl_append(t, host);
}

static void render_nat(struct kp_tbl *t, int family, const void *arg)
{
	const struct render *rd = arg;
	struct kp_ipt_rule *r;

	for (size_t i = 0; i < KP_ARRAY_SIZE(nat_chains); i++)
		kp_tbl_fresh_chain(t, nat_chains[i]);
	for (size_t i = 0; i < rd->rules->n; i++) {
		const struct us_proxy *px = rd->rules->proxies[i];

		if (px->family != family || !px->n_set)
			continue;
		for (size_t k = 0; k < px->n_fes; k++) {
			const struct kp_frontend *fe = &px->fes[k];

			if (fe->kind == KP_FE_NODE_PORT) {
				portal_pair(t, rd, px, fe, "KUBE-NODEPORT-CONTAINER",
					    "KUBE-NODEPORT-HOST", NULL, 0);
			} else if (fe->kind == KP_FE_LOAD_BALANCER && px->n_ranges) {
				for (size_t j = 0; j < px->n_ranges; j++)
					portal_pair(t, rd, px, fe, "KUBE-PORTALS-CONTAINER",
						    "KUBE-PORTALS-HOST", &px->ranges[j],
						    px->range_prefixes[j]);
			} else {
				portal_pair(t, rd, px, fe, "KUBE-PORTALS-CONTAINER",
					    "KUBE-PORTALS-HOST", NULL, 0);
			}
		}
	}
	kp_tbl_ensure_jump(t, "PREROUTING", "KUBE-PORTALS-CONTAINER",
			   "handle ClusterIPs; NOTE: this must be before the NodePort rules",
			   false);
	kp_tbl_ensure_jump(t, "OUTPUT", "KUBE-PORTALS-HOST",
			   "handle ClusterIPs; NOTE: this must be before the NodePort rules",
			   false);
	r = kp_tbl_rule(t);
	kp_ipt_rule_addrtype_local(r, false, false);
	kp_ipt_rule_comment(r, "handle service NodePorts; NOTE: this must be the last rule in the "
			       "chain");
	kp_ipt_rule_jump(r, "KUBE-NODEPORT-CONTAINER");
	kp_tbl_ensure_rule(t, "PREROUTING", "KUBE-NODEPORT-CONTAINER", false);
	r = kp_tbl_rule(t);
	kp_ipt_rule_addrtype_local(r, false, false);
	kp_ipt_rule_comment(r, "handle service NodePorts; NOTE: this must be the last rule in the "
			       "chain");
	kp_ipt_rule_jump(r, "KUBE-NODEPORT-HOST");
	kp_tbl_ensure_rule(t, "OUTPUT", "KUBE-NODEPORT-HOST", false);
}

static void reject(struct kp_tbl *t, const struct us_proxy *px, const struct kp_frontend *fe,
		   const char *chain)
{
	struct kp_ipt_rule *r = kp_tbl_rule(t);

	if (kp_addr_is_unspecified(&fe->addr))
		kp_ipt_rule_addrtype_local(r, false, false);
	else
		match_dst(r, &fe->addr);
	kp_ipt_rule_proto_dport(r, ip_proto(px->proto), fe->port);
	kp_ipt_rule_comment(r, "%s has no endpoints", px->label);
	kp_ipt_rule_reject(r);
	kp_tbl_append(t, chain);
}

static void ctstate_new_jump(struct kp_tbl *t, const char *hook, const char *chain,
			     const char *comment)
{
	struct kp_ipt_rule *r = kp_tbl_rule(t);

	kp_ipt_rule_ctstate(r, XT_CONNTRACK_STATE_BIT(IP_CT_NEW));
	kp_ipt_rule_comment(r, "%s", comment);
	kp_ipt_rule_jump(r, chain);
	kp_tbl_ensure_rule(t, hook, chain, true);
}

static void render_filter(struct kp_tbl *t, int family, const void *arg)
{
	const struct render *rd = arg;
	struct kp_ipt_rule *r;

	for (size_t i = 0; i < KP_ARRAY_SIZE(filter_chains); i++)
		kp_tbl_fresh_chain(t, filter_chains[i]);
	for (size_t i = 0; i < rd->rules->n; i++) {
		const struct us_proxy *px = rd->rules->proxies[i];

		if (px->family != family)
			continue;
		if (px->n_set) {
			r = kp_tbl_rule(t);
			kp_ipt_rule_proto_dport(r, ip_proto(px->proto), px->port);
			kp_ipt_rule_comment(r, "%s", px->label);
			kp_ipt_rule_jump(r, "ACCEPT");
			kp_tbl_append(t, "KUBE-NODEPORT-NON-LOCAL");
			continue;
		}
		for (size_t k = 0; k < px->n_fes; k++)
			reject(t, px, &px->fes[k], px->fes[k].kind == KP_FE_CLUSTER_IP ?
			       "KUBE-SERVICES" : "KUBE-EXTERNAL-SERVICES");
	}
	r = kp_tbl_rule(t);
	kp_ipt_rule_comment(r, "Ensure that non-local NodePort traffic can flow");
	kp_ipt_rule_jump(r, "KUBE-NODEPORT-NON-LOCAL");
	kp_tbl_ensure_rule(t, "INPUT", "KUBE-NODEPORT-NON-LOCAL", true);
	ctstate_new_jump(t, "OUTPUT", "KUBE-SERVICES", "kubernetes service portals");
	ctstate_new_jump(t, "FORWARD", "KUBE-SERVICES", "kubernetes service portals");
	ctstate_new_jump(t, "INPUT", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible "
			 "service portals");
	ctstate_new_jump(t, "FORWARD", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible "
			 "service portals");
}

int us_rules_sync(struct kp_ctx *ctx, int family, const struct us_rules *rules)
{
	struct render rd = {
		.rules = rules,
		.fi = family == AF_INET6,
		.dnat_rev = kp_ipt_dnat_revision(family),
	};

	return kp_tbl_edit_nat_filter(ctx, WHO, family, render_nat, render_filter, &rd);
}

static void clean_nat(struct kp_tbl *t, int family, const void *arg)
{
	kp_tbl_remove_jumps(t, "PREROUTING", "KUBE-PORTALS-CONTAINER");
	kp_tbl_remove_jumps(t, "OUTPUT", "KUBE-PORTALS-HOST");
	kp_tbl_remove_jumps(t, "PREROUTING", "KUBE-NODEPORT-CONTAINER");
	kp_tbl_remove_jumps(t, "OUTPUT", "KUBE-NODEPORT-HOST");
	kp_tbl_drop_chains(t, nat_chains, KP_ARRAY_SIZE(nat_chains));
}

static void clean_filter(struct kp_tbl *t, int family, const void *arg)
{
	kp_tbl_remove_jumps(t, "INPUT", "KUBE-NODEPORT-NON-LOCAL");
	kp_tbl_remove_jumps(t, "OUTPUT", "KUBE-SERVICES");
	kp_tbl_remove_jumps(t, "FORWARD", "KUBE-SERVICES");
	kp_tbl_remove_jumps(t, "INPUT", "KUBE-EXTERNAL-SERVICES");
	kp_tbl_remove_jumps(t, "FORWARD", "KUBE-EXTERNAL-SERVICES");
	kp_tbl_drop_chains(t, filter_chains, KP_ARRAY_SIZE(filter_chains));
}

int us_rules_cleanup(struct kp_ctx *ctx, int family)
{
	return kp_tbl_edit_nat_filter(ctx, WHO, family, clean_nat, clean_filter, NULL);
}

static int read_chain(struct kp_tbl *t, const char *chain,
		      int (*fn)(const struct us_rule_seen *seen, void *userdata), void *userdata)
{
	int family = t->ops->family;

	if (!t->ops->is_chain(chain, t->h))
		return 0;
	for (const void *e = t->ops->first_rule(chain, t->h); e; e = t->ops->next_rule(e, t->h)) {
		struct us_rule_seen s = {.chain = chain,
					 .comment = kp_ipt_entry_comment(family, e)};
		const char *target = t->ops->get_target(e, t->h);
		struct kp_addr to;
		int r;

		if (!kp_ipt_entry_dport(family, e, &s.proto, &s.dport))
			continue;
		if (!kp_ipt_entry_dst(family, e, &s.dst))
			s.dst.family = 0;
		if (!strcmp(target, "REJECT"))
			s.proxy_port = 0;
		else if (!kp_ipt_entry_redirect(family, e, &s.proxy_port) &&
			 !kp_ipt_entry_dnat(family, e, &to, &s.proxy_port))
			continue;
		r = fn(&s, userdata);
		if (r)
			return r;
	}
	return 0;
}

int us_rules_read(struct kp_ctx *ctx, int family,
		  int (*fn)(const struct us_rule_seen *seen, void *userdata), void *userdata)
{
	static const char *const nat_read[] = { "KUBE-PORTALS-CONTAINER", "KUBE-NODEPORT-CONTAINER" };
	static const char *const filter_read[] = { "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES" };
	struct kp_tbl t;
	int r;

	r = kp_tbl_open(&t, ctx, WHO, family, "nat");
	if (r < 0)
		return r;
	for (size_t i = 0; !r && i < KP_ARRAY_SIZE(nat_read); i++)
		r = read_chain(&t, nat_read[i], fn, userdata);
	kp_tbl_close(&t, false);
	if (r)
		return r;
	r = kp_tbl_open(&t, ctx, WHO, family, "filter");
	if (r < 0)
		return r;
	for (size_t i = 0; !r && i < KP_ARRAY_SIZE(filter_read); i++)
		r = read_chain(&t, filter_read[i], fn, userdata);
	kp_tbl_close(&t, false);
	return r;
}
