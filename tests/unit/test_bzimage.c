// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/common/util.h"
#include "../../src/vmm/boot/boot.h"
#include "../../src/vmm/boot/bootparam.h"
#include "../../src/vmm/boot/loader_internal.h"
#include "../../src/vmm/kvm/gmem.h"
#include "../../src/vmm/layout.h"
#include "loader_fixture.h"

#define RSDP FIXTURE_RSDP

/* Knobs of the synthetic bzImage; bz_defaults() is a modern 2.15 kernel. */
struct bz_opts {
	uint16_t version;
	uint16_t xloadflags;
	uint8_t loadflags;
	uint8_t setup_sects;	 /* as written in the header */
	unsigned int real_sects; /* what the file really has; 0: same as setup_sects */
	uint8_t jump_off;
	size_t payload;
	uint32_t syssize; /* 0: payload / 16 */
	uint32_t init_size;
	uint64_t pref;
	uint8_t reloc;
	uint32_t align;
	uint32_t cmdline_size;
	uint32_t initrd_max;
};

static struct bz_opts bz_defaults(void)
{
	return (struct bz_opts){
		.version = 0x020f,
		.xloadflags = 0x3,
		.loadflags = BP_LOADED_HIGH,
		.setup_sects = 2,
		.jump_off = 0x6a, /* header ends at 0x26c, like Linux's */
		.payload = 8192,
		.init_size = 4 * MiB,
		.pref = 16 * MiB,
		.reloc = 1,
		.align = 2 * MiB,
		.cmdline_size = 2047,
		.initrd_max = 0x7fffffff,
	};
}

static uint8_t payload_byte(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static uint8_t *make_bz(const struct bz_opts *o, size_t *len)
{
	unsigned int sects = o->real_sects ? o->real_sects : o->setup_sects;
	size_t setup = (sects + 1) * BZ_SECTOR;
	uint8_t *b;

	*len = setup + o->payload;
	b = calloc(1, *len);
	cr_assert_not_null(b);
	/* Setup code after the header: must not leak into the zero page. */
	memset(b + 0x26c, 0xcc, setup - 0x26c);
	b[BP_SETUP_SECTS] = o->setup_sects;
	put_le16(b + 0x1f2, 1); /* root_flags */
	put_le32(b + BP_SYSSIZE, o->syssize ? o->syssize : (uint32_t)(o->payload / 16));
	put_le16(b + 0x1fa, 0xffff); /* vid_mode */
	put_le16(b + BP_BOOT_FLAG, BP_BOOT_FLAG_MAGIC);
	b[BP_JUMP] = 0xeb;
	b[BP_JUMP + 1] = o->jump_off;
	put_le32(b + BP_HEADER, BP_HEADER_MAGIC);
	put_le16(b + BP_VERSION, o->version);
	put_le16(b + 0x20e, 0x1234); /* kernel_version */
	b[BP_LOADFLAGS] = o->loadflags;
	put_le32(b + 0x214, 0x100000); /* code32_start */
	put_le32(b + BP_INITRD_ADDR_MAX, o->initrd_max);
	put_le32(b + BP_KERNEL_ALIGNMENT, o->align);
	b[BP_RELOCATABLE] = o->reloc;
	b[0x235] = 21; /* min_alignment */
	put_le16(b + BP_XLOADFLAGS, o->xloadflags);
	put_le32(b + BP_CMDLINE_SIZE, o->cmdline_size);
	put_le64(b + BP_PREF_ADDRESS, o->pref);
	put_le32(b + BP_INIT_SIZE, o->init_size);
	for (size_t i = 0; i < o->payload; i++)
		b[setup + i] = payload_byte(i);
	return b;
}

static void fx_init(struct fixture *fx, uint64_t ram, const struct bz_opts *o)
{
	size_t len;
	uint8_t *image = make_bz(o, &len);

	loader_fx_init(fx, ram, image, len);
}

static uint8_t *zp(struct fixture *fx)
{
	uint8_t *p = gmem_ptr(&fx->m, LAYOUT_ZERO_PAGE_GPA, ZP_SIZE);

	cr_assert_not_null(p);
	return p;
}

/* A failed load must leave guest memory as it was. */
static void expect_untouched(struct fixture *fx)
{
	uint8_t zero[4096] = {0};

	cr_assert_eq(memcmp(guest(fx, LAYOUT_HIGH_MEM_START, 4096), zero, 4096), 0);
	cr_assert_eq(memcmp(zp(fx), zero, 4096), 0);
	cr_assert_eq(memcmp(guest(fx, LAYOUT_CMDLINE_GPA, 4096), zero, 4096), 0);
}

Test(bzimage, loads_kernel_and_sets_entry)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;
	const uint8_t *k;

	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(fx.out.protocol, BOOT_LINUX64);
	cr_assert_eq(fx.out.rip, LAYOUT_HIGH_MEM_START + 0x200);
	cr_assert_eq(fx.out.info_gpa, LAYOUT_ZERO_PAGE_GPA);
	cr_assert_eq(fx.out.initrd_gpa, 0);
	/* Relocatable, loaded below pref_address: it runs at pref_address. */
	cr_assert_eq(fx.out.kernel_end, 16 * MiB + 4 * MiB);
	k = guest(&fx, LAYOUT_HIGH_MEM_START, o.payload);
	for (size_t i = 0; i < o.payload; i++)
		cr_assert_eq(k[i], payload_byte(i), "kernel byte %zu", i);
	fx_fini(&fx);
}

Test(bzimage, zero_page_loader_fields)
{
	struct bz_opts o = bz_defaults();
	const char *cmd = "console=ttyS0 test=boot";
	struct fixture fx;
	uint8_t *z;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.cmdline = cmd;
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	z = zp(&fx);
	cr_assert_eq(z[BP_TYPE_OF_LOADER], 0xff);
	cr_assert_eq(z[BP_LOADFLAGS], BP_LOADED_HIGH | BP_CAN_USE_HEAP);
	cr_assert_eq(get_le16(z + BP_HEAP_END_PTR), 0xfe00);
	cr_assert_eq(get_le32(z + BP_CMD_LINE_PTR), LAYOUT_CMDLINE_GPA);
	cr_assert_eq(get_le32(z + ZP_EXT_CMD_LINE_PTR), 0);
	cr_assert_str_eq((const char *)guest(&fx, LAYOUT_CMDLINE_GPA, strlen(cmd) + 1), cmd);
	cr_assert_eq(get_le64(z + ZP_ACPI_RSDP_ADDR), RSDP);
	cr_assert_eq(get_le32(z + BP_RAMDISK_IMAGE), 0);
	cr_assert_eq(get_le32(z + BP_RAMDISK_SIZE), 0);
	cr_assert_eq(z[0x1ef], 0, "sentinel must stay zero");
	fx_fini(&fx);
}

Test(bzimage, zero_page_e820_matches_default_map)
{
	struct bz_opts o = bz_defaults();
	struct e820_entry e[E820_MAX_ENTRIES];
	struct fixture fx;
	int n = e820_build(64 * MiB, e, E820_MAX_ENTRIES);
	uint8_t *z;

	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	z = zp(&fx);
	cr_assert_eq(z[ZP_E820_ENTRIES], n);
	for (int i = 0; i < n; i++) {
		const uint8_t *t = z + ZP_E820_TABLE + i * ZP_E820_ENTRY_SIZE;

		cr_assert_eq(get_le64(t), e[i].addr, "entry %d", i);
		cr_assert_eq(get_le64(t + 8), e[i].size, "entry %d", i);
		cr_assert_eq(get_le32(t + 16), e[i].type, "entry %d", i);
	}
	fx_fini(&fx);
}

Test(bzimage, caller_e820_is_used)
{
	struct bz_opts o = bz_defaults();
	const struct e820_entry map[] = {
		{0, 0x9f000, E820_RAM},
		{0x100000, 0x1000000, E820_RAM},
		{0x2000000, 0x1000, E820_NVS},
	};
	struct fixture fx;
	uint8_t *z;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.e820 = map;
	fx.in.ne820 = 3;
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	z = zp(&fx);
	cr_assert_eq(z[ZP_E820_ENTRIES], 3);
	cr_assert_eq(get_le64(z + ZP_E820_TABLE + 2 * ZP_E820_ENTRY_SIZE), 0x2000000);
	cr_assert_eq(get_le32(z + ZP_E820_TABLE + 2 * ZP_E820_ENTRY_SIZE + 16), E820_NVS);
	fx_fini(&fx);
}

Test(bzimage, setup_header_copied_and_bounded)
{
	struct bz_opts o = bz_defaults();
	/* Fields the loader writes; everything else must be the file's bytes. */
	const struct {
		size_t off, len;
	} written[] = {
		{BP_TYPE_OF_LOADER, 1}, {BP_LOADFLAGS, 1},    {BP_RAMDISK_IMAGE, 8},
		{BP_HEAP_END_PTR, 2},	{BP_CMD_LINE_PTR, 4},
	};
	struct fixture fx;
	uint8_t *z;

	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	z = zp(&fx);
	for (size_t off = BP_SETUP_SECTS; off < 0x26c; off++) {
		bool skip = false;

		for (size_t i = 0; i < ARRAY_SIZE(written); i++)
			if (off >= written[i].off && off < written[i].off + written[i].len)
				skip = true;
		if (!skip)
			cr_assert_eq(z[off], fx.image[off], "header byte 0x%zx", off);
	}
	cr_assert_eq(get_le16(z + 0x1fa), 0xffff, "vid_mode");
	cr_assert_eq(get_le32(z + BP_HEADER), BP_HEADER_MAGIC);
	cr_assert_eq(get_le16(z + BP_VERSION), 0x020f);
	/* Past the header's end (0x202 + jump offset) is setup code, not header. */
	for (size_t off = 0x26c; off < ZP_E820_TABLE; off++)
		cr_assert_eq(z[off], 0, "byte 0x%zx beyond the header", off);
	fx_fini(&fx);
}

Test(bzimage, initrd_placed_high_and_page_aligned)
{
	struct bz_opts o = bz_defaults();
	size_t len = MiB + 123;
	uint8_t *rd = malloc(len);
	struct fixture fx;
	uint64_t at;
	uint8_t *z;

	for (size_t i = 0; i < len; i++)
		rd[i] = (uint8_t)(i * 13);
	fx_init(&fx, 64 * MiB, &o);
	fx.in.initrd = rd;
	fx.in.initrd_len = len;
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	at = fx.out.initrd_gpa;
	z = zp(&fx);
	cr_assert_eq(get_le32(z + BP_RAMDISK_IMAGE), at);
	cr_assert_eq(get_le32(z + BP_RAMDISK_SIZE), len);
	cr_assert_eq(get_le32(z + ZP_EXT_RAMDISK_IMAGE), 0);
	cr_assert_eq(get_le32(z + ZP_EXT_RAMDISK_SIZE), 0);
	cr_assert_eq(at % 4096, 0);
	cr_assert_geq(at, fx.out.kernel_end);
	cr_assert_leq(at + len, 64 * MiB);
	cr_assert_gt(at + 4096 + len, 64 * MiB, "initrd must be as high as possible");
	cr_assert_eq(memcmp(guest(&fx, at, len), rd, len), 0);
	fx_fini(&fx);
	free(rd);
}

Test(bzimage, initrd_respects_initrd_addr_max)
{
	struct bz_opts o = bz_defaults();
	static const uint8_t rd[8192] = {1, 2, 3};
	struct fixture fx;

	fx_init(&fx, 4 * GiB, &o);
	fx.in.initrd = rd;
	fx.in.initrd_len = sizeof(rd);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_leq(fx.out.initrd_gpa + sizeof(rd), 0x80000000ULL);
	cr_assert_eq(fx.out.initrd_gpa, 0x80000000ULL - sizeof(rd));
	fx_fini(&fx);
}

Test(bzimage, initrd_stays_below_pci_hole_with_high_ram)
{
	struct bz_opts o = bz_defaults();
	static const uint8_t rd[4096] = {9};
	struct fixture fx;

	o.initrd_max = 0xffffffff;
	fx_init(&fx, 5 * GiB, &o);
	fx.in.initrd = rd;
	fx.in.initrd_len = sizeof(rd);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(fx.out.initrd_gpa, LAYOUT_LOW_RAM_END - sizeof(rd));
	cr_assert_eq(zp(&fx)[ZP_E820_ENTRIES], 5);
	fx_fini(&fx);
}

Test(bzimage, runtime_start_rules_for_kernel_end)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	/* Relocatable with no preference: load address rounded up to the alignment. */
	o.pref = 0;
	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(fx.out.kernel_end, 2 * MiB + 4 * MiB);
	fx_fini(&fx);

	/* Not relocatable: always runs at pref_address. */
	o = bz_defaults();
	o.reloc = 0;
	o.pref = 32 * MiB;
	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(fx.out.kernel_end, 36 * MiB);
	fx_fini(&fx);
}

Test(bzimage, rsdp_only_for_protocol_2_14)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.version = 0x020c;
	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(get_le64(zp(&fx) + ZP_ACPI_RSDP_ADDR), 0);
	fx_fini(&fx);
}

Test(bzimage, setup_sects_zero_means_four)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.setup_sects = 0;
	o.real_sects = 4;
	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(guest(&fx, LAYOUT_HIGH_MEM_START, 1)[0], payload_byte(0));
	cr_assert_eq(guest(&fx, LAYOUT_HIGH_MEM_START + 100, 1)[0], payload_byte(100));
	fx_fini(&fx);
}

Test(bzimage, boot_gdt)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;
	const uint8_t *g;

	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	g = guest(&fx, LAYOUT_GDT_GPA, 40);
	cr_assert_eq(get_le64(g + 0x00), 0);
	cr_assert_eq(get_le64(g + 0x08), 0);
	cr_assert_eq(get_le64(g + LAYOUT_BOOT_CS), 0x00af9b000000ffffULL);
	cr_assert_eq(get_le64(g + LAYOUT_BOOT_DS), 0x00cf93000000ffffULL);
	cr_assert_eq(get_le64(g + LAYOUT_BOOT_TSS), 0x008f8b000000ffffULL);
	fx_fini(&fx);
}

Test(bzimage, identity_page_tables)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;
	const uint8_t *pml4, *pdpt, *pd;

	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	pml4 = guest(&fx, LAYOUT_PML4_GPA, 4096);
	pdpt = guest(&fx, LAYOUT_PDPT_GPA, 4096);
	cr_assert_eq(get_le64(pml4), LAYOUT_PDPT_GPA | 3);
	for (int i = 1; i < 512; i++)
		cr_assert_eq(get_le64(pml4 + 8 * i), 0, "PML4[%d]", i);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(get_le64(pdpt + 8 * i), (LAYOUT_PD_GPA + 4096 * i) | 3, "PDPT[%d]", i);
	for (int i = 4; i < 512; i++)
		cr_assert_eq(get_le64(pdpt + 8 * i), 0, "PDPT[%d]", i);
	for (int t = 0; t < 4; t++) {
		pd = guest(&fx, LAYOUT_PD_GPA + 4096 * t, 4096);
		for (int i = 0; i < 512; i++)
			cr_assert_eq(get_le64(pd + 8 * i), ((uint64_t)(t * 512 + i) << 21) | 0x83,
				     "PD%d[%d]", t, i);
	}
	fx_fini(&fx);
}

/* Error paths: each a negative errno, a message naming the problem, memory untouched. */

Test(bzimage, empty_file)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.kernel_len = 0;
	expect_err(fx_load(&fx), &fx.err, EINVAL, "kernel: empty file");
	fx_fini(&fx);
}

Test(bzimage, not_a_kernel)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.kernel_len = 100;
	expect_err(fx_load(&fx), &fx.err, EINVAL, "not a bzImage or PVH ELF kernel");
	fx_fini(&fx);
}

Test(bzimage, bad_magic)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.image[BP_HEADER] = 'X';
	expect_err(fx_load(&fx), &fx.err, EINVAL, "not a bzImage or PVH ELF kernel");
	fx.image[BP_HEADER] = 'H';
	fx.image[BP_BOOT_FLAG] = 0;
	expect_err(fx_load(&fx), &fx.err, EINVAL, "not a bzImage or PVH ELF kernel");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(bzimage, truncated_header)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.kernel_len = 0x230;
	expect_err(fx_load(&fx), &fx.err, EINVAL,
		   "truncated: bzImage setup header needs 612 bytes but file has 560 bytes");
	fx_fini(&fx);
}

Test(bzimage, old_protocol)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.version = 0x0206;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOTSUP,
		   "kernel: boot protocol 2.06 has no 64-bit entry point; need 2.12+ with "
		   "XLF_KERNEL_64");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(bzimage, no_xlf_kernel_64)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.xloadflags = 0x2;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOTSUP, "without XLF_KERNEL_64");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(bzimage, zimage_rejected)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.loadflags = 0;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOTSUP, "LOADED_HIGH");
	fx_fini(&fx);
}

Test(bzimage, setup_sects_beyond_file)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;
	char want[128];

	o.setup_sects = 200;
	o.real_sects = 2;
	fx_init(&fx, 64 * MiB, &o);
	snprintf(want, sizeof(want),
		 "kernel: truncated: setup header says 200 setup sectors but file has %zu bytes",
		 fx.in.kernel_len);
	expect_err(fx_load(&fx), &fx.err, EINVAL, want);
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(bzimage, truncated_protected_mode_part)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.kernel_len -= 1024;
	expect_err(fx_load(&fx), &fx.err, EINVAL,
		   "truncated: setup header says the protected-mode kernel is 8192 bytes but "
		   "file has 7168");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(bzimage, header_too_short_for_protocol)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.jump_off = 0x30;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, EINVAL, "too short for boot protocol 2.15");
	fx_fini(&fx);
}

Test(bzimage, bad_kernel_alignment)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.align = 0x300000;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, EINVAL,
		   "kernel_alignment 0x300000 is not a power of two");
	fx_fini(&fx);
}

Test(bzimage, cmdline_too_long)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.cmdline_size = 16;
	fx_init(&fx, 64 * MiB, &o);
	fx.in.cmdline = "console=ttyS0 ab"; /* exactly 16: accepted */
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	fx_fini(&fx);

	fx_init(&fx, 64 * MiB, &o);
	fx.in.cmdline = "console=ttyS0 abc";
	expect_err(fx_load(&fx), &fx.err, E2BIG,
		   "command line is 17 bytes; the kernel accepts at most 16");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(bzimage, cmdline_capped_by_cmdline_area)
{
	struct bz_opts o = bz_defaults();
	char *cmd = malloc(LAYOUT_CMDLINE_MAX + 1);
	struct fixture fx;

	memset(cmd, 'a', LAYOUT_CMDLINE_MAX);
	cmd[LAYOUT_CMDLINE_MAX] = '\0';
	o.cmdline_size = 0x7fffffff;
	fx_init(&fx, 64 * MiB, &o);
	fx.in.cmdline = cmd;
	expect_err(fx_load(&fx), &fx.err, E2BIG, "command line is 65536 bytes");
	fx_fini(&fx);
	free(cmd);
}

Test(bzimage, initrd_too_big)
{
	struct bz_opts o = bz_defaults();
	size_t len = 48 * MiB;
	uint8_t *rd = calloc(1, len);
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.initrd = rd;
	fx.in.initrd_len = len;
	expect_err(fx_load(&fx), &fx.err, ENOMEM, "initrd: 48 MiB does not fit below 0x4000000");
	expect_untouched(&fx);
	fx_fini(&fx);
	free(rd);
}

Test(bzimage, init_size_beyond_ram)
{
	struct bz_opts o = bz_defaults();
	struct fixture fx;

	o.init_size = 128 * MiB;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOMEM, "(init_size)");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(bzimage, too_many_e820_entries)
{
	struct bz_opts o = bz_defaults();
	static struct e820_entry map[ZP_E820_MAX + 1];
	struct fixture fx;

	for (int i = 0; i <= ZP_E820_MAX; i++)
		map[i] = (struct e820_entry){(uint64_t)i << 20, 1 << 20, E820_RAM};
	fx_init(&fx, 64 * MiB, &o);
	fx.in.e820 = map;
	fx.in.ne820 = ZP_E820_MAX + 1;
	expect_err(fx_load(&fx), &fx.err, E2BIG, "e820 map has 129 entries");
	fx_fini(&fx);
}
