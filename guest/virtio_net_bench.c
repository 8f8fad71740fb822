/* SPDX-License-Identifier: MIT */
/*
 * test=net-bench: virtio-net throughput and latency rows for bench/net.sh,
 * driven the same way on every VMM (the device is found, negotiated and
 * driven by this code only, so the VMM is the only thing that differs).
 *
 * The queues are polled (no MSI-X): under PVM every interrupt runs the
 * guest's CPL-0 handler in the instruction emulator, which would measure
 * that emulator rather than the VMM. Polling keeps the whole data path at
 * CPL 3, where the guest runs natively; notifications to the device still
 * follow EVENT_IDX / NO_NOTIFY through virtio_kick().
 *
 * Rows, in the order given by net_rows= (default rtt,tx,rx):
 *   rtt  the guest pings net_peer (the host kernel answers in its softirq,
 *        no host process in the path) one echo at a time, net_pings of
 *        them, and times each on the TSC:
 *        BUNSHIN-BENCH net row=rtt pings=N lost=N min_ns=N p50_ns=N p99_ns=N max_ns=N
 *   tx   prints "BUNSHIN-BENCH net tx-ready", waits net_gap_ms (default 0),
 *        then sends UDP datagrams of net_payload bytes to
 *        net_peer:net_tx_port, the transmit ring kept full for net_ms ms,
 *        then drained; us runs from the first submission to the last
 *        completion, bytes counts Ethernet frames (headers included, no
 *        virtio header):
 *        BUNSHIN-BENCH net row=tx frames=N bytes=N payload=N us=N ms=N kicks=N
 *   rx   prints "BUNSHIN-BENCH net rx-ready port=N" with every receive
 *        buffer posted, waits (net_rx_wait_ms) for the first UDP datagram
 *        to net_rx_port, then counts those for net_ms ms, re-posting each
 *        buffer as soon as it is read; bytes counts Ethernet frames:
 *        BUNSHIN-BENCH net row=rx frames=N bytes=N us=N ms=N other=N
 *   serve answers ARP and ICMP echo for the guest's address until
 *        net_serve_echo requests were answered or net_serve_ms passed, so
 *        that the host can ping the guest (prints "serve-ready" first):
 *        BUNSHIN-BENCH net row=serve echo=N arp=N us=N
 * then BUNSHIN-TEST name=net-bench result=pass|fail [reason=...] rows=N
 *   mac=... features=... indirect=0|1 event_idx=0|1 irq=poll
 *
 * Options: net_ip=A.B.C.D (10.0.2.15), net_peer=A.B.C.D (10.0.2.1),
 * net_via=A.B.C.D (net_peer: a router, whose MAC every frame to net_peer
 * is sent to, for a peer beyond it, as bench/instnet.sh's NAT rows),
 * net_ms=N (2000), net_payload=N (1472, 18..1472), net_tx_port=N (9000),
 * net_rx_port=N (9001), net_pings=N (1000, at most 4096), net_gap_ms=N (0),
 * net_rx_wait_ms=N (20000), net_serve_ms=N (20000), net_serve_echo=N
 * (100), net_rows=LIST, virtio_features=... (virtio.c).
 * Fail words: bad-option, no-arp-reply, no-echo-reply, tx-stuck, no-rx,
 * plus virtio.c's.
 */
#include "net.h"
#include "virtio.h"

#define NET_F_MAC     5
#define NET_F_MRG     15
#define NET_F_STATUS  16
#define NET_HDR	      12 /* virtio_net_hdr with num_buffers (VERSION_1) */
#define NET_CFG_MAC   0
#define RXQ	      0
#define TXQ	      1
#define BUF	      2048 /* every buffer: header + a 1514-byte frame fits */
#define ETH_HLEN      14
#define IP_HLEN	      20
#define UDP_HLEN      8
#define PAYLOAD_MAX   1472 /* 1500-byte MTU */
#define PAYLOAD_MIN   18   /* 14 + 20 + 8 + 18 = 60: the Ethernet minimum */
#define PINGS_MAX     4096
#define PING_ID	      0x4e42
#define PING_DATA     56
#define KICK_BATCH    16 /* refill this many before notifying, see tx_row() */
#define DRAIN_TIMEOUT 1000

struct bench {
	struct virtio_dev d;
	uint8_t mac[6], peer_mac[6], ip[4], peer[4];
	uint8_t via[4]; /* whose MAC peer_mac is: the peer's, or its router's */
	bool peer_known;
	uint64_t hz;
	uint16_t ip_id;
	/* what arrived outside of what a row was looking for */
	uint32_t other;
};

static struct bench b;
static uint8_t rxbuf[VQ_MAX_SIZE][BUF] __attribute__((aligned(64)));
static uint8_t txbuf[VQ_MAX_SIZE][BUF] __attribute__((aligned(64)));
static uint8_t rx_slot[VQ_MAX_SIZE]; /* descriptor head -> rxbuf index */
static uint8_t tx_slot[VQ_MAX_SIZE]; /* descriptor head -> txbuf index */
static uint8_t tx_free[VQ_MAX_SIZE]; /* stack of free txbuf indexes */
static uint32_t tx_nfree;
static uint32_t rtt_ns[PINGS_MAX];

static uint64_t opt_or(const char *key, uint64_t def)
{
	uint64_t v;

	return opt_u64(key, 10, &v) ? v : def;
}

static uint64_t cycles_to_ns(uint64_t c)
{
	/* c * 1e9 / hz without overflow for any sane c (c < 2^64 / 1000) */
	return c / b.hz * 1000000000ULL + (c % b.hz) * 1000000000ULL / b.hz;
}

static uint64_t ms_cycles(uint64_t ms)
{
	return ms * (b.hz / 1000);
}

static bool past(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}

/* ---- frames ---- */

/* Ethernet + IPv4 header at f; returns where the IPv4 payload starts. */
static uint8_t *ip_frame(uint8_t *f, const uint8_t *dst_mac, const uint8_t *dst_ip, uint8_t proto,
			 uint32_t len)
{
	uint8_t *ip = f + ETH_HLEN;

	memcpy(f, dst_mac, 6);
	memcpy(f + 6, b.mac, 6);
	net_put16(f + 12, 0x0800);
	memset(ip, 0, IP_HLEN);
	ip[0] = 0x45;
	net_put16(ip + 2, (uint16_t)(IP_HLEN + len));
	net_put16(ip + 4, b.ip_id++);
	net_put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, b.ip, 4);
	memcpy(ip + 16, dst_ip, 4);
	net_put16(ip + 10, net_csum(ip, IP_HLEN));
	return ip + IP_HLEN;
}

/* Submits buffer slot (header + len frame bytes) on the transmit queue; no kick. */
static bool tx_submit(uint8_t slot, uint32_t len)
{
	struct vbuf v = {txbuf[slot], NET_HDR + len, false};
	int head;

	memset(txbuf[slot], 0, NET_HDR);
	head = virtio_submit(&b.d, TXQ, &v, 1);
	if (head < 0)
		return false;
	tx_slot[head] = slot;
	return true;
}

/* Takes back every completed transmit buffer; how many, or -1 on a device failure. */
static int tx_reclaim(void)
{
	int id, n = 0;

	while ((id = virtio_get_used(&b.d, TXQ, NULL)) >= 0) {
		tx_free[tx_nfree++] = tx_slot[id];
		n++;
	}
	return id == -2 ? -1 : n;
}

/* A free transmit buffer, reclaiming (and waiting up to 1 s) if need be; -1 if none. */
static int tx_get(void)
{
	uint64_t deadline = rdtsc() + ms_cycles(DRAIN_TIMEOUT);

	while (!tx_nfree) {
		if (tx_reclaim() < 0 || past(deadline) || virtio_needs_reset(&b.d))
			return -1;
		cpu_relax();
	}
	return tx_free[--tx_nfree];
}

/* Sends one frame built by fill() in a free buffer and notifies the device. */
static bool tx_one(uint32_t (*fill)(uint8_t *f, const void *arg), const void *arg)
{
	int slot = tx_get();

	if (slot < 0)
		return false;
	if (!tx_submit((uint8_t)slot, fill(txbuf[slot] + NET_HDR, arg)))
		return false;
	virtio_kick(&b.d, TXQ);
	return true;
}

static void rx_post(uint8_t slot)
{
	struct vbuf v = {rxbuf[slot], BUF, true};
	int head = virtio_submit(&b.d, RXQ, &v, 1);

	if (head >= 0)
		rx_slot[head] = slot;
}

/*
 * The next received frame: its slot (re-post it with rx_post() when done)
 * and length without the virtio header, -1 when nothing is there, -2 on a
 * device failure. Every buffer holds a whole frame, so with MRG_RXBUF
 * num_buffers is always 1.
 */
static int rx_take(uint32_t *len)
{
	int id = virtio_get_used(&b.d, RXQ, len);

	if (id < 0)
		return id;
	*len = *len > BUF ? BUF - NET_HDR : (*len > NET_HDR ? *len - NET_HDR : 0);
	return rx_slot[id];
}

/* ---- ARP, ICMP ---- */

struct arp_args {
	uint16_t op;
	const uint8_t *tha, *tpa;
};

static uint32_t fill_arp(uint8_t *f, const void *arg)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	const struct arp_args *a = arg;
	uint8_t *p = f + ETH_HLEN;

	memcpy(f, a->op == 1 ? bcast : a->tha, 6);
	memcpy(f + 6, b.mac, 6);
	net_put16(f + 12, 0x0806);
	net_put16(p, 1);
	net_put16(p + 2, 0x0800);
	p[4] = 6;
	p[5] = 4;
	net_put16(p + 6, a->op);
	memcpy(p + 8, b.mac, 6);
	memcpy(p + 14, b.ip, 4);
	memcpy(p + 18, a->tha, 6);
	memcpy(p + 24, a->tpa, 4);
	return ETH_HLEN + 28;
}

struct echo_args {
	const uint8_t *dst_mac, *dst_ip;
	const uint8_t *icmp; /* the message to send, type and checksum rewritten */
	uint8_t type;
	uint32_t len;
};

static uint32_t fill_echo(uint8_t *f, const void *arg)
{
	const struct echo_args *e = arg;
	uint8_t *icmp = ip_frame(f, e->dst_mac, e->dst_ip, 1, e->len);

	memcpy(icmp, e->icmp, e->len);
	icmp[0] = e->type;
	icmp[1] = 0;
	net_put16(icmp + 2, 0);
	net_put16(icmp + 2, net_csum(icmp, e->len));
	return ETH_HLEN + IP_HLEN + e->len;
}

/* The IPv4 packet in frame f (len bytes) if it is for us: its header, else NULL. */
static const uint8_t *ip_for_us(const uint8_t *f, uint32_t len, uint32_t *ihl, uint32_t *tot)
{
	const uint8_t *ip = f + ETH_HLEN;

	if (len < ETH_HLEN + IP_HLEN || net_get16(f + 12) != 0x0800 || (ip[0] >> 4) != 4)
		return NULL;
	*ihl = (ip[0] & 15) * 4u;
	*tot = net_get16(ip + 2);
	if (*ihl < IP_HLEN || *tot < *ihl || *tot > len - ETH_HLEN || memcmp(ip + 16, b.ip, 4))
		return NULL;
	return ip;
}

/*
 * What every row does with a frame it was not looking for: learn the
 * peer's MAC from its ARP reply, answer ARP requests and (when serving)
 * echo requests for our address. Returns 1 for an answered echo request,
 * 2 for an answered ARP request, 0 otherwise, -1 on a device failure.
 */
static int handle_other(const uint8_t *f, uint32_t len, bool serve_echo)
{
	const uint8_t *p = f + ETH_HLEN, *ip;
	uint32_t ihl, tot;

	b.other++;
	if (len >= ETH_HLEN + 28 && net_get16(f + 12) == 0x0806 && net_get16(p) == 1 &&
	    net_get16(p + 2) == 0x0800) {
		if (net_get16(p + 6) == 2 && !memcmp(p + 14, b.via, 4)) {
			memcpy(b.peer_mac, p + 8, 6);
			b.peer_known = true;
		}
		if (net_get16(p + 6) == 1 && !memcmp(p + 24, b.ip, 4)) {
			struct arp_args a = {2, p + 8, p + 14};
			return tx_one(fill_arp, &a) ? 2 : -1;
		}
		return 0;
	}
	ip = ip_for_us(f, len, &ihl, &tot);
	if (serve_echo && ip && ip[9] == 1 && tot - ihl >= 8 && ip[ihl] == 8) {
		struct echo_args e = {f + 6, ip + 12, ip + ihl, 0, tot - ihl};
		return tx_one(fill_echo, &e) ? 1 : -1;
	}
	return 0;
}

/* ---- setup ---- */

static bool setup(void)
{
	uint64_t want = 1ULL << NET_F_MAC | 1ULL << NET_F_STATUS | 1ULL << NET_F_MRG;

	if (!virtio_find(&b.d, 1, 0))
		return false;
	b.d.use_irq = false; /* polled: see the top of the file */
	if (!virtio_init(&b.d, want) || !virtio_setup_queue(&b.d, RXQ) ||
	    !virtio_setup_queue(&b.d, TXQ) || !virtio_driver_ok(&b.d))
		return false;
	for (int i = 0; i < 6; i++)
		b.mac[i] = virtio_has(&b.d, NET_F_MAC) ? virtio_cfg8(&b.d, NET_CFG_MAC + i) : 0;
	if (!virtio_has(&b.d, NET_F_MAC))
		memcpy(b.mac, "\x02\x00\x00\x00\x00\x01", 6);
	for (uint32_t i = 0; i < b.d.vq[TXQ].size; i++)
		tx_free[tx_nfree++] = (uint8_t)i;
	for (uint32_t i = 0; i < b.d.vq[RXQ].size; i++)
		rx_post((uint8_t)i);
	virtio_kick(&b.d, RXQ);
	return !b.d.fail;
}

/* Handles everything received (nothing of it wanted) until the deadline or done(). */
static bool pump_until(uint64_t deadline, bool (*done)(void))
{
	for (;;) {
		uint32_t len;
		int slot;
		bool any = false;

		while ((slot = rx_take(&len)) >= 0) {
			int r = handle_other(rxbuf[slot] + NET_HDR, len, false);
			rx_post((uint8_t)slot);
			any = true;
			if (r < 0)
				return false;
		}
		if (slot == -2 || tx_reclaim() < 0)
			return false;
		if (any)
			virtio_kick(&b.d, RXQ);
		if ((done && done()) || past(deadline))
			return true;
		cpu_relax();
	}
}

static bool peer_known(void)
{
	return b.peer_known;
}

static const char *resolve_peer(void)
{
	static const uint8_t zero[6];

	for (int i = 0; i < 5 && !b.peer_known; i++) {
		struct arp_args a = {1, zero, b.via};
		if (!tx_one(fill_arp, &a) || !pump_until(rdtsc() + ms_cycles(1000), peer_known))
			return b.d.fail ? b.d.fail : "tx-stuck";
	}
	return b.peer_known ? NULL : "no-arp-reply";
}

/* ---- rows ---- */

static void sort_u32(uint32_t *v, uint32_t n)
{
	/* shell sort: a few thousand samples, no library */
	for (uint32_t gap = n / 2; gap; gap /= 2)
		for (uint32_t i = gap; i < n; i++) {
			uint32_t x = v[i], j = i;
			for (; j >= gap && v[j - gap] > x; j -= gap)
				v[j] = v[j - gap];
			v[j] = x;
		}
}

/* The sample at quantile q/100 (nearest rank). */
static uint32_t pct(const uint32_t *v, uint32_t n, uint32_t q)
{
	uint32_t r = (n * q + 99) / 100;

	return v[r ? r - 1 : 0];
}

static const char *rtt_row(void)
{
	uint64_t pings = opt_or("net_pings", 1000);
	uint8_t msg[8 + PING_DATA];
	uint32_t n = 0, lost = 0;
	struct line l;

	if (pings == 0 || pings > PINGS_MAX)
		return "bad-option";
	/*
	 * After the rx row the tap's queue may still be full of the sender's
	 * datagrams, and the host would drop the first echo reply behind them:
	 * take what is there first.
	 */
	if (!pump_until(rdtsc() + ms_cycles(100), NULL))
		return b.d.fail;
	for (uint32_t s = 0; s < pings; s++) {
		struct echo_args e = {b.peer_mac, b.peer, msg, 8, sizeof(msg)};
		uint64_t t0, deadline;
		bool got = false;

		net_put16(msg + 4, PING_ID);
		net_put16(msg + 6, (uint16_t)s);
		for (int i = 0; i < PING_DATA; i++)
			msg[8 + i] = (uint8_t)(i + s);
		t0 = rdtsc();
		if (!tx_one(fill_echo, &e))
			return b.d.fail ? b.d.fail : "tx-stuck";
		deadline = t0 + ms_cycles(1000);
		while (!got && !past(deadline)) {
			uint32_t len, ihl, tot;
			int slot = rx_take(&len);
			const uint8_t *f, *ip;

			if (slot == -2)
				return b.d.fail;
			if (slot < 0) {
				cpu_relax();
				continue;
			}
			f = rxbuf[slot] + NET_HDR;
			ip = ip_for_us(f, len, &ihl, &tot);
			if (ip && ip[9] == 1 && tot - ihl >= 8 && ip[ihl] == 0 &&
			    net_get16(ip + ihl + 4) == PING_ID &&
			    net_get16(ip + ihl + 6) == (uint16_t)s) {
				rtt_ns[n++] = (uint32_t)cycles_to_ns(rdtsc() - t0);
				got = true;
			} else if (handle_other(f, len, false) < 0) {
				return b.d.fail;
			}
			rx_post((uint8_t)slot);
			virtio_kick(&b.d, RXQ);
		}
		if (!got)
			lost++;
		if (tx_reclaim() < 0)
			return b.d.fail;
	}
	if (!n)
		return "no-echo-reply";
	sort_u32(rtt_ns, n);
	line_init(&l);
	line_str(&l, "BUNSHIN-BENCH net row=rtt");
	line_kv_dec(&l, "pings", pings);
	line_kv_dec(&l, "lost", lost);
	line_kv_dec(&l, "min_ns", rtt_ns[0]);
	line_kv_dec(&l, "p50_ns", pct(rtt_ns, n, 50));
	line_kv_dec(&l, "p99_ns", pct(rtt_ns, n, 99));
	line_kv_dec(&l, "max_ns", rtt_ns[n - 1]);
	line_emit(&l);
	return NULL;
}

/*
 * Whether virtio_kick() is about to notify (the same test, 2.7.10), for the
 * count in the tx row: a notification is a VM exit, which is what batching
 * saves. The device may move avail_event in between, so it is an estimate.
 */
static bool will_notify(const struct virtq *q)
{
	uint16_t old = q->kicked, now = q->avail_shadow;

	if (old == now)
		return false;
	if (virtio_has(&b.d, VIRTIO_F_EVENT_IDX))
		return (uint16_t)(now - q->used[2 + 4 * q->size] - 1) < (uint16_t)(now - old);
	return !(q->used[0] & VRING_USED_F_NO_NOTIFY);
}

/* One UDP datagram of payload bytes from sport to the peer's dport, in every tx buffer. */
static void udp_template(uint8_t *f, uint16_t sport, uint16_t dport, uint32_t payload)
{
	uint8_t *udp = ip_frame(f, b.peer_mac, b.peer, 17, UDP_HLEN + payload);

	net_put16(udp, sport);
	net_put16(udp + 2, dport);
	net_put16(udp + 4, (uint16_t)(UDP_HLEN + payload));
	net_put16(udp + 6, 0); /* no checksum: allowed for IPv4, and the same work on every VMM */
	for (uint32_t i = 0; i < payload; i++)
		udp[UDP_HLEN + i] = (uint8_t)(i * 7);
}

static const char *tx_row(uint64_t ms, uint32_t payload)
{
	uint16_t port = (uint16_t)opt_or("net_tx_port", 9000);
	uint32_t flen = ETH_HLEN + IP_HLEN + UDP_HLEN + payload, qsize = b.d.vq[TXQ].size;
	uint64_t frames = 0, kicks = 0, t0, t1, end, deadline;
	uint32_t inflight = 0;
	struct line l;

	/* everything back first (ARP, pings), so that inflight starts at 0 */
	deadline = rdtsc() + ms_cycles(DRAIN_TIMEOUT);
	while (tx_nfree < qsize) {
		if (tx_reclaim() < 0)
			return b.d.fail;
		if (past(deadline))
			return "tx-stuck";
	}
	for (uint32_t i = 0; i < qsize; i++)
		udp_template(txbuf[i] + NET_HDR, 40000, port, payload);
	/* a quiet gap after the line, so the host can sample the VMM's CPU time before we start */
	line_init(&l);
	line_str(&l, "BUNSHIN-BENCH net tx-ready");
	line_emit(&l);
	delay_us(opt_or("net_gap_ms", 0) * 1000);
	/*
	 * Keep the ring full, but refill in batches of KICK_BATCH: a kick per
	 * frame would be a VM exit per frame whenever the device is idle
	 * between two of them. With EVENT_IDX the device asks for a kick only
	 * when it has caught up, so most refills notify nobody.
	 */
	t0 = rdtsc();
	end = t0 + ms_cycles(ms);
	while (!past(end)) {
		int got = tx_reclaim();

		if (got < 0)
			return b.d.fail;
		frames += (uint32_t)got;
		inflight -= (uint32_t)got;
		if (tx_nfree >= KICK_BATCH || inflight == 0) {
			while (tx_nfree) {
				uint8_t slot = tx_free[--tx_nfree];
				/* the IP id differs per frame, like a real stack's */
				uint8_t *ip = txbuf[slot] + NET_HDR + ETH_HLEN;
				net_put16(ip + 4, b.ip_id++);
				net_put16(ip + 10, 0);
				net_put16(ip + 10, net_csum(ip, IP_HLEN));
				if (!tx_submit(slot, flen))
					return b.d.fail;
				inflight++;
			}
			kicks += will_notify(&b.d.vq[TXQ]);
			virtio_kick(&b.d, TXQ);
		} else {
			cpu_relax();
		}
	}
	/* what is in flight still counts, up to its completion */
	t1 = rdtsc();
	deadline = t1 + ms_cycles(DRAIN_TIMEOUT);
	while (inflight && !past(deadline)) {
		int got = tx_reclaim();

		if (got < 0)
			return b.d.fail;
		if (got) {
			frames += (uint32_t)got;
			inflight -= (uint32_t)got;
			t1 = rdtsc();
		}
	}
	if (inflight)
		return "tx-stuck";
	line_init(&l);
	line_str(&l, "BUNSHIN-BENCH net row=tx");
	line_kv_dec(&l, "frames", frames);
	line_kv_dec(&l, "bytes", frames * flen);
	line_kv_dec(&l, "payload", payload);
	line_kv_dec(&l, "us", cycles_to_ns(t1 - t0) / 1000);
	line_kv_dec(&l, "ms", cycles_to_ns(t1 - t0) / 1000000);
	line_kv_dec(&l, "kicks", kicks);
	line_emit(&l);
	return NULL;
}

/* A UDP datagram to our address and port? */
static bool is_udp_to(const uint8_t *f, uint32_t len, uint16_t port)
{
	uint32_t ihl, tot;
	const uint8_t *ip = ip_for_us(f, len, &ihl, &tot);

	return ip && ip[9] == 17 && tot - ihl >= UDP_HLEN && net_get16(ip + ihl + 2) == port;
}

static const char *rx_row(uint64_t ms)
{
	uint16_t port = (uint16_t)opt_or("net_rx_port", 9001);
	uint64_t frames = 0, bytes = 0, t0 = 0, end = 0, wait_end;
	uint32_t other0 = b.other, posted = 0;
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-BENCH net rx-ready");
	line_kv_dec(&l, "port", port);
	line_emit(&l);
	wait_end = rdtsc() + ms_cycles(opt_or("net_rx_wait_ms", 20000));
	for (;;) {
		uint32_t len;
		int slot = rx_take(&len);

		if (slot == -2)
			return b.d.fail;
		if (slot >= 0) {
			const uint8_t *f = rxbuf[slot] + NET_HDR;
			if (is_udp_to(f, len, port)) {
				if (!frames) {
					t0 = rdtsc();
					end = t0 + ms_cycles(ms);
				}
				frames++;
				bytes += len;
			} else if (handle_other(f, len, false) < 0) {
				return b.d.fail;
			}
			rx_post((uint8_t)slot);
			/* give buffers back in batches: one notification per batch at most */
			if (++posted >= KICK_BATCH) {
				virtio_kick(&b.d, RXQ);
				posted = 0;
			}
			if (frames && past(end))
				break;
			continue;
		}
		if (posted) {
			virtio_kick(&b.d, RXQ);
			posted = 0;
		}
		if (frames ? past(end) : past(wait_end))
			break;
		cpu_relax();
	}
	if (!frames)
		return "no-rx";
	line_init(&l);
	line_str(&l, "BUNSHIN-BENCH net row=rx");
	line_kv_dec(&l, "frames", frames);
	line_kv_dec(&l, "bytes", bytes);
	line_kv_dec(&l, "us", cycles_to_ns(rdtsc() - t0) / 1000);
	line_kv_dec(&l, "ms", cycles_to_ns(rdtsc() - t0) / 1000000);
	line_kv_dec(&l, "other", b.other - other0);
	line_emit(&l);
	return NULL;
}

static const char *serve_row(void)
{
	uint64_t want = opt_or("net_serve_echo", 100), t0, end;
	uint32_t echo = 0, arp = 0;
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-BENCH net serve-ready");
	line_emit(&l);
	t0 = rdtsc();
	end = t0 + ms_cycles(opt_or("net_serve_ms", 20000));
	while (echo < want && !past(end)) {
		uint32_t len;
		int slot = rx_take(&len), r;

		if (slot == -2)
			return b.d.fail;
		if (slot < 0) {
			if (tx_reclaim() < 0)
				return b.d.fail;
			cpu_relax();
			continue;
		}
		r = handle_other(rxbuf[slot] + NET_HDR, len, true);
		rx_post((uint8_t)slot);
		virtio_kick(&b.d, RXQ);
		if (r < 0)
			return b.d.fail;
		echo += r == 1;
		arp += r == 2;
	}
	line_init(&l);
	line_str(&l, "BUNSHIN-BENCH net row=serve");
	line_kv_dec(&l, "echo", echo);
	line_kv_dec(&l, "arp", arp);
	line_kv_dec(&l, "us", cycles_to_ns(rdtsc() - t0) / 1000);
	line_emit(&l);
	return NULL;
}

static bool word_is(const char *w, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(w, s, n) == 0;
}

static const char *run_rows(uint32_t *rows)
{
	const char *list = "rtt,tx,rx", *reason;
	size_t len = strlen(list), i = 0;
	uint64_t ms = opt_or("net_ms", 2000), payload = opt_or("net_payload", PAYLOAD_MAX);

	opt_get("net_rows", &list, &len);
	if (ms == 0 || ms > 600000 || payload < PAYLOAD_MIN || payload > PAYLOAD_MAX)
		return "bad-option";
	while (i < len) {
		size_t j = i;
		while (j < len && list[j] != ',')
			j++;
		if (word_is(list + i, j - i, "rtt"))
			reason = rtt_row();
		else if (word_is(list + i, j - i, "tx"))
			reason = tx_row(ms, (uint32_t)payload);
		else if (word_is(list + i, j - i, "rx"))
			reason = rx_row(ms);
		else if (word_is(list + i, j - i, "serve"))
			reason = serve_row();
		else
			reason = "bad-option";
		if (reason)
			return reason;
		++*rows;
		i = j + 1;
	}
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

void run_virtio_net_bench(void)
{
	const char *reason = NULL;
	uint32_t rows = 0;
	struct line l;

	memset(&b, 0, sizeof(b));
	tx_nfree = 0;
	b.hz = tsc_hz(); /* calibrated once, before anything is timed */
	if (!net_parse_ip("net_ip", "10.0.2.15", b.ip) ||
	    !net_parse_ip("net_peer", "10.0.2.1", b.peer) ||
	    !net_parse_ip("net_via", "0.0.0.0", b.via))
		reason = "bad-option";
	if (!memcmp(b.via, "\0\0\0\0", 4))
		memcpy(b.via, b.peer, 4);
	if (!reason && !setup())
		reason = b.d.fail;
	if (!reason)
		reason = resolve_peer();
	if (!reason)
		reason = run_rows(&rows);
	if (b.d.common)
		virtio_reset(&b.d);

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=net-bench result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_kv_dec(&l, "rows", rows);
	line_mac(&l, b.mac);
	if (b.d.pci)
		virtio_line_common(&l, &b.d);
	line_emit(&l);
}
