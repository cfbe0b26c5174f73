// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kube-proxy's value syntaxes that callers and backends share: Go-style durations
 * ("1m30s") and --proxy-port-range ("LO-HI", "LO+N", a port).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kproxy/config.h>

#include "internal.h"

KP_EXPORT int kp_parse_port_range(const char *s, uint16_t *ret_lo, uint16_t *ret_hi)
{
	unsigned long lo, hi;
	char *end;

	if (!s || !ret_lo || !ret_hi)
		return -EINVAL;
	lo = hi = 0;
	if (*s) {
		lo = hi = strtoul(s, &end, 10);
		if (end == s)
			return -EINVAL;
		if (*end == '-' || *end == '+') {
			char op = *end, *p = end + 1;

			hi = strtoul(p, &end, 10);
			if (end == p)
				return -EINVAL;
			if (op == '+')
				hi += lo;
		}
		if (*end || lo > 65535 || hi > 65535 || hi < lo || (lo == 0 && hi != 0))
			return -EINVAL;
	}
	*ret_lo = (uint16_t)lo;
	*ret_hi = (uint16_t)hi;
	return 0;
}

KP_EXPORT int kp_parse_duration(const char *s, uint32_t *ret_ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = { { "ns", 1e-6 }, { "us", 1e-3 }, { "\xc2\xb5s", 1e-3 }, { "ms", 1 },
		      { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	double total = 0;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "0")) {
		*ret_ms = 0;
		return 0;
	}
	while (*s) {
		char *end;
		double v = strtod(s, &end);
		size_t len = 0, i;

		if (end == s || v < 0 || *s == '+' || *s == '-')
			return -EINVAL;
		while ((end[len] >= 'a' && end[len] <= 'z') || (unsigned char)end[len] >= 0x80)
			len++;
		for (i = 0; i < KP_ARRAY_SIZE(units); i++)
			if (strlen(units[i].unit) == len && !strncmp(end, units[i].unit, len))
				break;
		if (i == KP_ARRAY_SIZE(units))
			return -EINVAL;
		total += v * units[i].ms;
		s = end + len;
	}
	if (total > UINT32_MAX)
		return -EINVAL;
	*ret_ms = (uint32_t)(total + 0.5);
	return 0;
}
