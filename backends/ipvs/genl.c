// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The client of the kernel's "IPVS" generic-netlink family (see genl.h). Messages are
 * built with libnl-genl and parsed with policy tables; sending and receiving use the
 * socket's descriptor directly so that a batch can put hundreds of requests in one
 * datagram and read the answers into one reusable buffer.
 *
 * Every change, batched or not, goes through the same queue: it is encoded at once into
 * a growing buffer of netlink messages, each with its own sequence number, next to a
 * record of its cookie and operation. Flushing cuts the buffer into datagrams of at most
 * DGRAM_MAX bytes and of at most as many messages as the receive buffer has room for
 * answers, asks for an acknowledgement only on the last message of each datagram, sends
 * it and reads answers until that last acknowledgement. The kernel's netlink_rcv_skb()
 * handles the messages of a datagram in order, in the sender's context, and always
 * answers a failed message with an NLMSG_ERROR carrying its -errno and sequence number,
 * so this reads every error, in order, with one recvmsg() for a datagram that fully
 * succeeds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/ip_vs.h>
#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/genl/genl.h>
#include <netlink/genl/ctrl.h>

#include "genl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* Largest datagram a batch sends (the kernel refuses more than sndbuf - 32). */
#define DGRAM_MAX	(64 * 1024)
/* Socket buffers we ask for; the receive buffer bounds the answers of one datagram. */
#define SNDBUF_SIZE	(256 * 1024)
#define RCVBUF_SIZE	(4 * 1024 * 1024)
/* What one queued acknowledgement costs in the receive buffer (skb truesize, rounded up). */
#define ACK_TRUESIZE	1024
/* Receive buffer: dumps come in skbs of at most 32 KiB. */
#define RX_SIZE		(64 * 1024)
/* Room for one encoded change (about 200 bytes). */
#define MSG_ROOM	512

enum ipvs_op {
	OP_ADD_SVC,
	OP_EDIT_SVC,
	OP_DEL_SVC,
	OP_ADD_DEST,
	OP_EDIT_DEST,
	OP_DEL_DEST,
	_OP_MAX
};

static const struct {
	uint8_t cmd;
	const char *name;
} op_info[_OP_MAX] = {
	[OP_ADD_SVC]	= { IPVS_CMD_NEW_SERVICE, "add service" },
	[OP_EDIT_SVC]	= { IPVS_CMD_SET_SERVICE, "edit service" },
	[OP_DEL_SVC]	= { IPVS_CMD_DEL_SERVICE, "del service" },
	[OP_ADD_DEST]	= { IPVS_CMD_NEW_DEST, "add dest" },
	[OP_EDIT_DEST]	= { IPVS_CMD_SET_DEST, "edit dest" },
	[OP_DEL_DEST]	= { IPVS_CMD_DEL_DEST, "del dest" },
};

/* One queued change; when sent, its sequence number is q_seq0 + its index. */
struct queued_op {
	uint64_t cookie;	/* the caller's, from ipvs_nl_batch_cookie() */
	uint8_t op;		/* enum ipvs_op */
};

struct ipvs_nl {
	struct nl_sock *sk;
	int family;		/* generic-netlink id of "IPVS" */
	uint32_t seq;		/* next sequence number */
	size_t max_msgs;	/* messages per datagram the receive buffer can answer */
	bool in_batch;		/* between batch_begin() and batch_end() */
	uint64_t cookie;	/* attached to changes queued from now on */
	char *q_buf;		/* encoded messages, back to back (NLMSG_ALIGNed) */
	size_t q_size;		/* bytes used in q_buf */
	size_t q_cap;		/* bytes allocated */
	struct queued_op *q_ops;	/* one per message in q_buf */
	size_t n_q_ops;
	size_t q_ops_cap;
	uint32_t q_seq0;	/* sequence number of q_ops[0], set when flushing */
	char *rx;		/* RX_SIZE receive buffer */
};

/* Policies for everything we parse (unknown or newer attributes are skipped). */
static struct nla_policy cmd_policy[IPVS_CMD_ATTR_MAX + 1] = {
	[IPVS_CMD_ATTR_SERVICE]		= { .type = NLA_NESTED },
	[IPVS_CMD_ATTR_DEST]		= { .type = NLA_NESTED },
	[IPVS_CMD_ATTR_DAEMON]		= { .type = NLA_NESTED },
	[IPVS_CMD_ATTR_TIMEOUT_TCP]	= { .type = NLA_U32 },
	[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN]	= { .type = NLA_U32 },
	[IPVS_CMD_ATTR_TIMEOUT_UDP]	= { .type = NLA_U32 },
};

static struct nla_policy svc_policy[IPVS_SVC_ATTR_MAX + 1] = {
	[IPVS_SVC_ATTR_AF]		= { .type = NLA_U16 },
	[IPVS_SVC_ATTR_PROTOCOL]	= { .type = NLA_U16 },
	[IPVS_SVC_ATTR_ADDR]		= { .type = NLA_UNSPEC, .minlen = 16, .maxlen = 16 },
	[IPVS_SVC_ATTR_PORT]		= { .type = NLA_U16 },
	[IPVS_SVC_ATTR_FWMARK]		= { .type = NLA_U32 },
	[IPVS_SVC_ATTR_SCHED_NAME]	= { .type = NLA_STRING, .maxlen = IP_VS_SCHEDNAME_MAXLEN },
	[IPVS_SVC_ATTR_FLAGS]		= { .type = NLA_UNSPEC,
					    .minlen = sizeof(struct ip_vs_flags),
					    .maxlen = sizeof(struct ip_vs_flags) },
	[IPVS_SVC_ATTR_TIMEOUT]		= { .type = NLA_U32 },
	[IPVS_SVC_ATTR_NETMASK]		= { .type = NLA_U32 },
	[IPVS_SVC_ATTR_STATS]		= { .type = NLA_NESTED },
	[IPVS_SVC_ATTR_PE_NAME]		= { .type = NLA_STRING, .maxlen = IP_VS_PENAME_MAXLEN },
	[IPVS_SVC_ATTR_STATS64]		= { .type = NLA_NESTED },
};

static struct nla_policy dest_policy[IPVS_DEST_ATTR_MAX + 1] = {
	[IPVS_DEST_ATTR_ADDR]		= { .type = NLA_UNSPEC, .minlen = 16, .maxlen = 16 },
	[IPVS_DEST_ATTR_PORT]		= { .type = NLA_U16 },
	[IPVS_DEST_ATTR_FWD_METHOD]	= { .type = NLA_U32 },
	[IPVS_DEST_ATTR_WEIGHT]		= { .type = NLA_U32 },
	[IPVS_DEST_ATTR_U_THRESH]	= { .type = NLA_U32 },
	[IPVS_DEST_ATTR_L_THRESH]	= { .type = NLA_U32 },
	[IPVS_DEST_ATTR_ACTIVE_CONNS]	= { .type = NLA_U32 },
	[IPVS_DEST_ATTR_INACT_CONNS]	= { .type = NLA_U32 },
	[IPVS_DEST_ATTR_PERSIST_CONNS]	= { .type = NLA_U32 },
	[IPVS_DEST_ATTR_STATS]		= { .type = NLA_NESTED },
	[IPVS_DEST_ATTR_ADDR_FAMILY]	= { .type = NLA_U16 },
	[IPVS_DEST_ATTR_STATS64]	= { .type = NLA_NESTED },
	[IPVS_DEST_ATTR_TUN_TYPE]	= { .type = NLA_U8 },
	[IPVS_DEST_ATTR_TUN_PORT]	= { .type = NLA_U16 },
	[IPVS_DEST_ATTR_TUN_FLAGS]	= { .type = NLA_U16 },
};

static struct nla_policy info_policy[IPVS_INFO_ATTR_MAX + 1] = {
	[IPVS_INFO_ATTR_VERSION]	= { .type = NLA_U32 },
	[IPVS_INFO_ATTR_CONN_TAB_SIZE]	= { .type = NLA_U32 },
};

/* libnl's -NLE_* to a negative errno. */
static int nlerr_to_errno(int err)
{
	switch (err < 0 ? -err : err) {
	case NLE_SUCCESS:		return 0;
	case NLE_INTR:			return -EINTR;
	case NLE_BAD_SOCK:		return -EBADF;
	case NLE_AGAIN:			return -EAGAIN;
	case NLE_NOMEM:			return -ENOMEM;
	case NLE_EXIST:			return -EEXIST;
	case NLE_INVAL:			return -EINVAL;
	case NLE_RANGE:			return -ERANGE;
	case NLE_MSGSIZE:		return -EMSGSIZE;
	case NLE_OPNOTSUPP:		return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:		return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND:		return -ENOENT;
	case NLE_NOATTR:		return -ENOMSG;
	case NLE_MISSING_ATTR:		return -EINVAL;
	case NLE_AF_MISMATCH:		return -EAFNOSUPPORT;
	case NLE_SEQ_MISMATCH:		return -EPROTO;
	case NLE_MSG_OVERFLOW:		return -EOVERFLOW;
	case NLE_MSG_TRUNC:		return -EMSGSIZE;
	case NLE_NOADDR:		return -EADDRNOTAVAIL;
	case NLE_SRCRT_NOSUPPORT:	return -EOPNOTSUPP;
	case NLE_MSG_TOOSHORT:		return -EBADMSG;
	case NLE_MSGTYPE_NOSUPPORT:	return -EOPNOTSUPP;
	case NLE_OBJ_MISMATCH:		return -EINVAL;
	case NLE_NOCACHE:		return -ENOENT;
	case NLE_BUSY:			return -EBUSY;
	case NLE_PROTO_MISMATCH:	return -EPROTONOSUPPORT;
	case NLE_NOACCESS:		return -EACCES;
	case NLE_PERM:			return -EPERM;
	case NLE_PKTLOC_FILE:		return -ENOENT;
	case NLE_PARSE_ERR:		return -EBADMSG;
	case NLE_NODEV:			return -ENODEV;
	case NLE_IMMUTABLE:		return -EPERM;
	case NLE_DUMP_INTR:		return -EINTR;
	case NLE_ATTRSIZE:		return -ERANGE;
	default:			return -EIO;
	}
}

static int setup_socket(struct ipvs_nl *nl)
{
	int fd = nl_socket_get_fd(nl->sk);
	int one = 1, size = RCVBUF_SIZE;
	socklen_t len = sizeof(size);
	int err;

	/* nl_connect() left 32 KiB buffers; ask for more, beyond rmem_max when privileged. */
	err = nl_socket_set_buffer_size(nl->sk, RCVBUF_SIZE, SNDBUF_SIZE);
	if (err < 0)
		return nlerr_to_errno(err);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	/* Errors need not echo our request (an optimisation; fine if refused). */
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, &len) < 0)
		return -errno;
	/* Half the buffer for acknowledgements, keeping slack for stray messages. */
	nl->max_msgs = (size_t)size / 2 / ACK_TRUESIZE;
	if (nl->max_msgs < 16)
		nl->max_msgs = 16;
	return 0;
}

int ipvs_nl_open(struct ipvs_nl **ret)
{
	struct ipvs_nl *nl;
	int err;

	if (!ret)
		return -EINVAL;
	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->rx = malloc(RX_SIZE);
	nl->sk = nl_socket_alloc();
	if (!nl->rx || !nl->sk) {
		err = -ENOMEM;
		goto out_close;
	}
	err = genl_connect(nl->sk);
	if (err < 0) {
		err = nlerr_to_errno(err);
		goto out_close;
	}
	err = setup_socket(nl);
	if (err < 0)
		goto out_close;
	/*
	 * The kernel tries request_module("net-pf-16-proto-16-family-IPVS") on a miss; a
	 * second lookup covers a module that was still initialising.
	 */
	nl->family = genl_ctrl_resolve(nl->sk, IPVS_GENL_NAME);
	if (nl->family == -NLE_OBJ_NOTFOUND)
		nl->family = genl_ctrl_resolve(nl->sk, IPVS_GENL_NAME);
	if (nl->family < 0) {
		err = nl->family == -NLE_OBJ_NOTFOUND ? -EPROTONOSUPPORT
						      : nlerr_to_errno(nl->family);
		goto out_close;
	}
	nl->seq = (uint32_t)time(NULL);
	*ret = nl;
	return 0;

out_close:
	ipvs_nl_close(nl);
	return err;
}

void ipvs_nl_close(struct ipvs_nl *nl)
{
	if (!nl)
		return;
	nl_socket_free(nl->sk);
	free(nl->q_buf);
	free(nl->q_ops);
	free(nl->rx);
	free(nl);
}

/* Sends @size bytes of messages as one datagram to the kernel. */
static int send_dgram(struct ipvs_nl *nl, const void *buf, size_t size)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;

	do {
		n = sendto(nl_socket_get_fd(nl->sk), buf, size, 0,
			   (struct sockaddr *)&kernel, sizeof(kernel));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == size ? 0 : -EMSGSIZE;
}

/* Receives one datagram into nl->rx. Returns its size or -errno. */
static int recv_dgram(struct ipvs_nl *nl)
{
	struct sockaddr_nl from;
	struct iovec iov = { .iov_base = nl->rx, .iov_len = RX_SIZE };
	struct msghdr mh = {
		.msg_name = &from,
		.msg_namelen = sizeof(from),
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	ssize_t n;

	for (;;) {
		n = recvmsg(nl_socket_get_fd(nl->sk), &mh, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (mh.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		if (from.nl_pid != 0)	/* not from the kernel */
			continue;
		return (int)n;
	}
}

/* The error of an NLMSG_ERROR message (0 for an acknowledgement). */
static int nlmsg_error_of(const struct nlmsghdr *h)
{
	const struct nlmsgerr *e = NLMSG_DATA(h);

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(int)))
		return -EBADMSG;
	return e->error > 0 ? -e->error : e->error;
}

/* ---- encoding ---- */

static int put_addr(struct nl_msg *msg, int type, const struct kp_addr *a)
{
	uint8_t raw[16] = { 0 };	/* union nf_inet_addr */

	if (a->family == AF_INET)
		memcpy(raw, &a->v4, sizeof(a->v4));
	else
		memcpy(raw, &a->v6, sizeof(a->v6));
	return nla_put(msg, type, sizeof(raw), raw);
}

static int svc_family(const struct ipvs_svc *svc)
{
	int af = svc->addr.family;

	if (af != AF_INET && af != AF_INET6)
		return -EINVAL;
	if (svc->family && svc->family != af)
		return -EINVAL;
	return af;
}

/* The nested IPVS_CMD_ATTR_SERVICE: the identity, plus the settings when @full. */
static int put_svc(struct nl_msg *msg, const struct ipvs_svc *svc, bool full)
{
	struct ip_vs_flags flags = { .flags = svc->flags, .mask = ~0U };
	struct nlattr *nest;
	int err;

	nest = nla_nest_start(msg, IPVS_CMD_ATTR_SERVICE);
	if (!nest)
		return -NLE_NOMEM;
	err = nla_put_u16(msg, IPVS_SVC_ATTR_AF, (uint16_t)svc->addr.family);
	err = err ?: nla_put_u16(msg, IPVS_SVC_ATTR_PROTOCOL, svc->protocol);
	err = err ?: put_addr(msg, IPVS_SVC_ATTR_ADDR, &svc->addr);
	err = err ?: nla_put_u16(msg, IPVS_SVC_ATTR_PORT, htons(svc->port));
	if (full) {
		err = err ?: nla_put_string(msg, IPVS_SVC_ATTR_SCHED_NAME, svc->sched);
		err = err ?: nla_put(msg, IPVS_SVC_ATTR_FLAGS, sizeof(flags), &flags);
		err = err ?: nla_put_u32(msg, IPVS_SVC_ATTR_TIMEOUT, svc->timeout);
		err = err ?: nla_put_u32(msg, IPVS_SVC_ATTR_NETMASK, svc->netmask);
	}
	if (err)
		return err;
	return nla_nest_end(msg, nest);
}

/* The nested IPVS_CMD_ATTR_DEST: the identity, plus the settings when @full. */
static int put_dest(struct nl_msg *msg, int af, const struct ipvs_dest *d, bool full)
{
	struct nlattr *nest;
	int err;

	nest = nla_nest_start(msg, IPVS_CMD_ATTR_DEST);
	if (!nest)
		return -NLE_NOMEM;
	err = put_addr(msg, IPVS_DEST_ATTR_ADDR, &d->addr);
	err = err ?: nla_put_u16(msg, IPVS_DEST_ATTR_PORT, htons(d->port));
	/* Ignored by kernels before 3.18, which take the service's family anyway. */
	err = err ?: nla_put_u16(msg, IPVS_DEST_ATTR_ADDR_FAMILY, (uint16_t)af);
	if (full) {
		err = err ?: nla_put_u32(msg, IPVS_DEST_ATTR_FWD_METHOD,
					 d->fwd & IP_VS_CONN_F_FWD_MASK);
		err = err ?: nla_put_u32(msg, IPVS_DEST_ATTR_WEIGHT, d->weight);
		err = err ?: nla_put_u32(msg, IPVS_DEST_ATTR_U_THRESH, 0);
		err = err ?: nla_put_u32(msg, IPVS_DEST_ATTR_L_THRESH, 0);
	}
	if (err)
		return err;
	return nla_nest_end(msg, nest);
}

static int check_change(const struct ipvs_nl *nl, enum ipvs_op op, const struct ipvs_svc *svc,
			const struct ipvs_dest *d)
{
	int af;

	if (!nl || !svc)
		return -EINVAL;
	af = svc_family(svc);
	if (af < 0)
		return af;
	if (op == OP_ADD_SVC || op == OP_EDIT_SVC) {
		size_t n = strnlen(svc->sched, sizeof(svc->sched));

		if (n == 0 || n == sizeof(svc->sched))
			return -EINVAL;
	}
	if (op >= OP_ADD_DEST) {
		if (!d || (d->addr.family && d->addr.family != af))
			return -EINVAL;
		if (d->weight > INT32_MAX)
			return -ERANGE;
	}
	return 0;
}

static int queue_reserve(struct ipvs_nl *nl, size_t size)
{
	if (nl->q_size + size > nl->q_cap) {
		size_t cap = nl->q_cap ? nl->q_cap * 2 : 16384;
		char *p;

		while (cap < nl->q_size + size)
			cap *= 2;
		p = realloc(nl->q_buf, cap);
		if (!p)
			return -ENOMEM;
		nl->q_buf = p;
		nl->q_cap = cap;
	}
	if (nl->n_q_ops == nl->q_ops_cap) {
		size_t cap = nl->q_ops_cap ? nl->q_ops_cap * 2 : 256;
		struct queued_op *p = realloc(nl->q_ops, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		nl->q_ops = p;
		nl->q_ops_cap = cap;
	}
	return 0;
}

/* Encodes one change and appends it to the queue. */
static int queue_change(struct ipvs_nl *nl, enum ipvs_op op, const struct ipvs_svc *svc,
			const struct ipvs_dest *d)
{
	bool full = op == OP_ADD_SVC || op == OP_EDIT_SVC || op == OP_ADD_DEST ||
		    op == OP_EDIT_DEST;
	struct nlmsghdr *h;
	struct nl_msg *msg;
	size_t size;
	int err;

	msg = nlmsg_alloc_size(MSG_ROOM);
	if (!msg)
		return -ENOMEM;
	/* The sequence number is written when the message is sent. */
	if (!genlmsg_put(msg, NL_AUTO_PORT, 0, nl->family, 0, 0, op_info[op].cmd,
			 IPVS_GENL_VERSION)) {
		err = -ENOMEM;
		goto out_free_msg;
	}
	err = put_svc(msg, svc, op == OP_ADD_SVC || op == OP_EDIT_SVC);
	if (!err && op >= OP_ADD_DEST)
		err = put_dest(msg, svc->addr.family, d, full);
	if (err) {
		err = nlerr_to_errno(err);
		goto out_free_msg;
	}
	h = nlmsg_hdr(msg);
	h->nlmsg_flags = NLM_F_REQUEST;
	size = NLMSG_ALIGN(h->nlmsg_len);
	err = queue_reserve(nl, size);
	if (err)
		goto out_free_msg;
	memset(nl->q_buf + nl->q_size, 0, size);
	memcpy(nl->q_buf + nl->q_size, h, h->nlmsg_len);
	nl->q_size += size;
	nl->q_ops[nl->n_q_ops].cookie = nl->cookie;
	nl->q_ops[nl->n_q_ops].op = (uint8_t)op;
	nl->n_q_ops++;
	err = 0;
out_free_msg:
	nlmsg_free(msg);
	return err;
}

/* ---- flushing the queue ---- */

struct flush_state {
	ipvs_nl_error_fn on_error;
	void *userdata;
	int first_err;		/* first failure, 0 if none */
};

/* Handles one NLMSG_ERROR answer to a queued change; true when it is @last_seq's. */
static bool flush_answer(struct ipvs_nl *nl, const struct nlmsghdr *h, uint32_t last_seq,
			 struct flush_state *st)
{
	uint32_t idx = h->nlmsg_seq - nl->q_seq0;
	int err = nlmsg_error_of(h);

	if (idx >= nl->n_q_ops)		/* a stray answer to something earlier */
		return false;
	if (err) {
		const struct queued_op *q = &nl->q_ops[idx];

		if (!st->first_err)
			st->first_err = err;
		if (st->on_error)
			st->on_error(q->cookie, op_info[q->op].name, err, st->userdata);
	}
	return h->nlmsg_seq == last_seq;
}

/* Reads answers until the one for @last_seq. */
static int flush_wait(struct ipvs_nl *nl, uint32_t last_seq, struct flush_state *st)
{
	for (;;) {
		struct nlmsghdr *h;
		int n = recv_dgram(nl);
		bool done = false;

		if (n < 0)
			return n;
		for (h = (struct nlmsghdr *)nl->rx; nlmsg_ok(h, n); h = nlmsg_next(h, &n)) {
			if (h->nlmsg_type == NLMSG_ERROR)
				done |= flush_answer(nl, h, last_seq, st);
		}
		if (done)
			return 0;
	}
}

/* Drops whatever answers are queued on the socket (after a failed send or receive). */
static void drain(struct ipvs_nl *nl)
{
	int fd = nl_socket_get_fd(nl->sk);
	int i;

	for (i = 0; i < 1 << 20; i++) {
		if (recv(fd, nl->rx, RX_SIZE, MSG_DONTWAIT) < 0 && errno != EINTR &&
		    errno != ENOBUFS)
			break;
	}
}

static void queue_reset(struct ipvs_nl *nl)
{
	nl->q_size = 0;
	nl->n_q_ops = 0;
	/* Do not keep the memory of a huge batch around. */
	if (nl->q_cap > 1024 * 1024) {
		free(nl->q_buf);
		free(nl->q_ops);
		nl->q_buf = NULL;
		nl->q_ops = NULL;
		nl->q_cap = 0;
		nl->q_ops_cap = 0;
	}
}

/* Sends the queue as datagrams, one at a time, reading each one's answers. */
static int flush(struct ipvs_nl *nl, ipvs_nl_error_fn on_error, void *userdata)
{
	struct flush_state st = { .on_error = on_error, .userdata = userdata };
	size_t off = 0, idx = 0;
	int err = 0;

	/* Numbered now, so requests made while a batch is open do not get in the way. */
	nl->q_seq0 = nl->seq;
	nl->seq += (uint32_t)nl->n_q_ops;
	while (off < nl->q_size) {
		size_t start = off, n = 0;
		struct nlmsghdr *h, *last = NULL;

		do {
			h = (struct nlmsghdr *)(nl->q_buf + off);
			if (n > 0 && off - start + NLMSG_ALIGN(h->nlmsg_len) > DGRAM_MAX)
				break;
			h->nlmsg_seq = nl->q_seq0 + (uint32_t)(idx + n);
			last = h;
			off += NLMSG_ALIGN(h->nlmsg_len);
			n++;
		} while (off < nl->q_size && n < nl->max_msgs);
		last->nlmsg_flags |= NLM_F_ACK;
		err = send_dgram(nl, nl->q_buf + start, off - start);
		if (!err)
			err = flush_wait(nl, last->nlmsg_seq, &st);
		if (err) {
			/* The rest is not sent; report the transport error for it. */
			drain(nl);
			break;
		}
		idx += n;
	}
	queue_reset(nl);
	if (err)
		return err;
	return st.first_err;
}

static int change(struct ipvs_nl *nl, enum ipvs_op op, const struct ipvs_svc *svc,
		  const struct ipvs_dest *d)
{
	int err = check_change(nl, op, svc, d);

	if (err)
		return err;
	err = queue_change(nl, op, svc, d);
	if (err || nl->in_batch)
		return err;
	return flush(nl, NULL, NULL);
}

int ipvs_nl_add_service(struct ipvs_nl *nl, const struct ipvs_svc *svc)
{
	return change(nl, OP_ADD_SVC, svc, NULL);
}

int ipvs_nl_edit_service(struct ipvs_nl *nl, const struct ipvs_svc *svc)
{
	return change(nl, OP_EDIT_SVC, svc, NULL);
}

int ipvs_nl_del_service(struct ipvs_nl *nl, const struct ipvs_svc *svc)
{
	return change(nl, OP_DEL_SVC, svc, NULL);
}

int ipvs_nl_add_dest(struct ipvs_nl *nl, const struct ipvs_svc *svc, const struct ipvs_dest *d)
{
	return change(nl, OP_ADD_DEST, svc, d);
}

int ipvs_nl_edit_dest(struct ipvs_nl *nl, const struct ipvs_svc *svc, const struct ipvs_dest *d)
{
	return change(nl, OP_EDIT_DEST, svc, d);
}

int ipvs_nl_del_dest(struct ipvs_nl *nl, const struct ipvs_svc *svc, const struct ipvs_dest *d)
{
	return change(nl, OP_DEL_DEST, svc, d);
}

int ipvs_nl_batch_begin(struct ipvs_nl *nl)
{
	if (!nl)
		return -EINVAL;
	nl->in_batch = true;
	nl->cookie = 0;
	return 0;
}

void ipvs_nl_batch_cookie(struct ipvs_nl *nl, uint64_t cookie)
{
	if (nl)
		nl->cookie = cookie;
}

int ipvs_nl_batch_end(struct ipvs_nl *nl, ipvs_nl_error_fn on_error, void *userdata)
{
	if (!nl || !nl->in_batch)
		return -EINVAL;
	nl->in_batch = false;
	nl->cookie = 0;
	return flush(nl, on_error, userdata);
}

/* ---- requests with answers ---- */

/* Called for each answer message of a request; returns 0 or a negative errno to remember. */
typedef int (*reply_fn)(struct nlmsghdr *h, void *arg);

/*
 * Sends @msg (with the next sequence number) and reads its answers: for a dump up to
 * NLMSG_DONE, else up to the first answer. Every answer is read even after an error.
 */
static int request(struct ipvs_nl *nl, struct nl_msg *msg, bool dump, reply_fn fn, void *arg)
{
	struct nlmsghdr *req = nlmsg_hdr(msg);
	uint32_t seq = req->nlmsg_seq;
	int err, ret = 0;

	err = send_dgram(nl, req, req->nlmsg_len);
	if (err)
		return err;
	for (;;) {
		struct nlmsghdr *h;
		bool done = false;
		int n = recv_dgram(nl);

		if (n < 0) {
			drain(nl);
			return n;
		}
		for (h = (struct nlmsghdr *)nl->rx; nlmsg_ok(h, n); h = nlmsg_next(h, &n)) {
			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE) {
				/* carries the dump's own error, if any */
				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
					err = nlmsg_error_of(h);
				else
					err = 0;
				ret = ret ?: err;
				done = true;
			} else if (h->nlmsg_type == NLMSG_ERROR) {
				err = nlmsg_error_of(h);
				ret = ret ?: err;
				done = true;
			} else if (h->nlmsg_type == nl->family && fn) {
				err = fn(h, arg);
				ret = ret ?: err;
				done |= !dump;
			}
		}
		if (done)
			return ret;
	}
}

/* A request message without attributes yet, or NULL. */
static struct nl_msg *request_new(struct ipvs_nl *nl, uint8_t cmd, bool dump)
{
	struct nl_msg *msg = nlmsg_alloc_size(MSG_ROOM);

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, nl->seq++, nl->family, 0,
			 NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0), cmd, IPVS_GENL_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/* Parses the top-level attributes of a reply. */
static int parse_top(struct nlmsghdr *h, struct nlattr **tb, int max,
		     struct nla_policy *policy)
{
	int err = genlmsg_parse(h, 0, tb, max, policy);

	return err < 0 ? -EBADMSG : 0;
}

static int get_addr(struct nlattr *a, int af, struct kp_addr *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = af;
	if (af == AF_INET)
		memcpy(&ret->v4, nla_data(a), sizeof(ret->v4));
	else if (af == AF_INET6)
		memcpy(&ret->v6, nla_data(a), sizeof(ret->v6));
	else
		return -EAFNOSUPPORT;
	return 0;
}

struct info_arg {
	uint32_t version;
	uint32_t conn_tab_size;
};

static int info_reply(struct nlmsghdr *h, void *arg)
{
	struct nlattr *tb[IPVS_INFO_ATTR_MAX + 1];
	struct info_arg *ia = arg;
	int err = parse_top(h, tb, IPVS_INFO_ATTR_MAX, info_policy);

	if (err)
		return err;
	if (!tb[IPVS_INFO_ATTR_VERSION] || !tb[IPVS_INFO_ATTR_CONN_TAB_SIZE])
		return -EBADMSG;
	ia->version = nla_get_u32(tb[IPVS_INFO_ATTR_VERSION]);
	ia->conn_tab_size = nla_get_u32(tb[IPVS_INFO_ATTR_CONN_TAB_SIZE]);
	return 0;
}

int ipvs_nl_get_info(struct ipvs_nl *nl, uint32_t *ret_version, uint32_t *ret_conn_tab_size)
{
	struct info_arg ia = { 0 };
	struct nl_msg *msg;
	int err;

	if (!nl)
		return -EINVAL;
	msg = request_new(nl, IPVS_CMD_GET_INFO, false);
	if (!msg)
		return -ENOMEM;
	err = request(nl, msg, false, info_reply, &ia);
	nlmsg_free(msg);
	if (err)
		return err;
	if (ret_version)
		*ret_version = ia.version;
	if (ret_conn_tab_size)
		*ret_conn_tab_size = ia.conn_tab_size;
	return 0;
}

/* Growing arrays for dumps; callbacks run after the dump is fully read. */
struct dump_arg {
	void *items;
	size_t n;
	size_t cap;
	size_t item_size;
	int af;			/* for dests: the service's family */
};

static void *dump_slot(struct dump_arg *da)
{
	if (da->n == da->cap) {
		size_t cap = da->cap ? da->cap * 2 : 64;
		void *p = realloc(da->items, cap * da->item_size);

		if (!p)
			return NULL;
		da->items = p;
		da->cap = cap;
	}
	return (char *)da->items + da->n * da->item_size;
}

static int parse_svc(struct nlattr *nest, struct ipvs_svc *svc)
{
	struct nlattr *tb[IPVS_SVC_ATTR_MAX + 1];
	struct ip_vs_flags flags;
	int err;

	if (nla_parse_nested(tb, IPVS_SVC_ATTR_MAX, nest, svc_policy) < 0)
		return -EBADMSG;
	memset(svc, 0, sizeof(*svc));
	if (!tb[IPVS_SVC_ATTR_AF] || !tb[IPVS_SVC_ATTR_SCHED_NAME] || !tb[IPVS_SVC_ATTR_FLAGS])
		return -EBADMSG;
	if (tb[IPVS_SVC_ATTR_FWMARK])
		return 1;	/* not ours: we never create fwmark services */
	if (!tb[IPVS_SVC_ATTR_PROTOCOL] || !tb[IPVS_SVC_ATTR_ADDR] || !tb[IPVS_SVC_ATTR_PORT])
		return -EBADMSG;
	svc->family = nla_get_u16(tb[IPVS_SVC_ATTR_AF]);
	err = get_addr(tb[IPVS_SVC_ATTR_ADDR], svc->family, &svc->addr);
	if (err)
		return err;
	svc->protocol = (uint8_t)nla_get_u16(tb[IPVS_SVC_ATTR_PROTOCOL]);
	svc->port = ntohs(nla_get_u16(tb[IPVS_SVC_ATTR_PORT]));
	nla_strlcpy(svc->sched, tb[IPVS_SVC_ATTR_SCHED_NAME], sizeof(svc->sched));
	memcpy(&flags, nla_data(tb[IPVS_SVC_ATTR_FLAGS]), sizeof(flags));
	/* HASHED is the kernel's bookkeeping, not a setting. */
	svc->flags = flags.flags & ~IP_VS_SVC_F_HASHED;
	if (tb[IPVS_SVC_ATTR_TIMEOUT])
		svc->timeout = nla_get_u32(tb[IPVS_SVC_ATTR_TIMEOUT]);
	if (tb[IPVS_SVC_ATTR_NETMASK])
		svc->netmask = nla_get_u32(tb[IPVS_SVC_ATTR_NETMASK]);
	return 0;
}

static int svc_reply(struct nlmsghdr *h, void *arg)
{
	struct nlattr *tb[IPVS_CMD_ATTR_MAX + 1];
	struct dump_arg *da = arg;
	struct ipvs_svc *svc;
	int err = parse_top(h, tb, IPVS_CMD_ATTR_MAX, cmd_policy);

	if (err)
		return err;
	if (!tb[IPVS_CMD_ATTR_SERVICE])
		return -EBADMSG;
	svc = dump_slot(da);
	if (!svc)
		return -ENOMEM;
	err = parse_svc(tb[IPVS_CMD_ATTR_SERVICE], svc);
	if (err < 0)
		return err;
	if (err == 0)
		da->n++;
	return 0;
}

int ipvs_nl_list_services(struct ipvs_nl *nl,
			  int (*fn)(const struct ipvs_svc *svc, void *userdata), void *userdata)
{
	struct dump_arg da = { .item_size = sizeof(struct ipvs_svc) };
	struct nl_msg *msg;
	size_t i;
	int err;

	if (!nl || !fn)
		return -EINVAL;
	msg = request_new(nl, IPVS_CMD_GET_SERVICE, true);
	if (!msg)
		return -ENOMEM;
	err = request(nl, msg, true, svc_reply, &da);
	nlmsg_free(msg);
	for (i = 0; !err && i < da.n; i++)
		err = fn((const struct ipvs_svc *)da.items + i, userdata);
	free(da.items);
	return err;
}

static int parse_dest(struct nlattr *nest, int af, struct ipvs_dest *d)
{
	struct nlattr *tb[IPVS_DEST_ATTR_MAX + 1];

	if (nla_parse_nested(tb, IPVS_DEST_ATTR_MAX, nest, dest_policy) < 0)
		return -EBADMSG;
	memset(d, 0, sizeof(*d));
	if (!tb[IPVS_DEST_ATTR_ADDR] || !tb[IPVS_DEST_ATTR_PORT] ||
	    !tb[IPVS_DEST_ATTR_FWD_METHOD] || !tb[IPVS_DEST_ATTR_WEIGHT])
		return -EBADMSG;
	/* Kernels before 3.18 do not send the family: the service's then. */
	if (tb[IPVS_DEST_ATTR_ADDR_FAMILY])
		af = nla_get_u16(tb[IPVS_DEST_ATTR_ADDR_FAMILY]);
	if (get_addr(tb[IPVS_DEST_ATTR_ADDR], af, &d->addr))
		return -EBADMSG;
	d->port = ntohs(nla_get_u16(tb[IPVS_DEST_ATTR_PORT]));
	d->fwd = nla_get_u32(tb[IPVS_DEST_ATTR_FWD_METHOD]);
	d->weight = nla_get_u32(tb[IPVS_DEST_ATTR_WEIGHT]);
	if (tb[IPVS_DEST_ATTR_ACTIVE_CONNS])
		d->active_conns = nla_get_u32(tb[IPVS_DEST_ATTR_ACTIVE_CONNS]);
	if (tb[IPVS_DEST_ATTR_INACT_CONNS])
		d->inact_conns = nla_get_u32(tb[IPVS_DEST_ATTR_INACT_CONNS]);
	if (tb[IPVS_DEST_ATTR_PERSIST_CONNS])
		d->persist_conns = nla_get_u32(tb[IPVS_DEST_ATTR_PERSIST_CONNS]);
	return 0;
}

static int dest_reply(struct nlmsghdr *h, void *arg)
{
	struct nlattr *tb[IPVS_CMD_ATTR_MAX + 1];
	struct dump_arg *da = arg;
	struct ipvs_dest *d;
	int err = parse_top(h, tb, IPVS_CMD_ATTR_MAX, cmd_policy);

	if (err)
		return err;
	if (!tb[IPVS_CMD_ATTR_DEST])
		return -EBADMSG;
	d = dump_slot(da);
	if (!d)
		return -ENOMEM;
	err = parse_dest(tb[IPVS_CMD_ATTR_DEST], da->af, d);
	if (err)
		return err;
	da->n++;
	return 0;
}

int ipvs_nl_list_dests(struct ipvs_nl *nl, const struct ipvs_svc *svc,
		       int (*fn)(const struct ipvs_dest *d, void *userdata), void *userdata)
{
	struct dump_arg da = { .item_size = sizeof(struct ipvs_dest) };
	struct nl_msg *msg;
	size_t i;
	int err;

	if (!nl || !svc || !fn)
		return -EINVAL;
	da.af = svc_family(svc);
	if (da.af < 0)
		return da.af;
	msg = request_new(nl, IPVS_CMD_GET_DEST, true);
	if (!msg)
		return -ENOMEM;
	err = nlerr_to_errno(put_svc(msg, svc, false));
	if (!err)
		err = request(nl, msg, true, dest_reply, &da);
	nlmsg_free(msg);
	for (i = 0; !err && i < da.n; i++)
		err = fn((const struct ipvs_dest *)da.items + i, userdata);
	free(da.items);
	return err;
}

int ipvs_nl_get_service(struct ipvs_nl *nl, const struct ipvs_svc *key, struct ipvs_svc *ret)
{
	struct dump_arg da = { .item_size = sizeof(struct ipvs_svc) };
	struct nl_msg *msg;
	int err;

	if (!nl || !key || !ret)
		return -EINVAL;
	msg = request_new(nl, IPVS_CMD_GET_SERVICE, false);
	if (!msg)
		return -ENOMEM;
	err = nlerr_to_errno(put_svc(msg, key, false));
	if (!err)
		err = request(nl, msg, false, svc_reply, &da);
	nlmsg_free(msg);
	if (!err && da.n != 1)
		err = -ENOENT;
	if (!err)
		*ret = *(const struct ipvs_svc *)da.items;
	free(da.items);
	return err == -ESRCH ? -ENOENT : err;	/* the kernel's "no such service" */
}

int ipvs_nl_set_timeouts(struct ipvs_nl *nl, uint32_t tcp, uint32_t tcp_fin, uint32_t udp)
{
	struct nl_msg *msg;
	int err = 0;

	if (!nl)
		return -EINVAL;
	if (!tcp && !tcp_fin && !udp)
		return 0;
	msg = request_new(nl, IPVS_CMD_SET_CONFIG, false);
	if (!msg)
		return -ENOMEM;
	/* An absent attribute leaves that timeout alone. */
	nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_ACK;
	if (tcp)
		err = nla_put_u32(msg, IPVS_CMD_ATTR_TIMEOUT_TCP, tcp);
	if (!err && tcp_fin)
		err = nla_put_u32(msg, IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, tcp_fin);
	if (!err && udp)
		err = nla_put_u32(msg, IPVS_CMD_ATTR_TIMEOUT_UDP, udp);
	err = nlerr_to_errno(err);
	if (!err)
		err = request(nl, msg, false, NULL, NULL);
	nlmsg_free(msg);
	return err;
}

struct timeout_arg {
	uint32_t tcp, tcp_fin, udp;
};

static int config_reply(struct nlmsghdr *h, void *arg)
{
	struct nlattr *tb[IPVS_CMD_ATTR_MAX + 1];
	struct timeout_arg *ta = arg;
	int err = parse_top(h, tb, IPVS_CMD_ATTR_MAX, cmd_policy);

	if (err)
		return err;
	if (!tb[IPVS_CMD_ATTR_TIMEOUT_TCP] || !tb[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN] ||
	    !tb[IPVS_CMD_ATTR_TIMEOUT_UDP])
		return -EBADMSG;
	ta->tcp = nla_get_u32(tb[IPVS_CMD_ATTR_TIMEOUT_TCP]);
	ta->tcp_fin = nla_get_u32(tb[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN]);
	ta->udp = nla_get_u32(tb[IPVS_CMD_ATTR_TIMEOUT_UDP]);
	return 0;
}

int ipvs_nl_get_timeouts(struct ipvs_nl *nl, uint32_t *ret_tcp, uint32_t *ret_tcp_fin,
			 uint32_t *ret_udp)
{
	struct timeout_arg ta = { 0 };
	struct nl_msg *msg;
	int err;

	if (!nl)
		return -EINVAL;
	msg = request_new(nl, IPVS_CMD_GET_CONFIG, false);
	if (!msg)
		return -ENOMEM;
	err = request(nl, msg, false, config_reply, &ta);
	nlmsg_free(msg);
	if (err)
		return err;
	if (ret_tcp)
		*ret_tcp = ta.tcp;
	if (ret_tcp_fin)
		*ret_tcp_fin = ta.tcp_fin;
	if (ret_udp)
		*ret_udp = ta.udp;
	return 0;
}
