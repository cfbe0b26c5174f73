/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tree dispatch for nat KUBE-SERVICES: above a threshold of frontends, the rules are
 * spread over a tree of KUBE-SVCT-* chains keyed on destination-address prefixes (16
 * children a level), so a new connection walks O(16 log16 n) rules instead of n.
 */
#ifndef KP_IPT_DISPATCH_H
#define KP_IPT_DISPATCH_H

#include <stddef.h>

#include <kproxy/state.h>

#include "../common/rule.h"

#define KP_DISPATCH_PREFIX "KUBE-SVCT-"

struct kp_dispatch_rule {
	struct kp_addr dst;		/* the frontend's address */
	const void *e;			/* the rule, as it would sit in KUBE-SERVICES */
};

/*
 * Appends @e to @chain, creating the chain if needed; with @e NULL, only creates it
 * (jump targets must exist before the jump is added).
 */
typedef void (*kp_dispatch_append_fn)(void *userdata, const char *chain, const void *e);

/*
 * Writes @rules (all of one family, sorted here by address) under @root: directly when
 * there are at most @threshold of them or @threshold is 0, else as a tree. @scratch (of
 * the same family) builds the jump rules.
 */
void kp_dispatch_build(struct kp_dispatch_rule *rules, size_t n, unsigned threshold,
		       const char *root, struct kp_ipt_rule *scratch, kp_dispatch_append_fn fn,
		       void *userdata);

#endif
