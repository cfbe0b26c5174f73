/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The manifest-directory source: Services, EndpointSlices and Endpoints read from the
 * *.json, *.yaml and *.yml files of one directory and followed with inotify, each file
 * one source of a context (named by its path). No threads: the caller polls
 * kp_manifests_fd() and calls kp_manifests_process(), as with the API source (api.h).
 */
#ifndef KPROXY_MANIFESTS_H
#define KPROXY_MANIFESTS_H

#include <kproxy/kproxy.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kp_manifests;

/* What happened to a file or to the directory, for kp_manifests_fn. */
enum kp_manifests_event {
	KP_MANIFESTS_LOADED,		/* a file was (re)loaded; result: objects accepted */
	KP_MANIFESTS_UNLOADED,		/* a file is gone; result: objects removed */
	KP_MANIFESTS_READ_FAILED,	/* a file cannot be read; result: -errno; its objects
					 * are kept */
	KP_MANIFESTS_LOAD_FAILED,	/* kp_ctx_load() refused a file; result: its error;
					 * the file's previous objects are kept */
	KP_MANIFESTS_OVERFLOW,		/* inotify's queue overflowed: every file is read
					 * again; path: the directory */
	KP_MANIFESTS_DIR_GONE,		/* the directory was removed or moved: nothing more is
					 * followed, every object is kept; path: the directory */
	_KP_MANIFESTS_EVENT_MAX
};

/**
 * kp_manifests_fn - told of each file loaded, unloaded or refused
 * @event: what happened
 * @path: the file ("DIR/NAME") or, for the directory's events, the directory; borrowed
 *        for the call
 * @result: as @event says
 * @userdata: as given to kp_manifests_new()
 * Called from kp_manifests_new(), kp_manifests_process() and kp_manifests_rescan(),
 * after the context has the change: a caller drains the context's diagnostics
 * (kp_ctx_drain_diags()) here to report a file's rejected objects with the file. The
 * library logs none of these itself.
 */
typedef void (*kp_manifests_fn)(enum kp_manifests_event event, const char *path, int result,
				void *userdata);

/**
 * kp_manifests_new - read a manifest directory and follow it
 * @ctx: the context the objects go into (borrowed: it must outlive the source)
 * @dir: the directory (copied); hidden files and editor backups ("~") are ignored
 * @fn: told of every file event, or NULL
 * @userdata: passed to @fn
 * @ret: the source (caller owns it; free with kp_manifests_free())
 *
 * Every file is read at once, in name order. Afterwards a file written (closed after
 * writing) or moved in is reloaded, one removed or moved away is unloaded, so each change
 * updates exactly the objects that file holds.
 * Returns: 0 and *@ret, -EINVAL, -ENOMEM, or the -errno of inotify or of opening @dir.
 */
int kp_manifests_new(struct kp_ctx *ctx, const char *dir, kp_manifests_fn fn, void *userdata,
		     struct kp_manifests **ret);

/* A descriptor to poll for input; call kp_manifests_process() when it is readable.
 * -1 for a NULL @m. */
int kp_manifests_fd(const struct kp_manifests *m);

/**
 * kp_manifests_process - reload or unload the files the pending inotify events name
 * Returns: 0, -EINVAL, or the -errno of reading the inotify descriptor.
 */
int kp_manifests_process(struct kp_manifests *m);

/**
 * kp_manifests_rescan - read every file again (what kproxyd does on SIGHUP)
 * Files that are gone are not unloaded by a rescan; inotify has told of them.
 * Returns: 0, -EINVAL, or the -errno of opening the directory.
 */
int kp_manifests_rescan(struct kp_manifests *m);

/* Stops following the directory; the objects stay in the context. @m may be NULL. */
void kp_manifests_free(struct kp_manifests *m);

#ifdef __cplusplus
}
#endif

#endif
