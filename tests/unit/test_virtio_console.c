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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/console.h"
#include "virtio_fixture.h"

#define RAM	    (4 * MiB)
#define QSIZE	    16
#define Q_GPA(q)    (0x10000ULL + 0x10000ULL * (q)) /* desc; avail +0x1000, used +0x2000 */
#define BUF_GPA	    0x100000ULL
#define NVEC	    3
#define F_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
static struct vfx fx;
static struct virtio_console *con;
static struct error err;
static char path[108];
static uint16_t avail_idx[2];

static void machine_up(const char *backend)
{
	error_clear(&err);
	avail_idx[0] = avail_idx[1] = 0;
	vfx_up(&fx, &(struct vfx_opts){.ram = RAM, .nvec = NVEC});
	con = virtio_console_create(&fx.host, fx.root, backend, &err);
	cr_assert_not_null(con, "%s", err.msg);
	vfx_attach(&fx, virtio_console_transport(con));
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
	vfx_stop(&fx);
	virtio_console_destroy(con);
	vfx_down(&fx);
	unlink(path);
}

TestSuite(vcon_file, .init = setup_file, .fini = teardown);
TestSuite(vcon_unix, .init = setup_unix, .fini = teardown);

/* ---- driver side ---- */

static struct vfx_ring ring(unsigned int q)
{
	return vfx_ring_at(Q_GPA(q), QSIZE);
}

static void bring_up(void)
{
	struct vfx_ring r[VIRTIO_CONSOLE_QUEUES];

	for (unsigned int q = 0; q < VIRTIO_CONSOLE_QUEUES; q++)
		r[q] = ring(q);
	vfx_bring_up(&fx, F_VERSION_1 | 1ULL << VIRTIO_CONSOLE_F_SIZE, r, VIRTIO_CONSOLE_QUEUES);
}

static uint16_t used_idx(unsigned int q)
{
	return vfx_used_idx(&fx, ring(q));
}

/* Offers one single-descriptor chain at desc slot d (head index head) without notifying. */
static void offer(unsigned int q, uint16_t d, uint16_t head, uint64_t gpa, uint32_t len, bool write)
{
	vfx_desc_set(&fx, ring(q), d, gpa, len, write ? VIRTQ_DESC_F_WRITE : 0, 0);
	vfx_avail_push(&fx, ring(q), &avail_idx[q], head);
}

static void notify(unsigned int q)
{
	vfx_notify(&fx, q);
}

static bool wait_used(unsigned int q, uint16_t idx)
{
	return vfx_wait_used(&fx, ring(q), idx, 3000);
}

static uint32_t used_len(unsigned int q, uint16_t idx)
{
	return vfx_used_elem(&fx, ring(q), idx - 1).len;
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
	return vfx_wait_status(&fx, VIRTIO_STATUS_DEVICE_NEEDS_RESET, 2000);
}

/* ---- tests ---- */

Test(vcon_file, identity_features_and_config)
{
	struct pci_device *d = virtio_pci_pci(virtio_console_transport(con));
	uint64_t f = vfx_device_features(&fx);

	cr_assert_eq(pci_config_get16(d, PCI_DEVICE_ID), 0x1043);
	cr_assert(f & 1ULL << VIRTIO_CONSOLE_F_SIZE);
	cr_assert_not(f & 1ULL << 1, "no MULTIPORT");
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_COLS, 2), 80);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_ROWS, 2), 25);
	vfx_bar_wr(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_EMERG_WR, 4, 'x');
}

Test(vcon_file, transmitted_bytes_reach_the_backend)
{
	uint8_t *data;
	size_t len;

	bring_up();
	memcpy(vfx_gp(&fx, BUF_GPA, 6), "hello ", 6);
	memcpy(vfx_gp(&fx, BUF_GPA + 0x1000, 6), "world\n", 6);
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
	struct virtq_avail *a = vfx_avail(&fx, ring(VIRTIO_CONSOLE_TXQ));

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
	char *b = vfx_gp(&fx, BUF_GPA, 64);

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
	char *b = vfx_gp(&fx, BUF_GPA, 64);
	char *b2 = vfx_gp(&fx, BUF_GPA + 0x1000, 4);
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
	struct snap_writer w;
	struct snap_file f;
	char state[128];
	uint32_t version;
	uint8_t *p;
	size_t len;
	int ret;

	snprintf(state, sizeof(state), "%s.state", path);
	/* Resaved under its real name, with the input length (after version) made huge if asked. */
	p = vfx_saved_payload(vp, state, "tmp", &len, &version, &err);
	cr_assert_eq(len, 33 + 2 * 33 + 8 + 7 * !corrupt_len, "layout as expected");
	if (corrupt_len)
		p[33 + 2 * 33 + 4 + 3] = 0x7f; /* transport, 2 queues, version, len's top byte */
	snap_writer_init(&w);
	snap_begin(&w, "virtio-console0", version);
	snap_put_bytes(&w, p, len);
	snap_end(&w);
	free(p);
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
	char *b = vfx_gp(&fx, BUF_GPA, 64);
	int fd;

	bring_up();
	fd = client();
	cr_assert_eq(write(fd, "pending", 7), 7);
	usleep(50000);
	cr_assert_eq(used_idx(VIRTIO_CONSOLE_RXQ), 0);
	cr_assert_eq(save_and_restore(false), 0, "%s", err.msg);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
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
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0, "reset, not half loaded");
}
