// SPDX-License-Identifier: MIT
/*
 * virtio-balloon driven the way a guest driver drives it: BAR accesses on
 * real buses, rings and buffers in a real gmem (a memfd, no KVM), a real
 * I/O thread. That the host gets memory back is read off the memfd's
 * allocated blocks.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/balloon.h"
#include "virtio_fixture.h"

#define RAM	    (64 * MiB)
#define QSIZE	    16
#define Q_GPA(q)    (0x10000ULL + 0x10000ULL * (q)) /* desc; avail +0x1000, used +0x2000 */
#define BUF_GPA	    0x100000ULL
#define BIG_GPA	    (32 * MiB)
#define NVEC	    5
#define F_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define F_STATS	    (1ULL << VIRTIO_BALLOON_F_STATS_VQ)
#define F_REPORT    (1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING)
#define F_OOM	    (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)

static struct vfx fx;
static struct virtio_balloon *bal;
static struct error err;
static uint16_t avail_idx[4];

static void machine_up(const struct virtio_balloon_opts *o)
{
	error_clear(&err);
	memset(avail_idx, 0, sizeof(avail_idx));
	vfx_up(&fx, &(struct vfx_opts){.ram = RAM, .nvec = NVEC});
	bal = virtio_balloon_create(&fx.host, fx.root, o, &err);
	cr_assert_not_null(bal, "%s", err.msg);
	vfx_attach(&fx, virtio_balloon_transport(bal));
}

static void setup_basic(void)
{
	machine_up(&(struct virtio_balloon_opts){.target = 8 * MiB});
}

static void setup_full(void)
{
	machine_up(&(struct virtio_balloon_opts){.target = 8 * MiB,
						 .stats_period = 1,
						 .free_page_reporting = true,
						 .deflate_on_oom = true});
}

static void teardown(void)
{
	vfx_stop(&fx);
	virtio_balloon_destroy(bal);
	vfx_down(&fx);
}

TestSuite(vbal, .init = setup_basic, .fini = teardown);
TestSuite(vbal_full, .init = setup_full, .fini = teardown);

/* ---- driver side ---- */

static struct vfx_ring ring(unsigned int q)
{
	return vfx_ring_at(Q_GPA(q), QSIZE);
}

/* Negotiates f and enables the first nq queues. */
static void bring_up(uint64_t f, unsigned int nq)
{
	struct vfx_ring r[4];

	cr_assert_leq(nq, 4);
	for (unsigned int q = 0; q < nq; q++)
		r[q] = ring(q);
	vfx_bring_up(&fx, f | F_VERSION_1, r, nq);
}

static uint16_t used_idx(unsigned int q)
{
	return vfx_used_idx(&fx, ring(q));
}

/* Offers a one-descriptor chain on q and notifies. */
static void offer(unsigned int q, uint64_t gpa, uint32_t len, bool write)
{
	uint16_t d = avail_idx[q] % QSIZE;

	vfx_desc_set(&fx, ring(q), d, gpa, len, write ? VIRTQ_DESC_F_WRITE : 0, 0);
	vfx_avail_push(&fx, ring(q), &avail_idx[q], d);
	vfx_notify(&fx, q);
}

static bool wait_used(unsigned int q, uint16_t idx, int ms)
{
	return vfx_wait_used(&fx, ring(q), idx, ms);
}

static long long memfd_bytes(void)
{
	struct stat st;

	cr_assert_eq(fstat(fx.mem->memfd, &st), 0);
	return (long long)st.st_blocks * 512;
}

/* Fills n page numbers starting at pfn into the buffer at BUF_GPA. */
static uint32_t pfn_buffer(uint64_t pfn, uint32_t n)
{
	uint8_t *b = vfx_gp(&fx, BUF_GPA, 4ULL * n);

	for (uint32_t i = 0; i < n; i++)
		vfx_put(b + 4 * i, 4, pfn + i);
	return 4 * n;
}

static struct virtio_balloon_stats stats(void)
{
	struct virtio_balloon_stats s;

	virtio_balloon_get_stats(bal, &s);
	return s;
}

/* ---- tests ---- */

Test(vbal, identity_queues_and_features)
{
	struct pci_device *d = virtio_pci_pci(virtio_balloon_transport(bal));
	uint64_t f = vfx_device_features(&fx);

	cr_assert_eq(pci_config_get16(d, PCI_DEVICE_ID), 0x1045);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	cr_assert_not(f & (F_STATS | F_REPORT | F_OOM));
	cr_assert_eq(virtio_balloon_num_queues(&(struct virtio_balloon_opts){0}), 2);
	cr_assert_eq(virtio_balloon_num_queues(&(struct virtio_balloon_opts){.stats_period = 5}),
		     3);
	cr_assert_eq(virtio_balloon_num_queues(
			     &(struct virtio_balloon_opts){.free_page_reporting = true}),
		     3);
}

Test(vbal_full, all_queues_and_features)
{
	uint64_t f = vfx_device_features(&fx);

	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 4);
	cr_assert_eq(f & (F_STATS | F_REPORT | F_OOM), F_STATS | F_REPORT | F_OOM);
	cr_assert_not(f & (1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST));
}

Test(vbal, config_target_and_actual)
{
	uint8_t gen;

	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4),
		     2048);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4), 0);
	vfx_bar_wr(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4, 1000);
	vfx_bar_wr(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4, 7);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4), 1000);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4), 2048,
		     "num_pages is the device's");
	cr_assert_eq(stats().actual, 1000);

	bring_up(0, 2);
	gen = (uint8_t)vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_CFGGEN, 1);
	virtio_balloon_set_target(bal, 32 * MiB);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4),
		     8192);
	for (int i = 0; i < 2000 && (uint8_t)vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_CFGGEN, 1) == gen;
	     i++)
		usleep(1000);
	cr_assert_neq((uint8_t)vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_CFGGEN, 1), gen,
		      "a new target is a configuration change");
	vfx_set_status(&fx, 0);
	cr_assert_eq(stats().actual, 0, "a reset empties the balloon");
}

Test(vbal, inflate_gives_memory_back)
{
	long long before;

	memset(vfx_gp(&fx, BIG_GPA, 16 * MiB), 0x5a, 16 * MiB);
	before = memfd_bytes();
	cr_assert_geq(before, 16 * MiB);
	bring_up(0, 2);
	offer(0, BUF_GPA, pfn_buffer(BIG_GPA >> 12, 4096), false);
	cr_assert(wait_used(0, 1, 2000));
	cr_assert_leq(memfd_bytes(), before - 15 * MiB, "%lld -> %lld bytes", before,
		      memfd_bytes());
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, BIG_GPA + 8 * MiB, 1), 0,
		     "released pages read as zeroes");
	cr_assert_eq(stats().inflated, 4096);

	offer(1, BUF_GPA, pfn_buffer(BIG_GPA >> 12, 100), false);
	cr_assert(wait_used(1, 1, 2000));
	cr_assert_eq(stats().deflated, 100);
}

Test(vbal, bad_pfns_are_skipped)
{
	uint8_t *b = vfx_gp(&fx, BUF_GPA, 16);

	memset(vfx_gp(&fx, BIG_GPA, 4096), 0x5a, 4096);
	bring_up(0, 2);
	vfx_put(b, 4, RAM >> 12);	  /* first page past the end */
	vfx_put(b + 4, 4, 0xffffffff);	  /* far out */
	vfx_put(b + 8, 4, BIG_GPA >> 12); /* fine */
	vfx_put(b + 12, 4, 0xdeadbeef);	  /* far out again */
	offer(0, BUF_GPA, 15, false);	  /* the last page number is cut short: ignored */
	cr_assert(wait_used(0, 1, 2000));
	cr_assert_eq(stats().inflated, 1);
	cr_assert_eq(stats().bad_pfns, 2);
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, BIG_GPA, 1), 0);
	cr_assert_not(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_STATUS, 1) &
		      VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

Test(vbal, malformed_ring_needs_reset)
{
	struct virtq_avail *a = vfx_avail(&fx, ring(0));

	bring_up(0, 2);
	a->ring[0] = htole16(QSIZE + 1);
	__atomic_store_n(&a->idx, htole16(1), __ATOMIC_RELEASE);
	vfx_notify(&fx, 0);
	cr_assert(vfx_wait_status(&fx, VIRTIO_STATUS_DEVICE_NEEDS_RESET, 2000),
		  "no DEVICE_NEEDS_RESET");
}

static void stat_put(uint8_t *p, uint16_t tag, uint64_t v)
{
	vfx_put(p, 2, tag);
	vfx_put(p + 2, 8, v);
}

Test(vbal_full, stats_are_parsed_and_requested_again)
{
	uint8_t *b = vfx_gp(&fx, BUF_GPA, 40);
	struct virtio_balloon_stats s;

	bring_up(F_STATS | F_REPORT, 4);
	stat_put(b, VIRTIO_BALLOON_S_MEMFREE, 1234);
	stat_put(b + 10, VIRTIO_BALLOON_S_MEMTOT, 5678);
	stat_put(b + 20, 999, 1); /* unknown tag: ignored */
	stat_put(b + 30, VIRTIO_BALLOON_S_AVAIL, 42);
	offer(2, BUF_GPA, 40, false);
	for (int i = 0; i < 2000 && stats().updates == 0; i++)
		usleep(1000);
	s = stats();
	cr_assert_eq(s.updates, 1);
	cr_assert_eq(s.value[VIRTIO_BALLOON_S_MEMFREE], 1234);
	cr_assert_eq(s.value[VIRTIO_BALLOON_S_MEMTOT], 5678);
	cr_assert_eq(s.value[VIRTIO_BALLOON_S_AVAIL], 42);
	cr_assert_eq(s.valid, 1U << VIRTIO_BALLOON_S_MEMFREE | 1U << VIRTIO_BALLOON_S_MEMTOT |
				      1U << VIRTIO_BALLOON_S_AVAIL);
	cr_assert_eq(used_idx(2), 0, "the device keeps the buffer until it wants new numbers");
	cr_assert(wait_used(2, 1, 3000), "the period (1 s) passed: buffer handed back");
}

static void report_and_check(unsigned int q)
{
	long long before;

	memset(vfx_gp(&fx, BIG_GPA, 8 * MiB), 0x77, 8 * MiB);
	before = memfd_bytes();
	/* Unaligned on both ends: only the whole pages inside are released. */
	offer(q, BIG_GPA + 100, 8 * MiB - 200, true);
	cr_assert(wait_used(q, 1, 2000));
	cr_assert_leq(memfd_bytes(), before - 7 * MiB);
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, BIG_GPA + 4 * MiB, 1), 0);
	cr_assert_eq(*(uint8_t *)vfx_gp(&fx, BIG_GPA + 100, 1), 0x77, "a partial page is kept");
	cr_assert_eq(stats().reported, 8 * MiB - 2 * 4096);
}

Test(vbal_full, free_page_reports_are_released)
{
	bring_up(F_STATS | F_REPORT, 4);
	report_and_check(3);
}

/* A driver without stats numbers the reporting queue 2: the role follows the features. */
Test(vbal_full, declined_stats_moves_reporting_to_queue_2)
{
	bring_up(F_REPORT, 3);
	report_and_check(2);
}

Test(vbal, destroy_null_is_a_no_op)
{
	virtio_balloon_destroy(NULL);
}

/* ---- snapshot ---- */

/* Saves the device and loads the state back into it (reset first, as a fresh twin would be). */
static int save_and_restore(void)
{
	return vfx_save_restore(virtio_balloon_transport(bal), "virtio-balloon0", &err);
}

Test(vbal_full, held_stats_buffer_survives_a_restore)
{
	uint8_t *b = vfx_gp(&fx, BUF_GPA, 10);

	bring_up(F_STATS | F_REPORT, 4);
	vfx_bar_wr(&fx, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4, 77);
	stat_put(b, VIRTIO_BALLOON_S_MEMFREE, 1234);
	offer(2, BUF_GPA, 10, false);
	for (int i = 0; i < 2000 && stats().updates == 0; i++)
		usleep(1000);
	cr_assert_eq(stats().updates, 1);
	cr_assert_eq(save_and_restore(), 0, "%s", err.msg);
	cr_assert_eq(stats().actual, 77);
	cr_assert_eq(stats().value[VIRTIO_BALLOON_S_MEMFREE], 1234);
	/* The held buffer went back to the ring: the restored device takes it again... */
	for (int i = 0; i < 2000 && stats().updates == 1; i++)
		usleep(1000);
	cr_assert_eq(stats().updates, 2);
	cr_assert_eq(used_idx(2), 0);
	/* ...and hands it back at the next request, so the driver's numbers keep flowing. */
	cr_assert(wait_used(2, 1, 3000), "the held buffer was lost across the restore");
}
