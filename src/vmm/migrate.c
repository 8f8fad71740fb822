// SPDX-License-Identifier: MIT
/*
 * Live migration: the source's pre-copy rounds and stop-and-copy, the
 * destination's side of the stream (see migrate.h, snapshot/migstream.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "machine.h"
#include "migrate.h"
#include "migrate_disks.h"
#include "snapshot.h"
#include "snapshot/migstream.h"
#include "../common/le.h"
#include "../common/log.h"

#define MIGRATE_MAX_ROUNDS 10
/* Dirty pages few enough to send with the VM paused: 1 MiB. */
#define MIGRATE_STOP_PAGES 256

static double migrate_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- source ---- */

struct migrate_out {
	struct machine *m;
	int fd;
	bool disks_unlocked; /* handed to the destination with the state */
	uint64_t npages;
	uint64_t *bits;
	struct migrate_stats *st;
};

static int migrate_send_run(struct migrate_out *o, uint64_t first, uint64_t n)
{
	uint8_t hdr[16];
	struct iovec iov[2] = {{hdr, sizeof(hdr)},
			       {o->m->mem.base + first * MIGSTREAM_PAGE, n * MIGSTREAM_PAGE}};

	le_put(hdr, 4, MIGSTREAM_PAGES);
	le_put(hdr + 4, 8, first);
	le_put(hdr + 12, 4, n);
	o->st->bytes += sizeof(hdr) + n * MIGSTREAM_PAGE;
	o->st->pages += n;
	return migstream_writev(o->fd, iov, 2);
}

static int migrate_send_bits(struct migrate_out *o)
{
	uint64_t pos = 0, n;
	int ret = 0;

	while (!ret && (n = dirty_next_run(o->bits, o->npages, &pos, MIGSTREAM_RUN_MAX))) {
		ret = migrate_send_run(o, pos, n);
		pos += n;
	}
	return ret;
}

static bool migrate_page_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < MIGSTREAM_PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/*
 * Round 1: every page that is not zero (the destination's memory starts
 * zeroed). Holes of the memfd are skipped without reading them: reading
 * would allocate them.
 */
static void migrate_mark_nonzero(struct migrate_out *o)
{
	const struct gmem *mem = &o->m->mem;
	off_t off = 0, start, end;

	memset(o->bits, 0, dirty_words(o->npages) * sizeof(uint64_t));
	while ((uint64_t)off < mem->size) {
		start = mem->memfd >= 0 ? lseek(mem->memfd, off, SEEK_DATA) : off;
		if (start < 0 && errno == ENXIO)
			break; /* no data after off */
		end = start >= 0 && mem->memfd >= 0 ? lseek(mem->memfd, start, SEEK_HOLE)
						    : (off_t)mem->size;
		if (start < 0) /* cannot tell holes: look at every page */
			start = off;
		if (end < 0 || (uint64_t)end > mem->size)
			end = (off_t)mem->size;
		for (uint64_t pg = (uint64_t)start / MIGSTREAM_PAGE;
		     pg < (uint64_t)(end + MIGSTREAM_PAGE - 1) / MIGSTREAM_PAGE; pg++)
			if (!migrate_page_zero(mem->base + pg * MIGSTREAM_PAGE))
				o->bits[pg / 64] |= 1ULL << (pg % 64);
		off = end;
	}
}

/* Under life_lock: the VM and its memory are those tracking started on (no reboot since). */
static int migrate_check_vm(struct machine *m, struct error *err)
{
	if (!m->vcpus || atomic_load(&m->stop) != STOP_NONE ||
	    !dirty_active(&m->dirty, &m->mem, DIRTY_MIGRATE))
		return error_set(err, EAGAIN, "the VM stopped or rebooted during the migration");
	return 0;
}

/* One pre-copy round; 1 when the rest is small enough for stop-and-copy. */
static int migrate_round(struct migrate_out *o, struct error *err)
{
	struct machine *m = o->m;
	int64_t n;
	int ret;

	pthread_mutex_lock(&m->life_lock);
	ret = migrate_check_vm(m, err);
	n = ret ? ret : dirty_collect(&m->dirty, &m->mem, DIRTY_MIGRATE, o->bits, err);
	if (n >= 0 && (n <= MIGRATE_STOP_PAGES || o->st->rounds >= MIGRATE_MAX_ROUNDS)) {
		/* Left for the last round, which collects again. */
		dirty_merge(m->dirty.set[DIRTY_MIGRATE], 0, o->bits, o->npages);
		pthread_mutex_unlock(&m->life_lock);
		return 1;
	}
	if (n >= 0) {
		ret = migrate_send_bits(o);
		if (ret)
			error_set(err, -ret, "sending memory: %s", strerror(-ret));
		o->st->rounds++;
	}
	pthread_mutex_unlock(&m->life_lock);
	return n < 0 ? (int)n : ret;
}

static int migrate_precopy(struct migrate_out *o, struct error *err)
{
	struct machine *m = o->m;
	int ret;

	pthread_mutex_lock(&m->life_lock);
	ret = migrate_check_vm(m, err);
	if (!ret) {
		migrate_mark_nonzero(o);
		ret = migrate_send_bits(o);
		if (ret)
			error_set(err, -ret, "sending memory: %s", strerror(-ret));
	}
	pthread_mutex_unlock(&m->life_lock);
	o->st->rounds = 1;
	while (!ret)
		ret = migrate_round(o, err);
	return ret < 0 ? ret : 0;
}

/* The header: the VM's size, command line and disk layout. */
static int migrate_send_header(struct migrate_out *o, struct error *err)
{
	struct snap_writer w;
	uint8_t hdr[MIGSTREAM_HDR_LEN];
	struct iovec iov[2];
	uint32_t flags = 0;
	int ret;

	snap_writer_init(&w);
	snapshot_save_config(o->m->cfg, &w);
	/* Only the API thread freezes disks, and it is busy with this migration. */
	migrate_disks_save(o->m, &w, &flags);
	ret = snap_finish(&w, "the command line", err);
	if (!ret) {
		migstream_put_header(hdr, o->m->mem.size, (uint32_t)w.len);
		migstream_set_flags(hdr, flags);
		iov[0] = (struct iovec){hdr, sizeof(hdr)};
		iov[1] = (struct iovec){w.buf, w.len};
		o->st->bytes += sizeof(hdr) + w.len;
		ret = migstream_writev(o->fd, iov, 2);
		if (ret)
			error_set(err, -ret, "sending the header: %s", strerror(-ret));
	}
	snap_writer_free(&w);
	return ret;
}

/*
 * Disk images are locked by one VMM at a time: the source lets go once its
 * VM is paused and drained, just before the state goes; the destination
 * takes them when the state has come.
 */
static int migrate_disks_locked(struct machine *m, bool locked, struct error *err)
{
	for (unsigned int i = 0; i < m->cfg->ndisks; i++) {
		int ret = virtio_blk_set_locked(m->blk[i], locked, err);

		if (ret)
			return ret;
	}
	return 0;
}

/* Takes the images back after a failure; the destination may still be letting go. */
static int migrate_disks_relock(struct machine *m, struct error *err)
{
	int ret = 0;

	for (int i = 0; i < 100; i++) {
		ret = migrate_disks_locked(m, true, err);
		if (ret != -EBUSY)
			return ret;
		usleep(20000);
	}
	return ret;
}

/* Paused, under life_lock: the last dirty pages, then the state file. */
static int migrate_send_final(struct migrate_out *o, struct error *err)
{
	struct machine *m = o->m;
	struct snap_writer w;
	uint8_t hdr[8];
	struct iovec iov[2];
	int64_t n = dirty_collect(&m->dirty, &m->mem, DIRTY_MIGRATE, o->bits, err);
	int ret = n < 0 ? (int)n : migrate_send_bits(o);

	if (n >= 0 && ret)
		return error_set(err, -ret, "sending memory: %s", strerror(-ret));
	if (ret)
		return ret;
	o->disks_unlocked = m->cfg->ndisks > 0;
	ret = migrate_disks_locked(m, false, err);
	if (ret)
		return ret;
	snap_writer_init(&w);
	snapshot_save_config(m->cfg, &w);
	ret = machine_save_state(m, &w, err);
	if (!ret)
		ret = snap_finish(&w, "the VM state", err);
	if (!ret) {
		le_put(hdr, 4, MIGSTREAM_STATE);
		le_put(hdr + 4, 4, w.len);
		iov[0] = (struct iovec){hdr, sizeof(hdr)};
		iov[1] = (struct iovec){w.buf, w.len};
		o->st->bytes += sizeof(hdr) + w.len;
		ret = migstream_writev(o->fd, iov, 2);
		if (ret)
			error_set(err, -ret, "sending the VM state: %s", strerror(-ret));
	}
	snap_writer_free(&w);
	return ret;
}

/* The destination's answer: 0 once its VM runs. */
static int migrate_read_answer(int fd, struct error *err)
{
	uint8_t hdr[8];
	char msg[MIGSTREAM_MSG_MAX + 1] = "";
	uint32_t status, len;
	int ret = migstream_read(fd, hdr, sizeof(hdr));

	if (ret)
		return error_set(err, -ret, "no answer from the destination: %s",
				 ret == -EPIPE ? "it closed the connection" : strerror(-ret));
	status = (uint32_t)le_get(hdr, 4);
	len = (uint32_t)le_get(hdr + 4, 4);
	if (len > MIGSTREAM_MSG_MAX || migstream_read(fd, msg, len))
		return error_set(err, EPROTO, "the destination's answer is malformed");
	msg[len] = 0;
	if (status)
		return error_set(err, EREMOTEIO, "the destination failed: %s", msg);
	return 0;
}

static int migrate_stop_and_copy(struct migrate_out *o, bool *paused, double *t_pause,
				 struct error *err)
{
	struct machine *m = o->m;
	int ret;

	*t_pause = migrate_now_ms();
	ret = machine_pause(m, err);
	if (ret && ret != -EALREADY)
		return ret;
	*paused = !ret;
	pthread_mutex_lock(&m->life_lock);
	ret = migrate_check_vm(m, err);
	if (!ret)
		ret = migrate_send_final(o, err);
	pthread_mutex_unlock(&m->life_lock);
	o->st->rounds++;
	return ret ? ret : migrate_read_answer(o->fd, err);
}

static int migrate_run(struct migrate_out *o, bool *paused, struct error *err)
{
	struct machine *m = o->m;
	double t0 = migrate_now_ms(), t_pause = t0;
	int ret;

	pthread_mutex_lock(&m->life_lock);
	ret = m->vcpus && atomic_load(&m->stop) == STOP_NONE
		      ? dirty_start(&m->dirty, m->vm.fd, &m->mem, DIRTY_MIGRATE, err)
		      : error_set(err, EAGAIN, "the VM is not running");
	pthread_mutex_unlock(&m->life_lock);
	if (!ret)
		ret = migrate_send_header(o, err);
	if (!ret)
		ret = migrate_precopy(o, err);
	if (!ret)
		ret = migrate_stop_and_copy(o, paused, &t_pause, err);
	o->st->total_ms = migrate_now_ms() - t0;
	o->st->downtime_ms = migrate_now_ms() - t_pause;
	return ret;
}

/*
 * A send failed because the destination hung up: it may have said why
 * first (a destination that fails answers before it exits). Its answer,
 * when there is one, replaces the broken pipe in err.
 */
static void migrate_why_gone(int fd, int ret, struct error *err)
{
	struct timeval tv = {.tv_sec = 1};
	struct error why = {0};

	if (ret != -EPIPE && ret != -ECONNRESET)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (migrate_read_answer(fd, &why) == -EREMOTEIO)
		*err = why;
}

int machine_migrate(struct machine *m, const char *url, struct migrate_stats *st, struct error *err)
{
	struct migrate_out o = {
		.m = m, .fd = -1, .npages = m->cfg->memory / MIGSTREAM_PAGE, .st = st};
	struct migstream_url u;
	bool paused = false;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = migstream_parse_url(url, false, &u, err);
	if (ret)
		return ret;
	o.bits = calloc(dirty_words(o.npages), sizeof(uint64_t));
	if (!o.bits)
		return error_set(err, ENOMEM, "out of memory");
	ret = migstream_connect(&u, &o.fd, err);
	if (!ret)
		ret = migrate_run(&o, &paused, err);
	if (ret && o.fd >= 0)
		migrate_why_gone(o.fd, ret, err);
	pthread_mutex_lock(&m->life_lock);
	dirty_stop(&m->dirty, &m->mem, DIRTY_MIGRATE);
	pthread_mutex_unlock(&m->life_lock);
	if (o.fd >= 0)
		close(o.fd);
	free(o.bits);
	m->migrations.attempts++;
	m->migrations.failed += ret != 0;
	m->migrations.last = *st;
	if (ret && o.disks_unlocked && migrate_disks_relock(m, &(struct error){0})) {
		log_error("migration to %s failed and the disks stay locked elsewhere: the VM "
			  "stays paused",
			  url);
		return error_wrap(err, "the VM stays paused (its disks are locked elsewhere)");
	}
	if (ret) {
		struct error rerr = {0};

		if (paused && machine_resume(m, &rerr))
			log_error("after the failed migration: %s", rerr.msg);
		log_warn("migration to %s failed, the VM runs on here: %s", url, err->msg);
		return ret;
	}
	st->done = true;
	log_warn("migrated to %s: %.1f ms, downtime %.1f ms, %llu bytes, %u rounds; exiting", url,
		 st->total_ms, st->downtime_ms, (unsigned long long)st->bytes, st->rounds);
	machine_request_stop(m, STOP_MIGRATED);
	return 0;
}

/* ---- destination ---- */

static int migrate_read_error(struct error *err, const char *what, int ret)
{
	return error_set(err, -ret, "reading %s: %s", what,
			 ret == -EPIPE ? "the stream ended early" : strerror(-ret));
}

static void migrate_answer(int fd, uint32_t status, const char *msg)
{
	uint8_t hdr[8];
	size_t len = msg ? strnlen(msg, MIGSTREAM_MSG_MAX) : 0;
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)msg, len}};

	le_put(hdr, 4, status);
	le_put(hdr + 4, 4, len);
	if (migstream_writev(fd, iov, 2))
		log_debug("the source did not get our answer");
}

static int migrate_read_config(int fd, const struct vmm_config *now, struct vmm_config *out,
			       struct snapshot_args *a, struct error *err)
{
	uint8_t hdr[MIGSTREAM_HDR_LEN], *buf;
	struct snap_file f = {0};
	uint64_t mem_size;
	uint32_t len;
	int ret = migstream_read(fd, hdr, sizeof(hdr));

	if (ret)
		return migrate_read_error(err, "the header", ret);
	ret = migstream_check_header(hdr, &mem_size, &len, err);
	if (ret)
		return ret;
	buf = malloc(len);
	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	ret = migstream_read(fd, buf, len);
	if (ret) {
		free(buf);
		return migrate_read_error(err, "the command line", ret);
	}
	ret = snap_open_buf(&f, buf, len, "the stream's command line", err);
	if (!ret)
		ret = snapshot_config_from(now, out, a, &f, err);
	if (!ret)
		ret = migrate_disks_load(&f, migstream_flags(hdr), out, err);
	snap_close(&f);
	if (!ret && out->memory != mem_size)
		ret = error_set(err, EBADMSG, "the stream's memory size is not its VM's");
	return ret;
}

int migrate_incoming_config(const struct vmm_config *now, struct vmm_config *out,
			    struct snapshot_args *a, int *fd, struct error *err)
{
	struct migstream_url u;
	int ret = migstream_parse_url(now->incoming, true, &u, err);

	*fd = -1;
	memset(a, 0, sizeof(*a));
	/* A source gone before our answer must not kill us (machine_signals() is not run yet). */
	signal(SIGPIPE, SIG_IGN);
	if (!ret)
		ret = migstream_accept(&u, fd, err);
	if (ret)
		return ret;
	log_info("migration from a source on %s", now->incoming);
	ret = migrate_read_config(*fd, now, out, a, err);
	if (ret) {
		migrate_answer(*fd, 1, err->msg);
		close(*fd);
		*fd = -1;
		return ret;
	}
	out->restore = now->incoming;
	return 0;
}

static int migrate_read_pages(int fd, struct gmem *mem, struct error *err)
{
	uint8_t hdr[12];
	uint64_t first;
	uint32_t count;
	int ret = migstream_read(fd, hdr, sizeof(hdr));

	if (ret)
		return migrate_read_error(err, "a page record", ret);
	first = le_get(hdr, 8);
	count = (uint32_t)le_get(hdr + 8, 4);
	ret = migstream_check_pages(first, count, mem->size / MIGSTREAM_PAGE, err);
	if (ret)
		return ret;
	ret = migstream_read(fd, mem->base + first * MIGSTREAM_PAGE, count * MIGSTREAM_PAGE);
	if (ret)
		return migrate_read_error(err, "pages", ret);
	return 0;
}

static int migrate_read_state(int fd, struct snap_file *f, struct error *err)
{
	uint8_t hdr[4], *buf;
	uint32_t len;
	int ret = migstream_read(fd, hdr, sizeof(hdr));

	if (ret)
		return migrate_read_error(err, "the VM state", ret);
	len = (uint32_t)le_get(hdr, 4);
	if (len > SNAP_FILE_MAX)
		return error_set(err, EBADMSG, "migration stream: a %u-byte VM state", len);
	buf = malloc(len ? len : 1);
	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	ret = migstream_read(fd, buf, len);
	if (ret) {
		free(buf);
		return migrate_read_error(err, "the VM state", ret);
	}
	return snap_open_buf(f, buf, len, "the stream's VM state", err);
}

int migrate_receive(struct machine *m, struct error *err)
{
	uint8_t hdr[4];
	uint64_t records = 0;
	int ret = 0;

	while (!ret) {
		ret = migstream_read(m->incoming_fd, hdr, sizeof(hdr));
		if (ret)
			return error_set(err, -ret, "the stream ended after %llu records: %s",
					 (unsigned long long)records,
					 ret == -EPIPE ? "no VM state came" : strerror(-ret));
		records++;
		switch (le_get(hdr, 4)) {
		case MIGSTREAM_PAGES:
			ret = migrate_read_pages(m->incoming_fd, &m->mem, err);
			break;
		case MIGSTREAM_STATE:
			ret = migrate_read_state(m->incoming_fd, &m->snap, err);
			return ret ? ret : migrate_disks_locked(m, true, err);
		default:
			return error_set(err, EBADMSG, "migration stream: unknown record type %u",
					 (unsigned int)le_get(hdr, 4));
		}
	}
	return ret;
}

void migrate_incoming_done(struct machine *m, int ret, const char *msg)
{
	if (m->incoming_fd < 0)
		return;
	migrate_answer(m->incoming_fd, ret ? 1 : 0, ret ? msg : NULL);
	close(m->incoming_fd);
	m->incoming_fd = -1;
	if (!ret)
		log_info("migration received: the VM runs");
}
