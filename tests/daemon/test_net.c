// SPDX-License-Identifier: MIT
/*
 * Instance networks end to end, with real bridges and taps: every test
 * runs in a network namespace of its own (Criterion forks a process per
 * test; bunshind inherits the namespace), with a sysfs of that namespace
 * mounted in a private mount namespace to read links' owners and masters.
 * The host's own links are never touched.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/hostnet/link.h"
#include "dharness.h"

#define UID_BASE 100000 /* bunshind's default --uid-base */

static struct dh h;
static char sysdir[] = "/tmp/bunshin-netsys-XXXXXX";

static void setup(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS))
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
	cr_assert_not_null(mkdtemp(sysdir));
	/* sysfs shows the links of the namespace that mounts it: this one's. */
	cr_assert_eq(mount("sysfs", sysdir, "sysfs", 0, NULL), 0, "%s", strerror(errno));
	dh_start(&h, NULL);
}

static void teardown(void)
{
	dh_cleanup(&h);
	umount(sysdir);
	rmdir(sysdir);
}

TestSuite(net, .init = setup, .fini = teardown, .timeout = 300);

static bool link_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

static bool link_up(const char *name)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool up;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	up = fd >= 0 && !ioctl(fd, SIOCGIFFLAGS, &ifr) && (ifr.ifr_flags & IFF_UP);
	if (fd >= 0)
		close(fd);
	return up;
}

/* The link's IPv4 address as text, "" when none. */
static const char *link_addr(const char *name)
{
	static char buf[INET_ADDRSTRLEN];
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	buf[0] = 0;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (fd >= 0 && !ioctl(fd, SIOCGIFADDR, &ifr))
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, buf,
			  sizeof(buf));
	if (fd >= 0)
		close(fd);
	return buf;
}

/* The bridge a link is attached to, "" when none. */
static const char *link_master(const char *name)
{
	static char buf[IF_NAMESIZE + 1];
	char path[256], target[256];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/class/net/%s/master", sysdir, name);
	n = readlink(path, target, sizeof(target) - 1);
	buf[0] = 0;
	if (n > 0) {
		target[n] = 0;
		snprintf(buf, sizeof(buf), "%s", strrchr(target, '/') + 1);
	}
	return buf;
}

/* A tap's owner uid, -1 when none or not a tap. */
static long tap_owner(const char *name)
{
	char path[256];
	long uid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/class/net/%s/owner", sysdir, name);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld", &uid) != 1)
			uid = -1;
		fclose(f);
	}
	return uid;
}

/* A tap has carrier while a process holds it open: the VMM's queue. */
static bool tap_carrier(const char *name)
{
	char path[256];
	int c = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/class/net/%s/carrier", sysdir, name);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &c) != 1)
			c = 0;
		fclose(f);
	}
	return c == 1;
}

/* Creates an instance; its id, and its port's ip into ip (may be NULL). */
static int64_t create(const char *token, const char *name, const char *network, bool start,
		      char *ip, size_t size)
{
	char body[256], net[96] = "";
	int64_t id;
	json_t *out;

	if (network)
		snprintf(net, sizeof(net), ",\"network\":\"%s\"", network);
	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":%s%s}",
		 name, start ? "true" : "false", net);
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/instances", body, &out), 201, "%s: %s", name,
		     dh_jstr(out, "error", "message"));
	id = json_integer_value(json_object_get(out, "id"));
	if (ip)
		snprintf(ip, size, "%s", dh_jstr(out, "port", "ip"));
	json_decref(out);
	return id;
}

static void names(int64_t instance, int64_t network, char tap[16], char bridge[16])
{
	snprintf(tap, 16, "bt-%lld", (long long)instance);
	snprintf(bridge, 16, "bn-%lld", (long long)network);
}

static int64_t network_id(const char *token, const char *name)
{
	char path[128];
	json_t *out;
	int64_t id;

	snprintf(path, sizeof(path), "/v1/networks/%s", name);
	cr_assert_eq(dh_req(&h, token, "GET", path, NULL, &out), 200);
	id = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	return id;
}

Test(net, first_instance_gets_default_network_bridge_and_owned_tap)
{
	char a[128], b[128], tap[16], bridge[16], path[64];
	int64_t id, nid, bid;
	json_t *out;

	dh_need_kvm();
	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	dh_tenant_user(&h, "team-b", "bob", "member", b, sizeof(b));
	cr_assert_eq(dh_req(&h, a, "GET", "/v1/networks", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 0, "no network before the first instance");
	json_decref(out);

	cr_assert_eq(dh_req(&h, a, "POST", "/v1/instances",
			    "{\"name\":\"web1\",\"flavor\":\"tiny\",\"image\":\"test-guest\"}",
			    &out),
		     201);
	id = json_integer_value(json_object_get(out, "id"));
	cr_expect_str_eq(dh_jstr(out, "port", "network"), "default");
	cr_expect_str_eq(dh_jstr(out, "port", "ip"), "10.128.0.2");
	cr_expect(!strncmp(dh_jstr(out, "port", "mac"), "02:b5:", 6), "%s",
		  dh_jstr(out, "port", "mac"));
	json_decref(out);

	cr_assert_eq(dh_req(&h, a, "GET", "/v1/networks/default", NULL, &out), 200);
	cr_expect_str_eq(dh_jstr(out, NULL, "cidr"), "10.128.0.0/24");
	cr_expect_str_eq(dh_jstr(out, NULL, "gateway"), "10.128.0.1");
	nid = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	names(id, nid, tap, bridge);

	/* Running means the jailed VMM, as its own user, opened the tap by name. */
	cr_expect_str_eq(dh_wait_state(&h, a, "web1", "running", 30000), "running");
	cr_expect(link_exists(bridge), "%s", bridge);
	cr_expect(link_up(bridge), "%s is down", bridge);
	cr_expect_str_eq(link_addr(bridge), "10.128.0.1");
	cr_expect_str_eq(link_master(tap), bridge);
	cr_expect(link_up(tap), "%s is down", tap);
	cr_expect_eq(tap_owner(tap), UID_BASE + id);
	cr_expect(tap_carrier(tap), "the VMM does not hold %s open", tap);

	/* A daemon restart leaves a running instance's tap to its VMM. */
	cr_assert_eq(dh_term(&h), 0);
	dh_restart(&h, NULL);
	cr_expect_str_eq(dh_wait_state(&h, a, "web1", "running", 0), "running");
	cr_expect(tap_carrier(tap), "%s taken from its VMM by the restart", tap);
	cr_expect_str_eq(link_master(tap), bridge);

	/* Another tenant: a default network of its own, another /24; A's is not there for it. */
	create(b, "web1", NULL, false, NULL, 0);
	cr_assert_eq(dh_req(&h, b, "GET", "/v1/networks/default", NULL, &out), 200);
	cr_expect_str_eq(dh_jstr(out, NULL, "cidr"), "10.128.1.0/24");
	bid = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	cr_expect_neq(bid, nid);
	snprintf(path, sizeof(path), "/v1/networks/%lld", (long long)nid);
	cr_expect_eq(dh_req(&h, b, "GET", path, NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, b, "DELETE", path, NULL, NULL), 404);
	cr_assert_eq(dh_req(&h, b, "GET", "/v1/networks", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 1);
	json_decref(out);

	/* Delete: the tap goes with the instance; then the network and its bridge can go. */
	cr_expect_eq(dh_req(&h, a, "DELETE", "/v1/networks/default", NULL, NULL), 409);
	cr_assert_eq(dh_req(&h, a, "DELETE", "/v1/instances/web1", NULL, NULL), 204);
	cr_expect(!link_exists(tap), "%s left behind", tap);
	cr_expect_eq(dh_req(&h, a, "DELETE", "/v1/networks/default", NULL, NULL), 204);
	cr_expect(!link_exists(bridge), "%s left behind", bridge);
}

Test(net, addresses_never_shared_released_and_reused)
{
	char a[128], ip1[32], ip2[32], ip3[32];
	int64_t i1, i2, i3;

	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	cr_assert_eq(dh_req(&h, a, "POST", "/v1/networks",
			    "{\"name\":\"lab\",\"cidr\":\"10.20.0.0/29\"}", NULL),
		     201);
	i1 = create(a, "one", "lab", false, ip1, sizeof(ip1));
	i2 = create(a, "two", "lab", false, ip2, sizeof(ip2));
	cr_expect_str_eq(ip1, "10.20.0.2");
	cr_expect_str_eq(ip2, "10.20.0.3");
	cr_expect_neq(i1, i2);
	cr_assert_eq(dh_req(&h, a, "DELETE", "/v1/instances/one", NULL, NULL), 204);
	i3 = create(a, "three", "lab", false, ip3, sizeof(ip3));
	cr_expect_str_eq(ip3, "10.20.0.2", "the released address is handed out again");
	cr_expect_neq(i3, i1);
	/* .2 to .6 are a /29's ports: three more fill it, the next is refused. */
	create(a, "f1", "lab", false, NULL, 0);
	create(a, "f2", "lab", false, NULL, 0);
	create(a, "f3", "lab", false, NULL, 0);
	cr_expect_eq(dh_req(&h, a, "POST", "/v1/instances",
			    "{\"name\":\"f4\",\"flavor\":\"tiny\",\"image\":\"test-guest\","
			    "\"start\":false,\"network\":\"lab\"}",
			    NULL),
		     409);
	cr_expect_eq(dh_req(&h, a, "POST", "/v1/instances",
			    "{\"name\":\"f5\",\"flavor\":\"tiny\",\"image\":\"test-guest\","
			    "\"start\":false,\"network\":\"nowhere\"}",
			    NULL),
		     404);
	cr_expect_eq(dh_req(&h, a, "DELETE", "/v1/networks/lab", NULL, NULL), 409);
}

Test(net, bad_networks_are_refused_naming_the_field)
{
	static const char *const bad[] = {
		"{\"name\":\"n\",\"cidr\":\"10.0.0.0/33\"}",
		"{\"name\":\"n\",\"cidr\":\"10.0.0.1/24\"}",
		"{\"name\":\"n\",\"cidr\":\"banana\"}",
		"{\"name\":\"n\",\"cidr\":\"10.0.0.0/8\"}",
		"{\"name\":\"n\",\"cidr\":\"010.0.0.0/24\"}",
		"{\"name\":\"n\",\"cidr\":42}",
		"{\"name\":\"n\"}",
	};
	char a[128], v[128];
	json_t *out;

	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(dh_req(&h, a, "POST", "/v1/networks", bad[i], &out), 400, "%s",
			     bad[i]);
		cr_expect_str_eq(dh_jstr(out, "error", "field"), "cidr", "%s", bad[i]);
		json_decref(out);
	}
	cr_expect_eq(dh_req(&h, a, "POST", "/v1/networks",
			    "{\"name\":\"9x\",\"cidr\":\"10.0.0.0/24\"}", NULL),
		     400);
	cr_expect_eq(dh_req(&h, a, "POST", "/v1/networks",
			    "{\"name\":\"n\",\"cidr\":\"10.0.0.0/24\",\"evil\":1}", NULL),
		     400);
	cr_assert_eq(dh_req(&h, a, "POST", "/v1/networks",
			    "{\"name\":\"n\",\"cidr\":\"10.0.0.0/24\"}", NULL),
		     201);
	cr_expect_eq(dh_req(&h, a, "POST", "/v1/networks",
			    "{\"name\":\"n\",\"cidr\":\"10.9.0.0/24\"}", NULL),
		     409);
	/* Overlapping subnets between tenants are allowed; viewers may not create. */
	dh_tenant_user(&h, "team-b", "vic", "viewer", v, sizeof(v));
	cr_expect_eq(dh_req(&h, v, "POST", "/v1/networks",
			    "{\"name\":\"n\",\"cidr\":\"10.0.0.0/24\"}", NULL),
		     403);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/networks",
			    "{\"name\":\"n\",\"cidr\":\"10.0.0.0/24\"}", NULL),
		     201);
}

Test(net, restart_recreates_missing_links_and_removes_strays)
{
	struct hostnet_tap_opts stray_opts = {0};
	char a[128], tap[16], bridge[16], tap2[16], bridge2[16];
	struct error err = {0};
	struct hostnet *hn;
	int64_t id, id2;

	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	cr_assert_eq(dh_req(&h, a, "POST", "/v1/networks",
			    "{\"name\":\"lab\",\"cidr\":\"10.20.0.0/24\"}", NULL),
		     201);
	id = create(a, "s1", "lab", false, NULL, 0);
	names(id, network_id(a, "lab"), tap, bridge);
	cr_assert_eq(dh_req(&h, a, "POST", "/v1/networks",
			    "{\"name\":\"spare\",\"cidr\":\"10.21.0.0/24\"}", NULL),
		     201);
	id2 = create(a, "s2", "spare", false, NULL, 0);
	names(id2, network_id(a, "spare"), tap2, bridge2);

	/* A restart makes the stopped instance's links and removes what the store does not know. */
	cr_assert_eq(dh_term(&h), 0);
	cr_assert_eq(hostnet_open(&hn, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_bridge_create(hn, "bn-9999", 0x0a630001, 24, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_tap_create(hn, "bt-9999", &stray_opts, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_bridge_create(hn, "other0", 0x0a640001, 24, &err), 0, "%s", err.msg);
	dh_restart(&h, NULL);
	cr_expect(!link_exists("bn-9999"), "stray bridge left");
	cr_expect(!link_exists("bt-9999"), "stray tap left");
	cr_expect(link_exists("other0"), "a link that is not bunshin's was removed");
	cr_expect_str_eq(link_addr(bridge), "10.20.0.1");
	cr_expect_str_eq(link_master(tap), bridge);
	cr_expect_eq(tap_owner(tap), UID_BASE + id);
	cr_expect(!tap_carrier(tap), "a stopped instance's tap has no VMM");

	/* Deleted behind its back, with bunshind killed: made again at the next start. */
	cr_assert_eq(hostnet_link_delete(hn, tap, &err), 0, "%s", err.msg);
	dh_kill9(&h);
	dh_restart(&h, NULL);
	cr_expect(link_exists(tap), "%s not re-created", tap);
	cr_expect_str_eq(link_master(tap), bridge);
	cr_expect_eq(tap_owner(tap), UID_BASE + id);
	hostnet_close(hn);

	cr_assert_eq(dh_req(&h, a, "DELETE", "/v1/instances/s1", NULL, NULL), 204);
	cr_expect(!link_exists(tap), "%s left behind", tap);
	cr_assert_eq(dh_req(&h, a, "DELETE", "/v1/networks/lab", NULL, NULL), 204);
	cr_expect(!link_exists(bridge), "%s left behind", bridge);

	/* A tenant's networks, and their bridges, go with the tenant. */
	cr_expect(link_exists(bridge2), "%s not made at start", bridge2);
	cr_assert_eq(dh_req(&h, a, "DELETE", "/v1/instances/s2", NULL, NULL), 204);
	cr_expect(!link_exists(tap2), "%s left behind", tap2);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/users/alice", NULL, NULL), 204);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/tenants/team-a", NULL, NULL), 204);
	cr_expect(!link_exists(bridge2), "%s left behind with its tenant", bridge2);
}

/* The CLI's network commands and server create --network, exit statuses only. */
static int cli(const char *token, const char *args)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd),
		 "BUNSHIN_ENDPOINT='%s' BUNSHIN_TOKEN='%s' '%s' %s >/dev/null 2>&1", h.sock, token,
		 getenv("BUNSHIN_CLI"), args);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(net, cli_network_commands)
{
	char a[128];
	json_t *out;

	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	cr_expect_eq(cli(a, "network create lab --cidr 10.30.0.0/24"), 0);
	cr_expect_neq(cli(a, "network create bad --cidr 10.30.0.1/24"), 0);
	cr_expect_neq(cli(a, "network create nocidr"), 0);
	cr_expect_eq(cli(a, "network list"), 0);
	cr_expect_eq(cli(a, "network show lab"), 0);
	cr_expect_eq(
		cli(a, "server create s1 --flavor tiny --image test-guest --stopped --network lab"),
		0);
	cr_assert_eq(dh_req(&h, a, "GET", "/v1/instances/s1", NULL, &out), 200);
	cr_expect_str_eq(dh_jstr(out, "port", "network"), "lab");
	cr_expect_str_eq(dh_jstr(out, "port", "ip"), "10.30.0.2");
	json_decref(out);
	cr_expect_neq(cli(a, "network delete lab"), 0, "in use");
	cr_expect_eq(cli(a, "server delete s1"), 0);
	cr_expect_eq(cli(a, "network delete lab"), 0);
	cr_expect_neq(cli(a, "network show lab"), 0);
}

#define RACERS 16

struct racer {
	const char *token;
	int n;
	char ip[32], msg[160];
	int status;
};

static void *racer(void *arg)
{
	struct racer *r = arg;
	char body[256];
	json_t *out = NULL;

	snprintf(body, sizeof(body),
		 "{\"name\":\"r%d\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":false,"
		 "\"network\":\"lab\"}",
		 r->n);
	r->status = dh_req(&h, r->token, "POST", "/v1/instances", body, &out);
	snprintf(r->ip, sizeof(r->ip), "%s", dh_jstr(out, "port", "ip"));
	snprintf(r->msg, sizeof(r->msg), "%s", dh_jstr(out, "error", "message"));
	json_decref(out);
	return NULL;
}

/* Concurrent creates on one network: each gets an address, none the same. */
Test(net, concurrent_creates_get_distinct_addresses)
{
	struct racer r[RACERS];
	pthread_t t[RACERS];
	const char *const roomy[] = {"--cpu-ratio", "64", NULL};
	char a[128];

	/* Room for every racer whatever this host's CPU count. */
	dh_cleanup(&h);
	dh_start(&h, roomy);
	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	cr_assert_eq(dh_req(&h, h.admin, "PUT", "/v1/tenants/team-a/quota",
			    "{\"instances\":100,\"vcpus\":100}", NULL),
		     200);
	cr_assert_eq(dh_req(&h, a, "POST", "/v1/networks",
			    "{\"name\":\"lab\",\"cidr\":\"10.40.0.0/24\"}", NULL),
		     201);
	for (int i = 0; i < RACERS; i++) {
		r[i] = (struct racer){.token = a, .n = i};
		cr_assert_eq(pthread_create(&t[i], NULL, racer, &r[i]), 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RACERS; i++) {
		cr_expect_eq(r[i].status, 201, "r%d: %s", i, r[i].msg);
		cr_expect(!strncmp(r[i].ip, "10.40.0.", 8), "r%d: '%s'", i, r[i].ip);
		for (int j = 0; j < i; j++)
			cr_expect_str_neq(r[i].ip, r[j].ip, "r%d and r%d", i, j);
	}
}

/* --network-pool: one /24 per tenant's default network, until there is none left. */
Test(net, network_pool_is_carved_into_24s)
{
	const char *const small[] = {"--network-pool", "192.168.4.0/23", NULL};
	static const char *const bad[] = {"10.0.0.0/25", "10.0.0.1/16", "10.0.0.0", "x/8",
					  "10.0.0.0/0"};
	char a[128], b[128], cc[128], cmd[512];
	json_t *out;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cmd, sizeof(cmd),
			 "timeout 5 '%s' --state-dir %s --network-pool '%s' 2>/dev/null",
			 getenv("BUNSHIND"), h.dir, bad[i]);
		cr_expect_neq(system(cmd), 0, "--network-pool %s accepted", bad[i]);
	}
	dh_cleanup(&h);
	dh_start(&h, small);
	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	dh_tenant_user(&h, "team-b", "bob", "member", b, sizeof(b));
	dh_tenant_user(&h, "team-c", "carol", "member", cc, sizeof(cc));
	create(a, "x", NULL, false, NULL, 0);
	create(b, "x", NULL, false, NULL, 0);
	cr_assert_eq(dh_req(&h, a, "GET", "/v1/networks/default", NULL, &out), 200);
	cr_expect_str_eq(dh_jstr(out, NULL, "cidr"), "192.168.4.0/24");
	json_decref(out);
	cr_assert_eq(dh_req(&h, b, "GET", "/v1/networks/default", NULL, &out), 200);
	cr_expect_str_eq(dh_jstr(out, NULL, "cidr"), "192.168.5.0/24");
	json_decref(out);
	cr_expect_eq(dh_req(&h, cc, "POST", "/v1/instances",
			    "{\"name\":\"x\",\"flavor\":\"tiny\",\"image\":\"test-guest\","
			    "\"start\":false}",
			    &out),
		     409);
	cr_expect_str_eq(dh_jstr(out, "error", "field"), "network");
	json_decref(out);
}
