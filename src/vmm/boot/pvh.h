/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_PVH_H
#define BUNSHIN_VMM_PVH_H

#include <stddef.h>
#include <stdint.h>

/*
 * The Xen PVH start-of-day ABI (xen/include/public/arch-x86/hvm/start_info.h):
 * the kernel is entered in 32-bit protected mode without paging at the
 * address of its XEN_ELFNOTE_PHYS32_ENTRY note, with EBX pointing at
 * hvm_start_info. All fields are little-endian and naturally aligned, so
 * plain structs match the ABI on an x86 host; the asserts pin that down.
 */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define XEN_HVM_START_MAGIC	 0x336ec578
#define XEN_HVM_START_VERSION	 1 /* version 1 adds memmap_paddr/memmap_entries */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* same values as E820 types */
	uint32_t reserved;
};

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "PVH structs are little-endian");
_Static_assert(offsetof(struct hvm_start_info, modlist_paddr) == 16, "hvm_start_info layout");
_Static_assert(offsetof(struct hvm_start_info, cmdline_paddr) == 24, "hvm_start_info layout");
_Static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 32, "hvm_start_info layout");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "hvm_start_info layout");
_Static_assert(offsetof(struct hvm_start_info, memmap_entries) == 48, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info size");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry size");
_Static_assert(offsetof(struct hvm_memmap_table_entry, type) == 16, "memmap entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "memmap entry size");

/*
 * Everything lives in the one page at LAYOUT_START_INFO_GPA: start_info,
 * then the module list (the initrd), then the memory map.
 */
#define PVH_MODLIST_OFFSET 64
#define PVH_MEMMAP_OFFSET  (PVH_MODLIST_OFFSET + sizeof(struct hvm_modlist_entry))
#define PVH_INFO_PAGE_SIZE 4096
#define PVH_MEMMAP_MAX                                                                             \
	((PVH_INFO_PAGE_SIZE - PVH_MEMMAP_OFFSET) / sizeof(struct hvm_memmap_table_entry))

_Static_assert(PVH_MODLIST_OFFSET >= sizeof(struct hvm_start_info), "modlist after start_info");

#endif
