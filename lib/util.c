// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Small helpers shared by lib/: a chained string-keyed hash map (FNV-1a, power-of-two
 * buckets, grows at load 1), string duplication, and address parsing, printing and
 * comparison.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

struct map_entry {
	struct map_entry *next;
	uint64_t hash;
	void *value;
	char key[];
};

struct kp_map {
	struct map_entry **buckets;
	size_t n_buckets;	/* power of two */
	size_t n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct kp_map *kp_map_new(void)
{
	struct kp_map *map = calloc(1, sizeof(*map));

	if (!map)
		return NULL;
	map->n_buckets = 16;
	map->buckets = calloc(map->n_buckets, sizeof(*map->buckets));
	if (!map->buckets) {
		free(map);
		return NULL;
	}
	return map;
}

void kp_map_free(struct kp_map *map)
{
	if (!map)
		return;
	for (size_t i = 0; i < map->n_buckets; i++) {
		struct map_entry *e = map->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(map->buckets);
	free(map);
}

size_t kp_map_size(const struct kp_map *map)
{
	return map->n;
}

static struct map_entry **map_find(const struct kp_map *map, const char *key, uint64_t hash)
{
	struct map_entry **pe = &map->buckets[hash & (map->n_buckets - 1)];

	for (; *pe; pe = &(*pe)->next)
		if ((*pe)->hash == hash && strcmp((*pe)->key, key) == 0)
			break;
	return pe;
}

void *kp_map_get(const struct kp_map *map, const char *key)
{
	struct map_entry **pe = map_find(map, key, hash_str(key));

	return *pe ? (*pe)->value : NULL;
}

static void map_grow(struct kp_map *map)
{
	size_t n = map->n_buckets * 2;
	struct map_entry **b = calloc(n, sizeof(*b));

	if (!b)
		return;		/* keep the longer chains; still correct */
	for (size_t i = 0; i < map->n_buckets; i++) {
		struct map_entry *e = map->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(map->buckets);
	map->buckets = b;
	map->n_buckets = n;
}

int kp_map_put(struct kp_map *map, const char *key, void *value, void **ret_old)
{
	uint64_t hash = hash_str(key);
	struct map_entry **pe = map_find(map, key, hash), *e;
	size_t len;

	if (*pe) {
		if (ret_old)
			*ret_old = (*pe)->value;
		(*pe)->value = value;
		return 0;
	}
	len = strlen(key);
	e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, len + 1);
	e->hash = hash;
	e->value = value;
	e->next = NULL;
	*pe = e;
	map->n++;
	if (ret_old)
		*ret_old = NULL;
	if (map->n > map->n_buckets)
		map_grow(map);
	return 0;
}

void *kp_map_del(struct kp_map *map, const char *key)
{
	struct map_entry **pe = map_find(map, key, hash_str(key)), *e = *pe;
	void *value;

	if (!e)
		return NULL;
	*pe = e->next;
	value = e->value;
	free(e);
	map->n--;
	return value;
}

bool kp_map_next(const struct kp_map *map, struct kp_map_iter *it, const char **ret_key,
		 void **ret_value)
{
	struct map_entry *e = it->entry;

	/* it->entry is the entry to return next, found lazily so the current one may go */
	if (!e) {
		for (; it->bucket < map->n_buckets; it->bucket++)
			if (map->buckets[it->bucket])
				break;
		if (it->bucket >= map->n_buckets)
			return false;
		e = map->buckets[it->bucket];
	}
	it->entry = e->next;
	if (!it->entry)
		it->bucket++;
	if (ret_key)
		*ret_key = e->key;
	if (ret_value)
		*ret_value = e->value;
	return true;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **kp_map_sorted_keys(const struct kp_map *map, size_t *ret_n)
{
	const char **keys = malloc((map->n ? map->n : 1) * sizeof(*keys));
	struct kp_map_iter it = { 0 };
	size_t n = 0;

	if (!keys)
		return NULL;
	while (kp_map_next(map, &it, &keys[n], NULL))
		n++;
	qsort(keys, n, sizeof(*keys), cmp_strp);
	*ret_n = n;
	return keys;
}

char *kp_strdup(const char *s)
{
	return strdup(s ? s : "");
}

char *kp_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

KP_EXPORT char *kp_addr_to_str(const struct kp_addr *addr, char *buf, size_t size)
{
	if (!addr || !buf || !inet_ntop(addr->family, &addr->v6, buf, size)) {
		if (buf && size)
			snprintf(buf, size, "?");
	}
	return buf;
}

KP_EXPORT int kp_addr_from_str(const char *s, struct kp_addr *ret_addr)
{
	struct kp_addr a = { 0 };

	if (!s || !ret_addr)
		return -EINVAL;
	if (inet_pton(AF_INET, s, &a.v4) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, s, &a.v6) == 1 && !strchr(s, '.'))
		a.family = AF_INET6;	/* IPv4-mapped forms are refused, as the API does */
	else
		return -EINVAL;
	*ret_addr = a;
	return 0;
}

int kp_cidr_from_str(const char *s, struct kp_addr *ret_addr, uint8_t *ret_prefix)
{
	char buf[64], *slash, *end;
	struct kp_addr a;
	unsigned long p;

	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	if (kp_addr_from_str(buf, &a) < 0 || !slash[1])
		return -EINVAL;
	errno = 0;
	p = strtoul(slash + 1, &end, 10);
	if (*end || errno || p > (a.family == AF_INET ? 32u : 128u))
		return -EINVAL;
	*ret_addr = a;
	*ret_prefix = (uint8_t)p;
	return 0;
}

KP_EXPORT bool kp_addr_equal(const struct kp_addr *a, const struct kp_addr *b)
{
	return a && b && kp_addr_cmp(a, b) == 0;
}

int kp_addr_cmp(const struct kp_addr *a, const struct kp_addr *b)
{
	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	if (a->family == AF_INET)
		return memcmp(&a->v4, &b->v4, sizeof(a->v4));
	return memcmp(&a->v6, &b->v6, sizeof(a->v6));
}

KP_EXPORT bool kp_addr_in_prefix(const struct kp_addr *addr, const struct kp_addr *net,
				 unsigned prefix)
{
	const uint8_t *x, *y;
	unsigned full, rem;

	if (!addr || !net || addr->family != net->family)
		return false;
	if (prefix > (addr->family == AF_INET ? 32u : 128u))
		return false;
	x = addr->family == AF_INET ? (const uint8_t *)&addr->v4 : addr->v6.s6_addr;
	y = net->family == AF_INET ? (const uint8_t *)&net->v4 : net->v6.s6_addr;
	full = prefix / 8;
	rem = prefix % 8;
	if (memcmp(x, y, full))
		return false;
	return !rem || ((x[full] ^ y[full]) & (uint8_t)(0xff << (8 - rem))) == 0;
}

KP_EXPORT const char *kp_protocol_name(enum kp_protocol proto)
{
	static const char *const names[_KP_PROTO_MAX] = { "TCP", "UDP", "SCTP" };

	return (unsigned)proto < _KP_PROTO_MAX ? names[proto] : "?";
}

KP_EXPORT const char *kp_frontend_kind_name(enum kp_frontend_kind kind)
{
	static const char *const names[_KP_FE_MAX] = {
		"ClusterIP", "NodePort", "ExternalIP", "LoadBalancer"
	};

	return (unsigned)kind < _KP_FE_MAX ? names[kind] : "?";
}

KP_EXPORT const char *kp_strerror(int err)
{
	const char *s = strerrordesc_np(err < 0 ? -err : err);

	return s ? s : "Unknown error";
}

KP_EXPORT const char *kp_version(void)
{
	return PACKAGE_VERSION;
}
