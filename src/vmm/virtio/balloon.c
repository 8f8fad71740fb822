// SPDX-License-Identifier: MIT
/*
 * The memory balloon (virtio 1.2, section 5.5). The guest hands over page
 * numbers (inflate) or free ranges (free page reporting); their backing is
 * punched out of the guest memfd, so the host gets the memory back and the
 * guest finds zeroes there when it uses the pages again. Deflating needs
 * nothing from us: a page refaults on its next touch.
 *
 * Threads: queue work runs on the I/O thread with the transport's mutex
 * held. Things that start elsewhere (a new target from the control API,
 * the statistics timer) only record what is due and kick a queue, so the
 * work itself happens in a queue handler, under that mutex, on the thread
 * that guest memory is never pulled from under. b->lock guards what other
 * threads read or write (target, actual, counters, statistics) and nests
 * inside the transport's mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../devices/state.h"
#include "balloon.h"
#include "../../common/le.h"
#include "../../common/iov.h"

#define VIRTIO_BALLOON_CLASS 0x058000 /* memory controller, other */
#define VIRTIO_BALLOON_SEGS  64
#define BALLOON_PAGE	     (1ULL << VIRTIO_BALLOON_PFN_SHIFT)
#define BALLOON_STATS_Q	     2 /* statsq is always the third queue when negotiated */

enum balloon_role { ROLE_INFLATE, ROLE_DEFLATE, ROLE_STATS, ROLE_REPORT, ROLE_NONE };

struct virtio_balloon {
	struct virtio_pci *vp;
	const struct gmem *mem;
	struct iothread *io;
	int timer_fd;
	bool timer_watched;

	/* I/O thread only */
	bool stats_held; /* the driver's statistics buffer, kept until the next request */
	uint16_t stats_head;
	bool stats_due;
	bool warned_pfn, warned_discard;

	pthread_mutex_t lock; /* below */
	bool target_changed;
	struct virtio_balloon_stats st;
};

static const uint16_t virtio_balloon_qmax[] = {VIRTIO_BALLOON_QSIZE, VIRTIO_BALLOON_QSIZE,
					       VIRTIO_BALLOON_QSIZE, VIRTIO_BALLOON_QSIZE};

static bool has(uint64_t features, unsigned int bit)
{
	return features & (1ULL << bit);
}

unsigned int virtio_balloon_num_queues(const struct virtio_balloon_opts *opts)
{
	return 2 + (opts->stats_period ? 1 : 0) + (opts->free_page_reporting ? 1 : 0);
}

/* Queue q's job under the negotiated features: absent queues close the gaps (5.5.2). */
static enum balloon_role balloon_role(uint64_t features, unsigned int q)
{
	if (q < 2)
		return q == 0 ? ROLE_INFLATE : ROLE_DEFLATE;
	q -= 2;
	if (has(features, VIRTIO_BALLOON_F_STATS_VQ)) {
		if (q == 0)
			return ROLE_STATS;
		q--;
	}
	if (has(features, VIRTIO_BALLOON_F_PAGE_REPORTING) && q == 0)
		return ROLE_REPORT;
	return ROLE_NONE;
}

/* ---- giving memory back ---- */

static void balloon_discard(struct virtio_balloon *b, uint64_t gpa, uint64_t len)
{
	int ret;

	if (!len)
		return;
	ret = gmem_discard(b->mem, gpa, len);
	if (!ret)
		return;
	if (!b->warned_discard)
		log_warn("virtio-balloon: releasing 0x%llx+0x%llx: %s", (unsigned long long)gpa,
			 (unsigned long long)len, strerror(-ret));
	b->warned_discard = true;
}

/*
 * Releases the pages behind n little-endian 32-bit page numbers. Runs of
 * neighbouring pages (either direction: guests often free downwards)
 * become one call. Returns how many page numbers were outside guest RAM.
 */
static uint64_t balloon_release(struct virtio_balloon *b, const uint8_t *pfns, size_t n)
{
	uint64_t start = 0, len = 0, bad = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t gpa = le_get(pfns + 4 * i, 4) << VIRTIO_BALLOON_PFN_SHIFT;

		if (!gmem_ptr(b->mem, gpa, BALLOON_PAGE)) {
			bad++;
			continue;
		}
		if (len && gpa == start + len && gmem_ptr(b->mem, start, len + BALLOON_PAGE)) {
			len += BALLOON_PAGE;
			continue;
		}
		if (len && gpa + BALLOON_PAGE == start &&
		    gmem_ptr(b->mem, gpa, len + BALLOON_PAGE)) {
			start = gpa;
			len += BALLOON_PAGE;
			continue;
		}
		balloon_discard(b, start, len);
		start = gpa;
		len = BALLOON_PAGE;
	}
	balloon_discard(b, start, len);
	return bad;
}

static void balloon_warn_pfns(struct virtio_balloon *b, uint64_t bad)
{
	if (!bad)
		return;
	if (!b->warned_pfn)
		log_warn("virtio-balloon: %llu page numbers outside guest RAM ignored"
			 " (further ones are counted, not logged)",
			 (unsigned long long)bad);
	b->warned_pfn = true;
}

/* inflateq and deflateq: one array of page numbers per chain (5.5.6.1). */
static void balloon_pfn_chain(struct virtio_balloon *b, const struct virtq_elem *e, bool inflate)
{
	uint8_t buf[VIRTIO_BALLOON_MAX_PFNS * 4];
	size_t n = iov_to_buf(e->iov, e->out_num, 0, buf, sizeof(buf)) / 4;
	uint64_t bad = 0;

	if (inflate)
		bad = balloon_release(b, buf, n);
	balloon_warn_pfns(b, bad);
	pthread_mutex_lock(&b->lock);
	if (inflate)
		b->st.inflated += n - bad;
	else
		b->st.deflated += n;
	b->st.bad_pfns += bad;
	pthread_mutex_unlock(&b->lock);
}

/* The guest-physical address of a host pointer into guest RAM. */
static bool balloon_gpa(const struct gmem *m, const void *p, uint64_t *gpa)
{
	uintptr_t a = (uintptr_t)p;

	for (int i = 0; i < m->nslots; i++) {
		uintptr_t h = (uintptr_t)m->slots[i].host;

		if (a >= h && a - h < m->slots[i].size) {
			*gpa = m->slots[i].gpa + (a - h);
			return true;
		}
	}
	return false;
}

/* reporting_vq: every buffer of the chain is free guest memory (5.5.6.7). */
static void balloon_report_chain(struct virtio_balloon *b, const struct virtq_elem *e)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < e->out_num + e->in_num; i++) {
		uint64_t gpa, end;

		if (!e->iov[i].iov_len || !balloon_gpa(b->mem, e->iov[i].iov_base, &gpa))
			continue;
		/* Only whole pages inside the range: a partial one may hold live data. */
		end = (gpa + e->iov[i].iov_len) & ~(BALLOON_PAGE - 1);
		gpa = (gpa + BALLOON_PAGE - 1) & ~(BALLOON_PAGE - 1);
		if (end <= gpa)
			continue;
		balloon_discard(b, gpa, end - gpa);
		total += end - gpa;
	}
	pthread_mutex_lock(&b->lock);
	b->st.reported += total;
	pthread_mutex_unlock(&b->lock);
}

/* ---- statistics (5.5.6.3) ---- */

static void balloon_parse_stats(struct virtio_balloon *b, const struct virtq_elem *e)
{
	uint8_t buf[VIRTIO_BALLOON_STATS_MAX * VIRTIO_BALLOON_STAT_SIZE];
	size_t n = iov_to_buf(e->iov, e->out_num, 0, buf, sizeof(buf)) / VIRTIO_BALLOON_STAT_SIZE;
	struct virtio_balloon_stats *st = &b->st;

	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = buf + i * VIRTIO_BALLOON_STAT_SIZE;
		uint16_t tag = (uint16_t)le_get(p, 2);

		if (tag >= VIRTIO_BALLOON_S_NR)
			continue; /* a tag from a newer spec: not ours to interpret */
		st->value[tag] = le_get(p + 2, 8);
		st->valid |= 1U << tag;
	}
	st->updates++;
	log_debug("virtio-balloon: stats: free %llu total %llu available %llu caches %llu"
		  " bytes, %llu major faults",
		  (unsigned long long)st->value[VIRTIO_BALLOON_S_MEMFREE],
		  (unsigned long long)st->value[VIRTIO_BALLOON_S_MEMTOT],
		  (unsigned long long)st->value[VIRTIO_BALLOON_S_AVAIL],
		  (unsigned long long)st->value[VIRTIO_BALLOON_S_CACHES],
		  (unsigned long long)st->value[VIRTIO_BALLOON_S_MAJFLT]);
	pthread_mutex_unlock(&b->lock);
}

/* The timer asked for fresh numbers: giving the buffer back is the request. */
static void balloon_request_stats(struct virtio_balloon *b, struct virtq *vq, unsigned int q)
{
	if (!b->stats_due)
		return;
	b->stats_due = false;
	if (!b->stats_held)
		return;
	b->stats_held = false;
	virtq_push(vq, b->stats_head, 0);
	virtio_pci_queue_used(b->vp, q);
}

static void balloon_stats_chain(struct virtio_balloon *b, struct virtq *vq,
				const struct virtq_elem *e)
{
	balloon_parse_stats(b, e);
	/* One buffer is all a driver may have out; a second one replaces the first. */
	if (b->stats_held)
		virtq_push(vq, b->stats_head, 0);
	b->stats_held = true;
	b->stats_head = e->head;
}

/* ---- queues (I/O thread, transport mutex held) ---- */

static void balloon_target_notify(struct virtio_balloon *b)
{
	bool changed;

	pthread_mutex_lock(&b->lock);
	changed = b->target_changed;
	b->target_changed = false;
	pthread_mutex_unlock(&b->lock);
	if (changed)
		virtio_pci_config_changed(b->vp);
}

static void balloon_chain(struct virtio_balloon *b, enum balloon_role role, struct virtq *vq,
			  const struct virtq_elem *e)
{
	switch (role) {
	case ROLE_INFLATE:
	case ROLE_DEFLATE:
		balloon_pfn_chain(b, e, role == ROLE_INFLATE);
		break;
	case ROLE_REPORT:
		balloon_report_chain(b, e);
		break;
	case ROLE_STATS:
		balloon_stats_chain(b, vq, e);
		return; /* kept, not given back */
	default:
		break;
	}
	virtq_push(vq, e->head, 0);
}

static void virtio_balloon_notify(struct virtio_pci *vp, unsigned int q, struct virtq *vq)
{
	struct virtio_balloon *b = virtio_pci_opaque(vp);
	enum balloon_role role = balloon_role(virtio_pci_features(vp), q);
	struct iovec iov[VIRTIO_BALLOON_SEGS];
	struct virtq_elem e = {.iov = iov, .max_segs = VIRTIO_BALLOON_SEGS};
	struct error err = {0};
	int ret = 0;

	if (q == 0)
		balloon_target_notify(b);
	if (role == ROLE_NONE)
		return; /* a queue the driver's numbering left out */
	if (role == ROLE_STATS)
		balloon_request_stats(b, vq, q);
	for (unsigned int i = 0; i < VIRTIO_BALLOON_BATCH; i++) {
		ret = virtq_pop(vq, &e, &err);
		if (ret <= 0)
			break;
		balloon_chain(b, role, vq, &e);
	}
	virtio_pci_queue_used(vp, q);
	if (ret < 0)
		virtio_pci_needs_reset(vp, err.msg);
	else if (ret > 0 && virtq_has_avail(vq))
		virtio_pci_queue_kick(vp, q); /* more later, after the other handlers */
}

/* Queues are already reset: a held statistics buffer went with them. */
static void virtio_balloon_reset(struct virtio_pci *vp)
{
	struct virtio_balloon *b = virtio_pci_opaque(vp);

	b->stats_held = false;
	b->stats_due = false;
	pthread_mutex_lock(&b->lock);
	b->st.actual = 0; /* a new driver starts with an empty balloon */
	pthread_mutex_unlock(&b->lock);
}

/* The statistics timer (I/O thread): the stats queue's handler does the work. */
static void balloon_timer(void *opaque, uint32_t events)
{
	struct virtio_balloon *b = opaque;
	uint64_t expirations;

	if (read(b->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_debug("virtio-balloon: timer: %s", strerror(errno));
	b->stats_due = true;
	virtio_pci_queue_kick(b->vp, BALLOON_STATS_Q);
}

/* ---- configuration (5.5.4) ---- */

static void virtio_balloon_config_read(struct virtio_pci *vp, uint32_t off, uint8_t *data,
				       uint32_t len)
{
	struct virtio_balloon *b = virtio_pci_opaque(vp);
	uint8_t cfg[VIRTIO_BALLOON_CFG_SIZE];

	pthread_mutex_lock(&b->lock);
	le_put(cfg + VIRTIO_BALLOON_CFG_NUM_PAGES, 4, b->st.num_pages);
	le_put(cfg + VIRTIO_BALLOON_CFG_ACTUAL, 4, b->st.actual);
	pthread_mutex_unlock(&b->lock);
	if (off < sizeof(cfg) && len <= sizeof(cfg) - off)
		memcpy(data, cfg + off, len);
}

/* Only actual is the driver's to write; a write into num_pages is ignored. */
static void virtio_balloon_config_write(struct virtio_pci *vp, uint32_t off, const uint8_t *data,
					uint32_t len)
{
	struct virtio_balloon *b = virtio_pci_opaque(vp);
	uint8_t actual[4];

	if (off < VIRTIO_BALLOON_CFG_ACTUAL || off >= VIRTIO_BALLOON_CFG_SIZE ||
	    len > VIRTIO_BALLOON_CFG_SIZE - off)
		return;
	pthread_mutex_lock(&b->lock);
	le_put(actual, 4, b->st.actual);
	memcpy(actual + (off - VIRTIO_BALLOON_CFG_ACTUAL), data, len);
	b->st.actual = (uint32_t)le_get(actual, 4);
	pthread_mutex_unlock(&b->lock);
}

/*
 * ---- snapshot ----
 * u32 version, u32 num_pages, u32 actual, u8 target_changed, u64 inflated,
 * deflated, reported, bad_pfns, updates, u32 valid, u64 value[S_NR]. The
 * held statistics buffer is handed back to the queue (held()), so the
 * restored device pops it again at its next statistics request.
 */
#define VIRTIO_BALLOON_STATE_VERSION 1

static uint16_t virtio_balloon_held(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_balloon *b = virtio_pci_opaque(vp);

	return q == BALLOON_STATS_Q && b->stats_held ? 1 : 0;
}

static void virtio_balloon_save(struct virtio_pci *vp, struct snap_writer *w)
{
	struct virtio_balloon *b = virtio_pci_opaque(vp);
	const struct virtio_balloon_stats *st = &b->st;

	pthread_mutex_lock(&b->lock);
	snap_put_u32(w, VIRTIO_BALLOON_STATE_VERSION);
	snap_put_u32(w, st->num_pages);
	snap_put_u32(w, st->actual);
	snap_put_u8(w, b->target_changed);
	snap_put_u64(w, st->inflated);
	snap_put_u64(w, st->deflated);
	snap_put_u64(w, st->reported);
	snap_put_u64(w, st->bad_pfns);
	snap_put_u64(w, st->updates);
	snap_put_u32(w, st->valid);
	for (unsigned int i = 0; i < VIRTIO_BALLOON_S_NR; i++)
		snap_put_u64(w, st->value[i]);
	pthread_mutex_unlock(&b->lock);
}

static int virtio_balloon_restore(struct virtio_pci *vp, struct snap_section *s, const char *name,
				  struct error *err)
{
	struct virtio_balloon *b = virtio_pci_opaque(vp);
	struct virtio_balloon_stats st;
	uint32_t version = snap_get_u32(s);
	uint8_t changed;

	if (version != VIRTIO_BALLOON_STATE_VERSION)
		return state_bad(err, name, "balloon state version", version);
	st.num_pages = snap_get_u32(s);
	st.actual = snap_get_u32(s);
	changed = snap_get_u8(s);
	st.inflated = snap_get_u64(s);
	st.deflated = snap_get_u64(s);
	st.reported = snap_get_u64(s);
	st.bad_pfns = snap_get_u64(s);
	st.updates = snap_get_u64(s);
	st.valid = snap_get_u32(s);
	for (unsigned int i = 0; i < VIRTIO_BALLOON_S_NR; i++)
		st.value[i] = snap_get_u64(s);
	if (changed > 1)
		return state_bad(err, name, "balloon target changed flag", changed);
	if (st.valid >> VIRTIO_BALLOON_S_NR)
		return state_bad(err, name, "balloon statistics mask", st.valid);
	pthread_mutex_lock(&b->lock);
	b->st = st;
	b->target_changed = changed;
	pthread_mutex_unlock(&b->lock);
	/* A target the driver had not yet been told about goes out from inflateq's handler. */
	if (changed)
		virtio_pci_queue_kick(vp, 0);
	return 0;
}

static const struct virtio_device_ops virtio_balloon_ops = {
	.config_read = virtio_balloon_config_read,
	.config_write = virtio_balloon_config_write,
	.queue_notify = virtio_balloon_notify,
	.reset = virtio_balloon_reset,
	.held = virtio_balloon_held,
	.save = virtio_balloon_save,
	.restore = virtio_balloon_restore,
};

/* ---- life cycle ---- */

static uint64_t balloon_features(const struct virtio_balloon_opts *o)
{
	uint64_t f = 0;

	if (o->stats_period)
		f |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
	if (o->deflate_on_oom)
		f |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (o->free_page_reporting)
		f |= 1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING;
	return f;
}

static uint32_t balloon_pages(uint64_t bytes)
{
	uint64_t pages = bytes >> VIRTIO_BALLOON_PFN_SHIFT;

	return pages > UINT32_MAX ? UINT32_MAX : (uint32_t)pages;
}

static int balloon_start_timer(struct virtio_balloon *b, unsigned int period, struct error *err)
{
	struct itimerspec its = {.it_interval = {.tv_sec = period}, .it_value = {.tv_sec = period}};
	int ret;

	b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (b->timer_fd < 0)
		return error_set(err, errno, "virtio-balloon: timerfd: %s", strerror(errno));
	if (timerfd_settime(b->timer_fd, 0, &its, NULL) < 0)
		return error_set(err, errno, "virtio-balloon: timerfd: %s", strerror(errno));
	ret = iothread_add_fd(b->io, b->timer_fd, EPOLLIN, balloon_timer, b);
	if (ret)
		return error_set(err, -ret, "virtio-balloon: I/O thread: %s", strerror(-ret));
	b->timer_watched = true;
	return 0;
}

static int balloon_start(struct virtio_balloon *b, const struct virtio_pci_host *host,
			 struct pci_root *root, const struct virtio_balloon_opts *opts,
			 struct error *err)
{
	struct virtio_device_info info = {
		.name = "virtio-balloon",
		.device_id = VIRTIO_ID_BALLOON,
		.class_code = VIRTIO_BALLOON_CLASS,
		.features = balloon_features(opts),
		.config_size = VIRTIO_BALLOON_CFG_SIZE,
		.num_queues = virtio_balloon_num_queues(opts),
		.queue_max = virtio_balloon_qmax,
		.ops = &virtio_balloon_ops,
		.opaque = b,
	};
	int ret;

	b->vp = virtio_pci_create(&info, host, err);
	if (!b->vp)
		return -err->code;
	ret = virtio_pci_register(b->vp, root, err);
	if (ret)
		return ret;
	return opts->stats_period ? balloon_start_timer(b, opts->stats_period, err) : 0;
}

struct virtio_balloon *virtio_balloon_create(const struct virtio_pci_host *host,
					     struct pci_root *root,
					     const struct virtio_balloon_opts *opts,
					     struct error *err)
{
	struct virtio_balloon *b = calloc(1, sizeof(*b));

	if (!b) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&b->lock, NULL);
	b->timer_fd = -1;
	b->mem = host->mem;
	b->io = host->io;
	b->st.num_pages = balloon_pages(opts->target);
	if (balloon_start(b, host, root, opts, err)) {
		virtio_balloon_destroy(b);
		return NULL;
	}
	return b;
}

void virtio_balloon_destroy(struct virtio_balloon *b)
{
	if (!b)
		return;
	if (b->timer_watched)
		iothread_remove_fd(b->io, b->timer_fd);
	if (b->timer_fd >= 0)
		close(b->timer_fd);
	virtio_pci_destroy(b->vp);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

struct virtio_pci *virtio_balloon_transport(struct virtio_balloon *b)
{
	return b->vp;
}

void virtio_balloon_set_target(struct virtio_balloon *b, uint64_t bytes)
{
	pthread_mutex_lock(&b->lock);
	b->st.num_pages = balloon_pages(bytes);
	b->target_changed = true;
	pthread_mutex_unlock(&b->lock);
	/* inflateq's handler sends the config change, under the transport's mutex. */
	virtio_pci_queue_kick(b->vp, 0);
}

void virtio_balloon_get_stats(struct virtio_balloon *b, struct virtio_balloon_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->st;
	pthread_mutex_unlock(&b->lock);
}
