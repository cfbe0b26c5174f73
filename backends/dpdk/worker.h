/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside a worker lcore: its state and the helpers both of its packet paths share,
 * IPv4 (fastpath.c) and IPv6 (fastpath6.c). Not for the control side, which sees a
 * worker only through dp.h.
 */
#ifndef KP_WORKER_H
#define KP_WORKER_H

#include <stddef.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#include "dp.h"

#define NEIGH_SLOTS 1024		/* a power of two */
#define NEIGH_HOLD 4			/* packets held per unresolved next hop */
#define SWEEP 8				/* flow slots looked at per loop (each a cache miss with
					 * a large table: 64 cost 14% at 1M flows) */
#define SWEEP_FAST 64			/* ... while under 1/16 of the slots are free: new flows
					 * come up to 32 a loop, reclaiming must keep up */

enum { ST_FREE, ST_SYN, ST_EST, ST_CLOSING, ST_UDP };
enum { DIR_FWD = 0, DIR_REV = 1 };
enum {
	ICMP6_UNREACH = 1, ICMP6_UNREACH_PORT = 4, ICMP6_ECHO_REQUEST = 128,
	ICMP6_ECHO_REPLY = 129, ND_SOLICIT = 135, ND_ADVERT = 136,
	ND_OPT_SOURCE_LL = 1, ND_OPT_TARGET_LL = 2,
};

#define ND_LEN 32			/* a solicitation or advertisement with its one option */

/* A flow direction's next hop, as last resolved: valid while the neighbour table's
 * epoch is the same (a known next hop is then one compare away, no lookup). */
struct nh_cache {
	uint32_t epoch;			/* 0: not resolved yet */
	uint8_t port;
	struct rte_ether_addr mac;
};

/* What a flow of either family keeps besides its two keys. */
struct flow_meta {
	uint64_t last;			/* TSC */
	uint16_t svc_id;
	uint8_t state;
	uint8_t fin;			/* bit 0: FIN from the client, bit 1: from the endpoint */
	bool snat;
	struct nh_cache nh[2];		/* per direction */
};

/* The keys say it all: the forward key is client -> frontend, the reverse key endpoint
 * -> client, or -> our address and port with SNAT; so the endpoint is the reverse key's
 * source, the SNAT address and port its destination. */
struct flow {
	struct dp_flow_key fkey;
	struct dp_flow_key rkey;
	struct flow_meta f;
};

struct flow6 {
	struct dp_flow6_key fkey;
	struct dp_flow6_key rkey;
	struct flow_meta f;
};

/* dp_sweep finds the meta behind the two keys */
_Static_assert(offsetof(struct flow, f) == 2 * sizeof(struct dp_flow_key), "flow layout");
_Static_assert(offsetof(struct flow6, f) == 2 * sizeof(struct dp_flow6_key), "flow6 layout");

/* A neighbour of either family: an IPv4 address as ::ffff:a.b.c.d. */
struct neigh {
	uint8_t ip[16];
	bool used;
	uint8_t port;
	bool valid;
	uint8_t n_held;
	struct rte_ether_addr mac;
	uint64_t asked;			/* TSC of the last ARP request or solicitation */
	struct rte_mbuf *held[NEIGH_HOLD];
};

/* One family's flow table: a hash of both keys of each flow, the slots, free slots. */
struct flow_table {
	struct rte_hash *hash;
	void *slot;			/* struct flow or struct flow6, max_flows of them */
	uint32_t *free_idx;		/* stack of free slots */
	uint32_t n_free;
	uint32_t sweep;
};

/*
 * Where the first fragment of an IPv4 datagram went (fastpath.c), by the datagram's key
 * as received (addresses, protocol, IP id), so that its other fragments, which carry no
 * ports, follow it: to the worker that owns its flow, and there with the same addresses.
 * Direct-mapped; an entry lives DP_FRAG_TTL_S after the datagram's last fragment.
 */
#define DP_FRAG_SLOTS 1024
#define DP_FRAG_TTL_S 2
struct dp_frag {
	uint32_t src, dst;		/* as received */
	uint16_t id;
	uint8_t proto;
	uint8_t owner;			/* the worker that translates the datagram */
	uint32_t new_src, new_dst;	/* as the owner sends it */
	uint16_t svc_id;
	uint64_t seen;			/* TSC of its last fragment; 0: free */
};

/* The same for IPv6 (fastpath6.c): the key is the Fragment header's identification. */
#define DP_FRAG6_SLOTS 512
struct dp_frag6 {
	uint8_t src[16], dst[16];	/* as received */
	uint8_t new_src[16], new_dst[16];
	uint32_t id;
	uint8_t proto;
	uint8_t owner;
	uint16_t svc_id;
	uint64_t seen;
};

struct dp_worker {
	struct dp *dp;
	unsigned idx;
	uint16_t queue;
	struct flow_table t4, t6;	/* t6 only when a port has an IPv6 address */
	uint16_t snat_next;		/* the next of this worker's masquerading ports */
	uint32_t neigh_epoch;		/* bumped when a known neighbour moves (MAC or port) */
	struct neigh neigh[NEIGH_SLOTS];
	struct rte_eth_dev_tx_buffer *txb[DP_MAX_PORTS];
	struct rte_mbuf *out[DP_MAX_WORKERS][DP_BURST];	/* to hand to another worker */
	uint16_t n_out[DP_MAX_WORKERS];
	uint64_t now;
	struct dp_stats st;
	struct dp_frag frag[DP_FRAG_SLOTS];
	struct dp_frag6 frag6[DP_FRAG6_SLOTS];
} __rte_cache_aligned;

/* ---- small helpers ---- */

/* ::ffff:@ip, as the neighbour table keeps an IPv4 address. */
static inline void mapped(uint32_t ip, uint8_t out[16])
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	memcpy(out, prefix, sizeof(prefix));
	memcpy(out + 12, &ip, 4);
}

static inline bool is_mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(a, prefix, sizeof(prefix));
}

static inline void dp_ip6_header(struct rte_ipv6_hdr *ip, uint16_t plen, uint8_t hops,
			      const uint8_t src[16], const uint8_t dst[16])
{
	ip->vtc_flow = rte_cpu_to_be_32(0x60000000u);
	ip->payload_len = rte_cpu_to_be_16(plen);
	ip->proto = IPPROTO_ICMPV6;
	ip->hop_limits = hops;
	memcpy(ip->src_addr, src, 16);
	memcpy(ip->dst_addr, dst, 16);
}


static inline void count_drop(struct dp_worker *w, enum dp_drop why, struct rte_mbuf *m)
{
	w->st.drops[why]++;
	rte_pktmbuf_free(m);
}

static inline void tx(struct dp_worker *w, unsigned po, struct rte_mbuf *m)
{
	w->st.port[po].tx_pkts++;
	w->st.port[po].tx_bytes += m->pkt_len;
	rte_eth_tx_buffer(w->dp->port_ids[po], w->queue, w->txb[po], m);
}

static inline void eth_out(struct dp_worker *w, unsigned po, const struct rte_ether_addr *dst,
			   struct rte_mbuf *m)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	eh->dst_addr = *dst;
	eh->src_addr = w->dp->macs[po];
	tx(w, po, m);
}

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

/* A TCP flow's state after a packet with @flags in direction @dir. */
static inline void flow_state(struct flow_meta *f, int dir, uint8_t flags, uint8_t proto)
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

static inline uint64_t flow_ttl(const struct dp *dp, const struct flow_meta *f)
{
	return f->state == ST_UDP ? dp->udp_timeout_tsc : f->state == ST_SYN ?
	       dp->syn_timeout_tsc : f->state == ST_CLOSING ? dp->tcp_closing_tsc :
	       dp->tcp_timeout_tsc;
}

/* The state a flow starts in, from its first packet. */
static inline uint8_t flow_first_state(uint8_t proto, uint8_t tcp_flags)
{
	/* SCTP: no state followed; an association lives as an established TCP connection
	 * (its heartbeats keep an idle one alive) */
	if (proto == IPPROTO_SCTP)
		return ST_EST;
	return proto == IPPROTO_UDP ? ST_UDP :
	       (tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) == RTE_TCP_SYN_FLAG ?
	       ST_SYN : ST_EST;
}

/* Takes a free slot of @t, or NULL (the packet is then dropped: the table is full). */
static inline void *slot_take(struct flow_table *t, size_t size, uint32_t *ret_idx)
{
	if (!t->n_free)
		return NULL;
	*ret_idx = t->free_idx[--t->n_free];
	return (char *)t->slot + (size_t)*ret_idx * size;
}

/* ---- worker.c: what both paths share ---- */

/* Enters a new flow's two keys (slot @idx of @t) and counts it; on failure the slot goes
 * back and a negative errno is returned. */
int dp_flow_insert(struct dp_worker *w, struct flow_table *t, uint32_t idx, const void *fkey,
		   const void *rkey, uint16_t svc_id);
/* Frees a flow slot of table @t holding keys @fkey and @rkey. */
void dp_flow_free(struct dp_worker *w, struct flow_table *t, uint32_t idx, const void *fkey,
		  const void *rkey, struct flow_meta *f);
/* Looks at a few slots of table @t (each of @size bytes) and frees expired flows, and UDP
 * flows @udp_stale says lost their endpoint. */
void dp_sweep(struct dp_worker *w, struct flow_table *t, size_t size, size_t key_size,
	      bool (*udp_stale)(const struct dp_gen *g, const void *slot));
int dp_table_new(struct dp_worker *w, struct flow_table *t, const char *name, size_t slot_size,
		 size_t key_size);
void dp_table_free(struct flow_table *t);
/* Queues @m, received on port index @pi, for worker @to; dp_hand_flush sends what is
 * queued for @to over their ring. */
void dp_hand(struct dp_worker *w, unsigned to, unsigned pi, struct rte_mbuf *m);
void dp_hand_flush(struct dp_worker *w, unsigned to);

/* Hands @m to its flow's owner @o unless that is this worker (then false), counting it. */
static inline bool dp_hand_to_owner(struct dp_worker *w, unsigned o, unsigned pi,
				    struct rte_mbuf *m)
{
	if (o == w->idx)
		return false;
	w->st.handed++;
	dp_hand(w, o, pi, m);
	return true;
}
/* The next of this worker's masquerading ports (network order), passing over those that
 * are frontends: @key is a frontend key of @fes with its address and protocol set,
 * @port its port field. */
uint16_t dp_snat_port(struct dp_worker *w, const struct rte_hash *fes, void *key, void *port);
/* ClientIP affinity of @s for client @client (an address or its hash): the endpoint index
 * remembered, or -1; dp_aff_put records one. @ep_name names an endpoint (dp_ep_name). */
int dp_aff_get(struct dp_worker *w, const struct dp_svc *s, uint32_t client);
void dp_aff_put(struct dp_worker *w, const struct dp_svc *s, uint32_t client, uint32_t ep_name);

/* ---- neigh.c ---- */

/* Sends @m to neighbour @hop (16 bytes; IPv4 mapped) on port @po, or holds it while the
 * neighbour is resolved (ARP or a solicitation). Returns the neighbour when it was known
 * (the packet is out), NULL when the packet waits or was dropped. */
const struct neigh *dp_neigh_out(struct dp_worker *w, unsigned po, const uint8_t hop[16],
				 struct rte_mbuf *m);
void dp_neigh_learn(struct dp_worker *w, unsigned pi, const uint8_t ip[16],
		    const struct rte_ether_addr *mac);
/* Sends a neighbour solicitation for @target out of port @po. */
void dp_nd_solicit(struct dp_worker *w, unsigned po, const uint8_t target[16]);
/* A solicitation or advertisement's ICMPv6 part behind @ip: @type, @flags, @target, then
 * the link-layer option @opt with @mac; its checksum last. */
void dp_nd_body(struct rte_ipv6_hdr *ip, uint8_t type, uint8_t flags, const uint8_t target[16],
		uint8_t opt, const struct rte_ether_addr *mac);

/* ---- fastpath6.c, for fastpath.c ---- */

/* A burst of IPv6 packets from port @pi, as process() does IPv4 (@handed: from a ring). */
void dp_process6(struct dp_worker *w, const struct dp_gen *g, unsigned pi, struct rte_mbuf **pkts,
		 uint16_t n, bool handed);
/* Whether the UDP flow6 in @slot lost its endpoint (or its frontend). */
bool dp_udp_stale6(const struct dp_gen *g, const void *slot);

#endif
