/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Flushing stale conntrack entries through ctnetlink (libmnl), as kube-proxy does for
 * UDP services: when an endpoint goes away its entries would keep sending clients to
 * it, and when a service gets its first endpoint, entries created while it had none
 * would keep being refused.
 */
#ifndef KP_CONNTRACK_H
#define KP_CONNTRACK_H

#include <stdbool.h>
#include <stdint.h>

#include <kproxy/state.h>

/* One flush request: entries to @vip:@port/@proto whose reply comes from @endpoint
 * (@any_endpoint: whatever the reply source). @vip and @endpoint share a family. */
struct kp_ct_flush {
	struct kp_addr vip;
	uint16_t port;
	uint8_t proto;		/* IPPROTO_UDP, ... */
	bool any_endpoint;
	struct kp_addr endpoint;
};

/*
 * Deletes the conntrack entries (IPv4 and IPv6) matching any of @n requests.
 * Returns the number of entries deleted, or a negative errno.
 */
int kp_ct_flush(const struct kp_ct_flush *req, size_t n);

#endif
