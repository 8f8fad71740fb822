// SPDX-License-Identifier: MIT
/*
 * virtio-balloon end to end: the guest touches 64 MiB, inflates the balloon
 * over it, and the VMM's resident memory must fall by most of that.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MIB 1024LL

/* The VMM's resident guest memory (shared memfd pages) in KiB, -1 if unknown. */
static long long rss_kib(int pid, const char *field)
{
	char path[64], line[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtoll(line + strlen(field), NULL, 10);
	fclose(f);
	return v;
}

struct samples {
	long long shmem[2];
	long long rss[2];
};

static void sample(void *ctx, int i, int pid)
{
	struct samples *s = ctx;

	if (i < 2) {
		s->shmem[i] = rss_kib(pid, "RssShmem:");
		s->rss[i] = rss_kib(pid, "VmRSS:");
	}
}

Test(balloon, inflating_gives_memory_back)
{
	struct samples s = {{-1, -1}, {-1, -1}};
	struct vmm_step steps[] = {{"virtio-balloon touched", "g"},
				   {"virtio-balloon inflated", "g"}};
	struct vmm_result r;
	char val[32];

	harness_require_kvm();
	const char *argv[] = {"vmm",	  "--kernel",  harness_guest("elf"),
			      "--memory", "256M",      "--balloon",
			      "size=64M", "--cmdline", "test=virtio-balloon balloon_wait_s=60",
			      NULL};
	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = 2,
				      .timeout_ms = 120000,
				      .run_as_uid = -1,
				      .on_step = sample,
				      .ctx = &s},
		    &r);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "virtio-balloon"), "stdout:\n%s\nstderr:\n%s", r.out,
		  r.err);
	cr_assert(harness_result_field(r.out, "virtio-balloon", "num_pages", val, sizeof(val)));
	cr_assert_str_eq(val, "16384", "64 MiB in 4 KiB pages");
	cr_assert(harness_result_field(r.out, "virtio-balloon", "zeroed", val, sizeof(val)));
	cr_assert_str_eq(val, "8192", "deflated pages come back as zeroes");
	cr_assert_geq(s.rss[0], 64 * MIB, "touched memory is resident: %lld KiB", s.rss[0]);
	cr_assert_geq(s.rss[0] - s.rss[1], 48 * MIB,
		      "VmRSS %lld -> %lld KiB (RssShmem %lld -> %lld)", s.rss[0], s.rss[1],
		      s.shmem[0], s.shmem[1]);
	harness_free(&r);
}

/* Every optional queue offered; the guest negotiates none of them and still works. */
Test(balloon, optional_queues_offered_and_declined)
{
	struct vmm_result r;

	harness_require_kvm();
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("bzImage"),
			      "--memory",
			      "128M",
			      "--balloon",
			      "size=8M,stats=1,free_page_reporting=on,deflate_on_oom=on",
			      "--cmdline",
			      "test=virtio-balloon balloon_wait_s=0",
			      NULL};
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, &r);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "virtio-balloon"), "stdout:\n%s\nstderr:\n%s", r.out,
		  r.err);
	harness_free(&r);
}
