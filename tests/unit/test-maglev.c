// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DPDK data plane's pure parts, without EAL: Maglev table sizes, balance and
 * disruption (an endpoint removed moves little of the other endpoints' share), and the
 * RFC 1624 incremental checksum updates against checksums computed from scratch.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "tap.h"

static void endpoints(struct dp_ep *eps, unsigned n, unsigned skip)
{
	for (unsigned i = 0, k = 0; k < n; i++) {
		if (i == skip)
			continue;
		eps[k].ip = htonl(0x0af40100u + i);	/* 10.244.1.i */
		eps[k++].port = htons(8080);
	}
}

static void test_maglev(void)
{
	struct dp_ep eps[10], fewer[9];
	uint32_t m = dp_maglev_size(10), counts[10] = { 0 }, min = UINT32_MAX, max = 0;
	uint16_t *t = malloc(m * sizeof(*t)), *t2 = malloc(m * sizeof(*t2)), *t3;
	size_t moved = 0, others = 0;

	is_int(dp_maglev_size(1), 251, "1 endpoint: the smallest table, 251");
	is_int(m, 1021, "10 endpoints: 1021 slots (at least 100 per endpoint)");
	is_int(dp_maglev_size(1000), 65521, "1000 endpoints: the largest table");
	endpoints(eps, 10, 99);
	dp_maglev_build(eps, 10, t, m);
	for (uint32_t i = 0; i < m; i++)
		if (t[i] < 10)
			counts[t[i]]++;
	for (unsigned i = 0; i < 10; i++) {
		min = counts[i] < min ? counts[i] : min;
		max = counts[i] > max ? counts[i] : max;
	}
	ok(min + max > 0 && max - min <= 1, "every slot filled, each endpoint's share within one "
	   "slot of the others (%u..%u)", min, max);
	/* endpoint 3 goes: how many slots of the other nine change hands? */
	endpoints(fewer, 9, 3);
	dp_maglev_build(fewer, 9, t2, m);
	for (uint32_t i = 0; i < m; i++) {
		if (t[i] == 3)
			continue;
		others++;
		moved += eps[t[i]].ip != fewer[t2[i]].ip;
	}
	ok(others > 0 && moved * 100 <= others * 5, "removing one of 10 endpoints moves %zu of the "
	   "other endpoints' %zu slots (at most 5%%)", moved, others);
	t3 = malloc(m * sizeof(*t3));
	dp_maglev_build(eps, 10, t3, m);
	ok(t3 && !memcmp(t, t3, m * sizeof(*t)), "the table depends on the endpoints only");
	dp_maglev_build(eps, 0, t3, m);
	ok(t3[0] == UINT16_MAX && t3[m - 1] == UINT16_MAX, "no endpoints: no slot is assigned");
	free(t);
	free(t2);
	free(t3);
}

/* The Internet checksum of @n 16-bit words, from scratch. */
static uint16_t full_csum(const uint16_t *w, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += w[i];
	return (uint16_t)~dp_csum_fold(s);
}

static void test_checksums(void)
{
	uint16_t w[20];
	unsigned bad = 0;

	srand(1);
	for (int round = 0; round < 100000; round++) {
		uint32_t o, n;
		uint16_t c, o16, n16;

		for (int i = 0; i < 20; i++)
			w[i] = (uint16_t)rand();
		w[5] = 0;
		w[5] = full_csum(w, 20);		/* a valid header: sums to 0xffff */
		/* rewrite a 32-bit field (an address: words 6 and 7) and a 16-bit one (a port) */
		memcpy(&o, &w[6], 4);
		n = (uint32_t)rand() ^ ((uint32_t)rand() << 16);
		c = dp_csum_upd32(w[5], o, n);
		memcpy(&w[6], &n, 4);
		o16 = w[9];
		n16 = (uint16_t)rand();
		c = dp_csum_upd16(c, o16, n16);
		w[9] = n16;
		w[5] = 0;
		if (c != full_csum(w, 20) && !(c == 0xffff && full_csum(w, 20) == 0) &&
		    !(c == 0 && full_csum(w, 20) == 0xffff))
			bad++;
	}
	is_int(bad, 0, "100,000 incremental updates of an address and a port agree with "
	       "checksums computed from scratch");
}

int main(void)
{
	test_maglev();
	test_checksums();
	return tap_done();
}
