// SPDX-License-Identifier: MIT
/*
 * bunshind's dnsmasq per network, end to end: an instance on its tenant's
 * default network boots the test guest's DHCP client (test=dhcp) and must
 * get the address the store gave its port, and ping the gateway; the
 * dnsmasq is restarted when it dies, restarted at a daemon restart, told
 * of ports that go, and gone with its files when its network goes. Each
 * test runs in a network namespace of its own.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dharness.h"

static struct dh h;

static void setup(void)
{
	dh_need_dnsmasq();
	if (unshare(CLONE_NEWNET))
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	dh_start(&h, NULL);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(dhcp, .init = setup, .fini = teardown, .timeout = 300);

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = 0;
	return buf;
}

static void net_file(int64_t nid, const char *file, char *out, size_t size)
{
	snprintf(out, size, "%s/networks/%lld/%s", h.dir, (long long)nid, file);
}

/* The running dnsmasq's pid from its pid file (waits up to ms for a live one other than not). */
static pid_t dnsmasq_pid(int64_t nid, pid_t not, int ms)
{
	char path[300];

	net_file(nid, "dnsmasq.pid", path, sizeof(path));
	for (int t = 0; t <= ms; t += 100) {
		pid_t pid = (pid_t)atoi(slurp(path));

		if (pid > 0 && pid != not &&dh_alive(pid))
			return pid;
		usleep(100000);
	}
	return 0;
}

static bool wait_hosts(int64_t nid, const char *line, bool present, int ms)
{
	char path[300];

	net_file(nid, "hosts", path, sizeof(path));
	for (int t = 0; t <= ms; t += 100) {
		if (!!strstr(slurp(path), line) == present)
			return true;
		usleep(100000);
	}
	return false;
}

static bool log_has(const char *text)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "grep -q -- '%s' '%s'", text, h.log);
	return system(cmd) == 0;
}

/* An instance of the dhcp guest image; its id, port MAC and IP. */
static int64_t create(const char *name, char *mac, char *ip, size_t size)
{
	char body[256];
	json_t *out;
	int64_t id;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"dhcp-guest\",\"start\":true}",
		 name);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances", body, &out), 201, "%s: %s", name,
		     dh_jstr(out, "error", "message"));
	id = json_integer_value(json_object_get(out, "id"));
	snprintf(mac, size, "%s", dh_jstr(out, "port", "mac"));
	snprintf(ip, size, "%s", dh_jstr(out, "port", "ip"));
	json_decref(out);
	return id;
}

static void register_image(void)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"name\":\"dhcp-guest\",\"path\":\"%s\",\"kind\":\"kernel\","
		 "\"cmdline\":\"test=dhcp dhcp_tries=8\"}",
		 getenv("BUNSHIN_GUEST_ELF"));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, NULL), 201);
}

static int64_t default_network(char *gw, size_t size)
{
	json_t *out;
	int64_t nid;

	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/networks/default", NULL, &out), 200);
	nid = json_integer_value(json_object_get(out, "id"));
	snprintf(gw, size, "%s", dh_jstr(out, NULL, "gateway"));
	json_decref(out);
	return nid;
}

Test(dhcp, guest_gets_its_port_address_from_the_daemons_dnsmasq)
{
	char mac[32], ip[32], mac2[32], ip2[32], gw[32], line[80], dir[300], *con;
	int64_t nid;
	pid_t pid, pid2;
	struct stat st;

	dh_need_kvm();
	register_image();
	create("d1", mac, ip, sizeof(mac));
	nid = default_network(gw, sizeof(gw));
	con = dh_console_until(&h, "d1", "BUNSHIN-TEST name=dhcp", 60000);
	cr_assert(strstr(con, "BUNSHIN-TEST name=dhcp result=pass"), "console:\n%s", con);
	cr_expect_str_eq(dh_test_field(con, "dhcp", "mac"), mac);
	cr_expect_str_eq(dh_test_field(con, "dhcp", "ip"), ip,
			 "the guest got %s, its port holds %s", dh_test_field(con, "dhcp", "ip"),
			 ip);
	cr_expect_str_eq(dh_test_field(con, "dhcp", "router"), gw);
	cr_expect_str_eq(dh_test_field(con, "dhcp", "server"), gw);
	cr_expect_str_eq(dh_test_field(con, "dhcp", "ping"), "ok", "console:\n%s", con);
	free(con);
	snprintf(line, sizeof(line), "%s,%s\n", mac, ip);
	cr_expect(wait_hosts(nid, line, true, 0), "hosts file lacks %s", line);

	/* Killed: restarted, and the log says so. */
	pid = dnsmasq_pid(nid, 0, 5000);
	cr_assert_gt(pid, 0, "no dnsmasq for network %lld", (long long)nid);
	kill(pid, SIGKILL);
	pid2 = dnsmasq_pid(nid, pid, 10000);
	cr_expect_gt(pid2, 0, "dnsmasq not restarted");
	cr_expect(log_has("killed by signal 9; restarting it"), "no restart in %s", h.log);

	/* A second port appears in the hosts file and its guest gets its address. */
	create("d2", mac2, ip2, sizeof(mac2));
	snprintf(line, sizeof(line), "%s,%s\n", mac2, ip2);
	cr_expect(wait_hosts(nid, line, true, 0), "hosts file lacks %s before d2 boots", line);
	con = dh_console_until(&h, "d2", "BUNSHIN-TEST name=dhcp", 60000);
	cr_expect_str_eq(dh_test_field(con, "dhcp", "ip"), ip2, "console:\n%s", con);
	free(con);

	/* A daemon restart restarts dnsmasq (a new process reading today's files). */
	pid = dnsmasq_pid(nid, 0, 5000);
	cr_assert_eq(dh_term(&h), 0);
	dh_restart(&h, NULL);
	pid2 = dnsmasq_pid(nid, pid, 10000);
	cr_expect_gt(pid2, 0, "dnsmasq not restarted with bunshind");
	cr_expect(!dh_alive(pid), "the old dnsmasq %d still runs", (int)pid);

	/* Ports that go leave the hosts file; the network's dnsmasq and files go with it. */
	dh_wait_state(&h, h.admin, "d1", "stopped", 30000);
	dh_wait_state(&h, h.admin, "d2", "stopped", 30000);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/d2", NULL, NULL), 204);
	cr_expect(wait_hosts(nid, line, false, 5000), "%s still in the hosts file", line);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/d1", NULL, NULL), 204);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/networks/default", NULL, NULL), 204);
	snprintf(dir, sizeof(dir), "%s/networks/%lld", h.dir, (long long)nid);
	for (int t = 0; t < 50 && !stat(dir, &st); t++)
		usleep(100000);
	cr_expect(stat(dir, &st) != 0, "%s left behind", dir);
	for (int t = 0; t < 50 && dh_alive(pid2); t++)
		usleep(100000);
	cr_expect(!dh_alive(pid2), "dnsmasq %d left running", (int)pid2);
}

Test(dhcp, stop_vms_on_exit_stops_dnsmasq_too)
{
	const char *extra[] = {"--stop-vms-on-exit", NULL};
	char mac[32], ip[32], gw[32];
	int64_t nid;
	pid_t pid, pid2;

	dh_need_kvm();
	register_image();
	create("d1", mac, ip, sizeof(mac));
	nid = default_network(gw, sizeof(gw));
	pid = dnsmasq_pid(nid, 0, 10000);
	cr_assert_gt(pid, 0, "no dnsmasq for network %lld", (long long)nid);
	/* Without the option it outlives bunshind, serving the VMs that do. */
	cr_assert_eq(dh_term(&h), 0);
	cr_expect(dh_alive(pid), "dnsmasq stopped with bunshind");
	dh_restart(&h, extra);
	pid2 = dnsmasq_pid(nid, pid, 10000);
	cr_assert_gt(pid2, 0, "dnsmasq not restarted with bunshind");
	cr_assert_eq(dh_term(&h), 0);
	cr_expect(!dh_alive(pid2), "dnsmasq %d outlived bunshind --stop-vms-on-exit", (int)pid2);
}
