/* SPDX-License-Identifier: MIT */
/*
 * ACPI: find and validate the tables (RSDP, XSDT/RSDT, every table's
 * checksum, FADT -> DSDT/FACS, MADT), pick out what the scenarios need
 * (CPUs, IOAPICs, ISA overrides, PM1 control, \_S5, reset register) and
 * power the machine off or reset it. Parsing runs at CPL 3; the raw
 * power-off and reset steps are also used by the CPL-0 exception path.
 */
#include "guest.h"

struct acpi_info g_acpi;
static bool acpi_ready;

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

bool acpi_checksum_ok(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += b[i];
	return sum == 0;
}

static void fail(const char *reason, const uint8_t *table)
{
	if (g_acpi.fail)
		return;
	g_acpi.fail = reason;
	if (table)
		memcpy(g_acpi.fail_table, table, 4);
}

static bool addr_ok(uint64_t a)
{
	return a && a < g_boot.mapped_top;
}

static const uint8_t *scan_rsdp(uint64_t start, uint64_t len)
{
	for (uint64_t a = start; a + 20 <= start + len; a += 16) {
		const uint8_t *p = (const uint8_t *)a;
		if (memcmp(p, "RSD PTR ", 8) == 0 && acpi_checksum_ok(p, 20))
			return p;
	}
	return NULL;
}

static const uint8_t *find_rsdp(void)
{
	uint64_t ebda;

	if (g_boot.rsdp && addr_ok(g_boot.rsdp))
		return (const uint8_t *)g_boot.rsdp;
	ebda = (uint64_t)(*(const volatile uint16_t *)0x40e) << 4;
	if (ebda >= 0x80000 && ebda < 0xa0000) {
		const uint8_t *p = scan_rsdp(ebda, 1024);
		if (p)
			return p;
	}
	return scan_rsdp(0xe0000, 0x20000);
}

static void gas_read(struct gas *g, const uint8_t *p)
{
	g->space = p[0];
	g->bit_width = p[1];
	g->bit_offset = p[2];
	g->access_size = p[3];
	g->addr = rd64(p + 4);
}

static void gas_write8(const struct gas *g, uint8_t v)
{
	if (g->space == 1)
		outb((uint16_t)g->addr, v);
	else if (g->space == 0 && addr_ok(g->addr))
		*(volatile uint8_t *)g->addr = v;
}

/* AML integer data objects as they appear in \_S5's package. */
static bool aml_int(const uint8_t *p, const uint8_t *end, uint32_t *pos, uint32_t *out)
{
	uint32_t i = *pos;

	if (p + i >= end)
		return false;
	switch (p[i]) {
	case 0x00: /* ZeroOp */
		*out = 0;
		*pos = i + 1;
		return true;
	case 0x01: /* OneOp */
		*out = 1;
		*pos = i + 1;
		return true;
	case 0xff: /* OnesOp */
		*out = 0xffffffff;
		*pos = i + 1;
		return true;
	case 0x0a: /* BytePrefix */
		if (p + i + 2 > end)
			return false;
		*out = p[i + 1];
		*pos = i + 2;
		return true;
	case 0x0b: /* WordPrefix */
		if (p + i + 3 > end)
			return false;
		*out = p[i + 1] | p[i + 2] << 8;
		*pos = i + 3;
		return true;
	case 0x0c: /* DWordPrefix */
		if (p + i + 5 > end)
			return false;
		*out = rd32(p + i + 1);
		*pos = i + 5;
		return true;
	}
	return false;
}

/* Finds Name(_S5, Package(){a, b, ...}) in a DSDT/SSDT. */
static bool find_s5(const uint8_t *t)
{
	uint32_t len = rd32(t + 4);
	const uint8_t *end = t + len;

	for (uint32_t i = 36 + 1; i + 8 < len; i++) {
		if (memcmp(t + i, "_S5_", 4) != 0)
			continue;
		if (!(t[i - 1] == 0x08 || (t[i - 1] == '\\' && t[i - 2] == 0x08)))
			continue;
		uint32_t j = i + 4;
		if (t[j] != 0x12) /* PackageOp */
			continue;
		j++;
		j += 1 + (t[j] >> 6); /* PkgLength */
		j++;		      /* NumElements */
		uint32_t a, b;
		if (!aml_int(t, end, &j, &a))
			continue;
		if (!aml_int(t, end, &j, &b))
			b = a;
		g_acpi.slp_typa = a & 7;
		g_acpi.slp_typb = b & 7;
		g_acpi.s5_found = true;
		return true;
	}
	return false;
}

static void parse_fadt(const uint8_t *f)
{
	uint32_t len = rd32(f + 4);
	uint64_t dsdt = rd32(f + 40), facs = rd32(f + 36);
	uint32_t flags = len >= 116 ? rd32(f + 112) : 0;

	if (len >= 140 && rd64(f + 132))
		facs = rd64(f + 132);
	if (len >= 148 && rd64(f + 140))
		dsdt = rd64(f + 140);
	g_acpi.hw_reduced = (flags >> 20) & 1;
	g_acpi.pm1a_cnt = (uint16_t)rd32(f + 64);
	g_acpi.pm1b_cnt = (uint16_t)rd32(f + 68);
	g_acpi.pm_tmr = rd32(f + 76);
	if (len >= 196) { /* X_PM1a_CNT_BLK, X_PM1b_CNT_BLK win when set */
		struct gas g;
		gas_read(&g, f + 172);
		if (g.space == 1 && g.addr)
			g_acpi.pm1a_cnt = (uint16_t)g.addr;
		gas_read(&g, f + 184);
		if (g.space == 1 && g.addr)
			g_acpi.pm1b_cnt = (uint16_t)g.addr;
	}
	if (len >= 220 && !g_acpi.pm_tmr) {
		struct gas g;
		gas_read(&g, f + 208);
		if (g.space == 1)
			g_acpi.pm_tmr = (uint32_t)g.addr;
	}
	if (len >= 129 && (flags & (1u << 10))) {
		gas_read(&g_acpi.reset_reg, f + 116);
		g_acpi.reset_value = f[128];
		g_acpi.reset_valid = g_acpi.reset_reg.addr != 0 &&
				     (g_acpi.reset_reg.space == 0 || g_acpi.reset_reg.space == 1);
	}
	if (len >= 256) {
		gas_read(&g_acpi.sleep_ctrl, f + 244);
		g_acpi.sleep_ctrl_valid = g_acpi.sleep_ctrl.addr != 0;
	}

	if (!addr_ok(dsdt)) {
		fail("dsdt-missing", NULL);
	} else {
		const uint8_t *d = (const uint8_t *)dsdt;
		g_acpi.dsdt = d;
		if (memcmp(d, "DSDT", 4) != 0)
			fail("dsdt-signature", NULL);
		else if (!acpi_checksum_ok(d, rd32(d + 4)))
			fail("dsdt-checksum", d);
		else
			find_s5(d);
	}
	if (facs) {
		if (!addr_ok(facs) || memcmp((const void *)facs, "FACS", 4) != 0)
			fail("facs-signature", NULL);
	}
}

static void parse_madt(const uint8_t *m)
{
	uint32_t len = rd32(m + 4);

	g_acpi.lapic_base = rd32(m + 36);
	for (uint32_t off = 44; off + 2 <= len;) {
		const uint8_t *e = m + off;
		uint8_t type = e[0], elen = e[1];
		if (elen < 2 || off + elen > len)
			break;
		switch (type) {
		case 0: /* processor local APIC */
			if (elen >= 8 && (rd32(e + 4) & 1) && g_acpi.ncpus < MAX_CPUS)
				g_acpi.cpu_apic_id[g_acpi.ncpus++] = e[3];
			break;
		case 9: /* processor local x2APIC */
			if (elen >= 16 && (rd32(e + 8) & 1) && g_acpi.ncpus < MAX_CPUS)
				g_acpi.cpu_apic_id[g_acpi.ncpus++] = rd32(e + 4);
			break;
		case 1: /* IOAPIC */
			if (elen >= 12 && g_acpi.nioapics < MAX_IOAPICS) {
				g_acpi.ioapic[g_acpi.nioapics].id = e[2];
				g_acpi.ioapic[g_acpi.nioapics].addr = rd32(e + 4);
				g_acpi.ioapic[g_acpi.nioapics].gsi_base = rd32(e + 8);
				g_acpi.nioapics++;
			}
			break;
		case 2: /* interrupt source override */
			if (elen >= 10 && e[2] == 0 && e[3] < 16) {
				g_acpi.isa[e[3]].present = true;
				g_acpi.isa[e[3]].gsi = rd32(e + 4);
				g_acpi.isa[e[3]].flags = e[8] | e[9] << 8;
			}
			break;
		case 5: /* local APIC address override */
			if (elen >= 12)
				g_acpi.lapic_base = rd64(e + 4);
			break;
		}
		off += elen;
	}
}

static void note_table(const uint8_t *t)
{
	if (g_acpi.ntables && strlen(g_acpi.tables) + 1 < sizeof(g_acpi.tables))
		g_acpi.tables[strlen(g_acpi.tables)] = ',';
	if (strlen(g_acpi.tables) + 5 < sizeof(g_acpi.tables))
		memcpy(g_acpi.tables + strlen(g_acpi.tables), t, 4);
	g_acpi.ntables++;
}

void acpi_init(void)
{
	const uint8_t *rsdp = find_rsdp(), *root;
	bool xsdt;
	uint32_t len, n;
	const uint8_t *ssdt[16];
	uint32_t nssdt = 0;

	if (!rsdp) {
		fail("rsdp-missing", NULL);
		return;
	}
	g_acpi.rsdp = rsdp;
	if (memcmp(rsdp, "RSD PTR ", 8) != 0 || !acpi_checksum_ok(rsdp, 20)) {
		fail("rsdp-checksum", NULL);
		return;
	}
	xsdt = rsdp[15] >= 2 && addr_ok(rd64(rsdp + 24));
	if (rsdp[15] >= 2 && !acpi_checksum_ok(rsdp, rd32(rsdp + 20)))
		fail("rsdp-ext-checksum", NULL);
	root = (const uint8_t *)(xsdt ? rd64(rsdp + 24) : rd32(rsdp + 16));
	if (!addr_ok((uint64_t)root)) {
		fail("rsdt-missing", NULL);
		return;
	}
	if (memcmp(root, xsdt ? "XSDT" : "RSDT", 4) != 0) {
		fail(xsdt ? "xsdt-signature" : "rsdt-signature", NULL);
		return;
	}
	len = rd32(root + 4);
	if (!acpi_checksum_ok(root, len))
		fail(xsdt ? "xsdt-checksum" : "rsdt-checksum", root);
	n = (len - 36) / (xsdt ? 8 : 4);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = xsdt ? rd64(root + 36 + 8 * i) : rd32(root + 36 + 4 * i);
		if (!addr_ok(a)) {
			fail("table-address", NULL);
			continue;
		}
		const uint8_t *t = (const uint8_t *)a;
		note_table(t);
		if (!acpi_checksum_ok(t, rd32(t + 4))) {
			fail("table-checksum", t);
			continue;
		}
		if (memcmp(t, "FACP", 4) == 0 && !g_acpi.fadt)
			g_acpi.fadt = t;
		else if (memcmp(t, "APIC", 4) == 0 && !g_acpi.madt)
			g_acpi.madt = t;
		else if (memcmp(t, "MCFG", 4) == 0 && !g_acpi.mcfg)
			g_acpi.mcfg = t;
		else if (memcmp(t, "SSDT", 4) == 0 && nssdt < ARRAY_SIZE(ssdt))
			ssdt[nssdt++] = t;
	}
	if (g_acpi.fadt)
		parse_fadt(g_acpi.fadt);
	else
		fail("fadt-missing", NULL);
	for (uint32_t i = 0; i < nssdt && !g_acpi.s5_found; i++)
		find_s5(ssdt[i]);
	if (g_acpi.madt)
		parse_madt(g_acpi.madt);
	else
		fail("madt-missing", NULL);
	acpi_ready = true;
}

void acpi_poweroff_raw(void)
{
	uint32_t typa = g_acpi.s5_found ? g_acpi.slp_typa : 5;
	uint32_t typb = g_acpi.s5_found ? g_acpi.slp_typb : 5;

	if (!acpi_ready)
		return;
	if (g_acpi.hw_reduced && g_acpi.sleep_ctrl_valid) {
		gas_write8(&g_acpi.sleep_ctrl, (uint8_t)((typa & 7) << 2 | 1 << 5));
		return;
	}
	if (g_acpi.pm1a_cnt) {
		uint16_t v = inw(g_acpi.pm1a_cnt);
		outw(g_acpi.pm1a_cnt, (v & ~(7u << 10)) | typa << 10 | 1u << 13);
	}
	if (g_acpi.pm1b_cnt) {
		uint16_t v = inw(g_acpi.pm1b_cnt);
		outw(g_acpi.pm1b_cnt, (v & ~(7u << 10)) | typb << 10 | 1u << 13);
	}
}

void acpi_reset_raw(void)
{
	if (acpi_ready && g_acpi.reset_valid)
		gas_write8(&g_acpi.reset_reg, g_acpi.reset_value);
}
