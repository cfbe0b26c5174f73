// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Endpoint choice for the userspace proxy, as kube-proxy's LoadBalancerRR with two
 * changes: endpoints are taken in their sorted order (no shuffle), and one that just
 * refused a connection is passed over by new picks for US_EP_PENALTY_MS unless every
 * endpoint did, so a dead pod costs one retry, not one in every N requests.
 *
 * ClientIP affinity: a table from client address to endpoint and last use, entries
 * younger than the service's timeout win; a failed connect resets the client's entry.
 * Everything here runs under the proxy's mutex (lb_pick takes it; the control-thread
 * entry points take it too).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "us.h"

#define AFF_MAX (1u << 20)		/* clients remembered per proxy */

struct aff_node {
	struct kp_addr client;
	struct us_ep *ep;
	int64_t last_ms;
	struct aff_node *next;
};

struct us_aff {
	struct aff_node **b;
	size_t cap;			/* a power of two */
	size_t n;
};

static uint32_t addr_hash(const struct kp_addr *a)
{
	const unsigned char *p = (const unsigned char *)(a->family == AF_INET6 ?
							 (const void *)&a->v6 : (const void *)&a->v4);
	size_t len = a->family == AF_INET6 ? 16 : 4;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void client_addr(const struct sockaddr *sa, struct kp_addr *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (sa->sa_family == AF_INET6) {
		ret->family = AF_INET6;
		ret->v6 = ((const struct sockaddr_in6 *)sa)->sin6_addr;
	} else {
		ret->family = AF_INET;
		ret->v4 = ((const struct sockaddr_in *)sa)->sin_addr;
	}
}

static struct aff_node **aff_find(struct us_aff *t, const struct kp_addr *a)
{
	struct aff_node **pp = &t->b[addr_hash(a) & (t->cap - 1)];

	for (; *pp; pp = &(*pp)->next)
		if (kp_addr_equal(&(*pp)->client, a))
			return pp;
	return pp;
}

static void aff_grow(struct us_aff *t)
{
	size_t cap = t->cap * 2;
	struct aff_node **b = calloc(cap, sizeof(*b));

	if (!b)
		return;				/* stays at its size; chains get longer */
	for (size_t i = 0; i < t->cap; i++) {
		for (struct aff_node *n = t->b[i], *next; n; n = next) {
			size_t k = addr_hash(&n->client) & (cap - 1);

			next = n->next;
			n->next = b[k];
			b[k] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->cap = cap;
}

static void aff_record(struct us_proxy *px, const struct kp_addr *client, struct us_ep *ep,
		       int64_t now)
{
	struct us_aff *t = px->aff;
	struct aff_node **pp, *n;

	if (!t) {
		t = px->aff = calloc(1, sizeof(*t));
		if (!t || !(t->b = calloc(64, sizeof(*t->b)))) {
			free(t);
			px->aff = NULL;
			return;
		}
		t->cap = 64;
	}
	pp = aff_find(t, client);
	if (*pp) {
		(*pp)->ep = ep;
		(*pp)->last_ms = now;
		return;
	}
	if (t->n >= AFF_MAX || !(n = malloc(sizeof(*n))))
		return;
	*n = (struct aff_node){ .client = *client, .ep = ep, .last_ms = now };
	*pp = n;
	if (++t->n > t->cap)
		aff_grow(t);
}

/* The client's sticky endpoint if its entry is fresh and the endpoint still serves. */
static struct us_ep *aff_lookup(struct us_proxy *px, const struct kp_addr *client, int64_t now)
{
	struct aff_node **pp;

	if (!px->aff)
		return NULL;
	pp = aff_find(px->aff, client);
	if (!*pp || now - (*pp)->last_ms > (int64_t)px->affinity_ms ||
	    !atomic_load_explicit(&(*pp)->ep->live, memory_order_relaxed))
		return NULL;
	(*pp)->last_ms = now;
	return (*pp)->ep;
}

/* Drops entries that expired or whose endpoint left the set (all with @all). */
static void aff_sweep(struct us_proxy *px, int64_t now, bool all)
{
	struct us_aff *t = px->aff;

	if (!t)
		return;
	for (size_t i = 0; i < t->cap; i++) {
		for (struct aff_node **pp = &t->b[i]; *pp;) {
			struct aff_node *n = *pp;

			if (all || now - n->last_ms > (int64_t)px->affinity_ms ||
			    !atomic_load_explicit(&n->ep->live, memory_order_relaxed)) {
				*pp = n->next;
				free(n);
				t->n--;
			} else {
				pp = &n->next;
			}
		}
	}
	if (all) {
		free(t->b);
		free(t);
		px->aff = NULL;
	}
}

static bool same_ep(const struct us_ep *e, const struct kp_endpoint *k)
{
	return e->ep.port == k->port && kp_addr_equal(&e->ep.addr, &k->addr);
}

int lb_set_endpoints(struct us_proxy *px, const struct kp_endpoint *eps, size_t n)
{
	struct us_ep **set = calloc(n ? n : 1, sizeof(*set));
	struct us_ep *fresh = NULL;

	if (!set)
		return -ENOMEM;
	pthread_mutex_lock(&px->lock);
	for (size_t i = 0; i < n; i++) {
		struct us_ep *e = px->all;

		while (e && !same_ep(e, &eps[i]))
			e = e->next;
		if (!e) {
			e = calloc(1, sizeof(*e));
			if (!e)
				goto out_nomem;
			e->sa_len = us_sockaddr(&eps[i].addr, eps[i].port, &e->sa);
			e->next = fresh;
			fresh = e;
		}
		e->ep = eps[i];			/* conditions may have changed */
		set[i] = e;
	}
	for (struct us_ep *e = px->all; e; e = e->next)
		atomic_store(&e->live, false);
	while (fresh) {				/* new ones join the list */
		struct us_ep *e = fresh;

		fresh = e->next;
		e->next = px->all;
		px->all = e;
	}
	for (size_t i = 0; i < n; i++)
		atomic_store(&set[i]->live, true);
	free(px->set);
	px->set = set;
	px->n_set = n;
	if (px->rr >= n)
		px->rr = 0;
	pthread_mutex_unlock(&px->lock);
	return 0;
out_nomem:
	while (fresh) {
		struct us_ep *e = fresh;

		fresh = e->next;
		free(e);
	}
	pthread_mutex_unlock(&px->lock);
	free(set);
	return -ENOMEM;
}

struct us_ep *lb_pick(struct us_proxy *px, const struct sockaddr *client, bool reset,
		      struct us_ep *avoid, int64_t now_ms)
{
	struct us_ep *ep = NULL, *fallback = NULL;
	struct kp_addr caddr;

	client_addr(client, &caddr);
	pthread_mutex_lock(&px->lock);
	if (!px->n_set)
		goto out;
	if (px->affinity == KP_AFFINITY_CLIENT_IP && !reset)
		ep = aff_lookup(px, &caddr, now_ms);
	for (size_t k = 0; !ep && k < px->n_set; k++) {
		struct us_ep *e = px->set[(px->rr + k) % px->n_set];

		if (e == avoid && px->n_set > 1)
			continue;
		if (atomic_load_explicit(&e->failed_until, memory_order_relaxed) > now_ms) {
			if (!fallback)
				fallback = e;
			continue;
		}
		ep = e;
		px->rr = (px->rr + k + 1) % px->n_set;
	}
	if (!ep) {			/* every candidate refused lately: try one anyway */
		ep = fallback ? fallback : px->set[px->rr % px->n_set];
		px->rr = (px->rr + 1) % px->n_set;
	}
	if (px->affinity == KP_AFFINITY_CLIENT_IP)
		aff_record(px, &caddr, ep, now_ms);
	atomic_fetch_add(&ep->conns, 1);
out:
	pthread_mutex_unlock(&px->lock);
	return ep;
}

void lb_prune(struct us_proxy *px, int64_t now_ms)
{
	pthread_mutex_lock(&px->lock);
	aff_sweep(px, now_ms, false);
	for (struct us_ep **pp = &px->all; *pp;) {
		struct us_ep *e = *pp;

		if (!atomic_load(&e->live) && !atomic_load(&e->conns)) {
			*pp = e->next;
			free(e);
		} else {
			pp = &e->next;
		}
	}
	pthread_mutex_unlock(&px->lock);
}

void lb_free_all(struct us_proxy *px)
{
	aff_sweep(px, 0, true);
	while (px->all) {
		struct us_ep *e = px->all;

		px->all = e->next;
		free(e);
	}
	free(px->set);
	px->set = NULL;
	px->n_set = 0;
}

socklen_t us_sockaddr(const struct kp_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = a->v6;
		s6->sin6_port = htons(port);
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	s4->sin_family = AF_INET;
	s4->sin_addr = a->v4;
	s4->sin_port = htons(port);
	return sizeof(*s4);
}
