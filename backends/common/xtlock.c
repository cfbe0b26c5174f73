// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The iptables lock (/run/xtables.lock) that every backend writing netfilter tables takes
 * around its read-modify-write of a table.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "xtlock.h"

#define XT_LOCK_PATH "/run/xtables.lock"	/* iptables' own, shared by every tool */
#define XT_LOCK_WAIT_MS 5000

/*
 * iptables, ip6tables and iptables-restore hold an flock on /run/xtables.lock from
 * reading a table to writing it back; so does every sync and cleanup here, or a tool
 * editing the table at the same moment could lose its change or ours. Waits up to
 * XT_LOCK_WAIT_MS (iptables -w style). Returns the lock's descriptor or -errno.
 */
int kp_xt_lock(struct kp_ctx *ctx, const char *who)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	int fd = open(XT_LOCK_PATH, O_CREAT | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		int r = -errno;

		kp_log(ctx, KP_LOG_WARN, "%s: cannot open %s: %s", who, XT_LOCK_PATH,
		       kp_strerror(r));
		return r;
	}
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited += 20) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		if (waited >= XT_LOCK_WAIT_MS) {
			kp_log(ctx, KP_LOG_WARN, "%s: %s is held by another program "
			       "for over %d ms; sync postponed", who, XT_LOCK_PATH, XT_LOCK_WAIT_MS);
			close(fd);
			return -EBUSY;
		}
		nanosleep(&pause, NULL);
	}
	return fd;
}

void kp_xt_unlock(int fd)
{
	if (fd >= 0)
		close(fd);	/* drops the flock */
}

