// SPDX-License-Identifier: MIT
/*
 * firewall_rules.c's generator: store rows in, nft text out. What the
 * text says is checked line by line, hostile rows must stay out of it,
 * and the kernel must take it (applied twice, in a network namespace of
 * the test's own, through libnftables as bunshind does).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/daemon/firewall.h"

static json_t *net(int64_t id, int64_t tenant, const char *cidr, bool isolated)
{
	char bridge[16];

	snprintf(bridge, sizeof(bridge), "bn-%lld", (long long)id);
	return json_pack("{s:I, s:I, s:s, s:s, s:I}", "id", (json_int_t)id, "tenant_id",
			 (json_int_t)tenant, "bridge", bridge, "cidr", cidr, "isolated",
			 (json_int_t)isolated);
}

static json_t *port(int64_t inst, const char *bridge, const char *mac, const char *ip)
{
	return json_pack("{s:I, s:s, s:s, s:s}", "instance_id", (json_int_t)inst, "bridge", bridge,
			 "mac", mac, "ip", ip);
}

static json_t *fwd(const char *proto, int64_t hp, int64_t gp, const char *ip, const char *bridge)
{
	return json_pack("{s:s, s:I, s:I, s:s, s:s}", "proto", proto, "host_port", (json_int_t)hp,
			 "guest_port", (json_int_t)gp, "ip", ip, "bridge", bridge);
}

/* Tenant 1: bn-1 (10.0.0.0/24) and bn-2 (isolated); tenant 2: bn-3, overlapping bn-1. */
static json_t *nets, *ports, *fwds;

static void setup(void)
{
	nets = json_pack("[o, o, o]", net(1, 1, "10.0.0.0/24", false),
			 net(2, 1, "10.9.0.0/24", true), net(3, 2, "10.0.0.0/24", false));
	ports = json_pack("[o, o, o]", port(5, "bn-1", "52:54:00:00:00:05", "10.0.0.2"),
			  port(6, "bn-2", "52:54:00:00:00:06", "10.9.0.2"),
			  port(7, "bn-3", "52:54:00:00:00:07", "10.0.0.2"));
	fwds = json_pack("[o, o]", fwd("tcp", 8080, 80, "10.0.0.2", "bn-1"),
			 fwd("udp", 5353, 53, "10.0.0.2", "bn-3"));
}

static void teardown(void)
{
	json_decref(nets);
	json_decref(ports);
	json_decref(fwds);
}

TestSuite(fw_rules, .init = setup, .fini = teardown);

static char *gen(int *skipped)
{
	char *t = fw_ruleset(nets, ports, fwds, skipped);

	cr_assert_not_null(t);
	return t;
}

#define HAS(t, s)   cr_expect(strstr(t, s), "missing: %s\n---\n%s", s, t)
#define LACKS(t, s) cr_expect(!strstr(t, s), "should not be there: %s\n---\n%s", s, t)

Test(fw_rules, replaces_both_tables_in_one_text)
{
	int skipped = -1;
	char *t = gen(&skipped);

	cr_expect_eq(skipped, 0);
	HAS(t, "table inet bunshin {}\ndelete table inet bunshin\ntable inet bunshin {");
	HAS(t, "table bridge bunshin {}\ndelete table bridge bunshin\ntable bridge bunshin {");
	free(t);
}

Test(fw_rules, egress_nat_only_for_networks_that_are_not_isolated)
{
	char *t = gen(NULL);

	HAS(t, "iifname \"bn-1\" ip saddr 10.0.0.0/24 oifname != \"bn-*\" masquerade");
	HAS(t, "iifname \"bn-3\" ip saddr 10.0.0.0/24 oifname != \"bn-*\" masquerade");
	LACKS(t, "iifname \"bn-2\" ip saddr 10.9.0.0/24 oifname != \"bn-*\" masquerade");
	HAS(t, "iifname \"bn-2\" oifname != \"bn-2\" counter name \"isolated\" drop");
	HAS(t, "oifname \"bn-2\" iifname != \"bn-2\" counter name \"isolated\" drop");
	free(t);
}

Test(fw_rules, tenants_reach_only_their_own_bridges)
{
	char *t = gen(NULL);
	const char *iso = strstr(t, "counter name \"isolated\" drop");
	const char *same = strstr(t, "iifname \"bn-1\" oifname { \"bn-1\" } accept");
	const char *wall =
		strstr(t, "iifname \"bn-1\" oifname \"bn-*\" counter name \"tenant\" drop");

	/* bn-2 is tenant 1's too, but isolated: not in bn-1's set. */
	cr_expect(same && wall && same < wall, "\n%s", t);
	cr_expect(iso && iso < same, "isolated drops must come first\n%s", t);
	HAS(t, "iifname \"bn-3\" oifname { \"bn-3\" } accept");
	HAS(t, "iifname \"bn-*\" counter name \"spoof\" drop");
	HAS(t, "oifname \"bn-*\" counter name \"inbound\" drop");
	free(t);
}

Test(fw_rules, host_answers_dhcp_dns_ping_and_metadata_only)
{
	char *t = gen(NULL);

	HAS(t, "iifname != \"bn-*\" accept");
	HAS(t, "udp sport 68 udp dport 67 accept");
	HAS(t, "ip daddr 169.254.169.254 tcp dport 80 accept");
	/* DNS: port 53 is redirected to the network's own dnsmasq's port (netroute.h). */
	HAS(t,
	    "iifname \"bn-1\" ip daddr 10.0.0.1 meta l4proto { tcp, udp } th dport 20001 accept");
	HAS(t,
	    "iifname \"bn-3\" ip daddr 10.0.0.1 meta l4proto { tcp, udp } th dport 20003 accept");
	HAS(t, "iifname \"bn-3\" ip daddr 10.0.0.1 udp dport 53 dnat ip to 10.0.0.1:20003");
	HAS(t, "iifname \"bn-3\" ip daddr 10.0.0.1 tcp dport 53 dnat ip to 10.0.0.1:20003");
	LACKS(t, "th dport 53 accept");
	HAS(t, "iifname \"bn-2\" ip daddr 10.9.0.1 icmp type echo-request accept");
	HAS(t, "counter name \"host\" drop\n\t}");
	free(t);
}

Test(fw_rules, forwards_dnat_from_outside_and_from_the_host)
{
	char *t = gen(NULL);
	const char *pre = strstr(t, "chain prerouting"), *out = strstr(t, "chain output");
	const char *d = "fib daddr type local tcp dport 8080 meta mark set 1 ct mark set 1 dnat ip "
			"to 10.0.0.2:80";

	cr_assert(pre && out);
	cr_expect(strstr(pre, d) && strstr(out, d), "\n%s", t);
	/* bn-3's 10.0.0.2 is bn-1's too: the mark routes it to bn-3 (netroute.h). */
	HAS(t, "fib daddr type local udp dport 5353 meta mark set 3 ct mark set 3 dnat ip to "
	       "10.0.0.2:53");
	HAS(t, "ct status dnat oifname \"bn-1\" ip daddr 10.0.0.2 tcp dport 80 accept");
	HAS(t, "ct status dnat oifname \"bn-3\" ip daddr 10.0.0.2 udp dport 53 accept");
	HAS(t, "ct status dnat oifname \"bn-1\" ip saddr 10.0.0.0/24 masquerade");
	HAS(t, "ct status dnat oifname \"bn-2\" ip saddr 10.9.0.0/24 masquerade");
	free(t);
}

Test(fw_rules, each_tap_may_send_only_from_its_mac_and_ip)
{
	char *t = gen(NULL);
	const char *c = strstr(t, "chain port_5 {");

	cr_assert(c, "\n%s", t);
	HAS(t, "iifname \"bt-5\" jump port_5");
	HAS(c, "ether saddr != 52:54:00:00:00:05 counter name \"spoof\" drop");
	HAS(c, "arp saddr ether 52:54:00:00:00:05 arp saddr ip { 10.0.0.2, 0.0.0.0 } accept");
	HAS(c, "ether type ip ip saddr 10.0.0.2 accept");
	HAS(c, "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp dport 67 accept");
	HAS(c, "ether type ip6 counter name \"ipv6\" drop");
	HAS(t, "iifname \"bt-*\" counter name \"spoof\" drop");
	free(t);
}

Test(fw_rules, a_deleted_port_or_network_leaves_no_rule)
{
	char *t;

	json_array_remove(ports, 0);
	json_array_remove(fwds, 0);
	json_array_remove(nets, 2);
	json_array_remove(ports, 1); /* bn-3's port went with it */
	json_array_remove(fwds, 0);
	t = gen(NULL);
	LACKS(t, "bt-5");
	LACKS(t, "port_5");
	LACKS(t, "8080");
	LACKS(t, "bn-3");
	LACKS(t, "bt-7");
	HAS(t, "bt-6");
	free(t);
}

Test(fw_rules, hostile_rows_are_left_out)
{
	int skipped = 0;
	char *t;

	json_array_append_new(nets, net(4, 3, "10.1.0.0/24\" ; flush ruleset ; \"", false));
	json_array_append_new(nets, json_pack("{s:I, s:s, s:s}", "tenant_id", (json_int_t)3,
					      "bridge", "bn-4\" accept", "cidr", "10.2.0.0/24"));
	json_array_append_new(ports, port(8, "bn-1", "52:54:00:00:00:08 accept", "10.0.0.3"));
	json_array_append_new(ports, port(9, "bn-1", "52:54:00:00:00:09", "10.0.0.4; accept"));
	json_array_append_new(ports, port(-1, "bn-1", "52:54:00:00:00:0a", "10.0.0.5"));
	json_array_append_new(fwds, fwd("tcp; accept", 81, 80, "10.0.0.2", "bn-1"));
	json_array_append_new(fwds, fwd("tcp", 70000, 80, "10.0.0.2", "bn-1"));
	json_array_append_new(fwds, fwd("udp", 82, 0, "10.0.0.2", "bn-1"));
	json_array_append_new(fwds, fwd("tcp", 83, 80, "10.0.0.2 ", "bn-1"));
	t = gen(&skipped);
	cr_expect_eq(skipped, 9, "skipped %d", skipped);
	LACKS(t, "flush");
	LACKS(t, "; accept");
	LACKS(t, "bt-8");
	LACKS(t, "bt-9");
	LACKS(t, "10.0.0.5");
	LACKS(t, "dport 81 ");
	LACKS(t, "70000");
	LACKS(t, "dport 83 ");
	free(t);
}

/* Applies text in a fresh network namespace, twice; the exit status says how it went. */
static int apply_in_netns(const char *text)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		struct nft_ctx *nft;

		if (unshare(CLONE_NEWNET))
			_exit(77);
		nft = nft_ctx_new(NFT_CTX_DEFAULT);
		nft_ctx_buffer_output(nft);
		for (int i = 0; i < 2; i++) {
			if (nft_run_cmd_from_buffer(nft, text))
				_exit(1);
		}
		if (nft_run_cmd_from_buffer(nft, "list table bridge bunshin") ||
		    !strstr(nft_ctx_get_output_buffer(nft), "counter name \"spoof\" drop"))
			_exit(2);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

Test(fw_rules, the_kernel_takes_it_and_a_rebuild_replaces_it)
{
	json_t *none = json_array();
	char *t = gen(NULL), *empty = fw_ruleset(none, none, none, NULL);
	int ret = apply_in_netns(t);

	if (ret == 77)
		cr_skip_test("skipped: cannot unshare a network namespace (%s)", strerror(EPERM));
	cr_expect_eq(ret, 0, "nftables refused the ruleset (%d):\n%s", ret, t);
	cr_assert_not_null(empty);
	cr_expect_eq(apply_in_netns(empty), 0, "the empty ruleset:\n%s", empty);
	free(t);
	free(empty);
	json_decref(none);
}

Test(fw_rules, overlapping_networks_get_a_zone_and_a_mark_each)
{
	char *t = gen(NULL);
	const char *zone = strstr(t, "chain overlap_zone {"),
		   *mark = strstr(t, "chain overlap_mark {");
	const char *route = strstr(t, "chain overlap_route {");

	cr_assert(zone && mark && route, "\n%s", t);
	HAS(zone, "type filter hook prerouting priority raw;");
	HAS(zone,
	    "iifname \"bn-*\" udp dport 67 accept\n\t\tiifname \"bn-1\" ct original zone set 1\n");
	HAS(zone, "iifname \"bn-3\" ct original zone set 3\n");
	HAS(mark, "type filter hook prerouting priority mangle;");
	HAS(mark, "ct mark != 0 meta mark set ct mark\n");
	HAS(mark, "iifname \"bn-3\" ct state new ct mark set 3\n");
	HAS(route, "type route hook output priority mangle;");
	HAS(route, "ct mark != 0 meta mark set ct mark\n");
	free(t);
}
