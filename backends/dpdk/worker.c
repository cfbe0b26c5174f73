// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What a worker's two packet paths (fastpath.c, fastpath6.c) share, and its life: handing
 * packets to the worker that owns their flow, the flow tables of both families (a new
 * flow's keys entered, a flow freed, the ageing sweep), the masquerading ports of this
 * worker, ClientIP affinity shared by the workers, and the making and freeing of workers,
 * their tables, the mbuf pool and the rings between workers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "worker.h"

const struct dp_svc dp_gone = { .name = "(deleted)" };

static void tx_error(struct rte_mbuf **pkts, uint16_t unsent, void *userdata)
{
	struct dp_worker *w = userdata;

	w->st.drops[DROP_TX] += unsent;
	rte_pktmbuf_free_bulk(pkts, unsent);
}


/* ---- handing packets to the worker that owns their flow ---- */

void dp_hand_flush(struct dp_worker *w, unsigned to)
{
	unsigned n = w->n_out[to], sent;

	if (!n)
		return;
	sent = rte_ring_sp_enqueue_burst(w->dp->ring[w->idx][to], (void **)w->out[to], n, NULL);
	if (sent < n) {
		w->st.drops[DROP_RING] += n - sent;
		rte_pktmbuf_free_bulk(w->out[to] + sent, n - sent);
	}
	w->n_out[to] = 0;
}

/* Queues @m, received on port index @pi, for worker @to (the port index rides in
 * m->port, which nothing after the receive reads). */
void dp_hand(struct dp_worker *w, unsigned to, unsigned pi, struct rte_mbuf *m)
{
	m->port = (uint16_t)pi;
	w->out[to][w->n_out[to]++] = m;
	if (w->n_out[to] == DP_BURST)
		dp_hand_flush(w, to);
}


void dp_flow_free(struct dp_worker *w, struct flow_table *t, uint32_t idx, const void *fkey,
		  const void *rkey, struct flow_meta *f)
{
	rte_hash_del_key(t->hash, fkey);
	rte_hash_del_key(t->hash, rkey);
	w->st.svc[f->svc_id].flows_active--;
	w->st.flows_active--;
	w->st.flows_expired++;
	f->state = ST_FREE;
	t->free_idx[t->n_free++] = idx;
}


/* ---- ClientIP affinity, shared by the workers ---- */

/* Copies entry @a into @out; false when a writer was in it meanwhile (then: no entry). */
static inline bool aff_read(const struct dp_aff *a, struct dp_aff *out)
{
	uint32_t seq = __atomic_load_n(&a->seq, __ATOMIC_ACQUIRE);

	if (seq & 1)
		return false;
	out->client = __atomic_load_n(&a->client, __ATOMIC_RELAXED);
	out->svc_id = __atomic_load_n(&a->svc_id, __ATOMIC_RELAXED);
	out->ep = __atomic_load_n(&a->ep, __ATOMIC_RELAXED);
	out->until = __atomic_load_n(&a->until, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&a->seq, __ATOMIC_RELAXED) == seq;
}

/* Writes entry @a, unless another worker is writing it (then this write is skipped: the
 * other one is recording the same client's choice, or evicting it). Never waits. */
static inline void aff_write(struct dp_aff *a, const struct dp_aff *v)
{
	uint32_t seq = __atomic_load_n(&a->seq, __ATOMIC_RELAXED);

	if ((seq & 1) || !__atomic_compare_exchange_n(&a->seq, &seq, seq + 1, false,
						      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	__atomic_store_n(&a->client, v->client, __ATOMIC_RELAXED);
	__atomic_store_n(&a->svc_id, v->svc_id, __ATOMIC_RELAXED);
	__atomic_store_n(&a->ep, v->ep, __ATOMIC_RELAXED);
	__atomic_store_n(&a->until, v->until, __ATOMIC_RELAXED);
	__atomic_store_n(&a->seq, seq + 2, __ATOMIC_RELEASE);
}

static inline struct dp_aff *aff_slot(struct dp_worker *w, const struct dp_svc *s, uint32_t client)
{
	return &w->dp->aff[rte_hash_crc_4byte(client, s->id) & (DP_AFF_SLOTS - 1)];
}

int dp_aff_get(struct dp_worker *w, const struct dp_svc *s, uint32_t client)
{
	struct dp_aff *a = aff_slot(w, s, client), cur;

	if (!aff_read(a, &cur) || cur.client != client || cur.svc_id != s->id ||
	    cur.until <= w->now)
		return -1;
	for (uint16_t i = 0; i < s->n_eps; i++)	/* still an endpoint? */
		if (dp_svc_ep_name(s, i) == cur.ep) {
			cur.until = w->now + (uint64_t)s->affinity_s * w->dp->tsc_hz;
			aff_write(a, &cur);
			return i;
		}
	return -1;
}

void dp_aff_put(struct dp_worker *w, const struct dp_svc *s, uint32_t client, uint32_t ep_name)
{
	/* the client's entry (a collision evicts the older one) */
	aff_write(aff_slot(w, s, client), &(struct dp_aff){
			  .client = client, .svc_id = s->id, .ep = ep_name,
			  .until = w->now + (uint64_t)s->affinity_s * w->dp->tsc_hz });
}


uint16_t dp_snat_port(struct dp_worker *w, const struct rte_hash *fes, void *key, void *port)
{
	uint16_t v = 0;

	/* DP_SNAT_LO + idx + i * n_workers, so that a reply to it is known to be this
	 * worker's (dp_owner); a port that is a frontend on the address is passed over (its
	 * replies would look like new requests) */
	for (unsigned tries = 0; tries < 65536 - DP_SNAT_LO; tries++) {
		uint32_t p = DP_SNAT_LO + w->idx + (uint32_t)w->snat_next * w->dp->n_workers;

		if (p > 65535) {
			w->snat_next = 0;
			p = DP_SNAT_LO + w->idx;
		}
		w->snat_next++;
		v = rte_cpu_to_be_16((uint16_t)p);
		st16(port, v);
		if (rte_hash_lookup(fes, key) < 0)
			break;
	}
	return v;
}

int dp_flow_insert(struct dp_worker *w, struct flow_table *t, uint32_t idx, const void *fkey,
		   const void *rkey, uint16_t svc_id)
{
	int r = rte_hash_add_key_data(t->hash, fkey, (void *)(uintptr_t)((uint64_t)idx << 1));

	if (r == 0)
		r = rte_hash_add_key_data(t->hash, rkey,
					  (void *)(uintptr_t)(((uint64_t)idx << 1) | DIR_REV));
	if (r) {
		rte_hash_del_key(t->hash, fkey);
		t->free_idx[t->n_free++] = idx;
		return r;
	}
	w->st.flows_created++;
	w->st.flows_active++;
	w->st.svc[svc_id].flows_created++;
	w->st.svc[svc_id].flows_active++;
	return 0;
}


void dp_sweep(struct dp_worker *w, struct flow_table *t, size_t size, size_t key_size,
	      bool (*udp_stale)(const struct dp_gen *g, const void *slot))
{
	const struct dp_gen *g = atomic_load_explicit(&w->dp->gen, memory_order_acquire);
	const struct dp *dp = w->dp;
	unsigned n = t->n_free < dp->max_flows / 16 ? SWEEP_FAST : SWEEP;

	for (unsigned i = 0; i < n; i++) {
		uint32_t idx = t->sweep++;
		char *slot;
		struct flow_meta *f;

		if (t->sweep >= dp->max_flows)
			t->sweep = 0;
		if (idx >= dp->max_flows)
			idx = 0;
		/* a slot is the two keys, then the meta */
		slot = (char *)t->slot + (size_t)idx * size;
		f = (struct flow_meta *)(slot + 2 * key_size);
		if (f->state != ST_FREE && (w->now - f->last > flow_ttl(dp, f) ||
					    (f->state == ST_UDP && g && udp_stale(g, slot))))
			dp_flow_free(w, t, idx, slot, slot + key_size, f);
	}
}


void dp_worker_set_now(struct dp_worker *w, uint64_t tsc)
{
	w->now = tsc;
}


const struct dp_stats *dp_worker_stats(const struct dp_worker *w)
{
	return &w->st;
}


struct rte_mempool *dp_pool_new(const char *name, unsigned n)
{
	struct rte_pktmbuf_pool_private priv = { .mbuf_data_room_size = RTE_MBUF_DEFAULT_BUF_SIZE };
	unsigned elt = sizeof(struct rte_mbuf) + RTE_MBUF_DEFAULT_BUF_SIZE;
	struct rte_mempool *mp;

	mp = rte_mempool_create_empty(name, n, elt, 256, sizeof(priv), (int)rte_socket_id(),
				      RTE_MEMPOOL_F_NO_IOVA_CONTIG);
	if (!mp)
		return NULL;
	if (rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL) < 0)
		goto fail;
	rte_pktmbuf_pool_init(mp, &priv);
	if (rte_mempool_populate_default(mp) < 0)
		goto fail;
	rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
	return mp;
fail:
	rte_mempool_free(mp);
	return NULL;
}

int dp_shared_init(struct dp *dp)
{
	char name[RTE_RING_NAMESIZE];

	dp->aff = rte_zmalloc("kp_aff", DP_AFF_SLOTS * sizeof(*dp->aff), RTE_CACHE_LINE_SIZE);
	dp->rr = rte_zmalloc("kp_rr", DP_MAX_SERVICES * sizeof(*dp->rr), RTE_CACHE_LINE_SIZE);
	if (!dp->aff || !dp->rr)
		return -ENOMEM;
	for (unsigned from = 0; dp->n_workers > 1 && from < dp->n_workers; from++)
		for (unsigned to = 0; to < dp->n_workers; to++) {
			if (from == to)
				continue;
			snprintf(name, sizeof(name), "kp_hand_%u_%u", (uint8_t)from, (uint8_t)to);
			dp->ring[from][to] = rte_ring_create(name, DP_RING_SIZE, (int)rte_socket_id(),
							     RING_F_SP_ENQ | RING_F_SC_DEQ);
			if (!dp->ring[from][to])
				return -ENOMEM;
		}
	return 0;
}

void dp_shared_free(struct dp *dp)
{
	for (unsigned from = 0; from < DP_MAX_WORKERS; from++)
		for (unsigned to = 0; to < DP_MAX_WORKERS; to++) {
			struct rte_ring *r = dp->ring[from][to];
			struct rte_mbuf *m;

			if (!r)
				continue;
			while (rte_ring_sc_dequeue(r, (void **)&m) == 0)
				rte_pktmbuf_free(m);
			rte_ring_free(r);
			dp->ring[from][to] = NULL;
		}
	rte_free(dp->aff);
	rte_free(dp->rr);
	dp->aff = NULL;
	dp->rr = NULL;
}

int dp_table_new(struct dp_worker *w, struct flow_table *t, const char *name, size_t slot_size,
		 size_t key_size)
{
	const struct dp *dp = w->dp;
	struct rte_hash_parameters hp = { 0 };
	char hname[RTE_HASH_NAMESIZE];
	/* two entries per flow, and room: a cuckoo table this full takes no more keys
	 * (2^21 entries held 1,014,952 of 2^20 flows); the extendable buckets take the rest */
	uint32_t entries = dp->max_flows * 2 + dp->max_flows / 2;

	snprintf(hname, sizeof(hname), "%s_%u", name, w->idx);
	hp.name = hname;
	hp.entries = entries < 1024 ? 1024 : entries;
	hp.key_len = (uint32_t)key_size;
	hp.hash_func = rte_hash_crc;
	hp.socket_id = (int)rte_socket_id();
	hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
	t->hash = rte_hash_create(&hp);
	t->slot = rte_zmalloc(name, (size_t)dp->max_flows * slot_size, 0);
	t->free_idx = rte_malloc(name, (size_t)dp->max_flows * sizeof(*t->free_idx), 0);
	if (!t->hash || !t->slot || !t->free_idx)
		return -ENOMEM;
	for (uint32_t i = 0; i < dp->max_flows; i++)
		t->free_idx[i] = dp->max_flows - 1 - i;
	t->n_free = dp->max_flows;
	return 0;
}

void dp_table_free(struct flow_table *t)
{
	rte_hash_free(t->hash);
	rte_free(t->slot);
	rte_free(t->free_idx);
}

int dp_worker_new(struct dp *dp, unsigned idx, struct dp_worker **ret)
{
	struct dp_worker *w;

	w = rte_zmalloc("kp_worker", sizeof(*w), RTE_CACHE_LINE_SIZE);
	if (!w)
		return -ENOMEM;
	w->dp = dp;
	w->idx = idx;
	w->queue = (uint16_t)idx;
	w->st.svc = rte_zmalloc("kp_svcstats", DP_MAX_SERVICES * sizeof(*w->st.svc), 0);
	if (!w->st.svc ||
	    dp_table_new(w, &w->t4, "kp_flows", sizeof(struct flow), sizeof(struct dp_flow_key)) ||
	    (dp->has_v6 && dp_table_new(w, &w->t6, "kp_flows6", sizeof(struct flow6),
					sizeof(struct dp_flow6_key))))
		goto fail;
	for (unsigned i = 0; i < dp->n_ports; i++) {
		w->txb[i] = rte_zmalloc("kp_txb", RTE_ETH_TX_BUFFER_SIZE(DP_BURST), 0);
		if (!w->txb[i])
			goto fail;
		rte_eth_tx_buffer_init(w->txb[i], DP_BURST);
		rte_eth_tx_buffer_set_err_callback(w->txb[i], tx_error, w);
	}
	*ret = w;
	return 0;
fail:
	dp_worker_free(w);
	return -ENOMEM;
}

void dp_worker_free(struct dp_worker *w)
{
	if (!w)
		return;
	for (unsigned i = 0; i < NEIGH_SLOTS; i++)
		for (uint8_t k = 0; k < w->neigh[i].n_held; k++)
			rte_pktmbuf_free(w->neigh[i].held[k]);
	for (unsigned i = 0; i < DP_MAX_WORKERS; i++)
		rte_pktmbuf_free_bulk(w->out[i], w->n_out[i]);
	for (unsigned i = 0; i < DP_MAX_PORTS; i++)
		rte_free(w->txb[i]);
	dp_table_free(&w->t4);
	dp_table_free(&w->t6);
	rte_free(w->st.svc);
	rte_free(w);
}
