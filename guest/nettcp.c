/* SPDX-License-Identifier: MIT */
/*
 * test=netprobe's TCP (see nettcp.h). Deliberately small: one connection,
 * no window scaling, no out-of-order queue (a gap gets a duplicate ACK and
 * the peer retransmits), a fixed 500 ms retransmission timer. Hostile
 * segments (bad checksum, wrong ports, acks of data never sent, RSTs with a
 * guessed sequence number) are dropped and counted in bad, never trusted.
 */
#include "nettcp.h"

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10

#define RTO_MS 500
#define TRIES  6
#define WINDOW 8192

static struct tcp_conn *cur; /* the one connection tcp_input feeds */
static uint16_t port_seq;

static void put32(uint8_t *p, uint32_t v)
{
	net_put16(p, (uint16_t)(v >> 16));
	net_put16(p + 2, (uint16_t)v);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)net_get16(p) << 16 | net_get16(p + 2);
}

static bool seq_gt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

static uint64_t deadline(uint64_t ms)
{
	return rdtsc() + ms * (tsc_hz() / 1000);
}

static bool before(uint64_t end)
{
	return (int64_t)(rdtsc() - end) < 0;
}

/* Serves the receive queue until the connection has news or end; false on a device failure. */
static bool tcp_wait(struct tcp_conn *c, uint64_t end)
{
	int64_t left = (int64_t)(end - rdtsc());

	if (left <= 0)
		return true;
	c->event = false;
	return ns_poll(&c->event, (uint64_t)left / (tsc_hz() / 1000) + 1);
}

static bool tcp_out(struct tcp_conn *c, bool reply, uint8_t flags, uint32_t seq,
		    const uint8_t *data, uint32_t len)
{
	uint8_t *t = ns_payload(reply);
	uint32_t hl = (flags & SYN) ? 24 : 20;

	if (hl + len > NS_PAYLOAD)
		return false;
	memset(t, 0, hl);
	net_put16(t, c->lport);
	net_put16(t + 2, c->rport);
	put32(t + 4, seq);
	put32(t + 8, (flags & ACK) ? c->rcv_nxt : 0);
	t[12] = (uint8_t)(hl / 4 << 4);
	t[13] = flags;
	net_put16(t + 14, WINDOW);
	if (flags & SYN) {
		t[20] = 2; /* MSS */
		t[21] = 4;
		net_put16(t + 22, TCP_MSS);
	}
	if (len)
		memcpy(t + hl, data, len);
	net_put16(t + 16, ns_l4_csum(g_ns.ip, c->peer, 6, t, hl + len));
	return ns_send_ipv4(reply, c->mac, NULL, NULL, c->peer, 6, hl + len);
}

static void take_data(struct tcp_conn *c, const uint8_t *d, uint32_t n)
{
	uint32_t keep = c->rx_cap - c->rx_len;

	if (keep > n)
		keep = n;
	if (keep)
		memcpy(c->rx + c->rx_len, d, keep);
	c->rx_len += keep;
	c->rx_total += n;
	c->rcv_nxt += n;
}

/* A SYN to a listening port: the connection is this peer's now. */
static void input_listen(struct tcp_conn *c, const struct ns_pkt *p, uint8_t flags, uint32_t seq)
{
	if ((flags & (SYN | ACK | RST | FIN)) != SYN)
		return;
	memcpy(c->peer, p->src, 4);
	memcpy(c->mac, p->src_mac, 6);
	c->rport = net_get16(p->data);
	c->rcv_nxt = seq + 1;
	c->iss = (uint32_t)rdtsc() * 2654435761u;
	c->snd_una = c->iss;
	c->snd_nxt = c->iss + 1;
	c->state = TCP_SYN_RCVD;
	tcp_out(c, true, SYN | ACK, c->iss, NULL, 0);
}

static void input_syn_sent(struct tcp_conn *c, uint8_t flags, uint32_t seq, uint32_t ack)
{
	if ((flags & ACK) && ack != c->snd_nxt) {
		c->bad++;
		return;
	}
	if (flags & RST) {
		if (flags & ACK) {
			c->refused = true;
			c->state = TCP_DONE;
		}
		return;
	}
	if ((flags & (SYN | ACK)) != (SYN | ACK))
		return;
	c->rcv_nxt = seq + 1;
	c->snd_una = ack;
	c->state = TCP_EST;
	tcp_out(c, true, ACK, c->snd_nxt, NULL, 0);
}

/* SYN_RCVD and ESTABLISHED: acks, in-order data, FIN, RST. */
static void input_sync(struct tcp_conn *c, const uint8_t *t, uint32_t doff, uint32_t len)
{
	uint8_t flags = t[13];
	uint32_t seq = get32(t + 4), ack = get32(t + 8), dlen = len - doff;

	if (flags & RST) {
		if (seq == c->rcv_nxt) {
			c->reset = true;
			c->state = TCP_DONE;
		} else {
			c->bad++;
		}
		return;
	}
	if (flags & SYN) { /* our SYN-ACK was lost, or a bogus SYN: answer, never reset */
		if (c->state == TCP_SYN_RCVD && seq + 1 == c->rcv_nxt)
			tcp_out(c, true, SYN | ACK, c->iss, NULL, 0);
		else
			tcp_out(c, true, ACK, c->snd_nxt, NULL, 0);
		return;
	}
	if (!(flags & ACK) || seq_gt(ack, c->snd_nxt) ||
	    (c->state == TCP_SYN_RCVD && !seq_gt(ack, c->iss))) {
		c->bad++;
		if (flags & ACK)
			tcp_out(c, true, ACK, c->snd_nxt, NULL, 0);
		return;
	}
	if (seq_gt(ack, c->snd_una))
		c->snd_una = ack;
	if (c->state == TCP_SYN_RCVD)
		c->state = TCP_EST;
	if (!dlen && !(flags & FIN))
		return;
	if (seq == c->rcv_nxt && !c->peer_fin) {
		take_data(c, t + doff, dlen);
		if (flags & FIN) {
			c->rcv_nxt++;
			c->peer_fin = true;
		}
	}
	tcp_out(c, true, ACK, c->snd_nxt, NULL, 0); /* a duplicate when out of order */
}

void tcp_input(const struct ns_pkt *p)
{
	struct tcp_conn *c = cur;
	const uint8_t *t = p->data;
	uint32_t doff;

	if (!c || c->state == TCP_CLOSED || c->state == TCP_DONE || p->len < 20)
		return;
	doff = (t[12] >> 4) * 4u;
	if (net_get16(t + 2) != c->lport)
		return;
	if (doff < 20 || doff > p->len || ns_l4_csum(p->src, p->dst, 6, t, p->len)) {
		c->bad++;
		return;
	}
	c->event = true;
	if (c->state == TCP_LISTEN) {
		input_listen(c, p, t[13], get32(t + 4));
		return;
	}
	if (net_get16(t) != c->rport || memcmp(p->src, c->peer, 4))
		return;
	if (c->state == TCP_SYN_SENT)
		input_syn_sent(c, t[13], get32(t + 4), get32(t + 8));
	else
		input_sync(c, t, doff, p->len);
}

/* Sends [d, d + n) (plus flags, FIN counted) and retransmits until acked or end. */
static bool send_acked(struct tcp_conn *c, const uint8_t *d, uint32_t n, uint8_t flags,
		       uint64_t end)
{
	uint32_t seq = c->snd_nxt;
	uint64_t rto = 0;
	int sent = 0;

	c->snd_nxt += n + ((flags & FIN) ? 1 : 0);
	while (c->state == TCP_EST && seq_gt(c->snd_nxt, c->snd_una) && before(end)) {
		if (!before(rto)) {
			if (sent++ == TRIES)
				break;
			if (!tcp_out(c, false, flags | ACK, seq, d, n))
				return false;
			rto = deadline(RTO_MS);
		}
		if (!tcp_wait(c, rto < end ? rto : end))
			return false;
	}
	return true;
}

/* Retransmits the SYN until the handshake is done or end. */
static bool syn_sent(struct tcp_conn *c, uint64_t end)
{
	uint64_t rto = 0;
	int sent = 0;

	while (c->state == TCP_SYN_SENT && before(end)) {
		if (!before(rto)) {
			if (sent++ == TRIES)
				break;
			if (!tcp_out(c, false, SYN, c->iss, NULL, 0))
				return false;
			rto = deadline(RTO_MS);
		}
		if (!tcp_wait(c, rto < end ? rto : end))
			return false;
	}
	return true;
}

static void conn_init(struct tcp_conn *c)
{
	c->peer_fin = c->reset = c->refused = false;
	c->rx_len = c->rx_total = 0;
	c->iss = (uint32_t)rdtsc() * 2654435761u;
	c->snd_una = c->iss;
	c->snd_nxt = c->iss + 1;
}

const char *tcp_client(struct tcp_conn *c, const uint8_t *ip, uint16_t port, const uint8_t *msg,
		       uint32_t len, uint64_t ms)
{
	uint64_t end;
	const char *res = "timeout";

	conn_init(c);
	c->state = TCP_CLOSED;
	if (len > TCP_MSS || !ns_resolve(ip, c->mac, 1000))
		return res;
	memcpy(c->peer, ip, 4);
	c->rport = port;
	c->lport = (uint16_t)(49152 + ((uint32_t)rdtsc() + port_seq++ * 7919u) % 16384);
	c->state = TCP_SYN_SENT;
	cur = c;
	ns_set_handler(6, tcp_input);
	if (!syn_sent(c, deadline(ms)) || c->state != TCP_EST)
		goto out;
	end = deadline(ms);
	if (!send_acked(c, msg, len, PSH, end))
		goto out;
	while (c->state == TCP_EST && !c->peer_fin && !(c->done && c->done(c)) && before(end))
		if (!tcp_wait(c, end))
			goto out;
	if (c->peer_fin || (c->state == TCP_EST && c->done && c->done(c))) {
		res = "ok";
		send_acked(c, NULL, 0, FIN, deadline(RTO_MS * 2));
	} else if (c->state == TCP_EST) {
		tcp_out(c, false, RST | ACK, c->snd_nxt, NULL, 0);
	}
out:
	if (c->refused)
		res = "refused";
	else if (c->reset)
		res = "reset";
	c->state = TCP_DONE;
	cur = NULL;
	return res;
}

static const uint8_t *find_nl(const struct tcp_conn *c)
{
	for (uint32_t i = 0; i < c->rx_len; i++)
		if (c->rx[i] == '\n')
			return c->rx + i;
	return NULL;
}

/* One accepted connection: its first line back, then FIN; true when echoed. */
static bool serve_one(struct tcp_conn *c, uint64_t end, bool *fail)
{
	uint64_t rto = deadline(RTO_MS), conn_end = deadline(2000);
	const uint8_t *nl = NULL;
	int sent = 1;

	if (conn_end > end)
		conn_end = end;
	while (before(conn_end) && c->state != TCP_DONE && !c->peer_fin &&
	       !(c->state == TCP_EST && (nl = find_nl(c)))) {
		if (c->state == TCP_SYN_RCVD && !before(rto) && sent++ < TRIES) {
			tcp_out(c, false, SYN | ACK, c->iss, NULL, 0);
			rto = deadline(RTO_MS);
		}
		if (!tcp_wait(c, rto < conn_end ? rto : conn_end)) {
			*fail = true;
			return false;
		}
	}
	if (!nl) {
		if (c->state == TCP_EST || c->state == TCP_SYN_RCVD)
			tcp_out(c, false, RST | ACK, c->snd_nxt, NULL, 0);
		return false;
	}
	if (!send_acked(c, c->rx, (uint32_t)(nl - c->rx) + 1, PSH | FIN, conn_end)) {
		*fail = true;
		return false;
	}
	while (c->state == TCP_EST && !c->peer_fin && before(conn_end))
		if (!tcp_wait(c, conn_end)) {
			*fail = true;
			return false;
		}
	return true;
}

uint32_t tcp_serve(struct tcp_conn *c, uint16_t port, uint64_t end, bool *fail)
{
	uint32_t served = 0;

	cur = c;
	c->lport = port;
	ns_set_handler(6, tcp_input);
	while (before(end) && !*fail) {
		conn_init(c);
		c->state = TCP_LISTEN;
		while (c->state == TCP_LISTEN && before(end))
			if (!tcp_wait(c, end)) {
				*fail = true;
				break;
			}
		if (c->state != TCP_LISTEN && c->state != TCP_DONE && serve_one(c, end, fail))
			served++;
	}
	c->state = TCP_DONE;
	cur = NULL;
	return served;
}
