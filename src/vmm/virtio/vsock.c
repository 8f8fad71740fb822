// SPDX-License-Identifier: MIT
/*
 * The socket device (virtio 1.2, section 5.10), stream sockets only, with
 * unix sockets on the host side (see vsock.h for the protocol).
 *
 * Threads and locks: everything runs on the I/O thread (a driver's reset
 * included) except a reset by the VMM itself. Connection sockets are not
 * registered with the I/O thread one by one: it keeps removed handlers
 * until it is destroyed and has no way to change a watched fd's events,
 * and connections come and go and switch EPOLLIN/EPOLLOUT all the time.
 * They live on a private epoll instance instead, whose fd is the one thing
 * registered with the I/O thread. vs->lock guards the connections; it
 * nests inside the transport's lock (queue handlers, reset), and the
 * socket handler takes it alone and never the transport's lock.
 *
 * Guest memory is touched only in the queue handlers. The socket handler
 * never reads data from an open connection: it marks it readable, stops
 * polling it for input and kicks the rx queue, whose handler reads the
 * socket straight into a guest buffer, within the guest's credit. With no
 * credit or no rx buffer the data stays in the socket, and the socket's
 * own buffer is the back-pressure on the host program.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../devices/state.h"
#include "vsock.h"
#include "../../common/le.h"
#include "../../common/iov.h"

#define VSOCK_CLASS	0x078000 /* communication controller, other */
#define VSOCK_SEGS	130	 /* a 64 KiB payload in pages, a header, and slack */
#define VSOCK_HASH	1024
#define VSOCK_ORPHANS	64 /* RSTs for packets that matched no connection */
#define VSOCK_EVENTS	32
#define VSOCK_ACCEPTS	8
#define VSOCK_PORT_BASE 0x40000000U /* host ports we pick for host-initiated connections */
#define VSOCK_SHUT_BOTH (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)

enum conn_state {
	C_HANDSHAKE, /* host client accepted, reading "CONNECT <port>\n" */
	C_REQUESTED, /* REQUEST for the guest queued or sent, waiting for RESPONSE */
	C_OPEN,
	C_DEAD, /* socket closed, an RST for the guest still to send */
};

/* Control packets owed to the guest. */
#define P_REQUEST  1U
#define P_RESPONSE 2U
#define P_SHUTDOWN 4U
#define P_CREDIT   8U
#define P_RST	   16U

struct vsock_conn {
	struct virtio_vsock *vs;
	int fd;
	enum conn_state state;
	uint32_t local_port; /* host side */
	uint32_t peer_port;  /* guest side */
	unsigned int pend;
	uint32_t shut_send; /* flags of the SHUTDOWN we owe */
	uint32_t guest_shut;
	uint32_t events; /* armed on vs->epfd */
	bool in_epoll, hashed, queued;
	bool readable; /* input (or EOF) waits in the socket, EPOLLIN is off */
	bool hup;      /* the host program closed its end */
	bool host_eof; /* read returned 0 */
	bool closing;  /* guest shut both ways: RST once the buffer is flushed */

	/* credit (5.10.6.3): what the guest gave us, and what we gave it */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	uint32_t rx_cnt, fwd_cnt, fwd_sent;

	/* guest data the socket did not take yet: at most our buf_alloc */
	uint8_t *buf;
	uint32_t buf_head, buf_len;

	char line[VIRTIO_VSOCK_LINE_MAX];
	uint32_t line_len;

	struct vsock_conn *prev, *next; /* every connection */
	struct vsock_conn *hnext;	/* hash chain */
	struct vsock_conn *snext;	/* send list */
};

struct vsock_orphan {
	uint32_t local_port, peer_port;
};

struct virtio_vsock {
	struct virtio_pci *vp;
	struct iothread *io;
	pthread_mutex_t lock; /* everything below */
	uint32_t guest_cid;
	char uds[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd, epfd;
	bool bound, watched;
	bool listening; /* the listening socket is polled (not while out of fds) */

	struct vsock_conn *conns;
	struct vsock_conn *hash[VSOCK_HASH];
	unsigned int nconns;
	struct vsock_conn *send_head, *send_tail;
	struct vsock_conn *grave; /* freed once no epoll batch can point at them */
	struct vsock_orphan orphans[VSOCK_ORPHANS];
	unsigned int norphans;
	uint32_t next_port;

	/* An rx chain popped with nothing to put in it yet: virtq cannot un-pop. */
	bool rx_held;
	bool evt_reset;	   /* TRANSPORT_RESET owed to the guest (after a restore) */
	bool new_identity; /* restore takes guest_cid, not the recorded CID */
	struct virtq_elem rx_elem;
	struct iovec rx_iov[VSOCK_SEGS];
	struct iovec tx_iov[VSOCK_SEGS];
};

static const uint16_t vsock_qmax[VIRTIO_VSOCK_QUEUES] = {VIRTIO_VSOCK_QSIZE, VIRTIO_VSOCK_QSIZE,
							 VIRTIO_VSOCK_QSIZE};

static uint32_t min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* ---- scatter lists ---- */

/* dst = bytes [off, off + max) of iov[0, n), cut short where iov ends; returns the segments. */
static unsigned int iov_slice(const struct iovec *iov, unsigned int n, size_t off, size_t max,
			      struct iovec *dst, size_t *len)
{
	unsigned int cnt = 0;

	*len = 0;
	for (unsigned int i = 0; i < n && max; i++) {
		size_t l = iov[i].iov_len, take;

		if (off >= l) {
			off -= l;
			continue;
		}
		take = l - off < max ? l - off : max;
		dst[cnt++] = (struct iovec){(uint8_t *)iov[i].iov_base + off, take};
		*len += take;
		max -= take;
		off = 0;
	}
	return cnt;
}

/* ---- connection table ---- */

static unsigned int vsock_hash(uint32_t local, uint32_t peer)
{
	return ((local * 2654435761U) ^ peer) & (VSOCK_HASH - 1);
}

static struct vsock_conn *conn_find(struct virtio_vsock *vs, uint32_t local, uint32_t peer)
{
	for (struct vsock_conn *c = vs->hash[vsock_hash(local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

static void conn_hash_add(struct vsock_conn *c)
{
	struct virtio_vsock *vs = c->vs;
	unsigned int h = vsock_hash(c->local_port, c->peer_port);

	c->hnext = vs->hash[h];
	vs->hash[h] = c;
	c->hashed = true;
}

static void conn_hash_del(struct vsock_conn *c)
{
	struct vsock_conn **p = &c->vs->hash[vsock_hash(c->local_port, c->peer_port)];

	for (; *p; p = &(*p)->hnext) {
		if (*p == c) {
			*p = c->hnext;
			break;
		}
	}
	c->hashed = false;
}

static void conn_enqueue(struct vsock_conn *c)
{
	struct virtio_vsock *vs = c->vs;

	if (c->queued)
		return;
	c->queued = true;
	c->snext = NULL;
	if (vs->send_tail)
		vs->send_tail->snext = c;
	else
		vs->send_head = c;
	vs->send_tail = c;
}

static struct vsock_conn *conn_dequeue(struct virtio_vsock *vs)
{
	struct vsock_conn *c = vs->send_head;

	if (!c)
		return NULL;
	vs->send_head = c->snext;
	if (!vs->send_head)
		vs->send_tail = NULL;
	c->queued = false;
	return c;
}

static void conn_unqueue(struct vsock_conn *c)
{
	struct virtio_vsock *vs = c->vs;
	struct vsock_conn *prev = NULL;

	if (!c->queued)
		return;
	for (struct vsock_conn *q = vs->send_head; q; prev = q, q = q->snext) {
		if (q != c)
			continue;
		if (prev)
			prev->snext = c->snext;
		else
			vs->send_head = c->snext;
		if (vs->send_tail == c)
			vs->send_tail = prev;
		break;
	}
	c->queued = false;
}

static struct vsock_conn *conn_new(struct virtio_vsock *vs, int fd, enum conn_state state)
{
	struct vsock_conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.data.ptr = c};

	if (!c)
		return NULL;
	c->vs = vs;
	c->fd = fd;
	c->state = state;
	c->events = ev.events = state == C_HANDSHAKE ? EPOLLIN : 0;
	if (epoll_ctl(vs->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(c);
		return NULL;
	}
	c->in_epoll = true;
	c->next = vs->conns;
	if (vs->conns)
		vs->conns->prev = c;
	vs->conns = c;
	vs->nconns++;
	return c;
}

static void conn_close_fd(struct vsock_conn *c)
{
	if (c->in_epoll)
		epoll_ctl(c->vs->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->in_epoll = false;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_len = 0;
}

static void vsock_listen_arm(struct virtio_vsock *vs, bool on)
{
	struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = NULL};

	if (vs->listening != on && epoll_ctl(vs->epfd, EPOLL_CTL_MOD, vs->listen_fd, &ev) == 0)
		vs->listening = on;
}

/* Forgets the connection; the memory goes when no epoll batch can name it any more. */
static void conn_free(struct vsock_conn *c)
{
	struct virtio_vsock *vs = c->vs;

	conn_close_fd(c);
	conn_unqueue(c);
	if (c->hashed)
		conn_hash_del(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		vs->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	vs->nconns--;
	vsock_listen_arm(vs, true);
	c->state = C_DEAD;
	c->next = vs->grave;
	vs->grave = c;
}

static void vsock_reap(struct virtio_vsock *vs)
{
	while (vs->grave) {
		struct vsock_conn *c = vs->grave;

		vs->grave = c->next;
		free(c);
	}
}

/* The host side is gone or broke the protocol: close it and tell the guest. */
static void conn_abort(struct vsock_conn *c)
{
	if (c->state == C_HANDSHAKE || (c->pend & P_REQUEST)) {
		conn_free(c); /* the guest never heard of it */
		return;
	}
	conn_close_fd(c);
	c->state = C_DEAD;
	c->pend = P_RST;
	conn_enqueue(c);
}

static void vsock_close_all(struct virtio_vsock *vs)
{
	while (vs->conns)
		conn_free(vs->conns);
	vs->norphans = 0;
	vs->rx_held = false;
}

static void vsock_orphan_rst(struct virtio_vsock *vs, uint32_t local, uint32_t peer)
{
	if (vs->norphans == VSOCK_ORPHANS) {
		log_debug("virtio-vsock: RST for port %u dropped, too many pending", peer);
		return;
	}
	vs->orphans[vs->norphans++] = (struct vsock_orphan){local, peer};
}

/* ---- credit and polling ---- */

static uint32_t conn_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool conn_may_read(const struct vsock_conn *c)
{
	return c->state == C_OPEN && !c->host_eof && !(c->guest_shut & VIRTIO_VSOCK_SHUTDOWN_RCV);
}

static bool conn_has_work(const struct vsock_conn *c)
{
	return c->pend || (c->readable && conn_may_read(c) && conn_peer_credit(c));
}

static uint32_t conn_want(const struct vsock_conn *c)
{
	uint32_t ev = 0;

	if (c->state == C_HANDSHAKE)
		return EPOLLIN;
	if (c->state != C_OPEN)
		return 0;
	if (!c->readable && conn_may_read(c))
		ev |= EPOLLIN;
	if (c->buf_len)
		ev |= EPOLLOUT;
	return ev;
}

static void conn_arm(struct vsock_conn *c)
{
	struct epoll_event ev = {.events = conn_want(c), .data.ptr = c};

	if (!c->in_epoll || ev.events == c->events)
		return;
	if (epoll_ctl(c->vs->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = ev.events;
}

static void conn_update(struct vsock_conn *c)
{
	conn_arm(c);
	if (conn_has_work(c))
		conn_enqueue(c);
}

/* The guest's view of our buffer only moves with a packet: send one before it runs dry. */
static void conn_forwarded(struct vsock_conn *c, uint32_t n)
{
	c->fwd_cnt += n;
	if (c->fwd_cnt - c->fwd_sent >= VIRTIO_VSOCK_BUF_ALLOC / 4)
		c->pend |= P_CREDIT;
}

/* Everything the guest sent went out: now its shutdown may take effect. */
static void conn_drained(struct vsock_conn *c)
{
	free(c->buf);
	c->buf = NULL;
	c->buf_head = 0;
	if (c->closing) {
		conn_abort(c);
		return;
	}
	if (c->guest_shut & VIRTIO_VSOCK_SHUTDOWN_SEND)
		shutdown(c->fd, SHUT_WR);
}

/* ---- guest -> host data ---- */

/* Keeps what the socket did not take: bytes [skip, ...) of v. Credit bounds it by buf_alloc. */
static int conn_buffer(struct vsock_conn *c, const struct iovec *v, unsigned int n, size_t skip)
{
	if (!c->buf)
		c->buf = malloc(VIRTIO_VSOCK_BUF_ALLOC);
	if (!c->buf)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *p = v[i].iov_base;
		size_t l = v[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		p += skip;
		l -= skip;
		skip = 0;
		while (l) {
			uint32_t tail = (c->buf_head + c->buf_len) % VIRTIO_VSOCK_BUF_ALLOC;
			uint32_t take = min32(VIRTIO_VSOCK_BUF_ALLOC - c->buf_len,
					      VIRTIO_VSOCK_BUF_ALLOC - tail);

			take = min32(take, l > UINT32_MAX ? UINT32_MAX : (uint32_t)l);
			if (!take)
				return -ENOBUFS;
			memcpy(c->buf + tail, p, take);
			c->buf_len += take;
			p += take;
			l -= take;
		}
	}
	return 0;
}

static void conn_write(struct vsock_conn *c, const struct virtq_elem *e, uint32_t len)
{
	struct iovec v[VSOCK_SEGS];
	struct msghdr m = {.msg_iov = v};
	size_t got;
	ssize_t n = 0;

	m.msg_iovlen = iov_slice(e->iov, e->out_num, VIRTIO_VSOCK_HDR_SIZE, len, v, &got);
	c->rx_cnt += len;
	if (!c->buf_len) {
		n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN) {
			conn_abort(c);
			return;
		}
		if (n < 0)
			n = 0;
		conn_forwarded(c, (uint32_t)n);
	}
	if ((size_t)n < got && conn_buffer(c, v, (unsigned int)m.msg_iovlen, (size_t)n))
		conn_abort(c);
}

static void conn_flush(struct vsock_conn *c)
{
	struct iovec v[2];
	struct msghdr m = {.msg_iov = v};
	uint32_t first;
	ssize_t n;

	if (!c->buf_len)
		return;
	first = min32(c->buf_len, VIRTIO_VSOCK_BUF_ALLOC - c->buf_head);
	v[0] = (struct iovec){c->buf + c->buf_head, first};
	v[1] = (struct iovec){c->buf, c->buf_len - first};
	m.msg_iovlen = c->buf_len > first ? 2 : 1;
	n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n < 0) {
		conn_abort(c);
		return;
	}
	c->buf_head = (c->buf_head + (uint32_t)n) % VIRTIO_VSOCK_BUF_ALLOC;
	c->buf_len -= (uint32_t)n;
	conn_forwarded(c, (uint32_t)n);
	if (!c->buf_len)
		conn_drained(c);
}

/* ---- packets for the guest (rx queue) ---- */

struct vsock_pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

static void hdr_put(uint8_t *h, const struct vsock_pkt *p)
{
	memset(h, 0, VIRTIO_VSOCK_HDR_SIZE);
	le_put(h + VIRTIO_VSOCK_HDR_SRC_CID, 8, p->src_cid);
	le_put(h + VIRTIO_VSOCK_HDR_DST_CID, 8, p->dst_cid);
	le_put(h + VIRTIO_VSOCK_HDR_SRC_PORT, 4, p->src_port);
	le_put(h + VIRTIO_VSOCK_HDR_DST_PORT, 4, p->dst_port);
	le_put(h + VIRTIO_VSOCK_HDR_LEN, 4, p->len);
	le_put(h + VIRTIO_VSOCK_HDR_TYPE, 2, p->type);
	le_put(h + VIRTIO_VSOCK_HDR_OP, 2, p->op);
	le_put(h + VIRTIO_VSOCK_HDR_FLAGS, 4, p->flags);
	le_put(h + VIRTIO_VSOCK_HDR_BUF_ALLOC, 4, p->buf_alloc);
	le_put(h + VIRTIO_VSOCK_HDR_FWD_CNT, 4, p->fwd_cnt);
}

static void hdr_get(const uint8_t *h, struct vsock_pkt *p)
{
	p->src_cid = le_get(h + VIRTIO_VSOCK_HDR_SRC_CID, 8);
	p->dst_cid = le_get(h + VIRTIO_VSOCK_HDR_DST_CID, 8);
	p->src_port = (uint32_t)le_get(h + VIRTIO_VSOCK_HDR_SRC_PORT, 4);
	p->dst_port = (uint32_t)le_get(h + VIRTIO_VSOCK_HDR_DST_PORT, 4);
	p->len = (uint32_t)le_get(h + VIRTIO_VSOCK_HDR_LEN, 4);
	p->type = (uint16_t)le_get(h + VIRTIO_VSOCK_HDR_TYPE, 2);
	p->op = (uint16_t)le_get(h + VIRTIO_VSOCK_HDR_OP, 2);
	p->flags = (uint32_t)le_get(h + VIRTIO_VSOCK_HDR_FLAGS, 4);
	p->buf_alloc = (uint32_t)le_get(h + VIRTIO_VSOCK_HDR_BUF_ALLOC, 4);
	p->fwd_cnt = (uint32_t)le_get(h + VIRTIO_VSOCK_HDR_FWD_CNT, 4);
}

/* Writes a header into the chain's device-writable part; returns the used length. */
static uint32_t rx_put(struct virtio_vsock *vs, const struct virtq_elem *e, uint16_t op,
		       uint32_t local, uint32_t peer, uint32_t len, uint32_t flags,
		       struct vsock_conn *c)
{
	struct vsock_pkt p = {.src_cid = VIRTIO_VSOCK_HOST_CID,
			      .dst_cid = vs->guest_cid,
			      .src_port = local,
			      .dst_port = peer,
			      .len = len,
			      .type = VIRTIO_VSOCK_TYPE_STREAM,
			      .op = op,
			      .flags = flags};
	uint8_t h[VIRTIO_VSOCK_HDR_SIZE];

	if (c) {
		p.buf_alloc = VIRTIO_VSOCK_BUF_ALLOC;
		p.fwd_cnt = c->fwd_cnt;
		c->fwd_sent = c->fwd_cnt;
		c->pend &= ~P_CREDIT; /* every header carries the credit */
	}
	hdr_put(h, &p);
	iov_from_buf(e->iov + e->out_num, e->in_num, 0, h, sizeof(h));
	return VIRTIO_VSOCK_HDR_SIZE + len;
}

static uint32_t conn_ctl(struct vsock_conn *c, const struct virtq_elem *e, unsigned int bit,
			 uint16_t op, uint32_t flags)
{
	c->pend &= ~bit;
	return rx_put(c->vs, e, op, c->local_port, c->peer_port, 0, flags, c);
}

/*
 * Reads socket data straight into the chain, after the header. Returns the
 * used length, or 0 when there was nothing to read after all.
 */
static uint32_t conn_read(struct vsock_conn *c, const struct virtq_elem *e)
{
	struct iovec v[VSOCK_SEGS];
	uint32_t max = min32(conn_peer_credit(c), VIRTIO_VSOCK_MAX_PKT);
	size_t room;
	unsigned int n;
	ssize_t got;

	n = iov_slice(e->iov + e->out_num, e->in_num, VIRTIO_VSOCK_HDR_SIZE, max, v, &room);
	if (!n)
		return 0; /* readv() of nothing would look like EOF */
	got = readv(c->fd, v, (int)n);
	if (got > 0) {
		c->tx_cnt += (uint32_t)got;
		return rx_put(c->vs, e, VIRTIO_VSOCK_OP_RW, c->local_port, c->peer_port,
			      (uint32_t)got, 0, c);
	}
	c->readable = false;
	if (got < 0 && errno == EAGAIN) {
		conn_arm(c);
		return 0;
	}
	if (got < 0) {
		conn_abort(c);
		return conn_ctl(c, e, P_RST, VIRTIO_VSOCK_OP_RST, 0);
	}
	/* EOF: the host program sends no more, and after a hang-up it takes nothing either */
	c->host_eof = true;
	c->pend |= P_SHUTDOWN;
	c->shut_send = VIRTIO_VSOCK_SHUTDOWN_SEND | (c->hup ? VIRTIO_VSOCK_SHUTDOWN_RCV : 0);
	return 0;
}

/* The next packet c owes the guest, into e; 0 if it has none right now. */
static uint32_t conn_emit(struct vsock_conn *c, const struct virtq_elem *e)
{
	uint32_t n;

	if (c->pend & P_RST)
		return conn_ctl(c, e, P_RST, VIRTIO_VSOCK_OP_RST, 0);
	if (c->pend & P_REQUEST)
		return conn_ctl(c, e, P_REQUEST, VIRTIO_VSOCK_OP_REQUEST, 0);
	if (c->pend & P_RESPONSE)
		return conn_ctl(c, e, P_RESPONSE, VIRTIO_VSOCK_OP_RESPONSE, 0);
	if (c->readable && conn_may_read(c) && conn_peer_credit(c)) {
		n = conn_read(c, e);
		if (n)
			return n;
	}
	if (c->pend & P_SHUTDOWN)
		return conn_ctl(c, e, P_SHUTDOWN, VIRTIO_VSOCK_OP_SHUTDOWN, c->shut_send);
	if (c->pend & P_CREDIT)
		return conn_ctl(c, e, P_CREDIT, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
	return 0;
}

static bool vsock_rx_pending(const struct virtio_vsock *vs)
{
	return vs->norphans || vs->send_head;
}

/* Fills the held chain with the next packet; returns its used length, 0 if none was due. */
static uint32_t vsock_rx_one(struct virtio_vsock *vs)
{
	const struct virtq_elem *e = &vs->rx_elem;
	struct vsock_conn *c;
	uint32_t n;

	if (vs->norphans) {
		struct vsock_orphan o = vs->orphans[--vs->norphans];

		return rx_put(vs, e, VIRTIO_VSOCK_OP_RST, o.local_port, o.peer_port, 0, 0, NULL);
	}
	c = conn_dequeue(vs);
	if (!c)
		return 0;
	n = conn_emit(c, e);
	if (c->state == C_DEAD && !c->pend)
		conn_free(c);
	else if (conn_has_work(c))
		conn_enqueue(c); /* behind the others: one packet per turn */
	return n;
}

/* Returns virtq_pop()'s error, 0 otherwise. */
static int vsock_rx(struct virtio_vsock *vs, struct virtq *vq, bool *pushed, struct error *err)
{
	unsigned int done = 0, tries = 0;
	uint32_t n;
	int ret;

	/* tries: connections that turn out to have nothing to send cost a turn too */
	while (vsock_rx_pending(vs) && done < VIRTIO_VSOCK_BATCH &&
	       tries++ < 2 * VIRTIO_VSOCK_MAX_CONNS) {
		if (!vs->rx_held) {
			vs->rx_elem =
				(struct virtq_elem){.iov = vs->rx_iov, .max_segs = VSOCK_SEGS};
			ret = virtq_pop(vq, &vs->rx_elem, err);
			if (ret <= 0)
				return ret; /* no buffer: the driver notifies when it adds one */
			vs->rx_held = true;
		}
		if (vs->rx_elem.in_len <= VIRTIO_VSOCK_HDR_SIZE) {
			n = 0; /* no room for a header and data: give it back empty */
		} else {
			n = vsock_rx_one(vs);
			if (!n)
				continue;
		}
		virtq_push(vq, vs->rx_elem.head, n);
		vs->rx_held = false;
		*pushed = true;
		done++;
	}
	return 0;
}

/* ---- packets from the guest (tx queue) ---- */

static void vsock_rst_reply(struct virtio_vsock *vs, const struct vsock_pkt *p)
{
	if (p->op != VIRTIO_VSOCK_OP_RST) /* never answer an RST: two devices could ping-pong */
		vsock_orphan_rst(vs, p->dst_port, p->src_port);
}

/* "<uds>_<port>": the length was checked at creation. */
static int vsock_connect_host(struct virtio_vsock *vs, uint32_t port)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", vs->uds, port);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A unix connect completes at once or fails (EAGAIN: backlog full) */
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static void vsock_guest_request(struct virtio_vsock *vs, struct vsock_conn *c,
				const struct vsock_pkt *p)
{
	int fd;

	if (c) { /* a second REQUEST for a live connection: both ends are confused */
		conn_abort(c);
		return;
	}
	if (vs->nconns >= VIRTIO_VSOCK_MAX_CONNS) {
		vsock_rst_reply(vs, p);
		return;
	}
	fd = vsock_connect_host(vs, p->dst_port);
	if (fd < 0) {
		log_debug("virtio-vsock: guest connect to %s_%u: %s", vs->uds, p->dst_port,
			  strerror(-fd));
		vsock_rst_reply(vs, p);
		return;
	}
	c = conn_new(vs, fd, C_OPEN);
	if (!c) {
		close(fd);
		vsock_rst_reply(vs, p);
		return;
	}
	c->local_port = p->dst_port;
	c->peer_port = p->src_port;
	c->peer_buf_alloc = p->buf_alloc;
	c->peer_fwd_cnt = p->fwd_cnt;
	c->pend = P_RESPONSE;
	conn_hash_add(c);
	conn_update(c);
}

static void conn_response(struct vsock_conn *c)
{
	char ok[32];
	int len;

	if (c->state != C_REQUESTED || (c->pend & P_REQUEST)) {
		conn_abort(c);
		return;
	}
	/* A fresh socket has room for a line; anything short of it is a dead client. */
	len = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
	if (send(c->fd, ok, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) != len) {
		conn_abort(c);
		return;
	}
	c->state = C_OPEN;
}

static void conn_rw(struct vsock_conn *c, const struct virtq_elem *e, uint32_t len)
{
	if (c->state != C_OPEN || (c->guest_shut & VIRTIO_VSOCK_SHUTDOWN_SEND)) {
		conn_abort(c);
		return;
	}
	if (len > VIRTIO_VSOCK_BUF_ALLOC - (c->rx_cnt - c->fwd_cnt)) {
		log_debug("virtio-vsock: port %u sent beyond its credit", c->peer_port);
		conn_abort(c);
		return;
	}
	if (len)
		conn_write(c, e, len);
}

static void conn_guest_shutdown(struct vsock_conn *c, uint32_t flags)
{
	if (c->state != C_OPEN)
		return;
	c->guest_shut |= flags & VSOCK_SHUT_BOTH;
	if (c->guest_shut == VSOCK_SHUT_BOTH) {
		/* the guest is done: RST once what it sent has left (5.10.6.5) */
		c->closing = true;
		if (!c->buf_len)
			conn_abort(c);
		return;
	}
	if ((c->guest_shut & VIRTIO_VSOCK_SHUTDOWN_SEND) && !c->buf_len)
		shutdown(c->fd, SHUT_WR);
}

static void vsock_conn_packet(struct vsock_conn *c, const struct vsock_pkt *p,
			      const struct virtq_elem *e)
{
	if (p->op == VIRTIO_VSOCK_OP_RST) {
		conn_free(c);
		return;
	}
	if (c->state == C_DEAD)
		return; /* our RST is on its way */
	c->peer_buf_alloc = p->buf_alloc;
	c->peer_fwd_cnt = p->fwd_cnt;
	switch (p->op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		conn_response(c);
		break;
	case VIRTIO_VSOCK_OP_RW:
		conn_rw(c, e, p->len);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		conn_guest_shutdown(c, p->flags);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->pend |= P_CREDIT;
		break;
	default:
		conn_abort(c);
		return;
	}
	if (c->state != C_DEAD)
		conn_update(c);
}

static void vsock_tx_packet(struct virtio_vsock *vs, const struct virtq_elem *e)
{
	uint8_t h[VIRTIO_VSOCK_HDR_SIZE];
	struct vsock_conn *c;
	struct vsock_pkt p;

	if (iov_to_buf(e->iov, e->out_num, 0, h, sizeof(h)) != sizeof(h)) {
		log_debug("virtio-vsock: tx chain of %u bytes has no header", e->out_len);
		return;
	}
	hdr_get(h, &p);
	if (p.src_cid != vs->guest_cid)
		return; /* spoofed: there is nobody to answer */
	if (p.dst_cid != VIRTIO_VSOCK_HOST_CID || p.type != VIRTIO_VSOCK_TYPE_STREAM ||
	    p.len > e->out_len - VIRTIO_VSOCK_HDR_SIZE || (p.op != VIRTIO_VSOCK_OP_RW && p.len)) {
		vsock_rst_reply(vs, &p);
		return;
	}
	c = conn_find(vs, p.dst_port, p.src_port);
	if (p.op == VIRTIO_VSOCK_OP_REQUEST) {
		vsock_guest_request(vs, c, &p);
		return;
	}
	if (!c) {
		vsock_rst_reply(vs, &p);
		return;
	}
	vsock_conn_packet(c, &p, e);
}

static int vsock_tx(struct virtio_vsock *vs, struct virtq *vq, struct error *err)
{
	struct virtq_elem e;
	int ret = 0;

	for (unsigned int i = 0; i < VIRTIO_VSOCK_BATCH; i++) {
		e = (struct virtq_elem){.iov = vs->tx_iov, .max_segs = VSOCK_SEGS};
		ret = virtq_pop(vq, &e, err);
		if (ret <= 0)
			break;
		vsock_tx_packet(vs, &e);
		virtq_push(vq, e.head, 0);
	}
	return ret;
}

/* ---- host programs (the private epoll set) ---- */

/* "CONNECT <port>\n", nothing else: a decimal port without sign, spaces or leading junk. */
static bool vsock_parse_connect(const char *s, uint32_t len, uint32_t *port)
{
	static const char cmd[] = "CONNECT ";
	uint64_t v = 0;
	uint32_t i = sizeof(cmd) - 1;

	if (len < i + 2 || memcmp(s, cmd, i) || s[len - 1] != '\n')
		return false;
	if (len - 1 - i > 10)
		return false;
	for (; i < len - 1; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*port = (uint32_t)v;
	return true;
}

static uint32_t vsock_pick_port(struct virtio_vsock *vs, uint32_t peer)
{
	/* more tries than connections: one of them is free */
	for (unsigned int i = 0; i <= VIRTIO_VSOCK_MAX_CONNS; i++) {
		uint32_t p = vs->next_port++;

		if (vs->next_port < VSOCK_PORT_BASE)
			vs->next_port = VSOCK_PORT_BASE;
		if (!conn_find(vs, p, peer))
			return p;
	}
	return 0;
}

static void conn_connect_line(struct vsock_conn *c)
{
	uint32_t port;

	if (!vsock_parse_connect(c->line, c->line_len, &port)) {
		log_debug("virtio-vsock: bad handshake from a host client");
		conn_free(c);
		return;
	}
	c->peer_port = port;
	c->local_port = vsock_pick_port(c->vs, port);
	if (!c->local_port) {
		conn_free(c);
		return;
	}
	conn_hash_add(c);
	c->state = C_REQUESTED;
	c->pend = P_REQUEST;
	conn_update(c);
}

/* Takes the line and not a byte more: what follows it is the stream's data. */
static void conn_handshake(struct vsock_conn *c)
{
	char peek[VIRTIO_VSOCK_LINE_MAX];
	uint32_t room = VIRTIO_VSOCK_LINE_MAX - c->line_len;
	ssize_t n = recv(c->fd, peek, room, MSG_PEEK | MSG_DONTWAIT);
	const char *nl;
	size_t take;

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		conn_free(c);
		return;
	}
	nl = memchr(peek, '\n', (size_t)n);
	take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
	if (recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT) != (ssize_t)take) {
		conn_free(c);
		return;
	}
	c->line_len += (uint32_t)take;
	if (nl)
		conn_connect_line(c);
	else if (c->line_len == VIRTIO_VSOCK_LINE_MAX)
		conn_free(c); /* no newline where one must be: not our protocol */
}

static void vsock_accept(struct virtio_vsock *vs)
{
	if (!vs->listening)
		return;
	for (unsigned int i = 0; i < VSOCK_ACCEPTS; i++) {
		int fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			/* the backlog stays readable: stop watching it until a connection ends */
			log_warn("virtio-vsock: accept on %s: %s", vs->uds, strerror(errno));
			vsock_listen_arm(vs, false);
			return;
		}
		if (fd < 0)
			return;
		if (vs->nconns >= VIRTIO_VSOCK_MAX_CONNS || !conn_new(vs, fd, C_HANDSHAKE)) {
			log_debug("virtio-vsock: host connection refused");
			close(fd);
		}
	}
}

static void conn_event(struct vsock_conn *c, uint32_t events)
{
	if (events & EPOLLERR) {
		conn_abort(c);
		return;
	}
	if (c->state == C_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if (c->state != C_OPEN) { /* only a hang-up can come: the client gave up */
		if (events & EPOLLHUP)
			conn_abort(c);
		return;
	}
	if (events & EPOLLOUT)
		conn_flush(c);
	if (c->state != C_OPEN)
		return;
	if (events & EPOLLHUP) {
		/* Reported whatever we ask for: stop polling, read what is left. */
		if (c->buf_len || c->host_eof) { /* nothing left to read, or to write to */
			conn_abort(c);
			return;
		}
		epoll_ctl(c->vs->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		c->in_epoll = false;
		c->hup = true;
		c->readable = true;
	}
	if (events & EPOLLIN)
		c->readable = true;
	conn_update(c);
}

/* The private epoll set is readable: one bounded batch, the rest on the next turn. */
static void vsock_sockets(void *opaque, uint32_t events)
{
	struct virtio_vsock *vs = opaque;
	struct epoll_event ev[VSOCK_EVENTS];
	bool kick;
	int n;

	(void)events;
	pthread_mutex_lock(&vs->lock);
	n = epoll_wait(vs->epfd, ev, VSOCK_EVENTS, 0);
	for (int i = 0; i < n; i++) {
		struct vsock_conn *c = ev[i].data.ptr;

		if (!c)
			vsock_accept(vs);
		else if (c->fd >= 0) /* not closed earlier in this batch */
			conn_event(c, ev[i].events);
	}
	kick = vsock_rx_pending(vs);
	vsock_reap(vs);
	pthread_mutex_unlock(&vs->lock);
	if (kick)
		virtio_pci_queue_kick(vs->vp, VIRTIO_VSOCK_Q_RX);
}

/* ---- the event queue ---- */

/*
 * TRANSPORT_RESET (5.10.6.7): the guest drops every socket it had, since
 * their host ends are gone, and reads the CID again. Sent once, in the
 * first buffer the driver offers.
 */
static int vsock_evt_reset(struct virtio_vsock *vs, struct virtq *vq, bool *pushed,
			   struct error *err)
{
	struct iovec iov[VSOCK_SEGS];
	struct virtq_elem e = {.iov = iov, .max_segs = VSOCK_SEGS};
	uint8_t ev[VIRTIO_VSOCK_EVENT_SIZE];
	int ret = virtq_pop(vq, &e, err);

	if (ret <= 0)
		return ret; /* no buffer yet: the driver's notification brings us back */
	vs->evt_reset = false;
	le_put(ev, 4, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	if (e.in_len < sizeof(ev)) {
		virtq_push(vq, e.head, 0);
	} else {
		iov_from_buf(e.iov + e.out_num, e.in_num, 0, ev, sizeof(ev));
		virtq_push(vq, e.head, sizeof(ev));
	}
	*pushed = true;
	return 0;
}

/* ---- transport callbacks ---- */

static void virtio_vsock_notify(struct virtio_pci *vp, unsigned int q, struct virtq *vq)
{
	struct virtio_vsock *vs = virtio_pci_opaque(vp);
	struct error err = {0};
	bool pushed = false, more;
	int ret = 0;

	pthread_mutex_lock(&vs->lock);
	if (q == VIRTIO_VSOCK_Q_RX)
		ret = vsock_rx(vs, vq, &pushed, &err);
	else if (q == VIRTIO_VSOCK_Q_TX)
		ret = vsock_tx(vs, vq, &err);
	else if (vs->evt_reset)
		ret = vsock_evt_reset(vs, vq, &pushed, &err);
	/* The event queue holds buffers only for TRANSPORT_RESET, sent after a restore. */
	more = vsock_rx_pending(vs);
	vsock_reap(vs);
	pthread_mutex_unlock(&vs->lock);

	if (q == VIRTIO_VSOCK_Q_TX || pushed)
		virtio_pci_queue_used(vp, q);
	if (ret < 0) {
		virtio_pci_needs_reset(vp, err.msg);
		return;
	}
	if (q == VIRTIO_VSOCK_Q_TX && ret > 0 && virtq_has_avail(vq))
		virtio_pci_queue_kick(vp, q);
	/* rx: more to send after a full batch; tx: packets it owes the guest now */
	if (more && (q == VIRTIO_VSOCK_Q_TX || pushed))
		virtio_pci_queue_kick(vp, VIRTIO_VSOCK_Q_RX);
}

/* The guest has never heard of it: a host client still in its handshake, or its REQUEST unsent. */
static bool conn_unseen(const struct vsock_conn *c)
{
	return c->state == C_HANDSHAKE || (c->state == C_REQUESTED && (c->pend & P_REQUEST));
}

/*
 * Every connection the guest knew ends: the guest forgot them, and their
 * host programs see their sockets close. Host clients the guest never
 * heard of stay, so one that connects while the driver is still loading
 * (which starts with a reset) is not lost: its REQUEST goes out once the
 * driver is up.
 */
static void virtio_vsock_reset(struct virtio_pci *vp)
{
	struct virtio_vsock *vs = virtio_pci_opaque(vp);
	struct vsock_conn *c, *next;

	pthread_mutex_lock(&vs->lock);
	for (c = vs->conns; c; c = next) {
		next = c->next;
		if (!conn_unseen(c))
			conn_free(c);
	}
	vs->norphans = 0;
	vs->rx_held = false;
	vs->evt_reset = false;
	vsock_reap(vs);
	pthread_mutex_unlock(&vs->lock);
}

static void virtio_vsock_config_read(struct virtio_pci *vp, uint32_t off, uint8_t *data,
				     uint32_t len)
{
	struct virtio_vsock *vs = virtio_pci_opaque(vp);
	uint8_t cfg[VIRTIO_VSOCK_CFG_SIZE];

	le_put(cfg, 8, vs->guest_cid);
	if (off < sizeof(cfg) && len <= sizeof(cfg) - off)
		memcpy(data, cfg + off, len);
}

/*
 * ---- snapshot ----
 * u32 version, u64 guest CID (must match). Connections cannot survive a
 * restore (their host sockets belong to the old process), so restore
 * closes every host connection and owes the guest a TRANSPORT_RESET on
 * the event queue, as Firecracker does; the guest then drops its sockets.
 * A receive chain held unused goes back to the queue (held()).
 */
#define VIRTIO_VSOCK_STATE_VERSION 1

static uint16_t virtio_vsock_held(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_vsock *vs = virtio_pci_opaque(vp);
	uint16_t n;

	pthread_mutex_lock(&vs->lock);
	n = q == VIRTIO_VSOCK_Q_RX && vs->rx_held ? 1 : 0;
	pthread_mutex_unlock(&vs->lock);
	return n;
}

static void virtio_vsock_save(struct virtio_pci *vp, struct snap_writer *w)
{
	struct virtio_vsock *vs = virtio_pci_opaque(vp);

	snap_put_u32(w, VIRTIO_VSOCK_STATE_VERSION);
	snap_put_u64(w, vs->guest_cid);
}

static int virtio_vsock_restore(struct virtio_pci *vp, struct snap_section *s, const char *name,
				struct error *err)
{
	struct virtio_vsock *vs = virtio_pci_opaque(vp);
	uint32_t version = snap_get_u32(s);
	uint64_t cid = snap_get_u64(s);

	if (version != VIRTIO_VSOCK_STATE_VERSION)
		return state_bad(err, name, "vsock state version", version);
	if (cid != vs->guest_cid && !vs->new_identity)
		return error_set(err, EINVAL,
				 "state section '%s': guest CID %llu, the device has %u", name,
				 (unsigned long long)cid, vs->guest_cid);
	pthread_mutex_lock(&vs->lock);
	vsock_close_all(vs);
	vs->evt_reset = true;
	pthread_mutex_unlock(&vs->lock);
	virtio_pci_queue_kick(vp, VIRTIO_VSOCK_Q_EVT);
	return 0;
}

static const struct virtio_device_ops virtio_vsock_ops = {
	.config_read = virtio_vsock_config_read,
	.queue_notify = virtio_vsock_notify,
	.reset = virtio_vsock_reset,
	.held = virtio_vsock_held,
	.save = virtio_vsock_save,
	.restore = virtio_vsock_restore,
};

/* ---- life cycle ---- */

/* A stale socket from an earlier run goes; anything else at that path is not ours to delete. */
static int vsock_listen(struct virtio_vsock *vs, struct error *err)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct stat st;

	if (lstat(vs->uds, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return error_set(err, EEXIST, "%s exists and is not a socket", vs->uds);
		if (unlink(vs->uds) < 0)
			return error_set(err, errno, "cannot remove stale %s: %s", vs->uds,
					 strerror(errno));
	}
	vs->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (vs->listen_fd < 0)
		return error_set(err, errno, "socket: %s", strerror(errno));
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", vs->uds);
	if (bind(vs->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return error_set(err, errno, "cannot bind %s: %s", vs->uds, strerror(errno));
	vs->bound = true;
	if (listen(vs->listen_fd, 64) < 0)
		return error_set(err, errno, "cannot listen on %s: %s", vs->uds, strerror(errno));
	return 0;
}

static int vsock_setup(struct virtio_vsock *vs, const struct virtio_vsock_opts *o,
		       struct error *err)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	/* room for "_<port>" after the path, and the terminating NUL */
	size_t max = sizeof(vs->uds) - 12;

	if (!o->uds || !o->uds[0])
		return error_set(err, EINVAL, "no uds path");
	if (strlen(o->uds) > max)
		return error_set(err, ENAMETOOLONG,
				 "uds path is %zu bytes; at most %zu leave room for \"_<port>\"",
				 strlen(o->uds), max);
	snprintf(vs->uds, sizeof(vs->uds), "%s", o->uds);
	vs->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (vs->epfd < 0)
		return error_set(err, errno, "epoll: %s", strerror(errno));
	if (vsock_listen(vs, err))
		return -1;
	if (epoll_ctl(vs->epfd, EPOLL_CTL_ADD, vs->listen_fd, &ev) < 0)
		return error_set(err, errno, "epoll: %s", strerror(errno));
	vs->listening = true;
	return 0;
}

static int vsock_register(struct virtio_vsock *vs, struct pci_root *root, struct error *err)
{
	int ret = virtio_pci_register(vs->vp, root, err);

	if (ret)
		return ret;
	ret = iothread_add_fd(vs->io, vs->epfd, EPOLLIN, vsock_sockets, vs);
	if (ret)
		return error_set(err, -ret, "I/O thread: %s", strerror(-ret));
	vs->watched = true;
	return 0;
}

struct virtio_vsock *virtio_vsock_create(const struct virtio_pci_host *host, struct pci_root *root,
					 const struct virtio_vsock_opts *opts, struct error *err)
{
	struct virtio_vsock *vs = calloc(1, sizeof(*vs));
	struct virtio_device_info info = {
		.name = "virtio-vsock",
		.device_id = VIRTIO_ID_VSOCK,
		.class_code = VSOCK_CLASS,
		.features = 1ULL << VIRTIO_VSOCK_F_STREAM,
		.config_size = VIRTIO_VSOCK_CFG_SIZE,
		.num_queues = VIRTIO_VSOCK_QUEUES,
		.queue_max = vsock_qmax,
		.ops = &virtio_vsock_ops,
		.opaque = vs,
	};

	if (!vs) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&vs->lock, NULL);
	vs->listen_fd = vs->epfd = -1;
	vs->io = host->io;
	vs->guest_cid = opts->guest_cid;
	vs->new_identity = opts->new_identity;
	vs->next_port = VSOCK_PORT_BASE;
	if (vsock_setup(vs, opts, err))
		goto fail;
	vs->vp = virtio_pci_create(&info, host, err);
	if (!vs->vp || vsock_register(vs, root, err))
		goto fail;
	return vs;
fail:
	virtio_vsock_destroy(vs);
	return NULL;
}

void virtio_vsock_destroy(struct virtio_vsock *vs)
{
	if (!vs)
		return;
	if (vs->watched)
		iothread_remove_fd(vs->io, vs->epfd);
	virtio_pci_destroy(vs->vp);
	vsock_close_all(vs);
	vsock_reap(vs);
	if (vs->listen_fd >= 0)
		close(vs->listen_fd);
	if (vs->bound)
		unlink(vs->uds);
	if (vs->epfd >= 0)
		close(vs->epfd);
	pthread_mutex_destroy(&vs->lock);
	free(vs);
}

struct virtio_pci *virtio_vsock_transport(struct virtio_vsock *vs)
{
	return vs->vp;
}
