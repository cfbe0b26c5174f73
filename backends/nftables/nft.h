/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The nftables data plane's netlink side: one transaction (a batch of nf_tables messages,
 * built with libnftnl, sent in one sendmsg over libmnl) with a description per message so
 * that a refused one is named by its sequence number; the ruleset generation; dumps of a
 * table's chains, rules and set elements; and the rule expressions kube-proxy's layout
 * uses, as small builders over struct nftnl_rule.
 */
#ifndef KP_NFT_H
#define KP_NFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

/* A page of a transaction: messages never straddle two (sent as one iovec each). */
struct kp_nfb_page {
	char *buf;
	size_t len, cap;
};

struct kp_nfb {
	struct kp_nfb_page *pages;	/* the last one is being filled */
	size_t n_pages, cap_pages;
	size_t size;			/* bytes in all pages */
	uint32_t seq0, seq;		/* the batch-begin's sequence number, the next one */
	uint32_t next_set_id;		/* transaction ids of the sets this batch creates */
	size_t n_msgs;			/* messages between begin and end */
	bool oom;
};

/* Starts a batch; @genid: the generation it is built on (the kernel refuses the batch with
 * -ERESTART when the ruleset changed since), or 0 for no check. */
void kp_nfb_begin(struct kp_nfb *b, uint32_t seq, bool check_gen, uint32_t genid);
void kp_nfb_free(struct kp_nfb *b);
/* A message header of @type (NFT_MSG_*) with room for @room payload bytes; NULL when out
 * of memory (the batch then fails at send). The payload must be built before the next
 * call. A message the kernel refuses is described from its own bytes. */
struct nlmsghdr *kp_nfb_msg(struct kp_nfb *b, uint16_t type, uint16_t family, uint16_t flags,
			    size_t room);
/* Ends the message started last (after its payload is built). */
void kp_nfb_done(struct kp_nfb *b, struct nlmsghdr *nlh);

struct kp_nft_sock {
	struct mnl_socket *nl;
	uint32_t portid, seq;
	size_t sndbuf;
	char *rbuf;			/* answers are read into it */
};

int kp_nft_open(struct kp_nft_sock *s);
void kp_nft_close(struct kp_nft_sock *s);
/* 1 when table @name of @family exists, 0 when not, or a negative errno. */
int kp_nft_table_exists(struct kp_nft_sock *s, int family, const char *name);
/* The current ruleset generation. */
int kp_nft_getgen(struct kp_nft_sock *s, uint32_t *ret_gen);
/*
 * Sends the batch (ending it) and waits for the kernel's answer. Returns 0, or the first
 * error; then @why (of @why_size bytes) names the refused message: "message 12 of 40 (add
 * chain service-…): No such file or directory". On success *ret_gen is the generation
 * after it (the batch's own).
 */
int kp_nfb_commit(struct kp_nft_sock *s, struct kp_nfb *b, uint32_t *ret_gen, char *why,
		  size_t why_size);

/* Dumps: @cb is called with each parsed object of @table (family @family); the object is
 * freed after the call. */
int kp_nft_dump_chains(struct kp_nft_sock *s, int family, const char *table,
		       int (*cb)(struct nftnl_chain *c, void *data), void *data);
int kp_nft_dump_rules(struct kp_nft_sock *s, int family, const char *table, const char *chain,
		      int (*cb)(struct nftnl_rule *r, void *data), void *data);
int kp_nft_dump_sets(struct kp_nft_sock *s, int family, const char *table,
		     int (*cb)(struct nftnl_set *set, void *data), void *data);
/* The elements of one set, in one nftnl_set (@cb's). */
int kp_nft_dump_elems(struct kp_nft_sock *s, int family, const char *table, const char *set,
		      int (*cb)(struct nftnl_set *set, void *data), void *data);

/* ---- expressions (registers as nft uses them: 1 = the 128-bit reg 1, 9.. = 32-bit) ---- */
#define KP_REG(n32)	((n32) == 0 ? NFT_REG_1 : NFT_REG32_00 + (n32))	/* nth 32-bit word */

void kp_nx_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len,
		   uint32_t dreg);
void kp_nx_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg);
void kp_nx_meta_set(struct nftnl_rule *r, uint32_t key, uint32_t sreg);
void kp_nx_cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data,
	       uint32_t len);
void kp_nx_bitwise(struct nftnl_rule *r, uint32_t reg, uint32_t len, const void *mask,
		   const void *xor);
void kp_nx_lookup(struct nftnl_rule *r, uint32_t sreg, int dreg, const char *set,
		  uint32_t set_id, bool inv);
void kp_nx_verdict(struct nftnl_rule *r, int code, const char *chain);
void kp_nx_imm(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len);
void kp_nx_ct(struct nftnl_rule *r, uint32_t key, uint32_t dreg);
void kp_nx_fib(struct nftnl_rule *r, uint32_t flags, uint32_t result, uint32_t dreg);
void kp_nx_numgen(struct nftnl_rule *r, uint32_t mod, uint32_t dreg);
void kp_nx_dnat(struct nftnl_rule *r, int family, uint32_t reg_addr, uint32_t reg_proto);
void kp_nx_masq(struct nftnl_rule *r, uint32_t flags);
void kp_nx_reject(struct nftnl_rule *r, int family);
void kp_nx_dynset_update(struct nftnl_rule *r, uint32_t sreg, const char *set);
void kp_nx_comment(struct nftnl_rule *r, const char *comment);

/* nft's data type numbers (for `nft list` to print keys), and their concatenation */
enum {
	KP_NT_VERDICT = 1, KP_NT_INTEGER = 4, KP_NT_IPADDR = 7, KP_NT_IP6ADDR = 8,
	KP_NT_INETPROTO = 12, KP_NT_INETSERVICE = 13,
};
#define KP_NT_CONCAT(a, b)	(((a) << 6) | (b))

#endif
