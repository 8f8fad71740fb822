// SPDX-License-Identifier: MIT
/*
 * virtio-net end to end: each test makes a network namespace with a tap in
 * it (10.0.2.1/24), runs bunshin-vmm inside it through `ip netns exec`
 * (the harness's vmm_path is `ip`, and the VMM is one of its arguments),
 * and the test guest talks to the namespace's kernel: ARP and pings out,
 * and answers to the pings the test sends in.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define GUEST_IP "10.0.2.15"
#define HOST_IP	 "10.0.2.1"

static char ns[64];
static char ip_path[64];
static bool ns_made;

static int ip(const char *a, const char *b, const char *c, const char *d, const char *e,
	      const char *f, const char *g, const char *h)
{
	const char *argv[] = {ip_path, a, b, c, d, e, f, g, h, NULL};

	return harness_cmd(argv, -1);
}

/* A namespace with lo and a tap (multi_queue if asked) at HOST_IP/24, up. */
static void make_ns(bool multi_queue)
{
	harness_require_kvm();
	if (!harness_find_tool("ip", ip_path, sizeof(ip_path)))
		cr_skip_test("skipped: no 'ip' command (iproute2) to make a network namespace");
	snprintf(ns, sizeof(ns), "bunshin-net-%d", (int)getpid());
	if (ip("netns", "add", ns, NULL, NULL, NULL, NULL, NULL) != 0)
		cr_skip_test("skipped: 'ip netns add' failed: network namespaces need "
			     "CAP_NET_ADMIN");
	ns_made = true;
	cr_assert_eq(ip("-n", ns, "link", "set", "lo", "up", NULL, NULL), 0);
	const char *tuntap[] = {
		ip_path, "-n",	 ns,	 "tuntap", "add",
		"dev",	 "tap0", "mode", "tap",	   multi_queue ? "multi_queue" : NULL,
		NULL};
	cr_assert_eq(harness_cmd(tuntap, -1), 0);
	cr_assert_eq(ip("-n", ns, "addr", "add", HOST_IP "/24", "dev", "tap0", NULL), 0);
	cr_assert_eq(ip("-n", ns, "link", "set", "tap0", "up", NULL, NULL), 0);
}

/* Runs even after a failed assertion: no namespace is left behind. */
static void drop_ns(void)
{
	if (ns_made)
		ip("netns", "del", ns, NULL, NULL, NULL, NULL, NULL);
	ns_made = false;
}

TestSuite(net, .fini = drop_ns);

/* bunshin-vmm inside the namespace with --net net_arg and the guest's cmdline. */
static void run_in_ns(const char *net_arg, const char *cmdline, struct vmm_result *r)
{
	const char *argv[HARNESS_NETNS_ARGV];

	harness_netns_guest_argv(argv, ns, net_arg, cmdline);

	harness_run(
		&(struct vmm_run){
			.argv = argv, .timeout_ms = 60000, .run_as_uid = -1, .vmm_path = ip_path},
		r);
	cr_assert(!r->timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r->out, r->err);
}

/* Pings the guest from the namespace until it had 3 replies (or 30 s); the child's pid. */
static pid_t start_pinger(const char *log)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		const char *argv[] = {ip_path, "netns", "exec", ns,   "ping",	"-c", "3",
				      "-i",    "0.2",	"-w",	"30", GUEST_IP, NULL};

		_exit(harness_cmd(argv, fd));
	}
	return pid;
}

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static void field_eq(const char *out, const char *key, const char *want)
{
	char val[64];

	cr_assert(harness_result_field(out, "virtio-net", key, val, sizeof(val)), "no %s= in:\n%s",
		  key, out);
	cr_assert_str_eq(val, want, "%s=%s, expected %s; console:\n%s", key, val, want, out);
}

Test(net, guest_pings_host_and_host_pings_guest)
{
	char log[64], val[32];
	struct vmm_result r;
	int status = -1;
	pid_t pinger;

	if (!harness_find_tool("ping", log, sizeof(log)))
		cr_skip_test("skipped: no 'ping' command (iputils-ping) to ping the guest with");
	make_ns(false);
	snprintf(log, sizeof(log), "/tmp/bunshin-ping-%d.log", (int)getpid());
	pinger = start_pinger(log);
	run_in_ns("tap=tap0,mac=52:54:00:12:34:56",
		  "test=virtio-net net_ip=" GUEST_IP " net_peer=" HOST_IP
		  " net_serve_ms=30000 net_serve_echo=3",
		  &r);
	kill(pinger, SIGTERM); /* normally long gone: it stops at 3 replies */
	waitpid(pinger, &status, 0);
	cr_assert(harness_passed(r.out, "virtio-net"), "console:\n%s\nstderr:\n%s\nping:\n%s",
		  r.out, r.err, slurp(log));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "host ping failed:\n%s",
		  slurp(log));
	unlink(log);
	field_eq(r.out, "mac", "52:54:00:12:34:56");
	field_eq(r.out, "link", "up");
	field_eq(r.out, "max_pairs", "1");
	field_eq(r.out, "mrg", "1");
	field_eq(r.out, "ctrl", "ok");
	field_eq(r.out, "replies", "3");
	cr_assert(harness_result_field(r.out, "virtio-net", "irq", val, sizeof(val)));
	cr_assert_gt(atoi(val), 0, "MSI-X interrupts must arrive");
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	harness_free(&r);
}

Test(net, multiqueue_without_mergeable_buffers_polled)
{
	struct vmm_result r;

	make_ns(true);
	run_in_ns("tap=tap0,queues=2", "test=virtio-net net_mrg=0 virtio_poll=1", &r);
	cr_assert(harness_passed(r.out, "virtio-net"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	field_eq(r.out, "max_pairs", "2");
	field_eq(r.out, "mrg", "0");
	field_eq(r.out, "ctrl", "ok");
	field_eq(r.out, "irq", "poll");
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(net, random_mac_has_the_qemu_prefix)
{
	struct vmm_result r;
	char val[32];

	make_ns(false);
	run_in_ns("tap=tap0", "test=virtio-net net_pings=1 virtio_features=none", &r);
	cr_assert(harness_passed(r.out, "virtio-net"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-net", "mac", val, sizeof(val)));
	cr_assert_eq(strncmp(val, "52:54:00:", 9), 0, "mac=%s", val);
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

static void one_line_error(const struct vmm_result *r, const char *needle)
{
	cr_assert_eq(r->status, 1, "exit %d; stderr:\n%s", r->status, r->err);
	cr_assert_not_null(strstr(r->err, needle), "stderr:\n%s", r->err);
	cr_assert_eq(harness_count(r->err, "\n"), 1, "one line expected:\n%s", r->err);
}

Test(net, not_a_tap_is_one_line_error)
{
	struct vmm_result r;

	make_ns(false);
	run_in_ns("tap=lo", "test=virtio-net", &r);
	one_line_error(&r, "--net: cannot open tap 'lo': ");
	harness_free(&r);
}

Test(net, multiqueue_on_a_single_queue_tap_is_one_line_error)
{
	struct vmm_result r;

	make_ns(false);
	run_in_ns("tap=tap0,queues=2", "test=virtio-net", &r);
	one_line_error(&r, "--net: cannot open tap 'tap0': Invalid argument");
	harness_free(&r);
}

/* /dev/net/tun hidden under an empty tmpfs in a private mount namespace. */
Test(net, missing_tun_device_is_one_line_error)
{
	const char *probe[] = {"unshare", "-m", "true", NULL};
	char unshare[64];
	const char *argv[] = {"unshare",
			      "-m",
			      "sh",
			      "-c",
			      "mount -t tmpfs tmpfs /dev/net && exec \"$0\" \"$@\"",
			      harness_vmm(),
			      "--kernel",
			      harness_guest("elf"),
			      "--net",
			      "tap=bunshin-none0",
			      "--cmdline",
			      "test=virtio-net",
			      NULL};
	struct vmm_result r;

	harness_require_kvm();
	if (!harness_find_tool("unshare", unshare, sizeof(unshare)) || harness_cmd(probe, -1) != 0)
		cr_skip_test("skipped: 'unshare -m' is not available or not permitted here");
	harness_run(
		&(struct vmm_run){
			.argv = argv, .timeout_ms = 60000, .run_as_uid = -1, .vmm_path = unshare},
		&r);
	one_line_error(&r, "--net: cannot open tap 'bunshin-none0': No such file or directory");
	harness_free(&r);
}

Test(net, absent_without_flag)
{
	const char *argv[] = {"vmm",	   "--kernel",	      harness_guest("elf"),
			      "--cmdline", "test=virtio-net", NULL};
	struct vmm_result r;
	char val[32];

	harness_require_kvm();
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, &r);
	cr_assert(harness_result_field(r.out, "virtio-net", "reason", val, sizeof(val)),
		  "console:\n%s", r.out);
	cr_assert_str_eq(val, "no-device");
	harness_free(&r);
}
