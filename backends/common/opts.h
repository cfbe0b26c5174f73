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

#endif
