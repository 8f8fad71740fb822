/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SNAPDIFF_H
#define BUNSHIN_VMM_SNAPDIFF_H

#include <stdbool.h>

#include "snapshot.h"

/*
 * Diff snapshots (snapdiff.c). A diff snapshot directory holds
 *
 *   DIR/state   a full state file (config, KVM and device state) plus a
 *               section "diff": the base snapshot's directory, the CRC-32
 *               of the base's state file, and the bitmap of the pages
 *               this snapshot holds
 *   DIR/memory  as large as guest RAM, sparse: only the pages the bitmap
 *               names are written (a dirty page of zeroes included)
 *
 * The base is the previous snapshot this process took (full or diff), so
 * diffs chain down to a full one. Restoring maps the full snapshot's
 * memory copy-on-write and reads each diff's pages over it, oldest first.
 * A base that is missing, corrupt or was replaced (its state file's CRC
 * differs from the recorded one) is refused.
 */

struct machine;

/* After a full snapshot into dir, with the VM paused: diffs build on it from now on. */
void snapdiff_full_taken(struct machine *m, const char *dir);

/* Takes a diff snapshot into dir (paused for it, as machine_snapshot()). */
int machine_snapshot_diff(struct machine *m, const char *dir, struct snapshot_info *info,
			  struct error *err);

/* Is the open state file a diff snapshot's? */
bool snapdiff_is_diff(const struct snap_file *f);
/* Guest memory of a diff snapshot (m->snap, m->cfg->restore): the chain layered. */
int snapdiff_restore_memory(struct machine *m, struct error *err);

#endif
