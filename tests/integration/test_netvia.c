// SPDX-License-Identifier: MIT
/*
 * test=net-bench's net_via= (bench/instnet.sh's rows through the NAT): a
 * peer beyond a router is reached through the router's MAC. In a network
 * namespace the tap's host side (10.0.2.1) is the router, forwarding to a
 * veth whose transmit counter shows that the guest's datagrams for
 * 192.0.2.7 really went through it; without net_via the guest looks for
 * 192.0.2.7 on the link and finds nobody; a malformed address is refused.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define GUEST_MAC "52:54:00:12:34:58"
#define BEYOND	  "192.0.2.7"

static char ns[64];
static char ip_path[64];
static bool ns_made;

#define IP(...) harness_cmd((const char *const[]){ip_path, __VA_ARGS__, NULL}, -1)

static void cleanup(void)
{
	if (ns_made)
		IP("netns", "del", ns);
	ns_made = false;
}

TestSuite(netvia, .fini = cleanup, .timeout = 300);

/* The namespace: tap0 10.0.2.1/24 forwarding to veth d0 192.0.2.1/24, BEYOND a neighbour there. */
static void make_router(void)
{
	harness_require_kvm();
	if (!harness_find_tool("ip", ip_path, sizeof(ip_path)))
		cr_skip_test("skipped: no 'ip' command (iproute2) to make a network namespace");
	snprintf(ns, sizeof(ns), "bunshin-nv-%d", (int)getpid());
	if (IP("netns", "add", ns) != 0)
		cr_skip_test("skipped: 'ip netns add' failed: network namespaces need "
			     "CAP_NET_ADMIN");
	ns_made = true;
	cr_assert_eq(IP("-n", ns, "link", "set", "lo", "up"), 0);
	cr_assert_eq(IP("-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap"), 0);
	cr_assert_eq(IP("-n", ns, "addr", "add", "10.0.2.1/24", "dev", "tap0"), 0);
	cr_assert_eq(IP("-n", ns, "link", "set", "tap0", "up"), 0);
	if (IP("-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1") != 0)
		cr_skip_test("skipped: no veth links here (CONFIG_VETH)");
	cr_assert_eq(IP("-n", ns, "addr", "add", "192.0.2.1/24", "dev", "d0"), 0);
	cr_assert_eq(IP("-n", ns, "link", "set", "d1", "up"), 0);
	cr_assert_eq(IP("-n", ns, "link", "set", "d0", "up"), 0);
	cr_assert_eq(IP("-n", ns, "neigh", "replace", BEYOND, "lladdr", "02:00:00:00:00:07", "dev",
			"d0", "nud", "permanent"),
		     0);
	cr_assert_eq(
		harness_cmd((const char *const[]){ip_path, "netns", "exec", ns, "sh", "-c",
						  "echo 1 > /proc/sys/net/ipv4/ip_forward", NULL},
			    -1),
		0);
}

static long long d0_tx_packets(void)
{
	char cmd[256];
	long long v = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s netns exec %s cat /sys/class/net/d0/statistics/tx_packets",
		 ip_path, ns);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	pclose(f);
	return v;
}

static void run_guest(const char *cmdline, struct vmm_result *r)
{
	const char *argv[HARNESS_NETNS_ARGV];

	harness_netns_guest_argv(argv, ns, "tap=tap0,mac=" GUEST_MAC, cmdline);

	harness_run(
		&(struct vmm_run){
			.argv = argv, .timeout_ms = 120000, .run_as_uid = -1, .vmm_path = ip_path},
		r);
	cr_assert(!r->timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r->out, r->err);
}

/* The value of key= in the tx row, -1 if absent. */
static long long tx_num(const char *out, const char *key)
{
	const char *line = strstr(out, "net row=tx"), *p;
	char k[32];

	if (!line)
		return -1;
	snprintf(k, sizeof(k), " %s=", key);
	p = strstr(line, k);
	if (!p || (strchr(line, '\n') && p > strchr(line, '\n')))
		return -1;
	return atoll(p + strlen(k));
}

Test(netvia, datagrams_go_through_the_router)
{
	struct vmm_result r;
	long long before, after, frames;

	make_router();
	before = d0_tx_packets();
	cr_assert_geq(before, 0);
	run_guest("test=net-bench net_rows=tx net_ms=200 net_peer=" BEYOND " net_via=10.0.2.1", &r);
	cr_assert(harness_passed(r.out, "net-bench"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	frames = tx_num(r.out, "frames");
	after = d0_tx_packets();
	cr_assert_gt(frames, 0, "console:\n%s", r.out);
	/* forwarded, not just sent: the host may drop some under load, never invent any */
	cr_assert_gt(after - before, 0, "nothing was forwarded to d0; console:\n%s", r.out);
	cr_assert_leq(after - before, frames + 16, "d0 sent %lld, the guest %lld", after - before,
		      frames);
	harness_free(&r);
}

Test(netvia, without_it_the_peer_is_looked_for_on_the_link)
{
	struct vmm_result r;
	char reason[64] = "";

	make_router();
	run_guest("test=net-bench net_rows=tx net_ms=100 net_peer=" BEYOND, &r);
	cr_assert(harness_result_field(r.out, "net-bench", "reason", reason, sizeof(reason)),
		  "console:\n%s", r.out);
	cr_assert_str_eq(reason, "no-arp-reply", "console:\n%s", r.out);
	harness_free(&r);
}

Test(netvia, a_malformed_router_is_refused)
{
	static const char *const bad[] = {"10.0.2", "10.0.2.1.5", "10.0.2.256", "router", ""};

	make_router();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char cmdline[128], reason[64] = "";
		struct vmm_result r;

		snprintf(cmdline, sizeof(cmdline), "test=net-bench net_rows=tx net_via=%s", bad[i]);
		run_guest(cmdline, &r);
		cr_assert(
			harness_result_field(r.out, "net-bench", "reason", reason, sizeof(reason)),
			"net_via=%s: console:\n%s", bad[i], r.out);
		cr_assert_str_eq(reason, "bad-option", "net_via=%s: console:\n%s", bad[i], r.out);
		harness_free(&r);
	}
}
