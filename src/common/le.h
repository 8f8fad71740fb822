/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_LE_H
#define BUNSHIN_COMMON_LE_H

#include <stdint.h>

/*
 * Little-endian fields of any width up to 8 bytes, byte by byte: device
 * registers, configuration spaces and state files are little-endian
 * whatever the host is, and guest memory gives no alignment guarantee.
 */
static inline uint64_t le_get(const uint8_t *p, unsigned int len)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void le_put(uint8_t *p, unsigned int len, uint64_t v)
{
	for (unsigned int i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

#endif
