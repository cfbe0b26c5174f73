// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DPDK data plane's worker: an L3 gateway with service NAT on its ports.
 *
 * Per burst: the generation (services, routes) is read once; each packet is parsed, TCP
 * and UDP packets' 5-tuples are looked up in this lcore's flow table in one bulk lookup,
 * then each packet is handled: ARP (answered for our addresses, senders learned), ICMP
 * echo to our addresses (answered), a packet of a known flow (translated: DNAT toward
 * the endpoint, or reverse NAT back to the VIP; SNAT to the gateway where kube-proxy would
 * masquerade), a first packet to a service frontend (an endpoint chosen by Maglev on the
 * 5-tuple, round robin, or ClientIP affinity; a flow made with one entry per direction),
 * anything else routed unchanged. Forwarded packets get their TTL decremented, a route
 * (longest prefix) and the next hop's MAC (ARP, with a few packets held while it
 * resolves), and leave through a transmit buffer flushed every loop.
 *
 * Flows age: TCP by state (SYN seen, established, closing after FIN from both sides or an
 * RST), UDP when idle; a sweep looks at a few slots per loop. Checksums are updated
 * incrementally (RFC 1624). No malloc, syscall or log in the loop.
 *
 * With several workers (dp.h says how a flow's owner is found) a packet that misses this
 * lcore's flow table and belongs to another worker is handed to it through their ring;
 * packets taken from a ring are handled here whatever dp_owner() says then (a new
 * generation could name another owner: no packet goes back and forth).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include <rte_arp.h>
#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "dp.h"

#define NEIGH_SLOTS 1024		/* a power of two */
#define NEIGH_HOLD 4			/* packets held per unresolved next hop */
#define SWEEP 8				/* flow slots looked at per loop (each a cache miss with
					 * a large table: 64 cost 14% at 1M flows) */
#define SWEEP_FAST 64			/* ... while under 1/16 of the slots are free: new flows
					 * come up to 32 a loop, reclaiming must keep up */

enum { ST_FREE, ST_SYN, ST_EST, ST_CLOSING, ST_UDP };
enum { DIR_FWD = 0, DIR_REV = 1 };

/* A flow direction's next hop, as last resolved: valid while the neighbour table's
 * epoch is the same (a known next hop is then one compare away, no lookup). */
struct nh_cache {
	uint32_t epoch;			/* 0: not resolved yet */
	uint8_t port;
	struct rte_ether_addr mac;
};

struct flow {
	struct dp_flow_key fkey;	/* client -> frontend */
	struct dp_flow_key rkey;	/* endpoint -> client (or gateway, with SNAT) */
	uint32_t ep_ip, snat_ip;	/* network order */
	uint16_t ep_port, snat_port;
	uint64_t last;			/* TSC */
	uint16_t svc_id;
	uint8_t state;
	uint8_t fin;			/* bit 0: FIN from the client, bit 1: from the endpoint */
	bool snat;
	struct nh_cache nh[2];		/* per direction */
};

struct neigh {
	uint32_t ip;			/* 0: free */
	uint8_t port;
	bool valid;
	uint8_t n_held;
	struct rte_ether_addr mac;
	uint64_t asked;			/* TSC of the last ARP request */
	struct rte_mbuf *held[NEIGH_HOLD];
};

struct dp_worker {
	struct dp *dp;
	unsigned idx;
	uint16_t queue;
	struct rte_hash *flows;
	struct flow *flow;		/* max_flows slots */
	uint32_t *free_idx;		/* stack of free slots */
	uint32_t n_free;
	uint32_t sweep;
	uint16_t snat_next;		/* the next of this worker's masquerading ports */
	uint32_t neigh_epoch;		/* bumped when a known neighbour moves (MAC or port) */
	struct neigh neigh[NEIGH_SLOTS];
	struct rte_eth_dev_tx_buffer *txb[DP_MAX_PORTS];
	struct rte_mbuf *out[DP_MAX_WORKERS][DP_BURST];	/* to hand to another worker */
	uint16_t n_out[DP_MAX_WORKERS];
	uint64_t now;
	struct dp_stats st;
} __rte_cache_aligned;

const struct dp_svc dp_gone = { .name = "(deleted)" };

/* ---- small helpers ---- */

static inline void count_drop(struct dp_worker *w, enum dp_drop why, struct rte_mbuf *m)
{
	w->st.drops[why]++;
	rte_pktmbuf_free(m);
}

static void tx_error(struct rte_mbuf **pkts, uint16_t unsent, void *userdata)
{
	struct dp_worker *w = userdata;

	w->st.drops[DROP_TX] += unsent;
	rte_pktmbuf_free_bulk(pkts, unsent);
}

static inline void tx(struct dp_worker *w, unsigned po, struct rte_mbuf *m)
{
	w->st.port[po].tx_pkts++;
	w->st.port[po].tx_bytes += m->pkt_len;
	rte_eth_tx_buffer(w->dp->port_ids[po], w->queue, w->txb[po], m);
}

static inline int our_port(const struct dp *dp, uint32_t ip)
{
	for (unsigned i = 0; i < dp->n_ports; i++)
		if (dp->ports[i].ip == ip)
			return (int)i;
	return -1;
}

static inline const struct dp_route *route_of(const struct dp_gen *g, uint32_t dst)
{
	for (uint32_t i = 0; i < g->n_routes; i++)
		if ((dst & g->routes[i].mask) == g->routes[i].net)
			return &g->routes[i];
	return NULL;
}

/* ---- handing packets to the worker that owns their flow ---- */

static void hand_flush(struct dp_worker *w, unsigned to)
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
static inline void hand(struct dp_worker *w, unsigned to, unsigned pi, struct rte_mbuf *m)
{
	m->port = (uint16_t)pi;
	w->out[to][w->n_out[to]++] = m;
	if (w->n_out[to] == DP_BURST)
		hand_flush(w, to);
}

/* ---- neighbours ---- */

static struct neigh *neigh_slot(struct dp_worker *w, uint32_t ip, bool create)
{
	uint32_t h = rte_hash_crc_4byte(ip, 0) & (NEIGH_SLOTS - 1);

	for (uint32_t i = 0; i < 16; i++) {
		struct neigh *n = &w->neigh[(h + i) & (NEIGH_SLOTS - 1)];

		if (n->ip == ip)
			return n;
		if (!n->ip && create) {
			memset(n, 0, sizeof(*n));
			n->ip = ip;
			return n;
		}
	}
	return NULL;
}

static void send_arp_request(struct dp_worker *w, unsigned po, uint32_t ip)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->dp->pool);
	struct rte_ether_hdr *eh;
	struct rte_arp_hdr *ah;

	if (!m)
		return;
	eh = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eh) + sizeof(*ah));
	if (!eh) {
		rte_pktmbuf_free(m);
		return;
	}
	ah = (struct rte_arp_hdr *)(eh + 1);
	memset(&eh->dst_addr, 0xff, sizeof(eh->dst_addr));
	eh->src_addr = w->dp->macs[po];
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	ah->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	ah->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ah->arp_hlen = RTE_ETHER_ADDR_LEN;
	ah->arp_plen = 4;
	ah->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	ah->arp_data.arp_sha = w->dp->macs[po];
	ah->arp_data.arp_sip = w->dp->ports[po].ip;
	memset(&ah->arp_data.arp_tha, 0, sizeof(ah->arp_data.arp_tha));
	ah->arp_data.arp_tip = ip;
	tx(w, po, m);
}

static inline void eth_out(struct dp_worker *w, unsigned po, const struct rte_ether_addr *dst,
			   struct rte_mbuf *m)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	eh->dst_addr = *dst;
	eh->src_addr = w->dp->macs[po];
	tx(w, po, m);
}

/* Sends @m (IPv4, TTL already handled) to @hop on port @po. Returns the neighbour when
 * it was known (the packet is out), NULL when the packet waits for ARP or is dropped. */
static const struct neigh *neigh_out(struct dp_worker *w, unsigned po, uint32_t hop,
				     struct rte_mbuf *m)
{
	struct neigh *n = neigh_slot(w, hop, true);

	if (likely(n && n->valid && n->port == po)) {
		eth_out(w, po, &n->mac, m);
		return n;
	}
	if (!n || n->n_held == NEIGH_HOLD) {
		count_drop(w, DROP_NO_NEIGH, m);
		return NULL;
	}
	n->port = (uint8_t)po;
	n->held[n->n_held++] = m;
	if (w->now - n->asked > w->dp->tsc_hz / 10) {	/* at most 10 requests a second */
		n->asked = w->now;
		send_arp_request(w, po, hop);
	}
	return NULL;
}

static void neigh_learn(struct dp_worker *w, unsigned pi, uint32_t ip,
			const struct rte_ether_addr *mac)
{
	struct neigh *n = neigh_slot(w, ip, true);

	if (!n)
		return;
	if (n->valid && (n->port != pi || !rte_is_same_ether_addr(&n->mac, mac)))
		w->neigh_epoch++;		/* flows' cached next hops are stale now */
	n->mac = *mac;
	n->port = (uint8_t)pi;
	n->valid = true;
	for (uint8_t i = 0; i < n->n_held; i++)
		eth_out(w, pi, mac, n->held[i]);
	n->n_held = 0;
}

/* An ARP packet received on port @pi: senders on the port's subnet learned, requests for
 * the port's address answered. A copy goes to each other worker (@copy), which only
 * learns from it: every worker keeps its own neighbour table. */
static void arp_input(struct dp_worker *w, unsigned pi, struct rte_mbuf *m, bool copy)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_arp_hdr *ah = (struct rte_arp_hdr *)(eh + 1);
	const struct dp_port_cfg *p = &w->dp->ports[pi];
	uint32_t mask = p->prefix ? rte_cpu_to_be_32(~0u << (32 - p->prefix)) : 0;

	if (m->data_len < sizeof(*eh) + sizeof(*ah) ||
	    ah->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    ah->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return count_drop(w, DROP_NOT_IP, m);
	/* learn senders on this port's subnet, as a host learns from requests to it */
	if ((ah->arp_data.arp_sip & mask) == (p->ip & mask) && ah->arp_data.arp_sip != p->ip) {
		for (unsigned i = 0; copy && i < w->dp->n_workers; i++) {
			struct rte_mbuf *c = i == w->idx ? NULL :
					     rte_pktmbuf_copy(m, w->dp->pool, 0, UINT32_MAX);

			if (c)
				hand(w, i, pi, c);
		}
		neigh_learn(w, pi, ah->arp_data.arp_sip, &ah->arp_data.arp_sha);
	}
	if (!copy || ah->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) ||
	    ah->arp_data.arp_tip != p->ip) {
		rte_pktmbuf_free(m);
		return;
	}
	ah->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	ah->arp_data.arp_tha = ah->arp_data.arp_sha;
	ah->arp_data.arp_tip = ah->arp_data.arp_sip;
	ah->arp_data.arp_sha = w->dp->macs[pi];
	ah->arp_data.arp_sip = p->ip;
	eh->dst_addr = eh->src_addr;
	eh->src_addr = w->dp->macs[pi];
	w->st.arp_replies++;
	tx(w, pi, m);
}

/* ---- ICMP ---- */

static void icmp_echo(struct dp_worker *w, unsigned pi, struct rte_mbuf *m,
		      struct rte_ipv4_hdr *ip, unsigned l3len)
{
	struct rte_icmp_hdr *ic = (struct rte_icmp_hdr *)((char *)ip + l3len);
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint32_t a = ip->src_addr;
	struct rte_ether_addr mac = eh->src_addr;

	ic->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	ic->icmp_cksum = dp_csum_upd16(ic->icmp_cksum, rte_cpu_to_be_16(RTE_IP_ICMP_ECHO_REQUEST << 8),
				       rte_cpu_to_be_16(RTE_IP_ICMP_ECHO_REPLY << 8));
	ip->src_addr = ip->dst_addr;
	ip->dst_addr = a;
	ip->time_to_live = 64;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	w->st.icmp_replies++;
	eth_out(w, pi, &mac, m);
}

/* Answers a packet to a frontend without endpoints with ICMP port unreachable (as the
 * iptables mode's REJECT does), back out of the port it came in on. */
static void icmp_unreachable(struct dp_worker *w, unsigned pi, struct rte_mbuf *m,
			     struct rte_ipv4_hdr *ip, unsigned l3len)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *), e = *eh;
	unsigned keep = l3len + 8;
	struct rte_ipv4_hdr *nip;
	struct rte_icmp_hdr *ic;
	uint32_t src = ip->src_addr;

	w->st.drops[DROP_NO_ENDPOINT]++;
	if (rte_pktmbuf_pkt_len(m) > sizeof(*eh) + keep)
		rte_pktmbuf_trim(m, (uint16_t)(rte_pktmbuf_pkt_len(m) - sizeof(*eh) - keep));
	rte_pktmbuf_adj(m, sizeof(*eh));
	eh = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eh) + sizeof(*nip) + 8);
	if (!eh || rte_pktmbuf_data_len(m) != rte_pktmbuf_pkt_len(m)) {
		rte_pktmbuf_free(m);
		return;
	}
	nip = (struct rte_ipv4_hdr *)(eh + 1);
	ic = (struct rte_icmp_hdr *)(nip + 1);
	eh->dst_addr = e.src_addr;
	eh->src_addr = w->dp->macs[pi];
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(nip, 0, sizeof(*nip));
	nip->version_ihl = RTE_IPV4_VHL_DEF;
	nip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*nip) + 8 + keep));
	nip->time_to_live = 64;
	nip->next_proto_id = IPPROTO_ICMP;
	nip->src_addr = w->dp->ports[pi].ip;
	nip->dst_addr = src;
	nip->hdr_checksum = rte_ipv4_cksum(nip);
	memset(ic, 0, 8);
	ic->icmp_type = 3;		/* destination unreachable */
	ic->icmp_code = 3;		/* port unreachable */
	ic->icmp_cksum = ~rte_raw_cksum(ic, 8 + keep);
	tx(w, pi, m);
}

/* ---- NAT ---- */

/* Header fields sit where the wire puts them (an IPv4 address 2 bytes off a 4-byte
 * boundary behind the Ethernet header): loads and stores go through memcpy, which the
 * compiler makes one unaligned move. */
static inline uint16_t ld16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void st16(void *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline uint32_t ld32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void st32(void *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

struct pkt {
	struct rte_ipv4_hdr *ip;
	void *sport, *dport;		/* the ports, in the L4 header */
	void *l4sum;			/* TCP or UDP checksum, NULL for a UDP datagram without */
	bool udp;
	uint8_t tcp_flags;
	unsigned l3len;
};

/* A UDP checksum that comes out 0 is sent as 0xffff (0 means none); TCP's 0 is a value. */
static inline void l4_store(struct pkt *p, uint16_t c)
{
	st16(p->l4sum, p->udp && !c ? 0xffff : c);
}

static inline void set_addr(struct pkt *p, void *field, uint32_t v)
{
	uint32_t o = ld32(field);

	st16(&p->ip->hdr_checksum, dp_csum_upd32(ld16(&p->ip->hdr_checksum), o, v));
	if (p->l4sum)
		l4_store(p, dp_csum_upd32(ld16(p->l4sum), o, v));
	st32(field, v);
}

static inline void set_port(struct pkt *p, void *field, uint16_t v)
{
	if (p->l4sum)
		l4_store(p, dp_csum_upd16(ld16(p->l4sum), ld16(field), v));
	st16(field, v);
}

static inline void flow_state(struct flow *f, int dir, uint8_t flags, uint8_t proto)
{
	if (proto != IPPROTO_TCP)
		return;
	if (flags & RTE_TCP_RST_FLAG) {
		f->state = ST_CLOSING;
		return;
	}
	if (flags & RTE_TCP_FIN_FLAG)
		f->fin |= (uint8_t)(1u << dir);
	if (f->fin == 3)
		f->state = ST_CLOSING;
	else if (f->state == ST_SYN && dir == DIR_REV)
		f->state = ST_EST;
}

static inline void translate(struct dp_worker *w, struct flow *f, int dir, struct pkt *p,
			     struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip = p->ip;

	if (dir == DIR_FWD) {
		set_addr(p, (void *)&ip->dst_addr, f->ep_ip);
		set_port(p, p->dport, f->ep_port);
		if (f->snat) {
			set_addr(p, (void *)&ip->src_addr, f->snat_ip);
			set_port(p, p->sport, f->snat_port);
		}
	} else {
		set_addr(p, (void *)&ip->src_addr, f->fkey.dst_ip);
		set_port(p, p->sport, f->fkey.dst_port);
		if (f->snat) {
			set_addr(p, (void *)&ip->dst_addr, f->fkey.src_ip);
			set_port(p, p->dport, f->fkey.src_port);
		}
	}
	f->last = w->now;
	flow_state(f, dir, p->tcp_flags, f->fkey.proto);
	w->st.svc[f->svc_id].pkts++;
	w->st.svc[f->svc_id].bytes += m->pkt_len;
}

static void flow_free(struct dp_worker *w, uint32_t idx)
{
	struct flow *f = &w->flow[idx];

	rte_hash_del_key(w->flows, &f->fkey);
	rte_hash_del_key(w->flows, &f->rkey);
	w->st.svc[f->svc_id].flows_active--;
	w->st.flows_active--;
	w->st.flows_expired++;
	f->state = ST_FREE;
	w->free_idx[w->n_free++] = idx;
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
	out->ep_port = __atomic_load_n(&a->ep_port, __ATOMIC_RELAXED);
	out->ep_ip = __atomic_load_n(&a->ep_ip, __ATOMIC_RELAXED);
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
	__atomic_store_n(&a->ep_port, v->ep_port, __ATOMIC_RELAXED);
	__atomic_store_n(&a->ep_ip, v->ep_ip, __ATOMIC_RELAXED);
	__atomic_store_n(&a->until, v->until, __ATOMIC_RELAXED);
	__atomic_store_n(&a->seq, seq + 2, __ATOMIC_RELEASE);
}

static const struct dp_ep *pick(struct dp_worker *w, const struct dp_gen *g,
				const struct dp_svc *s, const struct dp_flow_key *k)
{
	struct dp_aff *a = NULL, cur;
	const struct dp_ep *ep;
	uint64_t until = w->now + (uint64_t)s->affinity_s * w->dp->tsc_hz;

	if (s->affinity_s) {
		a = &w->dp->aff[rte_hash_crc_4byte(k->src_ip, s->id) & (DP_AFF_SLOTS - 1)];
		if (aff_read(a, &cur) && cur.client == k->src_ip && cur.svc_id == s->id &&
		    cur.until > w->now) {
			for (uint16_t i = 0; i < s->n_eps; i++)	/* still an endpoint? */
				if (s->eps[i].ip == cur.ep_ip && s->eps[i].port == cur.ep_port) {
					cur.until = until;
					aff_write(a, &cur);
					return &s->eps[i];
				}
		}
	}
	if (s->m && g->policy == DP_POLICY_MAGLEV)
		ep = &s->eps[s->maglev[dp_flow_hash(k) % s->m]];
	else
		ep = &s->eps[__atomic_fetch_add(&w->dp->rr[s->id], 1, __ATOMIC_RELAXED) % s->n_eps];
	if (a)		/* the client's entry (a collision evicts the older one) */
		aff_write(a, &(struct dp_aff){ .client = k->src_ip, .svc_id = s->id,
					       .ep_ip = ep->ip, .ep_port = ep->port,
					       .until = until });
	return ep;
}

static inline bool in_net(uint32_t ip, uint32_t net, uint32_t mask)
{
	return mask && (ip & mask) == net;
}

/* The next of this worker's masquerading ports (network order): DP_SNAT_LO + idx +
 * i * n_workers, so that a reply to it is known to be this worker's (dp_owner); a port
 * that is a frontend on @ip is passed over (its replies would look like new requests). */
static uint16_t snat_port(struct dp_worker *w, const struct dp_gen *g, uint32_t ip, uint8_t proto)
{
	uint16_t port = 0;

	for (unsigned tries = 0; tries < 65536 - DP_SNAT_LO; tries++) {
		uint32_t p = DP_SNAT_LO + w->idx + (uint32_t)w->snat_next * w->dp->n_workers;
		struct dp_svc_key sk = { .ip = ip, .proto = proto };

		if (p > 65535) {
			w->snat_next = 0;
			p = DP_SNAT_LO + w->idx;
		}
		w->snat_next++;
		port = sk.port = rte_cpu_to_be_16((uint16_t)p);
		if (rte_hash_lookup(g->svcs, &sk) < 0)
			break;
	}
	return port;
}

/* A first packet to service @s: an endpoint, a flow. Returns the flow or NULL (@m is
 * then handled: answered or dropped). */
static struct flow *flow_new(struct dp_worker *w, const struct dp_gen *g, const struct dp_svc *s,
			     const struct dp_flow_key *k, unsigned pi, struct rte_mbuf *m,
			     struct pkt *p)
{
	const struct dp_ep *ep;
	const struct dp_route *rt;
	struct flow *f;
	uint32_t idx;
	int r;

	if (s->n_ranges) {		/* loadBalancerSourceRanges, as kube-proxy's firewall */
		uint16_t i = 0;

		while (i < s->n_ranges && (k->src_ip & s->ranges[i].mask) != s->ranges[i].net)
			i++;
		if (i == s->n_ranges) {
			count_drop(w, DROP_SOURCE, m);
			return NULL;
		}
	}
	if (!s->n_eps) {
		icmp_unreachable(w, pi, m, p->ip, p->l3len);
		return NULL;
	}
	if (!w->n_free) {
		count_drop(w, DROP_FLOW_FULL, m);
		return NULL;
	}
	ep = pick(w, g, s, k);
	idx = w->free_idx[--w->n_free];
	f = &w->flow[idx];
	memset(f, 0, sizeof(*f));
	f->fkey = *k;
	f->ep_ip = ep->ip;
	f->ep_port = ep->port;
	f->svc_id = s->id;
	f->state = k->proto == IPPROTO_UDP ? ST_UDP :
		   (p->tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) == RTE_TCP_SYN_FLAG ?
		   ST_SYN : ST_EST;
	rt = route_of(g, ep->ip);
	/* masquerade as kube-proxy does (external frontends, or all traffic; a cluster IP
	 * reached from outside the cluster CIDR; hairpin), and where the client and the
	 * endpoint share a link: the reply would go straight back, not through us */
	f->snat = s->masq || ep->ip == k->src_ip ||
		  (s->kind == 0 && g->cluster_mask && !in_net(k->src_ip, g->cluster_net,
							      g->cluster_mask)) ||
		  (rt && !rt->gw && route_of(g, k->src_ip) == rt);
	if (f->snat && rt)
		f->snat_ip = w->dp->ports[rt->port].ip;
	else
		f->snat = false;
	f->rkey = (struct dp_flow_key){ .src_ip = ep->ip, .src_port = ep->port, .proto = k->proto };
	for (int tries = 0;; tries++) {
		if (f->snat) {
			f->snat_port = snat_port(w, g, f->snat_ip, k->proto);
			f->rkey.dst_ip = f->snat_ip;
			f->rkey.dst_port = f->snat_port;
		} else {
			f->rkey.dst_ip = k->src_ip;
			f->rkey.dst_port = k->src_port;
		}
		if (rte_hash_lookup(w->flows, &f->rkey) < 0)
			break;
		if (tries == 16) {	/* no free reverse tuple: give up on this packet */
			w->free_idx[w->n_free++] = idx;
			count_drop(w, DROP_FLOW_FULL, m);
			return NULL;
		}
		if (!f->snat && rt) {	/* the client's tuple is taken: masquerade this one */
			f->snat = true;
			f->snat_ip = w->dp->ports[rt->port].ip;
		}
	}
	r = rte_hash_add_key_data(w->flows, &f->fkey, (void *)(uintptr_t)((uint64_t)idx << 1));
	if (r == 0)
		r = rte_hash_add_key_data(w->flows, &f->rkey,
					  (void *)(uintptr_t)(((uint64_t)idx << 1) | DIR_REV));
	if (r) {
		rte_hash_del_key(w->flows, &f->fkey);
		w->free_idx[w->n_free++] = idx;
		count_drop(w, DROP_FLOW_FULL, m);
		return NULL;
	}
	w->st.flows_created++;
	w->st.flows_active++;
	w->st.svc[s->id].flows_created++;
	w->st.svc[s->id].flows_active++;
	return f;
}

static inline uint64_t flow_ttl(const struct dp *dp, const struct flow *f)
{
	return f->state == ST_UDP ? dp->udp_timeout_tsc : f->state == ST_SYN ?
	       dp->syn_timeout_tsc : f->state == ST_CLOSING ? dp->tcp_closing_tsc :
	       dp->tcp_timeout_tsc;
}

/* Reclaims the slots of expired flows, a few per loop; a packet that meets an expired
 * flow before the sweep does treats it as gone (dp_worker_process). */
static void sweep(struct dp_worker *w)
{
	const struct dp *dp = w->dp;
	unsigned n = w->n_free < dp->max_flows / 16 ? SWEEP_FAST : SWEEP;

	for (unsigned i = 0; i < n; i++) {
		uint32_t idx = w->sweep++;
		struct flow *f;

		if (w->sweep >= dp->max_flows)
			w->sweep = 0;
		if (idx >= dp->max_flows)
			idx = 0;
		f = &w->flow[idx];
		if (f->state != ST_FREE && w->now - f->last > flow_ttl(dp, f))
			flow_free(w, idx);
	}
}

/* ---- the burst ---- */

/* Parses @m's IPv4 header and, for TCP and UDP, its ports into @p and @k. Returns 0 for
 * ARP, 1 for IPv4 without a 5-tuple (ICMP, fragments, other protocols), 2 with one, -1
 * for what is dropped. */
static inline int parse(struct rte_mbuf *m, struct pkt *p, struct dp_flow_key *k)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip;
	unsigned len = rte_pktmbuf_data_len(m), l3len, tot;

	if (unlikely(len < sizeof(*eh)))
		return -1;
	if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
		return 0;
	if (unlikely(eh->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)))
		return -1;
	ip = (struct rte_ipv4_hdr *)(eh + 1);
	l3len = (unsigned)(ip->version_ihl & 0xf) * 4;
	tot = rte_be_to_cpu_16(ip->total_length);
	if (unlikely(len < sizeof(*eh) + sizeof(*ip) || (ip->version_ihl >> 4) != 4 || l3len < 20 ||
		     tot < l3len || len < sizeof(*eh) + tot))
		return -2;
	p->ip = ip;
	p->l3len = l3len;
	p->tcp_flags = 0;
	if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return 1;
	if (ip->next_proto_id == IPPROTO_TCP && tot >= l3len + sizeof(struct rte_tcp_hdr)) {
		struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)((char *)ip + l3len);

		p->sport = (void *)&t->src_port;
		p->dport = (void *)&t->dst_port;
		p->l4sum = (void *)&t->cksum;
		p->udp = false;
		p->tcp_flags = t->tcp_flags;
	} else if (ip->next_proto_id == IPPROTO_UDP && tot >= l3len + sizeof(struct rte_udp_hdr)) {
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)((char *)ip + l3len);

		p->sport = (void *)&u->src_port;
		p->dport = (void *)&u->dst_port;
		p->l4sum = ld16(&u->dgram_cksum) ? (void *)&u->dgram_cksum : NULL;
		p->udp = true;
	} else {
		return 1;
	}
	*k = (struct dp_flow_key){ .src_ip = ld32(&ip->src_addr), .dst_ip = ld32(&ip->dst_addr),
				   .src_port = ld16(p->sport), .dst_port = ld16(p->dport),
				   .proto = ip->next_proto_id };
	return 2;
}

static inline bool ttl_down(struct dp_worker *w, struct rte_ipv4_hdr *ip, struct rte_mbuf *m)
{
	if (unlikely(ip->time_to_live <= 1)) {
		count_drop(w, DROP_TTL, m);
		return false;
	}
	ip->time_to_live--;
	/* TTL is the high byte of its 16-bit word with the protocol; the difference of the
	 * word is all the incremental update needs */
	ip->hdr_checksum = dp_csum_upd16(ip->hdr_checksum,
					 rte_cpu_to_be_16((uint16_t)((ip->time_to_live + 1) << 8)),
					 rte_cpu_to_be_16((uint16_t)(ip->time_to_live << 8)));
	return true;
}

/* Routes @m by its destination and sends it to the next hop; with @c, a flow direction's
 * cache, remembers that next hop once it is known. */
static inline void route_out(struct dp_worker *w, const struct dp_gen *g,
			     struct rte_ipv4_hdr *ip, struct rte_mbuf *m, struct nh_cache *c)
{
	const struct dp_route *rt = route_of(g, ip->dst_addr);
	const struct neigh *n;

	if (unlikely(!rt))
		return count_drop(w, DROP_NO_ROUTE, m);
	n = neigh_out(w, rt->port, rt->gw ? rt->gw : ip->dst_addr, m);
	if (c && n) {
		c->port = rt->port;
		c->mac = n->mac;
		c->epoch = w->neigh_epoch + 1;	/* 0 stays "not resolved" */
	}
}

/* A flow's packet: its direction's next hop from the flow's cache while the neighbour
 * epoch holds (no route or neighbour lookup), else routed and the cache filled. */
static inline void forward_flow(struct dp_worker *w, const struct dp_gen *g,
				struct rte_ipv4_hdr *ip, struct rte_mbuf *m, struct flow *f, int dir)
{
	struct nh_cache *c = &f->nh[dir];

	if (!ttl_down(w, ip, m))
		return;
	if (likely(c->epoch && c->epoch == w->neigh_epoch + 1))
		return eth_out(w, c->port, &c->mac, m);
	route_out(w, g, ip, m, c);
}

/* TTL, route, next hop: out it goes. */
static inline void forward(struct dp_worker *w, const struct dp_gen *g, struct rte_ipv4_hdr *ip,
			   struct rte_mbuf *m)
{
	if (ttl_down(w, ip, m))
		route_out(w, g, ip, m, NULL);
}

/*
 * One burst from port @pi, start to end. Long on purpose: the burst's stages (classify,
 * one bulk flow lookup, per-packet NAT or forward, the second lookup after a flow was
 * made or freed) share the key and result arrays on the stack; split into functions they
 * would pass those arrays around on the per-packet path, which the benchmark times
 * (tests/bench/run-dpdk-bench) and which is left as it was measured. @handed: the
 * packets came from another worker's ring (counted there, handled here whatever the owner).
 */
static void process(struct dp_worker *w, unsigned pi, struct rte_mbuf **pkts, uint16_t n,
		    bool handed)
{
	struct dp_gen *g = atomic_load_explicit(&w->dp->gen, memory_order_acquire);
	struct dp_flow_key keys[DP_BURST];
	const void *kp[DP_BURST];
	void *data[DP_BURST];
	struct pkt p[DP_BURST];
	int kind[DP_BURST], slot[DP_BURST];
	uint64_t hits = 0;
	unsigned nk = 0;
	bool changed = false;		/* a flow was made or freed in this burst: look again */

	for (uint16_t i = 0; i < n; i++) {
		if (i + 4 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 4], void *));
		if (!handed) {
			w->st.port[pi].rx_pkts++;
			w->st.port[pi].rx_bytes += pkts[i]->pkt_len;
		}
		kind[i] = parse(pkts[i], &p[i], &keys[nk]);
		slot[i] = -1;
		if (kind[i] == 2) {
			kp[nk] = &keys[nk];
			slot[i] = (int)nk++;
		}
	}
	if (nk)
		rte_hash_lookup_bulk_data(w->flows, kp, nk, &hits, data);
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct pkt *pp = &p[i];
		int ours;

		if (kind[i] == 0) {
			arp_input(w, pi, m, !handed);
			continue;
		}
		if (kind[i] < 0) {
			count_drop(w, kind[i] == -1 ? DROP_NOT_IP : DROP_BAD_IP, m);
			continue;
		}
		if (unlikely(!g)) {
			rte_pktmbuf_free(m);
			continue;
		}
		if (kind[i] == 2 && changed) {	/* the bulk lookup may be stale */
			if (rte_hash_lookup_data(w->flows, &keys[slot[i]], &data[slot[i]]) >= 0)
				hits |= 1ull << slot[i];
			else
				hits &= ~(1ull << slot[i]);
		}
		if (kind[i] == 2 && (hits >> slot[i]) & 1) {
			uintptr_t d = (uintptr_t)data[slot[i]];
			struct flow *hf = &w->flow[d >> 1];

			if (unlikely(w->now - hf->last > flow_ttl(w->dp, hf))) {
				flow_free(w, (uint32_t)(d >> 1));	/* expired: gone */
				hits &= ~(1ull << slot[i]);
				changed = true;
			}
		}
		if (kind[i] == 2 && (hits >> slot[i]) & 1) {
			uintptr_t d = (uintptr_t)data[slot[i]];

			translate(w, &w->flow[d >> 1], (int)(d & 1), pp, m);
			forward_flow(w, g, pp->ip, m, &w->flow[d >> 1], (int)(d & 1));
			continue;
		}
		ours = our_port(w->dp, pp->ip->dst_addr);
		if (kind[i] == 2) {
			struct dp_svc_key sk = { .ip = ld32(&pp->ip->dst_addr), .port = ld16(pp->dport),
						 .proto = pp->ip->next_proto_id };
			void *sv;
			bool fe = rte_hash_lookup_data(g->svcs, &sk, &sv) >= 0;

			if (w->dp->n_workers > 1 && !handed) {
				/* not a flow of ours: whose is it? (dp.h) */
				unsigned o, nw = w->dp->n_workers, dport = rte_be_to_cpu_16(sk.port);

				if (fe)
					o = dp_client_owner(keys[slot[i]].src_ip,
							    keys[slot[i]].src_port, nw);
				else if (ours >= 0)
					o = dport >= DP_SNAT_LO ? (dport - DP_SNAT_LO) % nw : 0;
				else
					o = dp_client_owner(sk.ip, sk.port, nw);
				if (o != w->idx) {
					w->st.handed++;
					hand(w, o, pi, m);
					continue;
				}
			}
			if (fe && sv != &dp_gone) {
				struct flow *f = flow_new(w, g, sv, &keys[slot[i]], pi, m, pp);

				if (f) {
					changed = true;
					translate(w, f, DIR_FWD, pp, m);
					forward_flow(w, g, pp->ip, m, f, DIR_FWD);
				}
				continue;
			}
		} else if (ours >= 0 && pp->ip->next_proto_id == IPPROTO_ICMP &&
			   rte_pktmbuf_data_len(m) >= sizeof(struct rte_ether_hdr) + pp->l3len + 8 &&
			   ((struct rte_icmp_hdr *)((char *)pp->ip + pp->l3len))->icmp_type ==
			   RTE_IP_ICMP_ECHO_REQUEST) {
			icmp_echo(w, pi, m, pp->ip, pp->l3len);
			continue;
		}
		if (ours >= 0) {
			count_drop(w, DROP_NOT_FOR_US, m);
			continue;
		}
		w->st.routed++;
		forward(w, g, pp->ip, m);
	}
}

void dp_worker_process(struct dp_worker *w, unsigned pi, struct rte_mbuf **pkts, uint16_t n)
{
	process(w, pi, pkts, n, false);
}

/* Handles what other workers handed over; returns how many packets that was. */
static unsigned take_handed(struct dp_worker *w)
{
	struct rte_mbuf *pkts[DP_BURST];
	unsigned total = 0;

	for (unsigned from = 0; from < w->dp->n_workers; from++) {
		unsigned n;

		if (from == w->idx)
			continue;
		n = rte_ring_sc_dequeue_burst(w->dp->ring[from][w->idx], (void **)pkts, DP_BURST,
					      NULL);
		total += n;
		for (unsigned i = 0, j; i < n; i = j) {	/* in runs of one port */
			for (j = i + 1; j < n && pkts[j]->port == pkts[i]->port; j++)
				;
			process(w, pkts[i]->port, pkts + i, (uint16_t)(j - i), true);
		}
	}
	return total;
}

void dp_worker_flush(struct dp_worker *w)
{
	for (unsigned i = 0; i < w->dp->n_workers; i++)
		hand_flush(w, i);
	for (unsigned i = 0; i < w->dp->n_ports; i++)
		rte_eth_tx_buffer_flush(w->dp->port_ids[i], w->queue, w->txb[i]);
}

int dp_worker_main(void *arg)
{
	struct dp_worker *w = arg;
	struct dp *dp = w->dp;
	struct rte_mbuf *pkts[DP_BURST];

	rte_rcu_qsbr_thread_register(dp->qs, w->idx);
	rte_rcu_qsbr_thread_online(dp->qs, w->idx);
	unsigned idle = 0;

	while (!atomic_load_explicit(&dp->stop, memory_order_relaxed)) {
		bool got = false;

		w->now = rte_rdtsc();
		for (unsigned pi = 0; pi < dp->n_ports; pi++) {
			uint16_t n = w->queue < dp->n_rxq[pi] ?
				     rte_eth_rx_burst(dp->port_ids[pi], w->queue, pkts, DP_BURST) : 0;

			if (n) {
				process(w, pi, pkts, n, false);
				got = true;
			}
		}
		if (dp->n_workers > 1 && take_handed(w))
			got = true;
		dp_worker_flush(w);
		sweep(w);
		rte_rcu_qsbr_quiescent(dp->qs, w->idx);
		/* busy polling, unless --dpdk-idle-sleep-us: then a worker that found nothing
		 * 256 times in a row sleeps that long each round until packets come (as DPDK's
		 * l3fwd-power does; for machines where a spinning core is too dear) */
		idle = got ? 0 : idle + 1;
		if (unlikely(dp->idle_sleep_us && idle > 256))
			rte_delay_us_sleep(dp->idle_sleep_us);
	}
	rte_rcu_qsbr_thread_offline(dp->qs, w->idx);
	rte_rcu_qsbr_thread_unregister(dp->qs, w->idx);
	return 0;
}

void dp_worker_neigh_add(struct dp_worker *w, unsigned pi, uint32_t ip,
			 const struct rte_ether_addr *mac)
{
	neigh_learn(w, pi, ip, mac);
}

void dp_worker_set_now(struct dp_worker *w, uint64_t tsc)
{
	w->now = tsc;
}

void dp_worker_sweep(struct dp_worker *w)
{
	sweep(w);
}

const struct dp_stats *dp_worker_stats(const struct dp_worker *w)
{
	return &w->st;
}

unsigned dp_worker_take_handed(struct dp_worker *w)
{
	return take_handed(w);
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
			snprintf(name, sizeof(name), "kp_hand_%u_%u", from, to);
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

int dp_worker_new(struct dp *dp, unsigned idx, struct dp_worker **ret)
{
	struct rte_hash_parameters hp = { 0 };
	struct dp_worker *w;
	char name[RTE_HASH_NAMESIZE];
	/* two entries per flow, and room: a cuckoo table this full takes no more keys
	 * (2^21 entries held 1,014,952 of 2^20 flows); the extendable buckets take the rest */
	uint32_t entries = dp->max_flows * 2 + dp->max_flows / 2;

	w = rte_zmalloc("kp_worker", sizeof(*w), RTE_CACHE_LINE_SIZE);
	if (!w)
		return -ENOMEM;
	w->dp = dp;
	w->idx = idx;
	w->queue = (uint16_t)idx;
	snprintf(name, sizeof(name), "kp_flows_%u", idx);
	hp.name = name;
	hp.entries = entries < 1024 ? 1024 : entries;
	hp.key_len = sizeof(struct dp_flow_key);
	hp.hash_func = rte_hash_crc;
	hp.socket_id = (int)rte_socket_id();
	hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
	w->flows = rte_hash_create(&hp);
	w->flow = rte_zmalloc("kp_flow", (size_t)dp->max_flows * sizeof(*w->flow), 0);
	w->free_idx = rte_malloc("kp_free", (size_t)dp->max_flows * sizeof(*w->free_idx), 0);
	w->st.svc = rte_zmalloc("kp_svcstats", DP_MAX_SERVICES * sizeof(*w->st.svc), 0);
	if (!w->flows || !w->flow || !w->free_idx || !w->st.svc)
		goto fail;
	for (uint32_t i = 0; i < dp->max_flows; i++)
		w->free_idx[i] = dp->max_flows - 1 - i;
	w->n_free = dp->max_flows;
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
	rte_hash_free(w->flows);
	rte_free(w->flow);
	rte_free(w->free_idx);
	rte_free(w->st.svc);
	rte_free(w);
}
