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
 * (longest prefix) and the next hop's MAC (neigh.c: ARP, with a few packets held while it
 * resolves), and leave through a transmit buffer flushed every loop. IPv6 packets go to
 * fastpath6.c a burst at a time; what both share (flow tables, handing over, affinity,
 * the sweep) is worker.c's.
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
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "worker.h"

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

/* An ARP packet received on port @pi: senders on the port's subnet learned, requests for
 * the port's address answered. A copy goes to each other worker (@copy), which only
 * learns from it: every worker keeps its own neighbour table. */
static void arp_input(struct dp_worker *w, unsigned pi, struct rte_mbuf *m, bool copy)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_arp_hdr *ah = (struct rte_arp_hdr *)(eh + 1);
	const struct dp_port_cfg *p = &w->dp->ports[pi];
	uint32_t mask = p->prefix ? rte_cpu_to_be_32(~0u << (32 - p->prefix)) : 0;
	uint8_t sender[16];

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
				dp_hand(w, i, pi, c);
		}
		mapped(ah->arp_data.arp_sip, sender);
		dp_neigh_learn(w, pi, sender, &ah->arp_data.arp_sha);
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

struct pkt {
	struct rte_ipv4_hdr *ip;
	void *sport, *dport;		/* the ports, in the L4 header */
	void *l4sum;			/* TCP or UDP checksum, NULL for a UDP datagram without
					 * and for SCTP (made again, not updated) */
	bool udp;
	bool frag;			/* the first fragment of a datagram (its ports are here) */
	bool sctp;			/* its checksum is made again after a rewrite */
	uint8_t tcp_flags;
	unsigned l3len, l4len;		/* l4len: SCTP's */
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

static inline void translate(struct dp_worker *w, struct flow *f, int dir, struct pkt *p,
			     struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip = p->ip;

	if (dir == DIR_FWD) {
		set_addr(p, (void *)&ip->dst_addr, f->rkey.src_ip);
		set_port(p, p->dport, f->rkey.src_port);
		if (f->f.snat) {
			set_addr(p, (void *)&ip->src_addr, f->rkey.dst_ip);
			set_port(p, p->sport, f->rkey.dst_port);
		}
	} else {
		set_addr(p, (void *)&ip->src_addr, f->fkey.dst_ip);
		set_port(p, p->sport, f->fkey.dst_port);
		if (f->f.snat) {
			set_addr(p, (void *)&ip->dst_addr, f->fkey.src_ip);
			set_port(p, p->dport, f->fkey.src_port);
		}
	}
	if (unlikely(p->sctp))
		dp_sctp_sum(p->sport, p->l4len);
	f->f.last = w->now;
	flow_state(&f->f, dir, p->tcp_flags, f->fkey.proto);
	w->st.svc[f->f.svc_id].pkts++;
	w->st.svc[f->f.svc_id].bytes += m->pkt_len;
}

static inline void flow_free(struct dp_worker *w, uint32_t idx)
{
	struct flow *f = (struct flow *)w->t4.slot + idx;

	dp_flow_free(w, &w->t4, idx, &f->fkey, &f->rkey, &f->f);
}

static const struct dp_ep *pick(struct dp_worker *w, const struct dp_gen *g,
				const struct dp_svc *s, const struct dp_flow_key *k)
{
	const struct dp_ep *ep;
	int i = s->affinity_s ? dp_aff_get(w, s, k->src_ip) : -1;

	if (i >= 0)
		return &s->eps[i];
	if (s->m && g->policy == DP_POLICY_MAGLEV)
		ep = &s->eps[s->maglev[dp_flow_hash(k) % s->m]];
	else
		ep = &s->eps[__atomic_fetch_add(&w->dp->rr[s->id], 1, __ATOMIC_RELAXED) % s->n_eps];
	if (s->affinity_s)
		dp_aff_put(w, s, k->src_ip, dp_ep_name(ep->ip, ep->port));
	return ep;
}

static inline bool in_net(uint32_t ip, uint32_t net, uint32_t mask)
{
	return mask && (ip & mask) == net;
}

/* A first packet to service @s: an endpoint, a flow. Returns the flow or NULL (@m is
 * then handled: answered or dropped). */
static struct flow *flow_new(struct dp_worker *w, const struct dp_gen *g, const struct dp_svc *s,
			     const struct dp_flow_key *k, unsigned pi, struct rte_mbuf *m,
			     struct pkt *p)
{
	const struct dp_ep *ep;
	const struct dp_route *rt;
	struct dp_svc_key sk __rte_aligned(8) = { .proto = k->proto };
	struct flow *f;
	uint32_t idx;

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
	f = slot_take(&w->t4, sizeof(*f), &idx);
	if (!f) {
		count_drop(w, DROP_FLOW_FULL, m);
		return NULL;
	}
	ep = pick(w, g, s, k);
	memset(f, 0, sizeof(*f));
	f->fkey = *k;
	f->f.svc_id = s->id;
	f->f.state = flow_first_state(k->proto, p->tcp_flags);
	rt = route_of(g, ep->ip);
	/* masquerade as kube-proxy does (external frontends, or all traffic; a cluster IP
	 * reached from outside the cluster CIDR; hairpin), and where the client and the
	 * endpoint share a link: the reply would go straight back, not through us */
	f->f.snat = rt && (s->masq || ep->ip == k->src_ip ||
			   (s->kind == 0 && g->cluster_mask &&
			    !in_net(k->src_ip, g->cluster_net, g->cluster_mask)) ||
			   (!rt->gw && route_of(g, k->src_ip) == rt));
	f->rkey = (struct dp_flow_key){ .src_ip = ep->ip, .src_port = ep->port, .proto = k->proto };
	for (int tries = 0;; tries++) {
		if (f->f.snat) {
			f->rkey.dst_ip = sk.ip = w->dp->ports[rt->port].ip;
			f->rkey.dst_port = dp_snat_port(w, g->svcs, &sk, &sk.port);
		} else {
			f->rkey.dst_ip = k->src_ip;
			f->rkey.dst_port = k->src_port;
		}
		if (rte_hash_lookup(w->t4.hash, &f->rkey) < 0)
			break;
		if (tries == 16 || !rt) {	/* no free reverse tuple: give up on this packet */
			w->t4.free_idx[w->t4.n_free++] = idx;
			count_drop(w, DROP_FLOW_FULL, m);
			return NULL;
		}
		f->f.snat = true;	/* the client's tuple is taken: masquerade this one */
	}
	if (dp_flow_insert(w, &w->t4, idx, &f->fkey, &f->rkey, s->id)) {
		count_drop(w, DROP_FLOW_FULL, m);
		return NULL;
	}
	return f;
}

/* Whether UDP flow @f's endpoint is no longer one of its frontend's (or the frontend is
 * gone): kube-proxy deletes such conntrack entries so that a client's next datagram
 * goes to a live endpoint; here the sweep frees the flow. */
static bool udp_stale4(const struct dp_gen *g, const void *slot)
{
	const struct flow *f = slot;
	struct dp_svc_key sk __rte_aligned(8) = { .ip = f->fkey.dst_ip, .port = f->fkey.dst_port,
						  .proto = f->fkey.proto };
	void *sv;
	const struct dp_svc *s;

	if (rte_hash_lookup_data(g->svcs, &sk, &sv) < 0 || sv == &dp_gone)
		return true;
	s = sv;
	for (uint16_t i = 0; i < s->n_eps; i++)
		if (s->eps[i].ip == f->rkey.src_ip && s->eps[i].port == f->rkey.src_port)
			return false;
	return true;
}

/* Reclaims the slots of expired flows and of UDP flows whose endpoint went, a few per
 * loop; a packet that meets an expired flow before the sweep does treats it as gone
 * (dp_worker_process). */
static void sweep(struct dp_worker *w)
{
	dp_sweep(w, &w->t4, sizeof(struct flow), sizeof(struct dp_flow_key), udp_stale4);
	if (w->t6.hash)
		dp_sweep(w, &w->t6, sizeof(struct flow6), sizeof(struct dp_flow6_key),
			 dp_udp_stale6);
}

/* ---- the burst ---- */

/* Parses @m's IPv4 header and, for TCP, UDP and SCTP, its ports into @p and @k. Returns
 * 0 for ARP, 1 for IPv4 without a 5-tuple (ICMP, other protocols), 2 with one (a first
 * fragment too: @p->frag), 3 for IPv6 (fastpath6.c's), 4 for a fragment after the first
 * (no ports), -1 for what is dropped. */
static inline int parse(struct rte_mbuf *m, struct pkt *p, struct dp_flow_key *k)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip;
	unsigned len = rte_pktmbuf_data_len(m), l3len, tot;

	if (unlikely(len < sizeof(*eh)))
		return -1;
	if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
		return 0;
	if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6))
		return 3;
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
	p->frag = false;
	p->sctp = false;
	if (unlikely(ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG |
							     RTE_IPV4_HDR_OFFSET_MASK))) {
		if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK))
			return 4;
		p->frag = true;
	}
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
	} else if (ip->next_proto_id == IPPROTO_SCTP && !p->frag && tot >= l3len + 12) {
		uint8_t *h = (uint8_t *)ip + l3len;	/* ports, tag, checksum */

		p->sport = h;
		p->dport = h + 2;
		p->l4sum = NULL;
		p->udp = false;
		p->sctp = true;
		p->l4len = tot - l3len;
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
	uint8_t hop[16];

	if (unlikely(!rt))
		return count_drop(w, DROP_NO_ROUTE, m);
	mapped(rt->gw ? rt->gw : ip->dst_addr, hop);
	n = dp_neigh_out(w, rt->port, hop, m);
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
	struct nh_cache *c = &f->f.nh[dir];

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

/* The worker that owns the flow of a packet with 5-tuple @k that no local flow holds: @fe,
 * it is to a frontend; @ours, to one of our port addresses (dp.h). */
static inline unsigned owner(const struct dp *dp, const struct dp_flow_key *k, bool fe, bool ours)
{
	unsigned nw = dp->n_workers, dport = rte_be_to_cpu_16(k->dst_port);

	if (fe)
		return dp_client_owner(k->src_ip, k->src_port, nw);
	if (ours)
		return dport >= DP_SNAT_LO ? (dport - DP_SNAT_LO) % nw : 0;
	return dp_client_owner(k->dst_ip, k->dst_port, nw);
}

/*
 * Fragments. The kernel modes see whole datagrams (conntrack reassembles them); here
 * each fragment is translated and sent as it comes, without holding or reassembling
 * (the "virtual reassembly" of VPP's NAT): the first fragment carries the ports, goes
 * the way of its flow like any packet, and its translation is noted under the
 * datagram's key (dp_frag); the later ones carry no ports and are sent the same way by
 * that key: handed to the worker that owns the flow, and there given the first's
 * addresses. The L4 checksum is in the first fragment only, and its incremental update
 * does not depend on the rest of the datagram. A later fragment that comes before its
 * first is dropped if it is to one of our addresses, else routed as it is.
 */
static inline struct dp_frag *frag_slot(struct dp_worker *w, uint32_t src, uint32_t dst,
					uint16_t id, uint8_t proto)
{
	uint32_t h = rte_hash_crc_4byte(src, (uint32_t)id << 8 | proto);

	return &w->frag[rte_hash_crc_4byte(dst, h) & (DP_FRAG_SLOTS - 1)];
}

/* The datagram of first fragment @ip, received with key @k, goes to worker @owner; when
 * that is this worker, translated to @ip's addresses now (service @svc_id). */
static void frag_note(struct dp_worker *w, const struct dp_flow_key *k,
		      const struct rte_ipv4_hdr *ip, unsigned owner, uint16_t svc_id)
{
	*frag_slot(w, k->src_ip, k->dst_ip, ip->packet_id, k->proto) = (struct dp_frag){
		.src = k->src_ip, .dst = k->dst_ip, .id = ip->packet_id, .proto = k->proto,
		.owner = (uint8_t)owner, .new_src = ld32(&ip->src_addr),
		.new_dst = ld32(&ip->dst_addr), .svc_id = svc_id, .seen = w->now | 1 };
}

/* A later fragment of a datagram whose first was noted here: sent its way. False when
 * no such datagram is known (not ours, or its first has not come). */
static bool frag_follow(struct dp_worker *w, const struct dp_gen *g, unsigned pi,
			struct rte_mbuf *m, struct pkt *p)
{
	struct rte_ipv4_hdr *ip = p->ip;
	uint32_t src = ld32(&ip->src_addr), dst = ld32(&ip->dst_addr);
	struct dp_frag *e = frag_slot(w, src, dst, ip->packet_id, ip->next_proto_id);

	if (!e->seen || e->src != src || e->dst != dst || e->id != ip->packet_id ||
	    e->proto != ip->next_proto_id ||
	    (int64_t)(w->now - e->seen) > (int64_t)(DP_FRAG_TTL_S * w->dp->tsc_hz))
		return false;	/* (seen is now | 1: a fragment of the same round is 1 before) */
	e->seen = w->now | 1;
	if (dp_hand_to_owner(w, e->owner, pi, m))
		return true;
	p->l4sum = NULL;	/* in the first fragment */
	if (e->new_src != src)
		set_addr(p, &ip->src_addr, e->new_src);
	if (e->new_dst != dst)
		set_addr(p, &ip->dst_addr, e->new_dst);
	w->st.svc[e->svc_id].pkts++;
	w->st.svc[e->svc_id].bytes += m->pkt_len;
	w->st.fragments++;
	forward(w, g, ip, m);
	return true;
}

/* An ICMP error (destination unreachable, time exceeded, parameter problem, source
 * quench) about a packet of one of our flows: translated as conntrack does for RELATED
 * traffic, so that the sender of the original packet sees the error about what it sent
 * (the VIP, its own address and port) from the address it sent to. The quoted packet
 * went one way of the flow, so its swapped 5-tuple is the key of the other way, which
 * is the way the error goes. Returns false for an error of no flow here (routed as it
 * is), true when it was translated and sent, or handed to the flow's worker. */
static bool icmp_related(struct dp_worker *w, const struct dp_gen *g, unsigned pi,
			 struct rte_mbuf *m, struct pkt *p, uint8_t type, bool handed)
{
	struct rte_ipv4_hdr *ip = p->ip, *in;
	struct rte_icmp_hdr *ic = (struct rte_icmp_hdr *)((char *)ip + p->l3len);
	unsigned tot = rte_be_to_cpu_16(ip->total_length), inlen;
	struct dp_flow_key k __rte_aligned(8) = { 0 };
	uint16_t *ports;
	void *data;
	struct flow *f;
	int d;

	if (type != 3 && type != 4 && type != 11 && type != 12)
		return false;
	in = (struct rte_ipv4_hdr *)(ic + 1);
	if (tot < p->l3len + sizeof(*ic) + sizeof(*in) + 4)
		return false;
	inlen = (unsigned)(in->version_ihl & 0xf) * 4;
	if ((in->version_ihl >> 4) != 4 || inlen < 20 ||
	    tot < p->l3len + sizeof(*ic) + inlen + 4 ||
	    (in->next_proto_id != IPPROTO_TCP && in->next_proto_id != IPPROTO_UDP &&
	     in->next_proto_id != IPPROTO_SCTP))
		return false;
	ports = (uint16_t *)((char *)in + inlen);
	k = (struct dp_flow_key){ .src_ip = ld32(&in->dst_addr), .dst_ip = ld32(&in->src_addr),
				  .src_port = ld16(&ports[1]), .dst_port = ld16(&ports[0]),
				  .proto = in->next_proto_id };
	if (rte_hash_lookup_data(w->t4.hash, &k, &data) < 0) {
		struct dp_svc_key sk __rte_aligned(8) = { .ip = k.dst_ip, .port = k.dst_port,
							  .proto = k.proto };

		if (w->dp->n_workers == 1 || handed)
			return false;
		return dp_hand_to_owner(w, owner(w->dp, &k, rte_hash_lookup(g->svcs, &sk) >= 0,
						 our_port(w->dp, k.dst_ip) >= 0), pi, m);
	}
	f = (struct flow *)w->t4.slot + ((uintptr_t)data >> 1);
	d = (int)((uintptr_t)data & 1);
	if (d == DIR_REV) {	/* about a request: it goes back toward the client */
		st32(&in->dst_addr, f->fkey.dst_ip);
		st16(&ports[1], f->fkey.dst_port);
		if (ld32(&ip->src_addr) == f->rkey.src_ip)
			st32(&ip->src_addr, f->fkey.dst_ip);
		if (f->f.snat) {
			st32(&in->src_addr, f->fkey.src_ip);
			st16(&ports[0], f->fkey.src_port);
			st32(&ip->dst_addr, f->fkey.src_ip);
		}
	} else {		/* about a reply: it goes toward the endpoint */
		st32(&in->src_addr, f->rkey.src_ip);
		st16(&ports[0], f->rkey.src_port);
		st32(&ip->dst_addr, f->rkey.src_ip);
		if (f->f.snat) {
			st32(&in->dst_addr, f->rkey.dst_ip);
			st16(&ports[1], f->rkey.dst_port);
			st32(&ip->src_addr, f->rkey.dst_ip);
		}
	}
	/* the quoted L4 checksum is left: a host matches the error by addresses and ports */
	in->hdr_checksum = 0;
	in->hdr_checksum = rte_ipv4_cksum(in);
	ic->icmp_cksum = 0;
	ic->icmp_cksum = (uint16_t)~rte_raw_cksum(ic, tot - p->l3len);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	w->st.related++;
	forward_flow(w, g, ip, m, f, d);
	return true;
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
	struct dp_flow_key keys[DP_BURST] __rte_aligned(8);
	struct rte_mbuf *v6[DP_BURST];
	uint16_t n6 = 0;
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
		rte_hash_lookup_bulk_data(w->t4.hash, kp, nk, &hits, data);
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct pkt *pp = &p[i];
		int ours;

		if (kind[i] == 0) {
			arp_input(w, pi, m, !handed);
			continue;
		}
		if (kind[i] == 3) {
			v6[n6++] = m;
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
			if (rte_hash_lookup_data(w->t4.hash, &keys[slot[i]], &data[slot[i]]) >= 0)
				hits |= 1ull << slot[i];
			else
				hits &= ~(1ull << slot[i]);
		}
		if (kind[i] == 2 && (hits >> slot[i]) & 1) {
			uintptr_t d = (uintptr_t)data[slot[i]];
			struct flow *hf = (struct flow *)w->t4.slot + (d >> 1);

			if (unlikely(w->now - hf->f.last > flow_ttl(w->dp, &hf->f))) {
				flow_free(w, (uint32_t)(d >> 1));	/* expired: gone */
				hits &= ~(1ull << slot[i]);
				changed = true;
			}
		}
		if (kind[i] == 2 && (hits >> slot[i]) & 1) {
			uintptr_t d = (uintptr_t)data[slot[i]];

			struct flow *f = (struct flow *)w->t4.slot + (d >> 1);

			translate(w, f, (int)(d & 1), pp, m);
			if (unlikely(pp->frag))
				frag_note(w, &keys[slot[i]], pp->ip, w->idx, f->f.svc_id);
			forward_flow(w, g, pp->ip, m, f, (int)(d & 1));
			continue;
		}
		ours = our_port(w->dp, pp->ip->dst_addr);
		if (kind[i] == 4) {
			if (frag_follow(w, g, pi, m, pp))
				continue;
			if (ours >= 0) {
				count_drop(w, DROP_FRAG, m);
				continue;
			}
		} else if (kind[i] == 2) {
			struct dp_svc_key sk __rte_aligned(8) = { .ip = ld32(&pp->ip->dst_addr), .port = ld16(pp->dport),
						 .proto = pp->ip->next_proto_id };
			void *sv;
			bool fe = rte_hash_lookup_data(g->svcs, &sk, &sv) >= 0;

			/* not a flow of ours: whose is it? (dp.h) */
			if (w->dp->n_workers > 1 && !handed) {
				unsigned o = owner(w->dp, &keys[slot[i]], fe, ours >= 0);

				if (unlikely(pp->frag) && o != w->idx)
					frag_note(w, &keys[slot[i]], pp->ip, o, 0);
				if (dp_hand_to_owner(w, o, pi, m))
					continue;
			}
			if (fe && sv != &dp_gone) {
				struct flow *f = flow_new(w, g, sv, &keys[slot[i]], pi, m, pp);

				if (f) {
					changed = true;
					translate(w, f, DIR_FWD, pp, m);
					if (unlikely(pp->frag))
						frag_note(w, &keys[slot[i]], pp->ip, w->idx,
							  f->f.svc_id);
					forward_flow(w, g, pp->ip, m, f, DIR_FWD);
				}
				continue;
			}
		} else if (!pp->frag && pp->ip->next_proto_id == IPPROTO_ICMP &&
			   rte_pktmbuf_data_len(m) >= sizeof(struct rte_ether_hdr) + pp->l3len + 8) {
			uint8_t type = ((struct rte_icmp_hdr *)((char *)pp->ip + pp->l3len))->icmp_type;

			if (ours >= 0 && type == RTE_IP_ICMP_ECHO_REQUEST) {
				icmp_echo(w, pi, m, pp->ip, pp->l3len);
				continue;
			}
			if (icmp_related(w, g, pi, m, pp, type, handed))
				continue;
		}
		if (ours >= 0) {
			count_drop(w, DROP_NOT_FOR_US, m);
			continue;
		}
		w->st.routed++;
		forward(w, g, pp->ip, m);
	}
	if (n6)
		dp_process6(w, g, pi, v6, n6, handed);
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
		dp_hand_flush(w, i);
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

void dp_worker_sweep(struct dp_worker *w)
{
	sweep(w);
}

unsigned dp_worker_take_handed(struct dp_worker *w)
{
	return take_handed(w);
}

/* mbufs from a pool that need not be IOVA-contiguous: with 4 KiB pages (--no-huge) the
 * default layout puts one mbuf per page at one offset, which aliases cache sets */
