// SPDX-License-Identifier: MIT
/*
 * Two tenants with the same subnet (netroute.h): fake instances (fakeinst.h)
 * with the same address on both bridges must each get their own replies
 * from outside (same source port, same server), their own port forward,
 * and their own network's DNS; and the policy rules and tables behind that
 * must follow the networks (made, rebuilt at start, removed). Each test
 * runs in a network namespace of its own, joined by a veth to "outside"
 * (192.0.2.1; bunshind's side 192.0.2.2), as in test_firewall.c.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/daemon/netroute.h"
#include "dharness.h"
#include "fakeinst.h"

#define OUTSIDE	  "192.0.2.1"
#define HOST_SIDE "192.0.2.2"
#define CIDR	  "10.20.0.0/24"
#define SPORT	  40000

static struct dh h;
static pid_t outside; /* holds the outside namespace */

static bool have(const char *prog)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

static void setup(void)
{
	if (!have("ip") || !have("nft"))
		cr_skip_test("skipped: needs ip (iproute2) and nft (nftables)");
	if (access("/usr/sbin/dnsmasq", X_OK) && access("/sbin/dnsmasq", X_OK) &&
	    access("/usr/bin/dnsmasq", X_OK))
		cr_skip_test("skipped: no dnsmasq (dnsmasq-base) for bunshind to run");
	if (unshare(CLONE_NEWNET))
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	outside = 0;
}

static void teardown(void)
{
	dh_cleanup(&h);
	if (outside > 0) {
		kill(outside, SIGKILL);
		waitpid(outside, NULL, 0);
	}
}

TestSuite(overlap, .init = setup, .fini = teardown, .timeout = 300);

__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

#define SH(...) cr_assert_eq(sh(__VA_ARGS__), 0, __VA_ARGS__)

/* The outside world: a namespace (a sleeping child holds it) on a veth, the default route. */
static void outside_up(void)
{
	int p[2];
	char c;

	cr_assert_eq(pipe(p), 0);
	outside = fork();
	cr_assert_geq(outside, 0);
	if (!outside) {
		if (unshare(CLONE_NEWNET) || write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	cr_assert_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	SH("ip link set lo up && ip link add out0 type veth peer name eth0 netns %d", (int)outside);
	SH("ip addr add " HOST_SIDE "/24 dev out0 && ip link set out0 up");
	SH("nsenter --net=/proc/%d/ns/net sh -c 'ip link set lo up && ip addr add " OUTSIDE
	   "/24 dev eth0 && ip link set eth0 up'",
	   (int)outside);
	SH("ip route add default via " OUTSIDE);
}

/* In a forked child: into the namespace behind fd. */
static void enter_fd(int fd)
{
	if (fd >= 0 && setns(fd, CLONE_NEWNET))
		_exit(125);
}

static int outside_fd(void)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)outside);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* ---- the daemon's side ---- */

static const char *jstr(const json_t *o, const char *path1, const char *key)
{
	if (path1)
		o = json_object_get(o, path1);
	return json_string_value(json_object_get(o, key)) ?: "";
}

struct inst {
	int64_t id, nid;
	char mac[32], ip[32], cidr[40], gw[32], bridge[16], tap[16];
	struct fake f;
};

static int64_t network(const char *token)
{
	json_t *out;
	int64_t id;

	cr_assert_eq(dh_req(&h, token, "POST", "/v1/networks",
			    "{\"name\":\"lab\",\"cidr\":\"" CIDR "\"}", &out),
		     201);
	id = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	return id;
}

/* A stopped instance on the tenant's network "lab", played by a fake (its tap's name). */
static void instance(const char *token, const char *name, struct inst *in)
{
	char body[256];
	json_t *out;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":false,"
		 "\"network\":\"lab\"}",
		 name);
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/instances", body, &out), 201, "%s: %s", name,
		     jstr(out, "error", "message"));
	in->id = json_integer_value(json_object_get(out, "id"));
	snprintf(in->mac, sizeof(in->mac), "%s", jstr(out, "port", "mac"));
	snprintf(in->ip, sizeof(in->ip), "%s", jstr(out, "port", "ip"));
	json_decref(out);
	cr_assert_eq(dh_req(&h, token, "GET", "/v1/networks/lab", NULL, &out), 200);
	in->nid = json_integer_value(json_object_get(out, "id"));
	snprintf(in->gw, sizeof(in->gw), "%s", jstr(out, NULL, "gateway"));
	json_decref(out);
	snprintf(in->cidr, sizeof(in->cidr), "%s/24", in->ip);
	snprintf(in->bridge, sizeof(in->bridge), "bn-%lld", (long long)in->nid);
	snprintf(in->tap, sizeof(in->tap), "bt-%lld", (long long)in->id);
	fake_make(&in->f, in->tap, in->bridge, in->mac, in->cidr, in->gw);
}

/* Two tenants' instances with one address on two networks with one subnet. */
static void two_tenants(struct inst *a, struct inst *b, char *tb, size_t size)
{
	dh_tenant_user(&h, "team-b", "bob", "member", tb, size);
	network(h.admin);
	network(tb);
	instance(h.admin, "alpha", a);
	instance(tb, "beta", b);
	cr_assert_neq(a->nid, b->nid);
	cr_assert_str_eq(a->ip, b->ip, "the test needs the same address on both networks");
	cr_assert_str_eq(a->gw, b->gw);
}

/* ---- probes ---- */

/*
 * A UDP server in the namespace behind fd for ms: answers every datagram
 * with reply, or (NULL) with the datagram itself.
 */
static pid_t udp_server(int fd, int port, const char *reply, int ms)
{
	int r[2];
	char c;
	pid_t pid;

	cr_assert_eq(pipe(r), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		char buf[64];
		int s;

		enter_fd(fd);
		s = socket(AF_INET, SOCK_DGRAM, 0);
		if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) || write(r[1], "R", 1) != 1)
			_exit(2);
		for (int t = 0; t < ms; t += 50) {
			struct pollfd p = {.fd = s, .events = POLLIN};
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n;

			if (poll(&p, 1, 50) != 1)
				continue;
			n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
			if (n > 0)
				sendto(s, reply ?: buf, reply ? strlen(reply) : (size_t)n, 0,
				       (struct sockaddr *)&from, fl);
		}
		_exit(0);
	}
	close(r[1]);
	cr_assert_eq(read(r[0], &c, 1), 1, "the server on port %d did not start", port);
	close(r[0]);
	return pid;
}

/* What a udp_client() saw. */
#define SAW_OWN	    1 /* its own payload (or the answer it wanted) */
#define SAW_FOREIGN 2 /* anything else: another tenant's traffic */

/*
 * From the namespace behind fd, bound to sport (0: any): send payload to
 * ip:port every 100 ms for ms; the exit status says what came back
 * (SAW_* bits): "want" is the answer that counts as its own.
 */
static pid_t udp_client(int fd, int sport, const char *ip, int port, const char *payload,
			const char *want, int ms)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sport)};
		int s, saw = 0, on = 1;
		char buf[64];

		enter_fd(fd);
		s = socket(AF_INET, SOCK_DGRAM, 0);
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		inet_pton(AF_INET, ip, &to.sin_addr);
		if (s < 0 || bind(s, (struct sockaddr *)&me, sizeof(me)) ||
		    connect(s, (struct sockaddr *)&to, sizeof(to)))
			_exit(100);
		for (int t = 0; t < ms; t += 100) {
			struct pollfd p = {.fd = s, .events = POLLIN};
			ssize_t n;

			if (send(s, payload, strlen(payload), 0) < 0)
				continue;
			while (poll(&p, 1, 100) == 1) {
				n = recv(s, buf, sizeof(buf) - 1, 0);
				if (n <= 0)
					break;
				buf[n] = 0;
				saw |= strcmp(buf, want) ? SAW_FOREIGN : SAW_OWN;
			}
		}
		_exit(saw);
	}
	return pid;
}

static int reaped(pid_t pid)
{
	int status;

	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* ---- the tests ---- */

Test(overlap, each_tenant_gets_its_own_replies_from_outside)
{
	struct inst a, b;
	char tb[128];
	int ret_a, ret_b, out;
	pid_t server, ca, cb;

	dh_start(&h, NULL);
	outside_up();
	two_tenants(&a, &b, tb, sizeof(tb));
	out = outside_fd();
	server = udp_server(out, 7000, NULL, 6000);
	/* The same source address and port, the same server, at the same time. */
	ca = udp_client(a.f.ns, SPORT, OUTSIDE, 7000, "alpha", "alpha", 3000);
	cb = udp_client(b.f.ns, SPORT, OUTSIDE, 7000, "beta", "beta", 3000);
	ret_a = reaped(ca);
	ret_b = reaped(cb);
	stop(server);
	close(out);
	cr_expect_eq(ret_a, SAW_OWN, "tenant A's instance: %d (1: its replies, 2: the other's)",
		     ret_a);
	cr_expect_eq(ret_b, SAW_OWN, "tenant B's instance: %d (1: its replies, 2: the other's)",
		     ret_b);
	fake_free(&a.f);
	fake_free(&b.f);
}

Test(overlap, each_forward_reaches_its_own_tenants_instance)
{
	struct inst a, b;
	char tb[128], path[128];
	int ret_a, ret_b, out;
	pid_t sa, sb, c;

	dh_start(&h, NULL);
	outside_up();
	two_tenants(&a, &b, tb, sizeof(tb));
	snprintf(path, sizeof(path), "/v1/instances/%lld/forwards", (long long)a.id);
	cr_assert_eq(dh_req(&h, h.admin, "POST", path,
			    "{\"host_port\":8080,\"guest_port\":7000,\"proto\":\"udp\"}", NULL),
		     201);
	snprintf(path, sizeof(path), "/v1/instances/%lld/forwards", (long long)b.id);
	cr_assert_eq(dh_req(&h, tb, "POST", path,
			    "{\"host_port\":8081,\"guest_port\":7000,\"proto\":\"udp\"}", NULL),
		     201);
	sa = udp_server(a.f.ns, 7000, "alpha", 6000);
	sb = udp_server(b.f.ns, 7000, "beta", 6000);
	out = outside_fd();
	c = udp_client(out, 0, HOST_SIDE, 8080, "hi", "alpha", 1500);
	ret_a = reaped(c);
	c = udp_client(out, 0, HOST_SIDE, 8081, "hi", "beta", 1500);
	ret_b = reaped(c);
	/* The host's own use of a forward (output hook) is routed the same way. */
	c = udp_client(-1, 0, HOST_SIDE, 8081, "hi", "beta", 1500);
	cr_expect_eq(reaped(c), SAW_OWN, "the host's own use of tenant B's forward");
	stop(sa);
	stop(sb);
	close(out);
	cr_expect_eq(ret_a, SAW_OWN, "forward 8080 (tenant A): %d (1: A answered, 2: B did)",
		     ret_a);
	cr_expect_eq(ret_b, SAW_OWN, "forward 8081 (tenant B): %d (1: B answered, 2: A did)",
		     ret_b);
	fake_free(&a.f);
	fake_free(&b.f);
}

Test(overlap, each_network_gets_dns_from_its_own_dnsmasq)
{
	struct inst a, b;
	char tb[128];

	dh_start(&h, NULL);
	two_tenants(&a, &b, tb, sizeof(tb));
	cr_expect_str_eq(fake_dns_a_wait(&a.f, a.gw, "alpha", 15000), a.ip);
	cr_expect_str_eq(fake_dns_a_wait(&b.f, b.gw, "beta.bunshin.internal", 15000), b.ip);
	cr_expect_str_eq(fake_dns_a(&b.f, b.gw, "alpha"), "", "tenant A's name seen from B");
	cr_expect_str_eq(fake_dns_a(&a.f, a.gw, "beta"), "", "tenant B's name seen from A");
	/* Asked again and again (conntrack entries live on), still each its own. */
	for (int i = 0; i < 5; i++) {
		cr_expect_str_eq(fake_dns_a(&a.f, a.gw, "alpha"), a.ip);
		cr_expect_str_eq(fake_dns_a(&b.f, b.gw, "beta"), b.ip);
	}
	fake_free(&a.f);
	fake_free(&b.f);
}

/* ---- the rules and tables behind it ---- */

static bool has_rule(int64_t nid)
{
	return sh("ip -4 rule show priority %u | grep -q 'fwmark 0x%llx lookup %u\\b'",
		  NETR_RULE_PRIO, (long long)nid, netr_table(nid)) == 0;
}

static bool table_has(int64_t nid, const char *route)
{
	return sh("ip -4 route show table %u | grep -q '%s'", netr_table(nid), route) == 0;
}

static bool table_empty(uint32_t table)
{
	return sh("test -z \"$(ip -4 route show table %u 2>/dev/null)\"", table) == 0;
}

Test(overlap, rules_and_tables_follow_the_networks)
{
	char tb[128], want[64];
	int64_t na, nb;

	dh_start(&h, NULL);
	dh_tenant_user(&h, "team-b", "bob", "member", tb, sizeof(tb));
	na = network(h.admin);
	nb = network(tb);
	snprintf(want, sizeof(want), CIDR " dev bn-%lld", (long long)nb);
	cr_expect(has_rule(na) && has_rule(nb), "no rule per network");
	cr_expect(table_has(nb, want), "table %u lacks %s", netr_table(nb), want);
	cr_expect_eq(sh("grep -qx 2 /proc/sys/net/ipv4/conf/bn-%lld/rp_filter", (long long)nb), 0,
		     "rp_filter is not loose on the bridge");

	/* Lost while bunshind is down, or left over: the next start sets both right. */
	cr_assert_eq(dh_term(&h), 0);
	SH("ip rule del priority %u fwmark %lld lookup %u", NETR_RULE_PRIO, (long long)na,
	   netr_table(na));
	SH("ip rule add priority %u fwmark 999 lookup %u && ip route add blackhole 10.99.0.0/24 "
	   "table %u",
	   NETR_RULE_PRIO, netr_table(999), netr_table(999));
	dh_restart(&h, NULL);
	cr_expect(has_rule(na), "the lost rule is not back");
	cr_expect(!has_rule(999), "a stray rule is still there");
	cr_expect(table_empty(netr_table(999)), "a stray table is still there");

	/* The network gone: its rule, its table and its bridge with it. */
	cr_assert_eq(dh_req(&h, tb, "DELETE", "/v1/networks/lab", NULL, NULL), 204);
	cr_expect(!has_rule(nb), "the rule of a deleted network is left");
	cr_expect(table_empty(netr_table(nb)), "the table of a deleted network is left");
	cr_expect_neq(sh("ip link show bn-%lld >/dev/null 2>&1", (long long)nb), 0);
	cr_expect(has_rule(na), "the other network's rule went too");
}

/* ---- real guests ---- */

static void guest_image(const char *name, const char *cmdline)
{
	char body[768];

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"path\":\"%s\",\"kind\":\"kernel\",\"cmdline\":\"%s\"}", name,
		 getenv("BUNSHIN_GUEST_ELF"), cmdline);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, NULL), 201);
}

/* A guest of image on the tenant's "lab", started; its address into ip. */
static void guest(const char *token, const char *name, const char *image, char ip[32])
{
	char body[256], path[128];
	json_t *out;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"%s\",\"network\":\"lab\","
		 "\"start\":false}",
		 name, image);
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/instances", body, &out), 201, "%s: %s", name,
		     jstr(out, "error", "message"));
	snprintf(ip, 32, "%s", jstr(out, "port", "ip"));
	json_decref(out);
	snprintf(path, sizeof(path), "/v1/instances/%s/actions", name);
	cr_assert_eq(dh_req(&h, token, "POST", path, "{\"action\":\"start\"}", NULL), 200);
}

/* The guest's netprobe result line (up to 90 s); skips when the guest lacks the scenario. */
static char *netprobe_result(const char *name)
{
	char path[128], *body = NULL;

	snprintf(path, sizeof(path), "/v1/instances/%s/console", name);
	for (int t = 0; t < 90000; t += 200) {
		const char *at;

		free(body);
		body = NULL;
		at = dh_text(&h, h.admin, path, &body) == 200
			     ? strstr(body, "BUNSHIN-TEST name=netprobe")
			     : NULL;
		if (at && strchr(at, '\n'))
			break;
		usleep(200000);
	}
	if (body && strstr(body, "reason=unknown-scenario"))
		cr_skip_test("skipped: this test guest has no test=netprobe scenario");
	cr_assert(body && strstr(body, "BUNSHIN-TEST name=netprobe result=pass"), "console:\n%s",
		  body ?: "");
	return body;
}

Test(overlap, two_guests_with_one_address_both_reach_outside)
{
	char tb[128], ipa[32], ipb[32], *con;
	const char *names[] = {"ga", "gb"};
	int out;
	pid_t server;

	dh_need_kvm();
	dh_start(&h, NULL);
	outside_up();
	dh_tenant_user(&h, "team-b", "bob", "member", tb, sizeof(tb));
	network(h.admin);
	network(tb);
	/* Each sends its own word: an echo of the other's does not count as its own. */
	guest_image("probe-a", "test=netprobe dhcp_tries=8 ping=10.20.0.1+" OUTSIDE " udp=" OUTSIDE
			       ":7000 udp_msg=alpha");
	guest_image("probe-b", "test=netprobe dhcp_tries=8 ping=10.20.0.1+" OUTSIDE " udp=" OUTSIDE
			       ":7000 udp_msg=beta");
	out = outside_fd();
	server = udp_server(out, 7000, NULL, 120000);
	guest(h.admin, "ga", "probe-a", ipa);
	guest(tb, "gb", "probe-b", ipb);
	cr_assert_str_eq(ipa, ipb, "the test needs the same address on both networks");
	for (int i = 0; i < 2; i++) {
		con = netprobe_result(names[i]);
		cr_expect_str_eq(dh_test_field(con, "netprobe", "ip"), ipa, "%s:\n%s", names[i],
				 con);
		cr_expect_str_eq(dh_test_field(con, "netprobe", "ping1"), "ok",
				 "%s, its gateway:\n%s", names[i], con);
		cr_expect_str_eq(dh_test_field(con, "netprobe", "ping2"), "ok", "%s, outside:\n%s",
				 names[i], con);
		cr_expect_str_eq(dh_test_field(con, "netprobe", "udp"), "ok",
				 "%s, its own echo:\n%s", names[i], con);
		free(con);
	}
	stop(server);
	close(out);
}
