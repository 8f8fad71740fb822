// SPDX-License-Identifier: MIT
/*
 * Overlay disks in the block layer: opening and freezing them, and their
 * requests, which keep the contract of disk.h on either engine.
 *
 * A read becomes one sub-request per run of blocks that live in the same
 * layer (one kernel call per run, on that layer's file); runs are issued
 * as queue slots allow and the rest follow from the completions, so a
 * request of any size makes progress with one slot. A write is one
 * sub-request on the top file; the partial head and tail blocks it lands
 * in, if the top does not have them yet, are first copied up
 * synchronously on the calling thread: at most two blocks, 128 KiB read
 * and written, usually page-cache hits. Discard and write-zeroes zero the
 * range in the top file (a hole there would show the layer below); their
 * bits, like a write's, are set when the data is there. The guest request
 * completes when its last sub-request does.
 *
 * A flush that finds new bits syncs the top file, writes those bitmap
 * bytes (synchronously: a few bytes to the page cache) and then queues
 * the fdatasync that completes the guest's flush and makes both durable;
 * with nothing new it is a plain fdatasync. A write-through request that
 * allocated persists the bitmap before it completes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "overlay.h"
#include "queue.h"

/* One guest request on an overlay disk; one per queue slot at most. */
struct ovl_req {
	struct disk_queue *q;
	struct ovl_req *next;
	disk_done_fn cb;
	void *opaque;
	enum disk_op op;
	bool dsync;
	int result;
	unsigned int inflight; /* sub-requests */
	uint64_t off, len;
	uint64_t issued; /* reads: bytes handed to sub-requests so far */
	int iovcnt;
	struct iovec iov[DISK_IOV_MAX]; /* reads: the guest's segments, sliced per run */
};

struct ovl_queue {
	struct ovl_req *reqs, *free;
};

/*
 * Made with the queue of an overlay disk, or on the first request after a
 * snapshot froze a raw disk into one.
 */
static struct ovl_queue *ovl_queue_get(struct disk_queue *q)
{
	struct ovl_queue *oq = q->ovq;

	if (oq)
		return oq;
	oq = calloc(1, sizeof(*oq));
	if (oq)
		oq->reqs = calloc(q->depth, sizeof(*oq->reqs));
	if (!oq || !oq->reqs) {
		free(oq);
		return NULL;
	}
	for (unsigned int i = 0; i < q->depth; i++) {
		oq->reqs[i].q = q;
		oq->reqs[i].next = oq->free;
		oq->free = &oq->reqs[i];
	}
	q->ovq = oq;
	return oq;
}

int ovl_queue_init(struct disk_queue *q)
{
	return ovl_queue_get(q) ? 0 : -ENOMEM;
}

void ovl_queue_free(struct disk_queue *q)
{
	if (!q->ovq)
		return;
	free(q->ovq->reqs);
	free(q->ovq);
	q->ovq = NULL;
}

static int ovl_req_get(struct disk_queue *q, struct ovl_req **out)
{
	struct ovl_queue *oq = ovl_queue_get(q);
	struct ovl_req *p;

	if (!oq)
		return -ENOMEM;
	if (!oq->free || !disk_queue_space(q))
		return -EAGAIN;
	p = oq->free;
	oq->free = p->next;
	p->result = 0;
	p->inflight = 0;
	p->issued = 0;
	*out = p;
	return 0;
}

static void ovl_req_put(struct ovl_req *p)
{
	p->next = p->q->ovq->free;
	p->q->ovq->free = p;
}

/* Bytes [skip, skip + len) of the segments into out; returns the count. */
static int ovl_slice(const struct iovec *iov, int n, uint64_t skip, uint64_t len, struct iovec *out)
{
	int k = 0;

	for (int i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len, take;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		take = l - skip < len ? l - skip : len;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		out[k++].iov_len = take;
		len -= take;
		skip = 0;
	}
	return k;
}

static void ovl_sub_done(void *opaque, int res);

static int ovl_read_more(struct ovl_req *p)
{
	struct disk_queue *q = p->q;
	struct overlay *o = q->disk->ovl;

	while (p->issued < p->len && disk_queue_space(q)) {
		struct iovec sub[DISK_IOV_MAX];
		uint64_t off = p->off + p->issued, run;
		unsigned int i;
		int cnt, ret;

		pthread_mutex_lock(&o->lock);
		run = overlay_run(o, off, p->len - p->issued, &i);
		pthread_mutex_unlock(&o->lock);
		cnt = ovl_slice(p->iov, p->iovcnt, p->issued, run, sub);
		ret = queue_rw_fd(q, o->l[i].fd, DISK_OP_READ, false, sub, cnt,
				  overlay_file_off(o, i, off), run, ovl_sub_done, p);
		if (ret)
			return ret;
		p->inflight++;
		p->issued += run;
	}
	return 0;
}

/* The last part is done: the bits of what was written, then the caller's callback. */
static void ovl_finish(struct ovl_req *p)
{
	struct overlay *o = p->q->disk->ovl;
	disk_done_fn cb = p->cb;
	void *opaque = p->opaque;
	int result = p->result;

	if (!result && p->op != DISK_OP_READ) {
		pthread_mutex_lock(&o->lock);
		overlay_mark(o, p->off, p->len);
		if (p->dsync && overlay_dirty(o))
			result = overlay_persist(o, true);
		pthread_mutex_unlock(&o->lock);
	}
	ovl_req_put(p);
	cb(opaque, result);
}

static void ovl_sub_done(void *opaque, int res)
{
	struct ovl_req *p = opaque;

	p->inflight--;
	if (res < 0 && !p->result)
		p->result = res;
	if (!p->result && p->issued < p->len) {
		int ret = ovl_read_more(p);

		if (ret < 0)
			p->result = ret;
		else if (!p->inflight) /* cannot be: this completion freed a slot */
			p->result = -EIO;
	}
	if (!p->inflight)
		ovl_finish(p);
}

/* Writes and zeroing: the edges copied up, then one sub-request on the top file. */
static int ovl_modify(struct ovl_req *p, const struct iovec *iov, int iovcnt)
{
	struct disk_queue *q = p->q;
	struct overlay *o = q->disk->ovl;
	uint64_t at = overlay_file_off(o, 0, p->off);
	int ret;

	pthread_mutex_lock(&o->lock);
	ret = overlay_copy_up_edges(o, p->off, p->len);
	pthread_mutex_unlock(&o->lock);
	if (ret)
		return ret;
	if (p->op == DISK_OP_WRITE)
		ret = queue_rw_fd(q, o->l[0].fd, DISK_OP_WRITE, p->dsync, iov, iovcnt, at, p->len,
				  ovl_sub_done, p);
	else
		ret = queue_dealloc_fd(q, o->l[0].fd, true, at, p->len, ovl_sub_done, p);
	if (!ret) {
		p->inflight = 1;
		p->issued = p->len;
	}
	return ret;
}

static int ovl_start(struct disk_queue *q, enum disk_op op, bool dsync, const struct iovec *iov,
		     int iovcnt, uint64_t off, uint64_t len, disk_done_fn cb, void *opaque)
{
	struct ovl_req *p;
	int ret = ovl_req_get(q, &p);

	if (ret)
		return ret;
	*p = (struct ovl_req){.q = q,
			      .cb = cb,
			      .opaque = opaque,
			      .op = op,
			      .dsync = dsync,
			      .off = off,
			      .len = len};
	if (op == DISK_OP_READ) {
		memcpy(p->iov, iov, sizeof(*iov) * (size_t)iovcnt);
		p->iovcnt = iovcnt;
		ret = ovl_read_more(p);
	} else {
		ret = ovl_modify(p, iov, iovcnt);
	}
	if (ret && !p->inflight) {
		ovl_req_put(p);
		return ret;
	}
	/* some parts are on their way: the request fails when they are back */
	if (ret)
		p->result = ret;
	return 0;
}

int ovl_rw(struct disk_queue *q, enum disk_op op, bool dsync, const struct iovec *iov, int iovcnt,
	   uint64_t off, uint64_t len, disk_done_fn cb, void *opaque)
{
	/* nothing to split: the kernel still completes it, as on a raw disk */
	if (!len)
		return queue_rw_fd(q, q->disk->fd, op, dsync, iov, iovcnt, 0, 0, cb, opaque);
	return ovl_start(q, op, dsync, iov, iovcnt, off, len, cb, opaque);
}

int ovl_dealloc(struct disk_queue *q, uint64_t off, uint64_t len, disk_done_fn cb, void *opaque)
{
	if (!len)
		return queue_dealloc_fd(q, q->disk->fd, true, 0, 0, cb, opaque);
	return ovl_start(q, DISK_OP_FALLOCATE, false, NULL, 0, off, len, cb, opaque);
}

int ovl_flush(struct disk_queue *q, disk_done_fn cb, void *opaque)
{
	struct overlay *o = q->disk->ovl;
	int ret = 0;

	if (!disk_queue_space(q))
		return -EAGAIN;
	pthread_mutex_lock(&o->lock);
	if (overlay_dirty(o))
		ret = overlay_persist(o, false);
	pthread_mutex_unlock(&o->lock);
	return ret ? ret : queue_flush_fd(q, o->l[0].fd, cb, opaque);
}

/* ---- opening and freezing ---- */

/*
 * overlay= must be a chain that holds path=. Not only directly below the
 * top: after a snapshot the live top sits over the frozen layers and the
 * image is the chain's bottom, and a cold boot names it as it always did.
 */
static int ovl_disk_check_below(struct disk *d, const char *image, struct error *err)
{
	const struct overlay *o = d->ovl;
	struct stat st;

	if (stat(image, &st) < 0)
		return error_set(err, errno, "disk %s: %s", image, strerror(errno));
	for (unsigned int i = 1; i < o->n; i++)
		if (st.st_dev == o->l[i].dev && st.st_ino == o->l[i].ino)
			return 0;
	return error_set(err, EINVAL, "disk %s: overlay %s is over %s, not over this image", image,
			 o->l[0].path, o->l[1].path);
}

static int ovl_disk_prepare(const char *image, const struct disk_opts *opts, struct error *err)
{
	enum ovl_fmt fmt = opts->image_is_overlay ? OVL_FMT_OVERLAY : OVL_FMT_RAW;

	if (opts->read_only)
		return error_set(err, EINVAL, "disk %s: an overlay disk cannot be read-only",
				 image);
	if (opts->direct)
		return error_set(err, EINVAL, "disk %s: direct=on does not work with an overlay",
				 image);
	if (access(opts->overlay, F_OK) == 0)
		return 0;
	if (errno != ENOENT)
		return error_set(err, errno, "disk %s: overlay %s: %s", image, opts->overlay,
				 strerror(errno));
	return overlay_create(opts->overlay, image, fmt, err);
}

int disk_open_overlay(struct disk **out, const char *image, const struct disk_opts *opts,
		      struct error *err)
{
	struct disk *d = calloc(1, sizeof(*d));
	int ret;

	if (!d || !(d->path = strdup(image))) {
		free(d);
		return error_set(err, ENOMEM, "disk %s: out of memory", image);
	}
	d->fd = -1;
	ret = ovl_disk_prepare(image, opts, err);
	if (!ret)
		ret = opts->unlocked ? overlay_open_unlocked(&d->ovl, opts->overlay, err)
				     : overlay_open(&d->ovl, opts->overlay, true, err);
	if (!ret)
		ret = ovl_disk_check_below(d, image, err);
	if (ret) {
		disk_close(d);
		return ret;
	}
	d->fd = d->ovl->l[0].fd;
	d->size = d->ovl->size;
	d->sectors = d->size / DISK_SECTOR_SIZE;
	d->block_size = DISK_SECTOR_SIZE;
	disk_set_id(d, opts->id);
	*out = d;
	return 0;
}

static int ovl_relock(int fd, short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET};

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* A raw disk's image becomes the bottom of a chain under a fresh overlay. */
static int ovl_freeze_raw(struct disk *d, const char *new_top, struct error *err)
{
	struct overlay *o = NULL;
	int ret;

	if (d->direct)
		return error_set(err, EINVAL, "disk %s: a direct=on disk cannot be frozen",
				 d->path);
	/* shared from now on: the overlay opens it again, clones read it */
	ret = ovl_relock(d->fd, F_RDLCK);
	if (ret)
		return error_set(err, -ret, "disk %s: locking: %s", d->path, strerror(-ret));
	ret = overlay_create(new_top, d->path, OVL_FMT_RAW, err);
	if (!ret && overlay_open(&o, new_top, true, err))
		unlink(new_top);
	if (!o) {
		ovl_relock(d->fd, F_WRLCK);
		return -err->code;
	}
	close(d->fd);
	d->ovl = o;
	d->fd = o->l[0].fd;
	return 0;
}

int disk_freeze(struct disk *d, const char *new_top, struct error *err)
{
	int ret;

	if (d->read_only)
		return error_set(err, EROFS, "disk %s is read-only: nothing to freeze", d->path);
	if (!d->ovl)
		return ovl_freeze_raw(d, new_top, err);
	ret = overlay_freeze(&d->ovl, new_top, err);
	if (!ret)
		d->fd = d->ovl->l[0].fd;
	return ret;
}
