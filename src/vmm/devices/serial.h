/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SERIAL_H
#define BUNSHIN_VMM_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "chardev.h"
#include "irq.h"
#include "state.h"

/* A 16550A UART (8250 family) as COM ports are on PCs. */
struct serial;

/* out may be NULL (output discarded). Registers 8 ports at base on pio. */
struct serial *serial_create(struct bus *pio, uint16_t base, const struct irq_line *irq,
			     struct chardev *out);
void serial_destroy(struct serial *s);
/* Back to power-on register state (guest reboot). */
void serial_reset(struct serial *s);

/*
 * Input from the backend. Blocks until every byte has been queued for the
 * guest (the receive buffer is larger than the 16-byte FIFO a real 16550
 * has; the guest cannot tell). serial_shutdown() unblocks it.
 */
void serial_receive(struct serial *s, const uint8_t *buf, size_t len);
void serial_shutdown(struct serial *s);

/*
 * Snapshot: every register, the pending interrupt state and the bytes
 * still waiting in the receive buffer. Restore loads a device created
 * with the same configuration and raises the IRQ line if an enabled
 * interrupt is pending.
 */
#define SERIAL_STATE_VERSION 1
int serial_save(struct serial *s, struct snap_writer *w, const char *name);
int serial_restore(struct serial *s, const struct snap_file *f, const char *name,
		   struct error *err);

#endif
