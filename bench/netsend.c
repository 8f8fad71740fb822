// SPDX-License-Identifier: MIT
/*
 * netsend: the host half of the receive row of bench/net.sh.
 *
 *   netsend DST_IP PORT PAYLOAD SECONDS
 *
 * Sends UDP datagrams of PAYLOAD bytes to DST_IP:PORT as fast as the
 * kernel takes them, in batches (sendmmsg) so that the sender spends as
 * little CPU per datagram as it can: the machine it runs on has few cores
 * and the VMM under test needs them. It stops after SECONDS or on SIGTERM
 * or SIGINT and prints "sent=N errors=N seconds=S". Errors (ENOBUFS when
 * the tap's queue is full, ECONNREFUSED after an ICMP error) are counted
 * and sending goes on: what the guest receives is measured by the guest.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH	    64
#define PAYLOAD_MAX 65507

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long arg_num(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi) {
		fprintf(stderr, "netsend: %s must be a number in [%ld, %ld]: '%s'\n", what, lo, hi,
			s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static uint8_t payload[PAYLOAD_MAX];
	struct sockaddr_in dst = {.sin_family = AF_INET};
	struct mmsghdr msgs[BATCH];
	struct iovec iov;
	struct sigaction sa = {.sa_handler = on_signal};
	uint64_t sent = 0, errors = 0;
	double t0, limit;
	long len;
	int fd, sndbuf = 4 << 20;

	if (argc != 5) {
		fprintf(stderr, "usage: netsend DST_IP PORT PAYLOAD SECONDS\n");
		return 2;
	}
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "netsend: not an IPv4 address: '%s'\n", argv[1]);
		return 2;
	}
	dst.sin_port = htons((uint16_t)arg_num(argv[2], 1, 65535, "PORT"));
	len = arg_num(argv[3], 0, PAYLOAD_MAX, "PAYLOAD");
	limit = (double)arg_num(argv[4], 1, 3600, "SECONDS");

	/* no SA_RESTART: a signal must end a blocked sendmmsg() too */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		perror("netsend: socket");
		return 1;
	}
	/* more datagrams queued per call; the default is fine too, so failure is not fatal */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

	for (long i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 7);
	iov = (struct iovec){payload, (size_t)len};
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	t0 = now_s();
	while (!stop) {
		int n = sendmmsg(fd, msgs, BATCH, 0);

		if (n > 0)
			sent += (uint64_t)n;
		else if (errno != EINTR)
			errors++;
		/* the clock once per batch: cheap enough, and SECONDS is coarse */
		if (now_s() - t0 >= limit)
			break;
	}
	printf("sent=%llu errors=%llu seconds=%.3f\n", (unsigned long long)sent,
	       (unsigned long long)errors, now_s() - t0);
	close(fd);
	return 0;
}
