/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * YAML (and JSON, a subset) to a jansson tree: the one parser the library's decoders
 * and kproxyd's config file share. Built as its own convenience library (libkpyaml),
 * linked into libkproxy (where the symbol stays hidden) and into kproxyd.
 */
#ifndef KP_KPYAML_H
#define KP_KPYAML_H

#include <stddef.h>

#include <jansson.h>

/*
 * Parse YAML (one or more documents) into a JSON array of documents.
 * Returns 0 and *ret_docs (caller owns), or -EBADMSG with a message in @err of
 * @err_size bytes.
 */
int kp_yaml_parse(const char *buf, size_t size, json_t **ret_docs, char *err, size_t err_size);

#endif
