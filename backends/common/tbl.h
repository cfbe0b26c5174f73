/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The one editor of netfilter tables, for every data plane that writes x_tables rules
 * (iptables, IPVS, userspace): open a table through a tc.h operations table (libiptc,
 * or fasttc.c for large tables), make our chains exist and be empty, append rules, keep
 * one jump from a built-in chain to ours, remove our jumps and chains, commit once. The
 * first error sticks (later calls do nothing) and is logged at debug level with the
 * table and the step that failed; the caller logs it once.
 *
 * A sync that rebuilds every chain it owns opens the table with KP_TBL_TRACK_USED: a
 * chain is then made empty the first time it is used (kp_tbl_use_chain(),
 * kp_tbl_append()), and the owned chains not used again are deleted at the end
 * (kp_tbl_delete_unused()).
 */
#ifndef KP_TBL_H
#define KP_TBL_H

#include <stdbool.h>
#include <stddef.h>

#include "rule.h"
#include "tc.h"

struct kp_ctx;
struct kp_map;


/* kp_tbl_open_ops() flags */
#define KP_TBL_TRACK_USED 0x1u	/* remember the chains used (kp_tbl_use_chain()) */

struct kp_tbl {
	struct kp_ctx *ctx;
	const char *who;		/* log prefix: "ipvs", "userspace", "iptables" */
	const struct kp_tc_ops *ops;
	const char *name;		/* "nat", "filter" */
	struct xtc_handle *h;
	struct kp_ipt_rule r;		/* the rule under construction (kp_tbl_rule()) */
	bool track_used;		/* KP_TBL_TRACK_USED */
	struct kp_map *used;		/* chains used, when tracked and ops has no use_chain */
	xt_chainlabel last_used;	/* the chain used last: rules come in runs */
	int err;			/* the first error, -errno */
	char err_what[48];		/* the step that failed first */
	size_t n_appended;		/* rules appended since the table was opened */
};

/*
 * Which chains a data plane owns: these names, and every chain whose name starts with
 * one of the prefixes.
 */
struct kp_tbl_owned {
	const char *const *names;
	size_t n_names;
	const char *const *prefixes;
	size_t n_prefixes;
};

/* Opens table @name of @family through libiptc. 0 or -errno (the table is then closed). */
int kp_tbl_open(struct kp_tbl *t, struct kp_ctx *ctx, const char *who, int family,
		const char *name);
/* Opens table @name through @ops, with KP_TBL_* @flags. 0 or -errno (then closed). */
int kp_tbl_open_ops(struct kp_tbl *t, struct kp_ctx *ctx, const char *who,
		    const struct kp_tc_ops *ops, const char *name, unsigned flags);
/* Commits (if @commit and no error) and frees. Returns the first error, or 0. */
int kp_tbl_close(struct kp_tbl *t, bool commit);
/* Records the failure of @what from errno, unless an error is already recorded. */
void kp_tbl_fail(struct kp_tbl *t, const char *what);
/* Starts a new rule in t->r and returns it. */
struct kp_ipt_rule *kp_tbl_rule(struct kp_tbl *t);
/* Appends the rule built in t->r to @chain (used first, when tracking used chains). */
void kp_tbl_append(struct kp_tbl *t, const char *chain);
/* Appends the finished entry @e (of the table's family) to @chain, as kp_tbl_append(). */
void kp_tbl_append_entry(struct kp_tbl *t, const char *chain, const void *e);
/* Makes @chain exist and be empty. */
void kp_tbl_fresh_chain(struct kp_tbl *t, const char *chain);
/* KP_TBL_TRACK_USED: makes @chain exist and be empty the first time it is used. */
void kp_tbl_use_chain(struct kp_tbl *t, const char *chain);
/* KP_TBL_TRACK_USED: whether kp_tbl_use_chain() was called for @chain. */
bool kp_tbl_chain_used(struct kp_tbl *t, const char *chain);
/*
 * Unless a rule of @chain already has the target @target, adds the rule built in t->r
 * (whose target must be @target): first in the chain when @first, else last.
 */
void kp_tbl_ensure_rule(struct kp_tbl *t, const char *chain, const char *target, bool first);
/*
 * Adds "-m comment --comment COMMENT [-m conntrack --ctstate NEW] -j TARGET" first in
 * @chain (the conntrack match when @new_only) unless there is a jump to @target.
 */
void kp_tbl_ensure_jump(struct kp_tbl *t, const char *chain, const char *target,
			const char *comment, bool new_only);
/* Deletes every rule of @chain (if it exists) that jumps to @target. */
void kp_tbl_remove_jumps(struct kp_tbl *t, const char *chain, const char *target);
/* Deletes every rule of @chain (if it exists) that jumps to a chain of @own. */
void kp_tbl_remove_owned_jumps(struct kp_tbl *t, const char *chain, const struct kp_tbl_owned *own);
/* Flushes, then deletes, each of @n chains that exists. */
void kp_tbl_drop_chains(struct kp_tbl *t, const char *const *chains, size_t n);
/* Flushes every existing chain of @own. */
void kp_tbl_flush_owned(struct kp_tbl *t, const struct kp_tbl_owned *own);
/* Deletes every existing chain of @own not used (kp_tbl_use_chain()) since the table opened. */
void kp_tbl_delete_unused(struct kp_tbl *t, const struct kp_tbl_owned *own);

/*
 * kube-proxy's masquerade rules, appended to the nat chains KUBE-MARK-MASQ (MARK
 * --or-mark @mark) and KUBE-POSTROUTING (RETURN unless marked; --xor-mark, so a packet
 * that traverses the stack again is not masqueraded again; MASQUERADE, --random-fully
 * when asked, with kube-proxy's comment), after what the caller put there; the chains
 * must exist (made fresh or used). @mark: 1 << --iptables-masquerade-bit.
 */
void kp_tbl_masq_rules(struct kp_tbl *t, uint32_t mark, bool random_fully);
/* kube-proxy's filter KUBE-FORWARD accepts: what carries @mark, then related and
 * established flows, appended after what the caller put there. */
void kp_tbl_forward_rules(struct kp_tbl *t, uint32_t mark);

/*
 * Edits the nat table, then the filter table, of @family under the xtables lock, each
 * committed once: @nat_fn and @filter_fn (either may be NULL) get the open table and
 * @arg. Returns 0 or the first -errno.
 */
int kp_tbl_edit_nat_filter(struct kp_ctx *ctx, const char *who, int family,
			   void (*nat_fn)(struct kp_tbl *t, int family, const void *arg),
			   void (*filter_fn)(struct kp_tbl *t, int family, const void *arg),
			   const void *arg);

#endif
