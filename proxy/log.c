// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyd's log: klog-like lines ("I1125 03:28:09.123456   4242 kproxyd] text") on
 * stderr, --v verbosity as kube-proxy uses it, and suppression of a line repeated
 * back to back (counted, and reported when a different line comes), and the reports of
 * what the library hands back to be logged: diagnostics, the manifest source's file
 * events. Thread safe: the userspace data plane logs from its worker threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "kpd.h"

int kpd_verbosity;

static char last_line[512];
static unsigned long last_repeats;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void emit(char sev, const char *msg)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	fprintf(stderr, "%c%02d%02d %02d:%02d:%02d.%06ld %7d kproxyd] %s\n", sev, tm.tm_mon + 1,
		tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec, (int)getpid(), msg);
}

void kpd_log(char sev, int v, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (v > kpd_verbosity)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&log_lock);
	if (strcmp(line, last_line) == 0) {
		last_repeats++;
		pthread_mutex_unlock(&log_lock);
		return;
	}
	if (last_repeats) {
		char note[80];

		snprintf(note, sizeof(note), "(last message repeated %lu times)", last_repeats);
		emit('I', note);
		last_repeats = 0;
	}
	snprintf(last_line, sizeof(last_line), "%s", line);
	emit(sev, line);
	pthread_mutex_unlock(&log_lock);
}

void kpd_lib_log(enum kp_log_level level, const char *msg, void *userdata)
{
	static const char sev[] = { 'E', 'W', 'I', 'I' };
	static const int v[] = { 0, 0, 2, 4 };

	kpd_log(sev[level], v[level], "%s", msg);
}

static void report_diag(const struct kp_diag *d, void *userdata)
{
	if (*d->kind)
		kpd_err("%s: %s %s/%s rejected: %s: %s", d->source, d->kind, d->ns, d->name,
			*d->field ? d->field : "(object)", d->msg);
	else
		kpd_err("%s: document rejected: %s%s%s", d->source, d->field, *d->field ? ": " : "",
			d->msg);
}

void kpd_report_diags(struct kp_ctx *ctx)
{
	kp_ctx_drain_diags(ctx, report_diag, NULL);
}

void kpd_manifests_event(enum kp_manifests_event event, const char *path, int result,
			 void *userdata)
{
	switch (event) {
	case KP_MANIFESTS_LOADED:
		kpd_report_diags(userdata);
		kpd_dbg(2, "%s: %d objects loaded", path, result);
		break;
	case KP_MANIFESTS_UNLOADED:
		kpd_dbg(2, "%s: removed, %d objects unloaded", path, result);
		break;
	case KP_MANIFESTS_READ_FAILED:
		kpd_err("%s: cannot read: %s; its objects are kept", path, kp_strerror(result));
		break;
	case KP_MANIFESTS_LOAD_FAILED:
		kpd_report_diags(userdata);
		if (result == -ENOMEM)
			kpd_err("%s: out of memory while loading", path);
		else
			kpd_err("%s: not loaded (%s); its previous objects are kept", path,
				kp_strerror(result));
		break;
	case KP_MANIFESTS_OVERFLOW:
		kpd_warn("%s: inotify queue overflowed; rescanning", path);
		break;
	case KP_MANIFESTS_DIR_GONE:
		kpd_err("%s: directory removed or moved; programmed state is kept", path);
		break;
	default:
		break;
	}
}
