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
 * Batching (../common/nlsock.c): requests queue in a buffer and go many per sendmsg() (up
 * to KP_NLSOCK_BATCH_LIMIT bytes, and no more than the receive buffer can hold acks for:
 * each ack is its own skb); rtnetlink handles the messages of a datagram in turn and acks
 * each (NLM_F_ACK; small error acks with NETLINK_CAP_ACK, which still echo the request's
 * header so we know whether a failure was an add or a delete).
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "link.h"
#include "../common/nlsock.h"

#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

#define MSG_MAX KP_NLSOCK_MSG_MAX /* bigger than any request we build */

struct rtnl {
	struct kp_nlsock ns; /* the socket, requests and batches */
};

/* "Already there" for an add and "not there" for a delete are success. */
static int addr_err(uint16_t type, int err)
{
	if ((type == RTM_NEWADDR && err == -EEXIST) ||
	    (type == RTM_DELADDR && err == -EADDRNOTAVAIL))
		return 0;
	return err;
}

/* The ack of a batched address change. */
static int batch_ack(int error, uint16_t req_type)
{
	return addr_err(req_type, error);
}

int rtnl_open(struct rtnl **ret)
{
	struct rtnl *rt;
	int one = 1, r;

	if (!ret)
		return -EINVAL;
	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	/* batched acks must echo the request's header: add or delete */
	r = kp_nlsock_open(&rt->ns, NETLINK_ROUTE, batch_ack, sizeof(struct nlmsgerr));
	if (r < 0) {
		free(rt);
		return r;
	}
	/* best effort: filtered address dumps, and we filter again */
	mnl_socket_setsockopt(rt->ns.sock, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	*ret = rt;
	return 0;
}

void rtnl_close(struct rtnl *rt)
{
	if (!rt)
		return;
	kp_nlsock_close(&rt->ns);
	free(rt);
}

/* ---- requests and answers ---- */

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
	struct nlmsghdr *nlh = kp_nlsock_put(&rt->ns, buf, RTM_GETLINK, NLM_F_ACK);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	int r;

	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	memset(li, 0, sizeof(*li));
	r = kp_nlsock_talk(&rt->ns, nlh, link_cb, li);
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

	if (!rt || !ifname_ok(name) || !ret_ifindex || rt->ns.batch)
		return -EINVAL;
	nlh = kp_nlsock_put(&rt->ns, buf, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO | NLA_F_NESTED);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "dummy");
	mnl_attr_nest_end(nlh, info);
	r = kp_nlsock_talk(&rt->ns, nlh, NULL, NULL);
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

	if (!rt || !ifname_ok(name) || rt->ns.batch)
		return -EINVAL;
	nlh = kp_nlsock_put(&rt->ns, buf, RTM_DELLINK, NLM_F_ACK);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return kp_nlsock_talk(&rt->ns, nlh, NULL, NULL);
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

	if (!rt || ifindex <= 0 || !fn || rt->ns.batch)
		return -EINVAL;
	nlh = kp_nlsock_put(&rt->ns, buf, RTM_GETADDR, NLM_F_DUMP);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_UNSPEC;
	ifa->ifa_index = (unsigned)ifindex; /* honoured with NETLINK_GET_STRICT_CHK */
	return kp_nlsock_talk(&rt->ns, nlh, addr_cb, &w);
}

static int addr_change(struct rtnl *rt, uint16_t type, int ifindex, const struct kp_addr *a)
{
	char buf[MSG_MAX];
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;

	if (!rt || ifindex <= 0 || !a || (a->family != AF_INET && a->family != AF_INET6))
		return -EINVAL;
	nlh = kp_nlsock_put(&rt->ns, kp_nlsock_msg_buf(&rt->ns, buf), type,
			    NLM_F_ACK | (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0));
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)a->family;
	ifa->ifa_prefixlen = a->family == AF_INET6 ? 128 : 32;
	ifa->ifa_flags = a->family == AF_INET6 ? IFA_F_NODAD : 0;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	mnl_attr_put(nlh, IFA_LOCAL, addr_len(a->family), &a->v4); /* v4/v6 share */
	mnl_attr_put(nlh, IFA_ADDRESS, addr_len(a->family), &a->v4);
	if (!rt->ns.batch)
		return addr_err(type, kp_nlsock_talk(&rt->ns, nlh, NULL, NULL));
	kp_nlsock_batch_queue(&rt->ns); /* a batch reports its first failure at the end */
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
	return rt ? kp_nlsock_batch_begin(&rt->ns) : -EINVAL;
}

int rtnl_batch_end(struct rtnl *rt)
{
	return rt ? kp_nlsock_batch_end(&rt->ns) : -EINVAL;
}
