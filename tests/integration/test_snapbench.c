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

static char *const dir = harness_dir;

TestSuite(snapbench, .init = harness_dir_setup, .fini = harness_dir_teardown);

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
	const char *argv[] = {"snapbench",
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
	struct vmm_result r;
	const char *out;
	double v;

	harness_require_kvm();
	cr_assert_not_null(helper, "BUNSHIN_SNAPBENCH is not set (meson sets it)");
	/* snapbench bounds every wait (60 s) and kills its VMMs on the way out. */
	harness_run(
		&(struct vmm_run){
			.argv = argv, .timeout_ms = 300000, .run_as_uid = -1, .vmm_path = helper},
		&r);
	out = r.out;
	cr_assert(!r.timed_out && r.status == 0,
		  "snapbench failed (status %d); stdout:\n%s\nstderr:\n%s", r.status, out, r.err);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		cr_assert(field(out, keys[i], &v), "no %s in: %s", keys[i], out);
		cr_assert_gt(v, 0, "%s is not above zero: %s", keys[i], out);
	}
	cr_assert(field(out, "clones", &v) && v == 2, "clones=2 expected: %s", out);
	harness_free(&r);
}
