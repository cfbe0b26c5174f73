// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * YAML to JSON: turns one or more YAML documents (as kubectl -o yaml writes them, or as
 * people write manifests) into a JSON array of documents, so one decoder serves both
 * formats. Plain scalars are resolved with the YAML 1.2 core schema (null, booleans,
 * integers, floats); quoted scalars and !!str stay strings. Aliases are resolved by
 * sharing the anchored value, with a bound on their number against alias bombs.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "kpyaml.h"

#define KP_PRINTF(a, b) __attribute__((format(printf, a, b)))

#define MAX_DEPTH 128
#define MAX_ALIAS_NODES 1000000	/* values copied through aliases, per document */

struct anchor {
	char *name;
	json_t *value;
	size_t n_nodes;		/* values inside, itself included */
};

struct yparse {
	yaml_parser_t parser;
	struct anchor *anchors;
	size_t n_anchors, cap_anchors;
	size_t n_alias_nodes;
	char *err;
	size_t err_size;
};

static bool match_any(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static json_t *plain_scalar(const char *s, size_t len)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", NULL };
	char *end;

	if (strlen(s) != len)		/* embedded NUL: keep the bytes as a string */
		return json_stringn(s, len);
	if (match_any(s, nulls))
		return json_null();
	if (match_any(s, trues))
		return json_true();
	if (match_any(s, falses))
		return json_false();
	if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+') && s[1])) {
		long long v;
		double d;

		errno = 0;
		if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && s[2])
			v = strtoll(s + 2, &end, s[1] == 'x' ? 16 : 8);
		else
			v = strtoll(s, &end, 10);
		if (!*end && !errno)
			return json_integer(v);
		errno = 0;
		d = strtod(s, &end);
		if (!*end && !errno && isfinite(d) && strspn(s, "+-0123456789.eE") == len)
			return json_real(d);
	}
	return json_stringn(s, len);
}

static json_t *scalar_value(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;

	if (tag) {
		if (strcmp(tag, YAML_STR_TAG) == 0)
			return json_stringn(s, len);
		if (strcmp(tag, YAML_NULL_TAG) == 0)
			return json_null();
	}
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_stringn(s, len);
	return plain_scalar(s, len);
}

static int set_err(struct yparse *y, const char *fmt, ...) KP_PRINTF(2, 3);
static int set_err(struct yparse *y, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(y->err, y->err_size, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static int parser_err(struct yparse *y)
{
	return set_err(y, "YAML line %zu column %zu: %s", y->parser.problem_mark.line + 1,
		       y->parser.problem_mark.column + 1,
		       y->parser.problem ? y->parser.problem : "parse error");
}

static size_t count_nodes(json_t *v)
{
	size_t n = 1;

	if (json_is_array(v)) {
		json_t *e;
		size_t i;

		json_array_foreach(v, i, e)
			n += count_nodes(e);
	} else if (json_is_object(v)) {
		const char *k;
		json_t *e;

		json_object_foreach(v, k, e)
			n += count_nodes(e);
	}
	return n;
}

static int add_anchor(struct yparse *y, const yaml_char_t *name, json_t *value)
{
	if (!name)
		return 0;
	if (y->n_anchors == y->cap_anchors) {
		size_t cap = y->cap_anchors ? y->cap_anchors * 2 : 8;
		struct anchor *a = realloc(y->anchors, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		y->anchors = a;
		y->cap_anchors = cap;
	}
	y->anchors[y->n_anchors].name = strdup((const char *)name);
	if (!y->anchors[y->n_anchors].name)
		return -ENOMEM;
	y->anchors[y->n_anchors].n_nodes = count_nodes(value);
	y->anchors[y->n_anchors++].value = json_incref(value);
	return 0;
}

static struct anchor *find_anchor(struct yparse *y, const char *name)
{
	for (size_t i = y->n_anchors; i-- > 0;)	/* later definitions win */
		if (strcmp(y->anchors[i].name, name) == 0)
			return &y->anchors[i];
	return NULL;
}

static int parse_node(struct yparse *y, yaml_event_t *ev, int depth, json_t **ret);

/* Reads children until the end event of a sequence or mapping started by @start. */
static int parse_collection(struct yparse *y, const yaml_event_t *start, int depth, json_t **ret)
{
	bool is_map = start->type == YAML_MAPPING_START_EVENT;
	json_t *coll = is_map ? json_object() : json_array();
	json_t *key = NULL;
	int r;

	if (!coll)
		return -ENOMEM;
	for (;;) {
		yaml_event_t ev;
		json_t *v;

		if (!yaml_parser_parse(&y->parser, &ev)) {
			r = parser_err(y);
			goto out_free;
		}
		if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		r = parse_node(y, &ev, depth + 1, &v);
		yaml_event_delete(&ev);
		if (r < 0)
			goto out_free;
		if (!is_map) {
			json_array_append_new(coll, v);
		} else if (!key) {
			if (!json_is_string(v)) {
				/* JSON keys are strings: print scalars the way they were written */
				char buf[64];

				if (json_is_integer(v))
					snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
						 json_integer_value(v));
				else if (json_is_boolean(v))
					snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
				else if (json_is_null(v))
					snprintf(buf, sizeof(buf), "null");
				else {
					json_decref(v);
					r = set_err(y, "YAML line %zu: mapping key is not a scalar",
						    ev.start_mark.line + 1);
					goto out_free;
				}
				json_decref(v);
				v = json_string(buf);
			}
			key = v;
		} else {
			json_object_set_new(coll, json_string_value(key), v);
			json_decref(key);
			key = NULL;
		}
	}
	*ret = coll;
	return 0;
out_free:
	json_decref(key);
	json_decref(coll);
	return r;
}

static int parse_node(struct yparse *y, yaml_event_t *ev, int depth, json_t **ret)
{
	json_t *v = NULL;
	int r;

	if (depth > MAX_DEPTH)
		return set_err(y, "YAML line %zu: nested deeper than %d levels",
			       ev->start_mark.line + 1, MAX_DEPTH);
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		v = scalar_value(ev);
		if (!v)
			return -ENOMEM;
		r = add_anchor(y, ev->data.scalar.anchor, v);
		break;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		r = parse_collection(y, ev, depth, &v);
		if (r < 0)
			return r;
		r = add_anchor(y, ev->type == YAML_SEQUENCE_START_EVENT ?
				       ev->data.sequence_start.anchor :
				       ev->data.mapping_start.anchor, v);
		break;
	case YAML_ALIAS_EVENT: {
		struct anchor *a = find_anchor(y, (const char *)ev->data.alias.anchor);

		if (!a)
			return set_err(y, "YAML line %zu: unknown alias *%s",
				       ev->start_mark.line + 1, ev->data.alias.anchor);
		y->n_alias_nodes += a->n_nodes;
		if (y->n_alias_nodes > MAX_ALIAS_NODES)
			return set_err(y, "YAML line %zu: aliases expand to more than %d values",
				       ev->start_mark.line + 1, MAX_ALIAS_NODES);
		v = json_deep_copy(a->value);	/* a copy: no shared subtrees downstream */
		if (!v)
			return -ENOMEM;
		r = 0;
		break;
	}
	default:
		return set_err(y, "YAML line %zu: unexpected event", ev->start_mark.line + 1);
	}
	if (r < 0) {
		json_decref(v);
		return r;
	}
	*ret = v;
	return 0;
}

int kp_yaml_parse(const char *buf, size_t size, json_t **ret_docs, char *err, size_t err_size)
{
	struct yparse y = { .err = err, .err_size = err_size };
	json_t *docs = json_array();
	json_t *doc = NULL;
	int r = 0;

	if (!docs)
		return -ENOMEM;
	if (!yaml_parser_initialize(&y.parser)) {
		json_decref(docs);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)buf, size);
	for (;;) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&y.parser, &ev)) {
			r = parser_err(&y);
			break;
		}
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_DOCUMENT_END_EVENT) {
			if (doc && !json_is_null(doc))	/* empty documents are skipped */
				json_array_append(docs, doc);
			json_decref(doc);
			doc = NULL;
			/* anchors are per document */
			for (size_t i = 0; i < y.n_anchors; i++) {
				free(y.anchors[i].name);
				json_decref(y.anchors[i].value);
			}
			y.n_anchors = 0;
			y.n_alias_nodes = 0;
		} else if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
			   ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_ALIAS_EVENT) {
			r = parse_node(&y, &ev, 0, &doc);
		}
		yaml_event_delete(&ev);
		if (r < 0)
			break;
	}
	yaml_parser_delete(&y.parser);
	for (size_t i = 0; i < y.n_anchors; i++) {
		free(y.anchors[i].name);
		json_decref(y.anchors[i].value);
	}
	free(y.anchors);
	json_decref(doc);
	if (r < 0) {
		json_decref(docs);
		return r;
	}
	*ret_docs = docs;
	return 0;
}
