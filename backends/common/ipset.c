// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * An ipset client over nfnetlink (NFNL_SUBSYS_IPSET) with libmnl. Every request carries
 * IPSET_ATTR_PROTOCOL (the kernel refuses anything below IPSET_PROTOCOL_MIN); we send
 * the lower of the kernel's protocol and ours, learnt once with IPSET_CMD_PROTOCOL.
 *
 * Kernel behaviour this relies on (net/netfilter/ipset/ip_set_core.c):
 *  - "exist" semantics are not an attribute but the absence of NLM_F_EXCL in the header:
 *    without it, create of an identical set, add of an existing entry and del of a
 *    missing entry (and destroy of a missing set) return 0. We clear NLM_F_EXCL for
 *    create/add/del and set it for destroy, which must report -ENOENT.
 *  - create of a clashing name answers -EEXIST also for "the same set" when its
 *    parameters (hash size after a resize, ...) differ, so -EEXIST is checked against
 *    the existing set's header: same type and family is success.
 *  - network-order values (ports, addresses) must carry NLA_F_NET_BYTEORDER and nests
 *    NLA_F_NESTED, or the type's policy check fails with IPSET_ERR_PROTOCOL.
 *  - errors come back as -errno or as -IPSET_ERR_* (4097 and up), mapped here.
 *  - each message of a datagram is handled in turn and acked (NLM_F_ACK); acks are small
 *    (NETLINK_CAP_ACK), but each is its own skb, so the receive buffer bounds how many
 *    requests one sendmsg() may carry (nlsock.c batches entry changes).
 *
 * Add and delete need the set's type to know which attributes to send (each type's
 * policy rejects the others); types are looked up with IPSET_CMD_HEADER and cached per
 * name, dropped again on create, destroy and swap.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include "ipset.h"
#include "nlsock.h"

#define MSG_MAX KP_NLSOCK_MSG_MAX /* bigger than any request we build */

enum set_kind {
	KIND_IP_PORT,	  /* hash:ip,port */
	KIND_IP_PORT_IP,  /* hash:ip,port,ip */
	KIND_IP_PORT_NET, /* hash:ip,port,net */
	KIND_NET,	  /* hash:net */
	KIND_BITMAP_PORT, /* bitmap:port */
	N_KINDS
};

static const char *const kind_names[N_KINDS] = {
	[KIND_IP_PORT] = "hash:ip,port",	 [KIND_IP_PORT_IP] = "hash:ip,port,ip",
	[KIND_IP_PORT_NET] = "hash:ip,port,net", [KIND_NET] = "hash:net",
	[KIND_BITMAP_PORT] = "bitmap:port",
};

struct set_type {
	char name[IPSET_MAXNAMELEN]; /* set name */
	enum set_kind kind;
	uint8_t family; /* NFPROTO_* the set was created for */
};

struct kp_ipset_nl {
	struct kp_nlsock ns;	/* the socket, requests and batches */
	uint8_t protocol;	/* IPSET_PROTOCOL we speak with this kernel */
	struct set_type *types; /* cache of set name -> type */
	size_t n_types, cap_types;
};

/* ---- attribute policies: what we accept in answers ---- */

enum attr_kind { A_U8, A_U16, A_U32, A_STR, A_NEST, A_BIN };

struct attr_policy {
	uint16_t type;
	enum attr_kind kind;
	uint16_t len; /* A_BIN: exact payload length */
};

static const struct attr_policy policy_cmd[] = {
	{IPSET_ATTR_PROTOCOL, A_U8, 0},	 {IPSET_ATTR_SETNAME, A_STR, 0},
	{IPSET_ATTR_TYPENAME, A_STR, 0}, {IPSET_ATTR_REVISION, A_U8, 0},
	{IPSET_ATTR_FAMILY, A_U8, 0},	 {IPSET_ATTR_DATA, A_NEST, 0},
	{IPSET_ATTR_ADT, A_NEST, 0},	 {IPSET_ATTR_PROTOCOL_MIN, A_U8, 0},
	{IPSET_ATTR_INDEX, A_U16, 0},
};

static const struct attr_policy policy_entry[] = {
	{IPSET_ATTR_IP, A_NEST, 0},	{IPSET_ATTR_IP2, A_NEST, 0},
	{IPSET_ATTR_CIDR, A_U8, 0},	{IPSET_ATTR_CIDR2, A_U8, 0},
	{IPSET_ATTR_PORT, A_U16, 0},	{IPSET_ATTR_PROTO, A_U8, 0},
	{IPSET_ATTR_TIMEOUT, A_U32, 0}, {IPSET_ATTR_CADT_FLAGS, A_U32, 0},
};

static const struct attr_policy policy_ip[] = {
	{IPSET_ATTR_IPADDR_IPV4, A_BIN, 4},
	{IPSET_ATTR_IPADDR_IPV6, A_BIN, 16},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Whether @a fits its policy entry; attribute types not in @p are accepted (and
 * ignored by the callers), types above @max are not. */
static bool attr_ok(const struct nlattr *a, uint16_t max, const struct attr_policy *p, size_t n)
{
	uint16_t type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, max) < 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i].type != type)
			continue;
		switch (p[i].kind) {
		case A_U8:
			return mnl_attr_validate(a, MNL_TYPE_U8) == 0;
		case A_U16:
			return mnl_attr_validate(a, MNL_TYPE_U16) == 0;
		case A_U32:
			return mnl_attr_validate(a, MNL_TYPE_U32) == 0;
		case A_STR:
			return mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0 &&
			       mnl_attr_get_payload_len(a) <= IPSET_MAXNAMELEN;
		case A_NEST:
			return mnl_attr_validate(a, MNL_TYPE_NESTED) == 0;
		case A_BIN:
			return mnl_attr_get_payload_len(a) == p[i].len;
		}
	}
	return true;
}

/* ---- errors ---- */

/* @err: a positive errno or IPSET_ERR_* from an ack. */
static int map_err(int err, enum set_kind kind)
{
	switch (err) {
	case IPSET_ERR_PROTOCOL:
		return -EPROTO;
	case IPSET_ERR_FIND_TYPE:
		return -EOPNOTSUPP;
	case IPSET_ERR_MAX_SETS:
		return -ENOSPC;
	case IPSET_ERR_BUSY:
	case IPSET_ERR_REFERENCED:
		return -EBUSY;
	case IPSET_ERR_EXIST_SETNAME2: /* swap: the second set is missing */
		return -ENOENT;
	case IPSET_ERR_EXIST:
		return -EEXIST;
	case IPSET_ERR_TYPE_SPECIFIC: /* hash: full; bitmap: port out of range */
		return kind == KIND_BITMAP_PORT ? -ERANGE : -ENOSPC;
	default:
		if (err >= IPSET_ERR_PRIVATE) /* mismatch, bad cidr, family, ... */
			return -EINVAL;
		return -err;
	}
}

/* The ack of a batched entry change: "already there" / "not there" are success. */
static int batch_ack(int error, uint16_t req_type)
{
	int r = error < 0 ? map_err(-error, KIND_IP_PORT) : 0;

	(void)req_type;
	return r == -EEXIST ? 0 : r;
}

/* ---- sockets and messages ---- */

static struct nlmsghdr *put_msg(struct kp_ipset_nl *nl, char *buf, uint8_t cmd, uint16_t flags)
{
	struct nlmsghdr *nlh = kp_nlsock_put(&nl->ns, buf, (NFNL_SUBSYS_IPSET << 8) | cmd, flags);
	struct nfgenmsg *nfg;

	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = NFPROTO_IPV4; /* as ipset(8); the set's family is an attribute */
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	mnl_attr_put_u8(nlh, IPSET_ATTR_PROTOCOL, nl->protocol);
	return nlh;
}

static bool name_ok(const char *name)
{
	return name && name[0] && strnlen(name, IPSET_MAXNAMELEN) < IPSET_MAXNAMELEN;
}

static int protocol_cb(const struct nlmsghdr *nlh, void *data)
{
	uint8_t *proto = data;
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (!attr_ok(a, IPSET_ATTR_CMD_MAX, policy_cmd, N(policy_cmd)))
			return -EPROTO;
		if (mnl_attr_get_type(a) == IPSET_ATTR_PROTOCOL)
			*proto = mnl_attr_get_u8(a);
	}
	return 0;
}

int kp_ipset_open(struct kp_ipset_nl **ret)
{
	char buf[MSG_MAX];
	struct kp_ipset_nl *nl;
	uint8_t kernel_proto = 0;
	int r;

	if (!ret)
		return -EINVAL;
	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	/* batched acks carry the error only: we need no echoed header */
	r = kp_nlsock_open(&nl->ns, NETLINK_NETFILTER, batch_ack, sizeof(int));
	if (r < 0)
		goto out_free;

	nl->protocol = IPSET_PROTOCOL;
	r = kp_nlsock_talk(&nl->ns, put_msg(nl, buf, IPSET_CMD_PROTOCOL, NLM_F_ACK), protocol_cb,
			   &kernel_proto);
	if (r == -EINVAL || r == -EOPNOTSUPP || r == -ENOENT) {
		r = -EPROTONOSUPPORT; /* no ip_set subsystem (and no module to load) */
		goto out_close;
	}
	if (r < 0) {
		r = map_err(-r, KIND_IP_PORT);
		goto out_close;
	}
	if (kernel_proto < IPSET_PROTOCOL_MIN) {
		r = -EPROTONOSUPPORT;
		goto out_close;
	}
	if (kernel_proto < nl->protocol)
		nl->protocol = kernel_proto;
	*ret = nl;
	return 0;

out_close:
	kp_nlsock_close(&nl->ns);
out_free:
	free(nl);
	return r;
}

void kp_ipset_close(struct kp_ipset_nl *nl)
{
	if (!nl)
		return;
	kp_nlsock_close(&nl->ns);
	free(nl->types);
	free(nl);
}

/* ---- the set type cache ---- */

static struct set_type *type_find(struct kp_ipset_nl *nl, const char *name)
{
	for (size_t i = 0; i < nl->n_types; i++)
		if (strcmp(nl->types[i].name, name) == 0)
			return &nl->types[i];
	return NULL;
}

static void type_forget(struct kp_ipset_nl *nl, const char *name)
{
	struct set_type *t = type_find(nl, name);

	if (t)
		*t = nl->types[--nl->n_types];
}

static int kind_of(const char *typename)
{
	for (int k = 0; k < N_KINDS; k++)
		if (strcmp(kind_names[k], typename) == 0)
			return k;
	return -1;
}

struct header {
	char typename[IPSET_MAXNAMELEN];
	uint8_t family;
	uint8_t revision;
	uint8_t revision_min;
	bool has_revision;
};

static int header_cb(const struct nlmsghdr *nlh, void *data)
{
	struct header *h = data;
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (!attr_ok(a, IPSET_ATTR_CMD_MAX, policy_cmd, N(policy_cmd)))
			return -EPROTO;
		switch (mnl_attr_get_type(a)) {
		case IPSET_ATTR_TYPENAME:
			memcpy(h->typename, mnl_attr_get_str(a), mnl_attr_get_payload_len(a));
			break;
		case IPSET_ATTR_FAMILY:
			h->family = mnl_attr_get_u8(a);
			break;
		case IPSET_ATTR_REVISION:
			h->revision = mnl_attr_get_u8(a);
			h->has_revision = true;
			break;
		case IPSET_ATTR_REVISION_MIN:
			h->revision_min = mnl_attr_get_u8(a);
			break;
		}
	}
	return 0;
}

/* The header of set @name: 0, -ENOENT or -errno. */
static int get_header(struct kp_ipset_nl *nl, const char *name, struct header *h)
{
	char buf[MSG_MAX];
	struct nlmsghdr *nlh = put_msg(nl, buf, IPSET_CMD_HEADER, NLM_F_ACK);
	int r;

	memset(h, 0, sizeof(*h));
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, name);
	r = kp_nlsock_talk(&nl->ns, nlh, header_cb, h);
	return r < 0 ? map_err(-r, KIND_IP_PORT) : 0;
}

/* The cached type of set @name, looked up when not cached. */
static int type_get(struct kp_ipset_nl *nl, const char *name, const struct set_type **ret)
{
	struct set_type *t = type_find(nl, name);
	struct header h;
	int r, kind;

	if (t) {
		*ret = t;
		return 0;
	}
	r = get_header(nl, name, &h);
	if (r < 0)
		return r;
	kind = kind_of(h.typename);
	if (kind < 0)
		return -EOPNOTSUPP; /* a set of a type we do not program */
	if (nl->n_types == nl->cap_types) {
		size_t cap = nl->cap_types ? nl->cap_types * 2 : 16;
		struct set_type *v = realloc(nl->types, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		nl->types = v;
		nl->cap_types = cap;
	}
	t = &nl->types[nl->n_types++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->kind = (enum set_kind)kind;
	t->family = h.family;
	*ret = t;
	return 0;
}

/* ---- sets ---- */

int kp_ipset_create(struct kp_ipset_nl *nl, const char *name, const char *type, int family)
{
	char buf[MSG_MAX];
	struct nlmsghdr *nlh;
	struct nlattr *data;
	struct header h;
	uint8_t nfproto;
	int kind, r;

	if (!nl || nl->ns.batch || !name_ok(name) || !type || (kind = kind_of(type)) < 0)
		return -EINVAL;
	if (kind == KIND_BITMAP_PORT)
		nfproto = NFPROTO_UNSPEC;
	else if (family == AF_INET || family == AF_INET6)
		nfproto = family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;
	else
		return -EINVAL;
	type_forget(nl, name);

	/* the newest revision of the type this kernel has */
	nlh = put_msg(nl, buf, IPSET_CMD_TYPE, NLM_F_ACK);
	mnl_attr_put_strz(nlh, IPSET_ATTR_TYPENAME, type);
	mnl_attr_put_u8(nlh, IPSET_ATTR_FAMILY, nfproto);
	memset(&h, 0, sizeof(h));
	r = kp_nlsock_talk(&nl->ns, nlh, header_cb, &h);
	if (r < 0)
		return map_err(-r, (enum set_kind)kind);
	if (!h.has_revision)
		return -EPROTO;

	/* no NLM_F_EXCL: an identical existing set is success */
	nlh = put_msg(nl, buf, IPSET_CMD_CREATE, NLM_F_ACK);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, name);
	mnl_attr_put_strz(nlh, IPSET_ATTR_TYPENAME, type);
	mnl_attr_put_u8(nlh, IPSET_ATTR_REVISION, h.revision);
	mnl_attr_put_u8(nlh, IPSET_ATTR_FAMILY, nfproto);
	data = mnl_attr_nest_start(nlh, IPSET_ATTR_DATA | NLA_F_NESTED);
	if (kind == KIND_BITMAP_PORT) {
		mnl_attr_put_u16(nlh, IPSET_ATTR_PORT_FROM | NLA_F_NET_BYTEORDER, htons(0));
		mnl_attr_put_u16(nlh, IPSET_ATTR_PORT_TO | NLA_F_NET_BYTEORDER, htons(65535));
	}
	mnl_attr_nest_end(nlh, data);
	r = kp_nlsock_talk(&nl->ns, nlh, NULL, NULL);
	if (r == -EEXIST) {
		/* the name is taken: fine if by a set of this type (its hash size may have
		 * grown since, which the kernel's own same-set test counts as different) */
		r = get_header(nl, name, &h);
		if (r < 0)
			return r;
		if (strcmp(h.typename, type) || (kind != KIND_BITMAP_PORT && h.family != nfproto))
			return -EEXIST;
		return 0;
	}
	return r < 0 ? map_err(-r, (enum set_kind)kind) : 0;
}

/* A command naming one or two sets, answered by an ack only. */
static int simple(struct kp_ipset_nl *nl, uint8_t cmd, uint16_t flags, const char *a, const char *b)
{
	char buf[MSG_MAX];
	struct nlmsghdr *nlh;
	int r;

	/* a missing name would make destroy and flush act on every set */
	if (!nl || nl->ns.batch || !name_ok(a) || (cmd == IPSET_CMD_SWAP && !name_ok(b)))
		return -EINVAL;
	nlh = put_msg(nl, buf, cmd, NLM_F_ACK | flags);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, a);
	if (b)
		mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME2, b);
	r = kp_nlsock_talk(&nl->ns, nlh, NULL, NULL);
	return r < 0 ? map_err(-r, KIND_IP_PORT) : 0;
}

int kp_ipset_destroy(struct kp_ipset_nl *nl, const char *name)
{
	int r = simple(nl, IPSET_CMD_DESTROY, NLM_F_EXCL, name, NULL); /* EXCL: -ENOENT */

	if (r == 0 || r == -ENOENT)
		type_forget(nl, name);
	return r;
}

int kp_ipset_flush(struct kp_ipset_nl *nl, const char *name)
{
	return simple(nl, IPSET_CMD_FLUSH, 0, name, NULL);
}

int kp_ipset_swap(struct kp_ipset_nl *nl, const char *a, const char *b)
{
	int r = simple(nl, IPSET_CMD_SWAP, 0, a, b);

	if (r == 0) {
		type_forget(nl, a);
		type_forget(nl, b);
	}
	return r;
}

bool kp_ipset_exists(struct kp_ipset_nl *nl, const char *name)
{
	struct header h;

	return nl && name_ok(name) && get_header(nl, name, &h) == 0;
}

/* ---- entries ---- */

static void put_addr(struct nlmsghdr *nlh, uint16_t type, const struct kp_addr *a)
{
	struct nlattr *nest = mnl_attr_nest_start(nlh, type | NLA_F_NESTED);

	if (a->family == AF_INET6)
		mnl_attr_put(nlh, IPSET_ATTR_IPADDR_IPV6 | NLA_F_NET_BYTEORDER, 16, &a->v6);
	else
		mnl_attr_put(nlh, IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER, 4, &a->v4);
	mnl_attr_nest_end(nlh, nest);
}

static uint8_t full_len(const struct kp_addr *a)
{
	return a->family == AF_INET6 ? 128 : 32;
}

/* Checks @e against the set and writes its IPSET_ATTR_DATA. */
static int put_entry(struct nlmsghdr *nlh, const struct set_type *t, const struct kp_ipset_entry *e)
{
	uint8_t want = t->family == NFPROTO_IPV6 ? AF_INET6 : AF_INET;
	struct nlattr *data;

	if (t->kind != KIND_BITMAP_PORT && e->addr.family != want)
		return -EINVAL;
	if ((t->kind == KIND_IP_PORT_IP || t->kind == KIND_IP_PORT_NET) && e->addr2.family != want)
		return -EINVAL;
	if ((t->kind == KIND_NET && e->cidr > full_len(&e->addr)) ||
	    (t->kind == KIND_IP_PORT_NET && e->cidr2 > full_len(&e->addr2)))
		return -EINVAL;
	data = mnl_attr_nest_start(nlh, IPSET_ATTR_DATA | NLA_F_NESTED);
	switch (t->kind) {
	case KIND_NET:
		put_addr(nlh, IPSET_ATTR_IP, &e->addr);
		mnl_attr_put_u8(nlh, IPSET_ATTR_CIDR, e->cidr ? e->cidr : full_len(&e->addr));
		break;
	case KIND_BITMAP_PORT:
		mnl_attr_put_u16(nlh, IPSET_ATTR_PORT | NLA_F_NET_BYTEORDER, htons(e->port));
		break;
	case KIND_IP_PORT:
	case KIND_IP_PORT_IP:
	case KIND_IP_PORT_NET:
		put_addr(nlh, IPSET_ATTR_IP, &e->addr);
		mnl_attr_put_u16(nlh, IPSET_ATTR_PORT | NLA_F_NET_BYTEORDER, htons(e->port));
		mnl_attr_put_u8(nlh, IPSET_ATTR_PROTO, e->proto);
		if (t->kind == KIND_IP_PORT)
			break;
		put_addr(nlh, IPSET_ATTR_IP2, &e->addr2);
		if (t->kind == KIND_IP_PORT_NET)
			mnl_attr_put_u8(nlh, IPSET_ATTR_CIDR2,
					e->cidr2 ? e->cidr2 : full_len(&e->addr2));
		break;
	case N_KINDS:
		break;
	}
	mnl_attr_nest_end(nlh, data);
	return 0;
}

static int adt(struct kp_ipset_nl *nl, uint8_t cmd, const char *name,
	       const struct kp_ipset_entry *e)
{
	char buf[MSG_MAX];
	const struct set_type *t;
	struct nlmsghdr *nlh;
	int r;

	if (!nl || !name_ok(name) || !e)
		return -EINVAL;
	r = type_get(nl, name, &t);
	if (r < 0)
		goto fail;
	/* no NLM_F_EXCL: adding an existing entry or deleting a missing one is 0 */
	nlh = put_msg(nl, kp_nlsock_msg_buf(&nl->ns, buf), cmd, NLM_F_ACK);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, name);
	r = put_entry(nlh, t, e);
	if (r < 0)
		goto fail;
	if (nl->ns.batch) {
		kp_nlsock_batch_queue(&nl->ns);
		return 0;
	}
	r = kp_nlsock_talk(&nl->ns, nlh, NULL, NULL);
	r = r < 0 ? map_err(-r, t->kind) : 0;
	return r == -EEXIST ? 0 : r;

fail:
	if (nl->ns.batch) { /* a batch reports its first failure at the end */
		kp_nlsock_batch_fail(&nl->ns, r);
		return 0;
	}
	return r;
}

int kp_ipset_add(struct kp_ipset_nl *nl, const char *name, const struct kp_ipset_entry *e)
{
	return adt(nl, IPSET_CMD_ADD, name, e);
}

int kp_ipset_del(struct kp_ipset_nl *nl, const char *name, const struct kp_ipset_entry *e)
{
	return adt(nl, IPSET_CMD_DEL, name, e);
}

int kp_ipset_batch_begin(struct kp_ipset_nl *nl)
{
	return nl ? kp_nlsock_batch_begin(&nl->ns) : -EINVAL;
}

int kp_ipset_batch_end(struct kp_ipset_nl *nl)
{
	return nl ? kp_nlsock_batch_end(&nl->ns) : -EINVAL;
}

/* ---- listing ---- */

struct list_walk {
	int (*fn)(const struct kp_ipset_entry *e, void *userdata);
	void *userdata;
	int ret; /* what fn returned to stop, or a decoding error */
};

static int addr_cb(const struct nlattr *a, void *data)
{
	struct kp_addr *addr = data;

	if (!attr_ok(a, IPSET_ATTR_IPADDR_MAX, policy_ip, N(policy_ip)))
		return MNL_CB_ERROR;
	switch (mnl_attr_get_type(a)) {
	case IPSET_ATTR_IPADDR_IPV4:
		addr->family = AF_INET;
		memcpy(&addr->v4, mnl_attr_get_payload(a), 4);
		break;
	case IPSET_ATTR_IPADDR_IPV6:
		addr->family = AF_INET6;
		memcpy(&addr->v6, mnl_attr_get_payload(a), 16);
		break;
	}
	return MNL_CB_OK;
}

static int entry_cb(const struct nlattr *a, void *data)
{
	struct kp_ipset_entry *e = data;

	if (!attr_ok(a, IPSET_ATTR_ADT_MAX, policy_entry, N(policy_entry)))
		return MNL_CB_ERROR;
	switch (mnl_attr_get_type(a)) {
	case IPSET_ATTR_IP:
		return mnl_attr_parse_nested(a, addr_cb, &e->addr);
	case IPSET_ATTR_IP2:
		return mnl_attr_parse_nested(a, addr_cb, &e->addr2);
	case IPSET_ATTR_CIDR:
		e->cidr = mnl_attr_get_u8(a);
		break;
	case IPSET_ATTR_CIDR2:
		e->cidr2 = mnl_attr_get_u8(a);
		break;
	case IPSET_ATTR_PORT:
		e->port = ntohs(mnl_attr_get_u16(a));
		break;
	case IPSET_ATTR_PROTO:
		e->proto = mnl_attr_get_u8(a);
		break;
	}
	return MNL_CB_OK;
}

static int list_cb(const struct nlmsghdr *nlh, void *data)
{
	struct list_walk *w = data;
	const struct nlattr *a, *d;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (!attr_ok(a, IPSET_ATTR_CMD_MAX, policy_cmd, N(policy_cmd)))
			return w->ret = -EPROTO;
		if (mnl_attr_get_type(a) != IPSET_ATTR_ADT)
			continue; /* the header's DATA holds create parameters */
		mnl_attr_for_each_nested(d, a)
		{
			struct kp_ipset_entry e;
			int r;

			if (mnl_attr_get_type(d) != IPSET_ATTR_DATA ||
			    mnl_attr_validate(d, MNL_TYPE_NESTED) < 0)
				return w->ret = -EPROTO;
			memset(&e, 0, sizeof(e));
			if (mnl_attr_parse_nested(d, entry_cb, &e) < 0)
				return w->ret = -EPROTO;
			r = w->fn(&e, w->userdata);
			if (r)
				return w->ret = r;
		}
	}
	return 0;
}

int kp_ipset_list(struct kp_ipset_nl *nl, const char *name,
		  int (*fn)(const struct kp_ipset_entry *e, void *userdata), void *userdata)
{
	char buf[MSG_MAX];
	struct list_walk w = {fn, userdata, 0};
	struct nlmsghdr *nlh;
	int r;

	if (!nl || !name_ok(name) || !fn || nl->ns.batch)
		return -EINVAL;
	/* no NLM_F_ACK: a failing dump start would be answered twice */
	nlh = put_msg(nl, buf, IPSET_CMD_LIST, NLM_F_DUMP);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, name);
	r = kp_nlsock_talk(&nl->ns, nlh, list_cb, &w);
	if (w.ret)
		return w.ret;
	return r < 0 ? map_err(-r, KIND_IP_PORT) : 0;
}

/* ---- index for the iptables match ---- */

int kp_ipset_index(const char *name, uint16_t *ret_index)
{
	struct ip_set_req_version ver = {.op = IP_SET_OP_VERSION, .version = IPSET_PROTOCOL};
	struct ip_set_req_get_set req = {.op = IP_SET_OP_GET_BYNAME};
	socklen_t len = sizeof(ver);
	int fd, r = 0;

	if (!name_ok(name) || !ret_index)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (fd < 0)
		return -errno;
	/* the kernel checks the version of every request: ask it which it speaks */
	if (getsockopt(fd, SOL_IP, SO_IP_SET, &ver, &len) < 0) {
		r = -errno;
		goto out_close;
	}
	req.version = ver.version < IPSET_PROTOCOL ? ver.version : IPSET_PROTOCOL;
	snprintf(req.set.name, sizeof(req.set.name), "%s", name);
	len = sizeof(req);
	if (getsockopt(fd, SOL_IP, SO_IP_SET, &req, &len) < 0) {
		r = -errno;
		goto out_close;
	}
	if (req.set.index == IPSET_INVALID_ID) {
		r = -ENOENT;
		goto out_close;
	}
	*ret_index = req.set.index;
out_close:
	close(fd);
	return r;
}
