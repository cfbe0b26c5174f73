// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The dispatch tree. Rules sorted by destination address are split by the 4 address
 * bits that follow the prefix they all share; each group of more than one rule gets a
 * KUBE-SVCT-<hash of its prefix> chain reached by one "-d prefix/len" jump, and groups
 * of at most LEAF rules (fewer if the threshold is lower), or of one address, hold the
 * rules themselves. Every level has
 * at most 16 jumps, so 10,000 frontends are four levels deep.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "dispatch.h"
#include "names.h"

#define LEAF 16
#define FANOUT_BITS 4

static int cmp_rule(const void *a, const void *b)
{
	uint32_t x = ntohl(((const struct kp_dispatch_rule *)a)->dst.s_addr);
	uint32_t y = ntohl(((const struct kp_dispatch_rule *)b)->dst.s_addr);

	return x < y ? -1 : x > y;
}

static unsigned common_prefix(uint32_t a, uint32_t b)
{
	return a == b ? 32 : (unsigned)__builtin_clz(a ^ b);
}

struct tree {
	struct kp_dispatch_rule *rules;
	size_t leaf;			/* most rules a chain holds before it is split */
	struct ipt_rule *scratch;
	kp_dispatch_append_fn fn;
	void *userdata;
};

static void build(struct tree *t, size_t lo, size_t hi, const char *chain)
{
	uint32_t first = ntohl(t->rules[lo].dst.s_addr), last = ntohl(t->rules[hi - 1].dst.s_addr);
	unsigned p = common_prefix(first, last), bits, len;

	if (hi - lo <= t->leaf || p == 32) {
		for (size_t i = lo; i < hi; i++)
			t->fn(t->userdata, chain, t->rules[i].e);
		return;
	}
	bits = 32 - p < FANOUT_BITS ? 32 - p : FANOUT_BITS;
	len = p + bits;
	for (size_t a = lo, b; a < hi; a = b) {
		uint32_t key = ntohl(t->rules[a].dst.s_addr) >> (32 - len);
		char child[KP_CHAIN_NAME_SIZE], label[32];
		struct in_addr net;

		for (b = a + 1; b < hi && ntohl(t->rules[b].dst.s_addr) >> (32 - len) == key; b++)
			;
		if (b - a == 1) {
			t->fn(t->userdata, chain, t->rules[a].e);
			continue;
		}
		net.s_addr = htonl(key << (32 - len));
		snprintf(label, sizeof(label), "%s/%u", inet_ntoa(net), len);
		kp_chain_name(child, KP_DISPATCH_PREFIX, label);
		t->fn(t->userdata, child, NULL);
		ipt_rule_reset(t->scratch);
		ipt_rule_dst(t->scratch, net, len, false);
		ipt_rule_comment(t->scratch, "kproxyd dispatch %s", label);
		ipt_rule_jump(t->scratch, child);
		if (ipt_rule_entry(t->scratch))
			t->fn(t->userdata, chain, ipt_rule_entry(t->scratch));
		build(t, a, b, child);
	}
}

void kp_dispatch_build(struct kp_dispatch_rule *rules, size_t n, unsigned threshold,
		       const char *root, struct ipt_rule *scratch, kp_dispatch_append_fn fn,
		       void *userdata)
{
	struct tree t = {
		.rules = rules, .leaf = threshold < LEAF ? threshold : LEAF, .scratch = scratch,
		.fn = fn, .userdata = userdata,
	};

	if (!threshold || n <= threshold) {
		for (size_t i = 0; i < n; i++)
			fn(userdata, root, rules[i].e);
		return;
	}
	qsort(rules, n, sizeof(*rules), cmp_rule);
	build(&t, 0, n, root);
}
