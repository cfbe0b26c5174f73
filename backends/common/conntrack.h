/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Flushing stale conntrack entries through ctnetlink (libmnl), as kube-proxy does for
 * UDP services: when an endpoint goes away its entries would keep sending clients to
 * it, and when a service gets its first endpoint, entries created while it had none
 * would keep being refused.
 */
#ifndef KP_CONNTRACK_H
#define KP_CONNTRACK_H

#include <stdint.h>
#include <netinet/in.h>

/* One flush request: entries to @vip:@port/@proto whose reply comes from @endpoint
 * (endpoint 0.0.0.0: whatever the reply source). */
struct kp_ct_flush {
	struct in_addr vip;
	uint16_t port;
	uint8_t proto;		/* IPPROTO_UDP, ... */
	struct in_addr endpoint;
};

/*
 * Deletes the IPv4 conntrack entries matching any of @n requests.
 * Returns the number of entries deleted, or a negative errno.
 */
int kp_ct_flush(const struct kp_ct_flush *req, size_t n);

#endif
