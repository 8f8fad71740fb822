/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-console: the console device (virtio 1.2, 5.3), one port, no
 * MULTIPORT: receiveq (0) and transmitq (1). Writes "hvc0 ready\n" on the
 * port (again every half second until input arrives, since a socket client
 * may connect after the first one was dropped), then echoes every input
 * line as "ECHO: <LINE IN UPPER CASE>\n" until it reads "quit".
 *   BUNSHIN-TEST name=virtio-console result=pass lines=N bytes_in=N bytes_out=N
 *     cols=N rows=N features=0x... indirect=0|1 event_idx=0|1 irq=N|poll
 * Options: vcon_timeout_s=N (default 60: the whole exchange), see virtio.c.
 */
#include "virtio.h"

#define VCON_RXQ      0
#define VCON_TXQ      1
#define VCON_F_SIZE   0
#define VCON_NRX      8
#define VCON_RX_LEN   64
#define VCON_LINE_MAX 256
#define VCON_GREETING "hvc0 ready\n"

static uint8_t rx_buf[VCON_NRX][VCON_RX_LEN] __attribute__((aligned(64)));
static char tx_buf[VCON_LINE_MAX + 16] __attribute__((aligned(64)));
static int rx_slot[VQ_MAX_SIZE]; /* descriptor head -> rx_buf index */

struct vcon {
	struct virtio_dev d;
	char line[VCON_LINE_MAX];
	uint32_t len;
	uint32_t lines, bytes_in, bytes_out;
	bool input_seen, quit;
};

static bool vcon_send(struct vcon *c, const char *s, uint32_t n)
{
	uint32_t written = 0;
	struct vbuf b = {tx_buf, n, false};

	memcpy(tx_buf, s, n);
	if (!virtio_request(&c->d, VCON_TXQ, &b, 1, &written))
		return false;
	c->bytes_out += n;
	return true;
}

static bool vcon_post(struct vcon *c, int slot)
{
	struct vbuf b = {rx_buf[slot], VCON_RX_LEN, true};
	int head = virtio_submit(&c->d, VCON_RXQ, &b, 1);

	if (head < 0 || head >= VQ_MAX_SIZE)
		return false;
	rx_slot[head] = slot;
	return true;
}

static char upper(char ch)
{
	return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

/* A complete line: "quit" ends the exchange, anything else is echoed. */
static bool vcon_line(struct vcon *c)
{
	char out[VCON_LINE_MAX + 16];
	uint32_t n = 0;

	if (c->len == 4 && memcmp(c->line, "quit", 4) == 0) {
		c->quit = true;
		return true;
	}
	memcpy(out, "ECHO: ", 6);
	n = 6;
	for (uint32_t i = 0; i < c->len; i++)
		out[n++] = upper(c->line[i]);
	out[n++] = '\n';
	c->lines++;
	return vcon_send(c, out, n);
}

static bool vcon_bytes(struct vcon *c, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n && !c->quit; i++) {
		char ch = (char)p[i];

		if (ch != '\n' && ch != '\r') {
			if (c->len < VCON_LINE_MAX)
				c->line[c->len++] = ch;
			continue;
		}
		if (c->len && !vcon_line(c))
			return false;
		c->len = 0;
	}
	return true;
}

/* Takes every used receive buffer, handles its bytes and posts it again. */
static bool vcon_drain(struct vcon *c)
{
	uint32_t len;
	int head;

	while ((head = virtio_get_used(&c->d, VCON_RXQ, &len)) >= 0) {
		int slot = rx_slot[head];

		if (len > VCON_RX_LEN) {
			c->d.fail = "bad-length";
			return false;
		}
		c->bytes_in += len;
		c->input_seen = c->input_seen || len;
		if (!vcon_bytes(c, rx_buf[slot], len) || !vcon_post(c, slot))
			return false;
	}
	virtio_kick(&c->d, VCON_RXQ);
	return head == -1;
}

static bool vcon_setup(struct vcon *c)
{
	struct virtio_dev *d = &c->d;

	if (!virtio_find(d, 3, 0) || !virtio_init(d, 1ULL << VCON_F_SIZE) ||
	    !virtio_setup_queue(d, VCON_RXQ) || !virtio_setup_queue(d, VCON_TXQ) ||
	    !virtio_driver_ok(d))
		return false;
	for (int i = 0; i < VCON_NRX; i++)
		if (!vcon_post(c, i))
			return false;
	virtio_kick(d, VCON_RXQ);
	return true;
}

static bool vcon_run(struct vcon *c, uint64_t timeout_s)
{
	uint64_t deadline = rdtsc() + timeout_s * tsc_hz();

	if (!vcon_send(c, VCON_GREETING, sizeof(VCON_GREETING) - 1))
		return false;
	while (!c->quit) {
		if ((int64_t)(rdtsc() - deadline) > 0) {
			c->d.fail = "timeout";
			return false;
		}
		if (!virtio_wait_used(&c->d, VCON_RXQ, 500)) {
			if (virtio_needs_reset(&c->d))
				return false;
			c->d.fail = NULL;
			if (!c->input_seen &&
			    !vcon_send(c, VCON_GREETING, sizeof(VCON_GREETING) - 1))
				return false;
			continue;
		}
		if (!vcon_drain(c))
			return false;
	}
	return true;
}

void run_virtio_console(void)
{
	static struct vcon c;
	uint64_t timeout_s = 60;
	const char *reason = NULL;
	struct line l;

	opt_u64("vcon_timeout_s", 10, &timeout_s);
	if (!vcon_setup(&c) || !vcon_run(&c, timeout_s))
		reason = c.d.fail ? c.d.fail : "failed";
	if (!reason && c.d.use_irq && virtio_irqs(&c.d) == 0)
		reason = "no-irq";

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-console result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_kv_dec(&l, "lines", c.lines);
	line_kv_dec(&l, "bytes_in", c.bytes_in);
	line_kv_dec(&l, "bytes_out", c.bytes_out);
	if (c.d.common && virtio_has(&c.d, VCON_F_SIZE)) {
		uint32_t sz = virtio_cfg32(&c.d, 0);

		line_kv_dec(&l, "cols", sz & 0xffff);
		line_kv_dec(&l, "rows", sz >> 16);
	}
	if (c.d.pci)
		virtio_line_common(&l, &c.d);
	if (c.d.common)
		virtio_reset(&c.d);
	line_emit(&l);
}
