// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The effective capability set, read with capget(2) (no libcap), and the names of the
 * few capabilities the data planes use, for kp_caps_explain().
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"

static const struct {
	int cap;
	const char *name;
} names[] = {
	{ CAP_NET_ADMIN, "CAP_NET_ADMIN" },
	{ CAP_NET_RAW, "CAP_NET_RAW" },
	{ CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE" },
	{ CAP_SYS_MODULE, "CAP_SYS_MODULE" },
	{ CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE" },
};

/* This thread's effective set, or -errno. */
static int effective(uint64_t *ret)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	*ret = (uint64_t)data[1].effective << 32 | data[0].effective;
	return 0;
}

/* Appends the names in @mask, joined by ", " and " and ", at @buf + *@n. */
static void list(uint64_t mask, char *buf, size_t size, size_t *n)
{
	size_t left = 0, done = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		left += !!(mask & KP_CAP(names[i].cap));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && *n < size; i++) {
		if (!(mask & KP_CAP(names[i].cap)))
			continue;
		*n += (size_t)snprintf(buf + *n, size - *n, "%s%s",
				       !done ? "" : done + 1 == left ? " and " : ", ",
				       names[i].name);
		done++;
	}
}

const char *kp_caps_explain(int err, uint64_t need, char *buf, size_t size)
{
	uint64_t eff = 0, missing;
	size_t n;

	if (!size)
		return buf;
	buf[0] = '\0';
	if ((err != -EPERM && err != -EACCES) || !need)
		return buf;
	n = (size_t)snprintf(buf, size, "; needs ");
	list(need, buf, size, &n);
	if (n < size && effective(&eff) == 0) {
		missing = need & ~eff;
		if (missing) {
			n += (size_t)snprintf(buf + n, size - n, ", and this process lacks ");
			list(missing, buf, size, &n);
		} else {
			snprintf(buf + n, size - n, ", which this process holds");
		}
	}
	return buf;
}
