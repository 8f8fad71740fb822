/* SPDX-License-Identifier: MIT */
/*
 * test=poweroff: report, then ACPI power-off (the common exit path).
 * test=reboot:   report, then reset: FADT RESET_REG when RESET_REG_SUP,
 *                else the i8042 (0xFE to port 0x64), else a triple fault.
 *                reboot_method=acpi|kbd|triple forces one.
 */
#include "guest.h"

void run_poweroff(void)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=poweroff result=pass");
	line_kv_str(&l, "method",
		    g_acpi.hw_reduced && g_acpi.sleep_ctrl_valid ? "sleep-control" : "pm1-control");
	line_emit(&l);
	/* main() powers off after every scenario. */
}

static const char *method_name(uint64_t m)
{
	return m == RESET_ACPI ? "acpi" : m == RESET_KBD ? "kbd" : "triple";
}

void run_reboot(void)
{
	const char *v;
	size_t n;
	uint64_t first, forced = 0;
	struct line l;

	if (opt_get("reboot_method", &v, &n)) {
		if (n == 4 && memcmp(v, "acpi", 4) == 0)
			forced = RESET_ACPI;
		else if (n == 3 && memcmp(v, "kbd", 3) == 0)
			forced = RESET_KBD;
		else if (n == 6 && memcmp(v, "triple", 6) == 0)
			forced = RESET_TRIPLE;
		else
			fail_and_poweroff("reboot", "bad-reboot-method");
		if (forced == RESET_ACPI && !g_acpi.reset_valid)
			fail_and_poweroff("reboot", "no-reset-reg");
	}
	first = forced ? forced : g_acpi.reset_valid ? RESET_ACPI : RESET_KBD;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=reboot result=pass");
	line_kv_str(&l, "method", method_name(first));
	line_emit(&l);

	for (uint64_t m = first; m <= RESET_TRIPLE; m++) {
		syscall2(SYS_RESET, m, 0);
		delay_us(200000); /* the reset may take effect asynchronously */
		if (forced)
			break;
	}
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=reboot result=fail reason=reset-ignored");
	line_kv_str(&l, "method", method_name(forced ? forced : RESET_TRIPLE));
	line_emit(&l);
}
