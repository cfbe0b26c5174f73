// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Replays files and directories (recursively) through the fuzz target, one TAP line per
 * input: "ok" means it returned; a crash or sanitizer report fails the whole program.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../unit/tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void replay(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		ok(false, "%s exists", path);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		struct dirent **names;
		int n = scandir(path, &names, NULL, alphasort);

		for (int i = 0; i < n; i++) {
			char sub[4096];

			if (names[i]->d_name[0] != '.') {
				snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
				replay(sub);
			}
			free(names[i]);
		}
		free(names);
		return;
	}
	{
		FILE *f = fopen(path, "rb");
		uint8_t *buf = malloc((size_t)st.st_size + 1);
		size_t got = f && buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;

		if (f)
			fclose(f);
		if (!buf || got != (size_t)st.st_size) {
			ok(false, "read %s", path);
			free(buf);
			return;
		}
		LLVMFuzzerTestOneInput(buf, got);
		free(buf);
		ok(true, "replayed %s (%zu bytes)", path, got);
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		replay(argv[i]);
	if (argc < 2)
		ok(false, "inputs given");
	return tap_done();
}
