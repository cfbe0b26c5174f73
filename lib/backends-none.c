// SPDX-License-Identifier: GPL-2.0-or-later
/* The backends configure adds to the built-in ones: none in this build (with
 * --enable-dpdk, backends/dpdk/register.c is the list). */
#include "internal.h"

const struct kp_backend_ops *const kp_extra_backends[] = { NULL };
