/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_DIRTY_H
#define BUNSHIN_VMM_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

#include "gmem.h"
#include "../../common/error.h"

/*
 * Dirty-page tracking of guest RAM: KVM's dirty log on the RAM slots
 * (KVM_MEM_LOG_DIRTY_PAGES; KVM_CLEAR_DIRTY_LOG with manual protection
 * where the kernel offers KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) for the
 * vCPUs' writes, merged with the gmem's own bitmap for the VMM's writes
 * (gmem_mark_dirty()). Bitmaps have one bit per 4 KiB page of the memory
 * mapping (offset order, not guest-physical order).
 *
 * Two users may track at once, each with its own set: diff snapshots
 * (pages written since the last snapshot) and a migration (since the last
 * round). A collection harvests KVM and the gmem once and adds what it
 * found to every active user's set, so neither loses the other's pages.
 * One thread at a time (the API thread) calls these.
 */

enum dirty_user {
	DIRTY_SNAPSHOT,
	DIRTY_MIGRATE,
	DIRTY_USERS,
};

struct dirty {
	int vm_fd;	    /* the VM logging is on for */
	bool manual;	    /* KVM_CLEAR_DIRTY_LOG re-protects what we fetched */
	unsigned int users; /* bit per enum dirty_user */
	uint64_t nwords;
	uint64_t *vmm;	   /* the gmem's bitmap: kept until dirty_destroy() (threads may mark it) */
	uint64_t *scratch; /* one slot's KVM bitmap */
	uint64_t *set[DIRTY_USERS];
};

void dirty_init(struct dirty *d);
void dirty_destroy(struct dirty *d);

/*
 * Starts (or restarts) tracking for u on mem, whose slots vm_fd maps:
 * u's set starts empty. Returns 0 or -errno with err.
 */
int dirty_start(struct dirty *d, int vm_fd, struct gmem *mem, enum dirty_user u, struct error *err);
/* u stops; logging goes off with the last user. */
void dirty_stop(struct dirty *d, struct gmem *mem, enum dirty_user u);
/*
 * Is u tracking mem? A reboot makes new memory and a new VM, with
 * tracking off: whatever was tracked before is gone with them.
 */
bool dirty_active(const struct dirty *d, const struct gmem *mem, enum dirty_user u);

/*
 * Moves u's set, after a fresh harvest, into out (nwords words) and
 * starts a new one. Returns the number of dirty pages, or -errno with err.
 */
int64_t dirty_collect(struct dirty *d, const struct gmem *mem, enum dirty_user u, uint64_t *out,
		      struct error *err);

/* ---- bitmaps ---- */

static inline uint64_t dirty_words(uint64_t npages)
{
	return (npages + 63) / 64;
}

/* ORs npages bits of src into dst starting at bit first. */
void dirty_merge(uint64_t *dst, uint64_t first, const uint64_t *src, uint64_t npages);
uint64_t dirty_count(const uint64_t *bits, uint64_t nwords);
/*
 * The next run of set bits at or after *pos, below npages: returns its
 * length (at most max) and puts its first bit in *pos; 0 when none is left.
 */
uint64_t dirty_next_run(const uint64_t *bits, uint64_t npages, uint64_t *pos, uint64_t max);

#endif
