// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The manifest-directory source: every *.json, *.yaml and *.yml file directly in the
 * directory is one source of objects, named by its path. Files are read at start (in
 * name order) and followed with inotify: a file written (closed after writing) or moved
 * in is reloaded, one removed or moved away is unloaded, so each change updates exactly
 * the objects that file holds. Hidden files and editor backups are ignored. A file that
 * cannot be parsed keeps its previous objects.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kproxyd.h"

struct kpd_manifests {
	struct kp_ctx *ctx;
	char *dir;
	int fd;			/* inotify */
};

static bool wanted(const char *name)
{
	size_t len = strlen(name);
	static const char *const exts[] = { ".json", ".yaml", ".yml" };

	if (name[0] == '.' || name[len - 1] == '~')
		return false;
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t el = strlen(exts[i]);

		if (len > el && strcmp(name + len - el, exts[i]) == 0)
			return true;
	}
	return false;
}

/* Reads a whole regular file. Returns 0, -ENOENT if it is gone, or another -errno. */
static int read_file(const char *path, char **ret_buf, size_t *ret_size)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if ((uintmax_t)st.st_size > KP_MAX_DOCUMENT_SIZE) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[got] = '\0';
	*ret_buf = buf;
	*ret_size = got;
	return 0;
}

static void reload(struct kpd_manifests *m, const char *name)
{
	char path[PATH_MAX];
	char *buf = NULL;
	size_t size = 0;
	int r;

	snprintf(path, sizeof(path), "%s/%s", m->dir, name);
	r = read_file(path, &buf, &size);
	if (r == -ENOENT) {
		r = kp_ctx_unload(m->ctx, path);
		kpd_dbg(2, "%s: removed, %d objects unloaded", path, r);
		return;
	}
	if (r < 0) {
		kpd_err("%s: cannot read: %s; its objects are kept", path, kp_strerror(r));
		return;
	}
	r = kp_ctx_load(m->ctx, path, buf, size, KP_FORMAT_AUTO);
	free(buf);
	kpd_report_diags(m->ctx);
	if (r == -ENOMEM)
		kpd_err("%s: out of memory while loading", path);
	else if (r < 0)
		kpd_err("%s: not loaded (%s); its previous objects are kept", path, kp_strerror(r));
	else
		kpd_dbg(2, "%s: %d objects loaded", path, r);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int kpd_manifests_rescan(struct kpd_manifests *m)
{
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir(m->dir);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!wanted(de->d_name))
			continue;
		if (n == cap) {
			char **v = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!v)
				break;
			names = v;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		reload(m, names[i]);
		free(names[i]);
	}
	free(names);
	return 0;
}

int kpd_manifests_open(struct kp_ctx *ctx, const char *dir, struct kpd_manifests **ret)
{
	struct kpd_manifests *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->ctx = ctx;
	m->fd = -1;
	m->dir = strdup(dir);
	m->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (!m->dir || m->fd < 0) {
		r = m->dir ? -errno : -ENOMEM;
		goto out_free;
	}
	if (inotify_add_watch(m->fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
				      IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) < 0) {
		r = -errno;
		goto out_free;
	}
	r = kpd_manifests_rescan(m);
	if (r < 0)
		goto out_free;
	*ret = m;
	return 0;
out_free:
	kpd_manifests_close(m);
	return r;
}

int kpd_manifests_fd(const struct kpd_manifests *m)
{
	return m->fd;
}

int kpd_manifests_process(struct kpd_manifests *m)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t len = read(m->fd, buf, sizeof(buf));

		if (len < 0 && errno == EINTR)
			continue;
		if (len < 0)
			return errno == EAGAIN ? 0 : -errno;
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				kpd_warn("%s: inotify queue overflowed; rescanning", m->dir);
				kpd_manifests_rescan(m);
			} else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				kpd_err("%s: directory removed or moved; programmed state is kept",
					m->dir);
			} else if (ev->len && wanted(ev->name)) {
				reload(m, ev->name);
			}
		}
	}
}

void kpd_manifests_close(struct kpd_manifests *m)
{
	if (!m)
		return;
	if (m->fd >= 0)
		close(m->fd);
	free(m->dir);
	free(m);
}
