// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The iptables lock (/run/xtables.lock) that every backend writing netfilter tables takes
 * around its read-modify-write of a table.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "internal.h"
#include "xtlock.h"

#define XT_LOCK_PATH "/run/xtables.lock"	/* iptables' own, shared by every tool */
#define XT_LOCK_WAIT_MS 5000

/*
 * The wait is a blocking flock() in a thread of its own, so that it has a time limit: a
 * waiter blocked in the kernel is woken the moment the holder lets go, where a poller
 * wins only when it happens to look during a gap (and a program running `iptables -S`
 * back to back leaves gaps of a few milliseconds). The thread locks a dup of the
 * descriptor, i.e. the same open file: the lock it takes is the caller's. When the
 * caller gives up it closes its descriptor; the thread, once it gets the lock, closes the
 * last one, which lets the lock go. Whoever leaves last frees the state.
 */
struct waiter {
	int fd;			/* a dup of the caller's */
	int pipe[2];		/* the thread writes one byte once it holds the lock */
	atomic_int refs;
};

static void waiter_unref(struct waiter *w)
{
	if (atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	close(w->pipe[0]);
	close(w->pipe[1]);
	free(w);
}

static void *wait_lock(void *arg)
{
	struct waiter *w = arg;
	char c = 1;

	while (flock(w->fd, LOCK_EX) < 0 && errno == EINTR)
		;
	close(w->fd);	/* the caller's descriptor keeps the lock, if it is still open */
	if (write(w->pipe[1], &c, 1) < 0) {
		/* the caller's poll times out */
	}
	waiter_unref(w);
	return NULL;
}

/* Waits up to @ms for the lock on @fd. Returns 0, -EBUSY (time out) or -errno. */
static int lock_within(int fd, int ms)
{
	struct waiter *w = calloc(1, sizeof(*w));
	pthread_attr_t attr;
	pthread_t t;
	struct pollfd p;
	int r;

	if (!w)
		return -ENOMEM;
	w->fd = dup(fd);
	if (w->fd < 0 || pipe2(w->pipe, O_CLOEXEC) < 0) {
		r = -errno;
		if (w->fd >= 0)
			close(w->fd);
		free(w);
		return r;
	}
	atomic_init(&w->refs, 2);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&t, &attr, wait_lock, w);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		close(w->fd);
		close(w->pipe[0]);
		close(w->pipe[1]);
		free(w);
		return r;
	}
	p = (struct pollfd){ .fd = w->pipe[0], .events = POLLIN };
	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	r = r > 0 ? 0 : r == 0 ? -EBUSY : -errno;
	waiter_unref(w);
	return r;
}

/*
 * iptables, ip6tables and iptables-restore hold an flock on /run/xtables.lock from
 * reading a table to writing it back; so does every sync and cleanup here, or a tool
 * editing the table at the same moment could lose its change or ours. Waits up to
 * XT_LOCK_WAIT_MS (iptables -w style), blocked in the kernel rather than polling.
 * Returns the lock's descriptor or -errno.
 */
int kp_xt_lock(struct kp_ctx *ctx, const char *who)
{
	int fd = open(XT_LOCK_PATH, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	int r;

	if (fd < 0) {
		r = -errno;
		kp_log(ctx, KP_LOG_WARN, "%s: cannot open %s: %s", who, XT_LOCK_PATH,
		       kp_strerror(r));
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	r = lock_within(fd, XT_LOCK_WAIT_MS);
	if (r == 0)
		return fd;
	close(fd);
	if (r == -EBUSY)
		kp_log(ctx, KP_LOG_WARN, "%s: %s is held by another program for over %d ms; "
		       "sync postponed", who, XT_LOCK_PATH, XT_LOCK_WAIT_MS);
	else
		kp_log(ctx, KP_LOG_WARN, "%s: waiting for %s: %s", who, XT_LOCK_PATH,
		       kp_strerror(r));
	return r;
}

void kp_xt_unlock(int fd)
{
	if (fd >= 0)
		close(fd);	/* drops the flock */
}
