// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kube-proxy's configuration file: a KubeProxyConfiguration in YAML or JSON. The fields
 * a replacement can honour are read and type-checked (a wrong type is refused with the
 * field's path); every other field is reported through the warning callback, because
 * silently ignoring a setting an operator wrote is worse than a noisy log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <kproxy/config.h>

#include "internal.h"

#define MAX_CONFIG_SIZE (1u << 20)

KP_EXPORT int kp_parse_port_range(const char *s, uint16_t *ret_lo, uint16_t *ret_hi)
{
	unsigned long lo, hi;
	char *end;

	if (!s || !ret_lo || !ret_hi)
		return -EINVAL;
	lo = hi = 0;
	if (*s) {
		lo = hi = strtoul(s, &end, 10);
		if (end == s)
			return -EINVAL;
		if (*end == '-' || *end == '+') {
			char op = *end, *p = end + 1;

			hi = strtoul(p, &end, 10);
			if (end == p)
				return -EINVAL;
			if (op == '+')
				hi += lo;
		}
		if (*end || lo > 65535 || hi > 65535 || hi < lo || (lo == 0 && hi != 0))
			return -EINVAL;
	}
	*ret_lo = (uint16_t)lo;
	*ret_hi = (uint16_t)hi;
	return 0;
}

KP_EXPORT int kp_parse_duration(const char *s, uint32_t *ret_ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = { { "ns", 1e-6 }, { "us", 1e-3 }, { "\xc2\xb5s", 1e-3 }, { "ms", 1 },
		      { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	double total = 0;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "0")) {
		*ret_ms = 0;
		return 0;
	}
	while (*s) {
		char *end;
		double v = strtod(s, &end);
		size_t len = 0, i;

		if (end == s || v < 0 || *s == '+' || *s == '-')
			return -EINVAL;
		while ((end[len] >= 'a' && end[len] <= 'z') || (unsigned char)end[len] >= 0x80)
			len++;
		for (i = 0; i < KP_ARRAY_SIZE(units); i++)
			if (strlen(units[i].unit) == len && !strncmp(end, units[i].unit, len))
				break;
		if (i == KP_ARRAY_SIZE(units))
			return -EINVAL;
		total += v * units[i].ms;
		s = end + len;
	}
	if (total > UINT32_MAX)
		return -EINVAL;
	*ret_ms = (uint32_t)(total + 0.5);
	return 0;
}

KP_EXPORT void kp_proxy_config_clear(struct kp_proxy_config *c)
{
	if (!c)
		return;
	free(c->kubeconfig);
	free(c->master);
	free(c->hostname_override);
	free(c->cluster_cidr);
	free(c->mode);
	free(c->healthz_bind_address);
	free(c->metrics_bind_address);
	free(c->nodeport_addresses);
	free(c->ipvs_scheduler);
	free(c->bind_address);
	free(c->port_range);
	memset(c, 0, sizeof(*c));
}

struct reader {
	const char *path;
	char *err;
	size_t err_size;
	kp_config_warn_fn warn;
	void *userdata;
};

static int bad(struct reader *rd, const char *field, const char *what)
{
	snprintf(rd->err, rd->err_size, "%s: %s: %s", rd->path, field, what);
	return -EINVAL;
}

static int get_str(struct reader *rd, json_t *v, const char *field, char **out)
{
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(rd, field, "not a string");
	free(*out);
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

static int get_duration(struct reader *rd, json_t *v, const char *field, uint32_t *out,
			bool *has)
{
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || kp_parse_duration(json_string_value(v), out) < 0)
		return bad(rd, field, "not a duration such as \"30s\" or \"1m0s\"");
	*has = true;
	return 0;
}

/* Warns about every key of @obj not in @known (a NULL-terminated list). */
static void warn_unknown(struct reader *rd, json_t *obj, const char *prefix,
			 const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool found = false;
		char field[256];

		for (size_t i = 0; known[i] && !found; i++)
			found = !strcmp(key, known[i]);
		if (found || !rd->warn)
			continue;
		snprintf(field, sizeof(field), "%s%s", prefix, key);
		rd->warn(rd->path, field, rd->userdata);
	}
}

static int read_section(struct reader *rd, json_t *doc, const char *name, json_t **ret)
{
	*ret = json_object_get(doc, name);
	if (*ret && !json_is_object(*ret) && !json_is_null(*ret))
		return bad(rd, name, "not an object");
	if (json_is_null(*ret))
		*ret = NULL;
	return 0;
}

static int parse(struct reader *rd, json_t *doc, struct kp_proxy_config *c)
{
	static const char *const top[] = {
		"apiVersion", "kind", "clientConnection", "hostnameOverride", "clusterCIDR",
		"mode", "healthzBindAddress", "metricsBindAddress", "nodePortAddresses",
		"iptables", "ipvs", "syncPeriod", "minSyncPeriod", "bindAddress", "portRange",
		"udpIdleTimeout", NULL
	};
	static const char *const client[] = { "kubeconfig", NULL };
	static const char *const ipt[] = { "masqueradeAll", "syncPeriod", "minSyncPeriod", NULL };
	static const char *const ipvs_known[] = { "scheduler", "syncPeriod", "minSyncPeriod",
						  "strictARP", "tcpTimeout", "tcpFinTimeout",
						  "udpTimeout", NULL };
	json_t *cc, *it, *iv, *v;
	const char *s;
	int r = 0;

	if (!json_is_object(doc))
		return bad(rd, "(document)", "not a KubeProxyConfiguration object");
	s = json_string_value(json_object_get(doc, "kind"));
	if (json_object_get(doc, "kind") && (!s || strcmp(s, "KubeProxyConfiguration")))
		return bad(rd, "kind", "not KubeProxyConfiguration");
	s = json_string_value(json_object_get(doc, "apiVersion"));
	if (json_object_get(doc, "apiVersion") &&
	    (!s || strcmp(s, "kubeproxy.config.k8s.io/v1alpha1")))
		return bad(rd, "apiVersion", "not kubeproxy.config.k8s.io/v1alpha1");
	warn_unknown(rd, doc, "", top);
	if ((r = read_section(rd, doc, "clientConnection", &cc)) < 0 ||
	    (r = read_section(rd, doc, "iptables", &it)) < 0 ||
	    (r = read_section(rd, doc, "ipvs", &iv)) < 0)
		return r;
	if (cc) {
		warn_unknown(rd, cc, "clientConnection.", client);
		r = get_str(rd, json_object_get(cc, "kubeconfig"), "clientConnection.kubeconfig",
			    &c->kubeconfig);
	}
	if (!r)
		r = get_str(rd, json_object_get(doc, "hostnameOverride"), "hostnameOverride",
			    &c->hostname_override);
	if (!r)
		r = get_str(rd, json_object_get(doc, "clusterCIDR"), "clusterCIDR",
			    &c->cluster_cidr);
	if (!r)
		r = get_str(rd, json_object_get(doc, "mode"), "mode", &c->mode);
	if (!r)
		r = get_str(rd, json_object_get(doc, "healthzBindAddress"), "healthzBindAddress",
			    &c->healthz_bind_address);
	if (!r)
		r = get_str(rd, json_object_get(doc, "metricsBindAddress"), "metricsBindAddress",
			    &c->metrics_bind_address);
	if (!r)
		r = get_str(rd, json_object_get(doc, "bindAddress"), "bindAddress",
			    &c->bind_address);
	if (!r)
		r = get_str(rd, json_object_get(doc, "portRange"), "portRange", &c->port_range);
	if (!r) {
		bool has;

		r = get_duration(rd, json_object_get(doc, "udpIdleTimeout"), "udpIdleTimeout",
				 &c->udp_idle_timeout_ms, &has);
	}
	if (r)
		return r;
	v = json_object_get(doc, "nodePortAddresses");
	if (v && !json_is_null(v)) {
		size_t i, len = 1;
		json_t *a;

		if (!json_is_array(v))
			return bad(rd, "nodePortAddresses", "not a list of CIDRs");
		json_array_foreach(v, i, a) {
			if (!json_is_string(a)) {
				char f[64];

				snprintf(f, sizeof(f), "nodePortAddresses[%zu]", i);
				return bad(rd, f, "not a string");
			}
			len += strlen(json_string_value(a)) + 1;
		}
		free(c->nodeport_addresses);
		c->nodeport_addresses = calloc(1, len);
		if (!c->nodeport_addresses)
			return -ENOMEM;
		json_array_foreach(v, i, a) {
			if (i)
				strcat(c->nodeport_addresses, ",");
			strcat(c->nodeport_addresses, json_string_value(a));
		}
	}
	/* the top-level periods are the newer spelling; the mode's own ones are older */
	if (it) {
		warn_unknown(rd, it, "iptables.", ipt);
		v = json_object_get(it, "masqueradeAll");
		if (v && !json_is_null(v)) {
			if (!json_is_boolean(v))
				return bad(rd, "iptables.masqueradeAll", "not a boolean");
			c->masquerade_all = json_is_true(v);
			c->has_masquerade_all = true;
		}
	}
	if (iv)
		warn_unknown(rd, iv, "ipvs.", ipvs_known);
	for (int pass = 0; pass < 2 && !r; pass++) {
		json_t *sec = pass ? doc : (c->mode && !strcmp(c->mode, "ipvs") ? iv : it);
		char f1[64], f2[64];

		if (!sec)
			continue;
		snprintf(f1, sizeof(f1), "%s%s", pass ? "" : sec == iv ? "ipvs." : "iptables.",
			 "syncPeriod");
		snprintf(f2, sizeof(f2), "%s%s", pass ? "" : sec == iv ? "ipvs." : "iptables.",
			 "minSyncPeriod");
		r = get_duration(rd, json_object_get(sec, "syncPeriod"), f1, &c->sync_period_ms,
				 &c->has_sync_period);
		if (!r)
			r = get_duration(rd, json_object_get(sec, "minSyncPeriod"), f2,
					 &c->min_sync_period_ms, &c->has_min_sync_period);
	}
	if (!r && iv)
		r = get_str(rd, json_object_get(iv, "scheduler"), "ipvs.scheduler",
			    &c->ipvs_scheduler);
	if (!r && iv) {
		static const char *const names[] = { "tcpTimeout", "tcpFinTimeout", "udpTimeout" };
		uint32_t *dst[] = { &c->ipvs_tcp_timeout_ms, &c->ipvs_tcpfin_timeout_ms,
				    &c->ipvs_udp_timeout_ms };
		bool has;

		for (size_t i = 0; !r && i < 3; i++) {
			char f[32];

			snprintf(f, sizeof(f), "ipvs.%s", names[i]);
			r = get_duration(rd, json_object_get(iv, names[i]), f, dst[i], &has);
		}
		v = json_object_get(iv, "strictARP");
		if (!r && v && !json_is_null(v)) {
			if (!json_is_boolean(v))
				return bad(rd, "ipvs.strictARP", "not a boolean");
			c->strict_arp = json_is_true(v);
			c->has_strict_arp = true;
		}
	}
	return r;
}

KP_EXPORT int kp_proxy_config_load(const char *path, struct kp_proxy_config *ret,
				   kp_config_warn_fn warn, void *userdata, char *err,
				   size_t err_size)
{
	struct reader rd = { path, err, err_size, warn, userdata };
	char perr[256] = "";
	json_t *docs = NULL;
	char *buf;
	size_t n;
	int r;

	if (!path || !ret)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	if (err && err_size)
		err[0] = '\0';
	r = kp_read_file(path, MAX_CONFIG_SIZE, &buf, &n);
	if (r < 0) {
		snprintf(err, err_size, "%s: %s", path,
			 r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
		return r;
	}
	r = kp_yaml_parse(buf, n, &docs, perr, sizeof(perr));
	free(buf);
	if (r < 0) {
		snprintf(err, err_size, "%s: not YAML or JSON: %s", path, perr);
		return -EBADMSG;
	}
	r = parse(&rd, json_array_get(docs, 0), ret);
	json_decref(docs);
	if (r < 0)
		kp_proxy_config_clear(ret);
	return r;
}
