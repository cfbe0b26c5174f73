// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The object store: every decoded Service, EndpointSlice and Endpoints object by key,
 * which source holds which (kp_ctx_load() replaces all a source holds, kp_ctx_unload()
 * drops it), and which slices belong to which service. A change marks its service in
 * the change tracker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctx-internal.h"

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

/* A ServiceCIDR came, changed or went: the list is made again when asked, and the
 * data plane gets a full sync to see it. */
static void scidr_changed(struct kp_ctx *ctx)
{
	ctx->scidrs_stale = true;
	ctx->need_full = true;
}

/* Removes @obj from the store and frees it. */
static int store_del(struct kp_ctx *ctx, struct kp_obj *obj)
{
	int r;

	if (obj->kind == KP_OBJ_SERVICE_CIDR) {
		kp_map_del(ctx->objs, obj->key);
		ctx->n_kind[obj->kind]--;
		kp_obj_free(obj);
		scidr_changed(ctx);
		return 0;
	}
	r = kp_tracker_mark(ctx, obj->service);

	kp_map_del(ctx->objs, obj->key);
	kp_tracker_note_change(ctx, obj->kind != KP_OBJ_SERVICE, obj->service);
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

	/* a new trigger time means new endpoints: timed until they are programmed; as
	 * kube-proxy, only changes made after the context was created (an object listed at a
	 * restart carries the time of its last change, maybe days ago) */
	if (obj->trigger_ms > ctx->start_wall_ms &&
	    (!old || old->trigger_ms != obj->trigger_ms))
		kp_latency_note_trigger(ctx, obj->trigger_ms);
	if (old)
		r |= store_del(ctx, old);
	if (kp_map_put(ctx->objs, obj->key, obj, NULL) < 0) {
		kp_obj_free(obj);
		return -ENOMEM;
	}
	ctx->n_kind[obj->kind]++;
	if (obj->kind == KP_OBJ_SERVICE_CIDR) {
		scidr_changed(ctx);
		return r ? -ENOMEM : 0;
	}
	if (!old)	/* a replacement was counted by store_del() */
		kp_tracker_note_change(ctx, obj->kind != KP_OBJ_SERVICE, obj->service);
	if (obj->kind != KP_OBJ_SERVICE)
		r |= index_add(ctx, obj);
	r |= kp_tracker_mark(ctx, obj->service);
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

/* The decoder's diagnostics go to the context's queue, its debug lines to the log. */
static void sink_diag(void *userdata, const struct kp_diag *d)
{
	kp_ctx_diag(userdata, d->source, d->kind, d->ns, d->name, d->field, "%s", d->msg);
}

static void sink_debug(void *userdata, const char *msg)
{
	kp_log(userdata, KP_LOG_DEBUG, "%s", msg);
}

int kp_ctx_load_json(struct kp_ctx *ctx, const char *source, json_t *root)
{
	struct kp_objvec vec = { 0 };
	struct kp_map *keys = NULL;
	struct kp_map_iter it = { 0 };
	struct source *src;
	const char *key;
	int r, accepted = 0;
	void *v;

	r = kp_decode_json(&(struct kp_diag_sink){ sink_diag, sink_debug, ctx }, source, root,
			   &vec);
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

KP_EXPORT int kp_ctx_load(struct kp_ctx *ctx, const char *source, const char *buf, size_t size,
			  enum kp_format format)
{
	json_t *root;
	int r;

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
	r = kp_ctx_load_json(ctx, source, root);
	json_decref(root);
	return r;
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

KP_EXPORT const struct kp_cidr *kp_ctx_get_service_cidrs(struct kp_ctx *ctx, size_t *ret_n)
{
	struct kp_map_iter it = { 0 };
	size_t n = 0, cap = 0;
	struct kp_cidr *v = NULL;
	void *val;

	if (!ctx || !ret_n)
		return NULL;
	if (ctx->scidrs_stale) {
		while (kp_map_next(ctx->objs, &it, NULL, &val)) {
			const struct kp_obj *o = val;

			if (o->kind != KP_OBJ_SERVICE_CIDR)
				continue;
			for (size_t i = 0; i < o->n_cidrs; i++) {
				bool dup = false;

				for (size_t j = 0; j < n && !dup; j++)
					dup = v[j].prefix == o->cidrs[i].prefix &&
					      kp_addr_equal(&v[j].addr, &o->cidrs[i].addr);
				if (dup)
					continue;
				if (n == cap) {
					struct kp_cidr *q = realloc(v, (cap = cap ? 2 * cap : 4) *
								    sizeof(*q));

					if (!q) {
						free(v);
						return NULL;
					}
					v = q;
				}
				v[n++] = o->cidrs[i];
			}
		}
		free(ctx->scidrs);
		ctx->scidrs = v;
		ctx->n_scidrs = n;
		ctx->scidrs_stale = false;
	}
	*ret_n = ctx->n_scidrs;
	return ctx->scidrs;
}
