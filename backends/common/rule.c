// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Rule building for the data planes that write x_tables rules (iptables, IPVS,
 * userspace). An entry is laid out as the kernel wants it: struct ipt_entry (ip6t_entry
 * for IPv6), then each match (struct xt_entry_match header and the match's own struct,
 * XT_ALIGNed), then the target. Jumps and verdicts use the standard target with the
 * chain or verdict name, which libiptc (or fasttc.c) resolves at commit time. The
 * structs are the kernel's uapi ones; the revisions are those iptables 1.8 uses.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <libiptc/libip6tc.h>
#include <libiptc/libiptc.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_recent.h>
#include <linux/netfilter/xt_sctp.h>
#include <linux/netfilter/xt_set.h>
#include <linux/netfilter/xt_statistic.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <linux/netfilter_ipv4/ipt_REJECT.h>
#include <linux/netfilter_ipv6/ip6t_REJECT.h>

#include "rule.h"

void kp_ipt_rule_init(struct kp_ipt_rule *r, int family)
{
	memset(r, 0, sizeof(*r));
	r->family = family;
	kp_ipt_rule_reset(r);
}

void kp_ipt_rule_fini(struct kp_ipt_rule *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

static void *grow(struct kp_ipt_rule *r, size_t size)
{
	void *p;

	if (r->oom)
		return NULL;
	if (r->size + size > r->cap) {
		size_t cap = (r->size + size) * 2;
		unsigned char *b = realloc(r->buf, cap);

		if (!b) {
			r->oom = true;
			return NULL;
		}
		r->buf = b;
		r->cap = cap;
	}
	p = r->buf + r->size;
	memset(p, 0, size);
	r->size += size;
	return p;
}

static struct ipt_entry *e4(const struct kp_ipt_rule *r)
{
	return (struct ipt_entry *)r->buf;
}

static struct ip6t_entry *e6(const struct kp_ipt_rule *r)
{
	return (struct ip6t_entry *)r->buf;
}

static size_t header_size(int family)
{
	return family == AF_INET6 ? XT_ALIGN(sizeof(struct ip6t_entry)) :
				    XT_ALIGN(sizeof(struct ipt_entry));
}

static void set_offsets(struct kp_ipt_rule *r, size_t target, size_t next)
{
	if (r->family == AF_INET6) {
		e6(r)->target_offset = (uint16_t)target;
		e6(r)->next_offset = (uint16_t)next;
	} else {
		e4(r)->target_offset = (uint16_t)target;
		e4(r)->next_offset = (uint16_t)next;
	}
}

void kp_ipt_rule_reset(struct kp_ipt_rule *r)
{
	r->size = 0;
	r->oom = false;
	if (grow(r, header_size(r->family)))
		set_offsets(r, r->size, r->size);
}

static void mask6(struct in6_addr *m, unsigned prefix)
{
	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < prefix; i++)
		m->s6_addr[i / 8] |= (uint8_t)(0x80 >> (i % 8));
}

static uint32_t mask_of(unsigned prefix)
{
	return prefix ? htonl(~0u << (32 - prefix)) : 0;
}

static void set_addr(struct kp_ipt_rule *r, const struct kp_addr *a, unsigned prefix, bool invert,
		     bool dst)
{
	if (r->oom)
		return;
	if (r->family == AF_INET6) {
		struct ip6t_ip6 *ip = &e6(r)->ipv6;
		struct in6_addr *addr = dst ? &ip->dst : &ip->src, *m = dst ? &ip->dmsk : &ip->smsk;

		mask6(m, prefix);
		for (int i = 0; i < 16; i++)
			addr->s6_addr[i] = a->v6.s6_addr[i] & m->s6_addr[i];
		if (invert)
			ip->invflags |= dst ? IP6T_INV_DSTIP : IP6T_INV_SRCIP;
		return;
	}
	if (dst) {
		e4(r)->ip.dmsk.s_addr = mask_of(prefix);
		e4(r)->ip.dst.s_addr = a->v4.s_addr & mask_of(prefix);
	} else {
		e4(r)->ip.smsk.s_addr = mask_of(prefix);
		e4(r)->ip.src.s_addr = a->v4.s_addr & mask_of(prefix);
	}
	if (invert)
		e4(r)->ip.invflags |= dst ? IPT_INV_DSTIP : IPT_INV_SRCIP;
}

void kp_ipt_rule_src(struct kp_ipt_rule *r, const struct kp_addr *a, unsigned prefix, bool invert)
{
	set_addr(r, a, prefix, invert, false);
}

void kp_ipt_rule_dst(struct kp_ipt_rule *r, const struct kp_addr *a, unsigned prefix, bool invert)
{
	set_addr(r, a, prefix, invert, true);
}

void kp_ipt_rule_in_iface(struct kp_ipt_rule *r, const char *name, bool invert)
{
	size_t len = strlen(name);
	bool plus = len && name[len - 1] == '+';	/* "veth+": the prefix only */
	char *iface;
	unsigned char *mask;
	uint8_t *inv;

	if (r->oom || len >= IFNAMSIZ)
		return;
	if (r->family == AF_INET6) {
		iface = e6(r)->ipv6.iniface;
		mask = e6(r)->ipv6.iniface_mask;
		inv = &e6(r)->ipv6.invflags;
	} else {
		iface = e4(r)->ip.iniface;
		mask = e4(r)->ip.iniface_mask;
		inv = &e4(r)->ip.invflags;
	}
	memset(iface, 0, IFNAMSIZ);
	memset(mask, 0, IFNAMSIZ);
	memcpy(iface, name, plus ? len - 1 : len);
	/* as iptables parses it: the name's bytes, and its NUL unless a prefix */
	memset(mask, 0xff, plus ? len - 1 : len + 1);
	if (invert)
		*inv |= r->family == AF_INET6 ? IP6T_INV_VIA_IN : IPT_INV_VIA_IN;
}

bool kp_ipt_rule_pod_traffic(struct kp_ipt_rule *r, const struct kp_local_detect *d, bool pods)
{
	char name[IFNAMSIZ];

	if (!strcmp(d->mode, "BridgeInterface") && d->bridge && *d->bridge) {
		kp_ipt_rule_in_iface(r, d->bridge, !pods);
		return true;
	}
	if (!strcmp(d->mode, "InterfaceNamePrefix") && d->prefix && *d->prefix &&
	    strlen(d->prefix) < sizeof(name) - 1) {
		snprintf(name, sizeof(name), "%s+", d->prefix);
		kp_ipt_rule_in_iface(r, name, !pods);
		return true;
	}
	if (strcmp(d->mode, "ClusterCIDR") || !d->cidrs)
		return false;
	for (size_t i = 0; i < d->cidrs->n; i++) {
		if (d->cidrs->v[i].addr.family == r->family) {
			kp_ipt_rule_src(r, &d->cidrs->v[i].addr, d->cidrs->v[i].prefix, !pods);
			return true;
		}
	}
	return false;
}

/* Appends a match and returns its data. Matches must come before the target. */
static void *add_match(struct kp_ipt_rule *r, const char *name, uint8_t rev, size_t data_size)
{
	size_t size = XT_ALIGN(sizeof(struct xt_entry_match) + data_size);
	struct xt_entry_match *m = grow(r, size);

	if (!m)
		return NULL;
	m->u.user.match_size = (uint16_t)size;
	snprintf(m->u.user.name, sizeof(m->u.user.name), "%s", name);
	m->u.user.revision = rev;
	set_offsets(r, r->size, r->size);
	return m->data;
}

static void *add_target(struct kp_ipt_rule *r, const char *name, uint8_t rev, size_t data_size)
{
	size_t size = XT_ALIGN(sizeof(struct xt_entry_target) + data_size);
	size_t off = r->size;
	struct xt_entry_target *t = grow(r, size);

	if (!t)
		return NULL;
	t->u.user.target_size = (uint16_t)size;
	snprintf(t->u.user.name, sizeof(t->u.user.name), "%s", name);
	t->u.user.revision = rev;
	set_offsets(r, off, r->size);
	return t->data;
}

void kp_ipt_rule_proto_dport(struct kp_ipt_rule *r, uint8_t proto, uint16_t dport)
{
	if (r->oom)
		return;
	if (r->family == AF_INET6) {
		e6(r)->ipv6.proto = proto;
		e6(r)->ipv6.flags |= IP6T_F_PROTO;
	} else {
		e4(r)->ip.proto = proto;
	}
	if (proto == IPPROTO_TCP) {
		struct xt_tcp *t = add_match(r, "tcp", 0, sizeof(*t));

		if (t) {
			t->spts[1] = 0xffff;
			t->dpts[0] = dport ? dport : 0;
			t->dpts[1] = dport ? dport : 0xffff;
		}
	} else if (proto == IPPROTO_UDP) {
		struct xt_udp *u = add_match(r, "udp", 0, sizeof(*u));

		if (u) {
			u->spts[1] = 0xffff;
			u->dpts[0] = dport ? dport : 0;
			u->dpts[1] = dport ? dport : 0xffff;
		}
	} else if (proto == IPPROTO_SCTP && dport) {
		struct xt_sctp_info *s = add_match(r, "sctp", 0, sizeof(*s));

		if (s) {
			s->spts[1] = 0xffff;
			s->dpts[0] = s->dpts[1] = dport;
			s->flags = XT_SCTP_DEST_PORTS;
		}
	}
}

void kp_ipt_rule_comment(struct kp_ipt_rule *r, const char *fmt, ...)
{
	struct xt_comment_info *c = add_match(r, "comment", 0, sizeof(*c));
	va_list ap;

	if (!c)
		return;
	va_start(ap, fmt);
	vsnprintf(c->comment, sizeof(c->comment), fmt, ap);
	va_end(ap);
}

void kp_ipt_rule_statistic(struct kp_ipt_rule *r, unsigned n_remaining)
{
	struct xt_statistic_info *s = add_match(r, "statistic", 0, sizeof(*s));
	double p = 1.0 / n_remaining;

	if (!s)
		return;
	s->mode = XT_STATISTIC_MODE_RANDOM;
	/* as iptables rounds it: lround(0x80000000 * p), p printed with 10 decimals */
	p = (double)(long long)(p * 1e10 + 0.5) / 1e10;
	s->u.random.probability = (uint32_t)(0x80000000u * p + 0.5);
}

void kp_ipt_rule_recent(struct kp_ipt_rule *r, const char *name, bool set, uint32_t seconds)
{
	struct xt_recent_mtinfo_v1 *m = add_match(r, "recent", 1, sizeof(*m));

	if (!m)
		return;
	m->check_set = set ? XT_RECENT_SET : XT_RECENT_CHECK | XT_RECENT_REAP;
	m->seconds = set ? 0 : seconds;
	m->side = XT_RECENT_SOURCE;
	snprintf(m->name, sizeof(m->name), "%s", name);
	memset(&m->mask, 0xff, r->family == AF_INET6 ? sizeof(m->mask.in6) : sizeof(m->mask.in));
}

void kp_ipt_rule_addrtype_local(struct kp_ipt_rule *r, bool src, bool invert)
{
	struct xt_addrtype_info_v1 *a = add_match(r, "addrtype", 1, sizeof(*a));

	if (!a)
		return;
	if (src) {
		a->source = XT_ADDRTYPE_LOCAL;
		a->flags = invert ? XT_ADDRTYPE_INVERT_SOURCE : 0;
	} else {
		a->dest = XT_ADDRTYPE_LOCAL;
		a->flags = invert ? XT_ADDRTYPE_INVERT_DEST : 0;
	}
}

void kp_ipt_rule_mark(struct kp_ipt_rule *r, uint32_t mark, uint32_t mask, bool invert)
{
	struct xt_mark_mtinfo1 *m = add_match(r, "mark", 1, sizeof(*m));

	if (!m)
		return;
	m->mark = mark;
	m->mask = mask;
	m->invert = invert;
}

void kp_ipt_rule_ctstate(struct kp_ipt_rule *r, unsigned states)
{
	struct xt_conntrack_mtinfo3 *c = add_match(r, "conntrack", 3, sizeof(*c));

	if (!c)
		return;
	c->match_flags = XT_CONNTRACK_STATE;
	c->state_mask = (uint16_t)states;
}

void kp_ipt_rule_ctstate_not(struct kp_ipt_rule *r, unsigned states)
{
	struct xt_conntrack_mtinfo3 *c = add_match(r, "conntrack", 3, sizeof(*c));

	if (!c)
		return;
	c->match_flags = XT_CONNTRACK_STATE;
	c->invert_flags = XT_CONNTRACK_STATE;
	c->state_mask = (uint16_t)states;
}

void kp_ipt_rule_set_match(struct kp_ipt_rule *r, uint16_t index, unsigned dim, unsigned src_flags,
			   bool invert)
{
	/* revision 4, as iptables 1.8.9 writes it and the only one its -save prints back
	 * ("-m set [unsupported revision]" for 1); the counter comparisons stay NONE */
	struct xt_set_info_match_v4 *m = add_match(r, "set", 4, sizeof(*m));

	if (!m)
		return;
	m->match_set.index = index;
	m->match_set.dim = (uint8_t)dim;
	m->match_set.flags = (uint8_t)(src_flags | (invert ? IPSET_INV_MATCH : 0));
}

void kp_ipt_rule_jump(struct kp_ipt_rule *r, const char *chain_or_verdict)
{
	struct xt_standard_target *t;
	size_t off = r->size;

	t = grow(r, XT_ALIGN(sizeof(*t)));
	if (!t)
		return;
	t->target.u.user.target_size = (uint16_t)XT_ALIGN(sizeof(*t));
	snprintf(t->target.u.user.name, sizeof(t->target.u.user.name), "%s", chain_or_verdict);
	set_offsets(r, off, r->size);
}

void kp_ipt_rule_dnat(struct kp_ipt_rule *r, const struct kp_addr *a, uint16_t port, uint8_t rev)
{
	/* revision 2 (nf_nat_range2) or 1 (nf_nat_range, its prefix): what iptables-save
	 * prints back, as it expects the newest revision both it and the kernel have */
	struct nf_nat_range2 *n = add_target(r, "DNAT", rev,
					     rev >= 2 ? sizeof(*n) : sizeof(struct nf_nat_range));

	if (!n)
		return;
	n->flags = NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED;
	if (r->family == AF_INET6)
		n->min_addr.in6 = n->max_addr.in6 = a->v6;
	else
		n->min_addr.in = n->max_addr.in = a->v4;
	n->min_proto.all = n->max_proto.all = htons(port);
}

uint8_t kp_ipt_dnat_revision(int family)
{
	int fd = socket(family, SOCK_RAW, IPPROTO_RAW);
	uint8_t best = 1;

	if (fd < 0)
		return best;
	for (uint8_t rev = 2; rev > 1; rev--) {
		struct xt_get_revision q = { .revision = rev };
		socklen_t len = sizeof(q);

		strcpy(q.name, "DNAT");
		if (getsockopt(fd, family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
			       family == AF_INET6 ? IP6T_SO_GET_REVISION_TARGET :
						    IPT_SO_GET_REVISION_TARGET, &q, &len) >= 0) {
			best = rev;
			break;
		}
	}
	close(fd);
	return best;
}

bool kp_ipt_random_fully(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	/* NF_NAT_RANGE_PROTO_RANDOM_FULLY came with Linux 3.13 */
	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 3 || (major == 3 && minor >= 13);
}

void kp_ipt_rule_masquerade(struct kp_ipt_rule *r, bool random_fully)
{
	unsigned flags = random_fully ? NF_NAT_RANGE_PROTO_RANDOM_FULLY : 0;

	if (r->family == AF_INET6) {
		struct nf_nat_range *n = add_target(r, "MASQUERADE", 0, sizeof(*n));

		if (n)
			n->flags = flags;
	} else {
		struct nf_nat_ipv4_multi_range_compat *n =
			add_target(r, "MASQUERADE", 0, sizeof(*n));

		if (n) {
			n->rangesize = 1;
			n->range[0].flags = flags;
		}
	}
}

void kp_ipt_rule_redirect(struct kp_ipt_rule *r, uint16_t port)
{
	/* revision 0 of both families: the IPv4 one takes the old multi-range struct, the
	 * IPv6 one struct nf_nat_range (xt_REDIRECT.c) */
	if (r->family == AF_INET6) {
		struct nf_nat_range *n = add_target(r, "REDIRECT", 0, sizeof(*n));

		if (!n)
			return;
		n->flags = NF_NAT_RANGE_PROTO_SPECIFIED;
		n->min_proto.all = n->max_proto.all = htons(port);
	} else {
		struct nf_nat_ipv4_multi_range_compat *n =
			add_target(r, "REDIRECT", 0, sizeof(*n));

		if (!n)
			return;
		n->rangesize = 1;
		n->range[0].flags = NF_NAT_RANGE_PROTO_SPECIFIED;
		n->range[0].min.all = n->range[0].max.all = htons(port);
	}
}

void kp_ipt_rule_mark_target(struct kp_ipt_rule *r, uint32_t mark, uint32_t mask)
{
	struct xt_mark_tginfo2 *m = add_target(r, "MARK", 2, sizeof(*m));

	if (!m)
		return;
	m->mark = mark;
	m->mask = mask;
}

void kp_ipt_rule_reject(struct kp_ipt_rule *r)
{
	if (r->family == AF_INET6) {
		struct ip6t_reject_info *j = add_target(r, "REJECT", 0, sizeof(*j));

		if (j)
			j->with = IP6T_ICMP6_PORT_UNREACH;
	} else {
		struct ipt_reject_info *j = add_target(r, "REJECT", 0, sizeof(*j));

		if (j)
			j->with = IPT_ICMP_PORT_UNREACHABLE;
	}
}

void kp_ipt_rule_no_target(struct kp_ipt_rule *r)
{
	kp_ipt_rule_jump(r, ""); /* standard target, verdict 0 = continue */
}

const void *kp_ipt_rule_entry(const struct kp_ipt_rule *r)
{
	return r->oom ? NULL : r->buf;
}

/* ---- reading back ---- */

static uint16_t target_offset(int family, const void *e)
{
	return family == AF_INET6 ? ((const struct ip6t_entry *)e)->target_offset :
				    ((const struct ipt_entry *)e)->target_offset;
}

uint16_t kp_ipt_entry_size(int family, const void *e)
{
	return family == AF_INET6 ? ((const struct ip6t_entry *)e)->next_offset :
				    ((const struct ipt_entry *)e)->next_offset;
}

static const struct xt_entry_match *find_match(int family, const void *e, const char *name)
{
	for (size_t off = header_size(family); off < target_offset(family, e);) {
		const struct xt_entry_match *m = (const void *)((const char *)e + off);

		if (m->u.match_size < sizeof(*m))
			break;
		if (strcmp(m->u.user.name, name) == 0)
			return m;
		off += m->u.match_size;
	}
	return NULL;
}

bool kp_ipt_entry_has_matches(int family, const void *e)
{
	return target_offset(family, e) > header_size(family);
}

bool kp_ipt_entry_has_src(int family, const void *e)
{
	if (family == AF_INET6) {
		const struct in6_addr *m = &((const struct ip6t_entry *)e)->ipv6.smsk;

		return !IN6_IS_ADDR_UNSPECIFIED(m);
	}
	return ((const struct ipt_entry *)e)->ip.smsk.s_addr != 0;
}

bool kp_ipt_entry_dst(int family, const void *e, struct kp_addr *ret_addr)
{
	if (family == AF_INET6) {
		const struct ip6t_ip6 *ip = &((const struct ip6t_entry *)e)->ipv6;
		static const struct in6_addr all = { { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
							 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
							 0xff, 0xff } } };

		if (memcmp(&ip->dmsk, &all, sizeof(all)) || (ip->invflags & IP6T_INV_DSTIP))
			return false;
		ret_addr->family = AF_INET6;
		ret_addr->v6 = ip->dst;
		return true;
	} else {
		const struct ipt_ip *ip = &((const struct ipt_entry *)e)->ip;

		if (ip->dmsk.s_addr != 0xffffffffu || (ip->invflags & IPT_INV_DSTIP))
			return false;
		ret_addr->family = AF_INET;
		ret_addr->v4 = ip->dst;
		return true;
	}
}

bool kp_ipt_entry_dport(int family, const void *e, uint8_t *ret_proto, uint16_t *ret_port)
{
	const struct xt_entry_match *m;

	if ((m = find_match(family, e, "tcp")))
		*ret_port = ((const struct xt_tcp *)m->data)->dpts[0];
	else if ((m = find_match(family, e, "udp")))
		*ret_port = ((const struct xt_udp *)m->data)->dpts[0];
	else if ((m = find_match(family, e, "sctp")))
		*ret_port = ((const struct xt_sctp_info *)m->data)->dpts[0];
	else
		return false;
	*ret_proto = family == AF_INET6 ? (uint8_t)((const struct ip6t_entry *)e)->ipv6.proto :
					  (uint8_t)((const struct ipt_entry *)e)->ip.proto;
	return true;
}

bool kp_ipt_entry_dnat(int family, const void *e, struct kp_addr *ret_addr, uint16_t *ret_port)
{
	const struct xt_entry_target *t = (const void *)((const char *)e +
							 target_offset(family, e));

	if (strcmp(t->u.user.name, "DNAT"))
		return false;
	if (family == AF_INET && t->u.user.revision == 0 && t->u.target_size >= sizeof(*t) +
	    sizeof(struct nf_nat_ipv4_multi_range_compat)) {
		const struct nf_nat_ipv4_multi_range_compat *n = (const void *)t->data;

		ret_addr->family = AF_INET;
		ret_addr->v4.s_addr = n->range[0].min_ip;
		*ret_port = ntohs(n->range[0].min.all);
		return true;
	}
	if (t->u.user.revision >= 1 && t->u.target_size >= sizeof(*t) + sizeof(struct nf_nat_range)) {
		const struct nf_nat_range *n = (const void *)t->data;	/* rev 2 starts alike */

		ret_addr->family = family;
		if (family == AF_INET6)
			ret_addr->v6 = n->min_addr.in6;
		else
			ret_addr->v4 = n->min_addr.in;
		*ret_port = ntohs(n->min_proto.all);
		return true;
	}
	return false;
}

bool kp_ipt_entry_redirect(int family, const void *e, uint16_t *ret_port)
{
	const struct xt_entry_target *t = (const void *)((const char *)e +
							 target_offset(family, e));

	if (strcmp(t->u.user.name, "REDIRECT") || t->u.user.revision != 0)
		return false;
	if (family == AF_INET && t->u.target_size >= sizeof(*t) +
	    sizeof(struct nf_nat_ipv4_multi_range_compat)) {
		const struct nf_nat_ipv4_multi_range_compat *n = (const void *)t->data;

		*ret_port = ntohs(n->range[0].min.all);
		return true;
	}
	if (family == AF_INET6 && t->u.target_size >= sizeof(*t) + sizeof(struct nf_nat_range)) {
		const struct nf_nat_range *n = (const void *)t->data;

		*ret_port = ntohs(n->min_proto.all);
		return true;
	}
	return false;
}

const char *kp_ipt_entry_comment(int family, const void *e)
{
	const struct xt_entry_match *m = find_match(family, e, "comment");

	return m ? ((const struct xt_comment_info *)m->data)->comment : NULL;
}
