// SPDX-License-Identifier: MIT
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "loader_internal.h"
#include "pvh.h"
#include "../layout.h"
#include "../../common/util.h"

/*
 * ELF32 and ELF64 differ only in field widths and positions, so both are
 * read into one host-side form through explicit offsets; nothing is cast
 * from the file, and every read is preceded by a bounds check.
 */
struct elf_file {
	const uint8_t *img;
	size_t len;
	bool is64;
	uint64_t phoff;
	unsigned int phentsize;
	unsigned int phnum;
};

struct elf_seg {
	uint32_t type;
	uint64_t offset;
	uint64_t paddr;
	uint64_t filesz;
	uint64_t memsz;
	uint64_t align;
};

struct pvh_plan {
	uint64_t entry;
	uint64_t kernel_end;
	uint64_t initrd_gpa;
	size_t cmdline_len;
	const struct e820_entry *map;
	int nmap;
	struct e820_entry buf[E820_MAX_ENTRIES];
};

/* Size of one ELF note header: namesz, descsz, type. */
#define NOTE_HDR_SIZE 12

bool pvh_probe(const uint8_t *image, size_t len)
{
	return len >= SELFMAG && memcmp(image, ELFMAG, SELFMAG) == 0;
}

static int elf_check_ident(const uint8_t *img, size_t len, struct elf_file *f, struct error *err)
{
	size_t ehsize;
	uint16_t machine;

	if (len < EI_NIDENT)
		return error_set(
			err, EINVAL,
			"kernel: truncated: ELF identification needs %d bytes but file has "
			"%zu",
			EI_NIDENT, len);
	if (img[EI_CLASS] != ELFCLASS64 && img[EI_CLASS] != ELFCLASS32)
		return error_set(err, ENOEXEC,
				 "kernel: ELF class %u is neither ELFCLASS32 nor ELFCLASS64",
				 img[EI_CLASS]);
	if (img[EI_DATA] != ELFDATA2LSB)
		return error_set(err, ENOEXEC, "kernel: ELF is not little-endian (EI_DATA %u)",
				 img[EI_DATA]);
	f->is64 = img[EI_CLASS] == ELFCLASS64;
	ehsize = f->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	if (len < ehsize)
		return error_set(err, EINVAL,
				 "kernel: truncated: ELF header needs %zu bytes but file has %zu",
				 ehsize, len);
	machine = get_le16(img + offsetof(Elf64_Ehdr, e_machine));
	if (machine != EM_X86_64 && machine != EM_386)
		return error_set(err, ENOEXEC,
				 "kernel: ELF machine %u is not x86 (EM_X86_64 or EM_386)",
				 machine);
	return 0;
}

static int elf_parse(const uint8_t *img, size_t len, struct elf_file *f, struct error *err)
{
	unsigned int min_ent;
	int ret;

	memset(f, 0, sizeof(*f));
	f->img = img;
	f->len = len;
	ret = elf_check_ident(img, len, f, err);
	if (ret)
		return ret;
	if (f->is64) {
		f->phoff = get_le64(img + offsetof(Elf64_Ehdr, e_phoff));
		f->phentsize = get_le16(img + offsetof(Elf64_Ehdr, e_phentsize));
		f->phnum = get_le16(img + offsetof(Elf64_Ehdr, e_phnum));
		min_ent = sizeof(Elf64_Phdr);
	} else {
		f->phoff = get_le32(img + offsetof(Elf32_Ehdr, e_phoff));
		f->phentsize = get_le16(img + offsetof(Elf32_Ehdr, e_phentsize));
		f->phnum = get_le16(img + offsetof(Elf32_Ehdr, e_phnum));
		min_ent = sizeof(Elf32_Phdr);
	}
	if (f->phnum == 0)
		return error_set(err, ENOEXEC, "kernel: ELF has no program headers");
	if (f->phnum == PN_XNUM)
		return error_set(err, ENOEXEC,
				 "kernel: ELF uses extended program header numbering (e_phnum "
				 "0x%x); not supported",
				 PN_XNUM);
	if (f->phentsize < min_ent)
		return error_set(err, ENOEXEC,
				 "kernel: ELF e_phentsize %u is smaller than a program header (%u)",
				 f->phentsize, min_ent);
	/* Both factors are 16-bit, so the product cannot overflow. */
	if (!in_bounds(f->phoff, (uint64_t)f->phnum * f->phentsize, len))
		return error_set(err, EINVAL,
				 "kernel: truncated: %u ELF program headers at offset 0x%llx lie "
				 "beyond the file (%zu bytes)",
				 f->phnum, (unsigned long long)f->phoff, len);
	return 0;
}

static void elf_read_seg(const struct elf_file *f, unsigned int i, struct elf_seg *s)
{
	const uint8_t *p = f->img + f->phoff + (uint64_t)i * f->phentsize;

	if (f->is64) {
		s->type = get_le32(p + offsetof(Elf64_Phdr, p_type));
		s->offset = get_le64(p + offsetof(Elf64_Phdr, p_offset));
		s->paddr = get_le64(p + offsetof(Elf64_Phdr, p_paddr));
		s->filesz = get_le64(p + offsetof(Elf64_Phdr, p_filesz));
		s->memsz = get_le64(p + offsetof(Elf64_Phdr, p_memsz));
		s->align = get_le64(p + offsetof(Elf64_Phdr, p_align));
	} else {
		s->type = get_le32(p + offsetof(Elf32_Phdr, p_type));
		s->offset = get_le32(p + offsetof(Elf32_Phdr, p_offset));
		s->paddr = get_le32(p + offsetof(Elf32_Phdr, p_paddr));
		s->filesz = get_le32(p + offsetof(Elf32_Phdr, p_filesz));
		s->memsz = get_le32(p + offsetof(Elf32_Phdr, p_memsz));
		s->align = get_le32(p + offsetof(Elf32_Phdr, p_align));
	}
}

/* Reads the PHYS32_ENTRY note's value: the 32-bit physical entry point. */
static int pvh_note_value(const uint8_t *desc, uint32_t descsz, uint64_t *entry, struct error *err)
{
	if (descsz == 4)
		*entry = get_le32(desc);
	else if (descsz == 8)
		*entry = get_le64(desc);
	else
		return error_set(err, ENOEXEC,
				 "kernel: PVH entry note has a %u-byte value; expected 4 or 8",
				 descsz);
	if (*entry >= LAYOUT_HIGH_RAM_START)
		return error_set(err, ENOEXEC,
				 "kernel: PVH entry point 0x%llx is above 4 GiB; PVH enters in "
				 "32-bit mode",
				 (unsigned long long)*entry);
	return 1;
}

/*
 * Walks the notes of one PT_NOTE segment. Name and descriptor are padded to
 * the segment's alignment: 4 normally, 8 for segments aligned to 8 (as
 * toolchains emit for 64-bit notes). Returns 1 if the Xen PHYS32_ENTRY note
 * was found, 0 if not, or a negative errno.
 */
static int pvh_scan_notes(const struct elf_file *f, unsigned int idx, const struct elf_seg *s,
			  uint64_t *entry, struct error *err)
{
	const uint8_t *notes = f->img + s->offset;
	uint64_t align = s->align == 8 ? 8 : 4;
	uint64_t pos = 0;

	while (s->filesz - pos >= NOTE_HDR_SIZE) {
		uint32_t namesz = get_le32(notes + pos);
		uint32_t descsz = get_le32(notes + pos + 4);
		uint32_t type = get_le32(notes + pos + 8);
		uint64_t name = pos + NOTE_HDR_SIZE;
		uint64_t desc = name + align_up(namesz, align);

		if (!in_bounds(desc, descsz, s->filesz))
			return error_set(err, ENOEXEC,
					 "kernel: malformed ELF note at offset 0x%llx of PT_NOTE "
					 "segment %u: runs past the segment",
					 (unsigned long long)(s->offset + pos), idx);
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
		    memcmp(notes + name, "Xen", 4) == 0)
			return pvh_note_value(notes + desc, descsz, entry, err);
		pos = desc + align_up(descsz, align);
		if (pos > s->filesz)
			break;
	}
	return 0;
}

static int pvh_find_entry(const struct elf_file *f, uint64_t *entry, struct error *err)
{
	struct elf_seg s;

	for (unsigned int i = 0; i < f->phnum; i++) {
		int ret;

		elf_read_seg(f, i, &s);
		if (s.type != PT_NOTE)
			continue;
		if (!in_bounds(s.offset, s.filesz, f->len))
			return error_set(
				err, EINVAL,
				"kernel: truncated: ELF PT_NOTE segment %u (offset 0x%llx, "
				"%llu bytes) lies beyond the file (%zu bytes)",
				i, (unsigned long long)s.offset, (unsigned long long)s.filesz,
				f->len);
		ret = pvh_scan_notes(f, i, &s, entry, err);
		if (ret)
			return ret < 0 ? ret : 0;
	}
	return error_set(err, ENOEXEC,
			 "kernel: ELF has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY note); "
			 "build Linux with CONFIG_PVH=y or use a bzImage");
}

static int pvh_check_load(const struct elf_file *f, unsigned int i, const struct elf_seg *s,
			  uint64_t low_end, struct error *err)
{
	if (!in_bounds(s->offset, s->filesz, f->len))
		return error_set(err, EINVAL,
				 "kernel: truncated: ELF segment %u (offset 0x%llx, %llu bytes) "
				 "lies beyond the file (%zu bytes)",
				 i, (unsigned long long)s->offset, (unsigned long long)s->filesz,
				 f->len);
	if (s->filesz > s->memsz)
		return error_set(err, ENOEXEC,
				 "kernel: ELF segment %u has p_filesz %llu > p_memsz %llu", i,
				 (unsigned long long)s->filesz, (unsigned long long)s->memsz);
	/* Below 1 MiB are the boot structures, the EBDA and the ACPI tables. */
	if (s->paddr < LAYOUT_HIGH_MEM_START || !in_bounds(s->paddr, s->memsz, low_end))
		return error_set(err, ENOMEM,
				 "kernel: ELF segment %u (0x%llx, %llu bytes) is outside guest RAM "
				 "available to a 32-bit kernel (0x%llx..0x%llx)",
				 i, (unsigned long long)s->paddr, (unsigned long long)s->memsz,
				 LAYOUT_HIGH_MEM_START, (unsigned long long)low_end);
	return 0;
}

/* Validates every PT_LOAD before anything is written, and finds the kernel's end. */
static int pvh_check_loads(const struct gmem *m, const struct elf_file *f, struct pvh_plan *p,
			   struct error *err)
{
	uint64_t low_end = boot_low_ram_end(m);
	bool entry_loaded = false;
	unsigned int nload = 0;
	struct elf_seg s;

	for (unsigned int i = 0; i < f->phnum; i++) {
		int ret;

		elf_read_seg(f, i, &s);
		if (s.type != PT_LOAD || (s.memsz == 0 && s.filesz == 0))
			continue;
		ret = pvh_check_load(f, i, &s, low_end, err);
		if (ret)
			return ret;
		nload++;
		if (s.paddr + s.memsz > p->kernel_end)
			p->kernel_end = s.paddr + s.memsz;
		if (p->entry >= s.paddr && p->entry - s.paddr < s.memsz)
			entry_loaded = true;
	}
	if (!nload)
		return error_set(err, ENOEXEC, "kernel: ELF has no PT_LOAD segments");
	if (!entry_loaded)
		return error_set(err, ENOEXEC,
				 "kernel: PVH entry point 0x%llx is not inside any loaded segment",
				 (unsigned long long)p->entry);
	return 0;
}

static int pvh_plan(const struct gmem *m, const struct boot_input *in, const struct elf_file *f,
		    struct pvh_plan *p, struct error *err)
{
	int ret;

	ret = pvh_find_entry(f, &p->entry, err);
	if (!ret)
		ret = pvh_check_loads(m, f, p, err);
	if (!ret)
		ret = boot_check_cmdline(in->cmdline, LAYOUT_CMDLINE_MAX - 1, &p->cmdline_len, err);
	if (!ret)
		ret = boot_place_initrd(in, p->kernel_end, boot_low_ram_end(m), &p->initrd_gpa,
					err);
	if (ret)
		return ret;
	p->nmap = boot_memmap(m, in, p->buf, PVH_MEMMAP_MAX, &p->map, err);
	return p->nmap < 0 ? p->nmap : 0;
}

static int pvh_write_loads(struct gmem *m, const struct elf_file *f, bool ram_zeroed,
			   struct error *err)
{
	struct elf_seg s;

	for (unsigned int i = 0; i < f->phnum; i++) {
		uint8_t *dst;

		elf_read_seg(f, i, &s);
		if (s.type != PT_LOAD || (s.memsz == 0 && s.filesz == 0))
			continue;
		dst = gmem_ptr(m, s.paddr, s.memsz);
		if (!dst)
			return error_set(err, EFAULT, "kernel: ELF segment %u is outside guest RAM",
					 i);
		memcpy(dst, f->img + s.offset, s.filesz);
		/* The part beyond the file is .bss: the kernel expects zeroes. */
		if (!ram_zeroed)
			memset(dst + s.filesz, 0, s.memsz - s.filesz);
	}
	return 0;
}

/* start_info, the module list and the memory map share one page. */
static void pvh_build_info(uint8_t *page, const struct boot_input *in, const struct pvh_plan *p)
{
	struct hvm_start_info si = {
		.magic = XEN_HVM_START_MAGIC,
		.version = XEN_HVM_START_VERSION,
		.cmdline_paddr = LAYOUT_CMDLINE_GPA,
		.rsdp_paddr = in->rsdp_gpa,
		.memmap_paddr = LAYOUT_START_INFO_GPA + PVH_MEMMAP_OFFSET,
		.memmap_entries = (uint32_t)p->nmap,
	};

	memset(page, 0, PVH_INFO_PAGE_SIZE);
	if (p->initrd_gpa) {
		struct hvm_modlist_entry mod = {
			.paddr = p->initrd_gpa,
			.size = in->initrd_len,
		};

		si.nr_modules = 1;
		si.modlist_paddr = LAYOUT_START_INFO_GPA + PVH_MODLIST_OFFSET;
		memcpy(page + PVH_MODLIST_OFFSET, &mod, sizeof(mod));
	}
	memcpy(page, &si, sizeof(si));
	for (int i = 0; i < p->nmap; i++) {
		struct hvm_memmap_table_entry e = {
			.addr = p->map[i].addr,
			.size = p->map[i].size,
			.type = p->map[i].type,
		};

		memcpy(page + PVH_MEMMAP_OFFSET + i * sizeof(e), &e, sizeof(e));
	}
}

static int pvh_write(struct gmem *m, const struct boot_input *in, const struct elf_file *f,
		     const struct pvh_plan *p, struct error *err)
{
	uint8_t page[PVH_INFO_PAGE_SIZE];
	int ret;

	ret = pvh_write_loads(m, f, in->ram_zeroed, err);
	if (!ret)
		ret = boot_write_initrd(m, in, p->initrd_gpa, err);
	if (!ret)
		ret = boot_write_cmdline(m, in->cmdline, p->cmdline_len, err);
	if (!ret)
		ret = boot_write_gdt(m, BOOT_PVH, err);
	if (ret)
		return ret;
	pvh_build_info(page, in, p);
	if (gmem_write(m, LAYOUT_START_INFO_GPA, page, sizeof(page)) < 0)
		return error_set(err, EFAULT,
				 "kernel: hvm_start_info at 0x%llx is outside guest RAM",
				 LAYOUT_START_INFO_GPA);
	return 0;
}

int pvh_load(struct gmem *m, const struct boot_input *in, struct boot_entry *out, struct error *err)
{
	struct elf_file f;
	struct pvh_plan p;
	int ret;

	memset(&p, 0, sizeof(p));
	ret = elf_parse(in->kernel, in->kernel_len, &f, err);
	if (!ret)
		ret = pvh_plan(m, in, &f, &p, err);
	if (!ret)
		ret = pvh_write(m, in, &f, &p, err);
	if (ret)
		return ret;
	out->protocol = BOOT_PVH;
	out->rip = p.entry;
	out->info_gpa = LAYOUT_START_INFO_GPA;
	out->initrd_gpa = p.initrd_gpa;
	out->kernel_end = p.kernel_end;
	return 0;
}
