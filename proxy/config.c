// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1, YAML or JSON), read
 * into the flag table's slots as kube-proxy reads it: with --config, the file is the
 * configuration and kube-proxy's other flags are dropped (--hostname-override and the
 * logging flags win over it). Each field a row names is type-checked (a wrong type is
 * refused with the field's path) and checked against the option it feeds; a field no
 * row names is warned about. Also the way back (--write-config-to) and the watch that
 * ends kproxyd when the file changes, as kube-proxy ends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <jansson.h>

#include "kpd.h"

#include "kpyaml.h"

#define MAX_CONFIG_SIZE (1u << 20)

static const struct kpd_flag *rows;
static size_t n_rows;

static const char *const config_types[] = {
	[KP_OPT_BOOL] = "not a boolean",
	[KP_OPT_UINT] = "not a number",
	[KP_OPT_DURATION] = "not a duration such as \"30s\" or \"1m0s\"",
	[KP_OPT_STRING] = "not a string",
	[KP_OPT_PORT_RANGE] = "not a string",
	[KP_OPT_CIDR_LIST] = "not a list of CIDRs",
	[KP_OPT_STRING_LIST] = "not a list of strings",
	[KP_OPT_INT] = "not a number",
};

/* A map or list kproxyd does not apply, as text: "" when empty, else compact JSON. */
static char *any_text(json_t *v)
{
	if (json_is_null(v) || (json_is_object(v) && !json_object_size(v)) ||
	    (json_is_array(v) && !json_array_size(v)) ||
	    (json_is_string(v) && !*json_string_value(v)))
		return strdup("");
	return json_is_string(v) ? strdup(json_string_value(v)) :
				   json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
}

/* A field's JSON value as a setting's text; NULL (and @why) when its type is wrong. */
static char *field_text(const struct kpd_flag *f, json_t *v, enum kp_opt_type type,
			int *why_type)
{
	char num[32];

	*why_type = (int)type;
	if (f->cfg_any)
		return any_text(v);
	if (f->cfg_number && type == KP_OPT_DURATION && json_is_integer(v)) {
		/* a duration may also be written as a number of nanoseconds */
		snprintf(num, sizeof(num), "%lldms", (long long)(json_integer_value(v) / 1000000));
		return strdup(num);
	}
	if (f->cfg_number && type != KP_OPT_DURATION) {
		if (!json_is_number(v))
			return NULL;
		snprintf(num, sizeof(num), "%g", json_number_value(v));
		return strdup(num);
	}
	switch (type) {
	case KP_OPT_BOOL:
		return json_is_boolean(v) ? strdup(json_is_true(v) ? "true" : "false") : NULL;
	case KP_OPT_UINT:
	case KP_OPT_INT:
		if (!json_is_integer(v) || (type == KP_OPT_UINT && json_integer_value(v) < 0))
			return NULL;
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		return strdup(num);
	case KP_OPT_CIDR_LIST: {	/* "a,b" (clusterCIDR) or ["a", "b"] (nodePortAddresses) */
		size_t i, len = 1;
		json_t *a;
		char *s;

		if (json_is_string(v))
			return strdup(json_string_value(v));
		if (!json_is_array(v))
			return NULL;
		json_array_foreach(v, i, a) {
			if (!json_is_string(a))
				return NULL;
			len += strlen(json_string_value(a)) + 1;
		}
		s = calloc(1, len);
		json_array_foreach(v, i, a) {
			if (s && i)
				strcat(s, ",");
			if (s)
				strcat(s, json_string_value(a));
		}
		return s;
	}
	default:
		return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
	}
}

/* The value at a dotted path ("iptables.syncPeriod"), or NULL; -EINVAL (said in @err)
 * when a section on the way is not an object. */
static int field_get(json_t *doc, const char *path, json_t **ret, char *err, size_t size,
		     const char *file)
{
	char sec[64];
	const char *dot = strchr(path, '.');
	json_t *s;

	if (!dot) {
		*ret = json_object_get(doc, path);
		return 0;
	}
	snprintf(sec, sizeof(sec), "%.*s", (int)(dot - path), path);
	s = json_object_get(doc, sec);
	*ret = NULL;
	if (!s || json_is_null(s))
		return 0;
	if (!json_is_object(s)) {
		snprintf(err, size, "%s: %s: not an object", file, sec);
		return -EINVAL;
	}
	*ret = json_object_get(s, dot + 1);
	return 0;
}

/* Whether @path names a field a row reads, or a section holding one. */
static bool known_field(const char *path)
{
	static const char *const fixed[] = { "apiVersion", "kind" };
	size_t len = strlen(path);

	for (size_t i = 0; i < KP_ARRAY_SIZE(fixed); i++)
		if (!strcmp(path, fixed[i]))
			return true;
	for (size_t i = 0; i < n_rows; i++)
		if (rows[i].config && (!strcmp(rows[i].config, path) ||
				       (!strncmp(rows[i].config, path, len) &&
					rows[i].config[len] == '.')))
			return true;
	return false;
}

/* Whether @path is a field read whole (a map): its keys are not looked into. */
static bool whole_field(const char *path)
{
	for (size_t i = 0; i < n_rows; i++)
		if (rows[i].config && rows[i].cfg_any && !strcmp(rows[i].config, path))
			return true;
	return false;
}

static void warn_unknown(json_t *doc, const char *file, kpd_config_warn_fn warn)
{
	const char *key, *k2;
	json_t *v, *v2;
	char path[256];

	json_object_foreach(doc, key, v) {
		if (!known_field(key)) {
			warn(file, key);
			continue;
		}
		if (!json_is_object(v) || whole_field(key))
			continue;
		json_object_foreach(v, k2, v2) {
			snprintf(path, sizeof(path), "%s.%s", key, k2);
			if (!known_field(path))
				warn(file, path);
		}
	}
}

static int check_kind(json_t *doc, const char *file, char *err, size_t size)
{
	const char *s;

	if (!json_is_object(doc)) {
		snprintf(err, size, "%s: (document): not a KubeProxyConfiguration object", file);
		return -EINVAL;
	}
	s = json_string_value(json_object_get(doc, "kind"));
	if (json_object_get(doc, "kind") && (!s || strcmp(s, "KubeProxyConfiguration"))) {
		snprintf(err, size, "%s: kind: not KubeProxyConfiguration", file);
		return -EINVAL;
	}
	s = json_string_value(json_object_get(doc, "apiVersion"));
	if (json_object_get(doc, "apiVersion") &&
	    (!s || strcmp(s, "kubeproxy.config.k8s.io/v1alpha1"))) {
		snprintf(err, size, "%s: apiVersion: not kubeproxy.config.k8s.io/v1alpha1", file);
		return -EINVAL;
	}
	return 0;
}

static bool is_zero(const struct kp_option *o, const char *text)
{
	uint32_t ms;

	if (o->type == KP_OPT_DURATION)
		return !kp_parse_duration(text, &ms) && !ms;
	return !*text || !strcmp(text, "0");
}

/* A list of strings (dpdk.ports): each element one value of the row, as a repeated flag. */
static int config_list(const struct kpd_flag *t, const struct kp_option *o, json_t *v,
		       const char *field, const char *file, char *err, size_t size)
{
	char why[256];
	size_t i;
	json_t *a;

	kpd_flag_clear(t);
	json_array_foreach(v, i, a) {
		if (!json_is_string(a)) {
			snprintf(err, size, "%s: %s[%zu]: not a string", file, field, i);
			return -EINVAL;
		}
		if (kp_option_check(o, json_string_value(a), why, sizeof(why)) < 0) {
			snprintf(err, size, "%s: %s[%zu]: %s", file, field, i, why);
			return -EINVAL;
		}
		if (kpd_flag_set(t, json_string_value(a), false) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Applies the field of one row; @mode is the file's mode ("" or NULL: iptables). */
static int config_row(struct kp_ctx *ctx, json_t *doc, const struct kpd_flag *f,
		      const char *mode, const char *file, char *err, size_t size)
{
	const struct kpd_flag *t = kpd_flag_target(f);
	const struct kp_option *o;
	char why[256];
	json_t *v;
	char *text;
	int wt, r;

	if (f->config_mode && strcmp(f->config_mode, mode && *mode ? mode : "iptables"))
		return 0;
	r = field_get(doc, f->config, &v, err, size, file);
	if (r < 0 || !v || json_is_null(v))
		return r;
	o = kpd_flag_decl(ctx, t, mode && *mode ? mode : "iptables");
	if (o->type == KP_OPT_STRING_LIST && json_is_array(v))
		return config_list(t, o, v, f->config, file, err, size);
	text = field_text(t, v, o->type, &wt);
	if (!text) {
		snprintf(err, size, "%s: %s: %s", file, f->config, config_types[wt]);
		return -EINVAL;
	}
	if (!t->cfg_any && kp_option_check(o, text, why, sizeof(why)) < 0) {
		if (o->type == KP_OPT_DURATION)
			snprintf(err, size, "%s: %s: %s, not \"%s\"", file, f->config,
				 config_types[KP_OPT_DURATION], text);
		else
			snprintf(err, size, "%s: %s%s%s%s: %s", file, f->config,
				 t->name ? " (--" : "", t->name ? t->name : "", t->name ? ")" : "",
				 why);
		free(text);
		return -EINVAL;
	}
	/* "": the data plane's default (kubeadm writes scheduler: ""); zero where kube-proxy's
	 * defaulting makes zero the default */
	if ((o != &t->own && o->type == KP_OPT_STRING && !*text) ||
	    (f->zero_default && is_zero(o, text))) {
		free(text);
		return 0;
	}
	r = kpd_flag_set(t, text, false);
	free(text);
	return r;
}

/* kube-proxy reads only the file when --config is given: its other flags are dropped,
 * each named once, except the ones that win over the file. */
static void drop_overridden_flags(const char *file)
{
	for (size_t i = 0; i < n_rows; i++) {
		const struct kpd_flag *f = &rows[i];

		if (!f->name || !f->kube || f->flag_wins || !kpd_flag_from_flag(f))
			continue;
		kpd_warn("--%s: ignored: --config %s is given, and kube-proxy then reads only "
			 "the file", f->name, file);
		kpd_flag_clear(f);
	}
}

int kpd_config_load(struct kp_ctx *ctx, const char *file, kpd_config_warn_fn warn, char *err,
		    size_t size)
{
	json_t *doc, *mode_v;
	const char *mode;
	int r;

	rows = kpd_flag_rows(&n_rows);
	r = kpd_yaml_load(file, &doc, err, size);
	if (r < 0)
		return r;
	r = check_kind(doc, file, err, size);
	if (r < 0)
		goto out;
	if (warn)
		warn_unknown(doc, file, warn);
	drop_overridden_flags(file);
	mode_v = json_object_get(doc, "mode");
	mode = json_is_string(mode_v) ? json_string_value(mode_v) : NULL;
	for (size_t i = 0; i < n_rows && !r; i++) {
		if (!rows[i].config)
			continue;
		/* the flags that win over the file were kept */
		if (kpd_flag_from_flag(kpd_flag_target(&rows[i])))
			continue;
		r = config_row(ctx, doc, &rows[i], mode, file, err, size);
	}
out:
	json_decref(doc);
	return r;
}

/* The first document of a YAML or JSON file of at most 1 MiB. */
int kpd_yaml_load(const char *file, json_t **ret_doc, char *err, size_t size)
{
	char perr[256] = "", *buf = NULL;
	json_t *docs = NULL;
	FILE *f = fopen(file, "re");
	size_t n = 0;
	int r = 0;

	if (!f) {
		snprintf(err, size, "%s: %s", file, strerror(errno));
		return -errno;
	}
	buf = malloc(MAX_CONFIG_SIZE + 1);
	if (buf)
		n = fread(buf, 1, MAX_CONFIG_SIZE + 1, f);
	if (!buf || ferror(f))
		r = buf ? -EIO : -ENOMEM;
	else if (n > MAX_CONFIG_SIZE)
		r = -EFBIG;
	fclose(f);
	if (r < 0) {
		snprintf(err, size, "%s: %s", file, r == -EFBIG ? "larger than 1 MiB" :
			 strerror(-r));
		free(buf);
		return r;
	}
	r = kp_yaml_parse(buf, n, &docs, perr, sizeof(perr));
	free(buf);
	if (r < 0) {
		snprintf(err, size, "%s: not YAML or JSON: %s", file, perr);
		return -EBADMSG;
	}
	*ret_doc = json_incref(json_array_get(docs, 0));
	json_decref(docs);
	return 0;
}

/* ---- --write-config-to ---- */

/* A value as YAML: the type the field has in the file. */
static void yaml_value(FILE *f, const struct kpd_flag *t, const struct kp_option *o,
		       const char *v)
{
	if (t->cfg_any || !v) {
		fputs(v && *v ? v : "null", f);	/* JSON is YAML */
		return;
	}
	switch (o->type) {
	case KP_OPT_BOOL:
		fputs(!strcmp(v, "true") || !strcmp(v, "1") ? "true" : "false", f);
		return;
	case KP_OPT_UINT:
	case KP_OPT_INT:
		fputs(*v ? v : "0", f);
		return;
	case KP_OPT_CIDR_LIST:
		if (!*v || !t->cfg_list) {
			fprintf(f, *v ? "\"%s\"" : "null", v);
			return;
		}
		fputc('[', f);
		for (const char *p = v; *p;) {
			size_t len = strcspn(p, ",");

			fprintf(f, "%s\"%.*s\"", p == v ? "" : ", ", (int)len, p);
			p += len + (p[len] == ',');
		}
		fputc(']', f);
		return;
	case KP_OPT_DURATION:
		fprintf(f, "\"%s\"", v);
		return;
	default:
		if (t->cfg_number)
			fputs(v, f);
		else
			fprintf(f, "\"%s\"", v);
	}
}

/* A field's value in force: set, else kproxyd's default, else the data plane's. */
static void write_field(FILE *f, struct kp_ctx *ctx, const struct kpd_flag *t,
			const char *mode)
{
	const struct kp_option *o = kpd_flag_decl(ctx, t, mode);
	const char *v = kpd_flag_value(t);

	if (o->type == KP_OPT_STRING_LIST && t->name) {	/* every value, as a list */
		size_t n;
		const char *const *all = kpd_get_list(t->name, &n);

		fputc('[', f);
		for (size_t i = 0; i < n; i++) {
			json_t *s = json_string(all[i]);
			char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;

			fprintf(f, "%s%s", i ? ", " : "", q ? q : "\"\"");
			free(q);
			json_decref(s);
		}
		fputc(']', f);
		return;
	}
	yaml_value(f, t, o, v ? v : o->def ? o->def : t->default_text);
}

/* The configuration in force, one field per row, sections in the order rows name them:
 * as YAML (the file --write-config-to writes), or as one JSON object (/configz). The
 * values are flow scalars, which both read alike. */
static void write_config(FILE *f, struct kp_ctx *ctx, const char *mode, bool json)
{
	const char *done[64];
	size_t n_done = 0;
	bool first = true;

	rows = kpd_flag_rows(&n_rows);
	fputs(json ? "{\"apiVersion\": \"kubeproxy.config.k8s.io/v1alpha1\", "
		     "\"kind\": \"KubeProxyConfiguration\"" :
		     "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n",
	      f);
	for (size_t i = 0; i < n_rows; i++) {
		const char *c = rows[i].config, *dot;
		size_t sec_len;
		bool seen = false;

		if (!c || (rows[i].config_mode && strcmp(rows[i].config_mode, mode)))
			continue;
		dot = strchr(c, '.');
		sec_len = dot ? (size_t)(dot - c) : strlen(c);
		for (size_t k = 0; k < n_done && !seen; k++)
			seen = !strncmp(done[k], c, sec_len) && (done[k][sec_len] == '.' ||
								 !done[k][sec_len]);
		if (seen)
			continue;	/* a section (or field) written once, with its fields */
		if (n_done < 64)
			done[n_done++] = c;
		if (!dot) {
			fprintf(f, json ? ", \"%s\": " : "%s: ", c);
			write_field(f, ctx, kpd_flag_target(&rows[i]), mode);
			if (!json)
				fputc('\n', f);
			continue;
		}
		fprintf(f, json ? ", \"%.*s\": {" : "%.*s:\n", (int)sec_len, c);
		first = true;
		for (size_t k = i; k < n_rows; k++) {
			if (!rows[k].config || strncmp(rows[k].config, c, sec_len) ||
			    rows[k].config[sec_len] != '.' ||
			    (rows[k].config_mode && strcmp(rows[k].config_mode, mode)))
				continue;
			if (json)
				fprintf(f, "%s\"%s\": ", first ? "" : ", ",
					rows[k].config + sec_len + 1);
			else
				fprintf(f, "  %s: ", rows[k].config + sec_len + 1);
			write_field(f, ctx, kpd_flag_target(&rows[k]), mode);
			if (!json)
				fputc('\n', f);
			first = false;
		}
		if (json)
			fputc('}', f);
	}
	if (json)
		fputc('}', f);
}

int kpd_config_write(struct kp_ctx *ctx, const char *file, const char *mode)
{
	FILE *f = fopen(file, "we");

	if (!f)
		return -errno;
	write_config(f, ctx, mode, false);
	return fclose(f) ? -errno : 0;
}

char *kpd_config_json(struct kp_ctx *ctx, const char *mode)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	fputs("{\"kubeproxy.config.k8s.io\": ", f);
	write_config(f, ctx, mode, true);
	fputs("}\n", f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- the watch ---- */

int kpd_config_watch(const char *file)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (inotify_add_watch(fd, file, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVE_SELF |
				  IN_DELETE_SELF | IN_ATTRIB) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}
