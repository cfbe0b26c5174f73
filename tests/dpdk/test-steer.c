// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Steering between the DPDK data plane's workers (dp.h, fastpath.c), with two workers
 * driven from this thread: each packet is given to one worker with dp_worker_process(),
 * the other then takes what was handed to it (dp_worker_take_handed()), and what each
 * sent is read from its own transmit ring. Nothing is launched on another lcore, so every
 * run is the same.
 *
 * The set-up is what dpdk.c would build, by hand: one net_ring port (two receive and two
 * transmit queues, each its own ring) with the address 10.0.0.1/8, clients behind
 * 10.0.0.254 (10.128.0.0/10), endpoints on the link (10.244.f.e, inside 10/8), the
 * gateway's and the endpoints' MACs known to both workers, and generations of frontends
 * published with one pointer store (no RCU: no worker runs while the test swaps them).
 * Every host's MAC is 02:00 and its address, so a packet's next hop can be told from its
 * destination MAC. The cases: a ClusterIP flow owned by the worker that did not get its
 * first packet, both directions; a masqueraded NodePort flow, whose reply is steered by
 * its port; a deleted frontend kept as dp_gone, then gone; ARP copied to the other
 * worker; loadBalancerSourceRanges; ClientIP affinity and round robin shared by the
 * workers. At the end every mbuf is back in the pool and no drop was unexpected.
 */
#define ALLOW_EXPERIMENTAL_API 1	/* rte_ipv4_udptcp_cksum_verify() */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#include <kproxy/state.h>		/* KP_FE_*: a frontend's kind */

#include "dp.h"
#include "tap.h"

#define OUR_IP RTE_IPV4(10, 0, 0, 1)
#define GW_IP RTE_IPV4(10, 0, 0, 254)
#define NEW_NEIGH RTE_IPV4(10, 0, 0, 77)	/* known only from its ARP request */
#define EP_PORT 8080
#define N_MBUFS 511
#define SYN RTE_TCP_SYN_FLAG
#define ACK RTE_TCP_ACK_FLAG

/* The frontends (host order); endpoint e of frontend f is 10.244.(f + 1).(e + 1):8080. */
enum { FE_CIP, FE_NP, FE_LB, FE_AFF, FE_NOAFF, FE_RR, N_FE };
#define ALL_FE ((1u << N_FE) - 1)

static const struct {
	uint32_t vip;
	uint16_t port;
	uint8_t kind;
	bool masq;
	uint32_t affinity_s;
	uint16_t n_eps;
} fes[N_FE] = {
	[FE_CIP] = { RTE_IPV4(172, 20, 0, 1), 80, KP_FE_CLUSTER_IP, false, 0, 3 },
	[FE_NP] = { OUR_IP, 30080, KP_FE_NODE_PORT, true, 0, 2 },
	[FE_LB] = { RTE_IPV4(192, 0, 2, 10), 80, KP_FE_LOAD_BALANCER, true, 0, 2 },
	[FE_AFF] = { RTE_IPV4(172, 20, 0, 20), 80, KP_FE_CLUSTER_IP, false, 10800, 4 },
	[FE_NOAFF] = { RTE_IPV4(172, 20, 0, 21), 80, KP_FE_CLUSTER_IP, false, 0, 4 },
	[FE_RR] = { RTE_IPV4(172, 20, 0, 30), 80, KP_FE_CLUSTER_IP, false, 0, 3 },
};

static struct dp dp;
static struct dp_worker *w[2];
static struct rte_ring *rxr[2], *txr[2];
static uint16_t port_id;
static bool port_made;
static struct dp_range lb_range;	/* FE_LB's one source range: 10.128.0.5/32 */
static uint64_t want_drops[2][_DROP_MAX];	/* the drops each case expects, per worker */

static uint32_t ep_ip(unsigned f, unsigned e)
{
	return RTE_IPV4(10, 244, f + 1, e + 1);
}

static struct rte_ether_addr mac_of(uint32_t ip)
{
	struct rte_ether_addr a = { .addr_bytes = { 0x02, 0x00, ip >> 24, ip >> 16, ip >> 8, ip } };

	return a;
}

/* The first client port from @from up that dp_client_owner() gives to worker @owner. */
static uint16_t port_of(uint32_t ip, unsigned owner, uint16_t from)
{
	while (dp_client_owner(rte_cpu_to_be_32(ip), rte_cpu_to_be_16(from), 2) != owner)
		from++;
	return from;
}

/* ---- generations ---- */

static void gen_free(struct dp_gen *g)
{
	if (!g)
		return;
	rte_hash_free(g->svcs);
	free(g->svc);
	free(g->arena);
	free(g);
}

/* A generation of the frontends in the bit set @present, those in @gone kept as dp_gone. */
static struct dp_gen *gen_new(unsigned present, unsigned gone, enum dp_policy policy)
{
	static unsigned n_made;
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = { .name = name, .entries = 64,
					  .key_len = sizeof(struct dp_svc_key),
					  .hash_func = rte_hash_crc, .socket_id = (int)rte_socket_id() };
	uint32_t m = dp_maglev_size(4);	/* enough for every frontend's table */
	struct dp_gen *g = calloc(1, sizeof(*g));
	struct dp_ep *eps;
	uint16_t *tab;

	snprintf(name, sizeof(name), "steer_svcs_%u", n_made++);
	if (!g)
		return NULL;
	g->svcs = rte_hash_create(&hp);
	g->svc = calloc(N_FE, sizeof(*g->svc));
	g->arena = malloc(N_FE * (4 * sizeof(*eps) + m * sizeof(*tab)));
	if (!g->svcs || !g->svc || !g->arena)
		goto out_free;
	eps = g->arena;
	tab = (uint16_t *)(eps + N_FE * 4);
	for (unsigned f = 0; f < N_FE; f++) {
		struct dp_svc *s = &g->svc[g->n_svc];
		struct dp_svc_key k = { .ip = rte_cpu_to_be_32(fes[f].vip),
					.port = rte_cpu_to_be_16(fes[f].port), .proto = IPPROTO_TCP };

		if (gone & (1u << f) && rte_hash_add_key_data(g->svcs, &k, (void *)&dp_gone) < 0)
			goto out_free;
		if (!(present & (1u << f)))
			continue;
		*s = (struct dp_svc){ .vip = k.ip, .vport = k.port, .proto = k.proto,
				      .masq = fes[f].masq, .id = (uint16_t)(f + 1),
				      .affinity_s = fes[f].affinity_s, .n_eps = fes[f].n_eps,
				      .eps = eps + f * 4, .m = dp_maglev_size(fes[f].n_eps),
				      .maglev = tab + f * m, .kind = fes[f].kind,
				      .ns = "test", .name = "steer", .port_name = "" };
		for (unsigned e = 0; e < fes[f].n_eps; e++)
			eps[f * 4 + e] = (struct dp_ep){ .ip = rte_cpu_to_be_32(ep_ip(f, e)),
							 .port = rte_cpu_to_be_16(EP_PORT) };
		dp_maglev_build(s->eps, s->n_eps, tab + f * m, s->m);
		if (f == FE_LB) {
			s->n_ranges = 1;
			s->ranges = &lb_range;
		}
		if (rte_hash_add_key_data(g->svcs, &k, s) < 0)
			goto out_free;
		g->n_svc++;
	}
	g->routes[0] = (struct dp_route){ .net = rte_cpu_to_be_32(RTE_IPV4(10, 128, 0, 0)),
					  .mask = rte_cpu_to_be_32(~0u << 22),
					  .gw = rte_cpu_to_be_32(GW_IP), .prefix = 10 };
	g->routes[1] = (struct dp_route){ .net = rte_cpu_to_be_32(RTE_IPV4(10, 0, 0, 0)),
					  .mask = rte_cpu_to_be_32(~0u << 24), .prefix = 8 };
	g->n_routes = 2;
	g->policy = policy;
	return g;
out_free:
	gen_free(g);
	return NULL;
}

/* Publishes @g with one pointer store, as dpdk.c does; the old one is freed at once (no
 * RCU grace period: no worker runs meanwhile). */
static bool publish(struct dp_gen *g)
{
	if (!g)
		return false;
	gen_free(atomic_exchange(&dp.gen, g));
	return true;
}

/* ---- packets ---- */

/* A TCP segment src:sport -> dst:dport (host order), TTL 64, checksums right. */
static struct rte_mbuf *tcp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
			    uint8_t flags)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(dp.pool);
	struct rte_ether_hdr *eh;
	struct rte_ipv4_hdr *ip;
	struct rte_tcp_hdr *th;

	if (!m)
		return NULL;
	eh = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eh) + sizeof(*ip) + sizeof(*th));
	ip = (struct rte_ipv4_hdr *)(eh + 1);
	th = (struct rte_tcp_hdr *)(ip + 1);
	memset(eh, 0, sizeof(*eh) + sizeof(*ip) + sizeof(*th));
	eh->dst_addr = dp.macs[0];
	eh->src_addr = mac_of(src);
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16(sizeof(*ip) + sizeof(*th));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = rte_cpu_to_be_32(src);
	ip->dst_addr = rte_cpu_to_be_32(dst);
	th->src_port = rte_cpu_to_be_16(sport);
	th->dst_port = rte_cpu_to_be_16(dport);
	th->data_off = 5 << 4;
	th->tcp_flags = flags;
	th->rx_win = rte_cpu_to_be_16(65535);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	return m;
}

static struct rte_ipv4_hdr *ip_of(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
}

static uint32_t dst_of(struct rte_mbuf *m)
{
	return rte_be_to_cpu_32(ip_of(m)->dst_addr);
}

static uint16_t sport_of(struct rte_mbuf *m)
{
	return rte_be_to_cpu_16(((struct rte_tcp_hdr *)(ip_of(m) + 1))->src_port);
}

/* Whether @m, as a worker sent it, is TCP src:sport -> dst:dport, one hop older, both
 * checksums valid, from our MAC to the next hop's (the gateway for clients). */
static bool is_tcp(struct rte_mbuf *m, uint32_t src, uint16_t sport, uint32_t dst,
		   uint16_t dport)
{
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = ip_of(m);
	const struct rte_tcp_hdr *th = (const struct rte_tcp_hdr *)(ip + 1);
	struct rte_ether_addr hop = mac_of((dst & 0xffc00000) == RTE_IPV4(10, 128, 0, 0) ?
					   GW_IP : dst);
	uint16_t sum = ip->hdr_checksum;
	bool good;

	if (eh->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    ip->next_proto_id != IPPROTO_TCP) {
		printf("#   not a TCP segment (ether type 0x%04x)\n",
		       rte_be_to_cpu_16(eh->ether_type));
		return false;
	}
	ip->hdr_checksum = 0;
	good = rte_ipv4_cksum(ip) == sum;
	ip->hdr_checksum = sum;
	good = good && rte_ipv4_udptcp_cksum_verify(ip, th) == 0 && ip->time_to_live == 63 &&
	       rte_is_same_ether_addr(&eh->src_addr, &dp.macs[0]) &&
	       rte_is_same_ether_addr(&eh->dst_addr, &hop) &&
	       ip->src_addr == rte_cpu_to_be_32(src) && ip->dst_addr == rte_cpu_to_be_32(dst) &&
	       th->src_port == rte_cpu_to_be_16(sport) && th->dst_port == rte_cpu_to_be_16(dport);
	if (!good)
		printf("#   got %08x:%u -> %08x:%u ttl %u to %02x:..:%02x, want %08x:%u -> %08x:%u\n",
		       rte_be_to_cpu_32(ip->src_addr), rte_be_to_cpu_16(th->src_port),
		       rte_be_to_cpu_32(ip->dst_addr), rte_be_to_cpu_16(th->dst_port),
		       ip->time_to_live, eh->dst_addr.addr_bytes[4], eh->dst_addr.addr_bytes[5],
		       src, sport, dst, dport);
	return good;
}

/* ---- one packet through the workers ---- */

struct out {
	unsigned handed;		/* by the worker that received it */
	unsigned taken;			/* from its ring by the other worker */
	unsigned made[2];		/* flows made, per worker */
	unsigned n[2];			/* packets sent on each transmit queue */
	struct rte_mbuf *m[2][8];
};

/* Gives @m to worker @wi as received on the port; then the other worker takes what was
 * handed to it; both flush, and what each sent is read into @o (free with out_free()). */
static void run(unsigned wi, struct rte_mbuf *m, struct out *o)
{
	const struct dp_stats *st[2] = { dp_worker_stats(w[0]), dp_worker_stats(w[1]) };
	uint64_t handed = st[wi]->handed, made[2] = { st[0]->flows_created, st[1]->flows_created };

	memset(o, 0, sizeof(*o));
	if (m)			/* else the pool ran dry: the case's checks fail */
		dp_worker_process(w[wi], 0, &m, 1);
	dp_worker_flush(w[wi]);
	o->taken = dp_worker_take_handed(w[!wi]);
	dp_worker_flush(w[!wi]);
	o->handed = (unsigned)(st[wi]->handed - handed);
	for (unsigned i = 0; i < 2; i++) {
		o->made[i] = (unsigned)(st[i]->flows_created - made[i]);
		o->n[i] = rte_ring_dequeue_burst(txr[i], (void **)o->m[i], 8, NULL);
	}
}

static void out_free(struct out *o)
{
	for (unsigned i = 0; i < 2; i++)
		rte_pktmbuf_free_bulk(o->m[i], o->n[i]);
}

/* ---- set-up ---- */

static void neigh(struct dp_worker *wk, uint32_t ip)
{
	struct rte_ether_addr mac = mac_of(ip);

	dp_worker_neigh_add(wk, 0, rte_cpu_to_be_32(ip), &mac);
}

static int setup(void)
{
	struct rte_eth_conf conf = { 0 };
	int socket = (int)rte_socket_id(), r;
	uint64_t now = rte_rdtsc();
	char name[32];

	dp.pool = rte_pktmbuf_pool_create("steer_mbufs", N_MBUFS, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					  socket);
	if (!dp.pool)
		return -rte_errno;
	for (unsigned i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "steer_rx%u", i);
		rxr[i] = rte_ring_create(name, 64, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "steer_tx%u", i);
		txr[i] = rte_ring_create(name, 64, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (!rxr[i] || !txr[i])
			return -ENOMEM;
	}
	r = rte_eth_from_rings("net_ring_steer", rxr, 2, txr, 2, (unsigned)socket);
	if (r < 0)
		return -rte_errno;
	port_id = (uint16_t)r;
	port_made = true;
	if (rte_eth_dev_configure(port_id, 2, 2, &conf) < 0)
		return -EIO;
	for (uint16_t q = 0; q < 2; q++)
		if (rte_eth_rx_queue_setup(port_id, q, 64, (unsigned)socket, NULL, dp.pool) < 0 ||
		    rte_eth_tx_queue_setup(port_id, q, 64, (unsigned)socket, NULL) < 0)
			return -EIO;
	if (rte_eth_dev_start(port_id) < 0)
		return -EIO;
	rte_eth_macaddr_get(port_id, &dp.macs[0]);
	dp.port_ids[0] = port_id;
	dp.ports[0].ip = rte_cpu_to_be_32(OUR_IP);
	dp.ports[0].prefix = 8;
	dp.ports[0].role = DP_ROLE_BOTH;
	dp.n_ports = 1;
	dp.n_rxq[0] = 2;
	dp.n_workers = 2;
	dp.max_flows = 256;
	dp.tsc_hz = rte_get_tsc_hz();
	dp.tcp_timeout_tsc = 3600 * dp.tsc_hz;
	dp.tcp_closing_tsc = dp.syn_timeout_tsc = dp.udp_timeout_tsc = 30 * dp.tsc_hz;
	lb_range = (struct dp_range){ .net = rte_cpu_to_be_32(RTE_IPV4(10, 128, 0, 5)),
				      .mask = 0xffffffff };
	r = dp_shared_init(&dp);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 2; i++) {
		r = dp_worker_new(&dp, i, &w[i]);
		if (r < 0)
			return r;
		dp.workers[i] = w[i];
		dp_worker_set_now(w[i], now);	/* one clock, and it stays there */
		neigh(w[i], GW_IP);
		for (unsigned f = 0; f < N_FE; f++)
			for (unsigned e = 0; e < fes[f].n_eps; e++)
				neigh(w[i], ep_ip(f, e));
	}
	return publish(gen_new(ALL_FE, 0, DP_POLICY_MAGLEV)) ? 0 : -ENOMEM;
}

static void teardown(void)
{
	for (unsigned i = 0; i < 2; i++)
		dp_worker_free(w[i]);
	dp_shared_free(&dp);
	gen_free(atomic_load(&dp.gen));
	if (port_made) {
		rte_eth_dev_stop(port_id);
		rte_eth_dev_close(port_id);
	}
	for (unsigned i = 0; i < 2; i++) {
		rte_ring_free(rxr[i]);
		rte_ring_free(txr[i]);
	}
	rte_mempool_free(dp.pool);
}

/* ---- checks ---- */

/* Whether @o is what a case expects: packets handed by the receiving worker, taken by
 * the other one, flows made by worker 0 and 1, packets sent on queue 0 and 1. */
static bool steered(const struct out *o, unsigned handed, unsigned taken, unsigned made0,
		    unsigned made1, unsigned n0, unsigned n1)
{
	if (o->handed == handed && o->taken == taken && o->made[0] == made0 &&
	    o->made[1] == made1 && o->n[0] == n0 && o->n[1] == n1)
		return true;
	printf("#   handed %u taken %u made %u/%u sent %u/%u, want %u %u %u/%u %u/%u\n", o->handed,
	       o->taken, o->made[0], o->made[1], o->n[0], o->n[1], handed, taken, made0, made1,
	       n0, n1);
	return false;
}

static bool is_ep(unsigned f, uint32_t ip)
{
	for (unsigned e = 0; e < fes[f].n_eps; e++)
		if (ip == ep_ip(f, e))
			return true;
	return false;
}

/* Whether worker @wi's drop counters are those the cases so far expect. */
static bool drops_ok(unsigned wi)
{
	const struct dp_stats *st = dp_worker_stats(w[wi]);
	bool good = true;

	for (unsigned d = 0; d < _DROP_MAX; d++)
		if (st->drops[d] != want_drops[wi][d]) {
			printf("#   worker %u drop reason %u: %llu, want %llu\n", wi, d,
			       (unsigned long long)st->drops[d],
			       (unsigned long long)want_drops[wi][d]);
			good = false;
		}
	return good;
}

/* ---- the cases ---- */

#define CLIENT1 RTE_IPV4(10, 128, 0, 1)

static uint16_t c1_port;		/* case 1's flow: its client port, its endpoint */
static uint32_t c1_ep;

/* 1 and 2: a ClusterIP flow of worker 1's whose first packet and reply reach worker 0. */
static void test_clusterip(void)
{
	uint32_t vip = fes[FE_CIP].vip;
	struct out o;

	c1_port = port_of(CLIENT1, 1, 40000);
	run(0, tcp(CLIENT1, c1_port, vip, 80, SYN), &o);
	ok(steered(&o, 1, 1, 0, 1, 0, 1),
	   "1: a SYN to a ClusterIP from a client tuple of worker 1, received by worker 0: no flow "
	   "there, handed; worker 1 takes it, makes the flow and sends on its queue");
	c1_ep = o.n[1] == 1 ? dst_of(o.m[1][0]) : 0;
	ok(is_ep(FE_CIP, c1_ep) && is_tcp(o.m[1][0], CLIENT1, c1_port, c1_ep, EP_PORT),
	   "1: it leaves DNATed to an endpoint, TTL one less, IPv4 and TCP checksums valid, to the "
	   "endpoint's MAC");
	out_free(&o);

	run(0, tcp(c1_ep, EP_PORT, CLIENT1, c1_port, SYN | ACK), &o);
	ok(steered(&o, 1, 1, 0, 0, 0, 1) && is_tcp(o.m[1][0], vip, 80, CLIENT1, c1_port),
	   "2: the endpoint's reply received by worker 0 is handed to worker 1 (the client's "
	   "tuple), which sends it from VIP:80 to the client, through the gateway");
	out_free(&o);
	run(1, tcp(c1_ep, EP_PORT, CLIENT1, c1_port, ACK), &o);
	ok(steered(&o, 0, 0, 0, 0, 0, 1) && is_tcp(o.m[1][0], vip, 80, CLIENT1, c1_port),
	   "2: the same reply received by worker 1 is not handed, and translated");
	out_free(&o);
}

/* 3: masquerading: a worker's ports name it, so a reply to any worker finds the flow. */
static void test_masquerade(void)
{
	uint32_t c = RTE_IPV4(10, 128, 0, 2);

	for (unsigned owner = 0; owner < 2; owner++) {
		uint16_t cp = port_of(c, owner, (uint16_t)(40000 + owner * 100)), snat = 0;
		uint32_t ep = 0;
		struct out o;

		run(owner, tcp(c, cp, OUR_IP, 30080, SYN), &o);
		if (o.n[owner] == 1) {
			snat = sport_of(o.m[owner][0]);
			ep = dst_of(o.m[owner][0]);
		}
		ok(steered(&o, 0, 0, !owner, owner, !owner, owner) && is_ep(FE_NP, ep) &&
		   is_tcp(o.m[owner][0], OUR_IP, snat, ep, EP_PORT) && snat >= DP_SNAT_LO &&
		   (unsigned)(snat - DP_SNAT_LO) % 2 == owner,
		   "3: a NodePort SYN of worker %u's: a flow there, SNATed to 10.0.0.1 from port %u "
		   "(offset from DP_SNAT_LO %s)", owner, snat, owner ? "odd" : "even");
		out_free(&o);
		run(!owner, tcp(ep, EP_PORT, OUR_IP, snat, SYN | ACK), &o);
		ok(steered(&o, 1, 1, 0, 0, !owner, owner) &&
		   is_tcp(o.m[owner][0], OUR_IP, 30080, c, cp),
		   "3: its reply to 10.0.0.1:%u, received by worker %u, is handed to worker %u by "
		   "the port and translated back: 10.0.0.1:30080 -> the client", snat, !owner, owner);
		out_free(&o);
	}
}

/* 4: a deleted frontend is kept as dp_gone: its flows' packets still find their worker. */
static void test_tombstone(void)
{
	uint32_t vip = fes[FE_CIP].vip, c = RTE_IPV4(10, 128, 0, 3);
	/* the worker a packet to the VIP goes to once it is no frontend (its destination's
	 * tuple): worker 0, while case 1's flow is worker 1's, so only the tomb can steer
	 * that flow's packet right; the new clients below are the other worker's too */
	unsigned vo = dp_client_owner(rte_cpu_to_be_32(vip), rte_cpu_to_be_16(80), 2);
	uint16_t cp = port_of(c, !vo, 40000);
	struct out o;

	ok(publish(gen_new(ALL_FE & ~(1u << FE_CIP), 1u << FE_CIP, DP_POLICY_MAGLEV)),
	   "4: a generation without case 1's ClusterIP, kept as dp_gone");
	run(0, tcp(CLIENT1, c1_port, vip, 80, ACK), &o);
	ok(vo == 0 && steered(&o, 1, 1, 0, 0, 0, 1) &&
	   is_tcp(o.m[1][0], CLIENT1, c1_port, c1_ep, EP_PORT),
	   "4: a packet of case 1's flow received by worker 0 (which its destination tuple "
	   "names) is still handed to worker 1 and DNATed to the flow's endpoint");
	out_free(&o);
	run(vo, tcp(c, cp, vip, 80, SYN), &o);
	want_drops[!vo][DROP_NO_ROUTE]++;
	ok(steered(&o, 1, 1, 0, 0, 0, 0) && drops_ok(!vo),
	   "4: a new client's SYN to the deleted ClusterIP is steered as to a frontend (to worker "
	   "%u), makes no flow on either worker, and is routed as plain traffic: no route to "
	   "172.20/16 here, dropped as no_route", !vo);
	out_free(&o);

	ok(publish(gen_new(ALL_FE & ~(1u << FE_CIP), 0, DP_POLICY_MAGLEV)),
	   "4: a generation with no entry for it at all");
	cp = port_of(c, !vo, (uint16_t)(cp + 1));
	run(!vo, tcp(c, cp, vip, 80, SYN), &o);
	want_drops[vo][DROP_NO_ROUTE]++;
	ok(steered(&o, 1, 1, 0, 0, 0, 0) && drops_ok(vo),
	   "4: then a new SYN to it is plain traffic: steered by its destination tuple to worker "
	   "%u, no flow, routed and dropped as no_route", vo);
	out_free(&o);
}

static struct rte_mbuf *arp_request(uint32_t sip, uint32_t tip)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(dp.pool);
	struct rte_ether_hdr *eh;
	struct rte_arp_hdr *ah;

	if (!m)
		return NULL;
	eh = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eh) + sizeof(*ah));
	ah = (struct rte_arp_hdr *)(eh + 1);
	memset(&eh->dst_addr, 0xff, sizeof(eh->dst_addr));
	eh->src_addr = mac_of(sip);
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	*ah = (struct rte_arp_hdr){ .arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER),
				    .arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4),
				    .arp_hlen = RTE_ETHER_ADDR_LEN, .arp_plen = 4,
				    .arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) };
	ah->arp_data.arp_sha = mac_of(sip);
	ah->arp_data.arp_sip = rte_cpu_to_be_32(sip);
	ah->arp_data.arp_tip = rte_cpu_to_be_32(tip);
	return m;
}

static bool is_arp_reply(struct rte_mbuf *m, uint32_t to)
{
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	const struct rte_arp_hdr *ah = (const struct rte_arp_hdr *)(eh + 1);
	struct rte_ether_addr mac = mac_of(to);

	return eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP) &&
	       ah->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY) &&
	       rte_is_same_ether_addr(&eh->dst_addr, &mac) &&
	       rte_is_same_ether_addr(&ah->arp_data.arp_tha, &mac) &&
	       rte_is_same_ether_addr(&ah->arp_data.arp_sha, &dp.macs[0]) &&
	       ah->arp_data.arp_sip == rte_cpu_to_be_32(OUR_IP) &&
	       ah->arp_data.arp_tip == rte_cpu_to_be_32(to);
}

/* 5: ARP a worker gets is answered once, and every worker learns from it. */
static void test_arp(void)
{
	const struct dp_stats *st[2] = { dp_worker_stats(w[0]), dp_worker_stats(w[1]) };
	uint64_t replies[2] = { st[0]->arp_replies, st[1]->arp_replies }, routed = st[1]->routed;
	uint32_t c = RTE_IPV4(10, 128, 0, 9);
	uint16_t dport = port_of(NEW_NEIGH, 1, 5000);	/* a tuple worker 1 routes */
	struct out o;

	run(0, arp_request(NEW_NEIGH, OUR_IP), &o);
	ok(steered(&o, 0, 1, 0, 0, 1, 0) && st[0]->arp_replies - replies[0] == 1 &&
	   st[1]->arp_replies == replies[1] && is_arp_reply(o.m[0][0], NEW_NEIGH),
	   "5: an ARP request for 10.0.0.1 from 10.0.0.77 received by worker 0: answered on queue "
	   "0; worker 1 takes its copy and answers nothing");
	out_free(&o);
	run(1, tcp(c, 40000, NEW_NEIGH, dport, SYN), &o);
	ok(steered(&o, 0, 0, 0, 0, 0, 1) && st[1]->routed - routed == 1 &&
	   is_tcp(o.m[1][0], c, 40000, NEW_NEIGH, dport),
	   "5: a packet worker 1 routes to 10.0.0.77 leaves at once with the MAC learned from the "
	   "copy (no ARP request, nothing held)");
	out_free(&o);
}

/* 6: loadBalancerSourceRanges: a first packet from outside them is dropped by its owner. */
static void test_source_ranges(void)
{
	uint32_t lb = fes[FE_LB].vip, in = RTE_IPV4(10, 128, 0, 5), out = RTE_IPV4(10, 128, 0, 6);
	uint16_t cp = port_of(out, 0, 40000);
	struct out o;

	run(1, tcp(out, cp, lb, 80, SYN), &o);
	want_drops[0][DROP_SOURCE]++;
	ok(steered(&o, 1, 1, 0, 0, 0, 0) && drops_ok(0),
	   "6: a SYN to a LoadBalancer from 10.128.0.6, outside its range 10.128.0.5/32: handed "
	   "to worker 0, its owner, which drops it as source_range and makes no flow");
	out_free(&o);
	cp = port_of(in, 1, 40000);
	run(0, tcp(in, cp, lb, 80, SYN), &o);
	ok(steered(&o, 1, 1, 0, 1, 0, 1) && is_ep(FE_LB, dst_of(o.m[1][0])) &&
	   is_tcp(o.m[1][0], OUR_IP, sport_of(o.m[1][0]), dst_of(o.m[1][0]), EP_PORT),
	   "6: a SYN from 10.128.0.5, inside it: a flow on worker 1, SNATed to an endpoint");
	out_free(&o);
}

/* The endpoint a SYN from @c:@cp to frontend @f, received by the tuple's owner, went to;
 * 0 unless the owner made a flow and sent it, unhanded. */
static uint32_t first_ep(unsigned f, uint32_t c, uint16_t cp)
{
	unsigned owner = dp_client_owner(rte_cpu_to_be_32(c), rte_cpu_to_be_16(cp), 2);
	uint32_t ep = 0;
	struct out o;

	run(owner, tcp(c, cp, fes[f].vip, fes[f].port, SYN), &o);
	if (steered(&o, 0, 0, !owner, owner, !owner, owner) &&
	    is_tcp(o.m[owner][0], c, cp, dst_of(o.m[owner][0]), EP_PORT))
		ep = dst_of(o.m[owner][0]);
	out_free(&o);
	return ep;
}

/* 7: ClientIP affinity is one table: a client's flows on both workers go to one endpoint. */
static void test_affinity(void)
{
	unsigned same = 0, differ = 0;

	for (unsigned i = 1; i <= 8; i++) {
		uint32_t c = RTE_IPV4(10, 128, 1, i), a[2], b[2];

		for (unsigned wi = 0; wi < 2; wi++) {
			a[wi] = first_ep(FE_AFF, c, port_of(c, wi, 40000));
			b[wi] = first_ep(FE_NOAFF, c, port_of(c, wi, 40000));
		}
		same += is_ep(FE_AFF, a[0]) && a[0] == a[1];
		differ += is_ep(FE_NOAFF, b[0]) && is_ep(FE_NOAFF, b[1]) && b[0] != b[1];
	}
	is_int(same, 8, "7: ClientIP affinity: 8 clients, each with a flow made on worker 0 and "
	       "one on worker 1, reach one endpoint per client");
	ok(differ > 0, "7: without affinity the same tuples reach two endpoints for %u of 8 "
	   "clients (so the check above can fail)", differ);
}

/* 8: the round-robin counter is one per service, whichever worker makes the flow. */
static void test_round_robin(void)
{
	unsigned good = 0;

	ok(publish(gen_new(ALL_FE & ~(1u << FE_CIP), 0, DP_POLICY_RR)),
	   "8: a generation with round robin");
	for (unsigned k = 0; k < 6; k++) {
		uint32_t c = RTE_IPV4(10, 128, 2, k + 1), ep;

		ep = first_ep(FE_RR, c, port_of(c, k % 2, 40000));
		if (ep == ep_ip(FE_RR, k % 3))
			good++;
		else
			printf("#   SYN %u (worker %u): endpoint %08x, want %08x\n", k, k % 2, ep,
			       ep_ip(FE_RR, k % 3));
	}
	is_int(good, 6, "8: round robin over 3 endpoints, 6 SYNs made on workers 0, 1, 0, ...: "
	       "e0, e1, e2, e0, e1, e2");
}

/* 9: nothing lost, held or dropped beyond what the cases expected. */
static void test_end(void)
{
	unsigned left = rte_ring_count(txr[0]) + rte_ring_count(txr[1]) +
			rte_ring_count(rxr[0]) + rte_ring_count(rxr[1]);

	is_int(left, 0, "9: nothing left on the port's rings");
	ok(drops_ok(0) && drops_ok(1), "9: no drops on either worker but the 3 expected "
	   "(2 no_route, 1 source_range)");
	is_int(rte_mempool_avail_count(dp.pool), N_MBUFS,
	       "9: every mbuf back in the pool (none held for ARP or left in a ring between "
	       "workers)");
}

int main(void)
{
	char prefix[32], run_dir[PATH_MAX];
	char *eal[] = { "test-steer", "--no-huge", "-m", "256", "--no-pci", "--no-telemetry",
			"--no-shconf", "--log-level=error", "-l", "0", "--file-prefix", prefix };
	int r;

	snprintf(prefix, sizeof(prefix), "steer%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(eal), eal) < 0) {
		ok(false, "EAL: %s", rte_strerror(rte_errno));	/* a failure, not a skip */
		return tap_done();
	}
	r = setup();
	if (!ok(r == 0, "set-up: two workers, a net_ring port of two queues, a generation")) {
		printf("#   %s\n", strerror(-r));
	} else {
		test_clusterip();
		test_masquerade();
		test_tombstone();
		test_arp();
		test_source_ranges();
		test_affinity();
		test_round_robin();
		test_end();
	}
	snprintf(run_dir, sizeof(run_dir), "%s", rte_eal_get_runtime_dir());
	teardown();
	rte_eal_cleanup();
	rmdir(run_dir);		/* EAL leaves it behind, empty, with --no-shconf */
	return tap_done();
}
