/* SPDX-License-Identifier: MIT */
/*
 * test=vmgenid: the VM generation ID (ACPI device VGEN, _CID
 * "VM_Gen_Counter"). The guest has no AML interpreter, so it finds the
 * GUID's address the way a small firmware-aware program can: in the DSDT,
 * after the "VM_Gen_Counter" string, the method ADDR whose whole body is
 * Return(Package(2){low, high}) with two integer constants (what the
 * specification's ADDR evaluates to, written as constants by bunshin).
 * It then prints the GUID and watches it: the SCI (ISA IRQ 9 through the
 * IOAPIC) with GPE0 bit 0 enabled wakes it when the VMM announces a new
 * one; a LAPIC one-shot timer bounds each halt, so it also notices a
 * change that came without a GPE (and says so: gpe=0).
 *
 *   BUNSHIN-TEST name=vmgenid result=ready addr=0x... e820=reserved guid=<32 hex>
 *   BUNSHIN-TEST name=vmgenid result=changed guid=<32 hex> gpe=0|1 changes=N
 *   BUNSHIN-TEST name=vmgenid result=pass changes=N        (after vmgenid_ms)
 *
 * Options: vmgenid_ms=N (default 60000); vmgenid_reboot=1 reboots once
 * after the ready line (a CMOS RAM byte, which survives the reset, says it
 * did), so the VMM under test (--on-reboot restart) prints it twice. Fail words: no-dsdt, no-vgen,
 * no-addr, addr-not-reserved, no-gpe0, no-ioapic-pin.
 */
#include "guest.h"

#define GUID_LEN 16
#define SCI_IRQ	 9
#define GPE_BIT	 0

static uint16_t gpe0_port, gpe0_half; /* GPE0_STS at port, GPE0_EN at port + half */
static volatile uint32_t gpe_seen;    /* GPE0_STS bits the SCI handler cleared */

/* CPL 0, interrupt handler for VEC_SCI: clears GPE0 status so the level SCI drops before EOI. */
void vmgenid_sci_isr(void)
{
	uint8_t sts;

	if (!gpe0_port)
		return;
	sts = inb(gpe0_port);
	if (sts)
		outb(gpe0_port, sts);
	gpe_seen |= sts;
}

static uint32_t rd32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* An AML integer constant at *pos (Zero, One, Byte/Word/DWord/QWord prefixes). */
static bool aml_const(const uint8_t *p, uint32_t end, uint32_t *pos, uint64_t *out)
{
	static const uint8_t widths[] = {[0x0a] = 1, [0x0b] = 2, [0x0c] = 4, [0x0e] = 8};
	uint32_t i = *pos, w;

	if (i >= end)
		return false;
	if (p[i] == 0x00 || p[i] == 0x01) {
		*out = p[i];
		*pos = i + 1;
		return true;
	}
	if (p[i] >= sizeof(widths) || !(w = widths[p[i]]) || i + 1 + w > end)
		return false;
	*out = 0;
	for (uint32_t k = 0; k < w; k++)
		*out |= (uint64_t)p[i + 1 + k] << (8 * k);
	*pos = i + 1 + w;
	return true;
}

/* ADDR's constants: "ADDR" flags ReturnOp PackageOp PkgLength 2 low high. */
static bool parse_addr(const uint8_t *t, uint32_t len, uint32_t i, uint64_t *addr)
{
	uint32_t j = i + 4;
	uint64_t lo, hi;

	if (j + 4 > len || t[j + 1] != 0xa4 || t[j + 2] != 0x12)
		return false;
	j += 3;
	j += 1 + (t[j] >> 6); /* PkgLength */
	if (j >= len || t[j] != 2)
		return false;
	j++;
	if (!aml_const(t, len, &j, &lo) || !aml_const(t, len, &j, &hi))
		return false;
	*addr = (lo & 0xffffffff) | hi << 32;
	return true;
}

static uint64_t find_vmgenid(void)
{
	const uint8_t *t = g_acpi.dsdt;
	uint32_t len, i, start = 0;
	uint64_t addr;

	if (!t)
		fail_and_poweroff("vmgenid", "no-dsdt");
	len = rd32(t + 4);
	for (i = 36; i + 14 <= len && !start; i++)
		if (memcmp(t + i, "VM_Gen_Counter", 14) == 0)
			start = i;
	if (!start)
		fail_and_poweroff("vmgenid", "no-vgen");
	for (i = start; i + 4 <= len; i++)
		if (memcmp(t + i, "ADDR", 4) == 0 && parse_addr(t, len, i, &addr))
			return addr;
	fail_and_poweroff("vmgenid", "no-addr");
}

static bool e820_reserved(uint64_t addr)
{
	for (uint32_t i = 0; i < g_boot.e820_count; i++) {
		const struct e820_entry *e = &g_boot.e820[i];

		if (addr >= e->addr && addr + GUID_LEN <= e->addr + e->size)
			return e->type == E820_RESERVED;
	}
	return false;
}

/* GPE0 from the FADT (GPE0_BLK at 80, GPE0_BLK_LEN at 92): enable our bit, route the SCI. */
static void setup_gpe(void)
{
	const uint8_t *f = g_acpi.fadt;

	if (!f || rd32(f + 4) < 93 || !rd32(f + 80) || f[92] < 2)
		fail_and_poweroff("vmgenid", "no-gpe0");
	gpe0_half = f[92] / 2;
	lapic_enable();
	if (!ioapic_route_isa(SCI_IRQ, VEC_SCI, cpu_apic_id()))
		fail_and_poweroff("vmgenid", "no-ioapic-pin");
	gpe0_port = (uint16_t)rd32(f + 80);
	outb(gpe0_port, 1u << GPE_BIT); /* stale status from before */
	outb(gpe0_port + gpe0_half, 1u << GPE_BIT);
}

static void line_guid(struct line *l, const volatile uint8_t *g)
{
	line_str(l, " guid=");
	for (int i = 0; i < GUID_LEN; i++) {
		line_chr(l, "0123456789abcdef"[g[i] >> 4]);
		line_chr(l, "0123456789abcdef"[g[i] & 15]);
	}
}

static void read_guid(const volatile uint8_t *src, uint8_t *dst)
{
	for (int i = 0; i < GUID_LEN; i++)
		dst[i] = src[i];
}

static void report_change(const uint8_t *guid, uint32_t changes)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=vmgenid result=changed");
	line_guid(&l, guid);
	line_kv_dec(&l, "gpe", (gpe_seen >> GPE_BIT) & 1);
	line_kv_dec(&l, "changes", changes);
	line_emit(&l);
	gpe_seen = 0;
}

#define CMOS_MARK_REG 0x40 /* CMOS RAM, untouched by the RTC */
#define CMOS_MARK     0xa5

static void reboot_once(void)
{
	uint64_t v = 0;

	if (!opt_u64("vmgenid_reboot", 10, &v) || !v)
		return;
	outb(0x70, CMOS_MARK_REG);
	if (inb(0x71) == CMOS_MARK)
		return; /* the second boot */
	outb(0x70, CMOS_MARK_REG);
	outb(0x71, CMOS_MARK);
	syscall2(SYS_RESET, RESET_ACPI, 0);
}

void run_vmgenid(void)
{
	uint64_t addr = find_vmgenid(), ms = 60000, deadline;
	const volatile uint8_t *p = (const volatile uint8_t *)addr;
	uint8_t cur[GUID_LEN], now[GUID_LEN];
	uint32_t changes = 0;
	struct line l;

	opt_u64("vmgenid_ms", 10, &ms);
	if (!e820_reserved(addr))
		fail_and_poweroff("vmgenid", "addr-not-reserved");
	setup_gpe();
	read_guid(p, cur);
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=vmgenid result=ready addr=");
	line_hex(&l, addr);
	line_kv_str(&l, "e820", "reserved");
	line_guid(&l, cur);
	line_emit(&l);
	reboot_once();
	deadline = rdtsc() + ms * (tsc_hz() / 1000);
	while ((int64_t)(rdtsc() - deadline) < 0) {
		uint32_t seen = g_irq_count[VEC_SCI];

		read_guid(p, now);
		if (memcmp(now, cur, GUID_LEN)) {
			memcpy(cur, now, GUID_LEN);
			report_change(cur, ++changes);
			continue;
		}
		/* one-shot LAPIC timer (~16 ms under KVM) bounds the halt */
		lapic_write(LAPIC_TMR_DIV, 0x3);
		lapic_write(LAPIC_LVT_TMR, VEC_LAPIC_TIMER);
		lapic_write(LAPIC_TMR_INIT, 1000000);
		wait_change(&g_irq_count[VEC_SCI], seen);
	}
	/* A change that landed as the time ran out (a clone resumed late) still counts. */
	read_guid(p, now);
	if (memcmp(now, cur, GUID_LEN))
		report_change(now, ++changes);
	outb(gpe0_port + gpe0_half, 0);
	ioapic_mask_isa(SCI_IRQ);
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=vmgenid result=pass");
	line_kv_dec(&l, "changes", changes);
	line_emit(&l);
}
