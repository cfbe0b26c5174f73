// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The server of the userspace-proxy benchmark (tests/bench/run-userspace-bench), run in
 * each pod namespace. It owns the server side of the three requests tcp-load makes; each
 * connection carries one request line and then the data it asks for:
 *   PING\n     -> PONG\n, then close (the server closes first, so TIME_WAIT stays here,
 *                 not on the client's or the proxy's ephemeral ports)
 *   SEND n\n   -> n bytes from a static buffer, as fast as the socket takes them, then close
 *   RECV n\n   -> reads n bytes, replies GOT n <FNV-1a 64 of the bytes, hex>\n, then close
 * Anything else gets ERR\n. Each of -t threads has its own SO_REUSEPORT listener and
 * epoll set (level-triggered, non-blocking sockets). Prints "ready" once every listener
 * listens; runs until SIGTERM or SIGINT, then frees everything and exits 0.
 * Usage: tcp-sink PORT [-t THREADS]
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64
#define LINE_SIZE 64			/* longest request line, with its newline */
#define IO_SIZE (256 * 1024)		/* one read or write */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

enum conn_state {
	ST_LINE,			/* reading the request line */
	ST_SEND,			/* writing @left bytes of send_buf */
	ST_RECV,			/* reading @left more bytes */
	ST_REPLY,			/* writing @line from @off */
};

struct conn {
	int fd;
	enum conn_state state;
	uint32_t events;		/* what the epoll set waits for */
	char line[LINE_SIZE];		/* the request line so far, later the reply */
	size_t len;			/* bytes in @line */
	size_t off;			/* bytes of the reply written */
	uint64_t left;			/* bytes still to send or receive */
	uint64_t got;			/* bytes received after a RECV line */
	uint64_t hash;			/* FNV-1a 64 of those bytes */
	struct conn *prev, *next;	/* the worker's open connections */
};

struct worker {
	int lfd;			/* this thread's listener */
	int epfd;
	int stopfd;			/* eventfd, readable when the process stops */
	pthread_t tid;
	struct conn *conns;		/* open connections, freed at exit */
	bool warned;			/* an accept error was printed */
	char buf[IO_SIZE];		/* RECV data */
};

static char send_buf[IO_SIZE];		/* what SEND writes; read-only once threads run */

static uint64_t fnv1a(uint64_t h, const void *p, size_t size)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < size; i++) {
		h ^= b[i];
		h *= FNV_PRIME;
	}
	return h;
}

static void conn_close(struct worker *w, struct conn *c)
{
	/* close() drops the fd from the epoll set; queued data is still delivered */
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static int conn_want(struct worker *w, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->events == events)
		return 0;
	c->events = events;
	return epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0 ? -errno : 0;
}

/* Starts writing @text as the reply; the connection closes once it is out. */
static void conn_reply(struct conn *c, const char *text)
{
	snprintf(c->line, sizeof(c->line), "%s", text);
	c->len = strlen(c->line);
	c->off = 0;
	c->state = ST_REPLY;
}

static void conn_got_reply(struct conn *c)
{
	char text[LINE_SIZE];

	snprintf(text, sizeof(text), "GOT %llu %016llx\n", (unsigned long long)c->got,
		 (unsigned long long)c->hash);
	conn_reply(c, text);
}

/* Counts @size bytes of RECV data; replies once they are all in. */
static void conn_recv_data(struct conn *c, const char *p, size_t size)
{
	if (size > c->left)
		size = (size_t)c->left;	/* past the announced size: ignored */
	c->hash = fnv1a(c->hash, p, size);
	c->got += size;
	c->left -= size;
	if (!c->left)
		conn_got_reply(c);
}

/* The size in "CMD <size>" if @line is that command, else -1. */
static long long request_size(const char *line, const char *cmd)
{
	size_t n = strlen(cmd);
	unsigned long long v;
	char *end;

	if (strncmp(line, cmd, n) || line[n] != ' ' || line[n + 1] < '0' || line[n + 1] > '9')
		return -1;
	errno = 0;
	v = strtoull(line + n + 1, &end, 10);
	return errno || *end || v > INT64_MAX ? -1 : (long long)v;
}

/* Parses the complete request line in @c->line (its first @n bytes, newline included). */
static void conn_request(struct conn *c, size_t n)
{
	long long v;

	c->line[n - 1] = '\0';
	if (!strcmp(c->line, "PING")) {
		conn_reply(c, "PONG\n");
	} else if ((v = request_size(c->line, "SEND")) >= 0) {
		c->state = ST_SEND;
		c->left = (uint64_t)v;
	} else if ((v = request_size(c->line, "RECV")) >= 0) {
		c->state = ST_RECV;
		c->left = (uint64_t)v;
		c->hash = FNV_OFFSET;
		if (!v)
			conn_got_reply(c);
		else
			conn_recv_data(c, c->line + n, c->len - n);
	} else {
		conn_reply(c, "ERR\n");
	}
}

/* Reads what the state wants; returns false once the connection is to be closed. */
static bool conn_read(struct worker *w, struct conn *c)
{
	ssize_t n;
	char *nl;

	if (c->state == ST_LINE) {
		n = read(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len);
		if (n <= 0)
			return n < 0 && errno == EAGAIN;
		c->len += (size_t)n;
		c->line[c->len] = '\0';
		nl = memchr(c->line, '\n', c->len);
		if (!nl) {
			if (c->len < sizeof(c->line) - 1)
				return true;
			conn_reply(c, "ERR\n");
		} else {
			conn_request(c, (size_t)(nl - c->line) + 1);
		}
		return true;
	}
	/* ST_RECV */
	n = read(c->fd, w->buf, c->left < sizeof(w->buf) ? (size_t)c->left : sizeof(w->buf));
	if (n < 0)
		return errno == EAGAIN;
	if (n == 0) {
		/* the client stopped early: say how much arrived, it will see the difference */
		conn_got_reply(c);
		return true;
	}
	conn_recv_data(c, w->buf, (size_t)n);
	return true;
}

/* Writes what the state has; returns false once the connection is to be closed. */
static bool conn_write(struct conn *c)
{
	ssize_t n;

	for (;;) {
		if (c->state == ST_SEND) {
			if (!c->left)
				return false;
			n = send(c->fd, send_buf, c->left < IO_SIZE ? (size_t)c->left : IO_SIZE,
				 MSG_NOSIGNAL);
		} else {
			if (c->off == c->len)
				return false;
			n = send(c->fd, c->line + c->off, c->len - c->off, MSG_NOSIGNAL);
		}
		if (n < 0)
			return errno == EAGAIN;
		if (c->state == ST_SEND)
			c->left -= (uint64_t)n;
		else
			c->off += (size_t)n;
	}
}

/* Runs one connection as far as its socket allows. */
static void conn_run(struct worker *w, struct conn *c, uint32_t events)
{
	bool open = true;

	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
	    (c->state == ST_LINE || c->state == ST_RECV))
		open = conn_read(w, c);
	if (open && (c->state == ST_SEND || c->state == ST_REPLY)) {
		open = conn_write(c);
		if (open && conn_want(w, c, EPOLLOUT) < 0)
			open = false;
	}
	if (!open)
		conn_close(w, c);
}

static void worker_accept(struct worker *w)
{
	for (;;) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct conn *c;

		if (fd < 0) {
			if (errno == EAGAIN)
				return;
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			/* EMFILE, ENOBUFS, ...: the backlog waits for the next wake-up */
			if (!w->warned)
				fprintf(stderr, "tcp-sink: accept: %s (said once)\n", strerror(errno));
			w->warned = true;
			return;
		}
		c = calloc(1, sizeof(*c));
		ev.data.ptr = c;
		if (!c || epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			fprintf(stderr, "tcp-sink: %s\n", c ? strerror(errno) : "out of memory");
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->events = EPOLLIN;
		c->next = w->conns;
		if (w->conns)
			w->conns->prev = c;
		w->conns = c;
		/* the request line is often in already: save an epoll round trip */
		conn_run(w, c, EPOLLIN);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[64];

	for (;;) {
		int n = epoll_wait(w->epfd, evs, 64, -1);

		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "tcp-sink: epoll_wait: %s\n", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == w)
				worker_accept(w);
			else if (evs[i].data.ptr == &w->stopfd)
				goto out;
			else
				conn_run(w, evs[i].data.ptr, evs[i].events);
		}
	}
out:
	while (w->conns)
		conn_close(w, w->conns);
	return NULL;
}

static int listener_open(uint16_t port, bool reuseport)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4096) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int worker_init(struct worker *w, uint16_t port, bool reuseport, int stopfd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };
	struct epoll_event stop = { .events = EPOLLIN, .data.ptr = &w->stopfd };

	w->stopfd = stopfd;
	w->lfd = listener_open(port, reuseport);
	if (w->lfd < 0)
		return w->lfd;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lfd, &ev) < 0 ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, stopfd, &stop) < 0)
		return -errno;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: tcp-sink PORT [-t THREADS]\n");
	exit(2);
}

static unsigned long parse_num(const char *s, unsigned long min, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	struct worker *ws[MAX_THREADS] = { NULL };
	unsigned long port = 0, n_threads = 1, started = 0;
	int opt, r, sig, stopfd, ret = 1;
	uint64_t one = 1;
	sigset_t set;

	while ((opt = getopt(argc, argv, "t:h")) != -1) {
		if (opt == 't')
			n_threads = parse_num(optarg, 1, MAX_THREADS);
		else
			usage();
	}
	if (optind != argc - 1)
		usage();
	port = parse_num(argv[optind], 1, 65535);
	for (size_t i = 0; i < sizeof(send_buf); i++)
		send_buf[i] = (char)('a' + i % 26);

	/* threads inherit the mask: only sigwait() below sees SIGTERM and SIGINT */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	stopfd = eventfd(0, EFD_CLOEXEC);
	if (stopfd < 0) {
		fprintf(stderr, "tcp-sink: eventfd: %s\n", strerror(errno));
		return 1;
	}
	for (unsigned long i = 0; i < n_threads; i++) {
		ws[i] = calloc(1, sizeof(*ws[i]));
		if (!ws[i]) {
			fprintf(stderr, "tcp-sink: out of memory\n");
			goto out;
		}
		ws[i]->lfd = ws[i]->epfd = -1;
		r = worker_init(ws[i], (uint16_t)port, n_threads > 1, stopfd);
		if (r < 0) {
			fprintf(stderr, "tcp-sink: listen on port %lu: %s\n", port, strerror(-r));
			goto out;
		}
	}
	for (; started < n_threads; started++) {
		r = pthread_create(&ws[started]->tid, NULL, worker_main, ws[started]);
		if (r) {
			fprintf(stderr, "tcp-sink: pthread_create: %s\n", strerror(r));
			goto out;
		}
	}
	printf("ready\n");
	fflush(stdout);
	while (sigwait(&set, &sig))
		;
	ret = 0;
out:
	if (write(stopfd, &one, sizeof(one)) != sizeof(one))
		ret = 1;
	for (unsigned long i = 0; i < started; i++)
		pthread_join(ws[i]->tid, NULL);
	for (unsigned long i = 0; i < n_threads; i++) {
		if (!ws[i])
			continue;
		if (ws[i]->lfd >= 0)
			close(ws[i]->lfd);
		if (ws[i]->epfd >= 0)
			close(ws[i]->epfd);
		free(ws[i]);
	}
	close(stopfd);
	return ret;
}
