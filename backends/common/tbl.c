// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The table editor (see tbl.h): the chain, jump and commit steps every x_tables data plane
 * shares, through libiptc or fasttc.c, with the first error kept and named and the chains
 * a sync used remembered; and kube-proxy's masquerade rules, written in one place.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <linux/netfilter/xt_conntrack.h>

#include "internal.h"
#include "tbl.h"
#include "xtlock.h"

void kp_tbl_fail(struct kp_tbl *t, const char *what)
{
	if (t->err)
		return;
	t->err = errno ? -errno : -EIO;
	/* a copy: @what may be a chain name in the caller's frame */
	snprintf(t->err_what, sizeof(t->err_what), "%s", what);
	/* the cause the caller of the failing sync or cleanup reads (kp_ctx_get_error()) */
	kp_ctx_set_error(t->ctx, t->err, "%s: %s %s: %s: %s", t->who, t->ops->tool, t->name,
			 what, t->ops->strerror(-t->err));
}

int kp_tbl_open_ops(struct kp_tbl *t, struct kp_ctx *ctx, const char *who,
		    const struct kp_tc_ops *ops, const char *name, unsigned flags)
{
	memset(t, 0, sizeof(*t));
	t->ctx = ctx;
	t->who = who;
	t->ops = ops;
	t->name = name;
	t->track_used = flags & KP_TBL_TRACK_USED;
	kp_ipt_rule_init(&t->r, ops->family);
	/* fasttc.c tracks used chains in its handle; libiptc needs a set beside it */
	if (t->track_used && !ops->use_chain && !(t->used = kp_map_new())) {
		errno = ENOMEM;
		kp_tbl_fail(t, "chain set");
		goto out_fini;
	}
	t->h = ops->init(name);
	if (!t->h) {
		kp_tbl_fail(t, "open");
		goto out_free_used;
	}
	return 0;

out_free_used:
	kp_map_free(t->used);
out_fini:
	kp_ipt_rule_fini(&t->r);
	return t->err;
}

int kp_tbl_open(struct kp_tbl *t, struct kp_ctx *ctx, const char *who, int family, const char *name)
{
	return kp_tbl_open_ops(t, ctx, who, family == AF_INET6 ? &kp_tc_ipv6 : &kp_tc_ipv4, name,
			       0);
}

int kp_tbl_close(struct kp_tbl *t, bool commit)
{
	if (commit && !t->err && !t->ops->commit(t->h))
		kp_tbl_fail(t, "commit");
	t->ops->free(t->h);
	t->h = NULL;
	kp_map_free(t->used);
	t->used = NULL;
	kp_ipt_rule_fini(&t->r);
	return t->err;
}

struct kp_ipt_rule *kp_tbl_rule(struct kp_tbl *t)
{
	kp_ipt_rule_reset(&t->r);
	return &t->r;
}

/* The finished rule, or NULL with the error recorded. */
static const void *entry(struct kp_tbl *t)
{
	const void *e = kp_ipt_rule_entry(&t->r);

	if (!e && !t->err) {
		errno = ENOMEM;
		kp_tbl_fail(t, "build rule");
	}
	return e;
}

void kp_tbl_append_entry(struct kp_tbl *t, const char *chain, const void *e)
{
	if (t->track_used)
		kp_tbl_use_chain(t, chain);
	if (!t->err && !t->ops->append_entry(chain, e, t->h))
		kp_tbl_fail(t, chain);
	else if (!t->err)
		t->n_appended++;
}

void kp_tbl_append(struct kp_tbl *t, const char *chain)
{
	const void *e;

	if (t->err || !(e = entry(t)))
		return;
	kp_tbl_append_entry(t, chain, e);
}

void kp_tbl_fresh_chain(struct kp_tbl *t, const char *chain)
{
	if (t->err)
		return;
	if (!t->ops->is_chain(chain, t->h)) {
		if (!t->ops->create_chain(chain, t->h))
			kp_tbl_fail(t, "create chain");
	} else if (!t->ops->flush_entries(chain, t->h)) {
		kp_tbl_fail(t, "flush chain");
	}
}

void kp_tbl_use_chain(struct kp_tbl *t, const char *chain)
{
	assert(t->track_used);
	if (t->err || !strcmp(t->last_used, chain))
		return;		/* rules of one chain mostly come in a row */
	if (t->ops->use_chain) {
		if (!t->ops->use_chain(chain, t->h))
			return kp_tbl_fail(t, "create chain");
	} else if (!kp_map_get(t->used, chain)) {
		kp_tbl_fresh_chain(t, chain);
		if (t->err)
			return;
		if (kp_map_put(t->used, chain, t, NULL) < 0) {
			errno = ENOMEM;
			return kp_tbl_fail(t, "chain set");
		}
	}
	snprintf(t->last_used, sizeof(t->last_used), "%s", chain);
}

bool kp_tbl_chain_used(struct kp_tbl *t, const char *chain)
{
	assert(t->track_used);
	return t->ops->is_used ? t->ops->is_used(chain, t->h) : kp_map_get(t->used, chain) != NULL;
}

/* Position of the first rule of @chain whose target is @target, or -1. */
static int find_jump(struct kp_tbl *t, const char *chain, const char *target)
{
	int num = 0;

	for (const void *e = t->ops->first_rule(chain, t->h); e;
	     e = t->ops->next_rule(e, t->h), num++)
		if (!strcmp(t->ops->get_target(e, t->h), target))
			return num;
	return -1;
}

void kp_tbl_ensure_rule(struct kp_tbl *t, const char *chain, const char *target, bool first)
{
	const void *e;

	if (t->err || find_jump(t, chain, target) >= 0 || !(e = entry(t)))
		return;
	if (first ? !t->ops->insert_entry(chain, e, 0, t->h) : !t->ops->append_entry(chain, e, t->h))
		kp_tbl_fail(t, chain);
}

void kp_tbl_ensure_jump(struct kp_tbl *t, const char *chain, const char *target,
			const char *comment, bool new_only)
{
	struct kp_ipt_rule *r = kp_tbl_rule(t);

	kp_ipt_rule_comment(r, "%s", comment);
	if (new_only)
		kp_ipt_rule_ctstate(r, XT_CONNTRACK_STATE_BIT(IP_CT_NEW));
	kp_ipt_rule_jump(r, target);
	kp_tbl_ensure_rule(t, chain, target, true);
}

static bool owned(const struct kp_tbl_owned *own, const char *chain)
{
	for (size_t i = 0; i < own->n_names; i++)
		if (!strcmp(chain, own->names[i]))
			return true;
	for (size_t i = 0; i < own->n_prefixes; i++)
		if (!strncmp(chain, own->prefixes[i], strlen(own->prefixes[i])))
			return true;
	return false;
}

void kp_tbl_remove_owned_jumps(struct kp_tbl *t, const char *chain, const struct kp_tbl_owned *own)
{
	if (t->err || !t->ops->is_chain(chain, t->h))
		return;
	/* each pass deletes one rule, so this ends (or stops at the first failure) */
	while (!t->err) {
		const void *e;
		unsigned num = 0;

		for (e = t->ops->first_rule(chain, t->h); e; e = t->ops->next_rule(e, t->h), num++)
			if (owned(own, t->ops->get_target(e, t->h)))
				break;
		if (!e)
			return;
		if (!t->ops->delete_num_entry(chain, num, t->h))
			kp_tbl_fail(t, "delete jump");
	}
}

void kp_tbl_remove_jumps(struct kp_tbl *t, const char *chain, const char *target)
{
	const struct kp_tbl_owned own = {.names = &target, .n_names = 1};

	kp_tbl_remove_owned_jumps(t, chain, &own);
}

void kp_tbl_drop_chains(struct kp_tbl *t, const char *const *chains, size_t n)
{
	for (size_t i = 0; i < n && !t->err; i++)
		if (t->ops->is_chain(chains[i], t->h) && !t->ops->flush_entries(chains[i], t->h))
			kp_tbl_fail(t, "flush chain");
	for (size_t i = 0; i < n && !t->err; i++)
		if (t->ops->is_chain(chains[i], t->h) && !t->ops->delete_chain(chains[i], t->h))
			kp_tbl_fail(t, "delete chain");
}

void kp_tbl_flush_owned(struct kp_tbl *t, const struct kp_tbl_owned *own)
{
	for (const char *c = t->ops->first_chain(t->h); c && !t->err; c = t->ops->next_chain(t->h))
		if (owned(own, c) && !t->ops->flush_entries(c, t->h))
			kp_tbl_fail(t, "flush chain");
}

void kp_tbl_delete_unused(struct kp_tbl *t, const struct kp_tbl_owned *own)
{
	xt_chainlabel *names = NULL;
	size_t n = 0, cap = 0;

	if (t->err)
		return;
	/* names first: deleting a chain would upset the chain walk */
	for (const char *c = t->ops->first_chain(t->h); c; c = t->ops->next_chain(t->h)) {
		if (!owned(own, c) || kp_tbl_chain_used(t, c))
			continue;
		if (n == cap) {
			void *v = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*names));

			if (!v) {
				errno = ENOMEM;
				kp_tbl_fail(t, "chain list");
				goto out_free;
			}
			names = v;
		}
		snprintf(names[n++], sizeof(*names), "%s", c);
	}
	for (size_t i = 0; i < n && !t->err; i++)
		if (!t->ops->delete_chain(names[i], t->h))
			kp_tbl_fail(t, "delete chain");
out_free:
	free(names);
}

void kp_tbl_masq_rules(struct kp_tbl *t, uint32_t mark, bool random_fully)
{
	struct kp_ipt_rule *r = kp_tbl_rule(t);

	kp_ipt_rule_mark_target(r, mark, mark); /* --or-mark */
	kp_tbl_append(t, "KUBE-MARK-MASQ");
	r = kp_tbl_rule(t);
	kp_ipt_rule_mark(r, mark, mark, true);
	kp_ipt_rule_jump(r, "RETURN");
	kp_tbl_append(t, "KUBE-POSTROUTING");
	r = kp_tbl_rule(t);
	kp_ipt_rule_mark_target(r, mark, 0); /* --xor-mark */
	kp_tbl_append(t, "KUBE-POSTROUTING");
	r = kp_tbl_rule(t);
	kp_ipt_rule_comment(r, "kubernetes service traffic requiring SNAT");
	kp_ipt_rule_masquerade(r, random_fully);
	kp_tbl_append(t, "KUBE-POSTROUTING");
}

void kp_tbl_forward_rules(struct kp_tbl *t, uint32_t mark)
{
	struct kp_ipt_rule *r = kp_tbl_rule(t);

	kp_ipt_rule_comment(r, "kubernetes forwarding rules");
	kp_ipt_rule_mark(r, mark, mark, false);
	kp_ipt_rule_jump(r, "ACCEPT");
	kp_tbl_append(t, "KUBE-FORWARD");
	r = kp_tbl_rule(t);
	kp_ipt_rule_comment(r, "kubernetes forwarding conntrack rule");
	kp_ipt_rule_ctstate(r, XT_CONNTRACK_STATE_BIT(IP_CT_RELATED) |
				       XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED));
	kp_ipt_rule_jump(r, "ACCEPT");
	kp_tbl_append(t, "KUBE-FORWARD");
}

int kp_tbl_edit_nat_filter(struct kp_ctx *ctx, const char *who, int family,
			   void (*nat_fn)(struct kp_tbl *t, int family, const void *arg),
			   void (*filter_fn)(struct kp_tbl *t, int family, const void *arg),
			   const void *arg)
{
	void (*fns[2])(struct kp_tbl *, int, const void *) = {nat_fn, filter_fn};
	static const char *const names[2] = { "nat", "filter" };
	struct kp_tbl t;
	int r = 0, lock = kp_xt_lock(ctx, who);

	if (lock < 0)
		return lock;
	for (int i = 0; i < 2 && !r; i++) {
		if (!fns[i])
			continue;
		r = kp_tbl_open(&t, ctx, who, family, names[i]);
		if (r < 0)
			break;
		fns[i](&t, family, arg);
		r = kp_tbl_close(&t, true);
	}
	kp_xt_unlock(lock);
	return r;
}
