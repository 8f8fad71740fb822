// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "virtq.h"

/*
 * Memory ordering. The driver runs on other CPUs without any lock shared
 * with us, so every ordering the protocol relies on is written out:
 *
 *  (1) pop: avail->idx is loaded with acquire. It pairs with the driver's
 *      write barrier between filling descriptors/ring entries and bumping
 *      idx, so what we read after it (ring entry, descriptors, buffers) is
 *      at least as new as that idx.
 *  (2) push: the used elements are stored, then used->idx with release. It
 *      pairs with the driver's read barrier after it reads used->idx: the
 *      driver sees the elements and whatever the device wrote into buffers.
 *  (3) needs_notify: a full fence between the used->idx store and the load
 *      of avail->flags / used_event. Store-then-load needs one: the driver
 *      does the mirror image (write used_event, full barrier, re-read
 *      used->idx); without a fence on both sides each may see the other's
 *      old value and an interrupt is lost.
 *  (4) set_notify(true): the same for the other direction: store
 *      used->flags / avail_event, full fence, re-read avail->idx.
 *
 * Single fields the guest may rewrite under us are loaded with relaxed
 * atomics so each is read exactly once. Descriptors (16 bytes, possibly
 * unaligned inside indirect tables) are copied to a local and followed by a
 * compiler barrier, so the compiler cannot re-read guest memory in place of
 * the copy that was checked (no double fetch).
 */

/* Where one chain is being read from: the descriptor table or an indirect one. */
struct virtq_chain {
	const uint8_t *table;
	uint32_t entries;
	bool indirect;
	bool seen_write;
	uint64_t total;
};

__attribute__((format(printf, 4, 5))) static int virtq_fail(struct virtq *q, struct error *err,
							    int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->broken_msg, sizeof(q->broken_msg), fmt, ap);
	va_end(ap);
	q->broken = -code;
	return error_set(err, code, "virtqueue broken: %s", q->broken_msg);
}

static uint16_t virtq_load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static void virtq_store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static uint16_t *virtq_used_event(const struct virtq *q)
{
	return &q->avail->ring[q->size];
}

static uint16_t *virtq_avail_event(const struct virtq *q)
{
	return (uint16_t *)&q->used->ring[q->size];
}

void virtq_init(struct virtq *q, const struct gmem *mem)
{
	memset(q, 0, sizeof(*q));
	q->mem = mem;
	q->notify = true;
}

void virtq_reset(struct virtq *q)
{
	virtq_init(q, q->mem);
}

static int virtq_map_ring(const struct virtq *q, const char *what, uint64_t gpa, uint64_t align,
			  uint64_t len, void **out, struct error *err)
{
	if (gpa % align)
		return error_set(err, EINVAL, "%s at %#llx is not %llu-byte aligned", what,
				 (unsigned long long)gpa, (unsigned long long)align);
	*out = gmem_ptr(q->mem, gpa, len);
	if (!*out)
		return error_set(err, EINVAL, "%s [%#llx, +%llu) is not inside guest RAM", what,
				 (unsigned long long)gpa, (unsigned long long)len);
	return 0;
}

int virtq_configure(struct virtq *q, const struct virtq_config *cfg, struct error *err)
{
	bool event_idx = cfg->features & (1ULL << VIRTIO_F_EVENT_IDX);
	uint64_t n = cfg->size, ev = event_idx ? 2 : 0;
	void *desc, *avail, *used;
	int rc;

	virtq_reset(q);
	if (!n || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return error_set(err, EINVAL, "queue size %llu is not a power of two in 1..%u",
				 (unsigned long long)n, VIRTQ_MAX_SIZE);
	rc = virtq_map_ring(q, "descriptor table", cfg->desc_gpa, 16, 16 * n, &desc, err);
	if (rc)
		return rc;
	rc = virtq_map_ring(q, "available ring", cfg->avail_gpa, 2, 4 + 2 * n + ev, &avail, err);
	if (rc)
		return rc;
	rc = virtq_map_ring(q, "used ring", cfg->used_gpa, 4, 4 + 8 * n + ev, &used, err);
	if (rc)
		return rc;

	q->size = n;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->event_idx = event_idx;
	q->indirect = cfg->features & (1ULL << VIRTIO_F_INDIRECT_DESC);
	/* Both sides start at used->idx 0, so "last signalled at 0" is exact. */
	q->signalled_valid = true;
	q->ready = true;
	return 0;
}

/* A READ_ONCE() of one descriptor: see the ordering note at the top. */
static void virtq_read_desc(const uint8_t *src, struct virtq_desc *d)
{
	memcpy(d, src, sizeof(*d));
	__asm__ __volatile__("" ::: "memory");
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

static int virtq_enter_indirect(struct virtq *q, struct virtq_chain *c, const struct virtq_desc *d,
				struct error *err)
{
	const uint8_t *table;

	if (!q->indirect)
		return virtq_fail(q, err, EOPNOTSUPP,
				  "indirect descriptor but VIRTIO_F_INDIRECT_DESC not negotiated");
	if (c->indirect)
		return virtq_fail(q, err, EMLINK, "indirect descriptor inside an indirect table");
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return virtq_fail(q, err, EBADMSG, "descriptor has both INDIRECT and NEXT");
	if (!d->len || d->len % sizeof(*d) || d->len / sizeof(*d) > VIRTQ_INDIRECT_MAX)
		return virtq_fail(q, err, EMSGSIZE,
				  "indirect table length %u is not a non-zero multiple of 16 up to "
				  "%u entries",
				  d->len, VIRTQ_INDIRECT_MAX);
	table = gmem_ptr(q->mem, d->addr, d->len);
	if (!table)
		return virtq_fail(q, err, EFAULT,
				  "indirect table [%#llx, +%u) is outside guest RAM",
				  (unsigned long long)d->addr, d->len);
	c->table = table;
	c->entries = d->len / sizeof(*d);
	c->indirect = true;
	return 0;
}

static int virtq_add_seg(struct virtq *q, struct virtq_elem *e, struct virtq_chain *c,
			 const struct virtq_desc *d, struct error *err)
{
	bool write = d->flags & VIRTQ_DESC_F_WRITE;
	struct iovec *iov;
	void *p;

	if (!write && c->seen_write)
		return virtq_fail(q, err, EPROTO,
				  "device-readable descriptor after a writable one");
	c->seen_write |= write;
	if (!d->len)
		return 0; /* no data, no segment: nothing to check the address against */
	if (e->out_num + e->in_num >= e->max_segs)
		return virtq_fail(q, err, E2BIG, "chain has more than %u segments", e->max_segs);
	if (c->total + d->len > UINT32_MAX)
		return virtq_fail(q, err, EFBIG, "chain is longer than 4 GiB - 1 in total");
	p = gmem_ptr(q->mem, d->addr, d->len);
	if (!p)
		return virtq_fail(q, err, EFAULT, "buffer [%#llx, +%u) is outside guest RAM",
				  (unsigned long long)d->addr, d->len);

	/* Readable ones all come first, so appending keeps out before in. */
	iov = &e->iov[e->out_num + e->in_num];
	iov->iov_base = p;
	iov->iov_len = d->len;
	c->total += d->len;
	if (write) {
		e->in_num++;
		e->in_len += d->len;
	} else {
		e->out_num++;
		e->out_len += d->len;
	}
	return 0;
}

/*
 * Follows one chain from head. The loop is bounded by counting: a table of
 * N entries holds no chain longer than N without visiting one twice, so the
 * N+1st descriptor means a loop, whatever `next` says.
 */
static int virtq_walk(struct virtq *q, struct virtq_elem *e, uint16_t head, struct error *err)
{
	struct virtq_chain c = {.table = (const uint8_t *)q->desc, .entries = q->size};
	uint32_t i = head, count = 0;

	e->head = head;
	e->out_num = e->in_num = 0;
	e->out_len = e->in_len = 0;
	for (;;) {
		struct virtq_desc d;
		int rc;

		if (++count > c.entries)
			return virtq_fail(q, err, ELOOP,
					  "chain longer than %u descriptors (a loop)", c.entries);
		virtq_read_desc(c.table + (size_t)i * sizeof(d), &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			rc = virtq_enter_indirect(q, &c, &d, err);
			if (rc)
				return rc;
			i = 0;
			count = 0;
			continue;
		}
		rc = virtq_add_seg(q, e, &c, &d, err);
		if (rc)
			return rc;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= c.entries)
			return virtq_fail(q, err, ENXIO, "next index %u is beyond the %u-entry %s",
					  d.next, c.entries,
					  c.indirect ? "indirect table" : "descriptor table");
		i = d.next;
	}
}

/*
 * Re-reads avail->idx (acquire: ordering note (1)). A correct driver never
 * has more than `size` chains outstanding, popped-but-unused ones included,
 * since each holds a descriptor of its own; more, or an idx that went
 * backwards, is a broken driver. Returns chains pending, or an error.
 */
static int virtq_refresh_avail(struct virtq *q, struct error *err)
{
	uint16_t idx = le16toh(__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE));
	uint16_t pending = idx - q->last_avail_idx;
	uint16_t in_flight = q->last_avail_idx - q->used_idx;

	if (pending > q->size - in_flight)
		return virtq_fail(q, err, EOVERFLOW,
				  "avail->idx %u: %u new + %u in flight exceed the queue size %u",
				  idx, pending, in_flight, q->size);
	q->avail_idx = idx;
	return pending;
}

/*
 * Dirty tracking (kvm/dirty.h): KVM sees only the vCPUs' writes, so what
 * the device wrote into guest memory is marked here, where every used
 * element is completed: the used ring (elements, idx, flags, avail_event)
 * and the writable buffers of the chain. Nothing is done while tracking
 * is off.
 */
static bool virtq_tracking(const struct virtq *q)
{
	return __atomic_load_n(&q->mem->tracking, __ATOMIC_ACQUIRE);
}

static void virtq_mark_used(const struct virtq *q)
{
	if (virtq_tracking(q))
		gmem_mark_dirty_host(q->mem, q->used, 4 + 8 * (uint64_t)q->size + 2);
}

/*
 * The chain is walked again, without the checks' side effects: the guest
 * may have rewritten it meanwhile, and then the worst outcome is marking
 * some other page of its own. Bounded like virtq_walk(), never breaks the
 * queue; addresses outside guest RAM are ignored by gmem_mark_dirty().
 */
static void virtq_mark_chain(const struct virtq *q, uint16_t head)
{
	const uint8_t *table = (const uint8_t *)q->desc;
	uint32_t entries = q->size, i = head, count = 0;
	bool indirect = false;
	struct virtq_desc d;

	while (i < entries && ++count <= entries) {
		virtq_read_desc(table + (size_t)i * sizeof(d), &d);
		if ((d.flags & VIRTQ_DESC_F_INDIRECT) && !indirect) {
			table = gmem_ptr(q->mem, d.addr, d.len);
			if (!table || d.len % sizeof(d) || d.len / sizeof(d) > VIRTQ_INDIRECT_MAX)
				return;
			entries = d.len / sizeof(d);
			indirect = true;
			i = count = 0;
			continue;
		}
		if (d.flags & VIRTQ_DESC_F_WRITE)
			gmem_mark_dirty(q->mem, d.addr, d.len);
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return;
		i = d.next;
	}
}

static void virtq_publish_avail_event(struct virtq *q)
{
	virtq_store16(virtq_avail_event(q), q->last_avail_idx);
	virtq_mark_used(q);
}

int virtq_pop(struct virtq *q, struct virtq_elem *e, struct error *err)
{
	uint16_t head;
	int rc;

	if (!q->ready)
		return error_set(err, ENODEV, "virtqueue is not enabled");
	if (q->broken)
		return error_set(err, -q->broken, "virtqueue broken: %s", q->broken_msg);
	if (q->last_avail_idx == q->avail_idx) {
		rc = virtq_refresh_avail(q, err);
		if (rc <= 0)
			return rc;
	}
	head = virtq_load16(&q->avail->ring[q->last_avail_idx & (q->size - 1)]);
	if (head >= q->size)
		return virtq_fail(q, err, ERANGE, "head index %u >= queue size %u", head, q->size);
	rc = virtq_walk(q, e, head, err);
	if (rc)
		return rc;
	q->last_avail_idx++;
	if (q->event_idx && q->notify)
		virtq_publish_avail_event(q);
	return 1;
}

int virtq_push_batch(struct virtq *q, const struct virtq_used_elem *elems, unsigned int n)
{
	uint16_t in_flight = q->last_avail_idx - q->used_idx;

	if (!q->ready)
		return -ENODEV;
	if (n > in_flight)
		return -ENOSPC;
	/* Check them all first: a bad batch writes nothing. */
	for (unsigned int i = 0; i < n; i++)
		if (elems[i].id >= q->size)
			return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		struct virtq_used_elem *u = &q->used->ring[(q->used_idx + i) & (q->size - 1)];

		__atomic_store_n(&u->id, htole32(elems[i].id), __ATOMIC_RELAXED);
		__atomic_store_n(&u->len, htole32(elems[i].len), __ATOMIC_RELAXED);
	}
	/*
	 * The buffers the device wrote are marked while their descriptors are
	 * still the device's: once used->idx moves, the driver may reuse them
	 * for its next request, and a walk then would mark that one's pages
	 * (a migration lost a device-written page that way). The used ring
	 * itself is marked after its index is written.
	 */
	if (virtq_tracking(q))
		for (unsigned int i = 0; i < n; i++)
			virtq_mark_chain(q, (uint16_t)elems[i].id);
	q->used_idx += n;
	/* Ordering note (2): elements and buffer contents before the index. */
	__atomic_store_n(&q->used->idx, htole16(q->used_idx), __ATOMIC_RELEASE);
	virtq_mark_used(q);
	return 0;
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t written_len)
{
	struct virtq_used_elem e = {.id = head, .len = written_len};

	return virtq_push_batch(q, &e, 1);
}

/* Did used->idx step past event while moving from old to new (mod 2^16)? */
static bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

bool virtq_needs_notify(struct virtq *q)
{
	uint16_t old_idx = q->signalled_used, new_idx = q->used_idx;
	bool valid = q->signalled_valid;

	if (!q->ready)
		return false;
	/* Ordering note (3): our used->idx store before reading the driver's wish. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->signalled_used = new_idx;
	q->signalled_valid = true;
	if (valid && old_idx == new_idx)
		return false; /* nothing used since the last decision */
	if (!q->event_idx)
		return !(virtq_load16(&q->avail->flags) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true; /* history unknown (state import): a spurious one is harmless */
	return virtq_need_event(virtq_load16(virtq_used_event(q)), new_idx, old_idx);
}

bool virtq_has_avail(struct virtq *q)
{
	if (!q->ready || q->broken)
		return false;
	if (q->avail_idx != q->last_avail_idx)
		return true;
	return le16toh(__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE)) != q->last_avail_idx;
}

bool virtq_set_notify(struct virtq *q, bool enable)
{
	if (!q->ready)
		return false;
	q->notify = enable;
	if (q->event_idx) {
		/*
		 * Disabling writes nothing: avail_event stays behind, so the
		 * driver stops notifying once it is past it (one more
		 * notification at most, which is allowed).
		 */
		if (enable)
			virtq_publish_avail_event(q);
	} else {
		virtq_store16(&q->used->flags, enable ? 0 : VIRTQ_USED_F_NO_NOTIFY);
		virtq_mark_used(q);
	}
	if (!enable)
		return false;
	/* Ordering note (4): publish the wish before looking for new buffers. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_has_avail(q);
}

void virtq_get_state(const struct virtq *q, struct virtq_state *st)
{
	st->last_avail_idx = q->last_avail_idx;
	st->used_idx = q->used_idx;
}

int virtq_set_state(struct virtq *q, const struct virtq_state *st, struct error *err)
{
	uint16_t in_flight = st->last_avail_idx - st->used_idx;

	if (!q->ready)
		return error_set(err, EINVAL, "virtqueue state set before the queue is configured");
	if (in_flight > q->size)
		return error_set(err, EINVAL, "%u chains in flight exceed the queue size %u",
				 in_flight, q->size);
	q->last_avail_idx = st->last_avail_idx;
	q->avail_idx = st->last_avail_idx;
	q->used_idx = st->used_idx;
	q->signalled_valid = false;
	return 0;
}
