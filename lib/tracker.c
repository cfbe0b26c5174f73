// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The change tracker: the set of services touched since the last sync (or all of them,
 * after a node change), and bringing the desired state of exactly those up to date from
 * the store before a sync.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctx-internal.h"

int kp_tracker_mark(struct kp_ctx *ctx, const char *svc_key)
{
	return kp_map_get(ctx->dirty, svc_key) ? 0 : kp_map_put(ctx->dirty, svc_key, ctx, NULL);
}

void kp_tracker_note_change(struct kp_ctx *ctx, bool endpoints, const char *svc_key)
{
	int64_t now = kp_wall_ms();

	ctx->n_changes[endpoints]++;
	ctx->last_queued_wall_ms = now;
	if (!ctx->oldest_pending_wall_ms)
		ctx->oldest_pending_wall_ms = now;
	/* a failed insert only undercounts the pending gauge */
	if (!kp_map_get(ctx->pending[endpoints], svc_key))
		kp_map_put(ctx->pending[endpoints], svc_key, ctx, NULL);
}

void kp_tracker_synced(struct kp_ctx *ctx)
{
	ctx->oldest_pending_wall_ms = 0;
	for (int i = 0; i < 2; i++) {
		struct kp_map *m = kp_map_new();

		if (!m)
			continue;	/* keeps the old set: the gauge overcounts */
		kp_map_free(ctx->pending[i]);
		ctx->pending[i] = m;
	}
}

static int update_service(struct kp_ctx *ctx, const char *svc_key)
{
	const struct kp_obj *slices[64], **v = slices;
	const struct objlist *l = kp_map_get(ctx->svc_slices, svc_key);
	const struct kp_obj *svc;
	struct kp_node_info node = {
		.name = ctx->node_name,
		.zone = ctx->node_zone,
		.nodeport_addrs = ctx->np_addrs,
		.n_nodeport_addrs = ctx->n_np_addrs,
		.nodeport_any_local = ctx->np_any_local,
	};
	size_t n = 0;
	char *skey = kp_asprintf("S/%s", svc_key);
	int r;

	if (!skey)
		return -ENOMEM;
	svc = kp_map_get(ctx->objs, skey);
	free(skey);
	if (l && l->n > KP_ARRAY_SIZE(slices) && !(v = malloc(l->n * sizeof(*v))))
		return -ENOMEM;
	/* EndpointSlices; legacy Endpoints only when the service has no slice at all */
	for (size_t i = 0; l && i < l->n; i++)
		if (l->v[i]->kind == KP_OBJ_SLICE)
			v[n++] = l->v[i];
	for (size_t i = 0; l && !n && i < l->n; i++)
		if (l->v[i]->kind == KP_OBJ_ENDPOINTS)
			v[n++] = l->v[i];
	r = kp_state_update_service(ctx->state, ctx->delta, svc_key, svc, v, n, &node);
	if (v != slices)
		free(v);
	return r;
}

int kp_tracker_update_state(struct kp_ctx *ctx)
{
	struct kp_map_iter it = { 0 };
	const char *key;
	void *v;
	int r = 0;

	if (ctx->all_dirty) {
		/* every service known to the store or to the state */
		while (kp_map_next(ctx->objs, &it, NULL, &v))
			if (((struct kp_obj *)v)->service)	/* not a ServiceCIDR */
				r |= kp_tracker_mark(ctx, ((struct kp_obj *)v)->service);
		memset(&it, 0, sizeof(it));
		ctx->all_dirty = false;
	}
	while (!r && kp_map_next(ctx->dirty, &it, &key, NULL)) {
		r = update_service(ctx, key);
		if (!r)
			kp_map_del(ctx->dirty, key);
	}
	kp_map_compact(ctx->dirty);	/* the first load's slots would be walked every sync */
	return r;
}

KP_EXPORT bool kp_ctx_has_pending(const struct kp_ctx *ctx)
{
	return ctx && (ctx->all_dirty || kp_map_size(ctx->dirty) ||
		       kp_delta_get_size(ctx->delta) || ctx->need_full);
}
