// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "../../src/vmm/devices/bus.h"

/* A device that remembers its last access and reads back its offset. */
struct rec_dev {
	int reads, writes;
	uint64_t offset;
	uint32_t len;
	uint8_t data[8];
	uint8_t tag;
};

static void rec_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct rec_dev *d = opaque;

	__atomic_fetch_add(&d->reads, 1, __ATOMIC_RELAXED);
	d->offset = offset;
	d->len = len;
	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(d->tag + offset + i);
}

static void rec_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct rec_dev *d = opaque;

	d->writes++;
	d->offset = offset;
	d->len = len;
	memcpy(d->data, data, len < 8 ? len : 8);
}

static const struct bus_ops rec_ops = {.read = rec_read, .write = rec_write};

static struct bus bus;

static void setup(void)
{
	bus_init(&bus, "test");
}

static void teardown(void)
{
	bus_destroy(&bus);
}

TestSuite(bus, .init = setup, .fini = teardown);

Test(bus, dispatches_with_offset)
{
	struct rec_dev a = {.tag = 0x10}, b = {.tag = 0x40};
	uint8_t buf[4] = {0}, w[2] = {0xaa, 0xbb};

	cr_assert_eq(bus_register(&bus, 0x100, 8, &rec_ops, &a, "a"), 0);
	cr_assert_eq(bus_register(&bus, 0x200, 4, &rec_ops, &b, "b"), 0);

	cr_assert(bus_read(&bus, 0x103, buf, 1));
	cr_assert_eq(a.reads, 1);
	cr_assert_eq(a.offset, 3);
	cr_assert_eq(buf[0], 0x13);

	cr_assert(bus_read(&bus, 0x200, buf, 4));
	cr_assert_eq(b.len, 4);
	cr_assert_eq(buf[3], 0x43);

	cr_assert(bus_write(&bus, 0x106, w, 2));
	cr_assert_eq(a.writes, 1);
	cr_assert_eq(a.offset, 6);
	cr_assert_eq(a.data[0], 0xaa);
	cr_assert_eq(a.data[1], 0xbb);
	cr_assert_eq(b.writes, 0);
	cr_assert_eq(bus.unhandled, 0);
}

Test(bus, rejects_overlap)
{
	struct rec_dev d = {0};

	cr_assert_eq(bus_register(&bus, 0x100, 8, &rec_ops, &d, "a"), 0);
	cr_assert_eq(bus_register(&bus, 0x104, 8, &rec_ops, &d, "tail"), -EEXIST);
	cr_assert_eq(bus_register(&bus, 0xfc, 8, &rec_ops, &d, "head"), -EEXIST);
	cr_assert_eq(bus_register(&bus, 0x102, 2, &rec_ops, &d, "inside"), -EEXIST);
	cr_assert_eq(bus_register(&bus, 0x80, 0x100, &rec_ops, &d, "around"), -EEXIST);
	cr_assert_eq(bus_register(&bus, 0x100, 1, &rec_ops, &d, "same base"), -EEXIST);
	cr_assert_eq(bus_register(&bus, 0x107, 1, &rec_ops, &d, "last byte"), -EEXIST);
	/* Neighbours touching either end are fine. */
	cr_assert_eq(bus_register(&bus, 0x108, 8, &rec_ops, &d, "after"), 0);
	cr_assert_eq(bus_register(&bus, 0xf8, 8, &rec_ops, &d, "before"), 0);
	cr_assert_eq(bus.nranges, 3);
}

Test(bus, rejects_zero_length_and_wrap)
{
	struct rec_dev d = {0};

	cr_assert_eq(bus_register(&bus, 0x100, 0, &rec_ops, &d, "empty"), -EINVAL);
	cr_assert_eq(bus_register(&bus, UINT64_MAX, 2, &rec_ops, &d, "wrap"), -EINVAL);
	cr_assert_eq(bus_register(&bus, 0x10, UINT64_MAX, &rec_ops, &d, "wrap"), -EINVAL);
	cr_assert_eq(bus_register(&bus, 0x100, 8, NULL, &d, "no ops"), -EINVAL);
	/* The very last byte of the space is a valid range. */
	cr_assert_eq(bus_register(&bus, UINT64_MAX, 1, &rec_ops, &d, "top"), 0);
	cr_assert_eq(bus_register(&bus, 0, UINT64_MAX, &rec_ops, &d, "rest"), 0);
	cr_assert_eq(bus.nranges, 2);
}

Test(bus, unclaimed_reads_all_ones_and_counts)
{
	struct rec_dev d = {0};
	uint8_t buf[4] = {0}, w = 1;

	cr_assert_eq(bus_register(&bus, 0x100, 8, &rec_ops, &d, "a"), 0);
	cr_assert_not(bus_read(&bus, 0x50, buf, 4));
	for (int i = 0; i < 4; i++)
		cr_assert_eq(buf[i], 0xff);
	cr_assert_not(bus_write(&bus, 0x108, &w, 1));
	cr_assert_eq(bus.unhandled, 2);
	cr_assert_eq(d.reads + d.writes, 0);
}

Test(bus, straddling_access_is_unclaimed)
{
	struct rec_dev a = {0}, b = {0};
	uint8_t buf[4];

	cr_assert_eq(bus_register(&bus, 0x100, 8, &rec_ops, &a, "a"), 0);
	cr_assert_eq(bus_register(&bus, 0x108, 8, &rec_ops, &b, "b"), 0);
	/* 0x106..0x109 covers the end of a and the start of b: no one takes it. */
	cr_assert_not(bus_read(&bus, 0x106, buf, 4));
	cr_assert_eq(buf[0], 0xff);
	cr_assert_not(bus_write(&bus, 0x107, buf, 2));
	cr_assert_eq(a.reads + a.writes + b.reads + b.writes, 0);
	cr_assert_eq(bus.unhandled, 2);
	/* Ending exactly at the end is claimed. */
	cr_assert(bus_read(&bus, 0x104, buf, 4));
	/* And an access near the top of the address space does not wrap. */
	cr_assert_not(bus_read(&bus, UINT64_MAX - 1, buf, 4));
}

Test(bus, unregister)
{
	struct rec_dev d = {0};
	uint8_t v;

	cr_assert_eq(bus_register(&bus, 0x100, 8, &rec_ops, &d, "a"), 0);
	cr_assert_eq(bus_unregister(&bus, 0x104), -ENOENT);
	cr_assert_eq(bus_unregister(&bus, 0x100), 0);
	cr_assert_eq(bus_unregister(&bus, 0x100), -ENOENT);
	cr_assert_not(bus_read(&bus, 0x100, &v, 1));
	cr_assert_eq(v, 0xff);
	/* The space is free again. */
	cr_assert_eq(bus_register(&bus, 0x104, 8, &rec_ops, &d, "a2"), 0);
}

Test(bus, many_ranges_stay_sorted)
{
	static struct rec_dev devs[200];
	uint8_t v;

	/* Registered in a scrambled order; every one must still be found. */
	for (int i = 0; i < 200; i++) {
		int k = (i * 73) % 200;

		devs[k].tag = (uint8_t)k;
		cr_assert_eq(bus_register(&bus, 0x1000 + 0x10 * (uint64_t)k, 4, &rec_ops, &devs[k],
					  "dev"),
			     0);
	}
	for (int k = 0; k < 200; k++) {
		cr_assert(bus_read(&bus, 0x1000 + 0x10 * (uint64_t)k, &v, 1));
		cr_assert_eq(v, (uint8_t)k);
		cr_assert_not(bus_read(&bus, 0x1000 + 0x10 * (uint64_t)k + 4, &v, 1));
	}
	for (int i = 1; i < bus.nranges; i++)
		cr_assert_lt(bus.ranges[i - 1].base, bus.ranges[i].base);
}

Test(bus, write_only_device_reads_ones)
{
	static const struct bus_ops wo_ops = {.write = rec_write};
	struct rec_dev d = {0};
	uint8_t v = 0;

	cr_assert_eq(bus_register(&bus, 0x80, 1, &wo_ops, &d, "wo"), 0);
	cr_assert(bus_read(&bus, 0x80, &v, 1));
	cr_assert_eq(v, 0xff);
	cr_assert_eq(bus.unhandled, 0);
}

struct hammer {
	struct rec_dev *dev;
	volatile bool stop;
	int misses;
	int reads; /* atomic: the test waits for every reader to be going */
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	uint8_t v;

	while (!h->stop) {
		if (!bus_read(&bus, 0x100, &v, 1))
			h->misses++;
		__atomic_fetch_add(&h->reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

Test(bus, concurrent_readers_and_registration)
{
	struct rec_dev fixed = {0}, moving = {0};
	struct hammer h[4];
	pthread_t t[4];

	cr_assert_eq(bus_register(&bus, 0x100, 4, &rec_ops, &fixed, "fixed"), 0);
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){.dev = &fixed};
		cr_assert_eq(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	/* On a loaded machine the loop below could end before a reader ran at all. */
	for (int i = 0; i < 4; i++)
		while (!__atomic_load_n(&h[i].reads, __ATOMIC_RELAXED))
			sched_yield();
	/* Devices come and go around the one being read the whole time. */
	for (int i = 0; i < 2000; i++) {
		uint64_t base = 0x200 + 0x10 * (uint64_t)(i % 50);

		cr_assert_eq(bus_register(&bus, base, 8, &rec_ops, &moving, "moving"), 0);
		cr_assert_eq(bus_unregister(&bus, base), 0);
	}
	for (int i = 0; i < 4; i++) {
		h[i].stop = true;
		pthread_join(t[i], NULL);
		cr_assert_eq(h[i].misses, 0);
	}
	cr_assert_gt(fixed.reads, 0);
}

/* A device that moves itself when written, as a PCI BAR programmed through ECAM does. */
static const struct bus_ops mover_ops;

static void mover_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct bus *b = opaque;

	cr_assert_eq(bus_unregister(b, 0x1000), 0);
	cr_assert_eq(bus_register(b, 0x2000, 0x10, &mover_ops, b, "mover"), 0);
}

static const struct bus_ops mover_ops = {.write = mover_write};

Test(bus, callback_may_move_its_own_range)
{
	uint8_t v = 1;

	cr_assert_eq(bus_register(&bus, 0x1000, 0x10, &mover_ops, &bus, "mover"), 0);
	cr_assert(bus_write(&bus, 0x1004, &v, 1), "must not deadlock on the bus lock");
	cr_assert_not(bus_write(&bus, 0x1004, &v, 1), "the old range is gone");
	cr_assert_eq(bus_unregister(&bus, 0x2000), 0, "the device now lives at 0x2000");
}
