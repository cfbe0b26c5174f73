// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The context's log sink and its diagnostics: kp_log() hands a line to the caller's sink
 * when its level is wanted (the library logs at debug level only); kp_ctx_diag() queues
 * why an object or a document was rejected, and kp_ctx_drain_diags() hands the queue to
 * the caller, oldest first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctx-internal.h"

void kp_log(const struct kp_ctx *ctx, enum kp_log_level level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!ctx->log_fn || level > ctx->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ctx->log_fn(level, buf, ctx->log_userdata);
}

static void diag_free(struct diag_node *n)
{
	free(n->source);
	free(n->kind);
	free(n->ns);
	free(n->name);
	free(n->field);
	free(n->msg);
	free(n);
}

void kp_ctx_diag(struct kp_ctx *ctx, const char *source, const char *kind, const char *ns,
		 const char *name, const char *field, const char *fmt, ...)
{
	struct diag_node *n = calloc(1, sizeof(*n));
	va_list ap;
	int r;

	ctx->n_rejected++;
	if (!n)
		return;
	va_start(ap, fmt);
	r = vasprintf(&n->msg, fmt, ap);
	va_end(ap);
	n->source = kp_strdup(source);
	n->kind = kp_strdup(kind);
	n->ns = kp_strdup(ns);
	n->name = kp_strdup(name);
	n->field = kp_strdup(field);
	if (r < 0 || !n->source || !n->kind || !n->ns || !n->name || !n->field) {
		if (r < 0)
			n->msg = NULL;
		diag_free(n);
		return;
	}
	*ctx->diags_tail = n;
	ctx->diags_tail = &n->next;
	kp_log(ctx, KP_LOG_DEBUG, "%s: %s %s/%s: %s: %s", source, kind, ns, name, field, n->msg);
}

KP_EXPORT size_t kp_ctx_drain_diags(struct kp_ctx *ctx, kp_diag_fn fn, void *userdata)
{
	struct diag_node *n, *next;
	size_t count = 0;

	if (!ctx)
		return 0;
	for (n = ctx->diags; n; n = next) {
		struct kp_diag d = { n->source, n->kind, n->ns, n->name, n->field, n->msg };

		next = n->next;
		if (fn)
			fn(&d, userdata);
		diag_free(n);
		count++;
	}
	ctx->diags = NULL;
	ctx->diags_tail = &ctx->diags;
	return count;
}

KP_EXPORT int kp_ctx_set_log(struct kp_ctx *ctx, kp_log_fn fn, void *userdata,
			     enum kp_log_level level)
{
	if (!ctx || (unsigned)level >= _KP_LOG_MAX)
		return -EINVAL;
	ctx->log_fn = fn;
	ctx->log_userdata = userdata;
	ctx->log_level = level;
	return 0;
}
