// SPDX-License-Identifier: MIT
/*
 * A hostile guest driver (test=virtio-abuse): malformed rings on the
 * entropy device. Each must put the device in DEVICE_NEEDS_RESET with one
 * warning naming the fault, a reset must bring it back, and the VMM must
 * carry on and exit 0 when the guest powers off.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define NCASES	  11
#define LOG_BURST 32 /* VIRTIO_PCI_LOG_BURST */

static void run_abuse(const char *options, struct vmm_result *r)
{
	char cmdline[128];
	const char *argv[] = {"vmm",	   "--kernel", harness_guest("elf"),
			      "--cmdline", cmdline,    "--memory",
			      "128M",	   "--rng",    NULL};

	harness_require_kvm();
	snprintf(cmdline, sizeof(cmdline), "test=virtio-abuse %s", options);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, r);
	cr_assert(!r->timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r->out, r->err);
}

static void expect_field(const struct vmm_result *r, const char *key, const char *want)
{
	char val[64];

	cr_assert(harness_result_field(r->out, "virtio-abuse", key, val, sizeof(val)),
		  "no %s; console:\n%s", key, r->out);
	cr_assert_str_eq(val, want, "%s; console:\n%s\nstderr:\n%s", key, r->out, r->err);
}

/* What the device logs for each case, in the guest's order. */
static const char *const faults[NCASES] = {
	"chain longer than 64 descriptors (a loop)",
	"next index 64 is beyond the 64-entry descriptor table",
	"chain longer than 64 descriptors (a loop)",
	"indirect descriptor inside an indirect table",
	"indirect descriptor but VIRTIO_F_INDIRECT_DESC not negotiated",
	"buffer [0x200000000000, +64) is outside guest RAM",
	"buffer [0xfffffffffffff000, +8192) is outside guest RAM",
	"avail->idx 65: 65 new + 0 in flight exceed the queue size 64",
	"head index 64 >= queue size 64",
	"device-readable descriptor after a writable one",
	"indirect table length 0 is not a non-zero multiple of 16",
};

/* One warning line per case, each naming its fault, in order. */
static void expect_log(const char *err)
{
	const char *p = err;

	cr_assert_eq(harness_count(err, "device needs reset"), NCASES, "stderr:\n%s", err);
	cr_assert_eq(harness_count(err, "\n"), NCASES, "nothing else is logged:\n%s", err);
	for (int i = 0; i < NCASES; i++) {
		const char *hit = strstr(p, faults[i]);
		const char *eol = hit ? strchr(hit, '\n') : NULL;

		cr_assert(hit, "case %d: no '%s' after what was already matched:\n%s", i, faults[i],
			  err);
		cr_assert(eol && strstr(hit, "device needs reset") < eol, "case %d:\n%s", i, err);
		p = eol;
	}
}

Test(virtio_abuse, every_case_needs_reset_and_recovers)
{
	struct vmm_result r;

	run_abuse("", &r);
	cr_assert(harness_passed(r.out, "virtio-abuse"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	expect_field(&r, "cases", "11");
	expect_field(&r, "needs_reset", "11");
	expect_field(&r, "recovered", "11");
	cr_assert_eq(r.status, 0, "the VMM must exit 0; stderr:\n%s", r.err);
	expect_log(r.err);
	harness_free(&r);
}

/* The same without interrupts: recovery must not depend on MSI-X. */
Test(virtio_abuse, polled)
{
	struct vmm_result r;

	run_abuse("virtio_poll=1", &r);
	cr_assert(harness_passed(r.out, "virtio-abuse"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	expect_field(&r, "recovered", "11");
	cr_assert_eq(r.status, 0);
	expect_log(r.err);
	harness_free(&r);
}

Test(virtio_abuse, one_case_by_name)
{
	struct vmm_result r;

	run_abuse("abuse=head-range", &r);
	cr_assert(harness_passed(r.out, "virtio-abuse"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	expect_field(&r, "cases", "1");
	expect_field(&r, "recovered", "1");
	cr_assert_eq(harness_count(r.err, "\n"), 1, "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, "head index 64 >= queue size 64"), "stderr:\n%s", r.err);
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(virtio_abuse, unknown_case_fails)
{
	struct vmm_result r;

	run_abuse("abuse=nonsense", &r);
	expect_field(&r, "result", "fail");
	expect_field(&r, "reason", "unknown-case");
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

/* A guest that breaks the device over and over: it keeps recovering, the log stays bounded. */
Test(virtio_abuse, flood_is_rate_limited)
{
	struct vmm_result r;

	run_abuse("abuse_rounds=5", &r);
	cr_assert(harness_passed(r.out, "virtio-abuse"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	expect_field(&r, "needs_reset", "55");
	expect_field(&r, "recovered", "55");
	cr_assert_eq(harness_count(r.err, "device needs reset"), LOG_BURST, "stderr:\n%s", r.err);
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}
