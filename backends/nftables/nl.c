// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * nf_tables over netlink for the nftables data plane: transactions built into one growing
 * buffer and sent in one sendmsg (the kernel applies all or nothing), their answer read
 * until the generation request sent behind them is answered, errors named by sequence
 * number; the generation id; dumps; and the expression builders the rules use.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netlink.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/udata.h>

#include "nft.h"

#define HDR_ROOM 256		/* a message header and its fixed attributes */
#define RBUF_SIZE (128 * 1024)	/* answers and dumps are read this much at a time */

static bool grow(void **p, size_t *cap, size_t need, size_t unit)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * unit);
	if (!q)
		return false;
	*p = q;
	*cap = n;
	return true;
}

#define PAGE_SIZE_MIN (256 * 1024)

/* Room for @need more bytes in the last page (a new page when it has not). */
static char *room_for(struct kp_nfb *b, size_t need)
{
	struct kp_nfb_page *p = b->n_pages ? &b->pages[b->n_pages - 1] : NULL;

	if (b->oom)
		return NULL;
	if (!p || p->len + need > p->cap) {
		size_t cap = need > PAGE_SIZE_MIN ? need : PAGE_SIZE_MIN;

		if (!grow((void **)&b->pages, &b->cap_pages, b->n_pages + 1, sizeof(*b->pages))) {
			b->oom = true;
			return NULL;
		}
		p = &b->pages[b->n_pages];
		p->buf = malloc(cap);
		if (!p->buf) {
			b->oom = true;
			return NULL;
		}
		p->len = 0;
		p->cap = cap;
		b->n_pages++;
	}
	return p->buf + p->len;
}

static void pages_free(struct kp_nfb *b)
{
	for (size_t i = 0; i < b->n_pages; i++)
		free(b->pages[i].buf);
	b->n_pages = 0;
	b->size = 0;
}

void kp_nfb_begin(struct kp_nfb *b, uint32_t seq, bool check_gen, uint32_t genid)
{
	struct nlmsghdr *nlh;
	char *at;

	pages_free(b);
	b->n_msgs = 0;
	b->next_set_id = 1;
	b->oom = false;
	b->seq0 = b->seq = seq;
	at = room_for(b, HDR_ROOM);
	if (!at)
		return;
	nlh = nftnl_batch_begin(at, b->seq++);
	if (check_gen)
		mnl_attr_put_u32(nlh, NFNL_BATCH_GENID, htonl(genid));
	b->pages[b->n_pages - 1].len += NLMSG_ALIGN(nlh->nlmsg_len);
	b->size += NLMSG_ALIGN(nlh->nlmsg_len);
}

void kp_nfb_free(struct kp_nfb *b)
{
	pages_free(b);
	free(b->pages);
	memset(b, 0, sizeof(*b));
}

struct nlmsghdr *kp_nfb_msg(struct kp_nfb *b, uint16_t type, uint16_t family, uint16_t flags,
			    size_t room)
{
	char *at = room_for(b, HDR_ROOM + room + 64);

	if (!at)
		return NULL;
	b->n_msgs++;
	return nftnl_nlmsg_build_hdr(at, type, family, flags, b->seq++);
}

void kp_nfb_done(struct kp_nfb *b, struct nlmsghdr *nlh)
{
	if (nlh) {
		b->pages[b->n_pages - 1].len += NLMSG_ALIGN(nlh->nlmsg_len);
		b->size += NLMSG_ALIGN(nlh->nlmsg_len);
	}
}

int kp_nft_open(struct kp_nft_sock *s)
{
	int one = 1, rcv = 4 << 20;

	s->rbuf = malloc(RBUF_SIZE);
	if (!s->rbuf)
		return -ENOMEM;
	s->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!s->nl) {
		int r = -errno;

		free(s->rbuf);
		s->rbuf = NULL;
		return r;
	}
	if (mnl_socket_bind(s->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int r = -errno;

		mnl_socket_close(s->nl);
		s->nl = NULL;
		free(s->rbuf);
		s->rbuf = NULL;
		return r;
	}
	s->portid = mnl_socket_get_portid(s->nl);
	s->seq = 1;
	s->sndbuf = 0;
	/* errors come back without the message they answer, with the kernel's reason */
	mnl_socket_setsockopt(s->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(s->nl, NETLINK_EXT_ACK, &one, sizeof(one));
	if (setsockopt(mnl_socket_get_fd(s->nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)))
		setsockopt(mnl_socket_get_fd(s->nl), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	return 0;
}

void kp_nft_close(struct kp_nft_sock *s)
{
	if (s->nl)
		mnl_socket_close(s->nl);
	s->nl = NULL;
	free(s->rbuf);
	s->rbuf = NULL;
}

/* The kernel takes a message (a batch: one skb) whole: the send buffer must hold it. */
static void ensure_sndbuf(struct kp_nft_sock *s, size_t len)
{
	int size = len > (1u << 30) ? 1 << 30 : (int)len + 4096;
	int fd = mnl_socket_get_fd(s->nl);

	if (len <= s->sndbuf)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	s->sndbuf = len;
}

static int send_all(struct kp_nft_sock *s, const void *buf, size_t len)
{
	ensure_sndbuf(s, len);
	return mnl_socket_sendto(s->nl, buf, len) < 0 ? -errno : 0;
}

static uint32_t gen_request(struct kp_nft_sock *s, char *buf)
{
	uint32_t seq = s->seq++;

	nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, 0, seq);
	return seq;
}

/* The generation reply to @gen_seq in @nlh, or -1. */
static int64_t gen_of(const struct nlmsghdr *nlh, uint32_t gen_seq)
{
	struct nftnl_gen *g;
	int64_t id = -1;

	if (nlh->nlmsg_seq != gen_seq ||
	    (nlh->nlmsg_type & 0xff) != NFT_MSG_NEWGEN)
		return -1;
	g = nftnl_gen_alloc();
	if (g && nftnl_gen_nlmsg_parse(nlh, g) == 0)
		id = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
	nftnl_gen_free(g);
	return id;
}

/* "add rule to chain X" for the message of sequence @seq in @b's pages, or "". */
static void describe(const struct kp_nfb *b, uint32_t seq, char *out, size_t size)
{
	static const struct {
		uint8_t type;
		const char *verb, *what;
		int attr;		/* the name attribute (table-relative) */
	} kinds[] = {
		{ NFT_MSG_NEWTABLE, "add", "table", NFTA_TABLE_NAME },
		{ NFT_MSG_DELTABLE, "delete", "table", NFTA_TABLE_NAME },
		{ NFT_MSG_NEWCHAIN, "add", "chain", NFTA_CHAIN_NAME },
		{ NFT_MSG_DELCHAIN, "delete", "chain", NFTA_CHAIN_NAME },
		{ NFT_MSG_NEWRULE, "add a rule to", "chain", NFTA_RULE_CHAIN },
		{ NFT_MSG_DELRULE, "flush", "chain", NFTA_RULE_CHAIN },
		{ NFT_MSG_NEWSET, "add", "set", NFTA_SET_NAME },
		{ NFT_MSG_DELSET, "delete", "set", NFTA_SET_NAME },
		{ NFT_MSG_NEWSETELEM, "add elements to", "set", NFTA_SET_ELEM_LIST_SET },
		{ NFT_MSG_DELSETELEM, "delete elements from", "set", NFTA_SET_ELEM_LIST_SET },
	};

	out[0] = 0;
	for (size_t i = 0; i < b->n_pages; i++) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)b->pages[i].buf;
		int left = (int)b->pages[i].len;

		for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
			const struct nlattr *a;

			if (nlh->nlmsg_seq != seq)
				continue;
			for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
				if ((nlh->nlmsg_type & 0xff) != kinds[k].type)
					continue;
				snprintf(out, size, "%s %s", kinds[k].verb, kinds[k].what);
				mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
					if (mnl_attr_get_type(a) == kinds[k].attr) {
						snprintf(out, size, "%s %s %.*s", kinds[k].verb,
							 kinds[k].what,
							 (int)mnl_attr_get_payload_len(a),
							 (const char *)mnl_attr_get_payload(a));
						break;
					}
				return;
			}
			snprintf(out, size, "message type %u", nlh->nlmsg_type & 0xff);
			return;
		}
	}
}

/*
 * Reads until the answer to @gen_seq. The first error of a message in @b (when given) is
 * returned and named in @why.
 */
static int read_answers(struct kp_nft_sock *s, const struct kp_nfb *b, uint32_t gen_seq,
			uint32_t *ret_gen, char *why, size_t why_size)
{
	int first = 0;

	for (int rounds = 0; rounds < 1000000; rounds++) {
		ssize_t n = mnl_socket_recvfrom(s->nl, s->rbuf, RBUF_SIZE);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)s->rbuf;
		int left = (int)n;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return first ? first : -errno;
		}
		for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
			int64_t g;

			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

				if (e->error && nlh->nlmsg_seq == gen_seq)
					return first ? first : e->error;
				if (!e->error || first)
					continue;
				first = e->error;
				if (b && why && nlh->nlmsg_seq > b->seq0 &&
				    nlh->nlmsg_seq - b->seq0 <= b->n_msgs) {
					char what[320];

					describe(b, nlh->nlmsg_seq, what, sizeof(what));
					snprintf(why, why_size, "message %u of %zu (%s): %s",
						 nlh->nlmsg_seq - b->seq0, b->n_msgs, what,
						 strerror(-first));
				} else if (why)
					snprintf(why, why_size, "sequence %u: %s", nlh->nlmsg_seq,
						 strerror(-first));
				continue;
			}
			g = gen_of(nlh, gen_seq);
			if (g >= 0) {
				if (ret_gen)
					*ret_gen = (uint32_t)g;
				return first;
			}
		}
	}
	return first ? first : -EIO;
}

int kp_nft_getgen(struct kp_nft_sock *s, uint32_t *ret_gen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = gen_request(s, buf);
	int r = send_all(s, buf, ((struct nlmsghdr *)buf)->nlmsg_len);

	return r < 0 ? r : read_answers(s, NULL, seq, ret_gen, NULL, 0);
}

int kp_nft_table_exists(struct kp_nft_sock *s, int family, const char *name)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	uint32_t gen_seq;
	int r;

	if (!t)
		return -ENOMEM;
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, (uint16_t)family, NLM_F_ACK, s->seq++);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	r = send_all(s, buf, nlh->nlmsg_len);
	if (r < 0)
		return r;
	/* the generation request behind it marks the end of its answer */
	gen_seq = gen_request(s, buf);
	r = send_all(s, buf, ((struct nlmsghdr *)buf)->nlmsg_len);
	if (r < 0)
		return r;
	r = read_answers(s, NULL, gen_seq, NULL, NULL, 0);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

int kp_nfb_commit(struct kp_nft_sock *s, struct kp_nfb *b, uint32_t *ret_gen, char *why,
		  size_t why_size)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	char gen_buf[MNL_SOCKET_BUFFER_SIZE];
	struct msghdr msg = { 0 };
	struct iovec *iov;
	struct nlmsghdr *nlh;
	char *at = room_for(b, HDR_ROOM);
	uint32_t gen_seq;
	int r;

	if (!at) {
		snprintf(why, why_size, "out of memory building the transaction");
		return -ENOMEM;
	}
	nlh = nftnl_batch_end(at, b->seq++);
	kp_nfb_done(b, nlh);
	iov = calloc(b->n_pages, sizeof(*iov));
	if (!iov) {
		snprintf(why, why_size, "out of memory sending the transaction");
		return -ENOMEM;
	}
	for (size_t i = 0; i < b->n_pages; i++)
		iov[i] = (struct iovec){ b->pages[i].buf, b->pages[i].len };
	msg.msg_name = &kernel;
	msg.msg_namelen = sizeof(kernel);
	msg.msg_iov = iov;
	msg.msg_iovlen = b->n_pages;
	ensure_sndbuf(s, b->size);
	r = sendmsg(mnl_socket_get_fd(s->nl), &msg, 0) < 0 ? -errno : 0;
	free(iov);
	if (r < 0) {
		snprintf(why, why_size, "sending the transaction: %s", strerror(-r));
		return r;
	}
	/* the generation request after the batch: its answer comes after the batch's */
	gen_seq = gen_request(s, gen_buf);
	r = send_all(s, gen_buf, ((struct nlmsghdr *)gen_buf)->nlmsg_len);
	if (r < 0) {
		snprintf(why, why_size, "asking the generation: %s", strerror(-r));
		return r;
	}
	r = read_answers(s, b, gen_seq, ret_gen, why, why_size);
	pages_free(b);		/* kept until now to name a refused message */
	return r;
}

/* ---- dumps ---- */

struct dump {
	int kind;		/* NFT_MSG_NEWCHAIN, ... */
	const char *table;
	int (*cb)(void *obj, void *data);
	void *data;
	int err;
};

static int dump_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct dump *d = arg;
	void *obj = NULL;
	const char *table = NULL;
	int r = 0;

	switch (d->kind) {
	case NFT_MSG_NEWCHAIN:
		obj = nftnl_chain_alloc();
		if (obj && nftnl_chain_nlmsg_parse(nlh, obj) == 0)
			table = nftnl_chain_get_str(obj, NFTNL_CHAIN_TABLE);
		break;
	case NFT_MSG_NEWRULE:
		obj = nftnl_rule_alloc();
		if (obj && nftnl_rule_nlmsg_parse(nlh, obj) == 0)
			table = nftnl_rule_get_str(obj, NFTNL_RULE_TABLE);
		break;
	case NFT_MSG_NEWSET:
		obj = nftnl_set_alloc();
		if (obj && nftnl_set_nlmsg_parse(nlh, obj) == 0)
			table = nftnl_set_get_str(obj, NFTNL_SET_TABLE);
		break;
	case NFT_MSG_NEWSETELEM:
		obj = nftnl_set_alloc();
		if (obj && nftnl_set_elems_nlmsg_parse(nlh, obj) == 0)
			table = nftnl_set_get_str(obj, NFTNL_SET_TABLE);
		break;
	}
	if (!obj) {
		d->err = -ENOMEM;
		return MNL_CB_ERROR;
	}
	if (table && !strcmp(table, d->table))
		r = d->cb(obj, d->data);
	switch (d->kind) {
	case NFT_MSG_NEWCHAIN:
		nftnl_chain_free(obj);
		break;
	case NFT_MSG_NEWRULE:
		nftnl_rule_free(obj);
		break;
	default:
		nftnl_set_free(obj);
	}
	if (r) {
		d->err = r;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

static int run_dump(struct kp_nft_sock *s, char *buf, struct dump *d)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	uint32_t seq = nlh->nlmsg_seq;
	char *rbuf = s->rbuf;
	int r = send_all(s, buf, nlh->nlmsg_len);

	if (r < 0)
		return r;
	for (int rounds = 0; rounds < 10000000; rounds++) {
		ssize_t n = mnl_socket_recvfrom(s->nl, rbuf, RBUF_SIZE);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		r = mnl_cb_run(rbuf, (size_t)n, seq, s->portid, dump_cb, d);
		if (r == MNL_CB_STOP)
			return 0;
		if (r < 0) {
			/* drop what is left of the dump (without waiting: it may have ended)
			 * so that the next request starts clean */
			int err = d->err ? d->err : -errno;

			while (recv(mnl_socket_get_fd(s->nl), rbuf, RBUF_SIZE, MSG_DONTWAIT) > 0)
				;
			return err;
		}
	}
	return -EIO;
}

int kp_nft_dump_chains(struct kp_nft_sock *s, int family, const char *table,
		       int (*cb)(struct nftnl_chain *c, void *data), void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct dump d = { NFT_MSG_NEWCHAIN, table, (int (*)(void *, void *))cb, data, 0 };

	nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, (uint16_t)family, NLM_F_DUMP, s->seq++);
	return run_dump(s, buf, &d);
}

int kp_nft_dump_rules(struct kp_nft_sock *s, int family, const char *table, const char *chain,
		      int (*cb)(struct nftnl_rule *r, void *data), void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct dump d = { NFT_MSG_NEWRULE, table, (int (*)(void *, void *))cb, data, 0 };
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, (uint16_t)family,
						     NLM_F_DUMP, s->seq++);
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	if (chain)
		nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	return run_dump(s, buf, &d);
}

int kp_nft_dump_sets(struct kp_nft_sock *s, int family, const char *table,
		     int (*cb)(struct nftnl_set *set, void *data), void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct dump d = { NFT_MSG_NEWSET, table, (int (*)(void *, void *))cb, data, 0 };
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSET, (uint16_t)family,
						     NLM_F_DUMP, s->seq++);
	struct nftnl_set *set = nftnl_set_alloc();

	if (!set)
		return -ENOMEM;
	nftnl_set_set_str(set, NFTNL_SET_TABLE, table);
	nftnl_set_nlmsg_build_payload(nlh, set);
	nftnl_set_free(set);
	return run_dump(s, buf, &d);
}

int kp_nft_dump_elems(struct kp_nft_sock *s, int family, const char *table, const char *name,
		      int (*cb)(struct nftnl_set *set, void *data), void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct dump d = { NFT_MSG_NEWSETELEM, table, (int (*)(void *, void *))cb, data, 0 };
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, (uint16_t)family,
						     NLM_F_DUMP, s->seq++);
	struct nftnl_set *set = nftnl_set_alloc();

	if (!set)
		return -ENOMEM;
	nftnl_set_set_str(set, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(set, NFTNL_SET_NAME, name);
	nftnl_set_elems_nlmsg_build_payload(nlh, set);
	nftnl_set_free(set);
	return run_dump(s, buf, &d);
}

/* ---- expressions ---- */

static struct nftnl_expr *add(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

void kp_nx_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len,
		   uint32_t dreg)
{
	struct nftnl_expr *e = add(r, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
}

void kp_nx_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = add(r, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
}

void kp_nx_meta_set(struct nftnl_rule *r, uint32_t key, uint32_t sreg)
{
	struct nftnl_expr *e = add(r, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
}

void kp_nx_cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data,
	       uint32_t len)
{
	struct nftnl_expr *e = add(r, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
}

void kp_nx_bitwise(struct nftnl_rule *r, uint32_t reg, uint32_t len, const void *mask,
		   const void *xor)
{
	struct nftnl_expr *e = add(r, "bitwise");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor, len);
}

void kp_nx_lookup(struct nftnl_rule *r, uint32_t sreg, int dreg, const char *set,
		  uint32_t set_id, bool inv)
{
	struct nftnl_expr *e = add(r, "lookup");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
	if (dreg >= 0)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, (uint32_t)dreg);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	if (set_id)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	if (inv)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
}

void kp_nx_verdict(struct nftnl_rule *r, int code, const char *chain)
{
	struct nftnl_expr *e = add(r, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)code);
	if (chain)
		nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
}

void kp_nx_ct(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = add(r, "ct");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
}

void kp_nx_fib(struct nftnl_rule *r, uint32_t flags, uint32_t result, uint32_t dreg)
{
	struct nftnl_expr *e = add(r, "fib");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, flags);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, result);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, dreg);
}

void kp_nx_numgen(struct nftnl_rule *r, uint32_t mod, uint32_t dreg)
{
	struct nftnl_expr *e = add(r, "numgen");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, dreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS, mod);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
}

void kp_nx_dnat(struct nftnl_rule *r, int family, uint32_t reg_addr, uint32_t reg_proto)
{
	struct nftnl_expr *e = add(r, "nat");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, family == AF_INET6 ? NFPROTO_IPV6 :
			   NFPROTO_IPV4);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, reg_addr);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, reg_proto);
}

void kp_nx_masq(struct nftnl_rule *r, uint32_t flags)
{
	struct nftnl_expr *e = add(r, "masq");

	if (e && flags)
		nftnl_expr_set_u32(e, NFTNL_EXPR_MASQ_FLAGS, flags);
}

void kp_nx_reject(struct nftnl_rule *r, int family)
{
	struct nftnl_expr *e = add(r, "reject");

	if (!e)
		return;
	/* nft's plain `reject`: ICMP port unreachable (ICMPv6 code 4 in ip6) */
	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH);
	nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, family == AF_INET6 ? 4 : 3);
}

void kp_nx_dynset_update(struct nftnl_rule *r, uint32_t sreg, const char *set)
{
	struct nftnl_expr *e = add(r, "dynset");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, sreg);
	nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, set);
}

void kp_nx_comment(struct nftnl_rule *r, const char *comment)
{
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
	char c[128];

	if (!u)
		return;
	snprintf(c, sizeof(c), "%s", comment);	/* nft's limit: 128 bytes with the NUL */
	if (nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, c))
		nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u),
				    nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
}

void kp_nx_imm(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = add(r, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
}
