// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The dummy link IPVS binds virtual addresses to (kube-ipvs0), through rtnetlink with
 * libmnl: create-if-missing, index lookup, delete, address dump and add/remove of
 * host addresses (IPv4 /32, IPv6 /128 without duplicate address detection).
 *
 * Kernel behaviour this relies on: RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL answers
 * -EEXIST for a taken name, whatever its kind, so the link is then looked up and its
 * IFLA_INFO_KIND checked; an unknown kind is -EOPNOTSUPP (after trying to load the
 * module). RTM_NEWADDR with NLM_F_EXCL answers -EEXIST for an address already there and
 * RTM_DELADDR -EADDRNOTAVAIL for one that is not: both count as success. RTM_GETADDR
 * filters by ifa_index only with NETLINK_GET_STRICT_CHK, which we ask for, and filter
 * again ourselves for kernels without it.
 *
 * Batching: requests queue in a buffer and go many per sendmsg() (up to BATCH_LIMIT bytes,
 * and no more than the receive buffer can hold acks for: each ack is its own skb);
 * rtnetlink handles the messages of a datagram in turn and acks each (NLM_F_ACK; small
 * error acks with NETLINK_CAP_ACK, which still echo the request's header so we know
 * whether a failure was an add or a delete).
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "link.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

#define BATCH_LIMIT  (64 * 1024) /* bytes of requests per sendmsg() */
#define MSG_MAX	     1024	 /* bigger than any request we build */
#define RECV_SIZE    (32 * 1024) /* one recv(): a dump skb or a link message */
#define RCVBUF_WANT  (8 * 1024 * 1024)
#define ACK_TRUESIZE 2048	/* generous kernel memory charge of one ack */
#define MAX_READS    (1u << 24) /* bound on recv() calls for one answer */

struct rtnl {
	struct mnl_socket *sock;
	uint32_t portid;
	uint32_t seq;
	unsigned max_per_send;	       /* requests whose acks fit the receive buffer */
	char *buf;		       /* BATCH_LIMIT + MSG_MAX: requests being built */
	struct mnl_nlmsg_batch *batch; /* non-NULL between batch_begin and batch_end */
	unsigned n_queued;	       /* requests in @batch */
	int batch_err;		       /* failure of the earliest failing request ... */
	uint32_t batch_err_seq;	       /* ... in the current batch, and its sequence */
};

int rtnl_open(struct rtnl **ret)
{
	struct rtnl *rt;
	int one = 1, size = RCVBUF_WANT, r;
	socklen_t sl = sizeof(size);

	if (!ret)
		return -EINVAL;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->buf = malloc(BATCH_LIMIT + MSG_MAX);
	if (!rt->buf) {
		r = -ENOMEM;
		goto out_free;
	}
	rt->sock = mnl_socket_open(NETLINK_ROUTE);
	if (!rt->sock) {
		r = -errno;
		goto out_free;
	}
	if (mnl_socket_bind(rt->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out_close;
	}
	rt->portid = mnl_socket_get_portid(rt->sock);
	/* best effort: all are optimisations or have a fallback */
	mnl_socket_setsockopt(rt->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(rt->sock, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	if (setsockopt(mnl_socket_get_fd(rt->sock), SOL_SOCKET, SO_RCVBUFFORCE, &size,
		       sizeof(size)) < 0)
		setsockopt(mnl_socket_get_fd(rt->sock), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (getsockopt(mnl_socket_get_fd(rt->sock), SOL_SOCKET, SO_RCVBUF, &size, &sl) < 0)
		size = 0;
	rt->max_per_send = size / ACK_TRUESIZE > 16 ? (unsigned)size / ACK_TRUESIZE : 16;
	rt->seq = (uint32_t)getpid() << 16;
	*ret = rt;
	return 0;

out_close:
	mnl_socket_close(rt->sock);
out_free:
	free(rt->buf);
	free(rt);
	return r;
}

void rtnl_close(struct rtnl *rt)
{
	if (!rt)
		return;
	if (rt->batch)
		mnl_nlmsg_batch_stop(rt->batch);
	mnl_socket_close(rt->sock);
	free(rt->buf);
	free(rt);
}

/* ---- requests and answers ---- */

static struct nlmsghdr *put_msg(struct rtnl *rt, char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++rt->seq;
	return nlh;
}

typedef int (*reply_fn)(const struct nlmsghdr *nlh, void *data);

/*
 * Sends one request and reads its answers: messages with its sequence number go to @fn
 * (may be NULL) until the ack or NLMSG_DONE. Once @fn returns non-zero it is not called
 * again, the rest is drained, and that value is returned (unless the kernel reports an
 * error). Returns 0, the kernel's -errno, or -errno of the socket.
 */
static int talk(struct rtnl *rt, struct nlmsghdr *req, reply_fn fn, void *data)
{
	char *buf;
	uint32_t seq = req->nlmsg_seq;
	int stop = 0, r = -EPROTO;

	if (mnl_socket_sendto(rt->sock, req, req->nlmsg_len) < 0)
		return -errno;
	buf = malloc(RECV_SIZE);
	if (!buf)
		return -ENOMEM; /* the answer stays queued; later requests skip it */
	for (unsigned reads = 0; reads < MAX_READS; reads++) {
		ssize_t n = mnl_socket_recvfrom(rt->sock, buf, RECV_SIZE);
		const struct nlmsghdr *nlh = (const void *)buf;
		int len = (int)n;

		if (n < 0) {
			r = -errno;
			goto out;
		}
		for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != rt->portid)
				continue; /* left over from an earlier request */
			if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) {
				const int *err = mnl_nlmsg_get_payload(nlh);

				if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*err))
					r = -EPROTO;
				else
					r = *err < 0 ? *err : stop;
				goto out;
			}
			if (fn && !stop)
				stop = fn(nlh, data);
		}
	}
out:
	free(buf);
	return r;
}

static bool ifname_ok(const char *name)
{
	return name && name[0] && strnlen(name, IFNAMSIZ) < IFNAMSIZ;
}

/* ---- links ---- */

struct link_info {
	int ifindex;
	bool is_dummy;
};

static int linkinfo_cb(const struct nlattr *a, void *data)
{
	struct link_info *li = data;

	if (mnl_attr_type_valid(a, IFLA_INFO_MAX) < 0)
		return MNL_CB_OK; /* newer attribute: not ours */
	if (mnl_attr_get_type(a) == IFLA_INFO_KIND) {
		if (mnl_attr_validate(a, MNL_TYPE_STRING) < 0)
			return MNL_CB_ERROR;
		li->is_dummy = mnl_attr_get_payload_len(a) >= 5 &&
			       strncmp(mnl_attr_get_payload(a), "dummy", 5) == 0 &&
			       (mnl_attr_get_payload_len(a) == 5 ||
				((const char *)mnl_attr_get_payload(a))[5] == '\0');
	}
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link_info *li = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;

	if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return -EPROTO;
	li->ifindex = ifi->ifi_index;
	mnl_attr_for_each(a, nlh, sizeof(*ifi))
	{
		if (mnl_attr_get_type(a) != IFLA_LINKINFO)
			continue;
		if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0 ||
		    mnl_attr_parse_nested(a, linkinfo_cb, li) < 0)
			return -EPROTO;
	}
	return 0;
}

static int get_link(struct rtnl *rt, const char *name, struct link_info *li)
{
	char buf[MSG_MAX];
	struct nlmsghdr *nlh = put_msg(rt, buf, RTM_GETLINK, NLM_F_ACK);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	int r;

	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	memset(li, 0, sizeof(*li));
	r = talk(rt, nlh, link_cb, li);
	if (r == 0 && li->ifindex <= 0)
		r = -ENODEV;
	return r;
}

int rtnl_link_index(struct rtnl *rt, const char *name, int *ret_ifindex)
{
	struct link_info li;
	int r;

	if (!rt || !ifname_ok(name) || !ret_ifindex)
		return -EINVAL;
	r = get_link(rt, name, &li);
	if (r < 0)
		return r;
	*ret_ifindex = li.ifindex;
	return 0;
}

int rtnl_dummy_ensure(struct rtnl *rt, const char *name, int *ret_ifindex)
{
	char buf[MSG_MAX];
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	struct nlattr *info;
	struct link_info li;
	int r;

	if (!rt || !ifname_ok(name) || !ret_ifindex || rt->batch)
		return -EINVAL;
	nlh = put_msg(rt, buf, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO | NLA_F_NESTED);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "dummy");
	mnl_attr_nest_end(nlh, info);
	r = talk(rt, nlh, NULL, NULL);
	if (r < 0 && r != -EEXIST)
		return r;
	r = get_link(rt, name, &li);
	if (r < 0)
		return r;
	if (!li.is_dummy)
		return -EEXIST;
	*ret_ifindex = li.ifindex;
	return 0;
}

int rtnl_link_del(struct rtnl *rt, const char *name)
{
	char buf[MSG_MAX];
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;

	if (!rt || !ifname_ok(name) || rt->batch)
		return -EINVAL;
	nlh = put_msg(rt, buf, RTM_DELLINK, NLM_F_ACK);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return talk(rt, nlh, NULL, NULL);
}

/* ---- addresses ---- */

struct addr_walk {
	int ifindex;
	int (*fn)(const struct kp_addr *a, void *userdata);
	void *userdata;
};

static size_t addr_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct addr_walk *w = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a, *local = NULL, *address = NULL;
	struct kp_addr addr = {.family = 0};

	if (nlh->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifa))
		return -EPROTO;
	if ((int)ifa->ifa_index != w->ifindex ||
	    (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
		return 0;
	mnl_attr_for_each(a, nlh, sizeof(*ifa))
	{
		uint16_t type = mnl_attr_get_type(a);

		if (type != IFA_LOCAL && type != IFA_ADDRESS)
			continue;
		if (mnl_attr_get_payload_len(a) != addr_len(ifa->ifa_family))
			return -EPROTO;
		if (type == IFA_LOCAL)
			local = a;
		else
			address = a;
	}
	/* IFA_LOCAL is the address itself; IPv6 sends it only with a peer */
	a = local ? local : address;
	if (!a)
		return 0;
	addr.family = ifa->ifa_family;
	memcpy(ifa->ifa_family == AF_INET6 ? (void *)&addr.v6 : (void *)&addr.v4,
	       mnl_attr_get_payload(a), addr_len(ifa->ifa_family));
	return w->fn(&addr, w->userdata);
}

int rtnl_addr_list(struct rtnl *rt, int ifindex, int (*fn)(const struct kp_addr *a, void *userdata),
		   void *userdata)
{
	char buf[MSG_MAX];
	struct addr_walk w = {ifindex, fn, userdata};
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;

	if (!rt || ifindex <= 0 || !fn || rt->batch)
		return -EINVAL;
	nlh = put_msg(rt, buf, RTM_GETADDR, NLM_F_DUMP);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_UNSPEC;
	ifa->ifa_index = (unsigned)ifindex; /* honoured with NETLINK_GET_STRICT_CHK */
	return talk(rt, nlh, addr_cb, &w);
}

/* "Already there" for an add and "not there" for a delete are success. */
static int addr_err(uint16_t type, int err)
{
	if ((type == RTM_NEWADDR && err == -EEXIST) ||
	    (type == RTM_DELADDR && err == -EADDRNOTAVAIL))
		return 0;
	return err;
}

/* Keeps the failure of the earliest request of the batch (local failures count at the
 * place of the request, so the order is that of the calls). */
static void batch_fail(struct rtnl *rt, uint32_t seq, int err)
{
	if (rt->batch_err && (int32_t)(seq - rt->batch_err_seq) >= 0)
		return;
	rt->batch_err = err;
	rt->batch_err_seq = seq;
}

/*
 * Sends the first @n requests of the batch buffer and reads their @n acks, recording
 * the first failure in rt->batch_err.
 */
static int batch_flush(struct rtnl *rt, size_t size, unsigned n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	const struct nlmsghdr *first = mnl_nlmsg_batch_head(rt->batch);
	const struct nlmsghdr *last = first;
	uint32_t seq0 = first->nlmsg_seq, span;
	unsigned acked = 0;
	int rest = (int)size;

	if (!n)
		return 0;
	/* sequence numbers rise but may skip those of requests sent meanwhile */
	for (const struct nlmsghdr *m = first; mnl_nlmsg_ok(m, rest); m = mnl_nlmsg_next(m, &rest))
		last = m;
	span = last->nlmsg_seq - seq0;
	if (mnl_socket_sendto(rt->sock, first, size) < 0)
		return -errno;
	for (unsigned reads = 0; acked < n && reads < MAX_READS; reads++) {
		ssize_t got = mnl_socket_recvfrom(rt->sock, buf, sizeof(buf));
		const struct nlmsghdr *nlh = (const void *)buf;
		int len = (int)got;

		if (got < 0)
			return -errno; /* -ENOBUFS: acks were lost */
		for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			int r;

			if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq - seq0 > span ||
			    mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
				continue;
			acked++;
			r = addr_err(e->msg.nlmsg_type, e->error);
			if (r < 0)
				batch_fail(rt, nlh->nlmsg_seq, r);
		}
	}
	return acked == n ? 0 : -EPROTO;
}

/* Queues the request just built at the batch's current position. */
static int batch_queue(struct rtnl *rt)
{
	int r;

	if (!mnl_nlmsg_batch_next(rt->batch)) {
		/* over BATCH_LIMIT: send what came before, keep the new one */
		r = batch_flush(rt, mnl_nlmsg_batch_size(rt->batch), rt->n_queued);
		mnl_nlmsg_batch_reset(rt->batch);
		rt->n_queued = 1;
		return r;
	}
	if (++rt->n_queued < rt->max_per_send)
		return 0;
	/* within BATCH_LIMIT, but more acks would not fit the receive buffer */
	r = batch_flush(rt, mnl_nlmsg_batch_size(rt->batch), rt->n_queued);
	mnl_nlmsg_batch_reset(rt->batch);
	rt->n_queued = 0;
	return r;
}

static int addr_change(struct rtnl *rt, uint16_t type, int ifindex, const struct kp_addr *a)
{
	char buf[MSG_MAX];
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;
	int r;

	if (!rt || ifindex <= 0 || !a || (a->family != AF_INET && a->family != AF_INET6))
		return -EINVAL;
	nlh = put_msg(rt, rt->batch ? mnl_nlmsg_batch_current(rt->batch) : buf, type,
		      NLM_F_ACK | (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0));
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)a->family;
	ifa->ifa_prefixlen = a->family == AF_INET6 ? 128 : 32;
	ifa->ifa_flags = a->family == AF_INET6 ? IFA_F_NODAD : 0;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	mnl_attr_put(nlh, IFA_LOCAL, addr_len(a->family), &a->v4); /* v4/v6 share */
	mnl_attr_put(nlh, IFA_ADDRESS, addr_len(a->family), &a->v4);
	if (!rt->batch)
		return addr_err(type, talk(rt, nlh, NULL, NULL));
	r = batch_queue(rt);
	if (r < 0) /* lost acks: count it after what was sent */
		batch_fail(rt, ++rt->seq, r);
	return 0;
}

int rtnl_addr_add(struct rtnl *rt, int ifindex, const struct kp_addr *a)
{
	return addr_change(rt, RTM_NEWADDR, ifindex, a);
}

int rtnl_addr_del(struct rtnl *rt, int ifindex, const struct kp_addr *a)
{
	return addr_change(rt, RTM_DELADDR, ifindex, a);
}

int rtnl_batch_begin(struct rtnl *rt)
{
	if (!rt || rt->batch)
		return -EINVAL;
	rt->batch = mnl_nlmsg_batch_start(rt->buf, BATCH_LIMIT);
	if (!rt->batch)
		return -ENOMEM;
	rt->n_queued = 0;
	rt->batch_err = 0;
	return 0;
}

int rtnl_batch_end(struct rtnl *rt)
{
	int r;

	if (!rt || !rt->batch)
		return -EINVAL;
	r = batch_flush(rt, mnl_nlmsg_batch_size(rt->batch), rt->n_queued);
	mnl_nlmsg_batch_stop(rt->batch);
	rt->batch = NULL;
	rt->n_queued = 0;
	if (rt->batch_err)
		r = rt->batch_err;
	rt->batch_err = 0;
	return r;
}
