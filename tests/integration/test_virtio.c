// SPDX-License-Identifier: MIT
/* PCI enumeration and virtio devices, driven by the test guest's own drivers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void run_guest(const char *cmdline, const char *const *extra, struct vmm_result *r)
{
	const char *argv[16] = {"vmm",	    "--kernel", harness_guest("elf"), "--cmdline", cmdline,
				"--memory", "128M"};
	int n = 7;

	harness_require_kvm();
	for (int i = 0; extra && extra[i] && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, r);
	cr_assert(!r->timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r->out, r->err);
}

Test(pci, host_bridge_alone)
{
	struct vmm_result r;
	char val[32];

	run_guest("test=pci expect_devices=1", NULL, &r);
	cr_assert(harness_passed(r.out, "pci"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "pci", "host_bridge", val, sizeof(val)));
	cr_assert_str_eq(val, "1b36:0008");
	cr_assert(harness_result_field(r.out, "pci", "method", val, sizeof(val)));
	cr_assert_str_eq(val, "ecam", "the guest must find ECAM through the MCFG");
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(pci, rng_device_enumerates)
{
	const char *extra[] = {"--rng", NULL};
	struct vmm_result r;

	run_guest("test=pci expect_devices=2 expect=1af4:1044", extra, &r);
	cr_assert(harness_passed(r.out, "pci"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

static void rng_check(const char *options, const char *irq_expect)
{
	const char *extra[] = {"--rng", NULL};
	char cmdline[128], val[32];
	struct vmm_result r;

	snprintf(cmdline, sizeof(cmdline), "test=virtio-rng %s", options);
	run_guest(cmdline, extra, &r);
	cr_assert(harness_passed(r.out, "virtio-rng"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-rng", "bytes", val, sizeof(val)));
	cr_assert_eq(atoi(val), 4096);
	cr_assert(harness_result_field(r.out, "virtio-rng", "irq", val, sizeof(val)));
	if (irq_expect)
		cr_assert_str_eq(val, irq_expect);
	else
		cr_assert_gt(atoi(val), 0, "MSI-X interrupts must arrive");
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(virtio_rng, msix_interrupts)
{
	rng_check("", NULL);
}
Test(virtio_rng, polling)
{
	rng_check("virtio_poll=1", "poll");
}
Test(virtio_rng, no_optional_features)
{
	rng_check("virtio_features=none", NULL);
}
Test(virtio_rng, without_event_idx)
{
	rng_check("virtio_features=-event_idx", NULL);
}

Test(virtio_rng, absent_without_flag)
{
	struct vmm_result r;
	char val[32];

	run_guest("test=virtio-rng", NULL, &r);
	cr_assert(harness_result_field(r.out, "virtio-rng", "reason", val, sizeof(val)),
		  "console:\n%s", r.out);
	cr_assert_str_eq(val, "no-device");
	harness_free(&r);
}
