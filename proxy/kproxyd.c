// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyd: flags, start-up, and the main loop. The loop polls the manifest directory's
 * inotify descriptor, the control socket and a signalfd, and sleeps no longer than the
 * sync runner allows: bursts of changes coalesce into one sync at most every
 * --min-sync-period, and everything is resynced every --sync-period.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kpd.h"

/* What kproxyd derives from its settings (proxy/flags.c holds the settings themselves). */
struct options {
	const char *config;		/* --config FILE, or NULL */
	const char *proxy_mode;
	const char *hostname;
	char host[256];			/* the node's name, as kube-proxy takes it */
	bool dry_run;
	bool cleanup;
	struct kpd_nodeaddrs *na;	/* --nodeport-addresses */
	bool node_cidr;			/* --detect-local-mode NodeCIDR: the data plane waits
					 * for the Node's pod ranges */
	const char *pod_cidrs;		/* the Node's spec.podCIDRs, once known */
};

static void config_warn(const char *file, const char *field)
{
	kpd_warn("%s: %s: not supported by kproxyd; ignored", file, field);
}

/* This node's name as kube-proxy takes it: trimmed and in lower case; the host name when
 * none is given. Returns 0 or -EINVAL (an override of only spaces). */
static int node_name(struct options *o, char *buf, size_t size)
{
	const char *v = kpd_get("hostname-override");
	size_t len;

	if (v && kpd_is_set("hostname-override", false)) {
		while (*v == ' ' || *v == '\t')
			v++;
		len = strlen(v);
		while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (!len && kpd_is_set("hostname-override", true)) {
			fprintf(stderr, "kproxyd: --hostname-override: an empty name is invalid\n");
			return -EINVAL;
		}
		snprintf(buf, size, "%.*s", (int)len, v);
	}
	if (!buf[0] && gethostname(buf, size) < 0)
		snprintf(buf, size, "localhost");
	buf[size - 1] = '\0';
	for (char *p = buf; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	o->hostname = buf;
	return 0;
}

/*
 * The command line, then the config file under it (flags win), then every value checked
 * against its declaration for the mode. Returns 0, 1 when kproxyd should exit 0 (--help,
 * --version), or -EINVAL with the reason printed.
 */
static int read_settings(int argc, char **argv, struct kp_ctx *ctx, struct options *o)
{
	char err[512] = "";
	const char *v;

	if (kpd_flags_parse(argc, argv) < 0)
		return -EINVAL;
	if (kpd_get_bool("help")) {
		kpd_flags_usage(stdout, ctx, kpd_is_set("proxy-mode", true) ?
				kpd_get("proxy-mode") : NULL);
		return 1;
	}
	if (kpd_get("flag-table")) {
		kpd_flags_table(stdout, ctx, !strcmp(kpd_get("flag-table"), "man"));
		return 1;
	}
	if (kpd_get_bool("version")) {
		printf("kproxyd %s\n", kp_version());
		return 1;
	}
	o->config = kpd_get("config");
	if (o->config && kpd_config_load(ctx, o->config, config_warn, err, sizeof(err)) < 0) {
		fprintf(stderr, "kproxyd: --config: %s\n", err);
		return -EINVAL;
	}
	o->proxy_mode = kpd_get("proxy-mode");
	if (!*o->proxy_mode)
		o->proxy_mode = "iptables";
	if (kpd_flags_check(ctx, o->proxy_mode) < 0 || kpd_flags_resolve(o->proxy_mode) < 0)
		return -EINVAL;
	kpd_verbosity = (int)strtol(kpd_get("v"), NULL, 10);
	o->dry_run = kpd_get_bool("dry-run");
	o->cleanup = kpd_get_bool("cleanup");
	if (node_name(o, o->host, sizeof(o->host)) < 0)
		return -EINVAL;
	v = kpd_get("nodeport-addresses");
	return kpd_nodeaddrs_new(v, o->proxy_mode, &o->na);
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

extern char **environ;

/*
 * IPVS mode needs kernel modules that nothing loads on demand (ip_tables for the
 * iptables socket options; the rest load on first use but are listed as kube-proxy's
 * IPVS mode loads them). Runs "modprobe -q -a ..." once and waits; a failure only shows
 * as the data plane's own error afterwards.
 */
static void modprobe(char *const argv[])
{
	pid_t pid;
	int status;

	if (posix_spawnp(&pid, "modprobe", NULL, NULL, argv, environ) != 0)
		return;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

static void load_ipvs_modules(const char *sched)
{
	char sched_mod[32];
	char *argv[] = { "modprobe", "-q", "-a", "ip_vs", sched_mod, "nf_conntrack",
			 "ip_tables", "iptable_nat", "iptable_filter", "ip6_tables",
			 "ip6table_nat", "ip6table_filter", "ip_set", "xt_set", "dummy", NULL };

	snprintf(sched_mod, sizeof(sched_mod), "ip_vs_%s", sched && *sched ? sched : "rr");
	modprobe(argv);
}

/*
 * The userspace mode holds two descriptors per connection (and pipes while bytes move):
 * raise the soft limit to the hard one, and both as far as fs.nr_open allows when we may
 * (kube-proxy's userspace mode raised it too).
 */
static void raise_nofile(void)
{
	struct rlimit rl;
	unsigned long nr_open = 1048576;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");

	if (f) {
		if (fscanf(f, "%lu", &nr_open) != 1)
			nr_open = 1048576;
		fclose(f);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max < nr_open) {
		struct rlimit up = { .rlim_cur = nr_open, .rlim_max = nr_open };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/*
 * --detect-local-mode as the data plane takes it: "" is ClusterCIDR; NodeCIDR is
 * ClusterCIDR over the Node's spec.podCIDRs (@o->pod_cidrs) in place of --cluster-cidr.
 * Edits @set. 0 or -ENOMEM.
 */
static int detect_local_setting(struct kp_ctx *ctx, const struct options *o,
				struct kp_setting **set, size_t *n_set)
{
	const struct kp_backend_ops *ops = kp_backend_find(ctx, o->proxy_mode);
	const char *mode = kpd_get("detect-local-mode");
	struct kp_setting *v;
	bool takes = false;
	size_t k = 0;

	for (size_t i = 0; ops && i < ops->n_options; i++)
		takes |= !strcmp(ops->options[i].name, "detect-local-mode");
	if (!*mode || !strcmp(mode, "ClusterCIDR"))
		return 0;
	if (!takes) {
		kpd_info("--detect-local-mode %s: no effect in --proxy-mode %s", mode,
			 o->proxy_mode);
		return 0;
	}
	if (!strcmp(mode, "NodeCIDR") && !o->pod_cidrs)
		return 0;		/* --cleanup, --init-only: no ranges needed */
	v = realloc(*set, (*n_set + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	*set = v;
	if (strcmp(mode, "NodeCIDR")) {
		v[(*n_set)++] = (struct kp_setting){ "detect-local-mode", mode };
		return 0;
	}
	for (size_t i = 0; i < *n_set; i++)	/* the Node's ranges, not --cluster-cidr */
		if (strcmp(v[i].name, "cluster-cidr"))
			v[k++] = v[i];
	v[k++] = (struct kp_setting){ "cluster-cidr", o->pod_cidrs };
	*n_set = k;
	kpd_info("--detect-local-mode NodeCIDR: pod traffic is what comes from %s (the Node's "
		 "spec.podCIDRs)", o->pod_cidrs);
	return 0;
}

/*
 * The legacy modes write x_tables: refused where the kernel has none; where the node's
 * other components write nf_tables (iptables-nft), said plainly. Returns 0 or -ENOTSUP.
 */
static int check_node_netfilter(const struct options *o, struct kpd_nodefw *fw)
{
	static const char *const legacy[] = { "iptables", "ipvs", "userspace" };
	bool uses_legacy = false;

	kpd_nodefw_check(fw);
	for (size_t i = 0; i < KP_ARRAY_SIZE(legacy); i++)
		uses_legacy |= !strcmp(o->proxy_mode, legacy[i]);
	if (!uses_legacy || o->dry_run)
		return 0;
	if (fw->legacy_missing) {
		/* as iptables-legacy does: a module the kernel has but has not loaded (nothing
		 * loads ip_tables on demand) is loaded, where we may (CAP_SYS_MODULE) */
		char *argv[] = { "modprobe", "-q", "-a", "ip_tables", "iptable_nat",
				 "iptable_filter", NULL };

		modprobe(argv);
		kpd_nodefw_check(fw);
	}
	if (fw->legacy_missing) {
		kpd_err("--proxy-mode %s writes the kernel's legacy ip_tables, which is not "
			"loaded and could not be loaded here (modprobe ip_tables needs "
			"CAP_SYS_MODULE and the host's /lib/modules: load it on the node, "
			"modules-load.d), or which this kernel does not have "
			"(CONFIG_IP_NF_IPTABLES): then use --proxy-mode nftables, kube-proxy's "
			"nf_tables mode (not built into kproxyd %s yet)", o->proxy_mode,
			kp_version());
		return -ENOTSUP;
	}
	if (fw->node_uses_nft)
		kpd_warn("this node's other rules are in nf_tables (%s; %lu rules there, %lu in the "
			 "legacy tables): --proxy-mode %s writes legacy ip_tables, which the kernel "
			 "evaluates apart from them, and which iptables-nft does not show; "
			 "--proxy-mode nftables (kube-proxy's nf_tables mode) is the way out",
			 fw->nft_hint ? "kubelet's KUBE-IPTABLES-HINT is there" : "more rules there",
			 fw->nft_rules, fw->legacy_rules, o->proxy_mode);
	return 0;
}

/*
 * As kube-proxy's platformCleanup: another mode's rules would intercept the traffic of
 * this one (KUBE-SERVICES in nat ahead of the kube-proxy tables, or the other way round),
 * so a start in nftables mode removes the iptables, ipvs (and userspace) leftovers, a
 * start in an x_tables mode removes the nftables tables, and --cleanup removes them all.
 * Each goes through its own data plane's cleanup in a context of its own; one that cannot
 * start here (no legacy ip_tables, no ip_vs) has nothing to remove.
 */
static int cleanup_modes(const char *current, bool all)
{
	static const char *const xt[] = { "iptables", "ipvs", "userspace" };
	bool nft_mode = !strcmp(current, "nftables");
	int rc = 0;

	for (size_t i = 0; i <= sizeof(xt) / sizeof(xt[0]); i++) {
		const char *mode = i < sizeof(xt) / sizeof(xt[0]) ? xt[i] : "nftables";
		bool xt_mode = strcmp(mode, "nftables") != 0;
		struct kp_ctx *tmp;
		int r;

		if (!strcmp(mode, current) || (!all && (xt_mode ? !nft_mode : nft_mode ||
						       !strcmp(current, "dpdk"))))
			continue;
		tmp = kp_ctx_new();
		if (!tmp)
			return -ENOMEM;
		kp_ctx_set_log(tmp, kpd_lib_log, NULL, KP_LOG_WARN);
		r = kp_ctx_set_backend(tmp, mode, NULL, 0);
		if (r < 0) {
			kpd_dbg(2, "%s leftovers: none to remove (%s)", mode, kp_ctx_get_error(tmp));
		} else if ((r = kp_ctx_cleanup(tmp)) < 0) {
			kpd_warn("removing the %s mode's leftovers failed: %s", mode,
				 kp_ctx_get_error(tmp));
			rc = r;
		} else {
			kpd_dbg(2, "%s leftovers removed (if there were any)", mode);
		}
		kp_ctx_free(tmp);
	}
	return rc;
}

static int select_backend(struct kp_ctx *ctx, struct options *o)
{
	static const char *const modes[] = { "iptables", "ipvs", "userspace", "nftables", "dpdk",
						     "dryrun" };
	struct kp_setting *set = NULL;
	size_t n_set = 0;
	bool known = false;
	int r;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		known |= strcmp(o->proxy_mode, modes[i]) == 0;
	if (!known) {
		kpd_err("--proxy-mode: unknown mode \"%s\" (iptables, ipvs, userspace, nftables, "
			"dpdk, dryrun)",
			o->proxy_mode);
		return -EINVAL;
	}
	if (!kp_backend_find(ctx, o->proxy_mode)) {
		kpd_err("--proxy-mode %s: this data plane is not built into kproxyd %s yet; "
			"use --dry-run to compute the state without programming it",
			o->proxy_mode, kp_version());
		return -ENOENT;
	}
	r = kpd_flags_settings(ctx, o->proxy_mode, &set, &n_set);
	if (r == 0)
		r = detect_local_setting(ctx, o, &set, &n_set);
	if (r < 0) {
		kpd_err("out of memory");
		return r;
	}
	if (!o->dry_run && !strcmp(o->proxy_mode, "ipvs"))
		load_ipvs_modules(kpd_get("ipvs-scheduler"));
	if (!o->dry_run && !o->cleanup && !strcmp(o->proxy_mode, "userspace"))
		raise_nofile();
	r = o->dry_run ? kp_ctx_set_backend(ctx, "dryrun", NULL, 0) :
			 kp_ctx_set_backend(ctx, o->proxy_mode, set, n_set);
	free(set);
	if (r < 0)
		kpd_err("--proxy-mode %s: cannot initialise the data plane: %s", o->proxy_mode,
			kp_ctx_get_error(ctx));
	return r;
}

/* The API-server source: --kubeconfig, --master, or the pod's in-cluster config. */
static int open_api(struct kp_ctx *ctx, const struct options *o, struct kp_api **ret)
{
	const char *kubeconfig = kpd_get("kubeconfig"), *master = kpd_get("master");
	struct kp_api_auth auth = { 0 };
	char err[512] = "";
	int r = 0;

	if (kubeconfig && *kubeconfig) {
		r = kp_api_auth_from_kubeconfig(kubeconfig, kpd_get("context"), &auth, err,
						sizeof(err));
		if (r < 0)
			kpd_err("--kubeconfig: %s", err[0] ? err : kp_strerror(r));
	} else if (!master) {
		r = kp_api_auth_in_cluster(NULL, &auth, err, sizeof(err));
		if (r < 0)
			kpd_err("no source: give --manifests DIR, --kubeconfig FILE or --master URL, "
				"or run in a pod (in-cluster config: %s)", err[0] ? err : kp_strerror(r));
	}
	if (!r && master) {
		free(auth.server);
		auth.server = strdup(master);
		r = auth.server ? 0 : -ENOMEM;
	}
	if (!r) {
		r = kp_api_new(ctx, &auth, o->hostname, 0, ret);
		/* as kube-proxy: the nftables mode drops traffic to unallocated ClusterIPs */
		if (!r && !strcmp(o->proxy_mode, "nftables"))
			r = kp_api_set_watch_service_cidrs(*ret, true);
		if (!r && (r = kp_api_set_watch_stall_timeout(*ret,
				kpd_get_ms("api-watch-stall-timeout"))) < 0) {
			kp_api_free(*ret);
			*ret = NULL;
		}
		if (r < 0)
			kpd_err("API server %s: %s", strchr(auth.server, '@') ?
				"(its URL not shown: it may hold a password)" : auth.server,
				kp_strerror(r));
		else
			kpd_info("API server %s: listing services and endpoint slices; nothing is "
				 "programmed before both lists are in", auth.server);
	}
	kp_api_auth_clear(&auth);
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

/* Everything the loop's callbacks reach. */
struct daemon {
	struct options *o;
	struct kp_ctx *ctx;
	struct kpd_loop *loop;
	struct kp_manifests *m;
	struct kp_api *api;
	bool api_synced;
	struct kpd_control *ctl;
	struct kpd_info info;
	struct kpd_http *hz, *mx;
	struct kpd_health health;
	struct kpd_run run;
	struct kpd_hc *hc;
	int nafd;			/* the NodePort addresses' changes, or -1 */
	int sfd;
	int cfd;			/* the --config file's watch, or -1 */
	struct kpd_nodefw nodefw;	/* the node's netfilter interface, seen at start */
	int64_t node_cidr_deadline;	/* NodeCIDR: when waiting for the Node ends */
	int rc;				/* the exit status once the loop ends */
};

static void on_signal(int fd, void *userdata)
{
	struct daemon *d = userdata;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			if (d->m) {
				kpd_info("SIGHUP: re-reading the manifest directory");
				kp_manifests_rescan(d->m);
			}
		} else {
			kpd_info("signal %u: stopping; programmed rules are left in place",
				 si.ssi_signo);
			kpd_loop_quit(d->loop);
			return;
		}
	}
}

/*
 * --detect-local-mode NodeCIDR: the data plane is opened once the Node's pod ranges are
 * known, as kube-proxy waits for them (5 minutes, then it fails). Returns how long the
 * loop may sleep.
 */
static int64_t wait_node_cidrs(struct daemon *d)
{
	const char *cidrs = kp_api_node_pod_cidrs(d->api);

	if (!d->node_cidr_deadline) {
		d->node_cidr_deadline = mono_ms() + 5 * 60 * 1000;
		kpd_info("--detect-local-mode NodeCIDR: waiting for node %s's spec.podCIDRs; "
			 "nothing is programmed before", d->o->hostname);
	}
	if (!cidrs) {
		if (mono_ms() < d->node_cidr_deadline)
			return 500;
		kpd_err("--detect-local-mode NodeCIDR: node %s has no spec.podCIDRs after 5 "
			"minutes", d->o->hostname);
		d->rc = 1;
		kpd_loop_quit(d->loop);
		return -1;
	}
	d->o->pod_cidrs = cidrs;
	if (select_backend(d->ctx, d->o) < 0) {
		d->rc = 1;
		kpd_loop_quit(d->loop);
		return -1;
	}
	return 0;
}

/* The sync runner: syncs when one is due; nothing is programmed from a partial view of
 * the API server. */
static int64_t sync_tick(void *userdata)
{
	struct daemon *d = userdata;
	struct kp_counts before, after;
	struct timespec t0, t1;
	int64_t wait = -1;
	int r;

	if (d->o->node_cidr && !d->o->pod_cidrs)
		return wait_node_cidrs(d);
	if (d->api && !d->api_synced && (d->api_synced = kp_api_synced(d->api)))
		kpd_info("API server lists are in: programming");
	if (d->api && !d->api_synced)
		return -1;
	kp_ctx_get_counts(d->ctx, &before);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = kp_ctx_run_due(d->ctx, mono_ms(), &wait);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kp_ctx_get_counts(d->ctx, &after);
	if (after.n_syncs != before.n_syncs) {
		struct kp_sync_info si;

		d->run.last_sync_s = (double)(t1.tv_sec - t0.tv_sec) +
				     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		kp_ctx_get_sync_info(d->ctx, &si, sizeof(si));
		d->run.last_sync_full = si.last_sync_full;
		kpd_http_observe_sync(d->ctx, d->run.last_sync_s, d->run.last_sync_full);
		kpd_hc_update(d->hc, d->ctx);
	}
	kp_ctx_drain_programming_latencies(d->ctx, kpd_http_observe_programming, NULL);
	if (r < 0)
		kpd_err("sync with backend %s failed: %s; keeping what is programmed, retrying",
			kp_ctx_get_backend_name(d->ctx), kp_ctx_get_error(d->ctx));
	else if (r > 0)
		kpd_dbg(2, "synced %zu service ports (%zu services, %zu endpoint slices)",
			after.n_svc_ports, after.n_services, after.n_slices);
	return wait;
}

/* As kube-proxy: a changed configuration file ends kproxyd, to be started again with it. */
static void on_config_change(int fd, void *userdata)
{
	struct daemon *d = userdata;

	(void)fd;
	kpd_err("--config %s: the content of the configuration file was updated: exiting, to "
		"be restarted with it", d->o->config);
	d->rc = 1;
	kpd_loop_quit(d->loop);
}

static void on_api(int fd, void *userdata)
{
	struct daemon *d = userdata;

	(void)fd;
	kp_api_process(d->api);
	kpd_report_diags(d->ctx);
}

/* The API client's own timers (back-off, curl's time-outs). */
static int64_t api_tick(void *userdata)
{
	struct daemon *d = userdata;
	int64_t t = kp_api_timeout_ms(d->api);

	if (t == 0) {
		on_api(-1, d);
		t = kp_api_timeout_ms(d->api);
	}
	return t;
}

/* An address came or went: the NodePorts (at the next sync) and the health-check node
 * ports follow. */
static void on_addrs(int fd, void *userdata)
{
	struct daemon *d = userdata;
	int r;

	(void)fd;
	r = kpd_nodeaddrs_update(d->o->na, d->ctx, d->hc);
	if (r < 0)
		kpd_warn("cannot list local addresses for NodePorts: %s", kp_strerror(r));
}

static void on_manifests(int fd, void *userdata)
{
	(void)fd;
	kp_manifests_process(userdata);
}

/* Whether kproxyd reads the API server: --kubeconfig, --master, or no --manifests. */
static bool has_api_source(void)
{
	const char *kc = kpd_get("kubeconfig");

	return (kc && *kc) || kpd_get("master") || !kpd_get("manifests");
}

/* The sources: the manifest directory, the API server, or both. Returns 0 or -errno,
 * with the reason logged. */
static int open_sources(struct daemon *d)
{
	const char *dir = kpd_get("manifests");
	int r;

	d->info.manifests = dir;
	if (dir) {
		r = kp_manifests_new(d->ctx, dir, kpd_manifests_event, d->ctx, &d->m);
		if (r < 0) {
			kpd_err("--manifests %s: %s", dir, kp_strerror(r));
			return r;
		}
		kpd_loop_watch(d->loop, kp_manifests_fd(d->m), on_manifests, d->m);
	}
	if (has_api_source()) {
		r = open_api(d->ctx, d->o, &d->api);
		if (r < 0)
			return r;
		kpd_loop_watch(d->loop, kp_api_fd(d->api), on_api, d);
		kpd_loop_tick(d->loop, api_tick, d);
	}
	d->info.api = d->health.api = d->api;
	return 0;
}

/*
 * A health or metrics address as kube-proxy takes it: "IP:port", or an IP alone (the
 * default port added); the deprecated --healthz-port/--metrics-port give the port of an
 * IP alone, and 0 turns the server off (without --config only, as kube-proxy).
 */
static const char *bind_spec(const char *flag, const char *port_flag, unsigned def_port,
			     bool with_config, char *buf, size_t size)
{
	const char *v = kpd_get(flag);
	const char *last = strrchr(v, ':');
	bool has_port = last && (v[0] != '[' || last > strchr(v, ']'));
	unsigned port = def_port;

	if (!with_config && kpd_is_set(port_flag, true)) {
		port = (unsigned)strtoul(kpd_get(port_flag), NULL, 10);
		if (!port)
			return "";
	}
	if (!*v || (has_port && (v[0] == '[' || strchr(v, ':') == last)))
		return v;		/* "", "IP:port", "[v6]:port" */
	snprintf(buf, size, "%s%s%s:%u", strchr(v, ':') && v[0] != '[' ? "[" : "", v,
		 strchr(v, ':') && v[0] != '[' ? "]" : "", port);
	return buf;
}

/* Health and metrics listeners; like kube-proxy, a port that cannot be bound is an
 * error, not the end, unless --bind-address-hard-fail. Returns 0 or -errno. */
static int open_http(struct daemon *d)
{
	char b1[128], b2[128];
	bool hard = kpd_get_bool("bind-address-hard-fail"), cfg = d->o->config != NULL;
	const char *hz = bind_spec("healthz-bind-address", "healthz-port", 10256, cfg, b1,
				   sizeof(b1));
	const char *mx = bind_spec("metrics-bind-address", "metrics-port", 10249, cfg, b2,
				   sizeof(b2));
	int r;

	if (*hz && (r = kpd_http_open(hz, d->loop, d->ctx, &d->health, false, &d->hz)) < 0) {
		kpd_err("--healthz-bind-address %s: %s%s; %s", hz, kp_strerror(r),
			r == -EACCES ? " (a port below 1024 needs CAP_NET_BIND_SERVICE)" : "",
			hard ? "exiting (--bind-address-hard-fail)" : "serving no health checks");
		if (hard)
			return r;
	}
	if (*mx && (r = kpd_http_open(mx, d->loop, d->ctx, &d->health, true, &d->mx)) < 0) {
		kpd_err("--metrics-bind-address %s: %s%s; %s", mx, kp_strerror(r),
			r == -EACCES ? " (a port below 1024 needs CAP_NET_BIND_SERVICE)" : "",
			hard ? "exiting (--bind-address-hard-fail)" : "serving no metrics");
		if (hard)
			return r;
	}
	d->info.healthz_address = kpd_http_address(d->hz);
	d->info.metrics_address = kpd_http_address(d->mx);
	return 0;
}

/* Everything the loop serves; 0 or -errno with the reason logged. */
static int open_daemon(struct daemon *d)
{
	const char *sock = kpd_get("control-socket");
	struct kp_counts c;
	int r;

	d->sfd = setup_signals();
	r = kpd_loop_new(&d->loop);
	if (r < 0 || d->sfd < 0) {
		kpd_err("cannot start the event loop: %s", kp_strerror(r < 0 ? r : -errno));
		return r < 0 ? r : -errno;
	}
	kpd_loop_watch(d->loop, d->sfd, on_signal, d);
	if (d->o->config) {
		d->cfd = kpd_config_watch(d->o->config);
		if (d->cfd < 0)
			kpd_warn("--config %s: cannot watch it for changes: %s", d->o->config,
				 kp_strerror(d->cfd));
		else
			kpd_loop_watch(d->loop, d->cfd, on_config_change, d);
	}
	r = kpd_control_open(sock, d->loop, d->ctx, &d->info, &d->ctl);
	if (r < 0) {
		kpd_err("--control-socket %s: %s", sock, kp_strerror(r));
		return r;
	}
	r = open_sources(d);
	if (r < 0)
		return r;
	kp_ctx_get_counts(d->ctx, &c);
	kpd_info("kproxyd %s: node %s, proxy mode %s%s; %zu services, %zu endpoint slices, "
		 "%zu endpoints objects from %s", kp_version(), d->o->hostname, d->o->proxy_mode,
		 d->o->dry_run ? " (dry run)" : "", c.n_services, c.n_slices, c.n_endpoints,
		 d->info.manifests ? d->info.manifests : "the API server (listing)");
	r = open_http(d);
	if (r < 0)
		return r;
	d->run = (struct kpd_run){ .last_sync_s = -1, .last_check = -1 };
	d->info.run = &d->run;
	d->health.run = &d->run;
	d->info.proxy_mode = d->o->proxy_mode;
	d->info.dry_run = d->o->dry_run;
	d->info.node_name = d->o->hostname;
	d->info.start_ms = d->health.start_ms = wall_ms();
	/* kube-proxy's healthTimeout: twice the sync period */
	d->health.timeout_ms = 2 * (int64_t)(kpd_get_ms("sync-period") ? kpd_get_ms("sync-period") :
					     30000);
	d->health.mode = d->o->proxy_mode;
	d->health.nodefw = &d->nodefw;
	if (kpd_hc_new(d->loop, &d->hc) < 0)
		kpd_err("out of memory: serving no health check node ports");
	kpd_hc_set_health(d->hc, d->ctx, &d->health);
	on_addrs(-1, d);
	if (d->nafd >= 0)
		kpd_loop_watch(d->loop, d->nafd, on_addrs, d);
	return kpd_loop_tick(d->loop, sync_tick, d);
}

static void close_daemon(struct daemon *d)
{
	kpd_http_close(d->hz);
	kpd_http_close(d->mx);
	kpd_hc_free(d->hc);
	kp_api_free(d->api);
	kp_manifests_free(d->m);
	kpd_control_close(d->ctl);
	kpd_loop_free(d->loop);
	if (d->sfd >= 0)
		close(d->sfd);
	if (d->cfd >= 0)
		close(d->cfd);
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct daemon d = { .o = &o, .sfd = -1, .cfd = -1, .nafd = -1 };
	int r, rc = 2, lock_fd = -1;

	d.ctx = kp_ctx_new();
	if (!d.ctx) {
		kpd_err("out of memory");
		return 1;
	}
	r = read_settings(argc, argv, d.ctx, &o);
	if (r != 0) {
		rc = r > 0 ? 0 : 2;
		goto out;
	}
	rc = 1;
	if (kpd_get("write-config-to")) {
		r = kpd_config_write(d.ctx, kpd_get("write-config-to"), o.proxy_mode);
		if (r < 0)
			kpd_err("--write-config-to %s: %s", kpd_get("write-config-to"),
				kp_strerror(r));
		else
			kpd_info("wrote the configuration to %s", kpd_get("write-config-to"));
		rc = r < 0;
		goto out;
	}
	kp_ctx_set_log(d.ctx, kpd_lib_log, NULL, kpd_verbosity >= 4 ? KP_LOG_DEBUG : KP_LOG_INFO);
	kpd_flags_report(d.ctx, o.proxy_mode);
	if (!o.dry_run && kpd_node_lock(&lock_fd) < 0)
		goto out;
	if (check_node_netfilter(&o, &d.nodefw) < 0)
		goto out;
	d.info.nodefw = &d.nodefw;
	if (!o.dry_run && !o.cleanup)
		kpd_node_setup();
	o.node_cidr = !strcmp(kpd_get("detect-local-mode"), "NodeCIDR") && !o.dry_run &&
		      !o.cleanup && !kpd_get_bool("init-only");
	if (o.node_cidr && !has_api_source()) {
		kpd_err("--detect-local-mode NodeCIDR takes the Node's spec.podCIDRs from the API "
			"server (--kubeconfig, --master or in-cluster); --manifests alone has none");
		goto out;
	}
	if (kp_ctx_set_node_name(d.ctx, o.hostname) < 0 ||
	    (!o.node_cidr && select_backend(d.ctx, &o) < 0))
		goto out;
	if (kpd_get_bool("init-only")) {
		kpd_info("--init-only: node settings and the data plane's handles are set up; "
			 "exiting");
		rc = 0;
		goto out;
	}
	if (o.cleanup) {
		r = kp_ctx_cleanup(d.ctx);
		if (r < 0)
			kpd_err("cleanup failed: %s", kp_ctx_get_error(d.ctx));
		/* as kube-proxy --cleanup: every mode's rules */
		if (!o.dry_run && strcmp(o.proxy_mode, "dryrun") && cleanup_modes(o.proxy_mode,
										   true) < 0 && !r)
			r = -EIO;
		rc = r < 0;
		goto out;
	}
	if (!o.dry_run && strcmp(o.proxy_mode, "dryrun"))
		cleanup_modes(o.proxy_mode, false);
	d.nafd = kpd_nodeaddrs_follow(o.na);
	if (d.nafd < -1)
		kpd_warn("cannot follow local addresses for NodePorts (%s): they are read at start "
			 "only", kp_strerror(d.nafd));
	r = kpd_nodeaddrs_update(o.na, d.ctx, NULL);
	if (r < 0)
		kpd_warn("cannot list local addresses for NodePorts: %s", kp_strerror(r));
	kp_ctx_set_sync_periods(d.ctx, kpd_get_ms("min-sync-period"), kpd_get_ms("sync-period"));
	if (open_daemon(&d) == 0) {
		r = kpd_loop_run(d.loop);
		if (r < 0)
			kpd_err("poll: %s", kp_strerror(r));
		rc = r < 0 ? 1 : d.rc;
	}
	close_daemon(&d);
out:
	kpd_nodeaddrs_free(o.na);
	kp_ctx_free(d.ctx);
	kpd_flags_free();
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
