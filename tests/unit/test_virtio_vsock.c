// SPDX-License-Identifier: MIT
/*
 * virtio-vsock driven the way a guest driver drives it: BAR accesses on
 * real buses, rings and buffers in a real gmem (a memfd, no KVM), a real
 * I/O thread, and real unix sockets in a temporary directory on the host
 * side.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/vsock.h"
#include "virtio_fixture.h"

#define RAM	    (8 * MiB)
#define QSIZE	    16
#define Q_BASE(q)   (0x10000ULL * ((q) + 1)) /* desc; avail at +0x1000, used at +0x2000 */
#define RXBUF_GPA   0x100000ULL
#define RXBUF_SIZE  0x2000
#define TXHDR_GPA   0x200000ULL
#define TXDATA_GPA  0x210000ULL
#define TXDATA_MAX  0x60000
#define NVEC	    4
#define CID	    42
#define F_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define F_ALL	    (F_VERSION_1 | 1ULL << VIRTIO_VSOCK_F_STREAM)
#define HOST	    VIRTIO_VSOCK_HOST_CID

static struct vfx fx;
static struct virtio_vsock *vs;
static struct error err;
static char dir[] = "/tmp/bunshin-vsock-XXXXXX";
static char uds[128];
static uint16_t avail_idx[3], used_seen[3];
static bool repost;

static void machine_up(void)
{
	struct virtio_vsock_opts o = {.guest_cid = CID, .uds = uds};

	error_clear(&err);
	memset(avail_idx, 0, sizeof(avail_idx));
	memset(used_seen, 0, sizeof(used_seen));
	repost = true;
	strcpy(dir, "/tmp/bunshin-vsock-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(uds, sizeof(uds), "%s/v.sock", dir);
	vfx_up(&fx, &(struct vfx_opts){.ram = RAM, .nvec = NVEC});
	vs = virtio_vsock_create(&fx.host, fx.root, &o, &err);
	cr_assert_not_null(vs, "%s", err.msg);
	vfx_attach(&fx, virtio_vsock_transport(vs));
}

static void rm_dir(void)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static void teardown(void)
{
	vfx_stop(&fx);
	virtio_vsock_destroy(vs);
	vfx_down(&fx);
	rm_dir();
}

TestSuite(vsock, .init = machine_up, .fini = teardown);

/* ---- driver side ---- */

static struct vfx_ring ring(unsigned int q)
{
	return vfx_ring_at(Q_BASE(q), QSIZE);
}

static void offer(unsigned int q, uint16_t head, bool notify)
{
	vfx_avail_push(&fx, ring(q), &avail_idx[q], head);
	if (notify)
		vfx_notify(&fx, q);
}

static void rx_post(uint16_t i)
{
	vfx_desc_set(&fx, ring(VIRTIO_VSOCK_Q_RX), i, RXBUF_GPA + (uint64_t)i * RXBUF_SIZE,
		     RXBUF_SIZE, VIRTQ_DESC_F_WRITE, 0);
	offer(VIRTIO_VSOCK_Q_RX, i, true);
}

static void bring_up_queues(uint64_t f, bool post_rx)
{
	struct vfx_ring r[VIRTIO_VSOCK_QUEUES];

	for (unsigned int q = 0; q < VIRTIO_VSOCK_QUEUES; q++)
		r[q] = ring(q);
	vfx_bring_up(&fx, f, r, VIRTIO_VSOCK_QUEUES);
	for (uint16_t i = 0; post_rx && i < QSIZE; i++)
		rx_post(i);
}

static void bring_up(void)
{
	bring_up_queues(F_ALL, true);
}

struct pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

static void pkt_put(uint8_t *h, const struct pkt *p)
{
	vfx_put(h + 0, 8, p->src_cid);
	vfx_put(h + 8, 8, p->dst_cid);
	vfx_put(h + 16, 4, p->src_port);
	vfx_put(h + 20, 4, p->dst_port);
	vfx_put(h + 24, 4, p->len);
	vfx_put(h + 28, 2, p->type);
	vfx_put(h + 30, 2, p->op);
	vfx_put(h + 32, 4, p->flags);
	vfx_put(h + 36, 4, p->buf_alloc);
	vfx_put(h + 40, 4, p->fwd_cnt);
}

static void pkt_get(const uint8_t *h, struct pkt *p)
{
	*p = (struct pkt){vfx_le(h, 8),	     vfx_le(h + 8, 8),	vfx_le(h + 16, 4),
			  vfx_le(h + 20, 4), vfx_le(h + 24, 4), vfx_le(h + 28, 2),
			  vfx_le(h + 30, 2), vfx_le(h + 32, 4), vfx_le(h + 36, 4),
			  vfx_le(h + 40, 4)};
}

static bool wait_used(unsigned int q, int ms)
{
	return vfx_wait_used_past(&fx, ring(q), used_seen[q], ms);
}

/* The next packet the device put on rx; its payload copied to data. The buffer is reposted. */
static bool rx_next(struct pkt *p, uint8_t *data, int ms)
{
	struct virtq_used *u = vfx_used(&fx, ring(VIRTIO_VSOCK_Q_RX));
	struct virtq_used_elem e;
	uint8_t *buf;

	if (!wait_used(VIRTIO_VSOCK_Q_RX, ms))
		return false;
	e = u->ring[used_seen[VIRTIO_VSOCK_Q_RX] % QSIZE];
	used_seen[VIRTIO_VSOCK_Q_RX]++;
	cr_assert_lt(le32toh(e.id), QSIZE);
	cr_assert_geq(le32toh(e.len), VIRTIO_VSOCK_HDR_SIZE);
	buf = vfx_gp(&fx, RXBUF_GPA + (uint64_t)le32toh(e.id) * RXBUF_SIZE, RXBUF_SIZE);
	pkt_get(buf, p);
	cr_assert_eq(le32toh(e.len), VIRTIO_VSOCK_HDR_SIZE + p->len);
	if (data)
		memcpy(data, buf + VIRTIO_VSOCK_HDR_SIZE, p->len);
	if (repost)
		rx_post((uint16_t)le32toh(e.id));
	return true;
}

static void rx_expect(struct pkt *p, uint16_t op)
{
	cr_assert(rx_next(p, NULL, 3000), "no packet on rx (wanted op %u)", op);
	cr_assert_eq(p->op, op, "op %u, wanted %u", p->op, op);
	cr_assert_eq(p->src_cid, HOST);
	cr_assert_eq(p->dst_cid, CID);
	cr_assert_eq(p->type, VIRTIO_VSOCK_TYPE_STREAM);
}

/* Sends a header (and data) on tx and waits for the device to take it. */
static void tx_raw(const uint8_t *hdr, uint32_t hlen, const void *data, uint32_t len)
{
	struct virtq_desc *d0 = vfx_desc(&fx, ring(VIRTIO_VSOCK_Q_TX), 0),
			  *d1 = vfx_desc(&fx, ring(VIRTIO_VSOCK_Q_TX), 1);

	cr_assert_leq(len, TXDATA_MAX);
	memcpy(vfx_gp(&fx, TXHDR_GPA, hlen ? hlen : 1), hdr, hlen);
	if (len)
		memcpy(vfx_gp(&fx, TXDATA_GPA, len), data, len);
	d0->addr = htole64(TXHDR_GPA);
	d0->len = htole32(hlen);
	d0->flags = htole16(len ? VIRTQ_DESC_F_NEXT : 0);
	d0->next = htole16(1);
	d1->addr = htole64(TXDATA_GPA);
	d1->len = htole32(len);
	d1->flags = 0;
	offer(VIRTIO_VSOCK_Q_TX, 0, true);
	cr_assert(wait_used(VIRTIO_VSOCK_Q_TX, 3000), "tx packet not used");
	used_seen[VIRTIO_VSOCK_Q_TX]++;
}

static void tx(uint16_t op, uint32_t src_port, uint32_t dst_port, const void *data, uint32_t len,
	       uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt)
{
	struct pkt p = {CID, HOST,  src_port,  dst_port, len, VIRTIO_VSOCK_TYPE_STREAM,
			op,  flags, buf_alloc, fwd_cnt};
	uint8_t h[VIRTIO_VSOCK_HDR_SIZE];

	pkt_put(h, &p);
	tx_raw(h, sizeof(h), data, len);
}

static void no_rx(int ms)
{
	struct pkt p;

	cr_assert_not(rx_next(&p, NULL, ms), "unexpected packet op %u", p.op);
}

/* ---- host side ---- */

static int host_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	return fd;
}

static int host_listen(uint32_t port)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", uds, port);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 4), 0);
	return fd;
}

static void host_write(int fd, const void *p, size_t len)
{
	cr_assert_eq(write(fd, p, len), (ssize_t)len);
}

/* Reads exactly len bytes; -1 on timeout, the count short of len on EOF. */
static ssize_t host_read(int fd, void *p, size_t len, int ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, ms) <= 0)
			return -1;
		n = read(fd, (uint8_t *)p + got, len - got);
		if (n <= 0)
			return (ssize_t)got;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static bool host_closed(int fd, int ms)
{
	char c;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	if (poll(&pfd, 1, ms) <= 0)
		return false;
	return read(fd, &c, 1) <= 0;
}

/* A host client connected to guest port gport, accepted by the guest; returns the fd. */
static int host_open(uint32_t gport, uint32_t guest_buf, uint32_t *local)
{
	char line[32], want[32];
	int fd = host_connect(uds);
	struct pkt p;

	snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	host_write(fd, line, strlen(line));
	rx_expect(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert_eq(p.dst_port, gport);
	cr_assert_geq(p.src_port, 0x40000000U);
	cr_assert_eq(p.buf_alloc, VIRTIO_VSOCK_BUF_ALLOC);
	*local = p.src_port;
	tx(VIRTIO_VSOCK_OP_RESPONSE, gport, p.src_port, NULL, 0, 0, guest_buf, 0);
	snprintf(want, sizeof(want), "OK %u\n", p.src_port);
	memset(line, 0, sizeof(line));
	cr_assert_eq(host_read(fd, line, strlen(want), 3000), (ssize_t)strlen(want));
	cr_assert_str_eq(line, want);
	return fd;
}

/* ---- tests ---- */

Test(vsock, identity_features_and_config)
{
	struct pci_device *d = virtio_pci_pci(virtio_vsock_transport(vs));
	struct stat st;

	cr_assert_eq(pci_config_get16(d, PCI_DEVICE_ID), 0x1040 + 19);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_DF, 4) & 3, 1U << VIRTIO_VSOCK_F_STREAM,
		     "stream, not seqpacket");
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF, 4), CID);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + 4, 4), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF, 8), CID);
	cr_assert_eq(stat(uds, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
}

Test(vsock, host_connect_and_data_both_ways)
{
	uint8_t data[64];
	uint32_t local;
	int fd;
	struct pkt p;

	bring_up();
	fd = host_open(1234, 65536, &local);
	host_write(fd, "hello", 5);
	cr_assert(rx_next(&p, data, 3000));
	cr_assert_eq(p.op, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(p.len, 5);
	cr_assert_eq(p.src_port, local);
	cr_assert_eq(p.dst_port, 1234);
	cr_assert_arr_eq(data, "hello", 5);
	tx(VIRTIO_VSOCK_OP_RW, 1234, local, "world!", 6, 0, 65536, 5);
	memset(data, 0, sizeof(data));
	cr_assert_eq(host_read(fd, data, 6, 3000), 6);
	cr_assert_arr_eq(data, "world!", 6);
	/* the host closes: the guest hears SHUTDOWN, and its RST ends it */
	close(fd);
	rx_expect(&p, VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert_eq(p.flags, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	tx(VIRTIO_VSOCK_OP_RST, 1234, local, NULL, 0, 0, 0, 0);
	no_rx(100);
}

Test(vsock, data_written_before_the_handshake_completes_is_kept)
{
	uint8_t data[64];
	uint32_t local;
	struct pkt p;
	int fd = host_connect(uds);

	bring_up();
	host_write(fd, "CONNECT 77\nearly", 16);
	rx_expect(&p, VIRTIO_VSOCK_OP_REQUEST);
	local = p.src_port;
	no_rx(100); /* nothing flows before the guest accepted */
	tx(VIRTIO_VSOCK_OP_RESPONSE, 77, local, NULL, 0, 0, 4096, 0);
	memset(data, 0, sizeof(data));
	cr_assert_eq(host_read(fd, data, 3 + 11, 3000), 14);
	cr_assert(rx_next(&p, data, 3000));
	cr_assert_eq(p.op, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(p.len, 5);
	cr_assert_arr_eq(data, "early", 5);
	close(fd);
}

Test(vsock, guest_refuses_host_connect)
{
	int fd = host_connect(uds);
	struct pkt p;

	bring_up();
	host_write(fd, "CONNECT 9\n", 10);
	rx_expect(&p, VIRTIO_VSOCK_OP_REQUEST);
	tx(VIRTIO_VSOCK_OP_RST, 9, p.src_port, NULL, 0, 0, 0, 0);
	cr_assert(host_closed(fd, 3000), "a refused connection must be closed");
	close(fd);
}

Test(vsock, garbage_handshakes_are_closed)
{
	static const char *bad[] = {"HELLO\n",
				    "CONNECT\n",
				    "CONNECT 12a\n",
				    "CONNECT -1\n",
				    "CONNECT 4294967296\n",
				    "connect 5\n",
				    "CONNECT  5\n",
				    "CONNECT 5 \n"};
	char longline[64];

	bring_up();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = host_connect(uds);

		host_write(fd, bad[i], strlen(bad[i]));
		cr_assert(host_closed(fd, 3000), "'%s' must be refused", bad[i]);
		close(fd);
	}
	memset(longline, 'C', sizeof(longline));
	{
		int fd = host_connect(uds);

		host_write(fd, longline, sizeof(longline));
		cr_assert(host_closed(fd, 3000), "a line without end must be refused");
		close(fd);
	}
	no_rx(100);
	/* and the device still works */
	close(host_open(5, 4096, &(uint32_t){0}));
}

Test(vsock, guest_connects_to_host_listener)
{
	int lfd = host_listen(5678), cfd;
	uint8_t data[64];
	struct pkt p;

	bring_up();
	tx(VIRTIO_VSOCK_OP_REQUEST, 999, 5678, NULL, 0, 0, 65536, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RESPONSE);
	cr_assert_eq(p.src_port, 5678);
	cr_assert_eq(p.dst_port, 999);
	cfd = accept(lfd, NULL, NULL);
	cr_assert_geq(cfd, 0);
	tx(VIRTIO_VSOCK_OP_RW, 999, 5678, "ping", 4, 0, 65536, 0);
	cr_assert_eq(host_read(cfd, data, 4, 3000), 4);
	cr_assert_arr_eq(data, "ping", 4);
	host_write(cfd, "pong", 4);
	cr_assert(rx_next(&p, data, 3000));
	cr_assert_eq(p.op, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(p.len, 4);
	cr_assert_arr_eq(data, "pong", 4);
	/* the guest shuts both ways: RST, and the host sees EOF */
	tx(VIRTIO_VSOCK_OP_SHUTDOWN, 999, 5678, NULL, 0,
	   VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND, 65536, 4);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(host_closed(cfd, 3000));
	close(cfd);
	close(lfd);
}

Test(vsock, guest_connect_to_nobody_gets_rst)
{
	struct pkt p;

	bring_up();
	tx(VIRTIO_VSOCK_OP_REQUEST, 1000, 7777, NULL, 0, 0, 65536, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert_eq(p.src_port, 7777);
	cr_assert_eq(p.dst_port, 1000);
}

Test(vsock, guest_overrunning_credit_gets_rst)
{
	int lfd = host_listen(6000), cfd;
	static uint8_t big[VIRTIO_VSOCK_BUF_ALLOC + 1];
	struct pkt p;

	bring_up();
	tx(VIRTIO_VSOCK_OP_REQUEST, 1001, 6000, NULL, 0, 0, 65536, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RESPONSE);
	cfd = accept(lfd, NULL, NULL);
	cr_assert_geq(cfd, 0);
	tx(VIRTIO_VSOCK_OP_RW, 1001, 6000, big, sizeof(big), 0, 65536, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(host_closed(cfd, 3000));
	close(cfd);
	close(lfd);
}

/* The same, a packet at a time, while the host program reads nothing. */
Test(vsock, guest_ignoring_credit_gets_rst)
{
	int lfd = host_listen(6002), cfd;
	static uint8_t chunk[0x10000];
	bool reset = false;
	struct pkt p;

	bring_up();
	tx(VIRTIO_VSOCK_OP_REQUEST, 1004, 6002, NULL, 0, 0, 65536, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RESPONSE);
	cfd = accept(lfd, NULL, NULL);
	cr_assert_geq(cfd, 0);
	for (int i = 0; i < 64 && !reset; i++) {
		tx(VIRTIO_VSOCK_OP_RW, 1004, 6002, chunk, sizeof(chunk), 0, 65536, 0);
		while (!reset && rx_next(&p, NULL, 5))
			reset = p.op == VIRTIO_VSOCK_OP_RST;
	}
	cr_assert(reset, "4 MiB past the credit and no RST");
	close(cfd);
	close(lfd);
}

/* The host does not read: the device buffers up to its buf_alloc and loses nothing. */
Test(vsock, buffering_is_bounded_by_credit)
{
	int lfd = host_listen(6001), cfd;
	static uint8_t chunk[0x20000], sink[0x10000];
	uint32_t sent = 0, fwd = 0;
	struct pkt p;
	ssize_t n;

	bring_up();
	tx(VIRTIO_VSOCK_OP_REQUEST, 1002, 6001, NULL, 0, 0, 65536, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RESPONSE);
	cfd = accept(lfd, NULL, NULL);
	cr_assert_geq(cfd, 0);
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	/* stay within credit as the device reports it: every packet it sends has fwd_cnt */
	for (int round = 0; round < 8; round++) {
		uint32_t credit = VIRTIO_VSOCK_BUF_ALLOC - (sent - fwd);
		uint32_t len = credit < 0x10000 ? credit : 0x10000;

		if (!len)
			break;
		tx(VIRTIO_VSOCK_OP_RW, 1002, 6001, chunk + sent % 0x10000, len, 0, 65536, 0);
		sent += len;
		while (rx_next(&p, NULL, 50))
			fwd = p.fwd_cnt;
	}
	cr_assert_geq(sent, VIRTIO_VSOCK_BUF_ALLOC, "the socket plus buffer takes buf_alloc");
	/* drain on the host: everything arrives, in order */
	for (uint32_t got = 0; got < sent; got += (uint32_t)n) {
		n = host_read(cfd, sink, sizeof(sink) < sent - got ? sizeof(sink) : sent - got,
			      3000);
		cr_assert_gt(n, 0);
		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(sink[i], (uint8_t)(got + i), "byte %u", got + (uint32_t)i);
	}
	usleep(100 * 1000);
	while (rx_next(&p, NULL, 50))
		;
	/* and the device tells the guest its buffer is free again */
	tx(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 1002, 6001, NULL, 0, 0, 65536, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(p.fwd_cnt, sent);
	cr_assert_eq(p.buf_alloc, VIRTIO_VSOCK_BUF_ALLOC);
	close(cfd);
	close(lfd);
}

Test(vsock, host_data_stays_within_guest_credit)
{
	uint8_t data[RXBUF_SIZE], out[300];
	uint32_t local, got = 0;
	struct pkt p;
	int fd;

	bring_up();
	fd = host_open(4321, 100, &local);
	memset(out, 'x', sizeof(out));
	host_write(fd, out, sizeof(out));
	while (rx_next(&p, data, 200)) {
		cr_assert_eq(p.op, VIRTIO_VSOCK_OP_RW);
		got += p.len;
	}
	cr_assert_eq(got, 100, "the guest gave 100 bytes of credit, got %u", got);
	tx(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 4321, local, NULL, 0, 0, 100, 100);
	while (rx_next(&p, data, 200))
		got += p.len;
	cr_assert_eq(got, 200);
	/* a credit request is answered, and still no data beyond the credit */
	tx(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 4321, local, NULL, 0, 0, 100, 100);
	rx_expect(&p, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	no_rx(100);
	tx(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 4321, local, NULL, 0, 0, 100, 200);
	while (rx_next(&p, data, 200))
		got += p.len;
	cr_assert_eq(got, 300);
	close(fd);
}

Test(vsock, no_rx_buffers_means_no_reading)
{
	uint32_t local = 0;
	int fd;
	struct pkt p;

	bring_up_queues(F_ALL, false);
	repost = false;
	fd = host_connect(uds);
	host_write(fd, "CONNECT 3\n", 10);
	usleep(100 * 1000);
	rx_post(0);
	rx_expect(&p, VIRTIO_VSOCK_OP_REQUEST);
	local = p.src_port;
	tx(VIRTIO_VSOCK_OP_RESPONSE, 3, local, NULL, 0, 0, 4096, 0);
	host_write(fd, "abc", 3);
	usleep(100 * 1000);
	no_rx(10);
	rx_post(1);
	rx_expect(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(p.len, 3);
	close(fd);
}

Test(vsock, malformed_packets_do_not_break_the_device)
{
	uint8_t h[VIRTIO_VSOCK_HDR_SIZE] = {0};
	struct pkt p = {CID, 3, 5, 6, 0, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_REQUEST,
			0,   0, 0};

	bring_up();
	tx_raw(h, 10, NULL, 0); /* short header */
	tx_raw(h, 0, "x", 1);	/* no header at all */
	no_rx(50);
	/* someone else's CID: dropped silently */
	p.src_cid = CID + 1;
	p.dst_cid = HOST;
	pkt_put(h, &p);
	tx_raw(h, sizeof(h), NULL, 0);
	no_rx(50);
	/* a destination other than the host: RST */
	p.src_cid = CID;
	p.dst_cid = 3;
	pkt_put(h, &p);
	tx_raw(h, sizeof(h), NULL, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	/* a length beyond the chain, an unknown type, an unknown op: RST */
	p = (struct pkt){CID, HOST, 5, 6, 1000, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_RW,
			 0,   0,    0};
	pkt_put(h, &p);
	tx_raw(h, sizeof(h), "abc", 3);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	p = (struct pkt){CID, HOST, 5, 6, 0, 2, VIRTIO_VSOCK_OP_REQUEST, 0, 0, 0};
	pkt_put(h, &p);
	tx_raw(h, sizeof(h), NULL, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	tx(99, 5, 6, NULL, 0, 0, 0, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	/* an RST for nothing is not answered */
	tx(VIRTIO_VSOCK_OP_RST, 5, 6, NULL, 0, 0, 0, 0);
	no_rx(50);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f,
		     "the device must not break");
	close(host_open(8, 4096, &(uint32_t){0}));
}

Test(vsock, bad_chain_needs_reset)
{
	struct virtq_avail *a;

	bring_up();
	a = vfx_avail(&fx, ring(VIRTIO_VSOCK_Q_TX));
	a->ring[0] = htole16(QSIZE + 3); /* head out of range */
	__atomic_store_n(&a->idx, htole16(1), __ATOMIC_RELEASE);
	vfx_notify(&fx, VIRTIO_VSOCK_Q_TX);
	vfx_wait_status(&fx, VIRTIO_STATUS_DEVICE_NEEDS_RESET, 2000);
	cr_assert(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

Test(vsock, reset_closes_every_connection)
{
	int lfd = host_listen(5000), cfd, hfd;
	uint32_t local;
	struct pkt p;

	bring_up();
	hfd = host_open(10, 4096, &local);
	tx(VIRTIO_VSOCK_OP_REQUEST, 1003, 5000, NULL, 0, 0, 65536, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RESPONSE);
	cfd = accept(lfd, NULL, NULL);
	vfx_set_status(&fx, 0);
	cr_assert(host_closed(hfd, 3000));
	cr_assert(host_closed(cfd, 3000));
	close(hfd);
	close(cfd);
	close(lfd);
}

Test(vsock, connection_limit)
{
	static int fds[VIRTIO_VSOCK_MAX_CONNS + 8];
	int extra;

	bring_up();
	for (int i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
		fds[i] = host_connect(uds);
	/* the handshakes wait; one more is refused */
	usleep(200 * 1000);
	extra = host_connect(uds);
	cr_assert(host_closed(extra, 3000), "beyond the limit a client must be closed");
	close(extra);
	for (int i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
		close(fds[i]);
}

Test(vsock, destroy_removes_the_socket)
{
	vfx_stop(&fx);
	fx.root = NULL;
	virtio_vsock_destroy(vs);
	vs = NULL;
	cr_assert_eq(access(uds, F_OK), -1, "the listening socket must be removed");
	virtio_vsock_destroy(NULL);
}

Test(vsock, unusable_paths_are_clear_errors)
{
	struct virtio_vsock_opts o = {.guest_cid = CID};
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/missing/v.sock", dir);
	o.uds = path;
	cr_assert_null(virtio_vsock_create(&fx.host, fx.root, &o, &err));
	cr_assert(strstr(err.msg, "missing"), "%s", err.msg);
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	cr_assert_null(virtio_vsock_create(&fx.host, fx.root, &o, &err));
	cr_assert(strstr(err.msg, "not a socket"), "%s", err.msg);
	cr_assert_eq(access(path, F_OK), 0, "a file that is not a socket must stay");
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = 0;
	cr_assert_null(virtio_vsock_create(&fx.host, fx.root, &o, &err));
}

/* The driver resets the device as it loads: a client waiting for the guest must survive that. */
Test(vsock, pending_host_connect_survives_driver_reset)
{
	int fd = host_connect(uds);
	struct pkt p;

	host_write(fd, "CONNECT 11\n", 11);
	usleep(50 * 1000);
	vfx_set_status(&fx, 0);
	bring_up();
	rx_expect(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert_eq(p.dst_port, 11);
	close(fd);
}

/* An rx buffer with no room past the header is handed back empty, and the next one is used. */
Test(vsock, tiny_rx_buffers_are_returned_empty)
{
	struct virtq_desc *d = vfx_desc(&fx, ring(VIRTIO_VSOCK_Q_RX), 0);
	struct virtq_used *u;
	int fd;
	struct pkt p;

	bring_up_queues(F_ALL, false);
	repost = false;
	d->addr = htole64(RXBUF_GPA);
	d->len = htole32(VIRTIO_VSOCK_HDR_SIZE);
	d->flags = htole16(VIRTQ_DESC_F_WRITE);
	offer(VIRTIO_VSOCK_Q_RX, 0, true);
	fd = host_connect(uds);
	host_write(fd, "CONNECT 12\n", 11);
	cr_assert(wait_used(VIRTIO_VSOCK_Q_RX, 3000));
	u = vfx_used(&fx, ring(VIRTIO_VSOCK_Q_RX));
	cr_assert_eq(le32toh(u->ring[0].id), 0);
	cr_assert_eq(le32toh(u->ring[0].len), 0);
	used_seen[VIRTIO_VSOCK_Q_RX]++;
	rx_post(1);
	rx_expect(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert_eq(p.dst_port, 12);
	close(fd);
}

/* Random packets from a hostile guest: nothing crashes, and the device still works after. */
Test(vsock, random_packets)
{
	static const uint32_t ports[] = {1, 2, 5678, 0x40000000U, 0xffffffffU};
	int lfd = host_listen(5678);
	uint8_t h[VIRTIO_VSOCK_HDR_SIZE], data[512];
	uint32_t seed = 12345;
	struct pkt p;

	bring_up();
	for (int i = 0; i < 3000; i++) {
		uint32_t r[8];

		for (int k = 0; k < 8; k++) {
			seed = seed * 1103515245U + 12345U;
			r[k] = seed >> 8;
		}
		p = (struct pkt){r[0] % 8 ? CID : r[0],
				 r[1] % 8 ? HOST : r[1] % 4,
				 ports[r[2] % 5],
				 ports[r[3] % 5],
				 r[4] % 4 ? r[4] % sizeof(data) : r[4],
				 r[5] % 8 ? 1 : r[5] % 4,
				 (uint16_t)(r[6] % 10),
				 r[7] % 4,
				 r[7],
				 r[6]};
		pkt_put(h, &p);
		tx_raw(h, r[2] % 16 ? sizeof(h) : r[2] % sizeof(h), data, r[3] % sizeof(data));
		while (rx_next(&p, NULL, 0))
			;
	}
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f,
		     "the device must not break");
	usleep(100 * 1000);
	while (rx_next(&p, NULL, 10))
		;
	close(host_open(8, 4096, &(uint32_t){0}));
	close(lfd);
}

Test(vsock, handshake_in_pieces_and_clients_that_leave)
{
	int fd = host_connect(uds);
	struct pkt p;

	bring_up();
	host_write(fd, "CONN", 4);
	usleep(50 * 1000);
	host_write(fd, "ECT 6", 5);
	usleep(50 * 1000);
	host_write(fd, "\n", 1);
	rx_expect(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert_eq(p.dst_port, 6);
	/* the client leaves before the guest answered: the guest hears RST */
	close(fd);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert_eq(p.dst_port, 6);
	/* its late RESPONSE matches nothing: RST again, and nothing breaks */
	tx(VIRTIO_VSOCK_OP_RESPONSE, 6, p.src_port, NULL, 0, 0, 4096, 0);
	rx_expect(&p, VIRTIO_VSOCK_OP_RST);
	/* a client that leaves mid-line costs nothing */
	fd = host_connect(uds);
	host_write(fd, "CONNECT 1", 9);
	close(fd);
	no_rx(100);
	close(host_open(8, 4096, &(uint32_t){0}));
}

/* ---- snapshot ---- */

#define EVTBUF_GPA 0x300000ULL

/* Saves the device and loads the state back into it (reset first, as a fresh twin would be). */
static void save_and_restore(void)
{
	struct virtio_pci *vp = virtio_vsock_transport(vs);
	struct snap_writer w;
	struct snap_file f;
	char path[160];

	snprintf(path, sizeof(path), "%s/state", dir);
	snap_writer_init(&w);
	cr_assert_eq(virtio_pci_save(vp, &w, "virtio-vsock0"), 0);
	cr_assert_eq(snap_save(&w, path, &err), 0, "%s", err.msg);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&f, path, &err), 0, "%s", err.msg);
	cr_assert_eq(virtio_pci_restore(vp, &f, "virtio-vsock0", &err), 0, "%s", err.msg);
	snap_close(&f);
	unlink(path);
}

Test(vsock, restore_drops_connections_and_sends_transport_reset)
{
	struct virtq_desc *d = vfx_desc(&fx, ring(VIRTIO_VSOCK_Q_EVT), 0);
	struct virtq_used *u = vfx_used(&fx, ring(VIRTIO_VSOCK_Q_EVT));
	uint32_t local;
	int fd;

	bring_up();
	fd = host_open(1234, 65536, &local);
	d->addr = htole64(EVTBUF_GPA);
	d->len = htole32(8);
	d->flags = htole16(VIRTQ_DESC_F_WRITE);
	offer(VIRTIO_VSOCK_Q_EVT, 0, true);
	cr_assert(!wait_used(VIRTIO_VSOCK_Q_EVT, 50), "no event before the restore");
	memset(vfx_gp(&fx, EVTBUF_GPA, 8), 0xff, 8);
	save_and_restore();
	/* The host side of every connection is closed... */
	cr_assert(host_closed(fd, 3000));
	close(fd);
	/* ...and the guest is told to drop its sockets. */
	cr_assert(wait_used(VIRTIO_VSOCK_Q_EVT, 3000));
	cr_assert_eq(le32toh(u->ring[0].id), 0);
	cr_assert_eq(le32toh(u->ring[0].len), VIRTIO_VSOCK_EVENT_SIZE);
	cr_assert_eq(vfx_le(vfx_gp(&fx, EVTBUF_GPA, 4), 4), VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	used_seen[VIRTIO_VSOCK_Q_EVT]++;
	/* The device goes on: a new connection reaches the guest on the restored rx ring. */
	close(host_open(1235, 4096, &local));
	cr_assert(!wait_used(VIRTIO_VSOCK_Q_EVT, 50), "the reset is sent once");
}

Test(vsock, restore_refuses_another_cid_and_truncation)
{
	struct virtio_pci *vp = virtio_vsock_transport(vs);
	struct snap_writer w;
	struct snap_file f;
	uint32_t version;
	uint8_t *p;
	size_t len;
	char path[160];

	snprintf(path, sizeof(path), "%s/state", dir);
	p = vfx_saved_payload(vp, path, "good", &len, &version, &err);
	p[len - 8] = CID + 1; /* the device part ends with the guest CID */
	snap_writer_init(&w);
	snap_begin(&w, "other-cid", VIRTIO_PCI_STATE_VERSION);
	snap_put_bytes(&w, p, len);
	snap_end(&w);
	snap_begin(&w, "truncated", VIRTIO_PCI_STATE_VERSION);
	snap_put_bytes(&w, p, 20);
	snap_end(&w);
	free(p);
	cr_assert_eq(snap_save(&w, path, &err), 0, "%s", err.msg);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&f, path, &err), 0, "%s", err.msg);
	cr_assert_eq(virtio_pci_restore(vp, &f, "other-cid", &err), -EINVAL);
	cr_assert(strstr(err.msg, "other-cid") && strstr(err.msg, "guest CID 43"), "%s", err.msg);
	cr_assert_eq(virtio_pci_restore(vp, &f, "truncated", &err), -EBADMSG);
	cr_assert(strstr(err.msg, "too short"), "%s", err.msg);
	snap_close(&f);
	unlink(path);
}
