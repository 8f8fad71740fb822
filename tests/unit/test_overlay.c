// SPDX-License-Identifier: MIT
/* Overlay files and chains (block/overlay.c) and overlay disks in the block layer. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/common/le.h"
#include "../../src/vmm/block/disk.h"
#include "../../src/vmm/block/overlay.h"

#define BS	 (1u << OVL_BLOCK_SHIFT)
#define IMG_SIZE (16u * BS + 4096) /* a short last block */

static char dir[64], base[128];

static void path_in(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9) + 1);
}

static void write_file(const char *path, const void *buf, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void read_file(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static uint8_t *base_pattern(void)
{
	uint8_t *b = malloc(IMG_SIZE);

	fill(b, IMG_SIZE, 1);
	return b;
}

/* A base image holding base_pattern(). */
static void setup(void)
{
	uint8_t *b = base_pattern();
	int fd;

	snprintf(dir, sizeof(dir), "/tmp/bunshin-ovl-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	path_in(base, sizeof(base), "base.img");
	fd = open(base, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, b, IMG_SIZE), IMG_SIZE);
	close(fd);
	free(b);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(overlay, .init = setup, .fini = teardown);

static struct overlay *create_open(const char *name, const char *below, enum ovl_fmt fmt,
				   char *path, size_t n)
{
	struct error err = {0};
	struct overlay *o = NULL;

	path_in(path, n, name);
	cr_assert_eq(overlay_create(path, below, fmt, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_open(&o, path, true, &err), 0, "%s", err.msg);
	return o;
}

static void assert_base_intact(void)
{
	uint8_t *want = base_pattern(), *got = malloc(IMG_SIZE);

	read_file(base, got, IMG_SIZE, 0);
	cr_assert(!memcmp(want, got, IMG_SIZE), "the base image changed");
	free(want);
	free(got);
}

/* ---- format and chains ---- */

Test(overlay, reads_through_to_the_base)
{
	char top[128];
	struct overlay *o = create_open("top.ovl", base, OVL_FMT_RAW, top, sizeof(top));
	uint8_t *want = base_pattern(), *got = malloc(IMG_SIZE);

	cr_assert_eq(o->size, IMG_SIZE);
	cr_assert_eq(o->n, 2);
	cr_assert_eq(overlay_pread(o, got, IMG_SIZE, 0), 0);
	cr_assert(!memcmp(want, got, IMG_SIZE));
	cr_assert_eq(overlay_pread(o, got, 2, IMG_SIZE - 1), -EINVAL);
	overlay_close(o);
	free(want);
	free(got);
}

Test(overlay, partial_write_copies_the_block_up)
{
	char top[128];
	struct overlay *o = create_open("top.ovl", base, OVL_FMT_RAW, top, sizeof(top));
	uint8_t *want = base_pattern(), *got = malloc(IMG_SIZE), buf[1000];
	struct error err = {0};

	fill(buf, sizeof(buf), 7);
	/* inside block 1, and across the end of block 3 into block 4 */
	cr_assert_eq(overlay_pwrite(o, buf, 100, BS + 300), 0);
	cr_assert_eq(overlay_pwrite(o, buf, sizeof(buf), 4 * BS - 500), 0);
	/* the short last block, written to its end */
	cr_assert_eq(overlay_pwrite(o, buf, 100, IMG_SIZE - 100), 0);
	memcpy(want + BS + 300, buf, 100);
	memcpy(want + 4 * BS - 500, buf, sizeof(buf));
	memcpy(want + IMG_SIZE - 100, buf, 100);
	cr_assert_eq(overlay_layer_of(o, 1), 0);
	cr_assert_eq(overlay_layer_of(o, 2), 1);
	cr_assert_eq(overlay_pread(o, got, IMG_SIZE, 0), 0);
	cr_assert(!memcmp(want, got, IMG_SIZE), "copy-up lost the rest of the block");
	overlay_close(o);
	assert_base_intact();
	/* persisted at close: the same after reopening */
	cr_assert_eq(overlay_open(&o, top, false, &err), 0, "%s", err.msg);
	memset(got, 0, IMG_SIZE);
	cr_assert_eq(overlay_pread(o, got, IMG_SIZE, 0), 0);
	cr_assert(!memcmp(want, got, IMG_SIZE), "data lost across reopen");
	cr_assert_eq(overlay_pwrite(o, buf, 10, 0), -EROFS);
	overlay_close(o);
	free(want);
	free(got);
}

Test(overlay, persist_then_reopen_without_close)
{
	char top[128];
	struct overlay *o = create_open("top.ovl", base, OVL_FMT_RAW, top, sizeof(top)), *r;
	uint8_t buf[BS], got[BS];
	struct error err = {0};

	fill(buf, sizeof(buf), 3);
	cr_assert_eq(overlay_pwrite(o, buf, BS, 5 * BS), 0);
	cr_assert(overlay_dirty(o));
	cr_assert_eq(overlay_persist(o, true), 0);
	cr_assert(!overlay_dirty(o));
	/* a second, read-only opener conflicts with the writer's lock */
	cr_assert_eq(overlay_open(&r, top, false, &err), -EBUSY);
	cr_assert(strstr(err.msg, "locked"), "%s", err.msg);
	o->writable = false; /* as if the process died: nothing more persisted */
	overlay_close(o);
	cr_assert_eq(overlay_open(&r, top, false, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_pread(r, got, BS, 5 * BS), 0);
	cr_assert(!memcmp(buf, got, BS));
	overlay_close(r);
}

/*
 * A live migration's hand-over on one file: the destination opens the top
 * unlocked while the source still writes; the source lets go (its bitmap
 * written out), the destination takes the lock and reads the bitmap again,
 * so it sees the blocks written after it opened. Before, it cannot lock.
 */
Test(overlay, relock_hands_the_top_over_with_its_bitmap)
{
	char top[128];
	struct overlay *src = create_open("top.ovl", base, OVL_FMT_RAW, top, sizeof(top)), *dst;
	uint8_t buf[BS], got[BS], *want = base_pattern();
	struct error err = {0};

	cr_assert_eq(overlay_open_unlocked(&dst, top, &err), 0, "%s", err.msg);
	fill(buf, sizeof(buf), 9);
	cr_assert_eq(overlay_pwrite(src, buf, BS, 3 * BS), 0); /* bits in memory only */
	cr_assert_eq(overlay_relock(dst, true, &err), -EBUSY, "the source still holds it");
	cr_assert_eq(overlay_relock(src, false, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_relock(dst, true, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_pread(dst, got, BS, 3 * BS), 0);
	cr_assert(!memcmp(buf, got, BS), "the destination read the base, not the source's block");
	cr_assert_eq(overlay_pread(dst, got, BS, 4 * BS), 0);
	cr_assert(!memcmp(want + 4 * BS, got, BS));
	/* and back: the source cannot take it while the destination holds it */
	cr_assert_eq(overlay_relock(src, true, &err), -EBUSY);
	src->writable = false;
	overlay_close(src);
	overlay_close(dst);
	free(want);
}

Test(overlay, chain_reads_from_the_topmost_layer)
{
	char p1[128], p2[128];
	struct overlay *o = create_open("l1.ovl", base, OVL_FMT_RAW, p1, sizeof(p1));
	uint8_t *want = base_pattern(), *got = malloc(IMG_SIZE), a[BS], b[BS];
	struct error err = {0};

	fill(a, BS, 4);
	fill(b, BS, 5);
	cr_assert_eq(overlay_pwrite(o, a, BS, 2 * BS), 0);
	cr_assert_eq(overlay_pwrite(o, a, BS, 3 * BS), 0);
	path_in(p2, sizeof(p2), "l2.ovl");
	cr_assert_eq(overlay_freeze(&o, p2, &err), 0, "%s", err.msg);
	cr_assert_eq(o->n, 3);
	/* block 3 over l1's copy, and part of block 6 over the base */
	cr_assert_eq(overlay_pwrite(o, b, BS, 3 * BS), 0);
	cr_assert_eq(overlay_pwrite(o, b, 10, 6 * BS + 5), 0);
	memcpy(want + 2 * BS, a, BS);
	memcpy(want + 3 * BS, b, BS);
	memcpy(want + 6 * BS + 5, b, 10);
	cr_assert_eq(overlay_pread(o, got, IMG_SIZE, 0), 0);
	cr_assert(!memcmp(want, got, IMG_SIZE));
	overlay_close(o);
	/* the frozen layer still says what it said at the freeze */
	cr_assert_eq(overlay_open(&o, p1, false, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_pread(o, got, BS, 3 * BS), 0);
	cr_assert(!memcmp(a, got, BS));
	cr_assert_eq(overlay_pread(o, got, BS, 6 * BS), 0);
	cr_assert(!memcmp(base_pattern() + 6 * BS, got, BS));
	overlay_close(o);
	assert_base_intact();
	free(want);
	free(got);
}

Test(overlay, chain_depth_is_limited)
{
	char p[128], name[32];
	struct overlay *o = create_open("d0.ovl", base, OVL_FMT_RAW, p, sizeof(p));
	struct error err = {0};
	int i;

	for (i = 1; i < OVL_MAX_DEPTH - 1; i++) {
		snprintf(name, sizeof(name), "d%d.ovl", i);
		path_in(p, sizeof(p), name);
		cr_assert_eq(overlay_freeze(&o, p, &err), 0, "layer %d: %s", i, err.msg);
	}
	cr_assert_eq(o->n, OVL_MAX_DEPTH);
	path_in(p, sizeof(p), "one-too-many.ovl");
	cr_assert_eq(overlay_freeze(&o, p, &err), -ELOOP);
	cr_assert(strstr(err.msg, "deep"), "%s", err.msg);
	cr_assert_eq(access(p, F_OK), -1);
	overlay_close(o);
	/* made by hand, one more layer is refused at open */
	path_in(name, sizeof(name), "x");
	path_in(p, sizeof(p), "d14.ovl");
	{
		char extra[128];

		path_in(extra, sizeof(extra), "d15.ovl");
		cr_assert_eq(overlay_create(extra, p, OVL_FMT_OVERLAY, &err), 0, "%s", err.msg);
		cr_assert_eq(overlay_open(&o, extra, false, &err), -ELOOP);
		cr_assert(strstr(err.msg, "deeper"), "%s", err.msg);
	}
}

/* ---- refusals at open ---- */

static uint32_t crc32_ieee(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ ((crc & 1) ? 0xedb88320u : 0);
	}
	return ~crc;
}

/* Rewrites a header field (and, with fix_crc, its checksum). */
static void patch(const char *path, size_t off, unsigned len, uint64_t v, bool fix_crc)
{
	uint8_t h[OVL_HEADER_SIZE];

	read_file(path, h, sizeof(h), 0);
	le_put(h + off, len, v);
	if (fix_crc) {
		le_put(h + 60, 4, 0);
		le_put(h + 60, 4, crc32_ieee(h, sizeof(h)));
	}
	write_file(path, h, sizeof(h), 0);
}

static void expect_refused(const char *path, int code, const char *words)
{
	struct error err = {0};
	struct overlay *o = NULL;

	cr_assert_eq(overlay_open(&o, path, true, &err), -code, "opened: %s", err.msg);
	cr_assert(strstr(err.msg, words), "'%s' does not say '%s'", err.msg, words);
	cr_assert(!strchr(err.msg, '\n'));
}

static void fresh(char *p, size_t n)
{
	struct error err = {0};

	path_in(p, n, "c.ovl");
	unlink(p);
	cr_assert_eq(overlay_create(p, base, OVL_FMT_RAW, &err), 0, "%s", err.msg);
}

Test(overlay, corrupt_headers_are_refused)
{
	char p[128];
	uint8_t h[OVL_HEADER_SIZE];

	fresh(p, sizeof(p));
	patch(p, 0, 1, 'X', false);
	expect_refused(p, EINVAL, "bad magic");
	fresh(p, sizeof(p));
	patch(p, 24, 8, IMG_SIZE + 1, false);
	expect_refused(p, EINVAL, "checksum");
	fresh(p, sizeof(p));
	patch(p, 8, 4, 2, true);
	expect_refused(p, EINVAL, "version");
	fresh(p, sizeof(p));
	patch(p, 12, 4, 512, true);
	expect_refused(p, EINVAL, "header size");
	fresh(p, sizeof(p));
	patch(p, 16, 4, 12, true);
	expect_refused(p, EINVAL, "block size");
	fresh(p, sizeof(p));
	patch(p, 20, 4, 7, true);
	expect_refused(p, EINVAL, "format");
	fresh(p, sizeof(p));
	patch(p, 24, 8, 0, true);
	expect_refused(p, EINVAL, "virtual size");
	fresh(p, sizeof(p));
	patch(p, 40, 8, 1, true);
	expect_refused(p, EINVAL, "layout");
	fresh(p, sizeof(p));
	patch(p, 56, 4, 5000, true);
	expect_refused(p, EINVAL, "path of the layer below");
	fresh(p, sizeof(p));
	patch(p, 64, 1, 'r', true); /* relative */
	expect_refused(p, EINVAL, "path of the layer below");
	fresh(p, sizeof(p));
	cr_assert_eq(truncate(p, OVL_HEADER_SIZE + 10), 0);
	expect_refused(p, EINVAL, "truncated file");
	fresh(p, sizeof(p));
	cr_assert_eq(truncate(p, 100), 0);
	expect_refused(p, EINVAL, "truncated header");
	/* a raw image is not an overlay */
	expect_refused(base, EINVAL, "bad magic");
	read_file(base, h, 8, 0);
}

Test(overlay, size_mismatch_with_the_base_is_refused)
{
	char p[128];

	fresh(p, sizeof(p));
	cr_assert_eq(truncate(base, IMG_SIZE + BS), 0);
	expect_refused(p, EINVAL, "size mismatch");
}

Test(overlay, loop_in_the_chain_is_refused)
{
	char a[128], b[128];
	struct error err = {0};
	uint8_t h[OVL_HEADER_SIZE];

	path_in(a, sizeof(a), "a.ovl");
	path_in(b, sizeof(b), "b.ovl");
	cr_assert_eq(overlay_create(a, base, OVL_FMT_RAW, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_create(b, a, OVL_FMT_OVERLAY, &err), 0, "%s", err.msg);
	/* a now claims to be over b */
	read_file(a, h, sizeof(h), 0);
	le_put(h + 20, 4, OVL_FMT_OVERLAY);
	le_put(h + 56, 4, strlen(b));
	memset(h + 64, 0, sizeof(h) - 64);
	memcpy(h + 64, b, strlen(b));
	le_put(h + 60, 4, 0);
	le_put(h + 60, 4, crc32_ieee(h, sizeof(h)));
	write_file(a, h, sizeof(h), 0);
	expect_refused(b, ELOOP, "loop");
	/* and a file over itself */
	le_put(h + 56, 4, strlen(a));
	memset(h + 64, 0, sizeof(h) - 64);
	memcpy(h + 64, a, strlen(a));
	le_put(h + 60, 4, 0);
	le_put(h + 60, 4, crc32_ieee(h, sizeof(h)));
	write_file(a, h, sizeof(h), 0);
	expect_refused(a, ELOOP, "loop");
}

Test(overlay, missing_layer_below_is_refused)
{
	char p[128];

	fresh(p, sizeof(p));
	cr_assert_eq(unlink(base), 0);
	expect_refused(p, ENOENT, "base.img");
}

/* ---- overlay disks through the block layer, both engines ---- */

struct done {
	int calls, result;
};

static void on_done(void *opaque, int result)
{
	struct done *c = opaque;

	c->calls++;
	c->result = result;
}

static void wait_all(struct disk_queue *q)
{
	cr_assert_eq(disk_queue_submit(q), 0);
	while (disk_queue_inflight(q)) {
		struct pollfd p = {.fd = disk_queue_eventfd(q), .events = POLLIN};

		cr_assert_eq(poll(&p, 1, 5000), 1, "no completion signalled");
		disk_queue_complete(q);
	}
}

static int do_io(struct disk_queue *q, int kind, void *buf, size_t len, uint64_t off)
{
	struct iovec v[3] = {{buf, len / 2}, {(uint8_t *)buf + len / 2, len - len / 2}};
	struct done c = {0};
	int ret;

	switch (kind) {
	case 0:
		ret = disk_readv(q, v, 2, off, on_done, &c);
		break;
	case 1:
		ret = disk_writev(q, v, 2, off, on_done, &c);
		break;
	case 2:
		ret = disk_writev_sync(q, v, 2, off, on_done, &c);
		break;
	case 3:
		ret = disk_write_zeroes(q, off, len, on_done, &c);
		break;
	case 4:
		ret = disk_discard(q, off, len, on_done, &c);
		break;
	default:
		ret = disk_flush(q, on_done, &c);
	}
	if (ret < 0)
		return ret;
	cr_assert_eq(c.calls, 0, "completed inside the enqueue call");
	wait_all(q);
	cr_assert_eq(c.calls, 1);
	return c.result;
}

enum { RD, WR, WR_SYNC, ZERO, DISCARD, FLUSH };

static struct disk *open_ovl_disk(const char *top)
{
	struct disk_opts o = {.overlay = top};
	struct error err = {0};
	struct disk *d = NULL;

	cr_assert_eq(disk_open(&d, base, &o, &err), 0, "%s", err.msg);
	return d;
}

static struct disk_queue *open_queue(struct disk *d, bool sync, unsigned depth)
{
	struct disk_queue_opts o = {.depth = depth, .force_sync = sync, .max_xfer = 8192};
	struct error err = {0};
	struct disk_queue *q = NULL;

	cr_assert_eq(disk_queue_new(&q, d, &o, &err), 0, "%s", err.msg);
	return q;
}

static void disk_io(bool sync)
{
	char top[128];
	struct disk *d;
	struct disk_queue *q;
	uint8_t *want = base_pattern(), *got = malloc(IMG_SIZE), buf[3 * BS];
	struct overlay *o;
	struct error err = {0};

	path_in(top, sizeof(top), "disk.ovl");
	d = open_ovl_disk(top);
	cr_assert_eq(d->size, IMG_SIZE);
	/* depth 2: a read over many runs goes out a part at a time */
	q = open_queue(d, sync, 2);
	fill(buf, sizeof(buf), 9);
	cr_assert_eq(do_io(q, WR, buf, 512, 3 * BS + 1024), 0);
	cr_assert_eq(do_io(q, WR, buf, 2 * BS + 4096, 5 * BS - 2048), 0);
	cr_assert_eq(do_io(q, WR_SYNC, buf, 4096, 9 * BS + 512), 0);
	cr_assert_eq(do_io(q, ZERO, NULL, BS + 1024, 11 * BS + 512), 0);
	cr_assert_eq(do_io(q, DISCARD, NULL, 4096, 14 * BS), 0);
	memcpy(want + 3 * BS + 1024, buf, 512);
	memcpy(want + 5 * BS - 2048, buf, 2 * BS + 4096);
	memcpy(want + 9 * BS + 512, buf, 4096);
	memset(want + 11 * BS + 512, 0, BS + 1024);
	memset(want + 14 * BS, 0, 4096);
	cr_assert_eq(do_io(q, RD, got, IMG_SIZE, 0), 0);
	cr_assert(!memcmp(want, got, IMG_SIZE), "the guest's view is wrong");
	cr_assert_eq(do_io(q, RD, got, 4096, IMG_SIZE - 2048), -EINVAL);
	cr_assert_eq(do_io(q, FLUSH, NULL, 0, 0), 0);
	disk_queue_free(q);
	disk_close(d);
	assert_base_intact();
	cr_assert_eq(overlay_open(&o, top, false, &err), 0, "%s", err.msg);
	memset(got, 0, IMG_SIZE);
	cr_assert_eq(overlay_pread(o, got, IMG_SIZE, 0), 0);
	cr_assert(!memcmp(want, got, IMG_SIZE), "not the same after reopen");
	overlay_close(o);
	/* and opened again as a disk over the same image */
	d = open_ovl_disk(top);
	q = open_queue(d, sync, 64);
	memset(got, 0, IMG_SIZE);
	cr_assert_eq(do_io(q, RD, got, IMG_SIZE, 0), 0);
	cr_assert(!memcmp(want, got, IMG_SIZE));
	disk_queue_free(q);
	disk_close(d);
	free(want);
	free(got);
}

Test(overlay, disk_io_uring)
{
	disk_io(false);
}

Test(overlay, disk_io_sync)
{
	disk_io(true);
}

Test(overlay, disk_backpressure_and_many_requests)
{
	char top[128];
	struct disk *d;
	struct disk_queue *q;
	struct done c[8] = {0};
	uint8_t bufs[8][4096];
	struct iovec v[8];
	int accepted = 0;

	path_in(top, sizeof(top), "bp.ovl");
	d = open_ovl_disk(top);
	q = open_queue(d, false, 4);
	for (int i = 0; i < 8; i++) {
		fill(bufs[i], 4096, (unsigned)i);
		v[i] = (struct iovec){bufs[i], 4096};
		int ret = disk_writev(q, &v[i], 1, (uint64_t)i * BS + 100 * 512, on_done, &c[i]);

		if (ret == -EAGAIN)
			break;
		cr_assert_eq(ret, 0);
		accepted++;
	}
	cr_assert_eq(accepted, 4, "queue depth 4 took %d", accepted);
	wait_all(q);
	for (int i = 0; i < accepted; i++)
		cr_assert_eq(c[i].calls, 1);
	disk_queue_free(q);
	disk_close(d);
	assert_base_intact();
}

Test(overlay, disk_freeze_keeps_the_old_data)
{
	char top[128];
	struct disk_opts opts = {0};
	struct error err = {0};
	struct disk *d = NULL;
	struct disk_queue *q;
	struct overlay *o;
	uint8_t a[4096], b[4096], got[4096];

	cr_assert_eq(disk_open(&d, base, &opts, &err), 0, "%s", err.msg);
	q = open_queue(d, false, 8);
	fill(a, sizeof(a), 21);
	fill(b, sizeof(b), 22);
	cr_assert_eq(do_io(q, WR, a, 4096, BS), 0);
	path_in(top, sizeof(top), "live.ovl");
	cr_assert_eq(disk_freeze(d, top, &err), 0, "%s", err.msg);
	cr_assert_not_null(d->ovl);
	/* the frozen image is shared now: a clone may open it read-only */
	{
		struct disk_opts ro = {.read_only = true};
		struct disk *r = NULL;

		cr_assert_eq(disk_open(&r, base, &ro, &err), 0, "%s", err.msg);
		disk_close(r);
	}
	cr_assert_eq(do_io(q, WR, b, 4096, BS), 0);
	cr_assert_eq(do_io(q, RD, got, 4096, BS), 0);
	cr_assert(!memcmp(got, b, 4096));
	read_file(base, got, 4096, BS);
	cr_assert(!memcmp(got, a, 4096), "the frozen image was written");
	/* a second freeze stacks another layer */
	path_in(top, sizeof(top), "live2.ovl");
	cr_assert_eq(disk_freeze(d, top, &err), 0, "%s", err.msg);
	cr_assert_eq(d->ovl->n, 3);
	cr_assert_eq(do_io(q, RD, got, 4096, BS), 0);
	cr_assert(!memcmp(got, b, 4096));
	disk_queue_free(q);
	disk_close(d);
	path_in(top, sizeof(top), "live.ovl");
	cr_assert_eq(overlay_open(&o, top, false, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_pread(o, got, 4096, BS), 0);
	cr_assert(!memcmp(got, b, 4096));
	overlay_close(o);
}

Test(overlay, disk_options_are_checked)
{
	char top[128], other[128];
	struct error err = {0};
	struct disk *d = NULL;
	struct disk_opts ro = {.overlay = top, .read_only = true};
	struct disk_opts dio = {.overlay = top, .direct = true};
	struct disk_opts o = {.overlay = top};

	path_in(top, sizeof(top), "opt.ovl");
	cr_assert_eq(disk_open(&d, base, &ro, &err), -EINVAL);
	cr_assert(strstr(err.msg, "read-only"), "%s", err.msg);
	cr_assert_eq(disk_open(&d, base, &dio, &err), -EINVAL);
	cr_assert(strstr(err.msg, "direct"), "%s", err.msg);
	/* an existing overlay over some other image */
	path_in(other, sizeof(other), "other.img");
	cr_assert_eq(truncate(base, IMG_SIZE), 0);
	{
		int fd = open(other, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		cr_assert_eq(ftruncate(fd, IMG_SIZE), 0);
		close(fd);
	}
	cr_assert_eq(overlay_create(top, other, OVL_FMT_RAW, &err), 0, "%s", err.msg);
	cr_assert_eq(disk_open(&d, base, &o, &err), -EINVAL);
	cr_assert(strstr(err.msg, "not over this image"), "%s", err.msg);
}

/*
 * A cold boot after snapshots: overlay= is the live top of a chain, path=
 * the image at its bottom (or any layer of it), never one outside it.
 */
Test(overlay, disk_opens_a_chain_top_over_any_of_its_layers)
{
	char mid[128], top[128], other[128];
	struct disk_opts o = {.overlay = top};
	struct error err = {0};
	struct disk *d = NULL;
	struct overlay *ov;

	path_in(top, sizeof(top), "top.ovl");
	ov = create_open("mid.ovl", base, OVL_FMT_RAW, mid, sizeof(mid));
	overlay_close(ov);
	cr_assert_eq(overlay_create(top, mid, OVL_FMT_OVERLAY, &err), 0, "%s", err.msg);
	cr_assert_eq(disk_open(&d, base, &o, &err), 0, "%s", err.msg);
	cr_assert_eq(d->ovl->n, 3);
	disk_close(d);
	d = NULL;
	o.image_is_overlay = true;
	cr_assert_eq(disk_open(&d, mid, &o, &err), 0, "%s", err.msg);
	disk_close(d);
	d = NULL;
	/* a raw file the chain does not hold */
	path_in(other, sizeof(other), "stray.img");
	cr_assert_eq(truncate(base, IMG_SIZE), 0);
	{
		int fd = open(other, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		cr_assert_eq(ftruncate(fd, IMG_SIZE), 0);
		close(fd);
	}
	o.image_is_overlay = false;
	cr_assert_eq(disk_open(&d, other, &o, &err), -EINVAL);
	cr_assert(strstr(err.msg, "not over this image"), "%s", err.msg);
}

/*
 * A crash (nothing persisted at close): what the guest flushed is there,
 * a write after the last flush reads as the old data, never as garbage.
 */
static void crash_after_flush(bool sync)
{
	char top[128];
	struct disk *d;
	struct disk_queue *q;
	struct overlay *o;
	struct error err = {0};
	uint8_t *base_data = base_pattern(), a[8192], b[8192], got[8192];

	path_in(top, sizeof(top), "crash.ovl");
	d = open_ovl_disk(top);
	q = open_queue(d, sync, 8);
	fill(a, sizeof(a), 41);
	fill(b, sizeof(b), 42);
	cr_assert_eq(do_io(q, WR, a, sizeof(a), 2 * BS + 4096), 0);
	cr_assert_eq(do_io(q, FLUSH, NULL, 0, 0), 0);
	cr_assert_eq(do_io(q, WR, b, sizeof(b), 7 * BS), 0);
	disk_queue_free(q);
	d->ovl->writable = false; /* the process dies: no bitmap written at close */
	disk_close(d);
	cr_assert_eq(overlay_open(&o, top, false, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_pread(o, got, sizeof(a), 2 * BS + 4096), 0);
	cr_assert(!memcmp(got, a, sizeof(a)), "a flushed write was lost");
	cr_assert_eq(overlay_pread(o, got, sizeof(b), 7 * BS), 0);
	cr_assert(!memcmp(got, base_data + 7 * BS, sizeof(b)),
		  "the bit of an unflushed write reached the file before a flush");
	overlay_close(o);
	free(base_data);
}

Test(overlay, crash_after_flush_uring)
{
	crash_after_flush(false);
}

Test(overlay, crash_after_flush_sync)
{
	crash_after_flush(true);
}

/* Write-through requests (no FLUSH negotiated) persist the bitmap before they complete. */
Test(overlay, write_through_persists_the_bitmap)
{
	char top[128];
	struct disk *d;
	struct disk_queue *q;
	struct overlay *o;
	struct error err = {0};
	uint8_t a[4096], got[4096];

	path_in(top, sizeof(top), "wt.ovl");
	d = open_ovl_disk(top);
	q = open_queue(d, false, 8);
	fill(a, sizeof(a), 43);
	cr_assert_eq(do_io(q, WR_SYNC, a, sizeof(a), 3 * BS + 512), 0);
	cr_assert(!overlay_dirty(d->ovl));
	disk_queue_free(q);
	d->ovl->writable = false;
	disk_close(d);
	cr_assert_eq(overlay_open(&o, top, false, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_pread(o, got, sizeof(a), 3 * BS + 512), 0);
	cr_assert(!memcmp(got, a, sizeof(a)));
	overlay_close(o);
}
