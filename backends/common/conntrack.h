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

#include <kproxy/backend.h>
#include <kproxy/state.h>

/* One flush request: entries to @vip:@port/@proto whose reply comes from @endpoint
 * (@any_endpoint: whatever the reply source). @vip and @endpoint share a family. */
struct kp_ct_flush {
	struct kp_addr vip;	/* unspecified (family only): any address, as for NodePorts */
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

/*
 * The flushes a sync's @delta calls for, UDP only, done: entries to an endpoint that left
 * a service port, and entries to a service port that gets its first endpoints (created
 * while it had none, they would keep being refused; a port new at start counts only when
 * @after_start). @ipv6: IPv6 frontends are programmed. Returns the number of entries
 * deleted, or a negative errno.
 */
int kp_ct_flush_delta(const struct kp_delta *delta, bool after_start, bool ipv6);

#define KP_CT_N_BUCKETS 15		/* kube-proxy's: 1 ms x 2^k */

/* The reconciler's figures, per family [IPv4, IPv6]; zero-initialise. */
struct kp_ct_stats {
	uint64_t n_passes[2];
	uint64_t deleted[2];
	uint64_t buckets[2][KP_CT_N_BUCKETS];	/* pass durations, per bucket */
	double sum[2];
};

/*
 * kube-proxy's conntrack reconciler (pkg/proxy/conntrack/cleanup.go): reads every
 * conntrack entry of @family and deletes the UDP ones sent to a service port's IP:port,
 * or to any address on its NodePort, whose reply comes from none of the endpoints @want
 * has for it (also when it has none: such entries blackhole the traffic). Counts the pass
 * in @stats. Returns the number deleted, or a negative errno.
 */
int kp_ct_reconcile(const struct kp_state *want, int family, struct kp_ct_stats *stats);

/*
 * What a data plane does after a successful sync: the delta's flushes, and when no sync
 * had succeeded since its start (!@started), one reconcile pass per family. Failures are
 * logged at debug level under @who; a stale entry only costs a flow.
 */
void kp_ct_after_sync(struct kp_ctx *ctx, const char *who, const struct kp_state *want,
		      const struct kp_delta *delta, bool started, bool ipv6,
		      struct kp_ct_stats *stats);

/* Walks @stats as kube-proxy's kubeproxy_conntrack_reconciler_sync_duration_seconds
 * {ip_family} histogram and kubeproxy_conntrack_reconciler_deleted_entries_total
 * {ip_family} counter. Returns 0 or what @fn returned. */
int kp_ct_stats_report(const struct kp_ct_stats *stats, kp_stat_fn fn, void *userdata);

#endif
