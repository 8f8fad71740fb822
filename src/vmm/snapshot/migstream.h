/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_MIGSTREAM_H
#define BUNSHIN_VMM_MIGSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../common/error.h"

/*
 * The live-migration stream, source to destination, all integers
 * little-endian:
 *
 *   header   "BUNSHMIG", u32 version (MIGSTREAM_VERSION), u32 flags,
 *            u64 guest RAM size, u32 length + a state file (snapfile.h)
 *            holding the "config" section: the command line to rebuild
 *            the VM with, and "disk-layout": each disk's live top layer
 *            (migrate_disks.h)
 *   records  u32 type, then by type:
 *     PAGES  u64 first page (index in guest RAM, 4 KiB pages), u32 count
 *            (1..MIGSTREAM_RUN_MAX), count * 4096 bytes
 *     STATE  u32 length + the state file of the paused VM (CPU and device
 *            state, as a snapshot's); the last record
 *
 * and back, once the destination's VM runs or failed to: u32 status (0:
 * running), u32 length + a message (at most MIGSTREAM_MSG_MAX bytes).
 *
 * The destination trusts nothing: every length and page range is checked
 * here before a byte lands in guest memory, and the state file is CRC'd.
 */

#define MIGSTREAM_MAGIC	  "BUNSHMIG"
#define MIGSTREAM_VERSION 1
#define MIGSTREAM_HDR_LEN 28 /* magic, version, flags, size, config length */
#define MIGSTREAM_RUN_MAX 256
#define MIGSTREAM_MSG_MAX 512
#define MIGSTREAM_CFG_MAX (1 << 20)
#define MIGSTREAM_PAGE	  4096ULL

/*
 * Header flags. DISK_LAYOUT: some disk runs on copy-on-write layers its
 * command line does not name, so a reader that cannot apply "disk-layout"
 * must refuse the stream (an older VMM does: the flag is unknown to it).
 */
#define MIGSTREAM_F_DISK_LAYOUT 1u
#define MIGSTREAM_FLAGS_KNOWN	MIGSTREAM_F_DISK_LAYOUT

enum migstream_type {
	MIGSTREAM_PAGES = 1,
	MIGSTREAM_STATE = 2,
};

/* unix:PATH, tcp:HOST:PORT (source) or tcp:[HOST:]PORT (destination); HOST numeric or
 * localhost, IPv6 in brackets. */
struct migstream_url {
	bool tcp;
	char path[108];
	char host[64]; /* "" : any (destination only) */
	char port[8];
};

/* Checks url; listen: a destination's (the host may be left out). 0 or -EINVAL with err. */
int migstream_parse_url(const char *url, bool listen, struct migstream_url *out, struct error *err);

/* The header's fixed part, and its check (0, or -EPROTO/-EBADMSG with err). */
void migstream_put_header(uint8_t *buf, uint64_t mem_size, uint32_t cfg_len);
int migstream_check_header(const uint8_t *buf, uint64_t *mem_size, uint32_t *cfg_len,
			   struct error *err);
/* The header's flags (MIGSTREAM_F_*): set after migstream_put_header(), read after the check. */
void migstream_set_flags(uint8_t *buf, uint32_t flags);
uint32_t migstream_flags(const uint8_t *buf);

/* Is a PAGES record for [first, first + count) inside npages of RAM? (0 or -ERANGE with err) */
int migstream_check_pages(uint64_t first, uint32_t count, uint64_t npages, struct error *err);

/* Whole reads and writes on a stream socket; -EPIPE for a stream that ended early. */
int migstream_read(int fd, void *buf, size_t len);
int migstream_writev(int fd, struct iovec *iov, int n);

/* Sockets: the source's connection (0 with *fd), the destination's single accepted one. */
int migstream_connect(const struct migstream_url *u, int *fd, struct error *err);
int migstream_accept(const struct migstream_url *u, int *fd, struct error *err);

#endif
