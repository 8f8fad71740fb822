// SPDX-License-Identifier: MIT
/*
 * MC146818 RTC/CMOS. The time registers are computed from the host's UTC
 * clock at read time plus a whole-second offset the guest sets by writing
 * them, so there is nothing to tick. A small thread only runs while the
 * guest has update, alarm or periodic interrupts enabled.
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

#define RTC_SECONDS	 0x00
#define RTC_SECONDS_ALRM 0x01
#define RTC_MINUTES	 0x02
#define RTC_MINUTES_ALRM 0x03
#define RTC_HOURS	 0x04
#define RTC_HOURS_ALRM	 0x05
#define RTC_DAY_OF_WEEK	 0x06
#define RTC_DAY		 0x07
#define RTC_MONTH	 0x08
#define RTC_YEAR	 0x09
#define RTC_REG_A	 0x0a
#define RTC_REG_B	 0x0b
#define RTC_REG_C	 0x0c
#define RTC_REG_D	 0x0d
#define RTC_CENTURY	 0x32
#define RTC_CMOS_SIZE	 128

#define REG_A_UIP  0x80
#define REG_A_RATE 0x0f

#define REG_B_SET    0x80
#define REG_B_PIE    0x40
#define REG_B_AIE    0x20
#define REG_B_UIE    0x10
#define REG_B_SQWE   0x08
#define REG_B_BINARY 0x04
#define REG_B_24H    0x02
#define REG_B_IRQS   (REG_B_PIE | REG_B_AIE | REG_B_UIE) /* same bits as PF/AF/UF in C */

#define REG_C_IRQF 0x80
#define REG_C_PF   0x40
#define REG_C_AF   0x20
#define REG_C_UF   0x10

#define REG_D_VRT 0x80 /* RAM and time valid */

#define HOUR_PM	     0x80
#define ALARM_ANY    0xc0 /* an alarm byte with both top bits set matches anything */
#define NSEC	     1000000000LL
#define RTC_UIP_NS   244000    /* update cycle plus the 244 us warning before it */
#define RTC_MIN_TICK 1000000LL /* periodic interrupts faster than 1 kHz are coalesced */

struct rtc {
	pthread_mutex_t lock;
	pthread_cond_t kick; /* register B or A changed, or stop */
	pthread_t thread;
	bool thread_started;
	bool stop;

	struct bus *pio;
	struct irq_line irq;
	bool irq_level;

	uint8_t index;
	uint8_t cmos[RTC_CMOS_SIZE]; /* RAM, alarms and A-D; time comes from the clock */
	int64_t offset;		     /* guest UTC seconds minus host UTC seconds */
	bool frozen;		     /* REG_B.SET: the clock stops while the guest writes it */
	struct tm set_tm;	     /* the stopped clock, fields as the guest wrote them */
	int64_t last_second;	     /* guest second at the last update cycle seen */
	int64_t next_periodic;	     /* CLOCK_MONOTONIC ns of the next periodic flag */
};

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static int64_t guest_seconds(const struct rtc *r, int64_t realtime_ns)
{
	return realtime_ns / NSEC + r->offset;
}

static void rtc_guest_tm(const struct rtc *r, struct tm *tm)
{
	time_t t;

	if (r->frozen) {
		*tm = r->set_tm;
		return;
	}
	t = (time_t)guest_seconds(r, clock_ns(CLOCK_REALTIME));
	gmtime_r(&t, tm);
}

static bool rtc_binary(const struct rtc *r)
{
	return r->cmos[RTC_REG_B] & REG_B_BINARY;
}

static uint8_t rtc_encode(const struct rtc *r, int v)
{
	v = ((v % 100) + 100) % 100; /* a register holds two digits */
	return rtc_binary(r) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | (v % 10));
}

static int rtc_decode(const struct rtc *r, uint8_t v)
{
	return rtc_binary(r) ? v : (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t rtc_encode_hour(const struct rtc *r, int hour)
{
	int h12;

	if (r->cmos[RTC_REG_B] & REG_B_24H)
		return rtc_encode(r, hour);
	h12 = hour % 12 ? hour % 12 : 12;
	return rtc_encode(r, h12) | (hour >= 12 ? HOUR_PM : 0);
}

static int rtc_decode_hour(const struct rtc *r, uint8_t v)
{
	int h;

	if (r->cmos[RTC_REG_B] & REG_B_24H)
		return rtc_decode(r, v);
	h = rtc_decode(r, v & ~HOUR_PM) % 12;
	return (v & HOUR_PM) ? h + 12 : h;
}

static bool rtc_is_time_reg(uint8_t idx)
{
	return idx == RTC_SECONDS || idx == RTC_MINUTES || idx == RTC_HOURS ||
	       (idx >= RTC_DAY_OF_WEEK && idx <= RTC_YEAR) || idx == RTC_CENTURY;
}

static uint8_t rtc_read_time(const struct rtc *r, uint8_t idx)
{
	struct tm tm, norm;
	int year;

	rtc_guest_tm(r, &tm);
	year = tm.tm_year + 1900;
	switch (idx) {
	case RTC_SECONDS:
		return rtc_encode(r, tm.tm_sec);
	case RTC_MINUTES:
		return rtc_encode(r, tm.tm_min);
	case RTC_HOURS:
		return rtc_encode_hour(r, tm.tm_hour);
	case RTC_DAY_OF_WEEK: /* 1 = Sunday; derived, since a stopped clock may be mid-edit */
		norm = tm;
		timegm(&norm);
		return rtc_encode(r, norm.tm_wday + 1);
	case RTC_DAY:
		return rtc_encode(r, tm.tm_mday);
	case RTC_MONTH:
		return rtc_encode(r, tm.tm_mon + 1);
	case RTC_YEAR:
		return rtc_encode(r, year % 100);
	default: /* RTC_CENTURY */
		return rtc_encode(r, year / 100);
	}
}

/* Puts a written time register into tm; false for day of week, which is derived. */
static bool rtc_tm_set_field(const struct rtc *r, struct tm *tm, uint8_t idx, uint8_t v)
{
	int year = tm->tm_year + 1900;

	switch (idx) {
	case RTC_SECONDS:
		tm->tm_sec = rtc_decode(r, v);
		break;
	case RTC_MINUTES:
		tm->tm_min = rtc_decode(r, v);
		break;
	case RTC_HOURS:
		tm->tm_hour = rtc_decode_hour(r, v);
		break;
	case RTC_DAY:
		tm->tm_mday = rtc_decode(r, v);
		break;
	case RTC_MONTH:
		tm->tm_mon = rtc_decode(r, v) - 1;
		break;
	case RTC_YEAR:
		tm->tm_year = year / 100 * 100 + rtc_decode(r, v) - 1900;
		break;
	case RTC_CENTURY:
		tm->tm_year = rtc_decode(r, v) * 100 + year % 100 - 1900;
		break;
	default:
		return false;
	}
	return true;
}

static void rtc_commit(struct rtc *r, struct tm *tm)
{
	r->offset = (int64_t)timegm(tm) - clock_ns(CLOCK_REALTIME) / NSEC;
	r->last_second = guest_seconds(r, clock_ns(CLOCK_REALTIME));
}

/*
 * While SET is on, writes edit the stopped clock field by field (a date
 * may be invalid halfway through); otherwise each write moves the running
 * clock at once.
 */
static void rtc_write_time(struct rtc *r, uint8_t idx, uint8_t v)
{
	struct tm tm;

	rtc_guest_tm(r, &tm);
	if (!rtc_tm_set_field(r, &tm, idx, v))
		return;
	if (r->frozen)
		r->set_tm = tm;
	else
		rtc_commit(r, &tm);
}

static int64_t rtc_period_ns(const struct rtc *r)
{
	int rate = r->cmos[RTC_REG_A] & REG_A_RATE;
	int64_t ns;

	if (!rate)
		return 0;
	if (rate < 3)
		rate += 7; /* rates 1 and 2 repeat 8 and 9 with a 32.768 kHz base */
	ns = (NSEC << (rate - 1)) / 32768;
	return ns < RTC_MIN_TICK ? RTC_MIN_TICK : ns;
}

static bool rtc_alarm_matches(const struct rtc *r)
{
	static const uint8_t pairs[][2] = {
		{RTC_SECONDS_ALRM, RTC_SECONDS},
		{RTC_MINUTES_ALRM, RTC_MINUTES},
		{RTC_HOURS_ALRM, RTC_HOURS},
	};

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		uint8_t alarm = r->cmos[pairs[i][0]];

		if ((alarm & ALARM_ANY) != ALARM_ANY && alarm != rtc_read_time(r, pairs[i][1]))
			return false;
	}
	return true;
}

/* Sets IRQF from the flags and enables, and drives IRQ 8 to match. */
static void rtc_update_irq(struct rtc *r)
{
	uint8_t *c = &r->cmos[RTC_REG_C];
	bool level;

	if (*c & r->cmos[RTC_REG_B] & REG_B_IRQS)
		*c |= REG_C_IRQF;
	level = *c & REG_C_IRQF;
	if (level != r->irq_level) {
		r->irq_level = level;
		irq_line_set(&r->irq, level);
	}
}

/*
 * Catches the flags up with the clock: UF after each update cycle (and AF
 * if the alarm matches then), PF each period. Run lazily on register C
 * reads and by the thread when interrupts are enabled.
 */
static void rtc_tick(struct rtc *r)
{
	int64_t sec = guest_seconds(r, clock_ns(CLOCK_REALTIME));
	int64_t period = rtc_period_ns(r), mono;

	if (!r->frozen && sec != r->last_second) {
		r->last_second = sec;
		r->cmos[RTC_REG_C] |= REG_C_UF;
		if (rtc_alarm_matches(r))
			r->cmos[RTC_REG_C] |= REG_C_AF;
	}
	mono = clock_ns(CLOCK_MONOTONIC);
	if (period && mono >= r->next_periodic) {
		r->cmos[RTC_REG_C] |= REG_C_PF;
		r->next_periodic += period;
		if (r->next_periodic <= mono) /* fell behind: coalesce */
			r->next_periodic = mono + period;
	}
	rtc_update_irq(r);
}

static void rtc_write_reg_a(struct rtc *r, uint8_t v)
{
	uint8_t old = r->cmos[RTC_REG_A];

	r->cmos[RTC_REG_A] = v & ~REG_A_UIP;
	if ((old ^ v) & REG_A_RATE)
		r->next_periodic = clock_ns(CLOCK_MONOTONIC) + rtc_period_ns(r);
}

static void rtc_write_reg_b(struct rtc *r, uint8_t v)
{
	bool was_set = r->cmos[RTC_REG_B] & REG_B_SET;

	if (v & REG_B_SET) {
		v &= ~REG_B_UIE; /* no update cycles while the clock is being set */
		if (!was_set) {
			rtc_guest_tm(r, &r->set_tm);
			r->frozen = true;
		}
	}
	r->cmos[RTC_REG_B] = v;
	if (was_set && !(v & REG_B_SET)) {
		r->frozen = false;
		rtc_commit(r, &r->set_tm);
	}
	rtc_update_irq(r);
}

static uint8_t rtc_read_reg(struct rtc *r, uint8_t idx)
{
	uint8_t v;

	if (rtc_is_time_reg(idx))
		return rtc_read_time(r, idx);
	switch (idx) {
	case RTC_REG_A:
		v = r->cmos[RTC_REG_A];
		/* Set only in the last 244 us of a second, so it never sticks. */
		if (!r->frozen && clock_ns(CLOCK_REALTIME) % NSEC >= NSEC - RTC_UIP_NS)
			v |= REG_A_UIP;
		return v;
	case RTC_REG_C:
		rtc_tick(r);
		v = r->cmos[RTC_REG_C];
		r->cmos[RTC_REG_C] = 0; /* reading C acknowledges everything */
		rtc_update_irq(r);
		return v;
	case RTC_REG_D:
		return REG_D_VRT;
	default:
		return r->cmos[idx];
	}
}

static void rtc_write_reg(struct rtc *r, uint8_t idx, uint8_t v)
{
	if (rtc_is_time_reg(idx)) {
		rtc_write_time(r, idx, v);
		return;
	}
	switch (idx) {
	case RTC_REG_A:
		rtc_write_reg_a(r, v);
		break;
	case RTC_REG_B:
		rtc_write_reg_b(r, v);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break; /* read-only */
	default:
		r->cmos[idx] = v;
		return;
	}
	pthread_cond_signal(&r->kick);
}

static void rtc_bus_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct rtc *r = opaque;

	memset(data, 0xff, len);
	if (offset != 1)
		return; /* the index port is write-only */
	pthread_mutex_lock(&r->lock);
	data[0] = rtc_read_reg(r, r->index);
	pthread_mutex_unlock(&r->lock);
}

static void rtc_bus_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct rtc *r = opaque;

	pthread_mutex_lock(&r->lock);
	if (offset == 0)
		r->index = data[0] & 0x7f; /* bit 7 masks NMIs; there is nothing to mask */
	else
		rtc_write_reg(r, r->index, data[0]);
	pthread_mutex_unlock(&r->lock);
}

static const struct bus_ops rtc_ops = {
	.read = rtc_bus_read,
	.write = rtc_bus_write,
};

/* When the thread must next look at the clock, or 0 for "not until kicked". */
static int64_t rtc_next_event(const struct rtc *r)
{
	uint8_t b = r->cmos[RTC_REG_B];
	int64_t next = 0, mono = clock_ns(CLOCK_MONOTONIC);

	if (b & (REG_B_UIE | REG_B_AIE))
		next = mono + (NSEC - clock_ns(CLOCK_REALTIME) % NSEC);
	if ((b & REG_B_PIE) && rtc_period_ns(r) && (!next || r->next_periodic < next))
		next = r->next_periodic;
	return next;
}

static void *rtc_thread(void *arg)
{
	struct rtc *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		int64_t next = rtc_next_event(r);
		struct timespec ts = {.tv_sec = next / NSEC, .tv_nsec = next % NSEC};

		if (!next)
			pthread_cond_wait(&r->kick, &r->lock);
		else
			pthread_cond_timedwait(&r->kick, &r->lock, &ts);
		if (!r->stop)
			rtc_tick(r);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void rtc_init_sync(struct rtc *r)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&r->kick, &attr);
	pthread_condattr_destroy(&attr);
}

static void rtc_free(struct rtc *r)
{
	if (r->thread_started) {
		pthread_mutex_lock(&r->lock);
		r->stop = true;
		pthread_cond_signal(&r->kick);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->thread, NULL);
	}
	pthread_cond_destroy(&r->kick);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* The MC146818's RESET pin clears PIE, AIE, UIE and SQWE in B and every flag in C. */
void rtc_reset(struct rtc *r)
{
	pthread_mutex_lock(&r->lock);
	r->cmos[RTC_REG_B] &= (uint8_t) ~(REG_B_IRQS | REG_B_SQWE);
	r->cmos[RTC_REG_C] = 0;
	rtc_update_irq(r);
	pthread_cond_signal(&r->kick); /* the periodic timer may have stopped */
	pthread_mutex_unlock(&r->lock);
}

struct rtc *rtc_create(struct bus *pio, const struct irq_line *irq)
{
	struct rtc *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return NULL;
	rtc_init_sync(r);
	r->pio = pio;
	if (irq)
		r->irq = *irq;
	r->cmos[RTC_REG_A] = 0x26;	/* 32.768 kHz time base, 1024 Hz periodic rate */
	r->cmos[RTC_REG_B] = REG_B_24H; /* BCD, 24-hour, interrupts off */
	r->last_second = guest_seconds(r, clock_ns(CLOCK_REALTIME));
	r->next_periodic = clock_ns(CLOCK_MONOTONIC) + rtc_period_ns(r);
	ret = pthread_create(&r->thread, NULL, rtc_thread, r);
	if (ret) {
		log_error("rtc: cannot start its thread: %s", strerror(ret));
		rtc_free(r);
		return NULL;
	}
	r->thread_started = true;
	ret = bus_register(pio, LAYOUT_RTC_PORT, 2, &rtc_ops, r, "rtc");
	if (ret) {
		log_error("rtc: cannot claim ports 0x70-0x71: %s", strerror(-ret));
		rtc_free(r);
		return NULL;
	}
	return r;
}

void rtc_destroy(struct rtc *r)
{
	if (!r)
		return;
	bus_unregister(r->pio, LAYOUT_RTC_PORT);
	rtc_free(r);
}

/* ---- snapshot ---- */

/*
 * The clock is saved as its offset from the host's UTC clock, not as a
 * time: after a restore the guest's wall clock reads real time again (plus
 * the offset it set itself), as a battery-backed RTC does after the
 * machine was off. A clock stopped by REG_B.SET is saved as it stands.
 */
#define RTC_OFFSET_MAX (1LL << 40) /* seconds: far beyond any date, far from overflow */
#define RTC_TM_MAX     10000	   /* any decoded register value fits */

struct rtc_state {
	uint8_t index;
	uint8_t cmos[RTC_CMOS_SIZE];
	int64_t offset;
	bool frozen;
	int32_t tm[6]; /* set_tm: sec, min, hour, mday, mon, year */
};

int rtc_save(struct rtc *r, struct snap_writer *w, const char *name)
{
	const struct tm *t = &r->set_tm;

	pthread_mutex_lock(&r->lock);
	snap_begin(w, name, RTC_STATE_VERSION);
	snap_put_u8(w, r->index);
	snap_put_bytes(w, r->cmos, RTC_CMOS_SIZE);
	snap_put_u64(w, (uint64_t)r->offset);
	snap_put_u8(w, r->frozen);
	snap_put_u32(w, (uint32_t)t->tm_sec);
	snap_put_u32(w, (uint32_t)t->tm_min);
	snap_put_u32(w, (uint32_t)t->tm_hour);
	snap_put_u32(w, (uint32_t)t->tm_mday);
	snap_put_u32(w, (uint32_t)t->tm_mon);
	snap_put_u32(w, (uint32_t)t->tm_year);
	snap_end(w);
	pthread_mutex_unlock(&r->lock);
	return w->failed ? -ENOMEM : 0;
}

static int rtc_state_check(const struct rtc_state *st, const char *name, struct error *err)
{
	static const char *const tm_names[] = {"stopped seconds", "stopped minutes",
					       "stopped hours",	  "stopped day",
					       "stopped month",	  "stopped year"};
	uint8_t b = st->cmos[RTC_REG_B];

	if (st->index >= RTC_CMOS_SIZE)
		return state_bad(err, name, "index", st->index);
	if (st->cmos[RTC_REG_A] & REG_A_UIP)
		return state_bad(err, name, "register A", st->cmos[RTC_REG_A]);
	if ((b & REG_B_SET) && (b & REG_B_UIE))
		return state_bad(err, name, "register B", b);
	if (st->cmos[RTC_REG_C] & ~(REG_C_IRQF | REG_C_PF | REG_C_AF | REG_C_UF))
		return state_bad(err, name, "register C", st->cmos[RTC_REG_C]);
	if (st->offset > RTC_OFFSET_MAX || st->offset < -RTC_OFFSET_MAX)
		return state_bad(err, name, "clock offset", (uint64_t)st->offset);
	if (st->frozen != !!(b & REG_B_SET))
		return state_bad(err, name, "stopped flag", st->frozen);
	for (int i = 0; i < 6; i++)
		if (st->tm[i] < -RTC_TM_MAX || st->tm[i] > RTC_TM_MAX)
			return state_bad(err, name, tm_names[i], (uint32_t)st->tm[i]);
	return 0;
}

static int rtc_state_read(struct snap_section *s, struct rtc_state *st, const char *name,
			  struct error *err)
{
	uint8_t frozen;

	st->index = snap_get_u8(s);
	snap_get_bytes(s, st->cmos, RTC_CMOS_SIZE);
	st->offset = (int64_t)snap_get_u64(s);
	frozen = snap_get_u8(s);
	if (frozen > 1)
		return state_bad(err, name, "stopped flag", frozen);
	st->frozen = frozen;
	for (int i = 0; i < 6; i++)
		st->tm[i] = (int32_t)snap_get_u32(s);
	if (rtc_state_check(st, name, err))
		return -EINVAL;
	return snap_section_done(s, err);
}

static void rtc_state_apply(struct rtc *r, const struct rtc_state *st)
{
	r->index = st->index;
	memcpy(r->cmos, st->cmos, RTC_CMOS_SIZE);
	r->offset = st->offset;
	r->frozen = st->frozen;
	memset(&r->set_tm, 0, sizeof(r->set_tm));
	r->set_tm.tm_sec = st->tm[0];
	r->set_tm.tm_min = st->tm[1];
	r->set_tm.tm_hour = st->tm[2];
	r->set_tm.tm_mday = st->tm[3];
	r->set_tm.tm_mon = st->tm[4];
	r->set_tm.tm_year = st->tm[5];
	/* Flags already raised stay in C; update cycles count on from now, not from the save. */
	r->last_second = guest_seconds(r, clock_ns(CLOCK_REALTIME));
	r->next_periodic = clock_ns(CLOCK_MONOTONIC) + rtc_period_ns(r);
}

int rtc_restore(struct rtc *r, const struct snap_file *f, const char *name, struct error *err)
{
	struct rtc_state st;
	struct snap_section s;
	int ret = state_open(f, name, RTC_STATE_VERSION, &s, err);

	if (!ret)
		ret = rtc_state_read(&s, &st, name, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&r->lock);
	rtc_state_apply(r, &st);
	rtc_update_irq(r);
	pthread_cond_signal(&r->kick); /* interrupts may now be enabled */
	pthread_mutex_unlock(&r->lock);
	return 0;
}
