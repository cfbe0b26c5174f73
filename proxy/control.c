// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control socket: a unix stream socket (mode 0600) on which kproxyctl sends one
 * request line ("dump", "dump NS/NAME", "status", "check" or "trace SRC DST") and reads
 * one JSON document back. The dump comes from the backend's dump op (dump_service for
 * one service), so it shows what is programmed; the JSON shape is
 * documented in kproxyctl(8). The file mode keeps other users out; SO_PEERCRED does it
 * again where the mode was loosened or the socket handed on: a peer that is neither root
 * nor kproxyd's own user gets an error line at once. Clients are served from the event
 * loop (conn.c), at most MAX_CLIENTS at once, each with REQUEST_TIMEOUT_MS to send its
 * line of at most MAX_REQUEST bytes and again to read the answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "kpd.h"

#define REQUEST_TIMEOUT_MS 2000
#define MAX_REQUEST 4096	/* bytes, the newline included */
#define MAX_CLIENTS 64
#define BACKLOG 128

struct kpd_control {
	int fd;
	char *path;
	struct kpd_loop *loop;
	struct kpd_conns *conns;
	struct kp_ctx *ctx;
	const struct kpd_info *info;
};

static const struct kpd_conn_ops control_ops;

static void on_listener(int fd, void *userdata)
{
	struct kpd_control *c = userdata;

	kpd_conns_accept(c->conns, fd, 0);
}

int kpd_control_open(const char *path, struct kpd_loop *loop, struct kp_ctx *ctx,
		     const struct kpd_info *info, struct kpd_control **ret)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct kpd_control *c;
	mode_t old;
	int fd, r;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a stale socket from a previous run is replaced; a live one is not */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	unlink(path);
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, BACKLOG) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path))) {
		free(c);
		close(fd);
		unlink(path);
		return -ENOMEM;
	}
	c->fd = fd;
	c->loop = loop;
	c->ctx = ctx;
	c->info = info;
	r = kpd_conns_new(loop, &control_ops, c, &c->conns);
	if (r < 0 || (r = kpd_loop_watch(loop, fd, on_listener, c)) < 0) {
		kpd_conns_free(c->conns);
		free(c->path);
		free(c);
		close(fd);
		unlink(path);
		return r;
	}
	*ret = c;
	return 0;
}

void kpd_control_close(struct kpd_control *c)
{
	if (!c)
		return;
	kpd_loop_unwatch(c->loop, c->fd);
	kpd_conns_free(c->conns);
	close(c->fd);
	unlink(c->path);
	free(c->path);
	free(c);
}

static json_t *addr_json(const struct kp_addr *a)
{
	char buf[KP_ADDR_STRLEN];

	return json_string(kp_addr_to_str(a, buf, sizeof(buf)));
}

static int dump_entry(const struct kp_dump_entry *e, void *userdata)
{
	json_t *entries = userdata, *eps = json_array(), *o;

	for (size_t i = 0; i < e->n_endpoints; i++) {
		const struct kp_endpoint *ep = &e->endpoints[i];

		json_t *epo = json_pack("{s:o, s:i, s:b, s:b, s:b, s:b}",
			"ip", addr_json(&ep->addr), "port", ep->port, "ready", ep->ready,
			"serving", ep->serving, "terminating", ep->terminating, "local", ep->local);

		if (epo && e->dest_stats) {
			const struct kp_dest_stats *st = &e->dest_stats[i];

			json_object_set_new(epo, "weight", json_integer(st->weight));
			json_object_set_new(epo, "active_conns", json_integer(st->active_conns));
			json_object_set_new(epo, "inactive_conns", json_integer(st->inactive_conns));
			json_object_set_new(epo, "persist_conns", json_integer(st->persist_conns));
		}
		json_array_append_new(eps, epo);
	}
	o = json_pack("{s:s++, s:s, s:s, s:s, s:o, s:i, s:o}",
		      "service", e->ns, "/", e->name, "port_name", e->port_name,
		      "protocol", kp_protocol_name(e->protocol), "kind", kp_frontend_kind_name(e->kind),
		      "vip", addr_json(&e->vip), "port", e->port, "endpoints", eps);
	if (o && e->detail)
		json_object_set_new(o, "detail", json_string(e->detail));
	return o ? json_array_append_new(entries, o) : -ENOMEM;
}

/* The whole dump, or with @service ("NS/NAME") that service's entries only. */
static json_t *do_dump(struct kp_ctx *ctx, const struct kpd_info *info, const char *service)
{
	json_t *entries = json_array();
	const char *slash = service ? strchr(service, '/') : NULL;
	char ns[128];
	int r;

	if (service && (!slash || slash == service || !slash[1] || strchr(slash + 1, '/') ||
			(size_t)(slash - service) >= sizeof(ns))) {
		json_decref(entries);
		return json_pack("{s:s+}", "error", "dump: a service is NAMESPACE/NAME, not ",
				 service);
	}
	if (service) {
		snprintf(ns, sizeof(ns), "%.*s", (int)(slash - service), service);
		r = kp_ctx_dump_service(ctx, ns, slash + 1, dump_entry, entries);
	} else {
		r = kp_ctx_dump(ctx, dump_entry, entries);
	}

	if (r < 0) {
		json_decref(entries);
		return json_pack("{s:s+}", "error", "dump failed: ", kp_ctx_get_error(ctx));
	}
	return json_pack("{s:s, s:s, s:b, s:o}", "backend", kp_ctx_get_backend_name(ctx),
			 "proxy_mode", info->proxy_mode, "dry_run", info->dry_run,
			 "entries", entries);
}

static int add_stat(const struct kp_stat *s, void *userdata)
{
	json_array_append_new(userdata, json_pack("{s:s, s:s, s:f}", "name", s->name,
						  "labels", s->labels, "value", s->value));
	return 0;
}

/* The data plane's own figures (rules written, virtual servers, flows...), as /metrics
 * has them. */
static json_t *dataplane_status(struct kp_ctx *ctx)
{
	json_t *a = json_array();

	if (a)
		kp_ctx_backend_stats(ctx, add_stat, a);
	return a;
}

static int check_diff(const struct kp_check_diff *d, void *userdata)
{
	static const char *const what[_KP_CHECK_MAX] = { "missing", "extra", "endpoints" };
	const struct kp_dump_entry *e = d->want ? d->want : d->have;
	json_t *o = json_pack("{s:s, s:s++, s:s, s:s, s:s, s:o, s:i, s:o, s:o}",
			      "what", what[d->what], "service", e->ns, "/", e->name,
			      "port_name", e->port_name ? e->port_name : "",
			      "protocol", kp_protocol_name(e->protocol),
			      "kind", kp_frontend_kind_name(e->kind), "vip", addr_json(&e->vip),
			      "port", e->port, "want", d->want ? kpd_endpoints_json(
				      d->want->endpoints, d->want->n_endpoints) : json_null(),
			      "have", d->have ? kpd_endpoints_json(
				      d->have->endpoints, d->have->n_endpoints) : json_null());

	if (o && d->have && d->have->detail)
		json_object_set_new(o, "detail", json_string(d->have->detail));
	return o ? json_array_append_new(userdata, o) : -ENOMEM;
}

/* The data plane read back against the desired state (kproxyctl check). */
static json_t *do_check(struct kp_ctx *ctx, const struct kpd_info *info)
{
	json_t *diffs = json_array();
	int r = diffs ? kp_ctx_check(ctx, check_diff, diffs) : -ENOMEM;

	if (r < 0) {
		json_decref(diffs);
		return json_pack("{s:s+}", "error", "check failed: ", kp_ctx_get_error(ctx));
	}
	if (info->run)
		info->run->last_check = r;
	return json_pack("{s:s, s:b, s:b, s:b, s:i, s:o}", "backend", kp_ctx_get_backend_name(ctx),
			 "dry_run", info->dry_run, "agree", r == 0,
			 "pending", kp_ctx_has_pending(ctx), "differences_count", r,
			 "differences", diffs);
}

static json_t *api_status(const struct kpd_info *info)
{
	struct kp_api_stats a;

	if (!info->api)
		return json_null();
	kp_api_get_stats(info->api, &a);
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "synced", kp_api_synced(info->api),
			 "lists", (json_int_t)a.n_lists, "relists", (json_int_t)a.n_relists,
			 "watches", (json_int_t)a.n_watches,
			 "watch_restarts", (json_int_t)a.n_watch_restarts,
			 "events", (json_int_t)a.n_events, "errors", (json_int_t)a.n_errors);
}

struct opt_walk {
	json_t *list;
	const char *mode;
};

static int add_option(const struct kp_option *opt, const char *value, void *userdata)
{
	struct opt_walk *w = userdata;
	const char *flag = kpd_flag_of(w->mode, opt->name);

	json_array_append_new(w->list, json_pack("{s:s, s:s, s:s?, s:s?}", "name", opt->name,
						 "type", kp_option_type_name(opt->type),
						 "value", value, "flag", flag));
	return 0;
}

/* The data plane's options in force, with the flag that sets each. */
static json_t *options_status(struct kp_ctx *ctx)
{
	struct opt_walk w = { json_array(), kp_ctx_get_backend_name(ctx) };

	kp_ctx_foreach_option(ctx, add_option, &w);
	return w.list;
}

static json_t *do_status(struct kp_ctx *ctx, const struct kpd_info *info)
{
	struct kp_counts c;
	json_t *st;

	kp_ctx_get_counts(ctx, &c);
	st = json_pack("{s:s, s:s, s:b, s:s, s:s?, s:s, s:I, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I},"
			 " s:{s:I, s:I, s:I, s:i, s:s, s:b}}",
			 "backend", kp_ctx_get_backend_name(ctx), "proxy_mode", info->proxy_mode,
			 "dry_run", info->dry_run, "node", info->node_name ? info->node_name : "",
			 "manifests", info->manifests, "version", kp_version(),
			 "start_time_ms", (json_int_t)info->start_ms,
			 "healthz_address", info->healthz_address,
			 "metrics_address", info->metrics_address,
			 "objects", "services", (json_int_t)c.n_services,
			 "endpointslices", (json_int_t)c.n_slices,
			 "endpoints", (json_int_t)c.n_endpoints,
			 "service_ports", (json_int_t)c.n_svc_ports,
			 "rejected", (json_int_t)c.n_rejected,
			 "sync", "count", (json_int_t)c.n_syncs, "errors", (json_int_t)c.n_sync_errors,
			 "last_time_ms", (json_int_t)c.last_sync_ms, "last_result", c.last_sync_result,
			 "last_error", c.last_sync_result ? kp_strerror(c.last_sync_result) : "",
			 "pending", kp_ctx_has_pending(ctx));
	if (st) {
		size_t n_cidrs = 0;
		const struct kp_cidr *cidrs = kp_ctx_get_service_cidrs(ctx, &n_cidrs);
		json_t *sc = json_array();

		/* the ServiceCIDR objects' ranges (the nftables mode drops traffic to what
		 * no service has in them) */
		for (size_t i = 0; sc && cidrs && i < n_cidrs; i++) {
			char a[KP_ADDR_STRLEN], t[KP_ADDR_STRLEN + 8];

			snprintf(t, sizeof(t), "%s/%u", kp_addr_to_str(&cidrs[i].addr, a, sizeof(a)),
				 cidrs[i].prefix);
			json_array_append_new(sc, json_string(t));
		}
		if (sc)
			json_object_set_new(st, "service_cidrs", sc);
		json_object_set_new(st, "dataplane", dataplane_status(ctx));
		{
			bool full = info->run && info->run->last_sync_full;
			double s = info->run ? info->run->last_sync_s : -1;
			struct kp_sync_info si;

			kp_ctx_get_sync_info(ctx, &si, sizeof(si));
			json_object_set_new(json_object_get(st, "sync"), "last_duration_s",
					    s < 0 ? json_null() : json_real(s));
			json_object_set_new(json_object_get(st, "sync"), "last_full",
					    json_boolean(full));
			json_object_set_new(json_object_get(st, "sync"), "services_pending",
					    json_integer((json_int_t)(si.n_services_pending +
								      si.n_endpoints_pending)));
		}
		json_object_set_new(st, "api", api_status(info));
		json_object_set_new(st, "options", options_status(ctx));
		if (info->nodefw)
			json_object_set_new(st, "node_netfilter", json_pack(
				"{s:s, s:b, s:I, s:I, s:b}", "backend", info->nodefw->backend,
				"kubelet_hint_in_nft", info->nodefw->nft_hint,
				"nft_rules", (json_int_t)info->nodefw->nft_rules,
				"legacy_rules", (json_int_t)info->nodefw->legacy_rules,
				"legacy_missing", info->nodefw->legacy_missing));
	}
	return st;
}

static bool line_complete(const char *req, size_t size)
{
	return memchr(req, '\n', size) != NULL;
}

/* root, or kproxyd's own user (who owns the socket file anyway) */
static const char *control_admit(int fd, void *userdata)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	(void)userdata;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return "{\"error\":\"permission denied: cannot tell who the peer is\"}\n";
	if (cred.uid == 0 || cred.uid == geteuid())
		return NULL;
	kpd_dbg(2, "control socket: refused pid %ld, uid %lu: not root", (long)cred.pid,
		(unsigned long)cred.uid);
	return "{\"error\":\"permission denied: the control socket serves root only\"}\n";
}

static char *control_answer(int fd, const char *req, size_t size, void *userdata,
			    uintptr_t tag, size_t *ret_size)
{
	struct kpd_control *c = userdata;
	char line[256], src[128], dst[128];
	json_t *resp;
	char *text;

	(void)fd;
	(void)size;
	(void)tag;
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(req, "\r\n"), req);
	if (strcmp(line, "dump") == 0)
		resp = do_dump(c->ctx, c->info, NULL);
	else if (strncmp(line, "dump ", 5) == 0)
		resp = do_dump(c->ctx, c->info, line + 5);
	else if (strcmp(line, "status") == 0)
		resp = do_status(c->ctx, c->info);
	else if (strcmp(line, "check") == 0)
		resp = do_check(c->ctx, c->info);
	else if (sscanf(line, "trace %127s %127s", src, dst) == 2)
		resp = kpd_trace(c->ctx, src, dst);
	else if (!(resp = json_pack("{s:s+}", "error", "unknown request: ", line)))
		resp = json_pack("{s:s}", "error", "unknown request (not UTF-8)");
	text = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	if (!text)
		return NULL;
	*ret_size = strlen(text) + 1;
	text[*ret_size - 1] = '\n';	/* the NUL's place: the answer is a line */
	return text;
}

static const struct kpd_conn_ops control_ops = {
	.name = "control socket",
	.max_request = MAX_REQUEST,
	.max_conns = MAX_CLIENTS,
	.timeout_ms = REQUEST_TIMEOUT_MS,
	.too_long = "{\"error\":\"request longer than 4096 bytes\"}\n",
	.complete = line_complete,
	.answer = control_answer,
	.admit = control_admit,
};

