// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyd's settings: one table maps each command-line flag and KubeProxyConfiguration
 * field either to a setting of kproxyd's own or to a data plane's option (declared by the
 * backend, struct kp_option). Flags are read with kube-proxy's syntax (--flag=value,
 * --flag value, --bool, --bool=false, -v=2); the config file is read into the same slots
 * first, so flags override it. Every value is kept as text, checked against its option
 * declaration (the backend's, or the row's own), and handed to the data plane as
 * settings; --help is printed from the same table and the backends' declarations.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kproxyd.h"

#include "kpyaml.h"

#define KP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SEC(title)		{ .section = title }
#define MAX_CONFIG_SIZE (1u << 20)

/* The sections of --help, and the rows: kproxyd's own, then the data planes' options. */
static const struct kpd_flag rows[] = {
	SEC("Configuration"),
	{ .name = "config", .arg = "FILE", .own = { .type = KP_OPT_STRING,
	  .help = "a KubeProxyConfiguration (YAML or JSON); flags override it; SIGHUP re-reads "
		  "its sync periods" } },
	SEC("Sources (with neither --manifests nor --kubeconfig/--master: in-cluster config)"),
	{ .name = "manifests", .arg = "DIR", .own = { .type = KP_OPT_STRING,
	  .help = "read *.json, *.yaml, *.yml in DIR and follow changes" } },
	{ .name = "kubeconfig", .arg = "FILE", .config = "clientConnection.kubeconfig",
	  .own = { .type = KP_OPT_STRING,
		   .help = "list and watch the API server this kubeconfig names" } },
	{ .name = "context", .arg = "NAME", .own = { .type = KP_OPT_STRING,
	  .help = "the kubeconfig context to use (default: current-context)" } },
	{ .name = "master", .arg = "URL", .own = { .type = KP_OPT_STRING,
	  .help = "the API server's address (overrides the kubeconfig's)" } },
	SEC("Node"),
	{ .name = "hostname-override", .arg = "NAME", .config = "hostnameOverride",
	  .own = { .type = KP_OPT_STRING, .help = "this node's name (default: the host name)" } },
	{ .name = "nodeport-addresses", .arg = "CIDRS", .config = "nodePortAddresses",
	  .own = { .type = KP_OPT_CIDR_LIST, .max = 16, .help = "comma-separated ranges whose "
		   "local addresses serve NodePorts (default: every non-loopback address)" } },
	{ .name = "cluster-cidr", .arg = "CIDRS", .config = "clusterCIDR", .option = "cluster-cidr",
	  .own = { .type = KP_OPT_CIDR_LIST, .max = 16 } },
	SEC("Data plane"),
	{ .name = "proxy-mode", .arg = "MODE", .config = "mode", .own = { .type = KP_OPT_STRING,
	  .def = "iptables", .help = "iptables (default), ipvs, userspace, dpdk (when built with "
				     "DPDK) or dryrun" } },
	{ .name = "dry-run", .own = { .type = KP_OPT_BOOL, .def = "false",
	  .help = "compute and serve the state, program nothing" } },
	{ .name = "masquerade-all", .config = "iptables.masqueradeAll", .option = "masquerade-all",
	  .own = { .type = KP_OPT_BOOL } },
	{ .name = "min-sync-period", .arg = "DUR", .own = { .type = KP_OPT_DURATION, .def = "1s",
	  .help = "least time between syncs (also --iptables-min-sync-period, "
		  "--ipvs-min-sync-period)" } },
	{ .name = "iptables-min-sync-period", .arg = "DUR", .alias = "min-sync-period",
	  .config = "iptables.minSyncPeriod", .config_mode = "iptables" },
	{ .name = "ipvs-min-sync-period", .arg = "DUR", .alias = "min-sync-period",
	  .config = "ipvs.minSyncPeriod", .config_mode = "ipvs" },
	{ .name = "sync-period", .arg = "DUR", .own = { .type = KP_OPT_DURATION, .def = "30s",
	  .help = "full resync period (0 disables; also --iptables-sync-period, "
		  "--ipvs-sync-period)" } },
	{ .name = "iptables-sync-period", .arg = "DUR", .alias = "sync-period",
	  .config = "iptables.syncPeriod", .config_mode = "iptables" },
	{ .name = "ipvs-sync-period", .arg = "DUR", .alias = "sync-period",
	  .config = "ipvs.syncPeriod", .config_mode = "ipvs" },
	/* the newer top-level spelling, after the modes' own: it wins */
	{ .name = NULL, .alias = "min-sync-period", .config = "minSyncPeriod" },
	{ .name = NULL, .alias = "sync-period", .config = "syncPeriod" },
	{ .name = "cleanup", .own = { .type = KP_OPT_BOOL, .def = "false",
	  .help = "remove everything the data plane installed, then exit" } },
	SEC("iptables mode"),
	{ .name = "iptables-dispatch-threshold", .arg = "N", .mode = "iptables",
	  .option = "dispatch-threshold", .own = { .type = KP_OPT_UINT } },
	{ .name = "iptables-libiptc", .mode = "iptables", .option = "libiptc",
	  .own = { .type = KP_OPT_BOOL } },
	SEC("ipvs mode"),
	{ .name = "ipvs-scheduler", .arg = "NAME", .config = "ipvs.scheduler", .mode = "ipvs",
	  .option = "scheduler", .own = { .type = KP_OPT_STRING } },
	{ .name = "ipvs-strict-arp", .config = "ipvs.strictARP", .mode = "ipvs",
	  .option = "strict-arp", .own = { .type = KP_OPT_BOOL } },
	{ .name = "ipvs-tcp-timeout", .arg = "DUR", .config = "ipvs.tcpTimeout", .mode = "ipvs",
	  .option = "tcp-timeout", .own = { .type = KP_OPT_DURATION } },
	{ .name = "ipvs-tcpfin-timeout", .arg = "DUR", .config = "ipvs.tcpFinTimeout",
	  .mode = "ipvs", .option = "tcpfin-timeout", .own = { .type = KP_OPT_DURATION } },
	{ .name = "ipvs-udp-timeout", .arg = "DUR", .config = "ipvs.udpTimeout", .mode = "ipvs",
	  .option = "udp-timeout", .own = { .type = KP_OPT_DURATION } },
	SEC("userspace mode"),
	{ .name = "proxy-port-range", .arg = "RANGE", .config = "portRange", .mode = "userspace",
	  .option = "port-range", .own = { .type = KP_OPT_PORT_RANGE } },
	{ .name = "udp-timeout", .arg = "DUR", .config = "udpIdleTimeout", .mode = "userspace",
	  .option = "udp-timeout", .own = { .type = KP_OPT_DURATION } },
	{ .name = "bind-address", .arg = "IP", .config = "bindAddress", .mode = "userspace",
	  .option = "bind", .own = { .type = KP_OPT_STRING } },
	{ .name = "userspace-workers", .arg = "N", .mode = "userspace", .option = "workers",
	  .own = { .type = KP_OPT_UINT } },
	{ .name = "userspace-max-conns", .arg = "N", .mode = "userspace", .option = "max-conns",
	  .own = { .type = KP_OPT_UINT } },
	{ .name = "userspace-grace-period", .arg = "DUR", .mode = "userspace",
	  .option = "grace-period", .own = { .type = KP_OPT_DURATION } },
	SEC("dpdk mode"),
	{ .name = "dpdk-eal-args", .arg = "ARGS", .mode = "dpdk", .option = "eal-args",
	  .own = { .type = KP_OPT_STRING } },
	{ .name = "dpdk-port", .arg = "SPEC", .mode = "dpdk", .option = "port",
	  .own = { .type = KP_OPT_STRING_LIST } },
	{ .name = "dpdk-route", .arg = "\"CIDR via GW\"", .mode = "dpdk", .option = "route",
	  .own = { .type = KP_OPT_STRING_LIST } },
	{ .name = "dpdk-lb-policy", .arg = "POLICY", .mode = "dpdk", .option = "lb-policy",
	  .own = { .type = KP_OPT_STRING } },
	{ .name = "dpdk-max-flows", .arg = "N", .mode = "dpdk", .option = "max-flows",
	  .own = { .type = KP_OPT_UINT } },
	{ .name = "dpdk-mbufs", .arg = "N", .mode = "dpdk", .option = "mbufs",
	  .own = { .type = KP_OPT_UINT } },
	{ .name = "dpdk-idle-sleep-us", .arg = "N", .mode = "dpdk", .option = "idle-sleep-us",
	  .own = { .type = KP_OPT_UINT } },
	{ .name = "dpdk-tcp-timeout", .arg = "DUR", .mode = "dpdk", .option = "tcp-timeout",
	  .own = { .type = KP_OPT_DURATION } },
	{ .name = "dpdk-tcpfin-timeout", .arg = "DUR", .mode = "dpdk", .option = "tcpfin-timeout",
	  .own = { .type = KP_OPT_DURATION } },
	{ .name = "dpdk-syn-timeout", .arg = "DUR", .mode = "dpdk", .option = "syn-timeout",
	  .own = { .type = KP_OPT_DURATION } },
	{ .name = "dpdk-udp-timeout", .arg = "DUR", .mode = "dpdk", .option = "udp-timeout",
	  .own = { .type = KP_OPT_DURATION } },
	SEC("Control"),
	{ .name = "control-socket", .arg = "PATH", .own = { .type = KP_OPT_STRING,
	  .def = "/run/kproxyd.sock", .help = "socket for kproxyctl" } },
	{ .name = "healthz-bind-address", .arg = "A", .config = "healthzBindAddress",
	  .own = { .type = KP_OPT_STRING, .def = "0.0.0.0:10256",
		   .help = "/healthz and /livez on host:port (\"\" disables)" } },
	{ .name = "metrics-bind-address", .arg = "A", .config = "metricsBindAddress",
	  .own = { .type = KP_OPT_STRING, .def = "127.0.0.1:10249",
		   .help = "Prometheus /metrics on host:port (\"\" disables)" } },
	{ .name = "v", .arg = "N", .own = { .type = KP_OPT_UINT, .max = 10, .def = "0",
	  .help = "log verbosity (0: errors, warnings and start-up; 2: changes; 4: library "
		  "debug)" } },
	{ .name = "help", .own = { .type = KP_OPT_BOOL, .help = "print this help and exit" } },
	{ .name = "version", .own = { .type = KP_OPT_BOOL, .help = "print the version and "
								  "exit" } },
};

#define N_ROWS KP_ARRAY_SIZE(rows)

/* The settings so far, as text: one slot per row that holds values (aliases write the
 * row they name). */
struct slot {
	char **v;
	size_t n;
	bool from_flag;
};

static struct slot slots[N_ROWS];

static size_t row_index(const struct kpd_flag *f)
{
	return (size_t)(f - rows);
}

static const struct kpd_flag *row_by_name(const char *name)
{
	for (size_t i = 0; i < N_ROWS; i++)
		if (rows[i].name && !strcmp(rows[i].name, name))
			return &rows[i];
	return NULL;
}

/* The row that holds an alias's values. */
static const struct kpd_flag *target(const struct kpd_flag *f)
{
	return f->alias ? row_by_name(f->alias) : f;
}

static bool is_list(const struct kpd_flag *f)
{
	return f->own.type == KP_OPT_STRING_LIST;
}

/* A backend option's declaration in @mode, or NULL. */
static const struct kp_option *backend_option(struct kp_ctx *ctx, const char *mode,
					      const char *name)
{
	const struct kp_backend_ops *ops = kp_backend_find(ctx, mode);

	for (size_t i = 0; ops && ops->options && i < ops->n_options; i++)
		if (!strcmp(ops->options[i].name, name))
			return &ops->options[i];
	return NULL;
}

struct find_any {
	const char *name;
	const struct kp_option *found;
};

static int find_any_fn(const struct kp_backend_ops *ops, void *userdata)
{
	struct find_any *fa = userdata;

	for (size_t i = 0; ops->options && i < ops->n_options; i++) {
		if (!strcmp(ops->options[i].name, fa->name)) {
			fa->found = &ops->options[i];
			return 1;
		}
	}
	return 0;
}

/* How a row's value is checked: the backend's declaration where there is one (the mode's,
 * else any data plane's), else the row's own. */
static const struct kp_option *decl(struct kp_ctx *ctx, const struct kpd_flag *f,
				    const char *mode)
{
	const struct kp_option *o = NULL;

	if (f->option) {
		o = backend_option(ctx, f->mode ? f->mode : mode, f->option);
		if (!o) {
			struct find_any fa = { f->option, NULL };

			kp_backend_foreach(ctx, find_any_fn, &fa);
			o = fa.found;
		}
	}
	return o ? o : &f->own;
}

static int slot_set(const struct kpd_flag *f, const char *value, bool flag)
{
	struct slot *s = &slots[row_index(f)];
	char *copy = strdup(value);
	char **v;

	if (!copy)
		return -ENOMEM;
	if (!is_list(f) || (flag && !s->from_flag)) {	/* a flag replaces the file's */
		for (size_t i = 0; i < s->n; i++)
			free(s->v[i]);
		s->n = 0;
	}
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v) {
		free(copy);
		return -ENOMEM;
	}
	s->v = v;
	s->v[s->n++] = copy;
	s->from_flag |= flag;
	return 0;
}

void kpd_flags_free(void)
{
	for (size_t i = 0; i < N_ROWS; i++) {
		for (size_t k = 0; k < slots[i].n; k++)
			free(slots[i].v[k]);
		free(slots[i].v);
		slots[i] = (struct slot){ 0 };
	}
}

const char *kpd_get(const char *name)
{
	const struct kpd_flag *f = row_by_name(name);
	const struct slot *s;

	assert(f);
	s = &slots[row_index(f)];
	return s->n ? s->v[s->n - 1] : f->own.def;
}

const char *const *kpd_get_list(const char *name, size_t *ret_n)
{
	const struct kpd_flag *f = row_by_name(name);

	assert(f);
	*ret_n = slots[row_index(f)].n;
	return (const char *const *)slots[row_index(f)].v;
}

bool kpd_get_bool(const char *name)
{
	const char *v = kpd_get(name);

	return v && (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") ||
		     !strcmp(v, "True") || !strcmp(v, "TRUE") || !strcmp(v, "t") ||
		     !strcmp(v, "T"));
}

uint32_t kpd_get_ms(const char *name)
{
	uint32_t ms = 0;

	kp_parse_duration(kpd_get(name), &ms);
	return ms;
}

bool kpd_is_set(const char *name, bool by_flag)
{
	const struct kpd_flag *f = row_by_name(name);

	return f && slots[row_index(f)].n && (!by_flag || slots[row_index(f)].from_flag);
}

/* ---- the command line ---- */

/* Reads @value for the row of --@name (checked later, against the data plane's option). */
static int take_flag(const char *name, const char *value)
{
	const struct kpd_flag *f = row_by_name(name);
	const struct kpd_flag *t;

	if (!f || f->section) {
		fprintf(stderr, "kproxyd: unknown flag: --%s\nTry 'kproxyd --help'.\n", name);
		return -EINVAL;
	}
	t = target(f);
	if (!value && t->own.type != KP_OPT_BOOL) {
		fprintf(stderr, "kproxyd: flag needs an argument: --%s\n", name);
		return -EINVAL;
	}
	if (slot_set(t, value ? value : "true", true) < 0) {
		fprintf(stderr, "kproxyd: out of memory\n");
		return -ENOMEM;
	}
	return 0;
}

int kpd_flags_parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *value = NULL;
		const struct kpd_flag *f;
		char name[64];

		if (!strcmp(a, "--")) {
			if (i + 1 < argc)
				goto unexpected;
			break;
		}
		if (a[0] != '-' || !a[1])
			goto unexpected;
		if (a[1] != '-') {		/* shorthands: -v N, -v=N, -vN, -h */
			if (a[1] != 'v' && a[1] != 'h') {
				fprintf(stderr, "kproxyd: unknown shorthand flag: '%c' in %s\n",
					a[1], a);
				return -EINVAL;
			}
			snprintf(name, sizeof(name), "%s", a[1] == 'v' ? "v" : "help");
			value = a[2] == '=' ? a + 3 : a[2] ? a + 2 : NULL;
		} else {
			a += 2;
			eq = strchr(a, '=');
			snprintf(name, sizeof(name), "%.*s", (int)(eq ? eq - a : (long)strlen(a)), a);
			value = eq ? eq + 1 : NULL;
		}
		f = row_by_name(name);
		if (f && !value && target(f)->own.type != KP_OPT_BOOL && i + 1 < argc)
			value = argv[++i];
		if (take_flag(name, value) < 0)
			return -EINVAL;
	}
	return 0;
unexpected:
	fprintf(stderr, "kproxyd: unexpected argument \"%s\"\nTry 'kproxyd --help'.\n", argv[argc - 1]);
	return -EINVAL;
}

/* Checks every value given against its declaration; the reason names the flag. A row
 * whose syntax differs from the option it feeds is a bug in the table, refused at start
 * (so any test that starts kproxyd catches it). */
int kpd_flags_check(struct kp_ctx *ctx, const char *mode)
{
	char why[256];

	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kp_option *o;

		if (!rows[i].name || rows[i].alias)
			continue;
		o = decl(ctx, &rows[i], mode);
		if (o->type != rows[i].own.type) {
			fprintf(stderr, "kproxyd: --%s is a %s flag but feeds the %s option \"%s\"\n",
				rows[i].name, kp_option_type_name(rows[i].own.type),
				kp_option_type_name(o->type), o->name);
			return -EINVAL;
		}
		for (size_t k = 0; k < slots[i].n; k++) {
			if (kp_option_check(o, slots[i].v[k], why, sizeof(why)) < 0) {
				fprintf(stderr, "kproxyd: --%s: %s\n", rows[i].name, why);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* ---- the data plane's settings ---- */

int kpd_flags_settings(struct kp_ctx *ctx, const char *mode, struct kp_setting **ret,
		       size_t *ret_n)
{
	struct kp_setting *v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kpd_flag *f = &rows[i];
		bool applies;

		if (!f->option || !slots[i].n)
			continue;
		applies = (!f->mode || !strcmp(f->mode, mode)) &&
			  backend_option(ctx, mode, f->option);
		if (!applies) {
			kpd_info("--%s: no effect in --proxy-mode %s", f->name, mode);
			continue;
		}
		for (size_t k = 0; k < slots[i].n; k++) {
			struct kp_setting *nv = realloc(v, (n + 1) * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
			v[n++] = (struct kp_setting){ f->option, slots[i].v[k] };
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The flag that sets option @name of @mode, or NULL. */
const char *kpd_flag_of(const char *mode, const char *name)
{
	for (size_t i = 0; i < N_ROWS; i++)
		if (rows[i].name && rows[i].option && !strcmp(rows[i].option, name) &&
		    (!rows[i].mode || !strcmp(rows[i].mode, mode)))
			return rows[i].name;
	return NULL;
}

/* ---- the config file ---- */

static const char *const config_types[] = {
	[KP_OPT_BOOL] = "not a boolean",
	[KP_OPT_UINT] = "not a number",
	[KP_OPT_DURATION] = "not a duration such as \"30s\" or \"1m0s\"",
	[KP_OPT_STRING] = "not a string",
	[KP_OPT_PORT_RANGE] = "not a string",
	[KP_OPT_CIDR_LIST] = "not a list of CIDRs",
	[KP_OPT_STRING_LIST] = "not a list of strings",
};

/* A field's JSON value as a setting's text; NULL (and @why) when its type is wrong. */
static char *field_text(json_t *v, enum kp_opt_type type, int *why_type)
{
	*why_type = (int)type;
	switch (type) {
	case KP_OPT_BOOL:
		return json_is_boolean(v) ? strdup(json_is_true(v) ? "true" : "false") : NULL;
	case KP_OPT_UINT: {
		char num[24];

		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return NULL;
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		return strdup(num);
	}
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
	for (size_t i = 0; i < N_ROWS; i++)
		if (rows[i].config && (!strcmp(rows[i].config, path) ||
				       (!strncmp(rows[i].config, path, len) &&
					rows[i].config[len] == '.')))
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
		if (!json_is_object(v))
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

/* Applies the fields of one row; @mode is the file's mode ("" or NULL: iptables). */
static int config_row(struct kp_ctx *ctx, json_t *doc, const struct kpd_flag *f,
		      const char *mode, const char *file, bool periods_only, char *err,
		      size_t size)
{
	const struct kpd_flag *t = target(f);
	const struct kp_option *o;
	char why[256];
	json_t *v;
	char *text;
	int wt, r;

	if (f->config_mode && strcmp(f->config_mode, mode && *mode ? mode : "iptables"))
		return 0;
	if (periods_only && strcmp(t->name, "sync-period") && strcmp(t->name, "min-sync-period"))
		return 0;
	r = field_get(doc, f->config, &v, err, size, file);
	if (r < 0 || !v || json_is_null(v))
		return r;
	o = decl(ctx, t, mode && *mode ? mode : "iptables");
	text = field_text(v, o->type, &wt);
	if (!text) {
		snprintf(err, size, "%s: %s: %s", file, f->config, config_types[wt]);
		return -EINVAL;
	}
	if (kp_option_check(o, text, why, sizeof(why)) < 0) {
		if (o->type == KP_OPT_DURATION)
			snprintf(err, size, "%s: %s: %s, not \"%s\"", file, f->config,
				 config_types[KP_OPT_DURATION], text);
		else
			snprintf(err, size, "%s: %s (--%s): %s", file, f->config, t->name, why);
		free(text);
		return -EINVAL;
	}
	if (o != &t->own && o->type == KP_OPT_STRING && !*text) {	/* "": the default */
		free(text);
		return 0;
	}
	r = slot_set(t, text, false);
	free(text);
	return r;
}

int kpd_config_load(struct kp_ctx *ctx, const char *file, bool periods_only,
		    kpd_config_warn_fn warn, char *err, size_t size)
{
	json_t *doc, *mode_v;
	const char *mode;
	int r;

	r = kpd_yaml_load(file, &doc, err, size);
	if (r < 0)
		return r;
	r = check_kind(doc, file, err, size);
	if (r < 0)
		goto out;
	if (warn && !periods_only)
		warn_unknown(doc, file, warn);
	mode_v = json_object_get(doc, "mode");
	mode = json_is_string(mode_v) ? json_string_value(mode_v) : NULL;
	for (size_t i = 0; i < N_ROWS && !r; i++) {
		if (!rows[i].config)
			continue;
		/* a flag wins over the file (kept from before the file was read) */
		if (slots[row_index(target(&rows[i]))].from_flag)
			continue;
		r = config_row(ctx, doc, &rows[i], mode, file, periods_only, err, size);
	}
out:
	json_decref(doc);
	return r;
}

/* ---- --help ---- */

/* One flag: the name at the left, its help wrapped at 80 columns beside it. */
static void print_row(FILE *out, const char *name, const char *arg, const char *help,
		      const char *def, bool boolean)
{
	char left[64], text[512];
	const char *p = text;
	int n = snprintf(left, sizeof(left), "      --%s%s%s", name, arg ? " " : "",
			 arg ? arg : "");

	snprintf(text, sizeof(text), "%s%s%s%s", help ? help : "",
		 def && *def && !boolean ? " (default " : "", def && *def && !boolean ? def : "",
		 def && *def && !boolean ? ")" : "");
	fprintf(out, n >= 34 ? "%s\n%34s" : "%-34s", left, "");
	while (*p) {
		size_t len = strlen(p), cut = len;

		if (len > 46) {
			cut = 46;
			while (cut && p[cut] != ' ')
				cut--;
			if (!cut)
				cut = 46;
		}
		fprintf(out, "%.*s\n", (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
		if (*p)
			fprintf(out, "%34s", "");
	}
	if (!*text)
		fputc('\n', out);
}

void kpd_flags_usage(FILE *out, struct kp_ctx *ctx, const char *only_mode)
{
	bool skip = false;

	fputs("Usage: kproxyd [OPTIONS]\n"
	      "Run in place of kube-proxy: program Service and EndpointSlice objects into a data "
	      "plane.\n", out);
	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kpd_flag *f = &rows[i];
		const struct kp_option *o;

		if (f->section) {
			/* a data plane's section: shown when it is built (and asked for) */
			const char *m = strstr(f->section, " mode");
			char mode[32];

			snprintf(mode, sizeof(mode), "%.*s", m ? (int)(m - f->section) : 0,
				 f->section);
			skip = m && (!kp_backend_find(ctx, mode) ||
				     (only_mode && strcmp(mode, only_mode)));
			if (!skip)
				fprintf(out, "%s:\n", f->section);
			continue;
		}
		if (skip || !f->name || f->alias)
			continue;
		o = decl(ctx, f, f->mode ? f->mode : only_mode ? only_mode : "iptables");
		print_row(out, f->name, f->arg, o->help ? o->help : f->own.help, o->def,
			  o->type == KP_OPT_BOOL);
	}
	fputs("  -v N, -h: short for --v N, --help. Durations take a unit: 500ms, 1s, 2m, 1h "
	      "(1m30s also works).\nBooleans: --flag, --flag=true, --flag=false. "
	      "--proxy-mode MODE --help shows that data plane's flags only.\n", out);
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
