// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target for the kubeconfig reader (lib/sources/kubeconfig.c): the input is written
 * to a memfd (the reader takes a path; /proc/self/fd/N is one) and read with the
 * current context and with a named one; a kubeconfig it accepts is handed to
 * kp_api_new() (which copies it and resolves tls-server-name, starting no transfer) and
 * cleared. Built for libFuzzer with --enable-fuzzer; replay-main.c replays
 * tests/fuzz/corpus-kubeconfig in make check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kproxy/kproxy.h>
#include <kproxy/api.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_one(struct kp_ctx *ctx, const char *path, const char *context)
{
	struct kp_api_auth a;
	struct kp_api *api;
	char err[512];

	if (kp_api_auth_from_kubeconfig(path, context, &a, err, sizeof(err)) < 0)
		return;
	if (kp_api_new(ctx, &a, "node-1", 0, &api) == 0)
		kp_api_free(api);
	kp_api_auth_clear(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct kp_ctx *ctx;
	char path[64];

	if (fd < 0)
		fd = memfd_create("kubeconfig", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) < 0 ||
	    (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		return 0;
	ctx = kp_ctx_new();
	if (!ctx)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	read_one(ctx, path, NULL);
	read_one(ctx, path, "kind-kind");
	kp_ctx_free(ctx);
	return 0;
}
