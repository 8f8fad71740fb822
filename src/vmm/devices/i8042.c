// SPDX-License-Identifier: MIT
/*
 * i8042 keyboard controller with a keyboard that answers commands and types
 * only Ctrl-Alt-Del (for the control API), and no AUX (mouse) port. Its
 * real job here is the reset line: command 0xfe (reboot=kbd) and
 * output-port writes with bit 0 clear.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "../layout.h"
#include "legacy.h"

#define STR_OBF	     0x01 /* output buffer full */
#define STR_SYS	     0x04 /* system flag: POST passed */
#define STR_CMD	     0x08 /* last write went to the command port */
#define STR_UNLOCKED 0x10 /* keyboard not inhibited */

#define CTR_KBDINT 0x01
#define CTR_SYS	   0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE  0x40

#define OUT_RESET 0x01 /* active low: 0 holds the CPU in reset */
#define OUT_A20	  0x02

/* Controller commands (port 0x64). */
#define CMD_READ_CTR	 0x20
#define CMD_WRITE_CTR	 0x60
#define CMD_AUX_DISABLE	 0xa7
#define CMD_AUX_ENABLE	 0xa8
#define CMD_AUX_TEST	 0xa9
#define CMD_SELF_TEST	 0xaa
#define CMD_KBD_TEST	 0xab
#define CMD_KBD_DISABLE	 0xad
#define CMD_KBD_ENABLE	 0xae
#define CMD_READ_INPUT	 0xc0
#define CMD_READ_OUTPUT	 0xd0
#define CMD_WRITE_OUTPUT 0xd1
#define CMD_WRITE_KBD_OB 0xd2
#define CMD_WRITE_AUX_OB 0xd3
#define CMD_WRITE_AUX	 0xd4
#define CMD_A20_OFF	 0xdd
#define CMD_A20_ON	 0xdf
#define CMD_PULSE_BASE	 0xf0 /* 0xf0-0xff: pulse output bits whose mask bit is 0 */

/* Keyboard commands (port 0x60) and replies. */
#define KBD_SET_LEDS	 0xed
#define KBD_ECHO	 0xee
#define KBD_SCANCODE_SET 0xf0
#define KBD_GET_ID	 0xf2
#define KBD_TYPEMATIC	 0xf3
#define KBD_ENABLE	 0xf4
#define KBD_DISABLE	 0xf5
#define KBD_DEFAULTS	 0xf6
#define KBD_RESEND	 0xfe
#define KBD_RESET	 0xff
#define KBD_ACK		 0xfa
#define KBD_BAT_OK	 0xaa
#define KBD_NAK		 0xfe

#define I8042_QUEUE 16

struct i8042 {
	pthread_mutex_t lock;
	struct bus *pio;
	struct irq_line irq;
	bool irq_level;
	struct power_sink power;

	uint8_t ctr; /* command byte */
	uint8_t outport;
	uint8_t status;	     /* STR_SYS and STR_CMD; OBF comes from the queue */
	uint8_t ctl_pending; /* controller command waiting for its data byte */
	uint8_t kbd_pending; /* keyboard command waiting for its parameter */

	uint8_t queue[I8042_QUEUE]; /* controller output buffer plus keyboard FIFO */
	unsigned int head, count;
	uint8_t last; /* what the data port shows again once empty */
};

static void i8042_set_irq(struct i8042 *k, bool level)
{
	if (level == k->irq_level)
		return;
	k->irq_level = level;
	irq_line_set(&k->irq, level);
}

/* IRQ1 is "output buffer full with keyboard interrupts enabled". */
static void i8042_update_irq(struct i8042 *k)
{
	i8042_set_irq(k, k->count && (k->ctr & CTR_KBDINT));
}

static void i8042_push(struct i8042 *k, uint8_t v)
{
	if (k->count == I8042_QUEUE) {
		log_debug("i8042: output queue full, dropping 0x%02x", v);
		return;
	}
	k->queue[(k->head + k->count) % I8042_QUEUE] = v;
	k->count++;
}

static uint8_t i8042_pop(struct i8042 *k)
{
	if (!k->count)
		return k->last;
	k->last = k->queue[k->head];
	k->head = (k->head + 1) % I8042_QUEUE;
	k->count--;
	return k->last;
}

/*
 * Ctrl, Alt and Delete pressed then released. With translation on (what
 * firmware leaves and Linux keeps) the guest reads scancode set 1, else the
 * keyboard's own set 2.
 */
static const uint8_t kbd_cad_set1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
static const uint8_t kbd_cad_set2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
				       0x71, 0xf0, 0x11, 0xf0, 0x14};

int i8042_ctrl_alt_del(struct i8042 *k)
{
	const uint8_t *keys = kbd_cad_set1;
	size_t n = sizeof(kbd_cad_set1);
	int ret = 0;

	pthread_mutex_lock(&k->lock);
	if (!(k->ctr & CTR_XLATE)) {
		keys = kbd_cad_set2;
		n = sizeof(kbd_cad_set2);
	}
	if (k->ctr & CTR_KBDDIS)
		ret = -EAGAIN;
	else if (I8042_QUEUE - k->count < n)
		ret = -EBUSY; /* never half a key combination */
	for (size_t i = 0; !ret && i < n; i++)
		i8042_push(k, keys[i]);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return ret;
}

/* Parameter byte of a keyboard command (LEDs, typematic, scancode set). */
static void kbd_param(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->kbd_pending;

	k->kbd_pending = 0;
	i8042_push(k, KBD_ACK);
	if (cmd == KBD_SCANCODE_SET && v == 0)
		i8042_push(k, (k->ctr & CTR_XLATE) ? 0x41 : 0x02); /* set 2, as translated */
}

static void kbd_command(struct i8042 *k, uint8_t v)
{
	switch (v) {
	case KBD_RESET:
		i8042_push(k, KBD_ACK);
		i8042_push(k, KBD_BAT_OK);
		break;
	case KBD_GET_ID: /* MF2 keyboard; the controller translates 0x83 to 0x41 */
		i8042_push(k, KBD_ACK);
		i8042_push(k, 0xab);
		i8042_push(k, (k->ctr & CTR_XLATE) ? 0x41 : 0x83);
		break;
	case KBD_SET_LEDS:
	case KBD_TYPEMATIC:
	case KBD_SCANCODE_SET:
		k->kbd_pending = v;
		i8042_push(k, KBD_ACK);
		break;
	case KBD_ECHO:
		i8042_push(k, KBD_ECHO);
		break;
	case KBD_ENABLE:
	case KBD_DISABLE:
	case KBD_DEFAULTS:
	case KBD_RESEND:
		i8042_push(k, KBD_ACK);
		break;
	default:
		i8042_push(k, KBD_NAK);
		break;
	}
}

/* Data byte of a controller command; returns true if it asks for a reset. */
static bool ctl_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->ctl_pending;

	k->ctl_pending = 0;
	switch (cmd) {
	case CMD_WRITE_CTR:
		k->ctr = v;
		break;
	case CMD_WRITE_OUTPUT:
		k->outport = v;
		return !(v & OUT_RESET);
	case CMD_WRITE_KBD_OB:
		i8042_push(k, v);
		break;
	default: /* CMD_WRITE_AUX_OB, CMD_WRITE_AUX: there is no AUX port */
		break;
	}
	return false;
}

static bool i8042_write_data(struct i8042 *k, uint8_t v)
{
	k->status &= ~STR_CMD;
	if (k->ctl_pending)
		return ctl_data(k, v);
	if (k->kbd_pending)
		kbd_param(k, v);
	else
		kbd_command(k, v);
	return false;
}

static void ctl_simple(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case CMD_AUX_DISABLE:
		k->ctr |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ctr &= ~CTR_AUXDIS;
		break;
	case CMD_KBD_DISABLE:
		k->ctr |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ctr &= ~CTR_KBDDIS;
		break;
	case CMD_A20_OFF:
		k->outport &= ~OUT_A20;
		break;
	case CMD_A20_ON:
		k->outport |= OUT_A20;
		break;
	default:
		log_debug("i8042: ignoring command 0x%02x", cmd);
		break;
	}
}

/* Returns true if the command pulses the reset line. */
static bool i8042_write_cmd(struct i8042 *k, uint8_t cmd)
{
	k->status |= STR_CMD;
	k->ctl_pending = 0;
	switch (cmd) {
	case CMD_READ_CTR:
		i8042_push(k, k->ctr);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTPUT:
	case CMD_WRITE_KBD_OB:
	case CMD_WRITE_AUX_OB:
	case CMD_WRITE_AUX:
		k->ctl_pending = cmd;
		break;
	case CMD_AUX_TEST:
		i8042_push(k, 0x01); /* "clock line stuck low": no AUX port here */
		break;
	case CMD_SELF_TEST:
		k->status |= STR_SYS;
		i8042_push(k, 0x55);
		break;
	case CMD_KBD_TEST:
		i8042_push(k, 0x00);
		break;
	case CMD_READ_INPUT:
		i8042_push(k, 0x00);
		break;
	case CMD_READ_OUTPUT:
		i8042_push(k, k->outport);
		break;
	default:
		if (cmd >= CMD_PULSE_BASE)
			return !(cmd & OUT_RESET);
		ctl_simple(k, cmd);
		break;
	}
	return false;
}

static uint8_t i8042_status(const struct i8042 *k)
{
	return k->status | STR_UNLOCKED | (k->count ? STR_OBF : 0);
}

static void i8042_data_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;

	pthread_mutex_lock(&k->lock);
	memset(data, 0, len);
	data[0] = i8042_pop(k);
	/* Drop the line between bytes so each one is a fresh edge. */
	i8042_set_irq(k, false);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_reset_pulse(struct i8042 *k)
{
	log_info("i8042: guest pulsed the reset line");
	power_sink_fire(&k->power, POWER_RESET);
}

static void i8042_data_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;
	bool reset;

	pthread_mutex_lock(&k->lock);
	reset = i8042_write_data(k, data[0]);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		i8042_reset_pulse(k);
}

static void i8042_cmd_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;

	pthread_mutex_lock(&k->lock);
	memset(data, 0, len);
	data[0] = i8042_status(k);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_cmd_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;
	bool reset;

	pthread_mutex_lock(&k->lock);
	reset = i8042_write_cmd(k, data[0]);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		i8042_reset_pulse(k);
}

static const struct bus_ops i8042_data_ops = {
	.read = i8042_data_read,
	.write = i8042_data_write,
};

static const struct bus_ops i8042_cmd_ops = {
	.read = i8042_cmd_read,
	.write = i8042_cmd_write,
};

static void i8042_reset_state(struct i8042 *k)
{
	/* What firmware leaves behind: keyboard IRQ on, translation, POST passed. */
	k->ctr = CTR_KBDINT | CTR_SYS | CTR_AUXDIS | CTR_XLATE;
	k->status = STR_SYS;
	k->outport = OUT_RESET | OUT_A20;
	k->ctl_pending = 0;
	k->kbd_pending = 0;
	k->head = 0;
	k->count = 0;
	k->last = 0;
}

void i8042_reset(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	i8042_reset_state(k);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

struct i8042 *i8042_create(struct bus *pio, const struct irq_line *irq,
			   const struct power_sink *power)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int ret;

	if (!k)
		return NULL;
	pthread_mutex_init(&k->lock, NULL);
	k->pio = pio;
	if (irq)
		k->irq = *irq;
	if (power)
		k->power = *power;
	i8042_reset_state(k);
	ret = bus_register(pio, LAYOUT_I8042_DATA_PORT, 1, &i8042_data_ops, k, "i8042-data");
	if (ret == 0) {
		ret = bus_register(pio, LAYOUT_I8042_CMD_PORT, 1, &i8042_cmd_ops, k, "i8042-cmd");
		if (ret)
			bus_unregister(pio, LAYOUT_I8042_DATA_PORT);
	}
	if (ret) {
		log_error("i8042: cannot claim ports 0x60/0x64: %s", strerror(-ret));
		pthread_mutex_destroy(&k->lock);
		free(k);
		return NULL;
	}
	return k;
}

void i8042_destroy(struct i8042 *k)
{
	if (!k)
		return;
	bus_unregister(k->pio, LAYOUT_I8042_CMD_PORT);
	bus_unregister(k->pio, LAYOUT_I8042_DATA_PORT);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* ---- snapshot ---- */

struct i8042_state {
	uint8_t ctr, outport, status, ctl_pending, kbd_pending, last;
	uint8_t count;
	uint8_t queue[I8042_QUEUE]; /* oldest first */
};

int i8042_save(struct i8042 *k, struct snap_writer *w, const char *name)
{
	pthread_mutex_lock(&k->lock);
	snap_begin(w, name, I8042_STATE_VERSION);
	snap_put_u8(w, k->ctr);
	snap_put_u8(w, k->outport);
	snap_put_u8(w, k->status);
	snap_put_u8(w, k->ctl_pending);
	snap_put_u8(w, k->kbd_pending);
	snap_put_u8(w, k->last);
	snap_put_u8(w, (uint8_t)k->count);
	for (unsigned int i = 0; i < k->count; i++)
		snap_put_u8(w, k->queue[(k->head + i) % I8042_QUEUE]);
	snap_end(w);
	pthread_mutex_unlock(&k->lock);
	return w->failed ? -ENOMEM : 0;
}

static bool i8042_ctl_pending_ok(uint8_t cmd)
{
	return cmd == 0 || cmd == CMD_WRITE_CTR || cmd == CMD_WRITE_OUTPUT ||
	       cmd == CMD_WRITE_KBD_OB || cmd == CMD_WRITE_AUX_OB || cmd == CMD_WRITE_AUX;
}

static bool i8042_kbd_pending_ok(uint8_t cmd)
{
	return cmd == 0 || cmd == KBD_SET_LEDS || cmd == KBD_TYPEMATIC || cmd == KBD_SCANCODE_SET;
}

static int i8042_state_read(struct snap_section *s, struct i8042_state *st, const char *name,
			    struct error *err)
{
	st->ctr = snap_get_u8(s);
	st->outport = snap_get_u8(s);
	st->status = snap_get_u8(s);
	st->ctl_pending = snap_get_u8(s);
	st->kbd_pending = snap_get_u8(s);
	st->last = snap_get_u8(s);
	st->count = snap_get_u8(s);
	if (st->status & ~(STR_SYS | STR_CMD))
		return state_bad(err, name, "status", st->status);
	if (!i8042_ctl_pending_ok(st->ctl_pending))
		return state_bad(err, name, "pending controller command", st->ctl_pending);
	if (!i8042_kbd_pending_ok(st->kbd_pending))
		return state_bad(err, name, "pending keyboard command", st->kbd_pending);
	if (st->count > I8042_QUEUE)
		return state_bad(err, name, "queue length", st->count);
	snap_get_bytes(s, st->queue, st->count);
	return snap_section_done(s, err);
}

int i8042_restore(struct i8042 *k, const struct snap_file *f, const char *name, struct error *err)
{
	struct i8042_state st;
	struct snap_section s;
	int ret = state_open(f, name, I8042_STATE_VERSION, &s, err);

	if (!ret)
		ret = i8042_state_read(&s, &st, name, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&k->lock);
	k->ctr = st.ctr;
	k->outport = st.outport;
	k->status = st.status;
	k->ctl_pending = st.ctl_pending;
	k->kbd_pending = st.kbd_pending;
	k->last = st.last;
	memcpy(k->queue, st.queue, st.count);
	k->head = 0;
	k->count = st.count;
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}
