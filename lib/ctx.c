// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The context: log sink, diagnostics, node identity, the object store (which source
 * holds which object, which slices belong to which service), the change tracker (the set
 * of services touched since the last sync), the desired state with its delta, the
 * backend registry, and the sync runner that coalesces bursts and resyncs periodically.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define MAX_BACKENDS 16

struct diag_node {
	struct diag_node *next;
	char *source, *kind, *ns, *name, *field, *msg;
};

struct objlist {			/* the slices and Endpoints of one service */
	struct kp_obj **v;
	size_t n, cap;
};

struct source {
	char *name;
	struct kp_map *keys;		/* object key -> struct kp_obj */
};

struct kp_ctx {
	kp_log_fn log_fn;
	void *log_userdata;
	enum kp_log_level log_level;

	struct diag_node *diags, **diags_tail;
	uint64_t n_rejected;

	char *node_name;
	char *node_zone;
	struct kp_addr *np_addrs;
	size_t n_np_addrs;

	struct kp_map *objs;		/* object key -> struct kp_obj */
	struct kp_map *sources;		/* source name -> struct source */
	struct kp_map *svc_slices;	/* "ns/name" -> struct objlist */
	struct kp_map *dirty;		/* "ns/name" of services to recompute */
	bool all_dirty;
	size_t n_kind[_KP_OBJ_MAX];

	struct kp_state *state;
	struct kp_delta *delta;

	const struct kp_backend_ops *backends[MAX_BACKENDS];
	size_t n_backends;
	const struct kp_backend_ops *be;
	void *be_priv;
	struct kp_opts *be_opts;	/* the options @be was initialised with */
	bool need_full;
	char err[512];			/* why the last failed call failed, "" */

	uint32_t min_sync_ms, sync_period_ms;
	int64_t last_sync_ms, last_full_ms;	/* runner clock; INT64_MIN: never */
	bool retry;
	uint64_t n_syncs, n_sync_errors;
	uint64_t n_changes[2];		/* services, endpoint objects */
	int64_t last_success_wall_ms;
	int last_sync_result;
	int64_t last_sync_wall_ms;
	/* endpoint change trigger times not yet programmed, and the programming latencies
	 * (seconds) of those a sync has programmed, not yet drained */
	int64_t *triggers;
	size_t n_triggers, cap_triggers;
	double *latencies;
	size_t n_latencies, cap_latencies;
};

#define MAX_TRIGGERS 100000	/* beyond this, changes are not timed (memory bound) */


/* ---- logging and diagnostics ---- */

void kp_log(const struct kp_ctx *ctx, enum kp_log_level level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!ctx->log_fn || level > ctx->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ctx->log_fn(level, buf, ctx->log_userdata);
}

KP_EXPORT int kp_ctx_set_error(struct kp_ctx *ctx, int err, const char *fmt, ...)
{
	va_list ap;

	if (!ctx || !fmt || ctx->err[0])
		return err;
	va_start(ap, fmt);
	vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
	va_end(ap);
	kp_log(ctx, KP_LOG_DEBUG, "%s", ctx->err);
	return err;
}

KP_EXPORT const char *kp_ctx_get_error(const struct kp_ctx *ctx)
{
	return ctx ? ctx->err : "";
}

/* A failing call that said nothing more is explained by its errno. */
static int call_result(struct kp_ctx *ctx, int r)
{
	if (r < 0 && !ctx->err[0])
		snprintf(ctx->err, sizeof(ctx->err), "%s: %s", ctx->be->name, kp_strerror(r));
	return r;
}

static void diag_free(struct diag_node *n)
{
	free(n->source);
	free(n->kind);
	free(n->ns);
	free(n->name);
	free(n->field);
	free(n->msg);
	free(n);
}

void kp_ctx_diag(struct kp_ctx *ctx, const char *source, const char *kind, const char *ns,
		 const char *name, const char *field, const char *fmt, ...)
{
	struct diag_node *n = calloc(1, sizeof(*n));
	va_list ap;
	int r;

	ctx->n_rejected++;
	if (!n)
		return;
	va_start(ap, fmt);
	r = vasprintf(&n->msg, fmt, ap);
	va_end(ap);
	n->source = kp_strdup(source);
	n->kind = kp_strdup(kind);
	n->ns = kp_strdup(ns);
	n->name = kp_strdup(name);
	n->field = kp_strdup(field);
	if (r < 0 || !n->source || !n->kind || !n->ns || !n->name || !n->field) {
		if (r < 0)
			n->msg = NULL;
		diag_free(n);
		return;
	}
	*ctx->diags_tail = n;
	ctx->diags_tail = &n->next;
	kp_log(ctx, KP_LOG_DEBUG, "%s: %s %s/%s: %s: %s", source, kind, ns, name, field, n->msg);
}

KP_EXPORT size_t kp_ctx_drain_diags(struct kp_ctx *ctx, kp_diag_fn fn, void *userdata)
{
	struct diag_node *n, *next;
	size_t count = 0;

	if (!ctx)
		return 0;
	for (n = ctx->diags; n; n = next) {
		struct kp_diag d = { n->source, n->kind, n->ns, n->name, n->field, n->msg };

		next = n->next;
		if (fn)
			fn(&d, userdata);
		diag_free(n);
		count++;
	}
	ctx->diags = NULL;
	ctx->diags_tail = &ctx->diags;
	return count;
}

/* ---- lifetime ---- */

KP_EXPORT struct kp_ctx *kp_ctx_new(void)
{
	struct kp_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->diags_tail = &ctx->diags;
	ctx->objs = kp_map_new();
	ctx->sources = kp_map_new();
	ctx->svc_slices = kp_map_new();
	ctx->dirty = kp_map_new();
	ctx->state = kp_state_new();
	ctx->delta = kp_delta_new();
	if (!ctx->objs || !ctx->sources || !ctx->svc_slices || !ctx->dirty || !ctx->state ||
	    !ctx->delta) {
		kp_ctx_free(ctx);
		return NULL;
	}
	kp_delta_bind(ctx->delta, ctx->state);
	ctx->min_sync_ms = 1000;
	ctx->sync_period_ms = 30000;
	ctx->last_sync_ms = ctx->last_full_ms = INT64_MIN;
	ctx->backends[ctx->n_backends++] = &kp_backend_dryrun;
	ctx->backends[ctx->n_backends++] = &kp_backend_iptables;
	ctx->backends[ctx->n_backends++] = &kp_backend_ipvs;
	ctx->backends[ctx->n_backends++] = &kp_backend_userspace;
	for (size_t i = 0; kp_extra_backends[i] && ctx->n_backends < MAX_BACKENDS; i++)
		ctx->backends[ctx->n_backends++] = kp_extra_backends[i];
	if (kp_backend_dryrun.init(ctx, NULL, &ctx->be_priv) < 0) {
		kp_ctx_free(ctx);
		return NULL;
	}
	ctx->be = &kp_backend_dryrun;
	ctx->need_full = true;
	return ctx;
}

KP_EXPORT void kp_ctx_free(struct kp_ctx *ctx)
{
	struct kp_map_iter it = { 0 };
	void *v;

	if (!ctx)
		return;
	if (ctx->be && ctx->be->destroy)
		ctx->be->destroy(ctx->be_priv);
	kp_opts_free(ctx->be_opts);
	kp_ctx_drain_diags(ctx, NULL, NULL);
	while (ctx->objs && kp_map_next(ctx->objs, &it, NULL, &v))
		kp_obj_free(v);
	memset(&it, 0, sizeof(it));
	while (ctx->sources && kp_map_next(ctx->sources, &it, NULL, &v)) {
		struct source *s = v;

		kp_map_free(s->keys);
		free(s->name);
		free(s);
	}
	memset(&it, 0, sizeof(it));
	while (ctx->svc_slices && kp_map_next(ctx->svc_slices, &it, NULL, &v)) {
		free(((struct objlist *)v)->v);
		free(v);
	}
	free(ctx->triggers);
	free(ctx->latencies);
	kp_map_free(ctx->objs);
	kp_map_free(ctx->sources);
	kp_map_free(ctx->svc_slices);
	kp_map_free(ctx->dirty);
	kp_delta_free(ctx->delta);
	kp_state_free(ctx->state);
	free(ctx->node_name);
	free(ctx->node_zone);
	free(ctx->np_addrs);
	free(ctx);
}

KP_EXPORT int kp_ctx_set_log(struct kp_ctx *ctx, kp_log_fn fn, void *userdata,
			     enum kp_log_level level)
{
	if (!ctx || (unsigned)level >= _KP_LOG_MAX)
		return -EINVAL;
	ctx->log_fn = fn;
	ctx->log_userdata = userdata;
	ctx->log_level = level;
	return 0;
}

static int set_str(char **dst, const char *s)
{
	char *c = NULL;

	if (s && !(c = strdup(s)))
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

KP_EXPORT int kp_ctx_set_node_name(struct kp_ctx *ctx, const char *name)
{
	int r;

	if (!ctx || !name)
		return -EINVAL;
	r = set_str(&ctx->node_name, name);
	if (!r)
		ctx->all_dirty = true;
	return r;
}

KP_EXPORT int kp_ctx_set_node_zone(struct kp_ctx *ctx, const char *zone)
{
	int r;

	if (!ctx)
		return -EINVAL;
	r = set_str(&ctx->node_zone, zone && *zone ? zone : NULL);
	if (!r)
		ctx->all_dirty = true;
	return r;
}

KP_EXPORT int kp_ctx_set_nodeport_addrs(struct kp_ctx *ctx, const struct kp_addr *addrs,
					size_t n_addrs)
{
	struct kp_addr *copy = NULL;

	if (!ctx || (n_addrs && !addrs))
		return -EINVAL;
	for (size_t i = 0; i < n_addrs; i++)
		if (addrs[i].family != AF_INET && addrs[i].family != AF_INET6)
			return -EINVAL;
	if (n_addrs) {
		copy = malloc(n_addrs * sizeof(*copy));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, addrs, n_addrs * sizeof(*copy));
	}
	free(ctx->np_addrs);
	ctx->np_addrs = copy;
	ctx->n_np_addrs = n_addrs;
	ctx->all_dirty = true;
	return 0;
}

/* ---- the object store ---- */

static int mark_dirty(struct kp_ctx *ctx, const char *svc_key)
{
	return kp_map_get(ctx->dirty, svc_key) ? 0 : kp_map_put(ctx->dirty, svc_key, ctx, NULL);
}

static int index_add(struct kp_ctx *ctx, struct kp_obj *obj)
{
	struct objlist *l = kp_map_get(ctx->svc_slices, obj->service);

	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l || kp_map_put(ctx->svc_slices, obj->service, l, NULL) < 0) {
			free(l);
			return -ENOMEM;
		}
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		struct kp_obj **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = obj;
	return 0;
}

static void index_del(struct kp_ctx *ctx, const struct kp_obj *obj)
{
	struct objlist *l = kp_map_get(ctx->svc_slices, obj->service);

	for (size_t i = 0; l && i < l->n; i++) {
		if (l->v[i] == obj) {
			l->v[i] = l->v[--l->n];
			break;
		}
	}
	if (l && !l->n) {
		kp_map_del(ctx->svc_slices, obj->service);
		free(l->v);
		free(l);
	}
}

/* Removes @obj from the store and frees it. */
static int store_del(struct kp_ctx *ctx, struct kp_obj *obj)
{
	int r = mark_dirty(ctx, obj->service);

	kp_map_del(ctx->objs, obj->key);
	ctx->n_changes[obj->kind != KP_OBJ_SERVICE]++;
	if (obj->kind != KP_OBJ_SERVICE)
		index_del(ctx, obj);
	ctx->n_kind[obj->kind]--;
	kp_obj_free(obj);
	return r;
}

/* Adds (or replaces with) @obj; the store owns it afterwards, also on failure. */
static int store_put(struct kp_ctx *ctx, struct kp_obj *obj)
{
	struct kp_obj *old = kp_map_get(ctx->objs, obj->key);
	int r = 0;

	/* a new trigger time means new endpoints: timed until they are programmed */
	if (obj->trigger_ms && (!old || old->trigger_ms != obj->trigger_ms) &&
	    ctx->n_triggers < MAX_TRIGGERS) {
		if (ctx->n_triggers == ctx->cap_triggers) {
			size_t cap = ctx->cap_triggers ? ctx->cap_triggers * 2 : 64;
			int64_t *v = realloc(ctx->triggers, cap * sizeof(*v));

			if (v) {
				ctx->triggers = v;
				ctx->cap_triggers = cap;
			}
		}
		if (ctx->n_triggers < ctx->cap_triggers)
			ctx->triggers[ctx->n_triggers++] = obj->trigger_ms;
	}
	if (old)
		r |= store_del(ctx, old);
	if (kp_map_put(ctx->objs, obj->key, obj, NULL) < 0) {
		kp_obj_free(obj);
		return -ENOMEM;
	}
	ctx->n_kind[obj->kind]++;
	if (!old)	/* a replacement was counted by store_del() */
		ctx->n_changes[obj->kind != KP_OBJ_SERVICE]++;
	if (obj->kind != KP_OBJ_SERVICE)
		r |= index_add(ctx, obj);
	r |= mark_dirty(ctx, obj->service);
	return r ? -ENOMEM : 0;
}

static struct source *source_get(struct kp_ctx *ctx, const char *name, bool create)
{
	struct source *s = kp_map_get(ctx->sources, name);

	if (s || !create)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->name = strdup(name);
	s->keys = kp_map_new();
	if (!s->name || !s->keys || kp_map_put(ctx->sources, name, s, NULL) < 0) {
		kp_map_free(s->keys);
		free(s->name);
		free(s);
		return NULL;
	}
	return s;
}

static int parse_document(struct kp_ctx *ctx, const char *source, const char *buf, size_t size,
			  enum kp_format format, json_t **ret_root)
{
	char err[256];
	size_t i = 0;

	if (format == KP_FORMAT_AUTO) {
		while (i < size && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' ||
				    buf[i] == '\r'))
			i++;
		format = i < size && (buf[i] == '{' || buf[i] == '[') ? KP_FORMAT_JSON :
									KP_FORMAT_YAML;
	}
	if (format == KP_FORMAT_JSON) {
		json_error_t jerr;

		/* duplicate keys: the last one wins, as in Go's encoding/json */
		*ret_root = json_loadb(buf, size, 0, &jerr);
		if (!*ret_root) {
			kp_ctx_diag(ctx, source, "", "", "", "", "JSON line %d column %d: %s",
				    jerr.line, jerr.column, jerr.text);
			return -EBADMSG;
		}
		return 0;
	}
	if (kp_yaml_parse(buf, size, ret_root, err, sizeof(err)) < 0) {
		kp_ctx_diag(ctx, source, "", "", "", "", "%s", err);
		return -EBADMSG;
	}
	return 0;
}

KP_EXPORT int kp_ctx_load(struct kp_ctx *ctx, const char *source, const char *buf, size_t size,
			  enum kp_format format)
{
	struct kp_objvec vec = { 0 };
	struct kp_map *keys = NULL;
	struct kp_map_iter it = { 0 };
	struct source *src;
	const char *key;
	json_t *root;
	int r, accepted = 0;
	void *v;

	if (!ctx || !source || (!buf && size) || (unsigned)format >= _KP_FORMAT_MAX)
		return -EINVAL;
	if (size > KP_MAX_DOCUMENT_SIZE) {
		kp_ctx_diag(ctx, source, "", "", "", "", "document of %zu bytes is over the %u limit",
			    size, KP_MAX_DOCUMENT_SIZE);
		return -EFBIG;
	}
	r = parse_document(ctx, source, buf ? buf : "", size, format, &root);
	if (r < 0)
		return r;
	r = kp_decode_json(ctx, source, root, &vec);
	json_decref(root);
	src = r < 0 ? NULL : source_get(ctx, source, true);
	keys = src ? kp_map_new() : NULL;
	if (!keys) {
		kp_objvec_clear(&vec);
		return -ENOMEM;
	}
	/* duplicates: within this document, or held by another source */
	for (size_t i = 0; i < vec.n; i++) {
		struct kp_obj *o = vec.v[i];
		struct kp_obj *held = kp_map_get(ctx->objs, o->key);
		const char *why = NULL, *where = "";

		if (kp_map_get(keys, o->key)) {
			why = "duplicate of an earlier object in the same document";
		} else if (held && strcmp(held->source, source) != 0) {
			why = "already defined in ";
			where = held->source;
		}
		if (why) {
			kp_ctx_diag(ctx, source, kp_obj_kind_name(o->kind), o->ns, o->name,
				    "metadata.name", "%s%s", why, where);
			kp_obj_free(o);
			vec.v[i] = NULL;
			continue;
		}
		if (kp_map_put(keys, o->key, o, NULL) < 0)
			r = -ENOMEM;
	}
	/* a rejected new version keeps the previous one: nothing programmed is lost */
	for (size_t i = 0; i < vec.n_rejected; i++) {
		struct kp_obj *prev = kp_map_get(src->keys, vec.rejected[i]);

		if (prev && !kp_map_get(keys, vec.rejected[i])) {
			kp_log(ctx, KP_LOG_DEBUG, "%s: keeping the previous %s %s/%s", source,
			       kp_obj_kind_name(prev->kind), prev->ns, prev->name);
			r |= kp_map_put(keys, vec.rejected[i], prev, NULL);
		}
	}
	/* objects the source no longer holds */
	while (kp_map_next(src->keys, &it, &key, &v))
		if (!kp_map_get(keys, key))
			r |= store_del(ctx, v);
	kp_map_free(src->keys);
	src->keys = keys;
	for (size_t i = 0; i < vec.n; i++) {
		if (!vec.v[i])
			continue;
		vec.v[i]->source = src->name;
		r |= store_put(ctx, vec.v[i]);
		vec.v[i] = NULL;
		accepted++;
	}
	kp_objvec_clear(&vec);
	return r ? -ENOMEM : accepted;
}

KP_EXPORT int kp_ctx_unload(struct kp_ctx *ctx, const char *source)
{
	struct kp_map_iter it = { 0 };
	struct source *src;
	void *v;
	int n = 0;

	if (!ctx || !source)
		return -EINVAL;
	src = kp_map_del(ctx->sources, source);
	if (!src)
		return 0;
	while (kp_map_next(src->keys, &it, NULL, &v)) {
		store_del(ctx, v);
		n++;
	}
	kp_map_free(src->keys);
	free(src->name);
	free(src);
	return n;
}

KP_EXPORT int kp_ctx_get_counts(const struct kp_ctx *ctx, struct kp_counts *ret)
{
	if (!ctx || !ret)
		return -EINVAL;
	*ret = (struct kp_counts){
		.n_services = ctx->n_kind[KP_OBJ_SERVICE],
		.n_slices = ctx->n_kind[KP_OBJ_SLICE],
		.n_endpoints = ctx->n_kind[KP_OBJ_ENDPOINTS],
		.n_svc_ports = kp_state_get_size(ctx->state),
		.n_rejected = ctx->n_rejected,
		.n_syncs = ctx->n_syncs,
		.n_sync_errors = ctx->n_sync_errors,
		.last_sync_result = ctx->last_sync_result,
		.last_sync_ms = ctx->last_sync_wall_ms,
		.last_success_ms = ctx->last_success_wall_ms,
		.n_service_changes = ctx->n_changes[0],
		.n_endpoint_changes = ctx->n_changes[1],
	};
	return 0;
}

/* ---- desired state ---- */

static int update_service(struct kp_ctx *ctx, const char *svc_key)
{
	const struct kp_obj *slices[64], **v = slices;
	const struct objlist *l = kp_map_get(ctx->svc_slices, svc_key);
	const struct kp_obj *svc;
	struct kp_node_info node = {
		.name = ctx->node_name,
		.zone = ctx->node_zone,
		.nodeport_addrs = ctx->np_addrs,
		.n_nodeport_addrs = ctx->n_np_addrs,
	};
	size_t n = 0;
	char *skey = kp_asprintf("S/%s", svc_key);
	int r;

	if (!skey)
		return -ENOMEM;
	svc = kp_map_get(ctx->objs, skey);
	free(skey);
	if (l && l->n > KP_ARRAY_SIZE(slices) && !(v = malloc(l->n * sizeof(*v))))
		return -ENOMEM;
	/* EndpointSlices; legacy Endpoints only when the service has no slice at all */
	for (size_t i = 0; l && i < l->n; i++)
		if (l->v[i]->kind == KP_OBJ_SLICE)
			v[n++] = l->v[i];
	for (size_t i = 0; l && !n && i < l->n; i++)
		if (l->v[i]->kind == KP_OBJ_ENDPOINTS)
			v[n++] = l->v[i];
	r = kp_state_update_service(ctx->state, ctx->delta, svc_key, svc, v, n, &node);
	if (v != slices)
		free(v);
	return r;
}

static int update_state(struct kp_ctx *ctx)
{
	struct kp_map_iter it = { 0 };
	const char *key;
	void *v;
	int r = 0;

	if (ctx->all_dirty) {
		/* every service known to the store or to the state */
		while (kp_map_next(ctx->objs, &it, NULL, &v))
			r |= mark_dirty(ctx, ((struct kp_obj *)v)->service);
		memset(&it, 0, sizeof(it));
		ctx->all_dirty = false;
	}
	while (!r && kp_map_next(ctx->dirty, &it, &key, NULL)) {
		r = update_service(ctx, key);
		if (!r)
			kp_map_del(ctx->dirty, key);
	}
	kp_map_compact(ctx->dirty);	/* the first load's slots would be walked every sync */
	return r;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A sync succeeded: every pending trigger time is now programmed. */
static void record_latencies(struct kp_ctx *ctx)
{
	int64_t now = wall_ms();

	if (ctx->n_latencies + ctx->n_triggers > ctx->cap_latencies) {
		size_t cap = ctx->n_latencies + ctx->n_triggers + 64;
		double *v = realloc(ctx->latencies, cap * sizeof(*v));

		if (!v) {
			ctx->n_triggers = 0;
			return;
		}
		ctx->latencies = v;
		ctx->cap_latencies = cap;
	}
	for (size_t i = 0; i < ctx->n_triggers; i++) {
		int64_t d = now - ctx->triggers[i];

		ctx->latencies[ctx->n_latencies++] = d > 0 ? (double)d / 1000 : 0;
	}
	ctx->n_triggers = 0;
	if (ctx->n_latencies > MAX_TRIGGERS)	/* nobody drains them: keep the newest */
		ctx->n_latencies = 0;
}

KP_EXPORT int kp_ctx_sync(struct kp_ctx *ctx, bool full)
{
	int r;

	if (!ctx)
		return -EINVAL;
	r = update_state(ctx);
	if (r < 0)
		return kp_ctx_set_error(ctx, r, "computing the desired state: %s", kp_strerror(r));
	full = full || ctx->need_full;
	kp_delta_set_full(ctx->delta, full);
	ctx->n_syncs++;
	ctx->last_sync_wall_ms = wall_ms();
	ctx->err[0] = '\0';
	r = call_result(ctx, ctx->be->sync(ctx->be_priv, ctx->state, ctx->delta));
	ctx->last_sync_result = r;
	if (r < 0) {
		ctx->n_sync_errors++;
		return r;
	}
	kp_delta_clear(ctx->delta);
	ctx->need_full = false;
	ctx->last_success_wall_ms = ctx->last_sync_wall_ms;
	record_latencies(ctx);
	return 0;
}

KP_EXPORT size_t kp_ctx_drain_programming_latencies(struct kp_ctx *ctx,
						    void (*fn)(double seconds, void *userdata),
						    void *userdata)
{
	size_t n;

	if (!ctx)
		return 0;
	for (size_t i = 0; fn && i < ctx->n_latencies; i++)
		fn(ctx->latencies[i], userdata);
	n = ctx->n_latencies;
	ctx->n_latencies = 0;
	return n;
}

KP_EXPORT const struct kp_state *kp_ctx_get_state(const struct kp_ctx *ctx)
{
	return ctx ? ctx->state : NULL;
}

KP_EXPORT bool kp_ctx_has_pending(const struct kp_ctx *ctx)
{
	return ctx && (ctx->all_dirty || kp_map_size(ctx->dirty) ||
		       kp_delta_get_size(ctx->delta) || ctx->need_full);
}

/* ---- backends ---- */

KP_EXPORT const struct kp_backend_ops *kp_backend_find(const struct kp_ctx *ctx,
						       const char *name)
{
	for (size_t i = 0; ctx && name && i < ctx->n_backends; i++)
		if (strcmp(ctx->backends[i]->name, name) == 0)
			return ctx->backends[i];
	return NULL;
}

KP_EXPORT int kp_backend_foreach(const struct kp_ctx *ctx,
				 int (*fn)(const struct kp_backend_ops *ops, void *userdata),
				 void *userdata)
{
	int r = 0;

	if (!ctx || !fn)
		return -EINVAL;
	for (size_t i = 0; !r && i < ctx->n_backends; i++)
		r = fn(ctx->backends[i], userdata);
	return r;
}

KP_EXPORT int kp_backend_register(struct kp_ctx *ctx, const struct kp_backend_ops *ops)
{
	if (!ctx || !ops || !ops->name || !*ops->name || !ops->init || !ops->sync ||
	    (ops->n_options && (!ops->options || !ops->options_size)))
		return -EINVAL;
	for (size_t i = 0; i < ops->n_options; i++)
		if (!ops->options[i].name || (unsigned)ops->options[i].type >= _KP_OPT_MAX ||
		    ops->options[i].offset >= ops->options_size)
			return -EINVAL;
	if (kp_backend_find(ctx, ops->name))
		return -EEXIST;
	if (ctx->n_backends == MAX_BACKENDS)
		return -ENOMEM;
	ctx->backends[ctx->n_backends++] = ops;
	return 0;
}

KP_EXPORT int kp_ctx_set_backend(struct kp_ctx *ctx, const char *name,
				 const struct kp_setting *settings, size_t n_settings)
{
	const struct kp_backend_ops *ops;
	struct kp_opts *opts = NULL;
	void *priv = NULL;
	int r;

	if (!ctx || !name || (n_settings && !settings))
		return -EINVAL;
	ctx->err[0] = '\0';
	ops = kp_backend_find(ctx, name);
	if (!ops)
		return kp_ctx_set_error(ctx, -ENOENT, "no data plane called \"%s\"", name);
	r = kp_opts_new(ctx, ops, settings, n_settings, &opts);
	if (r < 0)
		return r;
	r = ops->init(ctx, kp_opts_data(opts), &priv);
	if (r < 0) {
		kp_opts_free(opts);
		if (!ctx->err[0])
			snprintf(ctx->err, sizeof(ctx->err), "%s: %s", ops->name, kp_strerror(r));
		return r;
	}
	if (ctx->be->destroy)
		ctx->be->destroy(ctx->be_priv);
	kp_opts_free(ctx->be_opts);
	ctx->be = ops;
	ctx->be_priv = priv;
	ctx->be_opts = opts;
	ctx->need_full = true;
	return 0;
}

KP_EXPORT int kp_ctx_foreach_option(const struct kp_ctx *ctx,
				    int (*fn)(const struct kp_option *opt, const char *value,
					      void *userdata),
				    void *userdata)
{
	if (!ctx || !fn)
		return -EINVAL;
	return kp_opts_foreach(ctx->be_opts, fn, userdata);
}

KP_EXPORT const char *kp_ctx_get_backend_name(const struct kp_ctx *ctx)
{
	return ctx ? ctx->be->name : NULL;
}

KP_EXPORT int kp_ctx_dump(struct kp_ctx *ctx, kp_dump_fn fn, void *userdata)
{
	if (!ctx || !fn)
		return -EINVAL;
	ctx->err[0] = '\0';
	if (!ctx->be->dump)
		return kp_ctx_set_error(ctx, -EOPNOTSUPP, "%s: no dump", ctx->be->name);
	return call_result(ctx, ctx->be->dump(ctx->be_priv, fn, userdata));
}

KP_EXPORT int kp_ctx_backend_stats(struct kp_ctx *ctx, kp_stat_fn fn, void *userdata)
{
	if (!ctx || !fn)
		return -EINVAL;
	return ctx->be && ctx->be->stats ? ctx->be->stats(ctx->be_priv, fn, userdata) : 0;
}

KP_EXPORT int kp_ctx_cleanup(struct kp_ctx *ctx)
{
	if (!ctx)
		return -EINVAL;
	ctx->need_full = true;
	ctx->err[0] = '\0';
	return call_result(ctx, ctx->be->cleanup ? ctx->be->cleanup(ctx->be_priv) : 0);
}

/* ---- the sync runner ---- */

KP_EXPORT int kp_ctx_set_sync_periods(struct kp_ctx *ctx, uint32_t min_ms, uint32_t period_ms)
{
	if (!ctx)
		return -EINVAL;
	ctx->min_sync_ms = min_ms;
	ctx->sync_period_ms = period_ms;
	return 0;
}

KP_EXPORT int kp_ctx_run_due(struct kp_ctx *ctx, int64_t now_ms, int64_t *ret_wait_ms)
{
	int64_t earliest, next_full, wait;
	bool full, pending;
	int r = 0;

	if (!ctx || !ret_wait_ms)
		return -EINVAL;
	earliest = ctx->last_sync_ms == INT64_MIN ? now_ms : ctx->last_sync_ms + ctx->min_sync_ms;
	next_full = ctx->last_full_ms == INT64_MIN ? now_ms :
		    ctx->sync_period_ms ? ctx->last_full_ms + ctx->sync_period_ms : INT64_MAX;
	full = now_ms >= next_full;
	pending = kp_ctx_has_pending(ctx);
	if ((pending || full) && now_ms >= earliest) {
		r = kp_ctx_sync(ctx, full);
		ctx->last_sync_ms = now_ms;
		if (!r && full)
			ctx->last_full_ms = now_ms;
		if (!r)
			r = 1;
		earliest = now_ms + ctx->min_sync_ms;
		next_full = ctx->last_full_ms == INT64_MIN ? earliest :
			    ctx->sync_period_ms ? ctx->last_full_ms + ctx->sync_period_ms :
						  INT64_MAX;
		pending = kp_ctx_has_pending(ctx);
	}
	if (pending)
		wait = earliest;
	else if (next_full != INT64_MAX)
		wait = next_full > earliest ? next_full : earliest;
	else
		wait = INT64_MIN;
	*ret_wait_ms = wait == INT64_MIN ? -1 : wait > now_ms ? wait - now_ms : 0;
	return r;
}
