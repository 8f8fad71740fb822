// SPDX-License-Identifier: MIT
/* The virtio console (hvc0) end to end: an interactive unix socket, and a file backend. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "../../src/common/util.h"

struct client {
	const char *path;
	char got[8192];
	size_t len;
	bool ok;
};

static bool send_str(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	int fd = harness_unix_connect(c->path, 10000);

	if (fd < 0)
		return NULL;
	c->ok = harness_read_until(fd, c->got, sizeof(c->got), &c->len, "hvc0 ready\n", 30000) &&
		send_str(fd, "hello hvc\n") &&
		harness_read_until(fd, c->got, sizeof(c->got), &c->len, "ECHO: HELLO HVC\n",
				   30000) &&
		send_str(fd, "second line\n") &&
		harness_read_until(fd, c->got, sizeof(c->got), &c->len, "ECHO: SECOND LINE\n",
				   30000) &&
		send_str(fd, "quit\n");
	/* Stay until the VMM closes the socket, so nothing is cut short. */
	while (c->ok && harness_read_until(fd, c->got, sizeof(c->got), &c->len, "\x01never", 30000))
		;
	close(fd);
	return NULL;
}

Test(vconsole, unix_socket_echoes_lines)
{
	char path[108], spec[128], val[32];
	struct client c = {.path = path};
	struct vmm_result r;
	pthread_t t;

	harness_require_kvm();
	snprintf(path, sizeof(path), "/tmp/bunshin-hvc0-%d.sock", getpid());
	snprintf(spec, sizeof(spec), "unix:%s", path);
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("elf"),
			      "--cmdline",
			      "test=virtio-console",
			      "--console-virtio",
			      spec,
			      NULL};
	pthread_create(&t, NULL, client_main, &c);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 90000, .run_as_uid = -1}, &r);
	pthread_join(t, NULL);
	cr_assert(c.ok, "socket client saw:\n%s\nstdout:\n%s\nstderr:\n%s", c.got, r.out, r.err);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "virtio-console"), "stdout:\n%s", r.out);
	cr_assert(harness_result_field(r.out, "virtio-console", "lines", val, sizeof(val)));
	cr_assert_str_eq(val, "2");
	cr_assert(harness_result_field(r.out, "virtio-console", "cols", val, sizeof(val)));
	cr_assert_str_eq(val, "80");
	unlink(path);
	harness_free(&r);
}

/* Without input the guest only greets and then gives up; the greeting lands in the file. */
Test(vconsole, file_backend_gets_hvc0_output)
{
	char path[] = "/tmp/bunshin-hvc0-XXXXXX";
	char spec[64];
	int fd = mkstemp(path);
	struct vmm_result r;
	uint8_t *data;
	size_t len;

	harness_require_kvm();
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s", path);
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("bzImage"),
			      "--cmdline",
			      "test=virtio-console vcon_timeout_s=2",
			      "--console-virtio",
			      spec,
			      NULL};
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, &r);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	cr_assert(strstr(r.out, "name=virtio-console result=fail reason=timeout"), "stdout:\n%s",
		  r.out);
	cr_assert_eq(read_file(path, 1 << 20, &data, &len), 0);
	data = realloc(data, len + 1);
	data[len] = '\0';
	cr_assert(strstr((char *)data, "hvc0 ready\n"), "file holds:\n%s", data);
	cr_assert_eq(harness_count(r.out, "hvc0 ready"), 0, "hvc0 output must not reach COM1");
	free(data);
	unlink(path);
	harness_free(&r);
}
