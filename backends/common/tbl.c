// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Small-table editing through libiptc (see tbl.h): the chain, jump and commit steps the
 * IPVS and userspace data planes share, with the first error kept and named.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "tbl.h"
#include "xtlock.h"

void tbl_fail(struct tbl *t, const char *what)
{
	if (t->err)
		return;
	t->err = errno ? -errno : -EIO;
	kp_log(t->ctx, KP_LOG_DEBUG, "%s: %s %s: %s: %s", t->who, t->ops->tool, t->name, what,
	       t->ops->strerror(errno));
}

int tbl_open(struct tbl *t, struct kp_ctx *ctx, const char *who, int family, const char *name)
{
	memset(t, 0, sizeof(*t));
	t->ctx = ctx;
	t->who = who;
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

int tbl_close(struct tbl *t, bool commit)
{
	if (commit && !t->err && !t->ops->commit(t->h))
		tbl_fail(t, "commit");
	t->ops->free(t->h);
	ipt_rule_fini(&t->r);
	return t->err;
}

struct ipt_rule *tbl_rule(struct tbl *t)
{
	ipt_rule_reset(&t->r);
	return &t->r;
}

/* The finished rule, or NULL with the error recorded. */
static const void *entry(struct tbl *t)
{
	const void *e = ipt_rule_entry(&t->r);

	if (!e && !t->err) {
		errno = ENOMEM;
		tbl_fail(t, "build rule");
	}
	return e;
}

void tbl_append(struct tbl *t, const char *chain)
{
	const void *e;

	if (t->err || !(e = entry(t)))
		return;
	if (!t->ops->append_entry(chain, e, t->h))
		tbl_fail(t, chain);
}

void tbl_fresh_chain(struct tbl *t, const char *chain)
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

int tbl_find_jump(struct tbl *t, const char *chain, const char *target)
{
	int num = 0;

	for (const void *e = t->ops->first_rule(chain, t->h); e;
	     e = t->ops->next_rule(e, t->h), num++)
		if (!strcmp(t->ops->get_target(e, t->h), target))
			return num;
	return -1;
}

void tbl_ensure_rule(struct tbl *t, const char *chain, const char *target, bool first)
{
	const void *e;

	if (t->err || tbl_find_jump(t, chain, target) >= 0 || !(e = entry(t)))
		return;
	if (first ? !t->ops->insert_entry(chain, e, 0, t->h) : !t->ops->append_entry(chain, e, t->h))
		tbl_fail(t, chain);
}

void tbl_ensure_jump(struct tbl *t, const char *chain, const char *target, const char *comment)
{
	struct ipt_rule *r = tbl_rule(t);

	ipt_rule_comment(r, "%s", comment);
	ipt_rule_jump(r, target);
	tbl_ensure_rule(t, chain, target, true);
}

void tbl_remove_jumps(struct tbl *t, const char *chain, const char *target)
{
	int num;

	if (t->err || !t->ops->is_chain(chain, t->h))
		return;
	for (int i = 0; i < 64 && !t->err && (num = tbl_find_jump(t, chain, target)) >= 0; i++)
		if (!t->ops->delete_num_entry(chain, (unsigned)num, t->h))
			tbl_fail(t, "delete jump");
}

void tbl_drop_chains(struct tbl *t, const char *const *chains, size_t n)
{
	for (size_t i = 0; i < n && !t->err; i++)
		if (t->ops->is_chain(chains[i], t->h) && !t->ops->flush_entries(chains[i], t->h))
			tbl_fail(t, "flush chain");
	for (size_t i = 0; i < n && !t->err; i++)
		if (t->ops->is_chain(chains[i], t->h) && !t->ops->delete_chain(chains[i], t->h))
			tbl_fail(t, "delete chain");
}

int tbl_edit_nat_filter(struct kp_ctx *ctx, const char *who, int family,
			void (*nat_fn)(struct tbl *t, int family, const void *arg),
			void (*filter_fn)(struct tbl *t, int family, const void *arg),
			const void *arg)
{
	void (*fns[2])(struct tbl *, int, const void *) = { nat_fn, filter_fn };
	static const char *const names[2] = { "nat", "filter" };
	struct tbl t;
	int r = 0, lock = kp_xt_lock(ctx, who);

	if (lock < 0)
		return lock;
	for (int i = 0; i < 2 && !r; i++) {
		if (!fns[i])
			continue;
		r = tbl_open(&t, ctx, who, family, names[i]);
		if (r < 0)
			break;
		fns[i](&t, family, arg);
		r = tbl_close(&t, true);
	}
	kp_xt_unlock(lock);
	return r;
}
