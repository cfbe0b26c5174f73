// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target for kproxyd's KubeProxyConfiguration reader (proxy/config.c, with the flag
 * table of proxy/flags.c and the log of proxy/log.c linked in as kproxyd links them):
 * the input is written to a memfd (the reader takes a path; /proc/self/fd/N is one) and
 * loaded as --config loads it; a file it accepts then goes through what kproxyd does
 * next (the values checked for the file's mode, the mode's period flags resolved) and
 * is written back as /configz serves it. The flag table is cleared after each input.
 * kproxyd's warnings go to stderr (run libFuzzer with -close_fd_mask=2). Built for
 * libFuzzer with --enable-fuzzer; replay-main.c replays tests/fuzz/corpus-kpconfig in
 * make check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../proxy/kpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void warn_field(const char *file, const char *field)
{
	(void)file;
	(void)field;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct kp_ctx *ctx;
	char path[64], err[512];
	const char *mode;

	if (fd < 0)
		fd = memfd_create("kpconfig", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) < 0 ||
	    (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		return 0;
	ctx = kp_ctx_new();
	if (!ctx)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (kpd_config_load(ctx, path, warn_field, err, sizeof(err)) == 0) {
		mode = kpd_get("proxy-mode");
		if (!*mode)
			mode = "iptables";
		if (kpd_flags_check(ctx, mode) == 0 && kpd_flags_resolve(mode) == 0)
			free(kpd_config_json(ctx, mode));
	}
	kpd_flags_free();
	kp_ctx_free(ctx);
	return 0;
}
