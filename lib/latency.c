// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The programming-latency metric (kube-proxy's kubeproxy_network_programming_duration_seconds):
 * trigger times of endpoint changes not yet programmed, turned into latencies when a sync
 * succeeds, handed to the caller by kp_ctx_drain_programming_latencies().
 */
#include <stdlib.h>
#include <time.h>

#include "ctx-internal.h"

int64_t kp_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kp_latency_note_trigger(struct kp_ctx *ctx, int64_t trigger_ms)
{
	if (ctx->n_triggers >= MAX_TRIGGERS)
		return;
	if (ctx->n_triggers == ctx->cap_triggers) {
		size_t cap = ctx->cap_triggers ? ctx->cap_triggers * 2 : 64;
		int64_t *v = realloc(ctx->triggers, cap * sizeof(*v));

		if (v) {
			ctx->triggers = v;
			ctx->cap_triggers = cap;
		}
	}
	if (ctx->n_triggers < ctx->cap_triggers)
		ctx->triggers[ctx->n_triggers++] = trigger_ms;
}

/* A sync succeeded: every pending trigger time is now programmed. */
void kp_latency_record(struct kp_ctx *ctx)
{
	int64_t now = kp_wall_ms();

	if (ctx->n_latencies + ctx->n_triggers > ctx->cap_latencies) {
		size_t cap = ctx->n_latencies + ctx->n_triggers + 64;
		double *v = realloc(ctx->latencies, cap * sizeof(*v));

		if (!v) {
			ctx->n_triggers = 0;
			return;
		}
		ctx->latencies = v;
		ctx->cap_latencies = cap;
	}
	for (size_t i = 0; i < ctx->n_triggers; i++) {
		int64_t d = now - ctx->triggers[i];

		ctx->latencies[ctx->n_latencies++] = d > 0 ? (double)d / 1000 : 0;
	}
	ctx->n_triggers = 0;
	if (ctx->n_latencies > MAX_TRIGGERS)	/* nobody drains them: keep the newest */
		ctx->n_latencies = 0;
}

KP_EXPORT size_t kp_ctx_drain_programming_latencies(struct kp_ctx *ctx,
						    void (*fn)(double seconds, void *userdata),
						    void *userdata)
{
	size_t n;

	if (!ctx)
		return 0;
	for (size_t i = 0; fn && i < ctx->n_latencies; i++)
		fn(ctx->latencies[i], userdata);
	n = ctx->n_latencies;
	ctx->n_latencies = 0;
	return n;
}
