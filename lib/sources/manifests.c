// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The manifest-directory source: every *.json, *.yaml and *.yml file directly in the
 * directory is one source of objects, named by its path. Files are read at start (in
 * name order) and followed with inotify: a file written (closed after writing) or moved
 * in is reloaded, one removed or moved away is unloaded, so each change updates exactly
 * the objects that file holds. Hidden files and editor backups are ignored. A file that
 * cannot be parsed keeps its previous objects. What happened to each file goes to the
 * caller's kp_manifests_fn, never to a log: the caller reports it (kproxyd, proxy/log.c).
 * (This was kproxyd's proxy/manifests.c; it is a library source beside the API source.)
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

#include <kproxy/manifests.h>

#include "internal.h"

struct kp_manifests {
	struct kp_ctx *ctx;
	char *dir;
	int fd;			/* inotify */
	kp_manifests_fn fn;	/* may be NULL */
	void *userdata;
};

static void tell(const struct kp_manifests *m, enum kp_manifests_event event, const char *path,
		 int result)
{
	if (m->fn)
		m->fn(event, path, result, m->userdata);
}

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
static int read_manifest(const char *path, char **ret_buf, size_t *ret_size)
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

static void reload(struct kp_manifests *m, const char *name)
{
	char path[PATH_MAX];
	char *buf = NULL;
	size_t size = 0;
	int r;

	snprintf(path, sizeof(path), "%s/%s", m->dir, name);
	r = read_manifest(path, &buf, &size);
	if (r == -ENOENT) {
		r = kp_ctx_unload(m->ctx, path);
		tell(m, KP_MANIFESTS_UNLOADED, path, r);
		return;
	}
	if (r < 0) {
		tell(m, KP_MANIFESTS_READ_FAILED, path, r);
		return;
	}
	r = kp_ctx_load(m->ctx, path, buf, size, KP_FORMAT_AUTO);
	free(buf);
	tell(m, r < 0 ? KP_MANIFESTS_LOAD_FAILED : KP_MANIFESTS_LOADED, path, r);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

KP_EXPORT int kp_manifests_rescan(struct kp_manifests *m)
{
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (!m)
		return -EINVAL;
	d = opendir(m->dir);
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
	if (n)		/* qsort() wants a non-null array even for none */
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		reload(m, names[i]);
		free(names[i]);
	}
	free(names);
	return 0;
}

KP_EXPORT int kp_manifests_new(struct kp_ctx *ctx, const char *dir, kp_manifests_fn fn,
			       void *userdata, struct kp_manifests **ret)
{
	struct kp_manifests *m;
	int r;

	if (!ctx || !dir || !ret)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ctx = ctx;
	m->fn = fn;
	m->userdata = userdata;
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
	r = kp_manifests_rescan(m);
	if (r < 0)
		goto out_free;
	*ret = m;
	return 0;
out_free:
	kp_manifests_free(m);
	return r;
}

KP_EXPORT int kp_manifests_fd(const struct kp_manifests *m)
{
	return m ? m->fd : -1;
}

KP_EXPORT int kp_manifests_process(struct kp_manifests *m)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	if (!m)
		return -EINVAL;
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
				tell(m, KP_MANIFESTS_OVERFLOW, m->dir, 0);
				kp_manifests_rescan(m);
			} else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				tell(m, KP_MANIFESTS_DIR_GONE, m->dir, 0);
			} else if (ev->len && wanted(ev->name)) {
				reload(m, ev->name);
			}
		}
	}
}

KP_EXPORT void kp_manifests_free(struct kp_manifests *m)
{
	if (!m)
		return;
	if (m->fd >= 0)
		close(m->fd);
	free(m->dir);
	free(m);
}
