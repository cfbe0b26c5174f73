// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyd's event loop: descriptors watched for input (or output), each with its
 * callback, and ticks: callbacks run before every wait, each doing what is due and saying how long it
 * may sleep (the sync runner, the API client's timers). One poll() per round; the
 * callbacks may add and remove watches while the round is dispatched.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "kpd.h"

#define MAX_WAIT_MS 60000

struct watch {
	int fd;				/* -1: removed, compacted at the end of the round */
	short events;			/* POLLIN or POLLOUT */
	kpd_fd_fn fn;
	void *userdata;
};

struct tick {
	kpd_tick_fn fn;
	void *userdata;
};

struct kpd_loop {
	struct watch *w;
	size_t n_w, cap_w;
	struct tick t[8];
	size_t n_t;
	struct pollfd *pfd;		/* one per watch, rebuilt each round */
	size_t cap_pfd;
	bool quit;
};

int kpd_loop_new(struct kpd_loop **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

void kpd_loop_free(struct kpd_loop *l)
{
	if (!l)
		return;
	free(l->w);
	free(l->pfd);
	free(l);
}

int kpd_loop_watch(struct kpd_loop *l, int fd, kpd_fd_fn fn, void *userdata)
{
	if (fd < 0)
		return -EBADF;
	if (l->n_w == l->cap_w) {
		size_t cap = l->cap_w ? l->cap_w * 2 : 16;
		struct watch *w = realloc(l->w, cap * sizeof(*w));

		if (!w)
			return -ENOMEM;
		l->w = w;
		l->cap_w = cap;
	}
	l->w[l->n_w++] = (struct watch){ fd, POLLIN, fn, userdata };
	return 0;
}

void kpd_loop_unwatch(struct kpd_loop *l, int fd)
{
	for (size_t i = 0; l && i < l->n_w; i++)
		if (l->w[i].fd == fd)
			l->w[i].fd = -1;
}

void kpd_loop_set_events(struct kpd_loop *l, int fd, short events)
{
	for (size_t i = 0; i < l->n_w; i++)
		if (l->w[i].fd == fd)
			l->w[i].events = events;
}

int kpd_loop_tick(struct kpd_loop *l, kpd_tick_fn fn, void *userdata)
{
	if (l->n_t == sizeof(l->t) / sizeof(l->t[0]))
		return -ENOSPC;
	l->t[l->n_t++] = (struct tick){ fn, userdata };
	return 0;
}

void kpd_loop_untick(struct kpd_loop *l, kpd_tick_fn fn, void *userdata)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n_t; i++)
		if (l->t[i].fn != fn || l->t[i].userdata != userdata)
			l->t[k++] = l->t[i];
	l->n_t = k;
}

void kpd_loop_quit(struct kpd_loop *l)
{
	l->quit = true;
}

static void compact(struct kpd_loop *l)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n_w; i++)
		if (l->w[i].fd >= 0)
			l->w[k++] = l->w[i];
	l->n_w = k;
}

/* One round: ticks, one wait, the callbacks of what became readable. */
static int round_once(struct kpd_loop *l)
{
	int64_t wait = MAX_WAIT_MS;
	size_t n;

	for (size_t i = 0; i < l->n_t && !l->quit; i++) {
		int64_t t = l->t[i].fn(l->t[i].userdata);

		if (t >= 0 && t < wait)
			wait = t;
	}
	if (l->quit)
		return 0;
	if (l->cap_pfd < l->n_w) {
		struct pollfd *p = realloc(l->pfd, l->n_w * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->pfd = p;
		l->cap_pfd = l->n_w;
	}
	n = l->n_w;
	for (size_t i = 0; i < n; i++)
		l->pfd[i] = (struct pollfd){ .fd = l->w[i].fd, .events = l->w[i].events };
	if (poll(l->pfd, n, (int)wait) < 0)
		return errno == EINTR ? 0 : -errno;
	/* watches added by a callback wait for the next round; removed ones are skipped */
	for (size_t i = 0; i < n && !l->quit; i++)
		if (l->pfd[i].revents && l->w[i].fd == l->pfd[i].fd)
			l->w[i].fn(l->w[i].fd, l->w[i].userdata);
	compact(l);
	return 0;
}

int kpd_loop_run(struct kpd_loop *l)
{
	int r = 0;

	l->quit = false;
	while (!l->quit && !r)
		r = round_once(l);
	return r;
}
