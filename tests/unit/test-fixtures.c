// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The fixtures in tests/fixtures (JSON as the API server returns it, managedFields and
 * all, and kubectl's YAML) decode into the state kube-proxy would compute, and each
 * fixture under bad/ is rejected with the field its README names while its good
 * neighbour is accepted. Linked into test-decode.
 */
#include <errno.h>

#include <kproxy/kproxy.h>

#include "tap.h"

struct seen {
	int n;
	char kind[32], ns[64], name[64], field[128], msg[256];
};

int load_fixture(struct kp_ctx *ctx, const char *name, struct seen *s);
void test_fixtures(void);

static char out[1024];

static const char *eps(struct kp_ctx *ctx, const char *ns, const char *name, const char *pname,
		       enum kp_protocol proto, int family, bool external)
{
	const struct kp_svc_port *sp = kp_state_lookup(kp_ctx_get_state(ctx), ns, name, pname,
						       proto);
	const struct kp_endpoint *e;
	size_t n, off = 0;

	if (!sp)
		return "(no such service port)";
	e = kp_svc_port_get_endpoints(sp, family, external, &n);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char a[KP_ADDR_STRLEN];

		off += (size_t)snprintf(out + off, sizeof(out) - off, "%s%s:%u", i ? "," : "",
					kp_addr_to_str(&e[i].addr, a, sizeof(a)), e[i].port);
	}
	return out;
}

static void test_good(void)
{
	struct kp_ctx *ctx = kp_ctx_new();
	struct seen s = { 0 };
	const struct kp_svc_port *sp;
	struct kp_addr np;
	struct kp_counts c;
	const char *files[] = {
		"service-clusterip.json", "endpointslice-web.json", "servicelist.json",
		"endpointslicelist.json", "service-legacy.json", "endpoints-legacy.json",
		"service-skipped.yaml", "list-kubectl.yaml",
	};
	int r, total = 0;

	kp_addr_from_str("192.168.0.1", &np);
	kp_ctx_set_node_name(ctx, "node-1");
	kp_ctx_set_nodeport_addrs(ctx, &np, 1);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		r = load_fixture(ctx, files[i], &s);
		ok(r > 0, "%s loads (%d objects)", files[i], r);
		total += r > 0 ? r : 0;
	}
	is_int(s.n, 0, "no diagnostics for the good fixtures (first: %s %s/%s %s: %s)", s.kind,
	       s.ns, s.name, s.field, s.msg);
	is_int(kp_ctx_sync(ctx, false), 0, "sync");
	kp_ctx_get_counts(ctx, &c);
	is_int(c.n_services + c.n_slices + c.n_endpoints, total, "every object held");

	is_str(eps(ctx, "default", "web", "http", KP_PROTO_TCP, 0, false),
	       "10.1.0.1:8080,10.1.0.2:8080", "default/web http: named targetPort via the slice");
	is_str(eps(ctx, "default", "web", "metrics", KP_PROTO_TCP, 0, false),
	       "10.1.0.1:9090,10.1.0.2:9090", "default/web metrics");
	is_str(eps(ctx, "default", "kubernetes", "https", KP_PROTO_TCP, 0, false), "10.10.0.1:6443",
	       "ServiceList items without kind: default/kubernetes");
	{
		const char *dns = eps(ctx, "kube-system", "kube-dns", "dns", KP_PROTO_UDP, 0, false);

		const char *first = strstr(dns, "10.1.1.1:");

		ok(first && !strstr(first + 1, "10.1.1.1:") && strstr(dns, "10.1.2.1:"),
		   "kube-dns: two slices merged, the duplicate endpoint once (%s)", dns);
	}
	sp = kp_state_lookup(kp_ctx_get_state(ctx), "default", "lb", "", KP_PROTO_TCP);
	ok(sp != NULL, "default/lb present");
	if (sp) {
		size_t n;
		const struct kp_frontend *f = kp_svc_port_get_frontends(sp, &n);
		const uint8_t *pfx;
		size_t n_ranges;
		bool lb = false, ext = false, nodeport = false;

		for (size_t i = 0; i < n; i++) {
			lb |= f[i].kind == KP_FE_LOAD_BALANCER;
			ext |= f[i].kind == KP_FE_EXTERNAL_IP;
			nodeport |= f[i].kind == KP_FE_NODE_PORT && f[i].port == 30080;
		}
		ok(lb && ext && nodeport && n == 4,
		   "default/lb: ClusterIP, NodePort, externalIP and LB ingress frontends (%zu)", n);
		is_int(kp_svc_port_get_affinity_timeout(sp), 300, "default/lb affinity timeout");
		is_int(kp_svc_port_get_health_check_node_port(sp), 31000, "healthCheckNodePort");
		kp_svc_port_get_source_ranges(sp, &pfx, &n_ranges);
		ok(n_ranges == 1 && pfx[0] == 24, "loadBalancerSourceRanges");
	}
	is_str(eps(ctx, "default", "lb", "", KP_PROTO_TCP, 0, false), "10.1.3.1:8080,10.1.3.2:8080",
	       "default/lb cluster endpoints: ready ones");
	is_str(eps(ctx, "default", "lb", "", KP_PROTO_TCP, 0, true), "10.1.3.1:8080",
	       "default/lb external endpoints: Local policy, this node's");
	is_str(eps(ctx, "default", "dual", "", KP_PROTO_SCTP, AF_INET, false), "10.1.4.1:80",
	       "default/dual SCTP IPv4");
	is_str(eps(ctx, "default", "dual", "", KP_PROTO_SCTP, AF_INET6, false), "fd00:1::4:1:80",
	       "default/dual SCTP IPv6");
	is_str(eps(ctx, "default", "legacy", "pg", KP_PROTO_TCP, 0, false), "10.1.5.1:5432",
	       "legacy Endpoints: ready addresses only");
	is_str(eps(ctx, "default", "yamlsvc", "web", KP_PROTO_TCP, 0, false),
	       "10.1.6.1:3000,10.1.6.2:3000", "kubectl YAML List");
	kp_ctx_free(ctx);
}

static const struct {
	const char *file;
	int diags;		/* diagnostics expected */
	const char *field;	/* part of the first one's field */
	bool good;		/* holds a good object that must be accepted */
} bad[] = {
	{ "bad/malformed.json", 1, "", false },
	{ "bad/malformed.yaml", 1, "", false },
	{ "bad/port-zero.json", 1, ".port", true },
	{ "bad/port-big.json", 1, ".port", true },
	{ "bad/port-string.json", 1, ".port", true },
	{ "bad/bad-clusterip.json", 1, "spec.clusterIP", true },
	{ "bad/family-mismatch.json", 1, "spec.", true },
	{ "bad/bad-protocol.json", 1, ".protocol", true },
	{ "bad/bad-affinity-timeout.json", 2, "timeoutSeconds", true },
	{ "bad/bad-traffic-policy.json", 1, "spec.externalTrafficPolicy", true },
	{ "bad/missing-name.json", 1, "metadata.name", true },
	{ "bad/missing-ports.json", 1, "spec.ports", true },
	{ "bad/slice-bad-ip.json", 1, "addresses[0]", true },
	{ "bad/slice-no-service-label.json", 1, "kubernetes.io/service-name", true },
	{ "bad/slice-bad-port.json", 1, ".port", true },
	{ "bad/wrong-types.json", 2, "spec", true },
	{ "bad/nodeport-range.json", 1, ".nodePort", true },
	{ "bad/duplicate.json", 1, "metadata.name", true },
	{ "bad/unknown-kind.json", 0, "", true },
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kp_ctx *ctx = kp_ctx_new();
		struct seen s = { 0 };
		int r = load_fixture(ctx, bad[i].file, &s);
		struct kp_counts c;

		kp_ctx_sync(ctx, false);
		kp_ctx_get_counts(ctx, &c);
		if (bad[i].good)
			ok(r >= 1 && s.n == bad[i].diags && strstr(s.field, bad[i].field) &&
			   c.n_svc_ports >= 1,
			   "%s: %d rejected (%s %s/%s %s: %s), the good object kept", bad[i].file,
			   s.n, s.kind, s.ns, s.name, s.field, s.msg);
		else
			ok(r == -EBADMSG && s.n == 1, "%s: refused whole (%s)", bad[i].file, s.msg);
		kp_ctx_free(ctx);
	}
}

void test_fixtures(void)
{
	test_good();
	test_bad();
}
