/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside the IPVS backend: the ipsets it keeps (kube-proxy's names) and the few netfilter
 * rules that read them to decide what to masquerade. The rule count is fixed: it does not
 * grow with services, the sets do.
 */
#ifndef KP_IPVS_H
#define KP_IPVS_H

#include <stdbool.h>
#include <stdint.h>

#include <kproxy/state.h>

#include "../common/rule.h"

struct kp_ctx;

enum ipvs_set {
	SET_CLUSTER_IP,		/* hash:ip,port   ClusterIP,proto:port */
	SET_EXTERNAL_IP,	/* hash:ip,port   externalIP / LB ingress, externalTrafficPolicy Cluster */
	SET_LOOP_BACK,		/* hash:ip,port,ip endpoint,proto:port,endpoint (hairpin) */
	SET_LB_FW,		/* hash:ip,port   LB ingress with loadBalancerSourceRanges */
	SET_LB_SRC_CIDR,	/* hash:ip,port,net LB ingress,proto:port,allowed source range */
	/* the port bitmaps last: entry code tells them apart with set >= SET_NODE_PORT_TCP */
	SET_NODE_PORT_TCP,	/* bitmap:port    node ports, externalTrafficPolicy Cluster */
	SET_NODE_PORT_UDP,
	SET_NODE_PORT_SCTP,
	_SET_MAX
};

/* The set's name for @family (KUBE-6-... for the IPv6 hash sets; the port bitmaps have no
 * family and one name). */
const char *ipvs_set_name(enum ipvs_set s, int family);
const char *ipvs_set_type(enum ipvs_set s);
/* Whether the set is shared by both families. */
bool ipvs_set_familyless(enum ipvs_set s);

struct ipvs_rules_cfg {
	bool masquerade_all;
	const struct kp_local_detect *pods;	/* how pod traffic is told apart */
	uint32_t mark;				/* the masquerade mark */
	bool random_fully;			/* MASQUERADE --random-fully */
};

/*
 * Writes our chains of the nat and filter tables of @family (the sets must exist): nat
 * KUBE-SERVICES, KUBE-NODE-PORT, KUBE-MARK-MASQ, KUBE-POSTROUTING and filter KUBE-FORWARD,
 * with the jumps from the built-in chains. Holds the xtables lock. 0 or -errno.
 */
int ipvs_rules_sync(struct kp_ctx *ctx, int family, const struct ipvs_rules_cfg *cfg);
/* Removes those chains and jumps, nothing else. 0 or -errno. */
int ipvs_rules_cleanup(struct kp_ctx *ctx, int family);

#endif
