/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kube-proxy's chain names: PREFIX + the first 16 characters of
 * base32(sha256(input)), so a service gets the same chains under either proxy.
 */
#ifndef KP_IPT_NAMES_H
#define KP_IPT_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define KP_CHAIN_NAME_SIZE 29	/* XT_EXTENSION_MAXNAMELEN: 28 characters and the NUL */

void kp_sha256(const void *data, size_t size, uint8_t out[32]);
/* Writes PREFIX + hash16(input) into @out (KP_CHAIN_NAME_SIZE bytes). */
void kp_chain_name(char *out, const char *prefix, const char *input);

#endif
