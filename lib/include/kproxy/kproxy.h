/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libkproxy public API: the context, which owns the Kubernetes objects fed to it, their
 * validation diagnostics, the change tracker, the desired state and the backend that
 * programs it. One context per data plane; contexts share nothing, so several can live
 * in one process. A context is not thread safe: call it from one thread at a time.
 */
#ifndef KPROXY_KPROXY_H
#define KPROXY_KPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kproxy/state.h>
#include <kproxy/backend.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kp_ctx;

/* Log levels, klog-like: KP_LOG_ERR is always shown, higher levels need --v. */
enum kp_log_level {
	KP_LOG_ERR,
	KP_LOG_WARN,
	KP_LOG_INFO,
	KP_LOG_DEBUG,
	_KP_LOG_MAX
};

/**
 * kp_log_fn - log sink
 * @level: severity
 * @msg: one line, no trailing newline
 * @userdata: as given to kp_ctx_set_log()
 */
typedef void (*kp_log_fn)(enum kp_log_level level, const char *msg, void *userdata);

/**
 * struct kp_diag - why an object (or a whole document) was rejected
 * @source: where it came from (a file name, "api", ...), never NULL
 * @kind: object kind ("Service", "EndpointSlice", ...) or "" for a document error
 * @ns: namespace or ""
 * @name: name or ""
 * @field: JSON path of the bad field ("spec.ports[0].port") or ""
 * @msg: what is wrong
 */
struct kp_diag {
	const char *source;
	const char *kind;
	const char *ns;
	const char *name;
	const char *field;
	const char *msg;
};

/**
 * kp_diag_fn - called once per diagnostic by kp_ctx_drain_diags()
 * The strings are borrowed and valid only during the call.
 */
typedef void (*kp_diag_fn)(const struct kp_diag *diag, void *userdata);

/**
 * kp_ctx_new - create a context
 *
 * The context starts with the built-in "dryrun" backend selected and an empty store.
 * Returns: the context (caller owns it; free with kp_ctx_free()), or NULL on ENOMEM.
 */
struct kp_ctx *kp_ctx_new(void);

/**
 * kp_ctx_free - destroy a context, its backend (destroy op, no cleanup) and all objects
 * @ctx: context, may be NULL
 */
void kp_ctx_free(struct kp_ctx *ctx);

/**
 * kp_ctx_set_log - set the log sink
 * @ctx: context
 * @fn: sink, or NULL for silence (the default)
 * @userdata: passed to @fn
 * @level: most verbose level passed to @fn
 * Returns: 0, or -EINVAL.
 */
int kp_ctx_set_log(struct kp_ctx *ctx, kp_log_fn fn, void *userdata, enum kp_log_level level);

/**
 * kp_ctx_set_node_name - name of the node this proxy runs on
 * @ctx: context
 * @name: node name; endpoints whose nodeName equals it are local (copied)
 * Marks every service changed. Returns: 0, -EINVAL or -ENOMEM.
 */
int kp_ctx_set_node_name(struct kp_ctx *ctx, const char *name);

/**
 * kp_ctx_set_node_zone - topology zone of this node, for EndpointSlice hints
 * @ctx: context
 * @zone: zone name (copied), or NULL for none: hints are then ignored
 * Marks every service changed. Returns: 0, -EINVAL or -ENOMEM.
 */
int kp_ctx_set_node_zone(struct kp_ctx *ctx, const char *zone);

/**
 * kp_ctx_set_nodeport_addrs - the addresses NodePort frontends listen on
 * @ctx: context
 * @addrs: array of @n_addrs addresses (copied); 0 addresses means no NodePort frontends,
 *         but on families kp_ctx_set_nodeport_any_local() puts on every local address
 * @n_addrs: element count
 * Marks every service changed. Returns: 0, -EINVAL or -ENOMEM.
 */
int kp_ctx_set_nodeport_addrs(struct kp_ctx *ctx, const struct kp_addr *addrs, size_t n_addrs);

/**
 * kp_ctx_set_nodeport_any_local - NodePorts of one family on every local address
 * @ctx: context
 * @family: AF_INET or AF_INET6
 * @any: true: each service port with a NodePort gets one NodePort frontend of @family on
 *       the unspecified address (0.0.0.0 or ::), which stands for every address local to
 *       the node when a packet arrives (kube-proxy's default, nodePortAddresses unset),
 *       and the addresses of @family given to kp_ctx_set_nodeport_addrs() make none;
 *       false (the default): the listed addresses of @family make them
 *
 * A data plane that matches on the local address type serves such a frontend as is
 * (iptables: "-m addrtype --dst-type LOCAL"; userspace: its NodePort chains already
 * match it), so it follows addresses added later by itself. One that needs each address
 * (ipvs: a virtual server per address) makes nothing of it: give it the addresses
 * instead, and keep them in step with kp_ctx_set_nodeport_addrs().
 * Marks every service changed when the setting changes.
 * Returns: 0, or -EINVAL (no @ctx, or another family).
 */
int kp_ctx_set_nodeport_any_local(struct kp_ctx *ctx, int family, bool any);

/**
 * kp_ctx_get_nodeport_any_local - whether NodePorts of @family are on every local address
 * @ctx: context
 * @family: AF_INET or AF_INET6
 * For data planes whose fixed rules depend on it (kube-proxy's last rule of KUBE-SERVICES).
 * Returns: the setting of kp_ctx_set_nodeport_any_local(); false for a bad argument.
 */
bool kp_ctx_get_nodeport_any_local(const struct kp_ctx *ctx, int family);

/**
 * kp_ctx_get_nodeport_addrs - the addresses given to kp_ctx_set_nodeport_addrs()
 * @ctx: context
 * @ret_n: set to the element count
 * Returns: a borrowed array, valid until the next kp_ctx_set_nodeport_addrs() or
 * kp_ctx_free(); NULL (and *@ret_n 0) for none or a bad argument.
 */
const struct kp_addr *kp_ctx_get_nodeport_addrs(const struct kp_ctx *ctx, size_t *ret_n);

/* Input formats for kp_ctx_load(). */
enum kp_format {
	KP_FORMAT_AUTO,	/* JSON if the first non-blank byte is '{' or '[', else YAML */
	KP_FORMAT_JSON,
	KP_FORMAT_YAML,
	_KP_FORMAT_MAX
};

/* Largest document kp_ctx_load() accepts, in bytes. */
#define KP_MAX_DOCUMENT_SIZE (64u << 20)

/**
 * kp_ctx_load - replace the objects held by one source with those in a document
 * @ctx: context
 * @source: a name for where the document came from (a file path); copied
 * @buf: the document: one object, a List/ServiceList/EndpointSliceList/EndpointsList, or
 *       (YAML) several documents separated by "---"
 * @size: bytes in @buf
 * @format: how @buf is encoded
 *
 * Services, EndpointSlices and Endpoints are validated one by one: a bad object is skipped
 * with a diagnostic (see kp_ctx_drain_diags()) and does not affect the others. Objects of
 * other kinds are ignored. Objects that @source held before and no longer holds are
 * removed. If the document itself cannot be parsed, the source keeps what it had.
 * An object (kind, namespace, name) held by another source is rejected as a duplicate.
 *
 * Returns: the number of objects accepted (>= 0); -EBADMSG if the document could not be
 * parsed, -EFBIG if it is larger than KP_MAX_DOCUMENT_SIZE, -EINVAL, -ENOMEM.
 */
int kp_ctx_load(struct kp_ctx *ctx, const char *source, const char *buf, size_t size,
		enum kp_format format);

/**
 * kp_ctx_unload - remove every object held by @source
 * Returns: the number of objects removed, or -EINVAL.
 */
int kp_ctx_unload(struct kp_ctx *ctx, const char *source);

/**
 * kp_ctx_drain_diags - report and forget the diagnostics gathered so far
 * @ctx: context
 * @fn: called once per diagnostic, oldest first; may be NULL to just forget them
 * @userdata: passed to @fn
 * Returns: the number of diagnostics drained.
 */
size_t kp_ctx_drain_diags(struct kp_ctx *ctx, kp_diag_fn fn, void *userdata);

/* Counters about the objects a context holds, see kp_ctx_get_counts(). */
struct kp_counts {
	size_t n_services;	/* Service objects held, skipped kinds included */
	size_t n_slices;	/* EndpointSlice objects held */
	size_t n_endpoints;	/* legacy Endpoints objects held */
	size_t n_svc_ports;	/* service ports in the desired state */
	uint64_t n_rejected;	/* objects rejected since the context was created */
	uint64_t n_syncs;	/* backend syncs attempted */
	uint64_t n_sync_errors;	/* backend syncs that failed */
	int last_sync_result;	/* 0 or the negative errno of the last sync */
	int64_t last_sync_ms;	/* CLOCK_REALTIME ms of the last sync attempt, 0 if none */
	int64_t last_success_ms;	/* CLOCK_REALTIME ms of the last successful sync, 0 if none */
	uint64_t n_service_changes;	/* Service objects added, changed or removed */
	uint64_t n_endpoint_changes;	/* EndpointSlice/Endpoints objects added, changed, removed */
};

/**
 * kp_ctx_get_counts - fill @ret_counts with the context's counters
 * Returns: 0 or -EINVAL.
 */
int kp_ctx_get_counts(const struct kp_ctx *ctx, struct kp_counts *ret_counts);

/*
 * Where the sync runner stands, for health checks and metrics, see kp_ctx_get_sync_info().
 * Fields are only ever appended.
 */
struct kp_sync_info {
	int64_t oldest_pending_ms;	/* CLOCK_REALTIME ms of the oldest object change not yet
					 * programmed by a successful sync, or of the first sync
					 * that failed since the last good one; 0 if none */
	int64_t last_queued_ms;		/* CLOCK_REALTIME ms of the last object change; 0 if none */
	size_t n_services_pending;	/* services whose Service changed since the last
					 * successful sync */
	size_t n_endpoints_pending;	/* services whose EndpointSlices or Endpoints changed
					 * since the last successful sync */
	bool last_sync_full;		/* the last sync attempted was a full one */
};

/**
 * kp_ctx_get_sync_info - how far behind the data plane is
 * @ctx: context
 * @ret: filled with the sync runner's figures
 * @size: sizeof(*@ret) as the caller was built with: a struct from an older header gets
 *        the fields it has, no more
 *
 * A proxy is unhealthy, as kube-proxy's /healthz judges it, when oldest_pending_ms is
 * set and older than its health time-out.
 * Returns: 0 or -EINVAL.
 */
int kp_ctx_get_sync_info(const struct kp_ctx *ctx, struct kp_sync_info *ret, size_t size);

/**
 * kp_ctx_set_backend - select and initialise the data plane
 * @ctx: context
 * @name: backend name, built in ("dryrun", "iptables", ...) or registered with
 *        kp_backend_register()
 * @settings: @n_settings option settings (borrowed for the call; checked against the
 *        backend's option table, see struct kp_option), or NULL for the defaults. A
 *        list option may be set several times; any other option only once.
 *
 * The previous backend is destroyed (not cleaned up). The next sync is a full one.
 * Returns: 0; -ENOENT if no backend has that name; -EINVAL for an unknown option or a
 * bad value (nothing is initialised); or the backend's init error. On failure the
 * previous backend stays selected and kp_ctx_get_error() says why.
 */
int kp_ctx_set_backend(struct kp_ctx *ctx, const char *name, const struct kp_setting *settings,
		       size_t n_settings);

/**
 * kp_ctx_get_error - why the last failed kp_ctx_set_backend(), kp_ctx_sync(),
 * kp_ctx_run_due(), kp_ctx_dump() or kp_ctx_cleanup() failed: one line naming the
 * option, object or step and the cause (borrowed; valid until the next such call);
 * the errno's text when nothing more was said; "" when the last one succeeded
 */
const char *kp_ctx_get_error(const struct kp_ctx *ctx);

/**
 * kp_ctx_get_backend_name - name of the selected backend (borrowed)
 */
const char *kp_ctx_get_backend_name(const struct kp_ctx *ctx);

/**
 * kp_ctx_sync - bring the desired state up to date and program it
 * @ctx: context
 * @full: true to hand the backend every service port (a periodic resync), false to hand
 *        it only the service ports that changed since the last successful sync
 *
 * On a backend error the delta is kept, so the next sync retries it, and nothing already
 * programmed is removed by the library. Returns: 0 or the backend's negative errno.
 */
int kp_ctx_sync(struct kp_ctx *ctx, bool full);

/**
 * kp_ctx_drain_programming_latencies - hand over, and forget, how long endpoint changes
 * took to be programmed
 * @fn: called once per change, in seconds from the change's
 *      endpoints.kubernetes.io/last-change-trigger-time annotation (as the EndpointSlice
 *      controller sets it) to the end of the successful sync that programmed it, which is
 *      what kube-proxy's kubeproxy_network_programming_duration_seconds measures; NULL to
 *      just forget them
 * Only EndpointSlices and Endpoints that carry the annotation, and whose annotation
 * changed, are timed. Returns: how many there were.
 */
size_t kp_ctx_drain_programming_latencies(struct kp_ctx *ctx,
					  void (*fn)(double seconds, void *userdata),
					  void *userdata);

/**
 * kp_ctx_get_state - the desired state as of the last kp_ctx_sync() (borrowed; valid
 * until the next sync or free)
 */
const struct kp_state *kp_ctx_get_state(const struct kp_ctx *ctx);

/**
 * kp_ctx_dump - walk what the backend has programmed
 * @ctx: context
 * @fn: called once per (frontend, service port)
 * @userdata: passed to @fn
 * Returns: 0, -EOPNOTSUPP if the backend has no dump op, or the backend's error.
 */
int kp_ctx_dump(struct kp_ctx *ctx, kp_dump_fn fn, void *userdata);

/**
 * kp_ctx_dump_service - kp_ctx_dump() of one service's entries only
 * @ns, @name: the service
 * A backend with a dump_service op reads back only that service's part of the data plane
 * (nftables: its chains and maps, not every service's); for the others the whole dump is
 * walked and filtered. Since 0.6.
 * Returns: as kp_ctx_dump(); 0 with no call of @fn when the service has no entry.
 */
int kp_ctx_dump_service(struct kp_ctx *ctx, const char *ns, const char *name, kp_dump_fn fn,
			void *userdata);

/**
 * kp_ctx_cleanup - remove everything the backend has programmed (backend cleanup op)
 * Returns: 0, or the backend's negative errno.
 */
int kp_ctx_cleanup(struct kp_ctx *ctx);

/**
 * kp_ctx_has_pending - whether objects changed since the last successful sync
 */
bool kp_ctx_has_pending(const struct kp_ctx *ctx);

/**
 * kp_ctx_set_sync_periods - sync runner periods, in milliseconds
 * @ctx: context
 * @min_ms: least time between the end of a sync and the start of the next (default 1000)
 * @period_ms: a full resync at least this often (default 30000); 0 disables it
 * Returns: 0 or -EINVAL.
 */
int kp_ctx_set_sync_periods(struct kp_ctx *ctx, uint32_t min_ms, uint32_t period_ms);

/**
 * kp_ctx_run_due - the sync runner: sync if one is due now
 * @ctx: context
 * @now_ms: a monotonic clock, in milliseconds
 * @ret_wait_ms: set to how long the caller may sleep before calling again (-1: until
 *               the next object change); written also when a sync ran
 *
 * A sync is due when objects changed and at least min_ms passed since the previous sync
 * ended (bursts coalesce into one sync), or when period_ms passed since the last full
 * one. A failed sync is retried after min_ms. Returns: 1 if a sync ran and succeeded,
 * 0 if none was due, or the failed sync's negative errno.
 */
int kp_ctx_run_due(struct kp_ctx *ctx, int64_t now_ms, int64_t *ret_wait_ms);

/**
 * kp_version - the library version, "MAJOR.MINOR.PATCH"
 */
const char *kp_version(void);

/**
 * kp_strerror - a thread-safe strerror for the library's negative errnos
 * Returns: a static string.
 */
const char *kp_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
