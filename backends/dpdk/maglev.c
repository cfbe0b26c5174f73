// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4): each endpoint
 * walks its own permutation of the table's slots (offset and skip from two hashes of
 * its address and port) and the endpoints take turns claiming their next free slot.
 * Every endpoint ends up with m / n slots, give or take one, and a change of one
 * endpoint moves little more than its own share of slots, so established flows elsewhere
 * keep their endpoint when new flows are hashed with the same table.
 */
#include <stdlib.h>
#include <string.h>

#include "dp.h"

static const uint32_t primes[] = {
	251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521,
};

uint32_t dp_maglev_size(unsigned n)
{
	uint64_t want = (uint64_t)n * 100;

	for (size_t i = 0; i < RTE_DIM(primes); i++)
		if (primes[i] >= want)
			return primes[i];
	return primes[RTE_DIM(primes) - 1];
}

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* Fills @table from the endpoints' names (their address and port hashed). */
static void build(const uint64_t *names, unsigned n, uint16_t *table, uint32_t m)
{
	uint32_t *offset, *skip, *next, filled = 0;

	for (uint32_t i = 0; i < m; i++)
		table[i] = UINT16_MAX;
	if (!n)
		return;
	offset = malloc(n * sizeof(*offset));
	skip = malloc(n * sizeof(*skip));
	next = calloc(n, sizeof(*next));
	if (!names || !offset || !skip || !next) {
		/* out of memory: a plain modulo spread still gives every endpoint its share */
		for (uint32_t i = 0; i < m; i++)
			table[i] = (uint16_t)(i % n);
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		offset[i] = (uint32_t)(mix(names[i] ^ 0x6d61676c6576ull) % m);
		skip[i] = (uint32_t)(mix(names[i] ^ 0x736b6970ull) % (m - 1)) + 1;
	}
	while (filled < m) {
		for (unsigned i = 0; i < n && filled < m; i++) {
			uint32_t c = (uint32_t)((offset[i] + (uint64_t)next[i] * skip[i]) % m);

			while (table[c] != UINT16_MAX) {
				next[i]++;
				c = (uint32_t)((offset[i] + (uint64_t)next[i] * skip[i]) % m);
			}
			table[c] = (uint16_t)i;
			next[i]++;
			filled++;
		}
	}
out:
	free(offset);
	free(skip);
	free(next);
}

void dp_maglev_build(const struct dp_ep *eps, unsigned n, uint16_t *table, uint32_t m)
{
	uint64_t *names = malloc((n ? n : 1) * sizeof(*names));

	for (unsigned i = 0; names && i < n; i++)
		names[i] = ((uint64_t)eps[i].ip << 16) | eps[i].port;
	build(names, n, table, m);
	free(names);
}

void dp_maglev_build6(const struct dp_ep6 *eps, unsigned n, uint16_t *table, uint32_t m)
{
	uint64_t *names = malloc((n ? n : 1) * sizeof(*names));

	for (unsigned i = 0; names && i < n; i++) {
		uint64_t a, b;

		memcpy(&a, eps[i].ip, 8);
		memcpy(&b, eps[i].ip + 8, 8);
		names[i] = mix(a) ^ b ^ ((uint64_t)eps[i].port << 48);
	}
	build(names, n, table, m);
	free(names);
}
