// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DPDK data plane's worker (backends/dpdk/fastpath.c) measured on its own, without
 * kproxyd: packets per second of one or several lcores running the NAT loop over
 * synthetic flows.
 *
 * One net_ring port made with rte_eth_from_rings() with one queue per worker, whose
 * receive ring is its transmit ring, so what a worker sends comes back to it. The bench
 * builds by hand what the control side (dpdk.c) would: a struct dp with that port
 * (10.0.0.1/8), a generation with --services ClusterIP frontends 172.20.0.S:80 of
 * --endpoints endpoints 10.244.S.E:8080 each (Maglev tables), routes 10.128.0.0/10 via
 * 10.0.0.254 (the clients) and 10.0.0.0/8 on link (the endpoints), and --workers workers
 * whose neighbours are seeded, so no ARP is sent. --inflight packets circulate through
 * each worker; each lap of a packet is one pass through the worker. On the way back the
 * bench plays the hosts, as the natbench prototype did: a DNATed request becomes the
 * endpoint's reply (addresses and ports swapped, which leaves checksums as they are), a
 * reverse-NATed reply becomes the next client's request, so the requests cycle through
 * --flows client tuples 10.128.x.y:1024-61023, one service each.
 *
 * Several workers: the client tuples are split by the worker that owns them
 * (dp_client_owner(), as the data plane names a flow's owner), and each worker plays the
 * hosts only for its own, so in steady state every packet reaches the worker that owns
 * its flow, as ideal RSS would deliver it, and none is handed over (a check). Worker 0
 * runs on the main lcore, worker q on the q-th EAL worker lcore; each has its own ring,
 * flow table, tuples and counters, on cache lines of its own. The measured phase starts
 * and ends at the same TSC for all: each worker counts its own packets over that window.
 *
 * Modes: "established" makes every flow once (the insert phase, reported apart), then
 * measures the steady state, where every packet hits its flow; "new" sends nothing but
 * first packets (SYNs, or UDP), each of a flow not in the table, with a zero SYN and UDP
 * timeout so the ageing sweep frees flows a loop after they were made; "loop" replaces
 * the worker with a stand-in that rewrites addresses as a translation would, without a
 * lookup, the cost of the bench's own loop (ring I/O, playing the hosts). The loop is
 * dp_worker_main's: clock, receive, process, flush, ageing step, quiescent state.
 *
 * At the end the loops are drained and every packet checked from scratch (IPv4 and L4
 * checksums, the translation: the endpoint Maglev gives the 5-tuple, the VIP back, TTL,
 * MACs, and that the flow is the worker's whose queue it is in); every packet must still
 * be in its worker's loop and every mbuf back in the pool, and the workers' drop and
 * hand-over counters must be zero; any failure exits 1. One key=value line goes to
 * stdout: the totals, then each worker's rate (wQ_mpps), the share of the measured phase
 * its thread had the CPU (wQ_cpu: below 1 when other tasks ran there) and the workers'
 * mean rate (per_worker_mpps).
 *
 * Usage: bench-dpdk EAL-ARGS -- [--mode established|new|loop] [--flows N] [--inflight N]
 *        [--seconds S] [--max-flows N] [--proto tcp|udp] [--services N] [--endpoints N]
 *        [--workers N] [--family ipv4]
 * --flows counts all workers' tuples; --inflight and --max-flows are per worker (as
 * kproxyd's --dpdk-max-flows), the latter by default 1.25 x the worker's share of --flows.
 */
#define ALLOW_EXPERIMENTAL_API 1	/* rte_ipv4_udptcp_cksum_verify() */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "dp.h"

#define SVC_PORT 80
#define EP_PORT 8080
#define OUR_IP RTE_IPV4(10, 0, 0, 1)
#define GW_IP RTE_IPV4(10, 0, 0, 254)		/* the clients' next hop */
#define VIP_BASE RTE_IPV4(172, 20, 0, 1)	/* service s: VIP_BASE + s */
#define EP_BASE RTE_IPV4(10, 244, 0, 1)		/* service s, endpoint e: 10.244.s.(e + 1) */
#define VIP_NET RTE_IPV4(172, 20, 0, 0)		/* /16s: what tells requests from replies */
#define EP_NET RTE_IPV4(10, 244, 0, 0)
#define CLIENT_BASE RTE_IPV4(10, 128, 0, 0)
#define CLIENT_PORTS 60000			/* ports 1024.. per client address */
#define FRAME 64				/* bytes, without FCS */
#define TTL 64
#define WARM_LIMIT_S 30				/* the insert phase's bound */
#define START_ABORT UINT64_MAX			/* sync.start: no measured phase */

enum mode { MODE_ESTABLISHED, MODE_NEW, MODE_LOOP };

static const char *const mode_names[] = { "established", "new", "loop" };

static const char *const drop_names[_DROP_MAX] = {
	[DROP_NOT_IP] = "not_ip", [DROP_BAD_IP] = "bad_ip", [DROP_TTL] = "ttl",
	[DROP_NO_ROUTE] = "no_route", [DROP_NO_NEIGH] = "no_neigh",
	[DROP_NO_ENDPOINT] = "no_endpoint", [DROP_FLOW_FULL] = "flow_full",
	[DROP_NOT_FOR_US] = "not_for_us", [DROP_TX] = "tx", [DROP_FRAG] = "frag",
	[DROP_RING] = "worker_ring_full", [DROP_SOURCE] = "source_range",
};

/* The hosts' side of the wire: every client and endpoint has this MAC. */
static const struct rte_ether_addr peer_mac = {
	.addr_bytes = { 0x02, 0x00, 0x00, 0xbe, 0x4c, 0x01 }
};

struct result {
	uint64_t pkts, t0, t1;		/* measured phase: packets, TSC at its ends */
	uint64_t cpu_ns;		/* the lcore thread's CPU time in it: less than the
					 * phase when other tasks took the CPU */
	uint64_t warm_pkts, warm_tsc;	/* insert phase */
	uint64_t made;			/* flows made in the measured phase */
	unsigned cksum_ok, xlate_ok, checked;	/* of the packets drained */
};

struct bench;

/* One worker's part: written only by the lcore that runs it (and by the main lcore
 * before the launch and after the join), so it gets cache lines of its own. */
struct wk {
	struct bench *b;
	unsigned idx;			/* the worker's index, its queue */
	struct dp_worker *w;		/* NULL in the "loop" mode */
	struct rte_ring *ring;		/* its queue's receive and transmit ring */
	const uint32_t *ids;		/* the flows it owns, in the order it cycles them */
	uint32_t n_ids;
	uint32_t next;			/* index in ids of the next request's flow */
	uint64_t unexpected;		/* packets back that no host would send on */
	int err;			/* of its run: 0 or a negative errno */
	struct result res;
} __rte_cache_aligned;

/* What depends on the address family: the hosts' packets and their checks. IPv4 only
 * for now; IPv6 gets a table of its own beside ipv4 (its builder, its reflect, its
 * checks), picked with --family, once the data plane has IPv6. */
struct family {
	const char *name;
	/* the worker of @n that owns flow @id's client tuple */
	unsigned (*owner)(uint32_t id, unsigned n);
	/* the first request of flow @id, as its client sends it */
	void (*build)(const struct bench *b, struct rte_mbuf *m, uint32_t id);
	/* the "loop" mode's stand-in for the worker, on one packet */
	void (*stand_in)(struct rte_mbuf *m);
	/* the hosts' answer to a burst the worker sent (with @stand_in, also the stand-in's
	 * pass); packets no host would answer are counted and freed. Returns how many are
	 * left, compacted at the front of @pkts. */
	uint16_t (*reflect)(struct wk *k, struct rte_mbuf **pkts, uint16_t n, bool stand_in);
	bool (*cksum_ok)(struct rte_mbuf *m);
	/* whether @m, found in @k's queue at the end, is the translation it should be */
	bool (*xlate_ok)(const struct wk *k, struct rte_mbuf *m);
};

struct bench {
	/* options */
	enum mode mode;			/* --mode */
	uint8_t proto;			/* IPPROTO_TCP or IPPROTO_UDP */
	uint32_t flows;			/* client tuples cycled through, all workers' */
	uint32_t inflight;		/* packets in each worker's loop */
	uint32_t max_flows;		/* each worker's flow table */
	double seconds;			/* of the measured phase */
	unsigned n_svc, n_eps;		/* services, endpoints of each */
	unsigned n_workers;		/* --workers */
	const struct family *fam;	/* --family */
	/* what the bench built */
	struct dp dp;			/* one port, its pool, the generation */
	uint16_t port;			/* the port's ethdev id */
	bool port_made;
	unsigned n_mbufs;		/* in dp.pool */
	uint32_t *ids;			/* every flow id, grouped by owner (wk[q].ids) */
	/* the measured phase's start, on a line of its own (polled while waiting) */
	struct {
		atomic_uint ready;	/* workers past their insert phase */
		_Atomic uint64_t start;	/* TSC; 0: not yet, START_ABORT: none */
	} __rte_cache_aligned sync;
	struct wk wk[DP_MAX_WORKERS];
};

/* ---- addresses of the synthetic hosts (network order) ---- */

static inline uint32_t client_ip(uint32_t id)
{
	return rte_cpu_to_be_32(CLIENT_BASE + id / CLIENT_PORTS);
}

static inline uint16_t client_port(uint32_t id)
{
	return rte_cpu_to_be_16((uint16_t)(1024 + id % CLIENT_PORTS));
}

/* The flow id of a client address and port; UINT32_MAX if it is none of ours. */
static uint32_t id_of(const struct bench *b, uint32_t ip, uint16_t port)
{
	uint32_t a = rte_be_to_cpu_32(ip), p = rte_be_to_cpu_16(port);
	uint64_t id;

	if (a < CLIENT_BASE || p < 1024 || p >= 1024 + CLIENT_PORTS)
		return UINT32_MAX;
	id = (uint64_t)(a - CLIENT_BASE) * CLIENT_PORTS + p - 1024;
	return id < b->flows ? (uint32_t)id : UINT32_MAX;
}

static inline unsigned svc_of(const struct bench *b, uint32_t id)
{
	return id % b->n_svc;
}

static inline uint32_t vip_ip(unsigned s)
{
	return rte_cpu_to_be_32(VIP_BASE + s);
}

static inline uint32_t ep_ip(unsigned s, unsigned e)
{
	return rte_cpu_to_be_32(EP_BASE + (s << 8) + e);
}

/* By address, not port: client ports run through 80 and 8080 too. */
static inline bool in_net16(uint32_t ip, uint32_t net)
{
	return (rte_be_to_cpu_32(ip) & 0xffff0000) == net;
}

static inline uint32_t take_id(struct wk *k)
{
	uint32_t id = k->ids[k->next];

	if (++k->next == k->n_ids)
		k->next = 0;
	return id;
}

/* ---- IPv4 packets: header rewriting, checksums updated incrementally ---- */

static inline struct rte_ipv4_hdr *ip_of(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
}

/* TCP and UDP both start with the source and destination ports. */
static inline uint16_t *ports_of(struct rte_ipv4_hdr *ip)
{
	return (uint16_t *)(ip + 1);
}

static inline uint16_t *l4_sum(struct rte_ipv4_hdr *ip)
{
	if (ip->next_proto_id == IPPROTO_TCP)
		return &((struct rte_tcp_hdr *)(ip + 1))->cksum;
	return &((struct rte_udp_hdr *)(ip + 1))->dgram_cksum;
}

/* Rewrites the source (@src) or the destination of @ip's 5-tuple. */
static inline void set_end(struct rte_ipv4_hdr *ip, bool src, uint32_t addr, uint16_t port)
{
	uint32_t *a = src ? &ip->src_addr : &ip->dst_addr;
	uint16_t *p = ports_of(ip) + (src ? 0 : 1), *sum = l4_sum(ip), s;

	ip->hdr_checksum = dp_csum_upd32(ip->hdr_checksum, *a, addr);
	s = dp_csum_upd16(dp_csum_upd32(*sum, *a, addr), *p, port);
	if (ip->next_proto_id == IPPROTO_UDP && !s)
		s = 0xffff;		/* 0 would mean "no checksum" */
	*sum = s;
	*a = addr;
	*p = port;
}

static inline void set_ttl(struct rte_ipv4_hdr *ip, uint8_t ttl)
{
	/* TTL is the high byte of its 16-bit word with the protocol */
	ip->hdr_checksum = dp_csum_upd16(ip->hdr_checksum,
					 rte_cpu_to_be_16((uint16_t)(ip->time_to_live << 8)),
					 rte_cpu_to_be_16((uint16_t)(ttl << 8)));
	ip->time_to_live = ttl;
}

/* Swapping both ends leaves every checksum as it is. */
static inline void swap_ends(struct rte_ipv4_hdr *ip)
{
	uint16_t *p = ports_of(ip), t = p[0];
	uint32_t a = ip->src_addr;

	ip->src_addr = ip->dst_addr;
	ip->dst_addr = a;
	p[0] = p[1];
	p[1] = t;
}

/* Makes @ip the request of the worker's next flow: its client to its service's VIP. */
static inline void next_request(struct wk *k, struct rte_ipv4_hdr *ip)
{
	uint32_t id = take_id(k);

	set_end(ip, true, client_ip(id), client_port(id));
	set_end(ip, false, vip_ip(svc_of(k->b, id)), rte_cpu_to_be_16(SVC_PORT));
}

/* The hosts' answer to a packet the worker sent: false for one no host would answer. */
static inline bool reflect_one(struct wk *k, struct rte_mbuf *m)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1);
	enum mode mode = k->b->mode;

	if (eh->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    ip->next_proto_id != k->b->proto)
		return false;
	set_ttl(ip, TTL);
	if (in_net16(ip->dst_addr, EP_NET)) {		/* DNATed: client -> endpoint */
		if (mode == MODE_NEW)
			next_request(k, ip);		/* nobody answers a first packet */
		else
			swap_ends(ip);			/* the endpoint's reply */
		return true;
	}
	if (in_net16(ip->src_addr, VIP_NET) && mode != MODE_NEW) {
		swap_ends(ip);				/* reverse NATed: VIP -> client */
		next_request(k, ip);
		return true;
	}
	return false;
}

/* The "loop" mode's stand-in for the worker: what a translation does to the packet,
 * without the lookups (the service's first endpoint, the VIP back). */
static inline void fake_nat4(struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip = ip_of(m);

	set_ttl(ip, (uint8_t)(ip->time_to_live - 1));
	if (in_net16(ip->dst_addr, VIP_NET))
		set_end(ip, false, ep_ip(rte_be_to_cpu_32(ip->dst_addr) - VIP_BASE, 0),
			rte_cpu_to_be_16(EP_PORT));
	else
		set_end(ip, true, vip_ip((rte_be_to_cpu_32(ip->src_addr) >> 8) & 0xff),
			rte_cpu_to_be_16(SVC_PORT));
}

/* A burst's answers with a family's @one and @nat (constants: inlined, no indirect call
 * per packet). */
static __rte_always_inline uint16_t
reflect_burst(struct wk *k, struct rte_mbuf **pkts, uint16_t n, bool stand_in,
	      bool (*one)(struct wk *, struct rte_mbuf *), void (*nat)(struct rte_mbuf *))
{
	uint16_t kept = 0;

	for (uint16_t i = 0; i < n; i++) {
		if (i + 4 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 4], void *));
		if (likely(one(k, pkts[i]))) {
			if (stand_in)
				nat(pkts[i]);
			pkts[kept++] = pkts[i];
		} else {
			k->unexpected++;
			rte_pktmbuf_free(pkts[i]);
		}
	}
	return kept;
}

static uint16_t reflect4(struct wk *k, struct rte_mbuf **pkts, uint16_t n, bool stand_in)
{
	return reflect_burst(k, pkts, n, stand_in, reflect_one, fake_nat4);
}

static void build4(const struct bench *b, struct rte_mbuf *m, uint32_t id)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1);
	uint16_t l4 = b->proto == IPPROTO_TCP ? sizeof(struct rte_tcp_hdr) :
		      FRAME - sizeof(*eh) - sizeof(*ip);

	memset(eh, 0, FRAME);
	eh->dst_addr = b->dp.macs[0];
	eh->src_addr = peer_mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + l4));
	ip->time_to_live = TTL;
	ip->next_proto_id = b->proto;
	ip->src_addr = client_ip(id);
	ip->dst_addr = vip_ip(svc_of(b, id));
	ports_of(ip)[0] = client_port(id);
	ports_of(ip)[1] = rte_cpu_to_be_16(SVC_PORT);
	if (b->proto == IPPROTO_TCP) {
		struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);

		th->sent_seq = rte_cpu_to_be_32(id);
		th->data_off = 5 << 4;
		th->tcp_flags = b->mode == MODE_NEW ? RTE_TCP_SYN_FLAG : RTE_TCP_ACK_FLAG;
		th->rx_win = rte_cpu_to_be_16(65535);
	} else {
		((struct rte_udp_hdr *)(ip + 1))->dgram_len = rte_cpu_to_be_16(l4);
	}
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	*l4_sum(ip) = rte_ipv4_udptcp_cksum(ip, ip + 1);
	m->data_len = FRAME;
	m->pkt_len = FRAME;
}

static bool cksum4(struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip = ip_of(m);
	uint16_t got = ip->hdr_checksum, want;

	ip->hdr_checksum = 0;
	want = rte_ipv4_cksum(ip);
	ip->hdr_checksum = got;
	return got == want && rte_ipv4_udptcp_cksum_verify(ip, ip + 1) == 0;
}

static unsigned owner4(uint32_t id, unsigned n)
{
	return dp_client_owner(client_ip(id), client_port(id), n);
}

/* A request DNATed to the endpoint Maglev gives its 5-tuple, or a reply from the VIP, to
 * the next hop's MAC, of a flow that @k owns. */
static bool xlate4(const struct wk *k, struct rte_mbuf *m)
{
	const struct bench *b = k->b;
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = ip_of(m);
	const struct dp_gen *g = atomic_load(&b->dp.gen);
	uint16_t *p = ports_of(ip);
	uint32_t id;

	if (b->mode == MODE_LOOP)
		return true;
	if (!rte_is_same_ether_addr(&eh->dst_addr, &peer_mac) ||
	    !rte_is_same_ether_addr(&eh->src_addr, &b->dp.macs[0]) || ip->time_to_live != TTL - 1)
		return false;
	if (in_net16(ip->dst_addr, EP_NET)) {
		const struct dp_svc *s;
		struct dp_flow_key fk;

		id = id_of(b, ip->src_addr, p[0]);
		if (id == UINT32_MAX || p[1] != rte_cpu_to_be_16(EP_PORT) ||
		    owner4(id, b->n_workers) != k->idx)
			return false;
		s = &g->svc[svc_of(b, id)];
		fk = (struct dp_flow_key){ .src_ip = ip->src_addr, .dst_ip = s->vip,
					   .src_port = p[0], .dst_port = s->vport,
					   .proto = s->proto };
		return ip->dst_addr == s->eps[s->maglev[dp_flow_hash(&fk) % s->m]].ip;
	}
	id = id_of(b, ip->dst_addr, p[1]);
	return b->mode != MODE_NEW && id != UINT32_MAX && owner4(id, b->n_workers) == k->idx &&
	       p[0] == rte_cpu_to_be_16(SVC_PORT) && ip->src_addr == vip_ip(svc_of(b, id));
}

static const struct family ipv4 = {
	.name = "ipv4", .owner = owner4, .build = build4, .stand_in = fake_nat4,
	.reflect = reflect4, .cksum_ok = cksum4, .xlate_ok = xlate4,
};

/* ---- IPv6 packets: the same hosts, each address fd00::/96 and its IPv4 one, so that
 * ids, services and endpoints read the same; rewriting an address changes its last 32
 * bits only (no IP header checksum) ---- */

#define FRAME6 74				/* Ethernet, IPv6, TCP (or UDP and 12 bytes) */

static inline struct rte_ipv6_hdr *ip6_of(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, sizeof(struct rte_ether_hdr));
}

static inline void map6(uint8_t out[16], uint32_t v4)
{
	static const uint8_t prefix[12] = { 0xfd };

	memcpy(out, prefix, sizeof(prefix));
	memcpy(out + 12, &v4, 4);
}

static inline uint32_t low32(const uint8_t a[16])
{
	uint32_t v;

	memcpy(&v, a + 12, 4);
	return v;
}

static inline uint16_t *ports6(struct rte_ipv6_hdr *ip)
{
	return (uint16_t *)(ip + 1);
}

static inline uint16_t *l4_sum6(struct rte_ipv6_hdr *ip)
{
	if (ip->proto == IPPROTO_TCP)
		return &((struct rte_tcp_hdr *)(ip + 1))->cksum;
	return &((struct rte_udp_hdr *)(ip + 1))->dgram_cksum;
}

static inline void set_end6(struct rte_ipv6_hdr *ip, bool src, uint32_t addr, uint16_t port)
{
	uint8_t *a = src ? ip->src_addr : ip->dst_addr;
	uint16_t *p = ports6(ip) + (src ? 0 : 1), *sum = l4_sum6(ip), v;
	uint32_t old = low32(a);

	v = dp_csum_upd16(dp_csum_upd32(*sum, old, addr), *p, port);
	if (ip->proto == IPPROTO_UDP && !v)
		v = 0xffff;
	*sum = v;
	memcpy(a + 12, &addr, 4);
	*p = port;
}

static inline void swap_ends6(struct rte_ipv6_hdr *ip)
{
	uint16_t *p = ports6(ip), t = p[0];
	uint8_t a[16];

	memcpy(a, ip->src_addr, 16);
	memcpy(ip->src_addr, ip->dst_addr, 16);
	memcpy(ip->dst_addr, a, 16);
	p[0] = p[1];
	p[1] = t;
}

static inline void next_request6(struct wk *k, struct rte_ipv6_hdr *ip)
{
	uint32_t id = take_id(k);

	set_end6(ip, true, client_ip(id), client_port(id));
	set_end6(ip, false, vip_ip(svc_of(k->b, id)), rte_cpu_to_be_16(SVC_PORT));
}

static inline bool reflect_one6(struct wk *k, struct rte_mbuf *m)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eh + 1);
	enum mode mode = k->b->mode;

	if (eh->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6) || ip->proto != k->b->proto)
		return false;
	ip->hop_limits = TTL;
	if (in_net16(low32(ip->dst_addr), EP_NET)) {
		if (mode == MODE_NEW)
			next_request6(k, ip);
		else
			swap_ends6(ip);
		return true;
	}
	if (in_net16(low32(ip->src_addr), VIP_NET) && mode != MODE_NEW) {
		swap_ends6(ip);
		next_request6(k, ip);
		return true;
	}
	return false;
}

static inline void fake_nat6(struct rte_mbuf *m)
{
	struct rte_ipv6_hdr *ip = ip6_of(m);

	ip->hop_limits--;
	if (in_net16(low32(ip->dst_addr), VIP_NET))
		set_end6(ip, false, ep_ip(rte_be_to_cpu_32(low32(ip->dst_addr)) - VIP_BASE, 0),
			 rte_cpu_to_be_16(EP_PORT));
	else
		set_end6(ip, true, vip_ip((rte_be_to_cpu_32(low32(ip->src_addr)) >> 8) & 0xff),
			 rte_cpu_to_be_16(SVC_PORT));
}

static uint16_t reflect6(struct wk *k, struct rte_mbuf **pkts, uint16_t n, bool stand_in)
{
	return reflect_burst(k, pkts, n, stand_in, reflect_one6, fake_nat6);
}

static void build6(const struct bench *b, struct rte_mbuf *m, uint32_t id)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eh + 1);
	uint16_t l4 = FRAME6 - sizeof(*eh) - sizeof(*ip);

	memset(eh, 0, FRAME6);
	eh->dst_addr = b->dp.macs[0];
	eh->src_addr = peer_mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	ip->vtc_flow = rte_cpu_to_be_32(0x60000000u);
	ip->payload_len = rte_cpu_to_be_16(l4);
	ip->proto = b->proto;
	ip->hop_limits = TTL;
	map6(ip->src_addr, client_ip(id));
	map6(ip->dst_addr, vip_ip(svc_of(b, id)));
	ports6(ip)[0] = client_port(id);
	ports6(ip)[1] = rte_cpu_to_be_16(SVC_PORT);
	if (b->proto == IPPROTO_TCP) {
		struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);

		th->sent_seq = rte_cpu_to_be_32(id);
		th->data_off = 5 << 4;
		th->tcp_flags = b->mode == MODE_NEW ? RTE_TCP_SYN_FLAG : RTE_TCP_ACK_FLAG;
		th->rx_win = rte_cpu_to_be_16(65535);
	} else {
		((struct rte_udp_hdr *)(ip + 1))->dgram_len = rte_cpu_to_be_16(l4);
	}
	*l4_sum6(ip) = rte_ipv6_udptcp_cksum(ip, ip + 1);
	m->data_len = FRAME6;
	m->pkt_len = FRAME6;
}

static bool cksum6(struct rte_mbuf *m)
{
	struct rte_ipv6_hdr *ip = ip6_of(m);

	return rte_ipv6_udptcp_cksum_verify(ip, ip + 1) == 0;
}

static unsigned owner6(uint32_t id, unsigned n)
{
	uint8_t a[16];

	map6(a, client_ip(id));
	return dp_client_owner6(a, client_port(id), n);
}

static bool xlate6(const struct wk *k, struct rte_mbuf *m)
{
	const struct bench *b = k->b;
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv6_hdr *ip = ip6_of(m);
	const struct dp_gen *g = atomic_load(&b->dp.gen);
	uint16_t *p = ports6(ip);
	uint32_t id;

	if (b->mode == MODE_LOOP)
		return true;
	if (!rte_is_same_ether_addr(&eh->dst_addr, &peer_mac) ||
	    !rte_is_same_ether_addr(&eh->src_addr, &b->dp.macs[0]) || ip->hop_limits != TTL - 1)
		return false;
	if (in_net16(low32(ip->dst_addr), EP_NET)) {
		const struct dp_svc *s;
		struct dp_flow6_key fk = { .src_port = p[0], .dst_port = rte_cpu_to_be_16(SVC_PORT),
					   .proto = b->proto };

		id = id_of(b, low32(ip->src_addr), p[0]);
		if (id == UINT32_MAX || p[1] != rte_cpu_to_be_16(EP_PORT) ||
		    owner6(id, b->n_workers) != k->idx)
			return false;
		s = &g->svc[svc_of(b, id)];
		memcpy(fk.src_ip, ip->src_addr, 16);
		memcpy(fk.dst_ip, s->vip6, 16);
		return !memcmp(ip->dst_addr, s->eps6[s->maglev[dp_flow6_hash(&fk) % s->m]].ip, 16);
	}
	id = id_of(b, low32(ip->dst_addr), p[1]);
	return b->mode != MODE_NEW && id != UINT32_MAX && owner6(id, b->n_workers) == k->idx &&
	       p[0] == rte_cpu_to_be_16(SVC_PORT) && low32(ip->src_addr) == vip_ip(svc_of(b, id));
}

static const struct family ipv6 = {
	.name = "ipv6", .owner = owner6, .build = build6, .stand_in = fake_nat6,
	.reflect = reflect6, .cksum_ok = cksum6, .xlate_ok = xlate6,
};

static const struct family *const families[] = { &ipv4, &ipv6 };

/* ---- set-up: what dpdk.c would build ---- */

/* The loopback port: queue q's receive ring is its transmit ring, one ring per worker
 * (single producer, single consumer: only worker q touches it). */
static int make_port(struct bench *b)
{
	struct rte_eth_conf conf = { 0 };
	struct rte_ring *rings[DP_MAX_WORKERS];
	uint16_t nq = (uint16_t)b->n_workers;
	int socket = (int)rte_socket_id(), port;
	char name[RTE_RING_NAMESIZE];

	for (unsigned q = 0; q < nq; q++) {
		snprintf(name, sizeof(name), "bench_loop%u", q);
		b->wk[q].ring = rte_ring_create(name, rte_align32pow2(b->inflight + DP_BURST * 4),
						socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (!b->wk[q].ring)
			return -rte_errno;
		rings[q] = b->wk[q].ring;
	}
	port = rte_eth_from_rings("net_ring_bench", rings, nq, rings, nq, (unsigned)socket);
	if (port < 0)
		return -rte_errno;
	b->port = (uint16_t)port;
	b->port_made = true;
	if (rte_eth_dev_configure(b->port, nq, nq, &conf) < 0)
		return -EIO;
	for (uint16_t q = 0; q < nq; q++)
		if (rte_eth_rx_queue_setup(b->port, q, 1024, (unsigned)socket, NULL,
					   b->dp.pool) < 0 ||
		    rte_eth_tx_queue_setup(b->port, q, 1024, (unsigned)socket, NULL) < 0)
			return -EIO;
	if (rte_eth_dev_start(b->port) < 0)
		return -EIO;
	rte_eth_macaddr_get(b->port, &b->dp.macs[0]);
	return 0;
}

static void gen_free(struct dp_gen *g)
{
	if (!g)
		return;
	rte_hash_free(g->svcs);
	rte_hash_free(g->svcs6);
	free(g->svc);
	free(g->arena);
	free(g);
}

static int add_services(struct bench *b, struct dp_gen *g)
{
	uint32_t m = dp_maglev_size(b->n_eps);
	size_t n_ep = (size_t)b->n_svc * b->n_eps;
	struct dp_ep *eps = g->arena;
	struct dp_ep6 *eps6 = (struct dp_ep6 *)(eps + n_ep);
	uint16_t *tables = (uint16_t *)(eps6 + n_ep);
	bool v6 = b->fam == &ipv6;

	for (unsigned s = 0; s < b->n_svc; s++) {
		struct dp_svc *sv = &g->svc[s];
		struct dp_svc_key k __rte_aligned(8) = { .ip = vip_ip(s),
							 .port = rte_cpu_to_be_16(SVC_PORT),
							 .proto = b->proto };
		struct dp_svc6_key k6 __rte_aligned(8) = { .port = k.port, .proto = k.proto };

		map6(k6.ip, k.ip);
		for (unsigned e = 0; e < b->n_eps; e++) {
			eps[s * b->n_eps + e] = (struct dp_ep){ .ip = ep_ip(s, e),
								.port = rte_cpu_to_be_16(EP_PORT) };
			map6(eps6[s * b->n_eps + e].ip, ep_ip(s, e));
			eps6[s * b->n_eps + e].port = rte_cpu_to_be_16(EP_PORT);
		}
		*sv = (struct dp_svc){ .family = v6 ? AF_INET6 : AF_INET, .vip = k.ip,
				       .vport = k.port, .proto = k.proto, .id = (uint16_t)s,
				       .n_eps = (uint16_t)b->n_eps, .eps = eps + s * b->n_eps,
				       .eps6 = eps6 + s * b->n_eps, .m = m, .maglev = tables + s * m,
				       .ns = "bench", .name = "bench", .port_name = "http" };
		memcpy(sv->vip6, k6.ip, 16);
		if (v6)
			dp_maglev_build6(sv->eps6, b->n_eps, tables + s * m, m);
		else
			dp_maglev_build(sv->eps, b->n_eps, tables + s * m, m);
		if (v6 ? rte_hash_add_key_data(g->svcs6, &k6, sv) < 0 :
			 rte_hash_add_key_data(g->svcs, &k, sv) < 0)
			return -ENOSPC;
		g->n_svc++;
	}
	return 0;
}

/* One generation: the services, the routes (longest prefix first), Maglev. */
static int make_gen(struct bench *b)
{
	struct rte_hash_parameters hp = { .name = "bench_svcs", .key_len = sizeof(struct dp_svc_key),
					  .hash_func = rte_hash_crc,
					  .socket_id = (int)rte_socket_id() };
	size_t n_ep = (size_t)b->n_svc * b->n_eps, m = dp_maglev_size(b->n_eps);
	struct dp_gen *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	hp.entries = b->n_svc * 2 < 64 ? 64 : b->n_svc * 2;
	g->svcs = rte_hash_create(&hp);
	hp.name = "bench_svcs6";
	hp.key_len = sizeof(struct dp_svc6_key);
	g->svcs6 = rte_hash_create(&hp);
	g->svc = calloc(b->n_svc, sizeof(*g->svc));
	g->arena = malloc(n_ep * (sizeof(struct dp_ep) + sizeof(struct dp_ep6)) +
			  b->n_svc * m * sizeof(uint16_t));
	if (!g->svcs || !g->svcs6 || !g->svc || !g->arena || add_services(b, g) < 0) {
		gen_free(g);
		return -ENOMEM;
	}
	g->routes[0] = (struct dp_route){ .net = rte_cpu_to_be_32(CLIENT_BASE),
					  .mask = rte_cpu_to_be_32(~0u << 22),
					  .gw = rte_cpu_to_be_32(GW_IP), .prefix = 10 };
	g->routes[1] = (struct dp_route){ .net = rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 0)),
					  .mask = rte_cpu_to_be_32(~0u << 24), .prefix = 8 };
	g->n_routes = 2;
	/* the same in IPv6: fd00::/96 and the IPv4 prefix */
	map6(g->routes6[0].net, rte_cpu_to_be_32(CLIENT_BASE));
	map6(g->routes6[0].gw, rte_cpu_to_be_32(GW_IP));
	g->routes6[0].prefix = 96 + 10;
	map6(g->routes6[1].net, rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 0)));
	g->routes6[1].prefix = 96 + 8;
	g->n_routes6 = 2;
	g->policy = DP_POLICY_MAGLEV;
	atomic_store(&b->dp.gen, g);
	return 0;
}

/* Splits the flow ids by owner: worker q cycles through wk[q].ids, in id order. Without
 * --max-flows, each worker's flow table is sized for the largest share with the headroom
 * one worker's table has for all flows (4 hash slots per flow at 1M): a table sized for
 * every flow on each worker would double the randomly accessed bucket array the workers
 * share the last-level cache with (at 1M flows on 2 workers that cost about 8%). */
static int split_flows(struct bench *b)
{
	uint32_t count[DP_MAX_WORKERS] = { 0 }, at[DP_MAX_WORKERS], sum = 0, most = 0;

	b->ids = malloc((size_t)b->flows * sizeof(*b->ids));
	if (!b->ids)
		return -ENOMEM;
	for (uint32_t id = 0; id < b->flows; id++)
		count[b->fam->owner(id, b->n_workers)]++;
	for (unsigned q = 0; q < b->n_workers; q++) {
		if (!count[q] || (b->mode == MODE_NEW && count[q] < 4 * b->inflight)) {
			/* see parse_args() for new flows' bound */
			fprintf(stderr, "bench-dpdk: worker %u owns %u of the %u tuples, needs %u: "
				"more --flows\n", q, count[q], b->flows,
				b->mode == MODE_NEW ? 4 * b->inflight : 1);
			return -EINVAL;
		}
		at[q] = sum;
		b->wk[q].ids = b->ids + sum;
		b->wk[q].n_ids = count[q];
		sum += count[q];
		most = RTE_MAX(most, count[q]);
	}
	if (!b->max_flows)
		b->max_flows = most + most / 4 < 64 ? 64 : most + most / 4;
	for (uint32_t id = 0; id < b->flows; id++)
		b->ids[at[b->fam->owner(id, b->n_workers)]++] = id;
	return 0;
}

/* Worker q and its seeded neighbours: the clients' gateway and every endpoint. */
static int make_worker(struct bench *b, unsigned q)
{
	struct dp_worker *w;
	uint8_t a[16];
	int r = dp_worker_new(&b->dp, q, &w);

	if (r < 0)
		return r;
	b->dp.workers[q] = b->wk[q].w = w;

	dp_worker_neigh_add(w, 0, rte_cpu_to_be_32(GW_IP), &peer_mac);
	map6(a, rte_cpu_to_be_32(GW_IP));
	dp_worker_neigh6_add(w, 0, a, &peer_mac);
	for (unsigned s = 0; s < b->n_svc; s++)
		for (unsigned e = 0; e < b->n_eps; e++) {
			dp_worker_neigh_add(w, 0, ep_ip(s, e), &peer_mac);
			map6(a, ep_ip(s, e));
			dp_worker_neigh6_add(w, 0, a, &peer_mac);
		}
	return 0;
}

/* The struct dp of one port and --workers workers (the first on this lcore). */
static int make_dp(struct bench *b)
{
	struct dp *dp = &b->dp;
	uint64_t hz = rte_get_tsc_hz();
	unsigned lcore = rte_lcore_id(), q = 0;
	int r;

	snprintf(dp->ports[0].dev, sizeof(dp->ports[0].dev), "net_ring_bench");
	snprintf(dp->ports[0].name, sizeof(dp->ports[0].name), "net_ring_bench");
	dp->ports[0].ip = rte_cpu_to_be_32(OUR_IP);
	dp->ports[0].prefix = 8;
	dp->ports[0].role = DP_ROLE_BOTH;
	if (b->fam == &ipv6) {		/* IPv6 flow tables only where they are used */
		dp->has_v6 = dp->ports[0].has_ip6 = true;
		map6(dp->ports[0].ip6, rte_cpu_to_be_32(OUR_IP));
		dp->ports[0].prefix6 = 96 + 8;
	}
	dp->n_ports = 1;
	dp->n_rxq[0] = (uint16_t)b->n_workers;
	dp->n_workers = b->n_workers;
	dp->worker_lcore[q++] = lcore;
	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (q < b->n_workers)
			dp->worker_lcore[q++] = lcore;
	}
	dp->tsc_hz = hz;
	dp->tcp_timeout_tsc = 3600 * hz;
	dp->tcp_closing_tsc = 10 * hz;
	/* new flows: a flow is freed by the sweep once a loop has passed since it was made */
	dp->syn_timeout_tsc = b->mode == MODE_NEW ? 0 : 30 * hz;
	dp->udp_timeout_tsc = b->mode == MODE_NEW ? 0 : 30 * hz;
	for (q = 0; q < b->n_workers; q++)
		b->wk[q] = (struct wk){ .b = b, .idx = q };
	r = split_flows(b);
	if (r < 0)
		return r;
	dp->max_flows = b->max_flows;
	b->n_mbufs = b->n_workers * b->inflight + 4096;
	dp->pool = dp_pool_new("bench_mbufs", b->n_mbufs);
	if (!dp->pool)
		return -ENOMEM;
	r = make_port(b);
	if (r < 0)
		return r;
	dp->port_ids[0] = b->port;
	dp->qs = rte_zmalloc("bench_qsbr", rte_rcu_qsbr_get_memsize(b->n_workers),
			     RTE_CACHE_LINE_SIZE);
	if (!dp->qs || rte_rcu_qsbr_init(dp->qs, b->n_workers) < 0)
		return -ENOMEM;
	if (dp_shared_init(dp) < 0)
		return -ENOMEM;
	r = make_gen(b);
	for (q = 0; !r && b->mode != MODE_LOOP && q < b->n_workers; q++)
		r = make_worker(b, q);
	return r;
}

static void free_dp(struct bench *b)
{
	for (unsigned q = 0; q < b->n_workers; q++)
		dp_worker_free(b->wk[q].w);
	dp_shared_free(&b->dp);
	gen_free(atomic_load(&b->dp.gen));
	if (b->port_made) {
		rte_eth_dev_stop(b->port);
		rte_eth_dev_close(b->port);
	}
	for (unsigned q = 0; q < b->n_workers; q++)
		rte_ring_free(b->wk[q].ring);
	rte_free(b->dp.qs);
	rte_mempool_free(b->dp.pool);
	free(b->ids);
}

/* ---- the loop ---- */

/* Puts the first request of the worker's first --inflight flows in its loop, through
 * the worker (or the stand-in). */
static int inject(struct wk *k)
{
	const struct bench *b = k->b;
	struct rte_mbuf *pkts[DP_BURST];

	for (uint32_t i = 0; i < b->inflight; i += DP_BURST) {
		uint16_t n = (uint16_t)RTE_MIN((uint32_t)DP_BURST, b->inflight - i);

		if (rte_pktmbuf_alloc_bulk(b->dp.pool, pkts, n) < 0)
			return -ENOMEM;
		for (uint16_t j = 0; j < n; j++)
			b->fam->build(b, pkts[j], take_id(k));
		if (!k->w) {
			for (uint16_t j = 0; j < n; j++)
				b->fam->stand_in(pkts[j]);
			if (rte_eth_tx_burst(b->port, (uint16_t)k->idx, pkts, n) != n)
				return -EIO;
			continue;
		}
		dp_worker_set_now(k->w, rte_rdtsc());
		dp_worker_process(k->w, 0, pkts, n);
		dp_worker_flush(k->w);
	}
	return 0;
}

static uint64_t drops_of(const struct dp_stats *st)
{
	uint64_t n = 0;

	for (int i = 0; i < _DROP_MAX; i++)
		n += st->drops[i];
	return n;
}

/* The same loop with the stand-in in place of the worker. */
static uint64_t spin_loop(struct wk *k, uint64_t until)
{
	const struct bench *b = k->b;
	uint16_t q = (uint16_t)k->idx;
	struct rte_mbuf *pkts[DP_BURST];
	uint64_t done = 0, now;

	do {
		uint16_t n = rte_eth_rx_burst(b->port, q, pkts, DP_BURST), sent;

		now = rte_rdtsc();
		n = b->fam->reflect(k, pkts, n, true);
		sent = rte_eth_tx_burst(b->port, q, pkts, n);
		if (unlikely(sent < n)) {
			k->unexpected += n - sent;
			rte_pktmbuf_free_bulk(pkts + sent, n - sent);
		}
		rte_rcu_qsbr_quiescent(b->dp.qs, k->idx);
		done += n;
	} while (now < until);
	return done;
}

/* dp_worker_main's loop with the hosts played in it, until the TSC passes @until or, if
 * @flows is not 0, the worker has made @flows flows or dropped a packet (which leaves the
 * loop with one less); at least once. The worker takes what others handed it, as
 * dp_worker_main does (nothing, when the tuples are split right: a check). Returns the
 * packets processed. */
static uint64_t spin(struct wk *k, uint64_t flows, uint64_t until)
{
	const struct bench *b = k->b;
	const struct dp_stats *st;
	struct rte_mbuf *pkts[DP_BURST];
	uint16_t q = (uint16_t)k->idx;
	uint64_t done = 0, now;

	if (!k->w)
		return spin_loop(k, until);
	st = dp_worker_stats(k->w);
	do {
		uint16_t n = rte_eth_rx_burst(b->port, q, pkts, DP_BURST);

		now = rte_rdtsc();
		dp_worker_set_now(k->w, now);
		n = b->fam->reflect(k, pkts, n, false);
		if (n)
			dp_worker_process(k->w, 0, pkts, n);
		if (b->n_workers > 1)
			dp_worker_take_handed(k->w);
		dp_worker_flush(k->w);
		dp_worker_sweep(k->w);
		rte_rcu_qsbr_quiescent(b->dp.qs, k->idx);
		done += n;
	} while (now < until && (!flows || (st->flows_created < flows && !drops_of(st))));
	return done;
}

/* Worker 0's part in the start: once every worker is past its insert phase, a start a
 * little ahead (so that every worker sees it before it comes), or none after a failure. */
static void start_all(struct wk *k)
{
	struct bench *b = k->b;
	uint64_t t0;

	while (atomic_load(&b->sync.ready) < b->n_workers)
		spin(k, 0, 0);
	t0 = rte_rdtsc() + rte_get_tsc_hz() / 1000;
	for (unsigned q = 0; q < b->n_workers; q++)
		if (b->wk[q].err)
			t0 = START_ABORT;
	atomic_store(&b->sync.start, t0);
}

/* The insert phase: until every flow of the worker has been made once. */
static int insert(struct wk *k)
{
	const struct dp_stats *st = dp_worker_stats(k->w);
	uint64_t t0 = rte_rdtsc();

	k->res.warm_pkts = spin(k, k->n_ids, t0 + WARM_LIMIT_S * rte_get_tsc_hz());
	k->res.warm_tsc = rte_rdtsc() - t0;
	return st->flows_created < k->n_ids ? -ETIMEDOUT : 0;
}

/* One worker's run, on its lcore (rte_eal_remote_launch, or called on the main lcore for
 * worker 0): fill its loop, the insert phase, then the measured phase, which starts and
 * ends at the same TSC on every worker. */
static int run_worker(void *arg)
{
	struct wk *k = arg;
	struct bench *b = k->b;
	const struct dp_stats *st = k->w ? dp_worker_stats(k->w) : NULL;
	struct timespec c0, c1;
	uint64_t t0, made0;

	rte_rcu_qsbr_thread_register(b->dp.qs, k->idx);
	rte_rcu_qsbr_thread_online(b->dp.qs, k->idx);
	k->err = inject(k);
	if (!k->err && k->w)
		k->err = insert(k);
	atomic_fetch_add(&b->sync.ready, 1);
	if (k->idx == 0)
		start_all(k);
	/* the loop keeps turning while others finish their insert phase */
	while (!(t0 = atomic_load(&b->sync.start)))
		spin(k, 0, 0);
	if (t0 != START_ABORT && !k->err) {
		spin(k, 0, t0);
		made0 = st ? st->flows_created : 0;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		k->res.t0 = rte_rdtsc();
		k->res.pkts = spin(k, 0, t0 + (uint64_t)(b->seconds * rte_get_tsc_hz()));
		k->res.t1 = rte_rdtsc();
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		k->res.cpu_ns = (uint64_t)((c1.tv_sec - c0.tv_sec) * 1000000000LL +
					   (c1.tv_nsec - c0.tv_nsec));
		k->res.made = st ? st->flows_created - made0 : 0;
	}
	rte_rcu_qsbr_thread_offline(b->dp.qs, k->idx);
	rte_rcu_qsbr_thread_unregister(b->dp.qs, k->idx);
	return k->err;
}

/* Workers 1.. on the EAL worker lcores, worker 0 here; returns the first error. */
static int run(struct bench *b)
{
	unsigned q = 1, lcore;
	int r = 0;

	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (q == b->n_workers)
			break;
		r = rte_eal_remote_launch(run_worker, &b->wk[q], lcore);
		if (r < 0)
			break;
		q++;
	}
	if (q == b->n_workers)
		run_worker(&b->wk[0]);
	else
		atomic_store(&b->sync.start, START_ABORT);	/* the launched ones return */
	rte_eal_mp_wait_lcore();
	for (q = 0; !r && q < b->n_workers; q++)
		r = b->wk[q].err;
	return r;
}

/* Prints what stopped a worker's insert phase. */
static void insert_failed(const struct wk *k)
{
	const struct dp_stats *st = dp_worker_stats(k->w);

	fprintf(stderr, "bench-dpdk: worker %u: insert phase: %" PRIu64 " of %u flows made in "
		"%.1f s, %" PRIu64 " packets dropped\n", k->idx, st->flows_created, k->n_ids,
		k->res.warm_tsc / (double)rte_get_tsc_hz(), drops_of(st));
	for (int i = 0; i < _DROP_MAX; i++)
		if (st->drops[i])
			fprintf(stderr, "bench-dpdk: drop_%s=%" PRIu64 "\n", drop_names[i],
				st->drops[i]);
}

/* ---- the checks ---- */

/* Drains each worker's loop, burst by burst: every packet checked and counted. */
static void drain(struct bench *b)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint16_t n;

	for (unsigned q = 0; q < b->n_workers; q++) {
		struct wk *k = &b->wk[q];

		while ((n = rte_eth_rx_burst(b->port, (uint16_t)q, pkts, DP_BURST))) {
			for (uint16_t i = 0; i < n; i++) {
				k->res.cksum_ok += b->fam->cksum_ok(pkts[i]);
				k->res.xlate_ok += b->fam->xlate_ok(k, pkts[i]);
			}
			k->res.checked += n;
			rte_pktmbuf_free_bulk(pkts, n);
		}
	}
}

static void add_stats(struct dp_stats *to, const struct dp_stats *st)
{
	for (int i = 0; i < _DROP_MAX; i++)
		to->drops[i] += st->drops[i];
	to->flows_active += st->flows_active;
	to->flows_expired += st->flows_expired;
	to->handed += st->handed;
}

/* The workers' figures added up; the phases' spans run from the first worker's start
 * to the last one's end. */
static void add_up(const struct bench *b, struct result *t, struct dp_stats *st,
		   uint64_t *ret_unexpected)
{
	uint64_t unexpected = 0;

	*t = (struct result){ .t0 = UINT64_MAX };
	memset(st, 0, sizeof(*st));
	for (unsigned q = 0; q < b->n_workers; q++) {
		const struct wk *k = &b->wk[q];
		const struct result *r = &k->res;

		t->pkts += r->pkts;
		t->t0 = RTE_MIN(t->t0, r->t0);
		t->t1 = RTE_MAX(t->t1, r->t1);
		t->warm_pkts += r->warm_pkts;
		t->warm_tsc = RTE_MAX(t->warm_tsc, r->warm_tsc);
		t->made += r->made;
		t->cksum_ok += r->cksum_ok;
		t->xlate_ok += r->xlate_ok;
		t->checked += r->checked;
		unexpected += k->unexpected;
		if (k->w)
			add_stats(st, dp_worker_stats(k->w));
	}
	*ret_unexpected = unexpected;
}

/* Whether worker @k's own figures hold: its packets all back, its checks all passed;
 * established: no packet made a flow; new: every packet did. */
static bool worker_ok(const struct wk *k)
{
	const struct bench *b = k->b;
	const struct result *r = &k->res;
	const struct dp_stats *st = k->w ? dp_worker_stats(k->w) : NULL;
	bool ok = r->pkts && r->checked == b->inflight && r->cksum_ok == r->checked &&
		  r->xlate_ok == r->checked && !k->unexpected &&
		  (!st || (!drops_of(st) && !st->handed));

	if (b->mode == MODE_ESTABLISHED)
		ok = ok && !r->made;
	else if (b->mode == MODE_NEW)
		ok = ok && r->made == r->pkts;
	if (!ok && b->n_workers > 1)
		fprintf(stderr, "bench-dpdk: worker %u: pkts=%" PRIu64 " made=%" PRIu64
			" checked=%u/%u cksum_ok=%u xlate_ok=%u unexpected=%" PRIu64
			" drops=%" PRIu64 " handed=%" PRIu64 "\n", k->idx, r->pkts, r->made,
			r->checked, b->inflight, r->cksum_ok, r->xlate_ok, k->unexpected,
			st ? drops_of(st) : 0, st ? st->handed : 0);
	return ok;
}

/* Prints the line: the totals (ns_per_pkt is lcore time per packet: the workers'
 * measured times added up, over all packets), then each worker's rate; returns whether
 * every check passed. */
static bool report(struct bench *b)
{
	double hz = (double)rte_get_tsc_hz(), secs, core_tsc = 0, sum_mpps = 0;
	uint64_t unexpected, in_loop = (uint64_t)b->n_workers * b->inflight, lost_mbufs;
	struct dp_stats st;
	struct result t;
	bool ok = true;

	add_up(b, &t, &st, &unexpected);
	secs = (t.t1 - t.t0) / hz;
	for (unsigned q = 0; q < b->n_workers; q++)
		core_tsc += (double)(b->wk[q].res.t1 - b->wk[q].res.t0);
	lost_mbufs = b->n_mbufs - rte_mempool_avail_count(b->dp.pool);
	printf("mode=%s proto=%s family=%s workers=%u flows=%u max_flows=%u inflight=%u pkts=%"
	       PRIu64 " seconds=%.3f mpps=%.3f ns_per_pkt=%.2f", mode_names[b->mode],
	       b->proto == IPPROTO_TCP ? "tcp" : "udp", b->fam->name, b->n_workers, b->flows,
	       b->max_flows, b->inflight, t.pkts, secs, t.pkts / secs / 1e6,
	       core_tsc * 1e9 / hz / t.pkts);
	if (b->mode != MODE_LOOP)
		printf(" insert_pkts=%" PRIu64 " insert_seconds=%.3f flows_made=%" PRIu64
		       " flows_active=%" PRId64 " flows_expired=%" PRIu64, t.warm_pkts,
		       t.warm_tsc / hz, t.made, st.flows_active, st.flows_expired);
	printf(" drops=%" PRIu64, drops_of(&st));
	for (int i = 0; i < _DROP_MAX; i++)
		if (st.drops[i])
			printf(" drop_%s=%" PRIu64, drop_names[i], st.drops[i]);
	printf(" handed=%" PRIu64 " unexpected=%" PRIu64 " cksum_ok=%u/%u xlate_ok=%u/%u"
	       " lost_pkts=%" PRIu64 " lost_mbufs=%" PRIu64, st.handed, unexpected, t.cksum_ok,
	       t.checked, t.xlate_ok, t.checked, t.checked < in_loop ? in_loop - t.checked : 0,
	       lost_mbufs);
	for (unsigned q = 0; q < b->n_workers; q++) {
		const struct result *r = &b->wk[q].res;
		double span = (r->t1 - r->t0) / hz, mpps = span > 0 ? r->pkts / span / 1e6 : 0;

		printf(" w%u_mpps=%.3f w%u_cpu=%.3f", q, mpps, q,
		       span > 0 ? r->cpu_ns / 1e9 / span : 0);
		sum_mpps += mpps;
		ok = worker_ok(&b->wk[q]) && ok;
	}
	printf(" per_worker_mpps=%.3f\n", sum_mpps / b->n_workers);
	return ok && t.checked == in_loop && !lost_mbufs;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *ret)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_family(struct bench *b, const char *name)
{
	for (size_t i = 0; i < RTE_DIM(families); i++)
		if (!strcmp(name, families[i]->name)) {
			b->fam = families[i];
			return 0;
		}
	return -EINVAL;
}

static int parse_args(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' }, { "flows", required_argument, NULL, 'f' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "seconds", required_argument, NULL, 's' },
		{ "max-flows", required_argument, NULL, 'M' },
		{ "proto", required_argument, NULL, 'p' },
		{ "services", required_argument, NULL, 'S' },
		{ "endpoints", required_argument, NULL, 'E' },
		{ "workers", required_argument, NULL, 'w' },
		{ "family", required_argument, NULL, 'F' }, { NULL, 0, NULL, 0 },
	};
	uint32_t v;
	int c, r = 0;

	optind = 1;
	while (!r && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			for (v = 0; v < RTE_DIM(mode_names) && strcmp(optarg, mode_names[v]); v++)
				;
			b->mode = (enum mode)v;
			r = v < RTE_DIM(mode_names) ? 0 : -EINVAL;
			break;
		case 'f':
			r = parse_u32(optarg, 1, 1u << 26, &b->flows);
			break;
		case 'i':
			r = parse_u32(optarg, 1, 1u << 20, &b->inflight);
			break;
		case 's':
			b->seconds = strtod(optarg, NULL);
			r = b->seconds > 0 ? 0 : -EINVAL;
			break;
		case 'M':
			r = parse_u32(optarg, 64, 1u << 26, &b->max_flows);
			break;
		case 'p':
			b->proto = !strcmp(optarg, "udp") ? IPPROTO_UDP : IPPROTO_TCP;
			r = strcmp(optarg, "udp") && strcmp(optarg, "tcp") ? -EINVAL : 0;
			break;
		case 'S':
			r = parse_u32(optarg, 1, 254, &v);
			b->n_svc = v;
			break;
		case 'E':
			r = parse_u32(optarg, 1, 254, &v);
			b->n_eps = v;
			break;
		case 'w':
			r = parse_u32(optarg, 1, DP_MAX_WORKERS, &v);
			b->n_workers = v;
			break;
		case 'F':
			r = parse_family(b, optarg);
			break;
		default:
			r = -EINVAL;
		}
	}
	if (!r && optind < argc)
		r = -EINVAL;
	/* a tuple comes back after --flows first packets: by then its flow must be gone
	 * (the sweep needs about max_flows / 2 of them) and not be in the loop twice
	 * (checked again per worker, on its share of the tuples) */
	if (!r && b->mode == MODE_NEW && b->flows < 4 * b->inflight) {
		fprintf(stderr, "bench-dpdk: --mode new needs --flows of at least 4 x --inflight\n");
		r = -EINVAL;
	}
	if (!r && b->n_workers > rte_lcore_count()) {
		fprintf(stderr, "bench-dpdk: --workers %u needs as many lcores (-l)\n",
			b->n_workers);
		r = -EINVAL;
	}
	return r;	/* --max-flows' default: split_flows() */
}

int main(int argc, char **argv)
{
	static struct bench b = { .mode = MODE_ESTABLISHED, .proto = IPPROTO_TCP,
				  .flows = 1000, .inflight = 1024, .seconds = 3, .n_svc = 16,
				  .n_eps = 8, .n_workers = 1, .fam = &ipv4 };
	int n = rte_eal_init(argc, argv), r;

	if (n < 0) {
		fprintf(stderr, "bench-dpdk: EAL: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	if (parse_args(&b, argc - n, argv + n) < 0) {
		fprintf(stderr, "usage: bench-dpdk EAL-ARGS -- [--mode established|new|loop] "
			"[--flows N] [--inflight N] [--seconds S] [--max-flows N] "
			"[--proto tcp|udp] [--services N] [--endpoints N] [--workers N] "
			"[--family ipv4]\n");
		rte_eal_cleanup();
		return 2;
	}
	r = make_dp(&b);
	if (r < 0) {
		fprintf(stderr, "bench-dpdk: set-up: %s%s\n", strerror(-r),
			r == -ENOMEM ? " (more memory with -m?)" : "");
	} else {
		r = run(&b);
		for (unsigned q = 0; r == -ETIMEDOUT && q < b.n_workers; q++)
			if (b.wk[q].err == -ETIMEDOUT)
				insert_failed(&b.wk[q]);
		if (r && r != -ETIMEDOUT)
			fprintf(stderr, "bench-dpdk: run: %s\n", strerror(-r));
	}
	if (!r) {
		drain(&b);
		r = report(&b) ? 0 : -EPROTO;
		if (r)
			fprintf(stderr, "bench-dpdk: a check failed (see the line above)\n");
	}
	free_dp(&b);
	rte_eal_cleanup();
	return r ? 1 : 0;
}
