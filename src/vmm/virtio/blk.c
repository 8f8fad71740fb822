// SPDX-License-Identifier: MIT
/*
 * The block device (virtio 1.2, section 5.2). A request is a chain: a
 * 16-byte header (type, reserved, sector) in the device-readable part, then
 * data, then one status byte at the very end of the device-writable part.
 * Everything in it comes from the guest and is checked here before the
 * block layer sees it; a malformed request fails with IOERR and the queue
 * carries on.
 *
 * Multiqueue (VIRTIO_BLK_F_MQ): each request queue has a block-layer queue
 * of its own (its own io_uring and completion eventfd) and its own request
 * slots, so queues share no submission state; a request popped from queue
 * n completes on queue n's used ring.
 *
 * Locking: the transport's mutex is held in every ops callback; each
 * queue's bq->lock guards its disk queue and request slots and nests inside
 * it. Block layer callbacks run under bq->lock only (from
 * disk_queue_complete() or disk_queue_drain()), so they never touch the
 * ring: they record what to push, and whoever ran them pushes it with the
 * transport's mutex held (the notify handler, or the completion handler
 * through virtio_pci_with_queue()).
 *
 * Rate limit: one struct ratelimit per disk under rl_lock, which nests
 * inside a queue's lock. A queue out of tokens keeps its chain pending (as
 * for -EAGAIN), sets its bit in rl_waiting and arms the disk's timerfd for
 * when the tokens will be there; the timer handler clears the bits and
 * kicks those queues, and any that comes up short again re-arms it. So at
 * most one chain per queue waits, and only the timer wakes it: a
 * completion does not (it would find no tokens either).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../../common/log.h"
#include "blk.h"
#include "../../common/le.h"
#include "../../common/iov.h"

#define VIRTIO_BLK_CLASS     0x018000		/* mass storage, other */
#define VIRTIO_BLK_POP_SEGS  (DISK_IOV_MAX + 4) /* header and status may be split */
#define VIRTIO_BLK_NO_STATUS 0xff

struct blk_queue;

struct blk_req {
	struct blk_queue *bq;
	uint8_t *status;  /* the guest's status byte */
	uint32_t written; /* used length on success, status byte included */
	uint16_t head;
	int next_free;
};

/* One request queue and the block-layer queue behind it. */
struct blk_queue {
	struct virtio_blk *blk;
	unsigned int index;
	struct disk_queue *dq;
	bool watched;
	pthread_mutex_t lock; /* everything below */

	struct blk_req reqs[VIRTIO_BLK_QSIZE];
	int free_head;
	/* finished, waiting for the notify handler to push them */
	struct virtq_used_elem done[VIRTIO_BLK_QSIZE];
	unsigned int ndone;
	/*
	 * A popped chain the block layer had no room for (-EAGAIN). virtq has
	 * no way to un-pop, so it waits here and nothing more is popped until
	 * it went through.
	 */
	bool pending;
	bool throttled; /* the pending chain waits for tokens, not for a slot */
	bool charged;	/* the pending chain has had its tokens */
	struct virtq_elem elem;
	struct iovec iov[VIRTIO_BLK_POP_SEGS];
	struct virtio_blk_stats stats;
};

struct virtio_blk {
	struct virtio_pci *vp;
	struct iothread *io;
	struct disk *disk;
	unsigned int nq;
	struct blk_queue *q; /* [nq] */
	uint16_t qmax[VIRTIO_BLK_MAX_QUEUES];

	pthread_mutex_t rl_lock; /* the three below */
	struct ratelimit rl;
	uint32_t rl_waiting; /* bit n: queue n waits for tokens */
	int timer_fd;	     /* wakes them */
	bool limited;	     /* atomic: a fast path for disks without limits */
	bool timer_watched;
	uint64_t (*clock_ns)(void);
};

/* ---- request slots and completions (bq->lock held) ---- */

static struct blk_req *blk_req_get(struct blk_queue *bq)
{
	struct blk_req *r;

	if (bq->free_head < 0)
		return NULL;
	r = &bq->reqs[bq->free_head];
	bq->free_head = r->next_free;
	return r;
}

static void blk_req_put(struct blk_queue *bq, struct blk_req *r)
{
	r->next_free = bq->free_head;
	bq->free_head = (int)(r - bq->reqs);
}

static void blk_slots_init(struct blk_queue *bq)
{
	for (int i = 0; i < VIRTIO_BLK_QSIZE; i++) {
		bq->reqs[i].bq = bq;
		bq->reqs[i].next_free = i + 1 < VIRTIO_BLK_QSIZE ? i + 1 : -1;
	}
	bq->free_head = 0;
}

/* Writes the status byte and queues the chain for the used ring. */
static void blk_finish(struct blk_queue *bq, uint16_t head, uint8_t *status, uint8_t s,
		       uint32_t written)
{
	if (status)
		*status = s;
	if (bq->ndone < VIRTIO_BLK_QSIZE)
		bq->done[bq->ndone++] = (struct virtq_used_elem){head, status ? written : 0};
}

static void blk_done(void *opaque, int result)
{
	struct blk_req *r = opaque;
	struct blk_queue *bq = r->bq;

	if (result) {
		log_debug("virtio-blk: request failed: %s", strerror(-result));
		bq->stats.errors++;
	}
	blk_finish(bq, r->head, r->status, result ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK,
		   result ? 1 : r->written);
	blk_req_put(bq, r);
}

/* ---- parsing the chain ---- */

/*
 * The data segments: [skip, total - trim) of segments [0, n). -EINVAL when
 * the chain is too short, -E2BIG beyond what the block layer takes.
 */
static int blk_collect(const struct iovec *src, unsigned int n, size_t skip, size_t trim,
		       struct iovec *dst, int *cnt, uint64_t *len)
{
	uint64_t total = 0, want;

	for (unsigned int i = 0; i < n; i++)
		total += src[i].iov_len;
	if (total < (uint64_t)skip + trim)
		return -EINVAL;
	want = total - skip - trim;
	*len = want;
	*cnt = 0;
	for (unsigned int i = 0; i < n && want; i++) {
		size_t l = src[i].iov_len, take;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		take = l - skip < want ? l - skip : want;
		if (*cnt == DISK_IOV_MAX)
			return -E2BIG;
		dst[(*cnt)++] = (struct iovec){(uint8_t *)src[i].iov_base + skip, take};
		want -= take;
		skip = 0;
	}
	return 0;
}

/* The range [sector, sector + nsect) lies inside the disk; no overflow possible. */
static bool blk_in_range(const struct virtio_blk *blk, uint64_t sector, uint64_t nsect)
{
	return sector <= blk->disk->sectors && nsect <= blk->disk->sectors - sector;
}

/* ---- request types ---- */

struct blk_ctx {
	const struct virtq_elem *e;
	uint32_t type;
	uint64_t sector;
	uint64_t features;
};

static bool blk_has(const struct blk_ctx *c, unsigned int bit)
{
	return c->features & (1ULL << bit);
}

/* Returns a status to report now, or -1 after handing the request to the block layer. */
static int blk_submit(struct blk_queue *bq, struct blk_req *r, int ret)
{
	if (ret == -EAGAIN)
		return -EAGAIN;
	if (ret) {
		log_debug("virtio-blk: request refused: %s", strerror(-ret));
		return VIRTIO_BLK_S_IOERR;
	}
	return -1;
}

static void blk_count_rw(struct blk_queue *bq, const struct blk_ctx *c, bool write, uint64_t len)
{
	struct virtio_blk_stats *st = &bq->stats;

	if (!write) {
		st->reads++;
		st->bytes_read += len;
		return;
	}
	st->writes++;
	st->bytes_written += len;
	if (!blk_has(c, VIRTIO_BLK_F_FLUSH))
		st->write_through++;
}

static int blk_rw(struct blk_queue *bq, const struct blk_ctx *c, struct blk_req *r)
{
	const struct virtq_elem *e = c->e;
	struct iovec iov[DISK_IOV_MAX];
	bool write = c->type == VIRTIO_BLK_T_OUT;
	uint64_t len;
	int cnt, ret;

	if (write && bq->blk->disk->read_only)
		return VIRTIO_BLK_S_IOERR;
	if (write)
		ret = blk_collect(e->iov, e->out_num, VIRTIO_BLK_HDR_SIZE, 0, iov, &cnt, &len);
	else
		ret = blk_collect(e->iov + e->out_num, e->in_num, 0, 1, iov, &cnt, &len);
	if (ret || len % DISK_SECTOR_SIZE ||
	    !blk_in_range(bq->blk, c->sector, len / DISK_SECTOR_SIZE))
		return VIRTIO_BLK_S_IOERR;
	if (!len)
		return VIRTIO_BLK_S_OK;
	r->written = write ? 1 : (uint32_t)len + 1;
	/*
	 * A driver that did not negotiate FLUSH has no way to make a write
	 * durable but to wait for it (5.2.6.2): the device must write through.
	 */
	if (write && !blk_has(c, VIRTIO_BLK_F_FLUSH))
		ret = disk_writev_sync(bq->dq, iov, cnt, c->sector * DISK_SECTOR_SIZE, blk_done, r);
	else if (write)
		ret = disk_writev(bq->dq, iov, cnt, c->sector * DISK_SECTOR_SIZE, blk_done, r);
	else
		ret = disk_readv(bq->dq, iov, cnt, c->sector * DISK_SECTOR_SIZE, blk_done, r);
	if (!ret)
		blk_count_rw(bq, c, write, len);
	return blk_submit(bq, r, ret);
}

static int blk_get_id(struct blk_queue *bq, const struct blk_ctx *c, struct blk_req *r)
{
	const struct virtq_elem *e = c->e;
	struct iovec iov[DISK_IOV_MAX];
	char id[DISK_ID_BYTES];
	uint64_t len, done = 0;
	int cnt;

	if (blk_collect(e->iov + e->out_num, e->in_num, 0, 1, iov, &cnt, &len))
		return VIRTIO_BLK_S_IOERR;
	memset(id, 0, sizeof(id));
	disk_get_id(bq->blk->disk, id, sizeof(id));
	for (int i = 0; i < cnt && done < sizeof(id); i++) {
		size_t n = iov[i].iov_len < sizeof(id) - done ? iov[i].iov_len : sizeof(id) - done;

		memcpy(iov[i].iov_base, id + done, n);
		done += n;
	}
	r->written = (uint32_t)done + 1;
	return VIRTIO_BLK_S_OK;
}

/* One segment of struct virtio_blk_discard_write_zeroes, checked (5.2.6.2). */
static int blk_dwz(struct blk_queue *bq, const struct blk_ctx *c, struct blk_req *r)
{
	const struct virtq_elem *e = c->e;
	bool discard = c->type == VIRTIO_BLK_T_DISCARD;
	uint8_t seg[VIRTIO_BLK_DWZ_SEG_SIZE];
	uint64_t sector, n;
	uint32_t flags;
	int ret;

	if (!blk_has(c, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
		return VIRTIO_BLK_S_UNSUPP;
	if (bq->blk->disk->read_only)
		return VIRTIO_BLK_S_IOERR;
	/* exactly one segment: max_discard_seg and max_write_zeroes_seg are 1 */
	if (e->out_len != VIRTIO_BLK_HDR_SIZE + VIRTIO_BLK_DWZ_SEG_SIZE ||
	    iov_to_buf(e->iov, e->out_num, VIRTIO_BLK_HDR_SIZE, seg, sizeof(seg)) != sizeof(seg))
		return VIRTIO_BLK_S_IOERR;
	sector = le_get(seg, 8);
	n = le_get(seg + 8, 4);
	flags = (uint32_t)le_get(seg + 12, 4);
	/* unknown flags, and unmap on a discard, are unsupported (5.2.6.2) */
	if ((flags & ~VIRTIO_BLK_WZ_UNMAP) || (discard && flags))
		return VIRTIO_BLK_S_UNSUPP;
	if (n > VIRTIO_BLK_MAX_DWZ_SECTORS || !blk_in_range(bq->blk, sector, n))
		return VIRTIO_BLK_S_IOERR;
	if (!n)
		return VIRTIO_BLK_S_OK;
	r->written = 1;
	if (discard)
		ret = disk_discard(bq->dq, sector * DISK_SECTOR_SIZE, n * DISK_SECTOR_SIZE,
				   blk_done, r);
	else
		ret = disk_write_zeroes(bq->dq, sector * DISK_SECTOR_SIZE, n * DISK_SECTOR_SIZE,
					blk_done, r);
	return blk_submit(bq, r, ret);
}

static int blk_dispatch(struct blk_queue *bq, const struct blk_ctx *c, struct blk_req *r)
{
	switch (c->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return blk_rw(bq, c, r);
	case VIRTIO_BLK_T_FLUSH:
		if (!blk_has(c, VIRTIO_BLK_F_FLUSH))
			return VIRTIO_BLK_S_UNSUPP;
		r->written = 1;
		bq->stats.flushes++;
		return blk_submit(bq, r, disk_flush(bq->dq, blk_done, r));
	case VIRTIO_BLK_T_GET_ID:
		return blk_get_id(bq, c, r);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_dwz(bq, c, r);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* ---- rate limit ---- */

static uint64_t blk_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * RATELIMIT_NS + (uint64_t)ts.tv_nsec;
}

/* rl_lock held. Fires in ns unless it is already due sooner. */
static void blk_timer_arm(struct virtio_blk *blk, uint64_t ns)
{
	struct itimerspec cur, next = {0};

	if (!timerfd_gettime(blk->timer_fd, &cur) &&
	    (cur.it_value.tv_sec || cur.it_value.tv_nsec) &&
	    (uint64_t)cur.it_value.tv_sec * RATELIMIT_NS + (uint64_t)cur.it_value.tv_nsec <= ns)
		return;
	next.it_value.tv_sec = (time_t)(ns / RATELIMIT_NS);
	next.it_value.tv_nsec = (long)(ns % RATELIMIT_NS);
	if (timerfd_settime(blk->timer_fd, 0, &next, NULL))
		log_warn("virtio-blk: arming the rate limit timer: %s", strerror(errno));
}

/* Takes the waiting queues' bits: they will look for tokens again. */
static uint32_t blk_take_waiting(struct virtio_blk *blk)
{
	uint32_t waiting;

	pthread_mutex_lock(&blk->rl_lock);
	waiting = blk->rl_waiting;
	blk->rl_waiting = 0;
	pthread_mutex_unlock(&blk->rl_lock);
	return waiting;
}

static void blk_kick_waiting(struct virtio_blk *blk, uint32_t waiting)
{
	for (unsigned int q = 0; q < blk->nq; q++)
		if (waiting & (1u << q))
			virtio_pci_queue_kick(blk->vp, q);
}

/* The timerfd (I/O thread): tokens are back for someone. */
static void virtio_blk_timer(void *opaque, uint32_t events)
{
	struct virtio_blk *blk = opaque;
	uint64_t expirations;

	(void)events;
	if (read(blk->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_debug("virtio-blk: rate limit timer: %s", strerror(errno));
	blk_kick_waiting(blk, blk_take_waiting(blk));
}

/* What a request costs in bytes; false for the free ones. */
static bool blk_cost(const struct blk_ctx *c, uint64_t *bytes)
{
	switch (c->type) {
	case VIRTIO_BLK_T_IN:
		*bytes = c->e->in_len ? c->e->in_len - 1 : 0; /* less the status byte */
		return true;
	case VIRTIO_BLK_T_OUT:
		*bytes = c->e->out_len > VIRTIO_BLK_HDR_SIZE ? c->e->out_len - VIRTIO_BLK_HDR_SIZE
							     : 0;
		return true;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		*bytes = 0;
		return true;
	default:
		return false;
	}
}

/* Takes the tokens, or arms the timer and says to wait; bq->lock held. */
static bool blk_consume(struct blk_queue *bq, uint64_t bytes)
{
	struct virtio_blk *blk = bq->blk;
	uint64_t wait;
	bool ok;

	pthread_mutex_lock(&blk->rl_lock);
	ok = ratelimit_consume(&blk->rl, bytes, blk->clock_ns(), &wait);
	if (!ok) {
		blk->rl_waiting |= 1u << bq->index;
		blk_timer_arm(blk, wait);
	}
	pthread_mutex_unlock(&blk->rl_lock);
	return ok;
}

/* May the chain in bq->elem start now? Counts a request once however often it waits. */
static bool blk_admit(struct blk_queue *bq, const struct blk_ctx *c)
{
	uint64_t bytes;

	if (bq->charged || !__atomic_load_n(&bq->blk->limited, __ATOMIC_RELAXED) ||
	    !blk_cost(c, &bytes) || blk_consume(bq, bytes)) {
		bq->charged = true;
		bq->throttled = false;
		return true;
	}
	if (!bq->throttled)
		bq->stats.throttled++;
	bq->throttled = true;
	return false;
}

/*
 * Starts the chain in bq->elem. Returns -EAGAIN when the block layer is
 * full, -EBUSY when the rate limit says wait (either way the chain stays
 * in bq->elem), 0 once it is in flight or finished.
 */
static int blk_start(struct blk_queue *bq, uint64_t features)
{
	const struct virtq_elem *e = &bq->elem;
	uint8_t hdr[VIRTIO_BLK_HDR_SIZE], *status;
	struct blk_ctx c = {.e = e, .features = features};
	struct blk_req *r;
	int s;

	if (!e->in_num) { /* nowhere to put a status: give the chain back untouched */
		blk_finish(bq, e->head, NULL, 0, 0);
		return 0;
	}
	status = (uint8_t *)e->iov[e->out_num + e->in_num - 1].iov_base +
		 e->iov[e->out_num + e->in_num - 1].iov_len - 1;
	if (iov_to_buf(e->iov, e->out_num, 0, hdr, sizeof(hdr)) != sizeof(hdr)) {
		blk_finish(bq, e->head, status, VIRTIO_BLK_S_IOERR, 1);
		return 0;
	}
	c.type = (uint32_t)le_get(hdr, 4);
	c.sector = le_get(hdr + 8, 8);
	if (!blk_admit(bq, &c))
		return -EBUSY;
	r = blk_req_get(bq);
	if (!r)
		return -EAGAIN;
	r->head = e->head;
	r->status = status;
	r->written = 1;
	s = blk_dispatch(bq, &c, r);
	if (s == -EAGAIN || s >= 0)
		blk_req_put(bq, r);
	if (s >= 0)
		blk_finish(bq, e->head, status, (uint8_t)s, s == VIRTIO_BLK_S_OK ? r->written : 1);
	if (s == -EAGAIN)
		return -EAGAIN;
	bq->charged = false; /* the next chain pays for itself */
	return 0;
}

/* ---- the queue ---- */

static void blk_push_done(struct blk_queue *bq, struct virtq *vq)
{
	if (bq->ndone && virtq_push_batch(vq, bq->done, bq->ndone))
		log_warn("virtio-blk: queue %u: used ring push failed", bq->index);
	bq->ndone = 0;
}

/* Pops and starts up to a batch of chains; returns virtq_pop()'s last result. */
static int blk_pop_batch(struct blk_queue *bq, struct virtq *vq, uint64_t f, struct error *err)
{
	int ret = 1;

	if (bq->pending) {
		if (blk_start(bq, f) < 0)
			return 0;
		bq->pending = false;
	}
	for (unsigned int i = 0; i < VIRTIO_BLK_BATCH; i++) {
		bq->elem = (struct virtq_elem){.iov = bq->iov, .max_segs = VIRTIO_BLK_POP_SEGS};
		ret = virtq_pop(vq, &bq->elem, err);
		if (ret <= 0)
			return ret;
		if (blk_start(bq, f) < 0) {
			bq->pending = true;
			return 0; /* a completion or the rate limit timer kicks us again */
		}
	}
	return ret;
}

static void virtio_blk_notify(struct virtio_pci *vp, unsigned int q, struct virtq *vq)
{
	struct virtio_blk *blk = virtio_pci_opaque(vp);
	struct blk_queue *bq;
	struct error err = {0};
	int ret;

	if (q >= blk->nq)
		return;
	bq = &blk->q[q];
	pthread_mutex_lock(&bq->lock);
	ret = blk_pop_batch(bq, vq, virtio_pci_features(vp), &err);
	if (disk_queue_submit(bq->dq))
		log_warn("virtio-blk: queue %u: submitting requests failed", q);
	/* Page-cache hits are often done by now: they go back in this same pass. */
	disk_queue_complete(bq->dq);
	blk_push_done(bq, vq);
	pthread_mutex_unlock(&bq->lock);
	virtio_pci_queue_used(vp, q);
	if (ret < 0)
		virtio_pci_needs_reset(vp, err.msg);
	else if (ret > 0 && virtq_has_avail(vq))
		virtio_pci_queue_kick(vp, q); /* more later, after the other handlers */
}

/* Completions straight onto the used ring, under the transport's mutex like a notify. */
static void blk_complete_live(struct virtio_pci *vp, unsigned int q, struct virtq *vq, void *arg)
{
	struct blk_queue *bq = arg;
	bool waiting;

	pthread_mutex_lock(&bq->lock);
	disk_queue_complete(bq->dq);
	blk_push_done(bq, vq);
	waiting = bq->pending && !bq->throttled;
	pthread_mutex_unlock(&bq->lock);
	virtio_pci_queue_used(vp, q);
	if (waiting) /* a chain waits for the room these completions made */
		virtio_pci_queue_kick(vp, q);
}

/*
 * A disk queue's eventfd (I/O thread). A live queue gets its used entries
 * at once; otherwise (being reset, or broken) the callbacks still run and
 * their entries wait, as they would for the notify handler.
 */
static void virtio_blk_complete(void *opaque, uint32_t events)
{
	struct blk_queue *bq = opaque;

	if (virtio_pci_with_queue(bq->blk->vp, bq->index, blk_complete_live, bq))
		return;
	pthread_mutex_lock(&bq->lock);
	disk_queue_complete(bq->dq);
	pthread_mutex_unlock(&bq->lock);
}

/* What was in flight finishes, and nothing is pushed. */
static void blk_queue_quiesce(struct blk_queue *bq)
{
	pthread_mutex_lock(&bq->lock);
	if (bq->dq)
		disk_queue_drain(bq->dq);
	bq->ndone = 0;
	bq->pending = false;
	bq->throttled = false;
	bq->charged = false;
	pthread_mutex_unlock(&bq->lock);
	pthread_mutex_lock(&bq->blk->rl_lock);
	bq->blk->rl_waiting &= ~(1u << bq->index);
	pthread_mutex_unlock(&bq->blk->rl_lock);
}

/* Queues are already reset. */
static void virtio_blk_reset(struct virtio_pci *vp)
{
	struct virtio_blk *blk = virtio_pci_opaque(vp);

	struct itimerspec off = {0};

	for (unsigned int i = 0; i < blk->nq; i++)
		blk_queue_quiesce(&blk->q[i]);
	/* nobody waits any more; a stale expiry would only kick idle queues */
	pthread_mutex_lock(&blk->rl_lock);
	timerfd_settime(blk->timer_fd, 0, &off, NULL);
	pthread_mutex_unlock(&blk->rl_lock);
}

/* One queue reset alone (VIRTIO_F_RING_RESET): the others keep going. */
static void virtio_blk_queue_reset(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_blk *blk = virtio_pci_opaque(vp);

	if (q < blk->nq)
		blk_queue_quiesce(&blk->q[q]);
}

/*
 * Snapshot: a pending chain was popped but never started (no room, or no
 * tokens); it is the last one popped, so the saved ring gives it back.
 */
static uint16_t virtio_blk_held(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_blk *blk = virtio_pci_opaque(vp);
	uint16_t held;

	if (q >= blk->nq)
		return 0;
	pthread_mutex_lock(&blk->q[q].lock);
	held = blk->q[q].pending ? 1 : 0;
	pthread_mutex_unlock(&blk->q[q].lock);
	return held;
}

/* ---- configuration (5.2.4) ---- */

static void virtio_blk_config_read(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *blk = virtio_pci_opaque(vp);
	uint8_t cfg[VIRTIO_BLK_CFG_SIZE] = {0};
	uint32_t bs = blk->disk->block_size;

	le_put(cfg + VIRTIO_BLK_CFG_CAPACITY, 8, blk->disk->sectors);
	le_put(cfg + VIRTIO_BLK_CFG_SEG_MAX, 4, VIRTIO_BLK_SEG_MAX);
	le_put(cfg + VIRTIO_BLK_CFG_BLK_SIZE, 4, bs);
	/* only there with VIRTIO_BLK_F_MQ: a single-queue device reads 0, as before */
	if (blk->nq > 1)
		le_put(cfg + VIRTIO_BLK_CFG_NUM_QUEUES, 2, blk->nq);
	le_put(cfg + VIRTIO_BLK_CFG_MAX_DISCARD, 4, VIRTIO_BLK_MAX_DWZ_SECTORS);
	le_put(cfg + VIRTIO_BLK_CFG_DISCARD_SEG, 4, 1);
	le_put(cfg + VIRTIO_BLK_CFG_DISCARD_ALIGN, 4, bs / DISK_SECTOR_SIZE);
	le_put(cfg + VIRTIO_BLK_CFG_MAX_WZ, 4, VIRTIO_BLK_MAX_DWZ_SECTORS);
	le_put(cfg + VIRTIO_BLK_CFG_WZ_SEG, 4, 1);
	cfg[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1; /* the block layer punches holes when it can */
	if (off < sizeof(cfg) && len <= sizeof(cfg) - off)
		memcpy(data, cfg + off, len);
}

static const struct virtio_device_ops virtio_blk_ops = {
	.config_read = virtio_blk_config_read,
	.queue_notify = virtio_blk_notify,
	.reset = virtio_blk_reset,
	.queue_reset = virtio_blk_queue_reset,
	.held = virtio_blk_held,
};

/* ---- life cycle ---- */

static int blk_open(struct virtio_blk *blk, const struct virtio_blk_opts *o, struct error *err)
{
	struct disk_opts d = {.read_only = o->read_only,
			      .direct = o->direct,
			      .id = o->id,
			      .overlay = o->overlay,
			      .image_is_overlay = o->image_is_overlay,
			      .unlocked = o->unlocked};
	struct disk_queue_opts qo = {0};
	int ret = disk_open(&blk->disk, o->path, &d, err);

	for (unsigned int i = 0; !ret && i < blk->nq; i++)
		ret = disk_queue_new(&blk->q[i].dq, blk->disk, &qo, err);
	return ret;
}

static uint64_t blk_features(const struct virtio_blk *blk)
{
	uint64_t f = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
		     1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_DISCARD |
		     1ULL << VIRTIO_BLK_F_WRITE_ZEROES;

	if (blk->nq > 1)
		f |= 1ULL << VIRTIO_BLK_F_MQ;
	return blk->disk->read_only ? f | 1ULL << VIRTIO_BLK_F_RO : f;
}

static int blk_register(struct virtio_blk *blk, struct pci_root *root, struct error *err)
{
	int ret = virtio_pci_register(blk->vp, root, err);

	for (unsigned int i = 0; !ret && i < blk->nq; i++) {
		struct blk_queue *bq = &blk->q[i];

		ret = iothread_add_fd(blk->io, disk_queue_eventfd(bq->dq), EPOLLIN,
				      virtio_blk_complete, bq);
		if (ret)
			return error_set(err, -ret, "virtio-blk: I/O thread: %s", strerror(-ret));
		bq->watched = true;
	}
	if (ret)
		return ret;
	ret = iothread_add_fd(blk->io, blk->timer_fd, EPOLLIN, virtio_blk_timer, blk);
	if (ret)
		return error_set(err, -ret, "virtio-blk: I/O thread: %s", strerror(-ret));
	blk->timer_watched = true;
	return 0;
}

static struct ratelimit_limits blk_rl_limits(const struct virtio_blk_limits *l)
{
	struct ratelimit_limits r = {0};

	if (l)
		r = (struct ratelimit_limits){
			.bps = l->bps < RATELIMIT_MAX ? l->bps : RATELIMIT_MAX,
			.bps_burst = l->bps_burst < RATELIMIT_MAX ? l->bps_burst : RATELIMIT_MAX,
			.iops = l->iops < RATELIMIT_MAX ? l->iops : RATELIMIT_MAX,
			.iops_burst = l->iops_burst < RATELIMIT_MAX ? l->iops_burst : RATELIMIT_MAX,
		};
	return r;
}

/* The buckets and the timer that wakes queues waiting for them. */
static int blk_limit_init(struct virtio_blk *blk, const struct virtio_blk_opts *o,
			  struct error *err)
{
	struct ratelimit_limits l = blk_rl_limits(o->limits);

	blk->clock_ns = o->clock_ns ? o->clock_ns : blk_monotonic_ns;
	ratelimit_init(&blk->rl, &l, blk->clock_ns());
	blk->limited = ratelimit_enabled(&blk->rl);
	blk->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (blk->timer_fd < 0)
		return error_set(err, errno, "virtio-blk: timerfd: %s", strerror(errno));
	return 0;
}

/* The structure and its queues, before anything is opened. */
static struct virtio_blk *blk_alloc(const struct virtio_blk_opts *opts, struct error *err)
{
	unsigned int nq = opts->queues ? opts->queues : 1;
	struct virtio_blk *blk;

	if (nq > VIRTIO_BLK_MAX_QUEUES) {
		error_set(err, EINVAL, "virtio-blk: %u queues (at most %u)", nq,
			  VIRTIO_BLK_MAX_QUEUES);
		return NULL;
	}
	blk = calloc(1, sizeof(*blk));
	if (blk)
		blk->q = calloc(nq, sizeof(*blk->q));
	if (!blk || !blk->q) {
		free(blk);
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	blk->nq = nq;
	blk->timer_fd = -1;
	pthread_mutex_init(&blk->rl_lock, NULL);
	for (unsigned int i = 0; i < nq; i++) {
		struct blk_queue *bq = &blk->q[i];

		bq->blk = blk;
		bq->index = i;
		pthread_mutex_init(&bq->lock, NULL);
		blk_slots_init(bq);
		blk->qmax[i] = VIRTIO_BLK_QSIZE;
	}
	return blk;
}

struct virtio_blk *virtio_blk_create(const struct virtio_pci_host *host, struct pci_root *root,
				     const struct virtio_blk_opts *opts, struct error *err)
{
	struct virtio_blk *blk = blk_alloc(opts, err);
	struct virtio_device_info info = {
		.name = "virtio-blk",
		.device_id = VIRTIO_ID_BLOCK,
		.class_code = VIRTIO_BLK_CLASS,
		.config_size = VIRTIO_BLK_CFG_SIZE,
		.ops = &virtio_blk_ops,
		.opaque = blk,
	};

	if (!blk)
		return NULL;
	blk->io = host->io;
	if (blk_limit_init(blk, opts, err) || blk_open(blk, opts, err))
		goto fail;
	info.features = blk_features(blk);
	info.num_queues = blk->nq;
	info.queue_max = blk->qmax;
	blk->vp = virtio_pci_create(&info, host, err);
	if (!blk->vp || blk_register(blk, root, err))
		goto fail;
	return blk;
fail:
	virtio_blk_destroy(blk);
	return NULL;
}

void virtio_blk_drain(struct virtio_blk *blk)
{
	for (unsigned int i = 0; i < blk->nq; i++) {
		struct blk_queue *bq = &blk->q[i];

		pthread_mutex_lock(&bq->lock);
		disk_queue_drain(bq->dq);
		pthread_mutex_unlock(&bq->lock);
	}
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk)
		return;
	for (unsigned int i = 0; i < blk->nq; i++)
		if (blk->q[i].watched)
			iothread_remove_fd(blk->io, disk_queue_eventfd(blk->q[i].dq));
	if (blk->timer_watched)
		iothread_remove_fd(blk->io, blk->timer_fd);
	if (blk->timer_fd >= 0)
		close(blk->timer_fd);
	virtio_pci_destroy(blk->vp);
	for (unsigned int i = 0; i < blk->nq; i++) {
		disk_queue_free(blk->q[i].dq);
		pthread_mutex_destroy(&blk->q[i].lock);
	}
	if (blk->disk)
		disk_close(blk->disk);
	pthread_mutex_destroy(&blk->rl_lock);
	free(blk->q);
	free(blk);
}

struct virtio_pci *virtio_blk_transport(struct virtio_blk *blk)
{
	return blk->vp;
}

void virtio_blk_get_stats(struct virtio_blk *blk, struct virtio_blk_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int i = 0; i < blk->nq; i++) {
		struct blk_queue *bq = &blk->q[i];

		pthread_mutex_lock(&bq->lock);
		out->reads += bq->stats.reads;
		out->writes += bq->stats.writes;
		out->flushes += bq->stats.flushes;
		out->write_through += bq->stats.write_through;
		out->bytes_read += bq->stats.bytes_read;
		out->bytes_written += bq->stats.bytes_written;
		out->errors += bq->stats.errors;
		out->throttled += bq->stats.throttled;
		pthread_mutex_unlock(&bq->lock);
	}
}

void virtio_blk_set_limits(struct virtio_blk *blk, const struct virtio_blk_limits *l)
{
	struct ratelimit_limits r = blk_rl_limits(l);

	pthread_mutex_lock(&blk->rl_lock);
	ratelimit_set(&blk->rl, &r, blk->clock_ns());
	__atomic_store_n(&blk->limited, ratelimit_enabled(&blk->rl), __ATOMIC_RELAXED);
	pthread_mutex_unlock(&blk->rl_lock);
	/* whoever waited looks again under the new limits */
	blk_kick_waiting(blk, blk_take_waiting(blk));
}

void virtio_blk_get_limits(struct virtio_blk *blk, struct virtio_blk_limits *out)
{
	struct ratelimit_limits r;

	pthread_mutex_lock(&blk->rl_lock);
	ratelimit_get(&blk->rl, &r);
	pthread_mutex_unlock(&blk->rl_lock);
	*out = (struct virtio_blk_limits){
		.iops = r.iops, .iops_burst = r.iops_burst, .bps = r.bps, .bps_burst = r.bps_burst};
}

int virtio_blk_freeze(struct virtio_blk *blk, const char *new_top, struct error *err)
{
	int ret;

	for (unsigned int i = 0; i < blk->nq; i++)
		pthread_mutex_lock(&blk->q[i].lock);
	ret = disk_freeze(blk->disk, new_top, err);
	for (unsigned int i = blk->nq; i-- > 0;)
		pthread_mutex_unlock(&blk->q[i].lock);
	return ret;
}

const struct disk *virtio_blk_disk(const struct virtio_blk *blk)
{
	return blk->disk;
}

int virtio_blk_set_locked(struct virtio_blk *blk, bool locked, struct error *err)
{
	return disk_set_locked(blk->disk, locked, err);
}
