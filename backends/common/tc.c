// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The two operation tables: libiptc's functions for IPv4, libip6tc's for IPv6, with thin
 * wrappers where their entry types differ.
 */
#include <libiptc/libip6tc.h>
#include <libiptc/libiptc.h>

#include "tc.h"

#define WRAP(pfx, entry)                                                                    \
	static int pfx##_append(const char *c, const void *e, struct xtc_handle *h)         \
	{                                                                                   \
		return pfx##_append_entry(c, (const entry *)e, h);                          \
	}                                                                                   \
	static int pfx##_insert(const char *c, const void *e, unsigned n, struct xtc_handle *h) \
	{                                                                                   \
		return pfx##_insert_entry(c, (const entry *)e, n, h);                       \
	}                                                                                   \
	static const void *pfx##_first(const char *c, struct xtc_handle *h)                  \
	{                                                                                   \
		return pfx##_first_rule(c, h);                                              \
	}                                                                                   \
	static const void *pfx##_next(const void *e, struct xtc_handle *h)                   \
	{                                                                                   \
		return pfx##_next_rule((const entry *)e, h);                                \
	}                                                                                   \
	static const char *pfx##_target(const void *e, struct xtc_handle *h)                 \
	{                                                                                   \
		return pfx##_get_target((const entry *)e, h);                               \
	}

WRAP(iptc, struct ipt_entry)
WRAP(ip6tc, struct ip6t_entry)

const struct kp_tc_ops kp_tc_ipv4 = {
	.family = AF_INET,
	.tool = "iptables",
	.init = iptc_init,
	.free = iptc_free,
	.is_chain = iptc_is_chain,
	.create_chain = iptc_create_chain,
	.flush_entries = iptc_flush_entries,
	.delete_chain = iptc_delete_chain,
	.append_entry = iptc_append,
	.insert_entry = iptc_insert,
	.delete_num_entry = iptc_delete_num_entry,
	.first_chain = iptc_first_chain,
	.next_chain = iptc_next_chain,
	.first_rule = iptc_first,
	.next_rule = iptc_next,
	.get_target = iptc_target,
	.commit = iptc_commit,
	.strerror = iptc_strerror,
};

const struct kp_tc_ops kp_tc_ipv6 = {
	.family = AF_INET6,
	.tool = "ip6tables",
	.init = ip6tc_init,
	.free = ip6tc_free,
	.is_chain = ip6tc_is_chain,
	.create_chain = ip6tc_create_chain,
	.flush_entries = ip6tc_flush_entries,
	.delete_chain = ip6tc_delete_chain,
	.append_entry = ip6tc_append,
	.insert_entry = ip6tc_insert,
	.delete_num_entry = ip6tc_delete_num_entry,
	.first_chain = ip6tc_first_chain,
	.next_chain = ip6tc_next_chain,
	.first_rule = ip6tc_first,
	.next_rule = ip6tc_next,
	.get_target = ip6tc_target,
	.commit = ip6tc_commit,
	.strerror = ip6tc_strerror,
};
