// SPDX-License-Identifier: MIT
/*
 * Smoke test of the snapshot benchmark (bench/snap.sh): the same helper
 * (bench/snapbench.c), bunshin side only, with 2 clones of a 64 MiB guest.
 * Checks that every number it reports is there and above zero, never how
 * fast anything was: speed belongs to bench/snap.sh, on a quiet machine.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/bunshin-snapbench.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		cr_log_warn("cannot remove %s", dir);
}

TestSuite(snapbench, .init = setup, .fini = teardown);

/* The number after " key=" (or at the start) in line; false when missing. */
static bool field(const char *line, const char *key, double *v)
{
	char k[64];
	const char *p;
	char *end;

	snprintf(k, sizeof(k), "%s=", key);
	for (p = strstr(line, k); p && p != line && p[-1] != ' '; p = strstr(p + 1, k))
		;
	if (!p)
		return false;
	*v = strtod(p + strlen(k), &end);
	return end != p + strlen(k);
}

Test(snapbench, bunshin_side_reports_every_number)
{
	static const char *const keys[] = {
		"snapshot_ms",	 "snapshot_vmm_ms", "snapshot_kib",	  "restore_ms",
		"clones_ms",	 "clones_per_s",    "clone_ready_ms_p50", "clone_rss_kib",
		"clone_pss_kib", "clone_dirty_kib", "restore_sends",
	};
	const char *helper = getenv("BUNSHIN_SNAPBENCH");
	char out[4096], err[128];
	size_t len = 0;
	int pipefd[2], status;
	double v;
	ssize_t n;
	pid_t pid;

	harness_require_kvm();
	cr_assert_not_null(helper, "BUNSHIN_SNAPBENCH is not set (meson sets it)");
	snprintf(err, sizeof(err), "%s/snapbench.err", dir);
	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		const char *argv[] = {helper,
				      "bunshin",
				      "2",
				      dir,
				      "60",
				      "--",
				      harness_vmm(),
				      "--kernel",
				      harness_guest("elf"),
				      "--cmdline",
				      "test=serial-echo",
				      "--cpus",
				      "1",
				      "--memory",
				      "64M",
				      NULL};
		int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(pipefd[1], STDOUT_FILENO);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		close(pipefd[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	/* snapbench bounds every wait (60 s) and kills its VMMs on the way out. */
	while ((n = read(pipefd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = 0;
	close(pipefd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char buf[4096] = "";
		FILE *f = fopen(err, "r");

		if (f) {
			buf[fread(buf, 1, sizeof(buf) - 1, f)] = 0;
			fclose(f);
		}
		cr_assert_fail("snapbench failed (status %d); stdout:\n%s\nstderr:\n%s", status,
			       out, buf);
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		cr_assert(field(out, keys[i], &v), "no %s in: %s", keys[i], out);
		cr_assert_gt(v, 0, "%s is not above zero: %s", keys[i], out);
	}
	cr_assert(field(out, "clones", &v) && v == 2, "clones=2 expected: %s", out);
}
