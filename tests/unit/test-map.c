// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The string-keyed hash map (lib/util.c) against a plain array as the model: random
 * puts, replacements and deletions (with keys that share long prefixes, as chain names
 * do), deletion of the current key during iteration, growth past many rehashes and
 * reuse after most keys are gone.
 */
#include <stdint.h>

#include "tap.h"
#include "../../lib/internal.h"

#define N_KEYS 5000

static char keys[N_KEYS][32];
static void *model[N_KEYS];	/* the value each key should have, or NULL */

static uint32_t rnd(void)
{
	static uint64_t x = 0x9e3779b97f4a7c15ULL;

	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	return (uint32_t)x;
}

static bool agrees(const struct kp_map *m, size_t *ret_n)
{
	size_t n = 0;

	for (size_t i = 0; i < N_KEYS; i++) {
		if (kp_map_get(m, keys[i]) != model[i])
			return false;
		n += model[i] != NULL;
	}
	*ret_n = n;
	return kp_map_size(m) == n;
}

int main(void)
{
	struct kp_map *m = kp_map_new();
	struct kp_map_iter it = { 0 };
	const char *key;
	void *value, *old;
	size_t n, seen = 0, bad = 0;
	bool ok_all = true;

	for (size_t i = 0; i < N_KEYS; i++)
		snprintf(keys[i], sizeof(keys[i]), "KUBE-SEP-%016zu", i * 7919 % 100003);
	ok(m && kp_map_size(m) == 0 && !kp_map_get(m, keys[0]), "a new map is empty");
	/* 200k random operations, checked against the model every 10k */
	for (int op = 1; op <= 200000; op++) {
		size_t i = rnd() % N_KEYS;

		if (rnd() % 3) {
			void *v = (void *)(uintptr_t)(op * 16 + 8);

			if (kp_map_put(m, keys[i], v, &old) < 0 || old != model[i])
				ok_all = false;
			model[i] = v;
		} else if (kp_map_del(m, keys[i]) != model[i]) {
			ok_all = false;
		} else {
			model[i] = NULL;
		}
		if (op % 10000 == 0 && !agrees(m, &n))
			ok_all = false;
	}
	ok(ok_all, "200,000 random puts, replacements and deletions agree with the model");
	/* iteration sees each key once; deleting the current key skips nothing */
	while (kp_map_next(m, &it, &key, &value)) {
		size_t i = 0;

		while (i < N_KEYS && strcmp(keys[i], key))
			i++;
		if (i == N_KEYS || model[i] != value)
			bad++;
		seen++;
		if (seen % 2 && kp_map_del(m, key) == value)
			model[i] = NULL;
	}
	ok(!bad && agrees(m, &n) && seen - n == (seen + 1) / 2,
	   "iteration returns every key once, deleting every other one on the way (%zu seen)",
	   seen);
	/* empty it, then fill it again: tombstones must not fill the table */
	for (size_t i = 0; i < N_KEYS; i++) {
		kp_map_del(m, keys[i]);
		model[i] = NULL;
	}
	ok(agrees(m, &n) && n == 0, "every key deleted");
	for (int round = 0; round < 20; round++)
		for (size_t i = 0; i < N_KEYS; i++) {
			void *v = (void *)(uintptr_t)(i * 16 + 8);

			if (round % 2) {
				kp_map_del(m, keys[i]);
				model[i] = NULL;
			} else if (kp_map_put(m, keys[i], v, NULL) == 0) {
				model[i] = v;
			}
		}
	ok(agrees(m, &n) && n == 0, "20 rounds of filling and emptying end empty and agree");
	ok(kp_map_put(m, "", m, NULL) == 0 && kp_map_get(m, "") == m, "the empty key is a key");
	{
		size_t nk;
		const char **sorted;

		for (size_t i = 0; i < 100; i++)
			kp_map_put(m, keys[i], m, NULL);
		sorted = kp_map_sorted_keys(m, &nk);
		bad = 0;
		for (size_t i = 1; sorted && i < nk; i++)
			bad += strcmp(sorted[i - 1], sorted[i]) >= 0;
		ok(sorted && nk == 101 && !bad, "sorted keys: all 101, in order");
		free(sorted);
	}
	kp_map_free(m);

	/* compact: a map grown large and then emptied down to a few keys keeps them */
	m = kp_map_new();
	memset(model, 0, sizeof(model));
	for (size_t i = 0; i < N_KEYS; i++) {
		kp_map_put(m, keys[i], keys[i], NULL);
		model[i] = keys[i];
	}
	for (size_t i = 3; i < N_KEYS; i++) {
		kp_map_del(m, keys[i]);
		model[i] = NULL;
	}
	kp_map_compact(m);
	ok(agrees(m, &n) && n == 3 && kp_map_size(m) == 3,
	   "compacting a map emptied down to 3 keys keeps exactly those");
	ok(kp_map_put(m, keys[5], keys[5], NULL) == 0 && kp_map_get(m, keys[5]) == keys[5] &&
	   kp_map_size(m) == 4, "and it takes new keys after");
	kp_map_compact(NULL);
	kp_map_free(m);
	return tap_done();
}
