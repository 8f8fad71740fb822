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

static char *const dir = harness_dir;

TestSuite(migbench, .init = harness_dir_setup, .fini = harness_dir_teardown, .timeout = 120);

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
	const char *argv[] = {"migbench",  "bunshin",
			      dir,	   "60",
			      "--",	   harness_vmm(),
			      "--kernel",  harness_guest("elf"),
			      "--cmdline", "test=mem-writer mib=8 ms=60000 report_ms=20",
			      "--memory",  "64M",
			      "--",	   harness_vmm(),
			      NULL};
	struct vmm_result r;
	const char *out;

	harness_require_kvm();
	cr_assert_not_null(helper, "BUNSHIN_MIGBENCH is not set (meson sets it)");
	/* within the suite's 120 s, so that a hang shows what it printed */
	harness_run(
		&(struct vmm_run){
			.argv = argv, .timeout_ms = 110000, .run_as_uid = -1, .vmm_path = helper},
		&r);
	out = r.out;
	cr_assert(!r.timed_out && r.status == 0, "migbench failed:\n%s%s", out, r.err);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert_gt(field(out, keys[i]), 0, "%s in '%s'", keys[i], out);
	harness_free(&r);
}
