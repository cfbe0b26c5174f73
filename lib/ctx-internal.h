/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The context's insides, shared by the lib/ files that each own one concern of it
 * (ctx.c lifetime and counters, log.c the log sink and diagnostics, node.c node identity,
 * store.c the object store, tracker.c the change tracker, sync.c the sync runner,
 * registry.c the backend registry, latency.c the programming-latency metric): the
 * struct itself, and the calls those files make into each other. Never installed.
 */
#ifndef KP_CTX_INTERNAL_H
#define KP_CTX_INTERNAL_H

#include "internal.h"

#define MAX_BACKENDS 16


struct diag_node {
	struct diag_node *next;
	char *source, *kind, *ns, *name, *field, *msg;
};

struct objlist {			/* the slices and Endpoints of one service */
	struct kp_obj **v;
	size_t n, cap;
};

struct source {
	char *name;
	struct kp_map *keys;		/* object key -> struct kp_obj */
};

struct kp_ctx {
	kp_log_fn log_fn;
	void *log_userdata;
	enum kp_log_level log_level;

	struct diag_node *diags, **diags_tail;
	uint64_t n_rejected;

	char *node_name;
	char *node_zone;
	struct kp_addr *np_addrs;
	size_t n_np_addrs;
	bool np_any_local[2];		/* NodePorts on every local address: IPv4, IPv6 */

	struct kp_map *objs;		/* object key -> struct kp_obj */
	struct kp_map *sources;		/* source name -> struct source */
	struct kp_map *svc_slices;	/* "ns/name" -> struct objlist */
	struct kp_map *dirty;		/* "ns/name" of services to recompute */
	bool all_dirty;
	size_t n_kind[_KP_OBJ_MAX];

	struct kp_state *state;
	struct kp_delta *delta;

	const struct kp_backend_ops *backends[MAX_BACKENDS];
	size_t n_backends;
	const struct kp_backend_ops *be;
	void *be_priv;
	struct kp_opts *be_opts;	/* the options @be was initialised with */
	bool need_full;
	/* ServiceCIDR objects' ranges, made again from the store when stale */
	struct kp_cidr *scidrs;
	size_t n_scidrs;
	bool scidrs_stale;
	char err[512];			/* why the last failed call failed, "" */

	uint32_t min_sync_ms, sync_period_ms;
	int64_t last_sync_ms, last_full_ms;	/* runner clock; INT64_MIN: never */
	bool retry;
	uint64_t n_syncs, n_sync_errors;
	uint64_t n_changes[2];		/* services, endpoint objects */
	int64_t last_success_wall_ms;
	int last_sync_result;
	int64_t last_sync_wall_ms;
	bool last_sync_full;		/* the last sync attempted was a full one */
	int64_t start_wall_ms;		/* when the context was made: older triggers are not timed */
	int64_t oldest_pending_wall_ms;	/* the first change not yet programmed, or the first
					 * failed sync since the last good one; 0: none */
	int64_t last_queued_wall_ms;	/* the last change, 0: none */
	struct kp_map *pending[2];	/* "ns/name" of services whose Service, endpoints changed
					 * since the last successful sync */
	/* endpoint change trigger times not yet programmed, and the programming latencies
	 * (seconds) of those a sync has programmed, not yet drained */
	int64_t *triggers;
	size_t n_triggers, cap_triggers;
	double *latencies;
	size_t n_latencies, cap_latencies;
};

#define MAX_TRIGGERS 100000	/* beyond this, changes are not timed (memory bound) */

/* tracker.c: marks the service "ns/name" changed. Returns 0 or -ENOMEM. */
int kp_tracker_mark(struct kp_ctx *ctx, const char *svc_key);
/* tracker.c: the Service (@endpoints false) or an endpoints object of the service
 * "ns/name" changed: counted, and timed for health, until a sync programs it. */
void kp_tracker_note_change(struct kp_ctx *ctx, bool endpoints, const char *svc_key);
/* tracker.c: a sync programmed every change noted so far. */
void kp_tracker_synced(struct kp_ctx *ctx);
/* tracker.c: recomputes the desired state of every changed service. 0 or -ENOMEM. */
int kp_tracker_update_state(struct kp_ctx *ctx);

/* registry.c: a failing call that said nothing more is explained by its errno. */
int kp_ctx_call_result(struct kp_ctx *ctx, int r);

/* latency.c: an endpoint object with a new trigger time arrived (timed until synced). */
void kp_latency_note_trigger(struct kp_ctx *ctx, int64_t trigger_ms);
/* latency.c: a sync succeeded: every pending trigger time is now programmed. */
void kp_latency_record(struct kp_ctx *ctx);
/* latency.c: CLOCK_REALTIME in milliseconds. */
int64_t kp_wall_ms(void);
#endif
