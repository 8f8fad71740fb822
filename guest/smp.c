/* SPDX-License-Identifier: MIT */
/*
 * test=smp: the BSP wakes every enabled AP of the MADT with INIT-SIPI-SIPI
 * (xAPIC ICR, or x2APIC when an APIC ID is >= 255 or x2APIC is already on).
 * Each AP goes real mode -> long mode through the trampoline, runs a small
 * job at CPL 3 and reports
 *   BUNSHIN-TEST name=smp-cpu apic_id=N result=pass
 * The BSP waits (with a timeout) and reports
 *   BUNSHIN-TEST name=smp result=pass cpus=N
 * where N counts the BSP and every AP that reported.
 */
#include "guest.h"

extern uint8_t gdt[];
extern uint64_t pml4[];
extern struct {
	uint16_t limit;
	uint64_t base;
} PACKED gdt_desc;

static volatile uint32_t ap_done;
static volatile uint32_t ap_failed;
static volatile uint32_t ap_id[MAX_CPUS];
static volatile uint64_t job_n = 100000;

/* CPL 3 on an AP. */
void ap_user_main(uint64_t index)
{
	uint32_t id = cpu_apic_id();
	uint64_t n = job_n, sum = 0;
	bool ok;
	struct line l;

	for (uint64_t i = 1; i <= n; i++)
		sum += i * i;
	ok = sum == n * (n + 1) * (2 * n + 1) / 6;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=smp-cpu");
	line_kv_dec(&l, "apic_id", id);
	line_kv_str(&l, "result", ok ? "pass" : "fail");
	if (!ok)
		line_kv_str(&l, "reason", "job");
	line_emit(&l);

	ap_id[index] = id;
	if (!ok)
		__atomic_add_fetch(&ap_failed, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&ap_done, 1, __ATOMIC_RELEASE);
	syscall2(SYS_HALT, 0, 0);
}

static void send_ipi(uint32_t dest, uint32_t lo)
{
	if (g_x2apic) {
		wrmsr_user(0x830, (uint64_t)dest << 32 | lo);
		return;
	}
	lapic_write(LAPIC_ICR_HI, dest << 24);
	lapic_write(LAPIC_ICR_LO, lo);
	for (int i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LO) & (1u << 12)); i++)
		cpu_relax();
}

static bool trampoline_in_ram(void)
{
	for (uint32_t i = 0; i < g_boot.e820_count; i++) {
		const struct e820_entry *e = &g_boot.e820[i];
		if (e->type == E820_RAM && e->addr <= TRAMPOLINE_ADDR &&
		    e->addr + e->size >= TRAMPOLINE_ADDR + 0x1000)
			return true;
	}
	return false;
}

static void report(const char *reason, uint32_t cpus)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=smp result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_kv_dec(&l, "cpus", cpus);
	if (reason)
		line_kv_dec(&l, "expected", g_acpi.ncpus);
	line_emit(&l);
}

void run_smp(void)
{
	uint32_t bsp = cpu_apic_id();
	uint32_t naps = 0, ids[MAX_CPUS];
	uint64_t force;
	bool need_x2apic = g_x2apic || (opt_u64("x2apic", 10, &force) && force);
	uint8_t *tramp = (uint8_t *)TRAMPOLINE_ADDR;
	uint64_t deadline;
	uint32_t a, b, c, d;

	if (!g_acpi.madt) {
		report("madt-missing", 1);
		return;
	}
	for (uint32_t i = 0; i < g_acpi.ncpus; i++) {
		uint32_t id = g_acpi.cpu_apic_id[i];
		if (id >= 255)
			need_x2apic = true;
		if (id != bsp && naps < MAX_CPUS - 1)
			ids[naps++] = id;
	}
	if (naps == 0) {
		report(NULL, 1);
		return;
	}
	if (need_x2apic && !g_x2apic) {
		cpuid(1, 0, &a, &b, &c, &d);
		if (!(c & (1u << 21))) {
			report("no-x2apic", 1);
			return;
		}
		wrmsr_user(0x1b, rdmsr_user(0x1b) | 1u << 11 | 1u << 10);
		g_x2apic = true;
	}
	if (!trampoline_in_ram()) {
		report("trampoline-not-ram", 1);
		return;
	}
	lapic_enable();
	memcpy(tramp, ap_trampoline_start, ap_trampoline_end - ap_trampoline_start);
	uint8_t *gdtr = tramp + (ap_tramp_gdtr - ap_trampoline_start);
	uint16_t limit = gdt_desc.limit;
	uint32_t base = (uint32_t)(uint64_t)gdt, cr3 = (uint32_t)(uint64_t)pml4;
	memcpy(gdtr, &limit, 2);
	memcpy(gdtr + 2, &base, 4);
	memcpy(tramp + (ap_tramp_cr3 - ap_trampoline_start), &cr3, 4);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	for (uint32_t i = 0; i < naps; i++)
		send_ipi(ids[i], 0x4500); /* INIT, level assert */
	delay_us(10000);
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < naps; i++)
			send_ipi(ids[i], 0x4600 | (TRAMPOLINE_ADDR >> 12)); /* SIPI */
		delay_us(200);
	}

	deadline = rdtsc() + (10 + naps / 4) * tsc_hz();
	while (ap_done < naps && (int64_t)(rdtsc() - deadline) < 0)
		cpu_relax();

	uint32_t done = ap_done;
	if (done < naps) {
		report("timeout", 1 + done);
		return;
	}
	if (ap_failed) {
		report("job", 1 + done);
		return;
	}
	/* Every AP of the MADT, and only those, must have reported. */
	for (uint32_t i = 0; i < naps; i++) {
		bool seen = false;
		for (uint32_t k = 1; k <= done && !seen; k++)
			seen = ap_id[k] == ids[i];
		if (!seen) {
			report("apic-id", 1 + done);
			return;
		}
	}
	report(NULL, 1 + done);
}
