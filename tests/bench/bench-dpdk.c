// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DPDK data plane's worker (backends/dpdk/fastpath.c) measured on its own, without
 * kproxyd: packets per second of one lcore running the NAT loop over synthetic flows.
 *
 * One net_ring port made with rte_eth_from_rings() whose receive ring is its transmit
 * ring, so what the worker sends comes back to it. The bench builds by hand what the
 * control side (dpdk.c) would: a struct dp with that port (10.0.0.1/8), a generation with
 * --services ClusterIP frontends 172.20.0.S:80 of --endpoints endpoints 10.244.S.E:8080
 * each (Maglev tables), routes 10.128.0.0/10 via 10.0.0.254 (the clients) and 10.0.0.0/8
 * on link (the endpoints), and one worker whose neighbours are seeded, so no ARP is sent.
 * --inflight packets circulate; each lap of a packet is one pass through the worker. On
 * the way back the bench plays the hosts, as the natbench prototype did: a DNATed request
 * becomes the endpoint's reply (addresses and ports swapped, which leaves checksums as
 * they are), a reverse-NATed reply becomes the next client's request, so the requests
 * cycle through --flows client tuples 10.128.x.y:1024-61023, one service each.
 *
 * Modes: "established" makes every flow once (the insert phase, reported apart), then
 * measures the steady state, where every packet hits its flow; "new" sends nothing but
 * first packets (SYNs, or UDP), each of a flow not in the table, with a zero SYN and UDP
 * timeout so the ageing sweep frees flows a loop after they were made; "loop" replaces
 * the worker with a stand-in that rewrites addresses as a translation would, without a
 * lookup, the cost of the bench's own loop (ring I/O, playing the hosts). The loop is
 * dp_worker_main's: clock, receive, process, flush, ageing step, quiescent state.
 *
 * At the end the loop is drained and every packet checked from scratch (IPv4 and L4
 * checksums, the translation: the endpoint Maglev gives the 5-tuple, the VIP back, TTL,
 * MACs); every packet must still be in the loop and every mbuf back in the pool, and the
 * worker's drop counters must be zero; any failure exits 1. One key=value line goes to
 * stdout.
 *
 * Usage: bench-dpdk EAL-ARGS -- [--mode established|new|loop] [--flows N] [--inflight N]
 *        [--seconds S] [--max-flows N] [--proto tcp|udp] [--services N] [--endpoints N]
 */
#define ALLOW_EXPERIMENTAL_API 1	/* rte_ipv4_udptcp_cksum_verify() */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
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

struct bench {
	/* options */
	enum mode mode;			/* --mode */
	uint8_t proto;			/* IPPROTO_TCP or IPPROTO_UDP */
	uint32_t flows;			/* client tuples cycled through */
	uint32_t inflight;		/* packets in the loop */
	uint32_t max_flows;		/* the worker's flow table */
	double seconds;			/* of the measured phase */
	unsigned n_svc, n_eps;		/* services, endpoints of each */
	/* what the bench built */
	struct dp dp;			/* one port, its pool, the generation */
	struct dp_worker *w;		/* NULL in the "loop" mode */
	struct rte_ring *ring;		/* the port's receive and transmit ring */
	uint16_t port;			/* its ethdev port id */
	unsigned n_mbufs;		/* in dp.pool */
	/* the loop */
	uint32_t next_id;		/* the flow the next request belongs to */
	uint64_t unexpected;		/* packets back that no host would send on */
};

struct result {
	uint64_t pkts, tsc;		/* measured phase */
	uint64_t warm_pkts, warm_tsc;	/* insert phase */
	uint64_t made;			/* flows made in the measured phase */
	unsigned cksum_ok, xlate_ok, checked;	/* of the packets drained */
	uint64_t lost_pkts, lost_mbufs;	/* not back from the loop, not back in the pool */
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

/* ---- header rewriting, checksums updated incrementally ---- */

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

static inline uint32_t take_id(struct bench *b)
{
	uint32_t id = b->next_id;

	if (++b->next_id == b->flows)
		b->next_id = 0;
	return id;
}

/* Makes @ip the request of the next flow: its client to its service's VIP. */
static inline void next_request(struct bench *b, struct rte_ipv4_hdr *ip)
{
	uint32_t id = take_id(b);

	set_end(ip, true, client_ip(id), client_port(id));
	set_end(ip, false, vip_ip(svc_of(b, id)), rte_cpu_to_be_16(SVC_PORT));
}

/* The hosts' answer to a packet the worker sent: false for one no host would answer. */
static inline bool reflect(struct bench *b, struct rte_mbuf *m)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1);

	if (eh->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    ip->next_proto_id != b->proto)
		return false;
	set_ttl(ip, TTL);
	if (in_net16(ip->dst_addr, EP_NET)) {		/* DNATed: client -> endpoint */
		if (b->mode == MODE_NEW)
			next_request(b, ip);		/* nobody answers a first packet */
		else
			swap_ends(ip);			/* the endpoint's reply */
		return true;
	}
	if (in_net16(ip->src_addr, VIP_NET) && b->mode != MODE_NEW) {
		swap_ends(ip);				/* reverse NATed: VIP -> client */
		next_request(b, ip);
		return true;
	}
	return false;
}

/* The "loop" mode's stand-in for the worker: what a translation does to the packet,
 * without the lookups (the service's first endpoint, the VIP back). */
static inline void fake_nat(struct rte_ipv4_hdr *ip)
{
	set_ttl(ip, (uint8_t)(ip->time_to_live - 1));
	if (in_net16(ip->dst_addr, VIP_NET))
		set_end(ip, false, ep_ip(rte_be_to_cpu_32(ip->dst_addr) - VIP_BASE, 0),
			rte_cpu_to_be_16(EP_PORT));
	else
		set_end(ip, true, vip_ip((rte_be_to_cpu_32(ip->src_addr) >> 8) & 0xff),
			rte_cpu_to_be_16(SVC_PORT));
}

/* A first request of flow @id, as the client sends it. */
static void build_request(struct bench *b, struct rte_mbuf *m, uint32_t id)
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

/* ---- set-up: what dpdk.c would build ---- */

/* mbufs that need not be IOVA-contiguous, as dpdk.c's make_pool(): with 4 KiB pages
 * (--no-huge) the default layout puts one mbuf per page at one offset, which aliases
 * cache sets */
static struct rte_mempool *make_pool(unsigned n)
{
	struct rte_pktmbuf_pool_private priv = { .mbuf_data_room_size = RTE_MBUF_DEFAULT_BUF_SIZE };
	unsigned elt = sizeof(struct rte_mbuf) + RTE_MBUF_DEFAULT_BUF_SIZE;
	struct rte_mempool *mp;

	mp = rte_mempool_create_empty("bench_mbufs", n, elt, 256, sizeof(priv),
				      (int)rte_socket_id(), RTE_MEMPOOL_F_NO_IOVA_CONTIG);
	if (!mp)
		return NULL;
	if (rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL) < 0)
		goto out_free;
	rte_pktmbuf_pool_init(mp, &priv);
	if (rte_mempool_populate_default(mp) < 0)
		goto out_free;
	rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
	return mp;
out_free:
	rte_mempool_free(mp);
	return NULL;
}

/* The loopback port: one ring, both directions. */
static int make_port(struct bench *b)
{
	struct rte_eth_conf conf = { 0 };
	int socket = (int)rte_socket_id(), port;

	b->ring = rte_ring_create("bench_loop", rte_align32pow2(b->inflight + DP_BURST * 4),
				  socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (!b->ring)
		return -rte_errno;
	port = rte_eth_from_rings("net_ring_bench", &b->ring, 1, &b->ring, 1, (unsigned)socket);
	if (port < 0)
		return -rte_errno;
	b->port = (uint16_t)port;
	if (rte_eth_dev_configure(b->port, 1, 1, &conf) < 0 ||
	    rte_eth_rx_queue_setup(b->port, 0, 1024, (unsigned)socket, NULL, b->dp.pool) < 0 ||
	    rte_eth_tx_queue_setup(b->port, 0, 1024, (unsigned)socket, NULL) < 0 ||
	    rte_eth_dev_start(b->port) < 0)
		return -EIO;
	rte_eth_macaddr_get(b->port, &b->dp.macs[0]);
	return 0;
}

static void gen_free(struct dp_gen *g)
{
	if (!g)
		return;
	rte_hash_free(g->svcs);
	free(g->svc);
	free(g->arena);
	free(g);
}

static int add_services(struct bench *b, struct dp_gen *g)
{
	uint32_t m = dp_maglev_size(b->n_eps);
	struct dp_ep *eps = g->arena;
	uint16_t *tables = (uint16_t *)(eps + b->n_svc * b->n_eps);

	for (unsigned s = 0; s < b->n_svc; s++) {
		struct dp_svc *sv = &g->svc[s];
		struct dp_svc_key k = { .ip = vip_ip(s), .port = rte_cpu_to_be_16(SVC_PORT),
					.proto = b->proto };

		for (unsigned e = 0; e < b->n_eps; e++)
			eps[s * b->n_eps + e] = (struct dp_ep){ .ip = ep_ip(s, e),
								.port = rte_cpu_to_be_16(EP_PORT) };
		*sv = (struct dp_svc){ .vip = k.ip, .vport = k.port, .proto = k.proto,
				       .id = (uint16_t)s, .n_eps = (uint16_t)b->n_eps,
				       .eps = eps + s * b->n_eps, .m = m, .maglev = tables + s * m,
				       .ns = "bench", .name = "bench", .port_name = "http" };
		dp_maglev_build(sv->eps, b->n_eps, tables + s * m, m);
		if (rte_hash_add_key_data(g->svcs, &k, sv) < 0)
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
	g->svc = calloc(b->n_svc, sizeof(*g->svc));
	g->arena = malloc(n_ep * sizeof(struct dp_ep) + b->n_svc * m * sizeof(uint16_t));
	if (!g->svcs || !g->svc || !g->arena || add_services(b, g) < 0) {
		gen_free(g);
		return -ENOMEM;
	}
	g->routes[0] = (struct dp_route){ .net = rte_cpu_to_be_32(CLIENT_BASE),
					  .mask = rte_cpu_to_be_32(~0u << 22),
					  .gw = rte_cpu_to_be_32(GW_IP), .prefix = 10 };
	g->routes[1] = (struct dp_route){ .net = rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 0)),
					  .mask = rte_cpu_to_be_32(~0u << 24), .prefix = 8 };
	g->n_routes = 2;
	g->policy = DP_POLICY_MAGLEV;
	atomic_store(&b->dp.gen, g);
	return 0;
}

/* The struct dp of one port and one worker (this lcore), its neighbours known. */
static int make_dp(struct bench *b)
{
	struct dp *dp = &b->dp;
	uint64_t hz = rte_get_tsc_hz();
	int r;

	snprintf(dp->ports[0].dev, sizeof(dp->ports[0].dev), "net_ring_bench");
	snprintf(dp->ports[0].name, sizeof(dp->ports[0].name), "net_ring_bench");
	dp->ports[0].ip = rte_cpu_to_be_32(OUR_IP);
	dp->ports[0].prefix = 8;
	dp->ports[0].role = DP_ROLE_BOTH;
	dp->n_ports = 1;
	dp->n_workers = 1;
	dp->worker_lcore[0] = rte_lcore_id();
	dp->max_flows = b->max_flows;
	dp->tsc_hz = hz;
	dp->tcp_timeout_tsc = 3600 * hz;
	dp->tcp_closing_tsc = 10 * hz;
	/* new flows: a flow is freed by the sweep once a loop has passed since it was made */
	dp->syn_timeout_tsc = b->mode == MODE_NEW ? 0 : 30 * hz;
	dp->udp_timeout_tsc = b->mode == MODE_NEW ? 0 : 30 * hz;
	b->n_mbufs = b->inflight + 4096;
	dp->pool = make_pool(b->n_mbufs);
	if (!dp->pool)
		return -ENOMEM;
	r = make_port(b);
	if (r < 0)
		return r;
	dp->port_ids[0] = b->port;
	dp->qs = rte_zmalloc("bench_qsbr", rte_rcu_qsbr_get_memsize(1), RTE_CACHE_LINE_SIZE);
	if (!dp->qs || rte_rcu_qsbr_init(dp->qs, 1) < 0)
		return -ENOMEM;
	if (dp_shared_init(dp) < 0)
		return -ENOMEM;
	rte_rcu_qsbr_thread_register(dp->qs, 0);
	rte_rcu_qsbr_thread_online(dp->qs, 0);
	r = make_gen(b);
	if (r < 0)
		return r;
	if (b->mode == MODE_LOOP)
		return 0;
	r = dp_worker_new(dp, 0, &b->w);
	if (r < 0)
		return r;
	dp->workers[0] = b->w;
	dp_worker_neigh_add(b->w, 0, rte_cpu_to_be_32(GW_IP), &peer_mac);
	for (unsigned s = 0; s < b->n_svc; s++)
		for (unsigned e = 0; e < b->n_eps; e++)
			dp_worker_neigh_add(b->w, 0, ep_ip(s, e), &peer_mac);
	return 0;
}

static void free_dp(struct bench *b)
{
	dp_worker_free(b->w);
	dp_shared_free(&b->dp);
	gen_free(atomic_load(&b->dp.gen));
	if (b->ring) {
		rte_eth_dev_stop(b->port);
		rte_eth_dev_close(b->port);
		rte_ring_free(b->ring);
	}
	rte_free(b->dp.qs);
	rte_mempool_free(b->dp.pool);
}

/* ---- the loop ---- */

/* Puts the first request of flows 0..inflight-1 in the loop, through the worker (or
 * the stand-in). */
static int inject(struct bench *b)
{
	struct rte_mbuf *pkts[DP_BURST];

	for (uint32_t i = 0; i < b->inflight; i += DP_BURST) {
		uint16_t n = (uint16_t)RTE_MIN((uint32_t)DP_BURST, b->inflight - i);

		if (rte_pktmbuf_alloc_bulk(b->dp.pool, pkts, n) < 0)
			return -ENOMEM;
		for (uint16_t k = 0; k < n; k++)
			build_request(b, pkts[k], take_id(b));
		if (b->mode == MODE_LOOP) {
			for (uint16_t k = 0; k < n; k++)
				fake_nat(ip_of(pkts[k]));
			if (rte_eth_tx_burst(b->port, 0, pkts, n) != n)
				return -EIO;
			continue;
		}
		dp_worker_set_now(b->w, rte_rdtsc());
		dp_worker_process(b->w, 0, pkts, n);
		dp_worker_flush(b->w);
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

/* dp_worker_main's loop with the hosts played in it, until the TSC passes @until or, if
 * @flows is not 0, the worker has made @flows flows or dropped a packet (which leaves the
 * loop with one less). Returns the packets processed. */
static uint64_t spin(struct bench *b, uint64_t flows, uint64_t until)
{
	const struct dp_stats *st = dp_worker_stats(b->w);
	struct rte_mbuf *pkts[DP_BURST];
	uint64_t done = 0, now;

	do {
		uint16_t n = rte_eth_rx_burst(b->port, 0, pkts, DP_BURST), k = 0;

		now = rte_rdtsc();
		dp_worker_set_now(b->w, now);
		for (uint16_t i = 0; i < n; i++) {
			if (i + 4 < n)
				rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 4], void *));
			if (likely(reflect(b, pkts[i]))) {
				pkts[k++] = pkts[i];
			} else {
				b->unexpected++;
				rte_pktmbuf_free(pkts[i]);
			}
		}
		if (k)
			dp_worker_process(b->w, 0, pkts, k);
		dp_worker_flush(b->w);
		dp_worker_sweep(b->w);
		rte_rcu_qsbr_quiescent(b->dp.qs, 0);
		done += k;
	} while (now < until && (!flows || (st->flows_created < flows && !drops_of(st))));
	return done;
}

/* The same loop with fake_nat() in place of the worker. */
static uint64_t spin_loop(struct bench *b, uint64_t until)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint64_t done = 0, now;

	do {
		uint16_t n = rte_eth_rx_burst(b->port, 0, pkts, DP_BURST), k = 0, sent;

		now = rte_rdtsc();
		for (uint16_t i = 0; i < n; i++) {
			if (i + 4 < n)
				rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 4], void *));
			if (likely(reflect(b, pkts[i]))) {
				fake_nat(ip_of(pkts[i]));
				pkts[k++] = pkts[i];
			} else {
				b->unexpected++;
				rte_pktmbuf_free(pkts[i]);
			}
		}
		sent = rte_eth_tx_burst(b->port, 0, pkts, k);
		if (unlikely(sent < k)) {
			b->unexpected += k - sent;
			rte_pktmbuf_free_bulk(pkts + sent, k - sent);
		}
		rte_rcu_qsbr_quiescent(b->dp.qs, 0);
		done += k;
	} while (now < until);
	return done;
}

/* ---- the checks ---- */

static bool cksum_ok(struct rte_ipv4_hdr *ip)
{
	uint16_t got = ip->hdr_checksum, want;

	ip->hdr_checksum = 0;
	want = rte_ipv4_cksum(ip);
	ip->hdr_checksum = got;
	return got == want && rte_ipv4_udptcp_cksum_verify(ip, ip + 1) == 0;
}

/* Whether the worker's output @m is the translation it should be: a request DNATed to
 * the endpoint Maglev gives its 5-tuple, or a reply from the VIP, to the next hop's MAC. */
static bool xlate_ok(struct bench *b, struct rte_mbuf *m)
{
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
		struct dp_flow_key k;

		id = id_of(b, ip->src_addr, p[0]);
		if (id == UINT32_MAX || p[1] != rte_cpu_to_be_16(EP_PORT))
			return false;
		s = &g->svc[svc_of(b, id)];
		k = (struct dp_flow_key){ .src_ip = ip->src_addr, .dst_ip = s->vip,
					  .src_port = p[0], .dst_port = s->vport, .proto = s->proto };
		return ip->dst_addr == s->eps[s->maglev[dp_flow_hash(&k) % s->m]].ip;
	}
	id = id_of(b, ip->dst_addr, p[1]);
	return b->mode != MODE_NEW && id != UINT32_MAX && p[0] == rte_cpu_to_be_16(SVC_PORT) &&
	       ip->src_addr == vip_ip(svc_of(b, id));
}

/* Drains the loop, burst by burst: every packet checked and counted, every mbuf back. */
static void drain(struct bench *b, struct result *res)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint16_t n;

	while ((n = rte_eth_rx_burst(b->port, 0, pkts, DP_BURST))) {
		for (uint16_t i = 0; i < n; i++) {
			res->cksum_ok += cksum_ok(ip_of(pkts[i]));
			res->xlate_ok += xlate_ok(b, pkts[i]);
		}
		res->checked += n;
		rte_pktmbuf_free_bulk(pkts, n);
	}
	res->lost_pkts = res->checked < b->inflight ? b->inflight - res->checked : 0;
	res->lost_mbufs = b->n_mbufs - rte_mempool_avail_count(b->dp.pool);
}

/* ---- the run ---- */

static int measure(struct bench *b, struct result *res)
{
	const struct dp_stats *st = b->w ? dp_worker_stats(b->w) : NULL;
	uint64_t hz = rte_get_tsc_hz(), t0, made0;
	int r = inject(b);

	if (r < 0)
		return r;
	t0 = rte_rdtsc();
	if (b->mode == MODE_LOOP) {
		res->pkts = spin_loop(b, t0 + (uint64_t)(b->seconds * hz));
		res->tsc = rte_rdtsc() - t0;
		return 0;
	}
	/* the insert phase: until every flow has been made once */
	res->warm_pkts = spin(b, b->flows, t0 + WARM_LIMIT_S * hz);
	res->warm_tsc = rte_rdtsc() - t0;
	if (st->flows_created < b->flows) {
		fprintf(stderr, "bench-dpdk: insert phase: %" PRIu64 " of %u flows made in %.1f s, "
			"%" PRIu64 " packets dropped\n", st->flows_created, b->flows,
			res->warm_tsc / (double)hz, drops_of(st));
		for (int i = 0; i < _DROP_MAX; i++)
			if (st->drops[i])
				fprintf(stderr, "bench-dpdk: drop_%s=%" PRIu64 "\n", drop_names[i],
					st->drops[i]);
		return -ETIMEDOUT;
	}
	made0 = st->flows_created;
	t0 = rte_rdtsc();
	res->pkts = spin(b, 0, t0 + (uint64_t)(b->seconds * hz));
	res->tsc = rte_rdtsc() - t0;
	res->made = st->flows_created - made0;
	return 0;
}

/* Prints the line; returns whether every check passed. */
static bool report(struct bench *b, const struct result *res)
{
	const struct dp_stats *st = b->w ? dp_worker_stats(b->w) : NULL;
	double hz = (double)rte_get_tsc_hz(), secs = res->tsc / hz;
	uint64_t drops = st ? drops_of(st) : 0;
	bool ok;

	printf("mode=%s proto=%s flows=%u max_flows=%u inflight=%u pkts=%" PRIu64
	       " seconds=%.3f mpps=%.3f ns_per_pkt=%.2f", mode_names[b->mode],
	       b->proto == IPPROTO_TCP ? "tcp" : "udp", b->flows, b->max_flows, b->inflight,
	       res->pkts, secs, res->pkts / secs / 1e6, res->tsc * 1e9 / hz / res->pkts);
	if (st)
		printf(" insert_pkts=%" PRIu64 " insert_seconds=%.3f flows_made=%" PRIu64
		       " flows_active=%" PRId64 " flows_expired=%" PRIu64, res->warm_pkts,
		       res->warm_tsc / hz, res->made, st->flows_active, st->flows_expired);
	printf(" drops=%" PRIu64, drops);
	for (int i = 0; st && i < _DROP_MAX; i++)
		if (st->drops[i])
			printf(" drop_%s=%" PRIu64, drop_names[i], st->drops[i]);
	printf(" unexpected=%" PRIu64 " cksum_ok=%u/%u xlate_ok=%u/%u lost_pkts=%" PRIu64
	       " lost_mbufs=%" PRIu64 "\n", b->unexpected, res->cksum_ok, res->checked,
	       res->xlate_ok, res->checked, res->lost_pkts, res->lost_mbufs);
	ok = !drops && !b->unexpected && res->checked && res->cksum_ok == res->checked &&
	     res->xlate_ok == res->checked && !res->lost_pkts && !res->lost_mbufs && res->pkts;
	/* established: no packet made a flow; new: every packet did */
	if (b->mode == MODE_ESTABLISHED)
		ok = ok && !res->made;
	else if (b->mode == MODE_NEW)
		ok = ok && res->made == res->pkts;
	return ok;
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

static int parse_args(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' }, { "flows", required_argument, NULL, 'f' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "seconds", required_argument, NULL, 's' },
		{ "max-flows", required_argument, NULL, 'M' },
		{ "proto", required_argument, NULL, 'p' },
		{ "services", required_argument, NULL, 'S' },
		{ "endpoints", required_argument, NULL, 'E' }, { NULL, 0, NULL, 0 },
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
		default:
			r = -EINVAL;
		}
	}
	if (!r && optind < argc)
		r = -EINVAL;
	/* a tuple comes back after --flows first packets: by then its flow must be gone
	 * (the sweep needs about max_flows / 2 of them) and not be in the loop twice */
	if (!r && b->mode == MODE_NEW && b->flows < 4 * b->inflight) {
		fprintf(stderr, "bench-dpdk: --mode new needs --flows of at least 4 x --inflight\n");
		r = -EINVAL;
	}
	if (!b->max_flows)	/* headroom: the flow hash then has 4 slots per flow at 1M */
		b->max_flows = b->flows + b->flows / 4 < 64 ? 64 : b->flows + b->flows / 4;
	return r;
}

int main(int argc, char **argv)
{
	static struct bench b = { .mode = MODE_ESTABLISHED, .proto = IPPROTO_TCP,
				  .flows = 1000, .inflight = 1024, .seconds = 3, .n_svc = 16,
				  .n_eps = 8 };
	struct result res = { 0 };
	int n = rte_eal_init(argc, argv), r;

	if (n < 0) {
		fprintf(stderr, "bench-dpdk: EAL: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	if (parse_args(&b, argc - n, argv + n) < 0) {
		fprintf(stderr, "usage: bench-dpdk EAL-ARGS -- [--mode established|new|loop] "
			"[--flows N] [--inflight N] [--seconds S] [--max-flows N] "
			"[--proto tcp|udp] [--services N] [--endpoints N]\n");
		rte_eal_cleanup();
		return 2;
	}
	r = make_dp(&b);
	if (r < 0)
		fprintf(stderr, "bench-dpdk: set-up: %s (more memory with -m?)\n", strerror(-r));
	else
		r = measure(&b, &res);
	if (!r) {
		drain(&b, &res);
		r = report(&b, &res) ? 0 : -EPROTO;
		if (r)
			fprintf(stderr, "bench-dpdk: a check failed (see the line above)\n");
	}
	free_dp(&b);
	rte_eal_cleanup();
	return r ? 1 : 0;
}
