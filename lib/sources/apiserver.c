// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The API-server source: list, then watch, Services, EndpointSlices and this node's Node,
 * the way client-go's reflector does, on one libcurl multi handle driven by the caller's
 * poll loop (curl's socket callback feeds an epoll set, its timer callback a deadline).
 *
 * A list is read page by page (limit/continue), each page one item at a time (the items
 * array is split by a scan and each item parsed alone, so no tree of a whole page is
 * held); each object is handed to the context as its own source, as parsed
 * (kp_ctx_load_json(): never printed back to text and parsed again), so a watch event
 * replaces or removes exactly one object. When the last page has arrived, objects the
 * previous list or watch held and this list did not return are removed, and the watch
 * starts from the list's resourceVersion. A watch is read as it streams: each
 * newline-terminated JSON event is applied at once, whatever the read boundaries (take();
 * kp_api_watch_feed() hands it bytes without libcurl, for the fuzz target). A watch
 * that ends cleanly (timeoutSeconds) is restarted at once from the last version seen; one
 * that fails is restarted after a jittered exponential back-off; 410 Gone or an ERROR event
 * with code 410 means a re-list. The context keeps every object through all of this: a
 * fault never empties it.
 *
 * Bounds on a broken connection. A watch that receives no byte at all (no event, no
 * bookmark) for the stall bound (90 s by default, kp_api_set_watch_stall_timeout(); the
 * API server sends a watch that allows bookmarks one about every minute) is abandoned,
 * logged, and watched again at once from the last resourceVersion seen: not a re-list,
 * nothing leaves the context (the bound itself spaces such restarts; a connection that
 * cannot be made again fails and gets the back-off). A list page that stalls fails after
 * 60 s (libcurl's low-speed limit), a connection attempt after 10 s. Every connection has
 * TCP keepalive (probes after 30 s idle, then every 10 s) and TCP_USER_TIMEOUT 30 s, so a
 * partition breaks an idle or a sending connection within about a minute even before the
 * stall bound. A 429 (or a 503)
 * with Retry-After is retried no sooner than the server asks, and no later than 5 minutes,
 * in place of the back-off; a 401 makes the next request read the token file again even
 * if its modification time did not change (a token rewritten in place).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include <kproxy/api.h>

#include "internal.h"

#define SELECTOR "labelSelector=%21service.kubernetes.io%2Fservice-proxy-name%2C" \
		 "%21service.kubernetes.io%2Fheadless"
#define PAGE_LIMIT 500
#define MAX_LINE (64u << 20)		/* one watch event; objects are far smaller */
#define BACKOFF_MIN_MS 800		/* client-go's reflector: 800 ms doubling to 30 s */
#define BACKOFF_MAX_MS 30000
#define STALL_DEFAULT_MS 90000		/* a watch silent this long is replaced */
#define KEEPIDLE_S 30L			/* TCP keepalive: first probe after this idle time */
#define KEEPINTVL_S 10L			/* then one probe every this */
#define USER_TIMEOUT_MS 30000		/* TCP_USER_TIMEOUT: unacknowledged data or probes */
#define RETRY_AFTER_MAX_S 300		/* the longest Retry-After honoured */

enum res { RES_SERVICES, RES_SLICES, RES_NODE, RES_SCIDRS, _RES_MAX };

static const struct {
	const char *name, *path, *kind, *api_version;
} resources[_RES_MAX] = {
	[RES_SERVICES] = { "services", "/api/v1/services", "Service", "v1" },
	[RES_SLICES] = { "endpointslices", "/apis/discovery.k8s.io/v1/endpointslices",
			 "EndpointSlice", "discovery.k8s.io/v1" },
	[RES_NODE] = { "nodes", "/api/v1/nodes", "Node", "v1" },
	[RES_SCIDRS] = { "servicecidrs", "/apis/networking.k8s.io/v1/servicecidrs",
			 "ServiceCIDR", "networking.k8s.io/v1" },
};

struct watcher {
	struct kp_api *api;
	enum res res;
	CURL *easy;			/* the transfer in flight, or NULL */
	struct curl_slist *hdrs;	/* its request headers, freed when it ends */
	bool listing;			/* the transfer is a list page (else a watch) */
	bool need_list;			/* next transfer: a (re-)list from the first page */
	bool relist_410;		/* the coming list follows a 410 */
	bool abort_relist;		/* the watch stream said 410: re-list when it ends */
	bool bad_data;			/* the stream had a line that is not an event */
	bool synced;			/* a full list has arrived */
	char *cont;			/* continue token of the list in progress */
	char rv[64];			/* resourceVersion to watch from */
	char *buf;			/* list body, or the watch's unfinished line */
	size_t len, cap;
	struct kp_map *held;		/* sources this watcher holds (values unused) */
	struct kp_map *listed;		/* sources the list in progress returned */
	unsigned failures;		/* in a row, for the back-off */
	unsigned gone_streak;		/* 410s with no event applied in between */
	int64_t start_at;		/* monotonic ms: when the next transfer may start */
	int64_t last_byte;		/* monotonic ms: the transfer started or last received */
	char errbuf[CURL_ERROR_SIZE];
};

struct kp_api {
	struct kp_ctx *ctx;
	struct kp_api_auth auth;	/* deep copy */
	char *token;			/* current bearer token (from auth.token or the file) */
	struct timespec token_mtime;
	bool token_reread;		/* a 401: read the token file again, whatever its mtime */
	char *base;			/* URL prefix requests go to */
	struct curl_slist *connect_to;	/* tls-server-name: that name, connected to the server */
	char *node_name;
	char *zone;			/* the Node's topology.kubernetes.io/zone */
	char *pod_cidrs;		/* its spec.podCIDRs, comma separated, or NULL */
	bool node_eligible;		/* see kp_api_node_eligible() */
	bool node_known;		/* the Node is there, as last seen */
	unsigned watch_timeout_s;
	unsigned stall_ms;		/* a watch silent this long is abandoned and restarted */
	CURLM *multi;
	int epfd;
	int64_t curl_deadline;		/* monotonic ms, -1: none */
	struct watcher w[_RES_MAX];
	struct kp_api_stats stats;
	uint64_t seed;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- credentials ---- */

/* A token file's token: the file without trailing white space; NULL (errno) on failure. */
static char *read_token(const char *path)
{
	char *buf;
	size_t n;
	int r = kp_read_file(path, 64 * 1024, &buf, &n);

	if (r < 0) {
		errno = -r;
		return NULL;
	}
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

/* The token to send: a token file is re-read whenever it changes (rotation), and after the
 * server refused the token (401), in case it was rewritten within the same mtime. */
static const char *current_token(struct kp_api *api)
{
	struct stat st;

	if (!api->auth.token_file)
		return api->auth.token;
	if (stat(api->auth.token_file, &st) == 0 &&
	    (st.st_mtim.tv_sec != api->token_mtime.tv_sec ||
	     st.st_mtim.tv_nsec != api->token_mtime.tv_nsec || !api->token ||
	     api->token_reread)) {
		char *t = read_token(api->auth.token_file);
		size_t off;

		if (t && !kp_token_valid(t, &off)) {
			kp_log(api->ctx, KP_LOG_WARN, "api: the token file %s: byte %zu is a space, "
			       "control character or not ASCII, which a bearer token cannot hold: "
			       "not sent", api->auth.token_file, off);
			explicit_bzero(t, strlen(t));
			free(t);
		} else if (t) {
			free(api->token);
			api->token = t;
			api->token_mtime = st.st_mtim;
			api->token_reread = false;
		} else {
			kp_log(api->ctx, KP_LOG_WARN, "api: cannot read the token file %s: %s",
			       api->auth.token_file, strerror(errno));
		}
	}
	return api->token ? api->token : api->auth.token;
}

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return -ENOMEM;
	return 0;
}

static int copy_auth(struct kp_api_auth *d, const struct kp_api_auth *s)
{
	int r = 0;

	memset(d, 0, sizeof(*d));
	r |= dup_str(&d->server, s->server);
	r |= dup_str(&d->ca_file, s->ca_file);
	r |= dup_str(&d->ca_data, s->ca_data);
	r |= dup_str(&d->cert_file, s->cert_file);
	r |= dup_str(&d->cert_data, s->cert_data);
	r |= dup_str(&d->key_file, s->key_file);
	r |= dup_str(&d->key_data, s->key_data);
	r |= dup_str(&d->token, s->token);
	r |= dup_str(&d->token_file, s->token_file);
	r |= dup_str(&d->tls_server_name, s->tls_server_name);
	d->insecure = s->insecure;
	return r ? -ENOMEM : 0;
}

/* ---- objects into the context ---- */

static void source_name(char *out, size_t size, enum res res, const char *ns, const char *name)
{
	snprintf(out, size, "api:%s/%s/%s", resources[res].name, ns ? ns : "", name);
}

static const char *meta_str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

/* Why the Node makes this node ineligible for traffic, as kube-proxy's health server
 * judges it (a deletionTimestamp, the cluster autoscaler's taint), or NULL. */
static const char *node_ineligible(json_t *node, bool deleted)
{
	json_t *taints = json_object_get(json_object_get(node, "spec"), "taints"), *t;
	size_t i;

	if (deleted)
		return "deleted";
	if (json_object_get(json_object_get(node, "metadata"), "deletionTimestamp") &&
	    !json_is_null(json_object_get(json_object_get(node, "metadata"),
					  "deletionTimestamp")))
		return "being deleted (deletionTimestamp)";
	json_array_foreach(taints, i, t) {
		const char *key = json_string_value(json_object_get(t, "key"));

		if (key && !strcmp(key, "ToBeDeletedByClusterAutoscaler"))
			return "tainted ToBeDeletedByClusterAutoscaler";
	}
	return NULL;
}

/* The Node's spec.podCIDRs (spec.podCIDR for an old one), "a,b", kept while it lasts. */
static void node_pod_cidrs(struct kp_api *api, json_t *node, bool deleted)
{
	json_t *spec = json_object_get(node, "spec"), *list = json_object_get(spec, "podCIDRs");
	char buf[256] = "";
	size_t i, len = 0;
	json_t *c;

	if (deleted)
		return;
	json_array_foreach(list, i, c)
		if (json_is_string(c) && len < sizeof(buf))
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "",
						json_string_value(c));
	if (!len && json_is_string(json_object_get(spec, "podCIDR")))
		snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(spec, "podCIDR")));
	if (!*buf || (api->pod_cidrs && !strcmp(buf, api->pod_cidrs)))
		return;
	free(api->pod_cidrs);
	api->pod_cidrs = strdup(buf);
	kp_log(api->ctx, KP_LOG_INFO, "api: node %s: pod CIDRs %s", api->node_name, buf);
}

static void node_seen(struct kp_api *api, json_t *node, bool deleted)
{
	const char *zone = deleted ? NULL :
		json_string_value(json_object_get(json_object_get(json_object_get(node, "metadata"),
								  "labels"),
						  "topology.kubernetes.io/zone"));
	const char *why = node_ineligible(node, deleted);

	api->node_known = !deleted;
	node_pod_cidrs(api, node, deleted);
	if (api->node_eligible != !why) {
		api->node_eligible = !why;
		kp_log(api->ctx, KP_LOG_INFO, "api: node %s: %s", api->node_name,
		       why ? why : "eligible for traffic");
	}
	if ((!zone && !api->zone) || (zone && api->zone && !strcmp(zone, api->zone)))
		return;
	free(api->zone);
	api->zone = zone ? strdup(zone) : NULL;
	kp_log(api->ctx, KP_LOG_INFO, "api: node %s: zone %s", api->node_name,
	       api->zone ? api->zone : "(none)");
	kp_ctx_set_node_zone(api->ctx, api->zone);
}

/*
 * Applies one object (a list item or an event's object): loaded as its own source, or
 * removed. Returns 0, or -EBADMSG when it has no name.
 */
static int apply(struct watcher *w, json_t *obj, bool deleted)
{
	struct kp_api *api = w->api;
	const char *name = meta_str(obj, "name"), *ns = meta_str(obj, "namespace");
	char src[600];
	int r;

	if (!json_is_object(obj) || !name)
		return -EBADMSG;
	source_name(src, sizeof(src), w->res, ns, name);
	if (w->listing && w->listed)
		kp_map_put(w->listed, src, w, NULL);
	if (w->res == RES_NODE) {
		if (api->node_name && !strcmp(name, api->node_name))
			node_seen(api, obj, deleted);
		return 0;
	}
	if (deleted) {
		kp_ctx_unload(api->ctx, src);
		kp_map_del(w->held, src);
		return 0;
	}
	/* list items come without kind and apiVersion */
	json_object_set_new(obj, "kind", json_string(resources[w->res].kind));
	json_object_set_new(obj, "apiVersion", json_string(resources[w->res].api_version));
	r = kp_ctx_load_json(api->ctx, src, obj);	/* the parsed object: no second parse */
	kp_map_put(w->held, src, w, NULL);
	return r < 0 ? r : 0;
}

/* The list is complete: drop what it no longer has, keep what it returned. */
static void finish_list(struct watcher *w)
{
	struct kp_map_iter it = { 0 };
	const char *key;
	size_t gone = 0;

	while (kp_map_next(w->held, &it, &key, NULL)) {
		if (kp_map_get(w->listed, key))
			continue;
		kp_ctx_unload(w->api->ctx, key);
		kp_map_del(w->held, key);
		gone++;
	}
	if (w->res == RES_NODE && !kp_map_size(w->listed) && w->api->node_known)
		node_seen(w->api, NULL, true);
	kp_map_free(w->listed);
	w->listed = NULL;
	w->synced = true;
	w->need_list = false;
	w->api->stats.n_lists++;
	if (w->relist_410)
		w->api->stats.n_relists++;
	w->relist_410 = false;
	kp_log(w->api->ctx, KP_LOG_INFO, "api: listed %s at resourceVersion %s (%zu held, %zu "
	       "gone)", resources[w->res].name, w->rv, kp_map_size(w->held), gone);
}

/* ---- transfers ---- */

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata);

static void end_transfer(struct watcher *w)
{
	if (w->easy) {
		curl_multi_remove_handle(w->api->multi, w->easy);
		curl_easy_cleanup(w->easy);
	}
	curl_slist_free_all(w->hdrs);
	w->easy = NULL;
	w->hdrs = NULL;
}

/* Schedules the next transfer after the back-off for @n failures in a row. */
static void delay(struct watcher *w, unsigned n)
{
	struct kp_api *api = w->api;
	int64_t d = BACKOFF_MIN_MS;

	for (unsigned i = 0; i < n && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	/* jitter: 80..120 % so that nodes do not come back in step */
	api->seed = api->seed * 6364136223846793005ULL + 1442695040888963407ULL;
	d = d * (80 + (int64_t)((api->seed >> 33) % 41)) / 100;
	w->start_at = now_ms() + d;
}

static void backoff(struct watcher *w)
{
	delay(w, w->failures++);
}

/* A PEM credential given as a file (@file_opt) or as text (@blob_opt, and @type_opt set
 * to "PEM" unless it is -1). */
static void set_pem(CURL *e, CURLoption file_opt, const char *file, CURLoption blob_opt,
		    const char *data, int type_opt)
{
	if (file)
		curl_easy_setopt(e, file_opt, file);
	if (data) {
		struct curl_blob b = { (void *)data, strlen(data), CURL_BLOB_COPY };

		curl_easy_setopt(e, blob_opt, &b);
		if (type_opt >= 0)
			curl_easy_setopt(e, (CURLoption)type_opt, "PEM");
	}
}

/* The next request's URL: a list page (the first one resets what the list has seen) or
 * a watch from the resource version the lists reached. NULL on ENOMEM. */
static char *request_url(struct watcher *w)
{
	struct kp_api *api = w->api;
	char *url, *q_extra;
	char sel[300];

	if (w->res == RES_NODE) {
		char *esc = curl_easy_escape(NULL, api->node_name, 0);

		snprintf(sel, sizeof(sel), "fieldSelector=metadata.name%%3D%s", esc ? esc : "");
		curl_free(esc);
	} else if (w->res == RES_SCIDRS) {
		sel[0] = 0;	/* every one: no selector */
	} else {
		snprintf(sel, sizeof(sel), "%s", SELECTOR);
	}
	w->listing = w->need_list;
	if (w->listing) {
		char *c = w->cont ? curl_easy_escape(NULL, w->cont, 0) : NULL;

		q_extra = kp_asprintf("limit=%u%s%s", PAGE_LIMIT, c ? "&continue=" : "",
				      c ? c : "");
		curl_free(c);
		if (!w->cont) {
			kp_map_free(w->listed);
			w->listed = kp_map_new();
		}
	} else {
		char *rv = curl_easy_escape(NULL, w->rv, 0);

		q_extra = rv ? kp_asprintf("watch=1&allowWatchBookmarks=true&timeoutSeconds=%u"
					   "&resourceVersion=%s", api->watch_timeout_s, rv) : NULL;
		curl_free(rv);
		api->stats.n_watches++;
	}
	url = q_extra ? kp_asprintf("%s%s?%s%s%s", api->base, resources[w->res].path, sel,
				    *sel ? "&" : "", q_extra) : NULL;
	free(q_extra);
	return url;
}

/* Every connection: TCP_USER_TIMEOUT, so that data or keepalive probes nobody acknowledges
 * (a partition) break it in bounded time rather than after the kernel's 15 retries. */
static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
	unsigned int t = USER_TIMEOUT_MS;

	(void)clientp;
	if (purpose == CURLSOCKTYPE_IPCXN)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &t, sizeof(t));	/* best effort */
	return CURL_SOCKOPT_OK;
}

/* The transfer's options: time-outs, keepalive, credentials and TLS as the kubeconfig
 * says; the headers it will send (borrowed by libcurl) go to @ret_hdrs. */
static void setup_easy(struct watcher *w, CURL *e, const char *url,
		       struct curl_slist **ret_hdrs)
{
	struct kp_api *api = w->api;
	const char *token = current_token(api);
	struct curl_slist *hdrs = NULL;

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, w);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, w->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, KEEPIDLE_S);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, KEEPINTVL_S);
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "kproxyd/" PACKAGE_VERSION);
	/* a stalled list fails after a minute; a watch has the stall bound (check_stall())
	 * and, beyond its own timeoutSeconds, half a minute of grace */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	if (!w->listing) {
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 0L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(api->watch_timeout_s + 30) * 1000L);
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (token && *token) {
		char *h = kp_asprintf("Authorization: Bearer %s", token);

		if (h) {
			hdrs = curl_slist_append(hdrs, h);	/* copies it */
			explicit_bzero(h, strlen(h));
			free(h);
		}
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	set_pem(e, CURLOPT_CAINFO, api->auth.ca_file, CURLOPT_CAINFO_BLOB, api->auth.ca_data, -1);
	set_pem(e, CURLOPT_SSLCERT, api->auth.cert_file, CURLOPT_SSLCERT_BLOB,
		api->auth.cert_data, CURLOPT_SSLCERTTYPE);
	set_pem(e, CURLOPT_SSLKEY, api->auth.key_file, CURLOPT_SSLKEY_BLOB, api->auth.key_data,
		CURLOPT_SSLKEYTYPE);
	if (api->connect_to)
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, api->connect_to);
	if (api->auth.insecure) {	/* only when the kubeconfig asks for it */
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	*ret_hdrs = hdrs;
}

static int start(struct watcher *w)
{
	struct kp_api *api = w->api;
	char *url = request_url(w);
	CURL *e = curl_easy_init();

	if (!url || !e || (w->listing && !w->listed)) {
		free(url);
		if (e)
			curl_easy_cleanup(e);
		backoff(w);
		return -ENOMEM;
	}
	w->len = 0;
	w->last_byte = now_ms();
	w->bad_data = w->abort_relist = false;
	w->errbuf[0] = '\0';
	setup_easy(w, e, url, &w->hdrs);	/* libcurl reads the headers during the transfer */
	kp_log(api->ctx, KP_LOG_DEBUG, "api: GET %s", url);
	free(url);
	w->easy = e;
	w->start_at = -1;
	if (curl_multi_add_handle(api->multi, e) != CURLM_OK) {
		end_transfer(w);
		backoff(w);
		return -EIO;
	}
	return 0;
}

static void set_rv(struct watcher *w, const char *rv)
{
	if (rv && *rv)
		snprintf(w->rv, sizeof(w->rv), "%s", rv);
}

/* One line of a watch stream. Returns false to stop the transfer. */
static bool watch_line(struct watcher *w, const char *line, size_t len)
{
	struct kp_api *api = w->api;
	json_error_t jerr;
	json_t *ev, *obj;
	const char *type;
	bool go_on = true;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (!len)
		return true;
	ev = json_loadb(line, len, 0, &jerr);
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		kp_log(api->ctx, KP_LOG_WARN, "api: watch %s: a line that is not an event (%s); "
		       "watching again from resourceVersion %s", resources[w->res].name,
		       ev ? "no type or object" : jerr.text, w->rv);
		w->bad_data = true;
		json_decref(ev);
		return false;
	}
	if (!strcmp(type, "ERROR")) {
		json_int_t code = json_integer_value(json_object_get(obj, "code"));
		const char *msg = json_string_value(json_object_get(obj, "message"));

		kp_log(api->ctx, code == 410 ? KP_LOG_INFO : KP_LOG_WARN, "api: watch %s: error "
		       "%lld: %s", resources[w->res].name, (long long)code, msg ? msg : "");
		if (code == 410 || (msg && strstr(msg, "too old resource version")))
			w->abort_relist = true;
		else
			w->bad_data = true;
		go_on = false;
	} else if (!strcmp(type, "BOOKMARK")) {
		set_rv(w, meta_str(obj, "resourceVersion"));
		w->failures = 0;	/* as an event: the watch is healthy */
	} else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED") ||
		   !strcmp(type, "DELETED")) {
		if (apply(w, obj, !strcmp(type, "DELETED")) == -EBADMSG) {
			kp_log(api->ctx, KP_LOG_WARN, "api: watch %s: %s event without a name",
			       resources[w->res].name, type);
		} else {
			set_rv(w, meta_str(obj, "resourceVersion"));
			api->stats.n_events++;
			w->gone_streak = 0;
			/* a watch that delivers is healthy: if it drops later, the next try
			 * waits the shortest back-off, not one grown by older failures */
			w->failures = 0;
		}
	} else {
		kp_log(api->ctx, KP_LOG_WARN, "api: watch %s: unknown event type \"%s\" ignored",
		       resources[w->res].name, type);
	}
	json_decref(ev);
	return go_on;
}

/*
 * Takes @n bytes of a response: a list page or an error status (@whole) is kept whole; a
 * watch stream's complete lines are applied at once and its unfinished tail kept.
 * Returns @n, or 0 to end the transfer (over the size limit, no memory, or a line that
 * ends the watch: done() decides what follows).
 */
static size_t take(struct watcher *w, const char *data, size_t n, bool whole)
{
	size_t start = 0;

	if (w->len + n > (w->listing ? KP_MAX_DOCUMENT_SIZE : MAX_LINE)) {
		kp_log(w->api->ctx, KP_LOG_WARN, "api: %s: response over the size limit",
		       resources[w->res].name);
		return 0;
	}
	if (w->len + n > w->cap) {
		size_t cap = (w->len + n) * 2;
		char *b = realloc(w->buf, cap + 1);

		if (!b)
			return 0;
		w->buf = b;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
	if (whole)
		return n;
	/* watch: apply every complete line; keep the unfinished tail */
	for (size_t i = w->len - n; i < w->len; i++) {
		if (w->buf[i] != '\n')
			continue;
		if (!watch_line(w, w->buf + start, i - start))
			return 0;	/* ends the transfer; done() decides what follows */
		start = i + 1;
	}
	memmove(w->buf, w->buf + start, w->len - start);
	w->len -= start;
	return n;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct watcher *w = userdata;
	long code = 0;

	w->last_byte = now_ms();
	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
	/* a list or an error status is read whole */
	return take(w, data, size * nmemb, w->listing || code != 200);
}

int kp_api_watch_feed(struct kp_api *api, const char *resource, const char *data, size_t size)
{
	struct watcher *w = NULL;
	int r;

	assert(api && resource && (data || !size));
	for (int i = 0; i < _RES_MAX; i++)
		if (!strcmp(resources[i].name, resource))
			w = &api->w[i];
	if (!w)
		return -EINVAL;
	if (w->easy)
		return -EBUSY;	/* a real transfer owns the buffer */
	w->listing = false;
	if (take(w, data, size, false) == size)
		return 0;
	r = w->abort_relist ? -ESTALE : w->bad_data ? -EBADMSG : -EIO;
	w->len = 0;		/* the next stream starts clean, as start() has it */
	w->bad_data = w->abort_relist = false;
	return r;
}

/* ---- list pages, one item at a time ---- */

static size_t skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/*
 * The end of the JSON value that starts at @i, following strings and nesting only (what
 * it spans is then parsed by jansson, which checks the rest), or 0 if it does not end
 * within @n bytes.
 */
static size_t skip_value(const char *s, size_t i, size_t n)
{
	size_t depth = 0;

	if (i < n && s[i] != '"' && s[i] != '{' && s[i] != '[') {	/* number, literal */
		while (i < n && !strchr(",:]} \t\r\n", s[i]))
			i++;
		return i;
	}
	do {
		if (i >= n)
			return 0;
		if (s[i] == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			if (i >= n)
				return 0;
		} else if (s[i] == '{' || s[i] == '[') {
			depth++;
		} else if (s[i] == '}' || s[i] == ']') {
			if (!depth)
				return 0;
			depth--;
		}
		i++;
	} while (depth);
	return i;
}

/*
 * Finds the value of the top-level "items" key of the object in @s: *ret_from and *ret_to
 * span it. Returns false if @s is not an object the scan can follow, or has no items.
 */
static bool find_items(const char *s, size_t n, size_t *ret_from, size_t *ret_to)
{
	size_t i = skip_ws(s, 0, n), k, ke, v, e;
	bool found = false;

	if (i >= n || s[i] != '{')
		return false;
	i = skip_ws(s, i + 1, n);
	while (i < n && s[i] == '"') {
		k = i;
		ke = skip_value(s, i, n);
		if (!ke || (i = skip_ws(s, ke, n)) >= n || s[i] != ':')
			return false;
		v = skip_ws(s, i + 1, n);
		e = skip_value(s, v, n);
		if (!e || e == v)
			return false;
		if (ke - k == 7 && !memcmp(s + k, "\"items\"", 7)) {
			*ret_from = v;
			*ret_to = e;
			found = true;
		}
		i = skip_ws(s, e, n);
		if (i < n && s[i] == ',')
			i = skip_ws(s, i + 1, n);
		else
			break;
	}
	return found && i < n && s[i] == '}';
}

/*
 * Parses a list page without holding the tree of every item at once: returns the envelope
 * (kind, metadata, and "items" emptied), and, when items is an array, sets *ret_from and
 * *ret_to to the span of its elements in @buf for the caller to parse one at a time.
 * Anything the scan cannot follow is parsed whole, as before (*ret_from == *ret_to then).
 */
static json_t *parse_page(const char *buf, size_t len, size_t *ret_from, size_t *ret_to,
			  json_error_t *jerr)
{
	size_t from = 0, to = 0;
	char *env;
	json_t *doc;

	*ret_from = *ret_to = 0;
	if (!find_items(buf, len, &from, &to) || buf[from] != '[')
		return json_loadb(buf, len, 0, jerr);
	env = malloc(len - (to - from) + 3);
	if (!env)
		return json_loadb(buf, len, 0, jerr);
	memcpy(env, buf, from);
	memcpy(env + from, "[]", 2);
	memcpy(env + from + 2, buf + to, len - to);
	doc = json_loadb(env, len - (to - from) + 2, 0, jerr);
	free(env);
	if (doc) {
		*ret_from = from + 1;
		*ret_to = to - 1;
	}
	return doc;
}

/* Applies the items of a page, each parsed alone from @buf[@from, @to). Returns 0, or
 * -EBADMSG with @jerr set if one does not parse (those before it are applied). */
static int apply_items(struct watcher *w, const char *buf, size_t from, size_t to,
		       json_error_t *jerr)
{
	size_t i = skip_ws(buf, from, to), end, k = 0;

	while (i < to) {
		json_t *it;

		end = skip_value(buf, i, to);
		it = end ? json_loadb(buf + i, end - i, 0, jerr) : NULL;
		if (!it) {
			if (!end)
				snprintf(jerr->text, sizeof(jerr->text), "item %zu does not end", k);
			return -EBADMSG;
		}
		if (apply(w, it, false) == -EBADMSG)
			kp_log(w->api->ctx, KP_LOG_WARN, "api: list %s: item %zu has no name",
			       resources[w->res].name, k);
		json_decref(it);
		k++;
		i = skip_ws(buf, end, to);
		if (i < to && buf[i] == ',')
			i = skip_ws(buf, i + 1, to);
		else if (i < to) {
			snprintf(jerr->text, sizeof(jerr->text), "no ',' after item %zu", k - 1);
			return -EBADMSG;
		}
	}
	return 0;
}

/* A finished list page. */
static void list_done(struct watcher *w)
{
	struct kp_api *api = w->api;
	json_error_t jerr;
	size_t from, to, i;
	json_t *doc, *items, *it;
	const char *cont, *rv;

	doc = parse_page(w->buf ? w->buf : "", w->len, &from, &to, &jerr);
	items = json_object_get(doc, "items");
	rv = meta_str(doc, "resourceVersion");
	if ((!json_is_array(items) && !json_is_null(items)) ||
	    (to > from && apply_items(w, w->buf, from, to, &jerr) < 0)) {
		kp_log(api->ctx, KP_LOG_WARN, "api: list %s: not a list (%s)",
		       resources[w->res].name, doc && !json_is_array(items) ? "no items" :
		       jerr.text);
		json_decref(doc);
		api->stats.n_errors++;
		free(w->cont);
		w->cont = NULL;
		backoff(w);
		return;
	}
	json_array_foreach(items, i, it)	/* a page the scan could not follow */
		if (apply(w, it, false) == -EBADMSG)
			kp_log(api->ctx, KP_LOG_WARN, "api: list %s: item %zu has no name",
			       resources[w->res].name, i);
	cont = meta_str(doc, "continue");
	free(w->cont);
	w->cont = cont && *cont ? strdup(cont) : NULL;
	if (!w->cont) {
		set_rv(w, rv);
		finish_list(w);
	}
	json_decref(doc);
	if (!w->cont) {		/* a whole list's buffer is not kept for the watch's lines */
		free(w->buf);
		w->buf = NULL;
		w->len = w->cap = 0;
	}
	w->failures = 0;
	w->start_at = now_ms();		/* the next page, or the watch, at once */
}

/*
 * A 429 (or 503) that says when to come back (Retry-After, in seconds or as a date): the
 * next try waits that long, at most RETRY_AFTER_MAX_S, in place of the back-off. Returns
 * whether it did.
 */
static bool retry_after(struct watcher *w, long code)
{
	curl_off_t s = 0;

	if ((code != 429 && code != 503) ||
	    curl_easy_getinfo(w->easy, CURLINFO_RETRY_AFTER, &s) != CURLE_OK || s <= 0)
		return false;
	if (s > RETRY_AFTER_MAX_S)
		s = RETRY_AFTER_MAX_S;
	kp_log(w->api->ctx, KP_LOG_INFO, "api: %s %s: the API server asks to retry after %lld s",
	       w->listing ? "list" : "watch", resources[w->res].name, (long long)s);
	w->failures++;
	w->start_at = now_ms() + (int64_t)s * 1000;
	return true;
}

/* A transfer ended: decide what comes next. */
static void done(struct watcher *w, CURLcode res)
{
	struct kp_api *api = w->api;
	long code = 0;

	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
	if (res == CURLE_OK && code == 200 && w->listing) {
		end_transfer(w);
		list_done(w);
		return;
	}
	if (code == 404 && w->res == RES_SCIDRS) {
		/* an API server before ServiceCIDRs (or with MultiCIDRServiceAllocator off) */
		kp_log(api->ctx, KP_LOG_INFO, "api: servicecidrs: not served by this API server "
		       "(HTTP 404): no service CIDRs, not watched");
		w->start_at = -1;
		end_transfer(w);
		return;
	}
	if (code == 410 || w->abort_relist) {
		/* the version is gone from the server's history: list again, from page one */
		kp_log(api->ctx, KP_LOG_INFO, "api: %s: resourceVersion %s is too old; listing "
		       "again", resources[w->res].name, w->rv);
		w->need_list = true;
		w->relist_410 = true;
		free(w->cont);
		w->cont = NULL;
		/* at once the first time; a server that keeps saying 410 gets the back-off */
		if (w->gone_streak++)
			delay(w, w->gone_streak - 2);
		else
			w->start_at = now_ms();
	} else if (res == CURLE_OK && code == 200 && !w->bad_data) {
		/* the watch's timeoutSeconds ran out: carry on from the last version */
		w->failures = 0;
		w->gone_streak = 0;
		w->start_at = now_ms();
	} else {
		if (code && code != 200) {
			char body[200];

			snprintf(body, sizeof(body), "%.*s", (int)(w->len < 150 ? w->len : 150),
				 w->buf ? w->buf : "");
			kp_log(api->ctx, KP_LOG_WARN, "api: %s: HTTP %ld from the API server: %s",
			       resources[w->res].name, code, body);
		} else if (res != CURLE_OK && !w->bad_data) {
			kp_log(api->ctx, KP_LOG_WARN, "api: %s %s: %s", w->listing ? "list" : "watch",
			       resources[w->res].name, w->errbuf[0] ? w->errbuf :
			       curl_easy_strerror(res));
		}
		api->stats.n_errors++;
		if (!w->listing)
			api->stats.n_watch_restarts++;
		if (w->listing) {	/* a list that failed starts again from page one */
			free(w->cont);
			w->cont = NULL;
		}
		if (code == 401 && api->auth.token_file)
			api->token_reread = true;	/* rotated in place: read it again */
		if (!retry_after(w, code))
			backoff(w);
	}
	end_transfer(w);
}

/* A watch that received nothing, not even a bookmark, for the stall bound: the connection
 * is taken for dead (a partition, a hung server) and the watch resumed from its version. */
static void check_stall(struct watcher *w, int64_t now)
{
	struct kp_api *api = w->api;

	if (!w->easy || w->listing || now - w->last_byte < (int64_t)api->stall_ms)
		return;
	kp_log(api->ctx, KP_LOG_WARN, "api: watch %s: silent for %lld s (no event, no "
	       "bookmark): the connection is taken for dead; watching again from "
	       "resourceVersion %s", resources[w->res].name,
	       (long long)((now - w->last_byte) / 1000), w->rv);
	end_transfer(w);
	api->stats.n_errors++;
	api->stats.n_watch_restarts++;
	/* at once: the bound itself spaces the restarts, and a connection that cannot be
	 * made again fails and gets the back-off */
	w->start_at = now_ms();
}

/* ---- libcurl's event callbacks ---- */

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct kp_api *api = userp;
	struct epoll_event ev = { .data.fd = s };

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(api->epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(api->multi, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (socketp) {
		epoll_ctl(api->epfd, EPOLL_CTL_MOD, s, &ev);
	} else {
		epoll_ctl(api->epfd, EPOLL_CTL_ADD, s, &ev);
		curl_multi_assign(api->multi, s, api);	/* marks it as added */
	}
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct kp_api *api = userp;

	(void)multi;
	api->curl_deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	return 0;
}

/*
 * tls-server-name: requests name that host (so TLS sends and verifies it) and libcurl
 * connects them to the server's real host and port instead.
 */
static int tls_name_route(struct kp_api *api)
{
	const char *s = api->auth.server, *host = strstr(s, "://") + 3, *end, *port;
	bool https = !strncmp(s, "https://", 8);
	char *entry;
	size_t hlen;

	if (!api->auth.tls_server_name || !*api->auth.tls_server_name) {
		api->base = strdup(s);
		return api->base ? 0 : -ENOMEM;
	}
	end = host + strcspn(host, "/");
	if (*host == '[')		/* [v6]:port */
		port = memchr(host, ']', (size_t)(end - host));
	else
		port = host;
	port = port ? memchr(port, ':', (size_t)(end - port)) : NULL;
	hlen = (size_t)((port ? port : end) - host);
	{
		const char *p = port ? port + 1 : https ? "443" : "80";
		int plen = port ? (int)(end - port - 1) : (int)strlen(p);

		api->base = kp_asprintf("%.*s%s:%.*s%s", (int)(host - s), s,
					api->auth.tls_server_name, plen, p, end);
		entry = kp_asprintf("%s:%.*s:%.*s:%.*s", api->auth.tls_server_name, plen, p,
				    (int)hlen, host, plen, p);
	}
	if (!api->base || !entry) {
		free(entry);
		return -ENOMEM;
	}
	api->connect_to = curl_slist_append(NULL, entry);
	free(entry);
	return api->connect_to ? 0 : -ENOMEM;
}

/* ---- the caller's side ---- */

KP_EXPORT int kp_api_set_watch_service_cidrs(struct kp_api *api, bool watch)
{
	if (!api || api->w[RES_SCIDRS].easy || api->w[RES_SCIDRS].synced)
		return -EINVAL;
	api->w[RES_SCIDRS].start_at = watch ? 0 : -1;
	return 0;
}

KP_EXPORT int kp_api_set_watch_stall_timeout(struct kp_api *api, unsigned ms)
{
	if (!api || ms > 86400u * 1000)
		return -EINVAL;
	api->stall_ms = ms ? ms : STALL_DEFAULT_MS;
	return 0;
}

KP_EXPORT int kp_api_fd(const struct kp_api *api)
{
	return api ? api->epfd : -1;
}

KP_EXPORT int64_t kp_api_timeout_ms(const struct kp_api *api)
{
	int64_t now = now_ms(), t = -1;

	if (!api)
		return -1;
	if (api->curl_deadline >= 0)
		t = api->curl_deadline > now ? api->curl_deadline - now : 0;
	for (int i = 0; i < _RES_MAX; i++) {
		const struct watcher *w = &api->w[i];
		int64_t d;

		if (w->easy && !w->listing)	/* the stall bound */
			d = w->last_byte + (int64_t)api->stall_ms - now;
		else if (w->easy || w->start_at < 0)
			continue;
		else
			d = w->start_at - now;
		if (d < 0)
			d = 0;
		if (t < 0 || d < t)
			t = d;
	}
	return t;
}

KP_EXPORT int kp_api_process(struct kp_api *api)
{
	struct epoll_event evs[16];
	CURLMsg *msg;
	int n, running, left;

	if (!api)
		return -EINVAL;
	n = epoll_wait(api->epfd, evs, 16, 0);
	for (int i = 0; i < n; i++) {
		int mask = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
			   (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
			   (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

		curl_multi_socket_action(api->multi, evs[i].data.fd, mask, &running);
	}
	if (api->curl_deadline >= 0 && now_ms() >= api->curl_deadline) {
		api->curl_deadline = -1;
		curl_multi_socket_action(api->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	while ((msg = curl_multi_info_read(api->multi, &left))) {
		struct watcher *w = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&w);
		if (w && w->easy == msg->easy_handle)
			done(w, msg->data.result);
	}
	for (int i = 0; i < _RES_MAX; i++)
		check_stall(&api->w[i], now_ms());
	for (int i = 0; i < _RES_MAX; i++) {
		struct watcher *w = &api->w[i];

		if (!w->easy && w->start_at >= 0 && w->start_at <= now_ms())
			start(w);
	}
	return 0;
}

KP_EXPORT bool kp_api_synced(const struct kp_api *api)
{
	return api && api->w[RES_SERVICES].synced && api->w[RES_SLICES].synced;
}

KP_EXPORT void kp_api_get_stats(const struct kp_api *api, struct kp_api_stats *ret)
{
	if (api && ret)
		*ret = api->stats;
}

KP_EXPORT void kp_api_free(struct kp_api *api)
{
	if (!api)
		return;
	for (int i = 0; i < _RES_MAX; i++) {
		struct watcher *w = &api->w[i];

		end_transfer(w);
		free(w->buf);
		free(w->cont);
		kp_map_free(w->held);
		kp_map_free(w->listed);
	}
	if (api->multi)
		curl_multi_cleanup(api->multi);
	if (api->epfd >= 0)
		close(api->epfd);
	kp_api_auth_clear(&api->auth);
	free(api->base);
	curl_slist_free_all(api->connect_to);
	free(api->token);
	free(api->node_name);
	free(api->zone);
	free(api->pod_cidrs);
	free(api);
}

KP_EXPORT int kp_api_new(struct kp_ctx *ctx, const struct kp_api_auth *auth, const char *node_name,
			 unsigned watch_timeout_s, struct kp_api **ret)
{
	static bool curl_ready;
	struct kp_api *api;
	const char *host;
	size_t off;
	int r = -ENOMEM;

	if (!ctx || !auth || !auth->server || !ret)
		return -EINVAL;
	if (strncmp(auth->server, "https://", 8) && strncmp(auth->server, "http://", 7)) {
		kp_log(ctx, KP_LOG_ERR, "api: the server URL's scheme \"%.*s\" is not https "
		       "or http", (int)strcspn(auth->server, ":/@"), auth->server);
		return -EINVAL;
	}
	/* user:password@ would be sent as basic authentication and echoed in every message
	 * naming the server: refused, without showing it */
	host = strstr(auth->server, "://") + 3;		/* checked just above */
	if (memchr(host, '@', strcspn(host, "/?#"))) {
		kp_log(ctx, KP_LOG_ERR, "api: the server URL holds a user name or password "
		       "(user:password@host; not shown): not supported, use a token or a client "
		       "certificate");
		return -EINVAL;
	}
	if (auth->token && !kp_token_valid(auth->token, &off)) {
		kp_log(ctx, KP_LOG_ERR, "api: the token's byte %zu is a space, control character "
		       "or not ASCII, which a bearer token cannot hold", off);
		return -EINVAL;
	}
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -EIO;
		curl_ready = true;
	}
	api = calloc(1, sizeof(*api));
	if (!api)
		return -ENOMEM;
	api->epfd = -1;
	api->ctx = ctx;
	api->curl_deadline = -1;
	api->node_eligible = true;	/* as kube-proxy: until the Node says otherwise */
	api->watch_timeout_s = watch_timeout_s ? watch_timeout_s : 300;
	api->stall_ms = STALL_DEFAULT_MS;
	api->seed = (uint64_t)now_ms() ^ (uint64_t)getpid() << 32;
	if (copy_auth(&api->auth, auth) < 0 || dup_str(&api->node_name, node_name) < 0)
		goto fail;
	{
		size_t l = strlen(api->auth.server);

		if (l > 8 && api->auth.server[l - 1] == '/')
			api->auth.server[l - 1] = '\0';
	}
	r = tls_name_route(api);
	if (r < 0)
		goto fail;
	api->epfd = epoll_create1(EPOLL_CLOEXEC);
	api->multi = curl_multi_init();
	if (api->epfd < 0 || !api->multi) {
		r = api->epfd < 0 ? -errno : -EIO;
		goto fail;
	}
	curl_multi_setopt(api->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(api->multi, CURLMOPT_SOCKETDATA, api);
	curl_multi_setopt(api->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(api->multi, CURLMOPT_TIMERDATA, api);
	for (int i = 0; i < _RES_MAX; i++) {
		struct watcher *w = &api->w[i];

		w->api = api;
		w->res = (enum res)i;
		w->need_list = true;
		/* the node only when named; service CIDRs when asked */
		w->start_at = (i == RES_NODE && !node_name) || i == RES_SCIDRS ? -1 : 0;
		if (!(w->held = kp_map_new())) {
			r = -ENOMEM;
			goto fail;
		}
	}
	kp_log(ctx, KP_LOG_INFO, "api: server %s, %s%s", api->auth.server,
	       api->auth.cert_file || api->auth.cert_data ? "client certificate" :
	       api->auth.token || api->auth.token_file ? "bearer token" : "no credentials",
	       api->auth.insecure ? ", TLS verification OFF (insecure-skip-tls-verify)" : "");
	*ret = api;
	return 0;
fail:
	kp_api_free(api);
	return r;
}

KP_EXPORT const char *kp_api_node_pod_cidrs(const struct kp_api *api)
{
	return api ? api->pod_cidrs : NULL;
}

KP_EXPORT bool kp_api_node_eligible(const struct kp_api *api)
{
	return !api || api->node_eligible;
}
