// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Backend options: a backend with one option of each type; the library checks the
 * settings against the table, refuses bad ones by name before init runs, applies the
 * defaults and hands init the filled struct; kp_ctx_get_error() keeps the cause.
 */
#include <errno.h>
#include <stddef.h>

#include <kproxy/kproxy.h>

#include "tap.h"

struct t_opts {
	bool b;
	uint32_t n, ms;
	const char *s, *pick;
	struct kp_port_range range;
	struct kp_cidr_list nets;
	struct kp_str_list words;
};

static const char *const picks[] = { "maglev", "rr", NULL };

static const struct kp_option t_options[] = {
	{ .name = "b", .type = KP_OPT_BOOL, .offset = offsetof(struct t_opts, b), .def = "true" },
	{ .name = "n", .type = KP_OPT_UINT, .offset = offsetof(struct t_opts, n), .min = 1,
	  .max = 64, .def = "8" },
	{ .name = "ms", .type = KP_OPT_DURATION, .offset = offsetof(struct t_opts, ms),
	  .min = 1000, .def = "30s" },
	{ .name = "s", .type = KP_OPT_STRING, .offset = offsetof(struct t_opts, s) },
	{ .name = "pick", .type = KP_OPT_STRING, .offset = offsetof(struct t_opts, pick),
	  .def = "maglev", .choices = picks },
	{ .name = "range", .type = KP_OPT_PORT_RANGE, .offset = offsetof(struct t_opts, range) },
	{ .name = "nets", .type = KP_OPT_CIDR_LIST, .offset = offsetof(struct t_opts, nets) },
	{ .name = "words", .type = KP_OPT_STRING_LIST, .offset = offsetof(struct t_opts, words),
	  .max = 2 },
};

static struct t_opts seen;
static int inits;

static int t_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	inits++;
	seen = *(const struct t_opts *)opts;
	*ret_priv = NULL;
	return 0;
}

static int t_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	return 0;
}

static int t_fail_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	return kp_ctx_set_error(ctx, -ENODEV, "t: port %s: no such device", "p0");
}

static const struct kp_backend_ops t_ops = {
	.name = "t", .init = t_init, .sync = t_sync, .options = t_options,
	.n_options = sizeof(t_options) / sizeof(t_options[0]), .options_size = sizeof(struct t_opts),
};

static const struct kp_backend_ops t_fail = { .name = "tfail", .init = t_fail_init, .sync = t_sync };

static int set(struct kp_ctx *ctx, const char *name, const char *value)
{
	struct kp_setting s = { name, value };

	return kp_ctx_set_backend(ctx, "t", &s, 1);
}

static int count_opt(const struct kp_option *o, const char *v, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

int main(void)
{
	struct kp_ctx *ctx = kp_ctx_new();
	struct kp_setting many[] = {
		{ "b", "false" }, { "n", "64" }, { "ms", "1m30s" }, { "s", "hello" },
		{ "pick", "rr" }, { "range", "30000+10" }, { "nets", "10.0.0.0/8,fd00::/64" },
		{ "nets", "192.168.0.0/16" }, { "words", "a" }, { "words", "b" },
	};
	int walked = 0;

	ok(kp_backend_register(ctx, &t_ops) == 0 && kp_backend_register(ctx, &t_fail) == 0,
	   "backends with and without options register");
	is_int(kp_ctx_set_backend(ctx, "t", NULL, 0), 0, "no settings: the defaults");
	ok(seen.b && seen.n == 8 && seen.ms == 30000 && !seen.s && !strcmp(seen.pick, "maglev") &&
	   !seen.range.lo && !seen.nets.n && !seen.words.n, "defaults filled, unset ones zero");
	is_int(kp_ctx_set_backend(ctx, "t", many, sizeof(many) / sizeof(many[0])), 0,
	       "one setting of each type");
	ok(!seen.b && seen.n == 64 && seen.ms == 90000 && !strcmp(seen.s, "hello") &&
	   !strcmp(seen.pick, "rr") && seen.range.lo == 30000 && seen.range.hi == 30010,
	   "scalars typed: bool, uint, duration in ms, string, choice, port range");
	ok(seen.nets.n == 3 && seen.nets.v[1].addr.family == AF_INET6 &&
	   seen.nets.v[1].prefix == 64 && seen.nets.v[2].prefix == 16,
	   "CIDR lists: entries of every setting, in order");
	ok(seen.words.n == 2 && !strcmp(seen.words.v[0], "a") && !strcmp(seen.words.v[1], "b"),
	   "string lists: one entry per setting");
	kp_ctx_foreach_option(ctx, count_opt, &walked);
	is_int(walked, 10, "kp_ctx_foreach_option walks each value in force (lists: each setting)");
	inits = 0;
	is_int(set(ctx, "n", "65"), -EINVAL, "a number above its range is refused");
	is_str(kp_ctx_get_error(ctx), "t: option \"n\": \"65\" is not a number 1..64",
	       "naming the option and the range");
	is_int(set(ctx, "ms", "500ms"), -EINVAL, "a duration below its minimum is refused");
	is_int(set(ctx, "ms", "5"), -EINVAL, "a duration without a unit is refused");
	is_int(set(ctx, "b", "maybe"), -EINVAL, "a bool that is neither is refused");
	is_int(set(ctx, "pick", "random"), -EINVAL, "a string outside its choices is refused");
	is_str(kp_ctx_get_error(ctx), "t: option \"pick\": \"random\" is not one of maglev, rr",
	       "naming the choices");
	is_int(set(ctx, "range", "5-2"), -EINVAL, "a backwards port range is refused");
	is_int(set(ctx, "nets", "10.0.0.0/8,bogus"), -EINVAL, "a bad CIDR in a list is refused");
	is_str(kp_ctx_get_error(ctx), "t: option \"nets\": \"bogus\" is not a CIDR (such as "
	       "10.0.0.0/8 or fd00::/64)", "naming the entry");
	is_int(set(ctx, "colour", "red"), -EINVAL, "an unknown option is refused");
	is_str(kp_ctx_get_error(ctx), "t: no option \"colour\" in this data plane", "by name");
	{
		struct kp_setting twice[] = { { "n", "1" }, { "n", "2" } };
		struct kp_setting three[] = { { "words", "a" }, { "words", "b" }, { "words", "c" } };

		is_int(kp_ctx_set_backend(ctx, "t", twice, 2), -EINVAL,
		       "a single-valued option given twice is refused");
		is_int(kp_ctx_set_backend(ctx, "t", three, 3), -EINVAL,
		       "a list longer than its maximum is refused");
	}
	is_int(inits, 0, "init never ran for a refused setting");
	ok(!strcmp(kp_ctx_get_backend_name(ctx), "t") && seen.n == 64,
	   "the backend selected before stays, with its options");
	is_int(kp_ctx_set_backend(ctx, "tfail", NULL, 0), -ENODEV, "an init failure is returned");
	is_str(kp_ctx_get_error(ctx), "t: port p0: no such device", "with the cause it gave");
	{
		struct kp_setting s = { "x", "1" };

		is_int(kp_ctx_set_backend(ctx, "tfail", &s, 1), -EINVAL,
		       "a backend that declares no options takes none");
	}
	is_int(kp_ctx_set_backend(ctx, "none", NULL, 0), -ENOENT, "an unknown backend");
	is_str(kp_ctx_get_error(ctx), "no data plane called \"none\"", "is named");
	ok(kp_backend_find(ctx, "iptables") && kp_backend_find(ctx, "iptables")->n_options >= 3,
	   "the built-in iptables backend declares its options");
	{
		const struct kp_backend_ops *ipt = kp_backend_find(ctx, "iptables");
		const struct kp_option *dt = NULL;
		char err[128] = "";

		for (size_t i = 0; i < ipt->n_options; i++)
			if (!strcmp(ipt->options[i].name, "dispatch-threshold"))
				dt = &ipt->options[i];
		ok(dt && kp_option_check(dt, "abc", err, sizeof(err)) == -EINVAL &&
		   strstr(err, "\"abc\" is not a number"), "kp_option_check checks one value: %s",
		   err);
	}
	kp_ctx_free(ctx);
	return tap_done();
}
