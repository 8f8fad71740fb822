/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SNAPFILE_H
#define BUNSHIN_VMM_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/error.h"

/*
 * The VM state file of a snapshot: everything but guest memory (which is
 * a file of its own, so it can be mapped copy-on-write by clones).
 *
 *   header   "BUNSHIN\0" magic, u32 format version, u32 header CRC
 *   sections one per piece of state: char name[24] (NUL-padded),
 *            u32 version, u32 length, payload[length], u32 CRC-32 of
 *            name, version, length and payload
 *   end      a section named "end" with no payload
 *
 * All integers little-endian. Each device writes its own section(s), named
 * after the device ("vcpu3", "serial0", "virtio-blk0", ...) and versioned
 * on its own, so a device can change its layout without touching the rest.
 *
 * Reading is defensive: the file is untrusted input (it may be truncated,
 * corrupted, from another version or crafted). snap_open() checks the
 * magic, the format version and every section's bounds and CRC before
 * anything is returned; the getters never read past a section's end and
 * set a sticky error instead, so a loader can read a whole section and
 * check once with snap_section_ok().
 */

#define SNAP_FORMAT_VERSION 1
#define SNAP_NAME_MAX	    24	       /* section name, NUL padding included */
#define SNAP_FILE_MAX	    (64 << 20) /* largest state file we agree to read */

/* ---- writing ---- */

struct snap_writer {
	uint8_t *buf;
	size_t len, cap;
	size_t section; /* offset of the open section's header, or SIZE_MAX */
	bool failed;	/* out of memory at some point: snap_save() fails */
};

void snap_writer_init(struct snap_writer *w);
void snap_writer_free(struct snap_writer *w);

/* Sections do not nest: begin, put..., end. */
void snap_begin(struct snap_writer *w, const char *name, uint32_t version);
void snap_put_u8(struct snap_writer *w, uint8_t v);
void snap_put_u16(struct snap_writer *w, uint16_t v);
void snap_put_u32(struct snap_writer *w, uint32_t v);
void snap_put_u64(struct snap_writer *w, uint64_t v);
void snap_put_bytes(struct snap_writer *w, const void *p, size_t len);
void snap_end(struct snap_writer *w);

/*
 * Completes the buffer: "end" and the header (what names it in errors).
 * w->buf[0, w->len) is then a state file.
 */
int snap_finish(struct snap_writer *w, const char *what, struct error *err);

/* Writes the header, the sections and "end" to path atomically (temp file, fsync, rename). */
int snap_save(struct snap_writer *w, const char *path, struct error *err);

/* ---- reading ---- */

struct snap_file {
	uint8_t *buf;
	size_t len;
};

/* One section being read: a cursor over its payload. */
struct snap_section {
	const char *name;
	uint32_t version;
	const uint8_t *p;
	size_t len, pos;
	bool overrun; /* a getter wanted more than the payload has */
};

/* Reads and checks the whole file (magic, version, every section's CRC). */
int snap_open(struct snap_file *f, const char *path, struct error *err);
/* The same for a file already in memory (malloc'ed; f owns it, even on failure). */
int snap_open_buf(struct snap_file *f, uint8_t *buf, size_t len, const char *what,
		  struct error *err);
void snap_close(struct snap_file *f);

/*
 * Finds section name; -ENOENT (with a message) when absent, -EPROTO when
 * its version is above max_version (a newer VMM wrote it).
 */
int snap_find(const struct snap_file *f, const char *name, uint32_t max_version,
	      struct snap_section *s, struct error *err);

uint8_t snap_get_u8(struct snap_section *s);
uint16_t snap_get_u16(struct snap_section *s);
uint32_t snap_get_u32(struct snap_section *s);
uint64_t snap_get_u64(struct snap_section *s);
/* Copies len bytes (zeroes on overrun). */
void snap_get_bytes(struct snap_section *s, void *p, size_t len);

/*
 * After reading a section: 0, or -EBADMSG with a message naming the
 * section when it was shorter or longer than what its version defines.
 */
int snap_section_done(const struct snap_section *s, struct error *err);

uint32_t snap_crc32(uint32_t crc, const void *p, size_t len);

#endif
