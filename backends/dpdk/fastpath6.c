// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The worker's IPv6 path: what fastpath.c does for IPv4, for IPv6 packets (process()
 * hands them over per burst).
 *
 * Neighbour discovery (RFC 4861) as a router on each port with an IPv6 address: a
 * solicitation for the port's address is answered (an advertisement with the Router,
 * Solicited and Override flags), solicitations' and advertisements' link-layer addresses
 * are learned (copied to the other workers, as ARP), and a next hop not yet known is
 * solicited through its solicited-node multicast address, its packets held meanwhile
 * (the neighbour table is the one IPv4 uses). ICMPv6 echo to a port's address is
 * answered; a first packet to a frontend without endpoints gets ICMPv6 port unreachable.
 *
 * NAT66 as NAT44: a flow's two directions are two keys of this worker's IPv6 flow table,
 * addresses and ports are rewritten with incremental L4 checksum updates (IPv6 has no
 * header checksum), masquerading takes the egress port's IPv6 address and one of this
 * worker's ports. Of the extension headers only a first Fragment header is walked
 * (fragments are followed as IPv4's are); a packet whose first next header is another
 * one is routed unchanged (no frontend is looked up for it).
 * Multicast and link-local destinations are not routed.
 */
#include <netinet/in.h>

#include <rte_branch_prediction.h>
#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "worker.h"

#define ICMP6_ERR_MAX 1232		/* of the offending packet: the error fits 1280 bytes */

struct pkt6 {
	struct rte_ipv6_hdr *ip;
	void *sport, *dport;		/* the ports, in the L4 header */
	void *l4sum;
	bool udp;
	bool frag;			/* the first fragment of a datagram (its ports are here) */
	bool sctp;			/* its checksum is made again after a rewrite */
	unsigned l4len;			/* SCTP's */
	uint8_t tcp_flags;
	uint8_t frag_proto;		/* a fragment's: its Fragment header's next header */
	uint32_t frag_id;		/* and identification */
};

static const uint8_t any6[16];

static inline bool in_prefix6(const uint8_t a[16], const uint8_t net[16], uint8_t prefix)
{
	unsigned full = prefix / 8, rem = prefix % 8;

	if (memcmp(a, net, full))
		return false;
	return !rem || !((a[full] ^ net[full]) & (uint8_t)(0xff << (8 - rem)));
}

static inline const struct dp_route6 *route6_of(const struct dp_gen *g, const uint8_t dst[16])
{
	for (uint32_t i = 0; i < g->n_routes6; i++)
		if (in_prefix6(dst, g->routes6[i].net, g->routes6[i].prefix))
			return &g->routes6[i];
	return NULL;
}

static inline int our_port6(const struct dp *dp, const uint8_t ip[16])
{
	for (unsigned i = 0; i < dp->n_ports; i++)
		if (dp->ports[i].has_ip6 && !memcmp(dp->ports[i].ip6, ip, 16))
			return (int)i;
	return -1;
}

/* The L4 checksum after a 128-bit field changes from @o to @n (RFC 1624). */
static inline uint16_t csum_upd128(uint16_t c, const uint8_t *o, const uint8_t *n)
{
	uint32_t s = (uint16_t)~c;

	for (int i = 0; i < 16; i += 2)
		s += (uint16_t)~ld16(o + i) + (uint32_t)ld16(n + i);
	return (uint16_t)~dp_csum_fold(s);
}

static inline void l4_store6(struct pkt6 *p, uint16_t c)
{
	st16(p->l4sum, p->udp && !c ? 0xffff : c);
}

static inline void set_addr6(struct pkt6 *p, uint8_t *field, const uint8_t v[16])
{
	if (p->l4sum)
		l4_store6(p, csum_upd128(ld16(p->l4sum), field, v));
	memcpy(field, v, 16);
}

static inline void set_port6(struct pkt6 *p, void *field, uint16_t v)
{
	if (p->l4sum)
		l4_store6(p, dp_csum_upd16(ld16(p->l4sum), ld16(field), v));
	st16(field, v);
}

/* 2 for TCP, UDP and SCTP (@p and @k filled; a first fragment too: @p->frag), 1 for other
 * IPv6, 4 for a fragment after the first, -1 for what is dropped. A Fragment header is
 * the one extension header walked, when it comes first. */
static inline int parse6(struct rte_mbuf *m, struct pkt6 *p, struct dp_flow6_key *k)
{
	struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *,
							  sizeof(struct rte_ether_hdr));
	unsigned len = rte_pktmbuf_data_len(m), plen;
	uint8_t *l4 = (uint8_t *)(ip + 1), proto;

	if (unlikely(len < sizeof(struct rte_ether_hdr) + sizeof(*ip)))
		return -1;
	plen = rte_be_to_cpu_16(ip->payload_len);
	if (unlikely((ld32(&ip->vtc_flow) & rte_cpu_to_be_32(0xf0000000u)) !=
		     rte_cpu_to_be_32(0x60000000u) ||
		     len < sizeof(struct rte_ether_hdr) + sizeof(*ip) + plen))
		return -1;
	p->ip = ip;
	p->tcp_flags = 0;
	p->frag = false;
	p->sctp = false;
	proto = ip->proto;
	if (unlikely(proto == IPPROTO_FRAGMENT)) {
		const struct rte_ipv6_fragment_ext *fh = (const void *)l4;

		if (plen < sizeof(*fh))
			return 1;
		p->frag_proto = fh->next_header;
		p->frag_id = ld32(&fh->id);
		if (rte_be_to_cpu_16(ld16(&fh->frag_data)) & RTE_IPV6_EHDR_FO_MASK)
			return 4;
		p->frag = true;
		proto = fh->next_header;
		l4 += sizeof(*fh);
		plen -= (unsigned)sizeof(*fh);
	}
	if (proto == IPPROTO_TCP && plen >= sizeof(struct rte_tcp_hdr)) {
		struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)l4;

		p->l4sum = &t->cksum;
		p->udp = false;
		p->tcp_flags = t->tcp_flags;
	} else if (proto == IPPROTO_UDP && plen >= sizeof(struct rte_udp_hdr)) {
		p->l4sum = &((struct rte_udp_hdr *)l4)->dgram_cksum;
		p->udp = true;
	} else if (proto == IPPROTO_SCTP && !p->frag && plen >= 12) {
		p->l4sum = NULL;
		p->udp = false;
		p->sctp = true;
		p->l4len = plen;
	} else {
		return 1;
	}
	p->sport = l4;			/* TCP, UDP and SCTP all begin with the two ports */
	p->dport = l4 + 2;
	memcpy(k->src_ip, ip->src_addr, 16);
	memcpy(k->dst_ip, ip->dst_addr, 16);
	k->src_port = ld16(p->sport);
	k->dst_port = ld16(p->dport);
	k->proto = proto;
	memset(k->pad, 0, sizeof(k->pad));
	return 2;
}

/* ---- neighbour discovery, ICMPv6 ---- */

/* A solicitation or advertisement received on port @pi: what it tells learned (and
 * copied to the other workers when @copy), a solicitation for the port's address
 * answered. */
static void nd_input(struct dp_worker *w, unsigned pi, struct rte_mbuf *m, struct pkt6 *p,
		     bool copy)
{
	const struct dp_port_cfg *pc = &w->dp->ports[pi];
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv6_hdr *ip = p->ip;
	uint8_t *ic = (uint8_t *)(ip + 1), target[16], peer[16];
	unsigned plen = rte_be_to_cpu_16(ip->payload_len);
	const struct rte_ether_addr *ll = NULL;
	struct rte_ether_addr mac;
	bool solicit = ic[0] == ND_SOLICIT, from_any;

	if (ip->hop_limits != 255 || plen < 24)	/* not from this link */
		return count_drop(w, DROP_BAD_IP, m);
	memcpy(target, ic + 8, 16);
	memcpy(peer, ip->src_addr, 16);
	from_any = !memcmp(peer, any6, 16);
	for (unsigned off = 24, olen; off + 8 <= plen; off += olen) {
		olen = ic[off + 1] * 8u;
		if (!olen)
			break;
		if (ic[off] == (solicit ? ND_OPT_SOURCE_LL : ND_OPT_TARGET_LL))
			ll = (const struct rte_ether_addr *)(ic + off + 2);
	}
	if (solicit ? ll && !from_any : true) {
		mac = ll ? *ll : eh->src_addr;
		for (unsigned i = 0; copy && i < w->dp->n_workers; i++) {
			struct rte_mbuf *c = i == w->idx ? NULL :
					     rte_pktmbuf_copy(m, w->dp->pool, 0, UINT32_MAX);

			if (c)
				dp_hand(w, i, pi, c);
		}
		dp_neigh_learn(w, pi, solicit ? peer : target, &mac);
	}
	if (!copy || !solicit || !pc->has_ip6 || memcmp(target, pc->ip6, 16)) {
		rte_pktmbuf_free(m);
		return;
	}
	/* the advertisement, in the solicitation's buffer */
	if (rte_pktmbuf_pkt_len(m) > sizeof(*eh) + sizeof(*ip) + ND_LEN)
		rte_pktmbuf_trim(m, (uint16_t)(rte_pktmbuf_pkt_len(m) - sizeof(*eh) - sizeof(*ip) -
					       ND_LEN));
	else if (rte_pktmbuf_pkt_len(m) < sizeof(*eh) + sizeof(*ip) + ND_LEN &&
		 !rte_pktmbuf_append(m, (uint16_t)(sizeof(*eh) + sizeof(*ip) + ND_LEN -
						   rte_pktmbuf_pkt_len(m))))
		return count_drop(w, DROP_BAD_IP, m);
	if (from_any) {			/* to all nodes (RFC 4861 7.2.4) */
		static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 0x01 };

		memcpy(peer, all_nodes, 16);
		eh->dst_addr = (struct rte_ether_addr){ { 0x33, 0x33, 0, 0, 0, 1 } };
	} else {
		eh->dst_addr = eh->src_addr;
	}
	eh->src_addr = w->dp->macs[pi];
	dp_ip6_header(ip, ND_LEN, 255, pc->ip6, peer);
	dp_nd_body(ip, ND_ADVERT, from_any ? 0xa0 : 0xe0, target, ND_OPT_TARGET_LL,
		&w->dp->macs[pi]);	/* Router, Solicited (when asked by a node), Override */
	w->st.arp_replies++;
	tx(w, pi, m);
}

static void echo6(struct dp_worker *w, unsigned pi, struct rte_mbuf *m, struct rte_ipv6_hdr *ip)
{
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint8_t *ic = (uint8_t *)(ip + 1), a[16];
	struct rte_ether_addr mac = eh->src_addr;

	/* the type is the high byte of the checksum's first word; swapping the addresses
	 * leaves the pseudo-header's sum as it was */
	ic[0] = ICMP6_ECHO_REPLY;
	st16(ic + 2, dp_csum_upd16(ld16(ic + 2), rte_cpu_to_be_16(ICMP6_ECHO_REQUEST << 8),
				   rte_cpu_to_be_16(ICMP6_ECHO_REPLY << 8)));
	memcpy(a, ip->src_addr, 16);
	memcpy(ip->src_addr, ip->dst_addr, 16);
	memcpy(ip->dst_addr, a, 16);
	ip->hop_limits = 64;
	w->st.icmp_replies++;
	eth_out(w, pi, &mac, m);
}

/* ICMPv6 port unreachable for a packet to a frontend without endpoints, back out of the
 * port it came in on. */
static void unreachable6(struct dp_worker *w, unsigned pi, struct rte_mbuf *m,
			 struct rte_ipv6_hdr *ip)
{
	const struct dp_port_cfg *pc = &w->dp->ports[pi];
	struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *), e = *eh;
	unsigned keep = rte_pktmbuf_pkt_len(m) - sizeof(*eh);
	struct rte_ipv6_hdr *nip;
	uint8_t *ic, src[16];

	w->st.drops[DROP_NO_ENDPOINT]++;
	memcpy(src, ip->src_addr, 16);
	if (!pc->has_ip6) {
		rte_pktmbuf_free(m);
		return;
	}
	if (keep > ICMP6_ERR_MAX) {
		rte_pktmbuf_trim(m, (uint16_t)(keep - ICMP6_ERR_MAX));
		keep = ICMP6_ERR_MAX;
	}
	rte_pktmbuf_adj(m, sizeof(*eh));
	eh = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eh) + sizeof(*nip) + 8);
	if (!eh || rte_pktmbuf_data_len(m) != rte_pktmbuf_pkt_len(m)) {
		rte_pktmbuf_free(m);
		return;
	}
	nip = (struct rte_ipv6_hdr *)(eh + 1);
	ic = (uint8_t *)(nip + 1);
	eh->dst_addr = e.src_addr;
	eh->src_addr = w->dp->macs[pi];
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	dp_ip6_header(nip, (uint16_t)(8 + keep), 64, pc->ip6, src);
	memset(ic, 0, 8);
	ic[0] = ICMP6_UNREACH;
	ic[1] = ICMP6_UNREACH_PORT;
	st16(ic + 2, rte_ipv6_udptcp_cksum(nip, ic));
	tx(w, pi, m);
}

/* ---- NAT66 ---- */

static inline void translate6(struct dp_worker *w, struct flow6 *f, int dir, struct pkt6 *p,
			      struct rte_mbuf *m)
{
	struct rte_ipv6_hdr *ip = p->ip;

	if (dir == DIR_FWD) {
		set_addr6(p, ip->dst_addr, f->rkey.src_ip);
		set_port6(p, p->dport, f->rkey.src_port);
		if (f->f.snat) {
			set_addr6(p, ip->src_addr, f->rkey.dst_ip);
			set_port6(p, p->sport, f->rkey.dst_port);
		}
	} else {
		set_addr6(p, ip->src_addr, f->fkey.dst_ip);
		set_port6(p, p->sport, f->fkey.dst_port);
		if (f->f.snat) {
			set_addr6(p, ip->dst_addr, f->fkey.src_ip);
			set_port6(p, p->dport, f->fkey.src_port);
		}
	}
	if (unlikely(p->sctp))
		dp_sctp_sum(p->sport, p->l4len);
	f->f.last = w->now;
	flow_state(&f->f, dir, p->tcp_flags, f->fkey.proto);
	w->st.svc[f->f.svc_id].pkts++;
	w->st.svc[f->f.svc_id].bytes += m->pkt_len;
}

static const struct dp_ep6 *pick6(struct dp_worker *w, const struct dp_gen *g,
				  const struct dp_svc *s, const struct dp_flow6_key *k)
{
	uint32_t client = dp_hash16(k->src_ip, 0) | 1;	/* 0 marks a free entry */
	int i = s->affinity_s ? dp_aff_get(w, s, client) : -1;
	const struct dp_ep6 *ep;

	if (i >= 0)
		return &s->eps6[i];
	if (s->m && g->policy == DP_POLICY_MAGLEV)
		ep = &s->eps6[s->maglev[dp_flow6_hash(k) % s->m]];
	else
		ep = &s->eps6[__atomic_fetch_add(&w->dp->rr[s->id], 1, __ATOMIC_RELAXED) % s->n_eps];
	if (s->affinity_s)
		dp_aff_put(w, s, client, dp_ep6_name(ep->ip, ep->port));
	return ep;
}

/* A first packet to IPv6 frontend @s: an endpoint, a flow; NULL when @m was answered or
 * dropped instead. */
static struct flow6 *flow_new6(struct dp_worker *w, const struct dp_gen *g, const struct dp_svc *s,
			       const struct dp_flow6_key *k, unsigned pi, struct rte_mbuf *m,
			       struct pkt6 *p)
{
	const struct dp_ep6 *ep;
	const struct dp_route6 *rt;
	struct dp_svc6_key sk __rte_aligned(8) = { .proto = k->proto };
	struct flow6 *f;
	uint32_t idx;

	if (s->n_ranges) {		/* loadBalancerSourceRanges */
		uint16_t i = 0;

		while (i < s->n_ranges && !in_prefix6(k->src_ip, s->ranges6[i].net,
						      s->ranges6[i].prefix))
			i++;
		if (i == s->n_ranges) {
			count_drop(w, DROP_SOURCE, m);
			return NULL;
		}
	}
	if (!s->n_eps) {
		unreachable6(w, pi, m, p->ip);
		return NULL;
	}
	f = slot_take(&w->t6, sizeof(*f), &idx);
	if (!f) {
		count_drop(w, DROP_FLOW_FULL, m);
		return NULL;
	}
	ep = pick6(w, g, s, k);
	memset(f, 0, sizeof(*f));
	f->fkey = *k;
	f->f.svc_id = s->id;
	f->f.state = flow_first_state(k->proto, p->tcp_flags);
	rt = route6_of(g, ep->ip);
	if (rt && !w->dp->ports[rt->port].has_ip6)
		rt = NULL;		/* no address to masquerade with */
	/* masquerade as fastpath.c's flow_new() says */
	f->f.snat = rt && (s->masq || !memcmp(ep->ip, k->src_ip, 16) ||
			   (s->kind == 0 && g->has_cluster6 &&
			    !in_prefix6(k->src_ip, g->cluster6, g->cluster6_prefix)) ||
			   (!memcmp(rt->gw, any6, 16) && route6_of(g, k->src_ip) == rt));
	memcpy(f->rkey.src_ip, ep->ip, 16);
	f->rkey.src_port = ep->port;
	f->rkey.proto = k->proto;
	for (int tries = 0;; tries++) {
		if (f->f.snat) {
			memcpy(sk.ip, w->dp->ports[rt->port].ip6, 16);
			memcpy(f->rkey.dst_ip, sk.ip, 16);
			f->rkey.dst_port = dp_snat_port(w, g->svcs6, &sk, &sk.port);
		} else {
			memcpy(f->rkey.dst_ip, k->src_ip, 16);
			f->rkey.dst_port = k->src_port;
		}
		if (rte_hash_lookup(w->t6.hash, &f->rkey) < 0)
			break;
		if (tries == 16 || !rt) {
			w->t6.free_idx[w->t6.n_free++] = idx;
			count_drop(w, DROP_FLOW_FULL, m);
			return NULL;
		}
		f->f.snat = true;
	}
	if (dp_flow_insert(w, &w->t6, idx, &f->fkey, &f->rkey, s->id)) {
		count_drop(w, DROP_FLOW_FULL, m);
		return NULL;
	}
	return f;
}

bool dp_udp_stale6(const struct dp_gen *g, const void *slot)
{
	const struct flow6 *f = slot;
	struct dp_svc6_key sk __rte_aligned(8) = { .port = f->fkey.dst_port, .proto = f->fkey.proto };
	void *sv;
	const struct dp_svc *s;

	memcpy(sk.ip, f->fkey.dst_ip, 16);
	if (rte_hash_lookup_data(g->svcs6, &sk, &sv) < 0 || sv == &dp_gone)
		return true;
	s = sv;
	for (uint16_t i = 0; i < s->n_eps; i++)
		if (!memcmp(s->eps6[i].ip, f->rkey.src_ip, 16) && s->eps6[i].port == f->rkey.src_port)
			return false;
	return true;
}

/* ---- forwarding ---- */

static inline bool hops_down(struct dp_worker *w, struct rte_ipv6_hdr *ip, struct rte_mbuf *m)
{
	if (unlikely(ip->hop_limits <= 1)) {
		count_drop(w, DROP_TTL, m);
		return false;
	}
	ip->hop_limits--;
	return true;
}

static inline void route6_out(struct dp_worker *w, const struct dp_gen *g,
			      struct rte_ipv6_hdr *ip, struct rte_mbuf *m, struct nh_cache *c)
{
	const struct dp_route6 *rt = route6_of(g, ip->dst_addr);
	const struct neigh *n;

	if (unlikely(!rt))
		return count_drop(w, DROP_NO_ROUTE, m);
	n = dp_neigh_out(w, rt->port, memcmp(rt->gw, any6, 16) ? rt->gw : ip->dst_addr, m);
	if (c && n) {
		c->port = rt->port;
		c->mac = n->mac;
		c->epoch = w->neigh_epoch + 1;
	}
}

static inline void forward6_flow(struct dp_worker *w, const struct dp_gen *g,
				 struct rte_ipv6_hdr *ip, struct rte_mbuf *m, struct flow6 *f,
				 int dir)
{
	struct nh_cache *c = &f->f.nh[dir];

	if (!hops_down(w, ip, m))
		return;
	if (likely(c->epoch && c->epoch == w->neigh_epoch + 1))
		return eth_out(w, c->port, &c->mac, m);
	route6_out(w, g, ip, m, c);
}

/* Not to be routed: multicast (ff00::/8), link-local (fe80::/10), unspecified. */
static inline bool local_scope(const uint8_t a[16])
{
	return a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || !memcmp(a, any6, 16);
}

/* An ICMPv6 packet that is no flow's: neighbour discovery, echo to us; true if handled. */
static bool icmp6_input(struct dp_worker *w, unsigned pi, struct rte_mbuf *m, struct pkt6 *p,
			bool handed)
{
	struct rte_ipv6_hdr *ip = p->ip;
	const uint8_t *ic = (const uint8_t *)(ip + 1);

	if (ip->proto != IPPROTO_ICMPV6 || rte_be_to_cpu_16(ip->payload_len) < 8)
		return false;
	if (ic[0] == ND_SOLICIT || ic[0] == ND_ADVERT) {
		nd_input(w, pi, m, p, !handed);
		return true;
	}
	if (ic[0] == ICMP6_ECHO_REQUEST && our_port6(w->dp, ip->dst_addr) >= 0) {
		echo6(w, pi, m, ip);
		return true;
	}
	return false;
}

/* The worker that owns the flow of a packet with 5-tuple @k that no local flow holds
 * (dp.h; fastpath.c's owner() for IPv4). */
static inline unsigned owner6(const struct dp *dp, const struct dp_flow6_key *k, bool fe, bool ours)
{
	unsigned nw = dp->n_workers, dport = rte_be_to_cpu_16(k->dst_port);

	if (fe)
		return dp_client_owner6(k->src_ip, k->src_port, nw);
	if (ours)
		return dport >= DP_SNAT_LO ? (dport - DP_SNAT_LO) % nw : 0;
	return dp_client_owner6(k->dst_ip, k->dst_port, nw);
}

static inline void set16(uint8_t *field, const uint8_t v[16])
{
	memcpy(field, v, 16);
}

/* An ICMPv6 error (types 1-4) about a packet of one of our flows, translated as
 * fastpath.c's icmp_related() does for IPv4; false when it is no flow's here. */
static bool icmp6_related(struct dp_worker *w, const struct dp_gen *g, unsigned pi,
			  struct rte_mbuf *m, struct pkt6 *p, bool handed)
{
	struct rte_ipv6_hdr *ip = p->ip, *in;
	uint8_t *ic = (uint8_t *)(ip + 1);
	unsigned plen = rte_be_to_cpu_16(ip->payload_len);
	struct dp_flow6_key k __rte_aligned(8) = { 0 };
	uint8_t *ports;
	void *data;
	struct flow6 *f;
	int d;

	if (ic[0] < 1 || ic[0] > 4 || plen < 8 + sizeof(*in) + 4)
		return false;
	in = (struct rte_ipv6_hdr *)(ic + 8);
	if (in->proto != IPPROTO_TCP && in->proto != IPPROTO_UDP && in->proto != IPPROTO_SCTP)
		return false;
	ports = (uint8_t *)(in + 1);
	memcpy(k.src_ip, in->dst_addr, 16);
	memcpy(k.dst_ip, in->src_addr, 16);
	k.src_port = ld16(ports + 2);
	k.dst_port = ld16(ports);
	k.proto = in->proto;
	if (rte_hash_lookup_data(w->t6.hash, &k, &data) < 0) {
		struct dp_svc6_key sk __rte_aligned(8) = { .port = k.dst_port, .proto = k.proto };

		if (w->dp->n_workers == 1 || handed)
			return false;
		memcpy(sk.ip, k.dst_ip, 16);
		return dp_hand_to_owner(w, owner6(w->dp, &k, rte_hash_lookup(g->svcs6, &sk) >= 0,
						  our_port6(w->dp, k.dst_ip) >= 0), pi, m);
	}
	f = (struct flow6 *)w->t6.slot + ((uintptr_t)data >> 1);
	d = (int)((uintptr_t)data & 1);
	if (d == DIR_REV) {	/* about a request: back toward the client */
		set16(in->dst_addr, f->fkey.dst_ip);
		st16(ports + 2, f->fkey.dst_port);
		if (!memcmp(ip->src_addr, f->rkey.src_ip, 16))
			set16(ip->src_addr, f->fkey.dst_ip);
		if (f->f.snat) {
			set16(in->src_addr, f->fkey.src_ip);
			st16(ports, f->fkey.src_port);
			set16(ip->dst_addr, f->fkey.src_ip);
		}
	} else {		/* about a reply: toward the endpoint */
		set16(in->src_addr, f->rkey.src_ip);
		st16(ports, f->rkey.src_port);
		set16(ip->dst_addr, f->rkey.src_ip);
		if (f->f.snat) {
			set16(in->dst_addr, f->rkey.dst_ip);
			st16(ports + 2, f->rkey.dst_port);
			set16(ip->src_addr, f->rkey.dst_ip);
		}
	}
	st16(ic + 2, 0);
	st16(ic + 2, rte_ipv6_udptcp_cksum(ip, ic));
	w->st.related++;
	forward6_flow(w, g, ip, m, f, d);
	return true;
}

/* Fragments, as fastpath.c's IPv4 ones: the first fragment goes its flow's way and is
 * noted under the datagram's key; the later ones follow it. */
static inline struct dp_frag6 *frag6_slot(struct dp_worker *w, const uint8_t src[16],
					  const uint8_t dst[16], uint32_t id, uint8_t proto)
{
	uint32_t h = dp_hash16(dst, dp_hash16(src, rte_hash_crc_4byte(id, proto)));

	return &w->frag6[h & (DP_FRAG6_SLOTS - 1)];
}

static void frag6_note(struct dp_worker *w, const struct dp_flow6_key *k, const struct pkt6 *p,
		       unsigned owner, uint16_t svc_id)
{
	struct dp_frag6 *e = frag6_slot(w, k->src_ip, k->dst_ip, p->frag_id, k->proto);

	memcpy(e->src, k->src_ip, 16);
	memcpy(e->dst, k->dst_ip, 16);
	memcpy(e->new_src, p->ip->src_addr, 16);
	memcpy(e->new_dst, p->ip->dst_addr, 16);
	e->id = p->frag_id;
	e->proto = k->proto;
	e->owner = (uint8_t)owner;
	e->svc_id = svc_id;
	e->seen = w->now | 1;
}

static bool frag6_follow(struct dp_worker *w, const struct dp_gen *g, unsigned pi,
			 struct rte_mbuf *m, struct pkt6 *p)
{
	struct rte_ipv6_hdr *ip = p->ip;
	struct dp_frag6 *e = frag6_slot(w, ip->src_addr, ip->dst_addr, p->frag_id,
					p->frag_proto);

	if (!e->seen || e->id != p->frag_id || e->proto != p->frag_proto ||
	    memcmp(e->src, ip->src_addr, 16) || memcmp(e->dst, ip->dst_addr, 16) ||
	    (int64_t)(w->now - e->seen) > (int64_t)(DP_FRAG_TTL_S * w->dp->tsc_hz))
		return false;
	e->seen = w->now | 1;
	if (dp_hand_to_owner(w, e->owner, pi, m))
		return true;
	memcpy(ip->src_addr, e->new_src, 16);	/* no IPv6 header checksum; the L4 one */
	memcpy(ip->dst_addr, e->new_dst, 16);	/* is in the first fragment */
	w->st.svc[e->svc_id].pkts++;
	w->st.svc[e->svc_id].bytes += m->pkt_len;
	w->st.fragments++;
	if (hops_down(w, ip, m))
		route6_out(w, g, ip, m, NULL);
	return true;
}

void dp_process6(struct dp_worker *w, const struct dp_gen *g, unsigned pi, struct rte_mbuf **pkts,
		 uint16_t n, bool handed)
{
	struct dp_flow6_key keys[DP_BURST] __rte_aligned(8);
	const void *kp[DP_BURST];
	void *data[DP_BURST];
	struct pkt6 p[DP_BURST];
	int kind[DP_BURST], slot[DP_BURST];
	uint64_t hits = 0;
	unsigned nk = 0;
	bool changed = false;

	if (unlikely(!w->t6.hash || !g)) {	/* no port has an IPv6 address */
		for (uint16_t i = 0; i < n; i++)
			count_drop(w, DROP_NOT_IP, pkts[i]);
		return;
	}
	for (uint16_t i = 0; i < n; i++) {
		kind[i] = parse6(pkts[i], &p[i], &keys[nk]);
		slot[i] = -1;
		if (kind[i] == 2) {
			kp[nk] = &keys[nk];
			slot[i] = (int)nk++;
		}
	}
	if (nk)
		rte_hash_lookup_bulk_data(w->t6.hash, kp, nk, &hits, data);
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct pkt6 *pp = &p[i];
		struct flow6 *f = NULL;
		int ours;

		if (kind[i] < 0) {
			count_drop(w, DROP_BAD_IP, m);
			continue;
		}
		if (kind[i] == 1 && (icmp6_input(w, pi, m, pp, handed) ||
				     (pp->ip->proto == IPPROTO_ICMPV6 &&
				      icmp6_related(w, g, pi, m, pp, handed))))
			continue;
		if (kind[i] == 2) {
			if (changed)	/* the bulk lookup may be stale */
				hits = rte_hash_lookup_data(w->t6.hash, &keys[slot[i]],
							    &data[slot[i]]) >= 0 ?
				       hits | 1ull << slot[i] : hits & ~(1ull << slot[i]);
			if ((hits >> slot[i]) & 1) {
				uintptr_t d = (uintptr_t)data[slot[i]];

				f = (struct flow6 *)w->t6.slot + (d >> 1);
				if (unlikely(w->now - f->f.last > flow_ttl(w->dp, &f->f))) {
					dp_flow_free(w, &w->t6, (uint32_t)(d >> 1), &f->fkey,
						     &f->rkey, &f->f);
					f = NULL;
					changed = true;
				} else {
					translate6(w, f, (int)(d & 1), pp, m);
					if (unlikely(pp->frag))
						frag6_note(w, &keys[slot[i]], pp, w->idx,
							   f->f.svc_id);
					forward6_flow(w, g, pp->ip, m, f, (int)(d & 1));
					continue;
				}
			}
		}
		ours = our_port6(w->dp, pp->ip->dst_addr);
		if (kind[i] == 4) {
			if (frag6_follow(w, g, pi, m, pp))
				continue;
			if (ours >= 0) {
				count_drop(w, DROP_FRAG, m);
				continue;
			}
		} else if (kind[i] == 2) {
			struct dp_svc6_key sk __rte_aligned(8) = { .port = keys[slot[i]].dst_port,
						  .proto = keys[slot[i]].proto };
			void *sv;
			bool fe;

			memcpy(sk.ip, keys[slot[i]].dst_ip, 16);
			fe = rte_hash_lookup_data(g->svcs6, &sk, &sv) >= 0;
			/* not a flow of ours: whose is it? (dp.h) */
			if (w->dp->n_workers > 1 && !handed) {
				unsigned o = owner6(w->dp, &keys[slot[i]], fe, ours >= 0);

				if (unlikely(pp->frag) && o != w->idx)
					frag6_note(w, &keys[slot[i]], pp, o, 0);
				if (dp_hand_to_owner(w, o, pi, m))
					continue;
			}
			if (fe && sv != &dp_gone) {
				f = flow_new6(w, g, sv, &keys[slot[i]], pi, m, pp);
				if (f) {
					changed = true;
					translate6(w, f, DIR_FWD, pp, m);
					if (unlikely(pp->frag))
						frag6_note(w, &keys[slot[i]], pp, w->idx,
							   f->f.svc_id);
					forward6_flow(w, g, pp->ip, m, f, DIR_FWD);
				}
				continue;
			}
		}
		if (ours >= 0 || local_scope(pp->ip->dst_addr)) {
			count_drop(w, DROP_NOT_FOR_US, m);
			continue;
		}
		w->st.routed++;
		if (hops_down(w, pp->ip, m))
			route6_out(w, g, pp->ip, m, NULL);
	}
}
