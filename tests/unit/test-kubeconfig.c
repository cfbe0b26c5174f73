/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kubeconfig and in-cluster auth (lib/kubeconfig.c): kubeconfigs written into a temporary
 * directory and read back as kubectl would, the refusals named by field, and a token that
 * never shows up in an error message.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kproxy/api.h>

#include "tap.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TOKEN "s3cr3t-T0KEN-d0-n0t-print"

static char dir[PATH_MAX];
static char err[1024];

static void put(const char *name, const char *text)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f)) {
		printf("Bail out! write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static const char *at(const char *name)
{
	static char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

/* Writes @text as kubeconfig @name and reads it; err holds the message. */
static int load(const char *name, const char *text, const char *context, struct kp_api_auth *a)
{
	put(name, text);
	memset(err, 0, sizeof(err));
	return kp_api_auth_from_kubeconfig(at(name), context, a, err, sizeof(err));
}

/* On a failure: the error names @want, the token is not in it, nothing is returned. */
static void refused(int r, int want_r, const struct kp_api_auth *a, const char *want,
		    const char *what)
{
	is_int(r, want_r, "%s: refused with %s", what, strerror(-want_r));
	if (!ok(strstr(err, want) != NULL, "%s: the message names %s", what, want))
		printf("#   message: %s\n", err);
	ok(!strstr(err, TOKEN) && !strstr(err, "123456789"), "%s: no token in the message", what);
	ok(!a->server && !a->token && !a->ca_data && !a->cert_file, "%s: nothing returned", what);
}

static const char two_contexts[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"current-context: b\n"
	"contexts:\n"
	"- name: a\n"
	"  context: {cluster: ca, user: ua, namespace: kube-system}\n"
	"- name: b\n"
	"  context:\n"
	"    cluster: cb\n"
	"    user: ub\n"
	"clusters:\n"
	"- name: ca\n"
	"  cluster:\n"
	"    server: https://a.example:6443/\n"
	"    insecure-skip-tls-verify: true\n"
	"- name: cb\n"
	"  cluster:\n"
	"    server: https://b.example/prefix/\n"
	"    tls-server-name: kubernetes.default\n"
	"users:\n"
	"- name: ua\n"
	"  user:\n"
	"    tokenFile: tokens/ua\n"
	"- name: ub\n"
	"  user:\n"
	"    token: " TOKEN "\n";

static void test_contexts(void)
{
	struct kp_api_auth a;
	int r;

	r = load("two", two_contexts, NULL, &a);
	is_int(r, 0, "current-context: read");
	is_str(a.server, "https://b.example/prefix", "current-context b: cluster cb's server, "
	       "one trailing '/' stripped, path prefix kept");
	is_str(a.token, TOKEN, "current-context b: user ub's token");
	ok(!a.token_file, "current-context b: no token file");
	is_str(a.tls_server_name, "kubernetes.default", "tls-server-name");
	ok(!a.insecure, "insecure-skip-tls-verify absent: verify");
	kp_api_auth_clear(&a);
	ok(!a.server && !a.token, "kp_api_auth_clear() zeroes the struct");

	r = load("two", two_contexts, "a", &a);
	is_int(r, 0, "--context a: read");
	is_str(a.server, "https://a.example:6443", "--context a: cluster ca's server");
	ok(!a.token, "--context a: no inline token");
	is_str(a.token_file, at("tokens/ua"), "--context a: tokenFile relative to the kubeconfig");
	ok(a.insecure, "insecure-skip-tls-verify: true is honoured");
	kp_api_auth_clear(&a);

	r = load("two", two_contexts, "", &a);
	is_int(r, 0, "--context \"\" means current-context");
	is_str(a.server, "https://b.example/prefix", "--context \"\": cluster cb");
	kp_api_auth_clear(&a);
	kp_api_auth_clear(NULL);
}

static const char pem_cert[] =
	"-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpE=\n-----END CERTIFICATE-----\n";
static const char pem_key[] =
	"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
static const char pem_ca[] = "-----BEGIN CERTIFICATE-----\nCA/+x\n-----END CERTIFICATE-----\n";

static void test_inline_data(void)
{
	/* the CA wrapped over lines in a literal block, as editors and kubectl may write it */
	static const char kc[] =
		"current-context: c\n"
		"contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		"clusters:\n"
		"- name: k\n"
		"  cluster:\n"
		"    server: https://10.0.0.1:6443\n"
		"    certificate-authority-data: |\n"
		"      LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNB\n"
		"      Lyt4Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K\n"
		"users:\n"
		"- name: u\n"
		"  user:\n"
		"    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrVENCK3dJSkF"
		"LSEJmcEU9Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K\n"
		"    client-key-data: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1DNENBUUF3QlFZREsyVndCQ0l"
		"FSUE9PQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==\n";
	struct kp_api_auth a;
	int r;

	r = load("inline", kc, NULL, &a);
	is_int(r, 0, "inline data: read");
	ok(a.ca_data && strlen(a.ca_data) == strlen(pem_ca) &&
	   !memcmp(a.ca_data, pem_ca, sizeof(pem_ca)),
	   "certificate-authority-data over two lines decoded to the exact bytes");
	ok(a.cert_data && !memcmp(a.cert_data, pem_cert, sizeof(pem_cert)),
	   "client-certificate-data decoded to the exact bytes");
	ok(a.key_data && !memcmp(a.key_data, pem_key, sizeof(pem_key)),
	   "client-key-data decoded to the exact bytes (one '=' of padding in the PEM, two "
	   "after the base64)");
	ok(!a.ca_file && !a.cert_file && !a.key_file, "inline data: no file paths");
	ok(!a.token && !a.token_file, "inline data: no token");
	kp_api_auth_clear(&a);
}

/* A one-cluster kubeconfig whose cluster carries @line (and a user with the token). */
static int with_cluster_line(const char *line, struct kp_api_auth *a)
{
	char kc[2048];

	snprintf(kc, sizeof(kc),
		 "current-context: c\n"
		 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		 "clusters:\n"
		 "- name: k\n"
		 "  cluster:\n"
		 "    server: https://h\n"
		 "    %s\n"
		 "users: [{name: u, user: {token: " TOKEN "}}]\n", line);
	return load("cluster", kc, NULL, a);
}

static void test_base64(void)
{
	/* RFC 4648 section 10 vectors, and the two last letters of the alphabet */
	static const struct {
		const char *in, *want;
	} good[] = {
		{ "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" }, { "Zm9vYg==", "foob" },
		{ "Zm9vYmE=", "fooba" }, { "Zm9vYmFy", "foobar" }, { "Pz8+", "?\?>" },
		{ "Pz8/", "?\?\?" }, { "\"Zm9v YmE=\"", "fooba" },
	};
	static const char *const bad[] = {
		"Zg",		/* padding left out */
		"Zg=",		/* not enough padding */
		"Zm9v====",	/* padding without data */
		"Zm9vY",	/* a lone character */
		"Zh==",		/* bits after the last byte not zero */
		"Zg==Zg==",	/* data after padding */
		"Zm9v!",	/* not in the alphabet */
		"Zm9v-_",	/* the URL alphabet */
		"AA==",		/* a NUL byte: not PEM text */
	};
	char line[128], what[128];
	struct kp_api_auth a;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		snprintf(line, sizeof(line), "certificate-authority-data: %s", good[i].in);
		r = with_cluster_line(line, &a);
		is_int(r, 0, "base64 %s: accepted", good[i].in);
		is_str(a.ca_data, good[i].want, "base64 %s: decoded", good[i].in);
		kp_api_auth_clear(&a);
	}
	r = with_cluster_line("certificate-authority-data: \"\"", &a);
	is_int(r, 0, "empty certificate-authority-data: accepted");
	ok(!a.ca_data, "empty certificate-authority-data: as if absent");
	kp_api_auth_clear(&a);
	r = with_cluster_line("certificate-authority-data: \" \"", &a);
	is_int(r, 0, "blank certificate-authority-data: accepted");
	ok(!a.ca_data, "blank certificate-authority-data: as if absent, not \"\"");
	kp_api_auth_clear(&a);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(line, sizeof(line), "certificate-authority-data: \"%s\"", bad[i]);
		snprintf(what, sizeof(what), "bad base64 %s", bad[i]);
		r = with_cluster_line(line, &a);
		refused(r, -EINVAL, &a, "clusters[0].cluster.certificate-authority-data", what);
	}
	/* the file is named too, and a private key's failure does not leak it */
	r = load("badkey",
		 "current-context: c\n"
		 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		 "clusters: [{name: k, cluster: {server: https://h}}]\n"
		 "users: [{name: u, user: {token: " TOKEN ", client-key-data: \"%%%\"}}]\n",
		 NULL, &a);
	refused(r, -EINVAL, &a, "users[0].user.client-key-data", "bad client-key-data");
	ok(!strncmp(err, at("badkey"), strlen(at("badkey"))), "bad client-key-data: the message "
	   "starts with the kubeconfig's path");
}

static void test_paths(void)
{
	static const char kc[] =
		"current-context: c\n"
		"contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		"clusters:\n"
		"- name: k\n"
		"  cluster: {server: 'https://h:6443', certificate-authority: pki/ca.crt}\n"
		"users:\n"
		"- name: u\n"
		"  user:\n"
		"    client-certificate: ../elsewhere/c.crt\n"
		"    client-key: /etc/kproxyd/c.key\n"
		"    token: " TOKEN "\n"
		"    tokenFile: token\n";
	char sub[PATH_MAX + 64], cwd[PATH_MAX];
	struct kp_api_auth a;
	int r;

	snprintf(sub, sizeof(sub), "%s/conf", dir);
	if (mkdir(sub, 0700) < 0 && errno != EEXIST)
		printf("# mkdir %s: %s\n", sub, strerror(errno));
	r = load("conf/kc", kc, NULL, &a);
	is_int(r, 0, "file paths: read");
	is_str(a.ca_file, at("conf/pki/ca.crt"), "certificate-authority relative to the "
	       "kubeconfig's directory, not the working directory");
	is_str(a.cert_file, at("conf/../elsewhere/c.crt"), "client-certificate with ../");
	is_str(a.key_file, "/etc/kproxyd/c.key", "absolute client-key kept as it is");
	is_str(a.token, TOKEN, "token and tokenFile: the token");
	is_str(a.token_file, at("conf/token"), "token and tokenFile: the file, resolved");
	ok(!a.ca_data && !a.cert_data && !a.key_data, "file paths: no inline data");
	kp_api_auth_clear(&a);

	/* a kubeconfig named without a directory: paths relative to the working directory */
	if (!getcwd(cwd, sizeof(cwd)) || chdir(sub) < 0) {
		ok(0, "chdir %s: %s", sub, strerror(errno));
		return;
	}
	r = kp_api_auth_from_kubeconfig("kc", NULL, &a, err, sizeof(err));
	is_int(r, 0, "kubeconfig without a directory: read");
	is_str(a.ca_file, "./pki/ca.crt", "kubeconfig without a directory: ./ prefix");
	kp_api_auth_clear(&a);
	if (chdir(cwd) < 0)
		printf("# chdir back: %s\n", strerror(errno));
}

static void test_insecure(void)
{
	struct kp_api_auth a;
	int r;

	r = with_cluster_line("insecure-skip-tls-verify: false", &a);
	is_int(r, 0, "insecure-skip-tls-verify: false: read");
	ok(!a.insecure, "insecure-skip-tls-verify: false: verify");
	kp_api_auth_clear(&a);
	r = with_cluster_line("insecure-skip-tls-verify: True", &a);
	is_int(r, 0, "insecure-skip-tls-verify: True (YAML boolean): read");
	ok(a.insecure, "insecure-skip-tls-verify: True: skip");
	kp_api_auth_clear(&a);
	r = with_cluster_line("insecure-skip-tls-verify: \"true\"", &a);
	refused(r, -EINVAL, &a, "clusters[0].cluster.insecure-skip-tls-verify: not a boolean",
		"insecure-skip-tls-verify as a string");
	r = with_cluster_line("insecure-skip-tls-verify: 1", &a);
	refused(r, -EINVAL, &a, "insecure-skip-tls-verify: not a boolean",
		"insecure-skip-tls-verify as a number");
}

/* A token that would end or split the Authorization header: refused, by offset. */
static void test_bad_token(void)
{
	static const char *const bad[] = { TOKEN "\\r\\nX-Injected: 1", TOKEN " x", TOKEN "\\t",
					   TOKEN "\\u00e9" };
	static const char *const what[] = { "a token holding CR LF", "a token holding a space",
					    "a token holding a tab", "a token holding U+00E9" };
	char text[512], want[96];
	struct kp_api_auth a;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(text, sizeof(text), "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
			 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
			 "clusters: [{name: k, cluster: {server: 'https://k:6443'}}]\n"
			 "users: [{name: u, user: {token: \"%s\"}}]\n", bad[i]);
		r = load("kc-badtoken", text, NULL, &a);
		snprintf(want, sizeof(want), "users[0].user.token: user \"u\": byte %zu is a "
			 "space, control character or not ASCII", strlen(TOKEN));
		refused(r, -EINVAL, &a, want, what[i]);
	}
}

static void test_wrong_types(void)
{
	char want[PATH_MAX + 128];
	struct kp_api_auth a;
	int r;

	r = load("types",
		 "current-context: c\n"
		 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		 "clusters: [{name: k, cluster: {server: 6443}}]\n"
		 "users: [{name: u, user: {token: " TOKEN "}}]\n", NULL, &a);
	snprintf(want, sizeof(want), "%s: clusters[0].cluster.server: not a string", at("types"));
	refused(r, -EINVAL, &a, "clusters[0].cluster.server", "server as a number");
	is_str(err, want, "server as a number: the whole message");

	r = load("types", "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
		 "clusters: {k: {server: https://h}}\n", NULL, &a);
	refused(r, -EINVAL, &a, "clusters: not a list", "clusters as a mapping");
	r = load("types", "current-context: c\ncontexts: [{name: c, context: {cluster: [k]}}]\n",
		 NULL, &a);
	refused(r, -EINVAL, &a, "contexts[0].context.cluster: not a string", "cluster as a list");
	r = load("types", "current-context: [c]\n", NULL, &a);
	refused(r, -EINVAL, &a, "current-context: not a string", "current-context as a list");
	r = load("types", "current-context: c\ncontexts: [{name: 5, context: {cluster: k}}]\n",
		 NULL, &a);
	refused(r, -EINVAL, &a, "contexts[0].name: not a string", "a context named by a number");
	r = load("types", "current-context: c\ncontexts: [c]\n", NULL, &a);
	refused(r, -EINVAL, &a, "contexts[0]: not a mapping", "a context as a string");
	r = load("types",
		 "current-context: c\n"
		 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		 "clusters: [{name: k, cluster: {server: https://h}}]\n"
		 "users: [{name: u, user: {token: 123456789}}]\n", NULL, &a);
	refused(r, -EINVAL, &a, "users[0].user.token: not a string", "token as a number");
	r = load("types",
		 "current-context: c\n"
		 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		 "clusters: [{name: k, cluster: {server: https://h}}]\n"
		 "users: [{name: u, user: {token: " TOKEN ", client-certificate: [a]}}]\n",
		 NULL, &a);
	refused(r, -EINVAL, &a, "users[0].user.client-certificate: not a string",
		"client-certificate as a list beside a token");
	r = load("types",
		 "current-context: c\n"
		 "contexts: [{name: c, context: {cluster: k}}]\n"
		 "clusters: [{name: k, cluster: {server: https://h, certificate-authority: {}}}]\n",
		 NULL, &a);
	refused(r, -EINVAL, &a, "clusters[0].cluster.certificate-authority: not a string",
		"certificate-authority as a mapping");
	r = load("types", "- a\n- b\n", NULL, &a);
	refused(r, -EINVAL, &a, "not a kubeconfig", "a list at the top");
	r = load("types", "current-context: c\ncontexts: [{name: c, context: {cluster: k\n",
		 NULL, &a);
	refused(r, -EINVAL, &a, "not YAML or JSON", "broken YAML");
	r = load("types", "users: [{name: u, user: {token: " TOKEN "}}]\nfoo: [\n", NULL, &a);
	refused(r, -EINVAL, &a, "not YAML or JSON", "broken YAML after a token");
}

static const char missing_base[] =
	"contexts:\n"
	"- {name: c, context: {cluster: k, user: u}}\n"
	"- {name: nocluster, context: {cluster: gone, user: u}}\n"
	"- {name: nouser, context: {cluster: k, user: gone}}\n"
	"- {name: noclusterfield, context: {user: u}}\n"
	"- {name: anonymous, context: {cluster: k}}\n"
	"clusters: [{name: k, cluster: {server: https://h}}, {name: noserver, cluster: {}}]\n"
	"users: [{name: u, user: {token: " TOKEN "}}]\n";

static void test_missing(void)
{
	struct kp_api_auth a;
	int r;

	r = load("missing", missing_base, NULL, &a);
	refused(r, -ENOENT, &a, "no current-context", "no current-context");
	r = load("missing", missing_base, "other", &a);
	refused(r, -ENOENT, &a, "context \"other\" not found", "missing context");
	r = load("missing", missing_base, "nocluster", &a);
	refused(r, -ENOENT, &a, "cluster \"gone\" not found", "missing cluster");
	r = load("missing", missing_base, "nouser", &a);
	refused(r, -ENOENT, &a, "user \"gone\" not found", "missing user");
	r = load("missing", missing_base, "noclusterfield", &a);
	refused(r, -ENOENT, &a, "contexts[3].context.cluster: missing", "context without cluster");
	r = load("missing", "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
		 "clusters: [{name: k, cluster: {insecure-skip-tls-verify: true}}]\n", NULL, &a);
	refused(r, -ENOENT, &a, "clusters[0].cluster.server: missing", "cluster without server");

	r = load("missing", missing_base, "anonymous", &a);
	is_int(r, 0, "context without user: read");
	ok(a.server && !a.token && !a.token_file && !a.cert_file && !a.cert_data,
	   "context without user: no credentials");
	kp_api_auth_clear(&a);

	memset(&a, 0, sizeof(a));
	r = kp_api_auth_from_kubeconfig(at("no-such-file"), NULL, &a, err, sizeof(err));
	refused(r, -ENOENT, &a, "no-such-file", "missing file");
	r = kp_api_auth_from_kubeconfig(dir, NULL, &a, err, sizeof(err));
	ok(r < 0 && strstr(err, dir), "a directory as kubeconfig: refused (%d) naming it", r);
	is_int(kp_api_auth_from_kubeconfig(NULL, NULL, &a, err, sizeof(err)), -EINVAL,
	       "NULL path: -EINVAL");
	r = load("missing", missing_base, "c", &a);
	is_int(r, 0, "no error buffer needed: read");
	kp_api_auth_clear(&a);
	r = kp_api_auth_from_kubeconfig(at("missing"), "gone", &a, NULL, 0);
	is_int(r, -ENOENT, "no error buffer: still -ENOENT");
}

static void test_unsupported(void)
{
	static const struct {
		const char *user, *key;
	} cases[] = {
		{ "{token: " TOKEN ", exec: {apiVersion: client.authentication.k8s.io/v1, "
		  "command: aws}}", "exec" },
		{ "{auth-provider: {name: oidc}, token: " TOKEN "}", "auth-provider" },
		{ "{username: admin, password: hunter2}", "username" },
		{ "{password: hunter2}", "password" },
	};
	char kc[1024], want[128];
	struct kp_api_auth a;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		snprintf(kc, sizeof(kc),
			 "current-context: c\n"
			 "contexts: [{name: c, context: {cluster: k, user: eks-admin}}]\n"
			 "clusters: [{name: k, cluster: {server: https://h}}]\n"
			 "users:\n"
			 "- {name: other, user: {token: " TOKEN "}}\n"
			 "- {name: eks-admin, user: %s}\n", cases[i].user);
		r = load("unsupported", kc, NULL, &a);
		snprintf(want, sizeof(want), "users[1].user.%s: user \"eks-admin\"", cases[i].key);
		refused(r, -ENOTSUP, &a, want, cases[i].key);
		ok(!strstr(err, "hunter2"), "%s: no password in the message", cases[i].key);
	}
	r = with_cluster_line("tls-server-name: null", &a);
	is_int(r, 0, "a null field is as if absent");
	ok(!a.tls_server_name, "a null field: NULL");
	kp_api_auth_clear(&a);
}

static void test_json(void)
{
	static const char kc[] =
		"{\"apiVersion\": \"v1\", \"kind\": \"Config\", \"current-context\": \"j\",\n"
		" \"contexts\": [{\"name\": \"j\", \"context\": {\"cluster\": \"jc\","
		" \"user\": \"ju\"}}],\n"
		" \"clusters\": [{\"name\": \"jc\", \"cluster\": {\"server\": \"https://[fd00::1]:6443\","
		" \"certificate-authority-data\": \"Zm9vYmFy\", \"insecure-skip-tls-verify\": false}}],\n"
		" \"users\": [{\"name\": \"ju\", \"user\": {\"token\": \"" TOKEN "\","
		" \"client-key\": \"k.pem\"}}]}\n";
	struct kp_api_auth a;
	int r;

	r = load("kc.json", kc, NULL, &a);
	is_int(r, 0, "JSON kubeconfig: read");
	is_str(a.server, "https://[fd00::1]:6443", "JSON kubeconfig: server");
	is_str(a.ca_data, "foobar", "JSON kubeconfig: certificate-authority-data decoded");
	is_str(a.token, TOKEN, "JSON kubeconfig: token");
	is_str(a.key_file, at("k.pem"), "JSON kubeconfig: client-key resolved");
	ok(!a.insecure, "JSON kubeconfig: insecure false");
	kp_api_auth_clear(&a);
}

static void test_in_cluster(void)
{
	char sa[PATH_MAX + 64];
	struct kp_api_auth a;
	int r;

	snprintf(sa, sizeof(sa), "%s/sa", dir);
	if (mkdir(sa, 0700) < 0 && errno != EEXIST)
		printf("# mkdir %s: %s\n", sa, strerror(errno));
	put("sa/token", TOKEN);
	put("sa/ca.crt", pem_ca);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	memset(err, 0, sizeof(err));
	r = kp_api_auth_in_cluster(sa, &a, err, sizeof(err));
	is_int(r, -ENOENT, "in-cluster without the variables: -ENOENT");
	ok(strstr(err, "KUBERNETES_SERVICE_HOST") != NULL, "in-cluster: names the variable");

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	r = kp_api_auth_in_cluster(sa, &a, err, sizeof(err));
	is_int(r, -ENOENT, "in-cluster without the port: -ENOENT");
	ok(strstr(err, "KUBERNETES_SERVICE_PORT") != NULL, "in-cluster: names the port variable");

	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	r = kp_api_auth_in_cluster(sa, &a, err, sizeof(err));
	is_int(r, 0, "in-cluster: read");
	is_str(a.server, "https://10.96.0.1:443", "in-cluster: server");
	is_str(a.token_file, at("sa/token"), "in-cluster: token as a file (rotation followed)");
	is_str(a.ca_file, at("sa/ca.crt"), "in-cluster: CA file");
	ok(!a.token && !a.insecure, "in-cluster: no inline token, verified");
	kp_api_auth_clear(&a);

	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	r = kp_api_auth_in_cluster(sa, &a, err, sizeof(err));
	is_int(r, 0, "in-cluster IPv6: read");
	is_str(a.server, "https://[fd00:10:96::1]:443", "in-cluster IPv6: host bracketed");
	kp_api_auth_clear(&a);
	setenv("KUBERNETES_SERVICE_HOST", "[fd00:10:96::1]", 1);
	r = kp_api_auth_in_cluster(sa, &a, err, sizeof(err));
	is_int(r, 0, "in-cluster IPv6 in brackets: read");
	is_str(a.server, "https://[fd00:10:96::1]:443", "in-cluster IPv6 in brackets: not twice");
	kp_api_auth_clear(&a);

	unlink(at("sa/token"));
	r = kp_api_auth_in_cluster(sa, &a, err, sizeof(err));
	is_int(r, -ENOENT, "in-cluster without a token file: -ENOENT");
	ok(strstr(err, at("sa/token")) != NULL, "in-cluster: names the token file (%s)", err);
	ok(!a.server && !a.token_file, "in-cluster failure: nothing returned");
	put("sa/token", TOKEN);
	unlink(at("sa/ca.crt"));
	r = kp_api_auth_in_cluster(sa, &a, err, sizeof(err));
	is_int(r, -ENOENT, "in-cluster without ca.crt: -ENOENT");
	ok(strstr(err, "ca.crt") != NULL && !strstr(err, TOKEN), "in-cluster: names ca.crt (%s)",
	   err);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/kp-kubeconfig-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	test_contexts();
	test_inline_data();
	test_base64();
	test_paths();
	test_insecure();
	test_bad_token();
	test_wrong_types();
	test_missing();
	test_unsupported();
	test_json();
	test_in_cluster();
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
