// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "bootparam.h"
#include "loader_internal.h"
#include "../layout.h"
#include "../../common/util.h"

/* Boot protocol 2.00-2.02 kernels may use up to here for an initrd; later ones say. */
#define BZ_DEFAULT_INITRD_ADDR_MAX 0x37ffffffU

/* What the loader needs from the setup header, parsed once and validated. */
struct bz_header {
	uint16_t version;
	uint8_t loadflags;
	unsigned int setup_sects;
	uint64_t setup_size; /* real-mode part, boot sector included */
	uint64_t pm_size;    /* protected-mode part: the rest of the file */
	size_t hdr_end;	     /* end of the setup header in the file (and zero page) */
	uint32_t initrd_addr_max;
	uint32_t kernel_alignment;
	bool relocatable;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t cmdline_size;
};

/* Where everything goes; computed before guest memory is touched. */
struct bz_plan {
	uint64_t load;
	uint64_t kernel_end;
	uint64_t initrd_gpa;
	size_t cmdline_len;
	const struct e820_entry *map;
	int nmap;
	struct e820_entry buf[E820_MAX_ENTRIES];
};

bool bzimage_probe(const uint8_t *image, size_t len)
{
	return len >= BP_HEADER + 4 && get_le16(image + BP_BOOT_FLAG) == BP_BOOT_FLAG_MAGIC &&
	       get_le32(image + BP_HEADER) == BP_HEADER_MAGIC;
}

/* The file must hold the setup sectors the header claims, and a kernel after them. */
static int bz_check_sizes(const uint8_t *image, size_t len, struct bz_header *h, struct error *err)
{
	uint64_t syssize = get_le32(image + BP_SYSSIZE);

	h->setup_sects = image[BP_SETUP_SECTS] ? image[BP_SETUP_SECTS] : BZ_DEFAULT_SETUP_SECTS;
	h->setup_size = (uint64_t)(h->setup_sects + 1) * BZ_SECTOR;
	if (h->setup_size >= len)
		return error_set(err, EINVAL,
				 "kernel: truncated: setup header says %u setup sectors but file "
				 "has %zu bytes",
				 h->setup_sects, len);
	h->pm_size = len - h->setup_size;
	/* syssize counts 16-byte paragraphs; a shorter file lost its tail. */
	if (syssize * 16 > h->pm_size)
		return error_set(err, EINVAL,
				 "kernel: truncated: setup header says the protected-mode kernel "
				 "is %llu bytes but file has %llu after the setup sectors",
				 (unsigned long long)(syssize * 16),
				 (unsigned long long)h->pm_size);
	return 0;
}

static int bz_check_protocol(const uint8_t *image, struct bz_header *h, struct error *err)
{
	h->version = get_le16(image + BP_VERSION);
	if (h->version < BP_PROTO_64BIT_ENTRY)
		return error_set(err, ENOTSUP,
				 "kernel: boot protocol %u.%02u has no 64-bit entry point; need "
				 "2.12+ with XLF_KERNEL_64",
				 h->version >> 8, h->version & 0xff);
	if (!(get_le16(image + BP_XLOADFLAGS) & BP_XLF_KERNEL_64))
		return error_set(
			err, ENOTSUP,
			"kernel: boot protocol %u.%02u kernel without XLF_KERNEL_64 has no "
			"64-bit entry point; need 2.12+ with XLF_KERNEL_64",
			h->version >> 8, h->version & 0xff);
	h->loadflags = image[BP_LOADFLAGS];
	if (!(h->loadflags & BP_LOADED_HIGH))
		return error_set(err, ENOTSUP,
				 "kernel: zImage (LOADED_HIGH clear) is not supported; need a "
				 "bzImage");
	/* The jump at 0x200 skips the header, so its target is where the header ends. */
	h->hdr_end = BP_HEADER + image[BP_JUMP + 1];
	if (h->hdr_end < BP_HEADER_MIN_END)
		return error_set(err, EINVAL,
				 "kernel: setup header ends at 0x%zx, too short for boot protocol "
				 "%u.%02u",
				 h->hdr_end, h->version >> 8, h->version & 0xff);
	if (h->hdr_end > BP_HEADER_MAX_END)
		h->hdr_end = BP_HEADER_MAX_END;
	return 0;
}

static int bz_parse(const uint8_t *image, size_t len, struct bz_header *h, struct error *err)
{
	int ret;

	memset(h, 0, sizeof(*h));
	if (len < BP_HEADER_MIN_END)
		return error_set(err, EINVAL,
				 "kernel: truncated: bzImage setup header needs %u bytes but file "
				 "has %zu bytes",
				 BP_HEADER_MIN_END, len);
	ret = bz_check_sizes(image, len, h, err);
	if (!ret)
		ret = bz_check_protocol(image, h, err);
	if (ret)
		return ret;
	h->initrd_addr_max = get_le32(image + BP_INITRD_ADDR_MAX);
	if (!h->initrd_addr_max)
		h->initrd_addr_max = BZ_DEFAULT_INITRD_ADDR_MAX;
	h->kernel_alignment = get_le32(image + BP_KERNEL_ALIGNMENT);
	h->relocatable = image[BP_RELOCATABLE] != 0;
	h->pref_address = get_le64(image + BP_PREF_ADDRESS);
	h->init_size = get_le32(image + BP_INIT_SIZE);
	h->cmdline_size = get_le32(image + BP_CMDLINE_SIZE);
	if (h->relocatable &&
	    (h->kernel_alignment == 0 || (h->kernel_alignment & (h->kernel_alignment - 1))))
		return error_set(err, EINVAL, "kernel: kernel_alignment 0x%x is not a power of two",
				 h->kernel_alignment);
	return 0;
}

/*
 * Where the kernel decompresses itself (boot.rst, init_size): a relocatable
 * kernel runs at its load address rounded up to kernel_alignment but never
 * below pref_address; a fixed one always runs at pref_address. It needs
 * init_size bytes from there, so that is what the initrd must stay above.
 */
static int bz_plan_kernel(const struct gmem *m, const struct bz_header *h, struct bz_plan *p,
			  struct error *err)
{
	uint64_t low_end = boot_low_ram_end(m);
	uint64_t pref = h->pref_address ? h->pref_address : LAYOUT_HIGH_MEM_START;
	uint64_t run;

	p->load = LAYOUT_HIGH_MEM_START;
	if (!in_bounds(p->load, h->pm_size, low_end))
		return error_set(err, ENOMEM,
				 "kernel: %llu-byte kernel does not fit at 0x%llx; RAM below the "
				 "PCI hole ends at 0x%llx",
				 (unsigned long long)h->pm_size, (unsigned long long)p->load,
				 (unsigned long long)low_end);
	if (pref >= low_end)
		return error_set(err, ENOMEM,
				 "kernel: pref_address 0x%llx is beyond RAM below the PCI hole "
				 "(ends at 0x%llx)",
				 (unsigned long long)pref, (unsigned long long)low_end);
	run = pref;
	if (h->relocatable)
		run = align_up(p->load > pref ? p->load : pref, h->kernel_alignment);
	if (!in_bounds(run, h->init_size, low_end))
		return error_set(err, ENOMEM,
				 "kernel: needs 0x%x bytes (init_size) from 0x%llx but RAM below "
				 "the PCI hole ends at 0x%llx",
				 h->init_size, (unsigned long long)run,
				 (unsigned long long)low_end);
	p->kernel_end = p->load + h->pm_size;
	if (run + h->init_size > p->kernel_end)
		p->kernel_end = run + h->init_size;
	return 0;
}

static int bz_plan(const struct gmem *m, const struct boot_input *in, const struct bz_header *h,
		   struct bz_plan *p, struct error *err)
{
	uint64_t hi = (uint64_t)h->initrd_addr_max + 1;
	int ret;

	ret = bz_plan_kernel(m, h, p, err);
	if (ret)
		return ret;
	ret = boot_check_cmdline(in->cmdline, h->cmdline_size, &p->cmdline_len, err);
	if (ret)
		return ret;
	if (hi > boot_low_ram_end(m))
		hi = boot_low_ram_end(m);
	ret = boot_place_initrd(in, p->kernel_end, hi, &p->initrd_gpa, err);
	if (ret)
		return ret;
	p->nmap = boot_memmap(m, in, p->buf, ZP_E820_MAX, &p->map, err);
	return p->nmap < 0 ? p->nmap : 0;
}

static void zp_set_e820(uint8_t *zp, const struct bz_plan *p)
{
	zp[ZP_E820_ENTRIES] = (uint8_t)p->nmap;
	for (int i = 0; i < p->nmap; i++) {
		uint8_t *e = zp + ZP_E820_TABLE + i * ZP_E820_ENTRY_SIZE;

		put_le64(e, p->map[i].addr);
		put_le64(e + 8, p->map[i].size);
		put_le32(e + 16, p->map[i].type);
	}
}

/*
 * The zero page starts as the kernel's own setup header (so the kernel
 * sees its own fields unchanged) plus what a boot loader must fill in.
 */
static void zp_build(uint8_t *zp, const uint8_t *image, const struct boot_input *in,
		     const struct bz_header *h, const struct bz_plan *p)
{
	memset(zp, 0, ZP_SIZE);
	memcpy(zp + BP_SETUP_SECTS, image + BP_SETUP_SECTS, h->hdr_end - BP_SETUP_SECTS);
	zp[BP_TYPE_OF_LOADER] = BZ_LOADER_UNKNOWN;
	zp[BP_LOADFLAGS] = h->loadflags | BP_CAN_USE_HEAP;
	put_le16(zp + BP_HEAP_END_PTR, BZ_HEAP_END);
	put_le32(zp + BP_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE_GPA);
	put_le32(zp + ZP_EXT_CMD_LINE_PTR, (uint32_t)(LAYOUT_CMDLINE_GPA >> 32));
	if (p->initrd_gpa) {
		put_le32(zp + BP_RAMDISK_IMAGE, (uint32_t)p->initrd_gpa);
		put_le32(zp + ZP_EXT_RAMDISK_IMAGE, (uint32_t)(p->initrd_gpa >> 32));
		put_le32(zp + BP_RAMDISK_SIZE, (uint32_t)in->initrd_len);
		put_le32(zp + ZP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)in->initrd_len >> 32));
	}
	/* Older kernels find the RSDP by scanning 0xe0000; the field is 2.14+. */
	if (h->version >= BP_PROTO_ACPI_RSDP)
		put_le64(zp + ZP_ACPI_RSDP_ADDR, in->rsdp_gpa);
	zp_set_e820(zp, p);
}

static int bz_write(struct gmem *m, const struct boot_input *in, const struct bz_header *h,
		    const struct bz_plan *p, struct error *err)
{
	uint8_t zp[ZP_SIZE];
	int ret;

	if (gmem_write(m, p->load, in->kernel + h->setup_size, h->pm_size) < 0)
		return error_set(err, EFAULT, "kernel: 0x%llx..+%llu is outside guest RAM",
				 (unsigned long long)p->load, (unsigned long long)h->pm_size);
	ret = boot_write_initrd(m, in, p->initrd_gpa, err);
	if (!ret)
		ret = boot_write_cmdline(m, in->cmdline, p->cmdline_len, err);
	if (ret)
		return ret;
	zp_build(zp, in->kernel, in, h, p);
	if (gmem_write(m, LAYOUT_ZERO_PAGE_GPA, zp, sizeof(zp)) < 0)
		return error_set(err, EFAULT, "kernel: zero page at 0x%llx is outside guest RAM",
				 LAYOUT_ZERO_PAGE_GPA);
	ret = boot_write_gdt(m, BOOT_LINUX64, err);
	if (!ret)
		ret = pagetable_build_identity(m, err);
	return ret;
}

int bzimage_load(struct gmem *m, const struct boot_input *in, struct boot_entry *out,
		 struct error *err)
{
	struct bz_header h;
	struct bz_plan p;
	int ret;

	memset(&p, 0, sizeof(p));
	ret = bz_parse(in->kernel, in->kernel_len, &h, err);
	if (!ret)
		ret = bz_plan(m, in, &h, &p, err);
	if (!ret)
		ret = bz_write(m, in, &h, &p, err);
	if (ret)
		return ret;
	out->protocol = BOOT_LINUX64;
	out->rip = p.load + BZ_ENTRY64_OFFSET;
	out->info_gpa = LAYOUT_ZERO_PAGE_GPA;
	out->initrd_gpa = p.initrd_gpa;
	out->kernel_end = p.kernel_end;
	return 0;
}
