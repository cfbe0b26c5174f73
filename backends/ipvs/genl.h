/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small client of the kernel's "IPVS" generic-netlink family (uapi linux/ip_vs.h),
 * built on libnl-genl-3: add, edit and delete virtual services and their destinations,
 * read them back with their counters, and set the protocol timeouts. Changes can be
 * queued and sent many messages per sendmsg() (the kernel handles each message of a
 * datagram in turn and acknowledges each), which is what makes programming 10k
 * services cheap; the first error of a batch is reported with the caller's cookie for
 * the failing operation, and the rest of the batch still runs.
 */
#ifndef KP_IPVS_GENL_H
#define KP_IPVS_GENL_H

#include <stdbool.h>
#include <stdint.h>

#include <kproxy/state.h>

/* A virtual service, identified by (family, protocol, addr, port); fwmark services are
 * not used. */
struct ipvs_svc {
	int family;		/* AF_INET or AF_INET6 (from addr.family) */
	uint8_t protocol;	/* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
	struct kp_addr addr;
	uint16_t port;		/* host order */
	char sched[16];		/* IP_VS_SCHEDNAME_MAXLEN: "rr", "lc", ... */
	uint32_t flags;		/* IP_VS_SVC_F_* (PERSISTENT, SCHED_SH_FALLBACK, ...); the
				 * kernel's HASHED bit is cleared when reading back */
	uint32_t timeout;	/* persistence timeout in seconds (with PERSISTENT) */
	uint32_t netmask;	/* persistence netmask: for IPv4 the mask in network byte
				 * order (0xffffffff for /32), for IPv6 the prefix length
				 * (128; the kernel refuses 0 or > 128 with -EINVAL even
				 * without PERSISTENT) */
};

/* A destination (real server) of a virtual service. */
struct ipvs_dest {
	struct kp_addr addr;	/* may differ in family from the service only with tunnels;
				 * we always use the service's family */
	uint16_t port;		/* host order */
	uint32_t fwd;		/* IP_VS_CONN_F_MASQ (forwarding method) */
	uint32_t weight;
	/* read back only (0 when writing) */
	uint32_t active_conns;
	uint32_t inact_conns;
	uint32_t persist_conns;
};

struct ipvs_nl;

/**
 * ipvs_nl_open - connect to the IPVS family of the caller's network namespace
 * Returns: 0 and *ret, -EPROTONOSUPPORT when the kernel has no IPVS (family not found
 * even after the kernel's module autoload), or another negative errno.
 */
int ipvs_nl_open(struct ipvs_nl **ret);
/* Closes; accepts NULL. */
void ipvs_nl_close(struct ipvs_nl *nl);

/* The IPVS version (e.g. 0x010201 for 1.2.1) and connection table size. */
int ipvs_nl_get_info(struct ipvs_nl *nl, uint32_t *ret_version, uint32_t *ret_conn_tab_size);

/*
 * Changes. Without a batch open each call sends one message and waits for its
 * acknowledgement: 0 or the kernel's negative errno. Observed on 6.1: -EEXIST for an
 * existing service or dest; -ESRCH for any change naming a missing service (del/edit
 * service, add/edit/del dest); -ENOENT for editing or deleting a missing dest and for an
 * unknown scheduler; -EINVAL for a dest address that is not unicast in the namespace.
 * -EINVAL without asking the kernel for bad arguments (family neither AF_INET nor
 * AF_INET6, svc->family not matching svc->addr.family, empty scheduler name, a dest of
 * the other family than the service).
 * Between ipvs_nl_batch_begin() and ipvs_nl_batch_end() the calls only queue (they return
 * 0, or -ENOMEM) and batch_end() sends them.
 */
int ipvs_nl_add_service(struct ipvs_nl *nl, const struct ipvs_svc *svc);
/* Changes scheduler, flags, timeout, netmask of an existing service. */
int ipvs_nl_edit_service(struct ipvs_nl *nl, const struct ipvs_svc *svc);
int ipvs_nl_del_service(struct ipvs_nl *nl, const struct ipvs_svc *svc);
int ipvs_nl_add_dest(struct ipvs_nl *nl, const struct ipvs_svc *svc, const struct ipvs_dest *d);
/* Changes weight / forwarding of an existing destination. */
int ipvs_nl_edit_dest(struct ipvs_nl *nl, const struct ipvs_svc *svc, const struct ipvs_dest *d);
int ipvs_nl_del_dest(struct ipvs_nl *nl, const struct ipvs_svc *svc, const struct ipvs_dest *d);

/*
 * Batches. @cookie is attached to each change queued after ipvs_nl_batch_cookie() until the
 * next call (0 at batch start). ipvs_nl_batch_end() sends everything queued, packing
 * messages into datagrams of up to about 64 KiB, reads every acknowledgement, and calls
 * @on_error (may be NULL) for each change the kernel refused, with its cookie, the
 * operation's name ("add service", "del dest", ...) and the negative errno.
 * Returns: 0 when every change succeeded, else the first failure's negative errno (also
 * -ENOMEM / socket errors). A batch is never left half-read: the socket is usable after.
 */
typedef void (*ipvs_nl_error_fn)(uint64_t cookie, const char *op, int err, void *userdata);
/* -EINVAL when a batch is already open. Not thread-safe: one ipvs_nl per thread. */
int ipvs_nl_batch_begin(struct ipvs_nl *nl);
void ipvs_nl_batch_cookie(struct ipvs_nl *nl, uint64_t cookie);
int ipvs_nl_batch_end(struct ipvs_nl *nl, ipvs_nl_error_fn on_error, void *userdata);

/*
 * Reading back. The callbacks get borrowed structs; a non-zero return stops the walk and
 * is returned. The dump is read to its end before the first callback runs, so callbacks
 * may call into @nl (list_dests from a list_services callback, queue changes). Reads may
 * be made while a batch is open; they do not see its queued changes. Listing the dests
 * of a missing service gives none and returns 0 (the kernel's dump is just empty).
 * Fwmark services are skipped.
 */
int ipvs_nl_list_services(struct ipvs_nl *nl,
			  int (*fn)(const struct ipvs_svc *svc, void *userdata), void *userdata);
int ipvs_nl_list_dests(struct ipvs_nl *nl, const struct ipvs_svc *svc,
		       int (*fn)(const struct ipvs_dest *d, void *userdata), void *userdata);
/* The one virtual server of @key's family, protocol, address and port (a GET_SERVICE
 * that is not a dump) in *ret; -ENOENT when the kernel has none. */
int ipvs_nl_get_service(struct ipvs_nl *nl, const struct ipvs_svc *key, struct ipvs_svc *ret);

/* Protocol timeouts in seconds (ipvsadm --set); 0 leaves that value unchanged. */
int ipvs_nl_set_timeouts(struct ipvs_nl *nl, uint32_t tcp, uint32_t tcp_fin, uint32_t udp);
int ipvs_nl_get_timeouts(struct ipvs_nl *nl, uint32_t *ret_tcp, uint32_t *ret_tcp_fin,
			 uint32_t *ret_udp);

#endif
