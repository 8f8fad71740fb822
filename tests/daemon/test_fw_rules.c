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
	const char *mark = "fib daddr type local meta mark set meta l4proto . th dport map "
			   "@fwd_mark ct mark set meta mark\n";
	const char *d = "fib daddr type local dnat ip to meta l4proto . th dport map @fwd_dnat\n";

	cr_assert(pre && out);
	cr_expect(strstr(pre, mark) && strstr(out, mark), "\n%s", t);
	cr_expect(strstr(pre, d) && strstr(out, d), "\n%s", t);
	cr_expect(strstr(pre, mark) < strstr(pre, d), "the mark must come before the DNAT\n%s", t);
	HAS(t,
	    "map fwd_dnat {\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n"
	    "\t\telements = { tcp . 8080 : 10.0.0.2 . 80,\n\t\t\tudp . 5353 : 10.0.0.2 . 53 }\n");
	/* bn-3's 10.0.0.2 is bn-1's too: the mark routes it to bn-3 (netroute.h). */
	HAS(t, "map fwd_mark {\n\t\ttype inet_proto . inet_service : mark\n"
	       "\t\telements = { tcp . 8080 : 1,\n\t\t\tudp . 5353 : 3 }\n");
	HAS(t, "elements = { tcp . 8080 . \"bn-1\" . 10.0.0.2 . 80,\n\t\t\tudp . 5353 . \"bn-3\" . "
	       "10.0.0.2 . 53 }\n");
	HAS(t, "ct status dnat meta l4proto { tcp, udp } meta l4proto . ct original proto-dst . "
	       "oifname . ip daddr . th dport @fwd_in accept");
	HAS(t, "ct status dnat oifname \"bn-1\" ip saddr 10.0.0.0/24 masquerade");
	HAS(t, "ct status dnat oifname \"bn-2\" ip saddr 10.9.0.0/24 masquerade");
	free(t);
}

Test(fw_rules, each_tap_may_send_only_from_its_mac_and_ip)
{
	char *t = gen(NULL);
	const char *c =
		strstr(t, "chain prerouting {\n\t\ttype filter hook prerouting priority filter");

	cr_assert(c, "\n%s", t);
	HAS(t, "set port_macs {\n\t\ttype ifname . ether_addr\n\t\telements = { \"bt-5\" . "
	       "52:54:00:00:00:05,\n\t\t\t\"bt-6\" . 52:54:00:00:00:06,\n\t\t\t\"bt-7\" . "
	       "52:54:00:00:00:07 }\n");
	HAS(t, "set ports {\n\t\ttype ifname . ether_addr . ipv4_addr\n\t\telements = { \"bt-5\" . "
	       "52:54:00:00:00:05 . 10.0.0.2,\n");
	HAS(c, "iifname != \"bt-*\" accept\n\t\tiifname . ether saddr != @port_macs counter name "
	       "\"spoof\" drop\n");
	HAS(c, "arp htype 1 arp ptype ip iifname . arp saddr ether . arp saddr ip @ports accept");
	HAS(c, "arp saddr ip 0.0.0.0 iifname . arp saddr ether @port_macs accept");
	HAS(c, "ether type ip iifname . ether saddr . ip saddr @ports accept");
	HAS(c, "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp dport 67 accept");
	HAS(c, "ether type ip6 counter name \"ipv6\" drop\n\t\tcounter name \"spoof\" drop\n\t}");
	/* One chain for every tap: none per port. */
	LACKS(t, "port_5 {");
	LACKS(t, "jump");
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
	LACKS(t, "tcp . 81 ");
	LACKS(t, "70000");
	LACKS(t, ". 82 ");
	LACKS(t, "tcp . 83 ");
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

/* fw_port_elements() or fw_forward_elements() of row; NULL (and *ret) when refused. */
static char *elems(bool port_row, json_t *row, bool add, int *ret)
{
	char *out = (char *)"unset";
	int r = port_row ? fw_port_elements(row, add, &out) : fw_forward_elements(row, add, &out);

	json_decref(row);
	if (ret)
		*ret = r;
	cr_expect(r || out, "no text and no error");
	if (!r)
		return out;
	cr_expect_null(out, "text with an error");
	return NULL;
}

Test(fw_rules, a_port_is_two_elements_added_or_removed)
{
	char *add = elems(true, port(12, "bn-1", "52:54:00:00:00:0c", "10.0.0.9"), true, NULL);
	char *del = elems(true, port(12, "bn-1", "52:54:00:00:00:0c", "10.0.0.9"), false, NULL);

	cr_assert(add && del);
	cr_expect_str_eq(add,
			 "add element bridge bunshin port_macs { \"bt-12\" . 52:54:00:00:00:0c }\n"
			 "add element bridge bunshin ports { \"bt-12\" . 52:54:00:00:00:0c . "
			 "10.0.0.9 }\n");
	/* Removing: each element added, then deleted, so an absent one is no error. */
	cr_expect_str_eq(
		del,
		"add element bridge bunshin port_macs { \"bt-12\" . 52:54:00:00:00:0c }\n"
		"delete element bridge bunshin port_macs { \"bt-12\" . 52:54:00:00:00:0c }\n"
		"add element bridge bunshin ports { \"bt-12\" . 52:54:00:00:00:0c . 10.0.0.9 }\n"
		"delete element bridge bunshin ports { \"bt-12\" . 52:54:00:00:00:0c . "
		"10.0.0.9 }\n");
	free(add);
	free(del);
}

Test(fw_rules, a_forward_is_three_elements_or_two_without_a_mark)
{
	char *add = elems(false, fwd("udp", 5353, 53, "10.0.0.2", "bn-3"), true, NULL);
	char *del = elems(false, fwd("tcp", 8080, 80, "10.0.0.2", "bn-1"), false, NULL);
	char *far = elems(false, fwd("tcp", 9000, 22, "10.0.0.7", "bn-70000"), true, NULL);

	cr_assert(add && del && far);
	cr_expect_str_eq(
		add, "add element inet bunshin fwd_dnat { udp . 5353 : 10.0.0.2 . 53 }\n"
		     "add element inet bunshin fwd_mark { udp . 5353 : 3 }\n"
		     "add element inet bunshin fwd_in { udp . 5353 . \"bn-3\" . 10.0.0.2 . 53 }\n");
	/* A map's element is deleted by its key, once added with its own data. */
	HAS(del, "add element inet bunshin fwd_dnat { tcp . 8080 : 10.0.0.2 . 80 }\n"
		 "delete element inet bunshin fwd_dnat { tcp . 8080 }\n");
	HAS(del, "add element inet bunshin fwd_mark { tcp . 8080 : 1 }\n"
		 "delete element inet bunshin fwd_mark { tcp . 8080 }\n");
	HAS(del, "delete element inet bunshin fwd_in { tcp . 8080 . \"bn-1\" . 10.0.0.2 . 80 }\n");
	/* Network 70000 is past the marks (netroute.h): no fwd_mark element. */
	LACKS(far, "fwd_mark");
	HAS(far, "fwd_in { tcp . 9000 . \"bn-70000\" . 10.0.0.7 . 22 }");
	free(add);
	free(del);
	free(far);
}

Test(fw_rules, rows_that_do_not_parse_are_refused_whole)
{
	static const char *const macs[] = {"52:54:00:00:00:08 accept", "52:54:00:00:00", NULL};
	int ret = 0;

	for (int i = 0; i < 3; i++) {
		cr_expect_null(elems(true, port(8, "bn-1", macs[i], "10.0.0.3"), true, &ret));
		cr_expect_eq(ret, -EINVAL);
	}
	cr_expect_null(
		elems(true, port(9, "bn-1", "52:54:00:00:00:09", "10.0.0.4; accept"), false, &ret));
	cr_expect_eq(ret, -EINVAL);
	cr_expect_null(elems(true, port(0, "bn-1", "52:54:00:00:00:09", "10.0.0.4"), true, &ret));
	cr_expect_null(elems(true, json_pack("{s:I}", "instance_id", (json_int_t)3), true, &ret));
	cr_expect_eq(ret, -EINVAL);
	cr_expect_null(elems(false, fwd("tcp; accept", 81, 80, "10.0.0.2", "bn-1"), true, &ret));
	cr_expect_eq(ret, -EINVAL);
	cr_expect_null(elems(false, fwd("tcp", 70000, 80, "10.0.0.2", "bn-1"), true, NULL));
	cr_expect_null(elems(false, fwd("udp", 82, 0, "10.0.0.2", "bn-1"), false, NULL));
	cr_expect_null(elems(false, fwd("tcp", 83, 80, "10.0.0.2 ", "bn-1"), true, NULL));
	cr_expect_null(elems(false, fwd("tcp", 84, 80, "10.0.0.2", "bn-1\" accept"), true, NULL));
	cr_expect_null(elems(false, fwd("tcp", 85, 80, "10.0.0.2", "br0"), true, NULL));
}

/*
 * In a fresh network namespace: the full text, then each of cmds in turn
 * (NULL-terminated); exit status 10 + i when cmds[i] is refused, 2 when
 * the listing of set ports and map fwd_dnat afterwards lacks one of want
 * or holds one of gone (both NULL-terminated).
 */
static int apply_steps(const char *full, const char *const *cmds, const char *const *want,
		       const char *const *gone)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		struct nft_ctx *nft;
		const char *got;

		if (unshare(CLONE_NEWNET))
			_exit(77);
		nft = nft_ctx_new(NFT_CTX_DEFAULT);
		nft_ctx_buffer_output(nft);
		nft_ctx_buffer_error(nft);
		if (nft_run_cmd_from_buffer(nft, full))
			_exit(1);
		for (int i = 0; cmds[i]; i++) {
			if (nft_run_cmd_from_buffer(nft, cmds[i])) {
				fprintf(stderr, "%s", nft_ctx_get_error_buffer(nft));
				_exit(10 + i);
			}
		}
		if (nft_run_cmd_from_buffer(nft, "list table bridge bunshin") ||
		    !(got = strdup(nft_ctx_get_output_buffer(nft))) ||
		    nft_run_cmd_from_buffer(nft, "list map inet bunshin fwd_dnat") ||
		    asprintf((char **)&got, "%s%s", got, nft_ctx_get_output_buffer(nft)) < 0)
			_exit(3);
		for (int i = 0; want[i] || gone[i]; i++) {
			if ((want[i] && !strstr(got, want[i])) ||
			    (gone[i] && strstr(got, gone[i]))) {
				fprintf(stderr, "want %s, not %s:\n%s\n", want[i] ?: "-",
					gone[i] ?: "-", got);
				_exit(2);
			}
		}
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

Test(fw_rules, the_kernel_takes_element_updates_and_removing_twice_is_no_error)
{
	char *t = gen(NULL);
	char *padd = elems(true, port(12, "bn-1", "52:54:00:00:00:0c", "10.0.0.9"), true, NULL);
	char *pdel = elems(true, port(5, "bn-1", "52:54:00:00:00:05", "10.0.0.2"), false, NULL);
	char *fadd = elems(false, fwd("tcp", 9000, 22, "10.0.0.9", "bn-1"), true, NULL);
	char *fdel = elems(false, fwd("tcp", 8080, 80, "10.0.0.2", "bn-1"), false, NULL);
	char *clash = elems(false, fwd("udp", 5353, 22, "10.0.0.9", "bn-1"), false, NULL);
	const char *steps[] = {padd, pdel, pdel, fadd, fdel, fdel, NULL};
	const char *bad[] = {clash, NULL};
	const char *want[] = {"\"bt-12\" . 52:54:00:00:00:0c . 10.0.0.9",
			      "\"bt-12\" . 52:54:00:00:00:0c",
			      "\"bt-7\" . 52:54:00:00:00:07 . 10.0.0.2",
			      "tcp . 9000 : 10.0.0.9 . 22",
			      "udp . 5353 : 10.0.0.2 . 53",
			      NULL};
	const char *gone[] = {"bt-5", "8080", NULL, NULL, NULL, NULL};
	const char *kept[] = {"udp . 5353 : 10.0.0.2 . 53", "tcp . 8080 : 10.0.0.2 . 80",
			      "\"bt-5\" . 52:54:00:00:00:05 . 10.0.0.2", NULL};
	const char *none[] = {NULL, NULL, NULL, NULL};
	int ret = apply_steps(t, steps, want, gone);

	if (ret == 77)
		cr_skip_test("skipped: cannot unshare a network namespace (%s)", strerror(EPERM));
	cr_expect_eq(ret, 0, "element updates (%d):\n%s%s%s%s", ret, padd, pdel, fadd, fdel);
	/* Another forward's key with other data: the batch fails, nothing removed. */
	cr_expect_eq(apply_steps(t, bad, kept, none), 10, "removing another forward's element:\n%s",
		     clash);
	free(t);
	free(padd);
	free(pdel);
	free(fadd);
	free(fdel);
	free(clash);
}
