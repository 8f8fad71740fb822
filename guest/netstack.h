/* SPDX-License-Identifier: MIT */
/*
 * A small IPv4 stack on the first virtio-net device (netstack.c), shared by
 * test=dhcp and test=netprobe: device setup and a DHCP lease (ns_up), ARP
 * (answered, and resolved for the next hop), IPv4 out, and a receive
 * dispatcher that hands checked packets to one handler per IP protocol.
 */
#ifndef BUNSHIN_GUEST_NETSTACK_H
#define BUNSHIN_GUEST_NETSTACK_H

#include "net.h"
#include "virtio.h"

#define NS_MTU	   1500
#define NS_PAYLOAD (NS_MTU - 20) /* the most one ns_payload() holds */

/* What one DHCP server message said, filled only from a packet that passed every check. */
struct ns_lease {
	uint8_t type, yiaddr[4], server[4], mask[4], router[4], dns[4];
	bool has_server, has_mask, has_router, has_dns;
	uint32_t lease;
};

/* One received IPv4 packet, header and lengths already checked. */
struct ns_pkt {
	const uint8_t *src_mac, *ip; /* ip: the IPv4 header */
	const uint8_t *src, *dst;    /* addresses inside it */
	const uint8_t *data;	     /* the protocol's part (after the IP header) */
	uint32_t len;		     /* its length, from the IP total length */
};

typedef void (*ns_handler)(const struct ns_pkt *p);

struct netstack {
	struct virtio_dev d;
	uint8_t mac[6], ip[4];
	struct ns_lease lease;
	uint32_t offers, naks, bad;
	uint32_t rx, tx;
};

extern struct netstack g_ns;

/* The device, the link check and a lease: NULL, or a fail word (dhcp.c's). */
const char *ns_up(uint64_t tries, uint64_t wait_ms);
void ns_down(void);

/* Handler for IP protocol proto (1, 6, 17); NULL drops. ICMP echo to us is answered first. */
void ns_set_handler(uint8_t proto, ns_handler h);

/* The MAC of the next hop to ip (ip itself on the leased subnet, else the router). */
bool ns_resolve(const uint8_t *ip, uint8_t *mac, uint64_t ms);
bool ns_on_link(const uint8_t *ip);

/*
 * Where the IPv4 payload of the next frame goes: out = the main path, else
 * the reply buffer for handlers (a handler may answer while the main path
 * has a frame half-built).
 */
uint8_t *ns_payload(bool reply);
/* Sends what ns_payload(reply) holds: len bytes of proto from src (NULL: ours) to dst via dst_mac.
 */
bool ns_send_ipv4(bool reply, const uint8_t *dst_mac, const uint8_t *src_mac, const uint8_t *src,
		  const uint8_t *dst, uint8_t proto, uint32_t len);

/* The TCP/UDP checksum with the IPv4 pseudo-header. */
uint16_t ns_l4_csum(const uint8_t *src, const uint8_t *dst, uint8_t proto, const uint8_t *p,
		    uint32_t len);

/* Serves the receive queue until *flag or ms pass; false on a device failure. */
bool ns_poll(volatile bool *flag, uint64_t ms);

/* A dotted IPv4 address in [s, s + n). */
bool ns_parse_ip(const char *s, size_t n, uint8_t *ip);
void ns_line_ip(struct line *l, const char *key, const uint8_t *ip, bool has);

#endif
