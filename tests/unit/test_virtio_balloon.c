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
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/balloon.h"

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
static struct virtio_balloon *bal;
static uint64_t bar0;
static struct error err;
static uint16_t avail_idx[4];

static void machine_up(const struct virtio_balloon_opts *o)
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
	memset(avail_idx, 0, sizeof(avail_idx));
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
	bal = virtio_balloon_create(&host, root, o, &err);
	cr_assert_not_null(bal, "%s", err.msg);
	bar0 = pci_bar_address(virtio_pci_pci(virtio_balloon_transport(bal)), 0);
	cr_assert_neq(bar0, 0);
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
	iothread_stop(io);
	pci_root_destroy(root);
	virtio_balloon_destroy(bal);
	iothread_destroy(io);
	bus_destroy(&pio);
	bus_destroy(&mmio);
	gmem_destroy(&mem);
	for (int i = 0; i < NVEC; i++)
		close(vec_efd[i]);
}

TestSuite(vbal, .init = setup_basic, .fini = teardown);
TestSuite(vbal_full, .init = setup_full, .fini = teardown);

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

/* Negotiates f and enables the first nq queues. */
static void bring_up(uint64_t f, unsigned int nq)
{
	f |= F_VERSION_1;
	set_status(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	bar_wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	bar_wr(VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
	bar_wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	bar_wr(VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(f >> 32));
	set_status(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	cr_assert(bar_rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned int q = 0; q < nq; q++) {
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

static uint16_t used_idx(unsigned int q)
{
	struct virtq_used *u = gp(Q_GPA(q) + 0x2000, 4 + 8 * QSIZE);

	return le16toh(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE));
}

/* Offers a one-descriptor chain on q and notifies. */
static void offer(unsigned int q, uint64_t gpa, uint32_t len, bool write)
{
	uint16_t d = avail_idx[q] % QSIZE;
	struct virtq_desc *desc = gp(Q_GPA(q) + 16 * d, 16);
	struct virtq_avail *a = gp(Q_GPA(q) + 0x1000, 4 + 2 * QSIZE);

	desc->addr = htole64(gpa);
	desc->len = htole32(len);
	desc->flags = htole16(write ? VIRTQ_DESC_F_WRITE : 0);
	desc->next = 0;
	a->ring[avail_idx[q] % QSIZE] = htole16(d);
	avail_idx[q]++;
	__atomic_store_n(&a->idx, htole16(avail_idx[q]), __ATOMIC_RELEASE);
	bar_wr(VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT_VAL * q, 2, q);
}

static bool wait_used(unsigned int q, uint16_t idx, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (used_idx(q) == idx)
			return true;
		usleep(1000);
	}
	return false;
}

static long long memfd_bytes(void)
{
	struct stat st;

	cr_assert_eq(fstat(mem.memfd, &st), 0);
	return (long long)st.st_blocks * 512;
}

/* Fills n page numbers starting at pfn into the buffer at BUF_GPA. */
static uint32_t pfn_buffer(uint64_t pfn, uint32_t n)
{
	uint8_t *b = gp(BUF_GPA, 4ULL * n);

	for (uint32_t i = 0; i < n; i++)
		put(b + 4 * i, 4, pfn + i);
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
	uint64_t f = device_features();

	cr_assert_eq(pci_config_get16(d, PCI_DEVICE_ID), 0x1045);
	cr_assert_eq(bar_rd(VIRTIO_PCI_COMMON_NUMQ, 2), 2);
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
	uint64_t f = device_features();

	cr_assert_eq(bar_rd(VIRTIO_PCI_COMMON_NUMQ, 2), 4);
	cr_assert_eq(f & (F_STATS | F_REPORT | F_OOM), F_STATS | F_REPORT | F_OOM);
	cr_assert_not(f & (1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST));
}

Test(vbal, config_target_and_actual)
{
	uint8_t gen;

	cr_assert_eq(bar_rd(VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4), 2048);
	cr_assert_eq(bar_rd(VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4), 0);
	bar_wr(VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4, 1000);
	bar_wr(VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4, 7);
	cr_assert_eq(bar_rd(VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4), 1000);
	cr_assert_eq(bar_rd(VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4), 2048,
		     "num_pages is the device's");
	cr_assert_eq(stats().actual, 1000);

	bring_up(0, 2);
	gen = (uint8_t)bar_rd(VIRTIO_PCI_COMMON_CFGGEN, 1);
	virtio_balloon_set_target(bal, 32 * MiB);
	cr_assert_eq(bar_rd(VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_NUM_PAGES, 4), 8192);
	for (int i = 0; i < 2000 && (uint8_t)bar_rd(VIRTIO_PCI_COMMON_CFGGEN, 1) == gen; i++)
		usleep(1000);
	cr_assert_neq((uint8_t)bar_rd(VIRTIO_PCI_COMMON_CFGGEN, 1), gen,
		      "a new target is a configuration change");
	set_status(0);
	cr_assert_eq(stats().actual, 0, "a reset empties the balloon");
}

Test(vbal, inflate_gives_memory_back)
{
	long long before;

	memset(gp(BIG_GPA, 16 * MiB), 0x5a, 16 * MiB);
	before = memfd_bytes();
	cr_assert_geq(before, 16 * MiB);
	bring_up(0, 2);
	offer(0, BUF_GPA, pfn_buffer(BIG_GPA >> 12, 4096), false);
	cr_assert(wait_used(0, 1, 2000));
	cr_assert_leq(memfd_bytes(), before - 15 * MiB, "%lld -> %lld bytes", before,
		      memfd_bytes());
	cr_assert_eq(*(uint8_t *)gp(BIG_GPA + 8 * MiB, 1), 0, "released pages read as zeroes");
	cr_assert_eq(stats().inflated, 4096);

	offer(1, BUF_GPA, pfn_buffer(BIG_GPA >> 12, 100), false);
	cr_assert(wait_used(1, 1, 2000));
	cr_assert_eq(stats().deflated, 100);
}

Test(vbal, bad_pfns_are_skipped)
{
	uint8_t *b = gp(BUF_GPA, 16);

	memset(gp(BIG_GPA, 4096), 0x5a, 4096);
	bring_up(0, 2);
	put(b, 4, RAM >> 12);	      /* first page past the end */
	put(b + 4, 4, 0xffffffff);    /* far out */
	put(b + 8, 4, BIG_GPA >> 12); /* fine */
	put(b + 12, 4, 0xdeadbeef);   /* far out again */
	offer(0, BUF_GPA, 15, false); /* the last page number is cut short: ignored */
	cr_assert(wait_used(0, 1, 2000));
	cr_assert_eq(stats().inflated, 1);
	cr_assert_eq(stats().bad_pfns, 2);
	cr_assert_eq(*(uint8_t *)gp(BIG_GPA, 1), 0);
	cr_assert_not(bar_rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

Test(vbal, malformed_ring_needs_reset)
{
	struct virtq_avail *a = gp(Q_GPA(0) + 0x1000, 4 + 2 * QSIZE);

	bring_up(0, 2);
	a->ring[0] = htole16(QSIZE + 1);
	__atomic_store_n(&a->idx, htole16(1), __ATOMIC_RELEASE);
	bar_wr(VIRTIO_PCI_NOTIFY_OFF, 2, 0);
	for (int i = 0; i < 2000; i++) {
		if (bar_rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
			return;
		usleep(1000);
	}
	cr_assert_fail("no DEVICE_NEEDS_RESET");
}

static void stat_put(uint8_t *p, uint16_t tag, uint64_t v)
{
	put(p, 2, tag);
	put(p + 2, 8, v);
}

Test(vbal_full, stats_are_parsed_and_requested_again)
{
	uint8_t *b = gp(BUF_GPA, 40);
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

	memset(gp(BIG_GPA, 8 * MiB), 0x77, 8 * MiB);
	before = memfd_bytes();
	/* Unaligned on both ends: only the whole pages inside are released. */
	offer(q, BIG_GPA + 100, 8 * MiB - 200, true);
	cr_assert(wait_used(q, 1, 2000));
	cr_assert_leq(memfd_bytes(), before - 7 * MiB);
	cr_assert_eq(*(uint8_t *)gp(BIG_GPA + 4 * MiB, 1), 0);
	cr_assert_eq(*(uint8_t *)gp(BIG_GPA + 100, 1), 0x77, "a partial page is kept");
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
	struct virtio_pci *vp = virtio_balloon_transport(bal);
	struct snap_writer w;
	struct snap_file f;
	char state[] = "/tmp/bunshin-vbal-state.XXXXXX";
	int fd = mkstemp(state), ret;

	cr_assert_geq(fd, 0);
	close(fd);
	snap_writer_init(&w);
	cr_assert_eq(virtio_pci_save(vp, &w, "virtio-balloon0"), 0);
	cr_assert_eq(snap_save(&w, state, &err), 0, "%s", err.msg);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&f, state, &err), 0, "%s", err.msg);
	ret = virtio_pci_restore(vp, &f, "virtio-balloon0", &err);
	snap_close(&f);
	unlink(state);
	return ret;
}

Test(vbal_full, held_stats_buffer_survives_a_restore)
{
	uint8_t *b = gp(BUF_GPA, 10);

	bring_up(F_STATS | F_REPORT, 4);
	bar_wr(VIRTIO_PCI_DEVICE_OFF + VIRTIO_BALLOON_CFG_ACTUAL, 4, 77);
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
