// SPDX-License-Identifier: MIT
/*
 * The seccomp sandbox: on by default, on every thread, and a forbidden
 * system call ends the VMM with a line saying which one, never silently.
 * (Every other integration test runs with it on too: it is the default.)
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define SELFTEST_ENV "BUNSHIN_SECCOMP_SELFTEST"

#define MAX_THREADS 16

struct proc_status {
	char seccomp[MAX_THREADS][16]; /* "Seccomp:" of the process's threads */
	char filters[MAX_THREADS][16]; /* "Seccomp_filters:": how many filters are stacked */
	char name[MAX_THREADS][32];    /* "Name:" */
	int main;		       /* the index of the main thread */
	int nthreads;
	char no_new_privs[16];
};

/* Once the guest is up: the process's and each thread's seccomp mode. */
static void sample(void *ctx, int i, int pid)
{
	struct proc_status *s = ctx;
	char path[96];
	struct dirent *e;
	DIR *d;

	(void)i;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	harness_status_field(path, "NoNewPrivs", s->no_new_privs, sizeof(s->no_new_privs));
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return;
	while (s->nthreads < MAX_THREADS && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", pid, e->d_name);
		harness_status_field(path, "Seccomp", s->seccomp[s->nthreads],
				     sizeof(s->seccomp[0]));
		harness_status_field(path, "Seccomp_filters", s->filters[s->nthreads],
				     sizeof(s->filters[0]));
		harness_status_field(path, "Name", s->name[s->nthreads], sizeof(s->name[0]));
		if (atoi(e->d_name) == pid)
			s->main = s->nthreads;
		s->nthreads++;
	}
	closedir(d);
}

/* A guest that waits on its console, sampled, then told to quit. */
static void run_sampled(const char *mode, struct proc_status *s, struct vmm_result *r)
{
	static const struct vmm_step steps[] = {
		{"name=serial-echo result=ready", "quit\n"},
	};
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("elf"),
			      "--cmdline",
			      "test=serial-echo",
			      "--cpus",
			      "2",
			      "--rng", /* the I/O thread too */
			      mode ? "--seccomp" : NULL,
			      mode,
			      NULL};

	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = 1,
				      .timeout_ms = 60000,
				      .run_as_uid = -1,
				      .on_step = sample,
				      .ctx = s},
		    r);
}

Test(sandbox, on_by_default_on_every_thread)
{
	struct proc_status s = {0};
	struct vmm_result r;

	harness_require_kvm();
	run_sampled(NULL, &s, &r);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "serial-echo"), "stdout:\n%s", r.out);
	cr_assert_str_eq(s.no_new_privs, "1");
	/* main, 2 vCPUs, the I/O thread, the console input thread at least */
	cr_assert_geq(s.nthreads, 5, "%d threads", s.nthreads);
	for (int i = 0; i < s.nthreads; i++)
		cr_assert_str_eq(s.seccomp[i], "2", "thread %d: Seccomp: %s", i, s.seccomp[i]);
	harness_free(&r);
}

/*
 * vCPU threads and the I/O thread stack a narrower filter of their own on
 * the process-wide one: one more than the main thread has.
 */
Test(sandbox, vcpu_and_io_threads_have_their_own_filter)
{
	struct proc_status s = {0};
	struct vmm_result r;
	int vcpus = 0, io = 0, base;

	harness_require_kvm();
	run_sampled(NULL, &s, &r);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	if (!s.filters[s.main][0])
		cr_skip_test("no Seccomp_filters in /proc/PID/status (kernel older than 5.9)");
	base = atoi(s.filters[s.main]);
	cr_assert_geq(base, 1, "main thread: Seccomp_filters: %s", s.filters[s.main]);
	for (int i = 0; i < s.nthreads; i++) {
		bool vcpu = !strncmp(s.name[i], "vcpu", 4);
		bool iot = !strcmp(s.name[i], "bunshin-io");

		vcpus += vcpu;
		io += iot;
		/* KVM's own workers (kvm-nx-lpage-recovery) join the process, from a vCPU. */
		if (!strncmp(s.name[i], "kvm", 3))
			continue;
		/* console input threads (bunshin-con) have their own too: test_thread_filters.c */
		if (vcpu || iot || !strcmp(s.name[i], "bunshin-con"))
			cr_assert_eq(atoi(s.filters[i]), base + 1,
				     "%s: Seccomp_filters: %s (main: %d)", s.name[i], s.filters[i],
				     base);
		else
			cr_assert_eq(atoi(s.filters[i]), base, "%s: Seccomp_filters: %s (main: %d)",
				     s.name[i], s.filters[i], base);
	}
	cr_assert_eq(vcpus, 2, "%d vCPU threads", vcpus);
	cr_assert_eq(io, 1, "%d I/O threads", io);
	harness_free(&r);
}

Test(sandbox, off_installs_nothing)
{
	struct proc_status s = {0};
	struct vmm_result r;

	harness_require_kvm();
	run_sampled("off", &s, &r);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_geq(s.nthreads, 1);
	cr_assert_str_eq(s.seccomp[0], "0");
	harness_free(&r);
}

Test(sandbox, forbidden_syscall_kills_with_a_reason)
{
	struct vmm_result r;

	harness_run_seccomp_selftest("1", &r);
	cr_assert(!r.timed_out);
	cr_assert_eq(r.status, 1, "status %d; stderr:\n%s", r.status, r.err);
	cr_assert(strstr(r.err, "bunshin-vmm: seccomp: forbidden system call socket (41) on thread "
				"bunshin-vmm"),
		  "stderr:\n%s", r.err);
	/* The filter is in place before the first guest instruction. */
	cr_assert_str_eq(r.out, "", "the guest ran:\n%s", r.out);
	harness_free(&r);
}

/* Test builds only: the named thread makes a call its own filter forbids (openat). */
static void expect_thread_killed(const char *which, const char *thread, const char *filter)
{
	const char *argv[] = {"vmm",	   "--kernel",	harness_guest("elf"),
			      "--cmdline", "test=boot", "--rng", /* an I/O thread */
			      NULL};
	struct vmm_result r;

	harness_require_kvm();
#ifndef BUNSHIN_TEST_HOOKS
	cr_skip_test("built without test hooks (-Dtests=false): no forbidden call on demand");
#endif
	setenv(SELFTEST_ENV, which, 1);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1}, &r);
	unsetenv(SELFTEST_ENV);
	cr_assert(!r.timed_out);
	cr_assert_eq(r.status, 1, "status %d; stderr:\n%s", r.status, r.err);
	/* The process-wide filter allows openat (snapshots): only the thread's own refuses it. */
	cr_assert(strstr(r.err,
			 "bunshin-vmm: seccomp: forbidden system call openat (257) on thread "),
		  "stderr:\n%s", r.err);
	if (thread)
		cr_assert(strstr(r.err, thread), "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, filter), "stderr:\n%s", r.err);
	/* Both filters are in place before the first guest instruction. */
	cr_assert_str_eq(r.out, "", "the guest ran:\n%s", r.out);
	harness_free(&r);
}

Test(sandbox, io_thread_filter_kills_with_a_reason)
{
	expect_thread_killed("io", "on thread bunshin-io (", ", I/O thread filter); exiting");
}

/* The vCPU thread may not be named yet (its creator names it): the filter says which. */
Test(sandbox, vcpu_filter_kills_with_a_reason)
{
	expect_thread_killed("vcpu", NULL, ", vCPU filter); exiting");
}

Test(sandbox, log_mode_lets_the_call_through)
{
	const char *argv[] = {"vmm",	   "--kernel",	harness_guest("elf"),
			      "--cmdline", "test=boot", "--seccomp",
			      "log",	   NULL};
	struct vmm_result r;

	harness_require_kvm();
	setenv(SELFTEST_ENV, "1", 1);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1}, &r);
	unsetenv(SELFTEST_ENV);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	cr_assert(harness_passed(r.out, "boot"), "stdout:\n%s", r.out);
	cr_assert(!strstr(r.err, "seccomp"), "stderr:\n%s", r.err);
	harness_free(&r);
}
