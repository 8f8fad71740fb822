// SPDX-License-Identifier: MIT
/* A network namespace posing as an instance on a bunshin network (fakeinst.h). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../src/hostnet/link.h"
#include "fakeinst.h"

#define FAKE_TIMEOUT_MS 5000

void fake_make(struct fake *f, const char *veth, const char *bridge, const char *mac,
	       const char *ip, const char *gw)
{
	struct hostnet *hn;
	struct error err = {0};
	char cmd[512];

	snprintf(f->veth, sizeof(f->veth), "%s", veth);
	f->home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(f->home, 0);
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "%s", strerror(errno));
	f->ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(f->ns, 0);
	cr_assert_eq(setns(f->home, CLONE_NEWNET), 0, "%s", strerror(errno));
	cr_assert_eq(hostnet_open(&hn, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_veth_create(hn, veth, "eth0", f->ns, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_link_set_master(hn, veth, bridge, &err), 0, "%s", err.msg);
	cr_assert_eq(hostnet_link_set_up(hn, veth, true, &err), 0, "%s", err.msg);
	hostnet_close(hn);
	/* a child forked here is in the fake's namespace: ip(8) configures it */
	cr_assert_eq(setns(f->ns, CLONE_NEWNET), 0);
	snprintf(cmd, sizeof(cmd),
		 "ip link set lo up && ip link set eth0 address %s && ip addr add %s dev eth0 && "
		 "ip link set eth0 up && ip route add default via %s",
		 mac, ip, gw);
	int rc = system(cmd);
	cr_assert_eq(setns(f->home, CLONE_NEWNET), 0);
	cr_assert_eq(rc, 0, "%s", cmd);
}

void fake_free(struct fake *f)
{
	close(f->ns);
	close(f->home);
}

static int fake_socket(struct fake *f, int type)
{
	int fd;

	cr_assert_eq(setns(f->ns, CLONE_NEWNET), 0);
	fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	cr_assert_eq(setns(f->home, CLONE_NEWNET), 0);
	return fd;
}

int fake_connect(struct fake *f)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(80)};
	struct timeval tv = {.tv_sec = FAKE_TIMEOUT_MS / 1000};
	int fd = fake_socket(f, SOCK_STREAM);

	inet_pton(AF_INET, "169.254.169.254", &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

char *fake_read_all(int fd, int ms)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	struct pollfd p = {.fd = fd, .events = POLLIN};

	cr_assert_not_null(buf);
	while (poll(&p, 1, ms) == 1) {
		ssize_t n;

		if (cap - len < 1024) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	return buf;
}

int fake_http(struct fake *f, const char *method, const char *path, const char *head_extra,
	      char **body)
{
	char req[2048], *resp, *sep;
	int fd = fake_connect(f), status = -1;

	if (body)
		*body = NULL;
	if (fd < 0)
		return -1;
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 169.254.169.254\r\n%s\r\n", method,
		 path, head_extra ?: "");
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -1;
	}
	resp = fake_read_all(fd, FAKE_TIMEOUT_MS);
	close(fd);
	if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
		status = -1;
	sep = strstr(resp, "\r\n\r\n");
	if (body)
		*body = strdup(sep ? sep + 4 : "");
	free(resp);
	return status;
}

bool fake_wait_metadata(struct fake *f, int ms)
{
	for (int t = 0; t < ms; t += 100) {
		if (fake_http(f, "GET", "/openstack", NULL, NULL) == 200)
			return true;
		usleep(100000);
	}
	return false;
}

/* ---- DNS (RFC 1035 4.1) ---- */

static size_t fake_dns_query(const char *name, uint8_t *q)
{
	static const uint8_t head[12] = {0x4b, 0x53, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
	size_t n = sizeof(head);

	memcpy(q, head, n);
	for (const char *l = name; *l;) {
		size_t len = strcspn(l, ".");

		q[n++] = (uint8_t)len;
		memcpy(q + n, l, len);
		n += len;
		l += len + (l[len] == '.');
	}
	q[n++] = 0;
	memcpy(q + n, "\0\1\0\1", 4); /* type A, class IN */
	return n + 4;
}

/* Skips a (possibly compressed) name at off; the offset after it. */
static size_t fake_dns_skip_name(const uint8_t *m, size_t len, size_t off)
{
	while (off < len && m[off]) {
		if ((m[off] & 0xc0) == 0xc0)
			return off + 2;
		off += (size_t)m[off] + 1;
	}
	return off + 1;
}

const char *fake_dns_a(struct fake *f, const char *server, const char *name)
{
	static char out[INET_ADDRSTRLEN];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
	struct timeval tv = {.tv_sec = 2};
	uint8_t q[512], m[1500];
	size_t qlen = fake_dns_query(name, q), off;
	int fd = fake_socket(f, SOCK_DGRAM);
	ssize_t n = -1;

	out[0] = 0;
	inet_pton(AF_INET, server, &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(fd, q, qlen, 0, (struct sockaddr *)&sa, sizeof(sa)) == (ssize_t)qlen)
		n = recv(fd, m, sizeof(m), 0);
	close(fd);
	if (n < 12 || m[0] != q[0] || m[1] != q[1] || !(m[2] & 0x80) || (m[3] & 0x0f))
		return out;
	off = fake_dns_skip_name(m, (size_t)n, 12) + 4;
	for (int a = 0; a < (m[6] << 8 | m[7]) && off + 10 <= (size_t)n; a++) {
		size_t rd;

		off = fake_dns_skip_name(m, (size_t)n, off);
		if (off + 10 > (size_t)n)
			break;
		rd = (size_t)(m[off + 8] << 8 | m[off + 9]);
		if (m[off] == 0 && m[off + 1] == 1 && rd == 4 && off + 14 <= (size_t)n) {
			inet_ntop(AF_INET, m + off + 10, out, sizeof(out));
			break;
		}
		off += 10 + rd;
	}
	return out;
}

const char *fake_dns_a_wait(struct fake *f, const char *server, const char *name, int ms)
{
	const char *ip = "";

	for (int t = 0; t < ms; t += 250) {
		ip = fake_dns_a(f, server, name);
		if (*ip)
			break;
		usleep(250000);
	}
	return ip;
}
