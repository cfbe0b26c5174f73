// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The "dryrun" backend: programs nothing and reports, as its dump, the desired state it
 * was last handed, so kproxyd --dry-run and tests can see what a data plane would get.
 * It is also the reference for how a dump walks a state: one entry per frontend.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct dryrun {
	const struct kp_state *state;	/* the context's state, as of the last sync */
};

static int dryrun_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	struct dryrun *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	*ret_priv = p;
	return 0;
}

static int dryrun_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	struct dryrun *p = priv;

	p->state = want;
	return 0;
}

struct walk {
	kp_dump_fn fn;
	void *userdata;
};

void kp_dump_entry_of(const struct kp_svc_port *sp, const struct kp_frontend *fe,
		      struct kp_dump_entry *ret)
{
	*ret = (struct kp_dump_entry){
		.ns = kp_svc_port_get_namespace(sp),
		.name = kp_svc_port_get_name(sp),
		.port_name = kp_svc_port_get_port_name(sp),
		.protocol = kp_svc_port_get_protocol(sp),
		.kind = fe->kind,
		.vip = fe->addr,
		.port = fe->port,
	};
	ret->endpoints = kp_svc_port_get_endpoints(sp, fe->addr.family, fe->external,
						   &ret->n_endpoints);
}

static int dump_port(const struct kp_svc_port *sp, void *userdata)
{
	struct walk *w = userdata;
	const struct kp_frontend *fes;
	size_t n_fes;
	int r = 0;

	fes = kp_svc_port_get_frontends(sp, &n_fes);
	for (size_t i = 0; i < n_fes && !r; i++) {
		struct kp_dump_entry e;

		kp_dump_entry_of(sp, &fes[i], &e);
		r = w->fn(&e, w->userdata);
	}
	return r;
}

static int dryrun_dump(void *priv, kp_dump_fn fn, void *userdata)
{
	struct dryrun *p = priv;
	struct walk w = { fn, userdata };

	return p->state ? kp_state_foreach(p->state, dump_port, &w) : 0;
}

static int dryrun_cleanup(void *priv)
{
	struct dryrun *p = priv;

	p->state = NULL;
	return 0;
}

static void dryrun_destroy(void *priv)
{
	free(priv);
}

const struct kp_backend_ops kp_backend_dryrun = {
	.name = "dryrun",
	.init = dryrun_init,
	.sync = dryrun_sync,
	.dump = dryrun_dump,
	.cleanup = dryrun_cleanup,
	.destroy = dryrun_destroy,
};
