/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_BLOCK_OVERLAY_H
#define BUNSHIN_VMM_BLOCK_OVERLAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../common/error.h"

/*
 * Copy-on-write overlays: a file that holds the blocks written since it
 * was created over a layer below (a raw image or another overlay). A
 * chain is read per block from the topmost layer that has the block; the
 * raw image at the bottom has them all. Only the top layer is written.
 *
 * File format (little endian):
 *
 *   0     header, OVL_HEADER_SIZE bytes:
 *           0  magic "BSHNOVL\0"       24 virtual size (bytes)
 *           8  version (1)             32 bitmap offset (OVL_HEADER_SIZE)
 *          12  header size             40 bitmap length (bytes)
 *          16  block shift (16)        48 data offset
 *          20  format of the layer     56 length of the path below
 *              below (0 raw, 1 ovl)    60 CRC-32 of the header, this field 0
 *          64  absolute path of the layer below
 *   bitmap  one bit per block, 1: the block is in this file
 *   data    block N at data offset + N * block size (the file is sparse)
 *
 * Blocks are 64 KiB: the bitmap of a 1 TiB disk is 2 MiB (it is held in
 * memory), and a copy-up (a partial write into a block the top layer does
 * not have yet) moves at most 64 KiB twice; 4 KiB blocks would avoid the
 * copy-up for page-sized writes but need a bitmap 16 times as large and 16
 * times as many bits to persist. qcow2 makes the same choice by default.
 *
 * Crash consistency: a block's data is written before its bit is set, and
 * bits reach the file only on a flush, after an fdatasync of the data (so a
 * persisted bit never points at data that is not on disk). Bits are never
 * cleared. After a crash, writes since the last flush may read as their
 * old contents; flushed writes are there. Write-through requests
 * (disk_writev_sync) that allocate persist the bitmap before completing.
 */

#define OVL_MAGIC	"BSHNOVL"
#define OVL_VERSION	1
#define OVL_HEADER_SIZE 4096u
#define OVL_BLOCK_SHIFT 16
#define OVL_MAX_DEPTH	16 /* layers in a chain, the raw image included */
#define OVL_PATH_MAX	(OVL_HEADER_SIZE - 64)
#define OVL_MAX_SIZE	(1ULL << 50) /* 1 PiB: keeps every offset far from overflow */

enum ovl_fmt {
	OVL_FMT_RAW = 0,
	OVL_FMT_OVERLAY = 1,
};

struct ovl_layer {
	int fd;
	char *path;
	enum ovl_fmt fmt;
	dev_t dev;
	ino_t ino;
	uint64_t data_off;		 /* overlay layers */
	uint64_t bitmap_off, bitmap_len; /* overlay layers */
	uint8_t *bits;			 /* overlay layers */
};

struct overlay {
	unsigned int n; /* layers, l[0] the top, l[n - 1] the raw image */
	struct ovl_layer l[OVL_MAX_DEPTH];
	uint32_t block_size;
	uint64_t size, nblocks;
	bool writable;
	bool top_unlocked; /* opened without the top's lock (an incoming migration) */
	/* the top's bitmap and its dirty byte range, copy-up, persisting */
	pthread_mutex_t lock;
	uint64_t dirty_lo, dirty_hi;
	uint8_t *bounce; /* one block, for copy-up */
	int root;	 /* overlay_open_in(): every path resolved inside it; -1: the host's */
};

/*
 * Creates a fresh overlay file at path (it must not exist) over the layer
 * `below`, of format fmt; the virtual size is that layer's.
 */
int overlay_create(const char *path, const char *below, enum ovl_fmt fmt, struct error *err);
/*
 * Opens the chain from the overlay file top down to its raw image: the top
 * read-write with an exclusive lock when writable, the rest read-only with
 * shared locks. Every header, size and the chain's shape are checked.
 */
int overlay_open(struct overlay **out, const char *top, bool writable, struct error *err);
/*
 * overlay_open() for a live migration's destination: the top is opened
 * without its lock, which the source still holds; overlay_relock() takes it
 * once the source has let go.
 */
int overlay_open_unlocked(struct overlay **out, const char *top, struct error *err);
/*
 * Hands the top between two processes. Letting go (locked false) persists
 * the bitmap first, so the taker sees every block written so far; taking it
 * (true) reads the bitmap again from the file, as the last holder left it.
 * -EBUSY while another process holds it.
 */
int overlay_relock(struct overlay *o, bool locked, struct error *err);
/*
 * overlay_open() of a chain another process wrote (bunshind reading an
 * instance's disk): read-only with shared locks, the top and every path a
 * header names resolved inside the directory root (the jail's /: `..`
 * stops there), symbolic links refused, regular files only. root stays the
 * caller's.
 */
int overlay_open_in(struct overlay **out, int root, const char *top, struct error *err);
/* Persists the bitmap (writable) and closes every layer. */
void overlay_close(struct overlay *o);

/* Synchronous I/O through the chain, for copy-up, tests and host tools. */
int overlay_pread(struct overlay *o, void *buf, uint64_t len, uint64_t off);
int overlay_pwrite(struct overlay *o, const void *buf, uint64_t len, uint64_t off);

/* lock held: */
/* Index of the layer that holds block b. */
unsigned int overlay_layer_of(const struct overlay *o, uint64_t b);
/* Bytes from off (at most max) that the same layer holds; that layer in *layer. */
uint64_t overlay_run(const struct overlay *o, uint64_t off, uint64_t max, unsigned int *layer);
/* Where byte off of the disk lives in layer i's file. */
uint64_t overlay_file_off(const struct overlay *o, unsigned int i, uint64_t off);
/* Copies the blocks holding the partial head and tail of [off, off + len) up to the top. */
int overlay_copy_up_edges(struct overlay *o, uint64_t off, uint64_t len);
/* Marks the blocks of [off, off + len) as the top's. */
void overlay_mark(struct overlay *o, uint64_t off, uint64_t len);
bool overlay_dirty(const struct overlay *o);
/* Data synced, then the dirty bitmap bytes written; with sync, synced again. */
int overlay_persist(struct overlay *o, bool sync);

/*
 * Snapshot freeze: the top stops being written (its bitmap persisted, its
 * lock made shared) and a fresh overlay at new_top, over it, becomes the
 * top. On failure the old top stays writable and *o is unchanged.
 */
int overlay_freeze(struct overlay **o, const char *new_top, struct error *err);

/* path made absolute against the working directory; NULL when out of memory. */
char *overlay_abspath(const char *path);

#endif
