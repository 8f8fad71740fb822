/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_B64_H
#define BUNSHIN_COMMON_B64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Strict base64 (padding required, no whitespace), into out of max bytes:
 * the decoded length, or -1 for anything else (or when out is too small).
 */
ssize_t b64_decode(const char *in, size_t len, uint8_t *out, size_t max);
/* out holds 4 * ((n + 2) / 3) + 1 bytes; pad false drops the '=' (SSH fingerprints). */
void b64_encode(const uint8_t *in, size_t n, char *out, bool pad);

#endif
