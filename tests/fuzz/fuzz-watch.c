// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target for the API source's watch-stream reader (lib/sources/apiserver.c): the
 * input after a two-byte header is handed to kp_api_watch_feed() in chunks, as libcurl
 * hands a watch answered 200 to its write callback, so that lines split anywhere (in a
 * UTF-8 sequence, before a "\r\n") are read. Byte 0 seeds the chunk sizes (1 to
 * 1 + byte 0 % 128 bytes, varying); byte 1 % 4 picks the stream: Services,
 * EndpointSlices, this node's Node, or the three in turn (a chunk each). A stream that
 * ends (a bad line, an ERROR event) is followed by a new one, as kp_api_process() would
 * start it. No transfer is ever started: the API object only receives bytes. Built for
 * libFuzzer with --enable-fuzzer; replay-main.c replays tests/fuzz/corpus-watch in make
 * check.
 */
#include <stddef.h>
#include <stdint.h>

#include <kproxy/kproxy.h>
#include <kproxy/api.h>

#include "../../lib/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const streams[] = { "services", "endpointslices", "nodes" };
	struct kp_api_auth auth = { .server = (char *)"http://127.0.0.1:1" };
	struct kp_ctx *ctx;
	struct kp_api *api;
	unsigned x, max, pick;
	size_t at = 2;

	if (size < 2)
		return 0;
	x = data[0];
	max = 1 + data[0] % 128u;
	pick = data[1] % 4u;
	ctx = kp_ctx_new();
	if (!ctx)
		return 0;
	kp_ctx_set_node_name(ctx, "node-1");
	if (kp_api_new(ctx, &auth, "node-1", 0, &api) < 0) {
		kp_ctx_free(ctx);
		return 0;
	}
	for (unsigned i = 0; at < size; i++) {
		size_t n;

		x = x * 1103515245u + 12345u;
		n = 1 + (x >> 16) % max;
		if (n > size - at)
			n = size - at;
		kp_api_watch_feed(api, streams[pick < 3 ? pick : i % 3],
				  (const char *)data + at, n);
		at += n;
	}
	kp_ctx_sync(ctx, false);
	kp_ctx_drain_diags(ctx, NULL, NULL);
	kp_api_free(api);
	kp_ctx_free(ctx);
	return 0;
}
