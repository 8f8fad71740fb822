// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/vmm/block/disk.h"

#define IMG_SIZE (4u << 20)

static char img[64];

/* A fresh sparse image in /tmp, removed after the test. */
static void make_image(const char *dir, uint64_t size)
{
	int fd;

	snprintf(img, sizeof(img), "%s/bunshin-blk-XXXXXX", dir);
	fd = mkstemp(img);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void setup(void)
{
	make_image("/tmp", IMG_SIZE);
}

static void teardown(void)
{
	unlink(img);
}

TestSuite(block, .init = setup, .fini = teardown);

static struct disk *open_disk(bool ro, bool direct)
{
	struct disk_opts o = {.read_only = ro, .direct = direct};
	struct error err = {0};
	struct disk *d = NULL;

	cr_assert_eq(disk_open(&d, img, &o, &err), 0, "%s", err.msg);
	return d;
}

static struct disk_queue *open_queue(struct disk *d, bool sync, unsigned depth, uint32_t max_xfer)
{
	struct disk_queue_opts o = {.depth = depth, .force_sync = sync, .max_xfer = max_xfer};
	struct error err = {0};
	struct disk_queue *q = NULL;

	cr_assert_eq(disk_queue_new(&q, d, &o, &err), 0, "%s", err.msg);
	cr_assert_eq(disk_queue_is_uring(q), !sync);
	return q;
}

struct done {
	int calls;
	int result;
};

static void on_done(void *opaque, int result)
{
	struct done *c = opaque;

	c->calls++;
	c->result = result;
}

/* Submits and waits through the eventfd, as an epoll I/O thread would. */
static void wait_all(struct disk_queue *q)
{
	cr_assert_eq(disk_queue_submit(q), 0);
	while (disk_queue_inflight(q)) {
		struct pollfd p = {.fd = disk_queue_eventfd(q), .events = POLLIN};

		cr_assert_eq(poll(&p, 1, 5000), 1, "no completion signalled on the eventfd");
		disk_queue_complete(q);
	}
}

static int do_rw(struct disk_queue *q, bool write, const struct iovec *iov, int n, uint64_t off)
{
	struct done c = {0};
	int ret = write ? disk_writev(q, iov, n, off, on_done, &c)
			: disk_readv(q, iov, n, off, on_done, &c);

	if (ret < 0)
		return ret;
	wait_all(q);
	cr_assert_eq(c.calls, 1);
	return c.result;
}

static int do_io(struct disk_queue *q, bool write, void *buf, size_t len, uint64_t off)
{
	struct iovec v = {.iov_base = buf, .iov_len = len};

	return do_rw(q, write, &v, 1, off);
}

enum cmd { FLUSH, DISCARD, ZEROES };

static int do_cmd(struct disk_queue *q, enum cmd cmd, uint64_t off, uint64_t len)
{
	struct done c = {0};
	int ret = cmd == FLUSH	   ? disk_flush(q, on_done, &c)
		  : cmd == DISCARD ? disk_discard(q, off, len, on_done, &c)
				   : disk_write_zeroes(q, off, len, on_done, &c);

	if (ret < 0)
		return ret;
	wait_all(q);
	cr_assert_eq(c.calls, 1);
	return c.result;
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

/* Each scenario runs on io_uring and on the synchronous fallback. */
#define BOTH(name)                                                                                 \
	static void name(bool sync);                                                               \
	Test(block, name##_uring)                                                                  \
	{                                                                                          \
		name(false);                                                                       \
	}                                                                                          \
	Test(block, name##_sync)                                                                   \
	{                                                                                          \
		name(true);                                                                        \
	}                                                                                          \
	static void name(bool sync)

/* --- opening --- */

Test(block, open_missing)
{
	struct disk_opts o = {0};
	struct error err = {0};
	struct disk *d = NULL;

	cr_assert_eq(disk_open(&d, "/tmp/bunshin-no-such-image", &o, &err), -ENOENT);
	cr_assert(strstr(err.msg, "disk /tmp/bunshin-no-such-image:"), "%s", err.msg);
}

Test(block, open_directory)
{
	struct disk_opts rw = {0}, ro = {.read_only = true};
	struct error err = {0};
	struct disk *d = NULL;

	cr_assert_eq(disk_open(&d, "/tmp", &rw, &err), -EISDIR, "%s", err.msg);
	cr_assert_eq(disk_open(&d, "/tmp", &ro, &err), -EINVAL, "%s", err.msg);
	cr_assert(strstr(err.msg, "not a regular file or block device"), "%s", err.msg);
}

Test(block, geometry_and_id)
{
	struct disk_opts o = {.id = "serial-0123456789abcdefXYZ"};
	struct error err = {0};
	struct disk *d = open_disk(false, false), *d2;
	char id[DISK_ID_BYTES];

	cr_assert_eq(d->size, IMG_SIZE);
	cr_assert_eq(d->sectors, IMG_SIZE / 512);
	cr_assert_eq(d->block_size, 512);
	cr_assert_str_eq(d->id, strrchr(img, '/') + 1);
	disk_close(d);

	cr_assert_eq(disk_open(&d2, img, &o, &err), 0, "%s", err.msg);
	/* the virtio-blk field is 20 bytes, unterminated when full */
	cr_assert_eq(disk_get_id(d2, id, sizeof(id)), DISK_ID_BYTES);
	cr_assert_eq(memcmp(id, "serial-0123456789abc", DISK_ID_BYTES), 0);
	disk_close(d2);
}

Test(block, lock_second_open)
{
	struct disk_opts rw = {0}, ro = {.read_only = true};
	struct error err = {0};
	struct disk *a = open_disk(false, false), *b = NULL, *c = NULL;
	char want[64];

	cr_assert_eq(disk_open(&b, img, &rw, &err), -EBUSY);
	snprintf(want, sizeof(want), "image is locked by another process (pid %d)", getpid());
	cr_assert(strstr(err.msg, want), "%s", err.msg);
	cr_assert_eq(disk_open(&b, img, &ro, &err), -EBUSY,
		     "a reader must not share with a writer");
	disk_close(a);

	/* closed: the lock is gone; readers share, a writer is kept out */
	cr_assert_eq(disk_open(&a, img, &ro, &err), 0, "%s", err.msg);
	cr_assert_eq(disk_open(&b, img, &ro, &err), 0, "%s", err.msg);
	cr_assert_eq(disk_open(&c, img, &rw, &err), -EBUSY);
	disk_close(a);
	disk_close(b);
}

Test(block, lock_held_by_child)
{
	int ready[2], quit[2];
	struct error err = {0};
	struct disk *d = NULL;
	char want[160], c;
	pid_t pid;

	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(quit), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct disk_opts o = {0};
		int ok;

		/* never outlive a parent that failed: EOF on quit, or the alarm */
		alarm(20);
		close(quit[1]);
		close(ready[0]);
		ok = disk_open(&d, img, &o, &err) == 0;

		if (write(ready[1], ok ? "y" : "n", 1) != 1 || read(quit[0], &c, 1) < 0)
			_exit(2);
		_exit(ok ? 0 : 1);
	}
	close(quit[0]);
	close(ready[1]);
	cr_assert_eq(read(ready[0], &c, 1), 1);
	cr_assert_eq(c, 'y');
	cr_assert_eq(disk_open(&d, img, &(struct disk_opts){.read_only = true}, &err), -EBUSY);
	snprintf(want, sizeof(want), "disk %s: image is locked by another process (pid %d)", img,
		 pid);
	cr_assert_str_eq(err.msg, want);
	close(quit[1]);
	waitpid(pid, NULL, 0);
	/* the child's exit released it */
	disk_close(open_disk(false, false));
}

/* --- data --- */

BOTH(round_trip)
{
	static const uint64_t offs[] = {0, 513, 3 * 4096 + 7, IMG_SIZE - 20000};
	static const size_t seg[] = {1, 511, 4096, 9000, 6392};
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = open_queue(d, sync, 8, 0);
	uint8_t src[20000], dst[20000];
	struct iovec wv[5], rv[3];
	size_t at = 0;

	for (int i = 0; i < 5; i++) {
		wv[i] = (struct iovec){.iov_base = src + at, .iov_len = seg[i]};
		at += seg[i];
	}
	rv[0] = (struct iovec){.iov_base = dst, .iov_len = 7};
	rv[1] = (struct iovec){.iov_base = dst + 7, .iov_len = 0};
	rv[2] = (struct iovec){.iov_base = dst + 7, .iov_len = sizeof(dst) - 7};
	for (unsigned i = 0; i < 4; i++) {
		fill(src, sizeof(src), i);
		memset(dst, 0xee, sizeof(dst));
		cr_assert_eq(do_rw(q, true, wv, 5, offs[i]), 0);
		cr_assert_eq(do_rw(q, false, rv, 3, offs[i]), 0);
		cr_assert_eq(memcmp(src, dst, sizeof(src)), 0, "offset %llu",
			     (unsigned long long)offs[i]);
	}
	disk_queue_free(q);
	disk_close(d);
}

BOTH(out_of_range)
{
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = open_queue(d, sync, 8, 0);
	struct iovec many[DISK_IOV_MAX + 1];
	uint8_t buf[32];

	cr_assert_eq(do_io(q, false, buf, 1, IMG_SIZE), -EINVAL);
	cr_assert_eq(do_io(q, true, buf, 20, IMG_SIZE - 10), -EINVAL);
	cr_assert_eq(do_io(q, false, buf, 20, UINT64_MAX - 5), -EINVAL);
	cr_assert_eq(do_cmd(q, DISCARD, IMG_SIZE - 4096, 8192), -EINVAL);
	cr_assert_eq(do_cmd(q, ZEROES, UINT64_MAX - 4095, 8192), -EINVAL);
	for (int i = 0; i < DISK_IOV_MAX + 1; i++)
		many[i] = (struct iovec){.iov_base = buf, .iov_len = 1};
	cr_assert_eq(do_rw(q, false, many, DISK_IOV_MAX + 1, 0), -EINVAL);
	cr_assert_eq(do_rw(q, false, many, DISK_IOV_MAX, 0), 0);
	/* exactly up to the end, and an empty request at the end, are fine */
	cr_assert_eq(do_io(q, true, buf, 32, IMG_SIZE - 32), 0);
	cr_assert_eq(do_io(q, false, buf, 0, IMG_SIZE), 0);
	cr_assert_eq(disk_queue_inflight(q), 0);
	disk_queue_free(q);
	disk_close(d);
}

BOTH(read_only)
{
	struct disk *d = open_disk(true, false);
	struct disk_queue *q = open_queue(d, sync, 8, 0);
	uint8_t buf[512];

	cr_assert_eq(do_io(q, true, buf, sizeof(buf), 0), -EROFS);
	cr_assert_eq(do_cmd(q, DISCARD, 0, 4096), -EROFS);
	cr_assert_eq(do_cmd(q, ZEROES, 0, 4096), -EROFS);
	cr_assert_eq(do_io(q, false, buf, sizeof(buf), 0), 0);
	cr_assert_eq(do_cmd(q, FLUSH, 0, 0), 0);
	disk_queue_free(q);
	disk_close(d);
}

BOTH(flush)
{
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = open_queue(d, sync, 8, 0);
	uint8_t buf[4096];

	fill(buf, sizeof(buf), 3);
	cr_assert_eq(do_io(q, true, buf, sizeof(buf), 8192), 0);
	cr_assert_eq(do_cmd(q, FLUSH, 0, 0), 0);
	disk_queue_free(q);
	disk_close(d);
}

static blkcnt_t blocks_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0);
	return st.st_blocks;
}

BOTH(discard)
{
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = open_queue(d, sync, 8, 0);
	static uint8_t buf[1 << 20];
	blkcnt_t before;

	fill(buf, sizeof(buf), 5);
	cr_assert_eq(do_io(q, true, buf, sizeof(buf), 1 << 20), 0);
	cr_assert_eq(do_cmd(q, FLUSH, 0, 0), 0);
	before = blocks_of(img);
	cr_assert_geq(before, (1 << 20) / 512);
	cr_assert_eq(do_cmd(q, DISCARD, 1 << 20, 1 << 20), 0);
	cr_assert_eq(do_io(q, false, buf, sizeof(buf), 1 << 20), 0);
	cr_assert(all_zero(buf, sizeof(buf)));
	cr_assert_leq(blocks_of(img), before - (1 << 20) / 512, "blocks were not freed");
	disk_queue_free(q);
	disk_close(d);
}

static void write_zeroes_on(bool sync, bool direct)
{
	struct disk *d = open_disk(false, direct);
	struct disk_queue *q = open_queue(d, sync, 8, 0);
	static uint8_t buf[65536] __attribute__((aligned(4096)));

	fill(buf, sizeof(buf), 9);
	cr_assert_eq(do_io(q, true, buf, sizeof(buf), 0), 0);
	cr_assert_eq(do_cmd(q, ZEROES, 4096, 16384), 0);
	cr_assert_eq(do_io(q, false, buf, sizeof(buf), 0), 0);
	cr_assert_not(all_zero(buf, 4096));
	cr_assert(all_zero(buf + 4096, 16384));
	cr_assert_not(all_zero(buf + 20480, sizeof(buf) - 20480));
	cr_assert_eq(d->size, IMG_SIZE, "write-zeroes must not change the size");
	disk_queue_free(q);
	disk_close(d);
}

BOTH(write_zeroes)
{
	write_zeroes_on(sync, false);
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: write-zeroes falls back to punching. */
BOTH(write_zeroes_tmpfs)
{
	struct statfs fs;

	if (statfs("/dev/shm", &fs) < 0 || fs.f_type != 0x01021994)
		cr_skip_test("/dev/shm is not tmpfs");
	unlink(img);
	make_image("/dev/shm", IMG_SIZE);
	write_zeroes_on(sync, false);
}

/* --- O_DIRECT --- */

static struct disk *open_direct(void)
{
	struct disk_opts o = {.direct = true};
	struct error err = {0};
	struct disk *d = NULL;
	int ret = disk_open(&d, img, &o, &err);

	if (ret == -EINVAL && strstr(err.msg, "does not support direct=on"))
		cr_skip_test("%s", err.msg);
	cr_assert_eq(ret, 0, "%s", err.msg);
	/* the guest is told the block size O_DIRECT needs */
	cr_assert_eq(d->block_size, d->dio_off_align);
	return d;
}

/* tmpfs takes O_DIRECT but caches anyway: refused at open, in one clear message. */
Test(block, direct_on_tmpfs_is_refused)
{
	struct disk_opts o = {.direct = true};
	struct error err = {0};
	struct disk *d = NULL;
	struct statfs fs;
	char want[128];

	if (statfs("/dev/shm", &fs) < 0 || fs.f_type != 0x01021994)
		cr_skip_test("/dev/shm is not tmpfs");
	unlink(img);
	make_image("/dev/shm", IMG_SIZE);
	cr_assert_eq(disk_open(&d, img, &o, &err), -EINVAL);
	cr_assert_null(d);
	snprintf(want, sizeof(want), "%s: the filesystem does not support direct=on (O_DIRECT)",
		 img);
	cr_assert_str_eq(err.msg, want);
	/* the same image without direct=on is fine */
	disk_close(open_disk(false, false));
}

BOTH(direct_round_trip)
{
	struct disk *d = open_direct();
	struct disk_queue *q = open_queue(d, sync, 8, 0);
	uint8_t *src, *dst;
	size_t al = d->dio_off_align, len = 16 * al;

	cr_assert_geq(al, 512);
	cr_assert_eq(posix_memalign((void **)&src, 4096, len + 4096), 0);
	cr_assert_eq(posix_memalign((void **)&dst, 4096, len + 4096), 0);
	fill(src, len, 11);
	cr_assert_eq(do_io(q, true, src, len, 3 * al), 0);
	cr_assert_eq(do_io(q, false, dst, len, 3 * al), 0);
	cr_assert_eq(memcmp(src, dst, len), 0);
	/* misaligned offset, length or buffer: refused, not bounced */
	cr_assert_eq(do_io(q, false, dst, len, 3 * al + 1), -EINVAL);
	cr_assert_eq(do_io(q, false, dst, len - 1, 0), -EINVAL);
	if (d->dio_mem_align > 1)
		cr_assert_eq(do_io(q, false, dst + 1, len, 0), -EINVAL);
	disk_queue_free(q);
	disk_close(d);
	free(src);
	free(dst);
}

BOTH(direct_write_zeroes)
{
	disk_close(open_direct());
	write_zeroes_on(sync, true);
}

/* --- the queue --- */

BOTH(backpressure)
{
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = open_queue(d, sync, 4, 0);
	static uint8_t bufs[64][512];
	struct done c[64] = {0};
	unsigned sent = 0;

	for (int i = 0; i < 4; i++)
		cr_assert_eq(disk_readv(q, &(struct iovec){bufs[i], 512}, 1, 0, on_done, &c[i]), 0);
	cr_assert_eq(disk_queue_space(q), 0);
	cr_assert_eq(disk_readv(q, &(struct iovec){bufs[4], 512}, 1, 0, on_done, &c[4]), -EAGAIN);
	cr_assert_eq(disk_flush(q, on_done, &c[4]), -EAGAIN);
	wait_all(q);
	cr_assert_eq(disk_queue_space(q), 4);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(c[i].calls, 1);

	/* 64 writes through a depth of 4: -EAGAIN means complete some first */
	memset(c, 0, sizeof(c));
	while (sent < 64) {
		struct iovec v = {bufs[sent], 512};
		int ret;

		fill(bufs[sent], 512, sent);
		ret = disk_writev(q, &v, 1, (uint64_t)sent * 512, on_done, &c[sent]);
		if (ret == -EAGAIN) {
			wait_all(q);
			continue;
		}
		cr_assert_eq(ret, 0);
		sent++;
	}
	wait_all(q);
	for (int i = 0; i < 64; i++) {
		uint8_t back[512], want[512];

		cr_assert_eq(c[i].calls, 1);
		cr_assert_eq(c[i].result, 0);
		fill(want, 512, i);
		cr_assert_eq(do_io(q, false, back, 512, (uint64_t)i * 512), 0);
		cr_assert_eq(memcmp(back, want, 512), 0);
	}
	disk_queue_free(q);
	disk_close(d);
}

/* Transfers capped at 1000 bytes come back "short" and are resubmitted. */
BOTH(short_transfers)
{
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = open_queue(d, sync, 8, 1000);
	uint8_t src[10000], dst[10000];
	struct iovec wv[3] = {{src, 2500}, {src + 2500, 1}, {src + 2501, 7499}};
	struct iovec rv[2] = {{dst, 999}, {dst + 999, 9001}};

	fill(src, sizeof(src), 13);
	cr_assert_eq(do_rw(q, true, wv, 3, 77), 0);
	cr_assert_eq(do_rw(q, false, rv, 2, 77), 0);
	cr_assert_eq(memcmp(src, dst, sizeof(src)), 0);
	/* the caller's iovecs are copied, never advanced */
	cr_assert_eq(wv[0].iov_base, src);
	cr_assert_eq(wv[0].iov_len, 2500);
	disk_queue_free(q);
	disk_close(d);
}

/* An image cut short underneath us reads -EIO, not zeroes or garbage. */
BOTH(shrunk_image)
{
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = open_queue(d, sync, 8, 0);
	uint8_t buf[8192];

	cr_assert_eq(truncate(img, 4096 + 100), 0);
	cr_assert_eq(do_io(q, false, buf, sizeof(buf), 4096), -EIO);
	cr_assert_eq(do_io(q, false, buf, 100, 4096), 0);
	disk_queue_free(q);
	disk_close(d);
}

/* Freeing a queue waits for what is in flight and runs its callbacks. */
BOTH(teardown_drains)
{
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = open_queue(d, sync, 16, 0);
	static uint8_t buf[16][4096];
	struct done c[16] = {0};

	for (int i = 0; i < 15; i++)
		cr_assert_eq(disk_writev(q, &(struct iovec){buf[i], 4096}, 1, (uint64_t)i * 4096,
					 on_done, &c[i]),
			     0);
	cr_assert_eq(disk_flush(q, on_done, &c[15]), 0);
	cr_assert_eq(disk_queue_submit(q), 0);
	disk_queue_free(q);
	for (int i = 0; i < 16; i++) {
		cr_assert_eq(c[i].calls, 1);
		cr_assert_eq(c[i].result, 0);
	}
	disk_close(d);
}

static int loop_try(int ctl, int back, char *dev, size_t len)
{
	int n = ioctl(ctl, LOOP_CTL_GET_FREE), fd;

	if (n < 0)
		return -1;
	snprintf(dev, len, "/dev/loop%d", n);
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd >= 0 && ioctl(fd, LOOP_SET_FD, back) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * Attaches the image to a free loop device; skips where that is not
 * allowed. Retries: a test running beside us may take the same free one.
 */
static int loop_attach(char *dev, size_t len)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	int back = open(img, O_RDWR | O_CLOEXEC), fd = -1;

	for (int i = 0; ctl >= 0 && back >= 0 && fd < 0 && i < 20; i++)
		fd = loop_try(ctl, back, dev, len);
	if (fd < 0)
		cr_skip_test("no loop device to be had here: %s", strerror(errno));
	close(ctl);
	close(back);
	return fd;
}

BOTH(block_device)
{
	struct disk_opts o = {0};
	struct error err = {0};
	struct disk *d = NULL;
	struct disk_queue *q;
	char dev[32];
	int lfd = loop_attach(dev, sizeof(dev));
	static uint8_t src[65536], dst[65536];

	cr_assert_eq(disk_open(&d, dev, &o, &err), 0, "%s", err.msg);
	cr_assert(d->is_blkdev);
	cr_assert_eq(d->size, IMG_SIZE);
	cr_assert_eq(d->block_size, 512);
	q = open_queue(d, sync, 8, 0);
	fill(src, sizeof(src), 17);
	cr_assert_eq(do_io(q, true, src, sizeof(src), 8192), 0);
	cr_assert_eq(do_cmd(q, FLUSH, 0, 0), 0);
	cr_assert_eq(do_io(q, false, dst, sizeof(dst), 8192), 0);
	cr_assert_eq(memcmp(src, dst, sizeof(src)), 0);
	cr_assert_eq(do_cmd(q, ZEROES, 8192, 4096), 0);
	cr_assert_eq(do_io(q, false, dst, 4096, 8192), 0);
	cr_assert(all_zero(dst, 4096));
	cr_assert_eq(do_io(q, false, dst, 512, IMG_SIZE - 256), -EINVAL);
	disk_queue_free(q);
	disk_close(d);
	ioctl(lfd, LOOP_CLR_FD);
	close(lfd);
}

Test(block, uring_by_default)
{
	struct disk_queue_opts o = {0};
	struct error err = {0};
	struct disk *d = open_disk(false, false);
	struct disk_queue *q = NULL;

	cr_assert_eq(disk_queue_new(&q, d, &o, &err), 0, "%s", err.msg);
	if (!disk_queue_is_uring(q))
		cr_log_warn("io_uring is unavailable here: the queue fell back to preadv");
	else
		cr_assert_eq(disk_queue_space(q), 128);
	disk_queue_free(q);
	disk_close(d);
}
