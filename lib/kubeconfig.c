// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Where the API server is and how to authenticate to it: a kubeconfig file (as kubectl
 * reads it: the current or a named context, its cluster and user, *-data fields in
 * base64, file paths relative to the kubeconfig) or a pod's in-cluster configuration.
 * Errors name the file and the field; a token's value never appears in them.
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

#define MAX_KUBECONFIG_SIZE (4u << 20)
#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kc {
	const char *path;
	char *dir;			/* the kubeconfig's directory, for relative paths */
	char *err;
	size_t err_size;
};

static int fail(struct kc *k, int r, const char *fmt, ...) KP_PRINTF(3, 4);
static int fail(struct kc *k, int r, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!k->err || !k->err_size)
		return r;
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
	free(a->key_data);
	if (a->token)
		explicit_bzero(a->token, strlen(a->token));
	free(a->token);
	free(a->token_file);
	free(a->tls_server_name);
	memset(a, 0, sizeof(*a));
}

/* Standard base64 with padding; whitespace ignored. Returns a NUL-terminated copy. */
static char *base64_decode(const char *in)
{
	size_t len = strlen(in), n = 0;
	unsigned acc = 0, bits = 0, pad = 0;
	char *out = malloc(len / 4 * 3 + 4);

	if (!out)
		return NULL;
	for (const char *p = in; *p; p++) {
		int v;

		if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
			continue;
		if (*p == '=') {
			pad++;
			continue;
		}
		if (pad)
			goto bad;	/* data after padding */
		if (*p >= 'A' && *p <= 'Z')
			v = *p - 'A';
		else if (*p >= 'a' && *p <= 'z')
			v = *p - 'a' + 26;
		else if (*p >= '0' && *p <= '9')
			v = *p - '0' + 52;
		else if (*p == '+')
			v = 62;
		else if (*p == '/')
			v = 63;
		else
			goto bad;
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)(acc >> bits & 0xff);
		}
	}
	/* what is left must be padding bits only, and the padding must fit */
	if (pad > 2 || bits >= 6 || (acc & ((1u << bits) - 1)) || (pad && (bits / 2) != pad))
		goto bad;
	out[n] = '\0';
	return out;
bad:
	free(out);
	errno = EINVAL;
	return NULL;
}

/* The entry of list @name whose "name" is @want, its @inner object in *ret. */
static int find_named(struct kc *k, json_t *doc, const char *name, const char *want,
		      const char *inner, json_t **ret)
{
	json_t *list = json_object_get(doc, name), *it;
	size_t i;

	if (list && !json_is_array(list) && !json_is_null(list))
		return fail(k, -EINVAL, "%s: not a list", name);
	json_array_foreach(list, i, it) {
		const char *n = json_string_value(json_object_get(it, "name"));

		if (!json_is_object(it))
			return fail(k, -EINVAL, "%s[%zu]: not an object", name, i);
		if (!n || strcmp(n, want))
			continue;
		*ret = json_object_get(it, inner);
		if (!json_is_object(*ret))
			return fail(k, -EINVAL, "%s[%zu].%s: not an object", name, i, inner);
		return (int)i;
	}
	return fail(k, -ENOENT, "no %s entry named \"%s\"", name, want);
}

/* Copies string field @key of @obj (at @where) into *out, NULL if absent. */
static int str_field(struct kc *k, json_t *obj, const char *where, const char *key, char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(k, -EINVAL, "%s.%s: not a string", where, key);
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

/* A file path field: relative paths are taken from the kubeconfig's directory. */
static int path_field(struct kc *k, json_t *obj, const char *where, const char *key, char **out)
{
	int r = str_field(k, obj, where, key, out);
	char *abs;

	if (r < 0 || !*out)
		return r;
	if (!**out) {
		free(*out);
		*out = NULL;
		return 0;
	}
	if (**out == '/')
		return 0;
	abs = kp_asprintf("%s/%s", k->dir, *out);
	free(*out);
	*out = abs;
	return abs ? 0 : -ENOMEM;
}

static int data_field(struct kc *k, json_t *obj, const char *where, const char *key, char **out)
{
	char *raw;
	int r = str_field(k, obj, where, key, &raw);

	*out = NULL;
	if (r < 0 || !raw)
		return r;
	*out = base64_decode(raw);
	free(raw);
	if (!*out)
		return errno == EINVAL ? fail(k, -EINVAL, "%s.%s: not valid base64", where, key) :
					 -ENOMEM;
	return 0;
}

static int parse_kubeconfig(struct kc *k, json_t *doc, const char *context,
			    struct kp_api_auth *a)
{
	json_t *ctx = NULL, *cluster = NULL, *user = NULL, *v;
	const char *cluster_name, *user_name;
	char where[128];
	int i, r;

	if (!json_is_object(doc))
		return fail(k, -EINVAL, "not a kubeconfig (no mapping at the top)");
	if (!context) {
		v = json_object_get(doc, "current-context");
		if (v && !json_is_string(v))
			return fail(k, -EINVAL, "current-context: not a string");
		context = json_string_value(v);
		if (!context || !*context)
			return fail(k, -ENOENT, "no current-context (give --context)");
	}
	if ((i = find_named(k, doc, "contexts", context, "context", &ctx)) < 0)
		return i;
	v = json_object_get(ctx, "cluster");
	cluster_name = json_string_value(v);
	if (!cluster_name)
		return fail(k, -EINVAL, "contexts[%d].context.cluster: not a string", i);
	v = json_object_get(ctx, "user");
	if (v && !json_is_string(v))
		return fail(k, -EINVAL, "contexts[%d].context.user: not a string", i);
	user_name = json_string_value(v);
	if ((i = find_named(k, doc, "clusters", cluster_name, "cluster", &cluster)) < 0)
		return i;
	snprintf(where, sizeof(where), "clusters[%d].cluster", i);
	if ((r = str_field(k, cluster, where, "server", &a->server)) < 0 ||
	    (r = path_field(k, cluster, where, "certificate-authority", &a->ca_file)) < 0 ||
	    (r = data_field(k, cluster, where, "certificate-authority-data", &a->ca_data)) < 0 ||
	    (r = str_field(k, cluster, where, "tls-server-name", &a->tls_server_name)) < 0)
		return r;
	if (!a->server || !*a->server)
		return fail(k, -ENOENT, "%s.server: missing", where);
	v = json_object_get(cluster, "insecure-skip-tls-verify");
	if (v && !json_is_boolean(v) && !json_is_null(v))
		return fail(k, -EINVAL, "%s.insecure-skip-tls-verify: not a boolean", where);
	a->insecure = json_is_true(v);
	{
		size_t l = strlen(a->server);

		if (l > 1 && a->server[l - 1] == '/')
			a->server[l - 1] = '\0';
	}
	if (!user_name || !*user_name)
		return 0;	/* no user: no credentials */
	if ((i = find_named(k, doc, "users", user_name, "user", &user)) < 0)
		return i;
	snprintf(where, sizeof(where), "users[%d].user", i);
	if (json_object_get(user, "exec") || json_object_get(user, "auth-provider") ||
	    json_object_get(user, "username"))
		return fail(k, -ENOTSUP, "%s (\"%s\"): exec, auth-provider and basic auth are not "
			    "supported; use client certificates or a token", where, user_name);
	if ((r = path_field(k, user, where, "client-certificate", &a->cert_file)) < 0 ||
	    (r = data_field(k, user, where, "client-certificate-data", &a->cert_data)) < 0 ||
	    (r = path_field(k, user, where, "client-key", &a->key_file)) < 0 ||
	    (r = data_field(k, user, where, "client-key-data", &a->key_data)) < 0 ||
	    (r = str_field(k, user, where, "token", &a->token)) < 0 ||
	    (r = path_field(k, user, where, "tokenFile", &a->token_file)) < 0)
		return r;
	return 0;
}

KP_EXPORT int kp_api_auth_from_kubeconfig(const char *path, const char *context,
					  struct kp_api_auth *ret, char *err, size_t err_size)
{
	struct kc k = { .path = path, .err = err, .err_size = err_size };
	char perr[256] = "", *buf, *slash;
	json_t *docs = NULL;
	size_t n;
	FILE *f;
	int r;

	if (!path || !ret)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	if (err && err_size)
		err[0] = '\0';
	f = fopen(path, "re");
	if (!f)
		return fail(&k, -errno, "%s", strerror(errno));
	buf = malloc(MAX_KUBECONFIG_SIZE + 1);
	n = buf ? fread(buf, 1, MAX_KUBECONFIG_SIZE + 1, f) : 0;
	fclose(f);
	if (!buf)
		return -ENOMEM;
	if (n > MAX_KUBECONFIG_SIZE) {
		free(buf);
		return fail(&k, -EFBIG, "larger than 4 MiB");
	}
	r = kp_yaml_parse(buf, n, &docs, perr, sizeof(perr));
	explicit_bzero(buf, n);		/* it may hold a token */
	free(buf);
	if (r < 0)
		return fail(&k, -EINVAL, "not YAML or JSON: %s", perr);
	k.dir = strdup(path);
	if (!k.dir) {
		json_decref(docs);
		return -ENOMEM;
	}
	slash = strrchr(k.dir, '/');
	if (slash)
		*(slash == k.dir ? slash + 1 : slash) = '\0';
	else
		strcpy(k.dir, ".");
	r = parse_kubeconfig(&k, json_array_get(docs, 0), context, ret);
	json_decref(docs);
	free(k.dir);
	if (r < 0)
		kp_api_auth_clear(ret);
	return r < 0 ? r : 0;
}

KP_EXPORT int kp_api_auth_in_cluster(const char *sa_dir, struct kp_api_auth *ret, char *err,
				     size_t err_size)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");

	if (!ret)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	if (!sa_dir)
		sa_dir = SA_DIR;
	if (!host || !*host || !port || !*port) {
		snprintf(err, err_size, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are "
			 "not set (not in a pod)");
		return -ENOENT;
	}
	ret->server = kp_asprintf(strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
				  port);
	ret->token_file = kp_asprintf("%s/token", sa_dir);
	ret->ca_file = kp_asprintf("%s/ca.crt", sa_dir);
	if (!ret->server || !ret->token_file || !ret->ca_file) {
		kp_api_auth_clear(ret);
		return -ENOMEM;
	}
	if (access(ret->token_file, R_OK) < 0 || access(ret->ca_file, R_OK) < 0) {
		int r = -errno;

		snprintf(err, err_size, "%s: %s", access(ret->token_file, R_OK) < 0 ?
			 ret->token_file : ret->ca_file, strerror(-r));
		kp_api_auth_clear(ret);
		return -ENOENT;
	}
	return 0;
}
