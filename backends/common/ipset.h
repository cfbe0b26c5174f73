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
 * hash:ip,port,net: + addr2/cidr2; hash:net: addr/cidr). Addresses must have the set's
 * family (-EINVAL otherwise). kp_ipset_list() fills the fields of the set's type, with
 * cidr/cidr2 always set (32 or 128 for a full-length prefix, never 0). */
struct kp_ipset_entry {
	struct kp_addr addr;
	uint8_t proto;		/* IPPROTO_TCP/UDP/SCTP */
	uint16_t port;		/* host order */
	struct kp_addr addr2;
	uint8_t cidr;		/* hash:net prefix of addr; 0 means full length */
	uint8_t cidr2;		/* hash:ip,port,net prefix of addr2; 0 means full length */
};

struct kp_ipset_nl;

/* 0 or -errno (-EPROTONOSUPPORT when the kernel has no ip_set). One netlink socket in the
 * caller's network namespace; a handle is not thread-safe. */
int kp_ipset_open(struct kp_ipset_nl **ret);
void kp_ipset_close(struct kp_ipset_nl *nl); /* accepts NULL */

/**
 * kp_ipset_create - create set @name of @type ("hash:ip,port", ...) for @family (AF_INET /
 * AF_INET6; ignored for bitmap:port, which spans ports 0-65535)
 * Returns: 0 also when a set of that name and type (and family) exists already, whatever
 * its size or revision; -EEXIST when it exists with another type or family; -EINVAL for
 * a type not listed above; -EOPNOTSUPP when the kernel lacks the type; other -errno.
 */
int kp_ipset_create(struct kp_ipset_nl *nl, const char *name, const char *type, int family);
/* 0, or -ENOENT when missing; -EBUSY while an iptables rule references it. An empty
 * @name is -EINVAL (the kernel would destroy, or flush, every set). */
int kp_ipset_destroy(struct kp_ipset_nl *nl, const char *name);
int kp_ipset_flush(struct kp_ipset_nl *nl, const char *name);
/* Exchanges the contents/names of two sets of compatible types: -ENOENT when either is
 * missing, -EINVAL when the types or families differ. */
int kp_ipset_swap(struct kp_ipset_nl *nl, const char *a, const char *b);
/* Whether set @name exists. */
bool kp_ipset_exists(struct kp_ipset_nl *nl, const char *name);

/* Entry changes: adding an existing entry and deleting a missing one return 0; -ENOENT
 * when the set is missing, -EOPNOTSUPP when it has a type not listed above, -ENOSPC when
 * a hash set is full (maxelem 65536), -EINVAL for an entry the set rejects. The set's
 * type is looked up once and cached by name (create, destroy and swap through this
 * handle refresh it; a set recreated with another type behind our back is -EPROTO).
 * Batching as in link.h: between begin and end they only queue and return 0 (bad
 * arguments still -EINVAL); end sends the rest and returns 0 or the failure of the
 * earliest failing call; the others still run. Inside a batch create, destroy, flush,
 * swap and list return -EINVAL (they would overtake the queued changes). */
int kp_ipset_add(struct kp_ipset_nl *nl, const char *name, const struct kp_ipset_entry *e);
int kp_ipset_del(struct kp_ipset_nl *nl, const char *name, const struct kp_ipset_entry *e);
int kp_ipset_batch_begin(struct kp_ipset_nl *nl);
int kp_ipset_batch_end(struct kp_ipset_nl *nl);

/* Walks the entries of @name; @fn borrows the entry for the call. A non-zero return of @fn
 * stops the walk and is returned; otherwise 0, -ENOENT, or -errno. */
int kp_ipset_list(struct kp_ipset_nl *nl, const char *name,
		  int (*fn)(const struct kp_ipset_entry *e, void *userdata), void *userdata);

/* The kernel's index of set @name, for struct xt_set_info (getsockopt SO_IP_SET on a raw
 * socket in the caller's namespace: IP_SET_OP_VERSION, then IP_SET_OP_GET_BYNAME with
 * that version). 0, -ENOENT, -EPERM without CAP_NET_ADMIN, or -errno. */
int kp_ipset_index(const char *name, uint16_t *ret_index);

#endif
