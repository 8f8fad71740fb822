/* SPDX-License-Identifier: MIT */
/*
 * test=timer: LAPIC timer interrupts, PIT channel-0 interrupts (ISA IRQ0
 * routed through the IOAPIC per the MADT override) and, when the
 * hypervisor offers it, kvmclock.
 *   BUNSHIN-TEST name=timer result=pass lapic=N pit=N kvmclock=ok|absent
 */
#include "guest.h"

#define WANT_TICKS 5

struct pvclock {
	uint32_t version;
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
} PACKED;

static volatile struct pvclock kvmclock __attribute__((aligned(64)));

/* Waits until g_irq_count[vec] reaches want, or the timeout passes. */
static uint32_t wait_irqs(uint8_t vec, uint32_t want, uint64_t timeout_ms)
{
	uint64_t deadline = rdtsc() + timeout_ms * (tsc_hz() / 1000);

	while (g_irq_count[vec] < want && (int64_t)(rdtsc() - deadline) < 0)
		cpu_relax();
	return g_irq_count[vec];
}

static uint64_t kvmclock_read(void)
{
	uint32_t v;
	uint64_t t;

	do {
		v = kvmclock.version;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		uint64_t delta = rdtsc_virt() - kvmclock.tsc_timestamp;
		int8_t shift = kvmclock.tsc_shift;
		if (shift < 0)
			delta >>= -shift;
		else
			delta <<= shift;
		t = kvmclock.system_time +
		    (uint64_t)(((unsigned __int128)delta * kvmclock.tsc_to_system_mul) >> 32);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((v & 1) || v != kvmclock.version);
	return t;
}

/* "ok", "absent" or the failure word. */
static const char *check_kvmclock(void)
{
	uint32_t a, b, c, d;
	char sig[12];

	cpuid(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 31)))
		return "absent";
	cpuid(0x40000000, 0, &a, &b, &c, &d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	if (memcmp(sig, "KVMKVMKVM\0\0\0", 12) != 0 || a < 0x40000001)
		return "absent";
	cpuid(0x40000001, 0, &a, &b, &c, &d);
	if (!(a & (1u << 3))) /* KVM_FEATURE_CLOCKSOURCE2 */
		return "absent";

	wrmsr_user(0x4b564d01, (uint64_t)&kvmclock | 1);
	uint64_t t0 = kvmclock_read();
	delay_us(2000);
	uint64_t t1 = kvmclock_read();
	wrmsr_user(0x4b564d01, 0);
	if (kvmclock.version == 0 && t0 == 0)
		return "bad";
	return t1 > t0 ? "ok" : "bad";
}

void run_timer(void)
{
	uint32_t bsp = cpu_apic_id();
	uint32_t lapic, pit;
	const char *reason = NULL, *kc;
	struct line l;

	lapic_enable();

	/* LAPIC timer: periodic, divide by 16. */
	lapic_write(LAPIC_TMR_DIV, 0x3);
	lapic_write(LAPIC_LVT_TMR, VEC_LAPIC_TIMER | 1u << 17);
	lapic_write(LAPIC_TMR_INIT, 100000);
	lapic = wait_irqs(VEC_LAPIC_TIMER, WANT_TICKS, 2000);
	lapic_write(LAPIC_LVT_TMR, VEC_LAPIC_TIMER | 1u << 16);
	lapic_write(LAPIC_TMR_INIT, 0);
	if (lapic < WANT_TICKS)
		reason = "lapic-timer";

	/* PIT channel 0, mode 2, ~1 kHz, through the IOAPIC. */
	if (!ioapic_route_isa(0, VEC_PIT, bsp)) {
		pit = 0;
		if (!reason)
			reason = "no-ioapic-pin";
	} else {
		outb(0x43, 0x34);
		outb(0x40, 1193 & 0xff);
		outb(0x40, 1193 >> 8);
		pit = wait_irqs(VEC_PIT, WANT_TICKS, 2000);
		outb(0x43, 0x30); /* mode 0, no count: stops */
		ioapic_mask_isa(0);
		if (pit < WANT_TICKS && !reason)
			reason = "pit";
	}

	kc = check_kvmclock();
	if (kc[0] == 'b' && !reason)
		reason = "kvmclock";

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=timer result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_kv_dec(&l, "lapic", lapic);
	line_kv_dec(&l, "pit", pit);
	line_kv_str(&l, "kvmclock", kc);
	line_emit(&l);
}
