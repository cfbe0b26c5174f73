// SPDX-License-Identifier: GPL-2.0-or-later
/* The backends configure adds to the built-in ones: here, with --enable-dpdk, the DPDK
 * data plane (lib/backends-none.c is the list without it). */
#include "internal.h"

extern const struct kp_backend_ops kp_backend_dpdk;

const struct kp_backend_ops *const kp_extra_backends[] = { &kp_backend_dpdk, NULL };
