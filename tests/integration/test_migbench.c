// SPDX-License-Identifier: MIT
/*
 * Smoke test of the migration benchmark (bench/migrate.sh): its helper
 * (bench/migbench.c), bunshin side only, a 64 MiB writer guest migrated
 * once. Checks that every number it reports is there and above zero (and
 * that the guest lost no page), never how fast: speed belongs to the
 * benchmark.
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
	strcpy(dir, "/tmp/bunshin-migbench.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		cr_log_warn("cannot remove %s", dir);
}

TestSuite(migbench, .init = setup, .fini = teardown, .timeout = 120);

static double field(const char *line, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "%s=", key);
	p = strstr(line, k);
	cr_assert_not_null(p, "no %s in '%s'", key, line);
	return strtod(p + strlen(k), NULL);
}

Test(migbench, bunshin_side_reports_every_number)
{
	static const char *const keys[] = {"wall_ms", "total_ms", "downtime_ms", "bytes",
					   "resume_ms"};
	const char *helper = getenv("BUNSHIN_MIGBENCH");
	char out[1024] = "", err[128];
	size_t len = 0;
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	harness_require_kvm();
	cr_assert_not_null(helper, "BUNSHIN_MIGBENCH is not set (meson sets it)");
	snprintf(err, sizeof(err), "%s/migbench.err", dir);
	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		const char *argv[] = {helper,	   "bunshin",
				      dir,	   "60",
				      "--",	   harness_vmm(),
				      "--kernel",  harness_guest("elf"),
				      "--cmdline", "test=mem-writer mib=8 ms=60000 report_ms=20",
				      "--memory",  "64M",
				      "--",	   harness_vmm(),
				      NULL};
		int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		harness_die_with_parent();
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(helper, (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = 0;
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	{
		char e[2048] = "";
		int fd = open(err, O_RDONLY);
		ssize_t r = fd >= 0 ? read(fd, e, sizeof(e) - 1) : 0;

		e[r > 0 ? r : 0] = 0;
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "migbench failed:\n%s%s",
			  out, e);
		if (fd >= 0)
			close(fd);
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert_gt(field(out, keys[i]), 0, "%s in '%s'", keys[i], out);
}
