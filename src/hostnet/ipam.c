// SPDX-License-Identifier: MIT
/*
 * IPv4 subnets, allocation and MACs for instance networks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipam.h"

int ipam_parse_addr(const char *s, uint32_t *addr, struct error *err)
{
	struct in_addr in;

	/* glibc's inet_pton takes exactly four decimal parts, no leading zeros. */
	if (inet_pton(AF_INET, s, &in) != 1)
		return error_set(err, EINVAL, "'%s' is not an IPv4 address", s);
	*addr = ntohl(in.s_addr);
	return 0;
}

static int ipam_parse_prefix(const char *s, const char *cidr, unsigned int *prefix,
			     struct error *err)
{
	size_t n = strlen(s);

	if (n == 0 || n > 2 || strspn(s, "0123456789") != n || (n == 2 && s[0] == '0'))
		return error_set(err, EINVAL, "'%s': prefix length is not a number", cidr);
	*prefix = (unsigned int)atoi(s);
	if (*prefix < IPAM_PREFIX_MIN || *prefix > IPAM_PREFIX_MAX)
		return error_set(err, EINVAL, "'%s': prefix /%u outside /%d../%d", cidr, *prefix,
				 IPAM_PREFIX_MIN, IPAM_PREFIX_MAX);
	return 0;
}

int ipam_parse_cidr(const char *s, struct ipam_net *net, struct error *err)
{
	char buf[IPAM_CIDR_STRLEN + 1];
	unsigned int prefix = 0;
	uint32_t addr, mask;
	char *slash;
	int ret;

	if (strnlen(s, sizeof(buf)) >= sizeof(buf))
		return error_set(err, EINVAL, "'%.32s...' is not an IPv4 CIDR (too long)", s);
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return error_set(err, EINVAL, "'%s' is not an IPv4 CIDR (no /prefix)", s);
	*slash = '\0';
	if (ipam_parse_addr(buf, &addr, err))
		return error_set(err, EINVAL, "'%s' is not an IPv4 CIDR (bad address)", s);
	ret = ipam_parse_prefix(slash + 1, s, &prefix, err);
	if (ret)
		return ret;
	mask = ~0u << (32 - prefix);
	if (addr & ~mask) {
		ipam_format_addr(addr & mask, buf);
		return error_set(err, EINVAL, "'%s' has host bits set (did you mean %s/%u?)", s,
				 buf, prefix);
	}
	*net = (struct ipam_net){
		.network = addr,
		.netmask = mask,
		.broadcast = addr | ~mask,
		.gateway = addr + 1,
		.dhcp_first = addr + 2,
		.dhcp_last = (addr | ~mask) - 1,
		.prefix = prefix,
	};
	return 0;
}

uint32_t ipam_capacity(const struct ipam_net *net)
{
	return net->dhcp_last - net->dhcp_first + 1;
}

bool ipam_is_port_addr(const struct ipam_net *net, uint32_t addr)
{
	return addr >= net->dhcp_first && addr <= net->dhcp_last;
}

int ipam_alloc(const struct ipam_net *net, const uint32_t *taken, size_t ntaken, uint32_t *out,
	       struct error *err)
{
	uint32_t cap = ipam_capacity(net);
	char cidr[IPAM_CIDR_STRLEN];
	uint8_t *used;

	/* One byte per address: 64 KiB at /16, and linear in what is taken. */
	used = calloc(cap, 1);
	if (!used)
		return error_set(err, ENOMEM, "allocating an address: out of memory");
	for (size_t i = 0; i < ntaken; i++)
		if (ipam_is_port_addr(net, taken[i]))
			used[taken[i] - net->dhcp_first] = 1;
	for (uint32_t i = 0; i < cap; i++) {
		if (!used[i]) {
			free(used);
			*out = net->dhcp_first + i;
			return 0;
		}
	}
	free(used);
	ipam_format_cidr(net, cidr);
	return error_set(err, ENOSPC, "network %s is full (%u port addresses)", cidr, cap);
}

/* murmur3's finaliser: xor-shifts and odd multiplies are invertible, so it is a bijection. */
static uint32_t ipam_mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85ebca6bu;
	x ^= x >> 13;
	x *= 0xc2b2ae35u;
	x ^= x >> 16;
	return x;
}

void ipam_mac_from_seed(uint32_t seed, uint8_t mac[6])
{
	uint32_t h = ipam_mix32(seed);

	mac[0] = IPAM_MAC_OUI0;
	mac[1] = IPAM_MAC_OUI1;
	mac[2] = h >> 24;
	mac[3] = h >> 16;
	mac[4] = h >> 8;
	mac[5] = h;
}

void ipam_format_addr(uint32_t addr, char buf[IPAM_ADDR_STRLEN])
{
	snprintf(buf, IPAM_ADDR_STRLEN, "%u.%u.%u.%u", addr >> 24, addr >> 16 & 0xff,
		 addr >> 8 & 0xff, addr & 0xff);
}

void ipam_format_cidr(const struct ipam_net *net, char buf[IPAM_CIDR_STRLEN])
{
	char a[IPAM_ADDR_STRLEN];

	ipam_format_addr(net->network, a);
	snprintf(buf, IPAM_CIDR_STRLEN, "%s/%u", a, net->prefix);
}

void ipam_format_mac(const uint8_t mac[6], char buf[IPAM_MAC_STRLEN])
{
	snprintf(buf, IPAM_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
		 mac[3], mac[4], mac[5]);
}
