/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTQ_H
#define BUNSHIN_VMM_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../kvm/gmem.h"
#include "../../common/error.h"

/*
 * Split virtqueues (virtio 1.2, section 2.7), device side.
 *
 * This is the only code in bunshin that parses rings written by the guest.
 * The guest is untrusted and runs concurrently on other CPUs while we read:
 * every field is fetched exactly once into a local before it is checked and
 * used, every address goes through gmem_ptr(), every loop is bounded by a
 * count rather than by what the guest wrote.
 *
 * A malformed ring makes virtq_pop() return a negative errno that names the
 * fault (table below) and marks the queue broken: it pops nothing more until
 * virtq_reset(). The transport then sets DEVICE_NEEDS_RESET. The element
 * being parsed is abandoned; nothing is written to the used ring for it.
 *
 *   -EOVERFLOW   avail->idx is more than the queue size ahead of what the
 *                device has consumed, or the driver offered more chains than
 *                it can have outstanding
 *   -ERANGE      head index in the available ring >= queue size
 *   -ENXIO       descriptor `next` >= queue size (or >= indirect table entries)
 *   -ELOOP       chain longer than the queue size / indirect table: a loop
 *   -EOPNOTSUPP  VIRTQ_DESC_F_INDIRECT used but VIRTIO_F_INDIRECT_DESC not
 *                negotiated
 *   -EMLINK      indirect descriptor inside an indirect table
 *   -EBADMSG     descriptor with both INDIRECT and NEXT
 *   -EMSGSIZE    indirect table length 0, not a multiple of 16, or more than
 *                VIRTQ_INDIRECT_MAX entries
 *   -EFAULT      buffer or indirect table not wholly inside guest RAM
 *                (addr + len overflowing 64 bits included)
 *   -EFBIG       total length of the chain above UINT32_MAX (virtio 1.2
 *                2.7.5.1: chains are at most 2^32 bytes; used.len is 32-bit)
 *   -EPROTO      device-readable descriptor after a device-writable one
 *   -E2BIG       more segments than the caller's max_segs
 *
 * Host pointers: each ring is checked whole by gmem_ptr() when the queue is
 * configured (its extent depends on the size and on EVENT_IDX), and is then
 * indexed only with indices masked or checked against the size; indirect
 * tables and buffers go through gmem_ptr() every time they are met.
 *
 * One struct virtq is driven by one thread at a time (the device's I/O
 * thread); the only concurrency it handles is the guest's.
 *
 * Zero-length descriptors: the specification does not forbid them, so they
 * are accepted. They carry no data, produce no segment, and their address is
 * not looked at, but they count towards the chain length and the
 * readable-before-writable rule.
 */

#define VIRTQ_MAX_SIZE 32768U
/* Bound on entries in one indirect table: the spec gives none beyond the
 * 2^32-byte chain limit, so use the largest queue size (a 512 KiB table). */
#define VIRTQ_INDIRECT_MAX VIRTQ_MAX_SIZE

/* Feature bits (virtio 1.2, 6) that change how the ring is parsed. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29

#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

/* Ring layouts, little-endian, as the guest lays them out. */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* [size], then used_event with EVENT_IDX */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* [size], then avail_event with EVENT_IDX */
};

/* What the driver programmed through the transport. */
struct virtq_config {
	uint32_t size;	    /* power of two, 1..VIRTQ_MAX_SIZE */
	uint64_t desc_gpa;  /* 16-byte aligned, 16 * size bytes */
	uint64_t avail_gpa; /* 2-byte aligned, 4 + 2 * size (+ 2 with EVENT_IDX) */
	uint64_t used_gpa;  /* 4-byte aligned, 4 + 8 * size (+ 2 with EVENT_IDX) */
	uint64_t features;  /* negotiated feature bits; only the two above matter */
};

/*
 * One popped chain. The caller sets iov and max_segs (the device's segment
 * limit, e.g. IOV_MAX = 1024, or what it advertised as seg_max plus its
 * headers); virtq_pop() fills in the rest: device-readable segments are
 * iov[0, out_num), device-writable ones iov[out_num, out_num + in_num).
 * Each iov_base points into guest RAM and is valid for iov_len bytes; the
 * guest may change those bytes at any time, so read each one once. On error
 * the contents are unspecified.
 */
struct virtq_elem {
	struct iovec *iov;
	unsigned int max_segs;

	uint16_t head; /* hand back to virtq_push() */
	unsigned int out_num;
	unsigned int in_num;
	uint32_t out_len; /* total bytes the device may read */
	uint32_t in_len;  /* total bytes the device may write */
};

/* Indices that survive a snapshot. */
struct virtq_state {
	uint16_t last_avail_idx;
	uint16_t used_idx;
};

struct virtq {
	const struct gmem *mem;
	bool ready;
	bool indirect;
	bool event_idx;
	bool notify;   /* device wants available-buffer notifications */
	int broken;    /* 0, or the negative errno that broke the queue */
	uint32_t size; /* power of two */

	/* Host views of the rings, each checked whole by gmem_ptr(). */
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;

	uint16_t last_avail_idx; /* next avail ring slot to consume */
	uint16_t avail_idx;	 /* avail->idx as last read */
	uint16_t used_idx;	 /* used->idx as last written: we are its only writer */
	uint16_t signalled_used; /* used_idx at the last notification decision */
	bool signalled_valid;
	char broken_msg[sizeof(((struct error *)0)->msg)];
};

/* Binds the queue to guest memory; it is not ready until configured. */
void virtq_init(struct virtq *q, const struct gmem *mem);

/* Validates cfg (returns -EINVAL with the reason) and makes the queue ready
 * with both indices at 0. */
int virtq_configure(struct virtq *q, const struct virtq_config *cfg, struct error *err);

/* Back to the state after virtq_init(): not ready, not broken, indices 0. */
void virtq_reset(struct virtq *q);

/*
 * Pops the next available chain into e. Returns 1 with e filled in, 0 when
 * the ring is empty, -ENODEV when the queue is not ready, or one of the
 * errors above (also returned, unchanged, by every later call while broken).
 */
int virtq_pop(struct virtq *q, struct virtq_elem *e, struct error *err);

/*
 * Returns chains to the driver: writes the used elements, then used->idx
 * (release). written_len is trusted: it must not exceed the chain's in_len. -EINVAL when a head is
 * >= size, -ENOSPC when more are pushed than were popped, -ENODEV when not ready; nothing is
 * written then. Allowed on a broken queue, so requests in flight still complete.
 */
int virtq_push(struct virtq *q, uint16_t head, uint32_t written_len);
int virtq_push_batch(struct virtq *q, const struct virtq_used_elem *elems, unsigned int n);

/*
 * After pushing: does the driver want a used-buffer notification (an
 * interrupt)? Honours VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with
 * EVENT_IDX. Each call consumes the pushes made since the previous one.
 */
bool virtq_needs_notify(struct virtq *q);

/*
 * Asks the driver for (enable) or to stop (disable) available-buffer
 * notifications, through used->flags or avail_event. When enabling, returns
 * true if buffers became available meanwhile: the caller must pop again
 * rather than wait, or it could sleep on a buffer nobody will notify.
 */
bool virtq_set_notify(struct virtq *q, bool enable);

/* True when avail->idx shows chains not yet popped. */
bool virtq_has_avail(struct virtq *q);

static inline bool virtq_is_ready(const struct virtq *q)
{
	return q->ready;
}

/* 0, or the negative errno that broke the queue. */
static inline int virtq_broken(const struct virtq *q)
{
	return q->broken;
}

void virtq_get_state(const struct virtq *q, struct virtq_state *st);
/* -EINVAL when more chains would be in flight than the queue holds. */
int virtq_set_state(struct virtq *q, const struct virtq_state *st, struct error *err);

#endif
