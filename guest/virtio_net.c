/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-net: the network device (virtio 1.2, 5.1) against whatever
 * answers on the other side of the tap (the host kernel in the tests).
 * Posts receive buffers, resolves the peer with ARP, pings it, and then
 * answers ARP and ICMP echo requests for its own address for a while, so
 * the host can ping the guest.
 *   BUNSHIN-TEST name=virtio-net result=pass mac=52:54:00:.. link=up|down|unknown
 *     max_pairs=N mrg=0|1 ctrl=ok|fail|absent arp=ok|none pings=N replies=N
 *     served_arp=N served_echo=N rx=N tx=N features=0x... indirect=0|1
 *     event_idx=0|1 irq=N|poll
 * Options: net_ip=A.B.C.D (default 10.0.2.15), net_peer=A.B.C.D (default
 * 10.0.2.1), net_pings=N (default 3), net_serve_ms=N (default 0: no
 * serving), net_serve_echo=N (stop serving after answering N echo
 * requests; passing then needs N), net_mrg=0 (decline MRG_RXBUF),
 * virtio_poll, virtio_features.
 * Fail words: bad-option, ctrl (+cmd=N), no-arp-reply, no-echo-reply,
 * not-served, link-down, mrg-incomplete, plus virtio.c's.
 */
#include "net.h"
#include "virtio.h"

#define NET_F_MAC      5
#define NET_F_MRG      15
#define NET_F_STATUS   16
#define NET_F_CTRL_VQ  17
#define NET_F_CTRL_RX  18
#define NET_F_MQ       22
#define NET_HDR	       12
#define NET_CFG_MAC    0
#define NET_CFG_STATUS 6
#define NET_CFG_PAIRS  8

#define RXQ	  0
#define TXQ	  1
#define NRX	  32
#define RXBUF	  2048
#define FRAME_MAX 9216
#define ETH_HLEN  14
#define PING_ID	  0x4242
#define PING_DATA 56

struct net {
	struct virtio_dev d;
	uint16_t cq; /* control queue index, 0 when there is none */
	uint8_t mac[6], peer_mac[6];
	uint8_t ip[4], peer[4];
	bool peer_known;
	uint32_t rx, tx, replies, served_arp, served_echo;
	uint32_t seen_seq; /* bitmap of echo replies by sequence number */
};

static struct net n;
static uint8_t rxbuf[NRX][RXBUF] __attribute__((aligned(64)));
static uint8_t rx_slot[VQ_MAX_SIZE]; /* descriptor head -> rxbuf index */
static uint8_t txhdr[NET_HDR] __attribute__((aligned(16)));
static uint8_t txbuf[RXBUF] __attribute__((aligned(64)));
static uint8_t frame[FRAME_MAX];
static uint8_t ctrl_hdr[2], ctrl_data[8];
static volatile uint8_t ctrl_ack;

/* ---- receive ---- */

static bool post_rx(int slot)
{
	struct vbuf b = {rxbuf[slot], RXBUF, true};
	int head = virtio_submit(&n.d, RXQ, &b, 1);

	if (head < 0)
		return false;
	rx_slot[head] = (uint8_t)slot;
	return true;
}

/* Takes one used receive buffer: its slot and length, or -1. */
static int take_rx(uint32_t *len)
{
	int id = virtio_get_used(&n.d, RXQ, len);

	if (id < 0)
		return -1;
	if (*len > RXBUF)
		*len = RXBUF;
	return rx_slot[id];
}

/* Reassembles the next frame (num_buffers of them with MRG_RXBUF) into frame[]. */
static int32_t next_frame(void)
{
	uint32_t len, flen = 0, nbuf;
	int slot = take_rx(&len);

	if (slot < 0)
		return -1;
	nbuf = virtio_has(&n.d, NET_F_MRG) ? (uint32_t)(rxbuf[slot][10] | rxbuf[slot][11] << 8) : 1;
	for (uint32_t i = 0;; i++) {
		uint32_t off = i ? 0 : NET_HDR, take = len > off ? len - off : 0;
		if (flen + take > FRAME_MAX)
			take = FRAME_MAX - flen;
		memcpy(frame + flen, rxbuf[slot] + off, take);
		flen += take;
		post_rx(slot);
		if (i + 1 >= nbuf)
			break;
		slot = take_rx(&len);
		if (slot < 0) {
			n.d.fail = "mrg-incomplete";
			return -1;
		}
	}
	n.rx++;
	return (int32_t)flen;
}

/* ---- transmit ---- */

/* Sends txbuf[0, len); every other frame with the header in a separate buffer. */
static bool send_frame(uint32_t len)
{
	struct vbuf b[2];
	int cnt = 0;

	memset(txhdr, 0, sizeof(txhdr));
	if (n.tx & 1) {
		b[cnt++] = (struct vbuf){txhdr, NET_HDR, false};
		b[cnt++] = (struct vbuf){txbuf + NET_HDR, len, false};
	} else {
		memset(txbuf, 0, NET_HDR);
		b[cnt++] = (struct vbuf){txbuf, NET_HDR + len, false};
	}
	if (!virtio_request(&n.d, TXQ, b, cnt, NULL))
		return false;
	n.tx++;
	return true;
}

static uint8_t *eth(const uint8_t *dst, uint16_t type)
{
	uint8_t *f = txbuf + NET_HDR;

	memcpy(f, dst, 6);
	memcpy(f + 6, n.mac, 6);
	net_put16(f + 12, type);
	return f + ETH_HLEN;
}

static bool send_arp(uint16_t op, const uint8_t *tha, const uint8_t *tpa)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t *a = eth(op == 1 ? bcast : tha, 0x0806);

	net_put16(a, 1); /* Ethernet */
	net_put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	net_put16(a + 6, op);
	memcpy(a + 8, n.mac, 6);
	memcpy(a + 14, n.ip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	return send_frame(ETH_HLEN + 28);
}

/* An IPv4 packet to dst carrying len bytes of ICMP already at the payload position. */
static bool send_icmp(const uint8_t *dst_mac, const uint8_t *dst_ip, uint32_t len)
{
	uint8_t *ip = eth(dst_mac, 0x0800), *icmp = ip + 20;

	memset(ip, 0, 20);
	ip[0] = 0x45;
	net_put16(ip + 2, (uint16_t)(20 + len));
	net_put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = 1;
	memcpy(ip + 12, n.ip, 4);
	memcpy(ip + 16, dst_ip, 4);
	net_put16(ip + 10, net_csum(ip, 20));
	net_put16(icmp + 2, 0);
	net_put16(icmp + 2, net_csum(icmp, len));
	return send_frame(ETH_HLEN + 20 + len);
}

static bool send_ping(uint16_t seq)
{
	uint8_t *icmp = txbuf + NET_HDR + ETH_HLEN + 20;

	icmp[0] = 8;
	icmp[1] = 0;
	net_put16(icmp + 4, PING_ID);
	net_put16(icmp + 6, seq);
	for (int i = 0; i < PING_DATA; i++)
		icmp[8 + i] = (uint8_t)(i + seq);
	return send_icmp(n.peer_mac, n.peer, 8 + PING_DATA);
}

/* ---- what arrives ---- */

static bool handle_arp(const uint8_t *a, uint32_t len)
{
	if (len < 28 || net_get16(a) != 1 || net_get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4)
		return true;
	if (net_get16(a + 6) == 2 && memcmp(a + 14, n.peer, 4) == 0) {
		memcpy(n.peer_mac, a + 8, 6);
		n.peer_known = true;
	}
	if (net_get16(a + 6) != 1 || memcmp(a + 24, n.ip, 4) != 0)
		return true;
	n.served_arp++;
	return send_arp(2, a + 8, a + 14);
}

/* Echo requests to us are answered with the same identifier, sequence and data. */
static bool handle_icmp(const uint8_t *src_mac, const uint8_t *ip, uint32_t ihl, uint32_t tot)
{
	const uint8_t *icmp = ip + ihl;
	uint32_t len = tot - ihl;
	uint8_t *out;

	if (len < 8)
		return true;
	if (icmp[0] == 0 && net_get16(icmp + 4) == PING_ID && net_get16(icmp + 6) < 32) {
		uint32_t bit = 1u << net_get16(icmp + 6);
		if (!(n.seen_seq & bit))
			n.replies++;
		n.seen_seq |= bit;
		return true;
	}
	if (icmp[0] != 8 || len > RXBUF - NET_HDR - ETH_HLEN - 20)
		return true;
	out = txbuf + NET_HDR + ETH_HLEN + 20;
	memcpy(out, icmp, len);
	out[0] = 0;
	n.served_echo++;
	return send_icmp(src_mac, ip + 12, len);
}

static bool handle_frame(uint32_t flen)
{
	const uint8_t *p = frame + ETH_HLEN;
	uint32_t len = flen - ETH_HLEN, ihl, tot;

	if (flen < ETH_HLEN)
		return true;
	if (net_get16(frame + 12) == 0x0806)
		return handle_arp(p, len);
	if (net_get16(frame + 12) != 0x0800 || len < 20 || (p[0] >> 4) != 4)
		return true;
	ihl = (p[0] & 15) * 4u;
	tot = net_get16(p + 2);
	if (ihl < 20 || tot < ihl || tot > len || memcmp(p + 16, n.ip, 4) != 0 || p[9] != 1)
		return true;
	return handle_icmp(frame + 6, p, ihl, tot);
}

/* Handles everything received so far; false on a device failure. */
static bool drain_rx(void)
{
	int32_t flen;
	bool any = false;

	while ((flen = next_frame()) >= 0) {
		any = true;
		if (!handle_frame((uint32_t)flen))
			return false;
	}
	if (any)
		virtio_kick(&n.d, RXQ);
	return !n.d.fail;
}

static bool is_timeout(const char *f)
{
	return f && memcmp(f, "timeout", 8) == 0;
}

/* Serves the receive queue until done() or the deadline; false on a device failure. */
static bool run_until(uint64_t deadline, bool (*done)(void))
{
	for (;;) {
		if (!drain_rx())
			return false;
		if (done() || (int64_t)(rdtsc() - deadline) > 0)
			return true;
		if (!virtio_wait_used(&n.d, RXQ, 50) && is_timeout(n.d.fail))
			n.d.fail = NULL;
		if (n.d.fail)
			return false;
	}
}

static uint32_t want_replies, want_served;
static uint64_t pings = 3;

static bool peer_resolved(void)
{
	return n.peer_known;
}

static bool all_replies(void)
{
	return n.replies >= want_replies;
}

static bool served_enough(void)
{
	return want_served && n.served_echo >= want_served;
}

static uint64_t ms_from_now(uint64_t ms)
{
	return rdtsc() + ms * (tsc_hz() / 1000);
}

/* ---- control queue ---- */

static bool ctrl(uint8_t class, uint8_t cmd, const void *data, uint32_t len, uint8_t want)
{
	struct vbuf b[3] = {
		{ctrl_hdr, 2, false}, {ctrl_data, len, false}, {(void *)&ctrl_ack, 1, true}};

	ctrl_hdr[0] = class;
	ctrl_hdr[1] = cmd;
	memcpy(ctrl_data, data, len);
	ctrl_ack = 0xee;
	return virtio_request(&n.d, n.cq, b, 3, NULL) && ctrl_ack == want;
}

/* promiscuous on, the queue pairs up and back down, and an unknown class refused. */
static const char *ctrl_checks(uint16_t pairs)
{
	uint8_t one = 1, p[2] = {(uint8_t)pairs, (uint8_t)(pairs >> 8)}, p1[2] = {1, 0};

	if (!ctrl(0, 0, &one, 1, 0))
		return "ctrl";
	if (virtio_has(&n.d, NET_F_MQ) && (!ctrl(4, 0, p, 2, 0) || !ctrl(4, 0, p1, 2, 0)))
		return "ctrl";
	if (!ctrl(0x7f, 0, &one, 1, 1))
		return "ctrl";
	return NULL;
}

/* ---- the scenario ---- */

static bool setup(uint16_t *pairs)
{
	uint64_t want = 1ULL << NET_F_MAC | 1ULL << NET_F_STATUS | 1ULL << NET_F_CTRL_VQ |
			1ULL << NET_F_CTRL_RX | 1ULL << NET_F_MQ | 1ULL << NET_F_MRG,
		 mrg;

	if (opt_u64("net_mrg", 10, &mrg) && !mrg)
		want &= ~(1ULL << NET_F_MRG);
	if (!virtio_find(&n.d, 1, 0) || !virtio_init(&n.d, want))
		return false;
	*pairs = virtio_has(&n.d, NET_F_MQ) ? (uint16_t)virtio_cfg32(&n.d, NET_CFG_PAIRS) : 1;
	if (virtio_has(&n.d, NET_F_CTRL_VQ))
		n.cq = (uint16_t)(2 * *pairs);
	if (n.cq >= VIRTIO_MAX_QUEUES)
		n.cq = 0; /* beyond what this driver sets up: no control checks */
	if (!virtio_setup_queue(&n.d, RXQ) || !virtio_setup_queue(&n.d, TXQ) ||
	    (n.cq && !virtio_setup_queue(&n.d, n.cq)) || !virtio_driver_ok(&n.d))
		return false;
	for (int i = 0; i < 6; i++)
		n.mac[i] = virtio_has(&n.d, NET_F_MAC) ? virtio_cfg8(&n.d, NET_CFG_MAC + i) : 0;
	if (!virtio_has(&n.d, NET_F_MAC))
		memcpy(n.mac, "\x02\x00\x00\x00\x00\x01", 6);
	for (int i = 0; i < NRX && i < n.d.vq[RXQ].size; i++)
		if (!post_rx(i))
			return false;
	virtio_kick(&n.d, RXQ);
	return true;
}

static const char *talk(void)
{
	uint64_t serve = 0, echo = 0;

	opt_u64("net_pings", 10, &pings);
	opt_u64("net_serve_ms", 10, &serve);
	opt_u64("net_serve_echo", 10, &echo);
	if (pings > 31)
		return "bad-option";
	want_served = (uint32_t)echo;
	for (int i = 0; i < 5 && !n.peer_known; i++) {
		if (!send_arp(1, (const uint8_t *)"\0\0\0\0\0\0", n.peer) ||
		    !run_until(ms_from_now(1000), peer_resolved))
			return n.d.fail;
	}
	if (!n.peer_known)
		return "no-arp-reply";
	for (uint32_t s = 0; s < pings; s++) {
		want_replies = s + 1;
		if (!send_ping((uint16_t)s) || !run_until(ms_from_now(2000), all_replies))
			return n.d.fail;
	}
	if (n.replies < pings)
		return "no-echo-reply";
	if (serve && !run_until(ms_from_now(serve), served_enough))
		return n.d.fail;
	if (echo && n.served_echo < echo)
		return "not-served";
	return NULL;
}

static void line_mac(struct line *l, const uint8_t *m)
{
	line_str(l, " mac=");
	for (int i = 0; i < 6; i++) {
		if (i)
			line_chr(l, ':');
		line_chr(l, "0123456789abcdef"[m[i] >> 4]);
		line_chr(l, "0123456789abcdef"[m[i] & 15]);
	}
}

void run_virtio_net(void)
{
	const char *reason = NULL, *link = "unknown", *ctrl_state = "absent";
	uint16_t pairs = 0;
	struct line l;

	memset(&n, 0, sizeof(n));
	if (!net_parse_ip("net_ip", "10.0.2.15", n.ip) ||
	    !net_parse_ip("net_peer", "10.0.2.1", n.peer))
		reason = "bad-option";
	if (!reason && !setup(&pairs))
		reason = n.d.fail;
	if (!reason && virtio_has(&n.d, NET_F_STATUS)) {
		link = (virtio_cfg8(&n.d, NET_CFG_STATUS) & 1) ? "up" : "down";
		if (link[0] == 'd')
			reason = "link-down";
	}
	if (!reason && n.cq) {
		reason = ctrl_checks(pairs);
		ctrl_state = reason ? "fail" : "ok";
	}
	if (!reason)
		reason = talk();
	if (n.d.common)
		virtio_reset(&n.d);

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-net result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_mac(&l, n.mac);
	line_kv_str(&l, "link", link);
	line_kv_dec(&l, "max_pairs", pairs);
	line_kv_dec(&l, "mrg", virtio_has(&n.d, NET_F_MRG));
	line_kv_str(&l, "ctrl", ctrl_state);
	line_kv_str(&l, "arp", n.peer_known ? "ok" : "none");
	line_kv_dec(&l, "pings", pings);
	line_kv_dec(&l, "replies", n.replies);
	line_kv_dec(&l, "served_arp", n.served_arp);
	line_kv_dec(&l, "served_echo", n.served_echo);
	line_kv_dec(&l, "rx", n.rx);
	line_kv_dec(&l, "tx", n.tx);
	if (n.d.pci)
		virtio_line_common(&l, &n.d);
	line_emit(&l);
}
