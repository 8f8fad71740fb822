// SPDX-License-Identifier: MIT
/*
 * virtio-net driven the way a guest driver drives it: through ECAM and BAR
 * accesses on real buses, rings and buffers in a real gmem (a memfd, no
 * KVM), a real I/O thread, and a real tap. Each test runs in a network
 * namespace of its own (Criterion forks one process per test), where the
 * device creates its tap; an AF_PACKET socket on that tap plays the rest
 * of the network: it sees what the guest sends and injects what the guest
 * receives.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/net.h"
#include "virtio_fixture.h"

#define RAM	    (4 * MiB)
#define QSIZE	    16
#define RING_GPA(q) (0x10000ULL + 0x10000ULL * (q))
#define DESC_OFF    0x0000
#define AVAIL_OFF   0x4000
#define USED_OFF    0x8000
#define BUF_GPA	    0x200000ULL
#define NVEC	    8
#define TAP	    "bsn0"
#define ETH_TEST    0x88b5 /* IEEE local experimental EtherType */
#define F(b)	    (1ULL << (b))
#define F_BASE	    (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS))
#define F_CTRL                                                                                     \
	(F_BASE | F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) |                              \
	 F(VIRTIO_NET_F_CTRL_MAC_ADDR) | F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |                     \
	 F(VIRTIO_NET_F_GUEST_CSUM))

static const uint8_t test_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static struct vfx fx;
static struct virtio_net *net;
static struct error err;
static int pkt = -1; /* AF_PACKET on the tap: the network */
static int ifindex;

struct tq {
	uint16_t avail_idx;
	uint16_t used_seen;
	uint16_t next_desc;
};
static struct tq tq[NVEC];
static uint64_t buf_next = BUF_GPA;

/* Our own network namespace, without IPv6 chatter on the tap. */
static void private_netns(void)
{
	int fd;

	if (access("/dev/net/tun", R_OK | W_OK))
		cr_skip_test("skipped: /dev/net/tun is not usable here (%s)", strerror(errno));
	if (unshare(CLONE_NEWNET))
		cr_skip_test("skipped: cannot make a network namespace (%s); needs CAP_NET_ADMIN",
			     strerror(errno));
	fd = open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_WRONLY);
	if (fd >= 0) {
		cr_assert_eq(write(fd, "1", 1), 1);
		close(fd);
	}
}

static void link_up(void)
{
	struct ifreq ifr = {0};
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(s, 0);
	strcpy(ifr.ifr_name, TAP);
	cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0, "%s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0, "%s", strerror(errno));
	close(s);
	ifindex = (int)if_nametoindex(TAP);
	cr_assert_gt(ifindex, 0);
	pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	cr_assert_geq(pkt, 0);
	sll.sll_ifindex = ifindex;
	cr_assert_eq(bind(pkt, (struct sockaddr *)&sll, sizeof(sll)), 0);
}

static void machine_up(unsigned int pairs, const uint8_t *mac)
{
	struct virtio_net_opts o = {.tap = TAP, .mac = mac, .queue_pairs = pairs};

	private_netns();
	error_clear(&err);
	memset(tq, 0, sizeof(tq));
	buf_next = BUF_GPA;
	vfx_up(&fx, &(struct vfx_opts){.ram = RAM, .nvec = NVEC});
	net = virtio_net_create(&fx.host, fx.root, &o, &err);
	cr_assert_not_null(net, "%s", err.msg);
	vfx_attach(&fx, virtio_net_transport(net));
	link_up();
}

/* The VMM's order: I/O thread, root, devices, then guest memory. */
static void teardown(void)
{
	if (!net)
		return;
	vfx_stop(&fx);
	virtio_net_destroy(net);
	vfx_down(&fx);
	if (pkt >= 0)
		close(pkt);
}

TestSuite(vnet, .fini = teardown);

/* ---- driver side ---- */

static struct vfx_ring ring(unsigned int q)
{
	return (struct vfx_ring){RING_GPA(q) + DESC_OFF, RING_GPA(q) + AVAIL_OFF,
				 RING_GPA(q) + USED_OFF, QSIZE};
}

/* Features, then FEATURES_OK; false when the device refused them. */
static bool negotiate(uint64_t f)
{
	vfx_set_status(&fx, 0);
	return vfx_negotiate(&fx, f);
}

/* Negotiates f, enables queues [0, nq), DRIVER_OK. */
static void bring_up(uint64_t f, unsigned int nq)
{
	struct vfx_ring r[NVEC];

	cr_assert_leq(nq, NVEC);
	memset(tq, 0, sizeof(tq));
	for (unsigned int q = 0; q < nq; q++) {
		memset(vfx_gp(&fx, RING_GPA(q), 0x10000), 0, 0x10000);
		r[q] = ring(q);
	}
	vfx_set_status(&fx, 0);
	vfx_bring_up(&fx, f, r, nq);
}

/* Guest memory for a buffer of len bytes. */
static uint64_t galloc(uint32_t len)
{
	uint64_t g = buf_next;

	buf_next += (len + 63) & ~63u;
	cr_assert_lt(buf_next, RAM);
	return g;
}

/* Offers one chain on queue q and notifies; returns its head. */
static uint16_t offer(unsigned int q, const struct vfx_seg *s, int n)
{
	struct tq *t = &tq[q];
	uint16_t head = t->next_desc % QSIZE;

	vfx_chain(&fx, ring(q), head, s, n);
	t->next_desc += n;
	vfx_avail_push(&fx, ring(q), &t->avail_idx, head);
	vfx_notify(&fx, q);
	return head;
}

/* Waits for the next used element of q: true with its id and length. */
static bool next_used(unsigned int q, uint32_t *id, uint32_t *len)
{
	struct tq *t = &tq[q];
	struct virtq_used_elem e;

	if (!vfx_wait_used_past(&fx, ring(q), t->used_seen, 2000))
		return false;
	e = vfx_used_elem(&fx, ring(q), t->used_seen);
	*id = e.id;
	*len = e.len;
	t->used_seen++;
	return true;
}

static bool wait_needs_reset(void)
{
	return vfx_wait_status(&fx, VIRTIO_STATUS_DEVICE_NEEDS_RESET, 2000);
}

/* A test frame: broadcast, from src, our EtherType, then a pattern. */
static void make_frame(uint8_t *f, uint32_t len, const uint8_t *src, uint8_t seed)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETH_TEST >> 8;
	f[13] = ETH_TEST & 0xff;
	for (uint32_t i = 14; i < len; i++)
		f[i] = (uint8_t)(i * 13 + seed);
}

/* Sends a frame into the tap, to be received by the guest. */
static void inject(const uint8_t *f, uint32_t len)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6};

	memcpy(sll.sll_addr, f, 6);
	cr_assert_eq(sendto(pkt, f, len, 0, (struct sockaddr *)&sll, sizeof(sll)), (ssize_t)len,
		     "%s", strerror(errno));
}

/* The next frame of our EtherType that the guest sent; its length, or -1. */
static ssize_t capture(uint8_t *f, size_t cap)
{
	struct pollfd p = {.fd = pkt, .events = POLLIN};

	while (poll(&p, 1, 2000) == 1) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(pkt, f, cap, 0, (struct sockaddr *)&from, &fl);

		if (n >= 14 && from.sll_pkttype != PACKET_OUTGOING &&
		    ((f[12] << 8) | f[13]) == ETH_TEST)
			return n;
	}
	return -1;
}

/* ---- identity, features, configuration ---- */

Test(vnet, identity_features_and_config)
{
	uint64_t f, want = F_CTRL | F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_CSUM) |
			   F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) |
			   F(VIRTIO_NET_F_GUEST_ECN) | F(VIRTIO_NET_F_GUEST_UFO) |
			   F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) |
			   F(VIRTIO_NET_F_HOST_ECN) | F(VIRTIO_NET_F_HOST_UFO) |
			   F(VIRTIO_F_EVENT_IDX) | F(VIRTIO_F_INDIRECT_DESC);
	struct pci_device *d;

	machine_up(1, test_mac);
	d = virtio_pci_pci(virtio_net_transport(net));
	f = vfx_device_features(&fx);
	cr_assert_eq(pci_config_get16(d, PCI_DEVICE_ID), 0x1041);
	cr_assert_eq(f & want, want, "offered 0x%llx", (unsigned long long)f);
	cr_assert_not(f & F(VIRTIO_NET_F_MQ), "MQ only with more than one pair");
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_MAC + i, 1),
			     test_mac[i]);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_STATUS, 2),
		     VIRTIO_NET_S_LINK_UP);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_MAX_PAIRS, 2), 1);
}

Test(vnet, multiqueue_config_and_random_mac)
{
	machine_up(2, NULL);
	cr_assert(vfx_device_features(&fx) & F(VIRTIO_NET_F_MQ));
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 5);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_MAX_PAIRS, 2), 2);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_MAC, 4) & 0xffffff,
		     0x005452, "a random MAC starts 52:54:00");
}

Test(vnet, feature_dependencies_are_enforced)
{
	machine_up(1, test_mac);
	cr_assert_not(negotiate(F_BASE | F(VIRTIO_NET_F_GUEST_TSO4)), "TSO4 needs GUEST_CSUM");
	cr_assert_not(negotiate(F_BASE | F(VIRTIO_NET_F_HOST_ECN) | F(VIRTIO_NET_F_CSUM)),
		      "HOST_ECN needs HOST_TSO4/6");
	cr_assert_not(negotiate(F_BASE | F(VIRTIO_NET_F_CTRL_RX)), "CTRL_RX needs CTRL_VQ");
	cr_assert(negotiate(F_BASE | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |
			    F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN)));
}

/* ---- transmit ---- */

Test(vnet, transmit_reaches_the_tap)
{
	uint64_t hdr = galloc(VIRTIO_NET_HDR_SIZE), frame = galloc(128), one = galloc(140);
	uint8_t got[256], want[128];
	uint32_t id, len;
	ssize_t n;

	machine_up(1, test_mac);
	bring_up(F_BASE, 2);
	/* header and frame in two descriptors */
	memset(vfx_gp(&fx, hdr, VIRTIO_NET_HDR_SIZE), 0, VIRTIO_NET_HDR_SIZE);
	make_frame(vfx_gp(&fx, frame, 128), 128, test_mac, 1);
	memcpy(want, vfx_gp(&fx, frame, 128), 128);
	offer(1, (struct vfx_seg[]){{hdr, VIRTIO_NET_HDR_SIZE, false}, {frame, 128, false}}, 2);
	cr_assert(next_used(1, &id, &len), "transmit chain not used");
	cr_assert_eq(id, 0);
	n = capture(got, sizeof(got));
	cr_assert_eq(n, 128, "the frame must reach the tap, header stripped (got %zd)", n);
	cr_assert_arr_eq(got, want, 128);
	/* header and frame in one */
	memset(vfx_gp(&fx, one, 12), 0, 12);
	make_frame((uint8_t *)vfx_gp(&fx, one, 140) + 12, 128, test_mac, 2);
	offer(1, (struct vfx_seg[]){{one, 140, false}}, 1);
	cr_assert(next_used(1, &id, &len));
	cr_assert_eq(capture(got, sizeof(got)), 128);
	cr_assert_arr_eq(got, (uint8_t *)vfx_gp(&fx, one, 140) + 12, 128);
	cr_assert_not(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

Test(vnet, transmit_with_writable_buffer_needs_reset)
{
	uint64_t b = galloc(128);

	machine_up(1, test_mac);
	bring_up(F_BASE, 2);
	memset(vfx_gp(&fx, b, 128), 0, 128);
	offer(1, (struct vfx_seg[]){{b, 64, false}, {b + 64, 64, true}}, 2);
	cr_assert(wait_needs_reset(), "a device-writable transmit buffer breaks the protocol");
}

Test(vnet, transmit_shorter_than_header_needs_reset)
{
	uint64_t b = galloc(64);

	machine_up(1, test_mac);
	bring_up(F_BASE, 2);
	offer(1, (struct vfx_seg[]){{b, VIRTIO_NET_HDR_SIZE - 1, false}}, 1);
	cr_assert(wait_needs_reset());
	/* and the device comes back after a reset */
	bring_up(F_BASE, 2);
	cr_assert_not(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* ---- receive ---- */

Test(vnet, receive_fills_a_buffer)
{
	uint64_t b = galloc(2048);
	uint8_t f[300], *g;
	uint32_t id, len;

	machine_up(1, test_mac);
	bring_up(F_BASE, 2);
	memset(vfx_gp(&fx, b, 2048), 0xaa, 2048);
	offer(0, (struct vfx_seg[]){{b, 2048, true}}, 1);
	make_frame(f, sizeof(f), (const uint8_t[]){0x02, 0, 0, 0, 0, 1}, 7);
	inject(f, sizeof(f));
	cr_assert(next_used(0, &id, &len), "no frame received");
	cr_assert_eq(id, 0);
	cr_assert_eq(len, VIRTIO_NET_HDR_SIZE + sizeof(f));
	g = vfx_gp(&fx, b, 2048);
	cr_assert_eq(vfx_le(g + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 1,
		     "num_buffers is 1 without merging");
	cr_assert_arr_eq(g + VIRTIO_NET_HDR_SIZE, f, sizeof(f));
}

Test(vnet, receive_waits_for_buffers)
{
	uint64_t b = galloc(2048);
	uint8_t f[100];
	uint32_t id, len;

	machine_up(1, test_mac);
	bring_up(F_BASE, 2);
	make_frame(f, sizeof(f), (const uint8_t[]){0x02, 0, 0, 0, 0, 1}, 9);
	inject(f, sizeof(f));
	usleep(50000); /* the frame waits in the tap: nowhere to put it */
	offer(0, (struct vfx_seg[]){{b, 2048, true}}, 1);
	cr_assert(next_used(0, &id, &len), "the buffer's notification must resume receiving");
	cr_assert_eq(len, VIRTIO_NET_HDR_SIZE + sizeof(f));
	cr_assert_arr_eq((uint8_t *)vfx_gp(&fx, b, 2048) + VIRTIO_NET_HDR_SIZE, f, sizeof(f));
}

Test(vnet, mergeable_buffers_span_chains)
{
	uint64_t b[4];
	uint8_t f[600], got[600];
	uint32_t id[3], len[3], off = 0;

	machine_up(1, test_mac);
	bring_up(F_BASE | F(VIRTIO_NET_F_MRG_RXBUF), 2);
	for (int i = 0; i < 4; i++) {
		b[i] = galloc(256);
		offer(0, (struct vfx_seg[]){{b[i], 256, true}}, 1);
	}
	make_frame(f, sizeof(f), (const uint8_t[]){0x02, 0, 0, 0, 0, 1}, 11);
	inject(f, sizeof(f));
	for (int i = 0; i < 3; i++)
		cr_assert(next_used(0, &id[i], &len[i]), "used element %d missing", i);
	cr_assert_eq(len[0] + len[1] + len[2], VIRTIO_NET_HDR_SIZE + sizeof(f));
	cr_assert_eq(vfx_le((uint8_t *)vfx_gp(&fx, b[id[0]], 256) + VIRTIO_NET_HDR_NUM_BUFFERS, 2),
		     3);
	for (int i = 0; i < 3; i++) {
		uint32_t skip = i ? 0 : VIRTIO_NET_HDR_SIZE;

		cr_assert_eq(id[i], (uint32_t)i, "buffers are used in order");
		memcpy(got + off, (uint8_t *)vfx_gp(&fx, b[id[i]], 256) + skip, len[i] - skip);
		off += len[i] - skip;
	}
	cr_assert_arr_eq(got, f, sizeof(f));
}

Test(vnet, oversized_frame_is_dropped_and_buffer_reused)
{
	uint64_t b = galloc(256);
	uint8_t big[1000], small[64];
	uint32_t id, len;

	machine_up(1, test_mac);
	bring_up(F_BASE, 2);
	offer(0, (struct vfx_seg[]){{b, 256, true}}, 1);
	make_frame(big, sizeof(big), (const uint8_t[]){0x02, 0, 0, 0, 0, 1}, 1);
	make_frame(small, sizeof(small), (const uint8_t[]){0x02, 0, 0, 0, 0, 1}, 2);
	inject(big, sizeof(big));
	inject(small, sizeof(small));
	cr_assert(next_used(0, &id, &len));
	cr_assert_eq(len, VIRTIO_NET_HDR_SIZE + sizeof(small),
		     "the big frame must not arrive (len %u)", len);
	cr_assert_arr_eq((uint8_t *)vfx_gp(&fx, b, 256) + VIRTIO_NET_HDR_SIZE, small,
			 sizeof(small));
}

Test(vnet, readable_receive_buffer_needs_reset)
{
	uint64_t b = galloc(2048);

	machine_up(1, test_mac);
	bring_up(F_BASE, 2);
	offer(0, (struct vfx_seg[]){{b, 2048, false}}, 1);
	cr_assert(wait_needs_reset());
}

/* ---- control queue ---- */

/* One command on queue q; returns the ack byte (0xee when not written). */
static uint8_t cmd(unsigned int q, uint8_t class, uint8_t c, const void *data, uint32_t len)
{
	uint64_t h = galloc(2), d = galloc(len ? len : 1), a = galloc(1);
	uint8_t *hp = vfx_gp(&fx, h, 2), *ack = vfx_gp(&fx, a, 1);
	uint32_t id, ulen;
	struct vfx_seg s[3];
	int n = 0;

	hp[0] = class;
	hp[1] = c;
	memcpy(vfx_gp(&fx, d, len ? len : 1), data, len);
	*ack = 0xee;
	s[n++] = (struct vfx_seg){h, 2, false};
	if (len)
		s[n++] = (struct vfx_seg){d, len, false};
	s[n++] = (struct vfx_seg){a, 1, true};
	offer(q, s, n);
	cr_assert(next_used(q, &id, &ulen), "control command not used");
	cr_assert_eq(ulen, 1);
	return *ack;
}

Test(vnet, control_commands)
{
	uint8_t on = 1, mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}, table[4 + 6 + 4 + 12] = {0};
	uint8_t bad_table[8] = {5, 0, 0, 0}, off[8] = {0}, pairs[2] = {1, 0};

	machine_up(1, test_mac);
	bring_up(F_CTRL, 3);
	cr_assert_eq(cmd(2, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1), VIRTIO_NET_OK);
	cr_assert_eq(cmd(2, VIRTIO_NET_CTRL_RX, 1, &on, 1), VIRTIO_NET_OK, "allmulti");
	cr_assert_eq(cmd(2, VIRTIO_NET_CTRL_RX, 9, &on, 1), VIRTIO_NET_ERR);
	cr_assert_eq(cmd(2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6),
		     VIRTIO_NET_OK);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_MAC + i, 1),
			     mac[i]);
	table[0] = 1; /* one unicast entry, two multicast */
	table[10] = 2;
	cr_assert_eq(
		cmd(2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table, sizeof(table)),
		VIRTIO_NET_OK);
	cr_assert_eq(cmd(2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, bad_table,
			 sizeof(bad_table)),
		     VIRTIO_NET_ERR, "5 entries promised, none there");
	off[0] = 1 << VIRTIO_NET_F_GUEST_CSUM;
	cr_assert_eq(
		cmd(2, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, off, 8),
		VIRTIO_NET_OK);
	off[0] = 1 << VIRTIO_NET_F_GUEST_TSO4; /* not negotiated */
	cr_assert_eq(
		cmd(2, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, off, 8),
		VIRTIO_NET_ERR);
	cr_assert_eq(cmd(2, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, pairs, 2),
		     VIRTIO_NET_ERR, "no MQ negotiated");
	cr_assert_eq(cmd(2, 0x7f, 0, &on, 1), VIRTIO_NET_ERR, "unknown class");
	cr_assert_not(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* a reset brings the MAC back */
	bring_up(F_CTRL, 3);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_MAC + 5, 1),
		     test_mac[5]);
}

Test(vnet, queue_pairs_set)
{
	uint8_t two[2] = {2, 0}, three[2] = {3, 0}, zero[2] = {0, 0}, one[2] = {1, 0};
	uint64_t b = galloc(2048);
	uint8_t f[80];
	uint32_t id, len;

	machine_up(2, test_mac);
	bring_up(F_BASE | F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_MQ), 5);
	cr_assert_eq(cmd(4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, two, 2),
		     VIRTIO_NET_OK);
	cr_assert_eq(cmd(4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, three, 2),
		     VIRTIO_NET_ERR);
	cr_assert_eq(cmd(4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, zero, 2),
		     VIRTIO_NET_ERR);
	cr_assert_eq(cmd(4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, one, 2),
		     VIRTIO_NET_OK);
	/* with one pair, everything arrives on receiveq1 */
	offer(0, (struct vfx_seg[]){{b, 2048, true}}, 1);
	make_frame(f, sizeof(f), (const uint8_t[]){0x02, 0, 0, 0, 0, 1}, 3);
	inject(f, sizeof(f));
	cr_assert(next_used(0, &id, &len));
	cr_assert_eq(len, VIRTIO_NET_HDR_SIZE + sizeof(f));
}

Test(vnet, control_command_without_ack_needs_reset)
{
	uint64_t h = galloc(2);

	machine_up(1, test_mac);
	bring_up(F_CTRL, 3);
	offer(2, (struct vfx_seg[]){{h, 2, false}}, 1);
	cr_assert(wait_needs_reset());
}

Test(vnet, destroy_null_is_a_no_op)
{
	virtio_net_destroy(NULL);
}

/* ---- snapshot ---- */

/* Saves the device and loads the state back into it (reset first, as a fresh twin would be). */
static int save_and_restore(void)
{
	return vfx_save_restore(virtio_net_transport(net), "virtio-net0", &err);
}

Test(vnet, restore_keeps_mac_and_hands_held_buffers_out_again)
{
	static const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
	uint64_t b[2] = {galloc(2048), galloc(2048)};
	uint8_t f[200];
	uint32_t id, len;

	machine_up(1, test_mac);
	bring_up(F_BASE | F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_GUEST_CSUM), 2);
	for (int i = 0; i < 6; i++)
		vfx_bar_wr(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_MAC + i, 1, mac[i]);
	offer(0, (struct vfx_seg[]){{b[0], 2048, true}}, 1);
	offer(0, (struct vfx_seg[]){{b[1], 2048, true}}, 1);
	usleep(50000); /* the device may hold both, waiting for a frame */
	cr_assert_eq(save_and_restore(), 0, "%s", err.msg);
	cr_assert_eq(vfx_status(&fx), 0x0f);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_NET_CFG_MAC + i, 1),
			     mac[i]);
	make_frame(f, sizeof(f), (const uint8_t[]){0x02, 0, 0, 0, 0, 1}, 3);
	inject(f, sizeof(f));
	cr_assert(next_used(0, &id, &len), "no frame received after restore");
	cr_assert_eq(id, 0, "the first buffer, popped before the save, is used first");
	cr_assert_eq(len, VIRTIO_NET_HDR_SIZE + sizeof(f));
	cr_assert_arr_eq((uint8_t *)vfx_gp(&fx, b[0], 2048) + VIRTIO_NET_HDR_SIZE, f, sizeof(f));
}
