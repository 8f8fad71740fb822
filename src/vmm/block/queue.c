// SPDX-License-Identifier: MIT
/*
 * Request queues: slots, validation and progress shared by both engines,
 * and the synchronous engine (preadv/pwritev) used where io_uring is not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "queue.h"

#define DEFAULT_DEPTH 128
#define MAX_DEPTH     4096

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Bytes the next kernel call may move: the whole rest unless capped. */
static uint64_t req_cap(const struct disk_req *r)
{
	uint32_t cap = r->q->max_xfer;

	return cap ? min_u64(r->len, cap) : r->len;
}

int req_window(struct disk_req *r)
{
	uint64_t left = req_cap(r);
	int i, n = 0;

	if (r->op == DISK_OP_WRITE_ZERO_BUF) {
		r->win[0].iov_base = r->q->zeroes;
		r->win[0].iov_len = min_u64(left, DISK_ZERO_BUF);
		return 1;
	}
	for (i = r->iovidx; i < r->iovcnt && left; i++) {
		size_t l = min_u64(r->iov[i].iov_len, left);

		if (!l)
			continue;
		r->win[n].iov_base = r->iov[i].iov_base;
		r->win[n++].iov_len = l;
		left -= l;
	}
	return n;
}

/* Moves past `n` transferred bytes, in the image and in the segments. */
static void req_advance(struct disk_req *r, size_t n)
{
	r->off += n;
	r->len -= n;
	if (r->op == DISK_OP_WRITE_ZERO_BUF)
		return;
	while (n && r->iovidx < r->iovcnt) {
		struct iovec *v = &r->iov[r->iovidx];

		if (n < v->iov_len) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= n;
			return;
		}
		n -= v->iov_len;
		r->iovidx++;
	}
}

/*
 * A file system without the fallocate mode asked for: write-zeroes tries
 * ZERO_RANGE, then PUNCH_HOLE (reads back zeroes and frees blocks), then
 * writes zeroes. Returns true when there is another way to try.
 */
static bool req_fallback(struct disk_req *r)
{
	if (!r->zero)
		return false;
	if (r->mode & FALLOC_FL_ZERO_RANGE) {
		r->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		return true;
	}
	if (r->q->disk->direct && r->len % r->q->disk->dio_off_align)
		return false;
	r->op = DISK_OP_WRITE_ZERO_BUF;
	return true;
}

bool req_progress(struct disk_req *r, int res)
{
	if (res == -EINTR || res == -EAGAIN)
		return false;
	if (res == -EOPNOTSUPP && r->op == DISK_OP_FALLOCATE && req_fallback(r))
		return false;
	if (res < 0) {
		r->result = res;
		return true;
	}
	if (r->op == DISK_OP_FLUSH || r->op == DISK_OP_FALLOCATE)
		return true;
	/* the image shrank under us: never hand out made-up data */
	if (res == 0 && r->len) {
		r->result = -EIO;
		return true;
	}
	req_advance(r, (size_t)res);
	return r->len == 0;
}

/* Frees the slot before the callback so the callback can queue more. */
void req_finish(struct disk_req *r)
{
	struct disk_queue *q = r->q;
	disk_done_fn cb = r->cb;
	void *opaque = r->opaque;
	int result = r->result;

	r->next = q->free;
	q->free = r;
	q->inflight--;
	cb(opaque, result);
}

/* --- synchronous engine --- */

static int sync_call(struct disk_req *r)
{
	int fd = r->fd;
	ssize_t n = 0;

	switch (r->op) {
	case DISK_OP_READ:
		n = preadv(fd, r->win, req_window(r), (off_t)r->off);
		break;
	case DISK_OP_WRITE:
	case DISK_OP_WRITE_ZERO_BUF:
		n = pwritev2(fd, r->win, req_window(r), (off_t)r->off, r->dsync ? RWF_DSYNC : 0);
		break;
	case DISK_OP_FLUSH:
		n = fdatasync(fd);
		break;
	case DISK_OP_FALLOCATE:
		n = fallocate(fd, r->mode, (off_t)r->off, (off_t)r->len);
		break;
	}
	return n < 0 ? -errno : (int)n;
}

static void sync_run(struct disk_req *r)
{
	while (!req_progress(r, sync_call(r)))
		;
}

static void eventfd_kick(int efd)
{
	uint64_t one = 1;

	/* only fails when the counter is about to overflow: it is set then */
	if (write(efd, &one, sizeof(one)) < 0)
		return;
}

/* Runs every pending request; their callbacks follow in complete(). */
static void sync_submit(struct disk_queue *q)
{
	struct disk_req *r = q->pending;

	if (!r)
		return;
	q->pending = NULL;
	q->pending_tail = &q->pending;
	for (; r; r = r->next) {
		sync_run(r);
		*q->done_tail = r;
		q->done_tail = &r->next;
	}
	*q->done_tail = NULL;
	eventfd_kick(q->efd);
}

static int sync_complete(struct disk_queue *q)
{
	struct disk_req *r = q->done, *next;
	int n = 0;

	q->done = NULL;
	q->done_tail = &q->done;
	for (; r; r = next, n++) {
		next = r->next;
		req_finish(r);
	}
	return n;
}

/* --- requests --- */

static int check_range(const struct disk *d, uint64_t off, uint64_t len)
{
	if (off > d->size || len > d->size - off)
		return -EINVAL;
	if (d->direct && (off % d->dio_off_align || len % d->dio_off_align))
		return -EINVAL;
	return 0;
}

static int check_iov(const struct disk *d, const struct iovec *iov, int iovcnt, uint64_t *len)
{
	uint64_t sum = 0;
	int i;

	if (iovcnt < 0 || iovcnt > DISK_IOV_MAX)
		return -EINVAL;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > UINT64_MAX - sum)
			return -EINVAL;
		sum += iov[i].iov_len;
		if (d->direct && ((uintptr_t)iov[i].iov_base % d->dio_mem_align ||
				  iov[i].iov_len % d->dio_off_align))
			return -EINVAL;
	}
	*len = sum;
	return 0;
}

static struct disk_req *req_get(struct disk_queue *q, enum disk_op op, disk_done_fn cb,
				void *opaque)
{
	struct disk_req *r = q->free;

	if (!r)
		return NULL;
	q->free = r->next;
	r->fd = q->disk->fd;
	r->op = op;
	r->cb = cb;
	r->opaque = opaque;
	r->result = 0;
	r->zero = false;
	r->dsync = false;
	r->mode = 0;
	r->iovidx = 0;
	r->iovcnt = 0;
	r->off = 0;
	r->len = 0;
	return r;
}

static int req_queue(struct disk_queue *q, struct disk_req *r)
{
	if (q->uring) {
		int ret = uring_issue(r);

		if (ret < 0) {
			r->next = q->free;
			q->free = r;
			return ret;
		}
	} else {
		r->next = NULL;
		*q->pending_tail = r;
		q->pending_tail = &r->next;
	}
	q->inflight++;
	return 0;
}

int queue_rw_fd(struct disk_queue *q, int fd, enum disk_op op, bool dsync, const struct iovec *iov,
		int iovcnt, uint64_t off, uint64_t len, disk_done_fn cb, void *opaque)
{
	struct disk_req *r = req_get(q, op, cb, opaque);

	if (!r)
		return -EAGAIN;
	memcpy(r->iov, iov, sizeof(*iov) * (size_t)iovcnt);
	r->fd = fd;
	r->dsync = dsync;
	r->iovcnt = iovcnt;
	r->off = off;
	r->len = len;
	return req_queue(q, r);
}

static int rw(struct disk_queue *q, enum disk_op op, bool dsync, const struct iovec *iov,
	      int iovcnt, uint64_t off, disk_done_fn cb, void *opaque)
{
	uint64_t len;
	int ret;

	if (op == DISK_OP_WRITE && q->disk->read_only)
		return -EROFS;
	ret = check_iov(q->disk, iov, iovcnt, &len);
	if (ret == 0)
		ret = check_range(q->disk, off, len);
	if (ret < 0)
		return ret;
	/* the one test raw disks pay for overlays */
	if (q->disk->ovl)
		return ovl_rw(q, op, dsync, iov, iovcnt, off, len, cb, opaque);
	return queue_rw_fd(q, q->disk->fd, op, dsync, iov, iovcnt, off, len, cb, opaque);
}

int disk_readv(struct disk_queue *q, const struct iovec *iov, int iovcnt, uint64_t off,
	       disk_done_fn cb, void *opaque)
{
	return rw(q, DISK_OP_READ, false, iov, iovcnt, off, cb, opaque);
}

int disk_writev(struct disk_queue *q, const struct iovec *iov, int iovcnt, uint64_t off,
		disk_done_fn cb, void *opaque)
{
	return rw(q, DISK_OP_WRITE, false, iov, iovcnt, off, cb, opaque);
}

int disk_writev_sync(struct disk_queue *q, const struct iovec *iov, int iovcnt, uint64_t off,
		     disk_done_fn cb, void *opaque)
{
	return rw(q, DISK_OP_WRITE, true, iov, iovcnt, off, cb, opaque);
}

int queue_flush_fd(struct disk_queue *q, int fd, disk_done_fn cb, void *opaque)
{
	struct disk_req *r = req_get(q, DISK_OP_FLUSH, cb, opaque);

	if (!r)
		return -EAGAIN;
	r->fd = fd;
	return req_queue(q, r);
}

int disk_flush(struct disk_queue *q, disk_done_fn cb, void *opaque)
{
	if (q->disk->ovl)
		return ovl_flush(q, cb, opaque);
	return queue_flush_fd(q, q->disk->fd, cb, opaque);
}

int queue_dealloc_fd(struct disk_queue *q, int fd, bool zero, uint64_t off, uint64_t len,
		     disk_done_fn cb, void *opaque)
{
	struct disk_req *r = req_get(q, DISK_OP_FALLOCATE, cb, opaque);

	if (!r)
		return -EAGAIN;
	r->fd = fd;
	r->zero = zero;
	r->mode = zero ? FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
		       : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	r->off = off;
	r->len = len;
	return req_queue(q, r);
}

static int dealloc(struct disk_queue *q, bool zero, uint64_t off, uint64_t len, disk_done_fn cb,
		   void *opaque)
{
	int ret;

	if (q->disk->read_only)
		return -EROFS;
	ret = check_range(q->disk, off, len);
	if (ret < 0)
		return ret;
	/* a hole in an overlay would show the layer below: both zero there */
	if (q->disk->ovl)
		return ovl_dealloc(q, off, len, cb, opaque);
	return queue_dealloc_fd(q, q->disk->fd, zero, off, len, cb, opaque);
}

int disk_discard(struct disk_queue *q, uint64_t off, uint64_t len, disk_done_fn cb, void *opaque)
{
	return dealloc(q, false, off, len, cb, opaque);
}

int disk_write_zeroes(struct disk_queue *q, uint64_t off, uint64_t len, disk_done_fn cb,
		      void *opaque)
{
	return dealloc(q, true, off, len, cb, opaque);
}

/* --- queue life cycle --- */

int disk_queue_submit(struct disk_queue *q)
{
	if (q->uring)
		return uring_submit(q);
	sync_submit(q);
	return 0;
}

int disk_queue_complete(struct disk_queue *q)
{
	uint64_t cnt;
	int n;

	/* reset the eventfd first: what completes after this sets it again */
	if (read(q->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	n = q->uring ? uring_complete(q, false) : sync_complete(q);
	/* resubmissions and whatever the callbacks queued */
	disk_queue_submit(q);
	return n;
}

void disk_queue_drain(struct disk_queue *q)
{
	while (q->inflight) {
		disk_queue_submit(q);
		if (q->uring)
			uring_complete(q, true);
		else
			sync_complete(q);
	}
}

static int queue_engine(struct disk_queue *q, bool force_sync, struct error *err)
{
	int ret;

	if (force_sync)
		return 0;
	ret = uring_init(q);
	if (ret == 0) {
		q->uring = true;
		return 0;
	}
	/* no io_uring in this kernel, or forbidden by seccomp or sysctl */
	if (ret == -ENOSYS || ret == -EPERM)
		return 0;
	return error_set(err, -ret, "disk %s: io_uring: %s", q->disk->path, strerror(-ret));
}

static int queue_alloc(struct disk_queue *q, struct error *err)
{
	unsigned i;

	q->reqs = calloc(q->depth, sizeof(*q->reqs));
	/* anonymous memory is zero and page aligned, as O_DIRECT wants */
	q->zeroes = mmap(NULL, DISK_ZERO_BUF, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->zeroes == MAP_FAILED)
		q->zeroes = NULL;
	if (!q->reqs || !q->zeroes)
		return error_set(err, ENOMEM, "disk %s: out of memory", q->disk->path);
	for (i = 0; i < q->depth; i++) {
		q->reqs[i].q = q;
		q->reqs[i].next = q->free;
		q->free = &q->reqs[i];
	}
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		return error_set(err, errno, "disk %s: eventfd: %s", q->disk->path,
				 strerror(errno));
	return 0;
}

static void queue_set_max_xfer(struct disk_queue *q, uint32_t max_xfer)
{
	uint32_t align = q->disk->direct ? q->disk->dio_off_align : 1;

	/* direct I/O can only be split on alignment boundaries */
	q->max_xfer = max_xfer / align * align;
	if (max_xfer && !q->max_xfer)
		q->max_xfer = align;
}

int disk_queue_new(struct disk_queue **out, struct disk *disk, const struct disk_queue_opts *opts,
		   struct error *err)
{
	struct disk_queue *q = calloc(1, sizeof(*q));
	unsigned depth = opts && opts->depth ? opts->depth : DEFAULT_DEPTH;
	int ret;

	if (!q)
		return error_set(err, ENOMEM, "disk %s: out of memory", disk->path);
	q->disk = disk;
	q->efd = -1;
	q->depth = depth > MAX_DEPTH ? MAX_DEPTH : depth;
	q->pending_tail = &q->pending;
	q->done_tail = &q->done;
	queue_set_max_xfer(q, opts ? opts->max_xfer : 0);
	ret = queue_alloc(q, err);
	if (ret == 0)
		ret = queue_engine(q, opts && opts->force_sync, err);
	if (ret == 0 && disk->ovl && ovl_queue_init(q))
		ret = error_set(err, ENOMEM, "disk %s: out of memory", disk->path);
	if (ret < 0) {
		disk_queue_free(q);
		return ret;
	}
	*out = q;
	return 0;
}

void disk_queue_free(struct disk_queue *q)
{
	if (!q)
		return;
	disk_queue_drain(q);
	ovl_queue_free(q);
	if (q->uring)
		uring_exit(q);
	if (q->efd >= 0)
		close(q->efd);
	if (q->zeroes)
		munmap(q->zeroes, DISK_ZERO_BUF);
	free(q->reqs);
	free(q);
}

int disk_queue_eventfd(const struct disk_queue *q)
{
	return q->efd;
}

bool disk_queue_is_uring(const struct disk_queue *q)
{
	return q->uring;
}

unsigned disk_queue_space(const struct disk_queue *q)
{
	return q->depth - q->inflight;
}

unsigned disk_queue_inflight(const struct disk_queue *q)
{
	return q->inflight;
}
