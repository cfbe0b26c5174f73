/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kube-proxy's value syntaxes: Go-style durations and port ranges, as its flags and
 * configuration file write them (the file itself is kproxyd's business: proxy/flags.c).
 */
#ifndef KPROXY_CONFIG_H
#define KPROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * kp_parse_duration - a Go duration ("1s", "500ms", "1m30s", "2h", "0") in milliseconds
 * Returns: 0, or -EINVAL (also for negative values and more than UINT32_MAX ms).
 */
int kp_parse_duration(const char *s, uint32_t *ret_ms);

/**
 * kp_parse_port_range - kube-proxy's --proxy-port-range: "LO-HI", "LO+N" or one port,
 * inclusive; "", "0" and "0-0" mean no range (both results 0)
 * Returns: 0, or -EINVAL (a port above 65535, HI below LO, anything else).
 */
int kp_parse_port_range(const char *s, uint16_t *ret_lo, uint16_t *ret_hi);

#ifdef __cplusplus
}
#endif

#endif
