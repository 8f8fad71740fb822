// SPDX-License-Identifier: MIT
/*
 * virtio-vsock end to end: the real VMM with --vsock, the test guest's
 * driver (test=virtio-vsock), and host programs on the unix sockets, run
 * as threads of this test while the VM runs:
 *   - a listener on <uds>_5678 that answers the guest's greeting;
 *   - a client of <uds> that first sends garbage (closed, the VM goes on),
 *     then CONNECT to a port nobody listens on (closed), then CONNECT 1234
 *     and 64 KiB that the guest echoes back, checked byte for byte.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define ECHO_BYTES (64 * 1024)
#define WAIT_MS	   30000
#define MSG_GUEST  "hello host, this is the guest"
#define MSG_HOST   "hello guest, this is the host"

struct host {
	char dir[64];
	char uds[128];
	int lfd; /* <uds>_5678 */
	/* what the threads found; why is empty when all went well */
	char why_server[160];
	char why_client[160];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The VMM creates the socket as it starts: retry until it is there. */
static int connect_when_up(const char *path)
{
	int64_t end = now_ms() + WAIT_MS;
	int fd;

	while ((fd = unix_connect(path)) < 0 && now_ms() < end)
		usleep(20 * 1000);
	return fd;
}

/* Reads exactly len bytes: len, the count before EOF, or -1 on timeout or error. */
static ssize_t read_full(int fd, void *buf, size_t len, int ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, ms) <= 0)
			return -1;
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The device closes a socket it refused: EOF, or a reset when it left bytes unread. */
static bool closed_by_peer(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;
	ssize_t n;

	if (poll(&p, 1, WAIT_MS) <= 0)
		return false;
	n = read(fd, &c, 1);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void *server_main(void *arg)
{
	struct host *h = arg;
	struct pollfd p = {.fd = h->lfd, .events = POLLIN};
	char msg[sizeof(MSG_GUEST)] = {0};
	int fd;

	if (poll(&p, 1, WAIT_MS) <= 0) {
		snprintf(h->why_server, sizeof(h->why_server), "the guest never connected");
		return NULL;
	}
	fd = accept(h->lfd, NULL, NULL);
	if (read_full(fd, msg, sizeof(MSG_GUEST) - 1, WAIT_MS) != sizeof(MSG_GUEST) - 1 ||
	    strcmp(msg, MSG_GUEST)) {
		snprintf(h->why_server, sizeof(h->why_server), "guest said '%s'", msg);
		close(fd);
		return NULL;
	}
	if (write(fd, MSG_HOST, sizeof(MSG_HOST) - 1) != sizeof(MSG_HOST) - 1)
		snprintf(h->why_server, sizeof(h->why_server), "reply: %s", strerror(errno));
	/* the guest closes first, once it has the reply */
	if (read_full(fd, msg, 1, WAIT_MS) != 0)
		snprintf(h->why_server, sizeof(h->why_server), "no EOF from the guest");
	close(fd);
	return NULL;
}

static bool refused(struct host *h, const char *what, const char *line)
{
	int fd = connect_when_up(h->uds);
	bool ok;

	if (fd < 0) {
		snprintf(h->why_client, sizeof(h->why_client), "cannot connect to %s", h->uds);
		return false;
	}
	ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line) && closed_by_peer(fd);
	close(fd);
	if (!ok)
		snprintf(h->why_client, sizeof(h->why_client), "%s was not closed", what);
	return ok;
}

/* Writes and reads at once: the guest echoes while we still send. */
static bool echo(int fd, const uint8_t *out, uint8_t *in)
{
	size_t sent = 0, got = 0;
	int64_t end = now_ms() + WAIT_MS;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (got < ECHO_BYTES && now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < ECHO_BYTES ? POLLOUT : 0)};
		ssize_t n;

		if (poll(&p, 1, 1000) < 0)
			return false;
		if ((p.revents & POLLOUT) && sent < ECHO_BYTES) {
			n = write(fd, out + sent, ECHO_BYTES - sent);
			if (n > 0)
				sent += (size_t)n;
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			n = read(fd, in + got, ECHO_BYTES - got);
			if (n <= 0 && !(n < 0 && errno == EAGAIN))
				return false;
			if (n > 0)
				got += (size_t)n;
		}
	}
	return got == ECHO_BYTES && memcmp(in, out, ECHO_BYTES) == 0;
}

static void *client_main(void *arg)
{
	struct host *h = arg;
	static uint8_t out[ECHO_BYTES], in[ECHO_BYTES];
	char line[32] = {0};
	int fd;

	if (!refused(h, "garbage", "GET / HTTP/1.0\r\n\r\n") ||
	    !refused(h, "CONNECT to a closed guest port", "CONNECT 999\n"))
		return NULL;
	fd = connect_when_up(h->uds);
	if (fd < 0 || write(fd, "CONNECT 1234\n", 13) != 13) {
		snprintf(h->why_client, sizeof(h->why_client), "CONNECT 1234 not sent");
		return NULL;
	}
	/* "OK <port>\n": read byte by byte, the echo follows on the same stream */
	for (size_t i = 0; i < sizeof(line) - 1; i++)
		if (read_full(fd, line + i, 1, WAIT_MS) != 1 || line[i] == '\n')
			break;
	if (strncmp(line, "OK ", 3) || atoi(line + 3) <= 0 || !strchr(line, '\n')) {
		snprintf(h->why_client, sizeof(h->why_client), "handshake answer '%s'", line);
		close(fd);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 131 + (i >> 8));
	if (!echo(fd, out, in))
		snprintf(h->why_client, sizeof(h->why_client), "the echo differs or stopped");
	close(fd);
	return NULL;
}

static void host_up(struct host *h)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	memset(h, 0, sizeof(*h));
	strcpy(h->dir, "/tmp/bunshin-vsock-it-XXXXXX");
	cr_assert_not_null(mkdtemp(h->dir));
	snprintf(h->uds, sizeof(h->uds), "%s/v.sock", h->dir);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s_5678", h->uds);
	h->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(h->lfd, 0);
	cr_assert_eq(bind(h->lfd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(h->lfd, 4), 0);
}

static void host_down(struct host *h)
{
	char path[160];

	close(h->lfd);
	snprintf(path, sizeof(path), "%s_5678", h->uds);
	unlink(path);
	unlink(h->uds);
	rmdir(h->dir);
}

Test(vsock, echo_connect_and_refusals)
{
	struct host h;
	char vsock_arg[192], val[32];
	const char *argv[] = {"vmm",
			      "--kernel",
			      NULL,
			      "--cmdline",
			      "test=virtio-vsock vsock_listen=1234 vsock_connect=5678",
			      "--memory",
			      "128M",
			      "--vsock",
			      vsock_arg,
			      NULL};
	struct vmm_result r;
	pthread_t server, client;

	harness_require_kvm();
	argv[2] = harness_guest("elf");
	host_up(&h);
	snprintf(vsock_arg, sizeof(vsock_arg), "cid=42,uds=%s", h.uds);
	cr_assert_eq(pthread_create(&server, NULL, server_main, &h), 0);
	cr_assert_eq(pthread_create(&client, NULL, client_main, &h), 0);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 90000, .run_as_uid = -1}, &r);
	pthread_join(client, NULL);
	pthread_join(server, NULL);
	cr_assert(!r.timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_str_eq(h.why_client, "", "client: %s; console:\n%s\nstderr:\n%s", h.why_client,
			 r.out, r.err);
	cr_assert_str_eq(h.why_server, "", "server: %s; console:\n%s", h.why_server, r.out);
	cr_assert(harness_passed(r.out, "virtio-vsock"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-vsock", "cid", val, sizeof(val)));
	cr_assert_str_eq(val, "42");
	cr_assert(harness_result_field(r.out, "virtio-vsock", "echoed", val, sizeof(val)));
	cr_assert_eq(atoi(val), ECHO_BYTES);
	cr_assert(harness_result_field(r.out, "virtio-vsock", "refused", val, sizeof(val)));
	cr_assert_geq(atoi(val), 1, "the guest must have refused port 999");
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	cr_assert_eq(access(h.uds, F_OK), -1, "the VMM must remove its socket");
	harness_free(&r);
	host_down(&h);
}

/* Without a listener on <uds>_5678 the guest's connect is refused: it says so. */
Test(vsock, guest_connect_refused)
{
	struct host h;
	char vsock_arg[192], val[32];
	const char *argv[] = {"vmm",
			      "--kernel",
			      NULL,
			      "--cmdline",
			      "test=virtio-vsock vsock_connect=4444",
			      "--memory",
			      "128M",
			      "--vsock",
			      vsock_arg,
			      NULL};
	struct vmm_result r;

	harness_require_kvm();
	argv[2] = harness_guest("elf");
	host_up(&h);
	snprintf(vsock_arg, sizeof(vsock_arg), "cid=7,uds=%s", h.uds);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, &r);
	cr_assert(!r.timed_out, "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-vsock", "reason", val, sizeof(val)),
		  "console:\n%s", r.out);
	cr_assert_str_eq(val, "connect-refused");
	cr_assert(harness_result_field(r.out, "virtio-vsock", "cid", val, sizeof(val)));
	cr_assert_str_eq(val, "7");
	harness_free(&r);
	host_down(&h);
}

static void expect_error(const char *const *argv, int status, const char *message)
{
	struct vmm_result r;

	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 20000, .run_as_uid = -1}, &r);
	cr_assert(!r.timed_out);
	cr_assert_eq(r.status, status, "status %d, want %d; stderr:\n%s", r.status, status, r.err);
	cr_assert(strstr(r.err, message), "stderr lacks '%s':\n%s", message, r.err);
	cr_assert_eq(harness_count(r.err, "\n"), 1, "want exactly one line, got:\n%s", r.err);
	harness_free(&r);
}

Test(vsock, bad_options_are_one_line_errors)
{
	const char *cid[] = {
		"vmm", "--kernel", harness_guest("elf"), "--vsock", "cid=2,uds=/tmp/x.sock", NULL};
	const char *nouds[] = {"vmm", "--kernel", harness_guest("elf"), "--vsock", "cid=5", NULL};
	const char *dir[] = {"vmm",
			     "--kernel",
			     harness_guest("elf"),
			     "--vsock",
			     "cid=5,uds=/nonexistent/dir/v.sock",
			     NULL};

	expect_error(cid, 2, "--vsock");
	expect_error(nouds, 2, "uds=");
	harness_require_kvm();
	/* a path that cannot be bound fails at start, naming it */
	expect_error(dir, 1, "/nonexistent/dir/v.sock");
}
