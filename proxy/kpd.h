/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kproxyd's internal interfaces, one section per file of proxy/: logging (and the
 * reports of the sources' events), the flag table and the config file, node setup, the
 * event loop, its listeners' clients, the control socket, healthz and metrics,
 * health-check node ports.
 * kproxyd.c (start-up and the loop's callbacks) uses them all; none uses kproxyd.c.
 */
#ifndef KPD_H
#define KPD_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include <kproxy/kproxy.h>
#include <kproxy/api.h>
#include <kproxy/config.h>
#include <kproxy/manifests.h>

#define KPD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define KP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* log.c: klog-like lines on stderr; level 0 is always shown, higher ones need --v */
extern int kpd_verbosity;
void kpd_log(char sev, int v, const char *fmt, ...) KPD_PRINTF(3, 4);
#define kpd_err(...) kpd_log('E', 0, __VA_ARGS__)
#define kpd_warn(...) kpd_log('W', 0, __VA_ARGS__)
#define kpd_info(...) kpd_log('I', 0, __VA_ARGS__)
#define kpd_dbg(v, ...) kpd_log('I', (v), __VA_ARGS__)
void kpd_lib_log(enum kp_log_level level, const char *msg, void *userdata);
void kpd_report_diags(struct kp_ctx *ctx);

/* log.c: the manifest source's file events (kp_manifests_fn; @userdata: the context),
 * with the diagnostics of the file's rejected objects */
void kpd_manifests_event(enum kp_manifests_event event, const char *path, int result,
			 void *userdata);

/* flags.c: one table of kproxyd's flags and KubeProxyConfiguration fields. A row either
 * holds a setting of kproxyd's own (@own declares its type, default and help) or feeds
 * the data plane's option @option (declared by the backend; @own.type is the flag's
 * syntax: a bool takes no argument). */
struct kpd_flag {
	const char *name;		/* the flag, without "--"; NULL: a config field only */
	const char *section;		/* a heading of --help instead of a flag */
	const char *arg;		/* the argument's name in --help */
	const char *alias;		/* the row whose value this one sets */
	const char *config;		/* KubeProxyConfiguration field ("ipvs.scheduler") */
	const char *config_mode;	/* the field applies only with this mode in the file */
	const char *mode;		/* the data plane whose option it is; NULL: any */
	const char *option;		/* the data plane's option, or NULL: kproxyd's own */
	struct kp_option own;		/* kproxyd's own setting (or the flag's syntax) */
	const char *na;			/* why it has no effect in kproxyd; NULL: it has */
	const char *default_text;	/* kube-proxy's default where @own has none */
	bool kube;			/* kube-proxy's flag: --config overrides it */
	bool flag_wins;			/* ... unless given on the command line */
	bool cfg_any;			/* the field may be any JSON (a map, a list of objects) */
	bool cfg_list;			/* a CIDR list the file writes as a list, not "a,b" */
	bool cfg_number;		/* the field is a JSON number (a duration: also one in ns) */
	bool zero_default;		/* a zero or empty field means the default (kube-proxy's
					 * v1alpha1 defaulting), not zero */
	const char *keyword;		/* a value taken besides @own's syntax ("primary") */
};
typedef void (*kpd_config_warn_fn)(const char *file, const char *field);
/* Reads argv into the table's slots; unknown flags are refused by name. 0 or -EINVAL. */
int kpd_flags_parse(int argc, char **argv);
/* config.c: reads a KubeProxyConfiguration as kube-proxy does (kube-proxy's flags then
 * count no more, but those that win over the file); @err says why it failed, naming the
 * field. */
int kpd_config_load(struct kp_ctx *ctx, const char *file, kpd_config_warn_fn warn, char *err,
		    size_t size);
/* Writes the configuration in force for @mode as a KubeProxyConfiguration. 0 or -errno. */
int kpd_config_write(struct kp_ctx *ctx, const char *file, const char *mode);
/* The same as JSON, as kube-proxy's /configz serves it: {"kubeproxy.config.k8s.io": {...}}
 * (caller frees), or NULL. */
char *kpd_config_json(struct kp_ctx *ctx, const char *mode);
/* An inotify descriptor that becomes readable when @file changes, or -errno. */
int kpd_config_watch(const char *file);
/* flags.c's table and values, for config.c */
const struct kpd_flag *kpd_flag_rows(size_t *ret_n);
const struct kpd_flag *kpd_flag_target(const struct kpd_flag *f);
const struct kp_option *kpd_flag_decl(struct kp_ctx *ctx, const struct kpd_flag *f,
				      const char *mode);
int kpd_flag_set(const struct kpd_flag *f, const char *value, bool from_flag);
bool kpd_flag_from_flag(const struct kpd_flag *f);
const char *kpd_flag_value(const struct kpd_flag *f);
void kpd_flag_clear(const struct kpd_flag *f);
/* Names once each setting given that kproxyd does not apply (in @mode), with why. */
void kpd_flags_report(struct kp_ctx *ctx, const char *mode);
/* Applies the mode-specific period flags for @mode (kube-proxy's rule). 0 or -ENOMEM. */
int kpd_flags_resolve(const char *mode);
/* Checks every value against its declaration for @mode; the reason names the flag. */
int kpd_flags_check(struct kp_ctx *ctx, const char *mode);
/* The data plane's settings for @mode (caller frees the array, not the strings); flags
 * given that @mode does not use are named in the log. */
int kpd_flags_settings(struct kp_ctx *ctx, const char *mode, struct kp_setting **ret,
		       size_t *ret_n);
const char *kpd_flag_of(const char *mode, const char *option);
const char *kpd_get(const char *name);		/* the last value, or the default */
const char *const *kpd_get_list(const char *name, size_t *ret_n);	/* every value */
bool kpd_get_bool(const char *name);
uint32_t kpd_get_ms(const char *name);
bool kpd_is_set(const char *name, bool by_flag);
void kpd_flags_usage(FILE *out, struct kp_ctx *ctx, const char *only_mode);
/* Every flag and config field with what kproxyd does with it, as tbl(1) or markdown. */
void kpd_flags_table(FILE *out, struct kp_ctx *ctx, bool man);
void kpd_flags_free(void);
int kpd_yaml_load(const char *file, json_t **ret_doc, char *err, size_t size);

/* nodefw.c: which netfilter interface the node's other rules live in, seen at start */
struct kpd_nodefw {
	bool legacy_missing;		/* the kernel has no legacy ip_tables */
	bool nft_checked;		/* nf_tables could be listed */
	bool nft_hint;			/* kubelet's hint chain is in nf_tables */
	unsigned long nft_rules;	/* rules in iptables-nft's tables */
	unsigned long legacy_rules;	/* rules in the legacy tables (ours included) */
	bool node_uses_nft;		/* the node's components write nf_tables */
	char backend[8];		/* "nft", "legacy" or "unknown" */
};
void kpd_nodefw_check(struct kpd_nodefw *fw);

/* lock.c: one kproxyd per node (network namespace). Returns 0 and the descriptor that
 * holds the lock until the process ends, or -EBUSY (the holder named in the log) or
 * -errno. */
int kpd_node_lock(int *ret_fd);

/* node.c: conntrack sysctls and the OOM score, set at start as kube-proxy sets them */
void kpd_node_setup(void);

/* loop.c: descriptors watched for input and ticks run before each wait */
struct kpd_loop;
typedef void (*kpd_fd_fn)(int fd, void *userdata);
/* Does what is due; returns how long the loop may sleep, in ms (-1: as long as it likes). */
typedef int64_t (*kpd_tick_fn)(void *userdata);
int kpd_loop_new(struct kpd_loop **ret);
void kpd_loop_free(struct kpd_loop *l);
int kpd_loop_watch(struct kpd_loop *l, int fd, kpd_fd_fn fn, void *userdata);
void kpd_loop_unwatch(struct kpd_loop *l, int fd);
/* Which of POLLIN and POLLOUT @fd's watch waits for (kpd_loop_watch(): POLLIN). */
void kpd_loop_set_events(struct kpd_loop *l, int fd, short events);
int kpd_loop_tick(struct kpd_loop *l, kpd_tick_fn fn, void *userdata);
void kpd_loop_untick(struct kpd_loop *l, kpd_tick_fn fn, void *userdata);
/* Runs rounds until kpd_loop_quit(); returns 0, or the -errno of a failed poll. */
int kpd_loop_run(struct kpd_loop *l);
void kpd_loop_quit(struct kpd_loop *l);

/* conn.c: request/response clients of a listener, each served from the loop as its
 * socket is ready, bounded in size, time and number (the limits are the caller's) */
struct kpd_conn_ops {
	const char *name;		/* for the log: "control socket" */
	size_t max_request;		/* bytes; more is answered with @too_long */
	unsigned max_conns;		/* clients at once; at the cap the oldest is closed */
	int timeout_ms;			/* to read the request; again to write the answer */
	const char *too_long;		/* the answer to a request longer than @max_request */
	/* whether @req (NUL-terminated) is a whole request */
	bool (*complete)(const char *req, size_t size);
	/* the answer to @req (complete, or what came before the client's EOF) from the
	 * client @fd of the listener tagged @tag: caller frees it; NULL: close at once */
	char *(*answer)(int fd, const char *req, size_t size, void *userdata, uintptr_t tag,
			size_t *ret_size);
	/* optional: at accept, a refusal to send the client @fd (static text), or NULL */
	const char *(*admit)(int fd, void *userdata);
};
struct kpd_conns;
/* Borrows @ops (static) and @loop (in which it registers a tick) for its life. */
int kpd_conns_new(struct kpd_loop *loop, const struct kpd_conn_ops *ops, void *userdata,
		  struct kpd_conns **ret);
/* Accepts the clients waiting on the listener @lfd (a few at a time). */
void kpd_conns_accept(struct kpd_conns *cs, int lfd, uintptr_t tag);
/* Closes every client and takes the tick out of the loop. */
void kpd_conns_free(struct kpd_conns *cs);

/* control.c: the unix socket kproxyctl talks to */
/* Figures kproxyd's parts share, owned by the daemon: the last sync's duration (written by
 * the loop, shown by status) and the last check's differences (written by the control
 * socket, shown by /metrics). */
struct kpd_run {
	double last_sync_s;		/* -1: no sync yet */
	bool last_sync_full;
	long last_check;		/* -1: no check yet */
};

struct kpd_info {
	const char *proxy_mode;		/* as requested with --proxy-mode */
	bool dry_run;
	const char *node_name;
	const char *manifests;		/* directory, or NULL */
	struct kp_api *api;		/* the API-server source, or NULL */
	int64_t start_ms;		/* CLOCK_REALTIME */
	const struct kpd_nodefw *nodefw;	/* the node's netfilter interface, or NULL */
	const char *healthz_address;	/* as bound, or "" */
	const char *metrics_address;	/* as bound, or "" */
	struct kpd_run *run;		/* the daemon's; the control socket writes last_check */
};
struct kpd_control;
/* Listens on @path (mode 0600), served in @loop; borrows @ctx and @info for its life. */
int kpd_control_open(const char *path, struct kpd_loop *loop, struct kp_ctx *ctx,
		     const struct kpd_info *info, struct kpd_control **ret);
void kpd_control_close(struct kpd_control *c);
/* trace.c: kproxyctl trace SRC DST:PORT[/PROTO], as JSON (an "error" member on bad
 * input); caller owns the result. */
json_t *kpd_trace(struct kp_ctx *ctx, const char *src, const char *dst);
/* ["ip:port", "[ip6]:port", ...] of @n endpoints, as check and trace print them */
json_t *kpd_endpoints_json(const struct kp_endpoint *eps, size_t n);


/* http.c: healthz, livez, Prometheus metrics, /proxyMode and /configz */
struct kpd_health {
	int64_t start_ms;		/* CLOCK_REALTIME */
	int64_t timeout_ms;		/* unhealthy when a change waits longer (kube-proxy's
					 * healthTimeout: twice the sync period) */
	struct kp_api *api;		/* the Node's eligibility, the API counters; or NULL */
	const char *mode;		/* --proxy-mode */
	const struct kpd_nodefw *nodefw;	/* the node's netfilter interface, or NULL */
	const struct kpd_run *run;	/* the daemon's figures, or NULL */
};
struct kpd_http;
/* Listens on "host:port" ("[v6]:port"; port 0: any), served in @loop: /healthz and
 * /livez, or with @metrics_server /metrics, /healthz, /proxyMode and /configz. Borrows
 * @ctx and @hc for its life. */
int kpd_http_open(const char *spec, struct kpd_loop *loop, struct kp_ctx *ctx,
		  const struct kpd_health *hc, bool metrics_server, struct kpd_http **ret);
const char *kpd_http_address(const struct kpd_http *h);	/* as bound */
/* Whether the proxy is healthy as kube-proxy judges it (the node aside). */
bool kpd_health_ok(struct kp_ctx *ctx, const struct kpd_health *hc);
/* A sync ran and took @seconds. */
/* A sync of @seconds, @full or partial, into the sync-duration histograms. */
void kpd_http_observe_sync(struct kp_ctx *ctx, double seconds, bool full);
void kpd_http_observe_programming(double seconds, void *userdata);

/* hcports.c: health-check node ports of externalTrafficPolicy Local services */
struct kpd_hc;
/* The listeners are watched in @loop, answering as they become readable. */
int kpd_hc_new(struct kpd_loop *loop, struct kpd_hc **ret);
/* Opens and closes listeners to match the last sync's state, updates their counts. */
void kpd_hc_update(struct kpd_hc *hc, struct kp_ctx *ctx);
/* Answers 503 while the proxy is not healthy (kpd_health_ok()), as kube-proxy. */
void kpd_hc_set_health(struct kpd_hc *hc, struct kp_ctx *ctx, const struct kpd_health *health);
void kpd_hc_free(struct kpd_hc *hc);
/* Binds the listeners to these addresses from now on (again, for the open ones): every
 * address of the families @all says (the default), the listed ones of the others. */
void kpd_hc_set_addrs(struct kpd_hc *hc, const bool all[2], const struct kp_addr *addrs,
		      size_t n);

/* nodeaddrs.c: the NodePort addresses from --nodeport-addresses (CIDRs or "primary";
 * empty: every local address), followed as they change */
struct kpd_nodeaddrs;
/* Parses @spec for data plane @mode; -EINVAL (said on stderr) or -ENOMEM. */
int kpd_nodeaddrs_new(const char *spec, const char *mode, struct kpd_nodeaddrs **ret);
/* Resolves "primary" and subscribes to address changes: the descriptor to watch, -1
 * when the addresses are fixed (dpdk), or -errno. */
int kpd_nodeaddrs_follow(struct kpd_nodeaddrs *na);
/* Reads the addresses again (draining the subscription) and hands a changed set to @ctx
 * and @hc (NULL: not yet). 1 when it changed, 0 when not, or -errno. */
int kpd_nodeaddrs_update(struct kpd_nodeaddrs *na, struct kp_ctx *ctx, struct kpd_hc *hc);
void kpd_nodeaddrs_free(struct kpd_nodeaddrs *na);
void kpd_http_close(struct kpd_http *h);

#endif
