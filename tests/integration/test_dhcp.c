// SPDX-License-Identifier: MIT
/*
 * The test guest's DHCP client (test=dhcp) against real servers: each test
 * makes a network namespace with a tap at 10.0.2.1/24 and runs bunshin-vmm
 * in it. dnsmasq with a static lease for the guest's MAC must give exactly
 * that address (and the guest then pings the gateway); with no server the
 * client gives up with result=fail in bounded time; a hostile server that
 * sends malformed replies before a good one gets every one of them ignored.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define GUEST_MAC "52:54:00:12:34:56"
#define HOST_IP	  "10.0.2.1"
#define LEASE_IP  "10.0.2.77"

static char ns[64], ip_path[64], dnsmasq_path[64];
static bool ns_made;
static pid_t server_pid = -1;

static void make_ns(void)
{
	harness_require_kvm();
	if (!harness_find_tool("ip", ip_path, sizeof(ip_path)))
		cr_skip_test("skipped: no 'ip' command (iproute2) to make a network namespace");
	snprintf(ns, sizeof(ns), "bunshin-dhcp-%d", (int)getpid());
	const char *add[] = {ip_path, "netns", "add", ns, NULL};
	if (harness_cmd(add, -1) != 0)
		cr_skip_test("skipped: 'ip netns add' failed: network namespaces need "
			     "CAP_NET_ADMIN");
	ns_made = true;
	const char *const cmds[][10] = {
		{ip_path, "-n", ns, "link", "set", "lo", "up", NULL},
		{ip_path, "-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap", NULL},
		{ip_path, "-n", ns, "addr", "add", HOST_IP "/24", "dev", "tap0", NULL},
		{ip_path, "-n", ns, "link", "set", "tap0", "up", NULL},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		cr_assert_eq(harness_cmd(cmds[i], -1), 0, "%s %s %s failed", cmds[i][3], cmds[i][4],
			     cmds[i][5]);
}

static void teardown(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	server_pid = -1;
	if (ns_made) {
		const char *del[] = {ip_path, "netns", "del", ns, NULL};
		harness_cmd(del, -1);
	}
	ns_made = false;
	harness_dir_teardown();
}

TestSuite(dhcp, .init = harness_dir_setup, .fini = teardown);

static void run_guest(const char *cmdline, struct vmm_result *r)
{
	const char *argv[HARNESS_NETNS_ARGV];

	harness_netns_guest_argv(argv, ns, "tap=tap0,mac=" GUEST_MAC, cmdline);

	harness_run(
		&(struct vmm_run){
			.argv = argv, .timeout_ms = 60000, .run_as_uid = -1, .vmm_path = ip_path},
		r);
	cr_assert(!r->timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r->out, r->err);
}

static void field_eq(const char *out, const char *key, const char *want)
{
	char val[64];

	cr_assert(harness_result_field(out, "dhcp", key, val, sizeof(val)), "no %s= in:\n%s", key,
		  out);
	cr_assert_str_eq(val, want, "%s=%s, expected %s; console:\n%s", key, val, want, out);
}

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static void start_dnsmasq(const char *hosts, const char *leases)
{
	char range[64], hostsfile[128], leasefile[128], pidfile[128];

	if (!harness_find_tool("dnsmasq", dnsmasq_path, sizeof(dnsmasq_path)))
		cr_skip_test("skipped: no dnsmasq (dnsmasq-base) to serve DHCP");
	snprintf(range, sizeof(range), "--dhcp-range=10.0.2.0,static,255.255.255.0");
	snprintf(hostsfile, sizeof(hostsfile), "--dhcp-hostsfile=%s", hosts);
	snprintf(leasefile, sizeof(leasefile), "--dhcp-leasefile=%s", leases);
	snprintf(pidfile, sizeof(pidfile), "--pid-file=%s/dnsmasq.pid", harness_dir);
	server_pid = fork();
	cr_assert_geq(server_pid, 0);
	if (server_pid == 0) {
		const char *argv[] = {dnsmasq_path,
				      "--keep-in-foreground",
				      "--conf-file=/dev/null",
				      "--bind-interfaces",
				      "--interface=tap0",
				      "--except-interface=lo",
				      "--port=0",
				      "--user=root",
				      range,
				      hostsfile,
				      leasefile,
				      pidfile,
				      "--dhcp-option=option:router," HOST_IP,
				      "--dhcp-option=option:dns-server," HOST_IP,
				      NULL};
		int null = open("/dev/null", O_RDWR);

		harness_enter_netns(ns);
		dup2(null, 0);
		dup2(null, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

Test(dhcp, static_lease_is_the_address_and_the_gateway_answers)
{
	char hosts[128], leases[128];
	struct vmm_result r;
	FILE *f;

	make_ns();
	snprintf(hosts, sizeof(hosts), "%s/hosts", harness_dir);
	snprintf(leases, sizeof(leases), "%s/leases", harness_dir);
	f = fopen(hosts, "w");
	cr_assert_not_null(f);
	fprintf(f, "52:54:00:aa:bb:cc,10.0.2.50\n" GUEST_MAC "," LEASE_IP "\n");
	fclose(f);
	start_dnsmasq(hosts, leases);
	run_guest("test=dhcp", &r);
	cr_assert(harness_passed(r.out, "dhcp"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	field_eq(r.out, "mac", GUEST_MAC);
	field_eq(r.out, "ip", LEASE_IP);
	field_eq(r.out, "router", HOST_IP);
	field_eq(r.out, "mask", "255.255.255.0");
	field_eq(r.out, "dns", HOST_IP);
	field_eq(r.out, "server", HOST_IP);
	field_eq(r.out, "bad", "0");
	field_eq(r.out, "ping", "ok");
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	/* dnsmasq recorded the lease it gave: this MAC, this address */
	for (int i = 0; i < 50 && !strstr(slurp(leases), GUEST_MAC " " LEASE_IP); i++)
		usleep(100 * 1000);
	cr_assert_not_null(strstr(slurp(leases), GUEST_MAC " " LEASE_IP), "leases:\n%s",
			   slurp(leases));
	harness_free(&r);
}

Test(dhcp, no_server_is_a_bounded_failure)
{
	struct vmm_result r;

	make_ns();
	run_guest("test=dhcp dhcp_tries=3 dhcp_wait_ms=500", &r);
	cr_assert_not_null(strstr(r.out, "BUNSHIN-TEST name=dhcp result=fail reason=no-offer"),
			   "console:\n%s\nstderr:\n%s", r.out, r.err);
	field_eq(r.out, "offers", "0");
	cr_assert_lt(r.wall_ms, 20000, "3 tries of 0.5 s took %.0f ms", r.wall_ms);
	harness_free(&r);
}

/* ---- a hostile server ---- */

enum bad {
	BAD_COOKIE,
	BAD_XID,
	BAD_OP,
	BAD_SHORT,
	BAD_OVERRUN,
	BAD_NO_END,
	BAD_TYPE_LEN,
	BAD_ROUTER_LEN,
	BAD_YIADDR,
	BAD_MASK,
	BAD_NO_SERVER,
	BAD_COUNT,
	GOOD = BAD_COUNT
};

/* A reply to the request in req (xid, chaddr) of DHCP type, spoiled as bad says. */
static size_t build_reply(uint8_t *p, const uint8_t *req, uint8_t type, enum bad bad)
{
	uint8_t *o = p + 240;
	static const uint8_t server[4] = {10, 0, 2, 1}, yi[4] = {10, 0, 2, 88};

	memset(p, 0, 400);
	p[0] = bad == BAD_OP ? 1 : 2;
	p[1] = 1;
	p[2] = 6;
	memcpy(p + 4, req + 4, 4);
	p[7] ^= bad == BAD_XID;
	memcpy(p + 16, yi, 4);
	if (bad == BAD_YIADDR)
		memset(p + 16, 255, 4);
	memcpy(p + 28, req + 28, 16);
	memcpy(p + 236, "\x63\x82\x53\x63", 4);
	p[238] ^= bad == BAD_COOKIE;
	*o++ = 53;
	*o++ = bad == BAD_TYPE_LEN ? 2 : 1;
	*o++ = type;
	if (bad == BAD_TYPE_LEN)
		*o++ = 0;
	if (bad != BAD_NO_SERVER) {
		*o++ = 54, *o++ = 4;
		memcpy(o, server, 4), o += 4;
	}
	*o++ = 1, *o++ = 4;
	memcpy(o, bad == BAD_MASK ? "\xff\x00\xff\x00" : "\xff\xff\xff\x00", 4), o += 4;
	*o++ = 3, *o++ = bad == BAD_ROUTER_LEN ? 3 : 4;
	memcpy(o, server, 4), o += bad == BAD_ROUTER_LEN ? 3 : 4;
	if (bad == BAD_OVERRUN) {
		*o++ = 12, *o++ = 200; /* a hostname running far past the packet */
		return (size_t)(o - p);
	}
	if (bad != BAD_NO_END)
		*o++ = 255;
	return bad == BAD_SHORT ? 200 : (size_t)(o - p);
}

/* Answers each DISCOVER and REQUEST with every spoiled reply, then a good one. */
static void hostile_server(int ready_fd)
{
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(67)};
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(68)};
	struct timeval tv = {.tv_sec = 30};
	uint8_t req[1500], rep[400];
	int one = 1, s;

	harness_enter_netns(ns);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	to.sin_addr.s_addr = htonl(INADDR_BROADCAST);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) ||
	    setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, "tap0", 5) ||
	    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    bind(s, (struct sockaddr *)&me, sizeof(me)))
		_exit(125);
	if (write(ready_fd, "r", 1) != 1)
		_exit(125);
	for (;;) {
		ssize_t n = recv(s, req, sizeof(req), 0);
		uint8_t type = 0;

		if (n < 0)
			_exit(124);
		if (n < 243 || req[0] != 1)
			continue;
		for (ssize_t i = 240; i + 2 < n && req[i] != 255; i += 2 + req[i + 1])
			if (req[i] == 53)
				type = req[i + 2];
		if (type != 1 && type != 3)
			continue;
		for (int b = 0; b <= GOOD; b++) {
			size_t len = build_reply(rep, req, type == 1 ? 2 : 5, (enum bad)b);
			sendto(s, rep, len, 0, (struct sockaddr *)&to, sizeof(to));
			usleep(5000); /* the guest's few receive buffers */
		}
		if (type == 3)
			_exit(0);
	}
}

Test(dhcp, malformed_replies_are_ignored)
{
	struct vmm_result r;
	int p[2], status;
	char c, val[16];

	make_ns();
	cr_assert_eq(pipe(p), 0);
	server_pid = fork();
	cr_assert_geq(server_pid, 0);
	if (server_pid == 0) {
		close(p[0]);
		hostile_server(p[1]);
	}
	close(p[1]);
	cr_assert_eq(read(p[0], &c, 1), 1, "the test's DHCP server did not start");
	close(p[0]);
	run_guest("test=dhcp", &r);
	cr_assert(harness_passed(r.out, "dhcp"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	field_eq(r.out, "ip", "10.0.2.88");
	snprintf(val, sizeof(val), "%d", 2 * BAD_COUNT);
	field_eq(r.out, "bad", val);
	field_eq(r.out, "offers", "1");
	cr_assert_eq(waitpid(server_pid, &status, 0), server_pid);
	server_pid = -1;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server status %d", status);
	harness_free(&r);
}
