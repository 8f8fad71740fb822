// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "../../src/common/util.h"
#include "../../src/vmm/kvm/gmem.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/virtq.h"

/*
 * Rings are built in a real gmem (a memfd; no KVM needed), the way a driver
 * lays them out, and read back through the module.
 */

#define DESC_GPA  0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA  0x30000ULL
#define IND_GPA	  0x40000ULL /* indirect tables */
#define BUF_GPA	  0x100000ULL
#define RAM	  (4 * MiB)

#define F_INDIRECT (1ULL << VIRTIO_F_INDIRECT_DESC)
#define F_EVENT	   (1ULL << VIRTIO_F_EVENT_IDX)

static struct gmem mem;
static struct virtq q;
static struct iovec iov[16];
static struct virtq_elem elem;
static struct error err;
static uint16_t drv_avail_idx; /* the driver's copy of avail->idx */

static void setup(void)
{
	cr_assert_eq(gmem_init(&mem, RAM, &err), 0, "%s", err.msg);
	virtq_init(&q, &mem);
	memset(&elem, 0, sizeof(elem));
	elem.iov = iov;
	elem.max_segs = ARRAY_SIZE(iov);
	drv_avail_idx = 0;
	error_clear(&err);
}

static void teardown(void)
{
	gmem_destroy(&mem);
}

TestSuite(virtq, .init = setup, .fini = teardown);

static struct virtq_config cfg(uint32_t size, uint64_t features)
{
	return (struct virtq_config){.size = size,
				     .desc_gpa = DESC_GPA,
				     .avail_gpa = AVAIL_GPA,
				     .used_gpa = USED_GPA,
				     .features = features};
}

static void configure(uint32_t size, uint64_t features)
{
	struct virtq_config c = cfg(size, features);

	cr_assert_eq(virtq_configure(&q, &c, &err), 0, "%s", err.msg);
}

static void *ptr(uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(&mem, gpa, len);

	cr_assert_not_null(p);
	return p;
}

static void put_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct virtq_desc d = {.addr = htole64(addr),
			       .len = htole32(len),
			       .flags = htole16(flags),
			       .next = htole16(next)};

	memcpy(ptr(table + 16ULL * i, 16), &d, 16);
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	put_desc(DESC_GPA, i, addr, len, flags, next);
}

static struct virtq_avail *avail(void)
{
	return ptr(AVAIL_GPA, 4);
}

static struct virtq_used *used(void)
{
	return ptr(USED_GPA, 4);
}

/* The driver side: place head in the ring, then publish the index. */
static void offer(uint16_t head)
{
	uint32_t size = q.size;

	avail()->ring[drv_avail_idx % size] = htole16(head);
	drv_avail_idx++;
	__atomic_store_n(&avail()->idx, htole16(drv_avail_idx), __ATOMIC_RELEASE);
}

static void set_used_event(uint16_t v)
{
	uint16_t *p = ptr(AVAIL_GPA + 4 + 2ULL * q.size, 2);

	*p = htole16(v);
}

static uint16_t avail_event(void)
{
	return le16toh(*(uint16_t *)ptr(USED_GPA + 4 + 8ULL * q.size, 2));
}

static void start_at(uint16_t idx)
{
	struct virtq_state st = {.last_avail_idx = idx, .used_idx = idx};

	cr_assert_eq(virtq_set_state(&q, &st, &err), 0, "%s", err.msg);
	drv_avail_idx = idx;
	avail()->idx = htole16(idx);
	used()->idx = htole16(idx);
}

/* Pops expecting an error, then checks the queue stays broken with it. */
static void expect_broken(int code)
{
	int rc = virtq_pop(&q, &elem, &err);

	cr_assert_eq(rc, code, "pop returned %d (%s), expected %d", rc, err.msg, code);
	cr_assert_eq(err.code, -code);
	cr_assert_eq(virtq_broken(&q), code);
	cr_assert_eq(virtq_pop(&q, &elem, &err), code, "a broken queue pops nothing more");
	cr_assert_not(virtq_has_avail(&q));
}

/* ---- configuration ---------------------------------------------------- */

Test(virtq, configure_rejects_bad_sizes)
{
	uint32_t bad[] = {0, 3, 6, 65536, 65535, 32769};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct virtq_config c = cfg(bad[i], 0);

		cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL, "size %u", bad[i]);
		cr_assert(strstr(err.msg, "power of two"), "%s", err.msg);
		cr_assert_not(virtq_is_ready(&q));
	}
	configure(1, 0);
	configure(32768, 0);
}

Test(virtq, configure_checks_alignment)
{
	struct virtq_config c = cfg(8, 0);

	c.desc_gpa += 8;
	cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL);
	cr_assert(strstr(err.msg, "descriptor table"), "%s", err.msg);
	c = cfg(8, 0);
	c.avail_gpa += 1;
	cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL);
	cr_assert(strstr(err.msg, "available ring"), "%s", err.msg);
	c = cfg(8, 0);
	c.used_gpa += 2;
	cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL);
	cr_assert(strstr(err.msg, "aligned"), "%s", err.msg);
	c = cfg(8, 0);
	c.avail_gpa += 2; /* 2-byte alignment is enough for the available ring */
	cr_assert_eq(virtq_configure(&q, &c, &err), 0, "%s", err.msg);
}

Test(virtq, configure_checks_whole_ring_extents)
{
	struct virtq_config c = cfg(256, 0);

	/* The used ring ends exactly at the end of RAM: fine without EVENT_IDX... */
	c.used_gpa = RAM - (4 + 8 * 256);
	cr_assert_eq(virtq_configure(&q, &c, &err), 0, "%s", err.msg);
	/* ...but avail_event would lie beyond it. */
	c.features = F_EVENT;
	cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL);
	cr_assert(strstr(err.msg, "used ring"), "%s", err.msg);
	cr_assert_not(virtq_is_ready(&q), "a failed configure leaves the queue disabled");

	c = cfg(256, 0);
	c.avail_gpa = RAM - (4 + 2 * 256);
	cr_assert_eq(virtq_configure(&q, &c, &err), 0, "%s", err.msg);
	c.features = F_EVENT;
	cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL);
	cr_assert(strstr(err.msg, "available ring"), "%s", err.msg);

	c = cfg(256, 0);
	c.desc_gpa = RAM - 16 * 255;
	cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL);
	c.desc_gpa = UINT64_MAX - 15;
	cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL);
	c = cfg(32768, F_EVENT);
	c.used_gpa = RAM - 4096;
	cr_assert_eq(virtq_configure(&q, &c, &err), -EINVAL);
}

Test(virtq, not_ready_queue_does_nothing)
{
	cr_assert_eq(virtq_pop(&q, &elem, &err), -ENODEV);
	cr_assert_eq(virtq_push(&q, 0, 0), -ENODEV);
	cr_assert_not(virtq_needs_notify(&q));
	cr_assert_not(virtq_has_avail(&q));
	cr_assert_not(virtq_set_notify(&q, true));
}

/* ---- popping well-formed chains ---------------------------------------- */

Test(virtq, empty_ring_pops_nothing)
{
	configure(8, 0);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 0);
	cr_assert_not(virtq_has_avail(&q));
}

Test(virtq, single_descriptor)
{
	configure(8, 0);
	desc(3, BUF_GPA, 100, 0, 0);
	offer(3);
	cr_assert(virtq_has_avail(&q));
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(elem.head, 3);
	cr_assert_eq(elem.out_num, 1);
	cr_assert_eq(elem.in_num, 0);
	cr_assert_eq(elem.out_len, 100);
	cr_assert_eq(elem.in_len, 0);
	cr_assert_eq(iov[0].iov_base, gmem_ptr(&mem, BUF_GPA, 100));
	cr_assert_eq(iov[0].iov_len, 100);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 0);
}

Test(virtq, readable_then_writable_chain)
{
	configure(8, 0);
	desc(0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 5);
	desc(5, BUF_GPA + 0x1000, 512, VIRTQ_DESC_F_NEXT, 2);
	desc(2, BUF_GPA + 0x2000, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 7);
	desc(7, BUF_GPA + 0x3000, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(elem.out_num, 2);
	cr_assert_eq(elem.in_num, 2);
	cr_assert_eq(elem.out_len, 16 + 512);
	cr_assert_eq(elem.in_len, 4096 + 1);
	cr_assert_eq(iov[0].iov_base, gmem_ptr(&mem, BUF_GPA, 1));
	cr_assert_eq(iov[1].iov_base, gmem_ptr(&mem, BUF_GPA + 0x1000, 1));
	cr_assert_eq(iov[2].iov_base, gmem_ptr(&mem, BUF_GPA + 0x2000, 1));
	cr_assert_eq(iov[2].iov_len, 4096);
	cr_assert_eq(iov[3].iov_base, gmem_ptr(&mem, BUF_GPA + 0x3000, 1));
}

Test(virtq, chain_of_exactly_queue_size_is_fine)
{
	configure(4, 0);
	for (uint16_t i = 0; i < 4; i++)
		desc(i, BUF_GPA + i * 64, 64, i < 3 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(elem.out_num, 4);
}

Test(virtq, several_chains_in_order)
{
	configure(8, 0);
	for (uint16_t i = 0; i < 8; i++) {
		desc(i, BUF_GPA + i * 0x100, i + 1, 0, 0);
		offer(7 - i);
	}
	for (uint16_t i = 0; i < 8; i++) {
		cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
		cr_assert_eq(elem.head, 7 - i);
		cr_assert_eq(elem.out_len, 8 - i);
	}
	cr_assert_eq(virtq_pop(&q, &elem, &err), 0);
}

Test(virtq, zero_length_descriptors_are_skipped)
{
	configure(8, 0);
	/* Its address is never looked at: nothing is read or written there. */
	desc(0, UINT64_MAX, 0, VIRTQ_DESC_F_NEXT, 1);
	desc(1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	desc(2, 0xdead0000000ULL, 0, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(elem.out_num, 1);
	cr_assert_eq(elem.in_num, 0);
	cr_assert_eq(elem.out_len, 8);
}

Test(virtq, indirect_table)
{
	configure(8, F_INDIRECT);
	put_desc(IND_GPA, 0, BUF_GPA, 10, VIRTQ_DESC_F_NEXT, 2);
	put_desc(IND_GPA, 2, BUF_GPA + 0x100, 20, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	put_desc(IND_GPA, 1, BUF_GPA + 0x200, 30, VIRTQ_DESC_F_WRITE, 0);
	/* The WRITE flag on the descriptor naming the table is ignored (spec). */
	desc(4, IND_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	offer(4);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(elem.head, 4);
	cr_assert_eq(elem.out_num, 1);
	cr_assert_eq(elem.in_num, 2);
	cr_assert_eq(elem.out_len, 10);
	cr_assert_eq(elem.in_len, 50);
	cr_assert_eq(iov[1].iov_base, gmem_ptr(&mem, BUF_GPA + 0x100, 1));
	cr_assert_eq(iov[2].iov_base, gmem_ptr(&mem, BUF_GPA + 0x200, 1));
}

Test(virtq, direct_descriptors_then_an_indirect_table)
{
	configure(8, F_INDIRECT);
	desc(0, BUF_GPA, 12, VIRTQ_DESC_F_NEXT, 1);
	desc(1, IND_GPA + 8, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0); /* unaligned table: allowed */
	put_desc(IND_GPA + 8, 0, BUF_GPA + 0x100, 4, VIRTQ_DESC_F_NEXT, 1);
	put_desc(IND_GPA + 8, 1, BUF_GPA + 0x200, 6, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(elem.out_num, 2);
	cr_assert_eq(elem.in_num, 1);
	cr_assert_eq(elem.out_len, 16);
	cr_assert_eq(elem.in_len, 6);
}

Test(virtq, indirect_table_longer_than_the_queue)
{
	configure(2, F_INDIRECT);
	for (uint16_t i = 0; i < 16; i++)
		put_desc(IND_GPA, i, BUF_GPA + i * 8, 8, i < 15 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	desc(1, IND_GPA, 16 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(1);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(elem.out_num, 16);
	cr_assert_eq(elem.out_len, 128);
}

/* ---- used ring and index wraparound ------------------------------------ */

Test(virtq, push_writes_element_then_index)
{
	configure(8, 0);
	desc(6, BUF_GPA, 64, VIRTQ_DESC_F_WRITE, 0);
	offer(6);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	cr_assert_eq(virtq_push(&q, elem.head, 40), 0);
	cr_assert_eq(le16toh(used()->idx), 1);
	cr_assert_eq(le32toh(used()->ring[0].id), 6);
	cr_assert_eq(le32toh(used()->ring[0].len), 40);
}

Test(virtq, push_rejects_what_was_not_popped)
{
	struct virtq_used_elem batch[2] = {{.id = 0, .len = 1}, {.id = 9, .len = 1}};

	configure(8, 0);
	cr_assert_eq(virtq_push(&q, 0, 0), -ENOSPC, "nothing was popped");
	desc(0, BUF_GPA, 1, 0, 0);
	desc(1, BUF_GPA, 1, 0, 0);
	offer(0);
	offer(1);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	cr_assert_eq(virtq_push_batch(&q, batch, 2), -EINVAL, "head 9 >= size 8");
	cr_assert_eq(le16toh(used()->idx), 0, "a bad batch writes nothing");
	cr_assert_eq(used()->ring[0].len, 0);
	batch[1].id = 1;
	cr_assert_eq(virtq_push_batch(&q, batch, 2), 0);
	cr_assert_eq(le16toh(used()->idx), 2);
	cr_assert_eq(virtq_push(&q, 0, 0), -ENOSPC);
}

Test(virtq, indices_wrap_at_16_bits)
{
	configure(4, 0);
	start_at(65534);
	for (uint16_t i = 0; i < 4; i++)
		desc(i, BUF_GPA + i * 16, 16, VIRTQ_DESC_F_WRITE, 0);
	for (int round = 0; round < 3; round++) {
		for (uint16_t i = 0; i < 4; i++)
			offer(i);
		for (uint16_t i = 0; i < 4; i++) {
			cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
			cr_assert_eq(elem.head, i);
			cr_assert_eq(virtq_push(&q, elem.head, i), 0);
		}
		cr_assert_eq(virtq_pop(&q, &elem, &err), 0);
	}
	/* 65534 + 12 wraps to 10; the used ring slots went 2,3,0,1,... */
	cr_assert_eq(le16toh(used()->idx), 10);
	cr_assert_eq(le32toh(used()->ring[(65534 + 11) % 4].id), 3);

	struct virtq_state st;
	virtq_get_state(&q, &st);
	cr_assert_eq(st.last_avail_idx, 10);
	cr_assert_eq(st.used_idx, 10);
}

Test(virtq, state_import_checks_in_flight_count)
{
	struct virtq_state st = {.last_avail_idx = 9, .used_idx = 0};

	cr_assert_eq(virtq_set_state(&q, &st, &err), -EINVAL, "not configured yet");
	configure(8, 0);
	cr_assert_eq(virtq_set_state(&q, &st, &err), -EINVAL);
	st.last_avail_idx = 3;
	st.used_idx = 65531; /* 8 in flight across the wrap: full but legal */
	cr_assert_eq(virtq_set_state(&q, &st, &err), 0, "%s", err.msg);
	st.used_idx = 4; /* used ahead of avail */
	cr_assert_eq(virtq_set_state(&q, &st, &err), -EINVAL);
}

/* ---- notifications ------------------------------------------------------ */

static void pop_push_one(uint16_t head)
{
	desc(head, BUF_GPA, 8, 0, 0);
	offer(head);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(virtq_push(&q, elem.head, 0), 0);
}

Test(virtq, no_interrupt_flag)
{
	configure(8, 0);
	cr_assert_not(virtq_needs_notify(&q), "nothing pushed yet");
	pop_push_one(0);
	cr_assert(virtq_needs_notify(&q));
	cr_assert_not(virtq_needs_notify(&q), "already decided for that push");
	avail()->flags = htole16(VIRTQ_AVAIL_F_NO_INTERRUPT);
	pop_push_one(1);
	cr_assert_not(virtq_needs_notify(&q));
	avail()->flags = 0;
	pop_push_one(2);
	cr_assert(virtq_needs_notify(&q));
}

Test(virtq, event_idx_ignores_no_interrupt_flag_and_follows_used_event)
{
	configure(8, F_EVENT);
	avail()->flags = htole16(VIRTQ_AVAIL_F_NO_INTERRUPT);
	set_used_event(0);
	pop_push_one(0); /* used->idx 0 -> 1 crosses used_event 0 */
	cr_assert(virtq_needs_notify(&q));
	set_used_event(3);
	pop_push_one(1); /* 1 -> 2 */
	cr_assert_not(virtq_needs_notify(&q));
	pop_push_one(2); /* 2 -> 3 */
	cr_assert_not(virtq_needs_notify(&q));
	pop_push_one(3); /* 3 -> 4: the entry at index 3 was written */
	cr_assert(virtq_needs_notify(&q));
	pop_push_one(4);
	cr_assert_not(virtq_needs_notify(&q), "used_event left behind");
}

Test(virtq, event_idx_batch_crossing_the_event)
{
	struct virtq_used_elem batch[4];

	configure(8, F_EVENT);
	for (uint16_t i = 0; i < 4; i++) {
		desc(i, BUF_GPA, 8, 0, 0);
		offer(i);
		cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
		batch[i] = (struct virtq_used_elem){.id = i, .len = 0};
	}
	set_used_event(2);
	cr_assert_eq(virtq_push_batch(&q, batch, 4), 0); /* 0 -> 4 passes 2 */
	cr_assert(virtq_needs_notify(&q));
}

Test(virtq, event_idx_wraps)
{
	configure(8, F_EVENT);
	start_at(65533);
	set_used_event(65535);
	virtq_needs_notify(&q); /* the first decision after an import is a free one */
	pop_push_one(0);	/* 65533 -> 65534 */
	cr_assert_not(virtq_needs_notify(&q));
	pop_push_one(1); /* 65534 -> 65535 */
	cr_assert_not(virtq_needs_notify(&q));
	pop_push_one(2); /* 65535 -> 0: entry 65535 written */
	cr_assert(virtq_needs_notify(&q));
	set_used_event(1);
	pop_push_one(3); /* 0 -> 1 */
	cr_assert_not(virtq_needs_notify(&q));
	pop_push_one(4); /* 1 -> 2 */
	cr_assert(virtq_needs_notify(&q));
}

Test(virtq, event_idx_after_state_import_notifies_once)
{
	configure(8, F_EVENT);
	start_at(100);
	set_used_event(50); /* far behind: would never fire by itself soon */
	pop_push_one(0);
	cr_assert(virtq_needs_notify(&q), "unknown history: notify");
	pop_push_one(1);
	cr_assert_not(virtq_needs_notify(&q));
}

Test(virtq, set_notify_without_event_idx_uses_used_flags)
{
	configure(8, 0);
	cr_assert_not(virtq_set_notify(&q, false));
	cr_assert_eq(le16toh(used()->flags), VIRTQ_USED_F_NO_NOTIFY);
	cr_assert_not(virtq_set_notify(&q, true), "nothing pending");
	cr_assert_eq(used()->flags, 0);
	desc(0, BUF_GPA, 8, 0, 0);
	offer(0);
	virtq_set_notify(&q, false);
	cr_assert(virtq_set_notify(&q, true), "a buffer arrived meanwhile: pop again");
}

Test(virtq, set_notify_with_event_idx_uses_avail_event)
{
	configure(8, F_EVENT);
	desc(0, BUF_GPA, 8, 0, 0);
	offer(0);
	offer(0);
	cr_assert(virtq_set_notify(&q, true));
	cr_assert_eq(avail_event(), 0);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	cr_assert_eq(avail_event(), 1, "popping with notifications on moves avail_event");
	cr_assert_not(virtq_set_notify(&q, false));
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	cr_assert_eq(avail_event(), 1, "not while they are off");
	cr_assert_eq(used()->flags, 0, "flags untouched with EVENT_IDX");
	cr_assert_not(virtq_set_notify(&q, true));
	cr_assert_eq(avail_event(), 2);
}

/* ---- malicious rings ---------------------------------------------------- */

Test(virtq, avail_idx_ahead_by_more_than_the_size)
{
	configure(8, 0);
	avail()->idx = htole16(9);
	expect_broken(-EOVERFLOW);
}

Test(virtq, avail_idx_going_backwards)
{
	configure(8, 0);
	desc(0, BUF_GPA, 8, 0, 0);
	offer(0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	avail()->idx = htole16(1);
	expect_broken(-EOVERFLOW);
}

Test(virtq, more_chains_than_can_be_outstanding)
{
	configure(2, 0);
	desc(0, BUF_GPA, 8, 0, 0);
	desc(1, BUF_GPA, 8, 0, 0);
	offer(0);
	offer(1);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	offer(0); /* head 0 is still in flight: the driver reused it */
	expect_broken(-EOVERFLOW);
}

Test(virtq, head_out_of_range)
{
	configure(8, 0);
	offer(8);
	expect_broken(-ERANGE);
}

Test(virtq, next_out_of_range)
{
	configure(8, 0);
	desc(0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 8);
	offer(0);
	expect_broken(-ENXIO);
}

Test(virtq, descriptor_loop)
{
	configure(8, 0);
	desc(0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	offer(0);
	expect_broken(-ELOOP);
}

Test(virtq, descriptor_self_loop_with_zero_length)
{
	configure(32768, 0);
	elem.max_segs = 0; /* zero-length descriptors need no segment */
	desc(5, BUF_GPA, 0, VIRTQ_DESC_F_NEXT, 5);
	offer(5);
	expect_broken(-ELOOP);
}

Test(virtq, indirect_not_negotiated)
{
	configure(8, 0);
	put_desc(IND_GPA, 0, BUF_GPA, 8, 0, 0);
	desc(0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken(-EOPNOTSUPP);
}

Test(virtq, indirect_inside_indirect)
{
	configure(8, F_INDIRECT);
	put_desc(IND_GPA, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken(-EMLINK);
}

Test(virtq, indirect_with_next)
{
	configure(8, F_INDIRECT);
	put_desc(IND_GPA, 0, BUF_GPA, 8, 0, 0);
	desc(0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	desc(1, BUF_GPA, 8, 0, 0);
	offer(0);
	expect_broken(-EBADMSG);
}

static void bad_indirect_len(uint32_t len)
{
	configure(8, F_INDIRECT);
	desc(0, 0, len, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken(-EMSGSIZE);
	virtq_reset(&q);
	drv_avail_idx = 0;
	avail()->idx = 0;
}

Test(virtq, indirect_table_lengths)
{
	bad_indirect_len(0);
	bad_indirect_len(17);
	bad_indirect_len(8);
	bad_indirect_len((VIRTQ_INDIRECT_MAX + 1) * 16);
	bad_indirect_len(UINT32_MAX & ~15U);
}

Test(virtq, indirect_table_outside_ram)
{
	configure(8, F_INDIRECT);
	desc(0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken(-EFAULT);
}

Test(virtq, indirect_next_out_of_range)
{
	configure(8, F_INDIRECT);
	put_desc(IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	put_desc(IND_GPA, 2, BUF_GPA, 8, 0, 0); /* exists in memory, not in the table */
	desc(0, IND_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken(-ENXIO);
}

Test(virtq, indirect_loop)
{
	configure(8, F_INDIRECT);
	put_desc(IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(IND_GPA, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	desc(0, IND_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken(-ELOOP);
}

Test(virtq, buffer_outside_ram)
{
	configure(8, 0);
	desc(0, RAM - 8, 9, 0, 0);
	offer(0);
	expect_broken(-EFAULT);
}

Test(virtq, buffer_address_overflows)
{
	configure(8, 0);
	desc(0, UINT64_MAX - 10, 100, 0, 0);
	offer(0);
	expect_broken(-EFAULT);
}

Test(virtq, readable_after_writable)
{
	configure(8, 0);
	desc(0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(1, BUF_GPA, 8, 0, 0);
	offer(0);
	expect_broken(-EPROTO);
}

Test(virtq, too_many_segments)
{
	configure(8, 0);
	elem.max_segs = 2;
	desc(0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	desc(2, BUF_GPA, 8, 0, 0);
	offer(0);
	expect_broken(-E2BIG);
}

Test(virtq, total_length_above_4g)
{
	struct gmem big;

	/* Sparse: a 3 GiB memfd costs nothing until touched. */
	cr_assert_eq(gmem_init(&big, 3 * GiB, &err), 0, "%s", err.msg);
	gmem_destroy(&mem);
	mem = big;
	virtq_init(&q, &mem);
	configure(8, 0);
	desc(0, 0, 0x80000000U, VIRTQ_DESC_F_NEXT, 1);
	desc(1, 0, 0x7fffffffU, VIRTQ_DESC_F_NEXT, 2); /* exactly UINT32_MAX so far */
	desc(2, 0, 1, 0, 0);
	offer(0);
	expect_broken(-EFBIG);
}

Test(virtq, reset_clears_broken)
{
	configure(8, 0);
	offer(8);
	expect_broken(-ERANGE);
	virtq_reset(&q);
	cr_assert_eq(virtq_broken(&q), 0);
	cr_assert_not(virtq_is_ready(&q));
	cr_assert_eq(virtq_pop(&q, &elem, &err), -ENODEV);

	/* The driver re-initialises its rings after a reset. */
	drv_avail_idx = 0;
	avail()->idx = 0;
	configure(8, 0);
	desc(1, BUF_GPA, 8, 0, 0);
	offer(1);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(elem.head, 1);
}

Test(virtq, broken_queue_still_completes_in_flight_requests)
{
	configure(8, 0);
	desc(0, BUF_GPA, 8, 0, 0);
	offer(0);
	offer(9);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1);
	expect_broken(-ERANGE);
	cr_assert_eq(virtq_push(&q, 0, 0), 0);
	cr_assert_eq(le16toh(used()->idx), 1);
}

Test(virtq, buffers_above_the_pci_hole)
{
	struct gmem big;

	cr_assert_eq(gmem_init(&big, 5 * GiB, &err), 0, "%s", err.msg);
	gmem_destroy(&mem);
	mem = big;
	virtq_init(&q, &mem);
	configure(8, 0);
	desc(0, LAYOUT_HIGH_RAM_START + 0x1000, 4096, VIRTQ_DESC_F_NEXT, 1);
	desc(1, LAYOUT_LOW_RAM_END - 16, 16, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &elem, &err), 1, "%s", err.msg);
	cr_assert_eq(iov[0].iov_base, gmem_ptr(&mem, LAYOUT_HIGH_RAM_START + 0x1000, 1));
	cr_assert_eq(virtq_push(&q, elem.head, 0), 0);
	/* One byte into the hole: contiguous in the memfd, but not guest RAM. */
	desc(1, LAYOUT_LOW_RAM_END - 16, 17, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	expect_broken(-EFAULT);
}
