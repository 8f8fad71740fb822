/* SPDX-License-Identifier: MIT */
/* CPL-3 main: read the command line, run the scenario, power off. */
#include "guest.h"

void user_main(uint64_t arg);

static void run_fault(void)
{
	/* Self-test of the failure path: an invalid opcode at CPL 3. */
	__asm__ volatile("ud2");
}

/* clang-format off */
static const struct {
	const char *name;
	void (*run)(void);
} scenarios[] = {
	{"boot", run_boot},
	{"smp", run_smp},
	{"timer", run_timer},
	{"clock-watch", run_clock_watch},
	{"serial-echo", run_serial_echo},
	{"poweroff", run_poweroff},
	{"reboot", run_reboot},
	{"fault", run_fault},
	{"pci", run_pci},
	{"virtio-rng", run_virtio_rng},
	{"virtio-blk", run_virtio_blk},
	{"virtio-net", run_virtio_net},
	{"net-bench", run_virtio_net_bench},
	{"virtio-console", run_virtio_console},
	{"virtio-vsock", run_virtio_vsock},
	{"virtio-balloon", run_virtio_balloon},
	{"virtio-abuse", run_virtio_abuse},
	{"blk-bench", run_blk_bench},
	{"vmgenid", run_vmgenid},
	{"identity", run_identity},
	{"mem-writer", run_mem_writer},
	{"blk-verify", run_blk_verify},
	{"dhcp", run_dhcp},
	{"netprobe", run_netprobe},
	{"virtio-reset", run_virtio_reset},
};
/* clang-format on */

NORETURN void power_off(void)
{
	syscall2(SYS_POWEROFF, 0, 0);
	halt_forever(); /* not reached */
}

NORETURN void fail_and_poweroff(const char *name, const char *reason)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=");
	line_str(&l, name);
	line_str(&l, " result=fail");
	line_kv_str(&l, "reason", reason);
	line_emit(&l);
	power_off();
}

void user_main(uint64_t arg)
{
	const char *name;
	size_t len;
	uint64_t apic_base;

	acpi_init();
	apic_base = rdmsr_user(0x1b);
	g_lapic_base = apic_base & 0xfffff000;
	g_x2apic = (apic_base >> 10) & 1;

	if (!opt_get("test", &name, &len) || len == 0) {
		g_scenario = "none";
		g_scenario_len = 4;
		fail_and_poweroff("none", "unknown-scenario");
	}
	g_scenario = name;
	g_scenario_len = len;
	for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++) {
		if (strlen(scenarios[i].name) == len && memcmp(scenarios[i].name, name, len) == 0) {
			g_scenario = scenarios[i].name;
			scenarios[i].run();
			power_off();
		}
	}

	struct line l;
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=");
	line_strn(&l, name, len < 64 ? len : 64);
	line_str(&l, " result=fail reason=unknown-scenario");
	line_emit(&l);
	power_off();
}
