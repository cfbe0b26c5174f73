// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target for every decoder: the input is loaded as JSON, as YAML and with
 * auto-detection, twice into the same source (so the replace path runs), then synced
 * and unloaded. Built for libFuzzer with --enable-fuzzer; replay-main.c replays the
 * corpus and the fixtures through the same function in make check.
 */
#include <stddef.h>
#include <stdint.h>

#include <kproxy/kproxy.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum kp_format formats[] = { KP_FORMAT_AUTO, KP_FORMAT_JSON, KP_FORMAT_YAML };
	struct kp_ctx *ctx = kp_ctx_new();
	struct kp_addr np;

	if (!ctx)
		return 0;
	kp_ctx_set_node_name(ctx, "node-1");
	kp_addr_from_str("192.0.2.1", &np);
	kp_ctx_set_nodeport_addrs(ctx, &np, 1);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		kp_ctx_load(ctx, "a", (const char *)data, size, formats[i]);
		kp_ctx_load(ctx, "b", (const char *)data, size, formats[i]);
		kp_ctx_sync(ctx, false);
		kp_ctx_drain_diags(ctx, NULL, NULL);
	}
	kp_ctx_unload(ctx, "a");
	kp_ctx_sync(ctx, true);
	kp_ctx_free(ctx);
	return 0;
}
