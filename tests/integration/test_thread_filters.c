// SPDX-License-Identifier: MIT
/*
 * Console input threads (bunshin-con) stack a filter of their own on the
 * process-wide one, as vCPU and I/O threads do: one more Seccomp_filters,
 * input still flows (the guest echoes what it is sent), and a call only
 * that filter forbids ends the VMM with a line naming it.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define MAX_THREADS 16

struct threads {
	int n, main;
	char name[MAX_THREADS][32];
	int filters[MAX_THREADS];
};

static void sample(void *ctx, int i, int pid)
{
	struct threads *t = ctx;
	char path[96], val[32];
	struct dirent *e;
	DIR *d;

	(void)i;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	while (d && t->n < MAX_THREADS && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", pid, e->d_name);
		harness_status_field(path, "Name", t->name[t->n], sizeof(t->name[0]));
		harness_status_field(path, "Seccomp_filters", val, sizeof(val));
		t->filters[t->n] = val[0] ? atoi(val) : -1;
		if (atoi(e->d_name) == pid)
			t->main = t->n;
		t->n++;
	}
	if (d)
		closedir(d);
}

Test(thread_filters, console_threads_have_their_own)
{
	static const struct vmm_step steps[] = {{"name=serial-echo result=ready", "hello\nquit\n"}};
	char sock[64];
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("elf"),
			      "--cmdline",
			      "test=serial-echo",
			      "--console-virtio",
			      sock,
			      NULL};
	struct threads t = {0};
	struct vmm_result r;
	int consoles = 0;

	harness_require_kvm();
	snprintf(sock, sizeof(sock), "unix:/tmp/bunshin-tf-%d.sock", (int)getpid());
	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = 1,
				      .timeout_ms = 60000,
				      .run_as_uid = -1,
				      .on_step = sample,
				      .ctx = &t},
		    &r);
	unlink(sock + 5);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	/* input reached the guest through the filtered thread */
	cr_assert(harness_passed(r.out, "serial-echo"), "stdout:\n%s", r.out);
	if (t.n && t.filters[t.main] < 0)
		cr_skip_test("no Seccomp_filters in /proc/PID/status (kernel older than 5.9)");
	for (int i = 0; i < t.n; i++) {
		if (strcmp(t.name[i], "bunshin-con"))
			continue;
		consoles++;
		cr_assert_eq(t.filters[i], t.filters[t.main] + 1,
			     "bunshin-con: %d filters, main %d", t.filters[i], t.filters[t.main]);
	}
	/* the serial console on stdio and the virtio console's socket */
	cr_assert_eq(consoles, 2, "%d console threads", consoles);
	harness_free(&r);
}

Test(thread_filters, console_filter_kills_with_a_reason)
{
	struct vmm_result r;

	harness_run_seccomp_selftest("console", &r);
	cr_assert(!r.timed_out);
	cr_assert_eq(r.status, 1, "status %d; stderr:\n%s", r.status, r.err);
	cr_assert(strstr(r.err,
			 "bunshin-vmm: seccomp: forbidden system call openat (257) on thread "
			 "bunshin-con ("),
		  "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, ", console thread filter); exiting"), "stderr:\n%s", r.err);
	cr_assert_str_eq(r.out, "", "the guest ran:\n%s", r.out);
	harness_free(&r);
}

/* ---- the API thread: its filter comes with its first connection ---- */

struct api_ctx {
	char sock[64];
	struct threads t;
	char reply[512];
};

static void api_request(void *ctx, int i, int pid)
{
	static const char req[] = "GET /vm HTTP/1.0\r\nHost: vm\r\n\r\n";
	struct api_ctx *a = ctx;
	size_t len = 0;
	int fd = harness_unix_connect(a->sock, 5000);

	if (fd >= 0) {
		/* the VMM may die of its filter first: no SIGPIPE for the test */
		if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req) - 1)
			harness_read_until(fd, a->reply, sizeof(a->reply), &len, "}", 5000);
		close(fd);
	}
	sample(&a->t, i, pid);
}

static void run_api(struct api_ctx *a, struct vmm_result *r)
{
	static const struct vmm_step steps[] = {{"name=serial-echo result=ready", "quit\n"}};
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("elf"),
			      "--cmdline",
			      "test=serial-echo",
			      "--api-sock",
			      a->sock,
			      NULL};

	harness_require_kvm();
	snprintf(a->sock, sizeof(a->sock), "/tmp/bunshin-tf-api-%d.sock", (int)getpid());
	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = 1,
				      .timeout_ms = 60000,
				      .run_as_uid = -1,
				      .on_step = api_request,
				      .ctx = a},
		    r);
	unlink(a->sock);
	cr_assert(!r->timed_out, "stderr:\n%s", r->err);
}

Test(thread_filters, api_thread_has_its_own_once_it_serves)
{
	struct api_ctx a = {0};
	struct vmm_result r;
	int api = 0;

	run_api(&a, &r);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(strstr(a.reply, "\"state\""), "GET /vm:\n%s", a.reply);
	if (a.t.n && a.t.filters[a.t.main] < 0)
		cr_skip_test("no Seccomp_filters in /proc/PID/status (kernel older than 5.9)");
	for (int i = 0; i < a.t.n; i++) {
		if (strncmp(a.t.name[i], "MHD", 3))
			continue;
		api++;
		cr_assert_eq(a.t.filters[i], a.t.filters[a.t.main] + 1, "%s: %d filters, main %d",
			     a.t.name[i], a.t.filters[i], a.t.filters[a.t.main]);
	}
	cr_assert_eq(api, 1, "%d API threads", api);
	harness_free(&r);
}

Test(thread_filters, api_filter_kills_with_a_reason)
{
	struct api_ctx a = {0};
	struct vmm_result r;

#ifndef BUNSHIN_TEST_HOOKS
	cr_skip_test("built without test hooks (-Dtests=false): no forbidden call on demand");
#endif
	setenv("BUNSHIN_SECCOMP_SELFTEST", "api", 1);
	run_api(&a, &r);
	unsetenv("BUNSHIN_SECCOMP_SELFTEST");
	cr_assert_eq(r.status, 1, "status %d; stderr:\n%s", r.status, r.err);
	cr_assert(strstr(r.err, "bunshin-vmm: seccomp: forbidden system call memfd_create (319) on "
				"thread MHD"),
		  "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, ", API thread filter); exiting"), "stderr:\n%s", r.err);
	/* nothing was answered: the filter came before the request was read */
	cr_assert(!strstr(a.reply, "\"state\""), "GET /vm was answered:\n%s", a.reply);
	harness_free(&r);
}
