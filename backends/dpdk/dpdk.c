// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DPDK backend, control side: EAL and ports at init (from the options kproxyd's
 * --dpdk-* flags give: EAL arguments, ports with their address, prefix and role, extra
 * routes, the balancing policy, flow-table size and timeouts), worker lcores (every EAL
 * worker lcore, or --dpdk-workers of them) with a receive and a transmit queue each on
 * every port (RSS where the port has it), and on each sync a new
 * generation of the tables the workers read: the service frontends (ClusterIP, NodePort
 * on the client ports' addresses, externalIP, LB ingress; IPv4, TCP and UDP) with their
 * endpoints and Maglev tables, and the routes (the ports' subnets, then the configured
 * ones). A generation is published with one pointer store; the previous one is freed
 * once every worker has passed a quiescent state (RCU), so the packet path never locks
 * and established flows, which hold their translation, are untouched by any update.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>

#include "internal.h"
#include "../common/caps.h"
#include "../common/opts.h"
#include "dp.h"

#define MAX_EAL_ARGS 64
#define NB_DESC 1024

/* The options init takes (dp_options[]); timeouts in ms, used in whole seconds. */
struct dp_opts {
	struct kp_cidr_list cluster_cidr;
	bool masquerade_all;
	const char *eal_args;
	struct kp_str_list ports;
	struct kp_str_list routes;
	const char *lb_policy;
	uint32_t max_flows, mbufs, idle_sleep_us, workers;
	uint32_t tcp_ms, closing_ms, syn_ms, udp_ms;
};

static const char *const dp_policies[] = { "maglev", "rr", NULL };

#define DP_TIMEOUT(n, member, d, h)							\
	{ .name = n, .type = KP_OPT_DURATION, .offset = offsetof(struct dp_opts, member),	\
	  .min = 1000, .def = d, .help = h }

static const struct kp_option dp_options[] = {
	KP_OPTION_CLUSTER_CIDR(struct dp_opts, cluster_cidr),
	KP_OPTION_MASQUERADE_ALL(struct dp_opts, masquerade_all),
	{ .name = "eal-args", .type = KP_OPT_STRING, .offset = offsetof(struct dp_opts, eal_args),
	  .def = "", .help = "EAL arguments (e.g. \"-l 0,1 --no-huge -m 512 --no-pci\"); the "
			     "ports' devices are added" },
	{ .name = "port", .type = KP_OPT_STRING_LIST, .offset = offsetof(struct dp_opts, ports),
	  .max = DP_MAX_PORTS, .help = "a port, repeatable: \"dev=DEVICE;ip=A.B.C.D/N;"
				       "role=client|pod|both\"" },
	{ .name = "route", .type = KP_OPT_STRING_LIST, .offset = offsetof(struct dp_opts, routes),
	  .max = DP_MAX_ROUTES, .help = "a route beyond the ports' subnets, repeatable: "
					"\"CIDR via GW\"" },
	{ .name = "lb-policy", .type = KP_OPT_STRING, .offset = offsetof(struct dp_opts, lb_policy),
	  .def = "maglev", .choices = dp_policies,
	  .help = "maglev (consistent hashing of the 5-tuple) or rr (round robin)" },
	{ .name = "workers", .type = KP_OPT_UINT, .offset = offsetof(struct dp_opts, workers),
	  .max = DP_MAX_WORKERS, .def = "0",
	  .help = "worker lcores (0: every EAL worker lcore, at most 16)" },
	{ .name = "max-flows", .type = KP_OPT_UINT, .offset = offsetof(struct dp_opts, max_flows),
	  .min = 1, .max = 1u << 26, .def = "65536", .help = "flows per worker lcore" },
	{ .name = "mbufs", .type = KP_OPT_UINT, .offset = offsetof(struct dp_opts, mbufs),
	  .min = 1, .max = 1u << 24, .def = "16384", .help = "packet buffers in the pool" },
	{ .name = "idle-sleep-us", .type = KP_OPT_UINT,
	  .offset = offsetof(struct dp_opts, idle_sleep_us), .max = 100000, .def = "0",
	  .help = "a worker idle for 256 polls sleeps this long per round (0: busy polling)" },
	DP_TIMEOUT("tcp-timeout", tcp_ms, "1h", "idle time-out of established TCP flows"),
	DP_TIMEOUT("tcpfin-timeout", closing_ms, "10s",
		   "time-out of TCP flows after FINs or an RST"),
	DP_TIMEOUT("syn-timeout", syn_ms, "30s", "time-out of TCP flows not yet established"),
	DP_TIMEOUT("udp-timeout", udp_ms, "30s", "idle time-out of UDP flows"),
};

struct dpb {
	struct kp_ctx *ctx;
	struct dp dp;
	const char *eal;		/* the eal-args option */
	struct dp_route extra_routes[DP_MAX_ROUTES];
	unsigned n_extra_routes;
	struct dp_route6 extra_routes6[DP_MAX_ROUTES];
	unsigned n_extra_routes6;
	enum dp_policy policy;
	uint32_t n_mbufs;
	unsigned want_workers;		/* 0: every EAL worker lcore */
	bool masquerade_all;
	uint32_t cluster_net, cluster_mask;
	bool has_cluster6;
	uint8_t cluster6[16], cluster6_prefix;
	uint32_t tcp_s, closing_s, syn_s, udp_s;	/* timeouts, seconds */
	struct kp_map *ids;		/* frontend key -> service id + 1 */
	struct tomb {			/* frontends deleted, kept as dp_gone */
		uint64_t until_ms;	/* CLOCK_MONOTONIC */
		/* keys 8-aligned: rte_hash_crc() reads them as 64-bit words */
		struct dp_svc_key k __rte_aligned(8);
		struct dp_svc6_key k6 __rte_aligned(8);
		uint16_t id;		/* its counters: kept while a worker holds its flows */
		bool v6;
	} *tombs;
	size_t n_tombs, cap_tombs;
	uint16_t next_id;
	uint64_t n_gen;
	bool eal_up, ports_up, launched;
};

/* ---- options ---- */

static int parse_cidr4(const char *s, uint32_t *ret_net, uint8_t *ret_prefix)
{
	struct kp_addr a;
	uint8_t prefix;

	if (kp_cidr_from_str(s, &a, &prefix) < 0 || a.family != AF_INET)
		return -EINVAL;
	*ret_net = a.v4.s_addr;
	*ret_prefix = prefix;
	return 0;
}

static uint32_t mask_of(uint8_t prefix)
{
	return prefix ? htonl(~0u << (32 - prefix)) : 0;
}

/* Keeps the first @prefix bits of @a. */
static void mask6(uint8_t a[16], uint8_t prefix)
{
	for (unsigned i = 0; i < 16; i++)
		a[i] &= i * 8 + 8 <= prefix ? 0xff : i * 8 >= prefix ? 0 :
			(uint8_t)(0xff << (8 - prefix % 8));
}

static int parse_cidr6(const char *s, uint8_t net[16], uint8_t *ret_prefix)
{
	struct kp_addr a;
	uint8_t prefix;

	if (kp_cidr_from_str(s, &a, &prefix) < 0 || a.family != AF_INET6)
		return -EINVAL;
	memcpy(net, a.v6.s6_addr, 16);
	*ret_prefix = prefix;
	return 0;
}

/* "dev=net_tap0,iface=kp0;ip=192.168.60.1/24;ip=fd00:60::1/64;role=client" */
static int parse_port(struct dpb *b, char *spec)
{
	struct dp_port_cfg *p;
	char *tok, *save = NULL;

	if (b->dp.n_ports == DP_MAX_PORTS)
		return -E2BIG;
	p = &b->dp.ports[b->dp.n_ports];
	memset(p, 0, sizeof(*p));
	p->role = DP_ROLE_BOTH;
	for (tok = strtok_r(spec, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		if (!strncmp(tok, "dev=", 4)) {
			snprintf(p->dev, sizeof(p->dev), "%s", tok + 4);
			snprintf(p->name, sizeof(p->name), "%.*s", (int)strcspn(tok + 4, ","),
				 tok + 4);
		} else if (!strncmp(tok, "ip=", 3) && strchr(tok, ':')) {
			if (p->has_ip6 || parse_cidr6(tok + 3, p->ip6, &p->prefix6) < 0 ||
			    !p->prefix6)
				return -EINVAL;
			p->has_ip6 = true;
			b->dp.has_v6 = true;
		} else if (!strncmp(tok, "ip=", 3)) {
			if (p->ip || parse_cidr4(tok + 3, &p->ip, &p->prefix) < 0 || !p->prefix)
				return -EINVAL;
		} else if (!strcmp(tok, "role=client")) {
			p->role = DP_ROLE_CLIENT;
		} else if (!strcmp(tok, "role=pod")) {
			p->role = DP_ROLE_POD;
		} else if (!strcmp(tok, "role=both")) {
			p->role = DP_ROLE_BOTH;
		} else {
			return -EINVAL;
		}
	}
	if (!p->dev[0] || !p->ip)
		return -EINVAL;
	b->dp.n_ports++;
	return 0;
}

/* "10.0.0.0/8 via 192.168.60.2", "fd00:100::/64 via fd00:60::2" (the port is the one
 * whose subnet holds the gateway) */
static int parse_route(struct dpb *b, const char *spec)
{
	char cidr[64], via[8], gw[64];
	struct in_addr g;

	if (sscanf(spec, "%63s %7s %63s", cidr, via, gw) != 3 || strcmp(via, "via"))
		return -EINVAL;
	if (strchr(cidr, ':')) {
		struct dp_route6 *r = &b->extra_routes6[b->n_extra_routes6];

		if (b->n_extra_routes6 == DP_MAX_ROUTES || inet_pton(AF_INET6, gw, r->gw) != 1 ||
		    parse_cidr6(cidr, r->net, &r->prefix) < 0)
			return -EINVAL;
		mask6(r->net, r->prefix);
		b->n_extra_routes6++;
		return 0;
	}
	struct dp_route *r = &b->extra_routes[b->n_extra_routes];

	if (b->n_extra_routes == DP_MAX_ROUTES || inet_pton(AF_INET, gw, &g) != 1 ||
	    parse_cidr4(cidr, &r->net, &r->prefix) < 0)
		return -EINVAL;
	r->mask = mask_of(r->prefix);
	r->net &= r->mask;
	r->gw = g.s_addr;
	b->n_extra_routes++;
	return 0;
}

/* The ports, routes, policy, sizes and timeouts, from the options. */
static int take_options(struct dpb *b, const struct dp_opts *o)
{
	char spec[512];

	b->eal = o->eal_args;
	b->policy = !strcmp(o->lb_policy, "rr") ? DP_POLICY_RR : DP_POLICY_MAGLEV;
	b->dp.max_flows = o->max_flows < 64 ? 64 : o->max_flows;
	b->n_mbufs = o->mbufs < 1024 ? 1024 : o->mbufs;
	b->dp.idle_sleep_us = o->idle_sleep_us;
	b->want_workers = o->workers;
	b->tcp_s = o->tcp_ms / 1000;
	b->closing_s = o->closing_ms / 1000;
	b->syn_s = o->syn_ms / 1000;
	b->udp_s = o->udp_ms / 1000;
	for (size_t i = 0; i < o->ports.n; i++) {
		snprintf(spec, sizeof(spec), "%s", o->ports.v[i]);
		if (strlen(o->ports.v[i]) >= sizeof(spec) || parse_port(b, spec) < 0)
			return kp_ctx_set_error(b->ctx, -EINVAL, "dpdk: option \"port\": \"%s\" is "
						"not \"dev=DEVICE;ip=A.B.C.D/N[;ip=IPV6/N];"
						"role=client|pod|both\"", o->ports.v[i]);
	}
	for (size_t i = 0; i < o->routes.n; i++)
		if (parse_route(b, o->routes.v[i]) < 0)
			return kp_ctx_set_error(b->ctx, -EINVAL, "dpdk: option \"route\": \"%s\" is "
						"not \"CIDR via GATEWAY\"", o->routes.v[i]);
	return 0;
}

/* ---- EAL, pool, ports ---- */

static int eal_init(struct dpb *b)
{
	char *argv[MAX_EAL_ARGS + DP_MAX_PORTS + 4], *copy = strdup(b->eal), *tok, *save = NULL;
	char vdev[DP_MAX_PORTS][160];
	sigset_t all, old;
	int argc = 0, r;
	bool loglevel = false;

	if (!copy)
		return -ENOMEM;
	argv[argc++] = "kproxyd";
	for (tok = strtok_r(copy, " \t", &save); tok && argc < MAX_EAL_ARGS;
	     tok = strtok_r(NULL, " \t", &save)) {
		loglevel |= !strncmp(tok, "--log-level", 11);
		argv[argc++] = tok;
	}
	if (!loglevel)
		argv[argc++] = "--log-level=warning";
	for (unsigned i = 0; i < b->dp.n_ports; i++) {
		bool pci = b->dp.ports[i].dev[0] >= '0' && b->dp.ports[i].dev[0] <= '9';

		snprintf(vdev[i], sizeof(vdev[i]), "%s%s", pci ? "-a" : "--vdev=",
			 b->dp.ports[i].dev);
		if (pci) {	/* "-a" then the address, as two arguments */
			argv[argc++] = "-a";
			argv[argc++] = b->dp.ports[i].dev;
		} else {
			argv[argc++] = vdev[i];
		}
	}
	argv[argc] = NULL;
	/* EAL's threads (lcores, interrupts) start here: they must take no signals, which
	 * belong to the program's own threads */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = rte_eal_init(argc, argv);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	free(copy);
	if (r < 0) {
		return kp_ctx_set_error(b->ctx, rte_errno == EALREADY ? -EALREADY : -EINVAL,
					"dpdk: EAL initialisation failed: %s (EAL arguments \"%s\")",
					rte_strerror(rte_errno), b->eal);
	}
	b->eal_up = true;
	return 0;
}

/* Configures port @i with @rxq receive and @txq transmit queues, RSS over them where the
 * port has it; returns 0 or a negative errno. */
static int port_configure(struct dpb *b, unsigned i, uint16_t rxq, uint16_t txq,
			  const struct rte_eth_dev_info *info)
{
	struct rte_eth_conf conf = { 0 };
	uint16_t pid = b->dp.port_ids[i];
	uint64_t hf = info->flow_type_rss_offloads &
		      (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
	int r;

	if (rxq > 1 && hf) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = hf;
		r = rte_eth_dev_configure(pid, rxq, txq, &conf);
		if (!r)
			return 0;
		kp_log(b->ctx, KP_LOG_WARN, "dpdk: port %s: RSS refused (%s): its queues are "
		       "filled as the device chooses", b->dp.ports[i].name, rte_strerror(-r));
		memset(&conf, 0, sizeof(conf));
	}
	return rte_eth_dev_configure(pid, rxq, txq, &conf);
}

static int ports_init(struct dpb *b)
{
	struct dp *dp = &b->dp;
	unsigned workers = 0, lc;
	struct rte_eth_dev_info info[DP_MAX_PORTS];

	RTE_LCORE_FOREACH_WORKER(lc) {
		if (workers < DP_MAX_WORKERS && (!b->want_workers || workers < b->want_workers))
			dp->worker_lcore[workers++] = lc;
	}
	if (!workers) {
		return kp_ctx_set_error(b->ctx, -EINVAL, "dpdk: no EAL worker lcore (give -l with "
					"two or more cores in the EAL arguments)");
	}
	if (b->want_workers > workers) {
		return kp_ctx_set_error(b->ctx, -EINVAL, "dpdk: option \"workers\": %u workers "
					"asked, EAL has %u worker lcores (give more with -l or "
					"--lcores)", b->want_workers, workers);
	}
	for (unsigned i = 0; i < dp->n_ports; i++) {
		uint16_t pid;

		if (rte_eth_dev_get_port_by_name(dp->ports[i].name, &pid) != 0) {
			char why[160] = "";

			/* a virtual device's driver failed to make it: tap and af_packet
			 * devices need CAP_NET_ADMIN (their log lines say more) */
			if (!strncmp(dp->ports[i].name, "net_", 4))
				kp_caps_explain(-EPERM, KP_CAP(CAP_NET_ADMIN), why, sizeof(why));
			return kp_ctx_set_error(b->ctx, -ENODEV, "dpdk: port %s: no such device%s%s%s",
						dp->ports[i].name, *why ? " (its driver could not "
						"make it" : "", why, *why ? ")" : "");
		}
		dp->port_ids[i] = pid;
		memset(&info[i], 0, sizeof(info[i]));
		if (rte_eth_dev_info_get(pid, &info[i]) != 0)
			info[i].max_rx_queues = info[i].max_tx_queues = 1;
		/* every worker sends on a queue of its own: a port with fewer transmit
		 * queues bounds the number of workers */
		if (info[i].max_tx_queues < workers) {
			if (b->want_workers)
				return kp_ctx_set_error(b->ctx, -EINVAL, "dpdk: option \"workers\": "
							"port %s has %u transmit queues, fewer than "
							"the %u workers", dp->ports[i].name,
							info[i].max_tx_queues, workers);
			kp_log(b->ctx, KP_LOG_WARN, "dpdk: port %s has %u transmit queues: %u "
			       "workers", dp->ports[i].name, info[i].max_tx_queues,
			       info[i].max_tx_queues);
			workers = info[i].max_tx_queues ? info[i].max_tx_queues : 1;
		}
	}
	dp->n_workers = workers;
	for (unsigned i = 0; i < dp->n_ports; i++)
		dp->n_rxq[i] = (uint16_t)(info[i].max_rx_queues < workers ? info[i].max_rx_queues
									  : workers);

	dp->pool = dp_pool_new("kp_mbufs", b->n_mbufs);
	if (!dp->pool) {
		return kp_ctx_set_error(b->ctx, -ENOMEM, "dpdk: cannot create a pool of %u mbufs: "
					"%s (give more memory with -m)", b->n_mbufs,
					rte_strerror(rte_errno));
	}
	for (unsigned i = 0; i < dp->n_ports; i++) {
		uint16_t pid = dp->port_ids[i], q = (uint16_t)dp->n_workers;
		int r = port_configure(b, i, dp->n_rxq[i], q, &info[i]);

		for (uint16_t k = 0; !r && k < dp->n_rxq[i]; k++)
			r = rte_eth_rx_queue_setup(pid, k, NB_DESC, rte_eth_dev_socket_id(pid), NULL,
						   dp->pool);
		for (uint16_t k = 0; !r && k < q; k++)
			r = rte_eth_tx_queue_setup(pid, k, NB_DESC, rte_eth_dev_socket_id(pid), NULL);
		if (!r)
			r = rte_eth_dev_start(pid);
		if (r) {
			return kp_ctx_set_error(b->ctx, r, "dpdk: port %s: setup failed: %s",
						dp->ports[i].name, rte_strerror(-r));
		}
		rte_eth_promiscuous_enable(pid);
		rte_eth_macaddr_get(pid, &dp->macs[i]);
		if (!strncmp(dp->ports[i].name, "net_", 4)) {
			/* a vdev's MAC is the kernel interface's at its other end (tap, veth):
			 * a bridge there takes frames to it as its own. The gateway answers
			 * for a locally administered address of its own, 02:6b:70 ("kp"),
			 * and receives everything (promiscuous) */
			struct rte_ether_addr *m = &dp->macs[i];

			m->addr_bytes[0] = 0x02;
			m->addr_bytes[1] = 0x6b;
			m->addr_bytes[2] = 0x70;
			m->addr_bytes[3] = (uint8_t)(getpid() >> 8);
			m->addr_bytes[4] = (uint8_t)getpid();
			m->addr_bytes[5] = (uint8_t)i;
		}
	}
	b->ports_up = true;
	return 0;
}

/* ---- generations ---- */

static void gen_free(struct dp_gen *g)
{
	if (!g)
		return;
	rte_hash_free(g->svcs);
	rte_hash_free(g->svcs6);
	for (uint32_t i = 0; g->svc && i < g->n_svc; i++)
		free(g->svc[i].mem);
	free(g->svc);
	free(g->arena);
	free(g);
}

static int route_cmp(const void *a, const void *b)
{
	return (int)((const struct dp_route *)b)->prefix - (int)((const struct dp_route *)a)->prefix;
}

static int route6_cmp(const void *a, const void *b)
{
	return (int)((const struct dp_route6 *)b)->prefix - (int)((const struct dp_route6 *)a)->prefix;
}

static void gen_routes(struct dpb *b, struct dp_gen *g)
{
	for (unsigned i = 0; i < b->dp.n_ports && g->n_routes < DP_MAX_ROUTES; i++) {
		const struct dp_port_cfg *p = &b->dp.ports[i];
		uint32_t mask = mask_of(p->prefix);

		g->routes[g->n_routes++] = (struct dp_route){ .net = p->ip & mask, .mask = mask,
							       .port = (uint8_t)i,
							       .prefix = p->prefix };
	}
	for (unsigned i = 0; i < b->n_extra_routes && g->n_routes < DP_MAX_ROUTES; i++) {
		struct dp_route r = b->extra_routes[i];
		bool found = false;

		for (unsigned k = 0; k < b->dp.n_ports && !found; k++) {
			uint32_t mask = mask_of(b->dp.ports[k].prefix);

			if ((r.gw & mask) == (b->dp.ports[k].ip & mask)) {
				r.port = (uint8_t)k;
				found = true;
			}
		}
		if (found)
			g->routes[g->n_routes++] = r;
		else
			kp_log(b->ctx, KP_LOG_WARN, "dpdk: route via a gateway on no port's subnet "
			       "left out");
	}
	qsort(g->routes, g->n_routes, sizeof(g->routes[0]), route_cmp);
	for (unsigned i = 0; i < b->dp.n_ports && g->n_routes6 < DP_MAX_ROUTES; i++) {
		const struct dp_port_cfg *p = &b->dp.ports[i];
		struct dp_route6 *r = &g->routes6[g->n_routes6];

		if (!p->has_ip6)
			continue;
		memset(r, 0, sizeof(*r));
		memcpy(r->net, p->ip6, 16);
		mask6(r->net, p->prefix6);
		r->prefix = p->prefix6;
		r->port = (uint8_t)i;
		g->n_routes6++;
	}
	for (unsigned i = 0; i < b->n_extra_routes6 && g->n_routes6 < DP_MAX_ROUTES; i++) {
		struct dp_route6 r = b->extra_routes6[i];
		bool found = false;

		for (unsigned k = 0; k < b->dp.n_ports && !found; k++) {
			uint8_t gw[16], net[16];

			if (!b->dp.ports[k].has_ip6)
				continue;
			memcpy(gw, r.gw, 16);
			memcpy(net, b->dp.ports[k].ip6, 16);
			mask6(gw, b->dp.ports[k].prefix6);
			mask6(net, b->dp.ports[k].prefix6);
			if (!memcmp(gw, net, 16)) {
				r.port = (uint8_t)k;
				found = true;
			}
		}
		if (found)
			g->routes6[g->n_routes6++] = r;
		else
			kp_log(b->ctx, KP_LOG_WARN, "dpdk: IPv6 route via a gateway on no port's "
			       "subnet left out");
	}
	qsort(g->routes6, g->n_routes6, sizeof(g->routes6[0]), route6_cmp);
}

/* A generation for @n_svc frontends and @n_gone tombstones. */
static struct dp_gen *gen_new(struct dpb *b, size_t n_svc, size_t n_gone)
{
	struct dp_gen *g = calloc(1, sizeof(*g));
	struct rte_hash_parameters hp = { 0 };
	char name[RTE_HASH_NAMESIZE];

	if (!g)
		return NULL;
	snprintf(name, sizeof(name), "kp_svc_%llu", (unsigned long long)b->n_gen++);
	hp.name = name;
	hp.entries = (n_svc + n_gone) * 2 < 64 ? 64 : (uint32_t)(n_svc + n_gone) * 2;
	hp.key_len = sizeof(struct dp_svc_key);
	hp.hash_func = rte_hash_crc;
	hp.socket_id = (int)rte_socket_id();
	g->svcs = rte_hash_create(&hp);
	snprintf(name, sizeof(name), "kp_svc6_%llu", (unsigned long long)b->n_gen - 1);
	hp.key_len = sizeof(struct dp_svc6_key);
	g->svcs6 = rte_hash_create(&hp);
	g->svc = calloc(n_svc ? n_svc : 1, sizeof(*g->svc));
	if (!g->svcs || !g->svcs6 || !g->svc) {
		gen_free(g);
		return NULL;
	}
	g->policy = b->policy;
	g->masquerade_all = b->masquerade_all;
	g->cluster_net = b->cluster_net;
	g->cluster_mask = b->cluster_mask;
	g->has_cluster6 = b->has_cluster6;
	memcpy(g->cluster6, b->cluster6, 16);
	g->cluster6_prefix = b->cluster6_prefix;
	gen_routes(b, g);
	return g;
}

/* Publishes @g and frees the previous generation once no worker can hold it. */
static void gen_publish(struct dpb *b, struct dp_gen *g)
{
	struct dp_gen *old = atomic_exchange_explicit(&b->dp.gen, g, memory_order_acq_rel);

	if (old && b->launched) {
		uint64_t token = rte_rcu_qsbr_start(b->dp.qs);

		rte_rcu_qsbr_check(b->dp.qs, token, true);
	}
	gen_free(old);
}

struct build {
	struct dpb *b;
	struct dp_gen *g;
	size_t cap;
	/* endpoints and Maglev tables, laid out in one arena after counting (an endpoint
	 * index is one of eps or of eps6, as its frontend's family says) */
	struct dp_ep *eps;
	struct dp_ep6 *eps6;
	uint16_t *tables;
	size_t n_eps, n_tab, cap_eps, cap_tab;
	int err;
};

static uint8_t ip_proto(enum kp_protocol p)
{
	return p == KP_PROTO_UDP ? IPPROTO_UDP : p == KP_PROTO_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
}

static uint16_t service_id(struct dpb *b, const char *key)
{
	uintptr_t v = (uintptr_t)kp_map_get(b->ids, key);

	if (v)
		return (uint16_t)(v - 1);
	v = b->next_id++;		/* wraps after 65536 frontends, sharing counters */
	kp_map_put(b->ids, key, (void *)(v + 1), NULL);
	return (uint16_t)v;
}

static int count_port(const struct kp_svc_port *sp, void *userdata)
{
	struct build *bd = userdata;
	size_t n_fes, n_eps;

	kp_svc_port_get_frontends(sp, &n_fes);
	kp_svc_port_get_all_endpoints(sp, &n_eps);
	bd->cap += n_fes;
	bd->cap_eps += n_fes * n_eps;
	bd->cap_tab += n_fes * dp_maglev_size((unsigned)n_eps);
	return 0;
}

/* A frontend's source ranges of its family (a LB frontend's; none: no firewall, as in
 * the other modes) and the names, for the dump, in one allocation the generation owns. */
static int svc_mem(struct dp_svc *s, const struct kp_svc_port *sp, const struct kp_frontend *fe)
{
	const char *ns = kp_svc_port_get_namespace(sp), *nm = kp_svc_port_get_name(sp);
	const char *pn = kp_svc_port_get_port_name(sp);
	size_t l1 = strlen(ns) + 1, l2 = strlen(nm) + 1, l3 = strlen(pn) + 1, n_r = 0, n_fam = 0;
	size_t size = fe->addr.family == AF_INET6 ? sizeof(struct dp_range6) :
						    sizeof(struct dp_range);
	const uint8_t *prefixes;
	const struct kp_addr *r = fe->kind == KP_FE_LOAD_BALANCER ?
				  kp_svc_port_get_source_ranges(sp, &prefixes, &n_r) : NULL;
	struct dp_range *ranges;
	struct dp_range6 *ranges6;
	char *names;

	for (size_t i = 0; i < n_r; i++)
		n_fam += r[i].family == fe->addr.family;
	s->mem = malloc(n_fam * size + l1 + l2 + l3);
	if (!s->mem)
		return -ENOMEM;
	ranges = s->mem;
	ranges6 = s->mem;
	for (size_t i = 0; i < n_r; i++) {
		if (r[i].family != fe->addr.family)
			continue;
		if (fe->addr.family == AF_INET) {
			uint32_t m = mask_of(prefixes[i]);

			ranges[s->n_ranges++] = (struct dp_range){ .net = r[i].v4.s_addr & m,
								   .mask = m };
		} else {
			struct dp_range6 *x = &ranges6[s->n_ranges++];

			memset(x, 0, sizeof(*x));
			x->prefix = prefixes[i];
			for (unsigned b = 0; b < prefixes[i] && b < 128; b++)
				x->net[b / 8] |= r[i].v6.s6_addr[b / 8] & (0x80 >> (b % 8));
		}
	}
	s->ranges = ranges;
	s->ranges6 = ranges6;
	names = (char *)s->mem + n_fam * size;
	memcpy(names, ns, l1);
	memcpy(names + l1, nm, l2);
	memcpy(names + l1 + l2, pn, l3);
	s->ns = names;
	s->name = names + l1;
	s->port_name = names + l1 + l2;
	return 0;
}

/* The endpoints of @fe's family and its Maglev table, in the build's arena. */
static void svc_endpoints(struct build *bd, struct dp_svc *s, const struct kp_svc_port *sp,
			  const struct kp_frontend *fe)
{
	size_t n_eps, n = 0;
	const struct kp_endpoint *eps = kp_svc_port_get_endpoints(sp, fe->addr.family, fe->external,
								  &n_eps);

	s->eps = bd->eps + bd->n_eps;
	s->eps6 = bd->eps6 + bd->n_eps;
	for (size_t e = 0; e < n_eps && bd->n_eps < bd->cap_eps; e++, n++) {
		if (fe->addr.family == AF_INET) {
			bd->eps[bd->n_eps++] = (struct dp_ep){ .ip = eps[e].addr.v4.s_addr,
								.port = htons(eps[e].port) };
		} else {
			bd->eps6[bd->n_eps].port = htons(eps[e].port);
			memcpy(bd->eps6[bd->n_eps++].ip, eps[e].addr.v6.s6_addr, 16);
		}
	}
	s->n_eps = (uint16_t)n;
	if (!n)
		return;
	s->m = dp_maglev_size((unsigned)n);
	if (bd->n_tab + s->m > bd->cap_tab) {
		s->m = 0;		/* cannot happen: counted above; round robin then */
		return;
	}
	s->maglev = bd->tables + bd->n_tab;
	if (fe->addr.family == AF_INET)
		dp_maglev_build(s->eps, (unsigned)n, bd->tables + bd->n_tab, s->m);
	else
		dp_maglev_build6(s->eps6, (unsigned)n, bd->tables + bd->n_tab, s->m);
	bd->n_tab += s->m;
}

static int add_port(const struct kp_svc_port *sp, void *userdata)
{
	struct build *bd = userdata;
	struct dp_gen *g = bd->g;
	enum kp_protocol proto = kp_svc_port_get_protocol(sp);
	const struct kp_frontend *fes;
	size_t n_fes;

	fes = kp_svc_port_get_frontends(sp, &n_fes);
	for (size_t i = 0; i < n_fes; i++) {
		const struct kp_frontend *fe = &fes[i];
		bool v6 = fe->addr.family == AF_INET6;
		struct dp_svc *s;
		struct dp_svc_key k __rte_aligned(8) = { .ip = fe->addr.v4.s_addr,
							 .port = htons(fe->port),
							 .proto = ip_proto(proto) };
		struct dp_svc6_key k6 __rte_aligned(8) = { .port = k.port, .proto = k.proto };
		struct rte_hash *h = v6 ? g->svcs6 : g->svcs;
		const void *key = v6 ? (const void *)&k6 : (const void *)&k;
		char name[80], a[KP_ADDR_STRLEN];

		if ((!v6 && fe->addr.family != AF_INET) || (v6 && !bd->b->dp.has_v6) ||
		    g->n_svc == bd->cap)
			continue;	/* IPv6 without a port that has an IPv6 address */
		if (v6)
			memcpy(k6.ip, fe->addr.v6.s6_addr, 16);
		if (rte_hash_lookup(h, key) >= 0)
			continue;	/* the same frontend twice: the first wins */
		s = &g->svc[g->n_svc];
		s->family = (uint8_t)fe->addr.family;
		s->vip = k.ip;
		memcpy(s->vip6, k6.ip, 16);
		s->vport = k.port;
		s->proto = k.proto;
		s->kind = (uint8_t)fe->kind;
		s->masq = g->masquerade_all ||
			  (fe->kind != KP_FE_CLUSTER_IP && !kp_svc_port_external_local(sp));
		s->affinity_s = kp_svc_port_get_affinity(sp) == KP_AFFINITY_CLIENT_IP ?
				kp_svc_port_get_affinity_timeout(sp) : 0;
		if (svc_mem(s, sp, fe) < 0) {
			bd->err = -ENOMEM;
			return 1;
		}
		snprintf(name, sizeof(name), "%s:%u/%u", kp_addr_to_str(&fe->addr, a, sizeof(a)),
			 fe->port, k.proto);
		s->id = service_id(bd->b, name);
		svc_endpoints(bd, s, sp, fe);
		g->n_svc++;		/* counted now: gen_free frees its names */
		if (rte_hash_add_key_data(h, key, s) < 0) {
			bd->err = -ENOSPC;
			return 1;
		}
	}
	return 0;
}

/* Whether a worker still holds a flow of service id @id (made minus freed there; an
 * expired flow counts until the sweep frees it). */
static bool tomb_busy(const struct dpb *b, uint16_t id)
{
	for (unsigned w = 0; w < b->dp.n_workers; w++)
		if (b->dp.workers[w] && dp_worker_stats(b->dp.workers[w])->svc[id].flows_active > 0)
			return true;
	return false;
}

/* The frontends @old had and @g lacks, and those deleted before that, are kept in @g as
 * dp_gone for the longest time-out, and after it while a worker still holds a flow of
 * theirs (a busy flow never idles out): with several workers a packet of such a flow
 * must still be steered as one to a frontend. */
static int add_tombs(struct dpb *b, const struct dp_gen *old, struct dp_gen *g)
{
	struct timespec ts;
	uint64_t now, keep = (uint64_t)(b->tcp_s > b->udp_s ? b->tcp_s : b->udp_s) * 1000;
	size_t n = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (uint32_t i = 0; old && i < old->n_svc; i++) {
		const struct dp_svc *s = &old->svc[i];
		struct tomb t = { .v6 = s->family == AF_INET6, .id = s->id, .until_ms = now + keep,
				  .k = { .ip = s->vip, .port = s->vport, .proto = s->proto },
				  .k6 = { .port = s->vport, .proto = s->proto } };

		memcpy(t.k6.ip, s->vip6, 16);
		if (rte_hash_lookup(t.v6 ? g->svcs6 : g->svcs, t.v6 ? (void *)&t.k6 : &t.k) >= 0)
			continue;
		if (b->n_tombs == b->cap_tombs) {
			size_t cap = b->cap_tombs ? b->cap_tombs * 2 : 64;
			struct tomb *v = realloc(b->tombs, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			b->tombs = v;
			b->cap_tombs = cap;
		}
		b->tombs[b->n_tombs++] = t;
	}
	for (size_t i = 0; i < b->n_tombs; i++) {	/* the young ones not back, once */
		struct tomb t = b->tombs[i];
		struct rte_hash *h = t.v6 ? g->svcs6 : g->svcs;
		const void *key = t.v6 ? (void *)&t.k6 : &t.k;

		if ((t.until_ms > now || tomb_busy(b, t.id)) && rte_hash_lookup(h, key) < 0 &&
		    rte_hash_add_key_data(h, key, (void *)&dp_gone) == 0)
			b->tombs[n++] = t;
	}
	b->n_tombs = n;
	return 0;
}

static int dp_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	struct dpb *b = priv;
	struct build bd = { .b = b };
	const struct dp_gen *old;
	size_t eps_size, tab_size;
	int r;

	(void)delta;			/* every sync builds the whole (small) generation */
	kp_state_foreach(want, count_port, &bd);
	old = atomic_load(&b->dp.gen);
	bd.g = gen_new(b, bd.cap, b->n_tombs + (old ? old->n_svc : 0));
	if (!bd.g)
		return -ENOMEM;
	eps_size = (bd.cap_eps ? bd.cap_eps : 1) * (sizeof(struct dp_ep) + sizeof(struct dp_ep6));
	tab_size = (bd.cap_tab ? bd.cap_tab : 1) * sizeof(uint16_t);
	bd.g->arena = malloc(eps_size + tab_size);
	if (!bd.g->arena) {
		gen_free(bd.g);
		return -ENOMEM;
	}
	bd.eps = bd.g->arena;
	bd.eps6 = (struct dp_ep6 *)(bd.eps + (bd.cap_eps ? bd.cap_eps : 1));
	bd.tables = (uint16_t *)((char *)bd.g->arena + eps_size);
	r = kp_state_foreach(want, add_port, &bd);
	if (r == 0 && !bd.err)
		r = add_tombs(b, old, bd.g);
	if (r < 0 || bd.err) {
		gen_free(bd.g);
		return bd.err ? bd.err : r;
	}
	gen_publish(b, bd.g);
	kp_log(b->ctx, KP_LOG_DEBUG, "dpdk: generation %llu: %u frontends",
	       (unsigned long long)b->n_gen - 1, bd.g->n_svc);
	return 0;
}

/* ---- dump ---- */

static struct kp_addr svc_addr(const struct dp_svc *s)
{
	struct kp_addr a = { .family = s->family };

	if (s->family == AF_INET6)
		memcpy(a.v6.s6_addr, s->vip6, 16);
	else
		a.v4.s_addr = s->vip;
	return a;
}

static int dp_dump(void *priv, kp_dump_fn fn, void *userdata)
{
	struct dpb *b = priv;
	struct dp_gen *g = atomic_load(&b->dp.gen);
	int r = 0;

	if (!g)
		return 0;
	for (uint32_t i = 0; i < g->n_svc && !r; i++) {
		const struct dp_svc *s = &g->svc[i];
		struct kp_endpoint eps[256];
		struct kp_addr vip = svc_addr(s);
		struct dp_svc_stats sum = { 0 };
		char detail[400], per[160] = "";
		size_t pl = 0;
		size_t n = s->n_eps < 256 ? s->n_eps : 256;

		for (unsigned w = 0; w < b->dp.n_workers; w++) {
			const struct dp_svc_stats *st = &dp_worker_stats(b->dp.workers[w])->svc[s->id];

			sum.pkts += st->pkts;
			sum.bytes += st->bytes;
			sum.flows_created += st->flows_created;
			sum.flows_active += st->flows_active;
			if (b->dp.n_workers > 1 && pl < sizeof(per))
				pl += (size_t)snprintf(per + pl, sizeof(per) - pl, "%s%llu",
						       w ? "/" : ", flows made per worker ",
						       (unsigned long long)st->flows_created);
		}
		for (size_t e = 0; e < n; e++) {
			eps[e] = (struct kp_endpoint){ .ready = true, .serving = true };
			eps[e].addr.family = s->family;
			if (s->family == AF_INET6) {
				eps[e].port = ntohs(s->eps6[e].port);
				memcpy(eps[e].addr.v6.s6_addr, s->eps6[e].ip, 16);
			} else {
				eps[e].port = ntohs(s->eps[e].port);
				eps[e].addr.v4.s_addr = s->eps[e].ip;
			}
		}
		snprintf(detail, sizeof(detail), "%s%s%s, %lld flows (%llu made), %llu packets, "
			 "%llu bytes%s", g->policy == DP_POLICY_MAGLEV && s->m ? "maglev" : "rr",
			 s->affinity_s ? ", ClientIP affinity" : "", s->masq ? ", SNAT" : "",
			 (long long)sum.flows_active, (unsigned long long)sum.flows_created,
			 (unsigned long long)sum.pkts, (unsigned long long)sum.bytes, per);
		r = fn(&(struct kp_dump_entry){
			       .ns = s->ns, .name = s->name, .port_name = s->port_name,
			       .protocol = s->proto == IPPROTO_UDP ? KP_PROTO_UDP :
					   s->proto == IPPROTO_SCTP ? KP_PROTO_SCTP : KP_PROTO_TCP,
			       .kind = (enum kp_frontend_kind)s->kind,
			       .vip = vip,
			       .port = ntohs(s->vport), .endpoints = eps, .n_endpoints = n,
			       .detail = detail,
		       }, userdata);
	}
	return r;
}

/* ---- counters, for /metrics: every worker's summed ---- */

static const char *const drop_names[_DROP_MAX] = {
	[DROP_NOT_IP] = "not_ip", [DROP_BAD_IP] = "bad_ip", [DROP_TTL] = "ttl",
	[DROP_NO_ROUTE] = "no_route", [DROP_NO_NEIGH] = "no_neighbour",
	[DROP_NO_ENDPOINT] = "no_endpoint", [DROP_FLOW_FULL] = "flow_table_full",
	[DROP_NOT_FOR_US] = "not_for_us", [DROP_TX] = "tx", [DROP_FRAG] = "fragment",
	[DROP_RING] = "worker_ring_full", [DROP_SOURCE] = "source_range",
};

struct stat_walk {
	kp_stat_fn fn;
	void *userdata;
	int r;
};

static void emit(struct stat_walk *sw, const char *name, const char *help, const char *type,
		 const char *labels, double v)
{
	if (!sw->r)
		sw->r = sw->fn(&(struct kp_stat){ .name = name, .help = help, .type = type,
						  .labels = labels, .value = v }, sw->userdata);
}

#define SUM(expr) ({						\
	double _s = 0;						\
	for (unsigned _w = 0; _w < b->dp.n_workers; _w++) {	\
		const struct dp_stats *st = dp_worker_stats(b->dp.workers[_w]); \
		_s += (double)(expr);				\
	}							\
	_s; })

static int dp_stats(void *priv, kp_stat_fn fn, void *userdata)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} port_counters[] = {
		{ "kproxyd_dpdk_rx_packets_total", "Packets received on a DPDK port",
		  offsetof(struct dp_port_stats, rx_pkts) },
		{ "kproxyd_dpdk_rx_bytes_total", "Bytes received on a DPDK port",
		  offsetof(struct dp_port_stats, rx_bytes) },
		{ "kproxyd_dpdk_tx_packets_total", "Packets sent on a DPDK port",
		  offsetof(struct dp_port_stats, tx_pkts) },
		{ "kproxyd_dpdk_tx_bytes_total", "Bytes sent on a DPDK port",
		  offsetof(struct dp_port_stats, tx_bytes) },
	};
	struct dpb *b = priv;
	struct stat_walk sw = { fn, userdata, 0 };
	struct dp_gen *g = atomic_load(&b->dp.gen);
	char labels[256];

	for (size_t c = 0; c < RTE_DIM(port_counters); c++)
		for (unsigned i = 0; i < b->dp.n_ports; i++) {
			snprintf(labels, sizeof(labels), "port=\"%s\"", b->dp.ports[i].name);
			emit(&sw, port_counters[c].name, port_counters[c].help, "counter", labels,
			     SUM(*(const uint64_t *)((const char *)&st->port[i] +
						     port_counters[c].off)));
		}
	for (int d = 0; d < _DROP_MAX; d++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", drop_names[d]);
		emit(&sw, "kproxyd_dpdk_drops_total", "Packets the DPDK data plane dropped, by "
		     "reason", "counter", labels, SUM(st->drops[d]));
	}
	emit(&sw, "kproxyd_dpdk_flows", "Flows in the DPDK data plane's tables", "gauge", "",
	     SUM(st->flows_active));
	emit(&sw, "kproxyd_dpdk_flows_created_total", "Flows the DPDK data plane made",
	     "counter", "", SUM(st->flows_created));
	emit(&sw, "kproxyd_dpdk_flows_expired_total", "Flows aged out of the DPDK data "
	     "plane's tables", "counter", "", SUM(st->flows_expired));
	emit(&sw, "kproxyd_dpdk_routed_packets_total", "Packets routed unchanged (not for a "
	     "service)", "counter", "", SUM(st->routed));
	emit(&sw, "kproxyd_dpdk_arp_replies_total", "ARP requests answered", "counter", "",
	     SUM(st->arp_replies));
	emit(&sw, "kproxyd_dpdk_icmp_replies_total", "ICMP echo requests answered", "counter",
	     "", SUM(st->icmp_replies));
	emit(&sw, "kproxyd_dpdk_icmp_related_total", "ICMP errors about a flow's packet, "
	     "translated as the flow", "counter", "", SUM(st->related));
	emit(&sw, "kproxyd_dpdk_fragments_total", "IPv4 fragments after their datagram's "
	     "first, translated as it was", "counter", "", SUM(st->fragments));
	for (unsigned w = 0; w < b->dp.n_workers; w++) {
		const struct dp_stats *st = dp_worker_stats(b->dp.workers[w]);
		uint64_t rx = 0;

		for (unsigned i = 0; i < b->dp.n_ports; i++)
			rx += st->port[i].rx_pkts;
		snprintf(labels, sizeof(labels), "worker=\"%u\",lcore=\"%u\"", w,
			 b->dp.worker_lcore[w]);
		emit(&sw, "kproxyd_dpdk_worker_rx_packets_total", "Packets a worker received "
		     "from its queues", "counter", labels, (double)rx);
		emit(&sw, "kproxyd_dpdk_worker_handed_packets_total", "Packets a worker handed "
		     "to the worker that holds their flow", "counter", labels, (double)st->handed);
		emit(&sw, "kproxyd_dpdk_worker_flows", "Flows in a worker's table", "gauge", labels,
		     (double)st->flows_active);
		emit(&sw, "kproxyd_dpdk_worker_flows_created_total", "Flows a worker made",
		     "counter", labels, (double)st->flows_created);
	}
	for (int pass = 0; g && pass < 3; pass++)
		for (uint32_t i = 0; i < g->n_svc; i++) {
			const struct dp_svc *s = &g->svc[i];
			struct kp_addr a = svc_addr(s);
			char ip[KP_ADDR_STRLEN];

			kp_addr_to_str(&a, ip, sizeof(ip));
			snprintf(labels, sizeof(labels), "service=\"%s/%s:%s\",frontend=\"%s%s%s:%u/%s\"",
				 s->ns, s->name, s->port_name, s->family == AF_INET6 ? "[" : "", ip,
				 s->family == AF_INET6 ? "]" : "", ntohs(s->vport),
				 s->proto == IPPROTO_UDP ? "UDP" : "TCP");
			if (pass == 0)
				emit(&sw, "kproxyd_dpdk_service_packets_total", "Packets of a service "
				     "frontend's flows, both directions", "counter", labels,
				     SUM(st->svc[s->id].pkts));
			else if (pass == 1)
				emit(&sw, "kproxyd_dpdk_service_bytes_total", "Bytes of a service "
				     "frontend's flows, both directions", "counter", labels,
				     SUM(st->svc[s->id].bytes));
			else
				emit(&sw, "kproxyd_dpdk_service_flows", "Flows of a service frontend",
				     "gauge", labels, SUM(st->svc[s->id].flows_active));
		}
	return sw.r;
}

/* ---- lifetime ---- */

static int dp_cleanup(void *priv)
{
	struct dpb *b = priv;
	struct dp_gen *g = gen_new(b, 0, 0);

	/* nothing in the kernel is ours: forgetting the services is all there is */
	if (!g)
		return -ENOMEM;
	gen_publish(b, g);
	return 0;
}

static void dp_destroy(void *priv)
{
	struct dpb *b = priv;

	if (!b)
		return;
	if (b->launched) {
		atomic_store(&b->dp.stop, true);
		for (unsigned i = 0; i < b->dp.n_workers; i++)
			rte_eal_wait_lcore(b->dp.worker_lcore[i]);
	}
	for (unsigned i = 0; i < b->dp.n_workers; i++)
		dp_worker_free(b->dp.workers[i]);
	dp_shared_free(&b->dp);
	gen_free(atomic_load(&b->dp.gen));
	if (b->ports_up)
		for (unsigned i = 0; i < b->dp.n_ports; i++) {
			rte_eth_dev_stop(b->dp.port_ids[i]);
			rte_eth_dev_close(b->dp.port_ids[i]);
		}
	rte_free(b->dp.qs);
	if (b->dp.pool)
		rte_mempool_free(b->dp.pool);
	if (b->eal_up)
		rte_eal_cleanup();
	kp_map_free(b->ids);
	free(b->tombs);
	free(b);
}

static int dp_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	const struct dp_opts *o = opts;
	struct dpb *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return -ENOMEM;
	b->ctx = ctx;
	b->masquerade_all = o->masquerade_all;
	b->ids = kp_map_new();
	r = b->ids ? 0 : -ENOMEM;
	for (size_t i = 0; !r && i < o->cluster_cidr.n; i++) {
		const struct kp_cidr *c = &o->cluster_cidr.v[i];

		if (c->addr.family == AF_INET6 && !b->has_cluster6) {
			b->has_cluster6 = true;
			memcpy(b->cluster6, c->addr.v6.s6_addr, 16);
			mask6(b->cluster6, c->prefix);
			b->cluster6_prefix = c->prefix;
		}
		if (c->addr.family == AF_INET && !b->cluster_mask) {
			b->cluster_mask = mask_of(c->prefix);
			b->cluster_net = c->addr.v4.s_addr & b->cluster_mask;
		}
	}
	if (!r)
		r = take_options(b, o);
	if (!r && !b->dp.n_ports)
		r = kp_ctx_set_error(ctx, -EINVAL, "dpdk: no port: give the data plane's ports "
				     "(kproxyd: --dpdk-port)");
	if (!r)
		r = eal_init(b);
	if (r)
		goto fail;
	/* the TSC frequency is known once EAL is up */
	b->dp.tsc_hz = rte_get_tsc_hz();
	b->dp.tcp_timeout_tsc = (uint64_t)b->tcp_s * b->dp.tsc_hz;
	b->dp.tcp_closing_tsc = (uint64_t)b->closing_s * b->dp.tsc_hz;
	b->dp.syn_timeout_tsc = (uint64_t)b->syn_s * b->dp.tsc_hz;
	b->dp.udp_timeout_tsc = (uint64_t)b->udp_s * b->dp.tsc_hz;
	r = ports_init(b);
	if (r)
		goto fail;
	b->dp.qs = rte_zmalloc("kp_qsbr", rte_rcu_qsbr_get_memsize(b->dp.n_workers),
			       RTE_CACHE_LINE_SIZE);
	if (!b->dp.qs || rte_rcu_qsbr_init(b->dp.qs, b->dp.n_workers) ||
	    dp_shared_init(&b->dp) < 0) {
		r = kp_ctx_set_error(ctx, -ENOMEM, "dpdk: no memory for the workers' shared "
				     "tables and rings (give more memory with -m)");
		goto fail;
	}
	for (unsigned i = 0; i < b->dp.n_workers; i++) {
		r = dp_worker_new(&b->dp, i, &b->dp.workers[i]);
		if (r) {
			kp_ctx_set_error(ctx, r, "dpdk: worker %u: no memory for %u flows (give "
					 "more memory with -m, or fewer max-flows)", i,
					 b->dp.max_flows);
			goto fail;
		}
	}
	gen_publish(b, gen_new(b, 0, 0));	/* routing works before the first sync */
	for (unsigned i = 0; i < b->dp.n_workers; i++) {
		r = rte_eal_remote_launch(dp_worker_main, b->dp.workers[i], b->dp.worker_lcore[i]);
		if (r) {
			kp_ctx_set_error(ctx, -r, "dpdk: cannot launch lcore %u",
					 b->dp.worker_lcore[i]);
			atomic_store(&b->dp.stop, true);
			for (unsigned k = 0; k < i; k++)
				rte_eal_wait_lcore(b->dp.worker_lcore[k]);
			r = -r;
			goto fail;
		}
	}
	b->launched = true;
	*ret_priv = b;
	return 0;
fail:
	dp_destroy(b);
	return r < 0 ? r : -EINVAL;
}

const struct kp_backend_ops kp_backend_dpdk = {
	.name = "dpdk",
	.init = dp_init,
	.sync = dp_sync,
	.dump = dp_dump,
	.cleanup = dp_cleanup,
	.destroy = dp_destroy,
	.stats = dp_stats,
	.options = dp_options,
	.n_options = KP_ARRAY_SIZE(dp_options),
	.options_size = sizeof(struct dp_opts),
};
