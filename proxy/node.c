// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What kproxyd sets on the node at start, as kube-proxy's server does: nf_conntrack_max
 * (--conntrack-max-per-core times the CPUs, at least --conntrack-min; the hash size with
 * it where sysfs lets us), the conntrack TCP established and close-wait timeouts, TCP
 * liberal mode and the UDP timeouts when asked, and its own OOM score. A sysctl this
 * network namespace does not let us write (nf_conntrack_max outside the initial one) is
 * skipped with a log line, not an error: the node's administrator owns it then.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kpd.h"

/* A number from /proc or /sys, or -errno. */
static long long read_num(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	return strtoll(buf, NULL, 10);
}

static int write_num(const char *path, long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%lld", v), r = 0;
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n)
		r = errno ? -errno : -EIO;
	close(fd);
	return r;
}

/* Sets /proc/sys/net/netfilter/@name to @v unless it is that already. */
static void set_conntrack(const char *name, long long v)
{
	char path[128];
	long long cur;
	int r;

	snprintf(path, sizeof(path), "/proc/sys/net/netfilter/%s", name);
	cur = read_num(path);
	if (cur == v)
		return;
	r = write_num(path, v);
	if (r < 0)
		kpd_warn("cannot set %s to %lld (%s): left at %lld", path, v, kp_strerror(r), cur);
	else
		kpd_info("set sysctl %s to %lld (was %lld)", path, v, cur);
}

static void set_conntrack_max(void)
{
	uint32_t per_core = (uint32_t)strtoul(kpd_get("conntrack-max-per-core"), NULL, 10);
	uint32_t floor = (uint32_t)strtoul(kpd_get("conntrack-min"), NULL, 10);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	long long max, hashsize;

	if (!per_core)
		return;
	max = (long long)per_core * (cpus > 0 ? cpus : 1);
	if (max < floor)
		max = floor;
	set_conntrack("nf_conntrack_max", max);
	/* the hash table follows the maximum, as kube-proxy sizes it (a quarter) */
	hashsize = read_num("/sys/module/nf_conntrack/parameters/hashsize");
	if (hashsize >= 0 && hashsize < max / 4 &&
	    write_num("/sys/module/nf_conntrack/parameters/hashsize", max / 4) < 0)
		kpd_info("conntrack hash size left at %lld (sysfs not writable here)", hashsize);
}

void kpd_node_setup(void)
{
	uint32_t ms;
	int r;

	if (access("/proc/sys/net/netfilter/nf_conntrack_max", F_OK) < 0) {
		kpd_warn("no /proc/sys/net/netfilter/nf_conntrack_max (nf_conntrack not "
			 "loaded): conntrack settings left as they are");
	} else {
		set_conntrack_max();
		if ((ms = kpd_get_ms("conntrack-tcp-timeout-established")))
			set_conntrack("nf_conntrack_tcp_timeout_established", ms / 1000);
		if ((ms = kpd_get_ms("conntrack-tcp-timeout-close-wait")))
			set_conntrack("nf_conntrack_tcp_timeout_close_wait", ms / 1000);
		if (kpd_get_bool("conntrack-tcp-be-liberal"))
			set_conntrack("nf_conntrack_tcp_be_liberal", 1);
		if ((ms = kpd_get_ms("conntrack-udp-timeout")))
			set_conntrack("nf_conntrack_udp_timeout", ms / 1000);
		if ((ms = kpd_get_ms("conntrack-udp-timeout-stream")))
			set_conntrack("nf_conntrack_udp_timeout_stream", ms / 1000);
	}
	r = write_num("/proc/self/oom_score_adj", strtoll(kpd_get("oom-score-adj"), NULL, 10));
	if (r < 0)	/* as kube-proxy, a verbose note: containers often lack the capability */
		kpd_dbg(2, "--oom-score-adj %s: %s%s; left at %lld", kpd_get("oom-score-adj"),
			kp_strerror(r), r == -EACCES || r == -EPERM ? " (lowering it needs "
			"CAP_SYS_RESOURCE)" : "", read_num("/proc/self/oom_score_adj"));
}
