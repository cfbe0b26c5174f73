// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The manifest-directory source (lib/sources/manifests.c): the first read in name order,
 * a file written, replaced with a bad one and removed, each told to the caller's
 * kp_manifests_fn with what the context then holds; a rescan; argument checks.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kproxy/manifests.h>

#include "tap.h"

#define SVC(name, ip) "{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"" \
	name "\",\"namespace\":\"t\"},\"spec\":{\"clusterIP\":\"" ip "\",\"ports\":" \
	"[{\"port\":80}]}}"

struct seen {
	char log[2048];		/* "EVENT:basename:result " per event */
	size_t diags;
	struct kp_ctx *ctx;
};

static void count_diag(const struct kp_diag *d, void *userdata)
{
	(void)d;
	((struct seen *)userdata)->diags++;
}

static void on_event(enum kp_manifests_event ev, const char *path, int result, void *userdata)
{
	struct seen *s = userdata;
	const char *base = strrchr(path, '/');
	size_t n = strlen(s->log);

	kp_ctx_drain_diags(s->ctx, count_diag, s);
	snprintf(s->log + n, sizeof(s->log) - n, "%d:%s:%d ", (int)ev, base ? base + 1 : path,
		 result);
}

static void put(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* Processes inotify events until the log grows (or a second passes). */
static void settle(struct kp_manifests *m, struct seen *s)
{
	size_t before = strlen(s->log);

	for (int i = 0; i < 100 && strlen(s->log) == before; i++) {
		struct pollfd p = { .fd = kp_manifests_fd(m), .events = POLLIN };

		if (poll(&p, 1, 10) > 0)
			kp_manifests_process(m);
	}
}

static size_t services(struct kp_ctx *ctx)
{
	struct kp_counts c;

	kp_ctx_get_counts(ctx, &c);
	return c.n_services;
}

int main(void)
{
	char dir[] = "/tmp/kp-test-manifests-XXXXXX", buf[512];
	struct seen s = { .ctx = kp_ctx_new() };
	struct kp_manifests *m = NULL;

	if (!mkdtemp(dir) || !s.ctx)
		return 99;
	put(dir, "b.json", SVC("b", "10.96.0.2"));
	put(dir, "a.yaml", "kind: Service\napiVersion: v1\nmetadata: {name: a, namespace: t}\n"
			   "spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n");
	put(dir, ".hidden.json", SVC("h", "10.96.0.9"));
	put(dir, "c.json~", SVC("c", "10.96.0.9"));

	is_int(kp_manifests_new(NULL, dir, NULL, NULL, &m), -EINVAL, "NULL context");
	is_int(kp_manifests_new(s.ctx, NULL, NULL, NULL, &m), -EINVAL, "NULL directory");
	is_int(kp_manifests_new(s.ctx, "/nonexistent/kp", NULL, NULL, &m), -ENOENT,
	       "a missing directory");
	is_int(kp_manifests_process(NULL), -EINVAL, "process(NULL)");
	is_int(kp_manifests_rescan(NULL), -EINVAL, "rescan(NULL)");
	is_int(kp_manifests_fd(NULL), -1, "fd(NULL)");
	kp_manifests_free(NULL);

	is_int(kp_manifests_new(s.ctx, dir, on_event, &s, &m), 0, "opened");
	is_str(s.log, "0:a.yaml:1 0:b.json:1 ", "read in name order, hidden and backups left out");
	is_int((int)services(s.ctx), 2, "two services held");

	s.log[0] = '\0';
	put(dir, "c.json", SVC("c", "10.96.0.3"));
	settle(m, &s);
	is_str(s.log, "0:c.json:1 ", "a new file is loaded");
	is_int((int)services(s.ctx), 3, "three services held");

	s.log[0] = '\0';
	put(dir, "c.json", "{\"kind\":\"Service\",");
	settle(m, &s);
	snprintf(buf, sizeof(buf), "3:c.json:%d ", -EBADMSG);
	is_str(s.log, buf, "a file that does not parse is refused");
	ok(s.diags == 1, "with its diagnostic drained in the callback (%zu)", s.diags);
	is_int((int)services(s.ctx), 3, "and its previous object kept");

	s.log[0] = '\0';
	snprintf(buf, sizeof(buf), "%s/c.json", dir);
	unlink(buf);
	settle(m, &s);
	is_str(s.log, "1:c.json:1 ", "a removed file is unloaded");
	is_int((int)services(s.ctx), 2, "two services held again");

	s.log[0] = '\0';
	is_int(kp_manifests_rescan(m), 0, "rescan");
	is_str(s.log, "0:a.yaml:1 0:b.json:1 ", "reads every file again");

	kp_manifests_free(m);
	is_int((int)services(s.ctx), 2, "the objects stay after the source is freed");
	kp_ctx_free(s.ctx);
	for (size_t i = 0; i < 4; i++) {
		static const char *const names[] = { "a.yaml", "b.json", ".hidden.json", "c.json~" };

		snprintf(buf, sizeof(buf), "%s/%s", dir, names[i]);
		unlink(buf);
	}
	rmdir(dir);
	return tap_done();
}
