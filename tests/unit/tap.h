/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A minimal TAP producer for the unit tests: ok(), is_int(), is_str(), then done()
 * prints the counts ("# N passed, N failed") and the plan and returns the exit status. Automake's tap-driver reads the output.
 */
#ifndef KP_TAP_H
#define KP_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* weak: test programs made of several files share one count */
__attribute__((weak)) int tap_count, tap_failed;

static inline bool tap_ok(bool cond, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline bool tap_ok(bool cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		printf("# failed at %s:%d\n", file, line);
		tap_failed++;
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)                                                              \
	do {                                                                                \
		long long g_ = (long long)(got), w_ = (long long)(want);                    \
		if (!ok(g_ == w_, __VA_ARGS__))                                             \
			printf("#   got %lld, want %lld\n", g_, w_);                            \
	} while (0)
#define is_str(got, want, ...)                                                              \
	do {                                                                                \
		const char *g_ = (got), *w_ = (want);                                       \
		if (!ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__))                      \
			printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)",             \
			       w_ ? w_ : "(null)");                                             \
	} while (0)

static inline int tap_done(void)
{
	printf("# %d passed, %d failed\n", tap_count - tap_failed, tap_failed);
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
