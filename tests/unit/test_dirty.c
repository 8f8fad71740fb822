// SPDX-License-Identifier: MIT
/*
 * Dirty tracking without KVM: the bitmap helpers kvm/dirty.c merges and
 * walks with, the gmem's bitmap of the VMM's own writes, and virtq marking
 * what a device completes (used ring and writable buffers).
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <string.h>

#include "../../src/common/util.h"
#include "../../src/vmm/kvm/dirty.h"
#include "../../src/vmm/kvm/gmem.h"
#include "../../src/vmm/virtio/virtq.h"

#define RAM    (4 * MiB)
#define NPAGES (RAM / GMEM_PAGE_SIZE)

static bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] & (1ULL << (i % 64));
}

Test(dirty, merge_whole_words_and_a_partial_last_one)
{
	uint64_t dst[4] = {0x1, 0, 0, 0}, src[2] = {~0ULL, ~0ULL};

	/* 70 pages at bit 64: word 1 whole, 6 bits of word 2; bits past npages are ignored. */
	dirty_merge(dst, 64, src, 70);
	cr_assert_eq(dst[0], 0x1);
	cr_assert_eq(dst[1], ~0ULL);
	cr_assert_eq(dst[2], 0x3f);
	cr_assert_eq(dst[3], 0);
	cr_assert_eq(dirty_count(dst, 4), 1 + 64 + 6);
}

Test(dirty, merge_at_an_unaligned_bit)
{
	uint64_t dst[2] = {0}, src[1] = {0x5}; /* pages 0 and 2 */

	dirty_merge(dst, 62, src, 3);
	cr_assert(bit(dst, 62));
	cr_assert(!bit(dst, 63));
	cr_assert(bit(dst, 64));
	cr_assert_eq(dirty_count(dst, 2), 2);
}

Test(dirty, runs_are_found_split_and_bounded)
{
	uint64_t b[3] = {0}, pos = 0;

	b[0] = 0xf0;	   /* pages 4-7 */
	b[1] = 1ULL << 63; /* page 127 ... */
	b[2] = 0x3;	   /* ... to 129 */
	cr_assert_eq(dirty_next_run(b, 192, &pos, 256), 4);
	cr_assert_eq(pos, 4);
	pos += 4;
	cr_assert_eq(dirty_next_run(b, 192, &pos, 2), 2, "max bounds a run");
	cr_assert_eq(pos, 127);
	pos += 2;
	cr_assert_eq(dirty_next_run(b, 192, &pos, 256), 1);
	cr_assert_eq(pos, 129);
	pos += 1;
	cr_assert_eq(dirty_next_run(b, 192, &pos, 256), 0);
	/* npages cuts a run short */
	pos = 0;
	b[0] = ~0ULL;
	cr_assert_eq(dirty_next_run(b, 10, &pos, 256), 10);
}

static struct gmem mem;
static struct error err;
static uint64_t *bits;

static void setup(void)
{
	cr_assert_eq(gmem_init(&mem, RAM, &err), 0, "%s", err.msg);
	bits = calloc(dirty_words(NPAGES), sizeof(uint64_t));
	cr_assert_not_null(bits);
}

static void teardown(void)
{
	__atomic_store_n(&mem.tracking, false, __ATOMIC_RELEASE);
	gmem_destroy(&mem);
	free(bits);
}

static void track(void)
{
	mem.dirty = bits;
	__atomic_store_n(&mem.tracking, true, __ATOMIC_RELEASE);
}

TestSuite(gmem_dirty, .init = setup, .fini = teardown);

Test(gmem_dirty, nothing_is_marked_while_tracking_is_off)
{
	uint8_t buf[16] = {1};

	gmem_mark_dirty(&mem, 0x5000, 1);
	cr_assert_eq(gmem_write(&mem, 0x6000, buf, sizeof(buf)), 0);
	cr_assert_eq(dirty_count(bits, dirty_words(NPAGES)), 0);
}

Test(gmem_dirty, ranges_mark_every_page_they_touch)
{
	uint8_t buf[8] = {1};

	track();
	gmem_mark_dirty(&mem, 0x5fff, 2); /* straddles pages 5 and 6 */
	cr_assert_eq(gmem_write(&mem, 0x10000 + 4095, buf, 1), 0);
	gmem_mark_dirty(&mem, RAM - 1, 2); /* crosses the end: refused, nothing marked */
	gmem_mark_dirty(&mem, 0, 0);
	cr_assert(bit(bits, 5) && bit(bits, 6) && bit(bits, 0x10));
	cr_assert_eq(dirty_count(bits, dirty_words(NPAGES)), 3);
}

Test(gmem_dirty, a_discard_counts_as_a_write)
{
	track();
	cr_assert_eq(gmem_discard(&mem, 0x20000, 2 * GMEM_PAGE_SIZE), 0);
	cr_assert(bit(bits, 0x20) && bit(bits, 0x21));
	cr_assert_eq(dirty_count(bits, dirty_words(NPAGES)), 2);
}

/* A device completing a chain: its writable buffers and the used ring are marked, not the rest. */
Test(gmem_dirty, virtq_marks_what_the_device_wrote)
{
	struct virtq q;
	struct virtq_config c = {
		.size = 8, .desc_gpa = 0x10000, .avail_gpa = 0x11000, .used_gpa = 0x12000};
	struct virtq_desc *d = gmem_ptr(&mem, c.desc_gpa, 16 * 8);
	struct virtq_avail *av = gmem_ptr(&mem, c.avail_gpa, 4 + 2 * 8);
	struct iovec iov[4];
	struct virtq_elem e = {.iov = iov, .max_segs = 4};

	virtq_init(&q, &mem);
	cr_assert_eq(virtq_configure(&q, &c, &err), 0, "%s", err.msg);
	/* readable at page 0x40, writable at pages 0x50-0x51 */
	d[0] = (struct virtq_desc){htole64(0x40000), htole32(64), htole16(VIRTQ_DESC_F_NEXT),
				   htole16(1)};
	d[1] = (struct virtq_desc){htole64(0x50800), htole32(4096), htole16(VIRTQ_DESC_F_WRITE), 0};
	av->ring[0] = 0;
	av->idx = htole16(1);
	cr_assert_eq(virtq_pop(&q, &e, &err), 1, "%s", err.msg);
	track();
	cr_assert_eq(virtq_push(&q, e.head, 10), 0);
	cr_assert(bit(bits, 0x50) && bit(bits, 0x51), "the writable buffer");
	cr_assert(bit(bits, 0x12), "the used ring");
	cr_assert(!bit(bits, 0x40), "a buffer the device only read");
	cr_assert(!bit(bits, 0x10) && !bit(bits, 0x11), "rings the device does not write");
	cr_assert_eq(dirty_count(bits, dirty_words(NPAGES)), 3);
}
