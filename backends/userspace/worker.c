// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The userspace proxy's worker threads: one epoll loop each. A proxy's TCP listener is
 * watched by every worker (EPOLLEXCLUSIVE: one idle worker is woken per connection, and
 * takes it); its UDP port is one SO_REUSEPORT socket per worker, so the kernel hashes
 * each client to one worker, which holds its flow. No state is shared in the byte path.
 *
 * TCP: a connection is accepted, an endpoint picked (lb.c) and connected without
 * blocking; a refused or timed-out connect moves on to the next endpoint (up to
 * MAX_ATTEMPTS, with kube-proxy's per-attempt time-outs). Bytes move with splice(2)
 * through a pipe per direction (zero copy), edge-triggered: a direction reads only into
 * an empty pipe and reads again only once the pipe drained into the other socket, so a
 * slow reader stops its writer (back-pressure) and nothing is buffered beyond one pipe.
 * An end of stream is passed on as a shutdown of the other side (half-close); an error
 * on either side resets both. Idle directions hand their pipe back to a per-worker pool.
 *
 * Small transfers are copied through a scratch buffer (recv/send: for a few bytes
 * cheaper than two splices); a read that fills it switches the direction to splice.
 *
 * UDP: a flow per client address and port, with a connected socket toward its endpoint;
 * replies are sent from the listener with the address the client's datagram was sent to
 * (IP_PKTINFO), so conntrack turns them back into VIP:port. Flows idle for the UDP
 * time-out are closed, and so is one whose endpoint left the set.
 *
 * Nothing is freed while the epoll batch that may name it is being handled: closed
 * objects wait on a list until the batch is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "internal.h"
#include "us.h"

#define MAX_ATTEMPTS 4
#define PIPE_SIZE (512 * 1024)
#define POOL_MAX 64
#define ACCEPT_BUDGET 8
#define PUMP_BUDGET 16			/* reads per direction before yielding */
#define SCRATCH (16 * 1024)		/* a read this long switches a direction to splice */
#define UDP_BATCH 32
#define UDP_BUF 65536
#define EVENTS 64

static const int attempt_ms[MAX_ATTEMPTS] = { 250, 500, 1000, 2000 };	/* kube-proxy's */

enum h_kind { H_EVENT, H_TCP_LISTEN, H_UDP_LISTEN, H_CLIENT, H_BACKEND, H_FLOW };

struct handle {
	uint8_t kind;			/* enum h_kind */
};

struct timer {
	int64_t at;			/* CLOCK_MONOTONIC ms */
	size_t idx;			/* position in the heap, SIZE_MAX when not queued */
	uint8_t kind;			/* T_CONNECT or T_FLOW */
};

enum { T_CONNECT, T_FLOW };

struct flow;

struct us_listener {
	struct handle h;
	struct us_proxy *px;		/* holds a reference */
	int fd;
	bool paused;			/* out of the epoll set: at the limit or out of fds */
	bool dead;
	struct us_listener *next;	/* the worker's list of listeners */
	struct flow **fb;		/* UDP: flows by client address */
	size_t f_cap, n_flows;
};

struct pump {
	int pipe[2];			/* -1 when it holds none */
	size_t inpipe;			/* bytes in the pipe */
	char *buf;			/* what the destination did not take yet (copy mode) */
	size_t off, len;
	bool splice;			/* bulk: through the pipe, no copy */
	bool hup;			/* the source reported its end (or an error) */
	bool eof;			/* the source ended */
	bool shut;			/* the end was passed on (shutdown SHUT_WR, or close) */
};

struct conn {
	struct handle hc, hb;		/* client side, backend side */
	struct timer t;			/* connect deadline */
	int cfd, bfd;
	struct us_proxy *px;		/* holds a reference */
	struct us_ep *ep;		/* counted on it while set */
	struct sockaddr_storage client;
	uint8_t attempts;
	bool connecting, queued, dead;
	bool client_ready;		/* the client's socket signalled input while connecting */
	struct pump up, down;		/* client to backend, backend to client */
	struct conn *prev, *next;	/* the worker's connections */
	struct conn *next_ready;	/* more to pump next round */
	struct conn *next_retry;	/* connect again after the batch */
	struct us_ep *failed_ep;	/* the endpoint the last attempt failed on */
};

struct flow {
	struct handle h;
	struct timer t;			/* idle deadline, moved lazily */
	int fd;
	struct us_listener *l;
	struct us_ep *ep;		/* counted on it */
	struct sockaddr_storage client;
	socklen_t client_len;
	struct kp_addr local;		/* where the client sent to: the source of replies */
	int ifindex;
	int64_t last_ms;
	bool dead;
	struct flow *hnext;		/* the listener's hash chain */
	struct flow *next_dead;
};

enum cmd_op { CMD_ADD, CMD_RETIRE, CMD_STOP };

struct cmd {
	enum cmd_op op;
	struct us_listener *l;		/* CMD_ADD */
	struct us_proxy *px;		/* CMD_RETIRE: holds a reference */
};

struct retiring {
	struct us_proxy *px;		/* holds a reference */
	int64_t at;
};

struct us_worker {
	struct us *us;
	unsigned idx;
	pthread_t thread;
	int epfd, evfd;
	struct handle evh;
	pthread_mutex_t qlock;
	struct cmd *q;
	size_t n_q, cap_q;
	bool stop;
	int64_t now;

	struct us_listener *listeners;
	struct conn *conns;
	struct conn *ready;
	struct conn *retry;		/* failed connects to try again after the batch */
	struct conn *dead_conns;
	struct flow *dead_flows;
	struct timer **heap;
	size_t n_heap, cap_heap;
	struct retiring *ret;
	size_t n_ret, cap_ret;
	int pool[POOL_MAX][2];
	size_t n_pool;
	int64_t resume_at;		/* paused listeners are retried from then on */
	bool any_paused;

	struct mmsghdr msgs[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_storage names[UDP_BATCH];
	char ctl[UDP_BATCH][64];
	char (*bufs)[UDP_BUF];
	char *scratch;			/* copy-mode TCP reads (bufs[0]: UDP and TCP never nest) */
};

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* ---- timers: a binary min-heap of pointers ---- */

static void heap_swap(struct us_worker *w, size_t a, size_t b)
{
	struct timer *t = w->heap[a];

	w->heap[a] = w->heap[b];
	w->heap[b] = t;
	w->heap[a]->idx = a;
	w->heap[b]->idx = b;
}

static void heap_up(struct us_worker *w, size_t i)
{
	while (i && w->heap[(i - 1) / 2]->at > w->heap[i]->at) {
		heap_swap(w, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct us_worker *w, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < w->n_heap && w->heap[l]->at < w->heap[m]->at)
			m = l;
		if (r < w->n_heap && w->heap[r]->at < w->heap[m]->at)
			m = r;
		if (m == i)
			return;
		heap_swap(w, i, m);
		i = m;
	}
}

static void timer_del(struct us_worker *w, struct timer *t)
{
	size_t i = t->idx;

	if (i == SIZE_MAX)
		return;
	t->idx = SIZE_MAX;
	if (i == --w->n_heap)
		return;
	w->heap[i] = w->heap[w->n_heap];
	w->heap[i]->idx = i;
	heap_up(w, i);
	heap_down(w, w->heap[i]->idx);
}

/* Queues @t at @at (moving it if queued). -ENOMEM leaves it unqueued. */
static int timer_set(struct us_worker *w, struct timer *t, int64_t at)
{
	timer_del(w, t);
	if (w->n_heap == w->cap_heap) {
		size_t cap = w->cap_heap ? w->cap_heap * 2 : 256;
		struct timer **h = realloc(w->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		w->heap = h;
		w->cap_heap = cap;
	}
	t->at = at;
	t->idx = w->n_heap;
	w->heap[w->n_heap++] = t;
	heap_up(w, t->idx);
	return 0;
}

/* ---- pipes ---- */

static int pipe_get(struct us_worker *w, struct pump *p)
{
	if (p->pipe[0] >= 0)
		return 0;
	if (w->n_pool) {
		w->n_pool--;
		p->pipe[0] = w->pool[w->n_pool][0];
		p->pipe[1] = w->pool[w->n_pool][1];
		return 0;
	}
	if (pipe2(p->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		p->pipe[0] = p->pipe[1] = -1;
		return -errno;
	}
	fcntl(p->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);	/* stays at 64 KiB if refused */
	return 0;
}

/* Gives an empty pipe back to the pool; a pipe with bytes in it is closed. */
static void pipe_put(struct us_worker *w, struct pump *p)
{
	if (p->pipe[0] < 0)
		return;
	if (!p->inpipe && w->n_pool < POOL_MAX) {
		w->pool[w->n_pool][0] = p->pipe[0];
		w->pool[w->n_pool][1] = p->pipe[1];
		w->n_pool++;
	} else {
		close(p->pipe[0]);
		close(p->pipe[1]);
	}
	p->pipe[0] = p->pipe[1] = -1;
	p->inpipe = 0;
}

/* ---- TCP ---- */

/* Keepalive and no Nagle on a socket toward an endpoint (accepted sockets inherit the
 * same from their listener, see userspace.c). */
static void sock_opts(int fd)
{
	int one = 1, idle = US_KEEPALIVE_S;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void reset_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void ep_release(struct us_ep **ep)
{
	if (*ep)
		atomic_fetch_sub(&(*ep)->conns, 1);
	*ep = NULL;
}

/* Closes @c (with RST to both sides when @reset); freed after the batch. */
static void conn_close(struct us_worker *w, struct conn *c, bool reset)
{
	if (c->dead)
		return;
	c->dead = true;
	timer_del(w, &c->t);
	if (reset) {
		reset_close(c->cfd);
		reset_close(c->bfd);
	} else {
		close(c->cfd);
		if (c->bfd >= 0)
			close(c->bfd);
	}
	c->cfd = c->bfd = -1;
	pipe_put(w, &c->up);
	pipe_put(w, &c->down);
	free(c->up.buf);
	free(c->down.buf);
	c->up.buf = c->down.buf = NULL;
	ep_release(&c->ep);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = w->dead_conns;
	w->dead_conns = c;
}

static void conn_free(struct conn *c)
{
	atomic_fetch_sub(&c->px->n_conns, 1);	/* paused listeners look at it themselves */
	us_proxy_unref(c->px);
	free(c);
}

enum { P_WAIT, P_DONE, P_BUDGET, P_ERR };

/* Sends what recv() left over; P_WAIT while @dst is full. -1: all of it went. */
static int flush_buf(struct pump *p, int dst)
{
	while (p->len) {
		ssize_t n = send(dst, p->buf + p->off, p->len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0) {
			p->off += (size_t)n;
			p->len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			return n < 0 && errno == EAGAIN ? P_WAIT : P_ERR;
		}
	}
	return -1;
}

/* One recv() into the worker's scratch buffer and one send(); what @dst did not take is
 * kept in the direction's own buffer (at most SCRATCH bytes). -1: go on reading. */
static int copy_once(struct us_worker *w, struct pump *p, int src, int dst)
{
	ssize_t n = recv(src, w->scratch, SCRATCH, MSG_DONTWAIT), m;

	if (n == 0) {
		p->eof = true;
		return -1;
	}
	if (n < 0)
		return errno == EAGAIN ? P_WAIT : errno == EINTR ? -1 : P_ERR;
	if (n == SCRATCH)
		p->splice = true;	/* a bulk stream: zero copy from the next read on */
	m = send(dst, w->scratch, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (m < 0 && errno != EAGAIN && errno != EINTR)
		return P_ERR;
	if (m < 0)
		m = 0;
	if (m < n) {
		if (!p->buf && !(p->buf = malloc(SCRATCH)))
			return P_ERR;
		memcpy(p->buf, w->scratch + m, (size_t)(n - m));
		p->off = 0;
		p->len = (size_t)(n - m);
		return P_WAIT;		/* @dst is full: its EPOLLOUT resumes us */
	}
	/* a short read emptied the socket: a new edge comes with new bytes, unless its end
	 * was already reported (then read on, to the end of stream) */
	return n < SCRATCH && !p->hup ? P_WAIT : -1;
}

/*
 * Moves bytes @src -> @dst until one side would block, the stream ended, or the budget
 * is spent. Small transfers are copied (recv/send through a scratch buffer: for a few
 * bytes cheaper than two splices); a read that fills the scratch buffer switches the
 * direction to splice through a pipe. At the end of stream @dst is shut down for
 * writing, unless the other direction already ended (@other_done): the close that
 * follows sends the FIN.
 */
static int pump(struct us_worker *w, struct pump *p, int src, int dst, bool other_done)
{
	for (int i = 0; i < PUMP_BUDGET; i++) {
		ssize_t n;
		int r;

		if (p->len && (r = flush_buf(p, dst)) >= 0)
			return r;
		if (p->inpipe) {
			n = splice(p->pipe[0], NULL, dst, NULL, p->inpipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				p->inpipe -= (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			return n < 0 && errno == EAGAIN ? P_WAIT : P_ERR;
		}
		if (p->eof) {
			if (!p->shut) {
				p->shut = true;
				pipe_put(w, p);
				if (!other_done && shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN)
					return P_ERR;
			}
			return P_DONE;
		}
		if (!p->splice) {
			if ((r = copy_once(w, p, src, dst)) >= 0)
				return r;
			continue;
		}
		if (pipe_get(w, p) < 0)
			return P_ERR;
		n = splice(src, NULL, p->pipe[1], NULL, PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			p->inpipe = (size_t)n;
		} else if (n == 0) {
			p->eof = true;
		} else if (errno == EAGAIN) {
			pipe_put(w, p);		/* idle: the pipe goes back to the pool */
			return P_WAIT;
		} else if (errno != EINTR) {
			return P_ERR;
		}
	}
	return P_BUDGET;
}

enum { D_UP = 1, D_DOWN = 2 };

/* Pumps the directions in @dirs (D_UP, D_DOWN): an event on one socket concerns the
 * direction it reads for (EPOLLIN) and the one it writes for (EPOLLOUT). */
static void conn_pump(struct us_worker *w, struct conn *c, unsigned dirs)
{
	int up = P_WAIT, down = P_WAIT;

	if (c->dead || c->connecting)
		return;
	if (dirs & D_UP)
		up = pump(w, &c->up, c->cfd, c->bfd, c->down.shut);
	if ((dirs & D_DOWN) && up != P_ERR)
		down = pump(w, &c->down, c->bfd, c->cfd, c->up.shut);
	if (up == P_ERR || down == P_ERR)
		conn_close(w, c, true);
	else if (c->up.shut && c->down.shut)
		conn_close(w, c, false);
	else if ((up == P_BUDGET || down == P_BUDGET) && !c->queued) {
		c->queued = true;
		c->next_ready = w->ready;
		w->ready = c;
	}
}

static int ep_add(struct us_worker *w, int fd, struct handle *h, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Connects @c to an endpoint, moving on after immediate failures; closes @c when no
 * endpoint is left to try. */
static void conn_connect(struct us_worker *w, struct conn *c, bool reset, struct us_ep *avoid)
{
	while (c->attempts < MAX_ATTEMPTS) {
		struct us_ep *ep = lb_pick(c->px, (struct sockaddr *)&c->client, reset, avoid, w->now);
		int fd;

		if (!ep)
			break;
		c->ep = ep;
		c->attempts++;
		fd = socket(ep->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			break;
		sock_opts(fd);
		if ((connect(fd, (struct sockaddr *)&ep->sa, ep->sa_len) == 0 || errno == EINPROGRESS) &&
		    ep_add(w, fd, &c->hb, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) == 0) {
			c->bfd = fd;
			c->connecting = true;
			if (timer_set(w, &c->t, w->now + attempt_ms[c->attempts - 1]) < 0)
				break;
			return;
		}
		close(fd);
		atomic_store_explicit(&ep->failed_until, w->now + US_EP_PENALTY_MS,
				      memory_order_relaxed);
		atomic_fetch_add_explicit(&c->px->failed_connects, 1, memory_order_relaxed);
		avoid = ep;
		ep_release(&c->ep);
		reset = true;
	}
	conn_close(w, c, true);		/* the client sees a reset, as from a closed port */
}

/*
 * The attempt failed: its socket closes now, the next attempt starts after the epoll
 * batch (run_retries), so that no event of this batch, which may still name the old
 * socket through &c->hb, is taken for the new one: a connecting socket's EPOLLOUT then
 * proves it connected.
 */
static void connect_failed(struct us_worker *w, struct conn *c)
{
	struct us_ep *ep = c->ep;

	close(c->bfd);
	c->bfd = -1;
	timer_del(w, &c->t);
	atomic_store_explicit(&ep->failed_until, w->now + US_EP_PENALTY_MS, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->px->failed_connects, 1, memory_order_relaxed);
	c->failed_ep = ep;		/* only compared, never dereferenced */
	ep_release(&c->ep);
	c->next_retry = w->retry;
	w->retry = c;
}

static void run_retries(struct us_worker *w)
{
	while (w->retry) {
		struct conn *c = w->retry;

		w->retry = c->next_retry;
		c->connecting = false;
		c->down.hup = false;		/* that was the failed socket's */
		if (!c->dead)
			conn_connect(w, c, true, c->failed_ep);
	}
}

static void on_backend(struct us_worker *w, struct conn *c, uint32_t events)
{
	if (c->dead || c->bfd < 0)
		return;				/* failed; the next attempt waits for the batch end */
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->down.hup = true;
	if (c->connecting) {
		if (events & (EPOLLERR | EPOLLHUP))
			return connect_failed(w, c);
		if (!(events & EPOLLOUT))
			return;
		c->connecting = false;
		timer_del(w, &c->t);
		/* the client's bytes that came while connecting, and the endpoint's if it
		 * spoke first: no read is tried where no event said there is something */
		return conn_pump(w, c, (c->client_ready ? D_UP : 0) |
				 (events & (EPOLLIN | EPOLLRDHUP) ? D_DOWN : 0));
	}
	conn_pump(w, c, (events & (EPOLLERR | EPOLLHUP) ? D_UP | D_DOWN : 0) |
			(events & (EPOLLIN | EPOLLRDHUP) ? D_DOWN : 0) |
			(events & EPOLLOUT ? D_UP : 0));
}

static void on_client(struct us_worker *w, struct conn *c, uint32_t events)
{
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->up.hup = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->client_ready = true;	/* read once connected (edges are not repeated) */
	conn_pump(w, c, (events & (EPOLLERR | EPOLLHUP) ? D_UP | D_DOWN : 0) |
			(events & (EPOLLIN | EPOLLRDHUP) ? D_UP : 0) |
			(events & EPOLLOUT ? D_DOWN : 0));
}

static void conn_new(struct us_worker *w, struct us_listener *l, int fd,
		     const struct sockaddr_storage *client)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		reset_close(fd);
		return;
	}
	c->hc.kind = H_CLIENT;
	c->hb.kind = H_BACKEND;
	c->t = (struct timer){ .idx = SIZE_MAX, .kind = T_CONNECT };
	c->cfd = fd;
	c->bfd = -1;
	c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
	c->client = *client;
	c->px = l->px;
	us_proxy_ref(c->px);
	atomic_fetch_add(&c->px->n_conns, 1);
	atomic_fetch_add_explicit(&c->px->accepted, 1, memory_order_relaxed);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	if (ep_add(w, fd, &c->hc, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0)
		return conn_close(w, c, true);
	conn_connect(w, c, false, NULL);
}

/* ---- listeners ---- */

/* What a listener is watched for: a TCP listener is shared by every worker, and only
 * one of those waiting is woken per connection (EPOLLEXCLUSIVE, which forbids
 * EPOLL_CTL_MOD: a pause takes it out of the set, a resume puts it back). */
static int listener_watch(struct us_worker *w, struct us_listener *l)
{
	return ep_add(w, l->fd, &l->h, EPOLLIN | (l->h.kind == H_TCP_LISTEN ? EPOLLEXCLUSIVE : 0));
}

static void listener_pause(struct us_worker *w, struct us_listener *l)
{
	if (l->paused)
		return;
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	l->paused = true;
	w->any_paused = true;
}

static bool at_limit(struct us_worker *w, struct us_proxy *px)
{
	if (atomic_load_explicit(&px->n_conns, memory_order_relaxed) < w->us->max_conns)
		return false;
	if (!atomic_exchange(&px->capped, true))
		kp_log(w->us->ctx, KP_LOG_WARN, "userspace: service %s/%s: %u connections open, "
		       "the limit per proxy (--userspace-max-conns): new ones wait until some close",
		       px->label, kp_protocol_name(px->proto), w->us->max_conns);
	return true;
}

static void resume_paused(struct us_worker *w)
{
	bool still = false;

	if (!w->any_paused || w->now < w->resume_at)
		return;
	for (struct us_listener *l = w->listeners; l; l = l->next) {
		if (!l->paused || l->dead)
			continue;
		if (atomic_load_explicit(&l->px->n_conns, memory_order_relaxed) >= w->us->max_conns) {
			still = true;
			continue;
		}
		if (atomic_exchange(&l->px->capped, false))
			kp_log(w->us->ctx, KP_LOG_INFO, "userspace: service %s/%s: below the "
			       "connection limit again", l->px->label, kp_protocol_name(l->px->proto));
		if (listener_watch(w, l) < 0) {
			still = true;		/* tried again on the next round */
			continue;
		}
		l->paused = false;
	}
	w->any_paused = still;
}

static void on_accept(struct us_worker *w, struct us_listener *l)
{
	for (int i = 0; i < ACCEPT_BUDGET && !l->dead; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd;

		if (at_limit(w, l->px))
			return listener_pause(w, l);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				kp_log(w->us->ctx, KP_LOG_WARN, "userspace: service %s/%s: accept: "
				       "%s; pausing for 100 ms", l->px->label,
				       kp_protocol_name(l->px->proto), kp_strerror(-errno));
				w->resume_at = w->now + 100;
				listener_pause(w, l);
			}
			return;
		}
		if (atomic_load_explicit(&l->px->retired, memory_order_relaxed)) {
			reset_close(fd);
			continue;
		}
		conn_new(w, l, fd, &ss);
	}
}

/* ---- UDP ---- */

static uint32_t sa_hash(const struct sockaddr_storage *ss)
{
	const unsigned char *p;
	size_t len;
	uint32_t h = 2166136261u;

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		p = (const void *)&s6->sin6_addr;
		len = 16;
		h = (h ^ s6->sin6_port) * 16777619u;
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		p = (const void *)&s4->sin_addr;
		len = 4;
		h = (h ^ s4->sin_port) * 16777619u;
	}
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static bool sa_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

static struct flow **flow_slot(struct us_listener *l, const struct sockaddr_storage *client)
{
	struct flow **pp = &l->fb[sa_hash(client) & (l->f_cap - 1)];

	while (*pp && !sa_equal(&(*pp)->client, client))
		pp = &(*pp)->hnext;
	return pp;
}

static void flow_grow(struct us_listener *l)
{
	size_t cap = l->f_cap * 2;
	struct flow **b = calloc(cap, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < l->f_cap; i++) {
		for (struct flow *f = l->fb[i], *next; f; f = next) {
			size_t k = sa_hash(&f->client) & (cap - 1);

			next = f->hnext;
			f->hnext = b[k];
			b[k] = f;
		}
	}
	free(l->fb);
	l->fb = b;
	l->f_cap = cap;
}

static void flow_close(struct us_worker *w, struct flow *f)
{
	struct flow **pp;

	if (f->dead)
		return;
	f->dead = true;
	timer_del(w, &f->t);
	close(f->fd);
	f->fd = -1;
	ep_release(&f->ep);
	atomic_fetch_sub(&f->l->px->n_conns, 1);
	pp = flow_slot(f->l, &f->client);
	if (*pp == f)
		*pp = f->hnext;
	f->l->n_flows--;
	f->next_dead = w->dead_flows;
	w->dead_flows = f;
}

static struct flow *flow_new(struct us_worker *w, struct us_listener *l,
			     const struct sockaddr_storage *client, socklen_t client_len,
			     const struct kp_addr *local, int ifindex)
{
	struct flow *f;
	struct us_ep *ep;

	if (!l->fb) {
		l->fb = calloc(64, sizeof(*l->fb));
		if (!l->fb)
			return NULL;
		l->f_cap = 64;
	}
	ep = lb_pick(l->px, (const struct sockaddr *)client, false, NULL, w->now);
	if (!ep)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		goto out_ep;
	f->h.kind = H_FLOW;
	f->t = (struct timer){ .idx = SIZE_MAX, .kind = T_FLOW };
	f->l = l;
	f->ep = ep;
	f->client = *client;
	f->client_len = client_len;
	f->local = *local;
	f->ifindex = ifindex;
	f->last_ms = w->now;
	f->fd = socket(ep->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0)
		goto out_free;
	if (connect(f->fd, (struct sockaddr *)&ep->sa, ep->sa_len) < 0 ||
	    ep_add(w, f->fd, &f->h, EPOLLIN) < 0 ||
	    timer_set(w, &f->t, w->now + w->us->udp_timeout_ms) < 0)
		goto out_close;
	atomic_fetch_add(&l->px->n_conns, 1);
	atomic_fetch_add_explicit(&l->px->accepted, 1, memory_order_relaxed);
	*flow_slot(l, client) = f;
	if (++l->n_flows > l->f_cap)
		flow_grow(l);
	return f;
out_close:
	close(f->fd);
out_free:
	free(f);
out_ep:
	atomic_fetch_sub(&ep->conns, 1);
	return NULL;
}

/* The destination address of a received datagram, from its IP_PKTINFO/IPV6_PKTINFO. */
static void dgram_local(struct msghdr *m, struct kp_addr *ret, int *ret_ifindex)
{
	memset(ret, 0, sizeof(*ret));
	*ret_ifindex = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			ret->family = AF_INET;
			ret->v4 = pi.ipi_addr;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			ret->family = AF_INET6;
			ret->v6 = pi.ipi6_addr;
			*ret_ifindex = (int)pi.ipi6_ifindex;
		}
	}
}

static void udp_prepare(struct us_worker *w, bool with_names)
{
	for (int i = 0; i < UDP_BATCH; i++) {
		w->iov[i] = (struct iovec){ .iov_base = w->bufs[i], .iov_len = UDP_BUF };
		w->msgs[i].msg_hdr = (struct msghdr){
			.msg_name = with_names ? &w->names[i] : NULL,
			.msg_namelen = with_names ? sizeof(w->names[i]) : 0,
			.msg_iov = &w->iov[i], .msg_iovlen = 1,
			.msg_control = with_names ? w->ctl[i] : NULL,
			.msg_controllen = with_names ? sizeof(w->ctl[i]) : 0,
		};
	}
}

static void on_udp_listener(struct us_worker *w, struct us_listener *l)
{
	struct us_proxy *px = l->px;
	int n;

	if (l->dead)
		return;
	udp_prepare(w, true);
	n = recvmmsg(l->fd, w->msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
	for (int i = 0; i < n && !l->dead; i++) {
		struct msghdr *m = &w->msgs[i].msg_hdr;
		struct flow *f;
		struct kp_addr local;
		int ifindex;

		if (!l->fb)
			f = NULL;
		else
			f = *flow_slot(l, &w->names[i]);
		if (f && !atomic_load_explicit(&f->ep->live, memory_order_relaxed)) {
			flow_close(w, f);	/* its endpoint left: the flow moves */
			f = NULL;
		}
		if (!f) {
			dgram_local(m, &local, &ifindex);
			if (at_limit(w, px) ||
			    !(f = flow_new(w, l, &w->names[i], m->msg_namelen, &local, ifindex))) {
				atomic_fetch_add_explicit(&px->dropped, 1, memory_order_relaxed);
				continue;
			}
		}
		f->last_ms = w->now;
		if (send(f->fd, w->bufs[i], w->msgs[i].msg_len, MSG_DONTWAIT) < 0)
			atomic_fetch_add_explicit(&px->dropped, 1, memory_order_relaxed);
	}
}

/* Replies from the endpoint go back through the listener, from the address the client
 * sent to. */
static void on_flow(struct us_worker *w, struct flow *f)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} u;
	int n, sent;

	if (f->dead)
		return;
	udp_prepare(w, false);
	n = recvmmsg(f->fd, w->msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return;		/* ECONNREFUSED: the endpoint's port is closed; the client retries */
	memset(&u, 0, sizeof(u));
	for (int i = 0; i < n; i++) {
		struct msghdr *m = &w->msgs[i].msg_hdr;
		struct cmsghdr *c;

		w->iov[i].iov_len = w->msgs[i].msg_len;
		m->msg_name = &f->client;
		m->msg_namelen = f->client_len;
		m->msg_control = u.buf;
		if (f->local.family == AF_INET6) {
			struct in6_pktinfo pi = { .ipi6_addr = f->local.v6,
						  .ipi6_ifindex = (unsigned)f->ifindex };

			m->msg_controllen = CMSG_SPACE(sizeof(pi));
			c = CMSG_FIRSTHDR(m);
			c->cmsg_level = IPPROTO_IPV6;
			c->cmsg_type = IPV6_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		} else if (f->local.family == AF_INET) {
			struct in_pktinfo pi = { .ipi_spec_dst = f->local.v4 };

			m->msg_controllen = CMSG_SPACE(sizeof(pi));
			c = CMSG_FIRSTHDR(m);
			c->cmsg_level = IPPROTO_IP;
			c->cmsg_type = IP_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		} else {
			m->msg_control = NULL;
			m->msg_controllen = 0;
		}
	}
	sent = sendmmsg(f->l->fd, w->msgs, (unsigned)n, MSG_DONTWAIT);
	if (sent < n)
		atomic_fetch_add_explicit(&f->l->px->dropped, (unsigned)(n - (sent > 0 ? sent : 0)),
					  memory_order_relaxed);
	f->last_ms = w->now;
}

/* ---- commands and retirement ---- */

static int post(struct us_worker *w, const struct cmd *c)
{
	uint64_t one = 1;

	pthread_mutex_lock(&w->qlock);
	if (w->n_q == w->cap_q) {
		size_t cap = w->cap_q ? w->cap_q * 2 : 16;
		struct cmd *q = realloc(w->q, cap * sizeof(*q));

		if (!q) {
			pthread_mutex_unlock(&w->qlock);
			return -ENOMEM;
		}
		w->q = q;
		w->cap_q = cap;
	}
	w->q[w->n_q++] = *c;
	pthread_mutex_unlock(&w->qlock);
	/* fails only when the counter is saturated, and then the worker looks anyway */
	(void)!write(w->evfd, &one, sizeof(one));
	return 0;
}

int us_worker_add_listener(struct us_worker *w, struct us_proxy *px, int fd)
{
	struct us_listener *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	l->h.kind = px->proto == KP_PROTO_UDP ? H_UDP_LISTEN : H_TCP_LISTEN;
	l->fd = fd;
	l->px = px;
	us_proxy_ref(px);
	px->lst[w->idx] = l;
	r = post(w, &(struct cmd){ .op = CMD_ADD, .l = l });
	if (r < 0) {
		px->lst[w->idx] = NULL;
		us_proxy_unref(px);
		free(l);
	}
	return r;
}

void us_worker_retire(struct us_worker *w, struct us_proxy *px)
{
	us_proxy_ref(px);
	if (post(w, &(struct cmd){ .op = CMD_RETIRE, .px = px }) < 0)
		us_proxy_unref(px);	/* out of memory: its listener stays until the end */
}

static void listener_close(struct us_worker *w, struct us_listener *l)
{
	if (l->dead)
		return;
	l->dead = true;
	close(l->fd);			/* leaves the epoll set with it */
	for (size_t i = 0; i < l->f_cap; i++)
		while (l->fb[i])
			flow_close(w, l->fb[i]);
}

static void close_conns_of(struct us_worker *w, struct us_proxy *px)
{
	for (struct conn *c = w->conns, *next; c; c = next) {
		next = c->next;
		if (c->px == px)
			conn_close(w, c, true);
	}
}

static void do_retire(struct us_worker *w, struct us_proxy *px)
{
	struct us_listener *l = px->lst[w->idx];

	if (l)
		listener_close(w, l);
	if (!w->us->grace_ms) {
		close_conns_of(w, px);
		us_proxy_unref(px);
		return;
	}
	if (w->n_ret == w->cap_ret) {
		size_t cap = w->cap_ret ? w->cap_ret * 2 : 8;
		struct retiring *r = realloc(w->ret, cap * sizeof(*r));

		if (!r) {			/* no room to wait: close now */
			close_conns_of(w, px);
			us_proxy_unref(px);
			return;
		}
		w->ret = r;
		w->cap_ret = cap;
	}
	w->ret[w->n_ret++] = (struct retiring){ .px = px, .at = w->now + w->us->grace_ms };
}

static void run_commands(struct us_worker *w)
{
	struct cmd *q;
	size_t n;
	uint64_t v;

	if (read(w->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&w->qlock);
	q = w->q;
	n = w->n_q;
	w->q = NULL;
	w->n_q = w->cap_q = 0;
	pthread_mutex_unlock(&w->qlock);
	for (size_t i = 0; i < n; i++) {
		struct us_listener *l = q[i].l;

		switch (q[i].op) {
		case CMD_ADD:
			l->next = w->listeners;
			w->listeners = l;
			if (listener_watch(w, l) < 0)
				kp_log(w->us->ctx, KP_LOG_WARN, "userspace: service %s/%s: worker %u "
				       "cannot watch its listener: %s", l->px->label,
				       kp_protocol_name(l->px->proto), w->idx, kp_strerror(-errno));
			break;
		case CMD_RETIRE:
			do_retire(w, q[i].px);
			break;
		case CMD_STOP:
			w->stop = true;
			break;
		}
	}
	free(q);
}

static void run_retiring(struct us_worker *w)
{
	for (size_t i = 0; i < w->n_ret;) {
		if (w->ret[i].at > w->now) {
			i++;
			continue;
		}
		close_conns_of(w, w->ret[i].px);
		us_proxy_unref(w->ret[i].px);
		w->ret[i] = w->ret[--w->n_ret];
	}
}

static void run_timers(struct us_worker *w)
{
	while (w->n_heap && w->heap[0]->at <= w->now) {
		struct timer *t = w->heap[0];

		timer_del(w, t);
		if (t->kind == T_CONNECT) {
			struct conn *c = container_of(t, struct conn, t);

			if (c->connecting)
				connect_failed(w, c);
		} else {
			struct flow *f = container_of(t, struct flow, t);
			int64_t at = f->last_ms + w->us->udp_timeout_ms;

			if (at > w->now && timer_set(w, t, at) == 0)
				continue;
			flow_close(w, f);
		}
	}
}

/* Frees what was closed during the batch, and listeners nothing can name any more. */
static void reap(struct us_worker *w)
{
	for (struct conn **pp = &w->dead_conns; *pp;) {
		struct conn *c = *pp;

		if (c->queued) {		/* still on the ready list: freed next round */
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		conn_free(c);
	}
	while (w->dead_flows) {
		struct flow *f = w->dead_flows;

		w->dead_flows = f->next_dead;
		free(f);
	}
	for (struct us_listener **pp = &w->listeners; *pp;) {
		struct us_listener *l = *pp;

		if (!l->dead) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		l->px->lst[w->idx] = NULL;
		us_proxy_unref(l->px);
		free(l->fb);
		free(l);
	}
}

static int wait_ms(struct us_worker *w)
{
	int64_t t = 1000;

	if (w->ready)
		return 0;
	if (w->n_heap)
		t = w->heap[0]->at - w->now;
	for (size_t i = 0; i < w->n_ret; i++)
		if (w->ret[i].at - w->now < t)
			t = w->ret[i].at - w->now;
	if (w->any_paused && t > 100)
		t = 100;
	return t < 0 ? 0 : (int)t;
}

static void dispatch(struct us_worker *w, struct handle *h, uint32_t events)
{
	switch (h->kind) {
	case H_EVENT:
		run_commands(w);
		break;
	case H_TCP_LISTEN:
		on_accept(w, container_of(h, struct us_listener, h));
		break;
	case H_UDP_LISTEN:
		on_udp_listener(w, container_of(h, struct us_listener, h));
		break;
	case H_CLIENT:
		on_client(w, container_of(h, struct conn, hc), events);
		break;
	case H_BACKEND:
		on_backend(w, container_of(h, struct conn, hb), events);
		break;
	case H_FLOW:
		on_flow(w, container_of(h, struct flow, h));
		break;
	}
}

static void shutdown_all(struct us_worker *w)
{
	while (w->conns)
		conn_close(w, w->conns, true);
	for (struct us_listener *l = w->listeners; l; l = l->next)
		listener_close(w, l);
	for (size_t i = 0; i < w->n_ret; i++)
		us_proxy_unref(w->ret[i].px);
	w->n_ret = 0;
	reap(w);
	while (w->n_pool) {
		w->n_pool--;
		close(w->pool[w->n_pool][0]);
		close(w->pool[w->n_pool][1]);
	}
}

static void *worker_main(void *arg)
{
	struct us_worker *w = arg;
	struct epoll_event ev[EVENTS];
	char name[16];

	snprintf(name, sizeof(name), "kproxyd-us%u", w->idx);
	pthread_setname_np(pthread_self(), name);
	while (!w->stop) {
		int n = epoll_wait(w->epfd, ev, EVENTS, wait_ms(w));
		struct conn *ready = w->ready;

		w->now = us_now_ms();
		w->ready = NULL;
		for (int i = 0; i < n; i++)
			dispatch(w, ev[i].data.ptr, ev[i].events);
		run_retries(w);
		while (ready) {			/* budget spent last round: go on */
			struct conn *c = ready;

			ready = c->next_ready;
			c->queued = false;
			conn_pump(w, c, D_UP | D_DOWN);
		}
		run_timers(w);
		run_retries(w);
		run_retiring(w);
		resume_paused(w);
		reap(w);
	}
	shutdown_all(w);
	return NULL;
}

int us_worker_start(struct us *us, unsigned idx, struct us_worker **ret)
{
	struct us_worker *w = calloc(1, sizeof(*w));
	sigset_t all, old;
	int r;

	if (!w)
		return -ENOMEM;
	w->us = us;
	w->idx = idx;
	w->evh.kind = H_EVENT;
	w->now = us_now_ms();
	pthread_mutex_init(&w->qlock, NULL);
	w->bufs = malloc(UDP_BATCH * sizeof(*w->bufs));
	w->scratch = w->bufs ? w->bufs[0] : NULL;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!w->bufs || w->epfd < 0 || w->evfd < 0) {
		r = w->bufs ? -errno : -ENOMEM;
		goto fail;
	}
	r = ep_add(w, w->evfd, &w->evh, EPOLLIN);
	if (r < 0)
		goto fail;
	/* the thread takes no signals: they belong to the embedding program's threads */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	*ret = w;
	return 0;
fail:
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->evfd >= 0)
		close(w->evfd);
	free(w->bufs);
	pthread_mutex_destroy(&w->qlock);
	free(w);
	return r;
}

void us_worker_stop(struct us_worker *w)
{
	if (!w)
		return;
	while (post(w, &(struct cmd){ .op = CMD_STOP }) < 0)
		usleep(1000);		/* out of memory: the queue drains as the worker runs */
	pthread_join(w->thread, NULL);
	/* commands posted after STOP (none are) would leak their references */
	for (size_t i = 0; i < w->n_q; i++) {
		if (w->q[i].op == CMD_ADD) {
			close(w->q[i].l->fd);
			w->q[i].l->px->lst[w->idx] = NULL;
			us_proxy_unref(w->q[i].l->px);
			free(w->q[i].l);
		} else if (w->q[i].op == CMD_RETIRE) {
			us_proxy_unref(w->q[i].px);
		}
	}
	free(w->q);
	free(w->heap);
	free(w->ret);
	close(w->epfd);
	close(w->evfd);
	free(w->bufs);
	pthread_mutex_destroy(&w->qlock);
	free(w);
}
