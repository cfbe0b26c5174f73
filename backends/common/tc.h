/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libiptc and libip6tc behind one table of operations, so the data planes render and read
 * both families with the same code; fasttc.c offers the same operations without libiptc.
 * Entries are passed as void pointers: struct ipt_entry for IPv4, struct ip6t_entry for
 * IPv6.
 */
#ifndef KP_IPT_TC_H
#define KP_IPT_TC_H

#include <libiptc/xtcshared.h>

struct kp_tc_ops {
	int family;
	const char *tool;	/* "iptables" or "ip6tables", for messages */
	struct xtc_handle *(*init)(const char *table);
	void (*free)(struct xtc_handle *h);
	int (*is_chain)(const char *chain, struct xtc_handle *const h);
	int (*create_chain)(const xt_chainlabel chain, struct xtc_handle *h);
	int (*flush_entries)(const xt_chainlabel chain, struct xtc_handle *h);
	int (*delete_chain)(const xt_chainlabel chain, struct xtc_handle *h);
	int (*append_entry)(const char *chain, const void *e, struct xtc_handle *h);
	int (*insert_entry)(const char *chain, const void *e, unsigned num, struct xtc_handle *h);
	int (*delete_num_entry)(const xt_chainlabel chain, unsigned num, struct xtc_handle *h);
	const char *(*first_chain)(struct xtc_handle *h);
	const char *(*next_chain)(struct xtc_handle *h);
	const void *(*first_rule)(const char *chain, struct xtc_handle *h);
	const void *(*next_rule)(const void *prev, struct xtc_handle *h);
	const char *(*get_target)(const void *e, struct xtc_handle *h);
	int (*commit)(struct xtc_handle *h);
	const char *(*strerror)(int err);
	/* optional (NULL for libiptc, where the backend keeps a set of names instead):
	 * use_chain creates @chain or flushes it the first time it is used in this
	 * handle's life and returns 1, returns 2 when it was already used, 0 on error;
	 * is_used tells whether use_chain was called for it */
	int (*use_chain)(const char *chain, struct xtc_handle *h);
	int (*is_used)(const char *chain, struct xtc_handle *h);
};

extern const struct kp_tc_ops kp_tc_ipv4, kp_tc_ipv6;
/* fasttc.c: the same operations without libiptc, for syncs */
extern const struct kp_tc_ops kp_tc_fast_ipv4, kp_tc_fast_ipv6;
/* Whether @table of @family can be read (IPT_SO_GET_INFO only): 0 or -errno. */
int kp_tc_fast_probe(int family, const char *table);

#endif
