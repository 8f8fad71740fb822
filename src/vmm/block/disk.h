/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_BLOCK_DISK_H
#define BUNSHIN_VMM_BLOCK_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../common/error.h"

/*
 * The block layer: a disk image (struct disk) and the queues that do I/O on
 * it (struct disk_queue, one per I/O thread). It knows nothing of virtio;
 * virtio-blk turns guest requests into the calls below.
 *
 * Request contract, the same for both engines:
 *  - disk_readv() and friends either refuse the request at once and return
 *    a negative errno (the callback is then never called), or accept it,
 *    return 0 and later call the callback exactly once, from
 *    disk_queue_complete() or disk_queue_drain(), never from inside the
 *    enqueue call itself.
 *  - Refusals: -EAGAIN when all queue-depth slots are in use (backpressure:
 *    retry after a completion), -EINVAL for a range that does not lie
 *    entirely inside the image or more than DISK_IOV_MAX segments, -EINVAL
 *    for requests that break O_DIRECT alignment on a direct disk (they are
 *    refused, not bounced: guests issue sector-aligned I/O), -EROFS for
 *    writes, discards and write-zeroes on a read-only disk.
 *  - The callback gets 0 when every byte was transferred (short transfers
 *    are resubmitted for the remainder), or a negative errno. An image that
 *    shrank underneath us reads as -EIO, never as silent zeroes.
 *  - Accepted requests are only queued; disk_queue_submit() hands the batch
 *    to the kernel.
 *  - The iovec array is copied; the buffers it points to must stay valid
 *    until the callback runs.
 */

#define DISK_SECTOR_SIZE 512
#define DISK_ID_BYTES	 20  /* virtio-blk's serial number field */
#define DISK_IOV_MAX	 128 /* segments per request */

struct disk_opts {
	bool read_only;
	bool direct;	/* O_DIRECT: bypass the host page cache */
	const char *id; /* serial reported to the guest; NULL: the file name */
	/*
	 * Copy-on-write (block/overlay.h): the guest writes into this overlay
	 * file (created over the image if missing) and the image is only read.
	 */
	const char *overlay;
	bool image_is_overlay; /* the image itself is an overlay (a snapshot's frozen top) */
	bool unlocked;	       /* leave the lock to disk_set_locked() (an incoming migration) */
};

struct overlay;

struct disk {
	int fd;
	char *path;
	char id[DISK_ID_BYTES + 1];
	bool read_only;
	bool direct;
	bool is_blkdev;
	uint64_t size;		/* bytes */
	uint64_t sectors;	/* 512-byte sectors, rounded down */
	uint32_t block_size;	/* logical block size */
	uint32_t dio_mem_align; /* O_DIRECT buffer alignment (direct only) */
	uint32_t dio_off_align; /* O_DIRECT offset/length alignment (direct only) */
	struct overlay *ovl;	/* NULL: a raw disk; else fd is the overlay's top */
};

/* Opens and locks an image. Returns 0 or a negative errno with err filled. */
int disk_open(struct disk **out, const char *path, const struct disk_opts *opts, struct error *err);
/*
 * Snapshot freeze (nothing in flight): the disk's current top layer (the
 * raw image, or the overlay on top) is never written again and a fresh
 * overlay at new_top takes the guest's writes from now on. On failure the
 * disk carries on as it was.
 */
int disk_freeze(struct disk *disk, const char *new_top, struct error *err);

/*
 * Takes (locked) or lets go of the image's lock: how a live migration
 * hands an image over between two processes. Taking it fails with -EBUSY
 * while someone else holds it.
 */
int disk_set_locked(struct disk *d, bool locked, struct error *err);
/* Releases the lock and closes the image; every queue must be freed first. */
void disk_close(struct disk *disk);
/* Copies the id into buf (up to DISK_ID_BYTES, NUL-padded, not terminated
 * when it fills the field, as virtio-blk wants). Returns its length. */
size_t disk_get_id(const struct disk *disk, char *buf, size_t len);

typedef void (*disk_done_fn)(void *opaque, int result);

struct disk_queue_opts {
	unsigned depth;	   /* in-flight requests; 0: 128 */
	bool force_sync;   /* use preadv/pwritev even if io_uring works */
	uint32_t max_xfer; /* bytes per kernel call, 0: unlimited; smaller
			    * requests are split as if the kernel returned
			    * short counts (keeps latency bounded, and lets
			    * tests drive the short-I/O path) */
};

struct disk_queue;

int disk_queue_new(struct disk_queue **out, struct disk *disk, const struct disk_queue_opts *opts,
		   struct error *err);
/* Waits for every request in flight (running its callback), then frees. */
void disk_queue_free(struct disk_queue *q);
/* Readable when disk_queue_complete() has work; poll/epoll it. */
int disk_queue_eventfd(const struct disk_queue *q);
/* True when the queue runs on io_uring, false on the synchronous fallback. */
bool disk_queue_is_uring(const struct disk_queue *q);
/* Free request slots. */
unsigned disk_queue_space(const struct disk_queue *q);
/* Requests accepted and not yet completed. */
unsigned disk_queue_inflight(const struct disk_queue *q);

int disk_readv(struct disk_queue *q, const struct iovec *iov, int iovcnt, uint64_t off,
	       disk_done_fn cb, void *opaque);
int disk_writev(struct disk_queue *q, const struct iovec *iov, int iovcnt, uint64_t off,
		disk_done_fn cb, void *opaque);
/* disk_writev() that completes only once the data is on stable storage (RWF_DSYNC). */
int disk_writev_sync(struct disk_queue *q, const struct iovec *iov, int iovcnt, uint64_t off,
		     disk_done_fn cb, void *opaque);
/* Completes once everything written before it is on stable storage. */
int disk_flush(struct disk_queue *q, disk_done_fn cb, void *opaque);
/* Deallocates a range; it reads back as zeroes afterwards. */
int disk_discard(struct disk_queue *q, uint64_t off, uint64_t len, disk_done_fn cb, void *opaque);
/* Makes a range read as zeroes, deallocating where the file system can. */
int disk_write_zeroes(struct disk_queue *q, uint64_t off, uint64_t len, disk_done_fn cb,
		      void *opaque);

/* Hands queued requests to the kernel. Returns 0 or a negative errno. */
int disk_queue_submit(struct disk_queue *q);
/* Runs the callbacks of finished requests (call when the eventfd is
 * readable; harmless otherwise). Returns how many requests completed. */
int disk_queue_complete(struct disk_queue *q);
/* Blocks until no request is in flight, running callbacks. */
void disk_queue_drain(struct disk_queue *q);

#endif
