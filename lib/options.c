// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Backend options: checking settings (name/value text) against a backend's declared
 * option table (struct kp_option), and filling the backend's own options struct with
 * typed values, defaults applied, before its init runs. The filled struct and every
 * string and array it points to are owned here (struct kp_opts) and live as long as the
 * backend does, so a backend may keep pointers into it. Nothing here knows a backend.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kproxy/config.h>

#include "internal.h"

/* The settings of one option as text: what was given, else the default. */
struct optval {
	char **v;
	size_t n;
	void *array;			/* the lists' parsed entries, pointed at by the struct */
};

struct kp_opts {
	const struct kp_backend_ops *ops;
	void *data;			/* ops->options_size bytes */
	struct optval *vals;		/* parallel to ops->options */
};

static const char *const type_names[] = {
	[KP_OPT_BOOL] = "bool",
	[KP_OPT_UINT] = "uint",
	[KP_OPT_DURATION] = "duration",
	[KP_OPT_STRING] = "string",
	[KP_OPT_PORT_RANGE] = "port-range",
	[KP_OPT_CIDR_LIST] = "cidr-list",
	[KP_OPT_STRING_LIST] = "string-list",
	[KP_OPT_INT] = "int",
};

KP_EXPORT const char *kp_option_type_name(enum kp_opt_type type)
{
	return (unsigned)type < _KP_OPT_MAX ? type_names[type] : NULL;
}

/* "250ms", "30s", "5m", "1h": how the ranges are shown */
static void fmt_duration(uint64_t ms, char *out, size_t size)
{
	if (ms % 1000)
		snprintf(out, size, "%llums", (unsigned long long)ms);
	else if (ms && ms % 3600000 == 0)
		snprintf(out, size, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms && ms % 60000 == 0)
		snprintf(out, size, "%llum", (unsigned long long)(ms / 60000));
	else
		snprintf(out, size, "%llus", (unsigned long long)(ms / 1000));
}

static uint64_t max_of(const struct kp_option *o)
{
	return o->max > 0 && o->max < UINT32_MAX ? (uint64_t)o->max : UINT32_MAX;
}

static uint64_t min_of(const struct kp_option *o)
{
	return o->min > 0 ? (uint64_t)o->min : 0;
}

/* A signed number within the option's range (INT32 when none is given). */
static int parse_int(const struct kp_option *o, const char *s, int32_t *ret, char *err,
		     size_t size)
{
	int64_t lo = o->min || o->max ? o->min : INT32_MIN, hi = o->min || o->max ? o->max :
								       INT32_MAX;
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi) {
		snprintf(err, size, "\"%s\" is not a number %lld..%lld", s, (long long)lo,
			 (long long)hi);
		return -EINVAL;
	}
	*ret = (int32_t)v;
	return 0;
}

static int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "1", "yes", "True", "TRUE", "t", "T" };
	static const char *const no[] = { "false", "0", "no", "False", "FALSE", "f", "F" };

	for (size_t i = 0; i < KP_ARRAY_SIZE(yes); i++) {
		if (!strcmp(s, yes[i]) || !strcmp(s, no[i])) {
			*ret = !strcmp(s, yes[i]);
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_uint(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end || errno)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Whether @s is one of @o's choices (any string when it has none); @err says which. */
static bool chosen(const struct kp_option *o, const char *s, char *err, size_t size)
{
	size_t len;

	for (size_t i = 0; o->choices && o->choices[i]; i++)
		if (!strcmp(s, o->choices[i]))
			return true;
	if (!o->choices)
		return true;
	len = (size_t)snprintf(err, size, "\"%s\" is not one of", s);
	for (size_t i = 0; o->choices[i] && len < size; i++)
		len += (size_t)snprintf(err + len, size - len, "%s %s", i ? "," : "",
					o->choices[i]);
	return false;
}

/*
 * Parses one scalar setting of @o into @out (of the option's C type; NULL: check only).
 * The lists are checked entry by entry here and filled by fill_list().
 */
static int parse_one(const struct kp_option *o, const char *s, void *out, char *err,
		     size_t size)
{
	char lo[32], hi[32];
	uint64_t v = 0;
	uint32_t ms;
	struct kp_port_range pr;
	bool b;

	switch (o->type) {
	case KP_OPT_BOOL:
		if (parse_bool(s, &b) < 0)
			goto bad;
		if (out)
			*(bool *)out = b;
		return 0;
	case KP_OPT_UINT:
		if (parse_uint(s, &v) < 0 || v < min_of(o) || v > max_of(o)) {
			snprintf(err, size, "\"%s\" is not a number %llu..%llu", s,
				 (unsigned long long)min_of(o), (unsigned long long)max_of(o));
			return -EINVAL;
		}
		if (out)
			*(uint32_t *)out = (uint32_t)v;
		return 0;
	case KP_OPT_DURATION:
		if (kp_parse_duration(s, &ms) < 0 || ms < min_of(o) || ms > max_of(o)) {
			fmt_duration(min_of(o), lo, sizeof(lo));
			fmt_duration(max_of(o), hi, sizeof(hi));
			if (max_of(o) == UINT32_MAX)
				snprintf(hi, sizeof(hi), "%s", "");
			snprintf(err, size, "\"%s\" is not a duration %s%s%s%s(such as 500ms, 30s, "
				 "1m30s)", s, o->min || *hi ? lo : "", *hi ? ".." : "", hi,
				 o->min && !*hi ? " or more " : o->min || *hi ? " " : "");
			return -EINVAL;
		}
		if (out)
			*(uint32_t *)out = ms;
		return 0;
	case KP_OPT_STRING:
		if (!chosen(o, s, err, size))
			return -EINVAL;
		if (out)
			*(const char **)out = s;
		return 0;
	case KP_OPT_PORT_RANGE:
		if (kp_parse_port_range(s, &pr.lo, &pr.hi) < 0) {
			snprintf(err, size, "\"%s\" is not LO-HI, LO+N or a port (1-65535)", s);
			return -EINVAL;
		}
		if (out)
			*(struct kp_port_range *)out = pr;
		return 0;
	case KP_OPT_CIDR_LIST: {
		const char *bad = s;
		size_t n;

		if (kp_cidr_list_parse(s, NULL, 0, &n, &bad) < 0) {
			snprintf(err, size, "\"%.*s\" is not a CIDR (such as 10.0.0.0/8 or "
				 "fd00::/64)", (int)strcspn(bad, ","), bad);
			return -EINVAL;
		}
		return 0;
	}
	case KP_OPT_STRING_LIST:
		return 0;
	case KP_OPT_INT: {
		int32_t iv;

		if (parse_int(o, s, &iv, err, size) < 0)
			return -EINVAL;
		if (out)
			*(int32_t *)out = iv;
		return 0;
	}
	default:
		break;
	}
bad:
	snprintf(err, size, "\"%s\" is not %s", s, o->type == KP_OPT_BOOL ? "true or false" :
		 "valid");
	return -EINVAL;
}

KP_EXPORT int kp_option_check(const struct kp_option *opt, const char *value, char *err,
			      size_t err_size)
{
	char buf[256];

	if (!opt || !value || (unsigned)opt->type >= _KP_OPT_MAX)
		return -EINVAL;
	if (parse_one(opt, value, NULL, buf, sizeof(buf)) < 0) {
		if (err && err_size)
			snprintf(err, err_size, "%s", buf);
		return -EINVAL;
	}
	return 0;
}

static const struct kp_option *find(const struct kp_backend_ops *ops, const char *name,
				    size_t *ret_i)
{
	for (size_t i = 0; ops->options && i < ops->n_options; i++) {
		if (!strcmp(ops->options[i].name, name)) {
			*ret_i = i;
			return &ops->options[i];
		}
	}
	return NULL;
}

static int add_text(struct optval *val, const char *s)
{
	char **v = realloc(val->v, (val->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	val->v = v;
	if (!(v[val->n] = strdup(s)))
		return -ENOMEM;
	val->n++;
	return 0;
}

/* The lists: every setting's entries in one array the struct points at. */
static int fill_list(const struct kp_option *o, struct optval *val, void *out)
{
	struct kp_cidr_list *cl = out;
	size_t total = 0, n;
	struct kp_cidr *v;

	if (o->type == KP_OPT_STRING_LIST) {
		struct kp_str_list *l = out;

		l->v = (const char *const *)val->v;
		l->n = val->n;
		return 0;
	}
	for (size_t i = 0; i < val->n; i++) {
		if (kp_cidr_list_parse(val->v[i], NULL, 0, &n, NULL) < 0)
			return -EINVAL;
		total += n;
	}
	v = calloc(total ? total : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	val->array = v;
	for (size_t i = 0, at = 0; i < val->n; i++, at += n)
		kp_cidr_list_parse(val->v[i], v + at, total - at, &n, NULL);
	cl->v = v;
	cl->n = total;
	return 0;
}

void kp_opts_free(struct kp_opts *o)
{
	if (!o)
		return;
	for (size_t i = 0; o->vals && i < o->ops->n_options; i++) {
		for (size_t k = 0; k < o->vals[i].n; k++)
			free(o->vals[i].v[k]);
		free(o->vals[i].v);
		free(o->vals[i].array);
	}
	free(o->vals);
	free(o->data);
	free(o);
}

/* Says why in @err, for the caller to keep; returns -EINVAL. */
static int say(char *err, size_t size, const char *fmt, ...) KP_PRINTF(3, 4);
static int say(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Records each setting's text, refusing unknown names, bad values and repeats. */
static int take_settings(struct kp_opts *o, const struct kp_setting *s, size_t n, char *err,
			 size_t size)
{
	char why[256];

	for (size_t i = 0; i < n; i++) {
		const struct kp_option *opt;
		size_t k;
		bool list;

		if (!s[i].name || !s[i].value)
			return say(err, size, "%s: a setting without a name or "
						"value", o->ops->name);
		opt = find(o->ops, s[i].name, &k);
		if (!opt)
			return say(err, size, "%s: no option \"%s\" in this data "
						"plane", o->ops->name, s[i].name);
		list = opt->type == KP_OPT_CIDR_LIST || opt->type == KP_OPT_STRING_LIST;
		if (!list && o->vals[k].n)
			return say(err, size, "%s: option \"%s\" given twice",
						o->ops->name, opt->name);
		if (parse_one(opt, s[i].value, NULL, why, sizeof(why)) < 0)
			return say(err, size, "%s: option \"%s\": %s",
						o->ops->name, opt->name, why);
		if (list && opt->max > 0 && o->vals[k].n == (size_t)opt->max)
			return say(err, size, "%s: option \"%s\": at most %llu",
						o->ops->name, opt->name,
						(unsigned long long)opt->max);
		if (add_text(&o->vals[k], s[i].value) < 0)
			return -ENOMEM;
	}
	return 0;
}

int kp_opts_new(const struct kp_backend_ops *ops, const struct kp_setting *settings,
		size_t n_settings, struct kp_opts **ret, char *err, size_t err_size)
{
	struct kp_opts *o = calloc(1, sizeof(*o));
	char why[256];
	int r;

	if (!o)
		return -ENOMEM;
	o->ops = ops;
	o->vals = calloc(ops->n_options ? ops->n_options : 1, sizeof(*o->vals));
	o->data = ops->options_size ? calloc(1, ops->options_size) : NULL;
	r = o->vals && (o->data || !ops->options_size) ? 0 : -ENOMEM;
	if (!r)
		r = take_settings(o, settings, n_settings, err, err_size);
	for (size_t i = 0; !r && i < ops->n_options; i++) {
		const struct kp_option *opt = &ops->options[i];
		void *out;

		if (!o->data || opt->offset >= ops->options_size) {
			r = say(err, err_size, "%s: option \"%s\" lies outside its "
					     "struct", ops->name, opt->name);
			break;
		}
		out = (char *)o->data + opt->offset;
		if (!o->vals[i].n && opt->def && (r = add_text(&o->vals[i], opt->def)) < 0)
			break;
		if (opt->type == KP_OPT_CIDR_LIST || opt->type == KP_OPT_STRING_LIST)
			r = fill_list(opt, &o->vals[i], out);
		else if (o->vals[i].n && parse_one(opt, o->vals[i].v[0], out, why,
						   sizeof(why)) < 0)	/* a bad default */
			r = say(err, err_size, "%s: option \"%s\": default %s",
					     ops->name, opt->name, why);
	}
	if (r < 0) {
		kp_opts_free(o);
		return r;
	}
	*ret = o;
	return 0;
}

const void *kp_opts_data(const struct kp_opts *o)
{
	return o ? o->data : NULL;
}

int kp_opts_foreach(const struct kp_opts *o,
		    int (*fn)(const struct kp_option *opt, const char *value, void *userdata),
		    void *userdata)
{
	int r = 0;

	for (size_t i = 0; o && !r && i < o->ops->n_options; i++) {
		if (!o->vals[i].n)
			r = fn(&o->ops->options[i], NULL, userdata);
		for (size_t k = 0; !r && k < o->vals[i].n; k++)
			r = fn(&o->ops->options[i], o->vals[i].v[k], userdata);
	}
	return r;
}
