// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kp_ctx_check(): does the data plane hold what the desired state says? The backend's
 * dump (read back from the kernel where it can be) is compared, entry by entry, with
 * the state's frontends and endpoint sets as the last sync computed them: frontends
 * missing from the data plane, frontends it has that nobody wants (a stale rule, a
 * virtual server of a deleted service), and endpoint sets that differ. A NodePort on
 * every local address is matched by the data plane's NodePort entries of the service
 * port, whatever address they name (a backend may list one per node address).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ctx-internal.h"

/* One programmed entry, copied out of the dump (entries are borrowed for the call). */
struct have {
	struct kp_dump_entry e;
	char *ns, *name, *port_name, *detail;
	struct kp_endpoint *eps;
	size_t next_np;			/* the next NodePort entry of its key (by_np), + 1 */
	bool used;
};

struct check {
	struct have *v;
	size_t n, cap;
	struct kp_map *by_key;		/* key -> index + 1 */
	struct kp_map *by_np;		/* NodePort key, any address -> first index + 1 */
	int err;
};

static void key_of(const struct kp_dump_entry *e, bool any_addr, char *out, size_t size)
{
	char a[KP_ADDR_STRLEN];

	if (any_addr)	/* a NodePort: the service port and the node port, any address */
		snprintf(out, size, "%s/%s/%s/%d/np%d/%u", e->ns, e->name, e->port_name,
			 e->protocol, e->vip.family, e->port);
	else
		snprintf(out, size, "%s/%s/%s/%d/%s/%u", e->ns, e->name, e->port_name,
			 e->protocol, kp_addr_to_str(&e->vip, a, sizeof(a)), e->port);
}

static int cmp_ep(const void *a, const void *b)
{
	const struct kp_endpoint *x = a, *y = b;

	if (x->addr.family != y->addr.family)
		return x->addr.family - y->addr.family;
	int c = memcmp(&x->addr.v6, &y->addr.v6, x->addr.family == AF_INET6 ? 16 : 4);

	return c ? c : (int)x->port - (int)y->port;
}

/* Adds @e's endpoints to @h's (a data plane may list one frontend twice: merged). */
static int merge_eps(struct have *h, const struct kp_dump_entry *e)
{
	size_t n = h->e.n_endpoints + e->n_endpoints, m = 0;
	struct kp_endpoint *v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	if (h->e.n_endpoints)	/* (memcpy from NULL is undefined even for 0 bytes) */
		memcpy(v, h->eps, h->e.n_endpoints * sizeof(*v));
	if (e->n_endpoints)
		memcpy(v + h->e.n_endpoints, e->endpoints, e->n_endpoints * sizeof(*v));
	if (n)
		qsort(v, n, sizeof(*v), cmp_ep);
	for (size_t i = 0; i < n; i++)
		if (!m || cmp_ep(&v[m - 1], &v[i]))
			v[m++] = v[i];
	free(h->eps);
	h->eps = v;
	h->e.endpoints = v;
	h->e.n_endpoints = m;
	return 0;
}

static int collect(const struct kp_dump_entry *e, void *userdata)
{
	struct check *c = userdata;
	char key[600];
	uintptr_t i;
	struct have *h;

	key_of(e, false, key, sizeof(key));
	i = (uintptr_t)kp_map_get(c->by_key, key);
	if (i)
		return (c->err = merge_eps(&c->v[i - 1], e));
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;

		h = realloc(c->v, cap * sizeof(*h));
		if (!h)
			return (c->err = -ENOMEM);
		c->v = h;
		c->cap = cap;
	}
	h = &c->v[c->n];
	memset(h, 0, sizeof(*h));
	h->e = *e;
	h->ns = kp_strdup(e->ns);
	h->name = kp_strdup(e->name);
	h->port_name = kp_strdup(e->port_name ? e->port_name : "");
	h->detail = e->detail ? kp_strdup(e->detail) : NULL;
	h->e.ns = h->ns;
	h->e.name = h->name;
	h->e.port_name = h->port_name;
	h->e.detail = h->detail;
	h->e.dest_stats = NULL;
	h->e.n_endpoints = 0;
	c->n++;
	if (!h->ns || !h->name || !h->port_name || merge_eps(h, e) < 0 ||
	    kp_map_put(c->by_key, key, (void *)(uintptr_t)c->n, NULL) < 0)
		return (c->err = -ENOMEM);
	if (e->kind == KP_FE_NODE_PORT) {
		key_of(e, true, key, sizeof(key));
		h->next_np = (uintptr_t)kp_map_get(c->by_np, key);
		if (kp_map_put(c->by_np, key, (void *)(uintptr_t)c->n, NULL) < 0)
			return (c->err = -ENOMEM);
	}
	return 0;
}

static bool same_eps(const struct kp_endpoint *a, size_t n_a, const struct kp_endpoint *b,
		     size_t n_b)
{
	struct kp_endpoint *v;
	size_t m = 0;
	bool same;

	/* @b is sorted and unique; @a (the state's) is sorted too, but compare as sets */
	v = calloc(n_a ? n_a : 1, sizeof(*v));
	if (!v)
		return false;
	if (n_a) {
		memcpy(v, a, n_a * sizeof(*v));
		qsort(v, n_a, sizeof(*v), cmp_ep);
	}
	for (size_t i = 0; i < n_a; i++)
		if (!m || cmp_ep(&v[m - 1], &v[i]))
			v[m++] = v[i];
	same = m == n_b;
	for (size_t i = 0; same && i < m; i++)
		same = !cmp_ep(&v[i], &b[i]);
	free(v);
	return same;
}

struct walk {
	struct check *c;
	kp_check_fn fn;
	void *userdata;
	int n_diffs;
	int ret;
};

static int report(struct walk *w, enum kp_check_what what, const struct kp_dump_entry *want,
		  const struct kp_dump_entry *have)
{
	struct kp_check_diff d = { what, want, have };

	w->n_diffs++;
	return w->fn ? w->fn(&d, w->userdata) : 0;
}

static int check_port(const struct kp_svc_port *sp, void *userdata)
{
	struct walk *w = userdata;
	const struct kp_frontend *fes;
	size_t n_fes;

	fes = kp_svc_port_get_frontends(sp, &n_fes);
	for (size_t i = 0; i < n_fes && !w->ret; i++) {
		struct kp_dump_entry e;
		char key[600];
		uintptr_t h;
		bool found = false;

		kp_dump_entry_of(sp, &fes[i], &e);
		key_of(&e, false, key, sizeof(key));
		h = (uintptr_t)kp_map_get(w->c->by_key, key);
		if (h) {
			struct have *x = &w->c->v[h - 1];

			x->used = true;
			found = true;
			if (!same_eps(e.endpoints, e.n_endpoints, x->eps, x->e.n_endpoints))
				w->ret = report(w, KP_CHECK_ENDPOINTS, &e, &x->e);
		} else if (fes[i].kind == KP_FE_NODE_PORT && kp_addr_is_unspecified(&fes[i].addr)) {
			/* every local address: the NodePort entries of any address */
			key_of(&e, true, key, sizeof(key));
			for (size_t j = (uintptr_t)kp_map_get(w->c->by_np, key); j && !w->ret;
			     j = w->c->v[j - 1].next_np) {
				struct have *x = &w->c->v[j - 1];

				x->used = true;
				found = true;
				if (!same_eps(e.endpoints, e.n_endpoints, x->eps, x->e.n_endpoints))
					w->ret = report(w, KP_CHECK_ENDPOINTS, &e, &x->e);
			}
		}
		if (!found && !w->ret)
			w->ret = report(w, KP_CHECK_MISSING, &e, NULL);
	}
	return w->ret;
}

KP_EXPORT int kp_ctx_check(struct kp_ctx *ctx, kp_check_fn fn, void *userdata)
{
	struct check c = { 0 };
	struct walk w = { &c, fn, userdata, 0, 0 };
	const struct kp_state *state;
	int r;

	if (!ctx)
		return -EINVAL;
	c.by_key = kp_map_new();
	c.by_np = kp_map_new();
	if (!c.by_key || !c.by_np) {
		kp_map_free(c.by_key);
		kp_map_free(c.by_np);
		return -ENOMEM;
	}
	r = kp_ctx_dump(ctx, collect, &c);
	if (!r && c.err)
		r = c.err;
	state = kp_ctx_get_state(ctx);
	if (!r && state)
		r = kp_state_foreach(state, check_port, &w);
	for (size_t i = 0; !r && i < c.n; i++)
		if (!c.v[i].used)
			r = report(&w, KP_CHECK_EXTRA, NULL, &c.v[i].e);
	for (size_t i = 0; i < c.n; i++) {
		free(c.v[i].ns);
		free(c.v[i].name);
		free(c.v[i].port_name);
		free(c.v[i].detail);
		free(c.v[i].eps);
	}
	free(c.v);
	kp_map_free(c.by_key);
	kp_map_free(c.by_np);
	return r < 0 ? r : r ? r : w.n_diffs;
}
