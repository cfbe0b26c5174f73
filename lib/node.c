// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Node identity: this node's name (which endpoints are local), its topology zone (which
 * EndpointSlice hints apply) and the addresses NodePorts listen on: listed ones, or, per
 * family, every local address (one frontend on the unspecified address, which a data
 * plane matches as any address local to the node when the packet arrives). Each change
 * marks every service changed, since any of them may depend on it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ctx-internal.h"

static int set_str(char **dst, const char *s)
{
	char *c = NULL;

	if (s && !(c = strdup(s)))
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

KP_EXPORT int kp_ctx_set_node_name(struct kp_ctx *ctx, const char *name)
{
	int r;

	if (!ctx || !name)
		return -EINVAL;
	r = set_str(&ctx->node_name, name);
	if (!r)
		ctx->all_dirty = true;
	return r;
}

KP_EXPORT int kp_ctx_set_node_zone(struct kp_ctx *ctx, const char *zone)
{
	int r;

	if (!ctx)
		return -EINVAL;
	r = set_str(&ctx->node_zone, zone && *zone ? zone : NULL);
	if (!r)
		ctx->all_dirty = true;
	return r;
}

KP_EXPORT int kp_ctx_set_nodeport_addrs(struct kp_ctx *ctx, const struct kp_addr *addrs,
					size_t n_addrs)
{
	struct kp_addr *copy = NULL;

	if (!ctx || (n_addrs && !addrs))
		return -EINVAL;
	for (size_t i = 0; i < n_addrs; i++)
		if (addrs[i].family != AF_INET && addrs[i].family != AF_INET6)
			return -EINVAL;
	if (n_addrs) {
		copy = malloc(n_addrs * sizeof(*copy));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, addrs, n_addrs * sizeof(*copy));
	}
	free(ctx->np_addrs);
	ctx->np_addrs = copy;
	ctx->n_np_addrs = n_addrs;
	ctx->all_dirty = true;
	return 0;
}

static int family_index(int family)
{
	return family == AF_INET ? 0 : family == AF_INET6 ? 1 : -1;
}

KP_EXPORT int kp_ctx_set_nodeport_any_local(struct kp_ctx *ctx, int family, bool any)
{
	int f = family_index(family);

	if (!ctx || f < 0)
		return -EINVAL;
	if (ctx->np_any_local[f] != any)
		ctx->all_dirty = true;
	ctx->np_any_local[f] = any;
	return 0;
}

KP_EXPORT bool kp_ctx_get_nodeport_any_local(const struct kp_ctx *ctx, int family)
{
	int f = family_index(family);

	return ctx && f >= 0 && ctx->np_any_local[f];
}

KP_EXPORT const struct kp_addr *kp_ctx_get_nodeport_addrs(const struct kp_ctx *ctx,
							  size_t *ret_n)
{
	if (!ctx || !ret_n)
		return NULL;
	*ret_n = ctx->n_np_addrs;
	return ctx->np_addrs;
}
