// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyd's settings: one table maps each command-line flag and KubeProxyConfiguration
 * field either to a setting of kproxyd's own or to a data plane's option (declared by the
 * backend, struct kp_option). Flags are read with kube-proxy's syntax (--flag=value,
 * --flag value, --bool, --bool=false, -v=2); the config file is read into the same slots
 * first, so flags override it. Every value is kept as text, checked against its option
 * declaration (the backend's, or the row's own), and handed to the data plane as
 * settings; --help is printed from the same table and the backends' declarations.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kpd.h"

#include "kpyaml.h"

#define SEC(title)		{ .section = title }
#define T(t)			.own = { .type = (t) }
#define TD(t, d)		.own = { .type = (t), .def = (d) }
#define NA_API	"kproxyd's API client asks for JSON, lists once and then watches, without a " \
		"client-side rate limit"
#define NA_LOG	"kproxyd writes klog-style text lines to standard error, each at once"

static const char *const local_modes[] = { "", "ClusterCIDR", "NodeCIDR", "BridgeInterface",
					   "InterfaceNamePrefix", NULL };
static const char *const log_formats[] = { "text", "json", NULL };
static const char *const table_forms[] = { "man", "markdown", NULL };

/*
 * The sections of --help, and the rows. kube marks kube-proxy's own flags: with --config
 * they are ignored (the file says it all), except those marked flag_wins, as in
 * kube-proxy. A row with na is accepted and read, and named once in the start-up log
 * with that reason when it is set to anything but kube-proxy's default.
 */
static const struct kpd_flag rows[] = {
	SEC("Configuration"),
	{ .name = "config", .arg = "FILE", .kube = true, .flag_wins = true,
	  .own = { .type = KP_OPT_STRING, .help = "a KubeProxyConfiguration (YAML or JSON); "
		   "as in kube-proxy, the other kube-proxy flags are then ignored, except "
		   "--hostname-override and the logging flags, and kproxyd exits when the file "
		   "changes" } },
	{ .name = "write-config-to", .arg = "FILE", .kube = true, .flag_wins = true,
	  .own = { .type = KP_OPT_STRING, .help = "write the configuration in force as a "
		   "KubeProxyConfiguration to FILE and exit" } },
	{ .name = "init-only", .kube = true, .flag_wins = true, .own = { .type = KP_OPT_BOOL,
	  .def = "false", .help = "set what needs root (conntrack sysctls, the OOM score, "
				  "kernel modules, the data plane's handles), then exit" } },
	{ .name = "feature-gates", .arg = "K=V,...", .config = "featureGates", .kube = true,
	  .cfg_any = true, TD(KP_OPT_STRING, ""),
	  .na = "kproxyd has no feature gates: what kube-proxy gates is built in or not built" },
	SEC("Sources (with neither --manifests nor --kubeconfig/--master: in-cluster config)"),
	{ .name = "manifests", .arg = "DIR", .own = { .type = KP_OPT_STRING,
	  .help = "read *.json, *.yaml, *.yml in DIR and follow changes" } },
	{ .name = "kubeconfig", .arg = "FILE", .config = "clientConnection.kubeconfig",
	  .kube = true, .own = { .type = KP_OPT_STRING,
		   .help = "list and watch the API server this kubeconfig names" } },
	{ .name = "context", .arg = "NAME", .own = { .type = KP_OPT_STRING,
	  .help = "the kubeconfig context to use (default: current-context)" } },
	{ .name = "master", .arg = "URL", .kube = true, .flag_wins = true,
	  .own = { .type = KP_OPT_STRING,
		   .help = "the API server's address (overrides the kubeconfig's)" } },
	{ .name = "api-watch-stall-timeout", .arg = "DUR", .own = { .type = KP_OPT_DURATION,
	  .min = 1000, .max = 86400000, .def = "90s", .help = "a watch of the API server that receives nothing, not even a "
				"bookmark (sent about once a minute), for this long is taken for a "
				"dead connection and watched again from its last version" } },
	{ .name = "kube-api-content-type", .arg = "TYPE", .config = "clientConnection.contentType", .zero_default = true,
	  .kube = true, TD(KP_OPT_STRING, "application/vnd.kubernetes.protobuf"), .na = NA_API },
	{ .name = NULL, .config = "clientConnection.acceptContentTypes", TD(KP_OPT_STRING, ""),
	  .na = NA_API },
	{ .name = "kube-api-qps", .arg = "N", .config = "clientConnection.qps", .zero_default = true, .kube = true,
	  .cfg_number = true, TD(KP_OPT_STRING, "5"), .na = NA_API },
	{ .name = "kube-api-burst", .arg = "N", .config = "clientConnection.burst", .zero_default = true, .kube = true,
	  TD(KP_OPT_UINT, "10"), .na = NA_API },
	{ .name = "config-sync-period", .arg = "DUR", .config = "configSyncPeriod", .zero_default = true, .kube = true,
	  TD(KP_OPT_DURATION, "15m"), .na = "kproxyd's watches have no resync period: a watch "
	  "re-lists only when its resource version is too old" },
	SEC("Node"),
	{ .name = "hostname-override", .arg = "NAME", .config = "hostnameOverride", .kube = true,
	  .flag_wins = true, .own = { .type = KP_OPT_STRING, .help = "this node's name, in "
		   "lower case (default: the host name)" } },
	{ .name = "nodeport-addresses", .arg = "CIDRS", .config = "nodePortAddresses", .cfg_list = true,
	  .kube = true, .keyword = "primary", .own = { .type = KP_OPT_CIDR_LIST, .max = 16,
		   .help = "comma-separated ranges whose local addresses serve NodePorts, or "
			   "\"primary\" (the node's primary addresses); a family without a range "
			   "serves them on every local address (the default), followed as "
			   "addresses come and go" } },
	{ .name = "cluster-cidr", .arg = "CIDRS", .config = "clusterCIDR", .option = "cluster-cidr",
	  .kube = true, T(KP_OPT_CIDR_LIST) },
	{ .name = "detect-local-mode", .arg = "MODE", .config = "detectLocalMode", .kube = true,
	  .own = { .type = KP_OPT_STRING, .choices = local_modes, .def = "",
		   .help = "how pod traffic is told from the rest: ClusterCIDR (--cluster-cidr; "
			   "the default), NodeCIDR (the Node's spec.podCIDRs), BridgeInterface "
			   "(--pod-bridge-interface), InterfaceNamePrefix "
			   "(--pod-interface-name-prefix)" } },
	{ .name = "pod-bridge-interface", .arg = "NAME", .config = "detectLocal.bridgeInterface",
	  .option = "pod-bridge-interface", .kube = true, T(KP_OPT_STRING) },
	{ .name = "pod-interface-name-prefix", .arg = "PREFIX",
	  .config = "detectLocal.interfaceNamePrefix", .option = "pod-interface-name-prefix",
	  .kube = true, T(KP_OPT_STRING) },
	{ .name = "oom-score-adj", .arg = "N", .config = "oomScoreAdj", .kube = true,
	  .own = { .type = KP_OPT_INT, .min = -1000, .max = 1000, .def = "-999",
		   .help = "kproxyd's /proc/self/oom_score_adj" } },
	{ .name = "conntrack-max-per-core", .arg = "N", .config = "conntrack.maxPerCore",
	  .kube = true, .own = { .type = KP_OPT_UINT, .max = INT32_MAX, .def = "32768",
		   .help = "nf_conntrack_max is this times the CPUs, at least --conntrack-min "
			   "(0: leave it as is)" } },
	{ .name = "conntrack-min", .arg = "N", .config = "conntrack.min", .kube = true,
	  .own = { .type = KP_OPT_UINT, .max = INT32_MAX, .def = "131072",
		   .help = "the least nf_conntrack_max kproxyd sets" } },
	{ .name = "conntrack-tcp-timeout-established", .arg = "DUR",
	  .config = "conntrack.tcpEstablishedTimeout", .kube = true,
	  .own = { .type = KP_OPT_DURATION, .def = "24h", .help = "nf_conntrack_tcp_timeout_"
		   "established (0: leave it as is)" } },
	{ .name = "conntrack-tcp-timeout-close-wait", .arg = "DUR",
	  .config = "conntrack.tcpCloseWaitTimeout", .kube = true,
	  .own = { .type = KP_OPT_DURATION, .def = "1h", .help = "nf_conntrack_tcp_timeout_"
		   "close_wait (0: leave it as is)" } },
	{ .name = "conntrack-tcp-be-liberal", .config = "conntrack.tcpBeLiberal", .kube = true,
	  .own = { .type = KP_OPT_BOOL, .def = "false",
		   .help = "set nf_conntrack_tcp_be_liberal to 1" } },
	{ .name = "conntrack-udp-timeout", .arg = "DUR", .config = "conntrack.udpTimeout",
	  .kube = true, .own = { .type = KP_OPT_DURATION, .def = "0",
		   .help = "nf_conntrack_udp_timeout (0: leave it as is)" } },
	{ .name = "conntrack-udp-timeout-stream", .arg = "DUR",
	  .config = "conntrack.udpStreamTimeout", .kube = true,
	  .own = { .type = KP_OPT_DURATION, .def = "0",
		   .help = "nf_conntrack_udp_timeout_stream (0: leave it as is)" } },
	SEC("Data plane"),
	{ .name = "proxy-mode", .arg = "MODE", .config = "mode", .kube = true,
	  .own = { .type = KP_OPT_STRING, .def = "iptables", .help = "iptables (default), ipvs, "
		   "nftables, userspace, dpdk (when built with DPDK) or dryrun" } },
	{ .name = "dry-run", .own = { .type = KP_OPT_BOOL, .def = "false",
	  .help = "compute and serve the state, program nothing" } },
	{ .name = "masquerade-all", .config = "iptables.masqueradeAll", .option = "masquerade-all",
	  .kube = true, T(KP_OPT_BOOL) },
	{ .name = NULL, .alias = "masquerade-all", .config = "nftables.masqueradeAll",
	  .config_mode = "nftables" },
	{ .name = "min-sync-period", .arg = "DUR", .own = { .type = KP_OPT_DURATION, .def = "1s",
	  .help = "least time between syncs (also --iptables-min-sync-period, "
		  "--ipvs-min-sync-period)" } },
	{ .name = "iptables-min-sync-period", .arg = "DUR", .alias = "min-sync-period",
	  .config = "iptables.minSyncPeriod", .zero_default = true, .config_mode = "iptables", .kube = true },
	{ .name = "ipvs-min-sync-period", .arg = "DUR", .alias = "min-sync-period",
	  .config = "ipvs.minSyncPeriod", .config_mode = "ipvs", .kube = true },
	{ .name = NULL, .alias = "min-sync-period", .config = "nftables.minSyncPeriod",
	  .config_mode = "nftables" },
	{ .name = "sync-period", .arg = "DUR", .own = { .type = KP_OPT_DURATION, .def = "30s",
	  .help = "full resync period (0 disables; also --iptables-sync-period, "
		  "--ipvs-sync-period)" } },
	{ .name = "iptables-sync-period", .arg = "DUR", .alias = "sync-period",
	  .config = "iptables.syncPeriod", .zero_default = true, .config_mode = "iptables", .kube = true },
	{ .name = "ipvs-sync-period", .arg = "DUR", .alias = "sync-period",
	  .config = "ipvs.syncPeriod", .zero_default = true, .config_mode = "ipvs", .kube = true },
	{ .name = NULL, .alias = "sync-period", .config = "nftables.syncPeriod", .zero_default = true,
	  .config_mode = "nftables" },
	/* the newer top-level spelling, after the modes' own: it wins */
	{ .name = NULL, .alias = "min-sync-period", .config = "minSyncPeriod", .zero_default = true },
	{ .name = NULL, .alias = "sync-period", .config = "syncPeriod", .zero_default = true },
	{ .name = "cleanup", .kube = true, .flag_wins = true, .own = { .type = KP_OPT_BOOL,
	  .def = "false", .help = "remove everything the data plane installed, and what "
				  "other modes left, then exit" } },
	SEC("iptables mode"),
	{ .name = "iptables-masquerade-bit", .arg = "N", .config = "iptables.masqueradeBit",
	  .option = "masquerade-bit", .kube = true, T(KP_OPT_UINT) },
	{ .name = NULL, .alias = "iptables-masquerade-bit", .config = "nftables.masqueradeBit",
	  .config_mode = "nftables" },
	{ .name = "iptables-localhost-nodeports", .config = "iptables.localhostNodePorts",
	  .mode = "iptables", .option = "localhost-nodeports", .kube = true, T(KP_OPT_BOOL) },
	{ .name = "iptables-dispatch-threshold", .arg = "N", .mode = "iptables",
	  .option = "dispatch-threshold", T(KP_OPT_UINT) },
	{ .name = "iptables-libiptc", .mode = "iptables", .option = "libiptc", T(KP_OPT_BOOL) },
	SEC("ipvs mode"),
	{ .name = "ipvs-scheduler", .arg = "NAME", .config = "ipvs.scheduler", .mode = "ipvs",
	  .option = "scheduler", .kube = true, T(KP_OPT_STRING) },
	{ .name = "ipvs-strict-arp", .config = "ipvs.strictARP", .mode = "ipvs",
	  .option = "strict-arp", .kube = true, T(KP_OPT_BOOL) },
	{ .name = "ipvs-tcp-timeout", .arg = "DUR", .config = "ipvs.tcpTimeout", .mode = "ipvs",
	  .option = "tcp-timeout", .kube = true, T(KP_OPT_DURATION) },
	{ .name = "ipvs-tcpfin-timeout", .arg = "DUR", .config = "ipvs.tcpFinTimeout",
	  .mode = "ipvs", .option = "tcpfin-timeout", .kube = true, T(KP_OPT_DURATION) },
	{ .name = "ipvs-udp-timeout", .arg = "DUR", .config = "ipvs.udpTimeout", .mode = "ipvs",
	  .option = "udp-timeout", .kube = true, T(KP_OPT_DURATION) },
	{ .name = "ipvs-exclude-cidrs", .arg = "CIDRS", .config = "ipvs.excludeCIDRs",
	  .cfg_list = true, .mode = "ipvs", .option = "exclude-cidrs", .kube = true,
	  T(KP_OPT_CIDR_LIST) },
	SEC("userspace mode"),
	{ .name = "proxy-port-range", .arg = "RANGE", .config = "portRange", .mode = "userspace",
	  .option = "port-range", .kube = true, T(KP_OPT_PORT_RANGE) },
	{ .name = "udp-timeout", .arg = "DUR", .config = "udpIdleTimeout", .zero_default = true, .mode = "userspace",
	  .option = "udp-timeout", .kube = true, T(KP_OPT_DURATION) },
	{ .name = "bind-address", .arg = "IP", .config = "bindAddress", .zero_default = true, .mode = "userspace",
	  .option = "bind", .kube = true, .default_text = "0.0.0.0", T(KP_OPT_STRING) },
	{ .name = "userspace-workers", .arg = "N", .mode = "userspace", .option = "workers",
	  T(KP_OPT_UINT) },
	{ .name = "userspace-max-conns", .arg = "N", .mode = "userspace", .option = "max-conns",
	  T(KP_OPT_UINT) },
	{ .name = "userspace-grace-period", .arg = "DUR", .mode = "userspace",
	  .option = "grace-period", T(KP_OPT_DURATION) },
	SEC("dpdk mode"),
	{ .name = "dpdk-eal-args", .arg = "ARGS", .mode = "dpdk", .option = "eal-args",
	  .config = "dpdk.ealArgs", .config_mode = "dpdk", T(KP_OPT_STRING) },
	{ .name = "dpdk-port", .arg = "SPEC", .mode = "dpdk", .option = "port",
	  .config = "dpdk.ports", .config_mode = "dpdk", T(KP_OPT_STRING_LIST) },
	{ .name = "dpdk-route", .arg = "\"CIDR via GW\"", .mode = "dpdk", .option = "route",
	  .config = "dpdk.routes", .config_mode = "dpdk", T(KP_OPT_STRING_LIST) },
	{ .name = "dpdk-workers", .arg = "N", .mode = "dpdk", .option = "workers",
	  .config = "dpdk.workers", .config_mode = "dpdk", T(KP_OPT_UINT) },
	{ .name = "dpdk-lb-policy", .arg = "POLICY", .mode = "dpdk", .option = "lb-policy",
	  .config = "dpdk.lbPolicy", .config_mode = "dpdk", T(KP_OPT_STRING) },
	{ .name = "dpdk-max-flows", .arg = "N", .mode = "dpdk", .option = "max-flows",
	  .config = "dpdk.maxFlows", .config_mode = "dpdk", T(KP_OPT_UINT) },
	{ .name = "dpdk-mbufs", .arg = "N", .mode = "dpdk", .option = "mbufs",
	  .config = "dpdk.mbufs", .config_mode = "dpdk", T(KP_OPT_UINT) },
	{ .name = "dpdk-idle-sleep-us", .arg = "N", .mode = "dpdk", .option = "idle-sleep-us",
	  .config = "dpdk.idleSleepMicroseconds", .config_mode = "dpdk", T(KP_OPT_UINT) },
	{ .name = "dpdk-tcp-timeout", .arg = "DUR", .mode = "dpdk", .option = "tcp-timeout",
	  .config = "dpdk.tcpTimeout", .config_mode = "dpdk", T(KP_OPT_DURATION) },
	{ .name = "dpdk-tcpfin-timeout", .arg = "DUR", .mode = "dpdk", .option = "tcpfin-timeout",
	  .config = "dpdk.tcpFinTimeout", .config_mode = "dpdk", T(KP_OPT_DURATION) },
	{ .name = "dpdk-syn-timeout", .arg = "DUR", .mode = "dpdk", .option = "syn-timeout",
	  .config = "dpdk.synTimeout", .config_mode = "dpdk", T(KP_OPT_DURATION) },
	{ .name = "dpdk-udp-timeout", .arg = "DUR", .mode = "dpdk", .option = "udp-timeout",
	  .config = "dpdk.udpTimeout", .config_mode = "dpdk", T(KP_OPT_DURATION) },
	SEC("Control and health"),
	{ .name = "control-socket", .arg = "PATH", .own = { .type = KP_OPT_STRING,
	  .def = "/run/kproxyd.sock", .help = "socket for kproxyctl" } },
	{ .name = "healthz-bind-address", .arg = "A", .config = "healthzBindAddress", .zero_default = true, .kube = true,
	  .own = { .type = KP_OPT_STRING, .def = "0.0.0.0:10256",
		   .help = "/healthz and /livez on IP:port, or IP (port 10256); \"\" disables" } },
	{ .name = "metrics-bind-address", .arg = "A", .config = "metricsBindAddress", .zero_default = true, .kube = true,
	  .own = { .type = KP_OPT_STRING, .def = "127.0.0.1:10249",
		   .help = "Prometheus /metrics on IP:port, or IP (port 10249); \"\" disables" } },
	{ .name = "healthz-port", .arg = "PORT", .kube = true, .own = { .type = KP_OPT_INT,
	  .min = 0, .max = 65535, .help = "deprecated: the port of --healthz-bind-address (0: "
					  "no health server); ignored with --config" } },
	{ .name = "metrics-port", .arg = "PORT", .kube = true, .own = { .type = KP_OPT_INT,
	  .min = 0, .max = 65535, .help = "deprecated: the port of --metrics-bind-address (0: "
					  "no metrics server); ignored with --config" } },
	{ .name = "bind-address-hard-fail", .config = "bindAddressHardFail", .kube = true,
	  .own = { .type = KP_OPT_BOOL, .def = "false", .help = "exit when the health or "
		   "metrics address cannot be bound (else it is logged and not served)" } },
	{ .name = "profiling", .config = "enableProfiling", .kube = true, TD(KP_OPT_BOOL, "false"),
	  .na = "there is no /debug/pprof in kproxyd" },
	{ .name = "show-hidden-metrics-for-version", .arg = "VER",
	  .config = "showHiddenMetricsForVersion", .kube = true, TD(KP_OPT_STRING, ""),
	  .na = "kproxyd hides no metrics" },
	SEC("Logging"),
	{ .name = "v", .arg = "N", .kube = true, .flag_wins = true,
	  .own = { .type = KP_OPT_UINT, .max = 10, .def = "0", .help = "log verbosity (0: "
		   "errors, warnings and start-up; 2: changes; 4: library debug)" } },
	{ .name = NULL, .alias = "v", .config = "logging.verbosity" },
	{ .name = "vmodule", .arg = "PATTERN=N,...", .config = "logging.vmodule", .kube = true,
	  .flag_wins = true, .cfg_any = true, TD(KP_OPT_STRING, ""), .na = NA_LOG },
	{ .name = "logging-format", .arg = "FORMAT", .config = "logging.format", .kube = true,
	  .flag_wins = true, .own = { .type = KP_OPT_STRING, .def = "text", .choices = log_formats },
	  .na = NA_LOG },
	{ .name = "log-flush-frequency", .arg = "DUR", .config = "logging.flushFrequency", .zero_default = true,
	  .kube = true, .flag_wins = true, .cfg_number = true, TD(KP_OPT_DURATION, "5s"),
	  .na = NA_LOG },
	{ .name = NULL, .config = "logging.options", .cfg_any = true, TD(KP_OPT_STRING, ""),
	  .na = NA_LOG },
	{ .name = "log-json-info-buffer-size", .arg = "SIZE", .kube = true, .flag_wins = true,
	  TD(KP_OPT_STRING, "0"), .na = NA_LOG },
	{ .name = "log-json-split-stream", .kube = true, .flag_wins = true,
	  TD(KP_OPT_BOOL, "false"), .na = NA_LOG },
	{ .name = "log-text-info-buffer-size", .arg = "SIZE", .kube = true, .flag_wins = true,
	  TD(KP_OPT_STRING, "0"), .na = NA_LOG },
	{ .name = "log-text-split-stream", .kube = true, .flag_wins = true,
	  TD(KP_OPT_BOOL, "false"), .na = NA_LOG },
	/* klog's own flags, which older kube-proxy command lines carry */
	{ .name = "add-dir-header", .kube = true, .flag_wins = true, TD(KP_OPT_BOOL, "false"),
	  .na = NA_LOG },
	{ .name = "alsologtostderr", .kube = true, .flag_wins = true, TD(KP_OPT_BOOL, "false"),
	  .na = NA_LOG },
	{ .name = "log-backtrace-at", .arg = "FILE:N", .kube = true, .flag_wins = true,
	  TD(KP_OPT_STRING, ":0"), .na = NA_LOG },
	{ .name = "log-dir", .arg = "DIR", .kube = true, .flag_wins = true, TD(KP_OPT_STRING, ""),
	  .na = NA_LOG },
	{ .name = "log-file", .arg = "FILE", .kube = true, .flag_wins = true,
	  TD(KP_OPT_STRING, ""), .na = NA_LOG },
	{ .name = "log-file-max-size", .arg = "MB", .kube = true, .flag_wins = true,
	  TD(KP_OPT_UINT, "1800"), .na = NA_LOG },
	{ .name = "logtostderr", .kube = true, .flag_wins = true, TD(KP_OPT_BOOL, "true"),
	  .na = NA_LOG },
	{ .name = "one-output", .kube = true, .flag_wins = true, TD(KP_OPT_BOOL, "false"),
	  .na = NA_LOG },
	{ .name = "skip-headers", .kube = true, .flag_wins = true, TD(KP_OPT_BOOL, "false"),
	  .na = NA_LOG },
	{ .name = "skip-log-headers", .kube = true, .flag_wins = true, TD(KP_OPT_BOOL, "false"),
	  .na = NA_LOG },
	{ .name = "stderrthreshold", .arg = "SEV", .kube = true, .flag_wins = true,
	  TD(KP_OPT_STRING, "2"), .na = NA_LOG },
	{ .name = NULL, .config = "winkernel", .cfg_any = true, TD(KP_OPT_STRING, ""),
	  .na = "Windows only" },
	{ .name = "help", .own = { .type = KP_OPT_BOOL, .help = "print this help and exit" } },
	{ .name = "flag-table", .arg = "FORM", .own = { .type = KP_OPT_STRING, .choices =
	  table_forms, .help = "print every flag and config field, and what kproxyd does with "
			       "each, as a man-page (man) or README (markdown) table, and exit" } },
	{ .name = "version", .own = { .type = KP_OPT_BOOL, .help = "print the version and "
								  "exit" } },
};

#define N_ROWS KP_ARRAY_SIZE(rows)

/* The settings so far, as text: one slot per row that holds values (aliases write the
 * row they name). */
struct slot {
	char **v;
	size_t n;
	bool from_flag;
};

static struct slot slots[N_ROWS];

const struct kpd_flag *kpd_flag_rows(size_t *ret_n)
{
	*ret_n = N_ROWS;
	return rows;
}

static size_t row_index(const struct kpd_flag *f)
{
	return (size_t)(f - rows);
}

static const struct kpd_flag *row_by_name(const char *name)
{
	for (size_t i = 0; i < N_ROWS; i++)
		if (rows[i].name && !strcmp(rows[i].name, name))
			return &rows[i];
	return NULL;
}

/* The row that holds an alias's values. */
const struct kpd_flag *kpd_flag_target(const struct kpd_flag *f)
{
	return f->alias ? row_by_name(f->alias) : f;
}

static bool is_list(const struct kpd_flag *f)
{
	return f->own.type == KP_OPT_STRING_LIST;
}

/* A backend option's declaration in @mode, or NULL. */
static const struct kp_option *backend_option(struct kp_ctx *ctx, const char *mode,
					      const char *name)
{
	const struct kp_backend_ops *ops = kp_backend_find(ctx, mode);

	for (size_t i = 0; ops && ops->options && i < ops->n_options; i++)
		if (!strcmp(ops->options[i].name, name))
			return &ops->options[i];
	return NULL;
}

struct find_any {
	const char *name;
	const struct kp_option *found;
};

static int find_any_fn(const struct kp_backend_ops *ops, void *userdata)
{
	struct find_any *fa = userdata;

	for (size_t i = 0; ops->options && i < ops->n_options; i++) {
		if (!strcmp(ops->options[i].name, fa->name)) {
			fa->found = &ops->options[i];
			return 1;
		}
	}
	return 0;
}

/* How a row's value is checked: the backend's declaration where there is one (the mode's,
 * else any data plane's), else the row's own. */
const struct kp_option *kpd_flag_decl(struct kp_ctx *ctx, const struct kpd_flag *f,
				      const char *mode)
{
	const struct kp_option *o = NULL;

	if (f->option) {
		o = backend_option(ctx, f->mode ? f->mode : mode, f->option);
		if (!o) {
			struct find_any fa = { f->option, NULL };

			kp_backend_foreach(ctx, find_any_fn, &fa);
			o = fa.found;
		}
	}
	return o ? o : &f->own;
}

int kpd_flag_set(const struct kpd_flag *f, const char *value, bool flag)
{
	struct slot *s = &slots[row_index(f)];
	char *copy = strdup(value);
	char **v;

	if (!copy)
		return -ENOMEM;
	if (!is_list(f) || (flag && !s->from_flag)) {	/* a flag replaces the file's */
		for (size_t i = 0; i < s->n; i++)
			free(s->v[i]);
		s->n = 0;
	}
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v) {
		free(copy);
		return -ENOMEM;
	}
	s->v = v;
	s->v[s->n++] = copy;
	s->from_flag |= flag;
	return 0;
}

bool kpd_flag_from_flag(const struct kpd_flag *f)
{
	return slots[row_index(f)].from_flag;
}

/* The value in force: the last one set, else the row's default. */
const char *kpd_flag_value(const struct kpd_flag *f)
{
	const struct slot *s = &slots[row_index(f)];

	return s->n ? s->v[s->n - 1] : f->own.def;
}

void kpd_flag_clear(const struct kpd_flag *f)
{
	struct slot *s = &slots[row_index(f)];

	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct slot){ 0 };
}

void kpd_flags_free(void)
{
	for (size_t i = 0; i < N_ROWS; i++)
		kpd_flag_clear(&rows[i]);
}

const char *kpd_get(const char *name)
{
	const struct kpd_flag *f = row_by_name(name);
	const struct slot *s;

	assert(f);
	s = &slots[row_index(f)];
	return s->n ? s->v[s->n - 1] : f->own.def;
}

const char *const *kpd_get_list(const char *name, size_t *ret_n)
{
	const struct kpd_flag *f = row_by_name(name);

	assert(f);
	*ret_n = slots[row_index(f)].n;
	return (const char *const *)slots[row_index(f)].v;
}

bool kpd_get_bool(const char *name)
{
	const char *v = kpd_get(name);

	return v && (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") ||
		     !strcmp(v, "True") || !strcmp(v, "TRUE") || !strcmp(v, "t") ||
		     !strcmp(v, "T"));
}

uint32_t kpd_get_ms(const char *name)
{
	uint32_t ms = 0;

	kp_parse_duration(kpd_get(name), &ms);
	return ms;
}

bool kpd_is_set(const char *name, bool by_flag)
{
	const struct kpd_flag *f = row_by_name(name);

	return f && slots[row_index(f)].n && (!by_flag || slots[row_index(f)].from_flag);
}

/* ---- the command line ---- */

/* Reads @value for the row of --@name (checked later, against the data plane's option). */
static int take_flag(const char *name, const char *value)
{
	const struct kpd_flag *f = row_by_name(name);
	const struct kpd_flag *t;

	if (!f || f->section) {
		fprintf(stderr, "kproxyd: unknown flag: --%s\nTry 'kproxyd --help'.\n", name);
		return -EINVAL;
	}
	t = kpd_flag_target(f);
	if (!value && t->own.type != KP_OPT_BOOL) {
		fprintf(stderr, "kproxyd: flag needs an argument: --%s\n", name);
		return -EINVAL;
	}
	/* a mode's flag (--ipvs-sync-period) waits in its own slot until the mode is known */
	if (kpd_flag_set(f->config_mode ? f : t, value ? value : "true", true) < 0) {
		fprintf(stderr, "kproxyd: out of memory\n");
		return -ENOMEM;
	}
	return 0;
}

/* As kube-proxy's processV1Alpha1Flags: --iptables-*-period apply unless the mode is ipvs,
 * --ipvs-*-period only in ipvs mode, each over the plain --sync-period/--min-sync-period
 * unless that was given itself. */
int kpd_flags_resolve(const char *mode)
{
	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kpd_flag *f = &rows[i], *t;
		bool ipvs = !strcmp(mode, "ipvs");

		if (!f->name || !f->alias || !f->config_mode || !slots[i].n)
			continue;
		t = kpd_flag_target(f);
		if (ipvs != !strcmp(f->config_mode, "ipvs")) {
			kpd_info("--%s: no effect in --proxy-mode %s", f->name, mode);
		} else if (!slots[row_index(t)].from_flag &&
			   kpd_flag_set(t, slots[i].v[slots[i].n - 1], true) < 0) {
			return -ENOMEM;
		}
		kpd_flag_clear(f);
	}
	return 0;
}

int kpd_flags_parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *value = NULL;
		const struct kpd_flag *f;
		char name[64];

		if (!strcmp(a, "--")) {
			if (i + 1 < argc)
				goto unexpected;
			break;
		}
		if (a[0] != '-' || !a[1])
			goto unexpected;
		if (a[1] != '-') {		/* shorthands: -v N, -v=N, -vN, -h */
			if (a[1] != 'v' && a[1] != 'h') {
				fprintf(stderr, "kproxyd: unknown shorthand flag: '%c' in %s\n",
					a[1], a);
				return -EINVAL;
			}
			snprintf(name, sizeof(name), "%s", a[1] == 'v' ? "v" : "help");
			value = a[2] == '=' ? a + 3 : a[2] ? a + 2 : NULL;
		} else {
			a += 2;
			eq = strchr(a, '=');
			snprintf(name, sizeof(name), "%.*s", (int)(eq ? eq - a : (long)strlen(a)), a);
			value = eq ? eq + 1 : NULL;
		}
		f = row_by_name(name);
		if (f && !value && kpd_flag_target(f)->own.type != KP_OPT_BOOL && i + 1 < argc)
			value = argv[++i];
		if (take_flag(name, value) < 0)
			return -EINVAL;
	}
	return 0;
unexpected:
	fprintf(stderr, "kproxyd: unexpected argument \"%s\"\nTry 'kproxyd --help'.\n", argv[argc - 1]);
	return -EINVAL;
}

/* Checks every value given against its declaration; the reason names the flag. A row
 * whose syntax differs from the option it feeds is a bug in the table, refused at start
 * (so any test that starts kproxyd catches it). */
int kpd_flags_check(struct kp_ctx *ctx, const char *mode)
{
	char why[256];

	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kp_option *o;

		if (!rows[i].name)
			continue;
		/* a mode's period flag holds its own values, of its target's type */
		o = kpd_flag_decl(ctx, kpd_flag_target(&rows[i]), mode);
		if (!rows[i].alias && o->type != rows[i].own.type) {
			fprintf(stderr, "kproxyd: --%s is a %s flag but feeds the %s option \"%s\"\n",
				rows[i].name, kp_option_type_name(rows[i].own.type),
				kp_option_type_name(o->type), o->name);
			return -EINVAL;
		}
		for (size_t k = 0; k < slots[i].n; k++) {
			if (rows[i].keyword && !strcmp(slots[i].v[k], rows[i].keyword))
				continue;
			if (kp_option_check(o, slots[i].v[k], why, sizeof(why)) < 0) {
				fprintf(stderr, "kproxyd: --%s: %s\n", rows[i].name, why);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Two settings' texts mean the same value of @o ("0s" and "0", "True" and "true"). */
static bool same_value(const struct kp_option *o, const char *a, const char *b)
{
	uint32_t ma, mb;

	if (o->type == KP_OPT_DURATION)
		return !kp_parse_duration(a, &ma) && !kp_parse_duration(b, &mb) && ma == mb;
	if (o->type == KP_OPT_BOOL) {
		struct kp_option bo = { .type = KP_OPT_BOOL };

		return !kp_option_check(&bo, a, NULL, 0) && !kp_option_check(&bo, b, NULL, 0) &&
		       (strchr("1tTyY", a[0]) != NULL) == (strchr("1tTyY", b[0]) != NULL);
	}
	return !strcmp(a, b);
}

/* Whether the values @f holds are only its default (kube-proxy's, or the option's). */
static bool at_default(struct kp_ctx *ctx, const struct kpd_flag *f, const char *mode)
{
	const struct kp_option *o = kpd_flag_decl(ctx, f, mode);
	const struct slot *sl = &slots[row_index(f)];

	for (size_t k = 0; k < sl->n; k++) {
		const char *v = sl->v[k];

		if (!*v || (o->def && same_value(o, v, o->def)) ||
		    (f->default_text && same_value(o, v, f->default_text)))
			continue;
		return false;
	}
	return true;
}

/* ---- the data plane's settings ---- */

int kpd_flags_settings(struct kp_ctx *ctx, const char *mode, struct kp_setting **ret,
		       size_t *ret_n)
{
	struct kp_setting *v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kpd_flag *f = &rows[i];
		bool applies;

		if (!f->option || !slots[i].n)
			continue;
		applies = (!f->mode || !strcmp(f->mode, mode)) &&
			  backend_option(ctx, mode, f->option);
		if (!applies) {
			if (!at_default(ctx, f, mode))
				kpd_info("--%s: no effect in --proxy-mode %s", f->name, mode);
			continue;
		}
		for (size_t k = 0; k < slots[i].n; k++) {
			struct kp_setting *nv = realloc(v, (n + 1) * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
			v[n++] = (struct kp_setting){ f->option, slots[i].v[k] };
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void kpd_flags_report(struct kp_ctx *ctx, const char *mode)
{
	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kpd_flag *f = &rows[i];

		if (!f->na || f->alias || !slots[i].n || at_default(ctx, f, mode))
			continue;
		kpd_info("%s%s%s%s%s = %s: not applied by kproxyd: %s", f->name ? "--" : "",
			 f->name ? f->name : "", f->name && f->config ? " (" : "",
			 f->config ? f->config : "", f->name && f->config ? ")" : "",
			 slots[i].v[slots[i].n - 1], f->na);
	}
}

/* The flag that sets option @name of @mode, or NULL. */
const char *kpd_flag_of(const char *mode, const char *name)
{
	for (size_t i = 0; i < N_ROWS; i++)
		if (rows[i].name && rows[i].option && !strcmp(rows[i].option, name) &&
		    (!rows[i].mode || !strcmp(rows[i].mode, mode)))
			return rows[i].name;
	return NULL;
}

/* ---- --help ---- */

/* One flag: the name at the left, its help wrapped at 80 columns beside it. */
static void print_row(FILE *out, const char *name, const char *arg, const char *help,
		      const char *def, bool boolean)
{
	char left[64], text[512];
	const char *p = text;
	int n = snprintf(left, sizeof(left), "      --%s%s%s", name, arg ? " " : "",
			 arg ? arg : "");

	snprintf(text, sizeof(text), "%s%s%s%s", help ? help : "",
		 def && *def && !boolean ? " (default " : "", def && *def && !boolean ? def : "",
		 def && *def && !boolean ? ")" : "");
	fprintf(out, n >= 34 ? "%s\n%34s" : "%-34s", left, "");
	while (*p) {
		size_t len = strlen(p), cut = len;

		if (len > 46) {
			cut = 46;
			while (cut && p[cut] != ' ')
				cut--;
			if (!cut)
				cut = 46;
		}
		fprintf(out, "%.*s\n", (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
		if (*p)
			fprintf(out, "%34s", "");
	}
	if (!*text)
		fputc('\n', out);
}

void kpd_flags_usage(FILE *out, struct kp_ctx *ctx, const char *only_mode)
{
	bool skip = false;

	fputs("Usage: kproxyd [OPTIONS]\n"
	      "Run in place of kube-proxy: program Service and EndpointSlice objects into a data "
	      "plane.\n", out);
	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kpd_flag *f = &rows[i];
		const struct kp_option *o;

		if (f->section) {
			/* a data plane's section: shown when it is built (and asked for) */
			const char *m = strstr(f->section, " mode");
			char mode[32];

			snprintf(mode, sizeof(mode), "%.*s", m ? (int)(m - f->section) : 0,
				 f->section);
			skip = m && (!kp_backend_find(ctx, mode) ||
				     (only_mode && strcmp(mode, only_mode)));
			if (!skip)
				fprintf(out, "%s:\n", f->section);
			continue;
		}
		if (skip || !f->name || f->alias)
			continue;
		o = kpd_flag_decl(ctx, f, f->mode ? f->mode : only_mode ? only_mode : "iptables");
		print_row(out, f->name, f->arg, o->help ? o->help : f->own.help, o->def,
			  o->type == KP_OPT_BOOL);
	}
	fputs("  -v N, -h: short for --v N, --help. Durations take a unit: 500ms, 1s, 2m, 1h "
	      "(1m30s also works).\nBooleans: --flag, --flag=true, --flag=false. "
	      "--proxy-mode MODE --help shows that data plane's flags only.\n", out);
}

/* What kproxyd does with a row, in a few words, for the flag table. */
static void row_effect(struct kp_ctx *ctx, const struct kpd_flag *f, char *out, size_t size)
{
	const struct kpd_flag *t = kpd_flag_target(f);

	if (f->na)
		snprintf(out, size, "accepted, not applied: %s", f->na);
	else if (t->option && t->mode)
		snprintf(out, size, "%s mode: its option %s%s", t->mode, t->option,
			 kp_backend_find(ctx, t->mode) ? "" : " (when built)");
	else if (t->option)
		snprintf(out, size, "the option %s of every mode that has it", t->option);
	else if (f->alias)
		snprintf(out, size, "sets --%s%s%s", t->name, f->config_mode ? " in " : "",
			 f->config_mode ? f->config_mode : "");
	else
		snprintf(out, size, "applied by kproxyd%s%s", f->kube ? "" : " (kproxyd's own)",
			 f->kube && f->flag_wins ? "; wins over --config" : "");
}

void kpd_flags_table(FILE *out, struct kp_ctx *ctx, bool man)
{
	char what[512];

	if (man)
		fputs(".TS\nallbox;\nlb lb\nlw(2.6i) lx.\nflag, config field\twhat kproxyd does\n", out);
	else
		fputs("| flag | config field | what kproxyd does |\n|---|---|---|\n", out);
	for (size_t i = 0; i < N_ROWS; i++) {
		const struct kpd_flag *f = &rows[i];

		if (f->section || (!f->name && !f->config))
			continue;
		row_effect(ctx, f, what, sizeof(what));
		if (man)
			fprintf(out, "T{\n%s%s%s%s\nT}\tT{\n%s\nT}\n", f->name ? "\\-\\-" : "",
				f->name ? f->name : "", f->name && f->config ? "\n.br\n" : "",
				f->config ? f->config : "", what);
		else
			fprintf(out, "| %s%s%s | %s | %s |\n", f->name ? "`--" : "", f->name ? f->name :
				"", f->name ? "`" : "", f->config ? f->config : "", what);
	}
	if (man)
		fputs(".TE\n", out);
}
