// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Desired-state rules, end to end through the public API: objects are loaded as YAML,
 * synced with a recording backend, and the service ports' frontends and endpoint sets are
 * compared as text. Covers frontends (ClusterIP, dual stack, NodePort, externalIPs, LB
 * ingress), skips, port-name matching, merging and de-duplication across slices,
 * readiness and terminating fallback, traffic policies, affinity, topology hints, the
 * legacy Endpoints fallback, the delta (reverts, retries, removals) and the sync runner.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <time.h>

#include <kproxy/kproxy.h>

#include "tap.h"

static char buf[4096];

static int load(struct kp_ctx *ctx, const char *src, const char *yaml)
{
	int r = kp_ctx_load(ctx, src, yaml, strlen(yaml), KP_FORMAT_YAML);

	kp_ctx_drain_diags(ctx, NULL, NULL);
	return r;
}

static const char *eps(const struct kp_svc_port *sp, int family, bool external)
{
	size_t n, off = 0;
	const struct kp_endpoint *e;

	buf[0] = '\0';
	if (!sp)
		return "(no such port)";
	e = kp_svc_port_get_endpoints(sp, family, external, &n);
	for (size_t i = 0; i < n; i++) {
		char a[KP_ADDR_STRLEN];

		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s:%u", i ? "," : "",
					kp_addr_to_str(&e[i].addr, a, sizeof(a)), e[i].port);
	}
	return buf;
}

static const char *fes(const struct kp_svc_port *sp)
{
	size_t n, off = 0;
	const struct kp_frontend *f;

	buf[0] = '\0';
	if (!sp)
		return "(no such port)";
	f = kp_svc_port_get_frontends(sp, &n);
	for (size_t i = 0; i < n; i++) {
		char a[KP_ADDR_STRLEN];

		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s %s:%u", i ? "," : "",
					kp_frontend_kind_name(f[i].kind),
					kp_addr_to_str(&f[i].addr, a, sizeof(a)), f[i].port);
	}
	return buf;
}

static const struct kp_svc_port *port(struct kp_ctx *ctx, const char *ns, const char *name,
				      const char *pname, enum kp_protocol proto)
{
	return kp_state_lookup(kp_ctx_get_state(ctx), ns, name, pname, proto);
}

static struct kp_ctx *new_ctx(void)
{
	struct kp_ctx *ctx = kp_ctx_new();
	struct kp_addr np[2];

	kp_addr_from_str("192.168.1.10", &np[0]);
	kp_addr_from_str("fd00:1::10", &np[1]);
	kp_ctx_set_node_name(ctx, "node-a");
	kp_ctx_set_nodeport_addrs(ctx, np, 2);
	return ctx;
}

#define SVC(name, extra)                                                                    \
	"apiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: ns}\n"       \
	"spec:\n" extra "\n---\n"
#define SLICE(name, svc, at, ports, endpoints)                                              \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"                           \
	"metadata: {name: " name ", namespace: ns, labels: {kubernetes.io/service-name: "  \
	svc "}}\naddressType: " at "\nports: " ports "\nendpoints: " endpoints "\n---\n"

static void test_cluster_ip(void)
{
	struct kp_ctx *ctx = new_ctx();
	const struct kp_svc_port *sp;

	load(ctx, "f", SVC("web", "  clusterIP: 10.0.0.10\n  ports:\n"
			   "  - {name: http, port: 80, targetPort: web}\n"
			   "  - {name: dns, port: 53, protocol: UDP}")
		       SLICE("web-1", "web", "IPv4",
			     "[{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]",
			     "[{addresses: [10.1.0.2]}, {addresses: [10.1.0.1], nodeName: node-a}]")
		       SLICE("web-2", "web", "IPv4", "[{name: http, port: 8080}]",
			     "[{addresses: [10.1.0.3]}, {addresses: [10.1.0.1]}]"));
	is_int(kp_ctx_sync(ctx, false), 0, "sync");
	is_int(kp_state_get_size(kp_ctx_get_state(ctx)), 2, "two service ports");
	sp = port(ctx, "ns", "web", "http", KP_PROTO_TCP);
	is_str(fes(sp), "ClusterIP 10.0.0.10:80", "http frontend");
	is_str(eps(sp, 0, false), "10.1.0.1:8080,10.1.0.2:8080,10.1.0.3:8080",
	       "endpoints merged across slices, sorted, de-duplicated");
	sp = port(ctx, "ns", "web", "dns", KP_PROTO_UDP);
	is_str(eps(sp, 0, false), "10.1.0.1:5353,10.1.0.2:5353",
	       "UDP port matched by name and protocol, only slices that carry it");
	ok(!port(ctx, "ns", "web", "dns", KP_PROTO_TCP), "no TCP port named dns");
	kp_ctx_free(ctx);
}

static void test_dual_stack_and_external(void)
{
	struct kp_ctx *ctx = new_ctx();
	const struct kp_svc_port *sp;

	load(ctx, "f", SVC("lb", "  type: LoadBalancer\n  clusterIP: 10.0.0.20\n"
			   "  clusterIPs: [10.0.0.20, 'fd00::20']\n  ipFamilies: [IPv4, IPv6]\n"
			   "  externalIPs: [198.51.100.7, '2001:db8::7']\n"
			   "  ports: [{name: http, port: 80, nodePort: 30080}]\n"
			   "status:\n  loadBalancer:\n    ingress: [{ip: 203.0.113.5}, "
			   "{ip: 203.0.113.6, ipMode: Proxy}, {hostname: lb.example.com}]")
		       SLICE("lb-4", "lb", "IPv4", "[{name: http, port: 8080}]",
			     "[{addresses: [10.1.0.1]}]")
		       SLICE("lb-6", "lb", "IPv6", "[{name: http, port: 8080}]",
			     "[{addresses: ['fd00:1::1']}]")
		       SVC("v4only", "  type: NodePort\n  clusterIP: 10.0.0.21\n"
			   "  externalIPs: ['2001:db8::8']\n"
			   "  ports: [{name: http, port: 80, nodePort: 30081}]"));
	kp_ctx_sync(ctx, false);
	sp = port(ctx, "ns", "lb", "http", KP_PROTO_TCP);
	is_str(fes(sp), "ClusterIP 10.0.0.20:80,ClusterIP fd00::20:80,NodePort 192.168.1.10:30080,"
	       "NodePort fd00:1::10:30080,ExternalIP 198.51.100.7:80,ExternalIP 2001:db8::7:80,"
	       "LoadBalancer 203.0.113.5:80",
	       "frontends: both families, node ports, external IPs, LB ingress but not ipMode Proxy");
	is_str(eps(sp, AF_INET, false), "10.1.0.1:8080", "IPv4 frontends get IPv4 endpoints");
	is_str(eps(sp, AF_INET6, false), "fd00:1::1:8080", "IPv6 frontends get IPv6 endpoints");
	sp = port(ctx, "ns", "v4only", "http", KP_PROTO_TCP);
	is_str(fes(sp), "ClusterIP 10.0.0.21:80,NodePort 192.168.1.10:30081",
	       "a single-stack service ignores node addresses and external IPs of the other family");
	ok(kp_state_count_family(kp_ctx_get_state(ctx), AF_INET) == 2 &&
	   kp_state_count_family(kp_ctx_get_state(ctx), AF_INET6) == 1 &&
	   kp_state_count_family(kp_ctx_get_state(ctx), AF_UNIX) == 0,
	   "ports with a frontend of each family: 2 IPv4, 1 IPv6");
	load(ctx, "f", SVC("lb", "  type: ClusterIP\n  clusterIP: 10.0.0.20\n"
			   "  ports: [{name: http, port: 80}]")
		       SVC("v4only", "  clusterIP: 10.0.0.21\n  ports: [{name: http, port: 80}]"));
	kp_ctx_sync(ctx, false);
	ok(kp_state_count_family(kp_ctx_get_state(ctx), AF_INET) == 2 &&
	   kp_state_count_family(kp_ctx_get_state(ctx), AF_INET6) == 0,
	   "lb made IPv4 only: no IPv6 port left (%zu)",
	   kp_state_count_family(kp_ctx_get_state(ctx), AF_INET6));
	kp_ctx_unload(ctx, "f");
	kp_ctx_sync(ctx, false);
	ok(kp_state_count_family(kp_ctx_get_state(ctx), AF_INET) == 0 &&
	   kp_state_get_size(kp_ctx_get_state(ctx)) == 0, "and none when every service is gone");
	kp_ctx_free(ctx);
}

static void test_skipped(void)
{
	struct kp_ctx *ctx = new_ctx();
	struct kp_counts c;

	load(ctx, "f", SVC("headless", "  clusterIP: None\n  ports: [{port: 80}]")
		       SVC("ext", "  type: ExternalName\n  externalName: example.com")
		       "apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: ns, "
		       "labels: {service.kubernetes.io/service-proxy-name: foo}}\n"
		       "spec: {clusterIP: 10.0.0.30, ports: [{port: 80}]}\n---\n"
		       SVC("pending", "  ports: [{port: 80}]")
		       SVC("fqdn", "  clusterIP: 10.0.0.31\n  ports: [{port: 80}]")
		       SLICE("fqdn-1", "fqdn", "FQDN", "[{port: 80}]",
			     "[{addresses: [db.example.com]}]"));
	kp_ctx_sync(ctx, false);
	kp_ctx_get_counts(ctx, &c);
	is_int(c.n_services, 5, "skipped services are held");
	is_int(c.n_rejected, 0, "and are not errors");
	is_int(kp_state_get_size(kp_ctx_get_state(ctx)), 1,
	       "headless, ExternalName, service-proxy-name and unallocated services are skipped");
	is_str(eps(port(ctx, "ns", "fqdn", "", KP_PROTO_TCP), 0, false), "",
	       "FQDN slices give no endpoints");
	kp_ctx_free(ctx);
}

static void test_readiness(void)
{
	struct kp_ctx *ctx = new_ctx();

	load(ctx, "f", SVC("s", "  clusterIP: 10.0.0.40\n  ports: [{port: 80}]")
		       SLICE("s-1", "s", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.1], conditions: {ready: true}},"
			     " {addresses: [10.1.0.2], conditions: {ready: false, serving: false}},"
			     " {addresses: [10.1.0.3], conditions: {ready: false, serving: true,"
			     " terminating: true}}]")
		       SVC("t", "  clusterIP: 10.0.0.41\n  ports: [{port: 80}]")
		       SLICE("t-1", "t", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.3], conditions: {ready: false, serving: true,"
			     " terminating: true}},"
			     " {addresses: [10.1.0.4], conditions: {ready: false, serving: false,"
			     " terminating: true}},"
			     " {addresses: [10.1.0.5], conditions: {ready: false}}]")
		       SLICE("t-2", "t", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.3], conditions: {ready: true}}]"));
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "s", "", KP_PROTO_TCP), 0, false), "10.1.0.1:8080",
	       "ready endpoints only while any is ready");
	load(ctx, "f", SVC("t", "  clusterIP: 10.0.0.41\n  ports: [{port: 80}]")
		       SLICE("t-1", "t", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.3], conditions: {ready: false, serving: true,"
			     " terminating: true}},"
			     " {addresses: [10.1.0.4], conditions: {ready: false, serving: false,"
			     " terminating: true}},"
			     " {addresses: [10.1.0.5], conditions: {ready: false}}]"));
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "t", "", KP_PROTO_TCP), 0, false), "10.1.0.3:8080",
	       "none ready: serving and terminating ones; unready never");
	ok(!port(ctx, "ns", "s", "", KP_PROTO_TCP), "service s left with its file content");
	load(ctx, "g", SLICE("u-1", "u", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.6], conditions: {terminating: true}},"
			     " {addresses: [10.1.0.6], conditions: {ready: true}}]")
		       SVC("u", "  clusterIP: 10.0.0.42\n  ports: [{port: 80}]"));
	kp_ctx_sync(ctx, false);
	{
		size_t n;
		const struct kp_endpoint *e =
			kp_svc_port_get_endpoints(port(ctx, "ns", "u", "", KP_PROTO_TCP), 0, false,
						  &n);

		ok(n == 1 && !e[0].terminating, "a duplicate endpoint: the non-terminating copy wins");
	}
	kp_ctx_free(ctx);
}

static void test_traffic_policies(void)
{
	struct kp_ctx *ctx = new_ctx();
	const struct kp_svc_port *sp;

	load(ctx, "f", SVC("e", "  type: LoadBalancer\n  clusterIP: 10.0.0.50\n"
			   "  externalTrafficPolicy: Local\n  healthCheckNodePort: 31000\n"
			   "  ports: [{port: 80, nodePort: 30050}]")
		       SLICE("e-1", "e", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.1], nodeName: node-a},"
			     " {addresses: [10.1.0.2], nodeName: node-b},"
			     " {addresses: [10.1.0.3], nodeName: node-a,"
			     "  conditions: {ready: false, serving: true, terminating: true}}]")
		       SVC("i", "  clusterIP: 10.0.0.51\n  internalTrafficPolicy: Local\n"
			   "  ports: [{port: 80}]")
		       SLICE("i-1", "i", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.4], nodeName: node-b},"
			     " {addresses: [10.1.0.5], nodeName: node-a}]")
		       SVC("n", "  type: NodePort\n  clusterIP: 10.0.0.52\n"
			   "  externalTrafficPolicy: Local\n  ports: [{port: 80, nodePort: 30052}]")
		       SLICE("n-1", "n", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.6], nodeName: node-b},"
			     " {addresses: [10.1.0.7], nodeName: node-b,"
			     "  conditions: {ready: false, serving: true, terminating: true}}]"));
	kp_ctx_sync(ctx, false);
	sp = port(ctx, "ns", "e", "", KP_PROTO_TCP);
	is_str(eps(sp, 0, false), "10.1.0.1:8080,10.1.0.2:8080",
	       "externalTrafficPolicy Local: cluster frontends still use every ready endpoint");
	is_str(eps(sp, 0, true), "10.1.0.1:8080",
	       "externalTrafficPolicy Local: external frontends use this node's ready endpoints");
	is_int(kp_svc_port_get_health_check_node_port(sp), 31000, "healthCheckNodePort kept");
	ok(kp_svc_port_external_local(sp), "external_local flag");
	{
		size_t n;

		kp_svc_port_get_all_endpoints(sp, &n);
		is_int(n, 2, "all endpoints: the union of both sets");
	}
	sp = port(ctx, "ns", "i", "", KP_PROTO_TCP);
	is_str(eps(sp, 0, false), "10.1.0.5:8080",
	       "internalTrafficPolicy Local: cluster frontends use this node's endpoints");
	sp = port(ctx, "ns", "n", "", KP_PROTO_TCP);
	is_str(eps(sp, 0, true), "", "no local endpoint: external frontends get none");
	is_str(eps(sp, 0, false), "10.1.0.6:8080", "cluster frontends get the remote one");
	kp_ctx_set_node_name(ctx, "node-b");
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "e", "", KP_PROTO_TCP), 0, true), "10.1.0.2:8080",
	       "changing the node name recomputes locality");
	kp_ctx_free(ctx);
}

static void test_affinity_and_hints(void)
{
	struct kp_ctx *ctx = new_ctx();
	const struct kp_svc_port *sp;

	load(ctx, "f", SVC("a", "  clusterIP: 10.0.0.60\n  sessionAffinity: ClientIP\n"
			   "  ports: [{port: 80}]")
		       SVC("b", "  clusterIP: 10.0.0.61\n  sessionAffinity: ClientIP\n"
			   "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 300}}\n"
			   "  ports: [{port: 80}]")
		       SVC("h", "  clusterIP: 10.0.0.62\n  ports: [{port: 80}]")
		       SLICE("h-1", "h", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.1], hints: {forZones: [{name: z1}]}},"
			     " {addresses: [10.1.0.2], hints: {forZones: [{name: z2}]}},"
			     " {addresses: [10.1.0.3], hints: {forZones: [{name: z1}]}}]")
		       SVC("p", "  clusterIP: 10.0.0.63\n  ports: [{port: 80}]")
		       SLICE("p-1", "p", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.1], hints: {forZones: [{name: z1}]}},"
			     " {addresses: [10.1.0.2]}]"));
	kp_ctx_sync(ctx, false);
	sp = port(ctx, "ns", "a", "", KP_PROTO_TCP);
	ok(kp_svc_port_get_affinity(sp) == KP_AFFINITY_CLIENT_IP, "ClientIP affinity");
	is_int(kp_svc_port_get_affinity_timeout(sp), 10800, "default timeout 10800 s");
	is_int(kp_svc_port_get_affinity_timeout(port(ctx, "ns", "b", "", KP_PROTO_TCP)), 300,
	       "timeoutSeconds honoured");
	is_str(eps(port(ctx, "ns", "h", "", KP_PROTO_TCP), 0, false),
	       "10.1.0.1:8080,10.1.0.2:8080,10.1.0.3:8080", "no node zone: hints ignored");
	kp_ctx_set_node_zone(ctx, "z1");
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "h", "", KP_PROTO_TCP), 0, false), "10.1.0.1:8080,10.1.0.3:8080",
	       "zone z1: endpoints hinted for z1");
	is_str(eps(port(ctx, "ns", "p", "", KP_PROTO_TCP), 0, false), "10.1.0.1:8080,10.1.0.2:8080",
	       "hints ignored unless every ready endpoint has them");
	kp_ctx_set_node_zone(ctx, "z9");
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "h", "", KP_PROTO_TCP), 0, false),
	       "10.1.0.1:8080,10.1.0.2:8080,10.1.0.3:8080", "no endpoint hinted for our zone: all");
	kp_ctx_free(ctx);
}

/* PreferSameNode: hints.forNodes win over zone hints, on the same all-or-nothing rule. */
static void test_node_hints(void)
{
	struct kp_ctx *ctx = new_ctx();
	const char *node_eps;

	load(ctx, "f", SVC("n", "  clusterIP: 10.0.0.64\n  ports: [{port: 80}]")
		       SLICE("n-1", "n", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.1], hints: {forNodes: [{name: node-a}],"
			     " forZones: [{name: z1}]}},"
			     " {addresses: [10.1.0.2], hints: {forNodes: [{name: node-b}],"
			     " forZones: [{name: z1}]}},"
			     " {addresses: [10.1.0.3], hints: {forNodes: [{name: node-c}],"
			     " forZones: [{name: z2}]}}]")
		       SVC("m", "  clusterIP: 10.0.0.65\n  ports: [{port: 80}]")
		       SLICE("m-1", "m", "IPv4", "[{port: 8080}]",
			     "[{addresses: [10.1.0.1], hints: {forNodes: [{name: node-a}]}},"
			     " {addresses: [10.1.0.2]}]"));
	kp_ctx_set_node_zone(ctx, "z1");
	kp_ctx_sync(ctx, false);
	node_eps = eps(port(ctx, "ns", "n", "", KP_PROTO_TCP), 0, false);
	is_str(node_eps, "10.1.0.1:8080", "forNodes naming this node: its endpoint alone");
	is_str(eps(port(ctx, "ns", "m", "", KP_PROTO_TCP), 0, false), "10.1.0.1:8080,10.1.0.2:8080",
	       "node hints ignored unless every ready endpoint has them");
	kp_ctx_set_node_name(ctx, "node-x");
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "n", "", KP_PROTO_TCP), 0, false), "10.1.0.1:8080,10.1.0.2:8080",
	       "no endpoint hinted for this node: the zone hints apply");
	kp_ctx_free(ctx);
}

static void test_legacy_endpoints(void)
{
	struct kp_ctx *ctx = new_ctx();
	static const char endpoints[] =
		"apiVersion: v1\nkind: Endpoints\nmetadata: {name: l, namespace: ns}\n"
		"subsets:\n- addresses: [{ip: 10.1.0.1, nodeName: node-a}, {ip: 10.1.0.2}]\n"
		"  notReadyAddresses: [{ip: 10.1.0.3}]\n  ports: [{name: pg, port: 5432}]\n";

	load(ctx, "svc", SVC("l", "  clusterIP: 10.0.0.70\n  ports: [{name: pg, port: 5432}]"));
	load(ctx, "ep", endpoints);
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "l", "pg", KP_PROTO_TCP), 0, false),
	       "10.1.0.1:5432,10.1.0.2:5432", "legacy Endpoints used when there is no slice");
	load(ctx, "slice", SLICE("l-1", "l", "IPv4", "[{name: pg, port: 5433}]",
				 "[{addresses: [10.1.0.9]}]"));
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "l", "pg", KP_PROTO_TCP), 0, false), "10.1.0.9:5433",
	       "slices win over legacy Endpoints");
	is_int(kp_ctx_unload(ctx, "slice"), 1, "unload removes the slice");
	kp_ctx_sync(ctx, false);
	is_str(eps(port(ctx, "ns", "l", "pg", KP_PROTO_TCP), 0, false),
	       "10.1.0.1:5432,10.1.0.2:5432", "back to the legacy Endpoints");
	kp_ctx_free(ctx);
}

/* A backend that records what it is handed and can be told to fail. */
struct rec {
	int fail;
	int syncs;
	bool full;
	char log[2048];
};
static struct rec rec;

static int rec_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	*ret_priv = &rec;
	return 0;
}

static int rec_one(const struct kp_svc_port *old, const struct kp_svc_port *new_sp, void *ud)
{
	const struct kp_svc_port *sp = new_sp ? new_sp : old;
	size_t len = strlen(rec.log);

	snprintf(rec.log + len, sizeof(rec.log) - len, "%s%c%s", len ? " " : "",
		 !old ? '+' : !new_sp ? '-' : old == new_sp ? '=' : '~', kp_svc_port_get_name(sp));
	return 0;
}

static int rec_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	rec.syncs++;
	rec.full = kp_delta_is_full(delta);
	rec.log[0] = '\0';
	kp_delta_foreach(delta, rec_one, NULL);
	return rec.fail;
}

static const struct kp_backend_ops rec_ops = {
	.name = "recorder", .init = rec_init, .sync = rec_sync,
};

static void test_delta(void)
{
	struct kp_ctx *ctx = new_ctx();
	static const char two[] = SVC("a", "  clusterIP: 10.0.0.80\n  ports: [{port: 80}]")
		SVC("b", "  clusterIP: 10.0.0.81\n  ports: [{port: 80}]");

	is_int(kp_backend_register(ctx, &rec_ops), 0, "register a backend");
	is_int(kp_backend_register(ctx, &rec_ops), -EEXIST, "a name registers once");
	is_int(kp_ctx_set_backend(ctx, "nope", NULL, 0), -ENOENT, "unknown backend");
	is_int(kp_ctx_set_backend(ctx, "recorder", NULL, 0), 0, "select it");
	load(ctx, "f", two);
	kp_ctx_sync(ctx, false);
	ok(rec.full, "first sync is full");
	is_str(rec.log, "+a +b", "first sync: both added");
	kp_ctx_sync(ctx, false);
	ok(!rec.full, "then partial");
	is_str(rec.log, "", "nothing changed: empty delta");
	load(ctx, "f", SVC("a", "  clusterIP: 10.0.0.80\n  ports: [{port: 81}]")
		       SVC("b", "  clusterIP: 10.0.0.81\n  ports: [{port: 80}]"));
	load(ctx, "f", two);
	ok(!kp_ctx_has_pending(ctx) || (kp_ctx_sync(ctx, false), strcmp(rec.log, "") == 0),
	   "a change that reverts itself before the sync disappears");
	load(ctx, "f", SVC("a", "  clusterIP: 10.0.0.80\n  ports: [{port: 81}]"));
	rec.fail = -EIO;
	is_int(kp_ctx_sync(ctx, false), -EIO, "backend failure is returned");
	is_str(rec.log, "~a -b", "changed and removed");
	ok(kp_ctx_has_pending(ctx), "a failed sync stays pending");
	rec.fail = 0;
	kp_ctx_sync(ctx, false);
	is_str(rec.log, "~a -b", "and is handed over again");
	kp_ctx_sync(ctx, true);
	ok(rec.full, "full sync on request");
	is_str(rec.log, "=a", "full delta walks the unchanged ports too");
	kp_ctx_free(ctx);
}

static void test_runner(void)
{
	struct kp_ctx *ctx = new_ctx();
	int64_t wait;

	kp_backend_register(ctx, &rec_ops);
	kp_ctx_set_backend(ctx, "recorder", NULL, 0);
	kp_ctx_set_sync_periods(ctx, 1000, 30000);
	rec.syncs = 0;
	is_int(kp_ctx_run_due(ctx, 0, &wait), 1, "first call syncs at once");
	is_int(wait, 30000, "then waits for the periodic resync");
	load(ctx, "f", SVC("a", "  clusterIP: 10.0.0.90\n  ports: [{port: 80}]"));
	is_int(kp_ctx_run_due(ctx, 200, &wait), 0, "a change inside min-sync-period waits");
	is_int(wait, 800, "until min-sync-period has passed");
	load(ctx, "f", SVC("a", "  clusterIP: 10.0.0.90\n  ports: [{port: 81}]"));
	is_int(kp_ctx_run_due(ctx, 1000, &wait), 1, "burst coalesced into one sync");
	is_int(rec.syncs, 2, "two syncs in all");
	is_int(kp_ctx_run_due(ctx, 5000, &wait), 0, "nothing pending: no sync");
	is_int(wait, 25000, "next full resync 30 s after the last full one");
	is_int(kp_ctx_run_due(ctx, 30000, &wait), 1, "periodic resync");
	ok(rec.full, "which is full");
	rec.fail = -EAGAIN;
	load(ctx, "f", SVC("a", "  clusterIP: 10.0.0.90\n  ports: [{port: 82}]"));
	is_int(kp_ctx_run_due(ctx, 31000, &wait), -EAGAIN, "a failing sync reports its error");
	is_int(wait, 1000, "and is retried after min-sync-period");
	rec.fail = 0;
	is_int(kp_ctx_run_due(ctx, 32000, &wait), 1, "retry succeeds");
	kp_ctx_free(ctx);
}

static double lat[8];
static size_t n_lat;

static void take_latency(double seconds, void *userdata)
{
	(void)userdata;
	if (n_lat < 8)
		lat[n_lat++] = seconds;
}

#define TRIGGERED(name, when, ip)                                                           \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"                           \
	"metadata: {name: " name ", namespace: ns, labels: {kubernetes.io/service-name: t},"\
	" annotations: {endpoints.kubernetes.io/last-change-trigger-time: '" when "'}}\n"   \
	"addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [" ip "]}]\n---\n"

#define TRIGGERED_FMT(name, ip)                                                             \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"                           \
	"metadata: {name: " name ", namespace: ns, labels: {kubernetes.io/service-name: t},"\
	" annotations: {endpoints.kubernetes.io/last-change-trigger-time: '%s'}}\n"         \
	"addressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [" ip "]}]\n---\n"

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The service t with the slices t-1 and t-2 changed at @t1 ("Z") and @t1 + 0.5 s
 * ("+02:00" with a fraction), and t-3 with an unparsable time. */
static void load_triggered(struct kp_ctx *ctx, time_t t1, bool with_t3)
{
	char z[32], plus2[40], yaml[2048];
	time_t t2 = t1 + 7200;
	struct tm tm;

	strftime(z, sizeof(z), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t1, &tm));
	strftime(plus2, sizeof(plus2), "%Y-%m-%dT%H:%M:%S.500+02:00", gmtime_r(&t2, &tm));
	snprintf(yaml, sizeof(yaml), "%s" TRIGGERED_FMT("t-1", "10.1.0.1")
		 TRIGGERED_FMT("t-2", "10.1.0.2") "%s",
		 SVC("t", "  clusterIP: 10.0.0.95\n  ports: [{port: 80}]"), z, plus2,
		 with_t3 ? TRIGGERED("t-3", "yesterday", "10.1.0.3") : "");
	load(ctx, "f", yaml);
}

/* kubeproxy_network_programming_duration_seconds: trigger time to programmed */
static void test_programming_latency(void)
{
	struct kp_ctx *ctx = new_ctx();
	time_t t1 = (time_t)wall_now() + 1;	/* the next whole second: after the context */
	double now;

	kp_backend_register(ctx, &rec_ops);
	kp_ctx_set_backend(ctx, "recorder", NULL, 0);
	/* both trigger times must have passed (less than 1.6 s) */
	while (wall_now() < (double)t1 + 0.6)
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	load_triggered(ctx, t1, true);
	n_lat = 0;
	is_int(kp_ctx_drain_programming_latencies(ctx, take_latency, NULL), 0,
	       "nothing is timed before a sync");
	rec.fail = -EAGAIN;
	kp_ctx_sync(ctx, false);
	is_int(kp_ctx_drain_programming_latencies(ctx, take_latency, NULL), 0,
	       "nor after a failed one");
	rec.fail = 0;
	kp_ctx_sync(ctx, false);
	now = wall_now();
	is_int(kp_ctx_drain_programming_latencies(ctx, take_latency, NULL), 2,
	       "two changes timed after a good sync (the unparsable time is not)");
	ok(n_lat == 2 && lat[0] > now - (double)t1 - 1 && lat[0] < now - (double)t1 + 1 &&
	   lat[1] > lat[0] - 0.6 && lat[1] < lat[0] - 0.4,
	   "seconds since T (Z), and since T + 0.5 s (+02:00 with a fraction)");
	load_triggered(ctx, t1, false);
	kp_ctx_sync(ctx, false);
	is_int(kp_ctx_drain_programming_latencies(ctx, NULL, NULL), 0,
	       "the same trigger times again are not timed twice");
	load(ctx, "f", SVC("t", "  clusterIP: 10.0.0.95\n  ports: [{port: 80}]")
		       TRIGGERED("t-1", "2001-09-09T01:46:40Z", "10.1.0.1"));
	kp_ctx_sync(ctx, false);
	is_int(kp_ctx_drain_programming_latencies(ctx, NULL, NULL), 0,
	       "a change made before the context was created is not timed (kube-proxy's "
	       "trackerStartTime: a restart lists objects changed long ago)");
	kp_ctx_free(ctx);
}

int main(void)
{
	test_cluster_ip();
	test_dual_stack_and_external();
	test_skipped();
	test_readiness();
	test_traffic_policies();
	test_affinity_and_hints();
	test_node_hints();
	test_legacy_endpoints();
	test_delta();
	test_runner();
	test_programming_latency();
	return tap_done();
}
