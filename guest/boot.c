/* SPDX-License-Identifier: MIT */
/*
 * test=boot: what a real kernel relies on at boot.
 *   e820: sorted, non-overlapping, RAM below 640 KiB and at 1 MiB;
 *         total RAM in (M - 2 MiB, M] for expect_mem_mib=M
 *   ACPI: RSDP checksums, XSDT/RSDT and every table's checksum, FADT ->
 *         DSDT checksum, FACS signature; MADT enabled CPUs vs expect_cpus=N
 *   command line: echoed as cmdline_len=
 *   initrd: initrd_size=, initrd_crc32=<hex> (zlib's CRC-32)
 */
#include "guest.h"

extern uint8_t __image_start[], _end[];

static const char *entry_name(uint32_t e)
{
	switch (e) {
	case ENTRY_PVH:
		return "pvh";
	case ENTRY_BZ64:
		return "bz64";
	case ENTRY_BZ32:
		return "bz32";
	case ENTRY_BZ16:
		return "bz16";
	}
	return "unknown";
}

static bool in_ram(uint64_t addr, uint64_t size)
{
	for (uint32_t i = 0; i < g_boot.e820_count; i++) {
		const struct e820_entry *e = &g_boot.e820[i];
		if (e->type == E820_RAM && addr >= e->addr && addr + size <= e->addr + e->size)
			return true;
	}
	return false;
}

/* verbose=1: the inputs, one "BUNSHIN-INFO" line each. */
static void dump_tables(void)
{
	struct line l;

	for (uint32_t i = 0; i < g_boot.e820_count; i++) {
		line_init(&l);
		line_str(&l, "BUNSHIN-INFO e820 addr=");
		line_hex(&l, g_boot.e820[i].addr);
		line_str(&l, " size=");
		line_hex(&l, g_boot.e820[i].size);
		line_kv_dec(&l, "type", g_boot.e820[i].type);
		line_emit(&l);
	}
	for (uint32_t i = 0; i < g_acpi.ncpus; i++) {
		line_init(&l);
		line_str(&l, "BUNSHIN-INFO cpu");
		line_kv_dec(&l, "apic_id", g_acpi.cpu_apic_id[i]);
		line_emit(&l);
	}
	for (uint32_t i = 0; i < g_acpi.nioapics; i++) {
		line_init(&l);
		line_str(&l, "BUNSHIN-INFO ioapic");
		line_kv_dec(&l, "id", g_acpi.ioapic[i].id);
		line_str(&l, " addr=");
		line_hex(&l, g_acpi.ioapic[i].addr);
		line_kv_dec(&l, "gsi_base", g_acpi.ioapic[i].gsi_base);
		line_emit(&l);
	}
	for (uint32_t i = 0; i < 16; i++) {
		if (!g_acpi.isa[i].present)
			continue;
		line_init(&l);
		line_str(&l, "BUNSHIN-INFO override");
		line_kv_dec(&l, "irq", i);
		line_kv_dec(&l, "gsi", g_acpi.isa[i].gsi);
		line_kv_dec(&l, "flags", g_acpi.isa[i].flags);
		line_emit(&l);
	}
	line_init(&l);
	line_str(&l, "BUNSHIN-INFO fadt");
	line_kv_dec(&l, "hw_reduced", g_acpi.hw_reduced);
	line_str(&l, " pm1a_cnt=");
	line_hex(&l, g_acpi.pm1a_cnt);
	line_str(&l, " pm_tmr=");
	line_hex(&l, g_acpi.pm_tmr);
	line_kv_dec(&l, "s5", g_acpi.s5_found);
	line_kv_dec(&l, "slp_typa", g_acpi.slp_typa);
	line_kv_dec(&l, "reset", g_acpi.reset_valid);
	line_str(&l, " reset_addr=");
	line_hex(&l, g_acpi.reset_reg.addr);
	line_str(&l, " reset_value=");
	line_hex(&l, g_acpi.reset_value);
	line_kv_dec(&l, "sleep_ctrl", g_acpi.sleep_ctrl_valid);
	line_str(&l, " rsdp=");
	line_hex(&l, (uint64_t)g_acpi.rsdp);
	line_emit(&l);
}

/*
 * Copies the map, leaving out empty entries, and sorts the copy by address
 * (insertion sort: at most E820_MAX entries). Returns whether the original
 * was already in order.
 */
static bool e820_sort(struct e820_entry *out, uint32_t *count)
{
	bool sorted = true;
	uint32_t n = 0;

	for (uint32_t i = 0; i < g_boot.e820_count; i++) {
		struct e820_entry e = g_boot.e820[i];
		uint32_t j = n;

		if (e.size == 0)
			continue;
		if (n && e.addr < out[n - 1].addr)
			sorted = false;
		while (j > 0 && out[j - 1].addr > e.addr) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = e;
		n++;
	}
	*count = n;
	return sorted;
}

void run_boot(void)
{
	const char *reason = NULL;
	uint64_t total = 0, v;
	bool low = false, at1m = false;
	const char *initrd = "none";
	uint32_t crc = 0;
	uint64_t size = 0;
	bool want_size, want_crc, crc_bad = false;
	struct e820_entry e820[E820_MAX];
	uint32_t n = 0;
	bool sorted;
	struct line l;

#define FAIL(r) (reason = reason ? reason : (r))

	/*
	 * e820: Linux sorts the firmware's map before using it, so an
	 * unsorted map is reported (e820_sorted=0) but only overlaps fail;
	 * strict_e820=1 makes unsorted fail too, which is how bunshin's own
	 * map is held to the stricter standard.
	 */
	sorted = e820_sort(e820, &n);
	if (!sorted && opt_u64("strict_e820", 10, &v) && v)
		FAIL("e820-unsorted");
	for (uint32_t i = 0; i < n; i++) {
		const struct e820_entry *e = &e820[i], *p = e - 1;
		if (i > 0 && e->addr < p->addr + p->size)
			FAIL("e820-overlap");
		if (e->type != E820_RAM || e->size == 0)
			continue;
		total += e->size;
		if (e->addr < 0xa0000)
			low = true;
		if (e->addr <= 0x100000 && e->addr + e->size > 0x100000)
			at1m = true;
	}
	if (g_boot.e820_count == 0)
		FAIL("e820-empty");
	/* Every RAM range is mapped and holds what is written (first and last
	 * 8 bytes, restored afterwards). */
	for (uint32_t i = 0; i < g_boot.e820_count; i++) {
		const struct e820_entry *e = &g_boot.e820[i];
		if (e->type != E820_RAM || e->size < 16 || e->addr == 0)
			continue;
		if (e->addr + e->size > g_boot.mapped_top) {
			FAIL("ram-not-mapped");
			continue;
		}
		volatile uint64_t *ends[2] = {(volatile uint64_t *)e->addr,
					      (volatile uint64_t *)(e->addr + e->size - 8)};
		for (int k = 0; k < 2; k++) {
			uint64_t old = *ends[k];
			*ends[k] = 0x5a5aa5a5f00dcafeULL ^ (uint64_t)ends[k];
			if (*ends[k] != (0x5a5aa5a5f00dcafeULL ^ (uint64_t)ends[k]))
				FAIL("ram-access");
			*ends[k] = old;
		}
	}
	if (!low)
		FAIL("e820-no-low-ram");
	if (!at1m)
		FAIL("e820-no-ram-at-1m");
	if (opt_u64("expect_mem_mib", 10, &v)) {
		uint64_t m = v << 20;
		if (!(total + (2ULL << 20) > m && total <= m))
			FAIL("ram-size");
	}

	/* ACPI */
	if (g_acpi.fail)
		FAIL(g_acpi.fail);
	if (opt_u64("expect_cpus", 10, &v) && v != g_acpi.ncpus)
		FAIL("cpu-count");

	/* initrd */
	want_size = opt_u64("initrd_size", 10, &size);
	want_crc = opt_u64("initrd_crc32", 16, &v);
	if (!g_boot.initrd_size) {
		if (want_size || want_crc)
			FAIL("initrd-missing");
	} else {
		bool bad = false;
		uint64_t a = g_boot.initrd_addr, n = g_boot.initrd_size;
		if (!in_ram(a, n) || a + n > g_boot.mapped_top ||
		    (a < (uint64_t)_end && a + n > (uint64_t)__image_start)) {
			FAIL("initrd-placement");
			bad = true;
		}
		if (!bad && want_size && size != n) {
			FAIL("initrd-size");
			bad = true;
		}
		if (!bad && want_crc) {
			crc = crc32((const void *)a, n);
			if (crc != (uint32_t)v) {
				FAIL("initrd-crc");
				bad = crc_bad = true;
			}
		}
		initrd = bad ? "bad" : (want_size || want_crc) ? "ok" : "present";
	}

	if (opt_u64("verbose", 10, &v) && v)
		dump_tables();

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=boot result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason) {
		line_kv_str(&l, "reason", reason);
		if (g_acpi.fail && reason == g_acpi.fail && g_acpi.fail_table[0]) {
			line_str(&l, " table=");
			line_strn(&l, g_acpi.fail_table, 4);
		}
	}
	line_kv_str(&l, "entry", entry_name(g_boot.entry));
	line_kv_dec(&l, "cpus", g_acpi.ncpus);
	line_kv_dec(&l, "ram_mib", total >> 20);
	line_kv_dec(&l, "e820", g_boot.e820_count);
	line_kv_dec(&l, "e820_sorted", sorted);
	line_kv_str(&l, "tables", g_acpi.tables[0] ? g_acpi.tables : "none");
	line_kv_dec(&l, "cmdline_len", g_boot.cmdline_len);
	line_kv_str(&l, "initrd", initrd);
	if (g_boot.initrd_size)
		line_kv_dec(&l, "initrd_size", g_boot.initrd_size);
	if (crc_bad) {
		line_str(&l, " initrd_crc32=");
		line_hex(&l, crc);
	}
	line_emit(&l);
#undef FAIL
}
