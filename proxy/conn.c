// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Request/response connections served from the event loop, for the control socket, the
 * health and metrics ports and the health-check node ports: each accepted client gets
 * its own state (what it sent, what it is owed, a deadline) and is read and written only
 * when poll() says so, so a slow client costs one descriptor and one buffer, never the
 * loop's time. Everything is bounded: the request (a longer one is answered with the
 * server's error and its rest read and thrown away until the deadline), the time from
 * accept to the last byte written, and the clients at once (at the cap the oldest is
 * closed for the newest; a burst of that is logged once, when it starts and when it ends).
 * When the process is out of descriptors, a reserved one is given up to accept and close
 * the waiting client, so that the listener does not stay readable and spin the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kpd.h"

#define ACCEPT_BATCH 16		/* accepts per readable listener, so others get their turn */

enum conn_state { READING, WRITING, DRAINING };

struct conn {
	int fd;				/* -1: a free slot */
	enum conn_state state;		/* reading the request, writing the answer, draining */
	uintptr_t tag;			/* the listener's, for the answer */
	uint64_t seq;			/* accept order: the lowest is the oldest */
	int64_t deadline_ms;		/* CLOCK_MONOTONIC */
	char *buf;			/* the request, ops->max_request + 2 bytes */
	size_t got;			/* bytes of it in @buf */
	char *out;			/* the answer: owned, or a static refusal */
	size_t out_size, off;		/* its length, and how much of it was sent */
	bool out_owned;			/* @out is to be freed */
	bool too_long;			/* drain the rest after answering */
};

struct kpd_conns {
	struct kpd_loop *loop;		/* borrowed: watches the clients, runs the tick */
	const struct kpd_conn_ops *ops;	/* borrowed: the server's limits and answers */
	void *userdata;			/* the server's, for @ops' callbacks */
	struct conn *c;			/* ops->max_conns slots */
	size_t n;			/* slots in use */
	uint64_t seq;			/* the next client's accept order */
	uint64_t n_evicted;		/* in the current burst */
	bool burst;			/* the cap was reached and the burst not yet logged as over */
	int reserve;			/* /dev/null, closed to refuse a client at EMFILE; or -1 */
	bool starved;			/* EMFILE logged, not yet an accept since */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct kpd_conns *cs, struct conn *c)
{
	kpd_loop_unwatch(cs->loop, c->fd);
	close(c->fd);
	free(c->buf);
	if (c->out_owned)
		free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	cs->n--;
	if (cs->burst && cs->n <= cs->ops->max_conns / 2) {
		kpd_info("%s: burst over, %llu clients were closed early to admit newer ones",
			 cs->ops->name, (unsigned long long)cs->n_evicted);
		cs->burst = false;
		cs->n_evicted = 0;
	}
}

static struct conn *find(struct kpd_conns *cs, int fd)
{
	for (size_t i = 0; i < cs->ops->max_conns; i++)
		if (cs->c[i].fd == fd)
			return &cs->c[i];
	return NULL;
}

/* Sends what the socket takes; closes or drains when all is sent. */
static void conn_write(struct kpd_conns *cs, struct conn *c)
{
	while (c->off < c->out_size) {
		ssize_t n = send(c->fd, c->out + c->off, c->out_size - c->off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			kpd_loop_set_events(cs->loop, c->fd, POLLOUT);
			return;
		}
		if (n <= 0) {
			conn_close(cs, c);
			return;
		}
		c->off += (size_t)n;
	}
	if (!c->too_long) {
		conn_close(cs, c);
		return;
	}
	/* the client may still be sending: read it away so that it sees the answer, not a
	 * reset, until it stops or the deadline */
	shutdown(c->fd, SHUT_WR);
	c->state = DRAINING;
	kpd_loop_set_events(cs->loop, c->fd, POLLIN);
}

static void conn_answer(struct kpd_conns *cs, struct conn *c)
{
	const struct kpd_conn_ops *ops = cs->ops;

	if (c->too_long) {
		c->out = (char *)ops->too_long;
		c->out_size = strlen(ops->too_long);
		c->out_owned = false;
	} else {
		c->buf[c->got] = '\0';
		c->out = ops->answer(c->fd, c->buf, c->got, cs->userdata, c->tag, &c->out_size);
		c->out_owned = true;
		if (!c->out) {
			conn_close(cs, c);
			return;
		}
	}
	free(c->buf);
	c->buf = NULL;
	c->state = WRITING;
	c->deadline_ms = mono_ms() + ops->timeout_ms;
	conn_write(cs, c);
}

static void conn_read(struct kpd_conns *cs, struct conn *c)
{
	size_t room = cs->ops->max_request + 1 - c->got;	/* one more: "too long" */
	ssize_t n = recv(c->fd, c->buf + c->got, room, 0);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0 || (n == 0 && !c->got)) {
		conn_close(cs, c);
		return;
	}
	c->got += (size_t)n;
	c->buf[c->got] = '\0';
	if (c->got > cs->ops->max_request)
		c->too_long = true;
	/* at EOF what came is the request */
	if (n == 0 || c->too_long || cs->ops->complete(c->buf, c->got))
		conn_answer(cs, c);
}

static void conn_drain(struct kpd_conns *cs, struct conn *c)
{
	char sink[16384];
	ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
		conn_close(cs, c);
}

static void on_conn(int fd, void *userdata)
{
	struct kpd_conns *cs = userdata;
	struct conn *c = find(cs, fd);

	if (!c)
		return;
	if (c->state == READING)
		conn_read(cs, c);
	else if (c->state == WRITING)
		conn_write(cs, c);
	else
		conn_drain(cs, c);
}

/* The slot for a new client: a free one, or the oldest client's, closed. */
static struct conn *slot(struct kpd_conns *cs)
{
	struct conn *oldest = NULL;

	for (size_t i = 0; i < cs->ops->max_conns; i++) {
		if (cs->c[i].fd < 0)
			return &cs->c[i];
		if (!oldest || cs->c[i].seq < oldest->seq)
			oldest = &cs->c[i];
	}
	if (!cs->burst)
		kpd_warn("%s: %u clients at once; closing the oldest for each new one until "
			 "fewer connect", cs->ops->name, cs->ops->max_conns);
	cs->burst = true;
	cs->n_evicted++;
	conn_close(cs, oldest);
	return oldest;
}

/* Out of descriptors: the reserved one makes room to accept @lfd's client and close it. */
static void refuse_starved(struct kpd_conns *cs, int lfd)
{
	int fd;

	if (!cs->starved)
		kpd_warn("%s: out of file descriptors; refusing clients", cs->ops->name);
	cs->starved = true;
	if (cs->reserve < 0)
		return;
	close(cs->reserve);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	cs->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void kpd_conns_accept(struct kpd_conns *cs, int lfd, uintptr_t tag)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		const char *refusal;
		struct conn *c;

		if (fd < 0 && (errno == EMFILE || errno == ENFILE))
			refuse_starved(cs, lfd);
		if (fd < 0)
			return;		/* EAGAIN, or the like: the next round */
		cs->starved = false;
		c = slot(cs);
		c->buf = malloc(cs->ops->max_request + 2);
		if (!c->buf || kpd_loop_watch(cs->loop, fd, on_conn, cs) < 0) {
			free(c->buf);
			c->buf = NULL;
			close(fd);
			return;
		}
		c->fd = fd;
		c->tag = tag;
		c->seq = cs->seq++;
		c->deadline_ms = mono_ms() + cs->ops->timeout_ms;
		cs->n++;
		refusal = cs->ops->admit ? cs->ops->admit(fd, cs->userdata) : NULL;
		if (refusal) {
			free(c->buf);
			c->buf = NULL;
			c->out = (char *)refusal;
			c->out_size = strlen(refusal);
			c->state = WRITING;
			conn_write(cs, c);
		}
	}
}

/* Closes the clients past their deadline; the time until the next one's. */
static int64_t conns_tick(void *userdata)
{
	struct kpd_conns *cs = userdata;
	int64_t now = mono_ms(), wait = -1;

	for (size_t i = 0; i < cs->ops->max_conns && cs->n; i++) {
		struct conn *c = &cs->c[i];

		if (c->fd < 0)
			continue;
		if (c->deadline_ms <= now) {
			kpd_dbg(4, "%s: client timed out", cs->ops->name);
			conn_close(cs, c);
		} else if (wait < 0 || c->deadline_ms - now < wait) {
			wait = c->deadline_ms - now;
		}
	}
	return wait;
}

int kpd_conns_new(struct kpd_loop *loop, const struct kpd_conn_ops *ops, void *userdata,
		  struct kpd_conns **ret)
{
	struct kpd_conns *cs = calloc(1, sizeof(*cs));
	int r;

	if (!cs)
		return -ENOMEM;
	cs->c = calloc(ops->max_conns, sizeof(*cs->c));
	if (!cs->c) {
		free(cs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ops->max_conns; i++)
		cs->c[i].fd = -1;
	cs->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cs->loop = loop;
	cs->ops = ops;
	cs->userdata = userdata;
	r = kpd_loop_tick(loop, conns_tick, cs);
	if (r < 0) {
		if (cs->reserve >= 0)
			close(cs->reserve);
		free(cs->c);
		free(cs);
		return r;
	}
	*ret = cs;
	return 0;
}

void kpd_conns_free(struct kpd_conns *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < cs->ops->max_conns; i++)
		if (cs->c[i].fd >= 0)
			conn_close(cs, &cs->c[i]);
	kpd_loop_untick(cs->loop, conns_tick, cs);
	if (cs->reserve >= 0)
		close(cs->reserve);
	free(cs->c);
	free(cs);
}
