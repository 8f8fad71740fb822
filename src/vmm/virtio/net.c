// SPDX-License-Identifier: MIT
/*
 * The network device (virtio 1.2, section 5.1) on a tap (../net/tap.c).
 *
 * Transmit: each chain is the 12-byte header and the frame, all
 * device-readable; it goes to the tap as it is with one writev(). A chain
 * that breaks this (device-writable parts, shorter than the header) is a
 * driver bug: DEVICE_NEEDS_RESET, as for a malformed ring. A frame the tap
 * refuses is dropped and counted; the chain is returned either way.
 *
 * Receive: the tap descriptor is watched edge-triggered on the I/O thread;
 * its handler only kicks the receive queue, whose notify handler (under
 * the transport's lock, like every other guest memory access) reads frames
 * with readv() straight into popped guest buffers. virtq has no "un-pop",
 * so chains popped before the tap ran dry wait in a small per-queue cache
 * for the next frame. With MRG_RXBUF a frame may span several chains and
 * num_buffers says how many (the kernel leaves that field to us). Without
 * guest buffers the device reads nothing: the tap keeps the frames (its
 * own queue limit drops and counts the excess) and the driver's next
 * receive notification resumes reading. Nothing polls and nothing spins.
 * A frame too large for the buffers at hand is truncated by the kernel;
 * we count it as dropped and reuse the buffers.
 */
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../devices/state.h"
#include "../net/tap.h"
#include "net.h"
#include "../../common/le.h"
#include "../../common/iov.h"

#define VIRTIO_NET_CLASS 0x020000 /* network, ethernet */
#define NET_RX_SEGS	 64	  /* per receive chain; Linux uses at most MAX_SKB_FRAGS + 2 */
#define NET_RX_CACHE	 64	  /* popped receive chains kept per queue */
#define NET_RX_IOV	 1024	  /* IOV_MAX: what one readv() takes */
#define NET_TX_SEGS	 1024
/* Largest frame the tap hands over: without guest offloads an MTU-sized
 * one (VLAN tag included), with them a 64 KiB GSO frame. */
#define NET_RX_SMALL (VIRTIO_NET_HDR_SIZE + VIRTIO_NET_DEFAULT_MTU + 18)
#define NET_RX_BIG   (VIRTIO_NET_HDR_SIZE + 65536 + 18)

#define F(bit) (1ULL << (bit))
#define NET_GUEST_OFFLOADS                                                                         \
	(F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) |    \
	 F(VIRTIO_NET_F_GUEST_ECN) | F(VIRTIO_NET_F_GUEST_UFO))
#define NET_GUEST_GSO                                                                              \
	(F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_UFO))

enum net_role { NET_NONE, NET_RX, NET_TX, NET_CTRL };

struct net_rx_chain {
	uint16_t head;
	unsigned int niov;
	uint32_t len;
	struct iovec iov[NET_RX_SEGS];
};

struct net_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped, rx_errors;
	uint64_t tx_packets, tx_bytes, tx_dropped;
};

struct net_pair {
	struct virtio_net *net;
	unsigned int index;
	int fd;
	bool watched;
	bool attached;

	/* receive chains popped and not yet filled, oldest first (a ring) */
	struct net_rx_chain rx[NET_RX_CACHE];
	unsigned int rx_first, rx_count;
	uint64_t rx_cached; /* bytes in them */
	struct iovec rx_iov[NET_RX_IOV];
	uint8_t rx_spare; /* see net_rx_iov() */
	struct virtq_used_elem used[VIRTIO_NET_QSIZE];
	struct iovec tx_iov[NET_TX_SEGS];
	struct net_stats st;
};

struct virtio_net {
	struct virtio_pci *vp;
	struct iothread *io;
	char tap[IFNAMSIZ];
	unsigned int pairs;  /* max_virtqueue_pairs */
	unsigned int active; /* pairs in use: 1 until VQ_PAIRS_SET */
	uint8_t mac[6];	     /* what the configuration shows */
	uint8_t mac0[6];     /* what it shows after a reset */
	bool new_identity;   /* restore shows mac0, not the recorded MAC */
	bool announce;	     /* VIRTIO_NET_S_ANNOUNCE until the driver acks (atomic) */
	uint64_t offloads;   /* guest offloads last set on the tap (feature bits) */
	uint16_t *qmax;
	struct net_pair *pair; /* [pairs] */
};

static bool net_has(struct virtio_net *net, unsigned int bit)
{
	return virtio_pci_features(net->vp) & F(bit);
}

/* ---- queue layout (5.1.2) ---- */

/* Which queue q is, given what was negotiated: the control queue follows the pairs in use. */
static enum net_role net_role(struct virtio_net *net, unsigned int q, unsigned int *pair)
{
	unsigned int n = net_has(net, VIRTIO_NET_F_MQ) ? net->pairs : 1;

	if (q < 2 * n) {
		*pair = q / 2;
		return q % 2 ? NET_TX : NET_RX;
	}
	if (q == 2 * n && net_has(net, VIRTIO_NET_F_CTRL_VQ))
		return NET_CTRL;
	return NET_NONE;
}

/* ---- offloads and queue pairs on the tap ---- */

static unsigned int net_tap_offloads(uint64_t f)
{
	unsigned int o = 0;

	if (f & F(VIRTIO_NET_F_GUEST_CSUM))
		o |= TAP_OFFLOAD_CSUM;
	if (f & F(VIRTIO_NET_F_GUEST_TSO4))
		o |= TAP_OFFLOAD_TSO4;
	if (f & F(VIRTIO_NET_F_GUEST_TSO6))
		o |= TAP_OFFLOAD_TSO6;
	if (f & F(VIRTIO_NET_F_GUEST_ECN))
		o |= TAP_OFFLOAD_TSO_ECN;
	if (f & F(VIRTIO_NET_F_GUEST_UFO))
		o |= TAP_OFFLOAD_UFO;
	return o;
}

static int net_apply_offloads(struct virtio_net *net, uint64_t offloads)
{
	int ret = 0;

	net->offloads = offloads; /* what the guest asked for: a snapshot re-applies it */
	for (unsigned int i = 0; i < net->pairs; i++) {
		int r = tap_set_offload(net->pair[i].fd, net_tap_offloads(offloads));

		if (r && !ret) {
			log_warn("virtio-net %s: setting offloads: %s", net->tap, strerror(-r));
			ret = r;
		}
	}
	return ret;
}

/* Attaches the tap queues of pairs [0, n) and detaches the others, so the kernel
 * steers nothing to a queue the driver does not read. */
static int net_set_active(struct virtio_net *net, unsigned int n)
{
	int ret = 0;

	for (unsigned int i = 0; net->pairs > 1 && i < net->pairs; i++) {
		struct net_pair *p = &net->pair[i];
		int r;

		if (p->attached == (i < n))
			continue;
		r = tap_set_queue_enabled(p->fd, i < n);
		if (r) {
			log_warn("virtio-net %s: queue %u: %s", net->tap, i, strerror(-r));
			ret = r;
			continue;
		}
		p->attached = i < n;
	}
	net->active = n;
	return ret;
}

/* ---- transmit ---- */

/* A chain the driver built wrong: the whole device stops (NEEDS_RESET). */
static bool net_tx_valid(struct virtio_pci *vp, const struct virtq_elem *e)
{
	if (e->in_num) {
		virtio_pci_needs_reset(vp, "transmit chain with a device-writable buffer");
		return false;
	}
	if (e->out_len < VIRTIO_NET_HDR_SIZE) {
		virtio_pci_needs_reset(vp, "transmit chain shorter than the virtio-net header");
		return false;
	}
	return true;
}

static void net_tx_send(struct net_pair *p, const struct virtq_elem *e)
{
	ssize_t n = writev(p->fd, e->iov, (int)e->out_num);

	if (n < 0) {
		/* a frame the kernel refuses (bad GSO header, link down, no memory) is lost */
		if (!p->st.tx_dropped++)
			log_warn("virtio-net %s: transmit: %s (dropping; counted from now on)",
				 p->net->tap, strerror(errno));
		return;
	}
	p->st.tx_packets++;
	p->st.tx_bytes += (uint64_t)n - VIRTIO_NET_HDR_SIZE;
}

/* Hands sent frames back; the driver refills the ring while we go on sending. */
static void net_tx_push(struct virtio_pci *vp, struct net_pair *p, unsigned int q, struct virtq *vq,
			unsigned int *nused)
{
	if (*nused && virtq_push_batch(vq, p->used, *nused))
		log_warn("virtio-net: used ring push failed");
	if (*nused)
		virtio_pci_queue_used(vp, q);
	*nused = 0;
}

/* Pops the next frame to send: 1, 0 when the ring stays empty (notifications back on), <0. */
static int net_tx_pop(struct virtq *vq, struct virtq_elem *e, struct error *err)
{
	int ret = virtq_pop(vq, e, err);

	/* Frames queued between the last pop and re-enabling are taken now, not missed. */
	if (ret == 0 && virtq_set_notify(vq, true)) {
		virtq_set_notify(vq, false);
		ret = virtq_pop(vq, e, err);
	}
	return ret;
}

/*
 * Sends until the ring is empty or the budget is spent. Notifications stay
 * off meanwhile (the driver need not exit to tell us what we are about to
 * see anyway), and frames go back every VIRTIO_NET_TX_PUSH so the driver
 * can refill the ring before it runs dry.
 */
static void net_tx(struct virtio_pci *vp, struct net_pair *p, unsigned int q, struct virtq *vq)
{
	struct virtq_elem e = {.iov = p->tx_iov, .max_segs = NET_TX_SEGS};
	struct error err = {0};
	unsigned int nused = 0, sent = 0;
	int ret = 1;

	virtq_set_notify(vq, false);
	while (sent < VIRTIO_NET_TX_BUDGET) {
		ret = net_tx_pop(vq, &e, &err);
		if (ret <= 0)
			break;
		if (!net_tx_valid(vp, &e)) {
			ret = 0;
			break;
		}
		net_tx_send(p, &e);
		p->used[nused++] = (struct virtq_used_elem){e.head, 0};
		sent++;
		if (nused == VIRTIO_NET_TX_PUSH)
			net_tx_push(vp, p, q, vq, &nused);
	}
	net_tx_push(vp, p, q, vq, &nused);
	virtq_set_notify(vq, true);
	if (ret < 0)
		virtio_pci_needs_reset(vp, err.msg);
	else if (sent == VIRTIO_NET_TX_BUDGET && virtq_has_avail(vq))
		virtio_pci_queue_kick(vp, q); /* more later, after the other handlers */
}

/* ---- receive ---- */

static struct net_rx_chain *net_rx_at(struct net_pair *p, unsigned int i)
{
	return &p->rx[(p->rx_first + i) % NET_RX_CACHE];
}

/* Pops one more chain into the cache: 1, 0 when the ring is empty, or an error (the
 * device then needs a reset). */
static int net_rx_pop(struct virtio_pci *vp, struct net_pair *p, struct virtq *vq,
		      struct error *err)
{
	struct net_rx_chain *c = net_rx_at(p, p->rx_count);
	struct virtq_elem e = {.iov = c->iov, .max_segs = NET_RX_SEGS};
	int ret = virtq_pop(vq, &e, err);

	if (ret < 0)
		virtio_pci_needs_reset(vp, err->msg);
	if (ret <= 0)
		return ret;
	/* buffers must be device-writable and hold at least the header (5.1.6.3.1) */
	if (e.out_num || e.in_len < VIRTIO_NET_HDR_SIZE) {
		virtio_pci_needs_reset(vp, e.out_num ? "receive chain with a device-readable buffer"
						     : "receive buffer smaller than the header");
		return -EPROTO;
	}
	c->head = e.head;
	c->niov = e.in_num;
	c->len = e.in_len;
	p->rx_count++;
	p->rx_cached += e.in_len;
	return 1;
}

/*
 * Makes sure the cache can take the next frame: one chain without
 * MRG_RXBUF (each must hold a whole frame), with it chains until the
 * largest frame fits or the ring is empty.
 */
static int net_rx_refill(struct virtio_pci *vp, struct net_pair *p, struct virtq *vq,
			 struct error *err)
{
	struct virtio_net *net = p->net;
	bool mrg = net_has(net, VIRTIO_NET_F_MRG_RXBUF);
	uint64_t need = virtio_pci_features(vp) & NET_GUEST_GSO ? NET_RX_BIG : NET_RX_SMALL;
	int ret;

	while (p->rx_count < (mrg ? NET_RX_CACHE : 1) && (!p->rx_count || p->rx_cached < need)) {
		ret = net_rx_pop(vp, p, vq, err);
		if (ret <= 0)
			return ret;
	}
	return 1;
}

/*
 * The segments readv() fills: one chain, or with MRG_RXBUF every cached
 * chain in order, then one spare byte of ours. The kernel truncates a frame
 * larger than the buffers and, depending on its version, reports either its
 * full length or only what it copied; a frame that reaches the spare byte
 * was too large either way.
 */
static unsigned int net_rx_iov(struct net_pair *p, bool mrg, uint64_t *room)
{
	unsigned int cnt = 0, chains = mrg ? p->rx_count : 1;

	*room = 0;
	for (unsigned int i = 0; i < chains; i++) {
		struct net_rx_chain *c = net_rx_at(p, i);

		for (unsigned int s = 0; s < c->niov && cnt < NET_RX_IOV - 1; s++) {
			p->rx_iov[cnt++] = c->iov[s];
			*room += c->iov[s].iov_len;
		}
	}
	p->rx_iov[cnt++] = (struct iovec){&p->rx_spare, 1};
	return cnt;
}

/* Hands the n bytes just read to the driver: chains in order, num_buffers in the header. */
static void net_rx_deliver(struct net_pair *p, struct virtq *vq, uint32_t n)
{
	unsigned int k = 0;
	uint8_t nb[2];

	while (n && k < p->rx_count) {
		struct net_rx_chain *c = net_rx_at(p, k);
		uint32_t take = n < c->len ? n : c->len;

		p->used[k++] = (struct virtq_used_elem){c->head, take};
		n -= take;
	}
	le_put(nb, 2, k);
	/* the header lies wholly in the first chain: each holds at least one */
	iov_from_buf(net_rx_at(p, 0)->iov, net_rx_at(p, 0)->niov, VIRTIO_NET_HDR_NUM_BUFFERS, nb,
		     2);
	if (virtq_push_batch(vq, p->used, k))
		log_warn("virtio-net: used ring push failed");
	for (unsigned int i = 0; i < k; i++)
		p->rx_cached -= net_rx_at(p, i)->len;
	p->rx_first = (p->rx_first + k) % NET_RX_CACHE;
	p->rx_count -= k;
}

/* Reads one frame: 1 when one was taken (delivered or dropped) or worth another try, 0 when
 * the tap is empty. */
static int net_rx_one(struct net_pair *p, struct virtq *vq, bool mrg)
{
	uint64_t room;
	unsigned int cnt = net_rx_iov(p, mrg, &room);
	ssize_t n = readv(p->fd, p->rx_iov, (int)cnt);

	if (n <= 0) {
		if (n < 0 && errno == EINTR)
			return 1; /* try again, within the batch */
		if (n < 0 && errno == EAGAIN)
			return 0;
		/* the tap went away (deleted under us): stop until its next event */
		if (!p->st.rx_errors++)
			log_warn("virtio-net %s: receive: %s", p->net->tap,
				 n ? strerror(errno) : "end of file");
		return 0;
	}
	if ((uint64_t)n > room || n < VIRTIO_NET_HDR_SIZE) {
		/* truncated to the buffers we had: useless to the guest */
		if (!p->st.rx_dropped++)
			log_warn("virtio-net %s: %zd-byte frame larger than the guest's %" PRIu64
				 "-byte buffers (dropping; counted from now on)",
				 p->net->tap, n, room);
		return 1;
	}
	net_rx_deliver(p, vq, (uint32_t)n);
	p->st.rx_packets++;
	p->st.rx_bytes += (uint64_t)n - VIRTIO_NET_HDR_SIZE;
	return 1;
}

static void net_rx(struct virtio_pci *vp, struct net_pair *p, unsigned int q, struct virtq *vq)
{
	bool mrg = net_has(p->net, VIRTIO_NET_F_MRG_RXBUF);
	struct error err = {0};
	unsigned int i;
	int ret = 0;

	if (p->index >= p->net->active)
		return; /* its tap queue is detached: nothing arrives here */
	for (i = 0; i < VIRTIO_NET_BATCH; i++) {
		ret = net_rx_refill(vp, p, vq, &err);
		if (ret < 0 || !p->rx_count)
			break; /* no buffers: the driver's next notification brings us back */
		ret = net_rx_one(p, vq, mrg);
		if (ret <= 0)
			break; /* tap empty: its next frame wakes us (edge-triggered) */
	}
	virtio_pci_queue_used(vp, q);
	if (ret >= 0 && i == VIRTIO_NET_BATCH)
		virtio_pci_queue_kick(vp, q); /* more later, after the other handlers */
}

static void net_rx_forget(struct net_pair *p)
{
	p->rx_first = p->rx_count = 0;
	p->rx_cached = 0;
}

/* The tap has frames (I/O thread, no lock held): let the receive queue's handler take them. */
static void net_tap_event(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;

	if (events & EPOLLIN)
		virtio_pci_queue_kick(p->net->vp, 2 * p->index);
}

/* ---- control queue (5.1.6.5) ---- */

struct net_cmd {
	const struct virtq_elem *e;
	uint8_t class, cmd;
	uint32_t len; /* of the command-specific data, which starts at offset 2 */
};

static bool net_cmd_data(const struct net_cmd *c, uint32_t off, void *buf, uint32_t len)
{
	return off <= c->len && len <= c->len - off &&
	       iov_to_buf(c->e->iov, c->e->out_num, 2 + off, buf, len) == len;
}

/* Two tables, unicast then multicast: le32 entries, then 6 bytes each; nothing after. */
static uint8_t net_mac_table(const struct net_cmd *c)
{
	uint64_t off = 0;

	for (int t = 0; t < 2; t++) {
		uint8_t n[4];

		if (off > c->len || !net_cmd_data(c, (uint32_t)off, n, 4))
			return VIRTIO_NET_ERR;
		off += 4 + 6ULL * le_get(n, 4);
	}
	/* we deliver every frame anyway: filtering is a SHOULD the tap cannot help with */
	return off == c->len ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
}

static uint8_t net_ctrl_mac(struct virtio_net *net, const struct net_cmd *c)
{
	uint8_t mac[6];

	if (c->cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET && net_has(net, VIRTIO_NET_F_CTRL_RX))
		return net_mac_table(c);
	if (c->cmd != VIRTIO_NET_CTRL_MAC_ADDR_SET || !net_has(net, VIRTIO_NET_F_CTRL_MAC_ADDR) ||
	    c->len != 6 || !net_cmd_data(c, 0, mac, 6) || (mac[0] & 1))
		return VIRTIO_NET_ERR;
	memcpy(net->mac, mac, 6);
	return VIRTIO_NET_OK;
}

static uint8_t net_ctrl_mq(struct virtio_net *net, const struct net_cmd *c)
{
	uint8_t b[2];
	uint16_t n;

	if (c->cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || !net_has(net, VIRTIO_NET_F_MQ) ||
	    c->len != 2 || !net_cmd_data(c, 0, b, 2))
		return VIRTIO_NET_ERR;
	n = (uint16_t)le_get(b, 2);
	if (n < 1 || n > net->pairs)
		return VIRTIO_NET_ERR;
	return net_set_active(net, n) ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
}

static uint8_t net_ctrl_offloads(struct virtio_net *net, const struct net_cmd *c)
{
	uint64_t allowed = virtio_pci_features(net->vp) & NET_GUEST_OFFLOADS, o;
	uint8_t b[8];

	if (c->cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET ||
	    !net_has(net, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || c->len != 8 ||
	    !net_cmd_data(c, 0, b, 8))
		return VIRTIO_NET_ERR;
	o = le_get(b, 8);
	if (o & ~allowed)
		return VIRTIO_NET_ERR;
	return net_apply_offloads(net, o) ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
}

static uint8_t net_ctrl_dispatch(struct virtio_net *net, const struct net_cmd *c)
{
	switch (c->class) {
	case VIRTIO_NET_CTRL_RX:
		/* promisc, allmulti, ...: a tap delivers everything; nothing to switch */
		if (!net_has(net, VIRTIO_NET_F_CTRL_RX) || c->cmd > VIRTIO_NET_CTRL_RX_NOBCAST ||
		    c->len != 1)
			return VIRTIO_NET_ERR;
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_MAC:
		return net_ctrl_mac(net, c);
	case VIRTIO_NET_CTRL_MQ:
		return net_ctrl_mq(net, c);
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
		return net_ctrl_offloads(net, c);
	case VIRTIO_NET_CTRL_ANNOUNCE:
		/* 5.1.6.5.4: the driver announced itself; clear the status bit */
		if (!net_has(net, VIRTIO_NET_F_GUEST_ANNOUNCE) ||
		    c->cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK || c->len)
			return VIRTIO_NET_ERR;
		__atomic_store_n(&net->announce, false, __ATOMIC_RELAXED);
		return VIRTIO_NET_OK;
	default:
		return VIRTIO_NET_ERR;
	}
}

/* One command; false after a malformed chain (the device then needs a reset). */
static bool net_ctrl_one(struct virtio_net *net, const struct virtq_elem *e, uint32_t *written)
{
	struct net_cmd c = {.e = e};
	uint8_t hdr[2], ack;

	if (!e->in_num || e->out_len < 2 || iov_to_buf(e->iov, e->out_num, 0, hdr, 2) != 2) {
		virtio_pci_needs_reset(net->vp, "control command without a class or an ack byte");
		return false;
	}
	c.class = hdr[0];
	c.cmd = hdr[1];
	c.len = e->out_len - 2;
	ack = net_ctrl_dispatch(net, &c);
	if (ack != VIRTIO_NET_OK)
		log_debug("virtio-net %s: control class %u command %u refused", net->tap, c.class,
			  c.cmd);
	/* zero-length descriptors make no segment, so this one has room for the ack */
	*(uint8_t *)e->iov[e->out_num].iov_base = ack;
	*written = 1;
	return true;
}

static void net_ctrl(struct virtio_pci *vp, struct virtio_net *net, unsigned int q,
		     struct virtq *vq)
{
	struct iovec iov[NET_RX_SEGS];
	struct virtq_elem e = {.iov = iov, .max_segs = NET_RX_SEGS};
	struct error err = {0};
	uint32_t written = 0;
	unsigned int i;
	int ret = 0;

	for (i = 0; i < VIRTIO_NET_BATCH; i++) {
		ret = virtq_pop(vq, &e, &err);
		if (ret <= 0)
			break;
		if (!net_ctrl_one(net, &e, &written)) {
			ret = 0;
			break;
		}
		virtq_push(vq, e.head, written);
	}
	virtio_pci_queue_used(vp, q);
	if (ret < 0)
		virtio_pci_needs_reset(vp, err.msg);
	else if (i == VIRTIO_NET_BATCH && virtq_has_avail(vq))
		virtio_pci_queue_kick(vp, q);
}

/* ---- transport callbacks ---- */

static void virtio_net_notify(struct virtio_pci *vp, unsigned int q, struct virtq *vq)
{
	struct virtio_net *net = virtio_pci_opaque(vp);
	unsigned int pair = 0;

	switch (net_role(net, q, &pair)) {
	case NET_RX:
		net_rx(vp, &net->pair[pair], q, vq);
		break;
	case NET_TX:
		net_tx(vp, &net->pair[pair], q, vq);
		break;
	case NET_CTRL:
		net_ctrl(vp, net, q, vq);
		break;
	case NET_NONE:
		break; /* a queue that does not exist with these features: ignore it */
	}
}

/* 5.1.3.1: a feature without the ones it depends on is refused. */
static bool virtio_net_features_ok(struct virtio_pci *vp, uint64_t f)
{
	struct virtio_net *net = virtio_pci_opaque(vp);
	static const struct {
		unsigned int bit;
		uint64_t needs; /* any of these */
	} deps[] = {
		{VIRTIO_NET_F_GUEST_TSO4, F(VIRTIO_NET_F_GUEST_CSUM)},
		{VIRTIO_NET_F_GUEST_TSO6, F(VIRTIO_NET_F_GUEST_CSUM)},
		{VIRTIO_NET_F_GUEST_ECN, F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6)},
		{VIRTIO_NET_F_GUEST_UFO, F(VIRTIO_NET_F_GUEST_CSUM)},
		{VIRTIO_NET_F_HOST_TSO4, F(VIRTIO_NET_F_CSUM)},
		{VIRTIO_NET_F_HOST_TSO6, F(VIRTIO_NET_F_CSUM)},
		{VIRTIO_NET_F_HOST_ECN, F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6)},
		{VIRTIO_NET_F_HOST_UFO, F(VIRTIO_NET_F_CSUM)},
		{VIRTIO_NET_F_CTRL_RX, F(VIRTIO_NET_F_CTRL_VQ)},
		{VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, F(VIRTIO_NET_F_CTRL_VQ)},
		{VIRTIO_NET_F_MQ, F(VIRTIO_NET_F_CTRL_VQ)},
		{VIRTIO_NET_F_CTRL_MAC_ADDR, F(VIRTIO_NET_F_CTRL_VQ)},
		{VIRTIO_NET_F_GUEST_ANNOUNCE, F(VIRTIO_NET_F_CTRL_VQ)},
	};

	for (size_t i = 0; i < sizeof(deps) / sizeof(deps[0]); i++)
		if ((f & F(deps[i].bit)) && !(f & deps[i].needs))
			return false;
	/* offloads the guest takes are on from now on (5.1.6.5.6.1) */
	net_apply_offloads(net, f & NET_GUEST_OFFLOADS);
	return true;
}

static void virtio_net_config_read(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *net = virtio_pci_opaque(vp);
	uint8_t cfg[VIRTIO_NET_CFG_SIZE] = {0};

	memcpy(cfg + VIRTIO_NET_CFG_MAC, net->mac, 6);
	le_put(cfg + VIRTIO_NET_CFG_STATUS, 2,
	       VIRTIO_NET_S_LINK_UP |
		       (__atomic_load_n(&net->announce, __ATOMIC_RELAXED) ? VIRTIO_NET_S_ANNOUNCE
									  : 0));
	le_put(cfg + VIRTIO_NET_CFG_MAX_PAIRS, 2, net->pairs);
	le_put(cfg + VIRTIO_NET_CFG_MTU, 2, VIRTIO_NET_DEFAULT_MTU);
	if (off < sizeof(cfg) && len <= sizeof(cfg) - off)
		memcpy(data, cfg + off, len);
}

/* The driver may write the MAC when it has no CTRL_MAC_ADDR (5.1.4.2). */
static void virtio_net_config_write(struct virtio_pci *vp, uint32_t off, const uint8_t *data,
				    uint32_t len)
{
	struct virtio_net *net = virtio_pci_opaque(vp);

	if (off < 6 && len <= 6 - off)
		memcpy(net->mac + off, data, len);
}

/* Queues are already reset: forget popped buffers, back to one pair and no offloads. */
static void virtio_net_reset(struct virtio_pci *vp)
{
	struct virtio_net *net = virtio_pci_opaque(vp);

	for (unsigned int i = 0; i < net->pairs; i++)
		net_rx_forget(&net->pair[i]);
	memcpy(net->mac, net->mac0, 6);
	__atomic_store_n(&net->announce, false, __ATOMIC_RELAXED);
	net_apply_offloads(net, 0);
	net_set_active(net, 1);
}

/*
 * ---- snapshot ----
 * u32 version, u8 mac[6], u16 active pairs, u64 guest offloads. Receive
 * chains popped and not yet filled go back to the queues (held()). On
 * restore the tap gets the offloads (TUNSETOFFLOAD) and queue attachment
 * the guest had negotiated.
 */
#define VIRTIO_NET_STATE_VERSION 1

static uint16_t virtio_net_held(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_net *net = virtio_pci_opaque(vp);
	unsigned int pair = 0;

	if (net_role(net, q, &pair) != NET_RX)
		return 0;
	return (uint16_t)net->pair[pair].rx_count;
}

static void virtio_net_save(struct virtio_pci *vp, struct snap_writer *w)
{
	struct virtio_net *net = virtio_pci_opaque(vp);

	snap_put_u32(w, VIRTIO_NET_STATE_VERSION);
	snap_put_bytes(w, net->mac, 6);
	snap_put_u16(w, (uint16_t)net->active);
	snap_put_u64(w, net->offloads);
}

static int virtio_net_restore(struct virtio_pci *vp, struct snap_section *s, const char *name,
			      struct error *err)
{
	struct virtio_net *net = virtio_pci_opaque(vp);
	uint32_t version = snap_get_u32(s);
	uint8_t mac[6];
	uint16_t active;
	uint64_t offloads;
	int ret;

	if (version != VIRTIO_NET_STATE_VERSION)
		return state_bad(err, name, "net state version", version);
	snap_get_bytes(s, mac, 6);
	active = snap_get_u16(s);
	offloads = snap_get_u64(s);
	if (active < 1 || active > net->pairs || (active > 1 && !net_has(net, VIRTIO_NET_F_MQ)))
		return state_bad(err, name, "active queue pairs", active);
	if (offloads & ~(virtio_pci_features(vp) & NET_GUEST_OFFLOADS))
		return state_bad(err, name, "guest offloads", offloads);
	memcpy(net->mac, net->new_identity ? net->mac0 : mac, 6);
	ret = net_apply_offloads(net, offloads);
	if (!ret)
		ret = net_set_active(net, active);
	if (ret)
		return error_set(err, -ret, "state section '%s': tap %s: %s", name, net->tap,
				 strerror(-ret));
	/*
	 * A clone's new MAC: a configuration change interrupt (4.1.4.3), with
	 * VIRTIO_NET_S_ANNOUNCE when the driver took GUEST_ANNOUNCE, so it
	 * tells the network where it is now (5.1.6.5.4).
	 */
	if (memcmp(net->mac, mac, 6)) {
		if (net_has(net, VIRTIO_NET_F_GUEST_ANNOUNCE))
			__atomic_store_n(&net->announce, true, __ATOMIC_RELAXED);
		virtio_pci_config_changed(vp);
	}
	return 0;
}

static const struct virtio_device_ops virtio_net_ops = {
	.features_ok = virtio_net_features_ok,
	.config_read = virtio_net_config_read,
	.config_write = virtio_net_config_write,
	.queue_notify = virtio_net_notify,
	.reset = virtio_net_reset,
	.held = virtio_net_held,
	.save = virtio_net_save,
	.restore = virtio_net_restore,
};

/* ---- life cycle ---- */

unsigned int virtio_net_num_queues(const struct virtio_net_opts *opts)
{
	return 2 * opts->queue_pairs + 1;
}

static uint64_t net_features(const struct virtio_net *net)
{
	uint64_t f = NET_GUEST_OFFLOADS | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) |
		     F(VIRTIO_NET_F_HOST_TSO6) | F(VIRTIO_NET_F_HOST_ECN) |
		     F(VIRTIO_NET_F_HOST_UFO) | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) |
		     F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) |
		     F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | F(VIRTIO_NET_F_CTRL_MAC_ADDR) |
		     F(VIRTIO_NET_F_GUEST_ANNOUNCE);

	return net->pairs > 1 ? f | F(VIRTIO_NET_F_MQ) : f;
}

/* 52:54:00 (the usual prefix for virtual NICs, locally administered) and 3 random bytes. */
static int net_pick_mac(struct virtio_net *net, const uint8_t *mac, struct error *err)
{
	if (mac) {
		memcpy(net->mac0, mac, 6);
	} else {
		net->mac0[0] = 0x52;
		net->mac0[1] = 0x54;
		net->mac0[2] = 0x00;
		if (getrandom(net->mac0 + 3, 3, 0) != 3)
			return error_set(err, errno ? errno : EIO, "virtio-net: random MAC: %s",
					 strerror(errno ? errno : EIO));
	}
	memcpy(net->mac, net->mac0, 6);
	return 0;
}

static int net_open_taps(struct virtio_net *net, struct error *err)
{
	for (unsigned int i = 0; i < net->pairs; i++) {
		struct net_pair *p = &net->pair[i];

		p->fd = tap_open_queue(net->tap, net->pairs > 1, err);
		if (p->fd < 0)
			return p->fd;
		p->attached = true;
	}
	net_set_active(net, 1);
	return 0;
}

static int net_watch_taps(struct virtio_net *net, struct error *err)
{
	for (unsigned int i = 0; i < net->pairs; i++) {
		struct net_pair *p = &net->pair[i];
		int ret = iothread_add_fd(net->io, p->fd, EPOLLIN | EPOLLET, net_tap_event, p);

		if (ret)
			return error_set(err, -ret, "virtio-net: I/O thread: %s", strerror(-ret));
		p->watched = true;
	}
	return 0;
}

static int net_alloc(struct virtio_net *net, const struct virtio_net_opts *o, struct error *err)
{
	unsigned int nq = virtio_net_num_queues(o);

	net->pairs = o->queue_pairs ? o->queue_pairs : 1;
	net->active = 1;
	snprintf(net->tap, sizeof(net->tap), "%s", o->tap);
	net->qmax = calloc(nq, sizeof(*net->qmax));
	net->pair = calloc(net->pairs, sizeof(*net->pair));
	if (!net->qmax || !net->pair)
		return error_set(err, ENOMEM, "out of memory");
	for (unsigned int i = 0; i < nq; i++)
		net->qmax[i] = i + 1 < nq ? VIRTIO_NET_QSIZE : VIRTIO_NET_CTRL_QSIZE;
	for (unsigned int i = 0; i < net->pairs; i++)
		net->pair[i] = (struct net_pair){.net = net, .index = i, .fd = -1};
	return 0;
}

struct virtio_net *virtio_net_create(const struct virtio_pci_host *host, struct pci_root *root,
				     const struct virtio_net_opts *opts, struct error *err)
{
	struct virtio_net *net = calloc(1, sizeof(*net));
	struct virtio_device_info info = {
		.name = "virtio-net",
		.device_id = VIRTIO_ID_NET,
		.class_code = VIRTIO_NET_CLASS,
		.config_size = VIRTIO_NET_CFG_SIZE,
		.ops = &virtio_net_ops,
		.opaque = net,
	};

	if (!net) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	net->io = host->io;
	net->new_identity = opts->new_identity;
	if (net_alloc(net, opts, err) || net_pick_mac(net, opts->mac, err) ||
	    net_open_taps(net, err))
		goto fail;
	info.features = net_features(net);
	info.num_queues = virtio_net_num_queues(opts);
	info.queue_max = net->qmax;
	net->vp = virtio_pci_create(&info, host, err);
	if (!net->vp || virtio_pci_register(net->vp, root, err) || net_watch_taps(net, err))
		goto fail;
	return net;
fail:
	virtio_net_destroy(net);
	return NULL;
}

static void net_close_pair(struct virtio_net *net, struct net_pair *p)
{
	const struct net_stats *s = &p->st;

	if (p->watched)
		iothread_remove_fd(net->io, p->fd);
	if (p->fd >= 0)
		close(p->fd);
	if (s->rx_dropped || s->rx_errors || s->tx_dropped)
		log_info("virtio-net %s queue %u: rx %" PRIu64 " (dropped %" PRIu64
			 ", errors %" PRIu64 "), tx %" PRIu64 " (dropped %" PRIu64 ")",
			 net->tap, p->index, s->rx_packets, s->rx_dropped, s->rx_errors,
			 s->tx_packets, s->tx_dropped);
}

void virtio_net_destroy(struct virtio_net *net)
{
	if (!net)
		return;
	for (unsigned int i = 0; net->pair && i < net->pairs; i++)
		net_close_pair(net, &net->pair[i]);
	virtio_pci_destroy(net->vp);
	free(net->pair);
	free(net->qmax);
	free(net);
}

struct virtio_pci *virtio_net_transport(struct virtio_net *net)
{
	return net->vp;
}

/*
 * The I/O thread counts with plain increments under the transport's mutex;
 * metrics do not take that mutex (a scrape must not stall the data path),
 * so each counter is loaded atomically on its own.
 */
void virtio_net_get_stats(struct virtio_net *net, struct virtio_net_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int i = 0; i < net->pairs; i++) {
		const struct net_stats *st = &net->pair[i].st;

		out->rx_packets += __atomic_load_n(&st->rx_packets, __ATOMIC_RELAXED);
		out->rx_bytes += __atomic_load_n(&st->rx_bytes, __ATOMIC_RELAXED);
		out->rx_dropped += __atomic_load_n(&st->rx_dropped, __ATOMIC_RELAXED);
		out->rx_errors += __atomic_load_n(&st->rx_errors, __ATOMIC_RELAXED);
		out->tx_packets += __atomic_load_n(&st->tx_packets, __ATOMIC_RELAXED);
		out->tx_bytes += __atomic_load_n(&st->tx_bytes, __ATOMIC_RELAXED);
		out->tx_dropped += __atomic_load_n(&st->tx_dropped, __ATOMIC_RELAXED);
	}
}
