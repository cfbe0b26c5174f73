// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The public flag parsers kproxyd and the backends share: kp_parse_port_range()
 * (--proxy-port-range, portRange) and kp_parse_duration() (every DURATION flag).
 */
#include <errno.h>
#include <stdint.h>

#include <kproxy/config.h>

#include "tap.h"

static void range(const char *s, int want_r, unsigned want_lo, unsigned want_hi)
{
	uint16_t lo = 7, hi = 7;
	int r = kp_parse_port_range(s, &lo, &hi);

	ok(r == want_r && (r || (lo == want_lo && hi == want_hi)),
	   "port range \"%s\": %d %u-%u (want %d %u-%u)", s, r, lo, hi, want_r, want_lo, want_hi);
}

int main(void)
{
	uint32_t ms = 0;

	range("", 0, 0, 0);
	range("0", 0, 0, 0);
	range("0-0", 0, 0, 0);
	range("30000-31000", 0, 30000, 31000);
	range("30000+10", 0, 30000, 30010);
	range("8080", 0, 8080, 8080);
	range("65535", 0, 65535, 65535);
	range("5-2", -EINVAL, 0, 0);
	range("0-10", -EINVAL, 0, 0);
	range("65530+10", -EINVAL, 0, 0);
	range("70000", -EINVAL, 0, 0);
	range("1-", -EINVAL, 0, 0);
	range("x", -EINVAL, 0, 0);
	range("10-20x", -EINVAL, 0, 0);
	ok(kp_parse_port_range(NULL, NULL, NULL) == -EINVAL, "NULL arguments: -EINVAL");
	ok(kp_parse_duration("1m30s", &ms) == 0 && ms == 90000, "duration 1m30s: %u ms", ms);
	ok(kp_parse_duration("250ms", &ms) == 0 && ms == 250, "duration 250ms: %u ms", ms);
	ok(kp_parse_duration("250", &ms) == -EINVAL, "a duration without a unit is refused");
	return tap_done();
}
