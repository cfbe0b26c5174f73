/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The API-server source: where the API server is and how to authenticate to it
 * (kubeconfig, in-cluster), and a list/watch client that feeds Services, EndpointSlices
 * and this node's Node into a context. One libcurl multi handle, no threads: the caller
 * polls kp_api_fd() with kp_api_timeout_ms() and calls kp_api_process().
 */
#ifndef KPROXY_API_H
#define KPROXY_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kproxy/kproxy.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Where and how to reach the API server. Every string is owned by the struct (malloc'd)
 * and may be NULL; kp_api_auth_clear() frees them.
 */
struct kp_api_auth {
	char *server;		/* "https://host:port" (any path prefix kept, no trailing '/') */
	char *ca_file;		/* certificate-authority: PEM file */
	char *ca_data;		/* certificate-authority-data, decoded: PEM text */
	char *cert_file;	/* client-certificate: PEM file */
	char *cert_data;	/* client-certificate-data, decoded: PEM text */
	char *key_file;		/* client-key: PEM file */
	char *key_data;		/* client-key-data, decoded: PEM text */
	char *token;		/* bearer token */
	char *token_file;	/* tokenFile: re-read when it changes (rotation) */
	char *tls_server_name;	/* tls-server-name: name the server certificate must carry */
	bool insecure;		/* insecure-skip-tls-verify: true only when explicitly set */
};

/**
 * kp_api_auth_from_kubeconfig - read a kubeconfig file (YAML or JSON)
 * @path: the file
 * @context: the context to use, or NULL for current-context
 * @ret: filled on success (cleared first); relative file paths in the kubeconfig are
 *       resolved against the kubeconfig's directory, as kubectl does
 * @err: on failure, a message naming the file and the field at fault
 * Returns: 0, or -ENOENT (file, context, cluster or user missing), -EINVAL (a field of the
 * wrong type or a bad base64 value), -ENOTSUP (exec, auth-provider or basic-auth users),
 * -ENOMEM, or the errno of reading the file.
 */
int kp_api_auth_from_kubeconfig(const char *path, const char *context, struct kp_api_auth *ret,
				char *err, size_t err_size);

/**
 * kp_api_auth_in_cluster - the in-cluster configuration of a pod
 * @sa_dir: the service-account directory holding "token" and "ca.crt", or NULL for
 *          /var/run/secrets/kubernetes.io/serviceaccount
 * Reads KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (an IPv6 host is bracketed);
 * the token is given as token_file (so rotation is followed), the CA as ca_file.
 * Returns: 0, -ENOENT when the variables or files are missing, or the errno of a file
 * that cannot be read (-EACCES, ...); @err says which.
 */
int kp_api_auth_in_cluster(const char *sa_dir, struct kp_api_auth *ret, char *err,
			   size_t err_size);

/* Frees the strings of @a and zeroes it. */
void kp_api_auth_clear(struct kp_api_auth *a);

/* ---- the list/watch client ---- */

struct kp_api;

/* What the client has been through, for metrics. */
struct kp_api_stats {
	uint64_t n_lists;		/* full lists completed (every resource) */
	uint64_t n_relists;		/* of which after 410 Gone / "too old resource version" */
	uint64_t n_watches;		/* watch requests started */
	uint64_t n_watch_restarts;	/* watches that ended in an error and were restarted */
	uint64_t n_events;		/* watch events applied */
	uint64_t n_errors;		/* failed requests: transport, TLS, HTTP status, bad data */
};

/**
 * kp_api_new - start listing and watching
 * @ctx: the context the objects go into; each object is its own source
 *       ("api:<resource>/<namespace>/<name>") in kp_ctx_load() terms
 * @auth: the server and credentials (copied)
 * @node_name: this node: its Node object is watched for the topology zone label
 * @watch_timeout_s: timeoutSeconds asked of every watch (0: 300)
 * Services and EndpointSlices are listed and watched with kube-proxy's label selector
 * (no service-proxy-name label, no headless label), applied by the server.
 * Returns: 0 and *@ret, -EINVAL, -ENOMEM, or -EIO if libcurl cannot start.
 */
int kp_api_new(struct kp_ctx *ctx, const struct kp_api_auth *auth, const char *node_name,
	       unsigned watch_timeout_s, struct kp_api **ret);

/**
 * kp_api_set_watch_stall_timeout - how long a watch may stay silent
 * @api: the client
 * @ms: the bound, in milliseconds (0: the default, 90 s)
 *
 * A watch that delivers no byte at all (no event, no bookmark) for @ms is taken for a dead
 * connection: it is abandoned, logged, and watched again from the last resourceVersion
 * seen (not a re-list; the context keeps every object). The API server sends a bookmark
 * about once a minute to a watch that asked for them, so the bound should stay above a
 * minute except in tests. Takes effect for every watch started or running.
 * Returns: 0, or -EINVAL when @api is NULL or @ms is over a day.
 */
int kp_api_set_watch_stall_timeout(struct kp_api *api, unsigned ms);

/**
 * kp_api_set_watch_service_cidrs - also list and watch ServiceCIDR objects
 * (networking.k8s.io/v1 servicecidrs), which kp_ctx_get_service_cidrs() then gives
 * @api: the client, before its first request
 * @watch: whether to (the default is not to)
 * An API server that does not serve them (HTTP 404: before Kubernetes 1.33, or with the
 * MultiCIDRServiceAllocator gate off) is logged once and not asked again. They do not hold
 * back the first sync (kp_api_synced()).
 * Returns: 0, or -EINVAL when @api is NULL or already asked for them.
 */
int kp_api_set_watch_service_cidrs(struct kp_api *api, bool watch);

/* A descriptor to poll for input; call kp_api_process() when it is readable. */
int kp_api_fd(const struct kp_api *api);

/* Milliseconds until kp_api_process() must run even without input; -1: no deadline. */
int64_t kp_api_timeout_ms(const struct kp_api *api);

/* Moves transfers along, applies what arrived, restarts what ended. Returns 0. */
int kp_api_process(struct kp_api *api);

/* Whether the first full lists of Services and EndpointSlices have arrived: until then
 * the context holds a partial view and nothing should be programmed. */
bool kp_api_synced(const struct kp_api *api);

/**
 * kp_api_node_eligible - whether this node should get load-balancer traffic, as
 * kube-proxy's /healthz reports it (nodeEligible)
 * @api: the client, or NULL (no API server: eligible)
 *
 * True until this node's Node object is seen with a metadata.deletionTimestamp, with a
 * taint whose key is ToBeDeletedByClusterAutoscaler, or deleted; true again when a later
 * version has neither. A node whose Node object was never seen is eligible.
 */
bool kp_api_node_eligible(const struct kp_api *api);

/**
 * kp_api_node_pod_cidrs - this node's pod ranges (the Node's spec.podCIDRs, or its older
 * spec.podCIDR), comma separated, as kube-proxy's --detect-local-mode NodeCIDR takes them
 * Returns: borrowed until the next kp_api_process(), or NULL while the Node has none
 * (or has not been seen).
 */
const char *kp_api_node_pod_cidrs(const struct kp_api *api);

void kp_api_get_stats(const struct kp_api *api, struct kp_api_stats *ret);

/* Stops every transfer; objects stay in the context. */
void kp_api_free(struct kp_api *api);

#ifdef __cplusplus
}
#endif

#endif
