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

#include "kproxyd.h"

#define MAX_CIDRS 16

struct options {
	const char *config;
	struct kp_proxy_config file;	/* what --config set; flags override it */
	bool flag_sync, flag_min_sync;	/* the periods came from flags */
	const char *manifests;
	const char *kubeconfig;
	const char *context;
	const char *master;
	const char *hostname;
	const char *cluster_cidr;
	const char *proxy_mode;
	const char *control_socket;
	const char *healthz_address;
	const char *metrics_address;
	const char *scheduler;
	char backend_extra[64];
	char ipvs_extra[128];
	char us_extra[256];
	uint32_t ipvs_tcp_ms, ipvs_tcpfin_ms, ipvs_udp_ms;
	const char *bind_address;	/* --bind-address (userspace: where proxies listen) */
	const char *port_range;		/* --proxy-port-range */
	uint32_t udp_timeout_ms;	/* --udp-timeout */
	uint32_t us_workers, us_max_conns, us_grace_ms;
	bool us_grace_set;
	const char *dpdk_eal;		/* --dpdk-eal-args */
	const char *dpdk_ports[8];	/* --dpdk-port, in order */
	size_t n_dpdk_ports;
	const char *dpdk_routes[16];	/* --dpdk-route */
	size_t n_dpdk_routes;
	const char *dpdk_policy;
	uint32_t dpdk_max_flows, dpdk_idle_us;
	uint32_t dpdk_tcp_ms, dpdk_tcpfin_ms, dpdk_udp_ms;
	char dpdk_extra[4096];
	bool strict_arp;
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
"      --config FILE              a KubeProxyConfiguration (YAML or JSON); flags override\n"
"                                 it; SIGHUP re-reads its sync periods\n"
"Sources (with neither --manifests nor --kubeconfig/--master: in-cluster config):\n"
"      --manifests DIR            read *.json, *.yaml, *.yml in DIR and follow changes\n"
"      --kubeconfig FILE          list and watch the API server this kubeconfig names\n"
"      --context NAME             the kubeconfig context to use (default: current-context)\n"
"      --master URL               the API server's address (overrides the kubeconfig's)\n"
"Node:\n"
"      --hostname-override NAME   this node's name (default: the host name)\n"
"      --nodeport-addresses CIDRS comma-separated ranges whose local addresses serve\n"
"                                 NodePorts (default: every non-loopback address)\n"
"      --cluster-cidr CIDRS       pod ranges, for masquerade decisions\n"
"Data plane:\n"
"      --proxy-mode MODE          iptables (default), ipvs, userspace, dpdk (when built\n"
"                                 with DPDK) or dryrun\n"
"      --dry-run                  compute and serve the state, program nothing\n"
"      --masquerade-all           masquerade all traffic sent to service VIPs\n"
"      --ipvs-scheduler NAME      IPVS scheduler (rr default; lc, dh, sh, sed, nq, wrr,\n"
"                                 wlc, lblc, lblcr, mh, ...: what the kernel has)\n"
"      --ipvs-strict-arp          arp_ignore=1, arp_announce=2 (no ARP replies for VIPs)\n"
"      --ipvs-tcp-timeout DUR     IPVS idle timeout of TCP connections (0: leave as is)\n"
"      --ipvs-tcpfin-timeout DUR  IPVS timeout of TCP connections after a FIN\n"
"      --ipvs-udp-timeout DUR     IPVS timeout of UDP flows\n"
"      --proxy-port-range RANGE   userspace: proxy ports from LO-HI, LO+N or one port\n"
"                                 (default: chosen by the kernel)\n"
"      --udp-timeout DUR          userspace: an idle UDP flow is closed after DUR (250ms)\n"
"      --bind-address IP          userspace: proxy ports listen on IP (default 0.0.0.0\n"
"                                 and ::); portals then DNAT to it instead of REDIRECT\n"
"      --userspace-workers N      userspace: proxy threads (default: one per CPU)\n"
"      --userspace-max-conns N    userspace: open connections and flows per proxy port\n"
"                                 (default 32768); beyond it new ones wait in the backlog\n"
"      --userspace-grace-period DUR\n"
"                                 userspace: a removed service's connections are closed\n"
"                                 after DUR (default 30s; 0: at once)\n"
"      --dpdk-eal-args ARGS       dpdk: EAL arguments (e.g. \"-l 0,1 --no-huge -m 512\n"
"                                 --no-pci --no-shconf\"); the ports' devices are added\n"
"      --dpdk-port SPEC           dpdk: a port, repeatable: \"dev=DEVICE;ip=A.B.C.D/N;\n"
"                                 role=client|pod|both\" (DEVICE a PCI address or a\n"
"                                 vdev: net_tap0,iface=kp0 or net_af_packet0,iface=eth1)\n"
"      --dpdk-route \"CIDR via GW\" dpdk: a route beyond the ports' subnets, repeatable\n"
"      --dpdk-lb-policy POLICY    dpdk: maglev (default: consistent hashing of the\n"
"                                 5-tuple) or rr (round robin)\n"
"      --dpdk-max-flows N         dpdk: flows per worker lcore (default 65536)\n"

"      --dpdk-idle-sleep-us N     dpdk: a worker idle for 256 polls sleeps N us per\n"
"                                 round until packets come (default 0: busy polling)\n"
"      --dpdk-tcp-timeout DUR     dpdk: idle time-out of established TCP flows (1h)\n"
"      --dpdk-tcpfin-timeout DUR  dpdk: time-out of TCP flows after FINs or an RST (10s)\n"
"      --dpdk-udp-timeout DUR     dpdk: idle time-out of UDP flows (30s)\n"
"      --min-sync-period DUR      least time between syncs (default 1s; also\n"
"                                 --iptables-min-sync-period, --ipvs-min-sync-period)\n"
"      --sync-period DUR          full resync period (default 30s; 0 disables; also\n"
"                                 --iptables-sync-period, --ipvs-sync-period)\n"
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
	OPT_DISPATCH, OPT_HEALTHZ, OPT_METRICS, OPT_KUBECONFIG, OPT_CONTEXT, OPT_MASTER,
	OPT_CONFIG, OPT_STRICT_ARP, OPT_IPVS_TCP, OPT_IPVS_TCPFIN, OPT_IPVS_UDP,
	OPT_BIND, OPT_PORT_RANGE, OPT_UDP_TIMEOUT, OPT_US_WORKERS, OPT_US_MAX, OPT_US_GRACE,
	OPT_DPDK_EAL, OPT_DPDK_PORT, OPT_DPDK_ROUTE, OPT_DPDK_POLICY, OPT_DPDK_FLOWS,
	OPT_DPDK_TCP, OPT_DPDK_TCPFIN, OPT_DPDK_UDP, OPT_DPDK_IDLE,
};

static const struct option long_opts[] = {
	{ "manifests", required_argument, NULL, OPT_MANIFESTS },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "kubeconfig", required_argument, NULL, OPT_KUBECONFIG },
	{ "context", required_argument, NULL, OPT_CONTEXT },
	{ "master", required_argument, NULL, OPT_MASTER },
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
	{ "ipvs-sync-period", required_argument, NULL, OPT_SYNC },
	{ "ipvs-min-sync-period", required_argument, NULL, OPT_MIN_SYNC },
	{ "ipvs-strict-arp", no_argument, NULL, OPT_STRICT_ARP },
	{ "ipvs-tcp-timeout", required_argument, NULL, OPT_IPVS_TCP },
	{ "ipvs-tcpfin-timeout", required_argument, NULL, OPT_IPVS_TCPFIN },
	{ "ipvs-udp-timeout", required_argument, NULL, OPT_IPVS_UDP },
	{ "iptables-sync-period", required_argument, NULL, OPT_SYNC },
	{ "bind-address", required_argument, NULL, OPT_BIND },
	{ "proxy-port-range", required_argument, NULL, OPT_PORT_RANGE },
	{ "udp-timeout", required_argument, NULL, OPT_UDP_TIMEOUT },
	{ "userspace-workers", required_argument, NULL, OPT_US_WORKERS },
	{ "userspace-max-conns", required_argument, NULL, OPT_US_MAX },
	{ "userspace-grace-period", required_argument, NULL, OPT_US_GRACE },
	{ "dpdk-eal-args", required_argument, NULL, OPT_DPDK_EAL },
	{ "dpdk-port", required_argument, NULL, OPT_DPDK_PORT },
	{ "dpdk-route", required_argument, NULL, OPT_DPDK_ROUTE },
	{ "dpdk-lb-policy", required_argument, NULL, OPT_DPDK_POLICY },
	{ "dpdk-max-flows", required_argument, NULL, OPT_DPDK_FLOWS },
	{ "dpdk-idle-sleep-us", required_argument, NULL, OPT_DPDK_IDLE },
	{ "dpdk-tcp-timeout", required_argument, NULL, OPT_DPDK_TCP },
	{ "dpdk-tcpfin-timeout", required_argument, NULL, OPT_DPDK_TCPFIN },
	{ "dpdk-udp-timeout", required_argument, NULL, OPT_DPDK_UDP },
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

static int parse_cidr_list(const char *arg, struct kp_addr *nets, uint8_t *prefixes,
			   size_t *n)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct kp_addr a;
		unsigned prefix;
		char *slash = strchr(tok, '/');

		if (*n == MAX_CIDRS || !slash) {
			r = -EINVAL;
			break;
		}
		*slash = '\0';
		if (kp_addr_from_str(tok, &a) < 0 || sscanf(slash + 1, "%u", &prefix) != 1 ||
		    prefix > (a.family == AF_INET ? 32u : 128u)) {
			r = -EINVAL;
			break;
		}
		nets[*n] = a;
		prefixes[(*n)++] = (uint8_t)prefix;
	}
	free(copy);
	return r;
}

static int parse_cidrs(const char *arg, struct options *o)
{
	return parse_cidr_list(arg, o->np_nets, o->np_prefixes, &o->n_np_nets);
}

static void config_warn(const char *path, const char *field, void *userdata)
{
	(void)userdata;
	kpd_warn("%s: %s: not supported by kproxyd; ignored", path, field);
}

/* Applies --config FILE (found among the arguments before the flags are parsed, so that
 * flags override it). Returns 0 or -errno, with the reason logged. */
static int read_config(int argc, char **argv, struct options *o)
{
	struct kp_proxy_config *c = &o->file;
	char err[512] = "";
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			o->config = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			o->config = argv[i] + 9;
		else if (!strcmp(argv[i], "--"))
			break;
	}
	if (!o->config)
		return 0;
	r = kp_proxy_config_load(o->config, c, config_warn, NULL, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "kproxyd: --config: %s\n", err[0] ? err : kp_strerror(r));
		return r;
	}
	if (c->kubeconfig && *c->kubeconfig)
		o->kubeconfig = c->kubeconfig;
	if (c->hostname_override && *c->hostname_override)
		o->hostname = c->hostname_override;
	if (c->cluster_cidr && *c->cluster_cidr)
		o->cluster_cidr = c->cluster_cidr;
	if (c->mode && *c->mode)
		o->proxy_mode = c->mode;
	if (c->healthz_bind_address)
		o->healthz_address = c->healthz_bind_address;
	if (c->metrics_bind_address)
		o->metrics_address = c->metrics_bind_address;
	if (c->ipvs_scheduler && *c->ipvs_scheduler)
		o->scheduler = c->ipvs_scheduler;
	if (c->has_masquerade_all)
		o->masquerade_all = c->masquerade_all;
	if (c->has_strict_arp)
		o->strict_arp = c->strict_arp;
	if (c->ipvs_tcp_timeout_ms)
		o->ipvs_tcp_ms = c->ipvs_tcp_timeout_ms;
	if (c->ipvs_tcpfin_timeout_ms)
		o->ipvs_tcpfin_ms = c->ipvs_tcpfin_timeout_ms;
	if (c->ipvs_udp_timeout_ms)
		o->ipvs_udp_ms = c->ipvs_udp_timeout_ms;
	if (c->bind_address && *c->bind_address)
		o->bind_address = c->bind_address;
	if (c->port_range && *c->port_range)
		o->port_range = c->port_range;
	if (c->udp_idle_timeout_ms)
		o->udp_timeout_ms = c->udp_idle_timeout_ms;
	if (c->has_sync_period)
		o->sync_ms = c->sync_period_ms;
	if (c->has_min_sync_period)
		o->min_sync_ms = c->min_sync_period_ms;
	if (c->nodeport_addresses && *c->nodeport_addresses &&
	    parse_cidrs(c->nodeport_addresses, o) < 0) {
		fprintf(stderr, "kproxyd: --config: %s: nodePortAddresses: \"%s\" is not a list "
				"of CIDRs\n", o->config, c->nodeport_addresses);
		return -EINVAL;
	}
	return 0;
}

/* SIGHUP: the config file's sync periods (unless flags set them) take effect now; other
 * settings need a restart. */
static void reread_config(struct kp_ctx *ctx, struct options *o)
{
	struct kp_proxy_config c;
	char err[512] = "";

	if (!o->config)
		return;
	if (kp_proxy_config_load(o->config, &c, config_warn, NULL, err, sizeof(err)) < 0) {
		kpd_err("SIGHUP: --config: %s; keeping the running settings", err);
		return;
	}
	if (c.has_sync_period && !o->flag_sync)
		o->sync_ms = c.sync_period_ms;
	if (c.has_min_sync_period && !o->flag_min_sync)
		o->min_sync_ms = c.min_sync_period_ms;
	kp_ctx_set_sync_periods(ctx, o->min_sync_ms, o->sync_ms);
	kpd_info("SIGHUP: --config %s re-read: sync period %ums, min sync period %ums (other "
		 "settings take effect at restart)", o->config, o->sync_ms, o->min_sync_ms);
	kp_proxy_config_clear(&c);
}

/* An unsigned number flag within @lo..@hi; the reason is printed when it is not. */
static int flag_uint(const char *flag, const char *arg, unsigned long lo, unsigned long hi,
		     uint32_t *ret)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);

	if (*end || !*arg || v < lo || v > hi) {
		fprintf(stderr, "kproxyd: --%s: \"%s\" is not a number %lu..%lu\n", flag, arg, lo,
			hi);
		return -EINVAL;
	}
	*ret = (uint32_t)v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	int c;

	while ((c = getopt_long(argc, argv, "hv:", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_MANIFESTS: o->manifests = optarg; break;
		case OPT_CONFIG: break;		/* read before the flags, see read_config() */
		case OPT_KUBECONFIG: o->kubeconfig = optarg; break;
		case OPT_CONTEXT: o->context = optarg; break;
		case OPT_MASTER: o->master = optarg; break;
		case OPT_HOSTNAME: o->hostname = optarg; break;
		case OPT_CLUSTER_CIDR: o->cluster_cidr = optarg; break;
		case OPT_MODE: o->proxy_mode = optarg; break;
		case OPT_DRY_RUN: o->dry_run = true; break;
		case OPT_MASQ_ALL: o->masquerade_all = true; break;
		case OPT_SCHED: o->scheduler = optarg; break;
		case OPT_CLEANUP: o->cleanup = true; break;
		case OPT_STRICT_ARP: o->strict_arp = true; break;
		case OPT_IPVS_TCP:
		case OPT_IPVS_TCPFIN:
		case OPT_IPVS_UDP: {
			uint32_t *dst = c == OPT_IPVS_TCP ? &o->ipvs_tcp_ms :
					c == OPT_IPVS_TCPFIN ? &o->ipvs_tcpfin_ms : &o->ipvs_udp_ms;

			if (kp_parse_duration(optarg, dst) < 0) {
				fprintf(stderr, "kproxyd: --%s: \"%s\" is not a duration\n",
					c == OPT_IPVS_TCP ? "ipvs-tcp-timeout" : c == OPT_IPVS_TCPFIN ?
					"ipvs-tcpfin-timeout" : "ipvs-udp-timeout", optarg);
				return -EINVAL;
			}
			break;
		}
		case OPT_BIND: o->bind_address = optarg; break;
		case OPT_PORT_RANGE: o->port_range = optarg; break;
		case OPT_UDP_TIMEOUT:
		case OPT_US_GRACE:
			if (kp_parse_duration(optarg, c == OPT_UDP_TIMEOUT ? &o->udp_timeout_ms :
					      &o->us_grace_ms) < 0) {
				fprintf(stderr, "kproxyd: --%s: \"%s\" is not a duration\n",
					c == OPT_UDP_TIMEOUT ? "udp-timeout" : "userspace-grace-period",
					optarg);
				return -EINVAL;
			}
			o->us_grace_set |= c == OPT_US_GRACE;
			break;
		case OPT_US_WORKERS:
			if (flag_uint("userspace-workers", optarg, 1, 64, &o->us_workers) < 0)
				return -EINVAL;
			break;
		case OPT_US_MAX:
			if (flag_uint("userspace-max-conns", optarg, 1, 10000000, &o->us_max_conns) < 0)
				return -EINVAL;
			break;
		case OPT_DPDK_EAL: o->dpdk_eal = optarg; break;
		case OPT_DPDK_PORT:
		case OPT_DPDK_ROUTE: {
			bool port = c == OPT_DPDK_PORT;
			size_t *n = port ? &o->n_dpdk_ports : &o->n_dpdk_routes;
			size_t max = port ? 8 : 16;

			if (*n == max || strchr(optarg, '\n')) {
				fprintf(stderr, "kproxyd: --%s: at most %zu, one line each\n",
					port ? "dpdk-port" : "dpdk-route", max);
				return -EINVAL;
			}
			(port ? o->dpdk_ports : o->dpdk_routes)[(*n)++] = optarg;
			break;
		}
		case OPT_DPDK_POLICY:
			if (strcmp(optarg, "maglev") && strcmp(optarg, "rr")) {
				fprintf(stderr, "kproxyd: --dpdk-lb-policy: \"%s\" is not maglev or "
						"rr\n", optarg);
				return -EINVAL;
			}
			o->dpdk_policy = optarg;
			break;
		case OPT_DPDK_FLOWS:
			if (flag_uint("dpdk-max-flows", optarg, 1, 1ul << 26, &o->dpdk_max_flows) < 0)
				return -EINVAL;
			break;
		case OPT_DPDK_IDLE:
			if (flag_uint("dpdk-idle-sleep-us", optarg, 0, 100000, &o->dpdk_idle_us) < 0)
				return -EINVAL;
			break;
		case OPT_DPDK_TCP:
		case OPT_DPDK_TCPFIN:
		case OPT_DPDK_UDP: {
			uint32_t *dst = c == OPT_DPDK_TCP ? &o->dpdk_tcp_ms :
					c == OPT_DPDK_TCPFIN ? &o->dpdk_tcpfin_ms : &o->dpdk_udp_ms;

			if (kp_parse_duration(optarg, dst) < 0 || *dst < 1000) {
				fprintf(stderr, "kproxyd: --%s: \"%s\" is not a duration of 1s or "
						"more\n", c == OPT_DPDK_TCP ? "dpdk-tcp-timeout" :
					c == OPT_DPDK_TCPFIN ? "dpdk-tcpfin-timeout" : "dpdk-udp-timeout",
					optarg);
				return -EINVAL;
			}
			break;
		}
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
			*(c == OPT_SYNC ? &o->flag_sync : &o->flag_min_sync) = true;
			if (kp_parse_duration(optarg, c == OPT_SYNC ? &o->sync_ms : &o->min_sync_ms) < 0) {
				fprintf(stderr, "kproxyd: --%s: \"%s\" is not a duration such as 1s\n",
					c == OPT_SYNC ? "sync-period" : "min-sync-period", optarg);
				return -EINVAL;
			}
			break;
		case OPT_DISPATCH: {
			uint32_t v;

			if (flag_uint("iptables-dispatch-threshold", optarg, 0, 1000000, &v) < 0)
				return -EINVAL;
			snprintf(o->backend_extra, sizeof(o->backend_extra), "dispatch-threshold=%u",
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

/* dpdk: the addresses of the ports that face clients serve NodePorts (the kernel's
 * interfaces are not where the traffic is). */
static int dpdk_nodeport_addrs(struct kp_ctx *ctx, const struct options *o)
{
	struct kp_addr addrs[8];
	size_t n = 0;

	for (size_t i = 0; i < o->n_dpdk_ports; i++) {
		const char *ip = strstr(o->dpdk_ports[i], "ip="), *role = strstr(o->dpdk_ports[i],
										  "role=pod");
		char buf[64];
		struct kp_addr a;
		bool in = !o->n_np_nets;

		if (!ip || role)
			continue;
		snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(ip + 3, "/;"), ip + 3);
		if (kp_addr_from_str(buf, &a) < 0)
			continue;
		for (size_t k = 0; k < o->n_np_nets && !in; k++)
			in = kp_addr_in_prefix(&a, &o->np_nets[k], o->np_prefixes[k]);
		if (in)
			addrs[n++] = a;
	}
	return kp_ctx_set_nodeport_addrs(ctx, addrs, n);
}

/* The local addresses NodePorts are served on. */
static int nodeport_addrs(struct kp_ctx *ctx, const struct options *o)
{
	struct kp_addr addrs[256];
	struct ifaddrs *ifa, *i;
	size_t n = 0;

	if (!strcmp(o->proxy_mode, "dpdk"))
		return dpdk_nodeport_addrs(ctx, o);
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

extern char **environ;

/*
 * IPVS mode needs kernel modules that nothing loads on demand (ip_tables for the
 * iptables socket options; the rest load on first use but are listed as kube-proxy's
 * IPVS mode loads them). Runs "modprobe -q -a ..." once and waits; a failure only shows
 * as the data plane's own error afterwards.
 */
static void load_ipvs_modules(const char *sched)
{
	char sched_mod[32];
	char *argv[] = { "modprobe", "-q", "-a", "ip_vs", sched_mod, "nf_conntrack",
			 "ip_tables", "iptable_nat", "iptable_filter", "ip6_tables",
			 "ip6table_nat", "ip6table_filter", "ip_set", "xt_set", "dummy", NULL };
	pid_t pid;
	int status;

	snprintf(sched_mod, sizeof(sched_mod), "ip_vs_%s", sched && *sched ? sched : "rr");
	if (posix_spawnp(&pid, "modprobe", NULL, NULL, argv, environ) != 0)
		return;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
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

/* Appends to the option string @buf (@size bytes, @len used); false once it no longer
 * fits (the string is then cut, and refused by the caller). */
static bool appendf(char *buf, size_t size, size_t *len, const char *fmt, ...) KPD_PRINTF(4, 5);
static bool appendf(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= size)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *len) {
		*len = size;
		return false;
	}
	*len += (size_t)n;
	return true;
}

/* The userspace backend's options; false (with the reason logged) for a bad one. */
static bool userspace_extra(struct options *o)
{
	size_t size = sizeof(o->us_extra), len = 0;
	uint16_t lo, hi;
	struct kp_addr a;
	bool fits;

	if (o->port_range && kp_parse_port_range(o->port_range, &lo, &hi) < 0) {
		kpd_err("--proxy-port-range: \"%s\" is not LO-HI, LO+N or a port (1-65535)",
			o->port_range);
		return false;
	}
	if (o->bind_address && kp_addr_from_str(o->bind_address, &a) < 0) {
		kpd_err("--bind-address: \"%s\" is not an IP address", o->bind_address);
		return false;
	}
	fits = appendf(o->us_extra, size, &len, "udp-timeout=%u,grace=%u", o->udp_timeout_ms,
		       o->us_grace_set ? o->us_grace_ms : 30000);
	if (o->port_range && *o->port_range)
		fits &= appendf(o->us_extra, size, &len, ",port-range=%s", o->port_range);
	if (o->bind_address)
		fits &= appendf(o->us_extra, size, &len, ",bind=%s", o->bind_address);
	if (o->us_workers)
		fits &= appendf(o->us_extra, size, &len, ",workers=%u", o->us_workers);
	if (o->us_max_conns)
		fits &= appendf(o->us_extra, size, &len, ",max-conns=%u", o->us_max_conns);
	if (!fits)
		kpd_err("--proxy-port-range, --bind-address: the userspace options are longer "
			"than %zu bytes", size);
	return fits;
}

/* The dpdk backend's options, one per line; false (with the reason logged) when they do
 * not fit. */
static bool dpdk_extra(struct options *o)
{
	size_t size = sizeof(o->dpdk_extra), len = 0;
	bool fits = appendf(o->dpdk_extra, size, &len, "eal=%s\npolicy=%s\n",
			    o->dpdk_eal ? o->dpdk_eal : "",
			    o->dpdk_policy ? o->dpdk_policy : "maglev");

	for (size_t i = 0; i < o->n_dpdk_ports; i++)
		fits &= appendf(o->dpdk_extra, size, &len, "port=%s\n", o->dpdk_ports[i]);
	for (size_t i = 0; i < o->n_dpdk_routes; i++)
		fits &= appendf(o->dpdk_extra, size, &len, "route=%s\n", o->dpdk_routes[i]);
	if (o->dpdk_max_flows)
		fits &= appendf(o->dpdk_extra, size, &len, "max-flows=%u\n", o->dpdk_max_flows);
	if (o->dpdk_idle_us)
		fits &= appendf(o->dpdk_extra, size, &len, "idle-sleep-us=%u\n", o->dpdk_idle_us);
	if (o->dpdk_tcp_ms)
		fits &= appendf(o->dpdk_extra, size, &len, "tcp-timeout=%u\n",
				o->dpdk_tcp_ms / 1000);
	if (o->dpdk_tcpfin_ms)
		fits &= appendf(o->dpdk_extra, size, &len, "tcp-closing-timeout=%u\n",
				o->dpdk_tcpfin_ms / 1000);
	if (o->dpdk_udp_ms)
		fits &= appendf(o->dpdk_extra, size, &len, "udp-timeout=%u\n",
				o->dpdk_udp_ms / 1000);
	if (!fits)
		kpd_err("--dpdk-*: the options are longer than %zu bytes", size);
	return fits;
}

static int select_backend(struct kp_ctx *ctx, struct options *o)
{
	struct kp_config cfg = {
		.cluster_cidr = o->cluster_cidr,
		.masquerade_all = o->masquerade_all,
		.scheduler = o->scheduler,
		.extra = o->backend_extra[0] ? o->backend_extra : NULL,
	};

	if (!strcmp(o->proxy_mode, "ipvs")) {
		/* timeouts go to the kernel in whole seconds, as ipvsadm --set takes them */
		snprintf(o->ipvs_extra, sizeof(o->ipvs_extra), "strict-arp=%d,tcp-timeout=%u,"
			 "tcpfin-timeout=%u,udp-timeout=%u", o->strict_arp, o->ipvs_tcp_ms / 1000,
			 o->ipvs_tcpfin_ms / 1000, o->ipvs_udp_ms / 1000);
		cfg.extra = o->ipvs_extra;
		if (!o->dry_run)
			load_ipvs_modules(o->scheduler);
	}
	if (!strcmp(o->proxy_mode, "dpdk")) {
		if (!dpdk_extra(o))
			return -EINVAL;
		cfg.extra = o->dpdk_extra;
	}
	if (!strcmp(o->proxy_mode, "userspace")) {
		if (!userspace_extra(o))
			return -EINVAL;
		cfg.extra = o->us_extra;
		if (!o->dry_run && !o->cleanup)
			raise_nofile();
	}
	static const char *const modes[] = { "iptables", "ipvs", "userspace", "dpdk", "dryrun" };
	struct kp_addr nets[MAX_CIDRS];
	uint8_t prefixes[MAX_CIDRS];
	size_t n_nets = 0;
	bool known = false;
	int r;

	if (o->cluster_cidr && *o->cluster_cidr &&
	    parse_cidr_list(o->cluster_cidr, nets, prefixes, &n_nets) < 0) {
		kpd_err("--cluster-cidr: \"%s\" is not a comma-separated list of at most %d "
			"CIDRs", o->cluster_cidr, MAX_CIDRS);
		return -EINVAL;
	}

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
		kpd_err("--proxy-mode %s: cannot initialise the data plane: %s%s", o->proxy_mode,
			kp_strerror(r), r == -EPROTONOSUPPORT && !strcmp(o->proxy_mode, "ipvs") ?
			" (this kernel has no IPVS: the ip_vs module is missing)" : "");
	return r;
}

/* The API-server source: --kubeconfig, --master, or the pod's in-cluster config. */
static int open_api(struct kp_ctx *ctx, const struct options *o, struct kp_api **ret)
{
	struct kp_api_auth auth = { 0 };
	char err[512] = "";
	int r = 0;

	if (o->kubeconfig) {
		r = kp_api_auth_from_kubeconfig(o->kubeconfig, o->context, &auth, err, sizeof(err));
		if (r < 0)
			kpd_err("--kubeconfig: %s", err[0] ? err : kp_strerror(r));
	} else if (!o->master) {
		r = kp_api_auth_in_cluster(NULL, &auth, err, sizeof(err));
		if (r < 0)
			kpd_err("no source: give --manifests DIR, --kubeconfig FILE or --master URL, "
				"or run in a pod (in-cluster config: %s)", err[0] ? err : kp_strerror(r));
	}
	if (!r && o->master) {
		free(auth.server);
		auth.server = strdup(o->master);
		r = auth.server ? 0 : -ENOMEM;
	}
	if (!r) {
		r = kp_api_new(ctx, &auth, o->hostname, 0, ret);
		if (r < 0)
			kpd_err("API server %s: %s", auth.server, kp_strerror(r));
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

/* Returns false when kproxyd should stop. */
static bool handle_signal(int sfd, struct kp_manifests *m, struct kp_ctx *ctx,
			  struct options *o)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			if (m) {
				kpd_info("SIGHUP: re-reading the manifest directory");
				kp_manifests_rescan(m);
			}
			reread_config(ctx, o);
		} else {
			kpd_info("signal %u: stopping; programmed rules are left in place",
				 si.ssi_signo);
			return false;
		}
	}
	return true;
}

/* Runs a sync if one is due; returns whether one ran. */
static bool run_sync(struct kp_ctx *ctx, int64_t *wait)
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
	kp_ctx_drain_programming_latencies(ctx, kpd_http_observe_programming, NULL);
	if (r < 0)
		kpd_err("sync with backend %s failed: %s; keeping what is programmed, retrying",
			kp_ctx_get_backend_name(ctx), kp_strerror(r));
	else if (r > 0)
		kpd_dbg(2, "synced %zu service ports (%zu services, %zu endpoint slices)",
			after.n_svc_ports, after.n_services, after.n_slices);
	return after.n_syncs != before.n_syncs;
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
	struct kp_manifests *m = NULL;
	struct kp_api *api = NULL;
	struct kpd_control *ctl = NULL;
	struct kpd_http *hz = NULL, *mx = NULL;
	struct kpd_hc *hc = NULL;
	struct kp_ctx *ctx;
	char host[256];
	int sfd, r, rc = 1;
	bool running = true;

	if (read_config(argc, argv, &o) < 0 || parse_options(argc, argv, &o) < 0) {
		kp_proxy_config_clear(&o.file);
		return 2;
	}
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
	if (o.manifests) {
		r = kp_manifests_new(ctx, o.manifests, kpd_manifests_event, ctx, &m);
		if (r < 0) {
			kpd_err("--manifests %s: %s", o.manifests, kp_strerror(r));
			goto out_ctl;
		}
	}
	if ((o.kubeconfig || o.master || !o.manifests) && open_api(ctx, &o, &api) < 0)
		goto out_src;
	kpd_http_set_api(api);
	{
		struct kp_counts c;

		kp_ctx_get_counts(ctx, &c);
		kpd_info("kproxyd %s: node %s, proxy mode %s%s; %zu services, %zu endpoint slices, "
			 "%zu endpoints objects from %s", kp_version(), o.hostname, o.proxy_mode,
			 o.dry_run ? " (dry run)" : "", c.n_services, c.n_slices, c.n_endpoints,
			 o.manifests ? o.manifests : "the API server (listing)");
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
			.api = api,
			.start_ms = wall_ms(),
			.healthz_address = kpd_http_address(hz),
			.metrics_address = kpd_http_address(mx),
		};
		struct kpd_health health = {
			.start_ms = info.start_ms,
			.timeout_ms = o.sync_ms ? o.sync_ms : 30000,
		};

		static struct pollfd pfd[6 + 4096];
		bool api_synced = false;

		if (kpd_hc_new(&hc) < 0)
			kpd_err("out of memory: serving no health check node ports");
		while (running) {
			int64_t wait = 60000;
			size_t n_pfd = 6;

			/* nothing is programmed from a partial view of the API server */
			if (api && !api_synced && (api_synced = kp_api_synced(api)))
				kpd_info("API server lists are in: programming");
			if ((!api || api_synced) && run_sync(ctx, &wait))
				kpd_hc_update(hc, ctx);
			if (api) {
				int64_t t = kp_api_timeout_ms(api);

				if (t >= 0 && t < wait)
					wait = t;
			}
			pfd[0] = (struct pollfd){ .fd = kp_manifests_fd(m), .events = POLLIN };
			pfd[1] = (struct pollfd){ .fd = kpd_control_fd(ctl), .events = POLLIN };
			pfd[2] = (struct pollfd){ .fd = sfd, .events = POLLIN };
			pfd[3] = (struct pollfd){ .fd = hz ? kpd_http_fd(hz) : -1, .events = POLLIN };
			pfd[4] = (struct pollfd){ .fd = mx ? kpd_http_fd(mx) : -1, .events = POLLIN };
			pfd[5] = (struct pollfd){ .fd = kp_api_fd(api), .events = POLLIN };
			n_pfd += kpd_hc_pollfds(hc, pfd + 6, 4096);
			if (poll(pfd, n_pfd, wait > 60000 ? 60000 : (int)wait) < 0 && errno != EINTR) {
				kpd_err("poll: %s", kp_strerror(-errno));
				break;
			}
			for (size_t i = 6; i < n_pfd; i++)
				if (pfd[i].revents)
					kpd_hc_serve(hc, pfd[i].fd);
			if (api) {
				kp_api_process(api);
				kpd_report_diags(ctx);
			}
			if (pfd[0].revents)
				kp_manifests_process(m);
			if (pfd[1].revents)
				kpd_control_serve(ctl, ctx, &info);
			if (pfd[2].revents)
				running = handle_signal(sfd, m, ctx, &o);
			if (pfd[3].revents)
				kpd_http_serve(hz, ctx, &health);
			if (pfd[4].revents)
				kpd_http_serve(mx, ctx, NULL);
		}
	}
	kpd_http_close(hz);
	kpd_http_close(mx);
	kpd_hc_free(hc);
	rc = 0;
out_src:
	kpd_http_set_api(NULL);
	kp_api_free(api);
	kp_manifests_free(m);
out_ctl:
	kpd_control_close(ctl);
out_sig:
	if (sfd >= 0)
		close(sfd);
out_ctx:
	kp_ctx_free(ctx);
	kp_proxy_config_clear(&o.file);
	return rc;
}
