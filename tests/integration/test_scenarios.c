// SPDX-License-Identifier: MIT
/* The test guest's other scenarios: SMP bring-up, timers, serial input, power-off, reboot. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

static void run_guest(const char *wrapper, const char *cmdline, unsigned int cpus,
		      const char *const *extra, const struct vmm_step *steps, int nsteps,
		      struct vmm_result *r)
{
	const char *argv[16] = {"vmm",	     "--kernel", harness_guest(wrapper),
				"--cmdline", cmdline,	 "--memory",
				"128M",	     "--cpus"};
	char ncpu[16];
	int n = 8;

	harness_require_kvm();
	snprintf(ncpu, sizeof(ncpu), "%u", cpus);
	argv[n++] = ncpu;
	for (int i = 0; extra && extra[i] && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = nsteps,
				      .timeout_ms = 60000,
				      .run_as_uid = -1},
		    r);
	cr_assert(!r->timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r->out, r->err);
}

static void smp_check(const char *wrapper, unsigned int cpus)
{
	struct vmm_result r;
	char val[32];

	run_guest(wrapper, "test=smp", cpus, NULL, NULL, 0, &r);
	cr_assert(harness_passed(r.out, "smp"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "smp", "cpus", val, sizeof(val)));
	cr_assert_eq(atoi(val), (int)cpus);
	/* Every AP reports in by itself; the BSP is not among them. */
	cr_assert_eq(harness_count(r.out, "name=smp-cpu "), (int)cpus - 1, "console:\n%s", r.out);
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(smp, elf_1cpu)
{
	smp_check("elf", 1);
}
Test(smp, elf_2cpu)
{
	smp_check("elf", 2);
}
Test(smp, elf_8cpu)
{
	smp_check("elf", 8);
}
Test(smp, elf_64cpu)
{
	smp_check("elf", 64);
}
Test(smp, bzimage_2cpu)
{
	smp_check("bzImage", 2);
}
Test(smp, bzimage_8cpu)
{
	smp_check("bzImage", 8);
}
Test(smp, bzimage_64cpu)
{
	smp_check("bzImage", 64);
}

/* Past 254 the APIC IDs need x2APIC: the MADT switches entry type and the guest its mode. */
Test(smp, elf_256cpu_x2apic)
{
	smp_check("elf", 256);
}

static void timer_check(const char *wrapper)
{
	struct vmm_result r;
	char val[32];

	run_guest(wrapper, "test=timer", 1, NULL, NULL, 0, &r);
	cr_assert(harness_passed(r.out, "timer"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "timer", "kvmclock", val, sizeof(val)));
	cr_assert_str_eq(val, "ok", "kvmclock must be usable by the guest");
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(timer, elf)
{
	timer_check("elf");
}
Test(timer, bzimage)
{
	timer_check("bzImage");
}

static void echo_check(const char *wrapper)
{
	static const struct vmm_step steps[] = {
		{"name=serial-echo result=ready", "hello bunshin\n"},
		{"ECHO: hello bunshin", "second line\n"},
		{"ECHO: second line", "quit\n"},
	};
	struct vmm_result r;
	char val[32];

	run_guest(wrapper, "test=serial-echo", 1, NULL, steps, 3, &r);
	cr_assert(harness_passed(r.out, "serial-echo"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "serial-echo", "lines", val, sizeof(val)));
	cr_assert_geq(atoi(val), 2);
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(serial, echo_elf)
{
	echo_check("elf");
}
Test(serial, echo_bzimage)
{
	echo_check("bzImage");
}

Test(power, poweroff_exits_zero)
{
	struct vmm_result r;

	run_guest("elf", "test=poweroff", 2, NULL, NULL, 0, &r);
	cr_assert(harness_passed(r.out, "poweroff"), "console:\n%s", r.out);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	harness_free(&r);
}

static void reboot_exit_check(const char *method)
{
	const char *extra[] = {"--on-reboot", "exit", NULL};
	char cmdline[64];
	struct vmm_result r;

	snprintf(cmdline, sizeof(cmdline), "test=reboot reboot_method=%s", method);
	run_guest("elf", cmdline, 1, extra, NULL, 0, &r);
	cr_assert(harness_passed(r.out, "reboot"), "console:\n%s", r.out);
	cr_assert_eq(r.status, 3, "a reboot with --on-reboot=exit exits 3, got %d; stderr:\n%s",
		     r.status, r.err);
	harness_free(&r);
}

Test(power, reboot_acpi_exits_3)
{
	reboot_exit_check("acpi");
}
Test(power, reboot_i8042_exits_3)
{
	reboot_exit_check("kbd");
}
Test(power, reboot_triple_fault_exits_3)
{
	reboot_exit_check("triple");
}

Test(power, reboot_restart_boots_again)
{
	const char *argv[] = {"vmm",	   "--kernel",	  harness_guest("bzImage"),
			      "--cmdline", "test=reboot", "--on-reboot",
			      "restart",   "--memory",	  "64M",
			      NULL};
	struct vmm_result r;

	harness_require_kvm();
	harness_run(&(struct vmm_run){.argv = argv,
				      .timeout_ms = 60000,
				      .run_as_uid = -1,
				      .term_when = "name=reboot result=pass",
				      .term_count = 3},
		    &r);
	cr_assert(!r.timed_out, "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_geq(harness_count(r.out, "name=reboot result=pass"), 3,
		      "the guest must boot again after each reboot; console:\n%s", r.out);
	cr_assert_eq(r.status, 4, "SIGTERM stops the VMM with status 4, got %d", r.status);
	harness_free(&r);
}
