// SPDX-License-Identifier: MIT
/* Raw images: open, lock and measure a file or block device. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "disk.h"
#include "overlay.h"
#include "queue.h"

/* Whether one /proc/PID/fdinfo/FD file lists a lock on `want` (dev:ino). */
static bool fdinfo_has_lock(int dirfd, const char *name, const char *want)
{
	char line[256];
	bool found = false;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "re") : NULL;

	if (!f) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (!found && fgets(line, sizeof(line), f))
		found = strncmp(line, "lock:", 5) == 0 && strstr(line, want);
	fclose(f);
	return found;
}

static bool pid_holds_lock(const char *pid, const char *want)
{
	char path[64];
	struct dirent *e;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%s/fdinfo", pid);
	dir = opendir(path);
	if (!dir)
		return false;
	while (!found && (e = readdir(dir)))
		found = e->d_name[0] != '.' && fdinfo_has_lock(dirfd(dir), e->d_name, want);
	closedir(dir);
	return found;
}

/*
 * OFD locks show l_pid = -1 in F_OFD_GETLK and /proc/locks, so the holder
 * is found by the lock lines in each process's fdinfo. Only processes we
 * may inspect are seen (a jailed VMM sees few): the pid is best effort.
 * This runs on the error path only.
 */
static long lock_holder(const struct stat *st)
{
	char want[64];
	struct dirent *e;
	long pid = -1;
	DIR *proc = opendir("/proc");

	if (!proc)
		return -1;
	snprintf(want, sizeof(want), " %02x:%02x:%llu ", major(st->st_dev), minor(st->st_dev),
		 (unsigned long long)st->st_ino);
	while (pid < 0 && (e = readdir(proc))) {
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && pid_holds_lock(e->d_name, want))
			pid = strtol(e->d_name, NULL, 10);
	}
	closedir(proc);
	return pid;
}

/*
 * Whole-file OFD lock: a write lock for read-write, a read lock for
 * read-only, so any number of readers can share an image but a writer
 * excludes everyone. OFD (not POSIX) locks belong to the open file, so a
 * second open in the same process conflicts too and closing some other
 * descriptor for the file does not drop the lock.
 */
static int disk_lock(struct disk *d, const struct stat *st, struct error *err)
{
	struct flock fl = {
		.l_type = d->read_only ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
	};
	long pid;

	if (fcntl(d->fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return error_set(err, errno, "disk %s: locking image: %s", d->path,
				 strerror(errno));
	pid = lock_holder(st);
	if (pid > 0)
		return error_set(err, EBUSY,
				 "disk %s: image is locked by another process (pid %ld)", d->path,
				 pid);
	return error_set(err, EBUSY, "disk %s: image is locked by another process", d->path);
}

static int disk_measure_blkdev(struct disk *d, struct error *err)
{
	uint64_t size;
	int bs;

	if (ioctl(d->fd, BLKGETSIZE64, &size) < 0)
		return error_set(err, errno, "disk %s: BLKGETSIZE64: %s", d->path, strerror(errno));
	if (ioctl(d->fd, BLKSSZGET, &bs) < 0)
		return error_set(err, errno, "disk %s: BLKSSZGET: %s", d->path, strerror(errno));
	d->size = size;
	d->block_size = (uint32_t)bs;
	return 0;
}

static int disk_no_direct(const struct disk *d, struct error *err)
{
	return error_set(err, EINVAL, "%s: the filesystem does not support direct=on (O_DIRECT)",
			 d->path);
}

/*
 * tmpfs and ramfs accept O_DIRECT and quietly go through the page cache
 * anyway: there is no cache to bypass, so direct=on there is a mistake.
 */
static bool disk_fs_is_memory(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return false;
	return sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
}

/*
 * O_DIRECT limits: statx knows them (Linux 6.1+); else the block size. An
 * offset alignment of 0 there means this file cannot do direct I/O at all
 * (e.g. ext4 with data=journal), which would otherwise surface as I/O
 * errors in the guest: refuse it now.
 */
static int disk_dio_align(struct disk *d, struct error *err)
{
	d->dio_mem_align = d->block_size;
	d->dio_off_align = d->block_size;
	if (!d->is_blkdev && disk_fs_is_memory(d->fd))
		return disk_no_direct(d, err);
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(d->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		if (!stx.stx_dio_offset_align)
			return disk_no_direct(d, err);
		d->dio_mem_align = stx.stx_dio_mem_align;
		/* never below the logical block size a guest is told about */
		if (stx.stx_dio_offset_align > d->dio_off_align)
			d->dio_off_align = stx.stx_dio_offset_align;
	}
#endif
	/* a guest told of smaller blocks would issue I/O that O_DIRECT refuses */
	d->block_size = d->dio_off_align;
	return 0;
}

static int disk_measure(struct disk *d, const struct stat *st, struct error *err)
{
	if (S_ISBLK(st->st_mode)) {
		d->is_blkdev = true;
		if (disk_measure_blkdev(d, err) < 0)
			return -err->code;
	} else if (S_ISREG(st->st_mode)) {
		d->size = (uint64_t)st->st_size;
		d->block_size = DISK_SECTOR_SIZE;
	} else {
		return error_set(err, EINVAL, "disk %s: not a regular file or block device",
				 d->path);
	}
	d->sectors = d->size / DISK_SECTOR_SIZE;
	return d->direct ? disk_dio_align(d, err) : 0;
}

void disk_set_id(struct disk *d, const char *id)
{
	const char *base = strrchr(d->path, '/');

	if (!id)
		id = base ? base + 1 : d->path;
	snprintf(d->id, sizeof(d->id), "%s", id);
}

static int disk_open_fd(struct disk *d, struct error *err)
{
	int flags = (d->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;

	if (d->direct)
		flags |= O_DIRECT;
	d->fd = open(d->path, flags);
	if (d->fd >= 0)
		return 0;
	if (errno == EINVAL && d->direct)
		return disk_no_direct(d, err);
	return error_set(err, errno, "disk %s: %s", d->path, strerror(errno));
}

int disk_open(struct disk **out, const char *path, const struct disk_opts *opts, struct error *err)
{
	struct disk *d = calloc(1, sizeof(*d));
	struct stat st;
	int ret;

	if (opts && opts->overlay) {
		free(d);
		return disk_open_overlay(out, path, opts, err);
	}
	if (!d || !(d->path = strdup(path))) {
		free(d);
		return error_set(err, ENOMEM, "disk %s: out of memory", path);
	}
	d->read_only = opts && opts->read_only;
	d->direct = opts && opts->direct;
	ret = disk_open_fd(d, err);
	if (ret < 0)
		goto fail;
	if (fstat(d->fd, &st) < 0) {
		ret = error_set(err, errno, "disk %s: stat: %s", path, strerror(errno));
		goto fail;
	}
	ret = disk_measure(d, &st, err);
	if (ret == 0 && !(opts && opts->unlocked))
		ret = disk_lock(d, &st, err);
	if (ret < 0)
		goto fail;
	disk_set_id(d, opts ? opts->id : NULL);
	*out = d;
	return 0;
fail:
	disk_close(d);
	return ret;
}

int disk_set_locked(struct disk *d, bool locked, struct error *err)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
	struct stat st;

	if (d->ovl)
		return overlay_relock(d->ovl, locked, err);
	if (!locked)
		return fcntl(d->fd, F_OFD_SETLK, &fl)
			       ? error_set(err, errno, "disk %s: unlocking: %s", d->path,
					   strerror(errno))
			       : 0;
	if (fstat(d->fd, &st) < 0)
		return error_set(err, errno, "disk %s: stat: %s", d->path, strerror(errno));
	return disk_lock(d, &st, err);
}

void disk_close(struct disk *d)
{
	if (!d)
		return;
	/* an overlay disk's fd is the overlay's top: closed with the chain */
	if (d->ovl)
		overlay_close(d->ovl);
	/* closing the only descriptor of the open file releases the lock */
	else if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	free(d);
}

size_t disk_get_id(const struct disk *d, char *buf, size_t len)
{
	size_t n = strnlen(d->id, DISK_ID_BYTES);

	memset(buf, 0, len);
	memcpy(buf, d->id, n < len ? n : len);
	return n < len ? n : len;
}
