// SPDX-License-Identifier: MIT
/* Copy-on-write overlay files and chains of them (format in overlay.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "overlay.h"
#include "../../common/le.h"

#define OVL_OFF_VERSION	   8
#define OVL_OFF_HDR_SIZE   12
#define OVL_OFF_SHIFT	   16
#define OVL_OFF_FMT	   20
#define OVL_OFF_SIZE	   24
#define OVL_OFF_BITMAP	   32
#define OVL_OFF_BITMAP_LEN 40
#define OVL_OFF_DATA	   48
#define OVL_OFF_PATH_LEN   56
#define OVL_OFF_CRC	   60
#define OVL_OFF_PATH	   64

/* What a header says, checked. */
struct ovl_header {
	unsigned int shift;
	enum ovl_fmt below_fmt;
	uint64_t size, bitmap_off, bitmap_len, data_off;
	char below[OVL_PATH_MAX + 1];
};

/* CRC-32 (IEEE), bitwise: it covers one 4 KiB header, read once at open. */
static uint32_t ovl_crc32(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}

static uint64_t ovl_round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

/* The layout that follows from a virtual size: what a valid header must say. */
static void ovl_layout(struct ovl_header *h, uint64_t size)
{
	uint64_t bs = 1ULL << OVL_BLOCK_SHIFT;
	uint64_t nblocks = ovl_round_up(size, bs) / bs;

	h->shift = OVL_BLOCK_SHIFT;
	h->size = size;
	h->bitmap_off = OVL_HEADER_SIZE;
	h->bitmap_len = ovl_round_up(ovl_round_up(nblocks, 8) / 8, OVL_HEADER_SIZE);
	h->data_off = ovl_round_up(h->bitmap_off + h->bitmap_len, bs);
}

char *overlay_abspath(const char *path)
{
	char cwd[OVL_PATH_MAX];
	char *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

/* Whole transfers: a short count goes on; end of file is -EIO (never made-up data). */
static int ovl_io(int fd, bool write, void *buf, uint64_t len, uint64_t off)
{
	while (len) {
		struct iovec v = {.iov_base = buf, .iov_len = len};
		ssize_t n = write ? pwritev(fd, &v, 1, (off_t)off) : preadv(fd, &v, 1, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf = (uint8_t *)buf + n;
		len -= (uint64_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* ---- headers ---- */

static int ovl_bad(struct error *err, const char *path, const char *what)
{
	return error_set(err, EINVAL, "overlay %s: %s", path, what);
}

static int ovl_check_fields(const uint8_t *b, struct ovl_header *h, const char *path,
			    struct error *err)
{
	struct ovl_header want;
	uint32_t plen = (uint32_t)le_get(b + OVL_OFF_PATH_LEN, 4);

	if (le_get(b + OVL_OFF_VERSION, 4) != OVL_VERSION)
		return ovl_bad(err, path, "unsupported version");
	if (le_get(b + OVL_OFF_HDR_SIZE, 4) != OVL_HEADER_SIZE)
		return ovl_bad(err, path, "bad header size");
	if (le_get(b + OVL_OFF_SHIFT, 4) != OVL_BLOCK_SHIFT)
		return ovl_bad(err, path, "unsupported block size");
	h->below_fmt = (enum ovl_fmt)le_get(b + OVL_OFF_FMT, 4);
	if (h->below_fmt != OVL_FMT_RAW && h->below_fmt != OVL_FMT_OVERLAY)
		return ovl_bad(err, path, "unknown format of the layer below");
	h->size = le_get(b + OVL_OFF_SIZE, 8);
	if (!h->size || h->size > OVL_MAX_SIZE)
		return ovl_bad(err, path, "virtual size out of range");
	ovl_layout(&want, h->size);
	if (le_get(b + OVL_OFF_BITMAP, 8) != want.bitmap_off ||
	    le_get(b + OVL_OFF_BITMAP_LEN, 8) != want.bitmap_len ||
	    le_get(b + OVL_OFF_DATA, 8) != want.data_off)
		return ovl_bad(err, path, "layout does not match the virtual size");
	*h = (struct ovl_header){.below_fmt = h->below_fmt,
				 .shift = want.shift,
				 .size = want.size,
				 .bitmap_off = want.bitmap_off,
				 .bitmap_len = want.bitmap_len,
				 .data_off = want.data_off};
	if (!plen || plen > OVL_PATH_MAX - 1 || b[OVL_OFF_PATH] != '/' ||
	    memchr(b + OVL_OFF_PATH, 0, plen))
		return ovl_bad(err, path, "bad path of the layer below");
	memcpy(h->below, b + OVL_OFF_PATH, plen);
	h->below[plen] = 0;
	return 0;
}

/* Reads and checks the header of an open overlay file of st_size bytes. */
static int ovl_read_header(int fd, uint64_t st_size, struct ovl_header *h, const char *path,
			   struct error *err)
{
	uint8_t b[OVL_HEADER_SIZE];
	uint32_t crc;
	int ret;

	if (st_size < OVL_HEADER_SIZE)
		return ovl_bad(err, path, "truncated header (not an overlay?)");
	ret = ovl_io(fd, false, b, sizeof(b), 0);
	if (ret < 0)
		return error_set(err, -ret, "overlay %s: reading the header: %s", path,
				 strerror(-ret));
	if (memcmp(b, OVL_MAGIC, 8))
		return ovl_bad(err, path, "bad magic (not an overlay)");
	crc = (uint32_t)le_get(b + OVL_OFF_CRC, 4);
	le_put(b + OVL_OFF_CRC, 4, 0);
	if (ovl_crc32(b, sizeof(b)) != crc)
		return ovl_bad(err, path, "header checksum mismatch");
	ret = ovl_check_fields(b, h, path, err);
	if (ret)
		return ret;
	if (st_size < h->data_off + h->size)
		return ovl_bad(err, path, "truncated file");
	return 0;
}

static void ovl_build_header(uint8_t *b, const struct ovl_header *h)
{
	size_t plen = strlen(h->below);

	memset(b, 0, OVL_HEADER_SIZE);
	memcpy(b, OVL_MAGIC, 8);
	le_put(b + OVL_OFF_VERSION, 4, OVL_VERSION);
	le_put(b + OVL_OFF_HDR_SIZE, 4, OVL_HEADER_SIZE);
	le_put(b + OVL_OFF_SHIFT, 4, h->shift);
	le_put(b + OVL_OFF_FMT, 4, h->below_fmt);
	le_put(b + OVL_OFF_SIZE, 8, h->size);
	le_put(b + OVL_OFF_BITMAP, 8, h->bitmap_off);
	le_put(b + OVL_OFF_BITMAP_LEN, 8, h->bitmap_len);
	le_put(b + OVL_OFF_DATA, 8, h->data_off);
	le_put(b + OVL_OFF_PATH_LEN, 4, plen);
	memcpy(b + OVL_OFF_PATH, h->below, plen);
	le_put(b + OVL_OFF_CRC, 4, ovl_crc32(b, OVL_HEADER_SIZE));
}

/* ---- layers ---- */

static int ovl_raw_size(int fd, const struct stat *st, uint64_t *size)
{
	if (S_ISBLK(st->st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	*size = (uint64_t)st->st_size;
	return 0;
}

/* The virtual size of a layer: a raw image's size, an overlay's header. */
static int ovl_layer_size(const char *path, enum ovl_fmt fmt, uint64_t *size, struct error *err)
{
	struct ovl_header h;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return error_set(err, errno, "overlay: %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		ret = error_set(err, errno, "overlay: %s: stat: %s", path, strerror(errno));
	else if (fmt == OVL_FMT_OVERLAY)
		ret = ovl_read_header(fd, (uint64_t)st.st_size, &h, path, err);
	else if (ovl_raw_size(fd, &st, size))
		ret = error_set(err, EINVAL, "overlay: %s: not a regular file or block device",
				path);
	if (!ret && fmt == OVL_FMT_OVERLAY)
		*size = h.size;
	close(fd);
	if (!ret && !*size)
		ret = error_set(err, EINVAL, "overlay: %s: the image is empty", path);
	return ret;
}

static int ovl_write_new(int fd, const struct ovl_header *h)
{
	uint8_t b[OVL_HEADER_SIZE];
	int ret;

	ovl_build_header(b, h);
	/* sparse: the bitmap and the data read as zeroes until written */
	if (ftruncate(fd, (off_t)(h->data_off + h->size)) < 0)
		return -errno;
	ret = ovl_io(fd, true, b, sizeof(b), 0);
	if (!ret && fdatasync(fd) < 0)
		ret = -errno;
	return ret;
}

int overlay_create(const char *path, const char *below, enum ovl_fmt fmt, struct error *err)
{
	struct ovl_header h;
	char *abs = overlay_abspath(below);
	uint64_t size = 0;
	int fd, ret;

	if (!abs)
		return error_set(err, ENOMEM, "overlay %s: path of %s: %s", path, below,
				 strerror(errno ? errno : ENOMEM));
	if (strlen(abs) >= OVL_PATH_MAX - 1) {
		free(abs);
		return ovl_bad(err, path, "the path of the layer below is too long");
	}
	ret = ovl_layer_size(abs, fmt, &size, err);
	if (ret || size > OVL_MAX_SIZE) {
		free(abs);
		return ret ? ret : ovl_bad(err, below, "image too large for an overlay");
	}
	ovl_layout(&h, size);
	h.below_fmt = fmt;
	snprintf(h.below, sizeof(h.below), "%s", abs);
	free(abs);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_set(err, errno, "overlay %s: creating: %s", path, strerror(errno));
	ret = ovl_write_new(fd, &h);
	close(fd);
	if (ret) {
		unlink(path);
		return error_set(err, -ret, "overlay %s: writing: %s", path, strerror(-ret));
	}
	return 0;
}

static int ovl_lock(int fd, short type, const char *path, struct error *err)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET};

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return error_set(err, EBUSY, "overlay: %s is locked by another process", path);
	return error_set(err, errno, "overlay: locking %s: %s", path, strerror(errno));
}

static int ovl_load_bits(struct ovl_layer *l, const struct ovl_header *h, struct error *err)
{
	int ret;

	l->data_off = h->data_off;
	l->bitmap_off = h->bitmap_off;
	l->bitmap_len = h->bitmap_len;
	l->bits = malloc(h->bitmap_len);
	if (!l->bits)
		return error_set(err, ENOMEM, "overlay %s: out of memory", l->path);
	ret = ovl_io(l->fd, false, l->bits, h->bitmap_len, h->bitmap_off);
	if (ret)
		return error_set(err, -ret, "overlay %s: reading the bitmap: %s", l->path,
				 strerror(-ret));
	return 0;
}

/* Layer i after the ones above it: the same size, no file twice. */
static int ovl_check_layer(struct overlay *o, unsigned int i, uint64_t size, struct error *err)
{
	struct ovl_layer *l = &o->l[i];

	for (unsigned int k = 0; k < i; k++)
		if (o->l[k].dev == l->dev && o->l[k].ino == l->ino)
			return error_set(err, ELOOP, "overlay %s: loop in the chain at %s",
					 o->l[0].path, l->path);
	if (i == 0)
		o->size = size;
	else if (size != o->size)
		return error_set(err, EINVAL,
				 "overlay %s: size mismatch: %s is %llu bytes, the overlay %llu",
				 o->l[i - 1].path, l->path, (unsigned long long)size,
				 (unsigned long long)o->size);
	return 0;
}

/*
 * A layer's file. Inside a root, the path is an untrusted process's: it
 * never leaves the root nor follows a link, and O_NONBLOCK keeps a FIFO
 * planted there from hanging the open (it is refused after, not regular).
 */
static int ovl_open_file(const struct overlay *o, const char *path, bool rw)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};

	if (o->root < 0)
		return open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	return (int)syscall(SYS_openat2, o->root, path, &how, sizeof(how));
}

/* Opens layer i (path and fmt set) and reads what it says is below. */
static int ovl_open_layer(struct overlay *o, unsigned int i, struct ovl_header *h,
			  struct error *err)
{
	struct ovl_layer *l = &o->l[i];
	bool rw = i == 0 && o->writable;
	uint64_t size = 0;
	struct stat st;
	int ret;

	l->fd = ovl_open_file(o, l->path, rw);
	if (l->fd < 0)
		return error_set(err, errno, "overlay: %s: %s", l->path, strerror(errno));
	if (fstat(l->fd, &st) < 0)
		return error_set(err, errno, "overlay: %s: stat: %s", l->path, strerror(errno));
	if (o->root >= 0 && !S_ISREG(st.st_mode))
		return error_set(err, EINVAL, "overlay: %s: not a regular file", l->path);
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	if (l->fmt == OVL_FMT_RAW) {
		if (ovl_raw_size(l->fd, &st, &size))
			return error_set(err, EINVAL,
					 "overlay: %s: not a regular file or block device",
					 l->path);
	} else {
		ret = ovl_read_header(l->fd, (uint64_t)st.st_size, h, l->path, err);
		if (ret)
			return ret;
		size = h->size;
	}
	ret = ovl_check_layer(o, i, size, err);
	if (!ret && !(i == 0 && o->top_unlocked))
		ret = ovl_lock(l->fd, rw ? F_WRLCK : F_RDLCK, l->path, err);
	if (!ret && l->fmt == OVL_FMT_OVERLAY)
		ret = ovl_load_bits(l, h, err);
	return ret;
}

static int ovl_open_chain(struct overlay *o, const char *top, struct error *err)
{
	struct ovl_header h;
	int ret;

	o->l[0].path = o->root < 0 ? overlay_abspath(top) : strdup(top);
	o->l[0].fmt = OVL_FMT_OVERLAY;
	for (unsigned int i = 0;; i++) {
		if (!o->l[i].path)
			return error_set(err, ENOMEM, "overlay %s: out of memory", top);
		o->n = i + 1;
		ret = ovl_open_layer(o, i, &h, err);
		if (ret || o->l[i].fmt == OVL_FMT_RAW)
			return ret;
		if (i + 1 == OVL_MAX_DEPTH)
			return error_set(err, ELOOP, "overlay %s: chain deeper than %d layers", top,
					 OVL_MAX_DEPTH);
		o->l[i + 1].path = strdup(h.below);
		o->l[i + 1].fmt = h.below_fmt;
		o->l[i + 1].fd = -1;
	}
}

static int ovl_open(struct overlay **out, int root, const char *top, bool writable,
		    bool top_unlocked, struct error *err)
{
	struct overlay *o = calloc(1, sizeof(*o));
	int ret;

	if (!o)
		return error_set(err, ENOMEM, "overlay %s: out of memory", top);
	pthread_mutex_init(&o->lock, NULL);
	o->writable = writable;
	o->top_unlocked = top_unlocked;
	o->root = root;
	o->l[0].fd = -1;
	o->block_size = 1u << OVL_BLOCK_SHIFT;
	ret = ovl_open_chain(o, top, err);
	if (!ret) {
		o->nblocks = ovl_round_up(o->size, o->block_size) / o->block_size;
		o->bounce = malloc(o->block_size);
		if (!o->bounce)
			ret = error_set(err, ENOMEM, "overlay %s: out of memory", top);
	}
	if (ret) {
		o->writable = false; /* nothing to persist */
		overlay_close(o);
		return ret;
	}
	o->dirty_lo = UINT64_MAX;
	*out = o;
	return 0;
}

int overlay_open(struct overlay **out, const char *top, bool writable, struct error *err)
{
	return ovl_open(out, -1, top, writable, false, err);
}

int overlay_open_unlocked(struct overlay **out, const char *top, struct error *err)
{
	return ovl_open(out, -1, top, true, true, err);
}

int overlay_open_in(struct overlay **out, int root, const char *top, struct error *err)
{
	if (root < 0)
		return error_set(err, EBADF, "overlay %s: no root directory", top);
	return ovl_open(out, root, top, false, false, err);
}

/* The top's bitmap again from its file: what the process that held it last persisted. */
static int ovl_reload_bits(struct overlay *o, struct error *err)
{
	struct ovl_layer *top = &o->l[0];
	int ret = ovl_io(top->fd, false, top->bits, top->bitmap_len, top->bitmap_off);

	if (ret)
		return error_set(err, -ret, "overlay %s: reading the bitmap: %s", top->path,
				 strerror(-ret));
	o->dirty_lo = UINT64_MAX;
	o->dirty_hi = 0;
	return 0;
}

int overlay_relock(struct overlay *o, bool locked, struct error *err)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
	int ret;

	pthread_mutex_lock(&o->lock);
	if (locked) {
		ret = ovl_lock(o->l[0].fd, F_WRLCK, o->l[0].path, err);
		if (!ret)
			ret = ovl_reload_bits(o, err);
		if (!ret)
			o->top_unlocked = false;
	} else {
		ret = overlay_persist(o, true);
		if (ret)
			error_set(err, -ret, "overlay %s: persisting the bitmap: %s", o->l[0].path,
				  strerror(-ret));
		else if (fcntl(o->l[0].fd, F_OFD_SETLK, &fl))
			ret = error_set(err, errno, "overlay %s: unlocking: %s", o->l[0].path,
					strerror(errno));
		else
			o->top_unlocked = true;
	}
	pthread_mutex_unlock(&o->lock);
	return ret;
}

void overlay_close(struct overlay *o)
{
	if (!o)
		return;
	if (o->writable) {
		pthread_mutex_lock(&o->lock);
		if (overlay_dirty(o))
			overlay_persist(o, true);
		pthread_mutex_unlock(&o->lock);
	}
	for (unsigned int i = 0; i < o->n; i++) {
		if (o->l[i].fd >= 0)
			close(o->l[i].fd);
		free(o->l[i].path);
		free(o->l[i].bits);
	}
	pthread_mutex_destroy(&o->lock);
	free(o->bounce);
	free(o);
}

/* ---- blocks ---- */

static bool ovl_has(const struct ovl_layer *l, uint64_t b)
{
	return l->bits[b >> 3] & (1u << (b & 7));
}

static unsigned int ovl_layer_from(const struct overlay *o, uint64_t b, unsigned int from)
{
	for (unsigned int i = from; i + 1 < o->n; i++)
		if (ovl_has(&o->l[i], b))
			return i;
	return o->n - 1;
}

unsigned int overlay_layer_of(const struct overlay *o, uint64_t b)
{
	return ovl_layer_from(o, b, 0);
}

uint64_t overlay_run(const struct overlay *o, uint64_t off, uint64_t max, unsigned int *layer)
{
	unsigned int shift = OVL_BLOCK_SHIFT;
	uint64_t b = off >> shift, end = off + max;
	uint64_t next = (b + 1) << shift;

	*layer = overlay_layer_of(o, b);
	while (next < end && overlay_layer_of(o, next >> shift) == *layer)
		next += o->block_size;
	return (next < end ? next : end) - off;
}

uint64_t overlay_file_off(const struct overlay *o, unsigned int i, uint64_t off)
{
	return o->l[i].fmt == OVL_FMT_RAW ? off : o->l[i].data_off + off;
}

void overlay_mark(struct overlay *o, uint64_t off, uint64_t len)
{
	uint64_t first = off >> OVL_BLOCK_SHIFT, last = (off + len - 1) >> OVL_BLOCK_SHIFT;

	if (!len)
		return;
	for (uint64_t b = first; b <= last; b++)
		o->l[0].bits[b >> 3] |= (uint8_t)(1u << (b & 7));
	if (first / 8 < o->dirty_lo || o->dirty_lo == UINT64_MAX)
		o->dirty_lo = first / 8;
	if (last / 8 + 1 > o->dirty_hi)
		o->dirty_hi = last / 8 + 1;
}

bool overlay_dirty(const struct overlay *o)
{
	return o->dirty_lo != UINT64_MAX && o->dirty_hi > o->dirty_lo;
}

/* Block b from the layers below the top into the top. */
static int ovl_copy_up(struct overlay *o, uint64_t b)
{
	uint64_t off = b << OVL_BLOCK_SHIFT;
	uint64_t len = o->size - off < o->block_size ? o->size - off : o->block_size;
	unsigned int from = ovl_layer_from(o, b, 1);
	int ret = ovl_io(o->l[from].fd, false, o->bounce, len, overlay_file_off(o, from, off));

	if (!ret)
		ret = ovl_io(o->l[0].fd, true, o->bounce, len, overlay_file_off(o, 0, off));
	if (!ret)
		overlay_mark(o, off, len);
	return ret;
}

int overlay_copy_up_edges(struct overlay *o, uint64_t off, uint64_t len)
{
	uint64_t bs = o->block_size, end = off + len;
	uint64_t head = off / bs, tail = (end - 1) / bs;
	int ret = 0;

	if (!len)
		return 0;
	if (off % bs && !ovl_has(&o->l[0], head))
		ret = ovl_copy_up(o, head);
	/* the last block is short: a write to its end covers it whole */
	if (!ret && end % bs && end != o->size && !ovl_has(&o->l[0], tail))
		ret = ovl_copy_up(o, tail);
	return ret;
}

int overlay_persist(struct overlay *o, bool sync)
{
	struct ovl_layer *top = &o->l[0];
	uint64_t lo = o->dirty_lo, hi = o->dirty_hi;
	int ret = 0;

	if (!overlay_dirty(o))
		return sync && fdatasync(top->fd) < 0 ? -errno : 0;
	/* the data first: a bit on disk must never point at data that is not */
	if (fdatasync(top->fd) < 0)
		return -errno;
	ret = ovl_io(top->fd, true, top->bits + lo, hi - lo, top->bitmap_off + lo);
	if (!ret && sync && fdatasync(top->fd) < 0)
		ret = -errno;
	if (!ret) {
		o->dirty_lo = UINT64_MAX;
		o->dirty_hi = 0;
	}
	return ret;
}

static int ovl_check_io(const struct overlay *o, uint64_t len, uint64_t off)
{
	return off > o->size || len > o->size - off ? -EINVAL : 0;
}

int overlay_pread(struct overlay *o, void *buf, uint64_t len, uint64_t off)
{
	int ret = ovl_check_io(o, len, off);

	pthread_mutex_lock(&o->lock);
	while (!ret && len) {
		unsigned int i;
		uint64_t run = overlay_run(o, off, len, &i);

		ret = ovl_io(o->l[i].fd, false, buf, run, overlay_file_off(o, i, off));
		buf = (uint8_t *)buf + run;
		off += run;
		len -= run;
	}
	pthread_mutex_unlock(&o->lock);
	return ret;
}

int overlay_pwrite(struct overlay *o, const void *buf, uint64_t len, uint64_t off)
{
	int ret = ovl_check_io(o, len, off);

	if (!ret && !o->writable)
		ret = -EROFS;
	if (ret || !len)
		return ret;
	pthread_mutex_lock(&o->lock);
	ret = overlay_copy_up_edges(o, off, len);
	if (!ret)
		ret = ovl_io(o->l[0].fd, true, (void *)buf, len, overlay_file_off(o, 0, off));
	if (!ret)
		overlay_mark(o, off, len);
	pthread_mutex_unlock(&o->lock);
	return ret;
}

/* ---- snapshots ---- */

int overlay_freeze(struct overlay **op, const char *new_top, struct error *err)
{
	struct overlay *old = *op, *nw = NULL;
	int ret;

	if (old->n == OVL_MAX_DEPTH)
		return error_set(err, ELOOP, "overlay %s: chain already %d layers deep",
				 old->l[0].path, OVL_MAX_DEPTH);
	pthread_mutex_lock(&old->lock);
	ret = overlay_persist(old, true);
	pthread_mutex_unlock(&old->lock);
	if (ret)
		return error_set(err, -ret, "overlay %s: %s", old->l[0].path, strerror(-ret));
	/* shared from now on: the new top (and any clone) reads it */
	ret = ovl_lock(old->l[0].fd, F_RDLCK, old->l[0].path, err);
	if (!ret)
		ret = overlay_create(new_top, old->l[0].path, OVL_FMT_OVERLAY, err);
	if (!ret && overlay_open(&nw, new_top, true, err))
		unlink(new_top);
	if (!nw) {
		struct error ignored;

		ovl_lock(old->l[0].fd, F_WRLCK, old->l[0].path, &ignored);
		return -err->code;
	}
	old->writable = false;
	overlay_close(old);
	*op = nw;
	return 0;
}
