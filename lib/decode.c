// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Kubernetes JSON to the object model: v1 Service, discovery.k8s.io/v1 EndpointSlice and
 * v1 Endpoints, alone or inside List, ServiceList, EndpointSliceList or EndpointsList
 * (whose items carry no kind, as the API server writes them). Every field the proxy uses
 * is validated; the first bad field rejects its object with one diagnostic naming kind,
 * namespace/name and the field path, and decoding goes on with the next object.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "internal.h"

#define LABEL_SERVICE_NAME "kubernetes.io/service-name"
#define LABEL_PROXY_NAME "service.kubernetes.io/service-proxy-name"
#define LABEL_HEADLESS "service.kubernetes.io/headless"
#define DEFAULT_AFFINITY_TIMEOUT 10800
#define MAX_AFFINITY_TIMEOUT 86400

struct dec {
	const struct kp_diag_sink *sink;
	const char *source;
	const char *kind;
	const char *ns;
	const char *name;
	bool failed;		/* one diagnostic per object: the first bad field */
	char field[160];	/* the last field path, formatted only when it is needed */
	const char *field_fmt;	/* its format: "%s" and "%zu" conversions only */
	union {
		const char *s;
		size_t z;
	} field_args[3];
};

/* One diagnostic to the caller's sink. */
static void report(const struct kp_diag_sink *sink, const char *source, const char *kind,
		   const char *ns, const char *name, const char *field, const char *fmt, ...)
	KP_PRINTF(7, 8);
static void report(const struct kp_diag_sink *sink, const char *source, const char *kind,
		   const char *ns, const char *name, const char *field, const char *fmt, ...)
{
	char msg[256];
	struct kp_diag diag = { source, kind, ns, name, field, msg };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sink->diag(sink->userdata, &diag);
}

static void format_field(struct dec *d);
static void bad(struct dec *d, const char *field, const char *fmt, ...) KP_PRINTF(3, 4);
static void bad(struct dec *d, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (d->failed)
		return;
	d->failed = true;
	if (field == d->field)
		format_field(d);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report(d->sink, d->source, d->kind, d->ns ? d->ns : "", d->name ? d->name : "", field,
	       "%s", msg);
}

/*
 * A field path for the next check. Valid paths are never printed, so the format and
 * its arguments are only recorded here and turned into text by bad(): decoding a large
 * list would otherwise spend much of its time formatting paths.
 */
static const char *fld(struct dec *d, const char *fmt, ...) KP_PRINTF(2, 3);
static const char *fld(struct dec *d, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;

	d->field_fmt = fmt;
	va_start(ap, fmt);
	for (const char *p = strchr(fmt, '%'); p && n < KP_ARRAY_SIZE(d->field_args);
	     p = strchr(p + 1, '%')) {
		if (p[1] == 's')
			d->field_args[n++].s = va_arg(ap, const char *);
		else if (p[1] == 'z')
			d->field_args[n++].z = va_arg(ap, size_t);
	}
	va_end(ap);
	return d->field;
}

static void format_field(struct dec *d)
{
	size_t off = 0, n = 0;

	for (const char *p = d->field_fmt; p && *p && off + 1 < sizeof(d->field); p++) {
		int w = 0;

		if (p[0] == '%' && p[1] == 's') {
			w = snprintf(d->field + off, sizeof(d->field) - off, "%s",
				     d->field_args[n++].s);
			p++;
		} else if (p[0] == '%' && p[1] == 'z' && p[2] == 'u') {
			w = snprintf(d->field + off, sizeof(d->field) - off, "%zu",
				     d->field_args[n++].z);
			p += 2;
		} else {
			d->field[off] = *p;
			w = 1;
		}
		off += w > 0 ? (size_t)w : 0;
	}
	d->field[off < sizeof(d->field) ? off : sizeof(d->field) - 1] = '\0';
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* The member @key of @obj, or NULL if absent or null. */
static json_t *member(json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_null(v) ? NULL : v;
}

static const char *get_str(struct dec *d, json_t *obj, const char *key, const char *field,
			   bool required)
{
	json_t *v = member(obj, key);

	if (!v) {
		if (required)
			bad(d, field, "is required");
		return NULL;
	}
	if (!json_is_string(v)) {
		bad(d, field, "must be a string, not %s", type_name(v));
		return NULL;
	}
	return json_string_value(v);
}

/* Returns true if present and valid; false if absent (or bad, with d->failed set). */
static bool get_int(struct dec *d, json_t *obj, const char *key, const char *field,
		    long long min, long long max, long long *ret)
{
	json_t *v = member(obj, key);

	if (!v)
		return false;
	if (!json_is_integer(v)) {
		bad(d, field, "must be an integer, not %s", type_name(v));
		return false;
	}
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		bad(d, field, "%" JSON_INTEGER_FORMAT " is out of range %lld..%lld",
		    json_integer_value(v), min, max);
		return false;
	}
	*ret = json_integer_value(v);
	return true;
}

static bool get_bool(struct dec *d, json_t *obj, const char *key, const char *field, bool dflt)
{
	json_t *v = member(obj, key);

	if (!v)
		return dflt;
	if (!json_is_boolean(v)) {
		bad(d, field, "must be a boolean, not %s", type_name(v));
		return dflt;
	}
	return json_is_true(v);
}

static json_t *get_typed(struct dec *d, json_t *obj, const char *key, const char *field,
			 json_type type, bool required)
{
	json_t *v = member(obj, key);

	if (!v) {
		if (required)
			bad(d, field, "is required");
		return NULL;
	}
	if (json_typeof(v) != type) {
		bad(d, field, "must be %s, not %s", type == JSON_OBJECT ? "an object" : "an array",
		    type_name(v));
		return NULL;
	}
	return v;
}

static int parse_protocol(struct dec *d, json_t *obj, const char *field, enum kp_protocol *ret)
{
	const char *s = get_str(d, obj, "protocol", field, false);

	if (d->failed)
		return -EINVAL;
	if (!s || strcmp(s, "TCP") == 0)
		*ret = KP_PROTO_TCP;
	else if (strcmp(s, "UDP") == 0)
		*ret = KP_PROTO_UDP;
	else if (strcmp(s, "SCTP") == 0)
		*ret = KP_PROTO_SCTP;
	else {
		bad(d, field, "unsupported protocol \"%s\" (TCP, UDP or SCTP)", s);
		return -EINVAL;
	}
	return 0;
}

/* An array of IP strings into a new array; *ret_n elements. NULL with d->failed on error. */
static struct kp_addr *parse_ip_array(struct dec *d, json_t *obj, const char *key,
				      const char *path, size_t *ret_n)
{
	json_t *arr = get_typed(d, obj, key, path, JSON_ARRAY, false), *e;
	struct kp_addr *addrs;
	size_t i;

	*ret_n = 0;
	if (!arr || !json_array_size(arr))
		return NULL;
	addrs = calloc(json_array_size(arr), sizeof(*addrs));
	if (!addrs) {
		bad(d, path, "out of memory");
		return NULL;
	}
	json_array_foreach(arr, i, e) {
		if (!json_is_string(e)) {
			bad(d, fld(d, "%s[%zu]", path, i), "must be a string, not %s", type_name(e));
			break;
		}
		if (kp_addr_from_str(json_string_value(e), &addrs[i]) < 0) {
			bad(d, fld(d, "%s[%zu]", path, i), "\"%s\" is not an IP address",
			    json_string_value(e));
			break;
		}
	}
	if (d->failed) {
		free(addrs);
		return NULL;
	}
	*ret_n = i;
	return addrs;
}

static struct kp_obj *obj_new(enum kp_obj_kind kind, const char *ns, const char *name)
{
	static const char letters[_KP_OBJ_MAX] = { 'S', 'L', 'E', 'C' };
	struct kp_obj *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->kind = kind;
	o->ns = kp_strdup(ns);
	o->name = kp_strdup(name);
	o->key = kp_asprintf("%c/%s/%s", letters[kind], ns, name);
	if (!o->ns || !o->name || !o->key) {
		kp_obj_free(o);
		return NULL;
	}
	return o;
}

static void slice_obj_fini(struct kp_slice_obj *s)
{
	for (size_t i = 0; i < s->n_ports; i++)
		free(s->ports[i].name);
	free(s->ports);
	for (size_t i = 0; i < s->n_eps; i++) {
		free(s->eps[i].node_name);
		for (size_t j = 0; j < s->eps[i].n_hint_zones; j++)
			free(s->eps[i].hint_zones[j]);
		free(s->eps[i].hint_zones);
		for (size_t j = 0; j < s->eps[i].n_hint_nodes; j++)
			free(s->eps[i].hint_nodes[j]);
		free(s->eps[i].hint_nodes);
	}
	free(s->eps);
}

void kp_obj_free(struct kp_obj *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->svc.n_ports; i++)
		free(o->svc.ports[i].name);
	free(o->svc.ports);
	free(o->svc.cluster_ips);
	free(o->svc.external_ips);
	free(o->svc.lb_ips);
	free(o->svc.src_ranges);
	free(o->svc.src_prefixes);
	for (size_t i = 0; i < o->n_slices; i++)
		slice_obj_fini(&o->slices[i]);
	free(o->slices);
	free(o->key);
	free(o->ns);
	free(o->name);
	free(o->service);
	free(o->cidrs);
	free(o);
}

const char *kp_obj_kind_name(enum kp_obj_kind kind)
{
	static const char *const names[_KP_OBJ_MAX] = { "Service", "EndpointSlice", "Endpoints",
							 "ServiceCIDR" };

	return (unsigned)kind < _KP_OBJ_MAX ? names[kind] : "?";
}

/* ---- Service ---- */

static bool family_matches(const char *fam, const struct kp_addr *a)
{
	return (strcmp(fam, "IPv4") == 0 && a->family == AF_INET) ||
	       (strcmp(fam, "IPv6") == 0 && a->family == AF_INET6);
}

static void svc_cluster_ips(struct dec *d, json_t *spec, struct kp_svc_obj *s)
{
	const char *ip = get_str(d, spec, "clusterIP", "spec.clusterIP", false);
	json_t *fams, *e;
	struct kp_addr primary;
	size_t i;

	if (d->failed)
		return;
	if (ip && *ip && strcmp(ip, "None") != 0 && kp_addr_from_str(ip, &primary) < 0) {
		bad(d, "spec.clusterIP", "\"%s\" is not an IP address", ip);
		return;
	}
	s->cluster_ips = parse_ip_array(d, spec, "clusterIPs", "spec.clusterIPs",
					&s->n_cluster_ips);
	if (d->failed)
		return;
	if (!s->n_cluster_ips && ip && *ip && strcmp(ip, "None") != 0) {
		s->cluster_ips = calloc(1, sizeof(*s->cluster_ips));
		if (!s->cluster_ips) {
			bad(d, "spec.clusterIP", "out of memory");
			return;
		}
		s->cluster_ips[0] = primary;
		s->n_cluster_ips = 1;
	} else if (s->n_cluster_ips && ip && *ip && strcmp(ip, "None") != 0 &&
		   !kp_addr_equal(&primary, &s->cluster_ips[0])) {
		bad(d, "spec.clusterIPs[0]", "must equal spec.clusterIP \"%s\"", ip);
		return;
	}
	if (s->n_cluster_ips > 2 ||
	    (s->n_cluster_ips == 2 && s->cluster_ips[0].family == s->cluster_ips[1].family)) {
		bad(d, "spec.clusterIPs", "at most one address per IP family");
		return;
	}
	fams = get_typed(d, spec, "ipFamilies", "spec.ipFamilies", JSON_ARRAY, false);
	if (d->failed || !fams)
		return;
	json_array_foreach(fams, i, e) {
		const char *f = json_is_string(e) ? json_string_value(e) : NULL;

		if (!f || (strcmp(f, "IPv4") && strcmp(f, "IPv6"))) {
			bad(d, fld(d, "spec.ipFamilies[%zu]", i), "must be \"IPv4\" or \"IPv6\"");
			return;
		}
		if (i < s->n_cluster_ips && !family_matches(f, &s->cluster_ips[i])) {
			bad(d, fld(d, "spec.ipFamilies[%zu]", i),
			    "%s does not match spec.clusterIPs[%zu]", f, i);
			return;
		}
	}
	if (s->n_cluster_ips && json_array_size(fams) != s->n_cluster_ips)
		bad(d, "spec.ipFamilies", "has %zu entries for %zu cluster IPs",
		    json_array_size(fams), s->n_cluster_ips);
}

static void svc_ports(struct dec *d, json_t *spec, struct kp_svc_obj *s, bool node_ports)
{
	json_t *ports = get_typed(d, spec, "ports", "spec.ports", JSON_ARRAY, true), *p;
	size_t i;

	if (d->failed)
		return;
	if (!json_array_size(ports)) {
		bad(d, "spec.ports", "must not be empty");
		return;
	}
	s->ports = calloc(json_array_size(ports), sizeof(*s->ports));
	if (!s->ports) {
		bad(d, "spec.ports", "out of memory");
		return;
	}
	json_array_foreach(ports, i, p) {
		struct kp_svc_obj_port *sp = &s->ports[i];
		const char *name;
		long long v;
		json_t *tp;

		if (!json_is_object(p)) {
			bad(d, fld(d, "spec.ports[%zu]", i), "must be an object, not %s",
			    type_name(p));
			return;
		}
		s->n_ports = i + 1;
		name = get_str(d, p, "name", fld(d, "spec.ports[%zu].name", i), false);
		sp->name = kp_strdup(name);
		if (d->failed || !sp->name)
			return;
		if (parse_protocol(d, p, fld(d, "spec.ports[%zu].protocol", i), &sp->proto) < 0)
			return;
		if (!get_int(d, p, "port", fld(d, "spec.ports[%zu].port", i), 1, 65535, &v)) {
			if (!d->failed)
				bad(d, d->field, "is required");
			return;
		}
		sp->port = (uint16_t)v;
		tp = member(p, "targetPort");
		if (tp && json_is_string(tp) && !*json_string_value(tp)) {
			bad(d, fld(d, "spec.ports[%zu].targetPort", i), "must not be empty");
			return;
		}
		if (tp && !json_is_string(tp) &&
		    !get_int(d, p, "targetPort", fld(d, "spec.ports[%zu].targetPort", i), 1, 65535,
			     &v))
			return;
		if (get_int(d, p, "nodePort", fld(d, "spec.ports[%zu].nodePort", i), 0, 65535, &v)) {
			if (v && !node_ports) {
				bad(d, d->field, "is set but spec.type is not NodePort or LoadBalancer");
				return;
			}
			sp->node_port = (uint16_t)v;
		}
		if (d->failed)
			return;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(s->ports[j].name, sp->name) == 0 && s->ports[j].proto == sp->proto) {
				bad(d, fld(d, "spec.ports[%zu].name", i),
				    "duplicate port name \"%s\" for %s", sp->name,
				    kp_protocol_name(sp->proto));
				return;
			}
		}
	}
}

static void svc_policies(struct dec *d, json_t *spec, struct kp_svc_obj *s)
{
	const char *aff = get_str(d, spec, "sessionAffinity", "spec.sessionAffinity", false);
	const char *etp, *itp;
	long long v;

	if (d->failed)
		return;
	s->affinity_timeout = DEFAULT_AFFINITY_TIMEOUT;
	if (!aff || strcmp(aff, "None") == 0) {
		s->affinity = KP_AFFINITY_NONE;
	} else if (strcmp(aff, "ClientIP") == 0) {
		json_t *cfg = member(member(spec, "sessionAffinityConfig"), "clientIP");

		s->affinity = KP_AFFINITY_CLIENT_IP;
		if (get_int(d, cfg, "timeoutSeconds",
			    "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 1,
			    MAX_AFFINITY_TIMEOUT, &v))
			s->affinity_timeout = (uint32_t)v;
		if (d->failed)
			return;
	} else {
		bad(d, "spec.sessionAffinity", "\"%s\" is not None or ClientIP", aff);
		return;
	}
	etp = get_str(d, spec, "externalTrafficPolicy", "spec.externalTrafficPolicy", false);
	if (d->failed)
		return;
	if (etp && strcmp(etp, "Local") && strcmp(etp, "Cluster")) {
		bad(d, "spec.externalTrafficPolicy", "\"%s\" is not Cluster or Local", etp);
		return;
	}
	s->etp_local = etp && strcmp(etp, "Local") == 0;
	itp = get_str(d, spec, "internalTrafficPolicy", "spec.internalTrafficPolicy", false);
	if (d->failed)
		return;
	if (itp && strcmp(itp, "Local") && strcmp(itp, "Cluster")) {
		bad(d, "spec.internalTrafficPolicy", "\"%s\" is not Cluster or Local", itp);
		return;
	}
	s->itp_local = itp && strcmp(itp, "Local") == 0;
	if (get_int(d, spec, "healthCheckNodePort", "spec.healthCheckNodePort", 0, 65535, &v))
		s->hc_node_port = (uint16_t)v;
}

static void svc_external(struct dec *d, json_t *spec, json_t *status, struct kp_svc_obj *s)
{
	json_t *ranges, *ingress, *e;
	size_t i;

	s->external_ips = parse_ip_array(d, spec, "externalIPs", "spec.externalIPs",
					 &s->n_external_ips);
	if (d->failed)
		return;
	ranges = get_typed(d, spec, "loadBalancerSourceRanges", "spec.loadBalancerSourceRanges",
			   JSON_ARRAY, false);
	if (d->failed)
		return;
	if (ranges && json_array_size(ranges)) {
		s->src_ranges = calloc(json_array_size(ranges), sizeof(*s->src_ranges));
		s->src_prefixes = calloc(json_array_size(ranges), 1);
		if (!s->src_ranges || !s->src_prefixes) {
			bad(d, "spec.loadBalancerSourceRanges", "out of memory");
			return;
		}
		json_array_foreach(ranges, i, e) {
			const char *r = json_is_string(e) ? json_string_value(e) : NULL;
			char buf[64];

			/* the API trims blanks around each range */
			if (r) {
				while (*r == ' ')
					r++;
				snprintf(buf, sizeof(buf), "%s", r);
				buf[strcspn(buf, " ")] = '\0';
			}
			if (!r || kp_cidr_from_str(buf, &s->src_ranges[i], &s->src_prefixes[i]) < 0) {
				bad(d, fld(d, "spec.loadBalancerSourceRanges[%zu]", i),
				    "is not a CIDR such as 192.0.2.0/24");
				return;
			}
			s->n_src_ranges = i + 1;
		}
	}
	ingress = get_typed(d, member(status, "loadBalancer"), "ingress",
			    "status.loadBalancer.ingress", JSON_ARRAY, false);
	if (d->failed || !ingress || !json_array_size(ingress))
		return;
	s->lb_ips = calloc(json_array_size(ingress), sizeof(*s->lb_ips));
	if (!s->lb_ips) {
		bad(d, "status.loadBalancer.ingress", "out of memory");
		return;
	}
	json_array_foreach(ingress, i, e) {
		const char *ip = get_str(d, e, "ip", fld(d, "status.loadBalancer.ingress[%zu].ip", i),
					 false);
		const char *mode = get_str(d, e, "ipMode",
					   fld(d, "status.loadBalancer.ingress[%zu].ipMode", i), false);

		if (d->failed)
			return;
		if (!ip || (mode && strcmp(mode, "Proxy") == 0))
			continue;	/* hostname-only, or the LB proxies: not ours */
		if (kp_addr_from_str(ip, &s->lb_ips[s->n_lb_ips]) < 0) {
			bad(d, fld(d, "status.loadBalancer.ingress[%zu].ip", i),
			    "\"%s\" is not an IP address", ip);
			return;
		}
		s->n_lb_ips++;
	}
}

static void decode_service(struct dec *d, json_t *o, json_t *labels, struct kp_obj *obj)
{
	struct kp_svc_obj *s = &obj->svc;
	json_t *spec = get_typed(d, o, "spec", "spec", JSON_OBJECT, true);
	const char *type, *ip;
	bool node_ports;

	obj->service = kp_asprintf("%s/%s", obj->ns, obj->name);
	if (!obj->service) {
		bad(d, "metadata.name", "out of memory");
		return;
	}
	if (d->failed)
		return;
	type = get_str(d, spec, "type", "spec.type", false);
	if (d->failed)
		return;
	if (!type)
		type = "ClusterIP";
	if (strcmp(type, "ExternalName") == 0 || member(labels, LABEL_PROXY_NAME) ||
	    member(labels, LABEL_HEADLESS)) {
		s->skip = true;		/* not ours: nothing else is read */
		return;
	}
	if (strcmp(type, "ClusterIP") && strcmp(type, "NodePort") && strcmp(type, "LoadBalancer")) {
		bad(d, "spec.type", "\"%s\" is not ClusterIP, NodePort, LoadBalancer or ExternalName",
		    type);
		return;
	}
	node_ports = strcmp(type, "ClusterIP") != 0;
	ip = get_str(d, spec, "clusterIP", "spec.clusterIP", false);
	if (ip && strcmp(ip, "None") == 0) {
		s->skip = true;		/* headless */
		return;
	}
	svc_cluster_ips(d, spec, s);
	svc_ports(d, spec, s, node_ports);
	svc_policies(d, spec, s);
	svc_external(d, spec, member(o, "status"), s);
	if (!d->failed && !s->n_cluster_ips)
		s->skip = true;		/* not allocated yet: kube-proxy skips it too */
}

/* ---- EndpointSlice and Endpoints ---- */

static void slice_ports(struct dec *d, json_t *ports, const char *path, struct kp_slice_obj *s)
{
	json_t *p;
	size_t i;

	if (!ports || !json_array_size(ports))
		return;
	s->ports = calloc(json_array_size(ports), sizeof(*s->ports));
	if (!s->ports) {
		bad(d, path, "out of memory");
		return;
	}
	json_array_foreach(ports, i, p) {
		struct kp_slice_obj_port *sp = &s->ports[i];
		long long v;

		if (!json_is_object(p)) {
			bad(d, fld(d, "%s[%zu]", path, i), "must be an object, not %s", type_name(p));
			return;
		}
		s->n_ports = i + 1;
		sp->name = kp_strdup(get_str(d, p, "name", fld(d, "%s[%zu].name", path, i), false));
		if (d->failed || !sp->name)
			return;
		if (parse_protocol(d, p, fld(d, "%s[%zu].protocol", path, i), &sp->proto) < 0)
			return;
		if (!get_int(d, p, "port", fld(d, "%s[%zu].port", path, i), 1, 65535, &v)) {
			if (!d->failed)
				bad(d, d->field, "is required");
			return;
		}
		sp->port = (uint16_t)v;
	}
}

/* The names of hints.@which (forZones, forNodes) of endpoints[@i]: 0, -EINVAL (said) or
 * -ENOMEM. */
static int dup_hints(struct dec *d, json_t *ep, size_t i, const char *which, char ***ret_v,
		     size_t *ret_n)
{
	json_t *list = get_typed(d, member(ep, "hints"), which,
				 fld(d, "endpoints[%zu].hints.%s", i, which), JSON_ARRAY, false);
	json_t *h;
	size_t j;

	if (d->failed || !list || !json_array_size(list))
		return 0;
	*ret_v = calloc(json_array_size(list), sizeof(char *));
	if (!*ret_v)
		return -ENOMEM;
	json_array_foreach(list, j, h) {
		const char *name = get_str(d, h, "name",
					   fld(d, "endpoints[%zu].hints.%s[%zu].name", i, which, j),
					   true);

		if (d->failed)
			return -EINVAL;
		(*ret_v)[j] = kp_strdup(name);
		if (!(*ret_v)[j])
			return -ENOMEM;
		*ret_n = j + 1;
	}
	return 0;
}

/* endpoints[@i] of a slice of @family (@at its addressType, for messages). Returns 0, or
 * -EINVAL with the diagnostic said. */
static int decode_slice_ep(struct dec *d, json_t *ep, size_t i, const char *at, int family,
			   struct kp_slice_obj_ep *e)
{
	json_t *addrs, *cond;
	const char *a, *node;

	addrs = get_typed(d, ep, "addresses", fld(d, "endpoints[%zu].addresses", i), JSON_ARRAY,
			  true);
	if (d->failed)
		return -EINVAL;
	if (!json_array_size(addrs)) {
		bad(d, d->field, "must not be empty");
		return -EINVAL;
	}
	a = json_string_value(json_array_get(addrs, 0));
	if (!a || kp_addr_from_str(a, &e->addr) < 0 || e->addr.family != family) {
		bad(d, fld(d, "endpoints[%zu].addresses[0]", i), "\"%s\" is not an %s address",
		    a ? a : "(not a string)", at);
		return -EINVAL;
	}
	cond = get_typed(d, ep, "conditions", fld(d, "endpoints[%zu].conditions", i), JSON_OBJECT,
			 false);
	e->ready = get_bool(d, cond, "ready", fld(d, "endpoints[%zu].conditions.ready", i), true);
	e->serving = get_bool(d, cond, "serving", fld(d, "endpoints[%zu].conditions.serving", i),
			      true);
	e->terminating = get_bool(d, cond, "terminating",
				  fld(d, "endpoints[%zu].conditions.terminating", i), false);
	node = get_str(d, ep, "nodeName", fld(d, "endpoints[%zu].nodeName", i), false);
	if (d->failed)
		return -EINVAL;
	if (node && !(e->node_name = kp_strdup(node))) {
		bad(d, d->field, "out of memory");
		return -EINVAL;
	}
	if (dup_hints(d, ep, i, "forZones", &e->hint_zones, &e->n_hint_zones) == -ENOMEM ||
	    (!d->failed &&
	     dup_hints(d, ep, i, "forNodes", &e->hint_nodes, &e->n_hint_nodes) == -ENOMEM))
		bad(d, d->field, "out of memory");
	return d->failed ? -EINVAL : 0;
}

static void decode_slice(struct dec *d, json_t *o, json_t *labels, struct kp_obj *obj)
{
	const char *svc = get_str(d, labels, LABEL_SERVICE_NAME,
				  "metadata.labels[" LABEL_SERVICE_NAME "]", true);
	const char *at = get_str(d, o, "addressType", "addressType", true);
	struct kp_slice_obj *s;
	json_t *eps, *ep;
	size_t i;

	if (d->failed)
		return;
	if (!*svc) {
		bad(d, "metadata.labels[" LABEL_SERVICE_NAME "]", "must not be empty");
		return;
	}
	obj->service = kp_asprintf("%s/%s", obj->ns, svc);
	obj->slices = s = calloc(1, sizeof(*s));
	if (!obj->service || !s) {
		bad(d, "metadata", "out of memory");
		return;
	}
	obj->n_slices = 1;
	if (strcmp(at, "IPv4") == 0)
		s->family = AF_INET;
	else if (strcmp(at, "IPv6") == 0)
		s->family = AF_INET6;
	else if (strcmp(at, "FQDN") == 0)
		return;		/* kept, so the service is known to have slices; no endpoints */
	else {
		bad(d, "addressType", "\"%s\" is not IPv4, IPv6 or FQDN", at);
		return;
	}
	slice_ports(d, get_typed(d, o, "ports", "ports", JSON_ARRAY, false), "ports", s);
	eps = get_typed(d, o, "endpoints", "endpoints", JSON_ARRAY, false);
	if (d->failed || !eps || !json_array_size(eps))
		return;
	s->eps = calloc(json_array_size(eps), sizeof(*s->eps));
	if (!s->eps) {
		bad(d, "endpoints", "out of memory");
		return;
	}
	json_array_foreach(eps, i, ep) {
		if (!json_is_object(ep)) {
			bad(d, fld(d, "endpoints[%zu]", i), "must be an object, not %s", type_name(ep));
			return;
		}
		s->n_eps = i + 1;
		if (decode_slice_ep(d, ep, i, at, s->family, &s->eps[i]) < 0)
			return;
	}
}

/* Adds the addresses of one Endpoints subset list to the slices of their family. */
static void endpoints_addrs(struct dec *d, json_t *list, const char *path, bool ready,
			    struct kp_slice_obj *by_family[2])
{
	json_t *a;
	size_t i;

	json_array_foreach(list, i, a) {
		const char *ip = get_str(d, a, "ip", fld(d, "%s[%zu].ip", path, i), true);
		const char *node = get_str(d, a, "nodeName", fld(d, "%s[%zu].nodeName", path, i),
					   false);
		struct kp_addr addr;
		struct kp_slice_obj *s;
		struct kp_slice_obj_ep *e;

		if (d->failed)
			return;
		if (kp_addr_from_str(ip, &addr) < 0) {
			bad(d, fld(d, "%s[%zu].ip", path, i), "\"%s\" is not an IP address", ip);
			return;
		}
		s = by_family[addr.family == AF_INET6];
		e = &s->eps[s->n_eps++];
		e->addr = addr;
		e->ready = e->serving = ready;
		if (node && !(e->node_name = kp_strdup(node))) {
			bad(d, path, "out of memory");
			return;
		}
	}
}

static void decode_endpoints(struct dec *d, json_t *o, struct kp_obj *obj)
{
	json_t *subsets = get_typed(d, o, "subsets", "subsets", JSON_ARRAY, false), *ss;
	size_t i;

	obj->service = kp_asprintf("%s/%s", obj->ns, obj->name);
	if (!obj->service) {
		bad(d, "metadata", "out of memory");
		return;
	}
	if (d->failed || !subsets || !json_array_size(subsets))
		return;
	obj->slices = calloc(2 * json_array_size(subsets), sizeof(*obj->slices));
	if (!obj->slices) {
		bad(d, "subsets", "out of memory");
		return;
	}
	json_array_foreach(subsets, i, ss) {
		json_t *ready = get_typed(d, ss, "addresses", fld(d, "subsets[%zu].addresses", i),
					  JSON_ARRAY, false);
		json_t *unready = get_typed(d, ss, "notReadyAddresses",
					    fld(d, "subsets[%zu].notReadyAddresses", i),
					    JSON_ARRAY, false);
		json_t *ports = get_typed(d, ss, "ports", fld(d, "subsets[%zu].ports", i),
					  JSON_ARRAY, false);
		size_t n = json_array_size(ready) + json_array_size(unready);
		struct kp_slice_obj *by_family[2];
		char path[64];

		if (d->failed)
			return;
		for (int f = 0; f < 2; f++) {
			by_family[f] = &obj->slices[obj->n_slices++];
			by_family[f]->family = f ? AF_INET6 : AF_INET;
			by_family[f]->eps = calloc(n ? n : 1, sizeof(struct kp_slice_obj_ep));
			snprintf(path, sizeof(path), "subsets[%zu].ports", i);
			slice_ports(d, ports, path, by_family[f]);
			if (!by_family[f]->eps)
				bad(d, "subsets", "out of memory");
			if (d->failed)
				return;
		}
		snprintf(path, sizeof(path), "subsets[%zu].addresses", i);
		endpoints_addrs(d, ready, path, true, by_family);
		snprintf(path, sizeof(path), "subsets[%zu].notReadyAddresses", i);
		endpoints_addrs(d, unready, path, false, by_family);
		if (d->failed)
			return;
	}
}

/* ---- documents ---- */

/*
 * An RFC 3339 time ("2026-11-25T07:00:00Z", "...:00.123456789+01:00") in ms since the
 * epoch, or 0 if it is not one.
 */
static int64_t rfc3339_ms(const char *s)
{
	struct tm tm = { 0 };
	int n = 0, oh = 0, om = 0;
	double frac = 0;
	char sign;
	time_t t;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
		return 0;
	s += n;
	if (*s == '.') {
		char *end;

		frac = strtod(s, &end);
		s = end;
	}
	if (*s == 'Z' && !s[1]) {
		sign = '+';
	} else if ((*s == '+' || *s == '-') && sscanf(s + 1, "%2d:%2d", &oh, &om) == 2 &&
		   strlen(s) == 6) {
		sign = *s;
	} else {
		return 0;
	}
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return 0;
	t -= (sign == '+' ? 1 : -1) * (oh * 3600 + om * 60);
	return (int64_t)t * 1000 + (int64_t)(frac * 1000);
}

/* A ServiceCIDR (networking.k8s.io/v1): spec.cidrs, at most one per family. */
static void decode_service_cidr(struct dec *d, json_t *o, struct kp_obj *obj)
{
	json_t *spec = get_typed(d, o, "spec", "spec", JSON_OBJECT, true);
	json_t *cidrs = get_typed(d, spec, "cidrs", "spec.cidrs", JSON_ARRAY, true);
	json_t *e;
	size_t i;

	if (d->failed)
		return;
	if (!json_array_size(cidrs) || json_array_size(cidrs) > 2) {
		bad(d, "spec.cidrs", "must hold one or two CIDRs (one per IP family)");
		return;
	}
	obj->cidrs = calloc(json_array_size(cidrs), sizeof(*obj->cidrs));
	if (!obj->cidrs) {
		bad(d, "spec.cidrs", "out of memory");
		return;
	}
	json_array_foreach(cidrs, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : NULL;
		struct kp_cidr *c = &obj->cidrs[i];

		if (!s || kp_cidr_from_str(s, &c->addr, &c->prefix) < 0) {
			bad(d, fld(d, "spec.cidrs[%zu]", i), "is not a CIDR such as 10.96.0.0/16");
			return;
		}
		if (i && obj->cidrs[0].addr.family == c->addr.family) {
			bad(d, fld(d, "spec.cidrs[%zu]", i), "has the family of spec.cidrs[0]");
			return;
		}
		obj->n_cidrs = i + 1;
	}
}

static int decode_object(const struct kp_diag_sink *sink, const char *source, json_t *o,
			 const char *kind, struct kp_objvec *out)
{
	struct dec d = { .sink = sink, .source = source, .kind = kind };
	enum kp_obj_kind k;
	struct kp_obj *obj;
	json_t *meta, *labels;
	const char *ns;

	if (strcmp(kind, "Service") == 0)
		k = KP_OBJ_SERVICE;
	else if (strcmp(kind, "EndpointSlice") == 0)
		k = KP_OBJ_SLICE;
	else if (strcmp(kind, "Endpoints") == 0)
		k = KP_OBJ_ENDPOINTS;
	else if (strcmp(kind, "ServiceCIDR") == 0)
		k = KP_OBJ_SERVICE_CIDR;
	else {
		if (sink->debug) {
			char msg[256];

			snprintf(msg, sizeof(msg), "%s: ignoring object of kind %s", source, kind);
			sink->debug(sink->userdata, msg);
		}
		return 0;
	}
	meta = get_typed(&d, o, "metadata", "metadata", JSON_OBJECT, true);
	d.name = get_str(&d, meta, "name", "metadata.name", true);
	ns = get_str(&d, meta, "namespace", "metadata.namespace", false);
	d.ns = ns && *ns ? ns : "default";
	if (!d.failed && !*d.name)
		bad(&d, "metadata.name", "must not be empty");
	labels = get_typed(&d, meta, "labels", "metadata.labels", JSON_OBJECT, false);
	if (d.failed)
		return 0;	/* no usable identity: nothing to keep either */
	obj = obj_new(k, d.ns, d.name);
	if (!obj)
		return -ENOMEM;
	if (k == KP_OBJ_SERVICE)
		decode_service(&d, o, labels, obj);
	else if (k == KP_OBJ_SERVICE_CIDR)
		decode_service_cidr(&d, o, obj);
	else if (k == KP_OBJ_SLICE)
		decode_slice(&d, o, labels, obj);
	else
		decode_endpoints(&d, o, obj);
	if (k == KP_OBJ_SLICE || k == KP_OBJ_ENDPOINTS)	/* for the programming latency */
		obj->trigger_ms = rfc3339_ms(json_string_value(json_object_get(
			json_object_get(meta, "annotations"),
			"endpoints.kubernetes.io/last-change-trigger-time")));
	if (d.failed) {
		/* remembered, so the source keeps the object's previous version */
		if (out->n_rejected == out->cap_rejected) {
			size_t cap = out->cap_rejected ? out->cap_rejected * 2 : 8;
			char **v = realloc(out->rejected, cap * sizeof(*v));

			if (!v) {
				kp_obj_free(obj);
				return -ENOMEM;
			}
			out->rejected = v;
			out->cap_rejected = cap;
		}
		out->rejected[out->n_rejected++] = obj->key;
		obj->key = NULL;
		kp_obj_free(obj);
		return 0;
	}
	if (kp_objvec_push(out, obj) < 0) {
		kp_obj_free(obj);
		return -ENOMEM;
	}
	return 0;
}

static const char *list_item_kind(const char *list_kind)
{
	static const struct {
		const char *list, *item;
	} map[] = {
		{ "ServiceList", "Service" },
		{ "EndpointSliceList", "EndpointSlice" },
		{ "EndpointsList", "Endpoints" },
		{ "ServiceCIDRList", "ServiceCIDR" },
	};

	for (size_t i = 0; i < KP_ARRAY_SIZE(map); i++)
		if (strcmp(list_kind, map[i].list) == 0)
			return map[i].item;
	return NULL;
}

int kp_decode_json(const struct kp_diag_sink *sink, const char *source, json_t *root,
		   struct kp_objvec *out)
{
	json_t *items, *e, *k;
	const char *kind, *implied;
	size_t i;
	int r;

	if (json_is_array(root)) {	/* YAML documents, or a JSON array of objects */
		json_array_foreach(root, i, e) {
			r = kp_decode_json(sink, source, e, out);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (!json_is_object(root)) {
		report(sink, source, "", "", "", "", "document is %s, not an object",
		       type_name(root));
		return 0;
	}
	k = json_object_get(root, "kind");
	kind = json_string_value(k);
	if (!kind) {
		report(sink, source, "", "", "", "kind", "object has no kind");
		return 0;
	}
	items = json_object_get(root, "items");
	if (strcmp(kind, "List") != 0 && !list_item_kind(kind))
		return decode_object(sink, source, root, kind, out);
	if (!json_is_array(items)) {
		report(sink, source, kind, "", "", "items", "must be an array");
		return 0;
	}
	implied = list_item_kind(kind);
	json_array_foreach(items, i, e) {
		const char *ik = json_string_value(json_object_get(e, "kind"));

		if (!ik)
			ik = implied;
		if (!ik) {
			char f[48];

			snprintf(f, sizeof(f), "items[%zu].kind", i);
			report(sink, source, kind, "", "", f, "list item has no kind");
			continue;
		}
		r = decode_object(sink, source, e, ik, out);
		if (r < 0)
			return r;
	}
	return 0;
}

int kp_objvec_push(struct kp_objvec *vec, struct kp_obj *obj)
{
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 16;
		struct kp_obj **v = realloc(vec->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		vec->v = v;
		vec->cap = cap;
	}
	vec->v[vec->n++] = obj;
	return 0;
}

void kp_objvec_clear(struct kp_objvec *vec)
{
	for (size_t i = 0; i < vec->n; i++)
		kp_obj_free(vec->v[i]);
	free(vec->v);
	vec->v = NULL;
	vec->n = vec->cap = 0;
	for (size_t i = 0; i < vec->n_rejected; i++)
		free(vec->rejected[i]);
	free(vec->rejected);
	vec->rejected = NULL;
	vec->n_rejected = vec->cap_rejected = 0;
}
