// SPDX-License-Identifier: MIT
/*
 * Boots the test guest through both wrappers (PVH ELF and bzImage) on the
 * real bunshin-vmm and checks what the guest reports about the machine it
 * found: CPUs, memory, ACPI, command line, initrd.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

static void boot_check(const char *wrapper, unsigned int cpus, unsigned int mem_mib)
{
	char cmdline[256], mem[32], ncpu[16], val[64];
	uint32_t crc;
	char *initrd = harness_temp_file(123457, cpus * 7 + mem_mib, &crc);
	struct vmm_result r;

	harness_require_kvm();
	snprintf(cmdline, sizeof(cmdline),
		 "test=boot strict_e820=1 expect_cpus=%u expect_mem_mib=%u initrd_size=123457 "
		 "initrd_crc32=%08x",
		 cpus, mem_mib, crc);
	snprintf(mem, sizeof(mem), "%uM", mem_mib);
	snprintf(ncpu, sizeof(ncpu), "%u", cpus);
	const char *argv[] = {"vmm",	  "--kernel", harness_guest(wrapper),
			      "--initrd", initrd,     "--cmdline",
			      cmdline,	  "--cpus",   ncpu,
			      "--memory", mem,	      NULL};
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, &r);
	unlink(initrd);
	free(initrd);

	cr_assert(!r.timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "boot"), "no pass line; console:\n%s\nstderr:\n%s", r.out,
		  r.err);
	cr_assert(harness_result_field(r.out, "boot", "cpus", val, sizeof(val)));
	cr_assert_eq(atoi(val), (int)cpus, "guest saw %s CPUs in the MADT", val);
	cr_assert(harness_result_field(r.out, "boot", "e820_sorted", val, sizeof(val)));
	cr_assert_str_eq(val, "1", "bunshin's e820 map must be sorted");
	cr_assert(harness_result_field(r.out, "boot", "initrd", val, sizeof(val)));
	cr_assert_str_eq(val, "ok");
	cr_assert_eq(r.status, 0, "exit status %d after power-off; stderr:\n%s", r.status, r.err);
	harness_free(&r);
}

Test(boot, elf_1cpu)
{
	boot_check("elf", 1, 256);
}
Test(boot, elf_2cpu)
{
	boot_check("elf", 2, 256);
}
Test(boot, elf_8cpu)
{
	boot_check("elf", 8, 256);
}
Test(boot, elf_64cpu)
{
	boot_check("elf", 64, 256);
}
Test(boot, bzimage_1cpu)
{
	boot_check("bzImage", 1, 256);
}
Test(boot, bzimage_2cpu)
{
	boot_check("bzImage", 2, 256);
}
Test(boot, bzimage_8cpu)
{
	boot_check("bzImage", 8, 256);
}
Test(boot, bzimage_64cpu)
{
	boot_check("bzImage", 64, 256);
}
Test(boot, elf_64mib)
{
	boot_check("elf", 1, 64);
}
Test(boot, elf_1gib)
{
	boot_check("elf", 2, 1024);
}
Test(boot, elf_5gib)
{
	boot_check("elf", 2, 5120);
}
Test(boot, bzimage_64mib)
{
	boot_check("bzImage", 1, 64);
}
Test(boot, bzimage_1gib)
{
	boot_check("bzImage", 2, 1024);
}
Test(boot, bzimage_5gib)
{
	boot_check("bzImage", 2, 5120);
}
