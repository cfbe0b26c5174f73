// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The dispatch tree. Rules sorted by destination address (IPv4 or IPv6) are split by
 * the 4 address bits that follow the prefix they all share; each group of more than one rule gets a
 * KUBE-SVCT-<hash of its prefix> chain reached by one "-d prefix/len" jump, and groups
 * of at most LEAF rules (fewer if the threshold is lower), or of one address, hold the
 * rules themselves. Every level has
 * at most 16 jumps, so 10,000 frontends are four levels deep.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dispatch.h"
#include "names.h"

#define LEAF 16
#define FANOUT_BITS 4

static const uint8_t *bytes(const struct kp_addr *a)
{
	return a->family == AF_INET6 ? a->v6.s6_addr : (const uint8_t *)&a->v4;
}

static int cmp_rule(const void *x, const void *y)
{
	const struct kp_addr *a = &((const struct kp_dispatch_rule *)x)->dst;
	const struct kp_addr *b = &((const struct kp_dispatch_rule *)y)->dst;

	return memcmp(bytes(a), bytes(b), a->family == AF_INET6 ? 16 : 4);
}

static unsigned bit(const struct kp_addr *a, unsigned i)
{
	return (bytes(a)[i / 8] >> (7 - i % 8)) & 1;
}

static unsigned common_prefix(const struct kp_addr *a, const struct kp_addr *b, unsigned nbits)
{
	unsigned i = 0;

	while (i < nbits && bit(a, i) == bit(b, i))
		i++;
	return i;
}

/* The @len bits of @a from bit @from on, as a number (len <= FANOUT_BITS). */
static unsigned bits(const struct kp_addr *a, unsigned from, unsigned len)
{
	unsigned v = 0;

	for (unsigned i = from; i < from + len; i++)
		v = v << 1 | bit(a, i);
	return v;
}

static struct kp_addr prefix_of(const struct kp_addr *a, unsigned len)
{
	struct kp_addr p = *a;
	uint8_t *b = p.family == AF_INET6 ? p.v6.s6_addr : (uint8_t *)&p.v4;
	unsigned size = p.family == AF_INET6 ? 16 : 4;

	for (unsigned i = len; i < size * 8; i++)
		b[i / 8] &= (uint8_t)~(0x80 >> (i % 8));
	return p;
}

struct tree {
	struct kp_dispatch_rule *rules;
	size_t leaf;			/* most rules a chain holds before it is split */
	struct kp_ipt_rule *scratch;
	kp_dispatch_append_fn fn;
	void *userdata;
};

static void build(struct tree *t, size_t lo, size_t hi, const char *chain)
{
	const struct kp_addr *first = &t->rules[lo].dst, *last = &t->rules[hi - 1].dst;
	unsigned nbits = first->family == AF_INET6 ? 128 : 32;
	unsigned p = common_prefix(first, last, nbits), width, len;

	if (hi - lo <= t->leaf || p == nbits) {
		for (size_t i = lo; i < hi; i++)
			t->fn(t->userdata, chain, t->rules[i].e);
		return;
	}
	width = nbits - p < FANOUT_BITS ? nbits - p : FANOUT_BITS;
	len = p + width;
	for (size_t a = lo, b; a < hi; a = b) {
		unsigned key = bits(&t->rules[a].dst, p, width);
		char child[KP_CHAIN_NAME_SIZE], label[64], text[KP_ADDR_STRLEN];
		struct kp_addr net;

		for (b = a + 1; b < hi && bits(&t->rules[b].dst, p, width) == key; b++)
			;
		if (b - a == 1) {
			t->fn(t->userdata, chain, t->rules[a].e);
			continue;
		}
		net = prefix_of(&t->rules[a].dst, len);
		snprintf(label, sizeof(label), "%s/%u", kp_addr_to_str(&net, text, sizeof(text)),
			 len);
		kp_chain_name(child, KP_DISPATCH_PREFIX, label);
		t->fn(t->userdata, child, NULL);
		kp_ipt_rule_reset(t->scratch);
		kp_ipt_rule_dst(t->scratch, &net, len, false);
		kp_ipt_rule_comment(t->scratch, "kproxyd dispatch %s", label);
		kp_ipt_rule_jump(t->scratch, child);
		if (kp_ipt_rule_entry(t->scratch))
			t->fn(t->userdata, chain, kp_ipt_rule_entry(t->scratch));
		build(t, a, b, child);
	}
}

void kp_dispatch_build(struct kp_dispatch_rule *rules, size_t n, unsigned threshold,
		       const char *root, struct kp_ipt_rule *scratch, kp_dispatch_append_fn fn,
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
