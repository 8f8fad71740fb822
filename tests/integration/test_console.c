// SPDX-License-Identifier: MIT
/* The serial console's backends, end to end: file output and an interactive unix socket. */
#include <criterion/criterion.h>
#include <errno.h>
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
#include "../../src/common/util.h"

Test(console, file_backend_gets_the_console)
{
	char path[] = "/tmp/bunshin-console-XXXXXX";
	char spec[64];
	int fd = mkstemp(path);
	struct vmm_result r;
	uint8_t *data;
	size_t len;

	harness_require_kvm();
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s", path);
	const char *argv[] = {
		"vmm", "--kernel", harness_guest("elf"), "--cmdline", "test=poweroff", "--serial",
		spec,  NULL};
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1}, &r);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	cr_assert_str_eq(r.out, "", "with a file backend nothing goes to stdout");
	cr_assert_eq(read_file(path, 1 << 20, &data, &len), 0);
	data = realloc(data, len + 1);
	data[len] = '\0';
	cr_assert(harness_passed((char *)data, "poweroff"), "file holds:\n%s", data);
	free(data);
	unlink(path);
	harness_free(&r);
}

struct client {
	const char *path;
	char got[4096];
	size_t len;
	bool ok;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	int fd = harness_unix_connect(c->path, 5000);

	if (fd < 0)
		return NULL;
	c->ok = harness_read_until(fd, c->got, sizeof(c->got), &c->len, "result=ready", 10000) &&
		write(fd, "over the socket\n", 16) == 16 &&
		harness_read_until(fd, c->got, sizeof(c->got), &c->len, "ECHO: over the socket",
				   10000) &&
		write(fd, "quit\n", 5) == 5 &&
		harness_read_until(fd, c->got, sizeof(c->got), &c->len,
				   "name=serial-echo result=pass", 10000);
	close(fd);
	return NULL;
}

Test(console, unix_socket_backend_is_interactive)
{
	char path[108], spec[128];
	struct client c = {.path = path};
	struct vmm_result r;
	pthread_t t;

	harness_require_kvm();
	snprintf(path, sizeof(path), "/tmp/bunshin-console-%d.sock", getpid());
	snprintf(spec, sizeof(spec), "unix:%s", path);
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("bzImage"),
			      "--cmdline",
			      "test=serial-echo",
			      "--serial",
			      spec,
			      NULL};
	pthread_create(&t, NULL, client_main, &c);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1}, &r);
	pthread_join(t, NULL);
	cr_assert(c.ok, "socket client saw:\n%s\nstderr:\n%s", c.got, r.err);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	unlink(path);
	harness_free(&r);
}
