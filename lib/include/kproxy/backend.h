/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backend contract: one ops table per data plane. The core calls init once, sync
 * whenever the desired state changed (and periodically with a full delta), dump when
 * someone asks what is programmed, cleanup on request, destroy at the end.
 */
#ifndef KPROXY_BACKEND_H
#define KPROXY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kproxy/state.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kp_ctx;

/* Options handed to a backend's init. Unset strings are NULL, unset numbers 0. */
struct kp_config {
	const char *cluster_cidr;	/* --cluster-cidr, comma separated, or NULL */
	bool masquerade_all;		/* --masquerade-all */
	const char *scheduler;		/* --ipvs-scheduler */
	const char *extra;		/* backend specific options, or NULL */
};

/* Per-endpoint figures a backend that balances in the kernel can report (IPVS). */
struct kp_dest_stats {
	uint32_t weight;		/* 0: draining, gets no new connections */
	uint32_t active_conns;
	uint32_t inactive_conns;
	uint32_t persist_conns;		/* persistence templates pointing at it */
};

/* One programmed (frontend, service port) pair, as a backend reports it. */
struct kp_dump_entry {
	const char *ns;				/* service namespace */
	const char *name;			/* service name */
	const char *port_name;			/* "" for unnamed ports */
	enum kp_protocol protocol;
	enum kp_frontend_kind kind;
	struct kp_addr vip;
	uint16_t port;
	const struct kp_endpoint *endpoints;	/* borrowed for the call */
	size_t n_endpoints;
	const char *detail;			/* backend specific text (chain, scheduler), or NULL */
	/* parallel to @endpoints, or NULL when the backend has no such figures; added in
	 * 0.x after @detail, so read it only from a library that sets it */
	const struct kp_dest_stats *dest_stats;
};

/**
 * kp_dump_fn - receives one dump entry; a non-zero return stops the dump
 */
typedef int (*kp_dump_fn)(const struct kp_dump_entry *entry, void *userdata);

/* One sample of a data plane's own counters, as Prometheus names them (kproxyd's
 * /metrics prints them). Strings are borrowed for the call. */
struct kp_stat {
	const char *name;		/* "kproxyd_dpdk_rx_packets_total" */
	const char *help;		/* one line */
	const char *type;		/* "counter" or "gauge" */
	const char *labels;		/* "port=\"net_tap0\"", or "" */
	double value;
};

/**
 * kp_stat_fn - receives one sample; samples of one name come together. A non-zero
 * return stops the walk.
 */
typedef int (*kp_stat_fn)(const struct kp_stat *stat, void *userdata);

struct kp_backend_ops {
	const char *name;	/* unique, e.g. "iptables" */
	/**
	 * init - set up the data plane's handles (sockets, ports); must not program rules
	 * Returns 0 and sets *ret_priv, or a negative errno.
	 */
	int (*init)(struct kp_ctx *ctx, const struct kp_config *cfg, void **ret_priv);
	/**
	 * sync - make the data plane match @want; @delta says what changed since the last
	 * successful sync (all of it when kp_delta_is_full()). Idempotent; batched; on error
	 * leaves what was programmed before in place. Returns 0 or a negative errno.
	 */
	int (*sync)(void *priv, const struct kp_state *want, const struct kp_delta *delta);
	/**
	 * dump - report what is really programmed, read back from the data plane where it
	 * can be. May be NULL. Returns 0, the callback's non-zero value, or a negative errno.
	 */
	int (*dump)(void *priv, kp_dump_fn fn, void *userdata);
	/** cleanup - remove everything this backend ever installed; nothing else. May be NULL. */
	int (*cleanup)(void *priv);
	/** destroy - free @priv; leaves the data plane as it is. May be NULL. */
	void (*destroy)(void *priv);
	/**
	 * stats - the data plane's own counters (packets, drops, flows), for metrics. May be
	 * NULL. Added after @destroy: an embedder's table must leave it zero (designated
	 * initialisers do). Returns 0, the callback's non-zero value, or a negative errno.
	 */
	int (*stats)(void *priv, kp_stat_fn fn, void *userdata);
};

/**
 * kp_backend_register - make a backend selectable by name in this context
 * @ctx: context
 * @ops: the ops table; borrowed, must outlive @ctx
 * Returns: 0, -EEXIST if the name is taken, -EINVAL, -ENOMEM.
 */
int kp_backend_register(struct kp_ctx *ctx, const struct kp_backend_ops *ops);

/**
 * kp_ctx_backend_stats - walk the selected data plane's own counters
 * @ctx: context
 * @fn: called for each sample
 * Returns: 0 (also when the data plane has none), what @fn returned, -EINVAL, or the
 * data plane's negative errno.
 */
int kp_ctx_backend_stats(struct kp_ctx *ctx, kp_stat_fn fn, void *userdata);

#ifdef __cplusplus
}
#endif
#endif
