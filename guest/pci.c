/* SPDX-License-Identifier: MIT */
/*
 * PCI: configuration access (ECAM from the ACPI MCFG, else the 0xCF8/0xCFC
 * ports), enumeration of bus 0 and the buses behind bridges that firmware
 * numbered, BAR sizing, capability lists; and test=pci:
 *   BUNSHIN-INFO pci BB:DD.F id=VVVV:DDDD class=CCSSPP hdr=N ... (each function)
 *   BUNSHIN-TEST name=pci result=pass method=ecam|cf8 devices=N host_bridge=VVVV:DDDD
 * Options: expect_devices=N, expect=VVVV:DDDD,... (fail: device-count, missing).
 */
#include "pci.h"

struct pci_info g_pci;
static bool pci_ready;
static uint8_t ecam_bus_start, ecam_bus_end;

static uint64_t ecam_addr(const struct pci_dev *d, uint32_t off)
{
	return g_pci.ecam_base + ((uint64_t)(d->bus - ecam_bus_start) << 20 |
				  (uint64_t)d->dev << 15 | (uint64_t)d->fn << 12 | (off & 0xfff));
}

static void cf8_select(const struct pci_dev *d, uint32_t off)
{
	outl(0xcf8, 0x80000000u | (uint32_t)d->bus << 16 | (uint32_t)d->dev << 11 |
			    (uint32_t)d->fn << 8 | (off & 0xfc));
}

uint32_t pci_read32(const struct pci_dev *d, uint32_t off)
{
	if (g_pci.ecam_base)
		return *(volatile uint32_t *)ecam_addr(d, off);
	cf8_select(d, off);
	return inl(0xcfc);
}

uint16_t pci_read16(const struct pci_dev *d, uint32_t off)
{
	if (g_pci.ecam_base)
		return *(volatile uint16_t *)ecam_addr(d, off);
	cf8_select(d, off);
	return inw(0xcfc + (off & 2));
}

uint8_t pci_read8(const struct pci_dev *d, uint32_t off)
{
	if (g_pci.ecam_base)
		return *(volatile uint8_t *)ecam_addr(d, off);
	cf8_select(d, off);
	return inb(0xcfc + (off & 3));
}

void pci_write32(const struct pci_dev *d, uint32_t off, uint32_t v)
{
	if (g_pci.ecam_base) {
		*(volatile uint32_t *)ecam_addr(d, off) = v;
		return;
	}
	cf8_select(d, off);
	outl(0xcfc, v);
}

void pci_write16(const struct pci_dev *d, uint32_t off, uint16_t v)
{
	if (g_pci.ecam_base) {
		*(volatile uint16_t *)ecam_addr(d, off) = v;
		return;
	}
	cf8_select(d, off);
	outw(0xcfc + (off & 2), v);
}

uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t from)
{
	uint8_t p;
	int guard = 48; /* at most 48 capabilities fit in 192 bytes */

	if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAPS))
		return 0;
	p = from ? pci_read8(d, from + 1) : pci_read8(d, PCI_CAP_PTR);
	while (p >= 0x40 && guard-- > 0) {
		p &= 0xfc;
		if (pci_read8(d, p) == id)
			return p;
		p = pci_read8(d, p + 1);
	}
	return 0;
}

/* Size the BARs with memory and I/O decode off (a BAR full of ones must not
 * claim addresses meanwhile), restoring every register afterwards. */
static void size_bars(struct pci_dev *d)
{
	uint16_t cmd = pci_read16(d, PCI_COMMAND);
	int nbars = d->hdr_type == 0 ? 6 : d->hdr_type == 1 ? 2 : 0;

	pci_write16(d, PCI_COMMAND, cmd & ~(PCI_CMD_IO | PCI_CMD_MEM));
	for (int i = 0; i < nbars; i++) {
		uint32_t off = 0x10 + 4 * i;
		uint32_t orig = pci_read32(d, off), mask;
		struct pci_bar *b = &d->bar[i];

		pci_write32(d, off, 0xffffffff);
		mask = pci_read32(d, off);
		pci_write32(d, off, orig);
		if (orig & 1) {
			mask &= ~3u;
			if (!mask)
				continue;
			if (!(mask & 0xffff0000))
				mask |= 0xffff0000;
			b->type = PCI_BAR_IO;
			b->addr = orig & ~3u;
			b->size = (uint32_t)(~mask + 1);
			continue;
		}
		b->prefetch = (orig >> 3) & 1;
		if (((orig >> 1) & 3) == 2 && i + 1 < nbars) {
			uint32_t orig_hi = pci_read32(d, off + 4), mask_hi;
			pci_write32(d, off + 4, 0xffffffff);
			mask_hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, orig_hi);
			uint64_t m = (uint64_t)mask_hi << 32 | (mask & ~0xfu);
			i++;
			if (!m)
				continue;
			b->type = PCI_BAR_MEM64;
			b->addr = (uint64_t)orig_hi << 32 | (orig & ~0xfu);
			b->size = ~m + 1;
			continue;
		}
		mask &= ~0xfu;
		if (!mask)
			continue;
		b->type = PCI_BAR_MEM32;
		b->addr = orig & ~0xfu;
		b->size = (uint32_t)(~mask + 1);
	}
	pci_write16(d, PCI_COMMAND, cmd);
}

static uint8_t bus_seen[32]; /* bitmap of scanned buses */

static void scan_bus(uint8_t bus, int depth)
{
	if (bus_seen[bus / 8] & (1u << (bus % 8)))
		return;
	bus_seen[bus / 8] |= 1u << (bus % 8);
	if (g_pci.ecam_base && (bus < ecam_bus_start || bus > ecam_bus_end))
		return;
	for (uint8_t dev = 0; dev < 32; dev++) {
		struct pci_dev probe = {.bus = bus, .dev = dev, .fn = 0};
		if (pci_read16(&probe, 0) == 0xffff)
			continue;
		int nfn = (pci_read8(&probe, 0x0e) & 0x80) ? 8 : 1;
		for (uint8_t fn = 0; fn < nfn; fn++) {
			probe.fn = fn;
			uint16_t vendor = pci_read16(&probe, 0);
			if (vendor == 0xffff || g_pci.ndevs >= PCI_MAX_DEVS)
				continue;
			struct pci_dev *d = &g_pci.devs[g_pci.ndevs++];
			*d = probe;
			d->vendor = vendor;
			d->device = pci_read16(d, 2);
			d->revision = pci_read8(d, 8);
			d->class = pci_read32(d, 8) >> 8;
			d->hdr_type = pci_read8(d, 0x0e) & 0x7f;
			if (d->hdr_type == 0) {
				d->subsys_vendor = pci_read16(d, 0x2c);
				d->subsys_id = pci_read16(d, 0x2e);
			}
			size_bars(d);
			if (d->hdr_type == 1 && depth < 8) {
				uint8_t sec = pci_read8(d, 0x19);
				if (sec > bus)
					scan_bus(sec, depth + 1);
			}
		}
	}
}

static void find_ecam(void)
{
	const uint8_t *m = g_acpi.mcfg;
	uint32_t len;

	if (!m)
		return;
	len = *(const uint32_t *)(m + 4);
	for (uint32_t off = 44; off + 16 <= len; off += 16) {
		uint64_t base = *(const uint64_t *)(m + off);
		uint16_t seg = *(const uint16_t *)(m + off + 8);
		uint8_t start = m[off + 10], end = m[off + 11];
		if (seg != 0 || start > 0 || end < start || !base)
			continue;
		if (!map_mmio(base, ((uint64_t)end - start + 1) << 20))
			continue;
		g_pci.ecam_base = base;
		ecam_bus_start = start;
		ecam_bus_end = end;
		return;
	}
}

uint64_t pci_bar_map(const struct pci_dev *d, int bar)
{
	const struct pci_bar *b = &d->bar[bar];

	if (bar < 0 || bar > 5 || (b->type != PCI_BAR_MEM32 && b->type != PCI_BAR_MEM64) ||
	    !b->addr)
		return 0;
	if (b->addr + b->size > g_boot.mapped_top && !map_mmio(b->addr, b->size))
		return 0;
	return b->addr;
}

void pci_init(void)
{
	if (pci_ready)
		return;
	pci_ready = true;
	find_ecam();
	g_pci.method = g_pci.ecam_base ? "ecam" : "cf8";
	scan_bus(0, 0);
	for (uint32_t i = 0; i < g_pci.ndevs; i++)
		for (int b = 0; b < 6; b++)
			if (g_pci.devs[i].bar[b].addr &&
			    (g_pci.devs[i].bar[b].type == PCI_BAR_MEM32 ||
			     g_pci.devs[i].bar[b].type == PCI_BAR_MEM64) &&
			    !pci_bar_map(&g_pci.devs[i], b) && !g_pci.fail)
				g_pci.fail = "bar-above-4g";
}

struct pci_dev *pci_find(uint16_t vendor, uint16_t device, uint32_t nth)
{
	for (uint32_t i = 0; i < g_pci.ndevs; i++)
		if (g_pci.devs[i].vendor == vendor && g_pci.devs[i].device == device && nth-- == 0)
			return &g_pci.devs[i];
	return NULL;
}

static void hex_n(struct line *l, uint64_t v, int digits)
{
	static const char hx[] = "0123456789abcdef";

	for (int i = digits - 1; i >= 0; i--)
		line_chr(l, hx[(v >> (4 * i)) & 0xf]);
}

static void info_line(const struct pci_dev *d)
{
	static const char *const kind[] = {"", "mem32", "mem64", "io"};
	struct line l;
	bool first = true;

	line_init(&l);
	line_str(&l, "BUNSHIN-INFO pci ");
	hex_n(&l, d->bus, 2);
	line_chr(&l, ':');
	hex_n(&l, d->dev, 2);
	line_chr(&l, '.');
	hex_n(&l, d->fn, 1);
	line_str(&l, " id=");
	hex_n(&l, d->vendor, 4);
	line_chr(&l, ':');
	hex_n(&l, d->device, 4);
	line_str(&l, " class=");
	hex_n(&l, d->class, 6);
	line_kv_dec(&l, "hdr", d->hdr_type);
	line_kv_dec(&l, "rev", d->revision);
	if (d->hdr_type == 0) {
		line_str(&l, " subsys=");
		hex_n(&l, d->subsys_vendor, 4);
		line_chr(&l, ':');
		hex_n(&l, d->subsys_id, 4);
	}
	for (int i = 0; i < 6; i++) {
		const struct pci_bar *b = &d->bar[i];
		if (b->type == PCI_BAR_NONE)
			continue;
		line_str(&l, " bar");
		line_dec(&l, i);
		line_chr(&l, '=');
		line_str(&l, kind[b->type]);
		if (b->prefetch)
			line_chr(&l, 'p');
		line_chr(&l, ':');
		line_hex(&l, b->addr);
		line_chr(&l, '/');
		line_hex(&l, b->size);
	}
	if (pci_read16(d, PCI_STATUS) & PCI_STATUS_CAPS) {
		uint8_t p = pci_read8(d, PCI_CAP_PTR);
		int guard = 48;
		line_str(&l, " caps=");
		while (p >= 0x40 && guard-- > 0) {
			p &= 0xfc;
			if (!first)
				line_chr(&l, ',');
			first = false;
			hex_n(&l, pci_read8(d, p), 2);
			p = pci_read8(d, p + 1);
		}
	}
	line_emit(&l);
}

/* "VVVV:DDDD" at s[0..9). */
static bool parse_id(const char *s, size_t n, uint16_t *v, uint16_t *d)
{
	uint64_t a, b;

	if (n != 9 || s[4] != ':' || !parse_u64(s, 4, 16, &a) || !parse_u64(s + 5, 4, 16, &b))
		return false;
	*v = (uint16_t)a;
	*d = (uint16_t)b;
	return true;
}

void run_pci(void)
{
	const char *reason = NULL, *exp;
	const char *missing = NULL;
	size_t missing_len = 0, elen;
	uint64_t want;
	struct line l;

	pci_init();
	for (uint32_t i = 0; i < g_pci.ndevs; i++)
		info_line(&g_pci.devs[i]);
	if (g_pci.fail)
		reason = g_pci.fail;
	if (!reason && opt_u64("expect_devices", 10, &want) && want != g_pci.ndevs)
		reason = "device-count";
	if (!reason && opt_get("expect", &exp, &elen)) {
		size_t i = 0;
		while (i < elen && !reason) {
			size_t j = i;
			uint16_t v, d;
			while (j < elen && exp[j] != ',')
				j++;
			if (!parse_id(exp + i, j - i, &v, &d)) {
				reason = "bad-option";
			} else if (!pci_find(v, d, 0)) {
				reason = "missing";
				missing = exp + i;
				missing_len = j - i;
			}
			i = j + 1;
		}
	}
	if (!reason && g_pci.ndevs == 0)
		reason = "no-devices";

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=pci result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	if (missing) {
		line_str(&l, " device=");
		line_strn(&l, missing, missing_len);
	}
	line_kv_str(&l, "method", g_pci.method);
	line_kv_dec(&l, "devices", g_pci.ndevs);
	if (g_pci.ndevs && g_pci.devs[0].bus == 0 && g_pci.devs[0].dev == 0) {
		line_str(&l, " host_bridge=");
		hex_n(&l, g_pci.devs[0].vendor, 4);
		line_chr(&l, ':');
		hex_n(&l, g_pci.devs[0].device, 4);
	} else {
		line_str(&l, " host_bridge=none");
	}
	line_emit(&l);
}
