/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_LEGACY_H
#define BUNSHIN_VMM_LEGACY_H

#include <stdint.h>

#include "bus.h"
#include "irq.h"
#include "power.h"
#include "state.h"

/*
 * The small PC devices a kernel expects, each in its own file. The
 * *_reset() functions bring a device back to its power-on state when the
 * guest reboots and the machine is rebuilt around the same devices:
 * i8042.c (enough for the 0xfe reset pulse and a keyboard probe),
 * rtc.c (MC146818 CMOS clock with the host's date and time),
 * acpi_pm.c (PM1a event/control blocks, PM timer, 0xcf9 reset register).
 */
struct i8042;
struct rtc;
struct acpi_pm;

struct i8042 *i8042_create(struct bus *pio, const struct irq_line *irq,
			   const struct power_sink *power);
void i8042_destroy(struct i8042 *k);
void i8042_reset(struct i8042 *k);
/* Types Ctrl-Alt-Del: -EAGAIN while the guest has the keyboard disabled, -EBUSY if it lags behind.
 */
int i8042_ctrl_alt_del(struct i8042 *k);

struct rtc *rtc_create(struct bus *pio, const struct irq_line *irq);
void rtc_destroy(struct rtc *r);
/* The RESET pin: interrupt enables and flags clear; time and CMOS RAM stay. */
void rtc_reset(struct rtc *r);

struct acpi_pm *acpi_pm_create(struct bus *pio, const struct irq_line *sci,
			       const struct power_sink *power);
void acpi_pm_destroy(struct acpi_pm *pm);
void acpi_pm_reset(struct acpi_pm *pm);
/* Presses the ACPI power button (PWRBTN_STS, SCI if enabled). */
void acpi_pm_power_button(struct acpi_pm *pm);
/* Sets GPE0_STS bit gpe (0-15): an SCI if the guest enabled it, then its \_GPE._Exx. */
void acpi_pm_gpe_raise(struct acpi_pm *pm, unsigned int gpe);

/*
 * The reset register (LAYOUT_RESET_PORT, 0xcf9) lies inside the PCI
 * configuration ports 0xcf8-0xcff. acpi_pm_create() claims it only if it
 * is still free; a PCI host bridge that owns 0xcf8-0xcff (create it first)
 * forwards byte accesses at 0xcf9 here.
 */
uint8_t acpi_pm_reset_read(struct acpi_pm *pm);
void acpi_pm_reset_write(struct acpi_pm *pm, uint8_t value);

/*
 * Snapshot: each device writes one section name and loads it back into a
 * device created with the same configuration; a refused section leaves
 * the device untouched. Restore drives the interrupt line from the loaded
 * state, so do it after the interrupt controller's own state.
 *
 * Time after a restore: the RTC keeps its offset from the host's UTC
 * clock, so the guest's wall clock shows real time (plus whatever offset
 * the guest itself set), as a battery-backed clock would after the
 * machine was off; the PM timer continues from its saved value, so it
 * never runs backwards and nothing jumps by the time spent saved.
 */
#define I8042_STATE_VERSION   1
#define RTC_STATE_VERSION     1
#define ACPI_PM_STATE_VERSION 2 /* 2: GPE0 status and enables */
int i8042_save(struct i8042 *k, struct snap_writer *w, const char *name);
int i8042_restore(struct i8042 *k, const struct snap_file *f, const char *name, struct error *err);
int rtc_save(struct rtc *r, struct snap_writer *w, const char *name);
int rtc_restore(struct rtc *r, const struct snap_file *f, const char *name, struct error *err);
int acpi_pm_save(struct acpi_pm *pm, struct snap_writer *w, const char *name);
int acpi_pm_restore(struct acpi_pm *pm, const struct snap_file *f, const char *name,
		    struct error *err);

#endif
