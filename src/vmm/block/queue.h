/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_BLOCK_QUEUE_H
#define BUNSHIN_VMM_BLOCK_QUEUE_H

/* Private to src/vmm/block: what queue.c shares with the engines. */

#include <liburing.h>

#include "disk.h"

enum disk_op {
	DISK_OP_READ,
	DISK_OP_WRITE,
	DISK_OP_FLUSH,
	DISK_OP_FALLOCATE,	/* discard and write-zeroes */
	DISK_OP_WRITE_ZERO_BUF, /* write-zeroes the slow way: writing a zero buffer */
};

/* One preallocated request slot; the data path never allocates. */
struct disk_req {
	struct disk_queue *q;
	struct disk_req *next; /* free list or synchronous engine's lists */
	enum disk_op op;
	disk_done_fn cb;
	void *opaque;
	uint64_t off; /* next byte to transfer */
	uint64_t len; /* bytes still to transfer */
	int mode;     /* fallocate mode being tried */
	bool zero;    /* write-zeroes: must read as zeroes, may fall back */
	bool dsync;   /* write-through: on stable storage when it completes (RWF_DSYNC) */
	int result;
	int iovidx, iovcnt;
	struct iovec iov[DISK_IOV_MAX]; /* caller's segments, advanced as bytes move */
	struct iovec win[DISK_IOV_MAX]; /* what the current kernel call transfers */
};

struct disk_queue {
	struct disk *disk;
	unsigned depth, inflight;
	uint32_t max_xfer;
	int efd;
	bool uring;
	struct io_uring ring;
	struct disk_req *reqs, *free;
	struct disk_req *pending, **pending_tail; /* sync engine: accepted, not run */
	struct disk_req *done, **done_tail;	  /* sync engine: run, callback due */
	void *zeroes;				  /* DISK_ZERO_BUF bytes for write-zeroes */
};

#define DISK_ZERO_BUF (1u << 20)

/* queue.c: request progress shared by the engines */
int req_window(struct disk_req *r);
/* Feeds the result of one kernel call back; true when the request is finished. */
bool req_progress(struct disk_req *r, int res);
void req_finish(struct disk_req *r);

/* uring.c */
int uring_init(struct disk_queue *q);
void uring_exit(struct disk_queue *q);
int uring_issue(struct disk_req *r);
int uring_submit(struct disk_queue *q);
int uring_complete(struct disk_queue *q, bool wait);

#endif
