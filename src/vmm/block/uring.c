// SPDX-License-Identifier: MIT
/*
 * The io_uring engine: one ring per queue, completions signalled through
 * the queue's eventfd so an epoll-driven I/O thread needs no extra thread.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "queue.h"

int uring_init(struct disk_queue *q)
{
	int ret;

	/*
	 * The SQ holds `depth` entries and the CQ twice that, while at most
	 * `depth` requests are in flight: an SQE is always free and the CQ
	 * never overflows.
	 */
	ret = io_uring_queue_init(q->depth, &q->ring, 0);
	if (ret < 0)
		return ret;
	ret = io_uring_register_eventfd(&q->ring, q->efd);
	if (ret < 0)
		io_uring_queue_exit(&q->ring);
	return ret;
}

void uring_exit(struct disk_queue *q)
{
	io_uring_unregister_eventfd(&q->ring);
	io_uring_queue_exit(&q->ring);
}

static void uring_prep(struct io_uring_sqe *sqe, struct disk_req *r)
{
	int fd = r->fd;

	switch (r->op) {
	case DISK_OP_READ:
		io_uring_prep_readv(sqe, fd, r->win, (unsigned)req_window(r), r->off);
		break;
	case DISK_OP_WRITE:
	case DISK_OP_WRITE_ZERO_BUF:
		io_uring_prep_writev(sqe, fd, r->win, (unsigned)req_window(r), r->off);
		if (r->dsync)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case DISK_OP_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case DISK_OP_FALLOCATE:
		io_uring_prep_fallocate(sqe, fd, r->mode, (off_t)r->off, (off_t)r->len);
		break;
	}
	io_uring_sqe_set_data(sqe, r);
}

int uring_issue(struct disk_req *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->q->ring);

	if (!sqe) {
		/* cannot happen by the sizing above; stay safe if it does */
		io_uring_submit(&r->q->ring);
		sqe = io_uring_get_sqe(&r->q->ring);
		if (!sqe)
			return -EBUSY;
	}
	uring_prep(sqe, r);
	return 0;
}

int uring_submit(struct disk_queue *q)
{
	int ret = io_uring_submit(&q->ring);

	/* transient: the entries stay in the SQ and go with the next submit */
	if (ret == -EAGAIN || ret == -EBUSY || ret == -EINTR)
		return 0;
	return ret < 0 ? ret : 0;
}

/* Returns 1 when the request finished, 0 when it went back for more. */
static int uring_reap(struct disk_req *r, int res)
{
	if (!req_progress(r, res)) {
		res = uring_issue(r);
		if (res == 0)
			return 0;
		r->result = res;
	}
	req_finish(r);
	return 1;
}

int uring_complete(struct disk_queue *q, bool wait)
{
	struct io_uring_cqe *cqe;
	int n = 0, ret;

	if (wait) {
		do {
			ret = io_uring_wait_cqe(&q->ring, &cqe);
		} while (ret == -EINTR);
		if (ret < 0)
			return ret;
	}
	while (io_uring_peek_cqe(&q->ring, &cqe) == 0) {
		struct disk_req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		/* seen before the callback, which may queue more */
		io_uring_cqe_seen(&q->ring, cqe);
		n += uring_reap(r, res);
	}
	return n;
}
