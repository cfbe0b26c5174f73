/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Which capability an EPERM came from: the data planes name, in their error, the
 * capabilities an operation needs and those of them this process does not hold, so a
 * container started without them says so instead of a bare "Operation not permitted".
 */
#ifndef KP_CAPS_H
#define KP_CAPS_H

#include <stddef.h>
#include <stdint.h>
#include <linux/capability.h>	/* CAP_* */

#define KP_CAP(n) (UINT64_C(1) << (n))

/*
 * For @err -EPERM or -EACCES, writes "; needs CAP_A and CAP_B, and this process lacks
 * CAP_B" (the capabilities of the mask @need, then those missing from the effective set)
 * to @buf; for any other error, or when the effective set cannot be read, writes "" (or
 * the "needs" part only). Returns @buf.
 */
const char *kp_caps_explain(int err, uint64_t need, char *buf, size_t size);

#endif
