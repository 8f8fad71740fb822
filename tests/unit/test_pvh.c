// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/common/util.h"
#include "../../src/vmm/boot/boot.h"
#include "../../src/vmm/boot/loader_internal.h"
#include "../../src/vmm/boot/pvh.h"
#include "../../src/vmm/kvm/gmem.h"
#include "../../src/vmm/layout.h"
#include "loader_fixture.h"

#define RSDP	   FIXTURE_RSDP
#define PHOFF	   0x40
#define NOTE_OFF   0x200
#define SEG_A_OFF  0x1000
#define SEG_B_OFF  0x4000
#define IMAGE_SIZE 0x5000

/*
 * A synthetic PVH kernel: segment A (text, fully in the file), segment B
 * (data + bss), and a PT_NOTE with an optional GNU note ahead of Xen's.
 */
struct elf_opts {
	bool is64;
	uint16_t machine;
	uint64_t a_paddr, a_filesz;
	uint64_t b_paddr, b_filesz, b_memsz;
	uint64_t entry;
	uint32_t desc_size; /* 0: no Xen note */
	uint64_t note_align;
	bool gnu_note_first;
};

static struct elf_opts elf_defaults(void)
{
	return (struct elf_opts){
		.is64 = true,
		.machine = EM_X86_64,
		.a_paddr = 16 * MiB,
		.a_filesz = 0x3000,
		.b_paddr = 18 * MiB,
		.b_filesz = 0x100,
		.b_memsz = 0x2000,
		.entry = 16 * MiB + 0x40,
		.desc_size = 8,
		.note_align = 4,
	};
}

static uint8_t image_byte(size_t off)
{
	return (uint8_t)(off * 5 + 1);
}

/* Appends one note at pos, padded to align; returns the new position. */
static size_t put_note(uint8_t *b, size_t pos, const char *name, uint32_t type, const uint8_t *desc,
		       uint32_t descsz, uint64_t align)
{
	uint32_t namesz = (uint32_t)strlen(name) + 1;

	put_le32(b + pos, namesz);
	put_le32(b + pos + 4, descsz);
	put_le32(b + pos + 8, type);
	pos += 12;
	memcpy(b + pos, name, namesz);
	pos += align_up(namesz, align);
	memcpy(b + pos, desc, descsz);
	return pos + align_up(descsz, align);
}

static size_t put_notes(uint8_t *b, const struct elf_opts *o)
{
	static const uint8_t gnu[5] = {1, 2, 3, 4, 5};
	uint8_t desc[8];
	size_t pos = NOTE_OFF;

	if (o->gnu_note_first)
		pos = put_note(b, pos, "GNU", 1, gnu, sizeof(gnu), o->note_align);
	put_le64(desc, o->entry);
	if (o->desc_size)
		pos = put_note(b, pos, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, desc, o->desc_size,
			       o->note_align);
	else
		pos = put_note(b, pos, "Xen", 17, desc, 8, o->note_align); /* some other note */
	return pos - NOTE_OFF;
}

static void put_phdr(uint8_t *b, const struct elf_opts *o, int i, uint32_t type, uint64_t off,
		     uint64_t paddr, uint64_t filesz, uint64_t memsz, uint64_t align)
{
	if (o->is64) {
		Elf64_Phdr p = {.p_type = type,
				.p_offset = off,
				.p_vaddr = paddr | 0xffffffff80000000ULL,
				.p_paddr = paddr,
				.p_filesz = filesz,
				.p_memsz = memsz,
				.p_align = align};

		memcpy(b + PHOFF + i * sizeof(p), &p, sizeof(p));
	} else {
		Elf32_Phdr p = {.p_type = type,
				.p_offset = (uint32_t)off,
				.p_vaddr = (uint32_t)paddr,
				.p_paddr = (uint32_t)paddr,
				.p_filesz = (uint32_t)filesz,
				.p_memsz = (uint32_t)memsz,
				.p_align = (uint32_t)align};

		memcpy(b + PHOFF + i * sizeof(p), &p, sizeof(p));
	}
}

static void put_ehdr(uint8_t *b, const struct elf_opts *o)
{
	memcpy(b, ELFMAG, SELFMAG);
	b[EI_CLASS] = o->is64 ? ELFCLASS64 : ELFCLASS32;
	b[EI_DATA] = ELFDATA2LSB;
	b[EI_VERSION] = EV_CURRENT;
	if (o->is64) {
		Elf64_Ehdr e;

		memcpy(&e, b, sizeof(e));
		e.e_type = ET_EXEC;
		e.e_machine = o->machine;
		e.e_version = EV_CURRENT;
		e.e_entry = 0xffffffff81000000ULL;
		e.e_phoff = PHOFF;
		e.e_ehsize = sizeof(e);
		e.e_phentsize = sizeof(Elf64_Phdr);
		e.e_phnum = 3;
		memcpy(b, &e, sizeof(e));
	} else {
		Elf32_Ehdr e;

		memcpy(&e, b, sizeof(e));
		e.e_type = ET_EXEC;
		e.e_machine = o->machine;
		e.e_version = EV_CURRENT;
		e.e_entry = (uint32_t)o->entry;
		e.e_phoff = PHOFF;
		e.e_ehsize = sizeof(e);
		e.e_phentsize = sizeof(Elf32_Phdr);
		e.e_phnum = 3;
		memcpy(b, &e, sizeof(e));
	}
}

static uint8_t *make_elf(const struct elf_opts *o, size_t *len)
{
	uint8_t *b = calloc(1, IMAGE_SIZE);
	size_t notes;

	cr_assert_not_null(b);
	for (size_t i = SEG_A_OFF; i < IMAGE_SIZE; i++)
		b[i] = image_byte(i);
	put_ehdr(b, o);
	put_phdr(b, o, 0, PT_LOAD, SEG_A_OFF, o->a_paddr, o->a_filesz, o->a_filesz, 0x200000);
	put_phdr(b, o, 1, PT_LOAD, SEG_B_OFF, o->b_paddr, o->b_filesz, o->b_memsz, 0x1000);
	notes = put_notes(b, o);
	put_phdr(b, o, 2, PT_NOTE, NOTE_OFF, 0, notes, notes, o->note_align);
	*len = IMAGE_SIZE;
	return b;
}

/* Field offsets in the program header table, for corrupting one field. */
static uint8_t *phdr_field(uint8_t *img, int i, size_t off64)
{
	return img + PHOFF + i * sizeof(Elf64_Phdr) + off64;
}

static void fx_init(struct fixture *fx, uint64_t ram, const struct elf_opts *o)
{
	size_t len;
	uint8_t *image = make_elf(o, &len);

	loader_fx_init(fx, ram, image, len);
}

static struct hvm_start_info start_info(struct fixture *fx)
{
	struct hvm_start_info si;

	cr_assert_eq(gmem_read(&fx->m, LAYOUT_START_INFO_GPA, &si, sizeof(si)), 0);
	return si;
}

static void expect_untouched(struct fixture *fx)
{
	uint8_t zero[4096] = {0};

	cr_assert_eq(memcmp(guest(fx, 16 * MiB, 4096), zero, 4096), 0);
	cr_assert_eq(memcmp(guest(fx, LAYOUT_START_INFO_GPA, 4096), zero, 4096), 0);
	cr_assert_eq(memcmp(guest(fx, LAYOUT_CMDLINE_GPA, 4096), zero, 4096), 0);
}

static void check_segments(struct fixture *fx, const struct elf_opts *o)
{
	const uint8_t *a = guest(fx, o->a_paddr, o->a_filesz);
	const uint8_t *b = guest(fx, o->b_paddr, o->b_memsz);

	for (size_t i = 0; i < o->a_filesz; i++)
		cr_assert_eq(a[i], image_byte(SEG_A_OFF + i), "segment A byte %zu", i);
	for (size_t i = 0; i < o->b_filesz; i++)
		cr_assert_eq(b[i], image_byte(SEG_B_OFF + i), "segment B byte %zu", i);
	for (size_t i = o->b_filesz; i < o->b_memsz; i++)
		cr_assert_eq(b[i], 0, "bss byte %zu", i);
}

Test(pvh, elf64_loads_segments_and_zeroes_bss)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	/* Stale bytes where the bss goes: the loader must clear them. */
	memset(guest(&fx, o.b_paddr, o.b_memsz), 0xaa, o.b_memsz);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(fx.out.protocol, BOOT_PVH);
	cr_assert_eq(fx.out.rip, o.entry);
	cr_assert_eq(fx.out.info_gpa, LAYOUT_START_INFO_GPA);
	cr_assert_eq(fx.out.kernel_end, o.b_paddr + o.b_memsz);
	cr_assert_eq(fx.out.initrd_gpa, 0);
	check_segments(&fx, &o);
	fx_fini(&fx);
}

Test(pvh, elf32_with_4_byte_note)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.is64 = false;
	o.machine = EM_386;
	o.desc_size = 4;
	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(fx.out.rip, o.entry);
	check_segments(&fx, &o);
	fx_fini(&fx);
}

Test(pvh, note_after_other_note_with_8_byte_alignment)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.note_align = 8;
	o.gnu_note_first = true;
	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(fx.out.rip, o.entry);
	fx_fini(&fx);

	o.note_align = 4;
	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(fx.out.rip, o.entry);
	fx_fini(&fx);
}

Test(pvh, start_info_fields)
{
	struct elf_opts o = elf_defaults();
	const char *cmd = "console=ttyS0 test=boot";
	struct fixture fx;
	struct hvm_start_info si;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.cmdline = cmd;
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	si = start_info(&fx);
	cr_assert_eq(si.magic, 0x336ec578);
	cr_assert_eq(si.version, 1);
	cr_assert_eq(si.flags, 0);
	cr_assert_eq(si.cmdline_paddr, LAYOUT_CMDLINE_GPA);
	cr_assert_str_eq((const char *)guest(&fx, LAYOUT_CMDLINE_GPA, strlen(cmd) + 1), cmd);
	cr_assert_eq(si.rsdp_paddr, RSDP);
	cr_assert_eq(si.nr_modules, 0);
	cr_assert_eq(si.modlist_paddr, 0);
	fx_fini(&fx);
}

Test(pvh, memmap_in_start_info_page)
{
	struct elf_opts o = elf_defaults();
	struct e820_entry e[E820_MAX_ENTRIES];
	struct fixture fx;
	struct hvm_start_info si;
	int n = e820_build(5 * GiB, e, E820_MAX_ENTRIES);

	fx_init(&fx, 5 * GiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	si = start_info(&fx);
	cr_assert_eq(si.memmap_entries, n);
	cr_assert_geq(si.memmap_paddr, LAYOUT_START_INFO_GPA + sizeof(si));
	cr_assert_leq(si.memmap_paddr + n * sizeof(struct hvm_memmap_table_entry),
		      LAYOUT_START_INFO_GPA + 4096, "memmap must stay in the start_info page");
	for (int i = 0; i < n; i++) {
		struct hvm_memmap_table_entry m;

		cr_assert_eq(gmem_read(&fx.m, si.memmap_paddr + i * sizeof(m), &m, sizeof(m)), 0);
		cr_assert_eq(m.addr, e[i].addr, "entry %d", i);
		cr_assert_eq(m.size, e[i].size, "entry %d", i);
		cr_assert_eq(m.type, e[i].type, "entry %d", i);
		cr_assert_eq(m.reserved, 0);
	}
	fx_fini(&fx);
}

Test(pvh, initrd_is_module_zero)
{
	struct elf_opts o = elf_defaults();
	size_t len = 3 * 4096 + 17;
	uint8_t *rd = malloc(len);
	struct hvm_modlist_entry mod;
	struct hvm_start_info si;
	struct fixture fx;

	for (size_t i = 0; i < len; i++)
		rd[i] = (uint8_t)(i ^ 0x5a);
	fx_init(&fx, 64 * MiB, &o);
	fx.in.initrd = rd;
	fx.in.initrd_len = len;
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	si = start_info(&fx);
	cr_assert_eq(si.nr_modules, 1);
	cr_assert_geq(si.modlist_paddr, LAYOUT_START_INFO_GPA + sizeof(si));
	cr_assert_lt(si.modlist_paddr, LAYOUT_START_INFO_GPA + 4096);
	cr_assert_eq(gmem_read(&fx.m, si.modlist_paddr, &mod, sizeof(mod)), 0);
	cr_assert_eq(mod.paddr, fx.out.initrd_gpa);
	cr_assert_eq(mod.size, len);
	cr_assert_eq(mod.cmdline_paddr, 0);
	cr_assert_eq(mod.paddr % 4096, 0);
	cr_assert_geq(mod.paddr, fx.out.kernel_end);
	cr_assert_leq(mod.paddr + len, 64 * MiB);
	cr_assert_gt(mod.paddr + 4096 + len, 64 * MiB);
	cr_assert_eq(memcmp(guest(&fx, mod.paddr, len), rd, len), 0);
	/* The memmap must not overlap the module list. */
	cr_assert_geq(si.memmap_paddr, si.modlist_paddr + sizeof(mod));
	fx_fini(&fx);
	free(rd);
}

Test(pvh, boot_gdt_has_32_bit_code)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;
	const uint8_t *g;

	fx_init(&fx, 64 * MiB, &o);
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	g = guest(&fx, LAYOUT_GDT_GPA, BOOT_GDT_SIZE);
	cr_assert_eq(get_le64(g + LAYOUT_BOOT_CS), 0x00cf9b000000ffffULL);
	cr_assert_eq(get_le64(g + LAYOUT_BOOT_DS), 0x00cf93000000ffffULL);
	cr_assert_eq(get_le64(g + LAYOUT_BOOT_TSS), 0x008f8b000000ffffULL);
	fx_fini(&fx);
}

/* Error paths. */

Test(pvh, elf_without_pvh_note)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.desc_size = 0;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC,
		   "ELF has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY note)");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(pvh, bad_note_size)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.desc_size = 2;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "PVH entry note has a 2-byte value");
	fx_fini(&fx);
}

Test(pvh, note_running_past_segment)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	put_le32(fx.image + NOTE_OFF + 4, 0x7fffffff); /* descsz */
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "malformed ELF note");
	fx_fini(&fx);
}

Test(pvh, entry_outside_segments)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.entry = 40 * MiB;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC,
		   "PVH entry point 0x2800000 is not inside any loaded segment");
	fx_fini(&fx);
}

Test(pvh, entry_above_4gib)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.entry = 0x100001000ULL;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "above 4 GiB");
	fx_fini(&fx);
}

Test(pvh, segment_outside_ram)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.b_paddr = 64 * MiB - 0x1000; /* bss runs past the end of 64 MiB */
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOMEM,
		   "ELF segment 1 (0x3fff000, 8192 bytes) is outside");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(pvh, segment_above_4gib_rejected)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.b_paddr = LAYOUT_HIGH_RAM_START;
	fx_init(&fx, 5 * GiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOMEM, "ELF segment 1");
	fx_fini(&fx);
}

Test(pvh, segment_below_1mib_rejected)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.b_paddr = LAYOUT_ZERO_PAGE_GPA;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOMEM, "ELF segment 1 (0x7000");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(pvh, segment_wrapping_address_rejected)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.b_paddr = 0xfffffffffffff000ULL;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOMEM, "is outside guest RAM");
	fx_fini(&fx);
}

Test(pvh, segment_offset_beyond_file)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	put_le64(phdr_field(fx.image, 1, offsetof(Elf64_Phdr, p_offset)), 0xffffffffffffff00ULL);
	expect_err(fx_load(&fx), &fx.err, EINVAL,
		   "truncated: ELF segment 1 (offset 0xffffffffffffff00, 256 bytes) lies beyond "
		   "the file");
	expect_untouched(&fx);
	fx_fini(&fx);
}

Test(pvh, segment_filesz_beyond_file)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.b_filesz = 0x1001; /* one byte past the end of the image */
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, EINVAL, "lies beyond the file (20480 bytes)");
	fx_fini(&fx);
}

Test(pvh, filesz_larger_than_memsz)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	o.b_memsz = 0x80;
	fx_init(&fx, 64 * MiB, &o);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "p_filesz 256 > p_memsz 128");
	fx_fini(&fx);
}

Test(pvh, note_segment_beyond_file)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	put_le64(phdr_field(fx.image, 2, offsetof(Elf64_Phdr, p_filesz)), 0x10000);
	expect_err(fx_load(&fx), &fx.err, EINVAL, "PT_NOTE segment 2");
	fx_fini(&fx);
}

Test(pvh, phnum_overflow)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	put_le16(fx.image + offsetof(Elf64_Ehdr, e_phnum), 0xfff0);
	expect_err(fx_load(&fx), &fx.err, EINVAL,
		   "truncated: 65520 ELF program headers at offset 0x40 lie beyond the file");
	put_le16(fx.image + offsetof(Elf64_Ehdr, e_phnum), 3);
	put_le64(fx.image + offsetof(Elf64_Ehdr, e_phoff), 0xffffffffffffffc0ULL);
	expect_err(fx_load(&fx), &fx.err, EINVAL, "lie beyond the file");
	put_le64(fx.image + offsetof(Elf64_Ehdr, e_phoff), PHOFF);
	put_le16(fx.image + offsetof(Elf64_Ehdr, e_phnum), PN_XNUM);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "extended program header numbering");
	put_le16(fx.image + offsetof(Elf64_Ehdr, e_phnum), 0);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "no program headers");
	fx_fini(&fx);
}

Test(pvh, phentsize_too_small)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	put_le16(fx.image + offsetof(Elf64_Ehdr, e_phentsize), 8);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "e_phentsize 8 is smaller");
	fx_fini(&fx);
}

Test(pvh, bad_class_data_machine)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.image[EI_CLASS] = 7;
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "ELF class 7");
	fx.image[EI_CLASS] = ELFCLASS64;
	fx.image[EI_DATA] = ELFDATA2MSB;
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "not little-endian");
	fx.image[EI_DATA] = ELFDATA2LSB;
	put_le16(fx.image + offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "ELF machine 183 is not x86");
	fx_fini(&fx);
}

Test(pvh, truncated_elf_header)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.kernel_len = 40;
	expect_err(fx_load(&fx), &fx.err, EINVAL,
		   "truncated: ELF header needs 64 bytes but file has 40");
	fx.in.kernel_len = 8;
	expect_err(fx_load(&fx), &fx.err, EINVAL, "truncated: ELF identification");
	fx_fini(&fx);
}

Test(pvh, no_load_segments)
{
	struct elf_opts o = elf_defaults();
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	put_le32(phdr_field(fx.image, 0, 0), PT_NULL);
	put_le32(phdr_field(fx.image, 1, 0), PT_NULL);
	expect_err(fx_load(&fx), &fx.err, ENOEXEC, "no PT_LOAD segments");
	fx_fini(&fx);
}

Test(pvh, cmdline_too_long)
{
	struct elf_opts o = elf_defaults();
	char *cmd = malloc(LAYOUT_CMDLINE_MAX + 1);
	struct fixture fx;

	memset(cmd, 'x', LAYOUT_CMDLINE_MAX);
	cmd[LAYOUT_CMDLINE_MAX] = '\0';
	fx_init(&fx, 64 * MiB, &o);
	fx.in.cmdline = cmd;
	expect_err(fx_load(&fx), &fx.err, E2BIG,
		   "command line is 65536 bytes; the kernel accepts at most 65535");
	expect_untouched(&fx);
	cmd[LAYOUT_CMDLINE_MAX - 1] = '\0';
	cr_assert_eq(fx_load(&fx), 0, "%s", fx.err.msg);
	cr_assert_eq(guest(&fx, LAYOUT_CMDLINE_GPA + LAYOUT_CMDLINE_MAX - 1, 1)[0], 0);
	fx_fini(&fx);
	free(cmd);
}

Test(pvh, initrd_too_big)
{
	struct elf_opts o = elf_defaults();
	size_t len = 60 * MiB;
	uint8_t *rd = calloc(1, len);
	struct fixture fx;

	fx_init(&fx, 64 * MiB, &o);
	fx.in.initrd = rd;
	fx.in.initrd_len = len;
	expect_err(fx_load(&fx), &fx.err, ENOMEM, "initrd: 60 MiB does not fit below 0x4000000");
	expect_untouched(&fx);
	fx_fini(&fx);
	free(rd);
}
