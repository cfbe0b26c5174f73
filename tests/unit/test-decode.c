// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Decoding and validation: every bad-input rule rejects exactly its object with one
 * diagnostic naming kind, namespace/name and field, while a good object in the same
 * document is accepted; document-level errors (malformed JSON/YAML, oversize) keep the
 * source's previous objects; duplicates; YAML scalars, multi-document files, aliases;
 * and the fixtures (real API-server JSON) decode to the expected state.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kproxy/kproxy.h>

#include "tap.h"

struct seen {
	int n;
	char kind[32], ns[64], name[64], field[128], msg[256];
};

static void on_diag(const struct kp_diag *d, void *ud)
{
	struct seen *s = ud;

	if (s->n++ == 0) {
		snprintf(s->kind, sizeof(s->kind), "%s", d->kind);
		snprintf(s->ns, sizeof(s->ns), "%s", d->ns);
		snprintf(s->name, sizeof(s->name), "%s", d->name);
		snprintf(s->field, sizeof(s->field), "%s", d->field);
		snprintf(s->msg, sizeof(s->msg), "%s", d->msg);
	}
}

#define GOOD_SVC                                                                            \
	"{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"good\","      \
	"\"namespace\":\"default\"},\"spec\":{\"clusterIP\":\"10.0.9.1\",\"ports\":"        \
	"[{\"port\":80}]}}"
#define SVC(spec) "{\"kind\":\"Service\",\"metadata\":{\"name\":\"bad\",\"namespace\":\"ns\"}," spec "}"
#define SLICE(body)                                                                         \
	"{\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"bad\",\"namespace\":\"ns\","   \
	"\"labels\":{\"kubernetes.io/service-name\":\"s\"}}," body "}"

static const struct bad_case {
	const char *what;
	const char *obj;
	const char *kind;
	const char *field;
} bad_cases[] = {
	{ "port 0", SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"port\":0}]}"),
	  "Service", "spec.ports[0].port" },
	{ "port 70000", SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"port\":70000}]}"),
	  "Service", "spec.ports[0].port" },
	{ "port as a string",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"port\":\"80\"}]}"),
	  "Service", "spec.ports[0].port" },
	{ "port missing", SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"name\":\"a\"}]}"),
	  "Service", "spec.ports[0].port" },
	{ "second port bad",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"name\":\"a\",\"port\":1},"
	      "{\"name\":\"b\",\"port\":-3}]}"),
	  "Service", "spec.ports[1].port" },
	{ "targetPort 0",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"port\":1,\"targetPort\":0}]}"),
	  "Service", "spec.ports[0].targetPort" },
	{ "nodePort 70000",
	  SVC("\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.0.0.1\",\"ports\":"
	      "[{\"port\":1,\"nodePort\":70000}]}"),
	  "Service", "spec.ports[0].nodePort" },
	{ "nodePort on a ClusterIP service",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"port\":1,\"nodePort\":30000}]}"),
	  "Service", "spec.ports[0].nodePort" },
	{ "duplicate port name",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"name\":\"a\",\"port\":1},"
	      "{\"name\":\"a\",\"port\":2}]}"),
	  "Service", "spec.ports[1].name" },
	{ "protocol ICMP",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"port\":1,\"protocol\":\"ICMP\"}]}"),
	  "Service", "spec.ports[0].protocol" },
	{ "no ports", SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\"}"), "Service", "spec.ports" },
	{ "ports is an object", SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":{}}"),
	  "Service", "spec.ports" },
	{ "spec is a string", SVC("\"spec\":\"x\""), "Service", "spec" },
	{ "bad clusterIP", SVC("\"spec\":{\"clusterIP\":\"10.0.0.300\",\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.clusterIP" },
	{ "clusterIPs[0] differs",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"clusterIPs\":[\"10.0.0.2\"],"
	      "\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.clusterIPs[0]" },
	{ "two IPs of one family",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.5\",\"clusterIPs\":[\"10.0.0.5\",\"10.0.0.6\"],"
	      "\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.clusterIPs" },
	{ "ipFamilies mismatch",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.5\",\"clusterIPs\":[\"10.0.0.5\",\"fd00::5\"],"
	      "\"ipFamilies\":[\"IPv6\",\"IPv4\"],\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.ipFamilies[0]" },
	{ "externalIP not an IP",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"externalIPs\":[\"1.2.3\"],"
	      "\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.externalIPs[0]" },
	{ "affinity timeout 0",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"sessionAffinity\":\"ClientIP\","
	      "\"sessionAffinityConfig\":{\"clientIP\":{\"timeoutSeconds\":0}},\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.sessionAffinityConfig.clientIP.timeoutSeconds" },
	{ "affinity timeout 86401",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"sessionAffinity\":\"ClientIP\","
	      "\"sessionAffinityConfig\":{\"clientIP\":{\"timeoutSeconds\":86401}},"
	      "\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.sessionAffinityConfig.clientIP.timeoutSeconds" },
	{ "affinity Sticky",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"sessionAffinity\":\"Sticky\","
	      "\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.sessionAffinity" },
	{ "externalTrafficPolicy Sometimes",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"externalTrafficPolicy\":\"Sometimes\","
	      "\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.externalTrafficPolicy" },
	{ "internalTrafficPolicy 7",
	  SVC("\"spec\":{\"clusterIP\":\"10.0.0.1\",\"internalTrafficPolicy\":7,"
	      "\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.internalTrafficPolicy" },
	{ "type Magic", SVC("\"spec\":{\"type\":\"Magic\",\"clusterIP\":\"10.0.0.1\","
			    "\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.type" },
	{ "bad source range",
	  SVC("\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.0.0.1\","
	      "\"loadBalancerSourceRanges\":[\"10.0.0.0/33\"],\"ports\":[{\"port\":1}]}"),
	  "Service", "spec.loadBalancerSourceRanges[0]" },
	{ "bad ingress IP",
	  SVC("\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.0.0.1\","
	      "\"ports\":[{\"port\":1}]},\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"x\"}]}}"),
	  "Service", "status.loadBalancer.ingress[0].ip" },
	{ "IPv6 address in an IPv4 slice",
	  SLICE("\"addressType\":\"IPv4\",\"ports\":[{\"port\":80}],"
		"\"endpoints\":[{\"addresses\":[\"fd00::1\"]}]"),
	  "EndpointSlice", "endpoints[0].addresses[0]" },
	{ "slice port -1",
	  SLICE("\"addressType\":\"IPv4\",\"ports\":[{\"port\":-1}],\"endpoints\":[]"),
	  "EndpointSlice", "ports[0].port" },
	{ "slice addressType IPX", SLICE("\"addressType\":\"IPX\""), "EndpointSlice",
	  "addressType" },
	{ "endpoint without addresses",
	  SLICE("\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[]}]"), "EndpointSlice",
	  "endpoints[0].addresses" },
	{ "ready is a string",
	  SLICE("\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],"
		"\"conditions\":{\"ready\":\"yes\"}}]"),
	  "EndpointSlice", "endpoints[0].conditions.ready" },
	{ "slice without the service-name label",
	  "{\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"bad\",\"namespace\":\"ns\"},"
	  "\"addressType\":\"IPv4\"}",
	  "EndpointSlice", "metadata.labels[kubernetes.io/service-name]" },
	{ "Endpoints with a bad IP",
	  "{\"kind\":\"Endpoints\",\"metadata\":{\"name\":\"bad\",\"namespace\":\"ns\"},"
	  "\"subsets\":[{\"addresses\":[{\"ip\":\"300.1.1.1\"}],\"ports\":[{\"port\":1}]}]}",
	  "Endpoints", "subsets[0].addresses[0].ip" },
	{ "ServiceCIDR with a bad range",
	  "{\"kind\":\"ServiceCIDR\",\"apiVersion\":\"networking.k8s.io/v1\",\"metadata\":"
	  "{\"name\":\"bad\",\"namespace\":\"ns\"},\"spec\":{\"cidrs\":[\"10.96.0.0/33\"]}}",
	  "ServiceCIDR", "spec.cidrs[0]" },
	{ "ServiceCIDR with two IPv4 ranges",
	  "{\"kind\":\"ServiceCIDR\",\"apiVersion\":\"networking.k8s.io/v1\",\"metadata\":"
	  "{\"name\":\"bad\",\"namespace\":\"ns\"},\"spec\":{\"cidrs\":[\"10.96.0.0/16\","
	  "\"10.97.0.0/16\"]}}",
	  "ServiceCIDR", "spec.cidrs[1]" },
	{ "ServiceCIDR without ranges",
	  "{\"kind\":\"ServiceCIDR\",\"apiVersion\":\"networking.k8s.io/v1\",\"metadata\":"
	  "{\"name\":\"bad\",\"namespace\":\"ns\"},\"spec\":{\"cidrs\":[]}}",
	  "ServiceCIDR", "spec.cidrs" },
};

static void test_bad_objects(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct kp_ctx *ctx = kp_ctx_new();
		struct seen s = { 0 };
		char doc[2048];
		int r;

		snprintf(doc, sizeof(doc), "{\"kind\":\"List\",\"items\":[%s,%s]}", c->obj, GOOD_SVC);
		r = kp_ctx_load(ctx, "case", doc, strlen(doc), KP_FORMAT_JSON);
		kp_ctx_drain_diags(ctx, on_diag, &s);
		ok(r == 1 && s.n == 1 && strcmp(s.kind, c->kind) == 0 &&
		   strcmp(s.ns, "ns") == 0 && strcmp(s.name, "bad") == 0 &&
		   strcmp(s.field, c->field) == 0,
		   "%s: rejected alone as %s ns/bad %s (%s)", c->what, c->kind, c->field, s.msg);
		if (s.n != 1 || strcmp(s.field, c->field))
			printf("#   r=%d diags=%d kind=%s name=%s/%s field=%s\n", r, s.n, s.kind, s.ns,
			       s.name, s.field);
		kp_ctx_free(ctx);
	}
}

static int load_str(struct kp_ctx *ctx, const char *src, const char *doc)
{
	return kp_ctx_load(ctx, src, doc, strlen(doc), KP_FORMAT_AUTO);
}

static void test_documents(void)
{
	struct kp_ctx *ctx = kp_ctx_new();
	struct seen s = { 0 };
	struct kp_counts c;
	static const char good[] = GOOD_SVC;
	char *big;
	int r;

	is_int(kp_ctx_load(ctx, "f", good, strlen(good), KP_FORMAT_AUTO), 1, "one good object");
	r = load_str(ctx, "f", "{\"kind\": \"Service\", ");
	kp_ctx_drain_diags(ctx, on_diag, &s);
	is_int(r, -EBADMSG, "truncated JSON is refused");
	ok(s.n == 1 && strstr(s.msg, "JSON") && !*s.kind, "with one document diagnostic: %s", s.msg);
	kp_ctx_sync(ctx, false);
	kp_ctx_get_counts(ctx, &c);
	is_int(c.n_services, 1, "the source keeps its previous objects");
	memset(&s, 0, sizeof(s));
	r = load_str(ctx, "f", "kind: Service\nmetadata: {name: x\n  spec: [\n");
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == -EBADMSG && s.n == 1 && strstr(s.msg, "YAML line"), "malformed YAML: %s", s.msg);
	memset(&s, 0, sizeof(s));
	r = load_str(ctx, "g", "[1, \"x\"]");
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == 0 && s.n == 2, "non-objects in an array are reported, one each");
	memset(&s, 0, sizeof(s));
	r = load_str(ctx, "g", "{\"metadata\":{}}");
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == 0 && s.n == 1 && strcmp(s.field, "kind") == 0, "object without kind");
	memset(&s, 0, sizeof(s));
	r = load_str(ctx, "g", "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}");
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == 0 && s.n == 0, "other kinds are ignored without an error");
	memset(&s, 0, sizeof(s));
	r = load_str(ctx, "g", "{\"kind\":\"Service\",\"metadata\":{\"namespace\":\"x\"},"
			"\"spec\":{}}");
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == 0 && s.n == 1 && strcmp(s.field, "metadata.name") == 0, "missing name: %s",
	   s.field);

	/* duplicates */
	memset(&s, 0, sizeof(s));
	r = load_str(ctx, "dup", "{\"kind\":\"List\",\"items\":[" GOOD_SVC "]}");
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == 0 && s.n == 1 && strstr(s.msg, "already defined in f"),
	   "an object held by another source is refused: %s", s.msg);
	memset(&s, 0, sizeof(s));
	{
		static const char two[] = "{\"kind\":\"List\",\"items\":[" GOOD_SVC "," GOOD_SVC "]}";

		r = kp_ctx_load(ctx, "f", two, strlen(two), KP_FORMAT_JSON);
	}
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == 1 && s.n == 1 && strstr(s.msg, "duplicate"), "a duplicate in one document: %s",
	   s.msg);
	memset(&s, 0, sizeof(s));
	r = load_str(ctx, "j", "{\"kind\":\"Service\",\"metadata\":{\"name\":\"j\"},"
		     "\"spec\":{\"clusterIP\":\"10.0.3.3\",\"ports\":[{\"port\":1}]},"
		     "\"spec\":{\"clusterIP\":\"10.0.3.4\",\"ports\":[{\"port\":2}]}}");
	kp_ctx_drain_diags(ctx, on_diag, &s);
	kp_ctx_sync(ctx, false);
	ok(r == 1 && s.n == 0 &&
	   kp_svc_port_get_port(kp_state_lookup(kp_ctx_get_state(ctx), "default", "j", "",
						KP_PROTO_TCP)) == 2,
	   "duplicate JSON keys: the last one wins, as with the API server's decoder");

	/* size limits */
	big = malloc(KP_MAX_DOCUMENT_SIZE + 2);
	memset(big, ' ', KP_MAX_DOCUMENT_SIZE + 1);
	memset(&s, 0, sizeof(s));
	r = kp_ctx_load(ctx, "big", big, KP_MAX_DOCUMENT_SIZE + 1, KP_FORMAT_JSON);
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == -EFBIG && s.n == 1, "a document over the limit is refused: %s", s.msg);
	{
		/* a 10 MiB Service: a huge annotation, as a real object could carry */
		size_t size = 10u << 20, off;

		off = (size_t)sprintf(big, "{\"kind\":\"Service\",\"metadata\":{\"name\":\"huge\","
				      "\"annotations\":{\"a\":\"");
		memset(big + off, 'x', size - off - 100);
		off = size - 100;
		off += (size_t)sprintf(big + off, "\"}},\"spec\":{\"clusterIP\":\"10.0.7.7\","
				       "\"ports\":[{\"port\":80}]}}");
		r = kp_ctx_load(ctx, "huge", big, off, KP_FORMAT_JSON);
		kp_ctx_drain_diags(ctx, NULL, NULL);
		is_int(r, 1, "a 10 MiB document decodes");
		kp_ctx_sync(ctx, false);
		ok(kp_state_lookup(kp_ctx_get_state(ctx), "default", "huge", "", KP_PROTO_TCP),
		   "and its service is in the state");
	}
	free(big);
	is_int(kp_ctx_load(NULL, "x", "", 0, KP_FORMAT_JSON), -EINVAL, "NULL context");
	is_int(kp_ctx_load(ctx, NULL, "", 0, KP_FORMAT_JSON), -EINVAL, "NULL source");
	kp_ctx_free(ctx);
}

static void test_yaml(void)
{
	struct kp_ctx *ctx = kp_ctx_new();
	struct seen s = { 0 };
	static const char multi[] =
		"# comment\n---\n"
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  namespace: y\n"
		"spec:\n  clusterIP: \"10.0.0.1\"\n  ports: &ports\n  - port: 0x50\n"
		"    name: 'http'\n    protocol: TCP\n---\n"
		"---\n"	/* an empty document */
		"apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: y}\n"
		"spec:\n  clusterIP: 10.0.0.2\n  ports:\n  - port: \"80\"\n";
	static const char bomb[] =
		"kind: Service\nmetadata: {name: bomb}\nspec:\n"
		"  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		"  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		"  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		"  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		"  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		"  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
		"  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
	int r;

	r = kp_ctx_load(ctx, "m", multi, strlen(multi), KP_FORMAT_AUTO);
	kp_ctx_drain_diags(ctx, on_diag, &s);
	is_int(r, 1, "multi-document YAML: the good document is accepted");
	ok(s.n == 1 && strcmp(s.name, "b") == 0 && strcmp(s.field, "spec.ports[0].port") == 0,
	   "a quoted number stays a string and is refused: %s %s", s.field, s.msg);
	kp_ctx_sync(ctx, false);
	ok(kp_state_lookup(kp_ctx_get_state(ctx), "y", "a", "http", KP_PROTO_TCP) != NULL,
	   "plain 0x50 is an integer, quoted 'http' a string");
	memset(&s, 0, sizeof(s));
	r = kp_ctx_load(ctx, "bomb", bomb, strlen(bomb), KP_FORMAT_YAML);
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == -EBADMSG && strstr(s.msg, "aliases"), "an alias bomb is refused: %s", s.msg);
	memset(&s, 0, sizeof(s));
	r = kp_ctx_load(ctx, "deep", "a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
			"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
			"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
			200, KP_FORMAT_YAML);
	kp_ctx_drain_diags(ctx, on_diag, &s);
	ok(r == -EBADMSG && s.n == 1, "deep nesting is refused: %s", s.msg);
	kp_ctx_free(ctx);
}

static char *slurp(const char *name, size_t *ret_size)
{
	char path[512];
	struct stat st;
	char *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", FIXTURES, name);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		printf("# cannot open %s\n", path);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		close(fd);
		return NULL;
	}
	close(fd);
	*ret_size = (size_t)st.st_size;
	return buf;
}

int load_fixture(struct kp_ctx *ctx, const char *name, struct seen *s);
int load_fixture(struct kp_ctx *ctx, const char *name, struct seen *s)
{
	size_t size;
	char *buf = slurp(name, &size);
	int r;

	if (!buf)
		return -ENOENT;
	r = kp_ctx_load(ctx, name, buf, size, KP_FORMAT_AUTO);
	free(buf);
	kp_ctx_drain_diags(ctx, s ? on_diag : NULL, s);
	return r;
}

void test_fixtures(void);

/* ServiceCIDR objects reach kp_ctx_get_service_cidrs(), de-duplicated, and go with
 * their source; a change asks for a full sync. */
static void test_service_cidrs(void)
{
	static const char both[] =
		"{\"kind\":\"ServiceCIDRList\",\"items\":[{\"kind\":\"ServiceCIDR\",\"metadata\":"
		"{\"name\":\"kubernetes\"},\"spec\":{\"cidrs\":[\"10.96.0.0/16\",\"fd00:96::/112\"]}},"
		"{\"kind\":\"ServiceCIDR\",\"metadata\":{\"name\":\"again\"},\"spec\":{\"cidrs\":"
		"[\"10.96.0.0/16\"]}}]}";
	static const char none[] = "{\"kind\":\"List\",\"items\":[]}";
	struct kp_ctx *ctx = kp_ctx_new();
	const struct kp_cidr *c;
	char a[KP_ADDR_STRLEN], b[KP_ADDR_STRLEN];
	size_t n = 99;

	c = kp_ctx_get_service_cidrs(ctx, &n);
	ok(!c && n == 0, "no ServiceCIDR: no ranges (%zu)", n);
	ok(kp_ctx_load(ctx, "scidr", both, strlen(both), KP_FORMAT_JSON) == 2,
	   "a ServiceCIDRList loads as two objects");
	ok(kp_ctx_has_pending(ctx), "a ServiceCIDR asks for a sync");
	c = kp_ctx_get_service_cidrs(ctx, &n);
	ok(c && n == 2 && ((c[0].addr.family == AF_INET && c[0].prefix == 16 &&
			    !strcmp(kp_addr_to_str(&c[0].addr, a, sizeof(a)), "10.96.0.0") &&
			    c[1].prefix == 112 &&
			    !strcmp(kp_addr_to_str(&c[1].addr, b, sizeof(b)), "fd00:96::")) ||
			   (c[1].addr.family == AF_INET && c[1].prefix == 16 &&
			    c[0].prefix == 112)),
	   "its ranges, de-duplicated (%zu)", n);
	ok(kp_ctx_load(ctx, "scidr", none, strlen(none), KP_FORMAT_JSON) == 0,
	   "the source empties");
	c = kp_ctx_get_service_cidrs(ctx, &n);
	ok(!c && n == 0, "the ranges go with it (%zu)", n);
	kp_ctx_free(ctx);
}

int main(void)
{
	test_service_cidrs();
	test_bad_objects();
	test_documents();
	test_yaml();
	test_fixtures();
	return tap_done();
}
