/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_BOOTPARAM_H
#define BUNSHIN_VMM_BOOTPARAM_H

/*
 * The Linux x86 boot protocol (Documentation/arch/x86/boot.rst and
 * zero-page.rst), as byte offsets. The setup header sits at the same offset
 * in the bzImage file and in the zero page (struct boot_params), so one set
 * of offsets serves both. Offsets rather than a struct: the zero page is a
 * sparse 4 KiB blob, and explicit little-endian accessors make every field's
 * position checkable against the documentation at a glance.
 */

/* Setup header: offsets in the file and in the zero page. */
#define BP_SETUP_SECTS	    0x1f1 /* u8: 0 means 4 */
#define BP_SYSSIZE	    0x1f4 /* u32: protected-mode part, 16-byte units */
#define BP_BOOT_FLAG	    0x1fe /* u16: 0xaa55 */
#define BP_JUMP		    0x200 /* u8 0xeb, u8 offset: header ends at 0x202 + offset */
#define BP_HEADER	    0x202 /* u32: "HdrS" */
#define BP_VERSION	    0x206 /* u16: protocol, major << 8 | minor */
#define BP_TYPE_OF_LOADER   0x210 /* u8 */
#define BP_LOADFLAGS	    0x211 /* u8 */
#define BP_RAMDISK_IMAGE    0x218 /* u32 */
#define BP_RAMDISK_SIZE	    0x21c /* u32 */
#define BP_HEAP_END_PTR	    0x224 /* u16 */
#define BP_CMD_LINE_PTR	    0x228 /* u32 */
#define BP_INITRD_ADDR_MAX  0x22c /* u32: highest address the initrd may occupy */
#define BP_KERNEL_ALIGNMENT 0x230 /* u32 */
#define BP_RELOCATABLE	    0x234 /* u8 */
#define BP_XLOADFLAGS	    0x236 /* u16 */
#define BP_CMDLINE_SIZE	    0x238 /* u32: maximum length, NUL excluded */
#define BP_PREF_ADDRESS	    0x258 /* u64 */
#define BP_INIT_SIZE	    0x260 /* u32 */

/* First byte after the fields protocol 2.12 defines (init_size is the last we read). */
#define BP_HEADER_MIN_END 0x264
/* The zero page reserves up to here for the header; what follows is EDD and e820. */
#define BP_HEADER_MAX_END 0x290

#define BP_BOOT_FLAG_MAGIC 0xaa55
#define BP_HEADER_MAGIC	   0x53726448 /* "HdrS" little-endian */

#define BP_LOADED_HIGH	0x01
#define BP_CAN_USE_HEAP 0x80

#define BP_XLF_KERNEL_64 0x0001

#define BP_PROTO_64BIT_ENTRY 0x020c /* 2.12: xloadflags */
#define BP_PROTO_ACPI_RSDP   0x020e /* 2.14: acpi_rsdp_addr */

/* Zero-page only fields. */
#define ZP_ACPI_RSDP_ADDR    0x070 /* u64 */
#define ZP_EXT_RAMDISK_IMAGE 0x0c0 /* u32: bits 63..32 */
#define ZP_EXT_RAMDISK_SIZE  0x0c4 /* u32: bits 63..32 */
#define ZP_EXT_CMD_LINE_PTR  0x0c8 /* u32: bits 63..32 */
#define ZP_E820_ENTRIES	     0x1e8 /* u8 */
#define ZP_E820_TABLE	     0x2d0 /* 128 x { u64 addr, u64 size, u32 type } */
#define ZP_E820_ENTRY_SIZE   20
#define ZP_E820_MAX	     128
#define ZP_SIZE		     4096

_Static_assert(ZP_E820_TABLE + ZP_E820_MAX * ZP_E820_ENTRY_SIZE <= ZP_SIZE,
	       "e820 table must fit in the zero page");
_Static_assert(BP_HEADER_MAX_END <= ZP_E820_TABLE, "setup header must end before e820 table");

/* Where the protected-mode kernel is loaded and entered (startup_64 = load + 0x200). */
#define BZ_ENTRY64_OFFSET      0x200
#define BZ_SECTOR	       512
#define BZ_DEFAULT_SETUP_SECTS 4
/* Offset of the end of the setup heap, relative to the real-mode code, minus 0x200. */
#define BZ_HEAP_END	  0xfe00
#define BZ_LOADER_UNKNOWN 0xff

#endif
