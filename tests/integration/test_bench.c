// SPDX-License-Identifier: MIT
/*
 * Smoke tests of the benchmark scenarios, so that CI notices when one
 * breaks: a few requests per row, every row reported with numbers above
 * zero. They assert nothing about speed; bench/blk.sh measures that.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define IMG_SIZE (4 << 20) /* the 1 MiB rows need at least one whole MiB */

struct row_check {
	const char *row;
	const char *keys[3];
};

static const struct row_check rows[] = {
	{"randread4k_qd1", {"iops", "reqs"}},
	{"randread4k_qd32", {"iops", "reqs"}},
	{"randwrite4k_qd1", {"iops", "reqs"}},
	{"randwrite4k_qd32", {"iops", "reqs"}},
	{"seqread1m", {"mbps", "reqs"}},
	{"seqwrite1m", {"mbps", "reqs"}},
	{"lat4k_qd1", {"lat_us_p50", "lat_us_p99", "reqs"}},
};

/* The value of key= in the console line that starts with prefix, as a number. */
static bool bench_value(const char *out, const char *prefix, const char *key, double *v)
{
	char needle[64];
	const char *line = strstr(out, prefix), *end, *p;
	size_t klen;

	if (!line)
		return false;
	end = strchr(line, '\n');
	if (!end)
		end = line + strlen(line);
	klen = (size_t)snprintf(needle, sizeof(needle), " %s=", key);
	for (p = line; p && p < end; p = strstr(p + 1, needle)) {
		if (p + klen <= end && strncmp(p, needle, klen) == 0) {
			char *num_end;
			*v = strtod(p + klen, &num_end);
			return num_end != p + klen;
		}
	}
	return false;
}

static void blk_bench_smoke(const char *guest_opts)
{
	char *img = harness_temp_file(IMG_SIZE, 11, NULL);
	char disk[128], cmdline[160];
	const char *argv[] = {"vmm",	   "--kernel", harness_guest("elf"),
			      "--cmdline", cmdline,    "--memory",
			      "128M",	   "--disk",   disk,
			      NULL};
	struct vmm_result r;

	harness_require_kvm();
	snprintf(disk, sizeof(disk), "path=%s", img);
	snprintf(cmdline, sizeof(cmdline), "test=blk-bench bench_reqs=16 %s", guest_opts);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, &r);
	cr_assert(!r.timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "blk-bench"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "BUNSHIN-BENCH blk row=%s ", rows[i].row);
		cr_assert(strstr(r.out, prefix), "no line for row %s; console:\n%s", rows[i].row,
			  r.out);
		for (int k = 0; k < 3 && rows[i].keys[k]; k++) {
			double v = 0;
			cr_assert(bench_value(r.out, prefix, rows[i].keys[k], &v),
				  "row %s has no %s; console:\n%s", rows[i].row, rows[i].keys[k],
				  r.out);
			cr_assert_gt(v, 0, "row %s: %s=%g", rows[i].row, rows[i].keys[k], v);
		}
	}
	cr_assert_eq(r.status, 0);
	harness_free(&r);
	unlink(img);
	free(img);
}

Test(blk_bench, polling)
{
	blk_bench_smoke("");
}

/* The interrupt-driven wait is the other code path of the scenario. */
Test(blk_bench, msix_interrupts)
{
	blk_bench_smoke("bench_irq=1");
}
