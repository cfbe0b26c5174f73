/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kube-proxy's configuration file (KubeProxyConfiguration, kubeproxy.config.k8s.io/
 * v1alpha1), the fields a kube-proxy replacement can honour, and Go-style durations.
 */
#ifndef KPROXY_CONFIG_H
#define KPROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a KubeProxyConfiguration set. Strings are owned (malloc'd), NULL when unset;
 * the has_* flags tell which scalars were set. */
struct kp_proxy_config {
	char *kubeconfig;		/* clientConnection.kubeconfig */
	char *master;			/* (not in the file format; for callers) */
	char *hostname_override;	/* hostnameOverride */
	char *cluster_cidr;		/* clusterCIDR */
	char *mode;			/* mode ("" means iptables) */
	char *healthz_bind_address;	/* healthzBindAddress */
	char *metrics_bind_address;	/* metricsBindAddress */
	char *nodeport_addresses;	/* nodePortAddresses, joined with ',' */
	char *ipvs_scheduler;		/* ipvs.scheduler */
	bool masquerade_all, has_masquerade_all;	/* iptables.masqueradeAll */
	uint32_t sync_period_ms;	/* syncPeriod or iptables.syncPeriod */
	uint32_t min_sync_period_ms;	/* minSyncPeriod or iptables.minSyncPeriod */
	bool has_sync_period, has_min_sync_period;
	/* ipvs.strictARP; ipvs.tcpTimeout, tcpFinTimeout, udpTimeout (0 when unset) */
	bool strict_arp, has_strict_arp;
	uint32_t ipvs_tcp_timeout_ms, ipvs_tcpfin_timeout_ms, ipvs_udp_timeout_ms;
	/* the userspace mode's: bindAddress, portRange, udpIdleTimeout (0 when unset) */
	char *bind_address;
	char *port_range;
	uint32_t udp_idle_timeout_ms;
};

/* Called once per field the file has and kproxyd does not use ("a.b.c"). */
typedef void (*kp_config_warn_fn)(const char *path, const char *field, void *userdata);

/**
 * kp_proxy_config_load - read a KubeProxyConfiguration (YAML or JSON)
 * @path: the file
 * @ret: filled (cleared first)
 * @warn: called for each unknown or unsupported field (may be NULL)
 * @err: on failure, "PATH: FIELD: what is wrong"
 * Returns: 0; -EINVAL for a field of the wrong type or value (named in @err), a wrong
 * kind or apiVersion; -EBADMSG if the file does not parse; or the errno of reading it.
 */
int kp_proxy_config_load(const char *path, struct kp_proxy_config *ret, kp_config_warn_fn warn,
			 void *userdata, char *err, size_t err_size);

void kp_proxy_config_clear(struct kp_proxy_config *c);

/**
 * kp_parse_duration - a Go duration ("1s", "500ms", "1m30s", "2h", "0") in milliseconds
 * Returns: 0, or -EINVAL (also for negative values and more than UINT32_MAX ms).
 */
int kp_parse_duration(const char *s, uint32_t *ret_ms);

/**
 * kp_parse_port_range - kube-proxy's --proxy-port-range: "LO-HI", "LO+N" or one port,
 * inclusive; "", "0" and "0-0" mean no range (both results 0)
 * Returns: 0, or -EINVAL (a port above 65535, HI below LO, anything else).
 */
int kp_parse_port_range(const char *s, uint16_t *ret_lo, uint16_t *ret_hi);

#ifdef __cplusplus
}
#endif

#endif
