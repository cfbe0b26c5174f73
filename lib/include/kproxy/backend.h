/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backend contract: one ops table per data plane. The core calls init once, sync
 * whenever the desired state changed (and periodically with a full delta), dump when
 * someone asks what is programmed, cleanup on request, destroy at the end.
 */
#ifndef KPROXY_BACKEND_H
#define KPROXY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kproxy/state.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kp_ctx;

/*
 * Backend options. Each backend declares the options its init accepts in a table of
 * struct kp_option (name, type, range, default, one line of help, and where the value
 * goes in the backend's own options struct). The caller gives settings as name/value
 * text (struct kp_setting, as a command line or a config file has them); the library
 * checks every setting against the table before init runs, refuses an unknown name or a
 * bad value by name, applies the defaults, and hands init the filled struct.
 */
enum kp_opt_type {
	KP_OPT_BOOL,		/* bool: "true"/"false" ("1"/"0", "yes"/"no" too) */
	KP_OPT_UINT,		/* uint32_t within min..max */
	KP_OPT_DURATION,	/* uint32_t milliseconds within min..max: "1m30s", "500ms", "0" */
	KP_OPT_STRING,		/* const char *, NULL when unset; one of @choices when given */
	KP_OPT_PORT_RANGE,	/* struct kp_port_range: "LO-HI", "LO+N", a port, "" */
	KP_OPT_CIDR_LIST,	/* struct kp_cidr_list: comma separated; settings add up */
	KP_OPT_STRING_LIST,	/* struct kp_str_list: each setting one entry */
	KP_OPT_INT,		/* int32_t within min..max */
	_KP_OPT_MAX
};

struct kp_port_range {
	uint16_t lo, hi;		/* inclusive; both 0: no range */
};

struct kp_cidr {
	struct kp_addr addr;		/* host bits as given */
	uint8_t prefix;
};

struct kp_cidr_list {
	const struct kp_cidr *v;
	size_t n;
};

struct kp_str_list {
	const char *const *v;
	size_t n;
};

struct kp_option {
	const char *name;		/* "dispatch-threshold": lower case, '-' separated */
	enum kp_opt_type type;
	size_t offset;			/* of the value in the backend's options struct */
	int64_t min, max;		/* UINT, DURATION (ms): the range (max 0: UINT32_MAX);
					 * INT: the range (both 0: INT32_MIN..INT32_MAX);
					 * the lists: at most @max entries (0: no limit) */
	const char *def;		/* the default, as a setting's text; NULL: none */
	const char *help;		/* one line, for --help and man pages */
	const char *const *choices;	/* STRING: the values accepted, NULL-terminated; or NULL */
};

/* One setting, as given: @value is parsed by the option's type. */
struct kp_setting {
	const char *name;
	const char *value;
};

/**
 * kp_option_check - whether @value is a valid setting of @opt
 * @err: on failure, "option NAME: why", of @err_size bytes (may be NULL)
 * Returns: 0, or -EINVAL.
 */
int kp_option_check(const struct kp_option *opt, const char *value, char *err,
		    size_t err_size);

/**
 * kp_option_type_name - "bool", "uint", "duration", "string", "port-range", "cidr-list",
 * "string-list", "int"; NULL for an unknown type
 */
const char *kp_option_type_name(enum kp_opt_type type);

/* Per-endpoint figures a backend that balances in the kernel can report (IPVS). */
struct kp_dest_stats {
	uint32_t weight;		/* 0: draining, gets no new connections */
	uint32_t active_conns;
	uint32_t inactive_conns;
	uint32_t persist_conns;		/* persistence templates pointing at it */
};

/* One programmed (frontend, service port) pair, as a backend reports it. */
struct kp_dump_entry {
	const char *ns;				/* service namespace */
	const char *name;			/* service name */
	const char *port_name;			/* "" for unnamed ports */
	enum kp_protocol protocol;
	enum kp_frontend_kind kind;
	struct kp_addr vip;
	uint16_t port;
	const struct kp_endpoint *endpoints;	/* borrowed for the call */
	size_t n_endpoints;
	const char *detail;			/* backend specific text (chain, scheduler), or NULL */
	/* parallel to @endpoints, or NULL when the backend has no such figures; added in
	 * 0.x after @detail, so read it only from a library that sets it */
	const struct kp_dest_stats *dest_stats;
};

/**
 * kp_dump_fn - receives one dump entry; a non-zero return stops the dump
 */
typedef int (*kp_dump_fn)(const struct kp_dump_entry *entry, void *userdata);

/* What kp_ctx_check() found different between the desired state and the data plane. */
enum kp_check_what {
	KP_CHECK_MISSING,	/* a wanted frontend the data plane does not have */
	KP_CHECK_EXTRA,		/* a frontend the data plane has that nobody wants */
	KP_CHECK_ENDPOINTS,	/* both have it; the endpoint sets differ */
	_KP_CHECK_MAX
};

struct kp_check_diff {
	enum kp_check_what what;
	const struct kp_dump_entry *want;	/* the state's; NULL for KP_CHECK_EXTRA */
	const struct kp_dump_entry *have;	/* the data plane's; NULL for KP_CHECK_MISSING */
};

/** kp_check_fn - receives one difference (borrowed for the call); non-zero stops */
typedef int (*kp_check_fn)(const struct kp_check_diff *diff, void *userdata);

/**
 * kp_ctx_check - compare what the data plane holds (its dump, read back from the kernel
 * where the backend can) with the desired state as the last sync computed it
 * @ctx: context
 * @fn: called with each difference, or NULL to count them only
 * Frontends are matched by service port, address and port (a NodePort on every local
 * address by service port and node port, whatever address the data plane lists);
 * endpoint sets are compared as sets of address and port. Changes not synced yet show as
 * differences (kp_ctx_has_pending() says whether there are any).
 * Returns: the number of differences (0: they agree), what @fn returned to stop, or a
 * negative errno (the dump failed: kp_ctx_get_error() says why).
 */
int kp_ctx_check(struct kp_ctx *ctx, kp_check_fn fn, void *userdata);

/* One sample of a data plane's own counters, as Prometheus names them (kproxyd's
 * /metrics prints them). Strings are borrowed for the call. */
struct kp_stat {
	const char *name;		/* "kproxyd_dpdk_rx_packets_total" */
	const char *help;		/* one line */
	const char *type;		/* "counter" or "gauge" */
	const char *labels;		/* "port=\"net_tap0\"", or "" */
	double value;
};

/**
 * kp_stat_fn - receives one sample; samples of one name come together. A non-zero
 * return stops the walk.
 */
typedef int (*kp_stat_fn)(const struct kp_stat *stat, void *userdata);

struct kp_backend_ops {
	const char *name;	/* unique, e.g. "iptables" */
	/**
	 * init - set up the data plane's handles (sockets, ports); must not program rules
	 * @opts: the backend's options struct (@options_size bytes), every option filled
	 *        (given or default; unset strings NULL, unset numbers and lists zero);
	 *        borrowed, valid until destroy, so pointers into it may be kept; NULL when
	 *        the backend declares no options
	 * Returns 0 and sets *ret_priv, or a negative errno; on failure it may say why with
	 * kp_ctx_set_error(), and the caller prints that.
	 */
	int (*init)(struct kp_ctx *ctx, const void *opts, void **ret_priv);
	/**
	 * sync - make the data plane match @want; @delta says what changed since the last
	 * successful sync (all of it when kp_delta_is_full()). Idempotent; batched; on error
	 * leaves what was programmed before in place. Returns 0 or a negative errno.
	 */
	int (*sync)(void *priv, const struct kp_state *want, const struct kp_delta *delta);
	/**
	 * dump - report what is really programmed, read back from the data plane where it
	 * can be. May be NULL. Returns 0, the callback's non-zero value, or a negative errno.
	 */
	int (*dump)(void *priv, kp_dump_fn fn, void *userdata);
	/** cleanup - remove everything this backend ever installed; nothing else. May be NULL. */
	int (*cleanup)(void *priv);
	/** destroy - free @priv; leaves the data plane as it is. May be NULL. */
	void (*destroy)(void *priv);
	/**
	 * stats - the data plane's own counters (packets, drops, flows), for metrics. May be
	 * NULL. Added after @destroy: an embedder's table must leave it zero (designated
	 * initialisers do). Returns 0, the callback's non-zero value, or a negative errno.
	 */
	int (*stats)(void *priv, kp_stat_fn fn, void *userdata);
	/*
	 * The options init accepts, @n_options of them, and the size of the struct they
	 * fill. Added after @stats (an embedder's table that leaves them zero takes no
	 * options: any setting is refused).
	 */
	const struct kp_option *options;
	size_t n_options;
	size_t options_size;
	/**
	 * dump_service - dump's entries of the service @ns/@name only, for a data plane
	 * where reading one service back costs less than reading them all. May be NULL
	 * (kp_ctx_dump_service() then filters dump). Entries of other services may be
	 * reported too: the library drops them. Added after @options_size: an embedder's
	 * table must leave it zero (designated initialisers do).
	 */
	int (*dump_service)(void *priv, const char *ns, const char *name, kp_dump_fn fn,
			    void *userdata);
};

/**
 * kp_backend_register - make a backend selectable by name in this context
 * @ctx: context
 * @ops: the ops table; borrowed, must outlive @ctx
 * Returns: 0, -EEXIST if the name is taken, -EINVAL, -ENOMEM.
 */
int kp_backend_register(struct kp_ctx *ctx, const struct kp_backend_ops *ops);

/**
 * kp_backend_find - the ops table of the backend called @name in @ctx (borrowed), or NULL
 */
const struct kp_backend_ops *kp_backend_find(const struct kp_ctx *ctx, const char *name);

/**
 * kp_backend_foreach - walk the backends selectable in @ctx, built-in ones first
 * @fn: called with each ops table (borrowed); a non-zero return stops the walk
 * Returns: 0, what @fn returned, or -EINVAL.
 */
int kp_backend_foreach(const struct kp_ctx *ctx,
		       int (*fn)(const struct kp_backend_ops *ops, void *userdata), void *userdata);

/**
 * kp_ctx_foreach_option - walk the selected backend's options with their values in force
 * @fn: called once per option with its value as text (the setting given, else the
 *      default; NULL when neither), for the lists once per setting (once with NULL
 *      when empty); a non-zero return stops the walk
 * Returns: 0, what @fn returned, or -EINVAL.
 */
int kp_ctx_foreach_option(const struct kp_ctx *ctx,
			  int (*fn)(const struct kp_option *opt, const char *value, void *userdata),
			  void *userdata);

/**
 * kp_ctx_get_service_cidrs - the ranges of the ServiceCIDR objects (networking.k8s.io)
 * the sources gave, de-duplicated, in no particular order
 * @ctx: context
 * @ret_n: number of ranges
 * Returns: the ranges, borrowed until the next call or the next change of a ServiceCIDR
 * (a change makes the next sync a full one); NULL with *ret_n 0 when there are none, and
 * NULL for a bad argument or out of memory (*ret_n untouched).
 */
const struct kp_cidr *kp_ctx_get_service_cidrs(struct kp_ctx *ctx, size_t *ret_n);

/**
 * kp_ctx_set_error - say why the current operation fails (for backends: init, sync,
 * dump, cleanup); the caller of the failing kp_ctx_* call reads it with
 * kp_ctx_get_error(). The first message of a call is kept (the step closest to the
 * cause says it; callers up the stack that say it again are ignored).
 * @err: the negative errno the operation returns
 * Returns: @err, so that a backend can "return kp_ctx_set_error(ctx, r, ...)".
 */
int kp_ctx_set_error(struct kp_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * kp_ctx_backend_stats - walk the selected data plane's own counters
 * @ctx: context
 * @fn: called for each sample
 * Returns: 0 (also when the data plane has none), what @fn returned, -EINVAL, or the
 * data plane's negative errno.
 */
int kp_ctx_backend_stats(struct kp_ctx *ctx, kp_stat_fn fn, void *userdata);

#ifdef __cplusplus
}
#endif
#endif
