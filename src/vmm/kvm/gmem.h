/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_GMEM_H
#define BUNSHIN_VMM_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/error.h"

/*
 * Guest RAM. One memfd holds all of it (so it can be snapshotted, shared
 * and mapped copy-on-write by clones); it is mapped once, contiguously, in
 * the VMM, and appears to the guest as up to two slots: below the 32-bit
 * PCI hole and above 4 GiB.
 *
 * gmem_ptr() is the only way to turn a guest-physical address into a host
 * pointer. It checks the whole [gpa, gpa+len) range against one slot, with
 * overflow-safe arithmetic, so a guest-controlled address or length can
 * never reach outside guest RAM.
 */

#define GMEM_MAX_SLOTS 2

struct gmem_slot {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
	uint64_t offset; /* offset of this slot in the memfd */
};

struct gmem {
	int memfd;     /* -1 when mapped from a snapshot's memory file */
	uint8_t *base; /* host mapping of all of guest RAM */
	uint64_t size; /* total guest RAM */
	int nslots;
	struct gmem_slot slots[GMEM_MAX_SLOTS];
	/*
	 * Pages the VMM itself wrote (device models), one bit per page of the
	 * mapping, while dirty tracking (kvm/dirty.c) is on: KVM's dirty log
	 * only sees the vCPUs' writes. NULL and false otherwise.
	 */
	uint64_t *dirty;
	bool tracking;
};

/*
 * Guest RAM from a snapshot's memory file, mapped copy-on-write
 * (MAP_PRIVATE): nothing is read up front, pages come in as the guest
 * touches them, and VMs restored from the same file share every page none
 * of them wrote. memfd is -1. The file must not change while they run
 * (a new snapshot replaces it by rename, which is safe).
 */
int gmem_init_file(struct gmem *m, uint64_t size, const char *path, struct error *err);

/* Creates the memfd, sizes it, maps it and splits it around the PCI hole. */
int gmem_init(struct gmem *m, uint64_t size, struct error *err);
void gmem_destroy(struct gmem *m);

/* Host pointer for [gpa, gpa+len), or NULL if any byte is outside guest RAM. */
void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len);

/* Copy helpers built on gmem_ptr(); return 0 or -EFAULT. */
int gmem_read(const struct gmem *m, uint64_t gpa, void *buf, uint64_t len);
int gmem_write(const struct gmem *m, uint64_t gpa, const void *buf, uint64_t len);

/*
 * Gives the host memory behind [gpa, gpa+len) back (balloon, free page
 * reporting): the guest reads zeroes there afterwards. gpa and len must be
 * multiples of GMEM_PAGE_SIZE and the range wholly inside one slot.
 * Returns 0, -EINVAL (unaligned), -EFAULT (not guest RAM) or what
 * fallocate(2) failed with.
 */
#define GMEM_PAGE_SIZE 4096ULL
int gmem_discard(const struct gmem *m, uint64_t gpa, uint64_t len);

/*
 * Records that the VMM wrote [gpa, gpa+len) (or the host range [p, p+len)
 * of the mapping). One relaxed load when tracking is off; bytes outside
 * guest RAM are ignored: the caller already refused or clamped them.
 */
void gmem_mark_dirty(const struct gmem *m, uint64_t gpa, uint64_t len);
void gmem_mark_dirty_host(const struct gmem *m, const void *p, uint64_t len);

/* Highest guest-physical address + 1 covered by RAM. */
uint64_t gmem_end(const struct gmem *m);

#endif
