// SPDX-License-Identifier: MIT
/*
 * dhcpwatch: the wire half of bench/instnet.sh's setup-time rows.
 *
 *   dhcpwatch
 *
 * Prints one line per DHCPv4 message seen on any link of the network
 * namespace it runs in, links made after it started included (an unbound
 * packet socket sees them all, so the bridge and taps bunshind makes for
 * an instance are watched from before they exist):
 *
 *   T_US IFNAME DIR TYPE CHADDR
 *
 * T_US is the kernel's receive timestamp (CLOCK_REALTIME, microseconds,
 * the clock of bash's $EPOCHREALTIME), DIR "in" for a frame the host
 * received on IFNAME and "out" for one it sent, TYPE the DHCP message
 * type (1 DISCOVER, 2 OFFER, 3 REQUEST, 5 ACK, 6 NAK, ...; 0 if absent).
 * A frame that is not a well-formed DHCP message is skipped: everything is
 * bounds-checked, nothing of it is trusted. Stops on SIGTERM or SIGINT.
 * Needs CAP_NET_RAW.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IP_HLEN_MIN   20
#define UDP_HLEN      8
#define BOOTP_LEN     236 /* the fixed part, before the magic cookie */
#define DHCP_OPT_TYPE 53
#define DHCP_OPT_END  255

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The message type in options [p, p + n): option 53's byte, 0 if absent or cut. */
static int dhcp_type(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] != DHCP_OPT_END) {
		if (p[i] == 0) { /* pad */
			i++;
			continue;
		}
		if (i + 2 > n || i + 2 + p[i + 1] > n)
			return 0;
		if (p[i] == DHCP_OPT_TYPE && p[i + 1] == 1)
			return p[i + 2];
		i += 2 + (size_t)p[i + 1];
	}
	return 0;
}

/* The DHCP message in IPv4 packet ip (n bytes): its type and client MAC, or -1. */
static int parse(const uint8_t *ip, size_t n, const uint8_t **chaddr)
{
	size_t ihl, tot;
	const uint8_t *udp, *bootp;
	uint16_t sport, dport;

	if (n < IP_HLEN_MIN || ip[0] >> 4 != 4 || ip[9] != 17)
		return -1;
	ihl = (size_t)(ip[0] & 15) * 4;
	tot = get16(ip + 2);
	if (ihl < IP_HLEN_MIN || tot > n || tot < ihl + UDP_HLEN + BOOTP_LEN + 4)
		return -1;
	if (get16(ip + 6) & 0x3fff) /* a fragment: not ours to reassemble */
		return -1;
	udp = ip + ihl;
	sport = get16(udp);
	dport = get16(udp + 2);
	if (!((sport == 68 && dport == 67) || (sport == 67 && dport == 68)))
		return -1;
	bootp = udp + UDP_HLEN;
	if (bootp[2] != 6 || get16(bootp + BOOTP_LEN) != 0x6382 ||
	    get16(bootp + BOOTP_LEN + 2) != 0x5363)
		return -1;
	*chaddr = bootp + 28;
	return dhcp_type(bootp + BOOTP_LEN + 4, tot - ihl - UDP_HLEN - BOOTP_LEN - 4);
}

static void report(const struct msghdr *m, const struct sockaddr_ll *from, const uint8_t *buf,
		   size_t n)
{
	struct timespec ts = {0};
	const uint8_t *ch;
	char ifname[IF_NAMESIZE] = "?";
	int type = parse(buf, n, &ch);

	if (type < 0)
		return;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR((struct msghdr *)m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS)
			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
	if (!ts.tv_sec)
		clock_gettime(CLOCK_REALTIME, &ts);
	if (!if_indextoname((unsigned int)from->sll_ifindex, ifname))
		snprintf(ifname, sizeof(ifname), "if%d", from->sll_ifindex);
	printf("%lld %s %s %d %02x:%02x:%02x:%02x:%02x:%02x\n",
	       (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, ifname,
	       from->sll_pkttype == PACKET_OUTGOING ? "out" : "in", type, ch[0], ch[1], ch[2],
	       ch[3], ch[4], ch[5]);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static uint8_t buf[65536];
	union {
		char b[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	struct sigaction sa = {.sa_handler = on_signal};
	int fd, on = 1;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: dhcpwatch (no arguments)\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/*
	 * ETH_P_ALL: a bridge port's frames reach only the taps of every
	 * protocol (the bridge takes them before protocol handlers run), and
	 * so do the frames a link sends. SOCK_DGRAM: the link-layer header is
	 * stripped, buf starts at the network header.
	 */
	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on))) {
		fprintf(stderr, "dhcpwatch: packet socket: %s\n", strerror(errno));
		return 1;
	}
	while (!stop) {
		struct sockaddr_ll from;
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr m = {.msg_name = &from,
				   .msg_namelen = sizeof(from),
				   .msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = ctl.b,
				   .msg_controllen = sizeof(ctl.b)};
		ssize_t n = recvmsg(fd, &m, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "dhcpwatch: recvmsg: %s\n", strerror(errno));
			return 1;
		}
		if (from.sll_protocol == htons(ETH_P_IP))
			report(&m, &from, buf, (size_t)n);
	}
	close(fd);
	return 0;
}
