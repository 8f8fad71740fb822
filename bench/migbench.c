// SPDX-License-Identifier: MIT
/*
 * migbench: the measuring half of bench/migrate.sh (and of the smoke test
 * tests/integration/test_migbench.c). One live migration for one VMM:
 *
 *   migbench bunshin|qemu WORKDIR TIMEOUT_S -- SOURCE [ARG...] -- DEST [ARG...]
 *
 * Both command lines boot (or receive) the test guest with its serial port
 * on stdio, so each console is a pair of pipes. The helper adds the control
 * and migration sockets: bunshin: --api-sock WORKDIR/src.api on the source,
 * --incoming unix:WORKDIR/mig.sock on the destination; QEMU: -qmp
 * unix:WORKDIR/src.qmp on the source, -incoming unix:WORKDIR/mig.sock on
 * the destination.
 *
 *  1. Starts the destination, then the source; waits for the guest's
 *     "result=ready" line and lets it run 300 ms more.
 *  2. Migrates: bunshin PUT /vm/migrate, QEMU "migrate" over QMP (bandwidth
 *     cap lifted), then query-migrate every 2 ms until "completed". Timed
 *     from just before the request is written (wall_ms).
 *  3. Checks the guest runs on the destination: test=serial-echo must echo
 *     a line written to the destination's console (again every 2 ms until
 *     it does: QEMU drops input while it loads), test=mem-writer must
 *     print a progress line with no mismatch (resume_ms: from the end of
 *     step 2 to that).
 *
 * Prints one line: wall_ms, total_ms and downtime_ms (the VMM's own
 * figures: bunshin's reply, QEMU's total-time and downtime), bytes (sent),
 * resume_ms. Exit status 1 with a message on any failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MB_ARGS 96
#define MB_CON	65536

struct mb_vm {
	pid_t pid;
	int in, out;
	size_t len;
	char buf[MB_CON];
};

static struct mb_vm src = {.pid = -1}, dst = {.pid = -1};
static int timeout_s;

static int64_t mb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void mb_kill(struct mb_vm *v)
{
	if (v->pid <= 0)
		return;
	kill(v->pid, SIGKILL);
	waitpid(v->pid, NULL, 0);
	v->pid = -1;
}

static _Noreturn void mb_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("migbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	mb_kill(&src);
	mb_kill(&dst);
	exit(1);
}

static void mb_spawn(struct mb_vm *v, char **argv)
{
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		mb_die("pipe: %s", strerror(errno));
	v->pid = fork();
	if (v->pid < 0)
		mb_die("fork: %s", strerror(errno));
	if (v->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	v->in = in[1];
	v->out = out[0];
	v->len = 0;
	v->buf[0] = 0;
}

static void mb_write(int fd, const char *s);

/*
 * Reads the console until it holds want (counted from from on) or the
 * timeout; with resend, writes it to the console every 2 ms meanwhile
 * (QEMU drops console input that comes while its incoming state loads).
 */
static void mb_wait(struct mb_vm *v, const char *want, size_t from, const char *what,
		    const char *resend)
{
	int64_t end = mb_now_ns() + (int64_t)timeout_s * 1000000000;

	while (!strstr(v->buf + from, want)) {
		struct pollfd p = {.fd = v->out, .events = POLLIN};
		ssize_t n;

		if (mb_now_ns() > end)
			mb_die("%s: no '%s' in %d s; console:\n%s", what, want, timeout_s, v->buf);
		if (resend)
			mb_write(v->in, resend);
		if (poll(&p, 1, resend ? 2 : 100) <= 0)
			continue;
		if (v->len + 1 >= sizeof(v->buf)) { /* keep the tail */
			memmove(v->buf, v->buf + sizeof(v->buf) / 2, v->len - sizeof(v->buf) / 2);
			v->len -= sizeof(v->buf) / 2;
			from = 0;
		}
		n = read(v->out, v->buf + v->len, sizeof(v->buf) - 1 - v->len);
		if (n <= 0)
			mb_die("%s: the VMM exited; console:\n%s", what, v->buf);
		v->len += (size_t)n;
		v->buf[v->len] = 0;
	}
}

static int mb_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t end = mb_now_ns() + (int64_t)timeout_s * 1000000000;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	while (mb_now_ns() < end) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(2000);
	}
	mb_die("cannot connect to %s", path);
}

static void mb_write(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = write(fd, s, len);

		if (n <= 0)
			mb_die("write: %s", strerror(errno));
		s += n;
		len -= (size_t)n;
	}
}

/* A number after "key": in a JSON text, or -1. */
static double mb_num(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

struct mb_result {
	double total_ms, downtime_ms, bytes;
};

static void mb_bunshin(const char *dir, struct mb_result *r)
{
	char path[300], req[512], reply[4096];
	size_t len = 0;
	ssize_t n;
	int fd, status = 0;

	snprintf(path, sizeof(path), "%s/src.api", dir);
	fd = mb_connect(path);
	snprintf(path, sizeof(path), "{\"url\": \"unix:%s/mig.sock\"}", dir);
	snprintf(req, sizeof(req),
		 "PUT /vm/migrate HTTP/1.1\r\nHost: vmm\r\nConnection: close\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 strlen(path), path);
	mb_write(fd, req);
	while ((n = read(fd, reply + len, sizeof(reply) - 1 - len)) > 0)
		len += (size_t)n;
	reply[len] = 0;
	close(fd);
	sscanf(reply, "HTTP/1.1 %d", &status);
	if (status != 200)
		mb_die("bunshin: PUT /vm/migrate: %s", reply);
	r->total_ms = mb_num(reply, "total_ms");
	r->downtime_ms = mb_num(reply, "downtime_ms");
	r->bytes = mb_num(reply, "bytes");
}

/* Sends one QMP command, returns its reply line (events before it are skipped). */
static void mb_qmp(int fd, const char *cmd, char *line, size_t size)
{
	size_t len = 0;

	mb_write(fd, cmd);
	for (;;) {
		char *nl;
		ssize_t n = read(fd, line + len, size - 1 - len);

		if (n <= 0)
			mb_die("QMP: connection closed after %s", cmd);
		len += (size_t)n;
		line[len] = 0;
		while ((nl = strchr(line, '\n')) != NULL) {
			*nl = 0;
			if (strstr(line, "\"return\"") || strstr(line, "\"error\"")) {
				if (strstr(line, "\"error\""))
					mb_die("QMP: %s: %s", cmd, line);
				return;
			}
			len -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, len + 1);
		}
		if (len + 1 >= size)
			len = 0;
	}
}

static void mb_qemu(const char *dir, struct mb_result *r)
{
	char path[300], cmd[512], line[16384];
	int fd;

	snprintf(path, sizeof(path), "%s/src.qmp", dir);
	fd = mb_connect(path);
	mb_qmp(fd, "{\"execute\": \"qmp_capabilities\"}\n", line, sizeof(line));
	mb_qmp(fd,
	       "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
	       "{\"max-bandwidth\": 1099511627776}}\n",
	       line, sizeof(line));
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:%s/mig.sock\"}}\n",
		 dir);
	mb_qmp(fd, cmd, line, sizeof(line));
	for (;;) {
		mb_qmp(fd, "{\"execute\": \"query-migrate\"}\n", line, sizeof(line));
		if (strstr(line, "\"completed\""))
			break;
		if (strstr(line, "\"failed\"") || strstr(line, "\"cancelled\""))
			mb_die("QEMU: migration failed: %s", line);
		usleep(2000);
	}
	r->total_ms = mb_num(line, "total-time");
	r->downtime_ms = mb_num(line, "downtime");
	r->bytes = mb_num(line, "total");
	if (strstr(line, "\"transferred\""))
		r->bytes = mb_num(line, "transferred");
	close(fd);
}

/* argv[from..] up to "--" or the end, plus extra, NULL-terminated. */
static int mb_args(char **argv, int argc, int from, char **out, const char *const *extra)
{
	int n = 0, i = from;

	for (; i < argc && strcmp(argv[i], "--") && n < MB_ARGS - 8; i++)
		out[n++] = argv[i];
	for (; *extra; extra++)
		out[n++] = (char *)*extra;
	out[n] = NULL;
	return i;
}

int main(int argc, char **argv)
{
	char *sargv[MB_ARGS], *dargv[MB_ARGS], api[300], qmp[320], mig[300], in[320];
	struct mb_result r = {0};
	bool bunshin, writer;
	int64_t t0, t1, t2;
	size_t mark;
	int i;

	if (argc < 7 || strcmp(argv[4], "--") ||
	    (strcmp(argv[1], "bunshin") && strcmp(argv[1], "qemu"))) {
		fprintf(stderr,
			"usage: migbench bunshin|qemu WORKDIR TIMEOUT_S -- SOURCE... -- DEST...\n");
		return 2;
	}
	bunshin = !strcmp(argv[1], "bunshin");
	timeout_s = atoi(argv[3]);
	snprintf(api, sizeof(api), "%s/src.api", argv[2]);
	snprintf(qmp, sizeof(qmp), "unix:%s/src.qmp,server=on,wait=off", argv[2]);
	snprintf(mig, sizeof(mig), "%s/mig.sock", argv[2]);
	snprintf(in, sizeof(in), "unix:%s", mig);
	{
		const char *sx_b[] = {"--api-sock", api, NULL}, *sx_q[] = {"-qmp", qmp, NULL};
		const char *dx_b[] = {"--incoming", in, NULL}, *dx_q[] = {"-incoming", in, NULL};

		i = mb_args(argv, argc, 5, sargv, bunshin ? sx_b : sx_q);
		if (i >= argc)
			mb_die("no destination command line after the second --");
		mb_args(argv, argc, i + 1, dargv, bunshin ? dx_b : dx_q);
	}
	signal(SIGPIPE, SIG_IGN);
	mb_spawn(&dst, dargv);
	if (!bunshin) /* QEMU makes its socket as it starts; a connection would be its one source */
		for (int64_t end = mb_now_ns() + (int64_t)timeout_s * 1000000000; access(mig, F_OK);
		     usleep(2000))
			if (mb_now_ns() > end)
				mb_die("QEMU never listened on %s", mig);
	mb_spawn(&src, sargv);
	mb_wait(&src, "result=ready", 0, "source", NULL);
	writer = strstr(src.buf, "name=mem-writer") != NULL;
	usleep(300 * 1000);
	t0 = mb_now_ns();
	if (bunshin)
		mb_bunshin(argv[2], &r);
	else
		mb_qemu(argv[2], &r);
	t1 = mb_now_ns();
	mark = dst.len;
	if (writer)
		mb_wait(&dst, "BUNSHIN-INFO mem-writer", mark, "destination", NULL);
	else
		mb_wait(&dst, "ECHO: p", mark, "destination", "p\n");
	t2 = mb_now_ns();
	if (strstr(dst.buf, "mismatch page="))
		mb_die("the guest found lost pages on the destination:\n%s", dst.buf);
	printf("wall_ms=%.3f total_ms=%.3f downtime_ms=%.3f bytes=%.0f resume_ms=%.3f\n",
	       (double)(t1 - t0) / 1e6, r.total_ms, r.downtime_ms, r.bytes,
	       (double)(t2 - t1) / 1e6);
	mb_kill(&src);
	mb_kill(&dst);
	return 0;
}
