// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The netfilter side of the IPVS backend, as kube-proxy's IPVS mode lays it out but kept
 * to a fixed handful of rules: which traffic to mark for masquerade is decided by ipset
 * lookups (cluster IPs seen from outside the cluster CIDR, external IPs and node ports
 * with externalTrafficPolicy Cluster, and hairpin traffic an endpoint sends to itself),
 * so the rule count never grows with services.
 *
 *   nat  PREROUTING, OUTPUT  -> KUBE-SERVICES      POSTROUTING -> KUBE-POSTROUTING
 *   nat  KUBE-SERVICES   [! -s CIDR] set KUBE-CLUSTER-IP dst,dst -> KUBE-MARK-MASQ
 *                        set KUBE-EXTERNAL-IP dst,dst -> KUBE-MARK-MASQ
 *                        addrtype dst LOCAL -> KUBE-NODE-PORT
 *   nat  KUBE-NODE-PORT  -p tcp set KUBE-NODE-PORT-TCP dst -> KUBE-MARK-MASQ (udp, sctp)
 *   nat  KUBE-MARK-MASQ  MARK --or-mark 0x4000 (1 << masquerade-bit)
 *   nat  KUBE-POSTROUTING set KUBE-LOOP-BACK dst,dst,src -> MASQUERADE;
 *                        not marked -> RETURN; --xor-mark 0x4000; MASQUERADE
 *   filter FORWARD -> KUBE-FORWARD: marked -> ACCEPT; RELATED,ESTABLISHED -> ACCEPT
 *   filter INPUT, FORWARD, OUTPUT -> KUBE-PROXY-FIREWALL: set KUBE-LOAD-BALANCER-FW dst,dst
 *          -> KUBE-SOURCE-RANGES-FIREWALL: set KUBE-LOAD-BALANCER-SOURCE-CIDR
 *          dst,dst,src -> RETURN; DROP      (loadBalancerSourceRanges)
 *
 * Written through libiptc (the tables are small in this mode) under the xtables lock.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/xt_conntrack.h>

#include "internal.h"
#include "../common/ipset.h"
#include "../common/rule.h"
#include "../common/tbl.h"
#include "ipvs.h"

static const char *const nat_chains[] = {
	"KUBE-SERVICES", "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "KUBE-POSTROUTING",
};
static const char *const filter_chains[] = {
	"KUBE-FORWARD", "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL",
};

static const struct {
	const char *v4, *v6, *type;
} sets[_SET_MAX] = {
	[SET_CLUSTER_IP] = { "KUBE-CLUSTER-IP", "KUBE-6-CLUSTER-IP", "hash:ip,port" },
	[SET_EXTERNAL_IP] = { "KUBE-EXTERNAL-IP", "KUBE-6-EXTERNAL-IP", "hash:ip,port" },
	[SET_LOOP_BACK] = { "KUBE-LOOP-BACK", "KUBE-6-LOOP-BACK", "hash:ip,port,ip" },
	[SET_LB_FW] = { "KUBE-LOAD-BALANCER-FW", "KUBE-6-LOAD-BALANCER-FW", "hash:ip,port" },
	/* the IPv6 name would be 32 characters, one more than ipset allows */
	[SET_LB_SRC_CIDR] = { "KUBE-LOAD-BALANCER-SOURCE-CIDR", "KUBE-6-LB-SOURCE-CIDR",
			      "hash:ip,port,net" },
	[SET_NODE_PORT_TCP] = { "KUBE-NODE-PORT-TCP", NULL, "bitmap:port" },
	[SET_NODE_PORT_UDP] = { "KUBE-NODE-PORT-UDP", NULL, "bitmap:port" },
	[SET_NODE_PORT_SCTP] = { "KUBE-NODE-PORT-SCTP", NULL, "bitmap:port" },
};

const char *ipvs_set_name(enum ipvs_set s, int family)
{
	return family == AF_INET6 && sets[s].v6 ? sets[s].v6 : sets[s].v4;
}

const char *ipvs_set_type(enum ipvs_set s)
{
	return sets[s].type;
}

bool ipvs_set_familyless(enum ipvs_set s)
{
	return !sets[s].v6;
}

/* -m set --match-set NAME dst,dst[,src] */
static void set_match(struct kp_tbl *t, enum ipvs_set s, int family, unsigned dim,
		      unsigned src_flags)
{
	uint16_t index;
	int r;

	if (t->err)
		return;
	r = kp_ipset_index(ipvs_set_name(s, family), &index);
	if (r < 0) {
		errno = -r;
		return kp_tbl_fail(t, ipvs_set_name(s, family));
	}
	kp_ipt_rule_set_match(&t->r, index, dim, src_flags, false);
}

static void render_nat(struct kp_tbl *t, int family, const void *arg)
{
	const struct ipvs_rules_cfg *cfg = arg;
	static const struct { uint8_t proto; enum ipvs_set set; } np[] = {
		{ IPPROTO_TCP, SET_NODE_PORT_TCP }, { IPPROTO_UDP, SET_NODE_PORT_UDP },
		{ IPPROTO_SCTP, SET_NODE_PORT_SCTP },
	};
	struct kp_ipt_rule *r;

	for (size_t i = 0; i < KP_ARRAY_SIZE(nat_chains); i++)
		kp_tbl_fresh_chain(t, nat_chains[i]);

	/* cluster IPs: everything (--masquerade-all) or what comes from outside the pods */
	if (cfg->masquerade_all) {
		r = kp_tbl_rule(t);
		kp_ipt_rule_comment(r,
				    "Kubernetes service cluster ip + port for masquerade purpose");
		set_match(t, SET_CLUSTER_IP, family, 2, 0);
		kp_ipt_rule_jump(r, "KUBE-MARK-MASQ");
		kp_tbl_append(t, "KUBE-SERVICES");
	} else {
		/* what is not a pod's; nothing when pod traffic cannot be told apart here */
		r = kp_tbl_rule(t);
		kp_ipt_rule_comment(r, "Kubernetes service cluster ip + port for masquerade "
				       "purpose");
		if (kp_ipt_rule_pod_traffic(r, cfg->pods, false)) {
			set_match(t, SET_CLUSTER_IP, family, 2, 0);
			kp_ipt_rule_jump(r, "KUBE-MARK-MASQ");
			kp_tbl_append(t, "KUBE-SERVICES");
		}
	}
	r = kp_tbl_rule(t);
	kp_ipt_rule_comment(r, "Kubernetes service external ip + port for masquerade purpose");
	set_match(t, SET_EXTERNAL_IP, family, 2, 0);
	kp_ipt_rule_jump(r, "KUBE-MARK-MASQ");
	kp_tbl_append(t, "KUBE-SERVICES");
	r = kp_tbl_rule(t);
	kp_ipt_rule_comment(r, "kubernetes service nodeports");
	kp_ipt_rule_addrtype_local(r, false, false);
	kp_ipt_rule_jump(r, "KUBE-NODE-PORT");
	kp_tbl_append(t, "KUBE-SERVICES");

	for (size_t i = 0; i < KP_ARRAY_SIZE(np); i++) {
		r = kp_tbl_rule(t);
		kp_ipt_rule_proto_dport(r, np[i].proto, 0);
		kp_ipt_rule_comment(r, "Kubernetes nodeport %s port for masquerade purpose",
				    np[i].proto == IPPROTO_TCP	 ? "TCP"
				    : np[i].proto == IPPROTO_UDP ? "UDP"
								 : "SCTP");
		set_match(t, np[i].set, family, 1, 0);
		kp_ipt_rule_jump(r, "KUBE-MARK-MASQ");
		kp_tbl_append(t, "KUBE-NODE-PORT");
	}

	/* hairpin traffic first in KUBE-POSTROUTING, then the masquerade chains' own rules */
	r = kp_tbl_rule(t);
	kp_ipt_rule_comment(r, "Kubernetes endpoints dst ip:port, source ip for solving hairpin "
			       "purpose");
	set_match(t, SET_LOOP_BACK, family, 3, IPSET_DIM_ONE_SRC << 2);
	kp_ipt_rule_masquerade(r, false);	/* hairpin: as kube-proxy, not --random-fully */
	kp_tbl_append(t, "KUBE-POSTROUTING");
	kp_tbl_masq_rules(t, cfg->mark, cfg->random_fully);

	kp_tbl_ensure_jump(t, "PREROUTING", "KUBE-SERVICES", "kubernetes service portals", false);
	kp_tbl_ensure_jump(t, "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", false);
	kp_tbl_ensure_jump(t, "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules",
			   false);
}

static void render_filter(struct kp_tbl *t, int family, const void *arg)
{
	static const char *const hooks[] = { "INPUT", "FORWARD", "OUTPUT" };
	const struct ipvs_rules_cfg *cfg = arg;
	struct kp_ipt_rule *r;

	/* loadBalancerSourceRanges: traffic to a listed LB IP:port from elsewhere is dropped
	 * (filter runs before IPVS takes the packet on INPUT) */
	kp_tbl_fresh_chain(t, "KUBE-PROXY-FIREWALL");
	kp_tbl_fresh_chain(t, "KUBE-SOURCE-RANGES-FIREWALL");
	r = kp_tbl_rule(t);
	kp_ipt_rule_comment(r, "Kubernetes service load balancer ip + port for load balancer with "
			       "sourceRange");
	set_match(t, SET_LB_FW, family, 2, 0);
	kp_ipt_rule_jump(r, "KUBE-SOURCE-RANGES-FIREWALL");
	kp_tbl_append(t, "KUBE-PROXY-FIREWALL");
	r = kp_tbl_rule(t);
	kp_ipt_rule_comment(r, "Kubernetes service load balancer ip + port + source cidr for "
			       "packet filter purpose");
	set_match(t, SET_LB_SRC_CIDR, family, 3, IPSET_DIM_ONE_SRC << 2);
	kp_ipt_rule_jump(r, "RETURN");
	kp_tbl_append(t, "KUBE-SOURCE-RANGES-FIREWALL");
	r = kp_tbl_rule(t);
	kp_ipt_rule_jump(r, "DROP");
	kp_tbl_append(t, "KUBE-SOURCE-RANGES-FIREWALL");
	for (size_t i = 0; i < KP_ARRAY_SIZE(hooks); i++)
		kp_tbl_ensure_jump(t, hooks[i], "KUBE-PROXY-FIREWALL", "kube-proxy firewall rules",
				   false);

	kp_tbl_fresh_chain(t, "KUBE-FORWARD");
	kp_tbl_forward_rules(t, cfg->mark);
	kp_tbl_ensure_jump(t, "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules", false);
}

int ipvs_rules_sync(struct kp_ctx *ctx, int family, const struct ipvs_rules_cfg *cfg)
{
	return kp_tbl_edit_nat_filter(ctx, "ipvs", family, render_nat, render_filter, cfg);
}

static void clean_nat(struct kp_tbl *t, int family, const void *arg)
{
	kp_tbl_remove_jumps(t, "PREROUTING", "KUBE-SERVICES");
	kp_tbl_remove_jumps(t, "OUTPUT", "KUBE-SERVICES");
	kp_tbl_remove_jumps(t, "POSTROUTING", "KUBE-POSTROUTING");
	kp_tbl_drop_chains(t, nat_chains, KP_ARRAY_SIZE(nat_chains));
}

static void clean_filter(struct kp_tbl *t, int family, const void *arg)
{
	kp_tbl_remove_jumps(t, "FORWARD", "KUBE-FORWARD");
	kp_tbl_remove_jumps(t, "INPUT", "KUBE-PROXY-FIREWALL");
	kp_tbl_remove_jumps(t, "FORWARD", "KUBE-PROXY-FIREWALL");
	kp_tbl_remove_jumps(t, "OUTPUT", "KUBE-PROXY-FIREWALL");
	kp_tbl_drop_chains(t, filter_chains, KP_ARRAY_SIZE(filter_chains));
}

int ipvs_rules_cleanup(struct kp_ctx *ctx, int family)
{
	return kp_tbl_edit_nat_filter(ctx, "ipvs", family, clean_nat, clean_filter, NULL);
}
