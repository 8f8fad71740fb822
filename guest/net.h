/* SPDX-License-Identifier: MIT */
/* Network byte order and the Internet checksum, for the net scenarios (net.c). */
#ifndef BUNSHIN_GUEST_NET_H
#define BUNSHIN_GUEST_NET_H

#include "guest.h"

uint16_t net_get16(const uint8_t *p);
void net_put16(uint8_t *p, uint16_t v);
/* The Internet checksum (RFC 1071) over len bytes. */
uint16_t net_csum(const uint8_t *p, uint32_t len);
/* A dotted IPv4 address from command-line option key, else def. */
bool net_parse_ip(const char *key, const char *def, uint8_t *ip);

#endif
