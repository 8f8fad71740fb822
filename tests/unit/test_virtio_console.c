// SPDX-License-Identifier: MIT
/*
 * virtio-console driven the way a guest driver drives it: BAR accesses on
 * real buses, rings and buffers in a real gmem (a memfd, no KVM), a real
 * I/O thread, and real backends (a file for output, a unix socket for
 * input).
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/console.h"

#define RAM	    (4 * MiB)
#define QSIZE	    16
#define Q_GPA(q)    (0x10000ULL + 0x10000ULL * (q)) /* desc; avail +0x1000, used +0x2000 */
#define BUF_GPA	    0x100000ULL
#define NVEC	    3
#define F_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)

static int vec_efd[NVEC];

static void m_send(void *ctx, unsigned int v, const struct msi_msg *m)
{
}

static void m_update(void *ctx, unsigned int v, const struct msi_msg *m, bool masked)
{
}

static int m_eventfd(void *ctx, unsigned int v)
{
	return v < NVEC ? vec_efd[v] : -EINVAL;
}

static const struct msi_ops m_ops = {.send = m_send, .update = m_update, .eventfd = m_eventfd};

static struct gmem mem;
static struct bus pio, mmio;
static struct pci_root *root;
static struct iothread *io;
static struct virtio_console *con;
static uint64_t bar0;
static struct error err;
static char path[108];
static uint16_t avail_idx[2];

static void machine_up(const char *backend)
{
	struct pci_root_config c = {
		.ecam_base = LAYOUT_ECAM_BASE,
		.nbuses = 1,
		.mmio32_base = LAYOUT_PCI_MMIO32_BASE,
		.mmio32_end = LAYOUT_PCI_MMIO32_END,
		.io_base = LAYOUT_PCI_IO_BASE,
		.io_end = LAYOUT_PCI_IO_END,
	};
	struct virtio_pci_host host;

	error_clear(&err);
	avail_idx[0] = avail_idx[1] = 0;
	for (int i = 0; i < NVEC; i++)
		vec_efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_eq(gmem_init(&mem, RAM, &err), 0, "%s", err.msg);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	root = pci_root_create(&pio, &mmio, &c);
	cr_assert_not_null(root);
	io = iothread_create("test-io", &err);
	cr_assert_not_null(io, "%s", err.msg);
	host = (struct virtio_pci_host){.mem = &mem, .io = io, .msi = {.ops = &m_ops}};
	con = virtio_console_create(&host, root, backend, &err);
	cr_assert_not_null(con, "%s", err.msg);
	bar0 = pci_bar_address(virtio_pci_pci(virtio_console_transport(con)), 0);
	cr_assert_neq(bar0, 0);
}

static void setup_file(void)
{
	char spec[128];
	int fd;

	strcpy(path, "/tmp/bunshin-vcon-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s", path);
	machine_up(spec);
}

static void setup_unix(void)
{
	char spec[128];

	snprintf(path, sizeof(path), "/tmp/bunshin-vcon-%d.sock", getpid());
	snprintf(spec, sizeof(spec), "unix:%s", path);
	machine_up(spec);
}

/* The VMM's order: I/O thread, root, devices, then guest memory. */
static void teardown(void)
{
	iothread_stop(io);
	pci_root_destroy(root);
	virtio_console_destroy(con);
	iothread_destroy(io);
	bus_destroy(&pio);
	bus_destroy(&mmio);
	gmem_destroy(&mem);
	for (int i = 0; i < NVEC; i++)
		close(vec_efd[i]);
	unlink(path);
}

TestSuite(vcon_file, .init = setup_file, .fini = teardown);
TestSuite(vcon_unix, .init = setup_unix, .fini = teardown);

/* ---- driver side ---- */

static uint64_t le(const uint8_t *b, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void put(uint8_t *b, uint32_t len, uint64_t v)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t bar_rd(uint64_t off, uint32_t len)
{
	uint8_t b[8];

	cr_assert(bus_read(&mmio, bar0 + off, b, len));
	return le(b, len);
}

static void bar_wr(uint64_t off, uint32_t len, uint64_t v)
{
	uint8_t b[8];

	put(b, len, v);
	cr_assert(bus_write(&mmio, bar0 + off, b, len));
}

static uint64_t device_features(void)
{
	uint64_t f;

	bar_wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = bar_rd(VIRTIO_PCI_COMMON_DF, 4);
	bar_wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	return f | bar_rd(VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static void set_status(uint8_t s)
{
	bar_wr(VIRTIO_PCI_COMMON_STATUS, 1, s);
}

static void bring_up(void)
{
	uint64_t f = F_VERSION_1 | 1ULL << VIRTIO_CONSOLE_F_SIZE;

	set_status(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	bar_wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	bar_wr(VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
	bar_wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	bar_wr(VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(f >> 32));
	set_status(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	cr_assert(bar_rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned int q = 0; q < VIRTIO_CONSOLE_QUEUES; q++) {
		bar_wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		bar_wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
		bar_wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)Q_GPA(q));
		bar_wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)Q_GPA(q) + 0x1000);
		bar_wr(VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)Q_GPA(q) + 0x2000);
		bar_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	}
	set_status(0x0f);
	cr_assert_eq(bar_rd(VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

static void *gp(uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(&mem, gpa, len);

	cr_assert_not_null(p);
	return p;
}

static struct virtq_used *used_ring(unsigned int q)
{
	return gp(Q_GPA(q) + 0x2000, 4 + 8 * QSIZE);
}

static uint16_t used_idx(unsigned int q)
{
	return le16toh(__atomic_load_n(&used_ring(q)->idx, __ATOMIC_ACQUIRE));
}

/* Offers one single-descriptor chain at desc slot d (head index head) without notifying. */
static void offer(unsigned int q, uint16_t d, uint16_t head, uint64_t gpa, uint32_t len, bool write)
{
	struct virtq_desc *desc = gp(Q_GPA(q) + 16 * d, 16);
	struct virtq_avail *a = gp(Q_GPA(q) + 0x1000, 4 + 2 * QSIZE);

	desc->addr = htole64(gpa);
	desc->len = htole32(len);
	desc->flags = htole16(write ? VIRTQ_DESC_F_WRITE : 0);
	desc->next = 0;
	a->ring[avail_idx[q] % QSIZE] = htole16(head);
	avail_idx[q]++;
	__atomic_store_n(&a->idx, htole16(avail_idx[q]), __ATOMIC_RELEASE);
}

static void notify(unsigned int q)
{
	bar_wr(VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT_VAL * q, 2, q);
}

static bool wait_used(unsigned int q, uint16_t idx)
{
	for (int i = 0; i < 3000; i++) {
		if (used_idx(q) == idx)
			return true;
		usleep(1000);
	}
	return false;
}

static uint32_t used_len(unsigned int q, uint16_t idx)
{
	return le32toh(used_ring(q)->ring[(idx - 1) % QSIZE].len);
}

static int client(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static bool needs_reset(void)
{
	for (int i = 0; i < 2000; i++) {
		if (bar_rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
			return true;
		usleep(1000);
	}
	return false;
}

/* ---- tests ---- */

Test(vcon_file, identity_features_and_config)
{
	struct pci_device *d = virtio_pci_pci(virtio_console_transport(con));
	uint64_t f = device_features();

	cr_assert_eq(pci_config_get16(d, PCI_DEVICE_ID), 0x1043);
	cr_assert(f & 1ULL << VIRTIO_CONSOLE_F_SIZE);
	cr_assert_not(f & 1ULL << 1, "no MULTIPORT");
	cr_assert_eq(bar_rd(VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	cr_assert_eq(bar_rd(VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_COLS, 2), 80);
	cr_assert_eq(bar_rd(VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_ROWS, 2), 25);
	bar_wr(VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_EMERG_WR, 4, 'x');
}

Test(vcon_file, transmitted_bytes_reach_the_backend)
{
	uint8_t *data;
	size_t len;

	bring_up();
	memcpy(gp(BUF_GPA, 6), "hello ", 6);
	memcpy(gp(BUF_GPA + 0x1000, 6), "world\n", 6);
	offer(VIRTIO_CONSOLE_TXQ, 0, 0, BUF_GPA, 6, false);
	offer(VIRTIO_CONSOLE_TXQ, 1, 1, BUF_GPA + 0x1000, 6, false);
	notify(VIRTIO_CONSOLE_TXQ);
	cr_assert(wait_used(VIRTIO_CONSOLE_TXQ, 2));
	cr_assert_eq(used_len(VIRTIO_CONSOLE_TXQ, 2), 0);
	cr_assert_eq(read_file(path, 1 << 20, &data, &len), 0);
	cr_assert_eq(len, 12);
	cr_assert_arr_eq(data, "hello world\n", 12);
	free(data);
}

Test(vcon_file, bad_chain_needs_reset)
{
	struct virtq_avail *a = gp(Q_GPA(VIRTIO_CONSOLE_TXQ) + 0x1000, 4 + 2 * QSIZE);

	bring_up();
	a->ring[0] = htole16(QSIZE + 3); /* head out of range */
	__atomic_store_n(&a->idx, htole16(1), __ATOMIC_RELEASE);
	notify(VIRTIO_CONSOLE_TXQ);
	cr_assert(needs_reset());
	cr_assert_eq(used_idx(VIRTIO_CONSOLE_TXQ), 0);
}

Test(vcon_unix, input_lands_in_posted_buffers)
{
	int fd;
	char *b = gp(BUF_GPA, 64);

	bring_up();
	fd = client();
	offer(VIRTIO_CONSOLE_RXQ, 0, 0, BUF_GPA, 64, true);
	notify(VIRTIO_CONSOLE_RXQ);
	usleep(20000);
	cr_assert_eq(used_idx(VIRTIO_CONSOLE_RXQ), 0, "nothing to deliver: the buffer stays");
	cr_assert_eq(write(fd, "abc\n", 4), 4);
	cr_assert(wait_used(VIRTIO_CONSOLE_RXQ, 1));
	cr_assert_eq(used_len(VIRTIO_CONSOLE_RXQ, 1), 4);
	cr_assert_arr_eq(b, "abc\n", 4);
	close(fd);
}

Test(vcon_unix, input_waits_for_buffers)
{
	char *b = gp(BUF_GPA, 64);
	char *b2 = gp(BUF_GPA + 0x1000, 4);
	int fd;

	bring_up();
	fd = client();
	cr_assert_eq(write(fd, "waiting", 7), 7);
	usleep(50000);
	cr_assert_eq(used_idx(VIRTIO_CONSOLE_RXQ), 0);
	/* A short buffer takes what fits; the rest goes into the next one. */
	offer(VIRTIO_CONSOLE_RXQ, 0, 0, BUF_GPA + 0x1000, 4, true);
	notify(VIRTIO_CONSOLE_RXQ);
	cr_assert(wait_used(VIRTIO_CONSOLE_RXQ, 1));
	cr_assert_eq(used_len(VIRTIO_CONSOLE_RXQ, 1), 4);
	cr_assert_arr_eq(b2, "wait", 4);
	offer(VIRTIO_CONSOLE_RXQ, 1, 1, BUF_GPA, 64, true);
	notify(VIRTIO_CONSOLE_RXQ);
	cr_assert(wait_used(VIRTIO_CONSOLE_RXQ, 2));
	cr_assert_eq(used_len(VIRTIO_CONSOLE_RXQ, 2), 3);
	cr_assert_arr_eq(b, "ing", 3);
	close(fd);
}

/* More input than the device buffers: the backend thread blocks, and teardown still ends. */
Test(vcon_unix, full_buffer_blocks_input_until_shutdown)
{
	static char big[3 * VIRTIO_CONSOLE_RX_BUF];
	int fd;

	bring_up();
	fd = client();
	memset(big, 'z', sizeof(big));
	cr_assert_eq(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
	usleep(50000);
	cr_assert_eq(used_idx(VIRTIO_CONSOLE_RXQ), 0);
	close(fd);
}

Test(vcon_file, destroy_null_is_a_no_op)
{
	virtio_console_destroy(NULL);
}

/* ---- snapshot ---- */

/* Saves the device and loads the state back into it (reset first, as a fresh twin would be). */
static int save_and_restore(bool corrupt_len)
{
	struct virtio_pci *vp = virtio_console_transport(con);
	struct snap_section s;
	struct snap_writer w;
	struct snap_file f;
	char state[128];
	uint8_t *p;
	int ret;

	snprintf(state, sizeof(state), "%s.state", path);
	snap_writer_init(&w);
	cr_assert_eq(virtio_pci_save(vp, &w, "tmp"), 0);
	cr_assert_eq(snap_save(&w, state, &err), 0, "%s", err.msg);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&f, state, &err), 0, "%s", err.msg);
	/* Resaved under its real name, with the input length (after version) made huge if asked. */
	cr_assert_eq(snap_find(&f, "tmp", 1, &s, &err), 0);
	p = malloc(s.len);
	memcpy(p, s.p, s.len);
	cr_assert_eq(s.len, 33 + 2 * 33 + 8 + 7 * !corrupt_len, "layout as expected");
	if (corrupt_len)
		p[33 + 2 * 33 + 4 + 3] = 0x7f; /* transport, 2 queues, version, len's top byte */
	snap_writer_init(&w);
	snap_begin(&w, "virtio-console0", s.version);
	snap_put_bytes(&w, p, s.len);
	snap_end(&w);
	free(p);
	snap_close(&f);
	cr_assert_eq(snap_save(&w, state, &err), 0, "%s", err.msg);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&f, state, &err), 0, "%s", err.msg);
	ret = virtio_pci_restore(vp, &f, "virtio-console0", &err);
	snap_close(&f);
	unlink(state);
	return ret;
}

Test(vcon_unix, pending_input_survives_a_restore)
{
	char *b = gp(BUF_GPA, 64);
	int fd;

	bring_up();
	fd = client();
	cr_assert_eq(write(fd, "pending", 7), 7);
	usleep(50000);
	cr_assert_eq(used_idx(VIRTIO_CONSOLE_RXQ), 0);
	cr_assert_eq(save_and_restore(false), 0, "%s", err.msg);
	cr_assert_eq(bar_rd(VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
	offer(VIRTIO_CONSOLE_RXQ, 0, 0, BUF_GPA, 64, true);
	notify(VIRTIO_CONSOLE_RXQ);
	cr_assert(wait_used(VIRTIO_CONSOLE_RXQ, 1));
	/*
	 * Restored into the very device that saved it, whose buffer still holds
	 * the same bytes: the saved copy comes first, what the device held at
	 * restore time after it (a real restore's fresh device holds only what
	 * a client typed early).
	 */
	cr_assert_eq(used_len(VIRTIO_CONSOLE_RXQ, 1), 14);
	cr_assert_arr_eq(b, "pendingpending", 14);
	close(fd);
}

Test(vcon_unix, restore_refuses_oversized_input)
{
	bring_up();
	cr_assert_eq(save_and_restore(true), -EINVAL);
	cr_assert(strstr(err.msg, "virtio-console0") && strstr(err.msg, "console input length"),
		  "%s", err.msg);
	cr_assert_eq(bar_rd(VIRTIO_PCI_COMMON_STATUS, 1), 0, "reset, not half loaded");
}
