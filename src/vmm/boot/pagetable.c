// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "loader_internal.h"
#include "../layout.h"
#include "../../common/util.h"

#define PTE_PRESENT  0x001ULL
#define PTE_WRITABLE 0x002ULL
#define PTE_PS	     0x080ULL /* in a PD entry: this maps a 2 MiB page */

#define PT_ENTRIES  512
#define PT_PD_COUNT 4 /* 4 x 1 GiB: the whole 32-bit space, MMIO included */

_Static_assert(LAYOUT_PDPT_GPA == LAYOUT_PML4_GPA + BOOT_PAGE_SIZE, "page tables are contiguous");
_Static_assert(LAYOUT_PD_GPA == LAYOUT_PDPT_GPA + BOOT_PAGE_SIZE, "page tables are contiguous");
_Static_assert(LAYOUT_PD_GPA + PT_PD_COUNT * BOOT_PAGE_SIZE <= LAYOUT_CMDLINE_GPA,
	       "page tables must not overlap the command line");

static int pt_write_page(struct gmem *m, uint64_t gpa, const uint64_t *entries, struct error *err)
{
	uint8_t *p = gmem_ptr(m, gpa, BOOT_PAGE_SIZE);

	if (!p)
		return error_set(err, EFAULT, "kernel: page table at 0x%llx is outside guest RAM",
				 (unsigned long long)gpa);
	for (int i = 0; i < PT_ENTRIES; i++)
		put_le64(p + 8 * i, entries[i]);
	return 0;
}

/*
 * The 64-bit boot protocol enters the kernel in long mode, which needs
 * paging; the kernel builds its own tables at once, so an identity map of
 * the first 4 GiB (where it, the zero page and the command line live) is
 * all it needs. 2 MiB pages keep it to six pages.
 */
int pagetable_build_identity(struct gmem *m, struct error *err)
{
	uint64_t e[PT_ENTRIES];
	int ret;

	memset(e, 0, sizeof(e));
	e[0] = LAYOUT_PDPT_GPA | PTE_PRESENT | PTE_WRITABLE;
	ret = pt_write_page(m, LAYOUT_PML4_GPA, e, err);
	if (ret)
		return ret;

	memset(e, 0, sizeof(e));
	for (int i = 0; i < PT_PD_COUNT; i++)
		e[i] = (LAYOUT_PD_GPA + i * BOOT_PAGE_SIZE) | PTE_PRESENT | PTE_WRITABLE;
	ret = pt_write_page(m, LAYOUT_PDPT_GPA, e, err);
	if (ret)
		return ret;

	for (int pd = 0; pd < PT_PD_COUNT; pd++) {
		for (int i = 0; i < PT_ENTRIES; i++) {
			uint64_t page = (uint64_t)(pd * PT_ENTRIES + i) * 2 * MiB;

			e[i] = page | PTE_PRESENT | PTE_WRITABLE | PTE_PS;
		}
		ret = pt_write_page(m, LAYOUT_PD_GPA + pd * BOOT_PAGE_SIZE, e, err);
		if (ret)
			return ret;
	}
	return 0;
}
