// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "dirty.h"

/* ---- bitmaps ---- */

void dirty_merge(uint64_t *dst, uint64_t first, const uint64_t *src, uint64_t npages)
{
	uint64_t n = dirty_words(npages);

	/* Slots start on 2 MiB boundaries: whole words, the common case. */
	if (first % 64 == 0) {
		for (uint64_t i = 0; i < n; i++)
			dst[first / 64 + i] |= src[i] & (i + 1 < n || npages % 64 == 0
								 ? ~0ULL
								 : (1ULL << (npages % 64)) - 1);
		return;
	}
	for (uint64_t i = 0; i < npages; i++)
		if (src[i / 64] & (1ULL << (i % 64)))
			dst[(first + i) / 64] |= 1ULL << ((first + i) % 64);
}

uint64_t dirty_count(const uint64_t *bits, uint64_t nwords)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < nwords; i++)
		n += (uint64_t)__builtin_popcountll(bits[i]);
	return n;
}

static bool dirty_bit(const uint64_t *bits, uint64_t i)
{
	return bits[i / 64] & (1ULL << (i % 64));
}

uint64_t dirty_next_run(const uint64_t *bits, uint64_t npages, uint64_t *pos, uint64_t max)
{
	uint64_t i = *pos, len = 0;

	while (i < npages && !dirty_bit(bits, i)) {
		if (i % 64 == 0 && !bits[i / 64])
			i += 64; /* a clean word at once */
		else
			i++;
	}
	if (i >= npages)
		return 0;
	*pos = i;
	while (i + len < npages && len < max && dirty_bit(bits, i + len))
		len++;
	return len;
}

/* ---- KVM ---- */

void dirty_init(struct dirty *d)
{
	memset(d, 0, sizeof(*d));
	d->vm_fd = -1;
}

void dirty_destroy(struct dirty *d)
{
	free(d->vmm);
	free(d->scratch);
	for (int u = 0; u < DIRTY_USERS; u++)
		free(d->set[u]);
	dirty_init(d);
}

/* Sized once: guest RAM keeps its size for the life of the process. */
static int dirty_alloc(struct dirty *d, const struct gmem *mem, struct error *err)
{
	uint64_t nwords = dirty_words(mem->size / GMEM_PAGE_SIZE);

	if (d->vmm)
		return 0;
	d->nwords = nwords;
	d->vmm = calloc(nwords, sizeof(uint64_t));
	d->scratch = calloc(nwords, sizeof(uint64_t));
	for (int u = 0; u < DIRTY_USERS; u++)
		d->set[u] = calloc(nwords, sizeof(uint64_t));
	for (int u = 0; u < DIRTY_USERS; u++)
		if (!d->set[u])
			return error_set(err, ENOMEM, "dirty tracking: out of memory");
	if (!d->vmm || !d->scratch)
		return error_set(err, ENOMEM, "dirty tracking: out of memory");
	return 0;
}

static int dirty_slots_log(struct dirty *d, const struct gmem *mem, bool on, struct error *err)
{
	for (int i = 0; i < mem->nslots; i++) {
		const struct gmem_slot *s = &mem->slots[i];
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = s->gpa,
			.memory_size = s->size,
			.userspace_addr = (uintptr_t)s->host,
		};

		if (ioctl(d->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return error_set(err, errno, "dirty logging on slot %d: %s", i,
					 strerror(errno));
	}
	return 0;
}

/*
 * Manual protection: fetching no longer re-protects every page at once
 * (under the MMU lock, vCPUs stalled on it); we clear only what we found.
 * Enabled once per VM and never undone, so it is probed again on a new VM.
 */
static void dirty_probe_manual(struct dirty *d)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
				     .args = {KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE}};
	int r = ioctl(d->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);

#ifdef BUNSHIN_TEST_HOOKS
	if (getenv("BUNSHIN_DIRTY_NO_MANUAL")) /* the fallback, for kernels without it */
		r = 0;
#endif
	d->manual = r > 0 && (r & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) &&
		    ioctl(d->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
}

static int dirty_enable(struct dirty *d, int vm_fd, struct gmem *mem, struct error *err)
{
	int ret;

	if (d->vm_fd != vm_fd) {
		d->vm_fd = vm_fd;
		dirty_probe_manual(d);
	}
	memset(d->vmm, 0, d->nwords * sizeof(uint64_t));
	mem->dirty = d->vmm;
	__atomic_store_n(&mem->tracking, true, __ATOMIC_RELEASE);
	ret = dirty_slots_log(d, mem, true, err);
	if (ret) {
		__atomic_store_n(&mem->tracking, false, __ATOMIC_RELEASE);
		dirty_slots_log(d, mem, false, &(struct error){0});
	}
	return ret;
}

static void dirty_add(struct dirty *d, uint64_t first, const uint64_t *bits, uint64_t npages)
{
	for (int u = 0; u < DIRTY_USERS; u++)
		if (d->users & (1u << u))
			dirty_merge(d->set[u], first, bits, npages);
}

static int dirty_harvest_slot(struct dirty *d, const struct gmem *mem, int i, struct error *err)
{
	const struct gmem_slot *s = &mem->slots[i];
	uint64_t npages = s->size / GMEM_PAGE_SIZE;
	struct kvm_dirty_log log = {.slot = (uint32_t)i, .dirty_bitmap = d->scratch};
	struct kvm_clear_dirty_log clear = {
		.slot = (uint32_t)i, .num_pages = (uint32_t)npages, .dirty_bitmap = d->scratch};

	memset(d->scratch, 0, dirty_words(npages) * sizeof(uint64_t));
	if (ioctl(d->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return error_set(err, errno, "KVM_GET_DIRTY_LOG slot %d: %s", i, strerror(errno));
	/* Re-protect before anyone reads the pages: a write from now on is seen next time. */
	if (d->manual && dirty_count(d->scratch, dirty_words(npages)) &&
	    ioctl(d->vm_fd, KVM_CLEAR_DIRTY_LOG, &clear) < 0)
		return error_set(err, errno, "KVM_CLEAR_DIRTY_LOG slot %d: %s", i, strerror(errno));
	dirty_add(d, s->offset / GMEM_PAGE_SIZE, d->scratch, npages);
	return 0;
}

static int dirty_harvest(struct dirty *d, const struct gmem *mem, struct error *err)
{
	for (int i = 0; i < mem->nslots; i++) {
		int ret = dirty_harvest_slot(d, mem, i, err);

		if (ret)
			return ret;
	}
	for (uint64_t w = 0; w < d->nwords; w++) {
		uint64_t v = __atomic_exchange_n(&d->vmm[w], 0, __ATOMIC_RELAXED);

		if (v)
			dirty_add(d, w * 64, &v, 64);
	}
	return 0;
}

int dirty_start(struct dirty *d, int vm_fd, struct gmem *mem, enum dirty_user u, struct error *err)
{
	int ret = dirty_alloc(d, mem, err);

	if (ret)
		return ret;
	if (!__atomic_load_n(&mem->tracking, __ATOMIC_ACQUIRE) || d->vm_fd != vm_fd)
		d->users = 0; /* a new VM since: the old users' tracking went with the old one */
	if (!d->users)
		ret = dirty_enable(d, vm_fd, mem, err);
	else
		ret = dirty_harvest(d, mem, err); /* the others keep what is pending */
	if (ret)
		return ret;
	memset(d->set[u], 0, d->nwords * sizeof(uint64_t));
	d->users |= 1u << u;
	return 0;
}

bool dirty_active(const struct dirty *d, const struct gmem *mem, enum dirty_user u)
{
	return (d->users & (1u << u)) && __atomic_load_n(&mem->tracking, __ATOMIC_ACQUIRE);
}

void dirty_stop(struct dirty *d, struct gmem *mem, enum dirty_user u)
{
	d->users &= ~(1u << u);
	if (d->users || !__atomic_load_n(&mem->tracking, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&mem->tracking, false, __ATOMIC_RELEASE);
	dirty_slots_log(d, mem, false, &(struct error){0});
}

int64_t dirty_collect(struct dirty *d, const struct gmem *mem, enum dirty_user u, uint64_t *out,
		      struct error *err)
{
	int ret;

	if (!dirty_active(d, mem, u))
		return error_set(err, ENOENT, "dirty tracking is off");
	ret = dirty_harvest(d, mem, err);
	if (ret)
		return ret;
	memcpy(out, d->set[u], d->nwords * sizeof(uint64_t));
	memset(d->set[u], 0, d->nwords * sizeof(uint64_t));
	return (int64_t)dirty_count(out, d->nwords);
}
