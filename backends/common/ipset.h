/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small ipset client over nfnetlink (libmnl; uapi linux/netfilter/ipset/ip_set.h): create
 * a set if missing (kernel's own revision of the type), add and delete entries (batched:
 * many messages per sendmsg, every ack read), list a set's entries, flush, swap and
 * destroy, and the set's index for the iptables "set" match. Only the types kproxy
 * uses: hash:ip,port, hash:ip,port,ip, hash:ip,port,net, hash:net, bitmap:port.
 */
#ifndef KP_IPSET_H
#define KP_IPSET_H

#include <stdbool.h>
#include <stdint.h>

#include <kproxy/state.h>

/* One entry; the fields a set's type does not use are ignored (bitmap:port: port only,
 * with proto ignored; hash:ip,port: addr, proto, port; hash:ip,port,ip: + addr2;
 * hash:ip,port,net: + addr2/cidr2; hash:net: addr/cidr). */
struct ipset_entry {
	struct kp_addr addr;
	uint8_t proto;		/* IPPROTO_TCP/UDP/SCTP */
	uint16_t port;		/* host order */
	struct kp_addr addr2;
	uint8_t cidr;		/* hash:net prefix of addr; 0 means full length */
	uint8_t cidr2;		/* hash:ip,port,net prefix of addr2; 0 means full length */
};

struct ipset_nl;

/* 0 or -errno (-EPROTONOSUPPORT when the kernel has no ip_set). */
int ipset_open(struct ipset_nl **ret);
void ipset_close(struct ipset_nl *nl);	/* accepts NULL */

/**
 * ipset_create - create set @name of @type ("hash:ip,port", ...) for @family (AF_INET /
 * AF_INET6; ignored for bitmap:port, which spans ports 0-65535)
 * Returns: 0 also when a set of that name and type exists already; -EEXIST when it exists
 * with another type; other negative errno.
 */
int ipset_create(struct ipset_nl *nl, const char *name, const char *type, int family);
/* 0, or -ENOENT when missing; -EBUSY while an iptables rule references it. */
int ipset_destroy(struct ipset_nl *nl, const char *name);
int ipset_flush(struct ipset_nl *nl, const char *name);
/* Exchanges the contents/names of two sets of compatible types. */
int ipset_swap(struct ipset_nl *nl, const char *a, const char *b);
/* Whether set @name exists. */
bool ipset_exists(struct ipset_nl *nl, const char *name);

/* Entry changes: adding an existing entry and deleting a missing one return 0. Batching as
 * in link.h: between begin and end they only queue; end returns 0 or the first failure. */
int ipset_add(struct ipset_nl *nl, const char *name, const struct ipset_entry *e);
int ipset_del(struct ipset_nl *nl, const char *name, const struct ipset_entry *e);
int ipset_batch_begin(struct ipset_nl *nl);
int ipset_batch_end(struct ipset_nl *nl);

/* Walks the entries of @name (family from the set); non-zero return stops the walk. */
int ipset_list(struct ipset_nl *nl, const char *name,
	       int (*fn)(const struct ipset_entry *e, void *userdata), void *userdata);

/* The kernel's index of set @name, for struct xt_set_info (getsockopt SO_IP_SET,
 * IP_SET_OP_GET_BYNAME). 0 or -ENOENT / -errno. */
int ipset_index(const char *name, uint16_t *ret_index);

#endif
