// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The backend registry: the data planes a context knows (built in, or registered by an
 * embedder), selecting and initialising one with its options (checked against its option
 * table by options.c), the errors its calls leave (kp_ctx_get_error()), and the calls
 * that go to the selected one outside a sync: dump, stats, cleanup.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctx-internal.h"

KP_EXPORT const struct kp_backend_ops *kp_backend_find(const struct kp_ctx *ctx,
						       const char *name)
{
	for (size_t i = 0; ctx && name && i < ctx->n_backends; i++)
		if (strcmp(ctx->backends[i]->name, name) == 0)
			return ctx->backends[i];
	return NULL;
}

KP_EXPORT int kp_backend_foreach(const struct kp_ctx *ctx,
				 int (*fn)(const struct kp_backend_ops *ops, void *userdata),
				 void *userdata)
{
	int r = 0;

	if (!ctx || !fn)
		return -EINVAL;
	for (size_t i = 0; !r && i < ctx->n_backends; i++)
		r = fn(ctx->backends[i], userdata);
	return r;
}

KP_EXPORT int kp_backend_register(struct kp_ctx *ctx, const struct kp_backend_ops *ops)
{
	if (!ctx || !ops || !ops->name || !*ops->name || !ops->init || !ops->sync ||
	    (ops->n_options && (!ops->options || !ops->options_size)))
		return -EINVAL;
	for (size_t i = 0; i < ops->n_options; i++)
		if (!ops->options[i].name || (unsigned)ops->options[i].type >= _KP_OPT_MAX ||
		    ops->options[i].offset >= ops->options_size)
			return -EINVAL;
	if (kp_backend_find(ctx, ops->name))
		return -EEXIST;
	if (ctx->n_backends == MAX_BACKENDS)
		return -ENOMEM;
	ctx->backends[ctx->n_backends++] = ops;
	return 0;
}

KP_EXPORT int kp_ctx_set_error(struct kp_ctx *ctx, int err, const char *fmt, ...)
{
	va_list ap;

	if (!ctx || !fmt || ctx->err[0])
		return err;
	va_start(ap, fmt);
	vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
	va_end(ap);
	kp_log(ctx, KP_LOG_DEBUG, "%s", ctx->err);
	return err;
}

KP_EXPORT const char *kp_ctx_get_error(const struct kp_ctx *ctx)
{
	return ctx ? ctx->err : "";
}

int kp_ctx_call_result(struct kp_ctx *ctx, int r)
{
	if (r < 0 && !ctx->err[0])
		snprintf(ctx->err, sizeof(ctx->err), "%s: %s", ctx->be->name, kp_strerror(r));
	return r;
}

KP_EXPORT int kp_ctx_set_backend(struct kp_ctx *ctx, const char *name,
				 const struct kp_setting *settings, size_t n_settings)
{
	const struct kp_backend_ops *ops;
	struct kp_opts *opts = NULL;
	void *priv = NULL;
	int r;

	if (!ctx || !name || (n_settings && !settings))
		return -EINVAL;
	ctx->err[0] = '\0';
	ops = kp_backend_find(ctx, name);
	if (!ops)
		return kp_ctx_set_error(ctx, -ENOENT, "no data plane called \"%s\"", name);
	r = kp_opts_new(ops, settings, n_settings, &opts, ctx->err, sizeof(ctx->err));
	if (r < 0)
		return r;
	r = ops->init(ctx, kp_opts_data(opts), &priv);
	if (r < 0) {
		kp_opts_free(opts);
		if (!ctx->err[0])
			snprintf(ctx->err, sizeof(ctx->err), "%s: %s", ops->name, kp_strerror(r));
		return r;
	}
	if (ctx->be->destroy)
		ctx->be->destroy(ctx->be_priv);
	kp_opts_free(ctx->be_opts);
	ctx->be = ops;
	ctx->be_priv = priv;
	ctx->be_opts = opts;
	ctx->need_full = true;
	return 0;
}

KP_EXPORT int kp_ctx_foreach_option(const struct kp_ctx *ctx,
				    int (*fn)(const struct kp_option *opt, const char *value,
					      void *userdata),
				    void *userdata)
{
	if (!ctx || !fn)
		return -EINVAL;
	return kp_opts_foreach(ctx->be_opts, fn, userdata);
}

KP_EXPORT const char *kp_ctx_get_backend_name(const struct kp_ctx *ctx)
{
	return ctx ? ctx->be->name : NULL;
}

KP_EXPORT int kp_ctx_dump(struct kp_ctx *ctx, kp_dump_fn fn, void *userdata)
{
	if (!ctx || !fn)
		return -EINVAL;
	ctx->err[0] = '\0';
	if (!ctx->be->dump)
		return kp_ctx_set_error(ctx, -EOPNOTSUPP, "%s: no dump", ctx->be->name);
	return kp_ctx_call_result(ctx, ctx->be->dump(ctx->be_priv, fn, userdata));
}

struct one_service {
	const char *ns, *name;
	kp_dump_fn fn;
	void *userdata;
};

static int pass_service(const struct kp_dump_entry *e, void *userdata)
{
	const struct one_service *o = userdata;

	return strcmp(e->ns, o->ns) || strcmp(e->name, o->name) ? 0 : o->fn(e, o->userdata);
}

KP_EXPORT int kp_ctx_dump_service(struct kp_ctx *ctx, const char *ns, const char *name,
				  kp_dump_fn fn, void *userdata)
{
	struct one_service o = { ns, name, fn, userdata };

	if (!ctx || !ns || !name || !fn)
		return -EINVAL;
	ctx->err[0] = '\0';
	if (!ctx->be->dump_service)
		return kp_ctx_dump(ctx, pass_service, &o);
	return kp_ctx_call_result(ctx, ctx->be->dump_service(ctx->be_priv, ns, name,
							      pass_service, &o));
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
	ctx->err[0] = '\0';
	return kp_ctx_call_result(ctx, ctx->be->cleanup ? ctx->be->cleanup(ctx->be_priv) : 0);
}
