// SPDX-License-Identifier: MIT
/*
 * Serial input typed all at once (test=serial-echo on --serial unix:):
 * 64 KiB of lines in one write must all come back echoed, in order. The
 * guest's receive interrupt is an edge on ISA IRQ4 and the UART holds its
 * line up while it has data, so a guest handler that leaves data behind
 * never hears from the UART again; this is the test that it does not.
 * The echo is read from the console's log (unix:S,log=F): the socket
 * client is only a viewer, and output it is too slow to take is dropped.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define LINE_LEN   64 /* with its newline */
#define TOTAL	   (64 * 1024)
#define NLINES	   (TOTAL / LINE_LEN)
#define ECHO_MAX   (NLINES * (LINE_LEN + 16) + 4096)
#define TIMEOUT_MS 120000

static char dir[64];

static void setup(void)
{
	harness_dir_setup();
	snprintf(dir, sizeof(dir), "%s", harness_dir);
}

TestSuite(serial_input, .init = setup, .fini = harness_dir_teardown);

/* Line i: its number and a pattern that differs per line, 63 characters and '\n'. */
static void make_line(char *p, int i)
{
	int n = snprintf(p, LINE_LEN, "line%05d-", i);

	for (int k = n; k < LINE_LEN - 1; k++)
		p[k] = (char)('a' + (i * 7 + k) % 26);
	p[LINE_LEN - 1] = '\n';
}

/* The whole log so far, NUL-terminated (at most ECHO_MAX bytes). */
static char *read_log(const char *path, char *buf)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, ECHO_MAX, f);
		fclose(f);
	}
	buf[n] = 0;
	return buf;
}

/*
 * Writes all of in while draining the socket, until the log holds the
 * last echo or the time is up; returns the log (NUL-terminated).
 */
static char *type_and_collect(int fd, const char *in, size_t len, const char *log, const char *last)
{
	char *out = calloc(1, ECHO_MAX + 1), sink[4096];
	size_t sent = 0;
	int waited = 0;

	cr_assert_not_null(out);
	/* Never block in a write while the echo waits to be read. */
	cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	while (waited < TIMEOUT_MS && !strstr(read_log(log, out), last)) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
		ssize_t n;

		if (poll(&p, 1, 100) == 0) {
			waited += 100;
			continue;
		}
		if ((p.revents & POLLOUT) && sent < len) {
			n = write(fd, in + sent, len - sent);
			cr_assert(n > 0 || errno == EAGAIN, "write: %s", strerror(errno));
			sent += n > 0 ? (size_t)n : 0;
		}
		if (p.revents & POLLIN) {
			n = read(fd, sink, sizeof(sink));
			cr_assert(n > 0 || errno == EAGAIN, "the console closed");
		}
	}
	cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
	cr_assert_eq(sent, len, "only %zu of %zu bytes were taken", sent, len);
	return out;
}

Test(serial_input, sixty_four_kib_at_once_all_echoed)
{
	char con[96], log[96], serial[200], last[LINE_LEN + 8], want[LINE_LEN + 8];
	struct harness_proc p;
	char *in = malloc(TOTAL), *out, *at;
	int fd;

	cr_assert_not_null(in);
	for (int i = 0; i < NLINES; i++)
		make_line(in + i * LINE_LEN, i);
	snprintf(con, sizeof(con), "%s/a.con", dir);
	snprintf(log, sizeof(log), "%s/a.log", dir);
	snprintf(serial, sizeof(serial), "unix:%s,log=%s", con, log);
	{
		const char *args[] = {"--kernel",  harness_guest("elf"),
				      "--cmdline", "test=serial-echo",
				      "--memory",  "64M",
				      "--serial",  serial,
				      NULL};

		harness_proc_start(&p, dir, "a", args);
	}
	fd = harness_unix_connect(con, 5000);
	cr_assert_geq(fd, 0);
	harness_wait_text(fd, "name=serial-echo result=ready", 10000);

	snprintf(last, sizeof(last), "ECHO: %.*s", LINE_LEN - 1, in + (NLINES - 1) * LINE_LEN);
	out = type_and_collect(fd, in, TOTAL, log, last);
	cr_assert(strstr(out, last), "the last line never came back; %zu bytes of echo, ends:\n%s",
		  strlen(out), strlen(out) > 512 ? out + strlen(out) - 512 : out);
	at = out;
	for (int i = 0; i < NLINES; i++) {
		snprintf(want, sizeof(want), "ECHO: %.*s", LINE_LEN - 1, in + i * LINE_LEN);
		at = strstr(at, want);
		cr_assert_not_null(at, "line %d missing or out of order", i);
		at += strlen(want);
	}
	cr_assert_eq(write(fd, "quit\n", 5), 5);
	harness_wait_text(fd, "name=serial-echo result=pass lines=1024", 20000);
	close(fd);
	cr_assert_eq(harness_proc_wait(&p, 20000), 0, "stderr:\n%s", harness_proc_stderr(&p));
	free(out);
	free(in);
}
