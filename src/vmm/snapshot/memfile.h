/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_MEMFILE_H
#define BUNSHIN_VMM_MEMFILE_H

#include <stdint.h>

#include "../../common/error.h"

/*
 * The memory file of a snapshot: guest RAM exactly as it lies in the
 * guest memfd (offset = memfd offset), written sparse: ranges the memfd
 * never backed and chunks that are all zeroes become holes, so a 4 GiB
 * guest that touched 100 MiB makes a file of about 100 MiB on disk.
 * Restoring reads only the file's data ranges; holes stay zero.
 */

/* base maps the whole memfd (size bytes), or memfd is -1 and base is all there is.
 * Written to path atomically. */
int memfile_save(int memfd, const uint8_t *base, uint64_t size, const char *path,
		 struct error *err);
/* Fills a fresh (all-zero) guest memory of size bytes at base from path. */
int memfile_load(uint8_t *base, uint64_t size, const char *path, struct error *err);

#endif
