/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kproxyd internals shared between its files: logging (and the reports of the sources'
 * events), the control socket, healthz and metrics, health-check node ports.
 */
#ifndef KPROXYD_H
#define KPROXYD_H

#include <stdbool.h>
#include <stdint.h>

#include <kproxy/kproxy.h>
#include <kproxy/api.h>
#include <kproxy/config.h>
#include <kproxy/manifests.h>

#define KPD_PRINTF(a, b) __attribute__((format(printf, a, b)))

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

/* control.c: the unix socket kproxyctl talks to */
struct kpd_info {
	const char *proxy_mode;		/* as requested with --proxy-mode */
	bool dry_run;
	const char *node_name;
	const char *manifests;		/* directory, or NULL */
	struct kp_api *api;		/* the API-server source, or NULL */
	int64_t start_ms;		/* CLOCK_REALTIME */
	const char *healthz_address;	/* as bound, or "" */
	const char *metrics_address;	/* as bound, or "" */
};
struct kpd_control;
int kpd_control_open(const char *path, struct kpd_control **ret);
int kpd_control_fd(const struct kpd_control *c);
/* Accepts one client and answers its request. */
void kpd_control_serve(struct kpd_control *c, struct kp_ctx *ctx, const struct kpd_info *info);
void kpd_control_close(struct kpd_control *c);

/* http.c: healthz, livez and Prometheus metrics */
struct kpd_health {
	int64_t start_ms;		/* CLOCK_REALTIME */
	int64_t timeout_ms;		/* the sync period: unhealthy after twice this */
};
struct kpd_http;
/* Listens on "host:port" ("[v6]:port"; port 0: any). */
int kpd_http_open(const char *spec, struct kpd_http **ret);
int kpd_http_fd(const struct kpd_http *h);
const char *kpd_http_address(const struct kpd_http *h);	/* as bound */
/* Answers one request: /healthz and /livez if @hc, else /metrics. */
void kpd_http_serve(struct kpd_http *h, struct kp_ctx *ctx, const struct kpd_health *hc);
void kpd_http_observe_sync(double seconds);
void kpd_http_observe_programming(double seconds, void *userdata);
/* The API-server source whose counters /metrics shows, or NULL. */
void kpd_http_set_api(struct kp_api *api);

/* hcports.c: health-check node ports of externalTrafficPolicy Local services */
struct pollfd;
struct kpd_hc;
int kpd_hc_new(struct kpd_hc **ret);
/* Opens and closes listeners to match the last sync's state, updates their counts. */
void kpd_hc_update(struct kpd_hc *hc, struct kp_ctx *ctx);
size_t kpd_hc_pollfds(const struct kpd_hc *hc, struct pollfd *out, size_t max);
/* Accepts and answers one request on the listener @fd. */
void kpd_hc_serve(struct kpd_hc *hc, int fd);
void kpd_hc_free(struct kpd_hc *hc);
void kpd_http_close(struct kpd_http *h);

#endif
