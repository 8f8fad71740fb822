// SPDX-License-Identifier: MIT
/* Base64 (RFC 4648 section 4), strict: what bunshin accepts it also writes. */
#include <string.h>

#include "b64.h"

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char c)
{
	const char *p = c ? strchr(b64_digits, c) : NULL;

	return p ? (int)(p - b64_digits) : -1;
}

ssize_t b64_decode(const char *in, size_t len, uint8_t *out, size_t max)
{
	size_t n = 0;

	if (len % 4)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;

		for (int k = 0; k < 4; k++) {
			v[k] = b64_val(in[i + k]);
			/* '=' only in the last quantum's last one or two places */
			if (v[k] < 0 && in[i + k] == '=' && i + 4 == len && k >= 2 &&
			    (k == 3 || in[i + 3] == '=')) {
				v[k] = 0;
				pad++;
			} else if (v[k] < 0) {
				return -1;
			}
		}
		if (n + 3 - pad > max)
			return -1;
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		out[n++] = (uint8_t)(w >> 16);
		if (pad < 2)
			out[n++] = (uint8_t)(w >> 8);
		if (pad < 1)
			out[n++] = (uint8_t)w;
	}
	return (ssize_t)n;
}

void b64_encode(const uint8_t *in, size_t n, char *out, bool pad)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;
		size_t left = n - i;

		if (left > 1)
			w |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			w |= in[i + 2];
		out[o++] = b64_digits[w >> 18];
		out[o++] = b64_digits[(w >> 12) & 63];
		if (left > 1)
			out[o++] = b64_digits[(w >> 6) & 63];
		else if (pad)
			out[o++] = '=';
		if (left > 2)
			out[o++] = b64_digits[w & 63];
		else if (pad)
			out[o++] = '=';
	}
	out[o] = 0;
}
