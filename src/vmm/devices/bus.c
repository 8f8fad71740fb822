// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/log.h"
#include "bus.h"

void bus_init(struct bus *b, const char *name)
{
	pthread_rwlockattr_t attr;

	memset(b, 0, sizeof(*b));
	b->name = name;
	/*
	 * vCPU threads hold the read lock back to back; without writer
	 * preference a BAR move could wait for as long as the guest does I/O.
	 * The lock is never held across a device callback, so the
	 * non-recursive kind is safe.
	 */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&b->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

void bus_destroy(struct bus *b)
{
	for (int i = 0; i < b->nranges; i++)
		free((char *)b->ranges[i].name);
	free(b->ranges);
	b->ranges = NULL;
	b->nranges = 0;
	b->cap = 0;
	pthread_rwlock_destroy(&b->lock);
}

/* Index of the last range whose base is <= addr, or -1 if there is none. */
static int bus_find_floor(const struct bus *b, uint64_t addr)
{
	int lo = 0, hi = b->nranges - 1, found = -1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;

		if (b->ranges[mid].base <= addr) {
			found = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return found;
}

/* Last byte of a range; callers have rejected len 0 and wraps. */
static uint64_t range_last(const struct bus_range *r)
{
	return r->base + (r->len - 1);
}

static int bus_grow(struct bus *b)
{
	struct bus_range *n;
	int cap;

	if (b->nranges < b->cap)
		return 0;
	cap = b->cap ? b->cap * 2 : 16;
	n = realloc(b->ranges, (size_t)cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	b->ranges = n;
	b->cap = cap;
	return 0;
}

static bool bus_overlaps(const struct bus *b, int floor, uint64_t base, uint64_t last)
{
	if (floor >= 0 && range_last(&b->ranges[floor]) >= base)
		return true;
	return floor + 1 < b->nranges && b->ranges[floor + 1].base <= last;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque, const char *name)
{
	struct bus_range r = {.base = base, .len = len, .ops = ops, .opaque = opaque};
	int floor, ret;

	if (len == 0 || len - 1 > UINT64_MAX - base || !ops)
		return -EINVAL;
	r.name = strdup(name ? name : "?");
	if (!r.name)
		return -ENOMEM;

	pthread_rwlock_wrlock(&b->lock);
	floor = bus_find_floor(b, base);
	if (bus_overlaps(b, floor, base, range_last(&r))) {
		ret = -EEXIST;
	} else {
		ret = bus_grow(b);
	}
	if (ret == 0) {
		int at = floor + 1;

		memmove(&b->ranges[at + 1], &b->ranges[at], (size_t)(b->nranges - at) * sizeof(r));
		b->ranges[at] = r;
		b->nranges++;
	}
	pthread_rwlock_unlock(&b->lock);

	if (ret) {
		if (ret == -EEXIST)
			log_debug("%s: %s at 0x%llx+0x%llx overlaps another device", b->name,
				  r.name, (unsigned long long)base, (unsigned long long)len);
		free((char *)r.name);
	}
	return ret;
}

int bus_unregister(struct bus *b, uint64_t base)
{
	const char *name = NULL;
	int i;

	pthread_rwlock_wrlock(&b->lock);
	i = bus_find_floor(b, base);
	if (i >= 0 && b->ranges[i].base == base) {
		name = b->ranges[i].name;
		memmove(&b->ranges[i], &b->ranges[i + 1],
			(size_t)(b->nranges - i - 1) * sizeof(b->ranges[0]));
		b->nranges--;
	}
	pthread_rwlock_unlock(&b->lock);

	if (!name)
		return -ENOENT;
	free((char *)name);
	return 0;
}

/* The range that wholly contains [addr, addr+len), under the read lock. */
static const struct bus_range *bus_lookup(const struct bus *b, uint64_t addr, uint32_t len)
{
	const struct bus_range *r;
	uint64_t off;
	int i;

	i = bus_find_floor(b, addr);
	if (i < 0)
		return NULL;
	r = &b->ranges[i];
	off = addr - r->base;
	if (off >= r->len || len > r->len - off)
		return NULL;
	return r;
}

/*
 * Copies the matching range out and drops the lock before the callback
 * runs, so a callback may itself move ranges on this bus (a PCI BAR
 * programmed through ECAM, which is MMIO too). Devices outlive every vCPU,
 * so the copied opaque pointer stays valid.
 */
static bool bus_find(struct bus *b, uint64_t addr, uint32_t len, struct bus_range *out)
{
	const struct bus_range *r;

	if (!len)
		return false;
	pthread_rwlock_rdlock(&b->lock);
	r = bus_lookup(b, addr, len);
	if (r)
		*out = *r;
	pthread_rwlock_unlock(&b->lock);
	if (!r)
		__atomic_fetch_add(&b->unhandled, 1, __ATOMIC_RELAXED);
	return r != NULL;
}

bool bus_read(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len)
{
	struct bus_range r = {0};

	/* A miss, or a write-only device, floats the bus: all ones, like an empty slot. */
	if (!bus_find(b, addr, len, &r) || !r.ops->read) {
		memset(data, 0xff, len);
		return r.ops != NULL && len;
	}
	r.ops->read(r.opaque, addr - r.base, data, len);
	return true;
}

bool bus_write(struct bus *b, uint64_t addr, const uint8_t *data, uint32_t len)
{
	struct bus_range r;

	if (!bus_find(b, addr, len, &r))
		return false;
	if (r.ops->write)
		r.ops->write(r.opaque, addr - r.base, data, len);
	return true;
}
