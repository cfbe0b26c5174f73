/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Building IPv4 iptables rules as the kernel stores them (struct ipt_entry followed by
 * its matches and target), for libiptc, and reading the few fields we need back out of
 * rules found in the kernel's tables.
 */
#ifndef KP_IPT_RULE_H
#define KP_IPT_RULE_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

struct ipt_entry;

struct ipt_rule {
	unsigned char *buf;	/* the entry under construction */
	size_t size;		/* bytes used */
	size_t cap;
	bool oom;		/* an allocation failed: the rule is unusable */
};

void ipt_rule_init(struct ipt_rule *r);
void ipt_rule_fini(struct ipt_rule *r);
/* Starts a new rule in @r, reusing its buffer. */
void ipt_rule_reset(struct ipt_rule *r);

/* ip header matches; a prefix of 0 leaves the field unmatched */
void ipt_rule_src(struct ipt_rule *r, struct in_addr a, unsigned prefix, bool invert);
void ipt_rule_dst(struct ipt_rule *r, struct in_addr a, unsigned prefix, bool invert);
/* -p PROTO -m PROTO --dport PORT (PORT 0: protocol only); proto is IPPROTO_* */
void ipt_rule_proto_dport(struct ipt_rule *r, uint8_t proto, uint16_t dport);
void ipt_rule_comment(struct ipt_rule *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ipt_rule_statistic(struct ipt_rule *r, unsigned n_remaining);	/* 1/n_remaining */
/* -m recent --name NAME (--rcheck --seconds S --reap | --set) --rsource --mask 255.255.255.255 */
void ipt_rule_recent(struct ipt_rule *r, const char *name, bool set, uint32_t seconds);
void ipt_rule_addrtype_local(struct ipt_rule *r, bool src, bool invert);
void ipt_rule_mark(struct ipt_rule *r, uint32_t mark, uint32_t mask, bool invert);
void ipt_rule_ctstate(struct ipt_rule *r, unsigned states);	/* XT_CONNTRACK_STATE_BIT()s */

/* targets: exactly one per rule, last */
void ipt_rule_jump(struct ipt_rule *r, const char *chain_or_verdict);
void ipt_rule_dnat(struct ipt_rule *r, struct in_addr a, uint16_t port, uint8_t rev);
/* The DNAT target revision to use: the newest (up to 2) the kernel has. */
uint8_t ipt_dnat_revision(void);
void ipt_rule_masquerade(struct ipt_rule *r);
void ipt_rule_mark_target(struct ipt_rule *r, uint32_t mark, uint32_t mask);
void ipt_rule_reject(struct ipt_rule *r);
/* A rule with no target (comment only), as kube-proxy's KUBE-FW placeholder. */
void ipt_rule_no_target(struct ipt_rule *r);

/* The finished entry, or NULL if building it ran out of memory. */
const struct ipt_entry *ipt_rule_entry(const struct ipt_rule *r);

/* Reading back */
bool ipt_entry_dst(const struct ipt_entry *e, struct in_addr *ret_addr);
bool ipt_entry_dport(const struct ipt_entry *e, uint8_t *ret_proto, uint16_t *ret_port);
bool ipt_entry_dnat(const struct ipt_entry *e, struct in_addr *ret_addr, uint16_t *ret_port);
/* The comment text, or NULL. */
const char *ipt_entry_comment(const struct ipt_entry *e);

#endif
