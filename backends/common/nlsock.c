// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One netlink socket for a libmnl client: requests, their answers, and batches of
 * requests acked one by one. Each message of a datagram is handled in turn and acked
 * (NLM_F_ACK); acks are small (NETLINK_CAP_ACK, which still echoes the request's header),
 * but each is its own skb, so the receive buffer bounds how many requests one sendmsg()
 * may carry. Sequence numbers start at the pid shifted up, so that leftovers of another
 * socket or of an earlier request are told apart from the answer being read.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>

#include "nlsock.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

#define RECV_SIZE    (32 * 1024) /* one recv(): a dump skb or a link message */
#define RCVBUF_WANT  (8 * 1024 * 1024)
#define ACK_TRUESIZE 2048	/* generous kernel memory charge of one ack */
#define MAX_READS    (1u << 24) /* bound on recv() calls for one answer */

int kp_nlsock_open(struct kp_nlsock *ns, int bus, kp_nlsock_ack_fn ack_fn, size_t ack_min)
{
	int one = 1, size = RCVBUF_WANT, r;
	socklen_t sl = sizeof(size);

	ns->ack_fn = ack_fn;
	ns->ack_min = ack_min;
	ns->buf = malloc(KP_NLSOCK_BATCH_LIMIT + KP_NLSOCK_MSG_MAX);
	if (!ns->buf)
		return -ENOMEM;
	ns->sock = mnl_socket_open(bus);
	if (!ns->sock) {
		r = -errno;
		goto out_free_buf;
	}
	if (mnl_socket_bind(ns->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out_close;
	}
	ns->portid = mnl_socket_get_portid(ns->sock);
	/* small error acks; a receive buffer for many acks (FORCE needs CAP_NET_ADMIN) */
	mnl_socket_setsockopt(ns->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(mnl_socket_get_fd(ns->sock), SOL_SOCKET, SO_RCVBUFFORCE, &size,
		       sizeof(size)) < 0)
		setsockopt(mnl_socket_get_fd(ns->sock), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (getsockopt(mnl_socket_get_fd(ns->sock), SOL_SOCKET, SO_RCVBUF, &size, &sl) < 0)
		size = 0;
	ns->max_per_send = size / ACK_TRUESIZE > 16 ? (unsigned)size / ACK_TRUESIZE : 16;
	ns->seq = (uint32_t)getpid() << 16;
	return 0;

out_close:
	mnl_socket_close(ns->sock);
	ns->sock = NULL;
out_free_buf:
	free(ns->buf);
	ns->buf = NULL;
	return r;
}

void kp_nlsock_close(struct kp_nlsock *ns)
{
	if (ns->batch)
		mnl_nlmsg_batch_stop(ns->batch);
	ns->batch = NULL;
	mnl_socket_close(ns->sock);
	ns->sock = NULL;
	free(ns->buf);
	ns->buf = NULL;
}

struct nlmsghdr *kp_nlsock_put(struct kp_nlsock *ns, void *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++ns->seq;
	return nlh;
}

void *kp_nlsock_msg_buf(struct kp_nlsock *ns, void *buf)
{
	return ns->batch ? mnl_nlmsg_batch_current(ns->batch) : buf;
}

int kp_nlsock_talk(struct kp_nlsock *ns, struct nlmsghdr *req, kp_nlsock_reply_fn fn, void *data)
{
	char *buf;
	uint32_t seq = req->nlmsg_seq;
	int stop = 0, r = -EPROTO;

	if (mnl_socket_sendto(ns->sock, req, req->nlmsg_len) < 0)
		return -errno;
	buf = malloc(RECV_SIZE);
	if (!buf)
		return -ENOMEM; /* the answer stays queued; later requests skip it */
	for (unsigned reads = 0; reads < MAX_READS; reads++) {
		ssize_t n = mnl_socket_recvfrom(ns->sock, buf, RECV_SIZE);
		const struct nlmsghdr *nlh = (const void *)buf;
		int len = (int)n;

		if (n < 0) {
			r = -errno;
			goto out_free_buf;
		}
		for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != ns->portid)
				continue; /* left over from an earlier request */
			if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) {
				const int *err = mnl_nlmsg_get_payload(nlh);

				if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*err))
					r = -EPROTO;
				else
					r = *err < 0 ? *err : stop;
				goto out_free_buf;
			}
			if (fn && !stop)
				stop = fn(nlh, data);
		}
	}
out_free_buf:
	free(buf);
	return r;
}

/* Keeps the failure of the earliest request of the batch (local failures count at the
 * place of the request, so the order is that of the calls). */
static void batch_fail(struct kp_nlsock *ns, uint32_t seq, int err)
{
	if (ns->batch_err && (int32_t)(seq - ns->batch_err_seq) >= 0)
		return;
	ns->batch_err = err;
	ns->batch_err_seq = seq;
}

void kp_nlsock_batch_fail(struct kp_nlsock *ns, int err)
{
	batch_fail(ns, ++ns->seq, err);
}

/*
 * Sends the first @n requests of the batch buffer and reads their @n acks, recording
 * the first failure (as the client's ack_fn maps it) in ns->batch_err.
 */
static int batch_flush(struct kp_nlsock *ns, size_t size, unsigned n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	const struct nlmsghdr *first = mnl_nlmsg_batch_head(ns->batch);
	const struct nlmsghdr *last = first;
	uint32_t seq0 = first->nlmsg_seq, span;
	unsigned acked = 0;
	int rest = (int)size;

	if (!n)
		return 0;
	/* sequence numbers rise but may skip those of requests sent meanwhile */
	for (const struct nlmsghdr *m = first; mnl_nlmsg_ok(m, rest); m = mnl_nlmsg_next(m, &rest))
		last = m;
	span = last->nlmsg_seq - seq0;
	if (mnl_socket_sendto(ns->sock, first, size) < 0)
		return -errno;
	for (unsigned reads = 0; acked < n && reads < MAX_READS; reads++) {
		ssize_t got = mnl_socket_recvfrom(ns->sock, buf, sizeof(buf));
		const struct nlmsghdr *nlh = (const void *)buf;
		int len = (int)got;

		if (got < 0)
			return -errno; /* -ENOBUFS: acks were lost */
		for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			size_t plen = mnl_nlmsg_get_payload_len(nlh);
			int r;

			if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq - seq0 > span ||
			    plen < ns->ack_min || plen < sizeof(e->error))
				continue;
			acked++;
			r = ns->ack_fn(e->error, plen >= sizeof(*e) ? e->msg.nlmsg_type : 0);
			if (r < 0)
				batch_fail(ns, nlh->nlmsg_seq, r);
		}
	}
	return acked == n ? 0 : -EPROTO;
}

void kp_nlsock_batch_queue(struct kp_nlsock *ns)
{
	int r;

	if (!mnl_nlmsg_batch_next(ns->batch)) {
		/* over BATCH_LIMIT: send what came before, keep the new one */
		r = batch_flush(ns, mnl_nlmsg_batch_size(ns->batch), ns->n_queued);
		mnl_nlmsg_batch_reset(ns->batch);
		ns->n_queued = 1;
	} else if (++ns->n_queued < ns->max_per_send) {
		return;
	} else {
		/* within BATCH_LIMIT, but more acks would not fit the receive buffer */
		r = batch_flush(ns, mnl_nlmsg_batch_size(ns->batch), ns->n_queued);
		mnl_nlmsg_batch_reset(ns->batch);
		ns->n_queued = 0;
	}
	if (r < 0) /* lost acks: count it after what was sent */
		kp_nlsock_batch_fail(ns, r);
}

int kp_nlsock_batch_begin(struct kp_nlsock *ns)
{
	if (ns->batch)
		return -EINVAL;
	ns->batch = mnl_nlmsg_batch_start(ns->buf, KP_NLSOCK_BATCH_LIMIT);
	if (!ns->batch)
		return -ENOMEM;
	ns->n_queued = 0;
	ns->batch_err = 0;
	return 0;
}

int kp_nlsock_batch_end(struct kp_nlsock *ns)
{
	int r;

	if (!ns->batch)
		return -EINVAL;
	r = batch_flush(ns, mnl_nlmsg_batch_size(ns->batch), ns->n_queued);
	mnl_nlmsg_batch_stop(ns->batch);
	ns->batch = NULL;
	ns->n_queued = 0;
	if (ns->batch_err)
		r = ns->batch_err;
	ns->batch_err = 0;
	return r;
}
