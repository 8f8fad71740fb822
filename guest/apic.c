/* SPDX-License-Identifier: MIT */
/*
 * Local APIC (xAPIC through MMIO from CPL 3, x2APIC through MSR system
 * calls) and IOAPIC routing of ISA interrupts, per the MADT.
 */
#include "guest.h"

bool g_x2apic;
uint64_t g_lapic_base = 0xfee00000;

uint32_t lapic_read(uint32_t reg)
{
	if (g_x2apic)
		return (uint32_t)rdmsr_user(0x800 + (reg >> 4));
	return mmio_read32(g_lapic_base + reg);
}

void lapic_write(uint32_t reg, uint32_t val)
{
	if (g_x2apic)
		wrmsr_user(0x800 + (reg >> 4), val);
	else
		mmio_write32(g_lapic_base + reg, val);
}

void lapic_enable(void)
{
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
}

/* CPL 0: end of interrupt, from the interrupt handler. */
void lapic_eoi_kernel(void)
{
	if (g_x2apic)
		__asm__ volatile("wrmsr" : : "c"(0x80b), "a"(0), "d"(0));
	else
		mmio_write32(g_lapic_base + LAPIC_EOI, 0);
}

uint32_t cpu_apic_id(void)
{
	uint32_t a, b, c, d, max;

	cpuid(0, 0, &max, &b, &c, &d);
	if (max >= 0xb) {
		cpuid(0xb, 0, &a, &b, &c, &d);
		if (b != 0)
			return d; /* x2APIC ID */
	}
	cpuid(1, 0, &a, &b, &c, &d);
	return b >> 24;
}

static uint32_t ioapic_read(uint64_t base, uint32_t reg)
{
	mmio_write32(base, reg);
	return mmio_read32(base + 0x10);
}

static void ioapic_write(uint64_t base, uint32_t reg, uint32_t v)
{
	mmio_write32(base, reg);
	mmio_write32(base + 0x10, v);
}

/* Finds the IOAPIC and pin of an ISA IRQ (after MADT overrides). */
static bool ioapic_pin(uint32_t isa_irq, uint64_t *base, uint32_t *pin, uint16_t *flags)
{
	uint32_t gsi = isa_irq;

	*flags = 0;
	if (isa_irq < 16 && g_acpi.isa[isa_irq].present) {
		gsi = g_acpi.isa[isa_irq].gsi;
		*flags = g_acpi.isa[isa_irq].flags;
	}
	for (uint32_t i = 0; i < g_acpi.nioapics; i++) {
		uint64_t b = g_acpi.ioapic[i].addr;
		uint32_t first = g_acpi.ioapic[i].gsi_base;
		uint32_t count = ((ioapic_read(b, 1) >> 16) & 0xff) + 1;
		if (gsi >= first && gsi < first + count) {
			*base = b;
			*pin = gsi - first;
			return true;
		}
	}
	return false;
}

bool ioapic_route_isa(uint32_t isa_irq, uint8_t vector, uint32_t dest_apic_id)
{
	uint64_t base;
	uint32_t pin, lo = vector;
	uint16_t flags;

	if (!ioapic_pin(isa_irq, &base, &pin, &flags))
		return false;
	if ((flags & 3) == 3)
		lo |= 1u << 13; /* active low */
	if (((flags >> 2) & 3) == 3)
		lo |= 1u << 15; /* level triggered */
	ioapic_write(base, 0x10 + 2 * pin, lo | 1u << 16);
	ioapic_write(base, 0x11 + 2 * pin, dest_apic_id << 24);
	ioapic_write(base, 0x10 + 2 * pin, lo);
	return true;
}

void ioapic_mask_isa(uint32_t isa_irq)
{
	uint64_t base;
	uint32_t pin;
	uint16_t flags;

	if (ioapic_pin(isa_irq, &base, &pin, &flags))
		ioapic_write(base, 0x10 + 2 * pin, ioapic_read(base, 0x10 + 2 * pin) | 1u << 16);
}
