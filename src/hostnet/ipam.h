/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_HOSTNET_IPAM_H
#define BUNSHIN_HOSTNET_IPAM_H

/*
 * Address management for instance networks: an IPv4 subnet, its gateway and
 * DHCP range, the lowest free host address given what the caller's store has
 * already handed out, and port MACs. Pure computation: no I/O, no state, so
 * the daemon stays the one owner of what is allocated.
 *
 * Addresses are uint32_t in host byte order (10.20.0.1 is 0x0a140001).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

#define IPAM_PREFIX_MIN	 16 /* at most 65534 hosts: the allocator's bitmap stays small */
#define IPAM_PREFIX_MAX	 29 /* at least gateway + 5 ports */
#define IPAM_ADDR_STRLEN 16 /* "255.255.255.255" */
#define IPAM_CIDR_STRLEN 19 /* "255.255.255.255/32" */
#define IPAM_MAC_STRLEN	 18 /* "02:b5:00:00:00:00" */

/*
 * bunshin's MACs: 02:b5:xx:xx:xx:xx. 0x02 in the first octet is "locally
 * administered, unicast" (IEEE 802 U/L bit set, I/G bit clear), so they can
 * never clash with a vendor's burned-in address; b5 ("bunshin") tells them
 * from other local schemes on the same host (Docker uses 02:42, QEMU's
 * default 52:54:00 is also local but shared by every QEMU user).
 */
#define IPAM_MAC_OUI0 0x02
#define IPAM_MAC_OUI1 0xb5

struct ipam_net {
	uint32_t network; /* host bits all zero */
	uint32_t netmask;
	uint32_t broadcast;
	uint32_t gateway;    /* first usable address: the bridge's */
	uint32_t dhcp_first; /* ports: gateway + 1 .. broadcast - 1 */
	uint32_t dhcp_last;
	unsigned int prefix;
};

/* "10.20.0.0/24" -> net. Refuses host bits set and prefixes outside /16../29. */
int ipam_parse_cidr(const char *s, struct ipam_net *net, struct error *err);

/* A dotted quad, strictly (no leading zeros, no short forms). */
int ipam_parse_addr(const char *s, uint32_t *addr, struct error *err);

/* Number of addresses a port can get (dhcp_last - dhcp_first + 1). */
uint32_t ipam_capacity(const struct ipam_net *net);

/* True when addr is a port address of net: not network, gateway or broadcast. */
bool ipam_is_port_addr(const struct ipam_net *net, uint32_t addr);

/*
 * The lowest port address of net that is not in taken[0..ntaken). Entries
 * outside net's port range (another network's, the gateway) are ignored, so
 * the caller may pass its whole list. -ENOSPC when the network is full.
 */
int ipam_alloc(const struct ipam_net *net, const uint32_t *taken, size_t ntaken, uint32_t *out,
	       struct error *err);

/*
 * A bunshin MAC from a seed (the port's id): the last four octets are a
 * bijective mix of the seed, so distinct seeds give distinct MACs and the
 * same seed always gives the same MAC.
 */
void ipam_mac_from_seed(uint32_t seed, uint8_t mac[6]);

void ipam_format_addr(uint32_t addr, char buf[IPAM_ADDR_STRLEN]);
void ipam_format_cidr(const struct ipam_net *net, char buf[IPAM_CIDR_STRLEN]);
void ipam_format_mac(const uint8_t mac[6], char buf[IPAM_MAC_STRLEN]);

#endif
