/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_BUS_H
#define BUNSHIN_VMM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * A bus maps address ranges (port I/O or MMIO) to device callbacks. vCPU
 * threads call bus_read()/bus_write() on every I/O exit, so lookup is a
 * binary search over a sorted array under a read lock; registration (rare:
 * start-up, PCI BAR moves) takes the write lock.
 *
 * Callbacks get the offset from the start of the device's range. Each
 * device serialises its own state; the bus holds no lock during a
 * callback, so a callback may register or unregister ranges (a PCI BAR
 * move). Devices must outlive the vCPUs that can reach them.
 */

struct bus_ops {
	void (*read)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
	void (*write)(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name;
	pthread_rwlock_t lock;
	struct bus_range *ranges; /* sorted by base, never overlapping */
	int nranges;
	int cap;
	uint64_t unhandled; /* accesses that hit no device */
};

void bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);

/* Returns 0, -EEXIST if the range overlaps another, -EINVAL for len 0 or a wrap. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque, const char *name);
int bus_unregister(struct bus *b, uint64_t base);

/*
 * Dispatch one access. An access that hits no device (or straddles the end
 * of one) reads as all ones and writes are dropped, like an unclaimed
 * cycle on real hardware; the return value is false in that case.
 */
bool bus_read(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len);
bool bus_write(struct bus *b, uint64_t addr, const uint8_t *data, uint32_t len);

#endif
