// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The nftables data plane: kube-proxy's nftables layout (tables `ip kube-proxy` and
 * `ip6 kube-proxy`, verdict maps for dispatch, numgen maps for spread) programmed through
 * libnftnl batches. Each sync is one transaction holding what changed: the service ports
 * of the delta are rendered again, their map and set elements are counted in and out (an
 * element shared by several ports, as a ClusterIP or a hairpin tuple, stays while one
 * holds it), their chains are created, flushed and refilled, and chains no port holds any
 * more are flushed at once and deleted by a later transaction. The first sync, and any
 * sync after a failed one or after someone else changed the table, rebuilds both tables
 * in one transaction (add, delete, add: no packet meets a missing chain).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/rtnetlink.h>
#include <libnftnl/udata.h>

#include "internal.h"
#include "../common/caps.h"
#include "../common/conntrack.h"
#include "../common/opts.h"
#include "../iptables/names.h"
#include "nft.h"

#define TABLE "kube-proxy"
#define NAME_MAX_LEN 256	/* NFT_CHAIN_MAXNAMELEN with the NUL */
#define BASE_SIZE 241		/* a name's base (hash and text) with the NUL: 240 characters */
#define ELEMS_PER_MSG 512	/* set elements per NEWSETELEM/DELSETELEM message */
#define STALE_DELAY_NS 1000000000LL	/* stale chains are deleted this long after */
/*
 * A first build (no kube-proxy table yet) is sent in transactions of about this size,
 * the maps' elements in the last one: the kernel walks a transaction's whole list for
 * each anonymous map a rule binds (__nft_set_trans_bind), so one 10 MB transaction
 * costs it quadratically more, and holds the nfnetlink mutex for all of it. Nothing is
 * reachable before the last one (it fills the dispatch maps), so a partial build is
 * harmless; a rebuild over existing tables stays one transaction (no packet may meet a
 * half-built table).
 */
#define CHUNK_BYTES (256 * 1024)
#define HASHBUF_SIZE (256 * 1024)	/* one rule built back (a kernel rule is far smaller) */

static const char *const local_modes[] = KP_DETECT_LOCAL_MODES;

struct nft_opts {
	struct kp_cidr_list cluster_cidr;
	const char *detect_local, *pod_bridge, *pod_prefix;
	bool masquerade_all;
	uint32_t masquerade_bit;
};

static const struct kp_option nft_options[] = {
	KP_OPTION_CLUSTER_CIDR(struct nft_opts, cluster_cidr),
	KP_OPTION_DETECT_LOCAL(struct nft_opts, detect_local, pod_bridge, pod_prefix,
			       local_modes),
	KP_OPTION_MASQUERADE_ALL(struct nft_opts, masquerade_all),
	KP_OPTION_MASQUERADE_BIT(struct nft_opts, masquerade_bit),
};

/* ---- the named sets and maps ---- */

enum key_kind { K_ADDR, K_ADDR_PROTO_PORT, K_PROTO_PORT, K_HAIRPIN };

enum {
	S_CLUSTER_IPS, S_NODEPORT_IPS, S_HAIRPIN, M_SERVICE_IPS, M_SERVICE_NODEPORTS,
	M_FIREWALL_IPS, M_NOEP_SERVICES, M_NOEP_NODEPORTS, N_SETS
};

static const struct set_decl {
	const char *name, *comment;
	enum key_kind key;
	bool map;
} set_decls[N_SETS] = {
	[S_CLUSTER_IPS] = { "cluster-ips", "Active ClusterIPs", K_ADDR, false },
	[S_NODEPORT_IPS] = { "nodeport-ips", "IPs that accept NodePort traffic", K_ADDR, false },
	[S_HAIRPIN] = { "hairpin-connections", "service hairpin connections", K_HAIRPIN, false },
	[M_SERVICE_IPS] = { "service-ips", "ClusterIP, ExternalIP and LoadBalancer IP traffic",
			    K_ADDR_PROTO_PORT, true },
	[M_SERVICE_NODEPORTS] = { "service-nodeports", "NodePort traffic", K_PROTO_PORT, true },
	[M_FIREWALL_IPS] = { "firewall-ips", "destinations that are subject to "
			     "LoadBalancerSourceRanges", K_ADDR_PROTO_PORT, true },
	[M_NOEP_SERVICES] = { "no-endpoint-services", "vmap to drop or reject packets to "
			      "services with no endpoints", K_ADDR_PROTO_PORT, true },
	[M_NOEP_NODEPORTS] = { "no-endpoint-nodeports", "vmap to drop or reject packets to "
			       "service nodeports with no endpoints", K_PROTO_PORT, true },
};

/* the fixed regular chains */
static const char *const fixed_chains[] = {
	"services", "masquerading", "cluster-ips-check", "firewall-check",
	"service-endpoints-check", "nodeport-endpoints-check", "reject-chain",
};

static const struct base_chain {
	const char *name, *type;
	uint32_t hook;
	int32_t prio;
} base_chains[] = {
	{ "filter-prerouting-pre-dnat", "filter", NF_INET_PRE_ROUTING, -110 },
	{ "filter-output-pre-dnat", "filter", NF_INET_LOCAL_OUT, -110 },
	{ "filter-input", "filter", NF_INET_LOCAL_IN, 0 },
	{ "filter-forward", "filter", NF_INET_FORWARD, 0 },
	{ "filter-output", "filter", NF_INET_LOCAL_OUT, 0 },
	{ "nat-prerouting", "nat", NF_INET_PRE_ROUTING, -100 },
	{ "nat-output", "nat", NF_INET_LOCAL_OUT, -100 },
	{ "nat-postrouting", "nat", NF_INET_POST_ROUTING, 100 },
};

/* ---- what is programmed, per family ---- */

struct el {
	int refs;
	uint8_t set, klen;
	uint8_t key[40];
	char *want;		/* value wanted ("" for a set element), NULL when refs is 0 */
	char *have;		/* value programmed, NULL when absent */
	bool touched;
};

struct ch {
	bool have, want, touched;
	long long stale_since;	/* flushed and no longer wanted: ns timestamp, else 0 */
	unsigned n_rules;	/* as written */
	unsigned n_rules_sent;	/* in this sync's transaction */
	bool sum_known;
	uint64_t sum;		/* its rules as the kernel listed them after our commit */
};

struct aff {
	bool have, want, touched;
	uint32_t timeout;
};

struct strv {
	char **v;
	size_t n, cap;
};

/* One rendered chain: its rules (and the anonymous sets they use) waiting to be sent. */
struct job {
	char *chain;
	struct nftnl_rule **rules;
	struct nftnl_set **anon;	/* parallel to @rules; NULL where none */
	size_t n_rules, cap;
};

struct fam {
	int family;			/* AF_INET, AF_INET6 */
	bool on;			/* the table is ours to program */
	struct kp_map *els, *chains, *affs;
	struct strv touched_els;	/* keys of @els touched this sync */
	struct job *jobs;
	size_t n_jobs, cap_jobs;
	struct strv new_affs;		/* affinity sets the port being rendered adds */
	struct strv touched_chains;	/* names of @chains touched this sync */
	struct strv touched_affs;	/* names of @affs touched this sync */
	struct strv stale;		/* chains emptied, to be deleted a second later */
	/* node ports: on every local address (fib) or on nodeport-ips; as now, and as the
	 * fixed rules were built */
	bool np_any, np_any_built;
	unsigned fixed_rules[KP_ARRAY_SIZE(fixed_chains) + KP_ARRAY_SIZE(base_chains)];
};

/* What one service port holds, per family: element keys, chain names, affinity sets. */

struct port_rec {
	struct strv els[2], chains[2], affs[2];
};

struct nft {
	struct kp_ctx *ctx;
	const struct nft_opts *o;
	struct kp_nft_sock sock;
	struct fam fam[2];
	struct kp_map *ports;		/* "ns/name/port/proto" -> struct port_rec */
	struct kp_map *pending;		/* this sync's new records, by the same key */
	struct kp_nfb b;
	uint32_t mark;
	uint32_t gen;			/* the generation after our last commit */
	uint32_t anon_seq;		/* names of the anonymous maps: __map<N> */
	char *hashbuf;			/* a rule built back, to fingerprint it */
	bool chunking;			/* this first build is sent in several transactions */
	size_t n_chunks;		/* transactions of the last first build */
	bool built;			/* the tables match @ports (a rebuild succeeded) */
	bool synced;
	bool ipv6;
	char scidr_sig[512];		/* the service CIDRs of cluster-ips-check */
	bool scidr_changed;		/* this sync rewrites cluster-ips-check */
	/* figures for metrics and the benchmark */
	uint64_t n_sync_failures, n_cleanup_failures, n_rebuilds;
	size_t last_msgs;
	struct kp_ct_stats ct_stats;
};

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fidx(int family)
{
	return family == AF_INET6;
}

static bool strv_add(struct strv *s, const char *v)
{
	char *d;

	if (s->n == s->cap) {
		size_t n = s->cap ? 2 * s->cap : 4;
		char **q = realloc(s->v, n * sizeof(*q));

		if (!q)
			return false;
		s->v = q;
		s->cap = n;
	}
	d = strdup(v);
	if (!d)
		return false;
	s->v[s->n++] = d;
	return true;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static bool strv_has(const struct strv *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], v))
			return true;
	return false;
}

/* Lists @name in @list the first time this sync touches its object (@touched).
 * Returns false when out of memory. */
static bool touch(bool *touched, struct strv *list, const char *name)
{
	if (*touched)
		return true;
	*touched = true;
	return strv_add(list, name);
}

static void rec_free(struct port_rec *p)
{
	if (!p)
		return;
	for (int f = 0; f < 2; f++) {
		strv_free(&p->els[f]);
		strv_free(&p->chains[f]);
		strv_free(&p->affs[f]);
	}
	free(p);
}

/* ---- names: kube-proxy's hashAndTruncate ---- */

static void base_name(char *out, size_t size, const char *input)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint8_t d[32];
	char hash[9];
	uint64_t bits = 0;

	kp_sha256(input, strlen(input), d);
	/* the first 8 base32 characters are the first 40 bits */
	for (int i = 0; i < 5; i++)
		bits = bits << 8 | d[i];
	for (int i = 0; i < 8; i++)
		hash[i] = alphabet[(bits >> (35 - 5 * i)) & 31];
	hash[8] = 0;
	if (9 + strlen(input) > 240)
		snprintf(out, size, "%s-%.228s...", hash, input);
	else
		snprintf(out, size, "%s-%s", hash, input);
}

static const char *proto_lc(enum kp_protocol p)
{
	return p == KP_PROTO_UDP ? "udp" : p == KP_PROTO_SCTP ? "sctp" : "tcp";
}

static uint8_t ipproto(enum kp_protocol p)
{
	return p == KP_PROTO_UDP ? IPPROTO_UDP : p == KP_PROTO_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
}

/* ---- keys ---- */

static size_t addr_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

static size_t put_addr(uint8_t *k, const struct kp_addr *a)
{
	if (a->family == AF_INET6) {
		memcpy(k, &a->v6, 16);
		return 16;
	}
	memcpy(k, &a->v4, 4);
	return 4;
}

static size_t put_proto_port(uint8_t *k, uint8_t proto, uint16_t port)
{
	uint16_t p = htons(port);

	memset(k, 0, 8);
	k[0] = proto;
	memcpy(k + 4, &p, 2);
	return 8;
}

static size_t key_len(enum key_kind kind, int family)
{
	switch (kind) {
	case K_ADDR:
		return addr_len(family);
	case K_ADDR_PROTO_PORT:
		return addr_len(family) + 8;
	case K_PROTO_PORT:
		return 8;
	case K_HAIRPIN:
		return 2 * addr_len(family) + 8;
	}
	return 0;
}

static uint32_t key_type(enum key_kind kind, int family)
{
	uint32_t a = family == AF_INET6 ? KP_NT_IP6ADDR : KP_NT_IPADDR;

	switch (kind) {
	case K_ADDR:
		return a;
	case K_ADDR_PROTO_PORT:
		return KP_NT_CONCAT(KP_NT_CONCAT(a, KP_NT_INETPROTO), KP_NT_INETSERVICE);
	case K_PROTO_PORT:
		return KP_NT_CONCAT(KP_NT_INETPROTO, KP_NT_INETSERVICE);
	case K_HAIRPIN:
		return KP_NT_CONCAT(KP_NT_CONCAT(KP_NT_CONCAT(a, a), KP_NT_INETPROTO),
				    KP_NT_INETSERVICE);
	}
	return 0;
}

/* ---- sync-time rendering ---- */

struct render {
	struct nft *n;
	struct fam *f;
	struct port_rec *rec;		/* the port's new record */
	int err;
};

/* An element wanted by the port being rendered; @value: "" (set), "d" (drop) or
 * "g<chain>" (goto), then optionally "\x01<comment>". */
static void want_el(struct render *rd, int set, const uint8_t *key, size_t klen,
		    const char *value)
{
	struct fam *f = rd->f;
	char skey[2 + 2 * 40 + 1];
	struct el *e;

	skey[0] = (char)('a' + set);
	for (size_t i = 0; i < klen; i++)
		sprintf(skey + 1 + 2 * i, "%02x", key[i]);
	e = kp_map_get(f->els, skey);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || kp_map_put(f->els, skey, e, NULL) < 0) {
			free(e);
			rd->err = -ENOMEM;
			return;
		}
		e->set = (uint8_t)set;
		e->klen = (uint8_t)klen;
		memcpy(e->key, key, klen);
	}
	e->refs++;
	if (!e->want || strcmp(e->want, value)) {
		free(e->want);
		e->want = strdup(value);
		if (!e->want)
			rd->err = -ENOMEM;
	}
	if (!touch(&e->touched, &f->touched_els, skey)) {
		rd->err = -ENOMEM;
		return;
	}
	if (rd->rec && !strv_add(&rd->rec->els[fidx(f->family)], skey))
		rd->err = -ENOMEM;
}

/* Drops one hold on the element called @skey. */
static void unwant_el(struct render *rd, const char *skey)
{
	struct fam *f = rd->f;
	struct el *e = kp_map_get(f->els, skey);

	if (!e)
		return;
	if (--e->refs <= 0) {
		e->refs = 0;
		free(e->want);
		e->want = NULL;
	}
	if (!touch(&e->touched, &f->touched_els, skey)) {
		rd->err = -ENOMEM;
		return;
	}
}

static struct ch *chain_of(struct render *rd, const char *name)
{
	struct ch *c = kp_map_get(rd->f->chains, name);

	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c || kp_map_put(rd->f->chains, name, c, NULL) < 0) {
			free(c);
			rd->err = -ENOMEM;
			return NULL;
		}
	}
	return c;
}

/* Starts the rules of a service chain (created, or flushed and refilled). */
static struct job *want_chain(struct render *rd, const char *name)
{
	struct fam *f = rd->f;
	struct ch *c = chain_of(rd, name);
	struct job *j;

	if (!c)
		return NULL;
	c->want = true;
	if (!touch(&c->touched, &f->touched_chains, name))
		rd->err = -ENOMEM;
	c->stale_since = 0;
	if (rd->rec && !strv_add(&rd->rec->chains[fidx(f->family)], name))
		rd->err = -ENOMEM;
	if (f->n_jobs == f->cap_jobs) {
		size_t n = f->cap_jobs ? 2 * f->cap_jobs : 64;
		struct job *q = realloc(f->jobs, n * sizeof(*q));

		if (!q) {
			rd->err = -ENOMEM;
			return NULL;
		}
		f->jobs = q;
		f->cap_jobs = n;
	}
	j = &f->jobs[f->n_jobs];
	memset(j, 0, sizeof(*j));
	j->chain = strdup(name);
	if (!j->chain) {
		rd->err = -ENOMEM;
		return NULL;
	}
	f->n_jobs++;
	return j;
}

static struct nftnl_rule *new_rule(struct render *rd, struct job *j, struct nftnl_set *anon)
{
	struct nftnl_rule *r;

	if (!j)
		return NULL;
	if (j->n_rules == j->cap) {
		size_t n = j->cap ? 2 * j->cap : 4;
		struct nftnl_rule **q = realloc(j->rules, n * sizeof(*q));
		struct nftnl_set **a;

		if (!q) {
			rd->err = -ENOMEM;
			return NULL;
		}
		j->rules = q;
		a = realloc(j->anon, n * sizeof(*a));
		if (!a) {
			rd->err = -ENOMEM;
			return NULL;
		}
		j->anon = a;
		j->cap = n;
	}
	r = nftnl_rule_alloc();
	if (!r) {
		rd->err = -ENOMEM;
		return NULL;
	}
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, j->chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, rd->f->family == AF_INET6 ? NFPROTO_IPV6 :
			   NFPROTO_IPV4);
	j->rules[j->n_rules] = r;
	j->anon[j->n_rules] = anon;
	j->n_rules++;
	return r;
}

static void want_aff(struct render *rd, const char *name, uint32_t timeout)
{
	struct fam *f = rd->f;
	struct aff *a = kp_map_get(f->affs, name);

	if (!a) {
		a = calloc(1, sizeof(*a));
		if (!a || kp_map_put(f->affs, name, a, NULL) < 0) {
			free(a);
			rd->err = -ENOMEM;
			return;
		}
	}
	a->want = true;
	if (!touch(&a->touched, &f->touched_affs, name))
		rd->err = -ENOMEM;
	a->timeout = timeout;
	if (rd->rec && !strv_add(&rd->rec->affs[fidx(f->family)], name))
		rd->err = -ENOMEM;
	if (!a->have && !strv_add(&f->new_affs, name))
		rd->err = -ENOMEM;
}

/* ---- rule pieces ---- */

static uint32_t nfproto(int family)
{
	return family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
}

static uint32_t daddr_off(int family)
{
	return family == AF_INET6 ? 24 : 16;
}

static uint32_t saddr_off(int family)
{
	return family == AF_INET6 ? 8 : 12;
}

/* ip daddr . meta l4proto . th dport into registers 1.. */
static void key_daddr_proto_port(struct nftnl_rule *r, int family)
{
	uint32_t w = (uint32_t)addr_len(family) / 4;

	kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, daddr_off(family),
		      (uint32_t)addr_len(family), NFT_REG_1);
	kp_nx_meta(r, NFT_META_L4PROTO, NFT_REG32_00 + w);
	kp_nx_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_00 + w + 1);
}

static void key_proto_port(struct nftnl_rule *r)
{
	kp_nx_meta(r, NFT_META_L4PROTO, NFT_REG_1);
	kp_nx_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_01);
}

static void match_l4proto(struct nftnl_rule *r, uint8_t proto)
{
	kp_nx_meta(r, NFT_META_L4PROTO, NFT_REG_1);
	kp_nx_cmp(r, NFT_REG_1, NFT_CMP_EQ, &proto, 1);
}

/* mark set mark or BIT */
static void mark_masq(struct nftnl_rule *r, uint32_t bit)
{
	uint32_t mask = ~bit, xor = bit;

	kp_nx_meta(r, NFT_META_MARK, NFT_REG_1);
	kp_nx_bitwise(r, NFT_REG_1, 4, &mask, &xor);
	kp_nx_meta_set(r, NFT_META_MARK, NFT_REG_1);
}

/* ip saddr/daddr [!=] NET/PREFIX */
static void match_net(struct nftnl_rule *r, int family, bool src, const struct kp_addr *net,
		      unsigned prefix, bool neq)
{
	uint8_t mask[16] = { 0 }, zero[16] = { 0 }, val[16];
	size_t len = addr_len(family);

	for (unsigned i = 0; i < prefix && i < 8 * len; i++)
		mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
	put_addr(val, net);
	for (size_t i = 0; i < len; i++)
		val[i] &= mask[i];
	kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, src ? saddr_off(family) : daddr_off(family),
		      (uint32_t)len, NFT_REG_1);
	if (prefix < 8 * len)
		kp_nx_bitwise(r, NFT_REG_1, (uint32_t)len, mask, zero);
	kp_nx_cmp(r, NFT_REG_1, neq ? NFT_CMP_NEQ : NFT_CMP_EQ, val, (uint32_t)len);
}

/* fib saddr|daddr type local */
static void match_fib_local(struct nftnl_rule *r, bool src)
{
	uint32_t local = RTN_LOCAL;

	kp_nx_fib(r, src ? NFTA_FIB_F_SADDR : NFTA_FIB_F_DADDR, NFT_FIB_RESULT_ADDRTYPE,
		  NFT_REG_1);
	kp_nx_cmp(r, NFT_REG_1, NFT_CMP_EQ, &local, 4);
}

/* iifname [!=] NAME, or a prefix match for "NAME*" */
static void match_iif(struct nftnl_rule *r, const char *name, bool prefix, bool neq)
{
	char v[16] = { 0 };
	size_t len = strlen(name);

	if (len > 15)
		len = 15;
	memcpy(v, name, len);
	kp_nx_meta(r, NFT_META_IIFNAME, NFT_REG_1);
	kp_nx_cmp(r, NFT_REG_1, neq ? NFT_CMP_NEQ : NFT_CMP_EQ, v,
		  prefix ? (uint32_t)len : (uint32_t)len + 1);
}

enum detector { DETECT_NONE, DETECT_BRIDGE, DETECT_PREFIX, DETECT_CIDR };

/* How @family's pod traffic is told apart (detect-local-mode); for DETECT_CIDR, the
 * range (the family's first cluster CIDR) in *@ret_cidr. */
static enum detector detector(const struct nft *n, int family, const struct kp_cidr **ret_cidr)
{
	const struct nft_opts *o = n->o;
	const char *mode = o->detect_local ? o->detect_local : "ClusterCIDR";

	if (!strcmp(mode, "BridgeInterface"))
		return o->pod_bridge && *o->pod_bridge ? DETECT_BRIDGE : DETECT_NONE;
	if (!strcmp(mode, "InterfaceNamePrefix"))
		return o->pod_prefix && *o->pod_prefix ? DETECT_PREFIX : DETECT_NONE;
	if (strcmp(mode, "ClusterCIDR"))
		return DETECT_NONE;
	for (size_t i = 0; i < o->cluster_cidr.n; i++)
		if (o->cluster_cidr.v[i].addr.family == family) {
			if (ret_cidr)
				*ret_cidr = &o->cluster_cidr.v[i];
			return DETECT_CIDR;
		}
	return DETECT_NONE;
}

static bool has_detector(const struct nft *n, int family)
{
	return detector(n, family, NULL) != DETECT_NONE;
}

/* The pod-traffic match of the local detector (or, with !@pods, the rest); nothing when
 * there is none. */
static void match_pods(const struct nft *n, struct nftnl_rule *r, int family, bool pods)
{
	const struct kp_cidr *c = NULL;

	switch (detector(n, family, &c)) {
	case DETECT_BRIDGE:
		match_iif(r, n->o->pod_bridge, false, !pods);
		break;
	case DETECT_PREFIX:
		match_iif(r, n->o->pod_prefix, true, !pods);
		break;
	case DETECT_CIDR:
		match_net(r, family, true, &c->addr, c->prefix, !pods);
		break;
	case DETECT_NONE:
		break;
	}
}

/* An anonymous map of this batch: numgen index -> addr . port, or -> verdict. */
static struct nftnl_set *anon_map(struct nft *n, int family, bool verdict)
{
	struct nftnl_set *s = nftnl_set_alloc();
	char name[32];
	struct nftnl_udata_buf *u;

	if (!s)
		return NULL;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, TABLE);
	/*
	 * A name of our own, never "__map%d": the kernel makes a "%d" name unique by
	 * scanning (sscanf) every set of the table, so that n anonymous maps cost n^2
	 * scans (9 of the 9.2 s of a 10k-service rebuild); a unique name costs a
	 * lookup. nft lists the map inline all the same (it is anonymous by its flags).
	 */
	snprintf(name, sizeof(name), "__map%u", n->anon_seq++);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, nfproto(family));
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_MAP);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, KP_NT_INTEGER);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 4);
	if (verdict) {
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
	} else {
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE,
				  KP_NT_CONCAT(family == AF_INET6 ? KP_NT_IP6ADDR : KP_NT_IPADDR,
					       KP_NT_INETSERVICE));
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, (uint32_t)addr_len(family) + 4);
	}
	nftnl_set_set_u32(s, NFTNL_SET_ID, n->b.next_set_id++);
	/* the numgen index is in host byte order: said so that nft prints 0, 1, ... */
	u = nftnl_udata_buf_alloc(64);
	if (u) {
		nftnl_udata_put_u32(u, NFTNL_UDATA_SET_KEYBYTEORDER, 1);
		if (!verdict)
			nftnl_udata_put_u32(u, NFTNL_UDATA_SET_DATABYTEORDER, 2);
		nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u),
				   nftnl_udata_buf_len(u));
		nftnl_udata_buf_free(u);
	}
	return s;
}

static void anon_add(struct nftnl_set *s, uint32_t i, const void *data, size_t len,
		     const char *chain)
{
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();

	if (!e)
		return;
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &i, 4);
	if (chain) {
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, (uint32_t)NFT_GOTO);
		nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, chain);
	} else {
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, data, (uint32_t)len);
	}
	nftnl_set_elem_add(s, e);
}

/* meta l4proto P dnat to ADDR:PORT */
static void dnat_one(struct nftnl_rule *r, int family, uint8_t proto,
		     const struct kp_endpoint *ep)
{
	uint8_t a[16];
	uint32_t port = 0;
	uint16_t p = htons(ep->port);
	size_t len = put_addr(a, &ep->addr);

	memcpy(&port, &p, 2);
	match_l4proto(r, proto);
	kp_nx_imm(r, NFT_REG_1, a, (uint32_t)len);
	kp_nx_imm(r, NFT_REG32_00 + (uint32_t)len / 4, &port, 2);
	kp_nx_dnat(r, family, NFT_REG_1, NFT_REG32_00 + (uint32_t)len / 4);
}

static void ep_base(char *out, size_t size, const char *svc_in, const struct kp_endpoint *ep)
{
	char ip[KP_ADDR_STRLEN], in[512];

	kp_addr_to_str(&ep->addr, ip, sizeof(ip));
	for (char *c = ip; *c; c++)
		if (*c == ':')
			*c = '.';
	snprintf(in, sizeof(in), "%s__%s/%u", svc_in, ip, ep->port);
	base_name(out, size, in);
}

/*
 * A policy chain (service- or local-): DNAT to one of @eps at random; with affinity, each
 * endpoint gets its chain and its set of recent clients.
 */
static void render_policy(struct render *rd, const char *chain, const char *svc_in,
			  const struct kp_svc_port *sp, const struct kp_endpoint *eps,
			  size_t n_eps)
{
	int family = rd->f->family;
	uint8_t proto = ipproto(kp_svc_port_get_protocol(sp));
	struct job *j = want_chain(rd, chain);
	struct nftnl_set *m;
	struct nftnl_rule *r;

	if (!j)
		return;
	if (kp_svc_port_get_affinity(sp) == KP_AFFINITY_CLIENT_IP) {
		char ep_chain[NAME_MAX_LEN], aff[NAME_MAX_LEN], b[BASE_SIZE];

		m = anon_map(rd->n, family, true);
		for (size_t i = 0; i < n_eps; i++) {
			ep_base(b, sizeof(b), svc_in, &eps[i]);
			snprintf(aff, sizeof(aff), "affinity-%s", b);
			snprintf(ep_chain, sizeof(ep_chain), "endpoint-%s", b);
			r = new_rule(rd, j, NULL);
			if (r) {
				kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, saddr_off(family),
					      (uint32_t)addr_len(family), NFT_REG_1);
				kp_nx_lookup(r, NFT_REG_1, -1, aff, 0, false);
				kp_nx_verdict(r, NFT_GOTO, ep_chain);
			}
			if (m)
				anon_add(m, (uint32_t)i, NULL, 0, ep_chain);
		}
		r = new_rule(rd, j, m);
		if (r && m) {
			kp_nx_numgen(r, (uint32_t)n_eps, NFT_REG_1);
			kp_nx_lookup(r, NFT_REG_1, NFT_REG_VERDICT,
				     nftnl_set_get_str(m, NFTNL_SET_NAME),
				     nftnl_set_get_u32(m, NFTNL_SET_ID), false);
		} else if (!m) {
			rd->err = -ENOMEM;
		}
		/* the endpoint chains and their sets, once: a local endpoint is behind both
		 * the service- and the local- chain */
		for (size_t i = 0; i < n_eps; i++) {
			struct job *ej;

			ep_base(b, sizeof(b), svc_in, &eps[i]);
			snprintf(aff, sizeof(aff), "affinity-%s", b);
			snprintf(ep_chain, sizeof(ep_chain), "endpoint-%s", b);
			if (rd->rec && strv_has(&rd->rec->chains[fidx(family)], ep_chain))
				continue;
			want_aff(rd, aff, kp_svc_port_get_affinity_timeout(sp));
			ej = want_chain(rd, ep_chain);
			r = new_rule(rd, ej, NULL);
			if (r) {
				kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, saddr_off(family),
					      (uint32_t)addr_len(family), NFT_REG_1);
				kp_nx_dynset_update(r, NFT_REG_1, aff);
			}
			r = new_rule(rd, ej, NULL);
			if (r)
				dnat_one(r, family, proto, &eps[i]);
		}
		return;
	}
	m = anon_map(rd->n, family, false);
	if (!m) {
		rd->err = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n_eps; i++) {
		uint8_t d[20] = { 0 };
		uint16_t p = htons(eps[i].port);
		size_t len = put_addr(d, &eps[i].addr);

		memcpy(d + len, &p, 2);
		anon_add(m, (uint32_t)i, d, len + 4, NULL);
	}
	r = new_rule(rd, j, m);
	if (!r) {
		nftnl_set_free(m);
		return;
	}
	match_l4proto(r, proto);
	kp_nx_numgen(r, (uint32_t)n_eps, NFT_REG_1);
	kp_nx_lookup(r, NFT_REG_1, NFT_REG_1, nftnl_set_get_str(m, NFTNL_SET_NAME),
		     nftnl_set_get_u32(m, NFTNL_SET_ID),
		     false);
	kp_nx_dnat(r, family, NFT_REG_1, NFT_REG32_00 + (uint32_t)addr_len(family) / 4);
}

struct range {
	uint8_t lo[16], hi[16];	/* inclusive */
};

static int cmp_range(const void *a, const void *b)
{
	return memcmp(((const struct range *)a)->lo, ((const struct range *)b)->lo, 16);
}

/* @a + 1 in place (big endian, @len bytes); returns false when it wrapped to zero */
static bool inc(uint8_t *a, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++a[i])
			return true;
	return false;
}

static void interval_elem(struct nftnl_set *s, const uint8_t *key, size_t len, bool end)
{
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();

	if (!e)
		return;
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)len);
	if (end)
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
	nftnl_set_elem_add(s, e);
}

/* An anonymous interval set of @n ranges @v (sorted here, merged, each as its start and
 * the successor of its end, as nft encodes intervals); its name into @name. */
static struct nftnl_set *interval_set(struct nft *nf, int family, struct range *v, size_t n,
				      char *name, size_t name_size)
{
	size_t len = addr_len(family);
	struct nftnl_set *s;

	qsort(v, n, sizeof(*v), cmp_range);
	s = nftnl_set_alloc();
	if (!s)
		return NULL;
	snprintf(name, name_size, "__set%u", nf->anon_seq++);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, nfproto(family));
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT |
			  NFT_SET_INTERVAL);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, family == AF_INET6 ? KP_NT_IP6ADDR : KP_NT_IPADDR);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)len);
	nftnl_set_set_u32(s, NFTNL_SET_ID, nf->b.next_set_id++);
	{
		uint8_t zero[16] = { 0 };
		size_t i = 0;

		if (memcmp(v[0].lo, zero, len))
			interval_elem(s, zero, len, true);
		while (i < n) {
			uint8_t lo[16], hi[16];

			memcpy(lo, v[i].lo, 16);
			memcpy(hi, v[i].hi, 16);
			/* merge what overlaps or touches */
			for (i++; i < n; i++) {
				uint8_t next[16];

				memcpy(next, hi, 16);
				if (inc(next, len) && memcmp(v[i].lo, next, len) > 0)
					break;
				if (memcmp(v[i].hi, hi, len) > 0)
					memcpy(hi, v[i].hi, 16);
			}
			interval_elem(s, lo, len, false);
			if (inc(hi, len))
				interval_elem(s, hi, len, true);
		}
	}
	return s;
}

/* @n address ranges of @family as struct range (inclusive bounds); returns how many */
static size_t to_ranges(int family, const struct kp_addr *addrs, const uint8_t *prefixes,
			size_t n, struct range *v)
{
	size_t len = addr_len(family), m = 0;

	for (size_t i = 0; i < n; i++) {
		if (addrs[i].family != family)
			continue;
		memset(&v[m], 0, sizeof(v[m]));
		put_addr(v[m].lo, &addrs[i]);
		for (size_t b = 0; b < 8 * len; b++) {
			uint8_t bit = (uint8_t)(0x80 >> (b % 8));

			if (b < prefixes[i]) {
				v[m].hi[b / 8] |= v[m].lo[b / 8] & bit;
			} else {
				v[m].lo[b / 8] &= (uint8_t)~bit;
				v[m].hi[b / 8] |= bit;
			}
		}
		m++;
	}
	return m;
}

/*
 * The firewall- chain: `ip saddr != RANGE drop` for one range, as nft writes a one-element
 * set; `ip saddr != { RANGES } drop` with an anonymous interval set (merged, sorted, each
 * range as its start and the end's successor, as nft encodes intervals) for more.
 */
static void render_firewall(struct render *rd, const char *chain, const struct kp_addr *ranges,
			    const uint8_t *prefixes, size_t n_ranges)
{
	int family = rd->f->family;
	size_t len = addr_len(family), n = 0;
	struct range *v = calloc(n_ranges ? n_ranges : 1, sizeof(*v));
	struct job *j = want_chain(rd, chain);
	struct nftnl_rule *r;
	struct nftnl_set *s;
	char name[32];

	if (!v || !j) {
		free(v);
		rd->err = -ENOMEM;
		return;
	}
	n = to_ranges(family, ranges, prefixes, n_ranges, v);
	if (n == 1) {
		size_t first = 0;

		while (ranges[first].family != family)
			first++;
		r = new_rule(rd, j, NULL);
		if (r) {
			match_net(r, family, true, &ranges[first], prefixes[first], true);
			kp_nx_verdict(r, NF_DROP, NULL);
		}
		free(v);
		return;
	}
	s = interval_set(rd->n, family, v, n, name, sizeof(name));
	if (!s) {
		free(v);
		rd->err = -ENOMEM;
		return;
	}
	r = new_rule(rd, j, s);
	if (!r) {
		nftnl_set_free(s);
		free(v);
		return;
	}
	kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, saddr_off(family), (uint32_t)len, NFT_REG_1);
	kp_nx_lookup(r, NFT_REG_1, -1, name, nftnl_set_get_u32(s, NFTNL_SET_ID), true);
	kp_nx_verdict(r, NF_DROP, NULL);
	free(v);
}

static void key_app(uint8_t *k, size_t *len, const struct kp_addr *a, uint8_t proto,
		    uint16_t port)
{
	*len = put_addr(k, a);
	*len += put_proto_port(k + *len, proto, port);
}

static bool same_family_eps(const struct kp_endpoint *all, size_t n, int family,
			    struct kp_endpoint *out, size_t *ret_n)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		if (all[i].addr.family == family)
			out[m++] = all[i];
	*ret_n = m;
	return m > 0;
}

/* Renders one service port's chains and elements for one family. */
static void render_port_family(struct render *rd, const struct kp_svc_port *sp)
{
	struct nft *n = rd->n;
	int family = rd->f->family;
	enum kp_protocol p = kp_svc_port_get_protocol(sp);
	uint8_t proto = ipproto(p);
	const char *port_name = kp_svc_port_get_port_name(sp);
	char svc_in[400], base[BASE_SIZE], svc_chain[NAME_MAX_LEN], local_chain[NAME_MAX_LEN];
	char ext_chain[NAME_MAX_LEN], fw_chain[NAME_MAX_LEN], comment[160], v[NAME_MAX_LEN + 160];
	const struct kp_frontend *fe;
	const struct kp_endpoint *in_eps, *ex_eps, *all;
	struct kp_endpoint *fam_all = NULL;
	size_t n_fe, n_in, n_ex, n_all, n_fam_all = 0;
	bool itp_local = kp_svc_port_internal_local(sp);
	bool etp_local = kp_svc_port_external_local(sp);
	bool external = false, has_fam = false;
	const struct kp_endpoint *cluster = NULL, *local = NULL;
	size_t n_cluster = 0, n_local = 0;
	const uint8_t *prefixes;
	size_t n_ranges;
	const struct kp_addr *ranges = kp_svc_port_get_source_ranges(sp, &prefixes, &n_ranges);
	bool has_lb = false;

	fe = kp_svc_port_get_frontends(sp, &n_fe);
	for (size_t i = 0; i < n_fe; i++) {
		if (fe[i].addr.family != family)
			continue;
		has_fam = true;
		if (fe[i].kind != KP_FE_CLUSTER_IP)
			external = true;
		if (fe[i].kind == KP_FE_LOAD_BALANCER)
			has_lb = true;
	}
	if (!has_fam)
		return;
	snprintf(svc_in, sizeof(svc_in), "%s/%s/%s/%s", kp_svc_port_get_namespace(sp),
		 kp_svc_port_get_name(sp), proto_lc(p), port_name);
	base_name(base, sizeof(base), svc_in);
	snprintf(svc_chain, sizeof(svc_chain), "service-%s", base);
	snprintf(local_chain, sizeof(local_chain), "local-%s", base);
	snprintf(ext_chain, sizeof(ext_chain), "external-%s", base);
	snprintf(fw_chain, sizeof(fw_chain), "firewall-%s", base);
	snprintf(comment, sizeof(comment), "%s/%s%s%s", kp_svc_port_get_namespace(sp),
		 kp_svc_port_get_name(sp), *port_name ? ":" : "", port_name);

	in_eps = kp_svc_port_get_endpoints(sp, family, false, &n_in);
	ex_eps = kp_svc_port_get_endpoints(sp, family, true, &n_ex);
	all = kp_svc_port_get_all_endpoints(sp, &n_all);
	/* the cluster-wide set and the local set, as kube-proxy's policy chains use them */
	if (!itp_local) {
		cluster = in_eps, n_cluster = n_in;
	} else if (external && !etp_local) {
		cluster = ex_eps, n_cluster = n_ex;
	}
	if (itp_local) {
		local = in_eps, n_local = n_in;
	} else if (etp_local && external) {
		local = ex_eps, n_local = n_ex;
	}
	if (n_all) {
		fam_all = calloc(n_all, sizeof(*fam_all));
		if (!fam_all) {
			rd->err = -ENOMEM;
			return;
		}
		same_family_eps(all, n_all, family, fam_all, &n_fam_all);
	}
	bool has_eps = n_fam_all > 0;
	bool uses_cluster = n_cluster > 0;
	bool uses_local = n_local > 0 && (itp_local || (etp_local && external));
	const char *internal_chain = itp_local ? local_chain : svc_chain;

	if (uses_cluster)
		render_policy(rd, svc_chain, svc_in, sp, cluster, n_cluster);
	if (uses_local)
		render_policy(rd, local_chain, svc_in, sp, local, n_local);
	if (external && has_eps) {
		struct job *j = want_chain(rd, ext_chain);
		struct nftnl_rule *r;

		if (!etp_local) {
			r = new_rule(rd, j, NULL);
			if (r) {
				mark_masq(r, n->mark);
				kp_nx_comment(r, "masquerade");
			}
			if (uses_cluster && (r = new_rule(rd, j, NULL)))
				kp_nx_verdict(r, NFT_GOTO, svc_chain);
		} else {
			if (uses_cluster && has_detector(n, family) &&
			    (r = new_rule(rd, j, NULL))) {
				match_pods(n, r, family, true);
				kp_nx_verdict(r, NFT_GOTO, svc_chain);
				kp_nx_comment(r, "short-circuit pod traffic");
			}
			r = new_rule(rd, j, NULL);
			if (r) {
				match_fib_local(r, true);
				mark_masq(r, n->mark);
				kp_nx_comment(r, "masquerade local traffic");
			}
			if (uses_cluster && (r = new_rule(rd, j, NULL))) {
				match_fib_local(r, true);
				kp_nx_verdict(r, NFT_GOTO, svc_chain);
				kp_nx_comment(r, "short-circuit local traffic");
			}
			if (uses_local && (r = new_rule(rd, j, NULL)))
				kp_nx_verdict(r, NFT_GOTO, local_chain);
		}
	}
	/* loadBalancerSourceRanges: ip saddr != { ranges } drop */
	size_t n_fam_ranges = 0;

	for (size_t i = 0; i < n_ranges; i++)
		n_fam_ranges += ranges[i].family == family;
	bool fw = has_lb && n_fam_ranges > 0;

	if (fw)
		render_firewall(rd, fw_chain, ranges, prefixes, n_ranges);
	/* the elements */
	for (size_t i = 0; i < n_fe && !rd->err; i++) {
		uint8_t k[40];
		size_t klen;
		bool ext = fe[i].kind != KP_FE_CLUSTER_IP;
		size_t n_use = ext ? n_ex : n_in;
		const char *target = ext ? ext_chain : internal_chain;
		bool drop = ext ? etp_local && has_eps : itp_local && has_eps;

		if (fe[i].addr.family != family)
			continue;
		if (fe[i].kind == KP_FE_NODE_PORT) {
			klen = put_proto_port(k, proto, fe[i].port);
			if (has_eps) {
				snprintf(v, sizeof(v), "g%s", ext_chain);
				want_el(rd, M_SERVICE_NODEPORTS, k, klen, v);
			}
			if (!n_ex) {
				snprintf(v, sizeof(v), "%s\x01%s", drop ? "d" : "greject-chain",
					 comment);
				want_el(rd, M_NOEP_NODEPORTS, k, klen, v);
			}
			continue;
		}
		if (fe[i].kind == KP_FE_CLUSTER_IP) {
			klen = put_addr(k, &fe[i].addr);
			want_el(rd, S_CLUSTER_IPS, k, klen, "");
		}
		key_app(k, &klen, &fe[i].addr, proto, fe[i].port);
		if (ext ? has_eps : n_use > 0) {
			snprintf(v, sizeof(v), "g%s", target);
			want_el(rd, M_SERVICE_IPS, k, klen, v);
		}
		if (!n_use) {
			snprintf(v, sizeof(v), "%s\x01%s", drop ? "d" : "greject-chain", comment);
			want_el(rd, M_NOEP_SERVICES, k, klen, v);
		}
		if (fe[i].kind == KP_FE_LOAD_BALANCER && fw) {
			snprintf(v, sizeof(v), "g%s", fw_chain);
			want_el(rd, M_FIREWALL_IPS, k, klen, v);
		}
	}
	/* hairpin: each local endpoint reaching itself through the service */
	for (size_t i = 0; i < n_fam_all && !rd->err; i++) {
		uint8_t k[40];
		size_t klen;

		if (!fam_all[i].local)
			continue;
		klen = put_addr(k, &fam_all[i].addr);
		klen += put_addr(k + klen, &fam_all[i].addr);
		klen += put_proto_port(k + klen, proto, fam_all[i].port);
		want_el(rd, S_HAIRPIN, k, klen, "");
	}
	free(fam_all);
}

static void port_key(const struct kp_svc_port *sp, char *out, size_t size)
{
	snprintf(out, size, "%s/%s/%s/%s", kp_svc_port_get_namespace(sp),
		 kp_svc_port_get_name(sp), kp_svc_port_get_port_name(sp),
		 proto_lc(kp_svc_port_get_protocol(sp)));
}

static void emit_jobs(struct nft *n, struct fam *f);

/* Renders @sp's new version into this sync's pending records, and emits its chains. */
static int render_new(struct nft *n, const struct kp_svc_port *sp)
{
	struct port_rec *rec = calloc(1, sizeof(*rec));
	char key[600];
	struct render rd = { .n = n, .rec = rec };

	if (!rec)
		return -ENOMEM;
	port_key(sp, key, sizeof(key));
	for (int f = 0; f < 2 && !rd.err; f++) {
		if (!n->fam[f].on)
			continue;
		rd.f = &n->fam[f];
		render_port_family(&rd, sp);
		emit_jobs(n, rd.f);
	}
	if (!rd.err) {
		void *old = NULL;

		rd.err = kp_map_put(n->pending, key, rec, &old);
		rec_free(old);
		if (!rd.err)
			return 0;
	}
	rec_free(rec);
	return rd.err;
}

/* Drops what the record of @key held (its previous version). */
static int unrender_old(struct nft *n, const char *key)
{
	struct port_rec *rec = kp_map_get(n->ports, key), *nrec = kp_map_get(n->pending, key);
	struct render rd = { .n = n };

	if (!rec)
		return 0;
	for (int f = 0; f < 2; f++) {
		struct fam *fm = &n->fam[f];

		rd.f = fm;
		for (size_t i = 0; i < rec->els[f].n; i++)
			unwant_el(&rd, rec->els[f].v[i]);
		for (size_t i = 0; i < rec->chains[f].n; i++) {
			struct ch *c;

			if (nrec && strv_has(&nrec->chains[f], rec->chains[f].v[i]))
				continue;
			c = kp_map_get(fm->chains, rec->chains[f].v[i]);
			if (!c)
				continue;
			c->want = false;
			if (!touch(&c->touched, &fm->touched_chains, rec->chains[f].v[i]))
				rd.err = -ENOMEM;
		}
		for (size_t i = 0; i < rec->affs[f].n; i++) {
			struct aff *a;

			if (nrec && strv_has(&nrec->affs[f], rec->affs[f].v[i]))
				continue;
			a = kp_map_get(fm->affs, rec->affs[f].v[i]);
			if (!a)
				continue;
			a->want = false;
			if (!touch(&a->touched, &fm->touched_affs, rec->affs[f].v[i]))
				rd.err = -ENOMEM;
		}
	}
	return rd.err;
}

/* ---- emitting the transaction ---- */

static void emit_table(struct nft *n, int family, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t) {
		n->b.oom = true;
		return;
	}
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, nfproto(family));
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, TABLE);
	if (type == NFT_MSG_NEWTABLE) {
		struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(64);

		if (u && nftnl_udata_put_strz(u, NFTNL_UDATA_TABLE_COMMENT, "rules for kube-proxy"))
			nftnl_table_set_data(t, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(u),
					     nftnl_udata_buf_len(u));
		nftnl_udata_buf_free(u);
	}
	nlh = kp_nfb_msg(&n->b, type, (uint16_t)nfproto(family), flags, 256);
	if (nlh)
		nftnl_table_nlmsg_build_payload(nlh, t);
	kp_nfb_done(&n->b, nlh);
	nftnl_table_free(t);
}

static void emit_chain(struct nft *n, int family, uint16_t type, const char *name,
		       const struct base_chain *base, const char *comment)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	if (!c) {
		n->b.oom = true;
		return;
	}
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, nfproto(family));
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	if (base) {
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, base->type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, base->hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, base->prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	if (comment) {
		struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(160);

		if (u && nftnl_udata_put_strz(u, NFTNL_UDATA_CHAIN_COMMENT, comment))
			nftnl_chain_set_data(c, NFTNL_CHAIN_USERDATA, nftnl_udata_buf_data(u),
					     nftnl_udata_buf_len(u));
		nftnl_udata_buf_free(u);
	}
	if (type == NFT_MSG_DELRULE) {	/* flush: DELRULE naming the chain only */
		struct nftnl_rule *r = nftnl_rule_alloc();

		if (!r) {
			n->b.oom = true;
			nftnl_chain_free(c);
			return;
		}
		nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, nfproto(family));
		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
		nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, name);
		nlh = kp_nfb_msg(&n->b, NFT_MSG_DELRULE, (uint16_t)nfproto(family), 0, 512);
		if (nlh)
			nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
	} else {
		nlh = kp_nfb_msg(&n->b, type, (uint16_t)nfproto(family),
				 type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0, 512);
		if (nlh)
			nftnl_chain_nlmsg_build_payload(nlh, c);
	}
	kp_nfb_done(&n->b, nlh);
	nftnl_chain_free(c);
}

static void emit_rule(struct nft *n, int family, struct nftnl_rule *r, struct nftnl_set *anon)
{
	struct nlmsghdr *nlh;

	if (anon) {
		uint32_t n_el = 0;
		struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(anon);

		if (it) {
			while (nftnl_set_elems_iter_next(it))
				n_el++;
			nftnl_set_elems_iter_destroy(it);
		}
		nftnl_set_set_u32(anon, NFTNL_SET_DESC_SIZE, n_el);
		nlh = kp_nfb_msg(&n->b, NFT_MSG_NEWSET, (uint16_t)nfproto(family),
				 NLM_F_CREATE, 512);
		if (nlh)
			nftnl_set_nlmsg_build_payload(nlh, anon);
		kp_nfb_done(&n->b, nlh);
		nlh = kp_nfb_msg(&n->b, NFT_MSG_NEWSETELEM, (uint16_t)nfproto(family),
				 NLM_F_CREATE, 128 + 96 * (size_t)n_el);
		if (nlh)
			nftnl_set_elems_nlmsg_build_payload(nlh, anon);
		kp_nfb_done(&n->b, nlh);
	}
	nlh = kp_nfb_msg(&n->b, NFT_MSG_NEWRULE, (uint16_t)nfproto(family),
			 NLM_F_CREATE | NLM_F_APPEND, 2048);
	if (nlh)
		nftnl_rule_nlmsg_build_payload(nlh, r);
	kp_nfb_done(&n->b, nlh);
}

static void emit_set(struct nft *n, int family, int i)
{
	const struct set_decl *d = &set_decls[i];
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(256);
	struct nlmsghdr *nlh;

	if (!s || !u) {
		n->b.oom = true;
		nftnl_set_free(s);
		nftnl_udata_buf_free(u);
		return;
	}
	nftnl_set_set_str(s, NFTNL_SET_TABLE, TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, d->name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, nfproto(family));
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, d->map ? NFT_SET_MAP : 0);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type(d->key, family));
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)key_len(d->key, family));
	if (d->map)
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
	nftnl_set_set_u32(s, NFTNL_SET_ID, n->b.next_set_id++);
	if (nftnl_udata_put_strz(u, NFTNL_UDATA_SET_COMMENT, d->comment))
		nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u),
				   nftnl_udata_buf_len(u));
	nlh = kp_nfb_msg(&n->b, NFT_MSG_NEWSET, (uint16_t)nfproto(family), NLM_F_CREATE, 512);
	if (nlh)
		nftnl_set_nlmsg_build_payload(nlh, s);
	kp_nfb_done(&n->b, nlh);
	nftnl_udata_buf_free(u);
	nftnl_set_free(s);
}

static void emit_aff(struct nft *n, int family, const char *name, uint32_t timeout, bool del)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;

	if (!s) {
		n->b.oom = true;
		return;
	}
	nftnl_set_set_str(s, NFTNL_SET_TABLE, TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, nfproto(family));
	if (!del) {
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_EVAL | NFT_SET_TIMEOUT);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, family == AF_INET6 ? KP_NT_IP6ADDR :
				  KP_NT_IPADDR);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)addr_len(family));
		nftnl_set_set_u64(s, NFTNL_SET_TIMEOUT, (uint64_t)timeout * 1000);
		nftnl_set_set_u32(s, NFTNL_SET_ID, n->b.next_set_id++);
	}
	nlh = kp_nfb_msg(&n->b, del ? NFT_MSG_DELSET : NFT_MSG_NEWSET, (uint16_t)nfproto(family),
			 del ? 0 : NLM_F_CREATE, 512);
	if (nlh)
		nftnl_set_nlmsg_build_payload(nlh, s);
	kp_nfb_done(&n->b, nlh);
	nftnl_set_free(s);
}

/* One element of @e with value @value into @s. */
static void elem_into(struct nftnl_set *s, const struct el *e, const char *value)
{
	struct nftnl_set_elem *x = nftnl_set_elem_alloc();
	const char *comment = strchr(value, '\x01');

	if (!x)
		return;
	nftnl_set_elem_set(x, NFTNL_SET_ELEM_KEY, e->key, e->klen);
	if (value[0] == 'd') {
		nftnl_set_elem_set_u32(x, NFTNL_SET_ELEM_VERDICT, (uint32_t)NF_DROP);
	} else if (value[0] == 'g') {
		char chain[NAME_MAX_LEN];
		size_t len = comment ? (size_t)(comment - value - 1) : strlen(value + 1);

		snprintf(chain, sizeof(chain), "%.*s", (int)len, value + 1);
		nftnl_set_elem_set_u32(x, NFTNL_SET_ELEM_VERDICT, (uint32_t)NFT_GOTO);
		nftnl_set_elem_set_str(x, NFTNL_SET_ELEM_CHAIN, chain);
	}
	if (comment) {
		struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(160);
		char c[128];

		snprintf(c, sizeof(c), "%s", comment + 1);
		if (u && nftnl_udata_put_strz(u, NFTNL_UDATA_SET_ELEM_COMMENT, c))
			nftnl_set_elem_set(x, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(u),
					   nftnl_udata_buf_len(u));
		nftnl_udata_buf_free(u);
	}
	nftnl_set_elem_add(s, x);
}

/* Element messages, at most ELEMS_PER_MSG elements each, per set. */
struct elem_msgs {
	struct nftnl_set *s[N_SETS];
	unsigned n[N_SETS];
};

static void elem_flush(struct nft *n, int family, struct elem_msgs *m, int set, bool del)
{
	struct nlmsghdr *nlh;

	if (!m->s[set])
		return;
	nlh = kp_nfb_msg(&n->b, del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM,
			 (uint16_t)nfproto(family), del ? 0 : NLM_F_CREATE,
			 256 + 240 * (size_t)m->n[set]);
	if (nlh)
		nftnl_set_elems_nlmsg_build_payload(nlh, m->s[set]);
	kp_nfb_done(&n->b, nlh);
	nftnl_set_free(m->s[set]);
	m->s[set] = NULL;
	m->n[set] = 0;
}

static void elem_put(struct nft *n, int family, struct elem_msgs *m, const struct el *e,
		     const char *value, bool del)
{
	int set = e->set;

	if (!m->s[set]) {
		m->s[set] = nftnl_set_alloc();
		if (!m->s[set]) {
			n->b.oom = true;
			return;
		}
		nftnl_set_set_str(m->s[set], NFTNL_SET_TABLE, TABLE);
		nftnl_set_set_str(m->s[set], NFTNL_SET_NAME, set_decls[set].name);
		nftnl_set_set_u32(m->s[set], NFTNL_SET_FAMILY, nfproto(family));
	}
	elem_into(m->s[set], e, value);
	if (++m->n[set] == ELEMS_PER_MSG)
		elem_flush(n, family, m, set, del);
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->n_rules; i++) {
		nftnl_rule_free(j->rules[i]);
		if (j->anon[i])
			nftnl_set_free(j->anon[i]);
	}
	free(j->rules);
	free(j->anon);
	free(j->chain);
}

/* ---- the fixed part (rebuilds only) ---- */

static struct nftnl_rule *fixed_rule(struct nft *n, int family, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (!r) {
		n->b.oom = true;
		return NULL;
	}
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, nfproto(family));
	return r;
}

static void put_fixed(struct nft *n, int family, struct nftnl_rule *r)
{
	if (r) {
		emit_rule(n, family, r, NULL);
		nftnl_rule_free(r);
	}
}

/* ct state new jump CHAIN */
static void ct_new_jump(struct nft *n, int family, const char *from, const char *to)
{
	struct nftnl_rule *r = fixed_rule(n, family, from);
	uint32_t mask = NF_CT_STATE_BIT(IP_CT_NEW), zero = 0;

	if (!r)
		return;
	kp_nx_ct(r, NFT_CT_STATE, NFT_REG_1);
	kp_nx_bitwise(r, NFT_REG_1, 4, &mask, &zero);
	kp_nx_cmp(r, NFT_REG_1, NFT_CMP_NEQ, &zero, 4);
	kp_nx_verdict(r, NFT_JUMP, to);
	put_fixed(n, family, r);
}

static void not_loopback(struct nftnl_rule *r, int family)
{
	struct kp_addr lo = { .family = family };

	if (family == AF_INET6)
		lo.v6 = in6addr_loopback;
	else
		lo.v4.s_addr = htonl(INADDR_LOOPBACK);
	match_net(r, family, false, &lo, family == AF_INET6 ? 128 : 8, true);
}

/* ip daddr @SET */
static void match_daddr_in(struct nftnl_rule *r, int family, const char *set)
{
	kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, daddr_off(family),
		      (uint32_t)addr_len(family), NFT_REG_1);
	kp_nx_lookup(r, NFT_REG_1, -1, set, 0, false);
}

/* cluster-ips-check: reject what reaches a ClusterIP on a port it has not, drop what is
 * sent to an address of a service CIDR that no service has */
static void emit_cluster_ips_check(struct nft *n, int family)
{
	size_t n_cidrs = 0, n_fam = 0;
	const struct kp_cidr *c = kp_ctx_get_service_cidrs(n->ctx, &n_cidrs);
	struct nftnl_rule *r;

	if ((r = fixed_rule(n, family, "cluster-ips-check"))) {
		match_daddr_in(r, family, "cluster-ips");
		kp_nx_reject(r, family);
		kp_nx_comment(r, "Reject traffic to invalid ports of ClusterIPs");
		put_fixed(n, family, r);
	}
	for (size_t i = 0; i < n_cidrs; i++)
		n_fam += c[i].addr.family == family;
	if (!n_fam || !(r = fixed_rule(n, family, "cluster-ips-check")))
		return;
	if (n_fam == 1) {
		for (size_t i = 0; i < n_cidrs; i++)
			if (c[i].addr.family == family)
				match_net(r, family, false, &c[i].addr, c[i].prefix, false);
		kp_nx_verdict(r, NF_DROP, NULL);
		kp_nx_comment(r, "Drop traffic to unallocated ClusterIPs");
		put_fixed(n, family, r);
	} else {
		struct kp_addr *a = calloc(n_cidrs, sizeof(*a));
		uint8_t *p = calloc(n_cidrs, 1);
		struct range *v = calloc(n_cidrs, sizeof(*v));
		struct nftnl_set *s = NULL;
		char name[32];

		for (size_t i = 0; a && p && i < n_cidrs; i++) {
			a[i] = c[i].addr;
			p[i] = c[i].prefix;
		}
		if (a && p && v)
			s = interval_set(n, family, v, to_ranges(family, a, p, n_cidrs, v), name,
					 sizeof(name));
		if (s) {
			kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, daddr_off(family),
				      (uint32_t)addr_len(family), NFT_REG_1);
			kp_nx_lookup(r, NFT_REG_1, -1, name, nftnl_set_get_u32(s, NFTNL_SET_ID),
				     false);
			kp_nx_verdict(r, NF_DROP, NULL);
			kp_nx_comment(r, "Drop traffic to unallocated ClusterIPs");
			emit_rule(n, family, r, s);
			nftnl_set_free(s);
		} else {
			n->b.oom = true;
		}
		nftnl_rule_free(r);
		free(a);
		free(p);
		free(v);
	}
}

/* The service CIDRs as text, to see them change. */
static void scidr_setting(struct nft *n, char *sig, size_t size)
{
	size_t n_cidrs = 0, len = 0;
	const struct kp_cidr *c = kp_ctx_get_service_cidrs(n->ctx, &n_cidrs);

	sig[0] = 0;
	for (size_t i = 0; i < n_cidrs && len < size; i++) {
		char s[KP_ADDR_STRLEN];

		len += (size_t)snprintf(sig + len, size - len, "%s/%u,",
					kp_addr_to_str(&c[i].addr, s, sizeof(s)), c[i].prefix);
	}
}

/* CHAIN: ip daddr . meta l4proto . th dport vmap @MAP */
static void vmap_rule(struct nft *n, int family, const char *chain, const char *map)
{
	struct nftnl_rule *r = fixed_rule(n, family, chain);

	if (!r)
		return;
	key_daddr_proto_port(r, family);
	kp_nx_lookup(r, NFT_REG_1, NFT_REG_VERDICT, map, 0, false);
	put_fixed(n, family, r);
}

/* CHAIN: [fib daddr type local] ip daddr != loopback | ip daddr @nodeport-ips,
 * then meta l4proto . th dport vmap @MAP */
static void nodeport_rule(struct nft *n, const struct fam *f, const char *chain,
			  const char *map, bool fib)
{
	struct nftnl_rule *r = fixed_rule(n, f->family, chain);

	if (!r)
		return;
	if (f->np_any) {
		if (fib)
			match_fib_local(r, false);
		not_loopback(r, f->family);
	} else {
		match_daddr_in(r, f->family, "nodeport-ips");
	}
	key_proto_port(r);
	kp_nx_lookup(r, NFT_REG_1, NFT_REG_VERDICT, map, 0, false);
	put_fixed(n, f->family, r);
}

static void emit_fixed_rules(struct nft *n, struct fam *f)
{
	int family = f->family;
	struct nftnl_rule *r;
	uint32_t zero = 0;

	ct_new_jump(n, family, "filter-input", "nodeport-endpoints-check");
	ct_new_jump(n, family, "filter-input", "service-endpoints-check");
	ct_new_jump(n, family, "filter-forward", "service-endpoints-check");
	ct_new_jump(n, family, "filter-output", "service-endpoints-check");
	ct_new_jump(n, family, "filter-prerouting-pre-dnat", "firewall-check");
	ct_new_jump(n, family, "filter-output-pre-dnat", "firewall-check");
	if ((r = fixed_rule(n, family, "nat-output"))) {
		kp_nx_verdict(r, NFT_JUMP, "services");
		put_fixed(n, family, r);
	}
	if ((r = fixed_rule(n, family, "nat-prerouting"))) {
		kp_nx_verdict(r, NFT_JUMP, "services");
		put_fixed(n, family, r);
	}
	if ((r = fixed_rule(n, family, "nat-postrouting"))) {
		kp_nx_verdict(r, NFT_JUMP, "masquerading");
		put_fixed(n, family, r);
	}
	ct_new_jump(n, family, "filter-forward", "cluster-ips-check");
	ct_new_jump(n, family, "filter-output", "cluster-ips-check");

	/* services */
	if (n->o->masquerade_all) {
		if ((r = fixed_rule(n, family, "services"))) {
			match_daddr_in(r, family, "cluster-ips");
			mark_masq(r, n->mark);
			kp_nx_comment(r, "masquerade all clusterIP traffic");
			put_fixed(n, family, r);
		}
	} else if (has_detector(n, family) && (r = fixed_rule(n, family, "services"))) {
		match_daddr_in(r, family, "cluster-ips");
		match_pods(n, r, family, false);
		mark_masq(r, n->mark);
		kp_nx_comment(r, "masquerade clusterIP traffic from outside cluster");
		put_fixed(n, family, r);
	}
	vmap_rule(n, family, "services", "service-ips");
	nodeport_rule(n, f, "services", "service-nodeports", true);
	/* masquerading */
	if ((r = fixed_rule(n, family, "masquerading"))) {
		uint32_t bit = n->mark, ones = 0xffffffff;

		kp_nx_meta(r, NFT_META_MARK, NFT_REG_1);
		kp_nx_bitwise(r, NFT_REG_1, 4, &bit, &zero);
		kp_nx_cmp(r, NFT_REG_1, NFT_CMP_NEQ, &zero, 4);
		kp_nx_meta(r, NFT_META_MARK, NFT_REG_1);
		kp_nx_bitwise(r, NFT_REG_1, 4, &ones, &bit);
		kp_nx_meta_set(r, NFT_META_MARK, NFT_REG_1);
		kp_nx_masq(r, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
		put_fixed(n, family, r);
	}
	if ((r = fixed_rule(n, family, "masquerading"))) {
		uint32_t dnat = IPS_DST_NAT, w = (uint32_t)addr_len(family) / 4;

		kp_nx_ct(r, NFT_CT_STATUS, NFT_REG_1);
		kp_nx_bitwise(r, NFT_REG_1, 4, &dnat, &zero);
		kp_nx_cmp(r, NFT_REG_1, NFT_CMP_NEQ, &zero, 4);
		kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, saddr_off(family),
			      (uint32_t)addr_len(family), NFT_REG_1);
		kp_nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, daddr_off(family),
			      (uint32_t)addr_len(family), NFT_REG32_00 + w);
		kp_nx_meta(r, NFT_META_L4PROTO, NFT_REG32_00 + 2 * w);
		kp_nx_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_00 + 2 * w + 1);
		kp_nx_lookup(r, NFT_REG_1, -1, "hairpin-connections", 0, false);
		kp_nx_masq(r, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
		put_fixed(n, family, r);
	}
	emit_cluster_ips_check(n, family);
	vmap_rule(n, family, "firewall-check", "firewall-ips");
	vmap_rule(n, family, "service-endpoints-check", "no-endpoint-services");
	nodeport_rule(n, f, "nodeport-endpoints-check", "no-endpoint-nodeports", false);
	if ((r = fixed_rule(n, family, "reject-chain"))) {
		kp_nx_reject(r, family);
		put_fixed(n, family, r);
	}
}

/* ---- node ports ---- */

/* Whether each family's NodePorts are on every local address (fib daddr type local) or
 * on the addresses of nodeport-ips (elements held by the pseudo-port "", render_node()). */
static void node_setting(struct nft *n)
{
	for (int f = 0; f < 2; f++)
		n->fam[f].np_any = kp_ctx_get_nodeport_any_local(n->ctx,
								 f ? AF_INET6 : AF_INET);
}

static int render_node(struct nft *n)
{
	size_t n_addrs;
	const struct kp_addr *a = kp_ctx_get_nodeport_addrs(n->ctx, &n_addrs);
	struct port_rec *rec = calloc(1, sizeof(*rec));
	struct render rd = { .n = n, .rec = rec };
	void *old = NULL;

	if (!rec)
		return -ENOMEM;
	for (size_t i = 0; i < n_addrs && !rd.err; i++) {
		uint8_t k[16];
		int f = fidx(a[i].family);

		/* as kube-proxy: loopback is never a NodePort address in this mode */
		if (!n->fam[f].on || n->fam[f].np_any || kp_addr_is_unspecified(&a[i]) ||
		    (a[i].family == AF_INET && (ntohl(a[i].v4.s_addr) >> 24) == 127) ||
		    (a[i].family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a[i].v6)))
			continue;
		rd.f = &n->fam[f];
		want_el(&rd, S_NODEPORT_IPS, k, put_addr(k, &a[i]), "");
	}
	if (!rd.err)
		rd.err = kp_map_put(n->pending, "", rec, &old);
	rec_free(old);
	if (rd.err)
		rec_free(rec);
	return rd.err;
}

/* ---- state bookkeeping ---- */

/* Frees what @f knows of the table, and its lists. */
static void fam_free(struct fam *f)
{
	struct kp_map_iter it = { 0 };
	void *v;

	while (f->els && kp_map_next(f->els, &it, NULL, &v)) {
		struct el *e = v;

		free(e->want);
		free(e->have);
		free(e);
	}
	kp_map_free(f->els);
	memset(&it, 0, sizeof(it));
	while (f->chains && kp_map_next(f->chains, &it, NULL, &v))
		free(v);
	kp_map_free(f->chains);
	memset(&it, 0, sizeof(it));
	while (f->affs && kp_map_next(f->affs, &it, NULL, &v))
		free(v);
	kp_map_free(f->affs);
	f->els = f->chains = f->affs = NULL;
	strv_free(&f->stale);
	strv_free(&f->touched_els);
	strv_free(&f->touched_chains);
	strv_free(&f->touched_affs);
	strv_free(&f->new_affs);
}

static void fam_clear(struct fam *f)
{
	fam_free(f);
	f->els = kp_map_new();
	f->chains = kp_map_new();
	f->affs = kp_map_new();
}

static void records_free(struct kp_map *m)
{
	struct kp_map_iter it = { 0 };
	const char *k;
	void *v;

	if (!m)
		return;
	while (kp_map_next(m, &it, &k, &v))
		rec_free(v);
	kp_map_free(m);
}

static void sync_scratch_free(struct nft *n)
{
	for (int f = 0; f < 2; f++) {
		struct fam *fm = &n->fam[f];

		for (size_t i = 0; i < fm->n_jobs; i++)
			job_free(&fm->jobs[i]);
		fm->n_jobs = 0;
		strv_free(&fm->touched_els);
		strv_free(&fm->new_affs);
		strv_free(&fm->touched_chains);
		strv_free(&fm->touched_affs);
	}
	records_free(n->pending);
	n->pending = NULL;
}

/* Forgets everything: the next sync rebuilds the tables. */
static void forget(struct nft *n)
{
	for (int f = 0; f < 2; f++)
		fam_clear(&n->fam[f]);
	records_free(n->ports);
	n->ports = kp_map_new();
	n->built = false;
}

/* ---- one transaction ---- */

/*
 * Emits the chains rendered since the last call (one service port's) and frees them:
 * new affinity sets and new chains first, then each chain's flush and rules, so that no
 * rule names what is not there yet. Called per port, the transaction is the only copy.
 */
static void emit_jobs(struct nft *n, struct fam *f)
{
	/* new affinity sets, then new chains, before any rule names them */
	for (size_t i = 0; i < f->new_affs.n; i++) {
		struct aff *a = kp_map_get(f->affs, f->new_affs.v[i]);

		if (a && a->want && !a->have)
			emit_aff(n, f->family, f->new_affs.v[i], a->timeout, false);
	}
	for (size_t i = 0; i < f->n_jobs; i++) {
		struct ch *c = kp_map_get(f->chains, f->jobs[i].chain);

		if (c && !c->have)
			emit_chain(n, f->family, NFT_MSG_NEWCHAIN, f->jobs[i].chain, NULL, NULL);
	}
	for (size_t i = 0; i < f->n_jobs; i++) {
		struct job *j = &f->jobs[i];
		struct ch *c = kp_map_get(f->chains, j->chain);

		if (c && c->have)
			emit_chain(n, f->family, NFT_MSG_DELRULE, j->chain, NULL, NULL);
		for (size_t r = 0; r < j->n_rules; r++)
			emit_rule(n, f->family, j->rules[r], j->anon[r]);
		if (c)
			c->n_rules_sent = (unsigned)j->n_rules;
		job_free(j);
	}
	f->n_jobs = 0;
	strv_free(&f->new_affs);
}

/* Emits the rest of this sync for @f: elements, then chains and sets no longer used. */
static void emit_family(struct nft *n, struct fam *f)
{
	struct elem_msgs m = { 0 };

	emit_jobs(n, f);
	/* elements: what goes or changes first, then what comes */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < f->touched_els.n; i++) {
			struct el *e = kp_map_get(f->els, f->touched_els.v[i]);

			if (!e)
				continue;
			if (!pass && e->have && (!e->want || strcmp(e->want, e->have)))
				elem_put(n, f->family, &m, e, e->have, true);
			if (pass && e->want && (!e->have || strcmp(e->want, e->have)))
				elem_put(n, f->family, &m, e, e->want, false);
		}
		for (int s = 0; s < N_SETS; s++)
			elem_flush(n, f->family, &m, s, !pass);
	}
	/* chains no port holds: emptied now, deleted by a later transaction */
	for (size_t i = 0; i < f->touched_chains.n; i++) {
		const char *k = f->touched_chains.v[i];
		struct ch *c = kp_map_get(f->chains, k);

		if (c && c->touched && c->have && !c->want && !c->stale_since)
			emit_chain(n, f->family, NFT_MSG_DELRULE, k, NULL, NULL);
	}
	for (size_t i = 0; i < f->touched_affs.n; i++) {
		const char *k = f->touched_affs.v[i];
		struct aff *a = kp_map_get(f->affs, k);

		if (a && a->touched && a->have && !a->want)
			emit_aff(n, f->family, k, 0, true);
	}
}

/* After a successful commit: what was sent is what is there. */
static void commit_family(struct fam *f, long long now)
{

	for (size_t i = 0; i < f->touched_els.n; i++) {
		struct el *e = kp_map_get(f->els, f->touched_els.v[i]);

		if (!e)
			continue;
		e->touched = false;
		free(e->have);
		e->have = e->want ? strdup(e->want) : NULL;
		if (!e->have && !e->want && !e->refs) {
			kp_map_del(f->els, f->touched_els.v[i]);
			free(e);
		}
	}
	for (size_t i = 0; i < f->touched_chains.n; i++) {
		const char *k = f->touched_chains.v[i];
		struct ch *c = kp_map_get(f->chains, k);

		if (!c || !c->touched)
			continue;
		c->touched = false;
		if (c->want) {
			c->n_rules = c->n_rules_sent;
			c->have = true;
			c->stale_since = 0;
		} else if (c->have && !c->stale_since) {
			c->stale_since = now;
			c->n_rules = 0;
			strv_add(&f->stale, k);	/* lost on ENOMEM: the chain stays, empty */
		} else if (!c->have) {
			kp_map_del(f->chains, k);
			free(c);
		}
	}
	for (size_t i = 0; i < f->touched_affs.n; i++) {
		const char *k = f->touched_affs.v[i];
		struct aff *a = kp_map_get(f->affs, k);

		if (!a || !a->touched)
			continue;
		a->touched = false;
		a->have = a->want;
		if (!a->want) {
			kp_map_del(f->affs, k);
			free(a);
		}
	}
}

/* Moves this sync's records over the old ones. */
static void commit_records(struct nft *n)
{
	struct kp_map_iter it = { 0 };
	const char *k;
	void *v;

	while (kp_map_next(n->pending, &it, &k, &v)) {
		void *old = NULL;
		struct port_rec *rec = v;

		/* an empty record (a removed port) is dropped */
		bool empty = true;

		for (int f = 0; f < 2; f++)
			empty = empty && !rec->els[f].n && !rec->chains[f].n && !rec->affs[f].n;
		if (empty) {
			rec_free(kp_map_del(n->ports, k));
			rec_free(rec);
		} else if (kp_map_put(n->ports, k, rec, &old) < 0) {
			rec_free(rec);
			n->built = false;	/* lost track: rebuild next time */
		} else {
			rec_free(old);
		}
	}
	kp_map_free(n->pending);
	n->pending = NULL;
}

/* Deletes the chains emptied at least a second ago, in a transaction of their own. */
static void delete_stale(struct nft *n)
{
	long long now = now_ns();
	char why[512] = "";
	size_t n_del = 0;
	int r;

	kp_nfb_begin(&n->b, n->sock.seq, false, 0);
	for (int f = 0; f < 2; f++) {
		struct fam *fm = &n->fam[f];

		for (size_t i = 0; fm->on && i < fm->stale.n; i++) {
			struct ch *c = kp_map_get(fm->chains, fm->stale.v[i]);

			if (c && c->have && !c->want && c->stale_since &&
			    now - c->stale_since >= STALE_DELAY_NS) {
				emit_chain(n, fm->family, NFT_MSG_DELCHAIN, fm->stale.v[i], NULL,
					   NULL);
				n_del++;
			}
		}
	}
	if (!n_del)
		return;
	n->sock.seq = n->b.seq + 1;
	r = kp_nfb_commit(&n->sock, &n->b, &n->gen, why, sizeof(why));
	n->sock.seq += 2;
	if (r < 0) {
		n->n_cleanup_failures++;
		kp_log(n->ctx, KP_LOG_WARN, "nftables: deleting %zu stale chains failed: %s",
		       n_del, why);
		n->built = false;	/* as kube-proxy: the next sync is a full one */
		return;
	}
	for (int f = 0; f < 2; f++) {
		struct fam *fm = &n->fam[f];
		size_t kept = 0;

		/* deleted ones leave the map; wanted again or too young ones stay listed
		 * (the young) or drop off (the wanted) */
		for (size_t i = 0; i < fm->stale.n; i++) {
			struct ch *c = kp_map_get(fm->chains, fm->stale.v[i]);

			if (c && c->have && !c->want && c->stale_since &&
			    now - c->stale_since >= STALE_DELAY_NS) {
				kp_map_del(fm->chains, fm->stale.v[i]);
				free(c);
			} else if (c && !c->want && c->stale_since) {
				fm->stale.v[kept++] = fm->stale.v[i];
				continue;
			}
			free(fm->stale.v[i]);
		}
		fm->stale.n = kept;
	}
}

struct walk {
	struct nft *n;
	int err;
};

/* Sends what a chunked first build holds so far and starts the next transaction. */
static int commit_chunk(struct nft *n)
{
	char why[512] = "";
	int r;

	n->sock.seq = n->b.seq + 1;
	r = kp_nfb_commit(&n->sock, &n->b, &n->gen, why, sizeof(why));
	n->sock.seq += 2;
	if (r < 0) {
		n->n_sync_failures++;
		return kp_ctx_set_error(n->ctx, r, "nftables: part %zu of the first build was "
					"refused: %s", n->n_chunks + 1, why);
	}
	n->n_chunks++;
	kp_nfb_begin(&n->b, n->sock.seq, true, n->gen);
	return 0;
}

static int render_all_cb(const struct kp_svc_port *sp, void *userdata)
{
	struct walk *w = userdata;

	w->err = render_new(w->n, sp);
	if (!w->err && w->n->chunking && w->n->b.size >= CHUNK_BYTES)
		w->err = commit_chunk(w->n);
	return w->err;
}

static int render_delta_cb(const struct kp_svc_port *old, const struct kp_svc_port *new_sp,
			   void *userdata)
{
	struct walk *w = userdata;
	char key[600];

	if (old && new_sp && (old == new_sp || kp_svc_port_equal(old, new_sp)) &&
	    kp_map_get(w->n->ports, (port_key(new_sp, key, sizeof(key)), key)))
		return 0;
	if (new_sp) {
		w->err = render_new(w->n, new_sp);
		port_key(new_sp, key, sizeof(key));
	} else {
		struct port_rec *rec = calloc(1, sizeof(*rec));

		port_key(old, key, sizeof(key));
		w->err = rec ? kp_map_put(w->n->pending, key, rec, NULL) : -ENOMEM;
		if (w->err)
			rec_free(rec);
	}
	if (!w->err)
		w->err = unrender_old(w->n, key);
	return w->err;
}

static void fingerprint(struct nft *n, struct fam *f, bool all);

/*
 * One transaction: a rebuild of both tables (@rebuild) from @want, or the changes of
 * @delta. Returns 0 or a negative errno (-ERESTART: the ruleset changed meanwhile).
 */
static int transact(struct nft *n, const struct kp_state *want, const struct kp_delta *delta,
		    bool rebuild, const uint32_t *known_gen)
{
	struct walk w = { .n = n };
	char why[512] = "";
	uint32_t gen = known_gen ? *known_gen : 0;
	int r = 0;

	if (rebuild)
		forget(n);
	n->pending = kp_map_new();
	if (!n->pending)
		return -ENOMEM;
	if (!known_gen)		/* else the caller has just read it */
		r = kp_nft_getgen(&n->sock, &gen);
	if (r < 0) {
		kp_ctx_set_error(n->ctx, r, "nftables: reading the ruleset generation: %s",
				 strerror(-r));
		sync_scratch_free(n);
		return r;
	}
	n->chunking = false;
	if (rebuild) {
		int e0 = n->fam[0].on ? kp_nft_table_exists(&n->sock, NFPROTO_IPV4, TABLE) : 0;
		int e1 = n->fam[1].on ? kp_nft_table_exists(&n->sock, NFPROTO_IPV6, TABLE) : 0;

		n->chunking = e0 == 0 && e1 == 0;
		n->n_chunks = 0;
	}
	kp_nfb_begin(&n->b, n->sock.seq, true, gen);
	if (rebuild) {
		for (int f = 0; f < 2; f++) {
			struct fam *fm = &n->fam[f];

			if (!fm->on)
				continue;
			emit_table(n, fm->family, NFT_MSG_NEWTABLE, NLM_F_CREATE);
			emit_table(n, fm->family, NFT_MSG_DELTABLE, 0);
			emit_table(n, fm->family, NFT_MSG_NEWTABLE, NLM_F_CREATE);
			for (size_t i = 0; i < KP_ARRAY_SIZE(base_chains); i++)
				emit_chain(n, fm->family, NFT_MSG_NEWCHAIN, base_chains[i].name,
					   &base_chains[i], NULL);
			for (size_t i = 0; i < KP_ARRAY_SIZE(fixed_chains); i++)
				emit_chain(n, fm->family, NFT_MSG_NEWCHAIN, fixed_chains[i], NULL,
					   !strcmp(fixed_chains[i], "reject-chain") ?
					   "helper for @no-endpoint-services / "
					   "@no-endpoint-nodeports" : NULL);
			for (int s = 0; s < N_SETS; s++)
				emit_set(n, fm->family, s);
			/* the fixed rules first when chunked: they name only what is above */
			if (n->chunking)
				emit_fixed_rules(n, fm);
		}
		r = kp_state_foreach(want, render_all_cb, &w);
	} else {
		r = kp_delta_foreach(delta, render_delta_cb, &w);
	}
	if (!r)
		r = w.err;
	if (!r)
		r = unrender_old(n, "");
	if (!r)
		r = render_node(n);
	if (r < 0) {
		kp_ctx_set_error(n->ctx, r, "nftables: rendering: %s", strerror(-r));
		sync_scratch_free(n);
		n->built = false;
		forget(n);
		return r;
	}
	for (int f = 0; f < 2; f++) {
		if (!n->fam[f].on)
			continue;
		if (rebuild && !n->chunking) {
			emit_fixed_rules(n, &n->fam[f]);
		} else if (!rebuild && n->scidr_changed) {
			emit_chain(n, n->fam[f].family, NFT_MSG_DELRULE, "cluster-ips-check", NULL,
				   NULL);
			emit_cluster_ips_check(n, n->fam[f].family);
		}
		emit_family(n, &n->fam[f]);
	}
	n->last_msgs = n->b.n_msgs;
	n->sock.seq = n->b.seq + 1;
	r = kp_nfb_commit(&n->sock, &n->b, &n->gen, why, sizeof(why));
	n->sock.seq += 2;
	if (r < 0) {
		n->n_sync_failures++;
		sync_scratch_free(n);
		forget(n);	/* what the kernel has is what it had: rebuild next time */
		if (r == -ERESTART)
			kp_log(n->ctx, KP_LOG_INFO, "nftables: the ruleset changed during the "
			       "sync; rebuilding");
		return kp_ctx_set_error(n->ctx, r, "nftables: the transaction was refused "
					"(nothing changed): %s", why);
	}
	for (int f = 0; f < 2; f++)
		if (n->fam[f].on) {
			commit_family(&n->fam[f], now_ns());
			fingerprint(n, &n->fam[f], rebuild);
		}
	commit_records(n);
	sync_scratch_free(n);
	if (rebuild) {
		n->built = true;
		n->n_rebuilds++;
		for (int f = 0; f < 2; f++)
			n->fam[f].np_any_built = n->fam[f].np_any;
	}
	return 0;
}

/* ---- fingerprints: a chain's rules as the kernel lists them ---- */

struct chsum {
	uint64_t sum;
	unsigned n;
};

struct sums {
	struct nft *n;
	struct kp_map *m;	/* chain -> struct chsum */
};

/* FNV-1a over the rule's attributes as libnftnl builds them back, less its handle and
 * position (the kernel's numbering, not its content) */
static uint64_t rule_hash(struct nft *n, struct nftnl_rule *r)
{
	struct nlmsghdr *nlh;
	const uint8_t *p;
	uint64_t h = 1469598103934665603ULL;
	size_t len;

	nftnl_rule_unset(r, NFTNL_RULE_HANDLE);
	nftnl_rule_unset(r, NFTNL_RULE_POSITION);
	nftnl_rule_unset(r, NFTNL_RULE_ID);
	nlh = nftnl_nlmsg_build_hdr(n->hashbuf, NFT_MSG_NEWRULE, 0, 0, 0);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	p = mnl_nlmsg_get_payload(nlh);
	len = mnl_nlmsg_get_payload_len(nlh);
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	/* libmnl leaves an attribute's padding as the buffer had it: zeroed for the next */
	memset(n->hashbuf, 0, nlh->nlmsg_len);
	return h;
}

static int sum_rule(struct nftnl_rule *r, void *data)
{
	struct sums *s = data;
	const char *chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
	struct chsum *c;

	if (!chain)
		return 0;
	c = kp_map_get(s->m, chain);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c || kp_map_put(s->m, chain, c, NULL) < 0) {
			free(c);
			return -ENOMEM;
		}
	}
	c->sum = c->sum * 1099511628211ULL ^ rule_hash(s->n, r);
	c->n++;
	return 0;
}

static void sums_free(struct kp_map *m)
{
	struct kp_map_iter it = { 0 };
	void *v;

	if (!m)
		return;
	while (kp_map_next(m, &it, NULL, &v))
		free(v);
	kp_map_free(m);
}

/* After a commit: the fingerprints of the chains it wrote (@all: of every chain, one
 * dump of the table; else one dump per chain touched). A chain whose dump fails keeps
 * no fingerprint, and the read-back then compares its rule count only. */
static void fingerprint(struct nft *n, struct fam *f, bool all)
{
	struct sums s = { n, kp_map_new() };
	int r = 0;

	if (!s.m)
		return;
	if (all) {
		struct kp_map_iter it = { 0 };
		const char *k;
		void *v;

		r = kp_nft_dump_rules(&n->sock, (int)nfproto(f->family), TABLE, NULL, sum_rule,
				      &s);
		while (kp_map_next(f->chains, &it, &k, &v)) {
			struct ch *c = v;
			struct chsum *cs = kp_map_get(s.m, k);

			c->sum_known = !r && c->have && c->want;
			c->sum = cs ? cs->sum : 0;
		}
	} else {
		for (size_t i = 0; i < f->touched_chains.n; i++) {
			const char *k = f->touched_chains.v[i];
			struct ch *c = kp_map_get(f->chains, k);
			struct chsum *cs;

			if (!c || !c->have || !c->want)
				continue;
			r = kp_nft_dump_rules(&n->sock, (int)nfproto(f->family), TABLE, k, sum_rule,
					      &s);
			cs = kp_map_get(s.m, k);
			c->sum_known = !r;
			c->sum = cs ? cs->sum : 0;
		}
	}
	sums_free(s.m);
}

/* ---- reading back: does the kernel still have what we wrote? ---- */

struct verify {
	struct fam *f;
	struct kp_map *chains;	/* the chains there are (the values mean nothing) */
	struct sums sums;	/* chain -> its rules there: how many, their fingerprint */
	size_t n_chains, n_elems, mismatches;
	int set;
	char first[300];
};

static int count_chain(struct nftnl_chain *c, void *data)
{
	struct verify *v = data;
	const char *name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);

	if (name && kp_map_put(v->chains, name, v, NULL) < 0)
		return -ENOMEM;
	v->n_chains++;
	return 0;
}

static int check_elems(struct nftnl_set *s, void *data)
{
	struct verify *v = data;
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct nftnl_set_elem *e;

	if (!it)
		return -ENOMEM;
	while ((e = nftnl_set_elems_iter_next(it))) {
		uint32_t klen = 0;
		const uint8_t *key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);
		char skey[2 + 2 * 40 + 1];
		struct el *x;

		if (!key || klen > 40)
			continue;
		skey[0] = (char)('a' + v->set);
		for (uint32_t i = 0; i < klen; i++)
			sprintf(skey + 1 + 2 * i, "%02x", key[i]);
		x = kp_map_get(v->f->els, skey);
		if (!x || !x->have) {
			if (!v->mismatches++)
				snprintf(v->first, sizeof(v->first), "an element of %s we did not "
					 "write", set_decls[v->set].name);
			continue;
		}
		if (set_decls[v->set].map && x->have[0] == 'g') {
			const char *chain = nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN);
			size_t len = strcspn(x->have + 1, "\x01");

			if (!chain || strlen(chain) != len || strncmp(chain, x->have + 1, len)) {
				if (!v->mismatches++)
					snprintf(v->first, sizeof(v->first), "an element of %s "
						 "points elsewhere", set_decls[v->set].name);
			}
		}
		v->n_elems++;
	}
	nftnl_set_elems_iter_destroy(it);
	return 0;
}

/* Compares the kernel's table with what we believe is there. Returns 0 (equal), 1 (it
 * differs: @why says how) or a negative errno. */
static int verify_family(struct nft *n, struct fam *f, char *why, size_t size)
{
	struct verify v = { .f = f, .chains = kp_map_new(), .sums = { n, kp_map_new() } };
	size_t want_elems = 0, want_chains = 0;
	struct kp_map_iter it = { 0 };
	const char *k;
	void *val;
	int r;

	if (!v.chains || !v.sums.m) {
		kp_map_free(v.chains);
		sums_free(v.sums.m);
		return -ENOMEM;
	}
	r = kp_nft_dump_chains(&n->sock, (int)nfproto(f->family), TABLE, count_chain, &v);
	if (!r)
		r = kp_nft_dump_rules(&n->sock, (int)nfproto(f->family), TABLE, NULL, sum_rule,
				      &v.sums);
	for (int s = 0; s < N_SETS && !r; s++) {
		v.set = s;
		r = kp_nft_dump_elems(&n->sock, (int)nfproto(f->family), TABLE, set_decls[s].name,
				      check_elems, &v);
	}
	if (r == -ENOENT) {
		snprintf(why, size, "the table or one of its sets is gone");
		kp_map_free(v.chains);
		sums_free(v.sums.m);
		return 1;
	}
	if (r < 0) {
		kp_map_free(v.chains);
		sums_free(v.sums.m);
		return r;
	}
	while (kp_map_next(f->els, &it, &k, &val))
		want_elems += ((struct el *)val)->have != NULL;
	memset(&it, 0, sizeof(it));
	while (kp_map_next(f->chains, &it, &k, &val)) {
		struct ch *c = val;
		bool seen = kp_map_get(v.chains, k) != NULL;
		struct chsum *cs = kp_map_get(v.sums.m, k);

		if (!c->have)
			continue;
		want_chains++;
		if (!seen || (cs ? cs->n : 0) != c->n_rules) {
			if (!v.mismatches++)
				snprintf(v.first, sizeof(v.first), "chain %s: %s", k,
					 seen ? "its rules differ" : "missing");
		} else if (c->sum_known) {
			if ((cs ? cs->sum : 0) != c->sum && !v.mismatches++)
				snprintf(v.first, sizeof(v.first), "chain %s: a rule was changed",
					 k);
		}
	}
	want_chains += KP_ARRAY_SIZE(base_chains) + KP_ARRAY_SIZE(fixed_chains);
	for (size_t i = 0; i < KP_ARRAY_SIZE(fixed_chains); i++)
		if (!kp_map_get(v.chains, fixed_chains[i]) && !v.mismatches++)
			snprintf(v.first, sizeof(v.first), "chain %s: missing", fixed_chains[i]);
	for (size_t i = 0; i < KP_ARRAY_SIZE(base_chains); i++)
		if (!kp_map_get(v.chains, base_chains[i].name) && !v.mismatches++)
			snprintf(v.first, sizeof(v.first), "chain %s: missing",
				 base_chains[i].name);
	if (!v.mismatches && v.n_elems != want_elems)
		snprintf(v.first, sizeof(v.first), "%zu elements where we wrote %zu", v.n_elems,
			 want_elems), v.mismatches++;
	if (!v.mismatches && v.n_chains != want_chains)
		snprintf(v.first, sizeof(v.first), "%zu chains where we wrote %zu", v.n_chains,
			 want_chains), v.mismatches++;
	kp_map_free(v.chains);
	sums_free(v.sums.m);
	if (v.mismatches)
		snprintf(why, size, "%s", v.first);
	return v.mismatches ? 1 : 0;
}

static int verify(struct nft *n, char *why, size_t size)
{
	for (int f = 0; f < 2; f++) {
		int r;

		if (!n->fam[f].on)
			continue;
		r = verify_family(n, &n->fam[f], why, size);
		if (r)
			return r;
	}
	return 0;
}

static int nft_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	struct nft *n = priv;
	char sig[sizeof(n->scidr_sig)], why[320] = "";
	bool rebuild = !n->built, have_gen = false;
	uint32_t gen = 0;
	int r;

	/* fib or nodeport-ips is in the fixed rules: a change between them rebuilds (the
	 * addresses of nodeport-ips are elements, rendered each sync) */
	node_setting(n);
	for (int f = 0; f < 2; f++)
		rebuild |= n->fam[f].on && n->fam[f].np_any != n->fam[f].np_any_built;
	scidr_setting(n, sig, sizeof(sig));
	n->scidr_changed = strcmp(sig, n->scidr_sig) != 0;
	if (!rebuild)
		delete_stale(n);
	rebuild = rebuild || !n->built;
	if (!rebuild) {
		r = kp_nft_getgen(&n->sock, &gen);
		have_gen = r == 0;
		/* someone else changed the ruleset, or the periodic full sync: read it back */
		if (r < 0 || gen != n->gen || kp_delta_is_full(delta)) {
			r = r < 0 ? r : verify(n, why, sizeof(why));
			if (r) {
				kp_log(n->ctx, KP_LOG_WARN, "nftables: the table differs from what "
				       "was written (%s): rebuilding it", r > 0 ? why : strerror(-r));
				rebuild = true;
			}
		}
	}
	r = transact(n, want, delta, rebuild, have_gen && !rebuild ? &gen : NULL);
	if (r == -ERESTART)
		r = transact(n, want, delta, true, NULL);
	if (r < 0)
		return r;
	snprintf(n->scidr_sig, sizeof(n->scidr_sig), "%s", sig);
	kp_ct_after_sync(n->ctx, "nftables", want, delta, n->synced, n->ipv6, &n->ct_stats);
	n->synced = true;
	return 0;
}

/* ---- dump: what the kernel has, read back ---- */

struct rd_eps {
	struct kp_endpoint *v;
	size_t n, cap;
	char next[4][NAME_MAX_LEN];	/* chains it goes to unconditionally */
	size_t n_next;
	char rule_goto[NAME_MAX_LEN];	/* the verdict chain of the rule being read */
	int rule_exprs;			/* expressions of the rule being read */
	char maps[4][64];		/* anonymous maps its rules look up */
	bool map_verdict[4];
	size_t n_maps;
	uint8_t imm[2][16];		/* immediates of a plain dnat */
	uint32_t imm_len[2];
	int n_imm;
	int family;
};

static void eps_add(struct rd_eps *x, const uint8_t *addr, size_t alen, const uint8_t *port)
{
	struct kp_endpoint *q;

	if (x->n == x->cap) {
		size_t n = x->cap ? 2 * x->cap : 16;

		q = realloc(x->v, n * sizeof(*q));
		if (!q)
			return;
		x->v = q;
		x->cap = n;
	}
	q = &x->v[x->n++];
	memset(q, 0, sizeof(*q));
	q->addr.family = alen == 16 ? AF_INET6 : AF_INET;
	memcpy(alen == 16 ? (void *)&q->addr.v6 : (void *)&q->addr.v4, addr, alen);
	q->port = (uint16_t)(port[0] << 8 | port[1]);
	q->ready = q->serving = true;
}

static int rule_walk_expr(struct nftnl_expr *e, void *data)
{
	struct rd_eps *x = data;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	x->rule_exprs++;
	if (!strcmp(name, "immediate")) {
		uint32_t dreg = nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG);

		if (dreg == NFT_REG_VERDICT) {
			const char *chain = nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN);

			snprintf(x->rule_goto, NAME_MAX_LEN, "%s", chain ? chain : "");
		} else if (x->n_imm < 2) {
			uint32_t len = 0;
			const void *d = nftnl_expr_get(e, NFTNL_EXPR_IMM_DATA, &len);

			if (d && len <= 16) {
				memcpy(x->imm[x->n_imm], d, len);
				x->imm_len[x->n_imm++] = len;
			}
		}
	} else if (!strcmp(name, "lookup")) {
		const char *set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);

		if (set && !strncmp(set, "__map", 5) && x->n_maps < 4) {
			x->map_verdict[x->n_maps] =
				nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG) &&
				nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG) == NFT_REG_VERDICT;
			snprintf(x->maps[x->n_maps++], 64, "%s", set);
		}
	} else if (!strcmp(name, "nat") && x->n_imm == 2) {
		eps_add(x, x->imm[0], x->imm_len[0], x->imm[1]);
		x->n_imm = 0;
	}
	return 0;
}

static int rule_walk(struct nftnl_rule *r, void *data)
{
	struct rd_eps *x = data;
	int ret;

	x->n_imm = 0;
	x->rule_goto[0] = 0;
	x->rule_exprs = 0;
	ret = nftnl_expr_foreach(r, rule_walk_expr, x);
	/* only a plain "goto X" is where all traffic goes; the short-circuits of pod and
	 * host traffic in an external- chain have matches before theirs */
	if (x->rule_exprs == 1 && x->rule_goto[0] && x->n_next < 4)
		snprintf(x->next[x->n_next++], NAME_MAX_LEN, "%s", x->rule_goto);
	return ret;
}

struct map_walk {
	struct rd_eps *x;
	bool verdict;
	char chains[64][NAME_MAX_LEN];
	size_t n_chains;
};

static int map_elems(struct nftnl_set *s, void *data)
{
	struct map_walk *m = data;
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct nftnl_set_elem *e;

	if (!it)
		return -ENOMEM;
	while ((e = nftnl_set_elems_iter_next(it))) {
		uint32_t len = 0;
		const uint8_t *d;

		if (m->verdict) {
			const char *c = nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN);

			if (c && m->n_chains < 64)
				snprintf(m->chains[m->n_chains++], NAME_MAX_LEN, "%s", c);
			continue;
		}
		d = nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len);
		if (d && (len == 8 || len == 20))
			eps_add(m->x, d, len - 4, d + len - 4);
	}
	nftnl_set_elems_iter_destroy(it);
	return 0;
}

/* The endpoints a chain leads to (following gotos to policy and endpoint chains). */
static int chain_eps(struct nft *n, int family, const char *chain, struct rd_eps *out,
		     int depth)
{
	struct rd_eps x = { .family = family };
	int r;

	if (depth > 3)
		return 0;
	r = kp_nft_dump_rules(&n->sock, (int)nfproto(family), TABLE, chain, rule_walk, &x);
	for (size_t i = 0; i < x.n_maps && !r; i++) {
		struct map_walk m = { .x = &x, .verdict = x.map_verdict[i] };

		r = kp_nft_dump_elems(&n->sock, (int)nfproto(family), TABLE, x.maps[i],
				      map_elems, &m);
		for (size_t c = 0; c < m.n_chains && !r; c++)
			r = chain_eps(n, family, m.chains[c], &x, depth + 1);
	}
	/* an external- chain: its last goto is the policy chain for outside traffic */
	if (!r && !x.n && x.n_next && strncmp(chain, "endpoint-", 9))
		r = chain_eps(n, family, x.next[x.n_next - 1], &x, depth + 1);
	for (size_t i = 0; i < x.n; i++)
		eps_add(out, (const uint8_t *)(x.v[i].addr.family == AF_INET6 ?
					       (const void *)&x.v[i].addr.v6 :
					       (const void *)&x.v[i].addr.v4),
			x.v[i].addr.family == AF_INET6 ? 16 : 4,
			(const uint8_t[]){ (uint8_t)(x.v[i].port >> 8), (uint8_t)x.v[i].port });
	free(x.v);
	return r;
}

struct dump_map {
	struct nft *n;
	int family, set;
	kp_dump_fn fn;
	void *userdata;
	const char *ns, *name;		/* the one service asked for, or NULL: all */
	int ret;
	struct kp_map *cluster_ips, *node_ips;
	struct dump_el *els;
	size_t n_els, cap_els;
};

static int cmp_ep(const void *a, const void *b)
{
	const struct kp_endpoint *x = a, *y = b;
	int c = memcmp(&x->addr.v6, &y->addr.v6, x->addr.family == AF_INET6 ? 16 : 4);

	return c ? c : (int)x->port - (int)y->port;
}

/* One element of service-ips or service-nodeports, kept until its dump has ended (a
 * dump cannot start on the socket while another one is being read). */
struct dump_el {
	uint8_t key[24];
	uint32_t klen;
	char chain[NAME_MAX_LEN];	/* a goto's chain, or "" */
	char comment[160];		/* no-endpoint maps: "ns/name[:port]" */
};

static int comment_cb(const struct nftnl_udata *attr, void *data)
{
	if (nftnl_udata_type(attr) == NFTNL_UDATA_SET_ELEM_COMMENT) {
		char *out = data;
		uint8_t len = nftnl_udata_len(attr);

		snprintf(out, 160, "%.*s", (int)len, (const char *)nftnl_udata_get(attr));
	}
	return 0;
}

static int collect_elems(struct nftnl_set *s, void *data)
{
	struct dump_map *d = data;
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct nftnl_set_elem *e;

	if (!it)
		return -ENOMEM;
	while ((e = nftnl_set_elems_iter_next(it))) {
		uint32_t klen = 0;
		const uint8_t *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);
		const char *chain = nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN);
		uint32_t ulen = 0;
		const void *ud = nftnl_set_elem_get(e, NFTNL_SET_ELEM_USERDATA, &ulen);
		struct dump_el *x;

		if (!k || klen > sizeof(x->key))
			continue;
		if (d->n_els == d->cap_els) {
			size_t n = d->cap_els ? 2 * d->cap_els : 64;

			x = realloc(d->els, n * sizeof(*x));
			if (!x) {
				nftnl_set_elems_iter_destroy(it);
				return -ENOMEM;
			}
			d->els = x;
			d->cap_els = n;
		}
		x = &d->els[d->n_els++];
		memcpy(x->key, k, klen);
		x->klen = klen;
		snprintf(x->chain, sizeof(x->chain), "%s", chain ? chain : "");
		x->comment[0] = 0;
		if (ud && ulen)
			nftnl_udata_parse(ud, ulen, comment_cb, x->comment);
	}
	nftnl_set_elems_iter_destroy(it);
	return 0;
}

static int dump_elems(struct dump_map *d)
{
	size_t alen = addr_len(d->family);

	for (size_t i = 0; i < d->n_els && !d->ret; i++) {
		const uint8_t *k = d->els[i].key;
		const char *chain = d->els[i].chain;
		struct kp_dump_entry en = { 0 };
		struct rd_eps x = { .family = d->family };
		char ns[128] = "", name[128] = "", proto[8] = "", port[128] = "", a[KP_ADDR_STRLEN];
		const char *p;

		bool by_ip = d->set == M_SERVICE_IPS || d->set == M_NOEP_SERVICES;
		bool noep = d->set == M_NOEP_SERVICES || d->set == M_NOEP_NODEPORTS;

		if (d->els[i].klen != (by_ip ? alen + 8 : 8))
			continue;
		if (noep) {
			/* no endpoints: who it is comes from the element's comment */
			const uint8_t pr = k[by_ip ? alen : 0];

			if (sscanf(d->els[i].comment, "%127[^/]/%127[^:]:%127s", ns, name,
				   port) < 2)
				continue;
			en.protocol = pr == IPPROTO_UDP ? KP_PROTO_UDP : pr == IPPROTO_SCTP ?
				      KP_PROTO_SCTP : KP_PROTO_TCP;
		} else {
			/* KIND-HASH8-ns/name/proto/port */
			p = strchr(chain, '-');
			if (!p || strlen(p) < 10 ||
			    sscanf(p + 10, "%127[^/]/%127[^/]/%7[^/]/%127s", ns, name, proto,
				   port) < 3)
				continue;
			en.protocol = !strcmp(proto, "udp") ? KP_PROTO_UDP :
				      !strcmp(proto, "sctp") ? KP_PROTO_SCTP : KP_PROTO_TCP;
		}
		/* another service's chains are not read (they are most of the cost: the kernel
		 * looks each anonymous map up by name along the table's list of sets) */
		if (d->ns && (strcmp(ns, d->ns) || strcmp(name, d->name)))
			continue;
		en.ns = ns;
		en.name = name;
		en.port_name = port;
		en.vip.family = d->family;
		if (by_ip) {
			memcpy(d->family == AF_INET6 ? (void *)&en.vip.v6 : (void *)&en.vip.v4, k,
			       alen);
			en.port = (uint16_t)(k[alen + 4] << 8 | k[alen + 5]);
			kp_addr_to_str(&en.vip, a, sizeof(a));
			en.kind = kp_map_get(d->cluster_ips, a) ? KP_FE_CLUSTER_IP :
				  KP_FE_EXTERNAL_IP;
		} else {
			en.port = (uint16_t)(k[4] << 8 | k[5]);
			en.kind = KP_FE_NODE_PORT;
		}
		if (!noep)
			d->ret = chain_eps(d->n, d->family, chain, &x, 0);
		if (x.n)
			qsort(x.v, x.n, sizeof(*x.v), cmp_ep);
		en.endpoints = x.v;
		en.n_endpoints = x.n;
		en.detail = noep ? (*chain ? "no endpoints: rejected" : "no endpoints: dropped") :
			    chain;
		if (!d->ret && en.kind == KP_FE_NODE_PORT && kp_map_size(d->node_ips)) {
			/* one entry per address of nodeport-ips; none: every local address */
			size_t n_keys = 0;
			const char **keys = kp_map_sorted_keys(d->node_ips, &n_keys);

			for (size_t j = 0; keys && j < n_keys && !d->ret; j++) {
				kp_addr_from_str(keys[j], &en.vip);
				d->ret = d->fn(&en, d->userdata);
			}
			free(keys);
		} else if (!d->ret) {
			d->ret = d->fn(&en, d->userdata);
		}
		free(x.v);
	}
	return d->ret;
}

static int cluster_ip_elems(struct nftnl_set *s, void *data)
{
	struct dump_map *d = data;
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct nftnl_set_elem *e;

	if (!it)
		return -ENOMEM;
	while ((e = nftnl_set_elems_iter_next(it))) {
		uint32_t klen = 0;
		const uint8_t *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);
		struct kp_addr a = { .family = d->family };
		char txt[KP_ADDR_STRLEN];

		if (!k || klen != addr_len(d->family))
			continue;
		memcpy(d->family == AF_INET6 ? (void *)&a.v6 : (void *)&a.v4, k, klen);
		kp_map_put(d->set == S_NODEPORT_IPS ? d->node_ips : d->cluster_ips,
			   kp_addr_to_str(&a, txt, sizeof(txt)), (void *)1, NULL);
	}
	nftnl_set_elems_iter_destroy(it);
	return 0;
}

/* The entries of service @ns/@name, or of every service when @ns is NULL. */
static int dump_some(struct nft *n, const char *ns, const char *name, kp_dump_fn fn,
		     void *userdata)
{
	int r = 0;

	for (int f = 0; f < 2 && !r; f++) {
		struct dump_map d = { n, n->fam[f].family, 0, fn, userdata, ns, name, 0,
				      kp_map_new(), kp_map_new(), NULL, 0, 0 };

		if (!n->fam[f].on)
			continue;
		if (!d.cluster_ips || !d.node_ips) {
			kp_map_free(d.cluster_ips);
			kp_map_free(d.node_ips);
			return -ENOMEM;
		}
		d.set = S_CLUSTER_IPS;
		r = kp_nft_dump_elems(&n->sock, (int)nfproto(d.family), TABLE, "cluster-ips",
				      cluster_ip_elems, &d);
		d.set = S_NODEPORT_IPS;
		if (!r)
			r = kp_nft_dump_elems(&n->sock, (int)nfproto(d.family), TABLE,
					      "nodeport-ips", cluster_ip_elems, &d);
		for (int s = 0; !r && s < 4; s++) {
			static const int sets[] = { M_SERVICE_IPS, M_SERVICE_NODEPORTS,
						    M_NOEP_SERVICES, M_NOEP_NODEPORTS };

			d.set = sets[s];
			d.n_els = 0;
			r = kp_nft_dump_elems(&n->sock, (int)nfproto(d.family), TABLE,
					      set_decls[d.set].name, collect_elems, &d);
			if (!r)
				r = dump_elems(&d);
		}
		free(d.els);
		kp_map_free(d.cluster_ips);
		kp_map_free(d.node_ips);
		if (r == -ENOENT)	/* not programmed (yet) */
			r = 0;
	}
	return r;
}

static int nft_dump(void *priv, kp_dump_fn fn, void *userdata)
{
	return dump_some(priv, NULL, NULL, fn, userdata);
}

static int nft_dump_service(void *priv, const char *ns, const char *name, kp_dump_fn fn,
			    void *userdata)
{
	return dump_some(priv, ns, name, fn, userdata);
}

/* ---- cleanup, init ---- */

static int nft_cleanup(void *priv)
{
	struct nft *n = priv;
	char why[320] = "";
	int r = 0;

	/* as kube-proxy: both tables, "not there" is no error; one transaction per table */
	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET, e;

		kp_nfb_begin(&n->b, n->sock.seq, false, 0);
		emit_table(n, family, NFT_MSG_DELTABLE, 0);
		n->sock.seq = n->b.seq + 1;
		e = kp_nfb_commit(&n->sock, &n->b, &n->gen, why, sizeof(why));
		n->sock.seq += 2;
		if (e < 0 && e != -ENOENT && !r)
			r = kp_ctx_set_error(n->ctx, e, "nftables: cleanup: %s", why);
	}
	forget(n);
	return r;
}

static int nft_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	struct nft *n = calloc(1, sizeof(*n));
	uint32_t gen;
	int r;

	if (!n)
		return -ENOMEM;
	n->ctx = ctx;
	n->o = opts;
	n->mark = 1u << n->o->masquerade_bit;
	n->fam[0].family = AF_INET;
	n->fam[1].family = AF_INET6;
	n->fam[0].on = n->fam[1].on = true;
	n->ipv6 = true;
	n->hashbuf = calloc(1, HASHBUF_SIZE);
	if (!n->hashbuf) {
		free(n);
		return -ENOMEM;
	}
	r = kp_nft_open(&n->sock);
	if (!r)
		r = kp_nft_getgen(&n->sock, &gen);
	if (r < 0) {
		char why[160];

		kp_ctx_set_error(ctx, r, "nftables: cannot talk to nf_tables: %s%s", strerror(-r),
				 kp_caps_explain(r, KP_CAP(CAP_NET_ADMIN), why, sizeof(why)));
		kp_nft_close(&n->sock);
		free(n->hashbuf);
		free(n);
		return r;
	}
	forget(n);
	if (!n->ports || !n->fam[0].els || !n->fam[1].els) {
		for (int f = 0; f < 2; f++)
			fam_free(&n->fam[f]);
		records_free(n->ports);
		kp_nft_close(&n->sock);
		free(n->hashbuf);
		free(n);
		return -ENOMEM;
	}
	*ret_priv = n;
	return 0;
}

static void nft_destroy(void *priv)
{
	struct nft *n = priv;

	sync_scratch_free(n);
	for (int f = 0; f < 2; f++) {
		fam_free(&n->fam[f]);
		free(n->fam[f].jobs);
	}
	records_free(n->ports);
	kp_nfb_free(&n->b);
	kp_nft_close(&n->sock);
	free(n->hashbuf);
	free(n);
}

/* kube-proxy's nftables-mode metrics */
static int nft_stats(void *priv, kp_stat_fn fn, void *userdata)
{
	struct nft *n = priv;
	struct kp_stat s[] = {
		{ "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
		  "Cumulative proxy nftables sync failures", "counter", "",
		  (double)n->n_sync_failures },
		{ "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total",
		  "Cumulative proxy nftables cleanup failures", "counter", "",
		  (double)n->n_cleanup_failures },
		{ "kproxyd_nftables_rebuilds_total", "Transactions that rebuilt the tables",
		  "counter", "", (double)n->n_rebuilds },
		{ "kproxyd_nftables_last_transaction_messages",
		  "Messages in the last sync's transaction", "gauge", "", (double)n->last_msgs },
	};
	int r = 0;

	for (size_t i = 0; i < KP_ARRAY_SIZE(s) && !r; i++)
		r = fn(&s[i], userdata);
	return r ? r : kp_ct_stats_report(&n->ct_stats, fn, userdata);
}

const struct kp_backend_ops kp_backend_nftables = {
	.name = "nftables",
	.init = nft_init,
	.sync = nft_sync,
	.dump = nft_dump,
	.dump_service = nft_dump_service,
	.cleanup = nft_cleanup,
	.destroy = nft_destroy,
	.stats = nft_stats,
	.options = nft_options,
	.n_options = KP_ARRAY_SIZE(nft_options),
	.options_size = sizeof(struct nft_opts),
};
