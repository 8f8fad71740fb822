// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../src/vmm/devices/legacy.h"
#include "../../src/vmm/layout.h"

/* Interrupt lines and power events, as the VM would see them. */
struct fake_irq {
	int level[32];
	int raises[32];
};

static void fake_set_level(void *ctx, unsigned int gsi, int level)
{
	struct fake_irq *f = ctx;

	/* The RTC calls this from its own thread. */
	if (level && !__atomic_load_n(&f->level[gsi], __ATOMIC_SEQ_CST))
		__atomic_fetch_add(&f->raises[gsi], 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->level[gsi], level, __ATOMIC_SEQ_CST);
}

struct fake_power {
	int offs, resets;
};

static void fake_power_event(void *ctx, enum power_event ev)
{
	struct fake_power *p = ctx;

	if (ev == POWER_OFF)
		p->offs++;
	else
		p->resets++;
}

static struct bus bus;
static struct fake_irq irqs;
static struct fake_power power;
static const struct power_sink sink = {.event = fake_power_event, .ctx = &power};

static struct irq_line line(unsigned int gsi)
{
	return (struct irq_line){.set_level = fake_set_level, .ctx = &irqs, .gsi = gsi};
}

static int level(unsigned int gsi)
{
	return __atomic_load_n(&irqs.level[gsi], __ATOMIC_SEQ_CST);
}

static void outb(uint16_t port, uint8_t v)
{
	cr_assert(bus_write(&bus, port, &v, 1), "port 0x%x", port);
}

static uint8_t inb(uint16_t port)
{
	uint8_t v;

	cr_assert(bus_read(&bus, port, &v, 1), "port 0x%x", port);
	return v;
}

static void outw(uint16_t port, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	cr_assert(bus_write(&bus, port, b, 2));
}

static uint16_t inw(uint16_t port)
{
	uint8_t b[2];

	cr_assert(bus_read(&bus, port, b, 2));
	return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t inl(uint16_t port)
{
	uint8_t b[4];

	cr_assert(bus_read(&bus, port, b, 4));
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void setup(void)
{
	memset(&irqs, 0, sizeof(irqs));
	memset(&power, 0, sizeof(power));
	bus_init(&bus, "pio");
}

static void teardown(void)
{
	bus_destroy(&bus);
}

/* ---- i8042 ---- */

static struct i8042 *kbc;

static void kbc_setup(void)
{
	struct irq_line l = line(LAYOUT_I8042_IRQ);

	setup();
	kbc = i8042_create(&bus, &l, &sink);
	cr_assert_not_null(kbc);
}

static void kbc_teardown(void)
{
	i8042_destroy(kbc);
	cr_assert_eq(bus.nranges, 0);
	teardown();
}

TestSuite(i8042, .init = kbc_setup, .fini = kbc_teardown);

#define KBD_DATA   LAYOUT_I8042_DATA_PORT
#define KBD_STATUS LAYOUT_I8042_CMD_PORT

Test(i8042, reset_pulse)
{
	cr_assert_eq(inb(KBD_STATUS) & 0x02, 0, "input buffer never busy");
	outb(KBD_STATUS, 0xfe);
	cr_assert_eq(power.resets, 1);
	cr_assert_eq(power.offs, 0);
	outb(KBD_STATUS, 0xff); /* pulses nothing */
	cr_assert_eq(power.resets, 1);
}

Test(i8042, output_port_reset_bit)
{
	outb(KBD_STATUS, 0xd1);
	outb(KBD_DATA, 0x03); /* reset line high, A20 on: nothing happens */
	cr_assert_eq(power.resets, 0);
	outb(KBD_STATUS, 0xd0);
	cr_assert_eq(inb(KBD_DATA), 0x03);
	outb(KBD_STATUS, 0xd1);
	outb(KBD_DATA, 0x02); /* bit 0 low: reset */
	cr_assert_eq(power.resets, 1);
}

Test(i8042, self_tests)
{
	cr_assert_eq(inb(KBD_STATUS) & 0x01, 0);
	outb(KBD_STATUS, 0xaa);
	cr_assert_eq(inb(KBD_STATUS) & 0x05, 0x05, "OBF and system flag");
	cr_assert_eq(inb(KBD_DATA), 0x55);
	cr_assert_eq(inb(KBD_STATUS) & 0x01, 0);
	outb(KBD_STATUS, 0xab);
	cr_assert_eq(inb(KBD_DATA), 0x00);
}

Test(i8042, command_byte)
{
	outb(KBD_STATUS, 0x20);
	cr_assert_eq(inb(KBD_DATA) & 0x01, 0x01, "keyboard interrupt on by default");
	outb(KBD_STATUS, 0x60);
	outb(KBD_DATA, 0x30);
	outb(KBD_STATUS, 0x20);
	cr_assert_eq(inb(KBD_DATA), 0x30);
	outb(KBD_STATUS, 0xae);
	outb(KBD_STATUS, 0xa8);
	outb(KBD_STATUS, 0x20);
	cr_assert_eq(inb(KBD_DATA), 0x00, "0xae and 0xa8 clear the disable bits");
	outb(KBD_STATUS, 0xad);
	outb(KBD_STATUS, 0x20);
	cr_assert_eq(inb(KBD_DATA), 0x10);
}

static void expect_keys(const uint8_t *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(level(1), 1, "IRQ 1 while bytes wait (byte %zu)", i);
		cr_assert_eq(inb(KBD_STATUS) & 0x01, 0x01, "output buffer full");
		cr_assert_eq(inb(KBD_DATA), want[i], "byte %zu", i);
	}
	cr_assert_eq(level(1), 0);
	cr_assert_eq(inb(KBD_STATUS) & 0x01, 0);
}

Test(i8042, ctrl_alt_del)
{
	static const uint8_t set1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
	static const uint8_t set2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
				       0x71, 0xf0, 0x11, 0xf0, 0x14};

	cr_assert_eq(i8042_ctrl_alt_del(kbc), 0);
	expect_keys(set1, sizeof(set1));

	outb(KBD_STATUS, 0x60);
	outb(KBD_DATA, 0x01); /* interrupts on, translation off */
	cr_assert_eq(i8042_ctrl_alt_del(kbc), 0);
	expect_keys(set2, sizeof(set2));

	cr_assert_eq(i8042_ctrl_alt_del(kbc), 0);
	cr_assert_eq(i8042_ctrl_alt_del(kbc), -EBUSY, "a second one does not fit behind it");
	expect_keys(set2, sizeof(set2));

	outb(KBD_STATUS, 0xad); /* keyboard disabled */
	cr_assert_eq(i8042_ctrl_alt_del(kbc), -EAGAIN);
	cr_assert_eq(level(1), 0);
}

Test(i8042, guest_reboot_restores_firmware_state)
{
	outb(KBD_STATUS, 0x60);
	outb(KBD_DATA, 0x30);
	outb(KBD_STATUS, 0xd1); /* write output port: waits for its data byte */
	i8042_reset(kbc);
	outb(KBD_STATUS, 0x20);
	cr_assert_eq(inb(KBD_DATA), 0x65, "KBDINT, SYS, AUXDIS, XLATE again");
	cr_assert_eq(power.resets, 0, "a pending command does not survive to reset the VM");
}

Test(i8042, keyboard_reset_and_irq1)
{
	outb(KBD_DATA, 0xff);
	cr_assert_eq(level(1), 1, "IRQ1 when output is full");
	cr_assert_eq(inb(KBD_DATA), 0xfa);
	cr_assert_eq(level(1), 1);
	cr_assert_eq(irqs.raises[1], 2, "one edge per byte");
	cr_assert_eq(inb(KBD_DATA), 0xaa);
	cr_assert_eq(level(1), 0);
	cr_assert_eq(inb(KBD_STATUS) & 0x01, 0);

	/* With the interrupt disabled in the command byte, no IRQ. */
	outb(KBD_STATUS, 0x60);
	outb(KBD_DATA, 0x44);
	outb(KBD_DATA, 0xf2);
	cr_assert_eq(level(1), 0);
	cr_assert_eq(inb(KBD_DATA), 0xfa);
	cr_assert_eq(inb(KBD_DATA), 0xab);
	cr_assert_eq(inb(KBD_DATA), 0x41, "translated MF2 id");
}

Test(i8042, keyboard_commands_with_parameters)
{
	outb(KBD_DATA, 0xed); /* set LEDs */
	cr_assert_eq(inb(KBD_DATA), 0xfa);
	outb(KBD_DATA, 0x07);
	cr_assert_eq(inb(KBD_DATA), 0xfa);
	outb(KBD_DATA, 0xee);
	cr_assert_eq(inb(KBD_DATA), 0xee);
	outb(KBD_DATA, 0x42); /* not a command */
	cr_assert_eq(inb(KBD_DATA), 0xfe);
}

/* ---- RTC ---- */

static struct rtc *rtc;

static void rtc_setup(void)
{
	struct irq_line l = line(LAYOUT_RTC_IRQ);

	setup();
	rtc = rtc_create(&bus, &l);
	cr_assert_not_null(rtc);
}

static void rtc_teardown(void)
{
	rtc_destroy(rtc);
	teardown();
}

TestSuite(rtc, .init = rtc_setup, .fini = rtc_teardown);

static uint8_t cmos_read(uint8_t idx)
{
	outb(LAYOUT_RTC_PORT, idx);
	return inb(LAYOUT_RTC_PORT + 1);
}

static void cmos_write(uint8_t idx, uint8_t v)
{
	outb(LAYOUT_RTC_PORT, idx);
	outb(LAYOUT_RTC_PORT + 1, v);
}

static int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0x0f);
}

struct rtc_time {
	int sec, min, hour, wday, mday, mon, year;
};

/* Reads the clock the way Linux does: retry until two reads agree. */
static struct rtc_time rtc_read(bool binary)
{
	struct rtc_time t;
	int (*dec)(uint8_t) = bcd;
	uint8_t sec;

	do {
		while (cmos_read(0x0a) & 0x80)
			;
		sec = cmos_read(0x00);
		t.min = cmos_read(0x02);
		t.hour = cmos_read(0x04);
		t.wday = cmos_read(0x06);
		t.mday = cmos_read(0x07);
		t.mon = cmos_read(0x08);
		t.year = cmos_read(0x09) + 0x100 * cmos_read(0x32);
	} while (sec != cmos_read(0x00));
	if (binary) {
		t.sec = sec;
		t.year = (t.year & 0xff) + 100 * (t.year >> 8);
		return t;
	}
	t.sec = dec(sec);
	t.min = dec((uint8_t)t.min);
	t.hour = dec((uint8_t)t.hour);
	t.wday = dec((uint8_t)t.wday);
	t.mday = dec((uint8_t)t.mday);
	t.mon = dec((uint8_t)t.mon);
	t.year = dec((uint8_t)t.year) + 100 * dec((uint8_t)(t.year >> 8));
	return t;
}

static void assert_near_host(struct rtc_time t)
{
	struct timespec ts;
	struct tm tm;
	long diff;

	/*
	 * Not time(): glibc answers it from the coarse clock, which can still
	 * be in the second before the one the RTC (on CLOCK_REALTIME) already
	 * read, and the test saw the RTC 1 s ahead of the host.
	 */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	cr_assert_eq(t.year, tm.tm_year + 1900);
	cr_assert_eq(t.mon, tm.tm_mon + 1);
	cr_assert_eq(t.mday, tm.tm_mday);
	cr_assert_eq(t.wday, tm.tm_wday + 1);
	diff = (long)(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) -
	       (t.hour * 3600 + t.min * 60 + t.sec);
	cr_assert(diff >= 0 && diff <= 2, "rtc is %ld s off the host", diff);
}

Test(rtc, bcd_date_matches_host)
{
	struct rtc_time t;

	cr_assert_eq(cmos_read(0x0b) & 0x06, 0x02, "BCD, 24-hour by default");
	cr_assert_eq(cmos_read(0x0d), 0x80, "valid RAM and time");
	t = rtc_read(false);
	cr_assert_geq(t.year, 2024);
	cr_assert(t.mon >= 1 && t.mon <= 12);
	assert_near_host(t);
}

Test(rtc, binary_mode)
{
	cmos_write(0x0b, 0x06);
	assert_near_host(rtc_read(true));
}

Test(rtc, twelve_hour_mode)
{
	time_t now;
	struct tm tm;
	uint8_t h;

	cmos_write(0x0b, 0x04); /* binary, 12-hour */
	do {
		now = time(NULL);
		h = cmos_read(0x04);
	} while (now != time(NULL));
	gmtime_r(&now, &tm);
	cr_assert_eq(!!(h & 0x80), tm.tm_hour >= 12, "PM bit");
	cr_assert_eq(h & 0x7f, tm.tm_hour % 12 ? tm.tm_hour % 12 : 12);
}

Test(rtc, update_in_progress_never_sticks)
{
	int set = 0, reads = 0;
	struct timespec t0, t;

	/* Over 1.1 s the bit shows up at most around a second boundary. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		set += !!(cmos_read(0x0a) & 0x80);
		reads++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 1100000000L);
	cr_assert_lt(set * 100, reads, "UIP set in %d of %d reads", set, reads);
	cr_assert_eq(cmos_read(0x0a) & 0x7f, 0x26);
}

Test(rtc, guest_sets_the_clock)
{
	struct rtc_time t;

	/* As Linux's mc146818_set_time: SET, write, release. */
	cmos_write(0x0b, 0x82);
	cmos_write(0x00, 0x30);
	cmos_write(0x02, 0x59);
	cmos_write(0x04, 0x23);
	cmos_write(0x08, 0x02); /* February 31st for a moment... */
	cmos_write(0x07, 0x28); /* ...then the 28th */
	cmos_write(0x09, 0x01);
	cmos_write(0x32, 0x20);
	t = rtc_read(false);
	cr_assert_eq(t.sec, 30, "the clock stands still while SET");
	cmos_write(0x0b, 0x02);

	t = rtc_read(false);
	cr_assert_eq(t.year, 2001);
	cr_assert_eq(t.mon, 2);
	cr_assert_eq(t.mday, 28);
	cr_assert_eq(t.wday, 4, "28 Feb 2001 was a Wednesday");
	cr_assert_eq(t.hour, 23);
	cr_assert_eq(t.min, 59);
	cr_assert(t.sec >= 30 && t.sec <= 32);

	/* A single write moves the running clock too. */
	cmos_write(0x09, 0x99);
	cr_assert_eq(rtc_read(false).year, 2099);
}

Test(rtc, cmos_ram_and_nmi_bit)
{
	cmos_write(0x40, 0x5a);
	cr_assert_eq(cmos_read(0x40), 0x5a);
	cr_assert_eq(cmos_read(0x80 | 0x40), 0x5a, "bit 7 of the index is the NMI mask");
	cmos_write(0x7f, 0x11);
	cr_assert_eq(cmos_read(0xff), 0x11);
	cmos_write(0x0d, 0x00);
	cr_assert_eq(cmos_read(0x0d), 0x80, "register D is read-only");
	cr_assert_eq(inb(LAYOUT_RTC_PORT), 0xff, "the index port is write-only");
}

Test(rtc, update_interrupt)
{
	struct timespec ts = {0, 10000000};

	cr_assert_eq(cmos_read(0x0c) & 0x80, 0);
	cmos_write(0x0b, 0x12); /* UIE */
	for (int i = 0; i < 150 && !level(8); i++)
		nanosleep(&ts, NULL);
	cr_assert_eq(level(8), 1, "IRQ 8 within 1.5 s");
	cr_assert_eq(cmos_read(0x0c) & 0x90, 0x90, "IRQF and UF");
	cr_assert_eq(level(8), 0, "reading C acknowledges");
	cmos_write(0x0b, 0x02);
}

Test(rtc, periodic_interrupt_enable_is_safe)
{
	struct timespec ts = {0, 20000000};

	cmos_write(0x0a, 0x2f); /* 2 Hz */
	cmos_write(0x0b, 0x42); /* PIE */
	for (int i = 0; i < 75 && !level(8); i++)
		nanosleep(&ts, NULL);
	cr_assert_eq(level(8), 1);
	cr_assert_eq(cmos_read(0x0c) & 0xc0, 0xc0, "IRQF and PF");
	cmos_write(0x0a, 0x23); /* fastest rate: coalesced, but fine */
	nanosleep(&ts, NULL);
	cmos_read(0x0c);
	cmos_write(0x0b, 0x02);
}

Test(rtc, guest_reboot_clears_interrupts_keeps_ram)
{
	cmos_write(0x40, 0x5a);
	cmos_write(0x0b, 0x52); /* PIE, UIE, 24h */
	rtc_reset(rtc);
	cr_assert_eq(cmos_read(0x0b), 0x02, "interrupt enables clear, 24-hour mode stays");
	/* PF and UF keep being set with interrupts off (rate and update cycle run on); no IRQF. */
	cr_assert_eq(cmos_read(0x0c) & 0x80, 0x00, "no interrupt flag");
	cr_assert_eq(cmos_read(0x40), 0x5a, "CMOS RAM survives");
	cr_assert_eq(level(8), 0);
}

/* ---- ACPI PM ---- */

static struct acpi_pm *pm;

static void pm_setup(void)
{
	struct irq_line l = line(LAYOUT_SCI_IRQ);

	setup();
	pm = acpi_pm_create(&bus, &l, &sink);
	cr_assert_not_null(pm);
}

static void pm_teardown(void)
{
	acpi_pm_destroy(pm);
	cr_assert_eq(bus.nranges, 0);
	teardown();
}

TestSuite(acpi_pm, .init = pm_setup, .fini = pm_teardown);

#define PM1_STS LAYOUT_PM1A_EVT_PORT
#define PM1_EN	(LAYOUT_PM1A_EVT_PORT + 2)
#define PM1_CNT LAYOUT_PM1A_CNT_PORT

Test(acpi_pm, s5_powers_off)
{
	cr_assert_eq(inw(PM1_CNT) & 1, 1, "SCI_EN: always in ACPI mode");
	outw(PM1_CNT, (uint16_t)(LAYOUT_S5_SLP_TYP << 10)); /* type without SLP_EN */
	cr_assert_eq(power.offs, 0);
	cr_assert_eq(inw(PM1_CNT), (LAYOUT_S5_SLP_TYP << 10) | 1);
	outw(PM1_CNT, (uint16_t)(LAYOUT_S5_SLP_TYP << 10 | 1 << 13));
	cr_assert_eq(power.offs, 1);
	cr_assert_eq(power.resets, 0);
	cr_assert_eq(inw(PM1_CNT) & (1 << 13), 0, "SLP_EN is write-only");
}

Test(acpi_pm, other_sleep_types_ignored)
{
	for (uint16_t typ = 0; typ < 8; typ++) {
		if (typ == LAYOUT_S5_SLP_TYP)
			continue;
		outw(PM1_CNT, (uint16_t)(typ << 10 | 1 << 13));
	}
	cr_assert_eq(power.offs + power.resets, 0);
	/* Byte writes: the high byte alone carries SLP_TYP and SLP_EN. */
	outb(PM1_CNT + 1, (uint8_t)((LAYOUT_S5_SLP_TYP << 2) | 0x20));
	cr_assert_eq(power.offs, 1);
}

Test(acpi_pm, reset_register)
{
	outb(LAYOUT_RESET_PORT, 0x02);
	cr_assert_eq(power.resets, 0);
	cr_assert_eq(inb(LAYOUT_RESET_PORT), 0x02);
	outb(LAYOUT_RESET_PORT, LAYOUT_RESET_VALUE);
	cr_assert_eq(power.resets, 1);
	outb(LAYOUT_RESET_PORT, 0x04);
	cr_assert_eq(power.resets, 2);
	cr_assert_eq(power.offs, 0);
}

Test(acpi_pm, pm_timer_advances)
{
	struct timespec ts = {0, 20000000};
	uint32_t a, b, c;

	a = inl(LAYOUT_PM_TMR_PORT);
	nanosleep(&ts, NULL);
	b = inl(LAYOUT_PM_TMR_PORT);
	/* 20 ms at 3.579545 MHz is 71591 ticks; allow for a slow scheduler. */
	cr_assert_geq(b - a, 71000u, "advanced %u", b - a);
	cr_assert_lt(b - a, 71591u * 50, "advanced %u", b - a);
	c = inl(LAYOUT_PM_TMR_PORT);
	cr_assert_geq(c - b, 0u);
	cr_assert_lt(c - b, 3579545u);
	/* Writes are ignored, byte reads work. */
	cr_assert(bus_write(&bus, LAYOUT_PM_TMR_PORT, (uint8_t[4]){0}, 4));
	cr_assert_geq(inl(LAYOUT_PM_TMR_PORT) - c, 0u);
	(void)inb(LAYOUT_PM_TMR_PORT + 3);
}

Test(acpi_pm, power_button_sci_only_when_enabled)
{
	acpi_pm_power_button(pm);
	cr_assert_eq(inw(PM1_STS) & 0x0100, 0x0100, "PWRBTN_STS");
	cr_assert_eq(level(9), 0, "not enabled: no SCI");

	outw(PM1_EN, 0x0100);
	cr_assert_eq(inw(PM1_EN), 0x0100);
	cr_assert_eq(level(9), 1, "SCI = STS & EN");

	outw(PM1_STS, 0x0000);
	cr_assert_eq(level(9), 1, "writing 0 clears nothing");
	outw(PM1_STS, 0x0100);
	cr_assert_eq(inw(PM1_STS) & 0x0100, 0, "write 1 to clear");
	cr_assert_eq(level(9), 0);

	acpi_pm_power_button(pm);
	cr_assert_eq(level(9), 1);
	cr_assert_eq(irqs.raises[9], 2);
	outw(PM1_EN, 0);
	cr_assert_eq(level(9), 0, "disabling drops the SCI");
}

Test(acpi_pm, guest_reboot_clears_enables_and_status)
{
	outw(PM1_EN, 0x0100);
	acpi_pm_power_button(pm);
	cr_assert_eq(level(9), 1);
	acpi_pm_reset(pm);
	cr_assert_eq(inw(PM1_EN), 0);
	cr_assert_eq(inw(PM1_STS) & 0x0100, 0);
	acpi_pm_power_button(pm);
	cr_assert_eq(level(9), 0, "no SCI until the new OS enables it");
}

Test(acpi_pm, evt_block_dword_access)
{
	uint8_t w[4] = {0xff, 0xff, 0x00, 0x01}; /* clear all status, enable PWRBTN */

	acpi_pm_power_button(pm);
	cr_assert(bus_write(&bus, PM1_STS, w, 4));
	cr_assert_eq(inl(PM1_STS), 0x01000000u);
	cr_assert_eq(level(9), 0);
	/* A write to PM1_EN alone must not clear status. */
	acpi_pm_power_button(pm);
	outw(PM1_EN, 0x0100);
	cr_assert_eq(inl(PM1_STS), 0x01000100u);
}

TestSuite(acpi_pm_pci, .init = setup, .fini = teardown);

Test(acpi_pm_pci, reset_port_shared_with_pci)
{
	static const struct bus_ops nop = {0};
	struct irq_line l = line(LAYOUT_SCI_IRQ);
	struct acpi_pm *p;

	/* A PCI host bridge owning 0xcf8-0xcff does not stop the PM device. */
	cr_assert_eq(bus_register(&bus, 0xcf8, 8, &nop, NULL, "pci"), 0);
	p = acpi_pm_create(&bus, &l, &sink);
	cr_assert_not_null(p);
	acpi_pm_reset_write(p, LAYOUT_RESET_VALUE);
	cr_assert_eq(power.resets, 1);
	acpi_pm_destroy(p);
	cr_assert_eq(bus.nranges, 1, "the bridge's range is left alone");
}
