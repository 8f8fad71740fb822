// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "machine.h"
#include "snapdiff.h"
#include "../common/log.h"
#include "../common/util.h"

#define SNAPDIFF_SECTION   "diff"
#define SNAPDIFF_MAX_CHAIN 64  /* diffs on one full snapshot: a bound on a crafted loop */
#define SNAPDIFF_RUN_MAX   256 /* pages per write or read */

static void snapdiff_path(char *buf, size_t size, const char *dir, const char *file)
{
	snprintf(buf, size, "%s/%s", dir, file);
}

/* CRC-32 of a whole state file: what a diff records to know its base again. */
static int snapdiff_state_crc(const char *dir, uint32_t *crc, struct error *err)
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	int ret;

	snapdiff_path(path, sizeof(path), dir, SNAPSHOT_STATE);
	ret = read_file(path, SNAP_FILE_MAX, &buf, &len);
	if (ret)
		return error_set(err, -ret, "%s: %s", path, strerror(-ret));
	*crc = snap_crc32(0, buf, len);
	free(buf);
	return 0;
}

/* Remembers dir as the base of the next diff (its state file is on disk). */
static int snapdiff_remember(struct machine *m, const char *dir, struct error *err)
{
	int ret = snapdiff_state_crc(dir, &m->last_snap_crc, err);

	if (ret)
		return ret;
	snprintf(m->last_snap, sizeof(m->last_snap), "%s", dir);
	return 0;
}

void snapdiff_full_taken(struct machine *m, const char *dir)
{
	struct error err = {0};

	m->last_snap[0] = 0;
	if (dir[0] != '/') /* a base is recorded by its absolute path */
		return;
	if (dirty_start(&m->dirty, m->vm.fd, &m->mem, DIRTY_SNAPSHOT, &err) ||
	    snapdiff_remember(m, dir, &err))
		log_warn("diff snapshots will need a new full one: %s", err.msg);
}

/* ---- saving ---- */

struct snapdiff_src {
	const struct gmem *mem;
	const uint64_t *bits;
};

static int snapdiff_fill(int fd, void *ctx)
{
	const struct snapdiff_src *d = ctx;
	uint64_t npages = d->mem->size / GMEM_PAGE_SIZE, pos = 0, n;
	int ret = ftruncate(fd, (off_t)d->mem->size) ? -errno : 0;

	while (!ret && (n = dirty_next_run(d->bits, npages, &pos, SNAPDIFF_RUN_MAX))) {
		ret = pwrite_full(fd, d->mem->base + pos * GMEM_PAGE_SIZE, n * GMEM_PAGE_SIZE,
				  (off_t)(pos * GMEM_PAGE_SIZE));
		pos += n;
	}
	return ret;
}

/* DIR/memory: guest RAM's size, only the pages in bits written. */
static int snapdiff_write_memory(const struct gmem *mem, const uint64_t *bits, const char *dir,
				 struct error *err)
{
	struct snapdiff_src d = {mem, bits};
	char path[4096];
	int ret;

	snapdiff_path(path, sizeof(path), dir, SNAPSHOT_MEMORY);
	ret = file_write_atomic(path, snapdiff_fill, &d);
	if (ret)
		return error_set(err, -ret, "writing guest memory to %s: %s", path, strerror(-ret));
	return 0;
}

static void snapdiff_save_section(const struct machine *m, const uint64_t *bits, uint64_t nwords,
				  struct snap_writer *w)
{
	snap_begin(w, SNAPDIFF_SECTION, 1);
	snap_put_u32(w, (uint32_t)strlen(m->last_snap));
	snap_put_bytes(w, m->last_snap, strlen(m->last_snap));
	snap_put_u32(w, m->last_snap_crc);
	snap_put_u64(w, m->mem.size / GMEM_PAGE_SIZE);
	for (uint64_t i = 0; i < nwords; i++)
		snap_put_u64(w, bits[i]);
	snap_end(w);
}

/* With the machine paused: state, then memory (the state names the pages the memory holds). */
static int snapdiff_write(struct machine *m, const char *dir, const uint64_t *bits,
			  struct error *err)
{
	struct snap_writer w;
	char path[4096];
	int ret;

	snap_writer_init(&w);
	snapshot_save_config(m->cfg, &w);
	ret = machine_save_state(m, &w, err);
	if (!ret) {
		snapdiff_save_section(m, bits, m->dirty.nwords, &w);
		snapdiff_path(path, sizeof(path), dir, SNAPSHOT_STATE);
		ret = snap_save(&w, path, err);
	}
	snap_writer_free(&w);
	return ret ? ret : snapdiff_write_memory(&m->mem, bits, dir, err);
}

static int snapdiff_check(struct machine *m, const char *dir, struct error *err)
{
	if (!m->last_snap[0])
		return error_set(err, EINVAL,
				 "a diff snapshot needs a previous full snapshot of this VM "
				 "(taken by this process, since its last boot)");
	if (!dirty_active(&m->dirty, &m->mem, DIRTY_SNAPSHOT))
		return error_set(err, EINVAL,
				 "the guest rebooted since the last snapshot: take a full one");
	if (!strcmp(dir, m->last_snap))
		return error_set(err, EEXIST,
				 "%s holds the base of this diff: write the diff elsewhere", dir);
	return 0;
}

/* Pages of a failed diff go back to the set, for the next one. */
static void snapdiff_keep(struct machine *m, const uint64_t *bits)
{
	if (dirty_active(&m->dirty, &m->mem, DIRTY_SNAPSHOT))
		dirty_merge(m->dirty.set[DIRTY_SNAPSHOT], 0, bits, m->mem.size / GMEM_PAGE_SIZE);
}

static int snapdiff_paused(struct machine *m, const char *dir, struct error *err)
{
	uint64_t *bits;
	int64_t n;
	int ret;

	ret = snapdiff_check(m, dir, err);
	if (ret)
		return ret;
	bits = calloc(m->dirty.nwords, sizeof(uint64_t));
	if (!bits)
		return error_set(err, ENOMEM, "out of memory");
	n = dirty_collect(&m->dirty, &m->mem, DIRTY_SNAPSHOT, bits, err);
	ret = n < 0 ? (int)n : snapdiff_write(m, dir, bits, err);
	if (!ret)
		ret = snapdiff_remember(m, dir, err);
	if (ret && n >= 0)
		snapdiff_keep(m, bits);
	if (!ret)
		log_info("diff snapshot in %s: %lld pages", dir, (long long)n);
	free(bits);
	return ret;
}

int machine_snapshot_diff(struct machine *m, const char *dir, struct snapshot_info *info,
			  struct error *err)
{
	return machine_snapshot_paused(m, dir, snapdiff_paused, info, err);
}

/* ---- restoring ---- */

bool snapdiff_is_diff(const struct snap_file *f)
{
	struct snap_section s;
	struct error err = {0};

	return snap_find(f, SNAPDIFF_SECTION, 1, &s, &err) == 0;
}

/* One diff of the chain: where its base is, and which pages it holds. */
struct snapdiff_layer {
	char dir[4096];
	char base[4096];
	uint32_t base_crc;
	uint64_t *bits;
};

static int snapdiff_read_section(const struct snap_file *f, uint64_t npages,
				 struct snapdiff_layer *l, struct error *err)
{
	struct snap_section s;
	uint32_t len;
	int ret = snap_find(f, SNAPDIFF_SECTION, 1, &s, err);

	if (ret)
		return ret;
	len = snap_get_u32(&s);
	if (len == 0 || len >= sizeof(l->base))
		return error_set(err, EBADMSG, "state: the base directory is %u bytes long", len);
	snap_get_bytes(&s, l->base, len);
	l->base[len] = 0;
	if (strlen(l->base) != len || l->base[0] != '/')
		return error_set(err, EBADMSG, "state: the base directory is not an absolute path");
	l->base_crc = snap_get_u32(&s);
	if (snap_get_u64(&s) != npages)
		return error_set(err, EBADMSG, "state: the diff's page count is not the VM's");
	l->bits = calloc(dirty_words(npages), sizeof(uint64_t));
	if (!l->bits)
		return error_set(err, ENOMEM, "out of memory");
	for (uint64_t i = 0; i < dirty_words(npages); i++)
		l->bits[i] = snap_get_u64(&s);
	return snap_section_done(&s, err);
}

/* The base of l: it must be there, whole, and the very one the diff was taken on. */
static int snapdiff_open_base(const struct snapdiff_layer *l, struct snap_file *f,
			      struct error *err)
{
	char path[4096];
	int ret;

	snapdiff_path(path, sizeof(path), l->base, SNAPSHOT_STATE);
	ret = snap_open(f, path, err);
	if (ret)
		return error_wrap(err, "the base snapshot of %s", l->dir);
	if (snap_crc32(0, f->buf, f->len) != l->base_crc) {
		snap_close(f);
		return error_set(err, ESTALE,
				 "the base snapshot of %s: %s was replaced since the diff was "
				 "taken",
				 l->dir, l->base);
	}
	return 0;
}

/* Reads the pages of one layer from its memory file over guest memory. */
static int snapdiff_apply(const struct gmem *mem, const struct snapdiff_layer *l, struct error *err)
{
	uint64_t npages = mem->size / GMEM_PAGE_SIZE, pos = 0, n;
	char path[4096];
	struct stat st;
	int fd, ret = 0;

	snapdiff_path(path, sizeof(path), l->dir, SNAPSHOT_MEMORY);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) || (uint64_t)st.st_size != mem->size) {
		close(fd);
		return error_set(err, EINVAL, "%s: not the size of the VM's memory", path);
	}
	while (!ret && (n = dirty_next_run(l->bits, npages, &pos, SNAPDIFF_RUN_MAX))) {
		uint8_t *p = mem->base + pos * GMEM_PAGE_SIZE;
		size_t want = n * GMEM_PAGE_SIZE, got = 0;

		while (got < want) {
			ssize_t r =
				pread(fd, p + got, want - got, (off_t)(pos * GMEM_PAGE_SIZE + got));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				ret = r < 0 ? -errno : -EIO;
				break;
			}
			got += (size_t)r;
		}
		pos += n;
	}
	close(fd);
	return ret ? error_set(err, -ret, "%s: %s", path, strerror(-ret)) : 0;
}

static void snapdiff_free(struct snapdiff_layer *layers, int n)
{
	for (int i = 0; i < n; i++)
		free(layers[i].bits);
	free(layers);
}

/* Follows the chain from the restored diff down to its full snapshot: layers[0] is the top. */
static int snapdiff_chain(struct machine *m, struct snapdiff_layer *layers, int *n, char *full,
			  size_t size, struct error *err)
{
	uint64_t npages = m->cfg->memory / GMEM_PAGE_SIZE;
	struct snap_file cur = {0}, base = {0};
	const struct snap_file *f = &m->snap;
	int ret = 0;

	*n = 0;
	snprintf(layers[0].dir, sizeof(layers[0].dir), "%s", m->cfg->restore);
	while (!ret) {
		struct snapdiff_layer *l = &layers[*n];

		if (*n == SNAPDIFF_MAX_CHAIN) {
			ret = error_set(err, ELOOP, "more than %d diff snapshots on one full one",
					SNAPDIFF_MAX_CHAIN);
			break;
		}
		(*n)++;
		ret = snapdiff_read_section(f, npages, l, err);
		if (!ret)
			ret = snapdiff_open_base(l, &base, err);
		if (ret)
			break;
		snap_close(&cur);
		cur = base;
		base = (struct snap_file){0};
		if (!snapdiff_is_diff(&cur)) {
			snprintf(full, size, "%s", l->base);
			break;
		}
		snprintf(layers[*n].dir, sizeof(layers[*n].dir), "%s", l->base);
		f = &cur;
	}
	snap_close(&cur);
	return ret;
}

int snapdiff_restore_memory(struct machine *m, struct error *err)
{
	struct snapdiff_layer *layers = calloc(SNAPDIFF_MAX_CHAIN + 1, sizeof(*layers));
	char full[4096], path[4200];
	int n = 0, ret;

	if (!layers)
		return error_set(err, ENOMEM, "out of memory");
	ret = snapdiff_chain(m, layers, &n, full, sizeof(full), err);
	if (!ret) {
		snapdiff_path(path, sizeof(path), full, SNAPSHOT_MEMORY);
		ret = gmem_init_file(&m->mem, m->cfg->memory, path, err);
	}
	for (int i = n - 1; !ret && i >= 0; i--)
		ret = snapdiff_apply(&m->mem, &layers[i], err);
	snapdiff_free(layers, SNAPDIFF_MAX_CHAIN + 1);
	return ret;
}
