// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The desired state and its delta. A service's ports are computed from the Service and
 * its EndpointSlices as kube-proxy computes them: frontends per cluster IP, node address,
 * external IP and load-balancer ingress of the service's families; endpoints matched by
 * service port name and protocol, de-duplicated (a non-terminating copy wins), then split
 * into the cluster set (ready, narrowed by topology hints: to this node's when every
 * ready endpoint has node hints and one names this node, else to this zone's when every
 * one has zone hints and one names this zone; else serving-and-terminating) and the local
 * set (the same on this node's endpoints only); the traffic policies pick which set each frontend uses.
 * The delta remembers, per service port, the version the backend last programmed, so a
 * failed sync is retried and a change that reverts itself disappears.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

struct kp_svc_port {
	char *key;			/* "ns/name:port/PROTO" */
	char *ns, *name, *port_name;
	enum kp_protocol proto;
	uint16_t port, node_port, hc_node_port;
	enum kp_affinity affinity;
	uint32_t affinity_timeout;
	bool etp_local, itp_local;
	struct kp_frontend *fes;
	size_t n_fes;
	struct kp_endpoint *eps[3];	/* cluster, external, all */
	size_t n_eps[3];
	struct kp_addr *src_ranges;
	uint8_t *src_prefixes;
	size_t n_src_ranges;
};

enum { EPS_CLUSTER, EPS_EXTERNAL, EPS_ALL };

struct svc_entry {
	struct kp_svc_port **ports;	/* sorted by key */
	size_t n;
};

struct kp_state {
	struct kp_map *by_svc;		/* "ns/name" -> struct svc_entry */
	struct kp_map *by_port;		/* sp key -> struct kp_svc_port */
	size_t n_family[2];		/* service ports with an IPv4, an IPv6 frontend */
};

struct delta_ent {
	struct kp_svc_port *old;	/* the version last handed to the backend, or NULL */
};

struct kp_delta {
	struct kp_map *ents;		/* sp key -> struct delta_ent */
	const struct kp_state *state;
	bool full;
};

/* Counts @sp in (@dir 1) or out of (-1) the ports with a frontend of each family. */
static void count_families(struct kp_state *st, const struct kp_svc_port *sp, int dir)
{
	bool has[2] = { false, false };

	for (size_t i = 0; i < sp->n_fes; i++)
		has[sp->fes[i].addr.family == AF_INET6] = true;
	for (int f = 0; f < 2; f++)
		if (has[f])
			st->n_family[f] += (size_t)dir;
}

static void sp_free(struct kp_svc_port *sp)
{
	if (!sp)
		return;
	free(sp->key);
	free(sp->ns);
	free(sp->name);
	free(sp->port_name);
	free(sp->fes);
	for (int i = 0; i < 3; i++)
		free(sp->eps[i]);
	free(sp->src_ranges);
	free(sp->src_prefixes);
	free(sp);
}

struct kp_state *kp_state_new(void)
{
	struct kp_state *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->by_svc = kp_map_new();
	st->by_port = kp_map_new();
	if (!st->by_svc || !st->by_port) {
		kp_state_free(st);
		return NULL;
	}
	return st;
}

void kp_state_free(struct kp_state *st)
{
	struct kp_map_iter it = { 0 };
	void *v;

	if (!st)
		return;
	while (st->by_svc && kp_map_next(st->by_svc, &it, NULL, &v)) {
		struct svc_entry *se = v;

		for (size_t i = 0; i < se->n; i++)
			sp_free(se->ports[i]);
		free(se->ports);
		free(se);
	}
	kp_map_free(st->by_svc);
	kp_map_free(st->by_port);
	free(st);
}

/* ---- computing one service ---- */

struct cand {
	struct kp_endpoint ep;
	char *const *zones;		/* hints.forZones */
	size_t n_zones;
	char *const *nodes;		/* hints.forNodes */
	size_t n_nodes;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int r = kp_addr_cmp(&x->ep.addr, &y->ep.addr);

	if (r)
		return r;
	if (x->ep.port != y->ep.port)
		return x->ep.port < y->ep.port ? -1 : 1;
	/* among duplicates, a non-terminating one sorts first and wins */
	return (int)x->ep.terminating - (int)y->ep.terminating;
}

static bool has_name(char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

enum topo { TOPO_NONE, TOPO_ZONE, TOPO_NODE };

/*
 * kube-proxy's topology mode from the ready endpoints' hints: this node's when every one
 * has node hints and one is hinted for this node (PreferSameNode), else this zone's when
 * every one has zone hints and one is hinted for this zone, else none.
 */
static enum topo topology_of(const struct cand *c, size_t n, const struct kp_node_info *node)
{
	bool ready = false, nodes_all = true, node_hit = false, zones_all = true, zone_hit = false;

	for (size_t i = 0; i < n; i++) {
		if (!c[i].ep.ready)
			continue;
		ready = true;
		nodes_all &= c[i].n_nodes > 0;
		node_hit |= has_name(c[i].nodes, c[i].n_nodes, node->name);
		zones_all &= c[i].n_zones > 0;
		zone_hit |= has_name(c[i].zones, c[i].n_zones, node->zone);
	}
	if (ready && nodes_all && node_hit)
		return TOPO_NODE;
	return ready && zones_all && zone_hit ? TOPO_ZONE : TOPO_NONE;
}

static bool in_topology(const struct cand *c, enum topo t, const struct kp_node_info *node)
{
	return t == TOPO_NONE || (t == TOPO_NODE && has_name(c->nodes, c->n_nodes, node->name)) ||
	       (t == TOPO_ZONE && has_name(c->zones, c->n_zones, node->zone));
}

static bool family_of_service(const struct kp_svc_obj *s, int family)
{
	for (size_t i = 0; i < s->n_cluster_ips; i++)
		if (s->cluster_ips[i].family == family)
			return true;
	return false;
}

/* Gathers, sorts and de-duplicates the endpoints of one service port. */
static struct cand *gather(const struct kp_svc_obj *svc, const struct kp_svc_obj_port *p,
			   const struct kp_obj *const *objs, size_t n_objs,
			   const struct kp_node_info *node, size_t *ret_n)
{
	struct cand *c = NULL;
	size_t n = 0, cap = 0, out = 0;

	for (size_t o = 0; o < n_objs; o++) {
		for (size_t s = 0; s < objs[o]->n_slices; s++) {
			const struct kp_slice_obj *sl = &objs[o]->slices[s];
			const struct kp_slice_obj_port *sp = NULL;

			if (!sl->family || !family_of_service(svc, sl->family))
				continue;
			for (size_t i = 0; i < sl->n_ports && !sp; i++)
				if (sl->ports[i].proto == p->proto &&
				    strcmp(sl->ports[i].name, p->name) == 0)
					sp = &sl->ports[i];
			if (!sp)
				continue;
			if (n + sl->n_eps > cap) {
				size_t ncap = (n + sl->n_eps) * 2;
				struct cand *nc = realloc(c, ncap * sizeof(*c));

				if (!nc) {
					free(c);
					return NULL;
				}
				c = nc;
				cap = ncap;
			}
			for (size_t e = 0; e < sl->n_eps; e++) {
				const struct kp_slice_obj_ep *ep = &sl->eps[e];

				c[n++] = (struct cand){
					.ep = { .addr = ep->addr, .port = sp->port,
						.ready = ep->ready, .serving = ep->serving,
						.terminating = ep->terminating,
						.local = node->name && ep->node_name &&
							 strcmp(node->name, ep->node_name) == 0 },
					.zones = ep->hint_zones,
					.n_zones = ep->n_hint_zones,
					.nodes = ep->hint_nodes,
					.n_nodes = ep->n_hint_nodes,
				};
			}
		}
	}
	if (!n) {
		free(c);
		*ret_n = 0;
		return calloc(1, sizeof(*c));
	}
	qsort(c, n, sizeof(*c), cand_cmp);
	for (size_t i = 0; i < n; i++)
		if (!out || kp_addr_cmp(&c[i].ep.addr, &c[out - 1].ep.addr) ||
		    c[i].ep.port != c[out - 1].ep.port)
			c[out++] = c[i];
	*ret_n = out;
	return c;
}

/* Appends to @dst the endpoints of [@c, @c + @n) that one policy selects: the local ones
 * (@node NULL: cluster-wide, narrowed by topology hints), ready ones while any is, else
 * serving and terminating ones. */
static size_t select_eps(const struct cand *c, size_t n, bool local_only,
			 const struct kp_node_info *node, struct kp_endpoint *dst)
{
	enum topo t = local_only ? TOPO_NONE : topology_of(c, n, node);
	size_t k = 0, n_ready = 0;

	for (size_t i = 0; i < n; i++)
		n_ready += c[i].ep.ready && (!local_only || c[i].ep.local);
	if (n_ready) {
		for (size_t i = 0; i < n; i++)
			if (c[i].ep.ready && (!local_only || c[i].ep.local) &&
			    in_topology(&c[i], t, node))
				dst[k++] = c[i].ep;
		return k;
	}
	for (size_t i = 0; i < n; i++)	/* none ready: serving and terminating ones */
		if (c[i].ep.serving && c[i].ep.terminating && (!local_only || c[i].ep.local))
			dst[k++] = c[i].ep;
	return k;
}

static int compute_eps(struct kp_svc_port *sp, const struct cand *c, size_t n,
		       const struct kp_node_info *node)
{
	struct kp_endpoint *cluster = calloc(n ? n : 1, sizeof(*cluster));
	struct kp_endpoint *local = calloc(n ? n : 1, sizeof(*local));
	size_t n_cluster = 0, n_local = 0, split = 0;

	if (!cluster || !local)
		goto out_nomem;
	while (split < n && c[split].ep.addr.family == AF_INET)
		split++;
	/* each family on its own, as kube-proxy runs one proxier per family */
	n_cluster = select_eps(c, split, false, node, cluster);
	n_cluster += select_eps(c + split, n - split, false, node, cluster + n_cluster);
	n_local = select_eps(c, split, true, node, local);
	n_local += select_eps(c + split, n - split, true, node, local + n_local);

	for (int set = EPS_CLUSTER; set <= EPS_EXTERNAL; set++) {
		bool use_local = set == EPS_CLUSTER ? sp->itp_local : sp->etp_local;
		const struct kp_endpoint *src = use_local ? local : cluster;
		size_t cnt = use_local ? n_local : n_cluster;

		sp->eps[set] = malloc((cnt ? cnt : 1) * sizeof(*src));
		if (!sp->eps[set])
			goto out_nomem;
		memcpy(sp->eps[set], src, cnt * sizeof(*src));
		sp->n_eps[set] = cnt;
	}
	/* the union of two sorted subsets of c[] is the subset of c[] in either */
	sp->eps[EPS_ALL] = malloc((n ? n : 1) * sizeof(*cluster));
	if (!sp->eps[EPS_ALL])
		goto out_nomem;
	for (size_t i = 0, a = 0, b = 0; i < n; i++) {
		const struct kp_endpoint *x = &c[i].ep;
		bool in_a = false, in_b = false;

		if (a < sp->n_eps[0] && kp_addr_equal(&sp->eps[0][a].addr, &x->addr) &&
		    sp->eps[0][a].port == x->port)
			in_a = true, a++;
		if (b < sp->n_eps[1] && kp_addr_equal(&sp->eps[1][b].addr, &x->addr) &&
		    sp->eps[1][b].port == x->port)
			in_b = true, b++;
		if (in_a || in_b)
			sp->eps[EPS_ALL][sp->n_eps[EPS_ALL]++] = *x;
	}
	free(cluster);
	free(local);
	return 0;
out_nomem:
	free(cluster);
	free(local);
	return -ENOMEM;
}

static int add_fe(struct kp_svc_port *sp, size_t cap, enum kp_frontend_kind kind,
		  const struct kp_addr *addr, uint16_t port)
{
	assert(sp->n_fes < cap);
	(void)cap;
	sp->fes[sp->n_fes++] = (struct kp_frontend){
		.kind = kind, .addr = *addr, .port = port, .external = kind != KP_FE_CLUSTER_IP,
	};
	return 0;
}

static int compute_fes(struct kp_svc_port *sp, const struct kp_svc_obj *s,
		       const struct kp_svc_obj_port *p, const struct kp_node_info *node)
{
	size_t cap = s->n_cluster_ips + s->n_external_ips + s->n_lb_ips +
		     (p->node_port ? node->n_nodeport_addrs + 2 : 0);
	static const struct kp_addr any[2] = { { .family = AF_INET }, { .family = AF_INET6 } };

	sp->fes = calloc(cap ? cap : 1, sizeof(*sp->fes));
	if (!sp->fes)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_cluster_ips; i++)
		add_fe(sp, cap, KP_FE_CLUSTER_IP, &s->cluster_ips[i], p->port);
	/* every local address of a family: one frontend on its unspecified address */
	for (int f = 0; p->node_port && f < 2; f++)
		if (node->nodeport_any_local && node->nodeport_any_local[f] &&
		    family_of_service(s, any[f].family))
			add_fe(sp, cap, KP_FE_NODE_PORT, &any[f], p->node_port);
	for (size_t i = 0; p->node_port && i < node->n_nodeport_addrs; i++) {
		const struct kp_addr *a = &node->nodeport_addrs[i];

		if (family_of_service(s, a->family) &&
		    !(node->nodeport_any_local && node->nodeport_any_local[a->family == AF_INET6]))
			add_fe(sp, cap, KP_FE_NODE_PORT, a, p->node_port);
	}
	for (size_t i = 0; i < s->n_external_ips; i++)
		if (family_of_service(s, s->external_ips[i].family))
			add_fe(sp, cap, KP_FE_EXTERNAL_IP, &s->external_ips[i], p->port);
	for (size_t i = 0; i < s->n_lb_ips; i++)
		if (family_of_service(s, s->lb_ips[i].family))
			add_fe(sp, cap, KP_FE_LOAD_BALANCER, &s->lb_ips[i], p->port);
	return 0;
}

static struct kp_svc_port *compute_port(const struct kp_obj *svc, const struct kp_svc_obj_port *p,
					const struct kp_obj *const *slices, size_t n_slices,
					const struct kp_node_info *node)
{
	const struct kp_svc_obj *s = &svc->svc;
	struct kp_svc_port *sp = calloc(1, sizeof(*sp));
	struct cand *c = NULL;
	size_t n_c;

	if (!sp)
		return NULL;
	sp->key = kp_asprintf("%s/%s:%s/%s", svc->ns, svc->name, p->name,
			      kp_protocol_name(p->proto));
	sp->ns = kp_strdup(svc->ns);
	sp->name = kp_strdup(svc->name);
	sp->port_name = kp_strdup(p->name);
	if (!sp->key || !sp->ns || !sp->name || !sp->port_name)
		goto out_free;
	sp->proto = p->proto;
	sp->port = p->port;
	sp->node_port = p->node_port;
	sp->hc_node_port = s->etp_local ? s->hc_node_port : 0;
	sp->affinity = s->affinity;
	sp->affinity_timeout = s->affinity == KP_AFFINITY_CLIENT_IP ? s->affinity_timeout : 0;
	sp->etp_local = s->etp_local;
	sp->itp_local = s->itp_local;
	if (s->n_src_ranges) {
		sp->src_ranges = malloc(s->n_src_ranges * sizeof(*sp->src_ranges));
		sp->src_prefixes = malloc(s->n_src_ranges);
		if (!sp->src_ranges || !sp->src_prefixes)
			goto out_free;
		memcpy(sp->src_ranges, s->src_ranges, s->n_src_ranges * sizeof(*sp->src_ranges));
		memcpy(sp->src_prefixes, s->src_prefixes, s->n_src_ranges);
		sp->n_src_ranges = s->n_src_ranges;
	}
	if (compute_fes(sp, s, p, node) < 0)
		goto out_free;
	c = gather(s, p, slices, n_slices, node, &n_c);
	if (!c || compute_eps(sp, c, n_c, node) < 0)
		goto out_free;
	free(c);
	return sp;
out_free:
	free(c);
	sp_free(sp);
	return NULL;
}

static int sp_cmp(const void *a, const void *b)
{
	return strcmp((*(struct kp_svc_port *const *)a)->key, (*(struct kp_svc_port *const *)b)->key);
}

/* ---- the delta ---- */

struct kp_delta *kp_delta_new(void)
{
	struct kp_delta *d = calloc(1, sizeof(*d));

	if (!d || !(d->ents = kp_map_new())) {
		free(d);
		return NULL;
	}
	return d;
}

void kp_delta_clear(struct kp_delta *d)
{
	struct kp_map_iter it = { 0 };
	const char *key;
	void *v;

	while (kp_map_next(d->ents, &it, &key, &v)) {
		struct delta_ent *e = v;

		kp_map_del(d->ents, key);
		sp_free(e->old);
		free(e);
	}
	kp_map_compact(d->ents);	/* after a full sync's 10k entries, walks stay short */
	d->full = false;
}

void kp_delta_free(struct kp_delta *d)
{
	if (!d)
		return;
	kp_delta_clear(d);
	kp_map_free(d->ents);
	free(d);
}

void kp_delta_set_full(struct kp_delta *d, bool full)
{
	d->full = full;
}

void kp_delta_bind(struct kp_delta *d, const struct kp_state *st)
{
	d->state = st;
}

/* @old leaves the state: the delta keeps it if it is what the backend has programmed. */
static int delta_note(struct kp_delta *d, const char *key, struct kp_svc_port *old)
{
	struct delta_ent *e = kp_map_get(d->ents, key);

	if (e) {		/* the backend has e->old; @old was never programmed */
		sp_free(old);
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e || kp_map_put(d->ents, key, e, NULL) < 0) {
		free(e);
		sp_free(old);
		return -ENOMEM;
	}
	e->old = old;
	return 0;
}

/* Drops the entry for @key if the state is back to what the backend has. */
static void delta_settle(struct kp_delta *d, const struct kp_state *st, const char *key)
{
	struct delta_ent *e = kp_map_get(d->ents, key);
	const struct kp_svc_port *cur = kp_map_get(st->by_port, key);

	if (!e)
		return;
	if ((!e->old && !cur) || (e->old && cur && kp_svc_port_equal(e->old, cur))) {
		kp_map_del(d->ents, key);
		sp_free(e->old);
		free(e);
	}
}

/* ---- updating the state ---- */

static struct kp_svc_port *find_port(struct kp_svc_port **v, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && strcmp(v[i]->key, key) == 0)
			return v[i];
	return NULL;
}

int kp_state_update_service(struct kp_state *st, struct kp_delta *d, const char *svc_key,
			    const struct kp_obj *svc, const struct kp_obj *const *slices,
			    size_t n_slices, const struct kp_node_info *node)
{
	struct svc_entry *old = kp_map_get(st->by_svc, svc_key), *ne = NULL;
	size_t n_new = svc && !svc->svc.skip ? svc->svc.n_ports : 0;
	int r = 0;

	if (n_new) {
		ne = calloc(1, sizeof(*ne));
		if (!ne || !(ne->ports = calloc(n_new, sizeof(*ne->ports))))
			goto out_nomem;
		for (; ne->n < n_new; ne->n++) {
			ne->ports[ne->n] = compute_port(svc, &svc->svc.ports[ne->n], slices,
							n_slices, node);
			if (!ne->ports[ne->n])
				goto out_nomem;
		}
		qsort(ne->ports, ne->n, sizeof(*ne->ports), sp_cmp);
	}
	/* nothing can fail from here on but the bookkeeping maps' allocations */
	for (size_t i = 0; old && i < old->n; i++) {
		struct kp_svc_port *o = old->ports[i];
		struct kp_svc_port *nw = ne ? find_port(ne->ports, ne->n, o->key) : NULL;

		if (nw && kp_svc_port_equal(o, nw)) {
			/* unchanged: keep the old object, so pointers stay valid */
			for (size_t j = 0; j < ne->n; j++)
				if (ne->ports[j] == nw)
					ne->ports[j] = o;
			sp_free(nw);
			continue;
		}
		kp_map_del(st->by_port, o->key);
		count_families(st, o, -1);
		if (nw) {
			r |= kp_map_put(st->by_port, nw->key, nw, NULL);
			count_families(st, nw, 1);
		}
		if (kp_map_get(d->ents, o->key)) {
			/* the backend has the entry's version; o was never programmed */
			if (!nw)
				delta_settle(d, st, o->key);
			sp_free(o);
		} else {
			r |= delta_note(d, o->key, o);
		}
	}
	for (size_t i = 0; ne && i < ne->n; i++) {
		struct kp_svc_port *nw = ne->ports[i];

		if (kp_map_get(st->by_port, nw->key) != nw) {		/* added */
			r |= kp_map_put(st->by_port, nw->key, nw, NULL);
			count_families(st, nw, 1);
			if (!kp_map_get(d->ents, nw->key))
				r |= delta_note(d, nw->key, NULL);
		}
		delta_settle(d, st, nw->key);
	}
	if (old) {
		kp_map_del(st->by_svc, svc_key);
		free(old->ports);
		free(old);
	}
	if (ne)
		r |= kp_map_put(st->by_svc, svc_key, ne, NULL);
	return r ? -ENOMEM : 0;
out_nomem:
	for (size_t i = 0; ne && i < ne->n; i++)
		sp_free(ne->ports[i]);
	if (ne)
		free(ne->ports);
	free(ne);
	return -ENOMEM;
}

/* ---- public getters ---- */

KP_EXPORT size_t kp_state_get_size(const struct kp_state *st)
{
	return st ? kp_map_size(st->by_port) : 0;
}

KP_EXPORT size_t kp_state_count_family(const struct kp_state *st, int family)
{
	if (!st || (family != AF_INET && family != AF_INET6))
		return 0;
	return st->n_family[family == AF_INET6];
}

KP_EXPORT int kp_state_foreach(const struct kp_state *st,
			       int (*fn)(const struct kp_svc_port *sp, void *userdata),
			       void *userdata)
{
	const char **keys;
	size_t n;
	int r = 0;

	if (!st || !fn)
		return -EINVAL;
	keys = kp_map_sorted_keys(st->by_svc, &n);
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n && !r; i++) {
		const struct svc_entry *se = kp_map_get(st->by_svc, keys[i]);

		for (size_t j = 0; j < se->n && !r; j++)
			r = fn(se->ports[j], userdata);
	}
	free(keys);
	return r;
}

KP_EXPORT const struct kp_svc_port *kp_state_lookup(const struct kp_state *st, const char *ns,
						    const char *name, const char *port_name,
						    enum kp_protocol proto)
{
	char *key;
	const struct kp_svc_port *sp;

	if (!st || !ns || !name || !port_name)
		return NULL;
	key = kp_asprintf("%s/%s:%s/%s", ns, name, port_name, kp_protocol_name(proto));
	if (!key)
		return NULL;
	sp = kp_map_get(st->by_port, key);
	free(key);
	return sp;
}

KP_EXPORT const char *kp_svc_port_get_namespace(const struct kp_svc_port *sp) { return sp->ns; }
KP_EXPORT const char *kp_svc_port_get_name(const struct kp_svc_port *sp) { return sp->name; }
KP_EXPORT const char *kp_svc_port_get_port_name(const struct kp_svc_port *sp)
{
	return sp->port_name;
}
KP_EXPORT enum kp_protocol kp_svc_port_get_protocol(const struct kp_svc_port *sp)
{
	return sp->proto;
}
KP_EXPORT uint16_t kp_svc_port_get_port(const struct kp_svc_port *sp) { return sp->port; }
KP_EXPORT uint16_t kp_svc_port_get_node_port(const struct kp_svc_port *sp)
{
	return sp->node_port;
}
KP_EXPORT uint16_t kp_svc_port_get_health_check_node_port(const struct kp_svc_port *sp)
{
	return sp->hc_node_port;
}
KP_EXPORT enum kp_affinity kp_svc_port_get_affinity(const struct kp_svc_port *sp)
{
	return sp->affinity;
}
KP_EXPORT uint32_t kp_svc_port_get_affinity_timeout(const struct kp_svc_port *sp)
{
	return sp->affinity_timeout;
}
KP_EXPORT bool kp_svc_port_external_local(const struct kp_svc_port *sp) { return sp->etp_local; }
KP_EXPORT bool kp_svc_port_internal_local(const struct kp_svc_port *sp) { return sp->itp_local; }

KP_EXPORT const struct kp_frontend *kp_svc_port_get_frontends(const struct kp_svc_port *sp,
							      size_t *ret_n)
{
	*ret_n = sp->n_fes;
	return sp->fes;
}

static const struct kp_endpoint *eps_family(const struct kp_endpoint *v, size_t n, int family,
					    size_t *ret_n)
{
	size_t split = 0;

	while (split < n && v[split].addr.family == AF_INET)
		split++;
	if (family == AF_INET) {
		*ret_n = split;
		return v;
	}
	if (family == AF_INET6) {
		*ret_n = n - split;
		return v + split;
	}
	*ret_n = n;
	return v;
}

KP_EXPORT const struct kp_endpoint *kp_svc_port_get_endpoints(const struct kp_svc_port *sp,
							      int family, bool external,
							      size_t *ret_n)
{
	int set = external ? EPS_EXTERNAL : EPS_CLUSTER;

	return eps_family(sp->eps[set], sp->n_eps[set], family, ret_n);
}

KP_EXPORT const struct kp_endpoint *kp_svc_port_get_all_endpoints(const struct kp_svc_port *sp,
								  size_t *ret_n)
{
	*ret_n = sp->n_eps[EPS_ALL];
	return sp->eps[EPS_ALL];
}

KP_EXPORT const struct kp_addr *kp_svc_port_get_source_ranges(const struct kp_svc_port *sp,
							      const uint8_t **ret_prefixes,
							      size_t *ret_n)
{
	*ret_prefixes = sp->src_prefixes;
	*ret_n = sp->n_src_ranges;
	return sp->src_ranges;
}

static bool eps_equal(const struct kp_endpoint *a, const struct kp_endpoint *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!kp_addr_equal(&a[i].addr, &b[i].addr) || a[i].port != b[i].port ||
		    a[i].ready != b[i].ready || a[i].serving != b[i].serving ||
		    a[i].terminating != b[i].terminating || a[i].local != b[i].local)
			return false;
	return true;
}

KP_EXPORT bool kp_svc_port_equal(const struct kp_svc_port *a, const struct kp_svc_port *b)
{
	if (a == b)
		return true;
	if (!a || !b || strcmp(a->key, b->key) || a->port != b->port ||
	    a->node_port != b->node_port || a->hc_node_port != b->hc_node_port ||
	    a->affinity != b->affinity || a->affinity_timeout != b->affinity_timeout ||
	    a->etp_local != b->etp_local || a->itp_local != b->itp_local ||
	    a->n_fes != b->n_fes || a->n_src_ranges != b->n_src_ranges)
		return false;
	for (size_t i = 0; i < a->n_fes; i++)
		if (a->fes[i].kind != b->fes[i].kind || a->fes[i].port != b->fes[i].port ||
		    a->fes[i].external != b->fes[i].external ||
		    !kp_addr_equal(&a->fes[i].addr, &b->fes[i].addr))
			return false;
	for (size_t i = 0; i < a->n_src_ranges; i++)
		if (!kp_addr_equal(&a->src_ranges[i], &b->src_ranges[i]) ||
		    a->src_prefixes[i] != b->src_prefixes[i])
			return false;
	for (int s = 0; s < 3; s++)
		if (a->n_eps[s] != b->n_eps[s] || !eps_equal(a->eps[s], b->eps[s], a->n_eps[s]))
			return false;
	return true;
}

KP_EXPORT bool kp_delta_is_full(const struct kp_delta *d)
{
	return d && d->full;
}

KP_EXPORT size_t kp_delta_get_size(const struct kp_delta *d)
{
	return d ? kp_map_size(d->ents) : 0;
}

struct full_walk {
	const struct kp_delta *d;
	int (*fn)(const struct kp_svc_port *, const struct kp_svc_port *, void *);
	void *userdata;
};

static int full_walk_one(const struct kp_svc_port *sp, void *userdata)
{
	struct full_walk *w = userdata;
	const struct delta_ent *e = kp_map_get(w->d->ents, sp->key);

	return w->fn(e ? e->old : sp, sp, w->userdata);
}

KP_EXPORT int kp_delta_foreach(const struct kp_delta *d,
			       int (*fn)(const struct kp_svc_port *old,
					 const struct kp_svc_port *new_sp, void *userdata),
			       void *userdata)
{
	const char **keys;
	size_t n;
	int r = 0;

	if (!d || !fn)
		return -EINVAL;
	keys = kp_map_sorted_keys(d->ents, &n);
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n && !r; i++) {
		const struct delta_ent *e = kp_map_get(d->ents, keys[i]);
		const struct kp_svc_port *cur = d->state ? kp_map_get(d->state->by_port, keys[i]) :
							   NULL;

		if (!cur || !d->full)	/* a full walk reaches current ports below */
			r = fn(e->old, cur, userdata);
	}
	free(keys);
	if (!r && d->full && d->state) {
		struct full_walk w = { .d = d, .fn = fn, .userdata = userdata };

		r = kp_state_foreach(d->state, full_walk_one, &w);
	}
	return r;
}
