/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Editing a small netfilter table through libiptc/libip6tc: open it, make our chains
 * exist and be empty, append rules, keep one jump from a built-in chain to ours, remove
 * our jumps and chains, commit once. The first error sticks (later calls do nothing) and
 * is logged at debug level with the table and what failed; the caller logs it once.
 * For the data planes whose rule count is small (IPVS, userspace); the iptables backend
 * writes its large tables with its own writer (fasttc.c).
 */
#ifndef KP_TBL_H
#define KP_TBL_H

#include <stdbool.h>
#include <stddef.h>

#include "rule.h"
#include "tc.h"

struct kp_ctx;

struct tbl {
	struct kp_ctx *ctx;
	const char *who;		/* log prefix: "ipvs", "userspace" */
	const struct tc_ops *ops;
	const char *name;		/* "nat", "filter" */
	struct xtc_handle *h;
	struct ipt_rule r;		/* the rule under construction (tbl_rule()) */
	int err;			/* the first error, -errno */
};

/* Opens table @name of @family. 0 or -errno (the table is then closed). */
int tbl_open(struct tbl *t, struct kp_ctx *ctx, const char *who, int family, const char *name);
/* Commits (if @commit and no error) and frees. Returns the first error, or 0. */
int tbl_close(struct tbl *t, bool commit);
/* Records the failure of @what from errno, unless an error is already recorded. */
void tbl_fail(struct tbl *t, const char *what);
/* Starts a new rule in t->r and returns it. */
struct ipt_rule *tbl_rule(struct tbl *t);
/* Appends the rule built in t->r to @chain. */
void tbl_append(struct tbl *t, const char *chain);
/* Makes @chain exist and be empty. */
void tbl_fresh_chain(struct tbl *t, const char *chain);
/* Position of the first rule of @chain whose target is @target, or -1. */
int tbl_find_jump(struct tbl *t, const char *chain, const char *target);
/*
 * Unless a rule of @chain already has the target @target, adds the rule built in t->r
 * (whose target must be @target): first in the chain when @first, else last.
 */
void tbl_ensure_rule(struct tbl *t, const char *chain, const char *target, bool first);
/* Adds "-m comment --comment COMMENT -j TARGET" first in @chain unless there is a jump. */
void tbl_ensure_jump(struct tbl *t, const char *chain, const char *target,
		     const char *comment);
/* Deletes every rule of @chain (if it exists) that jumps to @target. */
void tbl_remove_jumps(struct tbl *t, const char *chain, const char *target);
/* Flushes, then deletes, each of @n chains that exists. */
void tbl_drop_chains(struct tbl *t, const char *const *chains, size_t n);

/*
 * Edits the nat table, then the filter table, of @family under the xtables lock, each
 * committed once: @nat_fn and @filter_fn (either may be NULL) get the open table and
 * @arg. Returns 0 or the first -errno.
 */
int tbl_edit_nat_filter(struct kp_ctx *ctx, const char *who, int family,
			void (*nat_fn)(struct tbl *t, int family, const void *arg),
			void (*filter_fn)(struct tbl *t, int family, const void *arg),
			const void *arg);

#endif
