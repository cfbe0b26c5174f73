/* SPDX-License-Identifier: GPL-2.0-or-later */
/* iptables' own lock, shared by every tool that rewrites a netfilter table. */
#ifndef KP_XTLOCK_H
#define KP_XTLOCK_H

struct kp_ctx;

/* Takes /run/xtables.lock, waiting up to 5 s; @who prefixes log lines. Returns the lock's
 * descriptor or -errno (-EBUSY when another program holds it for longer). */
int kp_xt_lock(struct kp_ctx *ctx, const char *who);
/* Releases a lock from kp_xt_lock(); accepts a negative descriptor. */
void kp_xt_unlock(int fd);

#endif
