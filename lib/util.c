// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Small helpers shared by lib/: a string-keyed hash map (FNV-1a, open addressing with
 * linear probing, at most 70 % full), string duplication, and address parsing, printing and
 * comparison.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

struct map_entry {
	void *value;
	char key[];
};

/* A slot: the key's hash beside its entry, so a probe reads no entry it does not need. */
struct map_slot {
	uint64_t hash;
	struct map_entry *e;	/* NULL: never used; TOMB: deleted */
};

#define TOMB ((struct map_entry *)&tomb_mark)
static const char tomb_mark;

struct kp_map {
	struct map_slot *slots;
	size_t cap;		/* power of two */
	size_t n, tombs;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);	/* FNV-1a's low bits mix poorly; the index uses them */
}

struct kp_map *kp_map_new(void)
{
	struct kp_map *map = calloc(1, sizeof(*map));

	if (!map)
		return NULL;
	map->cap = 16;
	map->slots = calloc(map->cap, sizeof(*map->slots));
	if (!map->slots) {
		free(map);
		return NULL;
	}
	return map;
}

void kp_map_free(struct kp_map *map)
{
	if (!map)
		return;
	for (size_t i = 0; i < map->cap; i++)
		if (map->slots[i].e != TOMB)
			free(map->slots[i].e);
	free(map->slots);
	free(map);
}

size_t kp_map_size(const struct kp_map *map)
{
	return map->n;
}

/* Linear probing: the key's slot, or NULL when it is absent. */
static struct map_slot *map_find(const struct kp_map *map, const char *key, uint64_t hash)
{
	size_t mask = map->cap - 1;

	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct map_slot *s = &map->slots[i];

		if (!s->e)
			return NULL;
		if (s->e != TOMB && s->hash == hash && strcmp(s->e->key, key) == 0)
			return s;
	}
}

void *kp_map_get(const struct kp_map *map, const char *key)
{
	struct map_slot *s = map_find(map, key, hash_str(key));

	return s ? s->e->value : NULL;
}

/* Re-places every live entry in @cap slots (which drops the tombstones). */
static int map_rehash(struct kp_map *map, size_t cap)
{
	struct map_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < map->cap; i++) {
		struct map_slot *s = &map->slots[i];
		size_t j;

		if (!s->e || s->e == TOMB)
			continue;
		for (j = s->hash & (cap - 1); slots[j].e; j = (j + 1) & (cap - 1))
			;
		slots[j] = *s;
	}
	free(map->slots);
	map->slots = slots;
	map->cap = cap;
	map->tombs = 0;
	return 0;
}

bool kp_token_valid(const char *token, size_t *ret_off)
{
	for (size_t i = 0; token[i]; i++) {
		if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] >= 0x7f) {
			*ret_off = i;
			return false;
		}
	}
	return true;
}

int kp_sysctl_set(const char *path, const char *value)
{
	char full[160];
	size_t len = strlen(value);
	int fd, r = 0;

	snprintf(full, sizeof(full), "/proc/sys/%s", path);
	fd = open(full, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	errno = 0;
	if (write(fd, value, len) != (ssize_t)len)
		r = errno ? -errno : -EIO;
	close(fd);
	return r;
}

void kp_map_compact(struct kp_map *map)
{
	size_t cap = 16;

	if (!map || map->cap <= 64 || map->n * 8 >= map->cap)
		return;
	while ((map->n + 1) * 10 > cap * 5)
		cap *= 2;
	map_rehash(map, cap);	/* on ENOMEM the map stays as it was: still correct */
}

int kp_map_put(struct kp_map *map, const char *key, void *value, void **ret_old)
{
	uint64_t hash = hash_str(key);
	struct map_slot *s = map_find(map, key, hash);
	struct map_entry *e;
	size_t len, mask, i;

	if (s) {
		if (ret_old)
			*ret_old = s->e->value;
		s->e->value = value;
		return 0;
	}
	/* at most 70 % of the slots in use, tombstones included; a rehash sizes the map for
	 * its live entries at under 50 %, so it also shrinks a map that lost most of them */
	if ((map->n + map->tombs + 1) * 10 > map->cap * 7) {
		size_t cap = 16;

		while ((map->n + 1) * 10 > cap * 5)
			cap *= 2;
		if (map_rehash(map, cap) < 0)
			return -ENOMEM;
	}
	len = strlen(key);
	e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, len + 1);
	e->value = value;
	mask = map->cap - 1;
	for (i = hash & mask; map->slots[i].e && map->slots[i].e != TOMB; i = (i + 1) & mask)
		;
	if (map->slots[i].e == TOMB)
		map->tombs--;
	map->slots[i] = (struct map_slot){ hash, e };
	map->n++;
	if (ret_old)
		*ret_old = NULL;
	return 0;
}

void *kp_map_del(struct kp_map *map, const char *key)
{
	struct map_slot *s = map_find(map, key, hash_str(key));
	void *value;

	if (!s)
		return NULL;
	value = s->e->value;
	free(s->e);
	s->e = TOMB;	/* a tombstone keeps later probes going; rehash drops it */
	map->n--;
	map->tombs++;
	return value;
}

bool kp_map_next(const struct kp_map *map, struct kp_map_iter *it, const char **ret_key,
		 void **ret_value)
{
	/* deleting the current key leaves a tombstone: nothing moves, nothing is skipped */
	for (; it->bucket < map->cap; it->bucket++) {
		struct map_entry *e = map->slots[it->bucket].e;

		if (!e || e == TOMB)
			continue;
		it->bucket++;
		if (ret_key)
			*ret_key = e->key;
		if (ret_value)
			*ret_value = e->value;
		return true;
	}
	return false;
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

int kp_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_size)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;
	int r = 0;

	if (!f)
		return -errno;
	buf = malloc(max + 2);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	errno = 0;
	n = fread(buf, 1, max + 1, f);
	if (ferror(f))
		r = -(errno ? errno : EIO);
	else if (n > max)
		r = -EFBIG;
	fclose(f);
	if (r < 0) {
		explicit_bzero(buf, n);		/* it may hold a secret */
		free(buf);
		return r;
	}
	buf[n] = '\0';
	*ret_buf = buf;
	*ret_size = n;
	return 0;
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

int kp_cidr_list_parse(const char *list, struct kp_cidr *v, size_t max, size_t *ret_n,
		       const char **ret_bad)
{
	size_t n = 0;

	for (const char *p = list; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char one[64];
		struct kp_cidr c;

		if (len >= sizeof(one) ||
		    (memcpy(one, p, len), one[len] = '\0', kp_cidr_from_str(one, &c.addr,
									     &c.prefix) < 0)) {
			if (ret_bad)
				*ret_bad = p;
			return -EINVAL;
		}
		if (v && n < max)
			v[n] = c;
		n++;
		p = comma ? comma + 1 : p + len;
	}
	*ret_n = n;
	return 0;
}

KP_EXPORT bool kp_addr_equal(const struct kp_addr *a, const struct kp_addr *b)
{
	return a && b && kp_addr_cmp(a, b) == 0;
}

KP_EXPORT bool kp_addr_is_unspecified(const struct kp_addr *a)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (!a)
		return false;
	if (a->family == AF_INET)
		return a->v4.s_addr == 0;
	return a->family == AF_INET6 && !memcmp(&a->v6, &any6, sizeof(any6));
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
