// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The nftables data plane's transaction layer against the kernel, in a network namespace
 * of its own (unshare; needs root): a refused transaction changes nothing and names the
 * refused message by its sequence number and object; a transaction built on a generation
 * someone else has moved on from is refused as a whole (-ERESTART); one built on the
 * current generation goes through, and the generation it answers is the new current one;
 * a transaction of several pages arrives whole.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "../../backends/nftables/nft.h"
#include "tap.h"

static void add_table(struct kp_nfb *b, const char *name, uint16_t type)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh = kp_nfb_msg(b, type, NFPROTO_IPV4,
					  type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0, 128);

	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nftnl_table_nlmsg_build_payload(nlh, t);
	kp_nfb_done(b, nlh);
	nftnl_table_free(t);
}

/* add (NFT_MSG_NEWCHAIN) or delete (NFT_MSG_DELCHAIN) chain @name of @table */
static void chain_msg(struct kp_nfb *b, uint16_t type, const char *table, const char *name)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh = kp_nfb_msg(b, type, NFPROTO_IPV4,
					  type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0, 512);

	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	kp_nfb_done(b, nlh);
	nftnl_chain_free(c);
}

static int count_chain(struct nftnl_chain *c, void *data)
{
	(void)c;
	(*(int *)data)++;
	return 0;
}

int main(void)
{
	struct kp_nft_sock s = { 0 };
	struct kp_nfb b = { 0 };
	uint32_t gen = 0, gen2 = 0, after = 0;
	char why[512] = "";
	int r, n_chains = 0;

	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root for a network namespace of its own\n");
		return 0;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		printf("Bail out! unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 1;
	}
	r = kp_nft_open(&s);
	ok(r == 0, "a netlink socket to nf_tables (%s)", strerror(-r));
	ok(kp_nft_getgen(&s, &gen) == 0, "the ruleset generation: %u", gen);
	ok(kp_nft_table_exists(&s, NFPROTO_IPV4, "t") == 0, "no table t yet");

	/* [add table t, add chain c, delete chain nope (missing), add chain d] */
	kp_nfb_begin(&b, s.seq, true, gen);
	add_table(&b, "t", NFT_MSG_NEWTABLE);
	chain_msg(&b, NFT_MSG_NEWCHAIN, "t", "c");
	chain_msg(&b, NFT_MSG_DELCHAIN, "t", "nope");
	chain_msg(&b, NFT_MSG_NEWCHAIN, "t", "d");
	s.seq = b.seq + 1;
	r = kp_nfb_commit(&s, &b, &after, why, sizeof(why));
	s.seq += 2;
	ok(r == -ENOENT, "a transaction with a missing chain's deletion is refused (%s)",
	   strerror(-r));
	ok(strstr(why, "message 3 of 4") && strstr(why, "delete chain nope") &&
	   strstr(why, "No such file"), "the refusal names message 3 of 4 and its object: %s",
	   why);
	ok(kp_nft_table_exists(&s, NFPROTO_IPV4, "t") == 0,
	   "and nothing of it was committed, not even the table before it");

	/* built on a generation someone else has moved on from */
	kp_nft_getgen(&s, &gen);
	kp_nfb_begin(&b, s.seq, true, gen);
	add_table(&b, "other", NFT_MSG_NEWTABLE);
	s.seq = b.seq + 1;
	r = kp_nfb_commit(&s, &b, &gen2, why, sizeof(why));
	s.seq += 2;
	ok(r == 0 && gen2 != gen, "a change in between (another program's) moves the generation (%u -> %u)",
	   gen, gen2);
	kp_nfb_begin(&b, s.seq, true, gen);
	add_table(&b, "t", NFT_MSG_NEWTABLE);
	s.seq = b.seq + 1;
	r = kp_nfb_commit(&s, &b, &after, why, sizeof(why));
	s.seq += 2;
	ok(r == -ERESTART, "a transaction built on the old generation is refused whole (%s)",
	   strerror(-r));
	ok(kp_nft_table_exists(&s, NFPROTO_IPV4, "t") == 0, "and commits nothing");

	/* on the current one, several pages (300 KiB and more) */
	kp_nft_getgen(&s, &gen);
	kp_nfb_begin(&b, s.seq, true, gen);
	add_table(&b, "t", NFT_MSG_NEWTABLE);
	for (int i = 0; i < 3000; i++) {
		char name[200];

		snprintf(name, sizeof(name), "chain-%04d-%0150d", i, i);
		chain_msg(&b, NFT_MSG_NEWCHAIN, "t", name);
	}
	ok(b.n_pages > 1, "a transaction of %zu bytes spans %zu pages", b.size, b.n_pages);
	why[0] = 0;
	s.seq = b.seq + 1;
	r = kp_nfb_commit(&s, &b, &after, why, sizeof(why));
	s.seq += 2;
	ok(r == 0, "it goes through (%s)", why);
	kp_nft_getgen(&s, &gen2);
	ok(after == gen2 && after != gen, "the generation it answers is the current one (%u)",
	   after);
	r = kp_nft_dump_chains(&s, NFPROTO_IPV4, "t", count_chain, &n_chains);
	ok(r == 0 && n_chains == 3000, "all %d chains arrived, in one transaction", n_chains);
	kp_nfb_free(&b);
	kp_nft_close(&s);
	return tap_done();
}
