// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target for the API source's watch-stream reader (lib/sources/apiserver.c): the
 * input after a two-byte header is handed to kp_api_watch_feed() in chunks, as libcurl
 * hands a watch answered 200 to its write callback, so that lines split anywhere (in a
 * UTF-8 sequence, before a "\r\n") are read. Byte 0 seeds the chunk sizes (1 to
 * 1 + byte 0 % 128 bytes, varying); byte 1 % 4 picks the stream: Services,
 * EndpointSlices, this node's Node, or the three in turn (a chunk each). A stream that
 * ends (a bad line, an ERROR event) is followed by a new one, as kp_api_process() would
 * start it. No transfer is ever started: the API object only receives bytes.
 * The oracle besides the sanitizers: a single stream that never ended leaves the context
 * exactly as the same bytes handed over at once do (events applied, objects held,
 * service ports, the Node's pod CIDRs and eligibility), since a line is applied
 * whatever the read boundaries; a difference aborts. Built for libFuzzer with
 * --enable-fuzzer; replay-main.c replays tests/fuzz/corpus-watch in make check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kproxy/kproxy.h>
#include <kproxy/api.h>

#include "../../lib/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a run leaves, compared between the chunked and the whole hand-over. */
struct outcome {
	bool ended;			/* a feed said the stream would end */
	uint64_t n_events;		/* kp_api_stats.n_events */
	size_t n_services, n_slices, n_svc_ports;
	bool eligible;			/* kp_api_node_eligible() */
	char cidrs[256];		/* kp_api_node_pod_cidrs(), "" for none */
};

static void run(const uint8_t *data, size_t size, bool whole, struct outcome *out)
{
	static const char *const streams[] = { "services", "endpointslices", "nodes" };
	struct kp_api_auth auth = { .server = (char *)"http://127.0.0.1:1" };
	unsigned x = data[0], max = 1 + data[0] % 128u, pick = data[1] % 4u;
	struct kp_api_stats stats;
	struct kp_counts counts;
	struct kp_ctx *ctx;
	struct kp_api *api;
	size_t at = 2;

	memset(out, 0, sizeof(*out));
	ctx = kp_ctx_new();
	if (!ctx)
		abort();
	kp_ctx_set_node_name(ctx, "node-1");
	if (kp_api_new(ctx, &auth, "node-1", 0, &api) < 0)
		abort();
	for (unsigned i = 0; at < size; i++) {
		size_t n = size - at;

		x = x * 1103515245u + 12345u;
		if (!whole && n > 1 + (x >> 16) % max)
			n = 1 + (x >> 16) % max;
		if (kp_api_watch_feed(api, streams[pick < 3 ? pick : i % 3],
				      (const char *)data + at, n) < 0)
			out->ended = true;
		at += n;
	}
	kp_ctx_sync(ctx, false);
	kp_ctx_drain_diags(ctx, NULL, NULL);
	kp_api_get_stats(api, &stats);
	kp_ctx_get_counts(ctx, &counts);
	out->n_events = stats.n_events;
	out->n_services = counts.n_services;
	out->n_slices = counts.n_slices;
	out->n_svc_ports = counts.n_svc_ports;
	out->eligible = kp_api_node_eligible(api);
	if (kp_api_node_pod_cidrs(api))
		strncpy(out->cidrs, kp_api_node_pod_cidrs(api), sizeof(out->cidrs) - 1);
	kp_api_free(api);
	kp_ctx_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome chunked, whole;

	if (size < 2)
		return 0;
	run(data, size, false, &chunked);
	if (data[1] % 4u == 3 || chunked.ended)
		return 0;	/* streams interleaved, or a stream cut: nothing to compare */
	run(data, size, true, &whole);
	if (whole.ended || chunked.n_events != whole.n_events ||
	    chunked.n_services != whole.n_services || chunked.n_slices != whole.n_slices ||
	    chunked.n_svc_ports != whole.n_svc_ports || chunked.eligible != whole.eligible ||
	    strcmp(chunked.cidrs, whole.cidrs))
		abort();	/* the read boundaries changed what was applied */
	return 0;
}
