// SPDX-License-Identifier: MIT
/*
 * Device snapshots: each device is driven into a non-default state through
 * its registers, saved, loaded into a freshly created twin, and checked to
 * read the same and keep working. Corrupted sections must be refused with
 * an error naming the section and the field, leaving the device usable.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/legacy.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/devices/serial.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/balloon.h"
#include "../../src/vmm/virtio/rng.h"
#include "virtio_fixture.h"

/* ---- state files ---- */

static char dir[] = "/tmp/bunshin-snapdev.XXXXXX";
static char path[96];
static struct error err;

static void files_setup(void)
{
	strcpy(dir, "/tmp/bunshin-snapdev.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
	error_clear(&err);
}

static void files_teardown(void)
{
	unlink(path);
	rmdir(dir);
}

/* Writes w out (freeing it) and reads it back. */
static void to_file(struct snap_writer *w, struct snap_file *f)
{
	cr_assert_eq(snap_save(w, path, &err), 0, "%s", err.msg);
	snap_writer_free(w);
	cr_assert_eq(snap_open(f, path, &err), 0, "%s", err.msg);
}

static void copy_section(struct snap_writer *w, const struct snap_file *f, const char *name)
{
	struct snap_section s;

	cr_assert_eq(snap_find(f, name, ~0u, &s, &err), 0, "%s", err.msg);
	snap_begin(w, name, s.version);
	snap_put_bytes(w, s.p, s.len);
	snap_end(w);
}

/*
 * Replaces f by a copy where section name has n bytes at off overwritten
 * (n 0: none) and the given version; keep names another section to copy.
 */
static void patch(struct snap_file *f, const char *name, size_t off, const void *bytes, size_t n,
		  uint32_t version, const char *keep)
{
	struct snap_writer w;
	struct snap_section s;
	uint8_t *p;

	cr_assert_eq(snap_find(f, name, ~0u, &s, &err), 0, "%s", err.msg);
	cr_assert_leq(off + n, s.len);
	p = malloc(s.len);
	memcpy(p, s.p, s.len);
	memcpy(p + off, bytes, n);
	snap_writer_init(&w);
	if (keep)
		copy_section(&w, f, keep);
	snap_begin(&w, name, version);
	snap_put_bytes(&w, p, s.len);
	snap_end(&w);
	free(p);
	snap_close(f);
	to_file(&w, f);
}

/* The payload of a section, for comparing two saves. */
static void payload(const struct snap_file *f, const char *name, const uint8_t **p, size_t *len)
{
	struct snap_section s;

	cr_assert_eq(snap_find(f, name, ~0u, &s, &err), 0, "%s", err.msg);
	*p = s.p;
	*len = s.len;
}

static void assert_same_section(const struct snap_file *a, const struct snap_file *b,
				const char *name)
{
	const uint8_t *pa, *pb;
	size_t la, lb;

	payload(a, name, &pa, &la);
	payload(b, name, &pb, &lb);
	cr_assert_eq(la, lb, "%s: %zu bytes saved, %zu after restore", name, la, lb);
	cr_assert_eq(memcmp(pa, pb, la), 0, "%s differs after a save/restore round", name);
}

/* ---- legacy devices: buses and interrupt lines ---- */

struct fake_irq {
	int level;
	int raises;
};

static void fake_set_level(void *ctx, unsigned int gsi, int level)
{
	struct fake_irq *f = ctx;

	if (level && !f->level)
		f->raises++;
	f->level = level;
}

static struct bus bus_a, bus_b;
static struct fake_irq irq_a, irq_b;

static void legacy_setup(void)
{
	files_setup();
	memset(&irq_a, 0, sizeof(irq_a));
	memset(&irq_b, 0, sizeof(irq_b));
	bus_init(&bus_a, "pio-a");
	bus_init(&bus_b, "pio-b");
}

static void legacy_teardown(void)
{
	bus_destroy(&bus_a);
	bus_destroy(&bus_b);
	files_teardown();
}

static struct irq_line line_a(void)
{
	return (struct irq_line){.set_level = fake_set_level, .ctx = &irq_a, .gsi = 4};
}

static struct irq_line line_b(void)
{
	return (struct irq_line){.set_level = fake_set_level, .ctx = &irq_b, .gsi = 4};
}

static void outb(struct bus *b, uint16_t port, uint8_t v)
{
	cr_assert(bus_write(b, port, &v, 1));
}

static uint8_t inb(struct bus *b, uint16_t port)
{
	uint8_t v;

	cr_assert(bus_read(b, port, &v, 1));
	return v;
}

static uint16_t inw(struct bus *b, uint16_t port)
{
	uint8_t v[2];

	cr_assert(bus_read(b, port, v, 2));
	return (uint16_t)(v[0] | v[1] << 8);
}

static uint32_t inl(struct bus *b, uint16_t port)
{
	uint8_t v[4];

	cr_assert(bus_read(b, port, v, 4));
	return (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
}

static void outw(struct bus *b, uint16_t port, uint16_t v)
{
	uint8_t d[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	cr_assert(bus_write(b, port, d, 2));
}

TestSuite(snap_legacy, .init = legacy_setup, .fini = legacy_teardown);

/* ---- serial ---- */

#define COM1 0x3f8

static struct serial *serial_busy(void)
{
	struct irq_line l = line_a();
	struct serial *s = serial_create(&bus_a, COM1, &l, NULL);

	cr_assert_not_null(s);
	outb(&bus_a, COM1 + 3, 0x80); /* DLAB */
	outb(&bus_a, COM1 + 0, 0x01);
	outb(&bus_a, COM1 + 1, 0x02);
	outb(&bus_a, COM1 + 3, 0x1b);
	outb(&bus_a, COM1 + 4, 0x0b);
	outb(&bus_a, COM1 + 7, 0x5a);
	outb(&bus_a, COM1 + 2, 0xc1); /* FIFOs on */
	serial_receive(s, (const uint8_t *)"hello", 5);
	outb(&bus_a, COM1 + 1, 0x01); /* received data interrupt */
	cr_assert_eq(irq_a.level, 1);
	cr_assert_eq(inb(&bus_a, COM1), 'h');
	return s;
}

static struct serial *serial_twin(void)
{
	struct irq_line l = line_b();
	struct serial *s = serial_create(&bus_b, COM1, &l, NULL);

	cr_assert_not_null(s);
	return s;
}

Test(snap_legacy, serial_round_trip)
{
	struct serial *a = serial_busy(), *b = serial_twin();
	struct snap_writer w;
	struct snap_file f, g;
	char rx[5] = {0};

	snap_writer_init(&w);
	cr_assert_eq(serial_save(a, &w, "serial0"), 0);
	to_file(&w, &f);
	cr_assert_eq(serial_restore(b, &f, "serial0", &err), 0, "%s", err.msg);
	/* The pending receive interrupt is raised on the new line at once. */
	cr_assert_eq(irq_b.level, 1);
	snap_writer_init(&w);
	cr_assert_eq(serial_save(b, &w, "serial0"), 0);
	cr_assert_eq(snap_save(&w, path, &err), 0);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&g, path, &err), 0);
	assert_same_section(&f, &g, "serial0");
	for (uint16_t r = 1; r < 8; r++)
		if (r != 2 && r != 5 && r != 6) /* IIR, LSR, MSR have read side effects */
			cr_assert_eq(inb(&bus_b, COM1 + r), inb(&bus_a, COM1 + r), "reg %u", r);
	cr_assert_eq(inb(&bus_b, COM1 + 2), 0xc4, "RDI with FIFOs");
	cr_assert_eq(inb(&bus_b, COM1 + 5) & 0x01, 1, "data ready");
	outb(&bus_b, COM1 + 3, 0x9b);
	cr_assert_eq(inb(&bus_b, COM1 + 0), 0x01);
	cr_assert_eq(inb(&bus_b, COM1 + 1), 0x02);
	outb(&bus_b, COM1 + 3, 0x1b);
	for (int i = 0; i < 4; i++)
		rx[i] = (char)inb(&bus_b, COM1);
	cr_assert_str_eq(rx, "ello");
	cr_assert_eq(irq_b.level, 0, "drained: the line drops");
	/* THRE: enabling it after restore still raises the line. */
	outb(&bus_b, COM1 + 1, 0x02);
	cr_assert_eq(irq_b.level, 1);
	snap_close(&f);
	snap_close(&g);
	serial_destroy(a);
	serial_destroy(b);
}

Test(snap_legacy, serial_thre_pending_raises_after_restore)
{
	struct irq_line l = line_a();
	struct serial *a = serial_create(&bus_a, COM1, &l, NULL), *b = serial_twin();
	struct snap_writer w;
	struct snap_file f;

	outb(&bus_a, COM1 + 1, 0x02);
	cr_assert_eq(irq_a.level, 1);
	snap_writer_init(&w);
	serial_save(a, &w, "serial0");
	to_file(&w, &f);
	cr_assert_eq(serial_restore(b, &f, "serial0", &err), 0, "%s", err.msg);
	cr_assert_eq(irq_b.level, 1);
	cr_assert_eq(inb(&bus_b, COM1 + 2) & 0x0f, 0x02, "THRE reported");
	snap_close(&f);
	serial_destroy(a);
	serial_destroy(b);
}

Test(snap_legacy, serial_refuses_bad_sections)
{
	struct serial *a = serial_busy(), *b = serial_twin();
	struct snap_writer w;
	struct snap_file f;
	uint8_t bad_ier = 0xff, big[2] = {0xff, 0xff};

	snap_writer_init(&w);
	serial_save(a, &w, "serial0");
	to_file(&w, &f);
	patch(&f, "serial0", 0, &bad_ier, 1, SERIAL_STATE_VERSION, NULL);
	cr_assert_eq(serial_restore(b, &f, "serial0", &err), -EINVAL);
	cr_assert(strstr(err.msg, "serial0") && strstr(err.msg, "IER"), "%s", err.msg);
	cr_assert_eq(inb(&bus_b, COM1 + 1), 0, "left as created");
	patch(&f, "serial0", 0, "\x01", 1, SERIAL_STATE_VERSION, NULL);
	patch(&f, "serial0", 11, big, 2, SERIAL_STATE_VERSION, NULL);
	cr_assert_eq(serial_restore(b, &f, "serial0", &err), -EINVAL);
	cr_assert(strstr(err.msg, "receive buffer length"), "%s", err.msg);
	patch(&f, "serial0", 11, "\x04\x00", 2, 2, NULL);
	cr_assert_eq(serial_restore(b, &f, "serial0", &err), -EPROTO, "%s", err.msg);
	cr_assert_eq(serial_restore(b, &f, "serial1", &err), -ENOENT);
	snap_close(&f);
	serial_destroy(a);
	serial_destroy(b);
}

Test(snap_legacy, serial_refuses_truncated_section)
{
	struct serial *b = serial_twin();
	struct snap_writer w;
	struct snap_file f;

	snap_writer_init(&w);
	snap_begin(&w, "serial0", SERIAL_STATE_VERSION);
	snap_put_u8(&w, 0);
	snap_end(&w);
	to_file(&w, &f);
	cr_assert_eq(serial_restore(b, &f, "serial0", &err), -EBADMSG);
	cr_assert(strstr(err.msg, "too short"), "%s", err.msg);
	snap_close(&f);
	serial_destroy(b);
}

/* ---- i8042 ---- */

#define KBD_DATA LAYOUT_I8042_DATA_PORT
#define KBD_CMD	 LAYOUT_I8042_CMD_PORT

Test(snap_legacy, i8042_round_trip)
{
	struct irq_line la = line_a(), lb = line_b();
	struct i8042 *a = i8042_create(&bus_a, &la, NULL), *b = i8042_create(&bus_b, &lb, NULL);
	struct snap_writer w;
	struct snap_file f;
	static const uint8_t want[] = {0x41, 0xfa, 0xab, 0x41, 0xfa};

	cr_assert(a && b);
	outb(&bus_a, KBD_CMD, 0x60);
	outb(&bus_a, KBD_DATA, 0x41); /* KBDINT | XLATE, AUX enabled */
	outb(&bus_a, KBD_CMD, 0x20);  /* read CTR: queued */
	outb(&bus_a, KBD_DATA, 0xf2); /* keyboard ID: ACK, 0xab, 0x41 */
	outb(&bus_a, KBD_DATA, 0xed); /* LEDs: ACK, then waits for its parameter */
	cr_assert_eq(irq_a.level, 1);
	snap_writer_init(&w);
	cr_assert_eq(i8042_save(a, &w, "i8042"), 0);
	to_file(&w, &f);
	cr_assert_eq(i8042_restore(b, &f, "i8042", &err), 0, "%s", err.msg);
	cr_assert_eq(irq_b.level, 1);
	cr_assert_eq(inb(&bus_b, KBD_CMD), inb(&bus_a, KBD_CMD));
	for (size_t i = 0; i < sizeof(want); i++)
		cr_assert_eq(inb(&bus_b, KBD_DATA), want[i], "byte %zu", i);
	/* The LED command's parameter is still expected: it is acknowledged, not a command. */
	outb(&bus_b, KBD_DATA, 0x07);
	cr_assert_eq(inb(&bus_b, KBD_DATA), 0xfa);
	cr_assert_eq(inb(&bus_b, KBD_CMD) & 0x01, 0, "queue empty");
	snap_close(&f);
	i8042_destroy(a);
	i8042_destroy(b);
}

Test(snap_legacy, i8042_refuses_bad_sections)
{
	struct i8042 *a = i8042_create(&bus_a, NULL, NULL), *b = i8042_create(&bus_b, NULL, NULL);
	struct snap_writer w;
	struct snap_file f;

	snap_writer_init(&w);
	i8042_save(a, &w, "i8042");
	to_file(&w, &f);
	patch(&f, "i8042", 3, "\x99", 1, I8042_STATE_VERSION, NULL);
	cr_assert_eq(i8042_restore(b, &f, "i8042", &err), -EINVAL);
	cr_assert(strstr(err.msg, "i8042") && strstr(err.msg, "controller command"), "%s", err.msg);
	patch(&f, "i8042", 3, "\x00", 1, I8042_STATE_VERSION, NULL);
	patch(&f, "i8042", 6, "\x11", 1, I8042_STATE_VERSION, NULL);
	cr_assert_eq(i8042_restore(b, &f, "i8042", &err), -EINVAL);
	cr_assert(strstr(err.msg, "queue length"), "%s", err.msg);
	cr_assert_eq(inb(&bus_b, KBD_CMD) & 0x01, 0, "left as created");
	snap_close(&f);
	i8042_destroy(a);
	i8042_destroy(b);
}

/* ---- rtc ---- */

static uint8_t cmos_rd(struct bus *b, uint8_t idx)
{
	outb(b, LAYOUT_RTC_PORT, idx);
	return inb(b, LAYOUT_RTC_PORT + 1);
}

static void cmos_wr(struct bus *b, uint8_t idx, uint8_t v)
{
	outb(b, LAYOUT_RTC_PORT, idx);
	outb(b, LAYOUT_RTC_PORT + 1, v);
}

Test(snap_legacy, rtc_round_trip_keeps_guest_offset)
{
	struct irq_line la = line_a(), lb = line_b();
	struct rtc *a = rtc_create(&bus_a, &la), *b = rtc_create(&bus_b, &lb);
	struct snap_writer w;
	struct snap_file f;

	cr_assert(a && b);
	cmos_wr(&bus_a, 0x0b, 0x06); /* binary, 24 h */
	cmos_wr(&bus_a, 0x09, 42);   /* the guest says it is '42 */
	cmos_wr(&bus_a, 0x40, 0x5a);
	cmos_wr(&bus_a, 0x0a, 0x2f);
	outb(&bus_a, LAYOUT_RTC_PORT, 0x40);
	snap_writer_init(&w);
	cr_assert_eq(rtc_save(a, &w, "rtc"), 0);
	to_file(&w, &f);
	cr_assert_eq(rtc_restore(b, &f, "rtc", &err), 0, "%s", err.msg);
	cr_assert_eq(inb(&bus_b, LAYOUT_RTC_PORT + 1), 0x5a, "the index survives");
	cr_assert_eq(cmos_rd(&bus_b, 0x0b), 0x06);
	cr_assert_eq(cmos_rd(&bus_b, 0x0a) & 0x7f, 0x2f);
	cr_assert_eq(cmos_rd(&bus_b, 0x09), 42, "guest-host offset kept");
	cr_assert_eq(cmos_rd(&bus_b, 0x32), cmos_rd(&bus_a, 0x32));
	cr_assert_eq(cmos_rd(&bus_b, 0x08), cmos_rd(&bus_a, 0x08));
	snap_close(&f);
	rtc_destroy(a);
	rtc_destroy(b);
}

Test(snap_legacy, rtc_periodic_interrupt_runs_after_restore)
{
	struct irq_line la = line_a(), lb = line_b();
	struct rtc *a = rtc_create(&bus_a, &la), *b = rtc_create(&bus_b, &lb);
	struct snap_writer w;
	struct snap_file f;

	cmos_wr(&bus_a, 0x0a, 0x26); /* 1024 Hz */
	cmos_wr(&bus_a, 0x0b, 0x42); /* PIE */
	snap_writer_init(&w);
	rtc_save(a, &w, "rtc");
	rtc_destroy(a);
	to_file(&w, &f);
	cr_assert_eq(rtc_restore(b, &f, "rtc", &err), 0, "%s", err.msg);
	for (int i = 0; i < 1000 && !irq_b.raises; i++)
		usleep(1000);
	cr_assert_gt(irq_b.raises, 0);
	cr_assert(cmos_rd(&bus_b, 0x0c) & 0x40, "PF");
	snap_close(&f);
	rtc_destroy(b);
}

Test(snap_legacy, rtc_refuses_bad_sections)
{
	struct rtc *a = rtc_create(&bus_a, NULL), *b = rtc_create(&bus_b, NULL);
	struct snap_writer w;
	struct snap_file f;
	uint8_t big_offset[8] = {0, 0, 0, 0, 0, 0, 0, 0x40};

	snap_writer_init(&w);
	rtc_save(a, &w, "rtc");
	to_file(&w, &f);
	patch(&f, "rtc", 0, "\x80", 1, RTC_STATE_VERSION, NULL);
	cr_assert_eq(rtc_restore(b, &f, "rtc", &err), -EINVAL);
	cr_assert(strstr(err.msg, "rtc") && strstr(err.msg, "index"), "%s", err.msg);
	patch(&f, "rtc", 0, "\x00", 1, RTC_STATE_VERSION, NULL);
	patch(&f, "rtc", 1 + 0x0c, "\x0f", 1, RTC_STATE_VERSION, NULL);
	cr_assert_eq(rtc_restore(b, &f, "rtc", &err), -EINVAL);
	cr_assert(strstr(err.msg, "register C"), "%s", err.msg);
	patch(&f, "rtc", 1 + 0x0c, "\x00", 1, RTC_STATE_VERSION, NULL);
	patch(&f, "rtc", 1 + 128, big_offset, 8, RTC_STATE_VERSION, NULL);
	cr_assert_eq(rtc_restore(b, &f, "rtc", &err), -EINVAL);
	cr_assert(strstr(err.msg, "clock offset"), "%s", err.msg);
	snap_close(&f);
	rtc_destroy(a);
	rtc_destroy(b);
}

/* ---- acpi_pm ---- */

#define PM1_STS_PWRBTN 0x0100

Test(snap_legacy, acpi_pm_round_trip)
{
	struct irq_line la = line_a(), lb = line_b();
	struct acpi_pm *a = acpi_pm_create(&bus_a, &la, NULL),
		       *b = acpi_pm_create(&bus_b, &lb, NULL);
	struct snap_writer w;
	struct snap_file f;
	uint32_t t0, t1;

	cr_assert(a && b);
	outw(&bus_a, LAYOUT_PM1A_EVT_PORT + 2, PM1_STS_PWRBTN);
	outw(&bus_a, LAYOUT_PM1A_CNT_PORT, 0x0c00); /* SLP_TYP 3, no SLP_EN */
	acpi_pm_power_button(a);
	cr_assert_eq(irq_a.level, 1);
	usleep(20000);
	snap_writer_init(&w);
	cr_assert_eq(acpi_pm_save(a, &w, "acpi-pm"), 0);
	t0 = inl(&bus_a, LAYOUT_PM_TMR_PORT);
	to_file(&w, &f);
	cr_assert_eq(acpi_pm_restore(b, &f, "acpi-pm", &err), 0, "%s", err.msg);
	t1 = inl(&bus_b, LAYOUT_PM_TMR_PORT);
	cr_assert_eq(irq_b.level, 1, "SCI raised from the restored state");
	cr_assert_eq(inl(&bus_b, LAYOUT_PM1A_EVT_PORT), inl(&bus_a, LAYOUT_PM1A_EVT_PORT));
	cr_assert_eq(inw(&bus_b, LAYOUT_PM1A_CNT_PORT), inw(&bus_a, LAYOUT_PM1A_CNT_PORT));
	/* The timer continues from the saved value: within a second of the original's. */
	cr_assert_lt((uint32_t)(t1 - t0 + 3579545u), 2 * 3579545u, "t0 %u t1 %u", t0, t1);
	snap_close(&f);
	acpi_pm_destroy(a);
	acpi_pm_destroy(b);
}

Test(snap_legacy, acpi_pm_refuses_bad_sections)
{
	struct acpi_pm *a = acpi_pm_create(&bus_a, NULL, NULL),
		       *b = acpi_pm_create(&bus_b, NULL, NULL);
	struct snap_writer w;
	struct snap_file f;

	snap_writer_init(&w);
	acpi_pm_save(a, &w, "acpi-pm");
	to_file(&w, &f);
	patch(&f, "acpi-pm", 2, "\x00\x80", 2, ACPI_PM_STATE_VERSION, NULL);
	cr_assert_eq(acpi_pm_restore(b, &f, "acpi-pm", &err), -EINVAL);
	cr_assert(strstr(err.msg, "acpi-pm") && strstr(err.msg, "PM1_EN"), "%s", err.msg);
	snap_close(&f);
	acpi_pm_destroy(a);
	acpi_pm_destroy(b);
}

/* ---- PCI and virtio: a machine around virtio-rng ---- */

#define RAM	  (4 * MiB)
#define QSIZE	  16
#define DESC_GPA  0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA  0x30000ULL
#define BUF_GPA	  0x100000ULL
#define NVEC	  2 /* rng: config and queue 0 */
#define CFG_VEC	  0
#define Q_VEC	  1
#define MOVED_BAR (LAYOUT_PCI_MMIO32_BASE + 0x200000ULL)
#define SLOT	  1 /* the first device after the host bridge */

static int vec_efd[NVEC];
static atomic_int msi_unmasked[NVEC];
static uint32_t msi_data[NVEC];

static void m_send(void *ctx, unsigned int v, const struct msi_msg *m)
{
}

static void m_update(void *ctx, unsigned int v, const struct msi_msg *m, bool masked)
{
	if (v < NVEC && !masked) {
		atomic_fetch_add(&msi_unmasked[v], 1);
		msi_data[v] = m->data;
	}
}

static int m_eventfd(void *ctx, unsigned int v)
{
	return v < NVEC ? vec_efd[v] : -EINVAL;
}

static const struct msi_ops m_ops = {.send = m_send, .update = m_update, .eventfd = m_eventfd};

struct ioev_rec {
	uint64_t addr;
	int fd;
};

static struct ioev_rec ioev[8];
static int nioev;

static int e_assign(void *ctx, uint64_t addr, uint32_t len, int fd)
{
	cr_assert_lt(nioev, 8);
	ioev[nioev++] = (struct ioev_rec){addr, fd};
	return 0;
}

static void e_deassign(void *ctx, uint64_t addr, uint32_t len, int fd)
{
	for (int i = 0; i < nioev; i++) {
		if (ioev[i].addr == addr && ioev[i].fd == fd) {
			ioev[i] = ioev[--nioev];
			return;
		}
	}
	cr_assert_fail("deassign of something never assigned");
}

static const struct ioevent_ops e_ops = {.assign = e_assign, .deassign = e_deassign};

struct machine {
	struct vfx fx;
	struct virtio_rng *rng;
	struct virtio_balloon *bal;
	struct virtio_pci *vp;
};

static struct gmem mem; /* shared: the memory image outlives the machine */
static struct machine ma, mb;

/*
 * Both machines share the memory and this file's recording sinks (whose
 * eventfds outlive a machine too), so the fixture owns neither.
 */
static void machine_up(struct machine *m, const struct virtio_balloon_opts *balloon)
{
	vfx_up(&m->fx, &(struct vfx_opts){.shared_mem = &mem, .msi = &m_ops, .ioevent = &e_ops});
	if (balloon) {
		m->bal = virtio_balloon_create(&m->fx.host, m->fx.root, balloon, &err);
		cr_assert_not_null(m->bal, "%s", err.msg);
		m->vp = virtio_balloon_transport(m->bal);
	} else {
		m->rng = virtio_rng_create(&m->fx.host, m->fx.root, &err);
		cr_assert_not_null(m->rng, "%s", err.msg);
		m->vp = virtio_rng_transport(m->rng);
	}
	vfx_attach(&m->fx, m->vp);
}

static void machine_down(struct machine *m)
{
	if (!m->fx.root)
		return;
	vfx_stop(&m->fx);
	virtio_rng_destroy(m->rng);
	virtio_balloon_destroy(m->bal);
	vfx_down(&m->fx);
	memset(m, 0, sizeof(*m));
}

static void vm_setup(void)
{
	files_setup();
	nioev = 0;
	for (int i = 0; i < NVEC; i++) {
		vec_efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		atomic_store(&msi_unmasked[i], 0);
		msi_data[i] = 0;
	}
	cr_assert_eq(gmem_init(&mem, RAM, &err), 0, "%s", err.msg);
	machine_up(&ma, NULL);
}

static void vm_teardown(void)
{
	machine_down(&ma);
	machine_down(&mb);
	gmem_destroy(&mem);
	for (int i = 0; i < NVEC; i++)
		close(vec_efd[i]);
	files_teardown();
}

TestSuite(snap_virtio, .init = vm_setup, .fini = vm_teardown);

/* ---- driver side ---- */

static const struct vfx_ring ring = {DESC_GPA, AVAIL_GPA, USED_GPA, QSIZE};

/* The guest moves BAR 0 somewhere else, the way firmware or Linux may. */
static void move_bar(struct machine *m, uint64_t to)
{
	vfx_cfg_wr(&m->fx, PCI_COMMAND, 2, 0);
	vfx_cfg_wr(&m->fx, PCI_BASE_ADDRESS_0, 4, (uint32_t)to);
	vfx_cfg_wr(&m->fx, PCI_BASE_ADDRESS_0 + 4, 4, (uint32_t)(to >> 32));
	vfx_cfg_wr(&m->fx, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	m->fx.bar0 = pci_bar_address(virtio_pci_pci(m->vp), 0);
	cr_assert_eq(m->fx.bar0, to);
}

static void bring_up(struct machine *m)
{
	uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	vfx_msix_enable(&m->fx, NVEC);
	vfx_set_status(&m->fx, VIRTIO_STATUS_ACKNOWLEDGE);
	vfx_set_status(&m->fx, s);
	vfx_bar_wr(&m->fx, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	vfx_bar_wr(&m->fx, VIRTIO_PCI_COMMON_GF, 4, 1); /* VERSION_1 */
	vfx_set_status(&m->fx, s | VIRTIO_STATUS_FEATURES_OK);
	vfx_bar_wr(&m->fx, VIRTIO_PCI_COMMON_MSIX, 2, CFG_VEC);
	vfx_queue_setup_msix(&m->fx, 0, ring, Q_VEC);
	vfx_driver_ok(&m->fx);
}

/* Offers one device-writable buffer as descriptor desc_idx; avail->idx becomes new_idx. */
static void offer(struct machine *m, uint16_t desc_idx, uint32_t len, uint16_t new_idx)
{
	uint16_t idx = new_idx - 1;

	vfx_desc_set(&m->fx, ring, desc_idx, BUF_GPA + 0x1000 * desc_idx, len, VIRTQ_DESC_F_WRITE,
		     0);
	vfx_avail_push(&m->fx, ring, &idx, desc_idx);
}

static bool wait_used(struct machine *m, uint16_t idx)
{
	return vfx_wait_used(&m->fx, ring, idx, 2000);
}

static uint64_t wait_vector(unsigned int v)
{
	uint64_t n = 0;

	for (int i = 0; i < 2000; i++) {
		if (read(vec_efd[v], &n, sizeof(n)) == sizeof(n))
			return n;
		usleep(1000);
	}
	return 0;
}

/* Notifies queue 0 through its ioeventfd, as the guest's write to the notify address would. */
static void kick_at(uint64_t notify_addr)
{
	uint64_t one = 1;

	for (int i = 0; i < nioev; i++) {
		if (ioev[i].addr == notify_addr) {
			cr_assert_eq(write(ioev[i].fd, &one, sizeof(one)), sizeof(one));
			return;
		}
	}
	cr_assert_fail("no ioeventfd at 0x%llx", (unsigned long long)notify_addr);
}

/* Machine a: driver up, BAR moved, one request served; its state in f. */
static void busy_machine_saved(struct snap_file *f)
{
	struct snap_writer w;

	move_bar(&ma, MOVED_BAR);
	bring_up(&ma);
	offer(&ma, 0, 64, 1);
	kick_at(MOVED_BAR + VIRTIO_PCI_NOTIFY_OFF);
	cr_assert(wait_used(&ma, 1));
	cr_assert_gt(wait_vector(Q_VEC), 0);
	vfx_bar_wr(&ma.fx, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	snap_writer_init(&w);
	cr_assert_eq(pci_root_save(ma.fx.root, &w, "pci"), 0);
	cr_assert_eq(virtio_pci_save(ma.vp, &w, "virtio-rng0"), 0);
	machine_down(&ma);
	to_file(&w, f);
	for (int i = 0; i < NVEC; i++)
		atomic_store(&msi_unmasked[i], 0);
}

Test(snap_virtio, rng_round_trip_keeps_working)
{
	struct virtq_used *u = vfx_used(&ma.fx, ring);
	struct snap_file f, g;
	struct snap_writer w;

	busy_machine_saved(&f);
	machine_up(&mb, NULL);
	cr_assert_neq(mb.fx.bar0, MOVED_BAR);
	cr_assert_eq(pci_root_restore(mb.fx.root, &f, "pci", &err), 0, "%s", err.msg);
	cr_assert_eq(virtio_pci_restore(mb.vp, &f, "virtio-rng0", &err), 0, "%s", err.msg);
	/* The BAR is where the guest had moved it, and so are the notify ioeventfds. */
	mb.fx.bar0 = pci_bar_address(virtio_pci_pci(mb.vp), 0);
	cr_assert_eq(mb.fx.bar0, MOVED_BAR);
	cr_assert_eq(nioev, 1);
	cr_assert_eq(ioev[0].addr, MOVED_BAR + VIRTIO_PCI_NOTIFY_OFF);
	cr_assert_eq(vfx_cfg_rd(&mb.fx, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	/* MSI-X: enabled, both routes programmed again with the guest's messages. */
	cr_assert(msix_enabled(virtio_pci_pci(mb.vp)));
	cr_assert_eq(
		vfx_cfg_rd(&mb.fx, vfx_find_cap(&mb.fx, PCI_CAP_ID_MSIX, 0) + MSIX_CAP_CTRL, 2) &
			MSIX_CTRL_ENABLE,
		MSIX_CTRL_ENABLE);
	for (unsigned int v = 0; v < NVEC; v++) {
		cr_assert_gt(atomic_load(&msi_unmasked[v]), 0, "vector %u route", v);
		cr_assert_eq(msi_data[v], 0x40 + v);
		cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v + 8, 4),
			     0x40 + v);
	}
	/* The transport reads as the driver left it. */
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_DFSELECT, 4), 1);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_DF, 4) & 1, 1, "VERSION_1 in word 1");
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_MSIX, 2), CFG_VEC);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_Q_MSIX, 2), Q_VEC);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_Q_DESCLO, 4), DESC_GPA);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_Q_USEDLO, 4), USED_GPA);
	/* Saving again gives the same state. */
	snap_writer_init(&w);
	cr_assert_eq(pci_root_save(mb.fx.root, &w, "pci"), 0);
	cr_assert_eq(virtio_pci_save(mb.vp, &w, "virtio-rng0"), 0);
	cr_assert_eq(snap_save(&w, path, &err), 0);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&g, path, &err), 0);
	assert_same_section(&f, &g, "pci");
	assert_same_section(&f, &g, "virtio-rng0");
	/* A request after restore completes on the next used slot, with an interrupt. */
	offer(&mb, 1, 32, 2);
	kick_at(MOVED_BAR + VIRTIO_PCI_NOTIFY_OFF);
	cr_assert(wait_used(&mb, 2));
	cr_assert_eq(le32toh(u->ring[1].id), 1);
	cr_assert_eq(le32toh(u->ring[1].len), 32);
	cr_assert_gt(wait_vector(Q_VEC), 0);
	snap_close(&f);
	snap_close(&g);
}

/* Offsets in the "virtio-rng0" section (see virtio/pci.c). */
#define VS_STATUS  30
#define VS_Q0_SIZE 33
#define VS_Q0_DESC 38
/* Offsets in the "pci" section: root header, the host bridge, then the rng's config space. */
#define PS_SLOT0_LEN (4 + PCI_CFG_SIZE + PCI_NUM_BARS * 9 + 2)
#define PS_SLOT1_CFG (8 + PS_SLOT0_LEN + 4)
#define PS_SLOT1_BAR (PS_SLOT1_CFG + PCI_CFG_SIZE)

static void restore_refused(struct snap_file *f, int code, const char *what)
{
	machine_up(&mb, NULL);
	cr_assert_eq(pci_root_restore(mb.fx.root, f, "pci", &err), 0, "%s", err.msg);
	cr_assert_eq(virtio_pci_restore(mb.vp, f, "virtio-rng0", &err), code, "%s", err.msg);
	cr_assert(strstr(err.msg, "virtio-rng0") && strstr(err.msg, what), "%s", err.msg);
	/* Reset, not half loaded. */
	mb.fx.bar0 = pci_bar_address(virtio_pci_pci(mb.vp), 0);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_STATUS, 1), 0);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
}

Test(snap_virtio, refuses_queue_size_not_power_of_two)
{
	struct snap_file f;

	busy_machine_saved(&f);
	patch(&f, "virtio-rng0", VS_Q0_SIZE, "\x03\x00", 2, VIRTIO_PCI_STATE_VERSION, "pci");
	restore_refused(&f, -EINVAL, "size 3");
	snap_close(&f);
}

Test(snap_virtio, refuses_ring_outside_ram)
{
	struct snap_file f;
	uint8_t gpa[8];

	busy_machine_saved(&f);
	vfx_put(gpa, 8, RAM - 16);
	patch(&f, "virtio-rng0", VS_Q0_DESC, gpa, 8, VIRTIO_PCI_STATE_VERSION, "pci");
	restore_refused(&f, -EINVAL, "queue 0");
	snap_close(&f);
}

Test(snap_virtio, refuses_bad_status_and_version)
{
	struct snap_file f;

	busy_machine_saved(&f);
	patch(&f, "virtio-rng0", VS_STATUS, "\x05", 1, VIRTIO_PCI_STATE_VERSION, "pci");
	restore_refused(&f, -EINVAL, "device status");
	machine_down(&mb);
	patch(&f, "virtio-rng0", VS_STATUS, "\x0f", 1, 7, "pci");
	machine_up(&mb, NULL);
	cr_assert_eq(virtio_pci_restore(mb.vp, &f, "virtio-rng0", &err), -EPROTO);
	cr_assert(strstr(err.msg, "version 7"), "%s", err.msg);
	snap_close(&f);
}

Test(snap_virtio, refuses_overlapping_bar)
{
	struct snap_file f;
	uint8_t addr[8];
	uint64_t before;

	busy_machine_saved(&f);
	/* Point the BAR at the ECAM window: decoding it there would overlap. */
	vfx_put(addr, 8, LAYOUT_ECAM_BASE | PCI_BAR_MEM_TYPE_64);
	patch(&f, "pci", PS_SLOT1_CFG + PCI_BASE_ADDRESS_0, addr, 8, PCI_STATE_VERSION, NULL);
	vfx_put(addr, 8, LAYOUT_ECAM_BASE);
	patch(&f, "pci", PS_SLOT1_BAR + 1, addr, 8, PCI_STATE_VERSION, NULL);
	machine_up(&mb, NULL);
	before = mb.fx.bar0;
	cr_assert_eq(pci_root_restore(mb.fx.root, &f, "pci", &err), -EINVAL);
	cr_assert(strstr(err.msg, "pci") && strstr(err.msg, "BAR 0"), "%s", err.msg);
	/* Every device as it was: the BAR still decoded where it was assigned. */
	cr_assert_eq(pci_bar_address(virtio_pci_pci(mb.vp), 0), before);
	cr_assert_eq(nioev, 1);
	cr_assert_eq(ioev[0].addr, before + VIRTIO_PCI_NOTIFY_OFF);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	snap_close(&f);
}

Test(snap_virtio, refuses_pci_mismatch_and_bad_msix)
{
	struct snap_file f;
	size_t vec0 = PS_SLOT1_BAR + PCI_NUM_BARS * 9 + 2;

	busy_machine_saved(&f);
	patch(&f, "pci", vec0 + 12, "\x02", 1, PCI_STATE_VERSION, NULL);
	machine_up(&mb, NULL);
	cr_assert_eq(pci_root_restore(mb.fx.root, &f, "pci", &err), -EINVAL);
	cr_assert(strstr(err.msg, "MSI-X vector 0"), "%s", err.msg);
	cr_assert(!msix_enabled(virtio_pci_pci(mb.vp)), "left as created");
	patch(&f, "pci", vec0 + 12, "\x00", 1, PCI_STATE_VERSION, NULL);
	patch(&f, "pci", PS_SLOT1_CFG + PCI_SUBSYSTEM_ID, "\x77", 1, PCI_STATE_VERSION, NULL);
	cr_assert_eq(pci_root_restore(mb.fx.root, &f, "pci", &err), -EINVAL);
	cr_assert(strstr(err.msg, "read-only config byte 0x2e"), "%s", err.msg);
	patch(&f, "pci", 0, "", 0, 2, NULL);
	cr_assert_eq(pci_root_restore(mb.fx.root, &f, "pci", &err), -EPROTO);
	snap_close(&f);
}

/* ---- virtio-balloon: its own fields ride in the transport's section ---- */

Test(snap_virtio, balloon_target_and_actual)
{
	struct virtio_balloon_opts o = {.target = 8 * MiB};
	struct virtio_balloon_stats st;
	struct snap_writer w;
	struct snap_file f;

	machine_down(&ma);
	machine_up(&ma, &o);
	virtio_balloon_set_target(ma.bal, 24 * MiB);
	vfx_bar_wr(&ma.fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4, 1234);
	snap_writer_init(&w);
	cr_assert_eq(virtio_pci_save(ma.vp, &w, "virtio-balloon0"), 0);
	to_file(&w, &f);
	machine_up(&mb, &o);
	cr_assert_eq(virtio_pci_restore(mb.vp, &f, "virtio-balloon0", &err), 0, "%s", err.msg);
	virtio_balloon_get_stats(mb.bal, &st);
	cr_assert_eq(st.num_pages, 24 * MiB / 4096);
	cr_assert_eq(st.actual, 1234);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4),
		     24 * MiB / 4096);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4),
		     1234);
	snap_close(&f);
}

Test(snap_virtio, balloon_state_refused_by_rng)
{
	struct virtio_balloon_opts o = {.target = 8 * MiB};
	struct snap_writer w;
	struct snap_file f;

	machine_down(&ma);
	machine_up(&ma, &o);
	snap_writer_init(&w);
	cr_assert_eq(virtio_pci_save(ma.vp, &w, "dev"), 0);
	to_file(&w, &f);
	machine_up(&mb, NULL);
	cr_assert_eq(virtio_pci_restore(mb.vp, &f, "dev", &err), -EINVAL);
	cr_assert(strstr(err.msg, "queues"), "%s", err.msg);
	snap_close(&f);
}

/* ---- random damage: refused or loaded, never a crash ---- */

/* Restores n copies of section name from f, each with a few random bytes changed. */
static void mutate_and_restore(struct snap_file *f, const char *name, const char *keep, int n,
			       int (*restore)(const struct snap_file *, const char *))
{
	const uint8_t *p;
	size_t len;
	uint8_t *orig;

	payload(f, name, &p, &len);
	orig = malloc(len);
	memcpy(orig, p, len);
	srand(1234);
	for (int i = 0; i < n; i++) {
		size_t off;
		uint8_t v;

		/* Start from the intact section each time, and damage one to three bytes. */
		patch(f, name, 0, orig, len, 1, keep);
		for (int k = 0; k < 1 + rand() % 3; k++) {
			off = (size_t)rand() % len;
			v = (uint8_t)rand();
			patch(f, name, off, &v, 1, 1, keep);
		}
		error_clear(&err);
		restore(f, name);
	}
	patch(f, name, 0, orig, len, 1, keep);
	free(orig);
}

static struct serial *fuzz_serial;

static int fuzz_serial_restore(const struct snap_file *f, const char *name)
{
	return serial_restore(fuzz_serial, f, name, &err);
}

static struct rtc *fuzz_rtc;

static int fuzz_rtc_restore(const struct snap_file *f, const char *name)
{
	return rtc_restore(fuzz_rtc, f, name, &err);
}

Test(snap_legacy, random_damage_is_survived)
{
	struct serial *a = serial_busy();
	struct snap_writer w;
	struct snap_file f;

	fuzz_serial = serial_twin();
	fuzz_rtc = rtc_create(&bus_b, NULL);
	snap_writer_init(&w);
	serial_save(a, &w, "serial0");
	rtc_save(fuzz_rtc, &w, "rtc");
	to_file(&w, &f);
	mutate_and_restore(&f, "serial0", "rtc", 200, fuzz_serial_restore);
	mutate_and_restore(&f, "rtc", "serial0", 200, fuzz_rtc_restore);
	/* Still a UART: scratch register round trip. */
	outb(&bus_b, COM1 + 7, 0x33);
	cr_assert_eq(inb(&bus_b, COM1 + 7), 0x33);
	snap_close(&f);
	serial_destroy(a);
	serial_destroy(fuzz_serial);
	rtc_destroy(fuzz_rtc);
}

static int fuzz_pci_restore(const struct snap_file *f, const char *name)
{
	return pci_root_restore(mb.fx.root, f, name, &err);
}

static int fuzz_virtio_restore(const struct snap_file *f, const char *name)
{
	return virtio_pci_restore(mb.vp, f, name, &err);
}

Test(snap_virtio, random_damage_is_survived)
{
	struct snap_file f;

	busy_machine_saved(&f);
	machine_up(&mb, NULL);
	mutate_and_restore(&f, "virtio-rng0", "pci", 300, fuzz_virtio_restore);
	mutate_and_restore(&f, "pci", "virtio-rng0", 300, fuzz_pci_restore);
	/* The intact state still loads afterwards, into the same twin. */
	cr_assert_eq(pci_root_restore(mb.fx.root, &f, "pci", &err), 0, "%s", err.msg);
	cr_assert_eq(virtio_pci_restore(mb.vp, &f, "virtio-rng0", &err), 0, "%s", err.msg);
	mb.fx.bar0 = pci_bar_address(virtio_pci_pci(mb.vp), 0);
	cr_assert_eq(mb.fx.bar0, MOVED_BAR);
	cr_assert_eq(vfx_bar_rd(&mb.fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
	snap_close(&f);
}
