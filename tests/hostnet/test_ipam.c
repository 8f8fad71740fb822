// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/hostnet/ipam.h"

static uint32_t A(const char *s)
{
	struct error err = {0};
	uint32_t a = 0;

	cr_assert_eq(ipam_parse_addr(s, &a, &err), 0, "%s", err.msg);
	return a;
}

static struct ipam_net net_of(const char *cidr)
{
	struct error err = {0};
	struct ipam_net n;

	cr_assert_eq(ipam_parse_cidr(cidr, &n, &err), 0, "%s: %s", cidr, err.msg);
	return n;
}

static void refused(const char *cidr, const char *needle)
{
	struct error err = {0};
	struct ipam_net n;

	cr_assert_eq(ipam_parse_cidr(cidr, &n, &err), -EINVAL, "'%s' accepted", cidr);
	cr_assert_eq(err.code, EINVAL);
	cr_assert(strstr(err.msg, needle), "'%s': message '%s' lacks '%s'", cidr, err.msg, needle);
	cr_assert_null(strchr(err.msg, '\n'));
}

Test(ipam, parses_a_slash_24)
{
	struct ipam_net n = net_of("10.20.0.0/24");

	cr_assert_eq(n.network, A("10.20.0.0"));
	cr_assert_eq(n.netmask, A("255.255.255.0"));
	cr_assert_eq(n.broadcast, A("10.20.0.255"));
	cr_assert_eq(n.gateway, A("10.20.0.1"));
	cr_assert_eq(n.dhcp_first, A("10.20.0.2"));
	cr_assert_eq(n.dhcp_last, A("10.20.0.254"));
	cr_assert_eq(n.prefix, 24);
	cr_assert_eq(ipam_capacity(&n), 253);
}

Test(ipam, prefix_bounds)
{
	struct ipam_net n16 = net_of("172.16.0.0/16"), n29 = net_of("192.168.7.8/29");

	cr_assert_eq(ipam_capacity(&n16), 65533);
	cr_assert_eq(n16.dhcp_last, A("172.16.255.254"));
	cr_assert_eq(n29.gateway, A("192.168.7.9"));
	cr_assert_eq(n29.dhcp_first, A("192.168.7.10"));
	cr_assert_eq(n29.dhcp_last, A("192.168.7.14"));
	cr_assert_eq(n29.broadcast, A("192.168.7.15"));
	cr_assert_eq(ipam_capacity(&n29), 5);
	refused("10.0.0.0/15", "outside /16../29");
	refused("10.0.0.0/30", "outside /16../29");
	refused("10.0.0.0/32", "outside /16../29");
	refused("0.0.0.0/0", "outside");
}

Test(ipam, refuses_host_bits)
{
	refused("10.20.0.1/24", "host bits set (did you mean 10.20.0.0/24?)");
	refused("10.20.0.4/29", "host bits");
	refused("10.21.0.0/15", "outside"); /* the prefix is checked first */
	refused("10.20.128.0/16", "did you mean 10.20.0.0/16?");
}

Test(ipam, refuses_malformed)
{
	refused("", "no /prefix");
	refused("10.20.0.0", "no /prefix");
	refused("10.20.0.0/", "not a number");
	refused("10.20.0.0/-24", "not a number");
	refused("10.20.0.0/+24", "not a number");
	refused("10.20.0.0/024", "not a number");
	refused("10.20.0.0/24 ", "not a number");
	refused("10.20.0.0/2x", "not a number");
	refused("10.20.0.0/24/24", "not a number");
	refused("10.20.0/24", "bad address");
	refused("10.20.0.0.0/24", "bad address");
	refused("10.20.0.256/24", "bad address");
	refused(" 10.20.0.0/24", "bad address");
	refused("010.20.0.0/24", "bad address");
	refused("::1/24", "bad address");
	refused("/24", "bad address");
	refused("10.20.0.0/24aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too long");
}

Test(ipam, port_addresses)
{
	struct ipam_net n = net_of("10.20.0.0/29");

	cr_assert_not(ipam_is_port_addr(&n, A("10.20.0.0")));
	cr_assert_not(ipam_is_port_addr(&n, A("10.20.0.1")));
	cr_assert(ipam_is_port_addr(&n, A("10.20.0.2")));
	cr_assert(ipam_is_port_addr(&n, A("10.20.0.6")));
	cr_assert_not(ipam_is_port_addr(&n, A("10.20.0.7")));
	cr_assert_not(ipam_is_port_addr(&n, A("10.20.0.8")));
	cr_assert_not(ipam_is_port_addr(&n, A("10.19.255.255")));
}

static uint32_t alloc_ok(const struct ipam_net *n, const uint32_t *taken, size_t ntaken)
{
	struct error err = {0};
	uint32_t a = 0;

	cr_assert_eq(ipam_alloc(n, taken, ntaken, &a, &err), 0, "%s", err.msg);
	return a;
}

Test(ipam, alloc_lowest_free)
{
	struct ipam_net n = net_of("10.20.0.0/24");
	uint32_t taken[] = {A("10.20.0.3"), A("10.20.0.2"), A("10.20.0.5")};

	cr_assert_eq(alloc_ok(&n, NULL, 0), A("10.20.0.2"));
	cr_assert_eq(alloc_ok(&n, taken, 1), A("10.20.0.2"));
	cr_assert_eq(alloc_ok(&n, taken, 2), A("10.20.0.4"));
	cr_assert_eq(alloc_ok(&n, taken, 3), A("10.20.0.4"));
	/* the same input always gives the same answer */
	cr_assert_eq(alloc_ok(&n, taken, 3), A("10.20.0.4"));
}

Test(ipam, alloc_ignores_foreign_and_reserved)
{
	struct ipam_net n = net_of("10.20.0.0/29");
	uint32_t taken[] = {A("10.20.0.0"), A("10.20.0.1"), A("10.20.0.7"), A("10.20.0.8"),
			    A("10.21.0.2"), A("10.20.0.2"), A("10.20.0.2")};

	cr_assert_eq(alloc_ok(&n, taken, 7), A("10.20.0.3"));
}

Test(ipam, alloc_never_gives_network_gateway_or_broadcast)
{
	struct ipam_net n = net_of("10.20.0.0/29");
	uint32_t taken[8];
	size_t nt = 0;

	for (int i = 0; i < 5; i++) {
		uint32_t a = alloc_ok(&n, taken, nt);

		cr_assert(ipam_is_port_addr(&n, a));
		cr_assert_eq(a, A("10.20.0.2") + (uint32_t)i);
		taken[nt++] = a;
	}
}

Test(ipam, alloc_full)
{
	struct ipam_net n = net_of("10.20.0.0/29");
	uint32_t taken[] = {A("10.20.0.6"), A("10.20.0.5"), A("10.20.0.4"), A("10.20.0.3"),
			    A("10.20.0.2")};
	struct error err = {0};
	uint32_t a = 7;

	cr_assert_eq(ipam_alloc(&n, taken, 5, &a, &err), -ENOSPC);
	cr_assert_eq(a, 7, "output written on failure");
	cr_assert_str_eq(err.msg, "network 10.20.0.0/29 is full (5 port addresses)");
	/* freeing one (dropping it from the store) makes it the answer again */
	cr_assert_eq(alloc_ok(&n, taken + 1, 4), A("10.20.0.6"));
}

Test(ipam, alloc_last_of_a_slash_16)
{
	struct ipam_net n = net_of("10.99.0.0/16");
	uint32_t cap = ipam_capacity(&n);
	uint32_t *taken = malloc(sizeof(*taken) * cap);
	struct error err = {0};
	uint32_t a;

	cr_assert_not_null(taken);
	for (uint32_t i = 0; i < cap; i++)
		taken[i] = n.dhcp_last - i; /* every port address but the lowest-but-one */
	taken[cap - 2] = n.dhcp_first;
	cr_assert_eq(alloc_ok(&n, taken, cap), A("10.99.0.3"));
	taken[cap - 2] = A("10.99.0.3");
	cr_assert_eq(ipam_alloc(&n, taken, cap, &a, &err), -ENOSPC);
	free(taken);
}

Test(ipam, mac_is_local_unicast_and_deterministic)
{
	uint8_t m1[6], m2[6];
	char s[IPAM_MAC_STRLEN];

	ipam_mac_from_seed(42, m1);
	ipam_mac_from_seed(42, m2);
	cr_assert_arr_eq(m1, m2, 6);
	cr_assert_eq(m1[0] & 0x01, 0, "multicast bit set");
	cr_assert_eq(m1[0] & 0x02, 0x02, "local bit clear");
	cr_assert_eq(m1[0], 0x02);
	cr_assert_eq(m1[1], 0xb5);
	ipam_format_mac(m1, s);
	cr_assert_eq(strlen(s), 17);
	cr_assert_eq(strncmp(s, "02:b5:", 6), 0, "%s", s);
	/* pinned: a change of the mix would renumber every existing port's MAC */
	ipam_mac_from_seed(1, m1);
	ipam_format_mac(m1, s);
	cr_assert_str_eq(s, "02:b5:51:4e:28:b7");
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

Test(ipam, mac_distinct_for_distinct_seeds)
{
	/* the mix is a bijection, so consecutive seeds (port ids) never collide */
	enum { N = 200000 };
	uint32_t *tails = malloc(sizeof(*tails) * N);

	cr_assert_not_null(tails);
	for (uint32_t i = 0; i < N; i++) {
		uint8_t m[6];

		ipam_mac_from_seed(i, m);
		tails[i] = (uint32_t)m[2] << 24 | (uint32_t)m[3] << 16 | (uint32_t)m[4] << 8 | m[5];
	}
	qsort(tails, N, sizeof(*tails), cmp_u32);
	for (uint32_t i = 1; i < N; i++)
		cr_assert_neq(tails[i - 1], tails[i], "two seeds give %08x", tails[i]);
	free(tails);
}

Test(ipam, formats)
{
	struct ipam_net n = net_of("192.168.100.0/22");
	char a[IPAM_ADDR_STRLEN], c[IPAM_CIDR_STRLEN];

	ipam_format_addr(n.broadcast, a);
	cr_assert_str_eq(a, "192.168.103.255");
	ipam_format_cidr(&n, c);
	cr_assert_str_eq(c, "192.168.100.0/22");
	ipam_format_addr(0xffffffffu, a);
	cr_assert_str_eq(a, "255.255.255.255");
}
