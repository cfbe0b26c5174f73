/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where the API server is and how to authenticate to it: a kubeconfig file (as kubectl
 * reads it: the current or a named context, its cluster and user, *-data fields in
 * base64, file paths relative to the kubeconfig) or a pod's in-cluster configuration.
 * Errors name the file and the field path; a token's value never appears in them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <kproxy/api.h>

#include "internal.h"

/* Real kubeconfigs are a few KiB; anything near this is not one. */
#define MAX_KUBECONFIG_SIZE (4u << 20)
#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kc {
	const char *path;		/* the kubeconfig as given, or NULL (in-cluster) */
	char *dir;			/* its directory, for relative paths */
	char *err;			/* the caller's message buffer, may be NULL */
	size_t err_size;
};

/* Writes "<path>: <message>" into the caller's buffer and returns @r. */
static int fail(struct kc *k, int r, const char *fmt, ...) KP_PRINTF(3, 4);
static int fail(struct kc *k, int r, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;

	if (!k->err || !k->err_size)
		return r;
	if (k->path)
		n = (size_t)snprintf(k->err, k->err_size, "%s: ", k->path);
	if (n < k->err_size) {
		va_start(ap, fmt);
		vsnprintf(k->err + n, k->err_size - n, fmt, ap);
		va_end(ap);
	}
	return r;
}

KP_EXPORT void kp_api_auth_clear(struct kp_api_auth *a)
{
	if (!a)
		return;
	free(a->server);
	free(a->ca_file);
	free(a->ca_data);
	free(a->cert_file);
	free(a->cert_data);
	free(a->key_file);
	if (a->key_data)		/* secrets do not linger in freed memory */
		explicit_bzero(a->key_data, strlen(a->key_data));
	free(a->key_data);
	if (a->token)
		explicit_bzero(a->token, strlen(a->token));
	free(a->token);
	free(a->token_file);
	free(a->tls_server_name);
	memset(a, 0, sizeof(*a));
}

/* ---- base64 ---- */

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Standard base64 (RFC 4648 section 4) with its padding, as client-go decodes []byte
 * fields; whitespace is skipped anywhere since YAML block scalars wrap long values.
 * The result is PEM text, so a NUL byte in it is refused rather than silently cutting it.
 * Returns 0 and *ret (NUL-terminated; NULL for an empty value), -EINVAL or -ENOMEM.
 */
static int base64_decode(const char *in, char **ret)
{
	size_t n = 0, pad = 0;
	unsigned acc = 0, bits = 0;
	char *out = malloc(strlen(in) / 4 * 3 + 4);

	if (!out)
		return -ENOMEM;
	for (const char *p = in; *p; p++) {
		int v;

		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			continue;
		if (*p == '=') {
			pad++;
			continue;
		}
		v = b64_value(*p);
		if (v < 0 || pad)	/* not in the alphabet, or data after padding */
			goto bad;
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)(acc >> bits & 0xff);
		}
	}
	/*
	 * 2 or 3 characters of a last quantum leave 4 or 2 bits, which must be zero and be
	 * followed by 2 or 1 '='; a lone character (6 bits) is never valid.
	 */
	if (bits == 6 || pad != bits / 2 || (acc & ((1u << bits) - 1)) ||
	    memchr(out, '\0', n))
		goto bad;
	if (!n) {
		free(out);
		out = NULL;
	} else {
		out[n] = '\0';
	}
	*ret = out;
	return 0;
bad:
	free(out);
	return -EINVAL;
}

/* ---- fields ---- */

/*
 * The entry of list @list whose "name" is @want: its @inner mapping in *ret.
 * Returns the entry's index, -EINVAL (wrong types) or -ENOENT.
 */
static int find_named(struct kc *k, json_t *doc, const char *list, const char *what,
		      const char *want, const char *inner, json_t **ret)
{
	json_t *arr = json_object_get(doc, list), *it, *name;
	size_t i;

	if (arr && !json_is_array(arr) && !json_is_null(arr))
		return fail(k, -EINVAL, "%s: not a list", list);
	json_array_foreach(arr, i, it) {
		if (!json_is_object(it))
			return fail(k, -EINVAL, "%s[%zu]: not a mapping", list, i);
		name = json_object_get(it, "name");
		if (!json_is_string(name))
			return fail(k, -EINVAL, "%s[%zu].name: not a string", list, i);
		if (strcmp(json_string_value(name), want))
			continue;
		*ret = json_object_get(it, inner);
		if (!json_is_object(*ret))
			return fail(k, -EINVAL, "%s[%zu].%s: not a mapping", list, i, inner);
		return (int)i;
	}
	return fail(k, -ENOENT, "%s \"%s\" not found in %s", what, want, list);
}

/* Copies string field @key of @obj (at @where) into *ret: NULL if absent, null or "". */
static int str_field(struct kc *k, json_t *obj, const char *where, const char *key, char **ret)
{
	json_t *v = json_object_get(obj, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(k, -EINVAL, "%s.%s: not a string", where, key);
	if (!*json_string_value(v))
		return 0;
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

/* A file path field: a relative path is taken from the kubeconfig's directory. */
static int path_field(struct kc *k, json_t *obj, const char *where, const char *key,
		      char **ret)
{
	size_t dlen = strlen(k->dir);
	char *rel, *abs;
	int r;

	r = str_field(k, obj, where, key, &rel);
	if (r < 0 || !rel || rel[0] == '/') {
		*ret = rel;
		return r;
	}
	abs = kp_asprintf("%s%s%s", k->dir, dlen && k->dir[dlen - 1] == '/' ? "" : "/", rel);
	free(rel);
	*ret = abs;
	return abs ? 0 : -ENOMEM;
}

/* A *-data field: base64 of PEM text, decoded. */
static int data_field(struct kc *k, json_t *obj, const char *where, const char *key,
		      char **ret)
{
	char *raw;
	int r;

	*ret = NULL;
	r = str_field(k, obj, where, key, &raw);
	if (r < 0 || !raw)
		return r;
	r = base64_decode(raw, ret);
	explicit_bzero(raw, strlen(raw));	/* client-key-data is a private key */
	free(raw);
	if (r == -EINVAL)
		return fail(k, r, "%s.%s: not valid base64 of PEM text", where, key);
	return r;
}

/* ---- the kubeconfig ---- */

/* The context to use: its cluster's name and its user's (NULL: no credentials). */
static int pick_context(struct kc *k, json_t *doc, const char *context,
			const char **ret_cluster, const char **ret_user)
{
	json_t *ctx, *v;
	int i;

	if (!context) {
		v = json_object_get(doc, "current-context");
		if (v && !json_is_null(v) && !json_is_string(v))
			return fail(k, -EINVAL, "current-context: not a string");
		context = json_string_value(v);
		if (!context || !*context)
			return fail(k, -ENOENT, "no current-context (name a context)");
	}
	i = find_named(k, doc, "contexts", "context", context, "context", &ctx);
	if (i < 0)
		return i;
	v = json_object_get(ctx, "cluster");
	if (v && !json_is_null(v) && !json_is_string(v))
		return fail(k, -EINVAL, "contexts[%d].context.cluster: not a string", i);
	*ret_cluster = json_string_value(v);
	if (!*ret_cluster || !**ret_cluster)
		return fail(k, -ENOENT, "contexts[%d].context.cluster: missing (context \"%s\")",
			    i, context);
	v = json_object_get(ctx, "user");
	if (v && !json_is_null(v) && !json_is_string(v))
		return fail(k, -EINVAL, "contexts[%d].context.user: not a string", i);
	*ret_user = json_string_value(v);
	if (*ret_user && !**ret_user)
		*ret_user = NULL;
	return 0;
}

static int read_cluster(struct kc *k, json_t *doc, const char *name, struct kp_api_auth *a)
{
	json_t *cluster, *v;
	char where[64];
	size_t len;
	int i, r;

	i = find_named(k, doc, "clusters", "cluster", name, "cluster", &cluster);
	if (i < 0)
		return i;
	snprintf(where, sizeof(where), "clusters[%d].cluster", i);
	if ((r = str_field(k, cluster, where, "server", &a->server)) < 0 ||
	    (r = path_field(k, cluster, where, "certificate-authority", &a->ca_file)) < 0 ||
	    (r = data_field(k, cluster, where, "certificate-authority-data", &a->ca_data)) < 0 ||
	    (r = str_field(k, cluster, where, "tls-server-name", &a->tls_server_name)) < 0)
		return r;
	if (!a->server)
		return fail(k, -ENOENT, "%s.server: missing (cluster \"%s\")", where, name);
	len = strlen(a->server);
	if (len > 1 && a->server[len - 1] == '/')
		a->server[len - 1] = '\0';
	/* a quoted "true" is a string: refused, never taken as a reason to skip checks */
	v = json_object_get(cluster, "insecure-skip-tls-verify");
	if (v && !json_is_null(v) && !json_is_boolean(v))
		return fail(k, -EINVAL, "%s.insecure-skip-tls-verify: not a boolean", where);
	a->insecure = json_is_true(v);
	return 0;
}

/* Ways to log in that need more than a file or a string: named so the user knows why. */
static const struct {
	const char *key;
	const char *what;
} unsupported_auth[] = {
	{ "exec", "exec credential plugins" },
	{ "auth-provider", "auth-provider plugins" },
	{ "username", "basic authentication (username/password)" },
	{ "password", "basic authentication (username/password)" },
};

static int read_user(struct kc *k, json_t *doc, const char *name, struct kp_api_auth *a)
{
	json_t *user, *v;
	char where[64];
	size_t off;
	int i, r;

	i = find_named(k, doc, "users", "user", name, "user", &user);
	if (i < 0)
		return i;
	snprintf(where, sizeof(where), "users[%d].user", i);
	for (size_t j = 0; j < KP_ARRAY_SIZE(unsupported_auth); j++) {
		v = json_object_get(user, unsupported_auth[j].key);
		if (v && !json_is_null(v))
			return fail(k, -ENOTSUP, "%s.%s: user \"%s\": %s are not supported; use a "
				    "client certificate or a token", where,
				    unsupported_auth[j].key, name, unsupported_auth[j].what);
	}
	if ((r = path_field(k, user, where, "client-certificate", &a->cert_file)) < 0 ||
	    (r = data_field(k, user, where, "client-certificate-data", &a->cert_data)) < 0 ||
	    (r = path_field(k, user, where, "client-key", &a->key_file)) < 0 ||
	    (r = data_field(k, user, where, "client-key-data", &a->key_data)) < 0 ||
	    (r = str_field(k, user, where, "token", &a->token)) < 0 ||
	    (r = path_field(k, user, where, "tokenFile", &a->token_file)) < 0)
		return r;
	if (a->token && !kp_token_valid(a->token, &off))
		return fail(k, -EINVAL, "%s.token: user \"%s\": byte %zu is a space, control "
			    "character or not ASCII, which a bearer token cannot hold", where, name,
			    off);
	return 0;
}

static int parse_kubeconfig(struct kc *k, json_t *doc, const char *context,
			    struct kp_api_auth *a)
{
	const char *cluster = NULL, *user = NULL;
	int r;

	if (!json_is_object(doc))
		return fail(k, -EINVAL, "not a kubeconfig (the top is not a mapping)");
	r = pick_context(k, doc, context, &cluster, &user);
	if (r < 0)
		return r;
	r = read_cluster(k, doc, cluster, a);
	if (r < 0 || !user)		/* a context without a user: anonymous */
		return r;
	return read_user(k, doc, user, a);
}

/* Reads and parses the whole file; the buffer is wiped since it may hold a token. */
static int load_docs(struct kc *k, json_t **ret_docs)
{
	char perr[256] = "", *buf;
	size_t n;
	int r = kp_read_file(k->path, MAX_KUBECONFIG_SIZE, &buf, &n);

	if (r == -EFBIG)
		return fail(k, r, "larger than %u MiB", MAX_KUBECONFIG_SIZE >> 20);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return fail(k, r, "%s", strerror(-r));
	if (kp_yaml_parse(buf, n, ret_docs, perr, sizeof(perr)) < 0)
		r = fail(k, -EINVAL, "not YAML or JSON: %s", perr);
	explicit_bzero(buf, n);
	free(buf);
	return r;
}

/* The directory of @path, to which relative paths inside the file refer. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return kp_strdup(".");
	if (slash == path)
		return kp_strdup("/");
	return strndup(path, (size_t)(slash - path));
}

KP_EXPORT int kp_api_auth_from_kubeconfig(const char *path, const char *context,
					  struct kp_api_auth *ret, char *err, size_t err_size)
{
	struct kc k = { .path = path, .err = err, .err_size = err_size };
	struct kp_api_auth a = { 0 };
	json_t *docs = NULL;
	int r;

	if (!path || !ret)
		return -EINVAL;
	if (context && !*context)	/* as kubectl's --context="" */
		context = NULL;
	memset(ret, 0, sizeof(*ret));
	if (err && err_size)
		err[0] = '\0';
	r = load_docs(&k, &docs);
	if (r < 0)
		return r;
	k.dir = dir_of(path);
	if (!k.dir) {
		r = -ENOMEM;
		goto out_free_docs;
	}
	r = parse_kubeconfig(&k, json_array_get(docs, 0), context, &a);
	if (r < 0)
		kp_api_auth_clear(&a);
	else
		*ret = a;
	free(k.dir);
out_free_docs:
	json_decref(docs);
	return r;
}

/* ---- in-cluster ---- */

static int need_file(struct kc *k, const char *file)
{
	if (access(file, R_OK) < 0)
		return fail(k, -errno, "%s: %s", file, strerror(errno));
	return 0;
}

KP_EXPORT int kp_api_auth_in_cluster(const char *sa_dir, struct kp_api_auth *ret, char *err,
				     size_t err_size)
{
	struct kc k = { .err = err, .err_size = err_size };
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	struct kp_api_auth a = { 0 };
	bool v6;
	int r;

	if (!ret)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	if (err && err_size)
		err[0] = '\0';
	if (!sa_dir)
		sa_dir = SA_DIR;
	if (!host || !*host)
		return fail(&k, -ENOENT, "KUBERNETES_SERVICE_HOST is not set (not in a pod)");
	if (!port || !*port)
		return fail(&k, -ENOENT, "KUBERNETES_SERVICE_PORT is not set (not in a pod)");
	v6 = strchr(host, ':') && host[0] != '[';
	a.server = kp_asprintf("https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
	a.token_file = kp_asprintf("%s/token", sa_dir);
	a.ca_file = kp_asprintf("%s/ca.crt", sa_dir);
	if (!a.server || !a.token_file || !a.ca_file)
		r = -ENOMEM;
	else if ((r = need_file(&k, a.token_file)) >= 0)
		r = need_file(&k, a.ca_file);
	if (r < 0) {
		kp_api_auth_clear(&a);
		return r;
	}
	*ret = a;
	return 0;
}
