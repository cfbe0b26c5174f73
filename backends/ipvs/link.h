/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kube-ipvs0 dummy link through rtnetlink (libmnl): create it if missing, list the
 * addresses bound to it, add and remove addresses (IPv4 /32, IPv6 /128 with
 * IFA_F_NODAD), delete it. Binding a VIP makes the kernel treat it as local, so traffic
 * to it reaches IPVS on the INPUT hook. Address changes can be batched: many messages
 * per sendmsg(), every acknowledgement read.
 */
#ifndef KP_IPVS_LINK_H
#define KP_IPVS_LINK_H

#include <stdbool.h>

#include <kproxy/state.h>

struct rtnl;

/* Opens an rtnetlink socket in the caller's namespace. 0 or -errno. */
int rtnl_open(struct rtnl **ret);
void rtnl_close(struct rtnl *rt);	/* accepts NULL */

/**
 * rtnl_dummy_ensure - the ifindex of dummy link @name, created (type dummy, left down, as
 * kube-proxy leaves kube-ipvs0) when missing
 * Returns: 0 and *ret_ifindex, -EEXIST when @name exists and is not a dummy link, or
 * another negative errno (-EOPNOTSUPP when the kernel has no dummy driver).
 */
int rtnl_dummy_ensure(struct rtnl *rt, const char *name, int *ret_ifindex);
/* ifindex of @name, or -ENODEV. */
int rtnl_link_index(struct rtnl *rt, const char *name, int *ret_ifindex);
/* Deletes link @name; -ENODEV when it does not exist. */
int rtnl_link_del(struct rtnl *rt, const char *name);

/* Walks the addresses on @ifindex (both families); a non-zero return stops the walk. */
int rtnl_addr_list(struct rtnl *rt, int ifindex,
		   int (*fn)(const struct kp_addr *a, void *userdata), void *userdata);

/*
 * Address changes. Without a batch each call waits for its ack: 0 or negative errno
 * (adding an address already there and deleting one not there both return 0; a missing
 * @ifindex is -ENODEV).
 * Between begin and end they queue (and return 0; bad arguments still -EINVAL); end sends
 * and reads every ack; returns 0 or the failure of the earliest failing call (the rest
 * still run). Only address changes may be made inside a batch.
 */
int rtnl_addr_add(struct rtnl *rt, int ifindex, const struct kp_addr *a);
int rtnl_addr_del(struct rtnl *rt, int ifindex, const struct kp_addr *a);
int rtnl_batch_begin(struct rtnl *rt);
int rtnl_batch_end(struct rtnl *rt);

#endif
