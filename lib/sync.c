// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sync runner: kp_ctx_sync() brings the desired state up to date (change tracker)
 * and hands it, with its delta, to the backend; kp_ctx_run_due() decides when, coalescing
 * bursts (min-sync-period) and resyncing in full periodically (sync-period).
 */
#include <errno.h>

#include "ctx-internal.h"

KP_EXPORT int kp_ctx_sync(struct kp_ctx *ctx, bool full)
{
	int r;

	if (!ctx)
		return -EINVAL;
	ctx->err[0] = '\0';
	r = kp_tracker_update_state(ctx);
	if (r < 0)
		return kp_ctx_set_error(ctx, r, "computing the desired state: %s", kp_strerror(r));
	full = full || ctx->need_full;
	kp_delta_set_full(ctx->delta, full);
	ctx->n_syncs++;
	ctx->last_sync_wall_ms = kp_wall_ms();
	ctx->last_sync_full = full;
	r = kp_ctx_call_result(ctx, ctx->be->sync(ctx->be_priv, ctx->state, ctx->delta));
	ctx->last_sync_result = r;
	if (r < 0) {
		ctx->n_sync_errors++;
		/* the data plane is behind from now on, changes or not */
		if (!ctx->oldest_pending_wall_ms)
			ctx->oldest_pending_wall_ms = ctx->last_sync_wall_ms;
		return r;
	}
	kp_delta_clear(ctx->delta);
	ctx->need_full = false;
	ctx->last_success_wall_ms = ctx->last_sync_wall_ms;
	kp_tracker_synced(ctx);
	kp_latency_record(ctx);
	return 0;
}

KP_EXPORT const struct kp_state *kp_ctx_get_state(const struct kp_ctx *ctx)
{
	return ctx ? ctx->state : NULL;
}

KP_EXPORT int kp_ctx_set_sync_periods(struct kp_ctx *ctx, uint32_t min_ms, uint32_t period_ms)
{
	if (!ctx)
		return -EINVAL;
	ctx->min_sync_ms = min_ms;
	ctx->sync_period_ms = period_ms;
	return 0;
}

KP_EXPORT int kp_ctx_run_due(struct kp_ctx *ctx, int64_t now_ms, int64_t *ret_wait_ms)
{
	int64_t earliest, next_full, wait;
	bool full, pending;
	int r = 0;

	if (!ctx || !ret_wait_ms)
		return -EINVAL;
	earliest = ctx->last_sync_ms == INT64_MIN ? now_ms : ctx->last_sync_ms + ctx->min_sync_ms;
	next_full = ctx->last_full_ms == INT64_MIN ? now_ms :
		    ctx->sync_period_ms ? ctx->last_full_ms + ctx->sync_period_ms : INT64_MAX;
	full = now_ms >= next_full;
	pending = kp_ctx_has_pending(ctx);
	if ((pending || full) && now_ms >= earliest) {
		r = kp_ctx_sync(ctx, full);
		ctx->last_sync_ms = now_ms;
		if (!r && full)
			ctx->last_full_ms = now_ms;
		if (!r)
			r = 1;
		earliest = now_ms + ctx->min_sync_ms;
		next_full = ctx->last_full_ms == INT64_MIN ? earliest :
			    ctx->sync_period_ms ? ctx->last_full_ms + ctx->sync_period_ms :
						  INT64_MAX;
		pending = kp_ctx_has_pending(ctx);
	}
	if (pending)
		wait = earliest;
	else if (next_full != INT64_MAX)
		wait = next_full > earliest ? next_full : earliest;
	else
		wait = INT64_MIN;
	*ret_wait_ms = wait == INT64_MIN ? -1 : wait > now_ms ? wait - now_ms : 0;
	return r;
}
