// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ctnetlink through libmnl: dump the IPv4 and IPv6 conntrack tables, pick the entries whose
 * original destination and reply source match a flush request, then delete them by
 * their original tuple. Every attribute we read is checked against a policy table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "conntrack.h"
#include "internal.h"

struct tuple {
	struct kp_addr src, dst;
	uint16_t sport, dport;		/* network order */
	uint8_t proto;
	bool has_ports;
};

struct entry {
	struct tuple orig, reply;
};

struct dump {
	struct entry *v;
	size_t n, cap;
	const struct kp_ct_flush *req;
	size_t n_req;
};

/* attribute types and payload lengths we accept, per nesting level */
struct attr_policy {
	int type;
	size_t len;
};

static const struct attr_policy policy_ip[] = {
	{ CTA_IP_V4_SRC, 4 }, { CTA_IP_V4_DST, 4 }, { CTA_IP_V6_SRC, 16 }, { CTA_IP_V6_DST, 16 },
};
static const struct attr_policy policy_proto[] = {
	{ CTA_PROTO_NUM, 1 }, { CTA_PROTO_SRC_PORT, 2 }, { CTA_PROTO_DST_PORT, 2 },
};

static bool valid(const struct nlattr *a, int max, const struct attr_policy *p, size_t n_policy)
{
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, max) < 0)
		return false;
	for (size_t i = 0; i < n_policy; i++)
		if (p[i].type == type)
			return !p[i].len || mnl_attr_get_payload_len(a) == p[i].len;
	return true;	/* attributes we do not read */
}

static int ip_cb(const struct nlattr *a, void *data)
{
	struct tuple *t = data;

	if (!valid(a, CTA_IP_MAX, policy_ip, sizeof(policy_ip) / sizeof(policy_ip[0])))
		return MNL_CB_ERROR;
	switch (mnl_attr_get_type(a)) {
	case CTA_IP_V4_SRC:
		t->src.family = AF_INET;
		memcpy(&t->src.v4, mnl_attr_get_payload(a), 4);
		break;
	case CTA_IP_V4_DST:
		t->dst.family = AF_INET;
		memcpy(&t->dst.v4, mnl_attr_get_payload(a), 4);
		break;
	case CTA_IP_V6_SRC:
		t->src.family = AF_INET6;
		memcpy(&t->src.v6, mnl_attr_get_payload(a), 16);
		break;
	case CTA_IP_V6_DST:
		t->dst.family = AF_INET6;
		memcpy(&t->dst.v6, mnl_attr_get_payload(a), 16);
		break;
	}
	return MNL_CB_OK;
}

static int proto_cb(const struct nlattr *a, void *data)
{
	struct tuple *t = data;

	if (!valid(a, CTA_PROTO_MAX, policy_proto, sizeof(policy_proto) / sizeof(policy_proto[0])))
		return MNL_CB_ERROR;
	switch (mnl_attr_get_type(a)) {
	case CTA_PROTO_NUM:
		t->proto = mnl_attr_get_u8(a);
		break;
	case CTA_PROTO_SRC_PORT:
		t->sport = mnl_attr_get_u16(a);
		t->has_ports = true;
		break;
	case CTA_PROTO_DST_PORT:
		t->dport = mnl_attr_get_u16(a);
		break;
	}
	return MNL_CB_OK;
}

static int tuple_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_type_valid(a, CTA_TUPLE_MAX) < 0)
		return MNL_CB_ERROR;
	if (mnl_attr_get_type(a) == CTA_TUPLE_IP) {
		if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
			return MNL_CB_ERROR;
		return mnl_attr_parse_nested(a, ip_cb, data);
	}
	if (mnl_attr_get_type(a) == CTA_TUPLE_PROTO) {
		if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
			return MNL_CB_ERROR;
		return mnl_attr_parse_nested(a, proto_cb, data);
	}
	return MNL_CB_OK;
}

static int ct_attr_cb(const struct nlattr *a, void *data)
{
	struct entry *e = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, CTA_MAX) < 0)
		return MNL_CB_OK;	/* newer kernel attribute: not ours */
	if (type != CTA_TUPLE_ORIG && type != CTA_TUPLE_REPLY)
		return MNL_CB_OK;
	if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
		return MNL_CB_ERROR;
	return mnl_attr_parse_nested(a, tuple_cb, type == CTA_TUPLE_ORIG ? &e->orig : &e->reply);
}

static bool matches(const struct dump *d, const struct entry *e)
{
	for (size_t i = 0; i < d->n_req; i++) {
		const struct kp_ct_flush *r = &d->req[i];

		if (e->orig.proto == r->proto && kp_addr_equal(&e->orig.dst, &r->vip) &&
		    e->orig.dport == htons(r->port) &&
		    (r->any_endpoint || kp_addr_equal(&e->reply.src, &r->endpoint)))
			return true;
	}
	return false;
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump *d = data;
	struct entry e = { 0 };

	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), ct_attr_cb, &e) < 0)
		return MNL_CB_OK;	/* skip an entry we cannot read */
	if (!e.orig.has_ports || !matches(d, &e))
		return MNL_CB_OK;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct entry *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return MNL_CB_ERROR;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = e;
	return MNL_CB_OK;
}

static struct nlmsghdr *ct_msg(char *buf, uint16_t type, uint16_t flags, uint32_t seq,
			       int family)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	return nlh;
}

static void put_tuple(struct nlmsghdr *nlh, const struct tuple *t)
{
	struct nlattr *tuple = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG), *n;

	n = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	if (t->src.family == AF_INET6) {
		mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, &t->src.v6);
		mnl_attr_put(nlh, CTA_IP_V6_DST, 16, &t->dst.v6);
	} else {
		mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, &t->src.v4);
		mnl_attr_put(nlh, CTA_IP_V4_DST, 4, &t->dst.v4);
	}
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, t->proto);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, t->sport);
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, t->dport);
	mnl_attr_nest_end(nlh, n);
	mnl_attr_nest_end(nlh, tuple);
}

/* Sends @nlh and runs @cb over the answers until done. Returns 0 or -errno. */
static int talk(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	unsigned portid = mnl_socket_get_portid(nl);
	uint32_t seq = nlh->nlmsg_seq;
	int r;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (n < 0)
			return -errno;
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (r <= MNL_CB_STOP)
			return r < 0 ? -errno : 0;
	}
}

int kp_ct_flush(const struct kp_ct_flush *req, size_t n_req)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct dump d = { .req = req, .n_req = n_req };
	struct mnl_socket *nl;
	uint32_t seq = (uint32_t)time(NULL);
	int r, deleted = 0;

	if (!n_req)
		return 0;
	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	for (int f = 0; f < 2; f++) {
		r = talk(nl, ct_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq++,
				    f ? AF_INET6 : AF_INET), dump_cb, &d);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < d.n; i++) {
		struct nlmsghdr *nlh = ct_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq++,
					      d.v[i].orig.src.family);

		put_tuple(nlh, &d.v[i].orig);
		r = talk(nl, nlh, NULL, NULL);
		if (r == -ENOENT)	/* gone meanwhile */
			r = 0;
		if (r < 0)
			goto out;
		deleted++;
	}
	r = deleted;
out:
	free(d.v);
	mnl_socket_close(nl);
	return r;
}
