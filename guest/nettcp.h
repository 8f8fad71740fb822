/* SPDX-License-Identifier: MIT */
/*
 * A minimal TCP (RFC 793 subset) over netstack.c, for test=netprobe
 * (nettcp.c): one connection at a time, in-order data only, one MSS option,
 * SYN/data/FIN retransmitted a few times, RST honoured when its sequence
 * number is exactly the expected one. Every wait has a deadline.
 */
#ifndef BUNSHIN_GUEST_NETTCP_H
#define BUNSHIN_GUEST_NETTCP_H

#include "netstack.h"

#define TCP_MSS 1400

enum tcp_state { TCP_CLOSED, TCP_LISTEN, TCP_SYN_SENT, TCP_SYN_RCVD, TCP_EST, TCP_DONE };

struct tcp_conn {
	enum tcp_state state;
	uint8_t peer[4], mac[6];
	uint16_t lport, rport;
	uint32_t iss, snd_una, snd_nxt, rcv_nxt;
	bool peer_fin, reset, refused;
	volatile bool event;	 /* something happened: wakes ns_poll */
	uint8_t *rx;		 /* received bytes, the first rx_cap kept */
	uint32_t rx_cap, rx_len; /* kept */
	uint32_t rx_total, bad;	 /* received in order; segments refused */
	/* The client has all it wants (an HTTP body of Content-Length bytes); NULL: until FIN. */
	bool (*done)(const struct tcp_conn *c);
};

/* The handler for IP protocol 6 (install with ns_set_handler(6, tcp_input)). */
void tcp_input(const struct ns_pkt *p);

/*
 * A client exchange: connect to ip:port, send [msg, msg + len), read until
 * the peer closes, c->done says so, or ms pass after the connect (which
 * has ms too). Returns "ok", "refused", "reset" or "timeout"; c->rx holds
 * what came.
 */
const char *tcp_client(struct tcp_conn *c, const uint8_t *ip, uint16_t port, const uint8_t *msg,
		       uint32_t len, uint64_t ms);

/*
 * Serves port until the TSC passes end: accepts one connection at a time,
 * echoes its first line and closes. Returns the number of lines echoed;
 * *fail set on a device failure.
 */
uint32_t tcp_serve(struct tcp_conn *c, uint16_t port, uint64_t end, bool *fail);

#endif
