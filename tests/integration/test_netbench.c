// SPDX-License-Identifier: MIT
/*
 * Smoke test of the virtio-net benchmark (bench/net.sh): test=net-bench,
 * every row for a very short time, in a network namespace with a tap
 * (10.0.2.1/24) like tests/integration/test_net.c. The receive row gets
 * its datagrams from a child of this test that joins the namespace; the
 * serve row gets pinged with ping(8) when there is one. Checks that each
 * row's line is there with numbers above zero, never how fast anything was:
 * speed belongs to bench/net.sh, on a quiet machine.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define GUEST_IP  "10.0.2.15"
#define GUEST_MAC "52:54:00:12:34:57"
#define RX_PORT	  9001

static char ns[64];
static char ip_path[64];
static char ping_path[64];
static bool ns_made;
static pid_t sender = -1, pinger = -1;

#define IP(...) harness_cmd((const char *const[]){ip_path, __VA_ARGS__, NULL}, -1)

static void stop_child(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}

/* Runs even after a failed assertion: no child and no namespace is left behind. */
static void cleanup(void)
{
	stop_child(&sender);
	stop_child(&pinger);
	if (ns_made)
		IP("netns", "del", ns);
	ns_made = false;
}

TestSuite(netbench, .fini = cleanup);

/*
 * The receive row's traffic: a child that joins the namespace and sends
 * 1472-byte datagrams to the guest until it is killed (or 60 s pass), so
 * that no host tool is needed for it.
 */
static pid_t start_sender(void)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	char path[128];
	static char payload[1472];
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(RX_PORT)};
	time_t end = time(NULL) + 60;
	int nsfd, fd;

	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
		_exit(1);
	inet_pton(AF_INET, GUEST_IP, &dst.sin_addr);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
		_exit(1);
	while (time(NULL) < end)
		(void)send(fd, payload, sizeof(payload), 0); /* full queues just drop */
	_exit(0);
}

static pid_t start_pinger(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		const char *argv[] = {ip_path, "netns", "exec", ns,  ping_path, "-c", "5",
				      "-i",    "0.01",	"-W",	"2", GUEST_IP,	NULL};

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Steps: rx-ready starts the sender, the rx row stops it, serve-ready starts ping. */
static void on_step(void *ctx, int i, int pid)
{
	(void)ctx;
	(void)pid;
	if (i == 0)
		sender = start_sender();
	else if (i == 1)
		stop_child(&sender);
	else if (i == 2)
		pinger = start_pinger();
}

/* The value of key= in the first line holding tag, as a number (-1 if absent). */
static long long row_num(const char *out, const char *tag, const char *key)
{
	const char *line = strstr(out, tag), *end;
	char k[64];

	if (!line)
		return -1;
	end = strchr(line, '\n');
	snprintf(k, sizeof(k), " %s=", key);
	line = strstr(line, k);
	if (!line || (end && line > end))
		return -1;
	return atoll(line + strlen(k));
}

static void positive(const char *out, const char *tag, const char *key)
{
	long long v = row_num(out, tag, key);

	cr_assert_gt(v, 0, "%s %s=%lld; console:\n%s", tag, key, v, out);
}

Test(netbench, every_row_reports_numbers)
{
	bool ping = harness_find_tool("ping", ping_path, sizeof(ping_path));
	const char *cmdline =
		ping ? "test=net-bench net_rows=tx,rx,rtt,serve net_ms=200 net_pings=20 "
		       "net_serve_echo=5 net_serve_ms=20000 net_rx_wait_ms=20000"
		     : "test=net-bench net_rows=tx,rx,rtt net_ms=200 net_pings=20 "
		       "net_rx_wait_ms=20000";
	const struct vmm_step steps[] = {
		{"net rx-ready", ""}, {"net row=rx", ""}, {"net serve-ready", ""}};
	struct vmm_result r;

	harness_require_kvm();
	if (!harness_find_tool("ip", ip_path, sizeof(ip_path)))
		cr_skip_test("skipped: no 'ip' command (iproute2) to make a network namespace");
	snprintf(ns, sizeof(ns), "bunshin-nb-%d", (int)getpid());
	if (IP("netns", "add", ns) != 0)
		cr_skip_test("skipped: 'ip netns add' failed: network namespaces need "
			     "CAP_NET_ADMIN");
	ns_made = true;
	cr_assert_eq(IP("-n", ns, "link", "set", "lo", "up"), 0);
	cr_assert_eq(IP("-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap"), 0);
	cr_assert_eq(IP("-n", ns, "addr", "add", "10.0.2.1/24", "dev", "tap0"), 0);
	cr_assert_eq(IP("-n", ns, "link", "set", "tap0", "up"), 0);
	cr_assert_eq(IP("-n", ns, "neigh", "replace", GUEST_IP, "lladdr", GUEST_MAC, "dev", "tap0",
			"nud", "permanent"),
		     0);

	const char *argv[HARNESS_NETNS_ARGV];

	harness_netns_guest_argv(argv, ns, "tap=tap0,mac=" GUEST_MAC, cmdline);
	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = ping ? 3 : 2,
				      .on_step = on_step,
				      .timeout_ms = 120000,
				      .run_as_uid = -1,
				      .vmm_path = ip_path},
		    &r);
	cr_assert(!r.timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "net-bench"), "console:\n%s\nstderr:\n%s", r.out, r.err);

	positive(r.out, "net row=tx", "frames");
	positive(r.out, "net row=tx", "bytes");
	positive(r.out, "net row=tx", "us");
	positive(r.out, "net row=rx", "frames");
	positive(r.out, "net row=rx", "bytes");
	positive(r.out, "net row=rx", "us");
	positive(r.out, "net row=rtt", "pings");
	positive(r.out, "net row=rtt", "p50_ns");
	positive(r.out, "net row=rtt", "p99_ns");
	cr_assert(row_num(r.out, "net row=rtt", "lost") >= 0, "console:\n%s", r.out);
	if (ping)
		positive(r.out, "net row=serve", "echo");
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	harness_free(&r);
}
