/* SPDX-License-Identifier: MIT */
/*
 * The IPv4 stack of test=dhcp and test=netprobe (see netstack.h): the first
 * virtio-net device, a DHCPv4 client (RFC 2131/2132), ARP (RFC 826) with a
 * small cache, IPv4 out and a checked receive path. DISCOVER, OFFER,
 * REQUEST, ACK are broadcast from 0.0.0.0:68 to 255.255.255.255:67 with the
 * device's MAC. Everything received is checked before it is used (lengths,
 * xid, chaddr, cookie, option lengths, IP header checksum): a hostile peer
 * gets its packet ignored (DHCP replies counted in bad=), never a crash.
 */
#include "netstack.h"

#define NET_F_MAC    5
#define NET_F_STATUS 16
#define NET_HDR	     12
#define ETH_HLEN     14
#define NRX	     16
#define RXBUF	     2048
#define RXQ	     0
#define TXQ	     1
#define NARP	     8

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

struct netstack g_ns;

static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t cookie[4] = {99, 130, 83, 99};
static const uint8_t zero_ip[4];

/* DHCP exchange state, and the ARP cache (the newest entry replaces the oldest). */
static struct {
	uint32_t xid;
	struct ns_lease got;
	bool have_msg;
	struct {
		uint8_t ip[4], mac[6];
		bool valid;
	} arp[NARP];
	uint32_t arp_next;
	bool arp_new;
	ns_handler handler[3]; /* ICMP, TCP, UDP */
} s;

static uint8_t rxbuf[NRX][RXBUF] __attribute__((aligned(64)));
static uint8_t rx_slot[VQ_MAX_SIZE];
static uint8_t txbuf[2][RXBUF] __attribute__((aligned(64))); /* main path, replies */

/* ---- the device ---- */

static bool post_rx(int slot)
{
	struct vbuf b = {rxbuf[slot], RXBUF, true};
	int head = virtio_submit(&g_ns.d, RXQ, &b, 1);

	if (head < 0)
		return false;
	rx_slot[head] = (uint8_t)slot;
	return true;
}

static bool setup(void)
{
	struct virtio_dev *d = &g_ns.d;

	if (!virtio_find(d, 1, 0) || !virtio_init(d, 1ULL << NET_F_MAC | 1ULL << NET_F_STATUS))
		return false;
	if (!virtio_setup_queue(d, RXQ) || !virtio_setup_queue(d, TXQ) || !virtio_driver_ok(d))
		return false;
	for (int i = 0; i < 6; i++)
		g_ns.mac[i] = virtio_has(d, NET_F_MAC) ? virtio_cfg8(d, i) : 0;
	if (!virtio_has(d, NET_F_MAC))
		memcpy(g_ns.mac, "\x02\x00\x00\x00\x00\x01", 6);
	for (int i = 0; i < NRX && i < d->vq[RXQ].size; i++)
		if (!post_rx(i))
			return false;
	virtio_kick(d, RXQ);
	return true;
}

/* Sends the frame built at txbuf[reply] + NET_HDR (len bytes from the Ethernet header). */
static bool send_frame(bool reply, uint32_t len)
{
	struct vbuf b = {txbuf[reply], NET_HDR + len, false};

	memset(txbuf[reply], 0, NET_HDR);
	g_ns.tx++;
	return virtio_request(&g_ns.d, TXQ, &b, 1, NULL);
}

static uint8_t *eth(bool reply, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	uint8_t *f = txbuf[reply] + NET_HDR;

	memcpy(f, dst, 6);
	memcpy(f + 6, src ? src : g_ns.mac, 6);
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

uint8_t *ns_payload(bool reply)
{
	return txbuf[reply] + NET_HDR + ETH_HLEN + 20;
}

bool ns_send_ipv4(bool reply, const uint8_t *dst_mac, const uint8_t *src_mac, const uint8_t *src,
		  const uint8_t *dst, uint8_t proto, uint32_t len)
{
	if (len > NS_PAYLOAD)
		return false;
	ipv4(eth(reply, dst_mac, src_mac, 0x0800), proto, src ? src : g_ns.ip, dst, len);
	return send_frame(reply, ETH_HLEN + 20 + len);
}

uint16_t ns_l4_csum(const uint8_t *src, const uint8_t *dst, uint8_t proto, const uint8_t *p,
		    uint32_t len)
{
	uint32_t sum = 0;

	for (int i = 0; i < 4; i += 2)
		sum += net_get16(src + i) + net_get16(dst + i);
	sum += proto + len;
	for (uint32_t i = 0; i + 1 < len; i += 2)
		sum += net_get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* ---- DHCP out ---- */

static uint8_t *opt(uint8_t *o, uint8_t code, const void *data, uint8_t len)
{
	o[0] = code;
	o[1] = len;
	memcpy(o + 2, data, len);
	return o + 2 + len;
}

/* A DISCOVER, or a REQUEST for the offer in g_ns.lease. */
static bool send_dhcp(uint8_t type)
{
	static const uint8_t all[4] = {255, 255, 255, 255};
	static const uint8_t params[] = {OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_LEASE, OPT_SERVER};
	uint8_t *ip = eth(false, bcast_mac, NULL, 0x0800), *udp = ip + 20, *b = udp + 8, *o;
	uint32_t len;

	memset(b, 0, BOOTP_LEN);
	b[0] = 1; /* BOOTREQUEST */
	b[1] = 1; /* Ethernet */
	b[2] = 6;
	memcpy(b + 4, &s.xid, 4);
	net_put16(b + 10, 0x8000); /* broadcast: we cannot take unicast before we have an address */
	memcpy(b + 28, g_ns.mac, 6);
	memcpy(b + BOOTP_LEN, cookie, 4);
	o = opt(b + BOOTP_LEN + 4, OPT_TYPE, &type, 1);
	if (type == REQUEST) {
		o = opt(o, OPT_REQIP, g_ns.lease.yiaddr, 4);
		o = opt(o, OPT_SERVER, g_ns.lease.server, 4);
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
	ipv4(ip, 17, zero_ip, all, len);
	return send_frame(false, ETH_HLEN + 20 + len);
}

/* ---- DHCP in ---- */

/* One option into m; false when its length is wrong for its code. */
static bool take_opt(struct ns_lease *m, uint8_t code, const uint8_t *v, uint8_t len)
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
static bool parse_opts(struct ns_lease *m, const uint8_t *o, const uint8_t *end)
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
static bool parse_dhcp(const uint8_t *b, uint32_t len, struct ns_lease *m)
{
	memset(m, 0, sizeof(*m));
	if (len < BOOTP_LEN + 4 || b[0] != 2 || b[1] != 1 || b[2] != 6)
		return false;
	if (memcmp(b + 4, &s.xid, 4) || memcmp(b + 28, g_ns.mac, 6) ||
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

/* UDP 67 -> 68 in a checked IPv4 packet: the BOOTP payload, or NULL. */
static const uint8_t *bootp_payload(const struct ns_pkt *p, uint32_t *plen)
{
	const uint8_t *u = p->data;
	uint32_t ulen;

	if (p->ip[9] != 17 || p->len < 8)
		return NULL;
	ulen = net_get16(u + 4);
	if (net_get16(u) != 67 || net_get16(u + 2) != 68 || ulen < 8 || ulen > p->len)
		return NULL;
	*plen = ulen - 8;
	return u + 8;
}

/* ---- ARP ---- */

static bool send_arp(bool reply, uint16_t op, const uint8_t *tha, const uint8_t *tpa)
{
	uint8_t *a = eth(reply, op == 1 ? bcast_mac : tha, NULL, 0x0806);

	net_put16(a, 1);
	net_put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	net_put16(a + 6, op);
	memcpy(a + 8, g_ns.mac, 6);
	memcpy(a + 14, g_ns.ip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	return send_frame(reply, ETH_HLEN + 28);
}

static int arp_find(const uint8_t *ip)
{
	for (int i = 0; i < NARP; i++)
		if (s.arp[i].valid && !memcmp(s.arp[i].ip, ip, 4))
			return i;
	return -1;
}

static void arp_learn(const uint8_t *ip, const uint8_t *mac)
{
	int i = arp_find(ip);

	if (mac[0] & 1)
		return; /* a multicast sender is a lie */
	if (i < 0) {
		i = (int)(s.arp_next++ % NARP);
		memcpy(s.arp[i].ip, ip, 4);
		s.arp[i].valid = true;
	}
	memcpy(s.arp[i].mac, mac, 6);
	s.arp_new = true;
}

/* ARP for our address is answered once we have one; replies to us are learned. */
static bool handle_arp(const uint8_t *a, uint32_t len)
{
	if (len < 28 || net_get16(a) != 1 || net_get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4)
		return true;
	if (!memcmp(g_ns.ip, zero_ip, 4))
		return true;
	if (net_get16(a + 6) == 2 && !memcmp(a + 24, g_ns.ip, 4))
		arp_learn(a + 14, a + 8);
	if (net_get16(a + 6) == 1 && !memcmp(a + 24, g_ns.ip, 4))
		return send_arp(true, 2, a + 8, a + 14);
	return true;
}

bool ns_on_link(const uint8_t *ip)
{
	const uint8_t *m = g_ns.lease.mask;

	if (!g_ns.lease.has_mask)
		return true;
	for (int i = 0; i < 4; i++)
		if ((ip[i] & m[i]) != (g_ns.ip[i] & m[i]))
			return false;
	return true;
}

bool ns_resolve(const uint8_t *ip, uint8_t *mac, uint64_t ms)
{
	const uint8_t *hop = ip;
	uint64_t per = ms / 3 ? ms / 3 : 1;
	int i;

	if (!ns_on_link(ip)) {
		if (!g_ns.lease.has_router)
			return false;
		hop = g_ns.lease.router;
	}
	for (int t = 0; t < 3 && (i = arp_find(hop)) < 0; t++) {
		uint64_t end = rdtsc() + per * (tsc_hz() / 1000);
		if (!send_arp(false, 1, (const uint8_t *)"\0\0\0\0\0\0", hop))
			return false;
		while (arp_find(hop) < 0 && (int64_t)(rdtsc() - end) < 0) {
			s.arp_new = false;
			if (!ns_poll(&s.arp_new, per))
				return false;
		}
	}
	i = arp_find(hop);
	if (i < 0)
		return false;
	memcpy(mac, s.arp[i].mac, 6);
	return true;
}

/* ---- receive ---- */

void ns_set_handler(uint8_t proto, ns_handler h)
{
	if (proto == 1)
		s.handler[0] = h;
	else if (proto == 6)
		s.handler[1] = h;
	else if (proto == 17)
		s.handler[2] = h;
}

/* An echo request to us gets its reply from the reply buffer. */
static void echo_reply(const struct ns_pkt *p)
{
	uint8_t *o = ns_payload(true);

	if (p->len < 8 || p->len > NS_PAYLOAD || p->data[0] != 8 || net_csum(p->data, p->len))
		return;
	memcpy(o, p->data, p->len);
	o[0] = 0;
	net_put16(o + 2, 0);
	net_put16(o + 2, net_csum(o, p->len));
	ns_send_ipv4(true, p->src_mac, NULL, NULL, p->src, 1, p->len);
}

static void handle_ipv4(const uint8_t *mac, const uint8_t *ip, uint32_t len)
{
	struct ns_pkt p;
	uint32_t ihl, tot, blen;
	const uint8_t *b;
	ns_handler h = NULL;

	if (len < 20 || (ip[0] >> 4) != 4)
		return;
	ihl = (ip[0] & 15) * 4u;
	tot = net_get16(ip + 2);
	if (ihl < 20 || tot < ihl || tot > len || (net_get16(ip + 6) & 0x3fff) || net_csum(ip, ihl))
		return; /* short, truncated, a fragment or damaged */
	p = (struct ns_pkt){mac, ip, ip + 12, ip + 16, ip + ihl, tot - ihl};
	b = bootp_payload(&p, &blen);
	if (b) {
		if (parse_dhcp(b, blen, &s.got))
			s.have_msg = true;
		else
			g_ns.bad++;
		return;
	}
	if (!memcmp(g_ns.ip, zero_ip, 4) || memcmp(p.dst, g_ns.ip, 4))
		return; /* not ours */
	if (ip[9] == 1) {
		echo_reply(&p);
		h = s.handler[0];
	} else if (ip[9] == 6) {
		h = s.handler[1];
	} else if (ip[9] == 17) {
		h = s.handler[2];
	}
	if (h)
		h(&p);
}

/* Handles every frame received so far; false on a device failure. */
static bool drain_rx(void)
{
	uint32_t len, budget = NRX * 4; /* a flood must not keep the caller from its deadline */
	int id = -1;
	bool any = false;

	while (budget-- && (id = virtio_get_used(&g_ns.d, RXQ, &len)) >= 0) {
		int slot = rx_slot[id];
		const uint8_t *f = rxbuf[slot] + NET_HDR;
		uint32_t flen = len > RXBUF ? RXBUF - NET_HDR : (len > NET_HDR ? len - NET_HDR : 0);

		any = true;
		g_ns.rx++;
		if (flen >= ETH_HLEN && (!memcmp(f, g_ns.mac, 6) || !memcmp(f, bcast_mac, 6))) {
			if (net_get16(f + 12) == 0x0806 &&
			    !handle_arp(f + ETH_HLEN, flen - ETH_HLEN))
				return false;
			if (net_get16(f + 12) == 0x0800)
				handle_ipv4(f + 6, f + ETH_HLEN, flen - ETH_HLEN);
		}
		if (!post_rx(slot))
			return false;
	}
	if (any)
		virtio_kick(&g_ns.d, RXQ);
	return id != -2 && !g_ns.d.fail;
}

bool ns_poll(volatile bool *flag, uint64_t ms)
{
	uint64_t end = rdtsc() + ms * (tsc_hz() / 1000);

	for (;;) {
		if (!drain_rx())
			return false;
		if ((flag && *flag) || (int64_t)(rdtsc() - end) > 0)
			return true;
		if (!virtio_wait_used(&g_ns.d, RXQ, 50) && g_ns.d.fail &&
		    !memcmp(g_ns.d.fail, "timeout", 8))
			g_ns.d.fail = NULL;
		if (g_ns.d.fail)
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
		s.have_msg = false;
		if (!ns_poll(&s.have_msg, (end - now) / (tsc_hz() / 1000) + 1))
			return false;
		if (!s.have_msg)
			return true;
		if (want == ACK && memcmp(s.got.server, g_ns.lease.server, 4))
			continue; /* another server's answer to our broadcast REQUEST */
		if (s.got.type == want || (want == ACK && s.got.type == NAK))
			return true;
	}
}

static const char *exchange(uint64_t tries, uint64_t wait_ms)
{
	for (uint64_t t = 0; t < tries; t++) {
		s.xid = (uint32_t)rdtsc() ^ (uint32_t)(t << 24);
		s.got.type = 0;
		if (!send_dhcp(DISCOVER) || !wait_msg(OFFER, wait_ms))
			return g_ns.d.fail;
		if (s.got.type != OFFER)
			continue;
		g_ns.offers++;
		g_ns.lease = s.got;
		s.got.type = 0;
		if (!send_dhcp(REQUEST) || !wait_msg(ACK, wait_ms))
			return g_ns.d.fail;
		if (s.got.type == NAK) {
			g_ns.naks++;
			continue;
		}
		if (s.got.type != ACK || memcmp(s.got.yiaddr, g_ns.lease.yiaddr, 4))
			continue;
		g_ns.lease = s.got;
		memcpy(g_ns.ip, g_ns.lease.yiaddr, 4);
		return NULL;
	}
	return g_ns.offers ? "no-ack" : "no-offer";
}

const char *ns_up(uint64_t tries, uint64_t wait_ms)
{
	memset(&g_ns, 0, sizeof(g_ns));
	memset(&s, 0, sizeof(s));
	if (!setup())
		return g_ns.d.fail ? g_ns.d.fail : "no-device";
	if (virtio_has(&g_ns.d, NET_F_STATUS) && !(virtio_cfg8(&g_ns.d, 6) & 1))
		return "link-down";
	return exchange(tries, wait_ms);
}

void ns_down(void)
{
	if (g_ns.d.common)
		virtio_reset(&g_ns.d);
}

/* ---- text ---- */

bool ns_parse_ip(const char *v, size_t len, uint8_t *ip)
{
	size_t i = 0;

	for (int k = 0; k < 4; k++) {
		size_t j = i;
		uint64_t x;
		while (j < len && v[j] != '.')
			j++;
		if (j == i || j - i > 3 || !parse_u64(v + i, j - i, 10, &x) || x > 255 ||
		    (k < 3 && j == len))
			return false;
		ip[k] = (uint8_t)x;
		i = j + 1;
	}
	return i >= len;
}

void ns_line_ip(struct line *l, const char *key, const uint8_t *ip, bool has)
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
