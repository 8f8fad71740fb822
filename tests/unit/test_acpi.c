// SPDX-License-Identifier: MIT
/*
 * ACPI tables: every field read back at its specification offset (the test
 * does not share the generator's structs, so a wrong struct layout shows),
 * then the tables are handed to ACPICA's iasl for an independent opinion.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/vmm/boot/acpi.h"
#include "../../src/vmm/layout.h"

#define GPA	 LAYOUT_ACPI_START
#define MAX_CPUS 512

static uint8_t buf[LAYOUT_ACPI_SIZE];
static uint32_t ids[MAX_CPUS];

static uint16_t rd16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* The default VM: everything present, APIC ID = index. */
static struct acpi_config config(unsigned int ncpus)
{
	struct acpi_config cfg = {
		.ncpus = ncpus,
		.apic_ids = ids,
		.com1 = true,
		.i8042 = true,
		.rtc = true,
		.ecam_base = LAYOUT_ECAM_BASE,
		.pci_bus_end = 255,
		.pci = true,
		.pci_mmio64_base = 0x400000000ULL,
		.pci_mmio64_size = 0x1000000000ULL,
	};
	unsigned int i;

	for (i = 0; i < MAX_CPUS; i++)
		ids[i] = i;
	return cfg;
}

static void build(const struct acpi_config *cfg)
{
	struct error err;
	uint64_t rsdp = 0;

	error_clear(&err);
	memset(buf, 0xa5, sizeof(buf));
	cr_assert_eq(acpi_build(cfg, buf, GPA, sizeof(buf), &rsdp, &err), 0, "acpi_build: %s",
		     err.msg);
	cr_assert_eq(rsdp, GPA, "the RSDP comes first");
}

/* A table at a guest address: inside the buffer, length included. */
static const uint8_t *table_at(uint64_t addr, const char *sig)
{
	const uint8_t *t;
	uint32_t len;

	cr_assert(addr >= GPA && addr + 36 <= GPA + sizeof(buf), "%s at 0x%llx is outside", sig,
		  (unsigned long long)addr);
	t = buf + (addr - GPA);
	cr_assert(memcmp(t, sig, 4) == 0, "expected %s at 0x%llx, found %.4s", sig,
		  (unsigned long long)addr, (const char *)t);
	len = rd32(t + 4);
	cr_assert(len >= 36 && addr + len <= GPA + sizeof(buf), "%s length %u", sig, len);
	return t;
}

static void check_header(const uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	cr_assert(memcmp(t, sig, 4) == 0);
	cr_assert_eq(rd32(t + 4), len, "%s length %u, expected %u", sig, rd32(t + 4), len);
	cr_assert_eq(t[8], rev, "%s revision %u", sig, t[8]);
	cr_assert_eq(sum(t, len), 0, "%s checksum", sig);
	cr_assert(memcmp(t + 10, "BNSHIN", 6) == 0, "%s OEM ID", sig);
	cr_assert(memcmp(t + 16, "BUNSHIN ", 8) == 0, "%s OEM table ID", sig);
	cr_assert_eq(rd32(t + 24), 1, "%s OEM revision", sig);
	cr_assert(memcmp(t + 28, "BNSH", 4) == 0, "%s creator ID", sig);
	cr_assert_eq(rd32(t + 32), 1, "%s creator revision", sig);
}

static const uint8_t *xsdt(void)
{
	return table_at(rd64(buf + 24), "XSDT");
}

/* Looks a table up through the XSDT, as a guest does. */
static const uint8_t *find_table(const char *sig)
{
	const uint8_t *x = xsdt();
	uint32_t i, n = (rd32(x + 4) - 36) / 8;

	for (i = 0; i < n; i++) {
		uint64_t addr = rd64(x + 36 + 8 * i);

		if (memcmp(buf + (addr - GPA), sig, 4) == 0)
			return table_at(addr, sig);
	}
	cr_assert_fail("%s not in the XSDT", sig);
	return NULL;
}

static const uint8_t *fadt(void)
{
	return find_table("FACP");
}

static const uint8_t *dsdt(void)
{
	return table_at(rd64(fadt() + 140), "DSDT");
}

static bool contains(const uint8_t *hay, size_t len, const void *needle, size_t n)
{
	return memmem(hay, len, needle, n) != NULL;
}

Test(acpi, rsdp)
{
	struct acpi_config cfg = config(1);

	build(&cfg);
	cr_assert(memcmp(buf, "RSD PTR ", 8) == 0);
	cr_assert_eq(sum(buf, 20), 0, "ACPI 1.0 checksum");
	cr_assert_eq(sum(buf, 36), 0, "extended checksum");
	cr_assert(memcmp(buf + 9, "BNSHIN", 6) == 0);
	cr_assert_eq(buf[15], 2, "revision 2: ACPI 2.0+ with an XSDT");
	cr_assert_eq(rd32(buf + 16), 0, "no RSDT");
	cr_assert_eq(rd32(buf + 20), 36);
	cr_assert_eq(buf[33] | buf[34] | buf[35], 0, "reserved bytes");
	xsdt();
}

Test(acpi, xsdt_lists_fadt_madt_mcfg)
{
	struct acpi_config cfg = config(2);
	const uint8_t *x;

	build(&cfg);
	x = xsdt();
	check_header(x, "XSDT", 36 + 3 * 8, 1);
	table_at(rd64(x + 36), "FACP");
	table_at(rd64(x + 44), "APIC");
	table_at(rd64(x + 52), "MCFG");
}

Test(acpi, tables_do_not_overlap)
{
	struct acpi_config cfg = config(4);
	const uint8_t *t[6];
	uint32_t len[6];
	int i, j;

	build(&cfg);
	t[0] = fadt();
	t[1] = find_table("APIC");
	t[2] = find_table("MCFG");
	t[3] = dsdt();
	t[4] = xsdt();
	t[5] = buf + (rd64(fadt() + 132) - GPA);
	for (i = 0; i < 6; i++)
		len[i] = rd32(t[i] + 4);
	for (i = 0; i < 6; i++) {
		cr_assert(t[i] >= buf + 36, "table %d overlaps the RSDP", i);
		for (j = 0; j < i; j++)
			cr_assert(t[i] >= t[j] + len[j] || t[j] >= t[i] + len[i],
				  "tables %d and %d overlap", i, j);
	}
}

Test(acpi, facs)
{
	struct acpi_config cfg = config(1);
	uint64_t addr;
	const uint8_t *f;

	build(&cfg);
	addr = rd64(fadt() + 132);
	cr_assert_eq(addr % 64, 0, "FACS must be 64-byte aligned");
	cr_assert(addr >= GPA && addr + 64 <= GPA + sizeof(buf));
	f = buf + (addr - GPA);
	cr_assert(memcmp(f, "FACS", 4) == 0);
	cr_assert_eq(rd32(f + 4), 64);
	cr_assert_eq(rd32(f + 8), 0, "hardware signature");
	cr_assert_eq(rd32(f + 12), 0, "no waking vector: no S3");
	cr_assert_eq(rd32(f + 16), 0, "global lock");
	cr_assert_eq(rd32(f + 20), 0, "flags");
	cr_assert_eq(f[32], 2, "version");
}

Test(acpi, fadt_fields)
{
	struct acpi_config cfg = config(2);
	const uint8_t *f;

	build(&cfg);
	f = fadt();
	check_header(f, "FACP", 276, 6);
	cr_assert_eq(f[131] & 0xf, 3, "minor version 6.3");
	/* FACS and DSDT, 32-bit and 64-bit fields agree. */
	cr_assert_eq(rd32(f + 36), rd64(f + 132), "FIRMWARE_CTRL == X_FIRMWARE_CTRL");
	cr_assert_eq(rd32(f + 40), rd64(f + 140), "DSDT == X_DSDT");
	cr_assert_neq(rd32(f + 36), 0);
	dsdt();
	cr_assert_eq(f[45], 0, "preferred PM profile: unspecified");
	cr_assert_eq(rd16(f + 46), LAYOUT_SCI_IRQ, "SCI_INT");
	cr_assert_eq(rd32(f + 48), 0, "SMI_CMD 0: always in ACPI mode");
	cr_assert_eq(f[52] | f[53] | f[54] | f[55], 0, "ACPI_ENABLE/DISABLE, S4BIOS, PSTATE");
	cr_assert_eq(rd32(f + 56), LAYOUT_PM1A_EVT_PORT);
	cr_assert_eq(rd32(f + 60), 0, "no PM1b event block");
	cr_assert_eq(rd32(f + 64), LAYOUT_PM1A_CNT_PORT);
	cr_assert_eq(rd32(f + 68), 0, "no PM1b control block");
	cr_assert_eq(rd32(f + 72), 0, "no PM2 control block");
	cr_assert_eq(rd32(f + 76), LAYOUT_PM_TMR_PORT);
	cr_assert_eq(rd32(f + 80), 0, "no GPE0 block");
	cr_assert_eq(rd32(f + 84), 0, "no GPE1 block");
	cr_assert_eq(f[88], 4, "PM1_EVT_LEN");
	cr_assert_eq(f[89], 2, "PM1_CNT_LEN");
	cr_assert_eq(f[90], 0, "PM2_CNT_LEN");
	cr_assert_eq(f[91], 4, "PM_TMR_LEN");
	cr_assert_eq(f[92], 0, "GPE0_BLK_LEN");
	cr_assert_eq(f[93], 0, "GPE1_BLK_LEN");
	cr_assert_eq(f[95], 0, "CST_CNT");
	cr_assert_gt(rd16(f + 96), 100, "P_LVL2_LAT > 100: no C2");
	cr_assert_gt(rd16(f + 98), 1000, "P_LVL3_LAT > 1000: no C3");
	cr_assert_eq(f[108], 0, "CENTURY");
	cr_assert_eq(f[111], 0, "reserved");
}

Test(acpi, fadt_flags)
{
	struct acpi_config cfg = config(1);
	uint32_t flags;

	build(&cfg);
	flags = rd32(fadt() + 112);
	cr_assert(flags & (1u << 0), "WBINVD");
	cr_assert(flags & (1u << 2), "PROC_C1");
	cr_assert(!(flags & (1u << 4)), "PWR_BUTTON clear: fixed power button");
	cr_assert(flags & (1u << 5), "SLP_BUTTON: no fixed sleep button");
	cr_assert(flags & (1u << 6), "FIX_RTC: no RTC wake status");
	cr_assert(flags & (1u << 8), "TMR_VAL_EXT: the PM timer is 32 bits");
	cr_assert(flags & (1u << 10), "RESET_REG_SUP");
	cr_assert(!(flags & (1u << 20)), "not hardware-reduced");
	cr_assert_eq(flags & ~0x565u, 0, "no other flags: 0x%x", flags);
}

static void check_io_gas(const uint8_t *g, uint16_t port, uint8_t bits, uint8_t access)
{
	cr_assert_eq(g[0], 1, "SystemIO");
	cr_assert_eq(g[1], bits, "bit width %u", g[1]);
	cr_assert_eq(g[2], 0, "bit offset");
	cr_assert_eq(g[3], access, "access size %u", g[3]);
	cr_assert_eq(rd64(g + 4), port);
}

static bool gas_zero(const uint8_t *g)
{
	static const uint8_t zero[12];

	return memcmp(g, zero, 12) == 0;
}

Test(acpi, fadt_registers)
{
	struct acpi_config cfg = config(1);
	const uint8_t *f;
	int off;

	build(&cfg);
	f = fadt();
	check_io_gas(f + 116, LAYOUT_RESET_PORT, 8, 1);
	cr_assert_eq(f[128], LAYOUT_RESET_VALUE, "RESET_VALUE");
	cr_assert_eq(rd16(f + 129), 0, "ARM_BOOT_ARCH");
	check_io_gas(f + 148, LAYOUT_PM1A_EVT_PORT, 32, 2);
	check_io_gas(f + 172, LAYOUT_PM1A_CNT_PORT, 16, 2);
	check_io_gas(f + 208, LAYOUT_PM_TMR_PORT, 32, 3);
	/* X_PM1b_EVT, X_PM1b_CNT, X_PM2_CNT, X_GPE0, X_GPE1, sleep control/status */
	for (off = 160; off < 268; off += 12)
		if (off != 172 && off != 208)
			cr_assert(gas_zero(f + off), "GAS at offset %d must be empty", off);
}

Test(acpi, fadt_boot_arch_follows_config)
{
	struct acpi_config cfg = config(1);
	uint16_t arch;

	build(&cfg);
	arch = rd16(fadt() + 109);
	cr_assert(arch & (1u << 0), "LEGACY_DEVICES");
	cr_assert(arch & (1u << 1), "8042");
	cr_assert(arch & (1u << 2), "VGA not present");
	cr_assert(!(arch & (1u << 3)), "MSI supported");
	cr_assert(!(arch & (1u << 5)), "CMOS RTC present");

	cfg.i8042 = false;
	cfg.rtc = false;
	build(&cfg);
	arch = rd16(fadt() + 109);
	cr_assert(!(arch & (1u << 1)), "no 8042");
	cr_assert(arch & (1u << 5), "CMOS RTC not present");
	cr_assert(arch & (1u << 0), "COM1 is still a legacy device");

	cfg.com1 = false;
	build(&cfg);
	arch = rd16(fadt() + 109);
	cr_assert(!(arch & (1u << 0)), "no legacy devices at all");
}

/* MADT entry counts by type, with every entry's length checked. */
struct madt_census {
	unsigned int n[16];
	unsigned int total;
};

static const uint8_t *madt_walk(struct madt_census *c)
{
	const uint8_t *m = find_table("APIC");
	uint32_t len = rd32(m + 4), off = 44;
	static const uint8_t lens[16] = {[0] = 8, [1] = 12, [2] = 10, [4] = 6, [9] = 16, [10] = 12};

	memset(c, 0, sizeof(*c));
	while (off < len) {
		uint8_t type = m[off], elen = m[off + 1];

		cr_assert(type < 16 && lens[type], "unexpected MADT entry type %u", type);
		cr_assert_eq(elen, lens[type], "type %u entry length %u", type, elen);
		cr_assert_leq(off + elen, len, "entry past the end of the MADT");
		c->n[type]++;
		c->total++;
		off += elen;
	}
	cr_assert_eq(off, len, "entries fill the MADT exactly");
	return m;
}

/* Every processor entry, in order, has UID = index and its APIC ID. */
static void check_madt_cpus(const uint8_t *m, unsigned int ncpus)
{
	uint32_t off = 44, len = rd32(m + 4);
	unsigned int cpu = 0;

	for (; off < len; off += m[off + 1]) {
		const uint8_t *e = m + off;

		if (e[0] == 0) {
			cr_assert_eq(e[2], cpu, "LAPIC UID %u, expected %u", e[2], cpu);
			cr_assert_eq(e[3], ids[cpu]);
			cr_assert_lt(ids[cpu], 255, "xAPIC entry for APIC ID %u", ids[cpu]);
			cr_assert_eq(rd32(e + 4), 1, "enabled");
			cpu++;
		} else if (e[0] == 9) {
			cr_assert_eq(rd16(e + 2), 0, "reserved");
			cr_assert_eq(rd32(e + 4), ids[cpu]);
			cr_assert_geq(ids[cpu], 255, "x2APIC entry for APIC ID %u", ids[cpu]);
			cr_assert_eq(rd32(e + 8), 1, "enabled");
			cr_assert_eq(rd32(e + 12), cpu, "x2APIC UID");
			cpu++;
		}
	}
	cr_assert_eq(cpu, ncpus);
}

static void check_madt_cpu_counts(unsigned int ncpus, unsigned int xapic, unsigned int x2apic)
{
	struct acpi_config cfg = config(ncpus);
	struct madt_census c;
	const uint8_t *m;

	build(&cfg);
	m = madt_walk(&c);
	check_header(m, "APIC", rd32(m + 4), 5);
	cr_assert_eq(c.n[0], xapic, "%u CPUs: %u LAPIC entries", ncpus, c.n[0]);
	cr_assert_eq(c.n[9], x2apic, "%u CPUs: %u x2APIC entries", ncpus, c.n[9]);
	cr_assert_eq(c.n[1], 1, "one IOAPIC");
	cr_assert_eq(c.n[2], 2, "two interrupt source overrides");
	cr_assert_eq(c.n[4], 1, "one LAPIC NMI");
	cr_assert_eq(c.n[10], x2apic ? 1 : 0, "x2APIC NMI only with x2APIC entries");
	cr_assert_eq(c.total, ncpus + 4 + (x2apic ? 1 : 0));
	check_madt_cpus(m, ncpus);
}

Test(acpi, madt_1_cpu)
{
	check_madt_cpu_counts(1, 1, 0);
}

Test(acpi, madt_2_cpus)
{
	check_madt_cpu_counts(2, 2, 0);
}

Test(acpi, madt_64_cpus)
{
	check_madt_cpu_counts(64, 64, 0);
}

Test(acpi, madt_255_cpus_all_xapic)
{
	/* IDs 0..254: the last ID an xAPIC entry can carry. */
	check_madt_cpu_counts(255, 255, 0);
}

Test(acpi, madt_256_cpus_one_x2apic)
{
	check_madt_cpu_counts(256, 255, 1);
}

Test(acpi, madt_288_cpus)
{
	check_madt_cpu_counts(288, 255, 33);
}

Test(acpi, madt_sparse_apic_ids)
{
	struct acpi_config cfg = config(200);
	struct madt_census c;
	unsigned int i;

	/* Two threads per core with a gap: IDs 0, 2, 4, ...; from CPU 128 on, x2APIC. */
	for (i = 0; i < 200; i++)
		ids[i] = 2 * i;
	build(&cfg);
	check_madt_cpus(madt_walk(&c), 200);
	cr_assert_eq(c.n[0], 128);
	cr_assert_eq(c.n[9], 72);
	cr_assert_eq(c.n[10], 1);
}

static const uint8_t *madt_entry(const uint8_t *m, uint8_t type, unsigned int nth)
{
	uint32_t off = 44, len = rd32(m + 4);

	for (; off < len; off += m[off + 1])
		if (m[off] == type && nth-- == 0)
			return m + off;
	cr_assert_fail("no MADT entry of type %u", type);
	return NULL;
}

Test(acpi, madt_interrupt_controllers)
{
	struct acpi_config cfg = config(300);
	struct madt_census c;
	const uint8_t *m, *e;

	build(&cfg);
	m = madt_walk(&c);
	cr_assert_eq(rd32(m + 36), LAYOUT_LAPIC_BASE, "local APIC address");
	cr_assert_eq(rd32(m + 40), 1, "PCAT_COMPAT: dual 8259 present");

	e = madt_entry(m, 1, 0);
	cr_assert_eq(e[2], LAYOUT_IOAPIC_ID);
	cr_assert_eq(e[3], 0);
	cr_assert_eq(rd32(e + 4), LAYOUT_IOAPIC_BASE);
	cr_assert_eq(rd32(e + 8), 0, "GSI base");

	e = madt_entry(m, 2, 0);
	cr_assert_eq(e[2], 0, "ISA bus");
	cr_assert_eq(e[3], 0, "IRQ0 ...");
	cr_assert_eq(rd32(e + 4), 2, "... is GSI 2");
	cr_assert_eq(rd16(e + 8), 0, "conforming");

	e = madt_entry(m, 2, 1);
	cr_assert_eq(e[2], 0, "ISA bus");
	cr_assert_eq(e[3], LAYOUT_SCI_IRQ);
	cr_assert_eq(rd32(e + 4), LAYOUT_SCI_IRQ);
	cr_assert_eq(rd16(e + 8), 0x000d, "level triggered, active high");

	e = madt_entry(m, 4, 0);
	cr_assert_eq(e[2], 0xff, "all processors");
	cr_assert_eq(rd16(e + 3), 0);
	cr_assert_eq(e[5], 1, "LINT1");

	e = madt_entry(m, 10, 0);
	cr_assert_eq(rd16(e + 2), 0);
	cr_assert_eq(rd32(e + 4), 0xffffffff, "all processors");
	cr_assert_eq(e[8], 1, "LINT1");
	cr_assert_eq(e[9] | e[10] | e[11], 0);
}

Test(acpi, mcfg)
{
	struct acpi_config cfg = config(1);
	const uint8_t *m;

	cfg.pci_bus_end = 0x3f;
	build(&cfg);
	m = find_table("MCFG");
	check_header(m, "MCFG", 60, 1);
	cr_assert_eq(rd64(m + 36), 0, "reserved");
	cr_assert_eq(rd64(m + 44), LAYOUT_ECAM_BASE);
	cr_assert_eq(rd16(m + 52), 0, "segment 0");
	cr_assert_eq(m[54], 0, "start bus");
	cr_assert_eq(m[55], 0x3f, "end bus");
	cr_assert_eq(rd32(m + 56), 0, "reserved");
}

Test(acpi, dsdt_header_and_sleep_state)
{
	struct acpi_config cfg = config(1);
	/* Name(_S5, Package() {5, 5, 0, 0}) */
	static const uint8_t s5[] = {0x08, '_',
				     'S',  '5',
				     '_',  0x12,
				     0x08, 0x04,
				     0x0a, LAYOUT_S5_SLP_TYP,
				     0x0a, LAYOUT_S5_SLP_TYP,
				     0x00, 0x00};
	const uint8_t *d;

	build(&cfg);
	d = dsdt();
	check_header(d, "DSDT", rd32(d + 4), 2);
	cr_assert(memcmp(d + 36, s5, sizeof(s5)) == 0, "\\_S5 opens the DSDT");
}

/* Device(name) with a one- or two-byte PkgLength, then what follows the name. */
static bool dsdt_has_device(const char *name)
{
	const uint8_t *d = dsdt();
	uint32_t len = rd32(d + 4), i;

	for (i = 36; i + 8 <= len; i++) {
		unsigned int pkglen = 1 + (d[i + 2] >> 6);

		if (d[i] == 0x5b && d[i + 1] == 0x82 && pkglen <= 2 &&
		    memcmp(d + i + 2 + pkglen, name, 4) == 0)
			return true;
	}
	return false;
}

Test(acpi, dsdt_processor_devices)
{
	struct acpi_config cfg = config(300);
	static const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C',
				      'P',  'I', '0', '0', '0', '7',  0x00};
	/* _UID 299: WordPrefix 0x012b */
	static const uint8_t uid299[] = {0x08, '_', 'U', 'I', 'D', 0x0b, 0x2b, 0x01};
	const uint8_t *d;

	build(&cfg);
	d = dsdt();
	cr_assert(dsdt_has_device("C000"));
	cr_assert(dsdt_has_device("C0FF"));
	cr_assert(dsdt_has_device("C100"));
	cr_assert(dsdt_has_device("C12B"));
	cr_assert(!dsdt_has_device("C12C"), "one device per vCPU");
	cr_assert(contains(d, rd32(d + 4), hid, sizeof(hid)));
	cr_assert(contains(d, rd32(d + 4), uid299, sizeof(uid299)));
}

Test(acpi, dsdt_legacy_devices_follow_config)
{
	struct acpi_config cfg = config(1);
	/* _CRS of COM1: IO(Decode16, 0x3F8, 0x3F8, 1, 8) IRQNoFlags() {4} */
	static const uint8_t com1[] = {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01,
				       0x08, 0x22, 0x10, 0x00, 0x79, 0x00};
	static const uint8_t kbd[] = {0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01,
				      0x01, 0x47, 0x01, 0x64, 0x00, 0x64, 0x00,
				      0x01, 0x01, 0x22, 0x02, 0x00, 0x79, 0x00};
	static const uint8_t rtc[] = {0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01,
				      0x02, 0x22, 0x00, 0x01, 0x79, 0x00};
	static const uint8_t pnp0501[] = {0x0c, 0x41, 0xd0, 0x05, 0x01};
	const uint8_t *d;

	build(&cfg);
	d = dsdt();
	cr_assert(dsdt_has_device("COM1"));
	cr_assert(dsdt_has_device("PS2K"));
	cr_assert(dsdt_has_device("RTC_"));
	cr_assert(contains(d, rd32(d + 4), com1, sizeof(com1)));
	cr_assert(contains(d, rd32(d + 4), kbd, sizeof(kbd)));
	cr_assert(contains(d, rd32(d + 4), rtc, sizeof(rtc)));
	cr_assert(contains(d, rd32(d + 4), pnp0501, sizeof(pnp0501)));

	cfg.com1 = cfg.i8042 = cfg.rtc = cfg.pci = false;
	build(&cfg);
	cr_assert(!dsdt_has_device("COM1"));
	cr_assert(!dsdt_has_device("PCI0"));
	cr_assert(!dsdt_has_device("PS2K"));
	cr_assert(!dsdt_has_device("RTC_"));
	cr_assert(dsdt_has_device("C000"));
}

static uint64_t desc_field(const uint8_t *p, unsigned int w, unsigned int n)
{
	const uint8_t *f = p + 6 + n * w;

	return w == 2 ? rd16(f) : w == 4 ? rd32(f) : rd64(f);
}

/* Finds the Word/DWord/QWord address space descriptor of a type with this minimum. */
static const uint8_t *find_addr_desc(uint8_t tag, uint8_t type, uint64_t min)
{
	const uint8_t *d = dsdt();
	uint32_t len = rd32(d + 4);
	unsigned int w = tag == 0x88 ? 2 : tag == 0x87 ? 4 : 8;

	for (uint32_t i = 36; i + 6 + 5 * w <= len; i++) {
		const uint8_t *p = d + i;
		uint64_t v = desc_field(p, w, 1);

		if (p[0] == tag && p[3] == type && v == min)
			return p;
	}
	return NULL;
}

Test(acpi, dsdt_pci_root_bridge)
{
	struct acpi_config cfg = config(1);
	static const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08};
	static const uint8_t cid[] = {0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03};
	static const uint8_t seg[] = {0x08, '_', 'S', 'E', 'G', 0x00};
	static const uint8_t bbn[] = {0x08, '_', 'B', 'B', 'N', 0x00};
	const uint8_t *d, *p;

	cfg.pci_bus_end = 0x7f;
	build(&cfg);
	d = dsdt();
	cr_assert(dsdt_has_device("PCI0"));
	cr_assert(contains(d, rd32(d + 4), hid, sizeof(hid)), "_HID PNP0A08");
	cr_assert(contains(d, rd32(d + 4), cid, sizeof(cid)), "_CID PNP0A03");
	cr_assert(contains(d, rd32(d + 4), seg, sizeof(seg)));
	cr_assert(contains(d, rd32(d + 4), bbn, sizeof(bbn)));
	/* Fields: granularity, min, max, translation, length. */
	p = find_addr_desc(0x88, 2, 0);
	cr_assert_not_null(p, "bus numbers");
	cr_assert_eq(desc_field(p, 2, 2), 0x7f);
	p = find_addr_desc(0x88, 1, 0);
	cr_assert_not_null(p, "I/O below the config ports");
	cr_assert_eq(desc_field(p, 2, 2), 0x0cf7);
	p = find_addr_desc(0x88, 1, 0x0d00);
	cr_assert_not_null(p, "I/O above the config ports");
	cr_assert_eq(desc_field(p, 2, 2), 0xffff);
	cr_assert_eq(desc_field(p, 2, 4), 0xf300);
	p = find_addr_desc(0x87, 0, LAYOUT_PCI_MMIO32_BASE);
	cr_assert_not_null(p, "32-bit window");
	cr_assert_eq(desc_field(p, 4, 2), LAYOUT_PCI_MMIO32_END - 1);
	p = find_addr_desc(0x8a, 0, 0x400000000ULL);
	cr_assert_not_null(p, "64-bit window");
	cr_assert_eq(desc_field(p, 8, 4), 0x1000000000ULL);
	cr_assert_eq(p[4] & 1, 0, "ResourceProducer");
	cr_assert_eq((p[5] >> 1) & 3, 1, "cacheable, not prefetchable");

	cfg.pci_mmio64_size = 0;
	build(&cfg);
	cr_assert_null(find_addr_desc(0x8a, 0, 0x400000000ULL), "no 64-bit window asked for");
}

Test(acpi, pci_window_below_4g_refused)
{
	struct acpi_config cfg = config(1);
	struct error err;
	uint64_t rsdp;

	cfg.pci_mmio64_base = 0x80000000;
	cfg.pci_mmio64_size = 0x1000;
	cr_assert_eq(acpi_build(&cfg, buf, GPA, sizeof(buf), &rsdp, &err), -EINVAL);
	cr_assert(strstr(err.msg, "64-bit PCI window"), "%s", err.msg);
}

Test(acpi, enospc_leaves_buffer_untouched)
{
	struct acpi_config cfg = config(8);
	struct error err;
	uint64_t rsdp = 0x1234;
	size_t i;

	memset(buf, 0xa5, sizeof(buf));
	error_clear(&err);
	cr_assert_eq(acpi_build(&cfg, buf, GPA, 256, &rsdp, &err), -ENOSPC);
	cr_assert_eq(err.code, ENOSPC);
	cr_assert(strstr(err.msg, "bytes"), "message: %s", err.msg);
	cr_assert_eq(rsdp, 0x1234);
	for (i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0xa5, "byte %zu written", i);
}

Test(acpi, exact_size_is_enough)
{
	struct acpi_config cfg = config(16);
	struct error err;
	uint64_t rsdp;
	size_t need;

	build(&cfg);
	need = (xsdt() - buf) + rd32(xsdt() + 4);
	cr_assert_eq(acpi_build(&cfg, buf, GPA, need, &rsdp, &err), 0, "%s", err.msg);
	cr_assert_eq(acpi_build(&cfg, buf, GPA, need - 1, &rsdp, &err), -ENOSPC);
}

Test(acpi, max_cpus_fit_the_layout)
{
	struct acpi_config cfg = config(288);
	const uint8_t *x;

	build(&cfg);
	x = xsdt();
	cr_assert_lt((size_t)(x - buf) + rd32(x + 4), LAYOUT_ACPI_SIZE / 4,
		     "288 vCPUs use a small part of the ACPI area");
}

Test(acpi, bad_configs_refused)
{
	struct acpi_config cfg = config(0);
	struct error err;
	uint64_t rsdp;

	cr_assert_eq(acpi_build(&cfg, buf, GPA, sizeof(buf), &rsdp, &err), -EINVAL);

	cfg = config(4);
	ids[3] = 1;
	cr_assert_eq(acpi_build(&cfg, buf, GPA, sizeof(buf), &rsdp, &err), -EINVAL);
	cr_assert(strstr(err.msg, "share APIC ID"), "%s", err.msg);

	/* Index 255 with an xAPIC ID cannot be described: UID 0xff means "all". */
	cfg = config(256);
	ids[255] = 0;
	ids[0] = 255;
	cr_assert_eq(acpi_build(&cfg, buf, GPA, sizeof(buf), &rsdp, &err), -EINVAL);

	cfg = config(1);
	cfg.apic_ids = NULL;
	cr_assert_eq(acpi_build(&cfg, buf, GPA, sizeof(buf), &rsdp, &err), -EINVAL);

	cfg = config(1);
	cfg.ecam_base = 0xb0001000;
	cr_assert_eq(acpi_build(&cfg, buf, GPA, sizeof(buf), &rsdp, &err), -EINVAL);
}

Test(acpi, tables_above_4g_use_only_x_fields)
{
	struct acpi_config cfg = config(1);
	uint64_t gpa = 0x100000000ULL, rsdp;
	struct error err;
	const uint8_t *f;

	cr_assert_eq(acpi_build(&cfg, buf, gpa, sizeof(buf), &rsdp, &err), 0, "%s", err.msg);
	cr_assert_eq(rsdp, gpa);
	f = buf + (rd64(buf + 24) + 36 - gpa);
	f = buf + (rd64(f) - gpa);
	cr_assert(memcmp(f, "FACP", 4) == 0);
	cr_assert_eq(rd32(f + 36), 0, "FIRMWARE_CTRL cannot hold the address");
	cr_assert_eq(rd32(f + 40), 0, "DSDT cannot hold the address");
	cr_assert_gt(rd64(f + 132), gpa);
	cr_assert_gt(rd64(f + 140), gpa);
}

/* ---- iasl: ACPICA's own disassembler and compiler as a second opinion ---- */

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void skip_without_iasl(void)
{
	if (system("command -v iasl >/dev/null 2>&1") != 0)
		cr_skip_test("iasl not on PATH (Debian: apt install acpica-tools)");
}

static void dump(const char *name, const void *p, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	cr_assert(f, "creating %s", path);
	cr_assert_eq(fwrite(p, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* Runs "iasl <args>" in tmpdir; returns its exit status, output in out. */
static int iasl(const char *args, char *out, size_t outsz)
{
	char cmd[256];
	size_t n = 0, r;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "cd '%s' && iasl %s 2>&1", tmpdir, args);
	p = popen(cmd, "r");
	cr_assert(p, "popen");
	while (n + 1 < outsz && (r = fread(out + n, 1, outsz - 1 - n, p)) > 0)
		n += r;
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void check_iasl_clean(const char *args, const char *out, int rc)
{
	const char *p;

	cr_assert_eq(rc, 0, "iasl %s exited %d:\n%s", args, rc, out);
	/* Summaries say "0 Errors"; any other mention of an error is one. */
	for (p = strstr(out, "Error"); p; p = strstr(p + 1, "Error"))
		cr_assert(p >= out + 2 && memcmp(p - 2, "0 Errors", 8) == 0 &&
				  (p == out + 2 || !isdigit((unsigned char)p[-3])),
			  "iasl %s reported an error:\n%s", args, out);
}

static void disassemble(const char *file)
{
	static char out[65536];
	char args[128];
	int rc;

	snprintf(args, sizeof(args), "-d %s", file);
	rc = iasl(args, out, sizeof(out));
	check_iasl_clean(args, out, rc);
	cr_log_info("iasl %s:\n%s", args, out);
}

static void dump_all_tables(void)
{
	const uint8_t *f = fadt();

	dump("rsdp.dat", buf, 36);
	dump("xsdt.dat", xsdt(), rd32(xsdt() + 4));
	dump("facp.dat", f, rd32(f + 4));
	dump("facs.dat", buf + (rd64(f + 132) - GPA), 64);
	dump("dsdt.dat", dsdt(), rd32(dsdt() + 4));
	dump("apic.dat", find_table("APIC"), rd32(find_table("APIC") + 4));
	dump("mcfg.dat", find_table("MCFG"), rd32(find_table("MCFG") + 4));
}

static void iasl_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bunshin-acpi-XXXXXX");
	cr_assert(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

Test(acpi, iasl_disassembles_every_table, .init = iasl_setup, .fini = rm_tmpdir)
{
	/*
	 * Not the RSDP: iasl only loads binary files that start with a
	 * standard table header, which "RSD PTR " is not (it answers "Binary
	 * file does not contain a valid ACPI table"). The rsdp test above
	 * checks every RSDP field.
	 */
	static const char *const files[] = {"xsdt.dat", "facp.dat", "facs.dat",
					    "dsdt.dat", "apic.dat", "mcfg.dat"};
	struct acpi_config cfg = config(288);
	size_t i;

	skip_without_iasl();
	build(&cfg);
	dump_all_tables();
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		disassemble(files[i]);
}

static size_t read_whole(const char *name, uint8_t *out, size_t max)
{
	char path[128];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "rb");
	cr_assert(f, "opening %s", path);
	n = fread(out, 1, max, f);
	fclose(f);
	return n;
}

/*
 * Disassemble, then compile the result: once as iasl does by default (no
 * errors), once with optimizations off, which must give back exactly our
 * AML: the builder encodes everything the way ACPICA's compiler does.
 */
static void dsdt_round_trip(void)
{
	static uint8_t aml[LAYOUT_ACPI_SIZE];
	static char out[65536];
	const uint8_t *d = dsdt();
	uint32_t len = rd32(d + 4);
	size_t n;
	int rc;

	dump("dsdt.dat", d, len);
	disassemble("dsdt.dat");
	rc = iasl("dsdt.dsl", out, sizeof(out));
	check_iasl_clean("dsdt.dsl", out, rc);
	cr_assert(strstr(out, "Compilation successful"), "iasl dsdt.dsl:\n%s", out);
	cr_log_info("iasl dsdt.dsl:\n%s", out);

	rc = iasl("-oa -p noopt dsdt.dsl", out, sizeof(out));
	check_iasl_clean("-oa dsdt.dsl", out, rc);
	n = read_whole("noopt.aml", aml, sizeof(aml));
	cr_assert_eq(n, len, "recompiled DSDT is %zu bytes, ours %u", n, len);
	cr_assert(memcmp(aml + 36, d + 36, len - 36) == 0, "recompiled AML differs from ours");
}

Test(acpi, iasl_recompiles_the_dsdt, .init = iasl_setup, .fini = rm_tmpdir)
{
	struct acpi_config cfg = config(288);

	skip_without_iasl();
	build(&cfg);
	dsdt_round_trip();
}

Test(acpi, iasl_minimal_vm, .init = iasl_setup, .fini = rm_tmpdir)
{
	struct acpi_config cfg = config(1);

	skip_without_iasl();
	cfg.com1 = cfg.i8042 = cfg.rtc = cfg.pci = false;
	build(&cfg);
	dump_all_tables();
	disassemble("facp.dat");
	disassemble("apic.dat");
	dsdt_round_trip();
}

/* ACPICA's interpreter loads the DSDT and evaluates what Linux will. */
Test(acpi, acpiexec_evaluates_the_dsdt, .init = iasl_setup, .fini = rm_tmpdir)
{
	static char out[65536];
	struct acpi_config cfg = config(288);
	char cmd[512];
	size_t n = 0, r;
	FILE *p;

	if (system("command -v acpiexec >/dev/null 2>&1") != 0)
		cr_skip_test("acpiexec not on PATH (Debian: apt install acpica-tools)");
	build(&cfg);
	dump("dsdt.dat", dsdt(), rd32(dsdt() + 4));
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && acpiexec -b 'evaluate \\_S5; evaluate \\_SB.C11F._UID; "
		 "evaluate \\_SB.C11F._HID; evaluate \\_SB.RTC._CRS; "
		 "evaluate \\_SB.PCI0._HID; evaluate \\_SB.PCI0._CID; "
		 "evaluate \\_SB.PCI0._SEG; evaluate \\_SB.PCI0._CRS' dsdt.dat 2>&1",
		 tmpdir);
	p = popen(cmd, "r");
	cr_assert(p);
	while (n + 1 < sizeof(out) && (r = fread(out + n, 1, sizeof(out) - 1 - n, p)) > 0)
		n += r;
	out[n] = '\0';
	cr_assert_eq(pclose(p), 0, "acpiexec:\n%s", out);
	cr_assert(strstr(out, "[Package] Contains 4 Elements:\n"
			      "    [Integer] = 0000000000000005\n"
			      "    [Integer] = 0000000000000005\n"),
		  "\\_S5:\n%s", out);
	cr_assert(strstr(out, "[Integer] = 000000000000011F"), "_UID of CPU 287:\n%s", out);
	cr_assert(strstr(out, "\"ACPI0007\""), "_HID:\n%s", out);
	cr_assert(strstr(out, "47 01 70 00 70 00 01 02 22 00 01 79 00"), "RTC _CRS:\n%s", out);
	cr_assert(!strstr(out, "AE_"), "an ACPICA exception:\n%s", out);
	/* PNP0A08 and PNP0A03 as EISA IDs. */
	cr_assert(strstr(out, "[Integer] = 00000000080AD041"), "PCI0 _HID:\n%s", out);
	cr_assert(strstr(out, "[Integer] = 00000000030AD041"), "PCI0 _CID:\n%s", out);
	/* 288 processors, COM1, PS2K, RTC, PCI0 */
	cr_assert(strstr(out, "with 292 Devices"), "devices:\n%s", out);
}
