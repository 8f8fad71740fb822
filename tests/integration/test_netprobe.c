// SPDX-License-Identifier: MIT
/*
 * The test guest as a cloud instance (test=netprobe) against real peers:
 * each test makes a network namespace with a tap at 10.0.2.1/24 (and
 * 10.9.9.9 on lo, an off-subnet address behind the "router"), dnsmasq with
 * a static lease, and a server process in the namespace: a UDP echo, a TCP
 * server that answers a line and closes, a tiny HTTP server with an
 * IMDSv2-style token, a packet socket on the tap that counts the guest's
 * spoofed echo requests, and an impostor at 10.0.2.66 that answers the
 * guest's TCP with garbage. The guest's own echo servers are reached from
 * the namespace once it says BUNSHIN-READY.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define GUEST_MAC "52:54:00:12:34:57"
#define HOST_IP	  "10.0.2.1"
#define GUEST_IP  "10.0.2.77"
#define FAR_IP	  "10.9.9.9"
#define SPOOF_IP  "10.0.2.99"
#define EVIL_IP	  "10.0.2.66"
#define TOKEN	  "tok-5150"

static char ns[64], ip_path[64], dnsmasq_path[64];
static bool ns_made;
static pid_t kids[2] = {-1, -1};

static void teardown(void)
{
	for (int i = 0; i < 2; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGTERM);
			waitpid(kids[i], NULL, 0);
			kids[i] = -1;
		}
	if (ns_made) {
		const char *del[] = {ip_path, "netns", "del", ns, NULL};
		harness_cmd(del, -1);
	}
	ns_made = false;
	harness_dir_teardown();
}

TestSuite(netprobe, .init = harness_dir_setup, .fini = teardown, .timeout = 240);

static void make_ns(void)
{
	harness_require_kvm();
	if (!harness_find_tool("ip", ip_path, sizeof(ip_path)))
		cr_skip_test("skipped: no 'ip' command (iproute2) to make a network namespace");
	if (!harness_find_tool("dnsmasq", dnsmasq_path, sizeof(dnsmasq_path)))
		cr_skip_test("skipped: no dnsmasq (dnsmasq-base) to serve DHCP");
	snprintf(ns, sizeof(ns), "bunshin-probe-%d", (int)getpid());
	const char *add[] = {ip_path, "netns", "add", ns, NULL};
	if (harness_cmd(add, -1) != 0)
		cr_skip_test("skipped: 'ip netns add' failed: network namespaces need "
			     "CAP_NET_ADMIN");
	ns_made = true;
	const char *const cmds[][10] = {
		{ip_path, "-n", ns, "link", "set", "lo", "up", NULL},
		{ip_path, "-n", ns, "addr", "add", FAR_IP "/32", "dev", "lo", NULL},
		{ip_path, "-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap", NULL},
		{ip_path, "-n", ns, "addr", "add", HOST_IP "/24", "dev", "tap0", NULL},
		{ip_path, "-n", ns, "link", "set", "tap0", "up", NULL},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		cr_assert_eq(harness_cmd(cmds[i], -1), 0, "%s %s %s failed", cmds[i][3], cmds[i][4],
			     cmds[i][5]);
}

static void start_dnsmasq(void)
{
	char hosts[160], hostsfile[192], leasefile[192];
	FILE *f;

	snprintf(hosts, sizeof(hosts), "%s/hosts", harness_dir);
	f = fopen(hosts, "w");
	cr_assert_not_null(f);
	fprintf(f, GUEST_MAC "," GUEST_IP "\n");
	fclose(f);
	snprintf(hostsfile, sizeof(hostsfile), "--dhcp-hostsfile=%s", hosts);
	snprintf(leasefile, sizeof(leasefile), "--dhcp-leasefile=%s/leases", harness_dir);
	kids[0] = fork();
	cr_assert_geq(kids[0], 0);
	if (kids[0] == 0) {
		const char *argv[] = {dnsmasq_path,
				      "--keep-in-foreground",
				      "--conf-file=/dev/null",
				      "--bind-interfaces",
				      "--interface=tap0",
				      "--except-interface=lo",
				      "--port=0",
				      "--user=root",
				      "--dhcp-range=10.0.2.0,static,255.255.255.0",
				      hostsfile,
				      leasefile,
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

/* ---- the peers, in a child in the namespace ---- */

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int listen_on(int type, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		_exit(120);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 4)))
		_exit(121);
	return fd;
}

/* Reads from an accepted socket until needle or 2 s; the bytes read. */
static size_t read_until(int fd, char *buf, size_t cap, const char *needle)
{
	struct timeval tv = {.tv_sec = 2};
	size_t n = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	buf[0] = '\0';
	while (n + 1 < cap && !strstr(buf, needle)) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
	}
	return n;
}

static void tcp_peer(int lfd)
{
	char buf[512], out[600];
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	read_until(fd, buf, sizeof(buf), "\n");
	snprintf(out, sizeof(out), "hello %s", buf);
	(void)!write(fd, out, strlen(out));
	close(fd);
}

static int lingering = -1; /* a keep-alive connection the server does not close */

static void http_peer(int lfd)
{
	char buf[2048], out[2300];
	const char *body = "not found\n";
	int code = 404, fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	read_until(fd, buf, sizeof(buf), "\r\n\r\n");
	if (!strncmp(buf, "PUT /latest/api/token ", 22) &&
	    strstr(buf, "\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n")) {
		code = 200;
		body = TOKEN;
	} else if (!strncmp(buf, "GET /hello ", 11) &&
		   strstr(buf, "\r\nHost: " HOST_IP ":8080\r\n") &&
		   strstr(buf, "\r\nConnection: close\r\n")) {
		code = 200;
		body = "hello from http\n";
	} else if (!strncmp(buf, "GET /keepalive ", 15)) { /* answers, then keeps it open */
		snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\ncontent-length:  5\r\n\r\nkept!");
		(void)!write(fd, out, strlen(out));
		if (lingering >= 0)
			close(lingering);
		lingering = fd;
		return;
	} else if (!strncmp(buf, "GET /chunked ", 13)) {
		snprintf(
			out, sizeof(out),
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n"
			"4\r\nabcd\r\n5;x=1\r\nefghi\r\n0\r\n\r\n");
		(void)!write(fd, out, strlen(out));
		close(fd);
		return;
	} else if (!strncmp(buf, "GET /secret ", 12)) {
		bool ok = strstr(buf, "\r\nX-aws-ec2-metadata-token: " TOKEN "\r\n");
		code = ok ? 200 : 401;
		body = ok ? "secret\tvalue\n" : "no token\n";
	}
	snprintf(out, sizeof(out),
		 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", code,
		 strlen(body), body);
	(void)!write(fd, out, strlen(out));
	close(fd);
}

static void udp_peer(int fd)
{
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	char buf[2048];
	ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

	if (n > 0)
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
}

/* ---- the impostor at EVIL_IP, on a packet socket ---- */

static const uint8_t evil_mac[6] = {0x02, 0xee, 0x00, 0x00, 0x00, 0x66};
static uint32_t evil_seq = 7000;
static int evil_data; /* data segments the guest sent the impostor */

static uint16_t csum(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One TCP segment from EVIL_IP back to the guest's frame f; bad_sum spoils it. */
static void evil_tcp(int fd, const uint8_t *f, uint8_t flags, uint32_t seq, uint32_t ack,
		     const char *data, bool bad_sum)
{
	uint8_t o[200] = {0}, *ip = o + 14, *t = ip + 20;
	size_t dlen = data ? strlen(data) : 0, tl = 20 + dlen;
	uint32_t ps = 0;

	memcpy(o, f + 6, 6);
	memcpy(o + 6, evil_mac, 6);
	put16(o + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint32_t)(20 + tl));
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, f + 14 + 16, 4);
	memcpy(ip + 16, f + 14 + 12, 4);
	put16(ip + 10, csum(ip, 20, 0));
	memcpy(t, f + 14 + 20 + 2, 2);
	memcpy(t + 2, f + 14 + 20, 2);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 4096);
	memcpy(t + 20, data ? data : "", dlen);
	for (int i = 12; i < 20; i += 2)
		ps += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	ps += 6 + (uint32_t)tl;
	put16(t + 16, csum(t, tl, ps) ^ (bad_sum ? 0x1234 : 0));
	send(fd, o, 14 + 20 + tl, 0);
}

/* Answers ARP for EVIL_IP, and every TCP segment to it with a volley of nonsense. */
static void evil_frame(int fd, const uint8_t *f, size_t n)
{
	struct in_addr evil;
	uint8_t o[42];

	inet_pton(AF_INET, EVIL_IP, &evil);
	if (n >= 42 && f[12] == 8 && f[13] == 6 && f[21] == 1 && !memcmp(f + 38, &evil, 4)) {
		memcpy(o, f + 6, 6);
		memcpy(o + 6, evil_mac, 6);
		memcpy(o + 12, f + 12, 8);
		o[20] = 0;
		o[21] = 2;
		memcpy(o + 22, evil_mac, 6);
		memcpy(o + 28, &evil, 4);
		memcpy(o + 32, f + 22, 10);
		send(fd, o, sizeof(o), 0);
		return;
	}
	if (n < 54 || f[12] != 8 || f[13] != 0 || f[23] != 6 || memcmp(f + 30, &evil, 4))
		return;
	uint32_t seq = get32(f + 38), ack = get32(f + 42);
	uint8_t flags = f[47];
	static int volleys;

	if (f[14 + 20 + 12] >> 4 == 5 && (size_t)(f[16] << 8 | f[17]) > 40)
		evil_data++; /* only an established connection sends data */
	if (flags & 0x02)
		volleys = 0;		      /* a new connection */
	if ((flags & 0x04) || volleys++ > 40) /* a storm, but a bounded one per connection */
		return;
	if (flags & 0x02) { /* their SYN: wrong acks, bad sums, a blind RST, then a real SYN-ACK */
		evil_tcp(fd, f, 0x12, evil_seq, seq + 1, NULL, true);
		evil_tcp(fd, f, 0x12, evil_seq, seq + 7, NULL, false);
		evil_tcp(fd, f, 0x04, 12345, 0, NULL, false);
		evil_tcp(fd, f, 0x12, evil_seq, seq + 1, NULL, false);
		return;
	}
	/* later: data out of order, an ack of bytes never sent, a RST off by one, garbage */
	evil_tcp(fd, f, 0x18, evil_seq + 1000, seq, "out-of-order", false);
	evil_tcp(fd, f, 0x10, evil_seq + 1, seq + 100000, NULL, false);
	evil_tcp(fd, f, 0x14, evil_seq + 2, ack, NULL, false);
	evil_tcp(fd, f, 0x18, evil_seq + 1, seq, "bad-sum", true);
	evil_tcp(fd, f, 0x02, evil_seq + 1, 0, NULL, false);
	evil_tcp(fd, f, 0xff, 0, 0, "all-flags", false);
}

/* The guest's spoofed echo requests: *own from its own MAC, *fake from another. */
static void count_spoof(const uint8_t *f, size_t n, const uint8_t *guest_mac, int *own, int *fake)
{
	struct in_addr src;

	inet_pton(AF_INET, SPOOF_IP, &src);
	if (n < 14 + 28 || f[12] != 8 || f[13] != 0 || f[23] != 1 || f[34] != 8 ||
	    memcmp(f + 26, &src, 4))
		return;
	if (!memcmp(f + 6, guest_mac, 6))
		(*own)++;
	else
		(*fake)++;
}

static void peers(const char *counts)
{
	int u = listen_on(SOCK_DGRAM, 7000), t = listen_on(SOCK_STREAM, 7001);
	int h = listen_on(SOCK_STREAM, 8080), own = 0, fake = 0;
	int pk = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x57}, f[2048];
	FILE *out;

	ll.sll_ifindex = (int)if_nametoindex("tap0");
	if (pk < 0 || bind(pk, (struct sockaddr *)&ll, sizeof(ll)) < 0)
		_exit(122);
	signal(SIGTERM, on_term);
	while (!stop) {
		struct pollfd p[4] = {
			{u, POLLIN, 0}, {t, POLLIN, 0}, {h, POLLIN, 0}, {pk, POLLIN, 0}};
		if (poll(p, 4, 100) <= 0)
			continue;
		if (p[0].revents)
			udp_peer(u);
		if (p[1].revents)
			tcp_peer(t);
		if (p[2].revents)
			http_peer(h);
		if (p[3].revents) {
			struct sockaddr_ll from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(pk, f, sizeof(f), 0, (struct sockaddr *)&from, &fl);
			if (n > 0 && from.sll_pkttype != PACKET_OUTGOING) {
				count_spoof(f, (size_t)n, guest_mac, &own, &fake);
				evil_frame(pk, f, (size_t)n);
			}
		}
	}
	for (;;) { /* what is still queued counts too */
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(pk, f, sizeof(f), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (n <= 0)
			break;
		if (from.sll_pkttype != PACKET_OUTGOING)
			count_spoof(f, (size_t)n, guest_mac, &own, &fake);
	}
	out = fopen(counts, "w");
	if (out) {
		fprintf(out, "own=%d fake=%d evil_data=%d\n", own, fake, evil_data);
		fclose(out);
	}
	_exit(0);
}

static void start_peers(void)
{
	char counts[160];

	snprintf(counts, sizeof(counts), "%s/counts", harness_dir);
	kids[1] = fork();
	cr_assert_geq(kids[1], 0);
	if (kids[1] == 0) {
		harness_enter_netns(ns);
		peers(counts);
	}
	usleep(200 * 1000); /* its sockets are bound before the guest asks */
}

/* Stops the peers: what their packet socket counted. */
static char *stop_peers(void)
{
	static char buf[128];
	char counts[160];

	kill(kids[1], SIGTERM);
	waitpid(kids[1], NULL, 0);
	kids[1] = -1;
	snprintf(counts, sizeof(counts), "%s/counts", harness_dir);
	snprintf(buf, sizeof(buf), "%s", harness_slurp(counts));
	return buf;
}

/* ---- the guest ---- */

static void run_probe(const char *cmdline, const struct vmm_step *steps, int nsteps,
		      void (*on_step)(void *, int, int), struct vmm_result *r)
{
	const char *argv[HARNESS_NETNS_ARGV];

	harness_netns_guest_argv(argv, ns, "tap=tap0,mac=" GUEST_MAC, cmdline);

	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = nsteps,
				      .on_step = on_step,
				      .timeout_ms = 90000,
				      .run_as_uid = -1,
				      .vmm_path = ip_path},
		    r);
	cr_assert(!r->timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r->out, r->err);
}

static void field_eq(const char *out, const char *key, const char *want)
{
	char val[64];

	cr_assert(harness_result_field(out, "netprobe", key, val, sizeof(val)), "no %s= in:\n%s",
		  key, out);
	cr_assert_str_eq(val, want, "%s=%s, expected %s; console:\n%s", key, val, want, out);
}

static void has_line(const char *out, const char *line)
{
	cr_assert(strstr(out, line), "no line '%s' in:\n%s", line, out);
}

static void ready(void)
{
	make_ns();
	start_dnsmasq();
	start_peers();
}

Test(netprobe, reaches_udp_tcp_http_and_pings_through_the_router)
{
	struct vmm_result r;

	ready();
	run_probe("test=netprobe ping=" HOST_IP "+" FAR_IP "+10.0.2.123 udp=" HOST_IP
		  ":7000 udp_msg=hi-udp tcp=" HOST_IP ":7001 tcp_msg=hello-tcp http=" HOST_IP
		  ":8080/hello+" HOST_IP ":8080/secret+" HOST_IP ":8080/nothing+" HOST_IP
		  ":8080/chunked imds=1",
		  NULL, 0, NULL, &r);
	cr_assert(harness_passed(r.out, "netprobe"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	field_eq(r.out, "ip", GUEST_IP);
	field_eq(r.out, "router", HOST_IP);
	field_eq(r.out, "dns", HOST_IP);
	field_eq(r.out, "ping1", "ok");
	field_eq(r.out, "ping2", "ok"); /* off the subnet: ARP for the router, not the target */
	field_eq(r.out, "ping3", "fail");
	field_eq(r.out, "udp", "ok");
	field_eq(r.out, "tcp", "ok");
	field_eq(r.out, "bytes", "16");
	has_line(r.out, "\nBUNSHIN-DATA tcp hello hello-tcp\\x0a\n");
	field_eq(r.out, "http1", "200");
	field_eq(r.out, "http2", "200");
	field_eq(r.out, "http3", "404");
	has_line(r.out, "\nBUNSHIN-DATA http1 hello from http\\x0a\n");
	has_line(r.out, "\nBUNSHIN-DATA http2 secret\\x09value\\x0a\n");
	field_eq(r.out, "http4", "200");
	has_line(r.out, "\nBUNSHIN-DATA http4 abcdefghi\n");
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	harness_free(&r);
}

Test(netprobe, a_response_ends_at_its_content_length_on_a_kept_connection)
{
	struct vmm_result r;

	ready();
	run_probe("test=netprobe http=" HOST_IP ":8080/keepalive ms=20000", NULL, 0, NULL, &r);
	cr_assert(harness_passed(r.out, "netprobe"), "console:\n%s", r.out);
	field_eq(r.out, "http1", "200");
	has_line(r.out, "\nBUNSHIN-DATA http1 kept!\n");
	/* without Content-Length it would have waited for the server's FIN, i.e. ms */
	cr_assert_lt(r.wall_ms, 15000, "took %.0f ms", r.wall_ms);
	harness_free(&r);
}

Test(netprobe, without_the_token_the_metadata_path_is_refused)
{
	struct vmm_result r;

	ready();
	run_probe("test=netprobe http=" HOST_IP ":8080/secret", NULL, 0, NULL, &r);
	cr_assert(harness_passed(r.out, "netprobe"), "console:\n%s", r.out);
	field_eq(r.out, "http1", "401");
	has_line(r.out, "\nBUNSHIN-DATA http1 no token\\x0a\n");
	harness_free(&r);
}

Test(netprobe, closed_ports_are_refused_and_silence_is_a_failure)
{
	struct vmm_result r;

	ready();
	run_probe("test=netprobe udp=" HOST_IP ":7999 tcp=" HOST_IP ":7002 http=" HOST_IP
		  ":7003/ ms=1000",
		  NULL, 0, NULL, &r);
	cr_assert(harness_passed(r.out, "netprobe"), "console:\n%s", r.out);
	field_eq(r.out, "udp", "fail");
	field_eq(r.out, "tcp", "refused");
	field_eq(r.out, "bytes", "0");
	field_eq(r.out, "http1", "0");
	has_line(r.out, "\nBUNSHIN-DATA tcp \n");
	harness_free(&r);
}

Test(netprobe, spoofed_pings_leave_with_the_spoofed_source)
{
	struct vmm_result r;

	ready();
	run_probe("test=netprobe spoof=" SPOOF_IP " spoof_to=" HOST_IP " spoof_mac=1", NULL, 0,
		  NULL, &r);
	cr_assert(harness_passed(r.out, "netprobe"), "console:\n%s", r.out);
	field_eq(r.out, "spoof", "sent");
	cr_assert_str_eq(stop_peers(), "own=5 fake=5 evil_data=0\n");
	harness_free(&r);
}

Test(netprobe, a_hostile_tcp_peer_cannot_hang_the_guest)
{
	struct vmm_result r;
	char val[32];

	ready();
	run_probe("test=netprobe tcp=" EVIL_IP ":80 http=" EVIL_IP "/x ms=1500", NULL, 0, NULL, &r);
	cr_assert(harness_passed(r.out, "netprobe"), "console:\n%s", r.out);
	cr_assert(harness_result_field(r.out, "netprobe", "tcp", val, sizeof(val)));
	/* it connected (the real SYN-ACK), took none of the nonsense, and gave up in time */
	cr_assert_str_eq(val, "timeout", "console:\n%s", r.out);
	field_eq(r.out, "bytes", "0");
	field_eq(r.out, "http1", "0");
	cr_assert_lt(r.wall_ms, 30000, "took %.0f ms", r.wall_ms);
	/* both connections got through the nonsense to ESTABLISHED: only then is data sent */
	int own, fake, data = 0;
	cr_assert_eq(sscanf(stop_peers(), "own=%d fake=%d evil_data=%d", &own, &fake, &data), 3);
	cr_assert_geq(data, 2, "the guest sent %d data segments (one tcp, one http at least)",
		      data);
	harness_free(&r);
}

/* ---- the guest's servers, reached from the namespace ---- */

static int udp_roundtrip(const char *msg)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5000)};
	struct timeval tv = {.tv_sec = 3};
	char buf[256];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	ssize_t n;

	inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof(a));
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	return n == (ssize_t)strlen(msg) && !memcmp(buf, msg, (size_t)n);
}

static int tcp_roundtrip(const char *line)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5001)};
	char buf[256];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t n;

	inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 0;
	(void)!write(fd, line, strlen(line));
	n = read_until(fd, buf, sizeof(buf), "\x01"); /* to EOF */
	close(fd);
	return n == strlen(line) && !memcmp(buf, line, n);
}

/* An echo request to the guest (the stack answers them): 1 when the reply comes back. */
static int ping_guest(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 2};
	uint8_t req[16] = {8, 0, 0, 0, 0x12, 0x34, 0, 1, 'b', 'u', 'n', 's', 'h', 'i', 'n', '!'};
	uint8_t buf[256];
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), ok = 0;

	put16(req + 2, csum(req, sizeof(req), 0));
	inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sendto(fd, req, sizeof(req), 0, (struct sockaddr *)&a, sizeof(a));
	for (int i = 0; i < 10 && !ok; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 20)
			break;
		size_t ihl = (buf[0] & 15) * 4u;
		ok = (size_t)n >= ihl + sizeof(req) && buf[ihl] == 0 &&
		     !memcmp(buf + ihl + 4, req + 4, sizeof(req) - 4);
	}
	close(fd);
	return ok;
}

/* Datagrams to the guest's UDP echo that it must not answer: a bad checksum, bad lengths. */
static void udp_garbage(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	uint8_t d[16] = {0x30, 0x39, 5000 >> 8, 5000 & 255, 0,	 16,  0xde, 0xad,
			 'g',  'a',  'r',	'b',	    'a', 'g', 'e',  '!'};
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);

	inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
	sendto(fd, d, sizeof(d), 0, (struct sockaddr *)&a, sizeof(a));
	d[5] = 200;
	sendto(fd, d, sizeof(d), 0, (struct sockaddr *)&a, sizeof(a));
	d[5] = 4;
	sendto(fd, d, sizeof(d), 0, (struct sockaddr *)&a, sizeof(a));
	close(fd);
}

static void client(void *ctx, int step, int pid)
{
	char *res = ctx;
	pid_t c;
	int st;

	(void)step;
	(void)pid;
	c = fork();
	if (c == 0) {
		harness_enter_netns(ns);
		udp_garbage();
		int u = udp_roundtrip("udp-one") + udp_roundtrip("udp-two");
		int t = tcp_roundtrip("line one\n") + tcp_roundtrip("line two\n");
		_exit(ping_guest() * 100 + u * 10 + t);
	}
	waitpid(c, &st, 0);
	snprintf(res, 32, "%d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

Test(netprobe, its_echo_servers_answer_the_host)
{
	static char res[32];
	const struct vmm_step steps[] = {{"BUNSHIN-READY netprobe ip=" GUEST_IP "\n", ""}};
	const char *argv[HARNESS_NETNS_ARGV];
	struct vmm_result r;

	ready(); /* ns is set from here on */
	harness_netns_guest_argv(argv, ns, "tap=tap0,mac=" GUEST_MAC,
				 "test=netprobe serve_udp=5000 serve_tcp=5001 serve_ms=8000");
	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = 1,
				      .on_step = client,
				      .ctx = res,
				      .timeout_ms = 90000,
				      .run_as_uid = -1,
				      .vmm_path = ip_path},
		    &r);
	cr_assert(!r.timed_out, "console:\n%s", r.out);
	cr_assert(harness_passed(r.out, "netprobe"), "console:\n%s", r.out);
	cr_assert_str_eq(res, "122",
			 "round trips (hundreds: ping, tens: udp, ones: tcp); console:\n%s", r.out);
	field_eq(r.out, "served_udp", "2"); /* not the garbage */
	field_eq(r.out, "served_tcp", "2");
	harness_free(&r);
}

Test(netprobe, bad_options_fail_before_the_network)
{
	static const char *const bad[] = {"ping=10.0.2",
					  "ping=1.2.3.4+1.2.3.5+1.2.3.6+1.2.3.7+1.2.3.8",
					  "udp=10.0.2.1",
					  "tcp=10.0.2.1:0",
					  "tcp=10.0.2.1:70000",
					  "http=10.0.2.1",
					  "spoof=10.0.2.9",
					  "serve_ms=0",
					  "ms=999999",
					  "udp_msg=",
					  "ping=1.2.3.4++1.2.3.5"};
	char cmd[256];
	struct vmm_result r;

	make_ns();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cmd, sizeof(cmd), "test=netprobe %s", bad[i]);
		run_probe(cmd, NULL, 0, NULL, &r);
		field_eq(r.out, "result", "fail");
		field_eq(r.out, "reason", "bad-option");
		harness_free(&r);
	}
}
