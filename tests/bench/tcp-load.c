// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The load client of the userspace-proxy benchmark (tests/bench/run-userspace-bench),
 * the peer of tcp-sink. It owns the two measurements and their key=value lines:
 *
 *   tcp-load [-T SECS] [-u] stream HOST PORT BYTES
 *	one connection; downloads BYTES (request "SEND n"), or with -u uploads them
 *	("RECV n", then the data; the sink's "GOT n hash" reply is checked against the
 *	FNV-1a 64 of what was sent, computed before the clock starts). Time runs from the
 *	request to the last byte (download: the sink's close; upload: its reply).
 *	mode=stream dir=download|upload bytes=N seconds=S gbit_per_s=X
 *
 *   tcp-load [-T SECS] [-t THREADS] [-b ADDR[,ADDR...]] rate HOST PORT -c CONC -d SECS
 *	keeps CONC short connections in flight for SECS (split over THREADS epoll loops):
 *	non-blocking connect, "PING\n", read "PONG\n", then read on to the sink's close
 *	and close (the sink closes first, so TIME_WAIT is not on our ports). A connection
 *	counts once it is closed with the right reply before SECS are over; those still
 *	in flight then are dropped, neither counted nor errors. Connect latency runs from
 *	connect() to its completion, request latency from connect() to the whole reply
 *	(CLOCK_MONOTONIC). -b binds new connections round-robin to the given source
 *	addresses (IP_BIND_ADDRESS_NO_PORT: the port is picked at connect time, per
 *	4-tuple). A connection taking over 5 s is an error.
 *	mode=rate conns=N errors=E eaddrnotavail=A timeouts=O seconds=S conns_per_s=X
 *	connect_p50_us=.. connect_p99_us=.. request_p50_us=.. request_p99_us=..
 *
 * -T bounds the whole run (default 60 s). Exit status 1 on failure (stream: any error;
 * rate: no connection completed), 2 on bad usage; errors go to stderr.
 */
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_SOURCES 64
#define IO_SIZE (256 * 1024)
#define CONN_TIMEOUT_NS (5 * NS)
#define NS 1000000000LL
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

struct target {
	struct sockaddr_storage sa;	/* where to connect */
	socklen_t sa_len;
	struct sockaddr_storage src[MAX_SOURCES];	/* -b addresses, port 0 */
	socklen_t src_len;
	size_t n_src;
	const char *name;		/* HOST:PORT, for messages */
};

struct samples {
	int64_t *v;			/* nanoseconds */
	size_t n, cap;
};

enum slot_state {
	SL_IDLE,			/* no socket; started again on the next turn */
	SL_CONNECTING,
	SL_READING,			/* PING sent: reading the reply, then the close */
};

struct slot {
	int fd;
	enum slot_state state;
	int64_t t0;			/* connect() called */
	size_t len;			/* bytes of the reply PONG\n read so far */
};

struct rate_worker {
	const struct target *tg;
	int epfd;
	struct slot *slots;
	size_t n_slots;
	size_t next_src;		/* round-robin over tg->src */
	int64_t end;			/* CLOCK_MONOTONIC ns: stop here */
	uint64_t conns, errors, eaddrnotavail, timeouts;
	struct samples connect, request;
	char first_err[160];		/* the first error, for stderr */
	pthread_t tid;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("tcp-load: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tcp-load [-T SECS] [-u] stream HOST PORT BYTES\n"
		"       tcp-load [-T SECS] [-t THREADS] [-b ADDR[,ADDR...]] rate HOST PORT "
		"-c CONC -d SECS\n");
	exit(2);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t size)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < size; i++) {
		h ^= b[i];
		h *= FNV_PRIME;
	}
	return h;
}

static unsigned long long parse_num(const char *s, unsigned long long min,
				    unsigned long long max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		usage();
	return v;
}

/* Fills @sa from a numeric IPv4 or IPv6 address and a port. */
static int parse_addr(const char *host, const char *port, struct sockaddr_storage *sa,
		      socklen_t *ret_len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai;

	if (getaddrinfo(host, port, &hints, &ai))
		return -EINVAL;
	memcpy(sa, ai->ai_addr, ai->ai_addrlen);
	*ret_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void samples_add(struct samples *s, int64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 65536;
		int64_t *p = realloc(s->v, cap * sizeof(*p));

		if (!p)
			die("out of memory for %zu latency samples", cap);
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = v;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile @p (0..1) of sorted @s, in microseconds; 0 if empty. */
static double percentile_us(const struct samples *s, double p)
{
	size_t i = (size_t)(p * (double)s->n + 0.999999);

	if (!s->n)
		return 0;
	if (i < 1)
		i = 1;
	if (i > s->n)
		i = s->n;
	return (double)s->v[i - 1] / 1e3;
}

/* ---- rate ---- */

/* Counts one failed connection: @what failed with errno @err, or for reason @why. */
static void rate_error(struct rate_worker *w, const char *what, int err, const char *why)
{
	w->errors++;
	if (err == EADDRNOTAVAIL)
		w->eaddrnotavail++;
	if (!w->first_err[0])
		snprintf(w->first_err, sizeof(w->first_err), "%s %s: %s", what, w->tg->name,
			 err ? strerror(err) : why);
}

static void slot_close(struct slot *s)
{
	close(s->fd);
	s->fd = -1;
	s->state = SL_IDLE;
}

static void slot_start(struct rate_worker *w, struct slot *s)
{
	const struct target *tg = w->tg;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				  .data.ptr = s };
	int one = 1;

	s->fd = socket(tg->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		rate_error(w, "socket", errno, NULL);
		s->state = SL_IDLE;
		return;
	}
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (tg->n_src) {
		const struct sockaddr_storage *src = &tg->src[w->next_src++ % tg->n_src];

		setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(s->fd, (const struct sockaddr *)src, tg->src_len) < 0) {
			rate_error(w, "bind", errno, NULL);
			slot_close(s);
			return;
		}
	}
	s->len = 0;
	s->t0 = now_ns();
	if (connect(s->fd, (const struct sockaddr *)&tg->sa, tg->sa_len) < 0 &&
	    errno != EINPROGRESS) {
		rate_error(w, "connect", errno, NULL);
		slot_close(s);
		return;
	}
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		rate_error(w, "epoll_ctl", errno, NULL);
		slot_close(s);
		return;
	}
	/* even a connect that completed at once reports EPOLLOUT (edge: first readiness) */
	s->state = SL_CONNECTING;
}

/* The connect finished (or failed): send the request. Returns false on error. */
static bool slot_connected(struct rate_worker *w, struct slot *s, int64_t t)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		rate_error(w, "connect", err, NULL);
		return false;
	}
	samples_add(&w->connect, t - s->t0);
	if (send(s->fd, "PING\n", 5, MSG_NOSIGNAL) != 5) {
		rate_error(w, "send", errno, NULL);
		return false;
	}
	s->state = SL_READING;
	return true;
}

/* Reads until EAGAIN. Returns 1 while open, 0 when the connection is done, -1 on error. */
static int slot_read(struct rate_worker *w, struct slot *s)
{
	static const char pong[] = "PONG\n";
	char buf[64];

	for (;;) {
		ssize_t n = read(s->fd, buf, sizeof(buf));

		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n < 0) {
			rate_error(w, "read", errno, NULL);
			return -1;
		}
		if (n == 0) {
			if (s->len == 5)
				return 0;
			rate_error(w, "read", 0, "closed before the whole reply");
			return -1;
		}
		if (s->len + (size_t)n > 5 || memcmp(buf, &pong[s->len], (size_t)n)) {
			rate_error(w, "read", 0, "not the reply PONG");
			return -1;
		}
		s->len += (size_t)n;
		if (s->len == 5)
			samples_add(&w->request, now_ns() - s->t0);
	}
}

static void slot_event(struct rate_worker *w, struct slot *s, uint32_t events)
{
	int64_t t = now_ns();
	int r = 1;

	if (s->state == SL_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (!slot_connected(w, s, t))
			r = -1;
	}
	if (r > 0 && s->state == SL_READING && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP |
							     EPOLLERR)))
		r = slot_read(w, s);
	if (r > 0)
		return;
	if (r == 0 && t < w->end)
		w->conns++;
	slot_close(s);
	if (t < w->end)
		slot_start(w, s);
}

static void rate_timeouts(struct rate_worker *w, int64_t t)
{
	for (size_t i = 0; i < w->n_slots; i++) {
		struct slot *s = &w->slots[i];

		if (s->state != SL_IDLE && t - s->t0 > CONN_TIMEOUT_NS) {
			w->timeouts++;
			rate_error(w, "request", 0, "no reply and close within 5 s");
			slot_close(s);
		}
	}
}

static void *rate_main(void *arg)
{
	struct rate_worker *w = arg;
	struct epoll_event evs[64];
	int64_t t, last_scan = 0;

	while ((t = now_ns()) < w->end) {
		bool idle = false;
		int n, ms;

		for (size_t i = 0; i < w->n_slots; i++) {
			if (w->slots[i].state == SL_IDLE)
				slot_start(w, &w->slots[i]);
			idle |= w->slots[i].state == SL_IDLE;
		}
		/* a slot that could not start (no source port, ...) waits a millisecond */
		ms = idle ? 1 : (int)((w->end - t) / 1000000 + 1);
		if (ms > 100)
			ms = 100;
		n = epoll_wait(w->epfd, evs, 64, ms);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++)
			slot_event(w, evs[i].data.ptr, evs[i].events);
		if (t - last_scan > NS / 10) {
			rate_timeouts(w, t);
			last_scan = t;
		}
	}
	for (size_t i = 0; i < w->n_slots; i++)
		if (w->slots[i].state != SL_IDLE)
			slot_close(&w->slots[i]);
	return NULL;
}

static void samples_merge(struct samples *to, struct samples *from)
{
	for (size_t i = 0; i < from->n; i++)
		samples_add(to, from->v[i]);
	free(from->v);
	from->v = NULL;
}

static int run_rate(const struct target *tg, unsigned conc, unsigned n_threads, double secs,
		    double limit)
{
	struct rate_worker *ws = calloc(n_threads, sizeof(*ws));
	struct slot *slots = calloc(conc, sizeof(*slots));
	struct samples con = { 0 }, req = { 0 };
	uint64_t conns = 0, errors = 0, eaddr = 0, tmo = 0;
	const char *first = NULL;
	int64_t start, end;
	double dt;
	size_t off = 0;

	if (!ws || !slots)
		die("out of memory");
	if (secs > limit)
		secs = limit;
	start = now_ns();
	end = start + (int64_t)(secs * 1e9);
	for (unsigned i = 0; i < n_threads; i++) {
		struct rate_worker *w = &ws[i];

		w->tg = tg;
		w->end = end;
		w->n_slots = conc / n_threads + (i < conc % n_threads);
		w->slots = slots + off;
		off += w->n_slots;
		w->next_src = i;
		for (size_t j = 0; j < w->n_slots; j++)
			w->slots[j].fd = -1;
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (w->epfd < 0)
			die("epoll_create1: %s", strerror(errno));
	}
	for (unsigned i = 1; i < n_threads; i++) {
		int r = pthread_create(&ws[i].tid, NULL, rate_main, &ws[i]);

		if (r)
			die("pthread_create: %s", strerror(r));
	}
	rate_main(&ws[0]);
	for (unsigned i = 1; i < n_threads; i++)
		pthread_join(ws[i].tid, NULL);
	/* the window: what was in flight at its end is dropped, not counted */
	dt = secs;
	for (unsigned i = 0; i < n_threads; i++) {
		struct rate_worker *w = &ws[i];

		conns += w->conns;
		errors += w->errors;
		eaddr += w->eaddrnotavail;
		tmo += w->timeouts;
		if (!first && w->first_err[0])
			first = w->first_err;
		samples_merge(&con, &w->connect);
		samples_merge(&req, &w->request);
		close(w->epfd);
	}
	qsort(con.v, con.n, sizeof(*con.v), cmp_i64);
	qsort(req.v, req.n, sizeof(*req.v), cmp_i64);
	printf("mode=rate conns=%llu errors=%llu eaddrnotavail=%llu timeouts=%llu seconds=%.3f "
	       "conns_per_s=%.0f connect_p50_us=%.1f connect_p99_us=%.1f request_p50_us=%.1f "
	       "request_p99_us=%.1f\n", (unsigned long long)conns, (unsigned long long)errors,
	       (unsigned long long)eaddr, (unsigned long long)tmo, dt, (double)conns / dt,
	       percentile_us(&con, 0.5), percentile_us(&con, 0.99), percentile_us(&req, 0.5),
	       percentile_us(&req, 0.99));
	fflush(stdout);
	if (errors)
		fprintf(stderr, "tcp-load: %llu errors; the first: %s%s\n",
			(unsigned long long)errors, first,
			eaddr ? " (EADDRNOTAVAIL: out of source ports; try -b with more "
				"addresses)" : "");
	free(con.v);
	free(req.v);
	free(slots);
	free(ws);
	if (!conns) {
		fprintf(stderr, "tcp-load: rate %s: no connection completed\n", tg->name);
		return 1;
	}
	return 0;
}

/* ---- stream ---- */

struct stream {
	const struct target *tg;
	int fd, epfd;
	int64_t deadline;		/* -T */
	uint32_t events;		/* what the epoll set waits for */
};

/* Waits until @s->fd has @events, up to the deadline. */
static void stream_wait(struct stream *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = s->fd };
	int64_t left;
	int n;

	if (events != s->events) {
		if (epoll_ctl(s->epfd, s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
		s->events = events;
	}
	do {
		left = s->deadline - now_ns();
		if (left <= 0)
			die("stream %s: timed out (-T)", s->tg->name);
		n = epoll_wait(s->epfd, &ev, 1, (int)(left / 1000000 + 1));
	} while (n == 0 || (n < 0 && errno == EINTR));
	if (n < 0)
		die("epoll_wait: %s", strerror(errno));
}

/* Writes all of @p, waiting as needed. */
static void stream_write(struct stream *s, const char *p, size_t size)
{
	while (size) {
		ssize_t n = send(s->fd, p, size, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			stream_wait(s, EPOLLOUT);
			continue;
		}
		if (n < 0)
			die("stream %s: send: %s", s->tg->name, strerror(errno));
		p += n;
		size -= (size_t)n;
	}
}

/* One read of up to @size bytes, waiting as needed; 0 at the peer's close. */
static size_t stream_read(struct stream *s, char *p, size_t size)
{
	for (;;) {
		ssize_t n = read(s->fd, p, size);

		if (n >= 0)
			return (size_t)n;
		if (errno != EAGAIN)
			die("stream %s: read: %s", s->tg->name, strerror(errno));
		stream_wait(s, EPOLLIN);
	}
}

static void stream_connect(struct stream *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	s->fd = socket(s->tg->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->fd < 0 || s->epfd < 0)
		die("socket: %s", strerror(errno));
	if (connect(s->fd, (const struct sockaddr *)&s->tg->sa, s->tg->sa_len) < 0) {
		if (errno != EINPROGRESS)
			die("connect %s: %s", s->tg->name, strerror(errno));
		stream_wait(s, EPOLLOUT);
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err)
			die("connect %s: %s", s->tg->name, strerror(err));
	}
}

/* SEND: reads until the sink closes; returns the bytes received. */
static uint64_t stream_download(struct stream *s, char *buf, uint64_t bytes)
{
	uint64_t got = 0;
	char req[64];
	size_t n;

	snprintf(req, sizeof(req), "SEND %llu\n", (unsigned long long)bytes);
	stream_write(s, req, strlen(req));
	while ((n = stream_read(s, buf, IO_SIZE)))
		got += n;
	return got;
}

/* RECV: sends @bytes of @buf repeated, then checks the sink's count and hash. */
static void stream_upload(struct stream *s, const char *buf, uint64_t bytes, uint64_t hash)
{
	unsigned long long n_got, h_got;
	char line[128];
	size_t len = 0, n;
	uint64_t left;

	snprintf(line, sizeof(line), "RECV %llu\n", (unsigned long long)bytes);
	stream_write(s, line, strlen(line));
	for (left = bytes; left; left -= n) {
		n = left < IO_SIZE ? (size_t)left : IO_SIZE;
		stream_write(s, buf, n);
	}
	while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
		n = stream_read(s, line + len, sizeof(line) - 1 - len);
		if (!n)
			break;
		len += n;
	}
	line[len] = '\0';
	if (sscanf(line, "GOT %llu %llx", &n_got, &h_got) != 2)
		die("stream %s: upload: bad reply \"%.*s\"", s->tg->name, (int)strcspn(line, "\n"),
		    line);
	if (n_got != bytes || h_got != hash)
		die("stream %s: upload: the sink got %llu bytes hashing %016llx, we sent %llu "
		    "hashing %016llx", s->tg->name, n_got, h_got, (unsigned long long)bytes,
		    (unsigned long long)hash);
}

static int run_stream(const struct target *tg, uint64_t bytes, bool upload, double limit)
{
	struct stream s = { .tg = tg };
	char *buf = malloc(IO_SIZE);
	uint64_t hash = FNV_OFFSET, left, got = bytes;
	int64_t t0;
	double dt;

	if (!buf)
		die("out of memory");
	for (size_t i = 0; i < IO_SIZE; i++)
		buf[i] = (char)(i * 7 + (i >> 12));
	if (upload) {
		/* what the sink will compute, before the clock: hashing is not free */
		for (left = bytes; left; left -= left < IO_SIZE ? left : IO_SIZE)
			hash = fnv1a(hash, buf, left < IO_SIZE ? (size_t)left : IO_SIZE);
	}
	s.deadline = now_ns() + (int64_t)(limit * 1e9);
	stream_connect(&s);
	t0 = now_ns();
	if (upload)
		stream_upload(&s, buf, bytes, hash);
	else
		got = stream_download(&s, buf, bytes);
	dt = (double)(now_ns() - t0) / 1e9;
	close(s.fd);
	close(s.epfd);
	free(buf);
	if (got != bytes)
		die("stream %s: download: the sink closed after %llu of %llu bytes", tg->name,
		    (unsigned long long)got, (unsigned long long)bytes);
	printf("mode=stream dir=%s bytes=%llu seconds=%.3f gbit_per_s=%.3f\n",
	       upload ? "upload" : "download", (unsigned long long)bytes, dt,
	       (double)bytes * 8 / dt / 1e9);
	return 0;
}

static void parse_sources(struct target *tg, char *list)
{
	char *save = NULL;

	for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		if (tg->n_src == MAX_SOURCES)
			die("-b: more than %d addresses", MAX_SOURCES);
		if (parse_addr(a, "0", &tg->src[tg->n_src], &tg->src_len) < 0)
			die("-b: \"%s\" is not an IP address", a);
		if (tg->src[tg->n_src].ss_family != tg->sa.ss_family)
			die("-b %s: not the address family of the target", a);
		tg->n_src++;
	}
}

int main(int argc, char **argv)
{
	unsigned long long bytes = 0, conc = 0, n_threads = 1;
	double secs = 0, limit = 60;
	struct target tg = { 0 };
	char *sources = NULL, name[128];
	bool upload = false;
	const char *mode;
	int opt;

	while ((opt = getopt(argc, argv, "T:ut:b:c:d:h")) != -1) {
		switch (opt) {
		case 'T': limit = (double)parse_num(optarg, 1, 86400); break;
		case 'u': upload = true; break;
		case 't': n_threads = parse_num(optarg, 1, MAX_THREADS); break;
		case 'b': sources = optarg; break;
		case 'c': conc = parse_num(optarg, 1, 100000); break;
		case 'd': secs = (double)parse_num(optarg, 1, 86400); break;
		default: usage();
		}
	}
	if (argc - optind < 3)
		usage();
	mode = argv[optind];
	if (parse_addr(argv[optind + 1], argv[optind + 2], &tg.sa, &tg.sa_len) < 0)
		die("\"%s\" port \"%s\": not an IP address and a port", argv[optind + 1],
		    argv[optind + 2]);
	snprintf(name, sizeof(name), strchr(argv[optind + 1], ':') ? "[%s]:%s" : "%s:%s",
		 argv[optind + 1], argv[optind + 2]);
	tg.name = name;
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "stream")) {
		if (argc - optind != 4)
			usage();
		bytes = parse_num(argv[optind + 3], 1, 1ULL << 50);
		return run_stream(&tg, bytes, upload, limit);
	}
	if (strcmp(mode, "rate") || argc - optind != 3 || !conc || !secs)
		usage();
	if (n_threads > conc)
		n_threads = conc;
	if (sources)
		parse_sources(&tg, sources);
	return run_rate(&tg, (unsigned)conc, (unsigned)n_threads, secs, limit);
}
