// SPDX-License-Identifier: MIT
/*
 * virtio-blk driven the way a guest driver drives it: through ECAM and BAR
 * accesses on real buses, rings and buffers in a real gmem (a memfd, no
 * KVM), a real I/O thread and block layer on a temporary raw image.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/blk.h"
#include "virtio_fixture.h"

#define RAM	    (4 * MiB)
#define IMG_SIZE    (1 * MiB)
#define QSIZE	    16
#define BIG_QSIZE   256 /* more than the block layer's 128 slots: backpressure */
#define DESC_GPA    0x10000ULL
#define AVAIL_GPA   0x20000ULL
#define USED_GPA    0x30000ULL
#define HDR_GPA	    0x40000ULL
#define STATUS_GPA  0x50000ULL
#define DATA_GPA    0x100000ULL
#define DATA_MAX    0x10000
#define NVEC	    (MQ_QUEUES + 1)
#define MQ_QUEUES   4
#define MQ_RING_GPA 0x60000ULL	/* queue q: desc, avail, used at + q * 0x3000 */
#define MQ_IO_GPA   0x200000ULL /* queue q: header, status, data at + q * 0x2000 */
#define F_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define F_ALL                                                                                      \
	(F_VERSION_1 | 1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_DISCARD |                 \
	 1ULL << VIRTIO_BLK_F_WRITE_ZEROES | 1ULL << VIRTIO_BLK_F_BLK_SIZE |                       \
	 1ULL << VIRTIO_BLK_F_SEG_MAX)

static struct vfx fx;
static struct virtio_blk *blk;
static struct error err;
static char img[] = "/tmp/bunshin-vblk-XXXXXX";
static int img_fd = -1;
static uint16_t avail_idx;
static uint16_t qsize = QSIZE;
static uint32_t used_len;
static const struct virtio_blk_limits *up_limits; /* the next machine's */
static uint64_t fake_ns;			  /* its clock, when it has limits */

static uint64_t fake_clock(void)
{
	return __atomic_load_n(&fake_ns, __ATOMIC_ACQUIRE);
}

static void fake_advance(uint64_t ns)
{
	__atomic_add_fetch(&fake_ns, ns, __ATOMIC_RELEASE);
}

static void machine_up_q(bool read_only, unsigned int queues)
{
	struct virtio_blk_opts o = {.read_only = read_only, .id = "testdisk", .queues = queues};

	error_clear(&err);
	avail_idx = 0;
	qsize = QSIZE;
	strcpy(img, "/tmp/bunshin-vblk-XXXXXX");
	img_fd = mkstemp(img);
	cr_assert_geq(img_fd, 0);
	cr_assert_eq(ftruncate(img_fd, IMG_SIZE), 0);
	o.path = img;
	if (up_limits) {
		o.limits = up_limits;
		o.clock_ns = fake_clock;
		fake_ns = 1000000000ULL;
	}
	/* no ioevent sink: notifications take the bus path */
	vfx_up(&fx, &(struct vfx_opts){.ram = RAM, .nvec = NVEC});
	blk = virtio_blk_create(&fx.host, fx.root, &o, &err);
	cr_assert_not_null(blk, "%s", err.msg);
	vfx_attach(&fx, virtio_blk_transport(blk));
}

static void setup_rw(void)
{
	machine_up_q(false, 1);
}

static void setup_ro(void)
{
	machine_up_q(true, 1);
}

static void setup_mq(void)
{
	machine_up_q(false, MQ_QUEUES);
}

/* The VMM's order: I/O thread, root, devices, then guest memory. */
static void teardown(void)
{
	vfx_stop(&fx);
	virtio_blk_destroy(blk);
	vfx_down(&fx);
	close(img_fd);
	unlink(img);
}

TestSuite(vblk, .init = setup_rw, .fini = teardown);
TestSuite(vblk_ro, .init = setup_ro, .fini = teardown);
TestSuite(vblk_mq, .init = setup_mq, .fini = teardown);

/* ---- driver side ---- */

/* The single-queue rings, at the size the test asked for. */
static struct vfx_ring ring0(uint16_t size)
{
	return (struct vfx_ring){DESC_GPA, AVAIL_GPA, USED_GPA, size};
}

static void bring_up(uint64_t f)
{
	struct vfx_ring r = ring0(qsize);

	vfx_bring_up(&fx, f, &r, 1);
}

/* Offers one chain of descriptors 0..n-1, notifies, and waits for it to be used. */
static bool run_chain(const struct vfx_seg *s, int n)
{
	vfx_chain(&fx, ring0(QSIZE), 0, s, n);
	vfx_avail_push(&fx, ring0(QSIZE), &avail_idx, 0);
	vfx_notify(&fx, 0);
	if (!vfx_wait_used(&fx, ring0(QSIZE), avail_idx, 2000))
		return false;
	used_len = vfx_used_elem(&fx, ring0(QSIZE), avail_idx - 1).len;
	return true;
}

static void set_hdr(uint32_t type, uint64_t sector)
{
	uint8_t *h = vfx_gp(&fx, HDR_GPA, VIRTIO_BLK_HDR_SIZE);

	vfx_put(h, 4, type);
	vfx_put(h + 4, 4, 0);
	vfx_put(h + 8, 8, sector);
}

/* header, data (if len), status; returns the status byte. */
static uint8_t req(uint32_t type, uint64_t sector, uint32_t len, bool dev_writes)
{
	struct vfx_seg s[3];
	int n = 0;
	uint8_t *st = vfx_gp(&fx, STATUS_GPA, 1);

	set_hdr(type, sector);
	*st = 0xee;
	s[n++] = (struct vfx_seg){HDR_GPA, VIRTIO_BLK_HDR_SIZE, false};
	if (len)
		s[n++] = (struct vfx_seg){DATA_GPA, len, dev_writes};
	s[n++] = (struct vfx_seg){STATUS_GPA, 1, true};
	cr_assert(run_chain(s, n), "request not completed");
	return *st;
}

static uint8_t dwz(uint32_t type, uint64_t sector, uint32_t n, uint32_t flags)
{
	uint8_t *seg = vfx_gp(&fx, DATA_GPA, VIRTIO_BLK_DWZ_SEG_SIZE);

	vfx_put(seg, 8, sector);
	vfx_put(seg + 8, 4, n);
	vfx_put(seg + 12, 4, flags);
	return req(type, 0, VIRTIO_BLK_DWZ_SEG_SIZE, false);
}

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed);
}

/* ---- tests ---- */

Test(vblk, identity_features_and_config)
{
	uint64_t f = vfx_device_features(&fx);
	struct pci_device *d = virtio_pci_pci(virtio_blk_transport(blk));

	cr_assert_eq(pci_config_get16(d, PCI_DEVICE_ID), 0x1042);
	cr_assert_eq(f & F_ALL, F_ALL);
	cr_assert_not(f & (1ULL << VIRTIO_BLK_F_RO));
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 4),
		     IMG_SIZE / 512);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY + 4, 4), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_SEG_MAX, 4),
		     DISK_IOV_MAX - 2);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_DISCARD_SEG, 4), 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_WZ_SEG, 4), 1);
	cr_assert_gt(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_MAX_DISCARD, 4), 0);
	cr_assert_gt(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_MAX_WZ, 4), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_WZ_MAY_UNMAP, 1), 1);
}

Test(vblk, write_read_round_trip)
{
	uint8_t *data = vfx_gp(&fx, DATA_GPA, 4096), want[4096], file[4096];

	bring_up(F_ALL);
	fill(data, 4096, 3);
	memcpy(want, data, 4096);
	cr_assert_eq(req(VIRTIO_BLK_T_OUT, 2, 4096, false), VIRTIO_BLK_S_OK);
	cr_assert_eq(used_len, 1);
	cr_assert_eq(pread(img_fd, file, 4096, 1024), 4096);
	cr_assert_arr_eq(file, want, 4096, "the image must hold what was written");
	memset(data, 0, 4096);
	cr_assert_eq(req(VIRTIO_BLK_T_IN, 2, 4096, true), VIRTIO_BLK_S_OK);
	cr_assert_eq(used_len, 4097);
	cr_assert_arr_eq(data, want, 4096);
}

Test(vblk, flush_and_get_id)
{
	char *id = vfx_gp(&fx, DATA_GPA, 20);

	bring_up(F_ALL);
	cr_assert_eq(req(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK);
	memset(id, 'x', 20);
	cr_assert_eq(req(VIRTIO_BLK_T_GET_ID, 0, 20, true), VIRTIO_BLK_S_OK);
	cr_assert_eq(memcmp(id, "testdisk\0", 9), 0);
	cr_assert_eq(used_len, 21);
}

/* 5.2.6.2: without FLUSH the driver cannot ask for durability, so writes are written through. */
Test(vblk, writes_go_through_without_flush)
{
	struct virtio_blk_stats st;

	bring_up(F_VERSION_1);
	fill(vfx_gp(&fx, DATA_GPA, 4096), 4096, 5);
	cr_assert_eq(req(VIRTIO_BLK_T_OUT, 0, 4096, false), VIRTIO_BLK_S_OK);
	virtio_blk_get_stats(blk, &st);
	cr_assert_eq(st.writes, 1);
	cr_assert_eq(st.write_through, 1);
	cr_assert_eq(st.bytes_written, 4096);
}

Test(vblk, writes_are_cached_when_the_guest_can_flush)
{
	struct virtio_blk_stats st;

	bring_up(F_ALL);
	fill(vfx_gp(&fx, DATA_GPA, 4096), 4096, 5);
	cr_assert_eq(req(VIRTIO_BLK_T_OUT, 0, 4096, false), VIRTIO_BLK_S_OK);
	cr_assert_eq(req(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK);
	virtio_blk_get_stats(blk, &st);
	cr_assert_eq(st.writes, 1);
	cr_assert_eq(st.write_through, 0, "with FLUSH negotiated the guest flushes");
	cr_assert_eq(st.flushes, 1);
}

Test(vblk, flush_without_the_feature_is_unsupported)
{
	bring_up(F_VERSION_1);
	cr_assert_eq(req(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(dwz(VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
}

Test(vblk, discard_and_write_zeroes)
{
	uint8_t *data = vfx_gp(&fx, DATA_GPA, 4096), zero[4096] = {0};

	bring_up(F_ALL);
	fill(data, 4096, 9);
	cr_assert_eq(req(VIRTIO_BLK_T_OUT, 8, 4096, false), VIRTIO_BLK_S_OK);
	cr_assert_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 8, 8, 0), VIRTIO_BLK_S_OK);
	memset(data, 0x5a, 4096);
	cr_assert_eq(req(VIRTIO_BLK_T_IN, 8, 4096, true), VIRTIO_BLK_S_OK);
	cr_assert_arr_eq(data, zero, 4096);
	cr_assert_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 8, 8, VIRTIO_BLK_WZ_UNMAP), VIRTIO_BLK_S_OK);
	cr_assert_eq(dwz(VIRTIO_BLK_T_DISCARD, 8, 8, 0), VIRTIO_BLK_S_OK);
	/* unmap on a discard and unknown flags are unsupported (5.2.6.2) */
	cr_assert_eq(dwz(VIRTIO_BLK_T_DISCARD, 8, 8, VIRTIO_BLK_WZ_UNMAP), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 8, 8, 0x80), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(dwz(VIRTIO_BLK_T_DISCARD, IMG_SIZE / 512 - 4, 8, 0), VIRTIO_BLK_S_IOERR);
}

Test(vblk, out_of_range_is_ioerr)
{
	uint64_t cap = IMG_SIZE / 512;

	bring_up(F_ALL);
	cr_assert_eq(req(VIRTIO_BLK_T_IN, cap - 1, 4096, true), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(req(VIRTIO_BLK_T_OUT, cap, 512, false), VIRTIO_BLK_S_IOERR);
	/* sector * 512 would wrap around to a small offset */
	cr_assert_eq(req(VIRTIO_BLK_T_IN, (1ULL << 55) + 1, 512, true), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(req(VIRTIO_BLK_T_IN, UINT64_MAX, 512, true), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, UINT64_MAX - 2, 8, 0), VIRTIO_BLK_S_IOERR);
	/* not a whole number of sectors */
	cr_assert_eq(req(VIRTIO_BLK_T_IN, 0, 100, true), VIRTIO_BLK_S_IOERR);
	/* the last sector is fine */
	cr_assert_eq(req(VIRTIO_BLK_T_IN, cap - 1, 512, true), VIRTIO_BLK_S_OK);
}

Test(vblk, unknown_type_is_unsupported)
{
	bring_up(F_ALL);
	cr_assert_eq(req(77, 0, 512, true), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(used_len, 1);
}

Test(vblk, malformed_headers_fail_without_breaking_the_queue)
{
	uint8_t *st = vfx_gp(&fx, STATUS_GPA, 1);
	struct vfx_seg shorthdr[] = {{HDR_GPA, 8, false}, {STATUS_GPA, 1, true}};
	struct vfx_seg split[] = {{HDR_GPA, 8, false},
				  {HDR_GPA + 8, 8, false},
				  {DATA_GPA, 512, true},
				  {STATUS_GPA, 1, true}};
	struct vfx_seg nostatus[] = {{HDR_GPA, 16, false}};
	struct vfx_seg hdr_writable[] = {{HDR_GPA, 16, true}};

	bring_up(F_ALL);
	set_hdr(VIRTIO_BLK_T_IN, 0);
	*st = 0xee;
	cr_assert(run_chain(shorthdr, 2));
	cr_assert_eq(*st, VIRTIO_BLK_S_IOERR);
	/* a header split across descriptors is still a header */
	set_hdr(VIRTIO_BLK_T_IN, 0);
	*st = 0xee;
	cr_assert(run_chain(split, 4));
	cr_assert_eq(*st, VIRTIO_BLK_S_OK);
	/* nowhere to write a status: handed back with nothing written */
	cr_assert(run_chain(nostatus, 1));
	cr_assert_eq(used_len, 0);
	/* no readable header at all */
	cr_assert(run_chain(hdr_writable, 1));
	cr_assert_eq(used_len, 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f,
		     "the device must not break");
	cr_assert_eq(req(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK);
}

Test(vblk, reset_with_requests_in_flight)
{
	bring_up(F_ALL);
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(req(VIRTIO_BLK_T_OUT, (uint64_t)i * 8, 4096, false), VIRTIO_BLK_S_OK);
		vfx_set_status(&fx, 0);
		cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0);
		avail_idx = 0;
		memset(vfx_used(&fx, ring0(QSIZE)), 0, 4 + 8 * QSIZE);
		memset(vfx_avail(&fx, ring0(QSIZE)), 0, 4 + 2 * QSIZE);
		bring_up(F_ALL);
	}
}

Test(vblk_ro, writes_fail_reads_work)
{
	uint8_t *data = vfx_gp(&fx, DATA_GPA, 4096);

	cr_assert(vfx_device_features(&fx) & (1ULL << VIRTIO_BLK_F_RO));
	bring_up(F_ALL | 1ULL << VIRTIO_BLK_F_RO);
	cr_assert_eq(req(VIRTIO_BLK_T_OUT, 0, 4096, false), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(dwz(VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_BLK_S_IOERR);
	memset(data, 0x5a, 4096);
	cr_assert_eq(req(VIRTIO_BLK_T_IN, 0, 4096, true), VIRTIO_BLK_S_OK);
	cr_assert_eq(data[0], 0);
	cr_assert_eq(req(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK);
}

/*
 * BIG_QSIZE flushes at once, each an indirect table (header, status): more
 * than the block layer takes, so some wait for a completion to free a
 * slot. Every one must come back OK, none dropped.
 */
Test(vblk, backpressure_loses_nothing)
{
	struct vfx_ring big = ring0(BIG_QSIZE);
	struct virtq_avail *a;
	uint64_t tables = 0x200000, hdrs = 0x300000, sts = 0x310000;
	bool done;

	qsize = BIG_QSIZE;
	bring_up(F_ALL | 1ULL << VIRTIO_F_INDIRECT_DESC);
	a = vfx_avail(&fx, big);
	for (int i = 0; i < BIG_QSIZE; i++) {
		struct virtq_desc *d = vfx_desc(&fx, big, i);
		struct virtq_desc *t = vfx_gp(&fx, tables + 32 * i, 32);

		vfx_put(vfx_gp(&fx, hdrs + 16 * i, 16), 4, VIRTIO_BLK_T_FLUSH);
		*(uint8_t *)vfx_gp(&fx, sts + i, 1) = 0xee;
		t[0] = (struct virtq_desc){htole64(hdrs + 16 * i), htole32(16),
					   htole16(VIRTQ_DESC_F_NEXT), htole16(1)};
		t[1] = (struct virtq_desc){htole64(sts + i), htole32(1),
					   htole16(VIRTQ_DESC_F_WRITE), 0};
		*d = (struct virtq_desc){htole64(tables + 32 * i), htole32(32),
					 htole16(VIRTQ_DESC_F_INDIRECT), 0};
		a->ring[i] = htole16(i);
	}
	__atomic_store_n(&a->idx, htole16(BIG_QSIZE), __ATOMIC_RELEASE);
	vfx_notify(&fx, 0);
	done = vfx_wait_used(&fx, big, BIG_QSIZE, 5000);
	cr_assert(done, "only %u of %d used", vfx_used_idx(&fx, big), BIG_QSIZE);
	for (int i = 0; i < BIG_QSIZE; i++)
		cr_assert_eq(*(uint8_t *)vfx_gp(&fx, sts + i, 1), VIRTIO_BLK_S_OK, "request %d", i);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

/* ---- multiqueue ---- */

/* Queue q's rings: desc, avail, used, a page each, three pages a queue. */
static struct vfx_ring mq(unsigned int q)
{
	return vfx_ring_at(MQ_RING_GPA + q * 0x3000ULL, QSIZE);
}

static uint64_t mq_io(unsigned int q)
{
	return MQ_IO_GPA + q * 0x2000ULL;
}

/* Every queue with rings of its own, then DRIVER_OK. */
static void bring_up_mq(uint64_t f, unsigned int nq)
{
	struct vfx_ring r[MQ_QUEUES];

	cr_assert_leq(nq, MQ_QUEUES);
	for (unsigned int q = 0; q < nq; q++)
		r[q] = mq(q);
	vfx_bring_up(&fx, f, r, nq);
}

/* Offers one request (header, 4 KiB, status) as the n-th chain of queue q, and notifies. */
static void mq_post(unsigned int q, uint16_t n, uint32_t type, uint64_t sector)
{
	uint64_t b = mq_io(q);
	uint8_t *h = vfx_gp(&fx, b, VIRTIO_BLK_HDR_SIZE);
	struct vfx_seg s[] = {
		{b, 16, false}, {b + 0x1000, 4096, type == VIRTIO_BLK_T_IN}, {b + 16, 1, true}};
	uint16_t idx = n;

	vfx_put(h, 4, type);
	vfx_put(h + 4, 4, 0);
	vfx_put(h + 8, 8, sector);
	*(uint8_t *)vfx_gp(&fx, b + 16, 1) = 0xee;
	vfx_chain(&fx, mq(q), 0, s, 3);
	vfx_avail_push(&fx, mq(q), &idx, 0);
	vfx_notify(&fx, q);
}

static uint16_t mq_used_idx(unsigned int q)
{
	return vfx_used_idx(&fx, mq(q));
}

static bool mq_wait(unsigned int q, uint16_t idx)
{
	return vfx_wait_used(&fx, mq(q), idx, 2000);
}

Test(vblk, single_queue_offers_no_mq)
{
	cr_assert_not(vfx_device_features(&fx) & (1ULL << VIRTIO_BLK_F_MQ));
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_NUM_QUEUES, 2), 0);
}

Test(vblk_mq, offers_mq_and_num_queues)
{
	cr_assert(vfx_device_features(&fx) & (1ULL << VIRTIO_BLK_F_MQ));
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), MQ_QUEUES);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_NUM_QUEUES, 2),
		     MQ_QUEUES);
	cr_assert_eq(msix_nvectors(virtio_pci_pci(virtio_blk_transport(blk))),
		     VIRTIO_PCI_MSIX_VECTORS(MQ_QUEUES));
}

Test(vblk_mq, request_on_queue_1_completes_on_queue_1)
{
	uint8_t *data = vfx_gp(&fx, mq_io(1) + 0x1000, 4096), want[4096], file[4096];
	struct virtq_used *u = vfx_used(&fx, mq(1));

	bring_up_mq(F_ALL | 1ULL << VIRTIO_BLK_F_MQ, MQ_QUEUES);
	fill(data, 4096, 41);
	memcpy(want, data, 4096);
	mq_post(1, 0, VIRTIO_BLK_T_OUT, 24);
	cr_assert(mq_wait(1, 1), "not completed on queue 1");
	cr_assert_eq(le32toh(u->ring[0].id), 0);
	cr_assert_eq(le32toh(u->ring[0].len), 1);
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, mq_io(1) + 16, 1), VIRTIO_BLK_S_OK);
	for (unsigned int q = 0; q < MQ_QUEUES; q++)
		if (q != 1)
			cr_assert_eq(mq_used_idx(q), 0, "queue %u used something", q);
	cr_assert_eq(pread(img_fd, file, 4096, 24 * 512), 4096);
	cr_assert_arr_eq(file, want, 4096);
	memset(data, 0, 4096);
	mq_post(1, 1, VIRTIO_BLK_T_IN, 24);
	cr_assert(mq_wait(1, 2));
	cr_assert_eq(le32toh(u->ring[1].len), 4097);
	cr_assert_arr_eq(data, want, 4096);
	cr_assert_eq(mq_used_idx(0), 0);
}

/* Every queue busy at once, each on sectors of its own; none sees another's completions. */
Test(vblk_mq, all_queues_at_once)
{
	uint8_t want[MQ_QUEUES][4096], file[4096];

	bring_up_mq(F_ALL | 1ULL << VIRTIO_BLK_F_MQ, MQ_QUEUES);
	for (uint16_t round = 0; round < 8; round++) {
		for (unsigned int q = 0; q < MQ_QUEUES; q++) {
			uint8_t *data = vfx_gp(&fx, mq_io(q) + 0x1000, 4096);

			fill(data, 4096, (uint8_t)(q * 16 + round));
			memcpy(want[q], data, 4096);
			mq_post(q, round, VIRTIO_BLK_T_OUT, 64 + q * 8);
		}
		for (unsigned int q = 0; q < MQ_QUEUES; q++) {
			cr_assert(mq_wait(q, round + 1), "queue %u round %u", q, round);
			cr_assert_eq(*(uint8_t *)vfx_gp(&fx, mq_io(q) + 16, 1), VIRTIO_BLK_S_OK);
		}
	}
	for (unsigned int q = 0; q < MQ_QUEUES; q++) {
		cr_assert_eq(pread(img_fd, file, 4096, (64 + q * 8) * 512), 4096);
		cr_assert_arr_eq(file, want[q], 4096, "queue %u", q);
	}
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

/* A driver that does not take MQ still gets a working queue 0. */
Test(vblk_mq, without_mq_negotiated_queue_0_works)
{
	uint8_t *data = vfx_gp(&fx, mq_io(0) + 0x1000, 4096);

	bring_up_mq(F_ALL, 1);
	fill(data, 4096, 5);
	mq_post(0, 0, VIRTIO_BLK_T_OUT, 0);
	cr_assert(mq_wait(0, 1));
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, mq_io(0) + 16, 1), VIRTIO_BLK_S_OK);
}

/* VIRTIO_F_RING_RESET on queue 1: queue 0 carries on, queue 1 starts over on fresh rings. */
Test(vblk_mq, queue_reset_of_one_queue_leaves_the_others)
{
	uint64_t f = F_ALL | 1ULL << VIRTIO_BLK_F_MQ | 1ULL << VIRTIO_F_RING_RESET;

	bring_up_mq(f, 2);
	mq_post(1, 0, VIRTIO_BLK_T_OUT, 8);
	cr_assert(mq_wait(1, 1));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
	cr_assert(vfx_wait_queue_reset(&fx, 2000), "the queue reset never completed");
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	mq_post(0, 0, VIRTIO_BLK_T_IN, 8);
	cr_assert(mq_wait(0, 1), "queue 0 must keep working");
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, mq_io(0) + 16, 1), VIRTIO_BLK_S_OK);

	memset(vfx_avail(&fx, mq(1)), 0, 4 + 2 * QSIZE);
	memset(vfx_used(&fx, mq(1)), 0, 4 + 8 * QSIZE);
	vfx_queue_setup(&fx, 1, mq(1));
	mq_post(1, 0, VIRTIO_BLK_T_IN, 8);
	cr_assert(mq_wait(1, 1), "queue 1 must work again from index 0");
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, mq_io(1) + 16, 1), VIRTIO_BLK_S_OK);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

/* A queue reset with a request in flight: it finishes, and nothing is pushed after the reset. */
Test(vblk_mq, queue_reset_with_a_request_in_flight)
{
	uint64_t f = F_ALL | 1ULL << VIRTIO_BLK_F_MQ | 1ULL << VIRTIO_F_RING_RESET;

	bring_up_mq(f, 2);
	for (uint16_t i = 0; i < 20; i++) {
		uint16_t seen;

		mq_post(1, 0, VIRTIO_BLK_T_OUT, i * 8);
		vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
		vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
		cr_assert(vfx_wait_queue_reset(&fx, 2000), "the queue reset never completed");
		seen = mq_used_idx(1);
		cr_assert_leq(seen, 1);
		usleep(2000);
		cr_assert_eq(mq_used_idx(1), seen, "pushed after the reset");
		/* the driver reclaims its rings and starts over */
		memset(vfx_used(&fx, mq(1)), 0, 4 + 8 * QSIZE);
		memset(vfx_avail(&fx, mq(1)), 0, 4 + 2 * QSIZE);
		vfx_queue_setup(&fx, 1, mq(1));
	}
	mq_post(1, 0, VIRTIO_BLK_T_OUT, 0);
	cr_assert(mq_wait(1, 1));
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

Test(vblk, more_queues_than_supported_are_refused)
{
	struct virtio_blk_opts o = {.path = img, .queues = VIRTIO_BLK_MAX_QUEUES + 1};
	struct error e = {0};

	cr_assert_null(virtio_blk_create(&fx.host, fx.root, &o, &e));
	cr_assert(strstr(e.msg, "17 queues"), "%s", e.msg);
}

/* ---- rate limits (a clock of the test's own that stands still until moved) ---- */

#define RL_QUEUES 2
#define RL_IOPS	  4
#define RL_N	  QSIZE

static void setup_rl(void)
{
	static const struct virtio_blk_limits l = {.iops = RL_IOPS};

	up_limits = &l;
	machine_up_q(false, RL_QUEUES);
	up_limits = NULL;
}

TestSuite(vblk_rl, .init = setup_rl, .fini = teardown);

static void post_many(unsigned int q, uint16_t n, uint32_t type)
{
	for (uint16_t i = 0; i < n; i++)
		mq_post(q, i, type, (uint64_t)i * 8);
}

/* Nothing more completes: the clock stands still, so no tokens can come. */
static void assert_stays(unsigned int q, uint16_t idx)
{
	usleep(50000);
	cr_assert_eq(mq_used_idx(q), idx, "queue %u: %u used, want %u", q, mq_used_idx(q), idx);
}

static struct virtio_blk_stats blk_stats(void)
{
	struct virtio_blk_stats st;

	virtio_blk_get_stats(blk, &st);
	return st;
}

Test(vblk, unlimited_by_default)
{
	struct virtio_blk_limits l;

	bring_up_mq(F_ALL, 1);
	post_many(0, RL_N, VIRTIO_BLK_T_IN);
	cr_assert(mq_wait(0, RL_N));
	cr_assert_eq(blk_stats().throttled, 0);
	virtio_blk_get_limits(blk, &l);
	cr_assert_eq(l.iops | l.iops_burst | l.bps | l.bps_burst, 0);
}

Test(vblk_rl, a_bucket_at_once_then_the_rest_as_it_refills)
{
	struct virtio_blk_limits l;

	virtio_blk_get_limits(blk, &l);
	cr_assert_eq(l.iops, RL_IOPS);
	cr_assert_eq(l.iops_burst, RL_IOPS); /* one second's worth */
	bring_up_mq(F_ALL, 1);
	post_many(0, RL_N, VIRTIO_BLK_T_IN);
	cr_assert(mq_wait(0, RL_IOPS));
	assert_stays(0, RL_IOPS);
	cr_assert_eq(blk_stats().throttled, 1, "one request waits, counted once");
	/* each second buys a bucket; a long time buys no more than one */
	fake_advance(1000000000ULL);
	cr_assert(mq_wait(0, 2 * RL_IOPS), "the timer must release the next bucket");
	assert_stays(0, 2 * RL_IOPS);
	fake_advance(60 * 1000000000ULL);
	cr_assert(mq_wait(0, 3 * RL_IOPS));
	assert_stays(0, 3 * RL_IOPS);
	fake_advance(1000000000ULL);
	cr_assert(mq_wait(0, RL_N));
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, mq_io(0) + 16, 1), VIRTIO_BLK_S_OK);
	cr_assert_eq(blk_stats().reads, RL_N);
	cr_assert_eq(blk_stats().throttled, 3);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

Test(vblk_rl, flush_is_free)
{
	bring_up_mq(F_ALL, 1);
	post_many(0, RL_N, VIRTIO_BLK_T_FLUSH);
	cr_assert(mq_wait(0, RL_N));
	cr_assert_eq(blk_stats().throttled, 0);
}

Test(vblk_rl, new_limits_release_a_throttled_queue)
{
	struct virtio_blk_limits l;

	bring_up_mq(F_ALL, 1);
	post_many(0, RL_N, VIRTIO_BLK_T_OUT);
	cr_assert(mq_wait(0, RL_IOPS));
	assert_stays(0, RL_IOPS);
	virtio_blk_set_limits(blk, &(struct virtio_blk_limits){0});
	cr_assert(mq_wait(0, RL_N), "unlimited now: the rest must go at once");
	virtio_blk_get_limits(blk, &l);
	cr_assert_eq(l.iops | l.iops_burst | l.bps | l.bps_burst, 0);
	cr_assert_eq(blk_stats().writes, RL_N);
}

Test(vblk_rl, bytes_per_second)
{
	/* 4 KiB requests, 8 KiB/s: two at once, then nothing until the clock moves */
	virtio_blk_set_limits(blk, &(struct virtio_blk_limits){.bps = 8192});
	bring_up_mq(F_ALL, 1);
	post_many(0, 6, VIRTIO_BLK_T_IN);
	cr_assert(mq_wait(0, 2));
	assert_stays(0, 2);
	fake_advance(2000000000ULL);
	cr_assert(mq_wait(0, 4));
	assert_stays(0, 4);
}

/* The queues share the disk's buckets. */
Test(vblk_rl, queues_share_one_limit)
{
	bring_up_mq(F_ALL | 1ULL << VIRTIO_BLK_F_MQ, RL_QUEUES);
	post_many(0, RL_N / 2, VIRTIO_BLK_T_IN);
	post_many(1, RL_N / 2, VIRTIO_BLK_T_IN);
	for (int i = 0; i < 2000 && mq_used_idx(0) + mq_used_idx(1) < RL_IOPS; i++)
		usleep(1000);
	usleep(50000);
	cr_assert_eq(mq_used_idx(0) + mq_used_idx(1), RL_IOPS, "one bucket for both queues");
	virtio_blk_set_limits(blk, &(struct virtio_blk_limits){.iops = 1000000});
	cr_assert(mq_wait(0, RL_N / 2));
	cr_assert(mq_wait(1, RL_N / 2));
}

/* A reset drops the waiting chain; the device starts over and the timer finds nobody. */
Test(vblk_rl, reset_while_throttled)
{
	bring_up_mq(F_ALL, 1);
	post_many(0, RL_N, VIRTIO_BLK_T_IN);
	cr_assert(mq_wait(0, RL_IOPS));
	vfx_set_status(&fx, 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1), 0);
	memset(vfx_avail(&fx, mq(0)), 0, 4 + 2 * QSIZE);
	memset(vfx_used(&fx, mq(0)), 0, 4 + 8 * QSIZE);
	bring_up_mq(F_ALL, 1);
	fake_advance(1000000000ULL);
	post_many(0, 2, VIRTIO_BLK_T_IN);
	cr_assert(mq_wait(0, 2));
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, mq_io(0) + 16, 1), VIRTIO_BLK_S_OK);
}
