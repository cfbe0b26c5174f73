/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Building iptables rules as the kernel stores them (struct ipt_entry or, for IPv6,
 * struct ip6t_entry, followed by the matches and the target, which both families share),
 * for libiptc/libip6tc and fasttc.c, and reading the few fields we need back out of
 * rules found in the kernel's tables.
 */
#ifndef KP_IPT_RULE_H
#define KP_IPT_RULE_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include <kproxy/backend.h>
#include <kproxy/state.h>

struct ipt_entry;

struct kp_ipt_rule {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char *buf;	/* the entry under construction */
	size_t size;		/* bytes used */
	size_t cap;
	bool oom;		/* an allocation failed: the rule is unusable */
};

void kp_ipt_rule_init(struct kp_ipt_rule *r, int family);
void kp_ipt_rule_fini(struct kp_ipt_rule *r);
/* Starts a new rule in @r, reusing its buffer. */
void kp_ipt_rule_reset(struct kp_ipt_rule *r);

/* ip header matches; a prefix of 0 leaves the field unmatched */
void kp_ipt_rule_src(struct kp_ipt_rule *r, const struct kp_addr *a, unsigned prefix, bool invert);
void kp_ipt_rule_dst(struct kp_ipt_rule *r, const struct kp_addr *a, unsigned prefix, bool invert);
/* How pod traffic is told apart (kube-proxy's --detect-local-mode). */
struct kp_local_detect {
	const char *mode;			/* "ClusterCIDR", "BridgeInterface", ... */
	const struct kp_cidr_list *cidrs;	/* ClusterCIDR: the first of each family counts */
	const char *bridge;			/* BridgeInterface */
	const char *prefix;			/* InterfaceNamePrefix */
};
/*
 * Matches pod traffic (@pods) or the rest (!@pods) as @d says: -s CIDR, -i BRIDGE or
 * -i PREFIX+ (inverted for the rest). Returns false, adding nothing, when @d gives nothing
 * for the rule's family (kube-proxy then writes no such rule).
 */
bool kp_ipt_rule_pod_traffic(struct kp_ipt_rule *r, const struct kp_local_detect *d, bool pods);
/* [!] -i NAME ("veth+": every interface whose name starts with "veth") */
void kp_ipt_rule_in_iface(struct kp_ipt_rule *r, const char *name, bool invert);
/* -p PROTO -m PROTO --dport PORT (PORT 0: protocol only); proto is IPPROTO_* */
void kp_ipt_rule_proto_dport(struct kp_ipt_rule *r, uint8_t proto, uint16_t dport);
void kp_ipt_rule_comment(struct kp_ipt_rule *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kp_ipt_rule_statistic(struct kp_ipt_rule *r, unsigned n_remaining); /* 1/n_remaining */
/* -m recent --name NAME (--rcheck --seconds S --reap | --set) --rsource --mask 255.255.255.255 */
void kp_ipt_rule_recent(struct kp_ipt_rule *r, const char *name, bool set, uint32_t seconds);
void kp_ipt_rule_addrtype_local(struct kp_ipt_rule *r, bool src, bool invert);
void kp_ipt_rule_mark(struct kp_ipt_rule *r, uint32_t mark, uint32_t mask, bool invert);
void kp_ipt_rule_ctstate(struct kp_ipt_rule *r, unsigned states); /* XT_CONNTRACK_STATE_BIT()s */
/* "! --ctstate ...": none of @states (XT_CONNTRACK_STATE_BIT()s, XT_CONNTRACK_STATE_DNAT) */
void kp_ipt_rule_ctstate_not(struct kp_ipt_rule *r, unsigned states);
/*
 * -m set [!] --match-set NAME DIRS: set @index (kp_ipset_index()), @dim directions (1-6,
 * e.g. "dst,dst" is 2), @src_flags the source ones as IPSET_DIM_ONE_SRC << i for
 * dimension i + 1 (0 for "dst,dst"; IPSET_DIM_THREE_SRC for "dst,dst,src"), @invert adds
 * IPSET_INV_MATCH. Match revision 4 (struct xt_set_info_match_v4, kernel 4.6+): the one
 * iptables writes, and the only one iptables-save prints back.
 */
void kp_ipt_rule_set_match(struct kp_ipt_rule *r, uint16_t index, unsigned dim, unsigned src_flags,
			   bool invert);

/* targets: exactly one per rule, last */
void kp_ipt_rule_jump(struct kp_ipt_rule *r, const char *chain_or_verdict);
void kp_ipt_rule_dnat(struct kp_ipt_rule *r, const struct kp_addr *a, uint16_t port, uint8_t rev);
/* The DNAT target revision to use: the newest (up to 2) the kernel has for @family. */
uint8_t kp_ipt_dnat_revision(int family);
/* Whether this kernel's NAT knows --random-fully (kube-proxy uses it wherever it can). */
bool kp_ipt_random_fully(void);
/* MASQUERADE, with --random-fully (the source port chosen at random for every flow) */
void kp_ipt_rule_masquerade(struct kp_ipt_rule *r, bool random_fully);
/* -j REDIRECT --to-ports PORT (to the incoming interface's address; 127.0.0.1 or ::1 in
 * OUTPUT) */
void kp_ipt_rule_redirect(struct kp_ipt_rule *r, uint16_t port);
void kp_ipt_rule_mark_target(struct kp_ipt_rule *r, uint32_t mark, uint32_t mask);
void kp_ipt_rule_reject(struct kp_ipt_rule *r);
/* A rule with no target (comment only), as kube-proxy's KUBE-FW placeholder. */
void kp_ipt_rule_no_target(struct kp_ipt_rule *r);

/* The finished entry (an ipt_entry or ip6t_entry), or NULL if building it ran out of
 * memory. */
const void *kp_ipt_rule_entry(const struct kp_ipt_rule *r);

/* Reading back, from an entry of @family */
uint16_t kp_ipt_entry_size(int family, const void *e); /* next_offset */
bool kp_ipt_entry_dst(int family, const void *e, struct kp_addr *ret_addr);
bool kp_ipt_entry_has_src(int family, const void *e);
bool kp_ipt_entry_has_matches(int family, const void *e);
bool kp_ipt_entry_dport(int family, const void *e, uint8_t *ret_proto, uint16_t *ret_port);
bool kp_ipt_entry_dnat(int family, const void *e, struct kp_addr *ret_addr, uint16_t *ret_port);
bool kp_ipt_entry_redirect(int family, const void *e, uint16_t *ret_port);
/* The comment text, or NULL. */
const char *kp_ipt_entry_comment(int family, const void *e);

#endif
