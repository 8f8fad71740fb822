// SPDX-License-Identifier: MIT
/*
 * Driver-requested resets, done by the I/O thread (virtio_pci.h): what the
 * driver sees while one is pending, resets racing requests in flight, a
 * driver writing 0 in a loop, and a reset pending when the machine is
 * paused for a snapshot. The I/O thread is paused by hand to hold a reset
 * pending for as long as a test needs. virtio-rng stands for any device
 * in the transport tests; virtio-blk is the one with real work in flight.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/snapshot/snapfile.h"
#include "../../src/vmm/virtio/blk.h"
#include "../../src/vmm/virtio/rng.h"
#include "virtio_fixture.h"

#define RAM	     (4 * MiB)
#define QSIZE	     32
#define DESC_GPA     0x10000ULL
#define AVAIL_GPA    0x20000ULL
#define USED_GPA     0x30000ULL
#define IO_GPA	     0x100000ULL /* request i: header, status, data at + i * 0x2000 */
#define NVEC	     2
#define IMG_SIZE     (1 * MiB)
#define F_VERSION_1  (1ULL << VIRTIO_F_VERSION_1)
#define F_RING_RESET (1ULL << VIRTIO_F_RING_RESET)

static struct vfx fx;
static struct virtio_rng *rng;
static struct virtio_blk *blk;
static struct virtio_pci *vp;
static struct error err;
static char img[] = "/tmp/bunshin-vreset-XXXXXX";
static int img_fd = -1;
static const struct vfx_ring ring = {DESC_GPA, AVAIL_GPA, USED_GPA, QSIZE};
static uint16_t avail_idx;

static void setup_rng(void)
{
	error_clear(&err);
	vfx_up(&fx, &(struct vfx_opts){.ram = RAM, .nvec = NVEC});
	rng = virtio_rng_create(&fx.host, fx.root, &err);
	cr_assert_not_null(rng, "%s", err.msg);
	vp = virtio_rng_transport(rng);
	vfx_attach(&fx, vp);
}

static void teardown_rng(void)
{
	vfx_stop(&fx);
	virtio_rng_destroy(rng);
	vfx_down(&fx);
}

static void setup_blk(void)
{
	struct virtio_blk_opts o = {.id = "resetdisk", .queues = 1};

	error_clear(&err);
	img_fd = mkstemp(img);
	cr_assert_geq(img_fd, 0);
	cr_assert_eq(ftruncate(img_fd, IMG_SIZE), 0);
	o.path = img;
	vfx_up(&fx, &(struct vfx_opts){.ram = RAM, .nvec = NVEC});
	blk = virtio_blk_create(&fx.host, fx.root, &o, &err);
	cr_assert_not_null(blk, "%s", err.msg);
	vp = virtio_blk_transport(blk);
	vfx_attach(&fx, vp);
}

static void teardown_blk(void)
{
	vfx_stop(&fx);
	virtio_blk_destroy(blk);
	vfx_down(&fx);
	close(img_fd);
	unlink(img);
}

TestSuite(vreset, .init = setup_rng, .fini = teardown_rng);
TestSuite(vreset_blk, .init = setup_blk, .fini = teardown_blk);

/* ---- driver side ---- */

static void fresh_rings(void)
{
	avail_idx = 0;
	memset(vfx_used(&fx, ring), 0, 4 + 8 * QSIZE);
	memset(vfx_avail(&fx, ring), 0, 4 + 2 * QSIZE);
}

static void bring_up(uint64_t f)
{
	fresh_rings();
	vfx_bring_up(&fx, f, &ring, 1);
}

/* The status write alone, without waiting for the reset: what a driver that does not wait does. */
static void write_status(uint8_t s)
{
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_STATUS, 1, s);
}

/* rng: one device-writable buffer of 16 bytes, made available and notified. */
static void rng_offer(void)
{
	uint16_t head = avail_idx % QSIZE;

	vfx_desc_set(&fx, ring, head, IO_GPA + 0x2000 * head, 16, VIRTQ_DESC_F_WRITE, 0);
	vfx_avail_push(&fx, ring, &avail_idx, head);
	vfx_notify(&fx, 0);
}

/* blk: a 4 KiB write request (header, data, status: three descriptors), notified. */
static void blk_post(uint64_t sector)
{
	uint16_t slot = avail_idx % (QSIZE / 3), d = slot * 3;
	uint64_t io = IO_GPA + 0x2000 * slot;
	uint8_t *hdr = vfx_gp(&fx, io, 16);
	struct vfx_seg s[3] = {
		{io, 16, false},
		{io + 0x1000, 4096, false},
		{io + 0x10, 1, true},
	};

	memset(hdr, 0, 16);
	vfx_put(hdr, 4, VIRTIO_BLK_T_OUT);
	vfx_put(hdr + 8, 8, sector);
	*(uint8_t *)vfx_gp(&fx, io + 0x10, 1) = 0xff;
	vfx_chain(&fx, ring, d, s, 3);
	vfx_avail_push(&fx, ring, &avail_idx, d);
	vfx_notify(&fx, 0);
}

/* Nothing more lands on the used ring once the reset is over. */
static void assert_used_still(uint16_t seen)
{
	usleep(5000);
	cr_assert_eq(vfx_used_idx(&fx, ring), seen, "pushed after the reset");
}

/* ---- the transport ---- */

/* The reset is the I/O thread's: until it ran, status reads what it read, and writes are ignored.
 */
Test(vreset, pending_reset_reads_nonzero_and_ignores_writes)
{
	bring_up(F_VERSION_1);
	iothread_pause(fx.io);
	write_status(0);
	cr_assert_eq(vfx_status(&fx), 0x0f, "status must not read 0 before the reset is done");
	write_status(VIRTIO_STATUS_ACKNOWLEDGE);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_MSIX, 2, 1);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2, 4);
	cr_assert_eq(vfx_status(&fx), 0x0f);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	usleep(10000);
	cr_assert_eq(vfx_status(&fx), 0x0f, "the I/O thread is paused: nobody reset it");
	iothread_resume(fx.io);
	cr_assert(vfx_wait_reset(&fx, 2000));
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	bring_up(F_VERSION_1);
	rng_offer();
	cr_assert(vfx_wait_used(&fx, ring, 1, 2000), "the driver's re-initialisation works");
}

/* A driver's first reset finds status 0: it must still not read 0 until done. */
Test(vreset, first_reset_reads_needs_reset_while_pending)
{
	iothread_pause(fx.io);
	write_status(0);
	cr_assert_eq(vfx_status(&fx), VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	iothread_resume(fx.io);
	cr_assert(vfx_wait_reset(&fx, 2000));
}

/* Buffers offered around a pending reset are never used. */
Test(vreset, pending_reset_serves_no_queue)
{
	bring_up(F_VERSION_1);
	iothread_pause(fx.io);
	rng_offer();
	write_status(0);
	iothread_resume(fx.io);
	cr_assert(vfx_wait_reset(&fx, 2000));
	assert_used_still(0);
}

/*
 * A driver writing 0 in a loop, with and without the I/O thread keeping up:
 * requests coalesce, nothing grows, and the device comes back.
 */
Test(vreset, reset_storm)
{
	unsigned int handlers = iothread_nhandlers(fx.io);

	bring_up(F_VERSION_1);
	for (int i = 0; i < 20000; i++) {
		write_status(0);
		if (i % 7 == 0)
			write_status(VIRTIO_STATUS_ACKNOWLEDGE);
	}
	iothread_pause(fx.io);
	for (int i = 0; i < 20000; i++)
		write_status(0);
	iothread_resume(fx.io);
	cr_assert(vfx_wait_reset(&fx, 2000));
	cr_assert_eq(iothread_nhandlers(fx.io), handlers);
	bring_up(F_VERSION_1);
	rng_offer();
	cr_assert(vfx_wait_used(&fx, ring, 1, 2000));
}

/* Pausing for a snapshot waits for the reset; a save never holds half of one. */
Test(vreset, settle_before_a_snapshot)
{
	struct snap_writer w;

	bring_up(F_VERSION_1);
	iothread_pause(fx.io);
	write_status(0);
	cr_assert_eq(virtio_pci_settle(vp, 50), -ETIMEDOUT);
	snap_writer_init(&w);
	cr_assert_eq(virtio_pci_save(vp, &w, "virtio-rng0"), -EBUSY);
	snap_writer_free(&w);
	iothread_resume(fx.io);
	cr_assert_eq(virtio_pci_settle(vp, 2000), 0);
	cr_assert_eq(vfx_status(&fx), 0);
	cr_assert_eq(vfx_save_restore(vp, "virtio-rng0", &err), 0, "%s", err.msg);
	cr_assert_eq(vfx_status(&fx), 0);
}

/* The VMM's own resets (reboot, restore) are done at once and take a pending one with them. */
Test(vreset, pci_reset_completes_a_pending_reset)
{
	bring_up(F_VERSION_1);
	iothread_pause(fx.io);
	write_status(0);
	pci_root_reset(fx.root);
	cr_assert_eq(vfx_status(&fx), 0);
	cr_assert_eq(virtio_pci_settle(vp, 0), 0);
	iothread_resume(fx.io);
	bring_up(F_VERSION_1);
	usleep(5000); /* the stale request, if any, must not reset the live device */
	cr_assert_eq(vfx_status(&fx), 0x0f);
}

/* queue_reset reads 1 until the I/O thread did it; the queue's registers wait too. */
Test(vreset, queue_reset_is_pending_until_done)
{
	bring_up(F_VERSION_1 | F_RING_RESET);
	iothread_pause(fx.io);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2), 1);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2, 4);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	rng_offer();
	cr_assert_eq(virtio_pci_settle(vp, 20), -ETIMEDOUT);
	iothread_resume(fx.io);
	cr_assert(vfx_wait_queue_reset(&fx, 2000));
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	cr_assert_eq(vfx_status(&fx), 0x0f, "a queue reset leaves the device up");
	assert_used_still(0);
	fresh_rings();
	vfx_queue_setup(&fx, 0, ring);
	rng_offer();
	cr_assert(vfx_wait_used(&fx, ring, 1, 2000));
}

/* ---- virtio-blk: requests in flight ---- */

/* Requests in flight when the reset comes: they finish on the host, none is pushed after it. */
Test(vreset_blk, reset_races_requests_in_flight)
{
	for (int round = 0; round < 30; round++) {
		bring_up(F_VERSION_1);
		for (int i = 0; i < QSIZE / 3; i++)
			blk_post((uint64_t)(round * 64 + i * 8) % (IMG_SIZE / 512 - 8));
		write_status(0);
		cr_assert(vfx_wait_reset(&fx, 2000));
		assert_used_still(vfx_used_idx(&fx, ring));
	}
	bring_up(F_VERSION_1);
	blk_post(0);
	cr_assert(vfx_wait_used(&fx, ring, 1, 2000));
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, IO_GPA + 0x10, 1), VIRTIO_BLK_S_OK);
}

/* A storm of resets with requests coming in between: no hang, and the disk still works. */
Test(vreset_blk, reset_storm_with_requests)
{
	for (int round = 0; round < 200; round++) {
		bring_up(F_VERSION_1);
		blk_post((uint64_t)round * 8 % (IMG_SIZE / 512 - 8));
		for (int i = 0; i < 50; i++)
			write_status(0);
		cr_assert(vfx_wait_reset(&fx, 2000));
	}
	bring_up(F_VERSION_1);
	blk_post(8);
	cr_assert(vfx_wait_used(&fx, ring, 1, 2000));
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, IO_GPA + 0x10, 1), VIRTIO_BLK_S_OK);
}
