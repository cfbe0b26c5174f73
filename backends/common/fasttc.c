// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A table writer with libiptc's interface (tc.h) but not its costs, for syncs: the
 * kernel's table is read once (IPT_SO_GET_INFO, IPT_SO_GET_ENTRIES), split into chains
 * whose rules are kept as byte runs with jumps written by name, edited in place, and
 * written back in one IPT_SO_SET_REPLACE after a single layout pass that turns names
 * back into offsets. No per-rule allocation, no chain-list walks: chains are found by
 * hash. Jumps to a chain that no longer exists fail the commit with ENOENT, so nothing
 * reaches the kernel half done (libiptc refuses the deletion itself; the effect on a
 * sync is the same).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>

#include <linux/netfilter/x_tables.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#include "internal.h"
#include "tc.h"

/*
 * Rule bytes live in slabs of their own (mmap'd), not on the heap: the kernel's whole
 * table passes through this process on every sync (read, parsed into chains, written
 * back as one blob), and a slab whose chains have all been copied out or dropped goes
 * back to the kernel at once, which heap chunks interleaved with live small objects
 * never do. So the peak is about one copy of the table, not two.
 */
struct slab {
	unsigned char *base;
	size_t cap, used, live;		/* bytes: mapped, handed out, still in use */
	struct slab *next;
};

#define SLAB_SIZE (4u << 20)

struct fchain {
	char name[XT_EXTENSION_MAXNAMELEN];
	int hook;			/* built-in: NF_INET_*; user chain: -1 */
	int policy;			/* built-in chains' verdict */
	bool deleted;
	bool used;			/* fh_use_chain() was called for it */
	unsigned char *rules;		/* entries back to back; jumps by name */
	struct slab *slab;		/* where rules lives */
	size_t size, cap;
	size_t n_rules;
	unsigned offset;		/* layout: where the chain's first rule lands */
};

struct xtc_handle {
	int family;
	char table[XT_TABLE_MAXNAMELEN];
	unsigned valid_hooks;
	unsigned old_entries;		/* for the counters the kernel hands back */
	struct fchain **chains;		/* built-ins first, in hook order; then user chains */
	size_t n_chains, cap_chains;
	struct kp_map *by_name;
	struct slab *slabs;		/* newest first */
	struct fchain *last;		/* the chain found last: rules come in runs */
	size_t chain_iter;
	const struct fchain *rule_chain;	/* the chain first_rule() walks */
};

/* ---- entry layout, by family ---- */

static size_t hdr_size(int family)
{
	return family == AF_INET6 ? XT_ALIGN(sizeof(struct ip6t_entry)) :
				    XT_ALIGN(sizeof(struct ipt_entry));
}

static uint16_t get_next(int family, const void *e)
{
	return family == AF_INET6 ? ((const struct ip6t_entry *)e)->next_offset :
				    ((const struct ipt_entry *)e)->next_offset;
}

static uint16_t get_target_off(int family, const void *e)
{
	return family == AF_INET6 ? ((const struct ip6t_entry *)e)->target_offset :
				    ((const struct ipt_entry *)e)->target_offset;
}

static void set_offs(int family, void *e, size_t target, size_t next)
{
	if (family == AF_INET6) {
		((struct ip6t_entry *)e)->target_offset = (uint16_t)target;
		((struct ip6t_entry *)e)->next_offset = (uint16_t)next;
	} else {
		((struct ipt_entry *)e)->target_offset = (uint16_t)target;
		((struct ipt_entry *)e)->next_offset = (uint16_t)next;
	}
}

static struct xt_entry_target *target_of(int family, const void *e)
{
	return (struct xt_entry_target *)((char *)e + get_target_off(family, e));
}

static bool is_verdict_name(const char *n)
{
	return !*n || !strcmp(n, "ACCEPT") || !strcmp(n, "DROP") || !strcmp(n, "RETURN") ||
	       !strcmp(n, "QUEUE");
}

static int verdict_of(const char *n)
{
	if (!strcmp(n, "ACCEPT"))
		return -NF_ACCEPT - 1;
	if (!strcmp(n, "DROP"))
		return -NF_DROP - 1;
	if (!strcmp(n, "QUEUE"))
		return -NF_QUEUE - 1;
	return XT_RETURN;
}

static const char *verdict_name(int v)
{
	switch (v) {
	case -NF_ACCEPT - 1: return "ACCEPT";
	case -NF_DROP - 1: return "DROP";
	case -NF_QUEUE - 1: return "QUEUE";
	case XT_RETURN: return "RETURN";
	default: return NULL;
	}
}

/* ---- chains ---- */

static struct fchain *chain_get(struct xtc_handle *h, const char *name)
{
	struct fchain *c = h->last;

	if (!c || strcmp(c->name, name)) {
		c = kp_map_get(h->by_name, name);
		if (c)
			h->last = c;
	}
	return c && !c->deleted ? c : NULL;
}

static struct fchain *chain_add(struct xtc_handle *h, const char *name, int hook)
{
	struct fchain *c = kp_map_get(h->by_name, name);

	if (c) {		/* re-created after a delete in the same transaction */
		c->deleted = false;
		c->size = c->n_rules = 0;
		return c;
	}
	if (h->n_chains == h->cap_chains) {
		size_t cap = h->cap_chains ? h->cap_chains * 2 : 64;
		struct fchain **v = realloc(h->chains, cap * sizeof(*v));

		if (!v)
			return NULL;
		h->chains = v;
		h->cap_chains = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->hook = hook;
	if (kp_map_put(h->by_name, c->name, c, NULL) < 0) {
		free(c);
		return NULL;
	}
	h->chains[h->n_chains++] = c;
	return c;
}

/* @size bytes (8-aligned) from the newest slab, or a new one; NULL on ENOMEM. */
static unsigned char *slab_get(struct xtc_handle *h, size_t size, struct slab **ret)
{
	struct slab *s = h->slabs;
	unsigned char *p;

	size = (size + 7) & ~(size_t)7;
	if (!s || s->used + size > s->cap) {
		size_t cap = size > SLAB_SIZE / 4 ? size : SLAB_SIZE;

		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		s->base = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			       0);
		if (s->base == MAP_FAILED) {
			free(s);
			return NULL;
		}
		s->cap = cap;
		s->next = h->slabs;
		h->slabs = s;
	}
	p = s->base + s->used;
	s->used += size;
	s->live += size;
	*ret = s;
	return p;
}

/* Gives back @size bytes of @s; an emptied slab is unmapped (its node stays listed). */
static void slab_put(struct slab *s, size_t size)
{
	size = (size + 7) & ~(size_t)7;
	if (!s || !size)
		return;
	s->live -= size;
	if (!s->live && s->base) {
		munmap(s->base, s->cap);
		s->base = NULL;
		s->used = s->cap;	/* nothing more is handed out from it */
	}
}

static void chain_drop_rules(struct fchain *c)
{
	slab_put(c->slab, c->cap);
	c->rules = NULL;
	c->slab = NULL;
	c->size = c->cap = c->n_rules = 0;
}

static int chain_append(struct xtc_handle *h, struct fchain *c, const void *e, size_t size)
{
	if (c->size + size > c->cap) {
		size_t cap = ((c->size + size) * 2 + 256 + 7) & ~(size_t)7;
		struct slab *s;
		unsigned char *r = slab_get(h, cap, &s);

		if (!r)
			return -ENOMEM;
		if (c->size)
			memcpy(r, c->rules, c->size);
		slab_put(c->slab, c->cap);
		c->rules = r;
		c->slab = s;
		c->cap = cap;
	}
	memcpy(c->rules + c->size, e, size);
	c->size += size;
	c->n_rules++;
	return 0;
}

/* ---- reading the kernel's table ---- */

struct parsed {
	unsigned offset;		/* of the chain's first rule */
	char name[XT_EXTENSION_MAXNAMELEN];	/* a copy: the table's pages are let go */
};

#define RELEASE_STEP (8u << 20)		/* memory handed back in steps of this */

/*
 * Hands back to the kernel the whole pages of [from, to), a part of a large buffer that
 * will not be read again (the table being parsed, or chains already copied out): with the
 * table read, parsed and written back in one sync, each copy would otherwise double the
 * peak memory. The pages read as zeros if touched again.
 */
static void release(const void *from, const void *to)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)from + page - 1) & ~(page - 1), b = (uintptr_t)to & ~(page - 1);

	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

static int sockopt_level(int family)
{
	return family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
}

static void fh_free(struct xtc_handle *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n_chains; i++)
		free(h->chains[i]);
	while (h->slabs) {
		struct slab *s = h->slabs;

		h->slabs = s->next;
		if (s->base)
			munmap(s->base, s->cap);
		free(s);
	}
	free(h->chains);
	kp_map_free(h->by_name);
	free(h);
}

static int add_start(struct parsed **v, size_t *n, size_t *cap, unsigned offset,
		     const char *name)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct parsed *p = realloc(*v, c * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	(*v)[*n].offset = offset;
	snprintf((*v)[*n].name, sizeof((*v)[*n].name), "%s", name);
	(*n)++;
	return 0;
}

static const char *chain_at(const struct parsed *p, size_t n, unsigned offset)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (p[mid].offset == offset)
			return p[mid].name;
		if (p[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static const char *const hooks[] = { "PREROUTING", "INPUT", "FORWARD", "OUTPUT",
				     "POSTROUTING" };

/* Pass 1 over the kernel's table: where each chain's first rule is (the built-in ones'
 * hook entries, a user chain after its ERROR head), to turn jumps into names. Returns 0
 * or a positive errno. */
static int find_starts(int family, const struct ipt_getinfo *info,
		       const struct ipt_get_entries *ge, struct parsed **starts, size_t *n_starts)
{
	size_t cap = 0;

	for (unsigned off = 0; off < info->size;) {
		const void *e = (const char *)ge->entrytable + off;
		const struct xt_entry_target *t = target_of(family, e);

		for (int k = 0; k < NF_INET_NUMHOOKS; k++)
			if ((info->valid_hooks & (1u << k)) && info->hook_entry[k] == off &&
			    add_start(starts, n_starts, &cap, off, hooks[k]) < 0)
				return ENOMEM;
		if (!strcmp(t->u.user.name, XT_ERROR_TARGET) &&
		    strcmp(((const struct xt_error_target *)t)->errorname, XT_ERROR_TARGET) &&
		    add_start(starts, n_starts, &cap, off + get_next(family, e),
			      ((const struct xt_error_target *)t)->errorname) < 0)
			return ENOMEM;
		if (!get_next(family, e))
			return EINVAL;
		off += get_next(family, e);
	}
	return 0;
}

/* Turns a standard target's verdict (an offset, or a negative verdict) into the name
 * libiptc's users see. Returns 0 or EINVAL for a jump to no chain start. */
static int name_jump(struct xt_standard_target *st, unsigned next, const struct parsed *starts,
		     size_t n_starts)
{
	const char *name = st->verdict >= 0 ?
		(st->verdict == (int)next ? "" : chain_at(starts, n_starts, (unsigned)st->verdict)) :
		verdict_name(st->verdict);

	if (!name)
		return EINVAL;
	snprintf(st->target.u.user.name, sizeof(st->target.u.user.name), "%s", name);
	return 0;
}

/*
 * Pass 2: chains and their rules, with jumps rewritten by name; the table's pages behind
 * the entry being read are handed back as it goes (pass 1 copied the names). Returns 0
 * or a positive errno.
 */
static int read_chains(struct xtc_handle *h, int family, const struct ipt_getinfo *info,
		       struct ipt_get_entries *ge, const struct parsed *starts, size_t n_starts)
{
	struct fchain *cur = NULL;
	bool big = info->size >= 4 * RELEASE_STEP;
	unsigned released = 0;

	for (unsigned off = 0, next; off < info->size; off = next) {
		unsigned char *e = (unsigned char *)ge->entrytable + off;
		struct xt_entry_target *t = target_of(family, e);
		bool standard = !strcmp(t->u.user.name, XT_STANDARD_TARGET);

		if (big && off - released >= RELEASE_STEP) {
			release((unsigned char *)ge->entrytable + released, e);
			released = off;
		}
		next = off + get_next(family, e);
		for (int k = 0; k < NF_INET_NUMHOOKS; k++)
			if ((info->valid_hooks & (1u << k)) && info->hook_entry[k] == off)
				cur = chain_add(h, hooks[k], k);
		if (!strcmp(t->u.user.name, XT_ERROR_TARGET)) {
			const char *n = ((const struct xt_error_target *)t)->errorname;

			cur = strcmp(n, XT_ERROR_TARGET) ? chain_add(h, n, -1) : NULL;
			continue;
		}
		if (!cur)
			return EINVAL;
		if (cur->hook >= 0 && info->underflow[cur->hook] == off) {
			cur->policy = ((struct xt_standard_target *)t)->verdict;
			continue;
		}
		/* a user chain's last entry is its RETURN foot */
		if (cur->hook < 0 && standard &&
		    ((struct xt_standard_target *)t)->verdict == XT_RETURN && next < info->size &&
		    !strcmp(target_of(family, (char *)ge->entrytable + next)->u.user.name,
			    XT_ERROR_TARGET))
			continue;
		if (standard && name_jump((struct xt_standard_target *)t, next, starts, n_starts))
			return EINVAL;
		memset((char *)e + (family == AF_INET6 ? offsetof(struct ip6t_entry, comefrom) :
						 offsetof(struct ipt_entry, comefrom)),
		       0, sizeof(unsigned int));
		if (chain_append(h, cur, e, get_next(family, e)) < 0)
			return ENOMEM;
	}
	return 0;
}

static struct xtc_handle *fh_init(int family, const char *table)
{
	struct ipt_getinfo info = { 0 };	/* same layout as ip6t_getinfo */
	struct ipt_get_entries *ge = NULL;	/* same layout as ip6t_get_entries */
	struct xtc_handle *h = NULL;
	struct parsed *starts = NULL;
	size_t n_starts = 0;
	socklen_t len = sizeof(info);
	int fd, err = 0;

	fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (fd < 0)
		return NULL;
	snprintf(info.name, sizeof(info.name), "%s", table);
	if (getsockopt(fd, sockopt_level(family), family == AF_INET6 ? IP6T_SO_GET_INFO :
			IPT_SO_GET_INFO, &info, &len) < 0) {
		err = errno;
		goto out;
	}
	len = (socklen_t)(sizeof(*ge) + info.size);
	ge = calloc(1, len);
	h = calloc(1, sizeof(*h));
	if (!ge || !h || !(h->by_name = kp_map_new())) {
		err = ENOMEM;
		goto out;
	}
	snprintf(ge->name, sizeof(ge->name), "%s", table);
	ge->size = info.size;
	if (getsockopt(fd, sockopt_level(family), family == AF_INET6 ? IP6T_SO_GET_ENTRIES :
			IPT_SO_GET_ENTRIES, ge, &len) < 0) {
		err = errno;
		goto out;
	}
	h->family = family;
	snprintf(h->table, sizeof(h->table), "%s", table);
	h->valid_hooks = info.valid_hooks;
	h->old_entries = info.num_entries;
	err = find_starts(family, &info, ge, &starts, &n_starts);
	if (!err)
		err = read_chains(h, family, &info, ge, starts, n_starts);
out:
	free(starts);
	free(ge);
	close(fd);
	if (err) {
		fh_free(h);
		errno = err;
		return NULL;
	}
	return h;
}

/* ---- editing ---- */

static int fh_is_chain(const char *chain, struct xtc_handle *const h)
{
	return chain_get(h, chain) != NULL;
}

static int fh_create_chain(const xt_chainlabel chain, struct xtc_handle *h)
{
	if (chain_get(h, chain)) {
		errno = EEXIST;
		return 0;
	}
	if (!chain_add(h, chain, -1)) {
		errno = ENOMEM;
		return 0;
	}
	return 1;
}

static int fh_use_chain(const char *chain, struct xtc_handle *h)
{
	struct fchain *c = chain_get(h, chain);

	if (c && c->used)
		return 2;
	if (!c && !(c = chain_add(h, chain, -1))) {
		errno = ENOMEM;
		return 0;
	}
	c->size = c->n_rules = 0;
	c->used = true;
	h->last = c;
	return 1;
}

static int fh_is_used(const char *chain, struct xtc_handle *h)
{
	const struct fchain *c = chain_get(h, chain);

	return c && c->used;
}

static int fh_flush_entries(const xt_chainlabel chain, struct xtc_handle *h)
{
	struct fchain *c = chain_get(h, chain);

	if (!c) {
		errno = ENOENT;
		return 0;
	}
	c->size = c->n_rules = 0;
	return 1;
}

static int fh_delete_chain(const xt_chainlabel chain, struct xtc_handle *h)
{
	struct fchain *c = chain_get(h, chain);

	if (!c || c->hook >= 0) {
		errno = c ? EINVAL : ENOENT;
		return 0;
	}
	c->deleted = true;
	chain_drop_rules(c);
	return 1;
}

static int fh_append(const char *chain, const void *e, struct xtc_handle *h)
{
	struct fchain *c = chain_get(h, chain);

	if (!c) {
		errno = ENOENT;
		return 0;
	}
	if (chain_append(h, c, e, get_next(h->family, e)) < 0) {
		errno = ENOMEM;
		return 0;
	}
	return 1;
}

/* Byte offset of rule @num in @c, or c->size past the end. */
static size_t rule_offset(int family, const struct fchain *c, unsigned num)
{
	size_t off = 0;

	for (unsigned i = 0; i < num && off < c->size; i++)
		off += get_next(family, c->rules + off);
	return off;
}

static int fh_insert(const char *chain, const void *e, unsigned num, struct xtc_handle *h)
{
	struct fchain *c = chain_get(h, chain);
	size_t size = get_next(h->family, e), at;

	if (!c || num > c->n_rules) {
		errno = c ? E2BIG : ENOENT;
		return 0;
	}
	at = rule_offset(h->family, c, num);
	if (chain_append(h, c, e, size) < 0) {	/* grows the buffer; fixed up below */
		errno = ENOMEM;
		return 0;
	}
	memmove(c->rules + at + size, c->rules + at, c->size - size - at);
	memcpy(c->rules + at, e, size);
	return 1;
}

static int fh_delete_num(const xt_chainlabel chain, unsigned num, struct xtc_handle *h)
{
	struct fchain *c = chain_get(h, chain);
	size_t at, size;

	if (!c || num >= c->n_rules) {
		errno = c ? E2BIG : ENOENT;
		return 0;
	}
	at = rule_offset(h->family, c, num);
	size = get_next(h->family, c->rules + at);
	memmove(c->rules + at, c->rules + at + size, c->size - at - size);
	c->size -= size;
	c->n_rules--;
	return 1;
}

static const char *fh_next_chain(struct xtc_handle *h)
{
	while (h->chain_iter < h->n_chains && h->chains[h->chain_iter]->deleted)
		h->chain_iter++;
	if (h->chain_iter == h->n_chains)
		return NULL;
	h->last = h->chains[h->chain_iter++];	/* the caller's next lookup is likely it */
	return h->last->name;
}

static const char *fh_first_chain(struct xtc_handle *h)
{
	h->chain_iter = 0;
	return fh_next_chain(h);
}

static const void *fh_first_rule(const char *chain, struct xtc_handle *h)
{
	h->rule_chain = chain_get(h, chain);
	return h->rule_chain && h->rule_chain->size ? h->rule_chain->rules : NULL;
}

static const void *fh_next_rule(const void *prev, struct xtc_handle *h)
{
	const unsigned char *p = prev;
	const struct fchain *c = h->rule_chain;
	size_t next;

	if (!c || p < c->rules || p >= c->rules + c->size)
		return NULL;
	next = (size_t)(p - c->rules) + get_next(h->family, p);
	return next < c->size ? c->rules + next : NULL;
}

static const char *fh_get_target(const void *e, struct xtc_handle *h)
{
	return target_of(h->family, e)->u.user.name;
}

/* ---- writing the table back ---- */

/* Appends an entry with no match and a standard or error target at @p. */
static size_t put_plain(int family, unsigned char *p, const char *error_name, int verdict)
{
	size_t hs = hdr_size(family);
	size_t ts = error_name ? XT_ALIGN(sizeof(struct xt_error_target)) :
				 XT_ALIGN(sizeof(struct xt_standard_target));

	if (!p)
		return hs + ts;
	memset(p, 0, hs + ts);
	set_offs(family, p, hs, hs + ts);
	if (error_name) {
		struct xt_error_target *t = (struct xt_error_target *)(p + hs);

		t->target.u.target_size = (uint16_t)ts;
		snprintf(t->target.u.user.name, sizeof(t->target.u.user.name), XT_ERROR_TARGET);
		snprintf(t->errorname, sizeof(t->errorname), "%s", error_name);
	} else {
		struct xt_standard_target *t = (struct xt_standard_target *)(p + hs);

		t->target.u.target_size = (uint16_t)ts;
		t->verdict = verdict;
	}
	return hs + ts;
}

/* Where each chain starts in the replacement blob; returns its size, and the entries. */
static size_t lay_out(struct xtc_handle *h, size_t *ret_entries)
{
	size_t total = 0, n_entries = 0, head = put_plain(h->family, NULL, "x", 0);
	size_t plain = put_plain(h->family, NULL, NULL, 0);

	for (size_t i = 0; i < h->n_chains; i++) {
		struct fchain *c = h->chains[i];

		if (c->deleted)
			continue;
		if (c->hook < 0) {
			total += head;
			n_entries++;
		}
		c->offset = (unsigned)total;
		total += c->size + plain;	/* rules, then the policy or RETURN foot */
		n_entries += c->n_rules + 1;
	}
	*ret_entries = n_entries + 1;	/* the closing ERROR entry */
	return total + head;
}

/* A chain's rules copied to @p, their jumps by name turned into offsets. Returns 0 or
 * ENOENT for a jump to a chain deleted in this edit. */
static int put_rules(struct xtc_handle *h, const struct fchain *c, unsigned char *p)
{
	int family = h->family;

	if (c->size)
		memcpy(p, c->rules, c->size);
	for (size_t off = 0; off < c->size; off += get_next(family, p + off)) {
		struct xt_entry_target *t = target_of(family, p + off);
		struct xt_standard_target *st = (struct xt_standard_target *)t;
		const char *name = t->u.user.name;
		const struct fchain *to;

		/* a jump has a standard target's size and names a verdict or a chain; other
		 * targets (MARK, ...) can have that size too */
		if (t->u.target_size != XT_ALIGN(sizeof(*st)))
			continue;
		if (!*name)
			st->verdict = (int)(c->offset + off + get_next(family, p + off));
		else if (is_verdict_name(name))
			st->verdict = verdict_of(name);
		else if ((to = chain_get(h, name)))
			st->verdict = (int)to->offset;
		else if (kp_map_get(h->by_name, name))
			return ENOENT;	/* a jump to a deleted chain */
		else
			continue;
		memset(t->u.user.name, 0, sizeof(t->u.user.name));
	}
	return 0;
}

/* The whole table in the kernel's layout: each chain (a user chain behind its ERROR
 * head), its rules, its policy or RETURN foot, and the closing ERROR entry. */
static int put_table(struct xtc_handle *h, struct ipt_replace *repl)
{
	unsigned char *p = (unsigned char *)repl->entries;
	int family = h->family, r = 0;

	for (size_t i = 0; i < h->n_chains && !r; i++) {
		struct fchain *c = h->chains[i];

		if (c->deleted)
			continue;
		if (c->hook < 0)
			p += put_plain(family, p, c->name, 0);
		else
			repl->hook_entry[c->hook] = c->offset;
		r = put_rules(h, c, p);
		p += c->size;
		/* the chain is in the blob now: its slab space goes (the handle is spent) */
		chain_drop_rules(c);
		if (c->hook >= 0) {
			repl->underflow[c->hook] = (unsigned)(p - (unsigned char *)repl->entries);
			p += put_plain(family, p, NULL, c->policy);
		} else {
			p += put_plain(family, p, NULL, XT_RETURN);
		}
	}
	put_plain(family, p, XT_ERROR_TARGET, 0);
	return r;
}

static int fh_commit(struct xtc_handle *h)
{
	int family = h->family, fd, r;
	size_t n_entries, total = lay_out(h, &n_entries);
	struct ipt_replace *repl;	/* same layout as ip6t_replace */
	struct xt_counters *counters;

	repl = calloc(1, sizeof(*repl) + total);
	counters = calloc(h->old_entries ? h->old_entries : 1, sizeof(*counters));
	if (!repl || !counters) {
		free(repl);
		free(counters);
		errno = ENOMEM;
		return 0;
	}
	snprintf(repl->name, sizeof(repl->name), "%s", h->table);
	repl->valid_hooks = h->valid_hooks;
	repl->num_entries = (unsigned)n_entries;
	repl->size = (unsigned)total;
	repl->num_counters = h->old_entries;
	repl->counters = counters;
	r = put_table(h, repl);
	if (!r) {
		fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
		if (fd < 0 || setsockopt(fd, sockopt_level(family),
					 family == AF_INET6 ? IP6T_SO_SET_REPLACE : IPT_SO_SET_REPLACE,
					 repl, (socklen_t)(sizeof(*repl) + total)) < 0)
			r = errno;
		if (fd >= 0)
			close(fd);
	}
	free(repl);
	free(counters);
	if (r) {
		errno = r;
		return 0;
	}
	return 1;
}

static const char *fh_strerror(int err)
{
	return err == ENOENT ? "No chain/target/match by that name" : kp_strerror(err);
}

int kp_tc_fast_probe(int family, const char *table)
{
	struct ipt_getinfo info = { 0 };	/* same layout as ip6t_getinfo */
	socklen_t len = sizeof(info);
	int fd, r = 0;

	fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (fd < 0)
		return -errno;
	snprintf(info.name, sizeof(info.name), "%s", table);
	if (getsockopt(fd, sockopt_level(family), family == AF_INET6 ? IP6T_SO_GET_INFO :
			IPT_SO_GET_INFO, &info, &len) < 0)
		r = -errno;
	close(fd);
	return r;
}

static struct xtc_handle *fh_init4(const char *table)
{
	return fh_init(AF_INET, table);
}

static struct xtc_handle *fh_init6(const char *table)
{
	return fh_init(AF_INET6, table);
}

#define FAST_OPS(fam, tool_name, initfn)                                                    \
	{                                                                                   \
		.family = fam, .tool = tool_name, .init = initfn, .free = fh_free,          \
		.is_chain = fh_is_chain, .create_chain = fh_create_chain,                   \
		.flush_entries = fh_flush_entries, .delete_chain = fh_delete_chain,         \
		.append_entry = fh_append, .insert_entry = fh_insert,                       \
		.delete_num_entry = fh_delete_num, .first_chain = fh_first_chain,           \
		.next_chain = fh_next_chain, .first_rule = fh_first_rule,                   \
		.next_rule = fh_next_rule, .get_target = fh_get_target,                     \
		.commit = fh_commit, .strerror = fh_strerror,                               \
		.use_chain = fh_use_chain, .is_used = fh_is_used,                           \
	}

const struct kp_tc_ops kp_tc_fast_ipv4 = FAST_OPS(AF_INET, "iptables", fh_init4);
const struct kp_tc_ops kp_tc_fast_ipv6 = FAST_OPS(AF_INET6, "ip6tables", fh_init6);
