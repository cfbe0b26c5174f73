// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * An embedding agent: feeds manifest files to libkproxy, registers its own backend
 * (with an option table of its own, checked by the library) through
 * kp_backend_register(), syncs once, and prints each change it was handed followed by
 * the state. Build: cc embed.c $(pkg-config --cflags --libs libkproxy)
 * Usage: embed NODE [-o NAME=VALUE]... FILE...
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kproxy/kproxy.h>

static int print_change(const struct kp_svc_port *old, const struct kp_svc_port *new_sp,
			void *userdata)
{
	const struct kp_svc_port *sp = new_sp ? new_sp : old;

	printf("%s %s/%s:%s/%s\n", !old ? "add" : !new_sp ? "del" : "mod",
	       kp_svc_port_get_namespace(sp), kp_svc_port_get_name(sp),
	       kp_svc_port_get_port_name(sp), kp_protocol_name(kp_svc_port_get_protocol(sp)));
	return 0;
}

static int print_port(const struct kp_svc_port *sp, void *userdata)
{
	const struct kp_frontend *fes;
	size_t n_fes;

	fes = kp_svc_port_get_frontends(sp, &n_fes);
	for (size_t i = 0; i < n_fes; i++) {
		const struct kp_endpoint *eps;
		char vip[KP_ADDR_STRLEN], ip[KP_ADDR_STRLEN];
		size_t n;

		eps = kp_svc_port_get_endpoints(sp, fes[i].addr.family, fes[i].external, &n);
		printf("%s %s:%u %s/%s ->", kp_frontend_kind_name(fes[i].kind),
		       kp_addr_to_str(&fes[i].addr, vip, sizeof(vip)), fes[i].port,
		       kp_svc_port_get_namespace(sp), kp_svc_port_get_name(sp));
		for (size_t j = 0; j < n; j++)
			printf(" %s:%u", kp_addr_to_str(&eps[j].addr, ip, sizeof(ip)), eps[j].port);
		printf("\n");
	}
	return 0;
}

/* The printer's options: the library fills this struct from the settings. */
struct printer_opts {
	const char *title;		/* the sync line's first word */
	bool state;			/* print the state after the changes */
};

static const struct kp_option printer_options[] = {
	{ .name = "title", .type = KP_OPT_STRING, .offset = offsetof(struct printer_opts, title),
	  .def = "sync", .help = "the first word of each sync's line" },
	{ .name = "state", .type = KP_OPT_BOOL, .offset = offsetof(struct printer_opts, state),
	  .def = "true", .help = "print the state after the changes" },
};

static int printer_init(struct kp_ctx *ctx, const void *opts, void **ret_priv)
{
	*ret_priv = (void *)opts;	/* valid until destroy */
	return 0;
}

static int printer_sync(void *priv, const struct kp_state *want, const struct kp_delta *delta)
{
	const struct printer_opts *o = priv;

	printf("# %s: %zu changed service ports%s\n", o->title, kp_delta_get_size(delta),
	       kp_delta_is_full(delta) ? " (full)" : "");
	kp_delta_foreach(delta, print_change, NULL);
	if (!o->state)
		return 0;
	printf("# state\n");
	return kp_state_foreach(want, print_port, NULL);
}

static const struct kp_backend_ops printer = {
	.name = "printer",
	.init = printer_init,
	.sync = printer_sync,
	.options = printer_options,
	.n_options = sizeof(printer_options) / sizeof(printer_options[0]),
	.options_size = sizeof(struct printer_opts),
};

static void print_diag(const struct kp_diag *d, void *userdata)
{
	fprintf(stderr, "%s: %s %s/%s: %s: %s\n", d->source, d->kind, d->ns, d->name, d->field,
		d->msg);
}

static char *slurp(const char *path, size_t *ret_size)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long size;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)size + 1)) && fread(buf, 1, (size_t)size, f) == (size_t)size) {
		*ret_size = (size_t)size;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	struct kp_setting set[8];
	size_t n_set = 0;
	struct kp_ctx *ctx;
	int i = 2, r;

	for (; i + 1 < argc && !strcmp(argv[i], "-o") && n_set < 8; i += 2) {
		char *eq = strchr(argv[i + 1], '=');

		if (!eq)
			break;
		*eq = '\0';
		set[n_set++] = (struct kp_setting){ argv[i + 1], eq + 1 };
	}
	if (argc < 3 || i >= argc) {
		fprintf(stderr, "usage: embed NODE [-o NAME=VALUE]... FILE...\n");
		return 2;
	}
	ctx = kp_ctx_new();
	if (!ctx || kp_ctx_set_node_name(ctx, argv[1]) < 0 ||
	    kp_backend_register(ctx, &printer) < 0)
		return 1;
	r = kp_ctx_set_backend(ctx, "printer", set, n_set);
	if (r < 0) {
		fprintf(stderr, "embed: %s\n", kp_ctx_get_error(ctx));
		kp_ctx_free(ctx);
		return 2;
	}
	for (; i < argc; i++) {
		size_t size;
		char *buf = slurp(argv[i], &size);

		if (!buf) {
			perror(argv[i]);
			kp_ctx_free(ctx);
			return 1;
		}
		r = kp_ctx_load(ctx, argv[i], buf, size, KP_FORMAT_AUTO);
		free(buf);
		kp_ctx_drain_diags(ctx, print_diag, NULL);
		if (r < 0)
			fprintf(stderr, "%s: %s\n", argv[i], kp_strerror(r));
	}
	r = kp_ctx_sync(ctx, false);
	kp_ctx_free(ctx);
	return r < 0;
}
