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

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

/* A hypervisor that says KVM and offers kvmclock (KVM_FEATURE_CLOCKSOURCE2)? */
static bool kvmclock_offered(void)
{
	uint32_t a, b, c, d;
	char sig[12];

	cpuid(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 31)))
		return false;
	cpuid(0x40000000, 0, &a, &b, &c, &d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	if (memcmp(sig, "KVMKVMKVM\0\0\0", 12) != 0 || a < 0x40000001)
		return false;
	cpuid(0x40000001, 0, &a, &b, &c, &d);
	return a & (1u << 3);
}

/* "ok", "absent" or the failure word. */
static const char *check_kvmclock(void)
{
	if (!kvmclock_offered())
		return "absent";
	wrmsr_user(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)&kvmclock | 1);
	uint64_t t0 = kvmclock_read();
	delay_us(2000);
	uint64_t t1 = kvmclock_read();
	wrmsr_user(MSR_KVM_SYSTEM_TIME_NEW, 0);
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

/*
 * test=clock-watch: reads kvmclock in a loop for watch_ms (default 3000) of
 * kvmclock time and reports the longest step between two consecutive
 * reads, and between the host TSC reads next to them. A VM paused for a
 * while in the middle shows the pause in the TSC step but, when the VMM
 * stops the guest's clock with its vCPUs, not in the kvmclock step.
 *   BUNSHIN-TEST name=clock-watch result=ready       (the loop starts)
 *   BUNSHIN-TEST name=clock-watch result=pass max_gap_us=N max_tsc_gap_us=N
 *     reads=N
 */
void run_clock_watch(void)
{
	uint64_t watch_ms = 3000, t0, last, tsc_last, max_gap = 0, max_tsc_gap = 0, reads = 0;
	uint64_t tsc_per_us = tsc_hz() / 1000000;
	struct line l;

	opt_u64("watch_ms", 10, &watch_ms);
	if (!kvmclock_offered())
		fail_and_poweroff("clock-watch", "no-kvmclock");
	wrmsr_user(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)&kvmclock | 1);
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=clock-watch result=ready");
	line_emit(&l);
	t0 = last = kvmclock_read();
	tsc_last = rdtsc();
	while (last - t0 < watch_ms * 1000000) {
		uint64_t t = kvmclock_read(), tsc = rdtsc();

		if (t - last > max_gap)
			max_gap = t - last;
		if (tsc - tsc_last > max_tsc_gap)
			max_tsc_gap = tsc - tsc_last;
		last = t;
		tsc_last = tsc;
		reads++;
	}
	wrmsr_user(MSR_KVM_SYSTEM_TIME_NEW, 0);
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=clock-watch result=pass");
	line_kv_dec(&l, "max_gap_us", max_gap / 1000);
	line_kv_dec(&l, "max_tsc_gap_us", tsc_per_us ? max_tsc_gap / tsc_per_us : 0);
	line_kv_dec(&l, "reads", reads);
	line_emit(&l);
}
