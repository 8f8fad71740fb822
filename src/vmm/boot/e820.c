// SPDX-License-Identifier: MIT
#include <errno.h>

#include "boot.h"
#include "../layout.h"

struct e820_builder {
	struct e820_entry *out;
	int max;
	int n;
};

/* Appends [start, end) unless it is empty; callers add ranges in ascending order. */
static int e820_add(struct e820_builder *b, uint64_t start, uint64_t end, uint32_t type)
{
	if (end <= start)
		return 0;
	if (b->n >= b->max)
		return -ENOSPC;
	b->out[b->n].addr = start;
	b->out[b->n].size = end - start;
	b->out[b->n].type = type;
	b->n++;
	return 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * The map mirrors what a PC BIOS reports, because guest kernels make
 * assumptions from it: the EBDA and the legacy hole up to 1 MiB are
 * reserved (the ACPI tables at LAYOUT_ACPI_START live there and must
 * survive), and the ECAM window is reserved so Linux trusts MCFG.
 * RAM that does not fit below the PCI hole reappears at 4 GiB, exactly
 * as gmem lays out its second slot.
 */
int e820_build(uint64_t ram_size, struct e820_entry *out, int max)
{
	struct e820_builder b = {.out = out, .max = max, .n = 0};
	uint64_t low = min_u64(ram_size, LAYOUT_LOW_RAM_END);
	int ret = 0;

	_Static_assert(LAYOUT_ACPI_START >= LAYOUT_EBDA_END &&
			       LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE <= LAYOUT_HIGH_MEM_START,
		       "ACPI tables must lie inside the reserved legacy range");
	_Static_assert(LAYOUT_ECAM_BASE >= LAYOUT_LOW_RAM_END, "ECAM must not overlap low RAM");

	ret |= e820_add(&b, 0, min_u64(low, LAYOUT_EBDA_START), E820_RAM);
	ret |= e820_add(&b, LAYOUT_EBDA_START, LAYOUT_HIGH_MEM_START, E820_RESERVED);
	ret |= e820_add(&b, LAYOUT_HIGH_MEM_START, low, E820_RAM);
	ret |= e820_add(&b, LAYOUT_ECAM_BASE, LAYOUT_ECAM_BASE + LAYOUT_ECAM_SIZE, E820_RESERVED);
	if (ram_size > low)
		ret |= e820_add(&b, LAYOUT_HIGH_RAM_START, LAYOUT_HIGH_RAM_START + (ram_size - low),
				E820_RAM);
	return ret ? -ENOSPC : b.n;
}
