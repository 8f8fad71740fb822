/* SPDX-License-Identifier: MIT */
/*
 * test=dhcp: a DHCPv4 client (RFC 2131/2132) on the first virtio-net device.
 * DISCOVER, OFFER, REQUEST, ACK broadcast from 0.0.0.0:68 to
 * 255.255.255.255:67 with the device's MAC, then ARP and one ping to the
 * router it was given. Everything received is checked before it is used
 * (lengths, xid, chaddr, cookie, option lengths): a hostile server gets its
 * packet ignored and counted in bad=, never a crash.
 *   BUNSHIN-TEST name=dhcp result=pass mac=M ip=A.B.C.D router=A.B.C.D|none
 *     mask=A.B.C.D|none dns=A.B.C.D|none server=A.B.C.D lease=S offers=N
 *     naks=N bad=N ping=ok|fail|skip
 * Options: dhcp_tries=N (DISCOVERs, default 4, at most 16), dhcp_wait_ms=N
 * (per try, default 2000), virtio_poll, virtio_features.
 * Fail words: bad-option, no-offer, no-ack, link-down, plus virtio.c's.
 */
#include "net.h"
#include "virtio.h"

#define NET_F_MAC    5
#define NET_F_STATUS 16
#define NET_HDR	     12
#define ETH_HLEN     14
#define NRX	     16
#define RXBUF	     2048
#define RXQ	     0
#define TXQ	     1

#define BOOTP_LEN  236 /* the fixed part, up to the magic cookie */
#define OPT_MASK   1
#define OPT_ROUTER 3
#define OPT_DNS	   6
#define OPT_REQIP  50
#define OPT_LEASE  51
#define OPT_TYPE   53
#define OPT_SERVER 54
#define OPT_PARAMS 55
#define OPT_END	   255
#define DISCOVER   1
#define OFFER	   2
#define REQUEST	   3
#define ACK	   5
#define NAK	   6
#define PING_ID	   0x4448

static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t cookie[4] = {99, 130, 83, 99};

/* What one server message said, filled only from a packet that passed every check. */
struct dhcp_msg {
	uint8_t type, yiaddr[4], server[4], mask[4], router[4], dns[4];
	bool has_server, has_mask, has_router, has_dns;
	uint32_t lease;
};

struct dhcp {
	struct virtio_dev d;
	uint8_t mac[6], ip[4], router_mac[6];
	uint32_t xid;
	struct dhcp_msg got, lease;
	bool have_msg, router_known, pong;
	uint32_t offers, naks, bad;
};

static struct dhcp c;
static uint8_t rxbuf[NRX][RXBUF] __attribute__((aligned(64)));
static uint8_t rx_slot[VQ_MAX_SIZE];
static uint8_t txbuf[RXBUF] __attribute__((aligned(64)));

/* ---- the device ---- */

static bool post_rx(int slot)
{
	struct vbuf b = {rxbuf[slot], RXBUF, true};
	int head = virtio_submit(&c.d, RXQ, &b, 1);

	if (head < 0)
		return false;
	rx_slot[head] = (uint8_t)slot;
	return true;
}

static bool setup(void)
{
	if (!virtio_find(&c.d, 1, 0) ||
	    !virtio_init(&c.d, 1ULL << NET_F_MAC | 1ULL << NET_F_STATUS))
		return false;
	if (!virtio_setup_queue(&c.d, RXQ) || !virtio_setup_queue(&c.d, TXQ) ||
	    !virtio_driver_ok(&c.d))
		return false;
	for (int i = 0; i < 6; i++)
		c.mac[i] = virtio_has(&c.d, NET_F_MAC) ? virtio_cfg8(&c.d, i) : 0;
	if (!virtio_has(&c.d, NET_F_MAC))
		memcpy(c.mac, "\x02\x00\x00\x00\x00\x01", 6);
	for (int i = 0; i < NRX && i < c.d.vq[RXQ].size; i++)
		if (!post_rx(i))
			return false;
	virtio_kick(&c.d, RXQ);
	return true;
}

/* Sends the frame built at txbuf + NET_HDR (len bytes from the Ethernet header). */
static bool send_frame(uint32_t len)
{
	struct vbuf b = {txbuf, NET_HDR + len, false};

	memset(txbuf, 0, NET_HDR);
	return virtio_request(&c.d, TXQ, &b, 1, NULL);
}

static uint8_t *eth(const uint8_t *dst, uint16_t type)
{
	uint8_t *f = txbuf + NET_HDR;

	memcpy(f, dst, 6);
	memcpy(f + 6, c.mac, 6);
	net_put16(f + 12, type);
	return f + ETH_HLEN;
}

/* An IPv4 header at ip for len payload bytes of protocol proto. */
static void ipv4(uint8_t *ip, uint8_t proto, const uint8_t *src, const uint8_t *dst, uint32_t len)
{
	memset(ip, 0, 20);
	ip[0] = 0x45;
	net_put16(ip + 2, (uint16_t)(20 + len));
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	net_put16(ip + 10, net_csum(ip, 20));
}

/* ---- DHCP out ---- */

static uint8_t *opt(uint8_t *o, uint8_t code, const void *data, uint8_t len)
{
	o[0] = code;
	o[1] = len;
	memcpy(o + 2, data, len);
	return o + 2 + len;
}

/* A DISCOVER, or a REQUEST for the offer in c.lease. */
static bool send_dhcp(uint8_t type)
{
	static const uint8_t zero[4], all[4] = {255, 255, 255, 255};
	static const uint8_t params[] = {OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_LEASE, OPT_SERVER};
	uint8_t *ip = eth(bcast_mac, 0x0800), *udp = ip + 20, *b = udp + 8, *o;
	uint32_t len;

	memset(b, 0, BOOTP_LEN);
	b[0] = 1; /* BOOTREQUEST */
	b[1] = 1; /* Ethernet */
	b[2] = 6;
	memcpy(b + 4, &c.xid, 4);
	net_put16(b + 10, 0x8000); /* broadcast: we cannot take unicast before we have an address */
	memcpy(b + 28, c.mac, 6);
	memcpy(b + BOOTP_LEN, cookie, 4);
	o = opt(b + BOOTP_LEN + 4, OPT_TYPE, &type, 1);
	if (type == REQUEST) {
		o = opt(o, OPT_REQIP, c.lease.yiaddr, 4);
		o = opt(o, OPT_SERVER, c.lease.server, 4);
	}
	o = opt(o, OPT_PARAMS, params, sizeof(params));
	*o++ = OPT_END;
	while ((o - b) < 300) /* BOOTP's minimum message, which some relays insist on */
		*o++ = 0;
	len = (uint32_t)(o - udp);
	net_put16(udp, 68);
	net_put16(udp + 2, 67);
	net_put16(udp + 4, (uint16_t)len);
	net_put16(udp + 6, 0); /* optional in IPv4 */
	ipv4(ip, 17, zero, all, len);
	return send_frame(ETH_HLEN + 20 + len);
}

/* ---- DHCP in ---- */

/* One option into m; false when its length is wrong for its code. */
static bool take_opt(struct dhcp_msg *m, uint8_t code, const uint8_t *v, uint8_t len)
{
	switch (code) {
	case OPT_TYPE:
		if (len != 1)
			return false;
		m->type = v[0];
		return true;
	case OPT_LEASE:
		if (len != 4)
			return false;
		m->lease = (uint32_t)net_get16(v) << 16 | net_get16(v + 2);
		return true;
	case OPT_SERVER:
	case OPT_MASK:
		if (len != 4)
			return false;
		memcpy(code == OPT_MASK ? m->mask : m->server, v, 4);
		*(code == OPT_MASK ? &m->has_mask : &m->has_server) = true;
		return true;
	case OPT_ROUTER:
	case OPT_DNS:
		if (len < 4 || len % 4)
			return false;
		memcpy(code == OPT_DNS ? m->dns : m->router, v, 4); /* the first one */
		*(code == OPT_DNS ? &m->has_dns : &m->has_router) = true;
		return true;
	}
	return true;
}

/* Walks the options in [o, end): every length inside the packet, an END seen. */
static bool parse_opts(struct dhcp_msg *m, const uint8_t *o, const uint8_t *end)
{
	while (o < end) {
		uint8_t code = *o++;
		if (code == 0)
			continue;
		if (code == OPT_END)
			return true;
		if (o >= end || *o > end - o - 1)
			return false;
		if (!take_opt(m, code, o + 1, *o))
			return false;
		o += 1 + *o;
	}
	return false;
}

static bool mask_ok(const uint8_t *m)
{
	uint32_t v = (uint32_t)net_get16(m) << 16 | net_get16(m + 2);

	return v && (~v & (~v + 1)) == 0; /* ones then zeroes */
}

/* A BOOTREPLY in [b, b + len) for us; false (counted bad) when anything is off. */
static bool parse_dhcp(const uint8_t *b, uint32_t len, struct dhcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	if (len < BOOTP_LEN + 4 || b[0] != 2 || b[1] != 1 || b[2] != 6)
		return false;
	if (memcmp(b + 4, &c.xid, 4) || memcmp(b + 28, c.mac, 6) ||
	    memcmp(b + BOOTP_LEN, cookie, 4))
		return false;
	memcpy(m->yiaddr, b + 16, 4);
	if (!parse_opts(m, b + BOOTP_LEN + 4, b + len))
		return false;
	if (m->type == NAK)
		return m->has_server;
	if ((m->type != OFFER && m->type != ACK) || !m->has_server)
		return false;
	/* 0.x, multicast, class E and broadcast are no address to take */
	if (m->yiaddr[0] == 0 || m->yiaddr[0] >= 224 || (m->has_mask && !mask_ok(m->mask)))
		return false;
	return true;
}

/* UDP to port 68 in an IPv4 packet; the BOOTP payload or NULL. */
static const uint8_t *udp_payload(const uint8_t *p, uint32_t len, uint32_t *plen)
{
	uint32_t ihl, tot, ulen;
	const uint8_t *u;

	if (len < 20 || (p[0] >> 4) != 4 || p[9] != 17)
		return NULL;
	ihl = (p[0] & 15) * 4u;
	tot = net_get16(p + 2);
	if (ihl < 20 || tot < ihl + 8 || tot > len || (net_get16(p + 6) & 0x3fff))
		return NULL; /* short, truncated or a fragment */
	u = p + ihl;
	ulen = net_get16(u + 4);
	if (net_get16(u) != 67 || net_get16(u + 2) != 68 || ulen < 8 || ulen > tot - ihl)
		return NULL;
	*plen = ulen - 8;
	return u + 8;
}

/* ---- ARP and ping ---- */

static bool send_arp(uint16_t op, const uint8_t *tha, const uint8_t *tpa)
{
	uint8_t *a = eth(op == 1 ? bcast_mac : tha, 0x0806);

	net_put16(a, 1);
	net_put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	net_put16(a + 6, op);
	memcpy(a + 8, c.mac, 6);
	memcpy(a + 14, c.ip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	return send_frame(ETH_HLEN + 28);
}

static bool send_ping(uint16_t seq)
{
	uint8_t *ip = eth(c.router_mac, 0x0800), *icmp = ip + 20;

	memset(icmp, 0, 40);
	icmp[0] = 8;
	net_put16(icmp + 4, PING_ID);
	net_put16(icmp + 6, seq);
	for (int i = 8; i < 40; i++)
		icmp[i] = (uint8_t)i;
	net_put16(icmp + 2, net_csum(icmp, 40));
	ipv4(ip, 1, c.ip, c.lease.router, 40);
	return send_frame(ETH_HLEN + 20 + 40);
}

/* ARP for our address is answered once we have one; the router's reply is noted. */
static bool handle_arp(const uint8_t *a, uint32_t len)
{
	static const uint8_t zero[4];

	if (len < 28 || net_get16(a) != 1 || net_get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4)
		return true;
	if (!memcmp(c.ip, zero, 4))
		return true;
	if (net_get16(a + 6) == 2 && !memcmp(a + 14, c.lease.router, 4)) {
		memcpy(c.router_mac, a + 8, 6);
		c.router_known = true;
	}
	if (net_get16(a + 6) == 1 && !memcmp(a + 24, c.ip, 4))
		return send_arp(2, a + 8, a + 14);
	return true;
}

static void handle_ipv4(const uint8_t *p, uint32_t len)
{
	uint32_t plen, ihl = (p[0] & 15) * 4u;
	const uint8_t *b = udp_payload(p, len, &plen);

	if (b) {
		if (parse_dhcp(b, plen, &c.got))
			c.have_msg = true;
		else
			c.bad++;
		return;
	}
	if (len >= 20 + 8 && (p[0] >> 4) == 4 && p[9] == 1 && ihl >= 20 && len >= ihl + 8 &&
	    !memcmp(p + 12, c.lease.router, 4) && p[ihl] == 0 && net_get16(p + ihl + 4) == PING_ID)
		c.pong = true;
}

/* Handles every frame received so far; false on a device failure. */
static bool drain_rx(void)
{
	uint32_t len;
	int id;
	bool any = false;

	while ((id = virtio_get_used(&c.d, RXQ, &len)) >= 0) {
		int slot = rx_slot[id];
		const uint8_t *f = rxbuf[slot] + NET_HDR;
		uint32_t flen = len > RXBUF ? RXBUF - NET_HDR : (len > NET_HDR ? len - NET_HDR : 0);

		any = true;
		if (flen >= ETH_HLEN && (!memcmp(f, c.mac, 6) || !memcmp(f, bcast_mac, 6))) {
			if (net_get16(f + 12) == 0x0806 &&
			    !handle_arp(f + ETH_HLEN, flen - ETH_HLEN))
				return false;
			if (net_get16(f + 12) == 0x0800)
				handle_ipv4(f + ETH_HLEN, flen - ETH_HLEN);
		}
		if (!post_rx(slot))
			return false;
	}
	if (any)
		virtio_kick(&c.d, RXQ);
	return id != -2 && !c.d.fail;
}

/* Serves the receive queue until *flag or ms pass; false on a device failure. */
static bool wait_for(volatile bool *flag, uint64_t ms)
{
	uint64_t end = rdtsc() + ms * (tsc_hz() / 1000);

	for (;;) {
		if (!drain_rx())
			return false;
		if (*flag || (int64_t)(rdtsc() - end) > 0)
			return true;
		if (!virtio_wait_used(&c.d, RXQ, 50) && c.d.fail && !memcmp(c.d.fail, "timeout", 8))
			c.d.fail = NULL;
		if (c.d.fail)
			return false;
	}
}

/* ---- the exchange ---- */

/* Waits for a message of type want (or a NAK) from the right server. */
static bool wait_msg(uint8_t want, uint64_t ms)
{
	uint64_t end = rdtsc() + ms * (tsc_hz() / 1000);

	for (;;) {
		uint64_t now = rdtsc();
		if ((int64_t)(now - end) >= 0)
			return true;
		c.have_msg = false;
		if (!wait_for(&c.have_msg, (end - now) / (tsc_hz() / 1000) + 1))
			return false;
		if (!c.have_msg)
			return true;
		if (want == ACK && memcmp(c.got.server, c.lease.server, 4))
			continue; /* another server's answer to our broadcast REQUEST */
		if (c.got.type == want || (want == ACK && c.got.type == NAK))
			return true;
	}
}

static const char *exchange(uint64_t tries, uint64_t wait_ms)
{
	for (uint64_t t = 0; t < tries; t++) {
		c.xid = (uint32_t)rdtsc() ^ (uint32_t)(t << 24);
		c.got.type = 0;
		if (!send_dhcp(DISCOVER) || !wait_msg(OFFER, wait_ms))
			return c.d.fail;
		if (c.got.type != OFFER)
			continue;
		c.offers++;
		c.lease = c.got;
		c.got.type = 0;
		if (!send_dhcp(REQUEST) || !wait_msg(ACK, wait_ms))
			return c.d.fail;
		if (c.got.type == NAK) {
			c.naks++;
			continue;
		}
		if (c.got.type != ACK || memcmp(c.got.yiaddr, c.lease.yiaddr, 4))
			continue;
		c.lease = c.got;
		memcpy(c.ip, c.lease.yiaddr, 4);
		return NULL;
	}
	return c.offers ? "no-ack" : "no-offer";
}

static const char *ping_router(void)
{
	for (int i = 0; i < 3 && !c.router_known; i++)
		if (!send_arp(1, (const uint8_t *)"\0\0\0\0\0\0", c.lease.router) ||
		    !wait_for(&c.router_known, 1000))
			return "fail";
	for (uint16_t s = 0; c.router_known && s < 3 && !c.pong; s++)
		if (!send_ping(s) || !wait_for(&c.pong, 1000))
			return "fail";
	return c.pong ? "ok" : "fail";
}

static void line_ip(struct line *l, const char *key, const uint8_t *ip, bool has)
{
	line_chr(l, ' ');
	line_str(l, key);
	line_chr(l, '=');
	if (!has) {
		line_str(l, "none");
		return;
	}
	for (int i = 0; i < 4; i++) {
		if (i)
			line_chr(l, '.');
		line_dec(l, ip[i]);
	}
}

static void report(const char *reason, const char *ping)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=dhcp result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_str(&l, " mac=");
	for (int i = 0; i < 6; i++) {
		if (i)
			line_chr(&l, ':');
		line_chr(&l, "0123456789abcdef"[c.mac[i] >> 4]);
		line_chr(&l, "0123456789abcdef"[c.mac[i] & 15]);
	}
	if (!reason) {
		line_ip(&l, "ip", c.ip, true);
		line_ip(&l, "router", c.lease.router, c.lease.has_router);
		line_ip(&l, "mask", c.lease.mask, c.lease.has_mask);
		line_ip(&l, "dns", c.lease.dns, c.lease.has_dns);
		line_ip(&l, "server", c.lease.server, true);
		line_kv_dec(&l, "lease", c.lease.lease);
	}
	line_kv_dec(&l, "offers", c.offers);
	line_kv_dec(&l, "naks", c.naks);
	line_kv_dec(&l, "bad", c.bad);
	line_kv_str(&l, "ping", ping);
	line_emit(&l);
}

void run_dhcp(void)
{
	uint64_t tries = 4, wait_ms = 2000;
	const char *reason = NULL, *ping = "skip";

	memset(&c, 0, sizeof(c));
	opt_u64("dhcp_tries", 10, &tries);
	opt_u64("dhcp_wait_ms", 10, &wait_ms);
	if (!tries || tries > 16 || !wait_ms || wait_ms > 60000)
		reason = "bad-option";
	if (!reason && !setup())
		reason = c.d.fail;
	if (!reason && virtio_has(&c.d, NET_F_STATUS) && !(virtio_cfg8(&c.d, 6) & 1))
		reason = "link-down";
	if (!reason)
		reason = exchange(tries, wait_ms);
	if (!reason && c.lease.has_router)
		ping = ping_router();
	if (c.d.common)
		virtio_reset(&c.d);
	report(reason, ping);
}
