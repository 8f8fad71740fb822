/* SPDX-License-Identifier: MIT */
/*
 * test=dhcp: a DHCPv4 client (RFC 2131/2132) on the first virtio-net device.
 * DISCOVER, OFFER, REQUEST, ACK broadcast from 0.0.0.0:68 to
 * 255.255.255.255:67 with the device's MAC, then ARP and one ping to the
 * router it was given. Everything received is checked before it is used
 * (lengths, xid, chaddr, cookie, option lengths): a hostile server gets its
 * packet ignored and counted in bad=, never a crash. The client itself is
 * netstack.c's, shared with test=netprobe.
 *   BUNSHIN-TEST name=dhcp result=pass mac=M ip=A.B.C.D router=A.B.C.D|none
 *     mask=A.B.C.D|none dns=A.B.C.D|none server=A.B.C.D lease=S offers=N
 *     naks=N bad=N ping=ok|fail|skip
 * Options: dhcp_tries=N (DISCOVERs, default 4, at most 16), dhcp_wait_ms=N
 * (per try, default 2000), virtio_poll, virtio_features.
 * Fail words: bad-option, no-offer, no-ack, link-down, plus virtio.c's.
 */
#include "netstack.h"

#define PING_ID 0x4448

static bool pong;

static void on_icmp(const struct ns_pkt *p)
{
	if (p->len >= 8 && !memcmp(p->src, g_ns.lease.router, 4) && p->data[0] == 0 &&
	    net_get16(p->data + 4) == PING_ID)
		pong = true;
}

static bool send_ping(const uint8_t *mac, uint16_t seq)
{
	uint8_t *icmp = ns_payload(false);

	memset(icmp, 0, 40);
	icmp[0] = 8;
	net_put16(icmp + 4, PING_ID);
	net_put16(icmp + 6, seq);
	for (int i = 8; i < 40; i++)
		icmp[i] = (uint8_t)i;
	net_put16(icmp + 2, net_csum(icmp, 40));
	return ns_send_ipv4(false, mac, NULL, NULL, g_ns.lease.router, 1, 40);
}

static const char *ping_router(void)
{
	uint8_t mac[6];

	if (!ns_resolve(g_ns.lease.router, mac, 3000))
		return "fail";
	ns_set_handler(1, on_icmp);
	for (uint16_t s = 0; s < 3 && !pong; s++)
		if (!send_ping(mac, s) || !ns_poll(&pong, 1000))
			return "fail";
	return pong ? "ok" : "fail";
}

static void report(const char *reason, const char *ping)
{
	const struct ns_lease *ls = &g_ns.lease;
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
		line_chr(&l, "0123456789abcdef"[g_ns.mac[i] >> 4]);
		line_chr(&l, "0123456789abcdef"[g_ns.mac[i] & 15]);
	}
	if (!reason) {
		ns_line_ip(&l, "ip", g_ns.ip, true);
		ns_line_ip(&l, "router", ls->router, ls->has_router);
		ns_line_ip(&l, "mask", ls->mask, ls->has_mask);
		ns_line_ip(&l, "dns", ls->dns, ls->has_dns);
		ns_line_ip(&l, "server", ls->server, true);
		line_kv_dec(&l, "lease", ls->lease);
	}
	line_kv_dec(&l, "offers", g_ns.offers);
	line_kv_dec(&l, "naks", g_ns.naks);
	line_kv_dec(&l, "bad", g_ns.bad);
	line_kv_str(&l, "ping", ping);
	line_emit(&l);
}

void run_dhcp(void)
{
	uint64_t tries = 4, wait_ms = 2000;
	const char *reason = NULL, *ping = "skip";

	pong = false;
	opt_u64("dhcp_tries", 10, &tries);
	opt_u64("dhcp_wait_ms", 10, &wait_ms);
	if (!tries || tries > 16 || !wait_ms || wait_ms > 60000)
		reason = "bad-option";
	else
		reason = ns_up(tries, wait_ms);
	if (!reason && g_ns.lease.has_router)
		ping = ping_router();
	ns_down();
	report(reason, ping);
}
