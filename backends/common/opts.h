/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Option table entries several data planes declare alike (struct kp_option), so that
 * one option has one name, type and help wherever it appears.
 */
#ifndef KP_OPTS_H
#define KP_OPTS_H

#include <stddef.h>

#include <kproxy/backend.h>

#define KP_OPTION_CLUSTER_CIDR(st, member)						\
	{ .name = "cluster-cidr", .type = KP_OPT_CIDR_LIST,				\
	  .offset = offsetof(st, member),						\
	  .help = "pod ranges: traffic from outside them to a ClusterIP is masqueraded" }

#define KP_OPTION_MASQUERADE_ALL(st, member)						\
	{ .name = "masquerade-all", .type = KP_OPT_BOOL, .offset = offsetof(st, member),	\
	  .def = "false", .help = "masquerade all traffic sent to service VIPs" }

#define KP_OPTION_MASQUERADE_BIT(st, member)						\
	{ .name = "masquerade-bit", .type = KP_OPT_UINT, .offset = offsetof(st, member),	\
	  .max = 31, .def = "14", .help = "the fwmark bit of packets to masquerade" }

/* Local traffic detection (kube-proxy's --detect-local-mode): which packets come from
 * pods, for the rules that masquerade what does not. NodeCIDR reaches a backend as
 * ClusterCIDR with the node's pod ranges in cluster-cidr. */
#define KP_DETECT_LOCAL_MODES { "ClusterCIDR", "BridgeInterface", "InterfaceNamePrefix", NULL }
#define KP_OPTION_DETECT_LOCAL(st, m_mode, m_bridge, m_prefix, m_choices)				\
	{ .name = "detect-local-mode", .type = KP_OPT_STRING, .offset = offsetof(st, m_mode),	\
	  .def = "ClusterCIDR", .choices = (m_choices),						\
	  .help = "pod traffic is told apart by cluster-cidr (ClusterCIDR), by arriving on "	\
		  "pod-bridge-interface (BridgeInterface) or on an interface named "		\
		  "pod-interface-name-prefix* (InterfaceNamePrefix)" },				\
	{ .name = "pod-bridge-interface", .type = KP_OPT_STRING, .offset = offsetof(st, m_bridge), \
	  .help = "the pods' bridge, for detect-local-mode BridgeInterface" },			\
	{ .name = "pod-interface-name-prefix", .type = KP_OPT_STRING,				\
	  .offset = offsetof(st, m_prefix),							\
	  .help = "the pods' interface name prefix, for detect-local-mode InterfaceNamePrefix" }

#endif
