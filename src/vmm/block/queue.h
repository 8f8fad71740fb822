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
	int fd;		       /* the disk's, or an overlay layer's */
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
	struct ovl_queue *ovq;			  /* overlay disks: their split requests */
};

#define DISK_ZERO_BUF (1u << 20)

/* queue.c: request progress shared by the engines */
int req_window(struct disk_req *r);
/* Feeds the result of one kernel call back; true when the request is finished. */
bool req_progress(struct disk_req *r, int res);
void req_finish(struct disk_req *r);

/* queue.c: one request on fd at off, already checked (overlays split into these) */
int queue_rw_fd(struct disk_queue *q, int fd, enum disk_op op, bool dsync, const struct iovec *iov,
		int iovcnt, uint64_t off, uint64_t len, disk_done_fn cb, void *opaque);
int queue_dealloc_fd(struct disk_queue *q, int fd, bool zero, uint64_t off, uint64_t len,
		     disk_done_fn cb, void *opaque);
int queue_flush_fd(struct disk_queue *q, int fd, disk_done_fn cb, void *opaque);

/* overlay_io.c: requests on an overlay disk (range and segments checked) */
struct ovl_queue;
int ovl_rw(struct disk_queue *q, enum disk_op op, bool dsync, const struct iovec *iov, int iovcnt,
	   uint64_t off, uint64_t len, disk_done_fn cb, void *opaque);
int ovl_dealloc(struct disk_queue *q, uint64_t off, uint64_t len, disk_done_fn cb, void *opaque);
int ovl_flush(struct disk_queue *q, disk_done_fn cb, void *opaque);
int ovl_queue_init(struct disk_queue *q);
void ovl_queue_free(struct disk_queue *q);
int disk_open_overlay(struct disk **out, const char *image, const struct disk_opts *opts,
		      struct error *err);

/* raw.c */
void disk_set_id(struct disk *d, const char *id);

/* uring.c */
int uring_init(struct disk_queue *q);
void uring_exit(struct disk_queue *q);
int uring_issue(struct disk_req *r);
int uring_submit(struct disk_queue *q);
int uring_complete(struct disk_queue *q, bool wait);

#endif
