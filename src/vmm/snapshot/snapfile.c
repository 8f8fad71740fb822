// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfile.h"
#include "../../common/util.h"
#include "../../common/le.h"

static const char snap_magic[8] = "BUNSHIN";

#define SNAP_HEADER_LEN	 16 /* magic, version, CRC */
#define SNAP_SECTION_HDR (SNAP_NAME_MAX + 8)
#define SNAP_END	 "end"

/* ---- CRC-32 (IEEE 802.3, as zlib), bitwise: state files are small ---- */

uint32_t snap_crc32(uint32_t crc, const void *p, size_t len)
{
	const uint8_t *b = p;

	crc = ~crc;
	while (len--) {
		crc ^= *b++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}

/* ---- writing ---- */

void snap_writer_init(struct snap_writer *w)
{
	memset(w, 0, sizeof(*w));
	w->section = SIZE_MAX;
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	snap_writer_init(w);
}

/* Room for n more bytes; on failure the writer remembers and drops the data. */
static uint8_t *snap_room(struct snap_writer *w, size_t n)
{
	size_t cap = w->cap ? w->cap : 4096;
	uint8_t *p;

	if (w->failed)
		return NULL;
	while (cap - w->len < n) {
		if (cap > SNAP_FILE_MAX) {
			w->failed = true;
			return NULL;
		}
		cap *= 2;
	}
	if (cap != w->cap) {
		p = realloc(w->buf, cap);
		if (!p) {
			w->failed = true;
			return NULL;
		}
		w->buf = p;
		w->cap = cap;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

static void snap_put_le(struct snap_writer *w, uint64_t v, unsigned int n)
{
	uint8_t *p = snap_room(w, n);

	if (p)
		le_put(p, n, v);
}

void snap_put_u8(struct snap_writer *w, uint8_t v)
{
	snap_put_le(w, v, 1);
}

void snap_put_u16(struct snap_writer *w, uint16_t v)
{
	snap_put_le(w, v, 2);
}

void snap_put_u32(struct snap_writer *w, uint32_t v)
{
	snap_put_le(w, v, 4);
}

void snap_put_u64(struct snap_writer *w, uint64_t v)
{
	snap_put_le(w, v, 8);
}

void snap_put_bytes(struct snap_writer *w, const void *data, size_t len)
{
	uint8_t *p = snap_room(w, len);

	if (p && len)
		memcpy(p, data, len);
}

void snap_begin(struct snap_writer *w, const char *name, uint32_t version)
{
	uint8_t *p;

	if (w->len == 0) /* the header goes first; its CRC covers magic and version */
		snap_room(w, SNAP_HEADER_LEN);
	w->section = w->len;
	p = snap_room(w, SNAP_SECTION_HDR);
	if (!p)
		return;
	memset(p, 0, SNAP_NAME_MAX);
	strncpy((char *)p, name, SNAP_NAME_MAX - 1);
	le_put(p + SNAP_NAME_MAX, 4, version);
}

void snap_end(struct snap_writer *w)
{
	size_t start = w->section;
	uint8_t *hdr;
	uint32_t crc;

	w->section = SIZE_MAX;
	if (w->failed || start == SIZE_MAX)
		return;
	hdr = w->buf + start;
	le_put(hdr + SNAP_NAME_MAX + 4, 4, w->len - start - SNAP_SECTION_HDR);
	crc = snap_crc32(0, hdr, w->len - start);
	snap_put_u32(w, crc);
}

int snap_finish(struct snap_writer *w, const char *what, struct error *err)
{
	snap_begin(w, SNAP_END, 1);
	snap_end(w);
	if (w->failed)
		return error_set(err, ENOMEM, "%s: state too large or out of memory", what);
	memcpy(w->buf, snap_magic, sizeof(snap_magic));
	le_put(w->buf + 8, 4, SNAP_FORMAT_VERSION);
	le_put(w->buf + 12, 4, snap_crc32(0, w->buf, 12));
	return 0;
}

static int snap_fill(int fd, void *ctx)
{
	const struct snap_writer *w = ctx;

	return pwrite_full(fd, w->buf, w->len, 0);
}

int snap_save(struct snap_writer *w, const char *path, struct error *err)
{
	int ret = snap_finish(w, path, err);

	if (ret)
		return ret;
	ret = file_write_atomic(path, snap_fill, w);
	if (ret)
		return error_set(err, -ret, "%s: %s", path, strerror(-ret));
	return 0;
}

/* ---- reading ---- */

/* Walks the sections: each must fit, carry a NUL-terminated name and a good CRC. */
static int snap_check(const struct snap_file *f, const char *path, struct error *err)
{
	size_t off = SNAP_HEADER_LEN;

	while (off < f->len) {
		const uint8_t *hdr = f->buf + off;
		uint64_t len;

		if (f->len - off < SNAP_SECTION_HDR + 4)
			return error_set(err, EBADMSG, "%s: truncated at byte %zu", path, off);
		len = le_get(hdr + SNAP_NAME_MAX + 4, 4);
		if (len > f->len - off - SNAP_SECTION_HDR - 4)
			return error_set(err, EBADMSG, "%s: section at byte %zu overruns the file",
					 path, off);
		if (!memchr(hdr, 0, SNAP_NAME_MAX))
			return error_set(err, EBADMSG, "%s: bad section name at byte %zu", path,
					 off);
		if (snap_crc32(0, hdr, SNAP_SECTION_HDR + len) !=
		    le_get(hdr + SNAP_SECTION_HDR + len, 4))
			return error_set(err, EBADMSG, "%s: section '%s' is corrupted (bad CRC)",
					 path, (const char *)hdr);
		if (!strcmp((const char *)hdr, SNAP_END))
			return 0;
		off += SNAP_SECTION_HDR + len + 4;
	}
	return error_set(err, EBADMSG, "%s: truncated (no end section)", path);
}

int snap_open(struct snap_file *f, const char *path, struct error *err)
{
	uint8_t *buf;
	size_t len;
	int ret;

	memset(f, 0, sizeof(*f));
	ret = read_file(path, SNAP_FILE_MAX, &buf, &len);
	if (ret)
		return error_set(err, -ret, "%s: %s", path, strerror(-ret));
	return snap_open_buf(f, buf, len, path, err);
}

int snap_open_buf(struct snap_file *f, uint8_t *buf, size_t len, const char *path,
		  struct error *err)
{
	uint32_t version;
	int ret;

	f->buf = buf;
	f->len = len;
	if (f->len < SNAP_HEADER_LEN || memcmp(f->buf, snap_magic, sizeof(snap_magic)) ||
	    snap_crc32(0, f->buf, 12) != le_get(f->buf + 12, 4))
		ret = error_set(err, EBADMSG, "%s: not a bunshin state file", path);
	else if ((version = (uint32_t)le_get(f->buf + 8, 4)) != SNAP_FORMAT_VERSION)
		ret = error_set(err, EPROTO,
				"%s: state file format %u, this bunshin-vmm reads format %u", path,
				version, SNAP_FORMAT_VERSION);
	else
		ret = snap_check(f, path, err);
	if (ret)
		snap_close(f);
	return ret;
}

void snap_close(struct snap_file *f)
{
	free(f->buf);
	f->buf = NULL;
	f->len = 0;
}

int snap_find(const struct snap_file *f, const char *name, uint32_t max_version,
	      struct snap_section *s, struct error *err)
{
	size_t off = SNAP_HEADER_LEN;

	/* snap_open() checked every bound on the way to "end". */
	while (off < f->len) {
		const uint8_t *hdr = f->buf + off;
		size_t len = le_get(hdr + SNAP_NAME_MAX + 4, 4);

		if (!strcmp((const char *)hdr, SNAP_END))
			break;
		if (!strcmp((const char *)hdr, name)) {
			*s = (struct snap_section){.name = (const char *)hdr,
						   .version =
							   (uint32_t)le_get(hdr + SNAP_NAME_MAX, 4),
						   .p = hdr + SNAP_SECTION_HDR,
						   .len = len};
			if (s->version > max_version)
				return error_set(err, EPROTO,
						 "state section '%s' is version %u; this "
						 "bunshin-vmm reads up to %u",
						 name, s->version, max_version);
			return 0;
		}
		off += SNAP_SECTION_HDR + len + 4;
	}
	return error_set(err, ENOENT, "the state has no '%s' section", name);
}

static const uint8_t *snap_take(struct snap_section *s, size_t n)
{
	const uint8_t *p;

	if (s->overrun || s->len - s->pos < n) {
		s->overrun = true;
		return NULL;
	}
	p = s->p + s->pos;
	s->pos += n;
	return p;
}

static uint64_t snap_get_le(struct snap_section *s, unsigned int n)
{
	const uint8_t *p = snap_take(s, n);

	return p ? le_get(p, n) : 0;
}

uint8_t snap_get_u8(struct snap_section *s)
{
	return (uint8_t)snap_get_le(s, 1);
}

uint16_t snap_get_u16(struct snap_section *s)
{
	return (uint16_t)snap_get_le(s, 2);
}

uint32_t snap_get_u32(struct snap_section *s)
{
	return (uint32_t)snap_get_le(s, 4);
}

uint64_t snap_get_u64(struct snap_section *s)
{
	return snap_get_le(s, 8);
}

void snap_get_bytes(struct snap_section *s, void *p, size_t len)
{
	const uint8_t *src = snap_take(s, len);

	if (src)
		memcpy(p, src, len);
	else
		memset(p, 0, len);
}

int snap_section_done(const struct snap_section *s, struct error *err)
{
	if (s->overrun)
		return error_set(err, EBADMSG, "state section '%s' is too short", s->name);
	if (s->pos != s->len)
		return error_set(err, EBADMSG, "state section '%s' has %zu unexpected bytes",
				 s->name, s->len - s->pos);
	return 0;
}
