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

/* CPL 0, interrupt handler for VEC_SERIAL. */
void serial_rx_isr(void)
{
	for (int i = 0; i < RX_RING && (inb(COM1 + 5) & 1); i++) {
		rx_ring[rx_head % RX_RING] = inb(COM1);
		rx_head++;
	}
}

void run_serial_echo(void)
{
	uint32_t tail = 0, lines = 0, len = 0;
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
		uint32_t head = rx_head;
		if (tail == head) {
			wait_change(&rx_head, head);
			continue;
		}
		char c = (char)rx_ring[tail % RX_RING];
		tail++;
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
	static uint32_t tail;
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
		uint32_t head = rx_head;
		char c;

		if (tail == head) {
			wait_change(&rx_head, head);
			continue;
		}
		c = (char)rx_ring[tail % RX_RING];
		tail++;
		if (c != '\r' && c != '\n') {
			if (len < max)
				buf[len++] = c;
			continue;
		}
		if (len)
			return len;
	}
}
