/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_BOOT_H
#define BUNSHIN_VMM_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../kvm/gmem.h"
#include "../../common/error.h"

/* e820 memory map, shared by the Linux zero page and the PVH memmap. */
enum e820_type {
	E820_RAM = 1,
	E820_RESERVED = 2,
	E820_ACPI = 3,
	E820_NVS = 4,
};

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

#define E820_MAX_ENTRIES 16

/* Builds the map for a VM with ram_size bytes of RAM (see layout.h); returns the count. */
int e820_build(uint64_t ram_size, struct e820_entry *out, int max);

enum boot_protocol {
	BOOT_LINUX64, /* bzImage, 64-bit entry: long mode, RSI = zero page */
	BOOT_PVH,     /* ELF with XEN_ELFNOTE_PHYS32_ENTRY: 32-bit, no paging, EBX = start_info */
};

/*
 * Boot GDT descriptors written at LAYOUT_GDT_GPA (selectors LAYOUT_BOOT_CS/
 * DS/TSS). BOOT_LINUX64 gets a 64-bit code segment, BOOT_PVH a flat 32-bit
 * one, so the table always matches the mode the vCPU starts in. Exported so
 * vCPU setup can load matching hidden segment state.
 */
#define BOOT_GDT_CODE64 0x00af9b000000ffffULL
#define BOOT_GDT_CODE32 0x00cf9b000000ffffULL
#define BOOT_GDT_DATA	0x00cf93000000ffffULL
#define BOOT_GDT_TSS	0x008f8b000000ffffULL
#define BOOT_GDT_SIZE	40 /* null, null, code, data, tss */

struct boot_input {
	const uint8_t *kernel;
	size_t kernel_len;
	const char *cmdline;   /* may be NULL */
	const uint8_t *initrd; /* may be NULL */
	size_t initrd_len;
	uint64_t rsdp_gpa;	       /* 0: no ACPI */
	const struct e820_entry *e820; /* NULL: e820_build() for the guest's RAM */
	int ne820;
	/*
	 * Guest RAM is known to be all zeroes (a fresh memfd): the loader need
	 * not clear a kernel's .bss, which would fault in megabytes of pages
	 * the guest may never touch and costs most of a VM's start time.
	 */
	bool ram_zeroed;
};

struct boot_entry {
	enum boot_protocol protocol;
	uint64_t rip;	   /* first guest instruction */
	uint64_t info_gpa; /* zero page (Linux) or hvm_start_info (PVH) */
	uint64_t initrd_gpa;
	uint64_t kernel_end; /* first byte after the loaded kernel image */
};

/*
 * Detects the kernel format (bzImage or PVH ELF), loads it and the initrd
 * into guest memory, writes the command line and the protocol's boot
 * information structure, and for BOOT_LINUX64 the boot GDT and identity
 * page tables described in layout.h. Every failure (truncated file, not a
 * kernel, unsupported protocol version, does not fit in RAM) is a clear
 * message in err.
 */
int boot_load(struct gmem *m, const struct boot_input *in, struct boot_entry *out,
	      struct error *err);

#endif
