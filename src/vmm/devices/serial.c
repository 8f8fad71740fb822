// SPDX-License-Identifier: MIT
/*
 * 16550A UART. Transmission is instantaneous: THR is always empty again by
 * the time the guest can look, so LSR.THRE/TEMT always read 1 and a THRE
 * interrupt is re-armed right after each byte. Received bytes wait in a
 * buffer much larger than the real 16-byte FIFO, so input never overruns.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "serial.h"

#define SERIAL_NPORTS  8
#define SERIAL_RX_SIZE 4096

/* Register offsets (DLAB=1 turns 0/1 into the divisor latch). */
#define UART_RX	 0 /* RBR (read), THR (write), DLL */
#define UART_IER 1 /* IER, DLM */
#define UART_IIR 2 /* IIR (read), FCR (write) */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK  0x0f

#define IIR_NONE  0x01
#define IIR_MSI	  0x00
#define IIR_THRI  0x02
#define IIR_RDI	  0x04
#define IIR_RLSI  0x06
#define IIR_FIFOS 0xc0 /* both bits set: a 16550A with working FIFOs */

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_KEEP     0xc9 /* enable, DMA mode, trigger level */

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR	     0x01
#define LSR_OE	     0x02
#define LSR_INT_ERRS 0x1e /* OE, PE, FE, BI: what raises a line status interrupt */
#define LSR_THRE     0x20
#define LSR_TEMT     0x40

#define MSR_DCTS   0x01
#define MSR_DDSR   0x02
#define MSR_TERI   0x04
#define MSR_DDCD   0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS	   0x10
#define MSR_DSR	   0x20
#define MSR_RI	   0x40
#define MSR_DCD	   0x80

struct serial {
	pthread_mutex_t lock;
	pthread_cond_t room; /* the receive buffer drained, or shutdown */
	struct bus *pio;
	uint16_t base;
	struct irq_line irq;
	bool irq_level; /* what the line was last set to */
	struct chardev *out;

	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	uint8_t lsr_errs;   /* OE, sticky until LSR is read */
	uint8_t msr_deltas; /* sticky until MSR is read */
	uint8_t rbr;	    /* last byte read, what an empty RBR shows again */
	bool thri_pending;
	bool shutdown;

	uint8_t rx[SERIAL_RX_SIZE];
	size_t rx_head, rx_count;
};

/* The interrupt the IIR reports now, highest priority first (8250 datasheet). */
static uint8_t serial_iir_id(const struct serial *s)
{
	if ((s->ier & IER_ELSI) && (s->lsr_errs & LSR_INT_ERRS))
		return IIR_RLSI;
	if ((s->ier & IER_ERBFI) && s->rx_count)
		return IIR_RDI;
	if ((s->ier & IER_ETBEI) && s->thri_pending)
		return IIR_THRI;
	if ((s->ier & IER_EDSSI) && s->msr_deltas)
		return IIR_MSI;
	return IIR_NONE;
}

/*
 * The line follows "some enabled interrupt is pending". Only changes are
 * sent: the IOAPIC pin is edge-triggered, and a repeated raise would be a
 * spurious interrupt.
 */
static void serial_update_irq(struct serial *s)
{
	bool level = serial_iir_id(s) != IIR_NONE;

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	irq_line_set(&s->irq, level);
}

static void rx_clear(struct serial *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
	pthread_cond_broadcast(&s->room);
}

static size_t rx_push(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	while (n < len && s->rx_count < SERIAL_RX_SIZE) {
		s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_SIZE] = buf[n++];
		s->rx_count++;
	}
	return n;
}

static uint8_t rx_pop(struct serial *s)
{
	if (!s->rx_count)
		return s->rbr;
	s->rbr = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_SIZE;
	s->rx_count--;
	pthread_cond_broadcast(&s->room);
	return s->rbr;
}

/*
 * Modem status inputs. In loopback the outputs feed the inputs (RTS->CTS,
 * DTR->DSR, OUT1->RI, OUT2->DCD); otherwise a modem is always there.
 */
static uint8_t serial_msr_status(const struct serial *s)
{
	uint8_t m = s->mcr;

	if (!(m & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	return (m & MCR_RTS ? MSR_CTS : 0) | (m & MCR_DTR ? MSR_DSR : 0) |
	       (m & MCR_OUT1 ? MSR_RI : 0) | (m & MCR_OUT2 ? MSR_DCD : 0);
}

static void serial_write_mcr(struct serial *s, uint8_t v)
{
	uint8_t before = serial_msr_status(s), after, changed;

	s->mcr = v & MCR_MASK;
	after = serial_msr_status(s);
	changed = before ^ after;
	if (changed & MSR_CTS)
		s->msr_deltas |= MSR_DCTS;
	if (changed & MSR_DSR)
		s->msr_deltas |= MSR_DDSR;
	if (changed & MSR_DCD)
		s->msr_deltas |= MSR_DDCD;
	if ((before & MSR_RI) && !(after & MSR_RI))
		s->msr_deltas |= MSR_TERI; /* trailing edge only */
}

/* Returns true if v must go out to the backend (outside the lock). */
static bool serial_write_thr(struct serial *s, uint8_t v)
{
	bool emit = false;

	/* Writing THR clears the THRE interrupt... */
	s->thri_pending = false;
	serial_update_irq(s);
	if (s->mcr & MCR_LOOP) {
		if (!rx_push(s, &v, 1))
			s->lsr_errs |= LSR_OE;
	} else {
		emit = true;
	}
	/* ...and the byte is gone at once, so THR is empty and it fires again. */
	if (s->ier & IER_ETBEI)
		s->thri_pending = true;
	return emit;
}

static void serial_write_ier(struct serial *s, uint8_t v)
{
	uint8_t old = s->ier;

	s->ier = v & IER_MASK;
	/* Enabling ETBEI while THR is empty (it always is) raises THRE at once. */
	if (!(old & IER_ETBEI) && (s->ier & IER_ETBEI))
		s->thri_pending = true;
	if (!(s->ier & IER_ETBEI))
		s->thri_pending = false;
}

static void serial_write_fcr(struct serial *s, uint8_t v)
{
	/* Toggling FIFO enable resets the FIFOs, as does the clear bit. */
	if (((v ^ s->fcr) & FCR_ENABLE) || (v & FCR_CLEAR_RX))
		rx_clear(s);
	/* The other FCR bits only take when the FIFOs are enabled. */
	s->fcr = (v & FCR_ENABLE) ? (v & FCR_KEEP) : 0;
}

static bool serial_write_reg(struct serial *s, unsigned int reg, uint8_t v)
{
	bool dlab = s->lcr & LCR_DLAB;

	switch (reg) {
	case UART_RX:
		if (dlab)
			s->dll = v;
		else
			return serial_write_thr(s, v);
		break;
	case UART_IER:
		if (dlab)
			s->dlm = v;
		else
			serial_write_ier(s, v);
		break;
	case UART_IIR:
		serial_write_fcr(s, v);
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		serial_write_mcr(s, v);
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only (LSR writes are a factory test mode) */
		break;
	}
	return false;
}

static uint8_t serial_read_iir(struct serial *s)
{
	uint8_t id = serial_iir_id(s);

	/* Reading IIR while it reports THRE is what acknowledges THRE. */
	if (id == IIR_THRI)
		s->thri_pending = false;
	return id | ((s->fcr & FCR_ENABLE) ? IIR_FIFOS : 0);
}

static uint8_t serial_read_lsr(struct serial *s)
{
	uint8_t v = LSR_THRE | LSR_TEMT | s->lsr_errs | (s->rx_count ? LSR_DR : 0);

	s->lsr_errs = 0;
	return v;
}

static uint8_t serial_read_msr(struct serial *s)
{
	uint8_t v = serial_msr_status(s) | s->msr_deltas;

	s->msr_deltas = 0;
	return v;
}

static uint8_t serial_read_reg(struct serial *s, unsigned int reg)
{
	bool dlab = s->lcr & LCR_DLAB;

	switch (reg) {
	case UART_RX:
		return dlab ? s->dll : rx_pop(s);
	case UART_IER:
		return dlab ? s->dlm : s->ier;
	case UART_IIR:
		return serial_read_iir(s);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return serial_read_lsr(s);
	case UART_MSR:
		return serial_read_msr(s);
	default:
		return s->scr;
	}
}

/* A wide access is split into byte cycles, as the ISA bus does for an 8-bit device. */
static void serial_bus_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < len; i++)
		data[i] = serial_read_reg(s, (unsigned int)(offset + i));
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_bus_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct serial *s = opaque;
	uint8_t out[SERIAL_NPORTS];
	size_t nout = 0;

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < len; i++) {
		if (serial_write_reg(s, (unsigned int)(offset + i), data[i]))
			out[nout++] = data[i];
		serial_update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
	/* The backend may wait briefly for a slow reader; not with the UART locked. */
	if (nout)
		chardev_write(s->out, out, nout);
}

static const struct bus_ops serial_ops = {
	.read = serial_bus_read,
	.write = serial_bus_write,
};

/* Power-on register values. */
static void serial_reset_regs(struct serial *s)
{
	s->ier = 0;
	s->lcr = 0;
	s->mcr = 0;
	s->fcr = 0;
	s->dll = 0x0c; /* 9600 baud */
	s->dlm = 0;
	s->scr = 0;
	s->lsr_errs = 0;
	s->msr_deltas = 0;
	s->thri_pending = false;
}

struct serial *serial_create(struct bus *pio, uint16_t base, const struct irq_line *irq,
			     struct chardev *out)
{
	struct serial *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->room, NULL);
	s->pio = pio;
	s->base = base;
	if (irq)
		s->irq = *irq;
	s->out = out;
	serial_reset_regs(s);
	ret = bus_register(pio, base, SERIAL_NPORTS, &serial_ops, s, "serial");
	if (ret) {
		log_error("serial at 0x%x: cannot claim ports: %s", base, strerror(-ret));
		pthread_cond_destroy(&s->room);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	return s;
}

/*
 * Bytes already received stay queued: they model the line, not the 16-byte
 * FIFO, and dropping them would lose what a user typed while the guest
 * rebooted.
 */
void serial_reset(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	serial_reset_regs(s);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	bus_unregister(s->pio, s->base);
	pthread_cond_destroy(&s->room);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&s->lock);
	while (len && !s->shutdown) {
		size_t n;

		/* In loopback the receiver is cut off from the line: input is lost. */
		if (s->mcr & MCR_LOOP)
			break;
		n = rx_push(s, buf, len);
		buf += n;
		len -= n;
		if (n)
			serial_update_irq(s);
		if (len)
			pthread_cond_wait(&s->room, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
}

void serial_shutdown(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	s->shutdown = true;
	pthread_cond_broadcast(&s->room);
	pthread_mutex_unlock(&s->lock);
}

/* ---- snapshot ---- */

struct serial_state {
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm, lsr_errs, msr_deltas, rbr;
	uint8_t thri_pending;
	uint16_t rx_count;
	uint8_t rx[SERIAL_RX_SIZE]; /* oldest first */
};

int serial_save(struct serial *s, struct snap_writer *w, const char *name)
{
	pthread_mutex_lock(&s->lock);
	snap_begin(w, name, SERIAL_STATE_VERSION);
	snap_put_u8(w, s->ier);
	snap_put_u8(w, s->lcr);
	snap_put_u8(w, s->mcr);
	snap_put_u8(w, s->scr);
	snap_put_u8(w, s->fcr);
	snap_put_u8(w, s->dll);
	snap_put_u8(w, s->dlm);
	snap_put_u8(w, s->lsr_errs);
	snap_put_u8(w, s->msr_deltas);
	snap_put_u8(w, s->rbr);
	snap_put_u8(w, s->thri_pending);
	/* The ring is written oldest byte first, so the layout does not depend on rx_head. */
	snap_put_u16(w, (uint16_t)s->rx_count);
	for (size_t i = 0; i < s->rx_count; i++)
		snap_put_u8(w, s->rx[(s->rx_head + i) % SERIAL_RX_SIZE]);
	snap_end(w);
	pthread_mutex_unlock(&s->lock);
	return w->failed ? -ENOMEM : 0;
}

static void serial_state_read(struct snap_section *sec, struct serial_state *st)
{
	st->ier = snap_get_u8(sec);
	st->lcr = snap_get_u8(sec);
	st->mcr = snap_get_u8(sec);
	st->scr = snap_get_u8(sec);
	st->fcr = snap_get_u8(sec);
	st->dll = snap_get_u8(sec);
	st->dlm = snap_get_u8(sec);
	st->lsr_errs = snap_get_u8(sec);
	st->msr_deltas = snap_get_u8(sec);
	st->rbr = snap_get_u8(sec);
	st->thri_pending = snap_get_u8(sec);
	st->rx_count = snap_get_u16(sec);
	if (st->rx_count <= SERIAL_RX_SIZE)
		snap_get_bytes(sec, st->rx, st->rx_count);
}

/* Only states the registers themselves can reach. */
static int serial_state_check(const struct serial_state *st, const char *name, struct error *err)
{
	if (st->ier & ~IER_MASK)
		return state_bad(err, name, "IER", st->ier);
	if (st->mcr & ~MCR_MASK)
		return state_bad(err, name, "MCR", st->mcr);
	if (st->fcr && (st->fcr & ~FCR_KEEP || !(st->fcr & FCR_ENABLE)))
		return state_bad(err, name, "FCR", st->fcr);
	if (st->lsr_errs & ~LSR_INT_ERRS)
		return state_bad(err, name, "LSR error bits", st->lsr_errs);
	if (st->msr_deltas & ~MSR_DELTAS)
		return state_bad(err, name, "MSR delta bits", st->msr_deltas);
	if (st->thri_pending > 1 || (st->thri_pending && !(st->ier & IER_ETBEI)))
		return state_bad(err, name, "THRE pending", st->thri_pending);
	if (st->rx_count > SERIAL_RX_SIZE)
		return state_bad(err, name, "receive buffer length", st->rx_count);
	return 0;
}

/*
 * The restored bytes come first; bytes that reached the new backend before
 * the restore (a client that connected and typed at once) follow them, as
 * many as fit, rather than being lost.
 */
static void serial_rx_merge(struct serial *s, struct serial_state *st)
{
	size_t kept = 0;

	while (kept < s->rx_count && st->rx_count < SERIAL_RX_SIZE) {
		st->rx[st->rx_count++] = s->rx[(s->rx_head + kept) % SERIAL_RX_SIZE];
		kept++;
	}
	if (kept < s->rx_count)
		log_warn("serial: %zu input bytes dropped at restore (buffer full)",
			 s->rx_count - kept);
}

static void serial_state_apply(struct serial *s, struct serial_state *st)
{
	s->ier = st->ier;
	s->lcr = st->lcr;
	s->mcr = st->mcr;
	s->scr = st->scr;
	s->fcr = st->fcr;
	s->dll = st->dll;
	s->dlm = st->dlm;
	s->lsr_errs = st->lsr_errs;
	s->msr_deltas = st->msr_deltas;
	s->rbr = st->rbr;
	s->thri_pending = st->thri_pending;
	serial_rx_merge(s, st);
	memcpy(s->rx, st->rx, st->rx_count);
	s->rx_head = 0;
	s->rx_count = st->rx_count;
	pthread_cond_broadcast(&s->room);
}

int serial_restore(struct serial *s, const struct snap_file *f, const char *name, struct error *err)
{
	struct serial_state *st = calloc(1, sizeof(*st));
	struct snap_section sec;
	int ret;

	if (!st)
		return error_set(err, ENOMEM, "state section '%s': out of memory", name);
	ret = state_open(f, name, SERIAL_STATE_VERSION, &sec, err);
	if (!ret) {
		serial_state_read(&sec, st);
		ret = serial_state_check(st, name, err);
	}
	if (!ret)
		ret = snap_section_done(&sec, err);
	if (!ret) {
		pthread_mutex_lock(&s->lock);
		serial_state_apply(s, st);
		/* The line is driven from the restored state: a pending interrupt is raised. */
		serial_update_irq(s);
		pthread_mutex_unlock(&s->lock);
	}
	free(st);
	return ret;
}
