/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared inside lib/ only: the export macro, a string-keyed hash map, the decoded
 * object model (what a Service, EndpointSlice or Endpoints object says once validated),
 * the decoder and the sink it reports to, the store's entry for already-parsed documents
 * (kp_ctx_load_json(), for the sources), diagnostics and logging, and the desired
 * state's internal calls. The context's own struct is in ctx-internal.h.
 */
#ifndef KP_INTERNAL_H
#define KP_INTERNAL_H

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kproxy/kproxy.h"
#include "kpyaml.h"

#define KP_EXPORT __attribute__((visibility("default")))
#define KP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define KP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- hash map: string keys (copied), void * values (not owned) ---- */
struct kp_map;
struct kp_map_iter {
	size_t bucket;		/* zero to start */
};
struct kp_map *kp_map_new(void);
void kp_map_free(struct kp_map *map);
size_t kp_map_size(const struct kp_map *map);
void *kp_map_get(const struct kp_map *map, const char *key);
/* Inserts or replaces; *ret_old gets the replaced value (or NULL). -ENOMEM on failure. */
int kp_map_put(struct kp_map *map, const char *key, void *value, void **ret_old);
/* Removes and returns the value, or NULL. */
void *kp_map_del(struct kp_map *map, const char *key);
/* Iteration; the map must not change during it except kp_map_del() of the current key. */
bool kp_map_next(const struct kp_map *map, struct kp_map_iter *it, const char **ret_key,
		 void **ret_value);
/* Gives back the slots of a map that shrank to under an eighth of them (walks cost the
 * slots, not the entries): call it where no iteration is under way. */
void kp_map_compact(struct kp_map *map);
/* Keys in strcmp order; caller frees the array (not the strings, borrowed from the map). */
const char **kp_map_sorted_keys(const struct kp_map *map, size_t *ret_n);

/* ---- small helpers ---- */
/*
 * Reads a whole file of at most @max bytes into a NUL-terminated buffer (caller frees).
 * Returns 0, -EFBIG if it is longer, -ENOMEM, or the errno of opening or reading it.
 */
int kp_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_size);
char *kp_strdup(const char *s);			/* NULL on ENOMEM; NULL in gives "" */
char *kp_asprintf(const char *fmt, ...) KP_PRINTF(1, 2);	/* NULL on ENOMEM */
int kp_addr_cmp(const struct kp_addr *a, const struct kp_addr *b);
/* Parse "a.b.c.d/n" or "x::/n". Returns 0 or -EINVAL. */
int kp_cidr_from_str(const char *s, struct kp_addr *ret_addr, uint8_t *ret_prefix);
/*
 * Whether @token can go in an "Authorization: Bearer" header: visible ASCII only (no
 * space, control byte or line break that would end or split the header). Otherwise false,
 * with *ret_off the offset of the first byte that may not be there (for a message that
 * names where, never the token).
 */
bool kp_token_valid(const char *token, size_t *ret_off);
/* Writes @value to /proc/sys/@path ("net/ipv4/ip_forward"). Returns 0 or -errno. */
int kp_sysctl_set(const char *path, const char *value);
/*
 * Parse a comma-separated CIDR list ("10.0.0.0/8,fd00::/64") into @v, keeping the first
 * @max (@v may be NULL to count them); *ret_n is how many the list has. Returns 0, or
 * -EINVAL with *ret_bad (may be NULL) pointing at the entry that does not parse.
 */
int kp_cidr_list_parse(const char *list, struct kp_cidr *v, size_t max, size_t *ret_n,
		       const char **ret_bad);

/* ---- backend options (options.c) ---- */
struct kp_opts;
/*
 * Checks @settings against @ops's option table and fills the backend's options struct,
 * defaults applied. Returns 0 and *@ret, -EINVAL (why: in @err) or -ENOMEM.
 */
int kp_opts_new(const struct kp_backend_ops *ops, const struct kp_setting *settings,
		size_t n_settings, struct kp_opts **ret, char *err, size_t err_size);
/* The filled struct (NULL when the backend declares none); valid until kp_opts_free(). */
const void *kp_opts_data(const struct kp_opts *o);
int kp_opts_foreach(const struct kp_opts *o,
		    int (*fn)(const struct kp_option *opt, const char *value, void *userdata),
		    void *userdata);
void kp_opts_free(struct kp_opts *o);		/* accepts NULL */

/* ---- decoded objects ---- */
enum kp_obj_kind {
	KP_OBJ_SERVICE,
	KP_OBJ_SLICE,
	KP_OBJ_ENDPOINTS,
	KP_OBJ_SERVICE_CIDR,	/* networking.k8s.io ServiceCIDR: cluster-wide, no service */
	_KP_OBJ_MAX
};

struct kp_svc_obj_port {
	char *name;			/* "" if unnamed */
	enum kp_protocol proto;
	uint16_t port;
	uint16_t node_port;		/* 0 if none */
};

struct kp_svc_obj {
	bool skip;			/* headless, ExternalName, proxy-name label, no cluster IP */
	struct kp_addr *cluster_ips;	/* clusterIPs, primary first */
	size_t n_cluster_ips;
	struct kp_svc_obj_port *ports;
	size_t n_ports;
	struct kp_addr *external_ips;
	size_t n_external_ips;
	struct kp_addr *lb_ips;		/* status.loadBalancer.ingress[].ip, ipMode Proxy left out */
	size_t n_lb_ips;
	struct kp_addr *src_ranges;	/* loadBalancerSourceRanges */
	uint8_t *src_prefixes;
	size_t n_src_ranges;
	enum kp_affinity affinity;
	uint32_t affinity_timeout;	/* seconds */
	bool etp_local;
	bool itp_local;
	uint16_t hc_node_port;
};

struct kp_slice_obj_port {
	char *name;			/* "" if unnamed */
	enum kp_protocol proto;
	uint16_t port;
};

struct kp_slice_obj_ep {
	struct kp_addr addr;		/* addresses[0] */
	bool ready, serving, terminating;
	char *node_name;		/* NULL if unset */
	char **hint_zones;		/* hints.forZones[].name */
	size_t n_hint_zones;
	char **hint_nodes;		/* hints.forNodes[].name (PreferSameNode) */
	size_t n_hint_nodes;
};

struct kp_slice_obj {
	int family;			/* AF_INET, AF_INET6, or 0 for FQDN (ignored) */
	struct kp_slice_obj_port *ports;
	size_t n_ports;
	struct kp_slice_obj_ep *eps;
	size_t n_eps;
};

/* A decoded object. EndpointSlices and legacy Endpoints both become slices. */
struct kp_obj {
	enum kp_obj_kind kind;
	char *key;			/* "<kind letter>/ns/name", unique per kind */
	char *ns;
	char *name;
	char *service;			/* "ns/name" of the service it belongs to */
	char *source;			/* owning source (borrowed from the store's source) */
	struct kp_svc_obj svc;		/* KP_OBJ_SERVICE */
	struct kp_slice_obj *slices;	/* KP_OBJ_SLICE: one; KP_OBJ_ENDPOINTS: one per subset */
	size_t n_slices;
	int64_t trigger_ms;		/* endpoints.kubernetes.io/last-change-trigger-time, 0 */
	struct kp_cidr *cidrs;		/* KP_OBJ_SERVICE_CIDR: spec.cidrs */
	size_t n_cidrs;
};

void kp_obj_free(struct kp_obj *obj);

const char *kp_obj_kind_name(enum kp_obj_kind kind);

/* A growable array of decoded objects. */
struct kp_objvec {
	struct kp_obj **v;
	size_t n, cap;
	char **rejected;		/* keys of objects rejected by the decoder */
	size_t n_rejected, cap_rejected;
};
int kp_objvec_push(struct kp_objvec *vec, struct kp_obj *obj);
void kp_objvec_clear(struct kp_objvec *vec);

/*
 * Where a decoder reports, chosen by its caller: @diag gets each rejected object or
 * document (the strings are borrowed for the call), @debug a debug line (may be NULL).
 */
struct kp_diag_sink {
	void (*diag)(void *userdata, const struct kp_diag *diag);
	void (*debug)(void *userdata, const char *msg);
	void *userdata;
};

/*
 * Decode a parsed document (one object or a list) into @out. Bad objects are reported
 * to @sink and skipped. Returns 0 or -ENOMEM.
 */
int kp_decode_json(const struct kp_diag_sink *sink, const char *source, json_t *root,
		   struct kp_objvec *out);

/*
 * kp_ctx_load() of a document already parsed (store.c): decodes @root (borrowed; the
 * caller still owns it) and replaces what @source held, exactly as kp_ctx_load() does.
 * For sources that parse their own input (the API source's list pages and watch events),
 * so that no object is printed back to text to be parsed again.
 * Returns the number of objects accepted, or -ENOMEM.
 */
int kp_ctx_load_json(struct kp_ctx *ctx, const char *source, json_t *root);

/* ---- the API source's watch stream (sources/apiserver.c) ---- */
struct kp_api;
/*
 * Hands @size bytes of a watch stream of @resource ("services", "endpointslices",
 * "nodes") to @api exactly as libcurl's write callback hands them when a watch answered
 * 200: complete lines are applied as events, an unfinished tail is kept for the next
 * call. The seam the watch-stream fuzz target drives (tests/fuzz/fuzz-watch.c); @api
 * must have no transfer of @resource in flight. Returns 0; -ESTALE (an ERROR 410 event),
 * -EBADMSG (a line that is not an event, an ERROR event) or -EIO (over the size limit,
 * no memory) when the stream would end there, its tail then dropped as a new watch
 * starts clean; -EINVAL for an unknown @resource, -EBUSY with a transfer in flight.
 */
int kp_api_watch_feed(struct kp_api *api, const char *resource, const char *data, size_t size);

/* ---- diagnostics and logging ---- */
void kp_ctx_diag(struct kp_ctx *ctx, const char *source, const char *kind, const char *ns,
		 const char *name, const char *field, const char *fmt, ...) KP_PRINTF(7, 8);
void kp_log(const struct kp_ctx *ctx, enum kp_log_level level, const char *fmt, ...)
	KP_PRINTF(3, 4);

extern const struct kp_backend_ops kp_backend_dryrun;
extern const struct kp_backend_ops kp_backend_iptables;
extern const struct kp_backend_ops kp_backend_ipvs;
extern const struct kp_backend_ops kp_backend_nftables;
/* The dump entry the desired state has for frontend @fe of @sp (its endpoint set); what
 * the dryrun data plane reports, and what kp_ctx_check() compares with. */
void kp_dump_entry_of(const struct kp_svc_port *sp, const struct kp_frontend *fe,
		      struct kp_dump_entry *ret);
extern const struct kp_backend_ops kp_backend_userspace;
/* those configure selects (the DPDK data plane), NULL-terminated */
extern const struct kp_backend_ops *const kp_extra_backends[];

/* ---- desired state (state.c) ---- */
struct kp_state *kp_state_new(void);
void kp_state_free(struct kp_state *state);
struct kp_delta *kp_delta_new(void);
void kp_delta_free(struct kp_delta *delta);
void kp_delta_set_full(struct kp_delta *delta, bool full);
void kp_delta_clear(struct kp_delta *delta);
void kp_delta_bind(struct kp_delta *delta, const struct kp_state *state);

/* Inputs to compute a service's ports. */
struct kp_node_info {
	const char *name;		/* this node, or NULL */
	const char *zone;		/* this node's zone, or NULL */
	const struct kp_addr *nodeport_addrs;
	size_t n_nodeport_addrs;
	const bool *nodeport_any_local;	/* [0] IPv4, [1] IPv6: one frontend on the
					 * unspecified address instead of the listed ones */
};

/*
 * Recompute the service ports of one service (@svc NULL: the service is gone) from its
 * slices, replace them in @state and record the differences in @delta.
 * Returns 0 or -ENOMEM (then @state and @delta are unchanged).
 */
int kp_state_update_service(struct kp_state *state, struct kp_delta *delta, const char *svc_key,
			    const struct kp_obj *svc, const struct kp_obj *const *slices,
			    size_t n_slices, const struct kp_node_info *node);
#endif
