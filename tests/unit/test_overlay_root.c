// SPDX-License-Identifier: MIT
/*
 * overlay_open_in(): a chain an untrusted VMM wrote, read by bunshind
 * inside the instance's directory. Headers name jail paths; whatever they
 * say (.., a symbolic link, a FIFO), no file outside the root is read and
 * nothing hangs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/common/le.h"
#include "../../src/vmm/block/overlay.h"

#define BS	 (1u << OVL_BLOCK_SHIFT)
#define IMG_SIZE (4u * BS)

static char dir[64], root[96];
static int rootfd = -1;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ovlroot-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(root, sizeof(root), "%s/root", dir);
	cr_assert_eq(mkdir(root, 0700), 0);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(rootfd, 0);
}

static void teardown(void)
{
	char cmd[128];

	close(rootfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(ovlroot, .init = setup, .fini = teardown, .timeout = 30);

/* A raw file at path, every byte v. */
static void raw_file(const char *path, uint8_t v)
{
	static uint8_t buf[IMG_SIZE];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	memset(buf, v, sizeof(buf));
	cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);
}

/* The header's CRC, as the format defines it (IEEE, the CRC field zero). */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	uint32_t c = ~0u;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
	}
	return ~c;
}

/* Rewrites the overlay at path to name `below` (a jail path) as the layer under it. */
static void name_below(const char *path, const char *below)
{
	uint8_t h[OVL_HEADER_SIZE];
	int fd = open(path, O_RDWR | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
	memset(h + 64, 0, sizeof(h) - 64);
	memcpy(h + 64, below, strlen(below));
	le_put(h + 56, 4, strlen(below));
	le_put(h + 60, 4, 0);
	le_put(h + 60, 4, crc32_ieee(h, sizeof(h)));
	cr_assert_eq(pwrite(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(fd);
}

/*
 * ROOT/NAME, an overlay over the raw host file host_below holding one
 * block of 0x77 at block 1, then made to name below.
 */
static void overlay_in_root(const char *name, const char *host_below, const char *below)
{
	static uint8_t blk[BS];
	char path[256];
	struct overlay *o = NULL;
	struct error err = {0};

	snprintf(path, sizeof(path), "%s/%s", root, name);
	cr_assert_eq(overlay_create(path, host_below, OVL_FMT_RAW, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_open(&o, path, true, &err), 0, "%s", err.msg);
	memset(blk, 0x77, sizeof(blk));
	cr_assert_eq(overlay_pwrite(o, blk, sizeof(blk), BS), 0);
	overlay_close(o);
	name_below(path, below);
}

/* Byte off of the chain opened in the root at top; -errno when it does not open. */
static int byte_at(const char *top, uint64_t off, struct error *err)
{
	struct overlay *o = NULL;
	uint8_t b = 0;
	int ret = overlay_open_in(&o, rootfd, top, err);

	if (ret)
		return ret;
	ret = overlay_pread(o, &b, 1, off);
	overlay_close(o);
	return ret ? ret : b;
}

Test(ovlroot, a_chain_of_jail_paths_reads_inside_the_root)
{
	char base[256];
	struct error err = {0};

	snprintf(base, sizeof(base), "%s/disk.base", root);
	raw_file(base, 0x11);
	overlay_in_root("top.ovl", base, "/disk.base");
	cr_expect_eq(byte_at("/top.ovl", 0, &err), 0x11, "%s", err.msg);
	cr_expect_eq(byte_at("/top.ovl", BS + 5, &err), 0x77, "%s", err.msg);
	/* the top's own path is a jail path too: .. stops at the root */
	cr_expect_eq(byte_at("/../../top.ovl", 0, &err), 0x11, "%s", err.msg);
}

Test(ovlroot, dot_dot_in_a_header_stays_inside_the_root)
{
	char inside[256], outside[256];
	struct error err = {0};

	snprintf(inside, sizeof(inside), "%s/base.raw", root);
	snprintf(outside, sizeof(outside), "%s/base.raw", dir);
	raw_file(inside, 0x11);
	raw_file(outside, 0x99); /* what a path that escaped would read */
	overlay_in_root("top.ovl", inside, "/../base.raw");
	cr_expect_eq(byte_at("/top.ovl", 0, &err), 0x11, "%s", err.msg);
	/* only outside: not found, never read */
	cr_assert_eq(unlink(inside), 0);
	cr_expect_eq(byte_at("/top.ovl", 0, &err), -ENOENT);
	cr_expect(strstr(err.msg, "/../base.raw"), "%s", err.msg);
}

Test(ovlroot, symbolic_links_are_refused)
{
	char outside[256], link[256], base[256];
	struct error err = {0};

	snprintf(outside, sizeof(outside), "%s/secret.raw", dir);
	snprintf(link, sizeof(link), "%s/disk.base", root);
	snprintf(base, sizeof(base), "%s/real.raw", root);
	raw_file(outside, 0x99);
	raw_file(base, 0x11);
	overlay_in_root("top.ovl", base, "/disk.base");
	cr_assert_eq(symlink(outside, link), 0);
	cr_expect_eq(byte_at("/top.ovl", 0, &err), -ELOOP, "%s", err.msg);
	/* a link as the top itself, and one in a directory on the way */
	snprintf(link, sizeof(link), "%s/top-link.ovl", root);
	cr_assert_eq(symlink("top.ovl", link), 0);
	cr_expect_lt(byte_at("/top-link.ovl", 0, &err), 0);
	snprintf(link, sizeof(link), "%s/up", root);
	cr_assert_eq(symlink(dir, link), 0);
	overlay_in_root("top2.ovl", base, "/up/secret.raw");
	cr_expect_lt(byte_at("/top2.ovl", 0, &err), 0);
}

Test(ovlroot, a_fifo_or_directory_is_refused_without_hanging)
{
	char fifo[256], base[256];
	struct error err = {0};

	snprintf(fifo, sizeof(fifo), "%s/fifo", root);
	snprintf(base, sizeof(base), "%s/real.raw", root);
	raw_file(base, 0x11);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	overlay_in_root("top.ovl", base, "/fifo");
	cr_expect_eq(byte_at("/top.ovl", 0, &err), -EINVAL);
	cr_expect(strstr(err.msg, "not a regular file"), "%s", err.msg);
	overlay_in_root("top2.ovl", base, "/");
	cr_expect_lt(byte_at("/top2.ovl", 0, &err), 0);
}

Test(ovlroot, the_chain_is_read_only_and_takes_shared_locks)
{
	char base[256], top[256];
	struct overlay *a = NULL, *b = NULL, *w = NULL;
	struct error err = {0};
	uint8_t byte = 1;

	snprintf(base, sizeof(base), "%s/disk.base", root);
	snprintf(top, sizeof(top), "%s/top.ovl", root);
	raw_file(base, 0x11);
	overlay_in_root("top.ovl", base, "/disk.base");
	cr_assert_eq(overlay_open_in(&a, rootfd, "/top.ovl", &err), 0, "%s", err.msg);
	cr_expect_eq(overlay_open_in(&b, rootfd, "/top.ovl", &err), 0, "%s", err.msg);
	cr_expect_eq(overlay_pwrite(a, &byte, 1, 0), -EROFS);
	/* a VMM cannot take the top to write while bunshind reads it */
	cr_expect_eq(overlay_open(&w, top, true, &err), -EBUSY);
	overlay_close(a);
	overlay_close(b);
	cr_expect_eq(overlay_open_in(&a, -1, "/top.ovl", &err), -EBADF);
}
