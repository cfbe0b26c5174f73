// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyd: flags, start-up, and the main loop. The loop polls the manifest directory's
 * inotify descriptor, the control socket and a signalfd, and sleeps no longer than the
 * sync runner allows: bursts of changes coalesce into one sync at most every
 * --min-sync-period, and everything is resynced every --sync-period.
 */
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "kproxyd.h"

#define MAX_CIDRS 16

struct options {
	const char *manifests;
	const char *hostname;
	const char *cluster_cidr;
	const char *proxy_mode;
	const char *control_socket;
	const char *healthz_address;
	const char *metrics_address;
	const char *scheduler;
	char backend_extra[64];
	uint32_t min_sync_ms;
	uint32_t sync_ms;
	bool dry_run;
	bool cleanup;
	bool masquerade_all;
	struct kp_addr np_nets[MAX_CIDRS];
	uint8_t np_prefixes[MAX_CIDRS];
	size_t n_np_nets;
};

static const char usage[] =
"Usage: kproxyd [OPTIONS]\n"
"Run in place of kube-proxy: program Service and EndpointSlice objects into a data plane.\n"
"\n"
"Sources:\n"
"      --manifests DIR            read *.json, *.yaml, *.yml in DIR and follow changes\n"
"Node:\n"
"      --hostname-override NAME   this node's name (default: the host name)\n"
"      --nodeport-addresses CIDRS comma-separated ranges whose local addresses serve\n"
"                                 NodePorts (default: every non-loopback address)\n"
"      --cluster-cidr CIDRS       pod ranges, for masquerade decisions\n"
"Data plane:\n"
"      --proxy-mode MODE          iptables (default) or dryrun; ipvs, userspace and\n"
"                                 dpdk are not built yet (accepted with --dry-run)\n"
"      --dry-run                  compute and serve the state, program nothing\n"
"      --masquerade-all           masquerade all traffic sent to service VIPs\n"
"      --ipvs-scheduler NAME      IPVS scheduler (rr, lc, dh, sh, sed, nq, ...)\n"
"      --min-sync-period DUR      least time between syncs (default 1s)\n"
"      --sync-period DUR          full resync period (default 30s; 0 disables)\n"
"      --cleanup                  remove everything the data plane installed, then exit\n"
"      --iptables-dispatch-threshold N\n"
"                                 above N frontends, split KUBE-SERVICES into a tree of\n"
"                                 chains by destination prefix (default 100; 0: never)\n"
"Control:\n"
"      --control-socket PATH      socket for kproxyctl (default /run/kproxyd.sock)\n"
"      --healthz-bind-address A   /healthz and /livez on host:port (default 0.0.0.0:10256;\n"
"                                 \"\" disables)\n"
"      --metrics-bind-address A   Prometheus /metrics on host:port (default\n"
"                                 127.0.0.1:10249; \"\" disables)\n"
"  -v, --v N                      log verbosity (0: errors, warnings and start-up; 2: changes;\n"
"                                 4: library debug)\n"
"  -h, --help                     print this help and exit\n"
"      --version                  print the version and exit\n"
"\n"
"Durations take a unit: 500ms, 1s, 2m, 1h (kube-proxy's syntax; 1m30s also works).\n";

enum {
	OPT_MANIFESTS = 256, OPT_HOSTNAME, OPT_NODEPORT, OPT_CLUSTER_CIDR, OPT_MODE, OPT_DRY_RUN,
	OPT_MASQ_ALL, OPT_SCHED, OPT_MIN_SYNC, OPT_SYNC, OPT_CLEANUP, OPT_SOCKET, OPT_VERSION,
	OPT_DISPATCH, OPT_HEALTHZ, OPT_METRICS,
};

static const struct option long_opts[] = {
	{ "manifests", required_argument, NULL, OPT_MANIFESTS },
	{ "hostname-override", required_argument, NULL, OPT_HOSTNAME },
	{ "nodeport-addresses", required_argument, NULL, OPT_NODEPORT },
	{ "cluster-cidr", required_argument, NULL, OPT_CLUSTER_CIDR },
	{ "proxy-mode", required_argument, NULL, OPT_MODE },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "masquerade-all", no_argument, NULL, OPT_MASQ_ALL },
	{ "ipvs-scheduler", required_argument, NULL, OPT_SCHED },
	{ "min-sync-period", required_argument, NULL, OPT_MIN_SYNC },
	{ "iptables-min-sync-period", required_argument, NULL, OPT_MIN_SYNC },
	{ "sync-period", required_argument, NULL, OPT_SYNC },
	{ "iptables-sync-period", required_argument, NULL, OPT_SYNC },
	{ "cleanup", no_argument, NULL, OPT_CLEANUP },
	{ "iptables-dispatch-threshold", required_argument, NULL, OPT_DISPATCH },
	{ "control-socket", required_argument, NULL, OPT_SOCKET },
	{ "healthz-bind-address", required_argument, NULL, OPT_HEALTHZ },
	{ "metrics-bind-address", required_argument, NULL, OPT_METRICS },
	{ "v", required_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ 0 }
};

/* Parses a Go-style duration ("1s", "500ms", "1m30s", "0") into milliseconds. */
static int parse_duration(const char *s, uint32_t *ret_ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	double total = 0;

	if (strcmp(s, "0") == 0) {
		*ret_ms = 0;
		return 0;
	}
	while (*s) {
		char *end;
		double v = strtod(s, &end);
		size_t i;

		if (end == s || v < 0)
			return -EINVAL;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strncmp(end, units[i].unit, strlen(units[i].unit)) == 0 &&
			    !(units[i].unit[0] == 'm' && !units[i].unit[1] && end[1] == 's'))
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		total += v * units[i].ms;
		s = end + strlen(units[i].unit);
	}
	if (total > UINT32_MAX)
		return -EINVAL;
	*ret_ms = (uint32_t)total;
	return 0;
}

static int parse_cidrs(const char *arg, struct options *o)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct kp_addr a;
		unsigned prefix;
		char *slash = strchr(tok, '/');

		if (o->n_np_nets == MAX_CIDRS || !slash) {
			r = -EINVAL;
			break;
		}
		*slash = '\0';
		if (kp_addr_from_str(tok, &a) < 0 || sscanf(slash + 1, "%u", &prefix) != 1 ||
		    prefix > (a.family == AF_INET ? 32u : 128u)) {
			r = -EINVAL;
			break;
		}
		o->np_nets[o->n_np_nets] = a;
		o->np_prefixes[o->n_np_nets++] = (uint8_t)prefix;
	}
	free(copy);
	return r;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	int c;

	while ((c = getopt_long(argc, argv, "hv:", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_MANIFESTS: o->manifests = optarg; break;
		case OPT_HOSTNAME: o->hostname = optarg; break;
		case OPT_CLUSTER_CIDR: o->cluster_cidr = optarg; break;
		case OPT_MODE: o->proxy_mode = optarg; break;
		case OPT_DRY_RUN: o->dry_run = true; break;
		case OPT_MASQ_ALL: o->masquerade_all = true; break;
		case OPT_SCHED: o->scheduler = optarg; break;
		case OPT_CLEANUP: o->cleanup = true; break;
		case OPT_SOCKET: o->control_socket = optarg; break;
		case OPT_HEALTHZ: o->healthz_address = optarg; break;
		case OPT_METRICS: o->metrics_address = optarg; break;
		case OPT_NODEPORT:
			if (parse_cidrs(optarg, o) < 0) {
				fprintf(stderr, "kproxyd: --nodeport-addresses: \"%s\" is not a "
						"comma-separated list of CIDRs\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_MIN_SYNC:
		case OPT_SYNC:
			if (parse_duration(optarg, c == OPT_SYNC ? &o->sync_ms : &o->min_sync_ms) < 0) {
				fprintf(stderr, "kproxyd: --%s: \"%s\" is not a duration such as 1s\n",
					c == OPT_SYNC ? "sync-period" : "min-sync-period", optarg);
				return -EINVAL;
			}
			break;
		case OPT_DISPATCH: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || !*optarg || v > 1000000) {
				fprintf(stderr, "kproxyd: --iptables-dispatch-threshold: \"%s\" is not "
						"a number 0..1000000\n", optarg);
				return -EINVAL;
			}
			snprintf(o->backend_extra, sizeof(o->backend_extra), "dispatch-threshold=%lu",
				 v);
			break;
		}
		case 'v': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 0 || v > 10) {
				fprintf(stderr, "kproxyd: --v: \"%s\" is not a level 0..10\n", optarg);
				return -EINVAL;
			}
			kpd_verbosity = (int)v;
			break;
		}
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case OPT_VERSION:
			printf("kproxyd %s\n", kp_version());
			exit(0);
		default:
			fputs("Try 'kproxyd --help'.\n", stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kproxyd: unexpected argument \"%s\"\nTry 'kproxyd --help'.\n",
			argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* The local addresses NodePorts are served on. */
static int nodeport_addrs(struct kp_ctx *ctx, const struct options *o)
{
	struct kp_addr addrs[256];
	struct ifaddrs *ifa, *i;
	size_t n = 0;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (i = ifa; i && n < 256; i = i->ifa_next) {
		struct kp_addr a = { 0 };
		bool dup = false;

		if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			a.family = AF_INET;
			a.v4 = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			a.family = AF_INET6;
			a.v6 = ((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
			if (IN6_IS_ADDR_LINKLOCAL(&a.v6))
				continue;
		} else {
			continue;
		}
		if (o->n_np_nets) {
			bool in = false;

			for (size_t k = 0; k < o->n_np_nets && !in; k++)
				in = kp_addr_in_prefix(&a, &o->np_nets[k], o->np_prefixes[k]);
			if (!in)
				continue;
		} else if (i->ifa_flags & IFF_LOOPBACK) {
			continue;
		}
		for (size_t k = 0; k < n && !dup; k++)
			dup = kp_addr_equal(&addrs[k], &a);
		if (!dup)
			addrs[n++] = a;
	}
	freeifaddrs(ifa);
	return kp_ctx_set_nodeport_addrs(ctx, addrs, n);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int select_backend(struct kp_ctx *ctx, const struct options *o)
{
	struct kp_config cfg = {
		.cluster_cidr = o->cluster_cidr,
		.masquerade_all = o->masquerade_all,
		.scheduler = o->scheduler,
		.extra = o->backend_extra[0] ? o->backend_extra : NULL,
	};
	static const char *const modes[] = { "iptables", "ipvs", "userspace", "dpdk", "dryrun" };
	bool known = false;
	int r;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		known |= strcmp(o->proxy_mode, modes[i]) == 0;
	if (!known) {
		kpd_err("--proxy-mode: unknown mode \"%s\" (iptables, ipvs, userspace, dpdk, dryrun)",
			o->proxy_mode);
		return -EINVAL;
	}
	r = kp_ctx_set_backend(ctx, o->dry_run ? "dryrun" : o->proxy_mode, &cfg);
	if (r == -ENOENT) {
		kpd_err("--proxy-mode %s: this data plane is not built into kproxyd %s yet; "
			"use --dry-run to compute the state without programming it",
			o->proxy_mode, kp_version());
		return r;
	}
	if (r < 0)
		kpd_err("--proxy-mode %s: cannot initialise the data plane: %s", o->proxy_mode,
			kp_strerror(r));
	return r;
}

static int setup_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Returns false when kproxyd should stop. */
static bool handle_signal(int sfd, struct kpd_manifests *m)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			kpd_info("SIGHUP: re-reading the manifest directory");
			if (m)
				kpd_manifests_rescan(m);
		} else {
			kpd_info("signal %u: stopping; programmed rules are left in place",
				 si.ssi_signo);
			return false;
		}
	}
	return true;
}

static void run_sync(struct kp_ctx *ctx, int64_t *wait)
{
	struct kp_counts before, after;
	struct timespec t0, t1;
	int r;

	kp_ctx_get_counts(ctx, &before);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = kp_ctx_run_due(ctx, mono_ms(), wait);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kp_ctx_get_counts(ctx, &after);
	if (after.n_syncs != before.n_syncs)
		kpd_http_observe_sync((double)(t1.tv_sec - t0.tv_sec) +
				      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (r < 0)
		kpd_err("sync with backend %s failed: %s; keeping what is programmed, retrying",
			kp_ctx_get_backend_name(ctx), kp_strerror(r));
	else if (r > 0)
		kpd_dbg(2, "synced %zu service ports (%zu services, %zu endpoint slices)",
			after.n_svc_ports, after.n_services, after.n_slices);
}

int main(int argc, char **argv)
{
	struct options o = {
		.proxy_mode = "iptables",
		.control_socket = "/run/kproxyd.sock",
		.min_sync_ms = 1000,
		.sync_ms = 30000,
		.healthz_address = "0.0.0.0:10256",
		.metrics_address = "127.0.0.1:10249",
	};
	struct kpd_manifests *m = NULL;
	struct kpd_control *ctl = NULL;
	struct kpd_http *hz = NULL, *mx = NULL;
	struct kp_ctx *ctx;
	char host[256];
	int sfd, r, rc = 1;
	bool running = true;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	if (!o.hostname) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		for (char *p = host; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		o.hostname = host;
	}
	ctx = kp_ctx_new();
	if (!ctx) {
		kpd_err("out of memory");
		return 1;
	}
	kp_ctx_set_log(ctx, kpd_lib_log, NULL, kpd_verbosity >= 4 ? KP_LOG_DEBUG : KP_LOG_INFO);
	if (kp_ctx_set_node_name(ctx, o.hostname) < 0 || select_backend(ctx, &o) < 0)
		goto out_ctx;
	if (o.cleanup) {
		r = kp_ctx_cleanup(ctx);
		if (r < 0)
			kpd_err("cleanup failed: %s", kp_strerror(r));
		rc = r < 0;
		goto out_ctx;
	}
	if (!o.manifests) {
		kpd_err("no source: give --manifests DIR (API-server sources are not built yet)");
		goto out_ctx;
	}
	r = nodeport_addrs(ctx, &o);
	if (r < 0)
		kpd_warn("cannot list local addresses for NodePorts: %s", kp_strerror(r));
	kp_ctx_set_sync_periods(ctx, o.min_sync_ms, o.sync_ms);
	sfd = setup_signals();
	r = kpd_control_open(o.control_socket, &ctl);
	if (r < 0) {
		kpd_err("--control-socket %s: %s", o.control_socket, kp_strerror(r));
		goto out_sig;
	}
	r = kpd_manifests_open(ctx, o.manifests, &m);
	if (r < 0) {
		kpd_err("--manifests %s: %s", o.manifests, kp_strerror(r));
		goto out_ctl;
	}
	{
		struct kp_counts c;

		kp_ctx_get_counts(ctx, &c);
		kpd_info("kproxyd %s: node %s, proxy mode %s%s; %zu services, %zu endpoint slices, "
			 "%zu endpoints objects from %s", kp_version(), o.hostname, o.proxy_mode,
			 o.dry_run ? " (dry run)" : "", c.n_services, c.n_slices, c.n_endpoints,
			 o.manifests);
	}
	/* like kube-proxy, a port that cannot be bound is an error, not the end */
	if (*o.healthz_address && (r = kpd_http_open(o.healthz_address, &hz)) < 0)
		kpd_err("--healthz-bind-address %s: %s; serving no health checks", o.healthz_address,
			kp_strerror(r));
	if (*o.metrics_address && (r = kpd_http_open(o.metrics_address, &mx)) < 0)
		kpd_err("--metrics-bind-address %s: %s; serving no metrics", o.metrics_address,
			kp_strerror(r));
	{
		struct kpd_info info = {
			.proxy_mode = o.proxy_mode,
			.dry_run = o.dry_run,
			.node_name = o.hostname,
			.manifests = o.manifests,
			.start_ms = wall_ms(),
			.healthz_address = kpd_http_address(hz),
			.metrics_address = kpd_http_address(mx),
		};
		struct kpd_health health = {
			.start_ms = info.start_ms,
			.timeout_ms = o.sync_ms ? o.sync_ms : 30000,
		};

		while (running) {
			struct pollfd pfd[5] = {
				{ .fd = kpd_manifests_fd(m), .events = POLLIN },
				{ .fd = kpd_control_fd(ctl), .events = POLLIN },
				{ .fd = sfd, .events = POLLIN },
				{ .fd = hz ? kpd_http_fd(hz) : -1, .events = POLLIN },
				{ .fd = mx ? kpd_http_fd(mx) : -1, .events = POLLIN },
			};
			int64_t wait;

			run_sync(ctx, &wait);
			if (poll(pfd, 5, wait > 60000 ? 60000 : (int)wait) < 0 && errno != EINTR) {
				kpd_err("poll: %s", kp_strerror(-errno));
				break;
			}
			if (pfd[0].revents)
				kpd_manifests_process(m);
			if (pfd[1].revents)
				kpd_control_serve(ctl, ctx, &info);
			if (pfd[2].revents)
				running = handle_signal(sfd, m);
			if (pfd[3].revents)
				kpd_http_serve(hz, ctx, &health);
			if (pfd[4].revents)
				kpd_http_serve(mx, ctx, NULL);
		}
	}
	kpd_http_close(hz);
	kpd_http_close(mx);
	rc = 0;
	kpd_manifests_close(m);
out_ctl:
	kpd_control_close(ctl);
out_sig:
	if (sfd >= 0)
		close(sfd);
out_ctx:
	kp_ctx_free(ctx);
	return rc;
}
