// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The context's lifetime and its counters: kp_ctx_new() makes the store's maps, the
 * desired state and its delta, lists the built-in backends and selects dryrun;
 * kp_ctx_free() gives all of it back; kp_ctx_get_counts() reads the counters the other
 * concerns keep. The struct itself is in ctx-internal.h, shared with those files.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctx-internal.h"

KP_EXPORT struct kp_ctx *kp_ctx_new(void)
{
	struct kp_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->diags_tail = &ctx->diags;
	ctx->objs = kp_map_new();
	ctx->sources = kp_map_new();
	ctx->svc_slices = kp_map_new();
	ctx->dirty = kp_map_new();
	ctx->state = kp_state_new();
	ctx->delta = kp_delta_new();
	ctx->pending[0] = kp_map_new();
	ctx->pending[1] = kp_map_new();
	if (!ctx->pending[0] || !ctx->pending[1] || !ctx->objs || !ctx->sources || !ctx->svc_slices || !ctx->dirty || !ctx->state ||
	    !ctx->delta) {
		kp_ctx_free(ctx);
		return NULL;
	}
	kp_delta_bind(ctx->delta, ctx->state);
	ctx->min_sync_ms = 1000;
	ctx->sync_period_ms = 30000;
	ctx->last_sync_ms = ctx->last_full_ms = INT64_MIN;
	ctx->start_wall_ms = kp_wall_ms();
	ctx->backends[ctx->n_backends++] = &kp_backend_dryrun;
	ctx->backends[ctx->n_backends++] = &kp_backend_iptables;
	ctx->backends[ctx->n_backends++] = &kp_backend_ipvs;
	ctx->backends[ctx->n_backends++] = &kp_backend_userspace;
	ctx->backends[ctx->n_backends++] = &kp_backend_nftables;
	for (size_t i = 0; kp_extra_backends[i] && ctx->n_backends < MAX_BACKENDS; i++)
		ctx->backends[ctx->n_backends++] = kp_extra_backends[i];
	if (kp_backend_dryrun.init(ctx, NULL, &ctx->be_priv) < 0) {
		kp_ctx_free(ctx);
		return NULL;
	}
	ctx->be = &kp_backend_dryrun;
	ctx->need_full = true;
	return ctx;
}

KP_EXPORT void kp_ctx_free(struct kp_ctx *ctx)
{
	struct kp_map_iter it = { 0 };
	void *v;

	if (!ctx)
		return;
	if (ctx->be && ctx->be->destroy)
		ctx->be->destroy(ctx->be_priv);
	kp_opts_free(ctx->be_opts);
	kp_ctx_drain_diags(ctx, NULL, NULL);
	while (ctx->objs && kp_map_next(ctx->objs, &it, NULL, &v))
		kp_obj_free(v);
	memset(&it, 0, sizeof(it));
	while (ctx->sources && kp_map_next(ctx->sources, &it, NULL, &v)) {
		struct source *s = v;

		kp_map_free(s->keys);
		free(s->name);
		free(s);
	}
	memset(&it, 0, sizeof(it));
	while (ctx->svc_slices && kp_map_next(ctx->svc_slices, &it, NULL, &v)) {
		free(((struct objlist *)v)->v);
		free(v);
	}
	free(ctx->triggers);
	free(ctx->latencies);
	kp_map_free(ctx->objs);
	kp_map_free(ctx->sources);
	kp_map_free(ctx->svc_slices);
	kp_map_free(ctx->dirty);
	kp_map_free(ctx->pending[0]);
	kp_map_free(ctx->pending[1]);
	kp_delta_free(ctx->delta);
	kp_state_free(ctx->state);
	free(ctx->node_name);
	free(ctx->node_zone);
	free(ctx->np_addrs);
	free(ctx->scidrs);
	free(ctx);
}

KP_EXPORT int kp_ctx_get_counts(const struct kp_ctx *ctx, struct kp_counts *ret)
{
	if (!ctx || !ret)
		return -EINVAL;
	*ret = (struct kp_counts){
		.n_services = ctx->n_kind[KP_OBJ_SERVICE],
		.n_slices = ctx->n_kind[KP_OBJ_SLICE],
		.n_endpoints = ctx->n_kind[KP_OBJ_ENDPOINTS],
		.n_svc_ports = kp_state_get_size(ctx->state),
		.n_rejected = ctx->n_rejected,
		.n_syncs = ctx->n_syncs,
		.n_sync_errors = ctx->n_sync_errors,
		.last_sync_result = ctx->last_sync_result,
		.last_sync_ms = ctx->last_sync_wall_ms,
		.last_success_ms = ctx->last_success_wall_ms,
		.n_service_changes = ctx->n_changes[0],
		.n_endpoint_changes = ctx->n_changes[1],
	};
	return 0;
}

KP_EXPORT int kp_ctx_get_sync_info(const struct kp_ctx *ctx, struct kp_sync_info *ret, size_t size)
{
	struct kp_sync_info info;

	if (!ctx || !ret || size < sizeof(int64_t))
		return -EINVAL;
	info = (struct kp_sync_info){
		.oldest_pending_ms = ctx->oldest_pending_wall_ms,
		.last_queued_ms = ctx->last_queued_wall_ms,
		.n_services_pending = kp_map_size(ctx->pending[0]),
		.n_endpoints_pending = kp_map_size(ctx->pending[1]),
		.last_sync_full = ctx->last_sync_full,
	};
	/* a caller built against an older header gets the fields it knows */
	memcpy(ret, &info, size < sizeof(info) ? size : sizeof(info));
	return 0;
}
