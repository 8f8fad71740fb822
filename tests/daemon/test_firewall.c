// SPDX-License-Identifier: MIT
/*
 * bunshind's nftables tables end to end, with fake instances: each test
 * runs in a network namespace of its own (bunshind inherits it) joined by
 * a veth to a second one, "outside" (192.0.2.1; bunshind's side 192.0.2.2
 * and the default route). A fake instance is a third namespace whose eth0
 * is a veth named as the instance's tap (bt-ID) on its network's bridge,
 * with the port's MAC and address: the daemon's rules cannot tell it from
 * a VM. Probes (UDP, TCP) run in forked children that enter a namespace.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"

#define OUTSIDE	  "192.0.2.1"
#define HOST_SIDE "192.0.2.2"
#define NS_MAX	  8

static struct dh h;
static pid_t nss[NS_MAX];
static int nns;

static bool have(const char *prog)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

static void setup(void)
{
	if (!have("ip") || !have("nft") || !have("ping"))
		cr_skip_test("skipped: needs ip (iproute2), nft (nftables), ping (iputils-ping)");
	if (unshare(CLONE_NEWNET))
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	nns = 0;
}

static void teardown(void)
{
	dh_cleanup(&h);
	for (int i = 0; i < nns; i++) {
		kill(nss[i], SIGKILL);
		waitpid(nss[i], NULL, 0);
	}
}

TestSuite(firewall, .init = setup, .fini = teardown, .timeout = 300);

/* ---- namespaces ---- */

/* A network namespace held by a sleeping child; its pid names it. */
static pid_t ns_new(void)
{
	int p[2];
	char c = 0;
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		close(p[0]);
		if (unshare(CLONE_NEWNET))
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	cr_assert_eq(read(p[0], &c, 1), 1, "namespace child failed");
	close(p[0]);
	cr_assert_lt(nns, NS_MAX);
	nss[nns++] = pid;
	return pid;
}

/* In a forked child: enters ns (0: stays in bunshind's). */
static void ns_enter(pid_t ns)
{
	char path[64];
	int fd;

	if (!ns)
		return;
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET))
		_exit(125);
	close(fd);
}

__attribute__((format(printf, 2, 3))) static int sh(pid_t ns, const char *fmt, ...)
{
	char cmd[1024];
	int status;
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		ns_enter(ns);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#define SH(ns, ...) cr_assert_eq(sh(ns, __VA_ARGS__), 0, __VA_ARGS__)

/* The outside world: a veth from bunshind's namespace, its default route. */
static pid_t outside_up(void)
{
	pid_t out = ns_new();

	SH(0, "ip link set lo up && ip link add out0 type veth peer name eth0 netns %d", (int)out);
	SH(0, "ip addr add " HOST_SIDE "/24 dev out0 && ip link set out0 up");
	SH(out, "ip link set lo up && ip addr add " OUTSIDE "/24 dev eth0 && ip link set eth0 up");
	SH(0, "ip route add default via " OUTSIDE);
	return out;
}

/* ---- the daemon's side ---- */

static const char *jstr(const json_t *o, const char *path1, const char *key)
{
	if (path1)
		o = json_object_get(o, path1);
	return json_string_value(json_object_get(o, key)) ?: "";
}

struct inst {
	int64_t id, net;
	char mac[32], ip[32], gw[32], bridge[16], tap[16];
	pid_t ns;
};

/* A stopped instance (its port allocated) on network (NULL: the default). */
static void instance(const char *token, const char *name, const char *network, struct inst *in)
{
	char body[256], path[128];
	json_t *out;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":false%s%"
		 "s%s}",
		 name, network ? ",\"network\":\"" : "", network ?: "", network ? "\"" : "");
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/instances", body, &out), 201, "%s: %s", name,
		     jstr(out, "error", "message"));
	memset(in, 0, sizeof(*in));
	in->id = json_integer_value(json_object_get(out, "id"));
	snprintf(in->mac, sizeof(in->mac), "%s", jstr(out, "port", "mac"));
	snprintf(in->ip, sizeof(in->ip), "%s", jstr(out, "port", "ip"));
	snprintf(path, sizeof(path), "/v1/networks/%s", jstr(out, "port", "network"));
	json_decref(out);
	cr_assert_eq(dh_req(&h, token, "GET", path, NULL, &out), 200);
	in->net = json_integer_value(json_object_get(out, "id"));
	snprintf(in->gw, sizeof(in->gw), "%s", jstr(out, NULL, "gateway"));
	json_decref(out);
	snprintf(in->bridge, sizeof(in->bridge), "bn-%lld", (long long)in->net);
	snprintf(in->tap, sizeof(in->tap), "bt-%lld", (long long)in->id);
}

/* The instance played by a namespace: a veth named as its tap, on its bridge. */
static void fake(struct inst *in)
{
	in->ns = ns_new();
	/* bunshind makes the bridge when a VM boots; none boots here. */
	SH(0,
	   "ip link show %s >/dev/null 2>&1 || { ip link add %s type bridge &&"
	   " ip addr add %s/24 dev %s && ip link set %s up; }",
	   in->bridge, in->bridge, in->gw, in->bridge, in->bridge);
	SH(0,
	   "ip link add %s type veth peer name eth0 netns %d && ip link set %s master %s &&"
	   " ip link set %s up",
	   in->tap, (int)in->ns, in->tap, in->bridge, in->tap);
	SH(in->ns,
	   "ip link set lo up && ip link set eth0 address %s && ip addr add %s/24 dev eth0 &&"
	   " ip link set eth0 up && ip route add default via %s",
	   in->mac, in->ip, in->gw);
}

static int64_t network(const char *token, const char *name, const char *cidr, bool isolated)
{
	char body[200];
	json_t *out;
	int64_t id;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"cidr\":\"%s\",\"isolated\":%s}", name,
		 cidr, isolated ? "true" : "false");
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/networks", body, &out), 201);
	cr_expect_eq(json_is_true(json_object_get(out, "isolated")), isolated);
	id = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	return id;
}

static int forward(const char *token, int64_t inst, const char *body, json_t **out)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%lld/forwards", (long long)inst);
	return dh_req(&h, token, "POST", path, body, out);
}

/* `nft list ruleset` in bunshind's namespace; malloc'd. */
static char *ruleset(void)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&buf, &size), *p = popen("nft list ruleset 2>&1", "r");
	char line[512];

	cr_assert(m && p);
	while (fgets(line, sizeof(line), p))
		fputs(line, m);
	pclose(p);
	fclose(m);
	return buf;
}

static uint64_t dropped(const char *reason)
{
	char *body = NULL, pat[96];
	const char *at;
	uint64_t n = 0;

	cr_assert_eq(dh_text(&h, h.admin, "/metrics", &body), 200);
	snprintf(pat, sizeof(pat), "bunshind_firewall_dropped_total{reason=\"%s\"} ", reason);
	at = strstr(body, pat);
	cr_assert(at, "no %s in /metrics", pat);
	n = strtoull(at + strlen(pat), NULL, 10);
	free(body);
	return n;
}

/* ---- probes ---- */

struct server {
	pid_t pid;
	int fd; /* its report: "N SOURCE" */
};

/*
 * A UDP echo server (or, tcp, one that answers each connection "hello")
 * on port in ns, for up to ms (or until the first client when one is
 * enough); it reports how many clients came and the first one's address.
 */
static void serve(pid_t ns, bool tcp, int port, int ms, bool one, struct server *s)
{
	int p[2], r[2];
	char c;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(pipe(r), 0);
	s->pid = fork();
	cr_assert_geq(s->pid, 0);
	if (!s->pid) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		char src[INET_ADDRSTRLEN] = "-", buf[64];
		int fd, n = 0, on = 1;

		ns_enter(ns);
		fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || (tcp && listen(fd, 4)))
			_exit(2);
		if (write(r[1], "R", 1) != 1)
			_exit(2);
		for (int t = 0; t < ms && !(one && n); t += 50) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			ssize_t got;

			if (poll(&pfd, 1, 50) != 1)
				continue;
			if (tcp) {
				int cfd = accept(fd, (struct sockaddr *)&from, &fl);

				if (cfd < 0)
					continue;
				if (write(cfd, "hello\n", 6) != 6)
					_exit(3);
				close(cfd);
			} else {
				got = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
					       &fl);
				if (got <= 0)
					continue;
				sendto(fd, buf, (size_t)got, 0, (struct sockaddr *)&from, fl);
			}
			if (!n++)
				inet_ntop(AF_INET, &from.sin_addr, src, sizeof(src));
		}
		dprintf(p[1], "%d %s", n, src);
		_exit(0);
	}
	close(p[1]);
	close(r[1]);
	cr_assert_eq(read(r[0], &c, 1), 1, "server on %d did not start", port);
	close(r[0]);
	s->fd = p[0];
}

/* The server's count of clients, the first one's address into src. */
static int served(struct server *s, char *src, size_t size)
{
	char buf[64] = "";
	ssize_t n = read(s->fd, buf, sizeof(buf) - 1);
	int count = -1;
	char a[INET_ADDRSTRLEN] = "";

	waitpid(s->pid, NULL, 0);
	close(s->fd);
	if (n > 0) {
		buf[n] = 0;
		if (sscanf(buf, "%d %15s", &count, a) != 2)
			count = -1;
	}
	if (src)
		snprintf(src, size, "%s", a);
	return count;
}

/* From ns (from the address src when not NULL): a datagram to ip:port, true when echoed. */
static bool udp_probe(pid_t ns, const char *src, const char *ip, int port)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		struct sockaddr_in me = {.sin_family = AF_INET};
		char buf[16];
		int fd;

		ns_enter(ns);
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		inet_pton(AF_INET, ip, &to.sin_addr);
		if (src && (inet_pton(AF_INET, src, &me.sin_addr) != 1 ||
			    bind(fd, (struct sockaddr *)&me, sizeof(me))))
			_exit(2);
		/* Connected: an answer from any other address than ip:port does not count. */
		if (connect(fd, (struct sockaddr *)&to, sizeof(to)))
			_exit(2);
		for (int i = 0; i < 3; i++) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};

			send(fd, "bunshin", 7, 0);
			if (poll(&pfd, 1, 400) == 1 && recv(fd, buf, sizeof(buf), 0) == 7)
				_exit(0);
		}
		_exit(1);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* From ns: connects to ip:port (2 s at most), true when it reads "hello". */
static bool tcp_probe(pid_t ns, const char *ip, int port)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		struct timeval tv = {.tv_sec = 2};
		char buf[16] = "";
		int fd;

		ns_enter(ns);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		inet_pton(AF_INET, ip, &to.sin_addr);
		if (connect(fd, (struct sockaddr *)&to, sizeof(to)) || read(fd, buf, 6) != 6)
			_exit(1);
		_exit(strncmp(buf, "hello\n", 6) ? 1 : 0);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool pings(pid_t ns, const char *ip)
{
	return sh(ns, "ping -n -q -c 1 -W 2 %s >/dev/null 2>&1", ip) == 0;
}

/* From ns's eth0 (its own MAC): 3 ARP requests for target, naming sender as their sender IP. */
static void arp_send(pid_t ns, const char *sender, const char *target)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		struct sockaddr_ll to = {
			.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_halen = 6};
		unsigned char f[42] = {0}, mac[6];
		struct ifreq ifr = {0};
		int fd;

		ns_enter(ns);
		fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ARP));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
		/* One union: the MAC first, then the index over it. */
		if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr))
			_exit(2);
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
		if (ioctl(fd, SIOCGIFINDEX, &ifr))
			_exit(2);
		to.sll_ifindex = ifr.ifr_ifindex;
		memset(to.sll_addr, 0xff, 6);
		memset(f, 0xff, 6);						/* to everyone */
		memcpy(f + 6, mac, 6);						/* from its MAC */
		memcpy(f + 12, "\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01", 10); /* request */
		memcpy(f + 22, mac, 6);
		inet_pton(AF_INET, sender, f + 28);
		inet_pton(AF_INET, target, f + 38);
		for (int i = 0; i < 3; i++)
			sendto(fd, f, sizeof(f), 0, (struct sockaddr *)&to, sizeof(to));
		_exit(0);
	}
	waitpid(pid, &status, 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "could not send ARP");
}

/* In ns: the ARP packets on eth0 naming sender as their sender IP, over ms. */
static int arp_count(pid_t ns, const char *sender, int ms, void (*during)(void *), void *arg)
{
	int p[2], r[2], n = -1;
	char c;
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(pipe(r), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		unsigned char want[4], buf[64];
		int fd, got = 0;

		ns_enter(ns);
		inet_pton(AF_INET, sender, want);
		fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ARP));
		if (fd < 0 || write(r[1], "R", 1) != 1)
			_exit(2);
		for (int t = 0; t < ms; t += 50) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};

			/* SOCK_DGRAM: the ARP payload, its sender IP at 14. */
			if (poll(&pfd, 1, 50) == 1 && recv(fd, buf, sizeof(buf), 0) >= 28 &&
			    !memcmp(buf + 14, want, 4))
				got++;
		}
		dprintf(p[1], "%d", got);
		_exit(0);
	}
	close(p[1]);
	close(r[1]);
	cr_assert_eq(read(r[0], &c, 1), 1, "arp counter did not start");
	close(r[0]);
	during(arg);
	if (read(p[0], &c, 1) == 1)
		n = c - '0';
	waitpid(pid, NULL, 0);
	close(p[0]);
	return n;
}

struct arp_job {
	pid_t ns;
	const char *sender, *target;
};

static void arp_job(void *arg)
{
	const struct arp_job *j = arg;

	arp_send(j->ns, j->sender, j->target);
}

/* ---- tests ---- */

Test(firewall, fake_instance_reaches_outside_through_nat_and_is_reached_through_forwards)
{
	char src[32], body[128];
	struct server s;
	struct inst a, b;
	pid_t out;

	dh_start(&h, NULL);
	out = outside_up();
	instance(h.admin, "web1", NULL, &a);
	fake(&a);

	cr_expect(pings(a.ns, a.gw), "the instance cannot ping its gateway %s", a.gw);
	serve(out, false, 7000, 3000, true, &s);
	cr_expect(udp_probe(a.ns, NULL, OUTSIDE, 7000), "no answer from outside");
	cr_expect_eq(served(&s, src, sizeof(src)), 1);
	cr_expect_str_eq(src, HOST_SIDE, "outside saw %s, not the NAT address", src);

	/* Forwards: from outside, and from the host itself. */
	cr_assert_eq(forward(h.admin, a.id,
			     "{\"host_port\":8080,\"guest_port\":7000,\"proto\":\"udp\"}", NULL),
		     201);
	cr_assert_eq(forward(h.admin, a.id, "{\"host_port\":8081,\"guest_port\":80}", NULL), 201);
	serve(a.ns, false, 7000, 3000, true, &s);
	cr_expect(udp_probe(out, NULL, HOST_SIDE, 8080), "udp forward 8080 -> 7000 failed");
	cr_expect_eq(served(&s, src, sizeof(src)), 1);
	cr_expect_str_eq(src, OUTSIDE, "a forward keeps the client's address, saw %s", src);
	serve(a.ns, true, 80, 3000, true, &s);
	cr_expect(tcp_probe(out, HOST_SIDE, 8081), "tcp forward 8081 -> 80 failed");
	cr_expect_eq(served(&s, NULL, 0), 1);
	serve(a.ns, false, 7000, 3000, true, &s);
	cr_expect(udp_probe(0, NULL, HOST_SIDE, 8080), "the host cannot use its own forward");
	cr_expect_eq(served(&s, NULL, 0), 1);
	/* From a neighbour on the same bridge (hairpin): answered through the host. */
	instance(h.admin, "web2", NULL, &b);
	fake(&b);
	serve(a.ns, false, 7000, 3000, true, &s);
	cr_expect(udp_probe(b.ns, NULL, HOST_SIDE, 8080), "a neighbour cannot use the forward");
	cr_expect_eq(served(&s, src, sizeof(src)), 1);
	cr_expect_str_eq(src, a.gw, "hairpin not masqueraded: %s", src);

	/* Unsolicited traffic from outside to the instance's address goes nowhere. */
	SH(out, "ip route add %s via " HOST_SIDE, a.ip);
	serve(a.ns, false, 7001, 1500, false, &s);
	cr_expect(!udp_probe(out, NULL, a.ip, 7001), "outside reached the instance directly");
	cr_expect_eq(served(&s, NULL, 0), 0);

	/* The host offers the instance nothing but DHCP, DNS and metadata. */
	serve(0, false, 9000, 1500, false, &s);
	cr_expect(!udp_probe(a.ns, NULL, a.gw, 9000), "the instance reached a host service");
	cr_expect_eq(served(&s, NULL, 0), 0);
	cr_expect_gt(dropped("host"), 0);
	cr_expect_gt(dropped("inbound"), 0);
	snprintf(body, sizeof(body), "grep -q 'ip_forward = 1' '%s'", h.log);
	cr_expect_eq(system(body), 0, "the log does not say forwarding is on");
}

Test(firewall, spoofed_sources_are_dropped)
{
	struct arp_job job;
	char spoof[32];
	struct server s;
	struct inst a, b;
	pid_t out;
	uint64_t before;

	dh_start(&h, NULL);
	out = outside_up();
	instance(h.admin, "web1", NULL, &a);
	fake(&a);
	before = dropped("spoof");

	/* Another address of its own network: only the bridge's rules can tell. */
	snprintf(spoof, sizeof(spoof), "%.*s.250", (int)(strrchr(a.ip, '.') - a.ip), a.ip);
	SH(a.ns, "ip addr add %s/32 dev eth0", spoof);
	serve(out, false, 7000, 1500, false, &s);
	cr_expect(!udp_probe(a.ns, spoof, OUTSIDE, 7000), "a spoofed source got an answer");
	cr_expect_eq(served(&s, NULL, 0), 0, "datagrams from %s arrived outside", spoof);

	/* Another MAC. */
	SH(a.ns, "ip link set eth0 address 52:54:00:aa:bb:cc");
	serve(out, false, 7000, 1500, false, &s);
	cr_expect(!udp_probe(a.ns, NULL, OUTSIDE, 7000), "a spoofed MAC got an answer");
	cr_expect_eq(served(&s, NULL, 0), 0, "datagrams from a spoofed MAC arrived outside");
	cr_expect_gt(dropped("spoof"), before);

	/* Its own again: through. */
	SH(a.ns, "ip link set eth0 address %s", a.mac);
	serve(out, false, 7000, 3000, true, &s);
	cr_expect(udp_probe(a.ns, NULL, OUTSIDE, 7000), "its own MAC and address are dropped");
	cr_expect_eq(served(&s, NULL, 0), 1);

	/* ARP naming another address never reaches a neighbour; naming its own does. */
	instance(h.admin, "web2", NULL, &b);
	fake(&b);
	job = (struct arp_job){a.ns, spoof, b.ip};
	cr_expect_eq(arp_count(b.ns, spoof, 1500, arp_job, &job), 0, "spoofed ARP arrived");
	job.sender = a.ip;
	cr_expect_gt(arp_count(b.ns, a.ip, 1500, arp_job, &job), 0, "its own ARP is dropped");

	/* No IPv6 at all from an instance, link-local included. */
	before = dropped("ipv6");
	SH(b.ns, "ip -6 -o addr show dev eth0 scope link | awk '{print $4}' | cut -d/ -f1 >'%s/ll'",
	   h.dir);
	cr_expect(sh(a.ns, "ping -6 -n -q -c 2 -W 1 -w 5 \"$(cat '%s/ll')%%eth0\" >/dev/null 2>&1",
		     h.dir) != 0,
		  "IPv6 went through the bridge");
	cr_expect_gt(dropped("ipv6"), before);
}

Test(firewall, tenants_are_isolated_and_isolated_networks_have_no_egress)
{
	struct inst a, b, c, d;
	struct server s;
	char t2[96];
	pid_t out;

	dh_start(&h, NULL);
	out = outside_up();
	dh_tenant_user(&h, "t2", "u2", "member", t2, sizeof(t2));
	instance(h.admin, "a1", NULL, &a);
	instance(t2, "b1", NULL, &b);
	network(h.admin, "second", "10.77.0.0/24", false);
	network(h.admin, "iso", "10.78.0.0/24", true);
	instance(h.admin, "c1", "second", &c);
	instance(h.admin, "d1", "iso", &d);
	fake(&a);
	fake(&b);
	fake(&c);
	fake(&d);

	/* Another tenant's instance: not reached. */
	cr_expect(!pings(b.ns, a.ip), "tenant t2 pings tenant admin's %s", a.ip);
	serve(a.ns, false, 7000, 1500, false, &s);
	cr_expect(!udp_probe(b.ns, NULL, a.ip, 7000), "tenant t2 reached tenant admin");
	cr_expect_eq(served(&s, NULL, 0), 0);
	cr_expect_gt(dropped("tenant"), 0);

	/* The same tenant's other network: reached. */
	serve(a.ns, false, 7000, 3000, true, &s);
	cr_expect(udp_probe(c.ns, NULL, a.ip, 7000), "same tenant, other network: not reached");
	cr_expect_eq(served(&s, NULL, 0), 1);

	/* Isolated: no egress, not even to its tenant's others; its gateway still answers. */
	cr_expect(pings(d.ns, d.gw), "the isolated instance cannot ping its gateway");
	serve(out, false, 7000, 1500, false, &s);
	cr_expect(!udp_probe(d.ns, NULL, OUTSIDE, 7000), "the isolated network has egress");
	cr_expect_eq(served(&s, NULL, 0), 0);
	serve(a.ns, false, 7000, 1500, false, &s);
	cr_expect(!udp_probe(d.ns, NULL, a.ip, 7000), "the isolated network reached a1");
	cr_expect_eq(served(&s, NULL, 0), 0);
	cr_expect_gt(dropped("isolated"), 0);
	/* ... while the others still go out. */
	serve(out, false, 7000, 3000, true, &s);
	cr_expect(udp_probe(b.ns, NULL, OUTSIDE, 7000), "tenant t2 has no egress");
	cr_expect_eq(served(&s, NULL, 0), 1);
}

Test(firewall, delete_leaves_no_rule_and_restart_rebuilds)
{
	struct inst a, b;
	char *rs, pat[64];
	int64_t net;

	dh_start(&h, NULL);
	/* No network yet: the namespace's nftables and forwarding are left alone. */
	rs = ruleset();
	cr_expect(!strstr(rs, "bunshin"), "tables before any network:\n%s", rs);
	free(rs);
	cr_expect_eq(sh(0, "grep -qx 0 /proc/sys/net/ipv4/ip_forward"), 0,
		     "forwarding turned on with no network");
	instance(h.admin, "a1", NULL, &a);
	cr_expect_eq(sh(0, "grep -qx 1 /proc/sys/net/ipv4/ip_forward"), 0, "forwarding is off");
	net = network(h.admin, "n2", "10.79.0.0/24", false);
	instance(h.admin, "b1", "n2", &b);
	cr_assert_eq(forward(h.admin, a.id, "{\"host_port\":8080,\"guest_port\":80}", NULL), 201);
	rs = ruleset();
	cr_expect(strstr(rs, a.tap) && strstr(rs, b.tap) && strstr(rs, "tcp . 8080 : "), "\n%s",
		  rs);
	free(rs);

	/* Gone while bunshind is down: the next start puts them back. */
	cr_assert_eq(dh_term(&h), 0);
	SH(0, "nft delete table inet bunshin && nft delete table bridge bunshin");
	dh_restart(&h, NULL);
	rs = ruleset();
	cr_expect(strstr(rs, "table inet bunshin") && strstr(rs, a.tap) &&
			  strstr(rs, "tcp . 8080 : ") && strstr(rs, "masquerade"),
		  "not rebuilt:\n%s", rs);
	free(rs);

	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/a1", NULL, NULL), 204);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/b1", NULL, NULL), 204);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/networks/n2", NULL, NULL), 204);
	rs = ruleset();
	snprintf(pat, sizeof(pat), "bn-%lld\"", (long long)net);
	cr_expect(!strstr(rs, a.tap) && !strstr(rs, b.tap) && !strstr(rs, "8080") &&
			  !strstr(rs, pat) && !strstr(rs, "10.79.0.") && !strstr(rs, a.mac),
		  "left behind:\n%s", rs);
	snprintf(pat, sizeof(pat), "%s ", a.ip);
	cr_expect(!strstr(rs, pat) && !strstr(rs, "10.79.0.0/24"), "left behind:\n%s", rs);
	free(rs);
	/* The last network gone: the tables too. */
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/networks/default", NULL, NULL), 204);
	rs = ruleset();
	cr_expect(!strstr(rs, "bunshin"), "left behind:\n%s", rs);
	free(rs);
}

Test(firewall, forwards_api)
{
	const char *extra[] = {"--max-forwards", "3", NULL};
	char t2[96], v2[96], path[160];
	struct inst a, b;
	json_t *out;
	int64_t fid;

	dh_start(&h, extra);
	dh_tenant_user(&h, "t2", "u2", "member", t2, sizeof(t2));
	snprintf(path, sizeof(path), "{\"name\":\"v2\",\"tenant\":\"t2\",\"role\":\"viewer\"}");
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/users", path, NULL), 201);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/tokens", "{\"user\":\"v2\"}", &out), 201);
	snprintf(v2, sizeof(v2), "%s", jstr(out, NULL, "token"));
	json_decref(out);
	instance(h.admin, "a1", NULL, &a);
	instance(t2, "b1", NULL, &b);

	cr_assert_eq(forward(h.admin, a.id, "{\"host_port\":80,\"guest_port\":8000}", &out), 201);
	fid = json_integer_value(json_object_get(out, "id"));
	cr_expect_str_eq(jstr(out, NULL, "proto"), "tcp");
	json_decref(out);

	/* Taken, by any tenant; the other protocol is another port. */
	cr_expect_eq(forward(t2, b.id, "{\"host_port\":80,\"guest_port\":1}", &out), 403);
	json_decref(out);
	cr_expect_eq(forward(h.admin, b.id, "{\"host_port\":80,\"guest_port\":1}", &out), 409);
	cr_expect_str_eq(dh_code(out), "conflict");
	cr_expect_str_eq(jstr(out, "error", "field"), "host_port");
	json_decref(out);
	cr_expect_eq(
		forward(t2, b.id, "{\"host_port\":2000,\"guest_port\":22,\"proto\":\"udp\"}", NULL),
		201);
	cr_expect_eq(forward(t2, b.id, "{\"host_port\":2000,\"guest_port\":22}", NULL), 201);

	/* Bad input: 400 naming the field. */
	static const char *const bad[][2] = {
		{"{\"host_port\":0,\"guest_port\":1}", "host_port"},
		{"{\"host_port\":70000,\"guest_port\":1}", "host_port"},
		{"{\"host_port\":\"80\",\"guest_port\":1}", "host_port"},
		{"{\"host_port\":3000}", "guest_port"},
		{"{\"host_port\":3000,\"guest_port\":-1}", "guest_port"},
		{"{\"host_port\":3000,\"guest_port\":1,\"proto\":\"icmp\"}", "proto"},
		{"{\"host_port\":3000,\"guest_port\":1,\"proto\":7}", "proto"},
		{"{\"host_port\":3000,\"guest_port\":1,\"bogus\":1}", "bogus"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(forward(t2, b.id, bad[i][0], &out), 400, "%s", bad[i][0]);
		cr_expect_str_eq(jstr(out, "error", "field"), bad[i][1], "%s", bad[i][0]);
		json_decref(out);
	}
	cr_expect_eq(forward(t2, b.id, "[1]", NULL), 400);

	/* Quota (3 here), another tenant's instance, a viewer. */
	cr_expect_eq(forward(t2, b.id, "{\"host_port\":2001,\"guest_port\":1}", NULL), 201);
	cr_expect_eq(forward(t2, b.id, "{\"host_port\":2002,\"guest_port\":1}", &out), 409);
	cr_expect_str_eq(dh_code(out), "quota_exceeded");
	json_decref(out);
	cr_expect_eq(forward(t2, a.id, "{\"host_port\":2003,\"guest_port\":1}", NULL), 404);
	cr_expect_eq(forward(v2, b.id, "{\"host_port\":2003,\"guest_port\":1}", NULL), 403);

	/* Listed, and in the instance's JSON. */
	snprintf(path, sizeof(path), "/v1/instances/%lld/forwards", (long long)b.id);
	cr_assert_eq(dh_req(&h, t2, "GET", path, NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 3);
	json_decref(out);
	cr_assert_eq(dh_req(&h, t2, "GET", "/v1/instances/b1", NULL, &out), 200);
	cr_expect_eq(json_array_size(json_object_get(out, "forwards")), 3);
	json_decref(out);

	/* Deleted: once. */
	snprintf(path, sizeof(path), "/v1/instances/%lld/forwards/%lld", (long long)a.id,
		 (long long)fid);
	cr_expect_eq(dh_req(&h, t2, "DELETE", path, NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", path, NULL, NULL), 204);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", path, NULL, NULL), 404);
	snprintf(path, sizeof(path), "/v1/instances/%lld/forwards/x1", (long long)a.id);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", path, NULL, NULL), 404);
	/* The port is free again; an instance's forwards go with it. */
	cr_expect_eq(forward(h.admin, a.id, "{\"host_port\":80,\"guest_port\":8000}", NULL), 201);
	cr_assert_eq(dh_req(&h, t2, "DELETE", "/v1/instances/b1", NULL, NULL), 204);
	cr_expect_eq(forward(h.admin, a.id, "{\"host_port\":2001,\"guest_port\":1}", NULL), 201);
}

/* bunshin ARGS as admin; its exit status, its stdout in h.dir/cli.out. */
static int cli(const char *args)
{
	return sh(0,
		  "BUNSHIN_ENDPOINT='%s' BUNSHIN_TOKEN='%s' HOME=/nonexistent '%s' %s "
		  ">'%s/cli.out' 2>&1",
		  h.sock, h.admin, getenv("BUNSHIN_CLI"), args, h.dir);
}

static bool cli_said(const char *text)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "grep -qF -- '%s' '%s/cli.out'", text, h.dir);
	return system(cmd) == 0;
}

Test(firewall, cli_expose_unexpose_forwards_and_isolated_networks)
{
	static const char *const bad[] = {"a1 8080",	   "a1 x:80",	    "a1 8080:80/icmp",
					  "a1 0:80",	   "a1 8080:70000", "a1 8080:80/",
					  "a1 8080:80tcp", "a1 -1:80",	    "a1 :80"};
	struct inst a;
	json_t *out;

	cr_expect_eq(sh(0, "'%s' --max-forwards x 2>&1 | grep -q \"is not 0 to 65535\"",
			getenv("BUNSHIND")),
		     0, "a bad --max-forwards is not refused with one line");
	dh_start(&h, NULL);
	instance(h.admin, "a1", NULL, &a);
	cr_expect_eq(cli("server expose a1 8080:80/udp"), 0);
	cr_expect_eq(cli("server expose a1 8080:80/udp"), 1, "a taken host port is not refused");
	cr_expect_eq(cli("server expose a1 8080:80"), 0, "tcp 8080 is another port");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char args[64];

		snprintf(args, sizeof(args), "server expose %s", bad[i]);
		cr_expect_eq(cli(args), 2, "%s", args);
	}
	cr_expect_eq(cli("server expose nosuch 9000:80"), 3);
	cr_expect_eq(cli("--json server forwards a1"), 0);
	cr_expect(cli_said("\"host_port\": 8080"), "forwards do not list 8080");
	cr_expect_eq(cli("server unexpose a1 8080/udp"), 0);
	cr_expect_eq(cli("server unexpose a1 8080/udp"), 3, "unexposed twice");
	cr_expect_eq(cli("server unexpose a1 8080/sctp"), 2);
	cr_expect_eq(cli("server unexpose a1 8080"), 0);
	cr_expect_eq(cli("server forwards a1"), 0);
	cr_expect(!cli_said("8080"), "8080 still listed");

	cr_expect_eq(cli("network create iso --cidr 10.80.0.0/24 --isolated"), 0);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/networks/iso", NULL, &out), 200);
	cr_expect(json_is_true(json_object_get(out, "isolated")));
	json_decref(out);
	cr_expect_eq(cli("network create open --cidr 10.81.0.0/24"), 0);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/networks/open", NULL, &out), 200);
	cr_expect(json_is_false(json_object_get(out, "isolated")));
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/networks",
			    "{\"name\":\"x\",\"cidr\":\"10.82.0.0/24\",\"isolated\":1}", &out),
		     400);
	cr_expect_str_eq(jstr(out, "error", "field"), "isolated");
	json_decref(out);
}

/* ---- the real test guest (test=netprobe) as the instance ---- */

/*
 * In ns: counts the ICMP echo requests that arrive from spoof and from
 * real until *stop (a pipe's write end) is closed, or 60 s; icmp_counts()
 * reads them.
 */
static void icmp_count(pid_t ns, const char *spoof, const char *real, struct server *s, int *stop)
{
	int p[2], r[2], q[2];
	char c;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(pipe(r), 0);
	cr_assert_eq(pipe(q), 0);
	s->pid = fork();
	cr_assert_geq(s->pid, 0);
	if (!s->pid) {
		uint32_t from[2] = {0};
		int fd, n[2] = {0};

		inet_pton(AF_INET, spoof, &from[0]);
		inet_pton(AF_INET, real, &from[1]);
		close(q[1]);
		ns_enter(ns);
		fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
		if (fd < 0 || write(r[1], "R", 1) != 1)
			_exit(2);
		for (int t = 0; t < 60000; t += 50) {
			struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
						{.fd = q[0], .events = POLLIN}};
			unsigned char buf[256];
			ssize_t got;

			if (poll(pfd, 2, 50) < 1)
				continue;
			if (pfd[1].revents)
				break;
			if ((got = recv(fd, buf, sizeof(buf), 0)) < 20)
				continue;
			/* An IPv4 header (source at 12), then the ICMP type: 8 is an echo request.
			 */
			if ((size_t)got <= (size_t)(buf[0] & 15) * 4 || buf[(buf[0] & 15) * 4] != 8)
				continue;
			for (int k = 0; k < 2; k++)
				n[k] += !memcmp(buf + 12, &from[k], 4);
		}
		dprintf(p[1], "%d %d", n[0], n[1]);
		_exit(0);
	}
	close(p[1]);
	close(r[1]);
	close(q[0]);
	cr_assert_eq(read(r[0], &c, 1), 1, "icmp counter did not start");
	close(r[0]);
	s->fd = p[0];
	*stop = q[1];
}

static void icmp_counts(struct server *s, int *spoofed, int *real)
{
	char buf[64] = "";
	ssize_t n = read(s->fd, buf, sizeof(buf) - 1);

	waitpid(s->pid, NULL, 0);
	close(s->fd);
	*spoofed = *real = -1;
	if (n > 0 && sscanf(buf, "%d %d", spoofed, real) != 2)
		*spoofed = *real = -1;
}

/* From ns: a line to ip:port, true when the same line comes back (an echo server). */
static bool tcp_echo_probe(pid_t ns, const char *ip, int port)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		struct timeval tv = {.tv_sec = 3};
		char buf[32] = "";
		size_t len = 0;
		ssize_t got;
		int fd;

		ns_enter(ns);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		inet_pton(AF_INET, ip, &to.sin_addr);
		if (connect(fd, (struct sockaddr *)&to, sizeof(to)) ||
		    write(fd, "bunshin\n", 8) != 8)
			_exit(1);
		while (len < 8 && (got = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)got;
		_exit(len >= 8 && !strncmp(buf, "bunshin\n", 8) ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void guest_image(const char *name, const char *cmdline)
{
	char body[768];

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"path\":\"%s\",\"kind\":\"kernel\",\"cmdline\":\"%s\"}", name,
		 getenv("BUNSHIN_GUEST_ELF"), cmdline);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, NULL), 201);
}

/* A stopped instance of image on network, as token. */
static int64_t guest_instance(const char *token, const char *name, const char *image,
			      const char *network, char *ip, size_t size)
{
	char body[256];
	json_t *out;
	int64_t id;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"%s\",\"network\":\"%s\","
		 "\"start\":false}",
		 name, image, network);
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/instances", body, &out), 201, "%s: %s", name,
		     jstr(out, "error", "message"));
	id = json_integer_value(json_object_get(out, "id"));
	snprintf(ip, size, "%s", jstr(out, "port", "ip"));
	json_decref(out);
	return id;
}

static void guest_start(const char *token, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s/actions", name);
	cr_assert_eq(dh_req(&h, token, "POST", path, "{\"action\":\"start\"}", NULL), 200);
}

/* The console once it holds a whole line with text (or after ms); malloc'd. */
static char *console_until(const char *ref, const char *text, int ms)
{
	char path[128], *body = NULL;

	snprintf(path, sizeof(path), "/v1/instances/%s/console", ref);
	for (int t = 0; t < ms; t += 100) {
		const char *at;

		free(body);
		body = NULL;
		at = dh_text(&h, h.admin, path, &body) == 200 ? strstr(body, text) : NULL;
		if (at && strchr(at, '\n'))
			return body;
		/* The guest's last line came first: nothing more will. */
		at = body ? strstr(body, "BUNSHIN-TEST name=") : NULL;
		if (at && strchr(at, '\n'))
			return body;
		usleep(100000);
	}
	return body ?: strdup("");
}

/* The guest's netprobe result line, skipping the test when the guest has no such scenario. */
static char *netprobe_result(const char *ref)
{
	char *con = console_until(ref, "BUNSHIN-TEST name=netprobe", 90000);

	if (strstr(con, "reason=unknown-scenario")) {
		free(con);
		cr_skip_test("skipped: this test guest has no test=netprobe scenario yet");
	}
	cr_assert(strstr(con, "BUNSHIN-TEST name=netprobe result=pass"), "console:\n%s", con);
	return con;
}

Test(firewall, guest_reaches_outside_through_nat_and_is_reached_through_forwards)
{
	char ip[32], src[32], *con;
	struct server s;
	int64_t id;
	pid_t out;

	dh_need_kvm();
	dh_start(&h, NULL);
	out = outside_up();
	network(h.admin, "lab", "10.90.0.0/24", false);
	guest_image("probe-out",
		    "test=netprobe dhcp_tries=8 ping=10.90.0.1+" OUTSIDE " udp=" OUTSIDE
		    ":7000 serve_udp=7001 serve_tcp=7002 serve_ms=6000");
	id = guest_instance(h.admin, "g1", "probe-out", "lab", ip, sizeof(ip));
	cr_assert_eq(forward(h.admin, id,
			     "{\"host_port\":8001,\"guest_port\":7001,\"proto\":\"udp\"}", NULL),
		     201);
	cr_assert_eq(forward(h.admin, id, "{\"host_port\":8002,\"guest_port\":7002}", NULL), 201);
	serve(out, false, 7000, 60000, true, &s);
	guest_start(h.admin, "g1");

	con = console_until("g1", "BUNSHIN-READY netprobe", 60000);
	if (!strstr(con, "BUNSHIN-READY netprobe")) {
		kill(s.pid, SIGKILL);
		free(netprobe_result("g1")); /* skips when the scenario is missing */
		cr_assert_fail("the guest never got ready:\n%s", con);
	}
	free(con);
	cr_expect(udp_probe(out, NULL, HOST_SIDE, 8001), "udp forward to the guest failed");
	cr_expect(tcp_echo_probe(out, HOST_SIDE, 8002), "tcp forward to the guest failed");
	con = netprobe_result("g1");
	cr_expect_str_eq(dh_test_field(con, "netprobe", "ip"), ip);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "ping1"), "ok", "gateway:\n%s", con);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "ping2"), "ok", "outside through NAT:\n%s",
			 con);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "udp"), "ok", "\n%s", con);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "served_udp"), "1", "\n%s", con);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "served_tcp"), "1", "\n%s", con);
	free(con);
	cr_expect_eq(served(&s, src, sizeof(src)), 1);
	cr_expect_str_eq(src, HOST_SIDE, "outside saw the guest as %s", src);
}

Test(firewall, guest_cannot_reach_another_tenant_or_spoof)
{
	char t2[96], ipa[32], ipb[32], *con;
	struct server icmp;
	struct inst f;
	int stop, spoofed, real;

	dh_need_kvm();
	dh_start(&h, NULL);
	dh_tenant_user(&h, "t2", "u2", "member", t2, sizeof(t2));
	network(h.admin, "lab", "10.90.0.0/24", false);
	network(t2, "lab", "10.91.0.0/24", false);
	/* A neighbour on a1's own bridge: only the bridge's rules stand between them. */
	instance(h.admin, "f1", "lab", &f);
	cr_assert_str_eq(f.ip, "10.90.0.2");
	fake(&f);
	guest_image("probe-serve", "test=netprobe dhcp_tries=8 serve_udp=7000 serve_ms=20000");
	guest_image("probe-spoof", "test=netprobe dhcp_tries=8 ping=10.91.0.2+10.90.0.2"
				   " udp=10.91.0.2:7000 spoof=10.90.0.77 spoof_to=10.90.0.2"
				   " spoof_mac=1");
	guest_instance(t2, "b1", "probe-serve", "lab", ipb, sizeof(ipb));
	cr_assert_str_eq(ipb, "10.91.0.2");
	guest_instance(h.admin, "a1", "probe-spoof", "lab", ipa, sizeof(ipa));
	guest_start(t2, "b1");
	free(console_until("b1", "BUNSHIN-READY netprobe", 60000));
	icmp_count(f.ns, "10.90.0.77", ipa, &icmp, &stop);
	guest_start(h.admin, "a1");

	con = netprobe_result("a1");
	cr_expect_str_eq(dh_test_field(con, "netprobe", "ping1"), "fail", "reached tenant t2:\n%s",
			 con);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "ping2"), "ok", "its neighbour:\n%s", con);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "udp"), "fail", "reached tenant t2:\n%s",
			 con);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "spoof"), "sent", "\n%s", con);
	free(con);
	close(stop);
	icmp_counts(&icmp, &spoofed, &real);
	cr_expect_eq(spoofed, 0, "%d spoofed pings arrived at the neighbour", spoofed);
	cr_expect_gt(real, 0, "the neighbour saw none of a1's own pings");
	con = netprobe_result("b1");
	cr_expect_str_eq(dh_test_field(con, "netprobe", "served_udp"), "0",
			 "tenant admin reached t2:\n%s", con);
	free(con);
	cr_expect_gt(dropped("spoof"), 0);
}

/* ---- per-instance updates: set and map elements, not a new ruleset ---- */

/* One element of `nft -j` as "A . B" (a concatenation) or "KEY : DATA" (a map's), into m. */
static void elem_text(FILE *m, const json_t *e)
{
	const json_t *v;
	size_t i;

	if (json_is_array(e) && json_array_size(e) == 2) {
		elem_text(m, json_array_get(e, 0));
		fputs(" : ", m);
		elem_text(m, json_array_get(e, 1));
	} else if ((v = json_object_get(e, "concat"))) {
		json_array_foreach(v, i, e)
		{
			fputs(i ? " . " : "", m);
			elem_text(m, e);
		}
	} else if (json_is_string(e)) {
		fputs(json_string_value(e), m);
	} else if (json_is_integer(e)) {
		fprintf(m, "%lld", (long long)json_integer_value(e));
	}
}

/* The elements of `nft -j list WHAT` in bunshind's namespace, one a line ("|" first); malloc'd. */
static char *elements(const char *what)
{
	char cmd[128], *text = NULL, *out = NULL;
	size_t size = 0, tsize = 0;
	FILE *p, *t = open_memstream(&text, &tsize), *m = open_memstream(&out, &size);
	const json_t *o, *e;
	json_t *doc;
	size_t i, j;
	int c;

	snprintf(cmd, sizeof(cmd), "nft -j list %s 2>/dev/null", what);
	cr_assert((p = popen(cmd, "r")) && t && m);
	while ((c = fgetc(p)) != EOF)
		fputc(c, t);
	pclose(p);
	fclose(t);
	doc = json_loads(text, 0, NULL);
	fputs("|", m);
	json_array_foreach(json_object_get(doc, "nftables"), i, o)
	{
		const json_t *s = json_object_get(o, "set") ?: json_object_get(o, "map");

		json_array_foreach(json_object_get(s, "elem"), j, e)
		{
			elem_text(m, e);
			fputs("\n|", m);
		}
	}
	fclose(m);
	json_decref(doc);
	free(text);
	return out;
}

/* Whether `nft -j list WHAT` holds elem (whole). */
static bool has_element(const char *what, const char *elem)
{
	char *all = elements(what), line[160];
	bool yes;

	snprintf(line, sizeof(line), "|%s\n", elem);
	yes = strstr(all, line) != NULL;
	free(all);
	return yes;
}

/* The handle of table FAMILY bunshin: a rebuild makes a new table, with a new handle. */
static int64_t table_handle(const char *family)
{
	char cmd[96];
	FILE *p;
	json_t *doc, *o;
	size_t i;
	int64_t handle = -1;

	snprintf(cmd, sizeof(cmd), "nft -j list table %s bunshin 2>/dev/null", family);
	cr_assert((p = popen(cmd, "r")));
	doc = json_loadf(p, 0, NULL);
	pclose(p);
	json_array_foreach(json_object_get(doc, "nftables"), i, o)
	{
		if (json_object_get(o, "table"))
			handle = json_integer_value(
				json_object_get(json_object_get(o, "table"), "handle"));
	}
	json_decref(doc);
	return handle;
}

static void port_elems(const struct inst *in, char *mac_ip, char *mac, size_t size)
{
	snprintf(mac_ip, size, "%s . %s . %s", in->tap, in->mac, in->ip);
	snprintf(mac, size, "%s . %s", in->tap, in->mac);
}

Test(firewall, instances_and_forwards_are_elements_added_and_removed_without_a_rebuild)
{
	char ab[96], am[96], bb[96], bm[96], fwd[128], fin[160], path[128], t2[96];
	struct inst a, b, c;
	int64_t inet, bridge, fid;
	json_t *out;
	char *all, *rs;

	dh_start(&h, NULL);
	instance(h.admin, "a1", NULL, &a);
	inet = table_handle("inet");
	bridge = table_handle("bridge");
	cr_assert(inet > 0 && bridge > 0, "no tables after the first instance");
	instance(h.admin, "b1", NULL, &b);
	port_elems(&a, ab, am, sizeof(ab));
	port_elems(&b, bb, bm, sizeof(bb));
	cr_expect(has_element("set bridge bunshin ports", ab), "no %s", ab);
	cr_expect(has_element("set bridge bunshin ports", bb), "no %s", bb);
	cr_expect(has_element("set bridge bunshin port_macs", bm), "no %s", bm);
	cr_expect_eq(table_handle("inet"), inet, "an instance create rebuilt table inet");
	cr_expect_eq(table_handle("bridge"), bridge, "an instance create rebuilt table bridge");

	/* A forward: three elements (the default network is routed: it has a mark). */
	cr_assert_eq(forward(h.admin, b.id, "{\"host_port\":8080,\"guest_port\":80}", &out), 201);
	fid = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	snprintf(fwd, sizeof(fwd), "tcp . 8080 : %s . 80", b.ip);
	snprintf(fin, sizeof(fin), "tcp . 8080 . %s . %s . 80", b.bridge, b.ip);
	cr_expect(has_element("map inet bunshin fwd_dnat", fwd), "no %s", fwd);
	cr_expect(has_element("set inet bunshin fwd_in", fin), "no %s", fin);
	snprintf(path, sizeof(path), "tcp . 8080 : %lld", (long long)b.net);
	cr_expect(has_element("map inet bunshin fwd_mark", path), "no %s", path);
	cr_assert_eq(forward(h.admin, b.id, "{\"host_port\":8081,\"guest_port\":81}", NULL), 201);
	snprintf(path, sizeof(path), "/v1/instances/%lld/forwards/%lld", (long long)b.id,
		 (long long)fid);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", path, NULL, NULL), 204);
	cr_expect(!has_element("map inet bunshin fwd_dnat", fwd), "%s still there", fwd);
	cr_expect(!has_element("set inet bunshin fwd_in", fin), "%s still there", fin);
	snprintf(fwd, sizeof(fwd), "tcp . 8081 : %s . 81", b.ip);
	cr_expect(has_element("map inet bunshin fwd_dnat", fwd), "the other forward went too");

	/* An instance deleted: its elements only. */
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/a1", NULL, NULL), 204);
	cr_expect(!has_element("set bridge bunshin ports", ab), "%s still there", ab);
	cr_expect(!has_element("set bridge bunshin port_macs", am), "%s still there", am);
	cr_expect(has_element("set bridge bunshin ports", bb), "b1's went too");
	cr_expect_eq(table_handle("inet"), inet, "a forward or a delete rebuilt table inet");
	cr_expect_eq(table_handle("bridge"), bridge, "a delete rebuilt table bridge");
	snprintf(path, sizeof(path), "grep 'rebuilding the tables' '%s' >&2", h.log);
	cr_expect_neq(system(path), 0, "an element update failed (see the log)");

	/* A network: a rebuild, the same elements in it. */
	network(h.admin, "n2", "10.79.0.0/24", false);
	cr_expect_neq(table_handle("inet"), inet, "a network create did not rebuild");
	cr_expect(has_element("set bridge bunshin ports", bb) &&
			  has_element("map inet bunshin fwd_dnat", fwd),
		  "a rebuild lost elements");
	/* Another tenant's first instance makes its default network: that network's rules too. */
	dh_tenant_user(&h, "t2", "u2", "member", t2, sizeof(t2));
	instance(t2, "c1", NULL, &c);
	rs = ruleset();
	snprintf(path, sizeof(path), "iifname \"%s\" ip saddr", c.bridge);
	cr_expect(strstr(rs, path), "no rules for %s:\n%s", c.bridge, rs);
	free(rs);
	port_elems(&c, ab, am, sizeof(ab));
	cr_expect(has_element("set bridge bunshin ports", ab), "no %s", ab);
	cr_assert_eq(dh_req(&h, t2, "DELETE", "/v1/instances/c1", NULL, NULL), 204);

	/* Gone while bunshind is down: the restart rebuilds the same elements. */
	all = elements("set bridge bunshin ports");
	cr_assert_eq(dh_term(&h), 0);
	SH(0, "nft delete table inet bunshin && nft delete table bridge bunshin");
	dh_restart(&h, NULL);
	cr_expect(has_element("set bridge bunshin ports", bb), "not rebuilt: %s", bb);
	cr_expect(has_element("set bridge bunshin port_macs", bm), "not rebuilt: %s", bm);
	cr_expect(has_element("map inet bunshin fwd_dnat", fwd), "not rebuilt: %s", fwd);
	cr_expect(!has_element("set bridge bunshin ports", ab), "a1 is back");
	rs = elements("set bridge bunshin ports");
	cr_expect_str_eq(rs, all, "rebuilt otherwise");
	free(rs);
	free(all);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/b1", NULL, NULL), 204);
	rs = elements("set bridge bunshin ports");
	cr_expect_str_eq(rs, "|", "left behind");
	free(rs);
	rs = elements("map inet bunshin fwd_dnat");
	cr_expect_str_eq(rs, "|", "left behind");
	free(rs);
}

/* ---- element updates racing each other and rebuilds ---- */

struct churn {
	int k, failed;
};

/* Four instances, one deleted again, a forward on another (no criterion asserts off the main
 * thread). */
static void *churn(void *arg)
{
	struct churn *c = arg;
	char body[256], path[96];
	json_t *out;

	for (int i = 0; i < 4; i++) {
		snprintf(body, sizeof(body),
			 "{\"name\":\"p%d-%d\",\"flavor\":\"tiny\",\"image\":\"test-guest\","
			 "\"start\":false}",
			 c->k, i);
		c->failed += dh_req(&h, h.admin, "POST", "/v1/instances", body, NULL) != 201;
	}
	snprintf(path, sizeof(path), "/v1/instances/p%d-0", c->k);
	c->failed += dh_req(&h, h.admin, "DELETE", path, NULL, NULL) != 204;
	snprintf(path, sizeof(path), "/v1/instances/p%d-1", c->k);
	c->failed += dh_req(&h, h.admin, "GET", path, NULL, &out) != 200;
	snprintf(path, sizeof(path), "/v1/instances/%lld/forwards",
		 (long long)json_integer_value(json_object_get(out, "id")));
	json_decref(out);
	snprintf(body, sizeof(body), "{\"host_port\":%d,\"guest_port\":22}", 9000 + c->k);
	c->failed += dh_req(&h, h.admin, "POST", path, body, NULL) != 201;
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* lines (n of them, each malloc'd) sorted and joined as elements() does; malloc'd. */
static char *sorted(char **lines, size_t n)
{
	char *out = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&out, &size);

	qsort(lines, n, sizeof(*lines), cmp_str);
	fputs("|", m);
	for (size_t i = 0; i < n; i++) {
		fprintf(m, "%s\n|", lines[i]);
		free(lines[i]);
	}
	fclose(m);
	return out;
}

/* elements(what) with its lines sorted; malloc'd. */
static char *elements_sorted(const char *what)
{
	char *all = elements(what), *line, *save = NULL, *lines[256];
	size_t n = 0;

	for (line = strtok_r(all, "|\n", &save); line && n < 256;
	     line = strtok_r(NULL, "|\n", &save))
		lines[n++] = strdup(line);
	free(all);
	return sorted(lines, n);
}

/* What set ports must hold for the instances the API lists; malloc'd. */
static char *ports_expected(void)
{
	char *lines[256];
	json_t *list, *in;
	size_t i, n = 0;

	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances", NULL, &list), 200);
	json_array_foreach(list, i, in)
	{
		if (n < 256 && asprintf(&lines[n], "bt-%lld . %s . %s",
					(long long)json_integer_value(json_object_get(in, "id")),
					jstr(in, "port", "mac"), jstr(in, "port", "ip")) > 0)
			n++;
	}
	json_decref(list);
	return sorted(lines, n);
}

Test(firewall, concurrent_creates_deletes_and_rebuilds_leave_the_store_s_elements)
{
	struct churn c[6];
	pthread_t t[6];
	struct inst a;
	char *want, *got;
	int failed = 0;
	const char *extra[] = {"--cpu-ratio", "64", NULL};

	dh_start(&h, extra);
	instance(h.admin, "a0", NULL, &a);
	cr_assert_eq(dh_req(&h, h.admin, "PUT", "/v1/tenants/admin/quota",
			    "{\"instances\":64,\"vcpus\":64,\"ram_mib\":8192}", NULL),
		     200);
	for (int k = 0; k < 6; k++) {
		c[k] = (struct churn){.k = k};
		cr_assert_eq(pthread_create(&t[k], NULL, churn, &c[k]), 0);
	}
	/* Meanwhile, rebuilds: a network made and deleted. */
	network(h.admin, "n3", "10.83.0.0/24", false);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/networks/n3", NULL, NULL), 204);
	for (int k = 0; k < 6; k++) {
		pthread_join(t[k], NULL);
		failed += c[k].failed;
	}
	cr_assert_eq(failed, 0, "%d API calls failed", failed);
	want = ports_expected();
	got = elements_sorted("set bridge bunshin ports");
	cr_expect_str_eq(got, want);
	free(got);
	free(want);
	got = elements("map inet bunshin fwd_dnat");
	for (int k = 0; k < 6; k++) {
		char key[32];

		snprintf(key, sizeof(key), "|tcp . %d : ", 9000 + k);
		cr_expect(strstr(got, key), "no %s in\n%s", key, got);
	}
	free(got);
}
