/* SPDX-License-Identifier: MIT */
/* Helpers shared by test=virtio-net and test=net-bench. */
#include "net.h"

uint16_t net_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

void net_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

uint16_t net_csum(const uint8_t *p, uint32_t len)
{
	uint32_t s = 0;

	for (uint32_t i = 0; i + 1 < len; i += 2)
		s += net_get16(p + i);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

bool net_parse_ip(const char *key, const char *def, uint8_t *ip)
{
	const char *v = def;
	size_t len = strlen(def), i = 0;

	opt_get(key, &v, &len);
	for (int k = 0; k < 4; k++) {
		size_t j = i;
		uint64_t x;
		while (j < len && v[j] != '.')
			j++;
		if (!parse_u64(v + i, j - i, 10, &x) || x > 255 || (k < 3 && j == len))
			return false;
		ip[k] = (uint8_t)x;
		i = j + 1;
	}
	return i >= len;
}
