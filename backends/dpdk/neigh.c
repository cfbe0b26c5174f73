// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A worker's neighbours, both families in one table (IPv4 as ::ffff:a.b.c.d): learned
 * from ARP and neighbour discovery, asked for by an ARP request or a neighbour
 * solicitation to the solicited-node address, a few packets held while one resolves, and
 * an epoch that tells flows' cached next hops they are stale when a neighbour moves.
 */
#include <string.h>

#include <netinet/in.h>

#include <rte_arp.h>
#include <rte_branch_prediction.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "worker.h"

static struct neigh *neigh_slot(struct dp_worker *w, const uint8_t ip[16], bool create)
{
	uint32_t h = dp_hash16(ip, 0) & (NEIGH_SLOTS - 1);

	for (uint32_t i = 0; i < 16; i++) {
		struct neigh *n = &w->neigh[(h + i) & (NEIGH_SLOTS - 1)];

		if (n->used && !memcmp(n->ip, ip, 16))
			return n;
		if (!n->used && create) {
			memset(n, 0, sizeof(*n));
			memcpy(n->ip, ip, 16);
			n->used = true;
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

const struct neigh *dp_neigh_out(struct dp_worker *w, unsigned po, const uint8_t hop[16],
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
		if (is_mapped(hop))
			send_arp_request(w, po, ld32(hop + 12));
		else
			dp_nd_solicit(w, po, hop);
	}
	return NULL;
}

void dp_neigh_learn(struct dp_worker *w, unsigned pi, const uint8_t ip[16],
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


void dp_worker_neigh_add(struct dp_worker *w, unsigned pi, uint32_t ip,
			 const struct rte_ether_addr *mac)
{
	uint8_t a[16];

	mapped(ip, a);
	dp_neigh_learn(w, pi, a, mac);
}

void dp_worker_neigh6_add(struct dp_worker *w, unsigned pi, const uint8_t ip[16],
			  const struct rte_ether_addr *mac)
{
	dp_neigh_learn(w, pi, ip, mac);
}

/* A solicitation or advertisement's ICMPv6 part: @type, @flags, @target, then the
 * link-layer option @opt with @mac; its checksum last. */
void dp_nd_body(struct rte_ipv6_hdr *ip, uint8_t type, uint8_t flags, const uint8_t target[16],
		uint8_t opt, const struct rte_ether_addr *mac)
{
	uint8_t *ic = (uint8_t *)(ip + 1);

	memset(ic, 0, ND_LEN);
	ic[0] = type;
	ic[4] = flags;
	memcpy(ic + 8, target, 16);
	ic[24] = opt;
	ic[25] = 1;			/* the option's length: 8 bytes */
	memcpy(ic + 26, mac, RTE_ETHER_ADDR_LEN);
	st16(ic + 2, rte_ipv6_udptcp_cksum(ip, ic));
}

void dp_nd_solicit(struct dp_worker *w, unsigned po, const uint8_t target[16])
{
	const struct dp_port_cfg *pc = &w->dp->ports[po];
	struct rte_mbuf *m;
	struct rte_ether_hdr *eh;
	struct rte_ipv6_hdr *ip;
	uint8_t snm[16] = { 0xff, 0x02, [11] = 0x01, [12] = 0xff };

	if (!pc->has_ip6 || !(m = rte_pktmbuf_alloc(w->dp->pool)))
		return;
	eh = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eh) + sizeof(*ip) + ND_LEN);
	if (!eh) {
		rte_pktmbuf_free(m);
		return;
	}
	ip = (struct rte_ipv6_hdr *)(eh + 1);
	/* the solicited-node multicast address and its MAC, 33:33 and its last 32 bits */
	memcpy(snm + 13, target + 13, 3);
	eh->dst_addr = (struct rte_ether_addr){ { 0x33, 0x33, 0xff, target[13], target[14],
						  target[15] } };
	eh->src_addr = w->dp->macs[po];
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	dp_ip6_header(ip, ND_LEN, 255, pc->ip6, snm);
	dp_nd_body(ip, ND_SOLICIT, 0, target, ND_OPT_SOURCE_LL, &w->dp->macs[po]);
	tx(w, po, m);
}
