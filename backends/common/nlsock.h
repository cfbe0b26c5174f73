/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The request/answer plumbing the libmnl netlink clients share (ipset.c over nfnetlink,
 * ipvs/link.c over rtnetlink): one bound socket with small acks (NETLINK_CAP_ACK) and a
 * big receive buffer, request headers with rising sequence numbers, one request answered
 * in full, and batches: requests packed many per sendmsg() (up to KP_NLSOCK_BATCH_LIMIT
 * bytes, and no more than the receive buffer holds acks for), every ack read, the first
 * failure kept and reported at the end. The client embeds struct kp_nlsock and builds the
 * payload of each request; it maps the kernel's errors its own way.
 */
#ifndef KP_NLSOCK_H
#define KP_NLSOCK_H

#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

#define KP_NLSOCK_BATCH_LIMIT (64 * 1024) /* bytes of requests per sendmsg() */
#define KP_NLSOCK_MSG_MAX     1024	  /* bigger than any request a client builds */

/*
 * Maps the ack of one batched request to what the batch reports: 0 (also for failures
 * the client counts as success) or -errno. @error is the ack's error as the kernel sent
 * it (0 or negative); @req_type the type of the request it answers, from the header the
 * ack echoes, or 0 when the ack is too short to hold it (only with a small @ack_min, see
 * kp_nlsock_open()).
 */
typedef int (*kp_nlsock_ack_fn)(int error, uint16_t req_type);

/* Called with each answer to a request; non-zero stops the calls (see kp_nlsock_talk()). */
typedef int (*kp_nlsock_reply_fn)(const struct nlmsghdr *nlh, void *data);

struct kp_nlsock {
	struct mnl_socket *sock;
	uint32_t portid;
	uint32_t seq;		       /* of the last request built */
	unsigned max_per_send;	       /* requests whose acks fit the receive buffer */
	char *buf;		       /* KP_NLSOCK_BATCH_LIMIT + KP_NLSOCK_MSG_MAX: requests */
	struct mnl_nlmsg_batch *batch; /* non-NULL between batch_begin and batch_end */
	unsigned n_queued;	       /* requests in @batch */
	int batch_err;		       /* failure of the earliest failing request ... */
	uint32_t batch_err_seq;	       /* ... in the current batch, and its sequence */
	kp_nlsock_ack_fn ack_fn;       /* the client's mapping of batched acks */
	size_t ack_min;		       /* shortest ack payload counted as an ack */
};

/*
 * Opens and binds a netlink socket of protocol @bus into @ns (zeroed by the caller).
 * @ack_fn maps batched acks; acks with a payload shorter than @ack_min bytes (at least
 * sizeof(int); sizeof(struct nlmsgerr) to learn the request's type) are not counted.
 * 0 or -errno; nothing to close on failure.
 */
int kp_nlsock_open(struct kp_nlsock *ns, int bus, kp_nlsock_ack_fn ack_fn, size_t ack_min);
/* Stops a batch left open and closes the socket. */
void kp_nlsock_close(struct kp_nlsock *ns);

/* Puts a request header (NLM_F_REQUEST | @flags, the next sequence number) into @buf. */
struct nlmsghdr *kp_nlsock_put(struct kp_nlsock *ns, void *buf, uint16_t type, uint16_t flags);
/* Where to build the next request: the batch's current position in a batch, else @buf. */
void *kp_nlsock_msg_buf(struct kp_nlsock *ns, void *buf);

/*
 * Sends one request and reads its answers: messages with its sequence number go to @fn
 * (may be NULL) until the ack or NLMSG_DONE. Once @fn returns non-zero it is not called
 * again, the rest is drained, and that value is returned (unless the kernel reports an
 * error). Returns 0, the kernel's error negated as it came (the client maps it), or
 * -errno of the socket.
 */
int kp_nlsock_talk(struct kp_nlsock *ns, struct nlmsghdr *req, kp_nlsock_reply_fn fn, void *data);

/* Starts a batch: 0, or -EINVAL when one is open, or -ENOMEM. */
int kp_nlsock_batch_begin(struct kp_nlsock *ns);
/* Queues the request just built at the batch's current position (see kp_nlsock_msg_buf());
 * lost acks of what this sends count as a failure after it. */
void kp_nlsock_batch_queue(struct kp_nlsock *ns);
/* Records @err of a request that failed before it was queued, at its place in the batch. */
void kp_nlsock_batch_fail(struct kp_nlsock *ns, int err);
/* Sends the rest and ends the batch: 0, its first failure, or -EINVAL outside a batch. */
int kp_nlsock_batch_end(struct kp_nlsock *ns);

#endif
