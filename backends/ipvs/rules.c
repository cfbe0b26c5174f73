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
 *   nat  KUBE-MARK-MASQ  MARK --or-mark 0x4000
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
#include "../common/tc.h"
#include "../common/xtlock.h"
#include "ipvs.h"

#define MASQ_MARK 0x4000u

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

struct tbl {
	struct kp_ctx *ctx;
	const struct tc_ops *ops;
	const char *name;
	struct xtc_handle *h;
	struct ipt_rule r;
	int err;
};

static void tbl_fail(struct tbl *t, const char *what)
{
	if (t->err)
		return;
	t->err = errno ? -errno : -EIO;
	kp_log(t->ctx, KP_LOG_DEBUG, "ipvs: %s %s: %s: %s", t->ops->tool, t->name, what,
	       t->ops->strerror(errno));
}

static int tbl_open(struct tbl *t, struct kp_ctx *ctx, int family, const char *name)
{
	memset(t, 0, sizeof(*t));
	t->ctx = ctx;
	t->ops = family == AF_INET6 ? &tc_ipv6 : &tc_ipv4;
	t->name = name;
	ipt_rule_init(&t->r, family);
	t->h = t->ops->init(name);
	if (!t->h) {
		tbl_fail(t, "open");
		ipt_rule_fini(&t->r);
		return t->err;
	}
	return 0;
}

static int tbl_close(struct tbl *t, bool commit)
{
	if (commit && !t->err && !t->ops->commit(t->h))
		tbl_fail(t, "commit");
	t->ops->free(t->h);
	ipt_rule_fini(&t->r);
	return t->err;
}

static struct ipt_rule *rule(struct tbl *t)
{
	ipt_rule_reset(&t->r);
	return &t->r;
}

static void append(struct tbl *t, const char *chain)
{
	const void *e = ipt_rule_entry(&t->r);

	if (t->err)
		return;
	if (!e) {
		errno = ENOMEM;
		return tbl_fail(t, "build rule");
	}
	if (!t->ops->append_entry(chain, e, t->h))
		tbl_fail(t, chain);
}

/* Makes @chain exist and be empty. */
static void fresh_chain(struct tbl *t, const char *chain)
{
	if (t->err)
		return;
	if (!t->ops->is_chain(chain, t->h)) {
		if (!t->ops->create_chain(chain, t->h))
			tbl_fail(t, "create chain");
	} else if (!t->ops->flush_entries(chain, t->h)) {
		tbl_fail(t, "flush chain");
	}
}

/* Position of the first rule of built-in @chain that jumps to @target, or -1. */
static int find_jump(struct tbl *t, const char *chain, const char *target)
{
	int num = 0;

	for (const void *e = t->ops->first_rule(chain, t->h); e;
	     e = t->ops->next_rule(e, t->h), num++)
		if (!strcmp(t->ops->get_target(e, t->h), target))
			return num;
	return -1;
}

static void ensure_jump(struct tbl *t, const char *chain, const char *target,
			const char *comment)
{
	struct ipt_rule *r;

	if (t->err || find_jump(t, chain, target) >= 0)
		return;
	r = rule(t);
	ipt_rule_comment(r, "%s", comment);
	ipt_rule_jump(r, target);
	if (!ipt_rule_entry(r)) {
		errno = ENOMEM;
		return tbl_fail(t, "build rule");
	}
	if (!t->ops->insert_entry(chain, ipt_rule_entry(r), 0, t->h))
		tbl_fail(t, chain);
}

static void remove_jumps(struct tbl *t, const char *chain, const char *target)
{
	int num;

	if (t->err || !t->ops->is_chain(chain, t->h))
		return;
	for (int i = 0; i < 64 && !t->err && (num = find_jump(t, chain, target)) >= 0; i++)
		if (!t->ops->delete_num_entry(chain, (unsigned)num, t->h))
			tbl_fail(t, "delete jump");
}

/* -m set --match-set NAME dst,dst[,src] */
static void set_match(struct tbl *t, enum ipvs_set s, int family, unsigned dim,
		      unsigned src_flags)
{
	uint16_t index;
	int r;

	if (t->err)
		return;
	r = ipset_index(ipvs_set_name(s, family), &index);
	if (r < 0) {
		errno = -r;
		return tbl_fail(t, ipvs_set_name(s, family));
	}
	ipt_rule_set_match(&t->r, index, dim, src_flags, false);
}

static void render_nat(struct tbl *t, int family, const struct ipvs_rules_cfg *cfg)
{
	static const struct { uint8_t proto; enum ipvs_set set; } np[] = {
		{ IPPROTO_TCP, SET_NODE_PORT_TCP }, { IPPROTO_UDP, SET_NODE_PORT_UDP },
		{ IPPROTO_SCTP, SET_NODE_PORT_SCTP },
	};
	struct ipt_rule *r;
	bool any_cidr = false;

	for (size_t i = 0; i < KP_ARRAY_SIZE(nat_chains); i++)
		fresh_chain(t, nat_chains[i]);

	/* cluster IPs: everything (--masquerade-all) or what comes from outside the pods */
	if (cfg->masquerade_all) {
		r = rule(t);
		ipt_rule_comment(r, "Kubernetes service cluster ip + port for masquerade purpose");
		set_match(t, SET_CLUSTER_IP, family, 2, 0);
		ipt_rule_jump(r, "KUBE-MARK-MASQ");
		append(t, "KUBE-SERVICES");
	} else {
		for (size_t i = 0; i < cfg->n_cluster_nets; i++) {
			if (cfg->cluster_nets[i].family != family)
				continue;
			r = rule(t);
			ipt_rule_comment(r, "Kubernetes service cluster ip + port for masquerade "
					    "purpose");
			ipt_rule_src(r, &cfg->cluster_nets[i], cfg->cluster_prefixes[i], true);
			set_match(t, SET_CLUSTER_IP, family, 2, 0);
			ipt_rule_jump(r, "KUBE-MARK-MASQ");
			append(t, "KUBE-SERVICES");
			any_cidr = true;
			break;	/* as kube-proxy: the first CIDR of the family */
		}
	}
	(void)any_cidr;
	r = rule(t);
	ipt_rule_comment(r, "Kubernetes service external ip + port for masquerade purpose");
	set_match(t, SET_EXTERNAL_IP, family, 2, 0);
	ipt_rule_jump(r, "KUBE-MARK-MASQ");
	append(t, "KUBE-SERVICES");
	r = rule(t);
	ipt_rule_comment(r, "kubernetes service nodeports");
	ipt_rule_addrtype_local(r, false, false);
	ipt_rule_jump(r, "KUBE-NODE-PORT");
	append(t, "KUBE-SERVICES");

	for (size_t i = 0; i < KP_ARRAY_SIZE(np); i++) {
		r = rule(t);
		ipt_rule_proto_dport(r, np[i].proto, 0);
		ipt_rule_comment(r, "Kubernetes nodeport %s port for masquerade purpose",
				 np[i].proto == IPPROTO_TCP ? "TCP" :
				 np[i].proto == IPPROTO_UDP ? "UDP" : "SCTP");
		set_match(t, np[i].set, family, 1, 0);
		ipt_rule_jump(r, "KUBE-MARK-MASQ");
		append(t, "KUBE-NODE-PORT");
	}

	r = rule(t);
	ipt_rule_mark_target(r, MASQ_MARK, MASQ_MARK);		/* --or-mark */
	append(t, "KUBE-MARK-MASQ");

	r = rule(t);
	ipt_rule_comment(r, "Kubernetes endpoints dst ip:port, source ip for solving hairpin "
			    "purpose");
	set_match(t, SET_LOOP_BACK, family, 3, IPSET_DIM_ONE_SRC << 2);
	ipt_rule_masquerade(r);
	append(t, "KUBE-POSTROUTING");
	r = rule(t);
	ipt_rule_mark(r, MASQ_MARK, MASQ_MARK, true);
	ipt_rule_jump(r, "RETURN");
	append(t, "KUBE-POSTROUTING");
	r = rule(t);
	ipt_rule_mark_target(r, MASQ_MARK, 0);			/* --xor-mark */
	append(t, "KUBE-POSTROUTING");
	r = rule(t);
	ipt_rule_comment(r, "kubernetes service traffic requiring SNAT");
	ipt_rule_masquerade(r);
	append(t, "KUBE-POSTROUTING");

	ensure_jump(t, "PREROUTING", "KUBE-SERVICES", "kubernetes service portals");
	ensure_jump(t, "OUTPUT", "KUBE-SERVICES", "kubernetes service portals");
	ensure_jump(t, "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules");
}

static void render_filter(struct tbl *t, int family)
{
	static const char *const hooks[] = { "INPUT", "FORWARD", "OUTPUT" };
	struct ipt_rule *r;

	/* loadBalancerSourceRanges: traffic to a listed LB IP:port from elsewhere is dropped
	 * (filter runs before IPVS takes the packet on INPUT) */
	fresh_chain(t, "KUBE-PROXY-FIREWALL");
	fresh_chain(t, "KUBE-SOURCE-RANGES-FIREWALL");
	r = rule(t);
	ipt_rule_comment(r, "Kubernetes service load balancer ip + port for load balancer with "
			    "sourceRange");
	set_match(t, SET_LB_FW, family, 2, 0);
	ipt_rule_jump(r, "KUBE-SOURCE-RANGES-FIREWALL");
	append(t, "KUBE-PROXY-FIREWALL");
	r = rule(t);
	ipt_rule_comment(r, "Kubernetes service load balancer ip + port + source cidr for "
			    "packet filter purpose");
	set_match(t, SET_LB_SRC_CIDR, family, 3, IPSET_DIM_ONE_SRC << 2);
	ipt_rule_jump(r, "RETURN");
	append(t, "KUBE-SOURCE-RANGES-FIREWALL");
	r = rule(t);
	ipt_rule_jump(r, "DROP");
	append(t, "KUBE-SOURCE-RANGES-FIREWALL");
	for (size_t i = 0; i < KP_ARRAY_SIZE(hooks); i++)
		ensure_jump(t, hooks[i], "KUBE-PROXY-FIREWALL", "kube-proxy firewall rules");

	fresh_chain(t, "KUBE-FORWARD");
	r = rule(t);
	ipt_rule_comment(r, "kubernetes forwarding rules");
	ipt_rule_mark(r, MASQ_MARK, MASQ_MARK, false);
	ipt_rule_jump(r, "ACCEPT");
	append(t, "KUBE-FORWARD");
	r = rule(t);
	ipt_rule_comment(r, "kubernetes forwarding conntrack rule");
	ipt_rule_ctstate(r, XT_CONNTRACK_STATE_BIT(IP_CT_RELATED) |
			    XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED));
	ipt_rule_jump(r, "ACCEPT");
	append(t, "KUBE-FORWARD");
	ensure_jump(t, "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules");
}

/* Edits the nat table, then the filter table, of @family under the xtables lock; each
 * table is committed once. */
static int edit_tables(struct kp_ctx *ctx, int family,
		       void (*nat_fn)(struct tbl *t, int family, const struct ipvs_rules_cfg *cfg),
		       void (*filter_fn)(struct tbl *t, int family),
		       const struct ipvs_rules_cfg *cfg)
{
	struct tbl t;
	int r, lock = kp_xt_lock(ctx, "ipvs");

	if (lock < 0)
		return lock;
	r = tbl_open(&t, ctx, family, "nat");
	if (r < 0)
		goto out_unlock;
	nat_fn(&t, family, cfg);
	r = tbl_close(&t, true);
	if (r < 0)
		goto out_unlock;
	r = tbl_open(&t, ctx, family, "filter");
	if (r < 0)
		goto out_unlock;
	filter_fn(&t, family);
	r = tbl_close(&t, true);
out_unlock:
	kp_xt_unlock(lock);
	return r;
}

int ipvs_rules_sync(struct kp_ctx *ctx, int family, const struct ipvs_rules_cfg *cfg)
{
	return edit_tables(ctx, family, render_nat, render_filter, cfg);
}

static void drop_chains(struct tbl *t, const char *const *chains, size_t n)
{
	for (size_t i = 0; i < n && !t->err; i++)
		if (t->ops->is_chain(chains[i], t->h) && !t->ops->flush_entries(chains[i], t->h))
			tbl_fail(t, "flush chain");
	for (size_t i = 0; i < n && !t->err; i++)
		if (t->ops->is_chain(chains[i], t->h) && !t->ops->delete_chain(chains[i], t->h))
			tbl_fail(t, "delete chain");
}

static void clean_nat(struct tbl *t, int family, const struct ipvs_rules_cfg *cfg)
{
	remove_jumps(t, "PREROUTING", "KUBE-SERVICES");
	remove_jumps(t, "OUTPUT", "KUBE-SERVICES");
	remove_jumps(t, "POSTROUTING", "KUBE-POSTROUTING");
	drop_chains(t, nat_chains, KP_ARRAY_SIZE(nat_chains));
}

static void clean_filter(struct tbl *t, int family)
{
	remove_jumps(t, "FORWARD", "KUBE-FORWARD");
	remove_jumps(t, "INPUT", "KUBE-PROXY-FIREWALL");
	remove_jumps(t, "FORWARD", "KUBE-PROXY-FIREWALL");
	remove_jumps(t, "OUTPUT", "KUBE-PROXY-FIREWALL");
	drop_chains(t, filter_chains, KP_ARRAY_SIZE(filter_chains));
}

int ipvs_rules_cleanup(struct kp_ctx *ctx, int family)
{
	return edit_tables(ctx, family, clean_nat, clean_filter, NULL);
}
