// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/vmm/devices/serial.h"

#define COM1 0x3f8
#define RBR  (COM1 + 0)
#define THR  (COM1 + 0)
#define DLL  (COM1 + 0)
#define IER  (COM1 + 1)
#define DLM  (COM1 + 1)
#define IIR  (COM1 + 2)
#define FCR  (COM1 + 2)
#define LCR  (COM1 + 3)
#define MCR  (COM1 + 4)
#define LSR  (COM1 + 5)
#define MSR  (COM1 + 6)
#define SCR  (COM1 + 7)

/* Records what the UART does with its interrupt line. */
struct fake_irq {
	int level;
	int raises;
	unsigned int gsi;
};

static void fake_set_level(void *ctx, unsigned int gsi, int level)
{
	struct fake_irq *f = ctx;

	if (level && !f->level)
		f->raises++;
	f->level = level;
	f->gsi = gsi;
}

static struct bus bus;
static struct fake_irq irq;
static struct serial *uart;

static void outb(uint16_t port, uint8_t v)
{
	cr_assert(bus_write(&bus, port, &v, 1));
}

static uint8_t inb(uint16_t port)
{
	uint8_t v;

	cr_assert(bus_read(&bus, port, &v, 1));
	return v;
}

static void setup_with(struct chardev *out)
{
	struct irq_line line = {.set_level = fake_set_level, .ctx = &irq, .gsi = 4};

	memset(&irq, 0, sizeof(irq));
	bus_init(&bus, "pio");
	uart = serial_create(&bus, COM1, &line, out);
	cr_assert_not_null(uart);
}

static void setup(void)
{
	setup_with(NULL);
}

static void teardown(void)
{
	serial_shutdown(uart);
	serial_destroy(uart);
	bus_destroy(&bus);
}

TestSuite(serial, .init = setup, .fini = teardown);

Test(serial, reset_state)
{
	cr_assert_eq(inb(IER), 0);
	cr_assert_eq(inb(IIR), 0x01);
	cr_assert_eq(inb(LSR), 0x60, "THR empty and transmitter idle");
	cr_assert_eq(inb(MSR) & 0xf0, 0xb0, "a modem is attached: DCD, DSR, CTS");
	cr_assert_eq(irq.level, 0);
	cr_assert_eq(bus.nranges, 1);
	cr_assert(bus_read(&bus, COM1 + 7, (uint8_t[1]){0}, 1));
	cr_assert_not(bus_read(&bus, COM1 + 8, (uint8_t[1]){0}, 1));
}

Test(serial, guest_reboot_resets_registers_but_keeps_input)
{
	serial_receive(uart, (const uint8_t *)"k", 1);
	outb(LCR, 0x83); /* DLAB, 8 bits */
	outb(DLL, 0x01);
	outb(LCR, 0x03);
	outb(IER, 0x0f);
	outb(MCR, 0x1f);
	outb(SCR, 0xa5);
	serial_reset(uart);
	cr_assert_eq(inb(IER), 0);
	cr_assert_eq(inb(LCR), 0);
	cr_assert_eq(inb(MCR), 0);
	cr_assert_eq(inb(SCR), 0);
	outb(LCR, 0x80);
	cr_assert_eq(inb(DLL), 0x0c, "divisor back to 9600 baud");
	outb(LCR, 0x03);
	cr_assert_eq(inb(LSR) & 0x61, 0x61, "THR empty, idle, and the typed byte still there");
	cr_assert_eq(inb(RBR), 'k');
}

Test(serial, scratch_register)
{
	outb(SCR, 0xa5);
	cr_assert_eq(inb(SCR), 0xa5);
	outb(SCR, 0x5a);
	cr_assert_eq(inb(SCR), 0x5a);
}

Test(serial, divisor_latch)
{
	outb(IER, 0x05);
	outb(LCR, 0x83); /* DLAB, 8N1 */
	outb(DLL, 0x01);
	outb(DLM, 0x02);
	cr_assert_eq(inb(DLL), 0x01);
	cr_assert_eq(inb(DLM), 0x02);
	outb(LCR, 0x03);
	cr_assert_eq(inb(LCR), 0x03);
	cr_assert_eq(inb(IER), 0x05, "DLM writes must not reach IER");
	outb(LCR, 0x83);
	cr_assert_eq(inb(DLL), 0x01, "the divisor survives DLAB toggles");
	outb(LCR, 0x03);
}

Test(serial, ier_holds_four_bits)
{
	/* Linux's probe: IER=0 reads 0, IER=0x0f reads 0x0f, high bits stay 0. */
	outb(IER, 0);
	cr_assert_eq(inb(IER) & 0x0f, 0);
	outb(IER, 0xff);
	cr_assert_eq(inb(IER), 0x0f);
	outb(IER, 0);
}

Test(serial, fifo_bits_in_iir)
{
	outb(FCR, 0x01);
	cr_assert_eq(inb(IIR) & 0xc0, 0xc0, "a 16550A reports working FIFOs");
	outb(FCR, 0x00);
	cr_assert_eq(inb(IIR) & 0xc0, 0x00);
	/* No EFR (16650) and no 64-byte FIFO (16750): IIR is never 0 and bit 5 stays clear. */
	outb(FCR, 0x21);
	outb(LCR, 0xbf);
	cr_assert_neq(inb(IIR), 0);
	outb(LCR, 0x03);
	cr_assert_eq(inb(IIR) & 0x20, 0);
	cr_assert_eq(inb(MCR) & 0xe0, 0);
}

Test(serial, thre_interrupt_on_etbei_enable)
{
	outb(IER, 0x02);
	cr_assert_eq(irq.level, 1, "enabling ETBEI with THR empty interrupts at once");
	cr_assert_eq(irq.gsi, 4);
	cr_assert_eq(inb(IIR), 0x02);
	cr_assert_eq(irq.level, 0, "reading IIR acknowledges THRE");
	cr_assert_eq(inb(IIR), 0x01);

	/* Linux's THRE re-assert test: toggling ETBEI interrupts again. */
	outb(IER, 0x00);
	outb(IER, 0x02);
	cr_assert_eq(inb(IIR), 0x02);
	cr_assert_eq(irq.raises, 2);

	/* Rewriting IER with ETBEI already set is not a new edge. */
	outb(IER, 0x02);
	cr_assert_eq(inb(IIR), 0x01);
}

Test(serial, thr_write_rearms_thre)
{
	outb(IER, 0x02);
	cr_assert_eq(irq.raises, 1);
	outb(THR, 'a');
	cr_assert_eq(irq.level, 1);
	cr_assert_eq(irq.raises, 2, "each transmitted byte is a fresh edge");
	cr_assert_eq(inb(LSR) & 0x60, 0x60);
	outb(IER, 0);
	cr_assert_eq(irq.level, 0, "disabling ETBEI drops the line");
	cr_assert_eq(inb(IIR), 0x01);
}

Test(serial, rx_interrupt_and_data_ready)
{
	serial_receive(uart, (const uint8_t *)"ab", 2);
	cr_assert_eq(inb(LSR) & 0x01, 0x01);
	cr_assert_eq(irq.level, 0, "no interrupt while ERBFI is off");
	outb(IER, 0x01);
	cr_assert_eq(irq.level, 1);
	cr_assert_eq(inb(IIR), 0x04);
	cr_assert_eq(inb(RBR), 'a');
	cr_assert_eq(irq.level, 1);
	cr_assert_eq(inb(RBR), 'b');
	cr_assert_eq(inb(LSR) & 0x01, 0);
	cr_assert_eq(irq.level, 0);
	cr_assert_eq(inb(IIR), 0x01);
	cr_assert_eq(inb(RBR), 'b', "an empty RBR shows the last byte again");
}

Test(serial, iir_priorities)
{
	/* Line status beats RX data beats THRE beats modem status. */
	outb(MCR, 0x10); /* loopback, to make an overrun */
	outb(FCR, 0x01);
	outb(IER, 0x0f);
	cr_assert_eq(inb(IIR), 0xc2, "THRE is the only one so far");
	for (int i = 0; i < 5000; i++)
		outb(THR, (uint8_t)i);
	outb(MCR, 0x12); /* RTS -> CTS changes in loopback: DCTS */
	cr_assert_eq(inb(IIR), 0xc6, "overrun: line status first");
	cr_assert_eq(inb(LSR) & 0x03, 0x03, "OE and DR");
	cr_assert_eq(inb(LSR) & 0x02, 0, "reading LSR clears OE");
	cr_assert_eq(inb(IIR), 0xc4, "then received data");
	while (inb(LSR) & 0x01)
		inb(RBR);
	cr_assert_eq(inb(IIR), 0xc2, "then THRE");
	cr_assert_eq(inb(IIR), 0xc0, "then modem status");
	cr_assert_eq(inb(MSR) & 0x01, 0x01, "DCTS");
	cr_assert_eq(inb(MSR) & 0x0f, 0, "deltas clear on read");
	cr_assert_eq(inb(IIR), 0xc1, "reading MSR clears it");
	cr_assert_eq(irq.level, 0);
}

Test(serial, loopback)
{
	outb(MCR, 0x10);
	outb(THR, 'x');
	cr_assert_eq(inb(LSR) & 0x01, 0x01);
	cr_assert_eq(inb(RBR), 'x');
	/* Linux's probe: LOOP|OUT2|RTS must read back as DCD|CTS. */
	outb(MCR, 0x1a);
	cr_assert_eq(inb(MSR) & 0xf0, 0x90);
	outb(MCR, 0x15); /* DTR, OUT1 -> DSR, RI */
	cr_assert_eq(inb(MSR) & 0xf0, 0x60);
	outb(MCR, 0x10);
	cr_assert_eq(inb(MSR) & 0x04, 0x04, "RI trailing edge");
	outb(MCR, 0x00);
	cr_assert_eq(inb(MSR) & 0xf0, 0xb0);
	/* Input from the line does not reach the receiver in loopback. */
	outb(MCR, 0x10);
	serial_receive(uart, (const uint8_t *)"zz", 2);
	cr_assert_eq(inb(LSR) & 0x01, 0);
}

Test(serial, fcr_clears_receive_buffer)
{
	serial_receive(uart, (const uint8_t *)"abc", 3);
	outb(FCR, 0x07);
	cr_assert_eq(inb(LSR) & 0x01, 0);
	serial_receive(uart, (const uint8_t *)"d", 1);
	cr_assert_eq(inb(RBR), 'd');
}

Test(serial, wide_access_is_split_into_bytes)
{
	uint8_t w[2] = {0x03, 0x00}, r[2];

	/* outw to LCR/MCR, inw from LCR/MCR */
	cr_assert(bus_write(&bus, LCR, w, 2));
	cr_assert(bus_read(&bus, LCR, r, 2));
	cr_assert_eq(r[0], 0x03);
	cr_assert_eq(r[1], 0x00);
}

struct receiver {
	const uint8_t *buf;
	size_t len;
	volatile bool done;
};

static void *receiver_main(void *arg)
{
	struct receiver *r = arg;

	serial_receive(uart, r->buf, r->len);
	r->done = true;
	return NULL;
}

Test(serial, receive_blocks_until_queued)
{
	static uint8_t data[10000];
	struct receiver r = {.buf = data, .len = sizeof(data)};
	pthread_t t;
	size_t got = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	cr_assert_eq(pthread_create(&t, NULL, receiver_main, &r), 0);
	usleep(50000);
	cr_assert_not(r.done, "10000 bytes do not fit: the sender waits for the guest");
	/* The guest drains in order; the sender finishes once the rest fits. */
	while (got < sizeof(data)) {
		if (!(inb(LSR) & 0x01)) {
			usleep(100);
			continue;
		}
		cr_assert_eq(inb(RBR), data[got], "byte %zu", got);
		got++;
	}
	pthread_join(t, NULL);
	cr_assert(r.done);
}

Test(serial, shutdown_releases_receiver)
{
	static uint8_t data[10000];
	struct receiver r = {.buf = data, .len = sizeof(data)};
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, receiver_main, &r), 0);
	usleep(20000);
	cr_assert_not(r.done);
	serial_shutdown(uart);
	pthread_join(t, NULL);
	cr_assert(r.done);
	/* After shutdown, input returns at once. */
	serial_receive(uart, data, sizeof(data));
}

/* A FIFO stands in for the pipe a console is usually read through. */
Test(serial_pipe, output_reaches_pipe_chardev)
{
	char dir[] = "/tmp/bunshin-serial-XXXXXX", path[64], spec[80], buf[64];
	struct chardev *c;
	struct error err;
	int rfd;
	ssize_t n;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	rfd = open(path, O_RDONLY | O_NONBLOCK);
	cr_assert_geq(rfd, 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	cr_assert_eq(chardev_open(spec, &c, &err), 0, "%s", err.msg);
	setup_with(c);

	for (const char *p = "hello\r\n"; *p; p++) {
		while (!(inb(LSR) & 0x20))
			;
		outb(THR, (uint8_t)*p);
	}
	n = read(rfd, buf, sizeof(buf));
	cr_assert_eq(n, 7);
	cr_assert_eq(memcmp(buf, "hello\r\n", 7), 0);

	/* Loopback output never reaches the backend. */
	outb(MCR, 0x10);
	outb(THR, 'q');
	cr_assert_eq(read(rfd, buf, sizeof(buf)), -1);
	cr_assert_eq(chardev_dropped(c), 0);

	teardown();
	chardev_close(c);
	close(rfd);
	unlink(path);
	rmdir(dir);
}

/* The sequence Linux's 8250 driver runs in autoconfig(), in order. */
Test(serial, linux_autoconfig_probe)
{
	uint8_t scratch, scratch2, scratch3, status1;

	scratch = inb(IER);
	outb(IER, 0);
	scratch2 = inb(IER) & 0x0f;
	outb(IER, 0x0f);
	scratch3 = inb(IER) & 0x0f;
	outb(IER, scratch);
	cr_assert_eq(scratch2, 0);
	cr_assert_eq(scratch3, 0x0f);

	outb(MCR, 0x10 | 0x0a);
	status1 = inb(MSR) & 0xf0;
	outb(MCR, 0);
	cr_assert_eq(status1, 0x90, "loopback test");

	outb(LCR, 0xbf);
	outb(FCR, 0); /* EFR = 0 in config mode: harmless here */
	outb(LCR, 0);
	outb(FCR, 0x01);
	cr_assert_eq(inb(IIR) >> 6, 3, "16550A");
}

/*
 * What the test guest's receive handler relies on (guest/serial_echo.c):
 * the line stays up, with no new edge, for as long as data is held, IIR
 * keeps saying so; the next edge comes only once the buffer was drained
 * and data arrives again, or when ERBFI is turned off and on with data
 * still there.
 */
Test(serial, held_data_keeps_one_edge)
{
	outb(IER, 0x01);
	serial_receive(uart, (const uint8_t *)"abc", 3);
	cr_assert_eq(irq.raises, 1);
	cr_assert_eq(inb(RBR), 'a');
	serial_receive(uart, (const uint8_t *)"de", 2);
	cr_assert_eq(irq.level, 1);
	cr_assert_eq(irq.raises, 1, "no new edge while the line is up");
	cr_assert_eq(inb(IIR), 0x04, "data available, for as long as there is some");
	outb(IER, 0x00);
	cr_assert_eq(irq.level, 0);
	outb(IER, 0x01);
	cr_assert_eq(irq.raises, 2, "ERBFI off and on with data held is a new edge");
	for (const char *p = "bcde"; *p; p++)
		cr_assert_eq(inb(RBR), *p);
	cr_assert_eq(irq.level, 0);
	cr_assert_eq(inb(IIR), 0x01);
	serial_receive(uart, (const uint8_t *)"f", 1);
	cr_assert_eq(irq.raises, 3);
}
