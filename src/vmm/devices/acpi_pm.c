// SPDX-License-Identifier: MIT
/*
 * ACPI fixed hardware as the FADT describes it: PM1a event block (PM1_STS,
 * PM1_EN), PM1a control block, the PM timer, and the reset register. The
 * system is always in ACPI mode (the FADT has no SMI_CMD), so SCI_EN reads
 * 1. Only the power button raises status bits; TMR_STS is never set.
 * The GPE0 block (GPE0_STS, GPE0_EN; 16 general-purpose events) shares the
 * SCI: devices raise a GPE (acpi_pm_gpe_raise) and the guest's _Exx
 * method for it runs (the VM generation ID uses one).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../common/log.h"
#include "../layout.h"
#include "legacy.h"

#define PM1_STS_TMR    0x0001
#define PM1_STS_BM     0x0010
#define PM1_STS_GBL    0x0020
#define PM1_STS_PWRBTN 0x0100
#define PM1_STS_SLPBTN 0x0200
#define PM1_STS_RTC    0x0400
#define PM1_STS_WAK    0x8000
#define PM1_STS_MASK                                                                               \
	(PM1_STS_TMR | PM1_STS_BM | PM1_STS_GBL | PM1_STS_PWRBTN | PM1_STS_SLPBTN | PM1_STS_RTC |  \
	 PM1_STS_WAK)
#define PM1_EN_MASK (PM1_STS_TMR | PM1_STS_GBL | PM1_STS_PWRBTN | PM1_STS_SLPBTN | PM1_STS_RTC)

#define PM1_CNT_SCI_EN	0x0001
#define PM1_CNT_BM_RLD	0x0002
#define PM1_CNT_SLP_TYP 0x1c00
#define PM1_CNT_SLP_EN	0x2000 /* write-only: the act of sleeping */
#define PM1_CNT_KEEP	(PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP)
#define SLP_TYP_SHIFT	10

#define PM_EVT_LEN    4
#define PM_CNT_LEN    2
#define PM_TMR_LEN    4
#define PM_GPE0_LEN   4 /* GPE0_STS then GPE0_EN, two bytes each */
#define PM_TMR_HZ     3579545ULL
#define RESET_SYS_RST 0x04 /* with bit 2 set, a write to 0xcf9 resets */

struct acpi_pm {
	pthread_mutex_t lock;
	struct bus *pio;
	struct irq_line sci;
	bool sci_level;
	struct power_sink power;
	bool reset_claimed; /* we own LAYOUT_RESET_PORT on the bus */

	uint16_t sts, en, cnt;
	uint16_t gpe_sts, gpe_en;
	uint8_t reset_reg;
	struct timespec tmr_base; /* the PM timer counts from here */
};

/* Copies bytes [offset, offset+len) of a little-endian register file of n bytes. */
static void le_read(uint64_t value, unsigned int n, uint64_t offset, uint8_t *data, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		data[i] = offset + i < n ? (uint8_t)(value >> (8 * (offset + i))) : 0xff;
}

/* value with bytes [offset, offset+len) replaced by data. */
static uint64_t le_merge(uint64_t value, unsigned int n, uint64_t offset, const uint8_t *data,
			 uint32_t len)
{
	for (uint32_t i = 0; i < len && offset + i < n; i++) {
		unsigned int shift = 8 * (unsigned int)(offset + i);

		value = (value & ~(0xffULL << shift)) | ((uint64_t)data[i] << shift);
	}
	return value;
}

/* The SCI is level-triggered: asserted while any enabled status bit is set. */
static void pm_update_sci(struct acpi_pm *pm)
{
	bool level = (pm->sts & pm->en) || (pm->gpe_sts & pm->gpe_en);

	if (level == pm->sci_level)
		return;
	pm->sci_level = level;
	irq_line_set(&pm->sci, level);
}

static void pm_evt_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	le_read(pm->sts | (uint32_t)pm->en << 16, PM_EVT_LEN, offset, data, len);
	pthread_mutex_unlock(&pm->lock);
}

static void pm_evt_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint32_t clear, en;

	pthread_mutex_lock(&pm->lock);
	/* Status bits are write-1-to-clear; bytes not written clear nothing. */
	clear = (uint32_t)le_merge(0, PM_EVT_LEN, offset, data, len);
	pm->sts &= ~(clear & PM1_STS_MASK);
	en = (uint32_t)le_merge(pm->sts | (uint32_t)pm->en << 16, PM_EVT_LEN, offset, data, len);
	pm->en = (en >> 16) & PM1_EN_MASK;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static void pm_cnt_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	le_read(pm->cnt | PM1_CNT_SCI_EN, PM_CNT_LEN, offset, data, len);
	pthread_mutex_unlock(&pm->lock);
}

static void pm_sleep(struct acpi_pm *pm, unsigned int typ)
{
	if (typ == LAYOUT_S5_SLP_TYP) {
		log_info("acpi: guest entered S5, powering off");
		power_sink_fire(&pm->power, POWER_OFF);
		return;
	}
	/* The DSDT only offers \_S5; anything else is a confused guest. */
	log_info("acpi: ignoring sleep request with SLP_TYP %u (only S5 = %u is supported)", typ,
		 LAYOUT_S5_SLP_TYP);
}

static void pm_cnt_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint16_t v;

	pthread_mutex_lock(&pm->lock);
	v = (uint16_t)le_merge(pm->cnt, PM_CNT_LEN, offset, data, len);
	pm->cnt = v & PM1_CNT_KEEP;
	pthread_mutex_unlock(&pm->lock);
	/* Outside the lock: the sink may stop the VM, vCPUs included. */
	if (v & PM1_CNT_SLP_EN)
		pm_sleep(pm, (v & PM1_CNT_SLP_TYP) >> SLP_TYP_SHIFT);
}

/* 3.579545 MHz since creation, wrapping at 32 bits as TMR_VAL_EXT allows. */
static uint32_t pm_timer_value(const struct acpi_pm *pm)
{
	struct timespec now;
	uint64_t sec, nsec;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sec = (uint64_t)(now.tv_sec - pm->tmr_base.tv_sec);
	if (now.tv_nsec >= pm->tmr_base.tv_nsec) {
		nsec = (uint64_t)(now.tv_nsec - pm->tmr_base.tv_nsec);
	} else {
		sec--;
		nsec = (uint64_t)(now.tv_nsec + 1000000000L - pm->tmr_base.tv_nsec);
	}
	/* Split so the product cannot overflow however long the VM runs. */
	return (uint32_t)(sec * PM_TMR_HZ + nsec * PM_TMR_HZ / 1000000000ULL);
}

static void pm_tmr_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;

	/* Nothing to lock: the base only moves on restore, with the vCPUs parked. */
	le_read(pm_timer_value(pm), PM_TMR_LEN, offset, data, len);
}

void acpi_pm_reset_write(struct acpi_pm *pm, uint8_t value)
{
	pthread_mutex_lock(&pm->lock);
	pm->reset_reg = value & ~RESET_SYS_RST;
	pthread_mutex_unlock(&pm->lock);
	if (value == LAYOUT_RESET_VALUE || (value & RESET_SYS_RST)) {
		log_info("acpi: guest wrote 0x%02x to the reset register", value);
		power_sink_fire(&pm->power, POWER_RESET);
	}
}

uint8_t acpi_pm_reset_read(struct acpi_pm *pm)
{
	uint8_t v;

	pthread_mutex_lock(&pm->lock);
	v = pm->reset_reg;
	pthread_mutex_unlock(&pm->lock);
	return v;
}

static void pm_reset_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	memset(data, 0, len);
	data[0] = acpi_pm_reset_read(opaque);
}

static void pm_reset_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	acpi_pm_reset_write(opaque, data[0]);
}

static void pm_gpe_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	le_read(pm->gpe_sts | (uint32_t)pm->gpe_en << 16, PM_GPE0_LEN, offset, data, len);
	pthread_mutex_unlock(&pm->lock);
}

/* As PM1: status bits write-1-to-clear, enables plain read/write. */
static void pm_gpe_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint32_t clear, en;

	pthread_mutex_lock(&pm->lock);
	clear = (uint32_t)le_merge(0, PM_GPE0_LEN, offset, data, len);
	pm->gpe_sts &= ~(uint16_t)clear;
	en = (uint32_t)le_merge(pm->gpe_sts | (uint32_t)pm->gpe_en << 16, PM_GPE0_LEN, offset, data,
				len);
	pm->gpe_en = (uint16_t)(en >> 16);
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static const struct bus_ops pm_evt_ops = {.read = pm_evt_read, .write = pm_evt_write};
static const struct bus_ops pm_cnt_ops = {.read = pm_cnt_read, .write = pm_cnt_write};
static const struct bus_ops pm_tmr_ops = {.read = pm_tmr_read};
static const struct bus_ops pm_reset_ops = {.read = pm_reset_read, .write = pm_reset_write};
static const struct bus_ops pm_gpe_ops = {.read = pm_gpe_read, .write = pm_gpe_write};

static const struct {
	uint16_t port;
	uint16_t len;
	const struct bus_ops *ops;
	const char *name;
} pm_blocks[] = {
	{LAYOUT_PM1A_EVT_PORT, PM_EVT_LEN, &pm_evt_ops, "pm1a-evt"},
	{LAYOUT_PM1A_CNT_PORT, PM_CNT_LEN, &pm_cnt_ops, "pm1a-cnt"},
	{LAYOUT_PM_TMR_PORT, PM_TMR_LEN, &pm_tmr_ops, "pm-tmr"},
	{LAYOUT_GPE0_PORT, PM_GPE0_LEN, &pm_gpe_ops, "gpe0"},
};

#define PM_NBLOCKS (sizeof(pm_blocks) / sizeof(pm_blocks[0]))

static void pm_unregister(struct acpi_pm *pm, size_t nblocks)
{
	for (size_t i = 0; i < nblocks; i++)
		bus_unregister(pm->pio, pm_blocks[i].port);
	if (pm->reset_claimed)
		bus_unregister(pm->pio, LAYOUT_RESET_PORT);
	pm->reset_claimed = false;
}

/*
 * 0xcf9 sits inside the PCI configuration ports 0xcf8-0xcff. If the PCI
 * host bridge already claimed them, it forwards byte accesses at 0xcf9
 * through acpi_pm_reset_write() instead.
 */
static int pm_claim_reset(struct acpi_pm *pm)
{
	int ret = bus_register(pm->pio, LAYOUT_RESET_PORT, 1, &pm_reset_ops, pm, "reset");

	if (ret == -EEXIST) {
		log_debug("acpi: port 0x%x already claimed; reset goes through its owner",
			  LAYOUT_RESET_PORT);
		return 0;
	}
	pm->reset_claimed = ret == 0;
	return ret;
}

static int pm_register(struct acpi_pm *pm)
{
	size_t i;
	int ret = 0;

	for (i = 0; i < PM_NBLOCKS && !ret; i++)
		ret = bus_register(pm->pio, pm_blocks[i].port, pm_blocks[i].len, pm_blocks[i].ops,
				   pm, pm_blocks[i].name);
	if (ret) {
		log_error("acpi: cannot claim port 0x%x: %s", pm_blocks[i - 1].port,
			  strerror(-ret));
		pm_unregister(pm, i - 1);
		return ret;
	}
	ret = pm_claim_reset(pm);
	if (ret) {
		log_error("acpi: cannot claim port 0x%x: %s", LAYOUT_RESET_PORT, strerror(-ret));
		pm_unregister(pm, PM_NBLOCKS);
	}
	return ret;
}

struct acpi_pm *acpi_pm_create(struct bus *pio, const struct irq_line *sci,
			       const struct power_sink *power)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));

	if (!pm)
		return NULL;
	pthread_mutex_init(&pm->lock, NULL);
	pm->pio = pio;
	if (sci)
		pm->sci = *sci;
	if (power)
		pm->power = *power;
	clock_gettime(CLOCK_MONOTONIC, &pm->tmr_base);
	if (pm_register(pm)) {
		pthread_mutex_destroy(&pm->lock);
		free(pm);
		return NULL;
	}
	return pm;
}

/* Status, enables and control clear; the PM timer keeps counting, as it does on hardware. */
void acpi_pm_reset(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->sts = 0;
	pm->en = 0;
	pm->cnt = 0;
	pm->reset_reg = 0;
	pm->gpe_sts = 0;
	pm->gpe_en = 0;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	if (!pm)
		return;
	pm_unregister(pm, PM_NBLOCKS);
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->sts |= PM1_STS_PWRBTN;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_gpe_raise(struct acpi_pm *pm, unsigned int gpe)
{
	if (gpe >= 8 * PM_GPE0_LEN / 2)
		return;
	pthread_mutex_lock(&pm->lock);
	pm->gpe_sts |= (uint16_t)(1u << gpe);
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

/* ---- snapshot ---- */

int acpi_pm_save(struct acpi_pm *pm, struct snap_writer *w, const char *name)
{
	pthread_mutex_lock(&pm->lock);
	snap_begin(w, name, ACPI_PM_STATE_VERSION);
	snap_put_u16(w, pm->sts);
	snap_put_u16(w, pm->en);
	snap_put_u16(w, pm->cnt);
	snap_put_u8(w, pm->reset_reg);
	snap_put_u32(w, pm_timer_value(pm));
	snap_put_u16(w, pm->gpe_sts); /* version 2 */
	snap_put_u16(w, pm->gpe_en);
	snap_end(w);
	pthread_mutex_unlock(&pm->lock);
	return w->failed ? -ENOMEM : 0;
}

/* Moves the timer's base so it reads value now and counts on from there. */
static void pm_timer_set(struct acpi_pm *pm, uint32_t value)
{
	uint64_t ns = (uint64_t)value * 1000000000ULL / PM_TMR_HZ;
	struct timespec now;
	int64_t base;

	clock_gettime(CLOCK_MONOTONIC, &now);
	base = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec - (int64_t)ns;
	/* A fresh host may not have been up for the timer's value: count from a negative base. */
	pm->tmr_base.tv_sec = base / 1000000000LL;
	pm->tmr_base.tv_nsec = base % 1000000000LL;
	if (pm->tmr_base.tv_nsec < 0) {
		pm->tmr_base.tv_sec--;
		pm->tmr_base.tv_nsec += 1000000000L;
	}
}

int acpi_pm_restore(struct acpi_pm *pm, const struct snap_file *f, const char *name,
		    struct error *err)
{
	struct snap_section s;
	uint16_t sts, en, cnt;
	uint16_t gpe_sts = 0, gpe_en = 0;
	uint8_t reset_reg;
	uint32_t tmr;
	int ret = state_open(f, name, ACPI_PM_STATE_VERSION, &s, err);

	if (ret)
		return ret;
	sts = snap_get_u16(&s);
	en = snap_get_u16(&s);
	cnt = snap_get_u16(&s);
	reset_reg = snap_get_u8(&s);
	tmr = snap_get_u32(&s);
	if (s.version >= 2) {
		gpe_sts = snap_get_u16(&s);
		gpe_en = snap_get_u16(&s);
	}
	if (sts & ~PM1_STS_MASK)
		return state_bad(err, name, "PM1_STS", sts);
	if (en & ~PM1_EN_MASK)
		return state_bad(err, name, "PM1_EN", en);
	if (cnt & ~PM1_CNT_KEEP)
		return state_bad(err, name, "PM1_CNT", cnt);
	if (reset_reg & RESET_SYS_RST)
		return state_bad(err, name, "reset register", reset_reg);
	ret = snap_section_done(&s, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&pm->lock);
	pm->sts = sts;
	pm->en = en;
	pm->cnt = cnt;
	pm->reset_reg = reset_reg;
	pm->gpe_sts = gpe_sts;
	pm->gpe_en = gpe_en;
	pm_timer_set(pm, tmr);
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}
