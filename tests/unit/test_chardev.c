// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/vmm/devices/chardev.h"

/* Collects what a chardev's input thread hands over. */
struct sink {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t buf[256];
	size_t len;
	int quits;
};

static struct sink sink = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void sink_fn(void *ctx, const uint8_t *buf, size_t len)
{
	struct sink *s = ctx;

	pthread_mutex_lock(&s->lock);
	if (len > sizeof(s->buf) - s->len)
		len = sizeof(s->buf) - s->len;
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void quit_fn(void *ctx)
{
	struct sink *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->quits++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Waits up to 2 s for at least n bytes; returns how many arrived. */
static size_t sink_wait(struct sink *s, size_t n)
{
	struct timespec ts;
	size_t len;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	pthread_mutex_lock(&s->lock);
	while (s->len < n && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
		;
	len = s->len;
	pthread_mutex_unlock(&s->lock);
	return len;
}

static char tmpdir[64];

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/bunshin-chardev-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(chardev, .init = make_tmpdir, .fini = remove_tmpdir);

Test(chardev, bad_specs_are_explained)
{
	struct chardev *c = NULL;
	struct error err;
	char spec[256];

	error_clear(&err);
	cr_assert_eq(chardev_open("foo", &c, &err), -EINVAL);
	cr_assert_str_eq(err.msg, "unknown backend 'foo' (expected stdio, file:PATH or unix:PATH)");
	cr_assert_null(c);
	/* Callers add what the chardev is for, which is the message users see. */
	error_wrap(&err, "serial");
	cr_assert_str_eq(err.msg,
			 "serial: unknown backend 'foo' (expected stdio, file:PATH or unix:PATH)");

	cr_assert_eq(chardev_open("", &c, &err), -EINVAL);
	cr_assert_eq(chardev_open("file:", &c, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "file:PATH"));
	cr_assert_eq(chardev_open("unix:", &c, &err), -EINVAL);
	cr_assert_eq(chardev_open("File:/tmp/x", &c, &err), -EINVAL);

	cr_assert_eq(chardev_open("file:/nonexistent-dir/log", &c, &err), -ENOENT);
	cr_assert_not_null(strstr(err.msg, "/nonexistent-dir/log"), "%s", err.msg);

	memset(spec, 'a', sizeof(spec) - 1);
	spec[sizeof(spec) - 1] = '\0';
	memcpy(spec, "unix:/", 6);
	cr_assert_eq(chardev_open(spec, &c, &err), -ENAMETOOLONG);
	cr_assert_null(c);
}

Test(chardev, file_backend_appends)
{
	char path[128], spec[160], buf[64] = {0};
	struct chardev *c;
	struct error err;
	FILE *f;

	snprintf(path, sizeof(path), "%s/console.log", tmpdir);
	f = fopen(path, "w");
	fputs("old\n", f);
	fclose(f);
	snprintf(spec, sizeof(spec), "file:%s", path);
	cr_assert_eq(chardev_open(spec, &c, &err), 0, "%s", err.msg);
	chardev_write(c, (const uint8_t *)"hello ", 6);
	chardev_write(c, (const uint8_t *)"world\n", 6);
	/* Output only: starting input is a no-op. */
	cr_assert_eq(chardev_start_input(c, sink_fn, &sink, &err), 0);
	cr_assert_eq(chardev_dropped(c), 0);
	chardev_close(c);

	f = fopen(path, "r");
	cr_assert_eq(fread(buf, 1, sizeof(buf) - 1, f), 16);
	fclose(f);
	cr_assert_str_eq(buf, "old\nhello world\n");
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	strcpy(sa.sun_path, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	return fd;
}

/* Reads exactly n bytes or fails after 2 s. */
static void read_exact(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		cr_assert_eq(poll(&p, 1, 2000), 1, "timed out after %zu of %zu bytes", got, n);
		r = read(fd, (char *)buf + got, n - got);
		cr_assert_gt(r, 0);
		got += (size_t)r;
	}
}

static struct chardev *open_unix(char *path, size_t size)
{
	struct chardev *c;
	struct error err;
	char spec[160];

	snprintf(path, size, "%s/console.sock", tmpdir);
	snprintf(spec, sizeof(spec), "unix:%s", path);
	cr_assert_eq(chardev_open(spec, &c, &err), 0, "%s", err.msg);
	cr_assert_eq(chardev_start_input(c, sink_fn, &sink, &err), 0, "%s", err.msg);
	return c;
}

Test(chardev, unix_backend_with_client)
{
	char path[128], buf[8];
	struct chardev *c = open_unix(path, sizeof(path));
	struct stat st;
	int fd;

	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	/* Nobody listening yet: output is dropped and counted. */
	chardev_write(c, (const uint8_t *)"lost", 4);
	cr_assert_eq(chardev_dropped(c), 4);

	fd = unix_connect(path);
	cr_assert_eq(write(fd, "ping", 4), 4);
	cr_assert_eq(sink_wait(&sink, 4), 4);
	cr_assert_eq(memcmp(sink.buf, "ping", 4), 0);

	/* The input arrived, so the client was accepted: output reaches it. */
	chardev_write(c, (const uint8_t *)"pong", 4);
	read_exact(fd, buf, 4);
	cr_assert_eq(memcmp(buf, "pong", 4), 0);
	cr_assert_eq(chardev_dropped(c), 4);

	close(fd);
	chardev_close(c);
	cr_assert_neq(stat(path, &st), 0, "close removes the socket file");
}

Test(chardev, unix_one_client_at_a_time)
{
	char path[128], buf[8];
	struct chardev *c = open_unix(path, sizeof(path));
	int first, second, third;

	first = unix_connect(path);
	cr_assert_eq(write(first, "1", 1), 1);
	cr_assert_eq(sink_wait(&sink, 1), 1);

	/* A second client is turned away (EOF) while the first stays. */
	second = unix_connect(path);
	{
		struct pollfd p = {.fd = second, .events = POLLIN};

		cr_assert_eq(poll(&p, 1, 2000), 1);
		cr_assert_eq(read(second, buf, sizeof(buf)), 0);
	}
	close(second);

	/* Once the first leaves, a new client gets the console. */
	close(first);
	usleep(50000);
	third = -1;
	for (int tries = 0; tries < 200 && sink.len < 2; tries++) {
		if (third >= 0)
			close(third);
		usleep(10000);
		third = unix_connect(path);
		if (write(third, "3", 1) != 1)
			continue;
		sink_wait(&sink, 2);
	}
	cr_assert_eq(sink.len, 2);
	cr_assert_eq(sink.buf[1], '3');
	chardev_write(c, (const uint8_t *)"ok", 2);
	read_exact(third, buf, 2);
	cr_assert_eq(memcmp(buf, "ok", 2), 0);
	close(third);
	chardev_close(c);
}

Test(chardev, unix_stale_live_and_foreign_paths)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[128], spec[160];
	struct chardev *c, *c2;
	struct error err;
	int fd;

	/* A socket file whose owner died is replaced. */
	snprintf(path, sizeof(path), "%s/stale.sock", tmpdir);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	snprintf(spec, sizeof(spec), "unix:%s", path);
	cr_assert_eq(chardev_open(spec, &c, &err), 0, "%s", err.msg);

	/* A live one (this chardev listens on it) is not stolen. */
	cr_assert_eq(chardev_open(spec, &c2, &err), -EADDRINUSE);
	cr_assert_not_null(strstr(err.msg, "in use"), "%s", err.msg);
	chardev_close(c);

	/* Nor is a file that is not a socket deleted. */
	snprintf(path, sizeof(path), "%s/regular", tmpdir);
	fclose(fopen(path, "w"));
	snprintf(spec, sizeof(spec), "unix:%s", path);
	cr_assert_eq(chardev_open(spec, &c, &err), -EEXIST);
	cr_assert_eq(access(path, F_OK), 0);
}

Test(chardev, close_joins_idle_input_thread)
{
	char path[128];
	struct chardev *c = open_unix(path, sizeof(path));
	struct error err;
	int fd = unix_connect(path);

	cr_assert_eq(chardev_start_input(c, sink_fn, &sink, &err), -EBUSY);
	chardev_close(c); /* must return although the client is still connected */
	close(fd);
}

/*
 * stdio: the test process's stdin and stdout are replaced by pipes (each
 * Criterion test runs in its own process, so nothing else is disturbed).
 */
struct stdio_pipes {
	int in_w;  /* what "the user types" */
	int out_r; /* what the guest printed */
};

static struct stdio_pipes redirect_stdio(void)
{
	int in[2], out[2];

	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(out), 0);
	cr_assert_geq(dup2(in[0], STDIN_FILENO), 0);
	cr_assert_geq(dup2(out[1], STDOUT_FILENO), 0);
	close(in[0]);
	close(out[1]);
	return (struct stdio_pipes){.in_w = in[1], .out_r = out[0]};
}

Test(chardev, stdio_input_output_and_escape)
{
	struct stdio_pipes p = redirect_stdio();
	struct chardev *c, *c2;
	struct error err;
	char buf[8];

	cr_assert_eq(chardev_open("stdio", &c, &err), 0, "%s", err.msg);
	cr_assert_eq(chardev_open("stdio", &c2, &err), -EBUSY, "one console owns the terminal");
	chardev_set_quit_handler(c, quit_fn, &sink);
	cr_assert_eq(chardev_start_input(c, sink_fn, &sink, &err), 0);

	chardev_write(c, (const uint8_t *)"boot", 4);
	read_exact(p.out_r, buf, 4);
	cr_assert_eq(memcmp(buf, "boot", 4), 0);

	/* Ctrl-A Ctrl-A is one Ctrl-A, Ctrl-A b passes both, Ctrl-A x quits. */
	cr_assert_eq(write(p.in_w, "a\x01\x01", 3), 3);
	cr_assert_eq(sink_wait(&sink, 2), 2);
	cr_assert_eq(write(p.in_w, "\x01", 1), 1);
	cr_assert_eq(write(p.in_w, "b\x01x", 3), 3);
	cr_assert_eq(sink_wait(&sink, 4), 4);
	pthread_mutex_lock(&sink.lock);
	while (!sink.quits)
		pthread_cond_wait(&sink.cond, &sink.lock);
	pthread_mutex_unlock(&sink.lock);
	cr_assert_eq(memcmp(sink.buf, "a\001\001b", 4), 0);
	cr_assert_eq(sink.quits, 1);

	/* EOF on stdin does not end the thread early or break close. */
	close(p.in_w);
	usleep(10000);
	chardev_close(c);
	/* The terminal is free again. */
	cr_assert_eq(chardev_open("stdio", &c2, &err), 0, "%s", err.msg);
	chardev_close(c2);
	close(p.out_r);
}

Test(chardev, stdio_output_never_stalls)
{
	struct stdio_pipes p = redirect_stdio();
	static uint8_t big[256 * 1024];
	struct timespec t0, t1;
	struct chardev *c;
	struct error err;
	double secs;

	cr_assert_eq(chardev_open("stdio", &c, &err), 0, "%s", err.msg);
	/* Nobody reads the pipe: it fills, and then bytes are dropped, not waited on. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	chardev_write(c, big, sizeof(big));
	for (int i = 0; i < 1000; i++)
		chardev_write(c, big, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert_lt(secs, 1.0, "writes took %.3f s", secs);
	cr_assert_gt(chardev_dropped(c), 1000);
	chardev_close(c);
	close(p.in_w);
	close(p.out_r);
}

Test(chardev, stdout_reader_gone_is_not_fatal)
{
	struct stdio_pipes p = redirect_stdio();
	struct chardev *c;
	struct error err;

	cr_assert_eq(chardev_open("stdio", &c, &err), 0, "%s", err.msg);
	close(p.out_r);
	chardev_write(c, (const uint8_t *)"x", 1); /* EPIPE, and no SIGPIPE death */
	cr_assert_eq(chardev_dropped(c), 1);
	chardev_close(c);
	close(p.in_w);
}

static size_t file_size(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	return (size_t)st.st_size;
}

Test(chardev, unix_log_keeps_everything)
{
	char path[128], log[128], spec[300], buf[8];
	struct chardev *c;
	struct error err;
	uint8_t chunk[4096];
	struct timespec t0, t1;
	int fd;

	snprintf(path, sizeof(path), "%s/console.sock", tmpdir);
	snprintf(log, sizeof(log), "%s/console.log", tmpdir);
	snprintf(spec, sizeof(spec), "unix:%s,log=%s", path, log);
	cr_assert_eq(chardev_open(spec, &c, &err), 0, "%s", err.msg);
	cr_assert_eq(chardev_start_input(c, sink_fn, &sink, &err), 0, "%s", err.msg);

	/* No client: the log has it, and nothing counts as dropped. */
	chardev_write(c, (const uint8_t *)"boot", 4);
	cr_assert_eq(file_size(log), 4);
	cr_assert_eq(chardev_dropped(c), 0);

	fd = unix_connect(path);
	cr_assert_eq(write(fd, "in", 2), 2);
	cr_assert_eq(sink_wait(&sink, 2), 2);
	chardev_write(c, (const uint8_t *)"both", 4);
	read_exact(fd, buf, 4);
	cr_assert_eq(memcmp(buf, "both", 4), 0);
	cr_assert_eq(file_size(log), 8);

	/* A client that never reads: it loses output, the log and the writer do not wait. */
	memset(chunk, 'x', sizeof(chunk));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1024; i++)
		chardev_write(c, chunk, sizeof(chunk));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 3, "writes waited for the stuck client");
	cr_assert_eq(file_size(log), 8 + 1024 * sizeof(chunk));
	cr_assert_gt(chardev_dropped(c), 0);
	close(fd);
	chardev_close(c);
}

Test(chardev, unix_log_bad_specs)
{
	struct chardev *c = NULL;
	struct error err;
	char spec[300];

	snprintf(spec, sizeof(spec), "unix:%s/s.sock,log=", tmpdir);
	cr_assert_eq(chardev_open(spec, &c, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "log="), "%s", err.msg);
	cr_assert_null(c);
	snprintf(spec, sizeof(spec), "unix:%s/s.sock,log=/nonexistent-dir/log", tmpdir);
	cr_assert_eq(chardev_open(spec, &c, &err), -ENOENT);
	cr_assert_not_null(strstr(err.msg, "/nonexistent-dir/log"), "%s", err.msg);
	cr_assert_null(c);
	snprintf(spec, sizeof(spec), "unix:,log=%s/log", tmpdir);
	cr_assert_eq(chardev_open(spec, &c, &err), -EINVAL);
	cr_assert_null(c);
}
