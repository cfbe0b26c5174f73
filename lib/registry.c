// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The backend registry: the data planes a context knows (built in, or registered by an
 * embedder), selecting and initialising one with its options (struct kp_config), and the
 * calls that go to the selected one outside a sync: dump, stats, cleanup.
 */
#include <errno.h>
#include <string.h>

#include "ctx-internal.h"

static const struct kp_backend_ops *backend_find(const struct kp_ctx *ctx, const char *name)
{
	for (size_t i = 0; i < ctx->n_backends; i++)
		if (strcmp(ctx->backends[i]->name, name) == 0)
			return ctx->backends[i];
	return NULL;
}

KP_EXPORT int kp_backend_register(struct kp_ctx *ctx, const struct kp_backend_ops *ops)
{
	if (!ctx || !ops || !ops->name || !*ops->name || !ops->init || !ops->sync)
		return -EINVAL;
	if (backend_find(ctx, ops->name))
		return -EEXIST;
	if (ctx->n_backends == MAX_BACKENDS)
		return -ENOMEM;
	ctx->backends[ctx->n_backends++] = ops;
	return 0;
}

KP_EXPORT int kp_ctx_set_backend(struct kp_ctx *ctx, const char *name,
				 const struct kp_config *cfg)
{
	static const struct kp_config no_cfg;
	const struct kp_backend_ops *ops;
	void *priv = NULL;
	int r;

	if (!ctx || !name)
		return -EINVAL;
	ops = backend_find(ctx, name);
	if (!ops)
		return -ENOENT;
	r = ops->init(ctx, cfg ? cfg : &no_cfg, &priv);
	if (r < 0)
		return r;
	if (ctx->be->destroy)
		ctx->be->destroy(ctx->be_priv);
	ctx->be = ops;
	ctx->be_priv = priv;
	ctx->need_full = true;
	return 0;
}

KP_EXPORT const char *kp_ctx_get_backend_name(const struct kp_ctx *ctx)
{
	return ctx ? ctx->be->name : NULL;
}

KP_EXPORT int kp_ctx_dump(struct kp_ctx *ctx, kp_dump_fn fn, void *userdata)
{
	if (!ctx || !fn)
		return -EINVAL;
	if (!ctx->be->dump)
		return -EOPNOTSUPP;
	return ctx->be->dump(ctx->be_priv, fn, userdata);
}

KP_EXPORT int kp_ctx_backend_stats(struct kp_ctx *ctx, kp_stat_fn fn, void *userdata)
{
	if (!ctx || !fn)
		return -EINVAL;
	return ctx->be && ctx->be->stats ? ctx->be->stats(ctx->be_priv, fn, userdata) : 0;
}

KP_EXPORT int kp_ctx_cleanup(struct kp_ctx *ctx)
{
	if (!ctx)
		return -EINVAL;
	ctx->need_full = true;
	return ctx->be->cleanup ? ctx->be->cleanup(ctx->be_priv) : 0;
}
