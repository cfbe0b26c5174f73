/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside the userspace backend. A proxy serves one service port for one address family
 * and one endpoint scope (cluster, or external when the two traffic policies differ): it
 * owns a proxy port, a listener every worker thread watches (UDP: one SO_REUSEPORT
 * socket per worker), and the endpoints new
 * connections are spread over. The control thread (userspace.c) creates, updates and
 * retires proxies and writes the portal rules (portal.c); the workers (worker.c) accept,
 * connect and move bytes; lb.c picks endpoints.
 *
 * Sharing between threads: a proxy and its endpoints are reference counted (atomics);
 * the endpoint list, round-robin position and affinity table are under the proxy's
 * mutex, taken once per new connection or flow. Workers get listeners and retirements
 * through a command queue, so only a worker ever closes what its epoll set holds.
 */
#ifndef KP_US_H
#define KP_US_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <kproxy/state.h>

struct kp_ctx;

#define US_MAX_WORKERS 64
#define US_EP_PENALTY_MS 2000		/* a refused endpoint gets no new picks for this long */
#define US_KEEPALIVE_S 15		/* TCP keepalive idle time, as Go's dialer (kube-proxy) */

/* One endpoint of a proxy. Freed by the control thread once it is out of the set and
 * @conns is 0 (no connection or flow refers to it any more). */
struct us_ep {
	struct kp_endpoint ep;
	struct sockaddr_storage sa;
	socklen_t sa_len;
	atomic_uint conns;		/* connections and flows using it */
	atomic_bool live;		/* in the proxy's current set */
	_Atomic int64_t failed_until;	/* CLOCK_MONOTONIC ms: skipped by new picks until */
	struct us_ep *next;		/* the proxy's list of all its endpoints */
};

struct us_aff;				/* lb.c: ClientIP affinity table */
struct us_listener;			/* worker.c */

enum us_scope {
	US_SCOPE_CLUSTER,		/* ClusterIP, and every frontend when the sets agree */
	US_SCOPE_EXTERNAL,		/* NodePort, externalIP, LB when the policies differ */
};

struct us_proxy {
	atomic_int refs;		/* the control table, each listener, each conn/flow */
	char *key;			/* "ns/name:port/PROTO/4c" (family, scope) */
	char *label;			/* "ns/name:port" as kube-proxy's rule comments */
	char *ns, *name, *port_name;
	enum kp_protocol proto;
	int family;
	enum us_scope scope;
	uint16_t port;			/* the proxy port */
	struct kp_addr bind;		/* listen address (any, or --bind-address) */
	struct us_listener **lst;	/* one per worker, owned by the worker once handed over */

	/* what the rules say about it (control thread only) */
	struct kp_frontend *fes;
	size_t n_fes;
	struct kp_addr *ranges;		/* loadBalancerSourceRanges of this family */
	uint8_t *range_prefixes;
	size_t n_ranges;

	pthread_mutex_t lock;		/* protects what follows, up to the atomics */
	struct us_ep **set;		/* the endpoints new connections go to */
	size_t n_set;
	size_t rr;			/* next index in @set */
	struct us_ep *all;		/* every endpoint not yet freed (set and draining) */
	enum kp_affinity affinity;
	uint32_t affinity_ms;
	struct us_aff *aff;

	atomic_uint n_conns;		/* open connections and flows, all workers */
	atomic_bool capped;		/* at the connection limit (logged once per episode) */
	atomic_bool retired;		/* removed: its listeners are closing */
	atomic_ullong accepted;		/* connections and flows, ever */
	atomic_ullong failed_connects;	/* connects to an endpoint that failed (then retried) */
	atomic_ullong dropped;		/* UDP datagrams not passed on */
};

/* The backend, as the workers see it. */
struct us {
	struct kp_ctx *ctx;
	unsigned n_workers;
	struct us_worker **workers;
	uint32_t max_conns;		/* per proxy */
	uint32_t udp_timeout_ms;
	uint32_t grace_ms;		/* a retired proxy's connections are closed after this */
};

/* ---- lb.c ---- */
/* Replaces the set with @eps (sorted); keeps the objects of endpoints already known, so
 * their counts and affinity survive; returns -ENOMEM leaving the old set. */
int lb_set_endpoints(struct us_proxy *px, const struct kp_endpoint *eps, size_t n);
/*
 * Picks an endpoint for a new connection from @client: the sticky one (ClientIP
 * affinity, unless @reset), else the next in turn, skipping @avoid and endpoints that
 * recently refused while others remain. Counts the connection on it (conns + 1).
 * Returns NULL when the set is empty. Takes the proxy's lock.
 */
struct us_ep *lb_pick(struct us_proxy *px, const struct sockaddr *client, bool reset,
		      struct us_ep *avoid, int64_t now_ms);
/* Frees the endpoints that left the set and have no connections; drops expired affinity. */
void lb_prune(struct us_proxy *px, int64_t now_ms);
/* Frees every endpoint and the affinity table (the proxy is being freed). */
void lb_free_all(struct us_proxy *px);

/* Fills @ss from @a and @port; returns its length (lb.c). */
socklen_t us_sockaddr(const struct kp_addr *a, uint16_t port, struct sockaddr_storage *ss);

/* ---- proxy lifetime (proxy.c): the control thread and each worker hold references ---- */
void us_proxy_ref(struct us_proxy *px);
void us_proxy_unref(struct us_proxy *px);	/* the last one frees it */

/* The monotonic clock in ms, as the workers and the control thread read it. */
static inline int64_t us_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- worker.c ---- */
struct us_worker;
int us_worker_start(struct us *us, unsigned idx, struct us_worker **ret);
/* Stops and joins the thread, closes everything it holds, frees it. */
void us_worker_stop(struct us_worker *w);
/* Creates the listener of @px on worker @w (an fd already bound and listening, or a
 * bound UDP socket); the worker owns it from here. 0 or -ENOMEM (then the caller closes
 * @fd). */
int us_worker_add_listener(struct us_worker *w, struct us_proxy *px, int fd);
/* The worker closes its listener of @px and its flows at once, and its connections after
 * the grace period, then drops its references. */
void us_worker_retire(struct us_worker *w, struct us_proxy *px);

/* ---- portal.c ---- */
struct us_rules {
	struct us_proxy **proxies;	/* every live proxy, sorted by key */
	size_t n;
	struct kp_addr host[2];		/* DNAT target of host traffic: [0] IPv4, [1] IPv6 */
	bool wildcard[2];		/* listening on any address: REDIRECT arriving traffic */
};
int us_rules_sync(struct kp_ctx *ctx, int family, const struct us_rules *rules);
int us_rules_cleanup(struct kp_ctx *ctx, int family);
/* Reads our nat chains back: calls @fn for each portal rule (REDIRECT or DNAT) and filter
 * REJECT rule. @proxy_port is 0 for a REJECT. */
struct us_rule_seen {
	const char *chain;
	const char *comment;		/* "ns/name:port", or NULL */
	struct kp_addr dst;		/* 0 family: any destination (NodePort on every address) */
	uint8_t proto;
	uint16_t dport;
	uint16_t proxy_port;		/* 0: REJECT */
};
int us_rules_read(struct kp_ctx *ctx, int family,
		  int (*fn)(const struct us_rule_seen *seen, void *userdata), void *userdata);

#endif
