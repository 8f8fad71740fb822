/* SPDX-License-Identifier: MIT */
/*
 * test=serial-echo: interrupt-driven serial input. The UART's receive
 * interrupt (IER bit 0) is routed from ISA IRQ4 through the IOAPIC; the
 * CPL-0 handler drains the UART into a ring, and the CPL-3 loop halts (a
 * system call) until the ring has data.
 *   BUNSHIN-TEST name=serial-echo result=ready
 *   ECHO: <line>                  (each non-empty line received)
 *   BUNSHIN-TEST name=serial-echo result=pass lines=N   (on "quit")
 */
#include "guest.h"

#define COM1	 0x3f8
#define RX_RING	 4096
#define LINE_MAX 256

static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head; /* written by the interrupt handler */
static volatile uint32_t rx_tail; /* written by the reader */
static volatile bool rx_full;	  /* the handler left bytes in the UART: no room */

/*
 * CPL 0, interrupt handler for VEC_SERIAL. ISA IRQ4 is edge-triggered and
 * the UART keeps its line up while it holds data, so a handler that
 * returned with data left would never get another edge: it drains until
 * LSR.DR is clear (as Linux's 8250 driver does). Only a full ring stops it
 * early; the reader then asks for a new edge (serial_rx_room()).
 */
void serial_rx_isr(void)
{
	while (inb(COM1 + 5) & 1) {
		if (rx_head - rx_tail >= RX_RING) {
			rx_full = true;
			return;
		}
		rx_ring[rx_head % RX_RING] = inb(COM1);
		rx_head++;
	}
}

/*
 * After the reader took a byte: if the handler stopped on a full ring,
 * IER off and on again drops the UART's line and raises it while data is
 * still there, the edge that runs the handler again.
 */
static void serial_rx_room(void)
{
	if (!rx_full)
		return;
	rx_full = false;
	outb(COM1 + 1, 0x00);
	outb(COM1 + 1, 0x01);
}

/* The next received byte, halting until there is one. */
static char serial_rx_byte(void)
{
	uint32_t head;
	char c;

	while ((head = rx_head) == rx_tail)
		wait_change(&rx_head, head);
	c = (char)rx_ring[rx_tail % RX_RING];
	rx_tail++;
	serial_rx_room();
	return c;
}

void run_serial_echo(void)
{
	uint32_t lines = 0, len = 0;
	char buf[LINE_MAX];
	struct line l;

	lapic_enable();
	if (!ioapic_route_isa(4, VEC_SERIAL, cpu_apic_id()))
		fail_and_poweroff("serial-echo", "no-ioapic-pin");
	outb(COM1 + 1, 0x01); /* IER: received data available */

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=serial-echo result=ready");
	line_emit(&l);

	for (;;) {
		char c = serial_rx_byte();

		if (c != '\r' && c != '\n') {
			if (len < LINE_MAX)
				buf[len++] = c;
			continue;
		}
		if (len == 0)
			continue;
		if (len == 4 && memcmp(buf, "quit", 4) == 0)
			break;
		line_init(&l);
		line_str(&l, "ECHO: ");
		line_strn(&l, buf, len);
		line_emit(&l);
		lines++;
		len = 0;
	}
	outb(COM1 + 1, 0x00);
	ioapic_mask_isa(4);

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=serial-echo result=pass");
	line_kv_dec(&l, "lines", lines);
	line_emit(&l);
}

/*
 * For scenarios that take orders from the host after they started (e.g.
 * after a snapshot was restored): the same ring, one line at a time.
 */
uint32_t serial_read_line(char *buf, uint32_t max)
{
	static bool routed;
	uint32_t len = 0;

	if (!routed) {
		lapic_enable();
		if (!ioapic_route_isa(4, VEC_SERIAL, cpu_apic_id()))
			return 0;
		outb(COM1 + 1, 0x01);
		routed = true;
	}
	for (;;) {
		char c = serial_rx_byte();

		if (c != '\r' && c != '\n') {
			if (len < max)
				buf[len++] = c;
			continue;
		}
		if (len)
			return len;
	}
}
