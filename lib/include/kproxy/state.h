/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The desired state as backends see it: one service port per (service, port name,
 * protocol), each with its frontends (ClusterIP, NodePort, externalIP, load-balancer
 * ingress) and the endpoint sets they forward to, after readiness, terminating fallback,
 * traffic policies and topology hints. Service ports are opaque and read-only; frontends
 * and endpoints are small value structs.
 */
#ifndef KPROXY_STATE_H
#define KPROXY_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kp_state;
struct kp_svc_port;
struct kp_delta;

/* An IPv4 or IPv6 address. @family is AF_INET or AF_INET6. */
struct kp_addr {
	int family;		/* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

/* Longest text form of a kp_addr, with the NUL. */
#define KP_ADDR_STRLEN 46

enum kp_protocol {
	KP_PROTO_TCP,
	KP_PROTO_UDP,
	KP_PROTO_SCTP,
	_KP_PROTO_MAX
};

enum kp_frontend_kind {
	KP_FE_CLUSTER_IP,
	KP_FE_NODE_PORT,
	KP_FE_EXTERNAL_IP,
	KP_FE_LOAD_BALANCER,
	_KP_FE_MAX
};

/* One address:port a service port is reachable on. */
struct kp_frontend {
	enum kp_frontend_kind kind;
	struct kp_addr addr;	/* VIP, node address, external IP or ingress IP; for a
				 * NodePort, 0.0.0.0 or :: stands for every local address */
	uint16_t port;		/* service port, or the node port for KP_FE_NODE_PORT */
	bool external;		/* uses the external endpoint set (externalTrafficPolicy) */
};

/* One endpoint of a service port. */
struct kp_endpoint {
	struct kp_addr addr;
	uint16_t port;		/* the resolved target port */
	bool ready;		/* conditions.ready */
	bool serving;		/* conditions.serving */
	bool terminating;	/* conditions.terminating */
	bool local;		/* nodeName is this node */
};

enum kp_affinity {
	KP_AFFINITY_NONE,
	KP_AFFINITY_CLIENT_IP,
	_KP_AFFINITY_MAX
};

/**
 * kp_state_foreach - walk the service ports, in a stable order (namespace, name, port
 * name, protocol)
 * @state: state
 * @fn: called for each; a non-zero return stops the walk and is returned
 * @userdata: passed to @fn
 * Returns: 0 or what @fn returned.
 */
int kp_state_foreach(const struct kp_state *state,
		     int (*fn)(const struct kp_svc_port *sp, void *userdata), void *userdata);

/** kp_state_get_size - number of service ports */
size_t kp_state_get_size(const struct kp_state *state);

/**
 * kp_state_count_family - number of service ports with a frontend of @family (AF_INET or
 * AF_INET6; 0 for any other), kept as the state changes: no walk. Since 0.6.
 */
size_t kp_state_count_family(const struct kp_state *state, int family);

/**
 * kp_state_lookup - find a service port
 * @ns, @name: the service; @port_name: "" for an unnamed port; @proto: protocol
 * Returns: the service port (borrowed) or NULL.
 */
const struct kp_svc_port *kp_state_lookup(const struct kp_state *state, const char *ns,
					  const char *name, const char *port_name,
					  enum kp_protocol proto);

/* Getters; strings and arrays are borrowed from @sp. */
const char *kp_svc_port_get_namespace(const struct kp_svc_port *sp);
const char *kp_svc_port_get_name(const struct kp_svc_port *sp);
const char *kp_svc_port_get_port_name(const struct kp_svc_port *sp);
enum kp_protocol kp_svc_port_get_protocol(const struct kp_svc_port *sp);
/** kp_svc_port_get_port - the service port (spec.ports[].port) */
uint16_t kp_svc_port_get_port(const struct kp_svc_port *sp);
/** kp_svc_port_get_node_port - spec.ports[].nodePort, 0 if none */
uint16_t kp_svc_port_get_node_port(const struct kp_svc_port *sp);
/** kp_svc_port_get_health_check_node_port - spec.healthCheckNodePort, 0 if none */
uint16_t kp_svc_port_get_health_check_node_port(const struct kp_svc_port *sp);
enum kp_affinity kp_svc_port_get_affinity(const struct kp_svc_port *sp);
/** kp_svc_port_get_affinity_timeout - ClientIP affinity timeout in seconds */
uint32_t kp_svc_port_get_affinity_timeout(const struct kp_svc_port *sp);
/** kp_svc_port_external_local - externalTrafficPolicy is Local */
bool kp_svc_port_external_local(const struct kp_svc_port *sp);
/** kp_svc_port_internal_local - internalTrafficPolicy is Local */
bool kp_svc_port_internal_local(const struct kp_svc_port *sp);
const struct kp_frontend *kp_svc_port_get_frontends(const struct kp_svc_port *sp, size_t *ret_n);
/**
 * kp_svc_port_get_endpoints - the endpoints a frontend forwards to
 * @sp: service port
 * @family: AF_INET or AF_INET6 for that family's endpoints (a frontend's family), 0 for both
 * @external: false for cluster frontends (ClusterIP; internalTrafficPolicy applies),
 *            true for external ones (NodePort, externalIP, LB; externalTrafficPolicy)
 * @ret_n: number of endpoints
 * Endpoints are sorted by family (IPv4 first), address, port, and de-duplicated.
 */
const struct kp_endpoint *kp_svc_port_get_endpoints(const struct kp_svc_port *sp, int family,
						    bool external, size_t *ret_n);
/**
 * kp_svc_port_get_all_endpoints - the union of both sets (what needs per-endpoint
 * programming, such as KUBE-SEP chains), sorted and de-duplicated
 */
const struct kp_endpoint *kp_svc_port_get_all_endpoints(const struct kp_svc_port *sp,
							size_t *ret_n);
/** kp_svc_port_get_source_ranges - loadBalancerSourceRanges as (address, prefix) pairs */
const struct kp_addr *kp_svc_port_get_source_ranges(const struct kp_svc_port *sp,
						    const uint8_t **ret_prefixes, size_t *ret_n);
/** kp_svc_port_equal - same content (used to drop changes that revert themselves) */
bool kp_svc_port_equal(const struct kp_svc_port *a, const struct kp_svc_port *b);

/**
 * kp_delta_is_full - the sync hands over every service port (first or periodic sync)
 */
bool kp_delta_is_full(const struct kp_delta *delta);

/**
 * kp_delta_foreach - walk the service ports changed since the last successful sync
 * @delta: delta
 * @fn: called with the old version (NULL if added) and the new one (NULL if removed);
 *      both borrowed for the call; a non-zero return stops the walk
 * Returns: 0 or what @fn returned. In a full delta every current port is walked too,
 * with @old equal to @new when it did not change.
 */
int kp_delta_foreach(const struct kp_delta *delta,
		     int (*fn)(const struct kp_svc_port *old, const struct kp_svc_port *new_sp,
			       void *userdata),
		     void *userdata);

/** kp_delta_get_size - number of changed service ports */
size_t kp_delta_get_size(const struct kp_delta *delta);

/* Text helpers. */
/** kp_addr_to_str - format @addr into @buf (KP_ADDR_STRLEN bytes); returns @buf */
char *kp_addr_to_str(const struct kp_addr *addr, char *buf, size_t size);
/** kp_addr_from_str - parse an IP literal; Returns: 0 or -EINVAL */
int kp_addr_from_str(const char *s, struct kp_addr *ret_addr);
/** kp_addr_equal - same family and address */
bool kp_addr_equal(const struct kp_addr *a, const struct kp_addr *b);
/** kp_addr_in_prefix - @addr lies in @net/@prefix (same family) */
bool kp_addr_in_prefix(const struct kp_addr *addr, const struct kp_addr *net, unsigned prefix);
/**
 * kp_addr_is_unspecified - @addr is 0.0.0.0 or ::
 * A NodePort frontend on it stands for every local address of its family (see
 * kp_ctx_set_nodeport_any_local()). Returns false for NULL.
 */
bool kp_addr_is_unspecified(const struct kp_addr *a);
/** kp_protocol_name - "TCP", "UDP", "SCTP" */
const char *kp_protocol_name(enum kp_protocol proto);
/** kp_frontend_kind_name - "ClusterIP", "NodePort", "ExternalIP", "LoadBalancer" */
const char *kp_frontend_kind_name(enum kp_frontend_kind kind);

#ifdef __cplusplus
}
#endif
#endif
