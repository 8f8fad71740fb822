/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_BLK_H
#define BUNSHIN_VMM_VIRTIO_BLK_H

#include <stdbool.h>

#include "../block/disk.h"
#include "../block/ratelimit.h"
#include "virtio_pci.h"

/*
 * virtio-blk (virtio 1.2, section 5.2): device ID 2, on a raw image (or a
 * copy-on-write overlay over one: block/overlay.h) through the block layer
 * (src/vmm/block). One request queue, or with queues > 1
 * VIRTIO_BLK_F_MQ and that many, each on a disk queue of its own. Requests
 * are submitted from a queue's notify handler on the I/O thread and
 * complete there too, through that disk queue's eventfd.
 *
 * Rate limits (optional, per disk, shared by its queues): reads and writes
 * take their bytes and one operation from the disk's token buckets,
 * discard and write-zeroes one operation and no bytes (they move no data
 * through guest memory); flush and get-id are free, so a throttled guest
 * can still make its writes durable. A queue out of tokens keeps the chain
 * it popped and pops nothing more until a timerfd on the I/O thread says
 * the tokens are back: nothing is dropped and nothing spins.
 *
 * Discard and write-zeroes take one segment per request (max_*_seg = 1):
 * that keeps one guest request one block-layer request.
 */
#define VIRTIO_ID_BLOCK	      2
#define VIRTIO_BLK_QUEUES     1
#define VIRTIO_BLK_MAX_QUEUES 16
#define VIRTIO_BLK_QSIZE      256
#define VIRTIO_BLK_SEG_MAX    (DISK_IOV_MAX - 2) /* leaves room for header and status */
#define VIRTIO_BLK_CFG_SIZE   60
#define VIRTIO_BLK_BATCH      64 /* requests per notification before yielding */

/* Feature bits (5.2.3) */
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status (5.2.6) */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_HDR_SIZE	   16
#define VIRTIO_BLK_DWZ_SEG_SIZE	   16	    /* struct virtio_blk_discard_write_zeroes */
#define VIRTIO_BLK_WZ_UNMAP	   1	    /* its flags: unmap */
#define VIRTIO_BLK_MAX_DWZ_SECTORS 0x400000 /* 2 GiB per discard/write-zeroes */

/* Device configuration offsets (5.2.4) */
#define VIRTIO_BLK_CFG_CAPACITY	     0
#define VIRTIO_BLK_CFG_SEG_MAX	     12
#define VIRTIO_BLK_CFG_BLK_SIZE	     20
#define VIRTIO_BLK_CFG_NUM_QUEUES    34 /* u16, with VIRTIO_BLK_F_MQ */
#define VIRTIO_BLK_CFG_MAX_DISCARD   36
#define VIRTIO_BLK_CFG_DISCARD_SEG   40
#define VIRTIO_BLK_CFG_DISCARD_ALIGN 44
#define VIRTIO_BLK_CFG_MAX_WZ	     48
#define VIRTIO_BLK_CFG_WZ_SEG	     52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP  56

/* Per second; 0: unlimited. A burst of 0 is one second's worth. */
struct virtio_blk_limits {
	uint64_t iops, iops_burst;
	uint64_t bps, bps_burst;
};

struct virtio_blk_opts {
	const char *path;
	bool read_only;
	bool direct;
	const char *id;				/* NULL: the block layer's default */
	unsigned int queues;			/* request queues, 1..VIRTIO_BLK_MAX_QUEUES */
	const struct virtio_blk_limits *limits; /* NULL: unlimited */
	uint64_t (*clock_ns)(void);		/* NULL: CLOCK_MONOTONIC; tests move their own */
	const char *overlay;			/* copy-on-write top layer, NULL: none */
	bool image_is_overlay;			/* path is an overlay (a snapshot's frozen top) */
	bool unlocked; /* the image's lock is taken later (virtio_blk_set_locked) */
};

/* Requests handed to the block layer, all queues (the control API's metrics). */
struct virtio_blk_stats {
	uint64_t reads, writes, flushes;
	uint64_t write_through; /* of the writes: synchronous, FLUSH not negotiated */
	uint64_t bytes_read, bytes_written;
	uint64_t errors;    /* requests that failed in the block layer */
	uint64_t throttled; /* requests that waited for the rate limit */
};

struct virtio_blk;

/* Opens (and locks) the image and puts the device on root. */
struct virtio_blk *virtio_blk_create(const struct virtio_pci_host *host, struct pci_root *root,
				     const struct virtio_blk_opts *opts, struct error *err);
/*
 * Waits for every request in flight; their status bytes reach guest
 * memory, so call it before that memory goes (the I/O thread paused).
 */
void virtio_blk_drain(struct virtio_blk *blk);
/* The image's lock, handed over by a live migration (disk_set_locked()). */
int virtio_blk_set_locked(struct virtio_blk *blk, bool locked, struct error *err);
/* After the I/O thread stopped and the PCI root is gone; closes the image. */
void virtio_blk_destroy(struct virtio_blk *blk);
struct virtio_pci *virtio_blk_transport(struct virtio_blk *blk);
/* Any thread. */
void virtio_blk_get_stats(struct virtio_blk *blk, struct virtio_blk_stats *out);
/*
 * Any thread. New limits apply to the next request; queues waiting for
 * tokens look again at once. Values above RATELIMIT_MAX are clamped.
 */
void virtio_blk_set_limits(struct virtio_blk *blk, const struct virtio_blk_limits *l);
void virtio_blk_get_limits(struct virtio_blk *blk, struct virtio_blk_limits *out);
/*
 * Snapshots, with the I/O thread paused and nothing in flight: the disk's
 * top layer is frozen and new_top takes the writes (disk_freeze()).
 */
int virtio_blk_freeze(struct virtio_blk *blk, const char *new_top, struct error *err);
const struct disk *virtio_blk_disk(const struct virtio_blk *blk);

#endif
