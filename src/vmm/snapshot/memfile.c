// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memfile.h"
#include "../../common/util.h"

#define MEMFILE_CHUNK (256 * 1024) /* unit of zero detection and of each write */

static bool memfile_zero(const uint8_t *p, size_t len)
{
	/* Word-wise: pages are aligned and most chunks fail on the first word. */
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

/*
 * The next data range of fd at or after off: [*start, *end), or 0 when none
 * is left. Without a file (-1: memory mapped privately from a snapshot)
 * everything is data; the zero-chunk check keeps the copy sparse anyway.
 */
static int memfile_next_data(int fd, off_t off, off_t size, off_t *start, off_t *end)
{
	if (fd < 0) {
		*start = off;
		*end = size;
		return off < size;
	}
	*start = lseek(fd, off, SEEK_DATA);
	if (*start < 0)
		return errno == ENXIO ? 0 : -errno;
	*end = lseek(fd, *start, SEEK_HOLE);
	if (*end < 0 || *end > size)
		*end = size;
	return 1;
}

static int memfile_write_ranges(int memfd, const uint8_t *base, uint64_t size, int fd)
{
	off_t off = 0, start = 0, end = 0;
	int ret;

	while ((ret = memfile_next_data(memfd, off, (off_t)size, &start, &end)) > 0) {
		for (off = start; off < end; off += MEMFILE_CHUNK) {
			size_t n = end - off < MEMFILE_CHUNK ? (size_t)(end - off) : MEMFILE_CHUNK;

			if (memfile_zero(base + off, n))
				continue;
			ret = pwrite_full(fd, base + off, n, off);
			if (ret)
				return ret;
		}
		off = end;
	}
	return ret;
}

struct memfile_src {
	int memfd;
	const uint8_t *base;
	uint64_t size;
};

static int memfile_fill(int fd, void *ctx)
{
	const struct memfile_src *m = ctx;

	if (ftruncate(fd, (off_t)m->size))
		return -errno;
	return memfile_write_ranges(m->memfd, m->base, m->size, fd);
}

int memfile_save(int memfd, const uint8_t *base, uint64_t size, const char *path, struct error *err)
{
	struct memfile_src m = {memfd, base, size};
	int ret = file_write_atomic(path, memfile_fill, &m);

	if (ret)
		return error_set(err, -ret, "writing guest memory to %s: %s", path, strerror(-ret));
	return 0;
}

static int memfile_pread(int fd, uint8_t *p, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* shrank under us */
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int memfile_load(uint8_t *base, uint64_t size, const char *path, struct error *err)
{
	off_t off = 0, start = 0, end = 0;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		close(fd);
		return error_set(err, EINVAL, "%s: %llu bytes, the VM has %llu bytes of memory",
				 path, (unsigned long long)st.st_size, (unsigned long long)size);
	}
	while ((ret = memfile_next_data(fd, off, (off_t)size, &start, &end)) > 0) {
		ret = memfile_pread(fd, base + start, (size_t)(end - start), start);
		if (ret)
			break;
		off = end;
	}
	close(fd);
	if (ret)
		return error_set(err, -ret, "reading guest memory from %s: %s", path,
				 strerror(-ret));
	return 0;
}
