// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kp_ctx_check() against a data plane whose dump the test writes: agreement, a NodePort
 * on every local address that the data plane lists once per node address, endpoint sets
 * that differ, a missing frontend and one nobody wants. kp_ctx_dump_service() through the
 * backend's dump_service op and, without one, by filtering the whole dump.
 */
#include <errno.h>
#include <string.h>

#include <kproxy/kproxy.h>

#include "tap.h"

/* what the fake data plane's dump reports */
static struct {
	bool drop_cluster_ip;		/* leave 10.96.0.1:80 out */
	bool stale;			/* add 10.96.0.99:80 */
	bool one_node_wrong;		/* 192.0.2.2's NodePort misses an endpoint */
	bool other;			/* add t/other's 10.96.0.50:80 */
	int dumps, service_dumps;	/* calls of each op */
} plane;

static int fake_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	(void)ctx;
	(void)opts;
	*ret_priv = &plane;
	return 0;
}

static int fake_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	(void)priv;
	(void)want;
	(void)delta;
	return 0;
}

static int emit_of(kp_dump_fn fn, void *ud, const char *name, enum kp_frontend_kind kind,
		   const char *vip, uint16_t port, size_t n_eps)
{
	struct kp_endpoint eps[2] = { 0 };
	struct kp_dump_entry e = { .ns = "t", .name = name, .port_name = "p",
				   .protocol = KP_PROTO_TCP, .kind = kind, .port = port,
				   .endpoints = eps, .n_endpoints = n_eps };

	kp_addr_from_str(vip, &e.vip);
	kp_addr_from_str("10.244.0.2", &eps[0].addr);
	kp_addr_from_str("10.244.0.3", &eps[1].addr);
	eps[0].port = eps[1].port = 8080;
	return fn(&e, ud);
}

static int emit(kp_dump_fn fn, void *ud, enum kp_frontend_kind kind, const char *vip,
		uint16_t port, size_t n_eps)
{
	return emit_of(fn, ud, "web", kind, vip, port, n_eps);
}

static int fake_dump(void *priv, kp_dump_fn fn, void *ud)
{
	int r = 0;

	(void)priv;
	plane.dumps++;
	if (plane.other)
		r = emit_of(fn, ud, "other", KP_FE_CLUSTER_IP, "10.96.0.50", 80, 1);
	if (!r && !plane.drop_cluster_ip)
		r = emit(fn, ud, KP_FE_CLUSTER_IP, "10.96.0.1", 80, 2);
	/* one entry per node address for a NodePort on every local address */
	if (!r)
		r = emit(fn, ud, KP_FE_NODE_PORT, "192.0.2.1", 30080, 2);
	if (!r)
		r = emit(fn, ud, KP_FE_NODE_PORT, "192.0.2.2", 30080, plane.one_node_wrong ? 1 : 2);
	if (!r && plane.stale)
		r = emit(fn, ud, KP_FE_CLUSTER_IP, "10.96.0.99", 80, 2);
	return r;
}

/* a data plane that reads one service back on its own, and says too much */
static int fake_dump_service(void *priv, const char *ns, const char *name, kp_dump_fn fn,
			     void *ud)
{
	int r;

	(void)priv;
	plane.service_dumps++;
	if (strcmp(ns, "t"))
		return 0;
	r = emit_of(fn, ud, "other", KP_FE_CLUSTER_IP, "10.96.0.50", 80, 1);
	return r || strcmp(name, "web") ? r : emit(fn, ud, KP_FE_CLUSTER_IP, "10.96.0.1", 80, 2);
}

static const struct kp_backend_ops fake = {
	.name = "fake", .init = fake_init, .sync = fake_sync, .dump = fake_dump,
};

static const struct kp_backend_ops fake_svc = {
	.name = "fake-svc", .init = fake_init, .sync = fake_sync, .dump = fake_dump,
	.dump_service = fake_dump_service,
};

static int n_got;
static char got[8][64];

static int note(const struct kp_dump_entry *e, void *ud)
{
	char a[KP_ADDR_STRLEN];

	(void)ud;
	if (n_got < 8)
		snprintf(got[n_got], sizeof(got[0]), "%s/%s %s", e->ns, e->name,
			 kp_addr_to_str(&e->vip, a, sizeof(a)));
	n_got++;
	return 0;
}

/* The entries kp_ctx_dump_service(@ns, @name) reports, one string; its result in *ret. */
static const char *dump_service(struct kp_ctx *ctx, const char *ns, const char *name, int *ret)
{
	static char all[8 * 66];
	size_t len = 0;

	n_got = 0;
	*ret = kp_ctx_dump_service(ctx, ns, name, note, NULL);
	all[0] = 0;
	for (int i = 0; i < n_got && i < 8; i++)
		len += (size_t)snprintf(all + len, sizeof(all) - len, "%s%s", i ? ", " : "",
					got[i]);
	return all;
}

static int seen[_KP_CHECK_MAX];

static int count(const struct kp_check_diff *d, void *ud)
{
	(void)ud;
	seen[d->what]++;
	return 0;
}

static int check(struct kp_ctx *ctx)
{
	memset(seen, 0, sizeof(seen));
	return kp_ctx_check(ctx, count, NULL);
}

int main(void)
{
	static const char objs[] =
		"{\"kind\":\"List\",\"items\":[{\"kind\":\"Service\",\"metadata\":{\"name\":\"web\","
		"\"namespace\":\"t\"},\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.96.0.1\","
		"\"ports\":[{\"name\":\"p\",\"port\":80,\"nodePort\":30080}]}},{\"kind\":"
		"\"EndpointSlice\",\"metadata\":{\"name\":\"web-1\",\"namespace\":\"t\",\"labels\":"
		"{\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\",\"ports\":[{"
		"\"name\":\"p\",\"port\":8080}],\"endpoints\":[{\"addresses\":[\"10.244.0.2\"]},"
		"{\"addresses\":[\"10.244.0.3\"]}]}]}";
	struct kp_ctx *ctx = kp_ctx_new();
	int r;

	kp_ctx_set_node_name(ctx, "node-a");
	kp_ctx_set_nodeport_any_local(ctx, AF_INET, true);
	ok(kp_backend_register(ctx, &fake) == 0 && kp_ctx_set_backend(ctx, "fake", NULL, 0) == 0,
	   "a data plane of the test's");
	ok(kp_ctx_load(ctx, "objs", objs, strlen(objs), KP_FORMAT_JSON) == 2 &&
	   kp_ctx_sync(ctx, true) == 0, "a NodePort service with two endpoints, synced");

	r = check(ctx);
	is_int(r, 0, "they agree: the NodePort on every local address matches the data "
	       "plane's entry for each node address");
	plane.one_node_wrong = true;
	r = check(ctx);
	ok(r == 1 && seen[KP_CHECK_ENDPOINTS] == 1,
	   "one node address's NodePort entry with an endpoint missing: one DIFFERS (%d)", r);
	plane.one_node_wrong = false;
	plane.drop_cluster_ip = true;
	r = check(ctx);
	ok(r == 1 && seen[KP_CHECK_MISSING] == 1, "the ClusterIP left out: one MISSING (%d)", r);
	plane.drop_cluster_ip = false;
	plane.stale = true;
	r = check(ctx);
	ok(r == 1 && seen[KP_CHECK_EXTRA] == 1, "a frontend nobody wants: one EXTRA (%d)", r);
	plane.stale = false;
	is_int(kp_ctx_check(ctx, NULL, NULL), 0, "without a callback it counts only");
	is_int(kp_ctx_check(NULL, NULL, NULL), -EINVAL, "a NULL context is refused");

	/* one service's entries: the whole dump filtered, the backend having no op for it */
	plane.other = true;
	is_str(dump_service(ctx, "t", "other", &r), "t/other 10.96.0.50",
	       "dump_service without the op: only that service's entry, from the whole dump");
	is_int(plane.dumps > 0 && plane.service_dumps == 0, 1, "(the dump op was called)");
	is_str(dump_service(ctx, "t", "web", &r),
	       "t/web 10.96.0.1, t/web 192.0.2.1, t/web 192.0.2.2",
	       "and the other service's three entries, in the data plane's order");
	is_str(dump_service(ctx, "u", "web", &r), "",
	       "a service of that name in another namespace has none");
	is_int(r, 0, "which is no error");
	is_int(kp_ctx_dump_service(ctx, "t", NULL, note, NULL), -EINVAL, "a NULL name is refused");
	kp_ctx_free(ctx);

	ctx = kp_ctx_new();
	ok(kp_backend_register(ctx, &fake_svc) == 0 &&
	   kp_ctx_set_backend(ctx, "fake-svc", NULL, 0) == 0, "a data plane with a dump_service op");
	plane.dumps = 0;
	is_str(dump_service(ctx, "t", "web", &r), "t/web 10.96.0.1",
	       "dump_service asks the op, and drops the other service's entry it reported too");
	ok(plane.service_dumps == 1 && plane.dumps == 0, "the op alone was called (%d, %d)",
	   plane.service_dumps, plane.dumps);
	kp_ctx_free(ctx);
	return tap_done();
}
