/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-vsock: the socket device (virtio 1.2, 5.10), stream sockets
 * only. Reads guest_cid from the device configuration, keeps rx and event
 * buffers posted, and runs two connections side by side in one polling
 * loop:
 *   vsock_listen=P   accepts the host's REQUEST for port P and echoes every
 *                    byte back until vsock_echo=N bytes (default 65536)
 *                    went out or the host shut down; REQUESTs for any other
 *                    port are refused (RST) and counted;
 *   vsock_connect=P  connects to host port P, sends "hello host, this is
 *                    the guest" and expects "hello guest, this is the host".
 * Both sides keep to the credit (5.10.6.3): we advertise a small buffer
 * (VS_BUF_ALLOC) so the device must stop and wait for our CREDIT_UPDATEs,
 * and we never send more than the device's credit. Data beyond our credit
 * fails the test.
 *   BUNSHIN-TEST name=virtio-vsock result=pass cid=N listen=P echoed=N
 *     connect=P reply=ok refused=N credit_updates=N features=0x...
 * Options: vsock_listen, vsock_connect, vsock_echo, vsock_timeout=SECONDS
 * (default 30), virtio_poll, virtio_features.
 */
#include "virtio.h"

#define VQ_RX  0
#define VQ_TX  1
#define VQ_EVT 2

#define VS_F_STREAM   0
#define VS_HOST_CID   2
#define VS_TYPE	      1
#define OP_REQUEST    1
#define OP_RESPONSE   2
#define OP_RST	      3
#define OP_SHUTDOWN   4
#define OP_RW	      5
#define OP_CREDIT_UPD 6
#define OP_CREDIT_REQ 7
#define SHUT_BOTH     3

#define VS_RXBUFS     32
#define VS_RXDATA     4096
#define VS_BUF_ALLOC  16384 /* small on purpose: the device has to wait for credit */
#define VS_CHUNK      4096
#define VS_LOCAL_PORT 49152

#define MSG_OUT "hello host, this is the guest"
#define MSG_IN	"hello guest, this is the host"

struct vs_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} PACKED;

struct vs_rxbuf {
	struct vs_hdr h;
	uint8_t data[VS_RXDATA];
} PACKED;

struct vs_conn {
	bool used, open, done, shut_sent;
	uint32_t local, peer; /* guest port, host port */
	uint32_t peer_buf, peer_fwd, tx_cnt;
	uint32_t rx_cnt, fwd_cnt, fwd_sent;
};

struct vs_state {
	struct virtio_dev d;
	uint64_t cid;
	const char *fail;
	struct vs_conn echo, out;
	uint32_t listen_port, connect_port, echo_goal;
	uint32_t echoed, refused, credit_updates;
	uint8_t ring[VS_BUF_ALLOC]; /* echo data waiting for the device's credit */
	uint32_t ring_head, ring_len;
	char reply[64];
	uint32_t reply_len;
};

static struct vs_rxbuf vs_rx[VS_RXBUFS] __attribute__((aligned(64)));
static uint32_t vs_evt[4][2] __attribute__((aligned(64)));
static struct vs_hdr vs_txh __attribute__((aligned(64)));
static uint8_t vs_txdata[VS_CHUNK] __attribute__((aligned(64)));
static struct vs_state S;
static uint8_t vs_rx_slot[VQ_MAX_SIZE]; /* rx descriptor head -> buffer */

static bool vs_fail(const char *why)
{
	if (!S.fail)
		S.fail = why;
	return false;
}

/* ---- sending ---- */

static bool vs_send(struct vs_conn *c, uint16_t op, uint32_t flags, const uint8_t *data,
		    uint32_t len)
{
	struct vbuf b[2] = {{&vs_txh, sizeof(vs_txh), false}, {vs_txdata, len, false}};
	uint32_t written;

	memset(&vs_txh, 0, sizeof(vs_txh));
	vs_txh.src_cid = S.cid;
	vs_txh.dst_cid = VS_HOST_CID;
	vs_txh.src_port = c->local;
	vs_txh.dst_port = c->peer;
	vs_txh.len = len;
	vs_txh.type = VS_TYPE;
	vs_txh.op = op;
	vs_txh.flags = flags;
	vs_txh.buf_alloc = VS_BUF_ALLOC;
	vs_txh.fwd_cnt = c->fwd_cnt;
	c->fwd_sent = c->fwd_cnt;
	if (len)
		memcpy(vs_txdata, data, len);
	if (!virtio_request(&S.d, VQ_TX, b, len ? 2 : 1, &written))
		return vs_fail(S.d.fail);
	c->tx_cnt += len;
	return true;
}

/* A reply to a packet that matched nothing of ours. */
static bool vs_send_rst(const struct vs_hdr *h)
{
	struct vs_conn tmp = {.local = h->dst_port, .peer = h->src_port};

	return vs_send(&tmp, OP_RST, 0, NULL, 0);
}

static uint32_t vs_peer_credit(const struct vs_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd;

	return in_flight >= c->peer_buf ? 0 : c->peer_buf - in_flight;
}

/* Echoes what the device's credit allows; what we echo is consumed, so our credit grows. */
static bool vs_pump_echo(void)
{
	struct vs_conn *c = &S.echo;

	while (S.ring_len && c->open && !c->shut_sent) {
		uint32_t n = S.ring_len, credit = vs_peer_credit(c);

		if (n > VS_BUF_ALLOC - S.ring_head)
			n = VS_BUF_ALLOC - S.ring_head;
		if (n > credit)
			n = credit;
		if (n > VS_CHUNK)
			n = VS_CHUNK;
		if (!n)
			break; /* wait for the device's credit */
		c->fwd_cnt += n;
		if (!vs_send(c, OP_RW, 0, S.ring + S.ring_head, n))
			return false;
		S.ring_head = (S.ring_head + n) % VS_BUF_ALLOC;
		S.ring_len -= n;
		S.echoed += n;
	}
	/* Nothing went out that carried our fwd_cnt: tell the device explicitly. */
	if (c->open && c->fwd_cnt - c->fwd_sent >= VS_BUF_ALLOC / 2) {
		S.credit_updates++;
		if (!vs_send(c, OP_CREDIT_UPD, 0, NULL, 0))
			return false;
	}
	if (c->open && S.echoed >= S.echo_goal && !S.ring_len && !c->shut_sent) {
		c->shut_sent = true;
		return vs_send(c, OP_SHUTDOWN, SHUT_BOTH, NULL, 0);
	}
	return true;
}

/* ---- receiving ---- */

static void vs_close(struct vs_conn *c)
{
	c->open = false;
	c->done = true;
}

static bool vs_take_data(struct vs_conn *c, const struct vs_hdr *h, const uint8_t *data)
{
	if (h->len > VS_BUF_ALLOC - (c->rx_cnt - c->fwd_cnt))
		return vs_fail("device-exceeded-credit");
	c->rx_cnt += h->len;
	if (c == &S.echo) {
		for (uint32_t i = 0; i < h->len; i++)
			S.ring[(S.ring_head + S.ring_len + i) % VS_BUF_ALLOC] = data[i];
		S.ring_len += h->len;
		return true;
	}
	/* the outgoing connection consumes at once */
	c->fwd_cnt += h->len;
	for (uint32_t i = 0; i < h->len && S.reply_len < sizeof(S.reply) - 1; i++)
		S.reply[S.reply_len++] = (char)data[i];
	if (S.reply_len < sizeof(MSG_IN) - 1)
		return true;
	if (memcmp(S.reply, MSG_IN, sizeof(MSG_IN) - 1))
		return vs_fail("bad-reply");
	c->shut_sent = true;
	return vs_send(c, OP_SHUTDOWN, SHUT_BOTH, NULL, 0);
}

static bool vs_accept(const struct vs_hdr *h)
{
	struct vs_conn *c = &S.echo;

	if (h->dst_port != S.listen_port || c->used) {
		S.refused++;
		return vs_send_rst(h);
	}
	*c = (struct vs_conn){
		.used = true, .open = true, .local = h->dst_port, .peer = h->src_port};
	c->peer_buf = h->buf_alloc;
	c->peer_fwd = h->fwd_cnt;
	return vs_send(c, OP_RESPONSE, 0, NULL, 0);
}

static struct vs_conn *vs_lookup(const struct vs_hdr *h)
{
	struct vs_conn *all[2] = {&S.echo, &S.out};

	for (int i = 0; i < 2; i++)
		if (all[i]->used && !all[i]->done && all[i]->local == h->dst_port &&
		    all[i]->peer == h->src_port)
			return all[i];
	return NULL;
}

static bool vs_conn_packet(struct vs_conn *c, const struct vs_hdr *h, const uint8_t *data)
{
	c->peer_buf = h->buf_alloc;
	c->peer_fwd = h->fwd_cnt;
	switch (h->op) {
	case OP_RESPONSE:
		if (c != &S.out || c->open)
			return vs_fail("unexpected-response");
		c->open = true;
		return vs_send(c, OP_RW, 0, (const uint8_t *)MSG_OUT, sizeof(MSG_OUT) - 1);
	case OP_RST:
		if (c == &S.out && !c->open)
			return vs_fail("connect-refused");
		vs_close(c);
		return true;
	case OP_SHUTDOWN:
		/* the host is done with it: finish with an RST (5.10.6.5) */
		vs_close(c);
		return vs_send(c, OP_RST, 0, NULL, 0);
	case OP_RW:
		return c->open ? vs_take_data(c, h, data) : vs_fail("rw-before-open");
	case OP_CREDIT_UPD:
		return true;
	case OP_CREDIT_REQ:
		return vs_send(c, OP_CREDIT_UPD, 0, NULL, 0);
	default:
		return vs_fail("bad-op");
	}
}

static bool vs_packet(const struct vs_rxbuf *b, uint32_t len)
{
	const struct vs_hdr *h = &b->h;
	struct vs_conn *c;

	if (len < sizeof(*h) || len - sizeof(*h) != h->len || h->len > VS_RXDATA)
		return vs_fail("bad-rx-length");
	if (h->src_cid != VS_HOST_CID || h->dst_cid != S.cid || h->type != VS_TYPE)
		return vs_fail("bad-rx-header");
	if (h->op == OP_REQUEST)
		return vs_accept(h);
	c = vs_lookup(h);
	if (c)
		return vs_conn_packet(c, h, b->data);
	return h->op == OP_RST ? true : vs_send_rst(h);
}

static bool vs_post_rx(int i)
{
	struct vbuf b = {&vs_rx[i], sizeof(vs_rx[i]), true};
	int head = virtio_submit(&S.d, VQ_RX, &b, 1);

	if (head < 0)
		return vs_fail(S.d.fail);
	vs_rx_slot[head] = (uint8_t)i;
	return true;
}

/* Handles every packet the device has put on rx and hands the buffers back. */
static bool vs_poll_rx(void)
{
	uint32_t len;
	int id;

	while ((id = virtio_get_used(&S.d, VQ_RX, &len)) >= 0) {
		uint8_t slot = vs_rx_slot[id];

		if (!vs_packet(&vs_rx[slot], len) || !vs_post_rx(slot))
			return false;
		virtio_kick(&S.d, VQ_RX);
	}
	return id == -1 ? true : vs_fail(S.d.fail);
}

/* ---- set-up and the loop ---- */

static bool vs_setup(void)
{
	struct virtio_dev *d = &S.d;

	if (!virtio_find(d, 19, 0) || !virtio_init(d, 1ULL << VS_F_STREAM))
		return vs_fail(d->fail);
	for (uint16_t q = 0; q < 3; q++)
		if (!virtio_setup_queue(d, q))
			return vs_fail(d->fail);
	if (!virtio_driver_ok(d))
		return vs_fail(d->fail);
	S.cid = virtio_cfg64(d, 0);
	if (S.cid < 3 || S.cid > 0xffffffffULL)
		return vs_fail("bad-cid");
	for (int i = 0; i < VS_RXBUFS; i++)
		if (!vs_post_rx(i))
			return false;
	virtio_kick(d, VQ_RX);
	for (int i = 0; i < 4; i++) {
		struct vbuf b = {vs_evt[i], sizeof(vs_evt[i]), true};

		if (virtio_submit(d, VQ_EVT, &b, 1) < 0)
			return vs_fail(d->fail);
	}
	virtio_kick(d, VQ_EVT);
	return true;
}

static bool vs_connect_out(void)
{
	struct vs_conn *c = &S.out;

	if (!S.connect_port) {
		c->done = true;
		return true;
	}
	*c = (struct vs_conn){.used = true, .local = VS_LOCAL_PORT, .peer = S.connect_port};
	return vs_send(c, OP_REQUEST, 0, NULL, 0);
}

static bool vs_finished(void)
{
	bool echo_done = !S.listen_port || S.echo.done;

	return echo_done && S.out.done;
}

static void vs_run(uint64_t timeout_s)
{
	uint64_t deadline = rdtsc() + timeout_s * tsc_hz();

	if (!vs_setup() || !vs_connect_out())
		return;
	while (!S.fail && !vs_finished()) {
		if (!vs_poll_rx() || !vs_pump_echo())
			return;
		if (vs_finished())
			break;
		if ((int64_t)(rdtsc() - deadline) > 0) {
			vs_fail(S.listen_port && !S.echo.used ? "no-host-connect" : "timeout");
			return;
		}
		if (!virtio_wait_used(&S.d, VQ_RX, 20)) {
			if (virtio_needs_reset(&S.d))
				vs_fail("needs-reset");
			S.d.fail = NULL; /* a quiet moment is not an error */
		}
	}
	if (!S.fail && S.connect_port && S.reply_len < sizeof(MSG_IN) - 1)
		vs_fail("no-reply");
	if (!S.fail && S.listen_port && S.echoed < S.echo_goal)
		vs_fail("short-echo");
}

void run_virtio_vsock(void)
{
	uint64_t v, timeout_s = 30;
	struct line l;

	memset(&S, 0, sizeof(S));
	S.echo_goal = 65536;
	if (opt_u64("vsock_listen", 10, &v))
		S.listen_port = (uint32_t)v;
	if (opt_u64("vsock_connect", 10, &v))
		S.connect_port = (uint32_t)v;
	if (opt_u64("vsock_echo", 10, &v))
		S.echo_goal = (uint32_t)v;
	if (opt_u64("vsock_timeout", 10, &v))
		timeout_s = v;
	vs_run(timeout_s);
	if (S.d.common)
		virtio_reset(&S.d);

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-vsock result=");
	line_str(&l, S.fail ? "fail" : "pass");
	if (S.fail)
		line_kv_str(&l, "reason", S.fail);
	line_kv_dec(&l, "cid", S.cid);
	line_kv_dec(&l, "listen", S.listen_port);
	line_kv_dec(&l, "echoed", S.echoed);
	line_kv_dec(&l, "connect", S.connect_port);
	line_kv_str(&l, "reply", S.reply_len >= sizeof(MSG_IN) - 1 ? "ok" : "none");
	line_kv_dec(&l, "refused", S.refused);
	line_kv_dec(&l, "credit_updates", S.credit_updates);
	if (S.d.pci)
		virtio_line_common(&l, &S.d);
	line_emit(&l);
}
