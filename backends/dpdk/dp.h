/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside the DPDK backend: what the control thread (dpdk.c) builds and the worker lcores
 * (fastpath.c) read. The control thread owns a generation of immutable tables (services
 * by frontend, routes, ports' addresses) and publishes a new one with one atomic pointer
 * store; workers read the pointer once per burst and report a quiescent state after each
 * burst (rte_rcu_qsbr), so the old generation is freed once no worker can still hold it.
 * Everything a worker writes on the packet path (flows, neighbours, counters) is its own
 * (per lcore), so nothing there takes a lock.
 *
 * Several workers: each polls its own receive queue of every port (RSS, the kernel's
 * queue choice for a tap, or queue 0 alone on a port with one) and its own transmit
 * queue. A flow belongs to one worker, the one dp_owner() names from a packet of either
 * direction: a packet to a frontend by the client's address and port (the flow's
 * forward tuple); a packet to one of our addresses that is no frontend, a masqueraded
 * flow's reply, by its destination port, since a worker masquerades only with ports of
 * its own (DP_SNAT_LO and up, interleaved: port % workers); anything else, the reply of
 * a flow that kept the client's address or routed traffic, by its destination address
 * and port (the client's tuple again). A packet that reaches another worker and misses
 * its flow table is handed to the owner over a single-producer single-consumer ring
 * (one per ordered pair of workers). ARP a worker receives is copied to the others so
 * that each learns every neighbour. Two things are shared, both written only when a
 * flow is made: ClientIP affinity (a table of entries each under a sequence count; a
 * writer that finds an entry busy skips it) and the round-robin counters (atomic).
 *
 * Why this and not steering by the device alone: a flow's two directions are two
 * 5-tuples after NAT, so no receive hash sends both to one queue; DPVS chooses the SNAT
 * port so that the reply hashes back (for full-NAT) and adds flow-director rules, which
 * needs RSS with a known key and flow rules, and vdevs have neither. Here the owner is a
 * function of the packet and the generation, the same for both directions: the client's
 * address and port are the forward packet's source and a reply's destination when the
 * client's address is kept (externalTrafficPolicy Local, a cluster IP from a pod), and a
 * masqueraded reply carries the owner in its port. So nothing but the ring is needed for
 * a packet the device put on another worker's queue, no flow table is read by two
 * workers, and a device that does spread the flows well (RSS; a tap's kernel side, which
 * sends a flow's packets to the queue its replies came from) makes the ring rare.
 *
 * Fragments after a datagram's first (IPv4, IPv6) carry no ports, so no owner can be
 * computed from them. The worker that received the first fragment notes where it sent
 * it (its own flow, or the owner it handed it to) under the datagram's key, and sends
 * the later ones the same way (fastpath.c, fastpath6.c). That works because a device
 * puts every fragment of a datagram on one queue: RSS and a tap's kernel side hash
 * fragments by addresses alone.
 *
 * Both families: IPv6 has its own frontends' table, routes and flow tables (keys of 40
 * bytes would slow IPv4's 16), the same rules (NAT66, the same masquerading, steering by
 * the same owner function over the 16-byte address) and neighbour discovery; the
 * neighbour table holds both (IPv4 as ::ffff:a.b.c.d).
 */
#ifndef KP_DP_H
#define KP_DP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sys/socket.h>

#include <rte_common.h>
#include <rte_ether.h>
#include <rte_hash_crc.h>

struct rte_hash;
struct rte_mempool;
struct rte_rcu_qsbr;
struct rte_mbuf;

#define DP_MAX_PORTS 8
#define DP_MAX_ROUTES 32
#define DP_MAX_WORKERS 16
#define DP_BURST 32
#define DP_MAX_SERVICES 65536		/* stable service ids, for per-service counters */
#define DP_SNAT_LO 32768		/* masquerading source ports: DP_SNAT_LO-65535, above
					 * kube-proxy's default NodePort range */
#define DP_RING_SIZE 1024		/* packets in flight from one worker to another */
#define DP_AFF_SLOTS 65536		/* ClientIP affinity entries (shared) */

enum dp_role { DP_ROLE_CLIENT = 1, DP_ROLE_POD = 2, DP_ROLE_BOTH = 3 };
enum dp_policy { DP_POLICY_MAGLEV, DP_POLICY_RR };

/* A port as configured (control thread; copied into each generation). */
struct dp_port_cfg {
	char dev[128];			/* "net_tap0,iface=x", "0000:03:00.0" */
	char name[64];			/* the ethdev name: dev up to the first comma */
	uint32_t ip;			/* network order */
	uint8_t prefix;
	enum dp_role role;
	bool has_ip6;
	uint8_t ip6[16];		/* an IPv6 address, if the port has one */
	uint8_t prefix6;
};

struct dp_route {
	uint32_t net, mask;		/* network order */
	uint32_t gw;			/* next hop, 0: on link */
	uint8_t port;			/* index into the port array */
	uint8_t prefix;
};

struct dp_route6 {
	uint8_t net[16];		/* masked */
	uint8_t gw[16];			/* all zero: on link */
	uint8_t prefix;
	uint8_t port;
};

/* One endpoint of a service, as the data plane rewrites to it. */
struct dp_ep {
	uint32_t ip;			/* network order */
	uint16_t port;			/* network order */
};

struct dp_ep6 {
	uint8_t ip[16];
	uint16_t port;			/* network order */
};

/* A loadBalancerSourceRanges entry (network order). */
struct dp_range {
	uint32_t net, mask;
};

struct dp_range6 {
	uint8_t net[16];		/* masked */
	uint8_t prefix;
};

/* One frontend (VIP or node address, port, protocol) and what it balances over; IPv6
 * frontends have vip6, eps6 and ranges6 in place of vip, eps and ranges. */
struct dp_svc {
	uint8_t family;			/* AF_INET or AF_INET6 */
	uint8_t vip6[16];
	const struct dp_ep6 *eps6;
	const struct dp_range6 *ranges6;
	uint32_t vip;			/* network order */
	uint16_t vport;			/* network order */
	uint8_t proto;			/* IPPROTO_TCP or IPPROTO_UDP */
	bool masq;			/* SNAT to the egress port's address (kube-proxy's
					 * masquerade: external traffic, or all of it) */
	uint16_t id;			/* stable across generations: counters' index */
	uint32_t affinity_s;		/* ClientIP affinity timeout, 0: none */
	uint16_t n_eps;
	const struct dp_ep *eps;	/* in the generation's arena */
	uint32_t m;			/* Maglev table size (prime), 0 without endpoints */
	const uint16_t *maglev;		/* m entries: endpoint index */
	uint16_t n_ranges;		/* a LB frontend's source ranges: others are dropped */
	const struct dp_range *ranges;
	/* for the dump */
	const char *ns, *name, *port_name;
	uint8_t kind;			/* enum kp_frontend_kind */
	void *mem;			/* the names and ranges, one allocation */
};

/* What the frontends' table holds for a frontend deleted while flows of it may still
 * live (for the TCP time-out): no new flow is made to it, but its packets still find
 * the worker that holds their flow (dp_owner's first case). */
extern const struct dp_svc dp_gone;

/* One generation of what workers read. */
struct dp_gen {
	struct rte_hash *svcs;		/* key struct dp_svc_key -> struct dp_svc * */
	struct rte_hash *svcs6;		/* key struct dp_svc6_key -> struct dp_svc * */
	struct dp_svc *svc;		/* array of n_svc */
	uint32_t n_svc;
	struct dp_route routes[DP_MAX_ROUTES];	/* longest prefix first */
	uint32_t n_routes;
	enum dp_policy policy;
	uint32_t cluster_net, cluster_mask;	/* --cluster-cidr (first IPv4), 0/0 none */
	struct dp_route6 routes6[DP_MAX_ROUTES];	/* longest prefix first */
	uint32_t n_routes6;
	bool has_cluster6;
	uint8_t cluster6[16], cluster6_prefix;	/* --cluster-cidr's first IPv6 */
	bool masquerade_all;
	void *arena;			/* endpoints and Maglev tables */
};

struct dp_svc_key {
	uint32_t ip;
	uint16_t port;
	uint8_t proto;
	uint8_t pad;
} __rte_packed;

struct dp_svc6_key {
	uint8_t ip[16];
	uint16_t port;
	uint8_t proto;
	uint8_t pad;
} __rte_packed;

/* The 5-tuple of a packet, network order: the key of both flow-table entries. */
struct dp_flow_key {
	uint32_t src_ip, dst_ip;
	uint16_t src_port, dst_port;
	uint8_t proto;
	uint8_t pad[3];
} __rte_packed;

struct dp_flow6_key {
	uint8_t src_ip[16], dst_ip[16];
	uint16_t src_port, dst_port;
	uint8_t proto;
	uint8_t pad[3];
} __rte_packed;

enum dp_drop {
	DROP_NOT_IP,			/* not ARP, IPv4 or IPv6 */
	DROP_BAD_IP,			/* short, bad version/length/header checksum */
	DROP_TTL,			/* TTL or hop limit would reach 0 */
	DROP_NO_ROUTE,
	DROP_NO_NEIGH,			/* next hop unresolved and its queue full */
	DROP_NO_ENDPOINT,		/* a service frontend without endpoints */
	DROP_FLOW_FULL,			/* the flow table is full */
	DROP_NOT_FOR_US,		/* to one of our addresses, not a service or ping */
	DROP_TX,			/* the port did not take it */
	DROP_FRAG,			/* an IPv4 fragment to us before its datagram's first */
	DROP_RING,			/* the ring to the flow's worker was full */
	DROP_SOURCE,			/* to a LB frontend from outside its source ranges */
	_DROP_MAX
};

struct dp_port_stats {
	uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
};

struct dp_svc_stats {
	uint64_t pkts, bytes;
	uint64_t flows_created;
	int64_t flows_active;		/* created minus expired, on this lcore */
};

/* Counters of one lcore; read by the control thread without locks (64-bit stores). */
struct dp_stats {
	struct dp_port_stats port[DP_MAX_PORTS];
	uint64_t drops[_DROP_MAX];
	uint64_t flows_created, flows_expired, arp_replies, icmp_replies, routed;
	uint64_t handed;		/* packets passed to the flow's worker (ARP
					 * copies apart) */
	uint64_t related;		/* ICMP errors about a flow's packet, translated */
	uint64_t fragments;		/* IPv4 fragments after a first, sent its way */
	int64_t flows_active;
	struct dp_svc_stats *svc;	/* DP_MAX_SERVICES entries */
} __rte_cache_aligned;

struct dp_worker;

/* A ClientIP affinity entry; written under @seq (odd while a writer is in it). */
struct dp_aff {
	uint32_t seq;
	uint32_t client;		/* an IPv4 address, or an IPv6 one's hash; 0: free */
	uint32_t ep;			/* the endpoint's name (dp_ep_name) */
	uint16_t svc_id;
	uint64_t until;			/* TSC */
};

/* Shared by the control thread and the workers. */
struct dp {
	_Atomic(struct dp_gen *) gen;	/* the current generation */
	struct rte_rcu_qsbr *qs;
	atomic_bool stop;
	struct dp_port_cfg ports[DP_MAX_PORTS];
	struct rte_ether_addr macs[DP_MAX_PORTS];
	uint16_t port_ids[DP_MAX_PORTS];
	unsigned n_ports;
	bool has_v6;			/* a port has an IPv6 address: workers keep IPv6 flows */
	uint16_t n_rxq[DP_MAX_PORTS];	/* receive queues of a port: worker i polls queue i
					 * while i < n_rxq */
	unsigned n_workers;
	unsigned worker_lcore[DP_MAX_WORKERS];
	struct dp_worker *workers[DP_MAX_WORKERS];
	struct rte_ring *ring[DP_MAX_WORKERS][DP_MAX_WORKERS];	/* [from][to], n > 1 */
	struct dp_aff *aff;		/* DP_AFF_SLOTS */
	uint32_t *rr;			/* round robin, per service id (atomic) */
	struct rte_mempool *pool;
	uint32_t max_flows;		/* per worker */
	uint64_t tcp_timeout_tsc, tcp_closing_tsc, udp_timeout_tsc, syn_timeout_tsc;
	uint64_t tsc_hz;
	unsigned idle_sleep_us;		/* 0: busy poll */
};

/* ---- fastpath.c ---- */
/* A pool of @n mbufs that need not be IOVA-contiguous (with 4 KiB pages, --no-huge, the
 * default layout puts one mbuf per page at one offset, which aliases cache sets); NULL
 * and rte_errno on failure. */
struct rte_mempool *dp_pool_new(const char *name, unsigned n);
/* What the workers share (rings between them, affinity, round robin), once n_workers
 * is set; freed by dp_shared_free (also after a failed dp_shared_init). */
int dp_shared_init(struct dp *dp);
void dp_shared_free(struct dp *dp);
int dp_worker_new(struct dp *dp, unsigned idx, struct dp_worker **ret);
void dp_worker_free(struct dp_worker *w);
/* The lcore entry point (rte_eal_remote_launch): polls its ports until dp->stop. */
int dp_worker_main(void *arg);
const struct dp_stats *dp_worker_stats(const struct dp_worker *w);
/* Processes a burst received on port index @pi (for benchmarks and tests driving a
 * worker from their own loop); the packets are sent or freed. */
void dp_worker_process(struct dp_worker *w, unsigned pi, struct rte_mbuf **pkts, uint16_t n);
/* Flushes the worker's transmit buffers. */
void dp_worker_flush(struct dp_worker *w);
/* For benchmarks and tests that drive a worker themselves (dp_worker_process from their
 * own loop, not dp_worker_main): a known neighbour, the clock (TSC) the next bursts see,
 * one ageing step. */
void dp_worker_neigh_add(struct dp_worker *w, unsigned pi, uint32_t ip,
			 const struct rte_ether_addr *mac);
void dp_worker_neigh6_add(struct dp_worker *w, unsigned pi, const uint8_t ip[16],
			  const struct rte_ether_addr *mac);
void dp_worker_set_now(struct dp_worker *w, uint64_t tsc);
/* Handles the packets other workers handed to @w; returns their number. */
unsigned dp_worker_take_handed(struct dp_worker *w);
void dp_worker_sweep(struct dp_worker *w);

/* ---- maglev.c ---- */
/* The smallest table size (a prime) for @n endpoints: at least 100 * n, at least 251. */
uint32_t dp_maglev_size(unsigned n);
/* Fills @table (@m entries, @m prime) with endpoint indices by Maglev's population: each
 * endpoint gets about m / n entries, and adding or removing one endpoint moves only
 * about its share. Endpoints are named by their address and port. */
void dp_maglev_build(const struct dp_ep *eps, unsigned n, uint16_t *table, uint32_t m);
void dp_maglev_build6(const struct dp_ep6 *eps, unsigned n, uint16_t *table, uint32_t m);

/* The hash Maglev picks an endpoint with, from the 5-tuple's fields (rte_hash_crc()
 * reads a key as 64-bit words: an aliasing hazard on a key just written field by field). */
static inline uint32_t dp_flow_hash(const struct dp_flow_key *k)
{
	uint32_t h = rte_hash_crc_4byte(k->src_ip, 0x6b70u);

	h = rte_hash_crc_4byte(k->dst_ip, h);
	h = rte_hash_crc_4byte(((uint32_t)k->src_port << 16) | k->dst_port, h);
	return rte_hash_crc_4byte(k->proto, h);
}

/* The worker a client's address and port (network order) belong to, of @n. */
static inline unsigned dp_client_owner(uint32_t ip, uint16_t port, unsigned n)
{
	return rte_hash_crc_4byte(((uint32_t)port << 16) | 0x6b70u, rte_hash_crc_4byte(ip, 0)) % n;
}

/*
 * Makes the checksum of the @len-byte SCTP packet at @h again after a rewrite: RFC 4960
 * appendix B's CRC32c (the hash's polynomial) with the checksum field (bytes 8-11) taken
 * as zero, stored in the field's byte order. Read a word at a time through memcpy (see
 * dp_hash16). Not incremental: the ports are inside what it covers, so a rewrite costs a
 * pass over the packet (SCTP services are rare; TCP and UDP keep incremental updates).
 */
static inline void dp_sctp_sum(uint8_t *h, unsigned len)
{
	uint32_t crc = 0xffffffffu, v;
	unsigned i = 0;

	for (; i + 4 <= len; i += 4) {
		memcpy(&v, h + i, 4);
		crc = rte_hash_crc_4byte(i == 8 ? 0 : v, crc);
	}
	for (; i < len; i++)
		crc = rte_hash_crc_1byte(h[i], crc);
	v = rte_cpu_to_le_32(~crc);
	memcpy(h + 8, &v, 4);
}

/* A hash of 16 bytes, read as four unaligned words (not rte_hash_crc(), which reads a
 * key as 64-bit words: an aliasing hazard on bytes just written). */
static inline uint32_t dp_hash16(const uint8_t a[16], uint32_t seed)
{
	uint32_t v[4];

	memcpy(v, a, sizeof(v));
	seed = rte_hash_crc_4byte(v[0], seed);
	seed = rte_hash_crc_4byte(v[1], seed);
	seed = rte_hash_crc_4byte(v[2], seed);
	return rte_hash_crc_4byte(v[3], seed);
}

static inline unsigned dp_client_owner6(const uint8_t ip[16], uint16_t port, unsigned n)
{
	return rte_hash_crc_4byte(((uint32_t)port << 16) | 0x6b70u, dp_hash16(ip, 0)) % n;
}

static inline uint32_t dp_flow6_hash(const struct dp_flow6_key *k)
{
	uint32_t h = dp_hash16(k->src_ip, 0x6b70u);

	h = dp_hash16(k->dst_ip, h);
	h = rte_hash_crc_4byte(((uint32_t)k->src_port << 16) | k->dst_port, h);
	return rte_hash_crc_4byte(k->proto, h);
}

/* An endpoint's name, for affinity entries: its address and port hashed. */
static inline uint32_t dp_ep_name(uint32_t ip, uint16_t port)
{
	return rte_hash_crc_4byte(ip, port);
}

static inline uint32_t dp_ep6_name(const uint8_t ip[16], uint16_t port)
{
	return dp_hash16(ip, port);
}

static inline uint32_t dp_svc_ep_name(const struct dp_svc *s, uint16_t i)
{
	return s->family == AF_INET6 ? dp_ep6_name(s->eps6[i].ip, s->eps6[i].port) :
				       dp_ep_name(s->eps[i].ip, s->eps[i].port);
}

/* ---- checksums: RFC 1624 incremental updates, values as stored in the packet ---- */
static inline uint16_t dp_csum_fold(uint32_t s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static inline uint16_t dp_csum_upd32(uint16_t c, uint32_t o, uint32_t n)
{
	uint32_t s = (uint16_t)~c;

	s += (uint16_t)~(o & 0xffff) + (uint16_t)~(o >> 16);
	s += (n & 0xffff) + (n >> 16);
	return (uint16_t)~dp_csum_fold(s);
}

static inline uint16_t dp_csum_upd16(uint16_t c, uint16_t o, uint16_t n)
{
	uint32_t s = (uint16_t)~c + (uint16_t)(uint16_t)~o + n;

	return (uint16_t)~dp_csum_fold(s);
}

#endif
