// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>

#include "../../src/common/util.h"
#include "../../src/vmm/boot/boot.h"
#include "../../src/vmm/layout.h"

/* The reserved EBDA + legacy hole is backed by RAM but not reported as RAM. */
#define LEGACY_HOLE (LAYOUT_HIGH_MEM_START - LAYOUT_EBDA_START)

static int build(uint64_t ram, struct e820_entry *e)
{
	int n = e820_build(ram, e, E820_MAX_ENTRIES);

	cr_assert_gt(n, 0, "e820_build(%llu) failed: %d", (unsigned long long)ram, n);
	return n;
}

static void check_entry(const struct e820_entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
	cr_assert_eq(e->addr, addr, "addr 0x%llx, want 0x%llx", (unsigned long long)e->addr,
		     (unsigned long long)addr);
	cr_assert_eq(e->size, size, "size 0x%llx at 0x%llx, want 0x%llx",
		     (unsigned long long)e->size, (unsigned long long)addr,
		     (unsigned long long)size);
	cr_assert_eq(e->type, type, "type %u at 0x%llx, want %u", e->type, (unsigned long long)addr,
		     type);
}

/* Sorted, non-empty, non-overlapping; returns the RAM total. */
static uint64_t check_well_formed(const struct e820_entry *e, int n)
{
	uint64_t ram = 0;

	for (int i = 0; i < n; i++) {
		cr_assert_gt(e[i].size, 0, "entry %d is empty", i);
		cr_assert_lt(e[i].addr, e[i].addr + e[i].size, "entry %d wraps", i);
		if (i > 0)
			cr_assert_geq(e[i].addr, e[i - 1].addr + e[i - 1].size,
				      "entry %d overlaps or is out of order", i);
		if (e[i].type == E820_RAM)
			ram += e[i].size;
	}
	return ram;
}

static void check_fixed_prefix(const struct e820_entry *e, uint64_t low_end)
{
	check_entry(&e[0], 0, LAYOUT_EBDA_START, E820_RAM);
	check_entry(&e[1], LAYOUT_EBDA_START, LEGACY_HOLE, E820_RESERVED);
	check_entry(&e[2], LAYOUT_HIGH_MEM_START, low_end - LAYOUT_HIGH_MEM_START, E820_RAM);
	check_entry(&e[3], LAYOUT_ECAM_BASE, LAYOUT_ECAM_SIZE, E820_RESERVED);
}

Test(e820, small_vm_64mib)
{
	struct e820_entry e[E820_MAX_ENTRIES];
	int n = build(64 * MiB, e);

	cr_assert_eq(n, 4);
	check_fixed_prefix(e, 64 * MiB);
	cr_assert_eq(check_well_formed(e, n), 64 * MiB - LEGACY_HOLE);
}

Test(e820, one_gib)
{
	struct e820_entry e[E820_MAX_ENTRIES];
	int n = build(GiB, e);

	cr_assert_eq(n, 4);
	check_fixed_prefix(e, GiB);
	cr_assert_eq(check_well_formed(e, n), GiB - LEGACY_HOLE);
}

Test(e820, exactly_low_ram_end_has_no_high_slot)
{
	struct e820_entry e[E820_MAX_ENTRIES];
	int n = build(LAYOUT_LOW_RAM_END, e);

	cr_assert_eq(n, 4);
	check_fixed_prefix(e, LAYOUT_LOW_RAM_END);
	cr_assert_eq(check_well_formed(e, n), LAYOUT_LOW_RAM_END - LEGACY_HOLE);
}

Test(e820, five_gib_spills_above_4gib)
{
	struct e820_entry e[E820_MAX_ENTRIES];
	int n = build(5 * GiB, e);

	cr_assert_eq(n, 5);
	check_fixed_prefix(e, LAYOUT_LOW_RAM_END);
	check_entry(&e[4], LAYOUT_HIGH_RAM_START, 5 * GiB - LAYOUT_LOW_RAM_END, E820_RAM);
	cr_assert_eq(check_well_formed(e, n), 5 * GiB - LEGACY_HOLE);
}

Test(e820, smallest_vm_2mib)
{
	struct e820_entry e[E820_MAX_ENTRIES];
	int n = build(2 * MiB, e);

	cr_assert_eq(n, 4);
	check_fixed_prefix(e, 2 * MiB);
	cr_assert_eq(check_well_formed(e, n), 2 * MiB - LEGACY_HOLE);
}

Test(e820, acpi_tables_and_ecam_are_reserved)
{
	struct e820_entry e[E820_MAX_ENTRIES];
	int n = build(GiB, e);
	bool acpi = false, ecam = false;

	for (int i = 0; i < n; i++) {
		uint64_t end = e[i].addr + e[i].size;

		if (e[i].type != E820_RESERVED)
			continue;
		if (e[i].addr <= LAYOUT_ACPI_START && end >= LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE)
			acpi = true;
		if (e[i].addr <= LAYOUT_ECAM_BASE && end >= LAYOUT_ECAM_BASE + LAYOUT_ECAM_SIZE)
			ecam = true;
	}
	cr_assert(acpi, "ACPI table area must be reserved");
	cr_assert(ecam, "ECAM window must be reserved");
}

Test(e820, boot_structures_are_in_ram)
{
	struct e820_entry e[E820_MAX_ENTRIES];

	build(64 * MiB, e);
	/* GDT, start_info, zero page, page tables and command line all sit in entry 0. */
	cr_assert_leq(LAYOUT_CMDLINE_GPA + LAYOUT_CMDLINE_MAX, e[0].addr + e[0].size);
	cr_assert_leq(LAYOUT_GDT_GPA, LAYOUT_START_INFO_GPA);
}

Test(e820, too_small_output_is_enospc)
{
	struct e820_entry e[3];

	cr_assert_eq(e820_build(GiB, e, 3), -ENOSPC);
	cr_assert_eq(e820_build(5 * GiB, e, 0), -ENOSPC);
}
