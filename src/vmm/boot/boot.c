// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "loader_internal.h"
#include "../layout.h"
#include "../../common/util.h"

uint64_t boot_low_ram_end(const struct gmem *m)
{
	return m->size < LAYOUT_LOW_RAM_END ? m->size : LAYOUT_LOW_RAM_END;
}

int boot_memmap(const struct gmem *m, const struct boot_input *in,
		struct e820_entry buf[E820_MAX_ENTRIES], int limit, const struct e820_entry **map,
		struct error *err)
{
	int n = in->ne820;

	*map = in->e820;
	if (!in->e820 || in->ne820 <= 0) {
		n = e820_build(m->size, buf, E820_MAX_ENTRIES);
		if (n < 0)
			return error_set(err, -n, "kernel: e820 map does not fit in %d entries",
					 E820_MAX_ENTRIES);
		*map = buf;
	}
	if (n > limit)
		return error_set(err, E2BIG,
				 "kernel: e820 map has %d entries; the boot protocol holds %d", n,
				 limit);
	return n;
}

int boot_check_cmdline(const char *cmdline, uint64_t max, size_t *len, struct error *err)
{
	size_t n = cmdline ? strlen(cmdline) : 0;

	/* The command line page is shared by both protocols; never overrun it. */
	if (max > LAYOUT_CMDLINE_MAX - 1)
		max = LAYOUT_CMDLINE_MAX - 1;
	if (n > max)
		return error_set(
			err, E2BIG,
			"kernel: command line is %zu bytes; the kernel accepts at most %llu", n,
			(unsigned long long)max);
	*len = n;
	return 0;
}

int boot_write_cmdline(struct gmem *m, const char *cmdline, size_t len, struct error *err)
{
	uint8_t *p = gmem_ptr(m, LAYOUT_CMDLINE_GPA, len + 1);

	if (!p)
		return error_set(err, EFAULT, "kernel: command line at 0x%llx is outside guest RAM",
				 LAYOUT_CMDLINE_GPA);
	if (len)
		memcpy(p, cmdline, len);
	p[len] = '\0';
	return 0;
}

/* "300 MiB" for messages; exact bytes when the size is not a whole MiB. */
static void format_size(char *buf, size_t n, uint64_t v)
{
	if (v >= MiB && v % MiB == 0)
		snprintf(buf, n, "%llu MiB", (unsigned long long)(v / MiB));
	else
		snprintf(buf, n, "%llu bytes", (unsigned long long)v);
}

int boot_place_initrd(const struct boot_input *in, uint64_t lo, uint64_t hi, uint64_t *gpa,
		      struct error *err)
{
	char need[32], room[32];
	uint64_t len = in->initrd_len;
	uint64_t start;

	*gpa = 0;
	if (!in->initrd || !len)
		return 0;
	lo = align_up(lo, BOOT_PAGE_SIZE);
	if (hi > lo && len <= hi - lo) {
		start = align_down(hi - len, BOOT_PAGE_SIZE);
		if (start >= lo) {
			*gpa = start;
			return 0;
		}
	}
	format_size(need, sizeof(need), len);
	format_size(room, sizeof(room), hi > lo ? hi - lo : 0);
	return error_set(err, ENOMEM,
			 "initrd: %s does not fit below 0x%llx (%s free above the kernel, which "
			 "ends at 0x%llx)",
			 need, (unsigned long long)hi, room, (unsigned long long)lo);
}

int boot_write_initrd(struct gmem *m, const struct boot_input *in, uint64_t gpa, struct error *err)
{
	if (!gpa)
		return 0;
	if (gmem_write(m, gpa, in->initrd, in->initrd_len) < 0)
		return error_set(err, EFAULT, "initrd: 0x%llx..0x%llx is outside guest RAM",
				 (unsigned long long)gpa,
				 (unsigned long long)(gpa + in->initrd_len));
	return 0;
}

int boot_write_gdt(struct gmem *m, enum boot_protocol proto, struct error *err)
{
	const uint64_t gdt[] = {
		[0] = 0,
		[1] = 0,
		[LAYOUT_BOOT_CS / 8] = proto == BOOT_LINUX64 ? BOOT_GDT_CODE64 : BOOT_GDT_CODE32,
		[LAYOUT_BOOT_DS / 8] = BOOT_GDT_DATA,
		[LAYOUT_BOOT_TSS / 8] = BOOT_GDT_TSS,
	};
	uint8_t buf[sizeof(gdt)];

	_Static_assert(sizeof(gdt) == BOOT_GDT_SIZE, "GDT size must match BOOT_GDT_SIZE");
	for (size_t i = 0; i < ARRAY_SIZE(gdt); i++)
		put_le64(buf + 8 * i, gdt[i]);
	if (gmem_write(m, LAYOUT_GDT_GPA, buf, sizeof(buf)) < 0)
		return error_set(err, EFAULT, "kernel: boot GDT at 0x%llx is outside guest RAM",
				 LAYOUT_GDT_GPA);
	return 0;
}

int boot_load(struct gmem *m, const struct boot_input *in, struct boot_entry *out,
	      struct error *err)
{
	memset(out, 0, sizeof(*out));
	if (!in->kernel || in->kernel_len == 0)
		return error_set(err, EINVAL, "kernel: empty file");
	if (bzimage_probe(in->kernel, in->kernel_len))
		return bzimage_load(m, in, out, err);
	if (pvh_probe(in->kernel, in->kernel_len))
		return pvh_load(m, in, out, err);
	return error_set(err, EINVAL, "kernel: not a bzImage or PVH ELF kernel (%zu bytes)",
			 in->kernel_len);
}
